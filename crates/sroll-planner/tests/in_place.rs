//! In-place updates (`spec.podUpdatePolicy`) over whole rollouts in the pure loop
//! (`support::sim`): the planner's batches against a model of the StatefulSet controller, the
//! kubelet's container restart and the `InPlaceUpdateReady` gate.

mod support;

use k8s_openapi::api::core::v1::EnvVar;
use sroll_api::{Phase, PodUpdatePolicy, condition_types as ct};
use sroll_planner::{Action, inplace::Op};
use support::{sim::Sim, *};

/// A set created under `policy` with `grace` and settled at image v2; counters reset.
fn settled(replicas: i32, budget: i32, policy: PodUpdatePolicy, grace: i32) -> Sim {
    let r = Rollout::test()
        .replicas(replicas)
        .in_place(policy, grace)
        .build();
    let mut sim = Sim::new(r);
    sim.pdb_max_unavailable = Some(budget);
    let last = sim.run(500);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    reset(&mut sim);
    sim
}

fn reset(sim: &mut Sim) {
    sim.plans = 0;
    sim.batches = 0;
    sim.evictions = 0;
    sim.deletes = 0;
    sim.max_unavailable_seen = 0;
    sim.out_of_traffic = 0;
    sim.patches = 0;
    sim.min_grace_seen = None;
    sim.trace.clear();
}

fn set_image(sim: &mut Sim, image: &str) {
    sim.edit(|r| {
        if let Some(pod) = r.spec.sts.spec.template.spec.as_mut() {
            pod.containers[0].image = Some(image.into());
        }
    });
}

fn uids(sim: &Sim) -> Vec<String> {
    sim.pods.values().map(|p| p.uid.clone()).collect()
}

fn done(sim: &mut Sim) -> sroll_planner::Plan {
    let last = sim.run(5000);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}\n{:#?}",
        last.status.reason,
        sim.trace
    );
    last
}

#[test]
fn an_image_only_change_updates_every_pod_in_place_within_the_budget() {
    let mut sim = settled(10, 3, PodUpdatePolicy::InPlaceIfPossible, 0);
    let before = uids(&sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    let last = done(&mut sim);
    assert_eq!(uids(&sim), before, "same pods: {:?}", sim.trace);
    assert_eq!(sim.evictions, 0);
    assert_eq!(sim.deletes, 0);
    assert_eq!(sim.patches, 10);
    assert!(
        sim.pods.values().all(|p| p.patches == 1),
        "each pod patched once"
    );
    let update = sim.update.clone().unwrap_or_default();
    assert_eq!(sim.count_at(&update), 10);
    assert!(
        sim.max_unavailable_seen <= 3,
        "{}",
        sim.max_unavailable_seen
    );
    assert_eq!(sim.max_unavailable_seen, 3, "the budget is used");
    assert_eq!(sim.in_place_exposed, 0, "{:?}", sim.trace);
    assert_eq!(sim.controller_moves, 0);
    assert_eq!(sim.partition(), Some(0));
    assert_eq!(
        sim.current, sim.update,
        "the StatefulSet controller finished"
    );
    assert!(last.status.in_place_updating.is_empty());
}

#[test]
fn in_place_batches_are_bounded_like_evictions_for_many_budgets() {
    for (replicas, percent, budget) in [
        (10, 100, 1),
        (10, 25, 2),
        (7, 50, 3),
        (30, 100, 7),
        (9, 99, 2),
    ] {
        let mut sim = settled(replicas, budget, PodUpdatePolicy::InPlaceIfPossible, 0);
        set_image(&mut sim, "registry.example.com/app:v3");
        sim.edit(|r| r.spec.percent = percent);
        let last = done(&mut sim);
        let case = format!("replicas {replicas} percent {percent} budget {budget}");
        let target = sroll_api::target_updated_replicas(replicas, percent);
        assert_eq!(last.status.updated_replicas, Some(target), "{case}");
        assert_eq!(sim.patches, usize::try_from(target).unwrap_or(0), "{case}");
        assert_eq!(sim.evictions, 0, "{case}");
        assert!(
            sim.max_unavailable_seen <= usize::try_from(budget).unwrap_or(0),
            "{case}: {}",
            sim.max_unavailable_seen
        );
        assert_eq!(sim.in_place_exposed, 0, "{case}");
        assert_eq!(sim.controller_moves, 0, "{case}");
        // The top `target` ordinals moved.
        let update = sim.update.clone().unwrap_or_default();
        let moved: Vec<i32> = sim
            .revisions()
            .into_iter()
            .filter(|(_, r)| *r == update)
            .map(|(o, _)| o)
            .collect();
        assert_eq!(
            moved,
            (replicas - target..replicas).collect::<Vec<_>>(),
            "{case}"
        );
    }
}

#[test]
fn max_unavailable_bounds_in_place_pods_as_it_bounds_evicted_ones() {
    let mut sim = settled(12, 6, PodUpdatePolicy::InPlaceIfPossible, 5);
    sim.edit(|r| {
        r.spec.max_unavailable =
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2))
    });
    set_image(&mut sim, "registry.example.com/app:v3");
    done(&mut sim);
    assert_eq!(sim.patches, 12);
    assert!(
        sim.max_unavailable_seen <= 2,
        "{}",
        sim.max_unavailable_seen
    );
}

