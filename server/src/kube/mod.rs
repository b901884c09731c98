//! The Kubernetes edges of the server: who agents are, what config they get, and their
//! `InstrumentationInstance` resources.
//!
//! - [`pods`]: this node's pods, mirrored by a watch on `spec.nodeName=<node>`.
//! - [`workload`]: a pod's workload from its owner references (docs/protocol.md §3).
//! - [`identity`]: [`KubeIdentity`], device ids through the kubelet, attributes checked
//!   against the pods.
//! - [`configs`]: [`KubeConfigSource`], `InstrumentationConfig`s watched into memory.
//! - [`instances`]: [`KubeStore`], the resources written in the background, and the
//!   start-up resync.
//!
//! Nothing here is on an agent's poll path except reading memory: a known agent is answered
//! while the API server is down, and writes wait in the queue. A *new* agent needs its pod:
//! it is read from the watch (or the API server once, when the watch does not have it), and
//! when neither can answer the agent is told to come back later (503 + `Retry-After`).
//!
//! Rights needed: those of `deploy/rbac.yaml`, nothing more.

pub mod backoff;
pub mod configs;
pub mod crds;
pub mod identity;
pub mod instances;
pub mod pods;
pub mod watch;
pub mod workload;

pub use configs::KubeConfigSource;
pub use identity::KubeIdentity;
pub use instances::{KubeStore, KubeStoreOptions, ResyncReport, StoreStats};
pub use pods::{PodCache, PodCacheOptions, PodInfo, PodLookupError};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::kubelet::{DeviceCache, DeviceCacheOptions, KubeletError, PodResourcesClient};

/// How to run the Kubernetes edges.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// This node's name: pods are watched on it, resources are labelled with it.
    pub node: String,
    /// The kubelet's PodResources socket; `None`: device ids are not accepted.
    pub kubelet_socket: Option<PathBuf>,
    /// Deadline of one kubelet `List`.
    pub kubelet_timeout: Duration,
    pub devices: DeviceCacheOptions,
    pub pods: PodCacheOptions,
    pub store: KubeStoreOptions,
}

impl KubeOptions {
    /// Defaults for `node`: the standard kubelet socket, resync after 75 s.
    pub fn new(node: &str) -> Self {
        KubeOptions {
            node: node.to_owned(),
            kubelet_socket: Some(crate::kubelet::DEFAULT_SOCKET.into()),
            kubelet_timeout: Duration::from_secs(2),
            devices: DeviceCacheOptions::default(),
            pods: PodCacheOptions::default(),
            store: KubeStoreOptions::new(node),
        }
    }
}

/// Why the Kubernetes edges could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeStartError {
    #[error(transparent)]
    Kubelet(#[from] KubeletError),
    #[error("--node-name is empty: set it (or NODE_NAME) to the node this server runs on")]
    NoNode,
}

/// The running Kubernetes edges. Dropping it stops the watches and the writers; call
/// [`crate::RunningServer::shutdown`] first so the store is flushed.
pub struct Kubernetes {
    pub identity: Arc<KubeIdentity>,
    pub configs: Arc<KubeConfigSource>,
    pub store: Arc<KubeStore>,
    pub pods: Arc<PodCache>,
    pub devices: Option<Arc<DeviceCache>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Kubernetes {
    /// Start the watches, the writers and the resync; returns at once (nothing waits for
    /// the API server). Must be called inside a Tokio runtime.
    pub fn start(client: kube::Client, options: KubeOptions) -> Result<Self, KubeStartError> {
        if options.node.is_empty() {
            return Err(KubeStartError::NoNode);
        }
        let devices = match &options.kubelet_socket {
            Some(path) => {
                let client = PodResourcesClient::new(path, options.kubelet_timeout)?;
                Some(Arc::new(DeviceCache::new(client, options.devices)))
            }
            None => None,
        };
        let (pods, pod_task) = PodCache::start(client.clone(), &options.node, options.pods);
        let (configs, config_task) = KubeConfigSource::start(client.clone());
        let store_options = KubeStoreOptions {
            node: options.node.clone(),
            ..options.store
        };
        let (store, mut tasks) = KubeStore::start(client, store_options);
        tasks.extend([
            pod_task,
            config_task,
            spawn_pruning(Arc::clone(&store), Arc::clone(&pods)),
        ]);
        let identity = KubeIdentity::new(&options.node, Arc::clone(&pods), devices.clone())
            .also_ready_when_synced(configs.watch_status());
        Ok(Kubernetes {
            identity: Arc::new(identity),
            configs,
            store,
            pods,
            devices,
            tasks,
        })
    }
}

/// How often the store forgets the resources of pods that are gone.
const PRUNE_PERIOD: Duration = Duration::from_secs(600);

/// Every [`PRUNE_PERIOD`], while the pod watch is current, forget the store's resources of
/// pods that are gone, so a long-running server does not accumulate them.
fn spawn_pruning(store: Arc<KubeStore>, pods: Arc<PodCache>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(PRUNE_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        // Runs until the task is aborted.
        loop {
            ticker.tick().await;
            if !pods.is_healthy() {
                continue;
            }
            let forgotten =
                store.forget_gone_pods(|namespace, pod| pods.get(namespace, pod).is_some());
            if forgotten > 0 {
                tracing::debug!(
                    forgotten,
                    "forgot the InstrumentationInstances of pods that are gone"
                );
            }
        }
    })
}

impl Drop for Kubernetes {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
