//! `odigos-opamp-server`: flags → settings, logging, listeners, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use odigos_opamp_server::Server;
use odigos_opamp_server::identity::{DeviceTable, StaticTableIdentity};
use odigos_opamp_server::settings::{self, Settings};
use tokio::signal::unix::{SignalKind, signal};

/// The node-local Odigos OpAMP server.
///
/// Serves POST /v1/opamp to the OpenTelemetry agents on this node, and /healthz, /readyz,
/// /metrics and /agents on a separate admin listener. Every flag can also be set through the
/// environment variable shown with it.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
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
    /// workloadName}) that identifies agents without a cluster. An agent is accepted when its
    /// X-Odigos-DeviceId header, or its self-reported k8s.namespace.name / k8s.pod.name /
    /// k8s.container.name, matches a row. Without this file every agent is refused, unless
    /// --trust-self-reported is given.
    #[arg(long, env = "ODIGOS_OPAMP_DEVICES", value_name = "FILE")]
    devices: Option<PathBuf>,

    /// Development only: accept self-reported k8s.* attributes that match no device table row,
    /// as a bare pod. Never use this where agents are not trusted.
    #[arg(long, env = "ODIGOS_OPAMP_TRUST_SELF_REPORTED", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    trust_self_reported: bool,

    /// This node's name, sent to agents as k8s.node.name. Default: the host name.
    #[arg(long, env = "ODIGOS_OPAMP_NODE_NAME")]
    node_name: Option<String>,

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
    fn settings(&self) -> anyhow::Result<Settings> {
        if !(self.stale_factor >= 1.0 && self.stale_factor.is_finite()) {
            bail!(
                "--stale-factor must be a number of at least 1, got {}",
                self.stale_factor
            );
        }
        if self.max_body_bytes == 0 {
            bail!("--max-body-bytes must be more than zero");
        }
        Ok(Settings {
            listen: self.listen,
            unix_socket: self.unix_socket.clone(),
            admin_listen: self.admin_listen,
            node_name: self.node_name.clone().unwrap_or_else(host_name),
            heartbeat_interval: self.heartbeat_interval,
            stale_factor: self.stale_factor,
            max_body_bytes: self.max_body_bytes,
            shutdown_timeout: self.shutdown_timeout,
            ..Settings::default()
        })
    }

    fn identity(&self) -> anyhow::Result<StaticTableIdentity> {
        let table = match &self.devices {
            Some(path) => DeviceTable::load(path)?,
            None => DeviceTable::default(),
        };
        if self.devices.is_none() && !self.trust_self_reported {
            tracing::warn!(
                "no --devices file and no --trust-self-reported: every agent will be refused"
            );
        }
        tracing::info!(
            rows = table.len(),
            trust_self_reported = self.trust_self_reported,
            "identity: device table"
        );
        Ok(StaticTableIdentity::new(table).trust_self_reported(self.trust_self_reported))
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log)?;
    let settings = cli.settings()?;
    let identity = cli.identity()?;
    let mut signals = StopSignals::register()?;
    let server = Server::builder(settings)
        .identity(Arc::new(identity))
        .start()
        .await?;
    let signal = signals.recv().await;
    tracing::info!(signal, "stopping");
    server.shutdown().await;
    Ok(())
}
