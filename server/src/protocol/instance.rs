//! The `InstrumentationInstance` record derived from an agent's state (docs/protocol.md §6).
//!
//! The record is shaped like the custom resource (camelCase, `status` as in the CRD schema),
//! so a Kubernetes store can send `status` as it is.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use odigos_opamp_proto::opamp::proto::{ComponentHealth, KeyValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protocol::attributes::stringify;
use crate::protocol::peer::Verification;
use crate::protocol::state::AgentState;

/// The CRD's limit on `message` fields, in characters.
pub const MAX_MESSAGE_CHARS: usize = 32768;
/// Component `reason` when its status is plain text rather than a JSON object.
pub const DETAILS_REASON: &str = "instrumentation.details";
/// Kubernetes limit on object names (DNS subdomain).
const MAX_NAME_LEN: usize = 253;

/// Identifies one agent process: one resource per key. The registry, its holder index, the
/// store and the store's pod cap each keep an agent's key: shared, a copy is a reference
/// count rather than three strings. Its parts are read through `Deref` (`key.pod`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey(Arc<KeyParts>);

/// What an [`InstanceKey`] is made of.
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyParts {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub pid: i64,
}

impl Deref for InstanceKey {
    type Target = KeyParts;

    fn deref(&self) -> &KeyParts {
        &self.0
    }
}

impl fmt::Debug for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for InstanceKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for InstanceKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        KeyParts::deserialize(deserializer).map(|parts| InstanceKey(Arc::new(parts)))
    }
}

impl InstanceKey {
    pub fn new(
        namespace: impl Into<String>,
        pod: impl Into<String>,
        container: impl Into<String>,
        pid: i64,
    ) -> Self {
        InstanceKey(Arc::new(KeyParts {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.into(),
            pid,
        }))
    }

    /// The resource name: `<pod>.<container>.<pid>`.
    ///
    /// Container names cannot contain dots, so the name is unambiguous (Odigos' own
    /// `<pod>-<pid>` collides when two containers both run pid 1). Names that would be too
    /// long or invalid get a readable prefix and a hash of the exact key instead.
    pub fn resource_name(&self) -> String {
        let plain = format!("{}.{}.{}", self.pod, self.container, self.pid);
        if is_dns_subdomain(&plain) {
            return plain;
        }
        let mut digest = Sha256::new();
        for part in [
            self.pod.as_bytes(),
            self.container.as_bytes(),
            self.pid.to_string().as_bytes(),
        ] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-';
        with_hash(
            &plain.to_ascii_lowercase(),
            &digest.finalize()[..8],
            MAX_NAME_LEN,
            allowed,
        )
    }
}

/// The fallback of every name the server derives from agent input (resource names, label
/// values) when the input is not valid as it is: `text` with each character `allowed`
/// refuses made a `-`, cut to leave room for `-<hash>`, its ends trimmed to alphanumerics,
/// then `-` and the hash in hex (the hash alone when nothing is left). The hash is of the
/// exact input, so different inputs never share a name.
pub fn with_hash(
    text: &str,
    hash: &[u8],
    max_len: usize,
    allowed: impl Fn(char) -> bool,
) -> String {
    let suffix = hex::encode(hash);
    let cleaned: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(max_len.saturating_sub(suffix.len() + 1))
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if cleaned.is_empty() {
        suffix
    } else {
        format!("{cleaned}-{suffix}")
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= MAX_NAME_LEN && name.split('.').all(label_ok)
}

/// One `{key, value}` attribute of the resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attribute {
    #[schemars(length(min = 1))]
    pub key: String,
    pub value: String,
}

/// What a component of an agent is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComponentType {
    Instrumentation,
    Sampler,
    Exporter,
}

/// One entry of `status.components`: a part of the agent (an instrumentation library, a
/// sampler, an exporter) and its health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ComponentType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifying_attributes: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_identifying_attributes: Vec<Attribute>,
    #[serde(default)]
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub last_status_time: String,
}

