//! What the copy would do to each file, and doing it all or nothing.
//!
//! [`apply`] works in two phases: first every new file is written beside its
//! target (creating missing folders, and opening each existing target for
//! writing as a probe), then each is renamed over its target. A read-only or
//! immutable destination therefore fails in the first phase, and the first
//! phase undoes itself, so a refused copy leaves every destination untouched.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::CopyError;
use super::destination::Kind;
use super::safe_path::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Added,
    Changed,
    Unchanged,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Added => "added",
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
        })
    }
}

/// One generated file and what copying it means.
#[derive(Debug, Clone)]
pub struct FileCopy {
    pub kind: Kind,
    /// Path under the destination root, `/`-separated, as reported.
    pub relative: String,
    pub target: Target,
    pub status: Status,
    pub old: Option<Vec<u8>>,
    pub new: Vec<u8>,
}

impl FileCopy {
    pub fn plan(
        kind: Kind,
        relative: &str,
        target: Target,
        new: Vec<u8>,
    ) -> Result<Self, CopyError> {
        let old = if target.exists {
            Some(std::fs::read(&target.path).map_err(|source| CopyError::Io {
                context: format!("reading {}", target.path.display()),
                source,
            })?)
        } else {
            None
        };
        let status = match &old {
            None => Status::Added,
            Some(old) if *old == new => Status::Unchanged,
            Some(_) => Status::Changed,
        };
        Ok(Self {
            kind,
            relative: relative.to_owned(),
            target,
            status,
            old,
            new,
        })
    }

    /// A unified diff (git's a/ b/ convention) of the change; empty when unchanged.
    pub fn unified_diff(&self) -> String {
        if self.status == Status::Unchanged {
            return String::new();
        }
        let old = String::from_utf8_lossy(self.old.as_deref().unwrap_or_default());
        let new = String::from_utf8_lossy(&self.new);
        let before = if self.old.is_some() {
            format!("a/{}", self.relative)
        } else {
            "/dev/null".to_owned()
        };
        let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
        diff.unified_diff()
            .context_radius(3)
            .header(&before, &format!("b/{}", self.relative))
            .to_string()
    }
}

/// Writes every added or changed file, all or nothing (see the module docs).
pub fn apply(copies: &[FileCopy]) -> Result<(), CopyError> {
    let pending: Vec<&FileCopy> = copies
        .iter()
        .filter(|c| c.status != Status::Unchanged)
        .collect();
    let mut staged: Vec<(PathBuf, &FileCopy)> = Vec::new();
    let mut created_dirs: Vec<PathBuf> = Vec::new();
    for copy in &pending {
        match stage(copy, &mut created_dirs) {
            Ok(partial) => staged.push((partial, copy)),
            Err((path, source)) => {
                for (partial, _) in &staged {
                    let _ = std::fs::remove_file(partial);
                }
                for dir in created_dirs.iter().rev() {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(CopyError::NotWritable {
                    kind: copy.kind,
                    path,
                    source,
                });
            }
        }
    }
    let mut done: Vec<String> = Vec::new();
    for (index, (partial, copy)) in staged.iter().enumerate() {
        if let Err(source) = std::fs::rename(partial, &copy.target.path) {
            for (rest, _) in &staged[index..] {
                let _ = std::fs::remove_file(rest);
            }
            return Err(CopyError::PartialWrite {
                path: copy.target.path.clone(),
                done,
                source,
            });
        }
        done.push(format!("{} {}", copy.kind.flag(), copy.relative));
    }
    Ok(())
}

/// Phase one for one file: the new contents in a hidden file beside the
/// target, with the target's permissions. Returns that file's path.
fn stage(
    copy: &FileCopy,
    created_dirs: &mut Vec<PathBuf>,
) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    let target = &copy.target.path;
    let parent = target.parent().unwrap_or(Path::new("/"));
    create_dirs(parent, created_dirs).map_err(|e| (parent.to_path_buf(), e))?;
    let permissions = if copy.target.exists {
        // Probe: a target we may not write is one we must not replace.
        let probe = OpenOptions::new()
            .write(true)
            .open(target)
            .map_err(|e| (target.clone(), e))?;
        Some(
            probe
                .metadata()
                .map_err(|e| (target.clone(), e))?
                .permissions(),
        )
    } else {
        None
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = parent.join(format!(".{name}.copy-to-odigos-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)?;
        file.write_all(&copy.new)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        (target.clone(), e)
    })?;
    Ok(partial)
}

/// `create_dir_all` that remembers what it created, so a failed copy can remove it.
fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, created)?;
    }
    std::fs::create_dir(dir)?;
    created.push(dir.to_path_buf());
    Ok(())
}
