//! The embedded identity: a device table read from a YAML file (`--devices FILE`).
//!
//! ```yaml
//! - deviceId: 8497ec75-8928-4e80-90e0-4f29642a0fea   # optional
//!   namespace: shop
//!   pod: coupon-7d9f8b6c5d-x2x9z
//!   container: app
//!   workloadKind: Deployment                         # optional, default Pod
//!   workloadName: coupon                             # optional, default the pod name
//!   containerConfig:                                 # optional: the container's entry of
//!     agentEnabled: true                             # its InstrumentationConfig, sent as
//!     traces: {}                                     # the container_config section
//! ```
//!
//! A request with `X-Odigos-DeviceId` must name a row's `deviceId`. A request without it
//! must self-report a (namespace, pod, container) that matches a row; with
//! `trust_self_reported` (a development switch) an unmatched triple is accepted as a bare
//! pod instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config_source::{ContainerConfig, MemoryConfigSource, WorkloadConfig, WorkloadKey};

use super::{
    Identity, IdentityError, IdentityFuture, IdentityRequest, ResolvedIdentity, Workload,
    WorkloadKind,
};

/// One row of the device table, as written in the YAML file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceRow {
    #[serde(default)]
    pub device_id: Option<String>,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    #[serde(default)]
    pub pod_uid: Option<String>,
    #[serde(default)]
    pub workload_kind: Option<String>,
    #[serde(default)]
    pub workload_name: Option<String>,
    /// The container's `spec.containers[]` entry, as an `InstrumentationConfig` would hold
    /// it (`containerName` may be left out: it is the row's container).
    #[serde(default)]
    pub container_config: Option<serde_json::Value>,
}

/// Why a device table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DeviceTableError {
    #[error("cannot read device table {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "device table {path} is not a YAML list of {{deviceId, namespace, pod, container, \
         workloadKind, workloadName, containerConfig}}: {source}"
    )]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("device table row {row}: {problem}")]
    Invalid { row: usize, problem: String },
}

/// A validated, indexed device table.
#[derive(Clone, Debug, Default)]
pub struct DeviceTable {
    identities: Vec<ResolvedIdentity>,
    /// The rows' container configs, by workload.
    configs: HashMap<WorkloadKey, WorkloadConfig>,
    by_device: HashMap<String, usize>,
    by_container: HashMap<(String, String, String), usize>,
}

impl DeviceTable {
    /// Read and validate a YAML device table.
    pub fn load(path: &Path) -> Result<Self, DeviceTableError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeviceTableError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            DeviceTableError::Parse { source, .. } => DeviceTableError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parse and validate a YAML device table (an empty document is an empty table).
    pub fn from_yaml(text: &str) -> Result<Self, DeviceTableError> {
        let rows: Option<Vec<DeviceRow>> =
            serde_yaml_ng::from_str(text).map_err(|source| DeviceTableError::Parse {
                path: PathBuf::new(),
                source,
            })?;
        Self::from_rows(rows.unwrap_or_default())
    }

    /// Validate rows: required fields non-empty, known workload kinds, no duplicates.
    pub fn from_rows(rows: Vec<DeviceRow>) -> Result<Self, DeviceTableError> {
        let mut table = DeviceTable::default();
        for (index, row) in rows.into_iter().enumerate() {
            let number = index + 1;
            let invalid = |problem: String| DeviceTableError::Invalid {
                row: number,
                problem,
            };
            for (field, value) in [
                ("namespace", &row.namespace),
                ("pod", &row.pod),
                ("container", &row.container),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(format!("{field} is empty")));
                }
            }
            let kind = match &row.workload_kind {
                Some(k) => k
                    .parse::<WorkloadKind>()
                    .map_err(|e| invalid(e.to_string()))?,
                None => WorkloadKind::Pod,
            };
            let name = row.workload_name.clone().unwrap_or_else(|| row.pod.clone());
            let key = (
                row.namespace.clone(),
                row.pod.clone(),
                row.container.clone(),
            );
            if table.by_container.contains_key(&key) {
                return Err(invalid(format!(
                    "namespace/pod/container {}/{}/{} appears twice",
                    key.0, key.1, key.2
                )));
            }
            let workload_key = WorkloadKey {
                namespace: row.namespace.clone(),
                workload: Workload {
                    kind,
                    name: name.clone(),
                },
            };
            if let Some(entry) = row.container_config {
                let config = container_config(entry, &row.container).map_err(invalid)?;
                let workload = table.configs.entry(workload_key).or_default();
                match workload.containers.get(&row.container) {
                    Some(other) if *other != config => {
                        return Err(invalid(format!(
                            "containerConfig of container {} differs from an earlier row of \
                             the same workload (a workload's pods share one config)",
                            row.container
                        )));
                    }
                    Some(_) => {}
                    None => workload.add_container(config),
                }
            }
            let slot = table.identities.len();
            if let Some(device) = &row.device_id
                && table.by_device.insert(device.clone(), slot).is_some()
            {
                return Err(invalid(format!("deviceId {device} appears twice")));
            }
            table.by_container.insert(key, slot);
            table.identities.push(ResolvedIdentity {
                namespace: row.namespace,
                pod_name: row.pod,
                pod_uid: row.pod_uid,
                container: row.container,
                workload: Workload { kind, name },
            });
        }
        Ok(table)
    }

    /// The config source of embedded mode: the rows' container configs, and the defaults for
    /// every other workload and container.
    pub fn config_source(&self) -> MemoryConfigSource {
        let source = MemoryConfigSource::new();
        for (workload, config) in &self.configs {
            source.set(workload.clone(), config.clone());
        }
        source
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.identities.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    fn by_device(&self, device_id: &str) -> Option<&ResolvedIdentity> {
        self.by_device
            .get(device_id)
            .and_then(|&i| self.identities.get(i))
    }

    fn by_container(&self, ns: &str, pod: &str, container: &str) -> Option<&ResolvedIdentity> {
        let key = (ns.to_owned(), pod.to_owned(), container.to_owned());
        self.by_container
            .get(&key)
            .and_then(|&i| self.identities.get(i))
    }
}

