//! The throwaway Go modules that build etcd and kube-apiserver from the module proxy, written
//! at build time and deleted with the build folder, and what is read from upstream's go.mod.
//!
//! Neither command can be built with `go install module@version`: `k8s.io/kubernetes`
//! requires its own staging modules (`k8s.io/api`, `k8s.io/apiserver`, ...) at `v0.0.0`,
//! resolved only by `replace` lines inside its repository, and etcd's main module has
//! `replace` lines too. A wrapper module of our own, whose `main` calls the command's
//! entry point, takes the libraries as ordinary dependencies, with `replace` lines that pin
//! each staging module to its published `v0.<minor>.<patch>`.

use std::path::Path;

use crate::kube::error::{Result, io};

/// One wrapper module: a folder name, its module path and its `main.go`.
pub(super) struct Wrapper {
    pub folder: &'static str,
    pub module: &'static str,
    pub main_go: &'static str,
}

/// kube-apiserver's command with the optional parts its own release links in.
pub(super) const KUBE_APISERVER: Wrapper = Wrapper {
    folder: "kube-apiserver",
    module: "odigos-opamp.invalid/build/kube-apiserver",
    main_go: r#"// Written by `cargo xtask` (xtask/src/kube/binaries/wrapper.rs) for one build of
// kube-apiserver from the Go module proxy; deleted after the build.
package main

import (
	"os"

	// Linked in by the released binary too: time zones for CronJob schedules, the JSON
	// log format, and the client-go and build-information metrics.
	_ "time/tzdata"

	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
"#,
};

/// etcd's server command.
pub(super) const ETCD: Wrapper = Wrapper {
    folder: "etcd",
    module: "odigos-opamp.invalid/build/etcd",
    main_go: r#"// Written by `cargo xtask` (xtask/src/kube/binaries/wrapper.rs) for one build of
// etcd from the Go module proxy; deleted after the build.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
"#,
};

impl Wrapper {
    /// Writes `go.mod` (with `go <go_line>`) and `main.go` into `parent/<folder>`; returns
    /// that folder.
    pub fn write(&self, parent: &Path, go_line: &str) -> Result<std::path::PathBuf> {
        let dir = parent.join(self.folder);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        for (name, text) in [
            (
                "go.mod",
                format!("module {}\n\ngo {go_line}\n", self.module),
            ),
            ("main.go", self.main_go.to_owned()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
        }
        Ok(dir)
    }
}

/// The `go` line of a go.mod, as numbers: `go 1.26.0` gives `[1, 26, 0]`.
pub(super) fn go_directive(go_mod: &str) -> Option<Vec<u32>> {
    go_mod.lines().find_map(|line| {
        let version = line.trim().strip_prefix("go ")?;
        let numbers: Option<Vec<u32>> = version.trim().split('.').map(|p| p.parse().ok()).collect();
        numbers.filter(|n| !n.is_empty())
    })
}

/// The `k8s.io/` modules a go.mod requires at exactly `v0.0.0`: `k8s.io/kubernetes`'
/// staging modules, which exist on the proxy only under their own release numbers.
/// (`k8s.io/utils` and `k8s.io/kube-openapi` are required at real pseudo-versions
/// `v0.0.0-<date>-<commit>` and are left alone.)
pub(super) fn staging_modules(go_mod: &str) -> Vec<String> {
    let mut modules = Vec::new();
    let mut in_block = false;
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or_default().trim();
        let requirement = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line.starts_with("require (") || line == "require(" {
            in_block = true;
            continue;
        } else if let Some(single) = line.strip_prefix("require ") {
            single.trim()
        } else {
            continue;
        };
        let mut parts = requirement.split_whitespace();
        if let (Some(module), Some("v0.0.0"), None) = (parts.next(), parts.next(), parts.next())
            && module.starts_with("k8s.io/")
            && !modules.iter().any(|m| m == module)
        {
            modules.push(module.to_owned());
        }
    }
    modules
}

/// The staging modules' release of Kubernetes `v1.N.P`: `v0.N.P`.
pub(super) fn staging_version(kube: &str) -> String {
    let numbers = kube.trim_start_matches('v');
    let rest = numbers.split_once('.').map_or(numbers, |(_, rest)| rest);
    format!("v0.{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_MOD: &str = "module k8s.io/kubernetes\n\ngo 1.26.0\n\ngodebug default=go1.26\n\n\
        require (\n\tgithub.com/blang/semver/v4 v4.0.0\n\tk8s.io/api v0.0.0\n\
        \tk8s.io/utils v0.0.0-20260626114624-be93311217bd\n\
        \tk8s.io/kube-openapi v0.0.0-20260721132016-d427ff9ee9ad\n)\n\n\
        require (\n\tk8s.io/apiserver v0.0.0 // indirect\n\tgo.uber.org/zap v1.27.0 // indirect\n)\n\n\
        require k8s.io/kms v0.0.0\n\n\
        replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n)\n";

    #[test]
    fn staging_modules_are_the_k8s_requirements_at_exactly_v0_0_0() {
        assert_eq!(
            staging_modules(GO_MOD),
            ["k8s.io/api", "k8s.io/apiserver", "k8s.io/kms"]
        );
    }

    #[test]
    fn the_go_line_and_the_staging_release_are_read() {
        assert_eq!(go_directive(GO_MOD), Some(vec![1, 26, 0]));
        assert_eq!(go_directive("module x\n"), None);
        assert_eq!(staging_version("v1.37.2"), "v0.37.2");
        assert_eq!(staging_version("1.20.2"), "v0.20.2");
    }

    #[test]
    fn a_wrapper_is_a_go_module_with_a_main_package() {
        let dir = tempfile::tempdir().expect("temp dir");
        for wrapper in [&KUBE_APISERVER, &ETCD] {
            let folder = wrapper.write(dir.path(), "1.26").expect("write");
            let go_mod = std::fs::read_to_string(folder.join("go.mod")).expect("go.mod");
            assert!(go_mod.starts_with(&format!("module {}\n", wrapper.module)));
            assert_eq!(go_directive(&go_mod), Some(vec![1, 26]));
            let main = std::fs::read_to_string(folder.join("main.go")).expect("main.go");
            assert!(main.contains("package main") && main.contains("func main()"));
        }
    }
}
