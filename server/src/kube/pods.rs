//! This node's pods, mirrored by a watch on `spec.nodeName=<node>`.
//!
//! Identity is answered from memory. A pod the mirror does not have yet (an agent faster
//! than the watch) is waited for briefly; only then, or when the watch is not healthy, is
//! the API server asked directly, once, with a deadline.

use std::sync::Arc;
use std::time::Duration;

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus};
use kube::api::Api;
use kube::runtime::watcher;
use tokio::task::JoinHandle;

use super::watch::{self, ProjectedMirror, Projection, WatchStatus};
use super::workload;
use crate::identity::{Workload, cgroup};

/// What identity needs to know about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub node: Option<String>,
    /// Names of its containers and init containers.
    pub containers: Vec<String>,
    /// `Succeeded` or `Failed`: no process of it can be talking to us.
    pub finished: Option<String>,
    pub workload: Workload,
    /// `status.podIPs` (and `podIP`): the addresses its connections come from.
    pub ips: Vec<IpAddr>,
    /// `spec.hostNetwork`: its connections come from the node's addresses.
    pub host_network: bool,
    /// (container name, container id without the runtime prefix), of every container,
    /// init and ephemeral ones included, from `status.*containerStatuses`.
    pub container_ids: Vec<(String, String)>,
}

