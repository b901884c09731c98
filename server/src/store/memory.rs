//! The embedded [`InstanceStore`]: records in a map, visible through `GET /agents`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::{FlushFuture, InstanceStore, PodCap};
use crate::protocol::{InstanceKey, InstanceRecord};

#[derive(Debug, Default)]
struct Inner {
    /// Boxed: a B-tree node holds 11 entries, mostly empty, and a record is ~350 bytes.
    records: BTreeMap<InstanceKey, Box<InstanceRecord>>,
    /// The cap per pod (docs/protocol.md §6).
    pods: PodCap<InstanceKey>,
}

/// Records kept in memory; writes are immediate.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The record for `key`, if any.
    pub fn get(&self, key: &InstanceKey) -> Option<InstanceRecord> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.records.get(key).map(|r| InstanceRecord::clone(r))
    }
}

impl InstanceStore for MemoryStore {
    fn apply(&self, record: InstanceRecord) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let key = record.key.clone();
        inner.records.insert(key.clone(), Box::new(record));
        let (namespace, pod) = (key.namespace.clone(), key.pod.clone());
        if let Some(evicted) = inner.pods.written(&namespace, &pod, key) {
            inner.records.remove(&evicted);
        }
    }

    fn delete(&self, key: &InstanceKey) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.records.remove(key);
        inner.pods.removed(&key.namespace, Some(&key.pod), key);
    }

    fn flush(&self) -> FlushFuture<'_> {
        Box::pin(std::future::ready(()))
    }

    fn records(&self) -> Vec<InstanceRecord> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        super::copies(inner.records.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::instance::test_record as record;

    #[test]
    fn apply_replaces_and_delete_removes() {
        let store = MemoryStore::new();
        store.apply(record("web-1", 7));
        let mut updated = record("web-1", 7);
        updated.status.reason = Some("Healthy".into());
        store.apply(updated.clone());
        assert_eq!(store.records(), vec![updated.clone()]);
        store.delete(&updated.key);
        assert!(store.records().is_empty());
    }

    #[test]
    fn a_crash_looping_pod_keeps_only_its_latest_records() {
        let store = MemoryStore::new();
        store.apply(record("other", 1));
        for pid in 1..=40 {
            store.apply(record("web-1", pid));
        }
        let pids: Vec<i64> = store
            .records()
            .iter()
            .filter(|r| r.key.pod == "web-1")
            .map(|r| r.key.pid)
            .collect();
        assert_eq!(pids, (25..=40).collect::<Vec<_>>());
        assert!(
            store.get(&record("other", 1).key).is_some(),
            "other pods untouched"
        );
    }
}
