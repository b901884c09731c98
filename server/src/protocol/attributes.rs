//! Reading agent description attributes, and turning any value into a string.

use base64::Engine as _;
use odigos_opamp_proto::opamp::proto::{AnyValue, KeyValue, any_value::Value};

/// Identifying attribute: namespace of the agent's pod.
pub const K8S_NAMESPACE: &str = "k8s.namespace.name";
/// Identifying attribute: the agent's pod name.
pub const K8S_POD: &str = "k8s.pod.name";
/// Identifying attribute: the agent's container name.
pub const K8S_CONTAINER: &str = "k8s.container.name";
/// Identifying attribute: the process id as seen by the agent.
pub const PROCESS_PID: &str = "process.pid";
/// Identifying attribute: the process id in the container's pid namespace (Odigos).
pub const PROCESS_VPID: &str = "process.vpid";
/// Identifying attribute: the SDK language.
pub const SDK_LANGUAGE: &str = "telemetry.sdk.language";

/// The value of the first attribute named `key`.
pub fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// A non-empty string attribute.
pub fn string<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match find(attributes, key)? {
        Value::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A non-negative integer attribute; a string of decimal digits is accepted too.
pub fn non_negative_int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match find(attributes, key)? {
        Value::IntValue(i) if *i >= 0 => Some(*i),
        Value::StringValue(s) => s.trim().parse::<i64>().ok().filter(|i| *i >= 0),
        // JavaScript clients (e.g. @elastic/opamp-client-node) send every number as a
        // double; a whole, non-negative one that fits is the same integer.
        Value::DoubleValue(d) if d.fract() == 0.0 && (0.0..=MAX_EXACT_DOUBLE).contains(d) => {
            Some(*d as i64)
        }
        _ => None,
    }
}

/// 2^53: above it, doubles no longer hold every integer.
const MAX_EXACT_DOUBLE: f64 = 9_007_199_254_740_992.0;

/// The process id: `process.pid`, else `process.vpid`.
pub fn pid(attributes: &[KeyValue]) -> Option<i64> {
    non_negative_int(attributes, PROCESS_PID).or_else(|| non_negative_int(attributes, PROCESS_VPID))
}

/// A value as text: scalars plainly (bytes as base64), arrays and maps as compact JSON.
pub fn stringify(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(other @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => to_json(other).to_string(),
    }
}

fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let any = |v: &Option<AnyValue>| {
        v.as_ref()
            .and_then(|a| a.value.as_ref())
            .map_or(J::Null, to_json)
    };
    match value {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::BytesValue(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(J::Null, to_json))
                .collect(),
        ),
        Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), any(&kv.value)))
                .collect(),
        ),
    }
}

/// A printable form of an instance uid: the text when it is printable UTF-8 (Odigos agents
/// send UUID text), else lowercase hex.
pub fn uid_display(uid: &[u8]) -> String {
    match std::str::from_utf8(uid) {
        Ok(text) if !text.is_empty() && text.chars().all(|c| c.is_ascii_graphic()) => {
            text.to_owned()
        }
        _ => hex::encode(uid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odigos_opamp_proto::opamp::proto::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    #[test]
    fn pid_prefers_process_pid_then_vpid_and_rejects_negatives() {
        assert_eq!(
            pid(&[
                kv(PROCESS_PID, Value::IntValue(7)),
                kv(PROCESS_VPID, Value::IntValue(1))
            ]),
            Some(7)
        );
        assert_eq!(pid(&[kv(PROCESS_VPID, Value::IntValue(1))]), Some(1));
        assert_eq!(
            pid(&[kv(PROCESS_PID, Value::StringValue("42".into()))]),
            Some(42)
        );
        assert_eq!(pid(&[kv(PROCESS_PID, Value::IntValue(-1))]), None);
        assert_eq!(pid(&[kv(PROCESS_PID, Value::BoolValue(true))]), None);
    }

    #[test]
    fn pid_accepts_whole_doubles_as_javascript_clients_send_them() {
        assert_eq!(
            pid(&[kv(PROCESS_PID, Value::DoubleValue(4242.0))]),
            Some(4242)
        );
        assert_eq!(pid(&[kv(PROCESS_PID, Value::DoubleValue(42.5))]), None);
        assert_eq!(pid(&[kv(PROCESS_PID, Value::DoubleValue(-3.0))]), None);
        assert_eq!(pid(&[kv(PROCESS_PID, Value::DoubleValue(f64::NAN))]), None);
        assert_eq!(pid(&[kv(PROCESS_PID, Value::DoubleValue(1e300))]), None);
    }

    #[test]
    fn stringify_keeps_every_kind_of_value() {
        let s = |v: Value| stringify(Some(&AnyValue { value: Some(v) }));
        assert_eq!(s(Value::StringValue("x".into())), "x");
        assert_eq!(s(Value::BoolValue(true)), "true");
        assert_eq!(s(Value::IntValue(-3)), "-3");
        assert_eq!(s(Value::DoubleValue(1.5)), "1.5");
        assert_eq!(s(Value::BytesValue(vec![1, 2])), "AQI=");
        let array = Value::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(Value::IntValue(1)),
                },
                AnyValue { value: None },
            ],
        });
        assert_eq!(s(array), "[1,null]");
        let map = Value::KvlistValue(KeyValueList {
            values: vec![kv("a", Value::StringValue("b".into()))],
        });
        assert_eq!(s(map), r#"{"a":"b"}"#);
        assert_eq!(stringify(None), "");
    }

    #[test]
    fn uids_display_as_text_or_hex() {
        assert_eq!(uid_display(b"0192f1e4-uuid"), "0192f1e4-uuid");
        assert_eq!(uid_display(&[0, 255]), "00ff");
    }
}
