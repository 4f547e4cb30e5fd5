//! The real operator on kubesim (the scenario environment of `sroll_testkit`) with its integrations
//! pointed at local servers implementing the documented shapes of the Slack Web API, a
//! release-callback receiver and Consul's health and catalog endpoints, plus kubesim's own
//! EndpointSlice controller (issue 6's "Done when").
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{FutureExt, StreamExt};
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{Service, ServiceSpec},
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use sroll_api::{
    DiscoveryProvider, Notifications, Phase, ServiceDiscovery, StatefulsetRollout, Webhook,
    analysis::{
        AbortPolicy, Metric, MetricProvider, PrometheusMetric, RolloutAnalysis, RolloutStep,
        StepAnalysis,
    },
    condition_types as ct,
};
use sroll_operator::{Settings, integrations::IntegrationSettings};
use sroll_testkit::{
    DEADLINE, Env, Rollout,
    fakes::{
        Consul, Fake, Receiver, Server, Slack,
        slack::{SlackFigures, pods_listed},
    },
    prometheus::Prometheus,
    receivers::{pod_instances, with_callback, with_slack},
    status::{self, done_at_generation},
    wait_for,
};
use tokio::{task::JoinHandle, time::Instant};

const TOKEN: &str = "xoxb-e2e-token";

// ---- the world ------------------------------------------------------------------------------

/// The harness's [`Env`] plus the Slack fake, the callback receiver and operator settings
/// pointing at them.
struct World {
    env: Env,
    slack: Slack,
    receiver: Receiver,
    /// Their servers (serving while the world lives).
    _slack_server: Server,
    receiver_server: Server,
    settings: Settings,
}

async fn world() -> World {
    let env = Env::without_operator().await;
    let slack = Slack::new(TOKEN);
    let slack_server = slack.serve().await.unwrap();
    let receiver = Receiver::new("/callback");
    let receiver_server = receiver.serve().await.unwrap();
    let slack_secret = env.slack_token_secret(TOKEN).await;
    let settings = Settings {
        integrations: IntegrationSettings {
            cluster_name: "kubesim-e2e".into(),
            slack_api_url: Some(slack_server.url("/api")),
            slack_token_secret: Some(slack_secret),
            callback_allow: vec![format!("127.0.0.1:{}", receiver_server.addr.port())],
            discovery_interval: Some(Duration::from_millis(200)),
            // Compressed time: 50 ms, 100 ms, 200 ms … between callback attempts.
            callback_retry_base: Some(Duration::from_millis(50)),
            ..IntegrationSettings::default()
        },
        ..env.settings()
    };
    World {
        env,
        slack,
        receiver,
        _slack_server: slack_server,
        receiver_server,
        settings,
    }
}

impl World {
    fn start(&mut self) {
        self.env.start_operator_with(self.settings.clone());
    }

    /// SIGKILL and start again.
    async fn restart(&mut self) {
        self.env.kill_operator().await;
        self.start();
    }

    fn callback_url(&self) -> String {
        self.receiver_server.url("/callback")
    }

    /// `status.slackMessage.ts` once every message of rollout identity `identity` shows `text`.
    async fn wait_slack_shows(&self, name: &str, identity: &str, text: &str) -> Vec<String> {
        wait_for(
            &format!("the Slack messages of {identity} to show {text}"),
            DEADLINE,
            || async {
                let r = self.env.rollouts().get(name).await.ok()?;
                let message = r.status?.slack_message?;
                if message.rollout_identity.as_deref() != Some(identity) {
                    return None;
                }
                let s = self.slack.state();
                message
                    .ts
                    .iter()
                    .all(|ts| {
                        s.messages.get(ts).is_some_and(|h| {
                            h.last().is_some_and(|(_, m)| m.to_string().contains(text))
                        })
                    })
                    .then_some(message.ts)
            },
        )
        .await
    }
}

