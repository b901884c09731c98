//! The results of a run: JSON (`bench/results/latest.json`), a markdown table, the ratios
//! against the opamp-go peer and the bare hyper ceiling, and the targets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything one run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// RFC 3339, UTC.
    pub date: String,
    pub machine: Machine,
    pub params: Params,
    pub servers: Vec<ServerResult>,
    /// Ours ÷ each other server, keyed by that server's name.
    pub ratios: BTreeMap<String, Comparison>,
    /// The Kubernetes store phase (`kube` in the servers), when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeReport>,
    pub targets: Vec<Target>,
    /// The node phase (`node` in the servers), when it ran; its own block and targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<crate::node::report::NodeReport>,
}

/// Heartbeat interval of the server's default (`--heartbeat-interval`): the Kubernetes
/// store's per-agent-hour figures are scaled to it.
pub const DEFAULT_HEARTBEAT_SECS: f64 = 30.0;

/// How the Kubernetes store phase is set up.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KubeParams {
    /// Agents registered for the steady state, each in its own pod on the bench node.
    pub agents: usize,
    /// The server's `--heartbeat-interval`, and how often each agent polls.
    pub heartbeat_secs: f64,
    /// Length of the steady-state window (every agent registered, unchanged heartbeats).
    pub steady_secs: f64,
    /// Length of the churn window, over which the start/stop cycles are spread.
    pub churn_secs: f64,
    /// Start/stop cycles in the churn window: one agent stops (every other one with a
    /// disconnect message, the others by going silent until the stale sweep) and a new
    /// agent starts in a new pod.
    pub churn_cycles: usize,
    /// The churn rate stated for the per-agent-hour figure under churn: start/stop cycles
    /// per agent per hour.
    pub churn_per_agent_hour: f64,
    /// Keep-alive connections the agents share.
    pub connections: usize,
}

impl Default for KubeParams {
    fn default() -> Self {
        KubeParams {
            agents: 200,
            heartbeat_secs: 1.0,
            steady_secs: 20.0,
            churn_secs: 20.0,
            churn_cycles: 100,
            churn_per_agent_hour: 1.0,
            connections: 8,
        }
    }
}

/// API requests counted by the API server (`apiserver_request_total`) during one window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KubePhase {
    /// Wall time of the window, from the metrics read before to the one after.
    pub seconds: f64,
    /// Agents that started (first message) and that stopped with a disconnect message.
    pub agents_started: u64,
    pub disconnects: u64,
    /// Health reports (the `Healthy` report after each first message).
    pub health_reports: u64,
    /// Plain heartbeats (nothing changed).
    pub heartbeats: u64,
    /// Requests that create, change or delete (POST, PUT, PATCH, APPLY, DELETE).
    pub writes: u64,
    /// The others (GET, LIST, WATCH).
    pub reads: u64,
    /// The bench's own LISTs of InstrumentationInstances (waiting for the server's write
    /// queue to drain), already subtracted from `reads`.
    pub own_lists_subtracted: u64,
    /// Every non-zero count, by resource, subresource and verb.
    pub requests: Vec<ApiRequests>,
}

impl KubePhase {
    pub fn total(&self) -> u64 {
        self.writes + self.reads
    }

