//! Table-driven tests of `plan()`: one behaviour of issue 5 per test, each set up with the fluent
//! fixtures of `support`.

mod support;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sroll_api::{Phase, condition_types as ct};
use sroll_planner::{Action, ApplyKind, Executed, Plan, plan, settle};
use support::*;

fn condition<'a>(p: &'a Plan, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", p.status.conditions));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

fn evicted(p: &Plan) -> (Vec<String>, Option<i32>) {
    match &p.action {
        Action::Evict { partition, pods } => {
            (pods.clone(), partition.as_ref().map(|m| m.partition))
        }
        other => panic!(
            "expected an eviction, got {other:?} ({:?})",
            p.status.reason
        ),
    }
}

fn has_event(p: &Plan, reason: &str) -> bool {
    p.events.iter().any(|e| e.reason == reason)
}

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
    assert_eq!(p.status.deleted, None);
    assert!(has_event(&p, "StatefulSetCreated"));
    assert_eq!(p.requeue_after, Some(sroll_planner::REQUEUE_SOON));
}

#[test]
fn a_statefulset_deleted_under_the_rollout_is_recreated_and_recorded() {
    let r = Rollout::test().in_progress();
    let p = plan(&World::of(&r).no_set().observed());
    assert!(matches!(
        p.action,
        Action::Apply {
            kind: ApplyKind::Recreate,
            ..
        }
    ));
    assert_eq!(p.status.deleted, Some(true));
    assert_eq!(condition(&p, ct::DEGRADED).1, "StatefulSetDeleted");
    assert!(has_event(&p, "StatefulSetDeleted"));
}

#[test]
fn a_recreated_set_without_a_pdb_still_names_the_deletion_in_the_degraded_condition() {
    // The set was recreated (status.deleted) and its pods are coming back; there is no PDB, which
    // is a Degraded cause too: the deletion, the rarer and graver one, names the reason.
    let r = Rollout::test().status(|s| s.deleted = Some(true));
    let p = plan(&World::of(&r).no_pdb().missing(0..3).observed());
    assert_eq!(p.status.deleted, Some(true));
    let (status, reason, message) = condition(&p, ct::DEGRADED);
    assert_eq!((status, reason), ("True", "StatefulSetDeleted"));
    assert!(message.contains("one pod at a time"), "{message}");
}

#[test]
fn an_invalid_spec_applies_nothing_and_lists_every_field_error() {
    let mut r = Rollout::test().image("");
    r.0.spec.sts.spec.selector.match_labels = Some([("app".to_owned(), "other".to_owned())].into());
    let p = plan(&World::of(&r).observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Blocked));
    let (status, reason, message) = condition(&p, ct::SPEC_VALID);
    assert_eq!((status, reason), ("False", "InvalidSpec"));
    assert!(message.contains("containers[0].image"), "{message}");
    assert!(message.contains("selector.matchLabels.app"), "{message}");
    assert_eq!(p.requeue_after, None);
    assert!(has_event(&p, "InvalidSpec"));
}

#[test]
fn a_statefulset_not_owned_is_left_alone_without_adopt_existing() {
    let r = Rollout::test();
    let p = plan(&World::of(&r).set(|l| l.owned_by_rollout = false).observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Blocked));
    let (status, reason, message) = condition(&p, ct::SPEC_VALID);
    assert_eq!((status, reason), ("False", "StatefulSetNotOwned"));
    assert!(message.contains("adoptExisting"), "{message}");
}

#[test]
fn adopt_existing_takes_over_an_unowned_statefulset_frozen() {
    let r = Rollout::test().adopt();
    let w = World::of(&r).set(|l| {
        l.owned_by_rollout = false;
        l.spec_hash = None;
        l.template_hash = None;
        l.partition = None;
    });
    let p = plan(&w.observed());
    let Action::Apply { statefulset, kind } = &p.action else {
        panic!("expected apply, got {:?}", p.action);
    };
    assert_eq!(*kind, ApplyKind::Adopt);
    let owner = &statefulset
        .metadata
        .owner_references
        .as_ref()
        .expect("owner")[0];
    assert_eq!(owner.uid, "uid-web");
    let partition = statefulset
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition);
    assert_eq!(partition, Some(10));
}

#[test]
fn a_statefulset_controlled_by_someone_else_is_never_adopted() {
    let r = Rollout::test().adopt();
    let w = World::of(&r).set(|l| {
        l.owned_by_rollout = false;
        l.owned_by_other = true;
    });
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(condition(&p, ct::SPEC_VALID).1, "StatefulSetNotOwned");
}

#[test]
fn an_immutable_field_change_is_reported_naming_the_field() {
    let mut r = Rollout::test().image("registry.example.com/app:v3");
    r.0.spec.sts.spec.service_name = Some("web-headless".into());
    let w = World::of(&Rollout::test()).set(|l| l.service_name = "web".into());
    let mut w = w;
    w.rollout = r.build();
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    let (status, reason, message) = condition(&p, ct::SPEC_VALID);
    assert_eq!((status, reason), ("False", "ImmutableFieldChanged"));
    assert!(message.contains("serviceName"), "{message}");
    assert!(!message.contains("selector"), "{message}");
}

