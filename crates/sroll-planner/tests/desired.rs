//! The desired-StatefulSet builder and its hashes.

mod support;

use sroll_api::RolloutStrategy;
use sroll_planner::{
    ANNOTATION_SPEC_HASH, ANNOTATION_TEMPLATE_HASH, desired_statefulset, spec_hash, template_hash,
};
use support::*;

#[test]
fn the_desired_set_is_owned_named_and_namespaced_like_the_rollout() {
    let r = Rollout::test().build();
    let sts = desired_statefulset(&r, 3).expect("build");
    assert_eq!(sts.metadata.name.as_deref(), Some("web"));
    assert_eq!(sts.metadata.namespace.as_deref(), Some("default"));
    let owner = &sts.metadata.owner_references.as_ref().expect("owners")[0];
    assert_eq!(owner.kind, "StatefulsetRollout");
    assert_eq!(owner.api_version, "sroll.io/v1alpha1");
    assert_eq!(owner.uid, "uid-web");
    assert_eq!(owner.controller, Some(true));
    let spec = sts.spec.as_ref().expect("spec");
    let strategy = spec.update_strategy.as_ref().expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(
        strategy.rolling_update.as_ref().and_then(|r| r.partition),
        Some(3)
    );
    let annotations = sts.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(
        annotations.get(ANNOTATION_SPEC_HASH),
        Some(&spec_hash(&r).expect("hash"))
    );
    assert_eq!(
        annotations.get(ANNOTATION_TEMPLATE_HASH),
        Some(&template_hash(&r).expect("hash"))
    );
}

#[test]
fn on_delete_has_no_rolling_update_block() {
    let mut r = Rollout::test().build();
    r.spec.strategy = Some(RolloutStrategy::OnDelete);
    let sts = desired_statefulset(&r, 3).expect("build");
    let strategy = sts.spec.and_then(|s| s.update_strategy).expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("OnDelete"));
    assert_eq!(strategy.rolling_update, None);
}

#[test]
fn the_name_comes_from_the_embedded_set_and_parallel_is_the_default_policy() {
    let mut r = Rollout::test().build();
    r.spec.sts.metadata.name = Some("cache".into());
    r.spec.sts.spec.pod_management_policy = None;
    let sts = desired_statefulset(&r, 0).expect("build");
    assert_eq!(sts.metadata.name.as_deref(), Some("cache"));
    assert_eq!(
        sts.spec.and_then(|s| s.pod_management_policy).as_deref(),
        Some("Parallel")
    );
}

#[test]
fn hashes_ignore_the_partition_and_follow_the_template() {
    let r = Rollout::test().build();
    let a = desired_statefulset(&r, 1).expect("build");
    let b = desired_statefulset(&r, 9).expect("build");
    assert_eq!(a.metadata.annotations, b.metadata.annotations);
    let v3 = Rollout::test().image("registry.example.com/app:v3").build();
    assert_ne!(
        template_hash(&r).expect("hash"),
        template_hash(&v3).expect("hash")
    );
    assert_ne!(spec_hash(&r).expect("hash"), spec_hash(&v3).expect("hash"));
    // Replicas are not in the template: same template hash, different spec hash.
    let more = Rollout::test().replicas(20).build();
    assert_eq!(
        template_hash(&r).expect("hash"),
        template_hash(&more).expect("hash")
    );
    assert_ne!(
        spec_hash(&r).expect("hash"),
        spec_hash(&more).expect("hash")
    );
    // Stable across processes and versions: a fixed value for a fixed spec.
    assert_eq!(spec_hash(&r).expect("hash").len(), 16);
    assert_eq!(
        spec_hash(&r).expect("hash"),
        spec_hash(&r.clone()).expect("hash")
    );
}

#[test]
fn a_rollout_without_a_uid_cannot_own_a_set() {
    let mut r = Rollout::test().build();
    r.metadata.uid = None;
    assert!(desired_statefulset(&r, 0).is_err());
}
