//! One keep-alive HTTP/1.1 connection of the load generator, on hyper's low-level client:
//! no pool, no retries, one request at a time, so the generator costs as little as possible.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use odigos_opamp_proto::opamp::proto::{AgentToServer, ServerToAgent};
use prost::Message;
use tokio::net::TcpStream;

use crate::agents::DEVICE_ID_HEADER;
use crate::fleet::Expect;

/// The path every server under test serves.
pub const OPAMP_PATH: &str = "/v1/opamp";

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP/1.1 handshake with {addr}: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("request failed: {0}")]
    Request(hyper::Error),
    #[error("cannot build the request: {0}")]
    Build(hyper::http::Error),
}

/// A status and a whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// An open connection to one server.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    /// Connect (TCP_NODELAY: a request is one small write that must leave at once).
    pub async fn open(addr: SocketAddr) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| ClientError::Connect { addr, source })?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ClientError::Handshake { addr, source })?;
        // Drives the socket; ends when the sender is dropped or the server closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header");
        Ok(Connection { sender, host })
    }

    /// Whether the server closed the connection (e.g. its idle keep-alive timeout).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// `POST /v1/opamp` with a protobuf body and the agent's device id header.
    pub async fn post(
        &mut self,
        body: Bytes,
        device_id: &HeaderValue,
    ) -> Result<Reply, ClientError> {
        self.post_as(body, Some(device_id)).await
    }

    /// `POST /v1/opamp` with a protobuf body, and the device id header when given (an
    /// agent without one identifies itself by its self-reported `k8s.*` attributes).
    pub async fn post_as(
        &mut self,
        body: Bytes,
        device_id: Option<&HeaderValue>,
    ) -> Result<Reply, ClientError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(OPAMP_PATH)
            .header(HOST, self.host.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
        if let Some(device_id) = device_id {
            request = request.header(DEVICE_ID_HEADER, device_id.clone());
        }
        let request = request.body(Full::new(body)).map_err(ClientError::Build)?;
        self.send(request).await
    }

    /// `GET path` (e.g. the admin listener's `/readyz`).
    pub async fn get(&mut self, path: &str) -> Result<Reply, ClientError> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, self.host.clone())
            .body(Full::new(Bytes::new()))
            .map_err(ClientError::Build)?;
        self.send(request).await
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, ClientError> {
        self.sender.ready().await.map_err(ClientError::Request)?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(ClientError::Request)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(ClientError::Request)?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// One simulated agent connection that opens on first use and reopens after a failure,
/// for the phases that poll at a steady rate (a real agent's HTTP client does the same).
pub struct Reconnecting {
    addr: SocketAddr,
    connection: Option<Connection>,
}

/// A checked answer, and whether a new connection had to be opened for it.
pub struct Answer {
    pub message: ServerToAgent,
    pub opened_connection: bool,
}

impl Reconnecting {
    pub fn new(addr: SocketAddr) -> Self {
        Reconnecting {
            addr,
            connection: None,
        }
    }

    /// The open connection, and whether it was opened just now: a connection the server
    /// closed while idle is reopened, not counted as a failure.
    pub async fn connection(&mut self) -> Result<(&mut Connection, bool), String> {
        let reusable = self.connection.take().filter(|c| !c.is_closed());
        let (connection, opened) = match reusable {
            Some(connection) => (connection, false),
            None => (
                Connection::open(self.addr)
                    .await
                    .map_err(|e| e.to_string())?,
                true,
            ),
        };
        Ok((self.connection.insert(connection), opened))
    }

    /// Forgets the connection after a failed request; the next request reconnects.
    pub fn reset(&mut self) {
        self.connection = None;
    }

    /// Sends `message` without a device id and checks the reply: HTTP 200, a `ServerToAgent`
    /// that echoes the sender's uid. Any failure drops the connection; the error says what
    /// was wrong.
    pub async fn exchange(&mut self, message: &AgentToServer) -> Result<Answer, String> {
        self.exchange_expecting(message, Expect::OpAmp).await
    }

    /// [`Self::exchange`], the reply checked as `expect` says (the bare HTTP ceiling echoes
    /// no uid).
    pub async fn exchange_expecting(
        &mut self,
        message: &AgentToServer,
        expect: Expect,
    ) -> Result<Answer, String> {
        let (connection, opened_connection) = self.connection().await?;
        let reply = match connection
            .post_as(Bytes::from(message.encode_to_vec()), None)
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                self.reset();
                return Err(error.to_string());
            }
        };
        if reply.status != StatusCode::OK {
            let text =
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)]).into_owned();
            return Err(format!("HTTP {}: {text}", reply.status));
        }
        let answer = ServerToAgent::decode(reply.body)
            .map_err(|e| format!("the reply is not a ServerToAgent: {e}"))?;
        if expect == Expect::OpAmp && answer.instance_uid != message.instance_uid {
            return Err("the reply does not echo the agent's uid".into());
        }
        Ok(Answer {
            message: answer,
            opened_connection,
        })
    }
}
