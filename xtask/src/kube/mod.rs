//! A real Kubernetes control plane (etcd + kube-apiserver on 127.0.0.1) that tests start
//! with one call:
//!
//! ```no_run
//! # async fn demo() -> Result<(), xtask::kube::KubeError> {
//! let plane = xtask::kube::ControlPlane::start().await?;
//! let namespace = plane.create_namespace("my-test").await?;
//! let client = plane.odiglet_client().await?; // the server's least-privilege identity
//! # let _ = (namespace, client); Ok(()) }
//! ```
//!
//! Two Kubernetes releases, the ends of the range the server supports ([`KubeVersion`]):
//!
//! - **current** (the default), kube-apiserver v1.37.2 with etcd 3.7.3, both built from the
//!   Go module proxy (needs Go 1.26 or newer; about 7 minutes the first time);
//! - **oldest**, kube-apiserver v1.20.2 built from Debian's source package with Debian's
//!   Go, and Debian's etcd 3.4 (about 5 minutes the first time).
//!
//! [`ControlPlane::start`] runs the one [`VERSION_ENV`] names (`ODIGOS_KUBE_VERSION=current`,
//! `oldest`, `1.37` or `1.20`), [`ControlPlane::start_version`] a given one. Binaries are
//! cached by version in `.cache/kube/`; later starts take a few seconds. `cargo xtask kube
//! up [--version 1.20]` runs one in the background.

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
mod version;
mod workdir;

pub use api_requests::{RequestSample, WRITE_VERBS, metric_samples, request_samples};
pub use binaries::{Binaries, KUBE_VERSION, cache_root, ensure as ensure_binaries};
pub use control_plane::{ControlPlane, ControlPlaneBuilder, ODIGLET_USER, Timings};
pub use error::KubeError;
pub use launch::Ports;
pub use process::rss_kib;
pub use version::{KubeVersion, VERSION_ENV};
