//! The current control plane, built from the Go module proxy: etcd [`pins::ETCD_CURRENT`]
//! from `go.etcd.io/etcd/server/v3`, kube-apiserver [`pins::KUBE_CURRENT`] from
//! `k8s.io/kubernetes`, each through a wrapper module ([`super::wrapper`]).
//!
//! The proxy and checksum settings are the environment's (`GOPROXY`, `GOFLAGS`, `GONOSUMDB`,
//! ... and `go env -w`): nothing here names a host. What the build writes stays in one
//! folder beside the binaries under `.cache/kube/` (module downloads about 700 MB, Go's build
//! cache about 2.7 GB: too much for a small `/tmp`), deleted afterwards; only the two
//! binaries and the build logs are kept.
//! A cold build takes about 7 minutes on 2 cores and 2.3 GiB of memory at its peak.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::go_toolchain::{self, Go};
use super::wrapper::{self, Wrapper};
use super::{Binaries, build_folder, install_file};
use crate::kube::error::{KubeError, Result, io};
use crate::kube::process::tail;
use crate::pins::{ETCD_CURRENT, KUBE_CURRENT, MIN_GO_KUBE_CURRENT};
use crate::tools;

const KUBERNETES: &str = "k8s.io/kubernetes";
const ETCD_SERVER: &str = "go.etcd.io/etcd/server/v3";
const NEEDS: &str = "about 4 GB of free disk under .cache/kube, 2.5 GB of memory, \
    and the Go module proxy (GOPROXY)";

/// Builds whatever of `binaries` is missing; `cache` (the binaries' own folder) holds the
/// build folder and the logs.
pub(super) fn ensure(cache: &Path, binaries: &Binaries) -> Result<()> {
    let go = go_toolchain::find(MIN_GO_KUBE_CURRENT)?;
    let scratch = build_folder(cache)?;
    let missing: Vec<String> = [
        (&binaries.etcd, format!("etcd {ETCD_CURRENT}")),
        (
            &binaries.kube_apiserver,
            format!("kube-apiserver {KUBE_CURRENT}"),
        ),
    ]
    .into_iter()
    .filter(|(path, _)| !path.is_file())
    .map(|(_, name)| name)
    .collect();
    eprintln!(
        "xtask kube: building {} from the Go module proxy with {} ({}).\n\
         xtask kube: this happens once per machine and takes about 7 minutes on 2 cores (2.5 GB RAM, 4 GB disk in {});\n\
         xtask kube: later runs use the cached binaries in {}",
        missing.join(" and "),
        go.version,
        go.path.display(),
        scratch.path().display(),
        cache.display()
    );
    let build = GoBuild::new(go, scratch.path())?;
    if !binaries.etcd.is_file() {
        let log = cache.join("etcd-build.log");
        build.etcd(&log, &binaries.etcd)?;
    }
    if !binaries.kube_apiserver.is_file() {
        let log = cache.join("kube-apiserver-build.log");
        build.kube_apiserver(&log, &binaries.kube_apiserver)?;
    }
    eprintln!(
        "xtask kube: removing the build folder {}",
        scratch.path().display()
    );
    drop(build);
    drop(scratch);
    Ok(())
}

/// One build folder: the Go to use, and the caches and temporary files kept inside it.
struct GoBuild {
    go: Go,
    scratch: PathBuf,
}

