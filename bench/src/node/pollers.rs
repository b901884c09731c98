//! A node's agents at their real pace: each one polls every interval on its own HTTP/1.1
//! connection, the agents' turns spread evenly over the interval, as processes started at
//! different times are. A connection the server closed while idle (its keep-alive timeout
//! is shorter than an agent's interval) is opened again at the next poll, as an agent's
//! HTTP client does. The first poll is the agent's first message, then its healthy report;
//! every later one a heartbeat with nothing new.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerToAgentFlags};
use odigos_opamp_server::protocol::InstanceKey;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::pods::{APP_CONTAINER, pod_name};
use crate::agents::{self, AgentId, Process};
use crate::client::{Answer, Reconnecting};
use crate::fleet::Expect;

/// Agent `index` of a node: its pod (agents are spread over the pods, several processes in
/// one container when there are more agents than pods) and its own pid.
#[derive(Clone, Copy, Debug)]
pub struct NodeAgent {
    pub index: usize,
    pub pods: usize,
    pub workloads: usize,
}

impl NodeAgent {
    pub fn pod(self) -> String {
        pod_name(self.index % self.pods.max(1), self.workloads)
    }

    pub fn pid(self) -> i64 {
        AgentId(self.index).pid()
    }

    pub fn uid(self) -> Vec<u8> {
        AgentId(self.index).uid()
    }

    /// The name the server gives this agent's InstrumentationInstance.
    pub fn resource_name(self, namespace: &str) -> String {
        InstanceKey::new(namespace, self.pod(), APP_CONTAINER, self.pid()).resource_name()
    }

    fn first_message(self, uid: &[u8], namespace: &str) -> AgentToServer {
        agents::first_message(
            uid,
            &Process {
                namespace,
                pod: &self.pod(),
                container: APP_CONTAINER,
                pid: self.pid(),
            },
        )
    }
}

/// What the agents got so far, shared with the bench while they run.
#[derive(Debug, Default)]
pub struct Counters {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Agent polls (a registration's two messages count once).
    pub polls: AtomicU64,
    /// TCP connections the agents opened.
    pub connections: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn fail(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(error);
    }
}

/// Agents polling until [`Pollers::stop`].
pub struct Pollers {
    pub counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Pollers {
    /// Start `agents` agents polling `addr` every `interval`; agent `i`'s first poll is
    /// `i / agents` of an interval from now. Their answers are checked as `expect` says.
    pub fn start(
        addr: SocketAddr,
        agents: &[NodeAgent],
        namespace: &str,
        interval: Duration,
        expect: Expect,
    ) -> Pollers {
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let start = Instant::now();
        let count = agents.len().max(1) as u32;
        for (turn, &agent) in agents.iter().enumerate() {
            let offset = interval / count * turn as u32;
            let poller = Poller {
                agent,
                uid: agent.uid(),
                namespace: namespace.to_owned(),
                link: Reconnecting::new(addr),
                counters: Arc::clone(&counters),
                expect,
            };
            tasks.spawn(poller.run(start + offset, interval, stopped.clone()));
        }
        Pollers {
            counters,
            stop,
            tasks,
        }
    }

    /// Stop every agent (a poll in flight completes) and wait for them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

struct Poller {
    agent: NodeAgent,
    uid: Vec<u8>,
    namespace: String,
    link: Reconnecting,
    counters: Arc<Counters>,
    expect: Expect,
}

impl Poller {
    /// Poll at `first`, then every `interval`, until `stopped` turns true.
    async fn run(mut self, first: Instant, interval: Duration, mut stopped: watch::Receiver<bool>) {
        let mut next = first;
        let mut sequence = 0u64;
        // Bounded by `stopped`, which the bench always sets.
        while !*stopped.borrow() {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stopped.changed() => break,
            }
            next += interval;
            let messages = if sequence == 0 {
                sequence = 1;
                vec![
                    (self.agent.first_message(&self.uid, &self.namespace), true),
                    (agents::healthy_report(&self.uid, 1), false),
                ]
            } else {
                sequence += 1;
                vec![(agents::heartbeat(&self.uid, sequence), false)]
            };
            self.counters.polls.fetch_add(1, Ordering::Relaxed);
            for (message, first) in messages {
                match self.send(&message, first).await {
                    Ok(()) => {
                        self.counters.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => self.counters.fail(error),
                }
            }
        }
    }

    /// One message and its reply's checks.
    async fn send(&mut self, message: &AgentToServer, first: bool) -> Result<(), String> {
        let Answer {
            message: answer,
            opened_connection,
        } = self.link.exchange_expecting(message, self.expect).await?;
        if opened_connection {
            self.counters.connections.fetch_add(1, Ordering::Relaxed);
        }
        if self.expect != Expect::OpAmp {
            return Ok(());
        }
        if first && answer.remote_config.is_none() {
            return Err("no remote config in the answer to a first message".into());
        }
        if !first && answer.flags & ServerToAgentFlags::ReportFullState as u64 != 0 {
            return Err("the server asked a registered agent for its full state".into());
        }
        Ok(())
    }
}
