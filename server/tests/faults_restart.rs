//! Faults of the server itself (issue 8, part 4): a restart during traffic, and a stop
//! during writes. The Kubernetes faults (kubelet, API server) are in `faults_kube.rs`.

#[path = "support/messages.rs"]
mod messages;
#[path = "support/queued_store.rs"]
mod queued_store;
#[path = "support/raw_http.rs"]
mod raw_http;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerToAgentFlags};
use odigos_opamp_server::identity::{DeviceTable, StaticTableIdentity};
use odigos_opamp_server::store::{InstanceStore, MemoryStore};
use odigos_opamp_server::{RunningServer, Server, Settings, StartError};
use tokio::sync::Mutex;

use messages::{first_message, heartbeat, python_description};
use queued_store::QueuedStore;

const POLL: Duration = Duration::from_millis(400);
const TIMEOUT: Duration = Duration::from_secs(5);

fn uid(i: usize) -> Vec<u8> {
    format!("0192f1e4-rest-7000-8000-{i:012}").into_bytes()
}

fn full_state(i: usize, seq: u64) -> AgentToServer {
    AgentToServer {
        agent_description: Some(python_description(&uid(i), &format!("pod-{i}"), "app")),
        ..first_message(&uid(i), seq)
    }
}

async fn start(listen: SocketAddr, store: Arc<dyn InstanceStore>) -> RunningServer {
    let settings = Settings {
        listen,
        heartbeat_interval: POLL,
        // Nobody goes stale during the test.
        stale_factor: 100.0,
        ..Settings::loopback()
    };
    // The old listener's port may take a moment to be free again; bounded.
    for _ in 0..50 {
        let identity = StaticTableIdentity::new(DeviceTable::default()).trust_self_reported(true);
        match Server::builder(settings.clone())
            .identity(Arc::new(identity))
            .store(Arc::clone(&store))
            .start()
            .await
        {
            Ok(server) => return server,
            Err(StartError::Bind { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => panic!("server start: {error}"),
        }
    }
    panic!("the agent port did not come free within 5 s");
}

/// What one agent saw: when it was last given its full config, and whether the server
/// asked it for its full state first.
#[derive(Default)]
struct Seen {
    registered_at: Option<Instant>,
    asked_full_state_at: Option<Instant>,
    /// Answers that asked for the full state.
    asked: usize,
    errors: usize,
}

/// An agent like opamp-go's: polls every `POLL`; on ReportFullState it sends its full
/// state right away. Connection errors (the restart) are retried at the next poll.
async fn agent(i: usize, addr: SocketAddr, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let mut seq = 0u64;
    let mut send_full = true;
    // Bounded: stops when told, and after 30 s at the latest.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let msg = if send_full {
            full_state(i, seq)
        } else {
            heartbeat(&uid(i), seq)
        };
        match raw_http::post(addr, &msg, &[], TIMEOUT).await {
            Ok(answer) => {
                assert!(
                    answer.status == 200,
                    "agent {i}: status {} during traffic",
                    answer.status
                );
                let reply = answer.message.expect("a protobuf reply");
                assert_eq!(reply.instance_uid, uid(i));
                let mut seen = seen.lock().await;
                if reply.remote_config.is_some() && send_full {
                    seen.registered_at = Some(Instant::now());
                }
                send_full = reply.flags & ServerToAgentFlags::ReportFullState as u64 != 0;
                if send_full {
                    seen.asked_full_state_at = Some(Instant::now());
                    seen.asked += 1;
                    seq += 1;
                    // Answer a ReportFullState at once, as agents do.
                    continue;
                }
            }
            Err(_) => seen.lock().await.errors += 1,
        }
        seq += 1;
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_traffic_re_registers_every_agent_within_one_poll_without_duplicates() {
    const AGENTS: usize = 20;
    // The API server outlives our restart: one store for both servers.
    let backing = Arc::new(MemoryStore::new());
    let first = start("127.0.0.1:0".parse().unwrap(), backing.clone()).await;
    let addr = first.agent_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..AGENTS).map(|_| Arc::default()).collect();
    let agents: Vec<_> = seen
        .iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(agent(i, addr, Arc::clone(s), Arc::clone(&stop))))
        .collect();

    // All registered with the first server, then a few polls of traffic.
    wait_until(Duration::from_secs(10), || async {
        all(&seen, |s| s.registered_at.is_some()).await
    })
    .await;
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(first.agents().len(), AGENTS);
    assert!(
        all(&seen, |s| s.asked == 0).await,
        "no full state asked before the restart"
    );

    first.shutdown().await;
    let second = start(addr, backing.clone()).await;
    let up = Instant::now();

    // Every agent is asked for its full state and re-registers within one poll interval
    // (plus the request round trips) of the new server coming up.
    wait_until(POLL * 4, || async {
        all(&seen, |s| s.registered_at.is_some_and(|t| t > up)).await
    })
    .await;
    let mut latest = Duration::ZERO;
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().await;
        let registered = s.registered_at.expect("registered");
        let asked = s.asked_full_state_at.expect("asked for the full state");
        assert!(
            asked > up && asked <= registered,
            "agent {i} re-registered through ReportFullState"
        );
        assert_eq!(
            s.asked, 1,
            "agent {i}: asked once, on its first poll after the restart"
        );
        latest = latest.max(registered - up);
    }
    eprintln!(
        "the last of {AGENTS} agents re-registered {latest:?} after the restart (poll {POLL:?})"
    );
    // One poll interval, plus the two round trips and slack for a loaded machine.
    assert!(
        latest <= POLL + Duration::from_millis(600),
        "the last agent re-registered {latest:?} after the restart (poll interval {POLL:?})"
    );
    tokio::time::sleep(POLL * 2).await;
    stop.store(true, Ordering::Relaxed);
    for task in agents {
        task.await.expect("agent task");
    }

    // Exactly one agent and one resource per process: nothing duplicated by the restart.
    assert_eq!(second.agents().len(), AGENTS);
    let records = backing.records();
    let pods: BTreeSet<String> = records.iter().map(|r| r.key.pod.clone()).collect();
    assert_eq!(records.len(), AGENTS, "one resource per agent");
    assert_eq!(pods.len(), AGENTS);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_writes_flushes_every_pending_write() {
    const AGENTS: usize = 40;
    let backing = Arc::new(MemoryStore::new());
    // 25 ms per write: 40 registrations queue a second of writes.
    let queued = Arc::new(QueuedStore::new(backing.clone(), Duration::from_millis(25)));
    let server = start("127.0.0.1:0".parse().unwrap(), queued.clone()).await;
    let addr = server.agent_addr();

    let registrations: Vec<_> = (0..AGENTS)
        .map(|i| {
            tokio::spawn(async move { raw_http::post(addr, &full_state(i, 0), &[], TIMEOUT).await })
        })
        .collect();
    let mut answered = 0;
    for task in registrations {
        let answer = task
            .await
            .expect("task")
            .expect("registered before the stop");
        assert_eq!(answer.status, 200);
        answered += 1;
    }
    let pending = queued.pending();
    assert!(pending > 0, "the stop must come while writes are pending");
    assert!(backing.records().len() < AGENTS);

    server.shutdown().await;
    assert_eq!(queued.pending(), 0, "shutdown waited for the queue");
    assert_eq!(
        backing.records().len(),
        answered,
        "every answered registration is written ({pending} were pending at the stop)"
    );
}

async fn all(seen: &[Arc<Mutex<Seen>>], test: impl Fn(&Seen) -> bool) -> bool {
    for s in seen {
        if !test(&*s.lock().await) {
            return false;
        }
    }
    true
}

async fn wait_until<F, Fut>(limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