/// `status` of an `InstrumentationInstance`: the agent's description and health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The agent description's identifying attributes, values as strings.
    #[serde(default)]
    pub identifying_attributes: Vec<Attribute>,
    /// The agent description's non-identifying attributes, values as strings.
    #[serde(default)]
    pub non_identifying_attributes: Vec<Attribute>,
    /// The agent's own health report; absent until it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Human-readable detail, e.g. the agent's last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub message: Option<String>,
    /// A programmatic reason, e.g. Starting, Healthy, ProcessTerminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the agent last reported a change of status.
    #[schemars(extend("format" = "date-time"))]
    pub last_status_time: String,
    /// Health of the agent's parts (instrumentation libraries, samplers, exporters), sorted
    /// by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

/// Everything needed to write one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    pub key: InstanceKey,
    /// Resource name, from [`InstanceKey::resource_name`].
    pub name: String,
    /// `spec.containerName`.
    pub container_name: String,
    /// Owner reference target (the Pod's uid, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Label `instrumented-app`: `<lowercase kind>-<workload name>`.
    pub instrumented_app: String,
    /// Label `ownerPodName`.
    pub owner_pod_name: String,
    /// Label `odigos.io/peer-verification`: `verified`, `unverified` or `not-checked`.
    #[serde(deserialize_with = "verification_label")]
    pub peer_verification: Label,
    pub status: InstanceStatus,
}

impl InstanceRecord {
    /// The record for an agent's current state; `now` stamps statuses without a time.
    pub fn from_state(state: &AgentState, now: SystemTime) -> Self {
        let key = instance_key(state);
        let description = state.description.decode();
        let health = state.health.as_ref();
        let status_time = health.map_or(now, |h| time_or(h.status_time_unix_nano, now));
        let status = InstanceStatus {
            identifying_attributes: attributes(&description.identifying_attributes),
            non_identifying_attributes: attributes(&description.non_identifying_attributes),
            healthy: health.map(|h| h.healthy),
            message: health.and_then(|h| non_empty(&h.last_error)).map(truncate),
            reason: health.and_then(|h| non_empty(&h.status)),
            last_status_time: rfc3339(status_time),
            components: health.map_or_else(Vec::new, |h| components(h, status_time)),
        };
        let KeyNames {
            name,
            container_name,
            owner_pod_name,
        } = KeyNames::of(&key);
        InstanceRecord {
            name,
            container_name,
            pod_uid: state.identity.pod_uid.clone(),
            instrumented_app: state.identity.workload.object_name(),
            owner_pod_name,
            peer_verification: state.binding.verification.label(),
            key,
            status,
        }
    }

    /// Whether the record's names are the ones its key gives ([`KeyNames::of`]), as every
    /// record [`Self::from_state`] makes has them: a store may then keep them unwritten.
    pub fn names_follow_key(&self) -> bool {
        let KeyNames {
            name,
            container_name,
            owner_pod_name,
        } = KeyNames::of(&self.key);
        self.name == name
            && self.container_name == container_name
            && self.owner_pod_name == owner_pod_name
    }
}

/// The fields of a record that follow from its key.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyNames {
    /// The resource name, [`InstanceKey::resource_name`].
    pub name: String,
    /// The key's container.
    pub container_name: String,
    /// The key's pod.
    pub owner_pod_name: String,
}

impl KeyNames {
    pub fn of(key: &InstanceKey) -> Self {
        KeyNames {
            name: key.resource_name(),
            container_name: key.container.clone(),
            owner_pod_name: key.pod.clone(),
        }
    }
}

/// One of a fixed set of words. An alias, not `&'static str` written out: serde's derive
/// would take that for a string borrowed from the input and read records only from
/// `'static` input.
pub type Label = &'static str;

/// `peer_verification` read back: one of [`Verification::label`]'s words.
pub(crate) fn verification_label<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<&'static str, D::Error> {
    let text = String::deserialize(deserializer)?;
    Verification::known_label(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown peer verification {text:?}: expected verified, unverified or not-checked"
        ))
    })
}

/// The key of an agent's resource.
pub fn instance_key(state: &AgentState) -> InstanceKey {
    InstanceKey::new(
        state.identity.namespace.as_str(),
        state.identity.pod_name.as_str(),
        state.identity.container.as_str(),
        state.pid,
    )
}