#[test]
fn recreate_on_immutable_change_deletes_the_set_with_orphaned_pods() {
    let mut r = Rollout::test().recreate_on_immutable_change();
    r.0.spec.sts.spec.pod_management_policy = Some("OrderedReady".into());
    let mut w = World::of(&Rollout::test());
    w.rollout = r.clone().in_progress().build();
    let p = plan(&w.observed());
    assert_eq!(
        p.action,
        Action::RecreateOrphan {
            name: "web".into(),
            uid: "uid-sts".into()
        }
    );
    assert_eq!(p.status.statefulset_name, None);
    // The create that follows is not a deletion under the rollout.
    let mut next = World::of(&Rollout::test()).no_set();
    next.rollout = r.build();
    next.rollout.status = Some(p.status.clone());
    let p2 = plan(&next.observed());
    assert!(matches!(
        p2.action,
        Action::Apply {
            kind: ApplyKind::Create,
            ..
        }
    ));
    assert_eq!(p2.status.deleted, None);
}

#[test]
fn a_new_pod_template_is_applied_with_the_partition_frozen_at_replicas() {
    let r = Rollout::test()
        .image("registry.example.com/app:v3")
        .in_progress();
    let w = World::of(&r)
        .partition(7)
        .set(|l| l.template_hash = Some("old".into()));
    let w = w.set(|l| l.spec_hash = Some("old".into()));
    let p = plan(&w.observed());
    let Action::Apply { statefulset, kind } = &p.action else {
        panic!("expected apply, got {:?}", p.action);
    };
    assert_eq!(*kind, ApplyKind::Update);
    let partition = statefulset
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition);
    assert_eq!(partition, Some(10));
    assert!(has_event(&p, "StatefulSetUpdated"));
    assert_eq!(p.status.statefulset_spec_current, Some(false));
}

#[test]
fn a_change_outside_the_template_keeps_the_partition() {
    let r = Rollout::test().in_progress();
    let w = World::of(&r)
        .partition(7)
        .set(|l| l.spec_hash = Some("old".into()));
    let p = plan(&w.observed());
    let Action::Apply { statefulset, .. } = &p.action else {
        panic!("expected apply, got {:?}", p.action);
    };
    let partition = statefulset
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition);
    assert_eq!(partition, Some(7));
}

#[test]
fn nothing_moves_until_the_statefulset_controller_observed_the_generation() {
    let r = Rollout::test().status(|s| s.phase = Some(Phase::InProgress));
    let p = plan(
        &World::of(&r)
            .set(|l| l.observed_generation = Some(2))
            .observed(),
    );
    assert_eq!(p.action, Action::Wait);
    assert_eq!(
        p.status.phase,
        Some(Phase::InProgress),
        "waiting for the StatefulSet controller is no step back to RolloutPending"
    );
    assert_eq!(
        condition(&p, ct::PROGRESSING).1,
        "WaitingForStatefulSetController"
    );
    assert_eq!(p.requeue_after, Some(sroll_planner::REQUEUE_SOON));
    assert!(p.notify.triggers.is_empty(), "{:?}", p.notify);
}

#[test]
fn a_quarter_rollout_evicts_the_highest_ordinals_within_the_budget() {
    let r = Rollout::test().replicas(10).percent(25).in_progress();
    let p = plan(&World::of(&r).pdb(2).observed());
    let (pods, partition) = evicted(&p);
    assert_eq!(pods, ["web-9", "web-8"]);
    assert_eq!(partition, Some(8));
    assert_eq!(p.status.target_updated_replicas, Some(3));
    assert_eq!(p.status.phase, Some(Phase::InProgress));
    assert_eq!(
        p.status.reason.as_deref(),
        Some("evicting 2 pods (web-9, web-8); 0 of 3 target pods updated")
    );
    assert_eq!(
        p.events
            .iter()
            .filter(|e| e.reason == "PodsEvicted")
            .count(),
        1
    );
    assert_eq!(p.status.last_eviction_time, Some(micro(T0)));
}

#[test]
fn the_partition_is_lowered_to_exactly_cover_the_next_batch() {
    let r = Rollout::test().percent(50).in_progress();
    let w = World::of(&r).partition(8).pods(8..10, NEW, Ready).pdb(2);
    let (pods, partition) = evicted(&plan(&w.observed()));
    assert_eq!(pods, ["web-7", "web-6"]);
    assert_eq!(partition, Some(6));
}

#[test]
fn the_batch_never_exceeds_what_percent_still_needs() {
    let r = Rollout::test().percent(30).in_progress();
    let w = World::of(&r).partition(8).pods(8..10, NEW, Ready).pdb(5);
    let (pods, partition) = evicted(&plan(&w.observed()));
    assert_eq!(pods, ["web-7"]);
    assert_eq!(partition, Some(7));
}

