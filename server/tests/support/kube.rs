//! Kubernetes fixtures: one real control plane per test binary, the server started with
//! the Kubernetes edges as the least-privileged `odiglet` identity, pods, agents, and the
//! API server's own request counters.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DynamicObject, PostParams};
use odigos_opamp_proto::opamp::proto::{
    AgentCapabilities, AgentDescription, AgentToServer, ComponentHealth,
};
use odigos_opamp_server::kube::{KubeOptions, Kubernetes, instances::resource};
use odigos_opamp_server::{RunningServer, Server, Settings};
use xtask::kube::ControlPlane;
use xtask::kube::request_samples;

use crate::messages::{int, string};

/// The control plane shared by every test of this binary, started on first use on a thread
/// of its own (its processes must not depend on one test's runtime). Each test works in its
/// own namespace and on its own node name, so tests do not see each other. The processes
/// die with this process (the harness ties them to it), and the harness removes the
/// folders of control planes whose process is gone.
pub fn shared_plane() -> &'static ControlPlane {
    static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let plane = PLANE.get_or_init(|| {
        std::thread::spawn(start_plane_blocking)
            .join()
            .unwrap_or_else(|_| Err("the thread starting it panicked".into()))
    });
    match plane {
        Ok(plane) => plane,
        Err(error) => panic!("the Kubernetes control plane did not start: {error}"),
    }
}

/// Start a control plane from synchronous code (its own runtime, dropped after).
pub fn start_plane_blocking() -> Result<ControlPlane, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no Tokio runtime: {e}"))?;
    runtime
        .block_on(ControlPlane::start())
        .map_err(|e| e.to_string())
}

/// The server's logs (warnings and up), shown with a failing test's output.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn,kube_client=off,odigos_opamp_server=info")
        .try_init();
}

/// An admin client.
pub async fn admin(plane: &ControlPlane) -> kube::Client {
    plane.client().await.expect("admin client")
}

/// A node name no other test uses.
pub fn node_for(namespace: &str) -> String {
    format!("node-{namespace}")
}

/// The server with the Kubernetes edges, as the `odiglet` service account.
pub struct KubeServer {
    pub server: RunningServer,
    pub kube: Kubernetes,
    pub node: String,
}

/// How to start a [`KubeServer`].
pub struct KubeServerConfig<'a> {
    pub node: String,
    /// The agent listener; default a port chosen by the OS.
    pub listen: std::net::SocketAddr,
    /// Serve agents on this listener instead (bound in another network namespace, say).
    pub agent_listener: Option<std::net::TcpListener>,
    /// Also serve agents on this unix socket.
    pub unix_socket: Option<std::path::PathBuf>,
    pub peer_verification: odigos_opamp_server::settings::PeerVerification,
    pub kubelet_socket: Option<&'a Path>,
    pub heartbeat_interval: Duration,
    pub resync_grace: Option<Duration>,
}

impl KubeServerConfig<'_> {
    pub fn new(node: &str) -> Self {
        KubeServerConfig {
            node: node.to_owned(),
            listen: Settings::loopback().listen,
            agent_listener: None,
            unix_socket: None,
            peer_verification: Default::default(),
            kubelet_socket: None,
            heartbeat_interval: Duration::from_secs(30),
            resync_grace: None,
        }
    }
}

/// Start the server and wait (bounded) until its watches have synced.
pub async fn start_server(plane: &ControlPlane, config: KubeServerConfig<'_>) -> KubeServer {
    init_logs();
    let client = plane.odiglet_client().await.expect("odiglet client");
    let mut options = KubeOptions::new(&config.node);
    options.kubelet_socket = config.kubelet_socket.map(Path::to_path_buf);
    options.store.resync_grace = config.resync_grace;
    let kube = Kubernetes::start(client, options).expect("Kubernetes edges start");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !odigos_opamp_server::identity::Identity::is_ready(kube.identity.as_ref()) {
        assert!(
            Instant::now() < deadline,
            "the pod and config watches did not sync within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let settings = Settings {
        listen: config.listen,
        unix_socket: config.unix_socket.clone(),
        peer_verification: config.peer_verification,
        node_name: config.node.clone(),
        heartbeat_interval: config.heartbeat_interval,
        ..Settings::loopback()
    };
    let mut builder = Server::builder(settings)
        .identity(kube.identity.clone())
        .config_source(kube.configs.clone())
        .store(kube.store.clone());
    if let Some(listener) = config.agent_listener {
        builder = builder.agent_listener(listener);
    }
    let server = builder.start().await.expect("server starts on loopback");
    KubeServer {
        server,
        kube,
        node: config.node,
    }
}

/// A pod to create.
pub struct PodSpecification<'a> {
    pub name: &'a str,
    pub node: &'a str,
    pub containers: &'a [&'a str],
    /// (kind, name) of the controller.
    pub owner: Option<(&'a str, &'a str)>,
    pub labels: &'a [(&'a str, &'a str)],
}

