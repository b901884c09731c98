//! Peer verification (docs/protocol.md §3.1) against the real API server and the real kernel,
//! loopback only: agents connect from the pod IPs of their pods (addresses of 127.0.0.0/8,
//! written to the pods' `status.podIPs`), impostors from other pods' addresses, others from
//! the node's address; unix-socket agents run in a cgroup named like a pod's container
//! (created under this machine's cgroup v2 hierarchy, removed after) and in a pid namespace
//! of their own. The tests fail, never skip, when the machine does not let them create what
//! they need, and say what was missing.

#[path = "support/cgroup.rs"]
mod cgroup;
#[path = "support/client.rs"]
mod client;
#[path = "support/kube.rs"]
mod kube_support;
#[path = "support/kubelet.rs"]
mod kubelet;
#[path = "support/messages.rs"]
mod messages;
#[path = "support/netns.rs"]
mod netns;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use odigos_opamp_proto::opamp::proto::{AgentDescription, AgentToServer};
use odigos_opamp_server::settings::PeerVerification;
use prost::Message as _;
use serde_json::json;

use cgroup::Cgroup;
use client::Connection;
use kube_support::{
    KubeServerConfig, PodSpecification, admin, create_pod, eventually, instance_name, instances,
    node_for, set_app_container_id, shared_plane, start_server, start_unix_server,
};
use messages::{first_message, health, heartbeat, int, string};
use netns::NetnsPair;

/// A first message claiming `pod`'s container `app`, process `pid` (reported as vpid, as
/// the Odigos agents do in Kubernetes).
fn claim(uid: &[u8], namespace: &str, pod: &str, pid: i64) -> AgentToServer {
    AgentToServer {
        agent_description: Some(AgentDescription {
            identifying_attributes: vec![
                string("telemetry.sdk.language", "python"),
                int("process.vpid", pid),
                string("k8s.namespace.name", namespace),
                string("k8s.pod.name", pod),
                string("k8s.container.name", "app"),
            ],
            non_identifying_attributes: Vec::new(),
        }),
        health: Some(health(true, "Healthy", "")),
        ..first_message(uid, 0)
    }
}

async fn set_status(client: &kube::Client, namespace: &str, pod: &str, status: serde_json::Value) {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap_or_else(|e| panic!("setting the status of pod {pod}: {e}"));
}

