//! `instance_uid` is opaque bytes: 1 to 64 accepted and echoed byte for byte.

use hyper::StatusCode;
use odigos_opamp_server::Settings;

use crate::client::Connection;
use crate::messages::{BIN_UID, PY_UID, first_message, heartbeat, int};
use crate::server::start;

#[tokio::test]
async fn sixteen_and_thirty_six_byte_uids_are_separate_agents_echoed_exactly() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    // Two processes: a second uid for the same process would be refused (409).
    for (pid, uid) in [(1, &BIN_UID[..]), (2, PY_UID)] {
        let mut first = first_message(uid, 0);
        let attributes = &mut first
            .agent_description
            .as_mut()
            .unwrap()
            .identifying_attributes;
        attributes.retain(|kv| kv.key != "process.pid");
        attributes.push(int("process.pid", pid));
        let reply = c.post(&first, &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.message().instance_uid, uid);
        let beat = c.post(&heartbeat(uid, 1), &[]).await;
        assert_eq!(beat.message().instance_uid, uid);
        assert_eq!(beat.message().flags, 0, "known by its raw bytes");
    }
    let mut uids: Vec<Vec<u8>> = t
        .server
        .agents()
        .into_iter()
        .map(|a| a.instance_uid)
        .collect();
    uids.sort();
    assert_eq!(uids, vec![BIN_UID.to_vec(), PY_UID.to_vec()]);
}

#[tokio::test]
async fn empty_uid_is_400() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c.post(&first_message(b"", 0), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply
            .message()
            .error_response
            .expect("error")
            .error_message
            .contains("empty")
    );
}

#[tokio::test]
async fn sixty_five_byte_uid_is_400_and_sixty_four_is_accepted() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let long = c.post(&first_message(&[b'x'; 65], 0), &[]).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert!(
        long.message()
            .error_response
            .expect("error")
            .error_message
            .contains("65 bytes")
    );
    let fits = c.post(&first_message(&[b'x'; 64], 0), &[]).await;
    assert_eq!(fits.status, StatusCode::OK);
    assert_eq!(fits.message().instance_uid, vec![b'x'; 64]);
}
