//! `kubectl apply` for the harness: server-side apply of every document in a
//! YAML stream, then a bounded wait until any CRD among them is Established
//! (so the very next request can use the new kind).

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};

use super::error::{KubeError, Result, api};

const FIELD_MANAGER: &str = "odigos-xtask";
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies every object in `yaml`; namespaced objects without a namespace go
/// to `default_namespace`. `source_name` names the input in errors.
pub async fn apply(
    client: &kube::Client,
    yaml: &str,
    default_namespace: &str,
    source_name: &str,
) -> Result<Vec<DynamicObject>> {
    let manifest_error = |message: String| KubeError::Manifest {
        source_name: source_name.to_owned(),
        message,
    };
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml)
        .map_err(|e| manifest_error(format!("not valid YAML: {e}")))?;
    let mut applied = Vec::new();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        let object: DynamicObject = serde_json::from_value(document)
            .map_err(|e| manifest_error(format!("not a Kubernetes object: {e}")))?;
        applied.push(apply_one(client, object, default_namespace, source_name).await?);
    }
    for crd in applied.iter().filter(|o| {
        o.types
            .as_ref()
            .is_some_and(|t| t.kind == "CustomResourceDefinition")
    }) {
        if let Some(name) = &crd.metadata.name {
            wait_established(client, name).await?;
        }
    }
    Ok(applied)
}

async fn apply_one(
    client: &kube::Client,
    object: DynamicObject,
    default_namespace: &str,
    source_name: &str,
) -> Result<DynamicObject> {
    let manifest_error = |message: String| KubeError::Manifest {
        source_name: source_name.to_owned(),
        message,
    };
    let types = object
        .types
        .clone()
        .ok_or_else(|| manifest_error("an object has no apiVersion/kind".into()))?;
    let name = object
        .metadata
        .name
        .clone()
        .ok_or_else(|| manifest_error(format!("a {} has no metadata.name", types.kind)))?;
    let gvk = GroupVersionKind::try_from(&types)
        .map_err(|e| manifest_error(format!("{}: {e}", types.api_version)))?;
    let (resource, caps) = discovery::pinned_kind(client, &gvk)
        .await
        .map_err(api(format!(
            "{source_name}: looking up {} {}",
            types.api_version, types.kind
        )))?;
    let objects: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let namespace = object
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(default_namespace);
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    objects
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(api(format!(
            "{source_name}: applying {} {name}",
            types.kind
        )))
}

/// Polls the CRD until its `Established` condition is `True`.
pub async fn wait_established(client: &kube::Client, name: &str) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let crd = crds
            .get(name)
            .await
            .map_err(api(format!("reading CustomResourceDefinition {name}")))?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(KubeError::Timeout {
                what: format!("CustomResourceDefinition {name} becoming Established"),
                seconds: ESTABLISH_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
