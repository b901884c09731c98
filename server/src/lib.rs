//! The node-local Odigos OpAMP server.
//!
//! Agents (OpenTelemetry SDKs in application containers) poll it with `POST /v1/opamp` over
//! plain HTTP. It tells each agent who it is (resource attributes) and how to configure its
//! instrumentations, tracks the agents in memory, and records each one as an
//! `InstrumentationInstance`. The rules are in `docs/protocol.md`.
//!
//! # Layers
//!
//! - `transport`: HTTP (axum): route, content type, gzip, body limit, status codes.
//! - [`protocol`]: the pure core. `(message, state, identity, config, now)` →
//!   `(response, new state, effects)`. No I/O, no clock.
//! - `registry`: agents in memory, keyed by raw `instance_uid` bytes; liveness sweeping.
//! - Three traits at the edges, each with an embedded implementation:
//!   [`identity::Identity`] ([`identity::StaticTableIdentity`], a device table),
//!   [`config_source::ConfigSource`] ([`config_source::MemoryConfigSource`]) and
//!   [`store::InstanceStore`] ([`store::MemoryStore`]).
//! - Their cluster implementations, in [`kube`] (started together by [`kube::Kubernetes`]):
//!   [`kube::KubeIdentity`] (this node's Pod watch, and the kubelet's PodResources through
//!   [`kubelet::DeviceCache`]), [`kube::KubeConfigSource`] (an `InstrumentationConfig`
//!   watch) and [`kube::KubeStore`] (`InstrumentationInstance` writes in the background, and
//!   the start-up resync). The binary uses them in Kubernetes mode.
//!
//! # Embedding
//!
//! Tests, benchmarks and other crates run the server in-process on OS-chosen ports:
//!
//! ```no_run
//! use std::sync::Arc;
//! use odigos_opamp_server::config_source::MemoryConfigSource;
//! use odigos_opamp_server::identity::{DeviceTable, StaticTableIdentity};
//! use odigos_opamp_server::store::MemoryStore;
//! use odigos_opamp_server::{Server, Settings};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let table = DeviceTable::from_yaml(
//!     "- {deviceId: dev-1, namespace: shop, pod: coupon-abc, container: app, \
//!        workloadKind: Deployment, workloadName: coupon}",
//! )?;
//! let configs = Arc::new(MemoryConfigSource::new()); // keep a handle to change configs
//! let store = Arc::new(MemoryStore::new()); // keep a handle to inspect records
//! let server = Server::builder(Settings::loopback())
//!     .identity(Arc::new(StaticTableIdentity::new(table)))
//!     .config_source(configs.clone())
//!     .store(store.clone())
//!     .start()
//!     .await?;
//! println!("agents post to {}", server.opamp_url());
//! println!("admin (metrics, /agents) on {}", server.admin_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Implementing an edge: [`identity::Identity::resolve`] returns a boxed future (the trait
//! is object safe, called once per new agent, never under a lock);
//! [`config_source::ConfigSource::workload_config`] is synchronous and called on every poll,
//! so answer from memory; [`store::InstanceStore`] methods must only enqueue, with
//! [`store::InstanceStore::flush`] awaited at shutdown.
//!
//! # Where the rules are
//!
//! What the server does on the wire and in the cluster, including every choice the OpAMP
//! specification and Odigos leave open, is `docs/protocol.md`; where in this crate each
//! rule is decided, and which test pins it, is `docs/architecture.md`.

#![warn(unreachable_pub)]

mod admin;
pub mod config_source;
mod exchange;
pub mod identity;
pub mod kube;
pub mod kubelet;
mod liveness;
mod metrics;
pub mod protocol;
mod registry;
mod server;
pub mod settings;
pub mod store;
mod transport;

pub use server::{InProcess, RunningServer, Server, ServerBuilder, StartError};
pub use settings::Settings;
/// The path agents post to.
pub use transport::OPAMP_PATH;
/// `Content-Type` of every protobuf request and answer.
pub use transport::negotiation::PROTOBUF;
/// Whether a request's `Accept-Encoding` allows a gzipped answer (q-values honoured).
pub use transport::negotiation::accepts_gzip;
