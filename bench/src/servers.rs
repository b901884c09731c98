//! The three servers under test, each run as its own process so that its CPU time and
//! memory are its own: our release binary, the opamp-go peer, and the bare hyper ceiling.
//! ([`ServerKind::Kube`] and [`ServerKind::Node`], our binary in Kubernetes mode, are started
//! by [`crate::kube_store`] and [`crate::node`] against their control plane, through
//! [`ServerProcess::spawn`] and [`ServerProcess::launch`].)

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::fleet::Expect;

/// How long a server may take to accept connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// `odigos-opamp-server` on the embedded default (device table, memory store).
    Ours,
    /// A peer on opamp-go's `server` package doing the same in-memory work.
    OpampGo,
    /// hyper answering every request with a fixed small protobuf: the HTTP ceiling.
    BareHyper,
    /// Another build of our server (e.g. before a change), run with the same flags: for
    /// before/after ratios measured side by side.
    OursBaseline,
    /// Our server with `--peer-verification off`: what verifying each agent's connection
    /// costs, side by side with [`ServerKind::Ours`].
    OursPeerOff,
    /// Not a load phase: our server in Kubernetes mode against a real kube-apiserver, whose
    /// own metrics count the API requests of the `InstrumentationInstance` store
    /// ([`crate::kube_store`]).
    Kube,
    /// Not a load phase: one node's cost at an agent's pace (a full node's pods, a few
    /// hundred agents polling every 10 s), our shipped build in Kubernetes mode.
    Node,
}

impl ServerKind {
    /// The default of a run: the three servers, then the Kubernetes store and node phases.
    pub const ALL: [ServerKind; 5] = [
        ServerKind::Ours,
        ServerKind::OpampGo,
        ServerKind::BareHyper,
        ServerKind::Kube,
        ServerKind::Node,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Ours => "ours",
            ServerKind::OpampGo => "opamp-go",
            ServerKind::BareHyper => "bare-hyper",
            ServerKind::OursBaseline => "ours-baseline",
            ServerKind::OursPeerOff => "ours-peer-off",
            ServerKind::Kube => "kube",
            ServerKind::Node => "node",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            ServerKind::Ours => {
                "odigos-opamp-server, embedded default (device table, memory store)"
            }
            ServerKind::OpampGo => "opamp-go `server` package, same in-memory work in OnMessage",
            ServerKind::BareHyper => "hyper, fixed small protobuf reply (HTTP ceiling)",
            ServerKind::OursBaseline => "odigos-opamp-server, baseline build, same flags",
            ServerKind::OursPeerOff => {
                "odigos-opamp-server, embedded default, --peer-verification off"
            }
            ServerKind::Kube => {
                "odigos-opamp-server, Kubernetes mode against a real kube-apiserver (API requests counted)"
            }
            ServerKind::Node => {
                "odigos-opamp-server (the shipped build), Kubernetes mode, one full node polled at an agent's pace"
            }
        }
    }

    /// What its replies must look like.
    pub fn expect(self) -> Expect {
        match self {
            ServerKind::Ours
            | ServerKind::OpampGo
            | ServerKind::OursBaseline
            | ServerKind::OursPeerOff
            | ServerKind::Kube
            | ServerKind::Node => Expect::OpAmp,
            ServerKind::BareHyper => Expect::AnyServerToAgent,
        }
    }
}

/// Where the three server programs are.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub ours: PathBuf,
    pub opamp_go: PathBuf,
    pub bare_hyper: PathBuf,
    /// Only needed when [`ServerKind::OursBaseline`] runs.
    pub ours_baseline: Option<PathBuf>,
}

