//! Analysis gates and steps, pure: CEL conditions over a provider's `result`, one measurement's
//! phase, a metric's phase under Argo Rollouts' counting rules (`utils/analysis/helpers.go`,
//! `analysis/analysis.go` `assessMetricStatus`), and where `spec.steps` stand.
//!
//! The operator measures (outside reconcile) and hands the raw answers in as
//! [`ObservedMeasurement`]s; [`gate`] folds the ones not yet recorded into `status.analysis` and
//! decides what the rollout may do now. Everything that must survive a restart lives in that
//! status (step index, step start, counts, the last [`MEASUREMENTS_KEPT`] measurements).
//!
//! Counting rules (Argo's code, not its docs):
//! - a metric **fails** when `failed > failureLimit` (default 0: the first failure; -1: never);
//! - it is **inconclusive** when `inconclusive > inconclusiveLimit` (default 0);
//! - it **errs** when `consecutiveError > consecutiveErrorLimit` (default 4: the 5th error in a
//!   row; with limit 3 the 4th);
//! - it **succeeds** when `count` measurements (1 when unset) succeeded, failed within the limit or
//!   were inconclusive within the limit; errored measurements do not count towards `count` (they
//!   are retried, as Argo retries them every 10 s).
//!
//! The run's phase is the worst of its metrics' (Successful < Running < Inconclusive < Error <
//! Failed).
//!
//! Simplified from Argo: no `consecutiveSuccessLimit`, `dryRun`, `measurementRetention`, templates
//! or args; `count` is an integer; with no `spec.steps` the steps are `[{percent: spec.percent},
//! {analysis: {}}]` (Argo would run a background analysis instead).

use std::time::Duration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde_json::Value;
use sroll_api::analysis::{
    AbortPolicy, AnalysisStatus, MEASUREMENTS_KEPT, Measurement, Metric, MetricResult, RolloutStep,
    StepAnalysis,
};

/// One answer of a provider, as the operator got it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedMeasurement {
    /// The analysis run it was taken for (`status.analysis.run` when it was taken).
    pub run: String,
    /// The metric's name.
    pub metric: String,
    /// Its 1-based position among the metric's measurements in the run (errors included): the
    /// planner records a measurement once, when `seq` is past the metric's recorded `count`
    /// (`finishedAt` is stored in whole seconds, too coarse to tell two apart).
    pub seq: i32,
    /// When it finished.
    pub finished_at: Timestamp,
    /// The value (a Prometheus instant vector as a list of numbers, a scalar as a number, the web
    /// provider's JSONPath match), or why none could be had.
    pub result: Result<Value, String>,
}

/// A measurement's, a metric's or a run's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnalysisPhase {
    /// Done, and good.
    Successful,
    /// Measuring.
    Running,
    /// Neither condition decided.
    Inconclusive,
    /// Could not measure or evaluate.
    Error,
    /// The failure condition held (or the success condition did not).
    Failed,
}

impl AnalysisPhase {
    /// The wire text (`status.analysis.phase`, measurements' `phase`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Successful => "Successful",
            Self::Running => "Running",
            Self::Inconclusive => "Inconclusive",
            Self::Error => "Error",
            Self::Failed => "Failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Successful,
            Self::Running,
            Self::Inconclusive,
            Self::Error,
            Self::Failed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// Evaluates CEL `expr` with `result` bound to `value` (JSON numbers become doubles).
pub fn condition(expr: &str, value: &Value) -> Result<bool, String> {
    let program =
        cel::Program::compile(expr).map_err(|e| format!("invalid condition {expr:?}: {e}"))?;
    let mut ctx = cel::Context::default();
    ctx.add_variable_from_value("result", to_cel(value));
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("condition {expr:?} returned {other:?}, not a bool")),
        Err(e) => Err(format!("condition {expr:?} failed: {e}")),
    }
}

