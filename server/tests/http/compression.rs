//! gzip both ways: requests may be gzipped; responses are gzipped only when allowed.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use hyper::StatusCode;
use odigos_opamp_proto::opamp::proto::ServerToAgent;
use odigos_opamp_server::Settings;
use prost::Message;

use crate::client::{Connection, opamp_request};
use crate::messages::{PY_UID, first_message};
use crate::server::start;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("response is valid gzip");
    out
}

#[tokio::test]
async fn gzipped_request_with_gzip_accepted_gets_a_gzipped_response() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let body = gzip(&first_message(PY_UID, 0).encode_to_vec());
    let reply = c
        .send(opamp_request(
            body,
            &[("content-encoding", "gzip"), ("accept-encoding", "gzip")],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-encoding"), "gzip");
    assert_eq!(reply.header("content-type"), "application/x-protobuf");
    let msg = ServerToAgent::decode(gunzip(&reply.body).as_slice()).expect("ServerToAgent");
    assert_eq!(msg.instance_uid, PY_UID);
    assert!(msg.remote_config.is_some());
}

#[tokio::test]
async fn no_accept_encoding_means_no_gzip_even_for_a_gzipped_request() {
    // The Elastic Node client cannot decode gzip and sends no Accept-Encoding.
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let body = gzip(&first_message(PY_UID, 0).encode_to_vec());
    let reply = c
        .send(opamp_request(body, &[("content-encoding", "gzip")]))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-encoding"), "");
    assert!(reply.message().remote_config.is_some());
}

#[tokio::test]
async fn gzip_with_q_zero_is_refused() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let body = first_message(PY_UID, 0).encode_to_vec();
    let reply = c
        .send(opamp_request(
            body,
            &[("accept-encoding", "gzip;q=0, identity")],
        ))
        .await;
    assert_eq!(reply.header("content-encoding"), "");
    assert!(reply.message().remote_config.is_some());
}

#[tokio::test]
async fn small_responses_stay_plain_unless_the_threshold_is_zero() {
    let t = start(Settings {
        gzip_min_bytes: 0,
        ..Settings::loopback()
    })
    .await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let unknown = crate::messages::heartbeat(PY_UID, 3).encode_to_vec();
    let reply = c
        .send(opamp_request(
            unknown.clone(),
            &[("accept-encoding", "gzip")],
        ))
        .await;
    assert_eq!(reply.header("content-encoding"), "gzip");

    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c
        .send(opamp_request(unknown, &[("accept-encoding", "gzip")]))
        .await;
    assert_eq!(
        reply.header("content-encoding"),
        "",
        "a tiny ack is not worth gzip"
    );
    assert_eq!(reply.message().instance_uid, PY_UID);
}
