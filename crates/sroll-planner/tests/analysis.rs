//! `plan()` with `spec.steps` and `spec.analysis`: a percent step caps the rollout, an analysis
//! step holds it until its measurements (observations) decide, and a failed analysis aborts it and
//! rolls the updated pods back through the eviction path.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use sroll_api::{
    Phase,
    analysis::{
        AbortPolicy, Metric, MetricProvider, PrometheusMetric, RolloutAnalysis, RolloutStep,
        StepAnalysis,
    },
    condition_types as ct,
};
use sroll_planner::{Action, ObservedMeasurement, Plan, plan};
use support::*;

fn stepped(policy: AbortPolicy) -> Rollout {
    let mut r = Rollout::test().replicas(10);
    r.0.spec.analysis = Some(RolloutAnalysis {
        metrics: vec![Metric {
            name: "error-ratio".into(),
            success_condition: Some("result[0] < 0.05".into()),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric {
                    address: "http://prometheus:9090".into(),
                    query: "sum(rate(http_errors_total[1m]))".into(),
                    ..PrometheusMetric::default()
                }),
                web: None,
            },
            ..Metric::default()
        }],
        abort_policy: Some(policy),
    });
    r.0.spec.steps = vec![
        RolloutStep {
            percent: Some(20),
            ..RolloutStep::default()
        },
        RolloutStep {
            analysis: Some(StepAnalysis {}),
            ..RolloutStep::default()
        },
        RolloutStep {
            percent: Some(100),
            ..RolloutStep::default()
        },
    ];
    r
}

/// The world after `prev`'s plan: its status carried over.
fn after(mut w: World, prev: &Plan) -> World {
    w.rollout.status = Some(prev.status.clone());
    w
}

fn measurement(p: &Plan, secs: i64, value: f64) -> ObservedMeasurement {
    ObservedMeasurement {
        run: p
            .status
            .analysis
            .as_ref()
            .and_then(|a| a.run.clone())
            .expect("an analysis run"),
        metric: "error-ratio".into(),
        seq: 1,
        finished_at: at(secs),
        result: Ok(json!([value])),
    }
}

#[test]
fn a_percent_step_caps_the_batch_and_the_analysis_after_it_holds_the_rollout() {
    let r = stepped(AbortPolicy::Rollback);
    let p = plan(&World::of(&r).pdb(5).observed());
    let Action::Evict { pods, partition } = &p.action else {
        panic!("expected an eviction, got {:?}", p.action)
    };
    assert_eq!(
        pods,
        &["web-9", "web-8"],
        "20 % of 10 pods, not the budget's 5"
    );
    assert_eq!(partition.as_ref().map(|m| m.partition), Some(8));

    // The step's pods are Ready at the new revision: the analysis step starts.
    let w = World::of(&r).pdb(5).partition(8).pods(8..10, NEW, Ready);
    let p = plan(&after(w.clone(), &p).observed());
    assert_eq!(
        p.status.analysis.as_ref().and_then(|a| a.step_index),
        Some(1)
    );
    let p = plan(&after(w.clone(), &p).observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::InProgress));
    assert!(
        p.status
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("analysis running"),
        "{:?}",
        p.status.reason
    );

    // A good measurement passes the step: the next one moves the rest.
    let mut good = after(w.clone(), &p).observed();
    good.analysis = vec![measurement(&p, T0, 0.01)];
    let p = plan(&good);
    assert_eq!(
        p.status.analysis.as_ref().and_then(|a| a.step_index),
        Some(2)
    );
    let Action::Evict { pods, .. } = &p.action else {
        panic!(
            "expected an eviction, got {:?} ({:?})",
            p.action, p.status.reason
        )
    };
    assert_eq!(pods.len(), 5);
}

#[test]
fn a_failed_analysis_aborts_and_rolls_the_updated_pods_back_unpaced() {
    let mut r = stepped(AbortPolicy::Rollback);
    r = r.interval(600);
    let w = World::of(&r).pdb(5).partition(8).pods(8..10, NEW, Ready);
    let p = plan(&w.observed());
    let p = plan(&after(w.clone(), &p).observed());
    let mut bad = after(w.clone(), &p).observed();
    bad.analysis = vec![measurement(&p, T0, 0.2)];
    let p = plan(&bad);
    assert_eq!(p.status.phase, Some(Phase::Aborted));
    let Action::Evict { pods, partition } = &p.action else {
        panic!("expected an eviction, got {:?}", p.action)
    };
    assert_eq!(
        pods,
        &["web-9", "web-8"],
        "both updated pods at once: a rollback is not paced"
    );
    assert_eq!(partition.as_ref().map(|m| m.partition), Some(10));
    let progressing = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == ct::PROGRESSING)
        .unwrap();
    assert_eq!(progressing.reason, "RolloutAborted");
    assert!(
        progressing.message.contains("error-ratio")
            && progressing.message.contains("0.2")
            && progressing.message.contains("failureLimit 0"),
        "{}",
        progressing.message
    );
    assert!(p.events.iter().any(|e| e.reason == "RolloutAborted"));

    // Once every pod is back, the rollout stays aborted and does nothing.
    let back = World::of(&r).pdb(5).partition(10);
    let p = plan(&after(back.clone(), &p).observed());
    assert_eq!(p.status.phase, Some(Phase::Aborted));
    assert_eq!(p.action, Action::Wait);
    let p2 = plan(&after(back, &p).observed());
    assert!(
        p2.events.iter().all(|e| e.reason != "RolloutAborted"),
        "the abort is announced once"
    );
}

#[test]
fn with_abort_policy_hold_the_updated_pods_stay() {
    let r = stepped(AbortPolicy::Hold);
    let w = World::of(&r).pdb(5).partition(8).pods(8..10, NEW, Ready);
    let p = plan(&w.observed());
    let p = plan(&after(w.clone(), &p).observed());
    let mut bad = after(w.clone(), &p).observed();
    bad.analysis = vec![measurement(&p, T0, 0.5)];
    let p = plan(&bad);
    assert_eq!(p.status.phase, Some(Phase::Aborted));
    assert_eq!(p.action, Action::Wait);
}
