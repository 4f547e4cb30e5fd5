//! Given/when/then scenarios for the StatefulSet controller's decisions,
//! written from `pkg/controller/statefulset/stateful_set_control.go` (v1.35)
//! and driven through a deterministic in-memory world (manual clock).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubesim::testing::world;

use serde_json::json;
use world::{World, sts, with};

fn names(w: &World) -> Vec<String> {
    w.pods.keys().cloned().collect()
}

#[test]
fn ordered_ready_creates_one_pod_per_sync_and_waits_for_readiness() {
    // Given an OrderedReady set of 3 and a kubelet that is not running
    let mut w = World::new();
    w.kubelet_enabled = false;
    w.add_set(sts("web", 3, "nginx:1"));
    // When the controller syncs repeatedly
    w.tick(1);
    w.tick(1);
    w.tick(1);
    // Then only web-0 exists: web-1 waits for web-0 to be Running and Ready
    assert_eq!(names(&w), vec!["web-0"]);
    // When the kubelet starts web-0
    w.kubelet_enabled = true;
    w.run_until(60, |w| w.pods.contains_key("web-1"));
    // Then web-1 was only created after web-0 became ready, and web-2 after web-1
    assert!(w.ready("web-0"));
    w.run_until(60, |w| w.all_ready("web", 3));
    assert_eq!(w.created, vec!["web-0", "web-1", "web-2"]);
}

#[test]
fn parallel_creates_every_pod_in_one_sync() {
    // Given a Parallel set of 5
    let mut w = World::new();
    w.kubelet_enabled = false;
    w.add_set(with(
        sts("web", 5, "nginx:1"),
        json!({"spec": {"podManagementPolicy": "Parallel"}}),
    ));
    // When the controller syncs once
    let out = w.sync_set("web");
    // Then all five pods are created at once, without waiting for readiness
    assert_eq!(w.pods.len(), 5);
    assert_eq!(
        out.status.replicas, 0,
        "placeholders are not counted in this sync"
    );
    w.sync_set("web");
    assert_eq!(w.status("web").replicas, 5);
}

#[test]
fn ordered_ready_scale_down_deletes_highest_ordinal_first_one_at_a_time() {
    let mut w = World::new();
    w.add_set(sts("web", 4, "nginx:1"));
    w.run_until(120, |w| w.all_ready("web", 4));
    // When scaled to 1
    w.edit_set("web", |s| s.spec.as_mut().unwrap().replicas = Some(1));
    w.sync_set("web");
    // Then only web-3 is terminating
    assert_eq!(w.deleted, vec!["web-3"]);
    w.sync_set("web");
    assert_eq!(w.deleted, vec!["web-3"], "blocked while web-3 terminates");
    // And the rest go in descending order once each is gone
    w.run_until(200, |w| w.pods.len() == 1);
    assert_eq!(w.deleted, vec!["web-3", "web-2", "web-1"]);
}

#[test]
fn parallel_scale_down_deletes_all_condemned_pods_at_once() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 4, "nginx:1"),
        json!({"spec": {"podManagementPolicy": "Parallel"}}),
    ));
    w.run_until(60, |w| w.all_ready("web", 4));
    w.edit_set("web", |s| s.spec.as_mut().unwrap().replicas = Some(1));
    w.sync_set("web");
    let mut d = w.deleted.clone();
    d.sort();
    assert_eq!(d, vec!["web-1", "web-2", "web-3"]);
}

#[test]
fn pods_get_stable_identity_labels_hostname_and_owner() {
    let mut w = World::new();
    w.add_set(sts("web", 1, "nginx:1"));
    w.sync_set("web");
    let pod = w.pod("web-0");
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    assert_eq!(labels["app"], "web");
    let rev = &labels["controller-revision-hash"];
    assert!(
        rev.starts_with("web-"),
        "label holds the revision name: {rev}"
    );
    assert!(w.revisions.contains_key(rev));
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));
    let owner = &pod.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(owner.kind, "StatefulSet");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
}