fn condition(r: &StatefulsetRollout, type_: &str) -> Option<(String, String, String)> {
    status::condition(r, type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// `Degraded=True` naming `pod` as Ready but not healthy in service discovery (the reason is
/// `DiscoveryUnhealthy` unless an earlier cause, such as a missing PDB, comes first).
fn unhealthy_named(r: &StatefulsetRollout, pod: &str) -> bool {
    condition(r, ct::DEGRADED).is_some_and(|(status, _, message)| {
        status == "True"
            && message.contains(&format!(
                "{pod} Ready in Kubernetes but not healthy in service discovery"
            ))
    })
}

/// Done at the current generation for rollout identity `identity`.
fn done_as(identity: &str) -> impl Fn(&StatefulsetRollout) -> bool + '_ {
    move |r| {
        done_at_generation(r)
            && r.status
                .as_ref()
                .is_some_and(|s| s.rollout_identity.as_deref() == Some(identity))
    }
}

// ---- Slack ----------------------------------------------------------------------------------

/// Waits for `pred` like [`Env::wait_rollout_within`], printing the rollout's progress every 15 s
/// (long runs) and its last status on timeout.
async fn wait_reporting(
    env: &Env,
    name: &str,
    deadline: Duration,
    pred: impl Fn(&StatefulsetRollout) -> bool,
) -> StatefulsetRollout {
    let start = Instant::now();
    let mut said = start;
    loop {
        if let Ok(r) = env.rollouts().get(name).await {
            if pred(&r) {
                return r;
            }
            let s = r.status.clone().unwrap_or_default();
            let line = format!(
                "{name} after {:?}: {:?} {}/{:?} updated; {}",
                start.elapsed(),
                s.phase,
                s.updated_replicas.unwrap_or(0),
                s.target_updated_replicas,
                s.reason.unwrap_or_default()
            );
            assert!(start.elapsed() < deadline, "timed out: {line}");
            if said.elapsed() >= Duration::from_secs(15) {
                // Pods by (revision, ready, terminating), and the first few not ready.
                let mut census: BTreeMap<(String, bool, bool), usize> = BTreeMap::new();
                let mut unready = Vec::new();
                for p in env.pods(name).await {
                    let ready = p.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .flatten()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    });
                    let rev = p
                        .labels()
                        .get("controller-revision-hash")
                        .cloned()
                        .unwrap_or_default();
                    let terminating = p.metadata.deletion_timestamp.is_some();
                    if !ready && unready.len() < 5 {
                        unready.push(format!(
                            "{} {:?}",
                            p.name_any(),
                            p.status.as_ref().and_then(|s| s.phase.clone())
                        ));
                    }
                    *census.entry((rev, ready, terminating)).or_default() += 1;
                }
                let reconciles = env.operator.as_ref().map(|o| o.metrics.reconciles.get());
                eprintln!(
                    "{line}\n  reconciles {reconciles:?}; pods (revision, ready, terminating): {census:?}; not ready: {unready:?}"
                );
                said = Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rolls `replicas` pods `cache:1` → `cache:2` with `in_flight` pods at a time
/// (`maxUnavailable`, checked by the harness's checker), Slack on for the second version; checks the assertions and returns
/// what Slack saw.
async fn slack_follows_a_large_rollout(
    replicas: i32,
    in_flight: i32,
    deadline: Duration,
) -> SlackFigures {
    let mut w = world().await;
    w.env
        .checker
        .budget("cache", usize::try_from(in_flight).unwrap());
    w.start();
    let fixture = Rollout::named("cache")
        .replicas(replicas)
        .max_unavailable(in_flight)
        .progress_deadline(3600);
    w.env
        .apply(&fixture.clone().image("cache:1").identity("c1"))
        .await;
    wait_reporting(&w.env, "cache", deadline, done_as("c1")).await;

    let started = Instant::now();
    w.env
        .apply_resource(&with_slack(
            fixture.clone().image("cache:2").identity("c2").build(),
        ))
        .await;
    let done = wait_reporting(&w.env, "cache", deadline, done_as("c2")).await;
    let rolled_in = started.elapsed();
    assert_eq!(
        done.status.as_ref().unwrap().updated_replicas,
        Some(replicas)
    );
    let ts = w.wait_slack_shows("cache", "c2", "RolloutDone").await;

    let f = {
        let s = w.slack.state();
        let f = s.figures(&ts);
        eprintln!("{replicas} pods, {in_flight} in flight, rolled in {rolled_in:?}: {f:?}");
        // No message duplicated: every message posted is one the status names, each posted once.
        assert_eq!(s.posts, ts, "messages posted vs status.slackMessage");
        assert!(
            f.messages >= usize::try_from(in_flight).unwrap().div_ceil(50),
            "more than 50 pods in flight continue in further messages: {f:?}"
        );
        assert!(f.max_pods_per_message <= 50, "{f:?}");
        assert!(
            f.max_pods_per_message > 0,
            "the pods being rolled are listed"
        );
        assert!(f.max_calls_per_second <= 1, "{f:?}");
        assert!(
            f.min_gap.is_none_or(|g| g >= Duration::from_millis(990)),
            "at most one update per message per second: {f:?}"
        );
        assert!(f.calls > ts.len(), "the messages were updated in place");
        for t in &ts {
            let (_, last) = s.messages[t].last().unwrap();
            let text = last.to_string();
            assert!(text.contains("RolloutDone"), "{text}");
            assert_eq!(pods_listed(last), 0, "nothing is rolling any more: {text}");
        }
        // Old → new version, image and revision, on the first message.
        let first = s.messages[&ts[0]].last().unwrap().1.to_string();
        let revisions = done.status.as_ref().unwrap();
        assert!(
            first.contains("*From:*\\n`cache:1`") && first.contains("*To:*\\n`cache:2`"),
            "{first}"
        );
        for rev in [&revisions.previous_revision, &revisions.update_revision] {
            assert!(
                first.contains(rev.as_deref().unwrap()),
                "{rev:?} in {first}"
            );
        }
        assert!(first.contains("kubesim-e2e"), "{first}");
        f
    };
    w.env.finish(false).await;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_messages_of_a_200_pod_rollout_with_60_in_flight_list_at_most_50_pods_update_at_most_once_a_second_and_end_with_the_outcome()
 {
    slack_follows_a_large_rollout(200, 60, Duration::from_secs(240)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 1,000 pods on kubesim (minutes); run with --run-ignored only"]
async fn slack_messages_of_a_1000_pod_rollout_with_100_in_flight_list_at_most_50_pods_update_at_most_once_a_second_and_end_with_the_outcome()
 {
    slack_follows_a_large_rollout(1000, 100, Duration::from_secs(1200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_answering_429s_and_500s_neither_blocks_the_rollout_nor_loses_its_messages() {
    let mut w = world().await;
    w.env.pdb("web", "web", IntOrString::Int(2)).await;
    w.start();
    let fixture = Rollout::named("web").replicas(12).max_unavailable(2);
    w.env
        .apply(&fixture.clone().image("web:1").identity("w1"))
        .await;
    w.env
        .wait_rollout("web", "web:1 deployed", done_as("w1"))
        .await;

    // A clean run with Slack answering.
    let clean_start = Instant::now();
    w.env
        .apply_resource(&with_slack(
            fixture.clone().image("web:2").identity("w2").build(),
        ))
        .await;
    w.env
        .wait_rollout("web", "web:2 rolled out", done_as("w2"))
        .await;
    let clean = clean_start.elapsed();
    w.wait_slack_shows("web", "w2", "RolloutDone").await;
    let posted_before = w.slack.state().posts.len();

    // The same rollout with Slack refusing every call (429 Retry-After: 1, then 500, …).
    w.slack.state().failing = true;
    let failing_start = Instant::now();
    w.env
        .apply_resource(&with_slack(
            fixture.clone().image("web:3").identity("w3").build(),
        ))
        .await;
    let complaining = w
        .env
        .wait_rollout("web", "NotificationsDelivered=False", |r| {
            condition(r, ct::NOTIFICATIONS_DELIVERED).is_some_and(|c| c.0 == "False")
        })
        .await;
    let (_, reason, message) = condition(&complaining, ct::NOTIFICATIONS_DELIVERED).unwrap();
    assert!(!message.contains(TOKEN), "the token never shows: {message}");
    let done = w
        .env
        .wait_rollout("web", "web:3 rolled out", done_as("w3"))
        .await;
    let failing = failing_start.elapsed();
    {
        let s = w.slack.state();
        assert!(
            s.failing,
            "the rollout finished while Slack was still failing"
        );
        assert!(s.refused >= 2, "Slack refused calls ({})", s.refused);
        assert_eq!(s.posts.len(), posted_before, "nothing got through");
    }
    eprintln!(
        "clean run {clean:?}, run with Slack failing {failing:?}, {} calls refused, condition reason {reason}",
        w.slack.state().refused
    );
    // Not blocked by Slack: the same order of time as the clean run (generous: shared CI cores).
    assert!(
        failing <= clean * 4 + Duration::from_secs(20),
        "Slack's failures slowed the rollout: {failing:?} vs {clean:?}"
    );
    assert_eq!(done.status.unwrap().updated_replicas, Some(12));

    // Slack recovers: the messages catch up and show the outcome; the condition clears.
    w.slack.state().failing = false;
    let ts = w.wait_slack_shows("web", "w3", "RolloutDone").await;
    w.env
        .wait_rollout("web", "NotificationsDelivered=True", |r| {
            condition(r, ct::NOTIFICATIONS_DELIVERED).is_some_and(|c| c.0 == "True")
        })
        .await;
    {
        let s = w.slack.state();
        assert_eq!(
            s.posts[posted_before..],
            ts[..],
            "posted once, after recovery"
        );
        let text = s.messages[&ts[0]].last().unwrap().1.to_string();
        assert!(text.contains("web:3") && text.contains("web:2"), "{text}");
    }
    w.env.finish(false).await;
}

// ---- the release callback -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_reaches_the_receiver_once_across_10_operator_restarts_around_completion() {
    let mut w = world().await;
    w.start();
    let fixture = Rollout::named("memcached").replicas(8);
    w.env
        .apply_resource(&with_callback(
            fixture
                .clone()
                .image("memcached:1.6.20")
                .identity("r1")
                .build(),
            &w.callback_url(),
            "stage-1",
        ))
        .await;
    w.env
        .wait_rollout("memcached", "r1 done", done_as("r1"))
        .await;
    w.env
        .wait_rollout("memcached", "stage-1 called back", |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.last_callback_stage_id.as_deref() == Some("stage-1"))
        })
        .await;

    // A new version, a new stage; the operator is killed ten times around its completion: while
    // the last pods move, then at growing intervals after the rollout is done.
    w.env
        .apply_resource(&with_callback(
            fixture
                .clone()
                .image("memcached:1.6.21")
                .identity("r2")
                .build(),
            &w.callback_url(),
            "stage-2",
        ))
        .await;
    w.env
        .wait_rollout("memcached", "the last pods of r2 to move", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.rollout_identity.as_deref() == Some("r2") && s.updated_replicas.unwrap_or(0) >= 6
            })
        })
        .await;
    let mut restarts: u32 = 0;
    while restarts < 4 && !done_as("r2")(&w.env.rollout("memcached").await) {
        w.restart().await;
        restarts += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    w.env
        .wait_rollout("memcached", "r2 done", done_as("r2"))
        .await;
    // Right after completion, while the callback is under way: kills at 0, 30, 60 … ms.
    let mut after_done: u32 = 0;
    while restarts < 10 {
        w.restart().await;
        restarts += 1;
        after_done += 1;
        tokio::time::sleep(Duration::from_millis(30 * u64::from(after_done))).await;
    }
    let done = w
        .env
        .wait_rollout("memcached", "stage-2 done and called back", |r| {
            done_as("r2")(r)
                && r.status
                    .as_ref()
                    .is_some_and(|s| s.last_callback_stage_id.as_deref() == Some("stage-2"))
        })
        .await;
    // Two more restarts long after: nothing is sent again.
    for _ in 0..2 {
        w.restart().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = done.status.clone().unwrap();
    assert_eq!(status.last_callback_outcome.as_deref(), Some("RolloutDone"));
    assert_eq!(
        condition(&done, ct::CALLBACK_DELIVERED).map(|c| c.0),
        Some("True".into())
    );
    {
        let r = w.receiver.state();
        let delivered = r.delivered();
        let stage2: Vec<_> = delivered
            .iter()
            .filter(|c| c.body["stageId"] == "stage-2")
            .collect();
        eprintln!(
            "restarts: {restarts} ({after_done} after Done); stage-2 deliveries answered 200: {}",
            stage2.len()
        );
        assert!(!stage2.is_empty());
        // A kill between the receiver's 2xx and the status write sends it again: every delivery of
        // stage-2 is the same callback (same Idempotency-Key, same body but for its `timestamp`), so
        // the receiver applied it once — and applied exactly one callback per stage.
        let untimed = |b: &Value| {
            let mut b = b.clone();
            b.as_object_mut().unwrap().remove("timestamp");
            b
        };
        assert!(
            stage2
                .iter()
                .all(|c| c.key == stage2[0].key && untimed(&c.body) == untimed(&stage2[0].body)),
            "{stage2:#?}"
        );
        assert_eq!(r.applied.len(), 2, "one callback per stage: {:?}", r.calls);
        assert_eq!(stage2[0].body["outcome"], "RolloutDone");
        assert_eq!(stage2[0].body["cluster"], "kubesim-e2e");
        assert_eq!(stage2[0].body["rolloutIdentity"], "r2");
    }
    w.env.finish(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_5_times_then_succeeding_gets_the_callback_once() {
    let mut w = world().await;
    w.receiver.state().fail_with = vec![503; 5];
    w.start();
    w.env
        .apply_resource(&with_callback(
            Rollout::named("web").replicas(2).identity("w1").build(),
            &w.callback_url(),
            "stage-9",
        ))
        .await;
    let done = w
        .env
        .wait_rollout("web", "stage-9 called back", |r| {
            done_as("w1")(r)
                && r.status
                    .as_ref()
                    .is_some_and(|s| s.last_callback_stage_id.as_deref() == Some("stage-9"))
        })
        .await;
    let (status, _, message) = condition(&done, ct::CALLBACK_DELIVERED).unwrap();
    assert_eq!(status, "True");
    assert!(message.contains("6 attempt"), "{message}");
    // Settled: more reconciles (a restart) send nothing more.
    w.restart().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    {
        let r = w.receiver.state();
        let answered: Vec<u16> = r.calls.iter().map(|c| c.status).collect();
        assert_eq!(
            answered,
            vec![503, 503, 503, 503, 503, 200],
            "{:?}",
            r.calls
        );
        assert!(
            r.calls.iter().all(|c| c.key == r.calls[0].key),
            "one Idempotency-Key"
        );
    }
    w.env.finish(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_to_a_host_not_allowed_is_refused_with_a_condition() {
    let mut w = world().await;
    w.start();
    w.env
        .apply_resource(&with_callback(
            Rollout::named("web").replicas(2).identity("w1").build(),
            "http://bapi.internal.example:8080/cb",
            "s",
        ))
        .await;
    let refused = w
        .env
        .wait_rollout("web", "the refusal", |r| {
            condition(r, ct::CALLBACK_DELIVERED).is_some_and(|c| c.1 == "CallbackRefused")
        })
        .await;
    let (status, _, message) = condition(&refused, ct::CALLBACK_DELIVERED).unwrap();
    assert_eq!(status, "False");
    assert!(
        message.contains("bapi.internal.example") && message.contains("--callback-allow"),
        "{message}"
    );
    assert_eq!(refused.status.unwrap().last_callback_stage_id, None);
    assert!(w.receiver.state().calls.is_empty());
    w.env.finish(false).await;
}

// ---- service discovery ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_holds_the_rollout_while_new_pods_fail_and_unreachable_consul_evicts_nothing() {
    let mut w = world().await;
    // Consul whose `memcached` service reports the set's pods: pods at the update revision pass
    // only while `new_pods_pass` is set.
    let new_pods_pass = Arc::new(AtomicBool::new(true));
    let (client, ns, pass) = (
        w.env.client.clone(),
        w.env.ns.clone(),
        new_pods_pass.clone(),
    );
    let consul = Consul::new().computed(
        "memcached",
        Arc::new(move || {
            let (client, ns, pass) = (client.clone(), ns.clone(), pass.clone());
            async move {
                let update = Api::<StatefulSet>::namespaced(client.clone(), &ns)
                    .get_opt("memcached")
                    .await
                    .ok()
                    .flatten()
                    .and_then(|s| s.status.and_then(|s| s.update_revision));
                let pass_new = pass.load(Ordering::SeqCst);
                pod_instances(Api::namespaced(client, &ns), |p| {
                    let rev = p.labels().get("controller-revision-hash").cloned();
                    let new = rev.is_some() && rev == update;
                    !new || pass_new
                })
                .await
            }
            .boxed()
        }),
    );
    let consul_server = consul.serve().await.unwrap();
    w.settings.integrations.consul_addr = Some(consul_server.url(""));
    w.start();
    let gated = |image: &str, id: &str| {
        let mut r = Rollout::named("memcached")
            .replicas(4)
            .image(image)
            .identity(id)
            .build();
        r.spec.service_discovery = Some(ServiceDiscovery {
            services: vec!["memcached".into(), "absent".into()],
            ..ServiceDiscovery::default()
        });
        r
    };
    w.env.apply_resource(&gated("memcached:1", "g1")).await;
    let done = w.env.wait_phase("memcached", Phase::Done).await;
    let status = done.status.unwrap();
    assert_eq!(status.consul_services, vec!["memcached".to_owned()]);
    assert_eq!(status.ready_replicas_service_discovery, Some(4));

    // New pods fail their checks: the rollout holds after the first pod, naming it.
    new_pods_pass.store(false, Ordering::SeqCst);
    w.env.apply_resource(&gated("memcached:2", "g2")).await;
    let held = w
        .env
        .wait_rollout(
            "memcached",
            "a condition naming the pod unhealthy in Consul",
            |r| {
                r.status.as_ref().is_some_and(|s| {
                    s.rollout_identity.as_deref() == Some("g2")
                        && s.phase == Some(Phase::InProgress)
                }) && unhealthy_named(r, "memcached-3")
            },
        )
        .await;
    let s = held.status.as_ref().unwrap();
    assert_eq!(s.updated_replicas, Some(1));
    assert_eq!(s.ready_replicas_service_discovery, Some(3));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = w.env.rollout("memcached").await.status.unwrap();
    assert_eq!(
        still.phase,
        Some(Phase::InProgress),
        "held: {:?}",
        still.reason
    );
    assert_eq!(still.updated_replicas, Some(1), "nothing more was evicted");
    assert_eq!(w.env.revisions("memcached").await.len(), 4);

    // Consul unreachable: nothing more is evicted, even once the pods would pass.
    consul.state().down = true;
    w.env
        .wait_rollout("memcached", "a DiscoveryUnreachable condition", |r| {
            condition(r, ct::DEGRADED).is_some_and(|c| c.1 == "DiscoveryUnreachable")
        })
        .await;
    // Only now would the pods pass: flipping both at once let a health query already past the
    // fake's `down` check answer "passing", a race in the fake, not an eviction while down.
    new_pods_pass.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frozen = w.env.rollout("memcached").await.status.unwrap();
    assert_eq!(
        frozen.updated_replicas,
        Some(1),
        "no eviction while unreachable"
    );

    // Consul back, pods passing: the rollout finishes.
    consul.state().down = false;
    let done = w
        .env
        .wait_rollout("memcached", "the gated rollout to finish", done_as("g2"))
        .await;
    assert_eq!(
        done.status.unwrap().ready_replicas_service_discovery,
        Some(4)
    );
    w.env.finish(false).await;
}

/// A Service named `name` selecting `selector`.
async fn service(env: &Env, name: &str, selector: &[(&str, &str)]) {
    let selector: BTreeMap<String, String> = selector
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let svc = Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .patch(
            name,
            &PatchParams::apply("scenario-user").force(),
            &Patch::Apply(&svc),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpointslice_health_holds_the_rollout_until_the_service_serves_the_new_pods() {
    let mut w = world().await;
    // The Service sends traffic to track=v1 pods only (as during a blue/green switch).
    service(&w.env, "web", &[("app", "web"), ("track", "v1")]).await;
    w.start();
    let gated = |track: &str, id: &str| {
        let mut r = Rollout::named("web")
            .replicas(4)
            .max_unavailable(1)
            .image(&format!("web:{track}"))
            .identity(id)
            .build();
        if let Some(meta) = r.spec.sts.spec.template.metadata.as_mut() {
            meta.labels
                .get_or_insert_with(BTreeMap::new)
                .insert("track".into(), track.into());
        }
        r.spec.service_discovery = Some(ServiceDiscovery {
            services: vec!["web".into()],
            provider: Some(DiscoveryProvider::Kubernetes),
            ..ServiceDiscovery::default()
        });
        r
    };
    w.env.apply_resource(&gated("v1", "e1")).await;
    let done = w
        .env
        .wait_rollout("web", "v1 deployed", done_as("e1"))
        .await;
    let status = done.status.unwrap();
    assert_eq!(status.consul_services, vec!["web".to_owned()]);
    assert_eq!(status.ready_replicas_service_discovery, Some(4));

    // v2 pods are Ready but the Service does not send them traffic: the rollout holds.
    w.env.apply_resource(&gated("v2", "e2")).await;
    let held = w
        .env
        .wait_rollout(
            "web",
            "a condition naming the pod outside the Service",
            |r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.rollout_identity.as_deref() == Some("e2"))
                    && unhealthy_named(r, "web-3")
            },
        )
        .await;
    assert_eq!(held.status.as_ref().unwrap().updated_replicas, Some(1));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = w.env.rollout("web").await.status.unwrap();
    assert_eq!(still.updated_replicas, Some(1), "held: {:?}", still.reason);
    assert_eq!(still.ready_replicas_service_discovery, Some(3));

    // The Service selects every version: its EndpointSlice shows web-3 ready and the next pod
    // goes. Then kubesim's kubelet keeps web-1 unready at v2 (its slice endpoint not ready): the
    // rollout holds on it until it is ready again.
    let web1 = kubesim::faults::PodRef {
        namespace: w.env.ns.clone(),
        name: "web-1".into(),
    };
    w.env.cluster.faults().update(|c| {
        c.unready_pods.insert(web1.clone());
    });
    service(&w.env, "web", &[("app", "web")]).await;
    let held = w
        .env
        .wait_rollout("web", "web-1 unready at v2 to hold the rollout", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.rollout_identity.as_deref() == Some("e2")
                    && s.updated_replicas == Some(3)
                    && s.phase == Some(Phase::InProgress)
            })
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = w.env.rollout("web").await.status.unwrap();
    assert_eq!(
        still.updated_replicas,
        Some(3),
        "held on web-1: {:?}",
        still.reason
    );
    assert!(
        still
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("web-1"),
        "{:?}",
        held.status
    );
    assert_eq!(still.ready_replicas_service_discovery, Some(3));
    let pods: BTreeSet<String> = w
        .env
        .pods("web")
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert!(
        pods.contains("web-0"),
        "web-0 not evicted while web-1 is unready"
    );

    w.env.cluster.faults().update(|c| {
        c.unready_pods.remove(&web1);
    });
    let done = w
        .env
        .wait_rollout("web", "v2 rolled out", done_as("e2"))
        .await;
    assert_eq!(
        done.status.unwrap().ready_replicas_service_discovery,
        Some(4)
    );
    w.env.finish(false).await;
}

// ---- an analysis abort, against a real Prometheus -------------------------------------------

/// The worst pod's error ratio over the last 10 s (kubesim's simulated application metrics,
/// docs/kubesim-metrics.md), passing under 5 %: three measurements 1 s apart after 8 s.
fn error_ratio_metric(prometheus: &str) -> Metric {
    Metric {
        name: "error-ratio".into(),
        initial_delay: Some("8s".into()),
        interval: Some("1s".into()),
        count: Some(3),
        consecutive_error_limit: Some(30),
        success_condition: Some("result[0] < 0.05".into()),
        provider: MetricProvider {
            prometheus: Some(PrometheusMetric {
                address: prometheus.into(),
                query: "max(rate(http_errors_total{app=\"web\"}[10s]) / rate(http_requests_total{app=\"web\"}[10s]))".into(),
                ..PrometheusMetric::default()
            }),
            web: None,
        },
        ..Metric::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_abort_updates_slack_naming_the_metric_and_calls_back_once_with_the_failure() {
    let mut w = world().await;
    w.start();
    let v1 = Rollout::named("web").replicas(4).image("app:v1");
    w.env.apply(&v1.clone().identity("a1")).await;
    let old = status::update_revision(
        &w.env
            .wait_rollout("web", "app:v1 done", done_as("a1"))
            .await,
    );
    let prom = Prometheus::start(w.env.cluster.base_url(), DEADLINE)
        .await
        .unwrap();
    // A bad image (20 % of requests fail), Slack at level info, a release callback.
    let mut bad = with_callback(
        with_slack(
            v1.clone()
                .image("app:v2-errors20")
                .identity("a2")
                .steps(vec![
                    RolloutStep {
                        percent: Some(25),
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
                ])
                .analysis(RolloutAnalysis {
                    metrics: vec![error_ratio_metric(&prom.url)],
                    abort_policy: Some(AbortPolicy::Rollback),
                })
                .build(),
        ),
        &w.callback_url(),
        "stage-a2",
    );
    bad.spec.notifications = None;
    w.env.apply_resource(&bad).await;
    let rolled_back = |r: &StatefulsetRollout| {
        let s = r.status.clone().unwrap_or_default();
        s.phase == Some(Phase::Aborted)
            && s.rollout_identity.as_deref() == Some("a2")
            && s.pods.len() == 4
            && s.pods.iter().all(|p| *p.revision == *old && p.ready)
            && s.last_callback_outcome.as_deref() == Some("RolloutAborted")
    };
    w.env
        .wait_rollout(
            "web",
            "the abort, its rollback and its callback",
            rolled_back,
        )
        .await;
    let ts = w
        .wait_slack_shows(
            "web",
            "a2",
            "rolled back: every pod runs the previous revision",
        )
        .await;
    let before_restart: Vec<Value> = w.slack.state().messages[&ts[0]]
        .iter()
        .map(|(_, m)| m.clone())
        .collect();
    // An operator restart after the abort: nothing is announced again.
    w.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = w.env.rollout("web").await;
    assert!(rolled_back(&after), "{:?}", after.status);

    {
        let r = w.receiver.state();
        let applied = r.applied_calls();
        assert_eq!(applied.len(), 1, "one callback: {:?}", r.calls);
        let body = &applied[0].body;
        assert_eq!(body["outcome"], "RolloutAborted", "{body}");
        assert_eq!(body["stageId"], "stage-a2");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("metric error-ratio failed") && reason.contains("failureLimit 0"),
            "{reason}"
        );
        let values = body["analysis"]["metrics"][0]["values"].as_array().unwrap();
        assert!(!values.is_empty(), "{body}");
        assert!(
            r.calls.iter().all(|c| c.key == applied[0].key),
            "every delivery is the same callback: {:?}",
            r.calls
        );
    }
    {
        let s = w.slack.state();
        assert_eq!(s.posts, ts, "one message for the release, updated in place");
        let history = &s.messages[&ts[0]];
        let naming: Vec<String> = history
            .iter()
            .map(|(_, m)| m.to_string())
            .filter(|t| t.contains("`error-ratio` Failed"))
            .collect();
        eprintln!(
            "Slack: {} bodies accepted for the message, {} naming the failed metric",
            history.len(),
            naming.len()
        );
        assert!(!naming.is_empty());
        let first = &naming[0];
        assert!(
            first.contains("rollout aborted")
                && first.contains("RolloutAborted")
                && first.contains("failureLimit 0")
                && first.contains("*Pods:* rolling back to the previous revision"),
            "{first}"
        );
        // One update per transition: the abort (rolling back) and its rollback done; after the
        // restart nothing (the restarted operator plans from the written status: no transition).
        assert_eq!(
            naming.len(),
            2,
            "the abort and its rollback done, once each: {naming:#?}"
        );
        assert_eq!(
            history.len(),
            before_restart.len(),
            "a restart updated the message: {:?}",
            &history[before_restart.len()..]
        );
        let last = naming.last().unwrap();
        assert!(
            last.contains("rolled back: every pod runs the previous revision"),
            "{last}"
        );
        assert!(naming.iter().all(|t| t.contains("rollout aborted")));
    }
    w.env.finish(false).await;
}

// ---- one announcement per transition (issue 16) ---------------------------------------------

/// Every `(rolloutIdentity, phase)` the rollout's status took, in order, consecutive repeats
/// dropped: a watch, so no status write is missed between two polls.
type Phases = Arc<Mutex<Vec<(String, Phase)>>>;

fn watch_phases(env: &Env, name: &str) -> (Phases, JoinHandle<()>) {
    let seen: Phases = Arc::default();
    let (api, out) = (env.rollouts(), seen.clone());
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(watcher(api, config).applied_objects());
        while let Some(next) = stream.next().await {
            let Ok(r) = next else { continue };
            let Some(s) = r.status else { continue };
            let (Some(id), Some(phase)) = (s.rollout_identity, s.phase) else {
                continue;
            };
            let mut seen = out.lock().unwrap();
            if seen.last() != Some(&(id.clone(), phase.clone())) {
                seen.push((id, phase));
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_120_pod_rollout_at_a_20_percent_budget_starts_completes_and_announces_each_batch_once() {
    let mut w = world().await;
    let hooks = Receiver::new("/hooks");
    let hooks_server = hooks.serve().await.unwrap();
    w.settings
        .integrations
        .callback_allow
        .push(format!("127.0.0.1:{}", hooks_server.addr.port()));
    w.env
        .pdb("web", "web", IntOrString::String("20%".into()))
        .await;
    w.start();
    let fixture = Rollout::named("web").replicas(120).progress_deadline(3600);
    w.env
        .apply(&fixture.clone().image("app:v1").identity("p1"))
        .await;
    wait_reporting(&w.env, "web", Duration::from_secs(300), done_as("p1")).await;

    let (phases, watching) = watch_phases(&w.env, "web");
    // Slack at level info and a webhook receiving every trigger.
    let mut v2 = fixture.clone().image("app:v2").identity("p2").build();
    v2.spec.channel = Some(sroll_testkit::fakes::slack::CHANNEL.into());
    v2.spec.notifications = Some(Notifications {
        level: None,
        webhooks: vec![Webhook {
            url: hooks_server.url("/hooks"),
            ..Webhook::default()
        }],
    });
    w.env.apply_resource(&v2).await;
    wait_reporting(&w.env, "web", Duration::from_secs(300), done_as("p2")).await;
    let triggers = |h: &Receiver| -> Vec<String> {
        h.state()
            .calls
            .iter()
            .map(|c| c.body["trigger"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    wait_for("the completion webhook", DEADLINE, || async {
        triggers(&hooks)
            .iter()
            .any(|t| t == "on-rollout-completed")
            .then_some(())
    })
    .await;
    let ts = w.wait_slack_shows("web", "p2", "RolloutDone").await;
    // Anything late would have arrived by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    watching.abort();

    let p2: Vec<Phase> = phases
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| id == "p2")
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(
        p2,
        [Phase::Pending, Phase::InProgress, Phase::Done],
        "no step back while waiting for the StatefulSet controller"
    );
    let t = triggers(&hooks);
    let count = |name: &str| t.iter().filter(|x| *x == name).count();
    assert_eq!(count("on-rollout-started"), 1, "{t:?}");
    assert_eq!(count("on-rollout-completed"), 1, "{t:?}");
    assert_eq!(
        count("on-rollout-step-completed"),
        5,
        "one per batch of 24 pods: {t:?}"
    );
    assert_eq!(t.len(), 7, "nothing else: {t:?}");
    let (posts, bodies): (Vec<String>, Vec<String>) = {
        let s = w.slack.state();
        (
            s.posts.clone(),
            s.messages[&ts[0]]
                .iter()
                .map(|(_, m)| m.to_string())
                .collect(),
        )
    };
    assert_eq!(posts, ts, "one message");
    assert_eq!(
        bodies.len(),
        2,
        "level info: the start and the end only: {bodies:#?}"
    );
    assert!(bodies[0].contains("RolloutInProgress"), "{}", bodies[0]);
    assert!(bodies[1].contains("RolloutDone"), "{}", bodies[1]);
    w.env.finish(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_critical_in_consul_holds_the_next_eviction_although_the_pdb_allows_two() {
    let mut w = world().await;
    // Consul passes every pod of `memcached` but memcached-5 at the update revision while
    // `critical` is set.
    let critical = Arc::new(AtomicBool::new(false));
    let (client, ns, flag) = (w.env.client.clone(), w.env.ns.clone(), critical.clone());
    let consul = Consul::new().computed(
        "memcached",
        Arc::new(move || {
            let (client, ns, flag) = (client.clone(), ns.clone(), flag.clone());
            async move {
                let update = Api::<StatefulSet>::namespaced(client.clone(), &ns)
                    .get_opt("memcached")
                    .await
                    .ok()
                    .flatten()
                    .and_then(|s| s.status.and_then(|s| s.update_revision));
                let held = flag.load(Ordering::SeqCst);
                pod_instances(Api::namespaced(client, &ns), |p| {
                    let rev = p.labels().get("controller-revision-hash").cloned();
                    !(held && p.name_any() == "memcached-5" && rev.is_some() && rev == update)
                })
                .await
            }
            .boxed()
        }),
    );
    let consul_server = consul.serve().await.unwrap();
    w.settings.integrations.consul_addr = Some(consul_server.url(""));
    w.env
        .pdb("memcached", "memcached", IntOrString::Int(2))
        .await;
    w.start();
    let gated = |image: &str, id: &str| {
        let mut r = Rollout::named("memcached")
            .replicas(6)
            .image(image)
            .identity(id)
            .build();
        r.spec.service_discovery = Some(ServiceDiscovery {
            services: vec!["memcached".into()],
            ..ServiceDiscovery::default()
        });
        r
    };
    w.env.apply_resource(&gated("memcached:1", "h1")).await;
    w.env
        .wait_rollout("memcached", "h1 rolled out", done_as("h1"))
        .await;

    critical.store(true, Ordering::SeqCst);
    w.env.apply_resource(&gated("memcached:2", "h2")).await;
    let held = w
        .env
        .wait_rollout(
            "memcached",
            "memcached-5 Ready but critical in Consul, holding",
            |r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.rollout_identity.as_deref() == Some("h2"))
                    && unhealthy_named(r, "memcached-5")
                    && r.status.as_ref().is_some_and(|s| {
                        s.pods.iter().any(|p| {
                            &*p.name == "memcached-5"
                                && p.ready
                                && *p.revision == *s.update_revision.clone().unwrap_or_default()
                        })
                    })
            },
        )
        .await;
    let update = held.status.unwrap().update_revision.unwrap();
    // The first batch (memcached-5 and -4, the PDB's two) is all that moves while it is held.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let moved: Vec<String> = w
        .env
        .revisions("memcached")
        .await
        .iter()
        .filter(|(_, r)| *r == update)
        .map(|(o, _)| format!("memcached-{o}"))
        .collect();
    assert!(
        moved.len() <= 2,
        "held until memcached-5 is healthy, yet moved {moved:?}"
    );
    let still = w.env.rollout("memcached").await;
    assert!(unhealthy_named(&still, "memcached-5"), "{:?}", still.status);
    assert_eq!(still.status.unwrap().phase, Some(Phase::InProgress));

    // Healthy: the rollout goes on and finishes.
    critical.store(false, Ordering::SeqCst);
    w.env
        .wait_rollout("memcached", "h2 rolled out", done_as("h2"))
        .await;
    w.env.finish(false).await;
}