#[test]
fn an_env_change_is_recreated_under_in_place_if_possible() {
    let mut sim = settled(5, 2, PodUpdatePolicy::InPlaceIfPossible, 0);
    let before = uids(&sim);
    sim.edit(|r| {
        if let Some(pod) = r.spec.sts.spec.template.spec.as_mut() {
            pod.containers[0].image = Some("registry.example.com/app:v3".into());
            pod.containers[0].env = Some(vec![EnvVar {
                name: "MODE".into(),
                value: Some("fast".into()),
                value_from: None,
            }]);
        }
    });
    done(&mut sim);
    assert_eq!(sim.patches, 0);
    assert_eq!(sim.out_of_traffic, 0);
    assert_eq!(sim.evictions, 5);
    assert!(
        uids(&sim).iter().all(|u| !before.contains(u)),
        "every pod recreated"
    );
}

#[test]
fn an_env_change_blocks_in_place_only_and_names_the_field() {
    let mut sim = settled(5, 2, PodUpdatePolicy::InPlaceOnly, 0);
    sim.edit(|r| {
        if let Some(pod) = r.spec.sts.spec.template.spec.as_mut() {
            pod.containers[0].env = Some(vec![EnvVar {
                name: "MODE".into(),
                value: Some("fast".into()),
                value_from: None,
            }]);
        }
    });
    let last = sim.run(200);
    assert_eq!(
        last.status.phase,
        Some(Phase::Blocked),
        "{:?}",
        last.status.reason
    );
    let cond = last
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == ct::SPEC_VALID)
        .expect("SpecValid");
    assert_eq!(cond.status, "False");
    assert_eq!(
        cond.reason,
        sroll_planner::reasons::IN_PLACE_UPDATE_IMPOSSIBLE
    );
    assert!(
        cond.message.contains("spec.containers[0].env"),
        "{}",
        cond.message
    );
    assert!(
        cond.message.contains("InPlaceIfPossible"),
        "says how to fix: {}",
        cond.message
    );
    assert_eq!(sim.evictions, 0);
    assert_eq!(sim.out_of_traffic, 0);
    // Fixing the policy lets it proceed by recreate.
    sim.edit(|r| r.spec.pod_update_policy = Some(PodUpdatePolicy::InPlaceIfPossible));
    done(&mut sim);
    assert_eq!(sim.evictions, 5);
}