    /// Requests to `resource` (and `subresource`, "" for the object itself) with one of
    /// `verbs`.
    pub fn count(&self, resource: &str, subresource: &str, verbs: &[&str]) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.resource == resource && r.subresource == subresource)
            .filter(|r| verbs.contains(&r.verb.as_str()))
            .map(|r| r.count)
            .sum()
    }

    /// `resource[/subresource] VERB count, ...`
    fn breakdown(&self) -> String {
        if self.requests.is_empty() {
            return "none".into();
        }
        self.requests
            .iter()
            .map(|r| {
                let slash = if r.subresource.is_empty() { "" } else { "/" };
                format!(
                    "{}{slash}{} {} {}",
                    r.resource, r.subresource, r.verb, r.count
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One `apiserver_request_total` count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRequests {
    pub resource: String,
    /// Empty for the object itself.
    pub subresource: String,
    pub verb: String,
    pub count: u64,
}

/// What the Kubernetes store phase measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KubeReport {
    pub params: KubeParams,
    /// e.g. "kube-apiserver v1.20.2".
    pub apiserver: String,
    /// Registering every agent: its first message, then a healthy report.
    pub registration: KubePhase,
    /// Every agent registered, unchanged heartbeats.
    pub steady: KubePhase,
    /// Agents stopping and new ones starting, the others heartbeating.
    pub churn: KubePhase,
    /// Of the churn's stopped agents: those that sent a disconnect, those that went silent.
    pub churn_disconnects: u64,
    pub churn_silent: u64,
    /// The figures are scaled to this heartbeat interval (the server's default).
    pub scaled_to_heartbeat_secs: f64,
    /// Steady state: requests per heartbeat × heartbeats per agent-hour at
    /// `scaled_to_heartbeat_secs`.
    pub steady_writes_per_agent_hour: f64,
    pub steady_reads_per_agent_hour: f64,
    pub registration_writes_per_agent: f64,
    pub registration_requests_per_agent: f64,
    /// Churn window's requests ÷ cycles (the other agents' heartbeats in the window
    /// included: in steady state they cost what `steady` says).
    pub churn_requests_per_cycle: f64,
    pub churn_writes_per_cycle: f64,
    /// Steady state plus `params.churn_per_agent_hour` cycles per agent-hour.
    pub requests_per_agent_hour_with_churn: f64,
    pub writes_per_agent_hour_with_churn: f64,
    /// Agent requests with a correct reply, and the others.
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub first_error: Option<String>,
}

impl KubeReport {
    /// Heartbeats per agent-hour at the scaled interval.
    pub fn heartbeats_per_agent_hour(&self) -> f64 {
        3600.0 / self.scaled_to_heartbeat_secs
    }

    /// Fill in the derived figures from the phases.
    pub fn derive(&mut self) {
        let per_hour = self.heartbeats_per_agent_hour();
        let heartbeats = self.steady.heartbeats.max(1) as f64;
        self.steady_writes_per_agent_hour = self.steady.writes as f64 / heartbeats * per_hour;
        self.steady_reads_per_agent_hour = self.steady.reads as f64 / heartbeats * per_hour;
        let agents = self.registration.agents_started.max(1) as f64;
        self.registration_writes_per_agent = self.registration.writes as f64 / agents;
        self.registration_requests_per_agent = self.registration.total() as f64 / agents;
        let cycles = (self.churn_disconnects + self.churn_silent).max(1) as f64;
        self.churn_requests_per_cycle = self.churn.total() as f64 / cycles;
        self.churn_writes_per_cycle = self.churn.writes as f64 / cycles;
        let rate = self.params.churn_per_agent_hour;
        self.requests_per_agent_hour_with_churn = self.steady_writes_per_agent_hour
            + self.steady_reads_per_agent_hour
            + rate * self.churn_requests_per_cycle;
        self.writes_per_agent_hour_with_churn =
            self.steady_writes_per_agent_hour + rate * self.churn_writes_per_cycle;
    }

    fn markdown(&self) -> String {
        let p = &self.params;
        let mut out = format!(
            "Kubernetes store: {}, on loopback; {} agents on one node, each in its own pod \
             (created beforehand), identified by self-reported attributes checked against the \
             pod; the server as the `odiglet` service account; heartbeats every {} s, scaled to \
             the default {} s ({:.0} heartbeats per agent-hour). Requests to pods, \
             instrumentationinstances and instrumentationconfigs, from the API server's \
             `apiserver_request_total` (a WATCH counts when it ends: the server's two watches \
             are per node and outlast these windows).\n\n",
            self.apiserver,
            p.agents,
            p.heartbeat_secs,
            self.scaled_to_heartbeat_secs,
            self.heartbeats_per_agent_hour()
        );
        out.push_str("| phase | agent messages | API writes | API reads | per |\n");
        out.push_str("|---|---:|---:|---:|---|\n");
        let r = &self.registration;
        out.push_str(&format!(
            "| registration: first message, then a healthy report | {} | {} | {} | {:.2} writes, {:.2} requests per agent |\n",
            r.agents_started + r.health_reports + r.heartbeats,
            r.writes,
            r.reads,
            self.registration_writes_per_agent,
            self.registration_requests_per_agent
        ));
        let s = &self.steady;
        out.push_str(&format!(
            "| steady state, {:.1} s | {} heartbeats | {} | {} | **{:.2} writes**, {:.2} reads per agent-hour |\n",
            s.seconds, s.heartbeats, s.writes, s.reads,
            self.steady_writes_per_agent_hour, self.steady_reads_per_agent_hour
        ));
        let c = &self.churn;
        out.push_str(&format!(
            "| churn, {:.1} s: {} cycles ({} disconnects, {} silent until the stale sweep) | {} | {} | {} | {:.2} requests ({:.2} writes) per cycle |\n",
            c.seconds,
            self.churn_disconnects + self.churn_silent,
            self.churn_disconnects,
            self.churn_silent,
            c.agents_started + c.health_reports + c.heartbeats + c.disconnects,
            c.writes,
            c.reads,
            self.churn_requests_per_cycle,
            self.churn_writes_per_cycle
        ));
        out.push_str(&format!(
            "\nAt {} start/stop cycle(s) per agent per hour: {:.2} API requests per agent-hour \
             ({:.2} writes). By resource and verb: registration: {}; steady state: {}; churn: {}.\n\n",
            p.churn_per_agent_hour,
            self.requests_per_agent_hour_with_churn,
            self.writes_per_agent_hour_with_churn,
            r.breakdown(),
            s.breakdown(),
            c.breakdown()
        ));
        out
    }
}

/// Where the run ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// Tool versions given by the caller (rustc, go).
    pub notes: Vec<String>,
}

/// The load, identical for every server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Params {
    pub agents: usize,
    pub connections: usize,
    pub warmup_secs: f64,
    pub saturate_secs: f64,
    pub rate_per_sec: f64,
    pub rate_secs: f64,
    /// Each server runs this many times, interleaved with the others (A B C A B C ...);
    /// each reported measure is its median over the rounds.
    pub rounds: usize,
    /// Worker threads of the generator's runtime (1: a current-thread runtime).
    pub generator_threads: usize,
}

/// One server's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerResult {
    pub server: String,
    pub description: String,
    /// Heartbeats per second, closed loop.
    pub saturated_rps: f64,
    /// First messages per second, closed loop, from an empty server.
    pub registrations_per_sec: f64,
    /// Latency at the fixed rate, open loop.
    pub fixed_rate: Latency,
    /// Closed-loop heartbeat latency at saturation (informative).
    pub saturated_latency: Latency,
    /// Resident memory right after every agent registered.
    pub rss_registered_mib: f64,
    /// Peak resident memory (VmHWM) over the whole run, with every agent registered.
    pub peak_rss_mib: f64,
    /// Server CPU seconds per 1,000 heartbeats at the fixed rate.
    pub cpu_s_per_1k_heartbeats: f64,
    /// Server CPU seconds per 1,000 heartbeats at saturation.
    pub saturated_cpu_s_per_1k: f64,
    /// Server CPU cores busy at saturation (CPU seconds per second).
    pub saturated_server_cores: f64,
    /// The generator's own CPU cores busy at saturation, and per 1,000 heartbeats at the
    /// fixed rate: the load is not free, and it shares the machine.
    pub generator_saturated_cores: f64,
    pub generator_cpu_s_per_1k_heartbeats: f64,
    /// Replies that carried a remote config, in the registration phase.
    pub registration_configs: u64,
    /// Requests with a correct reply, and the others, over every phase.
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub first_error: Option<String>,
    /// Our server only, when the Kubernetes phase ran: its Kubernetes store's API requests
    /// per agent per hour in steady state (writes and reads, at the default heartbeat
    /// interval; see [`KubeReport`] for the details and churn).
    pub kube_api_requests_per_agent_hour: Option<f64>,
    /// Saturated throughput and fixed-rate p99 of each round: how noisy the machine was.
    pub saturated_rps_rounds: Vec<f64>,
    pub p99_us_rounds: Vec<f64>,
}

