//! `cargo xtask bench`: build the three servers (ours and the generator in release, the
//! opamp-go peer with Go) and run the bench crate's generator against them, then the
//! Kubernetes store phase (our server against a real kube-apiserver, see [`crate::kube`])
//! and the node phase (the shipped build, [`crate::image::dist`], on one full node).
//! See BENCHMARKS.md for what it measures and how.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::{self, ToolError};

/// The Go peer's module, relative to the workspace root.
const GO_PEER_DIR: &str = "bench/opamp-go-peer";

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("building the shipped binary for the node phase: {0}")]
    Dist(#[from] crate::image::ImageError),
    #[error("the benchmark failed: {0}")]
    Run(String),
}

/// Options of `cargo xtask bench`; unset ones take the bench binary's defaults (10,000
/// agents, 64 connections, 3 interleaved rounds of 5 s saturated and 5,000 heartbeats/s
/// for 5 s).
#[derive(Debug, Default, clap::Args)]
pub struct BenchArgs {
    /// A few seconds in all, with a few agents: checks that everything runs, measures
    /// nothing worth keeping. Writes to target/bench/quick/ only.
    #[arg(long)]
    pub quick: bool,
    /// Simulated agents.
    #[arg(long)]
    pub agents: Option<usize>,
    /// Keep-alive connections the agents share.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Heartbeats per second of the fixed-rate (latency) phase.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Length of the saturated and the fixed-rate phase, each, in seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Runs of each server, interleaved; each measure is the median.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Generator threads (default 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Only these servers, comma-separated: ours, opamp-go, bare-hyper, kube (the
    /// Kubernetes store phase: API requests per agent, counted by a real kube-apiserver) and
    /// node (the node phase: one full node's cost at an agent's pace).
    #[arg(long)]
    pub servers: Option<String>,
    /// Only the Kubernetes store phase, not recorded: `--servers kube --no-record`.
    #[arg(long, conflicts_with_all = ["servers", "node_only"])]
    pub kube_only: bool,
    /// Only the node phase (about 25 minutes: each agent count on our server, then on bare
    /// hyper as its floor); it records its own block of BENCHMARKS.md
    /// and bench/results/node.{json,md} unless --no-record.
    #[arg(long, conflicts_with = "servers")]
    pub node_only: bool,
    /// Node phase: agent counts, comma-separated, one run each (default 200,1000).
    #[arg(long)]
    pub node_agents: Option<String>,
    /// Node phase: pods on the node (default 110, the kubelet's maximum).
    #[arg(long)]
    pub node_pods: Option<usize>,
    /// Node phase: the agents' polling interval in seconds (default 10).
    #[arg(long)]
    pub node_poll: Option<f64>,
    /// Node phase: the measured window of each run, in seconds (default 300).
    #[arg(long)]
    pub node_seconds: Option<f64>,
    /// Kubernetes phase: agents in steady state (default 200).
    #[arg(long)]
    pub kube_agents: Option<usize>,
    /// Kubernetes phase: length of the steady-state and of the churn window, each, in
    /// seconds (default 20).
    #[arg(long)]
    pub kube_seconds: Option<f64>,
    /// Kubernetes phase: agent start/stop cycles in the churn window (default 100).
    #[arg(long)]
    pub kube_cycles: Option<usize>,
    /// Kubernetes phase: the churn rate the report states its per-agent-hour figure under
    /// churn for, in start/stop cycles per agent per hour (default 1).
    #[arg(long)]
    pub kube_churn_rate: Option<f64>,
    /// Also run this build of our server as `ours-baseline` (e.g. a copy of
    /// target/release/odigos-opamp-server from before a change), for before/after ratios.
    #[arg(long, value_name = "PATH")]
    pub ours_baseline: Option<PathBuf>,
    /// Do not write bench/results/ and BENCHMARKS.md (implied by --quick).
    #[arg(long)]
    pub no_record: bool,
}

/// Cargo's target directory for this workspace.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Build the opamp-go peer into `target/bench/` (Go's build cache makes a rebuild of an
/// unchanged peer nearly free; the first build downloads the pinned module). Returns it.
pub fn build_go_peer(root: &Path) -> Result<PathBuf, BenchError> {
    let go = tools::require_go()?;
    let out = target_dir(root).join("bench").join("opamp-go-peer");
    tools::run(
        Command::new(go)
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(root.join(GO_PEER_DIR)),
    )?;
    Ok(out)
}

