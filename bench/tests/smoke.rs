//! CI's check that `cargo xtask bench` keeps working, in a few seconds: the three servers,
//! every phase, a handful of agents for half a second each; and the Kubernetes store phase
//! against a real kube-apiserver (started by the `xtask::kube` harness: the test fails, never
//! skips, when it cannot start), with a dozen agents; and the node phase on a 12-pod node with
//! 20 agents polling every 0.5 s for 2 s. It checks that the reports are complete and sane,
//! and the Kubernetes store's behaviour (which requests, how many per agent); it judges no
//! timing (a shared CI machine measures nothing).

use std::path::{Path, PathBuf};

use odigos_opamp_bench::kube_store::WRITE_VERBS;
use odigos_opamp_bench::node::report::NodeParams;
use odigos_opamp_bench::report::{KubeParams, Report, Status};
use odigos_opamp_bench::run::{RunConfig, run};
use odigos_opamp_bench::servers::{Binaries, ServerKind};

const AGENTS: usize = 40;

/// Our server's binary, built (or found up to date) in this test's own profile.
fn our_server() -> PathBuf {
    let mut command = xtask::cargo::command(&xtask::workspace_root());
    command.args(["build", "--quiet", "-p", "odigos-opamp-server", "--bin"]);
    command.arg("odigos-opamp-server");
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "building odigos-opamp-server: {status}");
    // This test runs from <target>/<profile>/deps/; the binary is in <target>/<profile>/.
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>");
    profile_dir.join("odigos-opamp-server")
}

fn config(work_dir: &Path) -> RunConfig {
    let go_peer = xtask::bench::build_go_peer(&xtask::workspace_root())
        .unwrap_or_else(|e| panic!("building the opamp-go peer: {e}"));
    RunConfig {
        params: odigos_opamp_bench::report::Params {
            agents: AGENTS,
            connections: 4,
            warmup_secs: 0.1,
            saturate_secs: 0.5,
            rate_per_sec: 200.0,
            rate_secs: 0.5,
            rounds: 1,
            generator_threads: 1,
        },
        servers: vec![ServerKind::Ours, ServerKind::OpampGo, ServerKind::BareHyper],
        binaries: Binaries {
            ours: our_server(),
            opamp_go: go_peer,
            bare_hyper: PathBuf::from(env!("CARGO_BIN_EXE_odigos-opamp-bare-hyper")),
            ours_baseline: None,
        },
        kube: KubeParams::default(),
        node: NodeParams::default(),
        node_binary: None,
        work_dir: work_dir.to_owned(),
        notes: vec!["smoke test".into()],
    }
}

