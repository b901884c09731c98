//! [`ConfigSource`] from watched `InstrumentationConfig` objects (docs/protocol.md §5).
//!
//! Each object is named `<lowercase workload kind>-<workload name>` in the workload's
//! namespace. The watch keeps a map from workload to config; polls read it without
//! allocating. A changed object changes the answer, so the agents' config hash changes and
//! they get the new config in their next poll; a deleted one falls back to the defaults.

use std::sync::Arc;

use kube::api::{Api, ApiResource};

use super::crds::InstrumentationConfig;
use kube::runtime::watcher;
use serde::Deserialize;
use tokio::task::JoinHandle;

use super::watch::{self, ProjectedMirror, Projection, WatchStatus};
use crate::config_source::{
    ConfigSource, ContainerConfig, LibraryConfig, WorkloadConfig, WorkloadKey,
};
use crate::identity::{Workload, WorkloadKind};

/// The `InstrumentationConfig` kind (read only), for untyped access (tests, tools).
pub fn api_resource() -> ApiResource {
    ApiResource::erase::<InstrumentationConfig>(&())
}

/// `spec.sdkConfigs[]`, the part the `InstrumentationLibraries` section is made of.
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

/// The config in an object's `spec`: `serviceName`, `sdkConfigs[]` (libraries of every SDK
/// language are sent; an agent ignores libraries it does not have; a library named twice
/// keeps its first entry) and `containers[]` (each entry whole; the first entry of a
/// container wins). An empty `serviceName` means "the workload name". Each entry is read on
/// its own, so one that does not parse (with a warning naming the object) leaves the others
/// in force.
pub fn workload_config(object: &InstrumentationConfig) -> WorkloadConfig {
    let spec = &object.spec;
    let warn = |what: &str, error: &dyn std::fmt::Display| {
        tracing::warn!(
            namespace = object.metadata.namespace.as_deref().unwrap_or_default(),
            name = object.metadata.name.as_deref().unwrap_or_default(),
            %error,
            "InstrumentationConfig {what} not understood; ignored"
        );
    };
    let mut config = WorkloadConfig {
        service_name: spec.service_name.clone().filter(|s| !s.is_empty()),
        ..WorkloadConfig::default()
    };
    let mut sdks = Vec::new();
    for entry in &spec.sdk_configs {
        match SdkConfig::deserialize(entry) {
            Ok(sdk) => sdks.push(sdk),
            Err(error) => warn("spec.sdkConfigs[] entry", &error),
        }
    }
    config.libraries = libraries(sdks);
    for entry in &spec.containers {
        match ContainerConfig::from_json(entry) {
            Ok(container) => config.add_container(container),
            Err(error) => warn("spec.containers[] entry", &error),
        }
    }
    config
}

fn libraries(sdks: Vec<SdkConfig>) -> Vec<LibraryConfig> {
    let mut libraries: Vec<LibraryConfig> = Vec::new();
    let entries = sdks
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
    libraries
}

fn key_of(object: &InstrumentationConfig) -> Option<WorkloadKey> {
    Some(WorkloadKey {
        namespace: object.metadata.namespace.clone()?,
        workload: workload_of(object.metadata.name.as_deref()?)?,
    })
}

/// Every `InstrumentationConfig`, by the workload it configures, as [`WorkloadConfig`].
struct Configs;

impl Projection for Configs {
    type Object = InstrumentationConfig;
    type Key = WorkloadKey;
    type Value = WorkloadConfig;

    fn key(object: &InstrumentationConfig) -> Option<WorkloadKey> {
        key_of(object)
    }

    fn value(object: &InstrumentationConfig) -> Option<WorkloadConfig> {
        Some(workload_config(object))
    }

    fn changed(key: &WorkloadKey, value: Option<&WorkloadConfig>) {
        let workload = key.workload.object_name();
        match value {
            Some(_) => {
                tracing::info!(namespace = %key.namespace, %workload, "InstrumentationConfig changed");
            }
            None => {
                tracing::info!(namespace = %key.namespace, %workload, "InstrumentationConfig deleted: defaults from now on");
            }
        }
    }
}

