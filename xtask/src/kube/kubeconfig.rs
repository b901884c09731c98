//! Kubeconfig files for the control plane, and `kube` clients made from them,
//! so tests exercise the same path (`KUBECONFIG`) the server will use.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::{KubeError, Result, io};

/// Writes a kubeconfig that reaches `server` with `token`, trusting the CA
/// certificate at `ca_file`.
pub fn write(path: &Path, server: &str, ca_file: &Path, user: &str, token: &str) -> Result<()> {
    let text = format!(
        "# Written by the xtask control-plane harness; valid while that control plane runs.\n\
         apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: odigos-test\n\
         \x20 cluster:\n\
         \x20   server: {server}\n\
         \x20   certificate-authority: {ca}\n\
         users:\n\
         - name: {user}\n\
         \x20 user:\n\
         \x20   token: {token}\n\
         contexts:\n\
         - name: odigos-test\n\
         \x20 context:\n\
         \x20   cluster: odigos-test\n\
         \x20   user: {user}\n\
         current-context: odigos-test\n",
        ca = ca_file.display(),
    );
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

/// A client configured from the kubeconfig at `path`.
pub async fn client(path: &Path) -> Result<kube::Client> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| fail(Box::new(e)))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(Box::new(e)))?;
    kube::Client::try_from(config).map_err(|e| fail(Box::new(e)))
}
