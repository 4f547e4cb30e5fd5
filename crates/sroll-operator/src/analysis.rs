//! Measures the analysis metrics of `spec.analysis`, outside reconcile.
//!
//! After each plan, [`Analysis::after_plan`] looks at the planned `status.analysis`: while a run is
//! `Running` one task per rollout measures its metrics on their schedule (`initialDelay` from the
//! step's start, then every `interval`, errors retried every 10 s or sooner, until `count`
//! measurements were taken) and keeps the answers; each new answer wakes a reconcile of the
//! rollout. Reconcile hands the kept answers to the planner ([`Analysis::measurements`]), which
//! records the ones not yet in the status: reconcile never awaits a provider.
//!
//! Restarts: nothing here survives one. The task of a run in progress is started again from the
//! status (the step's start and the measurements already recorded count), so the analysis resumes;
//! an abort already recorded is in the status and is neither decided nor announced again.
//!
//! Providers: Prometheus' instant query (`GET <address>/api/v1/query?query=…`: a `vector` becomes
//! a list of numbers, a `scalar` a number, any other result type is an error; NaN and ±Inf, which
//! JSON cannot carry, become `null`), and the web provider (`GET <url>`, JSON answer, RFC 9535
//! JSONPath through `jsonpath-rust`, the JSONPath crate kube-client already uses).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::channel::mpsc;
use jsonpath_rust::JsonPath;
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{Api, Client, ResourceExt, runtime::reflector::ObjectRef};
use serde_json::Value;
use sroll_api::{
    StatefulsetRollout, StatefulsetRolloutStatus,
    analysis::{ERROR_RETRY_INTERVAL_SECONDS, Header, Metric, RolloutAnalysis},
};
use sroll_planner::ObservedMeasurement;
use tokio::task::JoinHandle;

type Key = ObjectRef<StatefulsetRollout>;

/// Answers kept per run (the planner records each once; a run takes far fewer).
const KEPT_PER_RUN: usize = 1000;
/// Default provider timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The measuring tasks of one controller scope and their answers.
#[derive(Clone)]
pub struct Analysis {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    http: Option<reqwest::Client>,
    runs: Mutex<HashMap<Key, Tracked>>,
    wake: mpsc::UnboundedSender<Key>,
}

struct Tracked {
    run: String,
    measurements: Vec<ObservedMeasurement>,
    task: JoinHandle<()>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analysis").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicked holder leaves the map consistent (every update is a single insert or remove).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Analysis {
    /// The measuring side of one scope, and the stream of rollouts to reconcile when an answer
    /// arrives.
    pub fn new(client: Client) -> (Self, mpsc::UnboundedReceiver<Key>) {
        let (wake, rx) = mpsc::unbounded();
        let http = match sroll_integrations::http::client(
            sroll_integrations::http::Timeouts {
                connect: Duration::from_secs(5),
                total: Duration::from_secs(300),
            },
            true,
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "failed to build the analysis HTTP client; analysis measurements will err");
                None
            }
        };
        (
            Self {
                inner: Arc::new(Inner {
                    client,
                    http,
                    runs: Mutex::default(),
                    wake,
                }),
            },
            rx,
        )
    }

    /// The answers kept for the rollout's current run (for [`sroll_planner::Observed::analysis`]).
    pub fn measurements(&self, rollout: &StatefulsetRollout) -> Vec<ObservedMeasurement> {
        lock(&self.inner.runs)
            .get(&ObjectRef::from_obj(rollout))
            .map(|t| t.measurements.clone())
            .unwrap_or_default()
    }

    /// Starts measuring the run `planned` says is running (unless already measuring it), or stops.
    pub fn after_plan(&self, rollout: &StatefulsetRollout, planned: &StatefulsetRolloutStatus) {
        let key = ObjectRef::from_obj(rollout);
        let running = planned
            .analysis
            .as_ref()
            .filter(|a| a.phase.as_deref() == Some("Running"))
            .and_then(|a| Some((a.run.clone()?, a)));
        let (Some((run, status)), Some(spec)) = (running, rollout.spec.analysis.clone()) else {
            lock(&self.inner.runs).remove(&key);
            return;
        };
        let mut runs = lock(&self.inner.runs);
        if runs.get(&key).is_some_and(|t| t.run == run) {
            return;
        }
        let started = status
            .step_started_at
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0);
        let done: HashMap<String, (i32, i32)> = status
            .metrics
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    (m.successful + m.failed + m.inconclusive, m.count),
                )
            })
            .collect();
        let namespace = rollout.namespace().unwrap_or_default();
        let task = tokio::spawn(measure_run(
            Arc::downgrade(&self.inner),
            key.clone(),
            namespace,
            run.clone(),
            spec,
            started,
            done,
        ));
        runs.insert(
            key,
            Tracked {
                run,
                measurements: Vec::new(),
                task,
            },
        );
    }
}

