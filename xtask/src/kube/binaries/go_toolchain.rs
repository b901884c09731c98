//! The Go that builds the current control plane: the first `go` on PATH (then
//! `/usr/local/go/bin/go`, where the official tarball goes) that is new enough. Debian 12's
//! own Go (1.19) is too old for it; the oldest control plane builds with that one instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kube::error::{KubeError, Result};
use crate::kube::version::{KubeVersion, VERSION_ENV};
use crate::tools::{self, at_least, version_numbers};

/// Where the official Go tarball is unpacked by convention.
const OFFICIAL_GO: &str = "/usr/local/go/bin/go";

/// A `go` binary and the version it reports (`go1.26.8`).
#[derive(Debug, Clone)]
pub(super) struct Go {
    pub path: PathBuf,
    pub version: String,
}

impl Go {
    /// Fails, saying what to install, unless this Go is at least `need` (e.g. `[1, 26, 0]`,
    /// from a `go` line of a go.mod); `why` says who asks for it.
    pub fn require(&self, need: &[u32], why: &str) -> Result<()> {
        if at_least(&version_numbers(&self.version), need) {
            return Ok(());
        }
        Err(too_old(
            need,
            why,
            format!("{} is {}", self.path.display(), self.version),
        ))
    }
}

/// The first Go on PATH, or at [`OFFICIAL_GO`], that is at least `need`.
pub(super) fn find(need: (u32, u32)) -> Result<Go> {
    let need = [need.0, need.1];
    let mut seen = Vec::new();
    for path in candidates() {
        match version_of(&path) {
            Ok(version) => {
                let go = Go { path, version };
                if go.require(&need, "").is_ok() {
                    return Ok(go);
                }
                seen.push(format!("{} is {}", go.path.display(), go.version));
            }
            Err(err) => seen.push(format!("{} does not run ({err})", path.display())),
        }
    }
    let found = if seen.is_empty() {
        "no `go` is on PATH".to_owned()
    } else {
        seen.join("; ")
    };
    Err(too_old(
        &need,
        &format!(
            "the oldest that builds k8s.io/kubernetes {}",
            KubeVersion::Current
        ),
        found,
    ))
}

fn too_old(need: &[u32], why: &str, found: String) -> KubeError {
    let need: Vec<String> = need.iter().map(u32::to_string).collect();
    KubeError::GoTooOld {
        kube: KubeVersion::Current.to_string(),
        need: need.join("."),
        why: why.to_owned(),
        found,
        env: VERSION_ENV,
    }
}

/// Every `go` on PATH, then [`OFFICIAL_GO`], each once.
fn candidates() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut found: Vec<PathBuf> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for candidate in std::env::split_paths(&path)
        .map(|dir| dir.join("go"))
        .chain(std::iter::once(PathBuf::from(OFFICIAL_GO)))
    {
        if !candidate.is_file() {
            continue;
        }
        let real = std::fs::canonicalize(&candidate).unwrap_or_else(|_| candidate.clone());
        if !seen.contains(&real) {
            seen.push(real);
            found.push(candidate);
        }
    }
    found
}

/// `go env GOVERSION` of exactly this binary: `GOTOOLCHAIN=local` keeps it from switching
/// to (or downloading) another toolchain.
fn version_of(go: &Path) -> Result<String> {
    Ok(tools::stdout_of(
        Command::new(go)
            .args(["env", "GOVERSION"])
            .env("GOTOOLCHAIN", "local")
            .env_remove("GOROOT")
            .current_dir(std::env::temp_dir()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_go_is_refused_with_what_to_install() {
        let go = Go {
            path: "/usr/bin/go".into(),
            version: "go1.19.8".into(),
        };
        let err = go
            .require(&[1, 26, 0], "k8s.io/kubernetes' go.mod says `go 1.26.0`")
            .expect_err("1.19 < 1.26");
        let text = err.to_string();
        for part in [
            "1.26.0",
            "/usr/bin/go is go1.19.8",
            "/usr/local/go",
            "oldest",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
        let newer = Go {
            version: "go1.26.8".into(),
            ..go
        };
        newer.require(&[1, 26, 0], "").expect("1.26.8 >= 1.26.0");
        newer.require(&[1, 26], "").expect("1.26.8 >= 1.26");
    }
}
