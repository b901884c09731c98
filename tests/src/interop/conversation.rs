//! One of our agents plays one Odigos profile against a fresh server, step by
//! step, and every step is checked from three sides: what the agent says it
//! received, what crossed the tap, and the server's `/agents` view.
//!
//! 1. `start`: first message (36-byte UUID-text uid, device id header,
//!    Odigos' identifying attributes); the answer carries the full remote
//!    config, whose `SDK` resource attributes the agent reads.
//! 2. `healthy`: health reported; the instance record turns healthy.
//! 3. two `heartbeat`s: plain acknowledgements, no config resent.
//! 4. server restart (same port, empty registry); `heartbeat` gets
//!    `ReportFullState`, the agent resends its full state, and is back.
//! 5. `disconnect`: the server forgets the agent; the record is kept
//!    unhealthy (`ProcessTerminated`), as docs/protocol.md §6 says.

use std::process::Command;
use std::time::Duration;

use odigos_opamp_server::Settings;
use serde_json::{Value, json};
use tokio::runtime::Handle;

use super::agent_protocol::{ReceivedConfig, SeenExchange, Step, StepCommand, StepReply};
use super::agents::{GeneratedAgent, OdigosProfile, PROTOBUF};
use super::fixture::{Device, ServerUnderTest};
use super::process::LineProcess;
use super::render::{self, SERVER_TO_AGENT};
use super::tap::{Exchange, Tap};
use super::thirdparty::ThirdPartyClient;
use super::{InteropError, ensure};

/// How long one step may take (a cold Python or Node start included).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `ReportFullState` flag of `ServerToAgent.flags`.
const REPORT_FULL_STATE: u64 = 1;

/// Every client's device row: each server knows them all.
pub fn all_devices() -> Vec<Device> {
    let mut devices: Vec<Device> = OdigosProfile::all().into_iter().map(|p| p.device).collect();
    devices.extend(ThirdPartyClient::ALL.map(|c| c.device()));
    devices
}

/// What one conversation produced, after every check passed.
pub struct Conversation {
    pub agent: GeneratedAgent,
    pub profile: OdigosProfile,
    /// Each exchange with the step label the agent gave it, in order.
    pub exchanges: Vec<(String, Exchange)>,
    /// `GET /agents` at each checkpoint.
    pub views: Vec<(&'static str, Value)>,
}

impl Conversation {
    /// The request bodies, in order (for the cross-language comparison).
    pub fn request_bodies(&self) -> Result<Vec<Vec<u8>>, InteropError> {
        self.exchanges
            .iter()
            .map(|(_, e)| e.request_body())
            .collect()
    }

    /// The response bodies, in order.
    pub fn response_bodies(&self) -> Result<Vec<Vec<u8>>, InteropError> {
        self.exchanges
            .iter()
            .map(|(_, e)| e.response_body())
            .collect()
    }

    /// Snapshot: every request, bytes and readable.
    pub fn requests_snapshot(&self) -> Result<Value, InteropError> {
        let requests: Result<Vec<Value>, _> = self
            .exchanges
            .iter()
            .map(|(step, e)| render::request(step, e))
            .collect();
        Ok(Value::Array(requests?))
    }

    /// Snapshot: every response, readable.
    pub fn responses_snapshot(&self) -> Result<Value, InteropError> {
        let responses: Result<Vec<Value>, _> = self
            .exchanges
            .iter()
            .map(|(step, e)| render::response(step, e))
            .collect();
        Ok(Value::Array(responses?))
    }