/// A running pod's `status.podIP(s)`.
async fn set_pod_ip(client: &kube::Client, namespace: &str, pod: &str, address: &str) {
    let status = json!({"phase": "Running", "podIP": address, "podIPs": [{"ip": address}]});
    set_status(client, namespace, pod, status).await;
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// The peer-verification label of a resource.
async fn verification_label(api: &Api<kube::api::DynamicObject>, name: &str) -> String {
    let object = kube_support::wait_for_instance(api, name, name).await;
    object
        .metadata
        .labels
        .unwrap_or_default()
        .get("odigos.io/peer-verification")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_agents_are_known_by_their_pod_ip() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("peer-tcp").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    // done-0 finished and its address went to web-c: a finished pod keeps its IP in its
    // status, and must not stand in for the pod that has it now.
    for (pod, address, phase) in [
        ("web-a", "127.0.0.21", "Running"),
        ("web-b", "127.0.0.22", "Running"),
        ("done-0", "127.0.0.23", "Succeeded"),
        ("web-c", "127.0.0.23", "Running"),
    ] {
        create_pod(&client, &namespace, PodSpecification::new(pod, &node)).await;
        set_status(
            &client,
            &namespace,
            pod,
            json!({"phase": phase, "podIP": address, "podIPs": [{"ip": address}]}),
        )
        .await;
    }
    let server = start_server(plane, KubeServerConfig::new(&node)).await;
    eventually(
        Duration::from_secs(15),
        "the pod watch has the pod IPs",
        || async {
            server
                .kube
                .pods
                .with_ip(ip("127.0.0.23"))
                .first()
                .is_some_and(|pod| pod.name == "web-c")
                .then_some(())
        },
    )
    .await;
    let addr = server.server.agent_addr();
    let api = instances(&client, &namespace);

    // The agent of web-a, from web-a's address: served, verified.
    let mut web_a = Connection::tcp_from(ip("127.0.0.21"), addr).await;
    let reply = web_a
        .post(&claim(b"agent-a", &namespace, "web-a", 7), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let victim = instance_name("web-a", "app", 7);
    assert_eq!(verification_label(&api, &victim).await, "verified");
    // The status is its own write, after the object's: wait for it, or "unchanged" below
    // would compare against a resource still being written.
    let before = eventually(
        Duration::from_secs(15),
        "web-a's resource has its healthy status",
        || async {
            let object = api.get(&victim).await.ok()?;
            (object.data["status"]["healthy"] == json!(true)).then_some(object)
        },
    )
    .await;

    // From web-b's address, claiming web-a (the same process, or another): refused, and
    // nothing created or changed.
    let mut impostor = Connection::tcp_from(ip("127.0.0.22"), addr).await;
    for (uid, pid) in [(&b"impostor-1"[..], 7), (&b"impostor-2"[..], 8)] {
        let reply = impostor
            .post(&claim(uid, &namespace, "web-a", pid), &[])
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        let error = reply.message().error_response.expect("an error response");
        assert!(
            error.error_message.contains("web-b"),
            "{}",
            error.error_message
        );
    }
    // web-a's own uid, sent from web-b's address: refused too (a uid is no credential).
    let spoofed = AgentToServer {
        health: Some(health(false, "AgentFailure", "spoofed")),
        ..heartbeat(b"agent-a", 1)
    };
    assert_eq!(
        impostor.post(&spoofed, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let bye = messages::disconnect(b"agent-a", 2, None);
    assert_eq!(impostor.post(&bye, &[]).await.status, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = api
        .get(&victim)
        .await
        .expect("web-a's resource, still there");
    assert_eq!(
        after.data["status"], before.data["status"],
        "web-a's resource unchanged"
    );
    assert!(
        api.get_opt(&instance_name("web-a", "app", 8))
            .await
            .unwrap()
            .is_none()
    );
    // The real agent goes on.
    assert_eq!(
        web_a.post(&heartbeat(b"agent-a", 1), &[]).await.status,
        StatusCode::OK
    );

    // The address a finished pod had names the pod that has it now.
    let mut web_c = Connection::tcp_from(ip("127.0.0.23"), addr).await;
    let reply = web_c
        .post(&claim(b"agent-c", &namespace, "web-c", 3), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        verification_label(&api, &instance_name("web-c", "app", 3)).await,
        "verified"
    );

    // From the node's own address: no pod to hold the claim against; when-possible serves
    // it, marked unverified.
    let mut from_node = Connection::tcp_from(ip("127.0.0.1"), addr).await;
    let reply = from_node
        .post(&claim(b"agent-b", &namespace, "web-b", 9), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        verification_label(&api, &instance_name("web-b", "app", 9)).await,
        "unverified"
    );
    let metrics = client::get(server.server.admin_addr(), "/metrics")
        .await
        .text();
    assert!(
        metrics.contains("odigos_opamp_requests_total{outcome=\"peer_mismatch\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("odigos_opamp_new_agents_total{verification=\"unverified\"} 1"),
        "{metrics}"
    );
    server.server.shutdown().await;

    // --peer-verification required refuses it.
    let strict = start_server(
        plane,
        KubeServerConfig {
            peer_verification: PeerVerification::Required,
            ..KubeServerConfig::new(&node)
        },
    )
    .await;
    let mut from_node = Connection::tcp_from(ip("127.0.0.1"), strict.server.agent_addr()).await;
    let reply = from_node
        .post(&claim(b"agent-e", &namespace, "web-b", 10), &[])
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert!(
        reply
            .message()
            .error_response
            .unwrap()
            .error_message
            .contains("--peer-verification required")
    );
    // From its pod's address it is served.
    let mut web_b = Connection::tcp_from(ip("127.0.0.22"), strict.server.agent_addr()).await;
    let reply = web_b
        .post(&claim(b"agent-d", &namespace, "web-b", 11), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    strict.server.shutdown().await;
}

/// Write `bodies` to files and post them with `post.py` to `target` (`unix:PATH` or
/// `tcp:HOST:PORT`) from a process that `launcher` starts (a command that runs the
/// command line following it); the HTTP status of each answer.
fn post_from(launcher: &[String], target: &str, bodies: &[AgentToServer]) -> Vec<u16> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let files: Vec<PathBuf> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let file = dir.path().join(format!("{i}.bin"));
            std::fs::write(&file, body.encode_to_vec()).expect("write a body");
            file
        })
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/post.py");
    let output = std::process::Command::new(&launcher[0])
        .args(&launcher[1..])
        .arg("python3")
        .arg(&script)
        .arg(target)
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} with python3: {e}", launcher[0]));
    assert!(
        output.status.success(),
        "the agent process failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("a status code"))
        .collect()
}

/// Run the agent side in `cgroup`, in a new pid namespace (so its vpid is 1), posting
/// `bodies` over `socket`; the HTTP status of each answer.
fn post_from_container(cgroup: &Cgroup, socket: &Path, bodies: &[AgentToServer]) -> Vec<u16> {
    // The shell moves itself into the cgroup (its $$ is 1 in its namespace, which is how
    // cgroup.procs reads it), then becomes the agent. unshare is util-linux's.
    let launcher = ["unshare", "--pid", "--fork", "--kill-child", "sh", "-c"]
        .map(str::to_owned)
        .into_iter()
        .chain([cgroup.enter_then_exec(), "sh".to_owned()])
        .collect::<Vec<_>>();
    post_from(&launcher, &format!("unix:{}", socket.display()), bodies)
}

/// A client on another host (a network namespace of the test's): its address is neither
/// this node's nor a pod's of this node, as a pod of another node, or anything outside the
/// cluster, would connect from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_agents_from_outside_the_node_are_refused() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("peer-far").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    let hosts = NetnsPair::create("odp");
    let client_ip = IpAddr::from(NetnsPair::CLIENT);
    assert_eq!(
        odigos_opamp_server::identity::is_node_address(client_ip),
        Ok(false),
        "this machine has {client_ip} itself: the test's other host needs an address the \
         machine does not have (support/netns.rs)"
    );
    // far-0 has another address than the client's; new-0 and near-0 none yet.
    for (pod, address) in [
        ("far-0", Some("10.9.8.7")),
        ("new-0", None),
        ("near-0", None),
    ] {
        create_pod(&client, &namespace, PodSpecification::new(pod, &node)).await;
        if let Some(address) = address {
            set_pod_ip(&client, &namespace, pod, address).await;
        }
    }
    let server = start_server(
        plane,
        KubeServerConfig {
            agent_listener: Some(hosts.listen()),
            ..KubeServerConfig::new(&node)
        },
    )
    .await;
    let pods = server.kube.pods.clone();
    let watch_has = |address: IpAddr| {
        let pods = pods.clone();
        eventually(
            Duration::from_secs(15),
            "the pod watch has the pod IP",
            move || {
                let found = !pods.with_ip(address).is_empty();
                async move { found.then_some(()) }
            },
        )
    };
    watch_has(ip("10.9.8.7")).await;
    let target = format!("tcp:{}", server.server.agent_addr());
    let api = instances(&client, &namespace);

    let statuses = post_from(
        &hosts.client_launcher(),
        &target,
        &[
            claim(b"far-agent", &namespace, "far-0", 4),
            claim(b"new-agent", &namespace, "new-0", 4),
        ],
    );
    // far-0's IP is known and is not the client's: 403. new-0 lists no IP yet (an agent may
    // start before the kubelet reports it): served, unverified.
    assert_eq!(statuses, [403, 200]);
    assert!(
        api.get_opt(&instance_name("far-0", "app", 4))
            .await
            .unwrap()
            .is_none(),
        "no resource for the refused claim"
    );
    assert_eq!(
        verification_label(&api, &instance_name("new-0", "app", 4)).await,
        "unverified"
    );

    // Once near-0 has the client's address, the same client is near-0, verified.
    set_pod_ip(&client, &namespace, "near-0", &client_ip.to_string()).await;
    watch_has(client_ip).await;
    let statuses = post_from(
        &hosts.client_launcher(),
        &target,
        &[claim(b"near-agent", &namespace, "near-0", 4)],
    );
    assert_eq!(statuses, [200]);
    assert_eq!(
        verification_label(&api, &instance_name("near-0", "app", 4)).await,
        "verified"
    );
    let agents = client::get(server.server.admin_addr(), "/agents")
        .await
        .text();
    assert!(agents.contains("lists no IP yet"), "{agents}");
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_agents_are_known_by_their_cgroup_and_vpid() {
    let plane = shared_plane();
    let namespace = plane
        .create_namespace("peer-unix")
        .await
        .expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    let container_id = "4e1c0a7b9d2f3e5c6a8b0d1f2e3c4a5b6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a";
    let pod_uid = create_pod(
        &client,
        &namespace,
        PodSpecification::new("worker-0", &node),
    )
    .await;
    create_pod(
        &client,
        &namespace,
        PodSpecification::new("worker-1", &node),
    )
    .await;
    set_app_container_id(&client, &namespace, "worker-0", container_id).await;
    let cgroup = Cgroup::pod_container(&pod_uid, container_id);
    let (server, socket, _dir) = start_unix_server(plane, &node, &namespace, "worker-0").await;
    let api = instances(&client, &namespace);

    // Its own pod, container and vpid (1, in its pid namespace): verified. Another vpid,
    // another pod: refused, nothing created.
    let statuses = post_from_container(
        &cgroup,
        &socket,
        &[
            claim(b"unix-ok", &namespace, "worker-0", 1),
            claim(b"unix-vpid", &namespace, "worker-0", 2),
            claim(b"unix-pod", &namespace, "worker-1", 1),
        ],
    );
    assert_eq!(statuses, [200, 403, 403]);
    assert_eq!(
        verification_label(&api, &instance_name("worker-0", "app", 1)).await,
        "verified"
    );
    assert!(
        api.get_opt(&instance_name("worker-0", "app", 2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        api.get_opt(&instance_name("worker-1", "app", 1))
            .await
            .unwrap()
            .is_none()
    );

    // Its uid from another process (this test's, outside the cgroup): refused.
    let mut other = Connection::unix(&socket).await;
    let spoofed = AgentToServer {
        health: Some(health(false, "AgentFailure", "spoofed")),
        ..heartbeat(b"unix-ok", 1)
    };
    assert_eq!(
        other.post(&spoofed, &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // A process in no pod's container claiming worker-0: unverified (when-possible), served.
    let reply = other
        .post(&claim(b"unix-host", &namespace, "worker-0", 99), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        verification_label(&api, &instance_name("worker-0", "app", 99)).await,
        "unverified"
    );
    server.server.shutdown().await;
    drop(cgroup);
}
