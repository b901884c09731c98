//! The two Odigos custom resources the server uses, as Rust types: what it writes
//! ([`InstrumentationInstance`]) and what it reads ([`InstrumentationConfig`]). The CRDs in
//! `deploy/crds/` are generated from these types (`cargo xtask generate`, through the
//! `odigos-opamp-crds` binary), so the code and the manifests cannot drift. Field names and
//! structure are Odigos' own: these are Odigos' objects.

use kube::CustomResource;
use kube::core::crd::merge_crds;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::instance::InstanceStatus;

/// The `spec` of an `InstrumentationInstance`: one agent process (docs/protocol.md §6),
/// written by the OpAMP server of the process's node.
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "odigos.io",
    version = "v1alpha1",
    kind = "InstrumentationInstance",
    doc = "One instrumented process, recorded by the Odigos OpAMP server of its node.",
    namespaced,
    status = "InstanceStatus",
    printcolumn = r#"{"name":"Container","type":"string","jsonPath":".spec.containerName"}"#,
    printcolumn = r#"{"name":"Healthy","type":"boolean","jsonPath":".status.healthy"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct InstrumentationInstanceSpec {
    /// The container, in the owning pod, that runs the instrumented process.
    #[schemars(length(min = 1))]
    pub container_name: String,
}

/// The `spec` of an `InstrumentationConfig`: a workload's agent configuration
/// (docs/protocol.md §5). Odigos keeps more here than the server reads; all of it is kept.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "odigos.io",
    version = "v1alpha1",
    kind = "InstrumentationConfig",
    doc = "A workload's agent configuration, written by Odigos and read by the OpAMP server.",
    namespaced,
    status = "InstrumentationConfigStatus",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.serviceName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct InstrumentationConfigSpec {
    /// The service.name resource attribute for the workload's telemetry; the workload name
    /// when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The agent configuration of each instrumented container (Odigos'
    /// ContainerAgentConfig). The server sends the entry of an agent's container, whole, as
    /// its container_config remote-config section, so every field is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "container_entries")]
    pub containers: Vec<Value>,
    /// Settings per SDK language; their instrumentationLibraryConfigs are sent to agents as
    /// the InstrumentationLibraries remote config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "sdk_configs")]
    pub sdk_configs: Vec<Value>,
}

/// Whatever Odigos writes in an `InstrumentationConfig`'s status: the server never reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct InstrumentationConfigStatus {}

/// `spec.containers[]`: objects with a `containerName`, everything else kept as it is.
fn container_entries(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["containerName"],
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "containerName": {
                    "description": "The container this entry configures.",
                    "type": "string",
                    "minLength": 1
                },
                "agentEnabled": {
                    "description": "Whether the agent runs in this container.",
                    "type": "boolean"
                }
            }
        }
    })
}

/// `spec.sdkConfigs[]`: typed where the server reads it, the rest kept.
fn sdk_configs(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["language"],
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "language": { "type": "string" },
                "instrumentationLibraryConfigs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["libraryId"],
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {
                            "libraryId": {
                                "type": "object",
                                "required": ["libraryName"],
                                "properties": {
                                    "libraryName": {
                                        "description": "The library's name, e.g. @opentelemetry/instrumentation-http.",
                                        "type": "string",
                                        "minLength": 1
                                    },
                                    "spanKind": {
                                        "description": "Only meaningful to the Go SDK.",
                                        "type": "string"
                                    }
                                }
                            },
                            "traceConfig": {
                                "type": "object",
                                "properties": {
                                    "enabled": {
                                        "description": "Whether the library records traces; absent means the SDK's default.",
                                        "type": "boolean"
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The CRDs as YAML documents: (file name under `deploy/crds/`, contents).
pub fn manifests() -> Vec<(String, String)> {
    use kube::CustomResourceExt;
    let crds = [InstrumentationInstance::crd(), InstrumentationConfig::crd()];
    crds.into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            // A single-version CRD: merge_crds would only check that; kept for its check.
            let crd = merge_crds(vec![crd], "v1alpha1").expect("one version, served and stored");
            let yaml = serde_yaml_ng::to_string(&crd).expect("a CRD serializes to YAML");
            (format!("{name}.yaml"), yaml)
        })
        .collect()
}
