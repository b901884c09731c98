//! [`Identity`] through Kubernetes (docs/protocol.md §3): the kubelet names a device's container,
//! the Pod watch confirms the pod and names its workload.

use std::sync::Arc;
use std::time::Duration;

use crate::identity::{
    Identity, IdentityError, IdentityFuture, IdentityRequest, Peer, PeerFacts, ProcessPeer,
    ResolvedIdentity, cgroup,
};
use crate::kubelet::{DeviceCache, DeviceLookupError, Found};

use super::pods::PodCache;
use super::watch::WatchStatus;

/// What agents are told to wait before retrying when Kubernetes or the kubelet is down.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Verifies agents against this node's pods (and the kubelet, for device ids).
pub struct KubeIdentity {
    node: String,
    pods: Arc<PodCache>,
    devices: Option<Arc<DeviceCache>>,
    also_synced: Vec<Arc<WatchStatus>>,
}

impl KubeIdentity {
    /// Device ids need `devices`; without it, requests with a device id are checked by
    /// their self-reported attributes (and refused when they have none).
    pub fn new(node: &str, pods: Arc<PodCache>, devices: Option<Arc<DeviceCache>>) -> Self {
        KubeIdentity {
            node: node.to_owned(),
            pods,
            devices,
            also_synced: Vec::new(),
        }
    }

    /// Report ready only once this watch has synced too (e.g. the configs, so that no
    /// agent is first answered with defaults that its workload's config overrides).
    pub fn also_ready_when_synced(mut self, watch: Arc<WatchStatus>) -> Self {
        self.also_synced.push(watch);
        self
    }

    async fn by_device(
        &self,
        device_id: &str,
        request: &IdentityRequest,
    ) -> Result<ResolvedIdentity, IdentityError> {
        let Some(devices) = &self.devices else {
            // Turned off on purpose: verify the self-reported attributes instead, if any.
            return match request.self_reported() {
                Some((namespace, pod, container)) => {
                    self.verify_pod(namespace, pod, container).await
                }
                None => Err(IdentityError::Unverified(format!(
                    "device id {device_id:?} cannot be checked: this server runs without the \
                     kubelet socket; send k8s.namespace.name, k8s.pod.name and \
                     k8s.container.name instead"
                ))),
            };
        };
        let found = devices.lookup(device_id).await.map_err(device_error)?;
        match self.verify(&found).await {
            // A cached answer can be out of date: the kubelet reuses a device id once its
            // pod is gone. Ask the kubelet again before refusing.
            Err(IdentityError::Unverified(_)) if !found.fresh => {
                let found = devices
                    .lookup_fresh(device_id)
                    .await
                    .map_err(device_error)?;
                self.verify(&found).await
            }
            other => other,
        }
    }

    async fn verify(&self, found: &Found) -> Result<ResolvedIdentity, IdentityError> {
        let o = &found.owner;
        self.verify_pod(&o.namespace, &o.pod, &o.container).await
    }

    /// The pod exists, runs on this node, is not finished, and has the container.
    async fn verify_pod(
        &self,
        namespace: &str,
        pod_name: &str,
        container: &str,
    ) -> Result<ResolvedIdentity, IdentityError> {
        let pod = self
            .pods
            .find(namespace, pod_name)
            .await
            .map_err(|error| unavailable(error.to_string()))?
            .ok_or_else(|| {
                IdentityError::Unverified(format!("pod {namespace}/{pod_name} does not exist"))
            })?;
        if pod.node.as_deref() != Some(self.node.as_str()) {
            let node = pod.node.as_deref().unwrap_or("no node yet");
            return Err(IdentityError::Unverified(format!(
                "pod {namespace}/{pod_name} runs on {node}, not on this node ({})",
                self.node
            )));
        }
        if let Some(phase) = &pod.finished {
            return Err(IdentityError::Unverified(format!(
                "pod {namespace}/{pod_name} has finished (phase {phase})"
            )));
        }
        if !pod.containers.iter().any(|c| c == container) {
            return Err(IdentityError::Unverified(format!(
                "pod {namespace}/{pod_name} has no container {container:?} (it has {})",
                pod.containers.join(", ")
            )));
        }
        Ok(ResolvedIdentity {
            namespace: pod.namespace.clone(),
            pod_name: pod.name.clone(),
            pod_uid: pod.uid.clone(),
            container: container.to_owned(),
            workload: pod.workload.clone(),
        })
    }
}

