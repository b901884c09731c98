//! One exchange with a language program: a [`Request`] as JSON on its stdin,
//! a [`Response`] as JSON on its stdout. Failures are per item, so one bad
//! vector does not hide the others.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Request {
    /// Vector files to parse and encode.
    pub encode: Vec<EncodeItem>,
    /// Wire bytes to parse and print as proto3 JSON.
    pub decode: Vec<DecodeItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EncodeItem {
    pub id: String,
    /// Absolute path of a vector file; the program reads it with its own JSON parser.
    pub path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecodeItem {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub hex: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Response {
    pub runtime: RuntimeInfo,
    pub encoded: Vec<Encoded>,
    pub decoded: Vec<Decoded>,
}

/// Which protobuf library answered, as the program itself sees it.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeInfo {
    pub language: String,
    pub library: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Encoded {
    pub id: String,
    pub hex: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Decoded {
    pub id: String,
    pub json: Option<Value>,
    pub error: Option<String>,
}
