//! Chaos scenarios (issue 10): the real operator on kubesim while things go wrong — API faults, pod churn under a paused partial rollout, a failed node,
//! a leader killed mid-rollout, hostile input. Every run is watched by the invariant checker
//! (`sroll_testkit::checker`: budget, version leaks, status regressions, duplicated callbacks and Slack
//! messages, operator exits and panics).
//!
//! Each scenario has a short version that runs in CI and a long version behind
//! `#[ignore]`: `cargo nextest run -p sroll-operator --test chaos --run-ignored only`.
//! The figures the long versions printed are in RELIABILITY.md.
//!
//! "Killing" the operator here aborts its in-process task: every future, connection, watch and
//! timer it owns is dropped at whatever await point it had reached, as a SIGKILL would, but the
//! process (and so the test) survives.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{core::v1::Pod, policy::v1::PodDisruptionBudget},
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use kube::{Api, Client, ResourceExt, api::PostParams};
use serde_json::{Value, json};
use sroll_api::predicates::is_pod_ready;
use sroll_api::{Phase, ServiceDiscovery, StatefulsetRollout, condition_types as ct};
use sroll_operator::Settings;
use sroll_testkit::{
    DEADLINE, Env, Rollout, RunningOperator,
    env::wait_rollout,
    receivers,
    status::{self, current, done_at_generation, update_revision},
    wait_for,
};

/// Deadline of the long versions' waits.
const LONG: Duration = Duration::from_secs(900);

// ---- shared pieces --------------------------------------------------------------------------

/// One eviction the API server accepted.
#[derive(Clone, Debug)]
struct Accepted {
    pod: String,
    uid: String,
    by: String,
}

type EvictionLog = Arc<Mutex<Vec<Accepted>>>;

