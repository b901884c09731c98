//! The kubelet's PodResources API (docs/protocol.md §7): which pod and container each Odigos
//! device id was allocated to.
//!
//! - [`PodResourcesClient`]: one `List` call over the kubelet's unix socket, with a deadline.
//! - [`DeviceSnapshot`]: a `List` answer reduced to `device id → (namespace, pod, container)`,
//!   keeping only resources whose name contains `odigos.io`.
//! - [`DeviceCache`]: answers from the last snapshot; on a miss it refreshes, at most once per
//!   interval, and the refresh is shared by every miss waiting for it.

mod cache;
mod client;
mod snapshot;

pub use cache::{DeviceCache, DeviceCacheOptions, DeviceLookupError, Found};
pub use client::{KubeletError, PodResourcesClient};
pub use snapshot::{DeviceOwner, DeviceSnapshot, ODIGOS_RESOURCE_MARKER};

/// Where every kubelet serves the PodResources API.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
