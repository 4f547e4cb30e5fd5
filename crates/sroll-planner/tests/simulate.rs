//! Whole rollouts in a pure loop: `plan()` against a tiny model of the StatefulSet controller,
//! the disruption controller, the eviction API and the kubelet (`support::sim`).

mod support;

use sroll_api::{Phase, RolloutStrategy};
use support::{sim::Sim, *};

/// A set created from nothing and settled at image v2 (every pod Ready, rollout Done).
fn settled(replicas: i32, pdb_max_unavailable: Option<i32>) -> Sim {
    let r = Rollout::test().replicas(replicas).build();
    let mut sim = Sim::new(r);
    sim.pdb_max_unavailable = pdb_max_unavailable;
    let last = sim.run(500);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    sim.plans = 0;
    sim.batches = 0;
    sim.evictions = 0;
    sim.max_unavailable_seen = 0;
    sim.eviction_times.clear();
    sim
}

fn set_image(sim: &mut Sim, image: &str) {
    sim.edit(|r| {
        if let Some(pod) = r.spec.sts.spec.template.spec.as_mut() {
            pod.containers[0].image = Some(image.into());
        }
    });
}

fn updated_ordinals(sim: &Sim) -> Vec<i32> {
    let update = sim.update.clone().unwrap_or_default();
    sim.revisions()
        .into_iter()
        .filter(|(_, r)| *r == update)
        .map(|(o, _)| o)
        .collect()
}

#[test]
fn a_set_created_from_nothing_ends_done_with_every_pod_ready() {
    let mut sim = Sim::new(Rollout::test().replicas(5).build());
    let last = sim.run(200);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(sim.pods.len(), 5);
    assert_eq!(sim.partition(), Some(0));
    assert_eq!(sim.current, sim.update);
    assert_eq!(sim.evictions, 0);
    assert_eq!(sim.controller_moves, 0);
    assert_eq!(last.status.ready_replicas, Some(5));
    assert_eq!(last.requeue_after, None);
}

#[test]
fn a_quarter_rollout_moves_exactly_the_top_quarter_then_percent_100_moves_the_rest() {
    let mut sim = settled(10, Some(2));
    set_image(&mut sim, "registry.example.com/app:v3");
    sim.edit(|r| r.spec.percent = 25);
    let last = sim.run(500);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(updated_ordinals(&sim), [7, 8, 9]);
    assert_eq!(sim.partition(), Some(7));
    assert_eq!(last.status.percent_deployed, Some(30));
    assert_eq!(sim.batches, 2, "ceil(3 / 2) batches: {:?}", sim.trace);
    sim.edit(|r| r.spec.percent = 100);
    let last = sim.run(500);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(updated_ordinals(&sim), (0..10).collect::<Vec<_>>());
    assert_eq!(sim.current, sim.update);
    assert_eq!(sim.controller_moves, 0, "{:?}", sim.trace);
    assert!(sim.max_unavailable_seen <= 2);
}

#[test]
fn a_pdb_allowing_half_of_20_pods_moves_10_at_once_and_never_more() {
    let mut sim = settled(20, Some(10));
    set_image(&mut sim, "registry.example.com/app:v3");
    let last = sim.run(500);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(sim.batches, 2, "{:?}", sim.trace);
    assert_eq!(sim.max_unavailable_seen, 10);
    assert_eq!(sim.refused, 0);
    assert_eq!(sim.controller_moves, 0);
}

#[test]
fn rollouts_converge_to_exactly_the_target_in_ceil_target_over_budget_batches() {
    for (replicas, percent, budget) in [
        (10, 100, 1),
        (10, 25, 1),
        (10, 25, 2),
        (7, 50, 3),
        (12, 33, 4),
        (30, 10, 5),
        (30, 100, 7),
        (5, 1, 3),
        (9, 99, 2),
    ] {
        let mut sim = settled(replicas, Some(budget));
        set_image(&mut sim, "registry.example.com/app:v3");
        sim.edit(|r| r.spec.percent = percent);
        let last = sim.run(2000);
        let case = format!("replicas {replicas} percent {percent} budget {budget}");
        assert_eq!(
            last.status.phase,
            Some(Phase::Done),
            "{case}: {:?}",
            last.status.reason
        );
        let target = sroll_api::target_updated_replicas(replicas, percent);
        let expected: Vec<i32> = (replicas - target..replicas).collect();
        assert_eq!(updated_ordinals(&sim), expected, "{case}");
        let batches = usize::try_from((target + budget - 1) / budget).unwrap_or(0);
        assert_eq!(sim.batches, batches, "{case}: {:?}", sim.trace);
        assert!(
            sim.max_unavailable_seen <= usize::try_from(budget).unwrap_or(0),
            "{case}"
        );
        assert_eq!(sim.controller_moves, 0, "{case}");
        assert_eq!(last.status.updated_replicas, Some(target), "{case}");
    }
}

