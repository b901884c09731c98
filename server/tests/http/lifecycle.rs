//! The exchange end to end: first message, heartbeats, gaps, config changes, disconnect and
//! liveness expiry.

use std::time::{Duration, Instant};

use hyper::StatusCode;
use odigos_opamp_proto::opamp::proto::ServerToAgentFlags;
use odigos_opamp_server::Settings;
use odigos_opamp_server::config_source::{WorkloadConfig, WorkloadKey};
use odigos_opamp_server::identity::{Workload, WorkloadKind};
use odigos_opamp_server::protocol::InstanceKey;

use crate::client::Connection;
use crate::messages::{PY_UID, disconnect, first_message, health, heartbeat, python_poll};
use crate::server::start;

const FULL_STATE: u64 = ServerToAgentFlags::ReportFullState as u64;

fn instance_key() -> InstanceKey {
    InstanceKey::new("shop", "coupon-7d9f8b6c5d-x2x9z", "app", 4242)
}

#[tokio::test]
async fn odigos_first_message_gets_the_sdk_section_then_heartbeats_get_plain_acks() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let first = c.post(&first_message(PY_UID, 0), &[]).await.message();
    let remote = first
        .remote_config
        .expect("remote config in the first answer");
    let sdk = &remote.config.as_ref().expect("config map").config_map["SDK"];
    let sdk: serde_json::Value = serde_json::from_slice(&sdk.body).expect("SDK body is JSON");
    assert_eq!(
        sdk["remoteResourceAttributes"][0],
        serde_json::json!({"key": "k8s.node.name", "value": "test-node"})
    );
    assert_eq!(
        sdk["remoteResourceAttributes"][5],
        serde_json::json!({"key": "k8s.deployment.name", "value": "coupon"})
    );

    let mut healthy = python_poll(PY_UID, 1, &remote.config_hash);
    healthy.health = Some(health(true, "Healthy", ""));
    let ack = c.post(&healthy, &[]).await.message();
    assert_eq!(
        (
            ack.flags,
            ack.remote_config.is_none(),
            ack.error_response.is_none()
        ),
        (0, true, true)
    );
    assert_eq!(
        t.store
            .get(&instance_key())
            .expect("instance recorded")
            .status
            .reason
            .as_deref(),
        Some("Healthy")
    );
    for seq in 2..5 {
        let ack = c
            .post(&python_poll(PY_UID, seq, &remote.config_hash), &[])
            .await
            .message();
        assert_eq!(
            ack.remote_config, None,
            "seq {seq}: no resend on every poll"
        );
        assert_eq!(ack.flags, 0);
    }
}

#[tokio::test]
async fn unknown_uid_without_description_gets_report_full_state_and_no_state() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c.post(&heartbeat(PY_UID, 41), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.message().flags, FULL_STATE);
    assert!(t.server.agents().is_empty());
}

#[tokio::test]
async fn a_sequence_gap_is_answered_with_report_full_state_once() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    c.post(&first_message(PY_UID, 0), &[]).await;
    assert_eq!(c.post(&heartbeat(PY_UID, 1), &[]).await.message().flags, 0);
    assert_eq!(
        c.post(&heartbeat(PY_UID, 7), &[]).await.message().flags,
        FULL_STATE
    );
    assert_eq!(c.post(&heartbeat(PY_UID, 8), &[]).await.message().flags, 0);
    assert_eq!(
        c.post(&heartbeat(PY_UID, 8), &[]).await.message().flags,
        0,
        "duplicate tolerated"
    );
}

