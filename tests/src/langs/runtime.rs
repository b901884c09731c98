//! The protobuf runtimes the generated code is tested with, how each is
//! installed (pinned, under `.tools/`, guarded by xtask's lock) and how its
//! program is run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::tools::{self, ToolError, ToolsLock};

use super::process;
use super::protocol::{Request, Response};

/// google.golang.org/protobuf, as the Odigos opampserver module pins it (tests/go/go.mod).
pub const GO_PROTOBUF: &str = xtask::pins::PROTOC_GEN_GO;
/// PyPI `protobuf`: what the Odigos Python agent pins, and the newest release.
/// One requirements file each: `tests/python/requirements/protobuf-<v>.txt`.
pub const PYTHON_PROTOBUF: [&str; 2] = ["5.29.6", "7.36.2"];
/// npm `@bufbuild/protobuf`: the lowest version gen/js allows (^2.11.0) and the
/// newest. One npm project each: `tests/js/protobuf-es-<v>/`.
pub const PROTOBUF_ES: [&str; 2] = ["2.11.0", "2.17.0"];
/// Maven `com.google.protobuf:protobuf-java` (and protobuf-java-util at the same
/// version): the one gen/java/pom.xml builds against (protoc 29.0's line) and the
/// newest 4.x. The harness passes it to Maven as `-Dprotobuf.version`.
pub const PROTOBUF_JAVA: [&str; 2] = [xtask::pins::PROTOBUF_JAVA, "4.36.2"];

/// Classes of the Java programs (`tests/java/vectors`).
const JAVA_EXCHANGE: &str = "io.odigos.opamp.vectors.Vectors";
const JAVA_ROUND_TRIP: &str = "io.odigos.opamp.vectors.RoundTripTest";

/// The JavaScript files laid out next to each runtime's node_modules.
const JS_PROGRAMS: [&str; 4] = [
    "codec.mjs",
    "vectors.mjs",
    "roundtrip.test.mjs",
    "agent.mjs",
];

#[derive(Debug, thiserror::Error)]
pub enum LangError {
    #[error("{runtime}: {source}")]
    Tool { runtime: String, source: ToolError },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{runtime}: `{command}` failed ({status}):\n{output}")]
    Failed {
        runtime: String,
        command: String,
        status: String,
        output: String,
    },
    #[error("{runtime}: its answer is not a valid response ({detail}):\n{output}")]
    Protocol {
        runtime: String,
        detail: String,
        output: String,
    },
    #[error("{runtime} has no agent program: tests/java holds only the vector programs")]
    NoAgent { runtime: String },
}

/// One language at one protobuf runtime version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Go,
    Python { protobuf: &'static str },
    JavaScript { protobuf_es: &'static str },
    Java { protobuf_java: &'static str },
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Runtime::Go => write!(f, "go (google.golang.org/protobuf {GO_PROTOBUF})"),
            Runtime::Python { protobuf } => write!(f, "python (protobuf {protobuf})"),
            Runtime::JavaScript { protobuf_es } => {
                write!(f, "javascript (@bufbuild/protobuf {protobuf_es})")
            }
            Runtime::Java { protobuf_java } => write!(f, "java (protobuf-java {protobuf_java})"),
        }
    }
}

/// How to start a prepared runtime's programs.
struct Prepared {
    /// The exchange program (stdin → stdout).
    exchange: Command,
    /// The language's own round-trip test.
    round_trip: Command,
    /// The Odigos agent played on this language's generated code
    /// (`crate::interop::agent_protocol`), where the language has one.
    agent: Option<Command>,
}

impl Runtime {
    /// Every runtime the vectors are checked with.
    pub fn all() -> Vec<Runtime> {
        let mut all = vec![Runtime::Go];
        all.extend(PYTHON_PROTOBUF.map(|protobuf| Runtime::Python { protobuf }));
        all.extend(PROTOBUF_ES.map(|protobuf_es| Runtime::JavaScript { protobuf_es }));
        all.extend(PROTOBUF_JAVA.map(|protobuf_java| Runtime::Java { protobuf_java }));
        all
    }

