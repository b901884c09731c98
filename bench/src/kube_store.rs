//! The Kubernetes store phase: how many API requests our server's `InstrumentationInstance`
//! store costs, per agent, counted by the API server itself.
//!
//! A real control plane (etcd + kube-apiserver on loopback, from the `xtask::kube` harness,
//! with only our CRDs and `deploy/rbac.yaml` installed) and our release binary in Kubernetes
//! mode as the `odiglet` service account. The agents' pods exist on the bench node before the
//! server starts (the kubelet would create them in a cluster: not the server's cost). Agents
//! send no device id: each is identified by its self-reported `k8s.namespace.name`,
//! `k8s.pod.name` and `k8s.container.name`, which the server checks against its watch of the
//! node's pods.
//!
//! Three windows, each between two reads of the API server's `/metrics`
//! (`apiserver_request_total`, for pods, instrumentationinstances and
//! instrumentationconfigs, by resource, subresource and verb):
//!
//! 1. *registration*: every agent sends its first message (health `Starting`), then a
//!    healthy report;
//! 2. *steady state*: unchanged heartbeats from every agent for a while;
//! 3. *churn*: start/stop cycles spread over a while: an agent stops (every other one with a
//!    disconnect message, the others by going silent until the server's stale sweep), a new
//!    agent starts in a new pod; the others keep heartbeating.
//!
//! The server writes in the background, so a window ends only when its writes are done:
//! the bench lists this node's InstrumentationInstances until exactly the live agents have
//! one, each with a healthy status, then waits until the API server's write counts stay
//! still. Those LISTs are the bench's own and are subtracted. Agents keep heartbeating
//! meanwhile (a silent agent would be swept).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use odigos_opamp_proto::opamp::proto::{AgentDisconnect, AgentToServer, ServerToAgentFlags};
use odigos_opamp_server::protocol::InstanceKey;
use tokio::task::JoinSet;
use xtask::kube::{ControlPlane, request_samples};

use crate::agents::{self, AgentId, CONTAINER};
use crate::client::{Connection, Reconnecting};
use crate::report::{ApiRequests, DEFAULT_HEARTBEAT_SECS, KubeParams, KubePhase, KubeReport};
use crate::servers::{ServerError, ServerKind, ServerProcess, free_port};

/// The node the server serves and every pod is bound to.
pub const NODE: &str = "bench-node";
/// The resources our server touches; requests to others are not its cost.
pub const RESOURCES: [&str; 3] = ["pods", "instrumentationinstances", "instrumentationconfigs"];
pub use xtask::kube::WRITE_VERBS;
/// The label our server puts on the resources it writes.
const NODE_LABEL: &str = "odigos.io/node";
/// The stale factor the server runs with (its default).
const STALE_FACTOR: f64 = 2.5;
/// How long the server may take to become ready, and a window to drain.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The write counts must stay still this long for a window to end.
const SETTLE: Duration = Duration::from_millis(400);
/// Pods are created by this many tasks at once.
const POD_CREATORS: usize = 8;

/// Why the phase failed (an agent request that fails is not a failure: it is counted).
#[derive(Debug, thiserror::Error)]
pub enum KubeBenchError {
    #[error("the Kubernetes control plane did not start: {0}")]
    ControlPlane(String),
    #[error("Kubernetes API: {0}")]
    Api(String),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("the server in Kubernetes mode {0}; its output is in {1}")]
    ServerFailed(String, PathBuf),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Run the phase: start a control plane, create the pods, start `server` (our binary) in
