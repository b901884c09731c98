//! The agent listener's router driven in-process with arbitrary requests: method, path,
//! headers and body bytes. Every answer must carry a documented status, and every protobuf
//! answer must decode and echo the request's uid.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use http_body_util::BodyExt;
use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerToAgent};
use odigos_opamp_server::config_source::MemoryConfigSource;
use odigos_opamp_server::identity::{DeviceTable, StaticTableIdentity};
use odigos_opamp_server::protocol::Answer;
use odigos_opamp_server::protocol::SERVER_CAPABILITIES;
use odigos_opamp_server::store::MemoryStore;
use odigos_opamp_server::{OPAMP_PATH, Server, Settings, accepts_gzip};
use prost::Message;
use tower::ServiceExt;

use crate::model::{DEVICE_IDS, DEVICES, Msg};

/// Small, so the 413 paths are reached with small inputs too.
const MAX_BODY: usize = 16 * 1024;

/// Whether the agent listener documents this status (protocol::Answer, the README's table).
fn documented(status: u16) -> bool {
    Answer::ALL.iter().any(|a| a.status_code() == status)
}

#[derive(Arbitrary, Debug)]
pub enum Payload {
    Raw(Vec<u8>),
    Message(Msg),
    /// A valid message with some bytes overwritten: wrong wire types, bad lengths.
    Mutated {
        msg: Msg,
        edits: Vec<(u16, u8)>,
    },
    Truncated {
        msg: Msg,
        keep: u16,
    },
}

#[derive(Arbitrary, Debug)]
pub enum Text {
    Absent,
    Value(String),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum ContentType {
    Protobuf,
    LeadingSpace,
    WithParameter,
    Other(Text),
}

#[derive(Arbitrary, Debug)]
pub enum Encoding {
    None,
    /// Declared and applied.
    Gzip,
    /// Declared, body left plain.
    GzipHeaderOnly,
    Other(Text),
}

#[derive(Arbitrary, Debug)]
pub enum DeviceHeader {
    Absent,
    Row(u8),
    Other(Text),
}

#[derive(Arbitrary, Debug)]
pub struct Case {
    pub method: u8,
    pub path: u8,
    pub content_type: ContentType,
    pub encoding: Encoding,
    pub accept_encoding: Text,
    pub device: DeviceHeader,
    pub body: Payload,
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
}

/// Run up to 8 requests against a fresh server.
pub fn run(cases: Vec<Case>) {
    let router = router();
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let mut seq = 0u64;
            for case in cases.into_iter().take(8) {
                seq += 1;
                one(&router, case, seq).await;
            }
        })
    });
}

fn router() -> axum::Router {
    let table = DeviceTable::from_yaml(DEVICES).expect("fuzz device table");
    let settings = Settings {
        node_name: "fuzz-node".into(),
        heartbeat_interval: Duration::from_secs(30),
        max_body_bytes: MAX_BODY,
        gzip_min_bytes: 64,
        ..Settings::default()
    };
    Server::builder(settings)
        .identity(Arc::new(
            StaticTableIdentity::new(table).trust_self_reported(true),
        ))
        .config_source(Arc::new(MemoryConfigSource::new()))
        .store(Arc::new(MemoryStore::new()))
        .in_process()
        .expect("valid settings")
        .router()
}

