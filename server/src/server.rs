//! Assembling and running the server: [`Server::builder`] → [`ServerBuilder::start`] →
//! [`RunningServer`].

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::config_source::{ConfigSource, MemoryConfigSource};
use crate::exchange::Exchange;
use crate::identity::{DeviceTable, Identity, NonUtf8Header, Peer, StaticTableIdentity};
use crate::metrics::Metrics;
use crate::protocol::{AgentState, Outcome};
use crate::registry::Registry;
use crate::settings::{Settings, SettingsError};
use crate::store::{InstanceStore, MemoryStore};
use crate::transport::clock::Deadlines;
use crate::transport::serve::Limits;
use crate::transport::{self, AgentService};
use crate::{liveness, transport::OPAMP_PATH};
use odigos_opamp_proto::opamp::proto::AgentToServer;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({listener} listener): {source}; is another server running?")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot listen on unix socket {path}: {problem}")]
    UnixSocket { path: PathBuf, problem: String },
    #[error("invalid settings: {0}")]
    Settings(#[from] SettingsError),
}

/// Entry point of the embedding API.
pub struct Server;

impl Server {
    /// Start configuring a server. Unset parts get the embedded defaults: an empty device
    /// table (every new agent is refused until identities are configured), defaults for
    /// every workload's config, and an in-memory instance store.
    pub fn builder(settings: Settings) -> ServerBuilder {
        ServerBuilder {
            settings,
            identity: None,
            config_source: None,
            store: None,
            agent_listener: None,
        }
    }
}

/// Configures the edges of a server before it starts.
pub struct ServerBuilder {
    settings: Settings,
    identity: Option<Arc<dyn Identity>>,
    config_source: Option<Arc<dyn ConfigSource>>,
    store: Option<Arc<dyn InstanceStore>>,
    agent_listener: Option<std::net::TcpListener>,
}

impl ServerBuilder {
    /// Who agents are (e.g. [`StaticTableIdentity`], or the Kubernetes implementation).
    pub fn identity(mut self, identity: Arc<dyn Identity>) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Where workload configs come from (e.g. [`MemoryConfigSource`]).
    pub fn config_source(mut self, config_source: Arc<dyn ConfigSource>) -> Self {
        self.config_source = Some(config_source);
        self
    }