/// A client for an operator replica that calls kubesim's router in-process and records every
/// eviction the API server accepts (pod name, the uid the pod had just before, which replica).
fn counting_client(cluster: &kubesim::cluster::Handle, log: EvictionLog, who: &str) -> Client {
    let router = cluster.service();
    let lookup = cluster.in_process_client();
    let who = who.to_owned();
    let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let (router, lookup, log, who) = (router.clone(), lookup.clone(), log.clone(), who.clone());
        async move {
            let path = req.uri().path().to_owned();
            let eviction = (req.method() == http::Method::POST)
                .then(|| {
                    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
                    match parts.as_slice() {
                        ["api", "v1", "namespaces", ns, "pods", pod, "eviction"] => {
                            Some(((*ns).to_owned(), (*pod).to_owned()))
                        }
                        _ => None,
                    }
                })
                .flatten();
            let uid = match &eviction {
                Some((ns, pod)) => Api::<Pod>::namespaced(lookup, ns)
                    .get_opt(pod)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|p| p.metadata.uid)
                    .unwrap_or_else(|| "?".into()),
                None => String::new(),
            };
            // The server handles the request in its own task, as a real API server would: a
            // killed client must not abort kubesim half-way through an eviction.
            let response = tokio::spawn(tower::ServiceExt::oneshot(router, req))
                .await
                .expect("kubesim's handler does not panic")?;
            if let Some((_, pod)) = eviction
                && response.status().is_success()
            {
                log.lock().unwrap().push(Accepted { pod, uid, by: who });
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    Client::new(svc, "default")
}

/// Accepted evictions per pod uid that happened more than once.
fn double_evictions(log: &EvictionLog) -> Vec<(String, usize)> {
    let mut per_uid: HashMap<String, usize> = HashMap::new();
    for e in log.lock().unwrap().iter() {
        *per_uid.entry(format!("{}/{}", e.pod, e.uid)).or_default() += 1;
    }
    let mut doubles: Vec<(String, usize)> = per_uid.into_iter().filter(|(_, n)| *n > 1).collect();
    doubles.sort();
    doubles
}

/// Starts an operator replica over a counting client, followed by the checker.
fn start_counted(env: &Env, settings: Settings, log: &EvictionLog) -> RunningOperator {
    let client = counting_client(&env.cluster, log.clone(), &settings.instance);
    let op = RunningOperator::start(client, settings);
    env.checker.watch_operator(&op.exits);
    op
}

/// Applies a resource as a user would, retrying through injected API errors.
async fn apply_raw(env: &Env, r: &StatefulsetRollout) {
    wait_for("the rollout to be accepted", DEADLINE, || async {
        env.try_apply_resource(r).await.ok()
    })
    .await;
}

/// Waits (up to `deadline`) until `name` is Done at its current generation; on timeout the
/// failure shows the last status seen.
async fn wait_done(env: &Env, name: &str, deadline: Duration) -> StatefulsetRollout {
    let what = format!("{name} to be Done");
    wait_rollout(&env.rollouts(), name, &what, deadline, done_at_generation).await
}

fn updated(r: &StatefulsetRollout) -> i32 {
    r.status
        .as_ref()
        .and_then(|s| s.updated_replicas)
        .unwrap_or(0)
}

/// Waits until every one of `n` pods of `set` exists, is not terminating and is Ready; on
/// timeout the failure lists the pods that are not.
async fn all_ready(env: &Env, set: &str, n: usize, deadline: Duration) {
    let started = Instant::now();
    loop {
        let pods = env.pods(set).await;
        let ready = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_pod_ready(p))
            .count();
        if ready == n {
            return;
        }
        if started.elapsed() >= deadline {
            let not_ready: Vec<String> = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some() || !is_pod_ready(p))
                .map(|p| {
                    format!(
                        "{} (terminating: {}, phase {:?}, conditions {:?})",
                        p.name_any(),
                        p.metadata.deletion_timestamp.is_some(),
                        p.status.as_ref().and_then(|s| s.phase.clone()),
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .map(|c| c
                                .iter()
                                .map(|c| format!("{}={}", c.type_, c.status))
                                .collect::<Vec<_>>())
                    )
                })
                .collect();
            panic!(
                "timed out after {deadline:?} waiting for {n} Ready pods of {set}: {ready} Ready of \
                 {} pods; not Ready: {not_ready:#?}",
                pods.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PDB and the matching checker budget.
async fn budget(env: &Env, set: &str, n: i32) {
    env.pdb(set, set, IntOrString::Int(n)).await;
    env.checker.budget(set, usize::try_from(n).unwrap());
}

// ---- 1. the operator killed at random moments ------------------------------------------------
//
// With a real process boundary: `crates/sroll/tests/operator_process.rs` SIGKILLs the `sroll
// operator` binary (only the `sroll` package's tests know its path). The in-process version that
// stood here (aborting the operator's task) is superseded by it.

// ---- 2. API faults ---------------------------------------------------------------------------

/// 5 % of API requests fail (500, 429 with Retry-After, and 409 on writes), 100 ms added to
/// every request, every watch cut after `cut` seconds.
fn api_faults(cut: u64) -> kubesim::faults::FaultConfig {
    use kubesim::faults::{ApiErrorRule, FaultConfig, InjectedError, LatencyRule};
    let rule = |verb: Option<&str>, probability: f64, error: InjectedError| ApiErrorRule {
        verb: verb.map(str::to_owned),
        resource: None,
        probability,
        error,
    };
    // Rules are tried in order, each with its own draw: 2.5 % + 2.5 % of reads, and
    // 5/3 % each of 500, 429 and 409 for writes.
    let mut api_errors = Vec::new();
    for verb in ["get", "list", "watch"] {
        api_errors.push(rule(Some(verb), 0.025, InjectedError::InternalError));
        api_errors.push(rule(
            Some(verb),
            0.025 / 0.975,
            InjectedError::TooManyRequests {
                retry_after_seconds: 1,
            },
        ));
    }
    for verb in ["create", "update", "patch", "delete"] {
        let third = 0.05 / 3.0;
        api_errors.push(rule(Some(verb), third, InjectedError::InternalError));
        api_errors.push(rule(
            Some(verb),
            third / (1.0 - third),
            InjectedError::TooManyRequests {
                retry_after_seconds: 1,
            },
        ));
        api_errors.push(rule(
            Some(verb),
            third / (1.0 - 2.0 * third),
            InjectedError::Conflict,
        ));
    }
    FaultConfig {
        api_errors,
        latency: vec![LatencyRule {
            verb: None,
            resource: None,
            millis: 100,
        }],
        watch_cut_seconds: Some(cut),
        ..FaultConfig::default()
    }
}

/// `apiserver_request_total` of the operator's user agent, by code (from kubesim's /metrics).
async fn operator_requests(env: &Env) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(env.cluster.service(), req)
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let mut by_code = BTreeMap::new();
    for line in text.lines() {
        if !line.starts_with("apiserver_request_total{") || !line.contains("sroll-operator") {
            continue;
        }
        let code = line
            .split("code=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("?")
            .to_owned();
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by_code.entry(code).or_insert(0.0) += n;
    }
    by_code
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

async fn rollout_under_api_faults(
    replicas: i32,
    budget_n: i32,
    mut faults: kubesim::faults::FaultConfig,
    deadline: Duration,
) {
    // The faults hit the operator only: the test's own requests and the checker's watches see
    // the cluster as it is, so what they report is what happened, not what a faulted watch saw.
    faults.user_agents = vec!["sroll-operator".to_owned()];
    let cut = faults.watch_cut_seconds.unwrap_or(0);
    if std::env::var_os("CHAOS_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("CHAOS_LOG"))
            .with_test_writer()
            .try_init();
    }
    // The operator runs with its production client (`operator_client`: kube's retry layer off,
    // its own User-Agent) over HTTP, so it meets every injected 429/500 itself and its requests
    // are counted apart from the test's and the checker's.
    let mut env = Env::without_operator().await;
    let mut config = kube::Config::new(env.cluster.base_url().parse().unwrap());
    config.default_namespace = env.ns.clone();
    let client = sroll_operator::operator_client(config).unwrap();
    let op = RunningOperator::start(client, env.settings());
    env.checker.watch_operator(&op.exits);
    env.operator = Some(op);
    let name = "api";
    budget(&env, name, budget_n).await;
    let base = Rollout::named(name).replicas(replicas);
    apply_raw(&env, &base.build()).await;
    wait_done(&env, name, deadline).await;

    // A clean rollout, timed.
    let before = operator_requests(&env).await;
    let started = Instant::now();
    apply_raw(&env, &base.clone().image("registry.example/app:v2").build()).await;
    wait_done(&env, name, deadline).await;
    let clean = started.elapsed();
    let clean_requests = delta(&operator_requests(&env).await, &before);

    // The same rollout under faults.
    let before = operator_requests(&env).await;
    env.cluster.faults().set(faults);
    let started = Instant::now();
    apply_raw(&env, &base.clone().image("registry.example/app:v3").build()).await;
    let done = wait_done(&env, name, deadline).await;
    let faulted = started.elapsed();
    env.cluster.faults().clear();
    let faulted_requests = delta(&operator_requests(&env).await, &before);

    assert_eq!(updated(&done), replicas);
    let rev3 = update_revision(&done);
    assert!(env.revisions(name).await.iter().all(|(_, r)| *r == rev3));
    let total: f64 = faulted_requests.values().sum();
    let failed: f64 = ["500", "429", "409"]
        .iter()
        .filter_map(|c| faulted_requests.get(*c))
        .sum();
    let report = env.finish(true).await;
    eprintln!(
        "chaos api faults: {replicas} pods; clean rollout {clean:.1?} ({clean_requests:?}); \
         under faults {faulted:.1?} ({faulted_requests:?}: {failed} of {total} operator requests \
         failed, {:.1} %); slowdown {:.2}x; watches cut every {cut} s; max unavailable {:?}; \
         problems: {}",
        100.0 * failed / total.max(1.0),
        faulted.as_secs_f64() / clean.as_secs_f64(),
        report.max_unavailable.get(name),
        report.problems().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_5_percent_api_errors_latency_and_cut_watches_a_rollout_completes_within_budget() {
    rollout_under_api_faults(12, 2, api_faults(5), Duration::from_secs(80)).await;
}

/// The watchers' recovery paths, hammered: a third of every list and watch request fails (500 and
/// 429), every watch is cut after a second. Each cut is a resume at the last resourceVersion seen;
/// each failed resume or re-list goes through the watch's own back-off. The caches must still
/// catch up with every pod turning Ready, or the rollout waits (it did, up to 100 s, while the
/// Controller's trigger back-off paused every cache on each watch error; RELIABILITY.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_third_of_lists_and_watches_failing_and_watches_cut_every_second_a_rollout_completes()
 {
    use kubesim::faults::{ApiErrorRule, FaultConfig, InjectedError};
    let mut api_errors = Vec::new();
    for verb in ["list", "watch"] {
        api_errors.push(ApiErrorRule {
            verb: Some(verb.to_owned()),
            resource: None,
            probability: 0.2,
            error: InjectedError::InternalError,
        });
        api_errors.push(ApiErrorRule {
            verb: Some(verb.to_owned()),
            resource: None,
            probability: 0.15,
            error: InjectedError::TooManyRequests {
                retry_after_seconds: 1,
            },
        });
    }
    let faults = FaultConfig {
        api_errors,
        watch_cut_seconds: Some(1),
        ..FaultConfig::default()
    };
    rollout_under_api_faults(12, 2, faults, Duration::from_secs(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll-operator --test chaos --run-ignored only"]
async fn under_5_percent_api_errors_latency_and_cut_watches_a_100_pod_rollout_completes() {
    rollout_under_api_faults(100, 10, api_faults(5), LONG).await;
}

// ---- 3. version leak under pod churn ---------------------------------------------------------

/// `pinning`: `spec.revisionPinning` with the operator's webhook served over HTTPS.
async fn paused_quarter_rollout_under_pod_kills(
    on_delete: bool,
    pinning: bool,
    replicas: i32,
    kills: usize,
) {
    let env = if pinning {
        Env::start_with_webhook().await
    } else {
        Env::start().await
    };
    let name = "leak";
    budget(&env, name, 2).await;
    let mut base = Rollout::named(name).replicas(replicas);
    if on_delete {
        base = base.on_delete();
    }
    if pinning {
        base = base.revision_pinning();
    }
    apply_raw(&env, &base.build()).await;
    let v1 = update_revision(&wait_done(&env, name, DEADLINE).await);
    let quarter = base.image("registry.example/app:v2").percent(25);
    apply_raw(&env, &quarter.build()).await;
    let v2 = update_revision(&wait_done(&env, name, DEADLINE).await);
    apply_raw(&env, &quarter.paused(true).build()).await;
    env.wait_rollout(name, "the pause recorded", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.observed_generation == r.metadata.generation && s.paused == Some(true)
        })
    })
    .await;
    let before = env.revisions(name).await;
    let new_before = before.iter().filter(|(_, r)| *r == v2).count();
    let op_evictions = env.operator.as_ref().unwrap().evicted();
    let moves_before = env.checker.moves_so_far().len();

    let mut rng = fastrand::Rng::with_seed(3);
    let (mut done, mut old_killed, mut new_killed) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    while done < kills {
        let pods = env.pods(name).await;
        let live: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if live.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let victim = live[rng.usize(..live.len())];
        let pod = victim.name_any();
        env.checker.external([pod.as_str()]);
        env.kill_pod(&pod).await;
        if victim.labels().get("controller-revision-hash") == Some(&v2) {
            new_killed += 1;
        } else {
            old_killed += 1;
        }
        done += 1;
        tokio::time::sleep(Duration::from_millis(rng.u64(5..40))).await;
    }
    let churn = started.elapsed();
    all_ready(&env, name, usize::try_from(replicas).unwrap(), LONG).await;
    let after = env.revisions(name).await;
    let new_after = after.iter().filter(|(_, r)| *r == v2).count();
    assert_eq!(
        env.operator.as_ref().unwrap().evicted(),
        op_evictions,
        "a paused rollout evicts nothing"
    );
    let report = env.finish(!on_delete || pinning).await;
    // Only the moves of the kill phase (the rollout's own evictions came before).
    let moves = &report.moves[moves_before..];
    let to_new = moves.iter().filter(|m| m.to == v2).count();
    let to_old = moves.iter().filter(|m| m.to == v1).count();
    eprintln!(
        "chaos leak ({}{}): {replicas} pods, {done} kills ({old_killed} old, {new_killed} new) in \
         {churn:.1?}; pods at the new revision {new_before} -> {new_after}; revision changes \
         {} ({to_new} to new, {to_old} to old); problems: {}",
        if on_delete { "OnDelete" } else { "Partitioned" },
        if pinning { ", pinned" } else { "" },
        moves.len(),
        report.problems().len()
    );
    if on_delete && !pinning {
        // The documented leak of the reference system's mode: killed old pods come back new.
        assert!(new_after >= new_before);
        assert!(moves.iter().all(|m| m.to == v2), "{moves:?}");
    } else {
        assert!(moves.is_empty(), "no pod changed revision: {moves:?}");
        assert_eq!(after, before, "every pod came back at its revision");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_quarter_rollout_under_60_pod_kills_changes_no_pod_revision_when_partitioned() {
    paused_quarter_rollout_under_pod_kills(false, false, 12, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_quarter_rollout_under_60_pod_kills_with_on_delete_drifts_and_the_drift_is_measured()
 {
    paused_quarter_rollout_under_pod_kills(true, false, 12, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_quarter_rollout_under_60_pod_kills_with_on_delete_and_pinning_changes_no_pod_revision()
 {
    paused_quarter_rollout_under_pod_kills(true, true, 12, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll-operator --test chaos --run-ignored only"]
async fn a_paused_quarter_rollout_under_600_pod_kills_changes_no_pod_revision_when_partitioned() {
    paused_quarter_rollout_under_pod_kills(false, false, 40, 600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll-operator --test chaos --run-ignored only"]
async fn a_paused_quarter_rollout_under_600_pod_kills_with_on_delete_drifts() {
    paused_quarter_rollout_under_pod_kills(true, false, 40, 600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll-operator --test chaos --run-ignored only"]
async fn a_paused_quarter_rollout_under_600_pod_kills_with_on_delete_and_pinning_changes_no_pod_revision()
 {
    paused_quarter_rollout_under_pod_kills(true, true, 40, 600).await;
}

// ---- 4. a node fails mid-rollout -------------------------------------------------------------

async fn node_fails_mid_rollout(nodes: usize, replicas: i32, budget_n: i32, hold: Duration) {
    let mut env = Env::without_operator_on(kubesim::cluster::ClusterConfig {
        nodes,
        ..sroll_testkit::env::cluster_config()
    })
    .await;
    let log: EvictionLog = Arc::default();
    let name = "node";
    budget(&env, name, budget_n).await;
    let settings = env.settings();
    env.operator = Some(start_counted(&env, settings, &log));
    let base = Rollout::named(name).replicas(replicas);
    apply_raw(&env, &base.build()).await;
    wait_done(&env, name, LONG).await;
    apply_raw(&env, &base.image("registry.example/app:v2").build()).await;
    env.wait_rollout(name, "a fifth of the pods updated", |r| {
        current(r) && updated(r) >= replicas / 5
    })
    .await;

    // The node with the most Ready pods of the set.
    let pods = env.pods(name).await;
    let mut per_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pods.iter().filter(|p| is_pod_ready(p)) {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
            per_node.entry(node).or_default().push(p.name_any());
        }
    }
    let (node, on_node) = per_node.into_iter().max_by_key(|(_, v)| v.len()).unwrap();
    env.checker
        .external(on_node.iter().map(String::as_str).collect::<Vec<_>>());
    env.cluster.faults().update(|c| {
        c.failed_nodes.insert(node.clone());
        c.node_eviction_seconds = 3600;
    });
    let failed_at = Instant::now();
    // The kubelet stops reporting: the node's pods turn NotReady.
    wait_for("the failed node's pods NotReady", DEADLINE, || async {
        let pods = env.pods(name).await;
        pods.iter()
            .filter(|p| on_node.contains(&p.name_any()))
            .all(|p| !is_pod_ready(p))
            .then_some(())
    })
    .await;
    let not_ready_after = failed_at.elapsed();
    // Give the disruption controller and an eviction already in flight a moment to settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted_before = log.lock().unwrap().len();
    let pdb = Api::<PodDisruptionBudget>::namespaced(env.client.clone(), &env.ns)
        .get(name)
        .await
        .unwrap();
    let allowed = pdb.status.map(|s| s.disruptions_allowed);
    tokio::time::sleep(hold).await;
    let accepted_during = log.lock().unwrap().len() - accepted_before;
    let held = env.rollout(name).await;
    assert_ne!(
        held.status.as_ref().and_then(|s| s.phase.clone()),
        Some(Phase::Done),
        "the rollout cannot finish while the node is down"
    );
    if on_node.len() >= usize::try_from(budget_n).unwrap() {
        assert_eq!(allowed, Some(0), "the budget counts the node's pods");
        assert_eq!(
            accepted_during, 0,
            "nothing evicted while the failed node's pods use up the budget"
        );
    }

    env.cluster.faults().update(|c| {
        c.failed_nodes.remove(&node);
    });
    let done = wait_done(&env, name, LONG).await;
    assert_eq!(updated(&done), replicas);
    let doubles = double_evictions(&log);
    assert!(doubles.is_empty(), "{doubles:?}");
    let report = env.finish(true).await;
    eprintln!(
        "chaos node: {nodes} nodes, {replicas} pods, budget {budget_n}; {node} failed holding {} \
         pods (NotReady after {not_ready_after:.1?}); PDB disruptionsAllowed {allowed:?}; \
         evictions accepted in the {hold:?} hold: {accepted_during}; operator-attributable max \
         unavailable {:?}; problems: {}",
        on_node.len(),
        report.max_unavailable.get(name),
        report.problems().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_node_uses_up_the_budget_nothing_more_is_evicted_and_the_rollout_completes_after()
{
    node_fails_mid_rollout(10, 30, 3, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll-operator --test chaos --run-ignored only"]
async fn a_failed_node_holding_10_percent_of_200_pods_evicts_nothing_extra() {
    node_fails_mid_rollout(10, 200, 20, Duration::from_secs(10)).await;
}

// ---- 5. leader killed mid-rollout ------------------------------------------------------------

async fn leader_killed_mid_rollout(replicas: i32, lease: Duration) {
    let env = Env::without_operator().await;
    let log: EvictionLog = Arc::default();
    let name = "lead";
    budget(&env, name, 2).await;
    let retry = lease / 10;
    let settings = |identity: &str| env.leader_settings(identity, lease, lease * 3 / 4, retry);
    let holder = || env.lease_holder();
    let a = start_counted(&env, settings("a"), &log);
    wait_for("a to lead", DEADLINE, || async {
        (holder().await.as_deref() == Some("a")).then_some(())
    })
    .await;
    let b = start_counted(&env, settings("b"), &log);
    let base = Rollout::named(name).replicas(replicas);
    apply_raw(&env, &base.build()).await;
    wait_done(&env, name, DEADLINE).await;
    apply_raw(&env, &base.image("registry.example/app:v2").build()).await;
    // At the new generation: until the operator has observed it, the status still shows the
    // previous rollout's pods all updated, and a killed before evicting anything proves nothing.
    env.wait_rollout(name, "a third of the pods updated", |r| {
        current(r) && updated(r) >= replicas / 3
    })
    .await;
    assert_eq!(b.metrics.reconciles.get(), 0, "the standby did nothing");
    let killed_at = Instant::now();
    a.kill().await;
    wait_for("b to take over", DEADLINE, || async {
        (holder().await.as_deref() == Some("b")).then_some(())
    })
    .await;
    let takeover = killed_at.elapsed();
    let done = wait_done(&env, name, DEADLINE).await;
    assert_eq!(updated(&done), replicas);
    assert!(b.metrics.reconciles.get() > 0);
    b.stop().await.expect("b stops cleanly");
    let doubles = double_evictions(&log);
    assert!(doubles.is_empty(), "pods evicted twice: {doubles:?}");
    let by: BTreeMap<String, usize> =
        log.lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e.by.clone()).or_default() += 1;
                m
            });
    assert!(
        by.get("a").is_some_and(|n| *n > 0) && by.get("b").is_some_and(|n| *n > 0),
        "both replicas evicted, one before the kill and one after: {by:?}"
    );
    let report = env.checker.report(true);
    report.assert_clean();
    // Upstream client-go: a candidate takes over once the lease has not been renewed for
    // leaseDuration, checking every retryPeriod. The bound allows for a loaded machine.
    assert!(
        takeover < lease * 3,
        "b took over {takeover:?} after the kill (lease {lease:?})"
    );
    eprintln!(
        "chaos leader: {replicas} pods, lease {lease:?} (retry {retry:?}); takeover {takeover:.2?} \
         after the kill; accepted evictions by replica {by:?}, none twice; problems: {}",
        report.problems().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_rollout_is_replaced_within_the_lease_and_no_pod_is_evicted_twice() {
    leader_killed_mid_rollout(12, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll-operator --test chaos --run-ignored only"]
async fn the_leader_of_a_100_pod_rollout_killed_mid_rollout_is_replaced_within_the_lease() {
    leader_killed_mid_rollout(100, Duration::from_secs(4)).await;
}

// ---- 7. Slack, Consul and the callback receiver hanging --------------------------------------

/// `rollout` gated on the fake Consul's service.
fn gated(rollout: &Rollout) -> StatefulsetRollout {
    let mut r = rollout.build();
    r.spec.service_discovery = Some(ServiceDiscovery {
        services: vec![receivers::CONSUL_SERVICE.into()],
        ..ServiceDiscovery::default()
    });
    r
}

/// `(status, reason)` of the rollout's condition `type_`.
fn condition(r: &StatefulsetRollout, type_: &str) -> Option<(String, String)> {
    status::condition(r, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// Two rollouts side by side: `notified` (Slack channel, release callback) and `gated` (Consul
/// service discovery). Created while every receiver answers; then Slack, the callback receiver
/// and Consul all hang — each request read and never answered — and both are updated.
/// As specified: `notified` completes (notifications and callbacks never hold a rollout) with its
/// callback not recorded; `gated` evicts no more than its last Consul answer allowed, then holds
/// with `Degraded=DiscoveryUnreachable`; a spec change of the held rollout is still observed
/// (nothing blocks the reconcile loop). Released: `gated` completes, the callback is applied once
/// per stage, the Slack message of the new rollout is posted once.
async fn integrations_hanging(
    replicas: i32,
    budget_n: i32,
    discovery_interval: Option<Duration>,
    deadline: Duration,
) {
    let mut env = Env::without_operator().await;
    let fakes = receivers::Fakes::start(&env).await;
    let mut settings = fakes.settings(&env);
    settings.integrations.discovery_interval = discovery_interval;
    env.start_operator_with(settings);
    budget(&env, "notified", budget_n).await;
    budget(&env, "gated", budget_n).await;
    let url = fakes.callback_url();
    let notified_at = |image: &str, id: &str, stage: &str| {
        receivers::notified(
            &Rollout::named("notified")
                .replicas(replicas)
                .image(image)
                .identity(id),
            &url,
            stage,
        )
    };
    let gated_at = |image: &str, id: &str| {
        Rollout::named("gated")
            .replicas(replicas)
            .image(image)
            .identity(id)
    };

    // Everything answers.
    env.apply_resource(&notified_at("registry.example/app:v1", "n1", "stage-1"))
        .await;
    env.apply_resource(&gated(&gated_at("registry.example/app:v1", "g1")))
        .await;
    wait_done(&env, "notified", deadline).await;
    let g1 = wait_done(&env, "gated", deadline).await;
    assert_eq!(
        g1.status.unwrap().ready_replicas_service_discovery,
        Some(replicas)
    );
    env.wait_rollout_within("notified", "the first callback recorded", deadline, |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.last_callback_stage_id.as_deref() == Some("stage-1"))
    })
    .await;
    let v1 = env.revisions("gated").await;

    eprintln!("chaos hanging integrations: both rollouts created and Done; hanging");
    // Everything hangs.
    fakes.hang(true);
    let hung = Instant::now();
    env.apply_resource(&notified_at("registry.example/app:v2", "n2", "stage-2"))
        .await;
    env.apply_resource(&gated(&gated_at("registry.example/app:v2", "g2")))
        .await;
    let n2 = wait_done(&env, "notified", deadline).await;
    let notified_done = hung.elapsed();
    assert_eq!(updated(&n2), replicas);
    let s = n2.status.as_ref().unwrap();
    assert_eq!(
        s.last_callback_stage_id.as_deref(),
        Some("stage-1"),
        "no callback for stage-2 can have been delivered"
    );
    assert_ne!(
        condition(&n2, ct::CALLBACK_DELIVERED).map(|c| c.0),
        Some("True".to_owned()),
        "the callback is not reported delivered"
    );
    let held = env
        .wait_rollout_within(
            "gated",
            "Degraded=DiscoveryUnreachable on the new generation",
            deadline,
            |r| {
                current(r)
                    && condition(r, ct::DEGRADED)
                        == Some(("True".into(), "DiscoveryUnreachable".into()))
            },
        )
        .await;
    let unreachable_after = hung.elapsed();
    let moved_before_hold = updated(&held);
    // The last answer before the hang said every old pod passed: one batch may go on its word,
    // no more, since no replacement pod was ever reported passing.
    assert!(
        moved_before_hold <= budget_n,
        "{moved_before_hold} pods moved on a Consul that never answered about them (budget {budget_n})"
    );
    // Nothing blocks: the held rollout's spec changes are still observed.
    let paused = gated(&gated_at("registry.example/app:v2", "g2").paused(true));
    env.apply_resource(&paused).await;
    env.wait_rollout_within("gated", "the pause observed while hanging", deadline, |r| {
        current(r) && r.status.as_ref().is_some_and(|s| s.paused == Some(true))
    })
    .await;
    env.apply_resource(&gated(&gated_at("registry.example/app:v2", "g2")))
        .await;
    env.wait_rollout_within(
        "gated",
        "the resume observed while hanging",
        deadline,
        |r| current(r) && r.status.as_ref().is_some_and(|s| s.paused != Some(true)),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = env.rollout("gated").await;
    assert_eq!(
        updated(&still),
        moved_before_hold,
        "nothing more is evicted while Consul hangs"
    );
    let moved: Vec<_> = env
        .revisions("gated")
        .await
        .into_iter()
        .filter(|p| !v1.contains(p))
        .collect();
    assert!(
        moved.len() <= budget_n as usize,
        "moved while hanging: {moved:?}"
    );
    let unanswered = fakes.unanswered();
    assert!(unanswered > 0, "the operator called the hanging receivers");
    let hang = hung.elapsed();

    eprintln!("chaos hanging integrations: held as specified after {hang:.1?}; releasing");
    // Released.
    fakes.hang(false);
    let released = Instant::now();
    let g2 = wait_done(&env, "gated", deadline).await;
    let gated_done = released.elapsed();
    assert_eq!(updated(&g2), replicas);
    env.wait_rollout_within("notified", "the stage-2 callback recorded", deadline, |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.last_callback_stage_id.as_deref() == Some("stage-2"))
    })
    .await;
    let callback_after = released.elapsed();
    eprintln!("chaos hanging integrations: gated Done, callback recorded; waiting for Slack");
    wait_for("the new rollout's Slack message", deadline, || async {
        (fakes.received().slack_posts.len() >= 2).then_some(())
    })
    .await;
    let (callbacks, redeliveries, posts, pages, updates) = {
        let seen = fakes.received();
        (
            seen.callbacks.clone(),
            seen.redeliveries,
            seen.slack_posts.len(),
            seen.slack_more_pages,
            seen.slack_updates,
        )
    };
    assert_eq!(posts, 2, "one first message per rollout");
    assert_eq!(
        callbacks,
        vec![
            ("stage-1".to_owned(), "RolloutDone".to_owned()),
            ("stage-2".to_owned(), "RolloutDone".to_owned())
        ]
    );
    let report = env.finish(true).await;
    eprintln!(
        "chaos hanging integrations: {replicas} pods each, budget {budget_n}, Consul polled every \
         {discovery_interval:?} (None: 5 s); hung {hang:.1?}, \
         {unanswered} requests left unanswered; notified rollout Done {notified_done:.1?} into \
         the hang (callback not recorded); gated rollout moved {moved_before_hold} pods on the \
         last answer, DiscoveryUnreachable after {unreachable_after:.1?}, then held; released: \
         gated Done after {gated_done:.1?}, stage-2 callback recorded after {callback_after:.1?}; \
         callbacks applied {} (+{redeliveries} redeliveries), Slack {posts} messages (+{pages} \
         further pages) + {updates} updates; max unavailable {:?}; problems: {}",
        callbacks.len(),
        report.max_unavailable,
        report.problems().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_slack_consul_and_the_callback_hanging_rollouts_complete_or_hold_as_specified() {
    // Consul polled every second (default 5 s) to keep the CI version short.
    integrations_hanging(12, 2, Some(Duration::from_secs(1)), Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll-operator --test chaos --run-ignored only"]
async fn with_slack_consul_and_the_callback_hanging_100_pod_rollouts_complete_or_hold() {
    integrations_hanging(100, 10, None, LONG).await;
}

// ---- 6. hostile input ------------------------------------------------------------------------

mod hostile {
    //! Property-based generation of malformed and adversarial StatefulsetRollout documents.

    use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
    use serde_json::{Map, Value, json};

    /// The rollout names the documents are applied to (re-applied over and over).
    pub const NAMES: [&str; 12] = [
        "h-0", "h-1", "h-2", "h-3", "h-4", "h-5", "h-6", "h-7", "h-8", "h-9", "h-10", "h-11",
    ];

    /// One request: the rollout name in the URL, the body, and how it is sent.
    #[derive(Debug, Clone)]
    pub struct Case {
        pub name: String,
        pub body: Vec<u8>,
        /// `application/apply-patch+yaml` (server-side apply) or `application/merge-patch+json`.
        pub apply: bool,
        /// The body is not a well-formed object (truncated, random bytes, …).
        pub malformed: bool,
    }

    fn path(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    /// Paths into the document that mutations target.
    fn paths() -> Vec<Vec<String>> {
        [
            &["spec", "percent"][..],
            &["spec", "maxUnavailable"],
            &["spec", "strategy"],
            &["spec", "pauseRequested"],
            &["spec", "progressDeadlineSeconds"],
            &["spec", "minPodEvictionIntervalSeconds"],
            &["spec", "rolloutIdentity"],
            &["spec", "channel"],
            &["spec", "bapi"],
            &["spec", "bapi", "url"],
            &["spec", "bapi", "stageId"],
            &["spec", "notifications"],
            &["spec", "notifications", "webhooks"],
            &["spec", "serviceDiscovery"],
            &["spec", "adoptExisting"],
            &["spec", "recreateOnImmutableChange"],
            &["spec", "sts"],
            &["spec", "sts", "apiVersion"],
            &["spec", "sts", "kind"],
            &["spec", "sts", "metadata"],
            &["spec", "sts", "metadata", "name"],
            &["spec", "sts", "metadata", "labels"],
            &["spec", "sts", "spec"],
            &["spec", "sts", "spec", "replicas"],
            &["spec", "sts", "spec", "selector"],
            &["spec", "sts", "spec", "selector", "matchLabels"],
            &["spec", "sts", "spec", "selector", "matchExpressions"],
            &["spec", "sts", "spec", "serviceName"],
            &["spec", "sts", "spec", "podManagementPolicy"],
            &["spec", "sts", "spec", "updateStrategy"],
            &["spec", "sts", "spec", "minReadySeconds"],
            &["spec", "sts", "spec", "ordinals"],
            &["spec", "sts", "spec", "volumeClaimTemplates"],
            &["spec", "sts", "spec", "template"],
            &["spec", "sts", "spec", "template", "metadata", "labels"],
            &["spec", "sts", "spec", "template", "spec"],
            &["spec", "sts", "spec", "template", "spec", "containers"],
            &[
                "spec",
                "sts",
                "spec",
                "template",
                "spec",
                "terminationGracePeriodSeconds",
            ],
            &["metadata", "name"],
            &["metadata", "namespace"],
            &["metadata", "labels"],
            &["metadata", "annotations"],
            &["metadata", "ownerReferences"],
            &["metadata", "finalizers"],
            &["metadata", "generation"],
            &["apiVersion"],
            &["kind"],
            &["status"],
            &["spec"],
            &["extra"],
        ]
        .iter()
        .map(|p| path(p))
        .collect()
    }

    fn strings() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "",
                " ",
                "50%",
                "-1%",
                "1000%",
                "%",
                "0%",
                "100%",
                "1e3",
                "0x10",
                "true",
                "null",
                "Partitioned",
                "OnDelete",
                "RollingUpdate",
                "Parallel",
                "OrderedReady",
                "../../etc/passwd",
                "http://169.254.169.254/latest/meta-data/",
                "http://127.0.0.1:1/cb",
                "file:///etc/shadow",
                "\u{202e}evil\u{202c}",
                "\u{0}",
                "a\u{200b}b",
                "😀🔥",
                "Ω≈ç√",
                "DROP TABLE rollouts;--",
                "${jndi:ldap://x}",
                "{{.Values}}",
                "bystander-0",
                "app=bystander",
                "-",
                "a..b",
                "UPPER",
                "registry.example/app:v2",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,40}",
            (1usize..300_000).prop_map(|n| "x".repeat(n)),
            (1usize..2_000).prop_map(|n| "é🙂".repeat(n)),
        ]
    }

    fn numbers() -> impl Strategy<Value = Value> {
        prop_oneof![
            prop::sample::select(vec![
                json!(0),
                json!(-1),
                json!(1),
                json!(101),
                json!(i32::MAX),
                json!(i64::from(i32::MAX) + 1),
                json!(i32::MIN),
                json!(i64::MAX),
                json!(i64::MIN),
                json!(u64::MAX),
                json!(9_007_199_254_740_993_u64),
                json!(1.5),
                json!(-0.0),
                json!(1e308),
                json!(-1e308),
                json!(5e-324),
            ]),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON numbers are finite", |f| f.is_finite())
                .prop_map(Value::from),
        ]
    }

    /// Nested arrays or objects (as values; deeper nesting is sent as raw text, see
    /// `malformed`, since building and dropping a `Value` thousands of levels deep recurses).
    fn nested() -> impl Strategy<Value = Value> {
        (1usize..120, any::<bool>()).prop_map(|(depth, arrays)| {
            let mut v = json!("bottom");
            for _ in 0..depth {
                v = if arrays {
                    json!([v])
                } else {
                    json!({ "a": v })
                };
            }
            v
        })
    }

    /// Any hostile value.
    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            numbers(),
            strings().prop_map(Value::from),
        ];
        let tree = leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z$./_-]{0,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
            ]
        });
        prop_oneof![8 => tree, 1 => nested()]
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Set(Vec<String>, Value),
        Remove(Vec<String>),
        /// Point the rollout's selector and labels at the bystanders' pods.
        SelectBystanders,
        /// A rollout that asks to adopt an existing set.
        Adopt,
    }

    fn mutations() -> impl Strategy<Value = Mutation> {
        let p = prop::sample::select(paths());
        prop_oneof![
            6 => (p.clone(), values()).prop_map(|(p, v)| Mutation::Set(p, v)),
            2 => p.prop_map(Mutation::Remove),
            1 => Just(Mutation::SelectBystanders),
            1 => Just(Mutation::Adopt),
        ]
    }

    fn set(doc: &mut Value, path: &[String], v: Value) {
        let Some((last, init)) = path.split_last() else {
            *doc = v;
            return;
        };
        let mut cur = doc;
        for k in init {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = cur
                .as_object_mut()
                .map(|o| o.entry(k.clone()).or_insert_with(|| json!({})))
                .expect("an object");
        }
        if !cur.is_object() {
            *cur = json!({});
        }
        if let Some(o) = cur.as_object_mut() {
            o.insert(last.clone(), v);
        }
    }

    fn remove(doc: &mut Value, path: &[String]) {
        let Some((last, init)) = path.split_last() else {
            return;
        };
        let mut cur = doc;
        for k in init {
            match cur.get_mut(k) {
                Some(next) => cur = next,
                None => return,
            }
        }
        if let Some(o) = cur.as_object_mut() {
            o.remove(last);
        }
    }

    fn apply(doc: &mut Value, m: &Mutation) {
        match m {
            Mutation::Set(p, v) => set(doc, p, v.clone()),
            Mutation::Remove(p) => remove(doc, p),
            Mutation::SelectBystanders => {
                let labels = json!({"app": "bystander"});
                set(
                    doc,
                    &path(&["spec", "sts", "spec", "selector"]),
                    json!({ "matchLabels": labels }),
                );
                set(
                    doc,
                    &path(&["spec", "sts", "spec", "template", "metadata", "labels"]),
                    labels,
                );
            }
            Mutation::Adopt => set(doc, &path(&["spec", "adoptExisting"]), json!(true)),
        }
    }

    fn malformed(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let len = valid.len();
        prop_oneof![
            (1..len).prop_map(move |cut| valid[..cut].to_vec()),
            prop::collection::vec(any::<u8>(), 0..300),
            (1usize..20_000).prop_map(|n| "[".repeat(n).into_bytes()),
            (1usize..20_000).prop_map(|n| "{\"a\":".repeat(n).into_bytes()),
            // Well-formed but nested far deeper than any decoder should follow.
            (100usize..20_000).prop_map(|n| format!(
                "{{\"apiVersion\":\"sroll.io/v1alpha1\",\"kind\":\"StatefulsetRollout\",\"metadata\":{{\"name\":\"h-0\"}},\"spec\":{{\"percent\":{}1{}}}}}",
                "[".repeat(n),
                "]".repeat(n)
            )
            .into_bytes()),
            prop::sample::select(vec![
                "".to_owned(),
                "null".to_owned(),
                "[]".to_owned(),
                "42".to_owned(),
                "\"a string\"".to_owned(),
                "{\"spec\": 1, \"spec\": {}}".to_owned(),
                "\u{feff}{}".to_owned(),
                "{\"apiVersion\": \"sroll.io/v1alpha1\", \"kind\": \"StatefulsetRollout\", \"metadata\": {\"name\": \"h-0\"}, \"spec\": {\"percent\": 1e999}}".to_owned(),
                "--- !!binary |\n  AAAA\n".to_owned(),
                "a: &a [*a, *a]\nb: *a\n".to_owned(),
            ])
            .prop_map(String::into_bytes),
        ]
    }

    /// Generates `n` cases from `base(name)` (a valid document) with a fixed seed.
    pub fn cases(n: usize, base: impl Fn(&str) -> Value) -> Vec<Case> {
        let mut runner = TestRunner::deterministic();
        let mut out = Vec::with_capacity(n);
        let names = prop::sample::select(NAMES.to_vec());
        for _ in 0..n {
            let shape = (
                names.clone(),
                0u8..20,
                prop::collection::vec(mutations(), 0..5),
                any::<bool>(),
            );
            let (name, kind, muts, apply_ssa) =
                shape.new_tree(&mut runner).expect("strategy").current();
            let mut doc = base(name);
            if kind < 2 {
                let valid = serde_json::to_vec(&doc).expect("json");
                let body = malformed(valid)
                    .new_tree(&mut runner)
                    .expect("strategy")
                    .current();
                out.push(Case {
                    name: name.to_owned(),
                    body,
                    apply: apply_ssa,
                    malformed: true,
                });
                continue;
            }
            for m in &muts {
                apply(&mut doc, m);
            }
            out.push(Case {
                name: name.to_owned(),
                body: serde_json::to_vec(&doc).expect("json"),
                apply: apply_ssa,
                malformed: false,
            });
        }
        out
    }
}

/// Sends one raw request through kubesim's router in-process: (status code, body as JSON).
async fn send_raw(env: &Env, case: &hostile::Case) -> (u16, Value) {
    let uri = format!(
        "/apis/sroll.io/v1alpha1/namespaces/{}/statefulsetrollouts/{}?fieldManager=hostile&force={}",
        env.ns, case.name, case.apply
    );
    let content_type = if case.apply {
        "application/apply-patch+yaml"
    } else {
        "application/merge-patch+json"
    };
    let req = http::Request::patch(uri)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(case.body.clone()))
        .unwrap();
    // In kubesim's own task (a worker thread), as a real server would handle it.
    let res = tokio::spawn(tower::ServiceExt::oneshot(env.cluster.service(), req))
        .await
        .unwrap()
        .unwrap();
    let code = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Whether a 500's `Status` is upstream's failed typed conversion of a server-side apply
/// configuration: reason "" (a plain error, not a `Status`) and the field manager's message, which
/// names the offending path (`failed to create typed patch object (ns/name; gvk): .metadata.…`).
fn is_typed_patch_failure(status: &Value) -> bool {
    let message = status["message"].as_str().unwrap_or_default();
    status["reason"].as_str().unwrap_or_default().is_empty()
        && message.starts_with("failed to create typed patch object (")
        && message.contains("): ")
        && message
            .split("): ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("errors:\n  ."))
}

/// Whether a 422's `Status` names the offending field.
fn names_a_field(status: &Value) -> bool {
    let roots = [
        "spec",
        "metadata",
        "apiVersion",
        "kind",
        "status",
        "<root>",
        "body",
    ];
    let in_causes = status["details"]["causes"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["field"].as_str().is_some_and(|f| !f.is_empty()))
    });
    let message = status["message"].as_str().unwrap_or_default();
    in_causes || roots.iter().any(|r| message.contains(r))
}

async fn hostile_documents(n: usize) {
    let mut env = Env::without_operator_on(kubesim::cluster::ClusterConfig {
        // Nothing runs pods: a hostile rollout with two billion replicas stays a number.
        simulate: false,
        ..sroll_testkit::env::cluster_config()
    })
    .await;
    // Bystanders: sets no valid rollout names, some selecting the labels hostile documents use.
    let mut bystanders = BTreeMap::new();
    for i in 0..3 {
        let mut sts = Rollout::named(&format!("bystander-{i}")).build().spec.sts;
        let labels: BTreeMap<String, String> = [("app".to_owned(), "bystander".to_owned())].into();
        sts.spec.selector.match_labels = Some(labels.clone());
        if let Some(m) = sts.spec.template.metadata.as_mut() {
            m.labels = Some(labels);
        }
        let created = env
            .statefulsets()
            .create(
                &PostParams::default(),
                &k8s_openapi::api::apps::v1::StatefulSet {
                    metadata: ObjectMeta {
                        name: Some(format!("bystander-{i}")),
                        ..ObjectMeta::default()
                    },
                    spec: Some(sts.spec),
                    status: None,
                },
            )
            .await
            .unwrap();
        bystanders.insert(created.name_any(), created.resource_version().unwrap());
    }
    env.start_operator();
    let ns = env.ns.clone();
    let base = |name: &str| {
        let mut v = serde_json::to_value(Rollout::named(name).replicas(2).build()).unwrap();
        v["metadata"]["namespace"] = json!(ns);
        v
    };
    let started = Instant::now();
    let cases = hostile::cases(n, base);
    let generated = started.elapsed();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let started = Instant::now();
    for case in &cases {
        let (code, status) = send_raw(&env, case).await;
        let outcome = match code {
            200 | 201 => "accepted".to_owned(),
            422 if names_a_field(&status) => "422 naming a field".to_owned(),
            400 => "400 bad request".to_owned(),
            // A merge patch of a rollout that does not exist (yet): upstream answers 404 too.
            404 if !case.apply => "404 merge patch of a missing rollout".to_owned(),
            // Server-side apply converts the configuration to the kind's typed schema before
            // anything else; upstream's field manager returns a failed conversion (here: a list
            // given a scalar, an `ownerReferences` item that is null, not an object or without a
            // `uid`) as a plain error, which the API server answers with 500 and reason ""
            // (`structuredmerge.go`, `responsewriters.ErrorToAPIStatus`;
            // kubernetes/kubernetes#139253). kubesim answers exactly that, so it counts as a
            // rejection with a reason, as long as it is that answer and nothing else.
            500 if case.apply && is_typed_patch_failure(&status) => {
                "500 typed conversion of an apply configuration (upstream's answer)".to_owned()
            }
            415 if case.malformed => "415 unsupported body".to_owned(),
            other => {
                let body = String::from_utf8_lossy(&case.body);
                unexpected.push(format!(
                    "{other} {}: {} (body {}…)",
                    case.name,
                    status["message"].as_str().unwrap_or_default(),
                    body.chars().take(300).collect::<String>()
                ));
                format!("unexpected {other}")
            }
        };
        *outcomes
            .entry(format!(
                "{}{outcome}",
                if case.malformed { "malformed: " } else { "" }
            ))
            .or_default() += 1;
        if env.operator.as_ref().is_some_and(RunningOperator::finished) {
            panic!("the operator stopped: {:?}", env.checker.problems_so_far());
        }
    }
    let sent = started.elapsed();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers, first ones: {:#?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(10)]
    );

    // Every rollout that exists now was handled: a status for its generation with a phase and
    // conditions.
    let api = env.rollouts();
    let started_wait = Instant::now();
    let (phases, reasons) = loop {
        // On timeout the failure names what was last seen: the list error, or the rollouts
        // without a status for their generation.
        let last = match api.list(&Default::default()).await {
            Err(e) => format!("listing rollouts failed: {e}"),
            Ok(list) => {
                let mut p = BTreeMap::new();
                let mut r = BTreeMap::new();
                let mut unhandled = Vec::new();
                for ro in &list.items {
                    match ro.status.as_ref() {
                        Some(s)
                            if s.observed_generation == ro.metadata.generation
                                && !s.conditions.is_empty()
                                && s.phase.is_some() =>
                        {
                            *p.entry(
                                s.phase
                                    .as_ref()
                                    .map(|ph| format!("{ph:?}"))
                                    .unwrap_or_default(),
                            )
                            .or_insert(0usize) += 1;
                            let valid = s.conditions.iter().find(|c| c.type_ == "SpecValid");
                            *r.entry(valid.map(|c| c.reason.clone()).unwrap_or_default())
                                .or_insert(0usize) += 1;
                        }
                        other => unhandled.push(format!(
                            "{} (generation {:?}, status {:?}); spec: {}",
                            ro.name_any(),
                            ro.metadata.generation,
                            other,
                            serde_json::to_string(&ro.spec)
                                .unwrap_or_default()
                                .chars()
                                .take(3000)
                                .collect::<String>()
                        )),
                    }
                }
                if unhandled.is_empty() {
                    break (p, r);
                }
                format!("unhandled: {unhandled:#?}")
            }
        };
        assert!(
            started_wait.elapsed() < Duration::from_secs(120),
            "timed out after 120s waiting for every accepted rollout handled; {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Bystanders untouched; no set other than those the rollouts name.
    let sets = env.statefulsets().list(&Default::default()).await.unwrap();
    for sts in &sets.items {
        let name = sts.name_any();
        match bystanders.get(&name) {
            Some(rv) => assert_eq!(
                sts.resource_version().as_ref(),
                Some(rv),
                "bystander {name} was modified"
            ),
            None => assert!(
                hostile::NAMES.contains(&name.as_str()),
                "a set no rollout names: {name}"
            ),
        }
    }
    let report = env.finish(true).await;
    eprintln!(
        "chaos hostile: {n} documents (generated in {generated:.1?}, sent in {sent:.1?}); \
         outcomes {outcomes:?}; final rollouts by phase {phases:?}, SpecValid reasons \
         {reasons:?}; {} sets, bystanders untouched; problems: {}",
        sets.items.len(),
        report.problems().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_hostile_documents_are_rejected_with_a_reason_or_handled_and_touch_no_bystander()
{
    hostile_documents(1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long chaos run: cargo nextest run -p sroll-operator --test chaos --run-ignored only"]
async fn ten_thousand_hostile_documents_are_rejected_with_a_reason_or_handled() {
    // The operator's warnings (failed reconciles) on stderr: the long run's failure to handle a
    // rollout must say why.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("sroll_operator=warn"))
        .with_writer(std::io::stderr)
        .try_init();
    hostile_documents(10_000).await;
}
