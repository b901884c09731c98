//! The embedded [`InstanceStore`]: records in a map, visible through `GET /agents`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::{FlushFuture, InstanceStore, PodCap};
use crate::protocol::{InstanceKey, InstanceRecord};

/// A record as the store keeps it: its JSON, as an API server would, in one allocation
/// where the record takes some twenty-five (every attribute's key and value). The store
/// holds every agent's record and reads them rarely (`GET /agents`).
#[derive(Debug)]
struct Kept(Box<[u8]>);

impl Kept {
    fn new(record: &InstanceRecord) -> Self {
        // Strings, numbers, booleans and lists: nothing in a record fails to serialize.
        let json = serde_json::to_vec(record).expect("an instance record serializes");
        Kept(json.into_boxed_slice())
    }

    /// The record back. Written by `new` from the same type, so it reads back; a record
    /// that did not would be a bug here, reported rather than taking the server down.
    fn record(&self) -> Option<InstanceRecord> {
        serde_json::from_slice(&self.0)
            .inspect_err(
                |error| tracing::error!(%error, "a kept instance record does not read back"),
            )
            .ok()
    }
}

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<InstanceKey, Kept>,
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
        inner.records.get(key).and_then(Kept::record)
    }
}

impl InstanceStore for MemoryStore {
    fn apply(&self, record: InstanceRecord) {
        let kept = Kept::new(&record);
        let key = record.key;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.records.insert(key.clone(), kept);
        let held = key.clone();
        if let Some(evicted) = inner.pods.written(&held.namespace, &held.pod, key) {
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
        inner.records.values().filter_map(Kept::record).collect()
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
    fn a_record_reads_back_as_it_was_written_every_field_set() {
        use crate::protocol::instance::{Attribute, Component, ComponentType};
        let attribute = |key: &str, value: &str| Attribute {
            key: key.into(),
            value: value.into(),
        };
        let mut full = record("web-1", 7);
        full.pod_uid = None;
        full.peer_verification = "verified";
        full.status.identifying_attributes = vec![attribute("service.name", "web")];
        full.status.non_identifying_attributes = vec![attribute("os.type", "linux")];
        full.status.healthy = Some(false);
        full.status.message = Some("exporter: \"connection refused\"\n".into());
        full.status.reason = Some("ExporterFailed".into());
        full.status.components = vec![Component {
            name: "exporter".into(),
            kind: ComponentType::Exporter,
            identifying_attributes: vec![attribute("endpoint", "otlp:4318")],
            non_identifying_attributes: Vec::new(),
            healthy: false,
            message: Some("refused".into()),
            reason: None,
            last_status_time: "2026-01-01T00:00:01Z".into(),
        }];
        let store = MemoryStore::new();
        store.apply(full.clone());
        assert_eq!(store.get(&full.key), Some(full.clone()));
        for label in ["unverified", "not-checked"] {
            full.peer_verification = label;
            store.apply(full.clone());
            assert_eq!(store.records(), vec![full.clone()]);
        }
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
