//! A recording HTTP/1.1 tap between a client and the server: the honest
//! capture point of what each client sent and what the server answered.
//!
//! It copies each request byte for byte to a fresh connection to the
//! upstream, and the response byte for byte back, so quirks such as a leading
//! space in `Content-Type` reach the server unchanged. The upstream address
//! is fixed; restarting the server on the same port is invisible to clients.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::InteropError;
use super::http1::{self, Framed, Side};

/// How long the tap waits on either peer before giving up on a connection.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// One request and the answer it got, as they crossed the tap.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub request: Framed,
    /// `None` when the upstream could not be reached (the client got a 502).
    pub response: Option<Framed>,
    /// When the request had been read completely.
    pub at: Instant,
}

impl Exchange {
    /// The request body, gunzipped when `Content-Encoding: gzip`.
    pub fn request_body(&self) -> Result<Vec<u8>, InteropError> {
        decoded_body(&self.request)
    }

    /// The response body, gunzipped when `Content-Encoding: gzip`.
    pub fn response_body(&self) -> Result<Vec<u8>, InteropError> {
        match &self.response {
            Some(response) => decoded_body(response),
            None => Err(InteropError::Check(
                "the tap could not reach the server for this request".into(),
            )),
        }
    }
}

fn decoded_body(framed: &Framed) -> Result<Vec<u8>, InteropError> {
    match framed.header("content-encoding").as_deref() {
        None | Some("identity") => Ok(framed.body.clone()),
        Some(coding) if coding.eq_ignore_ascii_case("gzip") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(framed.body.as_slice())
                .read_to_end(&mut plain)
                .map_err(|e| InteropError::Check(format!("gzip body does not inflate: {e}")))?;
            Ok(plain)
        }
        Some(other) => Err(InteropError::Check(format!(
            "unexpected Content-Encoding {other:?}"
        ))),
    }
}

#[derive(Default)]
struct Log {
    exchanges: Mutex<Vec<Exchange>>,
    changed: Condvar,
}

/// A running tap; it stops when dropped.
pub struct Tap {
    addr: SocketAddr,
    log: Arc<Log>,
    task: JoinHandle<()>,
}

impl Tap {
    /// Listens on an OS-chosen loopback port and forwards to `upstream`.
    pub fn start(runtime: &Handle, upstream: SocketAddr) -> Result<Tap, InteropError> {
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| InteropError::io("binding the tap", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| InteropError::io("the tap's address", e))?;
        let log = Arc::new(Log::default());
        let accept_log = Arc::clone(&log);
        let task = runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, Arc::clone(&accept_log)));
            }
        });
        Ok(Tap { addr, log, task })
    }

    /// The URL clients post to: `http://<tap>/v1/opamp`.
    pub fn opamp_url(&self) -> String {
        format!("http://{}/v1/opamp", self.addr)
    }

    /// Every exchange so far, in the order the requests completed.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many exchanges have completed.
    pub fn len(&self) -> usize {
        self.log
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until `done` holds for the recorded exchanges, or fails after
    /// `timeout` naming `what` was awaited.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Exchange]) -> bool,
    ) -> Result<Vec<Exchange>, InteropError> {
        let deadline = Instant::now() + timeout;
        let mut exchanges = self
            .log
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if done(&exchanges) {
                return Ok(exchanges.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(InteropError::Timeout {
                    what: what.to_owned(),
                    after: timeout,
                    seen: format!("{} exchange(s) recorded", exchanges.len()),
                });
            }
            exchanges = self
                .log
                .changed
                .wait_timeout(exchanges, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays one client connection, request by request, each over its own
/// upstream connection (so a restarted server is reached afresh).
async fn relay(client: TcpStream, upstream: SocketAddr, log: Arc<Log>) {
    let (client_read, mut client_write) = client.into_split();
    let mut client_read = BufReader::new(client_read);
    // Any failure ends this connection; the client sees it closed, as it
    // would with a failing server, and the test fails on what is missing.
    while let Ok(Some(request)) = http1::read(&mut client_read, Side::Request, PEER_TIMEOUT).await {
        let at = Instant::now();
        let response = forward(&request, upstream).await;
        let reply = match &response {
            Some(response) => response.wire(),
            None => b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .to_vec(),
        };
        let closes = request.closes() || response.as_ref().is_none_or(Framed::closes);
        {
            let mut exchanges = log.exchanges.lock().unwrap_or_else(PoisonError::into_inner);
            exchanges.push(Exchange {
                request,
                response,
                at,
            });
            log.changed.notify_all();
        }
        if client_write.write_all(&reply).await.is_err() || closes {
            break;
        }
    }
}

async fn forward(request: &Framed, upstream: SocketAddr) -> Option<Framed> {
    let stream = tokio::time::timeout(PEER_TIMEOUT, TcpStream::connect(upstream))
        .await
        .ok()?
        .ok()?;
    let (read, mut write) = stream.into_split();
    write.write_all(&request.wire()).await.ok()?;
    let mut read = BufReader::new(read);
    http1::read(&mut read, Side::Response, PEER_TIMEOUT)
        .await
        .ok()
        .flatten()
}
