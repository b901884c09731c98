//! The line protocol between the harness and our own agents (Go, Python,
//! JavaScript and Rust, each on its language's generated code).
//!
//! The harness writes one [`AgentSettings`] line, then one [`StepCommand`]
//! line per step; the agent answers each step with one [`StepReply`] line.
//! The agent reports only what it *received* ([`SeenExchange`]); what it sent
//! is captured by the tap, never self-reported.
//!
//! The conversation each agent plays, step by step (the Odigos agents'):
//!
//! | step | message (every one stamped with uid and the next sequence number) |
//! |---|---|
//! | `start` | description + health `{healthy: false, status: "Starting", last_error}` |
//! | `healthy` | health `{healthy: true, status: "Healthy"}` |
//! | `heartbeat` | nothing else |
//! | `disconnect` | health `{healthy: false, status: "ProcessTerminated", last_error}` + `agent_disconnect` |
//!
//! Once a response carried a remote config, every later message carries
//! `remote_config_status {last_remote_config_hash}`. A response with the
//! `ReportFullState` flag makes the agent send description + healthy health
//! at once (`fullState`), within the same step.

use serde::{Deserialize, Serialize};

/// The first line: everything that makes the conversation deterministic.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSettings {
    /// Where to post (the tap).
    pub url: String,
    /// The `X-Odigos-DeviceId` header.
    pub device_id: String,
    /// UUID text; its UTF-8 bytes are the `instance_uid` (36 bytes).
    pub uid: String,
    /// 0 like the Odigos Python agent, 1 like the Node agent.
    pub first_sequence_num: u64,
    /// The `Content-Type` value, quirks included.
    pub content_type: String,
    /// In this order.
    pub identifying_attributes: Vec<Attribute>,
    /// `last_error` of the first message's health.
    pub starting_error: String,
    /// `last_error` of the disconnect message's health.
    pub exiting_error: String,
}

/// One identifying attribute: a string or an int value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int: Option<i64>,
}

impl Attribute {
    pub fn string(key: &str, value: &str) -> Self {
        Attribute {
            key: key.to_owned(),
            string: Some(value.to_owned()),
            int: None,
        }
    }

    pub fn int(key: &str, value: i64) -> Self {
        Attribute {
            key: key.to_owned(),
            string: None,
            int: Some(value),
        }
    }
}

/// The steps of the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    Start,
    Healthy,
    Heartbeat,
    Disconnect,
}

/// One step to take.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct StepCommand {
    pub step: Step,
}

/// The answer to one step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchanges: Option<Vec<SeenExchange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the agent saw of one request and its response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenExchange {
    /// `start`, `healthy`, `heartbeat`, `fullState` or `disconnect`.
    pub sent: String,
    pub sequence_num: u64,
    pub http_status: u16,
    /// The response's `Content-Type`.
    pub content_type: String,
    /// Whether the response's `instance_uid` is the agent's own.
    pub uid_echoed: bool,
    pub flags: u64,
    pub remote_config: Option<ReceivedConfig>,
}

/// A remote config as the agent read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedConfig {
    /// `config_hash`, hex.
    pub hash: String,
    /// The config map's keys, sorted.
    pub sections: Vec<String>,
    /// The `SDK` section's `remoteResourceAttributes`, in the order received.
    pub resource_attributes: Vec<ResourceAttribute>,
}

/// One `{key, value}` of the `SDK` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAttribute {
    pub key: String,
    pub value: String,
}
