//! A node's pods and the cluster's InstrumentationConfigs, shaped like real ones: what the
//! server's watches list and decode is as large as in a cluster, not a stub.
//!
//! Pod `p` of a node is replica `p` of Deployment `app-<p % workloads>`, owned by that
//! Deployment's ReplicaSet, with an application container (where the agents run) and a
//! sidecar, the fields a Deployment's template and the admission chain put there (labels,
//! annotations, env, resources, probes, the service-account volume, tolerations), and the
//! status the kubelet reports for a running pod. Created with the admin client before the
//! server starts: in a cluster the kubelet and controllers do this, not the server.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStatus, EnvVar,
    HTTPGetAction, Pod, PodCondition, PodIP, PodSpec, PodStatus, Probe, ResourceRequirements,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use tokio::task::JoinSet;

use super::NodeBenchError;

/// The container the agents run in.
pub const APP_CONTAINER: &str = "app";
/// Pods are created by this many tasks at once.
const CREATORS: usize = 8;
/// The ReplicaSet hash in every pod name, as a Deployment's controller makes them.
const TEMPLATE_HASH: &str = "7d9f8b6c5d";

/// The Deployment pod `index` belongs to.
pub fn workload(index: usize, workloads: usize) -> String {
    format!("app-{}", index % workloads.max(1))
}

/// The name of pod `index`: `<deployment>-<template hash>-<suffix>`.
pub fn pod_name(index: usize, workloads: usize) -> String {
    format!("{}-{TEMPLATE_HASH}-p{index:04}", workload(index, workloads))
}

