//! Given/when/then scenarios for the eviction subresource, written from
//! `pkg/registry/core/pod/storage/eviction.go`, against an in-memory backend
//! with optimistic concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::{
    api::{
        core::v1::{Pod, PodCondition},
        policy::v1::{Eviction, PodDisruptionBudget},
    },
    apimachinery::pkg::apis::meta::v1::{DeleteOptions, Preconditions, Time},
    jiff::Timestamp,
};
use kubesim::eviction::{self, EvictionBackend, StatusError};
use serde_json::json;
use tokio::sync::Barrier;

#[derive(Default)]
struct State {
    pods: BTreeMap<String, Pod>,
    pdbs: BTreeMap<String, PodDisruptionBudget>,
    rv: u64,
    deletes: Vec<(String, DeleteOptions)>,
}

#[derive(Clone, Default)]
struct Mock {
    state: Arc<Mutex<State>>,
    barrier: Option<Arc<Barrier>>,
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

impl Mock {
    fn bump(s: &mut State) -> String {
        s.rv += 1;
        s.rv.to_string()
    }

    fn add_pod(&self, name: &str, ready: bool, phase: &str) {
        let mut s = self.state.lock().unwrap();
        let rv = Self::bump(&mut s);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "resourceVersion": rv, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "app", "image": "nginx"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap();
        s.pods.insert(name.into(), pod);
    }

    fn add_pdb(
        &self,
        name: &str,
        allowed: i32,
        healthy: i32,
        desired: i32,
        extra: serde_json::Value,
    ) {
        let mut s = self.state.lock().unwrap();
        let rv = Self::bump(&mut s);
        let mut spec =
            json!({"selector": {"matchLabels": {"app": "web"}}, "minAvailable": desired});
        if let (Some(o), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "generation": 1, "resourceVersion": rv},
            "spec": spec,
            "status": {"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": healthy,
                       "desiredHealthy": desired, "expectedPods": healthy}
        }))
        .unwrap();
        s.pdbs.insert(name.into(), pdb);
    }

    fn pdb(&self, name: &str) -> PodDisruptionBudget {
        self.state.lock().unwrap().pdbs[name].clone()
    }

    fn pod(&self, name: &str) -> Option<Pod> {
        self.state.lock().unwrap().pods.get(name).cloned()
    }
}

fn check_pre(pod: &Pod, pre: Option<&Preconditions>) -> Result<(), StatusError> {
    let Some(p) = pre else {
        return Ok(());
    };
    let uid_differs = p
        .uid
        .as_ref()
        .is_some_and(|u| Some(u) != pod.metadata.uid.as_ref());
    let rv_differs = p
        .resource_version
        .as_ref()
        .is_some_and(|r| Some(r) != pod.metadata.resource_version.as_ref());
    if uid_differs || rv_differs {
        return Err(StatusError::conflict(
            "pods",
            pod.metadata.name.as_deref().unwrap(),
            "precondition failed",
        ));
    }
    Ok(())
}

impl EvictionBackend for Mock {
    async fn get_pod(&self, _ns: &str, name: &str) -> Result<Arc<Pod>, StatusError> {
        self.pod(name)
            .map(Arc::new)
            .ok_or_else(|| StatusError::new(404, "NotFound", format!("pods \"{name}\" not found")))
    }

    async fn list_pdbs(
        &self,
        _ns: &str,
        _pod: &Pod,
    ) -> Result<Vec<Arc<PodDisruptionBudget>>, StatusError> {
        let list = self
            .state
            .lock()
            .unwrap()
            .pdbs
            .values()
            .cloned()
            .map(Arc::new)
            .collect();
        if let Some(b) = &self.barrier {
            b.wait().await;
        }
        Ok(list)
    }

    async fn get_pdb(&self, _ns: &str, name: &str) -> Result<PodDisruptionBudget, StatusError> {
        Ok(self.pdb(name))
    }

    async fn update_pdb_status(&self, pdb: PodDisruptionBudget) -> Result<(), StatusError> {
        let mut s = self.state.lock().unwrap();
        let name = pdb.metadata.name.clone().unwrap();
        let cur = s.pdbs[&name].clone();
        if cur.metadata.resource_version != pdb.metadata.resource_version {
            return Err(StatusError::conflict(
                "poddisruptionbudgets.policy",
                &name,
                "the object has been modified",
            ));
        }
        let mut next = cur;
        next.status = pdb.status;
        next.metadata.resource_version = Some(Self::bump(&mut s));
        s.pdbs.insert(name, next);
        Ok(())
    }

