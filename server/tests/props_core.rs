//! Properties of the protocol core, for any input: the config hash is deterministic and
//! order-defined, the SDK section keeps its documented order, sequence gaps ask for the full
//! state once, and status-compressed messages merge without losing anything.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use odigos_opamp_proto::opamp::proto::{
    AgentConfigFile, AgentConfigMap, AgentDescription, AgentToServer, AnyValue, ComponentHealth,
    KeyValue, RemoteConfigStatus, ServerToAgentFlags, any_value::Value,
};
use odigos_opamp_server::config_source::{ContainerConfig, LibraryConfig, WorkloadConfig};
use odigos_opamp_server::identity::{ResolvedIdentity, Workload, WorkloadKind};
use odigos_opamp_server::protocol::remote_config::{
    self, CONTAINER_SECTION, JSON, LIBRARIES_SECTION, SDK_SECTION,
};
use odigos_opamp_server::protocol::{self, AgentState, Context, Effect};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const KINDS: [WorkloadKind; 8] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::Job,
    WorkloadKind::CronJob,
    WorkloadKind::Rollout,
    WorkloadKind::StaticPod,
    WorkloadKind::Pod,
];

fn identity() -> impl Strategy<Value = ResolvedIdentity> {
    (
        "[a-z0-9-]{1,20}",
        "[a-z0-9.-]{1,40}",
        prop_oneof!["app", "sidecar", "[a-z0-9-]{1,20}"],
        0..KINDS.len(),
        "\\PC{0,30}",
    )
        .prop_map(|(namespace, pod, container, kind, name)| ResolvedIdentity {
            namespace,
            pod_name: pod,
            pod_uid: None,
            container,
            workload: Workload {
                kind: KINDS[kind],
                name,
            },
        })
}

/// A `spec.containers[]` entry for `app` or `sidecar`: with or without `traces`, and with a
/// field of any name and value (Odigos adds fields over time).
fn container_entry() -> impl Strategy<Value = ContainerConfig> {
    (
        prop_oneof!["app", "sidecar"],
        any::<bool>(),
        "[a-zA-Z]{1,12}",
        "\\PC{0,12}",
    )
        .prop_map(|(container, traces, key, value)| {
            let mut entry = serde_json::json!({"containerName": container, "agentEnabled": true});
            entry[key] = serde_json::Value::String(value);
            if traces {
                entry["traces"] = serde_json::json!({"headSampling": {"noisyOperations": []}});
            } else {
                entry.as_object_mut().unwrap().remove("traces");
            }
            ContainerConfig::from_json(&entry).expect("an object with a name")
        })
}

fn config() -> impl Strategy<Value = WorkloadConfig> {
    (
        proptest::option::of("\\PC{0,20}"),
        proptest::collection::vec(("\\PC{0,20}", proptest::option::of(any::<bool>())), 0..6),
        proptest::collection::vec(container_entry(), 0..3),
    )
        .prop_map(|(service_name, libraries, containers)| {
            let mut config = WorkloadConfig {
                service_name,
                libraries: libraries
                    .into_iter()
                    .map(|(name, traces_enabled)| LibraryConfig {
                        name,
                        traces_enabled,
                    })
                    .collect(),
                ..WorkloadConfig::default()
            };
            for entry in containers {
                config.add_container(entry);
            }
            config
        })
}

fn sdk_json(config: &odigos_opamp_proto::opamp::proto::AgentRemoteConfig) -> serde_json::Value {
    let map = &config.config.as_ref().expect("a config map").config_map;
    serde_json::from_slice(&map[SDK_SECTION].body).expect("the SDK section is JSON")
}