/// `cargo xtask bench`.
pub fn run(root: &Path, args: &BenchArgs) -> Result<(), BenchError> {
    let servers = match (&args.servers, &args.ours_baseline) {
        _ if args.kube_only => Some("kube".to_owned()),
        _ if args.node_only => Some("node".to_owned()),
        (Some(servers), _) => Some(servers.clone()),
        (None, Some(_)) => Some("ours,ours-baseline,opamp-go,bare-hyper,kube,node".to_owned()),
        (None, None) => None,
    };
    let listed = |name: &str| {
        servers
            .as_ref()
            .is_none_or(|list| list.split(',').any(|s| s.trim() == name))
    };
    // Go is needed only for the opamp-go peer.
    let go_peer = if listed("opamp-go") {
        Some(build_go_peer(root)?)
    } else {
        None
    };
    // The node phase measures what ships; --quick measures nothing and keeps to release.
    let node_server = if listed("node") && !args.quick {
        Some(crate::image::dist::build(root)?)
    } else {
        None
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: building odigos-opamp-server and the bench crate (release)");
    let built = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--bins",
            "-p",
            "odigos-opamp-server",
            "-p",
        ])
        .arg("odigos-opamp-bench")
        .current_dir(root)
        .status()
        .map_err(|e| BenchError::Run(format!("cannot run cargo: {e}")))?;
    if !built.success() {
        return Err(BenchError::Run(format!("cargo build --release: {built}")));
    }
    let release = target_dir(root).join("release");
    let mut command = Command::new(release.join("odigos-opamp-bench"));
    command
        .arg("--ours")
        .arg(release.join("odigos-opamp-server"))
        .arg("--bare-hyper")
        .arg(release.join("odigos-opamp-bare-hyper"));
    if let Some(go_peer) = &go_peer {
        command.arg("--opamp-go").arg(go_peer);
    }
    if let Some(dist) = &node_server {
        command.arg("--node-server").arg(&dist.path);
        command.args(["--node-build", crate::image::dist::PROFILE]);
    }
    for note in notes(root) {
        command.arg("--note").arg(note);
    }
    let bench_dir = target_dir(root).join("bench");
    if args.quick {
        let quick = bench_dir.join("quick");
        command.args(["--agents", "200", "--connections", "8", "--warmup", "0.2"]);
        command.args([
            "--saturate",
            "1",
            "--rate",
            "500",
            "--rate-secs",
            "1",
            "--rounds",
            "1",
        ]);
        // The Kubernetes phase in miniature: 20 agents, 2 s windows, 6 cycles.
        command.args([
            "--kube-agents",
            "20",
            "--kube-heartbeat",
            "0.5",
            "--kube-steady",
            "2",
            "--kube-churn",
            "2",
            "--kube-cycles",
            "6",
        ]);
        // And the node phase: 20 agents on a 12-pod node, 0.5 s polls, a 2 s window.
        command.args([
            "--node-pods",
            "12",
            "--node-agents",
            "20",
            "--node-poll",
            "0.5",
            "--node-window",
            "2",
        ]);
        command
            .arg("--work-dir")
            .arg(&quick)
            .arg("--out-dir")
            .arg(&quick);
    } else {
        command.arg("--work-dir").arg(bench_dir.join("run"));
        if args.no_record || args.kube_only {
            command.arg("--out-dir").arg(bench_dir.join("run"));
        } else {
            command
                .arg("--out-dir")
                .arg(root.join("bench").join("results"));
            command
                .arg("--benchmarks-md")
                .arg(root.join("BENCHMARKS.md"));
        }
    }
    let mut pass = |flag: &str, value: Option<String>| {
        if let Some(value) = value {
            command.arg(flag).arg(value);
        }
    };
    pass("--agents", args.agents.map(|v| v.to_string()));
    pass("--connections", args.connections.map(|v| v.to_string()));
    pass("--rate", args.rate.map(|v| v.to_string()));
    pass("--saturate", args.seconds.map(|v| v.to_string()));
    pass("--rate-secs", args.seconds.map(|v| v.to_string()));
    pass("--rounds", args.rounds.map(|v| v.to_string()));
    pass("--threads", args.threads.map(|v| v.to_string()));
    pass("--kube-agents", args.kube_agents.map(|v| v.to_string()));
    pass("--kube-steady", args.kube_seconds.map(|v| v.to_string()));
    pass("--kube-churn", args.kube_seconds.map(|v| v.to_string()));
    pass("--kube-cycles", args.kube_cycles.map(|v| v.to_string()));
    pass(
        "--kube-churn-rate",
        args.kube_churn_rate.map(|v| v.to_string()),
    );
    pass("--node-agents", args.node_agents.clone());
    pass("--node-pods", args.node_pods.map(|v| v.to_string()));
    pass("--node-poll", args.node_poll.map(|v| v.to_string()));
    pass("--node-window", args.node_seconds.map(|v| v.to_string()));
    pass("--servers", servers);
    pass(
        "--ours-baseline",
        args.ours_baseline.as_ref().map(|p| p.display().to_string()),
    );
    // The report streams to the terminal; a failure is reported by the bench itself.
    let status = command
        .current_dir(root)
        .status()
        .map_err(|e| BenchError::Run(e.to_string()))?;
    if !status.success() {
        return Err(BenchError::Run(status.to_string()));
    }
    Ok(())
}

/// rustc, Go and opamp-go versions for the report.
fn notes(root: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if let Ok(version) = tools::stdout_of(Command::new(rustc).arg("--version")) {
        notes.push(version.split(" (").next().unwrap_or(&version).to_owned());
    }
    if let Ok(go) = tools::require_go()
        && let Ok(version) = tools::stdout_of(Command::new(go).args(["env", "GOVERSION"]))
    {
        notes.push(version);
    }
    let go_mod = std::fs::read_to_string(root.join(GO_PEER_DIR).join("go.mod")).unwrap_or_default();
    if let Some(version) = go_mod.lines().find_map(|l| {
        l.trim()
            .strip_prefix("require github.com/open-telemetry/opamp-go ")
    }) {
        notes.push(format!("opamp-go {}", version.trim()));
    }
    notes
}