/// JSON to CEL, every number a double (a Prometheus sample always is one).
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => cel::Value::String(s.clone().into()),
        Value::Array(a) => cel::Value::List(a.iter().map(to_cel).collect::<Vec<_>>().into()),
        Value::Object(o) => {
            let map: std::collections::HashMap<String, cel::Value> =
                o.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

/// The phase of one measurement (Argo's `evaluateResult`): both conditions set — Failed if
/// `failureCondition` holds, else Successful if `successCondition` holds, else Inconclusive; only
/// `successCondition` — Failed when it is false; only `failureCondition` — Successful when it is
/// false; neither — Successful. An evaluation error is an Error.
pub fn assess(metric: &Metric, value: &Value) -> (AnalysisPhase, Option<String>) {
    let eval = |c: &Option<String>| c.as_deref().map(|e| condition(e, value)).transpose();
    match (
        eval(&metric.success_condition),
        eval(&metric.failure_condition),
    ) {
        (Err(e), _) | (_, Err(e)) => (AnalysisPhase::Error, Some(e)),
        (_, Ok(Some(true))) => (AnalysisPhase::Failed, None),
        (Ok(Some(true)), _) => (AnalysisPhase::Successful, None),
        (Ok(Some(false)), Ok(Some(false))) => (AnalysisPhase::Inconclusive, None),
        (Ok(Some(false)), Ok(None)) => (AnalysisPhase::Failed, None),
        (Ok(None), _) => (AnalysisPhase::Successful, None),
    }
}

/// Adds one measurement to `r` (counts, consecutive errors, the last [`MEASUREMENTS_KEPT`]).
pub fn record(metric: &Metric, r: &mut MetricResult, m: &ObservedMeasurement) {
    let (phase, message, value) = match &m.result {
        Ok(v) => {
            let (p, msg) = assess(metric, v);
            (p, msg, Some(v.to_string()))
        }
        Err(e) => (AnalysisPhase::Error, Some(e.clone()), None),
    };
    r.count += 1;
    match phase {
        AnalysisPhase::Successful => r.successful += 1,
        AnalysisPhase::Failed => r.failed += 1,
        AnalysisPhase::Inconclusive => r.inconclusive += 1,
        AnalysisPhase::Error | AnalysisPhase::Running => r.error += 1,
    }
    if phase == AnalysisPhase::Error {
        r.consecutive_error += 1;
    } else {
        r.consecutive_error = 0;
    }
    r.measurements.push(Measurement {
        phase: phase.as_str().into(),
        value,
        finished_at: Some(Time(m.finished_at)),
        message,
    });
    let excess = r.measurements.len().saturating_sub(MEASUREMENTS_KEPT);
    r.measurements.drain(..excess);
}

/// A metric's phase from its counts, with the message naming values and limits when it is not
/// Running or Successful.
pub fn metric_phase(metric: &Metric, r: &MetricResult) -> (AnalysisPhase, String) {
    let values = || {
        r.measurements
            .iter()
            .map(|m| m.value.clone().unwrap_or_else(|| m.phase.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let failure_limit = metric.failure_limit();
    if failure_limit >= 0 && r.failed > failure_limit {
        return (
            AnalysisPhase::Failed,
            format!(
                "metric {} failed: {} failed {} failureLimit {} (last values: {})",
                metric.name,
                r.failed,
                if r.failed == 1 {
                    "measurement exceeds"
                } else {
                    "measurements exceed"
                },
                failure_limit,
                values()
            ),
        );
    }
    if r.inconclusive > metric.inconclusive_limit() {
        return (
            AnalysisPhase::Inconclusive,
            format!(
                "metric {} is inconclusive: {} inconclusive {} inconclusiveLimit {} (last values: {})",
                metric.name,
                r.inconclusive,
                if r.inconclusive == 1 {
                    "measurement exceeds"
                } else {
                    "measurements exceed"
                },
                metric.inconclusive_limit(),
                values()
            ),
        );
    }
    if r.consecutive_error > metric.consecutive_error_limit() {
        let last = r
            .measurements
            .iter()
            .rev()
            .find_map(|m| m.message.clone())
            .unwrap_or_default();
        return (
            AnalysisPhase::Error,
            format!(
                "metric {} erred: {} consecutive errors exceed consecutiveErrorLimit {} (last: {last})",
                metric.name,
                r.consecutive_error,
                metric.consecutive_error_limit()
            ),
        );
    }
    let measured = r.successful + r.failed + r.inconclusive;
    if measured >= metric.effective_count() {
        return (
            AnalysisPhase::Successful,
            format!("metric {} passed ({measured} measured)", metric.name),
        );
    }
    (
        AnalysisPhase::Running,
        format!(
            "metric {}: {measured} of {} measurements",
            metric.name,
            metric.effective_count()
        ),
    )
}

/// The steps in effect: `spec.steps`, or `[{percent: spec.percent}, {analysis: {}}]` when only
/// `spec.analysis` is set, or none.
pub fn steps(spec: &sroll_api::StatefulsetRolloutSpec) -> Vec<RolloutStep> {
    if !spec.steps.is_empty() {
        return spec.steps.clone();
    }
    if spec.analysis.is_some() {
        return vec![
            RolloutStep {
                percent: Some(spec.percent),
                ..RolloutStep::default()
            },
            RolloutStep {
                analysis: Some(StepAnalysis {}),
                ..RolloutStep::default()
            },
        ];
    }
    Vec::new()
}

/// What the steps allow now.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    /// Move pods up to this percent (capped by `spec.percent`); `last`: no step follows.
    Percent {
        /// The step's percent.
        percent: i32,
        /// Reaching it completes the steps.
        last: bool,
    },
    /// Move nothing: an analysis is measuring or a pause step runs.
    Hold {
        /// Why, for `status.reason`.
        reason: String,
        /// When to look again (a pause's end, the next measurement).
        requeue: Option<Duration>,
    },
    /// Move nothing until the user resumes: an analysis was inconclusive (or a pause step has no
    /// duration). `pauseRequested: true` then `false` resumes.
    Paused {
        /// Why.
        reason: String,
    },
    /// An analysis failed or erred.
    Aborted {
        /// `abortPolicy`.
        policy: AbortPolicy,
        /// The metric, its values and the limit.
        reason: String,
    },
}

/// The run id of step `index` of `release`.
fn run_id(release: &str, index: usize) -> String {
    format!("{release}/step-{index}")
}

/// Folds `observed` into `status` (the rollout's `status.analysis`, reset when `release` changed)
/// and decides what the rollout may do; `None` without steps. `paused` is `spec.pauseRequested`.
pub fn gate(
    spec: &sroll_api::StatefulsetRolloutSpec,
    status: &mut Option<AnalysisStatus>,
    release: &str,
    observed: &[ObservedMeasurement],
    paused: bool,
    now: Timestamp,
) -> Option<Gate> {
    let steps = steps(spec);
    if steps.is_empty() {
        *status = None;
        return None;
    }
    let st = status.get_or_insert_with(AnalysisStatus::default);
    if st.release.as_deref() != Some(release) {
        *st = AnalysisStatus {
            release: Some(release.into()),
            step_index: Some(0),
            step_started_at: Some(Time(now)),
            ..AnalysisStatus::default()
        };
    }
    if let Some(p) = st.phase.as_deref().and_then(AnalysisPhase::parse)
        && matches!(p, AnalysisPhase::Failed | AnalysisPhase::Error)
    {
        return Some(Gate::Aborted {
            policy: spec
                .analysis
                .as_ref()
                .and_then(|a| a.abort_policy)
                .unwrap_or_default(),
            reason: st.message.clone().unwrap_or_default(),
        });
    }
    loop {
        let index = usize::try_from(st.step_index.unwrap_or(0).max(0)).unwrap_or(0);
        let started = st.step_started_at.as_ref().map_or(now, |t| t.0);
        let Some(step) = steps.get(index) else {
            return Some(Gate::Percent {
                percent: spec.percent,
                last: true,
            });
        };
        if let Some(percent) = step.percent {
            return Some(Gate::Percent {
                percent: percent.min(spec.percent),
                last: index + 1 == steps.len(),
            });
        }
        if let Some(pause) = &step.pause {
            match pause
                .duration
                .as_deref()
                .and_then(|d| sroll_api::analysis::parse_duration(d).ok())
            {
                Some(secs) => {
                    let elapsed = now.duration_since(started).as_secs_f64();
                    if elapsed < secs {
                        return Some(Gate::Hold {
                            reason: format!(
                                "step {} of {}: pausing for {}",
                                index + 1,
                                steps.len(),
                                pause.duration.as_deref().unwrap_or_default()
                            ),
                            requeue: Duration::try_from_secs_f64(secs - elapsed).ok(),
                        });
                    }
                }
                None => {
                    if let Some(g) = user_pause(st, paused, || {
                        format!(
                            "step {} of {}: paused until resumed (set pauseRequested to true, then to false)",
                            index + 1,
                            steps.len()
                        )
                    }) {
                        return Some(g);
                    }
                }
            }
            advance(st, index, now);
            continue;
        }
        // An analysis step.
        let Some(analysis) = &spec.analysis else {
            advance(st, index, now);
            continue;
        };
        let run = run_id(release, index);
        if st.run.as_deref() != Some(&run) {
            st.run = Some(run.clone());
            st.phase = Some(AnalysisPhase::Running.as_str().into());
            st.message = None;
            st.metrics = analysis
                .metrics
                .iter()
                .map(|m| MetricResult {
                    name: m.name.clone(),
                    ..MetricResult::default()
                })
                .collect();
        }
        let mut fresh: Vec<&ObservedMeasurement> =
            observed.iter().filter(|m| m.run == run).collect();
        fresh.sort_by_key(|m| m.seq);
        let mut worst = (AnalysisPhase::Successful, String::new());
        let mut running = Vec::new();
        for metric in &analysis.metrics {
            let Some(r) = st.metrics.iter_mut().find(|r| r.name == metric.name) else {
                continue;
            };
            let (phase, _) = metric_phase(metric, r);
            if phase == AnalysisPhase::Running {
                for m in fresh.iter().filter(|m| m.metric == metric.name) {
                    if m.seq <= r.count {
                        continue;
                    }
                    record(metric, r, m);
                    if metric_phase(metric, r).0 != AnalysisPhase::Running {
                        break;
                    }
                }
            }
            let (phase, message) = metric_phase(metric, r);
            r.phase = Some(phase.as_str().into());
            if phase == AnalysisPhase::Running {
                running.push(message.clone());
            }
            if phase > worst.0 {
                worst = (phase, message);
            }
        }
        match worst.0 {
            AnalysisPhase::Successful => {
                st.phase = Some(AnalysisPhase::Successful.as_str().into());
                st.message = Some("every metric passed".into());
                advance(st, index, now);
            }
            AnalysisPhase::Running => {
                st.phase = Some(AnalysisPhase::Running.as_str().into());
                st.message = Some(running.join("; "));
                return Some(Gate::Hold {
                    reason: format!(
                        "step {} of {}: analysis running ({})",
                        index + 1,
                        steps.len(),
                        running.join("; ")
                    ),
                    requeue: None,
                });
            }
            AnalysisPhase::Inconclusive => {
                st.phase = Some(AnalysisPhase::Inconclusive.as_str().into());
                st.message = Some(worst.1.clone());
                if let Some(g) = user_pause(st, paused, || {
                    format!(
                        "{}; paused until resumed (set pauseRequested to true, then to false)",
                        worst.1
                    )
                }) {
                    return Some(g);
                }
                advance(st, index, now);
            }
            AnalysisPhase::Error | AnalysisPhase::Failed => {
                st.phase = Some(worst.0.as_str().into());
                st.message = Some(worst.1.clone());
                return Some(Gate::Aborted {
                    policy: analysis.abort_policy.unwrap_or_default(),
                    reason: worst.1,
                });
            }
        }
    }
}

/// A hold the user ends: `Paused` until `pauseRequested` has been seen true (recorded in
/// `resumeRequested`) and is false again.
fn user_pause(
    st: &mut AnalysisStatus,
    paused: bool,
    reason: impl FnOnce() -> String,
) -> Option<Gate> {
    if paused {
        st.resume_requested = Some(true);
        return Some(Gate::Paused {
            reason: "resume requested: clear pauseRequested to continue".into(),
        });
    }
    if st.resume_requested == Some(true) {
        return None;
    }
    Some(Gate::Paused { reason: reason() })
}

/// Moves to step `index + 1`.
fn advance(st: &mut AnalysisStatus, index: usize, now: Timestamp) {
    st.step_index = Some(i32::try_from(index + 1).unwrap_or(i32::MAX));
    st.step_started_at = Some(Time(now));
    st.resume_requested = None;
}

/// Called when a percent step's target is reached: moves to the next step.
pub fn percent_step_done(status: &mut Option<AnalysisStatus>, now: Timestamp) {
    if let Some(st) = status {
        let index = usize::try_from(st.step_index.unwrap_or(0).max(0)).unwrap_or(0);
        advance(st, index, now);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use sroll_api::analysis::{MetricProvider, PrometheusMetric};

    use super::*;

    fn metric(success: Option<&str>, failure: Option<&str>) -> Metric {
        Metric {
            name: "errors".into(),
            success_condition: success.map(Into::into),
            failure_condition: failure.map(Into::into),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric {
                    address: "http://prom:9090".into(),
                    query: "q".into(),
                    ..PrometheusMetric::default()
                }),
                web: None,
            },
            ..Metric::default()
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn m(run: &str, secs: i64, result: Result<Value, String>) -> ObservedMeasurement {
        ObservedMeasurement {
            run: run.into(),
            metric: "errors".into(),
            seq: i32::try_from(secs).unwrap() + 1,
            finished_at: at(secs),
            result,
        }
    }

    #[test]
    fn cel_conditions_read_a_vector_as_a_list_and_a_scalar_as_a_double() {
        assert_eq!(condition("result[0] < 0.05", &json!([0.01])), Ok(true));
        assert_eq!(condition("result[0] < 0.05", &json!([0.2])), Ok(false));
        assert_eq!(
            condition("result.all(x, x < 0.05)", &json!([0.01, 0.02])),
            Ok(true)
        );
        assert_eq!(condition("result > 1.5", &json!(2)), Ok(true));
        assert_eq!(
            condition("result.data.ok == true", &json!({"data": {"ok": true}})),
            Ok(true)
        );
        assert!(
            condition("result[0] <", &json!([1.0]))
                .unwrap_err()
                .contains("invalid")
        );
        assert!(
            condition("result[3] < 1.0", &json!([1.0])).is_err(),
            "an index out of range errs"
        );
        assert!(
            condition("result[0]", &json!([1.0]))
                .unwrap_err()
                .contains("not a bool")
        );
        // The one difference from Argo's expr: CEL's own functions and macros.
        assert_eq!(condition("result[0] < 1", &json!([0.5])), Ok(true));
        assert_eq!(condition("size(result) == 2", &json!([0.5, 1.0])), Ok(true));
        assert!(condition("len(result) == 2", &json!([0.5, 1.0])).is_err());
        assert!(condition("all(result, # < 0.05)", &json!([0.01])).is_err());
        assert_eq!(condition("result[0] == null", &json!([null])), Ok(true));
        assert!(condition("result[0] * 100 < 5.0", &json!([0.01])).is_err());
        assert_eq!(
            condition("result[0] * 100.0 < 5.0", &json!([0.01])),
            Ok(true)
        );
    }

    /// Argo's `evaluateResult` table.
    #[test]
    fn a_measurement_is_assessed_as_argo_does() {
        let v = json!([0.2]);
        let cases = [
            (
                Some("result[0] < 0.1"),
                Some("result[0] > 0.5"),
                AnalysisPhase::Inconclusive,
            ),
            (
                Some("result[0] < 0.5"),
                Some("result[0] > 0.1"),
                AnalysisPhase::Failed,
            ),
            (
                Some("result[0] < 0.5"),
                Some("result[0] > 0.5"),
                AnalysisPhase::Successful,
            ),
            (Some("result[0] < 0.1"), None, AnalysisPhase::Failed),
            (Some("result[0] < 0.5"), None, AnalysisPhase::Successful),
            (None, Some("result[0] > 0.1"), AnalysisPhase::Failed),
            (None, Some("result[0] > 0.5"), AnalysisPhase::Successful),
            (None, None, AnalysisPhase::Successful),
            (Some("result[9] < 0.5"), None, AnalysisPhase::Error),
        ];
        for (success, failure, want) in cases {
            assert_eq!(
                assess(&metric(success, failure), &v).0,
                want,
                "{success:?} {failure:?}"
            );
        }
    }

    /// Feeds `phases` (S, F, I, E) to a fresh result and returns the metric's phase after each.
    fn run(metric: &Metric, phases: &str) -> Vec<AnalysisPhase> {
        let mut r = MetricResult::default();
        phases
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let secs = i64::try_from(i).unwrap();
                let result = match c {
                    'S' => Ok(json!([0.0])),
                    'F' => Ok(json!([1.0])),
                    'I' => Ok(json!([0.5])),
                    _ => Err("connection refused".into()),
                };
                record(metric, &mut r, &m("r", secs, result));
                metric_phase(metric, &r).0
            })
            .collect()
    }

    #[test]
    fn counting_rules_match_argos_code_at_their_boundaries() {
        use AnalysisPhase::{
            Error as E, Failed as F, Inconclusive as I, Running as R, Successful as S,
        };
        let base = metric(Some("result[0] < 0.1"), Some("result[0] > 0.9"));
        let with = |f: &dyn Fn(&mut Metric)| {
            let mut m = base.clone();
            f(&mut m);
            m
        };
        let cases: Vec<(Metric, &str, Vec<AnalysisPhase>)> = vec![
            // failureLimit 0 (default): the first failure fails.
            (with(&|m| m.count = Some(3)), "SF", vec![R, F]),
            // failureLimit 2: failures must *exceed* it (Argo's code; its docs say "reach").
            (
                with(&|m| {
                    m.count = Some(5);
                    m.failure_limit = Some(2)
                }),
                "FFSF",
                vec![R, R, R, F],
            ),
            (
                with(&|m| {
                    m.count = Some(3);
                    m.failure_limit = Some(2)
                }),
                "FFS",
                vec![R, R, S],
            ),
            // -1: failures never fail the metric.
            (
                with(&|m| {
                    m.count = Some(2);
                    m.failure_limit = Some(-1)
                }),
                "FF",
                vec![R, S],
            ),
            // inconclusiveLimit 0: the first inconclusive measurement.
            (with(&|m| m.count = Some(3)), "SI", vec![R, I]),
            (
                with(&|m| {
                    m.count = Some(3);
                    m.inconclusive_limit = Some(1)
                }),
                "ISI",
                vec![R, R, I],
            ),
            // consecutiveErrorLimit 3: the 4th consecutive error errs; a success resets the run.
            (
                with(&|m| m.consecutive_error_limit = Some(3)),
                "EEE",
                vec![R, R, R],
            ),
            (
                with(&|m| {
                    m.count = Some(9);
                    m.consecutive_error_limit = Some(3)
                }),
                "EEEE",
                vec![R, R, R, E],
            ),
            (
                with(&|m| {
                    m.count = Some(9);
                    m.consecutive_error_limit = Some(3)
                }),
                "EEESEEE",
                vec![R, R, R, R, R, R, R],
            ),
            // Default 4: the 5th.
            (with(&|m| m.count = Some(9)), "EEEEE", vec![R, R, R, R, E]),
            // Errors do not count towards `count`.
            (with(&|m| m.count = Some(2)), "ESES", vec![R, R, R, S]),
            // Unset count: one measurement.
            (base.clone(), "S", vec![S]),
        ];
        for (metric, phases, want) in cases {
            assert_eq!(run(&metric, phases), want, "{phases} with {metric:?}");
        }
    }

    #[test]
    fn at_most_ten_measurements_are_kept_and_messages_name_metric_values_and_limit() {
        let metric = Metric {
            count: Some(20),
            failure_limit: Some(-1),
            ..metric(Some("result[0] < 0.1"), None)
        };
        let mut r = MetricResult::default();
        for i in 0..12 {
            record(&metric, &mut r, &m("r", i, Ok(json!([0.0]))));
        }
        assert_eq!(r.measurements.len(), 10);
        assert_eq!(r.count, 12);
        assert_eq!(r.measurements[0].finished_at, Some(Time(at(2))));
        let failing = metric_phase(
            &Metric {
                failure_limit: Some(0),
                ..metric.clone()
            },
            &MetricResult {
                failed: 1,
                measurements: vec![Measurement {
                    phase: "Failed".into(),
                    value: Some("[0.2]".into()),
                    ..Measurement::default()
                }],
                ..MetricResult::default()
            },
        );
        assert_eq!(failing.0, AnalysisPhase::Failed);
        assert!(
            failing.1.contains("errors")
                && failing.1.contains("[0.2]")
                && failing.1.contains("failureLimit 0"),
            "{}",
            failing.1
        );
    }

    fn spec(steps: Vec<RolloutStep>) -> sroll_api::StatefulsetRolloutSpec {
        let mut r = sroll_api::StatefulsetRolloutSpec {
            sts: Default::default(),
            percent: 100,
            pause_requested: None,
            min_pod_eviction_interval_seconds: None,
            rollout_identity: None,
            channel: None,
            bapi: None,
            service_discovery: None,
            strategy: None,
            max_unavailable: None,
            progress_deadline_seconds: None,
            notifications: None,
            adopt_existing: None,
            recreate_on_immutable_change: None,
            pod_update_policy: None,
            in_place_update_strategy: None,
            revision_pinning: None,
            analysis: Some(sroll_api::analysis::RolloutAnalysis {
                metrics: vec![metric(Some("result[0] < 0.1"), None)],
                abort_policy: None,
            }),
            steps,
        };
        r.percent = 100;
        r
    }

    fn percent(p: i32) -> RolloutStep {
        RolloutStep {
            percent: Some(p),
            ..RolloutStep::default()
        }
    }
    fn analysis() -> RolloutStep {
        RolloutStep {
            analysis: Some(StepAnalysis {}),
            ..RolloutStep::default()
        }
    }
    fn pause(d: Option<&str>) -> RolloutStep {
        RolloutStep {
            pause: Some(sroll_api::analysis::StepPause {
                duration: d.map(Into::into),
            }),
            ..RolloutStep::default()
        }
    }

    #[test]
    fn steps_walk_percent_then_analysis_then_pause_then_percent() {
        let spec = spec(vec![
            percent(10),
            analysis(),
            pause(Some("60s")),
            percent(50),
        ]);
        let mut st = None;
        let g = gate(&spec, &mut st, "rev-2/", &[], false, at(0));
        assert_eq!(
            g,
            Some(Gate::Percent {
                percent: 10,
                last: false
            })
        );
        percent_step_done(&mut st, at(5));
        let g = gate(&spec, &mut st, "rev-2/", &[], false, at(5));
        assert!(matches!(g, Some(Gate::Hold { .. })), "{g:?}");
        assert_eq!(st.as_ref().unwrap().run.as_deref(), Some("rev-2//step-1"));
        // A measurement for another run is ignored; this run's passes the step.
        let good = [
            m("other", 6, Ok(json!([0.9]))),
            m("rev-2//step-1", 7, Ok(json!([0.01]))),
        ];
        let g = gate(&spec, &mut st, "rev-2/", &good, false, at(8));
        assert!(
            matches!(&g, Some(Gate::Hold { reason, .. }) if reason.contains("pausing for 60s")),
            "{g:?}"
        );
        let g = gate(&spec, &mut st, "rev-2/", &good, false, at(68));
        assert_eq!(
            g,
            Some(Gate::Percent {
                percent: 50,
                last: true
            })
        );
        // Measurements are recorded once however often they are observed.
        assert_eq!(st.as_ref().unwrap().metrics[0].count, 1);
        // A new release starts again from the first step.
        let g = gate(&spec, &mut st, "rev-3/", &[], false, at(70));
        assert_eq!(
            g,
            Some(Gate::Percent {
                percent: 10,
                last: false
            })
        );
    }

    #[test]
    fn a_failed_analysis_aborts_and_stays_aborted_until_the_release_changes() {
        let spec = spec(vec![percent(10), analysis(), percent(100)]);
        let mut st = None;
        gate(&spec, &mut st, "r", &[], false, at(0));
        percent_step_done(&mut st, at(1));
        let bad = [m("r/step-1", 2, Ok(json!([0.2])))];
        let g = gate(&spec, &mut st, "r", &bad, false, at(3));
        let Some(Gate::Aborted { policy, reason }) = g else {
            panic!("{g:?}")
        };
        assert_eq!(policy, AbortPolicy::Rollback);
        assert!(
            reason.contains("errors")
                && reason.contains("0.2")
                && reason.contains("failureLimit 0"),
            "{reason}"
        );
        // Later reconciles (also after a restart: the state is the status) stay aborted.
        let again = gate(&spec, &mut st, "r", &[], false, at(30));
        assert!(matches!(again, Some(Gate::Aborted { .. })));
        // A new rolloutIdentity (another release key) runs again.
        assert_eq!(
            gate(&spec, &mut st, "r2", &[], false, at(40)),
            Some(Gate::Percent {
                percent: 10,
                last: false
            })
        );
    }

    #[test]
    fn an_inconclusive_analysis_pauses_until_pause_is_requested_then_cleared() {
        let mut spec = spec(vec![analysis(), percent(100)]);
        spec.analysis.as_mut().unwrap().metrics[0].failure_condition =
            Some("result[0] > 0.5".into());
        let mut st = None;
        let unsure = [m("r/step-0", 1, Ok(json!([0.3])))];
        let g = gate(&spec, &mut st, "r", &unsure, false, at(2));
        assert!(
            matches!(&g, Some(Gate::Paused { reason }) if reason.contains("inconclusive")),
            "{g:?}"
        );
        assert!(matches!(
            gate(&spec, &mut st, "r", &unsure, true, at(3)),
            Some(Gate::Paused { .. })
        ));
        assert_eq!(
            gate(&spec, &mut st, "r", &unsure, false, at(4)),
            Some(Gate::Percent {
                percent: 100,
                last: true
            })
        );
    }

    #[test]
    fn without_steps_analysis_runs_once_the_rollout_reaches_percent() {
        let mut spec = spec(Vec::new());
        spec.percent = 40;
        assert_eq!(steps(&spec), vec![percent(40), analysis()]);
        spec.analysis = None;
        assert!(steps(&spec).is_empty());
    }
}
