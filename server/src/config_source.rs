//! Where each workload's agent configuration comes from (PROTOCOL.md §5).
//!
//! The server asks on every poll, so implementations answer from memory: the Kubernetes one
//! keeps a watch-fed cache of `InstrumentationConfig` objects. A changed answer changes the
//! config hash, and the agent gets the new config in its next poll response.

use std::collections::HashMap;
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

/// What the server tells a workload's agents, beyond who they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadConfig {
    /// `spec.serviceName`; when `None`, `service.name` is the workload name.
    pub service_name: Option<String>,
    pub libraries: Vec<LibraryConfig>,
    pub trace_signal_enabled: bool,
}

impl Default for WorkloadConfig {
    /// No `InstrumentationConfig`: no service name override, no library settings, traces on.
    fn default() -> Self {
        WorkloadConfig {
            service_name: None,
            libraries: Vec::new(),
            trace_signal_enabled: true,
        }
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
