//! Released Odigos Python agents (`odigos-opentelemetry-python` from the package index,
//! unchanged), each in its own venv under `.tools/`, running `tests/odigos_python/app.py`
//! as an instrumented application process: started with the environment Odigos injects,
//! driven one command per stdin line, answering one JSON object per stdout line.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The pinned releases, newest first, and what each reads from the server.
pub const RELEASES: [Release; 3] = [
    Release {
        version: "1.0.91",
        reads: "container_config only (traces, head sampling, agentDiagnostics); self-reported \
                k8s.* identity; TCP or the unix socket",
    },
    Release {
        version: "1.0.80",
        reads: "SDK.traceSignal (traces on/off) and container_config.traces.headSampling; \
                self-reported k8s.* identity",
    },
    Release {
        version: "1.0.25",
        reads: "SDK.remoteResourceAttributes (merged into its resource; it refuses to start \
                without them); X-Odigos-DeviceId identity; traces from OTEL_TRACES_EXPORTER",
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    pub version: &'static str,
    pub reads: &'static str,
}

impl Release {
    /// The newest pinned release.
    pub fn newest() -> Release {
        RELEASES[0]
    }

    pub fn get(version: &str) -> Release {
        RELEASES
            .into_iter()
            .find(|r| r.version == version)
            .unwrap_or_else(|| panic!("{version} is not a pinned release"))
    }

    /// Whether this release identifies itself with `X-Odigos-DeviceId` (2025 releases).
    pub fn uses_device_id(&self) -> bool {
        self.version == "1.0.25"
    }

    fn lock_file(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/odigos_python/releases")
            .join(format!("{}.txt", self.version))
    }

    /// The release's venv, installed on first use (a lock serialises parallel tests).
    pub fn python(&self) -> PathBuf {
        static NOTED: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
        let tools = xtask::workspace_root().join(".tools");
        let venv = tools.join(format!("odigos-opentelemetry-python-{}", self.version));
        let python = {
            let _lock = xtask::tools::ToolsLock::acquire(&tools).expect("lock .tools/");
            xtask::tools::ensure_locked_venv(&venv, &self.lock_file()).unwrap_or_else(|error| {
                panic!(
                    "cannot install odigos-opentelemetry-python {}: {error}",
                    self.version
                )
            })
        };
        // Say, once per release and test binary, which of the release's own pins were
        // replaced to make it installable.
        let noted = NOTED.get_or_init(Mutex::default);
        let mut noted = noted.lock().unwrap_or_else(PoisonError::into_inner);
        if !noted.contains(&self.version) {
            noted.push(self.version);
            let check = xtask::tools::pip_check(&python).expect("pip check");
            if !check.is_empty() {
                eprintln!(
                    "odigos-opentelemetry-python {} is installed unchanged, with a dependency \
                     its own pins name replaced (see {}); pip check says:\n{check}",
                    self.version,
                    self.lock_file().display()
                );
            }
        }
        python
    }
}

/// How the agent reaches the server.
#[derive(Clone, Debug)]
pub enum Transport {
    /// `ODIGOS_OPAMP_SERVER_HOST=host:port`.
    Tcp(std::net::SocketAddr),
    /// `ODIGOS_OPAMP_UNIX_SOCKET=path` (releases since 1.0.88).
    Unix(PathBuf),
}

/// Who the agent says it is, as Odigos' injection tells it.
#[derive(Clone, Debug)]
pub enum Injected {
    /// `ODIGOS_WORKLOAD_NAMESPACE`, `ODIGOS_POD_NAME`, `ODIGOS_CONTAINER_NAME`.
    Pod {
        namespace: String,
        pod: String,
        container: String,
    },
    /// `ODIGOS_INSTRUMENTATION_DEVICE_ID` (the kubelet's device id, 2025).
    Device(String),
}

/// One application process with the agent in it.
pub struct AgentApp {
    pub release: Release,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

/// How long the agent may take to start: it waits up to 18 s for its first answer.
const START: Duration = Duration::from_secs(40);
const ANSWER: Duration = Duration::from_secs(20);

impl AgentApp {
    /// Start the application; returns once the agent's initializer has returned.
    pub async fn start(release: Release, transport: &Transport, injected: &Injected) -> AgentApp {
        Self::start_within(release, transport, injected, None).await
    }

    /// The same, with the process first moved into the cgroup that `enter` (a shell prefix,
    /// see support/cgroup.rs) names: as if it ran in a pod's container.
    pub async fn start_within(
        release: Release,
        transport: &Transport,
        injected: &Injected,
        enter: Option<String>,
    ) -> AgentApp {
        let python = tokio::task::spawn_blocking(move || release.python())
            .await
            .expect("venv install task");
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/odigos_python/app.py");
        let mut command = match &enter {
            Some(enter) => {
                let mut sh = Command::new("sh");
                sh.arg("-c").arg(enter).arg("sh").arg(python);
                sh
            }
            None => Command::new(python),
        };
        command
            .arg(app)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // What Odigos' injection sets (those folders hold the agent in a pod; here the
            // venv does, and they do not exist). 2025 releases fail without the variable.
            .env(
                "PYTHONPATH",
                "/var/odigos/python:/var/odigos/python/opentelemetry/instrumentation/auto_instrumentation",
            )
            .env("PYTHONUNBUFFERED", "1")
            // The agent never exports: spans go to the app's in-memory processor.
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match transport {
            Transport::Tcp(addr) => command.env("ODIGOS_OPAMP_SERVER_HOST", addr.to_string()),
            Transport::Unix(path) => command.env("ODIGOS_OPAMP_UNIX_SOCKET", path),
        };
        match injected {
            Injected::Pod {
                namespace,
                pod,
                container,
            } => command
                .env("ODIGOS_WORKLOAD_NAMESPACE", namespace)
                .env("ODIGOS_POD_NAME", pod)
                .env("ODIGOS_CONTAINER_NAME", container),
            // What Odigos' 2025 injection set beside the device: the OTLP trace exporter,
            // which is what turns tracing on in those releases.
            Injected::Device(id) => command
                .env("ODIGOS_INSTRUMENTATION_DEVICE_ID", id)
                .env("OTEL_TRACES_EXPORTER", "otlp"),
        };
        let mut child = command.spawn().expect("start the Python application");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let kept = Arc::clone(&stderr);
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        let mut app = AgentApp {
            release,
            child,
            stdin,
            stdout,
            stderr,
        };
        let started = app.read_line(START).await;
        assert_eq!(started["started"], true, "{}", app.describe());
        app
    }

    /// What the agent ended up with (see app.py's `state`).
    pub async fn state(&mut self) -> Value {
        self.command("state").await
    }

    /// Re-execute the application in place (same pid, new agent); returns once the new
    /// agent's initializer has returned.
    pub async fn reexec(&mut self) -> std::time::Duration {
        let answer = self.command("reexec").await;
        assert_eq!(answer["reexecuting"], true, "{}", self.describe());
        let started = std::time::Instant::now();
        let again = self.read_line(START).await;
        assert_eq!(again["started"], true, "{}", self.describe());
        started.elapsed()
    }

    /// End the application normally (its atexit hook disconnects); returns its exit code.
    pub async fn exit(mut self) -> Option<i32> {
        let answer = self.command("exit").await;
        assert_eq!(answer["exiting"], true, "{}", self.describe());
        let status = tokio::time::timeout(ANSWER, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("did not exit within {ANSWER:?}: {}", self.describe()))
            .expect("wait for the application");
        status.code()
    }

    /// The release and what the agent printed so far, for failure messages.
    pub fn describe(&self) -> String {
        let stderr = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        format!(
            "odigos-opentelemetry-python {}; its stderr:\n{}",
            self.release.version,
            stderr.as_str()
        )
    }

    async fn command(&mut self, command: &str) -> Value {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("write to the application");
        self.stdin.flush().await.expect("flush");
        self.read_line(ANSWER).await
    }

    async fn read_line(&mut self, within: Duration) -> Value {
        let line = match tokio::time::timeout(within, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => panic!("the application ended: {}", self.describe()),
            Err(_) => panic!("no answer within {within:?}: {}", self.describe()),
        };
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", self.describe()))
    }
}
