//! A minimal HTTP/1.1 client over real sockets (TCP or unix) with full control of headers,
//! for the HTTP suites and the examples.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerToAgent};
use prost::Message;

/// Each request must complete within this time; a hung server fails the test, not hangs it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Decode the body as `ServerToAgent` (panics with the body text when it is not).
    pub fn message(&self) -> ServerToAgent {
        ServerToAgent::decode(self.body.clone()).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not ServerToAgent ({e}): {:?}",
                self.status, self.body
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connect over TCP.
    pub async fn tcp(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let _ = stream.set_nodelay(true);
        Self::handshake(TokioIo::new(stream)).await
    }

    /// Connect over TCP from the local address `from` (any of 127.0.0.0/8 on loopback), as
    /// a pod with that IP would.
    pub async fn tcp_from(from: std::net::IpAddr, addr: SocketAddr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .unwrap_or_else(|e| panic!("bind {from}: {e}"));
        let stream = socket
            .connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr} from {from}: {e}"));
        let _ = stream.set_nodelay(true);
        Self::handshake(TokioIo::new(stream)).await
    }

    /// Connect over a unix socket.
    pub async fn unix(path: &Path) -> Self {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        Self::handshake(TokioIo::new(stream)).await
    }

    async fn handshake<T>(io: T) -> Self
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, connection) = http1::handshake(io).await.expect("HTTP/1.1 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Connection { sender }
    }

    /// Send a request and read the whole response.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Reply {
        let exchange = async {
            self.sender.ready().await.expect("connection ready");
            let response = self
                .sender
                .send_request(request)
                .await
                .expect("send request");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("read response body").to_bytes();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .expect("response within the timeout")
    }

    /// POST a message to /v1/opamp with `Content-Type: application/x-protobuf` and `extra` headers.
    pub async fn post(&mut self, msg: &AgentToServer, extra: &[(&str, &str)]) -> Reply {
        let request = opamp_request(msg.encode_to_vec(), extra);
        self.send(request).await
    }
}

/// A POST /v1/opamp request with the protobuf content type plus `extra` headers (which may
/// override it).
pub fn opamp_request(body: Vec<u8>, extra: &[(&str, &str)]) -> Request<Full<Bytes>> {
    request(Method::POST, "/v1/opamp", body, extra)
}

/// Any request; `Content-Type: application/x-protobuf` unless `extra` sets one (an empty
/// value sends no Content-Type at all).
pub fn request(
    method: Method,
    path: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "localhost");
    if !extra
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        builder = builder.header(CONTENT_TYPE, "application/x-protobuf");
    }
    for (name, value) in extra {
        // An empty Content-Type means "send none".
        if !(name.eq_ignore_ascii_case("content-type") && value.is_empty()) {
            builder = builder.header(*name, *value);
        }
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .expect("valid request")
}

/// GET a path on the admin listener.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut connection = Connection::tcp(addr).await;
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(HOST, "localhost")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    connection.send(request).await
}

/// How many answers of this `outcome` label `/metrics` has counted.
pub async fn answers_counted(admin: SocketAddr, outcome: &str) -> u64 {
    let metrics = get(admin, "/metrics").await.text();
    let prefix = format!("odigos_opamp_requests_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Wait (at most 5 s) until `/metrics` has counted at least one answer labelled `outcome`:
/// refusals of a connection are counted when the connection ends.
pub async fn expect_counted(admin: SocketAddr, outcome: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while answers_counted(admin, outcome).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "/metrics never counted outcome {outcome:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