impl<'a> PodSpecification<'a> {
    pub fn new(name: &'a str, node: &'a str) -> Self {
        PodSpecification {
            name,
            node,
            containers: &["app"],
            owner: None,
            labels: &[],
        }
    }
}

/// Create a pod (bound to its node: no scheduler runs) as admin; returns its uid.
pub async fn create_pod(
    client: &kube::Client,
    namespace: &str,
    spec: PodSpecification<'_>,
) -> String {
    let owner_references = spec.owner.map(|(kind, name)| {
        vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "00000000-0000-0000-0000-000000000001".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]
    });
    let labels: BTreeMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(spec.name.into()),
            namespace: Some(namespace.into()),
            labels: (!labels.is_empty()).then_some(labels),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(spec.node.into()),
            containers: spec
                .containers
                .iter()
                .map(|name| Container {
                    name: name.to_string(),
                    image: Some("registry.invalid/app:1".into()),
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        }),
        status: None,
    };
    let created = Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("creating pod {namespace}/{}: {e}", spec.name));
    created.metadata.uid.expect("a created pod has a uid")
}

/// An agent's first message, shaped like the Odigos Python agent's.
pub fn first_message(
    uid: &[u8],
    namespace: &str,
    pod: &str,
    container: &str,
    pid: i64,
) -> AgentToServer {
    AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: 0,
        agent_description: Some(description(namespace, pod, container, pid)),
        health: Some(ComponentHealth {
            healthy: false,
            status: "Starting".into(),
            last_error: "Python OpenTelemetry agent is starting".into(),
            status_time_unix_nano: 1_767_225_600_000_000_000,
            ..Default::default()
        }),
        capabilities: AgentCapabilities::ReportsStatus as u64
            | AgentCapabilities::AcceptsRemoteConfig as u64
            | AgentCapabilities::ReportsHealth as u64,
        ..Default::default()
    }
}

pub fn description(namespace: &str, pod: &str, container: &str, pid: i64) -> AgentDescription {
    AgentDescription {
        identifying_attributes: vec![
            string("telemetry.sdk.language", "python"),
            int("process.pid", pid),
            string("k8s.namespace.name", namespace),
            string("k8s.pod.name", pod),
            string("k8s.container.name", container),
        ],
        non_identifying_attributes: vec![string("host.name", pod)],
    }
}

/// Health with a fixed status time, so the same report gives the same status.
pub fn health_report(healthy: bool, status: &str, last_error: &str) -> ComponentHealth {
    ComponentHealth {
        healthy,
        status: status.into(),
        last_error: last_error.into(),
        status_time_unix_nano: 1_767_225_660_000_000_000,
        ..Default::default()
    }
}

/// The `InstrumentationInstance` API, as admin.
pub fn instances(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource::api_resource())
}

/// Poll `check` every 50 ms until it gives `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The resource, once it exists (with a status, when `with_status`).
pub async fn wait_for_instance(api: &Api<DynamicObject>, name: &str, what: &str) -> DynamicObject {
    eventually(Duration::from_secs(15), what, || async {
        api.get_opt(name).await.ok().flatten()
    })
    .await
}

/// Requests to `resource` whose verb is in `verbs` (all verbs when empty).
pub fn count_requests(metrics: &str, resource: &str, verbs: &[&str]) -> u64 {
    request_samples(metrics)
        .iter()
        .filter(|s| s.label("resource") == resource)
        .filter(|s| verbs.is_empty() || verbs.contains(&s.label("verb")))
        .map(|s| s.value as u64)
        .sum()
}

/// One simulated agent on its own keep-alive connection.
pub struct Agent {
    pub connection: crate::client::Connection,
    pub uid: Vec<u8>,
    pub seq: u64,
    /// The config hash the agent last received.
    pub hash: Vec<u8>,
}