impl GoBuild {
    fn new(go: Go, scratch: &Path) -> Result<Self> {
        for sub in ["gomodcache", "gocache", "gotmp", "out"] {
            let dir = scratch.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        Ok(GoBuild {
            go,
            scratch: scratch.to_path_buf(),
        })
    }

    fn etcd(&self, log: &Path, target: &Path) -> Result<()> {
        let started = Instant::now();
        let step = Step::new("etcd", log)?;
        let dir = self.wrapper(&wrapper::ETCD)?;
        let module = format!("{ETCD_SERVER}@{ETCD_CURRENT}");
        self.require_go_of(&step, &dir, &module)?;
        step.run(self.go(&dir).args(["get", &module]))?;
        step.run(self.go(&dir).args(["mod", "tidy"]))?;
        let built = self.compile(&step, &dir, "etcd", "-s -w")?;
        step.expect_version(&built, &format!("etcd Version: {}", &ETCD_CURRENT[1..]))?;
        install_file(&built, target)?;
        eprintln!(
            "xtask kube: built etcd {ETCD_CURRENT} in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn kube_apiserver(&self, log: &Path, target: &Path) -> Result<()> {
        let started = Instant::now();
        let step = Step::new("kube-apiserver", log)?;
        let dir = self.wrapper(&wrapper::KUBE_APISERVER)?;
        let module = format!("{KUBERNETES}@{KUBE_CURRENT}");
        let go_mod = self.require_go_of(&step, &dir, &module)?;
        let staging = wrapper::staging_modules(&go_mod);
        if staging.is_empty() {
            return Err(step.failed(format!(
                "{module}'s go.mod requires no k8s.io/ module at v0.0.0: its layout changed; review wrapper::staging_modules"
            )));
        }
        let release = wrapper::staging_version(KUBE_CURRENT);
        let mut edit = self.go(&dir);
        edit.args(["mod", "edit"]);
        for staged in &staging {
            edit.arg(format!("-replace={staged}={staged}@{release}"));
        }
        step.run(&mut edit)?;
        step.run(self.go(&dir).args(["get", &module]))?;
        step.run(self.go(&dir).args(["mod", "tidy"]))?;
        let fetched = started.elapsed();
        let numbers: Vec<&str> = KUBE_CURRENT[1..].split('.').collect();
        let ldflags = format!(
            "-s -w -X k8s.io/component-base/version.gitVersion={KUBE_CURRENT} \
             -X k8s.io/component-base/version.gitMajor={} \
             -X k8s.io/component-base/version.gitMinor={} \
             -X k8s.io/component-base/version.gitTreeState=clean",
            numbers.first().copied().unwrap_or_default(),
            numbers.get(1).copied().unwrap_or_default(),
        );
        let built = self.compile(&step, &dir, "kube-apiserver", &ldflags)?;
        step.expect_version(&built, &format!("Kubernetes {KUBE_CURRENT}"))?;
        install_file(&built, target)?;
        eprintln!(
            "xtask kube: built kube-apiserver {KUBE_CURRENT} in {:.0} s (modules {:.0} s, {} staging modules at {release})",
            started.elapsed().as_secs_f64(),
            fetched.as_secs_f64(),
            staging.len()
        );
        Ok(())
    }

    fn wrapper(&self, wrapper: &Wrapper) -> Result<PathBuf> {
        let line = format!("{}.{}", MIN_GO_KUBE_CURRENT.0, MIN_GO_KUBE_CURRENT.1);
        wrapper.write(&self.scratch.join("src"), &line)
    }

    /// Downloads `module` (`path@version`), checks our Go against its go.mod's `go` line, and
    /// returns that go.mod.
    fn require_go_of(&self, step: &Step, dir: &Path, module: &str) -> Result<String> {
        let output = step.run(self.go(dir).args(["mod", "download", "-json", module]))?;
        let info: serde_json::Value = serde_json::from_slice(&output).map_err(|err| {
            step.failed(format!(
                "`go mod download -json {module}` printed no JSON: {err}"
            ))
        })?;
        if let Some(error) = info["Error"].as_str() {
            return Err(step.failed(format!("downloading {module}: {error}")));
        }
        let path = info["GoMod"].as_str().ok_or_else(|| {
            step.failed(format!("`go mod download -json {module}` named no GoMod"))
        })?;
        let go_mod = std::fs::read_to_string(path).map_err(io(format!("reading {path}")))?;
        if let Some(need) = wrapper::go_directive(&go_mod) {
            let line: Vec<String> = need.iter().map(u32::to_string).collect();
            self.go.require(
                &need,
                &format!(
                    "{module}'s go.mod says `go {}`; raise MIN_GO_KUBE_CURRENT in xtask/src/pins.rs to match",
                    line.join(".")
                ),
            )?;
        }
        Ok(go_mod)
    }

    /// `go build` of the wrapper in `dir`, static and without paths of this machine.
    fn compile(&self, step: &Step, dir: &Path, name: &str, ldflags: &str) -> Result<PathBuf> {
        let out = self.scratch.join("out").join(name);
        step.run(
            self.go(dir)
                .args(["build", "-trimpath", "-buildvcs=false", "-ldflags"])
                .arg(ldflags)
                .arg("-o")
                .arg(&out)
                .arg(".")
                .env("CGO_ENABLED", "0"),
        )?;
        Ok(out)
    }

    /// `go` in `dir` with every cache inside the build folder. `GOFLAGS` keeps what the
    /// environment sets and adds `-modcacherw`, so the module cache can be deleted;
    /// `GOTOOLCHAIN=local` makes the checked Go the one that builds; `GOWORK=off` ignores
    /// any go.work above `.cache/`.
    fn go(&self, dir: &Path) -> Command {
        let flags = std::env::var("GOFLAGS").unwrap_or_default();
        let flags = format!("{} -modcacherw", flags.trim()).trim().to_owned();
        let tmp = self.scratch.join("gotmp");
        let mut command = Command::new(&self.go.path);
        command
            .current_dir(dir)
            .env("GOMODCACHE", self.scratch.join("gomodcache"))
            .env("GOCACHE", self.scratch.join("gocache"))
            .env("GOTMPDIR", &tmp)
            .env("TMPDIR", &tmp)
            .env("GOFLAGS", flags)
            .env("GOTOOLCHAIN", "local")
            .env("GOWORK", "off")
            .env("GO111MODULE", "on")
            .env_remove("GOROOT")
            .stdin(Stdio::null());
        command
    }
}

/// One binary's build: its log, and errors that point at it.
struct Step {
    what: &'static str,
    log: PathBuf,
}

impl Step {
    fn new(what: &'static str, log: &Path) -> Result<Self> {
        File::create(log).map_err(io(format!("creating {}", log.display())))?;
        Ok(Step {
            what,
            log: log.to_path_buf(),
        })
    }

    fn failed(&self, detail: String) -> KubeError {
        KubeError::Build {
            what: format!("{} from the Go module proxy", self.what),
            detail,
            log: self.log.clone(),
            needs: NEEDS,
        }
    }

    /// Runs `command`, its stderr appended to the log, and returns its stdout (also logged).
    fn run(&self, command: &mut Command) -> Result<Vec<u8>> {
        let line = describe(command);
        let mut log = File::options()
            .append(true)
            .open(&self.log)
            .map_err(io(format!("opening {}", self.log.display())))?;
        let _ = writeln!(log, "$ {line}");
        let stderr = log
            .try_clone()
            .map_err(io(format!("opening {}", self.log.display())))?;
        let started = Instant::now();
        let output = command
            .stderr(stderr)
            .stdout(Stdio::piped())
            .output()
            .map_err(io(format!("running {line}")))?;
        let _ = log.write_all(&output.stdout);
        let _ = writeln!(
            log,
            "# {} in {:.1} s",
            output.status,
            started.elapsed().as_secs_f64()
        );
        if !output.status.success() {
            return Err(self.failed(format!(
                "`{line}` {}; last lines:\n{}",
                output.status,
                tail(&self.log, 30)
            )));
        }
        Ok(output.stdout)
    }

    /// Fails unless `binary --version` mentions `expected`.
    fn expect_version(&self, binary: &Path, expected: &str) -> Result<()> {
        let version = tools::stdout_of(Command::new(binary).arg("--version"))?;
        if !version.contains(expected) {
            return Err(self.failed(format!(
                "the built binary reports {version:?}, expected {expected:?}"
            )));
        }
        Ok(())
    }
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