#[tokio::test]
async fn a_config_change_reaches_the_agent_on_its_next_poll() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let first = c.post(&first_message(PY_UID, 0), &[]).await.message();
    let old_hash = first.remote_config.expect("config").config_hash;
    assert_eq!(
        c.post(&python_poll(PY_UID, 1, &old_hash), &[])
            .await
            .message()
            .remote_config,
        None
    );

    let coupon = WorkloadKey {
        namespace: "shop".into(),
        workload: Workload {
            kind: WorkloadKind::Deployment,
            name: "coupon".into(),
        },
    };
    t.configs.set(
        coupon,
        WorkloadConfig {
            service_name: Some("coupon-svc".into()),
            ..Default::default()
        },
    );
    let changed = c
        .post(&python_poll(PY_UID, 2, &old_hash), &[])
        .await
        .message();
    let new = changed.remote_config.expect("new config on the next poll");
    assert_ne!(new.config_hash, old_hash);
    let sdk =
        String::from_utf8_lossy(&new.config.expect("map").config_map["SDK"].body).into_owned();
    assert!(
        sdk.contains(r#"{"key":"service.name","value":"coupon-svc"}"#),
        "{sdk}"
    );
    assert_eq!(
        c.post(&python_poll(PY_UID, 3, &new.config_hash), &[])
            .await
            .message()
            .remote_config,
        None
    );
}

#[tokio::test]
async fn disconnect_forgets_the_agent_and_deletes_a_healthy_instance() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    c.post(&first_message(PY_UID, 0), &[]).await;
    let mut healthy = heartbeat(PY_UID, 1);
    healthy.health = Some(health(true, "Healthy", ""));
    c.post(&healthy, &[]).await;
    assert!(t.store.get(&instance_key()).is_some());

    let reply = c.post(&disconnect(PY_UID, 2, None), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.message().instance_uid, PY_UID);
    assert!(t.server.agents().is_empty(), "forgotten");
    assert!(t.store.get(&instance_key()).is_none(), "instance deleted");
    assert_eq!(
        c.post(&heartbeat(PY_UID, 3), &[]).await.message().flags,
        FULL_STATE
    );
}

#[tokio::test]
async fn disconnect_with_unhealthy_health_keeps_the_instance() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    c.post(&first_message(PY_UID, 0), &[]).await;
    c.post(
        &disconnect(
            PY_UID,
            1,
            Some(health(false, "ProcessTerminated", "exit code 3")),
        ),
        &[],
    )
    .await;
    assert!(t.server.agents().is_empty());
    let kept = t.store.get(&instance_key()).expect("instance kept");
    assert_eq!(kept.status.reason.as_deref(), Some("ProcessTerminated"));
    assert_eq!(kept.status.message.as_deref(), Some("exit code 3"));
}

#[tokio::test]
async fn silent_agents_expire_after_the_stale_period() {
    let settings = Settings {
        heartbeat_interval: Duration::from_millis(100),
        stale_factor: 2.5,
        ..Settings::loopback()
    };
    let t = start(settings).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    c.post(&first_message(PY_UID, 0), &[]).await;
    let started = Instant::now();
    // Polling keeps it alive well past the stale period.
    for seq in 1..=8 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.post(&heartbeat(PY_UID, seq), &[]).await;
    }
    assert_eq!(
        t.server.agents().len(),
        1,
        "alive after {:?} of polling",
        started.elapsed()
    );
    assert!(t.store.get(&instance_key()).is_some());

    let silent_since = Instant::now();
    let deadline = silent_since + Duration::from_secs(5);
    while !t.server.agents().is_empty() {
        assert!(Instant::now() < deadline, "agent not expired within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expired_after = silent_since.elapsed();
    assert!(
        expired_after >= Duration::from_millis(250),
        "expired too early: {expired_after:?}"
    );
    assert!(
        t.store.get(&instance_key()).is_none(),
        "stale instance deleted"
    );
    assert_eq!(
        c.post(&heartbeat(PY_UID, 9), &[]).await.message().flags,
        FULL_STATE
    );
}

#[tokio::test]
async fn instances_of_agents_that_lost_the_server_survive_expiry() {
    let settings = Settings {
        heartbeat_interval: Duration::from_millis(50),
        ..Settings::loopback()
    };
    let t = start(settings).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    c.post(&first_message(PY_UID, 0), &[]).await;
    let mut lost = heartbeat(PY_UID, 1);
    lost.health = Some(health(
        false,
        "NoConnectionToOpAMPServer",
        "cannot reach the server",
    ));
    c.post(&lost, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.server.agents().is_empty() {
        assert!(Instant::now() < deadline, "agent not expired within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kept = t.store.get(&instance_key()).expect("instance kept");
    assert_eq!(
        kept.status.reason.as_deref(),
        Some("NoConnectionToOpAMPServer")
    );
}
