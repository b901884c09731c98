//! The admin listener: probes, Prometheus metrics, GET /agents; and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use odigos_opamp_server::Settings;
use odigos_opamp_server::identity::{Identity, IdentityFuture, IdentityRequest};

use crate::client::{Connection, get};
use crate::messages::{PY_UID, first_message, heartbeat};
use crate::server::{UnavailableIdentity, start, start_with, table_identity};

#[tokio::test]
async fn probes_answer_and_readiness_follows_the_identity_source() {
    let t = start(Settings::loopback()).await;
    assert_eq!(
        get(t.server.admin_addr(), "/healthz").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(t.server.admin_addr(), "/readyz").await.status,
        StatusCode::OK
    );
    let down = start_with(Settings::loopback(), Arc::new(UnavailableIdentity)).await;
    assert_eq!(
        get(down.server.admin_addr(), "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(down.server.admin_addr(), "/healthz").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_count_requests_agents_latency_and_store_writes() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    c.post(&first_message(PY_UID, 0), &[]).await;
    c.post(&heartbeat(PY_UID, 1), &[]).await;
    c.post(&heartbeat(b"stranger", 1), &[]).await;
    let mut anonymous = first_message(b"anonymous", 0);
    anonymous
        .agent_description
        .as_mut()
        .unwrap()
        .identifying_attributes
        .retain(|kv| !kv.key.starts_with("k8s."));
    c.post(&anonymous, &[]).await;

    let reply = get(t.server.admin_addr(), "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header("content-type")
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.header("content-type")
    );
    let text = reply.text();
    for line in [
        "odigos_opamp_requests_total{outcome=\"new_agent\"} 1",
        "odigos_opamp_requests_total{outcome=\"ack\"} 1",
        "odigos_opamp_requests_total{outcome=\"report_full_state\"} 1",
        "odigos_opamp_requests_total{outcome=\"unauthorized\"} 1",
        "odigos_opamp_connected_agents 1",
        "odigos_opamp_request_handling_seconds_count 4",
        "odigos_opamp_store_writes_total{operation=\"apply\"} 1",
        "odigos_opamp_identity_resolution_failures_total{reason=\"missing\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[tokio::test]
async fn agents_endpoint_shows_agents_and_instance_records_as_json() {
    let t = start(Settings::loopback()).await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    c.post(&first_message(PY_UID, 0), &[]).await;
    let reply = get(t.server.admin_addr(), "/agents").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/json");
    let view: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(
        view["agents"][0]["instanceUid"],
        std::str::from_utf8(PY_UID).unwrap()
    );
    assert_eq!(
        view["agents"][0]["identity"]["workload"]["kind"],
        "Deployment"
    );
    assert_eq!(
        view["instances"][0]["name"],
        "coupon-7d9f8b6c5d-x2x9z.app.4242"
    );
    assert_eq!(view["instances"][0]["status"]["reason"], "Starting");
}

/// Resolves like the table, but slowly, so a request is in flight during shutdown.
struct SlowIdentity(Arc<dyn Identity>);

impl Identity for SlowIdentity {
    fn resolve<'a>(&'a self, request: &'a IdentityRequest) -> IdentityFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            self.0.resolve(request).await
        })
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_accepting() {
    let t = start_with(
        Settings::loopback(),
        Arc::new(SlowIdentity(table_identity())),
    )
    .await;
    let addr = t.server.agent_addr();
    let mut c = Connection::tcp(addr).await;
    let in_flight = tokio::spawn(async move { c.post(&first_message(PY_UID, 0), &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(10), t.server.shutdown())
        .await
        .expect("shutdown within 10 s");
    let reply = in_flight.await.expect("request task");
    assert_eq!(reply.status, StatusCode::OK, "in-flight request finished");
    assert!(reply.message().remote_config.is_some());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

/// The README's tables of answers and of resolution failures are the code's.
#[test]
fn the_readme_lists_every_answer_and_every_failure_reason() {
    use odigos_opamp_server::identity::IdentityError;
    use odigos_opamp_server::protocol::Answer;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    // Rows of the answers table: | `label` | status | when |
    let rows: Vec<(String, u16)> = readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let label = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let status = cells.get(2)?.parse().ok()?;
            Some((label.to_owned(), status))
        })
        .collect();
    let code: Vec<(String, u16)> = Answer::ALL
        .iter()
        .map(|a| (a.label().to_owned(), a.status_code()))
        .collect();
    assert_eq!(
        rows, code,
        "README.md's answers table differs from protocol::Answer"
    );

    let failures = readme
        .lines()
        .find(|line| line.starts_with("| `identity_resolution_failures_total{reason}`"))
        .expect("the identity_resolution_failures_total row");
    let mut listed: Vec<&str> = failures.split('`').skip(3).step_by(2).collect();
    let mut reasons: Vec<&str> = IdentityError::KINDS.to_vec();
    reasons.extend(Answer::IDENTITY_REFUSALS.map(Answer::label));
    listed.sort_unstable();
    reasons.sort_unstable();
    assert_eq!(
        listed, reasons,
        "README.md's failure reasons differ from the code's"
    );
}
