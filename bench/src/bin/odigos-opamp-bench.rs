//! The load generator and orchestrator behind `cargo xtask bench` (which builds the three
//! servers and passes their paths). Runs each server in turn under the same load, then the
//! Kubernetes store phase (`kube` in --servers) and the node phase (`node`), then writes the
//! report: `<out-dir>/latest.{json,md}` for the servers and the Kubernetes store,
//! `<out-dir>/node.{json,md}` for the node phase, and, with `--benchmarks-md`, the matching
//! blocks of BENCHMARKS.md (a phase that did not run leaves its files and block alone).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use odigos_opamp_bench::node::NodeBinary;
use odigos_opamp_bench::node::report::NodeParams;
use odigos_opamp_bench::report::{
    KubeParams, NODE_BLOCK_BEGIN, NODE_BLOCK_END, Params, Report, replace_between, replace_block,
};
use odigos_opamp_bench::run::{RunConfig, run};
use odigos_opamp_bench::servers::{Binaries, ServerKind};

#[derive(Parser)]
#[command(about = "Our OpAMP server, an opamp-go peer and bare hyper under the same load")]
struct Args {
    /// `odigos-opamp-server` (a release build).
    #[arg(long)]
    ours: PathBuf,
    /// The opamp-go peer (bench/opamp-go-peer); needed when opamp-go is in --servers.
    #[arg(long)]
    opamp_go: Option<PathBuf>,
    /// `odigos-opamp-bare-hyper`.
    #[arg(long)]
    bare_hyper: PathBuf,
    /// Another build of our server, run as `ours-baseline` when listed in --servers.
    #[arg(long)]
    ours_baseline: Option<PathBuf>,
    /// Which servers to run, in order; `kube` is the Kubernetes store phase (our server in
    /// Kubernetes mode against a real kube-apiserver), run once after the others.
    #[arg(long, value_delimiter = ',', default_values_t = ServerKind::ALL.to_vec(), value_enum)]
    servers: Vec<ServerKind>,
    /// Kubernetes phase: agents in steady state, each in its own pod.
    #[arg(long, default_value_t = KubeParams::default().agents)]
    kube_agents: usize,
    /// Kubernetes phase: the server's heartbeat interval and the agents' polling period, in
    /// seconds (the per-agent-hour figures are scaled to the default 30 s).
    #[arg(long, default_value_t = KubeParams::default().heartbeat_secs)]
    kube_heartbeat: f64,
    /// Kubernetes phase: length of the steady-state window, in seconds.
    #[arg(long, default_value_t = KubeParams::default().steady_secs)]
    kube_steady: f64,
    /// Kubernetes phase: length of the churn window, in seconds.
    #[arg(long, default_value_t = KubeParams::default().churn_secs)]
    kube_churn: f64,
    /// Kubernetes phase: agent start/stop cycles in the churn window.
    #[arg(long, default_value_t = KubeParams::default().churn_cycles)]
    kube_cycles: usize,
    /// Kubernetes phase: the churn rate stated in the report, in start/stop cycles per agent
    /// per hour.
    #[arg(long, default_value_t = KubeParams::default().churn_per_agent_hour)]
    kube_churn_rate: f64,
    /// Kubernetes phase: keep-alive connections the agents share.
    #[arg(long, default_value_t = KubeParams::default().connections)]
    kube_connections: usize,
    /// Node phase: the server build to run (default: --ours), e.g. the shipped one.
    #[arg(long)]
    node_server: Option<PathBuf>,
    /// Node phase: the name of that build's profile, for the report.
    #[arg(long, default_value = "release")]
    node_build: String,
    /// Node phase: pods on the node.
    #[arg(long, default_value_t = NodeParams::default().pods)]
    node_pods: usize,
    /// Node phase: Deployments the pods belong to (one InstrumentationConfig each).
    #[arg(long, default_value_t = NodeParams::default().workloads)]
    node_workloads: usize,
    /// Node phase: agent counts, one run (fresh server, own node) each.
    #[arg(long, value_delimiter = ',', default_values_t = NodeParams::default().agents)]
    node_agents: Vec<usize>,
    /// Node phase: the agents' polling interval and the server's heartbeat interval, in seconds.
    #[arg(long, default_value_t = NodeParams::default().poll_secs)]
    node_poll: f64,
    /// Node phase: the measured window of each run, in seconds.
    #[arg(long, default_value_t = NodeParams::default().window_secs)]
    node_window: f64,
    /// Simulated agents, each with its own uid and device id.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Keep-alive connections the agents are spread over.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Unmeasured saturation before the measured one, in seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Measured saturation, in seconds.
    #[arg(long, default_value_t = 5.0)]
    saturate: f64,
    /// Heartbeats per second of the fixed-rate phase.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Length of the fixed-rate phase, in seconds.
    #[arg(long, default_value_t = 5.0)]
    rate_secs: f64,
    /// Runs of each server, interleaved; each measure is the median over them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Worker threads of the generator (1: one thread, the cheapest load).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Server logs and the device table.
    #[arg(long)]
    work_dir: PathBuf,
    /// Where latest.json and latest.md go.
    #[arg(long)]
    out_dir: PathBuf,
    /// Also replace the results block of this BENCHMARKS.md.
    #[arg(long)]
    benchmarks_md: Option<PathBuf>,
    /// Tool versions for the report, e.g. "rustc 1.91.0".
    #[arg(long = "note")]
    notes: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.agents == 0
        || args.connections == 0
        || args.rate <= 0.0
        || args.threads == 0
        || args.rounds == 0
    {
        bail!("--agents, --connections, --rate, --threads and --rounds must be more than zero");
    }
    if args.servers.contains(&ServerKind::OursBaseline) && args.ours_baseline.is_none() {
        bail!("--servers ours-baseline needs --ours-baseline PATH");
    }
    if args.servers.contains(&ServerKind::OpampGo) && args.opamp_go.is_none() {
        bail!("--servers opamp-go needs --opamp-go PATH");
    }
    if args.servers.contains(&ServerKind::Kube)
        && (args.kube_agents == 0
            || args.kube_connections == 0
            || args.kube_heartbeat.is_nan()
            || args.kube_heartbeat < 0.05)
    {
        bail!(
            "--kube-agents and --kube-connections must be more than zero, --kube-heartbeat at \
             least 0.05 (seconds)"
        );
    }
    if args.servers.contains(&ServerKind::Node)
        && (args.node_pods == 0
            || args.node_agents.is_empty()
            || args.node_agents.contains(&0)
            || args.node_poll.is_nan()
            || args.node_poll < 0.05)
    {
        bail!(
            "--node-pods and every --node-agents count must be more than zero, --node-poll at              least 0.05 (seconds)"
        );
    }
    let config = RunConfig {
        params: Params {
            agents: args.agents,
            connections: args.connections,
            warmup_secs: args.warmup,
            saturate_secs: args.saturate,
            rate_per_sec: args.rate,
            rate_secs: args.rate_secs,
            rounds: args.rounds,
            generator_threads: args.threads,
        },
        servers: args.servers.clone(),
        binaries: Binaries {
            ours: args.ours.clone(),
            opamp_go: args.opamp_go.clone().unwrap_or_default(),
            bare_hyper: args.bare_hyper.clone(),
            ours_baseline: args.ours_baseline.clone(),
        },
        kube: KubeParams {
            agents: args.kube_agents,
            heartbeat_secs: args.kube_heartbeat,
            steady_secs: args.kube_steady,
            churn_secs: args.kube_churn,
            churn_cycles: args.kube_cycles,
            churn_per_agent_hour: args.kube_churn_rate,
            connections: args.kube_connections,
        },
        node: NodeParams {
            pods: args.node_pods,
            workloads: args.node_workloads,
            agents: args.node_agents.clone(),
            poll_secs: args.node_poll,
            window_secs: args.node_window,
        },
        node_binary: args.node_server.clone().map(|path| NodeBinary {
            path,
            build: args.node_build.clone(),
        }),
        work_dir: args.work_dir.clone(),
        notes: args.notes.clone(),
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("cannot start the generator's runtime")?;
    let report = runtime.block_on(run(&config))?;

    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let header = run_header(&report);
    let servers_or_kube = !report.servers.is_empty() || report.kube.is_some();
    if servers_or_kube {
        let markdown = report.markdown();
        println!("\n{markdown}");
        let mut main = report.clone();
        main.node = None;
        write_results(&args.out_dir, "latest", &main, &markdown)?;
        if let Some(path) = &args.benchmarks_md {
            update_block(path, |document| {
                replace_block(document, &format!("{header}{markdown}"))
            })?;
        }
    }
    if let Some(node) = &report.node {
        let markdown = node.markdown();
        println!("\n{markdown}");
        std::fs::write(
            args.out_dir.join("node.json"),
            serde_json::to_string_pretty(node)? + "\n",
        )
        .context("cannot write node.json")?;
        std::fs::write(args.out_dir.join("node.md"), &markdown).context("cannot write node.md")?;
        println!("written: {}", args.out_dir.join("node.{json,md}").display());
        if let Some(path) = &args.benchmarks_md {
            update_block(path, |document| {
                replace_between(
                    document,
                    NODE_BLOCK_BEGIN,
                    NODE_BLOCK_END,
                    &format!("{header}{markdown}"),
                )
            })?;
        }
    }
    let json = args.out_dir.join(if servers_or_kube {
        "latest.json"
    } else {
        "node.json"
    });
    let failed: u64 = report
        .servers
        .iter()
        .map(|s| s.requests_failed)
        .sum::<u64>()
        + report.kube.as_ref().map_or(0, |k| k.requests_failed)
        + report
            .node
            .as_ref()
            .map_or(0, |n| n.runs.iter().map(|r| r.requests_failed).sum::<u64>());
    if failed > 0 {
        bail!(
            "{failed} request(s) failed; see first_error in {}",
            json.display()
        );
    }
    Ok(())
}

/// "Run of <date> on <machine> (...)." for a BENCHMARKS.md block.
fn run_header(report: &Report) -> String {
    let machine = &report.machine;
    format!(
        "Run of {} on {} ({} cores, {} GiB, {}{}{}).\n\n",
        report.date,
        machine.cpu,
        machine.cores,
        machine.memory_gib,
        machine.kernel,
        if machine.notes.is_empty() { "" } else { "; " },
        machine.notes.join(", ")
    )
}

/// `<dir>/<name>.json` and `<dir>/<name>.md`.
fn write_results(
    dir: &std::path::Path,
    name: &str,
    report: &Report,
    markdown: &str,
) -> anyhow::Result<()> {
    let json = dir.join(format!("{name}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    let md = dir.join(format!("{name}.md"));
    std::fs::write(&md, markdown).with_context(|| format!("cannot write {}", md.display()))?;
    println!("written: {} and {}", json.display(), md.display());
    Ok(())
}

/// Rewrite one block of the document at `path`.
fn update_block<E: std::error::Error + Send + Sync + 'static>(
    path: &std::path::Path,
    replace: impl FnOnce(&str) -> Result<String, E>,
) -> anyhow::Result<()> {
    let document =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let updated = replace(&document).with_context(|| format!("updating {}", path.display()))?;
    std::fs::write(path, updated).with_context(|| format!("cannot write {}", path.display()))?;
    println!("updated: {}", path.display());
    Ok(())
}
