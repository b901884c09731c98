//! The commit `buf breaking` compares `proto/` with (`cargo xtask lint`).
//!
//! On a branch (or with uncommitted schema changes) that is where the work started from:
//! the merge base with `main`. On `main` itself, its previous commit. A clone that lacks
//! that commit (a shallow one) is an error naming the command that fetches it, never a
//! silent pass; only a history with no earlier schema at all has nothing to compare.

use std::path::Path;
use std::process::Command;

use crate::tools;

/// What `buf breaking` compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Baseline {
    /// This commit (described by `label`, e.g. `main~1`).
    Commit { label: String, commit: String },
    /// Nothing: no earlier commit has a schema (the reason says which).
    NoEarlierSchema(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(
        "no `main` branch in this clone, so buf breaking has no baseline: fetch it \
         (`git fetch origin main:main`) and rerun"
    )]
    NoMain,
    #[error(
        "buf breaking compares with {label}, which this shallow clone does not have: run \
         `git fetch --deepen=1` (or `git fetch --unshallow`) and rerun"
    )]
    Shallow { label: String },
}

/// The baseline of the checkout at `root`.
pub fn breaking_baseline(root: &Path) -> Result<Baseline, BaselineError> {
    let git = |args: &[&str]| tools::stdout_of(Command::new("git").args(args).current_dir(root));
    let main = git(&["rev-parse", "--verify", "--quiet", "main^{commit}"])
        .map_err(|_| BaselineError::NoMain)?;
    let head = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    let dirty = !git(&["status", "--porcelain", "--", "proto", "buf.yaml"])
        .unwrap_or_default()
        .is_empty();
    let (label, rev) = if head != main {
        let base = git(&["merge-base", "HEAD", &main]).unwrap_or(main);
        ("the merge base with main".to_owned(), base)
    } else if dirty {
        ("main".to_owned(), main)
    } else {
        ("main~1".to_owned(), format!("{main}~1"))
    };
    let Ok(commit) = git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{rev}^{{commit}}"),
    ]) else {
        let shallow = git(&["rev-parse", "--is-shallow-repository"]).is_ok_and(|s| s == "true");
        if shallow {
            return Err(BaselineError::Shallow { label });
        }
        return Ok(Baseline::NoEarlierSchema(format!(
            "{label} does not exist: main has a single commit"
        )));
    };
    if git(&["cat-file", "-e", &format!("{commit}:buf.yaml")]).is_err() {
        return Ok(Baseline::NoEarlierSchema(format!(
            "{label} ({}) has no buf.yaml",
            &commit[..12.min(commit.len())]
        )));
    }
    Ok(Baseline::Commit { label, commit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }

    fn repo_with_two_commits(dir: &Path) {
        git(dir, &["init", "-q"]);
        std::fs::write(dir.join("buf.yaml"), "version: v2\n").unwrap();
        git(dir, &["add", "."]);
        git(dir, &["commit", "-qm", "one"]);
        std::fs::write(dir.join("buf.yaml"), "version: v2\n# two\n").unwrap();
        git(dir, &["commit", "-qam", "two"]);
    }

    #[test]
    fn main_compares_with_its_previous_commit() {
        let dir = tempfile::tempdir().unwrap();
        repo_with_two_commits(dir.path());
        match breaking_baseline(dir.path()).unwrap() {
            Baseline::Commit { label, .. } => assert_eq!(label, "main~1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_branch_compares_with_its_merge_base() {
        let dir = tempfile::tempdir().unwrap();
        repo_with_two_commits(dir.path());
        git(dir.path(), &["switch", "-qc", "work"]);
        std::fs::write(dir.path().join("x"), "x").unwrap();
        git(dir.path(), &["add", "x"]);
        git(dir.path(), &["commit", "-qm", "work"]);
        match breaking_baseline(dir.path()).unwrap() {
            Baseline::Commit { label, .. } => assert_eq!(label, "the merge base with main"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_shallow_clone_fails_with_the_command_that_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        repo_with_two_commits(&origin);
        let url = format!("file://{}", origin.display());
        git(
            dir.path(),
            &["clone", "-q", "--depth", "1", &url, "shallow"],
        );
        let error = breaking_baseline(&dir.path().join("shallow")).unwrap_err();
        assert!(
            error.to_string().contains("git fetch --deepen=1"),
            "{error}"
        );
    }

    #[test]
    fn a_first_commit_has_nothing_to_compare_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("buf.yaml"), "version: v2\n").unwrap();
        git(dir.path(), &["add", "."]);
        git(dir.path(), &["commit", "-qm", "one"]);
        assert!(matches!(
            breaking_baseline(dir.path()).unwrap(),
            Baseline::NoEarlierSchema(_)
        ));
    }
}