    /// The library version the program must report.
    pub fn version(&self) -> &'static str {
        match self {
            Runtime::Go => GO_PROTOBUF,
            Runtime::Python { protobuf } => protobuf,
            Runtime::JavaScript { protobuf_es } => protobuf_es,
            Runtime::Java { protobuf_java } => protobuf_java,
        }
    }

    /// Short name for ids and folders: `go`, `python-5.29.6`, `js-2.11.0`, `java-4.29.6`.
    pub fn key(&self) -> String {
        match self {
            Runtime::Go => "go".into(),
            Runtime::Python { protobuf } => format!("python-{protobuf}"),
            Runtime::JavaScript { protobuf_es } => format!("js-{protobuf_es}"),
            Runtime::Java { protobuf_java } => format!("java-{protobuf_java}"),
        }
    }

    /// The committed manifest that pins this runtime.
    pub fn manifest(&self) -> PathBuf {
        let tests = crate::tests_dir();
        match self {
            Runtime::Go => tests.join("go/go.mod"),
            Runtime::Python { protobuf } => {
                tests.join(format!("python/requirements/protobuf-{protobuf}.txt"))
            }
            Runtime::JavaScript { protobuf_es } => {
                tests.join(format!("js/protobuf-es-{protobuf_es}/package.json"))
            }
            // One build for every version: the harness sets `-Dprotobuf.version`.
            Runtime::Java { .. } => tests.join("java/pom.xml"),
        }
    }

    /// Runs the language program on `request`.
    pub fn exchange(&self, request: &Request) -> Result<Response, LangError> {
        let mut cmd = self.prepare()?.exchange;
        let input =
            serde_json::to_vec(request).map_err(|err| self.protocol_error(err.to_string(), ""))?;
        let output = process::run_with_input(&self.to_string(), &mut cmd, &input)?;
        serde_json::from_slice(&output.stdout).map_err(|err| {
            self.protocol_error(err.to_string(), &String::from_utf8_lossy(&output.stdout))
        })
    }

    /// Runs the language's own round-trip test; returns what it printed.
    pub fn round_trip(&self) -> Result<String, LangError> {
        let output = process::run(&self.to_string(), &mut self.prepare()?.round_trip)?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    /// Installs what the agent program needs and returns the command that
    /// starts it (it then speaks `crate::interop::agent_protocol` on stdio).
    pub fn agent_command(&self) -> Result<Command, LangError> {
        self.prepare()?.agent.ok_or_else(|| LangError::NoAgent {
            runtime: self.to_string(),
        })
    }

    fn protocol_error(&self, detail: String, output: &str) -> LangError {
        LangError::Protocol {
            runtime: self.to_string(),
            detail,
            output: output.chars().take(4000).collect(),
        }
    }

    fn tool_error(&self) -> impl FnOnce(ToolError) -> LangError + '_ {
        move |source| LangError::Tool {
            runtime: self.to_string(),
            source,
        }
    }

    /// Installs what the programs need (once; later calls only verify) and
    /// returns how to start them.
    fn prepare(&self) -> Result<Prepared, LangError> {
        let root = xtask::workspace_root();
        let tools_dir = root.join(".tools");
        let _lock = ToolsLock::acquire(&tools_dir).map_err(self.tool_error())?;
        match self {
            Runtime::Go => self.prepare_go(&root, &tools_dir),
            Runtime::Python { protobuf } => self.prepare_python(&root, &tools_dir, protobuf),
            Runtime::JavaScript { protobuf_es } => self.prepare_js(&root, &tools_dir, protobuf_es),
            Runtime::Java { protobuf_java } => self.prepare_java(&root, &tools_dir, protobuf_java),
        }
    }

    fn prepare_go(&self, root: &Path, tools_dir: &Path) -> Result<Prepared, LangError> {
        let go = tools::require_go().map_err(self.tool_error())?;
        let module = root.join("tests/go");
        let go_command = |args: &[&str]| {
            let mut cmd = Command::new(&go);
            // Never fetch a toolchain or consult a go.work: tests/go/go.mod says it all.
            cmd.args(args)
                .current_dir(&module)
                .env("GOTOOLCHAIN", "local")
                .env("GOWORK", "off");
            cmd
        };
        // Build once per run (go's cache makes an unchanged build a no-op), so
        // the programs pay no compile time. `-o dir/` writes one binary per
        // command, named after its folder.
        let binaries = tools_dir.join("test-go");
        let out_dir = format!("{}/", binaries.to_string_lossy());
        process::run(
            &self.to_string(),
            &mut go_command(&["build", "-o", &out_dir, "./cmd/..."]),
        )?;
        Ok(Prepared {
            exchange: Command::new(binaries.join("vectors")),
            round_trip: go_command(&["test", "-v", "./..."]),
            agent: Some(Command::new(binaries.join("agent"))),
        })
    }

    fn prepare_python(
        &self,
        root: &Path,
        tools_dir: &Path,
        protobuf: &str,
    ) -> Result<Prepared, LangError> {
        let venv = tools_dir.join(format!("test-py-protobuf-{protobuf}"));
        let python = tools::ensure_venv(&venv, &self.manifest()).map_err(self.tool_error())?;
        let scripts = root.join("tests/python");
        let python_command = |script: &str| {
            let mut cmd = Command::new(&python);
            // No bytecode caches inside gen/ or tests/; only the venv's packages.
            cmd.arg(scripts.join(script))
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env_remove("PYTHONPATH")
                .env_remove("PYTHONHOME");
            cmd
        };
        Ok(Prepared {
            exchange: python_command("vectors.py"),
            round_trip: python_command("test_roundtrip.py"),
            agent: Some(python_command("odigos_agent.py")),
        })
    }

    fn prepare_js(
        &self,
        root: &Path,
        tools_dir: &Path,
        protobuf_es: &str,
    ) -> Result<Prepared, LangError> {
        let (node, _) = tools::require_node().map_err(self.tool_error())?;
        let install = tools_dir.join(format!("test-js-{protobuf_es}"));
        let manifest_dir = root.join(format!("tests/js/protobuf-es-{protobuf_es}"));
        tools::ensure_node_modules(&manifest_dir, &install).map_err(self.tool_error())?;
        // gen/js and the programs go below that node_modules: Node resolves
        // `@bufbuild/protobuf` upwards from each file's real path, and gen/js
        // itself has no node_modules (it only names the runtime as a peer).
        let run = install.join("run");
        let mut tree = xtask::files::Tree::new();
        let io = |context: String| move |source| LangError::Io { context, source };
        let gen_js = root.join("gen/js");
        for (path, contents) in
            xtask::files::read_tree(&gen_js).map_err(io(format!("reading {}", gen_js.display())))?
        {
            tree.insert(format!("gen/{path}"), contents);
        }
        for program in JS_PROGRAMS {
            let path = root.join("tests/js").join(program);
            tree.insert(
                program.to_owned(),
                std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?,
            );
        }
        xtask::files::sync_tree(&run, &tree).map_err(io(format!("writing {}", run.display())))?;

        let mut exchange = Command::new(&node);
        exchange.arg(run.join("vectors.mjs"));
        let mut round_trip = Command::new(&node);
        round_trip
            .arg("--test")
            .arg(run.join("roundtrip.test.mjs"))
            .env("ODIGOS_VECTORS_DIR", root.join("tests/vectors"));
        let mut agent = Command::new(&node);
        agent.arg(run.join("agent.mjs"));
        Ok(Prepared {
            exchange,
            round_trip,
            agent: Some(agent),
        })
    }

    fn prepare_java(
        &self,
        root: &Path,
        tools_dir: &Path,
        protobuf_java: &str,
    ) -> Result<Prepared, LangError> {
        let java = tools::require_java().map_err(self.tool_error())?;
        // gen/java and tests/java side by side, as in the repository (the
        // reactor in tests/java/pom.xml names ../../gen/java), so that Maven's
        // target/ folders land under .tools/ and never in gen/ or tests/.
        let install = tools_dir.join(format!("test-java-{protobuf_java}"));
        let run = install.join("run");
        let io = |context: String| move |source| LangError::Io { context, source };
        let mut tree = xtask::files::Tree::new();
        for folder in ["gen/java", "tests/java"] {
            let dir = root.join(folder);
            for (path, contents) in
                xtask::files::read_tree(&dir).map_err(io(format!("reading {}", dir.display())))?
            {
                tree.insert(format!("{folder}/{path}"), contents);
            }
        }
        xtask::files::sync_tree(&run, &tree).map_err(io(format!("writing {}", run.display())))?;

        // Built once per version and per content of those sources; later runs
        // start the compiled programs with `java` alone.
        let manifest = build_manifest(protobuf_java, &tree);
        let reactor = run.join("tests/java/pom.xml");
        tools::install_once(&install.join(".odigos-built"), &manifest, || {
            eprintln!(
                "xtask: mvn package of {} (protobuf-java {protobuf_java})",
                reactor.display()
            );
            let mut mvn = tools::maven(&tools_dir.join("maven-repository"))?;
            tools::run(
                mvn.arg("-f")
                    .arg(&reactor)
                    .arg(format!("-Dprotobuf.version={protobuf_java}"))
                    // The harness runs RoundTripTest itself (round_trip), with the vectors.
                    .args(["-DskipTests", "clean", "package"]),
            )?;
            Ok(())
        })
        .map_err(self.tool_error())?;

        let target = run.join("tests/java/vectors/target");
        let classpath = |dirs: &[&str]| {
            std::env::join_paths(
                dirs.iter()
                    .map(|dir| target.join(dir))
                    .chain([target.join("lib/*")]),
            )
            .map_err(|err| LangError::Io {
                context: format!("classpath under {}", target.display()),
                source: std::io::Error::other(err),
            })
        };
        let mut exchange = Command::new(&java);
        exchange
            .arg("-cp")
            .arg(classpath(&["classes"])?)
            .arg(JAVA_EXCHANGE);
        let mut round_trip = Command::new(&java);
        round_trip
            .arg("-cp")
            .arg(classpath(&["test-classes", "classes"])?)
            .args([
                "org.junit.platform.console.ConsoleLauncher",
                "execute",
                "--disable-banner",
                "--disable-ansi-colors",
                "--fail-if-no-tests",
                "--select-class",
                JAVA_ROUND_TRIP,
            ])
            .env("ODIGOS_VECTORS_DIR", root.join("tests/vectors"));
        Ok(Prepared {
            exchange,
            round_trip,
            agent: None,
        })
    }
}

/// What a Java build is made from: the runtime version and a digest of every
/// source file, so that any change to gen/java or tests/java rebuilds.
fn build_manifest(protobuf_java: &str, tree: &xtask::files::Tree) -> Vec<u8> {
    let mut listing = Vec::new();
    for (path, contents) in tree {
        listing.extend_from_slice(format!("{path} {}\n", contents.len()).as_bytes());
        listing.extend_from_slice(contents);
    }
    format!(
        "protobuf-java {protobuf_java}\nsources sha256 {}\n",
        xtask::tools::sha256_hex(&listing)
    )
    .into_bytes()
}
