//! Every status code of docs/protocol.md §2, with its headers and body.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use odigos_opamp_proto::opamp::proto::ServerErrorResponseType;
use odigos_opamp_server::Settings;
use odigos_opamp_server::protocol::SERVER_CAPABILITIES;

use crate::client::{Connection, opamp_request, request};
use crate::messages::{DEVICE_ID, PY_UID, first_message, heartbeat};
use crate::server::{UnavailableIdentity, start, start_with};

const PROTOBUF: &str = "application/x-protobuf";

#[tokio::test]
async fn ok_echoes_the_uid_and_sets_capabilities_and_the_exact_content_type() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c.post(&first_message(PY_UID, 0), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), PROTOBUF);
    let msg = reply.message();
    assert_eq!(msg.instance_uid, PY_UID);
    assert_eq!(msg.capabilities, SERVER_CAPABILITIES);
    assert!(msg.remote_config.is_some());
}

#[tokio::test]
async fn content_type_is_matched_leniently() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    for (seq, content_type) in [
        " application/x-protobuf",
        "Application/X-Protobuf; charset=binary",
    ]
    .into_iter()
    .enumerate()
    {
        let reply = c
            .post(
                &heartbeat(PY_UID, seq as u64),
                &[("content-type", content_type)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{content_type:?}");
    }
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415_with_a_text_body() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    for content_type in ["application/json", ""] {
        let reply = c
            .post(&heartbeat(PY_UID, 0), &[("content-type", content_type)])
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert!(
            reply.text().contains("expected application/x-protobuf"),
            "{}",
            reply.text()
        );
    }
}

#[tokio::test]
async fn unsupported_content_encoding_is_415() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c
        .post(&heartbeat(PY_UID, 0), &[("content-encoding", "br")])
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply.text().contains("gzip"), "{}", reply.text());
}

#[tokio::test]
async fn undecodable_body_is_400_with_a_bad_request_error_response() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c.send(opamp_request(vec![0xff, 0xff, 0xff], &[])).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.header("content-type"), PROTOBUF);
    let error = reply.message().error_response.expect("error_response");
    assert_eq!(error.r#type, ServerErrorResponseType::BadRequest as i32);
    assert!(
        error.error_message.contains("not a valid AgentToServer"),
        "{}",
        error.error_message
    );
}

#[tokio::test]
async fn invalid_gzip_is_400() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c
        .send(opamp_request(
            b"plainly not gzip".to_vec(),
            &[("content-encoding", "gzip")],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.message().error_response.is_some());
}

#[tokio::test]
async fn oversized_body_is_413() {
    let t = start(Settings {
        max_body_bytes: 1024,
        ..Settings::loopback()
    })
    .await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c.send(opamp_request(vec![0u8; 4096], &[])).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.text().contains("1024"), "{}", reply.text());
    // A body exactly at the limit is read (and here rejected only as undecodable).
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let at_limit = c.send(opamp_request(vec![0xffu8; 1024], &[])).await;
    assert_eq!(at_limit.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    for path in ["/", "/v1/opamp/", "/metrics", "/healthz", "/debug/pprof/"] {
        let reply = c.send(request(Method::POST, path, Vec::new(), &[])).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let reply = c
            .send(request(method.clone(), "/v1/opamp", Vec::new(), &[]))
            .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header("allow"), "POST");
    }
}

#[tokio::test]
async fn unknown_device_and_missing_identity_are_401_and_malformed_device_id_is_400() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let unknown = c
        .post(
            &first_message(PY_UID, 0),
            &[("x-odigos-deviceid", "00000000-0000-0000-0000-000000000000")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(
        unknown
            .message()
            .error_response
            .expect("error")
            .error_message
            .contains("unknown device id")
    );

    let malformed = c
        .post(
            &first_message(PY_UID, 0),
            &[("x-odigos-deviceid", "no/slashes")],
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    let mut anonymous = first_message(PY_UID, 0);
    anonymous
        .agent_description
        .as_mut()
        .unwrap()
        .identifying_attributes
        .retain(|kv| !kv.key.starts_with("k8s."));
    let missing = c.post(&anonymous, &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert!(t.server.agents().is_empty(), "no state created");

    let known = c
        .post(
            &first_message(PY_UID, 0),
            &[("x-odigos-deviceid", DEVICE_ID)],
        )
        .await;
    assert_eq!(known.status, StatusCode::OK);
}

#[tokio::test]
async fn transient_identity_failure_is_503_with_retry_after() {
    let t = start_with(Settings::loopback(), Arc::new(UnavailableIdentity)).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c.post(&first_message(PY_UID, 0), &[]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), "5");
    assert_eq!(reply.header("content-type"), PROTOBUF);
    let error = reply.message().error_response.expect("error_response");
    assert_eq!(error.r#type, ServerErrorResponseType::Unavailable as i32);
    assert!(error.details.is_some(), "retry_info");
    assert!(t.server.agents().is_empty());
}
