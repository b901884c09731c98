//! Command lines for etcd and kube-apiserver, and the free loopback ports they
//! listen on. Everything binds 127.0.0.1 only.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::error::{KubeError, Result};
use super::pki::Pki;
use super::process::{Supervised, tail};

/// The ports one control plane listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
}

impl Ports {
    /// Three distinct free ports below the kernel's ephemeral range
    /// ([`crate::ports`]); another process can still bind one before we do,
    /// which [`KubeError::is_port_clash`] names.
    pub fn pick() -> Result<Self> {
        let found = crate::ports::stable_loopback_ports(3).map_err(|source| KubeError::Io {
            context: "finding 3 free ports on 127.0.0.1".into(),
            source,
        })?;
        Ok(Self {
            etcd_client: found[0],
            etcd_peer: found[1],
            apiserver: found[2],
        })
    }
}

pub fn etcd_command(etcd: &Path, data_dir: &Path, ports: Ports) -> Command {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let mut cmd = Command::new(etcd);
    cmd.arg("--name=odigos-test")
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=odigos-test={peer}"))
        // Test data is thrown away: no fsync makes writes ~100x cheaper.
        .arg("--unsafe-no-fsync")
        .arg("--log-level=warn");
    cmd
}

pub fn apiserver_command(apiserver: &Path, pki: &Pki, ports: Ports) -> Command {
    let mut cmd = Command::new(apiserver);
    cmd.arg(format!(
        "--etcd-servers=http://127.0.0.1:{}",
        ports.etcd_client
    ))
    .arg("--bind-address=127.0.0.1")
    .arg("--advertise-address=127.0.0.1")
    .arg(format!("--secure-port={}", ports.apiserver))
    .arg(format!("--cert-dir={}", pki.dir.display()))
    .arg(format!("--tls-cert-file={}", pki.serving_cert().display()))
    .arg(format!(
        "--tls-private-key-file={}",
        pki.serving_key().display()
    ))
    .arg(format!("--client-ca-file={}", pki.ca_cert().display()))
    .arg(format!("--token-auth-file={}", pki.tokens().display()))
    .arg("--service-account-issuer=https://kubernetes.default.svc")
    .arg(format!(
        "--service-account-key-file={}",
        pki.sa_public().display()
    ))
    .arg(format!(
        "--service-account-signing-key-file={}",
        pki.sa_private().display()
    ))
    .arg("--api-audiences=https://kubernetes.default.svc")
    .arg("--service-cluster-ip-range=10.0.0.0/24")
    .arg("--authorization-mode=RBAC")
    // No controller-manager runs, so nothing would create the token secrets it waits for.
    .arg("--disable-admission-plugins=ServiceAccount")
    .arg("--enable-priority-and-fairness=false")
    // The `kubernetes` Service cannot point at a loopback address; skip it.
    .arg("--endpoint-reconciler-type=none");
    cmd
}

/// Waits until `port` accepts TCP connections, failing early if `process` exits.
pub async fn wait_for_port(port: u16, process: &mut Supervised, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        ensure_running(process)?;
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(KubeError::NotReady {
                what: format!("{} on 127.0.0.1:{port}", process.name()),
                seconds: timeout.as_secs(),
                log: process.log().to_path_buf(),
                tail: tail(process.log(), 20),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An error carrying the log tail if `process` has exited.
pub fn ensure_running(process: &mut Supervised) -> Result<()> {
    match process.exited() {
        None => Ok(()),
        Some(status) => Err(KubeError::Exited {
            process: process.name(),
            status: status.to_string(),
            log: process.log().to_path_buf(),
            tail: tail(process.log(), 30),
        }),
    }
}
