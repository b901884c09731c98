//! docs/protocol.md §4: unknown agents, new agents, sequence numbers, plain acknowledgements.

use insta::assert_json_snapshot;
use odigos_opamp_proto::opamp::proto::{AgentCapabilities, ServerToAgentFlags};
use odigos_opamp_server::protocol::{Answer, Effect, SERVER_CAPABILITIES};

use crate::driver::Driver;
use crate::messages::{BIN_UID, DEVICE_ID, PY_UID, first_message, heartbeat};

const FULL_STATE: u64 = ServerToAgentFlags::ReportFullState as u64;

#[test]
fn unknown_uid_without_description_is_asked_for_full_state_and_gets_no_state() {
    let mut agent = Driver::new();
    let step = agent.send(heartbeat(PY_UID, 17));
    assert!(agent.state.is_none());
    assert_json_snapshot!("unknown_uid_without_description", step);
}

#[test]
fn unknown_uid_with_description_gets_state_and_the_full_remote_config() {
    let mut agent = Driver::new();
    let step = agent.send(first_message(PY_UID, 0));
    let state = agent.state.as_ref().expect("state created");
    assert_eq!(state.identity.workload.name, "coupon");
    assert_json_snapshot!("new_agent_self_reported", step);
}

#[test]
fn new_agent_by_device_id_header() {
    let mut agent = Driver::new();
    agent.device_id = Some(DEVICE_ID.into());
    let mut msg = first_message(&BIN_UID, 0);
    // The header wins: the self-reported attributes are not consulted.
    msg.agent_description
        .as_mut()
        .unwrap()
        .identifying_attributes
        .retain(|kv| !kv.key.starts_with("k8s."));
    let step = agent.send(msg);
    assert!(agent.state.is_some());
    assert_json_snapshot!("new_agent_device_id", step);
}

#[test]
fn agents_reporting_heartbeats_are_told_the_interval_in_the_first_response_only() {
    let mut agent = Driver::new();
    let mut first = first_message(&BIN_UID, 0);
    first.capabilities |= AgentCapabilities::ReportsHeartbeat as u64;
    let outcome = agent.outcome(first);
    let settings = outcome
        .response
        .connection_settings
        .expect("connection settings offered");
    assert_eq!(
        settings
            .opamp
            .expect("opamp settings")
            .heartbeat_interval_seconds,
        30
    );
    let mut beat = heartbeat(&BIN_UID, 1);
    beat.capabilities |= AgentCapabilities::ReportsHeartbeat as u64;
    assert_eq!(agent.outcome(beat).response.connection_settings, None);
}

#[test]
fn agents_without_heartbeat_capability_get_no_connection_settings() {
    let mut agent = Driver::new();
    assert_eq!(
        agent
            .outcome(first_message(PY_UID, 0))
            .response
            .connection_settings,
        None
    );
}

#[test]
fn heartbeats_get_plain_acknowledgements() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let outcome = agent.outcome(heartbeat(PY_UID, 1));
    assert_eq!(outcome.answer, Answer::Ack);
    assert_eq!(outcome.response.instance_uid, PY_UID);
    assert_eq!(outcome.response.capabilities, SERVER_CAPABILITIES);
    assert_eq!(outcome.response.flags, 0);
    assert_eq!(outcome.response.remote_config, None);
    assert!(
        outcome.effects.is_empty(),
        "no store write on a plain heartbeat"
    );
    let step = agent.send(heartbeat(PY_UID, 2));
    assert_json_snapshot!("plain_ack", step);
}

#[test]
fn a_sequence_gap_asks_for_full_state_once() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    agent.send(heartbeat(PY_UID, 1));
    let steps = vec![
        agent.send(heartbeat(PY_UID, 5)), // gap: 2..4 missing
        agent.send(heartbeat(PY_UID, 6)), // in order again: no flag
    ];
    // proto3 JSON renders uint64 as a string.
    assert_eq!(steps[0]["response"]["flags"], FULL_STATE.to_string());
    assert!(steps[1]["response"].get("flags").is_none());
    assert_json_snapshot!("sequence_gap_once", steps);
}

#[test]
fn duplicates_are_tolerated_and_the_first_number_is_not_assumed() {
    // The Node agent and the Elastic client start at 1.
    let mut agent = Driver::new();
    agent.send(first_message(&BIN_UID, 1));
    let duplicate = agent.outcome(heartbeat(&BIN_UID, 1));
    assert_eq!(duplicate.response.flags, 0, "a duplicate is not a gap");
    let next = agent.outcome(heartbeat(&BIN_UID, 2));
    assert_eq!(next.response.flags, 0);
    let backwards = agent.outcome(heartbeat(&BIN_UID, 0));
    assert_eq!(
        backwards.response.flags, FULL_STATE,
        "going backwards is a gap"
    );
    assert_eq!(agent.outcome(heartbeat(&BIN_UID, 1)).response.flags, 0);
}

#[test]
fn the_first_response_writes_the_instance_record() {
    let mut agent = Driver::new();
    let outcome = agent.outcome(first_message(PY_UID, 0));
    match outcome.effects.as_slice() {
        [Effect::WriteInstance(record)] => {
            assert_eq!(record.name, "coupon-7d9f8b6c5d-x2x9z.app.4242");
            assert_eq!(record.instrumented_app, "deployment-coupon");
            assert_eq!(record.status.reason.as_deref(), Some("Starting"));
        }
        other => panic!("expected one instance write, got {other:?}"),
    }
}
