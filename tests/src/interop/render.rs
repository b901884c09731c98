//! Exchanges and server views as snapshot JSON: readable (bytes fields as
//! text or hex instead of base64) and deterministic (times, and where a
//! client makes them random, uids and sequence numbers, replaced by
//! placeholders after the tests checked them).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::InteropError;
use super::tap::Exchange;
use crate::vectors;

pub const AGENT_TO_SERVER: &str = "opamp.proto.AgentToServer";
pub const SERVER_TO_AGENT: &str = "opamp.proto.ServerToAgent";

/// Headers worth pinning: what the server reads, and what clients check.
const REQUEST_HEADERS: [&str; 4] = [
    "content-type",
    "content-encoding",
    "accept-encoding",
    "x-odigos-deviceid",
];
const RESPONSE_HEADERS: [&str; 3] = ["content-type", "content-encoding", "retry-after"];

/// Bytes fields that hold identifiers: UTF-8 text when printable, else hex.
const UID_FIELDS: [&str; 2] = ["instanceUid", "newInstanceUid"];
/// Bytes fields that hold hashes: hex.
const HASH_FIELDS: [&str; 3] = ["configHash", "lastRemoteConfigHash", "hash"];

/// Wire bytes of `type_name` as proto3 JSON with readable bytes fields.
pub fn readable_message(type_name: &str, wire: &[u8]) -> Result<Value, InteropError> {
    let mut value = vectors::decode(type_name, wire)
        .map_err(|e| InteropError::Check(format!("not a valid {type_name}: {e}")))?;
    readable_bytes(&mut value);
    Ok(value)
}

fn readable_bytes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if let Value::String(text) = field {
                    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&*text) else {
                        continue;
                    };
                    if UID_FIELDS.contains(&key.as_str()) || key == "body" {
                        *text = text_or_hex(&bytes);
                    } else if HASH_FIELDS.contains(&key.as_str()) {
                        *text = format!("hex:{}", hex::encode(&bytes));
                    }
                } else {
                    readable_bytes(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(readable_bytes),
        _ => {}
    }
}

/// `utf8:<text>` when the bytes are printable UTF-8, else `hex:<hex>`.
pub fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => format!("utf8:{text}"),
        _ => format!("hex:{}", hex::encode(bytes)),
    }
}

/// Hex, 32 bytes a line, so a snapshot diff points at the change.
pub fn hex_lines(bytes: &[u8]) -> Vec<String> {
    bytes.chunks(32).map(hex::encode).collect()
}

/// The pinned request header lines, exactly as they crossed the wire.
pub fn request_headers(exchange: &Exchange) -> Vec<String> {
    header_lines(&exchange.request.raw_headers(), &REQUEST_HEADERS)
}

fn header_lines(headers: &[(String, String)], pinned: &[&str]) -> Vec<String> {
    headers
        .iter()
        .filter(|(name, _)| pinned.iter().any(|p| name.eq_ignore_ascii_case(p)))
        .map(|(name, value)| format!("{name}:{value}"))
        .collect()
}

/// One request: its pinned headers, the body as hex and as readable JSON.
pub fn request(step: &str, exchange: &Exchange) -> Result<Value, InteropError> {
    let body = exchange.request_body()?;
    Ok(json!({
        "step": step,
        "headers": request_headers(exchange),
        "bytes": body.len(),
        "hex": hex_lines(&body),
        "message": readable_message(AGENT_TO_SERVER, &body)?,
    }))
}

/// One request as readable JSON only (for clients whose bytes vary by run).
pub fn request_message(step: &str, exchange: &Exchange) -> Result<Value, InteropError> {
    Ok(json!({
        "step": step,
        "headers": request_headers(exchange),
        "message": readable_message(AGENT_TO_SERVER, &exchange.request_body()?)?,
    }))
}

/// One response: status line, pinned headers, the body as readable JSON.
pub fn response(step: &str, exchange: &Exchange) -> Result<Value, InteropError> {
    let framed = exchange
        .response
        .as_ref()
        .ok_or_else(|| InteropError::Check(format!("{step}: the server was not reached")))?;
    Ok(json!({
        "step": step,
        "status": framed.start_line(),
        "headers": header_lines(&framed.raw_headers(), &RESPONSE_HEADERS),
        "message": readable_message(SERVER_TO_AGENT, &exchange.response_body()?)?,
    }))
}

/// Replaces the value of every field named in `fields` (at any depth) with
/// `[<field>]`.
pub fn redact(value: &mut Value, fields: &[&str]) {
    match value {
        Value::Object(map) => redact_map(map, fields),
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, fields)),
        _ => {}
    }
}

fn redact_map(map: &mut Map<String, Value>, fields: &[&str]) {
    for (key, field) in map.iter_mut() {
        if fields.contains(&key.as_str()) && !field.is_null() {
            *field = Value::String(format!("[{key}]"));
        } else {
            redact(field, fields);
        }
    }
}

/// Times the server stamps from its clock.
pub const TIME_FIELDS: [&str; 2] = ["lastMessageTime", "lastStatusTime"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_fields_become_text_or_hex_and_redaction_reaches_every_depth() {
        let mut value = json!({
            "instanceUid": base64::engine::general_purpose::STANDARD.encode("0193-abc"),
            "remoteConfig": {"configHash": base64::engine::general_purpose::STANDARD.encode([1, 255])},
            "list": [{"lastStatusTime": "2026-01-01T00:00:00Z"}],
        });
        readable_bytes(&mut value);
        redact(&mut value, &TIME_FIELDS);
        assert_eq!(
            value,
            json!({
                "instanceUid": "utf8:0193-abc",
                "remoteConfig": {"configHash": "hex:01ff"},
                "list": [{"lastStatusTime": "[lastStatusTime]"}],
            })
        );
        assert_eq!(text_or_hex(&[0, 1]), "hex:0001");
    }
}
