//! The `InstrumentationInstance` objects we write, as server-side-apply bodies, and what we
//! read back from listed ones (docs/protocol.md §6).
//!
//! Two applies per resource: the object (labels, owner reference, `spec`) once, and `status`
//! through the status subresource on every change. Server-side apply sets exactly the fields
//! sent, so a field the agent stopped reporting (e.g. `message`) is removed, which a merge
//! patch would leave behind.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::api::{ApiResource, PatchParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::kube::crds::{InstrumentationInstance, InstrumentationInstanceSpec};
use crate::protocol::instance::InstanceStatus;
use crate::protocol::{InstanceRecord, NO_CONNECTION_STATUS, instance};

/// Field manager of every apply.
pub const FIELD_MANAGER: &str = "odigos-opamp-server";
/// Label: `<lowercase workload kind>-<workload name>` (Odigos' own label).
pub const APP_LABEL: &str = "instrumented-app";
/// Label: the pod's name (Odigos' own label).
pub const POD_LABEL: &str = "ownerPodName";
/// Label: the node whose server wrote the resource; the start-up resync lists by it.
pub const NODE_LABEL: &str = "odigos.io/node";
/// Label: how the agent's connection verified its identity (docs/protocol.md §3.1).
pub const VERIFICATION_LABEL: &str = "odigos.io/peer-verification";

const MAX_LABEL_VALUE: usize = 63;

/// The parameters of both applies: server-side apply as [`FIELD_MANAGER`], taking over
/// fields another manager set, with strict field validation.
///
/// A field the CRD's schema lacks (a misspelt one, say) is refused by server-side apply
/// itself on every supported API server, whatever `fieldValidation` says: 500, "failed to
/// create typed patch object ... field not declared in schema" (the writer retries such a
/// write alone, as refused, not as an outage). What `Strict` adds, on the API servers that
/// check it (1.25 and later; 1.20 ignores the parameter), is refusing a body with a
/// duplicate field with 400 instead of keeping the last value.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict()
}

/// The `InstrumentationInstance` kind, for untyped access (tests, tools).
pub fn api_resource() -> ApiResource {
    ApiResource::erase::<InstrumentationInstance>(&())
}

/// One resource: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    pub namespace: String,
    pub name: String,
}

impl ResourceRef {
    pub fn of(record: &InstanceRecord) -> Self {
        ResourceRef {
            namespace: record.key.namespace.clone(),
            name: record.name.clone(),
        }
    }
}

impl std::fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The object part we own: labels, the controller reference to the pod, `spec`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectShape {
    pub labels: BTreeMap<String, String>,
    /// The pod's (name, uid).
    pub owner: Option<(String, String)>,
    pub container: String,
}

impl ObjectShape {
    /// What the object of `record` must look like, written by the server of `node`.
    pub fn desired(record: &InstanceRecord, node: &str) -> Self {
        let labels = BTreeMap::from([
            (APP_LABEL.to_owned(), label_value(&record.instrumented_app)),
            (POD_LABEL.to_owned(), label_value(&record.owner_pod_name)),
            (NODE_LABEL.to_owned(), label_value(node)),
            (
                VERIFICATION_LABEL.to_owned(),
                record.peer_verification.to_owned(),
            ),
        ]);
        ObjectShape {
            labels,
            owner: record
                .pod_uid
                .as_ref()
                .map(|uid| (record.owner_pod_name.clone(), uid.clone())),
            container: record.container_name.clone(),
        }
    }

    /// The shape of a listed object, reading only our labels and the pod controller.
    pub fn of_object(object: &InstrumentationInstance) -> Self {
        let labels = object
            .metadata
            .labels
            .iter()
            .flatten()
            .filter(|(k, _)| {
                [APP_LABEL, POD_LABEL, NODE_LABEL, VERIFICATION_LABEL].contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ObjectShape {
            labels,
            owner: pod_owner(object).map(|(name, uid)| (name.to_owned(), uid.to_owned())),
            container: object.spec.container_name.clone(),
        }
    }

    /// The server-side-apply body for the object. The owner reference does not block the
    /// pod's deletion: that would need `pods/finalizers` rights where
    /// OwnerReferencesPermissionEnforcement is on, and nothing needs the blocking.
    pub fn apply_body(&self, resource: &ResourceRef) -> InstrumentationInstance {
        let owner_references = self.owner.as_ref().map(|(pod, uid)| {
            vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod.clone(),
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: None,
            }]
        });
        let metadata = ObjectMeta {
            name: Some(resource.name.clone()),
            namespace: Some(resource.namespace.clone()),
            labels: Some(self.labels.clone()),
            owner_references,
            ..ObjectMeta::default()
        };
        InstrumentationInstance {
            metadata,
            spec: InstrumentationInstanceSpec {
                container_name: self.container.clone(),
            },
            status: None,
        }
    }
}

