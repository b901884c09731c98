//! The node phase: what our server costs on one node of a cluster, at an agent's pace.
//!
//! A real control plane (the `xtask::kube` harness: etcd + kube-apiserver on loopback, our
//! CRDs and RBAC) and, per agent count, a node of its own: a full node's pods, shaped like
//! real ones ([`pods`]), one InstrumentationConfig per Deployment, then a fresh server (the
//! shipped build) in Kubernetes mode as the `odiglet` service account. Start-up is timed to
//! `/readyz`; the agents ([`pollers`]) register over one interval and poll every interval on
//! their own connections; once every agent's InstrumentationInstance is written (the bench
//! LISTs them, its own LISTs not counted), a window of a few minutes is measured: the
//! server's CPU and memory from `/proc`, its API requests from the API server ([`api`]).
//! Then the same agents poll bare hyper (a fixed answer, no state, no cluster) for as long:
//! the floor this machine charges for the HTTP exchanges alone, beside our figure.

pub mod api;
pub mod pods;
pub mod pollers;
pub mod report;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use xtask::kube::ControlPlane;

use self::api::Snapshot;
use self::pollers::{NodeAgent, Pollers};
use self::report::{Floor, NodeParams, NodeReport, NodeRun};
use crate::client::Connection;
use crate::fleet::Expect;
use crate::procfs::{CpuTimes, ProcError, Process};
use crate::servers::{ServerError, ServerKind, ServerProcess, free_port};

/// The label our server puts on the resources it writes.
const NODE_LABEL: &str = "odigos.io/node";
/// Bounds of the waits; none is expected to come near them.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const REGISTER_TIMEOUT: Duration = Duration::from_secs(300);
/// Between two `/readyz` probes while the server starts.
const READY_PROBE_EVERY: Duration = Duration::from_millis(2);
/// How long a stopped server's watches may stay open on the API server's side.
const WATCHES_CLOSE_TIMEOUT: Duration = Duration::from_secs(180);
/// The write counts must stay still this long before the window opens.
const SETTLE: Duration = Duration::from_millis(500);

/// The server build the phase runs, and the name of its profile for the report.
#[derive(Clone, Debug)]
pub struct NodeBinary {
    pub path: PathBuf,
    pub build: String,
}

/// Why the phase failed (an agent request that fails is not a failure: it is counted).
#[derive(Debug, thiserror::Error)]
pub enum NodeBenchError {
    #[error("the Kubernetes control plane did not start: {0}")]
    ControlPlane(String),
    #[error("Kubernetes API: {0}")]
    Api(String),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("the server {0}; its output is in {1}")]
    ServerFailed(String, PathBuf),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Run the phase with `server` (our binary; `build` names its profile for the report), and
/// `bare_hyper` for the floor.
pub async fn run(
    params: &NodeParams,
    server: &Path,
    build: &str,
    bare_hyper: &Path,
    work_dir: &Path,
) -> Result<NodeReport, NodeBenchError> {
    std::fs::create_dir_all(work_dir).map_err(|source| NodeBenchError::Io {
        path: work_dir.to_owned(),
        source,
    })?;
    let plane = ControlPlane::start()
        .await
        .map_err(|e| NodeBenchError::ControlPlane(e.to_string()))?;
    let quiet = Snapshot::take(&plane).await?;
    let mut runs = Vec::new();
    for &agents in &params.agents {
        eprintln!(
            "bench: node: {agents} agents, {} pods, polls every {} s ...",
            params.pods, params.poll_secs
        );
        let mut run = one_node(&plane, params, agents, server, work_dir).await?;
        let floor = floor(params, agents, bare_hyper, work_dir).await?;
        eprintln!(
            "bench: node: {agents} agents on bare hyper: {:.2} s CPU in {:.0} s",
            floor.cpu_secs, floor.window_secs
        );
        run.floor = Some(floor);
        eprintln!(
            "bench: node: {agents} agents: ready in {:.0} ms, RSS {:.1} MiB (peak {:.1}), \
             {:.2} s CPU in {:.0} s, {} API requests in the window",
            run.ready_ms,
            run.rss_mib,
            run.peak_rss_mib,
            run.cpu_secs,
            run.window_secs,
            run.window.requests()
        );
        runs.push(run);
        watches_closed(&plane, &quiet).await?;
    }
    plane.stop();
    let mut report = NodeReport {
        params: params.clone(),
        apiserver: format!("kube-apiserver {}", xtask::kube::KUBE_VERSION),
        build: build.to_owned(),
        runs,
        targets: Vec::new(),
    };
    report.evaluate();
    Ok(report)
}