#[test]
fn switching_a_running_set_to_in_place_recreates_once_then_updates_in_place() {
    let r = Rollout::test().replicas(4).build();
    let mut sim = Sim::new(r);
    sim.pdb_max_unavailable = Some(2);
    done(&mut sim);
    reset(&mut sim);
    // The policy alone changes the template (the gate): that rollout recreates, even InPlaceOnly.
    sim.edit(|r| r.spec.pod_update_policy = Some(PodUpdatePolicy::InPlaceOnly));
    done(&mut sim);
    assert_eq!(sim.evictions, 4, "{:?}", sim.trace);
    assert!(
        sim.pods
            .values()
            .all(|p| p.has_gate && p.gate == Some(true))
    );
    reset(&mut sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    done(&mut sim);
    assert_eq!(sim.evictions, 0);
    assert_eq!(sim.patches, 4);
}

#[test]
fn the_grace_period_holds_each_pod_out_of_traffic_before_its_images_change() {
    let mut sim = settled(4, 2, PodUpdatePolicy::InPlaceIfPossible, 20);
    set_image(&mut sim, "registry.example.com/app:v3");
    // The first in-place plan only takes pods out of traffic.
    let p = first_in_place(&mut sim);
    let Action::InPlace { writes, .. } = &p.action else {
        panic!("{:?}", p.action)
    };
    assert!(
        writes
            .iter()
            .all(|w| matches!(w.op, Op::TakeOutOfTraffic { .. })),
        "{writes:?}"
    );
    assert_eq!(writes.len(), 2);
    assert_eq!(p.status.in_place_updating, ["web-3", "web-2"]);
    assert!(
        p.requeue_after.is_some_and(|d| d.as_secs() <= 21),
        "wakes for the end of the grace period: {:?}",
        p.requeue_after
    );
    done(&mut sim);
    assert_eq!(sim.patches, 4);
    assert!(
        sim.min_grace_seen.is_some_and(|g| g >= 20),
        "{:?}",
        sim.min_grace_seen
    );
}

#[test]
fn pausing_mid_rollout_starts_no_new_in_place_update_and_resuming_finishes() {
    let mut sim = settled(8, 2, PodUpdatePolicy::InPlaceIfPossible, 0);
    set_image(&mut sim, "registry.example.com/app:v3");
    while sim.patches < 2 {
        sim.step();
        sim.advance(1);
    }
    sim.edit(|r| r.spec.pause_requested = Some(true));
    let started = sim.out_of_traffic;
    for _ in 0..50 {
        let p = sim.step();
        if let Action::InPlace { writes, partition } = &p.action {
            assert!(
                writes
                    .iter()
                    .all(|w| !matches!(w.op, Op::TakeOutOfTraffic { .. })),
                "{writes:?}"
            );
            assert!(
                partition
                    .as_ref()
                    .is_none_or(|m| Some(m.partition) >= sim.partition()),
                "the partition is never lowered while paused"
            );
        }
        sim.advance(1);
    }
    assert_eq!(sim.out_of_traffic, started);
    let last = sim.step();
    assert_eq!(last.status.phase, Some(Phase::Paused));
    // Pods already under way finished and serve again.
    assert!(
        sim.pods.values().all(|p| p.gate == Some(true)),
        "{:?}",
        sim.trace
    );
    sim.edit(|r| r.spec.pause_requested = Some(false));
    done(&mut sim);
    assert_eq!(sim.patches, 8);
    assert_eq!(sim.evictions, 0);
}

/// Steps (applying the new template, waiting for the StatefulSet controller) up to the first
/// plan with in-place writes, which is executed.
fn first_in_place(sim: &mut Sim) -> sroll_planner::Plan {
    for _ in 0..20 {
        let p = sim.step();
        if matches!(p.action, Action::InPlace { .. }) {
            return p;
        }
    }
    panic!("no in-place plan: {:?}", sim.trace)
}

fn sim_update(sim: &Sim) -> String {
    sim.update.clone().unwrap_or_default()
}

#[test]
fn a_rollback_goes_back_in_place_and_drops_changes_still_in_their_grace_period() {
    let mut sim = settled(6, 2, PodUpdatePolicy::InPlaceIfPossible, 30);
    let v2 = sim_update(&sim);
    let before = uids(&sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    // Run until two pods are patched and two more are out of traffic in their grace period.
    for _ in 0..500 {
        if sim.patches >= 2
            && sim
                .pods
                .values()
                .any(|p| p.gate == Some(false) && p.revision == v2)
        {
            break;
        }
        let p = sim.step();
        if p.action == Action::Wait {
            sim.advance(1);
        }
    }
    let in_grace: Vec<i32> = sim
        .pods
        .iter()
        .filter(|(_, p)| p.gate == Some(false) && p.revision == v2)
        .map(|(&o, _)| o)
        .collect();
    assert!(!in_grace.is_empty(), "{:?}", sim.trace);
    let patched_before = sim.patches;
    set_image(&mut sim, "registry.example.com/app:v2");
    let last = done(&mut sim);
    assert_eq!(sim_update(&sim), v2, "back at the original revision");
    assert_eq!(sim.count_at(&v2), 6);
    assert_eq!(uids(&sim), before, "no pod recreated");
    assert_eq!(sim.evictions, 0);
    for o in in_grace {
        assert_eq!(
            sim.pods[&o].patches, 0,
            "web-{o}'s pending change was dropped"
        );
    }
    assert_eq!(
        sim.patches,
        patched_before * 2,
        "each patched pod patched back once"
    );
    assert!(last.status.in_place_updating.is_empty());
}

#[test]
fn a_pod_that_dies_during_its_grace_period_comes_back_at_the_current_revision() {
    let mut sim = settled(4, 1, PodUpdatePolicy::InPlaceIfPossible, 30);
    let v2 = sim_update(&sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    first_in_place(&mut sim);
    let victim = *sim
        .pods
        .iter()
        .find(|(_, p)| p.gate == Some(false))
        .map(|(o, _)| o)
        .expect("one pod out of traffic");
    if let Some(p) = sim.pods.get_mut(&victim) {
        p.terminating_since = Some(sim.now);
    }
    sim.advance(2);
    assert_eq!(
        sim.pods[&victim].revision, v2,
        "recreated below the partition: no leak"
    );
    done(&mut sim);
    assert_eq!(sim.in_place_exposed, 0);
    assert_eq!(sim.controller_moves, 0);
    let update = sim_update(&sim);
    assert_eq!(sim.count_at(&update), 4);
}

#[test]
fn on_delete_sets_update_in_place_too() {
    let r = Rollout::test()
        .replicas(5)
        .on_delete()
        .in_place(PodUpdatePolicy::InPlaceIfPossible, 0)
        .build();
    let mut sim = Sim::new(r);
    sim.pdb_max_unavailable = Some(2);
    done(&mut sim);
    reset(&mut sim);
    let before = uids(&sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    done(&mut sim);
    assert_eq!(uids(&sim), before);
    assert_eq!(sim.patches, 5);
    assert!(sim.max_unavailable_seen <= 2);
}

/// `gracePeriodSeconds: 0`: one plan takes each chosen pod out of traffic and patches its images
/// right after (the executor writes a pod's writes in order), so no pod waits a reconcile, a
/// requeue or the next second of its condition's `lastTransitionTime` before its restart.
#[test]
fn with_a_zero_grace_period_one_plan_takes_each_pod_out_and_patches_it() {
    let mut sim = settled(10, 3, PodUpdatePolicy::InPlaceIfPossible, 0);
    set_image(&mut sim, "registry.example.com/app:v3");
    let plan = first_in_place(&mut sim);
    let Action::InPlace { writes, .. } = &plan.action else {
        unreachable!("first_in_place returns an in-place plan")
    };
    let ops: Vec<(String, &str)> = writes
        .iter()
        .map(|w| (w.pod.clone(), w.op.name()))
        .collect();
    let expected: Vec<(String, &str)> = ["web-9", "web-8", "web-7"]
        .into_iter()
        .flat_map(|p| {
            [
                (p.to_owned(), "TakeOutOfTraffic"),
                (p.to_owned(), "PatchImages"),
            ]
        })
        .collect();
    assert_eq!(ops, expected, "{:?}", sim.trace);
}

#[test]
fn a_pod_out_of_traffic_stays_out_while_the_statefulset_controller_has_not_seen_the_partition() {
    let mut sim = settled(6, 2, PodUpdatePolicy::InPlaceIfPossible, 20);
    let before = uids(&sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    let p = first_in_place(&mut sim);
    assert_eq!(p.status.in_place_updating, ["web-5", "web-4"]);
    // A partition write the StatefulSet controller has not observed yet (a loaded machine): the
    // planner waits for it, and must not drop the pending in-place changes meanwhile. (`step`
    // runs the controller after each plan, so the write is repeated before each one.)
    for _ in 0..3 {
        sim.generation += 1;
        let p = sim.step();
        assert_eq!(
            p.status.phase,
            Some(Phase::InProgress),
            "{:?}",
            p.status.reason
        );
        assert_eq!(p.action, Action::Wait, "nothing is written while waiting");
        assert_eq!(p.status.in_place_updating, ["web-5", "web-4"]);
    }
    assert!(
        [4, 5].iter().all(|o| sim.pods[o].gate == Some(false)),
        "{:?}",
        sim.trace
    );
    done(&mut sim);
    assert_eq!(uids(&sim), before, "no pod recreated");
    assert_eq!((sim.evictions, sim.deletes), (0, 0));
    assert_eq!(sim.out_of_traffic, 6, "each pod taken out of traffic once");
    assert_eq!(sim.patches, 6);
}

/// The kubelet has not recomputed `Ready` yet after the gate turned `True`: the pods are still
/// `Ready=False` (the out-of-traffic write's reason) for a moment.
fn ready_lags(sim: &mut Sim, ordinals: &[i32]) {
    for o in ordinals {
        if let Some(p) = sim.pods.get_mut(o) {
            p.ready_since = None;
        }
    }
}

/// Plans `n` times without time passing; panics if a plan evicts or deletes one of `pods`.
fn no_replacement_of(sim: &mut Sim, pods: &[&str], n: usize) {
    for _ in 0..n {
        let p = sim.step();
        if let Action::Evict { pods: chosen, .. } | Action::DeletePods { pods: chosen, .. } =
            &p.action
        {
            assert!(
                chosen.iter().all(|c| !pods.contains(&c.as_str())),
                "{chosen:?} replaced while put back into traffic: {:?}\n{:#?}",
                p.status.reason,
                sim.trace
            );
        }
    }
}

/// A pod legitimately put back into traffic (its pending change dropped) is Ready=False until the
/// kubelet recomputes `Ready` from its gate: an old pod that is not Ready, like a broken one. The
/// broken-pod rules (replace for free) must not take it. After a lowered `percent` it is below the
/// target range the Partitioned rule scans, the OnDelete rule only chooses among the highest old
/// pods (every pod above it is at the update revision or on its way), and a rollout whose target is
/// reached is done (no rule runs); after a rollback it is at the update revision (in flight, not
/// old).
#[test]
fn a_pod_put_back_into_traffic_is_not_replaced_as_broken_while_its_ready_catches_up() {
    // Lowered percent: web-5 is updated, web-4 falls out of the target range during its grace
    // period.
    let mut sim = settled(6, 1, PodUpdatePolicy::InPlaceIfPossible, 20);
    let before = uids(&sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    let v2 = sim.pods[&4].revision.clone();
    for _ in 0..500 {
        if sim.pods[&4].gate == Some(false) {
            break;
        }
        if sim.step().action == Action::Wait {
            sim.advance(1);
        }
    }
    assert_eq!(sim.pods[&4].gate, Some(false), "{:?}", sim.trace);
    assert_ne!(sim.pods[&5].revision, v2, "web-5 updated");
    sim.edit(|r| r.spec.percent = 16); // ceil(6 × 16%) = 1: web-5 only
    for _ in 0..10 {
        sim.step();
        if sim.pods[&4].gate == Some(true) {
            break;
        }
    }
    assert_eq!(sim.pods[&4].gate, Some(true), "put back: {:?}", sim.trace);
    assert_eq!(sim.pods[&4].patches, 0, "its change dropped");
    ready_lags(&mut sim, &[4]);
    no_replacement_of(&mut sim, &["web-4"], 3);
    let last = done(&mut sim);
    assert_eq!(last.status.updated_replicas, Some(1));
    assert_eq!(uids(&sim), before, "no pod recreated: {:?}", sim.trace);
    assert_eq!((sim.evictions, sim.deletes), (0, 0));

    // A rollback during the grace period: both pods are at the target again.
    let mut sim = settled(6, 2, PodUpdatePolicy::InPlaceIfPossible, 20);
    let before = uids(&sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    first_in_place(&mut sim);
    set_image(&mut sim, "registry.example.com/app:v2");
    for _ in 0..10 {
        sim.step();
        if [4, 5].iter().all(|o| sim.pods[o].gate == Some(true)) {
            break;
        }
    }
    assert!(
        [4, 5].iter().all(|o| sim.pods[o].gate == Some(true)),
        "{:?}",
        sim.trace
    );
    ready_lags(&mut sim, &[4, 5]);
    no_replacement_of(&mut sim, &["web-4", "web-5"], 3);
    done(&mut sim);
    assert_eq!(uids(&sim), before, "no pod recreated: {:?}", sim.trace);
    assert_eq!((sim.evictions, sim.deletes, sim.patches), (0, 0, 0));

    // OnDelete, lowered percent: the highest old pods it would choose are above web-4.
    let r = Rollout::test()
        .replicas(6)
        .on_delete()
        .in_place(PodUpdatePolicy::InPlaceIfPossible, 20)
        .build();
    let mut sim = Sim::new(r);
    sim.pdb_max_unavailable = Some(2);
    done(&mut sim);
    reset(&mut sim);
    let before = uids(&sim);
    set_image(&mut sim, "registry.example.com/app:v3");
    let p = first_in_place(&mut sim);
    assert_eq!(p.status.in_place_updating, ["web-5", "web-4"]);
    sim.edit(|r| r.spec.percent = 16);
    for _ in 0..10 {
        sim.step();
        if sim.pods[&4].gate == Some(true) {
            break;
        }
    }
    assert_eq!(sim.pods[&4].gate, Some(true), "put back: {:?}", sim.trace);
    ready_lags(&mut sim, &[4]);
    no_replacement_of(&mut sim, &["web-4"], 3);
    done(&mut sim);
    assert_eq!(uids(&sim), before, "no pod recreated: {:?}", sim.trace);
    assert_eq!((sim.evictions, sim.deletes, sim.patches), (0, 0, 1));
}
