//! The protocol core fed arbitrary message sequences, with a map of agent states standing
//! in for the registry. Every step checks the invariants of docs/protocol.md §4 that must hold
//! whatever the agents send; a broken one panics, which the fuzzer reports as a crash.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerToAgent, ServerToAgentFlags};
use odigos_opamp_server::config_source::{
    ContainerConfig, LibraryConfig, WorkloadConfig, WorkloadKey,
};
use odigos_opamp_server::identity::{DeviceTable, NonUtf8Header, StaticTableIdentity};
use odigos_opamp_server::protocol::{
    self, Admission, AgentState, Context, Effect, Outcome, SERVER_CAPABILITIES, instance,
    remote_config,
};
use prost::Message;

use crate::model::{DEVICE_IDS, DEVICES, Msg};

#[derive(Arbitrary, Debug)]
pub enum Device {
    Row(u8),
    Garbage(String),
    NonUtf8,
}

#[derive(Arbitrary, Debug)]
pub struct Config {
    pub service_name: Option<String>,
    pub libraries: Vec<(String, Option<bool>)>,
    /// `spec.containers[]` entries: container (one of the table's, or any), traces on or
    /// off, and one field of any name and value.
    pub containers: Vec<(ContainerName, bool, String, String)>,
}

#[derive(Arbitrary, Debug)]
pub enum ContainerName {
    App,
    Cart,
    Other(String),
}

#[derive(Arbitrary, Debug)]
pub enum Step {
    Message {
        msg: Box<Msg>,
        device: Option<Device>,
    },
    /// Bytes decoded as `AgentToServer`; fed to the core when they decode.
    Raw(Vec<u8>),
    /// The liveness sweeper drops pool agent `n`.
    Expire(u8),
    /// A workload's `InstrumentationConfig` changes.
    Config { workload: u8, config: Config },
}

/// The registry stand-in: states by uid, and what the harness remembers of each uid.
struct World {
    identity: StaticTableIdentity,
    agents: HashMap<Vec<u8>, AgentState>,
    last_seq: HashMap<Vec<u8>, u64>,
    /// Whether the previous answer to this uid asked for the full state, and for which seq.
    asked_full: HashMap<Vec<u8>, u64>,
    configs: HashMap<WorkloadKey, Arc<WorkloadConfig>>,
    workloads: Vec<WorkloadKey>,
    clock: SystemTime,
}

