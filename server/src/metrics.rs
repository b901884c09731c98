//! The server's Prometheus metrics, served by the admin listener at `/metrics`.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::protocol::Answer;
use crate::store::BackendStats;

/// `Content-Type` of `/metrics`.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Handling latency buckets in seconds: 25 µs to 1 s; handling is normally sub-millisecond.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendRequestLabel {
    request: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerificationLabel {
    verification: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// All metrics; cheap to update from any thread.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabel, Counter>,
    /// Each answer's series of `requests`, looked up once: counting a heartbeat is then one
    /// atomic add, not a lock and a label hash. Filled on first use, so a series still
    /// appears only once its answer was given.
    by_answer: [OnceLock<Counter>; Answer::ALL.len()],
    connected_agents: Gauge,
    handling_seconds: Histogram,
    store_writes: Family<OperationLabel, Counter>,
    resolution_failures: Family<ReasonLabel, Counter>,
    new_agents: Family<VerificationLabel, Counter>,
    backend: BackendMetrics,
}

/// The store's own backend counters (API requests), mirrored at each scrape.
struct BackendMetrics {
    requests: Family<BackendRequestLabel, Counter>,
    failures: Counter,
    unchanged: Counter,
    outstanding: Gauge,
    /// Serialises mirroring, so two scrapes at once cannot both add the same delta.
    sync: Mutex<()>,
}

impl BackendMetrics {
    fn mirror(&self, stats: &BackendStats) {
        let _guard = self.sync.lock().unwrap_or_else(PoisonError::into_inner);
        let catch_up = |counter: &Counter, total: u64| {
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        };
        for (request, total) in [
            ("object_apply", stats.object_applies),
            ("status_apply", stats.status_applies),
            ("delete", stats.deletes),
        ] {
            catch_up(
                &self
                    .requests
                    .get_or_create(&BackendRequestLabel { request }),
                total,
            );
        }
        catch_up(&self.failures, stats.failures);
        catch_up(&self.unchanged, stats.unchanged);
        self.outstanding
            .set(i64::try_from(stats.outstanding).unwrap_or(i64::MAX));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("odigos_opamp");
        let requests = Family::<OutcomeLabel, Counter>::default();
        let connected_agents = Gauge::default();
        let handling_seconds = Histogram::new(LATENCY_BUCKETS);
        let store_writes = Family::<OperationLabel, Counter>::default();
        let resolution_failures = Family::<ReasonLabel, Counter>::default();
        let new_agents = Family::<VerificationLabel, Counter>::default();
        registry.register("requests", "Agent requests by outcome", requests.clone());
        registry.register(
            "connected_agents",
            "Agents currently known to the server",
            connected_agents.clone(),
        );
        registry.register(
            "request_handling_seconds",
            "Time from a request's arrival to its response being ready",
            handling_seconds.clone(),
        );
        registry.register(
            "store_writes",
            "Instance store operations by kind",
            store_writes.clone(),
        );
        registry.register(
            "identity_resolution_failures",
            "New agents whose identity could not be resolved, by reason",
            resolution_failures.clone(),
        );
        registry.register(
            "new_agents",
            "Agents registered, by how their connection verified them: verified, unverified \
             (it names no pod), not-checked (--peer-verification off)",
            new_agents.clone(),
        );
        let backend = BackendMetrics {
            requests: Family::default(),
            failures: Counter::default(),
            unchanged: Counter::default(),
            outstanding: Gauge::default(),
            sync: Mutex::new(()),
        };
        registry.register(
            "store_backend_requests",
            "Requests the instance store sent to the Kubernetes API, by kind (failed ones included)",
            backend.requests.clone(),
        );
        registry.register(
            "store_backend_failures",
            "Kubernetes API requests of the instance store that failed and were retried",
            backend.failures.clone(),
        );
        registry.register(
            "store_backend_unchanged",
            "Instance writes that needed no API request: the resource already held that status",
            backend.unchanged.clone(),
        );
        registry.register(
            "store_backend_outstanding",
            "Instance writes queued, waiting to be retried, or in flight",
            backend.outstanding.clone(),
        );
        Metrics {
            registry,
            requests,
            by_answer: std::array::from_fn(|_| OnceLock::new()),
            connected_agents,
            handling_seconds,
            store_writes,
            resolution_failures,
            new_agents,
            backend,
        }
    }

