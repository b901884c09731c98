//! The one error type of the control-plane harness. Every variant says what
//! went wrong and what to do about it, because the reader is usually a test
//! log on CI.

use std::path::PathBuf;

use crate::tools::ToolError;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error(transparent)]
    Tool(#[from] ToolError),

    #[error(
        "installing Debian packages ({packages}) failed: {detail}\n\
         The harness needs root and Debian's package registry. Install them by hand with \
         `apt-get update && apt-get install -y --no-install-recommends {packages}`, then rerun."
    )]
    Apt { packages: String, detail: String },

    #[error(
        "this machine has no Debian apt sources ({detail}), so the kubernetes source package cannot be fetched. \
         The harness supports Debian 12 (bookworm); put a kube-apiserver v1.20.2 binary at {cache} to skip the build, \
         or use the current Kubernetes (the default), which is built from the Go module proxy."
    )]
    NoAptSources { detail: String, cache: PathBuf },

    #[error(
        "building {what} failed: {detail}\n\
         See {log}. The build needs {needs}; rerun to retry from scratch."
    )]
    Build {
        what: String,
        detail: String,
        log: PathBuf,
        needs: &'static str,
    },

    #[error(
        "building kube-apiserver {kube} needs Go {need} or newer ({why}), but {found}. \
         Install Go {need} or newer (the official tarball, unpacked into /usr/local/go) and put \
         its bin/ first on PATH; or run the oldest supported Kubernetes instead \
         (`{env}=oldest`, `cargo xtask kube up --version 1.20`), which builds with Debian's Go."
    )]
    GoTooOld {
        kube: String,
        need: String,
        why: String,
        found: String,
        env: &'static str,
    },

    #[error(
        "{given:?} names no Kubernetes release the harness runs: use `current` ({}, the default) \
         or `oldest` ({}), or their major.minor, in {} or `cargo xtask kube up --version`",
        crate::pins::KUBE_CURRENT,
        crate::pins::KUBE_OLDEST,
        super::version::VERSION_ENV
    )]
    UnknownVersion { given: String },

    #[error(
        "a control plane of Kubernetes {running} from `cargo xtask kube up` is running already, \
         and {wanted} was asked for; stop it first with `cargo xtask kube down`"
    )]
    OtherVersionRunning { running: String, wanted: String },

    #[error("generating the control plane's certificates and keys: {0}")]
    Pki(#[from] rcgen::Error),

    #[error(
        "{process} exited before the control plane was ready ({status}); last lines of {log}:\n{tail}"
    )]
    Exited {
        process: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("{what} was not ready after {seconds} s; last lines of {log}:\n{tail}")]
    NotReady {
        what: String,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },

    #[error("{what} did not happen within {seconds} s")]
    Timeout { what: String, seconds: u64 },

    #[error("Kubernetes API: {context}: {source}")]
    Api {
        context: String,
        source: Box<kube::Error>,
    },

    #[error("reading the kubeconfig the harness wrote ({path}): {source}")]
    Kubeconfig {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("manifest {source_name}: {message}")]
    Manifest {
        source_name: String,
        message: String,
    },

    #[error("the apiserver is stopped; call `start_apiserver()` first")]
    ApiserverStopped,

    #[error(
        "no control plane from `cargo xtask kube up` is running ({detail}); start one with `cargo xtask kube up`"
    )]
    NotRunning { detail: String },
}

pub type Result<T, E = KubeError> = std::result::Result<T, E>;

/// `map_err` helper for I/O errors that need a "while doing what" context.
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> KubeError {
    let context = context.into();
    move |source| KubeError::Io { context, source }
}

/// `map_err` helper for kube client errors.
pub(crate) fn api(context: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
    let context = context.into();
    move |source| KubeError::Api {
        context,
        source: Box::new(source),
    }
}

impl KubeError {
    /// A process exited because a port we picked was bound by someone else meanwhile.
    pub fn is_port_clash(&self) -> bool {
        matches!(self, KubeError::Exited { tail, .. } if tail.contains("address already in use"))
    }
}