    /// Snapshot: the server's view of the agent and its record at each
    /// checkpoint, clock times replaced.
    pub fn record_snapshot(&self) -> Value {
        let views = self.views.iter().map(|(checkpoint, view)| {
            let mut view = view.clone();
            render::redact(&mut view, &render::TIME_FIELDS);
            json!({"checkpoint": checkpoint, "agents": view["agents"], "instances": view["instances"]})
        });
        Value::Array(views.collect())
    }
}

/// Runs the whole conversation; any failed check is an error naming the
/// agent, the step and what differed.
pub fn run(
    runtime: &Handle,
    agent: GeneratedAgent,
    command: Command,
    profile: &OdigosProfile,
) -> Result<Conversation, InteropError> {
    let mut server = ServerUnderTest::start(runtime, Settings::loopback(), &all_devices())?;
    let tap = Tap::start(runtime, server.agent_addr())?;
    let mut process = LineProcess::spawn(&agent.to_string(), command)?;
    process.send(&profile.settings(tap.opamp_url()))?;
    let mut talk = Talk {
        agent,
        profile,
        process,
        tap,
        exchanges: Vec::new(),
        views: Vec::new(),
    };
    let expected_attributes = profile
        .device
        .expected_resource_attributes(server.node_name());
    let first_seq = profile.first_sequence_num;

    // 1. First message: the full remote config comes back and is read.
    let first = talk.step(Step::Start, &["start"])?;
    let config = talk.check_new_config(&first[0], &expected_attributes)?;
    let view = talk.view(&server, "after_start")?;
    check_agent(&view, profile, first_seq, "Starting", false)?;
    check_record(
        &view,
        profile,
        false,
        "Starting",
        Some(profile.starting_error),
    )?;

    // 2. Healthy.
    let healthy = talk.step(Step::Healthy, &["healthy"])?;
    check_plain_ack(&healthy[0])?;
    let view = talk.view(&server, "after_healthy")?;
    check_agent(&view, profile, first_seq + 1, "Healthy", true)?;
    check_record(&view, profile, true, "Healthy", None)?;
    check_reported_hash(&view, &config.hash)?;

    // 3. Heartbeats: acknowledged, nothing resent, nothing changed.
    for n in 0..2 {
        let heartbeat = talk.step(Step::Heartbeat, &["heartbeat"])?;
        check_plain_ack(&heartbeat[0])?;
        let view = server.agents_view()?;
        check_agent(&view, profile, first_seq + 2 + n, "Healthy", true)?;
    }
    let view = talk.view(&server, "after_heartbeats")?;
    check_reported_hash(&view, &config.hash)?;

    // 4. Restart: the new server knows nobody; the record outlives it.
    server.restart()?;
    let view = talk.view(&server, "after_restart")?;
    ensure(agents(&view).is_empty(), || {
        format!("a restarted server must start with no agents: {view}")
    })?;
    check_record(&view, profile, true, "Healthy", None)?;
    let recovery = talk.step(Step::Heartbeat, &["heartbeat", "fullState"])?;
    ensure(
        recovery[0].flags & REPORT_FULL_STATE != 0 && recovery[0].remote_config.is_none(),
        || {
            format!(
                "an unknown agent's heartbeat must get ReportFullState and no config: {:?}",
                recovery[0]
            )
        },
    )?;
    let again = talk.check_new_config(&recovery[1], &expected_attributes)?;
    ensure(again.hash == config.hash, || {
        format!(
            "the config hash changed across a restart: {} then {}",
            config.hash, again.hash
        )
    })?;
    let view = talk.view(&server, "after_recovery")?;
    check_agent(&view, profile, first_seq + 5, "Healthy", true)?;
    check_record(&view, profile, true, "Healthy", None)?;

    // 5. Disconnect: forgotten; the record stays, unhealthy.
    let bye = talk.step(Step::Disconnect, &["disconnect"])?;
    check_plain_ack(&bye[0])?;
    let view = talk.view(&server, "after_disconnect")?;
    ensure(agents(&view).is_empty(), || {
        format!("a disconnected agent must be forgotten: {view}")
    })?;
    check_record(
        &view,
        profile,
        false,
        "ProcessTerminated",
        Some(profile.exiting_error),
    )?;

    let Talk {
        process,
        tap,
        exchanges,
        views,
        ..
    } = talk;
    process.wait_for_exit(STEP_TIMEOUT)?;
    ensure(tap.len() == exchanges.len(), || {
        format!(
            "{agent}: the tap saw {} requests, the agent reported {}",
            tap.len(),
            exchanges.len()
        )
    })?;
    server.shutdown();
    Ok(Conversation {
        agent,
        profile: profile.clone(),
        exchanges,
        views,
    })
}

/// The running conversation: the agent program, the tap, what was recorded.
struct Talk<'a> {
    agent: GeneratedAgent,
    profile: &'a OdigosProfile,
    process: LineProcess,
    tap: Tap,
    exchanges: Vec<(String, Exchange)>,
    views: Vec<(&'static str, Value)>,
}

impl Talk<'_> {
    /// Takes one step; the agent must report exactly the exchanges `labels`
    /// and the tap must have seen exactly those requests, each answered 200
    /// with the exact content type, the agent's uid and the device header.
    fn step(&mut self, step: Step, labels: &[&str]) -> Result<Vec<SeenExchange>, InteropError> {
        let before = self.tap.len();
        let reply: StepReply = self.process.request(
            &StepCommand { step },
            &format!("the reply to {step:?}"),
            STEP_TIMEOUT,
        )?;
        let seen = match (reply.exchanges, reply.error) {
            (Some(seen), None) => seen,
            (_, error) => {
                return Err(self.process.failure(format!(
                    "step {step:?} failed: {}",
                    error.unwrap_or_default()
                )));
            }
        };
        let sent: Vec<&str> = seen.iter().map(|s| s.sent.as_str()).collect();
        ensure(sent == labels, || {
            format!(
                "{}: step {step:?} sent {sent:?}, expected {labels:?}",
                self.agent
            )
        })?;
        let recorded = self.tap.exchanges();
        ensure(recorded.len() == before + seen.len(), || {
            format!(
                "{}: step {step:?}: the agent reported {} exchange(s), the tap saw {}",
                self.agent,
                seen.len(),
                recorded.len() - before
            )
        })?;
        for (seen, exchange) in seen.iter().zip(&recorded[before..]) {
            self.check_http(step, seen, exchange)?;
            self.exchanges.push((seen.sent.clone(), exchange.clone()));
        }
        Ok(seen)
    }

