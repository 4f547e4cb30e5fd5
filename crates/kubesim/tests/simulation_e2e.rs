//! End-to-end scenarios: the running simulation (controllers, kubelets,
//! scheduler, eviction subresource, faults) driven through the in-process API
//! layer, with simulated time compressed by the speed factor. Every wait is
//! on a condition with a generous deadline; nothing asserts on wall-clock time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, StatefulSet},
        core::v1::{Node, Pod, Service},
        discovery::v1::EndpointSlice,
        policy::v1::PodDisruptionBudget,
    },
    jiff::SignedDuration,
};
use kubesim::{
    Api,
    api::{DeleteOptions, ListOptions, Propagation, WatchEvent, WatchOptions},
    controllers::{
        is_pod_ready,
        runtime::{SimConfig, Simulation},
    },
    faults::PodRef,
    kubelet::{Delay, KubeletConfig},
    testing::wait_for,
};
use serde_json::{Value, json};

const NS: &str = "default";
const DEADLINE: Duration = Duration::from_secs(30);

fn start() -> (Api, Simulation) {
    let api = Api::new(100_000);
    // The core's garbage collector runs next to the controllers (as in a cluster).
    let gc = tokio_util::sync::CancellationToken::new();
    tokio::spawn(api.clone().run_gc(gc.child_token()));
    let sim = Simulation::start(
        api.clone(),
        SimConfig {
            nodes: 3,
            speed: 50.0,
            kubelet: KubeletConfig {
                start_delay: Delay::Fixed(SignedDuration::from_secs(2)),
                shutdown_delay: SignedDuration::from_secs(2),
                ..KubeletConfig::default()
            },
            seed: Some(1),
            ..SimConfig::default()
        },
    )
    .unwrap();
    (api, sim)
}

fn sts(name: &str, replicas: i32, image: &str, extra: Value) -> StatefulSet {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas, "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"terminationGracePeriodSeconds": 10,
                                  "containers": [{"name": "app", "image": image,
                                                  "ports": [{"name": "http", "containerPort": 8080}]}]}}
        }
    });
    merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

