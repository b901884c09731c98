//! Hostile requests over real sockets, each asserting the documented answer, shared by the
//! hostile suite (in-process server) and the RSS measurement (the server binary).
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use hyper::StatusCode;
use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerErrorResponseType};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{Connection, Reply, opamp_request};
use crate::messages::{first_message, heartbeat, int, python_description, string};

pub const MIB: usize = 1024 * 1024;

/// A uid no hostile case uses: the "normal agent" that must still be served afterwards.
pub fn normal_uid(tag: u32) -> Vec<u8> {
    format!("0192f1e4-0000-7000-8000-{tag:012}").into_bytes()
}

/// A normal agent's first message for a pod of its own, as a self-reported bare pod
/// (the server runs with `--trust-self-reported`).
pub fn own_pod_message(uid: &[u8], pod: &str) -> AgentToServer {
    AgentToServer {
        agent_description: Some(python_description(uid, pod, "app")),
        ..first_message(uid, 0)
    }
}

/// After a hostile case: a normal agent registers and gets its config, then heartbeats.
pub async fn normal_agent_is_served(addr: SocketAddr, tag: u32) {
    let uid = normal_uid(tag);
    let mut c = Connection::tcp(addr).await;
    let reply = c
        .post(&own_pod_message(&uid, &format!("normal-{tag}")), &[])
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "normal agent after the case: {}",
        reply.text()
    );
    let msg = reply.message();
    assert_eq!(msg.instance_uid, uid);
    assert!(
        msg.remote_config.is_some(),
        "full config for the normal agent"
    );
    let beat = c.post(&heartbeat(&uid, 1), &[]).await;
    assert_eq!(beat.status, StatusCode::OK);
    assert_eq!(beat.message().flags, 0);
}

/// A 400 whose body is a BAD_REQUEST error response echoing `uid`, with `needle` in it.
pub fn assert_bad_request(reply: &Reply, uid: &[u8], needle: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let msg = reply.message();
    assert_eq!(msg.instance_uid, uid);
    let error = msg.error_response.expect("error_response");
    assert_eq!(error.r#type, ServerErrorResponseType::BadRequest as i32);
    assert!(
        error.error_message.contains(needle),
        "{needle:?} in {:?}",
        error.error_message
    );
}

/// Truncated protobuf, garbage and wrong wire types: 400 with BAD_REQUEST, no uid.
pub async fn malformed_bodies(addr: SocketAddr) {
    let valid = first_message(b"0192f1e4-trunc", 0).encode_to_vec();
    let mut bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", valid[..valid.len() / 2].to_vec()),
        ("truncated by one byte", valid[..valid.len() - 1].to_vec()),
        (
            "garbage",
            b"\xde\xad\xbe\xef garbage \xff\xff\xff\xff\xff".to_vec(),
        ),
        // Field 1 (instance_uid, bytes) sent as a varint; field 2 (sequence_num) as bytes.
        ("wrong wire type for a bytes field", vec![0x08, 0x01]),
        ("wrong wire type for a varint field", vec![0x12, 0x01, 0x00]),
        // A length prefix far past the end of the body.
        (
            "length past the end",
            vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x41],
        ),
        // A varint of eleven bytes.
        (
            "overlong varint",
            [vec![0x10], vec![0xff; 10], vec![0x01]].concat(),
        ),
        // Nesting deeper than prost allows: agent_description → attributes → any value ...
        ("deep nesting", deep_nesting(200)),
    ];
    bodies.push(("empty group end", vec![0x0c]));
    let mut c = Connection::tcp(addr).await;
    for (what, body) in bodies {
        let reply = c.send(opamp_request(body, &[])).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text()
        );
        let error = reply.message().error_response.expect("error_response");
        assert_eq!(
            error.r#type,
            ServerErrorResponseType::BadRequest as i32,
            "{what}"
        );
    }
}

/// An `AnyValue` array nested `depth` times inside an attribute value.
fn deep_nesting(depth: usize) -> Vec<u8> {
    // AnyValue { array_value (5): ArrayValue { values (1): AnyValue ... } }
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..depth {
        let mut array = vec![0x0a];
        push_len(&mut array, inner.len());
        array.extend_from_slice(&inner);
        let mut value = vec![0x2a];
        push_len(&mut value, array.len());
        value.extend_from_slice(&array);
        inner = value;
    }
    // KeyValue { key: "k", value (2): inner }
    let mut kv = vec![0x0a, 0x01, b'k', 0x12];
    push_len(&mut kv, inner.len());
    kv.extend_from_slice(&inner);
    // AgentDescription { identifying_attributes (1): kv }
    let mut description = vec![0x0a];
    push_len(&mut description, kv.len());
    description.extend_from_slice(&kv);
    // AgentToServer { instance_uid (1): "u", agent_description (3): description }
    let mut msg = vec![0x0a, 0x01, b'u', 0x1a];
    push_len(&mut msg, description.len());
    msg.extend_from_slice(&description);
    msg
}

