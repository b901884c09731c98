//! [`ConfigSource`] from watched `InstrumentationConfig` objects (PROTOCOL.md §5).
//!
//! Each object is named `<lowercase workload kind>-<workload name>` in the workload's
//! namespace. The watch keeps a map from workload to config; polls read it without
//! allocating. A changed object changes the answer, so the agents' config hash changes and
//! they get the new config in their next poll; a deleted one falls back to the defaults.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher;
use serde::Deserialize;
use tokio::task::JoinHandle;

use super::watch::{self, Mirror, WatchStatus};
use crate::config_source::{ConfigSource, LibraryConfig, WorkloadConfig, WorkloadKey};
use crate::identity::{Workload, WorkloadKind};

/// The `InstrumentationConfig` kind (read only).
pub fn api_resource() -> ApiResource {
    ApiResource {
        group: "odigos.io".into(),
        version: "v1alpha1".into(),
        api_version: "odigos.io/v1alpha1".into(),
        kind: "InstrumentationConfig".into(),
        plural: "instrumentationconfigs".into(),
    }
}

/// The part of `spec` the server reads; everything else Odigos keeps there is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    sdk_configs: Vec<SdkConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SdkConfig {
    #[serde(default)]
    instrumentation_library_configs: Vec<LibraryEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LibraryEntry {
    library_id: LibraryId,
    #[serde(default)]
    trace_config: Option<TraceConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LibraryId {
    library_name: String,
}

#[derive(Debug, Deserialize)]
struct TraceConfig {
    #[serde(default)]
    enabled: Option<bool>,
}

/// The workload an `InstrumentationConfig` name refers to: `deployment-coupon` →
/// (Deployment, coupon). Kind names have no dash, so the first dash splits.
pub fn workload_of(object_name: &str) -> Option<Workload> {
    let (kind, name) = object_name.split_once('-')?;
    let kind: WorkloadKind = kind.parse().ok()?;
    (!name.is_empty()).then(|| Workload {
        kind,
        name: name.to_owned(),
    })
}

/// The config in an object's `spec`. Libraries of every SDK language are sent (an agent
/// ignores libraries it does not have); a library named twice keeps its first entry. An
/// empty `serviceName` means "the workload name". A `spec` that does not parse gives the
/// defaults, with a warning naming the object.
pub fn workload_config(object: &DynamicObject) -> WorkloadConfig {
    let spec = match object.data.get("spec") {
        None | Some(serde_json::Value::Null) => Spec::default(),
        Some(value) => Spec::deserialize(value).unwrap_or_else(|error| {
            tracing::warn!(
                namespace = object.metadata.namespace.as_deref().unwrap_or_default(),
                name = object.metadata.name.as_deref().unwrap_or_default(),
                %error,
                "InstrumentationConfig spec not understood; using the defaults"
            );
            Spec::default()
        }),
    };
    let mut libraries: Vec<LibraryConfig> = Vec::new();
    let entries = spec
        .sdk_configs
        .into_iter()
        .flat_map(|sdk| sdk.instrumentation_library_configs);
    for entry in entries {
        let name = entry.library_id.library_name;
        if name.is_empty() || libraries.iter().any(|l| l.name == name) {
            continue;
        }
        libraries.push(LibraryConfig {
            name,
            traces_enabled: entry.trace_config.and_then(|t| t.enabled),
        });
    }
    WorkloadConfig {
        service_name: spec.service_name.filter(|s| !s.is_empty()),
        libraries,
        ..WorkloadConfig::default()
    }
}

fn key_of(object: &DynamicObject) -> Option<WorkloadKey> {
    Some(WorkloadKey {
        namespace: object.metadata.namespace.clone()?,
        workload: workload_of(object.metadata.name.as_deref()?)?,
    })
}

type ConfigMap = HashMap<WorkloadKey, Arc<WorkloadConfig>>;

#[derive(Default)]
struct ConfigMirror {
    configs: RwLock<ConfigMap>,
}

impl ConfigMirror {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ConfigMap> {
        self.configs.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Mirror for ConfigMirror {
    type Object = DynamicObject;

    fn upsert(&self, object: DynamicObject) {
        if let Some(key) = key_of(&object) {
            let config = Arc::new(workload_config(&object));
            tracing::info!(namespace = %key.namespace, workload = %key.workload.object_name(), "InstrumentationConfig changed");
            self.write().insert(key, config);
        }
    }

    fn remove(&self, object: &DynamicObject) {
        if let Some(key) = key_of(object) {
            tracing::info!(namespace = %key.namespace, workload = %key.workload.object_name(), "InstrumentationConfig deleted: defaults from now on");
            self.write().remove(&key);
        }
    }

    fn replace(&self, objects: Vec<DynamicObject>) {
        let map: ConfigMap = objects
            .iter()
            .filter_map(|o| Some((key_of(o)?, Arc::new(workload_config(o)))))
            .collect();
        *self.write() = map;
    }
}

/// Every namespace's `InstrumentationConfig`s, watched.
pub struct KubeConfigSource {
    mirror: Arc<ConfigMirror>,
    status: Arc<WatchStatus>,
    default: Arc<WorkloadConfig>,
}

impl KubeConfigSource {
    /// Start watching. The watch runs until the returned task is aborted.
    pub fn start(client: kube::Client) -> (Arc<Self>, JoinHandle<()>) {
        let mirror = Arc::new(ConfigMirror::default());
        let status = Arc::new(WatchStatus::default());
        let api = Api::<DynamicObject>::all_with(client, &api_resource());
        let task = watch::spawn(
            "instrumentationconfigs",
            api,
            watcher::Config::default(),
            Arc::clone(&mirror),
            Arc::clone(&status),
            |object| object.metadata.managed_fields = None,
        );
        let source = KubeConfigSource {
            mirror,
            status,
            default: Arc::new(WorkloadConfig::default()),
        };
        (Arc::new(source), task)
    }

    /// The watch has delivered its first complete list.
    pub fn is_synced(&self) -> bool {
        self.status.is_synced()
    }

    /// The watch's status (for readiness).
    pub fn watch_status(&self) -> Arc<WatchStatus> {
        Arc::clone(&self.status)
    }
}

impl ConfigSource for KubeConfigSource {
    fn workload_config(&self, workload: &WorkloadKey) -> Arc<WorkloadConfig> {
        let configs = self
            .mirror
            .configs
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        configs.get(workload).unwrap_or(&self.default).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, spec: serde_json::Value) -> DynamicObject {
        let mut object = DynamicObject::new(name, &api_resource()).within("shop");
        object.data = serde_json::json!({ "spec": spec });
        object
    }

    #[test]
    fn names_map_to_workloads() {
        let w = workload_of("deployment-coupon-v2").expect("parses");
        assert_eq!(
            (w.kind, w.name.as_str()),
            (WorkloadKind::Deployment, "coupon-v2")
        );
        assert_eq!(
            workload_of("statefulset-db").map(|w| w.kind),
            Some(WorkloadKind::StatefulSet)
        );
        assert_eq!(workload_of("replicaset-x"), None);
        assert_eq!(workload_of("deployment-"), None);
        assert_eq!(workload_of("nodash"), None);
    }

    #[test]
    fn spec_maps_service_name_and_libraries_of_every_language() {
        let config = workload_config(&object(
            "deployment-coupon",
            serde_json::json!({
                "serviceName": "coupon-svc",
                "agentsMetaHashChangedTime": "ignored",
                "sdkConfigs": [
                    {"language": "python", "instrumentationLibraryConfigs": [
                        {"libraryId": {"libraryName": "flask"}, "traceConfig": {"enabled": false}},
                        {"libraryId": {"libraryName": "requests"}},
                    ]},
                    {"language": "javascript", "headSamplerConfig": {}, "instrumentationLibraryConfigs": [
                        {"libraryId": {"libraryName": "flask"}, "traceConfig": {"enabled": true}},
                        {"libraryId": {"libraryName": "@opentelemetry/instrumentation-http", "spanKind": "client"}, "traceConfig": {}},
                    ]},
                ],
            }),
        ));
        assert_eq!(config.service_name.as_deref(), Some("coupon-svc"));
        let libraries: Vec<(&str, Option<bool>)> = config
            .libraries
            .iter()
            .map(|l| (l.name.as_str(), l.traces_enabled))
            .collect();
        assert_eq!(
            libraries,
            [
                ("flask", Some(false)),
                ("requests", None),
                ("@opentelemetry/instrumentation-http", None)
            ]
        );
        assert!(config.trace_signal_enabled);
    }

    #[test]
    fn empty_or_unreadable_specs_are_the_defaults() {
        let empty = workload_config(&object(
            "deployment-a",
            serde_json::json!({"serviceName": ""}),
        ));
        assert_eq!(empty, WorkloadConfig::default());
        let odd = workload_config(&object(
            "deployment-a",
            serde_json::json!({"sdkConfigs": "nope"}),
        ));
        assert_eq!(odd, WorkloadConfig::default());
    }
}
