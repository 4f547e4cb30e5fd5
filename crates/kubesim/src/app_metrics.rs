//! Simulated application metrics: `GET /sim/metrics/pods`, in the Prometheus text format.
//!
//! A real cluster's pods serve their own `/metrics` and Prometheus scrapes each of them through
//! service discovery. kubesim's pods run no process, so this one endpoint speaks for all of them:
//! a Prometheus server (or any scraper) pointed at it sees, for every pod in phase `Running`,
//!
//! | series | type | value |
//! |---|---|---|
//! | `http_requests_total` | counter | [`REQUESTS_PER_SECOND`] × simulated seconds since the pod's `status.startTime` (floored) |
//! | `http_errors_total` | counter | `floor(http_requests_total × NN / 100)` for an image tag ending in `-errorsNN`, else 0 |
//!
//! each labelled `namespace`, `pod` and every label of the pod (label keys are turned into
//! Prometheus label names by replacing each character outside `[a-zA-Z0-9_]` with `_`; a pod label
//! that would collide with `namespace` or `pod` is left out). So
//! `sum(rate(http_errors_total{app="web"}[30s])) / sum(rate(http_requests_total{app="web"}[30s]))`
//! is the error ratio of a workload, and `controller_revision_hash` separates its versions.
//!
//! **The image-tag convention.** A container image whose tag ends in `-errorsNN` (`NN` from 0 to
//! 100, e.g. `registry/app:v2-errors20`) makes its pod fail NN % of its requests; the highest such
//! NN among a pod's containers counts. Any other tag fails none. The counters are pure functions
//! of the simulated time, so two scrapes at the same instant agree and a test can predict them.
//!
//! The counters restart from 0 with each new pod (a new `startTime`), as a restarted process's do;
//! Prometheus' `rate()` handles such resets. Time is kubesim's simulated time
//! ([`crate::kubelet::Clock`]), so a speed factor of 10 makes the counters grow ten times faster
//! in real time, like every other simulated duration.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::{Api, api::ListOptions, kubelet::Clock};

/// Requests each Running pod serves per simulated second.
pub const REQUESTS_PER_SECOND: u64 = 10;

/// The `/sim/metrics/pods` route, reading pods from `api` at `clock`'s simulated now.
pub fn router(api: Api, clock: Clock) -> Router {
    Router::new()
        .route("/sim/metrics/pods", get(handler))
        .with_state((api, clock))
}

async fn handler(State((api, clock)): State<(Api, Clock)>) -> Response {
    let pods = match api
        .resource("", "v1", "pods")
        .and_then(|d| api.list(&d, None, &ListOptions::default()))
    {
        Ok(list) => list.values(),
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to list pods: {}", e.message),
            )
                .into_response();
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&pods, clock.now()),
    )
        .into_response()
}

/// The error percentage an image asks for: the `NN` of a tag ending in `-errorsNN` (capped at
/// 100), else 0.
pub fn error_percent(image: &str) -> u64 {
    // The tag is what follows the last ':' after the last '/' (a registry port is not a tag).
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = last.split('@').next().unwrap_or(last);
    let Some((_, tag)) = tag.rsplit_once(':') else {
        return 0;
    };
    tag.rsplit_once("-errors")
        .and_then(|(_, n)| (!n.is_empty() && n.len() <= 3).then_some(n))
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0, |n| n.min(100))
}

/// The exposition for `pods` (JSON Pod objects) at simulated instant `now`.
pub fn render(pods: &[Value], now: Timestamp) -> String {
    let mut requests = String::new();
    let mut errors = String::new();
    for pod in pods {
        if pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running") {
            continue;
        }
        let Some(started) = pod
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Timestamp>().ok())
        else {
            continue;
        };
        let elapsed = now.duration_since(started).as_secs_f64().max(0.0);
        // Floor of a non-negative finite value; `as` saturates, and u64 holds any realistic age.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let total = (elapsed * REQUESTS_PER_SECOND as f64).floor() as u64;
        let percent = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("image").and_then(Value::as_str))
            .map(error_percent)
            .max()
            .unwrap_or(0);
        let failed = total * percent / 100;
        let labels = labels(pod);
        requests.push_str(&format!("http_requests_total{{{labels}}} {total}\n"));
        errors.push_str(&format!("http_errors_total{{{labels}}} {failed}\n"));
    }
    format!(
        "# HELP http_requests_total Requests served by the pod (simulated).\n\
         # TYPE http_requests_total counter\n{requests}\
         # HELP http_errors_total Requests the pod failed (simulated; image tag -errorsNN fails NN %).\n\
         # TYPE http_errors_total counter\n{errors}"
    )
}

/// `namespace="…",pod="…",<pod labels>` with escaped values.
fn labels(pod: &Value) -> String {
    let meta = pod.get("metadata");
    let text = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let mut out = format!(
        "namespace=\"{}\",pod=\"{}\"",
        escape(text("namespace")),
        escape(text("name"))
    );
    let mut seen = std::collections::BTreeSet::new();
    if let Some(map) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in map {
            let name = label_name(k);
            if name == "namespace" || name == "pod" || !seen.insert(name.clone()) {
                continue;
            }
            out.push_str(&format!(
                ",{name}=\"{}\"",
                escape(v.as_str().unwrap_or_default())
            ));
        }
    }
    out
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`) for a Kubernetes label key.
fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Escapes a label value for the text format (`\`, `"` and newline).
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, image: &str, phase: &str, started: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "ns",
                "labels": {"app": "web", "controller-revision-hash": "web-abc", "pod": "x"}},
            "spec": {"containers": [{"name": "c", "image": image}]},
            "status": {"phase": phase, "startTime": started}
        })
    }

    #[test]
    fn the_error_percent_is_read_from_the_tag_only() {
        assert_eq!(error_percent("app:v2-errors20"), 20);
        assert_eq!(error_percent("registry:5000/app:v2-errors7"), 7);
        assert_eq!(error_percent("registry:5000/app-errors20:v2"), 0);
        assert_eq!(error_percent("app:v2-errors250"), 100);
        assert_eq!(error_percent("app:v2-errors"), 0);
        assert_eq!(error_percent("app"), 0);
        assert_eq!(error_percent("app:v2-errors20@sha256:abc"), 20);
    }

    #[test]
    fn running_pods_count_requests_and_errors_from_their_start() {
        let now: Timestamp = "2026-01-01T00:01:40Z".parse().unwrap();
        let pods = [
            pod("web-0", "app:v1", "Running", "2026-01-01T00:00:00Z"),
            pod(
                "web-1",
                "app:v2-errors20",
                "Running",
                "2026-01-01T00:01:00Z",
            ),
            pod(
                "web-2",
                "app:v2-errors20",
                "Pending",
                "2026-01-01T00:01:00Z",
            ),
        ];
        let text = render(&pods, now);
        let base =
            "namespace=\"ns\",pod=\"web-0\",app=\"web\",controller_revision_hash=\"web-abc\"";
        assert!(
            text.contains(&format!("http_requests_total{{{base}}} 1000\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("http_errors_total{{{base}}} 0\n")),
            "{text}"
        );
        let one = base.replace("web-0", "web-1");
        assert!(
            text.contains(&format!("http_requests_total{{{one}}} 400\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("http_errors_total{{{one}}} 80\n")),
            "{text}"
        );
        assert!(
            !text.contains("web-2"),
            "a Pending pod serves nothing: {text}"
        );
        assert!(text.contains("# TYPE http_errors_total counter"));
    }

    #[test]
    fn label_values_are_escaped_and_keys_sanitized() {
        assert_eq!(
            label_name("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(label_name("1x"), "_1x");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
