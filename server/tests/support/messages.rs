//! Agent messages shaped like the ones real agents send (facts from the Odigos Python agent,
//! opamp-go and the Elastic Node client), shared by the test suites and the examples.
#![allow(dead_code)]

use odigos_opamp_proto::opamp::proto::{
    AgentCapabilities, AgentDescription, AgentDisconnect, AgentToServer, AnyValue, ComponentHealth,
    KeyValue, RemoteConfigStatus, any_value::Value,
};

/// A 36-byte UUID text uid, as the Odigos Python and Node agents send.
pub const PY_UID: &[u8] = b"0192f1e4-7c3a-7b8e-9d2f-3a4b5c6d7e8f";
/// A 16-byte binary uid, as opamp-go and the Elastic client send.
pub const BIN_UID: [u8; 16] = [
    0x01, 0x92, 0xf1, 0xe4, 0x7c, 0x3a, 0x7b, 0x8e, 0x9d, 0x2f, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f,
];
/// The device id of the test device table's first row.
pub const DEVICE_ID: &str = "8497ec75-8928-4e80-90e0-4f29642a0fea";

/// The device table the suites use.
pub const DEVICES_YAML: &str = "
- deviceId: 8497ec75-8928-4e80-90e0-4f29642a0fea
  namespace: shop
  pod: coupon-7d9f8b6c5d-x2x9z
  container: app
  workloadKind: Deployment
  workloadName: coupon
- namespace: shop
  pod: cart-0
  container: cart
  workloadKind: StatefulSet
  workloadName: cart
";

pub fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
    }
}

pub fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
    }
}

/// The Odigos Python agent's description: uid text, language, pid and k8s attributes.
pub fn python_description(uid: &[u8], pod: &str, container: &str) -> AgentDescription {
    AgentDescription {
        identifying_attributes: vec![
            string(
                "service.instance.id",
                std::str::from_utf8(uid).unwrap_or("binary"),
            ),
            string("telemetry.sdk.language", "python"),
            int("process.pid", 4242),
            string("k8s.namespace.name", "shop"),
            string("k8s.container.name", container),
            string("k8s.pod.name", pod),
        ],
        non_identifying_attributes: vec![string("host.name", "coupon-7d9f8b6c5d-x2x9z")],
    }
}

/// Health as the Python agent reports it.
pub fn health(healthy: bool, status: &str, last_error: &str) -> ComponentHealth {
    ComponentHealth {
        healthy,
        status: status.into(),
        last_error: last_error.into(),
        ..Default::default()
    }
}

/// The Python agent's first message: description plus `Starting` health.
pub fn first_message(uid: &[u8], seq: u64) -> AgentToServer {
    AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: seq,
        agent_description: Some(python_description(uid, "coupon-7d9f8b6c5d-x2x9z", "app")),
        health: Some(health(
            false,
            "Starting",
            "Python OpenTelemetry agent is starting",
        )),
        capabilities: AgentCapabilities::ReportsStatus as u64
            | AgentCapabilities::AcceptsRemoteConfig as u64,
        ..Default::default()
    }
}

/// A plain heartbeat: uid, sequence number, capabilities, nothing else.
pub fn heartbeat(uid: &[u8], seq: u64) -> AgentToServer {
    AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: seq,
        capabilities: AgentCapabilities::ReportsStatus as u64
            | AgentCapabilities::AcceptsRemoteConfig as u64,
        ..Default::default()
    }
}

/// The Python agent's poll: heartbeat plus `remote_config_status` with only the hash (UNSET).
pub fn python_poll(uid: &[u8], seq: u64, hash: &[u8]) -> AgentToServer {
    AgentToServer {
        remote_config_status: Some(RemoteConfigStatus {
            last_remote_config_hash: hash.to_vec(),
            ..Default::default()
        }),
        ..heartbeat(uid, seq)
    }
}

/// The Python agent's exit: disconnect plus `ProcessTerminated` health.
pub fn disconnect(uid: &[u8], seq: u64, health_report: Option<ComponentHealth>) -> AgentToServer {
    AgentToServer {
        agent_disconnect: Some(AgentDisconnect {}),
        health: health_report,
        ..heartbeat(uid, seq)
    }
}
