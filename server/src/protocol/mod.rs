//! The protocol core: docs/protocol.md §4 and §5 as pure functions. No I/O, no clock, no async.
//!
//! One message goes through two steps:
//!
//! 1. [`admit`] looks at the message and whether the registry knows its uid, and says what
//!    to do: answer at once ([`Admission::Respond`]: invalid uid, unknown agent without a
//!    description, ...), handle a known agent ([`handle_known`]), or resolve a new agent's
//!    identity first ([`Admission::Resolve`]), which is the caller's async I/O, then
//!    [`handle_new`] (or [`Outcome::identity_failure`]).
//! 2. The handle functions return an [`Outcome`]: the `ServerToAgent` reply and its status
//!    class, the [`Effect`]s for the instance store, and whether to forget the agent.
//!
//! Everything time-dependent takes `now` from [`Context`], so the same inputs always give the
//! same outputs (the snapshot tests rely on it).

pub mod attributes;
pub mod instance;
mod outcome;
pub mod peer;
pub mod remote_config;
mod state;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use odigos_opamp_proto::opamp::proto::{
    AgentCapabilities, AgentToServer, ConnectionSettingsOffers, OpAmpConnectionSettings,
    RemoteConfigStatuses, ServerErrorResponseType, ServerToAgent, ServerToAgentFlags,
};
use prost::Message as _;
use sha2::{Digest, Sha256};

pub use instance::{InstanceKey, InstanceRecord};
pub use outcome::{Answer, Effect, Outcome, SERVER_CAPABILITIES, ack};
pub use state::{AgentState, Binding, Changes, OfferedConfig, StoredDescription};

use crate::config_source::{WorkloadConfig, WorkloadKey};
use crate::identity::{IdentityRequest, NonUtf8Header, Peer, ResolvedIdentity};

/// Longest accepted `instance_uid`, in bytes.
pub const MAX_UID_LEN: usize = 64;

/// Largest `agent_description` plus `health` of one message, encoded: what the server keeps
/// per agent, and writes to its resource, stays bounded whatever an agent sends. Real
/// agents send a few KiB; a long command line still fits.
pub const MAX_RETAINED_BYTES: usize = 32 * 1024;

/// Health status an agent reports when it lost the server; such resources are kept.
pub const NO_CONNECTION_STATUS: &str = "NoConnectionToOpAMPServer";

/// The inputs that are not part of the message or the agent's state.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// This node's name (`k8s.node.name`).
    pub node_name: &'a str,
    /// The time the message arrived.
    pub now: SystemTime,
    /// The heartbeat interval told to agents that report heartbeats.
    pub heartbeat_interval: Duration,
}

/// What to do with a message before handling it.
#[derive(Debug)]
pub enum Admission {
    /// Answer with this outcome; no state is involved.
    Respond(Box<Outcome>),
    /// The uid is known: lock its state and call [`handle_known`].
    Known,
    /// A new agent with a usable description: resolve its identity, then [`handle_new`].
    Resolve,
}

/// Decide how to handle `msg`; `known` says whether the registry has its uid.
pub fn admit(msg: &AgentToServer, known: bool) -> Admission {
    let respond = |outcome| Admission::Respond(Box::new(outcome));
    let uid = &msg.instance_uid;
    if uid.is_empty() {
        return respond(Outcome::bad_request(Vec::new(), "instance_uid is empty"));
    }
    if uid.len() > MAX_UID_LEN {
        let message = format!(
            "instance_uid is {} bytes, at most {MAX_UID_LEN} allowed",
            uid.len()
        );
        return respond(Outcome::bad_request(uid.clone(), message));
    }
    let retained = msg
        .agent_description
        .as_ref()
        .map_or(0, |d| d.encoded_len())
        + msg.health.as_ref().map_or(0, |h| h.encoded_len());
    if retained > MAX_RETAINED_BYTES {
        let message = format!(
            "agent_description and health are {retained} bytes together, at most \
             {MAX_RETAINED_BYTES} allowed"
        );
        return respond(Outcome::bad_request(uid.clone(), message));
    }
    if known {
        return Admission::Known;
    }
    if msg.agent_disconnect.is_some() {
        // Nothing to forget: acknowledge so the agent can exit.
        return respond(Outcome::ok(ack(uid.clone()), Answer::DisconnectUnknown));
    }
    let Some(description) = &msg.agent_description else {
        // E.g. the server restarted: ask the agent to send everything again.
        let flags = ServerToAgentFlags::ReportFullState as u64;
        let response = ServerToAgent {
            flags,
            ..ack(uid.clone())
        };
        return respond(Outcome::ok(response, Answer::ReportFullState));
    };
    let attrs = &description.identifying_attributes;
    if attributes::pid(attrs).is_none() {
        let message = "agent_description.identifying_attributes must carry process.pid \
                       (or process.vpid) as a non-negative integer";
        return respond(Outcome::bad_request(uid.clone(), message));
    }
    if attributes::string(attrs, attributes::SDK_LANGUAGE).is_none() {
        let message = "agent_description.identifying_attributes must carry telemetry.sdk.language";
        return respond(Outcome::bad_request(uid.clone(), message));
    }
    Admission::Resolve
}

