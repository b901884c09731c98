//! Where agents are recorded: the `InstrumentationInstance` resources (docs/protocol.md §6).
//!
//! The server calls [`InstanceStore::apply`] and [`InstanceStore::delete`] from the request
//! path, so they must only enqueue: a store that talks to an API server writes in the
//! background, coalescing per resource (only the newest record of a key matters) and retrying
//! with backoff. [`InstanceStore::flush`] is awaited once, at shutdown.

mod memory;
mod pod_cap;

pub use memory::MemoryStore;
pub use pod_cap::{MAX_INSTANCES_PER_POD, PodCap};

use std::future::Future;
use std::pin::Pin;

use crate::protocol::{InstanceKey, InstanceRecord};

/// Copies of the records a store keeps boxed, for [`InstanceStore::records`].
pub(crate) fn copies<'a>(
    records: impl Iterator<Item = &'a Box<InstanceRecord>>,
) -> Vec<InstanceRecord> {
    records.map(|r| InstanceRecord::clone(r)).collect()
}

/// What a store that writes to a backend (the Kubernetes API) has done so far, for
/// `/metrics`. Request counts include the ones that failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Whole-object writes (one per new resource).
    pub object_applies: u64,
    /// Writes of the status alone.
    pub status_applies: u64,
    pub deletes: u64,
    /// Writes that needed no request: the backend already held that status.
    pub unchanged: u64,
    /// Requests that failed (and were retried).
    pub failures: u64,
    /// Writes pending (retry delays included) or in flight.
    pub outstanding: usize,
}

/// The future returned by [`InstanceStore::flush`].
pub type FlushFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Records agents. Object safe: the server holds an `Arc<dyn InstanceStore>`.
pub trait InstanceStore: Send + Sync + 'static {
    /// Create or replace the resource for `record.key`. Must not block.
    fn apply(&self, record: InstanceRecord);

    /// Delete the resource for `key`, if any. Must not block.
    fn delete(&self, key: &InstanceKey);

    /// Resolve once everything enqueued so far is written, or given up on.
    fn flush(&self) -> FlushFuture<'_>;

    /// The records the store holds (or last wrote), for `GET /agents`.
    fn records(&self) -> Vec<InstanceRecord> {
        Vec::new()
    }

    /// Requests to the backend so far; `None` for a store without one (in memory).
    fn backend_stats(&self) -> Option<BackendStats> {
        None
    }
}