impl ServerResult {
    /// The median of each measure over rounds of one server; request counts are summed.
    pub fn median(rounds: &[ServerResult]) -> Option<ServerResult> {
        let first = rounds.first()?;
        let m = |f: fn(&ServerResult) -> f64| median(rounds.iter().map(f));
        let latency = |f: fn(&ServerResult) -> &Latency| Latency {
            requests: rounds.iter().map(|r| f(r).requests).sum(),
            achieved_rate: median(rounds.iter().map(|r| f(r).achieved_rate)),
            p50_us: median(rounds.iter().map(|r| f(r).p50_us)),
            p99_us: median(rounds.iter().map(|r| f(r).p99_us)),
            p999_us: median(rounds.iter().map(|r| f(r).p999_us)),
            max_us: rounds.iter().map(|r| f(r).max_us).fold(0.0, f64::max),
            send_lag_p99_us: median(rounds.iter().map(|r| f(r).send_lag_p99_us)),
        };
        Some(ServerResult {
            server: first.server.clone(),
            description: first.description.clone(),
            saturated_rps: m(|r| r.saturated_rps),
            registrations_per_sec: m(|r| r.registrations_per_sec),
            fixed_rate: latency(|r| &r.fixed_rate),
            saturated_latency: latency(|r| &r.saturated_latency),
            rss_registered_mib: m(|r| r.rss_registered_mib),
            peak_rss_mib: m(|r| r.peak_rss_mib),
            cpu_s_per_1k_heartbeats: m(|r| r.cpu_s_per_1k_heartbeats),
            saturated_cpu_s_per_1k: m(|r| r.saturated_cpu_s_per_1k),
            saturated_server_cores: m(|r| r.saturated_server_cores),
            generator_saturated_cores: m(|r| r.generator_saturated_cores),
            generator_cpu_s_per_1k_heartbeats: m(|r| r.generator_cpu_s_per_1k_heartbeats),
            registration_configs: rounds.iter().map(|r| r.registration_configs).sum(),
            requests_ok: rounds.iter().map(|r| r.requests_ok).sum(),
            requests_failed: rounds.iter().map(|r| r.requests_failed).sum(),
            first_error: rounds.iter().find_map(|r| r.first_error.clone()),
            kube_api_requests_per_agent_hour: None,
            saturated_rps_rounds: rounds.iter().map(|r| r.saturated_rps).collect(),
            p99_us_rounds: rounds.iter().map(|r| r.fixed_rate.p99_us).collect(),
        })
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A latency distribution, in microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub requests: u64,
    pub achieved_rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Fixed rate only: p99 of how late the generator's timer sent on an idle connection.
    pub send_lag_p99_us: f64,
}

/// Our server against one other server: ours ÷ theirs for each measure (`None` when
/// either is missing or zero).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Comparison {
    pub saturated_throughput: Option<f64>,
    pub registrations: Option<f64>,
    pub p99_at_fixed_rate: Option<f64>,
    pub cpu_per_heartbeat: Option<f64>,
    pub saturated_cpu_per_heartbeat: Option<f64>,
    pub peak_rss: Option<f64>,
}