fn with_claims(policy: serde_json::Value) -> k8s_openapi::api::apps::v1::StatefulSet {
    with(
        sts("db", 2, "postgres:16"),
        json!({"spec": {
            "podManagementPolicy": "Parallel",
            "persistentVolumeClaimRetentionPolicy": policy,
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": {"tier": "storage"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }}),
    )
}

#[test]
fn claims_come_from_volume_claim_templates_named_template_set_ordinal() {
    let mut w = World::new();
    w.add_set(with_claims(json!({})));
    w.sync_set("db");
    let claim = &w.pvcs["data-db-1"];
    let labels = claim.metadata.labels.clone().unwrap();
    assert_eq!(labels["tier"], "storage");
    assert_eq!(labels["app"], "db", "selector labels are added");
    assert!(
        claim.metadata.owner_references.is_none(),
        "Retain/Retain: no owner"
    );
    let vol = &w.pod("db-1").spec.clone().unwrap().volumes.unwrap()[0];
    assert_eq!(vol.name, "data");
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-db-1"
    );
    // And deleting a pod keeps its claim, which the new pod reuses
    w.run_until(30, |w| w.all_ready("db", 2));
    let uid = w.pvcs["data-db-1"].metadata.uid.clone();
    w.delete_pod("db-1");
    w.run_until(60, |w| w.all_ready("db", 2));
    assert_eq!(w.pvcs["data-db-1"].metadata.uid, uid);
}

#[test]
fn retention_when_deleted_delete_makes_the_set_own_the_claims() {
    let mut w = World::new();
    w.add_set(with_claims(
        json!({"whenDeleted": "Delete", "whenScaled": "Retain"}),
    ));
    w.sync_set("db");
    let refs = w.pvcs["data-db-0"]
        .metadata
        .owner_references
        .clone()
        .unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].kind, "StatefulSet");
    assert_eq!(refs[0].uid, w.sets["db"].metadata.uid.clone().unwrap());
}

#[test]
fn retention_when_scaled_delete_gives_condemned_claims_a_pod_owner() {
    let mut w = World::new();
    w.add_set(with_claims(
        json!({"whenDeleted": "Retain", "whenScaled": "Delete"}),
    ));
    w.run_until(30, |w| w.all_ready("db", 2));
    assert!(w.pvcs["data-db-1"].metadata.owner_references.is_none());
    w.edit_set("db", |s| s.spec.as_mut().unwrap().replicas = Some(1));
    w.sync_set("db");
    let refs = w.pvcs["data-db-1"]
        .metadata
        .owner_references
        .clone()
        .unwrap();
    assert_eq!(refs[0].kind, "Pod");
    assert_eq!(refs[0].name, "db-1");
    assert!(w.pvcs["data-db-0"].metadata.owner_references.is_none());
}

#[test]
fn rolling_update_replaces_the_highest_ordinal_first_one_at_a_time() {
    let mut w = World::new();
    w.add_set(sts("web", 3, "nginx:1"));
    w.run_until(60, |w| w.all_ready("web", 3));
    let old = w.revision_of("web-0");
    // When the template changes
    w.set_image("web", "nginx:2");
    w.sync_set("web");
    // Then only web-2 is deleted in the first sync
    assert_eq!(w.deleted, vec!["web-2"]);
    w.run_until(300, |w| {
        w.deleted.len() == 3 && w.all_ready("web", 3) && w.revision_of("web-0") != old
    });
    assert_eq!(w.deleted, vec!["web-2", "web-1", "web-0"]);
}

#[test]
fn current_revision_advances_only_when_every_pod_is_updated_and_ready() {
    let mut w = World::new();
    w.add_set(sts("web", 3, "nginx:1"));
    w.run_until(60, |w| w.all_ready("web", 3));
    let first = w.status("web").current_revision.unwrap();
    w.set_image("web", "nginx:2");
    let mut saw_partial = false;
    for _ in 0..300 {
        w.tick(1);
        let st = w.status("web");
        let update = st.update_revision.clone().unwrap();
        if st.updated_replicas.unwrap_or(0) < 3 || st.ready_replicas.unwrap_or(0) < 3 {
            assert_eq!(st.current_revision.as_deref(), Some(first.as_str()));
            if st.updated_replicas.unwrap_or(0) > 0 {
                saw_partial = true;
            }
        } else {
            assert_eq!(st.current_revision.as_deref(), Some(update.as_str()));
            assert_eq!(st.current_replicas, Some(3));
            break;
        }
    }
    assert!(saw_partial);
    assert_ne!(w.status("web").current_revision.unwrap(), first);
}

