//! End-to-end scenarios through `kubesim::Cluster` and a real `kube::Client`
//! over HTTP: the simulation is what a client sees as the cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod, policy::v1::PodDisruptionBudget};
use kube::{
    Api,
    api::{EvictParams, ListParams, Patch, PatchParams, PostParams},
};
use kubesim::{
    cluster::{Cluster, ClusterConfig, Handle},
    testing::wait_for,
};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

async fn start() -> Handle {
    Cluster::start(ClusterConfig {
        speed: 50.0,
        simulate: true,
        ..ClusterConfig::default()
    })
    .await
    .unwrap()
}

fn sts(name: &str, replicas: i32, policy: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 5,
                                       "containers": [{"name": "app", "image": "nginx:1"}]}}}
    }))
    .unwrap()
}

async fn ready(sets: &Api<StatefulSet>, name: &str, n: i32) -> bool {
    let s = sets.get(name).await.unwrap();
    let st = s.status.unwrap_or_default();
    st.ready_replicas == Some(n)
        && st.current_revision == st.update_revision
        && st.observed_generation == s.metadata.generation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kube_client_sees_a_statefulset_roll_out_with_revision_labels_on_pods() {
    let h = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(h.client());
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    sets.create(&PostParams::default(), &sts("web", 3, "OrderedReady"))
        .await
        .unwrap();
    wait_for("ready", DEADLINE, || ready(&sets, "web", 3)).await;
    let first = sets
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .update_revision
        .unwrap();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    wait_for("rolled out", DEADLINE, || async {
        let st = sets.get("web").await.unwrap().status.unwrap();
        st.current_revision.as_deref() != Some(first.as_str()) && ready(&sets, "web", 3).await
    })
    .await;
    let update = sets
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .update_revision
        .unwrap();
    for p in pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
    {
        assert_eq!(
            p.metadata.labels.unwrap()["controller-revision-hash"],
            update
        );
    }
    // The controllers' syncs are counted on `/metrics`: the set was synced at
    // least once per pod it created, the pods by the kubelet and scheduler.
    let text = reqwest::get(format!("{}/metrics", h.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let syncs = |controller: &str| -> u64 {
        let series = format!("kubesim_controller_syncs_total{{controller=\"{controller}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .parse()
            .unwrap()
    };
    assert!(syncs("statefulset") >= 6, "{text}");
    assert!(syncs("pod") >= 6, "{text}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_over_http_answers_429_with_the_budget_exhausted_and_201_after_recovery() {
    let h = start().await;
    // The in-process client has no retry layer: kube 5's default HTTP client
    // retries 429s up to 15 times with exponential back-off (as client-go
    // would with a Retry-After header), which hides the first answer.
    let client = h.in_process_client();
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(client);
    sets.create(&PostParams::default(), &sts("db", 2, "Parallel"))
        .await
        .unwrap();
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "db"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    wait_for("ready and observed", DEADLINE, || async {
        ready(&sets, "db", 2).await
            && pdbs
                .get("db")
                .await
                .unwrap()
                .status
                .is_some_and(|s| s.observed_generation == Some(1))
    })
    .await;
    // minAvailable 2 of 2: no disruption allowed
    let err = pods
        .evict("db-0", &EvictParams::default())
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error")
    };
    assert_eq!(status.code, 429);
    assert_eq!(
        status.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    // When the budget is relaxed, the same eviction succeeds
    pdbs.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"minAvailable": 1}})),
    )
    .await
    .unwrap();
    wait_for("budget allows one", DEADLINE, || async {
        pdbs.get("db")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.disruptions_allowed == 1 && s.observed_generation == Some(2))
    })
    .await;
    let evicted = pods.get("db-0").await.unwrap().metadata.uid;
    pods.evict("db-0", &EvictParams::default()).await.unwrap();
    // The eviction deleted the pod: read at once it is terminating, unless its grace period (5 s
    // simulated, 0.1 s of wall time at speed 50) already ran out on a slow machine, leaving it
    // gone or replaced by the StatefulSet's new `db-0` (another uid).
    match pods.get_opt("db-0").await.unwrap() {
        Some(p) if p.metadata.uid == evicted => assert!(p.metadata.deletion_timestamp.is_some()),
        _ => {}
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_switched_through_sim_endpoints_reach_kube_clients() {
    use tower::ServiceExt;
    let h = start().await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    assert!(pods.list(&ListParams::default()).await.is_ok());
    // Given a 500 rule switched on through PUT /sim/faults
    let cfg = json!({"apiErrors": [{"verb": "list", "resource": "pods", "probability": 1.0,
                                    "error": {"type": "internalError"}}]});
    let req = http::Request::put("/sim/faults")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(cfg.to_string()))
        .unwrap();
    assert_eq!(h.service().oneshot(req).await.unwrap().status(), 200);
    // Then pod lists fail with 500 while other calls work
    let err = pods.list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error")
    };
    assert_eq!(status.code, 500);
    assert!(pods.get_opt("nope").await.unwrap().is_none());
    // And the same state is reachable through the Handle
    assert_eq!(h.faults().config().api_errors.len(), 1);
    h.faults().clear();
    assert!(pods.list(&ListParams::default()).await.is_ok());
    h.shutdown().await;
}
