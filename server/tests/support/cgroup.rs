//! Cgroups named like a pod's container, created under this machine's cgroup v2 hierarchy
//! for a test and removed after it: how a process is made to look like it runs in a pod.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Where this machine mounts the cgroup v2 hierarchy (beside the v1 controllers).
pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// A cgroup, removed (with its empty parents) on drop, once its processes have exited.
pub struct Cgroup(PathBuf);

impl Cgroup {
    /// The cgroup the kubelet's cgroupfs driver gives container `container_id` of pod
    /// `pod_uid` (BestEffort QoS).
    pub fn pod_container(pod_uid: &str, container_id: &str) -> Cgroup {
        let path = Path::new(UNIFIED)
            .join("kubepods/besteffort")
            .join(format!("pod{pod_uid}"))
            .join(container_id);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| {
            panic!(
                "cannot create the cgroup {} ({e}): these tests need root and a writable cgroup \
                 v2 hierarchy at {UNIFIED}",
                path.display()
            )
        });
        Cgroup(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A shell prefix that moves the shell into this cgroup, then runs `"$@"` in its place:
    /// `sh -c <this> sh <program> <args>...`.
    pub fn enter_then_exec(&self) -> String {
        format!("echo $$ > {}/cgroup.procs && exec \"$@\"", self.0.display())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Innermost first, up to (not including) the hierarchy's root.
        let mut dir = Some(self.0.as_path());
        while let Some(d) = dir {
            if d == Path::new(UNIFIED) || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}
