//! Faults of the kubelet and the API server, end to end through the server (issue 8,
//! part 4), on a real kube-apiserver and a scripted kubelet:
//!
//! - the kubelet gone, then slow: a new device-id agent gets 503 with Retry-After, in
//!   about the kubelet deadline rather than hanging; known agents never notice;
//! - the API server answering 5xx to every write (an unreachable admission webhook, which
//!   the API server turns into 500), or 409 conflicts (a webhook denying with 409): agents
//!   are answered as usual, the writer meets those answers, and once the API server
//!   recovers every resource holds its agent's latest state.
//!
//! The API server down altogether is `kube_outage.rs`.

#[path = "support/client.rs"]
mod client;
#[path = "support/kube.rs"]
mod kube_support;
#[path = "support/kubelet.rs"]
mod kubelet;
#[path = "support/messages.rs"]
mod messages;
#[path = "support/webhook.rs"]
mod webhook;

use std::time::{Duration, Instant};

use hyper::StatusCode;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use odigos_opamp_server::store::InstanceStore;
use serde_json::json;

use client::Connection;
use kube_support::{
    Agent, KubeServerConfig, PodSpecification, admin, create_pod, eventually, health_report,
    instance_name, instances, node_for, shared_plane, start_server,
};
use kubelet::ScriptedKubelet;
use webhook::DenyingWebhook;
use xtask::kube::request_samples;

