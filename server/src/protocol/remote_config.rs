//! The remote config the server offers an agent (docs/protocol.md §5): the `container_config`,
//! `SDK` and `InstrumentationLibraries` sections and their hash.
//!
//! Three generations of Odigos agents are in the field and each reads another section, so
//! every remote config carries all three: `container_config` (agents since May 2026), `SDK`
//! (resource attributes, and the trace switch of early-2026 agents), and
//! `InstrumentationLibraries` (old Node agents fail without it).

use odigos_opamp_proto::opamp::proto::{AgentConfigFile, AgentConfigMap, AgentRemoteConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config_source::{ContainerConfig, WorkloadConfig};
use crate::identity::ResolvedIdentity;

/// Config map key of the container's `InstrumentationConfig` entry, passed through whole.
pub const CONTAINER_SECTION: &str = "container_config";
/// Config map key of the resource attributes and trace switch.
pub const SDK_SECTION: &str = "SDK";
/// Config map key of the per-library settings (always present: older Node agents need it).
pub const LIBRARIES_SECTION: &str = "InstrumentationLibraries";
/// Content type of every section.
pub const JSON: &str = "application/json";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SdkSection<'a> {
    remote_resource_attributes: [ResourceAttribute<'a>; 6],
    trace_signal: TraceSignal,
}

#[derive(Serialize)]
struct ResourceAttribute<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceSignal {
    enabled: bool,
    default_enabled_value: bool,
}

#[derive(Serialize)]
struct Library<'a> {
    name: &'a str,
    traces: LibraryTraces,
}

#[derive(Serialize)]
struct LibraryTraces {
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
}

/// The `container_config` of a container that has no entry in its workload's config (no
/// `InstrumentationConfig`, not yet reconciled, or embedded mode without one): the agent on,
/// with traces on, as an agent that reaches no server runs. An agent that finds no `traces`
/// key turns tracing off, so a missing entry must never read as "traces off"; that takes an
/// entry without `traces`.
pub fn default_container_config(container: &str) -> ContainerConfig {
    let entry = serde_json::json!({
        "agentEnabled": true,
        "containerName": container,
        "traces": {},
    });
    ContainerConfig::from_json(&entry).expect("the default entry is an object with a name")
}

/// The complete remote config for one agent, with its hash.
pub fn build(
    node_name: &str,
    identity: &ResolvedIdentity,
    config: &WorkloadConfig,
) -> AgentRemoteConfig {
    let default_entry;
    let container = match config.containers.get(&identity.container) {
        Some(entry) => entry,
        None => {
            default_entry = default_container_config(&identity.container);
            &default_entry
        }
    };
    let workload = &identity.workload;
    let service_name = config.service_name.as_deref().unwrap_or(&workload.name);
    let attribute = |key, value| ResourceAttribute { key, value };
    let sdk = SdkSection {
        remote_resource_attributes: [
            attribute("k8s.node.name", node_name),
            attribute("k8s.namespace.name", &identity.namespace),
            attribute("service.name", service_name),
            attribute("k8s.pod.name", &identity.pod_name),
            attribute("k8s.container.name", &identity.container),
            attribute(workload.kind.resource_attribute(), &workload.name),
        ],
        trace_signal: TraceSignal {
            // The early-2026 agents' switch says what container_config says.
            enabled: container.traces_enabled(),
            default_enabled_value: true,
        },
    };
    let libraries: Vec<Library<'_>> = config
        .libraries
        .iter()
        .map(|l| Library {
            name: &l.name,
            traces: LibraryTraces {
                enabled: l.traces_enabled,
            },
        })
        .collect();

    let file = |body: Vec<u8>| AgentConfigFile {
        body,
        content_type: JSON.to_owned(),
    };
    let config_map = [
        (
            CONTAINER_SECTION.to_owned(),
            file(container.body().to_vec()),
        ),
        (SDK_SECTION.to_owned(), file(json(&sdk))),
        (LIBRARIES_SECTION.to_owned(), file(json(&libraries))),
    ]
    .into_iter()
    .collect();
    let map = AgentConfigMap { config_map };
    let config_hash = hash(&map);
    AgentRemoteConfig {
        config: Some(map),
        config_hash,
    }
}