impl PodInfo {
    /// `None` for a pod without namespace or name (never sent by an API server).
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone()?;
        let name = meta.name.clone()?;
        let spec = pod.spec.as_ref();
        let containers = spec
            .map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .filter(|phase| phase == "Succeeded" || phase == "Failed");
        let owners = meta.owner_references.as_deref().unwrap_or_default();
        let status = pod.status.as_ref();
        let ips = status
            .map(|s| {
                let listed = s.pod_ips.iter().flatten().map(|ip| ip.ip.as_str());
                let mut ips: Vec<IpAddr> = listed
                    .chain(s.pod_ip.as_deref())
                    .filter_map(|ip| ip.parse().ok())
                    .collect();
                ips.sort_unstable();
                ips.dedup();
                ips
            })
            .unwrap_or_default();
        let container_ids = status
            .map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
                    .chain(s.ephemeral_container_statuses.iter().flatten())
                    .filter_map(|c| {
                        let id = cgroup::status_container_id(c.container_id.as_deref()?)?;
                        Some((c.name.clone(), id.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(PodInfo {
            ips,
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            container_ids,
            workload: workload::derive(&name, meta.labels.as_ref(), owners),
            uid: meta.uid.clone(),
            node: spec.and_then(|s| s.node_name.clone()),
            containers,
            finished,
            namespace,
            name,
        })
    }
}

/// Why a pod could not be read from the API server (the watch did not have it).
#[derive(Debug, thiserror::Error)]
pub enum PodLookupError {
    #[error("reading pod {namespace}/{name} from the Kubernetes API failed: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("reading pod {namespace}/{name}: no answer from the Kubernetes API within {timeout:?}")]
    Timeout {
        namespace: String,
        name: String,
        timeout: Duration,
    },
}

/// Tuning of a [`PodCache`].
#[derive(Clone, Copy, Debug)]
pub struct PodCacheOptions {
    /// How long a lookup waits for the watch to deliver a pod it does not have yet.
    pub watch_lag_grace: Duration,
    /// Deadline of the direct `GET` that follows.
    pub get_timeout: Duration,
}

impl Default for PodCacheOptions {
    fn default() -> Self {
        PodCacheOptions {
            watch_lag_grace: Duration::from_secs(1),
            get_timeout: Duration::from_secs(3),
        }
    }
}

/// This node's pods, by (namespace, name), as [`PodInfo`].
struct Pods;

impl Projection for Pods {
    type Object = Pod;
    type Key = (String, String);
    type Value = PodInfo;

    fn key(pod: &Pod) -> Option<(String, String)> {
        Some((pod.metadata.namespace.clone()?, pod.metadata.name.clone()?))
    }

    fn value(pod: &Pod) -> Option<PodInfo> {
        PodInfo::from_pod(pod)
    }
}

fn strip(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    if let Some(spec) = pod.spec.take() {
        let names = |cs: Vec<Container>| -> Vec<Container> {
            cs.into_iter()
                .map(|c| Container {
                    name: c.name,
                    ..Container::default()
                })
                .collect()
        };
        pod.spec = Some(PodSpec {
            node_name: spec.node_name,
            host_network: spec.host_network,
            containers: names(spec.containers),
            init_containers: spec.init_containers.map(names),
            ..PodSpec::default()
        });
    }
    if let Some(status) = pod.status.take() {
        // Only the names and ids of the container statuses: peer verification.
        let ids = |statuses: Option<Vec<ContainerStatus>>| {
            statuses.map(|list| {
                list.into_iter()
                    .map(|c| ContainerStatus {
                        name: c.name,
                        container_id: c.container_id,
                        ..ContainerStatus::default()
                    })
                    .collect()
            })
        };
        pod.status = Some(PodStatus {
            phase: status.phase,
            pod_ip: status.pod_ip,
            pod_ips: status.pod_ips,
            container_statuses: ids(status.container_statuses),
            init_container_statuses: ids(status.init_container_statuses),
            ephemeral_container_statuses: ids(status.ephemeral_container_statuses),
            ..PodStatus::default()
        });
    }
}

/// This node's pods in memory, with a direct read as the fallback.
pub struct PodCache {
    client: kube::Client,
    mirror: Arc<ProjectedMirror<Pods>>,
    status: Arc<WatchStatus>,
    options: PodCacheOptions,
}

impl PodCache {
    /// Start watching the pods of `node`. The watch runs until the returned task is aborted.
    pub fn start(
        client: kube::Client,
        node: &str,
        options: PodCacheOptions,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let mirror = Arc::new(ProjectedMirror::<Pods>::default());
        let status = Arc::new(WatchStatus::default());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let task = watch::spawn(
            "pods",
            Api::<Pod>::all(client.clone()),
            config,
            Arc::clone(&mirror),
            Arc::clone(&status),
            strip,
        );
        let cache = PodCache {
            client,
            mirror,
            status,
            options,
        };
        (Arc::new(cache), task)
    }

    /// The watch has delivered its first complete list.
    pub fn is_synced(&self) -> bool {
        self.status.is_synced()
    }

    /// The watch has synced and had no error since its last event.
    pub fn is_healthy(&self) -> bool {
        self.status.is_healthy()
    }

    /// How the watch gets its complete lists: streaming where the API server offers it.
    pub fn initial_lists(&self) -> watch::InitialLists {
        self.status.initial_lists()
    }

    /// A pod of this node, from memory only.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        self.mirror.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The pods of this node that have this IP and have not finished (from memory). A
    /// finished pod keeps its IP in its status after the network released it to another pod,
    /// so it is left out; `hostNetwork` pods all share the node's addresses.
    pub fn with_ip(&self, ip: IpAddr) -> Vec<Arc<PodInfo>> {
        self.mirror
            .filter(|pod| pod.finished.is_none() && pod.ips.contains(&ip))
    }

    /// The pod of this node with this uid, if any (from memory).
    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.mirror.find(|pod| pod.uid.as_deref() == Some(uid))
    }

    /// Number of pods in memory.
    pub fn len(&self) -> usize {
        self.mirror.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A pod by name: from memory, else (after a short wait for the watch) from the API
    /// server. `Ok(None)`: it does not exist. `Err`: the API server could not be asked.
    /// A pod found by the direct read may be on another node; callers check.
    pub async fn find(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<PodInfo>>, PodLookupError> {
        if let Some(pod) = self.get(namespace, name) {
            return Ok(Some(pod));
        }
        if self.status.is_healthy() {
            let deadline = tokio::time::Instant::now() + self.options.watch_lag_grace;
            // Bounded by the deadline.
            loop {
                let change = self.status.next_change();
                let mut change = std::pin::pin!(change);
                change.as_mut().enable();
                if let Some(pod) = self.get(namespace, name) {
                    return Ok(Some(pod));
                }
                if tokio::time::timeout_at(deadline, change).await.is_err() {
                    break;
                }
            }
        }
        let api = Api::<Pod>::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(self.options.get_timeout, api.get_opt(name)).await {
            Ok(Ok(pod)) => Ok(pod.as_ref().and_then(PodInfo::from_pod).map(Arc::new)),
            Ok(Err(source)) => Err(PodLookupError::Api {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            }),
            Err(_) => Err(PodLookupError::Timeout {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                timeout: self.options.get_timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    #[test]
    fn pod_info_reads_node_containers_phase_and_workload() {
        let mut pod = Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("coupon-7d9f8b6c5d-x2x9z".into()),
                uid: Some("uid-1".into()),
                annotations: Some([("big".to_owned(), "x".repeat(1000))].into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "coupon-7d9f8b6c5d".into(),
                    uid: "rs".into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("img".into()),
                    ..Container::default()
                }],
                init_containers: Some(vec![Container {
                    name: "init".into(),
                    ..Container::default()
                }]),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                ..PodStatus::default()
            }),
        };
        let before = PodInfo::from_pod(&pod);
        strip(&mut pod);
        assert_eq!(
            PodInfo::from_pod(&pod),
            before,
            "strip keeps what PodInfo reads"
        );
        assert!(pod.metadata.annotations.is_none());
        let info = before.expect("info");
        assert_eq!(info.node.as_deref(), Some("node-a"));
        assert_eq!(info.containers, ["app", "init"]);
        assert_eq!(info.finished.as_deref(), Some("Failed"));
        assert_eq!(info.workload.name, "coupon");
        assert_eq!(info.uid.as_deref(), Some("uid-1"));
    }
}