#[tokio::test]
async fn every_server_answers_every_phase_and_the_report_is_complete() {
    let work = tempfile::tempdir().expect("a temporary folder");
    let started = std::time::Instant::now();
    let config = config(work.path());
    eprintln!(
        "servers built or found up to date in {:.1?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    let report = run(&config).await.expect("the run completes");
    eprintln!("benchmark ran in {:.1?}", started.elapsed());

    let names: Vec<&str> = report.servers.iter().map(|s| s.server.as_str()).collect();
    assert_eq!(names, ["ours", "opamp-go", "bare-hyper"]);
    for s in &report.servers {
        let log = work.path().join(format!("{}.log", s.server));
        let context = || {
            format!(
                "{}: first error {:?}; server log:\n{}",
                s.server,
                s.first_error,
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        };
        assert_eq!(s.requests_failed, 0, "{}", context());
        assert!(s.registrations_per_sec > 0.0, "{}", context());
        assert!(s.saturated_rps > 0.0, "{}", context());
        assert!(s.fixed_rate.requests > 0, "{}", context());
        assert!(s.fixed_rate.p50_us > 0.0 && s.fixed_rate.p50_us <= s.fixed_rate.p99_us);
        assert!(s.peak_rss_mib > 0.0 && s.cpu_s_per_1k_heartbeats >= 0.0);
        if s.server != "bare-hyper" {
            // An OpAMP server sends a remote config in every first answer.
            assert_eq!(s.registration_configs, AGENTS as u64, "{}", context());
        }
    }
    assert!(report.ratios.contains_key("opamp-go") && report.ratios.contains_key("bare-hyper"));
    assert_eq!(report.targets.len(), 5);

    let json = serde_json::to_string_pretty(&report).expect("serializes");
    let parsed: Report = serde_json::from_str(&json).expect("the JSON parses back");
    assert_eq!(parsed.servers.len(), 3);
    let markdown = report.markdown();
    for name in ["| ours |", "| opamp-go |", "| bare-hyper |", "| target |"] {
        assert!(markdown.contains(name), "{name} missing from\n{markdown}");
    }
}

/// A run of `phase` alone: no saturation rounds, default parameters for the other phases.
fn one_phase(phase: ServerKind, work_dir: &Path) -> RunConfig {
    RunConfig {
        params: odigos_opamp_bench::report::Params {
            agents: 1,
            connections: 1,
            warmup_secs: 0.0,
            saturate_secs: 0.0,
            rate_per_sec: 1.0,
            rate_secs: 0.0,
            rounds: 1,
            generator_threads: 1,
        },
        servers: vec![phase],
        binaries: Binaries {
            ours: our_server(),
            opamp_go: PathBuf::new(),
            bare_hyper: PathBuf::from(env!("CARGO_BIN_EXE_odigos-opamp-bare-hyper")),
            ours_baseline: None,
        },
        kube: KubeParams::default(),
        node: NodeParams::default(),
        node_binary: None,
        work_dir: work_dir.to_owned(),
        notes: vec!["smoke test".into()],
    }
}

const KUBE_AGENTS: usize = 12;
const KUBE_CYCLES: usize = 6;

#[tokio::test]
async fn the_kubernetes_store_costs_no_write_per_unchanged_heartbeat() {
    let work = tempfile::tempdir().expect("a temporary folder");
    let config = RunConfig {
        kube: KubeParams {
            agents: KUBE_AGENTS,
            heartbeat_secs: 0.5,
            steady_secs: 1.5,
            churn_secs: 1.5,
            churn_cycles: KUBE_CYCLES,
            churn_per_agent_hour: 1.0,
            connections: 3,
        },
        ..one_phase(ServerKind::Kube, work.path())
    };
    let started = std::time::Instant::now();
    let report = match run(&config).await {
        Ok(report) => report,
        Err(error) => panic!(
            "the Kubernetes phase failed: {error}; server log:\n{}",
            std::fs::read_to_string(work.path().join("kube").join("kube.log")).unwrap_or_default()
        ),
    };
    eprintln!("Kubernetes phase ran in {:.1?}", started.elapsed());
    assert!(report.servers.is_empty());
    let kube = report.kube.as_ref().expect("the Kubernetes phase's report");
    let context = || {
        format!(
            "first error {:?}; report {}; server log:\n{}",
            kube.first_error,
            serde_json::to_string_pretty(kube).unwrap_or_default(),
            std::fs::read_to_string(work.path().join("kube").join("kube.log")).unwrap_or_default()
        )
    };
    assert_eq!(kube.requests_failed, 0, "{}", context());
    const II: &str = "instrumentationinstances";

    // Registration: each agent's resource is created (server-side apply of the object),
    // and its status written at least once (the healthy report; `Starting` may coalesce).
    let r = &kube.registration;
    assert_eq!(r.agents_started, KUBE_AGENTS as u64, "{}", context());
    assert_eq!(r.health_reports, KUBE_AGENTS as u64, "{}", context());
    assert_eq!(
        r.count(II, "", WRITE_VERBS),
        KUBE_AGENTS as u64,
        "{}",
        context()
    );
    let status_writes = r.count(II, "status", WRITE_VERBS);
    assert!(
        (KUBE_AGENTS as u64..=2 * KUBE_AGENTS as u64).contains(&status_writes),
        "one or two status writes per agent: {}",
        context()
    );

    // Steady state: heartbeats with nothing new cost no write at all.
    assert!(
        kube.steady.heartbeats >= KUBE_AGENTS as u64,
        "{}",
        context()
    );
    assert_eq!(kube.steady.writes, 0, "{}", context());
    assert_eq!(kube.steady_writes_per_agent_hour, 0.0);

    // Churn: every stop deletes its resource once (a disconnect at once, a silent agent at
    // the stale sweep), every start creates one.
    let c = &kube.churn;
    assert_eq!(
        kube.churn_disconnects,
        (KUBE_CYCLES / 2) as u64,
        "{}",
        context()
    );
    assert_eq!(kube.churn_silent, (KUBE_CYCLES / 2) as u64, "{}", context());
    assert_eq!(c.disconnects, kube.churn_disconnects);
    assert_eq!(c.agents_started, KUBE_CYCLES as u64);
    assert_eq!(
        c.count(II, "", &["DELETE"]),
        KUBE_CYCLES as u64,
        "{}",
        context()
    );
    assert_eq!(
        c.count(II, "", &["PATCH", "APPLY", "POST"]),
        KUBE_CYCLES as u64,
        "{}",
        context()
    );
    assert!(kube.churn_writes_per_cycle >= 2.0, "{}", context());

    // The server never writes pods or InstrumentationConfigs.
    for phase in [r, &kube.steady, c] {
        for resource in ["pods", "instrumentationconfigs"] {
            assert_eq!(phase.count(resource, "", WRITE_VERBS), 0, "{}", context());
        }
    }

    let target = report
        .targets
        .iter()
        .find(|t| t.target == "zero API writes for unchanged heartbeats")
        .expect("the target row");
    assert_eq!(target.status, Status::Met, "{}", target.measured);
    assert_eq!(report.targets.len(), 5);
    let json = serde_json::to_string_pretty(&report).expect("serializes");
    let parsed: Report = serde_json::from_str(&json).expect("the JSON parses back");
    assert!(parsed.kube.is_some());
    let markdown = report.markdown();
    assert!(markdown.contains("Kubernetes store"), "{markdown}");
}

const NODE_PODS: usize = 12;
const NODE_AGENTS: usize = 20;

#[tokio::test]
async fn the_node_phase_measures_a_node_and_writes_nothing_for_heartbeats() {
    let work = tempfile::tempdir().expect("a temporary folder");
    let config = RunConfig {
        node: NodeParams {
            pods: NODE_PODS,
            workloads: 4,
            agents: vec![NODE_AGENTS],
            poll_secs: 0.5,
            window_secs: 2.0,
        },
        ..one_phase(ServerKind::Node, work.path())
    };
    let started = std::time::Instant::now();
    let report = run(&config)
        .await
        .unwrap_or_else(|e| panic!("the node phase failed: {e}"));
    eprintln!("node phase ran in {:.1?}", started.elapsed());
    assert!(report.servers.is_empty() && report.kube.is_none());
    let node = report.node.as_ref().expect("the node phase's report");
    let [r] = node.runs.as_slice() else {
        panic!("one run per agent count: {node:?}")
    };
    let context = || serde_json::to_string_pretty(node).unwrap_or_default();
    assert_eq!(r.agents, NODE_AGENTS);
    assert_eq!(r.requests_failed, 0, "{}", context());
    assert!(r.ready_ms > 0.0 && r.registered_secs > 0.0, "{}", context());
    assert!(
        r.rss_mib > 0.0 && r.peak_rss_mib >= r.rss_mib,
        "{}",
        context()
    );
    assert!(r.cpu_secs >= 0.0 && r.window_polls > 0, "{}", context());
    // Agents keep their connections between polls: the server's idle timeout outlasts them.
    assert_eq!(r.window_connections, 0, "{}", context());
    let floor = r.floor.as_ref().expect("bare hyper's floor");
    assert!(floor.polls > 0 && floor.failed == 0, "{}", context());

    // Start-up: the pod and config watches opened (listed first on API servers without
    // streaming lists; v1.37 streams their initial state, so no LIST), the resync's LIST of
    // the node's instances, then one object and one or two status writes per agent; the
    // window: heartbeats only, so nothing written.
    let s = &r.startup;
    assert!(s.lists >= 1 && s.watches_opened >= 2, "{}", context());
    assert!(
        (NODE_AGENTS as u64 * 2..=NODE_AGENTS as u64 * 3).contains(&s.writes),
        "{}",
        context()
    );
    assert_eq!(r.window.writes, 0, "{}", context());
    assert_eq!(
        r.watches_open,
        2,
        "the pod and config watches: {}",
        context()
    );

    // The targets are judged at 200 agents on a 110-pod node only.
    assert_eq!(node.targets.len(), 2);
    assert!(
        node.targets.iter().all(|t| t.status == Status::NotMeasured),
        "{:?}",
        node.targets
    );
    let json = serde_json::to_string_pretty(&report).expect("serializes");
    let parsed: Report = serde_json::from_str(&json).expect("the JSON parses back");
    assert_eq!(parsed.node.map(|n| n.runs.len()), Some(1));
    assert!(node.markdown().contains(&format!("| {NODE_AGENTS} |")));
}
