//! Analysis gates against a real Prometheus (Debian's `prometheus` package, started by
//! `sroll_testkit::prometheus`) scraping kubesim's simulated application metrics
//! (`/sim/metrics/pods`, docs/kubesim-metrics.md). These tests fail, never skip, without the binary.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use sroll_api::{
    Phase, StatefulsetRollout,
    analysis::{
        AbortPolicy, Metric, MetricProvider, PrometheusMetric, RolloutAnalysis, RolloutStep,
        StepAnalysis, WebMetric,
    },
    condition_types as ct,
};

use sroll_testkit::{DEADLINE, Env, Rollout, prometheus::Prometheus, status, wait_for};

/// The first number of an instant-vector answer.
fn first_value(data: &serde_json::Value) -> Option<f64> {
    data["result"][0]["value"][1].as_str()?.parse().ok()
}

/// The error ratio of `app`'s pods at `revision`, as an analysis query would ask it.
fn error_ratio(app: &str, revision: &str) -> String {
    let sel = format!("app=\"{app}\",controller_revision_hash=\"{revision}\"");
    format!(
        "sum(rate(http_errors_total{{{sel}}}[5s])) / sum(rate(http_requests_total{{{sel}}}[5s]))"
    )
}

/// Waits until Prometheus answers `promql` with a finite first value.
async fn measured(prom: &Prometheus, promql: &str) -> f64 {
    wait_for(
        &format!("Prometheus to answer {promql}"),
        DEADLINE,
        || async { first_value(&prom.query(promql).await.ok()?).filter(|v| v.is_finite()) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_error_ratio_an_image_tag_asks_kubesim_for() {
    let env = Env::start().await;
    let v1 = Rollout::named("web").replicas(4).image("app:v1");
    env.apply(&v1).await;
    let old = status::update_revision(&env.wait_phase("web", Phase::Done).await);
    env.apply(&v1.clone().image("app:v2-errors20").percent(50))
        .await;
    let done = env.wait_phase("web", Phase::Done).await;
    let new = status::update_revision(&done);
    assert_ne!(old, new);
    let prom = Prometheus::start(env.cluster.base_url(), DEADLINE)
        .await
        .unwrap();

    let bad = measured(&prom, &error_ratio("web", &new)).await;
    assert!(
        (bad - 0.2).abs() < 0.02,
        "error ratio of app:v2-errors20 is {bad}"
    );
    let good = measured(&prom, &error_ratio("web", &old)).await;
    assert!(good.abs() < f64::EPSILON, "error ratio of app:v1 is {good}");
    // One series per pod, each with the pod's labels.
    let series = measured(&prom, "count(http_requests_total{app=\"web\"})").await;
    assert!((series - 4.0).abs() < f64::EPSILON, "{series} series");
    env.finish(true).await;
}

// ---- analysis gates with the real operator ---------------------------------------------------

/// The worst pod's error ratio over the last 10 s.
const WORST_POD_ERROR_RATIO: &str =
    "max(rate(http_errors_total{app=\"web\"}[10s]) / rate(http_requests_total{app=\"web\"}[10s]))";

/// A Prometheus metric passing while the worst pod fails under 5 % of requests, measured three
/// times, 1 s apart, after 8 s (so that the new pods have been scraped enough for `rate`; until
/// Prometheus has two samples of every series an empty answer errs and is retried).
fn error_metric(address: &str) -> Metric {
    Metric {
        name: "error-ratio".into(),
        initial_delay: Some("8s".into()),
        interval: Some("1s".into()),
        count: Some(3),
        consecutive_error_limit: Some(30),
        success_condition: Some("result[0] < 0.05".into()),
        provider: MetricProvider {
            prometheus: Some(PrometheusMetric {
                address: address.into(),
                query: WORST_POD_ERROR_RATIO.into(),
                ..PrometheusMetric::default()
            }),
            web: None,
        },
        ..Metric::default()
    }
}

fn analysis(metric: Metric, policy: AbortPolicy) -> RolloutAnalysis {
    RolloutAnalysis {
        metrics: vec![metric],
        abort_policy: Some(policy),
    }
}

fn percent(p: i32) -> RolloutStep {
    RolloutStep {
        percent: Some(p),
        ..RolloutStep::default()
    }
}

fn analysis_step() -> RolloutStep {
    RolloutStep {
        analysis: Some(StepAnalysis {}),
        ..RolloutStep::default()
    }
}

/// Counts, in the background, the most pods ever seen at a revision other than `old`.
fn watch_max_moved(env: &Env, old: String) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let max = Arc::new(AtomicUsize::new(0));
    let pods: kube::Api<Pod> = env.pod_api();
    let seen = max.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Ok(list) = pods.list(&ListParams::default().labels("app=web")).await {
                let moved = list
                    .items
                    .iter()
                    .filter(|p| {
                        p.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("controller-revision-hash"))
                            .is_some_and(|r| *r != old)
                    })
                    .count();
                seen.fetch_max(moved, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (max, task)
}

fn analysis_status(r: &StatefulsetRollout) -> sroll_api::analysis::AnalysisStatus {
    r.status
        .as_ref()
        .and_then(|s| s.analysis.clone())
        .unwrap_or_default()
}

/// Four pods at `app:v1`, done; Prometheus scraping them.
async fn world() -> (Env, Prometheus, Rollout, String) {
    let env = Env::start().await;
    let v1 = Rollout::named("web").replicas(4).image("app:v1");
    env.apply(&v1).await;
    let old = status::update_revision(&env.wait_phase("web", Phase::Done).await);
    let prom = Prometheus::start(env.cluster.base_url(), DEADLINE)
        .await
        .unwrap();
    (env, prom, v1, old)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_release_passes_every_analysis_step() {
    let (env, prom, v1, _) = world().await;
    let v2 = v1
        .clone()
        .image("app:v2")
        .steps(vec![
            percent(50),
            analysis_step(),
            percent(100),
            analysis_step(),
        ])
        .analysis(analysis(error_metric(&prom.url), AbortPolicy::Rollback));
    env.apply(&v2).await;
    let done = env.wait_phase("web", Phase::Done).await;
    let a = analysis_status(&done);
    assert_eq!(a.step_index, Some(4), "{a:?}");
    assert_eq!(a.phase.as_deref(), Some("Successful"), "{a:?}");
    let m = &a.metrics[0];
    // The last analysis, after the last pod moved: three good measurements.
    assert_eq!((m.successful, m.failed), (3, 0), "{m:?}");
    assert!(
        m.measurements
            .iter()
            .filter(|x| x.phase == "Successful")
            .all(|x| x.value.as_deref() == Some("[0.0]")),
        "{m:?}"
    );
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_image_aborts_at_the_first_analysis_and_rolls_back_without_passing_its_step() {
    let (env, prom, v1, old) = world().await;
    let (max_moved, watcher) = watch_max_moved(&env, old.clone());
    let v2 = v1
        .clone()
        .image("app:v2-errors20")
        .steps(vec![percent(25), analysis_step(), percent(100)])
        .analysis(analysis(error_metric(&prom.url), AbortPolicy::Rollback));
    env.apply(&v2).await;
    let aborted = env
        .wait_rollout("web", "the rollout to abort and roll back", |r| {
            let s = r.status.clone().unwrap_or_default();
            s.phase == Some(Phase::Aborted)
                && s.pods.len() == 4
                && s.pods.iter().all(|p| *p.revision == *old && p.ready)
        })
        .await;
    watcher.abort();
    assert_eq!(
        max_moved.load(Ordering::SeqCst),
        1,
        "25 % of 4 pods: never more than one pod at the bad revision"
    );
    let progressing = status::condition(&aborted, ct::PROGRESSING).unwrap();
    assert_eq!(progressing.reason, "RolloutAborted");
    assert!(
        progressing.message.contains("error-ratio")
            && progressing.message.contains("failureLimit 0"),
        "{}",
        progressing.message
    );
    let a = analysis_status(&aborted);
    assert_eq!(a.phase.as_deref(), Some("Failed"));
    let failed: Vec<f64> = a.metrics[0]
        .measurements
        .iter()
        .filter(|m| m.phase == "Failed")
        .filter_map(|m| serde_json::from_str::<Vec<f64>>(m.value.as_deref()?).ok())
        .flatten()
        .collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|v| (v - 0.2).abs() < 0.02),
        "the bad pod fails 20 % of its requests: {a:?}"
    );
    assert_eq!(
        env.events("web", "RolloutAborted").await.len(),
        1,
        "the abort is announced once"
    );
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_errs_after_consecutive_error_limit_and_holds() {
    let (env, _prom, v1, old) = world().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut metric = error_metric(&format!("http://{closed}"));
    metric.initial_delay = None;
    metric.count = Some(10);
    metric.consecutive_error_limit = Some(3);
    let v2 = v1
        .clone()
        .image("app:v2")
        .steps(vec![percent(25), analysis_step(), percent(100)])
        .analysis(analysis(metric, AbortPolicy::Hold));
    env.apply(&v2).await;
    let aborted = env.wait_phase("web", Phase::Aborted).await;
    let a = analysis_status(&aborted);
    let m = &a.metrics[0];
    assert_eq!(
        (m.error, m.consecutive_error),
        (4, 4),
        "the 4th consecutive error with limit 3: {m:?}"
    );
    assert!(
        a.message
            .as_deref()
            .unwrap_or_default()
            .contains("consecutiveErrorLimit 3"),
        "{a:?}"
    );
    assert_eq!(a.phase.as_deref(), Some("Error"));
    // Hold: the updated pod stays.
    let pods = env.revisions("web").await;
    assert_eq!(
        pods.iter().filter(|(_, r)| *r != old).count(),
        1,
        "{pods:?}"
    );
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_abort_only_when_they_exceed_failure_limit() {
    let (env, prom, v1, _) = world().await;
    let mut metric = error_metric(&prom.url);
    metric.count = Some(5);
    metric.failure_limit = Some(2);
    let v2 = v1
        .clone()
        .image("app:v2-errors20")
        .steps(vec![percent(25), analysis_step(), percent(100)])
        .analysis(analysis(metric, AbortPolicy::Hold));
    env.apply(&v2).await;
    let aborted = env.wait_phase("web", Phase::Aborted).await;
    let m = &analysis_status(&aborted).metrics[0];
    assert_eq!(
        (m.failed, m.count),
        (3, 3),
        "the 3rd failure exceeds failureLimit 2: {m:?}"
    );
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconclusive_analysis_pauses_until_the_user_resumes() {
    let (env, prom, v1, _) = world().await;
    let mut metric = error_metric(&prom.url);
    metric.count = Some(1);
    metric.failure_condition = Some("result[0] > 0.5".into());
    let v2 = v1
        .clone()
        .image("app:v2-errors20")
        .steps(vec![percent(25), analysis_step(), percent(100)])
        .analysis(analysis(metric, AbortPolicy::Rollback));
    env.apply(&v2).await;
    let paused = env.wait_phase("web", Phase::Paused).await;
    let cond = status::condition(&paused, ct::PAUSED).unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "AnalysisInconclusive")
    );
    assert_eq!(paused.status.as_ref().unwrap().updated_replicas, Some(1));
    // The user resumes: pause, then unpause (`kubectl sroll pause` / `resume`).
    for value in [true, false] {
        env.rollouts()
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"pauseRequested": value}})),
            )
            .await
            .unwrap();
        if value {
            env.wait_rollout("web", "the resume to be acknowledged", |r| {
                analysis_status(r).resume_requested == Some(true)
            })
            .await;
        }
    }
    let done = env.wait_phase("web", Phase::Done).await;
    assert_eq!(done.status.unwrap().updated_replicas, Some(4));
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_provider_value_is_selected_by_json_path() {
    let (env, _prom, v1, _) = world().await;
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({"data": {"errorRate": 0.01, "build": "v2"}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let metric = Metric {
        name: "web-health".into(),
        success_condition: Some("result < 0.05".into()),
        provider: MetricProvider {
            prometheus: None,
            web: Some(WebMetric {
                url: format!("http://{addr}/health"),
                json_path: Some("$.data.errorRate".into()),
                ..WebMetric::default()
            }),
        },
        ..Metric::default()
    };
    let v2 = v1
        .clone()
        .image("app:v2")
        .steps(vec![percent(50), analysis_step(), percent(100)])
        .analysis(analysis(metric, AbortPolicy::Rollback));
    env.apply(&v2).await;
    let done = env.wait_phase("web", Phase::Done).await;
    let a = analysis_status(&done);
    assert_eq!(
        a.metrics[0].measurements[0].value.as_deref(),
        Some("0.01"),
        "{a:?}"
    );
    server.abort();
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_during_an_analysis_resumes_it_and_aborts_once() {
    let (mut env, prom, v1, old) = world().await;
    let mut metric = error_metric(&prom.url);
    metric.initial_delay = Some("10s".into());
    let v2 = v1
        .clone()
        .image("app:v2-errors20")
        .steps(vec![percent(25), analysis_step(), percent(100)])
        .analysis(analysis(metric, AbortPolicy::Rollback));
    env.apply(&v2).await;
    env.wait_rollout("web", "the analysis to start", |r| {
        analysis_status(r).phase.as_deref() == Some("Running")
    })
    .await;
    env.kill_operator().await;
    env.start_operator();
    let aborted = env
        .wait_rollout("web", "the resumed analysis to abort and roll back", |r| {
            let s = r.status.clone().unwrap_or_default();
            s.phase == Some(Phase::Aborted) && s.pods.iter().all(|p| *p.revision == *old && p.ready)
        })
        .await;
    assert_eq!(
        analysis_status(&aborted).step_index,
        Some(1),
        "still the first analysis"
    );
    // Killed again once aborted: the abort is not decided or announced again.
    env.kill_operator().await;
    env.start_operator();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = env.rollout("web").await;
    assert_eq!(after.status.as_ref().unwrap().phase, Some(Phase::Aborted));
    assert_eq!(
        env.events("web", "RolloutAborted").await.len(),
        1,
        "one abort event across two operator restarts"
    );
    env.finish(true).await;
}
