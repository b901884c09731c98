//! Peer verification (docs/protocol.md §3.1): the rules that hold an agent's claims against
//! what its connection says, as pure functions.
//!
//! | the connection says | `off` | `when-possible` (default) | `required` |
//! |---|---|---|---|
//! | the claimed pod (TCP), or the claimed pod, container and vpid (unix socket) | served, not checked | served, **verified** | served, **verified** |
//! | another pod, container or vpid; over TCP, an address from outside this node (the claimed pod lists its IPs) | served, not checked | **403** `peer_mismatch` | **403** `peer_mismatch` |
//! | no pod (the node's address, a `hostNetwork` pod, a process outside a pod, no `/proc`) | served, not checked | served, **unverified** | **403** `peer_unverifiable` |
//!
//! And on every later message of a registered uid: it must come from the peer it was
//! registered from (the same address, or the same process: pid and start time), else
//! **403** `peer_mismatch`, whatever the setting but `off`.

use odigos_opamp_proto::opamp::proto::ServerErrorResponseType;
use serde::Serialize;

use crate::identity::{Peer, PeerFacts, ResolvedIdentity};
use crate::protocol::{Answer, Outcome};
use crate::settings::PeerVerification;

/// How an agent's identity was checked against its connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "why")]
pub enum Verification {
    /// The connection names the claimed pod (and container and process).
    Verified,
    /// The connection names no pod: the claims were checked, not the caller.
    Unverified(String),
    /// Peer verification is off.
    #[default]
    NotChecked,
}

/// The words of [`Verification::label`], in the order of its variants.
const LABELS: [&str; 3] = ["verified", "unverified", "not-checked"];

impl Verification {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verification::Verified)
    }

    /// The word for `/agents`, metrics and the resource's label.
    pub fn label(&self) -> &'static str {
        match self {
            Verification::Verified => LABELS[0],
            Verification::Unverified(_) => LABELS[1],
            Verification::NotChecked => LABELS[2],
        }
    }

    /// The label of `text`, when it is one of [`Self::label`]'s words.
    pub fn known_label(text: &str) -> Option<&'static str> {
        LABELS.into_iter().find(|label| *label == text)
    }
}

/// A new agent: does its connection agree with who it says it is (`identity`, with the
/// `pid` it reports)? A refusal is an outcome to answer with; nothing is created.
pub fn verify_peer(
    uid: &[u8],
    identity: &ResolvedIdentity,
    pid: i64,
    facts: &PeerFacts,
    policy: PeerVerification,
) -> Result<Verification, Box<Outcome>> {
    if policy == PeerVerification::Off {
        return Ok(Verification::NotChecked);
    }
    let claim = format!(
        "{}/{} container {}",
        identity.namespace, identity.pod_name, identity.container
    );
    let mismatch = |seen: String| {
        Err(Box::new(refusal(
            Answer::PeerMismatch,
            uid,
            format!(
                "the connection comes from {seen}, not from {claim} as the agent reports: an \
                 agent can only speak for its own pod and container"
            ),
        )))
    };
    let same_pod =
        |namespace: &str, pod: &str| namespace == identity.namespace && pod == identity.pod_name;
    match facts {
        PeerFacts::Pod { namespace, pod } if same_pod(namespace, pod) => Ok(Verification::Verified),
        PeerFacts::Pod { namespace, pod } => mismatch(format!("pod {namespace}/{pod}")),
        PeerFacts::OffNode { address } => mismatch(format!(
            "{address}, an address of neither a pod of this node nor the node itself (another \
             node, or outside the cluster),"
        )),
        PeerFacts::Container {
            namespace,
            pod,
            container,
            vpid,
        } => {
            if !same_pod(namespace, pod) || *container != identity.container {
                return mismatch(format!("{namespace}/{pod} container {container}"));
            }
            match vpid {
                Some(vpid) if *vpid != pid => mismatch(format!(
                    "process {vpid} of {claim}, not process {pid} as the agent reports"
                )),
                _ => Ok(Verification::Verified),
            }
        }
        PeerFacts::Unresolved { why } => match policy {
            PeerVerification::Required => Err(Box::new(refusal(
                Answer::PeerUnverifiable,
                uid,
                format!(
                    "this server serves only agents whose connection names their pod \
                     (--peer-verification required), and this one does not: {why}"
                ),
            ))),
            _ => Ok(Verification::Unverified(why.clone())),
        },
    }
}

