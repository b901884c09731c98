//! The server's Kubernetes edges against a real kube-apiserver (started by the test harness;
//! a test fails, never skips, when it cannot start): identity for every owner kind and every
//! refusal, the life of an agent's InstrumentationInstance, stale agents, the per-pod cap,
//! InstrumentationConfig changes, and the start-up resync. The server runs as the `odiglet`
//! service account with exactly the rights of deploy/rbac.yaml.

#[path = "support/client.rs"]
mod client;
#[path = "support/kube.rs"]
mod kube_support;
#[path = "support/kubelet.rs"]
mod kubelet;
#[path = "support/messages.rs"]
mod messages;

use std::time::Duration;

use hyper::StatusCode;
use kube::api::DeleteParams;
use odigos_opamp_server::identity::{
    Identity, IdentityError, IdentityRequest, Workload, WorkloadKind,
};
use odigos_opamp_server::store::InstanceStore;
use serde_json::json;

use kube_support::{
    Agent, KubeServerConfig, PodSpecification, admin, create_pod, eventually, health_report,
    instance_name, instances, node_for, shared_plane, start_server, wait_for_instance,
};
use kubelet::ScriptedKubelet;

fn attributes(namespace: &str, pod: &str, container: &str) -> IdentityRequest {
    IdentityRequest {
        device_id: None,
        namespace: Some(namespace.into()),
        pod: Some(pod.into()),
        container: Some(container.into()),
        ..IdentityRequest::default()
    }
}

