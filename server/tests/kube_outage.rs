//! Measured against a real kube-apiserver of this binary's own (the counts are the API
//! server's, so nothing else may use it, and its outage must not hit other tests):
//!
//! - the API requests an agent costs over its life, from `apiserver_request_total`: a plain
//!   heartbeat costs none;
//! - a 20 s API server outage during traffic: every poll is still answered, and afterwards
//!   every resource equals its agent's last reported state.
//!
//! The two tests take turns on the control plane.

#[path = "support/client.rs"]
mod client;
#[path = "support/kube.rs"]
mod kube_support;
#[path = "support/messages.rs"]
mod messages;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use odigos_opamp_server::store::InstanceStore;
use serde_json::json;
use tokio::sync::Mutex;
use xtask::kube::{ControlPlane, WRITE_VERBS};

use kube_support::{
    Agent, KubeServerConfig, PodSpecification, admin, count_requests, create_pod, eventually,
    health_report, instance_name, instances, node_for, start_plane_blocking, start_server,
};

const RESOURCE: &str = "instrumentationinstances";
/// Every kind the server reads or writes.
const SERVER_RESOURCES: [&str; 3] = ["instrumentationinstances", "pods", "instrumentationconfigs"];

fn plane() -> &'static Mutex<ControlPlane> {
    static PLANE: OnceLock<Result<Mutex<ControlPlane>, String>> = OnceLock::new();
    let plane = PLANE.get_or_init(|| {
        std::thread::spawn(start_plane_blocking)
            .join()
            .unwrap_or_else(|_| Err("the thread starting it panicked".into()))
            .map(Mutex::new)
    });
    match plane {
        Ok(plane) => plane,
        Err(error) => panic!("the Kubernetes control plane did not start: {error}"),
    }
}

/// The API server's counters now.
async fn metrics(plane: &ControlPlane) -> String {
    plane
        .metrics_text()
        .await
        .expect("GET /metrics of the API server")
}

fn writes(before: &str, after: &str) -> u64 {
    count_requests(after, RESOURCE, WRITE_VERBS) - count_requests(before, RESOURCE, WRITE_VERBS)
}

fn all_requests(before: &str, after: &str) -> u64 {
    SERVER_RESOURCES
        .iter()
        .map(|r| count_requests(after, r, &[]) - count_requests(before, r, &[]))
        .sum()
}

