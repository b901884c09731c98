//! Three third-party OpAMP clients, installed at pinned versions from their
//! registries, and the scenario each runs against the server: connect with
//! `X-Odigos-DeviceId`, receive the remote config and report APPLIED,
//! heartbeat, stop. Each step is checked from the client's side (its events)
//! and the server's (`/agents`, the store), and the tap records the wire.
//!
//! | client | folder | installed into `.tools/` |
//! |---|---|---|
//! | opamp-go v0.23.0 (`client.NewHTTP`) | `tests/thirdparty/opamp-go` | `test-opamp-go/` (go build) |
//! | `opentelemetry-opamp-client` 0.5b0 | `tests/thirdparty/otel-python` | `test-otel-opamp-client/` (venv) |
//! | `@elastic/opamp-client-node` 0.5.0 | `tests/thirdparty/elastic-node` | `test-elastic-opamp-client/` (npm ci) |

use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use odigos_opamp_server::Settings;
use odigos_opamp_server::config_source::{ContainerConfig, LibraryConfig, WorkloadConfig};
use odigos_opamp_server::identity::WorkloadKind;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::runtime::Handle;
use xtask::tools::{self, ToolsLock};

use super::agent_protocol::{Attribute, ResourceAttribute};
use super::conversation::all_devices;
use super::fixture::{Device, ServerUnderTest};
use super::process::LineProcess;
use super::render::{self, AGENT_TO_SERVER, SERVER_TO_AGENT};
use super::tap::{Exchange, Tap};
use super::{InteropError, ensure};

/// Pinned versions (each also pinned in its folder's manifest).
pub const OPAMP_GO: &str = "v0.23.0";
pub const OTEL_OPAMP_CLIENT: &str = "0.5b0";
pub const ELASTIC_OPAMP_CLIENT: &str = "0.5.0";

/// The Go that opamp-go v0.23.0 needs (its go.mod says go 1.24.0).
const MIN_GO_FOR_OPAMP_GO: (u32, u32) = (1, 24);
/// The Python `opentelemetry-opamp-client` needs.
const MIN_PYTHON_FOR_OTEL: (u32, u32) = (3, 10);

/// The interval the clients are asked to heartbeat at.
const CLIENT_HEARTBEAT: Duration = Duration::from_millis(200);
/// The server's heartbeat interval, told to clients that report heartbeats
/// (opamp-go adopts it); an agent is dropped after `STALE_FACTOR` of them.
const SERVER_HEARTBEAT: Duration = Duration::from_secs(1);
const STALE_FACTOR: f64 = 3.0;
/// Bound on every wait for a client (a cold interpreter start included).
const WAIT: Duration = Duration::from_secs(30);
/// Heartbeats to see before stopping.
const HEARTBEATS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThirdPartyClient {
    OpampGo,
    OtelPython,
    ElasticNode,
}

impl fmt::Display for ThirdPartyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThirdPartyClient::OpampGo => write!(f, "opamp-go {OPAMP_GO} HTTP client"),
            ThirdPartyClient::OtelPython => {
                write!(f, "opentelemetry-opamp-client {OTEL_OPAMP_CLIENT} (PyPI)")
            }
            ThirdPartyClient::ElasticNode => {
                write!(f, "@elastic/opamp-client-node {ELASTIC_OPAMP_CLIENT} (npm)")
            }
        }
    }
}

/// What a client program prints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event: String,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    sections: Vec<String>,
    #[serde(default)]
    resource_attributes: Vec<ResourceAttribute>,
    #[serde(default)]
    error: Option<String>,
}

impl ThirdPartyClient {
    pub const ALL: [ThirdPartyClient; 3] = [
        ThirdPartyClient::OpampGo,
        ThirdPartyClient::OtelPython,
        ThirdPartyClient::ElasticNode,
    ];