#[test]
fn partition_updates_only_ordinals_at_or_above_it() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 4, "nginx:1"),
        json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}}),
    ));
    w.run_until(60, |w| w.all_ready("web", 4));
    let old = w.revision_of("web-0");
    w.set_image("web", "nginx:2");
    w.run_until(300, |w| w.deleted.len() == 2 && w.all_ready("web", 4));
    for _ in 0..20 {
        w.tick(1);
    }
    let st = w.status("web");
    let new = st.update_revision.clone().unwrap();
    assert_eq!(w.revision_of("web-0"), old);
    assert_eq!(w.revision_of("web-1"), old);
    assert_eq!(w.revision_of("web-2"), new);
    assert_eq!(w.revision_of("web-3"), new);
    assert_eq!(st.updated_replicas, Some(2));
    assert_eq!(
        st.current_revision.as_deref(),
        Some(old.as_str()),
        "never completes with a partition"
    );
}

#[test]
fn a_killed_pod_below_the_partition_comes_back_at_the_current_revision() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 3, "nginx:1"),
        json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}}),
    ));
    w.run_until(60, |w| w.all_ready("web", 3));
    let old = w.revision_of("web-0");
    w.set_image("web", "nginx:2");
    w.run_until(300, |w| w.deleted.len() == 1 && w.all_ready("web", 3));
    let uid = w.pod("web-0").metadata.uid.clone();
    // When web-0 (below the partition) is killed
    w.delete_pod("web-0");
    w.run_until(120, |w| {
        w.pods.get("web-0").is_some_and(|p| p.metadata.uid != uid) && w.all_ready("web", 3)
    });
    // Then it is re-created from the old template
    assert_eq!(w.revision_of("web-0"), old);
    let image = w.pod("web-0").spec.clone().unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("nginx:1"));
}

#[test]
fn on_delete_never_deletes_pods_for_an_update() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 3, "nginx:1"),
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    ));
    w.run_until(60, |w| w.all_ready("web", 3));
    w.set_image("web", "nginx:2");
    for _ in 0..30 {
        w.tick(1);
    }
    assert!(w.deleted.is_empty());
    let st = w.status("web");
    assert_eq!(st.updated_replicas, None);
    assert_eq!(st.current_replicas, Some(3));
    assert_ne!(st.current_revision, st.update_revision);
}

#[test]
fn on_delete_version_leak_a_deleted_pod_comes_back_at_the_update_revision() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 3, "nginx:1"),
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    ));
    w.run_until(60, |w| w.all_ready("web", 3));
    w.set_image("web", "nginx:2");
    w.tick(1);
    // When web-0 is deleted for an unrelated reason (eviction, node loss)
    w.delete_pod("web-0");
    w.run_until(120, |w| w.created.len() == 4 && w.all_ready("web", 3));
    // Then it comes back with the NEW template, not the current revision
    let st = w.status("web");
    assert_eq!(Some(w.revision_of("web-0")), st.update_revision);
    assert_eq!(
        w.pod("web-0").spec.clone().unwrap().containers[0]
            .image
            .as_deref(),
        Some("nginx:2")
    );
    assert_eq!(st.updated_replicas, Some(1));
    assert_eq!(st.current_replicas, Some(2));
}

#[test]
fn on_delete_current_revision_never_advances_even_when_every_pod_is_updated() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 2, "nginx:1"),
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    ));
    w.run_until(60, |w| w.all_ready("web", 2));
    let first = w.status("web").current_revision;
    w.set_image("web", "nginx:2");
    w.tick(1);
    w.delete_pod("web-0");
    w.delete_pod("web-1");
    w.run_until(120, |w| w.created.len() == 4 && w.all_ready("web", 2));
    let st = w.status("web");
    assert_eq!(st.updated_replicas, Some(2));
    assert_eq!(
        st.current_revision, first,
        "v1.35: completeRollingUpdate is RollingUpdate-only"
    );
    assert_eq!(st.current_replicas, None);
}

#[test]
fn max_unavailable_rolls_several_parallel_pods_at_once() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 5, "nginx:1"),
        json!({"spec": {"podManagementPolicy": "Parallel",
                        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}}),
    ));
    w.run_until(60, |w| w.all_ready("web", 5));
    w.set_image("web", "nginx:2");
    w.sync_set("web");
    // Then the two highest ordinals go at once
    assert_eq!(w.deleted, vec!["web-4", "web-3"]);
    w.sync_set("web");
    assert_eq!(w.deleted.len(), 2, "two unavailable already: nothing more");
    w.run_until(300, |w| {
        w.status("web").current_revision == w.status("web").update_revision && w.all_ready("web", 5)
    });
    assert_eq!(w.deleted.len(), 5);
}