/// SHA-256 over the section bodies in key order; keys and content types are not hashed.
pub fn hash(map: &AgentConfigMap) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for file in map.config_map.values() {
        hasher.update(&file.body);
    }
    hasher.finalize().to_vec()
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs (string keys, no maps) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_source::LibraryConfig;
    use crate::identity::{Workload, WorkloadKind};

    fn identity(kind: WorkloadKind, name: &str) -> ResolvedIdentity {
        ResolvedIdentity {
            namespace: "shop".into(),
            pod_name: "coupon-abc".into(),
            pod_uid: None,
            container: "app".into(),
            workload: Workload {
                kind,
                name: name.into(),
            },
        }
    }

    /// A workload config whose container `app` has this entry.
    fn with_app_entry(entry: serde_json::Value) -> WorkloadConfig {
        let mut config = WorkloadConfig::default();
        config.add_container(ContainerConfig::from_json(&entry).unwrap());
        config
    }

    fn body<'a>(config: &'a AgentRemoteConfig, key: &str) -> &'a str {
        let map = &config.config.as_ref().unwrap().config_map;
        std::str::from_utf8(&map[key].body).unwrap()
    }

    #[test]
    fn sdk_section_lists_attributes_in_the_documented_order() {
        let config = build(
            "node-1",
            &identity(WorkloadKind::Deployment, "coupon"),
            &WorkloadConfig::default(),
        );
        assert_eq!(
            body(&config, SDK_SECTION),
            r#"{"remoteResourceAttributes":[{"key":"k8s.node.name","value":"node-1"},{"key":"k8s.namespace.name","value":"shop"},{"key":"service.name","value":"coupon"},{"key":"k8s.pod.name","value":"coupon-abc"},{"key":"k8s.container.name","value":"app"},{"key":"k8s.deployment.name","value":"coupon"}],"traceSignal":{"enabled":true,"defaultEnabledValue":true}}"#
        );
        assert_eq!(body(&config, LIBRARIES_SECTION), "[]");
        assert!(
            config
                .config
                .unwrap()
                .config_map
                .values()
                .all(|f| f.content_type == JSON)
        );
    }

    #[test]
    fn service_name_override_and_bare_pods() {
        let cfg = WorkloadConfig {
            service_name: Some("coupon-svc".into()),
            libraries: vec![
                LibraryConfig {
                    name: "flask".into(),
                    traces_enabled: Some(false),
                },
                LibraryConfig {
                    name: "redis".into(),
                    traces_enabled: None,
                },
            ],
            ..with_app_entry(serde_json::json!({"containerName": "app", "agentEnabled": true}))
        };
        let config = build("n", &identity(WorkloadKind::Pod, "coupon-abc"), &cfg);
        let sdk = body(&config, SDK_SECTION);
        assert!(
            sdk.contains(r#"{"key":"service.name","value":"coupon-svc"}"#),
            "{sdk}"
        );
        assert!(sdk.ends_with(r#"{"key":"k8s.pod.name","value":"coupon-abc"}],"traceSignal":{"enabled":false,"defaultEnabledValue":true}}"#), "{sdk}");
        assert_eq!(
            body(&config, LIBRARIES_SECTION),
            r#"[{"name":"flask","traces":{"enabled":false}},{"name":"redis","traces":{}}]"#
        );
    }

    #[test]
    fn hash_is_sha256_of_bodies_in_key_order_and_changes_with_config() {
        let id = identity(WorkloadKind::Deployment, "coupon");
        let config = build("n", &id, &WorkloadConfig::default());
        let map = &config.config.as_ref().unwrap().config_map;
        // "InstrumentationLibraries" < "SDK" < "container_config" (byte order).
        let mut expected = Sha256::new();
        expected.update(&map[LIBRARIES_SECTION].body);
        expected.update(&map[SDK_SECTION].body);
        expected.update(&map[CONTAINER_SECTION].body);
        assert_eq!(config.config_hash, expected.finalize().to_vec());
        assert_eq!(
            build("n", &id, &WorkloadConfig::default()),
            config,
            "deterministic"
        );
        let entry = serde_json::json!({"containerName": "app", "agentEnabled": true});
        let other = with_app_entry(entry);
        assert_ne!(build("n", &id, &other).config_hash, config.config_hash);
        // Another container's entry is not this agent's config.
        let entry = serde_json::json!({"containerName": "sidecar", "agentEnabled": false});
        let sidecar = with_app_entry(entry);
        assert_eq!(build("n", &id, &sidecar).config_hash, config.config_hash);
    }

    #[test]
    fn container_config_passes_the_entry_through_and_sets_the_trace_switch() {
        let id = identity(WorkloadKind::Deployment, "coupon");
        let entry = serde_json::json!({
            "containerName": "app",
            "agentEnabled": true,
            "otelDistroName": "python-community",
            "traces": {"headSampling": {"noisyOperations": [{"id": "h", "percentageAtMost": 0}]}},
            "agentDiagnostics": {"odigosLogLevel": "info"},
        });
        let config = build("n", &id, &with_app_entry(entry.clone()));
        let sent: serde_json::Value =
            serde_json::from_str(body(&config, CONTAINER_SECTION)).unwrap();
        assert_eq!(sent, entry);
        assert!(
            body(&config, SDK_SECTION)
                .ends_with(r#""traceSignal":{"enabled":true,"defaultEnabledValue":true}}"#)
        );

        let off = serde_json::json!({"containerName": "app", "agentEnabled": true, "metrics": {}});
        let config = build("n", &id, &with_app_entry(off));
        assert!(!body(&config, CONTAINER_SECTION).contains("traces"));
        assert!(
            body(&config, SDK_SECTION)
                .ends_with(r#""traceSignal":{"enabled":false,"defaultEnabledValue":true}}"#)
        );
    }

    #[test]
    fn a_container_without_an_entry_gets_traces_on() {
        let id = identity(WorkloadKind::Deployment, "coupon");
        let config = build("n", &id, &WorkloadConfig::default());
        assert_eq!(
            body(&config, CONTAINER_SECTION),
            r#"{"agentEnabled":true,"containerName":"app","traces":{}}"#
        );
        assert!(body(&config, SDK_SECTION).contains(r#""traceSignal":{"enabled":true"#));
    }

    #[test]
    fn every_workload_kind_has_one_workload_key() {
        let expected = [
            (WorkloadKind::Deployment, "k8s.deployment.name"),
            (WorkloadKind::StatefulSet, "k8s.statefulset.name"),
            (WorkloadKind::DaemonSet, "k8s.daemonset.name"),
            (WorkloadKind::Job, "k8s.job.name"),
            (WorkloadKind::CronJob, "k8s.cronjob.name"),
            (WorkloadKind::Rollout, "k8s.argoproj.rollout.name"),
            (WorkloadKind::StaticPod, "k8s.pod.name"),
            (WorkloadKind::Pod, "k8s.pod.name"),
        ];
        for (kind, key) in expected {
            let config = build("n", &identity(kind, "w"), &WorkloadConfig::default());
            let sdk = body(&config, SDK_SECTION);
            assert!(
                sdk.contains(&format!(r#"{{"key":"{key}","value":"w"}}]"#)),
                "{kind}: {sdk}"
            );
        }
    }
}
