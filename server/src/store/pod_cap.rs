//! docs/protocol.md §6: at most [`MAX_INSTANCES_PER_POD`] resources per pod. A crash-looping
//! process gets a new pid, so a new resource, on every start; the cap keeps that from
//! flooding the store (and the API server). The least recently written resource goes first.
//! Both stores keep the resources of each pod in a [`PodCap`].

use std::collections::HashMap;

/// The most resources kept per pod.
pub const MAX_INSTANCES_PER_POD: usize = 16;

/// The resources of each pod, by when they were last written.
#[derive(Debug)]
pub struct PodCap<R> {
    /// Per (namespace, pod): its resources with the stamp of their last write (0 for the
    /// ones found existing, which count as older than any written).
    pods: HashMap<(String, String), Vec<(u64, R)>>,
    stamp: u64,
}

impl<R> Default for PodCap<R> {
    fn default() -> Self {
        PodCap {
            pods: HashMap::new(),
            stamp: 0,
        }
    }
}

impl<R: PartialEq> PodCap<R> {
    /// `resource` of this pod was written now. Returns the pod's least recently written
    /// resource when the pod is over the cap: the caller deletes it.
    pub fn written(&mut self, namespace: &str, pod: &str, resource: R) -> Option<R> {
        self.stamp += 1;
        let stamp = self.stamp;
        let entries = self.entries(namespace, pod);
        match entries.iter_mut().find(|(_, r)| *r == resource) {
            Some(entry) => entry.0 = stamp,
            None => entries.push((stamp, resource)),
        }
        if entries.len() <= MAX_INSTANCES_PER_POD {
            return None;
        }
        let (oldest, _) = entries.iter().enumerate().min_by_key(|(_, (s, _))| *s)?;
        Some(entries.swap_remove(oldest).1)
    }

    /// `resource` of this pod exists already (found at start-up): it counts for the cap, as
    /// older than any written one.
    pub fn existing(&mut self, namespace: &str, pod: &str, resource: R) {
        let entries = self.entries(namespace, pod);
        if !entries.iter().any(|(_, r)| *r == resource) {
            entries.push((0, resource));
        }
    }

    /// The resources of a pod, an empty list for a new one: room for one, as most pods run
    /// one instrumented process (a first push would reserve four).
    fn entries(&mut self, namespace: &str, pod: &str) -> &mut Vec<(u64, R)> {
        self.pods
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_insert_with(|| Vec::with_capacity(1))
    }

    /// `resource` is gone; of `pod` when known, else looked for in every pod.
    pub fn removed(&mut self, namespace: &str, pod: Option<&str>, resource: &R) {
        let drop_it = |entries: &mut Vec<(u64, R)>| entries.retain(|(_, r)| r != resource);
        match pod {
            Some(pod) => {
                let key = (namespace.to_owned(), pod.to_owned());
                if let Some(entries) = self.pods.get_mut(&key) {
                    drop_it(entries);
                    if entries.is_empty() {
                        self.pods.remove(&key);
                    }
                }
            }
            None => {
                self.pods.values_mut().for_each(drop_it);
                self.pods.retain(|_, entries| !entries.is_empty());
            }
        }
    }

    /// Forget the pods `keep` says no to, returning their resources.
    pub fn retain_pods(&mut self, keep: impl Fn(&str, &str) -> bool) -> Vec<R> {
        let mut forgotten = Vec::new();
        self.pods.retain(|(namespace, pod), entries| {
            let kept = keep(namespace, pod);
            if !kept {
                forgotten.extend(entries.drain(..).map(|(_, r)| r));
            }
            kept
        });
        forgotten
    }

    /// Whether no pod has a resource.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_keeps_the_most_recently_written_and_existing_ones_go_first() {
        let mut cap = PodCap::default();
        cap.existing("ns", "web", 999);
        let mut evicted = Vec::new();
        for pid in 1..=17 {
            if pid == 3 {
                // pid 1 is written again, so pid 2 becomes the oldest written.
                assert_eq!(cap.written("ns", "web", 1), None);
            }
            evicted.extend(cap.written("ns", "web", pid));
        }
        assert_eq!(evicted, [999, 2]);
        assert_eq!(
            cap.written("ns", "other", 1),
            None,
            "pods are counted apart"
        );
        cap.removed("ns", None, &1);
        cap.removed("ns", Some("web"), &5);
        let mut left = cap.retain_pods(|_, _| false);
        left.sort_unstable();
        assert_eq!(left.len(), 14, "{left:?}");
        assert!(cap.is_empty());
    }
}