    /// Short name for snapshot names.
    pub fn key(self) -> &'static str {
        match self {
            ThirdPartyClient::OpampGo => "opamp_go",
            ThirdPartyClient::OtelPython => "otel_python",
            ThirdPartyClient::ElasticNode => "elastic_node",
        }
    }

    /// Each client's own device row and workload.
    pub fn device(self) -> Device {
        match self {
            ThirdPartyClient::OpampGo => Device {
                id: "b6f0c2d4-1e3a-4c5b-9d7e-2f4a6c8e0b1d",
                namespace: "infra",
                pod: "node-agent-k7x2q",
                container: "collector",
                workload: Some((WorkloadKind::DaemonSet, "node-agent")),
                config: None,
            },
            ThirdPartyClient::OtelPython => Device {
                id: "d2e4f6a8-3b5c-4d7e-8f9a-1b3c5d7e9f0a",
                namespace: "batch",
                pod: "report-29012345-abcde",
                container: "job",
                workload: Some((WorkloadKind::CronJob, "report")),
                config: None,
            },
            ThirdPartyClient::ElasticNode => Device {
                id: "f1a3b5c7-9d0e-4f2a-8b4c-6d8e0f2a4b6c",
                namespace: "web",
                pod: "storefront",
                container: "node",
                workload: None,
                config: Some(WorkloadConfig {
                    service_name: Some("storefront-web".into()),
                    libraries: vec![LibraryConfig {
                        name: "@opentelemetry/instrumentation-http".into(),
                        traces_enabled: Some(true),
                    }],
                    // An entry without `traces`: tracing off for this container.
                    containers: [(
                        "node".to_owned(),
                        ContainerConfig::from_json(&serde_json::json!({
                            "containerName": "node",
                            "agentEnabled": true,
                            "metrics": {},
                        }))
                        .expect("an entry with a container name"),
                    )]
                    .into(),
                }),
            },
        }
    }

    /// Whether the client sends `agent_disconnect` when stopped. opamp-go's
    /// HTTP client sends it only over WebSocket; the Elastic client has none.
    pub fn sends_disconnect(self) -> bool {
        self == ThirdPartyClient::OtelPython
    }

    /// The first sequence number the client uses (docs/protocol.md §8).
    pub fn first_sequence_num(self) -> u64 {
        match self {
            ThirdPartyClient::ElasticNode => 1,
            _ => 0,
        }
    }

    /// Installs the pinned client (once; later runs only verify) and returns
    /// how to start its program. Fails naming a missing toolchain.
    pub fn command(self) -> Result<Command, InteropError> {
        let root = xtask::workspace_root();
        let tools_dir = root.join(".tools");
        let folder = root.join("tests/thirdparty");
        let _lock = ToolsLock::acquire(&tools_dir)?;
        match self {
            ThirdPartyClient::OpampGo => {
                let go = tools::require_go()?;
                require_version(&go, &["env", "GOVERSION"], "go", MIN_GO_FOR_OPAMP_GO)?;
                let binary = tools_dir.join("test-opamp-go/client");
                let mut build = Command::new(&go);
                // Never fetch a toolchain or consult a go.work; go.sum pins everything.
                build
                    .args(["build", "-mod=readonly", "-o"])
                    .arg(&binary)
                    .arg(".")
                    .current_dir(folder.join("opamp-go"))
                    .env("GOTOOLCHAIN", "local")
                    .env("GOWORK", "off");
                tools::run(&mut build)?;
                Ok(Command::new(binary))
            }
            ThirdPartyClient::OtelPython => {
                let python3 = tools::require_python3()?;
                require_version(
                    &python3,
                    &["-c", "import platform; print(platform.python_version())"],
                    "python3",
                    MIN_PYTHON_FOR_OTEL,
                )?;
                let venv = tools_dir.join("test-otel-opamp-client");
                let python =
                    tools::ensure_venv(&venv, &folder.join("otel-python/requirements.txt"))?;
                let installed =
                    tools::python_package_version(&python, "opentelemetry-opamp-client")?;
                ensure(installed == OTEL_OPAMP_CLIENT, || {
                    format!(
                        "{venv:?} has opentelemetry-opamp-client {installed}, not {OTEL_OPAMP_CLIENT}: delete it and rerun"
                    )
                })?;
                let mut command = Command::new(python);
                command
                    .arg(folder.join("otel-python/client.py"))
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .env_remove("PYTHONPATH")
                    .env_remove("PYTHONHOME");
                Ok(command)
            }
            ThirdPartyClient::ElasticNode => {
                let (node, _) = tools::require_node()?;
                let install = tools_dir.join("test-elastic-opamp-client");
                let manifest = folder.join("elastic-node");
                tools::ensure_node_modules(&manifest, &install)?;
                // Node resolves the package upwards from the script's real path.
                let script = install.join("client.mjs");
                copy_if_changed(&manifest.join("client.mjs"), &script)?;
                let mut command = Command::new(node);
                command.arg(script);
                Ok(command)
            }
        }
    }

    /// The settings line: a fixed 16-byte uid (the Python client makes its
    /// own), Odigos' identifying attributes, a short heartbeat.
    fn settings(self, url: &str) -> Value {
        let device = self.device();
        let language = match self {
            ThirdPartyClient::OpampGo => "go",
            ThirdPartyClient::OtelPython => "python",
            ThirdPartyClient::ElasticNode => "nodejs",
        };
        let attributes = [
            Attribute::string("service.name", device.pod),
            Attribute::string("telemetry.sdk.language", language),
            Attribute::int("process.pid", 4242),
            Attribute::string("k8s.namespace.name", device.namespace),
            Attribute::string("k8s.pod.name", device.pod),
            Attribute::string("k8s.container.name", device.container),
        ];
        json!({
            "url": url,
            "deviceId": device.id,
            "instanceUid": "0193a0b1c2d37e4f8a9b0c1d2e3f4a5b",
            "identifyingAttributes": attributes,
            "heartbeatSeconds": CLIENT_HEARTBEAT.as_secs_f64(),
        })
    }
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<(), InteropError> {
    let new = std::fs::read(from)
        .map_err(|e| InteropError::io(format!("reading {}", from.display()), e))?;
    if std::fs::read(to).is_ok_and(|old| old == new) {
        return Ok(());
    }
    std::fs::write(to, new).map_err(|e| InteropError::io(format!("writing {}", to.display()), e))
}