/// One measure of a [`Comparison`], for the markdown table.
type Measure = fn(&Comparison) -> Option<f64>;

impl Comparison {
    fn between(ours: &ServerResult, theirs: &ServerResult) -> Self {
        let ratio = |f: fn(&ServerResult) -> f64| {
            let (a, b) = (f(ours), f(theirs));
            (b > 0.0 && a.is_finite()).then(|| a / b)
        };
        Comparison {
            saturated_throughput: ratio(|s| s.saturated_rps),
            registrations: ratio(|s| s.registrations_per_sec),
            p99_at_fixed_rate: ratio(|s| s.fixed_rate.p99_us),
            cpu_per_heartbeat: ratio(|s| s.cpu_s_per_1k_heartbeats),
            saturated_cpu_per_heartbeat: ratio(|s| s.saturated_cpu_s_per_1k),
            peak_rss: ratio(|s| s.peak_rss_mib),
        }
    }
}

/// One of the targets and where this run stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub status: Status,
}

/// The targets' table, as every phase's report ends.
pub fn targets_markdown(targets: &[Target]) -> String {
    let mut out = String::from("| target | measured | status |\n|---|---|---|\n");
    for t in targets {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            t.target,
            t.measured,
            t.status.label()
        ));
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Met,
    NotMet,
    /// This run cannot tell (a server not run, other load parameters, not built yet).
    NotMeasured,
}

