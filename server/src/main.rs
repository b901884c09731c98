//! `odigos-opamp-server`: flags → settings, logging, listeners, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use odigos_opamp_server::identity::{DeviceTable, StaticTableIdentity};
use odigos_opamp_server::kube::{KubeOptions, Kubernetes};
use odigos_opamp_server::settings::{self, Mode, PeerVerification, Settings};
use odigos_opamp_server::{Server, ServerBuilder, kubelet};
use tokio::signal::unix::{SignalKind, signal};

/// The node-local Odigos OpAMP server.
///
/// Serves POST /v1/opamp to the OpenTelemetry agents on this node, and /healthz, /readyz,
/// /metrics and /agents on a separate admin listener. Every flag can also be set through the
/// environment variable shown with it.
///
/// Two modes (--mode). Kubernetes: agents are verified against this node's pods and the
/// kubelet, configs come from InstrumentationConfig objects, and each agent is recorded as
/// an InstrumentationInstance; the API server is found in-cluster or through KUBECONFIG, and
/// --node-name (or NODE_NAME) is required. Embedded: no cluster, identities and configs from
/// a device table (--devices), records in memory.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// kubernetes: watch this node's pods and the InstrumentationConfigs, ask the kubelet for
    /// device ids, write InstrumentationInstances (needs an API server). embedded: only the
    /// --devices table, nothing written anywhere. Default: embedded when --devices or
    /// --trust-self-reported is given, else kubernetes.
    #[arg(long, env = "ODIGOS_OPAMP_MODE", value_enum)]
    mode: Option<ModeArg>,

    /// Agent listener address (TCP).
    #[arg(long, env = "ODIGOS_OPAMP_LISTEN", default_value_t = settings::DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Also serve agents on this unix socket (created mode 0666, a stale file replaced at
    /// start, removed at exit). Without a value: /var/odigos/exchange/exchange.sock.
    #[arg(long, env = "ODIGOS_OPAMP_UNIX_SOCKET", num_args = 0..=1, default_missing_value = settings::DEFAULT_UNIX_SOCKET)]
    unix_socket: Option<PathBuf>,

    /// Admin listener address: /healthz, /readyz, /metrics (Prometheus text), /agents (JSON).
    #[arg(long, env = "ODIGOS_OPAMP_ADMIN_LISTEN", default_value_t = settings::DEFAULT_ADMIN_LISTEN)]
    admin_listen: SocketAddr,

    /// Device table (YAML list of {deviceId, namespace, pod, container, workloadKind,
    /// workloadName, containerConfig}) that identifies agents without a cluster. An agent is
    /// accepted when its X-Odigos-DeviceId header, or its self-reported k8s.namespace.name /
    /// k8s.pod.name / k8s.container.name, matches a row; a row's containerConfig (the
    /// container's InstrumentationConfig entry) is sent as its container_config section.
    /// Without this file every agent is refused, unless --trust-self-reported is given.
    /// Embedded mode only (giving it selects embedded mode).
    #[arg(long, env = "ODIGOS_OPAMP_DEVICES", value_name = "FILE")]
    devices: Option<PathBuf>,

    /// Embedded mode only, for development: accept self-reported k8s.* attributes that match
    /// no device table row, as a bare pod. Never use this where agents are not trusted;
    /// refused in Kubernetes mode.
    #[arg(long, env = "ODIGOS_OPAMP_TRUST_SELF_REPORTED", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    trust_self_reported: bool,

    /// This node's name, sent to agents as k8s.node.name; in Kubernetes mode also the node
    /// whose pods are served, and required. Default: the NODE_NAME environment variable (set
    /// by the DaemonSet from spec.nodeName), else (embedded mode only) the host name.
    #[arg(long, env = "ODIGOS_OPAMP_NODE_NAME")]
    node_name: Option<String>,

    /// Kubernetes mode: the kubelet's PodResources socket, which maps the X-Odigos-DeviceId
    /// of an agent to its pod and container. Default: /var/lib/kubelet/pod-resources/kubelet.sock.
    #[arg(long, env = "ODIGOS_OPAMP_KUBELET_SOCKET", value_name = "PATH", conflicts_with = "no_kubelet", value_parser = parse_socket_path)]
    kubelet_socket: Option<PathBuf>,

    /// Kubernetes mode: do not ask the kubelet. X-Odigos-DeviceId is then unknown, and every
    /// agent must self-report k8s.namespace.name, k8s.pod.name and k8s.container.name (which
    /// are checked against this node's pods as always).
    #[arg(long, env = "ODIGOS_OPAMP_NO_KUBELET", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    no_kubelet: bool,

    /// How an agent's connection is held against who it says it is. A connection names its
    /// pod by its pod IP (TCP) or by its process's cgroup (unix socket; needs hostPID).
    /// required: agents whose connection names no pod (the node's address, hostNetwork
    /// pods, no /proc) are refused. when-possible: they are served on the checks of their
    /// claims alone, marked unverified. off: connections are not looked at. In every mode but
    /// off, a connection that names another pod than the claim (or comes from outside this
    /// node, for a pod that lists its IPs) is refused with 403, and a registered agent's
    /// messages must come from the peer it registered from.
    #[arg(long, env = "ODIGOS_OPAMP_PEER_VERIFICATION", value_enum, default_value_t = PeerVerificationArg::WhenPossible)]
    peer_verification: PeerVerificationArg,

    /// /agents on the admin listener shows raw instance uids, which let a client speak for
    /// an agent, and everything agents reported. Off: uids as a short digest, and no
    /// attributes. For development only: the admin port is reachable from pods.
    #[arg(long, env = "ODIGOS_OPAMP_ADMIN_SHOW_CREDENTIALS", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    admin_show_credentials: bool,

    /// Expected agent polling interval (e.g. 30s, 500ms), sent to agents that report
    /// heartbeats; the liveness sweeper runs twice per interval.
    #[arg(long, env = "ODIGOS_OPAMP_HEARTBEAT_INTERVAL", value_parser = parse_duration, default_value = "30s")]
    heartbeat_interval: Duration,

    /// Drop an agent after this many heartbeat intervals without a message (at least 1).
    #[arg(long, env = "ODIGOS_OPAMP_STALE_FACTOR", default_value_t = settings::DEFAULT_STALE_FACTOR)]
    stale_factor: f64,

    /// Largest accepted request body in bytes, after gzip decompression; larger: 413.
    #[arg(long, env = "ODIGOS_OPAMP_MAX_BODY_BYTES", default_value_t = settings::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,

    /// How long shutdown waits for in-flight requests and the store flush.
    #[arg(long, env = "ODIGOS_OPAMP_SHUTDOWN_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    shutdown_timeout: Duration,

    /// Most agents served at once; a new agent past it gets 503 with Retry-After (one
    /// heartbeat interval) until others disconnect or go stale.
    #[arg(long, env = "ODIGOS_OPAMP_MAX_AGENTS", default_value_t = settings::DEFAULT_MAX_AGENTS)]
    max_agents: usize,

    /// Most open connections on the agent listeners together (the admin listener has as
    /// many of its own); a connection past it gets 503 with Retry-After and is closed.
    #[arg(long, env = "ODIGOS_OPAMP_MAX_CONNECTIONS", default_value_t = settings::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Most requests handled at once per listener group; others wait their turn (within
    /// --request-timeout). Bounds the request bodies held in memory at once.
    #[arg(long, env = "ODIGOS_OPAMP_MAX_CONCURRENT_REQUESTS", default_value_t = settings::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    max_concurrent_requests: usize,

    /// Time a client has to send a request's headers, from their first byte (from the
    /// connection's start for its first request). Past it the connection is closed.
    #[arg(long, env = "ODIGOS_OPAMP_HEADER_READ_TIMEOUT", value_parser = parse_duration, default_value = "5s")]
    header_read_timeout: Duration,

    /// Time a keep-alive connection may wait for its next request (or its client take an
    /// answer) before it is closed. Keep it above the agents' poll interval: a connection
    /// closed between two polls costs the next one a new connection.
    #[arg(long, env = "ODIGOS_OPAMP_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "75s")]
    idle_timeout: Duration,

    /// Time a client has to send the body and get the answer, once the headers are in;
    /// past it: 408 and the connection is closed.
    #[arg(long, env = "ODIGOS_OPAMP_REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    request_timeout: Duration,

    /// Threads of the async runtime that answers agents and runs the watches. One answers
    /// a node's few hundred agents with a small fraction of a core, and wakes fewer threads
    /// per poll than one per core would; more only help past some ten thousand messages a
    /// second.
    #[arg(long, env = "ODIGOS_OPAMP_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: u16,

    /// Log format.
    #[arg(long, env = "ODIGOS_OPAMP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax (e.g. info, odigos_opamp_server=debug).
    #[arg(long, env = "ODIGOS_OPAMP_LOG", default_value = "info")]
    log: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// A socket path; an empty one is a mistake, not a way to turn the kubelet off.