fn merge(t: &mut Value, p: &Value) {
    match (t, p) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn set(api: &Api, name: &str) -> StatefulSet {
    api.get_typed(Some(NS), name).unwrap()
}

fn pods(api: &Api) -> Vec<Pod> {
    api.list_typed(Some(NS), &ListOptions::default()).unwrap()
}

fn pod(api: &Api, name: &str) -> Option<Pod> {
    api.get_typed(Some(NS), name).ok()
}

fn ready_replicas(api: &Api, name: &str) -> i32 {
    set(api, name)
        .status
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn settled(api: &Api, name: &str, n: i32) -> bool {
    let s = set(api, name);
    let st = s.status.clone().unwrap_or_default();
    st.ready_replicas == Some(n)
        && st.replicas == n
        && st.current_revision == st.update_revision
        && st.observed_generation == s.metadata.generation
}

fn set_image(api: &Api, name: &str, image: &str) {
    api.merge_patch_typed::<StatefulSet>(
        Some(NS),
        name,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]}}}}),
        kubesim::api::Part::Main,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_set_becomes_ready_with_scheduled_pods_and_observable_writes() {
    let (api, _sim) = start();
    let mut watch = api
        .watch_typed::<Pod>(Some(NS), &WatchOptions::default())
        .unwrap();
    api.create_typed(
        Some(NS),
        &sts(
            "web",
            5,
            "nginx:1",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
    )
    .unwrap();
    wait_for("5 ready replicas", DEADLINE, || {
        std::future::ready(settled(&api, "web", 5))
    })
    .await;
    let all = pods(&api);
    assert_eq!(all.len(), 5);
    for p in &all {
        let st = p.status.clone().unwrap();
        assert!(p.spec.as_ref().unwrap().node_name.is_some());
        assert!(st.pod_ip.is_some());
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(is_pod_ready(p));
    }
    // Every step was a real write: watchers saw the creations and status updates
    let mut added = 0;
    let mut modified = 0;
    while added < 5 || modified < 10 {
        match tokio::time::timeout(DEADLINE, watch.next())
            .await
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(_) => added += 1,
            WatchEvent::Modified(_) => modified += 1,
            _ => {}
        }
    }
    let nodes: Vec<Node> = api.list_typed(None, &ListOptions::default()).unwrap();
    assert_eq!(nodes.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_ready_recreates_deleted_pods_one_at_a_time_while_parallel_recreates_all_at_once() {
    let (api, _sim) = start();
    api.create_typed(Some(NS), &sts("ord", 3, "nginx:1", json!({})))
        .unwrap();
    api.create_typed(
        Some(NS),
        &sts(
            "par",
            3,
            "nginx:1",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
    )
    .unwrap();
    wait_for("both sets ready", DEADLINE, || {
        std::future::ready(settled(&api, "ord", 3) && settled(&api, "par", 3))
    })
    .await;
    let rv = api
        .list(
            &api.resource("", "v1", "pods").unwrap(),
            Some(NS),
            &ListOptions::default(),
        )
        .unwrap()
        .resource_version;
    let mut watch = api
        .watch_typed::<Pod>(
            Some(NS),
            &WatchOptions {
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    for set in ["ord", "par"] {
        for i in 0..3 {
            api.delete_typed::<Pod>(
                Some(NS),
                &format!("{set}-{i}"),
                &DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .unwrap();
        }
    }
    // Then, in the order the watch delivers events:
    // Parallel: all three are re-created before any of them is ready.
    // OrderedReady: ord-i is re-created only after ord-(i-1) is ready.
    let mut seq = 0usize;
    let mut added: std::collections::BTreeMap<String, usize> = Default::default();
    let mut ready: std::collections::BTreeMap<String, usize> = Default::default();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while ready.len() < 6 {
        let ev = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("events")
            .expect("open");
        seq += 1;
        match ev {
            WatchEvent::Added(v) => {
                added
                    .entry(v["metadata"]["name"].as_str().unwrap().to_owned())
                    .or_insert(seq);
            }
            WatchEvent::Modified(v) => {
                let p: Pod = serde_json::from_value(v).unwrap();
                let name = p.metadata.name.clone().unwrap();
                if is_pod_ready(&p) && added.contains_key(&name) {
                    ready.entry(name).or_insert(seq);
                }
            }
            _ => {}
        }
    }
    let first_par_ready = ["par-0", "par-1", "par-2"]
        .iter()
        .map(|n| ready[*n])
        .min()
        .unwrap();
    assert!(
        ["par-0", "par-1", "par-2"]
            .iter()
            .all(|n| added[*n] < first_par_ready),
        "parallel pods were re-created together"
    );
    assert!(
        ready["ord-0"] < added["ord-1"] && ready["ord-1"] < added["ord-2"],
        "ordered pods were re-created one at a time"
    );
    wait_for("settled", DEADLINE, || {
        std::future::ready(settled(&api, "ord", 3) && settled(&api, "par", 3))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_completes_and_only_then_advances_the_current_revision() {
    let (api, _sim) = start();
    api.create_typed(
        Some(NS),
        &sts(
            "web",
            3,
            "nginx:1",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
    )
    .unwrap();
    wait_for("ready", DEADLINE, || {
        std::future::ready(settled(&api, "web", 3))
    })
    .await;
    let first = set(&api, "web").status.unwrap().current_revision.unwrap();
    set_image(&api, "web", "nginx:2");
    let mut premature = false;
    wait_for("rollout done", DEADLINE, || {
        std::future::ready({
            let st = set(&api, "web").status.unwrap();
            if st.current_revision.as_deref() != Some(first.as_str())
                && st.updated_replicas.unwrap_or(0) < 3
            {
                premature = true;
            }
            st.current_revision != Some(first.clone()) && settled(&api, "web", 3)
        })
    })
    .await;
    assert!(!premature);
    for p in pods(&api) {
        assert_eq!(
            p.spec.unwrap().containers[0].image.as_deref(),
            Some("nginx:2")
        );
    }
    let revs: Vec<ControllerRevision> = api.list_typed(Some(NS), &ListOptions::default()).unwrap();
    assert_eq!(revs.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_set_garbage_collects_its_pods_and_orphaning_keeps_them_for_adoption() {
    let (api, _sim) = start();
    api.create_typed(
        Some(NS),
        &sts(
            "gc",
            2,
            "nginx:1",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
    )
    .unwrap();
    api.create_typed(
        Some(NS),
        &sts(
            "orph",
            2,
            "nginx:1",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
    )
    .unwrap();
    wait_for("ready", DEADLINE, || {
        std::future::ready(settled(&api, "gc", 2) && settled(&api, "orph", 2))
    })
    .await;
    api.delete_typed::<StatefulSet>(
        Some(NS),
        "gc",
        &DeleteOptions {
            propagation: Some(Propagation::Background),
            ..Default::default()
        },
    )
    .unwrap();
    api.delete_typed::<StatefulSet>(
        Some(NS),
        "orph",
        &DeleteOptions {
            propagation: Some(Propagation::Orphan),
            ..Default::default()
        },
    )
    .unwrap();
    wait_for("gc pods gone", DEADLINE, || {
        std::future::ready({
            let ps = pods(&api);
            !ps.iter()
                .any(|p| p.metadata.name.as_deref().unwrap().starts_with("gc-"))
                && api.get_typed::<StatefulSet>(Some(NS), "orph").is_err()
        })
    })
    .await;
    let orphans: Vec<Pod> = pods(&api);
    assert_eq!(orphans.len(), 2);
    assert!(orphans.iter().all(|p| {
        p.metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty)
    }));
    let uids: Vec<_> = orphans.iter().map(|p| p.metadata.uid.clone()).collect();
    // A new set with the same name adopts the orphans instead of replacing them
    let created = api
        .create_typed(
            Some(NS),
            &sts(
                "orph",
                2,
                "nginx:1",
                json!({"spec": {"podManagementPolicy": "Parallel"}}),
            ),
        )
        .unwrap();
    wait_for("adopted", DEADLINE, || {
        std::future::ready({
            pods(&api).iter().all(|p| {
                p.metadata.owner_references.as_ref().is_some_and(|o| {
                    o.iter()
                        .any(|r| Some(&r.uid) == created.metadata.uid.as_ref())
                })
            }) && ready_replicas(&api, "orph") == 2
        })
    })
    .await;
    let after: Vec<_> = pods(&api).iter().map(|p| p.metadata.uid.clone()).collect();
    assert_eq!(after, uids);
}

fn pdb(name: &str, app: &str, spec: Value) -> PodDisruptionBudget {
    let mut s = spec;
    s["selector"] = json!({"matchLabels": {"app": app}});
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": NS}, "spec": s})).unwrap()
}

/// A Parallel set `web` of `replicas` pods guarded by the budget `web-pdb`
/// (`spec`), once the set is settled and the budget allows one disruption.
async fn guarded_set(api: &Api, replicas: i32, spec: Value) {
    api.create_typed(
        Some(NS),
        &sts(
            "web",
            replicas,
            "nginx:1",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
    )
    .unwrap();
    api.create_typed(Some(NS), &pdb("web-pdb", "web", spec))
        .unwrap();
    wait_for("budget of one", DEADLINE, || {
        std::future::ready({
            settled(api, "web", replicas) && pdb_status(api, "web-pdb").disruptions_allowed == 1
        })
    })
    .await;
}

async fn evict(api: &Api, name: &str) -> Result<(u16, Value), kubesim::ApiError> {
    evict_with_query(api, name, &[]).await
}

async fn evict_with_query(
    api: &Api,
    name: &str,
    query: &[(&str, &str)],
) -> Result<(u16, Value), kubesim::ApiError> {
    let h = api
        .subresource_handler("pods", "eviction")
        .expect("eviction registered");
    h(
        api.clone(),
        NS.into(),
        name.into(),
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": NS}}),
        query
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_eviction_in_the_query_deletes_nothing_and_spends_no_budget() {
    let (api, _sim) = start();
    guarded_set(&api, 2, json!({"minAvailable": 1})).await;
    let (code, body) = evict_with_query(&api, "web-0", &[("dryRun", "All")])
        .await
        .unwrap();
    assert_eq!((code, body["status"].as_str()), (201, Some("Success")));
    assert!(!terminating(&api, "web-0"));
    let st = pdb_status(&api, "web-pdb");
    assert_eq!(st.disruptions_allowed, 1);
    assert!(st.disrupted_pods.is_none_or(|d| d.is_empty()));
}

/// Whether the pod's graceful deletion has started.
fn terminating(api: &Api, name: &str) -> bool {
    pod(api, name)
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_some()
}

fn pdb_status(api: &Api, name: &str) -> k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus {
    api.get_typed::<PodDisruptionBudget>(Some(NS), name)
        .unwrap()
        .status
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_is_refused_with_429_while_the_budget_is_exhausted_and_allowed_after_recovery() {
    let (api, sim) = start();
    guarded_set(&api, 3, json!({"maxUnavailable": 1})).await;
    // Given web-1 is unready, the budget is exhausted
    sim.faults().update(|c| {
        c.unready_pods.insert(PodRef {
            namespace: NS.into(),
            name: "web-1".into(),
        });
    });
    wait_for("budget exhausted", DEADLINE, || {
        std::future::ready(pdb_status(&api, "web-pdb").disruptions_allowed == 0)
    })
    .await;
    let err = evict(&api, "web-0").await.unwrap_err();
    assert_eq!(err.code, 429);
    assert_eq!(err.reason, "TooManyRequests");
    assert_eq!(err.details.causes[0].reason, "DisruptionBudget");
    assert_eq!(
        err.details.causes[0].message,
        "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
    );
    // When web-1 recovers, the same eviction succeeds
    sim.faults().update(|c| c.unready_pods.clear());
    wait_for("budget restored", DEADLINE, || {
        std::future::ready(pdb_status(&api, "web-pdb").disruptions_allowed == 1)
    })
    .await;
    let (code, body) = evict(&api, "web-0").await.unwrap();
    assert_eq!(code, 201);
    assert_eq!(body["status"], "Success");
    let p = pod(&api, "web-0").unwrap();
    assert!(
        p.metadata.deletion_timestamp.is_some(),
        "graceful deletion started"
    );
    let dt = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .unwrap();
    assert_eq!(dt.reason.as_deref(), Some("EvictionByEvictionAPI"));
    assert!(
        pdb_status(&api, "web-pdb")
            .disrupted_pods
            .is_some_and(|d| d.contains_key("web-0"))
            || pdb_status(&api, "web-pdb").disruptions_allowed == 0
    );
    // And the set heals
    wait_for("healed", DEADLINE, || {
        std::future::ready({
            settled(&api, "web", 3)
                && pods(&api)
                    .iter()
                    .all(|p| p.metadata.deletion_timestamp.is_none())
        })
    })
    .await;
}

/// The handler lists every budget of the namespace: one selecting other pods
/// does not govern the eviction, and a second budget selecting the pod —
/// created just before, whether or not the controllers' cache holds it yet —
/// makes it a 500 that deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budgets_selecting_the_pod_govern_its_eviction_and_two_are_refused() {
    let (api, _sim) = start();
    guarded_set(&api, 3, json!({"maxUnavailable": 1})).await;
    // Given a budget over other pods that allows nothing
    api.create_typed(
        Some(NS),
        &pdb("other-pdb", "other", json!({"maxUnavailable": 0})),
    )
    .unwrap();
    // When a second budget selecting web's pods appears
    api.create_typed(
        Some(NS),
        &pdb("web-pdb-2", "web", json!({"maxUnavailable": 1})),
    )
    .unwrap();
    let err = evict(&api, "web-0").await.unwrap_err();
    assert_eq!(err.code, 500);
    assert_eq!(err.message, kubesim::eviction::MULTIPLE_PDBS_MESSAGE);
    assert!(!terminating(&api, "web-0"));
    // And with it gone, web-pdb alone governs: the eviction goes through
    api.delete_typed::<PodDisruptionBudget>(Some(NS), "web-pdb-2", &Default::default())
        .unwrap();
    let (code, _) = evict(&api, "web-0").await.unwrap();
    assert_eq!(code, 201);
    assert!(terminating(&api, "web-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_evictions_against_a_budget_of_one_let_exactly_one_through() {
    let (api, _sim) = start();
    guarded_set(&api, 3, json!({"minAvailable": 2})).await;
    let (a, b) = tokio::join!(
        tokio::spawn({
            let api = api.clone();
            async move { evict(&api, "web-0").await.map(|r| r.0).map_err(|e| e.code) }
        }),
        tokio::spawn({
            let api = api.clone();
            async move { evict(&api, "web-1").await.map(|r| r.0).map_err(|e| e.code) }
        })
    );
    let mut results = [a.unwrap(), b.unwrap()];
    results.sort();
    assert_eq!(results, [Ok(201), Err(429)]);
    let terminating = pods(&api)
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .count();
    assert_eq!(terminating, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slice_readiness_follows_pod_readiness() {
    let (api, sim) = start();
    api.create_typed(
        Some(NS),
        &sts(
            "web",
            2,
            "nginx:1",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
    )
    .unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    api.create_typed(Some(NS), &svc).unwrap();
    let ready_of = |api: &Api, pod: &str| -> Option<bool> {
        let slices: Vec<EndpointSlice> = api.list_typed(Some(NS), &ListOptions::default()).unwrap();
        slices
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .find(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(pod))
            .and_then(|e| e.conditions.as_ref().and_then(|c| c.ready))
    };
    wait_for("both endpoints ready", DEADLINE, || {
        std::future::ready({
            ready_of(&api, "web-0") == Some(true) && ready_of(&api, "web-1") == Some(true)
        })
    })
    .await;
    sim.faults().update(|c| {
        c.unready_pods.insert(PodRef {
            namespace: NS.into(),
            name: "web-1".into(),
        });
    });
    wait_for("web-1 endpoint not ready", DEADLINE, || {
        std::future::ready(ready_of(&api, "web-1") == Some(false))
    })
    .await;
    assert_eq!(ready_of(&api, "web-0"), Some(true));
    sim.faults().update(|c| c.unready_pods.clear());
    wait_for("web-1 endpoint ready again", DEADLINE, || {
        std::future::ready(ready_of(&api, "web-1") == Some(true))
    })
    .await;
    let slices: Vec<EndpointSlice> = api.list_typed(Some(NS), &ListOptions::default()).unwrap();
    assert_eq!(slices.len(), 1);
    assert!(
        slices[0]
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("web-")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_node_makes_its_pods_not_ready_then_deleted_and_replaced_elsewhere() {
    let (api, sim) = start();
    sim.faults().update(|c| c.node_eviction_seconds = 20);
    api.create_typed(
        Some(NS),
        &sts(
            "web",
            3,
            "nginx:1",
            json!({"spec": {"podManagementPolicy": "Parallel"}}),
        ),
    )
    .unwrap();
    wait_for("ready", DEADLINE, || {
        std::future::ready(settled(&api, "web", 3))
    })
    .await;
    let victim = pod(&api, "web-0").unwrap();
    let node = victim.spec.unwrap().node_name.unwrap();
    sim.faults().update(|c| {
        c.failed_nodes.insert(node.clone());
    });
    wait_for("node not ready", DEADLINE, || {
        std::future::ready({
            let n: Node = api.get_typed(None, &node).unwrap();
            n.status
                .unwrap()
                .conditions
                .unwrap()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "Unknown")
        })
    })
    .await;
    let mut saw_not_ready = false;
    wait_for("replaced on another node", DEADLINE, || {
        std::future::ready(match pod(&api, "web-0") {
            Some(p) if p.metadata.uid == victim.metadata.uid => {
                if !is_pod_ready(&p) {
                    saw_not_ready = true;
                }
                false
            }
            Some(p) => {
                p.spec.unwrap().node_name.as_deref() != Some(node.as_str())
                    && ready_replicas(&api, "web") == 3
            }
            None => false,
        })
    })
    .await;
    assert!(saw_not_ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_delete_set_leaks_the_update_revision_into_a_killed_pod() {
    let (api, _sim) = start();
    api.create_typed(
        Some(NS),
        &sts(
            "web",
            2,
            "nginx:1",
            json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
        ),
    )
    .unwrap();
    wait_for("ready", DEADLINE, || {
        std::future::ready(settled(&api, "web", 2))
    })
    .await;
    set_image(&api, "web", "nginx:2");
    wait_for("new revision observed", DEADLINE, || {
        std::future::ready({
            let st = set(&api, "web").status.unwrap();
            st.update_revision != st.current_revision
        })
    })
    .await;
    let old_uid = pod(&api, "web-1").unwrap().metadata.uid;
    api.delete_typed::<Pod>(Some(NS), "web-1", &DeleteOptions::default())
        .unwrap();
    wait_for("web-1 back and ready", DEADLINE, || {
        std::future::ready({
            pod(&api, "web-1").is_some_and(|p| p.metadata.uid != old_uid && is_pod_ready(&p))
                && ready_replicas(&api, "web") == 2
        })
    })
    .await;
    let image = |n: &str| {
        pod(&api, n).unwrap().spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    assert_eq!(image("web-1"), "nginx:2");
    assert_eq!(image("web-0"), "nginx:1");
}

/// kubernetes#42639: the collector strips the set's ownerReference from each
/// pod; a controller that re-adopted from its (stale) cache would put it back
/// and the pods would then be collected with the set. The race is timing
/// dependent, so the orphaning delete is repeated on fresh sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaning_a_set_never_loses_its_pods_to_a_re_adoption_from_the_cache() {
    let (api, _sim) = start();
    for round in 0..20 {
        let name = format!("keep{round}");
        api.create_typed(
            Some(NS),
            &sts(
                &name,
                6,
                "nginx:1",
                json!({"spec": {"podManagementPolicy": "Parallel"}}),
            ),
        )
        .unwrap();
        wait_for("ready", DEADLINE, || {
            std::future::ready(settled(&api, &name, 6))
        })
        .await;
        let mine = |api: &Api| -> Vec<Pod> {
            pods(api)
                .into_iter()
                .filter(|p| {
                    p.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(&format!("{name}-")))
                })
                .collect()
        };
        let before: Vec<_> = mine(&api).iter().map(|p| p.metadata.uid.clone()).collect();
        assert_eq!(before.len(), 6);
        api.delete_typed::<StatefulSet>(
            Some(NS),
            &name,
            &DeleteOptions {
                propagation: Some(Propagation::Orphan),
                ..Default::default()
            },
        )
        .unwrap();
        wait_for("set gone", DEADLINE, || {
            std::future::ready(api.get_typed::<StatefulSet>(Some(NS), &name).is_err())
        })
        .await;
        // Give the collector time to act on any re-adopted pod.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = mine(&api);
        let uids: Vec<_> = after.iter().map(|p| p.metadata.uid.clone()).collect();
        assert_eq!(
            uids,
            before,
            "round {round}: the orphaning delete lost pods (left: {:?})",
            after
                .iter()
                .map(|p| (&p.metadata.name, &p.metadata.deletion_timestamp))
                .collect::<Vec<_>>()
        );
        assert!(
            after.iter().all(|p| p.metadata.deletion_timestamp.is_none()
                && p.metadata
                    .owner_references
                    .as_ref()
                    .is_none_or(Vec::is_empty)),
            "round {round}: orphans keep no reference and are not terminating"
        );
    }
}

fn events(api: &Api) -> Vec<k8s_openapi::api::core::v1::Event> {
    api.list_typed(Some(NS), &ListOptions::default()).unwrap()
}

fn find_event<'a>(
    evs: &'a [k8s_openapi::api::core::v1::Event],
    reason: &str,
    message: &str,
) -> Option<&'a k8s_openapi::api::core::v1::Event> {
    evs.iter()
        .find(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref() == Some(message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_scheduler_and_kubelets_record_upstreams_events_and_count_repeats() {
    let (api, _sim) = start();
    api.create_typed(Some(NS), &sts("ev", 1, "nginx:1", json!({})))
        .unwrap();
    wait_for("ready", DEADLINE, || {
        std::future::ready(settled(&api, "ev", 1))
    })
    .await;
    let node = pod(&api, "ev-0")
        .and_then(|p| p.spec.and_then(|s| s.node_name))
        .unwrap();
    wait_for("the pod's events", DEADLINE, || {
        std::future::ready({
            let evs = events(&api);
            find_event(
                &evs,
                "SuccessfulCreate",
                "create Pod ev-0 in StatefulSet ev successful",
            )
            .is_some()
                && find_event(
                    &evs,
                    "Scheduled",
                    &format!("Successfully assigned {NS}/ev-0 to {node}"),
                )
                .is_some()
                && find_event(&evs, "Started", "Started container app").is_some()
        })
    })
    .await;
    let evs = events(&api);
    let created = find_event(
        &evs,
        "SuccessfulCreate",
        "create Pod ev-0 in StatefulSet ev successful",
    )
    .unwrap();
    assert_eq!(created.type_.as_deref(), Some("Normal"));
    assert_eq!(created.count, Some(1));
    assert_eq!(created.involved_object.kind.as_deref(), Some("StatefulSet"));
    assert_eq!(created.involved_object.name.as_deref(), Some("ev"));
    assert_eq!(
        created.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("statefulset-controller")
    );
    assert_eq!(
        created.reporting_component.as_deref(),
        Some("statefulset-controller")
    );
    assert!(created.metadata.name.as_deref().unwrap().starts_with("ev."));
    let started = find_event(&evs, "Started", "Started container app").unwrap();
    assert_eq!(
        started.involved_object.field_path.as_deref(),
        Some("spec.containers{app}")
    );
    assert_eq!(
        started.source.as_ref().and_then(|s| s.host.as_deref()),
        Some(node.as_str())
    );
    assert!(
        find_event(
            &evs,
            "Pulled",
            "Container image \"nginx:1\" already present on machine"
        )
        .is_some()
    );
    assert!(find_event(&evs, "Created", "Created container: app").is_some());
    let scheduled = find_event(
        &evs,
        "Scheduled",
        &format!("Successfully assigned {NS}/ev-0 to {node}"),
    )
    .unwrap();
    assert_eq!(scheduled.action.as_deref(), Some("Binding"));
    assert_eq!(
        scheduled.reporting_component.as_deref(),
        Some("default-scheduler")
    );
    // A repeat of the same event updates the first one's count and lastTimestamp.
    let first_uid = pod(&api, "ev-0").unwrap().metadata.uid;
    api.delete_typed::<Pod>(Some(NS), "ev-0", &DeleteOptions::default())
        .unwrap();
    wait_for("recreated", DEADLINE, || {
        std::future::ready({
            pod(&api, "ev-0").is_some_and(|p| p.metadata.uid != first_uid) && settled(&api, "ev", 1)
        })
    })
    .await;
    wait_for("the create counted twice", DEADLINE, || {
        std::future::ready({
            find_event(
                &events(&api),
                "SuccessfulCreate",
                "create Pod ev-0 in StatefulSet ev successful",
            )
            .is_some_and(|e| e.count == Some(2))
        })
    })
    .await;
    let evs = events(&api);
    assert_eq!(
        evs.iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .count(),
        1,
        "one Event, counted twice"
    );
    assert!(find_event(&evs, "Killing", "Stopping container app").is_some());
    assert!(
        find_event(
            &evs,
            "SuccessfulDelete",
            "delete Pod ev-0 in StatefulSet ev successful"
        )
        .is_none(),
        "the pod was deleted by the test, not the controller"
    );
}
