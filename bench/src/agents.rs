//! The simulated agents: who each one is, the messages it sends, and the device table that
//! tells our server who they are.
//!
//! Agent `i` is an Odigos Python agent in pod `app-<w>-<i>` of Deployment `app-<w>` (the
//! agents are spread over [`WORKLOADS`] workloads), with its own 36-byte UUID-text uid (as
//! the Odigos agents send), its own device id (sent as `X-Odigos-DeviceId` on every
//! request, like an agent configured with that header) and its own pid.

use std::fmt::Write as _;

use odigos_opamp_proto::opamp::proto::{
    AgentCapabilities, AgentDescription, AgentToServer, AnyValue, ComponentHealth, KeyValue,
    any_value::Value,
};

/// The namespace of every simulated pod.
pub const NAMESPACE: &str = "bench";
/// The container name of every simulated pod.
pub const CONTAINER: &str = "app";
/// Agents are spread over this many Deployments, as a node runs pods of several workloads.
pub const WORKLOADS: usize = 50;
/// The header carrying the device id.
pub const DEVICE_ID_HEADER: &str = "x-odigos-deviceid";

/// Capabilities of the Odigos Python agent.
const CAPABILITIES: u64 = AgentCapabilities::ReportsStatus as u64
    | AgentCapabilities::AcceptsRemoteConfig as u64
    | AgentCapabilities::ReportsHealth as u64;

/// The identity of simulated agent number `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentId(pub usize);

impl AgentId {
    /// 36 bytes of UUID text, unique per index.
    pub fn uid(self) -> Vec<u8> {
        format!("0195e2a4-0000-7000-8000-{:012x}", self.0).into_bytes()
    }

    /// A UUID-shaped device id, unique per index.
    pub fn device_id(self) -> String {
        format!("8497ec75-0000-4000-8000-{:012x}", self.0)
    }

    pub fn workload(self) -> String {
        format!("app-{}", self.0 % WORKLOADS)
    }

    pub fn pod(self) -> String {
        format!("app-{}-{:06}", self.0 % WORKLOADS, self.0)
    }

    pub fn pid(self) -> i64 {
        1000 + i64::try_from(self.0).unwrap_or(0)
    }

    /// The first message: description (identifying attributes as the Odigos Python agent
    /// sends them) and `Starting` health.
    pub fn first_message(self, uid: &[u8]) -> AgentToServer {
        self.first_message_in(uid, NAMESPACE)
    }

    /// [`Self::first_message`] for a pod in `namespace`.
    pub fn first_message_in(self, uid: &[u8], namespace: &str) -> AgentToServer {
        first_message(
            uid,
            &Process {
                namespace,
                pod: &self.pod(),
                container: CONTAINER,
                pid: self.pid(),
            },
        )
    }
}

/// Where an agent runs, as it reports it.
#[derive(Clone, Copy, Debug)]
pub struct Process<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
    pub pid: i64,
}

/// The first message of an Odigos Python agent in `process`: description (identifying
/// attributes as the agent sends them) and `Starting` health.
pub fn first_message(uid: &[u8], process: &Process<'_>) -> AgentToServer {
    let uid_text = String::from_utf8_lossy(uid).into_owned();
    let description = AgentDescription {
        identifying_attributes: vec![
            string("service.instance.id", &uid_text),
            string("telemetry.sdk.language", "python"),
            int("process.pid", process.pid),
            string("k8s.namespace.name", process.namespace),
            string("k8s.pod.name", process.pod),
            string("k8s.container.name", process.container),
        ],
        non_identifying_attributes: vec![
            string("host.name", process.pod),
            string("os.type", "linux"),
        ],
    };
    AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num: 0,
        agent_description: Some(description),
        health: Some(ComponentHealth {
            healthy: false,
            status: "Starting".into(),
            last_error: "Python OpenTelemetry agent is starting".into(),
            ..Default::default()
        }),
        capabilities: CAPABILITIES,
        ..Default::default()
    }
}

/// The report an agent sends once it has started: healthy.
pub fn healthy_report(uid: &[u8], sequence_num: u64) -> AgentToServer {
    AgentToServer {
        health: Some(ComponentHealth {
            healthy: true,
            status: "Healthy".into(),
            start_time_unix_nano: 1_767_225_600_000_000_000,
            status_time_unix_nano: 1_767_225_601_000_000_000,
            ..Default::default()
        }),
        ..heartbeat(uid, sequence_num)
    }
}

/// A plain heartbeat: uid, sequence number and capabilities, nothing else (status
/// compression: nothing changed since the last message).
pub fn heartbeat(uid: &[u8], sequence_num: u64) -> AgentToServer {
    AgentToServer {
        instance_uid: uid.to_vec(),
        sequence_num,
        capabilities: CAPABILITIES,
        ..Default::default()
    }
}

/// Our server's device table for `agents` agents: one row per agent, so every agent is
/// resolved by its device id.
pub fn devices_yaml(agents: usize) -> String {
    let mut yaml = String::with_capacity(agents * 160);
    yaml.push_str("# Generated by `cargo xtask bench`: one row per simulated agent.\n");
    for index in 0..agents {
        let id = AgentId(index);
        // Writing into a String cannot fail.
        let _ = writeln!(
            yaml,
            "- {{deviceId: {}, namespace: {NAMESPACE}, pod: {}, container: {CONTAINER}, \
             workloadKind: Deployment, workloadName: {}}}",
            id.device_id(),
            id.pod(),
            id.workload()
        );
    }
    yaml
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_uuid_shaped() {
        let (a, b) = (AgentId(0), AgentId(9_999));
        assert_ne!(a.uid(), b.uid());
        assert_ne!(a.device_id(), b.device_id());
        assert_eq!(a.uid().len(), 36);
        assert_eq!(b.device_id().len(), 36);
    }

    #[test]
    fn device_table_has_one_row_per_agent() {
        let yaml = devices_yaml(3);
        assert_eq!(yaml.lines().filter(|l| l.starts_with("- ")).count(), 3);
        assert!(yaml.contains(&AgentId(2).device_id()));
        let table = odigos_opamp_server::identity::DeviceTable::from_yaml(&yaml)
            .expect("our server reads the generated table");
        assert_eq!(table.len(), 3);
    }
}