/// Kubernetes mode, and count the API requests of each window.
pub async fn run(
    params: &KubeParams,
    server: &Path,
    work_dir: &Path,
) -> Result<KubeReport, KubeBenchError> {
    std::fs::create_dir_all(work_dir).map_err(|source| KubeBenchError::Io {
        path: work_dir.to_owned(),
        source,
    })?;
    let started = Instant::now();
    let plane = ControlPlane::start()
        .await
        .map_err(|e| KubeBenchError::ControlPlane(e.to_string()))?;
    let admin = plane
        .client()
        .await
        .map_err(|e| KubeBenchError::ControlPlane(e.to_string()))?;
    let namespace = plane
        .create_namespace("bench")
        .await
        .map_err(|e| KubeBenchError::Api(e.to_string()))?;
    let cycles = params.churn_cycles;
    let pods = params.agents + cycles;
    create_pods(&admin, &namespace, pods).await?;
    eprintln!(
        "bench: kube: control plane up, {pods} pods created in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let heartbeat = Duration::from_secs_f64(params.heartbeat_secs.max(0.05));
    let mut process = start_server(&plane, server, work_dir, heartbeat, pods).await?;
    let log = process.log().to_owned();
    let instances = Api::<DynamicObject>::namespaced_with(admin, &namespace, &instance_resource());
    let mut bench = Bench {
        plane: &plane,
        instances,
        fleet: Fleet::new(process.addr(), params.connections.max(1), namespace.clone()),
        heartbeat,
        own_lists: 0,
        process: &mut process,
        log,
    };
    // The start-up LISTs and WATCHes, and the resync's LIST, are over before the first
    // window; the resync's grace (the stale period) too, so it deletes nothing in one.
    tokio::time::sleep(heartbeat.mul_f64(STALE_FACTOR)).await;
    let mut before = bench.settled().await?;

    // 1. Registration.
    let window = bench.open(before);
    for index in 0..params.agents {
        bench.fleet.add(AgentId(index));
    }
    bench.fleet.round().await;
    let (registration, after) = bench.close(window).await?;
    eprintln!(
        "bench: kube: {} agents registered: {} API writes, {} reads",
        params.agents, registration.writes, registration.reads
    );
    before = after;

    // 2. Steady state.
    let window = bench.open(before);
    let rounds = rounds_in(params.steady_secs, heartbeat);
    let mut clock = Clock::new(heartbeat);
    for _ in 0..rounds {
        clock.tick().await;
        bench.fleet.round().await;
    }
    let (steady, after) = bench.close(window).await?;
    eprintln!(
        "bench: kube: steady state, {} heartbeats: {} API writes, {} reads",
        steady.heartbeats, steady.writes, steady.reads
    );
    before = after;

    // 3. Churn: cycles spread evenly over the rounds of the window.
    let window = bench.open(before);
    let rounds = rounds_in(params.churn_secs, heartbeat).max(1);
    let mut clock = Clock::new(heartbeat);
    let (mut disconnects, mut silent, mut next_agent) = (0u64, 0u64, params.agents);
    for round in 0..rounds {
        clock.tick().await;
        let due = cycles * (round + 1) / rounds - cycles * round / rounds;
        for _ in 0..due {
            let k = disconnects + silent;
            if bench.fleet.stop_oldest(k % 2 == 0) {
                if k % 2 == 0 {
                    disconnects += 1;
                } else {
                    silent += 1;
                }
            }
            bench.fleet.add(AgentId(next_agent));
            next_agent += 1;
        }
        bench.fleet.round().await;
    }
    let (churn, _) = bench.close(window).await?;
    eprintln!(
        "bench: kube: churn, {} cycles: {} API writes, {} reads",
        disconnects + silent,
        churn.writes,
        churn.reads
    );

    let tally = std::mem::take(&mut bench.fleet.tally);
    drop(bench);
    let _ = process.stop().await;
    let report = KubeReport {
        params: params.clone(),
        apiserver: format!("kube-apiserver {}", xtask::kube::KUBE_VERSION),
        registration,
        steady,
        churn,
        churn_disconnects: disconnects,
        churn_silent: silent,
        scaled_to_heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
        steady_writes_per_agent_hour: 0.0,
        steady_reads_per_agent_hour: 0.0,
        registration_writes_per_agent: 0.0,
        registration_requests_per_agent: 0.0,
        churn_requests_per_cycle: 0.0,
        churn_writes_per_cycle: 0.0,
        requests_per_agent_hour_with_churn: 0.0,
        writes_per_agent_hour_with_churn: 0.0,
        requests_ok: tally.ok,
        requests_failed: tally.failed,
        first_error: tally.first_error,
    };
    plane.stop();
    Ok(report)
}

/// Heartbeat rounds in `secs` (at least one).
fn rounds_in(secs: f64, heartbeat: Duration) -> usize {
    ((secs / heartbeat.as_secs_f64()).round() as usize).max(1)
}

/// Ticks every heartbeat interval from its creation; a late round does not shift the next.
struct Clock {
    next: tokio::time::Instant,
    period: Duration,
}

impl Clock {
    fn new(period: Duration) -> Self {
        Clock {
            next: tokio::time::Instant::now(),
            period,
        }
    }

    async fn tick(&mut self) {
        tokio::time::sleep_until(self.next).await;
        self.next += self.period;
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

/// Pods `0..count` of [`AgentId`], bound to [`NODE`], each with its agent's container and a
/// ReplicaSet as controller (so each resolves to a Deployment).
async fn create_pods(
    client: &kube::Client,
    namespace: &str,
    count: usize,
) -> Result<(), KubeBenchError> {
    let mut creators = JoinSet::new();
    for first in 0..POD_CREATORS.min(count) {
        let api = Api::<Pod>::namespaced(client.clone(), namespace);
        creators.spawn(async move {
            for index in (first..count).step_by(POD_CREATORS) {
                let pod = pod(AgentId(index));
                api.create(&PostParams::default(), &pod)
                    .await
                    .map_err(|e| format!("creating pod {}: {e}", AgentId(index).pod()))?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = creators.join_next().await {
        done.map_err(|e| KubeBenchError::Api(e.to_string()))?
            .map_err(KubeBenchError::Api)?;
    }
    Ok(())
}

fn pod(id: AgentId) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(id.pod()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: format!("{}-7d9f8b6c5d", id.workload()),
                uid: "00000000-0000-4000-8000-000000000001".into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(NODE.into()),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some("registry.invalid/app:1".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// Our binary in Kubernetes mode, as the `odiglet` service account, until it is ready.
async fn start_server(
    plane: &ControlPlane,
    program: &Path,
    work_dir: &Path,
    heartbeat: Duration,
    max_agents: usize,
) -> Result<ServerProcess, KubeBenchError> {
    let addr = free_port()?;
    let admin_addr = free_port()?;
    let mut command = Command::new(program);
    command
        .env("KUBECONFIG", plane.odiglet_kubeconfig_path())
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--admin-listen")
        .arg(admin_addr.to_string())
        .args(["--node-name", NODE])
        // No kubelet: device ids off, agents identify themselves by attributes.
        .arg("--no-kubelet")
        .arg("--heartbeat-interval")
        .arg(format!("{}ms", heartbeat.as_millis()))
        .arg("--stale-factor")
        .arg(STALE_FACTOR.to_string())
        .arg("--max-agents")
        .arg(max_agents.max(1).to_string());
    let mut server = ServerProcess::spawn(ServerKind::Kube, command, addr, work_dir).await?;
    // Agents are answered once the pod and config watches have synced.
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ready = match Connection::open(admin_addr).await {
            Ok(mut connection) => connection
                .get("/readyz")
                .await
                .is_ok_and(|reply| reply.status == StatusCode::OK),
            Err(_) => false,
        };
        if ready {
            return Ok(server);
        }
        if !server.is_running() {
            return Err(KubeBenchError::ServerFailed(
                "exited before it was ready".into(),
                server.log().to_owned(),
            ));
        }
        if Instant::now() >= deadline {
            return Err(KubeBenchError::ServerFailed(
                format!("was not ready (GET /readyz) within {READY_TIMEOUT:?}"),
                server.log().to_owned(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `apiserver_request_total` for [`RESOURCES`], by (resource, subresource, verb).
pub type Counts = BTreeMap<(String, String, String), u64>;

/// The counts of a Prometheus text page.
pub fn request_counts(metrics: &str) -> Counts {
    let mut counts = Counts::new();
    for sample in request_samples(metrics) {
        let resource = sample.label("resource");
        if !RESOURCES.contains(&resource) {
            continue;
        }
        let key = (
            resource.to_owned(),
            sample.label("subresource").to_owned(),
            sample.label("verb").to_owned(),
        );
        *counts.entry(key).or_default() += sample.value as u64;
    }
    counts
}

/// `after - before`, as a window's phase (without its agent counts).
pub fn difference(before: &Counts, after: &Counts, own_lists: u64) -> KubePhase {
    let mut phase = KubePhase::default();
    for (key, &count) in after {
        let mut count = count.saturating_sub(before.get(key).copied().unwrap_or(0));
        let (resource, subresource, verb) = key;
        if resource == "instrumentationinstances" && subresource.is_empty() && verb == "LIST" {
            let own = own_lists.min(count);
            phase.own_lists_subtracted = own;
            count -= own;
        }
        if count == 0 {
            continue;
        }
        if WRITE_VERBS.contains(&verb.as_str()) {
            phase.writes += count;
        } else {
            phase.reads += count;
        }
        phase.requests.push(ApiRequests {
            resource: resource.clone(),
            subresource: subresource.clone(),
            verb: verb.clone(),
            count,
        });
    }
    phase
}

/// The writes among counts, to tell when they stay still.
fn writes(counts: &Counts) -> u64 {
    counts
        .iter()
        .filter(|((_, _, verb), _)| WRITE_VERBS.contains(&verb.as_str()))
        .map(|(_, count)| count)
        .sum()
}

/// What the phase works with.
struct Bench<'a> {
    plane: &'a ControlPlane,
    instances: Api<DynamicObject>,
    fleet: Fleet,
    heartbeat: Duration,
    /// LISTs of InstrumentationInstances the bench made itself, in the open window.
    own_lists: u64,
    process: &'a mut ServerProcess,
    log: PathBuf,
}

/// A window being measured.
struct Window {
    before: Counts,
    started: Instant,
    tally: Tally,
}

impl Bench<'_> {
    async fn counts(&self) -> Result<Counts, KubeBenchError> {
        let text = self
            .plane
            .metrics_text()
            .await
            .map_err(|e| KubeBenchError::Api(format!("GET /metrics: {e}")))?;
        Ok(request_counts(&text))
    }

    /// The counts, once their writes stayed still for [`SETTLE`] (agents heartbeating
    /// meanwhile when a round falls due).
    async fn settled(&mut self) -> Result<Counts, KubeBenchError> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut last = self.counts().await?;
        loop {
            tokio::time::sleep(SETTLE).await;
            if self.fleet.last_round.elapsed() >= self.heartbeat {
                self.fleet.round().await;
            }
            let now = self.counts().await?;
            if writes(&now) == writes(&last) {
                return Ok(now);
            }
            if Instant::now() >= deadline {
                return Err(KubeBenchError::Api(format!(
                    "the API server's write counts did not stay still within {DRAIN_TIMEOUT:?}"
                )));
            }
            last = now;
        }
    }

    fn open(&mut self, before: Counts) -> Window {
        self.own_lists = 0;
        Window {
            before,
            started: Instant::now(),
            tally: self.fleet.tally.clone(),
        }
    }

    /// Heartbeat rounds until the resources on this node are exactly the live agents',
    /// each healthy, and the write counts stay still; then the window's requests. Names,
    /// not a count: a stopped agent's resource not yet deleted must not stand in for a new
    /// agent's not yet written.
    async fn close(&mut self, window: Window) -> Result<(KubePhase, Counts), KubeBenchError> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut clock = Clock::new(self.heartbeat);
        clock.tick().await;
        let live = self.fleet.live_resources();
        loop {
            let (on_node, healthy) = self.list_instances().await?;
            if on_node == live && healthy == live.len() {
                break;
            }
            if !self.process.is_running() {
                return Err(KubeBenchError::ServerFailed(
                    "exited".into(),
                    self.log.clone(),
                ));
            }
            if Instant::now() >= deadline {
                return Err(KubeBenchError::ServerFailed(
                    format!(
                        "did not write the expected resources within {DRAIN_TIMEOUT:?}: \
                         {} on the node ({healthy} healthy), {} live agents",
                        on_node.len(),
                        live.len()
                    ),
                    self.log.clone(),
                ));
            }
            clock.tick().await;
            self.fleet.round().await;
        }
        let after = self.settled().await?;
        let mut phase = difference(&window.before, &after, self.own_lists);
        phase.seconds = window.started.elapsed().as_secs_f64();
        let tally = &self.fleet.tally;
        phase.agents_started = tally.firsts - window.tally.firsts;
        phase.health_reports = tally.health_reports - window.tally.health_reports;
        phase.heartbeats = tally.heartbeats - window.tally.heartbeats;
        phase.disconnects = tally.disconnects - window.tally.disconnects;
        Ok((phase, after))
    }

    /// (the names of the resources on this node, how many have a healthy status), by one
    /// LIST.
    async fn list_instances(&mut self) -> Result<(BTreeSet<String>, usize), KubeBenchError> {
        let params = ListParams::default().labels(&format!("{NODE_LABEL}={NODE}"));
        let list =
            self.instances.list(&params).await.map_err(|e| {
                KubeBenchError::Api(format!("listing InstrumentationInstances: {e}"))
            })?;
        self.own_lists += 1;
        let healthy = list
            .items
            .iter()
            .filter(|o| o.data["status"]["healthy"].as_bool() == Some(true))
            .count();
        let names = list
            .items
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        Ok((names, healthy))
    }
}

/// Agent requests so far.
#[derive(Clone, Debug, Default)]
struct Tally {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
    firsts: u64,
    health_reports: u64,
    heartbeats: u64,
    disconnects: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.firsts += other.firsts;
        self.health_reports += other.health_reports;
        self.heartbeats += other.heartbeats;
        self.disconnects += other.disconnects;
    }
}

/// What an agent sends in its next round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Its first message, then a healthy report.
    Register,
    Heartbeat,
    /// A disconnect message, then nothing: it is gone.
    Disconnect,
}

struct SimAgent {
    id: AgentId,
    uid: Vec<u8>,
    seq: u64,
    step: Step,
}

/// A keep-alive connection and the agents that use it, one request at a time.
struct Lane {
    link: Reconnecting,
    agents: Vec<SimAgent>,
}

/// The simulated agents over a few connections.
struct Fleet {
    namespace: String,
    lanes: Vec<Lane>,
    tally: Tally,
    /// When the last round started.
    last_round: Instant,
}

impl Fleet {
    fn new(addr: SocketAddr, connections: usize, namespace: String) -> Self {
        Fleet {
            namespace,
            lanes: (0..connections)
                .map(|_| Lane {
                    link: Reconnecting::new(addr),
                    agents: Vec::new(),
                })
                .collect(),
            tally: Tally::default(),
            last_round: Instant::now(),
        }
    }

    /// A new agent, registering in the next round, on the least used connection.
    fn add(&mut self, id: AgentId) {
        let lane = self
            .lanes
            .iter_mut()
            .min_by_key(|lane| lane.agents.len())
            .expect("at least one connection");
        lane.agents.push(SimAgent {
            id,
            uid: id.uid(),
            seq: 0,
            step: Step::Register,
        });
    }

    /// Stop the registered agent with the lowest number: with a disconnect message in the
    /// next round, or silently (it just stops sending). False when none is registered.
    fn stop_oldest(&mut self, disconnect: bool) -> bool {
        let oldest = self
            .lanes
            .iter()
            .enumerate()
            .flat_map(|(l, lane)| {
                lane.agents
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.step == Step::Heartbeat)
                    .map(move |(a, agent)| (agent.id.0, l, a))
            })
            .min();
        let Some((_, l, a)) = oldest else {
            return false;
        };
        if disconnect {
            self.lanes[l].agents[a].step = Step::Disconnect;
        } else {
            self.lanes[l].agents.remove(a);
        }
        true
    }

    /// The resource names of the agents still running (those about to disconnect
    /// excluded), as the server names them.
    fn live_resources(&self) -> BTreeSet<String> {
        self.lanes
            .iter()
            .flat_map(|lane| &lane.agents)
            .filter(|a| a.step != Step::Disconnect)
            .map(|a| {
                InstanceKey::new(self.namespace.as_str(), a.id.pod(), CONTAINER, a.id.pid())
                    .resource_name()
            })
            .collect()
    }

    /// Every agent's next step, the connections side by side.
    async fn round(&mut self) {
        self.last_round = Instant::now();
        let mut tasks = JoinSet::new();
        for (index, mut lane) in std::mem::take(&mut self.lanes).into_iter().enumerate() {
            let namespace = self.namespace.clone();
            tasks.spawn(async move {
                let tally = lane.round(&namespace).await;
                (index, lane, tally)
            });
        }
        let mut lanes = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((index, lane, tally)) => {
                    self.tally.add(tally);
                    lanes.push((index, lane));
                }
                Err(error) => {
                    self.tally.failed += 1;
                    self.tally.first_error.get_or_insert_with(|| {
                        format!("an agent connection's task failed: {error}")
                    });
                }
            }
        }
        lanes.sort_by_key(|(index, _)| *index);
        self.lanes = lanes.into_iter().map(|(_, lane)| lane).collect();
    }
}

impl Lane {
    async fn round(&mut self, namespace: &str) -> Tally {
        let mut tally = Tally::default();
        let mut gone = Vec::new();
        for index in 0..self.agents.len() {
            let agent = &mut self.agents[index];
            let messages: Vec<(AgentToServer, Kind)> = match agent.step {
                Step::Register => {
                    agent.seq = 1;
                    agent.step = Step::Heartbeat;
                    vec![
                        (
                            agent.id.first_message_in(&agent.uid, namespace),
                            Kind::First,
                        ),
                        (agents::healthy_report(&agent.uid, 1), Kind::Health),
                    ]
                }
                Step::Heartbeat => {
                    agent.seq += 1;
                    vec![(agents::heartbeat(&agent.uid, agent.seq), Kind::Heartbeat)]
                }
                Step::Disconnect => {
                    agent.seq += 1;
                    gone.push(index);
                    let mut message = agents::heartbeat(&agent.uid, agent.seq);
                    message.agent_disconnect = Some(AgentDisconnect {});
                    vec![(message, Kind::Disconnect)]
                }
            };
            for (message, kind) in messages {
                match self.send(&message, kind).await {
                    Ok(()) => {
                        tally.ok += 1;
                        match kind {
                            Kind::First => tally.firsts += 1,
                            Kind::Health => tally.health_reports += 1,
                            Kind::Heartbeat => tally.heartbeats += 1,
                            Kind::Disconnect => tally.disconnects += 1,
                        }
                    }
                    Err(error) => {
                        tally.failed += 1;
                        tally.first_error.get_or_insert(error);
                    }
                }
            }
        }
        for index in gone.into_iter().rev() {
            self.agents.remove(index);
        }
        tally
    }

    /// One message and its reply's checks.
    async fn send(&mut self, message: &AgentToServer, kind: Kind) -> Result<(), String> {
        let response = self
            .link
            .exchange(message)
            .await
            .map_err(|error| format!("{kind:?}: {error}"))?
            .message;
        if kind == Kind::First && response.remote_config.is_none() {
            return Err("no remote config in the answer to a first message".into());
        }
        if kind != Kind::First && response.flags & ServerToAgentFlags::ReportFullState as u64 != 0 {
            return Err(format!(
                "{kind:?}: the server asked a registered agent for its full state"
            ));
        }
        Ok(())
    }
}

/// What a message is, for the counts and the reply's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    First,
    Health,
    Heartbeat,
    Disconnect,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 200
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="odigos.io",resource="instrumentationinstances",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 7
apiserver_request_total{code="500",component="apiserver",contentType="application/json",dry_run="",group="odigos.io",resource="instrumentationinstances",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 1
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="odigos.io",resource="instrumentationinstances",scope="namespace",subresource="",verb="LIST",version="v1alpha1"} 5
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="",resource="namespaces",scope="resource",subresource="",verb="POST",version="v1"} 1
"#;

    #[test]
    fn counts_by_resource_subresource_and_verb_for_our_resources_only() {
        let counts = request_counts(PAGE);
        let key = |r: &str, s: &str, v: &str| (r.to_owned(), s.to_owned(), v.to_owned());
        assert_eq!(counts[&key("pods", "", "LIST")], 2);
        assert_eq!(counts[&key("pods", "", "POST")], 200);
        assert_eq!(
            counts[&key("instrumentationinstances", "status", "APPLY")],
            8,
            "every code counts"
        );
        assert!(!counts.keys().any(|(r, _, _)| r == "namespaces"));
    }

    #[test]
    fn a_window_splits_writes_from_reads_and_subtracts_the_bench_s_own_lists() {
        let before = request_counts(PAGE);
        let mut after = before.clone();
        let key = |r: &str, s: &str, v: &str| (r.to_owned(), s.to_owned(), v.to_owned());
        *after
            .entry(key("instrumentationinstances", "", "LIST"))
            .or_default() += 3;
        *after
            .entry(key("instrumentationinstances", "", "DELETE"))
            .or_default() += 4;
        *after.entry(key("pods", "", "GET")).or_default() += 1;
        let phase = difference(&before, &after, 2);
        assert_eq!(phase.writes, 4);
        assert_eq!(
            phase.reads, 2,
            "one of the three LISTs is the server's, and one GET"
        );
        assert_eq!(phase.own_lists_subtracted, 2);
        assert_eq!(phase.count("instrumentationinstances", "", &["DELETE"]), 4);
        assert_eq!(difference(&before, &before, 0).total(), 0);
    }
}
