//! The folder of one control plane: PKI, etcd data, logs, kubeconfigs.
//! Temporary for tests (removed on drop), or a given folder that is kept
//! (`cargo xtask kube up`).

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::error::{Result, io};

const TEMP_PREFIX: &str = "odigos-kube-";
/// Holds the pid of the process that owns a temporary control-plane folder.
const OWNER_FILE: &str = "owner.pid";

pub(crate) enum WorkDir {
    Temp(TempDir),
    Kept(PathBuf),
}

impl WorkDir {
    /// `dir` when given, else a new temporary folder marked with our pid.
    pub fn create(dir: Option<PathBuf>) -> Result<Self> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            return Ok(WorkDir::Kept(dir));
        }
        sweep_abandoned_dirs();
        let dir = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempdir()
            .map_err(io("creating a temporary folder"))?;
        let owner = dir.path().join(OWNER_FILE);
        std::fs::write(&owner, std::process::id().to_string())
            .map_err(io(format!("writing {}", owner.display())))?;
        Ok(WorkDir::Temp(dir))
    }

    pub fn path(&self) -> &Path {
        match self {
            WorkDir::Temp(dir) => dir.path(),
            WorkDir::Kept(dir) => dir,
        }
    }
}

/// Removes temporary folders of control planes whose test process died
/// without running `Drop` (SIGKILL; the processes themselves die with it).
/// Each is ~120 MB, mostly etcd's preallocated WAL.
fn sweep_abandoned_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        // No owner file yet: another process is creating it right now.
        let Ok(owner) = std::fs::read_to_string(entry.path().join(OWNER_FILE)) else {
            continue;
        };
        let alive = owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
