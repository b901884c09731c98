//! What the server takes from a current API server, and how it does without on the oldest
//! supported one (the same tests run on both: `cargo xtask test` runs this binary again with
//! `ODIGOS_KUBE_VERSION=1.20`):
//!
//! - applies that do not fit the schema: a misspelt field in an apply body, sent with the
//!   parameters and through the body builders of the server's writer, is refused (by
//!   server-side apply itself, on every supported release) instead of being dropped;
//! - strict field validation on those applies: a duplicate field is refused where the API
//!   server checks it (1.25 and later), and the last value kept where it does not (1.20);
//! - streaming lists for its watches (this node's pods, every `InstrumentationConfig`): no
//!   LIST request at all where the API server streams, a paged LIST where it refuses.

#[path = "support/client.rs"]
mod client;
#[path = "support/kube.rs"]
mod kube_support;
#[path = "support/messages.rs"]
mod messages;

use kube::api::{Api, Patch};
use kube::core::Request;
use odigos_opamp_server::kube::crds::{InstrumentationInstance, InstrumentationInstanceSpec};
use odigos_opamp_server::kube::instances::resource::{self, ResourceRef};
use odigos_opamp_server::kube::watch::InitialLists;
use odigos_opamp_server::protocol::instance::{Attribute, InstanceStatus};
use serde_json::{Value, json};
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
        ("status", status_answer.map(drop), ".status.heathy"),
        ("object", object_answer.map(drop), ".spec.containerNmae"),
    ] {
        match answer {
            Err(kube::Error::Api(refusal)) => {
                eprintln!(
                    "Kubernetes {}: the misspelt {what} apply: {} {}",
                    plane.version(),
                    refusal.code,
                    refusal.message
                );
                // Server-side apply's own check, on every release: 500, not 400.
                assert_eq!(refusal.code, 500, "{what}: {refusal:?}");
                assert!(
                    refusal
                        .message
                        .contains(&format!("{field}: field not declared in schema")),
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
    // Read as admin: the odiglet account may not get.
    let admin: Api<InstrumentationInstance> =
        Api::namespaced(plane.client().await.expect("admin client"), &namespace);
    let stored = admin.get(&target.name).await.expect("get the resource");
    assert_eq!(stored.spec.container_name, "app", "the object is as it was");
    assert_eq!(
        serde_json::to_value(stored.status).expect("status as JSON"),
        good,
        "and so is its status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_validation_refuses_a_duplicate_field_where_the_api_server_checks_it() {
    let plane = shared_plane();
    let namespace = plane.create_namespace("dupes").await.expect("namespace");
    let odiglet = plane.odiglet_client().await.expect("odiglet client");
    let api: Api<InstrumentationInstance> = Api::namespaced(odiglet.clone(), &namespace);
    let name = "web-app-8";
    // The writer's request (path, query, content type) with a body that serde cannot
    // produce: `containerName` twice.
    let placeholder = Patch::Apply(json!({}));
    let mut request = Request::new(api.resource_url())
        .patch(name, &resource::apply_params(), &placeholder)
        .expect("the apply request");
    *request.body_mut() = format!(
        r#"{{"apiVersion":"odigos.io/v1alpha1","kind":"InstrumentationInstance","metadata":{{"name":"{name}"}},"spec":{{"containerName":"app","containerName":"web"}}}}"#
    )
    .into_bytes();
    let answer = odiglet.request::<InstrumentationInstance>(request).await;
    eprintln!(
        "Kubernetes {}: an apply with a duplicate field: {answer:?}",
        plane.version()
    );
    match plane.version() {
        KubeVersion::Current => match answer {
            Err(kube::Error::Api(refusal)) => {
                assert_eq!(refusal.code, 400, "{refusal:?}");
                assert!(
                    refusal.message.contains("strict decoding")
                        && refusal.message.contains("containerName"),
                    "{}",
                    refusal.message
                );
                let admin: Api<InstrumentationInstance> =
                    Api::namespaced(plane.client().await.expect("admin client"), &namespace);
                assert!(
                    admin.get_opt(name).await.expect("get").is_none(),
                    "nothing was created"
                );
            }
            other => panic!("a duplicate field must be refused, got {other:?}"),
        },
        // 1.20 knows no fieldValidation: the last value wins, as without the parameter.
        KubeVersion::Oldest => {
            let created = answer.expect("1.20 takes the apply");
            assert_eq!(created.spec.container_name, "web");
        }
    }
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
