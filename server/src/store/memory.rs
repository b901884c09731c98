//! The embedded [`InstanceStore`]: records in a map, visible through `GET /agents`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::{FlushFuture, InstanceStore};
use crate::protocol::{InstanceKey, InstanceRecord};

/// At most this many records per pod: a crash-looping process gets a new pid each time and
/// must not grow the store without bound. The least recently written record goes first.
pub const MAX_INSTANCES_PER_POD: usize = 16;

#[derive(Debug, Default)]
struct Inner {
    /// Boxed: a B-tree node holds 11 entries, mostly empty, and a record is ~350 bytes.
    records: BTreeMap<InstanceKey, (u64, Box<InstanceRecord>)>,
    writes: u64,
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
        inner
            .records
            .get(key)
            .map(|(_, r)| InstanceRecord::clone(r))
    }
}

impl InstanceStore for MemoryStore {
    fn apply(&self, record: InstanceRecord) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.writes += 1;
        let stamp = inner.writes;
        let key = record.key.clone();
        inner.records.insert(key.clone(), (stamp, Box::new(record)));

        // Keys sort by (namespace, pod, ...), so one pod's records are one range.
        let same_pod = |k: &InstanceKey| k.namespace == key.namespace && k.pod == key.pod;
        let pod_start = InstanceKey {
            container: String::new(),
            pid: i64::MIN,
            ..key.clone()
        };
        let pod_records: Vec<(u64, InstanceKey)> = inner
            .records
            .range(pod_start..)
            .take_while(|(k, _)| same_pod(k))
            .map(|(k, (stamp, _))| (*stamp, k.clone()))
            .collect();
        if pod_records.len() > MAX_INSTANCES_PER_POD
            && let Some((_, oldest)) = pod_records.into_iter().min()
        {
            inner.records.remove(&oldest);
        }
    }

    fn delete(&self, key: &InstanceKey) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.records.remove(key);
    }

    fn flush(&self) -> FlushFuture<'_> {
        Box::pin(std::future::ready(()))
    }

    fn records(&self) -> Vec<InstanceRecord> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .records
            .values()
            .map(|(_, r)| InstanceRecord::clone(r))
            .collect()
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
