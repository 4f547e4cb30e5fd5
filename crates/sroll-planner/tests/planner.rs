//! Table-driven tests of `plan()`.

mod support;

use sroll_api::Phase;
use sroll_planner::{Action, ApplyKind, plan};
use support::*;

#[test]
fn a_missing_statefulset_is_created_frozen_at_partition_replicas() {
    let r = Rollout::test().replicas(4);
    let p = plan(&World::of(&r).no_set().observed());
    let Action::Apply { statefulset, kind } = &p.action else {
        panic!("expected apply, got {:?}", p.action);
    };
    assert_eq!(*kind, ApplyKind::Create);
    let spec = statefulset.spec.as_ref().expect("spec");
    let ru = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref());
    assert_eq!(ru.and_then(|r| r.partition), Some(4));
    assert_eq!(p.status.phase, Some(Phase::Pending));
    assert!(p.events.iter().any(|e| e.reason == "StatefulSetCreated"));
}

#[test]
fn a_quarter_rollout_evicts_the_highest_ordinals_within_the_budget() {
    let r = Rollout::test().replicas(10).percent(25).in_progress();
    let p = plan(&World::of(&r).pdb(2).observed());
    let Action::Evict { partition, pods } = &p.action else {
        panic!("expected evict, got {:?}", p.action);
    };
    assert_eq!(pods, &["web-9", "web-8"]);
    assert_eq!(partition.as_ref().map(|m| m.partition), Some(8));
    assert_eq!(p.status.target_updated_replicas, Some(3));
}