/// One metric's schedule in a run.
struct Schedule {
    metric: Metric,
    due: Timestamp,
    /// Measurements that did not err still to take.
    left: i32,
    /// Measurements taken in the run (errors included), the last one's `seq`.
    taken: i32,
}

/// Measures one run; holds the scope's state only weakly, so that the task ends with its scope
/// (dropping the state aborts every task).
async fn measure_run(
    inner: std::sync::Weak<Inner>,
    key: Key,
    namespace: String,
    run: String,
    spec: RolloutAnalysis,
    started: Timestamp,
    done: HashMap<String, (i32, i32)>,
) {
    let mut schedules: Vec<Schedule> = spec
        .metrics
        .into_iter()
        .map(|metric| {
            let due = started
                .checked_add(duration(metric.initial_delay_seconds()))
                .unwrap_or(started);
            let (measured, taken) = done.get(&metric.name).copied().unwrap_or((0, 0));
            Schedule {
                left: metric.effective_count() - measured,
                metric,
                due,
                taken,
            }
        })
        .filter(|s| s.left > 0)
        .collect();
    while let Some(next) = schedules.iter_mut().min_by_key(|s| s.due) {
        let now = Timestamp::now();
        if next.due > now {
            tokio::time::sleep(
                Duration::try_from(next.due.duration_since(now)).unwrap_or(Duration::ZERO),
            )
            .await;
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let result = measure(&inner, &namespace, &next.metric).await;
        let interval = next.metric.interval_seconds();
        let retry = interval.map_or(ERROR_RETRY_INTERVAL_SECONDS as f64, |i| {
            i.min(ERROR_RETRY_INTERVAL_SECONDS as f64)
        });
        let finished_at = Timestamp::now();
        // A value its conditions cannot evaluate (an empty vector for `result[0]`) is an error
        // too: retried, not counted (the planner decides the same with the same function).
        let failed = match &result {
            Ok(v) => {
                let (phase, message) = sroll_planner::analysis::assess(&next.metric, v);
                (phase == sroll_planner::analysis::AnalysisPhase::Error)
                    .then(|| message.unwrap_or_default())
            }
            Err(e) => Some(e.clone()),
        };
        next.taken += 1;
        if let Some(e) = &failed {
            tracing::debug!(rollout = %key, metric = %next.metric.name, error = %e, "analysis measurement failed");
            next.due = finished_at
                .checked_add(duration(retry))
                .unwrap_or(finished_at);
        } else {
            next.left -= 1;
            next.due = finished_at
                .checked_add(duration(
                    interval.unwrap_or(ERROR_RETRY_INTERVAL_SECONDS as f64),
                ))
                .unwrap_or(finished_at);
        }
        let measurement = ObservedMeasurement {
            run: run.clone(),
            metric: next.metric.name.clone(),
            seq: next.taken,
            finished_at,
            result,
        };
        {
            let mut runs = lock(&inner.runs);
            match runs.get_mut(&key) {
                Some(t) if t.run == run => {
                    t.measurements.push(measurement);
                    let excess = t.measurements.len().saturating_sub(KEPT_PER_RUN);
                    t.measurements.drain(..excess);
                }
                _ => return,
            }
        }
        let _ = inner.wake.unbounded_send(key.clone());
        schedules.retain(|s| s.left > 0);
    }
}

fn duration(secs: f64) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::try_from_secs_f64(secs.max(0.0))
        .unwrap_or(k8s_openapi::jiff::SignedDuration::ZERO)
}

