//! One message, end to end: registry lookup, the pure core, identity resolution for new
//! agents, and the store effects. The transport decodes and encodes; this module decides.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use odigos_opamp_proto::opamp::proto::AgentToServer;

use crate::config_source::ConfigSource;
use crate::identity::{Identity, NonUtf8Header, Peer};
use crate::metrics::Metrics;
use crate::protocol::{
    self, Admission, Binding, Claim, Context, Effect, InstanceRecord, Outcome,
    attributes::uid_display, instance::instance_key,
};
use crate::registry::{Refused, Registry, Slot};
use crate::settings::PeerVerification;
use crate::store::InstanceStore;

/// The server's shared state behind both agent listeners.
pub(crate) struct Exchange {
    pub registry: Arc<Registry>,
    pub identity: Arc<dyn Identity>,
    pub config: Arc<dyn ConfigSource>,
    pub store: Arc<dyn InstanceStore>,
    pub metrics: Arc<Metrics>,
    pub node_name: String,
    pub heartbeat_interval: Duration,
    pub peer_verification: PeerVerification,
}

impl Exchange {
    /// Handle one decoded message; `device_id` reads the `X-Odigos-DeviceId` header, at
    /// most once: for a new agent, and for a known one registered with a device id (to
    /// check it). Other heartbeats do not pay for the lookup; a known agent's check borrows
    /// the header (`S` = `&str`), only a new agent's identity request copies it.
    pub(crate) async fn handle<S: AsRef<str> + Into<String>>(
        &self,
        msg: &mut AgentToServer,
        device_id: impl FnOnce() -> Option<Result<S, NonUtf8Header>>,
        peer: Peer,
    ) -> Outcome {
        let mut device_id = LazyHeader::new(device_id);
        if let Some(slot) = self.registry.get(&msg.instance_uid) {
            match protocol::admit(msg, true) {
                Admission::Respond(outcome) => return *outcome,
                Admission::Known | Admission::Resolve => {
                    // None: removed (disconnect, expiry) between lookup and lock; unknown now.
                    if let Some(outcome) = self.known(msg, slot, &mut device_id, &peer) {
                        return outcome;
                    }
                }
            }
        }
        match protocol::admit(msg, false) {
            Admission::Respond(outcome) => *outcome,
            // Boxed: the rare new-agent path would otherwise make every request's future
            // (moved and boxed on each heartbeat) a kilobyte larger.
            Admission::Known | Admission::Resolve => {
                let device_id = device_id.take().map(|read| read.map(Into::into));
                Box::pin(self.new_agent(std::mem::take(msg), device_id, peer)).await
            }
        }
    }

    /// A known agent; `None`, the message untouched, when the slot was removed meanwhile.
    /// The message is borrowed, not moved: it is a kilobyte or two, and this is every
    /// heartbeat's path.
    fn known<F, S>(
        &self,
        msg: &mut AgentToServer,
        slot: Arc<Slot>,
        device_id: &mut LazyHeader<F, S>,
        peer: &Peer,
    ) -> Option<Outcome>
    where
        F: FnOnce() -> Option<Result<S, NonUtf8Header>>,
        S: AsRef<str>,
    {
        let ctx = self.context();
        let outcome = {
            let mut inner = slot.lock();
            if inner.gone {
                return None;
            }
            let bound = inner.device_id.as_deref();
            if let Err(refusal) =
                protocol::check_bound_device(&msg.instance_uid, bound, device_id.get())
            {
                self.metrics.resolution_failure(refusal.answer.label());
                tracing::debug!(uid = %uid_display(&msg.instance_uid), "message refused: instance_uid is bound to another device id");
                return Some(refusal);
            }
            let bound = &inner.state.binding.peer;
            let alive = match bound {
                Peer::Process(process) => process.is_alive(),
                _ => true,
            };
            if let Err(refusal) = protocol::peer::check_bound_peer(
                &msg.instance_uid,
                bound,
                peer,
                alive,
                self.peer_verification,
            ) {
                self.metrics.resolution_failure(refusal.answer.label());
                tracing::warn!(uid = %uid_display(&msg.instance_uid), ?peer, "message refused: instance_uid is bound to another peer");
                return Some(*refusal);
            }
            let config = self.config.workload_config(&inner.state.workload_key);
            let outcome = protocol::handle_known(msg, &mut inner.state, &config, &ctx);
            inner.last_seen = Instant::now();
            inner.gone = outcome.forget;
            outcome
        };
        let mut outcome = outcome;
        let effects = std::mem::take(&mut outcome.effects);
        let uid = &outcome.response.instance_uid;
        self.apply(uid, effects);
        if outcome.forget {
            let gone = slot.lock().state.clone();
            self.registry.remove(uid, &slot);
            tracing::info!(uid = %uid_display(uid), "agent disconnected");
            self.hand_over(&gone);
        }
        Some(outcome)
    }

