//! Serving a router on a listener with the bounds a hostile client must not get past: a
//! connection limit, a header read timeout (slowloris) and an idle timeout between requests
//! ([`super::clock`]), a whole-request timeout (slow bodies) and a cap on requests handled
//! at once (bodies buffered at once).
//!
//! `axum::serve` offers none of these, so connections are served with hyper directly.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, watch};

use super::clock::{Clocked, Deadlines, Requests};
use super::text_response;
use crate::identity::Peer;
use crate::metrics::Metrics;
use crate::protocol::Answer;

/// What a listener answers each request with, once hyper has parsed its head.
/// Taken by value (clones are cheap) so the answer borrows nothing from the connection;
/// `peer` is who is calling, as the kernel says.
pub(crate) trait Routes: Clone + Send + Sync + 'static {
    fn answer(
        self,
        request: Request<Incoming>,
        peer: Peer,
    ) -> impl Future<Output = Response> + Send;
}

/// A router's handlers find the peer among the request's extensions.
impl Routes for Router {
    fn answer(
        self,
        mut request: Request<Incoming>,
        peer: Peer,
    ) -> impl Future<Output = Response> + Send {
        request.extensions_mut().insert(peer);
        let answer = hyper::service::Service::call(&TowerToHyperService::new(self), request);
        async move {
            match answer.await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// The bounds of one listener (or of several sharing `connections`).
#[derive(Clone)]
pub(crate) struct Limits {
    /// Open connections allowed; the ones past it get 503 and are closed.
    pub connections: Arc<Semaphore>,
    /// Requests handled at once; the others wait (within `request_timeout`).
    pub requests: Arc<Semaphore>,
    /// The bounds of a connection between its requests: the header read and idle timeouts.
    pub deadlines: Deadlines,
    /// Time to receive the body and answer, once the headers are in.
    pub request_timeout: Duration,
    /// Where the refusals of this layer are counted (the agent listeners'; the admin
    /// listener's are not agent answers).
    pub counter: Option<Arc<Metrics>>,
}

impl Limits {
    fn count(&self, answer: Answer) {
        if let Some(metrics) = &self.counter {
            metrics.count(answer);
        }
    }
}

/// Largest request head (request line and headers) buffered per connection; hyper's
/// default (~400 KiB) times the connection limit would be hundreds of MiB. Agents send
/// well under 1 KiB.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Connections refused at the limit are told so by at most this many tasks at once; past
/// that they are just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// Serve `router` until `stop` turns true (or its sender is dropped), then stop accepting,
/// let open connections finish their current request, and return when all are closed.
pub(crate) async fn serve<L>(
    mut listener: L,
    routes: impl Routes,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()>
where
    L: axum::serve::Listener,
    L::Io: PeerOf,
{
    let graceful = GracefulShutdown::new();
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut builder = http1::Builder::new();
    // No hyper timer: its header timeout would also end idle connections; the clock does.
    builder.max_buf_size(MAX_HEAD_BYTES).keep_alive(true);
    loop {
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let Ok(permit) = Arc::clone(&limits.connections).try_acquire_owned() else {
            limits.count(Answer::ConnectionLimit);
            if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(io).await;
                    drop(refusal);
                });
            }
            continue;
        };
        // Who is calling, as the kernel says: read once, handed to every request.
        let peer = io.peer();
        let requests = Arc::new(Requests::default());
        let io = Clocked::new(io, Arc::clone(&requests), limits.deadlines);
        let connection =
            builder.serve_connection(TokioIo::new(io), bounded(&routes, &limits, peer, requests));
        let connection = graceful.watch(connection);
        let limits = limits.clone();
        tokio::spawn(async move {
            // Errors here are the client's (reset, timeout, bad HTTP): nothing to report,
            // but hyper's own answers to a bad request head are answers, and counted.
            if let Err(error) = connection.await {
                if error.is_parse_too_large() {
                    limits.count(Answer::HeadersTooLarge);
                } else if error.is_parse() {
                    limits.count(Answer::MalformedHttp);
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The routes behind the request bounds: a permit from `requests`, then the whole request
/// (body and answer) within `request_timeout`, else 408 and the connection closed. Each
/// request is counted in `in_progress`, the connection's clock.
fn bounded<R: Routes>(
    routes: &R,
    limits: &Limits,
    peer: Peer,
    in_progress: Arc<Requests>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future: Send,
> + Clone
+ use<R> {
    let routes = routes.clone();
    let requests = Arc::clone(&limits.requests);
    let timeout = limits.request_timeout;
    let limits = limits.clone();
    service_fn(move |request: Request<Incoming>| {
        let answering = in_progress.start();
        let answer = routes.clone().answer(request, peer.clone());
        let requests = Arc::clone(&requests);
        let limits = limits.clone();
        async move {
            let _answering = answering;
            let work = async {
                // Never closed, so the permit always comes.
                let _permit = requests.acquire_owned().await;
                answer.await
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(response) => Ok(response),
                Err(_) => {
                    limits.count(Answer::RequestTimeout);
                    Ok(timed_out(timeout))
                }
            }
        }
    })
}

fn timed_out(timeout: Duration) -> Response {
    let mut response = text_response(
        super::status_of(Answer::RequestTimeout),
        format!("request not received and answered within {timeout:?}"),
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The peer of an accepted connection.
pub(crate) trait PeerOf {
    fn peer(&self) -> Peer;
}

impl PeerOf for tokio::net::TcpStream {
    fn peer(&self) -> Peer {
        Peer::of_tcp(self)
    }
}

impl PeerOf for tokio::net::UnixStream {
    fn peer(&self) -> Peer {
        Peer::of_unix(self)
    }
}

/// Tell a connection past the limit to come back later, then close it.
async fn refuse<I>(mut io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
        content-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: 36\r\n\r\n\
        too many connections: retry shortly\n";
    let write = async {
        io.write_all(REFUSAL).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
