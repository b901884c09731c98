//! What the server answers: every kind of answer ([`Answer`], with its HTTP status and
//! metric label), and the core's full decision for one message ([`Outcome`]: the reply, the
//! side effects, whether to forget the agent).

use std::time::Duration;

use odigos_opamp_proto::opamp::proto::{
    RetryInfo, ServerCapabilities, ServerErrorResponse, ServerErrorResponseType, ServerToAgent,
    server_error_response::Details,
};
use serde::{Serialize, Serializer};

use crate::identity::IdentityError;
use crate::protocol::instance::{InstanceKey, InstanceRecord};

/// Capabilities set in every response: we accept status reports and offer remote config.
pub const SERVER_CAPABILITIES: u64 =
    ServerCapabilities::AcceptsStatus as u64 | ServerCapabilities::OffersRemoteConfig as u64;

/// Every answer an agent listener gives, transport refusals included. Each is counted in
/// `odigos_opamp_requests_total{outcome="<label>"}`; the README's metrics table lists them
/// all (checked by a test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// 200: a heartbeat, acknowledged (docs/protocol.md §4).
    Ack,
    /// 200: the remote config again (changed, or the agent reported another hash).
    RemoteConfig,
    /// 200: a new agent, registered, with the full remote config.
    NewAgent,
    /// 200 with `ReportFullState`: an unknown uid without a description, or a sequence gap.
    ReportFullState,
    /// 200: a disconnect; the agent is forgotten.
    Disconnect,
    /// 200: a disconnect of a uid the server does not know.
    DisconnectUnknown,
    /// 400: a message the server cannot act on (uid, size, pid or language, device id).
    BadRequest,
    /// 400: a body that is not an `AgentToServer` (or not valid gzip).
    Undecodable,
    /// 400: not valid HTTP/1.1 (hyper's own answer).
    MalformedHttp,
    /// 401: no identity, or one that matches no container of this node (§3).
    Unauthorized,
    /// 403: the connection names another pod, container or process than the agent claims,
    /// or a registered uid's message comes from another peer (§3).
    PeerMismatch,
    /// 403: the connection names no pod, and `--peer-verification required` (§3).
    PeerUnverifiable,
    /// 409: the uid is bound to another device id (§3).
    DeviceMismatch,
    /// 503 with `Retry-After`: the identity cannot be checked now (kubelet or API away).
    Unavailable,
    /// 503 with `Retry-After`: the agent cap is reached.
    OverCapacity,
    /// 503, and the connection closed: the connection cap is reached.
    ConnectionLimit,
    /// 404: another path.
    NotFound,
    /// 405: another method.
    MethodNotAllowed,
    /// 408: the body and answer did not fit in the request timeout.
    RequestTimeout,
    /// 413: the body is larger than `--max-body-bytes` (after gzip).
    PayloadTooLarge,
    /// 415: not `application/x-protobuf`, or an encoding other than gzip.
    UnsupportedMediaType,
    /// 431: the request head is larger than 16 KiB.
    HeadersTooLarge,
}

impl Answer {
    /// Every answer, in the README's order.
    pub const ALL: [Answer; 22] = [
        Answer::Ack,
        Answer::RemoteConfig,
        Answer::NewAgent,
        Answer::ReportFullState,
        Answer::Disconnect,
        Answer::DisconnectUnknown,
        Answer::BadRequest,
        Answer::Undecodable,
        Answer::MalformedHttp,
        Answer::Unauthorized,
        Answer::PeerMismatch,
        Answer::PeerUnverifiable,
        Answer::DeviceMismatch,
        Answer::Unavailable,
        Answer::OverCapacity,
        Answer::ConnectionLimit,
        Answer::NotFound,
        Answer::MethodNotAllowed,
        Answer::RequestTimeout,
        Answer::PayloadTooLarge,
        Answer::UnsupportedMediaType,
        Answer::HeadersTooLarge,
    ];

    /// The refusals of the exchange that `identity_resolution_failures_total{reason}` also
    /// counts, beside the identity layer's own errors.
    pub const IDENTITY_REFUSALS: [Answer; 4] = [
        Answer::PeerMismatch,
        Answer::PeerUnverifiable,
        Answer::DeviceMismatch,
        Answer::OverCapacity,
    ];

    /// The HTTP status code.
    pub const fn status_code(self) -> u16 {
        match self {
            Answer::Ack
            | Answer::RemoteConfig
            | Answer::NewAgent
            | Answer::ReportFullState
            | Answer::Disconnect
            | Answer::DisconnectUnknown => 200,
            Answer::BadRequest | Answer::Undecodable | Answer::MalformedHttp => 400,
            Answer::Unauthorized => 401,
            Answer::PeerMismatch | Answer::PeerUnverifiable => 403,
            Answer::NotFound => 404,
            Answer::MethodNotAllowed => 405,
            Answer::RequestTimeout => 408,
            Answer::DeviceMismatch => 409,
            Answer::PayloadTooLarge => 413,
            Answer::UnsupportedMediaType => 415,
            Answer::HeadersTooLarge => 431,
            Answer::Unavailable | Answer::OverCapacity | Answer::ConnectionLimit => 503,
        }
    }

