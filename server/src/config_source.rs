//! Where each workload's agent configuration comes from (docs/protocol.md §5).
//!
//! The server asks on every poll, so implementations answer from memory: the Kubernetes one
//! keeps a watch-fed cache of `InstrumentationConfig` objects. A changed answer changes the
//! config hash, and the agent gets the new config in its next poll response.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;

use crate::identity::Workload;

/// A workload, fully qualified: its namespace, kind and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct WorkloadKey {
    pub namespace: String,
    #[serde(flatten)]
    pub workload: Workload,
}

/// One instrumentation library's settings (`spec.sdkConfigs[].instrumentationLibraryConfigs[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LibraryConfig {
    pub name: String,
    /// `None` leaves the agent's default.
    pub traces_enabled: Option<bool>,
}

/// One container's entry of a workload's config (`spec.containers[]` of its
/// `InstrumentationConfig`, Odigos' `ContainerAgentConfig`), kept whole: every field Odigos
/// writes there, today's and future ones, reaches the agent unchanged as its
/// `container_config` section. Encoded once, with the keys of every object sorted, so the
/// same entry gives the same bytes (and config hash) on every node and after every restart.
#[derive(Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    container: String,
    json: Arc<[u8]>,
    traces: bool,
}

/// Why a value cannot be a container's config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerConfigError {
    #[error("a container config must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("containerName must be a non-empty string")]
    NoContainerName,
}

impl ContainerConfig {
    /// A `spec.containers[]` entry: a JSON object with a non-empty string `containerName`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, ContainerConfigError> {
        let object = value
            .as_object()
            .ok_or_else(|| ContainerConfigError::NotAnObject(json_kind(value)))?;
        let container = match object.get("containerName") {
            Some(serde_json::Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(ContainerConfigError::NoContainerName),
        };
        let json = serde_json::to_vec(&SortedKeys(value))
            .expect("a JSON value always serializes")
            .into();
        Ok(ContainerConfig {
            container,
            json,
            // Odigos' rule: a signal is on when its key is present, whatever its value.
            traces: object.contains_key("traces"),
        })
    }

    /// The entry's `containerName`.
    pub fn container_name(&self) -> &str {
        &self.container
    }

    /// The `container_config` body: the entry as canonical JSON.
    pub fn body(&self) -> &[u8] {
        &self.json
    }

    /// Whether the entry turns tracing on (it has a `traces` key).
    pub fn traces_enabled(&self) -> bool {
        self.traces
    }

    /// The entry as a JSON value (for views and tests; the hot path uses [`Self::body`]).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).expect("the body was written from a JSON value")
    }
}

impl std::fmt::Debug for ContainerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.json))
    }
}

impl Serialize for ContainerConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Serializes a JSON value with the keys of every object in sorted order, whatever order
/// the map keeps (serde_json keeps insertion order when a dependency turns on its
/// `preserve_order` feature).
struct SortedKeys<'a>(&'a serde_json::Value);

impl Serialize for SortedKeys<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &SortedKeys(value))?;
                }
                out.end()
            }
            serde_json::Value::Array(items) => s.collect_seq(items.iter().map(SortedKeys)),
            scalar => scalar.serialize(s),
        }
    }
}

/// What the server tells a workload's agents, beyond who they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadConfig {
    /// `spec.serviceName`; when `None`, `service.name` is the workload name.
    pub service_name: Option<String>,
    pub libraries: Vec<LibraryConfig>,
    /// `spec.containers[]`, by `containerName`. A container without an entry gets the
    /// default of [`crate::protocol::remote_config::default_container_config`].
    pub containers: BTreeMap<String, ContainerConfig>,
}

impl WorkloadConfig {
    /// Add a container's entry, keyed by its `containerName`; an earlier entry for the same
    /// container is kept (Odigos reads the first one too).
    pub fn add_container(&mut self, config: ContainerConfig) {
        self.containers
            .entry(config.container.clone())
            .or_insert(config);
    }
}

/// Answers "what is this workload's config now?". Called on every poll: answer from memory.
pub trait ConfigSource: Send + Sync + 'static {
    fn workload_config(&self, workload: &WorkloadKey) -> Arc<WorkloadConfig>;
}

