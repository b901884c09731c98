//! The in-memory agents, keyed by raw `instance_uid` bytes.
//!
//! A sharded map finds an agent's slot; the slot has its own mutex, so requests of different
//! agents never wait for each other, and one agent's requests are handled one at a time.
//! Locks are only held for the pure handling step, never across an await.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::protocol::AgentState;

/// One agent's state and when it was last heard from.
#[derive(Debug)]
pub struct Slot {
    inner: Mutex<SlotState>,
}

/// The contents of a [`Slot`].
#[derive(Debug)]
pub struct SlotState {
    pub state: AgentState,
    /// Monotonic time of the last message, for liveness.
    pub last_seen: Instant,
    /// Set when the agent was removed (disconnect, expiry) while a request held the slot.
    pub gone: bool,
}

impl Slot {
    /// Lock the slot. A panic while locked cannot leave the state half-written in a way
    /// that matters more than losing the agent, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// All known agents.
#[derive(Debug, Default)]
pub struct Registry {
    agents: DashMap<Box<[u8]>, Arc<Slot>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot of a known uid.
    pub fn get(&self, uid: &[u8]) -> Option<Arc<Slot>> {
        self.agents.get(uid).map(|slot| Arc::clone(&slot))
    }

    /// Add a new agent. When another request added the same uid first, its slot is
    /// returned and this state is dropped.
    pub fn insert(&self, state: AgentState, now: Instant) -> Result<Arc<Slot>, Arc<Slot>> {
        match self
            .agents
            .entry(state.instance_uid.clone().into_boxed_slice())
        {
            Entry::Occupied(existing) => Err(Arc::clone(existing.get())),
            Entry::Vacant(vacant) => {
                let slot = Arc::new(Slot {
                    inner: Mutex::new(SlotState {
                        state,
                        last_seen: now,
                        gone: false,
                    }),
                });
                vacant.insert(Arc::clone(&slot));
                Ok(slot)
            }
        }
    }

    /// Drop an agent whose slot was already marked gone.
    pub fn remove(&self, uid: &[u8], slot: &Arc<Slot>) {
        self.agents
            .remove_if(uid, |_, current| Arc::ptr_eq(current, slot));
    }

    /// Number of known agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether no agent is known.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Remove every agent not heard from for `stale_after`, returning their last states.
    pub fn sweep(&self, now: Instant, stale_after: Duration) -> Vec<AgentState> {
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
    pub fn snapshot(&self) -> Vec<AgentState> {
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