/// Every namespace's `InstrumentationConfig`s, watched.
pub struct KubeConfigSource {
    mirror: Arc<ProjectedMirror<Configs>>,
    status: Arc<WatchStatus>,
    default: Arc<WorkloadConfig>,
}

impl KubeConfigSource {
    /// Start watching. The watch runs until the returned task is aborted.
    pub fn start(client: kube::Client) -> (Arc<Self>, JoinHandle<()>) {
        let mirror = Arc::new(ProjectedMirror::<Configs>::default());
        let status = Arc::new(WatchStatus::default());
        let api = Api::<InstrumentationConfig>::all(client);
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

    /// The watch's status (for readiness).
    pub fn watch_status(&self) -> Arc<WatchStatus> {
        Arc::clone(&self.status)
    }
}

impl ConfigSource for KubeConfigSource {
    fn workload_config(&self, workload: &WorkloadKey) -> Arc<WorkloadConfig> {
        self.mirror
            .get(workload)
            .unwrap_or_else(|| Arc::clone(&self.default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, spec: serde_json::Value) -> InstrumentationConfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "odigos.io/v1alpha1",
            "kind": "InstrumentationConfig",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": spec,
        }))
        .expect("an InstrumentationConfig")
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
        assert!(config.containers.is_empty());
    }

    #[test]
    fn container_entries_are_kept_whole_by_container_name() {
        let app = serde_json::json!({
            "containerName": "app",
            "agentEnabled": true,
            "otelDistroName": "python-community",
            "traces": {"headSampling": {"noisyOperations": []}, "someFutureField": [1, 2]},
        });
        let config = workload_config(&object(
            "deployment-coupon",
            serde_json::json!({
                "containers": [
                    app,
                    {"containerName": "sidecar", "agentEnabled": false},
                    {"agentEnabled": true},
                    "not an object",
                    {"containerName": "app", "agentEnabled": false},
                ],
            }),
        ));
        let names: Vec<&str> = config.containers.keys().map(String::as_str).collect();
        assert_eq!(names, ["app", "sidecar"]);
        assert_eq!(
            config.containers["app"].value(),
            app,
            "first entry, unchanged"
        );
        assert!(config.containers["app"].traces_enabled());
        assert!(!config.containers["sidecar"].traces_enabled());
    }

    #[test]
    fn one_bad_entry_leaves_the_others_in_force() {
        let config = workload_config(&object(
            "deployment-a",
            serde_json::json!({
                "serviceName": "svc",
                "sdkConfigs": ["nope", {"language": "python", "instrumentationLibraryConfigs": "nope"}],
                "containers": [{"containerName": "app", "agentEnabled": true}],
            }),
        ));
        assert_eq!(config.service_name.as_deref(), Some("svc"));
        assert!(config.libraries.is_empty());
        assert_eq!(config.containers.len(), 1);
    }

    #[test]
    fn unchanged_configs_keep_their_arc_through_updates_and_relists() {
        use super::super::watch::Mirror as _;
        let mirror = ProjectedMirror::<Configs>::default();
        let spec =
            serde_json::json!({"containers": [{"containerName": "app", "agentEnabled": true}]});
        let key = key_of(&object("deployment-a", spec.clone())).unwrap();
        let current = |m: &ProjectedMirror<Configs>| m.get(&key).unwrap();
        mirror.upsert(object("deployment-a", spec.clone()));
        let first = current(&mirror);
        // A status-only update: the spec is the same.
        let mut status_update = object("deployment-a", spec.clone());
        status_update.status = Some(Default::default());
        status_update.metadata.resource_version = Some("2".into());
        mirror.upsert(status_update);
        assert!(Arc::ptr_eq(&first, &current(&mirror)));
        mirror.replace(vec![object("deployment-a", spec.clone())]);
        assert!(Arc::ptr_eq(&first, &current(&mirror)));
        let changed =
            serde_json::json!({"containers": [{"containerName": "app", "agentEnabled": false}]});
        mirror.upsert(object("deployment-a", changed));
        assert!(!Arc::ptr_eq(&first, &current(&mirror)));
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
            serde_json::json!({"sdkConfigs": [7], "containers": [7]}),
        ));
        assert_eq!(odd, WorkloadConfig::default());
    }
}