    /// A new agent: resolve its identity (async, no lock held), check it against its
    /// connection, then create its state.
    async fn new_agent(
        &self,
        msg: AgentToServer,
        device_id: Option<Result<String, NonUtf8Header>>,
        peer: Peer,
    ) -> Outcome {
        if self.registry.is_full() {
            return self.over_capacity(msg.instance_uid);
        }
        let request = protocol::identity_request(&msg, device_id, peer);
        let identity = match self.identity.resolve(&request).await {
            Ok(identity) => identity,
            Err(error) => {
                self.metrics.resolution_failure(error.kind());
                tracing::warn!(uid = %uid_display(&msg.instance_uid), %error, "identity not resolved");
                return Outcome::identity_failure(msg.instance_uid, &error);
            }
        };
        let device = request.device_id().ok().flatten().map(Box::<str>::from);
        let binding = match self.bind(&msg, &identity, request.peer) {
            Ok(binding) => binding,
            Err(refusal) => return *refusal,
        };
        let workload_key = crate::config_source::WorkloadKey {
            namespace: identity.namespace.clone(),
            workload: identity.workload.clone(),
        };
        let config = self.config.workload_config(&workload_key);
        let (mut outcome, state) =
            protocol::handle_new(msg, identity, binding, &config, &self.context());
        let Some(state) = state else {
            return outcome;
        };
        let holds = self.claim(&state, device.as_deref());
        let pod = format!("{}/{}", state.identity.namespace, state.identity.pod_name);
        let uid = uid_display(&state.instance_uid);
        let verification = state.binding.verification.label();
        match self.registry.insert(state, device, Instant::now(), holds) {
            Ok(_) => {
                tracing::info!(%uid, %pod, verification, "agent connected");
                self.metrics.new_agent(verification);
                let effects = std::mem::take(&mut outcome.effects);
                self.apply(&outcome.response.instance_uid, effects);
            }
            // A concurrent first message of the same uid won; its state stays and this
            // answer (the same full config) is still right.
            Err(Refused::Exists) => {}
            Err(Refused::Full) => return self.over_capacity(outcome.response.instance_uid),
        }
        outcome
    }

    /// What the connection says of the new agent, held against its claims by the rules of
    /// [`protocol::peer::verify_peer`].
    fn bind(
        &self,
        msg: &AgentToServer,
        identity: &crate::identity::ResolvedIdentity,
        peer: Peer,
    ) -> Result<Binding, Box<Outcome>> {
        if self.peer_verification == PeerVerification::Off {
            return Ok(Binding::default());
        }
        let facts = self.identity.peer_facts(&peer, identity);
        let pid = msg
            .agent_description
            .as_ref()
            .and_then(|d| protocol::attributes::pid(&d.identifying_attributes))
            .unwrap_or_default();
        match protocol::peer::verify_peer(
            &msg.instance_uid,
            identity,
            pid,
            &facts,
            self.peer_verification,
        ) {
            Ok(verification) => Ok(Binding { peer, verification }),
            Err(refusal) => {
                self.metrics.resolution_failure(refusal.answer.label());
                tracing::warn!(uid = %uid_display(&msg.instance_uid), ?facts, "new agent refused: its connection is not its pod's");
                Err(refusal)
            }
        }
    }

    /// 503 for a new agent when the registry is full (the rule: [`protocol::over_capacity`]).
    fn over_capacity(&self, uid: Vec<u8>) -> Outcome {
        let outcome = protocol::over_capacity(uid, self.heartbeat_interval);
        self.metrics.resolution_failure(outcome.answer.label());
        tracing::warn!(uid = %uid_display(&outcome.response.instance_uid), "new agent refused: the agent cap is reached");
        outcome
    }