/// A registered agent's message: it must come from the peer it registered from.
/// `bound_alive` says whether that peer, when a process, is still running (a pid reused by
/// another process after it exited is not it).
pub fn check_bound_peer(
    uid: &[u8],
    bound: &Peer,
    now: &Peer,
    bound_alive: bool,
    policy: PeerVerification,
) -> Result<(), Box<Outcome>> {
    if policy == PeerVerification::Off || matches!(bound, Peer::Unknown) {
        return Ok(());
    }
    if bound == now && bound_alive {
        return Ok(());
    }
    Err(Box::new(refusal(
        Answer::PeerMismatch,
        uid,
        "this instance_uid was registered from another connection (another pod's address, \
         or another process): an agent can only send its own messages",
    )))
}

fn refusal(answer: Answer, uid: &[u8], message: impl Into<String>) -> Outcome {
    Outcome::refusal(
        answer,
        uid.to_vec(),
        ServerErrorResponseType::BadRequest,
        message,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Workload, WorkloadKind};

    fn claim() -> ResolvedIdentity {
        ResolvedIdentity {
            namespace: "shop".into(),
            pod_name: "coupon-1".into(),
            pod_uid: None,
            container: "app".into(),
            workload: Workload {
                kind: WorkloadKind::Deployment,
                name: "coupon".into(),
            },
        }
    }

    fn container(pod: &str, container: &str, vpid: Option<i64>) -> PeerFacts {
        PeerFacts::Container {
            namespace: "shop".into(),
            pod: pod.into(),
            container: container.into(),
            vpid,
        }
    }

    /// Every row of the table, under every setting: the answer, or the verification.
    #[test]
    fn the_table() {
        let pod = |name: &str| PeerFacts::Pod {
            namespace: "shop".into(),
            pod: name.into(),
        };
        let facts = [
            ("tcp, the claimed pod", pod("coupon-1")),
            ("tcp, another pod", pod("cart-0")),
            (
                "unix, the claimed container and vpid",
                container("coupon-1", "app", Some(7)),
            ),
            (
                "unix, no vpid to compare",
                container("coupon-1", "app", None),
            ),
            (
                "unix, another container",
                container("coupon-1", "sidecar", Some(7)),
            ),
            ("unix, another vpid", container("coupon-1", "app", Some(8))),
            ("unix, another pod", container("cart-0", "app", Some(7))),
            (
                "tcp, from outside the node",
                PeerFacts::OffNode {
                    address: [192, 0, 2, 2].into(),
                },
            ),
            ("no pod", PeerFacts::unresolved("the node's own address")),
        ];
        let policies = [
            PeerVerification::Off,
            PeerVerification::WhenPossible,
            PeerVerification::Required,
        ];
        let mut rows = Vec::new();
        for (what, facts) in &facts {
            for policy in policies {
                let result = match verify_peer(b"u", &claim(), 7, facts, policy) {
                    Ok(verification) => verification.label().to_owned(),
                    Err(outcome) => format!(
                        "{} {}",
                        outcome.answer.status_code(),
                        outcome.answer.label()
                    ),
                };
                rows.push(format!("{what:40} {policy:14} {result}"));
            }
        }
        insta::assert_snapshot!(rows.join("\n"));
    }

    #[test]
    fn a_registered_uid_must_keep_its_peer() {
        let ip = |s: &str| Peer::Tcp(s.parse().unwrap());
        let on = PeerVerification::WhenPossible;
        assert!(check_bound_peer(b"u", &ip("10.0.0.7"), &ip("10.0.0.7"), true, on).is_ok());
        let other = check_bound_peer(b"u", &ip("10.0.0.7"), &ip("10.0.0.8"), true, on);
        assert_eq!(other.unwrap_err().answer, Answer::PeerMismatch);
        let off = PeerVerification::Off;
        assert!(check_bound_peer(b"u", &ip("10.0.0.7"), &ip("10.0.0.8"), true, off).is_ok());
        assert!(check_bound_peer(b"u", &Peer::Unknown, &ip("10.0.0.8"), true, on).is_ok());
    }
}
