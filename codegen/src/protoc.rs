//! Running one of protoc's built-in generators (python, pyi, java, ...) from a
//! plugin: the descriptors go to protoc as a descriptor set, so protoc sees
//! exactly what buf sent (after the plugin's adjustments), and every file it
//! writes comes back as a [`GeneratedFile`], in path order.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use prost_types::FileDescriptorSet;

use crate::plugin::GeneratedFile;

#[derive(Debug, thiserror::Error)]
pub enum ProtocError {
    #[error("temporary directory: {0}")]
    TempDir(std::io::Error),
    #[error(
        "could not start {command}: {source}; run `cargo xtask generate`, which installs the pinned protoc into .tools/"
    )]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}):\n{stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("reading protoc output {path}: {source}")]
    ReadOutput {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs `protoc` (a command that behaves like protoc, e.g. `python -m
/// grpc_tools.protoc`) over `descriptors`, generating `to_generate` with one
/// `--<name>_out` flag per entry of `outputs`.
pub fn generate(
    mut protoc: Command,
    descriptors: &FileDescriptorSet,
    to_generate: &[String],
    outputs: &[&str],
) -> Result<Vec<GeneratedFile>, ProtocError> {
    let command = describe(&protoc);
    let work = tempfile::tempdir().map_err(ProtocError::TempDir)?;
    let descriptor_path = work.path().join("descriptors.binpb");
    std::fs::write(&descriptor_path, descriptors.encode_to_vec()).map_err(ProtocError::TempDir)?;
    let out = work.path().join("out");
    std::fs::create_dir(&out).map_err(ProtocError::TempDir)?;

    protoc.arg(format!("--descriptor_set_in={}", descriptor_path.display()));
    for name in outputs {
        protoc.arg(format!("--{name}_out={}", out.display()));
    }
    let output = protoc
        .args(to_generate)
        .output()
        .map_err(|source| ProtocError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(ProtocError::Failed {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    collect(&out)
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every file under `root`, named relative to it with `/` separators.
fn collect(root: &Path) -> Result<Vec<GeneratedFile>, ProtocError> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| ProtocError::ReadOutput {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| ProtocError::ReadOutput {
                    path: dir.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                pending.push(path)
            } else {
                found.insert(path);
            }
        }
    }
    found
        .into_iter()
        .map(|path| {
            let content =
                std::fs::read_to_string(&path).map_err(|source| ProtocError::ReadOutput {
                    path: path.clone(),
                    source,
                })?;
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            Ok(GeneratedFile { name, content })
        })
        .collect()
}
