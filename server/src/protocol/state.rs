//! What the server remembers about one agent (docs/protocol.md §4), and how a status-compressed
//! message is merged into it.

use std::sync::Arc;
use std::time::SystemTime;

use odigos_opamp_proto::opamp::proto::{
    AgentDescription, AgentRemoteConfig, AgentToServer, ComponentHealth, RemoteConfigStatus,
    RemoteConfigStatuses,
};
use prost::Message as _;
use serde::{Serialize, Serializer};

use crate::config_source::{WorkloadConfig, WorkloadKey};
use crate::identity::{Peer, ResolvedIdentity};
use crate::protocol::attributes::uid_display;
use crate::protocol::peer::Verification;

/// Everything the server keeps about one connected agent.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    #[serde(serialize_with = "serialize_uid")]
    pub instance_uid: Vec<u8>,
    pub identity: ResolvedIdentity,
    /// The workload key used to look up config (namespace + workload of `identity`).
    #[serde(skip)]
    pub workload_key: WorkloadKey,
    pub pid: i64,
    pub language: String,
    pub capabilities: u64,
    pub last_sequence_num: u64,
    #[serde(serialize_with = "serialize_time")]
    pub last_message_time: SystemTime,
    pub description: StoredDescription,
    pub health: Option<ComponentHealth>,
    #[serde(serialize_with = "serialize_status")]
    pub remote_config_status: Option<RemoteConfigStatus>,
    /// The config we would send now, cached with the inputs it was built from.
    pub offered: OfferedConfig,
    /// Hash of the config we last included in a response, if any.
    #[serde(serialize_with = "serialize_hash")]
    pub last_sent_hash: Option<Vec<u8>>,
    /// The connection it registered from, and how that verified it.
    #[serde(flatten)]
    pub binding: Binding,
}

/// What the connection of an agent's first message bound it to (docs/protocol.md §3): its
/// later messages must come from the same peer; and how the peer verified its identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    #[serde(skip)]
    pub peer: Peer,
    pub verification: Verification,
}

/// The remote config offered to an agent: its hash, and the workload config it was built
/// from (with the agent's identity), so the hash is recomputed only when that changes. The
/// workload config is shared with the config source (the same `Arc` until it changes), and
/// the remote config itself is rebuilt, identically, on the rare polls that send it:
/// keeping a copy per agent cost over 1 KiB each.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferedConfig {
    #[serde(serialize_with = "serialize_shared")]
    pub source: Arc<WorkloadConfig>,
    #[serde(rename = "configHash", serialize_with = "serialize_bytes_hex")]
    pub hash: Vec<u8>,
}

/// What a merge changed, to decide whether the instance record must be written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub description: bool,
    pub health: bool,
}

impl Changes {
    pub fn any(self) -> bool {
        self.description || self.health
    }
}

impl OfferedConfig {
    /// Remember a freshly built remote config by its hash, with the workload config it
    /// came from.
    pub fn new(source: Arc<WorkloadConfig>, remote_config: &AgentRemoteConfig) -> Self {
        OfferedConfig {
            source,
            hash: remote_config.config_hash.clone(),
        }
    }
}

/// An agent's description, kept as its protobuf encoding: one allocation where the decoded
/// form takes a few dozen (every attribute's key and value), about 1 KiB less per agent.
/// Decoded only to write the agent's resource, i.e. when something changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredDescription(Box<[u8]>);

impl StoredDescription {
    pub fn new(description: &AgentDescription) -> Self {
        StoredDescription(description.encode_to_vec().into_boxed_slice())
    }

    /// The description. It was encoded here, so decoding cannot fail; if it ever did, an
    /// empty description is the safe reading (no attributes written).
    pub fn decode(&self) -> AgentDescription {
        AgentDescription::decode(&*self.0).unwrap_or_default()
    }

    /// Its protobuf encoding.
    pub fn encoded(&self) -> &[u8] {
        &self.0
    }
}

/// Serialized decoded, as the description the agent sent (snapshots, the admin API).
impl Serialize for StoredDescription {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.decode().serialize(s)
    }
}

impl AgentState {
    /// Merge a message into the state. Sub-messages the message omits keep their stored
    /// values (status compression); the ones it carries are moved out of it.
    pub fn merge(&mut self, msg: &mut AgentToServer, now: SystemTime) -> Changes {
        let mut changes = Changes::default();
        self.last_message_time = now;
        if msg.capabilities != 0 {
            self.capabilities = msg.capabilities;
        }
        if let Some(description) = msg.agent_description.take() {
            // Compared encoded: with a NaN attribute, `!=` on decoded values would call every
            // resend a change and rewrite the resource on each poll.
            let description = StoredDescription::new(&description);
            changes.description = description != self.description;
            self.description = description;
        }
        if let Some(health) = msg.health.take() {
            changes.health = self.health.as_ref() != Some(&health);
            self.health = Some(health);
        }
        if let Some(status) = msg.remote_config_status.take() {
            self.remote_config_status = Some(status);
        }
        changes
    }

    /// The hash the agent last told us it has, if it ever did.
    pub fn reported_hash(&self) -> Option<&[u8]> {
        self.remote_config_status
            .as_ref()
            .map(|s| s.last_remote_config_hash.as_slice())
    }
}

fn serialize_shared<S: Serializer>(config: &Arc<WorkloadConfig>, s: S) -> Result<S::Ok, S::Error> {
    config.as_ref().serialize(s)
}

fn serialize_uid<S: Serializer>(uid: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&uid_display(uid))
}

fn serialize_bytes_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

fn serialize_hash<S: Serializer>(hash: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match hash {
        Some(h) => s.serialize_str(&hex::encode(h)),
        None => s.serialize_none(),
    }
}

/// `remote_config_status` with the hash in hex (pbjson would give base64).
fn serialize_status<S: Serializer>(
    status: &Option<RemoteConfigStatus>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct View<'a> {
        last_remote_config_hash: String,
        status: &'static str,
        error_message: &'a str,
    }
    let view = status.as_ref().map(|st| View {
        last_remote_config_hash: hex::encode(&st.last_remote_config_hash),
        status: RemoteConfigStatuses::try_from(st.status).map_or("UNKNOWN", |v| v.as_str_name()),
        error_message: &st.error_message,
    });
    view.serialize(s)
}

pub(crate) fn serialize_time<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_millis(*time).to_string())
}
