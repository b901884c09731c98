//! The containment guard: a file path under a destination root that a write
//! cannot escape through `..`, an absolute component or a symbolic link.
//!
//! Every component between the root and the file must be a real directory (or
//! not exist yet, to be created), and the file itself a regular file (or not
//! exist yet). Writes then go to a new file beside the target and are renamed
//! over it, so even a hard-linked target is replaced, never written through.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unsafe {
    #[error("`{0}` is not a plain relative path")]
    NotRelative(String),
    #[error("{0} is a symbolic link, and writing through it could leave the destination")]
    Symlink(PathBuf),
    #[error("{0} is in the way: it is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("{0} resolves outside the destination {1}")]
    Outside(PathBuf, PathBuf),
    #[error("cannot inspect {0}: {1}")]
    Inspect(PathBuf, String),
}

/// Where a file would be written, and whether it exists now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub exists: bool,
}

/// `root` (canonical) joined with `relative` (`/`-separated), checked as above.
pub fn resolve(root: &Path, relative: &str) -> Result<Target, Unsafe> {
    let components: Vec<Component<'_>> = Path::new(relative).components().collect();
    if components.is_empty() || !components.iter().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Unsafe::NotRelative(relative.to_owned()));
    }
    let mut path = root.to_path_buf();
    let mut deepest_existing = root.to_path_buf();
    let last = components.len() - 1;
    for (index, component) in components.iter().enumerate() {
        path.push(component);
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                // Nothing further down exists either; it will be created inside `deepest_existing`.
                continue;
            }
            Err(err) => return Err(Unsafe::Inspect(path, err.to_string())),
        };
        if metadata.file_type().is_symlink() {
            return Err(Unsafe::Symlink(path));
        }
        if index < last && !metadata.is_dir() {
            return Err(Unsafe::NotADirectory(path));
        }
        if index == last && !metadata.is_file() {
            return Err(Unsafe::NotAFile(path));
        }
        if index < last {
            deepest_existing = path.clone();
        }
    }
    // Belt and braces: what exists must still resolve under the root.
    let resolved = deepest_existing
        .canonicalize()
        .map_err(|err| Unsafe::Inspect(deepest_existing.clone(), err.to_string()))?;
    if !resolved.starts_with(root) {
        return Err(Unsafe::Outside(path, root.to_path_buf()));
    }
    let exists = std::fs::symlink_metadata(&path).is_ok();
    Ok(Target { path, exists })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, root)
    }

    #[test]
    fn accepts_existing_and_missing_paths_inside() {
        let (_dir, root) = root();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f.py"), "x").unwrap();
        assert_eq!(
            resolve(&root, "a/b/f.py").unwrap(),
            Target {
                path: root.join("a/b/f.py"),
                exists: true
            }
        );
        assert_eq!(
            resolve(&root, "a/new/g.py").unwrap(),
            Target {
                path: root.join("a/new/g.py"),
                exists: false
            }
        );
    }

    #[test]
    fn refuses_dot_dot_and_absolute_paths() {
        let (_dir, root) = root();
        for bad in [
            "../escape.py",
            "a/../../escape.py",
            "/etc/passwd",
            "./a.py",
            "",
        ] {
            assert!(
                matches!(resolve(&root, bad), Err(Unsafe::NotRelative(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_symlinks_anywhere_on_the_way() {
        let (_dir, root) = root();
        let (_outside_dir, outside) = self::root();
        std::fs::write(outside.join("victim.py"), "keep").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim.py"), root.join("real/f.py")).unwrap();

        assert!(
            matches!(resolve(&root, "linked/victim.py"), Err(Unsafe::Symlink(p)) if p == root.join("linked"))
        );
        assert!(
            matches!(resolve(&root, "real/f.py"), Err(Unsafe::Symlink(p)) if p == root.join("real/f.py"))
        );
        // Even a symlink that stays inside is refused: the rule is simple to trust.
        std::os::unix::fs::symlink(root.join("real"), root.join("inner")).unwrap();
        assert!(matches!(
            resolve(&root, "inner/g.py"),
            Err(Unsafe::Symlink(_))
        ));
    }

    #[test]
    fn refuses_files_and_folders_in_the_wrong_places() {
        let (_dir, root) = root();
        std::fs::write(root.join("protobufs"), "a file where a folder belongs").unwrap();
        std::fs::create_dir(root.join("dir.py")).unwrap();
        assert!(matches!(
            resolve(&root, "protobufs/opamp.pb.go"),
            Err(Unsafe::NotADirectory(_))
        ));
        assert!(matches!(resolve(&root, "dir.py"), Err(Unsafe::NotAFile(_))));
    }
}
