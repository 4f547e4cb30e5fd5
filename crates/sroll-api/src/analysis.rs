//! `spec.analysis`, `spec.steps` and `status.analysis`: analysis gates in Argo Rollouts' shape
//! (`AnalysisTemplate.spec.metrics[]`, `pkg/apis/rollouts/v1alpha1/analysis_types.go`), so a
//! team's metrics carry over under the same field names and defaults.
//!
//! One difference from Argo: conditions are CEL (as in Kubernetes' `x-kubernetes-validations`),
//! not expr-lang. Comparisons read the same (`result[0] < 0.05`), but functions and macros are
//! CEL's (`size(result)` for `len(result)`, `result.all(x, x < 0.05)` for
//! `all(result, # < 0.05)`), and arithmetic does not mix a double (every number of `result` is
//! one) with an int: `result[0] * 100.0`, not `result[0] * 100`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretKeyRef;

/// Default `consecutiveErrorLimit` (Argo's `DefaultConsecutiveErrorLimit`).
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
/// How many measurements `status.analysis` keeps per metric (Argo's default retention).
pub const MEASUREMENTS_KEPT: usize = 10;
/// The interval of a metric without one when it must be measured again (after an error: Argo's
/// `DefaultErrorRetryInterval`).
pub const ERROR_RETRY_INTERVAL_SECONDS: i64 = 10;

/// Analysis run on the rollout's own metrics after each step (or, without `steps`, while the
/// rollout progresses and once it reaches `percent`). A metric that fails aborts the rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// The metrics to measure, as in Argo Rollouts' AnalysisTemplate `spec.metrics`.
    #[schemars(length(min = 1, max = 16))]
    pub metrics: Vec<Metric>,
    /// What a failed analysis does: `Rollback` (default) returns the updated pods to the previous
    /// revision (unpaced, as a rollback to the previous revision is); `Hold` leaves every pod where
    /// it is. Either way the rollout is `RolloutAborted` until `rolloutIdentity` or the spec
    /// changes (`kubectl sroll retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_policy: Option<AbortPolicy>,
}

/// What a failed analysis does to the pods already updated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum AbortPolicy {
    /// Return the updated pods to the previous revision (default).
    #[default]
    Rollback,
    /// Leave every pod where it is.
    Hold,
}

/// One metric, as in Argo Rollouts (`analysis_types.go`, `Metric`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Name of the metric, unique in the analysis; conditions and status name it.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Time between two measurements, a duration such as `30s` or `1m`. Unset: a single
    /// measurement (unless `count` asks for more, 10 s apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time to wait before the first measurement, a duration such as `1m`. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<String>,
    /// Number of measurements to take. Unset or 0: 1 without `interval`, and with `interval`
    /// measurements continue until the step's analysis ends (a step analysis then ends after one
    /// measurement). An integer (Argo also accepts a templated string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub count: Option<i32>,
    /// CEL over `result` that makes a measurement Successful (a Prometheus instant vector is a
    /// list of doubles, a scalar a double; the web provider's value is the JSON value). Example:
    /// `result[0] < 0.05`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// CEL over `result` that makes a measurement Failed; it wins over `successCondition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// The metric fails when more measurements than this failed. Default 0 (the first failure
    /// fails it); -1: never on failures alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1, max = 1000))]
    pub failure_limit: Option<i32>,
    /// The metric is Inconclusive when more measurements than this were inconclusive. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub inconclusive_limit: Option<i32>,
    /// The metric errs when more consecutive measurements than this could not be taken or
    /// evaluated (provider unreachable, bad answer). Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub consecutive_error_limit: Option<i32>,
    /// Where the value comes from: exactly one of `prometheus` and `web`.
    pub provider: MetricProvider,
}

/// Where a metric's value comes from (exactly one provider).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// A Prometheus instant query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    /// An HTTP GET answering JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
}

/// A Prometheus instant query (`GET <address>/api/v1/query?query=…`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Base URL of the Prometheus server, e.g. `http://prometheus.monitoring:9090`.
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/?#]+[^\s]*$")
    )]
    pub address: String,
    /// The PromQL query; its answer must be a scalar or an instant vector.
    #[schemars(length(min = 1, max = 16384))]
    pub query: String,
    /// Seconds allowed for the query. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout: Option<i64>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<Header>,
    /// Secret (in the rollout's namespace) whose value is sent as `Authorization: Bearer <value>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretKeyRef>,
}

