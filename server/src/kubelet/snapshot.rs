//! A `List` answer reduced to what identity needs: device id → pod and container.

use std::collections::HashMap;

use odigos_opamp_proto::v1::ListPodResourcesResponse;

/// Resources whose name contains this are Odigos' (e.g. `instrumentation.odigos.io/generic`).
pub const ODIGOS_RESOURCE_MARKER: &str = "odigos.io";

/// The container a device was allocated to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceOwner {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// Odigos device ids of one `List` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceSnapshot {
    by_device: HashMap<String, DeviceOwner>,
}

impl DeviceSnapshot {
    /// Keep the device ids of Odigos resources. An id listed twice (which a kubelet never
    /// does) keeps its first owner, so the answer does not depend on hash order.
    pub fn from_response(response: &ListPodResourcesResponse) -> Self {
        let mut by_device = HashMap::new();
        for pod in &response.pod_resources {
            for container in &pod.containers {
                let ids = container
                    .devices
                    .iter()
                    .filter(|d| d.resource_name.contains(ODIGOS_RESOURCE_MARKER))
                    .flat_map(|d| d.device_ids.iter())
                    .filter(|id| !id.is_empty());
                for id in ids {
                    by_device.entry(id.clone()).or_insert_with(|| DeviceOwner {
                        namespace: pod.namespace.clone(),
                        pod: pod.name.clone(),
                        container: container.name.clone(),
                    });
                }
            }
        }
        DeviceSnapshot { by_device }
    }

    pub fn get(&self, device_id: &str) -> Option<&DeviceOwner> {
        self.by_device.get(device_id)
    }

    /// Number of Odigos device ids.
    pub fn len(&self) -> usize {
        self.by_device.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odigos_opamp_proto::v1::{ContainerDevices, ContainerResources, PodResources};

    fn devices(resource: &str, ids: &[&str]) -> ContainerDevices {
        ContainerDevices {
            resource_name: resource.into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            topology: None,
        }
    }

    #[test]
    fn keeps_only_odigos_devices_with_their_container() {
        let response = ListPodResourcesResponse {
            pod_resources: vec![PodResources {
                name: "coupon-1".into(),
                namespace: "shop".into(),
                containers: vec![
                    ContainerResources {
                        name: "app".into(),
                        devices: vec![
                            devices("instrumentation.odigos.io/generic", &["d-1"]),
                            devices("nvidia.com/gpu", &["gpu-0"]),
                        ],
                        cpu_ids: vec![],
                    },
                    ContainerResources {
                        name: "sidecar".into(),
                        devices: vec![devices("odigos.io/python", &["d-2", ""])],
                        cpu_ids: vec![],
                    },
                ],
            }],
        };
        let snapshot = DeviceSnapshot::from_response(&response);
        assert_eq!(snapshot.len(), 2);
        assert_eq!(
            snapshot.get("d-1").map(|o| o.container.as_str()),
            Some("app")
        );
        assert_eq!(
            snapshot.get("d-2"),
            Some(&DeviceOwner {
                namespace: "shop".into(),
                pod: "coupon-1".into(),
                container: "sidecar".into()
            })
        );
        assert!(snapshot.get("gpu-0").is_none());
    }
}
