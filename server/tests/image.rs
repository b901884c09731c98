//! The shipped image, run the way a node runs it: `cargo xtask image`'s static binary in an
//! OCI image from scratch, started by podman (installed with apt-get when missing: the test
//! fails, never skips, without it) as the image's own non-root user on a read-only root
//! filesystem, on the embedded default with `server/examples/devices.yaml` mounted read-only.
//! An agent gets its remote config; `/healthz`, `/readyz` and `/metrics` answer; SIGTERM
//! stops it cleanly. The image and the container are removed, also when the test fails.

#[path = "support/client.rs"]
mod client;
#[path = "support/messages.rs"]
mod messages;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use xtask::image::{self, Layout, Podman, layout};

/// Where the device table is mounted in the container.
const DEVICES_IN_CONTAINER: &str = "/etc/odigos/devices.yaml";
const NODE: &str = "image-test-node";
/// Bounds of the waits below; none is expected to come near them.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A remote-config section the server sends, and how its JSON body is checked. A new
/// section is one more row in [`SECTIONS`].
struct Section {
    name: &'static str,
    check: fn(&serde_json::Value) -> Result<(), String>,
}

const SECTIONS: &[Section] = &[
    Section {
        name: "SDK",
        check: sdk_names_the_agent_s_pod,
    },
    Section {
        name: "InstrumentationLibraries",
        check: libraries_are_a_list,
    },
];

/// The resource attributes name this node and the device table's row for the agent.
fn sdk_names_the_agent_s_pod(body: &serde_json::Value) -> Result<(), String> {
    let attributes = body["remoteResourceAttributes"]
        .as_array()
        .ok_or("no remoteResourceAttributes list")?;
    for (key, value) in [
        ("k8s.node.name", NODE),
        ("k8s.namespace.name", "shop"),
        ("k8s.pod.name", "coupon-7d9f8b6c5d-x2x9z"),
        ("k8s.container.name", "app"),
        ("k8s.deployment.name", "coupon"),
    ] {
        if !attributes
            .iter()
            .any(|a| a["key"] == key && a["value"] == value)
        {
            return Err(format!("no {key}={value} among the resource attributes"));
        }
    }
    Ok(())
}

/// Without a cluster no workload configures a library: an empty list.
fn libraries_are_a_list(body: &serde_json::Value) -> Result<(), String> {
    match body.as_array() {
        Some(list) if list.is_empty() => Ok(()),
        _ => Err("not an empty list".into()),
    }
}

#[tokio::test]
async fn the_image_serves_agents_and_probes_as_its_user_on_a_read_only_root() {
    let root = xtask::workspace_root();
    let podman = Podman::ensure().unwrap_or_else(|e| panic!("podman: {e}"));
    let unique = format!("{}-{}", std::process::id(), nanos());
    let tag = format!("localhost/odigos-opamp-server-test:{unique}");
    let started = Instant::now();
    let _image = RemoveImage(&podman, &tag);
    let built = image::build(&root, &podman, &tag).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "binary {} bytes, image {tag} {} bytes, built (or found up to date) in {:.1?}",
        built.binary.size_bytes,
        built.size_bytes,
        started.elapsed()
    );

    let config = podman.image_config(&tag).unwrap_or_else(|e| panic!("{e}"));
    let shipped = Layout::shipped();
    assert_eq!(config.user, shipped.user, "{config:?}");
    assert_eq!(config.entrypoint, shipped.entrypoint, "{config:?}");
    let ports: Vec<String> = shipped.ports.iter().map(|p| format!("{p}/tcp")).collect();
    assert_eq!(
        config.exposed_ports.keys().cloned().collect::<Vec<_>>(),
        ports,
        "{config:?}"
    );

    let devices = root.join("server").join("examples").join("devices.yaml");
    let started = Instant::now();
    let mut container = Container::start(
        &podman,
        &tag,
        &format!("opamp-image-test-{unique}"),
        &devices,
    );
    wait_ready(&container).await;
    eprintln!("container started and ready in {:.1?}", started.elapsed());

    let process = container.process_status();
    let ids = format!(
        "{}\t{}\t{}\t{}",
        layout::UID,
        layout::UID,
        layout::UID,
        layout::UID
    );
    let gids = format!(
        "{}\t{}\t{}\t{}",
        layout::GID,
        layout::GID,
        layout::GID,
        layout::GID
    );
    assert!(
        process.contains(&format!("Uid:\t{ids}")) && process.contains(&format!("Gid:\t{gids}")),
        "the server runs as {}:{}:\n{process}",
        layout::UID,
        layout::GID
    );
    let root_mount = container.root_mount();
    assert!(
        root_mount.split(',').next() == Some("ro"),
        "the root filesystem is mounted {root_mount:?}"
    );

    agent_gets_its_remote_config(container.agent_addr).await;
    probes_answer(container.admin_addr).await;

    let status = container.stop();
    assert!(
        status.success(),
        "podman run (the server's exit) after SIGTERM: {status}; log:\n{}",
        container.logs().join("\n")
    );
}