/// An in-memory [`ConfigSource`]: defaults for every workload, with per-workload
/// replacements that can be changed at runtime (tests, development).
#[derive(Debug, Default)]
pub struct MemoryConfigSource {
    default: Arc<WorkloadConfig>,
    overrides: RwLock<HashMap<WorkloadKey, Arc<WorkloadConfig>>>,
}

impl MemoryConfigSource {
    /// Defaults for every workload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace one workload's config; its agents see it on their next poll.
    pub fn set(&self, workload: WorkloadKey, config: WorkloadConfig) {
        let mut overrides = self
            .overrides
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        overrides.insert(workload, Arc::new(config));
    }

    /// Return one workload to the defaults.
    pub fn remove(&self, workload: &WorkloadKey) {
        let mut overrides = self
            .overrides
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        overrides.remove(workload);
    }
}

impl ConfigSource for MemoryConfigSource {
    fn workload_config(&self, workload: &WorkloadKey) -> Arc<WorkloadConfig> {
        let overrides = self
            .overrides
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        overrides.get(workload).unwrap_or(&self.default).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::WorkloadKind;

    #[test]
    fn container_configs_keep_every_field_and_sort_every_object() {
        let entry = serde_json::json!({
            "traces": {"headSampling": {"noisyOperations": [{"percentageAtMost": 0.5, "id": "a"}]}},
            "containerName": "app",
            "agentEnabled": true,
            "fieldOdigosAddsNextYear": {"z": 1, "a": [true, null]},
        });
        let config = ContainerConfig::from_json(&entry).expect("valid entry");
        assert_eq!(
            std::str::from_utf8(config.body()).unwrap(),
            r#"{"agentEnabled":true,"containerName":"app","fieldOdigosAddsNextYear":{"a":[true,null],"z":1},"traces":{"headSampling":{"noisyOperations":[{"id":"a","percentageAtMost":0.5}]}}}"#
        );
        assert_eq!(config.value(), entry, "nothing dropped or changed");
        assert_eq!(config.container_name(), "app");
        assert!(config.traces_enabled());
        // Only the key's presence matters, as in Odigos' agents.
        let empty_traces = serde_json::json!({"containerName": "app", "traces": null});
        assert!(
            ContainerConfig::from_json(&empty_traces)
                .unwrap()
                .traces_enabled()
        );
        let no_traces = serde_json::json!({"containerName": "app", "agentEnabled": true});
        assert!(
            !ContainerConfig::from_json(&no_traces)
                .unwrap()
                .traces_enabled()
        );
    }

    #[test]
    fn container_configs_need_an_object_with_a_container_name() {
        assert_eq!(
            ContainerConfig::from_json(&serde_json::json!(["app"])),
            Err(ContainerConfigError::NotAnObject("an array"))
        );
        for entry in [
            serde_json::json!({"agentEnabled": true}),
            serde_json::json!({"containerName": ""}),
            serde_json::json!({"containerName": 7}),
        ] {
            assert_eq!(
                ContainerConfig::from_json(&entry),
                Err(ContainerConfigError::NoContainerName),
                "{entry}"
            );
        }
    }

    #[test]
    fn the_first_entry_of_a_container_wins() {
        let mut config = WorkloadConfig::default();
        let entry = |enabled: bool| {
            ContainerConfig::from_json(
                &serde_json::json!({"containerName": "app", "agentEnabled": enabled}),
            )
            .unwrap()
        };
        config.add_container(entry(true));
        config.add_container(entry(false));
        assert_eq!(config.containers["app"], entry(true));
    }

    #[test]
    fn overrides_apply_to_one_workload_and_can_be_removed() {
        let source = MemoryConfigSource::new();
        let key = |name: &str| WorkloadKey {
            namespace: "shop".into(),
            workload: Workload {
                kind: WorkloadKind::Deployment,
                name: name.into(),
            },
        };
        let custom = WorkloadConfig {
            service_name: Some("svc".into()),
            ..Default::default()
        };
        source.set(key("coupon"), custom.clone());
        assert_eq!(*source.workload_config(&key("coupon")), custom);
        assert_eq!(
            *source.workload_config(&key("cart")),
            WorkloadConfig::default()
        );
        source.remove(&key("coupon"));
        assert_eq!(
            *source.workload_config(&key("coupon")),
            WorkloadConfig::default()
        );
    }
}
