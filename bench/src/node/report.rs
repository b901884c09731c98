//! What the node phase measured, its markdown block and its targets.

use serde::{Deserialize, Serialize};

use crate::report::{ApiRequests, Status, Target, targets_markdown};

/// How the node phase is set up.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeParams {
    /// Pods on the node (the kubelet's default maximum is 110).
    pub pods: usize,
    /// Deployments the pods belong to; one InstrumentationConfig each.
    pub workloads: usize,
    /// One run per count, each with a fresh server on a node of its own.
    pub agents: Vec<usize>,
    /// How often each agent polls, and the server's `--heartbeat-interval`.
    pub poll_secs: f64,
    /// The measured window of each run, after every agent registered.
    pub window_secs: f64,
}

impl Default for NodeParams {
    fn default() -> Self {
        NodeParams {
            pods: 110,
            workloads: 50,
            agents: vec![200, 1000],
            poll_secs: 10.0,
            window_secs: 300.0,
        }
    }
}

/// API requests over a stretch of time, by kind; watches counted when they open.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ApiCounts {
    pub lists: u64,
    /// WATCH requests opened (ended ones from `apiserver_request_total`, plus the change of
    /// the open-watch gauge).
    pub watches_opened: u64,
    pub watches_ended: u64,
    pub writes: u64,
    /// GETs and any other read.
    pub other_reads: u64,
    /// Every completed request, by resource, subresource and verb.
    pub completed: Vec<ApiRequests>,
}

impl ApiCounts {
    /// Requests made: every completed one but the WATCHes, plus the WATCHes opened.
    pub fn requests(&self) -> u64 {
        self.lists + self.watches_opened + self.writes + self.other_reads
    }
}

/// One run: a fresh server, a node's pods, `agents` agents.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeRun {
    pub agents: usize,
    /// From `exec` to `/readyz` answering 200 (both watches listed and synced).
    pub ready_ms: f64,
    /// From the first agent's first poll until every agent's InstrumentationInstance was
    /// written, healthy, and the writes stayed still.
    pub registered_secs: f64,
    pub window_secs: f64,
    /// Agent polls in the window, and the TCP connections they opened.
    pub window_polls: u64,
    pub window_connections: u64,
    /// `VmRSS` at the end of the window; `VmHWM` over the whole run.
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    /// Server CPU (user + system) in the window, and its system (kernel) part.
    pub cpu_secs: f64,
    pub cpu_system_secs: f64,
    pub cpu_ms_per_agent_hour: f64,
    /// The generator's own CPU in the window (it shares the machine).
    pub generator_cpu_secs: f64,
    /// From `exec` to the window's start: the start-up lists and watches, the resync, every
    /// agent's registration writes (the bench's own LISTs not counted).
    pub startup: ApiCounts,
    pub window: ApiCounts,
    /// The server's watches open at the end (the open-watch gauge less what was open before
    /// it started: the API server's own).
    pub watches_open: u64,
    pub requests_per_node_hour: f64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub first_error: Option<String>,
    /// The same agents polling bare hyper as long, just after.
    #[serde(default)]
    pub floor: Option<Floor>,
}

/// What bare hyper (a fixed answer, no state, no cluster) cost at the same pace: the floor
/// this machine charges for the HTTP exchanges alone.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Floor {
    pub window_secs: f64,
    pub polls: u64,
    pub connections: u64,
    pub cpu_secs: f64,
    pub cpu_ms_per_agent_hour: f64,
    /// Requests that got no answer (a floor with failures measured less than the load).
    #[serde(default)]
    pub failed: u64,
}

impl NodeRun {
    /// Fill in the per-hour figures from the window's counts.
    pub fn derive(&mut self) {
        let hours = self.window_secs.max(1e-9) / 3600.0;
        self.cpu_ms_per_agent_hour = self.cpu_secs * 1000.0 / (self.agents.max(1) as f64 * hours);
        self.requests_per_node_hour = self.window.requests() as f64 / hours;
        let agents = self.agents.max(1) as f64;
        if let Some(floor) = &mut self.floor {
            let hours = floor.window_secs.max(1e-9) / 3600.0;
            floor.cpu_ms_per_agent_hour = floor.cpu_secs * 1000.0 / (agents * hours);
        }
    }

    /// Our CPU per agent-hour over bare hyper's at the same pace.
    pub fn over_floor(&self) -> Option<f64> {
        self.floor
            .as_ref()
            .map(|f| self.cpu_ms_per_agent_hour / f.cpu_ms_per_agent_hour.max(1e-9))
    }
}

