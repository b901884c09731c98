//! docs/protocol.md §2 and §3: every error the core decides, with its status class and body.

use std::time::Duration;

use insta::assert_json_snapshot;
use odigos_opamp_proto::opamp::proto::ServerErrorResponseType;
use odigos_opamp_server::identity::IdentityError;
use odigos_opamp_server::protocol::{self, Answer};
use serde_json::json;

use crate::driver::{Driver, Resolver, render};
use crate::messages::{DEVICE_ID, PY_UID, first_message, heartbeat, string};

fn error_type(outcome: &protocol::Outcome) -> Option<i32> {
    outcome.response.error_response.as_ref().map(|e| e.r#type)
}

#[test]
fn undecodable_body() {
    let outcome = protocol::undecodable("failed to decode Protobuf message: invalid wire type");
    assert_eq!(outcome.answer, Answer::Undecodable);
    assert_eq!(
        error_type(&outcome),
        Some(ServerErrorResponseType::BadRequest as i32)
    );
    assert_json_snapshot!(
        "undecodable_body",
        render(json!("<bytes that are not protobuf>"), &outcome, None)
    );
}

#[test]
fn empty_instance_uid() {
    let mut agent = Driver::new();
    let step = agent.send(first_message(b"", 0));
    assert_eq!(step["httpStatus"], 400);
    assert!(agent.state.is_none());
    assert_json_snapshot!("empty_uid", step);
}

#[test]
fn uid_longer_than_64_bytes_is_rejected_and_64_is_accepted() {
    let mut agent = Driver::new();
    let step = agent.send(heartbeat(&[7u8; 65], 0));
    assert_eq!(step["httpStatus"], 400);
    assert_json_snapshot!("uid_65_bytes", step);
    let fits = agent.outcome(first_message(&[b'u'; 64], 0));
    assert_eq!(fits.answer, Answer::NewAgent);
    assert!(agent.state.is_some());
}

#[test]
fn transient_identity_failure_is_503_with_retry_info() {
    let mut agent = Driver::new();
    agent.resolver = Resolver::Fail(IdentityError::Unavailable {
        reason: "kubelet PodResources unreachable".into(),
        retry_after: Duration::from_millis(2500),
    });
    let step = agent.send(first_message(PY_UID, 0));
    assert_eq!(
        (
            &step["answer"],
            &step["httpStatus"],
            &step["retryAfterSecs"]
        ),
        (&json!("unavailable"), &json!(503), &json!(3))
    );
    assert!(agent.state.is_none());
    assert_json_snapshot!("identity_unavailable", step);
}

#[test]
fn missing_identity_is_401() {
    let mut agent = Driver::new();
    let mut msg = first_message(PY_UID, 0);
    msg.agent_description
        .as_mut()
        .unwrap()
        .identifying_attributes
        .retain(|kv| !kv.key.starts_with("k8s."));
    let step = agent.send(msg);
    assert_eq!(
        (&step["answer"], &step["httpStatus"]),
        (&json!("unauthorized"), &json!(401))
    );
    assert!(agent.state.is_none());
    assert_json_snapshot!("identity_missing", step);
}

#[test]
fn malformed_device_id_is_400() {
    let mut agent = Driver::new();
    agent.device_id = Some("not a device id!".into());
    let step = agent.send(first_message(PY_UID, 0));
    assert_eq!(step["httpStatus"], 400);
    assert_json_snapshot!("identity_malformed_device_id", step);
}

#[test]
fn unknown_device_id_is_401() {
    let mut agent = Driver::new();
    agent.device_id = Some(DEVICE_ID.replace('8', "9"));
    let step = agent.send(first_message(PY_UID, 0));
    assert_eq!(
        (&step["answer"], &step["httpStatus"]),
        (&json!("unauthorized"), &json!(401))
    );
    assert!(agent.state.is_none());
    assert_json_snapshot!("identity_unknown_device", step);
}

#[test]
fn self_reported_identity_not_in_the_table_is_401() {
    let mut agent = Driver::new();
    let mut msg = first_message(PY_UID, 0);
    let attrs = &mut msg
        .agent_description
        .as_mut()
        .unwrap()
        .identifying_attributes;
    attrs.retain(|kv| kv.key != "k8s.pod.name");
    attrs.push(string("k8s.pod.name", "intruder"));
    let step = agent.send(msg);
    assert_eq!(
        (&step["answer"], &step["httpStatus"]),
        (&json!("unauthorized"), &json!(401))
    );
    assert_json_snapshot!("identity_unverified", step);
}

#[test]
fn new_agent_without_pid_or_language_is_400() {
    let mut agent = Driver::new();
    let mut no_pid = first_message(PY_UID, 0);
    no_pid
        .agent_description
        .as_mut()
        .unwrap()
        .identifying_attributes
        .retain(|kv| kv.key != "process.pid");
    let mut no_language = first_message(PY_UID, 0);
    no_language
        .agent_description
        .as_mut()
        .unwrap()
        .identifying_attributes
        .retain(|kv| kv.key != "telemetry.sdk.language");
    let steps = vec![agent.send(no_pid), agent.send(no_language)];
    assert!(agent.state.is_none());
    assert_json_snapshot!("new_agent_missing_pid_or_language", steps);
}
