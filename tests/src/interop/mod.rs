//! Wire compatibility of real clients with the server: our own agents (one
//! per language, each on its generated code) and three third-party OpAMP
//! clients, each run as a separate program against the server in-process.
//!
//! - [`fixture`]: the server on the embedded default (device table, memory
//!   config source and store), restartable on the same port, and its
//!   `GET /agents` view.
//! - [`tap`]: a recording HTTP/1.1 tap in front of the server: what each
//!   client sent and what it got, byte for byte ([`http1`] frames messages).
//! - [`process`]: a client program driven over stdio, JSON lines, bounded waits.
//! - [`agent_protocol`], [`agents`], [`conversation`]: our agents and the
//!   Odigos conversation they play step by step.
//! - [`thirdparty`]: opamp-go, `opentelemetry-opamp-client` and
//!   `@elastic/opamp-client-node`, pinned, and their scenario.
//! - [`render`]: exchanges and views as readable, deterministic snapshot text.

pub mod agent_protocol;
pub mod agents;
pub mod conversation;
pub mod fixture;
pub mod http1;
pub mod process;
pub mod render;
pub mod tap;
pub mod thirdparty;

use std::time::Duration;

use crate::langs::LangError;

/// Why an interop scenario failed. Every variant says which client or step.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lang(#[from] LangError),
    #[error("{0}")]
    Tool(#[from] xtask::tools::ToolError),
    #[error("the server did not start: {0}")]
    Server(#[from] odigos_opamp_server::StartError),
    #[error("{client}: {problem}\n--- its stderr (tail) ---\n{stderr}")]
    Client {
        client: String,
        problem: String,
        stderr: String,
    },
    #[error("timed out after {after:?} waiting for {what} ({seen})")]
    Timeout {
        what: String,
        after: Duration,
        seen: String,
    },
    #[error("{0}")]
    Check(String),
}

impl InteropError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        InteropError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Fails with `message` unless `condition` holds.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), InteropError> {
    if condition {
        Ok(())
    } else {
        Err(InteropError::Check(message()))
    }
}

/// A multi-threaded runtime for the server and the tap; the tests drive the
/// clients from their own (blocking) thread.
pub fn runtime() -> Result<tokio::runtime::Runtime, InteropError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| InteropError::io("building the tokio runtime", e))
}
