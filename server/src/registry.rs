//! The in-memory agents, keyed by raw `instance_uid` bytes.
//!
//! A sharded map finds an agent's slot; the slot has its own mutex, so requests of different
//! agents never wait for each other, and one agent's requests are handled one at a time.
//! Locks are only held for the pure handling step, never across an await.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::protocol::AgentState;
use crate::protocol::instance::{InstanceKey, instance_key};

/// One agent's state and when it was last heard from.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The agent's resource key; fixed at registration (identity and pid never change).
    key: InstanceKey,
    inner: Mutex<SlotState>,
}

/// The contents of a [`Slot`].
#[derive(Debug)]
pub(crate) struct SlotState {
    pub state: AgentState,
    /// Monotonic time of the last message, for liveness.
    pub last_seen: Instant,
    /// Set when the agent was removed (disconnect, expiry) while a request held the slot.
    pub gone: bool,
    /// The `X-Odigos-DeviceId` the agent registered with: its later messages must carry
    /// it, so a uid cannot be taken over from another device.
    pub device_id: Option<Box<str>>,
}

impl Slot {
    /// Lock the slot. A panic while locked cannot leave the state half-written in a way
    /// that matters more than losing the agent, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// All known agents, at most `max_agents` of them.
#[derive(Debug)]
pub(crate) struct Registry {
    agents: DashMap<Box<[u8]>, Arc<Slot>>,
    /// Which uid holds each resource key, so a new agent's claim is checked without a scan.
    holders: DashMap<InstanceKey, Box<[u8]>>,
    /// Kept beside the map: `DashMap::len` locks every shard.
    count: AtomicUsize,
    max_agents: usize,
}

/// Why [`Registry::insert`] did not add an agent.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Another request added the same uid first.
    Exists,
    /// The registry holds `max_agents` agents.
    Full,
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_max_agents(usize::MAX)
    }
}

impl Registry {
    /// A registry that refuses new agents once it holds `max_agents`.
    pub(crate) fn with_max_agents(max_agents: usize) -> Self {
        Registry {
            agents: DashMap::new(),
            holders: DashMap::new(),
            count: AtomicUsize::new(0),
            max_agents,
        }
    }

    /// Whether a new agent would be refused now.
    pub(crate) fn is_full(&self) -> bool {
        self.count.load(Ordering::Acquire) >= self.max_agents
    }

    /// The slot of a known uid.
    pub(crate) fn get(&self, uid: &[u8]) -> Option<Arc<Slot>> {
        self.agents.get(uid).map(|slot| Arc::clone(&slot))
    }

    /// Add a new agent. When another request added the same uid first, or the registry is
    /// full, this state is dropped.
    /// Register an agent. With `hold`, it takes its resource key over; without, it only
    /// does when no live agent holds the key (a claimant that waits for the holder).
    pub(crate) fn insert(
        &self,
        state: AgentState,
        device_id: Option<Box<str>>,
        now: Instant,
        hold: bool,
    ) -> Result<Arc<Slot>, Refused> {
        match self
            .agents
            .entry(state.instance_uid.clone().into_boxed_slice())
        {
            Entry::Occupied(_) => Err(Refused::Exists),
            Entry::Vacant(vacant) => {
                let reserved = self
                    .count
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < self.max_agents).then_some(n + 1)
                    });
                if reserved.is_err() {
                    return Err(Refused::Full);
                }
                let key = instance_key(&state);
                let uid = vacant.key().clone();
                let slot = Arc::new(Slot {
                    key: key.clone(),
                    inner: Mutex::new(SlotState {
                        state,
                        last_seen: now,
                        gone: false,
                        device_id,
                    }),
                });
                vacant.insert(Arc::clone(&slot));
                if hold {
                    // A displaced holder was replaced by the caller before.
                    self.holders.insert(key, uid);
                } else {
                    self.holders.entry(key).or_insert(uid);
                }
                Ok(slot)
            }
        }
    }

    /// Drop an agent whose slot was already marked gone.
    pub(crate) fn remove(&self, uid: &[u8], slot: &Arc<Slot>) {
        let removed = self
            .agents
            .remove_if(uid, |_, current| Arc::ptr_eq(current, slot));
        if removed.is_some() {
            self.count.fetch_sub(1, Ordering::AcqRel);
            self.holders
                .remove_if(&slot.key, |_, holder| &**holder == uid);
        }
    }

    /// Number of known agents.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// The live agent other than `uid` that holds resource `key`, if any.
    /// Whether `uid` may write resource `key`: it holds it, or nobody does (and it takes it).
    pub(crate) fn may_write(&self, key: &InstanceKey, uid: &[u8]) -> bool {
        let holder = self.holders.get(key).map(|h| h.value().clone());
        match holder {
            Some(holder) if &*holder == uid => true,
            Some(holder) if self.get(&holder).is_some_and(|slot| !slot.lock().gone) => false,
            _ => {
                self.holders.insert(key.clone(), uid.into());
                true
            }
        }
    }

    /// A live agent other than `uid` whose resource key is `key` (a claimant that waits for
    /// the holder to go), if any.
    pub(crate) fn waiting_for(&self, key: &InstanceKey, uid: &[u8]) -> Option<Arc<Slot>> {
        self.agents
            .iter()
            .find(|e| e.value().key == *key && &**e.key() != uid && !e.value().lock().gone)
            .map(|e| Arc::clone(e.value()))
    }

    pub(crate) fn holder_of(
        &self,
        key: &InstanceKey,
        uid: &[u8],
    ) -> Option<(Box<[u8]>, Arc<Slot>)> {
        let holder = self.holders.get(key).map(|h| h.value().clone())?;
        if &*holder == uid {
            return None;
        }
        let slot = self.get(&holder)?;
        if slot.lock().gone {
            return None;
        }
        Some((holder, slot))
    }

    /// Remove every agent not heard from for `stale_after`, returning their last states.
    pub(crate) fn sweep(&self, now: Instant, stale_after: Duration) -> Vec<AgentState> {
        let candidates: Vec<(Box<[u8]>, Arc<Slot>)> = self
            .agents
            .iter()
            .map(|e| (e.key().clone(), Arc::clone(e.value())))
            .collect();
        let mut expired = Vec::new();
        for (uid, slot) in candidates {
            let state = {
                let mut inner = slot.lock();
                if inner.gone || now.saturating_duration_since(inner.last_seen) < stale_after {
                    continue;
                }
                inner.gone = true;
                inner.state.clone()
            };
            self.remove(&uid, &slot);
            expired.push(state);
        }
        expired
    }

    /// A copy of every agent's state, sorted by uid (for `GET /agents`).
    pub(crate) fn snapshot(&self) -> Vec<AgentState> {
        let slots: Vec<Arc<Slot>> = self.agents.iter().map(|e| Arc::clone(e.value())).collect();
        let mut states: Vec<AgentState> = slots
            .iter()
            .filter_map(|slot| {
                let inner = slot.lock();
                (!inner.gone).then(|| inner.state.clone())
            })
            .collect();
        states.sort_by(|a, b| a.instance_uid.cmp(&b.instance_uid));
        states
    }
}
