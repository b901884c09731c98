//! How long the shipped binary takes from `exec` to answering `/readyz` with 200, on the
//! embedded default (a device table, no cluster).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::ImageError;

/// Longest wait for one start; far above any real start, it only bounds the loop.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Between two probes.
const PROBE_EVERY: Duration = Duration::from_micros(500);

/// The times of several starts.
#[derive(Debug, Clone)]
pub struct Startups(pub Vec<Duration>);

impl Startups {
    pub fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.0.iter().max().copied().unwrap_or_default()
    }
}

/// Start `binary` `runs` times with the device table `devices`, each time until `/readyz`
/// answers 200, then stop it with SIGTERM.
pub fn measure(binary: &Path, devices: &Path, runs: usize) -> Result<Startups, ImageError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ImageError::Io {
            context: "starting a runtime for the probes".into(),
            source,
        })?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(runtime.block_on(one(binary, devices))?);
    }
    Ok(Startups(times))
}

async fn one(binary: &Path, devices: &Path) -> Result<Duration, ImageError> {
    let (agent, admin) = (free_port()?, free_port()?);
    let started = Instant::now();
    let child = Command::new(binary)
        .arg("--listen")
        .arg(agent.to_string())
        .arg("--admin-listen")
        .arg(admin.to_string())
        .arg("--devices")
        .arg(devices)
        .args(["--node-name", "startup-probe", "--log", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ImageError::Spawn {
            program: binary.display().to_string(),
            source,
        })?;
    let mut child = Stopped(child);
    loop {
        if ready(admin).await {
            let elapsed = started.elapsed();
            child.terminate();
            return Ok(elapsed);
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(ImageError::Startup(format!(
                "{} exited ({status}) before /readyz answered",
                binary.display()
            )));
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(ImageError::Startup(format!(
                "/readyz on {admin} did not answer 200 within {START_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// `GET /readyz` answered 200.
async fn ready(admin: SocketAddr) -> bool {
    let Ok(stream) = tokio::net::TcpStream::connect(admin).await else {
        return false;
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(connection);
    let request = hyper::Request::get("/readyz")
        .header(hyper::header::HOST, admin.to_string())
        .body(Empty::new());
    let Ok(request) = request else {
        return false;
    };
    sender
        .send_request(request)
        .await
        .is_ok_and(|response| response.status() == hyper::StatusCode::OK)
}

fn free_port() -> Result<SocketAddr, ImageError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| ImageError::Io {
            context: "finding a free loopback port".into(),
            source,
        })?;
    listener.local_addr().map_err(|source| ImageError::Io {
        context: "finding a free loopback port".into(),
        source,
    })
}

/// A started server, stopped (SIGTERM, then SIGKILL) and reaped when dropped.
struct Stopped(Child);

impl Stopped {
    fn terminate(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill(2) on our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
