//! The server's runtime settings, independent of how they were given (flags, tests).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Default agent listener (docs/protocol.md §2).
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4320);
/// Default admin listener.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4321);
/// Default unix socket path, used when the socket listener is enabled without a path.
pub const DEFAULT_UNIX_SOCKET: &str = "/var/odigos/exchange/exchange.sock";
/// Default heartbeat interval (docs/protocol.md §4).
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Default stale factor: an agent is stale after 2.5 intervals without a message.
pub const DEFAULT_STALE_FACTOR: f64 = 2.5;
/// Default body limit, after decompression: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default cap on connected agents: a node runs at most 110 pods by default (kubelet's
/// max-pods), so hundreds of agents; this leaves room, and keeps the worst-case memory
/// (see SECURITY.md) under the DaemonSet's 256 MiB limit.
pub const DEFAULT_MAX_AGENTS: usize = 1024;
/// Default cap on open connections per listener group (agents; admin has its own).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on requests handled at once: bounds the bodies buffered at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 16;
/// Default time to send a request's headers, from their first byte (slowloris).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a keep-alive connection waits for its next request. More than twice the
/// longest agent poll interval (10 s for Node, 30 s for the others), so an agent's
/// connection outlives a missed poll, and a multiple of neither, so a late poll does not
/// meet the server closing its connection.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default time to send the body and get the answer, once the headers are in.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How agents are identified, configured and recorded: the edges the server runs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// This node's pods and the kubelet identify agents, `InstrumentationConfig`s configure
    /// them, `InstrumentationInstance`s record them.
    Kubernetes,
    /// No cluster: a device table identifies and configures agents, records stay in memory.
    #[default]
    Embedded,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Kubernetes => "kubernetes",
            Mode::Embedded => "embedded",
        })
    }
}

/// What to do with an agent whose connection names no pod (docs/protocol.md §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerVerification {
    /// Refuse it (403): only agents whose connection names their pod are served.
    Required,
    /// Serve it on the checks of its claims alone, marked unverified. A connection that
    /// names another pod than the claim is refused either way.
    #[default]
    WhenPossible,
    /// Do not look at connections at all (the behaviour before peer verification).
    Off,
}

impl std::fmt::Display for PeerVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            PeerVerification::Required => "required",
            PeerVerification::WhenPossible => "when-possible",
            PeerVerification::Off => "off",
        })
    }
}

/// The bounds of every setting, checked by [`Settings::validate`].
pub mod bounds {
    use std::time::Duration;

    /// Counts (agents, connections, requests at once): a semaphore holds at most this many
    /// permits, and more would only hide a typo.
    pub const MAX_COUNT: usize = 1 << 20;
    /// The heartbeat interval: from this (tests) ...
    pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
    /// ... to this.
    pub const MAX_HEARTBEAT: Duration = Duration::from_secs(24 * 3600);
    /// Every other duration (timeouts): more than zero, at most this.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
    /// The stale factor: from 1 (stale after one silent interval) to this.
    pub const MAX_STALE_FACTOR: f64 = 1000.0;
    /// The body limit, after decompression: at most this (a request is held in memory).
    pub const MAX_BODY_BYTES: usize = 1 << 30;
}

/// A setting out of its bounds ([`bounds`]), named by its flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--{setting} must be {expected}, got {got}")]
pub struct SettingsError {
    /// The setting (its flag's name without `--`).
    pub setting: &'static str,
    pub expected: String,
    pub got: String,
}

