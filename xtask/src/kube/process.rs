//! Child processes (etcd, kube-apiserver) that never outlive their owner.
//!
//! Each child runs in its own process group, so a kill reaches anything it
//! forked. A child owned by a test also gets `PR_SET_PDEATHSIG=SIGKILL`: the
//! kernel kills it when its parent dies, even by SIGKILL or Ctrl-C, when no
//! `Drop` runs. That signal fires when the *thread* that forked it exits, so
//! all such children are forked by one thread that lives as long as the
//! process. A detached child (`cargo xtask kube up`) gets a new session instead
//! and outlives us.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use super::error::{Result, io};

/// Who a child's life is tied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed on drop, and by the kernel if this process dies.
    ThisProcess,
    /// Survives this process; stopped by pid (`cargo xtask kube down`).
    Detached,
}

pub(crate) struct Supervised {
    name: &'static str,
    child: Child,
    log: PathBuf,
    released: bool,
}

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The long-lived thread that forks children tied to this process.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("kube-harness-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .map(drop)
            .unwrap_or_else(|err| {
                eprintln!("xtask kube: could not start the spawner thread: {err}")
            });
        Mutex::new(tx)
    })
}

fn spawn_tied(command: Command) -> std::io::Result<Child> {
    let (reply_tx, reply_rx) = mpsc::channel();
    let gone = || std::io::Error::other("the harness's spawner thread is gone");
    spawner()
        .lock()
        .map_err(|_| gone())?
        .send((command, reply_tx))
        .map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}

impl Supervised {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        lifetime: Lifetime,
    ) -> Result<Self> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(format!("opening {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let program = command.get_program().to_string_lossy().into_owned();
        let child = match lifetime {
            Lifetime::ThisProcess => {
                command.process_group(0);
                // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                unsafe {
                    command.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                spawn_tied(command)
            }
            Lifetime::Detached => {
                // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
                unsafe {
                    command.pre_exec(|| {
                        if libc::setsid() < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                command.spawn()
            }
        }
        .map_err(io(format!("starting {name} ({program})")))?;
        Ok(Self {
            name,
            child,
            log: log.to_path_buf(),
            released: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status if the child has already ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL to the child's process group, then reap it.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            kill_group(self.child.id());
        }
        let _ = self.child.wait();
    }

    /// Lets a [`Lifetime::Detached`] child run on after this value is gone.
    pub fn release(mut self) {
        self.released = true;
    }
}

impl Drop for Supervised {
    /// Kills the child unless it was released; runs on panics too, so a failing
    /// test (or a failed `kube up`) leaves nothing behind.
    fn drop(&mut self) {
        if !self.released {
            self.kill();
        }
    }
}

/// SIGKILL to process group `pgid` (each child leads its own group).
pub(crate) fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid)
        && pgid > 1
    {
        // SAFETY: plain syscall; a group that is already gone gives ESRCH, which is fine.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Resident memory of a running process, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
