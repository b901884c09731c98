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
/// Default time to send a request's headers; also how long an idle keep-alive connection
/// stays open. Shorter than any agent's poll interval (10 s for Node, 30 s for the others)
/// so an idle connection is never closed just as the next poll is sent on it.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time to send the body and get the answer, once the headers are in.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the server needs to run.
#[derive(Clone, Debug)]
pub struct Settings {
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
    /// Time to send a request's headers (slowloris); also closes idle keep-alive
    /// connections.
    pub header_read_timeout: Duration,
    /// Time to send the body and be answered; past it: 408 and the connection closed.
    pub request_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
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
            ..Self::default()
        }
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