/// One node and one server: start-up, registration, the window.
async fn one_node(
    plane: &ControlPlane,
    params: &NodeParams,
    agents: usize,
    program: &Path,
    work_dir: &Path,
) -> Result<NodeRun, NodeBenchError> {
    let admin = plane
        .client()
        .await
        .map_err(|e| NodeBenchError::ControlPlane(e.to_string()))?;
    let node = format!("node-{agents}");
    let namespace = plane
        .create_namespace(&node)
        .await
        .map_err(|e| NodeBenchError::Api(e.to_string()))?;
    let workloads = params.workloads.max(1);
    pods::create_pods(&admin, &namespace, &node, params.pods, workloads).await?;
    pods::create_configs(&admin, &namespace, workloads).await?;
    let interval = poll_interval(params);
    let instances = Api::<DynamicObject>::namespaced_with(admin, &namespace, &instance_resource());

    let before_start = Snapshot::take(plane).await?;
    let started = Instant::now();
    let (mut server, admin_addr) =
        launch(plane, program, work_dir, &node, interval, agents).await?;
    wait_ready(&mut server, admin_addr).await?;
    let ready_ms = started.elapsed().as_secs_f64() * 1e3;
    let process = Process::Pid(server.pid());

    let agent_list = node_agents(params, agents);
    let expected: BTreeSet<String> = agent_list
        .iter()
        .map(|a| a.resource_name(&namespace))
        .collect();
    let pollers = Pollers::start(
        server.addr(),
        &agent_list,
        &namespace,
        interval,
        Expect::OpAmp,
    );
    let registering = Instant::now();
    let mut own_lists = 0u64;
    let registered = async {
        wait_registered(&instances, &node, &expected, &mut own_lists, &mut server).await?;
        settled(plane).await
    }
    .await;
    let before = match registered {
        Ok(snapshot) => snapshot,
        Err(error) => {
            pollers.stop().await;
            return Err(error);
        }
    };
    let registered_secs = registering.elapsed().as_secs_f64();
    let startup = api::between(&before_start, &before, own_lists);

    let counters = std::sync::Arc::clone(&pollers.counters);
    let window = Window::measure(&process, &pollers, params.window_secs).await?;
    let after = Snapshot::take(plane).await?;
    let memory = process.memory()?;
    pollers.stop().await;
    if !server.is_running() {
        return Err(NodeBenchError::ServerFailed(
            "exited during the window".into(),
            server.log().to_owned(),
        ));
    }
    let _ = server.stop().await;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    Ok(NodeRun {
        agents,
        ready_ms,
        registered_secs,
        window_secs: window.secs,
        window_polls: window.polls,
        window_connections: window.connections,
        rss_mib: mib(memory.rss_bytes),
        peak_rss_mib: mib(memory.peak_rss_bytes),
        cpu_secs: window.cpu_secs(),
        cpu_system_secs: window.cpu.system.as_secs_f64(),
        cpu_ms_per_agent_hour: 0.0,
        generator_cpu_secs: window.generator.as_secs_f64(),
        startup,
        window: api::between(&before, &after, 0),
        watches_open: after
            .open_watches()
            .saturating_sub(before_start.open_watches()),
        requests_per_node_hour: 0.0,
        requests_ok: counters.ok.load(Ordering::Relaxed),
        requests_failed: counters.failed.load(Ordering::Relaxed),
        first_error: counters.first_error(),
        floor: None,
    })
}

/// A run's agents: agent `i` in pod `i mod pods`, the pods spread over the workloads.
fn node_agents(params: &NodeParams, agents: usize) -> Vec<NodeAgent> {
    let workloads = params.workloads.max(1);
    (0..agents)
        .map(|index| NodeAgent {
            index,
            pods: params.pods,
            workloads,
        })
        .collect()
}

