//! [`Identity`] through Kubernetes (docs/protocol.md §3): the kubelet names a device's container,
//! the Pod watch confirms the pod and names its workload.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::identity::{
    Identity, IdentityError, IdentityFuture, IdentityRequest, Peer, PeerFacts, ProcessPeer,
    ResolvedIdentity, cgroup, is_node_address,
};
use crate::kubelet::{DeviceCache, DeviceLookupError, Found};

use super::pods::{PodCache, PodInfo};
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
    fn peer_facts(&self, peer: &Peer, claim: &ResolvedIdentity) -> PeerFacts {
        match peer {
            Peer::Tcp(ip) => {
                let claimed = self.pods.get(&claim.namespace, &claim.pod_name);
                address_facts(
                    *ip,
                    &self.pods.with_ip(*ip),
                    || is_node_address(*ip),
                    claimed.as_deref(),
                )
            }
            Peer::Process(process) => self.process_facts(process),
            Peer::Unknown => PeerFacts::unresolved("the request came over no socket"),
        }
    }
}

/// What a TCP peer's address says, given the running pods of this node that have it,
/// whether it is the node's own, and the pod the agent claims (when the watch has it).
fn address_facts(
    ip: IpAddr,
    pods: &[Arc<PodInfo>],
    node_address: impl FnOnce() -> Result<bool, String>,
    claimed: Option<&PodInfo>,
) -> PeerFacts {
    match pods {
        [] => {}
        _ if pods.iter().any(|pod| pod.host_network) => {
            return PeerFacts::unresolved(format!(
                "{ip} is the node's address (hostNetwork pods such as {}/{} have it): \
                 hostNetwork pods and the node's own processes cannot be told apart",
                pods[0].namespace, pods[0].name
            ));
        }
        [pod] => {
            return PeerFacts::Pod {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
            };
        }
        _ => {
            let names: Vec<String> = pods
                .iter()
                .map(|pod| format!("{}/{}", pod.namespace, pod.name))
                .collect();
            return PeerFacts::unresolved(format!(
                "{ip} is the address of more than one running pod of this node ({}): one is \
                 leaving as another arrives, so the address names neither",
                names.join(", ")
            ));
        }
    }
    match node_address() {
        Ok(true) => PeerFacts::unresolved(format!(
            "{ip} is this node's own address: host processes and hostNetwork pods cannot be \
             told apart"
        )),
        Err(why) => PeerFacts::unresolved(why),
        // A pod's first connections may come before the kubelet reports its IP.
        Ok(false) if claimed.is_none_or(|pod| pod.ips.is_empty()) => PeerFacts::unresolved(
            format!("{ip} is no pod's address on this node, and the claimed pod lists no IP yet"),
        ),
        Ok(false) => PeerFacts::OffNode { address: ip },
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
                    "cannot read /proc/{pid} of the peer process ({error}); the server needs \
                     hostPID: true to see the pids of other pods"
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
                "process {pid} runs in container {} of pod {}/{}, which its status does not list \
                 (yet)",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Workload, WorkloadKind};

    fn pod(name: &str, host_network: bool) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            namespace: "shop".into(),
            name: name.into(),
            uid: None,
            node: Some("node-a".into()),
            containers: vec!["app".into()],
            finished: None,
            workload: Workload {
                kind: WorkloadKind::Pod,
                name: name.into(),
            },
            ips: vec![],
            host_network,
            container_ids: vec![],
        })
    }

    fn ip() -> IpAddr {
        IpAddr::from([10, 0, 0, 5])
    }

    fn with_ips(mut pod: Arc<PodInfo>, ips: &[IpAddr]) -> Arc<PodInfo> {
        Arc::make_mut(&mut pod).ips = ips.to_vec();
        pod
    }

    fn unresolved(facts: PeerFacts) -> String {
        match facts {
            PeerFacts::Unresolved { why } => why,
            other => panic!("expected no pod, got {other:?}"),
        }
    }

    #[test]
    fn one_pod_with_the_address_is_named() {
        let facts = address_facts(ip(), &[pod("cart-0", false)], || Ok(false), None);
        assert_eq!(
            facts,
            PeerFacts::Pod {
                namespace: "shop".into(),
                pod: "cart-0".into()
            }
        );
    }

    #[test]
    fn host_network_pods_and_two_pods_name_nobody() {
        let cases = [
            (vec![pod("kube-proxy", true)], "hostNetwork pods"),
            (
                vec![pod("odiglet", true), pod("kube-proxy", true)],
                "hostNetwork pods",
            ),
            (
                vec![pod("cart-0", false), pod("cart-1", false)],
                "more than one running pod",
            ),
        ];
        for (pods, why) in cases {
            let said = unresolved(address_facts(ip(), &pods, || Ok(false), None));
            assert!(said.contains(why), "{said:?} should say {why:?}");
        }
    }

    #[test]
    fn an_address_of_no_pod_is_the_node_or_another_node() {
        let claimed = with_ips(pod("cart-0", false), &[IpAddr::from([10, 0, 0, 9])]);
        let said = unresolved(address_facts(ip(), &[], || Ok(true), Some(&claimed)));
        assert!(said.contains("this node's own address"), "{said}");
        let said = unresolved(address_facts(
            ip(),
            &[],
            || Err("no interfaces".into()),
            Some(&claimed),
        ));
        assert_eq!(said, "no interfaces");
        assert_eq!(
            address_facts(ip(), &[], || Ok(false), Some(&claimed)),
            PeerFacts::OffNode { address: ip() }
        );
        // Before the kubelet reported the claimed pod's IP, the address proves nothing.
        let said = unresolved(address_facts(
            ip(),
            &[],
            || Ok(false),
            Some(&pod("cart-0", false)),
        ));
        assert!(said.contains("lists no IP yet"), "{said}");
    }
}
