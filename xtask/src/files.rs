//! Directory trees as maps from relative path to bytes: read one, compare two,
//! make one on disk equal to another. Generation and `--check` share these, so
//! what `--check` compares is exactly what `generate` writes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Relative path (with `/` separators) → contents.
pub type Tree = BTreeMap<String, Vec<u8>>;

/// Directories that tools create next to generated files (Python bytecode,
/// npm installs, cargo output). They are never generated and never compared.
const IGNORED_DIRS: &[&str] = &["__pycache__", "node_modules", "target", ".pytest_cache"];

/// Reads every file under `dir`. A missing `dir` reads as empty.
pub fn read_tree(dir: &Path) -> std::io::Result<Tree> {
    let mut tree = Tree::new();
    if !dir.exists() {
        return Ok(tree);
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if entry.file_type()?.is_dir() {
                if !IGNORED_DIRS.iter().any(|d| name == *d) {
                    pending.push(path);
                }
                continue;
            }
            tree.insert(relative(dir, &path), std::fs::read(&path)?);
        }
    }
    Ok(tree)
}

fn relative(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// How one file differs between the wanted tree and the one on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Would be generated, but is not on disk.
    Missing(String),
    /// On disk with other contents.
    Changed(String),
    /// On disk, but no longer generated.
    Extra(String),
}

impl Drift {
    pub fn path(&self) -> &str {
        match self {
            Drift::Missing(p) | Drift::Changed(p) | Drift::Extra(p) => p,
        }
    }

    /// The same change, of a path below `dir`.
    pub fn within(self, dir: &str) -> Drift {
        let join = |p: String| format!("{dir}/{p}");
        match self {
            Drift::Missing(p) => Drift::Missing(join(p)),
            Drift::Changed(p) => Drift::Changed(join(p)),
            Drift::Extra(p) => Drift::Extra(join(p)),
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Missing(p) => write!(f, "missing   {p}"),
            Drift::Changed(p) => write!(f, "changed   {p}"),
            Drift::Extra(p) => write!(f, "stale     {p} (no longer generated)"),
        }
    }
}

/// Every difference between `wanted` and `actual`, in path order.
pub fn compare(wanted: &Tree, actual: &Tree) -> Vec<Drift> {
    let mut drift = Vec::new();
    for (path, contents) in wanted {
        match actual.get(path) {
            None => drift.push(Drift::Missing(path.clone())),
            Some(existing) if existing != contents => drift.push(Drift::Changed(path.clone())),
            Some(_) => {}
        }
    }
    drift.extend(
        actual
            .keys()
            .filter(|p| !wanted.contains_key(*p))
            .map(|p| Drift::Extra(p.clone())),
    );
    drift.sort_by(|a, b| a.path().cmp(b.path()));
    drift
}

/// Makes `dir` hold exactly `wanted`: writes missing and changed files,
/// deletes stale ones (and directories they leave empty). Untouched files keep
/// their timestamps, so builds that depend on them do not rerun.
pub fn sync_tree(dir: &Path, wanted: &Tree) -> std::io::Result<Vec<Drift>> {
    let actual = read_tree(dir)?;
    let drift = compare(wanted, &actual);
    for change in &drift {
        let path = dir.join(change.path());
        match change {
            Drift::Missing(p) | Drift::Changed(p) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, &wanted[p])?;
            }
            Drift::Extra(_) => {
                std::fs::remove_file(&path)?;
                remove_empty_parents(dir, &path);
            }
        }
    }
    Ok(drift)
}

fn remove_empty_parents(root: &Path, file: &Path) {
    let mut current: Option<PathBuf> = file.parent().map(Path::to_path_buf);
    while let Some(dir) = current {
        if dir == root || std::fs::remove_dir(&dir).is_err() {
            break;
        }
        current = dir.parent().map(Path::to_path_buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, &str)]) -> Tree {
        entries
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn compare_names_every_kind_of_drift() {
        let wanted = tree(&[("a", "1"), ("b/c", "2"), ("d", "3")]);
        let actual = tree(&[("a", "1"), ("b/c", "x"), ("e", "4")]);
        assert_eq!(
            compare(&wanted, &actual),
            [
                Drift::Changed("b/c".into()),
                Drift::Missing("d".into()),
                Drift::Extra("e".into())
            ]
        );
    }

    #[test]
    fn sync_makes_the_directory_equal_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("old/deep")).unwrap();
        std::fs::write(dir.path().join("old/deep/x"), "stale").unwrap();
        std::fs::create_dir_all(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/m.pyc"), "bytecode").unwrap();
        let wanted = tree(&[("a", "1"), ("b/c", "2")]);

        let first = sync_tree(dir.path(), &wanted).unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(read_tree(dir.path()).unwrap(), wanted);
        assert!(
            !dir.path().join("old").exists(),
            "empty directories of stale files are removed"
        );
        assert!(
            dir.path().join("__pycache__/m.pyc").exists(),
            "ignored directories are left alone"
        );
        assert!(sync_tree(dir.path(), &wanted).unwrap().is_empty());
    }
}
