//! What the core decides: the reply, its status class, and the side effects.

use std::time::Duration;

use odigos_opamp_proto::opamp::proto::{
    RetryInfo, ServerCapabilities, ServerErrorResponse, ServerErrorResponseType, ServerToAgent,
    server_error_response::Details,
};
use serde::Serialize;

use crate::identity::IdentityError;
use crate::protocol::instance::{InstanceKey, InstanceRecord};

/// Capabilities set in every response: we accept status reports and offer remote config.
pub const SERVER_CAPABILITIES: u64 =
    ServerCapabilities::AcceptsStatus as u64 | ServerCapabilities::OffersRemoteConfig as u64;

/// How the transport must answer: the HTTP status class of the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ReplyStatus {
    /// 200.
    Ok,
    /// 400: the request is malformed; retrying it unchanged will not help.
    BadRequest,
    /// 401: the agent's identity is missing or not recognised.
    Unauthorized,
    /// 409: the message claims an agent that is bound to another identity.
    Conflict,
    /// 503 with `Retry-After`: try again later.
    Unavailable { retry_after_secs: u64 },
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
    pub status: ReplyStatus,
    /// Boxed: a `ServerToAgent` is ~1.5 KB inline, and an outcome is moved several times
    /// on its way to the transport.
    pub response: Box<ServerToAgent>,
    pub effects: Vec<Effect>,
    /// The registry must drop the agent after answering (disconnect).
    pub forget: bool,
    /// A short label for metrics and logs, e.g. `ack`, `new_agent`, `bad_request`.
    pub label: &'static str,
}

impl Outcome {
    /// A 200 reply with no effects.
    pub fn ok(response: ServerToAgent, label: &'static str) -> Self {
        Outcome {
            status: ReplyStatus::Ok,
            response: Box::new(response),
            effects: Vec::new(),
            forget: false,
            label,
        }
    }

    /// A 400 reply carrying `error_response { BAD_REQUEST }`.
    pub fn bad_request(instance_uid: Vec<u8>, message: impl Into<String>) -> Self {
        let response = error_response(
            instance_uid,
            ServerErrorResponseType::BadRequest,
            message.into(),
            None,
        );
        Outcome {
            status: ReplyStatus::BadRequest,
            response: Box::new(response),
            effects: Vec::new(),
            forget: false,
            label: "bad_request",
        }
    }

    /// A 503 reply with `Retry-After` and `error_response { UNAVAILABLE, retry_info }`.
    pub fn unavailable(
        instance_uid: Vec<u8>,
        message: String,
        retry_after: Duration,
        label: &'static str,
    ) -> Self {
        let retry = RetryInfo {
            retry_after_nanoseconds: saturating_nanos(retry_after),
        };
        let response = error_response(
            instance_uid,
            ServerErrorResponseType::Unavailable,
            message,
            Some(retry),
        );
        Outcome {
            status: ReplyStatus::Unavailable {
                retry_after_secs: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            },
            response: Box::new(response),
            effects: Vec::new(),
            forget: false,
            label,
        }
    }

    /// A 409 reply carrying `error_response { BAD_REQUEST }`; nothing is changed.
    pub fn conflict(instance_uid: Vec<u8>, message: String) -> Self {
        let response = error_response(
            instance_uid,
            ServerErrorResponseType::BadRequest,
            message,
            None,
        );
        Outcome {
            status: ReplyStatus::Conflict,
            response: Box::new(response),
            effects: Vec::new(),
            forget: false,
            label: "conflict",
        }
    }

    /// The reply to a failed identity resolution (docs/protocol.md §3 and §2's transient row).
    pub fn identity_failure(instance_uid: Vec<u8>, error: &IdentityError) -> Self {
        let message = error.to_string();
        let (status, response, label) = match error {
            IdentityError::Unavailable { retry_after, .. } => {
                let retry = RetryInfo {
                    retry_after_nanoseconds: saturating_nanos(*retry_after),
                };
                let response = error_response(
                    instance_uid,
                    ServerErrorResponseType::Unavailable,
                    message,
                    Some(retry),
                );
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                (
                    ReplyStatus::Unavailable {
                        retry_after_secs: secs,
                    },
                    response,
                    "unavailable",
                )
            }
            IdentityError::MalformedDeviceId(_) => {
                let response = error_response(
                    instance_uid,
                    ServerErrorResponseType::BadRequest,
                    message,
                    None,
                );
                (ReplyStatus::BadRequest, response, "bad_request")
            }
            IdentityError::Missing
            | IdentityError::UnknownDevice(_)
            | IdentityError::Unverified(_) => {
                let response = error_response(
                    instance_uid,
                    ServerErrorResponseType::BadRequest,
                    message,
                    None,
                );
                (ReplyStatus::Unauthorized, response, "unauthorized")
            }
        };
        Outcome {
            status,
            response: Box::new(response),
            effects: Vec::new(),
            forget: false,
            label,
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

fn error_response(
    instance_uid: Vec<u8>,
    kind: ServerErrorResponseType,
    error_message: String,
    retry: Option<RetryInfo>,
) -> ServerToAgent {
    let error = ServerErrorResponse {
        r#type: kind as i32,
        error_message,
        details: retry.map(Details::RetryInfo),
    };
    ServerToAgent {
        error_response: Some(error),
        ..ack(instance_uid)
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
