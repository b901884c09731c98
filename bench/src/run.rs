//! One benchmark run: each server in turn, started fresh, under the same phases.
//!
//! Per server and round: start it, register every agent (registration throughput, RSS), warm up,
//! saturate (throughput, CPU), run the fixed rate (latency, CPU per heartbeat), read its
//! peak RSS, stop it. The servers run one after another, never at the same time, so each
//! has the whole machine but for the generator; rounds interleave them (A B C A B C ...) so
//! that a burst of other work on a shared machine does not land on one server only.
//!
//! With `kube` among the servers, the Kubernetes store phase ([`crate::kube_store`]) runs
//! once after the rounds, alone, with our server's binary in Kubernetes mode; with `node`,
//! the node phase ([`crate::node`]) after it, with the shipped build when given.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::fleet::{Fleet, PhaseStats};
use crate::kube_store::{self, KubeBenchError};
use crate::node::{self, NodeBenchError, NodeBinary, report::NodeParams};
use crate::procfs::{ProcError, Process};
use crate::report::{KubeParams, Latency, Params, Report, ServerResult};
use crate::servers::{Binaries, ServerError, ServerKind, ServerProcess};
use crate::{agents, machine};

/// How a run is set up.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub params: Params,
    pub servers: Vec<ServerKind>,
    pub binaries: Binaries,
    /// The Kubernetes store phase, when [`ServerKind::Kube`] is among the servers.
    pub kube: KubeParams,
    /// The node phase, when [`ServerKind::Node`] is among the servers, and the build it
    /// runs (default: `binaries.ours`).
    pub node: NodeParams,
    pub node_binary: Option<NodeBinary>,
    /// Server logs and the generated device table go here.
    pub work_dir: PathBuf,
    /// Tool versions for the report (rustc, go).
    pub notes: Vec<String>,
}

