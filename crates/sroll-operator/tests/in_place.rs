//! In-place updates (`spec.podUpdatePolicy`, issue 18): the real operator against kubesim over
//! HTTP, each run watched by the invariant checker (a pod out of traffic is not Ready, so it counts
//! against the budget; an in-place revision change is recorded as such, never as a leak).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    api::core::v1::Pod, apimachinery::pkg::util::intstr::IntOrString, jiff::Timestamp,
};
use kube::ResourceExt;
use sroll_api::{Phase, PodUpdatePolicy, condition_types as ct};
use sroll_operator::{Settings, integrations::IntegrationSettings};
use sroll_planner::inplace::{READINESS_GATE, STATE_ANNOTATION};
use sroll_testkit::{
    DEADLINE, Env, Rollout, RunningOperator,
    evictions::Evictions,
    fakes::{Fake, Slack},
    receivers::with_slack,
    status::{condition, update_revision},
    wait_for,
};

fn in_place(name: &str, replicas: i32) -> Rollout {
    Rollout::named(name)
        .replicas(replicas)
        .pod_update_policy(PodUpdatePolicy::InPlaceIfPossible)
}

fn uids(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(|p| p.uid().unwrap_or_default()).collect()
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

fn image(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn condition_of<'a>(pod: &'a Pod, type_: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// A set of `replicas` created under an in-place policy, with a PDB allowing `budget`, settled.
async fn settled(env: &Env, base: &Rollout, budget: i32) -> String {
    let name = base.build().metadata.name.clone().unwrap_or_default();
    env.pdb(&name, &name, IntOrString::Int(budget)).await;
    env.checker
        .budget(&name, usize::try_from(budget).unwrap_or(0));
    env.apply(base).await;
    update_revision(&env.wait_phase(&name, Phase::Done).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_only_change_updates_every_pod_in_place_within_the_budget() {
    let env = Env::start().await;
    let base = in_place("web", 4);
    let v1 = settled(&env, &base, 2).await;
    let before = env.pods("web").await;
    assert!(
        before.iter().all(|p| p
            .spec
            .as_ref()
            .and_then(|s| s.readiness_gates.as_ref())
            .is_some_and(|g| g.iter().any(|g| g.condition_type == READINESS_GATE))),
        "the template carries the readiness gate"
    );
    assert!(
        before
            .iter()
            .all(|p| condition_of(p, READINESS_GATE) == Some("True")),
        "the operator set the gate of the pods the set created"
    );
    let evictions = Evictions::watch(&env);

    env.apply(&base.clone().image("registry.example/app:v2"))
        .await;
    let done = env.wait_phase("web", Phase::Done).await;
    let v2 = update_revision(&done);
    assert_ne!(v1, v2);
    let after = env.pods("web").await;
    assert_eq!(uids(&after), uids(&before), "the same pods");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(restart_count(a), restart_count(b) + 1, "{}", a.name_any());
        assert_eq!(image(a), "registry.example/app:v2");
        assert_eq!(
            a.labels().get("controller-revision-hash"),
            Some(&v2),
            "counted as updated by the StatefulSet controller"
        );
        assert!(a.annotations().contains_key(STATE_ANNOTATION));
    }
    assert_eq!(evictions.count(), 0, "no eviction: {:?}", evictions.times());
    let status = done.status.unwrap();
    assert!(status.in_place_updating.is_empty());
    assert_eq!(status.updated_replicas, Some(4));
    let events = env.events("web", "PodsUpdatingInPlace").await;
    assert!(
        events.iter().any(|(_, note)| note.contains("in place")),
        "{events:?}"
    );
    let max = env.checker.max_unavailable("web");
    assert!((1..=2).contains(&max), "max unavailable {max}");
    let sts = env.statefulset("web").await.unwrap();
    assert_eq!(
        sts.status.unwrap().current_revision.as_deref(),
        Some(v2.as_str()),
        "the StatefulSet controller completed the rollout"
    );
    let report = env.finish(true).await;
    assert_eq!(report.in_place.len(), 4, "{:?}", report.in_place);
    assert!(
        report.moves.is_empty(),
        "no pod recreated: {:?}",
        report.moves
    );
}

/// The operator's requests on pods, by `VERB subresource code` (kubesim's `/metrics`).
async fn pod_requests(env: &Env) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(env.cluster.service(), req)
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let label = |line: &str, name: &str| {
        line.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    let mut out = BTreeMap::new();
    for line in String::from_utf8_lossy(&bytes).lines() {
        if !line.starts_with("apiserver_request_total{")
            || label(line, "user_agent") != "sroll-operator"
            || label(line, "resource") != "pods"
        {
            continue;
        }
        let key = format!(
            "{} {} {}",
            label(line, "verb"),
            label(line, "subresource"),
            label(line, "code")
        );
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *out.entry(key).or_insert(0.0) += n;
    }
    out
}

/// With the default grace period an in-place update is three writes per pod and no read: the
/// out-of-traffic and ready steps are status patches on the cached pod, under its resourceVersion,
/// and the image update starts from the object the first patch returned. A patch refused because
/// the cache was behind (409) costs one read, never a second write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pod_updated_in_place_costs_three_writes_and_a_read_only_after_a_conflict() {
    // The operator with its production client (its own User-Agent), so kubesim counts its
    // requests apart from the test's and the checker's.
    let mut env = Env::without_operator().await;
    let mut config = kube::Config::new(env.cluster.base_url().parse().unwrap());
    config.default_namespace = env.ns.clone();
    let client = sroll_operator::operator_client(config).unwrap();
    let op = RunningOperator::start(client, env.settings());
    env.checker.watch_operator(&op.exits);
    env.operator = Some(op);
    let base = in_place("cheap", 3);
    settled(&env, &base, 1).await;
    let before = pod_requests(&env).await;
    env.apply(&base.clone().image("registry.example/app:v2"))
        .await;
    env.wait_phase("cheap", Phase::Done).await;
    let after = pod_requests(&env).await;
    let count = |key: &str| {
        after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
    };
    let diff: BTreeMap<&String, f64> = after
        .keys()
        .map(|k| (k, count(k)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    assert_eq!(
        count("PATCH status 200") + count("UPDATE status 200"),
        6.0,
        "out of traffic and ready, once per pod: {diff:?}"
    );
    assert_eq!(
        count("UPDATE  200"),
        3.0,
        "one image update per pod: {diff:?}"
    );
    assert_eq!(
        count("GET  200"),
        count("PATCH status 409"),
        "a read only after a refused patch: {diff:?}"
    );
    assert!(
        count("PATCH status 200") >= 3.0,
        "the status steps go without a read: {diff:?}"
    );
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_change_is_rolled_by_recreate_under_in_place_if_possible() {
    let env = Env::start().await;
    let base = in_place("env", 3);
    settled(&env, &base, 1).await;
    let before = uids(&env.pods("env").await);
    let evictions = Evictions::watch(&env);
    env.apply(&base.image("registry.example/app:v2").env("MODE", "fast"))
        .await;
    env.wait_phase("env", Phase::Done).await;
    let after = uids(&env.pods("env").await);
    assert!(
        after.iter().all(|u| !before.contains(u)),
        "every pod recreated"
    );
    assert_eq!(evictions.count(), 3);
    let report = env.finish(true).await;
    assert!(report.in_place.is_empty(), "{:?}", report.in_place);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_change_blocks_in_place_only_with_a_condition_naming_the_field() {
    let env = Env::start().await;
    let base = Rollout::named("only")
        .replicas(2)
        .pod_update_policy(PodUpdatePolicy::InPlaceOnly);
    settled(&env, &base, 1).await;
    let before = uids(&env.pods("only").await);
    env.apply(&base.env("MODE", "fast")).await;
    let blocked = env.wait_phase("only", Phase::Blocked).await;
    let c = condition(&blocked, ct::SPEC_VALID).expect("SpecValid");
    assert_eq!(c.status, "False");
    assert_eq!(c.reason, "InPlaceUpdateImpossible");
    assert!(
        c.message.contains("spec.containers[0].env"),
        "{}",
        c.message
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(uids(&env.pods("only").await), before, "nothing moved");
    env.finish(true).await;
}

/// Per pod: when the test first saw it out of traffic at its old image (and whether it was
/// NotReady then), from a poll of the pods.
type OutOfTraffic = Arc<Mutex<BTreeMap<String, (Timestamp, bool)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_holds_each_pod_out_of_traffic_before_its_image_changes() {
    let env = Env::start().await;
    let base = in_place("grace", 2).in_place_grace(2);
    settled(&env, &base, 1).await;
    let seen: OutOfTraffic = Arc::default();
    let (record, pods) = (seen.clone(), env.pod_api());
    let poll = tokio::spawn(async move {
        loop {
            if let Ok(list) = pods.list(&Default::default()).await {
                for p in list.items {
                    if condition_of(&p, READINESS_GATE) == Some("False")
                        && image(&p) == "registry.example/app:v1"
                    {
                        let not_ready = condition_of(&p, "Ready") == Some("False");
                        record
                            .lock()
                            .unwrap()
                            .entry(p.name_any())
                            .or_insert((Timestamp::now(), not_ready));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    env.apply(&base.image("registry.example/app:v2")).await;
    env.wait_phase("grace", Phase::Done).await;
    poll.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "both pods were seen out of traffic first: {seen:?}"
    );
    for p in env.pods("grace").await {
        let (first_seen, not_ready) = seen[&p.name_any()];
        assert!(
            not_ready,
            "{} was NotReady while out of traffic",
            p.name_any()
        );
        let state: serde_json::Value =
            serde_json::from_str(&p.annotations()[STATE_ANNOTATION]).unwrap();
        let patched: Timestamp = state["updateTimestamp"].as_str().unwrap().parse().unwrap();
        let held = patched.duration_since(first_seen);
        assert!(
            held.as_secs_f64() >= 1.9,
            "{} held out of traffic {held:?} before its image changed (grace 2 s)",
            p.name_any()
        );
    }
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_an_in_place_rollout_starts_no_new_update_and_resuming_finishes_it() {
    let env = Env::start().await;
    let base = in_place("pause", 5).in_place_grace(1);
    settled(&env, &base, 1).await;
    let v2 = base.clone().image("registry.example/app:v2");
    env.apply(&v2).await;
    env.wait_updated("pause", 1).await;
    env.apply(&v2.clone().paused(true)).await;
    env.wait_phase("pause", Phase::Paused).await;
    // Whatever was under way finishes; nothing new starts.
    wait_for("every pod Ready while paused", DEADLINE, || async {
        env.pods("pause")
            .await
            .iter()
            .all(|p| condition_of(p, "Ready") == Some("True"))
            .then_some(())
    })
    .await;
    let moved = env.checker.moves_so_far().len();
    let images = |pods: Vec<Pod>| -> Vec<String> { pods.iter().map(image).collect() };
    let frozen = images(env.pods("pause").await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        images(env.pods("pause").await),
        frozen,
        "no image changed while paused"
    );
    assert!(frozen.iter().any(|i| i.ends_with("v1")), "{frozen:?}");
    env.apply(&v2.paused(false)).await;
    env.wait_phase("pause", Phase::Done).await;
    assert!(
        images(env.pods("pause").await)
            .iter()
            .all(|i| i.ends_with("v2"))
    );
    assert_eq!(env.checker.moves_so_far().len(), moved, "no pod recreated");
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_goes_back_in_place() {
    let env = Env::start().await;
    let base = in_place("back", 4).in_place_grace(1);
    let v1 = settled(&env, &base, 1).await;
    let before = uids(&env.pods("back").await);
    let evictions = Evictions::watch(&env);
    env.apply(&base.clone().image("registry.example/app:v2"))
        .await;
    env.wait_updated("back", 2).await;
    env.apply(&base).await;
    let done = env
        .wait_rollout("back", "done back at v1", |r| {
            update_revision(r) == v1
                && r.status.as_ref().is_some_and(|s| {
                    s.phase == Some(Phase::Done) && s.observed_generation == r.metadata.generation
                })
        })
        .await;
    assert_eq!(update_revision(&done), v1);
    let pods = env.pods("back").await;
    assert_eq!(uids(&pods), before, "no pod recreated");
    assert!(pods.iter().all(|p| image(p) == "registry.example/app:v1"));
    assert!(
        pods.iter()
            .all(|p| p.labels().get("controller-revision-hash") == Some(&v1))
    );
    assert_eq!(evictions.count(), 0);
    env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_killed_during_an_in_place_rollout_come_back_without_a_leak() {
    let env = Env::start().await;
    let base = in_place("kill", 6).in_place_grace(1);
    settled(&env, &base, 2).await;
    env.apply(&base.image("registry.example/app:v2")).await;
    // Kill one pod out of traffic (mid-update) and one already updated.
    let victim = wait_for("a pod out of traffic", DEADLINE, || async {
        env.pods("kill")
            .await
            .into_iter()
            .find(|p| condition_of(p, READINESS_GATE) == Some("False"))
            .map(|p| p.name_any())
    })
    .await;
    env.checker.external([victim.as_str()]);
    env.kill_pod(&victim).await;
    let updated = env.wait_updated("kill", 3).await;
    let update = update_revision(&updated);
    let patched = env
        .pods("kill")
        .await
        .into_iter()
        .find(|p| {
            p.labels().get("controller-revision-hash") == Some(&update) && p.name_any() != victim
        })
        .map(|p| p.name_any())
        .expect("an updated pod");
    env.checker.external([patched.as_str()]);
    env.kill_pod(&patched).await;
    env.wait_phase("kill", Phase::Done).await;
    assert!(
        env.revisions("kill")
            .await
            .iter()
            .all(|(_, r)| *r == update)
    );
    env.finish(true).await;
}

/// Slack and Events say "in place": during an in-place release the rollout's Slack message counts
/// the pods updating in place (`pods 1–1 of 1 (1 in place)`) and marks each one (`` `web-5` (in
/// place) ``), as the operator fills the snapshot from `status.inPlaceUpdating`; each batch's
/// Event says "in place" too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_messages_and_events_say_in_place_for_pods_updated_in_place() {
    const TOKEN: &str = "xoxb-in-place";
    let mut env = Env::without_operator().await;
    let slack = Slack::new(TOKEN);
    let server = slack.serve().await.unwrap();
    let secret = env.slack_token_secret(TOKEN).await;
    let settings = Settings {
        integrations: IntegrationSettings {
            cluster_name: "kubesim-e2e".into(),
            slack_api_url: Some(server.url("/api")),
            slack_token_secret: Some(secret),
            ..IntegrationSettings::default()
        },
        ..env.settings()
    };
    env.start_operator_with(settings);
    let base = in_place("web", 6);
    settled(&env, &base, 1).await;

    env.apply_resource(&with_slack(
        base.clone().image("registry.example/app:v2").build(),
    ))
    .await;
    env.wait_phase("web", Phase::Done).await;
    let in_place_bodies = || {
        slack
            .state()
            .messages
            .values()
            .flatten()
            .map(|(_, body)| body.to_string())
            .filter(|b| b.contains(" in place)") && b.contains("` (in place)"))
            .collect::<Vec<_>>()
    };
    let bodies = wait_for(
        "a Slack message listing pods in place",
        DEADLINE,
        || async { Some(in_place_bodies()).filter(|b| !b.is_empty()) },
    )
    .await;
    eprintln!("{} Slack bodies name pods in place", bodies.len());
    let events = env.events("web", "PodsUpdatingInPlace").await;
    assert!(
        !events.is_empty() && events.iter().all(|(_, note)| note.contains("in place")),
        "{events:?}"
    );
    env.finish(true).await;
}
