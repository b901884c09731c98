//! The node-local Odigos OpAMP server.
//!
//! Agents (OpenTelemetry SDKs in application containers) poll it with `POST /v1/opamp` over
//! plain HTTP. It tells each agent who it is (resource attributes) and how to configure its
//! instrumentations, tracks the agents in memory, and records each one as an
//! `InstrumentationInstance`. The rules are in `docs/protocol.md`.
//!
//! # Layers
//!
//! - [`transport`]: HTTP (axum): route, content type, gzip, body limit, status codes.
//! - [`protocol`]: the pure core. `(message, state, identity, config, now)` →
//!   `(response, new state, effects)`. No I/O, no clock.
//! - [`registry`]: agents in memory, keyed by raw `instance_uid` bytes; liveness sweeping.
//! - Three traits at the edges, each with an embedded implementation:
//!   [`identity::Identity`] ([`identity::StaticTableIdentity`], a device table),
//!   [`config_source::ConfigSource`] ([`config_source::MemoryConfigSource`]) and
//!   [`store::InstanceStore`] ([`store::MemoryStore`]).
//! - Their cluster implementations, in [`kube`] (started together by [`kube::Kubernetes`]):
//!   [`kube::KubeIdentity`] (this node's Pod watch, and the kubelet's PodResources through
//!   [`kubelet::DeviceCache`]), [`kube::KubeConfigSource`] (an `InstrumentationConfig`
//!   watch) and [`kube::KubeStore`] (`InstrumentationInstance` writes in the background, and
//!   the start-up resync). The binary uses them unless `--devices` is given.
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
//! # Decisions where the specification leaves a choice (docs/protocol.md)
//!
//! - **Embedded identity.** Without a cluster, identities come from a device table
//!   (`--devices`). A device id must name a row; self-reported `k8s.*` attributes must match
//!   a row. `--trust-self-reported` (development only) accepts unmatched attributes as a bare
//!   pod. With neither, every new agent is refused with a message saying so.
//! - **Identity errors.** Missing identity, unknown device id, unverified attributes: 401.
//!   Malformed device id, missing `process.pid`/`telemetry.sdk.language`: 400. Transient:
//!   503 with `Retry-After` *and* an `UNAVAILABLE` error response with `retry_info`. Every
//!   error body is a `ServerToAgent` echoing the uid, except 404/405/413/415 (plain text).
//! - **One identity per uid, one uid per process.** An agent registered with a device id
//!   must send it on every message; another device id (or none): 409, nothing changed. A
//!   new uid claiming the (namespace, pod, container, pid) of an agent that polled within
//!   one heartbeat interval: 409; a quieter holder is replaced (the same process
//!   restarted). See SECURITY.md.
//! - **Bounds** ([`Settings`], each a flag): agents (`max_agents`, then 503 with
//!   `Retry-After`), connections (`max_connections`, then 503 and close), requests handled
//!   at once, a header read timeout (also ends idle keep-alive connections) and a request
//!   timeout (408); 16 KiB of request head; 32 KiB of description and health per message
//!   ([`protocol::MAX_RETAINED_BYTES`], else 400).
//! - **Stale agents** are dropped and their resource deleted (as Odigos does), except when
//!   the last reported status is `NoConnectionToOpAMPServer`.
//! - **Disconnect**: deleted when the last known health is healthy or absent; kept (with
//!   that health) when unhealthy.
//! - **Heartbeat interval** is sent in `connection_settings` in the first response only, to
//!   agents that set `ReportsHeartbeat`.
//! - **Response gzip** only when `Accept-Encoding` allows it and the body is at least
//!   [`Settings::gzip_min_bytes`] (256) bytes: gzip only makes a 50-byte acknowledgement bigger.
//! - **Resource names** are `<pod>.<container>.<pid>` (unambiguous: container names have no
//!   dots), with a hashed fallback when that is not a valid name.
//! - **Resource labels**: `instrumented-app` and `ownerPodName` as Odigos, plus
//!   `odigos.io/node: <node>`, which scopes the start-up resync to this node's resources
//!   (values too long for a label get a cleaned prefix and a hash).
//! - **Start-up resync** (Kubernetes): after the stale period, this node's resources that no
//!   agent re-registered are deleted, except `NoConnectionToOpAMPServer` and unhealthy ones
//!   (see [`kube::instances`]). Nothing of a live agent is deleted and recreated.
//! - **Workload of a Job's pod**: the CronJob when the Job's name ends in `-<digits>` (how a
//!   CronJob names its Jobs), else the Job itself: mapping every Job to a CronJob would
//!   misname plain Jobs.

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