#[test]
fn reaching_the_target_is_done_with_no_action_and_no_requeue() {
    let r = Rollout::test().percent(25).in_progress();
    let w = World::of(&r).partition(7).pods(7..10, NEW, Ready);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Done));
    assert_eq!(p.requeue_after, None);
    assert_eq!(p.status.reconcile_after, None);
    assert_eq!(p.status.percent_deployed, Some(30));
    assert_eq!(p.status.updated_replicas, Some(3));
    assert_eq!(condition(&p, ct::READY).0, "True");
    assert!(has_event(&p, "RolloutDone"));
}

#[test]
fn a_done_rollout_holds_without_action_until_the_spec_changes() {
    let r = Rollout::test()
        .percent(25)
        .status(|s| s.phase = Some(Phase::Done));
    // Even with pods to move (someone changed the world), a finished rollout does not re-run.
    let p = plan(&World::of(&r).pdb(3).observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Done));
    assert_eq!(p.requeue_after, None);
    assert!(p.events.is_empty());
    // A new generation (percent raised) runs again.
    let r2 = r.clone().percent(50).generation(2);
    let p2 = plan(&World::of(&r2).pdb(3).observed());
    assert!(matches!(p2.action, Action::Evict { .. }));
}

#[test]
fn lowering_percent_never_moves_updated_pods_back() {
    let r = Rollout::test().percent(25).in_progress();
    let w = World::of(&r).partition(5).pods(5..10, NEW, Ready).pdb(3);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Done));
    assert_eq!(p.status.updated_replicas, Some(5));
    assert_eq!(p.status.percent_deployed, Some(50));
}

#[test]
fn a_paused_rollout_evicts_nothing_and_says_so() {
    let r = Rollout::test()
        .percent(50)
        .paused()
        .status(|s| s.phase = Some(Phase::InProgress));
    let w = World::of(&r).partition(8).pods(8..10, NEW, Ready).pdb(5);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Paused));
    assert_eq!(p.status.paused, Some(true));
    assert_eq!(condition(&p, ct::PAUSED).0, "True");
    assert_eq!(condition(&p, ct::PROGRESSING).0, "Unknown");
    assert!(has_event(&p, "RolloutPaused"));
    assert_eq!(p.requeue_after, None);
}

#[test]
fn resuming_a_paused_rollout_continues_and_records_it() {
    let r = Rollout::test().percent(50).generation(2).status(|s| {
        s.phase = Some(Phase::Paused);
        s.paused = Some(true);
        s.observed_generation = Some(1);
    });
    let w = World::of(&r).partition(8).pods(8..10, NEW, Ready).pdb(1);
    let p = plan(&w.observed());
    let (pods, _) = evicted(&p);
    assert_eq!(pods, ["web-7"]);
    assert!(has_event(&p, "RolloutResumed"));
    assert_eq!(p.status.paused, Some(false));
}

#[test]
fn without_a_pdb_one_pod_moves_at_a_time_and_a_condition_says_why() {
    let r = Rollout::test().in_progress();
    let w = World::of(&r).no_pdb();
    let p = plan(&w.observed());
    assert_eq!(evicted(&p).0, ["web-9"]);
    assert_eq!(condition(&p, ct::DEGRADED).1, "NoDisruptionBudget");
    // While that pod is away, nothing else moves.
    let w = w.partition(9).pods(9..10, NEW, NotReady);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert!(
        p.status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("web-9")),
        "{:?}",
        p.status.reason
    );
}

#[test]
fn more_than_one_pdb_blocks_as_the_eviction_api_would() {
    let r = Rollout::test().in_progress();
    let p = plan(&World::of(&r).extra_pdb("web-2").observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Blocked));
    assert_eq!(condition(&p, ct::DEGRADED).1, "MultipleDisruptionBudgets");
    assert_eq!(p.requeue_after, None);
}

#[test]
fn a_stale_pdb_is_waited_for() {
    let r = Rollout::test().in_progress();
    let mut w = World::of(&r).pdb(3);
    w.pdbs[0].stale = true;
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert!(
        p.status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("disruption controller"))
    );
}

#[test]
fn max_unavailable_caps_the_batch_and_counts_pods_in_flight() {
    let r = Rollout::test()
        .max_unavailable(IntOrString::String("20%".into()))
        .in_progress();
    let p = plan(&World::of(&r).pdb(5).observed());
    assert_eq!(evicted(&p).0, ["web-9", "web-8"]);
    let w = World::of(&r).pdb(5).partition(9).pods(9..10, NEW, NotReady);
    assert_eq!(evicted(&plan(&w.observed())).0, ["web-8"]);
}

#[test]
fn disruptions_allowed_is_not_reduced_again_by_pods_in_flight() {
    // The PDB already discounts the two unhealthy pods: it still allows two more.
    let r = Rollout::test().in_progress();
    let w = World::of(&r).partition(8).pods(8..10, NEW, NotReady).pdb(2);
    assert_eq!(evicted(&plan(&w.observed())).0, ["web-7", "web-6"]);
}

