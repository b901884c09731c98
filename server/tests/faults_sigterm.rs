//! SIGTERM to the server binary while agents register and report (issue 8, part 4): every
//! answer it gives is complete, it drains and flushes, and exits 0 within the timeout.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/messages.rs"]
mod messages;
#[path = "support/raw_http.rs"]
mod raw_http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use odigos_opamp_proto::opamp::proto::AgentToServer;

use binary::Binary;
use messages::{first_message, health, heartbeat, python_description};

fn uid(writer: usize, n: usize) -> Vec<u8> {
    format!("0192f1e4-term-7000-{writer:04}-{n:012}").into_bytes()
}

/// Registers agents and changes their health (each a resource write) until the server is
/// gone; counts complete answers. An answer cut short after its head panics.
async fn writer(w: usize, addr: SocketAddr, answered: Arc<AtomicUsize>, gone: Arc<AtomicBool>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        if gone.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        let id = uid(w, n);
        let first = AgentToServer {
            agent_description: Some(python_description(&id, &format!("term-{w}-{n}"), "app")),
            ..first_message(&id, 0)
        };
        let unhealthy = AgentToServer {
            health: Some(health(false, "AgentFailure", "injected")),
            ..heartbeat(&id, 1)
        };
        for msg in [first, unhealthy] {
            match raw_http::post(addr, &msg, &[], Duration::from_secs(10)).await {
                Ok(answer) => {
                    assert_eq!(
                        answer.status, 200,
                        "every answer during the stop is a full 200"
                    );
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // Refused or closed before an answer began: the server is stopping.
                    assert_ne!(e.to_string(), "body cut short", "an answer cut short");
                    gone.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_writes_drains_flushes_and_exits_0() {
    let mut server = Binary::start(&["--trust-self-reported", "--shutdown-timeout", "10s"]);
    let addr = server.agent_addr;
    let answered = Arc::new(AtomicUsize::new(0));
    let gone = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(writer(w, addr, Arc::clone(&answered), Arc::clone(&gone))))
        .collect();
    // Traffic first, then the signal in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered.load(Ordering::Relaxed) < 200 {
        assert!(Instant::now() < deadline, "no traffic");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_signal = answered.load(Ordering::Relaxed);
    let status =
        tokio::task::block_in_place(|| server.stop(libc::SIGTERM, Duration::from_secs(15)));
    assert!(status.success(), "exit after SIGTERM: {status}");
    gone.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }

    let logs = server.logs();
    let position = |needle: &str| logs.iter().position(|l| l.contains(needle));
    let stopping = position("\"stopping\"").expect("a 'stopping' line");
    let stopped = position("OpAMP server stopped").expect("a 'stopped' line");
    assert!(stopping < stopped);
    assert!(
        position("not flushed").is_none(),
        "store flushed in time: {logs:#?}"
    );
    assert!(
        position("still running").is_none(),
        "in-flight requests finished: {logs:#?}"
    );
    eprintln!(
        "{} answers before SIGTERM, {} in all",
        at_signal,
        answered.load(Ordering::Relaxed)
    );
}
