//! The agent listener's HTTP surface (docs/protocol.md §2): `POST /v1/opamp` and nothing else.

pub(crate) mod body;
pub(crate) mod clock;
pub(crate) mod negotiation;
pub(crate) mod serve;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use odigos_opamp_proto::opamp::proto::AgentToServer;
use prost::Message;

use crate::exchange::Exchange;
use crate::identity::{DEVICE_ID_HEADER, NonUtf8Header, Peer};
use crate::protocol::{self, Answer, Outcome};
use body::BodyError;
use negotiation::PROTOBUF;

/// The one path agents post to.
pub const OPAMP_PATH: &str = "/v1/opamp";

/// What the agent listeners share.
pub(crate) struct AgentService {
    pub exchange: Arc<Exchange>,
    /// Largest accepted body, after decompression.
    pub max_body_bytes: usize,
    /// Responses smaller than this are not gzipped, even when the client accepts gzip.
    pub gzip_min_bytes: usize,
}

/// The agent listener's router: `POST /v1/opamp`, 405 for other methods, 404 elsewhere.
pub(crate) fn router(service: Arc<AgentService>) -> Router {
    Router::new()
        .route(OPAMP_PATH, post(opamp).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(service)
}

/// The agent listener as it serves connections: `POST /v1/opamp`, nearly every request,
/// goes straight to its handler; anything else takes the router (its 404 and 405). Same
/// answers as [`router`] alone (which in-process callers use), without the routing,
/// boxing and service layers on each heartbeat.
#[derive(Clone)]
pub(crate) struct AgentRoutes {
    service: Arc<AgentService>,
    router: Router,
}

impl AgentRoutes {
    pub(crate) fn new(service: Arc<AgentService>) -> Self {
        AgentRoutes {
            router: router(Arc::clone(&service)),
            service,
        }
    }
}

impl serve::Routes for AgentRoutes {
    fn answer(
        self,
        request: hyper::Request<hyper::body::Incoming>,
        peer: Peer,
    ) -> impl Future<Output = Response> + Send {
        let direct = request.method() == Method::POST && request.uri().path() == OPAMP_PATH;
        async move {
            if direct {
                // Boxed: the handler's state is kilobytes, and the layers above (timeout,
                // hyper's dispatcher) would otherwise copy it each time they move it.
                Box::pin(self.service.opamp(request, peer)).await
            } else {
                self.router.answer(request, peer).await
            }
        }
    }
}

async fn opamp(State(service): State<Arc<AgentService>>, request: Request) -> Response {
    // Set by the connection's accept loop (serve.rs); absent only when driven in process.
    let peer = request
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or_default();
    service.opamp(request, peer).await
}

impl AgentService {
    /// One `POST /v1/opamp`, timed and counted. Generic over the body: hyper's own from a
    /// connection (not boxed again), axum's from the router.
    async fn opamp<B: body::RequestBody>(
        &self,
        request: axum::http::Request<B>,
        peer: Peer,
    ) -> Response {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let (answer, response) = self.answer(&parts.headers, body, peer).await;
        self.exchange.metrics.request(answer, started.elapsed());
        response
    }

    async fn answer<B: body::RequestBody>(
        &self,
        headers: &HeaderMap,
        body: B,
        peer: Peer,
    ) -> (Answer, Response) {
        if !negotiation::is_protobuf(headers) {
            let text = format!("unsupported Content-Type: expected {PROTOBUF}");
            return text_answer(Answer::UnsupportedMediaType, text);
        }
        let bytes = match body::read(headers, body, self.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(error @ BodyError::TooLarge { .. }) => {
                return text_answer(Answer::PayloadTooLarge, error.to_string());
            }
            Err(error @ BodyError::UnsupportedEncoding(_)) => {
                return text_answer(Answer::UnsupportedMediaType, error.to_string());
            }
            Err(error @ (BodyError::BadGzip(_) | BodyError::Read(_))) => {
                let outcome = protocol::undecodable(&error.to_string());
                return (outcome.answer, self.encode(outcome, headers));
            }
        };
        let outcome = match AgentToServer::decode(bytes) {
            Ok(mut msg) => {
                self.exchange
                    .handle(&mut msg, || device_id(headers), peer)
                    .await
            }
            Err(error) => protocol::undecodable(&error.to_string()),
        };
        (outcome.answer, self.encode(outcome, headers))
    }

    /// Encode once; gzip when the client allows it and the body is worth compressing.
    fn encode(&self, outcome: Outcome, request_headers: &HeaderMap) -> Response {
        let status = status_of(outcome.answer);
        if let Some(error) = &outcome.response.error_response {
            tracing::debug!(%status, message = %error.error_message, "rejected agent request");
        }
        let plain = outcome.response.encode_to_vec();
        let compressed = (plain.len() >= self.gzip_min_bytes
            && negotiation::accepts_gzip(request_headers))
        .then(|| negotiation::gzip(&plain).ok())
        .flatten();
        let gzipped = compressed.is_some();
        // Static header values: no parsing or copying on every response.
        let mut response = Response::new(Body::from(compressed.unwrap_or(plain)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
        if let Some(seconds) = outcome.retry_after_secs {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if gzipped {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

/// The `X-Odigos-DeviceId` header, trimmed; borrowed, copied only for a new agent.
fn device_id(headers: &HeaderMap) -> Option<Result<&str, NonUtf8Header>> {
    headers
        .get(DEVICE_ID_HEADER)
        .map(|v| v.to_str().map(str::trim).map_err(|_| NonUtf8Header))
}

async fn method_not_allowed(State(service): State<Arc<AgentService>>) -> Response {
    service.exchange.metrics.count(Answer::MethodNotAllowed);
    let (_, mut response) = text_answer(
        Answer::MethodNotAllowed,
        format!("method not allowed: use POST {OPAMP_PATH}"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn not_found(State(service): State<Arc<AgentService>>) -> Response {
    service.exchange.metrics.count(Answer::NotFound);
    text_answer(
        Answer::NotFound,
        format!("not found: this listener serves only POST {OPAMP_PATH}"),
    )
    .1
}

/// The HTTP status of an answer.
pub(crate) fn status_of(answer: Answer) -> StatusCode {
    StatusCode::from_u16(answer.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A plain-text refusal of the transport, with its answer.
fn text_answer(answer: Answer, text: String) -> (Answer, Response) {
    (answer, text_response(status_of(answer), text))
}

/// A plain-text error response.
pub(crate) fn text_response(status: StatusCode, text: String) -> Response {
    (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
