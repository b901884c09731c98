//! One message, end to end: registry lookup, the pure core, identity resolution for new
//! agents, and the store effects. The transport decodes and encodes; this module decides.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use odigos_opamp_proto::opamp::proto::AgentToServer;

use crate::config_source::ConfigSource;
use crate::identity::{Identity, NonUtf8Header};
use crate::metrics::Metrics;
use crate::protocol::{
    self, Admission, Context, Effect, InstanceRecord, Outcome, attributes::uid_display,
};
use crate::registry::{Registry, Slot};
use crate::store::InstanceStore;

/// The server's shared state behind both agent listeners.
pub struct Exchange {
    pub registry: Arc<Registry>,
    pub identity: Arc<dyn Identity>,
    pub config: Arc<dyn ConfigSource>,
    pub store: Arc<dyn InstanceStore>,
    pub metrics: Arc<Metrics>,
    pub node_name: String,
    pub heartbeat_interval: Duration,
}

impl Exchange {
    /// Handle one decoded message; `device_id` is the `X-Odigos-DeviceId` header.
    pub async fn handle(
        &self,
        msg: AgentToServer,
        device_id: Option<Result<String, NonUtf8Header>>,
    ) -> Outcome {
        let msg = match self.registry.get(&msg.instance_uid) {
            Some(slot) => match protocol::admit(&msg, true) {
                Admission::Respond(outcome) => return *outcome,
                Admission::Known | Admission::Resolve => match self.known(msg, slot) {
                    Ok(outcome) => return outcome,
                    // Removed (disconnect, expiry) between lookup and lock: unknown now.
                    Err(msg) => *msg,
                },
            },
            None => msg,
        };
        match protocol::admit(&msg, false) {
            Admission::Respond(outcome) => *outcome,
            Admission::Known | Admission::Resolve => self.new_agent(msg, device_id).await,
        }
    }

    /// A known agent. Gives the message back when the slot was removed meanwhile.
    fn known(&self, msg: AgentToServer, slot: Arc<Slot>) -> Result<Outcome, Box<AgentToServer>> {
        let ctx = self.context();
        let outcome = {
            let mut inner = slot.lock();
            if inner.gone {
                return Err(Box::new(msg));
            }
            let config = self.config.workload_config(&inner.state.workload_key);
            let outcome = protocol::handle_known(msg, &mut inner.state, &config, &ctx);
            inner.last_seen = Instant::now();
            inner.gone = outcome.forget;
            outcome
        };
        if outcome.forget {
            self.registry.remove(&outcome.response.instance_uid, &slot);
            tracing::info!(uid = %uid_display(&outcome.response.instance_uid), "agent disconnected");
        }
        self.apply(&outcome.effects);
        Ok(outcome)
    }

    /// A new agent: resolve its identity (async, no lock held), then create its state.
    async fn new_agent(
        &self,
        msg: AgentToServer,
        device_id: Option<Result<String, NonUtf8Header>>,
    ) -> Outcome {
        let request = protocol::identity_request(&msg, device_id);
        let identity = match self.identity.resolve(&request).await {
            Ok(identity) => identity,
            Err(error) => {
                self.metrics.resolution_failure(error.kind());
                tracing::warn!(uid = %uid_display(&msg.instance_uid), %error, "identity not resolved");
                return Outcome::identity_failure(msg.instance_uid, &error);
            }
        };
        let workload_key = crate::config_source::WorkloadKey {
            namespace: identity.namespace.clone(),
            workload: identity.workload.clone(),
        };
        let config = self.config.workload_config(&workload_key);
        let (outcome, state) = protocol::handle_new(msg, identity, &config, &self.context());
        if let Some(state) = state {
            let pod = format!("{}/{}", state.identity.namespace, state.identity.pod_name);
            let uid = uid_display(&state.instance_uid);
            // A concurrent first message of the same uid may have won; its state stays and
            // this answer (the same full config) is still right.
            if self.registry.insert(state, Instant::now()).is_ok() {
                tracing::info!(%uid, %pod, "agent connected");
                self.apply(&outcome.effects);
            }
        }
        outcome
    }

    /// Drop agents that went silent and handle their resources.
    pub fn sweep(&self, stale_after: Duration) -> usize {
        let expired = self.registry.sweep(Instant::now(), stale_after);
        for state in &expired {
            tracing::info!(uid = %uid_display(&state.instance_uid), "agent expired: no message within {stale_after:?}");
            self.apply(&protocol::expire(state));
        }
        expired.len()
    }

    fn apply(&self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::WriteInstance(record) => {
                    self.metrics.store_write("apply");
                    self.store.apply(InstanceRecord::clone(record));
                }
                Effect::DeleteInstance(key) => {
                    self.metrics.store_write("delete");
                    self.store.delete(key);
                }
            }
        }
    }

    fn context(&self) -> Context<'_> {
        Context {
            node_name: &self.node_name,
            now: SystemTime::now(),
            heartbeat_interval: self.heartbeat_interval,
        }
    }
}
