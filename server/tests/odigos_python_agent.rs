//! The real client: released Odigos Python agents (`odigos-opentelemetry-python` from the
//! package index, installed unchanged at pinned versions) inside application processes,
//! against the server in embedded mode (the binary with a device table) and in Kubernetes
//! mode (a real API server, pods, an `InstrumentationConfig` as Odigos writes it).
//!
//! Each release reads another part of the remote config (support/python_agent.rs says
//! which), so each case checks, from the agent's side, the configuration it ended up with
//! (tracer provider, head-sampling rules applied to real spans, its loggers, the SDK
//! resource attributes), and from the server's side who it was taken for, its health and,
//! in Kubernetes mode, its `InstrumentationInstance`; then its heartbeat, its recovery
//! after a server restart, and its disconnect on exit. The agents poll every 30 s (their
//! own fixed interval), so each test takes about a minute and a half.

#[path = "support/binary.rs"]
mod binary;
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
#[path = "support/python_agent.rs"]
mod python_agent;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use odigos_opamp_server::kube::configs;
use serde_json::{Value, json};

use binary::Binary;
use kube_support::{
    KubeServerConfig, PodSpecification, admin, create_pod, eventually, instance_name, instances,
    node_for, set_app_container_id, shared_plane, start_server, start_unix_server,
};
use kubelet::ScriptedKubelet;
use python_agent::{AgentApp, Injected, Release, Transport};

/// The `InstrumentationConfig` of the coupon Deployment, as Odigos writes it.
fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/instrumentationconfig-coupon.json"))
        .expect("fixture parses")
}

/// The fixture's entry for `container`.
fn entry(container: &str) -> Value {
    fixture()["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["containerName"] == container)
        .cloned()
        .unwrap_or_else(|| panic!("no entry for {container}"))
}

const NAMESPACE: &str = "shop";
const REPLICA_SET: &str = "coupon-7d9f8b6c5d";
const DEVICE_ID: &str = "5b9e2c1a-3d4f-4a6b-8c7d-9e0f1a2b3c4d";

/// What a case must end up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The fixture's `app` entry: traces on, its head-sampling rules applied.
    SampledByRules,
    /// The fixture's `worker` entry has no `traces`: tracing off.
    TracesOff,
    /// No `InstrumentationConfig` for the workload: the default, traces on, no rules.
    DefaultTracesOn,
    /// A 2025 agent: the `SDK` resource attributes merged into its resource.
    SdkResource,
}

/// How a case's agent reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Tcp,
    /// `ODIGOS_OPAMP_UNIX_SOCKET`, which releases since 1.0.88 prefer.
    UnixSocket,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    release: &'static str,
    via: Via,
    pod: &'static str,
    container: &'static str,
    /// (kind, name) of the workload the pod belongs to.
    workload: (&'static str, &'static str),
    expect: Expect,
}

impl Case {
    fn release(&self) -> Release {
        Release::get(self.release)
    }

    fn label(&self) -> String {
        format!(
            "{} in {}/{} ({:?})",
            self.release, self.pod, self.container, self.via
        )
    }

    fn injected(&self, namespace: &str) -> Injected {
        if self.release().uses_device_id() {
            Injected::Device(DEVICE_ID.into())
        } else {
            Injected::Pod {
                namespace: namespace.into(),
                pod: self.pod.into(),
                container: self.container.into(),
            }
        }
    }
}

const COUPON: (&str, &str) = ("Deployment", "coupon");
const CART: (&str, &str) = ("StatefulSet", "cart");

