//! Who is this agent? docs/protocol.md §3.
//!
//! The transport asks an [`Identity`] implementation once per new agent (never on heartbeats).
//! It passes what the request carried: the `X-Odigos-DeviceId` header and the self-reported
//! `k8s.*` identifying attributes. The answer is the pod, container and owning workload.
//!
//! The trait is object safe (`Arc<dyn Identity>`) and returns a boxed future, so a Kubernetes
//! implementation can do async I/O (kubelet PodResources, Pod lookups) without the server
//! being generic over it. The cost, one allocation per *new* agent, is irrelevant.

pub mod cgroup;
mod peer;
mod static_table;
mod workload;

pub use peer::{Peer, PeerFacts, ProcessPeer, is_node_address};
pub use static_table::{DeviceRow, DeviceTable, DeviceTableError, StaticTableIdentity};
pub use workload::{Workload, WorkloadKind, WorkloadKindParseError};

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

/// The request header carrying the device id allocated by the kubelet.
pub const DEVICE_ID_HEADER: &str = "x-odigos-deviceid";

/// What a request tells about its sender, before anything is verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityRequest {
    /// The `X-Odigos-DeviceId` header, trimmed; `Err` when it was not valid UTF-8.
    pub device_id: Option<Result<String, NonUtf8Header>>,
    /// Self-reported `k8s.namespace.name`.
    pub namespace: Option<String>,
    /// Self-reported `k8s.pod.name`.
    pub pod: Option<String>,
    /// Self-reported `k8s.container.name`.
    pub container: Option<String>,
    /// Who the connection says is calling.
    pub peer: Peer,
}

/// A header value that is not valid UTF-8 (kept so the error can say so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonUtf8Header;

/// A verified identity: the pod and container the agent runs in, and its workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedIdentity {
    pub namespace: String,
    pub pod_name: String,
    /// The Pod's uid, when the implementation knows it (needed for owner references).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    pub container: String,
    pub workload: Workload,
}

/// Why an identity could not be resolved.
///
/// Everything but [`IdentityError::Unavailable`] is the client's fault: the server answers
/// 400 or 401 and creates no state. `Unavailable` is transient: the server answers 503 with
/// `Retry-After` so the agent tries again later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "no identity: send header X-Odigos-DeviceId, or identifying attributes \
         k8s.namespace.name, k8s.pod.name and k8s.container.name"
    )]
    Missing,
    #[error("malformed X-Odigos-DeviceId header: {0}")]
    MalformedDeviceId(String),
    #[error("unknown device id {0:?}: no container on this node was allocated it")]
    UnknownDevice(String),
    #[error("unverified identity: {0}")]
    Unverified(String),
    #[error("identity temporarily unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
}

impl IdentityError {
    /// Every [`Self::kind`], as `identity_resolution_failures_total{reason}` counts them.
    pub const KINDS: [&'static str; 5] = [
        "missing",
        "malformed",
        "unknown_device",
        "unverified",
        "unavailable",
    ];

    /// A short stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentityError::Missing => "missing",
            IdentityError::MalformedDeviceId(_) => "malformed",
            IdentityError::UnknownDevice(_) => "unknown_device",
            IdentityError::Unverified(_) => "unverified",
            IdentityError::Unavailable { .. } => "unavailable",
        }
    }
}

/// The future returned by [`Identity::resolve`].
pub type IdentityFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ResolvedIdentity, IdentityError>> + Send + 'a>>;

/// Resolves who an agent is. Called once per new agent, outside any lock.
pub trait Identity: Send + Sync + 'static {
    /// Verify the request's claims and return the agent's pod, container and workload.
    fn resolve<'a>(&'a self, request: &'a IdentityRequest) -> IdentityFuture<'a>;

    /// Whether this implementation can answer now (drives `/readyz`).
    fn is_ready(&self) -> bool {
        true
    }

    /// What the connection says about who is calling (docs/protocol.md §3.1, peer
    /// verification), for a new agent that `claim`s to be a container this identity
    /// resolved. Called outside any lock, so it may read `/proc`; must answer from memory
    /// otherwise. Without pods to match peers with: unresolved.
    fn peer_facts(&self, _peer: &Peer, _claim: &ResolvedIdentity) -> PeerFacts {
        PeerFacts::unresolved("this identity source has no pods to match connections with")
    }
}

impl IdentityRequest {
    /// The device id to use, if the request carries one.
    ///
    /// A header that is present but empty, too long, not UTF-8 or with characters other
    /// than letters, digits, `-`, `_`, `.` and `:` is malformed.
    pub fn device_id(&self) -> Result<Option<&str>, IdentityError> {
        const MAX_LEN: usize = 128;
        let Some(header) = &self.device_id else {
            return Ok(None);
        };
        let id = header
            .as_ref()
            .map_err(|_| IdentityError::MalformedDeviceId("not valid UTF-8".into()))?;
        if id.is_empty() {
            return Err(IdentityError::MalformedDeviceId("empty".into()));
        }
        if id.len() > MAX_LEN {
            return Err(IdentityError::MalformedDeviceId(format!(
                "{} bytes, at most {MAX_LEN} allowed",
                id.len()
            )));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if let Some(bad) = id.chars().find(|c| !valid(*c)) {
            return Err(IdentityError::MalformedDeviceId(format!(
                "character {bad:?} not allowed"
            )));
        }
        Ok(Some(id))
    }

    /// The self-reported (namespace, pod, container), when all three are present and
    /// non-empty.
    pub fn self_reported(&self) -> Option<(&str, &str, &str)> {
        fn non_empty(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        Some((
            non_empty(&self.namespace)?,
            non_empty(&self.pod)?,
            non_empty(&self.container)?,
        ))
    }
}
