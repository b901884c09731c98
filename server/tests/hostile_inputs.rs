//! Hostile input over real sockets (issue 8, part 2). Each case asserts the documented
//! status (SECURITY.md), and that a normal agent is still served afterwards.

#[path = "support/client.rs"]
mod client;
#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/messages.rs"]
mod messages;
#[path = "support/server.rs"]
mod server;

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerErrorResponseType};
use odigos_opamp_server::Settings;
use odigos_opamp_server::identity::{DeviceTable, Identity, StaticTableIdentity};
use odigos_opamp_server::protocol::InstanceKey;
use odigos_opamp_server::store::InstanceStore;

use client::Connection;
use hostile::normal_agent_is_served;
use messages::{disconnect, first_message, health, heartbeat, int, python_description};
use server::TestServer;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Two pods with device ids, victim and attacker; other pods self-reported (trusted, so
/// the normal agents of each case get in).
const TABLE: &str = "
- {deviceId: dev-victim, namespace: shop, pod: victim-pod, container: app, workloadKind: Deployment, workloadName: victim}
- {deviceId: dev-attacker, namespace: shop, pod: attacker-pod, container: app, workloadKind: Deployment, workloadName: attacker}
";

fn identity() -> Arc<dyn Identity> {
    let table = DeviceTable::from_yaml(TABLE).expect("table");
    Arc::new(StaticTableIdentity::new(table).trust_self_reported(true))
}

async fn start() -> TestServer {
    let settings = Settings {
        header_read_timeout: HEADER_READ_TIMEOUT,
        request_timeout: REQUEST_TIMEOUT,
        ..Settings::loopback()
    };
    server::start_with(settings, identity()).await
}

#[tokio::test]
async fn truncated_garbage_and_wrong_wire_types_are_400() {
    let t = start().await;
    hostile::malformed_bodies(t.server.agent_addr()).await;
    client::expect_counted(t.server.admin_addr(), "undecodable").await;
    normal_agent_is_served(t.server.agent_addr(), 1).await;
}

#[tokio::test]
async fn a_64_mib_body_is_413() {
    let t = start().await;
    hostile::huge_body(t.server.agent_addr()).await;
    normal_agent_is_served(t.server.agent_addr(), 2).await;
}

#[tokio::test]
async fn a_gzip_bomb_inflating_to_1_gib_is_413() {
    let t = start().await;
    hostile::gzip_bomb_is_refused(t.server.agent_addr()).await;
    normal_agent_is_served(t.server.agent_addr(), 3).await;
}

#[tokio::test]
async fn a_64_kib_request_head_is_431() {
    let t = start().await;
    hostile::oversized_head(t.server.agent_addr()).await;
    client::expect_counted(t.server.admin_addr(), "headers_too_large").await;
    normal_agent_is_served(t.server.agent_addr(), 13).await;
}

#[tokio::test]
async fn slowloris_headers_are_ended_by_the_header_read_timeout() {
    let t = start().await;
    hostile::slowloris_headers(t.server.agent_addr(), HEADER_READ_TIMEOUT).await;
    normal_agent_is_served(t.server.agent_addr(), 4).await;
}

#[tokio::test]
async fn a_trickled_body_is_408_after_the_request_timeout() {
    let t = start().await;
    hostile::slow_body(t.server.agent_addr(), REQUEST_TIMEOUT).await;
    client::expect_counted(t.server.admin_addr(), "request_timeout").await;
    normal_agent_is_served(t.server.agent_addr(), 5).await;
}

#[tokio::test]
async fn ten_thousand_attributes_or_a_1_mib_value_are_400_and_nothing_is_kept() {
    let t = start().await;
    hostile::oversized_descriptions(t.server.agent_addr()).await;
    let agents = t.server.agents();
    assert_eq!(agents.len(), 1, "only the agent that registered small");
    assert!(
        agents[0].description.decode().identifying_attributes.len() < 20,
        "its later oversized description was not merged"
    );
    normal_agent_is_served(t.server.agent_addr(), 6).await;
}

#[tokio::test]
async fn invalid_utf8_in_string_fields_is_400() {
    let t = start().await;
    hostile::invalid_utf8(t.server.agent_addr()).await;
    assert!(t.server.agents().is_empty());
    normal_agent_is_served(t.server.agent_addr(), 7).await;
}

#[tokio::test]
async fn uids_of_0_17_65_bytes_and_1_mib() {
    let t = start().await;
    hostile::uid_lengths(t.server.agent_addr()).await;
    let uids: Vec<usize> = t
        .server
        .agents()
        .iter()
        .map(|a| a.instance_uid.len())
        .collect();
    assert_eq!(uids, vec![17], "only the 17-byte uid is an agent");
    normal_agent_is_served(t.server.agent_addr(), 8).await;
}

#[tokio::test]
async fn a_thousand_concurrent_new_agents_are_all_served() {
    hostile::raise_fd_limit();
    let t = start().await;
    hostile::many_concurrent_agents(t.server.agent_addr(), 1000).await;
    assert_eq!(t.server.agents().len(), 1000);
    assert_eq!(t.store.records().len(), 1000, "one resource per agent");
    normal_agent_is_served(t.server.agent_addr(), 9).await;
}

// ---- identity: one agent must not act on another's state or resource ----

const VICTIM: &[u8] = b"0192f1e4-7c3a-7b8e-9d2f-00000000v1c7";

fn victim_key() -> InstanceKey {
    InstanceKey::new("shop", "victim-pod", "app", 4242)
}

/// A first message claiming `pod` (container `app`, pid `pid`).
fn claim(uid: &[u8], pod: &str, pid: i64) -> AgentToServer {
    let mut description = python_description(uid, pod, "app");
    description
        .identifying_attributes
        .retain(|kv| kv.key != "process.pid");
    description
        .identifying_attributes
        .push(int("process.pid", pid));
    AgentToServer {
        agent_description: Some(description),
        health: Some(health(false, "AgentFailure", "injected by another pod")),
        ..first_message(uid, 0)
    }
}

async fn register_victim(t: &TestServer) -> Connection {
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let reply = c
        .post(
            &claim(VICTIM, "victim-pod", 4242),
            &[("x-odigos-deviceid", "dev-victim")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let healthy = AgentToServer {
        health: Some(health(true, "Healthy", "")),
        ..heartbeat(VICTIM, 1)
    };
    let reply = c
        .post(&healthy, &[("x-odigos-deviceid", "dev-victim")])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    c
}

fn assert_conflict(reply: &client::Reply, uid: &[u8]) {
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
    let msg = reply.message();
    assert_eq!(msg.instance_uid, uid);
    let error = msg.error_response.expect("error_response");
    assert_eq!(error.r#type, ServerErrorResponseType::BadRequest as i32);
}

#[tokio::test]
async fn the_same_uid_from_another_device_is_409_and_changes_nothing() {
    let t = start().await;
    let mut victim = register_victim(&t).await;
    let state_before = t.server.agents();
    let record_before = t.store.get(&victim_key()).expect("victim's resource");

    let mut attacker = Connection::tcp(t.server.agent_addr()).await;
    // A first message with the victim's uid from the attacker's device.
    let takeover = claim(VICTIM, "attacker-pod", 4242);
    let reply = attacker
        .post(&takeover, &[("x-odigos-deviceid", "dev-attacker")])
        .await;
    assert_conflict(&reply, VICTIM);
    // Without any device id, with a health change and a sequence gap.
    let unhealthy = AgentToServer {
        health: Some(health(false, "AgentFailure", "spoofed")),
        ..heartbeat(VICTIM, 99)
    };
    assert_conflict(&attacker.post(&unhealthy, &[]).await, VICTIM);
    // A disconnect, which would delete the victim's resource.
    let bye = disconnect(VICTIM, 2, Some(health(true, "ProcessTerminated", "")));
    assert_conflict(
        &attacker
            .post(&bye, &[("x-odigos-deviceid", "dev-attacker")])
            .await,
        VICTIM,
    );

    assert_eq!(t.server.agents(), state_before, "victim's state untouched");
    assert_eq!(t.store.get(&victim_key()), Some(record_before));
    // The victim goes on with the next number: no gap, so no one moved its sequence.
    let reply = victim
        .post(
            &heartbeat(VICTIM, 2),
            &[("x-odigos-deviceid", "dev-victim")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.message().flags, 0);
    normal_agent_is_served(t.server.agent_addr(), 10).await;
}

#[tokio::test]
async fn another_pods_device_id_or_pod_name_leaves_the_victims_resource_alone() {
    let t = start().await;
    let _victim = register_victim(&t).await;
    let record_before = t.store.get(&victim_key()).expect("victim's resource");
    let mut attacker = Connection::tcp(t.server.agent_addr()).await;

    // Its own device id, the victim's pod name in its attributes: the device id wins.
    let reply = attacker
        .post(
            &claim(b"attacker-1", "victim-pod", 4242),
            &[("x-odigos-deviceid", "dev-attacker")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let sdk = reply
        .message()
        .remote_config
        .expect("config")
        .config
        .expect("map");
    let sdk = String::from_utf8_lossy(&sdk.config_map["SDK"].body).into_owned();
    assert!(sdk.contains(r#""value":"attacker-pod""#), "{sdk}");
    assert!(!sdk.contains("victim-pod"), "{sdk}");

    // The victim's pod name and pid, self-reported, from a connection that cannot be told
    // apart (embedded mode has no pod IPs): served (it may be the victim's process after
    // an exec), but the resource stays the live victim's; its disconnect deletes nothing.
    let reply = attacker
        .post(&claim(b"attacker-2", "victim-pod", 4242), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let unhealthy = AgentToServer {
        health: Some(health(false, "AgentFailure", "spoofed")),
        ..heartbeat(b"attacker-2", 1)
    };
    assert_eq!(attacker.post(&unhealthy, &[]).await.status, StatusCode::OK);
    let bye = disconnect(
        b"attacker-2",
        2,
        Some(health(true, "ProcessTerminated", "")),
    );
    assert_eq!(attacker.post(&bye, &[]).await.status, StatusCode::OK);
    // The victim's pod name with another pid is another process of that pod: its own
    // resource, and its disconnect deletes only that one.
    let reply = attacker
        .post(&claim(b"attacker-4", "victim-pod", 77), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let bye = disconnect(
        b"attacker-4",
        1,
        Some(health(true, "ProcessTerminated", "")),
    );
    assert_eq!(attacker.post(&bye, &[]).await.status, StatusCode::OK);

    assert_eq!(
        t.store.get(&victim_key()),
        Some(record_before),
        "victim's resource untouched"
    );
    let victims: Vec<_> = t
        .server
        .agents()
        .into_iter()
        .filter(|a| a.identity.pod_name == "victim-pod")
        .map(|a| a.instance_uid)
        .collect();
    assert_eq!(victims, vec![VICTIM.to_vec()]);
    normal_agent_is_served(t.server.agent_addr(), 11).await;
}

#[tokio::test]
async fn a_new_uid_for_a_live_process_is_served_at_once_and_takes_the_resource_when_the_holder_goes()
 {
    let interval = Duration::from_millis(500);
    let t = server::start_with(
        Settings {
            heartbeat_interval: interval,
            stale_factor: 2.0,
            ..Settings::loopback()
        },
        identity(),
    )
    .await;
    let key = InstanceKey::new("shop", "restarts", "app", 1);
    let status_of = |t: &TestServer| t.store.get(&key).and_then(|r| r.status.message);
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let old = c.post(&claim(b"before-exec", "restarts", 1), &[]).await;
    assert_eq!(old.status, StatusCode::OK);
    // The same container's process after an exec: the same pid, a new uid, while the old
    // agent still counts as live. Served at once, with its config.
    let mut after = claim(b"after-exec", "restarts", 1);
    after.health = Some(health(true, "Healthy", "after the exec"));
    let early = c.post(&after, &[]).await;
    assert_eq!(early.status, StatusCode::OK, "{}", early.text());
    assert!(early.message().remote_config.is_some());
    // Unproven (no device id, no pod IP in embedded mode), it waits: the resource is still
    // the old agent's while that one is live.
    assert_eq!(status_of(&t).as_deref(), Some("injected by another pod"));
    // The old agent goes stale: the new one takes the resource over.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status_of(&t).as_deref() != Some("after the exec") {
        assert!(
            std::time::Instant::now() < deadline,
            "never handed over: {:?}",
            status_of(&t)
        );
        let beat = c.post(&heartbeat(b"after-exec", 1), &[]).await;
        assert_eq!(beat.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let uids: Vec<Vec<u8>> = t
        .server
        .agents()
        .into_iter()
        .map(|a| a.instance_uid)
        .collect();
    assert_eq!(uids, vec![b"after-exec".to_vec()]);
    let records = t
        .store
        .records()
        .into_iter()
        .filter(|r| r.key == key)
        .count();
    assert_eq!(records, 1, "one resource for the process");
}

#[tokio::test]
async fn a_new_uid_with_the_holders_device_id_replaces_it_at_once() {
    let t = start().await;
    let _victim = register_victim(&t).await;
    // A 2025 agent re-executed: the same device, the same pid, a new uid.
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    let mut after = claim(b"victim-after-exec", "victim-pod", 4242);
    after.health = Some(health(true, "Healthy", "after the exec"));
    let reply = c.post(&after, &[("x-odigos-deviceid", "dev-victim")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let uids: Vec<Vec<u8>> = t
        .server
        .agents()
        .into_iter()
        .filter(|a| a.identity.pod_name == "victim-pod")
        .map(|a| a.instance_uid)
        .collect();
    assert_eq!(
        uids,
        vec![b"victim-after-exec".to_vec()],
        "the old uid is forgotten"
    );
    let record = t.store.get(&victim_key()).expect("the resource, reused");
    assert_eq!(record.status.message.as_deref(), Some("after the exec"));
}