#[test]
fn a_lagging_pdb_status_does_not_outrun_the_pods() {
    // 10 pods, the PDB keeps 8 healthy. Two pods are gone (evicted, or deleted by the StatefulSet
    // controller, which the eviction API never counted), but the disruption controller has not
    // resynced: its status still allows 1. The pods leave nothing.
    let r = Rollout::test().in_progress();
    let w = World::of(&r)
        .partition(8)
        .pods(8..10, NEW, NotReady)
        .pdb_counting(1, 8);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    let reason = p.status.reason.unwrap_or_default();
    assert!(
        reason.contains("waiting for PodDisruptionBudget web"),
        "{reason}"
    );
    // Once one of them is Ready again the pods allow one more, and the status agrees.
    let w = World::of(&r)
        .partition(8)
        .pods(8..9, NEW, NotReady)
        .pods(9..10, NEW, Ready)
        .ready_since(9, T0 - 1)
        .pdb_counting(1, 8);
    assert_eq!(evicted(&plan(&w.observed())).0, ["web-7"]);
    // A status that counts the same pods as the cluster is used as it is.
    let w = World::of(&r)
        .partition(8)
        .pods(8..10, NEW, NotReady)
        .pdb_counting(0, 6);
    assert_eq!(plan(&w.observed()).action, Action::Wait);
    let w = World::of(&r)
        .partition(8)
        .pods(8..10, NEW, NotReady)
        .pdb_counting(2, 6);
    assert_eq!(evicted(&plan(&w.observed())).0, ["web-7", "web-6"]);
}

#[test]
fn pacing_waits_exactly_the_remaining_interval() {
    let r = Rollout::test()
        .interval(10)
        .status(|s| s.last_eviction_time = Some(micro(T0 - 3)));
    let w = World::of(&r).partition(9).pods(9..10, NEW, Ready).pdb(5);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(7)));
    assert_eq!(p.status.reconcile_after, Some(time(T0 + 7)));
}

#[test]
fn pacing_moves_one_pod_per_interval() {
    let r = Rollout::test()
        .interval(10)
        .status(|s| s.last_eviction_time = Some(micro(T0 - 30)));
    let w = World::of(&r).partition(9).pods(9..10, NEW, Ready).pdb(5);
    assert_eq!(evicted(&plan(&w.observed())).0, ["web-8"]);
}

#[test]
fn a_rollback_to_the_previous_revision_is_not_paced() {
    // Pods were moving OLD → NEW; the template went back to OLD: update = current = previous.
    let r = Rollout::test().interval(60).status(|s| {
        s.update_revision = Some(NEW.into());
        s.previous_revision = Some(OLD.into());
        s.last_eviction_time = Some(micro(T0 - 1));
    });
    let w = World::of(&r)
        .revisions(OLD, OLD)
        .partition(10)
        .pods(7..10, NEW, Ready)
        .pdb(3);
    let p = plan(&w.observed());
    let (pods, partition) = evicted(&p);
    assert_eq!(pods, ["web-9", "web-8", "web-7"]);
    // Every other pod already runs the rollback revision: the partition can go to 0.
    assert_eq!(partition, Some(0));
    assert!(has_event(&p, "RollbackStarted"));
    assert_eq!(p.status.previous_revision.as_deref(), Some(OLD));
    assert_eq!(p.status.target_updated_replicas, Some(10));
}

#[test]
fn a_new_update_revision_starts_a_rollout_and_records_the_previous_revision() {
    let r = Rollout::test().status(|s| {
        s.update_revision = Some(OLD.into());
        s.current_revision = Some(OLD.into());
        s.previous_revision = None;
        s.phase = Some(Phase::Done);
        s.observed_generation = Some(0);
    });
    let p = plan(&World::of(&r).observed());
    assert!(has_event(&p, "RolloutStarted"));
    assert_eq!(p.status.previous_revision.as_deref(), Some(OLD));
    assert_eq!(p.status.update_revision.as_deref(), Some(NEW));
    assert_eq!(p.status.last_progress_time, Some(time(T0)));
}

#[test]
fn broken_pods_are_replaced_at_once_without_spending_budget() {
    // A broken revision left pods 8 and 9 never Ready; a fixed spec (NEW) arrived.
    let r = Rollout::test().in_progress();
    let w = World::of(&r).pods(8..10, "web-broken", NotReady).pdb(0);
    let p = plan(&w.observed());
    match &p.action {
        Action::DeletePods { partition, pods } => {
            assert_eq!(pods, &["web-9", "web-8"]);
            assert_eq!(partition.as_ref().map(|m| m.partition), Some(8));
        }
        other => panic!("expected a delete, got {other:?}"),
    }
    assert!(has_event(&p, "BrokenPodsReplaced"));
}