/// A row's `containerConfig`: an object, whose `containerName` (when given) is the row's.
fn container_config(
    mut entry: serde_json::Value,
    container: &str,
) -> Result<ContainerConfig, String> {
    if let Some(object) = entry.as_object_mut() {
        let name = object
            .entry("containerName")
            .or_insert_with(|| container.into());
        if name.as_str() != Some(container) {
            return Err(format!(
                "containerConfig.containerName is {name}, but the row's container is {container:?}"
            ));
        }
    }
    ContainerConfig::from_json(&entry).map_err(|e| format!("containerConfig: {e}"))
}

/// [`Identity`] backed by a [`DeviceTable`]; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct StaticTableIdentity {
    table: DeviceTable,
    trust_self_reported: bool,
}

impl StaticTableIdentity {
    /// Identity from a device table; self-reported attributes must match a row.
    pub fn new(table: DeviceTable) -> Self {
        StaticTableIdentity {
            table,
            trust_self_reported: false,
        }
    }

    /// Development switch: accept self-reported attributes that match no row, as a bare pod.
    pub fn trust_self_reported(mut self, trust: bool) -> Self {
        self.trust_self_reported = trust;
        self
    }

    /// The synchronous lookup behind [`Identity::resolve`].
    pub fn lookup(&self, request: &IdentityRequest) -> Result<ResolvedIdentity, IdentityError> {
        if let Some(device_id) = request.device_id()? {
            return self
                .table
                .by_device(device_id)
                .cloned()
                .ok_or_else(|| IdentityError::UnknownDevice(device_id.to_owned()));
        }
        let Some((ns, pod, container)) = request.self_reported() else {
            return Err(IdentityError::Missing);
        };
        if let Some(identity) = self.table.by_container(ns, pod, container) {
            return Ok(identity.clone());
        }
        if self.trust_self_reported {
            return Ok(ResolvedIdentity {
                namespace: ns.to_owned(),
                pod_name: pod.to_owned(),
                pod_uid: None,
                container: container.to_owned(),
                workload: Workload {
                    kind: WorkloadKind::Pod,
                    name: pod.to_owned(),
                },
            });
        }
        Err(IdentityError::Unverified(format!(
            "namespace/pod/container {ns}/{pod}/{container} is not in the device table \
             (add a row to the --devices file, or start the server with --trust-self-reported)"
        )))
    }
}

