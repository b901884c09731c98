//! etcd and kube-apiserver binaries, built once and cached by version in
//! `.cache/kube/<version>/`.
//!
//! - [`KubeVersion::Current`]: both built from the Go module proxy ([`go_proxy`]): module
//!   `k8s.io/kubernetes` and `go.etcd.io/etcd/server/v3`, each through a wrapper module
//!   written at build time. Needs Go [`pins::MIN_GO_KUBE_CURRENT`] or newer.
//! - [`KubeVersion::Oldest`]: kube-apiserver v1.20.2 from Debian's source package and
//!   Debian's etcd ([`debian`]).
//!
//! A file lock per version serialises builds, so test binaries starting at once build each
//! binary once.

mod debian;
mod go_proxy;
mod go_toolchain;
mod wrapper;

use std::path::{Path, PathBuf};

use super::error::{Result, io};
use super::version::KubeVersion;
use crate::pins;
use crate::tools::ToolsLock;

/// What `cargo xtask kube up` and [`super::ControlPlane::start`] run when
/// [`super::VERSION_ENV`] is unset: `v1.37.2`. A running control plane's own release is
/// [`super::ControlPlane::version`].
pub const KUBE_VERSION: &str = pins::KUBE_CURRENT;

/// Build revision of the current binaries' cache folder: bump it whenever the build steps
/// change, so old binaries are rebuilt.
const CURRENT_REVISION: &str = "r1";

/// Paths of the two binaries a control plane runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub version: KubeVersion,
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
}

/// `.cache/kube` under the workspace root.
pub fn cache_root() -> PathBuf {
    crate::workspace_root().join(".cache").join("kube")
}

/// The folder of `version`'s binaries, under [`cache_root`].
fn cache_name(version: KubeVersion) -> String {
    match version {
        KubeVersion::Current => format!(
            "{}+etcd{}-{CURRENT_REVISION}",
            KubeVersion::Current.number(),
            pins::ETCD_CURRENT.trim_start_matches('v')
        ),
        KubeVersion::Oldest => debian::CACHE_NAME.to_owned(),
    }
}

/// `version`'s cached binaries, fetching or building whatever is missing first.
pub fn ensure(version: KubeVersion) -> Result<Binaries> {
    let root = cache_root();
    let dir = root.join(cache_name(version));
    let binaries = Binaries {
        version,
        etcd: dir.join("etcd"),
        kube_apiserver: dir.join("kube-apiserver"),
    };
    if binaries.etcd.is_file() && binaries.kube_apiserver.is_file() {
        return Ok(binaries);
    }
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let _lock = ToolsLock::acquire(&dir)?;
    remove_abandoned_builds(&dir);
    match version {
        KubeVersion::Current => go_proxy::ensure(&dir, &binaries)?,
        KubeVersion::Oldest => debian::ensure(&dir, &binaries)?,
    }
    remove_stale_caches(&root);
    Ok(binaries)
}

/// Copies `from` to `to` through a temporary name, so a reader never sees half a file.
fn install_file(from: &Path, to: &Path) -> Result<()> {
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).map_err(io(format!(
        "copying {} to {}",
        from.display(),
        partial.display()
    )))?;
    std::fs::rename(&partial, to).map_err(io(format!(
        "renaming {} to {}",
        partial.display(),
        to.display()
    )))
}

/// What a build folder's name starts with, so an abandoned one is recognised.
const BUILD_PREFIX: &str = "build-";

/// A new build folder in `cache` (the binaries' own folder, on the same disk), deleted when
/// dropped.
fn build_folder(cache: &Path) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(BUILD_PREFIX)
        .tempdir_in(cache)
        .map_err(io(format!(
            "creating a build folder in {}",
            cache.display()
        )))
}

/// Deletes the build folders (`build-*`, several GB each) that a build killed before it could
/// clean up left in `dir`. Called with `dir`'s lock held, so no build of ours is using them.
fn remove_abandoned_builds(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(BUILD_PREFIX)
            && entry.path().is_dir()
        {
            eprintln!(
                "xtask kube: removing {}, left by a build that did not finish",
                entry.path().display()
            );
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Deletes binaries of earlier build revisions: folders named like a version that no
/// [`KubeVersion`] uses now.
fn remove_stale_caches(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let current: Vec<String> = KubeVersion::ALL.into_iter().map(cache_name).collect();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !current.iter().any(|c| c == name.as_ref())
            && name.starts_with(|c: char| c.is_ascii_digit())
            && entry.path().is_dir()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_version_constant_is_the_pinned_current_release() {
        assert_eq!(KUBE_VERSION, KubeVersion::Current.git_version());
        assert!(KUBE_VERSION.starts_with('v'));
    }

    #[test]
    fn each_version_has_its_own_cache_folder() {
        let current = cache_name(KubeVersion::Current);
        let oldest = cache_name(KubeVersion::Oldest);
        assert_ne!(current, oldest);
        assert!(current.starts_with("1.37.2+etcd3.7.3-"), "{current}");
        assert!(oldest.contains(KubeVersion::Oldest.number()), "{oldest}");
    }
}
