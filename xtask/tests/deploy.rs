//! deploy/ against a real kube-apiserver: the CRD schema accepts what the
//! server writes and rejects what docs/protocol.md §6 forbids,
//! deploy/rbac.yaml lets the odiglet identity do exactly its job, and the
//! DaemonSet snippet is a valid pod spec.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use xtask::kube::{ControlPlane, ODIGLET_USER};

fn instances_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "odigos.io",
        "v1alpha1",
        "InstrumentationInstance",
    ))
}

fn configs_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "odigos.io",
        "v1alpha1",
        "InstrumentationConfig",
    ))
}

fn object(resource: &ApiResource, name: &str, body: Value) -> DynamicObject {
    let mut object = DynamicObject::new(name, resource);
    object.data = body;
    object
}

fn valid_status() -> Value {
    json!({
        "identifyingAttributes": [
            {"key": "service.instance.id", "value": "0196b2a4-7d7e-7cc1-9b0a-2f7f4c1d9e10"},
            {"key": "process.pid", "value": "1"},
        ],
        "nonIdentifyingAttributes": [{"key": "telemetry.sdk.language", "value": "python"}],
        "healthy": true,
        "reason": "Healthy",
        "message": "",
        "lastStatusTime": "2025-05-20T10:00:00Z",
        "components": [{
            "name": "@opentelemetry/instrumentation-http",
            "type": "instrumentation",
            "healthy": true,
            "nonIdentifyingAttributes": [{"key": "version", "value": "0.57.0"}],
            "lastStatusTime": "2025-05-20T10:00:00Z",
        }],
    })
}

/// The HTTP status of a failed call.
fn code<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected an API error status, got {other:?}"),
    }
}