    fn check_http(
        &self,
        step: Step,
        seen: &SeenExchange,
        exchange: &Exchange,
    ) -> Result<(), InteropError> {
        let context = || format!("{} step {step:?} ({})", self.agent, seen.sent);
        let response = exchange.response.as_ref().ok_or_else(|| {
            InteropError::Check(format!("{}: the server was not reached", context()))
        })?;
        ensure(
            response.status() == Some(200) && seen.http_status == 200,
            || {
                format!(
                    "{}: {} (agent saw {})",
                    context(),
                    response.start_line(),
                    seen.http_status
                )
            },
        )?;
        // Byte for byte: the Elastic client compares it exactly.
        ensure(
            response.raw_header("content-type").as_deref() == Some(" application/x-protobuf"),
            || {
                format!(
                    "{}: response Content-Type {:?}",
                    context(),
                    response.raw_header("content-type")
                )
            },
        )?;
        ensure(seen.content_type == PROTOBUF && seen.uid_echoed, || {
            format!(
                "{}: the agent saw content type {:?}, uid echoed: {}",
                context(),
                seen.content_type,
                seen.uid_echoed
            )
        })?;
        ensure(
            exchange.request.header("x-odigos-deviceid").as_deref() == Some(self.profile.device.id),
            || {
                format!(
                    "{}: X-Odigos-DeviceId was {:?}",
                    context(),
                    exchange.request.header("x-odigos-deviceid")
                )
            },
        )?;
        ensure(
            exchange.request.header("content-type").as_deref() == Some(PROTOBUF),
            || {
                format!(
                    "{}: request Content-Type {:?}",
                    context(),
                    exchange.request.raw_header("content-type")
                )
            },
        )?;
        // What the agent read is what crossed the wire.
        let answer = render::readable_message(SERVER_TO_AGENT, &exchange.response_body()?)?;
        let wire_hash = answer["remoteConfig"]["configHash"]
            .as_str()
            .map(str::to_owned);
        let seen_hash = seen
            .remote_config
            .as_ref()
            .map(|c| format!("hex:{}", c.hash));
        ensure(wire_hash == seen_hash, || {
            format!(
                "{}: the tap saw config hash {wire_hash:?}, the agent {seen_hash:?}",
                context()
            )
        })?;
        let wire_flags = answer["flags"]
            .as_str()
            .and_then(|f| f.parse().ok())
            .unwrap_or(0u64);
        ensure(wire_flags == seen.flags, || {
            format!(
                "{}: the tap saw flags {wire_flags}, the agent {}",
                context(),
                seen.flags
            )
        })?;
        ensure(
            seen.sequence_num == self.exchanges.len() as u64 + self.profile.first_sequence_num,
            || format!("{}: sequence number {}", context(), seen.sequence_num),
        )
    }

    /// An answer with the full remote config, read by the agent as
    /// docs/protocol.md §5 says it must be.
    fn check_new_config(
        &self,
        seen: &SeenExchange,
        expected: &[super::agent_protocol::ResourceAttribute],
    ) -> Result<ReceivedConfig, InteropError> {
        let config = seen.remote_config.clone().ok_or_else(|| {
            InteropError::Check(format!(
                "{}: {} got no remote config",
                self.agent, seen.sent
            ))
        })?;
        ensure(seen.flags == 0, || {
            format!("{}: {} got flags {}", self.agent, seen.sent, seen.flags)
        })?;
        ensure(
            config.sections == ["InstrumentationLibraries", "SDK", "container_config"],
            || format!("{}: config sections {:?}", self.agent, config.sections),
        )?;
        ensure(config.resource_attributes == expected, || {
            format!(
                "{}: the SDK section's resource attributes\n  received {:?}\n  expected {:?}",
                self.agent, config.resource_attributes, expected
            )
        })?;
        ensure(config.hash.len() == 64, || {
            format!("{}: config hash {:?}", self.agent, config.hash)
        })?;
        Ok(config)
    }