    /// The `outcome` label in metrics, and the word in logs.
    pub const fn label(self) -> &'static str {
        match self {
            Answer::Ack => "ack",
            Answer::RemoteConfig => "remote_config",
            Answer::NewAgent => "new_agent",
            Answer::ReportFullState => "report_full_state",
            Answer::Disconnect => "disconnect",
            Answer::DisconnectUnknown => "disconnect_unknown",
            Answer::BadRequest => "bad_request",
            Answer::Undecodable => "undecodable",
            Answer::MalformedHttp => "malformed_http",
            Answer::Unauthorized => "unauthorized",
            Answer::PeerMismatch => "peer_mismatch",
            Answer::PeerUnverifiable => "peer_unverifiable",
            Answer::DeviceMismatch => "device_mismatch",
            Answer::Unavailable => "unavailable",
            Answer::OverCapacity => "over_capacity",
            Answer::ConnectionLimit => "connection_limit",
            Answer::NotFound => "not_found",
            Answer::MethodNotAllowed => "method_not_allowed",
            Answer::RequestTimeout => "request_timeout",
            Answer::PayloadTooLarge => "payload_too_large",
            Answer::UnsupportedMediaType => "unsupported_media_type",
            Answer::HeadersTooLarge => "headers_too_large",
        }
    }

    /// A 200: the agent was served.
    pub const fn is_ok(self) -> bool {
        self.status_code() == 200
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// A side effect for the instance store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Effect {
    /// Create or update the agent's resource.
    WriteInstance(Box<InstanceRecord>),
    /// Delete the agent's resource.
    DeleteInstance(InstanceKey),
}

/// The core's answer to one message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub answer: Answer,
    /// `Retry-After`, in whole seconds, of a 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// Boxed: a `ServerToAgent` is ~1.5 KB inline, and an outcome is moved several times
    /// on its way to the transport.
    pub response: Box<ServerToAgent>,
    pub effects: Vec<Effect>,
    /// The registry must drop the agent after answering (disconnect).
    pub forget: bool,
}

impl Outcome {
    /// A 200 reply with no effects.
    pub fn ok(response: ServerToAgent, answer: Answer) -> Self {
        debug_assert!(answer.is_ok(), "{answer:?} is not a 200");
        Outcome {
            answer,
            retry_after_secs: None,
            response: Box::new(response),
            effects: Vec::new(),
            forget: false,
        }
    }

    /// A refusal: `answer`'s status, with an `error_response` of `kind` saying `message`
    /// (and, with `retry_after`, `retry_info` and `Retry-After`). Nothing is changed.
    pub fn refusal(
        answer: Answer,
        instance_uid: Vec<u8>,
        kind: ServerErrorResponseType,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let error = ServerErrorResponse {
            r#type: kind as i32,
            error_message: message.into(),
            details: retry_after.map(|after| {
                Details::RetryInfo(RetryInfo {
                    retry_after_nanoseconds: u64::try_from(after.as_nanos()).unwrap_or(u64::MAX),
                })
            }),
        };
        let response = ServerToAgent {
            error_response: Some(error),
            ..ack(instance_uid)
        };
        Outcome {
            answer,
            retry_after_secs: retry_after.map(|d| d.as_secs_f64().ceil().max(1.0) as u64),
            response: Box::new(response),
            effects: Vec::new(),
            forget: false,
        }
    }

    /// 400 with `error_response { BAD_REQUEST }`.
    pub fn bad_request(instance_uid: Vec<u8>, message: impl Into<String>) -> Self {
        let kind = ServerErrorResponseType::BadRequest;
        Self::refusal(Answer::BadRequest, instance_uid, kind, message, None)
    }

    /// The reply to a failed identity resolution (docs/protocol.md §3, and §2's transient
    /// row): 503 to come back later, 400 for a malformed device id, else 401.
    pub fn identity_failure(instance_uid: Vec<u8>, error: &IdentityError) -> Self {
        let message = error.to_string();
        match error {
            IdentityError::Unavailable { retry_after, .. } => Self::refusal(
                Answer::Unavailable,
                instance_uid,
                ServerErrorResponseType::Unavailable,
                message,
                Some(*retry_after),
            ),
            IdentityError::MalformedDeviceId(_) => Self::bad_request(instance_uid, message),
            IdentityError::Missing
            | IdentityError::UnknownDevice(_)
            | IdentityError::Unverified(_) => Self::refusal(
                Answer::Unauthorized,
                instance_uid,
                ServerErrorResponseType::BadRequest,
                message,
                None,
            ),
        }
    }
}

/// A plain acknowledgement: the uid echoed and our capabilities.
pub fn ack(instance_uid: Vec<u8>) -> ServerToAgent {
    ServerToAgent {
        instance_uid,
        capabilities: SERVER_CAPABILITIES,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_statuses_are_http_codes() {
        let mut labels: Vec<&str> = Answer::ALL.iter().map(|a| a.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Answer::ALL.len());
        for answer in Answer::ALL {
            assert!((200..600).contains(&answer.status_code()), "{answer:?}");
            assert_eq!(
                serde_json::to_value(answer).unwrap(),
                serde_json::json!(answer.label())
            );
        }
    }

    #[test]
    fn a_refusal_with_a_retry_carries_it_twice() {
        let outcome = Outcome::refusal(
            Answer::OverCapacity,
            b"u".to_vec(),
            ServerErrorResponseType::Unavailable,
            "full",
            Some(Duration::from_millis(1500)),
        );
        assert_eq!(outcome.retry_after_secs, Some(2));
        let error = outcome.response.error_response.unwrap();
        assert_eq!(
            error.details,
            Some(Details::RetryInfo(RetryInfo {
                retry_after_nanoseconds: 1_500_000_000
            }))
        );
    }
}
