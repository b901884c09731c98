//! A client program driven over stdio, one JSON value per line, with every
//! wait bounded. Its stderr is kept for error messages; dropping it kills
//! the program.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::InteropError;

/// Proxy settings a client could pick up and route loopback traffic through.
const PROXY_VARIABLES: [&str; 6] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// A running client program.
pub struct LineProcess {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl LineProcess {
    /// Starts `command` with piped stdio.
    pub fn spawn(label: &str, mut command: Command) -> Result<Self, InteropError> {
        for variable in PROXY_VARIABLES {
            command.env_remove(variable);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| InteropError::io(format!("{label}: starting {command:?}"), e))?;
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take();
        std::thread::spawn(move || {
            for line in stdout.into_iter().flat_map(|s| BufReader::new(s).lines()) {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let child_stderr = child.stderr.take();
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            let Some(mut pipe) = child_stderr else { return };
            while let Ok(n @ 1..) = pipe.read(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]);
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&text);
            }
        });
        Ok(LineProcess {
            label: label.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// Writes one value as a JSON line.
    pub fn send<T: Serialize>(&mut self, value: &T) -> Result<(), InteropError> {
        let mut line = serde_json::to_vec(value)
            .map_err(|e| self.failure(format!("cannot encode a line: {e}")))?;
        line.push(b'\n');
        let written = self
            .stdin
            .as_mut()
            .map(|stdin| stdin.write_all(&line).and_then(|()| stdin.flush()));
        match written {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(self.failure(format!("cannot write to its stdin: {e}"))),
            None => Err(self.failure("its stdin is closed".into())),
        }
    }

    /// Waits up to `timeout` for the next stdout line, parsed as `T`.
    pub fn receive<T: DeserializeOwned>(
        &mut self,
        what: &str,
        timeout: Duration,
    ) -> Result<T, InteropError> {
        let line = match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(self.failure(format!("no {what} within {timeout:?}")));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                return Err(self.failure(format!(
                    "exited ({}) before sending {what}",
                    status.map_or("still running".into(), |s| s.to_string())
                )));
            }
        };
        serde_json::from_str(&line)
            .map_err(|e| self.failure(format!("{what} is not the expected JSON ({e}): {line}")))
    }

    /// Sends `value` and waits for the one line that answers it.
    pub fn request<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        value: &Q,
        what: &str,
        timeout: Duration,
    ) -> Result<A, InteropError> {
        self.send(value)?;
        self.receive(what, timeout)
    }

    /// Waits up to `timeout` for the program to exit by itself, successfully.
    pub fn wait_for_exit(mut self, timeout: Duration) -> Result<(), InteropError> {
        self.stdin.take();
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(self.failure(format!("exited with {status}"))),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => return Err(self.failure(format!("still running after {timeout:?}"))),
                Err(e) => return Err(self.failure(format!("cannot wait for it: {e}"))),
            }
        }
    }

    /// An error naming the program, with what it wrote to stderr.
    pub fn failure(&self, problem: String) -> InteropError {
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        InteropError::Client {
            client: self.label.clone(),
            problem,
            stderr: tail(&stderr, 40),
        }
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