/// Fails unless `program args` prints a version of at least `need`.
fn require_version(
    program: &Path,
    args: &[&str],
    name: &str,
    need: (u32, u32),
) -> Result<(), InteropError> {
    let found = tools::stdout_of(Command::new(program).args(args))?;
    let numbers: Vec<u32> = found
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .split('.')
        .map_while(|part| part.parse().ok())
        .collect();
    let have = (
        numbers.first().copied().unwrap_or(0),
        numbers.get(1).copied().unwrap_or(0),
    );
    ensure(have >= need, || {
        format!(
            "`{name}` is {found}, but {}.{} or newer is needed for the third-party client tests; install a newer {name} and put it on PATH",
            need.0, need.1
        )
    })
}

/// How an exchange of a third-party client is classified for the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The first message (description).
    First,
    /// The remote config status report (APPLIED).
    Applied,
    /// A message carrying nothing new, acknowledged plainly.
    Heartbeat,
    /// `agent_disconnect`.
    Disconnect,
    /// Anything else (e.g. a full state resent after `ReportFullState`).
    Other,
}

/// The scenario's result, after every check passed.
pub struct ThirdPartyRun {
    pub client: ThirdPartyClient,
    /// Every exchange, classified.
    exchanges: Vec<(Kind, Exchange)>,
    views: Vec<(&'static str, Value)>,
}

impl ThirdPartyRun {
    /// The first exchange of each kind, in order: how many heartbeats a run
    /// has, and whether a timing-dependent full-state resend happened, varies.
    fn pinned(&self) -> Vec<(&'static str, &Exchange)> {
        let mut seen = Vec::new();
        let mut pinned = Vec::new();
        for (kind, exchange) in &self.exchanges {
            let label = match kind {
                Kind::First => "first",
                Kind::Applied => "remote_config_applied",
                Kind::Heartbeat => "heartbeat",
                Kind::Disconnect => "disconnect",
                Kind::Other => continue,
            };
            if !seen.contains(kind) {
                seen.push(*kind);
                pinned.push((label, exchange));
            }
        }
        pinned
    }

    /// Snapshot: one request of each kind, readable, uid and sequence number
    /// replaced (random or timing-dependent; checked by the scenario).
    pub fn requests_snapshot(&self) -> Result<Value, InteropError> {
        let mut requests = Vec::new();
        for (label, exchange) in self.pinned() {
            let mut request = render::request_message(label, exchange)?;
            render::redact(&mut request, &["instanceUid", "sequenceNum"]);
            requests.push(request);
        }
        Ok(Value::Array(requests))
    }

    /// Snapshot: the responses to those requests, readable, uid replaced.
    pub fn responses_snapshot(&self) -> Result<Value, InteropError> {
        let mut responses = Vec::new();
        for (label, exchange) in self.pinned() {
            let mut response = render::response(label, exchange)?;
            render::redact(&mut response, &["instanceUid"]);
            responses.push(response);
        }
        Ok(Value::Array(responses))
    }