impl Status {
    pub fn from_bool(met: bool) -> Self {
        if met { Status::Met } else { Status::NotMet }
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::NotMet => "**not met**",
            Status::NotMeasured => "not measured",
        }
    }
}

impl Report {
    pub fn server(&self, name: &str) -> Option<&ServerResult> {
        self.servers.iter().find(|s| s.server == name)
    }

    /// Fill in the ratios and targets from the servers' numbers.
    pub fn evaluate(&mut self) {
        self.ratios.clear();
        if let Some(ours) = self.server("ours").cloned() {
            for other in self.servers.iter().filter(|s| s.server != "ours") {
                self.ratios
                    .insert(other.server.clone(), Comparison::between(&ours, other));
            }
        }
        if let Some(kube) = &mut self.kube {
            kube.derive();
        }
        let per_hour = self
            .kube
            .as_ref()
            .map(|k| k.steady_writes_per_agent_hour + k.steady_reads_per_agent_hour);
        for server in &mut self.servers {
            if server.server == "ours" {
                server.kube_api_requests_per_agent_hour = per_hour;
            }
        }
        let ours = self.server("ours").cloned();
        self.targets = targets(
            &self.params,
            ours.as_ref(),
            &self.ratios,
            self.kube.as_ref(),
        );
    }

    /// The markdown table, ratios and targets.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.servers.is_empty() {
            self.servers_markdown(&mut out);
        }
        if let Some(kube) = &self.kube {
            out.push_str(&kube.markdown());
        }
        out.push_str(&targets_markdown(&self.targets));
        out
    }

    /// The servers' table, the generator's line, each round, and the ratios.
    fn servers_markdown(&self, out: &mut String) {
        let p = &self.params;
        out.push_str(&format!(
            "{} agents over {} keep-alive connections; saturation {} s (after {} s warm-up); \
             fixed rate {} heartbeats/s for {} s; generator on {} thread(s); medians of {} \
             interleaved round(s).\n\n",
            p.agents,
            p.connections,
            p.saturate_secs,
            p.warmup_secs,
            p.rate_per_sec,
            p.rate_secs,
            p.generator_threads,
            p.rounds
        ));
        out.push_str(&format!(
            "| server | saturated heartbeats/s | registrations/s | p50 / p99 / p99.9 at {} /s (µs) | peak RSS, {} agents (MiB) | CPU s / 1k heartbeats | failed requests |\n",
            p.rate_per_sec, p.agents
        ));
        out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
        for s in &self.servers {
            out.push_str(&format!(
                "| {} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} | {:.1} | {:.4} | {} |\n",
                s.server,
                s.saturated_rps,
                s.registrations_per_sec,
                s.fixed_rate.p50_us,
                s.fixed_rate.p99_us,
                s.fixed_rate.p999_us,
                s.peak_rss_mib,
                s.cpu_s_per_1k_heartbeats,
                s.requests_failed
            ));
        }
        out.push_str(
            "\nGenerator (the load itself, same machine), per server: saturated cores / CPU s per 1k heartbeats at the fixed rate / timer lag p99 (µs): ",
        );
        let generator: Vec<String> = self
            .servers
            .iter()
            .map(|s| {
                format!(
                    "{} {:.2} / {:.4} / {:.0}",
                    s.server,
                    s.generator_saturated_cores,
                    s.generator_cpu_s_per_1k_heartbeats,
                    s.fixed_rate.send_lag_p99_us
                )
            })
            .collect();
        out.push_str(&generator.join("; "));
        out.push_str(".\n\n");
        if p.rounds > 1 {
            out.push_str("Each round (saturated heartbeats/s; p99 µs at the fixed rate): ");
            let rounds: Vec<String> = self
                .servers
                .iter()
                .map(|s| {
                    let list = |values: &[f64]| {
                        values
                            .iter()
                            .map(|v| format!("{v:.0}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    format!(
                        "{} {}; {}",
                        s.server,
                        list(&s.saturated_rps_rounds),
                        list(&s.p99_us_rounds)
                    )
                })
                .collect();
            out.push_str(&rounds.join(" — "));
            out.push_str(".\n\n");
        }

        if !self.ratios.is_empty() {
            let x = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2}×"));
            out.push_str("| ours ÷ |");
            for name in self.ratios.keys() {
                out.push_str(&format!(" {name} |"));
            }
            out.push_str("\n|---|");
            out.push_str(&"---:|".repeat(self.ratios.len()));
            out.push('\n');
            let rows: [(&str, Measure); 6] = [
                ("saturated throughput", |c| c.saturated_throughput),
                ("registrations/s", |c| c.registrations),
                ("p99 at the fixed rate", |c| c.p99_at_fixed_rate),
                ("CPU per heartbeat, fixed rate", |c| c.cpu_per_heartbeat),
                ("CPU per heartbeat, saturated", |c| {
                    c.saturated_cpu_per_heartbeat
                }),
                ("peak RSS", |c| c.peak_rss),
            ];
            for (label, get) in rows {
                out.push_str(&format!("| {label} |"));
                for comparison in self.ratios.values() {
                    out.push_str(&format!(" {} |", x(get(comparison))));
                }
                out.push('\n');
            }
            out.push('\n');
        }
    }
}