/// `odigos_opamp_store_writes_total` of the server's own /metrics, all operations.
async fn server_store_writes(server: &odigos_opamp_server::RunningServer) -> u64 {
    let text = client::get(server.admin_addr(), "/metrics").await.text();
    text.lines()
        .filter(|l| l.starts_with("odigos_opamp_store_writes_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_per_agent_over_its_life_and_none_for_heartbeats() {
    let plane = plane().lock().await;
    let namespace = plane.create_namespace("count").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(&plane).await;
    const AGENTS: u64 = 5;
    for i in 0..AGENTS {
        create_pod(
            &client,
            &namespace,
            PodSpecification::new(&format!("web-{i}"), &node),
        )
        .await;
    }
    let server = start_server(&plane, KubeServerConfig::new(&node)).await;
    let store = &server.kube.store;
    // Let the pod watch catch up with the pods, so first messages need no direct read.
    eventually(Duration::from_secs(10), "the pods in the watch", || async {
        (server.kube.pods.len() == AGENTS as usize).then_some(())
    })
    .await;

    let m0 = metrics(&plane).await;
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let mut agent = Agent::connect(&server.server, &format!("count-{i}")).await;
        let reply = agent
            .first(&namespace, &format!("web-{i}"), "app", 100)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        agents.push(agent);
    }
    store.flush().await;
    let m1 = metrics(&plane).await;
    for agent in &mut agents {
        agent.report(health_report(true, "Healthy", "")).await;
    }
    store.flush().await;
    let m2 = metrics(&plane).await;

    let stats_before = store.stats();
    let own_before = server_store_writes(&server.server).await;
    let started = Instant::now();
    for _ in 0..100 {
        for agent in &mut agents {
            let ack = agent.heartbeat().await;
            assert!(ack.remote_config.is_none() && ack.error_response.is_none());
        }
    }
    let heartbeat_time = started.elapsed();
    store.flush().await;
    // Anything late would still be counted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let m3 = metrics(&plane).await;
    let own_after = server_store_writes(&server.server).await;
    let stats_after = store.stats();

    for agent in &mut agents {
        agent
            .disconnect(Some(health_report(true, "ProcessTerminated", "")))
            .await;
    }
    store.flush().await;
    let m4 = metrics(&plane).await;

    let per_agent = |n: u64| n as f64 / AGENTS as f64;
    eprintln!(
        "API requests per agent (apiserver_request_total): first message {} writes ({} requests), \
         health change {} writes, 100 heartbeats {} writes ({} requests of any verb, {:?} for {} heartbeats), \
         healthy disconnect {} writes",
        per_agent(writes(&m0, &m1)),
        per_agent(all_requests(&m0, &m1)),
        per_agent(writes(&m1, &m2)),
        per_agent(writes(&m2, &m3)),
        per_agent(all_requests(&m2, &m3)),
        heartbeat_time,
        100 * AGENTS,
        per_agent(writes(&m3, &m4)),
    );
    assert_eq!(
        writes(&m0, &m1),
        2 * AGENTS,
        "first message: the object, then its status"
    );
    assert_eq!(
        writes(&m1, &m2),
        AGENTS,
        "a health change: one status write"
    );
    assert_eq!(writes(&m2, &m3), 0, "100 heartbeats: no write");
    assert_eq!(
        all_requests(&m2, &m3),
        0,
        "100 heartbeats: no API request at all"
    );
    assert_eq!(
        own_after, own_before,
        "the server's own store-write metric agrees"
    );
    assert_eq!(stats_after, stats_before, "and so do the store's counters");
    assert_eq!(writes(&m3, &m4), AGENTS, "a healthy disconnect: one delete");
    server.server.shutdown().await;
}

/// One agent of the outage test and what it last reported.
struct Reporter {
    agent: Agent,
    pod: String,
    pid: i64,
    /// (healthy, reason, message)
    last: (bool, String, Option<String>),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_outage_during_traffic_loses_nothing() {
    let mut plane = plane().lock().await;
    let namespace = plane.create_namespace("outage").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(&plane).await;
    const AGENTS: usize = 6;
    for i in 0..AGENTS {
        create_pod(
            &client,
            &namespace,
            PodSpecification::new(&format!("svc-{i}"), &node),
        )
        .await;
    }
    create_pod(&client, &namespace, PodSpecification::new("late", &node)).await;
    let server = start_server(&plane, KubeServerConfig::new(&node)).await;
    eventually(Duration::from_secs(10), "the pods in the watch", || async {
        (server.kube.pods.len() == AGENTS + 1).then_some(())
    })
    .await;
    let mut reporters = Vec::new();
    for i in 0..AGENTS {
        let pod = format!("svc-{i}");
        let mut agent = Agent::connect(&server.server, &format!("outage-{i}")).await;
        assert_eq!(
            agent.first(&namespace, &pod, "app", 50).await.status,
            StatusCode::OK
        );
        agent.report(health_report(true, "Healthy", "")).await;
        reporters.push(Reporter {
            agent,
            pod,
            pid: 50,
            last: (true, "Healthy".into(), None),
        });
    }
    server.kube.store.flush().await;

    plane.stop_apiserver();
    let outage = Instant::now();
    let mut polls = 0u32;
    let mut round = 0u32;
    // Traffic for 20 s: every agent polls every 100 ms and changes its health now and then.
    while outage.elapsed() < Duration::from_secs(20) {
        round += 1;
        for (i, r) in reporters.iter_mut().enumerate() {
            let started = Instant::now();
            let ack = if round.is_multiple_of(i as u32 + 3) {
                let healthy = round.is_multiple_of(2);
                let reason = if healthy { "Healthy" } else { "AgentFailure" };
                let error = if healthy {
                    String::new()
                } else {
                    format!("round {round}")
                };
                r.last = (healthy, reason.into(), (!healthy).then(|| error.clone()));
                r.agent.report(health_report(healthy, reason, &error)).await
            } else {
                r.agent.heartbeat().await
            };
            assert!(ack.error_response.is_none(), "answered from memory");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "a poll took {:?}",
                started.elapsed()
            );
            polls += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // During the outage: a new agent whose pod the watch already has is accepted; its
    // resource is written once the API server is back.
    let mut late = Agent::connect(&server.server, "outage-late").await;
    assert_eq!(
        late.first(&namespace, "late", "app", 1).await.status,
        StatusCode::OK
    );
    // A pod the server has never seen cannot be verified: 503, try later.
    let mut stranger = Agent::connect(&server.server, "outage-stranger").await;
    let reply = stranger.first(&namespace, "never-seen", "app", 1).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(!reply.header("retry-after").is_empty());
    // And the first agent leaves, healthy: its resource must go.
    let leaving = reporters.remove(0);
    let mut leaving_agent = leaving.agent;
    leaving_agent
        .disconnect(Some(health_report(true, "ProcessTerminated", "")))
        .await;
    assert!(
        server.kube.store.stats().outstanding > 0,
        "writes are waiting"
    );
    let outage_time = outage.elapsed();

    let restart = Instant::now();
    plane
        .start_apiserver()
        .await
        .expect("the API server starts again");
    let ready = restart.elapsed();
    tokio::time::timeout(Duration::from_secs(60), server.kube.store.flush())
        .await
        .expect("every write done within 60 s of the API server's return");
    let converged = restart.elapsed();

    let api = instances(&client, &namespace);
    for r in &reporters {
        let object = api
            .get(&instance_name(&r.pod, "app", r.pid))
            .await
            .expect("resource");
        let status = &object.data["status"];
        assert_eq!(
            (
                status["healthy"].clone(),
                status["reason"].clone(),
                status.get("message").cloned()
            ),
            (
                json!(r.last.0),
                json!(r.last.1),
                r.last.2.clone().map(|m| json!(m))
            ),
            "{}",
            r.pod
        );
    }
    assert!(
        api.get_opt(&instance_name("late", "app", 1))
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        api.get_opt(&instance_name(&leaving.pod, "app", 50))
            .await
            .expect("get")
            .is_none()
    );
    let stats = server.kube.store.stats();
    eprintln!(
        "outage {outage_time:?}: {polls} polls answered from memory; API server restarted and ready in {ready:?}, every write done {converged:?} after the restart began; store {stats:?}"
    );
    server.server.shutdown().await;
}