/// What identity resolution needs from a new agent's message and the device id header.
pub fn identity_request(
    msg: &AgentToServer,
    device_id: Option<Result<String, NonUtf8Header>>,
    peer: Peer,
) -> IdentityRequest {
    let attrs = msg
        .agent_description
        .as_ref()
        .map_or(&[][..], |d| &d.identifying_attributes);
    let get = |key| attributes::string(attrs, key).map(str::to_owned);
    IdentityRequest {
        device_id,
        namespace: get(attributes::K8S_NAMESPACE),
        pod: get(attributes::K8S_POD),
        container: get(attributes::K8S_CONTAINER),
        peer,
    }
}

/// The reply to a body that is not an `AgentToServer`.
pub fn undecodable(error: &str) -> Outcome {
    let mut outcome = Outcome::bad_request(
        Vec::new(),
        format!("body is not a valid AgentToServer message: {error}"),
    );
    outcome.answer = Answer::Undecodable;
    outcome
}

/// docs/protocol.md §3: an agent registered with a device id is that device's. A message
/// for its uid with another device id, or none, is refused (409) and changes nothing.
pub fn check_bound_device(
    uid: &[u8],
    bound: Option<&str>,
    presented: Option<Result<&str, NonUtf8Header>>,
) -> Result<(), Outcome> {
    let Some(bound) = bound else { return Ok(()) };
    if presented == Some(Ok(bound)) {
        return Ok(());
    }
    Err(Outcome::refusal(
        Answer::DeviceMismatch,
        uid.to_vec(),
        ServerErrorResponseType::BadRequest,
        "instance_uid is registered with another X-Odigos-DeviceId: send the device id this \
         agent registered with, or a new instance_uid",
        None,
    ))
}

/// docs/protocol.md §2: a new agent past the agent cap is told to come back after an
/// interval, when silent agents may have been dropped.
pub fn over_capacity(uid: Vec<u8>, heartbeat_interval: Duration) -> Outcome {
    Outcome::refusal(
        Answer::OverCapacity,
        uid,
        ServerErrorResponseType::Unavailable,
        "this server serves as many agents as it is allowed (--max-agents); retry later",
        Some(heartbeat_interval),
    )
}

/// What to do with a new agent whose resource (pod, container, pid) a known agent holds:
/// the same process after an `exec` (a new uid, the same pid), a restarted process that got
/// the same pid, or an impostor.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The holder is gone or the claimant is proven to be that process: forget the holder,
    /// the claimant takes its resource.
    Replace,
    /// The claimant cannot be told from an impostor: serve it, but the holder keeps the
    /// resource until it goes stale, so a live agent's resource is never overwritten.
    Wait,
}

/// docs/protocol.md §3.2, one uid per process. A claimant is never refused. It replaces the
/// holder at once when it is proven to be that process (`proven`: its connection verified
/// it as that pod, container and pid, or it presents the holder's device id), or when the
/// holder sent nothing for more than a heartbeat interval; otherwise it waits.
pub fn claim(proven: bool, holder_quiet_for: Duration, heartbeat_interval: Duration) -> Claim {
    if proven || holder_quiet_for > heartbeat_interval {
        Claim::Replace
    } else {
        Claim::Wait
    }
}

/// First message of a new agent whose identity was resolved: create its state and send the
/// full remote config. Returns no state when the description lacks pid or language (which
/// [`admit`] already rejects).
pub fn handle_new(
    mut msg: AgentToServer,
    identity: ResolvedIdentity,
    binding: Binding,
    config: &Arc<WorkloadConfig>,
    ctx: &Context<'_>,
) -> (Outcome, Option<AgentState>) {
    let uid = std::mem::take(&mut msg.instance_uid);
    let description = msg.agent_description.take().unwrap_or_default();
    let attrs = &description.identifying_attributes;
    let (Some(pid), Some(language)) = (
        attributes::pid(attrs),
        attributes::string(attrs, attributes::SDK_LANGUAGE),
    ) else {
        return (
            Outcome::bad_request(
                uid,
                "agent_description lacks process.pid or telemetry.sdk.language",
            ),
            None,
        );
    };
    let language = language.to_owned();
    let remote_config = remote_config::build(ctx.node_name, &identity, config);
    let workload_key = WorkloadKey {
        namespace: identity.namespace.clone(),
        workload: identity.workload.clone(),
    };
    let state = AgentState {
        instance_uid: uid.clone(),
        identity,
        workload_key,
        pid,
        language,
        capabilities: msg.capabilities,
        last_sequence_num: msg.sequence_num,
        last_message_time: ctx.now,
        description: StoredDescription::new(&description),
        health: msg.health.take(),
        remote_config_status: msg.remote_config_status.take(),
        last_sent_hash: Some(remote_config.config_hash.clone()),
        offered: OfferedConfig::new(config.clone(), &remote_config),
        binding,
    };

    let mut response = ack(uid);
    response.remote_config = Some(remote_config);
    if msg.capabilities & AgentCapabilities::ReportsHeartbeat as u64 != 0 {
        // Told once, in the first response; a later change needs a restart of the agent.
        response.connection_settings = Some(heartbeat_offer(ctx.heartbeat_interval));
    }
    let outcome = Outcome {
        effects: vec![write_instance(&state, ctx.now)],
        ..Outcome::ok(response, Answer::NewAgent)
    };
    (outcome, Some(state))
}

