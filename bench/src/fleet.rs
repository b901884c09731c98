//! The simulated agents, spread over a pool of keep-alive connections, and the load phases
//! they run: registration, saturation (closed loop) and a fixed rate (open loop).
//!
//! Agent `i` always uses connection `i % connections`, so one agent's messages are sent one
//! after another and its sequence numbers stay consecutive. A connection carries one request
//! at a time (HTTP/1.1 without pipelining), as an agent's own connection would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use odigos_opamp_proto::opamp::proto::{ServerToAgent, ServerToAgentFlags};
use prost::Message;

use crate::agents::{self, AgentId};
use crate::client::{Reconnecting, Reply};

/// A worker stops a phase after this many failures in a row (e.g. the server died), so a
/// dead server cannot turn the phase into a tight loop of errors.
const MAX_CONSECUTIVE_ERRORS: u32 = 3;
/// Largest latency the histograms hold: one minute, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// What a correct reply looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// An OpAMP server: it echoes each agent's uid, sends a remote config in the first
    /// answer, and never asks a registered agent for its full state.
    OpAmp,
    /// The bare HTTP ceiling: any 200 with a `ServerToAgent` body.
    AnyServerToAgent,
}

/// The results of one phase, over every connection.
#[derive(Debug)]
pub struct PhaseStats {
    /// Requests that got a correct reply.
    pub ok: u64,
    /// Requests that failed or got a wrong reply.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Replies that carried a remote config.
    pub configs: u64,
    /// From the phase's start until its last reply.
    pub elapsed: Duration,
    /// Reply latency in nanoseconds (for the fixed rate: from the intended send time when
    /// the request had to wait for the previous reply, see [`Fleet::fixed_rate`]).
    pub latency: Histogram<u64>,
    /// Fixed rate only: how late the generator's timer sent requests on an idle connection.
    pub send_lag: Histogram<u64>,
}

impl PhaseStats {
    fn new() -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds");
        PhaseStats {
            ok: 0,
            errors: 0,
            first_error: None,
            configs: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
            send_lag: histogram(),
        }
    }

    /// Correct replies per second of the phase.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn record_error(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// One simulated agent as its connection sees it.
struct SimAgent {
    uid: Vec<u8>,
    id: AgentId,
    device_id: HeaderValue,
    /// The last sequence number sent.
    seq: u64,
}

/// A connection and the agents that use it.
struct Worker {
    link: Reconnecting,
    agents: Vec<SimAgent>,
    /// The agent whose heartbeat goes next (round robin).
    next: usize,
    expect: Expect,
}

/// What one message was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    First,
    Heartbeat,
}

impl Worker {
    /// Send agent `index`'s next message and check the reply; `Ok(true)` when it carried a
    /// remote config. A failed request drops the connection; the next one reconnects.
    async fn send(&mut self, index: usize, kind: Kind) -> Result<bool, String> {
        let agent = &mut self.agents[index];
        let message = match kind {
            Kind::First => {
                agent.seq = 0;
                agent.id.first_message(&agent.uid)
            }
            Kind::Heartbeat => {
                agent.seq += 1;
                agents::heartbeat(&agent.uid, agent.seq)
            }
        };
        let body = Bytes::from(message.encode_to_vec());
        let (connection, _) = self.link.connection().await?;
        let reply = match connection.post(body, &agent.device_id).await {
            Ok(reply) => reply,
            Err(error) => {
                self.link.reset();
                return Err(error.to_string());
            }
        };
        check(&reply, &agent.uid, kind, self.expect)
    }
}

fn check(reply: &Reply, uid: &[u8], kind: Kind, expect: Expect) -> Result<bool, String> {
    if reply.status != StatusCode::OK {
        let text = String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)]).into_owned();
        return Err(format!("HTTP {}: {text}", reply.status));
    }
    let response = ServerToAgent::decode(reply.body.clone())
        .map_err(|e| format!("the reply is not a ServerToAgent: {e}"))?;
    let config = response.remote_config.is_some();
    if expect == Expect::OpAmp {
        if response.instance_uid != uid {
            return Err("the reply does not echo the agent's uid".into());
        }
        if kind == Kind::First && !config {
            return Err("no remote config in the answer to a first message".into());
        }
        if kind == Kind::Heartbeat
            && response.flags & ServerToAgentFlags::ReportFullState as u64 != 0
        {
            return Err("the server asked a registered agent for its full state".into());
        }
    }
    Ok(config)
}

