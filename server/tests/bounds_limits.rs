//! The server's bounds (issue 8, part 3): the agent cap, the connection limit, the header
//! read, idle and request timeouts, the cap on concurrent requests, and their flags.

#[path = "support/client.rs"]
mod client;
#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/messages.rs"]
mod messages;
#[path = "support/server.rs"]
mod server;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use odigos_opamp_proto::opamp::proto::ServerErrorResponseType;
use odigos_opamp_server::Settings;
use odigos_opamp_server::identity::{DeviceTable, StaticTableIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use client::Connection;
use hostile::{normal_agent_is_served, own_pod_message, read_status};
use messages::{disconnect, heartbeat};

async fn start(settings: Settings) -> server::TestServer {
    let identity = StaticTableIdentity::new(DeviceTable::default()).trust_self_reported(true);
    server::start_with(settings, Arc::new(identity)).await
}

fn uid(i: u32) -> Vec<u8> {
    format!("0192f1e4-cap0-7000-8000-{i:012}").into_bytes()
}

#[tokio::test]
async fn new_agents_past_the_cap_get_503_with_retry_after_until_one_leaves() {
    let t = start(Settings {
        max_agents: 3,
        heartbeat_interval: Duration::from_secs(7),
        ..Settings::loopback()
    })
    .await;
    let mut c = Connection::tcp(t.server.agent_addr()).await;
    for i in 0..3 {
        let reply = c
            .post(&own_pod_message(&uid(i), &format!("cap-{i}")), &[])
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let refused = c.post(&own_pod_message(&uid(3), "cap-3"), &[]).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("retry-after"), "7", "one heartbeat interval");
    let msg = refused.message();
    assert_eq!(msg.instance_uid, uid(3));
    let error = msg.error_response.expect("error_response");
    assert_eq!(error.r#type, ServerErrorResponseType::Unavailable as i32);
    assert!(error.details.is_some(), "retry_info");
    assert_eq!(t.server.agents().len(), 3);

    // Known agents are still served at the cap.
    let beat = c.post(&heartbeat(&uid(0), 1), &[]).await;
    assert_eq!((beat.status, beat.message().flags), (StatusCode::OK, 0));

    // One leaves: the refused agent gets in.
    let bye = c.post(&disconnect(&uid(1), 1, None), &[]).await;
    assert_eq!(bye.status, StatusCode::OK);
    let admitted = c.post(&own_pod_message(&uid(3), "cap-3"), &[]).await;
    assert_eq!(admitted.status, StatusCode::OK);
    assert_eq!(t.server.agents().len(), 3);
}

#[tokio::test]
async fn concurrent_new_agents_never_exceed_the_cap() {
    hostile::raise_fd_limit();
    let t = start(Settings {
        max_agents: 50,
        ..Settings::loopback()
    })
    .await;
    let addr = t.server.agent_addr();
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            tokio::spawn(async move {
                let mut c = Connection::tcp(addr).await;
                c.post(&own_pod_message(&uid(i), &format!("race-{i}")), &[])
                    .await
                    .status
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 50, "exactly the cap got in");
    assert_eq!(t.server.agents().len(), 50);
}

/// Open a connection and complete one request on it, so the server has accepted it.
async fn open(addr: std::net::SocketAddr, i: u32) -> Connection {
    let mut c = Connection::tcp(addr).await;
    let reply = c.post(&heartbeat(&uid(100 + i), 0), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    c
}

#[tokio::test]
async fn connections_past_the_limit_get_503_and_are_closed() {
    let t = start(Settings {
        max_connections: 4,
        ..Settings::loopback()
    })
    .await;
    let addr = t.server.agent_addr();
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(open(addr, i).await);
    }
    let mut extra = TcpStream::connect(addr).await.expect("connect");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut answer))
        .await
        .expect("refused and closed promptly")
        .expect("read the refusal");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    client::expect_counted(t.server.admin_addr(), "connection_limit").await;

    // The admin listener has its own budget.
    let health = client::get(t.server.admin_addr(), "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);

    // A closed connection frees its place (polled: the server notices the close).
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut probe = TcpStream::connect(addr).await.expect("connect");
        let request = "POST /v1/opamp HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
                       content-length: 0\r\n\r\n";
        let _ = probe.write_all(request.as_bytes()).await;
        let status = read_status(&mut probe).await;
        if status == Some(400) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no free connection after one closed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_keep_alive_connection_outlives_the_header_read_timeout_and_ends_at_the_idle_timeout() {
    let header_read_timeout = Duration::from_millis(300);
    let idle_timeout = Duration::from_millis(1500);
    let t = start(Settings {
        header_read_timeout,
        idle_timeout,
        ..Settings::loopback()
    })
    .await;
    let mut stream = TcpStream::connect(t.server.agent_addr())
        .await
        .expect("connect");
    let request = "POST /v1/opamp HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n\
                   content-length: 0\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("send");
    // Idle between two requests for well over the header read timeout.
    tokio::time::sleep(header_read_timeout * 3).await;
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the connection is still open for a second request");
    let second_sent = Instant::now();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("the idle connection is closed by the server")
        .expect("read");
    let closed_after = second_sent.elapsed();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 400").count(), 2, "{text}");
    assert!(
        closed_after >= idle_timeout.mul_f64(0.8),
        "closed {closed_after:?} after the last request, before the idle timeout"
    );
}

#[tokio::test]
async fn requests_past_the_concurrency_cap_wait_their_turn() {
    let t = start(Settings {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(2),
        ..Settings::loopback()
    })
    .await;
    let addr = t.server.agent_addr();
    // A slow body holds the only turn until its request timeout.
    let slow = tokio::spawn(hostile::slow_body(addr, Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    let mut c = Connection::tcp(addr).await;
    let reply = c.post(&own_pod_message(&uid(7), "waits"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "answered after {:?}: did not wait for the slow request",
        started.elapsed()
    );
    slow.await.expect("slow body case");
    normal_agent_is_served(addr, 12).await;
}

const BIN: &str = env!("CARGO_BIN_EXE_odigos-opamp-server");

#[test]
fn every_bound_has_a_flag_an_environment_variable_and_a_default() {
    let output = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env, default) in [
        ("--max-agents", "ODIGOS_OPAMP_MAX_AGENTS", "1024"),
        ("--max-connections", "ODIGOS_OPAMP_MAX_CONNECTIONS", "1024"),
        (
            "--max-concurrent-requests",
            "ODIGOS_OPAMP_MAX_CONCURRENT_REQUESTS",
            "16",
        ),
        (
            "--header-read-timeout",
            "ODIGOS_OPAMP_HEADER_READ_TIMEOUT",
            "5s",
        ),
        ("--idle-timeout", "ODIGOS_OPAMP_IDLE_TIMEOUT", "75s"),
        ("--request-timeout", "ODIGOS_OPAMP_REQUEST_TIMEOUT", "10s"),
        ("--max-body-bytes", "ODIGOS_OPAMP_MAX_BODY_BYTES", "4194304"),
    ] {
        let entry = help
            .split("\n      --")
            .find(|e| e.starts_with(&format!("{} ", &flag[2..])) && e.contains(env))
            .unwrap_or_else(|| panic!("{flag} with [env: {env}] in\n{help}"));
        assert!(
            entry.contains(&format!("[default: {default}]")),
            "{flag}: {entry}"
        );
    }
    for (flag, bad) in [
        ("--max-agents", "0"),
        ("--max-connections", "0"),
        ("--max-concurrent-requests", "0"),
        ("--header-read-timeout", "0s"),
        ("--idle-timeout", "0s"),
        ("--request-timeout", "soon"),
    ] {
        let output = Command::new(BIN)
            .args(["--trust-self-reported", flag, bad])
            .output()
            .expect("run");
        assert!(!output.status.success(), "{flag} {bad} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(flag.trim_start_matches('-')),
            "{flag}: {stderr}"
        );
    }
}
