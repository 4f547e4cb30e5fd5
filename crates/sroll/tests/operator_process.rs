//! The real `sroll operator` binary, as a subprocess, against kubesim served over HTTP: killed with
//! SIGKILL mid-rollout and restarted, it finishes with a correct status and without extra
//! evictions (issue 5, scenario 10, with a real process boundary).
//!
//! The scenario harness lives in `sroll-operator`'s tests; it is included here by path because
//! only this package's integration tests get `CARGO_BIN_EXE_sroll`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../sroll-operator/tests/support/mod.rs"]
mod support;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sroll_api::Phase;
use support::{Env, Rollout, evictions::Evictions, process::OperatorProcess};

/// The operator binary under test.
const SROLL: &str = env!("CARGO_BIN_EXE_sroll");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_process_sigkilled_mid_rollout_several_times_finishes_without_extra_evictions()
{
    let env = Env::without_operator().await;
    let mut op = OperatorProcess::start(SROLL, &env, &[]);
    let base = Rollout::named("web").replicas(10);
    env.pdb("web", "web", IntOrString::Int(2)).await;
    env.checker.budget("web", 2);
    env.apply(&base).await;
    env.wait_phase("web", Phase::Done).await;
    let evictions = Evictions::watch(&env);

    env.apply(&base.image("registry.example/app:v2")).await;
    for round in 1..=3 {
        env.wait_rollout("web", "progress before the kill", |r| {
            r.status
                .as_ref()
                .and_then(|s| s.updated_replicas)
                .is_some_and(|u| u >= 2 * round)
        })
        .await;
        op.kill().await;
        op = op.restart();
    }
    let done = env.wait_phase("web", Phase::Done).await;
    let status = done.status.unwrap();
    assert_eq!(status.updated_replicas, Some(10));
    assert_eq!(status.ready_replicas, Some(10));
    assert_eq!(status.pods.len(), 10);
    assert!(status.pods.iter().all(|p| p.ready));
    assert_eq!(
        evictions.count(),
        10,
        "each pod evicted exactly once across {} processes: {:?}",
        op.generation,
        evictions.times()
    );
    assert!(
        op.terminate().await,
        "a SIGTERM stops the last process cleanly; its log:\n{}",
        op.log()
    );
    env.finish(true).await;
}