/// Everything the server needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Which edges the server runs with; shown by `/readyz` and `/agents`. The builder's
    /// edges decide the behaviour: this says which they are.
    pub mode: Mode,
    /// `/agents` shows raw instance uids and everything agents reported (an agent's uid is
    /// what lets a client speak for it). Off by default; [`Settings::loopback`] turns it on
    /// for tests and tools that embed the server.
    pub admin_shows_credentials: bool,
    /// Whether agents must be, may be or are not verified by their connection.
    pub peer_verification: PeerVerification,
    /// Agent listener (TCP).
    pub listen: SocketAddr,
    /// Optional second agent listener on a unix socket (created mode 0666, a stale file
    /// replaced at start, removed at exit).
    pub unix_socket: Option<PathBuf>,
    /// Admin listener: `/healthz`, `/readyz`, `/metrics`, `/agents`.
    pub admin_listen: SocketAddr,
    /// This node's name, sent to agents as `k8s.node.name`.
    pub node_name: String,
    /// How often agents are expected to poll; told to agents that report heartbeats.
    pub heartbeat_interval: Duration,
    /// An agent is dropped after `stale_factor × heartbeat_interval` without a message.
    pub stale_factor: f64,
    /// Largest request body, after decompression.
    pub max_body_bytes: usize,
    /// Responses smaller than this are sent plain even when gzip is accepted.
    pub gzip_min_bytes: usize,
    /// How long shutdown waits for in-flight requests and the store flush.
    pub shutdown_timeout: Duration,
    /// New agents past this many are answered 503 with `Retry-After`.
    pub max_agents: usize,
    /// Open connections on the agent listeners together (the admin listener has as many
    /// of its own); past it a connection gets 503 and is closed.
    pub max_connections: usize,
    /// Requests handled at once per listener group; the others wait for their turn.
    pub max_concurrent_requests: usize,
    /// Time to send a request's headers, from their first byte (slowloris).
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request; past it, it is closed.
    pub idle_timeout: Duration,
    /// Time to send the body and be answered; past it: 408 and the connection closed.
    pub request_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::default(),
            admin_shows_credentials: false,
            peer_verification: PeerVerification::default(),
            listen: DEFAULT_LISTEN,
            unix_socket: None,
            admin_listen: DEFAULT_ADMIN_LISTEN,
            node_name: "localhost".to_owned(),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            stale_factor: DEFAULT_STALE_FACTOR,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            gzip_min_bytes: 256,
            shutdown_timeout: Duration::from_secs(10),
            max_agents: DEFAULT_MAX_AGENTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl Settings {
    /// Defaults, but both listeners on `127.0.0.1` with OS-chosen ports: for tests and
    /// benchmarks that embed the server.
    pub fn loopback() -> Self {
        let any_port = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        Settings {
            listen: any_port,
            admin_listen: any_port,
            node_name: "test-node".to_owned(),
            admin_shows_credentials: true,
            ..Self::default()
        }
    }

    /// Check every setting against its bounds ([`bounds`]); the builder calls this before
    /// it starts anything, and the binary before it logs a word.
    pub fn validate(&self) -> Result<(), SettingsError> {
        use bounds::*;
        let fail = |setting, expected: String, got: String| {
            Err(SettingsError {
                setting,
                expected,
                got,
            })
        };
        let between =
            |value: Duration, low: Duration, high: Duration| value >= low && value <= high;
        if !between(self.heartbeat_interval, MIN_HEARTBEAT, MAX_HEARTBEAT) {
            return fail(
                "heartbeat-interval",
                format!("between {MIN_HEARTBEAT:?} and {MAX_HEARTBEAT:?}"),
                format!("{:?}", self.heartbeat_interval),
            );
        }
        for (setting, value) in [
            ("header-read-timeout", self.header_read_timeout),
            ("idle-timeout", self.idle_timeout),
            ("request-timeout", self.request_timeout),
            ("shutdown-timeout", self.shutdown_timeout),
        ] {
            if !between(value, Duration::from_nanos(1), MAX_TIMEOUT) {
                return fail(
                    setting,
                    format!("more than zero and at most {MAX_TIMEOUT:?}"),
                    format!("{value:?}"),
                );
            }
        }
        if !(self.stale_factor >= 1.0 && self.stale_factor <= MAX_STALE_FACTOR) {
            return fail(
                "stale-factor",
                format!("a number from 1 to {MAX_STALE_FACTOR}"),
                self.stale_factor.to_string(),
            );
        }
        if !(1..=MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return fail(
                "max-body-bytes",
                format!("between 1 and {MAX_BODY_BYTES}"),
                self.max_body_bytes.to_string(),
            );
        }
        for (setting, value) in [
            ("max-agents", self.max_agents),
            ("max-connections", self.max_connections),
            ("max-concurrent-requests", self.max_concurrent_requests),
        ] {
            if !(1..=MAX_COUNT).contains(&value) {
                return fail(
                    setting,
                    format!("between 1 and {MAX_COUNT}"),
                    value.to_string(),
                );
            }
        }
        if self.node_name.trim().is_empty() {
            return fail(
                "node-name",
                "a node name".into(),
                format!("{:?}", self.node_name),
            );
        }
        Ok(())
    }

    /// How long an agent may stay silent before it is dropped.
    pub fn stale_after(&self) -> Duration {
        self.heartbeat_interval.mul_f64(self.stale_factor.max(1.0))
    }

    /// How often the liveness sweeper runs: twice per interval, so an agent is dropped at
    /// most half an interval after it became stale.
    pub fn sweep_period(&self) -> Duration {
        (self.heartbeat_interval / 2).max(Duration::from_millis(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_and_loopback_are_valid() {
        assert_eq!(Settings::default().validate(), Ok(()));
        assert_eq!(Settings::loopback().validate(), Ok(()));
    }

    #[test]
    fn every_bound_is_enforced() {
        type Change = fn(&mut Settings);
        let cases: [(&str, Change); 13] = [
            ("max-concurrent-requests", |s| s.max_concurrent_requests = 0),
            ("max-agents", |s| s.max_agents = bounds::MAX_COUNT + 1),
            ("max-connections", |s| s.max_connections = 0),
            ("heartbeat-interval", |s| {
                s.heartbeat_interval = Duration::ZERO
            }),
            // Would overflow `Instant + Duration` in the sweeper.
            ("heartbeat-interval", |s| {
                s.heartbeat_interval = Duration::MAX
            }),
            ("request-timeout", |s| s.request_timeout = Duration::ZERO),
            ("idle-timeout", |s| s.idle_timeout = Duration::ZERO),
            ("header-read-timeout", |s| {
                s.header_read_timeout = Duration::from_secs(u64::MAX)
            }),
            ("shutdown-timeout", |s| {
                s.shutdown_timeout = Duration::from_secs(7200)
            }),
            ("stale-factor", |s| s.stale_factor = f64::NAN),
            ("stale-factor", |s| s.stale_factor = 0.5),
            ("max-body-bytes", |s| s.max_body_bytes = 0),
            ("node-name", |s| s.node_name = " ".into()),
        ];
        for (setting, change) in cases {
            let mut settings = Settings::default();
            change(&mut settings);
            let error = settings.validate().expect_err(setting);
            assert_eq!(error.setting, setting, "{error}");
        }
    }
}