#[test]
fn no_progress_past_the_deadline_fails_naming_the_stuck_pods() {
    let r = Rollout::test().deadline(600).status(|s| {
        s.phase = Some(Phase::InProgress);
        s.last_progress_time = Some(time(T0 - 700));
        s.last_eviction_time = Some(micro(T0 - 650));
    });
    let w = World::of(&r).partition(8).pods(8..10, NEW, NotReady).pdb(0);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Failed));
    let reason = p.status.reason.clone().unwrap_or_default();
    assert!(reason.contains("web-9, web-8"), "{reason}");
    assert_eq!(p.requeue_after, None);
    assert!(has_event(&p, "RolloutFailed"));
    assert_eq!(
        condition(&p, ct::PROGRESSING),
        ("False", "ProgressDeadlineExceeded", reason.as_str())
    );
}

#[test]
fn before_the_deadline_the_requeue_lands_on_it() {
    let r = Rollout::test().deadline(600).status(|s| {
        s.phase = Some(Phase::InProgress);
        s.last_progress_time = Some(time(T0 - 590));
    });
    let w = World::of(&r).partition(8).pods(8..10, NEW, NotReady).pdb(0);
    let p = plan(&w.observed());
    assert_eq!(p.status.phase, Some(Phase::InProgress));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(10)));
}

#[test]
fn a_failed_rollout_stays_failed_until_the_spec_or_identity_changes() {
    let r = Rollout::test().status(|s| {
        s.phase = Some(Phase::Failed);
        s.reason = Some("no progress".into());
    });
    let w = World::of(&r).partition(8).pods(8..10, NEW, NotReady).pdb(3);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::Failed));
    assert_eq!(p.requeue_after, None);
    let retried = r.clone().identity("id-2").generation(2);
    let w2 = World::of(&retried)
        .partition(8)
        .pods(8..10, NEW, NotReady)
        .pdb(3);
    let p2 = plan(&w2.observed());
    assert_eq!(p2.status.phase, Some(Phase::InProgress));
    assert!(matches!(p2.action, Action::Evict { .. }));
}

#[test]
fn min_ready_seconds_delays_availability_and_the_requeue_lands_on_it() {
    let r = Rollout::test().percent(10).in_progress();
    let w = World::of(&r)
        .set(|l| l.min_ready_seconds = 30)
        .partition(9)
        .pods(9..10, NEW, Ready)
        .ready_since(9, T0 - 25);
    let p = plan(&w.observed());
    assert_eq!(p.action, Action::Wait);
    assert_eq!(p.status.phase, Some(Phase::InProgress));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(5)));
}

#[test]
fn a_refused_eviction_leaves_the_partition_to_be_realigned() {
    // 9 was evicted, 8 and 7 were refused: partition 7 exposes 8 and 7 to the StatefulSet
    // controller; with no budget left the partition goes back up to 9.
    let r = Rollout::test().in_progress();
    let w = World::of(&r).partition(7).pods(9..10, NEW, NotReady).pdb(0);
    match plan(&w.observed()).action {
        Action::SetPartition(m) => assert_eq!(m.partition, 9),
        other => panic!("expected a partition move, got {other:?}"),
    }
}

#[test]
fn a_partial_eviction_keeps_the_pacing_clock_honest() {
    let r = Rollout::test()
        .in_progress()
        .status(|s| s.last_eviction_time = Some(micro(T0 - 99)));
    let obs = World::of(&r).pdb(3).observed();
    let p = plan(&obs);
    let evicted = |n| Executed {
        evicted: Some(n),
        ..Executed::default()
    };
    let s = settle(&obs, &p, &evicted(0));
    assert_eq!(s.status.last_eviction_time, Some(micro(T0 - 99)));
    assert!(!s.events.iter().any(|e| e.reason == "PodsEvicted"));
    let s = settle(&obs, &p, &evicted(1));
    assert_eq!(s.status.last_eviction_time, Some(micro(T0)));
    assert!(
        s.events
            .iter()
            .any(|e| e.reason == "PodsEvicted" && e.note.contains("web-9"))
    );
    assert_eq!(s.requeue_after, Some(sroll_planner::REQUEUE_BACKPRESSURE));
    assert!(
        s.status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("2 not evicted")),
        "{:?}",
        s.status.reason
    );
    // Every pod evicted: the plan stands as planned.
    let all = settle(&obs, &p, &Executed::default());
    assert_eq!(
        (all.status, all.events, all.requeue_after),
        (p.status.clone(), p.events.clone(), p.requeue_after)
    );
}

#[test]
fn on_delete_evicts_old_pods_highest_first_without_a_partition() {
    let r = Rollout::test().on_delete().percent(50).in_progress();
    let w = World::of(&r).pods(9..10, NEW, Ready).pdb(2);
    let (pods, partition) = evicted(&plan(&w.observed()));
    assert_eq!(pods, ["web-8", "web-7"]);
    assert_eq!(partition, None);
}

#[test]
fn on_delete_records_the_current_revision_once_every_pod_is_updated() {
    let r = Rollout::test().on_delete().in_progress();
    let w = World::of(&r).pods(0..10, NEW, Ready);
    let p = plan(&w.observed());
    assert_eq!(
        p.action,
        Action::PatchCurrentRevision {
            statefulset: "web".into(),
            revision: NEW.into()
        }
    );
    let done = World::of(&r).revisions(NEW, NEW).pods(0..10, NEW, Ready);
    assert_eq!(plan(&done.observed()).status.phase, Some(Phase::Done));
}

