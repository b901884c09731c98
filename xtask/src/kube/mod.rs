//! A real Kubernetes control plane (etcd + kube-apiserver v1.20 on 127.0.0.1)
//! that tests start with one call:
//!
//! ```no_run
//! # async fn demo() -> Result<(), xtask::kube::KubeError> {
//! let plane = xtask::kube::ControlPlane::start().await?;
//! let namespace = plane.create_namespace("my-test").await?;
//! let client = plane.odiglet_client().await?; // the server's least-privilege identity
//! # let _ = (namespace, client); Ok(()) }
//! ```
//!
//! The first start on a machine builds kube-apiserver from Debian's source
//! package (about 5 minutes) and caches it in `.cache/kube/`; later starts
//! take a few seconds. `cargo xtask kube up` runs one in the background.

mod api_requests;
mod binaries;
mod control_plane;
pub mod daemon;
mod error;
mod kubeconfig;
mod launch;
mod manifests;
mod pki;
mod process;
mod workdir;

pub use api_requests::{RequestSample, WRITE_VERBS, metric_samples, request_samples};
pub use binaries::{
    Binaries, DEBIAN_KUBERNETES, KUBE_VERSION, cache_root, ensure as ensure_binaries,
};
pub use control_plane::{ControlPlane, ControlPlaneBuilder, ODIGLET_USER, Timings};
pub use error::KubeError;
pub use launch::Ports;
pub use process::rss_kib;