/// An HTTP GET whose JSON answer is the measured value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    /// URL to GET (http or https).
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/?#]+[^\s]*$")
    )]
    pub url: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<Header>,
    /// RFC 9535 JSONPath selecting the value in the answer, e.g. `$.data.errorRate`. One match is
    /// the value itself, several a list. Unset: the whole answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Seconds allowed for the request. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: Option<i64>,
}

/// One HTTP header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Header name.
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    /// Header value.
    #[schemars(length(max = 8192))]
    pub value: String,
}

/// One step of `spec.steps`: exactly one of `percent`, `analysis` and `pause`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStep {
    /// Move pods until this percentage runs the new version (never above `spec.percent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
    /// Run `spec.analysis` now and continue only when it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<StepAnalysis>,
    /// Wait: for `duration`, or until `pauseRequested` is set and cleared (`kubectl sroll resume`)
    /// when no duration is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<StepPause>,
}

/// An analysis step (it runs `spec.analysis`; reserved for per-step settings).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepAnalysis {}

/// A pause step.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepPause {
    /// How long to wait, a duration such as `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// `status.analysis`: where the steps are and the measurements of the current analysis.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// Identifies the release the steps and measurements belong to (update revision and rollout
    /// identity); a new release starts again from the first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Index in `spec.steps` of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_index: Option<i32>,
    /// When the current step started (pause durations and `initialDelay` count from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// Analysis run phase: Running, Successful, Inconclusive, Failed or Error. Clients must
    /// accept values added later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the analysis is in its phase (metric, values, limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Identifies the current analysis run; measurements taken for another run are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// `pauseRequested` was seen true while the current step held for the user (an inconclusive
    /// analysis, a pause without duration): clearing it continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_requested: Option<bool>,
    /// One entry per metric of the current (or last) run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricResult>,
}

/// A metric's results in the current run (Argo's `MetricResult`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric's name.
    pub name: String,
    /// Running, Successful, Inconclusive, Failed or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The last measurements (at most 10), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// Measurements taken.
    #[serde(default)]
    pub count: i32,
    /// Successful measurements.
    #[serde(default)]
    pub successful: i32,
    /// Failed measurements.
    #[serde(default)]
    pub failed: i32,
    /// Inconclusive measurements.
    #[serde(default)]
    pub inconclusive: i32,
    /// Measurements that erred.
    #[serde(default)]
    pub error: i32,
    /// Errors in a row, up to the latest measurement.
    #[serde(default)]
    pub consecutive_error: i32,
}

/// One measurement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Successful, Failed, Inconclusive or Error.
    pub phase: String,
    /// The measured value, as text (`[0.02]` for an instant vector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When the measurement finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Why it erred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Metric {
    /// The effective `failureLimit` (0).
    pub fn failure_limit(&self) -> i32 {
        self.failure_limit.unwrap_or(0)
    }

    /// The effective `inconclusiveLimit` (0).
    pub fn inconclusive_limit(&self) -> i32 {
        self.inconclusive_limit.unwrap_or(0)
    }

    /// The effective `consecutiveErrorLimit` (4).
    pub fn consecutive_error_limit(&self) -> i32 {
        self.consecutive_error_limit
            .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    }

    /// `interval` in seconds (`None` when unset or invalid; validation reports invalid ones).
    pub fn interval_seconds(&self) -> Option<f64> {
        self.interval
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
    }

    /// `initialDelay` in seconds (0 when unset or invalid).
    pub fn initial_delay_seconds(&self) -> f64 {
        self.initial_delay
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(0.0)
    }

    /// How many measurements complete the metric in a step: `count`, else 1.
    pub fn effective_count(&self) -> i32 {
        match self.count {
            Some(n) if n > 0 => n,
            _ => 1,
        }
    }
}

