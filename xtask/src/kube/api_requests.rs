//! The API server's own count of the requests it served, `apiserver_request_total`, read
//! from its Prometheus text (`ControlPlane::metrics_text`): how tests and the benchmark
//! tell what a client really sent.

use std::collections::BTreeMap;

/// Verbs that change something (server-side apply counts as `APPLY`).
pub const WRITE_VERBS: &[&str] = &[
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// One `apiserver_request_total` sample.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl RequestSample {
    /// A label's value; empty when the sample has no such label.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    /// Whether the request changed something.
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.label("verb"))
    }
}

/// Every `apiserver_request_total` sample of a Prometheus text page.
pub fn request_samples(metrics: &str) -> Vec<RequestSample> {
    metric_samples(metrics, "apiserver_request_total")
}

/// Every labelled sample of the metric `name` (e.g. a gauge of open watches) of a
/// Prometheus text page.
pub fn metric_samples(metrics: &str, name: &str) -> Vec<RequestSample> {
    let prefix = format!("{name}{{");
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once('}')?;
            Some(RequestSample {
                labels: parse_labels(labels),
                value: value.trim().parse().ok()?,
            })
        })
        .collect()
}

/// `a="x",b="y"` (values may hold escaped quotes).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_escaped_quotes() {
        let labels = parse_labels(r#"a="x\"y",b="",c="z""#);
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "");
        assert_eq!(labels["c"], "z");
    }

    #[test]
    fn samples_of_a_metrics_page() {
        let page = "# HELP apiserver_request_total Counter\n\
            apiserver_request_total{code=\"201\",component=\"apiserver\",resource=\"instrumentationinstances\",subresource=\"\",verb=\"APPLY\"} 3\n\
            apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"WATCH\"} 1\n\
            apiserver_request_duration_seconds_count{verb=\"GET\"} 9\n";
        let samples = request_samples(page);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].label("resource"), "instrumentationinstances");
        assert_eq!(samples[0].label("subresource"), "");
        assert_eq!(samples[0].value, 3.0);
        assert!(samples[0].is_write());
        assert!(!samples[1].is_write());
        assert_eq!(samples[1].label("missing"), "");
    }
}
