//! In-place updates across real process boundaries: the `sroll operator` binary SIGKILLed while
//! pods are out of traffic or restarting, and restarted: the rollout completes from what the pods
//! themselves record, each pod updated in place exactly once (issue 18).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use sroll_api::{Phase, PodUpdatePolicy};
use sroll_planner::inplace::READINESS_GATE;
use sroll_testkit::{
    DEADLINE, Env, Rollout, evictions::Evictions, process::OperatorProcess, wait_for,
};

/// The operator binary under test.
const SROLL: &str = env!("CARGO_BIN_EXE_sroll");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sigkilled_mid_in_place_update_finishes_without_updating_a_pod_twice() {
    let env = Env::without_operator().await;
    let mut op = OperatorProcess::start(SROLL, &env, &[]);
    let base = Rollout::named("web")
        .replicas(6)
        .pod_update_policy(PodUpdatePolicy::InPlaceIfPossible)
        .in_place_grace(1);
    env.pdb("web", "web", IntOrString::Int(2)).await;
    env.checker.budget("web", 2);
    env.apply(&base).await;
    env.wait_phase("web", Phase::Done).await;
    let before: Vec<String> = env
        .pods("web")
        .await
        .iter()
        .map(|p| p.uid().unwrap())
        .collect();
    let evictions = Evictions::watch(&env);

    env.apply(&base.image("registry.example/app:v2")).await;
    for round in 1..=3 {
        // Kill while a pod is out of traffic, waiting for its grace period or its restart.
        wait_for(
            &format!("a pod out of traffic (round {round})"),
            DEADLINE,
            || async {
                env.pods("web")
                    .await
                    .iter()
                    .any(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter()
                                    .any(|c| c.type_ == READINESS_GATE && c.status == "False")
                            })
                    })
                    .then_some(())
            },
        )
        .await;
        op.kill().await;
        op = op.restart();
        if round < 3 {
            env.wait_updated("web", 2 * round).await;
        }
    }
    let done = env.wait_phase("web", Phase::Done).await;
    let status = done.status.unwrap();
    assert_eq!(status.updated_replicas, Some(6));
    assert!(status.in_place_updating.is_empty());
    let after: Vec<String> = env
        .pods("web")
        .await
        .iter()
        .map(|p| p.uid().unwrap())
        .collect();
    assert_eq!(
        after, before,
        "no pod recreated across {} processes",
        op.generation
    );
    assert_eq!(evictions.count(), 0);
    assert!(
        op.terminate().await,
        "SIGTERM stops the last process; its log:\n{}",
        op.log()
    );
    let report = env.finish(true).await;
    let mut per_pod: BTreeMap<String, usize> = BTreeMap::new();
    for m in &report.in_place {
        *per_pod.entry(m.pod.clone()).or_default() += 1;
    }
    assert_eq!(per_pod.len(), 6, "{:?}", report.in_place);
    assert!(
        per_pod.values().all(|n| *n == 1),
        "each pod updated in place once: {per_pod:?}"
    );
}
