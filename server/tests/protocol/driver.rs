//! Drives the pure core the way the server does (admit → resolve → handle), with one agent's
//! state held locally and a fixed clock, and renders each step as readable JSON.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use odigos_opamp_proto::opamp::proto::AgentToServer;
use odigos_opamp_server::config_source::WorkloadConfig;
use odigos_opamp_server::identity::{
    DeviceTable, IdentityError, IdentityRequest, ResolvedIdentity, StaticTableIdentity,
};
use odigos_opamp_server::protocol::{
    self, Admission, AgentState, Context, Outcome, attributes::uid_display,
};
use serde_json::{Value, json};

use crate::messages::DEVICES_YAML;

/// What resolution returns for new agents.
pub enum Resolver {
    /// The test device table, as the embedded default does.
    Table(StaticTableIdentity),
    /// Always fail with this error (transient failures, ...).
    Fail(IdentityError),
}

impl Resolver {
    fn resolve(&self, request: &IdentityRequest) -> Result<ResolvedIdentity, IdentityError> {
        match self {
            Resolver::Table(table) => table.lookup(request),
            Resolver::Fail(error) => Err(error.clone()),
        }
    }
}

/// One agent as seen by the core.
pub struct Driver {
    pub state: Option<AgentState>,
    pub config: WorkloadConfig,
    /// `config` as a config source hands it out: the same Arc until it changes.
    shared: Arc<WorkloadConfig>,
    pub resolver: Resolver,
    pub device_id: Option<String>,
    pub now: SystemTime,
}

impl Driver {
    /// No state yet, the test device table, default config, clock at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        let table = DeviceTable::from_yaml(DEVICES_YAML).expect("test device table");
        Driver {
            state: None,
            config: WorkloadConfig::default(),
            shared: Arc::default(),
            resolver: Resolver::Table(StaticTableIdentity::new(table)),
            device_id: None,
            now: UNIX_EPOCH + Duration::from_secs(1_767_225_600),
        }
    }

    /// Send one message; returns the rendered step. The clock advances 30 s per message.
    pub fn send(&mut self, msg: AgentToServer) -> Value {
        self.now += Duration::from_secs(30);
        let request = readable(serde_json::to_value(&msg).expect("request as JSON"));
        let outcome = self.outcome(msg);
        let forget = outcome.forget;
        let step = render(request, &outcome, self.state.as_ref());
        if forget {
            self.state = None;
        }
        step
    }

    /// Send and return only the outcome (for assertions beside snapshots).
    pub fn outcome(&mut self, mut msg: AgentToServer) -> Outcome {
        let ctx = Context {
            node_name: "node-1",
            now: self.now,
            heartbeat_interval: Duration::from_secs(30),
        };
        if *self.shared != self.config {
            self.shared = Arc::new(self.config.clone());
        }
        match protocol::admit(&msg, self.state.is_some()) {
            Admission::Respond(outcome) => *outcome,
            Admission::Known => {
                let state = self.state.as_mut().expect("known agent has state");
                protocol::handle_known(&mut msg, state, &self.shared, &ctx)
            }
            Admission::Resolve => {
                let device = self.device_id.clone().map(Ok);
                let request = protocol::identity_request(&msg, device, Default::default());
                match self.resolver.resolve(&request) {
                    Ok(identity) => {
                        let (outcome, state) = protocol::handle_new(
                            msg,
                            identity,
                            Default::default(),
                            &self.shared,
                            &ctx,
                        );
                        self.state = state;
                        outcome
                    }
                    Err(error) => Outcome::identity_failure(msg.instance_uid, &error),
                }
            }
        }
    }

    /// The current config hash the agent would be offered (after at least one message).
    pub fn offered_hash(&self) -> Vec<u8> {
        self.state
            .as_ref()
            .expect("agent state")
            .offered
            .hash
            .clone()
    }
}

/// One step: request, status, response, effects, and the state after it.
pub fn render(request: Value, outcome: &Outcome, state: Option<&AgentState>) -> Value {
    json!({
        "request": request,
        "answer": outcome.answer,
        "httpStatus": outcome.answer.status_code(),
        "retryAfterSecs": outcome.retry_after_secs,
        "response": readable(serde_json::to_value(&outcome.response).expect("response as JSON")),
        "effects": serde_json::to_value(&outcome.effects).expect("effects as JSON"),
        "forget": outcome.forget,
        // The state renders readably on its own (GET /agents uses the same form).
        "stateAfter": state.map(|s| serde_json::to_value(s).expect("state as JSON")),
    })
}

/// Make pbjson output readable: uids as text, hashes as hex, config bodies as JSON.
pub fn readable(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("instanceUid", Value::String(b64)) => {
                            Value::String(uid_display(&decode(&b64)))
                        }
                        ("configHash" | "lastRemoteConfigHash" | "hash", Value::String(b64)) => {
                            Value::String(hex::encode(decode(&b64)))
                        }
                        ("body", Value::String(b64)) => {
                            let bytes = decode(&b64);
                            serde_json::from_slice(&bytes)
                                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
                        }
                        (_, other) => readable(other),
                    };
                    (key, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(readable).collect()),
        other => other,
    }
}

fn decode(b64: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|_| b64.as_bytes().to_vec())
}