/// How often each agent polls.
fn poll_interval(params: &NodeParams) -> Duration {
    Duration::from_secs_f64(params.poll_secs.max(0.05))
}

/// `<work_dir>/<name>`, created: where a server of the phase writes its output.
fn log_dir(work_dir: &Path, name: &str) -> Result<PathBuf, NodeBenchError> {
    let dir = work_dir.join(name);
    std::fs::create_dir_all(&dir).map_err(|source| NodeBenchError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// What a server and the generator spent while the agents polled for a while.
struct Window {
    secs: f64,
    cpu: CpuTimes,
    generator: Duration,
    polls: u64,
    connections: u64,
}

impl Window {
    /// Measure `process` over `secs` seconds of `pollers` polling.
    async fn measure(process: &Process, pollers: &Pollers, secs: f64) -> Result<Self, ProcError> {
        let counters = &pollers.counters;
        let (polls, connections) = (
            counters.polls.load(Ordering::Relaxed),
            counters.connections.load(Ordering::Relaxed),
        );
        let (cpu, generator) = (process.cpu_times()?, Process::Current.cpu_time()?);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
        Ok(Window {
            secs: started.elapsed().as_secs_f64(),
            cpu: process.cpu_times()?.since(cpu),
            generator: Process::Current.cpu_time()?.saturating_sub(generator),
            polls: counters.polls.load(Ordering::Relaxed) - polls,
            connections: counters.connections.load(Ordering::Relaxed) - connections,
        })
    }

    fn cpu_secs(&self) -> f64 {
        (self.cpu.user + self.cpu.system).as_secs_f64()
    }
}

/// The floor of a run: `agents` agents polling bare hyper at the run's pace, over a window
/// as long as the run's, once every agent's first poll is in.
async fn floor(
    params: &NodeParams,
    agents: usize,
    bare_hyper: &Path,
    work_dir: &Path,
) -> Result<Floor, NodeBenchError> {
    let addr = free_port()?;
    let mut command = Command::new(bare_hyper);
    // One runtime thread, as our server runs by default.
    command
        .arg("--listen")
        .arg(addr.to_string())
        .env("TOKIO_WORKER_THREADS", "1");
    let log_dir = log_dir(work_dir, &format!("floor-{agents}"))?;
    let mut server = ServerProcess::spawn(ServerKind::BareHyper, command, addr, &log_dir).await?;
    let process = Process::Pid(server.pid());
    let agent_list = node_agents(params, agents);
    let interval = poll_interval(params);
    let pollers = Pollers::start(
        addr,
        &agent_list,
        "floor",
        interval,
        Expect::AnyServerToAgent,
    );
    tokio::time::sleep(interval + SETTLE).await;
    let window = Window::measure(&process, &pollers, params.window_secs).await;
    let failed = pollers.counters.failed.load(Ordering::Relaxed);
    pollers.stop().await;
    if !server.is_running() {
        return Err(NodeBenchError::ServerFailed(
            "(bare hyper) exited during the window".into(),
            server.log().to_owned(),
        ));
    }
    let _ = server.stop().await;
    let window = window?;
    Ok(Floor {
        window_secs: window.secs,
        polls: window.polls,
        connections: window.connections,
        cpu_secs: window.cpu_secs(),
        cpu_ms_per_agent_hour: 0.0,
        failed,
    })
}

/// Our binary in Kubernetes mode for `node`, not waited for; and its admin address.
async fn launch(
    plane: &ControlPlane,
    program: &Path,
    work_dir: &Path,
    node: &str,
    interval: Duration,
    agents: usize,
) -> Result<(ServerProcess, std::net::SocketAddr), NodeBenchError> {
    let addr = free_port()?;
    let admin_addr = free_port()?;
    let mut command = Command::new(program);
    command
        .env("KUBECONFIG", plane.odiglet_kubeconfig_path())
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--admin-listen")
        .arg(admin_addr.to_string())
        .args(["--node-name", node])
        // No kubelet: device ids off, agents identify themselves by attributes.
        .arg("--no-kubelet")
        .arg("--heartbeat-interval")
        .arg(format!("{}ms", interval.as_millis()))
        .arg("--max-agents")
        .arg(agents.max(1).to_string())
        .args(["--log-format", "json"]);
    let log_dir = log_dir(work_dir, node)?;
    let server = ServerProcess::launch(ServerKind::Node, command, addr, &log_dir)?;
    Ok((server, admin_addr))
}

/// Probe `/readyz` until it answers 200 (the pod and config watches have synced).
async fn wait_ready(
    server: &mut ServerProcess,
    admin_addr: std::net::SocketAddr,
) -> Result<(), NodeBenchError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(mut connection) = Connection::open(admin_addr).await
            && connection
                .get("/readyz")
                .await
                .is_ok_and(|reply| reply.status == StatusCode::OK)
        {
            return Ok(());
        }
        if !server.is_running() {
            return Err(NodeBenchError::ServerFailed(
                "exited before it was ready".into(),
                server.log().to_owned(),
            ));
        }
        if Instant::now() >= deadline {
            return Err(NodeBenchError::ServerFailed(
                format!("was not ready (GET /readyz) within {READY_TIMEOUT:?}"),
                server.log().to_owned(),
            ));
        }
        tokio::time::sleep(READY_PROBE_EVERY).await;
    }
}