fn parse_socket_path(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("an empty path: to not ask the kubelet, use --no-kubelet".into());
    }
    Ok(PathBuf::from(text))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PeerVerificationArg {
    Required,
    WhenPossible,
    Off,
}

impl From<PeerVerificationArg> for PeerVerification {
    fn from(arg: PeerVerificationArg) -> Self {
        match arg {
            PeerVerificationArg::Required => PeerVerification::Required,
            PeerVerificationArg::WhenPossible => PeerVerification::WhenPossible,
            PeerVerificationArg::Off => PeerVerification::Off,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Kubernetes,
    Embedded,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 500ms, 2m)"))?;
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid --log filter {filter:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl Cli {
    /// --mode, else inferred: embedded when a device table or trust is asked for. The flags
    /// of the other mode are refused rather than ignored.
    fn mode(&self) -> anyhow::Result<Mode> {
        let embedded_flags = self.devices.is_some() || self.trust_self_reported;
        let kubernetes_flags = self.kubelet_socket.is_some() || self.no_kubelet;
        let mode = match self.mode {
            Some(ModeArg::Kubernetes) => Mode::Kubernetes,
            Some(ModeArg::Embedded) => Mode::Embedded,
            None if embedded_flags => Mode::Embedded,
            None => Mode::Kubernetes,
        };
        match mode {
            Mode::Kubernetes if self.trust_self_reported => bail!(
                "--trust-self-reported is refused in Kubernetes mode: agents are checked \
                 against this node's pods there; without a cluster, use --mode embedded"
            ),
            Mode::Kubernetes if self.devices.is_some() => bail!(
                "--devices is for embedded mode; in Kubernetes mode the kubelet and this \
                 node's pods identify agents (leave --mode out, or say --mode embedded)"
            ),
            Mode::Embedded if kubernetes_flags => bail!(
                "--kubelet-socket and --no-kubelet are for Kubernetes mode; in embedded mode \
                 the --devices table identifies agents"
            ),
            mode => Ok(mode),
        }
    }

    fn embedded(&self) -> bool {
        matches!(self.mode(), Ok(Mode::Embedded))
    }

    /// --node-name, else NODE_NAME; in embedded mode, else the host name.
    fn node_name(&self) -> anyhow::Result<String> {
        let given = self
            .node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok())
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        match given {
            Some(name) => Ok(name),
            None if self.embedded() => Ok(host_name()),
            None => bail!(
                "--node-name (or NODE_NAME) is required in Kubernetes mode: the server serves the \
                 pods of one node; without a cluster, give --devices FILE"
            ),
        }
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings {
            mode: self.mode()?,
            admin_shows_credentials: self.admin_show_credentials,
            peer_verification: self.peer_verification.into(),
            listen: self.listen,
            unix_socket: self.unix_socket.clone(),
            admin_listen: self.admin_listen,
            heartbeat_interval: self.heartbeat_interval,
            stale_factor: self.stale_factor,
            max_body_bytes: self.max_body_bytes,
            shutdown_timeout: self.shutdown_timeout,
            max_agents: self.max_agents,
            max_connections: self.max_connections,
            max_concurrent_requests: self.max_concurrent_requests,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            ..Settings::default()
        };
        // The numbers first: the node name's own message is about the mode.
        settings.validate()?;
        settings.node_name = self.node_name()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Embedded mode's edges: identities from the device table, configs from its rows'
    /// `containerConfig`s (defaults elsewhere), records in memory.
    fn embedded_edges(&self, builder: ServerBuilder) -> anyhow::Result<ServerBuilder> {
        let table = match &self.devices {
            Some(path) => DeviceTable::load(path)?,
            None => DeviceTable::default(),
        };
        tracing::info!(
            rows = table.len(),
            trust_self_reported = self.trust_self_reported,
            "identity: device table"
        );
        let configs = table.config_source();
        let identity =
            StaticTableIdentity::new(table).trust_self_reported(self.trust_self_reported);
        Ok(builder
            .identity(Arc::new(identity))
            .config_source(Arc::new(configs)))
    }
}

/// SIGTERM and SIGINT, registered before the listeners open so neither can kill the process
/// without a graceful shutdown.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> anyhow::Result<Self> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads.into())
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.log_format, &cli.log)?;
    let settings = cli.settings()?;
    tracing::info!(mode = %settings.mode, peer_verification = %settings.peer_verification, "mode");
    let mut signals = StopSignals::register()?;
    let builder = Server::builder(settings.clone());
    let (builder, kubernetes) = if settings.mode == Mode::Embedded {
        (cli.embedded_edges(builder)?, None)
    } else {
        let kubernetes = start_kubernetes(&cli, &settings).await?;
        (with_kubernetes(builder, &kubernetes), Some(kubernetes))
    };
    let server = builder.start().await?;
    let signal = signals.recv().await;
    tracing::info!(signal, "stopping");
    // Flushes the instance store before the Kubernetes tasks stop.
    server.shutdown().await;
    drop(kubernetes);
    Ok(())
}

/// The Kubernetes edges: watches, kubelet client, instance writer and resync.
async fn start_kubernetes(cli: &Cli, settings: &Settings) -> anyhow::Result<Kubernetes> {
    let client = kube::Client::try_default().await.context(
        "no Kubernetes API server: run in a pod (in-cluster config) or set KUBECONFIG; \
         without a cluster, give --devices FILE",
    )?;
    let mut options = KubeOptions::new(&settings.node_name);
    options.kubelet_socket = (!cli.no_kubelet).then(|| {
        cli.kubelet_socket
            .clone()
            .unwrap_or_else(|| kubelet::DEFAULT_SOCKET.into())
    });
    // A restarted server waits the stale period for live agents to come back before it
    // deletes the resources of the ones that did not.
    options.store.resync_grace = Some(settings.stale_after());
    tracing::info!(
        node = %settings.node_name,
        kubelet_socket = ?options.kubelet_socket,
        resync_after = ?settings.stale_after(),
        "identity: Kubernetes"
    );
    Ok(Kubernetes::start(client, options)?)
}

fn with_kubernetes(builder: ServerBuilder, kubernetes: &Kubernetes) -> ServerBuilder {
    builder
        .identity(kubernetes.identity.clone())
        .config_source(kubernetes.configs.clone())
        .store(kubernetes.store.clone())
}
