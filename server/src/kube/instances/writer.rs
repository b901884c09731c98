//! The workers that carry queued operations to the API server.
//!
//! Each operation is checked against what this server last wrote (or listed at start-up), so
//! an unchanged status costs no request. Failures are sorted: the API server unreachable or
//! overloaded pauses *all* workers with a shared backoff (every write would fail alike);
//! a rejected write (invalid, forbidden) is retried for its resource alone, later and later;
//! a resource that vanished under us is recreated at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch};

use crate::kube::crds::InstrumentationInstance;
use tokio::time::Instant;

use super::queue::{CoalescingQueue, Taken};
use super::resource::{self, ObjectShape, ResourceRef, StatusDigest};
use crate::kube::backoff::Backoff;
use crate::protocol::InstanceRecord;

/// Retry delays of a rejected write.
const REJECTED_MIN: Duration = Duration::from_secs(1);
const REJECTED_MAX: Duration = Duration::from_secs(300);
/// Pause of all workers while the API server is unavailable.
const OUTAGE_MIN: Duration = Duration::from_millis(200);
const OUTAGE_MAX: Duration = Duration::from_secs(5);

/// One queued operation.
#[derive(Debug)]
pub(super) enum Op {
    Apply(Box<InstanceRecord>),
    Delete,
}

/// What the API server holds for a resource, as far as we know.
#[derive(Clone, Debug, Default)]
pub(super) struct Written {
    pub object: Option<ObjectShape>,
    pub status: Option<StatusDigest>,
}

/// Counters of API requests and skipped writes.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub object_applies: AtomicU64,
    pub status_applies: AtomicU64,
    pub deletes: AtomicU64,
    pub unchanged: AtomicU64,
    pub failures: AtomicU64,
}

/// Why an operation failed, and so how to retry it.
#[derive(Debug)]
enum Failure {
    /// The API server is unreachable, overloaded or timing out: pause everything.
    Unavailable(String),
    /// This write was refused: retry it alone, with growing delays.
    Rejected(String),
    /// The resource disappeared (or changed) under us: try again now.
    Again(String),
}

/// Shared by the workers: the API, what was written, and the outage pause.
pub(super) struct Writer {
    pub client: kube::Client,
    pub node: String,
    pub request_timeout: Duration,
    pub written: Mutex<HashMap<ResourceRef, Written>>,
    pub counters: Counters,
    pause: Mutex<(Backoff, Option<Instant>)>,
}

impl Writer {
    pub(super) fn new(client: kube::Client, node: String, request_timeout: Duration) -> Self {
        Writer {
            client,
            node,
            request_timeout,
            written: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            pause: Mutex::new((Backoff::new(OUTAGE_MIN, OUTAGE_MAX), None)),
        }
    }

    pub(super) fn written(&self) -> MutexGuard<'_, HashMap<ResourceRef, Written>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pause(&self) -> MutexGuard<'_, (Backoff, Option<Instant>)> {
        self.pause.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take operations from `queue` and carry them out, until the task is aborted.
    pub(super) async fn run(self: Arc<Self>, queue: Arc<CoalescingQueue<ResourceRef, Op>>) {
        loop {
            let taken = queue.next().await;
            // Checked after taking: a worker waiting for work must not skip a pause set
            // meanwhile by another worker's failure.
            let until = self.pause().1;
            if let Some(until) = until {
                tokio::time::sleep_until(until).await;
            }
            match self.execute(&taken.key, &taken.value).await {
                Ok(()) => {
                    self.pause().0.reset();
                    queue.done(&taken.key);
                }
                Err(failure) => self.retry(&queue, taken, failure),
            }
        }
    }

    fn retry(
        &self,
        queue: &Arc<CoalescingQueue<ResourceRef, Op>>,
        taken: Taken<ResourceRef, Op>,
        failure: Failure,
    ) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        let resource = taken.key.clone();
        match failure {
            Failure::Unavailable(error) => {
                let delay = {
                    let mut pause = self.pause();
                    let delay = pause.0.next_delay();
                    pause.1 = Some(Instant::now() + delay);
                    delay
                };
                tracing::warn!(%resource, %error, ?delay, "Kubernetes API unavailable; InstrumentationInstance writes paused, the latest state of each is kept");
                queue.retry(taken, None);
            }
            Failure::Rejected(error) => {
                let factor = 2u32.saturating_pow(taken.attempts.min(16));
                let delay = REJECTED_MIN.saturating_mul(factor).min(REJECTED_MAX);
                tracing::error!(%resource, %error, ?delay, attempts = taken.attempts + 1, "InstrumentationInstance write refused; retrying later");
                queue.retry(taken, Some(delay));
            }
            Failure::Again(reason) => {
                tracing::info!(%resource, %reason, "writing the InstrumentationInstance again");
                let delay = (taken.attempts > 3).then_some(REJECTED_MIN);
                queue.retry(taken, delay);
            }
        }
    }