/// Where the workers of a phase put their results.
type Shared = Arc<Mutex<PhaseStats>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, PhaseStats> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts of one worker, merged into the shared stats once at its end.
#[derive(Default)]
struct Tally {
    ok: u64,
    configs: u64,
    errors: Vec<String>,
    error_count: u64,
    consecutive_errors: u32,
}

impl Tally {
    /// Count one result; false when the worker should stop.
    fn count(&mut self, result: Result<bool, String>) -> bool {
        match result {
            Ok(config) => {
                self.ok += 1;
                self.configs += u64::from(config);
                self.consecutive_errors = 0;
            }
            Err(error) => {
                self.error_count += 1;
                self.consecutive_errors += 1;
                if self.errors.is_empty() {
                    self.errors.push(error);
                }
            }
        }
        self.consecutive_errors < MAX_CONSECUTIVE_ERRORS
    }

    fn merge_into(self, shared: &Shared) {
        let mut stats = lock(shared);
        stats.ok += self.ok;
        stats.configs += self.configs;
        stats.errors += self.error_count;
        if let Some(error) = self.errors.into_iter().next() {
            stats.first_error.get_or_insert(error);
        }
    }
}

fn record(shared: &Shared, latency: Duration) {
    let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    lock(shared).latency.saturating_record(nanos.max(1));
}

/// The simulated agents of one run against one server.
pub struct Fleet {
    workers: Vec<Worker>,
}

impl Fleet {
    /// `agents` agents over `connections` connections to `addr` (opened on first use).
    pub fn new(addr: SocketAddr, agents: usize, connections: usize, expect: Expect) -> Self {
        let connections = connections.clamp(1, agents.max(1));
        let mut workers: Vec<Worker> = (0..connections)
            .map(|_| Worker {
                link: Reconnecting::new(addr),
                agents: Vec::new(),
                next: 0,
                expect,
            })
            .collect();
        for index in 0..agents {
            let id = AgentId(index);
            let device_id = HeaderValue::from_str(&id.device_id()).expect("device ids are ASCII");
            workers[index % connections].agents.push(SimAgent {
                uid: id.uid(),
                id,
                device_id,
                seq: 0,
            });
        }
        Fleet { workers }
    }

    /// Every agent sends its first message, as fast as the server answers.
    pub async fn register(&mut self) -> PhaseStats {
        self.phase(|mut worker, shared| async move {
            let mut tally = Tally::default();
            for index in 0..worker.agents.len() {
                let sent = Instant::now();
                let result = worker.send(index, Kind::First).await;
                record(&shared, sent.elapsed());
                if !tally.count(result) {
                    break;
                }
            }
            tally.merge_into(&shared);
            worker
        })
        .await
    }

