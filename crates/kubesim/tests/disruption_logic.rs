//! Given/when/then scenarios for the disruption controller's PDB status,
//! written from `pkg/controller/disruption/disruption.go`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubesim::testing::world;

use k8s_openapi::{
    api::{core::v1::Pod, policy::v1::PodDisruptionBudget},
    apimachinery::pkg::apis::meta::v1::{OwnerReference, Time},
    jiff::SignedDuration,
};
use kubesim::controllers::{Error, disruption};
use serde_json::json;
use world::{World, pdb, sts};

fn status(w: &World, name: &str) -> k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus {
    w.pdbs[name].status.clone().unwrap()
}

fn condition(w: &World, name: &str) -> (String, String) {
    let c = status(w, name)
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .unwrap();
    (c.status, c.reason)
}

fn ready_world(replicas: i32, spec: serde_json::Value) -> World {
    let mut w = World::new();
    w.add_set(sts("web", replicas, "nginx:1"));
    w.add_pdb(pdb("web-pdb", "web", spec));
    w.run_until(120, |w| w.all_ready("web", replicas));
    w.tick(1);
    w
}

#[test]
fn integer_min_available_counts_selected_pods_as_expected() {
    let w = ready_world(3, json!({"minAvailable": 2}));
    let st = status(&w, "web-pdb");
    assert_eq!(
        (st.expected_pods, st.desired_healthy, st.current_healthy),
        (3, 2, 3)
    );
    assert_eq!(st.disruptions_allowed, 1);
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(
        condition(&w, "web-pdb"),
        ("True".into(), "SufficientPods".into())
    );
}

#[test]
fn max_unavailable_percent_uses_the_controller_scale_rounded_up() {
    // 50% of 3 rounds up to 2 unavailable => desired 1
    let w = ready_world(3, json!({"maxUnavailable": "50%"}));
    let st = status(&w, "web-pdb");
    assert_eq!(
        (st.expected_pods, st.desired_healthy, st.disruptions_allowed),
        (3, 1, 2)
    );
}

#[test]
fn min_available_percent_rounds_up_against_the_scale() {
    let w = ready_world(3, json!({"minAvailable": "50%"}));
    let st = status(&w, "web-pdb");
    assert_eq!(
        (st.expected_pods, st.desired_healthy, st.disruptions_allowed),
        (3, 2, 1)
    );
}

#[test]
fn pdb_status_follows_readiness_changes() {
    let mut w = ready_world(3, json!({"maxUnavailable": 1}));
    assert_eq!(status(&w, "web-pdb").disruptions_allowed, 1);
    // When one pod goes unready
    w.unready.push("web-1".into());
    w.tick(1);
    w.tick(1);
    // Then it is no longer healthy and no disruption is allowed
    let st = status(&w, "web-pdb");
    assert_eq!(
        (
            st.current_healthy,
            st.desired_healthy,
            st.disruptions_allowed
        ),
        (2, 2, 0)
    );
    assert_eq!(
        condition(&w, "web-pdb"),
        ("False".into(), "InsufficientPods".into())
    );
    // When it recovers
    w.unready.clear();
    w.tick(1);
    w.tick(1);
    assert_eq!(status(&w, "web-pdb").disruptions_allowed, 1);
    assert_eq!(condition(&w, "web-pdb").0, "True");
}

#[test]
fn terminating_pods_are_not_healthy_but_still_expected_for_integer_min_available() {
    let mut w = ready_world(3, json!({"minAvailable": 2}));
    w.delete_pod("web-2");
    w.sync_pdbs();
    let st = status(&w, "web-pdb");
    assert_eq!(
        (st.expected_pods, st.current_healthy, st.disruptions_allowed),
        (3, 2, 0)
    );
}