/// Parses a Go-style duration (`300ms`, `30s`, `5m`, `1h30m`, `1.5h`) into seconds. Units: `ms`,
/// `s`, `m`, `h`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(0.0);
    }
    if s.is_empty() {
        return Err("an empty duration; write one such as 30s, 5m or 1h30m".into());
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?} lacks a unit after its number (ms, s, m or h)"))?;
        if num_len == 0 {
            return Err(format!(
                "{text:?} is not a duration; write one such as 30s, 5m or 1h30m"
            ));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{text:?} has a malformed number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(format!(
                    "{text:?} has the unknown unit {other:?}; use ms, s, m or h"
                ));
            }
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn go_durations_parse_into_seconds() {
        assert_eq!(parse_duration("30s"), Ok(30.0));
        assert_eq!(parse_duration("5m"), Ok(300.0));
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_duration("250ms"), Ok(0.25));
        assert_eq!(parse_duration("0"), Ok(0.0));
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m5").is_err());
    }

    #[test]
    fn unset_limits_take_argos_defaults() {
        let m = Metric::default();
        assert_eq!(m.failure_limit(), 0);
        assert_eq!(m.inconclusive_limit(), 0);
        assert_eq!(m.consecutive_error_limit(), 4);
        assert_eq!(m.effective_count(), 1);
    }
}

/// Problems of `spec.analysis` and `spec.steps`, each naming its field.
pub fn validate(spec: &crate::StatefulsetRolloutSpec) -> Vec<crate::validate::FieldError> {
    let mut errs = Vec::new();
    let mut err =
        |path: String, message: String| errs.push(crate::validate::FieldError { path, message });
    if let Some(analysis) = &spec.analysis {
        if analysis.metrics.is_empty() {
            err(
                "spec.analysis.metrics".into(),
                "must list at least one metric".into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, m) in analysis.metrics.iter().enumerate() {
            let at = |field: &str| format!("spec.analysis.metrics[{i}].{field}");
            if m.name.trim().is_empty() {
                err(at("name"), "must not be empty".into());
            } else if !names.insert(m.name.as_str()) {
                err(
                    at("name"),
                    format!(
                        "{:?} is used by another metric; metric names must be unique",
                        m.name
                    ),
                );
            }
            for (field, value) in [
                ("interval", &m.interval),
                ("initialDelay", &m.initial_delay),
            ] {
                if let Some(d) = value
                    && let Err(e) = parse_duration(d)
                {
                    err(at(field), e);
                }
            }
            for (field, value) in [
                ("successCondition", &m.success_condition),
                ("failureCondition", &m.failure_condition),
            ] {
                if let Some(expr) = value
                    && let Err(e) = cel::Program::compile(expr)
                {
                    err(
                        at(field),
                        format!(
                            "is not a valid CEL expression over `result` (e.g. `result[0] < 0.05`): {e}"
                        ),
                    );
                }
            }
            if m.failure_limit.is_some_and(|l| l < -1) {
                err(at("failureLimit"), "must be -1 (no limit) or more".into());
            }
            match (&m.provider.prometheus, &m.provider.web) {
                (None, None) => err(
                    at("provider"),
                    "must set a provider: prometheus (address, query) or web (url)".into(),
                ),
                (Some(_), Some(_)) => err(
                    at("provider"),
                    "sets both prometheus and web; keep exactly one".into(),
                ),
                (Some(p), None) => {
                    if !(p.address.starts_with("http://") || p.address.starts_with("https://")) {
                        err(
                            at("provider.prometheus.address"),
                            "must be an http:// or https:// URL".into(),
                        );
                    }
                    if p.query.trim().is_empty() {
                        err(
                            at("provider.prometheus.query"),
                            "must be a PromQL query".into(),
                        );
                    }
                }
                (None, Some(w)) => {
                    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                        err(
                            at("provider.web.url"),
                            "must be an http:// or https:// URL".into(),
                        );
                    }
                }
            }
        }
    }
    for (i, step) in spec.steps.iter().enumerate() {
        let set = [
            step.percent.is_some(),
            step.analysis.is_some(),
            step.pause.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            err(
                format!("spec.steps[{i}]"),
                "must set exactly one of percent, analysis and pause".into(),
            );
        }
        if step.analysis.is_some() && spec.analysis.is_none() {
            err(
                format!("spec.steps[{i}].analysis"),
                "needs spec.analysis (the metrics to measure)".into(),
            );
        }
        if let Some(d) = step.pause.as_ref().and_then(|p| p.duration.as_deref())
            && let Err(e) = parse_duration(d)
        {
            err(format!("spec.steps[{i}].pause.duration"), e);
        }
    }
    errs
}

