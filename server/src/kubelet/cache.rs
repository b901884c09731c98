//! Device lookups answered from the last kubelet snapshot, refreshed on a miss.
//!
//! A miss waits for a refresh that *starts after* the miss: whoever holds the refresh lock
//! does it, and every miss queued behind it is answered by that same refresh. Refreshes are
//! at least `min_refresh_interval` apart, whether they succeed or fail, so neither a burst of
//! new agents nor an agent with a bogus id can flood the kubelet; a miss inside the interval
//! waits for the next allowed refresh instead of being refused on an old snapshot.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::client::PodResourcesClient;
use super::snapshot::{DeviceOwner, DeviceSnapshot};

/// Tuning of a [`DeviceCache`].
#[derive(Clone, Copy, Debug)]
pub struct DeviceCacheOptions {
    /// Least time between two `List` calls.
    pub min_refresh_interval: Duration,
}

impl Default for DeviceCacheOptions {
    fn default() -> Self {
        DeviceCacheOptions {
            min_refresh_interval: Duration::from_millis(500),
        }
    }
}

/// Why a device id could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceLookupError {
    /// A fresh snapshot does not have it: the client's problem.
    #[error("no container on this node was allocated device {0:?}")]
    Unknown(String),
    /// The kubelet did not answer: try again later.
    #[error("{0}")]
    Unavailable(String),
}

/// A device's owner, and whether the snapshot it came from was taken after the lookup began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub owner: DeviceOwner,
    pub fresh: bool,
}

#[derive(Debug, Default)]
struct RefreshState {
    /// When the last `List` started.
    last_start: Option<Instant>,
    /// Why the last `List` failed, if it did.
    last_error: Option<String>,
}

/// The kubelet's device allocations, cached.
#[derive(Debug)]
pub struct DeviceCache {
    client: PodResourcesClient,
    options: DeviceCacheOptions,
    snapshot: RwLock<Arc<DeviceSnapshot>>,
    refresh: Mutex<RefreshState>,
}

impl DeviceCache {
    /// An empty cache: the first lookup asks the kubelet.
    pub fn new(client: PodResourcesClient, options: DeviceCacheOptions) -> Self {
        DeviceCache {
            client,
            options,
            snapshot: RwLock::new(Arc::new(DeviceSnapshot::default())),
            refresh: Mutex::new(RefreshState::default()),
        }
    }

    /// The last snapshot taken.
    pub fn current(&self) -> Arc<DeviceSnapshot> {
        let guard = self.snapshot.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Find a device: from the cached snapshot, else from a refresh that starts after now.
    pub async fn lookup(&self, device_id: &str) -> Result<Found, DeviceLookupError> {
        if let Some(owner) = self.current().get(device_id) {
            return Ok(Found {
                owner: owner.clone(),
                fresh: false,
            });
        }
        self.lookup_fresh(device_id).await
    }

    /// Find a device in a snapshot taken after this call began (e.g. when a cached answer
    /// named a pod that is gone: the kubelet may have given the id to another container).
    pub async fn lookup_fresh(&self, device_id: &str) -> Result<Found, DeviceLookupError> {
        let asked_at = Instant::now();
        let mut state = self.refresh.lock().await;
        let answered_by_other = state.last_start.is_some_and(|start| start >= asked_at);
        if !answered_by_other {
            if let Some(start) = state.last_start {
                tokio::time::sleep_until(start + self.options.min_refresh_interval).await;
            }
            state.last_start = Some(Instant::now());
            match self.client.list().await {
                Ok(response) => {
                    let snapshot = Arc::new(DeviceSnapshot::from_response(&response));
                    tracing::debug!(
                        devices = snapshot.len(),
                        "kubelet device snapshot refreshed"
                    );
                    *self
                        .snapshot
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = snapshot;
                    state.last_error = None;
                }
                Err(error) => {
                    tracing::warn!(%error, "kubelet device snapshot not refreshed");
                    state.last_error = Some(error.to_string());
                }
            }
        }
        let last_error = state.last_error.clone();
        drop(state);
        // After a failed refresh the snapshot is the old one, which already missed (or
        // named a container that is gone): only the kubelet can answer.
        if let Some(error) = last_error {
            return Err(DeviceLookupError::Unavailable(error));
        }
        match self.current().get(device_id) {
            Some(owner) => Ok(Found {
                owner: owner.clone(),
                fresh: true,
            }),
            None => Err(DeviceLookupError::Unknown(device_id.to_owned())),
        }
    }
}