/// Why a run failed (a server that answers wrongly is not a failure: it is counted).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("the Kubernetes store phase: {0}")]
    Kube(#[from] KubeBenchError),
    #[error("the node phase: {0}")]
    Node(#[from] NodeBenchError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{server} died during the {phase} phase; its output is in {log}")]
    Died {
        server: &'static str,
        phase: &'static str,
        log: PathBuf,
    },
}

/// Run every configured server; the report has their numbers, ratios and targets.
pub async fn run(config: &RunConfig) -> Result<Report, RunError> {
    std::fs::create_dir_all(&config.work_dir).map_err(|source| RunError::Write {
        path: config.work_dir.clone(),
        source,
    })?;
    let devices = config.work_dir.join("devices.yaml");
    std::fs::write(&devices, agents::devices_yaml(config.params.agents)).map_err(|source| {
        RunError::Write {
            path: devices.clone(),
            source,
        }
    })?;
    let rounds = config.params.rounds.max(1);
    let mut results: Vec<(ServerKind, Vec<ServerResult>)> = config
        .servers
        .iter()
        .filter(|&&kind| kind != ServerKind::Kube && kind != ServerKind::Node)
        .map(|&kind| (kind, Vec::new()))
        .collect();
    for round in 1..=rounds {
        for (kind, done) in &mut results {
            eprintln!("bench: round {round}/{rounds}: {} ...", kind.name());
            let result = bench_one(*kind, config, &devices).await?;
            eprintln!(
                "bench: round {round}/{rounds}: {}: {:.0} heartbeats/s saturated, p99 {:.0} µs at {} /s, peak RSS {:.1} MiB",
                kind.name(),
                result.saturated_rps,
                result.fixed_rate.p99_us,
                config.params.rate_per_sec,
                result.peak_rss_mib
            );
            done.push(result);
        }
    }
    let servers = results
        .iter()
        .filter_map(|(_, rounds)| ServerResult::median(rounds))
        .collect();
    let kube = if config.servers.contains(&ServerKind::Kube) {
        eprintln!("bench: the Kubernetes store ...");
        let kube = kube_store::run(
            &config.kube,
            &config.binaries.ours,
            &config.work_dir.join("kube"),
        )
        .await?;
        eprintln!(
            "bench: the Kubernetes store: {} writes, {} reads in {} unchanged heartbeats; {:.1} requests per start/stop cycle",
            kube.steady.writes,
            kube.steady.reads,
            kube.steady.heartbeats,
            (kube.churn.writes + kube.churn.reads) as f64
                / (kube.churn_disconnects + kube.churn_silent).max(1) as f64
        );
        Some(kube)
    } else {
        None
    };
    let node = if config.servers.contains(&ServerKind::Node) {
        eprintln!("bench: the node phase ...");
        let binary = config.node_binary.clone().unwrap_or_else(|| NodeBinary {
            path: config.binaries.ours.clone(),
            build: "as given by --ours".into(),
        });
        Some(
            node::run(
                &config.node,
                &binary.path,
                &binary.build,
                &config.binaries.bare_hyper,
                &config.work_dir.join("node"),
            )
            .await?,
        )
    } else {
        None
    };
    let mut report = Report {
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        machine: machine::describe(config.notes.clone()),
        params: config.params.clone(),
        servers,
        ratios: Default::default(),
        kube,
        targets: Vec::new(),
        node,
    };
    report.evaluate();
    Ok(report)
}

async fn bench_one(
    kind: ServerKind,
    config: &RunConfig,
    devices: &Path,
) -> Result<ServerResult, RunError> {
    let p = &config.params;
    let mut server =
        ServerProcess::start(kind, &config.binaries, &config.work_dir, devices, p.agents).await?;
    let process = Process::Pid(server.pid());
    let mut fleet = Fleet::new(server.addr(), p.agents, p.connections, kind.expect());
    let alive = |server: &mut ServerProcess, phase| {
        if server.is_running() {
            Ok(())
        } else {
            Err(RunError::Died {
                server: kind.name(),
                phase,
                log: config.work_dir.join(format!("{}.log", kind.name())),
            })
        }
    };

    let registration = fleet.register().await;
    alive(&mut server, "registration")?;
    let registered = process.memory()?;

    fleet.saturate(secs(p.warmup_secs)).await;
    let saturated = measured(process, fleet.saturate(secs(p.saturate_secs))).await?;
    alive(&mut server, "saturation")?;

    let fixed = measured(process, fleet.fixed_rate(p.rate_per_sec, secs(p.rate_secs))).await?;
    alive(&mut server, "fixed rate")?;
    let memory = process.memory()?;
    server.stop().await?;

    let phases = [&registration, &saturated.stats, &fixed.stats];
    let per_1k =
        |cpu: Duration, stats: &PhaseStats| cpu.as_secs_f64() / (stats.ok.max(1) as f64) * 1000.0;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    Ok(ServerResult {
        server: kind.name().to_owned(),
        description: kind.description().to_owned(),
        saturated_rps: saturated.stats.rate(),
        registrations_per_sec: registration.rate(),
        fixed_rate: latency(&fixed.stats),
        saturated_latency: latency(&saturated.stats),
        rss_registered_mib: mib(registered.rss_bytes),
        peak_rss_mib: mib(memory.peak_rss_bytes),
        cpu_s_per_1k_heartbeats: per_1k(fixed.server_cpu, &fixed.stats),
        saturated_cpu_s_per_1k: per_1k(saturated.server_cpu, &saturated.stats),
        saturated_server_cores: saturated.server_cpu.as_secs_f64()
            / saturated.stats.elapsed.as_secs_f64().max(1e-9),
        generator_saturated_cores: saturated.generator_cpu.as_secs_f64()
            / saturated.stats.elapsed.as_secs_f64().max(1e-9),
        generator_cpu_s_per_1k_heartbeats: per_1k(fixed.generator_cpu, &fixed.stats),
        registration_configs: registration.configs,
        requests_ok: phases.iter().map(|s| s.ok).sum(),
        requests_failed: phases.iter().map(|s| s.errors).sum(),
        first_error: phases.iter().find_map(|s| s.first_error.clone()),
        // Filled in by `Report::evaluate` from the Kubernetes store phase, for ours.
        kube_api_requests_per_agent_hour: None,
        saturated_rps_rounds: vec![saturated.stats.rate()],
        p99_us_rounds: vec![latency(&fixed.stats).p99_us],
    })
}

/// A phase with the CPU time the server and the generator spent in it.
struct Measured {
    stats: PhaseStats,
    server_cpu: Duration,
    generator_cpu: Duration,
}

/// `phase` is a future, so it starts only when awaited here, after the first reading.
async fn measured(
    server: Process,
    phase: impl Future<Output = PhaseStats>,
) -> Result<Measured, ProcError> {
    let (server_before, generator_before) = (server.cpu_time()?, Process::Current.cpu_time()?);
    let stats = phase.await;
    Ok(Measured {
        stats,
        server_cpu: server.cpu_time()?.saturating_sub(server_before),
        generator_cpu: Process::Current
            .cpu_time()?
            .saturating_sub(generator_before),
    })
}

fn latency(stats: &PhaseStats) -> Latency {
    let us = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    Latency {
        requests: stats.ok,
        achieved_rate: stats.rate(),
        p50_us: us(&stats.latency, 0.50),
        p99_us: us(&stats.latency, 0.99),
        p999_us: us(&stats.latency, 0.999),
        max_us: stats.latency.max() as f64 / 1000.0,
        send_lag_p99_us: us(&stats.send_lag, 0.99),
    }
}

fn secs(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}