async fn agent_gets_its_remote_config(addr: SocketAddr) {
    let mut connection = client::Connection::tcp(addr).await;
    let reply = connection
        .post(
            &messages::first_message(messages::PY_UID, 0),
            &[("x-odigos-deviceid", messages::DEVICE_ID)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = reply.message();
    assert_eq!(answer.instance_uid, messages::PY_UID);
    let remote = answer
        .remote_config
        .expect("a remote config in the first answer");
    assert_eq!(remote.config_hash.len(), 32, "a SHA-256 config hash");
    let map = remote.config.expect("a config map").config_map;
    for section in SECTIONS {
        let file = map
            .get(section.name)
            .unwrap_or_else(|| panic!("no {} section in {:?}", section.name, map.keys()));
        assert_eq!(file.content_type, "application/json", "{}", section.name);
        let body: serde_json::Value = serde_json::from_slice(&file.body)
            .unwrap_or_else(|e| panic!("the {} section is not JSON: {e}", section.name));
        if let Err(why) = (section.check)(&body) {
            panic!("the {} section: {why}: {body}", section.name);
        }
    }
    // The agent applied it: its poll with the hash gets no config again.
    let poll = connection
        .post(
            &messages::python_poll(messages::PY_UID, 1, &remote.config_hash),
            &[],
        )
        .await
        .message();
    assert_eq!(poll.remote_config, None);
}

async fn probes_answer(admin: SocketAddr) {
    for path in ["/healthz", "/readyz"] {
        let reply = client::get(admin, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    let metrics = client::get(admin, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    for line in [
        "odigos_opamp_connected_agents 1",
        "odigos_opamp_requests_total{outcome=\"new_agent\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

/// `/readyz` answers 200 (the listeners are up and the server is ready), bounded.
async fn wait_ready(container: &Container<'_>) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(container.admin_addr).await {
            drop(stream);
            if client::get(container.admin_addr, "/readyz").await.status == StatusCode::OK {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not answer 200 within {START_TIMEOUT:?}; log:\n{}",
            container.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Removes the test's image tag when dropped.
struct RemoveImage<'a>(&'a Podman, &'a str);

impl Drop for RemoveImage<'_> {
    fn drop(&mut self) {
        self.0.remove_image(self.1);
    }
}

/// `podman run` in the foreground: the server's log comes through its stderr.
struct Container<'a> {
    podman: &'a Podman,
    name: String,
    child: Child,
    agent_addr: SocketAddr,
    admin_addr: SocketAddr,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl<'a> Container<'a> {
    /// Run `tag` as its own user, read-only, on loopback ports the server picks; returns
    /// once its "listening" log line has named them.
    fn start(podman: &'a Podman, tag: &str, name: &str, devices: &Path) -> Container<'a> {
        let mut child = podman
            .run_command()
            .args(["--rm", "--read-only", "--name", name, "--volume"])
            .arg(format!("{}:{DEVICES_IN_CONTAINER}:ro", devices.display()))
            .arg(tag)
            .args(["--devices", DEVICES_IN_CONTAINER, "--node-name", NODE])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("podman runs");
        let stderr = child.stderr.take().expect("stderr");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let kept = std::sync::Arc::clone(&logs);
        // Drains podman's stderr for the container's whole life.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line.clone());
                let _ = lines_tx.send(line);
            }
        });
        let mut container = Container {
            podman,
            name: name.to_owned(),
            child,
            agent_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            logs,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines_rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no 'listening' log line within {START_TIMEOUT:?}; podman said:\n{}",
                    container.logs().join("\n")
                )
            });
            let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue; // podman's own messages
            };
            if let (Some(agent), Some(admin)) =
                (log["agent_addr"].as_str(), log["admin_addr"].as_str())
            {
                container.agent_addr = agent.parse().expect("agent_addr");
                container.admin_addr = admin.parse().expect("admin_addr");
                return container;
            }
        }
    }

    fn logs(&self) -> Vec<String> {
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The server's pid on this host.
    fn pid(&self) -> u32 {
        let text = xtask::tools::stdout_of(self.podman.command().args([
            "inspect",
            "--format",
            "{{.State.Pid}}",
            &self.name,
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        text.parse()
            .unwrap_or_else(|_| panic!("a pid, not {text:?}"))
    }

    /// `/proc/<pid>/status` of the server, as the kernel sees it.
    fn process_status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("its /proc status")
    }

    /// The mount options of the server's root filesystem (`/proc/<pid>/mountinfo`).
    fn root_mount(&self) -> String {
        let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid()))
            .expect("its mountinfo");
        // Fields: id, parent, major:minor, root, mount point, mount options, ...
        mounts
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| fields.get(4) == Some(&"/"))
            .and_then(|fields| fields.get(5).map(|o| (*o).to_owned()))
            .unwrap_or_else(|| panic!("no / in its mountinfo:\n{mounts}"))
    }

    /// `podman stop` (SIGTERM), then the exit status of `podman run`, i.e. the server's.
    fn stop(&mut self) -> std::process::ExitStatus {
        let stop_seconds = STOP_TIMEOUT.as_secs().to_string();
        xtask::tools::run(self.podman.command().args([
            "stop",
            "--time",
            &stop_seconds,
            &self.name,
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for podman") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "podman run still running after stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        self.podman.remove_container(&self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
