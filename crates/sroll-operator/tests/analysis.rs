//! Analysis gates against a real Prometheus (Debian's `prometheus` package, started by
//! `sroll_testkit::prometheus`) scraping kubesim's simulated application metrics
//! (`/sim/metrics/pods`, docs/kubesim-metrics.md). These tests fail, never skip, without the binary.
#![allow(clippy::unwrap_used)]

use sroll_api::Phase;
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
