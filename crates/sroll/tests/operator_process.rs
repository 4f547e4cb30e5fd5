//! The real `sroll operator` binary, as a subprocess, against kubesim served over HTTP: killed with
//! SIGKILL mid-rollout and restarted, it finishes with a correct status and without extra
//! evictions (issue 5, scenario 10, with a real process boundary), and the same at random moments
//! with Slack notifications and a release callback under the invariant checker (issue 10, chaos
//! scenario 1: a short version here, the long one — 300 pods, 30 kills — behind `--ignored`).
//!
//! The scenario environment is `sroll_testkit`'s; the binary under test is this package's
//! (`CARGO_BIN_EXE_sroll`, which Cargo sets only for this package's integration tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sroll_api::Phase;
use sroll_testkit::{
    Env, Rollout,
    evictions::Evictions,
    process::OperatorProcess,
    receivers::{Fakes, notified},
};

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
        env.wait_updated("web", 2 * round).await;
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

/// One chaos run of SIGKILLs at random moments.
struct KillRun {
    replicas: i32,
    budget: i32,
    /// SIGKILLs that must land before the rollout is done.
    kills: usize,
    /// Real-time pause between a restart and the next kill (random in this range, ms): kills land
    /// during start-up, cache sync, a reconcile, an eviction batch or a status write alike.
    gap_ms: (u64, u64),
    deadline: Duration,
}

/// A rollout with Slack notifications and a release callback while the operator process is
/// SIGKILLed `run.kills` times and restarted at once; then two more kills after it is done. The
/// checker watches the whole run (budget, revisions, status regressions, duplicated Slack messages
/// and applied callbacks); evictions are counted by kubesim's side (a pod watch), not by the
/// operator, so they count across processes.
async fn operator_process_sigkilled_at_random_moments(run: KillRun) {
    let env = Env::without_operator().await;
    let fakes = Fakes::start(&env).await;
    let flags = fakes.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let name = "db";
    env.pdb(name, name, IntOrString::Int(run.budget)).await;
    env.checker
        .budget(name, usize::try_from(run.budget).unwrap());
    let mut op = OperatorProcess::start(SROLL, &env, &flags);
    let base = Rollout::named(name).replicas(run.replicas);
    env.apply(&base).await;
    env.wait_rollout_within(name, "the set created and Ready", run.deadline, |r| {
        r.status.as_ref().and_then(|s| s.phase.clone()) == Some(Phase::Done)
    })
    .await;
    let evictions = Evictions::watch(&env);

    let v2 = base.image("registry.example/app:v2").identity("release-2");
    env.apply_resource(&notified(&v2, &fakes.callback_url(), "stage-2"))
        .await;
    let mut rng = fastrand::Rng::with_seed(30);
    let started = Instant::now();
    let (mut kills, mut kills_during) = (0usize, 0usize);
    // Kill until `run.kills` kills have landed before the rollout was done.
    while kills_during < run.kills {
        let gap = rng.u64(run.gap_ms.0..=run.gap_ms.1);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        assert!(
            !op.exited(),
            "operator process {} exited on its own; its log:\n{}",
            op.generation,
            op.log()
        );
        let r = env.rollout(name).await;
        let done = r.status.as_ref().is_some_and(|s| {
            s.phase == Some(Phase::Done) && s.observed_generation == r.metadata.generation
        });
        assert!(
            !done,
            "the rollout finished after only {kills_during} of {} kills: make it longer",
            run.kills
        );
        op.kill().await;
        kills += 1;
        kills_during += 1;
        assert!(
            env.checker.problems_so_far().is_empty(),
            "after kill {kills}: {:#?}",
            env.checker.problems_so_far()
        );
        op = op.restart();
    }
    let done = env
        .wait_rollout_within(name, "the rollout done", run.deadline, |r| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == Some(Phase::Done)
                    && s.observed_generation == r.metadata.generation
                    && s.updated_replicas == Some(run.replicas)
            })
        })
        .await;
    let elapsed = started.elapsed();
    let status = done.status.clone().unwrap();
    assert_eq!(status.ready_replicas, Some(run.replicas));
    assert_eq!(status.percent_deployed, Some(100));
    assert_eq!(status.pods.len(), usize::try_from(run.replicas).unwrap());
    let rev2 = status.update_revision.clone().unwrap();
    assert!(
        env.revisions(name).await.iter().all(|(_, r)| *r == rev2),
        "every pod runs the new revision"
    );
    // The callback goes out once the rollout is Done.
    env.wait_rollout_within(name, "the stage-2 callback recorded", run.deadline, |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.last_callback_stage_id.as_deref() == Some("stage-2"))
    })
    .await;
    // Two more kills after completion: a restarted operator must not call back or post again.
    for _ in 0..2 {
        op.kill().await;
        kills += 1;
        op = op.restart();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        env.checker.deliveries("callback (stage-2, RolloutDone)"),
        1,
        "the callback was applied exactly once"
    );
    // Each pod evicted exactly once, across every process.
    let mut per_pod: BTreeMap<String, usize> = BTreeMap::new();
    for (pod, _) in evictions.times() {
        *per_pod.entry(pod).or_default() += 1;
    }
    let twice: Vec<_> = per_pod.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "pods evicted more than once: {twice:?}");
    assert_eq!(
        per_pod.len(),
        usize::try_from(run.replicas).unwrap(),
        "every pod evicted once"
    );
    let (posts, updates, callbacks, redeliveries) = {
        let s = fakes.received();
        (
            s.slack_posts.clone(),
            s.slack_updates,
            s.callbacks.clone(),
            s.redeliveries,
        )
    };
    assert_eq!(
        posts.len(),
        1,
        "one Slack message for the rollout: {posts:?}"
    );
    assert!(
        op.terminate().await,
        "a SIGTERM stops the last process cleanly; its log:\n{}",
        op.log()
    );
    let report = env.finish(true).await;
    eprintln!(
        "chaos process kill: {} pods, {kills} SIGKILLs of the operator process ({kills_during} \
         before Done), {} processes, rollout took {elapsed:.1?}, {} evictions (each pod once), \
         callbacks applied {callbacks:?} (+{redeliveries} redeliveries with the same key), {} \
         Slack message(s) + {updates} updates, problems: {}",
        run.replicas,
        op.generation,
        per_pod.values().sum::<usize>(),
        posts.len(),
        report.problems().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_process_sigkilled_6_times_at_random_moments_keeps_every_promise() {
    operator_process_sigkilled_at_random_moments(KillRun {
        replicas: 30,
        budget: 1,
        kills: 6,
        gap_ms: (200, 800),
        deadline: Duration::from_secs(120),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll --test operator_process --run-ignored only"]
async fn an_operator_process_sigkilled_30_times_during_a_300_pod_rollout_keeps_every_promise() {
    operator_process_sigkilled_at_random_moments(KillRun {
        replicas: 300,
        budget: 5,
        kills: 30,
        gap_ms: (300, 1200),
        deadline: Duration::from_secs(1200),
    })
    .await;
}