/// `status` as the CRD stores it.
pub fn status_value(record: &InstanceRecord) -> Value {
    status_json(&record.status)
}

/// A `status` as JSON, as it is sent and as a listed one is compared.
pub fn status_json(status: &InstanceStatus) -> Value {
    // Serialising plain strings, bools and vectors cannot fail; Null would only cause a write.
    serde_json::to_value(status).unwrap_or(Value::Null)
}

/// A fingerprint of a `status`, to tell whether it changed without keeping a copy (a few
/// dozen attributes as JSON values weigh kilobytes per agent). Object keys are taken in
/// sorted order, so the same status gives the same digest however its keys were ordered.
pub type StatusDigest = [u8; 32];

pub fn status_digest(status: &Value) -> StatusDigest {
    fn feed(value: &Value, hasher: &mut Sha256) {
        let text = |hasher: &mut Sha256, s: &str| {
            hasher.update((s.len() as u64).to_be_bytes());
            hasher.update(s.as_bytes());
        };
        match value {
            Value::Null => hasher.update(b"n"),
            Value::Bool(b) => hasher.update(if *b { b"t" } else { b"f" }),
            Value::Number(n) => {
                hasher.update(b"#");
                text(hasher, &n.to_string());
            }
            Value::String(s) => {
                hasher.update(b"s");
                text(hasher, s);
            }
            Value::Array(items) => {
                hasher.update(b"[");
                hasher.update((items.len() as u64).to_be_bytes());
                items.iter().for_each(|item| feed(item, hasher));
            }
            Value::Object(map) => {
                hasher.update(b"{");
                hasher.update((map.len() as u64).to_be_bytes());
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for key in keys {
                    text(hasher, key);
                    feed(&map[key], hasher);
                }
            }
        }
    }
    let mut hasher = Sha256::new();
    feed(status, &mut hasher);
    hasher.finalize().into()
}

/// The server-side-apply body for the status subresource: no `spec`, so this manager owns
/// only the status fields it sets there.
pub fn status_apply_body(resource: &ResourceRef, status: &Value) -> Value {
    json!({
        "apiVersion": InstrumentationInstance::api_version(&()),
        "kind": InstrumentationInstance::kind(&()),
        "metadata": { "name": resource.name, "namespace": resource.namespace },
        "status": status,
    })
}

/// The pod controller of a listed object: (name, uid).
pub fn pod_owner(object: &InstrumentationInstance) -> Option<(&str, &str)> {
    object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Pod" && o.controller == Some(true))
        .map(|o| (o.name.as_str(), o.uid.as_str()))
}

/// Why the start-up resync keeps a resource whose agent did not come back, if it does:
/// its last reason is `NoConnectionToOpAMPServer` (as for stale agents), or it is unhealthy
/// (it explains why a process ended; the server cannot tell it from a kept unhealthy
/// disconnect).
pub fn keep_reason(status: Option<&InstanceStatus>) -> Option<&'static str> {
    let status = status?;
    if status.reason.as_deref() == Some(NO_CONNECTION_STATUS) {
        return Some(NO_CONNECTION_STATUS);
    }
    if status.healthy == Some(false) {
        return Some("unhealthy");
    }
    None
}

/// A valid label value for `text`: itself when valid, else a cleaned prefix and a hash of
/// the exact text (pod and node names may be longer than a label value may be).
pub fn label_value(text: &str) -> String {
    if is_label_value(text) {
        return text.to_owned();
    }
    let hash = &Sha256::digest(text.as_bytes())[..4];
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    instance::with_hash(text, hash, MAX_LABEL_VALUE, allowed)
}