proptest! {
    /// The same inputs give the same bytes and hash; the hash is SHA-256 over the bodies in
    /// key order, whatever order the map was filled in.
    #[test]
    fn hash_is_deterministic_and_defined_by_key_order(
        node in "[a-z0-9-]{1,20}",
        id in identity(),
        cfg in config(),
        entries in proptest::collection::vec(("\\PC{0,8}", proptest::collection::vec(any::<u8>(), 0..32), "\\PC{0,8}"), 0..6),
    ) {
        let first = remote_config::build(&node, &id, &cfg);
        let second = remote_config::build(&node, &id, &cfg);
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(&first.config_hash, &remote_config::hash(first.config.as_ref().unwrap()));

        let forward: BTreeMap<String, AgentConfigFile> = entries
            .iter()
            .map(|(k, body, ct)| (k.clone(), AgentConfigFile { body: body.clone(), content_type: ct.clone() }))
            .collect();
        let backward: BTreeMap<String, AgentConfigFile> = entries
            .iter()
            .rev()
            .map(|(k, body, _)| (k.clone(), AgentConfigFile { body: body.clone(), content_type: String::new() }))
            .collect();
        let mut expected = Sha256::new();
        for file in forward.values() {
            expected.update(&file.body);
        }
        let hash = remote_config::hash(&AgentConfigMap { config_map: forward.clone() });
        prop_assert_eq!(&hash, &expected.finalize().to_vec());
        // Content types are not hashed; the same keys keep the later duplicate either way,
        // so compare only when keys are unique.
        let unique = entries.iter().map(|e| &e.0).collect::<std::collections::BTreeSet<_>>().len() == entries.len();
        if unique {
            prop_assert_eq!(hash, remote_config::hash(&AgentConfigMap { config_map: backward }));
        }
    }

    /// A config change changes the hash (the SDK or libraries body changes with it).
    #[test]
    fn a_different_config_has_a_different_hash(id in identity(), a in config(), b in config()) {
        let ca = remote_config::build("n", &id, &a);
        let cb = remote_config::build("n", &id, &b);
        let bodies = |c: &odigos_opamp_proto::opamp::proto::AgentRemoteConfig| {
            c.config.as_ref().unwrap().config_map.values().map(|f| f.body.clone()).collect::<Vec<_>>()
        };
        prop_assert_eq!(bodies(&ca) == bodies(&cb), ca.config_hash == cb.config_hash);
    }

    /// The SDK section lists the six resource attributes in the documented order, with the
    /// identity's values; libraries keep the InstrumentationConfig's order; container_config
    /// is the container's entry byte for byte (or the traces-on default), and the SDK trace
    /// switch agrees with it; the three sections are JSON and nothing else is in the map.
    #[test]
    fn config_sections_keep_the_documented_order(node in "[a-z0-9-]{1,20}", id in identity(), cfg in config()) {
        let built = remote_config::build(&node, &id, &cfg);
        let map = &built.config.as_ref().unwrap().config_map;
        prop_assert_eq!(
            map.keys().cloned().collect::<Vec<_>>(),
            vec![LIBRARIES_SECTION.to_owned(), SDK_SECTION.to_owned(), CONTAINER_SECTION.to_owned()]
        );
        prop_assert!(map.values().all(|f| f.content_type == JSON));

        let sdk = sdk_json(&built);
        let pairs: Vec<(String, String)> = sdk["remoteResourceAttributes"]
            .as_array()
            .expect("an array")
            .iter()
            .map(|kv| (kv["key"].as_str().unwrap().to_owned(), kv["value"].as_str().unwrap().to_owned()))
            .collect();
        let service = cfg.service_name.clone().unwrap_or_else(|| id.workload.name.clone());
        let expected = vec![
            ("k8s.node.name".to_owned(), node.clone()),
            ("k8s.namespace.name".to_owned(), id.namespace.clone()),
            ("service.name".to_owned(), service),
            ("k8s.pod.name".to_owned(), id.pod_name.clone()),
            ("k8s.container.name".to_owned(), id.container.clone()),
            (id.workload.kind.resource_attribute().to_owned(), id.workload.name.clone()),
        ];
        prop_assert_eq!(pairs, expected);
        let entry = cfg
            .containers
            .get(&id.container)
            .cloned()
            .unwrap_or_else(|| remote_config::default_container_config(&id.container));
        prop_assert_eq!(&map[CONTAINER_SECTION].body[..], entry.body());
        prop_assert_eq!(&sdk["traceSignal"]["enabled"], &serde_json::Value::Bool(entry.traces_enabled()));

        let libraries: serde_json::Value = serde_json::from_slice(&map[LIBRARIES_SECTION].body).unwrap();
        let names: Vec<&str> = libraries.as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
        prop_assert_eq!(names, cfg.libraries.iter().map(|l| l.name.as_str()).collect::<Vec<_>>());
    }
}

// ---- the exchange with one agent ----

fn ctx(step: u64) -> Context<'static> {
    Context {
        node_name: "prop-node",
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + step),
        heartbeat_interval: Duration::from_secs(30),
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn description(extra: &str) -> AgentDescription {
    AgentDescription {
        identifying_attributes: vec![
            kv(
                "telemetry.sdk.language",
                Value::StringValue("python".into()),
            ),
            kv("process.pid", Value::IntValue(7)),
            kv("service.version", Value::StringValue(extra.into())),
        ],
        non_identifying_attributes: Vec::new(),
    }
}

const UID: &[u8] = b"0192f1e4-7c3a-7b8e-9d2f-3a4b5c6d7e8f";

fn registered(first_seq: u64) -> AgentState {
    let msg = AgentToServer {
        instance_uid: UID.to_vec(),
        sequence_num: first_seq,
        agent_description: Some(description("1.0")),
        ..Default::default()
    };
    let id = ResolvedIdentity {
        namespace: "shop".into(),
        pod_name: "coupon-abc".into(),
        pod_uid: None,
        container: "app".into(),
        workload: Workload {
            kind: WorkloadKind::Deployment,
            name: "coupon".into(),
        },
    };
    let (_, state) = protocol::handle_new(
        msg,
        id,
        Default::default(),
        &std::sync::Arc::default(),
        &ctx(0),
    );
    state.expect("a new agent's state")
}

#[derive(Clone, Debug)]
enum SeqStep {
    Next,
    Same,
    Jump(u64),
    Raw(u64),
}

fn seq_step() -> impl Strategy<Value = SeqStep> {
    prop_oneof![
        4 => Just(SeqStep::Next),
        1 => Just(SeqStep::Same),
        1 => (2u64..1000).prop_map(SeqStep::Jump),
        1 => any::<u64>().prop_map(SeqStep::Raw),
    ]
}