#[test]
fn ordered_ready_pod_management_is_reported_as_degraded() {
    let mut r = Rollout::test().in_progress();
    r.0.spec.sts.spec.pod_management_policy = Some("OrderedReady".into());
    let w = World::of(&r).set(|l| l.pod_management_policy = "OrderedReady".into());
    let p = plan(&w.observed());
    let (status, reason, message) = condition(&p, ct::DEGRADED);
    assert_eq!((status, reason), ("True", "OrderedReadyPodManagement"));
    assert!(message.contains("serialised"), "{message}");
}

#[test]
fn status_describes_the_pods_revisions_and_identity() {
    let r = Rollout::test().percent(50).in_progress();
    let w = World::of(&r)
        .partition(8)
        .pods(8..9, NEW, Ready)
        .pods(9..10, NEW, NotReady);
    let p = plan(&w.observed());
    let s = &p.status;
    assert_eq!(s.pods.len(), 10);
    assert_eq!(&*s.pods[0].name, "web-0");
    assert_eq!(&*s.pods[9].revision, NEW);
    assert!(!s.pods[9].ready);
    assert_eq!(s.ready_replicas, Some(9));
    assert_eq!(s.updated_replicas, Some(2));
    assert_eq!(s.percent_deployed, Some(20));
    assert_eq!(s.target_updated_replicas, Some(5));
    assert_eq!(s.statefulset_name.as_deref(), Some("web"));
    assert_eq!(s.statefulset_spec_current, Some(true));
    assert_eq!(s.rollout_identity.as_deref(), Some("id-1"));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.current_revision.as_deref(), Some(OLD));
    assert_eq!(s.update_revision.as_deref(), Some(NEW));
    assert_eq!(s.last_updated, Some(time(T0)));
    assert_eq!(condition(&p, ct::SPEC_VALID).0, "True");
}

#[test]
fn condition_transition_times_only_move_when_the_status_changes() {
    let r = Rollout::test().percent(50).in_progress();
    let w = World::of(&r).partition(8).pods(8..10, NEW, NotReady).pdb(0);
    let first = plan(&w.observed());
    let mut r2 = r.clone();
    r2.0.status = Some(first.status.clone());
    let second = plan(
        &World::of(&r2)
            .partition(8)
            .pods(8..10, NEW, NotReady)
            .pdb(0)
            .now(T0 + 5)
            .observed(),
    );
    for c in &second.status.conditions {
        let before = first
            .status
            .conditions
            .iter()
            .find(|b| b.type_ == c.type_)
            .expect("same condition types");
        assert_eq!(
            c.last_transition_time, before.last_transition_time,
            "{}",
            c.type_
        );
    }
}

/// Found by the chaos checker (status going backwards): the first status of a new generation
/// carried the previous generation's `percentDeployed: 100` while the new template was only being
/// applied, then dropped to 0 at the same `observedGeneration`.
#[test]
fn a_new_generation_does_not_inherit_the_previous_generations_progress() {
    let r = Rollout::test()
        .image("registry.example.com/app:v3")
        .status(|s| {
            s.phase = Some(Phase::Done);
            s.percent_deployed = Some(100);
            s.updated_replicas = Some(10);
            s.target_updated_replicas = Some(10);
        })
        .generation(2);
    let w = World::of(&r)
        .partition(0)
        .set(|l| l.template_hash = Some("old".into()));
    let w = w.set(|l| l.spec_hash = Some("old".into()));
    let p = plan(&w.observed());
    assert!(matches!(p.action, Action::Apply { .. }), "{:?}", p.action);
    assert_eq!(p.status.observed_generation, Some(2));
    assert_eq!(p.status.phase, Some(Phase::Pending));
    assert_eq!(p.status.percent_deployed, None);
    assert_eq!(p.status.updated_replicas, None);
    assert_eq!(p.status.target_updated_replicas, None);
}

#[test]
fn a_pod_ready_but_unhealthy_in_service_discovery_holds_the_next_eviction_naming_it() {
    let r = Rollout::test().replicas(4).in_progress();
    let world = World::of(&r)
        .partition(3)
        .pods(3..4, NEW, Ready)
        .ready_since(3, T0 - 10);
    let gated = |healthy: &[&str]| {
        let mut o = world.observed();
        o.rollout.spec.service_discovery = Some(sroll_api::ServiceDiscovery {
            services: vec!["web".into()],
            ..sroll_api::ServiceDiscovery::default()
        });
        o.discovery = Some(sroll_planner::DiscoveryHealth {
            reachable: true,
            healthy_pods: healthy.iter().map(|p| (*p).to_owned()).collect(),
            existing_services: vec!["web".into()],
            pending: false,
        });
        plan(&o)
    };
    let held = gated(&["web-0", "web-1", "web-2"]);
    assert_eq!(held.action, Action::Wait);
    assert_eq!(held.status.phase, Some(Phase::InProgress));
    let (status, reason, message) = condition(&held, ct::DEGRADED);
    assert_eq!((status, reason), ("True", "DiscoveryUnhealthy"));
    assert!(
        message.starts_with("pod web-3 Ready in Kubernetes but not healthy in service discovery"),
        "{message}"
    );
    // Healthy: the hold is lifted and the next pod goes.
    let next = gated(&["web-0", "web-1", "web-2", "web-3"]);
    assert_eq!(evicted(&next).0, ["web-2"]);
    assert_eq!(condition(&next, ct::DEGRADED).0, "False");
}

