//! The embedded [`InstanceStore`]: records in a map, visible through `GET /agents`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::{FlushFuture, InstanceStore, PodCap};
use crate::protocol::instance::{InstanceStatus, KeyNames, Label, verification_label};
use crate::protocol::{InstanceKey, InstanceRecord};

/// A record as the store keeps it: its JSON, as an API server would, in one allocation
/// where the record takes some twenty-five (every attribute's key and value). The store
/// holds every agent's record and reads them rarely (`GET /agents`). The fields the map's
/// key gives (the key and the names that follow from it, a fifth of the JSON) are left
/// out, unless a record's names do not follow from its key (none the core makes).
#[derive(Debug)]
enum Kept {
    /// [`Unkeyed`]'s JSON.
    Unkeyed(Box<[u8]>),
    /// The whole record's JSON.
    Whole(Box<[u8]>),
}

/// A record without what its key gives, as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Unkeyed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_uid: Option<&'a str>,
    instrumented_app: &'a str,
    peer_verification: &'a str,
    status: &'a InstanceStatus,
}

/// [`Unkeyed`] read back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnkeyedRead {
    #[serde(default)]
    pod_uid: Option<String>,
    instrumented_app: String,
    #[serde(deserialize_with = "verification_label")]
    peer_verification: Label,
    status: InstanceStatus,
}

impl Kept {
    fn new(record: &InstanceRecord) -> Self {
        // Strings, numbers, booleans and lists: nothing in a record fails to serialize.
        let json = if record.names_follow_key() {
            serde_json::to_vec(&Unkeyed {
                pod_uid: record.pod_uid.as_deref(),
                instrumented_app: &record.instrumented_app,
                peer_verification: record.peer_verification,
                status: &record.status,
            })
            .map(|json| Kept::Unkeyed(json.into_boxed_slice()))
        } else {
            serde_json::to_vec(record).map(|json| Kept::Whole(json.into_boxed_slice()))
        };
        json.expect("an instance record serializes")
    }

    /// The record of `key` back. Written by `new` from the same types, so it reads back; a
    /// record that did not would be a bug here, reported rather than taking the server down.
    fn record(&self, key: &InstanceKey) -> Option<InstanceRecord> {
        let read = match self {
            Kept::Whole(json) => serde_json::from_slice(json),
            Kept::Unkeyed(json) => {
                serde_json::from_slice::<UnkeyedRead>(json).map(|rest| with_key(key, rest))
            }
        };
        read.inspect_err(
            |error| tracing::error!(%error, "a kept instance record does not read back"),
        )
        .ok()
    }
}

/// The record of `key` from the rest of it.
fn with_key(key: &InstanceKey, rest: UnkeyedRead) -> InstanceRecord {
    let KeyNames {
        name,
        container_name,
        owner_pod_name,
    } = KeyNames::of(key);
    InstanceRecord {
        key: key.clone(),
        name,
        container_name,
        pod_uid: rest.pod_uid,
        instrumented_app: rest.instrumented_app,
        owner_pod_name,
        peer_verification: rest.peer_verification,
        status: rest.status,
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
        inner.records.get(key).and_then(|kept| kept.record(key))
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
        inner
            .records
            .iter()
            .filter_map(|(key, kept)| kept.record(key))
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
        assert!(
            matches!(Kept::new(&full), Kept::Unkeyed(_)),
            "the key's fields are left out"
        );
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
    fn a_record_whose_names_do_not_follow_its_key_is_kept_whole() {
        let mut odd = record("web-1", 7);
        odd.owner_pod_name = "web-0".into();
        assert!(!odd.names_follow_key());
        let store = MemoryStore::new();
        store.apply(odd.clone());
        assert_eq!(store.get(&odd.key), Some(odd));
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
