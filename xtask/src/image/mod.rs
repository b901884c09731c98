//! `cargo xtask image`: the shipped server binary ([`dist`]: profile `dist`, static) and an
//! OCI image around it ([`layout`]: `scratch`, a non-root user, ports 4320 and 4321), built
//! by [`podman`] with no registry. `deploy/Dockerfile` builds the same layout with BuildKit.

pub mod dist;
pub mod layout;
pub mod podman;
pub mod startup;

use std::path::{Path, PathBuf};

pub use dist::DistBinary;
pub use layout::Layout;
pub use podman::Podman;

use crate::apt::AptError;
use crate::tools::ToolError;

/// Why the binary or the image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("cargo build of the shipping binary failed ({0}); its errors are above")]
    CargoBuild(String),
    #[error(
        "{} is not a static binary: {why}. It is built with `-C target-feature=+crt-static`; \
         check that RUSTFLAGS does not undo it and that glibc's static libraries (libc6-dev) \
         are installed",
        path.display()
    )]
    NotStatic { path: PathBuf, why: String },
    #[error(
        "the shipping binary is built static for a *-linux-gnu host, and this host is {0:?}; \
         build on x86_64 or aarch64 Linux with glibc"
    )]
    UnsupportedHost(String),
    #[error("the container runtime: {detail}")]
    Runtime { detail: String },
    #[error("the server did not become ready: {0}")]
    Startup(String),
}

/// A built image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub binary: DistBinary,
    pub tag: String,
    /// As podman counts it: the uncompressed layer, i.e. the binary and a few bytes.
    pub size_bytes: u64,
}

/// The tag `cargo xtask image` gives by default: what deploy/daemonset-container.yaml names.
pub fn default_tag(root: &Path) -> Result<String, ImageError> {
    let metadata = crate::tools::stdout_of(crate::cargo::command(root).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).map_err(|e| ImageError::Io {
            context: "reading `cargo metadata`".into(),
            source: std::io::Error::other(e),
        })?;
    let version = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == dist::PACKAGE)
        .and_then(|p| p["version"].as_str())
        .unwrap_or("dev");
    Ok(format!("{}:{version}", dist::PACKAGE))
}

/// Build the shipping binary (a no-op when it is up to date) and the image `tag` from it.
/// The image `tag` named before, if another, is removed (unless other tags use it): builds
/// do not pile up untagged images.
pub fn build(root: &Path, podman: &Podman, tag: &str) -> Result<BuiltImage, ImageError> {
    let binary = dist::build(root)?;
    let context = tempfile::tempdir().map_err(|source| ImageError::Io {
        context: "creating the image's build context".into(),
        source,
    })?;
    let io = |what: &str| {
        let context = format!("writing the build context ({what})");
        move |source| ImageError::Io { context, source }
    };
    let staged = context.path().join(layout::CONTEXT_BINARY);
    std::fs::copy(&binary.path, &staged).map_err(io("the binary"))?;
    set_mode(&staged, 0o755).map_err(io("the binary's mode"))?;
    std::fs::write(
        context.path().join("Containerfile"),
        Layout::shipped().containerfile(),
    )
    .map_err(io("the Containerfile"))?;
    let previous = podman.image_id(tag);
    podman.build(context.path(), tag)?;
    if let Some(previous) = previous
        && podman.image_id(tag).as_ref() != Some(&previous)
    {
        podman.remove_unused_image(&previous);
    }
    let size_bytes = podman.image_size(tag)?;
    Ok(BuiltImage {
        binary,
        tag: tag.to_owned(),
        size_bytes,
    })
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