fn is_label_value(text: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    text.len() <= MAX_LABEL_VALUE
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edge_ok(text.chars().next())
        && edge_ok(text.chars().last())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::InstanceKey;
    use crate::protocol::instance::InstanceStatus;

    fn record() -> InstanceRecord {
        let key = InstanceKey::new("shop", "coupon-7d9f8b6c5d-x2x9z", "app", 42);
        InstanceRecord {
            name: key.resource_name(),
            container_name: "app".into(),
            pod_uid: Some("uid-1".into()),
            instrumented_app: "deployment-coupon".into(),
            owner_pod_name: key.pod.clone(),
            peer_verification: "verified",
            status: InstanceStatus {
                identifying_attributes: Vec::new(),
                non_identifying_attributes: Vec::new(),
                healthy: Some(true),
                message: None,
                reason: Some("Healthy".into()),
                last_status_time: "2026-01-01T00:00:00Z".into(),
                components: Vec::new(),
            },
            key,
        }
    }

    #[test]
    fn object_body_has_labels_controller_reference_and_spec() {
        let record = record();
        let shape = ObjectShape::desired(&record, "node-a");
        let typed = shape.apply_body(&ResourceRef::of(&record));
        let body = serde_json::to_value(&typed).expect("JSON");
        assert_eq!(
            (&body["apiVersion"], &body["kind"]),
            (
                &json!("odigos.io/v1alpha1"),
                &json!("InstrumentationInstance")
            )
        );
        assert!(body.get("status").is_none(), "{body}");
        assert_eq!(body["metadata"]["name"], "coupon-7d9f8b6c5d-x2x9z.app.42");
        assert_eq!(body["metadata"]["labels"][APP_LABEL], "deployment-coupon");
        assert_eq!(
            body["metadata"]["labels"][POD_LABEL],
            "coupon-7d9f8b6c5d-x2x9z"
        );
        assert_eq!(body["metadata"]["labels"][NODE_LABEL], "node-a");
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                &owner["kind"],
                &owner["name"],
                &owner["uid"],
                &owner["controller"]
            ),
            (
                &json!("Pod"),
                &json!("coupon-7d9f8b6c5d-x2x9z"),
                &json!("uid-1"),
                &json!(true)
            )
        );
        assert!(owner.get("blockOwnerDeletion").is_none());
        assert_eq!(body["spec"]["containerName"], "app");

        // What we write reads back as the same shape.
        let object: InstrumentationInstance = serde_json::from_value(body).expect("object");
        assert_eq!(ObjectShape::of_object(&object), shape);
    }

    #[test]
    fn status_digests_ignore_key_order_and_see_every_change() {
        let a: Value = serde_json::from_str(r#"{"healthy":true,"reason":"Healthy","x":[1,"2"]}"#)
            .expect("json");
        let b: Value = serde_json::from_str(r#"{"x":[1,"2"],"reason":"Healthy","healthy":true}"#)
            .expect("json");
        assert_eq!(status_digest(&a), status_digest(&b));
        let c: Value = serde_json::from_str(r#"{"x":[1,"2"],"reason":"Healthy","healthy":false}"#)
            .expect("json");
        assert_ne!(status_digest(&a), status_digest(&c));
        assert_ne!(
            status_digest(&json!(["ab", "c"])),
            status_digest(&json!(["a", "bc"]))
        );
        assert_eq!(
            status_digest(&status_value(&record())),
            status_digest(&status_value(&record()))
        );
    }

    #[test]
    fn label_values_are_kept_when_valid_and_made_valid_otherwise() {
        assert_eq!(label_value("deployment-coupon"), "deployment-coupon");
        let long = format!("statefulset-{}", "a".repeat(80));
        let value = label_value(&long);
        assert!(
            is_label_value(&value) && value.starts_with("statefulset-aaa"),
            "{value}"
        );
        assert_ne!(value, label_value(&format!("{long}b")));
        assert!(is_label_value(&label_value("-odd name_")));
        assert!(is_label_value(&label_value("???")));
        assert!(is_label_value(""));
    }

    #[test]
    fn resync_keeps_lost_connection_and_unhealthy_resources() {
        let keep = |v: Value| {
            let mut status = json!({"lastStatusTime": "2026-01-01T00:00:00Z"});
            status
                .as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            keep_reason(Some(&serde_json::from_value(status).expect("a status")))
        };
        assert_eq!(
            keep(json!({"healthy": true, "reason": NO_CONNECTION_STATUS})),
            Some(NO_CONNECTION_STATUS)
        );
        assert_eq!(
            keep(json!({"healthy": false, "reason": "ProcessTerminated"})),
            Some("unhealthy")
        );
        assert_eq!(keep(json!({"healthy": true, "reason": "Healthy"})), None);
        assert_eq!(keep(json!({})), None);
        assert_eq!(keep_reason(None), None);
    }
}