#[test]
fn without_a_pdb_pods_move_one_at_a_time() {
    let mut sim = settled(6, None);
    set_image(&mut sim, "registry.example.com/app:v3");
    let last = sim.run(500);
    assert_eq!(last.status.phase, Some(Phase::Done));
    assert_eq!(sim.batches, 6);
    assert_eq!(sim.max_unavailable_seen, 1);
}

#[test]
fn pacing_keeps_evictions_at_least_the_interval_apart() {
    let mut sim = settled(6, Some(3));
    set_image(&mut sim, "registry.example.com/app:v3");
    sim.edit(|r| r.spec.min_pod_eviction_interval_seconds = Some(10));
    let last = sim.run(2000);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(sim.eviction_times.len(), 6);
    for pair in sim.eviction_times.windows(2) {
        assert!(pair[1] - pair[0] >= 10, "{:?}", sim.eviction_times);
    }
}

#[test]
fn a_rollback_to_the_previous_revision_skips_pacing() {
    let mut sim = settled(6, Some(3));
    sim.edit(|r| r.spec.min_pod_eviction_interval_seconds = Some(60));
    set_image(&mut sim, "registry.example.com/app:v3");
    let last = sim.run(5000);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    sim.eviction_times.clear();
    set_image(&mut sim, "registry.example.com/app:v2");
    let last = sim.run(5000);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(sim.eviction_times.len(), 6);
    let span = sim.eviction_times[5] - sim.eviction_times[0];
    assert!(span < 60, "rollback took {span}s: {:?}", sim.eviction_times);
}

#[test]
fn a_paused_partial_rollout_keeps_every_pod_at_its_revision_when_pods_die_partitioned() {
    let mut sim = settled(10, Some(2));
    set_image(&mut sim, "registry.example.com/app:v3");
    sim.edit(|r| r.spec.percent = 50);
    // Move a few pods, then pause mid-rollout.
    while sim.count_at(&sim.update.clone().unwrap_or_default()) < 3 {
        sim.step();
        sim.advance(1);
    }
    sim.edit(|r| r.spec.pause_requested = Some(true));
    let paused = sim.run(50);
    assert_eq!(
        paused.status.phase,
        Some(Phase::Paused),
        "{:?}",
        paused.status.reason
    );
    // Let in-flight pods settle.
    sim.advance(10);
    let before = sim.revisions();
    let partition = sim.partition();
    let evictions = sim.evictions;
    for round in 0..20 {
        // "Random" kills of old and new pods (a fixed pseudo-random walk keeps the test exact).
        let victim = (round * 7 + 3) % 10;
        sim.pods.remove(&victim);
        sim.controllers();
        sim.advance(5);
        sim.step();
    }
    sim.advance(10);
    assert_eq!(
        sim.revisions(),
        before,
        "every pod came back at the revision it had"
    );
    assert_eq!(
        sim.partition(),
        partition,
        "the partition did not move while paused"
    );
    assert_eq!(sim.evictions, evictions, "no eviction while paused");
    // Resume: the rollout completes.
    sim.edit(|r| r.spec.pause_requested = Some(false));
    let last = sim.run(500);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(updated_ordinals(&sim), [5, 6, 7, 8, 9]);
}

#[test]
fn on_delete_leaks_versions_when_pods_die_during_a_paused_rollout() {
    // The reference system's behaviour, kept for compatibility and documented here: with OnDelete
    // an old pod that dies comes back at the new revision.
    let mut r = Rollout::test().replicas(10).build();
    r.spec.strategy = Some(RolloutStrategy::OnDelete);
    let mut sim = Sim::new(r);
    sim.pdb_max_unavailable = Some(2);
    assert_eq!(sim.run(500).status.phase, Some(Phase::Done));
    set_image(&mut sim, "registry.example.com/app:v3");
    sim.edit(|r| {
        r.spec.percent = 20;
        r.spec.pause_requested = Some(true);
    });
    let paused = sim.run(50);
    assert_eq!(paused.status.phase, Some(Phase::Paused));
    let new = sim.update.clone().unwrap_or_default();
    assert_eq!(sim.count_at(&new), 0);
    sim.pods.remove(&0);
    sim.pods.remove(&1);
    sim.controllers();
    sim.advance(5);
    assert_eq!(
        sim.count_at(&new),
        2,
        "the leak: killed old pods came back at the new revision"
    );
}

