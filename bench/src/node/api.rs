//! The API requests our server makes, counted by the API server, watches included.
//!
//! `apiserver_request_total` counts a request when it completes, and a WATCH completes
//! only when it ends (the Kubernetes client ends its watches after 290 s and opens new
//! ones). So the watches opened in a window are the WATCHes that ended in it plus the
//! change of the open-watch gauge over it: `apiserver_longrunning_gauge` on kube-apiserver
//! v1.20, `apiserver_longrunning_requests` from v1.23 on (both read; one is there).
//!
//! The API server watches pods itself (its own informer, in protobuf, re-opened every 5 to
//! 10 minutes): requests in protobuf are not ours (our client speaks JSON) and are left out;
//! its watch re-opened leaves the gauge as it was.

use std::collections::BTreeMap;

use xtask::kube::{ControlPlane, WRITE_VERBS, metric_samples, request_samples};

use super::NodeBenchError;
use super::report::ApiCounts;
use crate::kube_store::{Counts, RESOURCES};
use crate::report::ApiRequests;

/// The API server's own clients' content type; ours never uses it.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The open-watch gauge, under its names across API server versions.
const OPEN_GAUGES: [&str; 2] = [
    "apiserver_longrunning_gauge",
    "apiserver_longrunning_requests",
];

/// The API server's counts at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    completed: Counts,
    /// Open WATCHes, by resource.
    open_watches: BTreeMap<String, u64>,
}

impl Snapshot {
    pub async fn take(plane: &ControlPlane) -> Result<Snapshot, NodeBenchError> {
        let text = plane
            .metrics_text()
            .await
            .map_err(|e| NodeBenchError::Api(format!("GET /metrics: {e}")))?;
        Ok(Snapshot::of(&text))
    }

    /// The counts of a Prometheus text page.
    pub fn of(metrics: &str) -> Snapshot {
        let mut open_watches = BTreeMap::new();
        for name in OPEN_GAUGES {
            for sample in metric_samples(metrics, name) {
                let resource = sample.label("resource");
                if sample.label("verb") == "WATCH" && RESOURCES.contains(&resource) {
                    *open_watches.entry(resource.to_owned()).or_default() += sample.value as u64;
                }
            }
        }
        let mut completed = Counts::new();
        for sample in request_samples(metrics) {
            let resource = sample.label("resource");
            if !RESOURCES.contains(&resource) || sample.label("contentType") == PROTOBUF {
                continue;
            }
            let key = (
                resource.to_owned(),
                sample.label("subresource").to_owned(),
                sample.label("verb").to_owned(),
            );
            *completed.entry(key).or_default() += sample.value as u64;
        }
        Snapshot {
            completed,
            open_watches,
        }
    }

    /// Writes completed so far, to tell when they stay still.
    pub fn writes(&self) -> u64 {
        self.completed
            .iter()
            .filter(|((_, _, verb), _)| WRITE_VERBS.contains(&verb.as_str()))
            .map(|(_, count)| count)
            .sum()
    }

    pub fn open_watches(&self) -> u64 {
        self.open_watches.values().sum()
    }
}

/// The requests between two snapshots; `own_lists` LISTs of InstrumentationInstances
/// were the bench's own and are not counted.
pub fn between(before: &Snapshot, after: &Snapshot, own_lists: u64) -> ApiCounts {
    let mut counts = ApiCounts::default();
    let mut own_lists = own_lists;
    for (key, &count) in &after.completed {
        let mut count = count.saturating_sub(before.completed.get(key).copied().unwrap_or(0));
        let (resource, subresource, verb) = key;
        if resource == "instrumentationinstances" && subresource.is_empty() && verb == "LIST" {
            let own = own_lists.min(count);
            own_lists -= own;
            count -= own;
        }
        if count == 0 {
            continue;
        }
        match verb.as_str() {
            "WATCH" => counts.watches_ended += count,
            "LIST" => counts.lists += count,
            verb if WRITE_VERBS.contains(&verb) => counts.writes += count,
            _ => counts.other_reads += count,
        }
        counts.completed.push(ApiRequests {
            resource: resource.clone(),
            subresource: subresource.clone(),
            verb: verb.clone(),
            count,
        });
    }
    let resources = before.open_watches.keys().chain(after.open_watches.keys());
    for resource in resources.collect::<std::collections::BTreeSet<_>>() {
        let ended = counts
            .completed
            .iter()
            .filter(|r| &r.resource == resource && r.verb == "WATCH")
            .map(|r| r.count)
            .sum::<u64>();
        let open = |s: &Snapshot| s.open_watches.get(resource).copied().unwrap_or(0) as i64;
        let opened = (ended as i64 + open(after) - open(before)).max(0) as u64;
        counts.watches_opened += opened;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"apiserver_longrunning_gauge{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_gauge{component="apiserver",group="odigos.io",resource="instrumentationconfigs",scope="cluster",subresource="",verb="WATCH",version="v1alpha1"} 1
apiserver_longrunning_gauge{component="apiserver",group="",resource="nodes",scope="cluster",subresource="",verb="WATCH",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",contentType="application/json",group="",resource="pods",scope="cluster",subresource="",verb="LIST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",contentType="application/vnd.kubernetes.protobuf",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",group="odigos.io",resource="instrumentationinstances",scope="namespace",subresource="",verb="LIST",version="v1alpha1"} 3
"#;

    #[test]
    fn a_watch_that_ended_and_reopened_counts_once_as_opened() {
        let before = Snapshot::of(BEFORE);
        assert_eq!(before.open_watches(), 2, "only our resources' watches");
        assert_eq!(
            before.completed.values().sum::<u64>(),
            4,
            "the API server's own (protobuf) pod watches are not ours"
        );
        // The pod watch ended (counted) and a new one opened (the gauge stays 1); two of
        // the three new InstrumentationInstance LISTs are the bench's own; one status write.
        let after = Snapshot::of(&format!(
            "{}apiserver_request_total{{code=\"200\",resource=\"pods\",subresource=\"\",verb=\"WATCH\"}} 1\n\
             apiserver_request_total{{code=\"201\",resource=\"instrumentationinstances\",subresource=\"status\",verb=\"APPLY\"}} 1\n",
            BEFORE.replace(
                "resource=\"instrumentationinstances\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1alpha1\"} 3",
                "resource=\"instrumentationinstances\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1alpha1\"} 6",
            )
        ));
        let counts = between(&before, &after, 2);
        assert_eq!(counts.watches_ended, 1);
        assert_eq!(counts.watches_opened, 1);
        assert_eq!(counts.lists, 1);
        assert_eq!(counts.writes, 1);
        assert_eq!(
            counts.requests(),
            3,
            "one LIST, one WATCH opened, one write"
        );
    }

    #[test]
    fn watches_opened_and_still_open_count_from_the_gauge() {
        let empty = Snapshot::default();
        let counts = between(&empty, &Snapshot::of(BEFORE), 0);
        assert_eq!(counts.watches_opened, 2);
        assert_eq!(counts.watches_ended, 0);
    }
}