/// Everything the node phase measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeReport {
    pub params: NodeParams,
    /// e.g. "kube-apiserver v1.20.2".
    pub apiserver: String,
    /// e.g. "dist" (the shipped build) or "debug".
    pub build: String,
    pub runs: Vec<NodeRun>,
    pub targets: Vec<Target>,
}

/// The targets are judged at this load only.
const TARGET_AGENTS: usize = 200;
const TARGET_PODS: usize = 110;
const TARGET_POLL_SECS: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 24.0;
const TARGET_CPU_MS: f64 = 20.0;

impl NodeReport {
    /// Judge the targets.
    pub fn evaluate(&mut self) {
        for run in &mut self.runs {
            run.derive();
        }
        let at_target_load = (self.params.pods == TARGET_PODS)
            && (self.params.poll_secs - TARGET_POLL_SECS).abs() < 1e-9;
        let run = self
            .runs
            .iter()
            .find(|r| r.agents == TARGET_AGENTS && at_target_load);
        let judge = |met: bool| {
            if run.is_some() {
                Status::from_bool(met)
            } else {
                Status::NotMeasured
            }
        };
        let (rss, cpu) = match run {
            Some(r) => (
                format!(
                    "peak {:.1} MiB (VmHWM), {:.1} MiB at the end of the window",
                    r.peak_rss_mib, r.rss_mib
                ),
                format!(
                    "{:.1} ms per agent-hour ({:.2} s in {:.0} s, {:.0}% of it in the kernel){}",
                    r.cpu_ms_per_agent_hour,
                    r.cpu_secs,
                    r.window_secs,
                    100.0 * r.cpu_system_secs / r.cpu_secs.max(1e-9),
                    floor_note(r)
                ),
            ),
            None => (
                "no run with 200 agents, 110 pods and 10 s polls".to_owned(),
                "no run with 200 agents, 110 pods and 10 s polls".to_owned(),
            ),
        };
        self.targets = vec![
            Target {
                target: "RSS ≤ 24 MiB with 200 agents on a 110-pod node".into(),
                measured: rss,
                status: judge(run.is_some_and(|r| r.peak_rss_mib <= TARGET_RSS_MIB)),
            },
            Target {
                target: "CPU ≤ 20 ms per agent-hour with 200 agents polling every 10 s".into(),
                measured: cpu,
                status: judge(run.is_some_and(|r| r.cpu_ms_per_agent_hour <= TARGET_CPU_MS)),
            },
        ];
    }

    pub fn markdown(&self) -> String {
        let p = &self.params;
        let mut out = format!(
            "One node: {} pods ({} Deployments, one InstrumentationConfig each), agents polling \
             every {} s, each on its own keep-alive connection; our server ({} build, its \
             default one runtime thread) in Kubernetes mode \
             against {} on loopback, as the `odiglet` service account; a fresh server and node \
             per row; measured over {:.0} s once every agent was registered.\n\n",
            p.pods, p.workloads, p.poll_secs, self.build, self.apiserver, p.window_secs
        );
        out.push_str(
            "| agents | start-up to ready | RSS end / peak (MiB) | server CPU per agent-hour | bare hyper's, same pace | API requests per node-hour | start-up API requests | generator CPU | failed requests |\n",
        );
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.runs {
            let floor = r.floor.as_ref().map_or_else(
                || "not measured".to_owned(),
                |f| format!("{:.1} ms", f.cpu_ms_per_agent_hour),
            );
            out.push_str(&format!(
                "| {} | {:.0} ms | {:.1} / {:.1} | {:.1} ms | {} | {:.1} ({}) | {} ({}) | {:.2} s | {} |\n",
                r.agents,
                r.ready_ms,
                r.rss_mib,
                r.peak_rss_mib,
                r.cpu_ms_per_agent_hour,
                floor,
                r.requests_per_node_hour,
                summary(&r.window),
                r.startup.requests(),
                summary(&r.startup),
                r.generator_cpu_secs,
                r.requests_failed
            ));
        }
        out.push('\n');
        for r in &self.runs {
            out.push_str(&format!(
                "{} agents: {} polls over {} new connections in {:.0} s ({:.0} µs of server CPU \
                 per poll, {:.0}% in the kernel); registration took {:.1} s; {} watches open \
                 at the end. Window requests by resource and verb: {}. Start-up: {}.\n\n",
                r.agents,
                r.window_polls,
                r.window_connections,
                r.window_secs,
                r.cpu_secs * 1e6 / r.window_polls.max(1) as f64,
                100.0 * r.cpu_system_secs / r.cpu_secs.max(1e-9),
                r.registered_secs,
                r.watches_open,
                breakdown(&r.window),
                breakdown(&r.startup)
            ));
            if let Some(f) = &r.floor {
                out.push_str(&format!(
                    "The same {} agents on bare hyper (one runtime thread, as ours): {} polls \
                     over {} new connections in {:.0} s \
                     ({:.0} µs of its CPU per poll, {} failed requests).\n\n",
                    r.agents,
                    f.polls,
                    f.connections,
                    f.window_secs,
                    f.cpu_secs * 1e6 / f.polls.max(1) as f64,
                    f.failed
                ));
            }
        }
        out.push_str(&targets_markdown(&self.targets));
        out
    }
}

