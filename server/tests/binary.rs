//! The `odigos-opamp-server` binary: flags and environment variables, JSON logs, the
//! embedded default answering a first message, and graceful shutdown on SIGTERM / SIGINT.

#[path = "support/binary.rs"]
mod binary_support;
#[path = "support/client.rs"]
mod client;
#[path = "support/messages.rs"]
mod messages;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_odigos-opamp-server");

#[test]
fn help_explains_every_flag_and_its_environment_variable() {
    let output = Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--listen", "ODIGOS_OPAMP_LISTEN"),
        ("--unix-socket", "ODIGOS_OPAMP_UNIX_SOCKET"),
        ("--admin-listen", "ODIGOS_OPAMP_ADMIN_LISTEN"),
        ("--devices", "ODIGOS_OPAMP_DEVICES"),
        ("--trust-self-reported", "ODIGOS_OPAMP_TRUST_SELF_REPORTED"),
        ("--mode", "ODIGOS_OPAMP_MODE"),
        ("--no-kubelet", "ODIGOS_OPAMP_NO_KUBELET"),
        ("--peer-verification", "ODIGOS_OPAMP_PEER_VERIFICATION"),
        (
            "--admin-show-credentials",
            "ODIGOS_OPAMP_ADMIN_SHOW_CREDENTIALS",
        ),
        ("--node-name", "ODIGOS_OPAMP_NODE_NAME"),
        ("--heartbeat-interval", "ODIGOS_OPAMP_HEARTBEAT_INTERVAL"),
        ("--stale-factor", "ODIGOS_OPAMP_STALE_FACTOR"),
        ("--max-body-bytes", "ODIGOS_OPAMP_MAX_BODY_BYTES"),
        ("--shutdown-timeout", "ODIGOS_OPAMP_SHUTDOWN_TIMEOUT"),
        ("--log-format", "ODIGOS_OPAMP_LOG_FORMAT"),
        ("--log", "ODIGOS_OPAMP_LOG"),
    ] {
        assert!(
            help.contains(flag) && help.contains(&format!("[env: {env}")),
            "{flag} / {env} in\n{help}"
        );
    }
    assert!(help.contains("[default: 0.0.0.0:4320]"), "{help}");
}

