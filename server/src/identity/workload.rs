//! The workload that owns a pod (docs/protocol.md §3, the owner-kind table).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Kinds of workload an agent's pod can belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    /// Argo Rollout.
    Rollout,
    /// OpenShift DeploymentConfig.
    DeploymentConfig,
    /// A static pod (owned by the Node).
    StaticPod,
    /// A bare pod with no owner.
    Pod,
}

impl WorkloadKind {
    /// All kinds, for help texts and tests.
    pub const ALL: [WorkloadKind; 9] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::Rollout,
        WorkloadKind::DeploymentConfig,
        WorkloadKind::StaticPod,
        WorkloadKind::Pod,
    ];

    /// The Kubernetes kind name, e.g. `StatefulSet`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Rollout => "Rollout",
            WorkloadKind::DeploymentConfig => "DeploymentConfig",
            WorkloadKind::StaticPod => "StaticPod",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// The lowercase kind used in Odigos object names and labels, e.g. `statefulset`.
    pub fn lowercase(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::Job => "job",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::Rollout => "rollout",
            WorkloadKind::DeploymentConfig => "deploymentconfig",
            WorkloadKind::StaticPod => "staticpod",
            WorkloadKind::Pod => "pod",
        }
    }

    /// The resource attribute that names the workload (docs/protocol.md §5).
    ///
    /// Pods, static pods included, repeat `k8s.pod.name`. DeploymentConfig has no
    /// semantic-convention key; we follow the `k8s.<kind>.name` pattern.
    pub fn resource_attribute(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "k8s.deployment.name",
            WorkloadKind::StatefulSet => "k8s.statefulset.name",
            WorkloadKind::DaemonSet => "k8s.daemonset.name",
            WorkloadKind::Job => "k8s.job.name",
            WorkloadKind::CronJob => "k8s.cronjob.name",
            WorkloadKind::Rollout => "k8s.argoproj.rollout.name",
            WorkloadKind::DeploymentConfig => "k8s.deploymentconfig.name",
            WorkloadKind::StaticPod | WorkloadKind::Pod => "k8s.pod.name",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not one of [`WorkloadKind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown workload kind {0:?}: expected one of Deployment, StatefulSet, DaemonSet, Job, \
     CronJob, Rollout, DeploymentConfig, StaticPod, Pod"
)]
pub struct WorkloadKindParseError(pub String);

impl FromStr for WorkloadKind {
    type Err = WorkloadKindParseError;

    /// Case-insensitive, so `deployment` and `Deployment` both work.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkloadKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| WorkloadKindParseError(s.to_owned()))
    }
}

/// A workload: kind and name (its namespace is the pod's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
}

impl Workload {
    /// `<lowercase kind>-<name>`: the `InstrumentationConfig` name and the
    /// `instrumented-app` label value.
    pub fn object_name(&self) -> String {
        format!("{}-{}", self.kind.lowercase(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_case_insensitively_and_round_trip() {
        for kind in WorkloadKind::ALL {
            assert_eq!(kind.as_str().parse::<WorkloadKind>(), Ok(kind));
            assert_eq!(kind.lowercase().parse::<WorkloadKind>(), Ok(kind));
        }
        assert!("ReplicaSet".parse::<WorkloadKind>().is_err());
    }

    #[test]
    fn object_name_is_lowercase_kind_dash_name() {
        let w = Workload {
            kind: WorkloadKind::StatefulSet,
            name: "db".into(),
        };
        assert_eq!(w.object_name(), "statefulset-db");
    }
}