    fn view(
        &mut self,
        server: &ServerUnderTest,
        checkpoint: &'static str,
    ) -> Result<Value, InteropError> {
        let view = server.agents_view()?;
        self.views.push((checkpoint, view.clone()));
        Ok(view)
    }
}

fn check_plain_ack(seen: &SeenExchange) -> Result<(), InteropError> {
    ensure(seen.flags == 0 && seen.remote_config.is_none(), || {
        format!("{} must get a plain acknowledgement: {seen:?}", seen.sent)
    })
}

fn agents(view: &Value) -> Vec<Value> {
    view["agents"].as_array().cloned().unwrap_or_default()
}

/// The view holds exactly this agent, resolved from its device row, with
/// this health and last sequence number.
fn check_agent(
    view: &Value,
    profile: &OdigosProfile,
    last_seq: u64,
    status: &str,
    healthy: bool,
) -> Result<(), InteropError> {
    let device = &profile.device;
    let all = agents(view);
    let [agent] = all.as_slice() else {
        return Err(InteropError::Check(format!(
            "expected one agent in /agents: {view}"
        )));
    };
    let problems: Vec<String> = [
        ("instanceUid", json!(profile.uid)),
        ("pid", json!(profile.pid)),
        ("language", json!(profile.language)),
        ("lastSequenceNum", json!(last_seq)),
    ]
    .into_iter()
    .filter(|(key, want)| &agent[*key] != want)
    .map(|(key, want)| format!("{key}: {} (expected {want})", agent[key]))
    .chain(
        [
            ("namespace", device.namespace),
            ("podName", device.pod),
            ("container", device.container),
        ]
        .into_iter()
        .filter(|(key, want)| agent["identity"][*key] != *want)
        .map(|(key, want)| {
            format!(
                "identity.{key}: {} (expected {want:?})",
                agent["identity"][key]
            )
        }),
    )
    .chain(
        (agent["health"]["status"] != status
            || agent["health"]["healthy"].as_bool().unwrap_or(false) != healthy)
            .then(|| {
                format!(
                    "health: {} (expected {status}, healthy {healthy})",
                    agent["health"]
                )
            }),
    )
    .collect();
    ensure(problems.is_empty(), || {
        format!(
            "/agents disagrees for {}: {}\n{agent:#}",
            profile.name,
            problems.join("; ")
        )
    })
}

/// The last remote config status the server keeps is the hash it sent.
fn check_reported_hash(view: &Value, hash: &str) -> Result<(), InteropError> {
    let kept = &view["agents"][0]["remoteConfigStatus"]["lastRemoteConfigHash"];
    ensure(
        kept == hash && view["agents"][0]["offered"]["configHash"] == hash,
        || {
            format!(
                "the server keeps reported hash {kept}, offers {}, sent {hash}",
                view["agents"][0]["offered"]["configHash"]
            )
        },
    )
}

/// The store holds exactly this agent's record with this health.
fn check_record(
    view: &Value,
    profile: &OdigosProfile,
    healthy: bool,
    reason: &str,
    message: Option<&str>,
) -> Result<(), InteropError> {
    let instances = view["instances"].as_array().cloned().unwrap_or_default();
    let [record] = instances.as_slice() else {
        return Err(InteropError::Check(format!(
            "expected one instance record: {view}"
        )));
    };
    let device = &profile.device;
    let status = &record["status"];
    let fine = record["containerName"] == device.container
        && record["ownerPodName"] == device.pod
        && record["instrumentedApp"] == device.instrumented_app()
        && record["key"]["pid"] == profile.pid
        && status["healthy"] == healthy
        && status["reason"] == reason
        && status["message"].as_str() == message
        && status["identifyingAttributes"].as_array().map(Vec::len) == Some(6);
    ensure(fine, || {
        format!(
            "the instance record of {} should be healthy {healthy}, reason {reason}, message {message:?}:\n{record:#}",
            profile.name
        )
    })
}