/// Every pinned release, and for the newest two each kind of config.
const CASES: [Case; 7] = [
    Case {
        release: "1.0.91",
        via: Via::UnixSocket,
        pod: "coupon-7d9f8b6c5d-py091u",
        container: "app",
        workload: COUPON,
        expect: Expect::SampledByRules,
    },
    Case {
        release: "1.0.91",
        via: Via::Tcp,
        pod: "coupon-7d9f8b6c5d-py091",
        container: "app",
        workload: COUPON,
        expect: Expect::SampledByRules,
    },
    Case {
        release: "1.0.91",
        via: Via::Tcp,
        pod: "coupon-7d9f8b6c5d-py091",
        container: "worker",
        workload: COUPON,
        expect: Expect::TracesOff,
    },
    Case {
        release: "1.0.91",
        via: Via::Tcp,
        pod: "cart-0",
        container: "cart",
        workload: CART,
        expect: Expect::DefaultTracesOn,
    },
    Case {
        release: "1.0.80",
        via: Via::Tcp,
        pod: "coupon-7d9f8b6c5d-py080",
        container: "app",
        workload: COUPON,
        expect: Expect::SampledByRules,
    },
    Case {
        release: "1.0.80",
        via: Via::Tcp,
        pod: "coupon-7d9f8b6c5d-py080",
        container: "worker",
        workload: COUPON,
        expect: Expect::TracesOff,
    },
    Case {
        release: "1.0.25",
        via: Via::Tcp,
        pod: "coupon-7d9f8b6c5d-py025",
        container: "app",
        workload: COUPON,
        expect: Expect::SdkResource,
    },
];

/// The pods of the cases, with their containers.
fn pods() -> Vec<(
    &'static str,
    Vec<&'static str>,
    (&'static str, &'static str),
)> {
    let mut pods: Vec<(&str, Vec<&str>, (&str, &str))> = Vec::new();
    for case in CASES {
        match pods.iter_mut().find(|(pod, ..)| *pod == case.pod) {
            Some((_, containers, _)) => containers.push(case.container),
            None => pods.push((case.pod, vec![case.container], case.workload)),
        }
    }
    pods
}

/// The agent's side: what it ended up with, for the config the server sent it.
fn check_agent(case: &Case, state: &Value, namespace: &str, node: &str) {
    let label = case.label();
    let spans = &state["spans"];
    let traces_on = state["tracerProvider"] == "TracerProvider";
    let sampled = |route: &str| spans[route]["sampled"] == true;
    match case.expect {
        Expect::SampledByRules => {
            assert!(traces_on, "{label}: no tracer provider: {state}");
            let rules = &entry("app")["traces"]["headSampling"];
            assert_eq!(&state["samplerConfig"], rules, "{label}: {state}");
            assert!(
                !sampled("/healthz"),
                "{label}: the drop rule did not apply: {state}"
            );
            assert!(
                sampled("/orders/{id}"),
                "{label}: a disabled rule applied: {state}"
            );
        }
        Expect::TracesOff => {
            assert_eq!(
                state["tracerProvider"], "ProxyTracerProvider",
                "{label}: {state}"
            );
            assert_eq!(
                spans["/orders/{id}"]["recording"], false,
                "{label}: {state}"
            );
            assert_eq!(state["endedSpans"], json!([]), "{label}: {state}");
        }
        Expect::DefaultTracesOn | Expect::SdkResource => {
            assert!(traces_on, "{label}: no tracer provider: {state}");
            assert!(
                sampled("/healthz") && sampled("/orders/{id}"),
                "{label}: {state}"
            );
            assert_eq!(state["samplerConfig"], Value::Null, "{label}: {state}");
        }
    }
    if traces_on {
        let ended = state["endedSpans"].as_array().expect("endedSpans");
        assert!(
            ended.contains(&json!("GET /orders/{id}")),
            "{label}: the span was not recorded: {state}"
        );
    }
    if case.release == "1.0.91" {
        // The newest release takes its log levels from container_config.agentDiagnostics,
        // and silences its loggers without them (as it does without any server).
        let (odigos, otel) = match case.expect {
            Expect::SampledByRules => ("INFO", "WARNING"),
            Expect::TracesOff => ("WARNING", "ERROR"),
            _ => ("", ""),
        };
        let loggers = &state["loggers"];
        if odigos.is_empty() {
            assert_eq!(loggers["odigos"]["disabled"], true, "{label}: {state}");
        } else {
            assert_eq!(
                loggers["odigos"],
                json!({"disabled": false, "level": odigos}),
                "{label}"
            );
            assert_eq!(
                loggers["opentelemetry"],
                json!({"disabled": false, "level": otel}),
                "{label}"
            );
        }
        // It hands the whole decoded container_config to its span processors.
        if case.expect == Expect::SampledByRules {
            assert_eq!(
                state["pushedConfigs"][0]["containerConfig"],
                entry("app"),
                "{label}: the entry did not reach the agent whole: {state}"
            );
        }
    }
    if case.expect == Expect::SdkResource {
        let resource = &state["resource"];
        for (key, value) in [
            ("k8s.node.name", node),
            ("k8s.namespace.name", namespace),
            ("service.name", "coupon"),
            ("k8s.pod.name", case.pod),
            ("k8s.container.name", case.container),
            ("k8s.deployment.name", "coupon"),
        ] {
            assert_eq!(resource[key], value, "{label}: resource {key}: {state}");
        }
    }
}

