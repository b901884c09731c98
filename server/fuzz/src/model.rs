//! Agent messages built from fuzzer bytes. Most of them are shaped like real agents' (a
//! small pool of uids, well-known attribute keys) so the fuzzer reaches the known-agent
//! paths; the rest are arbitrary.

use arbitrary::Arbitrary;
use odigos_opamp_proto::opamp::proto::{
    AgentDescription, AgentDisconnect, AgentToServer, AnyValue, ArrayValue, ComponentHealth,
    KeyValue, KeyValueList, RemoteConfigStatus, any_value::Value,
};

/// Pods of the fuzz device table (`DEVICES`): index 0 and 1 are rows, 2 is not.
pub const PODS: [(&str, &str, &str); 3] = [
    ("shop", "coupon-abc", "app"),
    ("shop", "cart-0", "cart"),
    ("other", "stranger", "main"),
];

/// Device ids of the rows of `DEVICES`.
pub const DEVICE_IDS: [&str; 2] = ["dev-coupon", "dev-cart"];

/// The device table the harnesses resolve identities with.
pub const DEVICES: &str = "
- {deviceId: dev-coupon, namespace: shop, pod: coupon-abc, container: app, workloadKind: Deployment, workloadName: coupon}
- {deviceId: dev-cart, namespace: shop, pod: cart-0, container: cart, workloadKind: StatefulSet, workloadName: cart}
";

#[derive(Arbitrary, Debug, Clone)]
pub enum Uid {
    /// One of a few uids, so messages of the same agent follow each other.
    Pool(u8),
    Raw(Vec<u8>),
}

