//! The admin listener: probes, metrics and a JSON view of the agents. Never on the agent port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::exchange::Exchange;
use crate::metrics;
use crate::protocol::{AgentState, InstanceRecord};
use crate::transport::text_response;

/// What the admin handlers read.
pub struct AdminState {
    pub exchange: Arc<Exchange>,
    /// Set when shutdown starts, so `/readyz` fails and load balancers stop sending.
    pub shutting_down: Arc<AtomicBool>,
}

/// `GET /agents`: the agents in memory and the instance records the store holds.
#[derive(Serialize)]
pub struct AgentsView {
    pub agents: Vec<AgentState>,
    pub instances: Vec<InstanceRecord>,
}

/// `/healthz`, `/readyz`, `/metrics`, `/agents`.
pub fn router(state: Arc<AdminState>) -> Router {
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
    text_response(StatusCode::OK, "ready\n".into())
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
    let view = AgentsView {
        agents: admin.exchange.registry.snapshot(),
        instances: admin.exchange.store.records(),
    };
    match serde_json::to_vec_pretty(&view) {
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
