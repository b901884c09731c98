//! The project's automation, as a library so that tests can share it: the
//! pinned-tool installer ([`tools`]), code generation ([`generate`]), the
//! file helpers behind `--check` ([`files`]), and the shipped image ([`image`]).

pub mod apt;
pub mod baseline;
pub mod bench;
pub mod cargo;
pub mod copy_to_odigos;
pub mod files;
pub mod generate;
pub mod image;
pub mod kube;
pub mod pins;
pub mod ports;
pub mod suite;
pub mod tools;

use std::path::PathBuf;

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
