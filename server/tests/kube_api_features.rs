//! What the server takes from a current API server, and how it does without on the oldest
//! supported one (the same tests run on both: `cargo xtask test` runs this binary again with
//! `ODIGOS_KUBE_VERSION=1.20`):
//!
//! - strict field validation on its applies: a misspelt field in an apply body, sent with
//!   the parameters and through the body builders the server's writer uses, is refused
//!   instead of being dropped in silence;
//! - streaming lists for its watches (this node's pods, every `InstrumentationConfig`): no
//!   LIST request at all where the API server streams, a paged LIST where it refuses.

#[path = "support/client.rs"]
mod client;
#[path = "support/kube.rs"]
mod kube_support;
#[path = "support/messages.rs"]
mod messages;

use kube::api::{Api, Patch};
use odigos_opamp_server::kube::crds::{InstrumentationInstance, InstrumentationInstanceSpec};
use odigos_opamp_server::kube::instances::resource::{self, ResourceRef};
use odigos_opamp_server::kube::watch::InitialLists;
use odigos_opamp_server::protocol::instance::{Attribute, InstanceStatus};
use serde_json::Value;
use xtask::kube::{KubeVersion, metric_samples};

use kube_support::{KubeServerConfig, count_requests, node_for, shared_plane, start_server};

fn status() -> InstanceStatus {
    InstanceStatus {
        identifying_attributes: vec![Attribute {
            key: "process.pid".into(),
            value: "7".into(),
        }],
        non_identifying_attributes: Vec::new(),
        healthy: Some(true),
        message: None,
        reason: Some("Healthy".into()),
        last_status_time: "2026-01-01T00:00:00Z".into(),
        components: Vec::new(),
    }
}

/// `value` with the object key `from` renamed to `to`, wherever it is.
fn misspell(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            if let Some(inner) = map.remove(from) {
                map.insert(to.to_owned(), inner);
            }
            map.values_mut().for_each(|v| misspell(v, from, to));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| misspell(v, from, to)),
        _ => {}
    }
}

/// The status of the stored object, as JSON.
async fn stored_status(api: &Api<InstrumentationInstance>, name: &str) -> Value {
    let object = api.get(name).await.expect("get the resource");
    serde_json::to_value(object.status).expect("status as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_field_in_the_servers_applies_is_refused_not_dropped() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("strict").await.expect("namespace");
    let odiglet = plane.odiglet_client().await.expect("odiglet client");
    let api: Api<InstrumentationInstance> = Api::namespaced(odiglet, &namespace);
    let target = ResourceRef {
        namespace: namespace.clone(),
        name: "web-app-7".into(),
    };
    let params = resource::apply_params();

    // As the writer sends them, both applies pass.
    let object = InstrumentationInstance::new(
        &target.name,
        InstrumentationInstanceSpec {
            container_name: "app".into(),
        },
    );
    api.patch(&target.name, &params, &Patch::Apply(&object))
        .await
        .expect("the object apply");
    let good = resource::status_json(&status());
    api.patch_status(
        &target.name,
        &params,
        &Patch::Apply(&resource::status_apply_body(&target, &good)),
    )
    .await
    .expect("the status apply");

    // The same applies with one field misspelt.
    let mut bad_status = resource::status_apply_body(&target, &good);
    misspell(&mut bad_status, "healthy", "heathy");
    let status_answer = api
        .patch_status(&target.name, &params, &Patch::Apply(&bad_status))
        .await;
    let mut bad_object = serde_json::to_value(&object).expect("object as JSON");
    misspell(&mut bad_object, "containerName", "containerNmae");
    let object_answer = api
        .patch(&target.name, &params, &Patch::Apply(&bad_object))
        .await;

    for (what, answer, field) in [
        ("status", status_answer.map(drop), "heathy"),
        ("object", object_answer.map(drop), "containerNmae"),
    ] {
        match answer {
            Err(kube::Error::Api(refusal)) => {
                eprintln!(
                    "Kubernetes {}: the misspelt {what} apply: {} {}: {}",
                    plane.version(),
                    refusal.code,
                    refusal.reason,
                    refusal.message
                );
                assert_eq!(refusal.code, 400, "{what}: {refusal:?}");
                assert!(
                    refusal.message.contains(field),
                    "{what}: {}",
                    refusal.message
                );
            }
            other => panic!(
                "Kubernetes {}: the {what} apply with {field:?} must be refused, got {other:?}",
                plane.version()
            ),
        }
    }
    assert_eq!(
        stored_status(&api, &target.name).await,
        good,
        "a refused apply leaves the resource as it was"
    );
}

/// The number of streaming lists the API server completed for `resource`.
fn watch_lists(metrics: &str, resource: &str) -> f64 {
    metric_samples(metrics, "apiserver_watch_list_duration_seconds_count")
        .iter()
        .filter(|s| s.label("resource") == resource)
        .map(|s| s.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watches_stream_their_lists_where_the_api_server_can() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("lists").await.expect("namespace");
    let before = plane.metrics_text().await.expect("metrics");
    let server = start_server(plane, KubeServerConfig::new(&node_for(&namespace))).await;
    let after = plane.metrics_text().await.expect("metrics");

    let lists = |resource: &str| {
        count_requests(&after, resource, &["LIST"]) - count_requests(&before, resource, &["LIST"])
    };
    let streamed = |resource: &str| watch_lists(&after, resource) - watch_lists(&before, resource);
    let kinds = [
        ("pods", server.kube.pods.initial_lists()),
        (
            "instrumentationconfigs",
            server.kube.configs.watch_status().initial_lists(),
        ),
    ];
    for (resource, used) in kinds {
        eprintln!(
            "Kubernetes {}: {resource}: {used:?}, {} LIST requests, {} streaming lists",
            plane.version(),
            lists(resource),
            streamed(resource)
        );
        match plane.version() {
            KubeVersion::Current => {
                assert_eq!(used, InitialLists::Streaming, "{resource}");
                assert_eq!(lists(resource), 0, "{resource}: no LIST request at all");
                assert!(streamed(resource) >= 1.0, "{resource}: a streaming list");
            }
            KubeVersion::Oldest => {
                assert_eq!(used, InitialLists::Paged, "{resource}");
                assert!(lists(resource) >= 1, "{resource}: a LIST request");
            }
        }
    }
    server.server.shutdown().await;
}
