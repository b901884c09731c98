//! The oldest supported control plane: kube-apiserver v1.20.2 built from Debian's
//! `kubernetes` source package (the whole tree with `vendor/`, so it builds with no module
//! downloads, with Debian's Go 1.19), and Debian's etcd 3.4. Only the binary is kept; the
//! 3 GB build tree is deleted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{Binaries, build_folder, install_file};
use crate::apt;
use crate::kube::error::{KubeError, Result, io};
use crate::pins::{DEBIAN_KUBERNETES, KUBE_OLDEST};
use crate::tools;

/// The cache folder: the package version plus our build revision. Bump the
/// revision whenever the build steps below change, so old binaries are rebuilt.
pub(super) const CACHE_NAME: &str = "1.20.5+really1.20.2-1.1+deb12u1-r2";

/// Debian's Go 1.19, from `golang-go`. The vendored tree is known to build
/// with it; the reflect2 swap below is still needed (see `swap_reflect2`).
const DEBIAN_GO_BIN: &str = "/usr/lib/go/bin";
const REFLECT2_DEBIAN: &str = "/usr/share/gocode/src/github.com/modern-go/reflect2";
const RUN_PACKAGES: &[&str] = &["etcd-server"];
const BUILD_PACKAGES: &[&str] = &[
    "golang-go",
    "make",
    "rsync",
    "jq",
    "dpkg-dev",
    "golang-github-modern-go-reflect2-dev",
];
const NEEDS: &str = "about 3 GB of free disk and 1.5 GB of memory";

/// Whatever of `binaries` is missing: etcd copied from Debian's `etcd-server`, kube-apiserver
/// built. `cache` (the binaries' own folder) holds the build folder and the log.
pub(super) fn ensure(cache: &Path, binaries: &Binaries) -> Result<()> {
    if !binaries.etcd.is_file() {
        ensure_packages(RUN_PACKAGES)?;
        install_file(Path::new("/usr/bin/etcd"), &binaries.etcd)?;
    }
    if !binaries.kube_apiserver.is_file() {
        build_apiserver(cache, &binaries.kube_apiserver)?;
    }
    Ok(())
}

fn ensure_packages(packages: &[&str]) -> Result<()> {
    apt::ensure("xtask kube", packages).map_err(|err| KubeError::Apt {
        packages: err.packages,
        detail: err.detail,
    })?;
    Ok(())
}

fn build_error(detail: String, log: PathBuf) -> KubeError {
    KubeError::Build {
        what: format!("kube-apiserver {KUBE_OLDEST} from Debian's source package"),
        detail,
        log,
        needs: NEEDS,
    }
}

fn build_apiserver(cache: &Path, target: &Path) -> Result<()> {
    ensure_packages(BUILD_PACKAGES)?;
    let go_bin = Path::new(DEBIAN_GO_BIN);
    if !go_bin.join("go").is_file() {
        return Err(KubeError::Apt {
            packages: "golang-go".into(),
            detail: format!(
                "{} is missing after installing golang-go",
                go_bin.join("go").display()
            ),
        });
    }
    let scratch = build_folder(cache)?;
    let started = Instant::now();
    eprintln!(
        "xtask kube: building kube-apiserver {KUBE_OLDEST} from Debian's kubernetes {DEBIAN_KUBERNETES} source package.\n\
         xtask kube: this happens once per machine and takes about 5 minutes on 2 cores (about 1.5 GB RAM, 3 GB disk in {});\n\
         xtask kube: later runs use the cached {}",
        scratch.path().display(),
        target.display()
    );

    let tree = fetch_source(scratch.path(), target)?;
    swap_reflect2(&tree)?;
    fix_zero_value_check(&tree)?;
    let log = cache.join("kube-apiserver-build.log");
    run_make(&tree, go_bin, scratch.path(), &log)?;

    let built = tree.join("_output/bin/kube-apiserver");
    let version = tools::stdout_of(Command::new(&built).arg("--version"))?;
    if !version.contains(KUBE_OLDEST) {
        return Err(build_error(
            format!("the built binary reports {version:?}, expected {KUBE_OLDEST}"),
            log,
        ));
    }
    install_file(&built, target)?;
    eprintln!(
        "xtask kube: built {version} in {:.0} s; removing the build tree",
        started.elapsed().as_secs_f64()
    );
    drop(scratch);
    Ok(())
}

/// Downloads and unpacks the source package with a private apt configuration,
/// so `/etc/apt` gains no `deb-src` entry. Returns the unpacked tree.
fn fetch_source(scratch: &Path, target: &Path) -> Result<PathBuf> {
    let apt = scratch.join("apt");
    let parts = apt.join("parts");
    let lists = apt.join("lists");
    std::fs::create_dir_all(lists.join("partial"))
        .map_err(io(format!("creating {}", lists.display())))?;
    std::fs::create_dir_all(&parts).map_err(io(format!("creating {}", parts.display())))?;
    let (name, text) = deb_src_sources(target)?;
    std::fs::write(parts.join(name), text)
        .map_err(io(format!("writing {}", parts.join(name).display())))?;

    let private = |cmd: &mut Command| {
        cmd.arg("-o")
            .arg("Dir::Etc::SourceList=/dev/null")
            .arg("-o")
            .arg(format!("Dir::Etc::SourceParts={}", parts.display()))
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", lists.display()));
    };
    let mut update = Command::new("apt-get");
    private(&mut update);
    tools::run(update.arg("update"))?;

    let download = scratch.join("src");
    std::fs::create_dir_all(&download).map_err(io(format!("creating {}", download.display())))?;
    let mut source = Command::new("apt-get");
    private(&mut source);
    tools::run(
        source
            .args(["source", "--download-only"])
            .arg(format!("kubernetes={DEBIAN_KUBERNETES}"))
            .current_dir(&download),
    )?;

    let dsc = download.join(format!("kubernetes_{DEBIAN_KUBERNETES}.dsc"));
    let tree = scratch.join("tree");
    tools::run(Command::new("dpkg-source").arg("-x").arg(&dsc).arg(&tree))?;
    // The tarballs are unpacked now; their few hundred MB are better left to Go's cache.
    let _ = std::fs::remove_dir_all(&download);
    Ok(tree)
}