    /// Where instance records go (e.g. [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn InstanceStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Serve agents over TCP on this listener, bound already, instead of binding
    /// `settings.listen`: a socket handed over by a supervisor, or one made in another
    /// network namespace.
    pub fn agent_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.agent_listener = Some(listener);
        self
    }

    /// The agent listener's request handling alone: no listener, no liveness sweeper, no
    /// admin listener. For benchmarks and fuzzers that drive it in process.
    pub fn in_process(self) -> Result<InProcess, StartError> {
        self.settings.validate()?;
        let (exchange, service) = self.edges();
        Ok(InProcess {
            exchange,
            router: transport::router(service),
        })
    }

    /// The shared state behind the agent listeners, with the embedded defaults for the edges
    /// that were not given.
    fn edges(self) -> (Arc<Exchange>, Arc<AgentService>) {
        let settings = self.settings;
        let identity = self
            .identity
            .unwrap_or_else(|| Arc::new(StaticTableIdentity::new(DeviceTable::default())));
        let exchange = Arc::new(Exchange {
            registry: Arc::new(Registry::with_max_agents(settings.max_agents)),
            identity,
            config: self
                .config_source
                .unwrap_or_else(|| Arc::new(MemoryConfigSource::new())),
            store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
            metrics: Arc::new(Metrics::new()),
            node_name: settings.node_name.clone(),
            heartbeat_interval: settings.heartbeat_interval,
            peer_verification: settings.peer_verification,
        });
        let service = Arc::new(AgentService {
            exchange: Arc::clone(&exchange),
            max_body_bytes: settings.max_body_bytes,
            gzip_min_bytes: settings.gzip_min_bytes,
        });
        (exchange, service)
    }

    /// Bind every listener, then serve in background tasks. Must run inside a Tokio runtime.
    pub async fn start(mut self) -> Result<RunningServer, StartError> {
        let settings = self.settings.clone();
        settings.validate()?;
        let agent_listener = match self.agent_listener.take() {
            Some(listener) => adopt_tcp("agent", settings.listen, listener)?,
            None => bind_tcp("agent", settings.listen).await?,
        };
        let admin_listener = bind_tcp("admin", settings.admin_listen).await?;
        let unix_listener = settings.unix_socket.as_deref().map(bind_unix).transpose()?;
        let agent_addr = local_addr("agent", settings.listen, &agent_listener)?;
        let admin_addr = local_addr("admin", settings.admin_listen, &admin_listener)?;

        let (exchange, service) = self.edges();
        let shutting_down = Arc::new(AtomicBool::new(false));
        let admin_state = Arc::new(AdminState {
            exchange: Arc::clone(&exchange),
            shutting_down: Arc::clone(&shutting_down),
            mode: settings.mode,
            shows_credentials: settings.admin_shows_credentials,
        });

        let (stop, stop_rx) = watch::channel(false);
        let (admin_stop, admin_stop_rx) = watch::channel(false);
        let agent_routes = transport::AgentRoutes::new(service);
        // Both agent listeners share one budget; the admin listener has its own, so
        // probes and scrapes still get in when agents use every connection.
        let agent_limits = Limits {
            counter: Some(Arc::clone(&exchange.metrics)),
            ..limits(&settings)
        };
        // Answers go out at once: an agent waits for each one before its next request.
        let agent_listener = agent_listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let mut agent_tasks = vec![serve(
            agent_listener,
            agent_routes.clone(),
            agent_limits.clone(),
            stop_rx.clone(),
        )];
        if let Some(listener) = unix_listener {
            agent_tasks.push(serve(listener, agent_routes, agent_limits, stop_rx.clone()));
        }
        let admin_task = serve(
            admin_listener,
            admin::router(admin_state),
            limits(&settings),
            admin_stop_rx,
        );
        let sweeper = liveness::spawn(
            Arc::clone(&exchange),
            settings.sweep_period(),
            settings.stale_after(),
            stop_rx,
        );

        tracing::info!(%agent_addr, %admin_addr, unix_socket = ?settings.unix_socket, node = %settings.node_name, mode = %settings.mode, "OpAMP server listening");
        Ok(RunningServer {
            agent_addr,
            admin_addr,
            unix_socket: settings.unix_socket,
            shutdown_timeout: settings.shutdown_timeout,
            exchange,
            shutting_down,
            stop,
            admin_stop,
            agent_tasks,
            admin_task,
            sweeper,
        })
    }
}

/// The agent listener's request handling, in process ([`ServerBuilder::in_process`]).
pub struct InProcess {
    exchange: Arc<Exchange>,
    router: axum::Router,
}

impl InProcess {
    /// The agent listener's routes (`POST /v1/opamp`, and its 404 and 405), as a tower
    /// service: the same handling as over a socket, minus the connection bounds.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// One decoded message, as the router hands it on; `device_id` reads the
    /// `X-Odigos-DeviceId` header, and is called only when the message needs it. The
    /// outcome's effects are applied to the store on the way, and so come back empty.
    pub async fn handle(
        &self,
        mut msg: AgentToServer,
        device_id: impl FnOnce() -> Option<Result<String, NonUtf8Header>>,
    ) -> Outcome {
        self.exchange
            .handle(&mut msg, device_id, Peer::Unknown)
            .await
    }
}

/// A started server. Dropping it stops the listeners (without flushing the store or
/// removing the socket file); call [`RunningServer::shutdown`] for a graceful stop.
pub struct RunningServer {
    agent_addr: SocketAddr,
    admin_addr: SocketAddr,
    unix_socket: Option<PathBuf>,
    shutdown_timeout: Duration,
    exchange: Arc<Exchange>,
    shutting_down: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    admin_stop: watch::Sender<bool>,
    agent_tasks: Vec<JoinHandle<io::Result<()>>>,
    admin_task: JoinHandle<io::Result<()>>,
    sweeper: JoinHandle<()>,
}

