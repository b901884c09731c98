//! Where agents are recorded: the `InstrumentationInstance` resources (PROTOCOL.md §6).
//!
//! The server calls [`InstanceStore::apply`] and [`InstanceStore::delete`] from the request
//! path, so they must only enqueue: a store that talks to an API server writes in the
//! background, coalescing per resource (only the newest record of a key matters) and retrying
//! with backoff. [`InstanceStore::flush`] is awaited once, at shutdown.

mod memory;

pub use memory::{MAX_INSTANCES_PER_POD, MemoryStore};

use std::future::Future;
use std::pin::Pin;

use crate::protocol::{InstanceKey, InstanceRecord};

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
}