impl Agent {
    pub async fn connect(server: &RunningServer, uid: &str) -> Self {
        Agent {
            connection: crate::client::Connection::tcp(server.agent_addr()).await,
            uid: uid.as_bytes().to_vec(),
            seq: 0,
            hash: Vec::new(),
        }
    }

    /// The first message (health `Starting`); on 200 the agent keeps the config hash it got.
    pub async fn first(
        &mut self,
        namespace: &str,
        pod: &str,
        container: &str,
        pid: i64,
    ) -> crate::client::Reply {
        let msg = first_message(&self.uid, namespace, pod, container, pid);
        self.first_message(msg).await
    }

    /// A first message as given (e.g. the full state an agent reports after a server restart).
    pub async fn first_message(&mut self, msg: AgentToServer) -> crate::client::Reply {
        self.seq = msg.sequence_num;
        let reply = self.connection.post(&msg, &[]).await;
        if reply.status == hyper::StatusCode::OK
            && let Some(config) = reply.message().remote_config
        {
            self.hash = config.config_hash;
        }
        reply
    }

    /// A message with the current hash; `extra` fills in more.
    pub async fn send(
        &mut self,
        extra: AgentToServer,
    ) -> odigos_opamp_proto::opamp::proto::ServerToAgent {
        self.seq += 1;
        let msg = AgentToServer {
            instance_uid: self.uid.clone(),
            sequence_num: self.seq,
            capabilities: AgentCapabilities::ReportsStatus as u64
                | AgentCapabilities::AcceptsRemoteConfig as u64
                | AgentCapabilities::ReportsHealth as u64,
            remote_config_status: Some(odigos_opamp_proto::opamp::proto::RemoteConfigStatus {
                last_remote_config_hash: self.hash.clone(),
                ..Default::default()
            }),
            ..extra
        };
        let reply = self.connection.post(&msg, &[]).await;
        assert_eq!(reply.status, hyper::StatusCode::OK, "{}", reply.text());
        let message = reply.message();
        if let Some(config) = &message.remote_config {
            self.hash = config.config_hash.clone();
        }
        message
    }

    /// A plain heartbeat.
    pub async fn heartbeat(&mut self) -> odigos_opamp_proto::opamp::proto::ServerToAgent {
        self.send(AgentToServer::default()).await
    }

    /// A health report.
    pub async fn report(
        &mut self,
        health: ComponentHealth,
    ) -> odigos_opamp_proto::opamp::proto::ServerToAgent {
        self.send(AgentToServer {
            health: Some(health),
            ..AgentToServer::default()
        })
        .await
    }

    /// Disconnect, with a last health report.
    pub async fn disconnect(&mut self, health: Option<ComponentHealth>) {
        self.send(AgentToServer {
            health,
            agent_disconnect: Some(odigos_opamp_proto::opamp::proto::AgentDisconnect {}),
            ..AgentToServer::default()
        })
        .await;
    }
}

/// The resource name of an agent process.
pub fn instance_name(pod: &str, container: &str, pid: i64) -> String {
    odigos_opamp_server::protocol::InstanceKey::new("", pod, container, pid).resource_name()
}

/// Report container `app` of `pod` as running with `container_id` (containerd), as the
/// kubelet would.
pub async fn set_app_container_id(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container_id: &str,
) {
    let status = serde_json::json!({"status": {"containerStatuses": [{
        "name": "app",
        "containerID": format!("containerd://{container_id}"),
        "image": "registry.invalid/app:1",
        "imageID": "",
        "ready": true,
        "restartCount": 0,
    }]}});
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch_status(
            pod,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(status),
        )
        .await
        .unwrap_or_else(|e| panic!("setting the container status of pod {pod}: {e}"));
}

/// The server, also on a unix socket in a new temporary folder (kept as long as the
/// returned guard), once its pod watch has `pod`'s container ids.
pub async fn start_unix_server(
    plane: &ControlPlane,
    node: &str,
    namespace: &str,
    pod: &str,
) -> (KubeServer, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let socket = dir.path().join("exchange.sock");
    let server = start_server(
        plane,
        KubeServerConfig {
            unix_socket: Some(socket.clone()),
            ..KubeServerConfig::new(node)
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "the pod watch has the container id",
        || async {
            let info = server.kube.pods.get(namespace, pod)?;
            (!info.container_ids.is_empty()).then_some(())
        },
    )
    .await;
    (server, socket, dir)
}