fn unavailable(reason: String) -> IdentityError {
    IdentityError::Unavailable {
        reason,
        retry_after: RETRY_AFTER,
    }
}

fn device_error(error: DeviceLookupError) -> IdentityError {
    match error {
        DeviceLookupError::Unknown(id) => IdentityError::UnknownDevice(id),
        DeviceLookupError::Unavailable(reason) => unavailable(reason),
    }
}

impl Identity for KubeIdentity {
    fn resolve<'a>(&'a self, request: &'a IdentityRequest) -> IdentityFuture<'a> {
        Box::pin(async move {
            if let Some(device_id) = request.device_id()? {
                return self.by_device(device_id, request).await;
            }
            let Some((namespace, pod, container)) = request.self_reported() else {
                return Err(IdentityError::Missing);
            };
            self.verify_pod(namespace, pod, container).await
        })
    }

    /// Ready once the Pod watch (and any other registered watch) has synced.
    fn is_ready(&self) -> bool {
        self.pods.is_synced() && self.also_synced.iter().all(|w| w.is_synced())
    }

    /// The pod the connection comes from: by the peer's IP over TCP, by the peer process's
    /// cgroup over the unix socket (which needs `hostPID: true` to see other pods' pids).
    fn peer_facts(&self, peer: &Peer) -> PeerFacts {
        match peer {
            Peer::Tcp(ip) => match self.pods.by_ip(*ip) {
                Some(pod) if pod.host_network => PeerFacts::unresolved(format!(
                    "{ip} is the node's address (pod {}/{} uses hostNetwork): hostNetwork                      pods and the node's own processes cannot be told apart",
                    pod.namespace, pod.name
                )),
                Some(pod) => PeerFacts::Pod {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                },
                None => PeerFacts::unresolved(format!(
                    "{ip} is no pod's address on this node (the node's own, or a hostNetwork                      pod's)"
                )),
            },
            Peer::Process(process) => self.process_facts(process),
            Peer::Unknown => PeerFacts::unresolved("the request came over no socket"),
        }
    }
}

impl KubeIdentity {
    /// The container of a unix-socket peer, from `/proc/<pid>/cgroup` and `NSpid`, read while
    /// the process is known to be the peer (checked alive after the reads).
    fn process_facts(&self, process: &ProcessPeer) -> PeerFacts {
        let pid = process.pid;
        let read = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}"));
        let (cgroups, status) = match (read("cgroup"), read("status")) {
            (Ok(cgroups), Ok(status)) => (cgroups, status),
            (Err(error), _) | (_, Err(error)) => {
                return PeerFacts::unresolved(format!(
                    "cannot read /proc/{pid} of the peer process ({error}); the server needs                      hostPID: true to see the pids of other pods"
                ));
            }
        };
        if !process.is_alive() {
            return PeerFacts::unresolved(format!("the peer process {pid} exited meanwhile"));
        }
        let Some(container) = cgroup::parse_cgroup(&cgroups) else {
            return PeerFacts::unresolved(format!("process {pid} runs in no pod's container"));
        };
        let Some(pod) = self.pods.by_uid(&container.pod_uid) else {
            return PeerFacts::unresolved(format!(
                "process {pid} runs in pod {}, which this node's pod watch does not have",
                container.pod_uid
            ));
        };
        let Some((name, _)) = pod
            .container_ids
            .iter()
            .find(|(_, id)| *id == container.container_id)
        else {
            return PeerFacts::unresolved(format!(
                "process {pid} runs in container {} of pod {}/{}, which its status does not list                  (yet)",
                container.container_id, pod.namespace, pod.name
            ));
        };
        PeerFacts::Container {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            container: name.clone(),
            vpid: cgroup::parse_vpid(&status),
        }
    }
}
