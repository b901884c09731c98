//! The start-up resync: this node's resources whose agents did not come back are deleted.
//!
//! A restarted server knows no agent. Live agents come back on their own: their next poll
//! is answered with `ReportFullState`, and the poll after that re-registers them, so within
//! two heartbeat intervals. The resync therefore
//!
//! 1. lists this node's resources (label `odigos.io/node`) as soon as the API server answers,
//!    and records what they hold, so an agent that comes back unchanged costs no write;
//! 2. waits a grace period from start (the stale period, 2.5 intervals by default: the time
//!    after which a silent agent would be dropped anyway);
//! 3. deletes the listed resources no agent has touched since start, except those the stale
//!    rule keeps (last reason `NoConnectionToOpAMPServer`) and unhealthy ones, which explain
//!    why a process ended (an unhealthy disconnect is kept on purpose, and a listed resource
//!    cannot tell it from a crash). Kept resources still count towards their pod's cap, as
//!    the oldest, and go with their pod.
//!
//! Nothing is deleted and recreated for a live agent, so no information is lost: the
//! resource simply stays, and is updated when the agent reports a change.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, ListParams};

use crate::kube::crds::InstrumentationInstance;
use crate::protocol::instance::InstanceStatus;
use tokio::time::Instant;

use super::KubeStore;
use super::resource::{self, NODE_LABEL, ObjectShape, ResourceRef, label_value};
use super::writer::{Op, Written};
use crate::kube::backoff::Backoff;

/// What the resync did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResyncReport {
    /// This node's resources found at start-up.
    pub listed: usize,
    /// Deleted: no agent came back for them.
    pub deleted: usize,
    /// Kept: lost connection or unhealthy.
    pub kept: usize,
}

struct Listed {
    resource: ResourceRef,
    pod: Option<String>,
    shape: ObjectShape,
    status: Option<InstanceStatus>,
}

/// Run the resync for `store`, which started at `started`. Ends when done.
pub(super) async fn run(store: Arc<KubeStore>, started: Instant, grace: Duration) -> ResyncReport {
    let listed = list_until_answered(&store).await;
    seed(&store, &listed);
    tokio::time::sleep_until(started + grace).await;

    let mut report = ResyncReport {
        listed: listed.len(),
        ..ResyncReport::default()
    };
    for item in listed {
        let mut book = store.book();
        if book.is_claimed(&item.resource) {
            continue;
        }
        if let Some(why) = resource::keep_reason(item.status.as_ref()) {
            tracing::info!(resource = %item.resource, why, "resync: agent gone, resource kept");
            report.kept += 1;
            continue;
        }
        tracing::info!(resource = %item.resource, "resync: agent gone, deleting its resource");
        book.deleted(&item.resource, item.pod.as_deref(), false);
        store.queue.push(item.resource, Op::Delete);
        report.deleted += 1;
    }
    tracing::info!(
        listed = report.listed,
        deleted = report.deleted,
        kept = report.kept,
        "resync done"
    );
    report
}

/// List this node's resources, retrying (with backoff) until the API server answers.
async fn list_until_answered(store: &KubeStore) -> Vec<Listed> {
    let writer = &store.writer;
    let api: Api<InstrumentationInstance> = Api::all(writer.client.clone());
    let params =
        ListParams::default().labels(&format!("{NODE_LABEL}={}", label_value(&writer.node)));
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    // Bounded by the task's life: aborted when the server stops.
    loop {
        match tokio::time::timeout(writer.request_timeout, api.list(&params)).await {
            Ok(Ok(list)) => {
                return list
                    .items
                    .into_iter()
                    .filter_map(|object| {
                        let resource = ResourceRef {
                            namespace: object.metadata.namespace.clone()?,
                            name: object.metadata.name.clone()?,
                        };
                        Some(Listed {
                            pod: resource::pod_owner(&object).map(|(pod, _)| pod.to_owned()),
                            shape: ObjectShape::of_object(&object),
                            status: object.status.clone(),
                            resource,
                        })
                    })
                    .collect();
            }
            Ok(Err(error)) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, "resync: cannot list this node's InstrumentationInstances yet");
                tokio::time::sleep(delay).await;
            }
            Err(_) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    ?delay,
                    "resync: listing this node's InstrumentationInstances timed out"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Remember what the listed resources hold, unless an agent already wrote them.
fn seed(store: &KubeStore, listed: &[Listed]) {
    // The book's lock first, as on the request path: an agent cannot claim a resource
    // between the check and the seeding, so a seed never hides a newer write.
    let mut book = store.book();
    let mut written = store.writer.written();
    for item in listed {
        if book.is_claimed(&item.resource) {
            continue;
        }
        book.listed(&item.resource, item.pod.as_deref());
        written
            .entry(item.resource.clone())
            .or_insert_with(|| Written {
                object: Some(item.shape.clone()),
                status: item
                    .status
                    .as_ref()
                    .map(|status| resource::status_digest(&resource::status_json(status))),
            });
    }
}