    async fn add_disruption_target(
        &self,
        _ns: &str,
        name: &str,
        pre: Option<Preconditions>,
        _seen: Option<Arc<Pod>>,
    ) -> Result<Option<String>, StatusError> {
        let mut s = self.state.lock().unwrap();
        let mut pod = s.pods.get(name).cloned().unwrap();
        check_pre(&pod, pre.as_ref())?;
        pod.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("EvictionByEvictionAPI".into()),
                message: Some("Eviction API: evicting".into()),
                last_transition_time: Some(Time(now())),
                ..PodCondition::default()
            });
        pod.metadata.resource_version = Some(Self::bump(&mut s));
        let rv = pod.metadata.resource_version.clone();
        s.pods.insert(name.into(), pod);
        Ok(rv)
    }

    async fn delete_pod(
        &self,
        _ns: &str,
        name: &str,
        options: DeleteOptions,
    ) -> Result<(), StatusError> {
        let mut s = self.state.lock().unwrap();
        let pod = s.pods.get(name).cloned().unwrap();
        check_pre(&pod, options.preconditions.as_ref())?;
        s.deletes.push((name.into(), options.clone()));
        if options.dry_run.is_some_and(|d| !d.is_empty()) {
            return Ok(());
        }
        s.pods.remove(name);
        Ok(())
    }

    fn now(&self) -> Timestamp {
        now()
    }
}

fn eviction(name: &str, opts: serde_json::Value) -> Eviction {
    serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"},
        "deleteOptions": opts
    }))
    .unwrap()
}

async fn evict(m: &Mock, name: &str) -> Result<serde_json::Value, StatusError> {
    eviction::evict(m, "default", name, &eviction(name, json!({})), &[])
        .await
        .map(|s| serde_json::to_value(s).unwrap())
}

#[tokio::test]
async fn eviction_without_a_budget_deletes_the_pod_and_answers_201() {
    let m = Mock::default();
    m.add_pod("web-0", true, "Running");
    let body = evict(&m, "web-0").await.unwrap();
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    assert!(m.pod("web-0").is_none());
}

#[tokio::test]
async fn eviction_429_with_an_exhausted_budget_has_the_upstream_body() {
    let m = Mock::default();
    m.add_pod("web-0", true, "Running");
    m.add_pdb("web-pdb", 0, 2, 2, json!({}));
    let err = evict(&m, "web-0").await.unwrap_err();
    let status = serde_json::to_value(&*err.0).unwrap();
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Cannot evict pod as it would violate the pod's disruption budget.",
               "reason": "TooManyRequests",
               "details": {"causes": [{"reason": "DisruptionBudget",
                  "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},
               "code": 429})
    );
    assert!(m.pod("web-0").is_some(), "pod untouched");
}

