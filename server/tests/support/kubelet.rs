//! A scripted kubelet: the real PodResources gRPC service on a temporary unix socket, whose
//! answer, delay and availability the test controls.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use odigos_opamp_proto::v1::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use odigos_opamp_proto::v1::{
    ContainerDevices, ContainerResources, ListPodResourcesRequest, ListPodResourcesResponse,
    PodResources,
};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;

/// The resource name Odigos' device plugin registers.
pub const ODIGOS_RESOURCE: &str = "instrumentation.odigos.io/generic";

#[derive(Default)]
struct Script {
    pods: Mutex<Vec<PodResources>>,
    delay: Mutex<Duration>,
    calls: AtomicUsize,
}

#[tonic::async_trait]
impl PodResourcesLister for Script {
    async fn list(
        &self,
        _request: tonic::Request<ListPodResourcesRequest>,
    ) -> Result<tonic::Response<ListPodResourcesResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap_or_else(PoisonError::into_inner);
        tokio::time::sleep(delay).await;
        let pod_resources = self
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(tonic::Response::new(ListPodResourcesResponse {
            pod_resources,
        }))
    }
}

/// A kubelet answering `List` on `socket()` until [`ScriptedKubelet::stop`].
pub struct ScriptedKubelet {
    script: Arc<Script>,
    socket: PathBuf,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    _dir: tempfile::TempDir,
}

impl ScriptedKubelet {
    /// Serving on a fresh socket, with no devices.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder for the kubelet socket");
        let mut kubelet = ScriptedKubelet {
            script: Arc::new(Script::default()),
            socket: dir.path().join("kubelet.sock"),
            running: None,
            _dir: dir,
        };
        kubelet.serve();
        kubelet
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// How many `List` calls it answered (or started answering).
    pub fn calls(&self) -> usize {
        self.script.calls.load(Ordering::SeqCst)
    }

    /// Allocate `device_id` to a container (added to what it already lists).
    pub fn allocate(&self, namespace: &str, pod: &str, container: &str, device_id: &str) {
        let mut pods = self
            .script
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pods.push(PodResources {
            name: pod.into(),
            namespace: namespace.into(),
            containers: vec![ContainerResources {
                name: container.into(),
                devices: vec![ContainerDevices {
                    resource_name: ODIGOS_RESOURCE.into(),
                    device_ids: vec![device_id.into()],
                    topology: None,
                }],
                cpu_ids: vec![],
            }],
        });
    }

    /// Forget every allocation.
    pub fn clear(&self) {
        self.script
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Answer every call after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        *self
            .script
            .delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Stop serving and remove the socket, like a kubelet that is down.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Serve again on the same socket path.
    pub fn restart(&mut self) {
        if self.running.is_none() {
            self.serve();
        }
    }

    fn serve(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let listener = UnixListener::bind(&self.socket)
            .unwrap_or_else(|e| panic!("bind {}: {e}", self.socket.display()));
        let (stop, stopped) = oneshot::channel::<()>();
        let service = PodResourcesListerServer::from_arc(Arc::clone(&self.script));
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                eprintln!("scripted kubelet stopped with an error: {error}");
            }
        });
        self.running = Some((stop, task));
    }
}
