//! [`InstanceStore`] on the Kubernetes API: one `InstrumentationInstance` per agent process
//! (docs/protocol.md §6).
//!
//! The request path only enqueues ([`KubeStore::apply`], [`KubeStore::delete`] take a
//! mutex for microseconds); workers write in the background:
//!
//! - `queue`: per resource, only the latest state is kept, and it is never dropped;
//! - `writer`: server-side apply of the object once and of `status` on every change,
//!   nothing when the status equals what was last written; when the API server is down all
//!   writers pause with a shared backoff, a refused write is retried alone, later and later;
//! - `book`: the per-pod cap ([`crate::store::PodCap`]), and the records for `GET /agents`;
//! - `resync`: at start-up this node's resources (label `odigos.io/node`) are listed, and
//!   after a grace period (the stale period: live agents re-register within two heartbeat
//!   intervals, answered `ReportFullState` first) the ones no agent came back for are
//!   deleted, except those whose last reason is `NoConnectionToOpAMPServer` (as for stale
//!   agents) and unhealthy ones (they say why a process ended; a listed resource cannot tell
//!   an unhealthy disconnect, kept on purpose, from a crash). What was listed also seeds the
//!   "already written" state, so an agent that comes back unchanged costs no write, and no
//!   live agent's resource is ever deleted and recreated.

mod book;
mod queue;
pub mod resource;
mod resync;
mod writer;

pub use queue::CoalescingQueue;
pub use resync::ResyncReport;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use book::Book;
use resource::ResourceRef;
use writer::{Op, Writer};

use crate::protocol::{InstanceKey, InstanceRecord};
use crate::store::{FlushFuture, InstanceStore, MAX_INSTANCES_PER_POD};

/// Tuning of a [`KubeStore`].
#[derive(Clone, Debug)]
pub struct KubeStoreOptions {
    /// This node's name: labels every resource, and scopes the resync.
    pub node: String,
    /// Concurrent writers.
    pub workers: usize,
    /// Deadline of each API request.
    pub request_timeout: Duration,
    /// Run the start-up resync after this grace period; `None`: no resync.
    pub resync_grace: Option<Duration>,
}

impl KubeStoreOptions {
    /// 4 writers, 10 s requests, resync after the default stale period (75 s).
    pub fn new(node: &str) -> Self {
        KubeStoreOptions {
            node: node.to_owned(),
            workers: 4,
            request_timeout: Duration::from_secs(10),
            resync_grace: Some(Duration::from_secs(75)),
        }
    }
}

/// What the store has done so far: applies are server-side applies, of the whole object
/// or of `status`.
pub type StoreStats = crate::store::BackendStats;

/// `InstrumentationInstance` resources through the Kubernetes API.
pub struct KubeStore {
    book: Mutex<Book>,
    queue: Arc<CoalescingQueue<ResourceRef, Op>>,
    writer: Arc<Writer>,
    resync: watch::Sender<Option<ResyncReport>>,
}

impl KubeStore {
    /// Start the writers (and the resync). They run until the returned tasks are aborted.
    pub fn start(
        client: kube::Client,
        options: KubeStoreOptions,
    ) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let started = tokio::time::Instant::now();
        let writer = Arc::new(Writer::new(
            client,
            options.node.clone(),
            options.request_timeout,
        ));
        let store = Arc::new(KubeStore {
            book: Mutex::new(Book::default()),
            queue: Arc::new(CoalescingQueue::new()),
            writer,
            resync: watch::Sender::new(None),
        });
        let mut tasks: Vec<JoinHandle<()>> = (0..options.workers.max(1))
            .map(|_| tokio::spawn(Arc::clone(&store.writer).run(Arc::clone(&store.queue))))
            .collect();
        if let Some(grace) = options.resync_grace {
            let for_resync = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let report = resync::run(Arc::clone(&for_resync), started, grace).await;
                for_resync.resync.send_replace(Some(report));
            }));
        }
        (store, tasks)
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.writer.counters;
        StoreStats {
            object_applies: c.object_applies.load(Ordering::Relaxed),
            status_applies: c.status_applies.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            unchanged: c.unchanged.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            outstanding: self.queue.outstanding(),
        }
    }

    /// Forget (in memory only) the resources of pods that no longer exist: the API server
    /// deletes those resources with their pod. Returns how many were forgotten.
    pub fn forget_gone_pods(&self, pod_exists: impl Fn(&str, &str) -> bool) -> usize {
        let forgotten = self.book().prune(pod_exists);
        let mut written = self.writer.written();
        for resource in &forgotten {
            written.remove(resource);
        }
        forgotten.len()
    }

    /// Resolves with the resync's report when it has run (never, without a resync).
    pub async fn resync_finished(&self) -> ResyncReport {
        let mut rx = self.resync.subscribe();
        loop {
            if let Some(report) = *rx.borrow_and_update() {
                return report;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`; unreachable, but never spin.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl InstanceStore for KubeStore {
    fn apply(&self, record: InstanceRecord) {
        let resource = ResourceRef::of(&record);
        let mut book = self.book();
        let evicted = book.applied(&record);
        self.queue.push(resource, Op::Apply(Box::new(record)));
        if let Some(evicted) = evicted {
            tracing::info!(resource = %evicted, cap = MAX_INSTANCES_PER_POD, "more InstrumentationInstances for one pod than the cap: deleting the least recently updated");
            self.queue.push(evicted, Op::Delete);
        }
    }

    fn delete(&self, key: &InstanceKey) {
        let resource = ResourceRef {
            namespace: key.namespace.clone(),
            name: key.resource_name(),
        };
        let mut book = self.book();
        book.deleted(&resource, Some(&key.pod), true);
        self.queue.push(resource, Op::Delete);
    }

    fn flush(&self) -> FlushFuture<'_> {
        Box::pin(self.queue.flushed())
    }

    fn backend_stats(&self) -> Option<StoreStats> {
        Some(self.stats())
    }

    fn records(&self) -> Vec<InstanceRecord> {
        self.book().records()
    }
}
