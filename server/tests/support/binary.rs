//! The server binary as a child process: started with flags, its addresses read from its
//! JSON log, its log lines kept, its memory read from /proc, stopped with a signal.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_odigos-opamp-server");

/// The binary to run: `ODIGOS_OPAMP_TEST_BIN` when set (e.g. a release build, to measure
/// it), else the one cargo built for the tests.
pub fn binary_path() -> std::path::PathBuf {
    std::env::var_os("ODIGOS_OPAMP_TEST_BIN").map_or_else(|| BIN.into(), Into::into)
}

pub struct Binary {
    child: Child,
    pub agent_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        // Only when a test failed before stopping it: never leave it running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Memory of a process, from /proc/<pid>/status, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Binary {
    /// Start with both listeners on loopback ports chosen by the OS, JSON logs, and `args`.
    pub fn start(args: &[&str]) -> Binary {
        Self::start_listening("127.0.0.1:0", args)
    }

    /// Start with the agent listener on `listen` (e.g. the port of a server this one
    /// replaces), the admin listener on a port chosen by the OS.
    pub fn start_listening(listen: &str, args: &[&str]) -> Binary {
        let mut child = Command::new(binary_path())
            .args(["--listen", listen, "--admin-listen", "127.0.0.1:0"])
            .args(["--log-format", "json", "--node-name", "test-node"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the server binary");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        // Every line is kept; the first ones also come here until the addresses are known.
        // The thread keeps draining so the server never blocks on a full pipe.
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        let kept = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line.clone());
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let (agent_addr, admin_addr) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!("no 'listening' log line within 20 s (is the log level info?)"),
            };
            let log: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            if let (Some(agent), Some(admin)) =
                (log["agent_addr"].as_str(), log["admin_addr"].as_str())
            {
                break (
                    agent.parse().expect("agent_addr"),
                    admin.parse().expect("admin_addr"),
                );
            }
        };
        Binary {
            child,
            agent_addr,
            admin_addr,
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// VmRSS and VmHWM of the running server.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc status"))
        };
        Memory {
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
        }
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Send `signal`, then wait (bounded) for the exit.
    pub fn stop(&mut self, signal: libc::c_int, within: Duration) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {within:?} after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