/// Attributes with an empty key are dropped: the CRD requires `minLength: 1`. Sized
/// exactly: a record lives as long as its agent (collecting a filter would reserve 8 for 6).
fn attributes(kvs: &[KeyValue]) -> Vec<Attribute> {
    let mut out = Vec::with_capacity(kvs.iter().filter(|kv| !kv.key.is_empty()).count());
    out.extend(
        kvs.iter()
            .filter(|kv| !kv.key.is_empty())
            .map(|kv| Attribute {
                key: kv.key.clone(),
                value: stringify(kv.value.as_ref()),
            }),
    );
    out
}

/// Components sorted by name (the map is ordered). A JSON-object status becomes the
/// component's attributes; any other status text becomes its message.
fn components(health: &ComponentHealth, parent_time: SystemTime) -> Vec<Component> {
    health
        .component_health_map
        .iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, c)| {
            let details =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&c.status);
            let (attrs, reason, message) = match details {
                Ok(object) => (json_attributes(object), None, non_empty(&c.last_error)),
                Err(_) => (
                    Vec::new(),
                    Some(DETAILS_REASON.to_owned()),
                    non_empty(&c.status).or_else(|| non_empty(&c.last_error)),
                ),
            };
            Component {
                name: name.clone(),
                kind: ComponentType::Instrumentation,
                identifying_attributes: Vec::new(),
                non_identifying_attributes: attrs,
                healthy: c.healthy,
                message: message.map(truncate),
                reason,
                last_status_time: rfc3339(time_or(c.status_time_unix_nano, parent_time)),
            }
        })
        .collect()
}

fn json_attributes(object: serde_json::Map<String, serde_json::Value>) -> Vec<Attribute> {
    object
        .into_iter()
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            Attribute { key, value }
        })
        .collect()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn truncate(mut s: String) -> String {
    if let Some((cut, _)) = s.char_indices().nth(MAX_MESSAGE_CHARS) {
        s.truncate(cut);
    }
    s
}

fn time_or(unix_nanos: u64, fallback: SystemTime) -> SystemTime {
    if unix_nanos == 0 {
        fallback
    } else {
        UNIX_EPOCH + Duration::from_nanos(unix_nanos)
    }
}

/// RFC 3339 with second precision, as Kubernetes stores `date-time`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A record for unit tests: pod `pod` in namespace `ns`, container `app`, process `pid`, of
/// Deployment `web`, with no health reported yet.
#[cfg(test)]
pub(crate) fn test_record(pod: &str, pid: i64) -> InstanceRecord {
    let key = InstanceKey::new("ns", pod, "app", pid);
    InstanceRecord {
        name: key.resource_name(),
        container_name: "app".into(),
        pod_uid: Some("u".into()),
        instrumented_app: "deployment-web".into(),
        owner_pod_name: pod.into(),
        peer_verification: "not-checked",
        status: InstanceStatus {
            identifying_attributes: Vec::new(),
            non_identifying_attributes: Vec::new(),
            healthy: None,
            message: None,
            reason: None,
            last_status_time: "2026-01-01T00:00:00Z".into(),
            components: Vec::new(),
        },
        key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pod: &str, container: &str, pid: i64) -> InstanceKey {
        InstanceKey::new("ns", pod, container, pid)
    }

    #[test]
    fn names_are_readable_and_unique_per_container() {
        assert_eq!(
            key("coupon-abc", "app", 1).resource_name(),
            "coupon-abc.app.1"
        );
        assert_ne!(
            key("p", "a", 1).resource_name(),
            key("p", "b", 1).resource_name()
        );
        // The two readings of "a-b-c" stay apart.
        assert_ne!(
            key("a-b", "c", 1).resource_name(),
            key("a", "b-c", 1).resource_name()
        );
    }

    #[test]
    fn long_or_invalid_names_fall_back_to_prefix_and_hash() {
        let long = key(&"p".repeat(250), "app", 12345);
        let name = long.resource_name();
        assert!(
            name.len() <= MAX_NAME_LEN && is_dns_subdomain(&name),
            "{name}"
        );
        assert_ne!(name, key(&"p".repeat(250), "app", 12346).resource_name());
        let odd = key("Pod_Name", "app", 1).resource_name();
        assert!(
            is_dns_subdomain(&odd) && odd.starts_with("pod-name-app-1-"),
            "{odd}"
        );
    }

    #[test]
    fn messages_are_cut_at_the_crd_limit_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        assert_eq!(truncate(long).chars().count(), MAX_MESSAGE_CHARS);
        assert_eq!(truncate("short".into()), "short");
    }
}