impl RunningServer {
    /// The bound agent TCP address (the real port when 0 was asked for).
    pub fn agent_addr(&self) -> SocketAddr {
        self.agent_addr
    }

    /// `http://<agent_addr>/v1/opamp`.
    pub fn opamp_url(&self) -> String {
        format!("http://{}{OPAMP_PATH}", self.agent_addr)
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The unix socket path, when that listener is enabled.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix_socket.as_deref()
    }

    /// A copy of every connected agent's state.
    pub fn agents(&self) -> Vec<AgentState> {
        self.exchange.registry.snapshot()
    }

    /// Graceful stop: fail `/readyz`, stop accepting, let in-flight requests finish (up to
    /// the shutdown timeout), stop the sweeper, flush the store, remove the socket file,
    /// then stop the admin listener.
    pub async fn shutdown(self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        for task in self.agent_tasks {
            let abort = task.abort_handle();
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::warn!(%error, "agent listener ended with an error"),
                Ok(Err(error)) => tracing::warn!(%error, "agent listener task failed"),
                Err(_) => {
                    tracing::warn!(
                        "in-flight requests still running after {:?}; closing them",
                        self.shutdown_timeout
                    );
                    abort.abort();
                }
            }
        }
        let _ = self.sweeper.await;
        if tokio::time::timeout_at(deadline, self.exchange.store.flush())
            .await
            .is_err()
        {
            tracing::warn!(
                "instance store not flushed within {:?}",
                self.shutdown_timeout
            );
        }
        if let Some(path) = &self.unix_socket
            && let Err(error) = std::fs::remove_file(path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot remove the unix socket");
        }
        let _ = self.admin_stop.send(true);
        let _ = self.admin_task.await;
        tracing::info!("OpAMP server stopped");
    }
}

/// A fresh budget of connections and concurrent requests, with the timeouts.
fn limits(settings: &Settings) -> Limits {
    Limits {
        connections: Arc::new(Semaphore::new(settings.max_connections)),
        requests: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
        deadlines: Deadlines {
            head: settings.header_read_timeout,
            idle: settings.idle_timeout,
        },
        request_timeout: settings.request_timeout,
        counter: None,
    }
}

/// Serve until `stop` turns true, or its sender is dropped (RunningServer dropped).
fn serve<L>(
    listener: L,
    routes: impl transport::serve::Routes,
    limits: Limits,
    stop: watch::Receiver<bool>,
) -> JoinHandle<io::Result<()>>
where
    L: axum::serve::Listener,
    L::Io: transport::serve::PeerOf,
{
    tokio::spawn(transport::serve::serve(listener, routes, limits, stop))
}

async fn bind_tcp(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            listener,
            addr,
            source,
        })
}

/// A listener bound by the caller, made ready for Tokio.
fn adopt_tcp(
    listener: &'static str,
    addr: SocketAddr,
    bound: std::net::TcpListener,
) -> Result<TcpListener, StartError> {
    bound
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(bound))
        .map_err(|source| StartError::Bind {
            listener,
            addr,
            source,
        })
}

fn local_addr(
    listener: &'static str,
    addr: SocketAddr,
    bound: &TcpListener,
) -> Result<SocketAddr, StartError> {
    bound.local_addr().map_err(|source| StartError::Bind {
        listener,
        addr,
        source,
    })
}

/// Bind the unix socket: create its folder, replace a stale socket file (but never a live
/// one, nor a non-socket file), and open it to every local user (mode 0666).
fn bind_unix(path: &Path) -> Result<UnixListener, StartError> {
    let fail = |problem: String| StartError::UnixSocket {
        path: path.to_owned(),
        problem,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(fail("another server is listening on it".into()));
            }
            std::fs::remove_file(path)
                .map_err(|e| fail(format!("cannot remove the stale socket: {e}")))?;
        }
        Ok(_) => {
            return Err(fail(
                "the path exists and is not a socket; remove it or choose another".into(),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| fail(format!("cannot set mode 0666: {e}")))?;
    Ok(listener)
}