impl Uid {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Uid::Pool(i) => format!("0192f1e4-7c3a-7b8e-9d2f-3a4b5c6d7e{:02x}", i % 4).into_bytes(),
            Uid::Raw(raw) => raw.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Key {
    Pid,
    Vpid,
    Language,
    Namespace,
    Pod,
    Container,
    Other(String),
}

impl Key {
    fn name(&self) -> String {
        match self {
            Key::Pid => "process.pid".into(),
            Key::Vpid => "process.vpid".into(),
            Key::Language => "telemetry.sdk.language".into(),
            Key::Namespace => "k8s.namespace.name".into(),
            Key::Pod => "k8s.pod.name".into(),
            Key::Container => "k8s.container.name".into(),
            Key::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Val {
    None,
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    Array(Vec<Scalar>),
    Map(Vec<(String, Scalar)>),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Double(f64),
    Empty,
}

impl Scalar {
    fn any(&self) -> AnyValue {
        let value = match self {
            Scalar::Str(s) => Some(Value::StringValue(s.clone())),
            Scalar::Int(i) => Some(Value::IntValue(*i)),
            Scalar::Double(d) => Some(Value::DoubleValue(*d)),
            Scalar::Empty => None,
        };
        AnyValue { value }
    }
}

impl Val {
    fn any(&self) -> Option<AnyValue> {
        let value = match self {
            Val::None => return None,
            Val::Str(s) => Value::StringValue(s.clone()),
            Val::Int(i) => Value::IntValue(*i),
            Val::Double(d) => Value::DoubleValue(*d),
            Val::Bool(b) => Value::BoolValue(*b),
            Val::Bytes(b) => Value::BytesValue(b.clone()),
            Val::Array(items) => Value::ArrayValue(ArrayValue {
                values: items.iter().map(Scalar::any).collect(),
            }),
            Val::Map(items) => Value::KvlistValue(KeyValueList {
                values: items
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: k.clone(),
                        value: Some(v.any()),
                    })
                    .collect(),
            }),
        };
        Some(AnyValue { value: Some(value) })
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Attr {
    pub key: Key,
    pub value: Val,
}

impl Attr {
    fn key_value(&self) -> KeyValue {
        KeyValue {
            key: self.key.name(),
            value: self.value.any(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Description {
    /// A complete description of one of `PODS`, as an Odigos agent sends it.
    Full { pod: u8, pid: u16, extra: Vec<Attr> },
    Arbitrary {
        identifying: Vec<Attr>,
        non_identifying: Vec<Attr>,
    },
}

impl Description {
    fn build(&self) -> AgentDescription {
        let kv = |key: &str, value: Value| KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        };
        match self {
            Description::Full { pod, pid, extra } => {
                let (namespace, pod, container) = PODS[usize::from(*pod) % PODS.len()];
                let mut identifying = vec![
                    kv(
                        "telemetry.sdk.language",
                        Value::StringValue("python".into()),
                    ),
                    kv("process.pid", Value::IntValue(i64::from(*pid))),
                    kv("k8s.namespace.name", Value::StringValue(namespace.into())),
                    kv("k8s.pod.name", Value::StringValue(pod.into())),
                    kv("k8s.container.name", Value::StringValue(container.into())),
                ];
                identifying.extend(extra.iter().map(Attr::key_value));
                AgentDescription {
                    identifying_attributes: identifying,
                    non_identifying_attributes: Vec::new(),
                }
            }
            Description::Arbitrary {
                identifying,
                non_identifying,
            } => AgentDescription {
                identifying_attributes: identifying.iter().map(Attr::key_value).collect(),
                non_identifying_attributes: non_identifying.iter().map(Attr::key_value).collect(),
            },
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Status {
    Starting,
    Healthy,
    NoConnection,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Health {
    pub healthy: bool,
    pub status: Status,
    pub last_error: String,
    pub start_time: u64,
    pub components: Vec<(String, bool, String)>,
}

impl Health {
    fn build(&self) -> ComponentHealth {
        let status = match &self.status {
            Status::Starting => "Starting".to_owned(),
            Status::Healthy => "Healthy".to_owned(),
            Status::NoConnection => "NoConnectionToOpAMPServer".to_owned(),
            Status::Other(s) => s.clone(),
        };
        ComponentHealth {
            healthy: self.healthy,
            status,
            last_error: self.last_error.clone(),
            start_time_unix_nano: self.start_time,
            status_time_unix_nano: self.start_time,
            component_health_map: self
                .components
                .iter()
                .map(|(name, healthy, status)| {
                    let child = ComponentHealth {
                        healthy: *healthy,
                        status: status.clone(),
                        ..Default::default()
                    };
                    (name.clone(), child)
                })
                .collect(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Hash {
    /// The hash the server last offered this agent (the core harness knows it).
    Current,
    Empty,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct ConfigStatus {
    pub hash: Hash,
    /// 0 unset, 1 applied, 2 applying, 3 failed; anything else is out of range.
    pub status: i32,
    pub error: String,
}

/// How the sequence number relates to the agent's previous one.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Seq {
    Next,
    Same,
    Jump(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Msg {
    pub uid: Uid,
    pub seq: Seq,
    pub capabilities: u64,
    pub description: Option<Description>,
    pub health: Option<Health>,
    pub config_status: Option<ConfigStatus>,
    pub disconnect: bool,
}

impl Msg {
    /// The message, given the agent's previous sequence number and the current config hash.
    pub fn build(&self, previous_seq: u64, current_hash: &[u8]) -> AgentToServer {
        let sequence_num = match self.seq {
            Seq::Next => previous_seq.wrapping_add(1),
            Seq::Same => previous_seq,
            Seq::Jump(n) => previous_seq.wrapping_add(2 + u64::from(n)),
            Seq::Raw(n) => n,
        };
        AgentToServer {
            instance_uid: self.uid.bytes(),
            sequence_num,
            capabilities: self.capabilities,
            agent_description: self.description.as_ref().map(Description::build),
            health: self.health.as_ref().map(Health::build),
            remote_config_status: self.config_status.as_ref().map(|s| RemoteConfigStatus {
                last_remote_config_hash: match &s.hash {
                    Hash::Current => current_hash.to_vec(),
                    Hash::Empty => Vec::new(),
                    Hash::Raw(raw) => raw.clone(),
                },
                status: s.status,
                error_message: s.error.clone(),
            }),
            agent_disconnect: self.disconnect.then_some(AgentDisconnect {}),
            ..Default::default()
        }
    }
}