    /// Snapshot: `/agents` at each checkpoint, times, uid and sequence
    /// numbers replaced.
    pub fn record_snapshot(&self) -> Value {
        let views = self.views.iter().map(|(checkpoint, view)| {
            let mut view = view.clone();
            render::redact(&mut view, &render::TIME_FIELDS);
            render::redact(&mut view, &["instanceUid", "lastSequenceNum"]);
            json!({"checkpoint": checkpoint, "agents": view["agents"], "instances": view["instances"]})
        });
        Value::Array(views.collect())
    }
}

/// Runs `client` (started by `command`) through the scenario.
pub fn run(
    runtime: &Handle,
    client: ThirdPartyClient,
    command: Command,
) -> Result<ThirdPartyRun, InteropError> {
    let settings = Settings {
        heartbeat_interval: SERVER_HEARTBEAT,
        stale_factor: STALE_FACTOR,
        ..Settings::loopback()
    };
    let server = ServerUnderTest::start(runtime, settings, &all_devices())?;
    let tap = Tap::start(runtime, server.agent_addr())?;
    let device = client.device();
    let expected_attributes = device.expected_resource_attributes(server.node_name());
    let mut process = LineProcess::spawn(&client.to_string(), command)?;
    process.send(&client.settings(&tap.opamp_url()))?;
    let mut views = Vec::new();

    let started: Event = process.receive("the started event", WAIT)?;
    ensure(started.event == "started", || {
        format!("{client}: first event {started:?}")
    })?;

    // 1. The remote config, as the client received it.
    let received: Event = process.receive("the remoteConfig event", WAIT)?;
    ensure(
        received.event == "remoteConfig" && received.error.is_none(),
        || format!("{client}: expected the remote config, got {received:?}"),
    )?;
    ensure(
        received.sections == ["InstrumentationLibraries", "SDK", "container_config"],
        || format!("{client}: received config sections {:?}", received.sections),
    )?;
    ensure(received.resource_attributes == expected_attributes, || {
        format!(
            "{client}: the SDK section's resource attributes\n  received {:?}\n  expected {:?}",
            received.resource_attributes, expected_attributes
        )
    })?;
    let hash = received.hash.clone().unwrap_or_default();

    // 2. APPLIED reaches the server, which keeps it and does not resend.
    let applied_hash = format!("hex:{hash}");
    let exchanges = tap.wait_for(&format!("{client} to report APPLIED"), WAIT, |all| {
        all.iter().any(|e| is_applied(e, &applied_hash))
    })?;
    let applied_at = exchanges
        .iter()
        .position(|e| is_applied(e, &applied_hash))
        .unwrap_or_default();
    let view = server.agents_view()?;
    let agent = only_agent(&view)?;
    ensure(
        agent["remoteConfigStatus"]["status"] == "RemoteConfigStatuses_APPLIED"
            && agent["remoteConfigStatus"]["lastRemoteConfigHash"] == hash.as_str()
            && agent["offered"]["configHash"] == hash.as_str(),
        || format!("{client}: the server should keep APPLIED for {hash}:\n{agent:#}"),
    )?;
    check_identity(client, &device, agent)?;

    // 3. Heartbeats after it: plain acknowledgements.
    let exchanges = tap.wait_for(
        &format!("{HEARTBEATS} heartbeats from {client}"),
        WAIT,
        |all| {
            all[applied_at + 1..]
                .iter()
                .filter(|e| is_heartbeat(e))
                .count()
                >= HEARTBEATS
        },
    )?;
    let heartbeats: Vec<&Exchange> = exchanges[applied_at + 1..]
        .iter()
        .filter(|e| is_heartbeat(e))
        .collect();
    if client == ThirdPartyClient::OpampGo {
        // opamp-go adopts the interval the server offers (1 s) over its own
        // 200 ms; timers never fire early, so the gaps are at least that.
        for pair in heartbeats.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            ensure(gap >= SERVER_HEARTBEAT.mul_f64(0.9), || {
                format!(
                    "{client}: heartbeats {gap:?} apart: the server's offered interval was not applied"
                )
            })?;
        }
    }
    let view = server.agents_view()?;
    let agent = only_agent(&view)?.clone();
    let last_heartbeat_seq = sequence_num(heartbeats[heartbeats.len() - 1])?;
    ensure(
        agent["lastSequenceNum"].as_u64() >= Some(last_heartbeat_seq),
        || {
            format!(
                "{client}: the server's last sequence number {} is behind the heartbeat's {last_heartbeat_seq}",
                agent["lastSequenceNum"]
            )
        },
    )?;
    check_record(client, &device, &view, true)?;
    views.push(("after_heartbeats", view));

