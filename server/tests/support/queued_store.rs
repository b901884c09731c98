//! An instance store that writes in the background, each write taking a while, like one
//! that talks to an API server: `apply`/`delete` only enqueue, `flush` waits for the queue.
//! What it wrote lands in a [`MemoryStore`] that outlives the server, like the API server
//! outlives a restart of ours.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use odigos_opamp_server::protocol::{InstanceKey, InstanceRecord};
use odigos_opamp_server::store::{FlushFuture, InstanceStore, MemoryStore};
use tokio::sync::{Notify, mpsc};

enum Op {
    Apply(Box<InstanceRecord>),
    Delete(InstanceKey),
}

pub struct QueuedStore {
    queue: mpsc::UnboundedSender<Op>,
    pending: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl QueuedStore {
    /// Writes into `backing`, each taking `per_write`. Must run inside a Tokio runtime.
    pub fn new(backing: Arc<MemoryStore>, per_write: Duration) -> Self {
        let (queue, mut rx) = mpsc::unbounded_channel::<Op>();
        let pending = Arc::new(AtomicUsize::new(0));
        let drained = Arc::new(Notify::new());
        let (p, d) = (Arc::clone(&pending), Arc::clone(&drained));
        tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                tokio::time::sleep(per_write).await;
                match op {
                    Op::Apply(record) => backing.apply(*record),
                    Op::Delete(key) => backing.delete(&key),
                }
                if p.fetch_sub(1, Ordering::AcqRel) == 1 {
                    d.notify_waiters();
                }
            }
        });
        QueuedStore {
            queue,
            pending,
            drained,
        }
    }

    /// Writes enqueued and not yet done.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn push(&self, op: Op) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(op).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl InstanceStore for QueuedStore {
    fn apply(&self, record: InstanceRecord) {
        self.push(Op::Apply(Box::new(record)));
    }

    fn delete(&self, key: &InstanceKey) {
        self.push(Op::Delete(key.clone()));
    }

    fn flush(&self) -> FlushFuture<'_> {
        Box::pin(async move {
            loop {
                let drained = self.drained.notified();
                if self.pending() == 0 {
                    return;
                }
                drained.await;
            }
        })
    }
}