/// "; bare hyper at the same pace: 4.0 ms, ours 5.00× it", when measured.
fn floor_note(run: &NodeRun) -> String {
    match (&run.floor, run.over_floor()) {
        (Some(floor), Some(ratio)) => format!(
            "; bare hyper at the same pace: {:.1} ms, ours {ratio:.2}× it",
            floor.cpu_ms_per_agent_hour
        ),
        _ => String::new(),
    }
}

/// "2 watches, 0 lists, 0 writes"
fn summary(counts: &ApiCounts) -> String {
    format!(
        "{} watches, {} lists, {} writes, {} other",
        counts.watches_opened, counts.lists, counts.writes, counts.other_reads
    )
}

fn breakdown(counts: &ApiCounts) -> String {
    let mut parts: Vec<String> = counts
        .completed
        .iter()
        .map(|r| {
            let slash = if r.subresource.is_empty() { "" } else { "/" };
            format!(
                "{}{slash}{} {} {}",
                r.resource, r.subresource, r.verb, r.count
            )
        })
        .collect();
    parts.push(format!("WATCH opened {}", counts.watches_opened));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(agents: usize) -> NodeRun {
        NodeRun {
            agents,
            window_secs: 360.0,
            cpu_secs: 0.4,
            peak_rss_mib: 20.0,
            rss_mib: 18.0,
            window: ApiCounts {
                watches_opened: 2,
                ..ApiCounts::default()
            },
            ..NodeRun::default()
        }
    }

    #[test]
    fn per_hour_figures_and_targets_at_the_target_load_only() {
        let mut report = NodeReport {
            params: NodeParams::default(),
            apiserver: "kube-apiserver v1.20.2".into(),
            build: "dist".into(),
            runs: vec![run(200), run(1000)],
            targets: Vec::new(),
        };
        report.evaluate();
        let r = &report.runs[0];
        // 0.4 s over 200 agents × 0.1 h.
        assert!((r.cpu_ms_per_agent_hour - 20.0).abs() < 1e-9);
        assert!((r.requests_per_node_hour - 20.0).abs() < 1e-9);
        assert!(report.targets.iter().all(|t| t.status == Status::Met));
        report.params.pods = 12;
        report.evaluate();
        assert!(
            report
                .targets
                .iter()
                .all(|t| t.status == Status::NotMeasured)
        );
        let markdown = report.markdown();
        assert!(markdown.contains("| 200 |") && markdown.contains("| target |"));
    }

    #[test]
    fn the_floor_is_per_agent_hour_too_and_ours_is_judged_against_it() {
        let mut with_floor = run(200);
        with_floor.floor = Some(Floor {
            window_secs: 360.0,
            polls: 7200,
            connections: 0,
            cpu_secs: 0.1,
            cpu_ms_per_agent_hour: 0.0,
            failed: 0,
        });
        let mut report = NodeReport {
            params: NodeParams::default(),
            apiserver: "kube-apiserver v1.37.2".into(),
            build: "dist".into(),
            runs: vec![with_floor],
            targets: Vec::new(),
        };
        report.evaluate();
        let r = &report.runs[0];
        let floor = r.floor.as_ref().expect("floor");
        assert!((floor.cpu_ms_per_agent_hour - 5.0).abs() < 1e-9);
        assert!((r.over_floor().expect("ratio") - 4.0).abs() < 1e-9);
        let markdown = report.markdown();
        assert!(markdown.contains("| 20.0 ms | 5.0 ms |"), "{markdown}");
        assert!(markdown.contains("ours 4.00× it"), "{markdown}");
        assert!(
            markdown.contains("(14 µs of its CPU per poll, 0 failed requests)"),
            "{markdown}"
        );
    }
}