async fn start() -> ControlPlane {
    match ControlPlane::start().await {
        Ok(plane) => plane,
        Err(err) => panic!("the Kubernetes control plane did not start: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odiglet_rbac_is_enough_for_the_server_and_no_more() {
    let plane = start().await;
    // start() applies deploy/crds/*.yaml and deploy/rbac.yaml; applying again must be a no-op.
    let deploy = xtask::workspace_root().join("deploy");
    plane
        .apply_yaml(&deploy.join("rbac.yaml"))
        .await
        .expect("re-apply rbac.yaml");
    for crd in [
        "instrumentationinstances.odigos.io.yaml",
        "instrumentationconfigs.odigos.io.yaml",
    ] {
        plane
            .apply_yaml(&deploy.join("crds").join(crd))
            .await
            .expect("re-apply CRD");
    }

    let namespace = plane.create_namespace("rbac").await.expect("namespace");
    let odiglet = plane.odiglet_client().await.expect("odiglet client");
    let admin = plane.client().await.expect("admin client");
    let instances: Api<DynamicObject> =
        Api::namespaced_with(odiglet.clone(), &namespace, &instances_resource());
    let configs: Api<DynamicObject> =
        Api::namespaced_with(odiglet.clone(), &namespace, &configs_resource());

    // --- Allowed: everything the server does. ---
    let created = instances
        .create(
            &PostParams::default(),
            &object(
                &instances_resource(),
                "coupon-7d9f-app-1",
                json!({"spec": {"containerName": "app"}}),
            ),
        )
        .await
        .expect("create an InstrumentationInstance as odiglet");
    assert_eq!(created.data["spec"]["containerName"], "app");

    let status = json!({"status": valid_status()});
    let patched = instances
        .patch_status(
            "coupon-7d9f-app-1",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .expect("merge-patch /status as odiglet");
    assert_eq!(patched.data["status"]["reason"], "Healthy");
    assert_eq!(
        patched.data["status"]["components"][0]["type"],
        "instrumentation"
    );

    let applied = instances
        .patch_status(
            "coupon-7d9f-app-1",
            &PatchParams::apply("odigos-opamp-server").force(),
            &Patch::Apply(json!({
                "apiVersion": "odigos.io/v1alpha1",
                "kind": "InstrumentationInstance",
                "status": {"healthy": false, "reason": "NoHeartbeat", "lastStatusTime": "2025-05-20T10:01:15Z"},
            })),
        )
        .await
        .expect("server-side apply on /status as odiglet");
    assert_eq!(applied.data["status"]["healthy"], false);

    // The object itself is server-side applied, creating it on first use.
    instances
        .patch(
            "coupon-7d9f-app-2",
            &PatchParams::apply("odigos-opamp-server").force(),
            &Patch::Apply(json!({
                "apiVersion": "odigos.io/v1alpha1",
                "kind": "InstrumentationInstance",
                "metadata": {"name": "coupon-7d9f-app-2", "labels": {"instrumented-app": "deployment-coupon", "ownerPodName": "coupon-7d9f"}},
                "spec": {"containerName": "app"},
            })),
        )
        .await
        .expect("server-side apply (create) as odiglet");
    instances
        .patch(
            "coupon-7d9f-app-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"ownerPodName": "coupon-7d9f"}}})),
        )
        .await
        .expect("patch as odiglet");
    instances
        .delete("coupon-7d9f-app-2", &DeleteParams::default())
        .await
        .expect("delete as odiglet");
    instances
        .list(&ListParams::default())
        .await
        .expect("list InstrumentationInstances as odiglet");
    Api::<DynamicObject>::all_with(odiglet.clone(), &instances_resource())
        .list(&ListParams::default())
        .await
        .expect("list InstrumentationInstances in all namespaces as odiglet");
    configs
        .list(&ListParams::default())
        .await
        .expect("list InstrumentationConfigs as odiglet");
    Api::<Pod>::all(odiglet.clone())
        .list(&ListParams::default())
        .await
        .expect("list pods as odiglet");
    // A missing pod is 404 (allowed to look), not 403.
    assert_eq!(
        code(
            Api::<Pod>::namespaced(odiglet.clone(), &namespace)
                .get("absent")
                .await
        ),
        404
    );

    // --- Rejected by the schema (422), even for the right identity. ---
    let too_long = json!({"status": {"message": "x".repeat(32_769)}});
    assert_eq!(
        code(
            instances
                .patch_status(
                    "coupon-7d9f-app-1",
                    &PatchParams::default(),
                    &Patch::Merge(&too_long)
                )
                .await
        ),
        422
    );
    let mut bad_type = valid_status();
    bad_type["components"][0]["type"] = json!("profiler");
    assert_eq!(
        code(
            instances
                .patch_status(
                    "coupon-7d9f-app-1",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": bad_type}))
                )
                .await
        ),
        422
    );
    let mut no_time = valid_status();
    no_time["components"][0]
        .as_object_mut()
        .expect("component")
        .remove("lastStatusTime");
    assert_eq!(
        code(
            instances
                .patch_status(
                    "coupon-7d9f-app-1",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": no_time}))
                )
                .await
        ),
        422
    );
    let empty_key = json!({"status": {"identifyingAttributes": [{"key": "", "value": "v"}]}});
    assert_eq!(
        code(
            instances
                .patch_status(
                    "coupon-7d9f-app-1",
                    &PatchParams::default(),
                    &Patch::Merge(&empty_key)
                )
                .await
        ),
        422
    );
    let bad_time = json!({"status": {"lastStatusTime": "yesterday"}});
    assert_eq!(
        code(
            instances
                .patch_status(
                    "coupon-7d9f-app-1",
                    &PatchParams::default(),
                    &Patch::Merge(&bad_time)
                )
                .await
        ),
        422
    );
    let no_container = object(&instances_resource(), "no-container", json!({"spec": {}}));
    assert_eq!(
        code(
            instances
                .create(&PostParams::default(), &no_container)
                .await
        ),
        422
    );
    // Exactly at the limit is fine.
    let at_limit = json!({"status": {"message": "x".repeat(32_768)}});
    instances
        .patch_status(
            "coupon-7d9f-app-1",
            &PatchParams::default(),
            &Patch::Merge(&at_limit),
        )
        .await
        .expect("32768 chars");

    // --- Forbidden (403): anything outside the server's job. ---
    // Verbs on its own resources that the server never uses.
    assert_eq!(code(instances.get("coupon-7d9f-app-1").await), 403);
    let admin_instances: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &namespace, &instances_resource());
    let fetched = admin_instances
        .get("coupon-7d9f-app-1")
        .await
        .expect("get as admin");
    assert_eq!(
        code(
            instances
                .replace("coupon-7d9f-app-1", &PostParams::default(), &fetched)
                .await
        ),
        403
    );
    assert_eq!(
        code(
            instances
                .replace_status("coupon-7d9f-app-1", &PostParams::default(), &fetched)
                .await
        ),
        403
    );
    assert_eq!(code(configs.get("deployment-coupon").await), 403);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("stolen".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        code(
            Api::<Secret>::namespaced(odiglet.clone(), &namespace)
                .create(&PostParams::default(), &secret)
                .await
        ),
        403
    );
    assert_eq!(
        code(
            Api::<Secret>::namespaced(odiglet.clone(), &namespace)
                .list(&ListParams::default())
                .await
        ),
        403
    );
    let pod = serde_json::from_value::<Pod>(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )
    .expect("pod");
    assert_eq!(
        code(
            Api::<Pod>::namespaced(odiglet.clone(), &namespace)
                .create(&PostParams::default(), &pod)
                .await
        ),
        403
    );
    let config = object(
        &configs_resource(),
        "deployment-coupon",
        json!({"spec": {"serviceName": "coupon"}}),
    );
    assert_eq!(
        code(configs.create(&PostParams::default(), &config).await),
        403
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(odiglet.clone());
    assert_eq!(
        code(
            namespaces
                .delete(&namespace, &DeleteParams::default())
                .await
        ),
        403
    );

    // And the deletion the server does on a healthy disconnect.
    instances
        .delete("coupon-7d9f-app-1", &DeleteParams::default())
        .await
        .expect("delete as odiglet");

    // The identity really is the service account the RBAC names.
    let review = admin
        .request_text(
            http::Request::get(format!(
                "/apis/odigos.io/v1alpha1/namespaces/{namespace}/instrumentationinstances"
            ))
            .header("Impersonate-User", ODIGLET_USER)
            .body(Vec::new())
            .expect("request"),
        )
        .await
        .expect("list as the impersonated service account");
    assert!(review.contains("InstrumentationInstanceList"), "{review}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemonset_snippet_is_a_valid_pod_spec() {
    let plane = start().await;
    let path = xtask::workspace_root().join("deploy/daemonset-container.yaml");
    let mut pod_spec: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("read snippet"))
            .expect("YAML");
    pod_spec["serviceAccountName"] = json!("odiglet");
    pod_spec["hostNetwork"] = json!(true);
    let daemonset: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "odiglet", "namespace": "odigos-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "odiglet"}},
            "template": {"metadata": {"labels": {"app": "odiglet"}}, "spec": pod_spec},
        },
    }))
    .expect("the snippet fits a DaemonSet pod spec");
    let daemonsets: Api<DaemonSet> =
        Api::namespaced(plane.client().await.expect("client"), "odigos-system");
    // Server-side dry run: full validation and defaulting, nothing stored.
    let checked = daemonsets
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &daemonset,
        )
        .await
        .unwrap_or_else(|e| panic!("kube-apiserver rejected {}: {e}", path.display()));
    let checked_pod = checked.spec.expect("spec").template.spec.expect("pod spec");
    assert_eq!(
        checked_pod.host_pid,
        Some(true),
        "peer verification of unix-socket agents needs hostPID"
    );
    let container = &checked_pod.containers[0];
    let env = container.env.as_deref().unwrap_or_default();
    let node_name = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    let field = node_name
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("fieldRef");
    assert_eq!(field.field_path, "spec.nodeName");
    let ports: Vec<i32> = container
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, [4320, 4321]);
    let mounts: Vec<&str> = container
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(
        mounts,
        ["/var/lib/kubelet/pod-resources", "/var/odigos/exchange"]
    );
    assert!(container.liveness_probe.is_some() && container.readiness_probe.is_some());
    assert!(
        daemonsets.get_opt("odiglet").await.expect("get").is_none(),
        "dry run must store nothing"
    );
}