/// One status-compressed message: each sub-message present or left out.
#[derive(Clone, Debug)]
struct Report {
    description: Option<String>,
    health: Option<(bool, String)>,
    hash: Option<Vec<u8>>,
}

fn report() -> impl Strategy<Value = Report> {
    (
        proptest::option::of("[0-9.]{1,5}"),
        proptest::option::of((
            any::<bool>(),
            prop_oneof![
                Just("Healthy".to_owned()),
                Just("Starting".to_owned()),
                "[A-Za-z]{0,12}"
            ],
        )),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..33)),
    )
        .prop_map(|(description, health, hash)| Report {
            description,
            health,
            hash,
        })
}

proptest! {
    /// ReportFullState exactly when the number is neither the previous one nor the next,
    /// so never on the message that follows a gap with the next number.
    #[test]
    fn sequence_gaps_ask_for_the_full_state_once(first in any::<u64>(), steps in proptest::collection::vec(seq_step(), 1..60)) {
        let mut state = registered(first);
        let config = std::sync::Arc::new(WorkloadConfig::default());
        let mut previous_asked = false;
        for (i, step) in steps.into_iter().enumerate() {
            let last = state.last_sequence_num;
            let seq = match step {
                SeqStep::Next => last.wrapping_add(1),
                SeqStep::Same => last,
                SeqStep::Jump(n) => last.wrapping_add(n),
                SeqStep::Raw(n) => n,
            };
            let mut msg = AgentToServer { instance_uid: UID.to_vec(), sequence_num: seq, ..Default::default() };
            let outcome = protocol::handle_known(&mut msg, &mut state, &config, &ctx(i as u64 + 1));
            let asked = outcome.response.flags & ServerToAgentFlags::ReportFullState as u64 != 0;
            let gap = seq != last.wrapping_add(1) && seq != last;
            prop_assert_eq!(asked, gap, "seq {} after {}", seq, last);
            if previous_asked && seq == last.wrapping_add(1) {
                prop_assert!(!asked, "asked twice for consecutive numbers");
            }
            prop_assert_eq!(state.last_sequence_num, seq);
            previous_asked = asked;
        }
    }

    /// Whatever each message leaves out, the state holds the latest value reported for
    /// every sub-message, and the resource is written exactly when description or health
    /// changed.
    #[test]
    fn status_compressed_messages_merge_without_loss(reports in proptest::collection::vec(report(), 1..40)) {
        let mut state = registered(0);
        let config = std::sync::Arc::new(WorkloadConfig::default());
        let mut want_description = description("1.0");
        let mut want_health: Option<ComponentHealth> = None;
        let mut want_status: Option<RemoteConfigStatus> = None;
        for (i, report) in reports.into_iter().enumerate() {
            let health = report.health.map(|(healthy, status)| ComponentHealth { healthy, status, ..Default::default() });
            let status = report.hash.map(|hash| RemoteConfigStatus { last_remote_config_hash: hash, ..Default::default() });
            let mut msg = AgentToServer {
                instance_uid: UID.to_vec(),
                sequence_num: i as u64 + 1,
                agent_description: report.description.as_deref().map(description),
                health: health.clone(),
                remote_config_status: status.clone(),
                ..Default::default()
            };
            let before = (state.description.clone(), state.health.clone());
            let outcome = protocol::handle_known(&mut msg, &mut state, &config, &ctx(i as u64 + 1));
            if let Some(d) = report.description.as_deref().map(description) {
                want_description = d;
            }
            if health.is_some() {
                want_health = health;
            }
            if status.is_some() {
                want_status = status;
            }
            prop_assert_eq!(&state.description.decode(), &want_description);
            prop_assert_eq!(&state.health, &want_health);
            prop_assert_eq!(&state.remote_config_status, &want_status);
            let changed = before != (state.description.clone(), state.health.clone());
            let writes = outcome.effects.iter().filter(|e| matches!(e, Effect::WriteInstance(_))).count();
            prop_assert_eq!(writes, usize::from(changed));
        }
    }
}

/// Found by the `protocol_core` fuzzer: a description with a NaN attribute is not equal to
/// itself, so every resend of it counted as a change and rewrote the resource.
#[test]
fn resending_a_description_with_a_nan_attribute_writes_nothing() {
    let mut state = registered(0);
    let mut nan = description("1.0");
    nan.identifying_attributes
        .push(kv("sampling.ratio", Value::DoubleValue(f64::NAN)));
    let config = std::sync::Arc::new(WorkloadConfig::default());
    let send = |state: &mut AgentState, seq: u64| {
        let mut msg = AgentToServer {
            instance_uid: UID.to_vec(),
            sequence_num: seq,
            agent_description: Some(nan.clone()),
            ..Default::default()
        };
        protocol::handle_known(&mut msg, state, &config, &ctx(seq))
            .effects
            .len()
    };
    assert_eq!(
        send(&mut state, 1),
        1,
        "the first NaN description is a change"
    );
    assert_eq!(send(&mut state, 2), 0, "the same one again is not");
}