#[cfg(test)]
mod validation_tests {
    use super::*;
    use crate::{StatefulsetRolloutSpec, validate::FieldError};

    fn spec(analysis: Option<RolloutAnalysis>, steps: Vec<RolloutStep>) -> StatefulsetRolloutSpec {
        serde_json::from_value::<StatefulsetRolloutSpec>(serde_json::json!({
            "sts": {"spec": {"selector": {}, "serviceName": "web", "template": {}}},
        }))
        .map(|mut s| {
            s.analysis = analysis;
            s.steps = steps;
            s
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn prometheus() -> MetricProvider {
        MetricProvider {
            prometheus: Some(PrometheusMetric {
                address: "http://prometheus:9090".into(),
                query: "up".into(),
                ..PrometheusMetric::default()
            }),
            web: None,
        }
    }

    fn paths(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_analysis_problem_names_its_field() {
        let bad = Metric {
            name: "m".into(),
            interval: Some("5x".into()),
            initial_delay: Some("ten".into()),
            success_condition: Some("result[0] <".into()),
            provider: MetricProvider::default(),
            ..Metric::default()
        };
        let both = Metric {
            name: "m".into(),
            provider: MetricProvider {
                web: Some(WebMetric {
                    url: "http://x".into(),
                    ..WebMetric::default()
                }),
                ..prometheus()
            },
            ..Metric::default()
        };
        let errs = validate(&spec(
            Some(RolloutAnalysis {
                metrics: vec![bad, both],
                abort_policy: None,
            }),
            vec![
                RolloutStep::default(),
                RolloutStep {
                    pause: Some(StepPause {
                        duration: Some("1d".into()),
                    }),
                    ..RolloutStep::default()
                },
            ],
        ));
        let text = paths(&errs).join("\n");
        for expected in [
            "spec.analysis.metrics[0].interval: \"5x\" has the unknown unit \"x\"",
            "spec.analysis.metrics[0].initialDelay: \"ten\" is not a duration",
            "spec.analysis.metrics[0].successCondition: is not a valid CEL expression",
            "spec.analysis.metrics[0].provider: must set a provider",
            "spec.analysis.metrics[1].name: \"m\" is used by another metric",
            "spec.analysis.metrics[1].provider: sets both prometheus and web",
            "spec.steps[0]: must set exactly one of percent, analysis and pause",
            "spec.steps[1].pause.duration: \"1d\" has the unknown unit \"d\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    /// The example of README.md and docs/analysis.md is valid.
    #[test]
    fn the_documented_example_is_valid() {
        let r: crate::StatefulsetRollout =
            serde_yaml_ng::from_str(include_str!("../../../docs/analysis-example.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.spec.steps.len(), 6);
        assert_eq!(r.spec.analysis.as_ref().map(|a| a.metrics.len()), Some(2));
        let errs = paths(&crate::validate::validate(&r));
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn a_valid_analysis_passes_and_an_analysis_step_needs_metrics() {
        let good = Metric {
            name: "errors".into(),
            interval: Some("30s".into()),
            success_condition: Some("result[0] < 0.05".into()),
            provider: prometheus(),
            ..Metric::default()
        };
        let step = RolloutStep {
            analysis: Some(StepAnalysis {}),
            ..RolloutStep::default()
        };
        let ok = spec(
            Some(RolloutAnalysis {
                metrics: vec![good],
                abort_policy: Some(AbortPolicy::Hold),
            }),
            vec![step.clone()],
        );
        assert!(validate(&ok).is_empty(), "{:?}", validate(&ok));
        let errs = paths(&validate(&spec(None, vec![step])));
        assert_eq!(
            errs,
            ["spec.steps[0].analysis: needs spec.analysis (the metrics to measure)"]
        );
    }
}