/// Each mode's flags are refused in the other mode, with a message that names the fix.
#[test]
fn the_flags_of_the_other_mode_are_refused() {
    let refused = |args: &[&str], says: &str| {
        let output = Command::new(BIN)
            .args(args)
            .env_remove("ODIGOS_OPAMP_MODE")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    let devices = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/devices.yaml");
    refused(
        &[
            "--mode",
            "kubernetes",
            "--trust-self-reported",
            "--node-name",
            "n",
        ],
        "--trust-self-reported is refused in Kubernetes mode",
    );
    refused(
        &[
            "--mode",
            "kubernetes",
            "--devices",
            devices,
            "--node-name",
            "n",
        ],
        "--devices is for embedded mode",
    );
    refused(
        &["--devices", devices, "--no-kubelet"],
        "for Kubernetes mode",
    );
    refused(&["--kubelet-socket", ""], "use --no-kubelet");
    refused(
        &["--max-concurrent-requests", "0"],
        "--max-concurrent-requests must be",
    );
}

#[test]
fn invalid_settings_are_refused_with_a_message() {
    let output = Command::new(BIN)
        .args(["--stale-factor", "0.5"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--stale-factor"));
    let output = Command::new(BIN)
        .args(["--devices", "/nonexistent/devices.yaml"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read device table"));
}

/// The running binary and the agent address read from its JSON "listening" log line.
struct Running {
    child: Child,
    agent_addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only when a test failed before stopping it: never leave it running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the binary configured through environment variables only, logging JSON to stderr.
fn start(devices: &Path, socket: &Path) -> Running {
    let mut child = Command::new(BIN)
        .env("ODIGOS_OPAMP_LISTEN", "127.0.0.1:0")
        .env("ODIGOS_OPAMP_ADMIN_LISTEN", "127.0.0.1:0")
        .env("ODIGOS_OPAMP_UNIX_SOCKET", socket)
        .env("ODIGOS_OPAMP_DEVICES", devices)
        .env("ODIGOS_OPAMP_NODE_NAME", "node-from-env")
        .env("ODIGOS_OPAMP_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server binary");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let agent_addr = loop {
        assert!(
            Instant::now() < deadline,
            "no 'listening' log line within 20 s"
        );
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("read stderr");
        let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
            panic!("not a JSON log line: {line}")
        };
        if let Some(addr) = log["agent_addr"].as_str() {
            break addr.parse().expect("agent_addr is an address");
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Running { child, agent_addr }
}

fn stop_with(mut running: Running, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(running.child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        sent,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = running.child.try_wait().expect("wait") {
            assert!(
                status.success(),
                "graceful exit after signal {signal}: {status}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running 15 s after signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn first_message_gets_the_sdk_section(addr: SocketAddr) {
    let mut connection = client::Connection::tcp(addr).await;
    let reply = connection
        .post(&messages::first_message(messages::PY_UID, 0), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let config = reply.message().remote_config.expect("remote config");
    let sdk =
        String::from_utf8_lossy(&config.config.expect("map").config_map["SDK"].body).into_owned();
    assert!(
        sdk.contains(r#"{"key":"k8s.node.name","value":"node-from-env"}"#),
        "{sdk}"
    );
    let ack = connection
        .post(&messages::heartbeat(messages::PY_UID, 1), &[])
        .await
        .message();
    assert_eq!((ack.flags, ack.remote_config), (0, None));
}

fn devices_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("devices.yaml");
    std::fs::write(&path, messages::DEVICES_YAML).expect("write devices");
    path
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_removes_the_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("exchange.sock");
    let running = start(&devices_file(dir.path()), &socket);
    first_message_gets_the_sdk_section(running.agent_addr).await;
    // Another agent, over the unix socket (an agent keeps the transport it registered on:
    // a uid registered over TCP is refused from another peer).
    let mut over_unix = client::Connection::unix(&socket).await;
    let uid = b"0192f1e4-unix-7b8e-9d2f-3a4b5c6d7e8f";
    let other = odigos_opamp_proto::opamp::proto::AgentToServer {
        agent_description: Some(messages::python_description(uid, "cart-0", "cart")),
        ..messages::first_message(uid, 0)
    };
    let reply = over_unix.post(&other, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let refused = over_unix
        .post(&messages::heartbeat(messages::PY_UID, 2), &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    drop(over_unix);
    stop_with(running, libc::SIGTERM);
    assert!(!socket.exists(), "socket file removed");
}

#[tokio::test]
async fn sigint_stops_gracefully() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("exchange.sock");
    let running = start(&devices_file(dir.path()), &socket);
    first_message_gets_the_sdk_section(running.agent_addr).await;
    stop_with(running, libc::SIGINT);
    assert!(!socket.exists(), "socket file removed");
}

/// `/agents` shows no credential by default: no raw uid (not even inside the attributes the
/// agent reported), a digest instead; `--admin-show-credentials` shows everything. `/readyz`
/// names the mode.
#[tokio::test]
async fn the_admin_view_hides_uids_unless_asked() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let devices = devices_file(dir.path());
    let devices = devices.to_str().expect("utf-8 path");
    let uid = std::str::from_utf8(messages::PY_UID).expect("a text uid");
    for (extra, shows) in [(None, false), (Some("--admin-show-credentials"), true)] {
        let mut args = vec!["--devices", devices];
        args.extend(extra);
        let mut server = binary_support::Binary::start(&args);
        let mut connection = client::Connection::tcp(server.agent_addr).await;
        let mut first = messages::first_message(messages::PY_UID, 0);
        first
            .agent_description
            .as_mut()
            .expect("a description")
            .identifying_attributes
            .push(messages::string("service.instance.id", uid));
        assert_eq!(connection.post(&first, &[]).await.status, StatusCode::OK);
        let ready = client::get(server.admin_addr, "/readyz").await.text();
        assert_eq!(ready, "ready (embedded mode)\n");
        let view = client::get(server.admin_addr, "/agents").await.text();
        assert_eq!(view.contains(uid), shows, "{view}");
        let json: serde_json::Value = serde_json::from_str(&view).expect("JSON");
        assert_eq!(json["mode"], "embedded");
        if !shows {
            let agent = &json["agents"][0];
            let digest = agent["uidDigest"].as_str().expect("a uid digest");
            assert_eq!(digest.len(), 8);
            assert_eq!(
                (
                    &agent["pod"],
                    &agent["container"],
                    &agent["workload"]["name"]
                ),
                (
                    &serde_json::json!("coupon-7d9f8b6c5d-x2x9z"),
                    &serde_json::json!("app"),
                    &serde_json::json!("coupon")
                ),
                "{view}"
            );
            assert_eq!(
                agent["resource"], "coupon-7d9f8b6c5d-x2x9z.app.4242",
                "{view}"
            );
            assert!(json["instances"][0].get("status").is_none(), "{view}");
        }
        server.stop(libc::SIGTERM, Duration::from_secs(10));
    }
}