    // 4. Stop: disconnect where the client can; otherwise the server drops
    //    it once it is stale.
    process.send(&json!({"command": "stop"}))?;
    let stopped: Event = process.receive("the stopped event", WAIT)?;
    ensure(stopped.event == "stopped", || {
        format!("{client}: expected stopped, got {stopped:?}")
    })?;
    process.wait_for_exit(WAIT)?;
    let requests_at_stop = tap.len();
    let stale_after = SERVER_HEARTBEAT.mul_f64(STALE_FACTOR);
    let deadline = Instant::now() + stale_after * 2 + Duration::from_secs(5);
    let view = loop {
        // Bounded: the sweeper runs every half interval.
        let view = server.agents_view()?;
        if view["agents"].as_array().is_some_and(Vec::is_empty) || Instant::now() > deadline {
            break view;
        }
        std::thread::sleep(SERVER_HEARTBEAT / 4);
    };
    ensure(view["agents"].as_array().is_some_and(Vec::is_empty), || {
        format!("{client}: still in /agents after it stopped and {stale_after:?} passed:\n{view:#}")
    })?;
    ensure(
        view["instances"].as_array().is_some_and(Vec::is_empty),
        || {
            format!(
                "{client}: its instance record should be deleted (disconnect or stale):\n{view:#}"
            )
        },
    )?;
    ensure(tap.len() == requests_at_stop, || {
        format!("{client}: sent requests after it stopped")
    })?;
    views.push(("after_stop", view));

    let exchanges = classify(client, tap.exchanges(), &applied_hash)?;
    server.shutdown();
    Ok(ThirdPartyRun {
        client,
        exchanges,
        views,
    })
}

/// Checks every exchange (200, exact content type, uid echoed, device
/// header, sequence numbers as docs/protocol.md §8 says) and classifies it.
fn classify(
    client: ThirdPartyClient,
    exchanges: Vec<Exchange>,
    applied_hash: &str,
) -> Result<Vec<(Kind, Exchange)>, InteropError> {
    let mut classified = Vec::new();
    let mut uid: Option<String> = None;
    let mut previous_seq: Option<u64> = None;
    for (index, exchange) in exchanges.into_iter().enumerate() {
        let context = format!("{client}, request {index}");
        let request = render::readable_message(AGENT_TO_SERVER, &exchange.request_body()?)?;
        let response = exchange
            .response
            .as_ref()
            .ok_or_else(|| InteropError::Check(format!("{context}: the server was not reached")))?;
        ensure(response.status() == Some(200), || {
            format!("{context}: {}", response.start_line())
        })?;
        ensure(
            response.raw_header("content-type").as_deref() == Some(" application/x-protobuf"),
            || {
                format!(
                    "{context}: response Content-Type {:?}",
                    response.raw_header("content-type")
                )
            },
        )?;
        ensure(
            exchange.request.header("x-odigos-deviceid").as_deref() == Some(client.device().id),
            || {
                format!(
                    "{context}: X-Odigos-DeviceId {:?}",
                    exchange.request.header("x-odigos-deviceid")
                )
            },
        )?;
        let answer = render::readable_message(SERVER_TO_AGENT, &exchange.response_body()?)?;
        ensure(
            answer["instanceUid"] == request["instanceUid"]
                && answer.get("errorResponse").is_none(),
            || format!("{context}: the answer must echo the uid and carry no error:\n{answer:#}"),
        )?;
        let this_uid = request["instanceUid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ensure(uid.as_ref().is_none_or(|u| *u == this_uid), || {
            format!("{context}: the uid changed")
        })?;
        let raw_uid_len = this_uid.strip_prefix("hex:").map_or(0, |h| h.len() / 2);
        ensure(raw_uid_len == 16, || {
            format!("{context}: uid {this_uid} is not 16 raw bytes")
        })?;
        uid = Some(this_uid);
        let seq = sequence_num(&exchange)?;
        match previous_seq {
            None => ensure(seq == client.first_sequence_num(), || {
                format!(
                    "{context}: first sequence number {seq}, expected {}",
                    client.first_sequence_num()
                )
            })?,
            // The Python client may repeat or skip numbers; the others count up.
            Some(previous) if client == ThirdPartyClient::OtelPython => {
                ensure(seq >= previous, || {
                    format!("{context}: sequence number went back from {previous} to {seq}")
                })?
            }
            Some(previous) => ensure(seq == previous + 1, || {
                format!("{context}: sequence number {seq} after {previous}")
            })?,
        }
        previous_seq = Some(seq);
        let kind = if index == 0 {
            ensure(
                request.get("agentDescription").is_some() && answer.get("remoteConfig").is_some(),
                || {
                    format!(
                        "{context}: the first exchange must describe the agent and get the config:\n{request:#}\n{answer:#}"
                    )
                },
            )?;
            Kind::First
        } else if request.get("agentDisconnect").is_some() {
            Kind::Disconnect
        } else if is_applied(&exchange, applied_hash) && request.get("agentDescription").is_none() {
            Kind::Applied
        } else if is_heartbeat(&exchange) {
            Kind::Heartbeat
        } else {
            Kind::Other
        };
        classified.push((kind, exchange));
    }
    let kinds: Vec<Kind> = classified.iter().map(|(k, _)| *k).collect();
    let has = |kind| kinds.contains(&kind);
    ensure(has(Kind::Applied) && has(Kind::Heartbeat), || {
        format!("{client}: exchanges {kinds:?}")
    })?;
    ensure(has(Kind::Disconnect) == client.sends_disconnect(), || {
        format!(
            "{client}: disconnect sent: {}, expected {}",
            has(Kind::Disconnect),
            client.sends_disconnect()
        )
    })?;
    Ok(classified)
}