#[test]
fn a_pod_unhealthy_in_service_discovery_holds_the_next_eviction_even_when_the_pdb_allows_more() {
    // The PDB allows 2; web-9 is updated and Ready in Kubernetes, but critical in discovery.
    let r = Rollout::test().in_progress();
    let world = World::of(&r)
        .partition(9)
        .pods(9..10, NEW, Ready)
        .ready_since(9, T0 - 10)
        .pdb(2);
    let gated = |healthy: &[&str]| {
        let mut o = world.observed();
        o.rollout.spec.service_discovery = Some(sroll_api::ServiceDiscovery {
            services: vec!["web".into()],
            ..sroll_api::ServiceDiscovery::default()
        });
        let mut all: Vec<String> = (0..9).map(|i| format!("web-{i}")).collect();
        all.extend(healthy.iter().map(|p| (*p).to_owned()));
        o.discovery = Some(sroll_planner::DiscoveryHealth {
            reachable: true,
            healthy_pods: all.into_iter().collect(),
            existing_services: vec!["web".into()],
            pending: false,
        });
        plan(&o)
    };
    let held = gated(&[]);
    assert_eq!(held.action, Action::Wait, "{:?}", held.status.reason);
    let reason = held.status.reason.clone().unwrap_or_default();
    assert!(
        reason
            .contains("holding the next eviction until pod web-9 is healthy in service discovery"),
        "{reason}"
    );
    assert_eq!(condition(&held, ct::DEGRADED).1, "DiscoveryUnhealthy");
    // Healthy: the PDB's two disruptions are used again.
    let next = gated(&["web-9"]);
    assert_eq!(evicted(&next).0, ["web-8", "web-7"]);
    // Past healthTimeoutSeconds the rollout fails.
    let mut late = world.clone().now(T0 + 600).observed();
    late.rollout.spec.service_discovery = Some(sroll_api::ServiceDiscovery {
        services: vec!["web".into()],
        ..sroll_api::ServiceDiscovery::default()
    });
    late.discovery = Some(sroll_planner::DiscoveryHealth {
        reachable: true,
        healthy_pods: (0..9).map(|i| format!("web-{i}")).collect(),
        existing_services: vec!["web".into()],
        pending: false,
    });
    let failed = plan(&late);
    assert_eq!(failed.status.phase, Some(Phase::Failed));
    assert_eq!(
        condition(&failed, ct::PROGRESSING).1,
        "DiscoveryHealthTimeout"
    );
}

#[test]
fn a_rollout_whose_service_discovery_has_not_answered_yet_holds_without_degrading() {
    let r = Rollout::test().in_progress();
    let world = World::of(&r)
        .partition(9)
        .pods(9..10, NEW, Ready)
        .ready_since(9, T0 - 10)
        .pdb(2);
    let mut o = world.observed();
    o.rollout.spec.service_discovery = Some(sroll_api::ServiceDiscovery {
        services: vec!["web".into()],
        ..sroll_api::ServiceDiscovery::default()
    });
    o.discovery = Some(sroll_planner::DiscoveryHealth {
        pending: true,
        ..sroll_planner::DiscoveryHealth::default()
    });
    let held = plan(&o);
    assert_eq!(held.action, Action::Wait);
    assert_eq!(held.status.phase, Some(Phase::InProgress));
    let reason = held.status.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("waiting for the first answer from service discovery"),
        "{reason}"
    );
    assert!(
        held.status
            .conditions
            .iter()
            .all(|c| c.type_ != ct::DEGRADED || c.status == "False"),
        "not known yet is not degraded: {:?}",
        held.status.conditions
    );
    // The answer comes: every pod healthy, the PDB's two disruptions are used.
    o.discovery = Some(sroll_planner::DiscoveryHealth {
        reachable: true,
        healthy_pods: (0..10).map(|i| format!("web-{i}")).collect(),
        existing_services: vec!["web".into()],
        pending: false,
    });
    assert_eq!(evicted(&plan(&o)).0, ["web-8", "web-7"]);
}

