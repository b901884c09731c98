//! Which pod and container a process belongs to, from `/proc/<pid>/cgroup`, and the pid it
//! sees itself as, from `/proc/<pid>/status` (docs/protocol.md §3.1).
//!
//! Pure text parsing: the caller reads the files. The formats are the kubelet's and the
//! container runtimes':
//!
//! - cgroupfs driver: `…/kubepods[/<qos>]/pod<uid>/<container id>`;
//! - systemd driver: `…/kubepods[-<qos>].slice/kubepods[-<qos>]-pod<uid with _>.slice/
//!   <runtime>-<container id>.scope`, runtime `cri-containerd`, `crio` or `docker`;
//! - either one nested below another cgroup (kind's nodes, a node in a container) or, seen
//!   from inside a cgroup namespace, cut above the pod (`/../…`): only the last two
//!   components are read;
//! - cgroup v1 (one line per hierarchy) or v2 (`0::<path>`), or both (hybrid).
//!
//! `crio-conmon-<id>.scope` is CRI-O's monitor process, not the container's, and is refused,
//! as is anything that is not a pod's container (the node's own processes, a pod's sandbox).

/// The pod and container a process runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerCgroup {
    /// The pod's uid, with dashes (`status` of the Pod: `metadata.uid`).
    pub pod_uid: String,
    /// The container id without its runtime prefix (64 hex digits), as in the Pod's
    /// `status.containerStatuses[].containerID` after `<runtime>://`.
    pub container_id: String,
}

/// The pod and container named by the contents of `/proc/<pid>/cgroup`, if the process is
/// in a pod's container. Every line must agree: a process cannot be in two containers.
pub fn parse_cgroup(contents: &str) -> Option<ContainerCgroup> {
    let mut found: Option<ContainerCgroup> = None;
    for line in contents.lines().filter(|l| !l.trim().is_empty()) {
        // hierarchy-id:controllers:path; the path may itself hold colons.
        let path = line.splitn(3, ':').nth(2)?;
        let Some(this) = parse_path(path) else {
            continue;
        };
        match &found {
            Some(other) if *other != this => return None,
            _ => found = Some(this),
        }
    }
    found
}

fn parse_path(path: &str) -> Option<ContainerCgroup> {
    let mut parts = path.trim_end_matches('/').rsplit('/');
    let container = parts.next()?;
    let pod = parts.next()?;
    Some(ContainerCgroup {
        pod_uid: pod_uid(pod)?,
        container_id: container_id(container)?,
    })
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid(component: &str) -> Option<String> {
    let raw = match component.strip_suffix(".slice") {
        Some(slice) => slice.rsplit_once("-pod")?.1.replace('_', "-"),
        None => component.strip_prefix("pod")?.to_owned(),
    };
    is_uid(&raw).then_some(raw)
}

/// `<64 hex>` (cgroupfs) or `<runtime>-<64 hex>.scope` (systemd); never a conmon scope.
fn container_id(component: &str) -> Option<String> {
    let id = match component.strip_suffix(".scope") {
        Some(scope) => {
            let (runtime, id) = scope.rsplit_once('-')?;
            if !matches!(runtime, "cri-containerd" | "crio" | "docker") {
                return None;
            }
            id
        }
        None => component,
    };
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// A pod uid: 36 characters, hex digits and dashes in the UUID places.
fn is_uid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The container id of a `status.containerStatuses[].containerID` (`<runtime>://<id>`).
pub fn status_container_id(container_id: &str) -> Option<&str> {
    container_id
        .split_once("://")
        .map_or(Some(container_id), |(_, id)| Some(id))
        .filter(|id| !id.is_empty())
}

/// The pid the process sees itself as, innermost pid namespace last on the `NSpid:` line
/// of `/proc/<pid>/status` (the kernel has written it since Linux 4.1).
pub fn parse_vpid(status: &str) -> Option<i64> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "9a4d1c2e-5b6f-4a7c-8d9e-0f1a2b3c4d5e";
    const CID: &str = "3f5c1a9e7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";

    fn expected() -> Option<ContainerCgroup> {
        Some(ContainerCgroup {
            pod_uid: UID.into(),
            container_id: CID.into(),
        })
    }

    #[test]
    fn every_kubelet_and_runtime_layout_names_the_pod_and_container() {
        let systemd_uid = UID.replace('-', "_");
        let cases = [
            // cgroupfs, v2, each QoS class.
            format!("0::/kubepods/besteffort/pod{UID}/{CID}"),
            format!("0::/kubepods/burstable/pod{UID}/{CID}"),
            format!("0::/kubepods/pod{UID}/{CID}"),
            // systemd, each runtime.
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{CID}.scope"
            ),
            format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{systemd_uid}.slice/crio-{CID}.scope"
            ),
            format!("0::/kubepods.slice/kubepods-pod{systemd_uid}.slice/docker-{CID}.scope"),
            // Nested: kind's node container, a kubelet below its own slice.
            format!(
                "0::/system.slice/docker-1234.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{systemd_uid}.slice/cri-containerd-{CID}.scope"
            ),
            format!("0::/docker/4f2e/kubepods/burstable/pod{UID}/{CID}"),
            // Seen from inside a cgroup namespace: cut above the pod.
            format!("0::/../../pod{UID}/{CID}"),
            // cgroup v1: every hierarchy names the same container.
            format!(
                "12:memory:/kubepods/burstable/pod{UID}/{CID}\n11:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}\n1:name=systemd:/kubepods/burstable/pod{UID}/{CID}"
            ),
            // Hybrid, as on this project's test machines.
            format!("5:cpuset:/kubepods/pod{UID}/{CID}\n0::/kubepods/pod{UID}/{CID}"),
        ];
        for contents in cases {
            assert_eq!(parse_cgroup(&contents), expected(), "{contents}");
        }
    }

    #[test]
    fn what_is_not_a_pods_container_is_refused() {
        let systemd_uid = UID.replace('-', "_");
        let cases = [
            // CRI-O's monitor, not the container.
            format!("0::/kubepods.slice/kubepods-pod{systemd_uid}.slice/crio-conmon-{CID}.scope"),
            // The node's own processes, the kubelet, a pod's cgroup itself.
            "0::/system.slice/kubelet.service".to_owned(),
            "0::/".to_owned(),
            format!("0::/kubepods/burstable/pod{UID}"),
            // Not a uid, not a container id.
            format!("0::/kubepods/burstable/podnot-a-uid/{CID}"),
            format!("0::/kubepods/burstable/pod{UID}/abc"),
            // Two containers at once.
            format!(
                "1:memory:/kubepods/pod{UID}/{CID}\n0::/kubepods/pod{UID}/{}",
                "a".repeat(64)
            ),
            String::new(),
        ];
        for contents in cases {
            assert_eq!(parse_cgroup(&contents), None, "{contents}");
        }
    }

    #[test]
    fn container_ids_of_pod_statuses_and_vpids() {
        assert_eq!(
            status_container_id(&format!("containerd://{CID}")),
            Some(CID)
        );
        assert_eq!(status_container_id(&format!("cri-o://{CID}")), Some(CID));
        assert_eq!(status_container_id(""), None);
        let status = "Name:\tpython\nTgid:\t4242\nPid:\t4242\nNSpid:\t4242\t7\nPPid:\t1\n";
        assert_eq!(parse_vpid(status), Some(7));
        assert_eq!(parse_vpid("NSpid:\t12\n"), Some(12));
        assert_eq!(parse_vpid("Pid:\t12\n"), None);
    }
}