pub fn run(steps: Vec<Step>) {
    let table = DeviceTable::from_yaml(DEVICES).expect("fuzz device table");
    let mut world = World {
        identity: StaticTableIdentity::new(table).trust_self_reported(true),
        agents: HashMap::new(),
        last_seq: HashMap::new(),
        asked_full: HashMap::new(),
        configs: HashMap::new(),
        workloads: Vec::new(),
        clock: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    for step in steps.into_iter().take(64) {
        world.clock += Duration::from_millis(1500);
        match step {
            Step::Message { msg, device } => {
                let uid = msg.uid.bytes();
                let previous = world.last_seq.get(&uid).copied().unwrap_or(0);
                let hash = world
                    .agents
                    .get(&uid)
                    .map(|s| s.offered.hash.clone())
                    .unwrap_or_default();
                let message = msg.build(previous, &hash);
                world.message(message, device);
            }
            Step::Raw(bytes) => {
                if let Ok(message) = AgentToServer::decode(bytes.as_slice()) {
                    world.message(message, None);
                }
            }
            Step::Expire(n) => world.expire(n),
            Step::Config { workload, config } => world.config(workload, config),
        }
    }
}

impl World {
    fn message(&mut self, msg: AgentToServer, device: Option<Device>) {
        let uid = msg.instance_uid.clone();
        let seq = msg.sequence_num;
        let known = self.agents.contains_key(&uid);
        let ctx = Context {
            node_name: "fuzz-node",
            now: self.clock,
            heartbeat_interval: Duration::from_secs(30),
        };
        let outcome = match protocol::admit(&msg, known) {
            Admission::Respond(outcome) => {
                assert!(outcome.effects.is_empty() && !outcome.forget);
                *outcome
            }
            Admission::Known => self.known(msg, &ctx),
            Admission::Resolve => self.new_agent(msg, device, &ctx),
        };
        check_reply(&outcome, &uid);
        if uid.is_empty() || uid.len() > protocol::MAX_UID_LEN {
            assert!(!outcome.answer.is_ok(), "invalid uid accepted");
            assert!(!self.agents.contains_key(&uid), "state for an invalid uid");
        }
        let full = outcome.response.flags & ServerToAgentFlags::ReportFullState as u64 != 0;
        if known && full {
            self.asked_full.insert(uid.clone(), seq);
        } else {
            self.asked_full.remove(&uid);
        }
        self.last_seq.insert(uid, seq);
    }

    fn known(&mut self, mut msg: AgentToServer, ctx: &Context<'_>) -> Outcome {
        let uid = msg.instance_uid.clone();
        let before = self.agents.get(&uid).expect("known agent").clone();
        let config = self.config_of(&before.workload_key);
        let carried = (
            msg.agent_description.clone(),
            msg.health.clone(),
            msg.remote_config_status.clone(),
        );
        let seq = msg.sequence_num;
        let disconnect = msg.agent_disconnect.is_some();
        let state = self.agents.get_mut(&uid).expect("known agent");
        let outcome = protocol::handle_known(&mut msg, state, &config, ctx);

        assert!(
            outcome.answer.is_ok(),
            "a known agent is always answered 200"
        );
        assert_eq!(state.last_sequence_num, seq);
        // Status compression: a sub-message left out keeps its stored value.
        // Compared encoded: a NaN attribute is not equal to itself.
        let expected = carried.0.map_or_else(
            || before.description.encoded().to_vec(),
            |d| d.encode_to_vec(),
        );
        assert_eq!(state.description.encoded(), &expected[..]);
        assert_eq!(state.health, carried.1.or_else(|| before.health.clone()));
        assert_eq!(
            state.remote_config_status,
            carried.2.or_else(|| before.remote_config_status.clone())
        );
        // Identity, pid and language never change after registration.
        assert_eq!(
            (&state.identity, state.pid, &state.language),
            (&before.identity, before.pid, &before.language)
        );

        let expected_gap =
            seq != before.last_sequence_num.wrapping_add(1) && seq != before.last_sequence_num;
        let full = outcome.response.flags & ServerToAgentFlags::ReportFullState as u64 != 0;
        assert_eq!(full, expected_gap, "ReportFullState exactly on a gap");
        if self.asked_full.get(&uid) == Some(&before.last_sequence_num) {
            assert!(
                !(full && seq == before.last_sequence_num.wrapping_add(1)),
                "ReportFullState twice for consecutive sequence numbers"
            );
        }

        if let Some(config) = &outcome.response.remote_config {
            let map = config.config.as_ref().expect("a config map");
            assert_eq!(config.config_hash, remote_config::hash(map));
            assert_eq!(config.config_hash, state.offered.hash);
            assert_eq!(state.last_sent_hash.as_ref(), Some(&config.config_hash));
        }
        // No resend loop: an agent that reports our current hash is not sent it again.
        if state.reported_hash() == Some(state.offered.hash.as_slice()) {
            assert!(outcome.response.remote_config.is_none(), "config resent");
        }

        assert_eq!(outcome.forget, disconnect, "forget exactly on disconnect");
        let key = instance::instance_key(state);
        for effect in &outcome.effects {
            match effect {
                Effect::WriteInstance(record) => {
                    assert_eq!(record.key, key);
                    check_name(&record.name);
                }
                Effect::DeleteInstance(deleted) => {
                    assert!(disconnect, "delete without disconnect");
                    assert_eq!(*deleted, key);
                }
            }
        }
        let changed = state.description != before.description || state.health != before.health;
        if !disconnect {
            assert_eq!(
                !outcome.effects.is_empty(),
                changed,
                "writes exactly on change"
            );
        }
        if disconnect {
            self.agents.remove(&uid);
        }
        outcome
    }

    fn new_agent(
        &mut self,
        msg: AgentToServer,
        device: Option<Device>,
        ctx: &Context<'_>,
    ) -> Outcome {
        let header = device.map(|d| match d {
            Device::Row(i) => Ok(DEVICE_IDS[usize::from(i) % DEVICE_IDS.len()].to_owned()),
            Device::Garbage(s) => Ok(s),
            Device::NonUtf8 => Err(NonUtf8Header),
        });
        let request = protocol::identity_request(&msg, header, Default::default());
        let identity = match self.identity.lookup(&request) {
            Ok(identity) => identity,
            Err(error) => {
                let outcome = Outcome::identity_failure(msg.instance_uid, &error);
                assert!(!outcome.answer.is_ok());
                return outcome;
            }
        };
        let key = WorkloadKey {
            namespace: identity.namespace.clone(),
            workload: identity.workload.clone(),
        };
        if !self.workloads.contains(&key) && self.workloads.len() < 8 {
            self.workloads.push(key.clone());
        }
        let config = self.config_of(&key);
        let uid = msg.instance_uid.clone();
        let (outcome, state) =
            protocol::handle_new(msg, identity, Default::default(), &config, ctx);
        let state = state.expect("admitted messages carry pid and language");
        assert!(outcome.answer.is_ok());
        let sent = outcome
            .response
            .remote_config
            .as_ref()
            .expect("full config");
        assert_eq!(state.last_sent_hash.as_ref(), Some(&sent.config_hash));
        assert_eq!(state.offered.hash, sent.config_hash);
        assert!(matches!(
            outcome.effects.as_slice(),
            [Effect::WriteInstance(record)] if record.key == instance::instance_key(&state)
        ));
        if let [Effect::WriteInstance(record)] = outcome.effects.as_slice() {
            check_name(&record.name);
        }
        self.agents.insert(uid, state);
        outcome
    }

    fn expire(&mut self, n: u8) {
        let uid = crate::model::Uid::Pool(n).bytes();
        let Some(state) = self.agents.remove(&uid) else {
            return;
        };
        let effects = protocol::expire(&state);
        let lost = state
            .health
            .as_ref()
            .is_some_and(|h| h.status == protocol::NO_CONNECTION_STATUS);
        assert_eq!(
            effects.is_empty(),
            lost,
            "stale resources deleted unless lost server"
        );
    }

    fn config(&mut self, workload: u8, config: Config) {
        let Some(key) = self.workloads.get(usize::from(workload) % 8).cloned() else {
            return;
        };
        let mut workload = WorkloadConfig {
            service_name: config.service_name,
            libraries: config
                .libraries
                .into_iter()
                .take(16)
                .map(|(name, traces_enabled)| LibraryConfig {
                    name,
                    traces_enabled,
                })
                .collect(),
            ..WorkloadConfig::default()
        };
        for (container, traces, field, value) in config.containers.into_iter().take(4) {
            let name = match container {
                ContainerName::App => "app".to_owned(),
                ContainerName::Cart => "cart".to_owned(),
                ContainerName::Other(name) => name,
            };
            let mut entry = serde_json::json!({ field: value });
            entry["containerName"] = name.into();
            if traces {
                entry["traces"] = serde_json::json!({});
            }
            // Entries without a usable containerName are skipped, as the watch skips them.
            if let Ok(entry) = ContainerConfig::from_json(&entry) {
                workload.add_container(entry);
            }
        }
        self.configs.insert(key, Arc::new(workload));
    }

    fn config_of(&self, key: &WorkloadKey) -> Arc<WorkloadConfig> {
        self.configs.get(key).cloned().unwrap_or_default()
    }
}

/// What holds for every reply: the uid echoed, our capabilities, an error exactly when not
/// 200, and a body that encodes and decodes to itself.
fn check_reply(outcome: &Outcome, uid: &[u8]) {
    let response = &outcome.response;
    assert_eq!(response.instance_uid, uid, "uid echoed byte for byte");
    assert_eq!(response.capabilities, SERVER_CAPABILITIES);
    assert_eq!(
        response.error_response.is_some(),
        !outcome.answer.is_ok(),
        "error_response exactly on errors: {outcome:?}"
    );
    let bytes = response.encode_to_vec();
    let back = ServerToAgent::decode(bytes.as_slice()).expect("our reply decodes");
    assert_eq!(back, **response);
}

/// A resource name Kubernetes accepts: a DNS subdomain of at most 253 characters.
fn check_name(name: &str) {
    assert!(
        !name.is_empty() && name.len() <= 253,
        "name length: {name:?}"
    );
    assert!(
        name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        }),
        "not a DNS subdomain: {name:?}"
    );
}