/// A `deb-src` twin of the machine's first Debian source, as (file name, text)
/// for apt's SourceParts folder. Reads the deb822 `debian.sources` of Debian
/// 12 images, else a one-line `sources.list`.
fn deb_src_sources(target: &Path) -> Result<(&'static str, String)> {
    let deb822 = Path::new("/etc/apt/sources.list.d/debian.sources");
    if let Ok(text) = std::fs::read_to_string(deb822)
        && let Some(stanza) = text
            .split("\n\n")
            .find(|s| s.lines().any(|l| l.trim() == "Types: deb"))
    {
        let stanza: Vec<String> = stanza
            .lines()
            .map(|line| {
                if line.trim() == "Types: deb" {
                    "Types: deb-src".to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect();
        return Ok(("kubernetes-src.sources", stanza.join("\n") + "\n"));
    }
    let list = Path::new("/etc/apt/sources.list");
    if let Ok(text) = std::fs::read_to_string(list)
        && let Some(line) = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("deb ") && l.contains("debian"))
    {
        return Ok(("kubernetes-src.list", format!("deb-src {}\n", &line[4..])));
    }
    Err(KubeError::NoAptSources {
        detail: format!(
            "neither {} nor {} names a Debian archive",
            deb822.display(),
            list.display()
        ),
        cache: target.to_path_buf(),
    })
}

/// The vendored reflect2 v1.0.1 reads Go runtime internals that changed in
/// Go 1.18: the apiserver segfaults on its first custom-resource write.
/// Debian's 1.0.2 copy is the fixed release with the same API.
fn swap_reflect2(tree: &Path) -> Result<()> {
    let vendored = tree.join("vendor/github.com/modern-go/reflect2");
    std::fs::remove_dir_all(&vendored).map_err(io(format!("removing {}", vendored.display())))?;
    std::fs::create_dir_all(&vendored).map_err(io(format!("creating {}", vendored.display())))?;
    let entries =
        std::fs::read_dir(REFLECT2_DEBIAN).map_err(io(format!("reading {REFLECT2_DEBIAN}")))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("reading {REFLECT2_DEBIAN}")))?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        // Only sources: a go.mod inside vendor/ would make it a separate module.
        if name_text.ends_with(".go") || name_text.ends_with(".s") {
            std::fs::copy(entry.path(), vendored.join(&name))
                .map_err(io(format!("copying {}", entry.path().display())))?;
        }
    }
    Ok(())
}

/// The vendored OpenAPI validators treat any value equal to its type's zero
/// value as `null`. Under Go 1.15 that test was never true for real data,
/// but from Go 1.19 on, reflect shares one zero buffer, so an empty string in
/// a custom resource fails with "must be of type string: null". Later
/// releases of the validator test `data == nil` only; so do we.
fn fix_zero_value_check(tree: &Path) -> Result<()> {
    const BROKEN: &str = "if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {";
    const FIXED: &str = "if data == nil {";
    for file in [
        "vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go",
        "vendor/github.com/go-openapi/validate/type.go",
    ] {
        let path = tree.join(file);
        let text =
            std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        if !text.contains(BROKEN) {
            return Err(build_error(
                format!(
                    "{file} no longer has the zero-value check this build patches; review fix_zero_value_check"
                ),
                path,
            ));
        }
        std::fs::write(&path, text.replace(BROKEN, FIXED))
            .map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// `make WHAT=cmd/kube-apiserver`, offline, with Debian's Go first on PATH.
/// Go's cache and its temporary work folders live in `scratch`, beside the
/// tree: `/tmp` is often a small tmpfs, too small for the ~1 GB of objects.
fn run_make(tree: &Path, go_bin: &Path, scratch: &Path, log: &Path) -> Result<()> {
    let gocache = scratch.join("gocache");
    let gotmp = scratch.join("gotmp");
    std::fs::create_dir_all(&gotmp).map_err(io(format!("creating {}", gotmp.display())))?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(go_bin.to_path_buf()).chain(std::env::split_paths(&path)),
    )
    .map_err(|err| build_error(format!("building PATH: {err}"), log.to_path_buf()))?;
    let out = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io(format!("opening {}", log.display())))?;
    let status = Command::new("make")
        .arg("WHAT=cmd/kube-apiserver")
        .current_dir(tree)
        .env_remove("GOPATH")
        .env_remove("GOFLAGS")
        .env_remove("GO111MODULE")
        .env_remove("GOROOT")
        .env("PATH", path)
        .env("CGO_ENABLED", "0")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", &gocache)
        .env("GOTMPDIR", &gotmp)
        .env("TMPDIR", &gotmp)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(io(
            "running make (is `make` installed? apt-get install make)",
        ))?;
    if !status.success() {
        return Err(build_error(
            format!(
                "make WHAT=cmd/kube-apiserver {status}; last lines:\n{}",
                crate::kube::process::tail(log, 30)
            ),
            log.to_path_buf(),
        ));
    }
    Ok(())
}
