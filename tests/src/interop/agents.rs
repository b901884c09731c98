//! Our own agents, one per language on that language's generated code, and
//! the two Odigos agent profiles they play.
//!
//! Every language plays every profile with the same inputs, so for one
//! profile all four must send the same request bytes. The programs:
//! `tests/go/cmd/agent`, `tests/python/odigos_agent.py`, `tests/js/agent.mjs`
//! and `src/bin/odigos-test-agent.rs`.

use std::fmt;
use std::path::Path;
use std::process::Command;

use odigos_opamp_server::config_source::{LibraryConfig, WorkloadConfig};
use odigos_opamp_server::identity::WorkloadKind;

use super::InteropError;
use super::agent_protocol::{AgentSettings, Attribute};
use super::fixture::Device;
use crate::langs::{PROTOBUF_ES, PYTHON_PROTOBUF, Runtime};

/// The content type every client should send.
pub const PROTOBUF: &str = "application/x-protobuf";

/// One of our agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneratedAgent {
    Go,
    Python,
    JavaScript,
    Rust,
}

impl GeneratedAgent {
    pub const ALL: [GeneratedAgent; 4] = [
        GeneratedAgent::Go,
        GeneratedAgent::Python,
        GeneratedAgent::JavaScript,
        GeneratedAgent::Rust,
    ];

    /// Short name for snapshot names: `go`, `python`, `js`, `rust`.
    pub fn key(self) -> &'static str {
        match self {
            GeneratedAgent::Go => "go",
            GeneratedAgent::Python => "python",
            GeneratedAgent::JavaScript => "js",
            GeneratedAgent::Rust => "rust",
        }
    }

    /// Installs what the agent needs (pinned, via the vector tests'
    /// runtimes) and returns how to start it. Python and JavaScript run on the
    /// runtimes the Odigos agents pin (protobuf 5.29.6, @bufbuild/protobuf
    /// 2.11.0). The Rust agent is this crate's binary, built by cargo.
    pub fn command(self, rust_binary: &Path) -> Result<Command, InteropError> {
        let runtime = match self {
            GeneratedAgent::Go => Runtime::Go,
            GeneratedAgent::Python => Runtime::Python {
                protobuf: PYTHON_PROTOBUF[0],
            },
            GeneratedAgent::JavaScript => Runtime::JavaScript {
                protobuf_es: PROTOBUF_ES[0],
            },
            GeneratedAgent::Rust => return Ok(Command::new(rust_binary)),
        };
        Ok(runtime.agent_command()?)
    }
}

impl fmt::Display for GeneratedAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} agent (gen/{})", self.key(), self.key())
    }
}

/// An Odigos agent's conversation: its identity and its quirks.
#[derive(Clone, Debug)]
pub struct OdigosProfile {
    /// Names the scenario in snapshot names.
    pub name: &'static str,
    pub device: Device,
    pub uid: &'static str,
    pub pid: i64,
    pub language: &'static str,
    pub first_sequence_num: u64,
    pub content_type: &'static str,
    pub starting_error: &'static str,
    pub exiting_error: &'static str,
}

impl OdigosProfile {
    /// The Odigos Python agent: sequence from 0, plain content type.
    pub fn python() -> Self {
        OdigosProfile {
            name: "odigos_python_agent",
            device: Device {
                id: "8497ec75-8928-4e80-90e0-4f29642a0fea",
                namespace: "shop",
                pod: "coupon-7d9f8b6c5d-x2x9z",
                container: "app",
                workload: Some((WorkloadKind::Deployment, "coupon")),
                config: None,
            },
            uid: "01936f8e-2b4c-7d1a-9e3f-5a6b7c8d9e0f",
            pid: 7,
            language: "python",
            first_sequence_num: 0,
            content_type: PROTOBUF,
            starting_error: "Python OpenTelemetry agent is starting",
            exiting_error: "Python runtime is exiting",
        }
    }

    /// The Odigos Node agent: sequence from 1, `Content-Type` with a leading
    /// space, and a workload with an `InstrumentationConfig` (service name and
    /// library settings), which older Node agents need to receive.
    pub fn node() -> Self {
        OdigosProfile {
            name: "odigos_node_agent",
            device: Device {
                id: "3c1d9a52-6f0e-4b7a-8d21-9e4f5a6b7c8d",
                namespace: "shop",
                pod: "cart-0",
                container: "server",
                workload: Some((WorkloadKind::StatefulSet, "cart")),
                config: Some(WorkloadConfig {
                    service_name: Some("cart-service".into()),
                    libraries: vec![
                        LibraryConfig {
                            name: "@opentelemetry/instrumentation-http".into(),
                            traces_enabled: Some(false),
                        },
                        LibraryConfig {
                            name: "@opentelemetry/instrumentation-redis".into(),
                            traces_enabled: None,
                        },
                    ],
                    ..WorkloadConfig::default()
                }),
            },
            uid: "01936f8e-9a0b-7c2d-8e4f-0a1b2c3d4e5f",
            pid: 1,
            language: "nodejs",
            first_sequence_num: 1,
            content_type: " application/x-protobuf",
            starting_error: "Node.js OpenTelemetry agent is starting",
            exiting_error: "Node.js process is exiting",
        }
    }

    pub fn all() -> [OdigosProfile; 2] {
        [OdigosProfile::python(), OdigosProfile::node()]
    }

    /// The identifying attributes, in the Odigos Python agent's order.
    pub fn identifying_attributes(&self) -> Vec<Attribute> {
        vec![
            Attribute::string("service.instance.id", self.uid),
            Attribute::string("telemetry.sdk.language", self.language),
            Attribute::int("process.pid", self.pid),
            Attribute::string("k8s.namespace.name", self.device.namespace),
            Attribute::string("k8s.container.name", self.device.container),
            Attribute::string("k8s.pod.name", self.device.pod),
        ]
    }

    /// The settings line for an agent posting to `url`.
    pub fn settings(&self, url: String) -> AgentSettings {
        AgentSettings {
            url,
            device_id: self.device.id.to_owned(),
            uid: self.uid.to_owned(),
            first_sequence_num: self.first_sequence_num,
            content_type: self.content_type.to_owned(),
            identifying_attributes: self.identifying_attributes(),
            starting_error: self.starting_error.to_owned(),
            exiting_error: self.exiting_error.to_owned(),
        }
    }
}