/// GET /agents.
async fn agents(admin: SocketAddr) -> Value {
    serde_json::from_slice(&client::get(admin, "/agents").await.body).expect("/agents is JSON")
}

/// The agent `uid` as the server knows it, if it does.
fn known(view: &Value, uid: &str) -> Option<Value> {
    view["agents"]
        .as_array()?
        .iter()
        .find(|a| a["instanceUid"] == uid)
        .cloned()
}

fn uid_of(state: &Value) -> String {
    state["client"]["instanceUid"]
        .as_str()
        .expect("the agent's uid")
        .to_owned()
}

/// The server's side: the agent is known as the case's pod, container and workload, is
/// healthy, and holds the hash the server offers it.
fn check_server(case: &Case, server_view: &Value, state: &Value, namespace: &str) {
    let label = case.label();
    let agent = known(server_view, &uid_of(state))
        .unwrap_or_else(|| panic!("{label}: not in /agents: {server_view}"));
    let identity = &agent["identity"];
    assert_eq!(identity["namespace"], namespace, "{label}: {agent}");
    assert_eq!(identity["podName"], case.pod, "{label}: {agent}");
    assert_eq!(identity["container"], case.container, "{label}: {agent}");
    assert_eq!(
        (&identity["workload"]["kind"], &identity["workload"]["name"]),
        (&json!(case.workload.0), &json!(case.workload.1)),
        "{label}: {agent}"
    );
    assert_eq!(
        state["client"]["remoteConfigHash"], agent["offered"]["configHash"],
        "{label}: the agent does not hold the offered config"
    );
}

/// How long agents may take to report healthy after they started.
const AFTER_START: Duration = Duration::from_secs(20);
/// How long they may take to register again after a server restart: up to one 30 s poll.
const AFTER_RESTART: Duration = Duration::from_secs(45);

/// Wait (bounded, `within`) until every agent is known and healthy, as the server has it:
/// after it started, or, after a server restart, once the agents learned of it from the
/// ReportFullState answer to their next heartbeat.
async fn until_healthy(admin: SocketAddr, states: &[Value], within: Duration) -> Value {
    eventually(
        within,
        "every agent is known and reports healthy",
        || async {
            let view = agents(admin).await;
            states
                .iter()
                .all(|s| known(&view, &uid_of(s)).is_some_and(|a| a["health"]["healthy"] == true))
                .then_some(view)
        },
    )
    .await
}

/// Wait (bounded) until every agent has sent another message (its 30 s heartbeat).
async fn until_heartbeat(admin: SocketAddr, states: &[Value], before: &Value) {
    let seq = |view: &Value, uid: &str| known(view, uid).map(|a| a["lastSequenceNum"].clone());
    eventually(
        Duration::from_secs(45),
        "every agent heartbeats",
        || async {
            let view = agents(admin).await;
            states
                .iter()
                .map(uid_of)
                .all(|uid| {
                    let now = seq(&view, &uid).and_then(|n| n.as_u64());
                    let then = seq(before, &uid).and_then(|n| n.as_u64());
                    matches!((now, then), (Some(now), Some(then)) if now > then)
                })
                .then_some(())
        },
    )
    .await;
}

/// The server's two agent listeners.
struct Listeners {
    tcp: SocketAddr,
    unix_socket: PathBuf,
}

impl Listeners {
    fn transport(&self, via: Via) -> Transport {
        match via {
            Via::Tcp => Transport::Tcp(self.tcp),
            Via::UnixSocket => Transport::Unix(self.unix_socket.clone()),
        }
    }
}

async fn start_all(listeners: &Listeners, namespace: &str) -> Vec<AgentApp> {
    let setup: Vec<(Transport, Injected)> = CASES
        .iter()
        .map(|c| (listeners.transport(c.via), c.injected(namespace)))
        .collect();
    join_all(
        CASES
            .iter()
            .zip(&setup)
            .map(|(case, (transport, injected))| {
                AgentApp::start(case.release(), transport, injected)
            }),
    )
    .await
}