fn device(id: &str) -> IdentityRequest {
    IdentityRequest {
        device_id: Some(Ok(id.into())),
        ..IdentityRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_owner_kind_resolves_to_its_workload() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("kinds").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    let rollout = [("rollouts-pod-template-hash", "6f9d")];
    // (pod, its controller, its labels, the expected workload kind and name)
    type Case<'a> = (
        &'a str,
        Option<(&'a str, &'a str)>,
        &'a [(&'a str, &'a str)],
        WorkloadKind,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "rs-pod",
            Some(("ReplicaSet", "coupon-7d9f8b6c5d")),
            &[],
            WorkloadKind::Deployment,
            "coupon",
        ),
        (
            "argo-pod",
            Some(("ReplicaSet", "canary-6f9d")),
            &rollout,
            WorkloadKind::Rollout,
            "canary",
        ),
        (
            "rc-pod",
            Some(("ReplicationController", "legacy-3")),
            &[],
            WorkloadKind::DeploymentConfig,
            "legacy",
        ),
        (
            "cron-pod",
            Some(("Job", "report-28512345")),
            &[],
            WorkloadKind::CronJob,
            "report",
        ),
        (
            "job-pod",
            Some(("Job", "migrate")),
            &[],
            WorkloadKind::Job,
            "migrate",
        ),
        (
            "sts-pod",
            Some(("StatefulSet", "db")),
            &[],
            WorkloadKind::StatefulSet,
            "db",
        ),
        (
            "ds-pod",
            Some(("DaemonSet", "agent")),
            &[],
            WorkloadKind::DaemonSet,
            "agent",
        ),
        (
            "deploy-pod",
            Some(("Deployment", "web")),
            &[],
            WorkloadKind::Deployment,
            "web",
        ),
        (
            "static-pod",
            Some(("Node", "the-node")),
            &[],
            WorkloadKind::StaticPod,
            "static-pod",
        ),
        ("bare-pod", None, &[], WorkloadKind::Pod, "bare-pod"),
    ];
    let mut uids = Vec::new();
    for (pod, owner, labels, _, _) in &cases {
        let spec = PodSpecification {
            owner: *owner,
            labels,
            ..PodSpecification::new(pod, &node)
        };
        uids.push(create_pod(&client, &namespace, spec).await);
    }
    let server = start_server(plane, KubeServerConfig::new(&node)).await;
    for ((pod, _, _, kind, name), uid) in cases.iter().zip(uids) {
        let identity = server
            .kube
            .identity
            .resolve(&attributes(&namespace, pod, "app"))
            .await
            .unwrap_or_else(|e| panic!("{pod}: {e}"));
        assert_eq!(
            identity.workload,
            Workload {
                kind: *kind,
                name: name.to_string()
            },
            "{pod}"
        );
        assert_eq!(identity.pod_uid.as_deref(), Some(uid.as_str()), "{pod}");
        assert_eq!(
            (identity.namespace.as_str(), identity.container.as_str()),
            (namespace.as_str(), "app")
        );
    }
    assert_eq!(
        server.kube.pods.len(),
        cases.len(),
        "all from the node's pod watch"
    );
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_reported_attributes_are_checked_against_the_pod() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("claims").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    create_pod(
        &client,
        &namespace,
        PodSpecification {
            containers: &["app", "sidecar"],
            ..PodSpecification::new("mine", &node)
        },
    )
    .await;
    create_pod(
        &client,
        &namespace,
        PodSpecification::new("elsewhere", "another-node"),
    )
    .await;
    let server = start_server(plane, KubeServerConfig::new(&node)).await;
    let identity = &server.kube.identity;

    let ok = identity
        .resolve(&attributes(&namespace, "mine", "sidecar"))
        .await;
    assert_eq!(ok.map(|i| i.container), Ok("sidecar".to_owned()));

    let unverified = |r: Result<_, IdentityError>| match r {
        Err(IdentityError::Unverified(message)) => message,
        other => panic!("expected Unverified, got {other:?}"),
    };
    let missing = unverified(
        identity
            .resolve(&attributes(&namespace, "ghost", "app"))
            .await,
    );
    assert!(missing.contains("does not exist"), "{missing}");
    let other_node = unverified(
        identity
            .resolve(&attributes(&namespace, "elsewhere", "app"))
            .await,
    );
    assert!(
        other_node.contains("another-node") && other_node.contains(&node),
        "{other_node}"
    );
    let no_container = unverified(
        identity
            .resolve(&attributes(&namespace, "mine", "db"))
            .await,
    );
    assert!(
        no_container.contains("\"db\"") && no_container.contains("app, sidecar"),
        "{no_container}"
    );

    // Without a kubelet socket a device id cannot be checked: the attributes are, if any.
    let with_attributes = IdentityRequest {
        device_id: Some(Ok("dev-1".into())),
        ..attributes(&namespace, "mine", "app")
    };
    assert!(identity.resolve(&with_attributes).await.is_ok());
    let device_only = unverified(identity.resolve(&device("dev-1")).await);
    assert!(device_only.contains("kubelet socket"), "{device_only}");

    // Over HTTP: refused with 401 and nothing is written.
    let mut agent = Agent::connect(&server.server, "claims-ghost").await;
    let reply = agent.first(&namespace, "ghost", "app", 7).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
    assert!(server.server.agents().is_empty());
    server.server.shutdown().await;
    let list = instances(&client, &namespace)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(list.items.is_empty(), "no resource for a refused agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_ids_resolve_through_the_kubelet_and_the_pod() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("devices").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    create_pod(
        &client,
        &namespace,
        PodSpecification {
            owner: Some(("StatefulSet", "db")),
            ..PodSpecification::new("db-0", &node)
        },
    )
    .await;
    let mut kubelet = ScriptedKubelet::start();
    kubelet.allocate(
        &namespace,
        "db-0",
        "app",
        "8497ec75-8928-4e80-90e0-4f29642a0fea",
    );
    let server = start_server(
        plane,
        KubeServerConfig {
            kubelet_socket: Some(kubelet.socket()),
            ..KubeServerConfig::new(&node)
        },
    )
    .await;
    let identity = &server.kube.identity;

    let found = identity
        .resolve(&device("8497ec75-8928-4e80-90e0-4f29642a0fea"))
        .await
        .expect("resolved");
    assert_eq!(
        (found.pod_name.as_str(), found.workload.kind),
        ("db-0", WorkloadKind::StatefulSet)
    );
    assert!(matches!(
        identity.resolve(&device("0000-unknown")).await,
        Err(IdentityError::UnknownDevice(_))
    ));

    // The kubelet names a pod that is not (or no longer) on this node: refused.
    kubelet.allocate(&namespace, "gone-0", "app", "dev-gone");
    assert!(matches!(
        identity.resolve(&device("dev-gone")).await,
        Err(IdentityError::Unverified(_))
    ));

    kubelet.stop().await;
    match identity.resolve(&device("dev-new")).await {
        Err(IdentityError::Unavailable { retry_after, .. }) => {
            assert!(retry_after >= Duration::from_secs(1))
        }
        other => panic!("kubelet down: expected Unavailable, got {other:?}"),
    }
    // Over HTTP the transient failure is 503 with Retry-After.
    let mut agent = Agent::connect(&server.server, "devices-new").await;
    let msg = kube_support::first_message(b"devices-new", &namespace, "db-0", "app", 3);
    let reply = agent
        .connection
        .post(&msg, &[("x-odigos-deviceid", "dev-new")])
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!reply.header("retry-after").is_empty());
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_life_of_an_agent_in_its_instrumentation_instance() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("life").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    let pod = "coupon-7d9f8b6c5d-x2x9z";
    let pod_uid = create_pod(
        &client,
        &namespace,
        PodSpecification {
            owner: Some(("ReplicaSet", "coupon-7d9f8b6c5d")),
            ..PodSpecification::new(pod, &node)
        },
    )
    .await;
    let server = start_server(plane, KubeServerConfig::new(&node)).await;
    let api = instances(&client, &namespace);
    let name = instance_name(pod, "app", 4242);
    assert_eq!(name, "coupon-7d9f8b6c5d-x2x9z.app.4242");

    // First message: the resource with its name, labels, owner reference and status.
    let mut agent = Agent::connect(&server.server, "life-agent").await;
    let reply = agent.first(&namespace, pod, "app", 4242).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let object = eventually(
        Duration::from_secs(15),
        "the resource with its status",
        || async {
            api.get_opt(&name)
                .await
                .ok()
                .flatten()
                .filter(|o| o.data.get("status").is_some())
        },
    )
    .await;
    let labels = object.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("instrumented-app").map(String::as_str),
        Some("deployment-coupon")
    );
    assert_eq!(labels.get("ownerPodName").map(String::as_str), Some(pod));
    assert_eq!(labels.get("odigos.io/node"), Some(&node));
    let owners = object.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (
            owners[0].kind.as_str(),
            owners[0].name.as_str(),
            owners[0].uid.as_str(),
            owners[0].controller
        ),
        ("Pod", pod, pod_uid.as_str(), Some(true))
    );
    assert_eq!(object.data["spec"], json!({"containerName": "app"}));
    let status = &object.data["status"];
    assert_eq!(status["healthy"], json!(false));
    assert_eq!(status["reason"], json!("Starting"));
    assert_eq!(
        status["message"],
        json!("Python OpenTelemetry agent is starting")
    );
    assert_eq!(status["lastStatusTime"], json!("2026-01-01T00:00:00Z"));
    assert!(
        status["identifyingAttributes"]
            .as_array()
            .is_some_and(|a| a.contains(&json!({"key": "process.pid", "value": "4242"}))),
        "{status}"
    );
    assert_eq!(
        status["nonIdentifyingAttributes"],
        json!([{"key": "host.name", "value": pod}])
    );

    // Health change: the status follows, and `message` goes away with the error.
    agent.report(health_report(true, "Healthy", "")).await;
    let object = eventually(Duration::from_secs(15), "status Healthy", || async {
        api.get_opt(&name)
            .await
            .ok()
            .flatten()
            .filter(|o| o.data["status"]["reason"] == "Healthy")
    })
    .await;
    assert_eq!(object.data["status"]["healthy"], json!(true));
    assert!(
        object.data["status"].get("message").is_none(),
        "{}",
        object.data["status"]
    );

    // Heartbeats: no write at all.
    server.kube.store.flush().await;
    let before = server.kube.store.stats();
    let version = object.metadata.resource_version.clone();
    for _ in 0..20 {
        let ack = agent.heartbeat().await;
        assert!(ack.remote_config.is_none());
    }
    server.kube.store.flush().await;
    assert_eq!(
        server.kube.store.stats(),
        before,
        "heartbeats wrote nothing"
    );
    let now = api.get(&name).await.expect("still there");
    assert_eq!(
        now.metadata.resource_version, version,
        "the object did not change"
    );

    // Healthy disconnect: deleted.
    agent
        .disconnect(Some(health_report(true, "ProcessTerminated", "")))
        .await;
    eventually(Duration::from_secs(15), "the resource deleted", || async {
        matches!(api.get_opt(&name).await, Ok(None)).then_some(())
    })
    .await;
    assert!(server.server.agents().is_empty());
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_disconnect_keeps_the_resource_with_that_health() {
    let plane = shared_plane();
    let namespace = plane
        .create_namespace("unhealthy")
        .await
        .expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    create_pod(&client, &namespace, PodSpecification::new("worker", &node)).await;
    let server = start_server(plane, KubeServerConfig::new(&node)).await;
    let api = instances(&client, &namespace);
    let name = instance_name("worker", "app", 9);

    let mut agent = Agent::connect(&server.server, "unhealthy-agent").await;
    assert_eq!(
        agent.first(&namespace, "worker", "app", 9).await.status,
        StatusCode::OK
    );
    agent
        .disconnect(Some(health_report(
            false,
            "ProcessTerminated",
            "exit code 3",
        )))
        .await;
    server.server.shutdown().await; // flushes the store
    let object = api.get(&name).await.expect("kept");
    assert_eq!(object.data["status"]["healthy"], json!(false));
    assert_eq!(object.data["status"]["reason"], json!("ProcessTerminated"));
    assert_eq!(object.data["status"]["message"], json!("exit code 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_agents_are_deleted_unless_they_lost_the_server() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("stale").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    create_pod(&client, &namespace, PodSpecification::new("quiet", &node)).await;
    let interval = Duration::from_millis(400);
    let server = start_server(
        plane,
        KubeServerConfig {
            heartbeat_interval: interval,
            ..KubeServerConfig::new(&node)
        },
    )
    .await;
    let api = instances(&client, &namespace);

    let mut silent = Agent::connect(&server.server, "stale-silent").await;
    assert_eq!(
        silent.first(&namespace, "quiet", "app", 10).await.status,
        StatusCode::OK
    );
    silent.report(health_report(true, "Healthy", "")).await;
    let mut lost = Agent::connect(&server.server, "stale-lost").await;
    assert_eq!(
        lost.first(&namespace, "quiet", "app", 11).await.status,
        StatusCode::OK
    );
    lost.report(health_report(
        false,
        "NoConnectionToOpAMPServer",
        "cannot reach the OpAMP server",
    ))
    .await;
    for name in [
        instance_name("quiet", "app", 10),
        instance_name("quiet", "app", 11),
    ] {
        wait_for_instance(&api, &name, "created").await;
    }

    // Both go silent; after 2.5 intervals both are dropped from memory.
    eventually(Duration::from_secs(10), "both agents expired", || async {
        server.server.agents().is_empty().then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(15),
        "the silent agent's resource deleted",
        || async {
            matches!(
                api.get_opt(&instance_name("quiet", "app", 10)).await,
                Ok(None)
            )
            .then_some(())
        },
    )
    .await;
    server.server.shutdown().await;
    let kept = api
        .get(&instance_name("quiet", "app", 11))
        .await
        .expect("the lost agent's resource is kept");
    assert_eq!(
        kept.data["status"]["reason"],
        json!("NoConnectionToOpAMPServer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_keeps_at_most_sixteen_resources() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("cap").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    create_pod(
        &client,
        &namespace,
        PodSpecification::new("crashloop", &node),
    )
    .await;
    let server = start_server(plane, KubeServerConfig::new(&node)).await;
    // A crash-looping process: a new pid each time, never a disconnect.
    for pid in 1..=20 {
        let mut agent = Agent::connect(&server.server, &format!("cap-{pid}")).await;
        assert_eq!(
            agent
                .first(&namespace, "crashloop", "app", pid)
                .await
                .status,
            StatusCode::OK
        );
    }
    server.server.shutdown().await;
    let list = instances(&client, &namespace)
        .list(&Default::default())
        .await
        .expect("list");
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (5..=20)
        .map(|pid| instance_name("crashloop", "app", pid))
        .collect();
    expected.sort();
    assert_eq!(names, expected, "the 16 most recent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instrumentation_config_change_reaches_the_agent_on_its_next_poll() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("config").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    create_pod(
        &client,
        &namespace,
        PodSpecification {
            owner: Some(("ReplicaSet", "coupon-5c7b")),
            ..PodSpecification::new("coupon-5c7b-abcde", &node)
        },
    )
    .await;
    let server = start_server(plane, KubeServerConfig::new(&node)).await;
    let mut agent = Agent::connect(&server.server, "config-agent").await;
    let first = agent
        .first(&namespace, "coupon-5c7b-abcde", "app", 5)
        .await
        .message();
    let default_hash = agent.hash.clone();
    let sdk = |config: &odigos_opamp_proto::opamp::proto::AgentRemoteConfig,
               key: &str|
     -> serde_json::Value {
        let body = &config.config.as_ref().expect("config map").config_map[key].body;
        serde_json::from_slice(body).expect("JSON section")
    };
    let first_config = first.remote_config.expect("config in the first answer");
    assert_eq!(
        sdk(&first_config, "SDK")["remoteResourceAttributes"][2],
        json!({"key": "service.name", "value": "coupon"})
    );
    assert!(agent.heartbeat().await.remote_config.is_none());

    plane
        .apply_manifest(
            "apiVersion: odigos.io/v1alpha1\nkind: InstrumentationConfig\nmetadata:\n  name: deployment-coupon\n\
             spec:\n  serviceName: coupon-svc\n  sdkConfigs:\n  - language: python\n    instrumentationLibraryConfigs:\n\
             \x20   - libraryId: {libraryName: flask}\n      traceConfig: {enabled: false}\n",
            &namespace,
        )
        .await
        .expect("apply the InstrumentationConfig");
    let mut new_config = None;
    for _ in 0..200 {
        if let Some(config) = agent.heartbeat().await.remote_config {
            new_config = Some(config);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_config = new_config.expect("the changed config within 10 s of polls");
    assert_ne!(new_config.config_hash, default_hash);
    assert_eq!(
        sdk(&new_config, "SDK")["remoteResourceAttributes"][2],
        json!({"key": "service.name", "value": "coupon-svc"})
    );
    assert_eq!(
        sdk(&new_config, "InstrumentationLibraries"),
        json!([{"name": "flask", "traces": {"enabled": false}}])
    );
    assert!(agent.heartbeat().await.remote_config.is_none(), "sent once");

    // Deleted: back to the defaults, and the default hash.
    kube::api::Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        &namespace,
        &odigos_opamp_server::kube::configs::api_resource(),
    )
    .delete("deployment-coupon", &DeleteParams::default())
    .await
    .expect("delete the InstrumentationConfig");
    let mut back = None;
    for _ in 0..200 {
        if let Some(config) = agent.heartbeat().await.remote_config {
            back = Some(config);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        back.expect("defaults again within 10 s").config_hash,
        default_hash
    );
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_resync_deletes_only_resources_whose_agents_are_gone() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("resync").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    create_pod(&client, &namespace, PodSpecification::new("app-pod", &node)).await;
    let api = instances(&client, &namespace);

    // A first server life: four agents, left as they were (a crash: no disconnects).
    let first = start_server(plane, KubeServerConfig::new(&node)).await;
    let cases = [
        (1, "returns", health_report(true, "Healthy", "")),
        (2, "gone", health_report(true, "Healthy", "")),
        (
            3,
            "lost",
            health_report(true, "NoConnectionToOpAMPServer", ""),
        ),
        (4, "failed", health_report(false, "AgentFailure", "boom")),
    ];
    for (pid, label, health) in &cases {
        let mut agent = Agent::connect(&first.server, &format!("resync-{label}")).await;
        assert_eq!(
            agent.first(&namespace, "app-pod", "app", *pid).await.status,
            StatusCode::OK
        );
        agent.report(health.clone()).await;
    }
    first.kube.store.flush().await;
    drop(first);
    // Another node's resource must never be touched.
    plane
        .apply_manifest(
            &format!("apiVersion: odigos.io/v1alpha1\nkind: InstrumentationInstance\nmetadata:\n  name: other-node.app.1\n  labels: {{odigos.io/node: other-{node}}}\nspec:\n  containerName: app\n"),
            &namespace,
        )
        .await
        .expect("another node's resource");
    let returns = api
        .get(&instance_name("app-pod", "app", 1))
        .await
        .expect("returns");

    // The restarted server: the returning agent comes back within the grace period.
    let grace = Duration::from_secs(3);
    let second = start_server(
        plane,
        KubeServerConfig {
            resync_grace: Some(grace),
            ..KubeServerConfig::new(&node)
        },
    )
    .await;
    // It re-reports its full state: the same description and health as before.
    let mut agent = Agent::connect(&second.server, "resync-returns").await;
    let mut full_state =
        kube_support::first_message(b"resync-returns", &namespace, "app-pod", "app", 1);
    full_state.sequence_num = 7;
    full_state.health = Some(health_report(true, "Healthy", ""));
    assert_eq!(agent.first_message(full_state).await.status, StatusCode::OK);
    agent.heartbeat().await;
    let report = tokio::time::timeout(grace * 5, second.kube.store.resync_finished())
        .await
        .expect("resync within the grace period");
    assert_eq!(
        (report.listed, report.deleted, report.kept),
        (4, 1, 2),
        "{report:?}"
    );
    second.server.shutdown().await;

    let exists = |pid| {
        let api = api.clone();
        async move {
            api.get_opt(&instance_name("app-pod", "app", pid))
                .await
                .expect("get")
                .is_some()
        }
    };
    assert!(exists(1).await && !exists(2).await && exists(3).await && exists(4).await);
    assert!(
        api.get_opt("other-node.app.1")
            .await
            .expect("get")
            .is_some()
    );
    // The returning agent reported what was already written: its status was not rewritten.
    let stats = second.kube.store.stats();
    assert_eq!(stats.status_applies, 0, "{stats:?}");
    let after = api
        .get(&instance_name("app-pod", "app", 1))
        .await
        .expect("returns");
    assert_eq!(
        after.metadata.resource_version,
        returns.metadata.resource_version
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_odigos-opamp-server");

/// The binary's Kubernetes mode, configured by environment only, as the DaemonSet does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_a_node_in_kubernetes_mode_as_the_odiglet_account() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let plane = shared_plane();
    let namespace = plane.create_namespace("binary").await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    create_pod(
        &client,
        &namespace,
        PodSpecification {
            owner: Some(("DaemonSet", "collector")),
            ..PodSpecification::new("collector-x1", &node)
        },
    )
    .await;
    let kubelet = ScriptedKubelet::start();
    kubelet.allocate(&namespace, "collector-x1", "app", "dev-bin-1");

    let mut child = Command::new(BIN)
        .env("KUBECONFIG", plane.odiglet_kubeconfig_path())
        .env("NODE_NAME", &node)
        .env_remove("ODIGOS_OPAMP_NODE_NAME")
        .env("ODIGOS_OPAMP_KUBELET_SOCKET", kubelet.socket())
        .env("ODIGOS_OPAMP_LISTEN", "127.0.0.1:0")
        .env("ODIGOS_OPAMP_ADMIN_LISTEN", "127.0.0.1:0")
        .env("ODIGOS_OPAMP_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the server binary");
    let stderr = child.stderr.take().expect("stderr");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
                && let (Some(agent), Some(admin)) =
                    (log["agent_addr"].as_str(), log["admin_addr"].as_str())
            {
                let _ = addr_tx.send((agent.to_owned(), admin.to_owned()));
            }
        }
    });
    let (addr, admin_addr) = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a 'listening' log line within 20 s");
    let addr: std::net::SocketAddr = addr.parse().expect("agent_addr is an address");
    let admin_addr: std::net::SocketAddr = admin_addr.parse().expect("admin_addr is an address");

    // The binary answers once its pod watch has synced; the agent presents its device id.
    let mut connection = client::Connection::tcp(addr).await;
    let msg = kube_support::first_message(b"binary-agent", &namespace, "collector-x1", "app", 77);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let reply = loop {
        let reply = connection
            .post(&msg, &[("x-odigos-deviceid", "dev-bin-1")])
            .await;
        if reply.status == StatusCode::OK {
            break reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 200 within 15 s: {} {}",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sdk = String::from_utf8_lossy(
        &reply
            .message()
            .remote_config
            .expect("config")
            .config
            .expect("map")
            .config_map["SDK"]
            .body,
    )
    .into_owned();
    assert!(
        sdk.contains(&format!(r#"{{"key":"k8s.node.name","value":"{node}"}}"#)),
        "{sdk}"
    );
    assert!(
        sdk.contains(r#"{"key":"k8s.daemonset.name","value":"collector"}"#),
        "{sdk}"
    );
    let api = instances(&client, &namespace);
    let object = wait_for_instance(
        &api,
        &instance_name("collector-x1", "app", 77),
        "the binary's resource",
    )
    .await;
    assert_eq!(
        object
            .metadata
            .labels
            .unwrap_or_default()
            .get("instrumented-app")
            .map(String::as_str),
        Some("daemonset-collector")
    );

    // The store's API requests are on /metrics: one object apply for the one agent.
    let metrics = http_get(admin_addr, "/metrics");
    for line in [
        "odigos_opamp_store_backend_requests_total{request=\"object_apply\"} 1",
        "odigos_opamp_store_backend_failures_total 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }

    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "graceful exit: {status}");
}

#[test]
fn kubernetes_mode_needs_a_node_name_and_says_so() {
    let output = std::process::Command::new(BIN)
        .env_remove("NODE_NAME")
        .env_remove("ODIGOS_OPAMP_NODE_NAME")
        .env_remove("ODIGOS_OPAMP_DEVICES")
        .env_remove("ODIGOS_OPAMP_TRUST_SELF_REPORTED")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--node-name") && stderr.contains("--devices"),
        "{stderr}"
    );

    let help = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--kubelet-socket") && help.contains("[env: ODIGOS_OPAMP_KUBELET_SOCKET"),
        "{help}"
    );
    assert!(
        help.contains("/var/lib/kubelet/pod-resources/kubelet.sock"),
        "{help}"
    );
}

/// A plain `GET` on the admin listener; the body as text.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the admin listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}
