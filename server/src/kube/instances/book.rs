//! The store's bookkeeping on the request path: the latest record per resource (for
//! `GET /agents`), the resources of each pod (for the per-pod cap, [`PodCap`]), and which
//! resources agents have touched since start (the start-up resync leaves those alone).

use std::collections::{BTreeMap, HashSet};

use super::resource::ResourceRef;
use crate::protocol::InstanceRecord;
use crate::store::PodCap;

#[derive(Debug, Default)]
pub(super) struct Book {
    /// Boxed: B-tree nodes hold 11 entries, mostly empty, and a record is ~350 bytes.
    records: BTreeMap<ResourceRef, Box<InstanceRecord>>,
    pods: PodCap<ResourceRef>,
    claimed: HashSet<ResourceRef>,
}

impl Book {
    /// An agent's record was applied. Returns the pod's least recently applied resource
    /// when the pod is now over the cap: the caller deletes it.
    pub(super) fn applied(&mut self, record: &InstanceRecord) -> Option<ResourceRef> {
        let resource = ResourceRef::of(record);
        self.claimed.insert(resource.clone());
        self.records
            .insert(resource.clone(), Box::new(record.clone()));
        let evicted = self
            .pods
            .written(&record.key.namespace, &record.key.pod, resource)?;
        self.records.remove(&evicted);
        Some(evicted)
    }

    /// A resource is being deleted (by an agent's disconnect or expiry, or the resync).
    pub(super) fn deleted(&mut self, resource: &ResourceRef, pod: Option<&str>, claim: bool) {
        if claim {
            self.claimed.insert(resource.clone());
        }
        self.records.remove(resource);
        self.pods.removed(&resource.namespace, pod, resource);
    }

    /// A resource found at start-up: counted for its pod's cap as the oldest, unless an
    /// agent already touched it.
    pub(super) fn listed(&mut self, resource: &ResourceRef, pod: Option<&str>) {
        if self.claimed.contains(resource) {
            return;
        }
        if let Some(pod) = pod {
            self.pods
                .existing(&resource.namespace, pod, resource.clone());
        }
    }

    /// Forget the resources of pods for which `pod_exists` says no (their resources are
    /// garbage-collected with them), returning them. Keeps the book from growing with the
    /// resources deliberately kept (unhealthy disconnects, lost connections) of pods long gone.
    pub(super) fn prune(&mut self, pod_exists: impl Fn(&str, &str) -> bool) -> Vec<ResourceRef> {
        let forgotten = self.pods.retain_pods(pod_exists);
        for resource in &forgotten {
            self.records.remove(resource);
            self.claimed.remove(resource);
        }
        forgotten
    }

    /// Whether an agent applied or deleted the resource since start.
    pub(super) fn is_claimed(&self, resource: &ResourceRef) -> bool {
        self.claimed.contains(resource)
    }

    /// The latest record of every resource that agents currently have.
    pub(super) fn records(&self) -> Vec<InstanceRecord> {
        crate::store::copies(self.records.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::instance::test_record as record;

    #[test]
    fn a_pod_keeps_at_most_sixteen_and_evicts_the_least_recently_applied() {
        let mut book = Book::default();
        let listed = ResourceRef {
            namespace: "ns".into(),
            name: "web-1.app.999".into(),
        };
        book.listed(&listed, Some("web-1"));
        let mut evicted = Vec::new();
        for pid in 1..=17 {
            // pid 1 is refreshed, so pid 2 is older than it.
            if pid == 3 {
                assert_eq!(book.applied(&record("web-1", 1)), None);
            }
            evicted.extend(book.applied(&record("web-1", pid)));
        }
        assert_eq!(evicted.len(), 2, "{evicted:?}");
        assert_eq!(evicted[0], listed, "the listed one is the oldest");
        assert_eq!(evicted[1].name, "web-1.app.2");
        assert_eq!(book.applied(&record("other", 1)), None);
        assert_eq!(book.records().len(), 16 + 1);
    }

    #[test]
    fn deleted_resources_leave_the_pod_and_claims_protect_from_the_resync() {
        let mut book = Book::default();
        let r = record("web-1", 1);
        book.applied(&r);
        let resource = ResourceRef::of(&r);
        assert!(book.is_claimed(&resource));
        book.deleted(&resource, Some("web-1"), true);
        assert!(book.records().is_empty());
        assert!(book.pods.is_empty());

        book.applied(&record("web-2", 1));
        book.applied(&record("web-3", 1));
        let forgotten = book.prune(|_, pod| pod != "web-2");
        assert_eq!(forgotten, vec![ResourceRef::of(&record("web-2", 1))]);
        assert_eq!(book.records().len(), 1);

        let other = ResourceRef {
            namespace: "ns".into(),
            name: "x".into(),
        };
        book.listed(&other, None);
        assert!(!book.is_claimed(&other));
        book.deleted(&other, None, false);
        assert!(!book.is_claimed(&other));
    }
}