#[test]
fn a_broken_image_fails_after_the_deadline_and_a_fixed_spec_recovers_at_once() {
    let mut sim = settled(10, Some(2));
    sim.edit(|r| r.spec.progress_deadline_seconds = Some(60));
    set_image(&mut sim, "registry.example.com/app:broken");
    // The revision of the broken template never becomes Ready.
    let observed = sim.observed();
    let broken_rev =
        Sim::revision_of(&sroll_planner::template_hash(&observed.rollout).expect("hash"));
    sim.broken_revisions.insert(broken_rev.clone());
    let failed = sim.run(500);
    assert_eq!(
        failed.status.phase,
        Some(Phase::Failed),
        "{:?}",
        failed.status.reason
    );
    let reason = failed.status.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("web-9") && reason.contains("web-8"),
        "{reason}"
    );
    assert_eq!(
        sim.count_at(&broken_rev),
        2,
        "no more pods broken than the budget"
    );
    // Terminal: nothing more happens.
    let evictions = sim.evictions;
    sim.advance(100);
    assert_eq!(sim.step().action, sroll_planner::Action::Wait);
    assert_eq!(sim.evictions, evictions);
    // A fixed spec replaces the broken pods without waiting for budget, then completes.
    set_image(&mut sim, "registry.example.com/app:v4");
    let first = sim.run(3);
    let _ = first;
    assert!(sim.deletes >= 2, "{:?}", sim.trace);
    let last = sim.run(500);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(sim.count_at(&broken_rev), 0);
    assert_eq!(updated_ordinals(&sim).len(), 10);
    assert_eq!(sim.controller_moves, 0, "{:?}", sim.trace);
}

#[test]
fn a_statefulset_deleted_mid_rollout_is_recreated_and_recorded() {
    let mut sim = settled(6, Some(2));
    set_image(&mut sim, "registry.example.com/app:v3");
    sim.step();
    sim.step();
    sim.applied = None;
    sim.pods.clear();
    let p = sim.step();
    assert_eq!(p.status.deleted, Some(true));
    let last = sim.run(500);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(last.status.deleted, Some(true));
    assert!(
        last.status
            .conditions
            .iter()
            .any(|c| c.reason == "StatefulSetDeleted")
    );
}

#[test]
fn a_thousand_pods_with_a_ten_percent_budget_finish_in_ten_batches() {
    let mut sim = settled(1000, Some(100));
    set_image(&mut sim, "registry.example.com/app:v3");
    let started = std::time::Instant::now();
    let last = sim.run(5000);
    assert_eq!(
        last.status.phase,
        Some(Phase::Done),
        "{:?}",
        last.status.reason
    );
    assert_eq!(sim.batches, 10);
    assert_eq!(sim.max_unavailable_seen, 100);
    assert_eq!(sim.controller_moves, 0);
    eprintln!(
        "1000 pods: {} plans, {} batches in {:?} ({:?} per plan)",
        sim.plans,
        sim.batches,
        started.elapsed(),
        started.elapsed() / u32::try_from(sim.plans).unwrap_or(1)
    );
}

#[test]
fn a_120_pod_rollout_at_a_20_percent_budget_announces_its_start_each_batch_and_its_end_once() {
    let mut sim = settled(120, Some(24));
    sim.rollout.spec.channel = Some("#deploys".into());
    set_image(&mut sim, "registry.example.com/app:v3");
    let mut phases: Vec<Phase> = Vec::new();
    let mut triggers = Vec::new();
    let mut slack_updates = 0;
    let mut last = sim.step();
    for i in 0..3000 {
        let phase = last.status.phase.clone().expect("a phase");
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        triggers.extend(last.notify.triggers.iter().cloned());
        slack_updates += usize::from(last.notify.slack);
        if phase.is_terminal() && last.action == sroll_planner::Action::Wait {
            break;
        }
        // A loaded machine: the StatefulSet controller often has not observed the last write.
        if i % 2 == 0 {
            sim.generation += 1;
        }
        if last.action == sroll_planner::Action::Wait {
            sim.advance(1);
        }
        last = sim.step();
    }
    assert_eq!(
        phases,
        [Phase::Pending, Phase::InProgress, Phase::Done],
        "no step back while waiting for the StatefulSet controller"
    );
    assert_eq!(sim.count_at(sim.update.as_deref().expect("update")), 120);
    use sroll_api::WebhookTrigger as T;
    let count = |t: T| triggers.iter().filter(|x| **x == t).count();
    assert_eq!(count(T::Started), 1, "{triggers:?}");
    assert_eq!(count(T::Completed), 1, "{triggers:?}");
    assert_eq!(
        count(T::StepCompleted),
        5,
        "one per batch of 24: {triggers:?}"
    );
    assert_eq!(triggers.len(), 7, "{triggers:?}");
    assert_eq!(
        slack_updates, 2,
        "Slack at level info: the start and the end"
    );
}