fn push_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A 64 MiB body: 413, whether its length is declared or it comes chunked.
pub async fn huge_body(addr: SocketAddr) {
    let body = vec![0x0au8; 64 * MIB];
    let declared = format!(
        "POST /v1/opamp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-protobuf\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    let status = raw_exchange(addr, declared, body.chunks(MIB).map(<[u8]>::to_vec)).await;
    assert_eq!(status, Some(413), "64 MiB body with its length declared");

    // Chunked, no Content-Length: the server stops reading at the limit.
    let chunked =
        "POST /v1/opamp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-protobuf\r\n\
                   transfer-encoding: chunked\r\n\r\n"
            .to_owned();
    let pieces = body
        .chunks(MIB)
        .map(|piece| {
            [
                format!("{:x}\r\n", piece.len()).into_bytes(),
                piece.to_vec(),
                b"\r\n".to_vec(),
            ]
            .concat()
        })
        .chain(std::iter::once(b"0\r\n\r\n".to_vec()));
    let status = raw_exchange(addr, chunked, pieces).await;
    assert_eq!(status, Some(413), "chunked 64 MiB body");
}

/// Send `head` then `pieces` on a fresh connection while reading the answer's status. The
/// server may answer and close before everything is sent: a write error then is expected,
/// the status is what counts.
pub async fn raw_exchange(
    addr: SocketAddr,
    head: String,
    pieces: impl Iterator<Item = Vec<u8>>,
) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.split();
    let send = async {
        write.write_all(head.as_bytes()).await?;
        for piece in pieces {
            write.write_all(&piece).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let mut send = std::pin::pin!(send);
    let answered = tokio::select! {
        status = read_status(&mut read) => Some(status),
        _ = &mut send => None,
    };
    match answered {
        Some(status) => status,
        None => read_status(&mut read).await,
    }
}

/// Read until the status line of a response is complete; `None` when the connection
/// closed first. Bounded by the client timeout.
pub async fn read_status<R: tokio::io::AsyncRead + Unpin>(read: &mut R) -> Option<u16> {
    let mut buf = Vec::new();
    let read_line = async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&buf[..end]).into_owned();
                return line.split(' ').nth(1).and_then(|code| code.parse().ok());
            }
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(crate::client::REQUEST_TIMEOUT, read_line)
        .await
        .expect("an answer or a close within the client timeout")
}

/// 1 GiB of zeros as 16 gzip members of 64 MiB (about 1 MiB compressed).
pub fn gzip_bomb() -> Vec<u8> {
    let mut member = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; MIB];
    for _ in 0..64 {
        member.write_all(&zeros).expect("compress");
    }
    member.finish().expect("compress").repeat(16)
}

/// A gzip bomb that inflates to 1 GiB: 413.
pub async fn gzip_bomb_is_refused(addr: SocketAddr) {
    let bomb = gzip_bomb();
    assert!(
        bomb.len() < 4 * MIB,
        "the bomb fits the body limit compressed"
    );
    let mut c = Connection::tcp(addr).await;
    let reply = c
        .send(opamp_request(bomb, &[("content-encoding", "gzip")]))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
}

/// A first message whose description is padded with `extra` attributes.
pub fn with_attributes(
    uid: &[u8],
    pod: &str,
    extra: Vec<odigos_opamp_proto::opamp::proto::KeyValue>,
) -> AgentToServer {
    let mut msg = own_pod_message(uid, pod);
    if let Some(d) = msg.agent_description.as_mut() {
        d.identifying_attributes.extend(extra);
    }
    msg
}

/// 10,000 attributes, and one attribute of 1 MiB: 400, nothing kept.
pub async fn oversized_descriptions(addr: SocketAddr) {
    let mut c = Connection::tcp(addr).await;
    let many: Vec<_> = (0..10_000).map(|i| int(&format!("attr.{i}"), i)).collect();
    let uid = b"0192f1e4-many-attributes".to_vec();
    let reply = c
        .post(&with_attributes(&uid, "many-attrs", many), &[])
        .await;
    assert_bad_request(&reply, &uid, "at most");

    let uid = b"0192f1e4-one-mib-attribute".to_vec();
    let big = vec![string("process.command_line", &"x".repeat(MIB))];
    let reply = c.post(&with_attributes(&uid, "big-attr", big), &[]).await;
    assert_bad_request(&reply, &uid, "at most");

    // The same limit applies to a known agent's later description.
    let uid = b"0192f1e4-grows-later".to_vec();
    let ok = c.post(&own_pod_message(&uid, "grows-later"), &[]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let mut later = with_attributes(&uid, "grows-later", vec![string("blob", &"y".repeat(MIB))]);
    later.sequence_num = 1;
    let reply = c.post(&later, &[]).await;
    assert_bad_request(&reply, &uid, "at most");
}

/// Invalid UTF-8 in string fields (attribute key, string value, health status): 400.
pub async fn invalid_utf8(addr: SocketAddr) {
    let mut c = Connection::tcp(addr).await;
    let marker = "\u{1}MARK\u{1}";
    let variants: Vec<(&str, AgentToServer)> = vec![
        (
            "attribute key",
            with_attributes(b"0192f1e4-utf8-key", "utf8", vec![string(marker, "v")]),
        ),
        (
            "attribute value",
            with_attributes(b"0192f1e4-utf8-val", "utf8", vec![string("k", marker)]),
        ),
        (
            "health status",
            AgentToServer {
                health: Some(crate::messages::health(true, marker, "")),
                ..own_pod_message(b"0192f1e4-utf8-health", "utf8")
            },
        ),
    ];
    for (what, msg) in variants {
        let mut bytes = msg.encode_to_vec();
        let at = bytes
            .windows(marker.len())
            .position(|w| w == marker.as_bytes())
            .expect("marker encoded");
        // Same length, so every length prefix stays right: only the text is invalid.
        bytes[at..at + marker.len()].copy_from_slice(&[0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0]);
        let reply = c.send(opamp_request(bytes, &[])).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text()
        );
        assert!(reply.message().error_response.is_some(), "{what}");
    }
}