    /// Whether the new agent takes its resource (pod, container, pid) now: yes when nobody
    /// holds it, or when the holder is replaced ([`protocol::claim`]); else it waits.
    fn claim(&self, state: &protocol::AgentState, device: Option<&str>) -> bool {
        let key = instance_key(state);
        let Some((uid, slot)) = self.registry.holder_of(&key, &state.instance_uid) else {
            return true;
        };
        let claim = {
            let mut holder = slot.lock();
            let same_device = device.is_some() && holder.device_id.as_deref() == device;
            let proven = same_device || state.binding.verification.is_verified();
            let claim =
                protocol::claim(proven, holder.last_seen.elapsed(), self.heartbeat_interval);
            holder.gone |= claim == Claim::Replace;
            claim
        };
        match claim {
            Claim::Replace => {
                self.registry.remove(&uid, &slot);
                tracing::info!(old = %uid_display(&uid), new = %uid_display(&state.instance_uid), "agent replaced by a new instance of the same process");
                true
            }
            Claim::Wait => {
                tracing::warn!(uid = %uid_display(&state.instance_uid), holder = %uid_display(&uid), "new agent served, but its resource stays with a live agent of the same process until that one goes");
                false
            }
        }
    }

    /// Drop agents that went silent and handle their resources.
    pub(crate) fn sweep(&self, stale_after: Duration) -> usize {
        let expired = self.registry.sweep(Instant::now(), stale_after);
        for state in &expired {
            tracing::info!(uid = %uid_display(&state.instance_uid), "agent expired: no message within {stale_after:?}");
            self.apply(&state.instance_uid, protocol::expire(state));
            self.hand_over(state);
        }
        expired.len()
    }

    /// A holder is gone: an agent waiting for its resource takes it, and writes it.
    fn hand_over(&self, gone: &protocol::AgentState) {
        let key = instance_key(gone);
        if self.registry.holder_of(&key, &gone.instance_uid).is_some() {
            // It was a waiting one itself: the holder keeps its resource.
            return;
        }
        let Some(slot) = self.registry.waiting_for(&key, &gone.instance_uid) else {
            return;
        };
        let (uid, record) = {
            let inner = slot.lock();
            let record = InstanceRecord::from_state(&inner.state, SystemTime::now());
            (inner.state.instance_uid.clone(), record)
        };
        tracing::info!(uid = %uid_display(&uid), resource = %record.name, "agent takes over the resource of the agent it waited for");
        self.apply(&uid, vec![Effect::WriteInstance(Box::new(record))]);
    }

    /// The store effects of agent `uid`'s message; none while it waits for a live holder
    /// of its resource. Taken by value: the records move into the store, not copied.
    fn apply(&self, uid: &[u8], effects: Vec<Effect>) {
        for effect in effects {
            let key = match &effect {
                Effect::WriteInstance(record) => &record.key,
                Effect::DeleteInstance(key) => key,
            };
            if !self.registry.may_write(key, uid) {
                continue;
            }
            match effect {
                Effect::WriteInstance(record) => {
                    self.metrics.store_write("apply");
                    self.store.apply(*record);
                }
                Effect::DeleteInstance(key) => {
                    self.metrics.store_write("delete");
                    self.store.delete(&key);
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

/// The `X-Odigos-DeviceId` header, read at most once and only when needed.
struct LazyHeader<F, S> {
    read: Option<F>,
    value: Option<Result<S, NonUtf8Header>>,
}

impl<F: FnOnce() -> Option<Result<S, NonUtf8Header>>, S: AsRef<str>> LazyHeader<F, S> {
    fn new(read: F) -> Self {
        LazyHeader {
            read: Some(read),
            value: None,
        }
    }

    fn get(&mut self) -> Option<Result<&str, NonUtf8Header>> {
        if let Some(read) = self.read.take() {
            self.value = read();
        }
        self.value
            .as_ref()
            .map(|read| read.as_ref().map(AsRef::as_ref).map_err(|e| *e))
    }

    fn take(mut self) -> Option<Result<S, NonUtf8Header>> {
        self.get();
        self.value
    }
}