#[test]
fn a_rejected_statefulset_settles_as_blocked_and_announces_no_start() {
    let r = Rollout::test()
        .in_progress()
        .status(|s| s.phase = Some(Phase::Pending));
    let obs = World::of(&r).pdb(3).observed();
    let p = plan(&obs);
    assert!(matches!(p.action, Action::Evict { .. }), "{:?}", p.action);
    let s = settle(
        &obs,
        &p,
        &Executed {
            rejected: Some("the API server rejected StatefulSet web (422 Invalid): bad".into()),
            ..Executed::default()
        },
    );
    assert_eq!(s.status.phase, Some(Phase::Blocked));
    let c = s
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == ct::SPEC_VALID)
        .expect("SpecValid");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "StatefulSetRejected")
    );
    assert!(
        s.status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("422"))
    );
    assert_eq!(s.requeue_after, None);
    assert!(s.notify.triggers.is_empty(), "{:?}", s.notify);
    assert!(
        s.events.iter().any(|e| e.reason == "StatefulSetRejected"),
        "{:?}",
        s.events
    );
    assert!(!s.events.iter().any(|e| e.reason == "PodsEvicted"));
}

#[test]
fn the_callback_outcome_is_recorded_only_once_the_sender_reports_a_2xx() {
    let r = Rollout::test().status(|s| {
        s.phase = Some(Phase::Done);
        s.current_revision = Some(NEW.into());
    });
    let w = World::of(&r)
        .set(|l| {
            l.current_revision = Some(NEW.into());
            l.partition = Some(0);
        })
        .pods(0..10, NEW, Ready);
    let with = |callback: Option<sroll_planner::CallbackObserved>| {
        let mut o = w.observed();
        o.rollout.spec.bapi = Some(sroll_api::Bapi {
            url: "https://bapi.example.com/cb".into(),
            stage_id: "s1".into(),
        });
        o.integrations.callback = callback;
        plan(&o)
    };
    // Not handed to the sender yet: due, pending, looked at again.
    let p = with(None);
    assert_eq!(p.status.phase, Some(Phase::Done));
    let due = p.notify.callback.clone().expect("a callback due");
    assert_eq!((due.stage_id.as_str(), due.outcome), ("s1", Phase::Done));
    assert_eq!(condition(&p, ct::CALLBACK_DELIVERED).0, "Unknown");
    assert_eq!(p.requeue_after, Some(sroll_planner::REQUEUE_INTEGRATIONS));
    assert_eq!(p.status.last_callback_outcome, None);
    // Delivered: recorded, and never due again.
    let p = with(Some(sroll_planner::CallbackObserved {
        stage_id: "s1".into(),
        outcome: Phase::Done,
        delivered: Some(true),
        reason: "CallbackDelivered".into(),
        message: "answered with HTTP 200".into(),
    }));
    assert_eq!(p.status.last_callback_stage_id.as_deref(), Some("s1"));
    assert_eq!(
        p.status.last_callback_outcome.as_deref(),
        Some("RolloutDone")
    );
    assert_eq!(condition(&p, ct::CALLBACK_DELIVERED).0, "True");
    assert_eq!(p.notify.callback, None);
    assert_eq!(p.requeue_after, None);
    // A delivery of another outcome says nothing about this one.
    let p = with(Some(sroll_planner::CallbackObserved {
        stage_id: "s1".into(),
        outcome: Phase::Failed,
        delivered: Some(true),
        reason: "CallbackDelivered".into(),
        message: "answered with HTTP 200".into(),
    }));
    assert_eq!(p.status.last_callback_outcome, None);
    assert!(p.notify.callback.is_some());
}

#[test]
fn notification_results_land_in_the_status_through_the_plan() {
    let r = Rollout::test().in_progress();
    let mut o = World::of(&r).pdb(1).observed();
    o.integrations.notifications = Some(sroll_planner::NotificationsObserved {
        slack_message: Some(sroll_api::SlackMessage {
            channel: "C1".into(),
            ts: vec!["1.1".into()],
            rollout_identity: None,
        }),
        error: Some("chat.update answered 500".into()),
        pending: true,
    });
    let p = plan(&o);
    assert_eq!(
        p.status.slack_message.as_ref().map(|m| m.ts.clone()),
        Some(vec!["1.1".to_owned()])
    );
    let (status, reason, message) = condition(&p, ct::NOTIFICATIONS_DELIVERED);
    assert_eq!((status, reason), ("False", "NotificationFailed"));
    assert!(message.contains("500"), "{message}");
}

#[test]
fn observations_differing_only_in_their_instant_hold_the_same_inputs() {
    let r = Rollout::test().in_progress();
    let w = World::of(&r).pdb(1);
    let a = w.observed();
    assert!(a.same_inputs(&w.clone().now(T0 + 30).observed()));
    assert!(!a.same_inputs(&w.clone().pods(9..10, NEW, Ready).observed()));
    assert!(!a.same_inputs(&w.clone().pdb(2).observed()));
    let mut reported = w.observed();
    reported.integrations.notifications = Some(sroll_planner::NotificationsObserved::default());
    assert!(!a.same_inputs(&reported));
    let mut healthier = w.observed();
    healthier.discovery = Some(sroll_planner::DiscoveryHealth::default());
    assert!(!a.same_inputs(&healthier));
}