/// Why a server could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot find a free loopback port: {0}")]
    Port(std::io::Error),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{server} exited before accepting connections ({status}); its output is in {log}")]
    Exited {
        server: &'static str,
        status: ExitStatus,
        log: PathBuf,
    },
    #[error(
        "{server} did not accept connections on {addr} within {START_TIMEOUT:?}; its output is in {log}"
    )]
    NotReady {
        server: &'static str,
        addr: SocketAddr,
        log: PathBuf,
    },
    #[error("no program given for {0} (--ours-baseline)")]
    NoProgram(&'static str),
    #[error("{0} is started by the Kubernetes phase, with its control plane")]
    NeedsCluster(&'static str),
    #[error("waiting for {server}: {source}")]
    Wait {
        server: &'static str,
        source: std::io::Error,
    },
}

/// The machine's cores, as tokio counts them for its default runtime.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A started server. Dropping it kills the process.
pub struct ServerProcess {
    kind: ServerKind,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Start `kind` on a free loopback port, its output going to `<work_dir>/<name>.log`,
    /// and wait until it accepts connections. `devices` is our server's device table, for
    /// `agents` agents.
    pub async fn start(
        kind: ServerKind,
        binaries: &Binaries,
        work_dir: &Path,
        devices: &Path,
        agents: usize,
    ) -> Result<Self, ServerError> {
        let addr = free_port()?;
        let command = match kind {
            ServerKind::Ours | ServerKind::OursBaseline | ServerKind::OursPeerOff => {
                let program = match kind {
                    ServerKind::Ours | ServerKind::OursPeerOff => &binaries.ours,
                    _ => binaries
                        .ours_baseline
                        .as_ref()
                        .ok_or(ServerError::NoProgram(kind.name()))?,
                };
                let mut command = Command::new(program);
                command
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--admin-listen")
                    .arg(free_port()?.to_string())
                    .arg("--devices")
                    .arg(devices)
                    .args(["--node-name", "bench-node"])
                    // The embedded default caps agents below the bench's 10,000; through the
                    // environment, so a build without the cap still starts.
                    .env("ODIGOS_OPAMP_MAX_AGENTS", agents.max(1).to_string())
                    // One runtime thread per core, as the peers' runtimes have: a node's
                    // default of one would measure a core against their two.
                    .env("ODIGOS_OPAMP_WORKER_THREADS", cores().to_string());
                if kind == ServerKind::OursPeerOff {
                    command.args(["--peer-verification", "off"]);
                }
                command
            }
            ServerKind::OpampGo => {
                let mut command = Command::new(&binaries.opamp_go);
                command.arg("--listen").arg(addr.to_string());
                command
            }
            ServerKind::BareHyper => {
                let mut command = Command::new(&binaries.bare_hyper);
                command.arg("--listen").arg(addr.to_string());
                command
            }
            ServerKind::Kube | ServerKind::Node => {
                return Err(ServerError::NeedsCluster(kind.name()));
            }
        };
        Self::spawn(kind, command, addr, work_dir).await
    }

    /// Start `command`, a server that will listen on `addr`, its output going to
    /// `<work_dir>/<name>.log`, and wait until it accepts connections.
    pub async fn spawn(
        kind: ServerKind,
        command: Command,
        addr: SocketAddr,
        work_dir: &Path,
    ) -> Result<Self, ServerError> {
        let mut server = Self::launch(kind, command, addr, work_dir)?;
        server.wait_ready().await?;
        Ok(server)
    }

    /// [`Self::spawn`] without the wait: for a caller that times the start itself.
    pub fn launch(
        kind: ServerKind,
        mut command: Command,
        addr: SocketAddr,
        work_dir: &Path,
    ) -> Result<Self, ServerError> {
        let log = work_dir.join(format!("{}.log", kind.name()));
        let output = File::create(&log).map_err(|source| ServerError::Io {
            path: log.clone(),
            source,
        })?;
        let errors = output.try_clone().map_err(|source| ServerError::Io {
            path: log.clone(),
            source,
        })?;
        let child = command
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|source| ServerError::Spawn {
                program: PathBuf::from(command.get_program()),
                source,
            })?;
        Ok(ServerProcess {
            kind,
            child,
            addr,
            log,
        })
    }

    async fn wait_ready(&mut self) -> Result<(), ServerError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait()? {
                return Err(ServerError::Exited {
                    server: self.kind.name(),
                    status,
                    log: self.log.clone(),
                });
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ServerError::NotReady {
                    server: self.kind.name(),
                    addr: self.addr,
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Where its output goes.
    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>, ServerError> {
        self.child.try_wait().map_err(|source| ServerError::Wait {
            server: self.kind.name(),
            source,
        })
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`].
    pub async fn stop(mut self) -> Result<ExitStatus, ServerError> {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(libc::pid_t::MAX);
        // SAFETY: kill only sends a signal to our own child, which has not been reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return self.child.wait().map_err(|source| ServerError::Wait {
                    server: self.kind.name(),
                    source,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port nobody listens on now (the OS's choice, released for the server).
pub fn free_port() -> Result<SocketAddr, ServerError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(ServerError::Port)?;
    listener.local_addr().map_err(ServerError::Port)
}
