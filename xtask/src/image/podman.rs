//! Podman, the daemonless OCI builder and runtime from Debian's packages: builds the image
//! from `scratch` with no registry, and runs it.
//!
//! It runs containers with runc: crun refuses this project's machines' hybrid cgroup layout
//! (v1 controllers, the v2 hierarchy beside them). Containers share the host's network (no
//! bridge or port forwarding needed; a test picks free loopback ports) and get the rlimits
//! the machine already has, because raising them is not permitted everywhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::ImageError;
use crate::{apt, tools};

/// The Debian packages: podman (which builds with buildah's library) and runc.
pub const PACKAGES: &[&str] = &["podman", "runc"];
/// The OCI runtime containers run with.
pub const RUNTIME: &str = "runc";
/// Every container's rlimits: the hard limits of the machines it was tried on.
pub const ULIMITS: &[&str] = &["nofile=1024:1024", "nproc=1024:1024"];

/// The podman program, with its global options.
#[derive(Debug, Clone)]
pub struct Podman {
    program: PathBuf,
}

/// What `podman image inspect` says about an image's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub exposed_ports: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
}

impl Podman {
    /// Podman and runc, installed with apt-get when missing.
    pub fn ensure() -> Result<Podman, ImageError> {
        apt::ensure("xtask image", PACKAGES)?;
        let program = PathBuf::from("podman");
        for (tool, argument) in [("podman", "--version"), (RUNTIME, "--version")] {
            tools::run(Command::new(tool).arg(argument)).map_err(|e| ImageError::Runtime {
                detail: format!("`{tool} {argument}` failed after installing {PACKAGES:?}: {e}"),
            })?;
        }
        Ok(Podman { program })
    }

    /// `podman` with the global options every call needs.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(["--runtime", RUNTIME]);
        command
    }

    /// `podman build` of `context`'s Containerfile as `tag`. Fixed timestamps make the same
    /// binary the same image.
    pub fn build(&self, context: &Path, tag: &str) -> Result<(), ImageError> {
        tools::run(
            self.command()
                .args([
                    "build",
                    "--format",
                    "oci",
                    "--pull=never",
                    "--timestamp",
                    "0",
                ])
                .args(["--tag", tag, "--file"])
                .arg(context.join("Containerfile"))
                .arg(context),
        )?;
        Ok(())
    }

    /// The id of the image `tag` names, if any.
    pub fn image_id(&self, tag: &str) -> Option<String> {
        tools::stdout_of(
            self.command()
                .args(["image", "inspect", "--format", "{{.Id}}", tag]),
        )
        .ok()
        .filter(|id| !id.is_empty())
    }

    /// The image's size as podman counts it (its layers, uncompressed), in bytes.
    pub fn image_size(&self, tag: &str) -> Result<u64, ImageError> {
        let text = tools::stdout_of(self.command().args([
            "image",
            "inspect",
            "--format",
            "{{.Size}}",
            tag,
        ]))?;
        text.trim().parse().map_err(|_| ImageError::Runtime {
            detail: format!("`podman image inspect` gave {text:?} as the size of {tag}"),
        })
    }

    /// The image's config: user, exposed ports, entrypoint.
    pub fn image_config(&self, tag: &str) -> Result<ImageConfig, ImageError> {
        let text = tools::stdout_of(self.command().args([
            "image",
            "inspect",
            "--format",
            "{{json .Config}}",
            tag,
        ]))?;
        serde_json::from_str(&text).map_err(|e| ImageError::Runtime {
            detail: format!(
                "`podman image inspect` of {tag} is not the expected JSON ({e}): {text}"
            ),
        })
    }

    /// Remove the image (and any container still using it); errors are ignored, for
    /// clean-up paths.
    pub fn remove_image(&self, tag: &str) {
        let _ = self.command().args(["rmi", "--force", tag]).output();
    }

    /// Remove the image `id` if no tag or container uses it any more; errors are ignored
    /// (another tag still naming it is one).
    pub fn remove_unused_image(&self, id: &str) {
        let _ = self.command().args(["rmi", id]).output();
    }

    /// `podman run` with this project's settings (runc, host network, the machine's
    /// rlimits); the caller adds its options, the image and the arguments.
    pub fn run_command(&self) -> Command {
        let mut command = self.command();
        command.args(["run", "--network", "host"]);
        for limit in ULIMITS {
            command.args(["--ulimit", limit]);
        }
        command
    }

    /// Remove the container `name` at once, running or not; errors are ignored, for
    /// clean-up paths.
    pub fn remove_container(&self, name: &str) {
        let _ = self
            .command()
            .args(["rm", "--force", "--time", "0", name])
            .output();
    }
}
