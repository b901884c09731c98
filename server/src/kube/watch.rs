//! Mirroring a watched kind into memory: the list-then-watch loop, relists, and backoff.
//!
//! [`kube::runtime::watcher()`] lists, then watches, and lists again when the watch cannot
//! resume (e.g. after an API server outage). A relist is delivered whole ([`Mirror::replace`])
//! so objects deleted while the watch was down disappear too.
//!
//! Each list is first asked for as a *streaming list* ([`InitialLists::Streaming`]: a watch
//! with `sendInitialEvents=true`, which the API server answers from its watch cache object
//! by object, without building the whole list in memory; on by default since Kubernetes
//! 1.34). An API server that refuses it (1.20 to 1.26, where `resourceVersionMatch` is
//! forbidden on a watch; or one with the `WatchList` feature off) answers that first watch
//! with 400 or 422, and the watch falls back, for the rest of the process's life, to a
//! paged LIST followed by a watch ([`InitialLists::Paged`]). The fallback is decided on that
//! error rather than on `/version`, so a server with the feature turned off is handled too,
//! at the cost of one refused request per watch on the older servers.
//!
//! Both watched kinds (this node's pods, every `InstrumentationConfig`) are kept in a
//! [`ProjectedMirror`]: not the objects, but what the server reads of each (a
//! [`Projection`]), under the key it looks them up by, shared as an `Arc` that stays the same
//! while the value does. kube-runtime's reflector would keep whole objects under their
//! names: every poll would then derive its config again from the object, and an update that
//! changes nothing the server reads (a pod's status, a config's status) would look like a
//! change.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
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

/// What a [`ProjectedMirror`] keeps of each object of a watched kind.
pub trait Projection: Send + Sync + 'static {
    type Object: Resource + Clone + DeserializeOwned + Debug + Send + 'static;
    type Key: Eq + Hash + Clone + Debug + Send + Sync + 'static;
    type Value: PartialEq + Send + Sync + 'static;

    /// The key the object is looked up by; `None` leaves it out.
    fn key(object: &Self::Object) -> Option<Self::Key>;
    /// What is kept of it; `None` leaves it out.
    fn value(object: &Self::Object) -> Option<Self::Value>;
    /// A key's value changed (`None`: removed). Not called for updates that leave the value
    /// as it was, nor for relists.
    fn changed(_key: &Self::Key, _value: Option<&Self::Value>) {}
}

/// A watched kind in memory: the [`Projection`] of each object, by key.
pub struct ProjectedMirror<P: Projection> {
    map: RwLock<HashMap<P::Key, Arc<P::Value>>>,
}

impl<P: Projection> Default for ProjectedMirror<P> {
    fn default() -> Self {
        ProjectedMirror {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<P: Projection> ProjectedMirror<P> {
    /// The value under `key`, if any.
    pub fn get(&self, key: &P::Key) -> Option<Arc<P::Value>> {
        self.read().get(key).cloned()
    }

    /// The first value `matches` accepts, if any (a scan: for the rare lookups that are not
    /// by key).
    pub fn find(&self, matches: impl Fn(&P::Value) -> bool) -> Option<Arc<P::Value>> {
        self.read().values().find(|v| matches(v)).cloned()
    }

    /// Every value `matches` accepts (a scan, like [`Self::find`]).
    pub fn filter(&self, matches: impl Fn(&P::Value) -> bool) -> Vec<Arc<P::Value>> {
        self.read()
            .values()
            .filter(|v| matches(v))
            .cloned()
            .collect()
    }

    /// How many objects are kept.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<P::Key, Arc<P::Value>>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<P::Key, Arc<P::Value>>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<P: Projection> Mirror for ProjectedMirror<P> {
    type Object = P::Object;

    fn upsert(&self, object: P::Object) {
        let Some(key) = P::key(&object) else { return };
        let Some(value) = P::value(&object) else {
            self.remove(&object);
            return;
        };
        let mut map = self.write();
        // An update that changes nothing kept keeps the same Arc, and says nothing.
        if map.get(&key).is_some_and(|current| **current == value) {
            return;
        }
        P::changed(&key, Some(&value));
        map.insert(key, Arc::new(value));
    }

    fn remove(&self, object: &P::Object) {
        let Some(key) = P::key(object) else { return };
        if self.write().remove(&key).is_some() {
            P::changed(&key, None);
        }
    }

    fn replace(&self, objects: Vec<P::Object>) {
        let mut map = self.write();
        let mut fresh = HashMap::with_capacity(objects.len());
        for object in &objects {
            let (Some(key), Some(value)) = (P::key(object), P::value(object)) else {
                continue;
            };
            let shared = match map.remove(&key) {
                Some(current) if *current == value => current,
                _ => Arc::new(value),
            };
            fresh.insert(key, shared);
        }
        *map = fresh;
    }
}

/// How a watch gets its complete lists (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialLists {
    /// No list has completed yet.
    Unknown,
    /// Streaming lists: a watch with `sendInitialEvents=true`, ended by a bookmark.
    Streaming,
    /// A paged LIST, then a watch from its resource version (the API server refused
    /// streaming lists).
    Paged,
}

impl InitialLists {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => InitialLists::Streaming,
            2 => InitialLists::Paged,
            _ => InitialLists::Unknown,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            InitialLists::Unknown => 0,
            InitialLists::Streaming => 1,
            InitialLists::Paged => 2,
        }
    }
}

