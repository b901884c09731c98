//! Structural comparison of proto3 JSON from different printers. Printers
//! agree on structure but not on spelling: key order, whitespace, escapes and
//! number formatting (`0` vs `0.0`, `1e-07` vs `1e-7`) differ, so numbers
//! compare by value and objects by key.

use serde_json::Value;

/// Where `actual` first differs from `expected`, e.g.
/// `$.health.status: "Starting" expected, "Healthy" found`; `None` when equal.
pub fn first_difference(expected: &Value, actual: &Value) -> Option<String> {
    difference_at("$", expected, actual)
}

fn difference_at(path: &str, expected: &Value, actual: &Value) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            if let Some(key) = e.keys().find(|k| !a.contains_key(*k)) {
                return Some(format!("{path}.{key}: expected, missing"));
            }
            if let Some(key) = a.keys().find(|k| !e.contains_key(*k)) {
                return Some(format!(
                    "{path}.{key}: unexpected, {} found",
                    a[key.as_str()]
                ));
            }
            e.iter().find_map(|(key, value)| {
                difference_at(&format!("{path}.{key}"), value, &a[key.as_str()])
            })
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Some(format!(
                    "{path}: {} element(s) expected, {} found",
                    e.len(),
                    a.len()
                ));
            }
            e.iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (e, a))| difference_at(&format!("{path}[{i}]"), e, a))
        }
        (Value::Number(e), Value::Number(a)) if same_number(e, a) => None,
        _ if expected == actual => None,
        _ => Some(format!("{path}: {expected} expected, {actual} found")),
    }
}

fn same_number(e: &serde_json::Number, a: &serde_json::Number) -> bool {
    match (e.as_i64(), a.as_i64(), e.as_u64(), a.as_u64()) {
        (Some(e), Some(a), _, _) => e == a,
        (_, _, Some(e), Some(a)) => e == a,
        _ => e.as_f64() == a.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spelling_of_numbers_does_not_matter_but_values_do() {
        assert_eq!(
            first_difference(
                &json!({"d": 0, "e": 1e-7}),
                &json!({"d": 0.0, "e": 0.0000001})
            ),
            None
        );
        assert_eq!(
            first_difference(
                &json!({"a": [1, {"b": "x"}]}),
                &json!({"a": [1, {"b": "y"}]})
            )
            .as_deref(),
            Some(r#"$.a[1].b: "x" expected, "y" found"#)
        );
        assert_eq!(
            first_difference(&json!({"a": 1}), &json!({})).as_deref(),
            Some("$.a: expected, missing")
        );
        assert_eq!(
            first_difference(&json!({}), &json!({"z": true})).as_deref(),
            Some("$.z: unexpected, true found")
        );
        assert!(
            first_difference(&json!("1"), &json!(1)).is_some(),
            "an int64 string is not a number"
        );
    }
}