#[test]
fn max_unavailable_percentage_rounds_down_with_a_floor_of_one() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 3, "nginx:1"),
        json!({"spec": {"podManagementPolicy": "Parallel",
                        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}}}),
    ));
    w.run_until(60, |w| w.all_ready("web", 3));
    w.set_image("web", "nginx:2");
    w.sync_set("web");
    assert_eq!(w.deleted, vec!["web-2"], "50% of 3 rounds down to 1");
}

#[test]
fn rollback_reuses_the_old_controller_revision_and_bumps_its_number() {
    let mut w = World::new();
    w.add_set(sts("web", 2, "nginx:1"));
    w.run_until(60, |w| w.all_ready("web", 2));
    let r1 = w.status("web").update_revision.unwrap();
    w.set_image("web", "nginx:2");
    w.tick(1);
    w.run_until(200, |w| {
        w.status("web").current_revision == w.status("web").update_revision && w.all_ready("web", 2)
    });
    let r2 = w.status("web").update_revision.unwrap();
    assert_ne!(r1, r2);
    // When the template goes back
    w.set_image("web", "nginx:1");
    w.sync_set("web");
    // Then no third revision exists; the first is reused with revision 3
    assert_eq!(w.revisions.len(), 2);
    assert_eq!(
        w.status("web").update_revision.as_deref(),
        Some(r1.as_str())
    );
    assert_eq!(w.revisions[&r1].revision, 3);
    assert_eq!(w.revisions[&r2].revision, 2);
}

#[test]
fn scaling_or_changing_the_strategy_does_not_create_a_revision() {
    let mut w = World::new();
    w.add_set(sts("web", 2, "nginx:1"));
    w.sync_set("web");
    w.edit_set("web", |s| {
        let spec = s.spec.as_mut().unwrap();
        spec.replicas = Some(5);
        spec.min_ready_seconds = Some(3);
    });
    w.sync_set("web");
    assert_eq!(w.revisions.len(), 1);
    // But a template label does
    w.edit_set("web", |s| {
        let labels = s
            .spec
            .as_mut()
            .unwrap()
            .template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap();
        labels.insert("extra".into(), "x".into());
    });
    w.sync_set("web");
    assert_eq!(w.revisions.len(), 2);
}

#[test]
fn history_is_truncated_to_revision_history_limit_keeping_live_revisions() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 1, "nginx:0"),
        json!({"spec": {"revisionHistoryLimit": 2}}),
    ));
    w.run_until(30, |w| w.all_ready("web", 1));
    for i in 1..=5 {
        w.set_image("web", &format!("nginx:{i}"));
        w.tick(1);
        w.run_until(200, |w| {
            w.status("web").current_revision == w.status("web").update_revision
                && w.all_ready("web", 1)
        });
    }
    w.sync_set("web");
    // live: current == update; history: at most 2 more
    assert_eq!(
        w.revisions.len(),
        3,
        "{:?}",
        w.revisions.keys().collect::<Vec<_>>()
    );
    let mut numbers: Vec<i64> = w.revisions.values().map(|r| r.revision).collect();
    numbers.sort();
    assert_eq!(numbers, vec![4, 5, 6]);
}

#[test]
fn terminating_pods_count_in_replicas_but_not_in_current_replicas() {
    let mut w = World::new();
    w.add_set(sts("web", 2, "nginx:1"));
    w.run_until(60, |w| w.all_ready("web", 2));
    w.delete_pod("web-1");
    w.sync_set("web");
    let st = w.status("web");
    assert_eq!(st.replicas, 2);
    assert_eq!(
        st.ready_replicas,
        Some(2),
        "still Running and Ready while terminating"
    );
    assert_eq!(st.current_replicas, Some(1));
    assert_eq!(st.updated_replicas, Some(1));
}

#[test]
fn min_ready_seconds_gates_ordered_creation_and_available_replicas() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 2, "nginx:1"),
        json!({"spec": {"minReadySeconds": 10}}),
    ));
    w.run_until(30, |w| w.ready("web-0"));
    let ready_at = w.now;
    w.run_until(60, |w| w.pods.contains_key("web-1"));
    assert!(
        w.now.duration_since(ready_at).as_secs() >= 10,
        "web-1 waited for web-0 to be available"
    );
    let out = w.sync_set("web");
    assert!(
        out.requeue_after.is_some(),
        "not all available: requeue after minReadySeconds"
    );
    w.run_until(60, |w| w.status("web").available_replicas == Some(2));
}