async fn states(apps: &mut [AgentApp]) -> Vec<Value> {
    let mut states = Vec::new();
    for app in apps.iter_mut() {
        states.push(app.state().await);
    }
    states
}

/// End every application; each must exit cleanly.
async fn exit_all(apps: Vec<AgentApp>) {
    for (case, app) in CASES.iter().zip(apps) {
        assert_eq!(
            app.exit().await,
            Some(0),
            "{} did not exit cleanly",
            case.label()
        );
    }
}

fn device_table() -> String {
    let mut rows = Vec::new();
    for case in CASES {
        let config = match case.expect {
            Expect::DefaultTracesOn => Value::Null,
            _ if case.workload == COUPON => entry(case.container),
            _ => Value::Null,
        };
        let mut row = json!({
            "namespace": NAMESPACE,
            "pod": case.pod,
            "container": case.container,
            "workloadKind": case.workload.0,
            "workloadName": case.workload.1,
        });
        if case.release().uses_device_id() {
            row["deviceId"] = json!(DEVICE_ID);
        }
        if !config.is_null() {
            row["containerConfig"] = config;
        }
        rows.push(row);
    }
    // JSON is YAML.
    serde_json::to_string_pretty(&rows).expect("rows as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_release_in_embedded_mode() {
    for release in python_agent::RELEASES {
        eprintln!(
            "odigos-opentelemetry-python {}: reads {}",
            release.version, release.reads
        );
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    let devices = dir.path().join("devices.yaml");
    std::fs::write(&devices, device_table()).expect("write the device table");
    let socket = dir.path().join("exchange.sock");
    let port = xtask::ports::stable_loopback_port().expect("a free port");
    let listen = format!("127.0.0.1:{port}");
    // The test finds each agent by its uid in /agents.
    let args = [
        "--devices",
        devices.to_str().expect("utf-8 path"),
        "--unix-socket",
        socket.to_str().expect("utf-8 path"),
        "--admin-show-credentials",
    ];
    let mut server = Binary::start_listening(&listen, &args);
    let listeners = Listeners {
        tcp: server.agent_addr,
        unix_socket: socket.clone(),
    };

    let mut apps = start_all(&listeners, NAMESPACE).await;
    let first = states(&mut apps).await;
    for (case, state) in CASES.iter().zip(&first) {
        check_agent(case, state, NAMESPACE, "test-node");
    }
    let view = until_healthy(server.admin_addr, &first, AFTER_START).await;
    for (case, state) in CASES.iter().zip(&first) {
        check_server(case, &view, state, NAMESPACE);
    }

    until_heartbeat(server.admin_addr, &first, &view).await;

    // A restart (same port): the agents come back on their own, with the same config.
    server.stop(libc::SIGTERM, Duration::from_secs(10));
    let mut server = Binary::start_listening(&listen, &args);
    let view = until_healthy(server.admin_addr, &first, AFTER_RESTART).await;
    let after = states(&mut apps).await;
    for (case, state) in CASES.iter().zip(&after) {
        assert_eq!(
            state["client"]["remoteConfigHash"],
            first[CASES
                .iter()
                .position(|c| c.label() == case.label())
                .unwrap()]["client"]["remoteConfigHash"],
            "{}: the hash changed across the restart",
            case.label()
        );
        check_agent(case, state, NAMESPACE, "test-node");
        check_server(case, &view, state, NAMESPACE);
    }

    exit_all(apps).await;
    eventually(
        Duration::from_secs(10),
        "every agent disconnected",
        || async {
            let view = agents(server.admin_addr).await;
            view["agents"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        },
    )
    .await;
    server.stop(libc::SIGTERM, Duration::from_secs(10));
}

/// The fixture in `namespace`.
fn instrumentation_config(namespace: &str) -> DynamicObject {
    let mut object: DynamicObject = serde_json::from_value(fixture()).expect("an object");
    object.metadata.namespace = Some(namespace.into());
    object
        .data
        .as_object_mut()
        .expect("an object")
        .remove("status");
    object
}

/// The resource of the agent in `state`, once it shows it healthy.
async fn healthy_instance(api: &Api<DynamicObject>, case: &Case, state: &Value) -> DynamicObject {
    let name = instance_name(
        case.pod,
        case.container,
        state["pid"].as_i64().expect("pid"),
    );
    eventually(
        Duration::from_secs(20),
        &format!("{} healthy in {name}", case.label()),
        || async {
            let object = api.get_opt(&name).await.ok().flatten()?;
            (object.data["status"]["healthy"] == true).then_some(object)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_release_in_kubernetes_mode() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("pyagents").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    for (pod, containers, (kind, _)) in pods() {
        let owner = if kind == "Deployment" {
            ("ReplicaSet", REPLICA_SET)
        } else {
            (kind, "cart")
        };
        let spec = PodSpecification {
            containers: &containers,
            owner: Some(owner),
            ..PodSpecification::new(pod, &node)
        };
        create_pod(&client, &namespace, spec).await;
    }
    let configs_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &configs::api_resource());
    configs_api
        .create(&PostParams::default(), &instrumentation_config(&namespace))
        .await
        .expect("create the InstrumentationConfig");
    let kubelet = ScriptedKubelet::start();
    let device_case = CASES.iter().find(|c| c.release().uses_device_id()).unwrap();
    kubelet.allocate(
        &namespace,
        device_case.pod,
        device_case.container,
        DEVICE_ID,
    );

    let dir = tempfile::tempdir().expect("temporary folder");
    let port = xtask::ports::stable_loopback_port().expect("a free port");
    let listeners = Listeners {
        tcp: SocketAddr::from(([127, 0, 0, 1], port)),
        unix_socket: dir.path().join("exchange.sock"),
    };
    let config = || KubeServerConfig {
        listen: listeners.tcp,
        unix_socket: Some(listeners.unix_socket.clone()),
        kubelet_socket: Some(kubelet.socket()),
        ..KubeServerConfig::new(&node)
    };
    let server = start_server(plane, config()).await;
    let admin_addr = server.server.admin_addr();
    let instances_api = instances(&client, &namespace);

    let mut apps = start_all(&listeners, &namespace).await;
    let first = states(&mut apps).await;
    for (case, state) in CASES.iter().zip(&first) {
        check_agent(case, state, &namespace, &node);
    }
    let view = until_healthy(admin_addr, &first, AFTER_START).await;
    for (case, state) in CASES.iter().zip(&first) {
        check_server(case, &view, state, &namespace);
        healthy_instance(&instances_api, case, state).await;
    }

    // The app container's entry changes (the disabled rule is enabled): the agents of that
    // container get a new hash on their next poll, and the releases that read head sampling
    // apply the new rule; the other containers' configs do not change.
    let mut changed = entry("app");
    changed["traces"]["headSampling"]["noisyOperations"][1]["disabled"] = json!(false);
    let containers = json!([changed, entry("worker")]);
    configs_api
        .patch(
            "deployment-coupon",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"containers": containers}})),
        )
        .await
        .expect("change the InstrumentationConfig");
    let started = Instant::now();
    let mut after = Vec::new();
    for ((case, app), before) in CASES.iter().zip(apps.iter_mut()).zip(&first) {
        let hash_before = before["client"]["remoteConfigHash"].clone();
        let state = if case.container == "app" {
            let deadline = started + Duration::from_secs(45);
            loop {
                let state = app.state().await;
                if state["client"]["remoteConfigHash"] != hash_before {
                    break state;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: no new config within 45 s",
                    case.label()
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        } else {
            app.state().await
        };
        if case.container == "app" && case.expect == Expect::SampledByRules {
            assert_eq!(
                state["samplerConfig"],
                changed["traces"]["headSampling"],
                "{}: {state}",
                case.label()
            );
            assert_eq!(
                state["spans"]["/orders/{id}"]["sampled"],
                false,
                "{}",
                case.label()
            );
        }
        after.push(state);
    }
    // Every agent has polled at least once since the change: the others kept their hash.
    let view = agents(admin_addr).await;
    until_heartbeat(admin_addr, &first, &view).await;
    for ((case, app), before) in CASES.iter().zip(apps.iter_mut()).zip(&first) {
        if case.container != "app" {
            let state = app.state().await;
            assert_eq!(
                state["client"]["remoteConfigHash"],
                before["client"]["remoteConfigHash"],
                "{}: another container's change reached it",
                case.label()
            );
        }
    }

    // A restart of the server (watches included) on the same port.
    server.server.shutdown().await;
    drop(server.kube);
    let server = start_server(plane, config()).await;
    let admin_addr = server.server.admin_addr();
    let view = until_healthy(admin_addr, &after, AFTER_RESTART).await;
    for ((case, app), state) in CASES.iter().zip(apps.iter_mut()).zip(&after) {
        // The same config, by the same hash, from the restarted server.
        check_server(case, &view, &app.state().await, &namespace);
        assert_eq!(
            app.state().await["client"]["remoteConfigHash"],
            state["client"]["remoteConfigHash"],
            "{}: the hash changed across the restart",
            case.label()
        );
        healthy_instance(&instances_api, case, state).await;
    }

    let names: Vec<String> = CASES
        .iter()
        .zip(&after)
        .map(|(case, state)| {
            instance_name(case.pod, case.container, state["pid"].as_i64().unwrap())
        })
        .collect();
    exit_all(apps).await;
    eventually(
        Duration::from_secs(20),
        "every agent's resource deleted on exit",
        || async {
            for name in &names {
                if instances_api.get_opt(name).await.ok().flatten().is_some() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    server.server.shutdown().await;
}

/// A Python process that re-executes itself (`os.exec*`) comes back with the same pid and
/// a new agent uid, while its old agent still counts as live. Its connection (the unix
/// socket, from a process in the pod's container cgroup) proves it is that process: it
/// gets its remote config on its first try, and takes the resource over at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reexecuted_agent_is_served_at_once_and_takes_its_resource_over() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("pyreexec").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    let pod = "coupon-7d9f8b6c5d-reexec";
    let container_id = "7c2e4a6b8d0f1e3c5a7b9d1f3e5c7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e1c";
    let spec = PodSpecification {
        owner: Some(("ReplicaSet", REPLICA_SET)),
        ..PodSpecification::new(pod, &node)
    };
    let pod_uid = create_pod(&client, &namespace, spec).await;
    set_app_container_id(&client, &namespace, pod, container_id).await;
    let cgroup = cgroup::Cgroup::pod_container(&pod_uid, container_id);
    let (server, socket, _dir) = start_unix_server(plane, &node, &namespace, pod).await;
    let instances_api = instances(&client, &namespace);

    let injected = Injected::Pod {
        namespace: namespace.clone(),
        pod: pod.into(),
        container: "app".into(),
    };
    let mut app = AgentApp::start_within(
        Release::newest(),
        &Transport::Unix(socket.clone()),
        &injected,
        Some(cgroup.enter_then_exec()),
    )
    .await;
    let before = app.state().await;
    let name = instance_name(pod, "app", before["pid"].as_i64().expect("pid"));
    let object = eventually(
        Duration::from_secs(20),
        "the first agent healthy",
        || async {
            let object = instances_api.get_opt(&name).await.ok().flatten()?;
            (object.data["status"]["healthy"] == true).then_some(object)
        },
    )
    .await;
    assert_eq!(
        object.metadata.labels.unwrap_or_default()["odigos.io/peer-verification"],
        "verified"
    );

    let took = app.reexec().await;
    let after = app.state().await;
    assert_eq!(after["pid"], before["pid"], "the same process");
    assert_ne!(uid_of(&after), uid_of(&before), "a new agent");
    // Its first answer carried the config: no retry (2 s apart), traces on, rules applied.
    assert!(
        took < Duration::from_secs(2),
        "the new agent took {took:?} to start"
    );
    assert_eq!(after["tracerProvider"], "TracerProvider", "{after}");
    let view = agents(server.server.admin_addr()).await;
    let uids: Vec<&str> = view["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["instanceUid"].as_str())
        .collect();
    assert_eq!(uids, [uid_of(&after)], "the old uid is forgotten: {view}");
    // The resource (the same one) shows the new agent, healthy.
    eventually(
        Duration::from_secs(20),
        "the resource shows the new agent",
        || async {
            let object = instances_api.get_opt(&name).await.ok().flatten()?;
            let shows_new = object.data["status"]["identifyingAttributes"]
                .as_array()?
                .iter()
                .any(|a| {
                    a["key"] == "service.instance.id" && a["value"] == uid_of(&after).as_str()
                });
            (shows_new && object.data["status"]["healthy"] == true).then_some(())
        },
    )
    .await;
    assert_eq!(app.exit().await, Some(0));
    server.server.shutdown().await;
    drop(cgroup);
}
