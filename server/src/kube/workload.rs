//! The workload that owns a pod, from its owner references (docs/protocol.md §3's table).
//!
//! Pure: the pod's name, labels and owner references in, a [`Workload`] out. No API reads:
//! naming the Deployment after its ReplicaSet (rather than reading the ReplicaSet) is what
//! lets identity be answered from the Pod watch alone.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::identity::{Workload, WorkloadKind};

/// Present on pods of an Argo Rollout's ReplicaSets.
pub const ROLLOUT_HASH_LABEL: &str = "rollouts-pod-template-hash";

/// The workload of a pod named `pod_name` with these labels and owner references.
///
/// The controller reference is used (the first reference when none is marked controller).
/// | owner | workload |
/// |---|---|
/// | ReplicaSet | Deployment (Argo `Rollout` with label `rollouts-pod-template-hash`), named after the ReplicaSet minus its last `-suffix` |
/// | ReplicationController | DeploymentConfig, name minus its last `-suffix` |
/// | Job | CronJob, name minus its last `-suffix`, when that suffix is all digits (a CronJob names its Jobs `<cronjob>-<scheduled minute>`); otherwise the Job itself |
/// | StatefulSet, DaemonSet, Deployment | itself |
/// | Node (a static pod) | StaticPod named after the pod |
/// | none, or any other kind | the Pod itself |
pub fn derive(
    pod_name: &str,
    labels: Option<&BTreeMap<String, String>>,
    owners: &[OwnerReference],
) -> Workload {
    let owner = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first());
    let workload = |kind, name: &str| Workload {
        kind,
        name: name.to_owned(),
    };
    let Some(owner) = owner else {
        return workload(WorkloadKind::Pod, pod_name);
    };
    let name = owner.name.as_str();
    match owner.kind.as_str() {
        "ReplicaSet" => {
            let rollout = labels.is_some_and(|l| l.contains_key(ROLLOUT_HASH_LABEL));
            let kind = if rollout {
                WorkloadKind::Rollout
            } else {
                WorkloadKind::Deployment
            };
            workload(kind, without_suffix(name))
        }
        "ReplicationController" => workload(WorkloadKind::DeploymentConfig, without_suffix(name)),
        "Job" => match name.rsplit_once('-') {
            Some((cronjob, minute))
                if !cronjob.is_empty()
                    && !minute.is_empty()
                    && minute.bytes().all(|b| b.is_ascii_digit()) =>
            {
                workload(WorkloadKind::CronJob, cronjob)
            }
            _ => workload(WorkloadKind::Job, name),
        },
        "StatefulSet" => workload(WorkloadKind::StatefulSet, name),
        "DaemonSet" => workload(WorkloadKind::DaemonSet, name),
        "Deployment" => workload(WorkloadKind::Deployment, name),
        "Node" => workload(WorkloadKind::StaticPod, pod_name),
        _ => workload(WorkloadKind::Pod, pod_name),
    }
}

/// `coupon-7d9f8b6c5d` → `coupon`; a name without a dash stays as it is.
fn without_suffix(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, _)) if !base.is_empty() => base,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, name: &str, controller: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u".into(),
            controller,
            block_owner_deletion: None,
        }
    }

    fn derived(kind: &str, name: &str) -> (WorkloadKind, String) {
        let w = derive("the-pod", None, &[owner(kind, name, Some(true))]);
        (w.kind, w.name)
    }

    #[test]
    fn each_owner_kind_names_its_workload() {
        let cases = [
            (
                "ReplicaSet",
                "coupon-7d9f8b6c5d",
                WorkloadKind::Deployment,
                "coupon",
            ),
            (
                "ReplicaSet",
                "my-web-app-5c7b",
                WorkloadKind::Deployment,
                "my-web-app",
            ),
            (
                "ReplicationController",
                "legacy-3",
                WorkloadKind::DeploymentConfig,
                "legacy",
            ),
            // A CronJob names its Jobs <cronjob>-<digits>; other Jobs are themselves.
            (
                "Job",
                "nightly-report-28512345",
                WorkloadKind::CronJob,
                "nightly-report",
            ),
            ("Job", "db-migrate", WorkloadKind::Job, "db-migrate"),
            ("Job", "migrate", WorkloadKind::Job, "migrate"),
            ("StatefulSet", "db", WorkloadKind::StatefulSet, "db"),
            ("DaemonSet", "agent", WorkloadKind::DaemonSet, "agent"),
            ("Deployment", "web", WorkloadKind::Deployment, "web"),
        ];
        for (kind, name, workload, workload_name) in cases {
            assert_eq!(
                derived(kind, name),
                (workload, workload_name.to_owned()),
                "{kind} {name}"
            );
        }
    }

    #[test]
    fn replica_set_with_the_rollout_label_is_an_argo_rollout() {
        let labels = BTreeMap::from([(ROLLOUT_HASH_LABEL.to_owned(), "abc".to_owned())]);
        let w = derive(
            "p",
            Some(&labels),
            &[owner("ReplicaSet", "canary-6f9d", Some(true))],
        );
        assert_eq!(
            w,
            Workload {
                kind: WorkloadKind::Rollout,
                name: "canary".into()
            }
        );
    }

    #[test]
    fn static_pod_is_named_after_the_pod() {
        assert_eq!(
            derived("Node", "node-1"),
            (WorkloadKind::StaticPod, "the-pod".into())
        );
    }

    #[test]
    fn no_owner_or_an_unknown_owner_is_the_pod_itself() {
        assert_eq!(
            derive("solo", None, &[]),
            Workload {
                kind: WorkloadKind::Pod,
                name: "solo".into()
            }
        );
        assert_eq!(
            derived("SomeOperatorKind", "x"),
            (WorkloadKind::Pod, "the-pod".into())
        );
    }

    #[test]
    fn the_controller_reference_wins_over_others() {
        let w = derive(
            "p",
            None,
            &[
                owner("ConfigMap", "cm", None),
                owner("StatefulSet", "db", Some(true)),
            ],
        );
        assert_eq!(w.kind, WorkloadKind::StatefulSet);
        let first = derive("p", None, &[owner("DaemonSet", "ds", None)]);
        assert_eq!(first.kind, WorkloadKind::DaemonSet);
    }
}