/// The targets. Latency and memory targets are only judged at the load they name.
fn targets(
    params: &Params,
    ours: Option<&ServerResult>,
    ratios: &BTreeMap<String, Comparison>,
    kube: Option<&KubeReport>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    let mut push = |target: &str, measured: String, status: Status| {
        targets.push(Target {
            target: target.to_owned(),
            measured,
            status,
        })
    };
    let ratio_target = |ratio: Option<f64>, min: f64, what: &str| match ratio {
        Some(v) => (format!("{v:.2}× {what}"), Status::from_bool(v >= min)),
        None => ("n/a".to_owned(), Status::NotMeasured),
    };
    let throughput = |name: &str| ratios.get(name).and_then(|c| c.saturated_throughput);
    let (m, s) = ratio_target(throughput("opamp-go"), 2.0, "opamp-go");
    push("saturated throughput ≥ 2× the opamp-go peer", m, s);
    let (m, s) = ratio_target(throughput("bare-hyper"), 0.8, "bare hyper");
    push("saturated throughput ≥ 80% of bare hyper", m, s);
    match ours {
        Some(o) => {
            let at_5000 = (params.rate_per_sec - 5000.0).abs() < 0.5;
            push(
                "p99 ≤ 1 ms at 5,000 heartbeats/s",
                format!(
                    "p99 {:.0} µs at {} /s",
                    o.fixed_rate.p99_us, params.rate_per_sec
                ),
                if at_5000 {
                    Status::from_bool(o.fixed_rate.p99_us <= 1000.0)
                } else {
                    Status::NotMeasured
                },
            );
            push(
                "RSS ≤ 64 MiB with 10,000 agents",
                format!(
                    "peak {:.1} MiB with {} agents",
                    o.peak_rss_mib, params.agents
                ),
                if params.agents == 10_000 {
                    Status::from_bool(o.peak_rss_mib <= 64.0)
                } else {
                    Status::NotMeasured
                },
            );
        }
        None => {
            push(
                "p99 ≤ 1 ms at 5,000 heartbeats/s",
                "n/a".into(),
                Status::NotMeasured,
            );
            push(
                "RSS ≤ 64 MiB with 10,000 agents",
                "n/a".into(),
                Status::NotMeasured,
            );
        }
    }
    let (measured, status) = match kube {
        Some(k) if k.steady.heartbeats > 0 => (
            format!(
                "{} API writes in {} unchanged heartbeats ({} agents, {:.0} s, Kubernetes store)",
                k.steady.writes, k.steady.heartbeats, k.params.agents, k.steady.seconds
            ),
            Status::from_bool(k.steady.writes == 0),
        ),
        Some(_) => (
            "no heartbeat in the steady state".into(),
            Status::NotMeasured,
        ),
        None => (
            "the Kubernetes phase did not run (`kube` not in --servers)".into(),
            Status::NotMeasured,
        ),
    };
    push("zero API writes for unchanged heartbeats", measured, status);
    targets
}