/// A message from a known agent: sequence check, merge, disconnect, config resend rule.
pub fn handle_known(
    msg: &mut AgentToServer,
    state: &mut AgentState,
    config: &Arc<WorkloadConfig>,
    ctx: &Context<'_>,
) -> Outcome {
    let uid = std::mem::take(&mut msg.instance_uid);
    let mut response = ack(uid);

    // Ask for the full state once per gap; duplicates (same number) are fine.
    let expected = state.last_sequence_num.wrapping_add(1);
    let gap = msg.sequence_num != expected && msg.sequence_num != state.last_sequence_num;
    state.last_sequence_num = msg.sequence_num;
    if gap {
        response.flags |= ServerToAgentFlags::ReportFullState as u64;
    }

    let changes = state.merge(msg, ctx.now);

    if msg.agent_disconnect.is_some() {
        let effects = disconnect_effects(state, changes, ctx.now);
        return Outcome {
            effects,
            forget: true,
            ..Outcome::ok(response, Answer::Disconnect)
        };
    }

    let mut built = None;
    // The source hands out the same Arc until the config changes: one pointer compare per poll.
    if !Arc::ptr_eq(&state.offered.source, config) {
        let fresh = remote_config::build(ctx.node_name, &state.identity, config);
        state.offered = OfferedConfig::new(config.clone(), &fresh);
        built = Some(fresh);
    }
    let mut answer = if gap {
        Answer::ReportFullState
    } else {
        Answer::Ack
    };
    if should_send_config(state) {
        // The same inputs build the same bytes and hash as when the hash was taken.
        let remote_config = built.unwrap_or_else(|| {
            remote_config::build(ctx.node_name, &state.identity, &state.offered.source)
        });
        response.remote_config = Some(remote_config);
        state.last_sent_hash = Some(state.offered.hash.clone());
        answer = Answer::RemoteConfig;
    }

    let mut outcome = Outcome::ok(response, answer);
    if changes.any() {
        outcome.effects.push(write_instance(state, ctx.now));
    }
    outcome
}

/// §4's resend rule. An agent that reported a hash gets the config when that hash differs
/// from ours, except after reporting FAILED once we already sent our current config (it
/// would fail again: no loop). An agent that never reported gets it only when it changed
/// since we last sent it.
fn should_send_config(state: &AgentState) -> bool {
    let current = state.offered.hash.as_slice();
    let already_sent = state.last_sent_hash.as_deref() == Some(current);
    match &state.remote_config_status {
        Some(status) => {
            let failed = status.status == RemoteConfigStatuses::Failed as i32;
            status.last_remote_config_hash != current && !(failed && already_sent)
        }
        None => !already_sent,
    }
}

/// On disconnect a healthy (or silent) agent's resource is deleted; an unhealthy one is kept
/// with that health so operators can see why the process ended.
fn disconnect_effects(state: &AgentState, changes: Changes, now: SystemTime) -> Vec<Effect> {
    match &state.health {
        // Unchanged health is already in the resource: nothing to write.
        Some(health) if !health.healthy => {
            if changes.any() {
                vec![write_instance(state, now)]
            } else {
                Vec::new()
            }
        }
        _ => vec![Effect::DeleteInstance(instance::instance_key(state))],
    }
}

/// A stale agent (no message for the stale period) is dropped from memory and its resource
/// deleted, like Odigos does; a process restarted in the same container gets a new pid and
/// a new resource, so keeping the old one would only pile up. A resource whose last reason
/// is `NoConnectionToOpAMPServer` is kept: it explains why the agent went silent.
pub fn expire(state: &AgentState) -> Vec<Effect> {
    let lost_server = state
        .health
        .as_ref()
        .is_some_and(|h| h.status == NO_CONNECTION_STATUS);
    if lost_server {
        Vec::new()
    } else {
        vec![Effect::DeleteInstance(instance::instance_key(state))]
    }
}

fn write_instance(state: &AgentState, now: SystemTime) -> Effect {
    Effect::WriteInstance(Box::new(InstanceRecord::from_state(state, now)))
}

fn heartbeat_offer(interval: Duration) -> ConnectionSettingsOffers {
    let seconds = interval.as_secs_f64().ceil().max(1.0) as u64;
    let opamp = OpAmpConnectionSettings {
        heartbeat_interval_seconds: seconds,
        ..Default::default()
    };
    let hash = Sha256::digest(seconds.to_be_bytes()).to_vec();
    ConnectionSettingsOffers {
        hash,
        opamp: Some(opamp),
        ..Default::default()
    }
}