async fn one(router: &axum::Router, case: Case, seq: u64) {
    let plain = match &case.body {
        Payload::Raw(bytes) => bytes.clone(),
        Payload::Message(msg) => msg.build(seq, &[]).encode_to_vec(),
        Payload::Mutated { msg, edits } => {
            let mut bytes = msg.build(seq, &[]).encode_to_vec();
            for (at, byte) in edits {
                if !bytes.is_empty() {
                    let i = usize::from(*at) % bytes.len();
                    bytes[i] = *byte;
                }
            }
            bytes
        }
        Payload::Truncated { msg, keep } => {
            let mut bytes = msg.build(seq, &[]).encode_to_vec();
            bytes.truncate(usize::from(*keep));
            bytes
        }
    };
    let body = match case.encoding {
        Encoding::Gzip => gzip(&plain),
        _ => plain.clone(),
    };
    let method = [Method::POST, Method::GET, Method::PUT, Method::OPTIONS]
        [usize::from(case.method % 4)]
    .clone();
    let path = ["/v1/opamp", "/", "/v1/opamp/", "/metrics"][usize::from(case.path % 4)];

    let mut request = Request::builder().method(method.clone()).uri(path);
    let headers = request.headers_mut().expect("a fresh builder");
    let mut set = |name: &'static str, text: &Text| match text {
        Text::Absent => {}
        Text::Value(s) => {
            if let Ok(v) = HeaderValue::from_str(s) {
                headers.insert(name, v);
            }
        }
        Text::Bytes(b) => {
            if let Ok(v) = HeaderValue::from_bytes(b) {
                headers.insert(name, v);
            }
        }
    };
    match &case.content_type {
        ContentType::Protobuf => set(
            "content-type",
            &Text::Value("application/x-protobuf".into()),
        ),
        ContentType::LeadingSpace => set(
            "content-type",
            &Text::Value(" application/x-protobuf".into()),
        ),
        ContentType::WithParameter => set(
            "content-type",
            &Text::Value("Application/X-Protobuf; q=1".into()),
        ),
        ContentType::Other(text) => set("content-type", text),
    }
    match &case.encoding {
        Encoding::None => {}
        Encoding::Gzip | Encoding::GzipHeaderOnly => {
            set("content-encoding", &Text::Value("gzip".into()))
        }
        Encoding::Other(text) => set("content-encoding", text),
    }
    set("accept-encoding", &case.accept_encoding);
    match &case.device {
        DeviceHeader::Absent => {}
        DeviceHeader::Row(i) => set(
            "x-odigos-deviceid",
            &Text::Value(DEVICE_IDS[usize::from(*i) % DEVICE_IDS.len()].into()),
        ),
        DeviceHeader::Other(text) => set("x-odigos-deviceid", text),
    }
    let request = request.body(Body::from(body)).expect("a valid request");
    let request_headers = request.headers().clone();
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    check(response, &method, path, &request_headers, &plain).await;
}

async fn check(
    response: Response<Body>,
    method: &Method,
    path: &str,
    request_headers: &axum::http::HeaderMap,
    plain_request: &[u8],
) {
    let status = response.status();
    assert!(documented(status.as_u16()), "undocumented status {status}");
    if path != OPAMP_PATH {
        assert_eq!(status, StatusCode::NOT_FOUND);
        return;
    }
    if method != Method::POST {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        return;
    }
    let headers = response.headers().clone();
    let gzipped = headers.get("content-encoding").is_some();
    if gzipped {
        assert!(
            accepts_gzip(request_headers),
            "gzip the client did not accept"
        );
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            headers.get("retry-after").is_some(),
            "503 without Retry-After"
        );
    }
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("an in-memory body")
        .to_bytes();
    let protobuf_reply = matches!(status.as_u16(), 200 | 400 | 401 | 409 | 503);
    if !protobuf_reply {
        return;
    }
    assert_eq!(
        headers.get("content-type").map(HeaderValue::as_bytes),
        Some(&b"application/x-protobuf"[..]),
        "exact content type"
    );
    let body = if gzipped {
        gunzip(&bytes)
    } else {
        bytes.to_vec()
    };
    let reply = ServerToAgent::decode(body.as_slice()).expect("every protobuf reply decodes");
    assert_eq!(reply.capabilities, SERVER_CAPABILITIES);
    assert_eq!(reply.error_response.is_some(), status != StatusCode::OK);
    // When the server could read the message, it echoes its uid byte for byte.
    let declared_gzip = request_headers.get("content-encoding").is_some();
    if !declared_gzip && let Ok(sent) = AgentToServer::decode(plain_request) {
        assert_eq!(reply.instance_uid, sent.instance_uid, "uid echoed");
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).expect("in-memory gzip");
    encoder.finish().expect("in-memory gzip")
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("our gzip decodes");
    out
}