impl Identity for StaticTableIdentity {
    fn resolve<'a>(&'a self, request: &'a IdentityRequest) -> IdentityFuture<'a> {
        let answer = self.lookup(request);
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "
- deviceId: 8497ec75-8928-4e80-90e0-4f29642a0fea
  namespace: shop
  pod: coupon-7d9f8b6c5d-x2x9z
  container: app
  workloadKind: Deployment
  workloadName: coupon
- namespace: shop
  pod: standalone
  container: main
";

    fn request(device: Option<&str>, attrs: Option<(&str, &str, &str)>) -> IdentityRequest {
        IdentityRequest {
            device_id: device.map(|d| Ok(d.to_owned())),
            namespace: attrs.map(|a| a.0.to_owned()),
            pod: attrs.map(|a| a.1.to_owned()),
            container: attrs.map(|a| a.2.to_owned()),
            peer: Default::default(),
        }
    }

    fn identity() -> StaticTableIdentity {
        StaticTableIdentity::new(DeviceTable::from_yaml(TABLE).unwrap())
    }

    #[test]
    fn device_id_resolves_to_its_row() {
        let found = identity().lookup(&request(Some("8497ec75-8928-4e80-90e0-4f29642a0fea"), None));
        let found = found.unwrap();
        assert_eq!(found.pod_name, "coupon-7d9f8b6c5d-x2x9z");
        assert_eq!(
            found.workload,
            Workload {
                kind: WorkloadKind::Deployment,
                name: "coupon".into()
            }
        );
    }

    #[test]
    fn unknown_and_malformed_device_ids_are_client_errors() {
        let id = identity();
        assert_eq!(
            id.lookup(&request(Some("0000"), None)),
            Err(IdentityError::UnknownDevice("0000".into()))
        );
        assert!(matches!(
            id.lookup(&request(Some("a b"), None)),
            Err(IdentityError::MalformedDeviceId(_))
        ));
        let non_utf8 = IdentityRequest {
            device_id: Some(Err(super::super::NonUtf8Header)),
            ..Default::default()
        };
        assert!(matches!(
            id.lookup(&non_utf8),
            Err(IdentityError::MalformedDeviceId(_))
        ));
    }

    #[test]
    fn self_reported_attributes_must_match_a_row_unless_trusted() {
        let id = identity();
        let row = id
            .lookup(&request(None, Some(("shop", "standalone", "main"))))
            .unwrap();
        assert_eq!(
            row.workload,
            Workload {
                kind: WorkloadKind::Pod,
                name: "standalone".into()
            }
        );
        let stranger = request(None, Some(("shop", "other", "main")));
        assert!(matches!(
            id.lookup(&stranger),
            Err(IdentityError::Unverified(_))
        ));
        let trusted = id.trust_self_reported(true).lookup(&stranger).unwrap();
        assert_eq!(
            trusted.workload,
            Workload {
                kind: WorkloadKind::Pod,
                name: "other".into()
            }
        );
    }

    #[test]
    fn nothing_to_go_by_is_missing() {
        assert_eq!(
            identity().lookup(&request(None, None)),
            Err(IdentityError::Missing)
        );
        let partial = IdentityRequest {
            namespace: Some("shop".into()),
            ..Default::default()
        };
        assert_eq!(identity().lookup(&partial), Err(IdentityError::Missing));
    }

    #[test]
    fn rows_carry_their_containers_config() {
        let table = DeviceTable::from_yaml(
            "
- namespace: shop
  pod: coupon-a
  container: app
  workloadKind: Deployment
  workloadName: coupon
  containerConfig:
    agentEnabled: true
    traces: {headSampling: {noisyOperations: [{id: h, percentageAtMost: 0}]}}
- namespace: shop
  pod: coupon-b
  container: app
  workloadKind: Deployment
  workloadName: coupon
  containerConfig:
    containerName: app
    agentEnabled: true
    traces: {headSampling: {noisyOperations: [{id: h, percentageAtMost: 0}]}}
- {namespace: shop, pod: plain, container: app}
",
        )
        .unwrap();
        let source = table.config_source();
        let coupon = WorkloadKey {
            namespace: "shop".into(),
            workload: Workload {
                kind: WorkloadKind::Deployment,
                name: "coupon".into(),
            },
        };
        use crate::config_source::ConfigSource as _;
        let config = source.workload_config(&coupon);
        assert_eq!(
            config.containers["app"].value(),
            serde_json::json!({
                "containerName": "app",
                "agentEnabled": true,
                "traces": {"headSampling": {"noisyOperations": [{"id": "h", "percentageAtMost": 0}]}},
            })
        );
        let plain = WorkloadKey {
            namespace: "shop".into(),
            workload: Workload {
                kind: WorkloadKind::Pod,
                name: "plain".into(),
            },
        };
        assert!(source.workload_config(&plain).containers.is_empty());
    }

    #[test]
    fn container_configs_are_checked() {
        let cases = [
            (
                "- {namespace: n, pod: p, container: c, containerConfig: [1]}",
                "must be a JSON object",
            ),
            (
                "- {namespace: n, pod: p, container: c, containerConfig: {containerName: d}}",
                "the row's container is \"c\"",
            ),
            (
                "- {namespace: n, pod: p, container: c, workloadName: w, containerConfig: {traces: {}}}\n\
                 - {namespace: n, pod: q, container: c, workloadName: w, containerConfig: {}}",
                "row 2: containerConfig of container c differs",
            ),
        ];
        for (yaml, expected) in cases {
            let err = DeviceTable::from_yaml(yaml).unwrap_err().to_string();
            assert!(err.contains(expected), "{yaml}: {err}");
        }
    }

    #[test]
    fn invalid_tables_are_rejected_with_the_row_number() {
        let dup = "- {deviceId: a, namespace: n, pod: p, container: c}\n- {deviceId: a, namespace: n, pod: q, container: c}";
        let err = DeviceTable::from_yaml(dup).unwrap_err().to_string();
        assert!(
            err.contains("row 2") && err.contains("appears twice"),
            "{err}"
        );
        let kind = "- {namespace: n, pod: p, container: c, workloadKind: ReplicaSet}";
        assert!(
            DeviceTable::from_yaml(kind)
                .unwrap_err()
                .to_string()
                .contains("ReplicaSet")
        );
        let typo = "- {namespace: n, pod: p, containr: c}";
        assert!(matches!(
            DeviceTable::from_yaml(typo),
            Err(DeviceTableError::Parse { .. })
        ));
        assert!(DeviceTable::from_yaml("").unwrap().is_empty());
    }
}