    /// Count one handled request by its answer, with its handling time.
    pub(crate) fn request(&self, answer: Answer, elapsed: Duration) {
        self.count(answer);
        self.handling_seconds.observe(elapsed.as_secs_f64());
    }

    /// Count an answer that had no handling to time (routing and connection refusals).
    pub(crate) fn count(&self, answer: Answer) {
        self.by_answer[answer as usize]
            .get_or_init(|| {
                let outcome = answer.label();
                self.requests
                    .get_or_create(&OutcomeLabel { outcome })
                    .clone()
            })
            .inc();
    }

    /// Count one store operation (`apply` or `delete`).
    pub(crate) fn store_write(&self, operation: &'static str) {
        self.store_writes
            .get_or_create(&OperationLabel { operation })
            .inc();
    }

    /// Count one registered agent, by its verification label.
    pub(crate) fn new_agent(&self, verification: &'static str) {
        self.new_agents
            .get_or_create(&VerificationLabel { verification })
            .inc();
    }

    /// Count one failed identity resolution.
    pub(crate) fn resolution_failure(&self, reason: &'static str) {
        self.resolution_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Render in the Prometheus text format, with the current number of agents and, for a
    /// store with a backend, its request counters (the `store_backend_*` metrics stay at
    /// zero without one).
    pub(crate) fn render(&self, connected_agents: usize, backend: Option<BackendStats>) -> String {
        self.connected_agents
            .set(i64::try_from(connected_agents).unwrap_or(i64::MAX));
        if let Some(stats) = backend {
            self.backend.mirror(&stats);
        }
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_in_prometheus_text() {
        let metrics = Metrics::new();
        metrics.request(Answer::Ack, Duration::from_micros(80));
        metrics.store_write("apply");
        metrics.resolution_failure("unknown_device");
        let text = metrics.render(3, None);
        assert_lines(
            &text,
            &[
                "odigos_opamp_requests_total{outcome=\"ack\"} 1",
                "odigos_opamp_connected_agents 3",
                "odigos_opamp_request_handling_seconds_bucket{le=\"0.0001\"} 1",
                "odigos_opamp_store_writes_total{operation=\"apply\"} 1",
                "odigos_opamp_identity_resolution_failures_total{reason=\"unknown_device\"} 1",
            ],
        );
    }

    fn assert_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(
                text.lines().any(|l| l == *line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn backend_counters_follow_the_store_and_never_count_twice() {
        let metrics = Metrics::new();
        let mut stats = BackendStats {
            object_applies: 2,
            status_applies: 3,
            deletes: 1,
            unchanged: 4,
            failures: 1,
            outstanding: 5,
        };
        metrics.render(0, Some(stats));
        // A second scrape of the same totals adds nothing; a later one adds the difference.
        metrics.render(0, Some(stats));
        stats.status_applies = 7;
        stats.outstanding = 0;
        let text = metrics.render(0, Some(stats));
        assert_lines(
            &text,
            &[
                "odigos_opamp_store_backend_requests_total{request=\"object_apply\"} 2",
                "odigos_opamp_store_backend_requests_total{request=\"status_apply\"} 7",
                "odigos_opamp_store_backend_requests_total{request=\"delete\"} 1",
                "odigos_opamp_store_backend_failures_total 1",
                "odigos_opamp_store_backend_unchanged_total 4",
                "odigos_opamp_store_backend_outstanding 0",
            ],
        );
    }
}
