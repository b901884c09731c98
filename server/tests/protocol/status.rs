//! Status compression, instance writes on change, disconnect and liveness expiry.

use insta::assert_json_snapshot;
use odigos_opamp_proto::opamp::proto::ComponentHealth;
use odigos_opamp_server::protocol::{self, Answer, Effect};

use crate::driver::Driver;
use crate::messages::{PY_UID, disconnect, first_message, health, heartbeat, string};

#[test]
fn omitted_sub_messages_never_erase_stored_state() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let mut healthy = heartbeat(PY_UID, 1);
    healthy.health = Some(health(true, "Healthy", ""));
    agent.send(healthy);
    let before = agent.state.clone().expect("state");
    agent.send(heartbeat(PY_UID, 2));
    let after = agent.state.as_ref().expect("state");
    assert_eq!(after.description, before.description);
    assert_eq!(after.health, before.health);
    assert_eq!(after.capabilities, before.capabilities);
    assert_eq!(after.last_sequence_num, 2);
}

#[test]
fn instance_writes_happen_on_health_or_description_change_only() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let mut healthy = heartbeat(PY_UID, 1);
    healthy.health = Some(health(true, "Healthy", ""));
    let step = agent.send(healthy.clone());
    assert_eq!(step["effects"].as_array().map(Vec::len), Some(1));
    assert_json_snapshot!("health_change_writes_instance", step);

    healthy.sequence_num = 2;
    assert!(
        agent.outcome(healthy).effects.is_empty(),
        "same health again: no write"
    );
    assert!(
        agent.outcome(heartbeat(PY_UID, 3)).effects.is_empty(),
        "heartbeat: no write"
    );

    let mut described = first_message(PY_UID, 4);
    described.health = None;
    assert!(
        agent.outcome(described.clone()).effects.is_empty(),
        "same description: no write"
    );
    described.sequence_num = 5;
    let attrs = &mut described
        .agent_description
        .as_mut()
        .unwrap()
        .non_identifying_attributes;
    attrs.push(string("os.type", "linux"));
    assert_eq!(
        agent.outcome(described).effects.len(),
        1,
        "changed description: write"
    );
}

#[test]
fn component_health_becomes_sorted_components() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let mut report = heartbeat(PY_UID, 1);
    let mut top = health(true, "Healthy", "");
    top.component_health_map.insert(
        "redis".into(),
        ComponentHealth {
            healthy: false,
            status: "client library too old".into(),
            ..Default::default()
        },
    );
    top.component_health_map.insert(
        "flask".into(),
        ComponentHealth {
            healthy: true,
            status: r#"{"version":"3.0.2","patched":true}"#.into(),
            ..Default::default()
        },
    );
    report.health = Some(top);
    let step = agent.send(report);
    assert_json_snapshot!("component_health", step["effects"]);
}

#[test]
fn disconnect_with_healthy_or_absent_health_deletes_and_forgets() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let mut healthy = heartbeat(PY_UID, 1);
    healthy.health = Some(health(true, "Healthy", ""));
    agent.send(healthy);
    let step = agent.send(disconnect(PY_UID, 2, None));
    assert!(agent.state.is_none(), "forgotten");
    assert_json_snapshot!("disconnect_healthy", step);
    // After forgetting, the uid is unknown again.
    let again = agent.outcome(heartbeat(PY_UID, 3));
    assert_eq!(again.answer, Answer::ReportFullState);

    // An agent that never reported health: deleted too.
    let mut silent = first_message(PY_UID, 0);
    silent.health = None;
    agent.send(silent);
    let outcome = agent.outcome(disconnect(PY_UID, 1, None));
    assert!(outcome.forget);
    assert!(
        matches!(outcome.effects.as_slice(), [Effect::DeleteInstance(_)]),
        "{:?}",
        outcome.effects
    );
}

#[test]
fn disconnect_with_unhealthy_health_keeps_the_resource_with_that_health() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let step = agent.send(disconnect(
        PY_UID,
        1,
        Some(health(
            false,
            "ProcessTerminated",
            "process exited with code 1",
        )),
    ));
    assert!(agent.state.is_none());
    assert_json_snapshot!("disconnect_unhealthy", step);
}

#[test]
fn disconnect_from_an_unknown_agent_is_acknowledged() {
    let mut agent = Driver::new();
    let outcome = agent.outcome(disconnect(PY_UID, 9, None));
    assert_eq!(outcome.answer, Answer::DisconnectUnknown);
    assert!(outcome.effects.is_empty());
    assert_eq!(outcome.response.instance_uid, PY_UID);
}

#[test]
fn stale_agents_are_deleted_unless_they_lost_the_server() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let state = agent.state.clone().expect("state");
    let deleted = protocol::expire(&state);
    assert!(matches!(deleted.as_slice(), [Effect::DeleteInstance(key)] if key.pid == 4242));
    assert_json_snapshot!("expire_deletes", deleted);

    let mut lost = heartbeat(PY_UID, 1);
    lost.health = Some(health(
        false,
        "NoConnectionToOpAMPServer",
        "server unreachable",
    ));
    agent.send(lost);
    let kept = protocol::expire(agent.state.as_ref().expect("state"));
    assert!(kept.is_empty(), "resource kept: {kept:?}");
}