    fn api(&self, namespace: &str) -> Api<InstrumentationInstance> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn execute(&self, resource: &ResourceRef, op: &Op) -> Result<(), Failure> {
        match op {
            Op::Apply(record) => self.apply(resource, record).await,
            Op::Delete => self.delete(resource).await,
        }
    }

    async fn apply(&self, resource: &ResourceRef, record: &InstanceRecord) -> Result<(), Failure> {
        let shape = ObjectShape::desired(record, &self.node);
        let status = resource::status_value(record);
        let digest = resource::status_digest(&status);
        let known = self.written().get(resource).cloned().unwrap_or_default();
        let api = self.api(&resource.namespace);
        let params = resource::apply_params();

        if known.object.as_ref() != Some(&shape) {
            let body = shape.apply_body(resource);
            self.counters.object_applies.fetch_add(1, Ordering::Relaxed);
            self.call(api.patch(&resource.name, &params, &Patch::Apply(&body)))
                .await
                .map_err(classify)?;
            self.written().entry(resource.clone()).or_default().object = Some(shape);
        }
        if known.status == Some(digest) {
            self.counters.unchanged.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let body = resource::status_apply_body(resource, &status);
        self.counters.status_applies.fetch_add(1, Ordering::Relaxed);
        match self
            .call(api.patch_status(&resource.name, &params, &Patch::Apply(&body)))
            .await
        {
            Ok(_) => {
                self.written().entry(resource.clone()).or_default().status = Some(digest);
                Ok(())
            }
            Err(Some(kube::Error::Api(s))) if s.code == 404 => {
                // Deleted by someone else (or garbage-collected): recreate it whole.
                self.written().remove(resource);
                Err(Failure::Again("it was deleted meanwhile".into()))
            }
            Err(error) => Err(classify(error)),
        }
    }

    async fn delete(&self, resource: &ResourceRef) -> Result<(), Failure> {
        self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        let api = self.api(&resource.namespace);
        match self
            .call(api.delete(&resource.name, &DeleteParams::default()))
            .await
        {
            Ok(_) => {}
            Err(Some(kube::Error::Api(s))) if s.code == 404 => {}
            Err(error) => return Err(classify(error)),
        }
        self.written().remove(resource);
        Ok(())
    }

    /// A request with the deadline; `Err(None)` is the deadline passing.
    async fn call<T>(
        &self,
        request: impl std::future::Future<Output = kube::Result<T>>,
    ) -> Result<T, Option<kube::Error>> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Some(error)),
            Err(_) => Err(None),
        }
    }
}

fn classify(error: Option<kube::Error>) -> Failure {
    let Some(error) = error else {
        return Failure::Unavailable("no answer within the request timeout".into());
    };
    match &error {
        kube::Error::Api(status) => match status.code {
            409 => Failure::Again(format!("conflict: {}", status.message)),
            500 if is_schema_mismatch(&status.message) => Failure::Rejected(format!(
                "{error}; the InstrumentationInstance CRD in the cluster lacks (or types \
                 otherwise) a field this server writes: apply deploy/crds/ of this release"
            )),
            429 | 500..=599 => Failure::Unavailable(error.to_string()),
            401 | 403 => Failure::Rejected(format!(
                "{error}; the server's service account needs the rights of deploy/rbac.yaml \
                 (for a few seconds after an API server restart this is normal: it is still \
                 loading its RBAC rules)"
            )),
            _ => Failure::Rejected(error.to_string()),
        },
        // Connection refused or reset, TLS, a body cut short: the API server is not there.
        _ => Failure::Unavailable(error.to_string()),
    }
}

/// Server-side apply of a body that does not fit the CRD's schema (a field it lacks, a value
/// of another type): every supported API server (1.20 to 1.37) answers 500 with this
/// message, whatever `fieldValidation` says. It is this write's fault, not an outage:
/// pausing every write for it would stall them all.
fn is_schema_mismatch(message: &str) -> bool {
    message.contains("failed to create typed patch object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: u16, message: &str) -> Option<kube::Error> {
        let mut status = kube::core::Status::failure(message, "");
        status.code = code;
        Some(kube::Error::Api(status.boxed()))
    }

    #[test]
    fn a_body_the_schema_refuses_is_this_writes_fault_not_an_outage() {
        let mismatch = "failed to create typed patch object (ns/web-app-7; odigos.io/v1alpha1, \
             Kind=InstrumentationInstance): .status.heathy: field not declared in schema";
        match classify(answer(500, mismatch)) {
            Failure::Rejected(why) => assert!(why.contains("deploy/crds/"), "{why}"),
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert!(matches!(
            classify(answer(500, "etcdserver: request timed out")),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            classify(answer(503, mismatch)),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            classify(answer(400, "strict decoding")),
            Failure::Rejected(_)
        ));
        assert!(matches!(
            classify(answer(409, "conflict")),
            Failure::Again(_)
        ));
        assert!(matches!(classify(None), Failure::Unavailable(_)));
    }
}