#[test]
fn disrupted_pods_are_excluded_until_they_expire_after_two_minutes() {
    let mut w = ready_world(3, json!({"minAvailable": 1}));
    let now = w.now;
    let p = w.pdbs.get_mut("web-pdb").unwrap();
    p.status
        .as_mut()
        .unwrap()
        .disrupted_pods
        .get_or_insert_with(Default::default)
        .insert("web-0".into(), Time(now));
    w.sync_pdbs();
    let st = status(&w, "web-pdb");
    assert_eq!(st.current_healthy, 2, "a pod being evicted is not healthy");
    assert!(st.disrupted_pods.unwrap().contains_key("web-0"));
    // When the pod was never deleted and 2 minutes pass
    w.advance(121);
    let pods: Vec<Pod> = w.pods.values().cloned().collect();
    let out = disruption::sync(
        &w.pdbs["web-pdb"],
        &pods,
        &|_: &OwnerReference, _: &str| Ok(None),
        w.now,
    );
    assert_eq!(out.not_deleted, vec!["web-0".to_owned()]);
    assert!(out.status.is_some());
}

#[test]
fn recheck_is_scheduled_at_the_earliest_disrupted_pod_expiry() {
    let mut w = ready_world(2, json!({"minAvailable": 1}));
    let t = w.now;
    let p = w.pdbs.get_mut("web-pdb").unwrap();
    p.status.as_mut().unwrap().disrupted_pods = Some([("web-1".to_owned(), Time(t))].into());
    w.advance(20);
    let pods: Vec<Pod> = w.pods.values().cloned().collect();
    let out = disruption::sync(
        &w.pdbs["web-pdb"],
        &pods,
        &|_: &OwnerReference, _: &str| Ok(None),
        w.now,
    );
    assert_eq!(out.recheck_after, Some(SignedDuration::from_secs(100)));
}

#[test]
fn a_nil_selector_selects_nothing_and_an_empty_one_selects_everything() {
    let mut w = ready_world(2, json!({"minAvailable": 1}));
    let mut nil: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "nil", "namespace": "default", "generation": 1},
        "spec": {"minAvailable": 1}
    }))
    .unwrap();
    let mut empty = nil.clone();
    empty.metadata.name = Some("empty".into());
    empty.spec.as_mut().unwrap().selector = Some(Default::default());
    nil.metadata.uid = Some("n".into());
    w.pdbs.insert("nil".into(), nil);
    w.pdbs.insert("empty".into(), empty);
    w.sync_pdbs();
    assert_eq!(status(&w, "nil").expected_pods, 0);
    assert_eq!(status(&w, "nil").disruptions_allowed, 0);
    assert_eq!(status(&w, "empty").expected_pods, 2);
}

#[test]
fn an_unknown_controller_fails_safe_with_sync_failed() {
    let w = ready_world(2, json!({"maxUnavailable": 1}));
    let pods: Vec<Pod> = w.pods.values().cloned().collect();
    let out = disruption::sync(
        &w.pdbs["web-pdb"],
        &pods,
        &|_: &OwnerReference, _: &str| Ok(None),
        w.now,
    );
    let st = out.status.unwrap();
    assert_eq!(st.disruptions_allowed, 0);
    let c = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionAllowed")
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "SyncFailed")
    );
    assert!(matches!(out.error, Some(Error::NoControllerForPod(_))));
    assert!(c.message.contains("found no controllers for pod"));
}

#[test]
fn an_up_to_date_status_is_not_rewritten() {
    let w = ready_world(2, json!({"minAvailable": 1}));
    let pods: Vec<Pod> = w.pods.values().cloned().collect();
    let sets = w.sets.clone();
    let lookup = move |r: &OwnerReference, _: &str| {
        Ok(sets
            .values()
            .find(|s| s.metadata.uid.as_deref() == Some(r.uid.as_str()))
            .map(|s| (r.uid.clone(), s.spec.as_ref().unwrap().replicas.unwrap())))
    };
    let out = disruption::sync(&w.pdbs["web-pdb"], &pods, &lookup, w.now);
    assert_eq!(out.status, None);
}