#[tokio::test]
async fn eviction_is_refused_then_allowed_after_the_budget_recovers() {
    let m = Mock::default();
    m.add_pod("web-0", true, "Running");
    m.add_pdb("web-pdb", 0, 1, 1, json!({}));
    assert_eq!(evict(&m, "web-0").await.unwrap_err().code(), 429);
    // When the disruption controller sees another pod recover
    m.add_pdb("web-pdb", 1, 2, 1, json!({}));
    evict(&m, "web-0").await.unwrap();
    let st = m.pdb("web-pdb").status.unwrap();
    assert_eq!(st.disruptions_allowed, 0);
    assert!(st.disrupted_pods.unwrap().contains_key("web-0"));
    let cond = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "InsufficientPods")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_evictions_against_a_budget_of_one_let_exactly_one_through() {
    let m = Mock {
        barrier: Some(Arc::new(Barrier::new(2))),
        ..Mock::default()
    };
    m.add_pod("web-0", true, "Running");
    m.add_pod("web-1", true, "Running");
    m.add_pdb("web-pdb", 1, 2, 1, json!({}));
    // Both requests read the budget (allowed = 1) before either writes
    let (a, b) = tokio::join!(
        tokio::spawn({
            let m = m.clone();
            async move { evict(&m, "web-0").await }
        }),
        tokio::spawn({
            let m = m.clone();
            async move { evict(&m, "web-1").await }
        })
    );
    let results = [a.unwrap(), b.unwrap()];
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<u16> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(StatusError::code)
        .collect();
    assert_eq!(ok, 1);
    assert_eq!(refused, vec![429]);
    assert_eq!(m.state.lock().unwrap().pods.len(), 1);
    assert_eq!(
        m.pdb("web-pdb")
            .status
            .unwrap()
            .disrupted_pods
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_pod_covered_by_two_budgets_gets_500() {
    let m = Mock::default();
    m.add_pod("web-0", true, "Running");
    m.add_pdb("a", 1, 2, 1, json!({}));
    m.add_pdb("b", 1, 2, 1, json!({}));
    let err = evict(&m, "web-0").await.unwrap_err();
    assert_eq!(err.code(), 500);
    assert_eq!(
        err.0.message.as_deref(),
        Some(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
        )
    );
    assert!(m.pod("web-0").is_some());
}

#[tokio::test]
async fn a_budget_not_yet_observed_answers_429_retry_after_10() {
    let m = Mock::default();
    m.add_pod("web-0", true, "Running");
    m.add_pdb("web-pdb", 1, 2, 1, json!({}));
    m.state
        .lock()
        .unwrap()
        .pdbs
        .get_mut("web-pdb")
        .unwrap()
        .metadata
        .generation = Some(2);
    let err = evict(&m, "web-0").await.unwrap_err();
    assert_eq!(err.code(), 429);
    let d = err.0.details.clone().unwrap();
    assert_eq!(d.retry_after_seconds, Some(10));
    assert_eq!(
        d.causes.unwrap()[0].message.as_deref(),
        Some("The disruption budget web-pdb is still being processed by the server.")
    );
}

#[tokio::test]
async fn pending_and_terminal_pods_are_deleted_without_consulting_budgets() {
    let m = Mock::default();
    m.add_pod("web-0", false, "Pending");
    m.add_pod("web-1", false, "Failed");
    m.add_pdb("web-pdb", 0, 0, 2, json!({}));
    evict(&m, "web-0").await.unwrap();
    evict(&m, "web-1").await.unwrap();
    let s = m.state.lock().unwrap();
    assert!(s.pods.is_empty());
    // The Pending pod's delete carries the resourceVersion precondition; the terminal one does not
    assert!(
        s.deletes[0]
            .1
            .preconditions
            .as_ref()
            .unwrap()
            .resource_version
            .is_some()
    );
    assert!(s.deletes[1].1.preconditions.is_none());
    assert_eq!(
        s.pdbs["web-pdb"]
            .status
            .as_ref()
            .unwrap()
            .disruptions_allowed,
        0
    );
}

#[tokio::test]
async fn an_unready_pod_is_evicted_without_decrement_when_the_budget_is_healthy() {
    let m = Mock::default();
    m.add_pod("web-0", false, "Running");
    m.add_pdb("web-pdb", 0, 2, 2, json!({}));
    evict(&m, "web-0").await.unwrap();
    assert_eq!(m.pdb("web-pdb").status.unwrap().disrupted_pods, None);
}

#[tokio::test]
async fn always_allow_evicts_unready_pods_even_with_an_unhealthy_budget() {
    let m = Mock::default();
    m.add_pod("web-0", false, "Running");
    m.add_pdb("strict", 0, 1, 2, json!({}));
    assert_eq!(
        evict(&m, "web-0").await.unwrap_err().code(),
        429,
        "IfHealthyBudget refuses"
    );
    m.state.lock().unwrap().pdbs.clear();
    m.add_pdb(
        "lenient",
        0,
        1,
        2,
        json!({"unhealthyPodEvictionPolicy": "AlwaysAllow"}),
    );
    evict(&m, "web-0").await.unwrap();
    assert!(m.pod("web-0").is_none());
}

#[tokio::test]
async fn dry_run_neither_deletes_nor_records_the_disruption() {
    let m = Mock::default();
    m.add_pod("web-0", true, "Running");
    m.add_pdb("web-pdb", 1, 2, 1, json!({}));
    eviction::evict(
        &m,
        "default",
        "web-0",
        &eviction("web-0", json!({})),
        &["All".to_owned()],
    )
    .await
    .unwrap();
    assert!(m.pod("web-0").is_some());
    let st = m.pdb("web-pdb").status.unwrap();
    assert_eq!((st.disruptions_allowed, st.disrupted_pods), (1, None));
}

#[tokio::test]
async fn delete_options_of_the_eviction_are_honoured_and_a_name_mismatch_is_400() {
    let m = Mock::default();
    m.add_pod("web-0", true, "Running");
    let err = eviction::evict(&m, "default", "web-0", &eviction("other", json!({})), &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), 400);
    assert_eq!(
        err.0.message.as_deref(),
        Some("name in URL does not match name in Eviction object")
    );
    eviction::evict(
        &m,
        "default",
        "web-0",
        &eviction("web-0", json!({"gracePeriodSeconds": 7})),
        &[],
    )
    .await
    .unwrap();
    let s = m.state.lock().unwrap();
    assert_eq!(s.deletes[0].1.grace_period_seconds, Some(7));
}

#[tokio::test]
async fn a_stale_caller_precondition_is_a_conflict_not_retried() {
    let m = Mock::default();
    m.add_pod("web-0", true, "Running");
    let opts = json!({"preconditions": {"resourceVersion": "999"}});
    let err = eviction::evict(&m, "default", "web-0", &eviction("web-0", opts), &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), 409);
    assert!(m.pod("web-0").is_some());
}
