//! `cargo xtask bench`: our OpAMP server side by side with an opamp-go peer and a bare hyper
//! server, under the same load from simulated agents, on the same machine.
//!
//! - [`agents`]: who each simulated agent is, its messages, our server's device table.
//! - [`client`]: one keep-alive HTTP/1.1 connection (hyper's low-level client).
//! - [`fleet`]: agents over a pool of connections; registration, saturation (closed loop)
//!   and fixed-rate (open loop, no coordinated omission) phases; hdrhistogram latencies.
//! - [`servers`]: each server as its own process, so CPU time and RSS are its own.
//! - [`procfs`]: CPU time and memory from `/proc`.
//! - [`kube_store`]: the Kubernetes store phase: our server in Kubernetes mode against a
//!   real kube-apiserver, its API requests per agent counted from the API server's metrics.
//! - [`node`]: the node phase: a full node's pods, a few hundred agents at their real
//!   pace, our shipped server in Kubernetes mode: RSS, CPU per agent-hour, API requests per
//!   node-hour (watches included), start-up to ready.
//! - [`run`]: one run: every server in turn, the same phases, then the Kubernetes phases.
//! - [`report`]: JSON, the markdown table, ratios, the targets, BENCHMARKS.md's block.

pub mod agents;
pub mod client;
pub mod fleet;
pub mod kube_store;
pub mod machine;
pub mod node;
pub mod procfs;
pub mod report;
pub mod run;
pub mod servers;