/// One measurement of `metric`: the value for its conditions, or why there is none.
async fn measure(inner: &Inner, namespace: &str, metric: &Metric) -> Result<Value, String> {
    let http = inner
        .http
        .as_ref()
        .ok_or("the operator has no HTTP client (see its start-up log)")?;
    if let Some(p) = &metric.provider.prometheus {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", p.address.trim_end_matches('/')),
            [("query", p.query.as_str())],
        )
        .map_err(|e| format!("invalid Prometheus address {:?}: {e}", p.address))?;
        let mut req = http.get(url).timeout(
            p.timeout
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        );
        req = with_headers(req, &p.headers);
        if let Some(secret) = &p.auth_secret_ref {
            let token = secret_value(&inner.client, namespace, &secret.name, &secret.key).await?;
            req = req.bearer_auth(token);
        }
        let body = fetch_json(req).await?;
        return prometheus_value(&body);
    }
    if let Some(w) = &metric.provider.web {
        let mut req = http.get(&w.url).timeout(
            w.timeout_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        );
        req = with_headers(req, &w.headers);
        let body = fetch_json(req).await?;
        return match &w.json_path {
            None => Ok(body),
            Some(path) => json_path(&body, path),
        };
    }
    Err("the metric has no provider".into())
}

fn with_headers(mut req: reqwest::RequestBuilder, headers: &[Header]) -> reqwest::RequestBuilder {
    for h in headers {
        req = req.header(h.key.as_str(), h.value.as_str());
    }
    req
}

async fn fetch_json(req: reqwest::RequestBuilder) -> Result<Value, String> {
    let resp = req.send().await.map_err(|e| {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        msg
    })?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("failed to read the answer: {e}"))?;
    if !status.is_success() {
        let text: String = text.chars().take(200).collect();
        return Err(format!("HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON: {e}"))
}

async fn secret_value(client: &Client, ns: &str, name: &str, key: &str) -> Result<String, String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| format!("failed to read Secret {ns}/{name}: {e}"))?;
    let bytes = secret
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| format!("Secret {ns}/{name} has no key {key:?}"))?;
    String::from_utf8(bytes.0)
        .map(|s| s.trim().to_owned())
        .map_err(|_| format!("Secret {ns}/{name} key {key:?} is not UTF-8"))
}

/// A Prometheus `/api/v1/query` answer as the conditions' `result`.
pub fn prometheus_value(body: &Value) -> Result<Value, String> {
    if body["status"] != "success" {
        return Err(format!(
            "Prometheus answered {}: {}",
            body["errorType"].as_str().unwrap_or("an error"),
            body["error"].as_str().unwrap_or_default()
        ));
    }
    let data = &body["data"];
    let sample = |v: &Value| -> Value {
        v.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number)
    };
    match data["resultType"].as_str() {
        Some("vector") => Ok(Value::Array(
            data["result"]
                .as_array()
                .map(|a| a.iter().map(|s| sample(&s["value"][1])).collect())
                .unwrap_or_default(),
        )),
        Some("scalar") => Ok(sample(&data["result"][1])),
        other => Err(format!(
            "Prometheus returned a {} result; the query must return a scalar or an instant vector",
            other.unwrap_or("missing")
        )),
    }
}

/// `path` (RFC 9535) applied to `body`: one match is the value, several a list.
pub fn json_path(body: &Value, path: &str) -> Result<Value, String> {
    let found = body
        .query(path)
        .map_err(|e| format!("invalid jsonPath {path:?}: {e}"))?;
    match found.as_slice() {
        [] => Err(format!("jsonPath {path:?} matched nothing in the answer")),
        [one] => Ok((*one).clone()),
        many => Ok(Value::Array(many.iter().map(|v| (*v).clone()).collect())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_prometheus_vector_is_a_list_and_a_scalar_a_number() {
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1.0, "0.25"]}, {"metric": {}, "value": [1.0, "NaN"]}]}});
        assert_eq!(prometheus_value(&vector), Ok(json!([0.25, null])));
        let scalar =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}});
        assert_eq!(prometheus_value(&scalar), Ok(json!(3.0)));
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(prometheus_value(&matrix).unwrap_err().contains("matrix"));
        let bad = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        assert!(prometheus_value(&bad).unwrap_err().contains("parse error"));
    }

    #[test]
    fn json_path_returns_one_match_or_a_list() {
        let body = json!({"data": {"rate": 0.5, "pods": [{"e": 1}, {"e": 2}]}});
        assert_eq!(json_path(&body, "$.data.rate"), Ok(json!(0.5)));
        assert_eq!(json_path(&body, "$.data.pods[*].e"), Ok(json!([1, 2])));
        assert!(
            json_path(&body, "$.nope")
                .unwrap_err()
                .contains("matched nothing")
        );
        assert!(
            json_path(&body, "$[")
                .unwrap_err()
                .contains("invalid jsonPath")
        );
    }
}