#[test]
fn an_unready_pod_blocks_ordered_rolling_updates() {
    let mut w = World::new();
    w.add_set(sts("web", 3, "nginx:1"));
    w.run_until(60, |w| w.all_ready("web", 3));
    w.unready.push("web-0".into());
    w.run_until(10, |w| !w.ready("web-0"));
    w.set_image("web", "nginx:2");
    for _ in 0..20 {
        w.tick(1);
    }
    assert!(
        w.deleted.is_empty(),
        "web-0 unavailable blocks processReplica for everything after it"
    );
    w.unready.clear();
    w.run_until(200, |w| w.deleted.len() == 3);
}

#[test]
fn a_stuck_unready_update_halts_an_ordered_rollout() {
    let mut w = World::new();
    w.add_set(sts("web", 3, "nginx:1"));
    w.run_until(60, |w| w.all_ready("web", 3));
    w.set_image("web", "nginx:2-unready");
    for _ in 0..120 {
        w.tick(1);
    }
    assert_eq!(
        w.deleted,
        vec!["web-2"],
        "the broken web-2 never becomes ready"
    );
    assert_eq!(w.status("web").updated_replicas, Some(1));
}

#[test]
fn a_failed_pod_is_deleted_and_recreated() {
    let mut w = World::new();
    w.add_set(sts("web", 1, "nginx:1"));
    w.run_until(30, |w| w.all_ready("web", 1));
    let uid = w.pod("web-0").metadata.uid.clone();
    w.pods
        .get_mut("web-0")
        .unwrap()
        .status
        .as_mut()
        .unwrap()
        .phase = Some("Failed".into());
    w.sync_set("web");
    assert_eq!(w.deleted, vec!["web-0"]);
    assert!(
        !w.pods.contains_key("web-0"),
        "terminal pods are removed at once"
    );
    w.run_until(30, |w| {
        w.pods.get("web-0").is_some_and(|p| p.metadata.uid != uid)
    });
}

#[test]
fn orphaned_pods_are_adopted_by_a_new_set_with_the_same_name() {
    let mut w = World::new();
    w.add_set(sts("web", 2, "nginx:1"));
    w.run_until(60, |w| w.all_ready("web", 2));
    // Given the set was deleted with propagationPolicy=Orphan
    w.sets.remove("web");
    for p in w.pods.values_mut() {
        p.metadata.owner_references = None;
    }
    // When a new set with the same name and selector appears
    w.add_set(sts("web", 2, "nginx:1"));
    let uid = w.sets["web"].metadata.uid.clone().unwrap();
    w.sync_set("web");
    // Then it adopts the running pods instead of re-creating them
    assert_eq!(w.created.len(), 2);
    for p in w.pods.values() {
        assert_eq!(p.metadata.owner_references.clone().unwrap()[0].uid, uid);
    }
}

#[test]
fn a_set_adopts_only_when_its_live_copy_is_the_same_set_and_not_being_deleted() {
    // Given a cached set that has not seen its own deletion yet
    let mut w = World::new();
    w.add_set(sts("web", 2, "nginx:1"));
    let cached = w.sets["web"].clone();
    // Then adoption is allowed against an identical live copy
    assert!(kubesim::controllers::statefulset::can_adopt(&cached, Some(&cached)).is_ok());
    // And refused when the live copy carries a deletionTimestamp (orphaning delete)
    let mut deleting = cached.clone();
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
    let e = kubesim::controllers::statefulset::can_adopt(&cached, Some(&deleting)).unwrap_err();
    assert!(e.to_string().contains("has just been deleted at"), "{e}");
    // And refused when the set was replaced by another with the same name, or is gone
    let mut replaced = cached.clone();
    replaced.metadata.uid = Some("another".into());
    let e = kubesim::controllers::statefulset::can_adopt(&cached, Some(&replaced)).unwrap_err();
    assert!(e.to_string().contains("is gone: got uid another"), "{e}");
    assert!(kubesim::controllers::statefulset::can_adopt(&cached, None).is_err());
}
