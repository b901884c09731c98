//! Mirroring a watched kind into memory: the list-then-watch loop, relists, and backoff.
//!
//! [`kube::runtime::watcher()`] lists, then watches, and lists again when the watch cannot
//! resume (e.g. after an API server outage). A relist is delivered whole ([`Mirror::replace`])
//! so objects deleted while the watch was down disappear too.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::backoff::Backoff;

/// Retries of a failed list or watch: quick at first, at most every 5 s during an outage.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Where a watch's objects go.
pub trait Mirror: Send + Sync + 'static {
    type Object: Resource + Clone + DeserializeOwned + Debug + Send + 'static;

    /// An object was added or changed.
    fn upsert(&self, object: Self::Object);
    /// An object was deleted.
    fn remove(&self, object: &Self::Object);
    /// A complete list: everything else is gone.
    fn replace(&self, objects: Vec<Self::Object>);
}

/// How a watch is doing, for readiness and for callers waiting on a change.
#[derive(Debug, Default)]
pub struct WatchStatus {
    synced: AtomicBool,
    healthy: AtomicBool,
    changed: Notify,
}

impl WatchStatus {
    /// The first complete list has arrived.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Synced, and no error since the last event: the mirror can be trusted to be current.
    pub fn is_healthy(&self) -> bool {
        self.is_synced() && self.healthy.load(Ordering::Acquire)
    }

    /// A future that resolves at the next change of the mirror. Call `enable` on it (or poll
    /// it) *before* looking at the mirror, so a change in between is not missed.
    pub fn next_change(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn event(&self) {
        self.healthy.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }
}

/// Mirror `api` (filtered by `config`) into `mirror` until the task is aborted.
/// `strip` runs on every object before it is buffered or mirrored (drop what is not needed).
pub fn spawn<M: Mirror>(
    what: &'static str,
    api: Api<M::Object>,
    config: watcher::Config,
    mirror: Arc<M>,
    status: Arc<WatchStatus>,
    strip: fn(&mut M::Object),
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stream = watcher::watcher(api, config)
            .modify(strip)
            .backoff(Backoff::new(RETRY_MIN, RETRY_MAX));
        let mut stream = std::pin::pin!(stream);
        let mut buffer = Vec::new();
        // Bounded by the task's life: it runs until the server stops and aborts it.
        while let Some(item) = stream.next().await {
            match item {
                Ok(Event::Init) => buffer.clear(),
                Ok(Event::InitApply(object)) => buffer.push(object),
                Ok(Event::InitDone) => {
                    let count = buffer.len();
                    mirror.replace(std::mem::take(&mut buffer));
                    if !status.synced.swap(true, Ordering::AcqRel) {
                        tracing::info!(what, count, "watch synced");
                    }
                    status.event();
                }
                Ok(Event::Apply(object)) => {
                    mirror.upsert(object);
                    status.event();
                }
                Ok(Event::Delete(object)) => {
                    mirror.remove(&object);
                    status.event();
                }
                Err(error) => {
                    if status.healthy.swap(false, Ordering::AcqRel) {
                        tracing::warn!(what, %error, "watch failed; retrying with backoff, serving from memory meanwhile");
                    } else {
                        tracing::debug!(what, %error, "watch still failing");
                    }
                }
            }
        }
        tracing::warn!(what, "watch stream ended");
    })
}
