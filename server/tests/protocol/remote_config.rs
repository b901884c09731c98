//! docs/protocol.md §4's resend rule and §5's config: compare hashes, never statuses.

use insta::assert_json_snapshot;
use odigos_opamp_proto::opamp::proto::{RemoteConfigStatus, RemoteConfigStatuses};
use odigos_opamp_server::config_source::{ContainerConfig, LibraryConfig, WorkloadConfig};
use odigos_opamp_server::identity::{ResolvedIdentity, Workload, WorkloadKind};
use odigos_opamp_server::kube::configs;
use odigos_opamp_server::protocol::remote_config::{self, CONTAINER_SECTION};
use serde_json::{Value, json};

use crate::driver::Driver;
use crate::messages::{PY_UID, first_message, heartbeat, python_poll};

/// A workload config whose container `app` (the test table's coupon container) has `entry`.
fn with_app_entry(entry: Value) -> WorkloadConfig {
    let mut config = WorkloadConfig::default();
    config.add_container(ContainerConfig::from_json(&entry).expect("an entry"));
    config
}

/// An `InstrumentationConfig` as Odigos writes it (tests/fixtures/), read as the server
/// reads it from the API server.
fn coupon_instrumentation_config() -> WorkloadConfig {
    let text = include_str!("../fixtures/instrumentationconfig-coupon.json");
    let object: odigos_opamp_server::kube::crds::InstrumentationConfig =
        serde_json::from_str(text).expect("fixture parses");
    configs::workload_config(&object)
}

fn coupon_identity(container: &str) -> ResolvedIdentity {
    ResolvedIdentity {
        namespace: "shop".into(),
        pod_name: "coupon-7d9f8b6c5d-x2x9z".into(),
        pod_uid: None,
        container: container.into(),
        workload: Workload {
            kind: WorkloadKind::Deployment,
            name: "coupon".into(),
        },
    }
}

/// The three sections with their bodies parsed, and the hash in hex.
fn sections(config: &WorkloadConfig, container: &str) -> Value {
    let built = remote_config::build("node-1", &coupon_identity(container), config);
    let map = &built.config.as_ref().expect("a config map").config_map;
    let bodies: serde_json::Map<String, Value> = map
        .iter()
        .map(|(key, file)| {
            let body: Value = serde_json::from_slice(&file.body).expect("JSON body");
            (
                key.clone(),
                json!({"contentType": file.content_type, "body": body}),
            )
        })
        .collect();
    json!({"configHash": hex::encode(&built.config_hash), "configMap": bodies})
}

#[test]
fn the_three_sections_of_a_realistic_instrumentation_config() {
    let config = coupon_instrumentation_config();
    let app = sections(&config, "app");
    // Every field of the entry reaches the agent, unknown ones included.
    let fixture: Value = serde_json::from_str(include_str!(
        "../fixtures/instrumentationconfig-coupon.json"
    ))
    .unwrap();
    assert_eq!(
        app["configMap"][CONTAINER_SECTION]["body"],
        fixture["spec"]["containers"][0]
    );
    assert_json_snapshot!("sections_realistic_app", app);
    // worker's entry has no `traces`: tracing off, in both sections.
    let worker = sections(&config, "worker");
    assert_eq!(
        worker["configMap"]["SDK"]["body"]["traceSignal"]["enabled"],
        json!(false)
    );
    assert_json_snapshot!("sections_realistic_worker_traces_off", worker);
}

#[test]
fn the_three_sections_without_an_instrumentation_config() {
    let default = sections(&WorkloadConfig::default(), "app");
    assert_eq!(
        default["configMap"][CONTAINER_SECTION]["body"],
        json!({"agentEnabled": true, "containerName": "app", "traces": {}})
    );
    assert_json_snapshot!("sections_default", default);
    // An InstrumentationConfig without an entry for the container: the same default.
    let config = coupon_instrumentation_config();
    assert_eq!(
        sections(&config, "sidecar")["configMap"][CONTAINER_SECTION]["body"],
        json!({"agentEnabled": true, "containerName": "sidecar", "traces": {}})
    );
}

#[test]
fn a_changed_container_entry_reaches_the_agent_on_its_next_poll_and_another_does_not() {
    let mut agent = Driver::new();
    agent.send(first_message(PY_UID, 0));
    let old = agent.offered_hash();
    // Another container's entry changes: not this agent's config.
    agent.config =
        with_app_entry(json!({"containerName": "app", "agentEnabled": true, "traces": {}}));
    agent.config.add_container(
        ContainerConfig::from_json(&json!({"containerName": "worker", "agentEnabled": false}))
            .unwrap(),
    );
    assert_eq!(
        agent
            .outcome(python_poll(PY_UID, 1, &old))
            .response
            .remote_config,
        None
    );
    assert_eq!(
        agent.offered_hash(),
        old,
        "an entry equal to the default hashes like it"
    );
    // This container's entry changes.
    agent.config = with_app_entry(json!({
        "containerName": "app",
        "agentEnabled": true,
        "traces": {"headSampling": {"noisyOperations": [{"id": "h", "percentageAtMost": 0}]}},
    }));
    let step = agent.send(python_poll(PY_UID, 2, &old));
    assert_ne!(agent.offered_hash(), old);
    assert_eq!(
        step["response"]["remoteConfig"]["config"]["configMap"][CONTAINER_SECTION]["body"]["traces"]
            ["headSampling"]["noisyOperations"][0]["id"],
        json!("h"),
        "{step}"
    );
}

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
        ..with_app_entry(json!({"containerName": "app", "agentEnabled": true}))
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
