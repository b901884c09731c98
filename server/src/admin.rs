//! The admin listener: probes, metrics and a JSON view of the agents. Never on the agent port.
//!
//! What each path shows, to whoever reaches the port (see SECURITY.md): `/healthz` and
//! `/readyz` a word (and the mode); `/metrics` counts; `/agents`, by default, who each agent
//! is (pod, container, workload, pid), its health, its config hash and its resource's name,
//! with a short digest of its uid instead of the uid. An agent's uid is what lets a client
//! speak for it, so the raw uids, and everything agents reported (their attributes carry the
//! uid too), are shown only with `--admin-show-credentials`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use sha2::{Digest, Sha256};

use crate::exchange::Exchange;
use crate::identity::Workload;
use crate::metrics;
use crate::protocol::{AgentState, InstanceKey, InstanceRecord, instance::instance_key};
use crate::settings::Mode;
use crate::transport::text_response;

/// What the admin handlers read.
pub(crate) struct AdminState {
    pub exchange: Arc<Exchange>,
    /// Set when shutdown starts, so `/readyz` fails and load balancers stop sending.
    pub shutting_down: Arc<AtomicBool>,
    pub mode: Mode,
    /// `/agents` shows raw uids and everything agents reported.
    pub shows_credentials: bool,
}

/// `GET /agents`: the agents in memory and the instance records the store holds; whole
/// ([`AgentState`], [`InstanceRecord`]) with `--admin-show-credentials`, else as
/// [`AgentSummary`] and [`InstanceSummary`].
#[derive(Serialize)]
pub(crate) struct AgentsView<A, I> {
    pub mode: Mode,
    pub agents: Vec<A>,
    pub instances: Vec<I>,
}

/// One agent, without its uid or what it reported.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AgentSummary {
    /// The first 8 hex digits of the SHA-256 of the uid: tells agents apart in logs and
    /// here, and cannot be used to speak for one.
    pub uid_digest: String,
    /// Namespace, pod, container and pid: the process, as its resource names it.
    #[serde(flatten)]
    pub process: InstanceKey,
    pub workload: Workload,
    pub language: String,
    pub last_sequence_num: u64,
    pub last_message: String,
    pub healthy: Option<bool>,
    pub status: Option<String>,
    pub config_hash: String,
    /// The `InstrumentationInstance` that records it.
    pub resource: String,
}

/// One instance record, without the agent's attributes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstanceSummary {
    #[serde(flatten)]
    pub process: InstanceKey,
    pub name: String,
    pub healthy: Option<bool>,
    pub reason: Option<String>,
}

impl AgentSummary {
    fn of(state: &AgentState) -> Self {
        let identity = &state.identity;
        let health = state.health.as_ref();
        let process = instance_key(state);
        AgentSummary {
            uid_digest: uid_digest(&state.instance_uid),
            resource: process.resource_name(),
            process,
            workload: identity.workload.clone(),
            language: state.language.clone(),
            last_sequence_num: state.last_sequence_num,
            last_message: humantime::format_rfc3339_millis(state.last_message_time).to_string(),
            healthy: health.map(|h| h.healthy),
            status: health.map(|h| h.status.clone()),
            config_hash: hex::encode(&state.offered.hash),
        }
    }
}

impl InstanceSummary {
    fn of(record: &InstanceRecord) -> Self {
        InstanceSummary {
            process: record.key.clone(),
            name: record.name.clone(),
            healthy: record.status.healthy,
            reason: record.status.reason.clone(),
        }
    }
}

/// A short digest of a uid, safe to show.
pub(crate) fn uid_digest(uid: &[u8]) -> String {
    hex::encode(&Sha256::digest(uid)[..4])
}

/// `/healthz`, `/readyz`, `/metrics`, `/agents`.
pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/agents", get(agents))
        .with_state(state)
}

async fn readyz(State(admin): State<Arc<AdminState>>) -> Response {
    if admin.shutting_down.load(Ordering::Relaxed) {
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    if !admin.exchange.identity.is_ready() {
        return text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "identity source not ready\n".into(),
        );
    }
    text_response(StatusCode::OK, format!("ready ({} mode)\n", admin.mode))
}

async fn metrics_text(State(admin): State<Arc<AdminState>>) -> Response {
    let text = admin.exchange.metrics.render(
        admin.exchange.registry.len(),
        admin.exchange.store.backend_stats(),
    );
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

async fn agents(State(admin): State<Arc<AdminState>>) -> Response {
    let agents = admin.exchange.registry.snapshot();
    let instances = admin.exchange.store.records();
    let json = if admin.shows_credentials {
        serde_json::to_vec_pretty(&AgentsView {
            mode: admin.mode,
            agents,
            instances,
        })
    } else {
        serde_json::to_vec_pretty(&AgentsView {
            mode: admin.mode,
            agents: agents.iter().map(AgentSummary::of).collect(),
            instances: instances.iter().map(InstanceSummary::of).collect(),
        })
    };
    match json {
        Ok(json) => (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            json,
        )
            .into_response(),
        Err(error) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render agents: {error}\n"),
        ),
    }
}
