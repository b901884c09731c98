//! The golden vectors: `tests/vectors/<name>.json`, each
//! `{"type": <full message name>, "description": ..., "message": <proto3 JSON>}`,
//! and the Rust codec for them (prost + pbjson from gen/rust).

use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerToAgent};

/// One golden vector.
#[derive(Debug, Clone)]
pub struct Vector {
    /// The file name without `.json`; names the insta snapshot too.
    pub name: String,
    pub path: PathBuf,
    /// Full protobuf name, e.g. `opamp.proto.AgentToServer`.
    pub type_name: String,
    pub message: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error(
        "{path}: keys out of order at {at}. JavaScript writes map entries in the JSON's key order \
         while the other languages sort them, so every object in a vector keeps its keys sorted."
    )]
    Unsorted { path: PathBuf, at: String },
    #[error("no vectors in {0}")]
    Empty(PathBuf),
}

/// The vectors folder of this crate.
pub fn vectors_dir() -> PathBuf {
    crate::tests_dir().join("vectors")
}

/// Every `*.json` in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Vector>, VectorError> {
    let io = |source| VectorError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(VectorError::Empty(dir.to_owned()));
    }
    paths.iter().map(|path| load(path)).collect()
}

/// Reads one vector, checking its shape and that its keys are sorted.
pub fn load(path: &Path) -> Result<Vector, VectorError> {
    let text = std::fs::read_to_string(path).map_err(|source| VectorError::Io {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |detail: String| VectorError::Invalid {
        path: path.to_owned(),
        detail,
    };
    let mut unsorted = None;
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    SortedKeys {
        path: "$".into(),
        first_problem: &mut unsorted,
    }
    .deserialize(&mut deserializer)
    .map_err(|err| invalid(err.to_string()))?;
    if let Some(at) = unsorted {
        return Err(VectorError::Unsorted {
            path: path.to_owned(),
            at,
        });
    }
    let mut file: serde_json::Map<String, Value> =
        serde_json::from_str(&text).map_err(|err| invalid(err.to_string()))?;
    let type_name = match file.remove("type") {
        Some(Value::String(name)) => name,
        _ => {
            return Err(invalid(
                "needs a string \"type\": the full message name".into(),
            ));
        }
    };
    let message = file
        .remove("message")
        .ok_or_else(|| invalid("needs a \"message\"".into()))?;
    file.remove("description");
    if let Some(key) = file.keys().next() {
        return Err(invalid(format!(
            "unknown key {key:?} (allowed: type, description, message)"
        )));
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Vector {
        name,
        path: path.to_owned(),
        type_name,
        message,
    })
}

/// Walks a JSON document and records the first object whose keys are not in
/// ascending order (serde_json's `Value` would forget the order).
struct SortedKeys<'a> {
    path: String,
    first_problem: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for SortedKeys<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SortedKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut previous: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if previous.as_ref().is_some_and(|p| *p >= key) && self.first_problem.is_none() {
                *self.first_problem = Some(format!(
                    "{}: {:?} after {:?}",
                    self.path,
                    key,
                    previous.unwrap_or_default()
                ));
            }
            map.next_value_seed(SortedKeys {
                path: format!("{}.{key}", self.path),
                first_problem: self.first_problem,
            })?;
            previous = Some(key);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(SortedKeys {
                path: format!("{}[{index}]", self.path),
                first_problem: self.first_problem,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(
        "message type {0} is not one the Rust codec knows (add it to `vectors::encode`/`decode`)"
    )]
    UnknownType(String),
    #[error("parsing proto3 JSON as {type_name}: {source}")]
    Json {
        type_name: String,
        source: serde_json::Error,
    },
    #[error("parsing bytes as {type_name}: {source}")]
    Decode {
        type_name: String,
        source: prost::DecodeError,
    },
}

trait Codec: prost::Message + Default + serde::Serialize + serde::de::DeserializeOwned {}
impl<T: prost::Message + Default + serde::Serialize + serde::de::DeserializeOwned> Codec for T {}

/// proto3 JSON → wire bytes with gen/rust (maps are BTreeMaps: key order).
pub fn encode(type_name: &str, json: &Value) -> Result<Vec<u8>, CodecError> {
    match type_name {
        "opamp.proto.AgentToServer" => encode_as::<AgentToServer>(type_name, json),
        "opamp.proto.ServerToAgent" => encode_as::<ServerToAgent>(type_name, json),
        _ => Err(CodecError::UnknownType(type_name.to_owned())),
    }
}

/// Wire bytes → proto3 JSON with gen/rust.
pub fn decode(type_name: &str, wire: &[u8]) -> Result<Value, CodecError> {
    match type_name {
        "opamp.proto.AgentToServer" => decode_as::<AgentToServer>(type_name, wire),
        "opamp.proto.ServerToAgent" => decode_as::<ServerToAgent>(type_name, wire),
        _ => Err(CodecError::UnknownType(type_name.to_owned())),
    }
}

fn encode_as<M: Codec>(type_name: &str, json: &Value) -> Result<Vec<u8>, CodecError> {
    let message = M::deserialize(json).map_err(|source| CodecError::Json {
        type_name: type_name.to_owned(),
        source,
    })?;
    Ok(message.encode_to_vec())
}

fn decode_as<M: Codec>(type_name: &str, wire: &[u8]) -> Result<Value, CodecError> {
    let json_error = |source| CodecError::Json {
        type_name: type_name.to_owned(),
        source,
    };
    let message = M::decode(wire).map_err(|source| CodecError::Decode {
        type_name: type_name.to_owned(),
        source,
    })?;
    serde_json::to_value(&message).map_err(json_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsorted_keys_are_rejected_with_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.json");
        std::fs::write(
            &path,
            r#"{"message": {"m": {"b": 1, "a": [{"y": 1, "x": 2}]}}, "type": "t"}"#,
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains(r#"$.message.m: "a" after "b""#), "{err}");
    }

    #[test]
    fn a_sorted_vector_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello.json");
        std::fs::write(
            &path,
            r#"{"description": "d", "message": {"a": [{"x": 1, "y": null}], "b": 1}, "type": "t"}"#,
        )
        .unwrap();
        let vector = load(&path).unwrap();
        assert_eq!(
            (vector.name.as_str(), vector.type_name.as_str()),
            ("hello", "t")
        );
    }
}