/// How a watch is doing, for readiness and for callers waiting on a change.
#[derive(Debug, Default)]
pub struct WatchStatus {
    synced: AtomicBool,
    healthy: AtomicBool,
    /// An [`InitialLists`], as `u8`.
    lists: AtomicU8,
    changed: Notify,
}

impl WatchStatus {
    /// How the last complete list arrived.
    pub fn initial_lists(&self) -> InitialLists {
        InitialLists::from_u8(self.lists.load(Ordering::Acquire))
    }

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

/// Mirror `api` (filtered by `config`) into `mirror` until the task is aborted, with
/// streaming lists where the API server offers them. `strip` runs on every object before it
/// is buffered or mirrored (drop what is not needed).
pub fn spawn<M: Mirror>(
    what: &'static str,
    api: Api<M::Object>,
    config: watcher::Config,
    mirror: Arc<M>,
    status: Arc<WatchStatus>,
    strip: fn(&mut M::Object),
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lists = InitialLists::Streaming;
        loop {
            let config = match lists {
                InitialLists::Streaming => config.clone().streaming_lists(),
                _ => config.clone(),
            };
            let watch = Watch {
                what,
                lists,
                mirror: mirror.as_ref(),
                status: status.as_ref(),
            };
            match watch.follow(api.clone(), config, strip).await {
                Some(refusal) => {
                    tracing::info!(what, %refusal, "the API server refuses streaming lists; listing, then watching, instead");
                    lists = InitialLists::Paged;
                }
                None => {
                    tracing::warn!(what, "watch stream ended");
                    return;
                }
            }
        }
    })
}

/// One watcher stream into a mirror.
struct Watch<'a, M: Mirror> {
    what: &'static str,
    lists: InitialLists,
    mirror: &'a M,
    status: &'a WatchStatus,
}

impl<M: Mirror> Watch<'_, M> {
    /// Runs the stream to its end (`None`), or until the API server refuses a streaming list
    /// (`Some`, the error).
    async fn follow(
        &self,
        api: Api<M::Object>,
        config: watcher::Config,
        strip: fn(&mut M::Object),
    ) -> Option<watcher::Error> {
        let (what, status) = (self.what, self.status);
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
                    self.mirror.replace(std::mem::take(&mut buffer));
                    status.lists.store(self.lists.to_u8(), Ordering::Release);
                    if !status.synced.swap(true, Ordering::AcqRel) {
                        tracing::info!(what, count, lists = ?self.lists, "watch synced");
                    }
                    status.event();
                }
                Ok(Event::Apply(object)) => {
                    self.mirror.upsert(object);
                    status.event();
                }
                Ok(Event::Delete(object)) => {
                    self.mirror.remove(&object);
                    status.event();
                }
                Err(error)
                    if self.lists == InitialLists::Streaming && refuses_streaming(&error) =>
                {
                    return Some(error);
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
        None
    }
}

/// Whether `error` is the API server refusing the parameters of a streaming list: a watch
/// that could not start with 400 (Bad Request) or 422 (Invalid). Outages, timeouts, 403
/// and 5xx answers are retried as they are.
fn refuses_streaming(error: &watcher::Error) -> bool {
    matches!(
        error,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
            if status.code == 400 || status.code == 422
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_failed(code: u16) -> watcher::Error {
        let mut status = kube::core::Status::failure("refused", "Invalid");
        status.code = code;
        watcher::Error::WatchStartFailed(kube::Error::Api(status.boxed()))
    }

    #[test]
    fn only_a_refused_watch_start_turns_streaming_lists_off() {
        assert!(refuses_streaming(&start_failed(422)));
        assert!(refuses_streaming(&start_failed(400)));
        for code in [403, 404, 410, 429, 500, 503] {
            assert!(!refuses_streaming(&start_failed(code)), "{code}");
        }
        let mut status = kube::core::Status::failure("refused", "Invalid");
        status.code = 422;
        let listed = watcher::Error::InitialListFailed(kube::Error::Api(status.boxed()));
        assert!(
            !refuses_streaming(&listed),
            "a failed LIST is not about streaming"
        );
    }

    #[test]
    fn the_list_kind_is_kept_as_a_number() {
        for lists in [
            InitialLists::Unknown,
            InitialLists::Streaming,
            InitialLists::Paged,
        ] {
            assert_eq!(InitialLists::from_u8(lists.to_u8()), lists);
        }
        assert_eq!(
            WatchStatus::default().initial_lists(),
            InitialLists::Unknown
        );
    }
}
