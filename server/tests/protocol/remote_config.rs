//! PROTOCOL.md §4's resend rule and §5's config: compare hashes, never statuses.

use insta::assert_json_snapshot;
use odigos_opamp_proto::opamp::proto::{RemoteConfigStatus, RemoteConfigStatuses};
use odigos_opamp_server::config_source::{LibraryConfig, WorkloadConfig};

use crate::driver::Driver;
use crate::messages::{PY_UID, first_message, heartbeat, python_poll};

fn status(hash: &[u8], status: RemoteConfigStatuses) -> Option<RemoteConfigStatus> {
    Some(RemoteConfigStatus {
        last_remote_config_hash: hash.to_vec(),
        status: status as i32,
        error_message: String::new(),
    })
}

#[test]
fn python_polls_with_the_current_hash_get_no_config_even_with_status_unset() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let hash = agent.offered_hash();
    let steps = vec![
        agent.send(python_poll(PY_UID, 1, &hash)),
        agent.send(python_poll(PY_UID, 2, &hash)),
    ];
    assert!(
        steps
            .iter()
            .all(|s| s["response"].get("remoteConfig").is_none())
    );
    assert_json_snapshot!("python_poll_current_hash", steps);
}

#[test]
fn a_different_reported_hash_gets_the_config_again() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let step = agent.send(python_poll(PY_UID, 1, b"stale-hash"));
    assert!(step["response"].get("remoteConfig").is_some());
    assert_json_snapshot!("reported_hash_differs", step);
}

#[test]
fn an_omitted_status_keeps_the_last_reported_hash() {
    // Third-party clients omit an unchanged remote_config_status: resending on every poll
    // would be a bug.
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let hash = agent.offered_hash();
    agent.send(python_poll(PY_UID, 1, &hash));
    for seq in 2..5 {
        assert_eq!(
            agent.outcome(heartbeat(PY_UID, seq)).response.remote_config,
            None,
            "seq {seq}"
        );
    }
    // And an old hash reported once keeps counting until the agent reports the new one.
    agent.send(python_poll(PY_UID, 5, b"old"));
    assert!(
        agent
            .outcome(heartbeat(PY_UID, 6))
            .response
            .remote_config
            .is_some()
    );
    agent.send(python_poll(PY_UID, 7, &hash));
    assert_eq!(
        agent.outcome(heartbeat(PY_UID, 8)).response.remote_config,
        None
    );
}

#[test]
fn an_agent_that_never_reports_gets_the_config_only_when_it_changes() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let steps = vec![
        agent.send(heartbeat(PY_UID, 1)),
        {
            agent.config = WorkloadConfig {
                service_name: Some("coupon-svc".into()),
                ..Default::default()
            };
            agent.send(heartbeat(PY_UID, 2))
        },
        agent.send(heartbeat(PY_UID, 3)),
    ];
    assert!(steps[0]["response"].get("remoteConfig").is_none());
    assert!(steps[1]["response"].get("remoteConfig").is_some());
    assert!(steps[2]["response"].get("remoteConfig").is_none());
    assert_json_snapshot!("never_reports_config_changes", steps);
}

#[test]
fn a_config_change_reaches_a_reporting_agent_on_its_next_poll() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let old = agent.offered_hash();
    agent.send(python_poll(PY_UID, 1, &old));
    agent.config = WorkloadConfig {
        service_name: None,
        libraries: vec![LibraryConfig {
            name: "flask".into(),
            traces_enabled: Some(false),
        }],
        trace_signal_enabled: false,
    };
    let step = agent.send(python_poll(PY_UID, 2, &old));
    let new = agent.offered_hash();
    assert_ne!(old, new);
    assert_json_snapshot!("config_change_next_poll", step);
    assert_eq!(
        agent
            .outcome(python_poll(PY_UID, 3, &new))
            .response
            .remote_config,
        None
    );
}

#[test]
fn a_failed_report_of_the_current_hash_does_not_loop() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let hash = agent.offered_hash();
    let mut failed = heartbeat(PY_UID, 1);
    failed.remote_config_status = status(&hash, RemoteConfigStatuses::Failed);
    assert_eq!(agent.outcome(failed).response.remote_config, None);
    assert_eq!(
        agent.outcome(heartbeat(PY_UID, 2)).response.remote_config,
        None
    );
    // A non-conforming FAILED with another hash, after we sent the current config: no loop.
    let mut odd = heartbeat(PY_UID, 3);
    odd.remote_config_status = status(b"whatever", RemoteConfigStatuses::Failed);
    assert_eq!(agent.outcome(odd).response.remote_config, None);
    assert_eq!(
        agent.outcome(heartbeat(PY_UID, 4)).response.remote_config,
        None
    );
}

#[test]
fn applied_status_with_the_current_hash_is_acknowledged() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let hash = agent.offered_hash();
    let mut applied = heartbeat(PY_UID, 1);
    applied.remote_config_status = status(&hash, RemoteConfigStatuses::Applied);
    assert_eq!(agent.outcome(applied).response.remote_config, None);
}