/// Markers of the generated blocks in BENCHMARKS.md: the servers' and the Kubernetes
/// store's results, and the node phase's.
pub const BLOCK_BEGIN: &str = "<!-- bench:results:begin (written by `cargo xtask bench`) -->";
pub const BLOCK_END: &str = "<!-- bench:results:end -->";
pub const NODE_BLOCK_BEGIN: &str = "<!-- bench:node:begin (written by `cargo xtask bench`) -->";
pub const NODE_BLOCK_END: &str = "<!-- bench:node:end -->";

/// A document without both markers, in order.
#[derive(Debug, thiserror::Error)]
#[error("the document has no `{begin}` … `{end}` block to update")]
pub struct NoResultsBlock {
    begin: &'static str,
    end: &'static str,
}

/// Replace the text between the results markers with `block`.
pub fn replace_block(document: &str, block: &str) -> Result<String, NoResultsBlock> {
    replace_between(document, BLOCK_BEGIN, BLOCK_END, block)
}

/// Replace the text between `begin` and `end` with `block`.
pub fn replace_between(
    document: &str,
    begin_marker: &'static str,
    end_marker: &'static str,
    block: &str,
) -> Result<String, NoResultsBlock> {
    let missing = NoResultsBlock {
        begin: begin_marker,
        end: end_marker,
    };
    let Some(begin) = document.find(begin_marker) else {
        return Err(missing);
    };
    let after_begin = begin + begin_marker.len();
    let Some(end) = document[after_begin..]
        .find(end_marker)
        .map(|i| after_begin + i)
    else {
        return Err(missing);
    };
    Ok(format!(
        "{}\n{}\n{}",
        &document[..after_begin],
        block.trim_end(),
        &document[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn replaces_only_the_block() {
        let doc = format!("intro\n{BLOCK_BEGIN}\nold\n{BLOCK_END}\noutro\n");
        let new = replace_block(&doc, "new table\n").unwrap();
        assert_eq!(
            new,
            format!("intro\n{BLOCK_BEGIN}\nnew table\n{BLOCK_END}\noutro\n")
        );
        assert_eq!(replace_block(&new, "new table").unwrap(), new, "idempotent");
        assert!(replace_block("no markers", "x").is_err());
    }
}
