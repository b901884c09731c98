//! A per-key coalescing work queue: the latest value of a key wins, and is never dropped.
//!
//! - `push` replaces a key's pending value (a write not yet made is simply superseded).
//! - A key is handed to one worker at a time; a value pushed meanwhile waits for it.
//! - A failed value goes back, unless a newer one arrived in the meantime; it can be parked
//!   for a while (a per-key retry delay), and a newer value unparks the key at once.
//! - `flushed` resolves when nothing is pending (parked or not) or in flight.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

struct Pending<V> {
    value: V,
    /// Failed attempts of this value.
    attempts: u32,
    /// Waiting out a retry delay; `Some(epoch)` names the timer that may unpark it.
    parked: Option<u64>,
}

struct Inner<K, V> {
    pending: HashMap<K, Pending<V>>,
    ready: VecDeque<K>,
    in_flight: HashSet<K>,
    epoch: u64,
}

/// See the module docs.
pub struct CoalescingQueue<K, V> {
    inner: Mutex<Inner<K, V>>,
    work: Notify,
    outstanding: watch::Sender<usize>,
}

/// A value taken from the queue; give it back with `done` or `retry`.
#[derive(Debug)]
pub struct Taken<K, V> {
    pub key: K,
    pub value: V,
    pub attempts: u32,
}

