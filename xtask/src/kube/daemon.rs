//! `cargo xtask kube up|down|env`: one control plane for a developer's shell,
//! running on after xtask exits. Its folder is `.cache/kube/run/`, with a
//! `state.json` naming the pids, so `down` (or the next `up`) can stop it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::binaries::cache_root;
use super::control_plane::ControlPlane;
use super::error::{KubeError, Result, io};
use super::process::kill_group;
use super::version::KubeVersion;

const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// `v1.37.2`; missing in the state of an older xtask, which ran v1.20.2 only.
    #[serde(default)]
    version: Option<String>,
    server: String,
    kubeconfig: PathBuf,
    odiglet_kubeconfig: PathBuf,
    etcd_pid: u32,
    apiserver_pid: u32,
    etcd_exe: PathBuf,
    apiserver_exe: PathBuf,
}

impl State {
    fn processes(&self) -> [(u32, &Path); 2] {
        [
            (self.apiserver_pid, &self.apiserver_exe),
            (self.etcd_pid, &self.etcd_exe),
        ]
    }

    fn all_alive(&self) -> bool {
        self.processes().iter().all(|(pid, exe)| is_ours(*pid, exe))
    }

    fn version(&self) -> &str {
        self.version
            .as_deref()
            .unwrap_or(KubeVersion::Oldest.git_version())
    }
}

/// Env var that moves the run folder, so tests of `kube up` leave a
/// developer's own background control plane alone.
pub const RUN_DIR_ENV: &str = "ODIGOS_KUBE_RUN_DIR";

fn run_dir() -> PathBuf {
    std::env::var_os(RUN_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_root().join("run"))
}

fn state_path() -> PathBuf {
    run_dir().join("state.json")
}

fn read_state() -> Option<State> {
    let text = std::fs::read_to_string(state_path()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `pid` is alive (not a zombie) and runs `exe`, so a recycled pid is never killed.
fn is_ours(pid: u32, exe: &Path) -> bool {
    let running = std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|link| link == exe);
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(true);
    running && !zombie
}

/// Starts the background control plane of `version` (`None`: what
/// [`super::VERSION_ENV`] names, else the current release), or reports the one already
/// running.
pub fn up(version: Option<KubeVersion>) -> Result<()> {
    let version = match version {
        Some(version) => version,
        None => KubeVersion::from_env()?,
    };
    if let Some(state) = read_state() {
        if state.all_alive() {
            if state.version() != version.git_version() {
                return Err(KubeError::OtherVersionRunning {
                    running: state.version().to_owned(),
                    wanted: version.to_string(),
                });
            }
            println!(
                "already running: Kubernetes {} at {} (etcd pid {}, kube-apiserver pid {})",
                state.version(),
                state.server,
                state.etcd_pid,
                state.apiserver_pid
            );
            print_env(&state);
            return Ok(());
        }
        eprintln!("xtask kube: the previous control plane is partly gone; cleaning it up");
    }
    down_quietly()?;
    let runtime = runtime()?;
    let plane = runtime.block_on(
        ControlPlane::builder()
            .version(version)
            .detached_in(run_dir())
            .start(),
    )?;
    let state = State {
        version: Some(plane.version().to_string()),
        server: plane.server_url().to_owned(),
        kubeconfig: plane.kubeconfig_path().to_path_buf(),
        odiglet_kubeconfig: plane.odiglet_kubeconfig_path().to_path_buf(),
        etcd_pid: plane.etcd_pid(),
        apiserver_pid: plane.apiserver_pid().unwrap_or_default(),
        etcd_exe: exe_of(plane.etcd_pid()),
        apiserver_exe: plane.apiserver_pid().map(exe_of).unwrap_or_default(),
    };
    let text = serde_json::to_string_pretty(&state).map_err(|e| KubeError::Io {
        context: "encoding state.json".into(),
        source: e.into(),
    })?;
    // Written before detaching: if this fails, dropping `plane` still stops both processes.
    std::fs::write(state_path(), text)
        .map_err(io(format!("writing {}", state_path().display())))?;
    plane.detach();
    println!(
        "control plane running: Kubernetes {} at {} (etcd pid {}, kube-apiserver pid {})",
        state.version(),
        state.server,
        state.etcd_pid,
        state.apiserver_pid
    );
    println!("admin kubeconfig:   {}", state.kubeconfig.display());
    println!(
        "odiglet kubeconfig: {} (the server's least-privilege identity)",
        state.odiglet_kubeconfig.display()
    );
    println!("stop it with `cargo xtask kube down`; in your shell run:");
    print_env(&state);
    Ok(())
}

/// Prints `export KUBECONFIG=...` for the running control plane.
pub fn env() -> Result<()> {
    match read_state() {
        Some(state) if state.all_alive() => {
            print_env(&state);
            Ok(())
        }
        Some(_) => Err(KubeError::NotRunning {
            detail: "its processes have exited; run `cargo xtask kube down` to clean up".into(),
        }),
        None => Err(KubeError::NotRunning {
            detail: format!("no {}", state_path().display()),
        }),
    }
}

/// Stops the background control plane and deletes its folder.
pub fn down() -> Result<()> {
    if down_quietly()? {
        println!("control plane stopped; {} removed", run_dir().display());
    } else {
        println!("no control plane was running");
    }
    Ok(())
}

/// Kills whatever of ours is still alive and removes the run folder.
/// Returns whether there was anything to stop.
fn down_quietly() -> Result<bool> {
    let state = read_state();
    if let Some(state) = &state {
        let mut killed = Vec::new();
        for (pid, exe) in state.processes() {
            if is_ours(pid, exe) {
                kill_group(pid);
                killed.push(pid);
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        // Waits on the process table, not on `is_ours`: a dying process loses its `exe`
        // link before it is gone, and "stopped" must mean gone.
        while killed.iter().any(|pid| running(*pid)) {
            if Instant::now() >= deadline {
                return Err(KubeError::Timeout {
                    what: "the background etcd and kube-apiserver exiting after SIGKILL".into(),
                    seconds: STOP_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let dir = run_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(format!("removing {}", dir.display())))?;
    }
    Ok(state.is_some())
}

fn print_env(state: &State) {
    println!("export KUBECONFIG={}", state.kubeconfig.display());
}

/// Whether `pid` exists and is not a zombie (which holds nothing but its table entry).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn exe_of(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting a tokio runtime"))
}