const RESOURCE: &str = "instrumentationinstances";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_gone_or_slow_delays_only_new_device_agents() {
    let plane = shared_plane();
    let namespace = plane
        .create_namespace("kubelet-faults")
        .await
        .expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    for pod in ["known-0", "new-0", "slow-0"] {
        create_pod(&client, &namespace, PodSpecification::new(pod, &node)).await;
    }
    let mut kubelet = ScriptedKubelet::start();
    kubelet.allocate(&namespace, "known-0", "app", "dev-known");
    let server = start_server(
        plane,
        KubeServerConfig {
            kubelet_socket: Some(kubelet.socket()),
            ..KubeServerConfig::new(&node)
        },
    )
    .await;
    let addr = server.server.agent_addr();
    let first = |uid: &[u8], pod: &str| kube_support::first_message(uid, &namespace, pod, "app", 9);

    let mut known = Connection::tcp(addr).await;
    let reply = known
        .post(
            &first(b"known", "known-0"),
            &[("x-odigos-deviceid", "dev-known")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // Gone: the socket is removed.
    kubelet.stop().await;
    kubelet.allocate(&namespace, "new-0", "app", "dev-new");
    let mut newcomer = Connection::tcp(addr).await;
    let reply = newcomer
        .post(&first(b"new", "new-0"), &[("x-odigos-deviceid", "dev-new")])
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(!reply.header("retry-after").is_empty());
    assert!(
        server
            .server
            .agents()
            .iter()
            .all(|a| a.instance_uid != b"new"),
        "no state for an agent that could not be resolved"
    );
    let beat = known
        .post(
            &messages::heartbeat(b"known", 1),
            &[("x-odigos-deviceid", "dev-known")],
        )
        .await;
    assert_eq!((beat.status, beat.message().flags), (StatusCode::OK, 0));

    // Back: the agent that was told to retry gets in.
    kubelet.restart();
    // Bounded: the refresh interval is 500 ms, so a few tries are enough.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = newcomer
            .post(&first(b"new", "new-0"), &[("x-odigos-deviceid", "dev-new")])
            .await;
        if reply.status == StatusCode::OK {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the kubelet is back",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(reply.message().remote_config.is_some());

    // Slow: every List takes 10 s, past the server's kubelet deadline (2 s).
    kubelet.set_delay(Duration::from_secs(10));
    kubelet.allocate(&namespace, "slow-0", "app", "dev-slow");
    tokio::time::sleep(Duration::from_millis(600)).await; // past the refresh interval
    let mut slow = Connection::tcp(addr).await;
    let started = Instant::now();
    let reply = slow
        .post(
            &first(b"slow", "slow-0"),
            &[("x-odigos-deviceid", "dev-slow")],
        )
        .await;
    let took = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(!reply.header("retry-after").is_empty());
    assert!(
        took < Duration::from_secs(5),
        "answered after {took:?}: cut off at the deadline"
    );
    let started = Instant::now();
    let beat = known
        .post(
            &messages::heartbeat(b"known", 2),
            &[("x-odigos-deviceid", "dev-known")],
        )
        .await;
    assert_eq!(beat.status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a known agent never waits for the kubelet"
    );
    kubelet.set_delay(Duration::ZERO);
    server.server.shutdown().await;
}

/// `InstrumentationInstance` requests answered with a code starting with `code` so far.
async fn answered(plane: &xtask::kube::ControlPlane, code: &str) -> u64 {
    let text = plane.metrics_text().await.expect("API server metrics");
    request_samples(&text)
        .iter()
        .filter(|s| s.label("resource") == RESOURCE)
        .filter(|s| s.label("code").starts_with(code))
        .map(|s| s.value as u64)
        .sum()
}

/// A webhook on the `InstrumentationInstance` writes of namespaces labelled `faults:
/// <label>`, with `failurePolicy: Fail`: when `client` cannot be reached the API server
/// answers every such write 500, else it passes on the webhook's denial.
fn webhook_on_writes(
    name: &str,
    label: &str,
    client: WebhookClientConfig,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: format!("{name}.faults.odigos.io"),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(1),
            client_config: client,
            namespace_selector: Some(LabelSelector {
                match_labels: Some([("faults".to_owned(), label.to_owned())].into()),
                ..LabelSelector::default()
            }),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["odigos.io".into()]),
                api_versions: Some(vec!["*".into()]),
                operations: Some(vec!["CREATE".into(), "UPDATE".into(), "DELETE".into()]),
                resources: Some(vec![RESOURCE.into(), format!("{RESOURCE}/status")]),
                scope: Some("Namespaced".into()),
            }]),
            ..ValidatingWebhook::default()
        }]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_answering_5xx_delays_writes_but_not_agents_and_loses_nothing() {
    // Port 1 on loopback: nothing listens there.
    let unreachable = WebhookClientConfig {
        url: Some("https://127.0.0.1:1/validate".into()),
        ..WebhookClientConfig::default()
    };
    write_fault("api-5xx", unreachable, "5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_answering_409_delays_writes_but_not_agents_and_loses_nothing() {
    let plane = shared_plane();
    let conflicts = DenyingWebhook::start(&plane.work_dir().join("pki"), 409).await;
    let client = WebhookClientConfig {
        url: Some(format!("https://{}/validate", conflicts.addr)),
        ca_bundle: Some(k8s_openapi::ByteString(plane.ca_pem().as_bytes().to_vec())),
        ..WebhookClientConfig::default()
    };
    write_fault("api-409", client, "409").await;
    assert!(conflicts.denied() > 0, "the webhook saw the writes");
}

/// Every `InstrumentationInstance` write answered `code` by the API server for a few
/// seconds of agent traffic, then normal again.
async fn write_fault(prefix: &str, client_config: WebhookClientConfig, code: &str) {
    let plane = shared_plane();
    let namespace = plane.create_namespace(prefix).await.expect("namespace");
    let node = node_for(&namespace);
    let client = admin(plane).await;
    Api::<Namespace>::all(client.clone())
        .patch(
            &namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"faults": namespace}}})),
        )
        .await
        .expect("label the namespace");
    for pod in ["before-0", "during-0"] {
        create_pod(&client, &namespace, PodSpecification::new(pod, &node)).await;
    }
    let server = start_server(plane, KubeServerConfig::new(&node)).await;
    let api = instances(&client, &namespace);

    let mut before = Agent::connect(&server.server, "before").await;
    assert_eq!(
        before.first(&namespace, "before-0", "app", 5).await.status,
        StatusCode::OK
    );
    server.kube.store.flush().await;
    let name = instance_name("before-0", "app", 5);
    api.get(&name).await.expect("written before the fault");

    let webhooks = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let webhook = format!("fail-{namespace}");
    webhooks
        .create(
            &PostParams::default(),
            &webhook_on_writes(&webhook, &namespace, client_config),
        )
        .await
        .expect("install the webhook");
    // The API server picks webhooks up within a moment: wait until a write fails.
    let probe = json!({
        "apiVersion": "odigos.io/v1alpha1",
        "kind": "InstrumentationInstance",
        "metadata": {"name": "probe"},
        "spec": {"containerName": "probe"},
    });
    let probe: kube::api::DynamicObject = serde_json::from_value(probe).expect("probe object");
    eventually(
        Duration::from_secs(20),
        "the webhook failing writes",
        || {
            let (api, probe) = (api.clone(), probe.clone());
            async move {
                match api.create(&PostParams::default(), &probe).await {
                    Err(kube::Error::Api(status)) if status.code.to_string().starts_with(code) => {
                        Some(())
                    }
                    Ok(_) => {
                        let _ = api.delete("probe", &DeleteParams::default()).await;
                        None
                    }
                    Err(_) => None,
                }
            }
        },
    )
    .await;
    let errors_at_start = answered(plane, code).await;

    // During the fault: health changes and a new agent, every poll answered quickly.
    let mut during = Agent::connect(&server.server, "during").await;
    assert_eq!(
        during.first(&namespace, "during-0", "app", 6).await.status,
        StatusCode::OK
    );
    for (i, status) in ["Degraded", "Recovering", "Healthy"].iter().enumerate() {
        let started = Instant::now();
        before.report(health_report(i == 2, status, "")).await;
        during.heartbeat().await;
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "polls never wait for writes"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let errors = answered(plane, code).await - errors_at_start;
    assert!(errors > 0, "the writer met the {code}xx answers");
    let unchanged = api.get(&name).await.expect("still there");
    assert_ne!(
        unchanged.data["status"]["reason"],
        json!("Healthy"),
        "no write got through"
    );

    // Recovery: the latest state of every resource lands.
    webhooks
        .delete(&webhook, &DeleteParams::default())
        .await
        .expect("remove the webhook");
    eventually(
        Duration::from_secs(30),
        "the latest states after the fault",
        || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let before = api.get(&name).await.ok()?;
                let during = api.get(&instance_name("during-0", "app", 6)).await.ok()?;
                let latest = before.data["status"]["reason"] == json!("Healthy")
                    && before.data["status"]["healthy"] == json!(true);
                (latest && during.data["spec"]["containerName"] == json!("app")).then_some(())
            }
        },
    )
    .await;
    server.server.shutdown().await;
}