impl<K, V> Default for CoalescingQueue<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Send + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> CoalescingQueue<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Send + 'static,
{
    pub fn new() -> Self {
        CoalescingQueue {
            inner: Mutex::new(Inner {
                pending: HashMap::new(),
                ready: VecDeque::new(),
                in_flight: HashSet::new(),
                epoch: 0,
            }),
            work: Notify::new(),
            outstanding: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Values pending (parked ones included: they are the latest state, and a flush at
    /// shutdown is bounded by the caller) or in flight.
    fn update_outstanding(&self, inner: &Inner<K, V>) {
        let count = inner.pending.len() + inner.in_flight.len();
        self.outstanding
            .send_if_modified(|n| std::mem::replace(n, count) != count);
    }

    /// Set `key`'s value, replacing any pending one. Returns whether one was replaced.
    pub fn push(&self, key: K, value: V) -> bool {
        let mut inner = self.lock();
        let replaced = match inner.pending.get_mut(&key) {
            Some(pending) => {
                let was_parked = pending.parked.take().is_some();
                pending.value = value;
                pending.attempts = 0;
                if was_parked && !inner.in_flight.contains(&key) {
                    inner.ready.push_back(key);
                }
                true
            }
            None => {
                let in_flight = inner.in_flight.contains(&key);
                inner.pending.insert(
                    key.clone(),
                    Pending {
                        value,
                        attempts: 0,
                        parked: None,
                    },
                );
                if !in_flight {
                    inner.ready.push_back(key);
                }
                false
            }
        };
        self.update_outstanding(&inner);
        drop(inner);
        self.work.notify_one();
        replaced
    }

    /// The next ready value; waits until there is one.
    pub async fn next(&self) -> Taken<K, V> {
        // Each turn either returns or waits for a push; `notify_one` keeps a permit when
        // nobody waits, so a push between the check and the wait is not missed.
        loop {
            if let Some(taken) = self.try_next() {
                return taken;
            }
            self.work.notified().await;
        }
    }

    fn try_next(&self) -> Option<Taken<K, V>> {
        let mut inner = self.lock();
        while let Some(key) = inner.ready.pop_front() {
            let Some(pending) = inner.pending.remove(&key) else {
                continue;
            };
            inner.in_flight.insert(key.clone());
            // Another worker may take the next one.
            if !inner.ready.is_empty() {
                self.work.notify_one();
            }
            return Some(Taken {
                key,
                value: pending.value,
                attempts: pending.attempts,
            });
        }
        None
    }

    /// The value of `key` was handled.
    pub fn done(&self, key: &K) {
        let mut inner = self.lock();
        inner.in_flight.remove(key);
        if inner.pending.contains_key(key) {
            inner.ready.push_back(key.clone());
            self.work.notify_one();
        }
        self.update_outstanding(&inner);
    }

    /// The value of `key` failed: keep it for another attempt (after `delay`, if given),
    /// unless a newer value was pushed meanwhile, which then goes next.
    pub fn retry(self: &Arc<Self>, taken: Taken<K, V>, delay: Option<Duration>) {
        let mut inner = self.lock();
        let key = taken.key;
        inner.in_flight.remove(&key);
        if inner.pending.contains_key(&key) {
            inner.ready.push_back(key);
            self.work.notify_one();
        } else {
            let parked = delay.map(|_| {
                inner.epoch += 1;
                inner.epoch
            });
            inner.pending.insert(
                key.clone(),
                Pending {
                    value: taken.value,
                    attempts: taken.attempts.saturating_add(1),
                    parked,
                },
            );
            match (delay, parked) {
                (Some(delay), Some(epoch)) => {
                    let queue = Arc::clone(self);
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        queue.unpark(&key, epoch);
                    });
                }
                _ => {
                    inner.ready.push_back(key);
                    self.work.notify_one();
                }
            }
        }
        self.update_outstanding(&inner);
    }

    fn unpark(&self, key: &K, epoch: u64) {
        let mut inner = self.lock();
        let Some(pending) = inner.pending.get_mut(key) else {
            return;
        };
        if pending.parked == Some(epoch) {
            pending.parked = None;
            inner.ready.push_back(key.clone());
            self.update_outstanding(&inner);
            drop(inner);
            self.work.notify_one();
        }
    }

    /// Values pending or in flight (a key can have one of each).
    pub fn outstanding(&self) -> usize {
        *self.outstanding.borrow()
    }

    /// Resolves when nothing is pending or in flight.
    pub async fn flushed(&self) {
        let mut rx = self.outstanding.subscribe();
        // Only fails when the sender is gone, which `self` prevents.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Arc<CoalescingQueue<&'static str, u32>> {
        Arc::new(CoalescingQueue::new())
    }

    #[tokio::test]
    async fn the_latest_value_of_a_key_wins() {
        let q = queue();
        assert!(!q.push("a", 1));
        assert!(q.push("a", 2));
        q.push("b", 1);
        let first = q.next().await;
        assert_eq!((first.key, first.value), ("a", 2));
        let second = q.next().await;
        assert_eq!((second.key, second.value), ("b", 1));
        assert!(q.try_next().is_none());
        q.done(&"a");
        q.done(&"b");
        assert_eq!(q.outstanding(), 0);
    }

    #[tokio::test]
    async fn a_key_in_flight_is_not_handed_out_twice() {
        let q = queue();
        q.push("a", 1);
        let taken = q.next().await;
        q.push("a", 2);
        assert!(q.try_next().is_none(), "a is in flight");
        assert_eq!(q.outstanding(), 2, "one in flight, one pending");
        q.done(&taken.key);
        let next = q.next().await;
        assert_eq!(next.value, 2);
        q.done(&"a");
        q.flushed().await;
    }

    #[tokio::test]
    async fn a_failed_value_comes_back_unless_superseded() {
        let q = queue();
        q.push("a", 1);
        let taken = q.next().await;
        q.retry(taken, None);
        let again = q.next().await;
        assert_eq!((again.value, again.attempts), (1, 1));
        q.push("a", 2);
        q.retry(again, None);
        let newest = q.next().await;
        assert_eq!((newest.value, newest.attempts), (2, 0));
        assert!(q.try_next().is_none(), "the failed older value was dropped");
        q.done(&"a");
        assert_eq!(q.outstanding(), 0);
    }

    #[tokio::test]
    async fn a_parked_value_waits_its_delay_and_a_newer_value_unparks_it() {
        let delay = Duration::from_millis(100);
        let q = queue();
        q.push("a", 1);
        let taken = q.next().await;
        let parked_at = tokio::time::Instant::now();
        q.retry(taken, Some(delay));
        assert!(q.try_next().is_none(), "parked");
        assert_eq!(q.outstanding(), 1, "a parked value is still to be written");
        let again = q.next().await;
        assert!(parked_at.elapsed() >= delay);
        assert_eq!(again.value, 1);

        q.retry(again, Some(Duration::from_secs(3600)));
        q.push("a", 7);
        let newest = tokio::time::timeout(delay, q.next())
            .await
            .expect("not parked");
        assert_eq!(newest.value, 7, "a push does not wait for the delay");
        q.done(&"a");
        q.flushed().await;
    }

    #[tokio::test]
    async fn an_old_timer_does_not_unpark_a_newer_parking() {
        let q = queue();
        q.push("a", 1);
        let taken = q.next().await;
        q.retry(taken, Some(Duration::from_millis(50)));
        q.push("a", 2);
        let taken = q.next().await;
        q.retry(taken, Some(Duration::from_secs(3600)));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            q.try_next().is_none(),
            "still parked by the second, longer delay"
        );
    }
}