/// Create pods `0..count` bound to `node` in `namespace`, then write each one's running
/// status (a create drops the status; the kubelet writes it through `pods/status`).
pub async fn create_pods(
    client: &kube::Client,
    namespace: &str,
    node: &str,
    count: usize,
    workloads: usize,
) -> Result<(), NodeBenchError> {
    let mut creators = JoinSet::new();
    for first in 0..CREATORS.min(count) {
        let api = Api::<Pod>::namespaced(client.clone(), namespace);
        let node = node.to_owned();
        creators.spawn(async move {
            for index in (first..count).step_by(CREATORS) {
                let name = pod_name(index, workloads);
                let created = api
                    .create(&PostParams::default(), &pod(index, workloads, &node))
                    .await
                    .map_err(|e| format!("creating pod {name}: {e}"))?;
                let mut running = created;
                running.status = Some(status(index));
                api.replace_status(&name, &PostParams::default(), &running)
                    .await
                    .map_err(|e| format!("writing pod {name}'s status: {e}"))?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = creators.join_next().await {
        done.map_err(|e| NodeBenchError::Api(e.to_string()))?
            .map_err(NodeBenchError::Api)?;
    }
    Ok(())
}

/// One InstrumentationConfig per Deployment `app-0..workloads`, in `namespace`, as Odigos
/// writes them for a Python workload (eight libraries, some with their traces switched).
pub async fn create_configs(
    client: &kube::Client,
    namespace: &str,
    workloads: usize,
) -> Result<(), NodeBenchError> {
    let resource = kube::api::ApiResource {
        group: "odigos.io".into(),
        version: "v1alpha1".into(),
        api_version: "odigos.io/v1alpha1".into(),
        kind: "InstrumentationConfig".into(),
        plural: "instrumentationconfigs".into(),
    };
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
    for index in 0..workloads {
        let workload = workload(index, workloads);
        let object: DynamicObject = serde_json::from_value(config(&workload))
            .map_err(|e| NodeBenchError::Api(format!("building a config: {e}")))?;
        api.create(&PostParams::default(), &object)
            .await
            .map_err(|e| {
                NodeBenchError::Api(format!("creating InstrumentationConfig of {workload}: {e}"))
            })?;
    }
    Ok(())
}

fn config(workload: &str) -> serde_json::Value {
    let libraries = [
        "django", "flask", "requests", "urllib3", "psycopg2", "redis", "botocore", "grpc",
    ];
    let configs: Vec<serde_json::Value> = libraries
        .iter()
        .enumerate()
        .map(|(i, library)| {
            json!({
                "libraryId": {"libraryName": format!("opentelemetry.instrumentation.{library}")},
                "traceConfig": {"enabled": i % 3 != 2},
            })
        })
        .collect();
    json!({
        "apiVersion": "odigos.io/v1alpha1",
        "kind": "InstrumentationConfig",
        "metadata": {
            "name": format!("deployment-{workload}"),
            "labels": {"odigos.io/instrumented": "true"},
        },
        "spec": {
            "serviceName": workload,
            "sdkConfigs": [{
                "language": "python",
                "instrumentationLibraryConfigs": configs,
                "headSamplerConfig": {"fallbackFraction": 1},
                "payloadCollection": {"httpRequest": {"maxPayloadLength": 2048}},
            }],
        },
    })
}

fn pod(index: usize, workloads: usize, node: &str) -> Pod {
    let workload = workload(index, workloads);
    let labels = [
        ("app.kubernetes.io/name", workload.as_str()),
        ("app.kubernetes.io/part-of", "shop"),
        ("app.kubernetes.io/version", "1.42.0"),
        ("pod-template-hash", TEMPLATE_HASH),
        ("team", "checkout"),
    ];
    let annotations = [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/port", "9090".to_owned()),
        (
            "kubectl.kubernetes.io/restartedAt",
            "2026-11-20T09:14:03Z".to_owned(),
        ),
        // What a Deployment applied with kubectl carries into its pods' template.
        ("checksum/config", "f".repeat(64)),
    ];
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(index, workloads)),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            annotations: Some(
                annotations
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            ),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: format!("{workload}-{TEMPLATE_HASH}"),
                uid: "00000000-0000-4000-8000-000000000001".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            service_account_name: Some("default".into()),
            containers: vec![app_container(&workload), sidecar_container()],
            volumes: Some(vec![Volume {
                name: "kube-api-access".into(),
                empty_dir: Some(Default::default()),
                ..Volume::default()
            }]),
            tolerations: Some(
                ["not-ready", "unreachable"]
                    .iter()
                    .map(|taint| Toleration {
                        key: Some(format!("node.kubernetes.io/{taint}")),
                        operator: Some("Exists".into()),
                        effect: Some("NoExecute".into()),
                        toleration_seconds: Some(300),
                        ..Toleration::default()
                    })
                    .collect(),
            ),
            termination_grace_period_seconds: Some(30),
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn app_container(workload: &str) -> Container {
    let env = [
        ("OTEL_SERVICE_NAME", workload.to_owned()),
        ("PYTHONPATH", "/var/odigos/python:/var/odigos/python/opentelemetry/instrumentation/auto_instrumentation".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://$(NODE_IP):4318".to_owned()),
        ("ODIGOS_OPAMP_SERVER_HOST", "$(NODE_IP):4320".to_owned()),
        ("DATABASE_URL", "postgres://shop@db.shop.svc:5432/shop".to_owned()),
        ("REDIS_URL", "redis://cache.shop.svc:6379/0".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
        ("GUNICORN_CMD_ARGS", "--workers 4 --threads 2 --timeout 30".to_owned()),
    ];
    Container {
        name: APP_CONTAINER.into(),
        image: Some(format!("registry.invalid/shop/{workload}:1.42.0")),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(
            env.into_iter()
                .map(|(name, value)| EnvVar {
                    name: name.into(),
                    value: Some(value),
                    ..EnvVar::default()
                })
                .collect(),
        ),
        resources: Some(resources("250m", "256Mi", "1", "512Mi")),
        liveness_probe: Some(http_probe("/healthz")),
        readiness_probe: Some(http_probe("/ready")),
        volume_mounts: Some(vec![VolumeMount {
            name: "kube-api-access".into(),
            mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

fn sidecar_container() -> Container {
    Container {
        name: "log-shipper".into(),
        image: Some("registry.invalid/infra/log-shipper:3.1.4".into()),
        args: Some(vec!["--input=/var/log/app".into(), "--format=json".into()]),
        resources: Some(resources("20m", "32Mi", "100m", "64Mi")),
        ..Container::default()
    }
}

fn resources(cpu: &str, memory: &str, cpu_limit: &str, memory_limit: &str) -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        [
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ]
        .into()
    };
    ResourceRequirements {
        requests: Some(pair(cpu, memory)),
        limits: Some(pair(cpu_limit, memory_limit)),
        ..ResourceRequirements::default()
    }
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// What the kubelet reports for a running pod.
fn status(index: usize) -> PodStatus {
    let at = || Time(Timestamp::from_second(1_795_000_000).unwrap_or_default());
    let condition = |kind: &str| PodCondition {
        type_: kind.into(),
        status: "True".into(),
        last_transition_time: Some(at()),
        ..PodCondition::default()
    };
    let container = |name: &str, image: &str| ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: format!("{image}@sha256:{}", "a".repeat(64)),
        container_id: Some(format!("containerd://{:064x}", index * 2 + name.len())),
        ready: true,
        started: Some(true),
        restart_count: 0,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(at()),
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    };
    let ip = format!("10.244.{}.{}", index / 250, index % 250 + 2);
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(
            ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
                .into_iter()
                .map(condition)
                .collect(),
        ),
        host_ip: Some("172.18.0.2".into()),
        pod_ip: Some(ip.clone()),
        pod_ips: Some(vec![PodIP { ip }]),
        qos_class: Some("Burstable".into()),
        start_time: Some(at()),
        container_statuses: Some(vec![
            container(APP_CONTAINER, "registry.invalid/shop/app:1.42.0"),
            container("log-shipper", "registry.invalid/infra/log-shipper:3.1.4"),
        ]),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_replicas_of_their_deployment_and_full_sized() {
        assert_eq!(pod_name(7, 50), "app-7-7d9f8b6c5d-p0007");
        assert_eq!(workload(57, 50), "app-7");
        let pod = pod(57, 50, "node-a");
        let mut pod = pod;
        pod.status = Some(status(57));
        let size = serde_json::to_vec(&pod).expect("encodes").len();
        // A real pod of a Deployment is a few KiB of JSON (managed fields come on top).
        assert!((2_500..20_000).contains(&size), "{size} bytes");
        let info = odigos_opamp_server::kube::pods::PodInfo::from_pod(&Pod {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                ..pod.metadata.clone()
            },
            ..pod.clone()
        })
        .expect("the server reads it");
        assert_eq!(info.workload.name, "app-7");
        assert!(info.containers.contains(&APP_CONTAINER.to_owned()));
    }

    #[test]
    fn configs_name_their_workload() {
        let value = config("app-3");
        assert_eq!(value["metadata"]["name"], "deployment-app-3");
        let object: odigos_opamp_server::kube::crds::InstrumentationConfig =
            serde_json::from_value(value).expect("an InstrumentationConfig");
        let parsed = odigos_opamp_server::kube::configs::workload_config(&object);
        assert_eq!(parsed.libraries.len(), 8);
        assert_eq!(parsed.service_name.as_deref(), Some("app-3"));
    }
}