/// LIST the node's InstrumentationInstances until exactly `expected` are there, healthy.
async fn wait_registered(
    instances: &Api<DynamicObject>,
    node: &str,
    expected: &BTreeSet<String>,
    own_lists: &mut u64,
    server: &mut ServerProcess,
) -> Result<(), NodeBenchError> {
    let deadline = Instant::now() + REGISTER_TIMEOUT;
    let params = ListParams::default().labels(&format!("{NODE_LABEL}={node}"));
    loop {
        let list = instances
            .list(&params)
            .await
            .map_err(|e| NodeBenchError::Api(format!("listing InstrumentationInstances: {e}")))?;
        *own_lists += 1;
        let healthy: BTreeSet<String> = list
            .items
            .iter()
            .filter(|o| o.data["status"]["healthy"].as_bool() == Some(true))
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        if &healthy == expected && list.items.len() == expected.len() {
            return Ok(());
        }
        if !server.is_running() {
            return Err(NodeBenchError::ServerFailed(
                "exited while the agents registered".into(),
                server.log().to_owned(),
            ));
        }
        if Instant::now() >= deadline {
            return Err(NodeBenchError::ServerFailed(
                format!(
                    "did not write the agents' resources within {REGISTER_TIMEOUT:?}: \
                     {} healthy of {} expected",
                    healthy.len(),
                    expected.len()
                ),
                server.log().to_owned(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A snapshot once the write counts stayed still for [`SETTLE`].
async fn settled(plane: &ControlPlane) -> Result<Snapshot, NodeBenchError> {
    let deadline = Instant::now() + REGISTER_TIMEOUT;
    let mut last = Snapshot::take(plane).await?;
    loop {
        tokio::time::sleep(SETTLE).await;
        let now = Snapshot::take(plane).await?;
        if now.writes() == last.writes() {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(NodeBenchError::Api(format!(
                "the API server's write counts did not stay still within {REGISTER_TIMEOUT:?}"
            )));
        }
        last = now;
    }
}

/// Wait until the open-watch gauge is back to `quiet`'s: the API server notices a stopped
/// client's watch only at its next write to it (an event or a bookmark, within a minute or
/// so), and counts it then; the next run must not count the last one's.
async fn watches_closed(plane: &ControlPlane, quiet: &Snapshot) -> Result<(), NodeBenchError> {
    let deadline = Instant::now() + WATCHES_CLOSE_TIMEOUT;
    loop {
        let now = Snapshot::take(plane).await?;
        if now.open_watches() <= quiet.open_watches() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NodeBenchError::Api(format!(
                "the stopped server's watches were still open {WATCHES_CLOSE_TIMEOUT:?} later \
                 ({} open, {} before it started)",
                now.open_watches(),
                quiet.open_watches()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The `InstrumentationInstance` kind (deploy/crds).
fn instance_resource() -> ApiResource {
    ApiResource {
        group: "odigos.io".into(),
        version: "v1alpha1".into(),
        api_version: "odigos.io/v1alpha1".into(),
        kind: "InstrumentationInstance".into(),
        plural: "instrumentationinstances".into(),
    }
}
