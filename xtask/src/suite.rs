//! The test runs of `cargo xtask test`: the whole workspace on the current Kubernetes, then
//! the tests that most depend on the API server's behaviour again on the oldest supported
//! one, so that nothing the server sends needs a newer API server by accident.

use std::path::Path;

use crate::kube::{KubeVersion, VERSION_ENV};

/// The test targets run again on [`KubeVersion::Oldest`], as (package, test target): the
/// server's Kubernetes edges and an agent's resource over its life (`kube_server`), API
/// server outages and the requests an agent costs (`kube_outage`), strict field validation
/// and streaming lists, or their absence (`kube_api_features`), the CRDs and RBAC of
/// `deploy/` (`deploy`), and the control-plane harness itself (`kube_control_plane`).
pub const ON_OLDEST_KUBE: &[(&str, &str)] = &[
    ("odigos-opamp-server", "kube_server"),
    ("odigos-opamp-server", "kube_outage"),
    ("odigos-opamp-server", "kube_api_features"),
    ("xtask", "deploy"),
    ("xtask", "kube_control_plane"),
];

/// One `cargo test` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub title: String,
    pub version: KubeVersion,
    /// After `cargo test --locked --no-fail-fast`.
    pub args: Vec<String>,
}

/// Every run, in order: the workspace on the current Kubernetes, then the
/// [`ON_OLDEST_KUBE`] targets on the oldest. Both select the whole workspace, so Cargo
/// resolves the same dependency features and the second run compiles nothing again.
pub fn runs() -> Vec<Run> {
    let mut oldest = vec!["--workspace".to_owned()];
    for (_, target) in ON_OLDEST_KUBE {
        oldest.extend(["--test".to_owned(), (*target).to_owned()]);
    }
    let names: Vec<&str> = ON_OLDEST_KUBE.iter().map(|(_, t)| *t).collect();
    vec![
        Run {
            title: format!(
                "every test of the workspace, on Kubernetes {}",
                KubeVersion::Current
            ),
            version: KubeVersion::Current,
            args: vec!["--workspace".into()],
        },
        Run {
            title: format!("{} on Kubernetes {}", names.join(", "), KubeVersion::Oldest),
            version: KubeVersion::Oldest,
            args: oldest,
        },
    ]
}

/// Runs `run` in `root` with [`crate::cargo::command`]; `Ok(false)` when tests failed.
pub fn execute(root: &Path, run: &Run) -> std::io::Result<bool> {
    println!("== cargo test: {} ==", run.title);
    let status = crate::cargo::command(root)
        .args(["test", "--locked", "--no-fail-fast"])
        .args(&run.args)
        .env(VERSION_ENV, run.version.name())
        .status()?;
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_runs_name_test_files_that_exist() {
        let root = crate::workspace_root();
        for (package, target) in ON_OLDEST_KUBE {
            let folder = match *package {
                "odigos-opamp-server" => "server",
                other => other,
            };
            let file = root.join(folder).join("tests").join(format!("{target}.rs"));
            assert!(file.is_file(), "{} is missing", file.display());
        }
    }

    #[test]
    fn the_whole_suite_runs_first_on_the_current_release() {
        let runs = runs();
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(runs[0].version, KubeVersion::Current);
        assert_eq!(runs[0].args, ["--workspace"]);
        assert_eq!(runs[1].version, KubeVersion::Oldest);
        assert_eq!(runs[1].args[0], "--workspace");
        assert_eq!(
            runs[1].args[1..].join(" "),
            "--test kube_server --test kube_outage --test kube_api_features --test deploy \
             --test kube_control_plane"
        );
    }
}