/// uids of 0, 17, 65 bytes and 1 MiB: 400, 200, 400, 400; each echoed where there is one.
pub async fn uid_lengths(addr: SocketAddr) {
    let mut c = Connection::tcp(addr).await;
    let empty = c.post(&own_pod_message(b"", "uid-0"), &[]).await;
    assert_bad_request(&empty, b"", "instance_uid is empty");

    let uid17 = vec![0x17u8; 17];
    let ok = c.post(&own_pod_message(&uid17, "uid-17"), &[]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.message().instance_uid, uid17);

    let uid65 = vec![0x65u8; 65];
    let long = c.post(&own_pod_message(&uid65, "uid-65"), &[]).await;
    assert_bad_request(&long, &uid65, "at most 64");

    let uid_mib = vec![0x4du8; MIB];
    let huge = c.post(&heartbeat(&uid_mib, 0), &[]).await;
    assert_bad_request(&huge, &uid_mib, "at most 64");
}

/// Headers trickled one byte at a time: the server closes the connection once the header
/// read timeout passes, without answering a request it never got.
pub async fn slowloris_headers(addr: SocketAddr, header_read_timeout: Duration) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = b"POST /v1/opamp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-protobuf\r\nx-padding: ";
    let started = Instant::now();
    let deadline = header_read_timeout * 4 + Duration::from_secs(2);
    let mut closed = false;
    // Bounded: one byte per 100 ms until the server closes or the deadline passes.
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if started.elapsed() > deadline {
            break;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            // hyper may say 408 before closing.
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&probe[..n]);
                assert!(
                    text.starts_with("HTTP/1.1 408"),
                    "unexpected answer: {text}"
                );
            }
            Err(_) => {}
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "connection still open after {elapsed:?}");
    assert!(
        elapsed >= header_read_timeout.mul_f64(0.9),
        "closed after {elapsed:?}, before the header read timeout"
    );
}

/// Headers sent, body trickled: 408 once the request timeout passes, then the connection
/// is closed.
pub async fn slow_body(addr: SocketAddr, request_timeout: Duration) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = "POST /v1/opamp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-protobuf\r\n\
                content-length: 100000\r\n\r\n";
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send headers");
    let started = Instant::now();
    let (mut read, mut write) = stream.split();
    let trickle = async {
        for _ in 0..((request_timeout.as_millis() / 100) * 3 + 20) {
            if write.write_all(b"\x0a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let status = tokio::select! {
        status = read_status(&mut read) => status,
        () = trickle => None,
    };
    let elapsed = started.elapsed();
    assert_eq!(status, Some(408), "after {elapsed:?}");
    assert!(
        elapsed >= request_timeout.mul_f64(0.9),
        "408 after {elapsed:?}"
    );
    // And the connection is closed after it.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "connection closed after the 408");
}

/// 1,000 new agents at once, each on its own connection: every one gets 200 and its config.
pub async fn many_concurrent_agents(addr: SocketAddr, count: u32) {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            tokio::spawn(async move {
                let uid = format!("0192f1e4-conc-7000-8000-{i:012}").into_bytes();
                let mut c = Connection::tcp(addr).await;
                let reply = c
                    .post(&own_pod_message(&uid, &format!("many-{i}")), &[])
                    .await;
                (reply.status, reply.message().remote_config.is_some())
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let (status, config) = task.await.expect("agent task");
        assert_eq!(status, StatusCode::OK);
        assert!(config);
        ok += 1;
    }
    assert_eq!(ok, count);
}

/// Raise the open-file limit to its hard limit: 1,000 agents need 2,000 descriptors here.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A request head of 64 KiB: 431, and the connection is closed.
pub async fn oversized_head(addr: SocketAddr) {
    let head = format!(
        "POST /v1/opamp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-protobuf\r\n\
         x-padding: {}\r\ncontent-length: 0\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let status = raw_exchange(addr, head, std::iter::empty()).await;
    assert_eq!(status, Some(431), "64 KiB of headers");
}