    /// Closed loop: every connection sends heartbeats back to back (its agents in turn)
    /// until `duration` has passed.
    pub async fn saturate(&mut self, duration: Duration) -> PhaseStats {
        let deadline = Instant::now() + duration;
        self.phase(move |mut worker, shared| async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline && !worker.agents.is_empty() {
                let index = worker.next;
                worker.next = (index + 1) % worker.agents.len();
                let sent = Instant::now();
                let result = worker.send(index, Kind::Heartbeat).await;
                record(&shared, sent.elapsed());
                if !tally.count(result) {
                    break;
                }
            }
            tally.merge_into(&shared);
            worker
        })
        .await
    }

    /// Open loop: `rate` heartbeats per second for `duration`, on a fixed schedule that
    /// does not wait for replies, spread over the connections.
    ///
    /// Request `k` is due at `start + k / rate`. When it had to wait for the previous reply
    /// on its connection (the server was slow), its latency counts from when it was due,
    /// so a slow server is not hidden by sending less (coordinated omission). When its
    /// connection was idle, latency counts from the actual send: the generator's timer
    /// (millisecond resolution) is not the server's fault; how late it was is `send_lag`.
    pub async fn fixed_rate(&mut self, rate: f64, duration: Duration) -> PhaseStats {
        let total = (rate * duration.as_secs_f64()).round() as u64;
        let connections = self.workers.len() as u64;
        let start = Instant::now() + Duration::from_millis(5);
        let mut next_worker = 0u64;
        self.phase(move |mut worker, shared| {
            let first = next_worker;
            next_worker += 1;
            async move {
                let mut tally = Tally::default();
                let mut previous_reply = start;
                let mut k = first;
                while k < total && !worker.agents.is_empty() {
                    let due = start + Duration::from_secs_f64(k as f64 / rate);
                    k += connections;
                    if Instant::now() < due {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let sent = Instant::now();
                    let waited_for_server = previous_reply > due;
                    let from = if waited_for_server { due } else { sent };
                    let index = worker.next;
                    worker.next = (index + 1) % worker.agents.len();
                    let result = worker.send(index, Kind::Heartbeat).await;
                    previous_reply = Instant::now();
                    {
                        let mut stats = lock(&shared);
                        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                        stats
                            .latency
                            .saturating_record(nanos(previous_reply - from).max(1));
                        if !waited_for_server {
                            stats.send_lag.saturating_record(nanos(sent - due).max(1));
                        }
                    }
                    if !tally.count(result) {
                        break;
                    }
                }
                tally.merge_into(&shared);
                worker
            }
        })
        .await
    }

    /// Run one task per connection and gather their results.
    async fn phase<F, Fut>(&mut self, mut task: F) -> PhaseStats
    where
        F: FnMut(Worker, Shared) -> Fut,
        Fut: Future<Output = Worker> + Send + 'static,
    {
        let shared: Shared = Arc::new(Mutex::new(PhaseStats::new()));
        let started = Instant::now();
        let handles: Vec<_> = std::mem::take(&mut self.workers)
            .into_iter()
            .map(|worker| tokio::spawn(task(worker, Arc::clone(&shared))))
            .collect();
        let mut panicked = None;
        for handle in handles {
            match handle.await {
                Ok(worker) => self.workers.push(worker),
                Err(error) => panicked = Some(error.to_string()),
            }
        }
        let elapsed = started.elapsed();
        let mut stats = std::mem::replace(&mut *lock(&shared), PhaseStats::new());
        stats.elapsed = elapsed;
        if let Some(error) = panicked {
            stats.record_error(format!("a load task failed: {error}"));
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odigos_opamp_proto::opamp::proto::AgentRemoteConfig;

    fn reply(status: StatusCode, response: &ServerToAgent) -> Reply {
        Reply {
            status,
            body: Bytes::from(response.encode_to_vec()),
        }
    }

    fn answer(uid: &[u8], config: bool, flags: u64) -> ServerToAgent {
        ServerToAgent {
            instance_uid: uid.to_vec(),
            flags,
            remote_config: config.then(AgentRemoteConfig::default),
            ..Default::default()
        }
    }

    #[test]
    fn an_opamp_server_must_echo_the_uid_and_configure_new_agents() {
        let ok = |r: &Reply, kind| check(r, b"a", kind, Expect::OpAmp);
        assert_eq!(
            ok(&reply(StatusCode::OK, &answer(b"a", true, 0)), Kind::First),
            Ok(true)
        );
        assert_eq!(
            ok(
                &reply(StatusCode::OK, &answer(b"a", false, 0)),
                Kind::Heartbeat
            ),
            Ok(false)
        );
        assert!(ok(&reply(StatusCode::OK, &answer(b"b", true, 0)), Kind::First).is_err());
        assert!(ok(&reply(StatusCode::OK, &answer(b"a", false, 0)), Kind::First).is_err());
        let full_state = ServerToAgentFlags::ReportFullState as u64;
        assert!(
            ok(
                &reply(StatusCode::OK, &answer(b"a", false, full_state)),
                Kind::Heartbeat
            )
            .is_err()
        );
        assert!(
            ok(
                &reply(StatusCode::SERVICE_UNAVAILABLE, &answer(b"a", true, 0)),
                Kind::First
            )
            .is_err()
        );
    }

    #[test]
    fn the_ceiling_only_needs_a_server_to_agent() {
        let any = |r: &Reply| check(r, b"a", Kind::First, Expect::AnyServerToAgent);
        assert!(any(&reply(StatusCode::OK, &answer(b"fixed", false, 0))).is_ok());
        let garbage = Reply {
            status: StatusCode::OK,
            body: Bytes::from_static(b"\xff\xff\xff"),
        };
        assert!(any(&garbage).is_err());
    }
}