fn decoded(exchange: &Exchange, type_name: &str) -> Option<Value> {
    let body = match type_name {
        AGENT_TO_SERVER => exchange.request_body().ok()?,
        _ => exchange.response_body().ok()?,
    };
    render::readable_message(type_name, &body).ok()
}

/// A request reporting APPLIED for `hash`, answered 200 without a config.
fn is_applied(exchange: &Exchange, hash: &str) -> bool {
    let (Some(request), Some(answer)) = (
        decoded(exchange, AGENT_TO_SERVER),
        decoded(exchange, SERVER_TO_AGENT),
    ) else {
        return false;
    };
    let status = &request["remoteConfigStatus"];
    status["status"] == "RemoteConfigStatuses_APPLIED"
        && status["lastRemoteConfigHash"] == hash
        && answer.get("remoteConfig").is_none()
        && exchange.response.as_ref().and_then(|r| r.status()) == Some(200)
}

/// A request with nothing but uid, sequence number and capabilities,
/// answered with a plain acknowledgement.
fn is_heartbeat(exchange: &Exchange) -> bool {
    let (Some(request), Some(answer)) = (
        decoded(exchange, AGENT_TO_SERVER),
        decoded(exchange, SERVER_TO_AGENT),
    ) else {
        return false;
    };
    let only_basics = request.as_object().is_some_and(|m| {
        m.keys()
            .all(|k| ["instanceUid", "sequenceNum", "capabilities"].contains(&k.as_str()))
    });
    let plain_answer = answer.as_object().is_some_and(|m| {
        m.keys()
            .all(|k| ["instanceUid", "capabilities"].contains(&k.as_str()))
    });
    only_basics && plain_answer && exchange.response.as_ref().and_then(|r| r.status()) == Some(200)
}

fn sequence_num(exchange: &Exchange) -> Result<u64, InteropError> {
    let request = render::readable_message(AGENT_TO_SERVER, &exchange.request_body()?)?;
    // proto3 JSON writes uint64 as a string and omits zero.
    Ok(request["sequenceNum"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

fn only_agent(view: &Value) -> Result<&Value, InteropError> {
    match view["agents"].as_array().map(Vec::as_slice) {
        Some([agent]) => Ok(agent),
        _ => Err(InteropError::Check(format!(
            "expected one agent in /agents:\n{view:#}"
        ))),
    }
}

fn check_identity(
    client: ThirdPartyClient,
    device: &Device,
    agent: &Value,
) -> Result<(), InteropError> {
    let identity = &agent["identity"];
    ensure(
        identity["namespace"] == device.namespace
            && identity["podName"] == device.pod
            && identity["container"] == device.container
            && agent["pid"] == 4242,
        || format!("{client}: resolved identity differs from its device row:\n{agent:#}"),
    )
}

fn check_record(
    client: ThirdPartyClient,
    device: &Device,
    view: &Value,
    present: bool,
) -> Result<(), InteropError> {
    let instances = view["instances"].as_array().cloned().unwrap_or_default();
    ensure(instances.len() == usize::from(present), || {
        format!("{client}: instance records:\n{view:#}")
    })?;
    if let Some(record) = instances.first() {
        ensure(
            record["containerName"] == device.container
                && record["ownerPodName"] == device.pod
                && record["instrumentedApp"] == device.instrumented_app(),
            || format!("{client}: instance record:\n{record:#}"),
        )?;
    }
    Ok(())
}
