//! Property tests of `plan()` over arbitrary worlds: the safety rules hold whatever the pods,
//! partition, budget, pacing and pause state.

mod support;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use sroll_api::PodUpdatePolicy;
use sroll_api::{Phase, intstr::scaled_value};
use sroll_planner::{
    Action, Observed, Plan,
    inplace::{ImageChange, InPlaceChange, Op, PodInPlace},
    plan,
};
use support::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PodState {
    Missing,
    OldReady,
    OldNotReady,
    NewReady,
    NewNotReady,
    Terminating,
    /// At the old revision, out of traffic for an in-place update (gate `False`), not patched yet.
    InPlaceOut,
    /// Patched to the new revision in place, its container restarting.
    InPlaceRestarting,
}

fn pod_state() -> impl Strategy<Value = PodState> {
    prop_oneof![
        1 => Just(PodState::Missing),
        6 => Just(PodState::OldReady),
        1 => Just(PodState::OldNotReady),
        4 => Just(PodState::NewReady),
        1 => Just(PodState::NewNotReady),
        1 => Just(PodState::Terminating),
        1 => Just(PodState::InPlaceOut),
        1 => Just(PodState::InPlaceRestarting),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    pods: Vec<PodState>,
    percent: i32,
    partition: i32,
    pdbs: usize,
    allowed: i32,
    max_unavailable: Option<i32>,
    paused: bool,
    on_delete: bool,
    interval: Option<(i64, i64)>,
    rollback: bool,
    /// `podUpdatePolicy: InPlaceIfPossible` (else `ReCreate`), and its grace period.
    in_place: Option<i32>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..25).prop_flat_map(|n| {
        (
            prop::collection::vec(pod_state(), n),
            0i32..=100,
            0..=i32::try_from(n).unwrap_or(1),
            prop_oneof![3 => Just(1usize), 1 => Just(0usize), 1 => Just(2usize)],
            0i32..8,
            prop::option::of(1i32..6),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.3),
            prop::option::of((1i64..60, 0i64..90)),
            prop::bool::weighted(0.15),
            prop::option::weighted(0.5, prop_oneof![Just(0i32), Just(30i32)]),
        )
            .prop_map(
                |(
                    pods,
                    percent,
                    partition,
                    pdbs,
                    allowed,
                    max_unavailable,
                    paused,
                    on_delete,
                    interval,
                    rollback,
                    in_place,
                )| Case {
                    pods,
                    percent,
                    partition,
                    pdbs,
                    allowed,
                    max_unavailable,
                    paused,
                    on_delete,
                    interval,
                    rollback,
                    in_place,
                },
            )
    })
}

fn observed(c: &Case) -> Observed {
    let n = i32::try_from(c.pods.len()).unwrap_or(0);
    let mut r = Rollout::test().replicas(n).percent(c.percent);
    if c.paused {
        r = r.paused();
    }
    if c.on_delete {
        r = r.on_delete();
    }
    if let Some(mu) = c.max_unavailable {
        r = r.max_unavailable(IntOrString::Int(mu));
    }
    if let Some((secs, _)) = c.interval {
        r = r.interval(secs);
    }
    if let Some(grace) = c.in_place {
        r = r.in_place(PodUpdatePolicy::InPlaceIfPossible, grace);
    }
    let last = c.interval.map(|(_, ago)| micro(T0 - ago));
    let rollback = c.rollback;
    r = r.status(move |s| {
        s.phase = Some(Phase::InProgress);
        s.last_eviction_time = last;
        s.last_progress_time = Some(time(T0));
        if rollback {
            s.previous_revision = Some(NEW.into());
        }
    });
    let mut w = World::of(&r).pdb(c.allowed);
    if !c.on_delete {
        w = w.partition(c.partition);
    }
    if c.pdbs == 0 {
        w = w.no_pdb();
    } else if c.pdbs == 2 {
        w = w.extra_pdb("other");
    }
    for (i, s) in c.pods.iter().enumerate() {
        let o = i32::try_from(i).unwrap_or(0);
        w = match s {
            PodState::Missing => w.missing(o..o + 1),
            PodState::OldReady => w.pods(o..o + 1, OLD, Ready),
            PodState::OldNotReady => w.pods(o..o + 1, OLD, NotReady),
            PodState::NewReady => w.pods(o..o + 1, NEW, Ready),
            PodState::NewNotReady => w.pods(o..o + 1, NEW, NotReady),
            PodState::Terminating => w.pods(o..o + 1, OLD, Terminating),
            PodState::InPlaceOut => w.pods(o..o + 1, OLD, NotReady),
            PodState::InPlaceRestarting => w.pods(o..o + 1, NEW, NotReady),
        };
    }
    let mut o = w.observed();
    let mut pods: Vec<_> = o.pods.iter().cloned().collect();
    for (pod, s) in pods
        .iter_mut()
        .zip(c.pods.iter().filter(|s| **s != PodState::Missing))
    {
        let mut view = PodInPlace {
            has_gate: true,
            gate_ready: Some(true),
            gate_since: Some(at(T0 - 3600)),
            state_revision: None,
            containers_pending: vec![],
        };
        match s {
            PodState::InPlaceOut => {
                view.gate_ready = Some(false);
                view.gate_since = Some(at(T0 - 10));
            }
            PodState::InPlaceRestarting => {
                view.gate_ready = Some(false);
                view.state_revision = Some(NEW.into());
                view.containers_pending = vec!["app".into()];
            }
            _ => {}
        }
        pod.in_place = view.into();
    }
    o.pods = pods.into();
    let change = InPlaceChange {
        images: vec![ImageChange {
            container: "app".into(),
            init: false,
            image: "registry.example.com/app:v2".into(),
        }],
        ..InPlaceChange::default()
    };
    o.in_place.changes.insert(OLD.into(), Ok(change));
    o
}

/// Pods the plan takes out of traffic for an in-place update.
fn taken_out(p: &Plan) -> Vec<usize> {
    match &p.action {
        Action::InPlace { writes, .. } => writes
            .iter()
            .filter(|w| matches!(w.op, Op::TakeOutOfTraffic { .. }))
            .map(|w| ordinal(&w.pod))
            .collect(),
        _ => vec![],
    }
}

fn ordinal(name: &str) -> usize {
    name.rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX)
}

/// The pods the action takes down and the partition it leaves.
fn effect(p: &Plan, c: &Case) -> (Vec<usize>, Option<i32>) {
    let live = if c.on_delete { None } else { Some(c.partition) };
    match &p.action {
        Action::Evict { partition, pods } | Action::DeletePods { partition, pods } => (
            pods.iter().map(|n| ordinal(n)).collect(),
            partition.as_ref().map(|m| m.partition).or(live),
        ),
        Action::SetPartition(m) => (vec![], Some(m.partition)),
        Action::InPlace { partition, .. } => {
            (vec![], partition.as_ref().map(|m| m.partition).or(live))
        }
        _ => (vec![], live),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn never_evicts_more_than_the_budget(c in case()) {
        let p = plan(&observed(&c));
        if let Action::Evict { pods, .. } = &p.action {
            let n = i32::try_from(pods.len()).unwrap_or(i32::MAX);
            prop_assert!(c.pdbs <= 1, "evicted with {} PDBs", c.pdbs);
            if c.pdbs == 1 {
                prop_assert!(n <= c.allowed, "{n} > disruptionsAllowed {}", c.allowed);
            }
            if let Some(mu) = c.max_unavailable {
                let cap = scaled_value(&IntOrString::Int(mu), 0, true).unwrap_or(1);
                prop_assert!(n <= cap, "{n} > maxUnavailable {cap}");
            } else if c.pdbs == 0 {
                prop_assert!(n <= 1);
            }
            if c.interval.is_some() && !c.rollback {
                prop_assert!(n <= 1, "paced but evicted {n}");
                let (secs, ago) = c.interval.unwrap_or_default();
                prop_assert!(ago >= secs, "evicted {ago}s after the last eviction, interval {secs}s");
            }
        }
    }

    #[test]
    fn never_evicts_a_pod_already_at_its_target_revision(c in case()) {
        let p = plan(&observed(&c));
        if let Action::Evict { pods, .. } = &p.action {
            for name in pods {
                let state = c.pods[ordinal(name)];
                prop_assert!(
                    matches!(state, PodState::OldReady | PodState::OldNotReady | PodState::InPlaceOut),
                    "evicted {name} in state {state:?}"
                );
                prop_assert!(
                    c.in_place.is_none() || state != PodState::InPlaceOut,
                    "evicted {name}, which is being updated in place"
                );
            }
        }
        if let Action::DeletePods { pods, .. } = &p.action {
            for name in pods {
                let state = c.pods[ordinal(name)];
                prop_assert!(
                    state == PodState::OldNotReady
                        || (state == PodState::InPlaceOut && c.in_place.is_none()),
                    "deleted {name} in state {state:?}"
                );
            }
        }
    }

    #[test]
    fn paused_means_no_eviction_and_the_partition_never_lowered(c in case()) {
        let c = Case { paused: true, ..c };
        let p = plan(&observed(&c));
        prop_assert!(!matches!(p.action, Action::Evict { .. } | Action::DeletePods { .. }), "{:?}", p.action);
        prop_assert!(taken_out(&p).is_empty(), "took pods out of traffic while paused: {:?}", p.action);
        if let Action::InPlace { partition: Some(m), .. } = &p.action {
            prop_assert!(m.partition >= c.partition, "lowered {} → {} while paused", c.partition, m.partition);
        }
        if let Action::SetPartition(m) = &p.action {
            prop_assert!(m.partition >= c.partition, "lowered {} → {} while paused", c.partition, m.partition);
        }
    }

    #[test]
    fn partitioned_never_leaves_an_unchosen_old_pod_at_or_above_the_partition(c in case()) {
        let c = Case { on_delete: false, ..c };
        let p = plan(&observed(&c));
        if matches!(p.status.phase, Some(Phase::Failed) | Some(Phase::Blocked)) {
            return Ok(());
        }
        let (chosen, partition) = effect(&p, &c);
        let partition = usize::try_from(partition.unwrap_or(0)).unwrap_or(0);
        for (i, s) in c.pods.iter().enumerate().skip(partition) {
            if matches!(s, PodState::OldReady | PodState::OldNotReady | PodState::InPlaceOut) {
                prop_assert!(
                    chosen.contains(&i),
                    "old pod web-{i} at or above partition {partition} not chosen; action {:?}",
                    p.action
                );
            }
        }
    }

    #[test]
    fn evictions_go_highest_ordinal_first_and_skip_no_old_pod(c in case()) {
        let p = plan(&observed(&c));
        let Action::Evict { pods, .. } = &p.action else { return Ok(()); };
        let ordinals: Vec<usize> = pods.iter().map(|n| ordinal(n)).collect();
        prop_assert!(ordinals.windows(2).all(|w| w[0] > w[1]), "{ordinals:?}");
        let lowest = *ordinals.last().unwrap_or(&0);
        for (i, s) in c.pods.iter().enumerate().skip(lowest) {
            if matches!(s, PodState::OldReady | PodState::OldNotReady)
                || (*s == PodState::InPlaceOut && c.in_place.is_none())
            {
                prop_assert!(ordinals.contains(&i), "old pod web-{i} skipped: {ordinals:?}");
            }
        }
    }

    #[test]
    fn terminal_phases_yield_no_action(c in case(), failed in any::<bool>()) {
        let mut o = observed(&c);
        if let Some(s) = o.rollout.status.as_mut() {
            s.phase = Some(if failed { Phase::Failed } else { Phase::Done });
        }
        let p = plan(&o);
        // Only gate conditions may be written: a pod created with the gate (or put back into
        // traffic) must get `InPlaceUpdateReady=True` to ever be Ready, whatever the phase.
        if let Action::InPlace { partition, writes } = &p.action {
            prop_assert!(partition.is_none());
            prop_assert!(writes.iter().all(|w| w.op == Op::MarkReady), "{writes:?}");
        } else {
            prop_assert_eq!(&p.action, &Action::Wait);
            prop_assert_eq!(p.requeue_after, None);
        }
        prop_assert!(p.status.phase.as_ref().is_some_and(Phase::is_terminal));
    }

    #[test]
    fn in_place_never_takes_more_pods_out_of_traffic_than_the_budget(c in case()) {
        let c = Case { in_place: Some(c.in_place.unwrap_or(0)), ..c };
        let p = plan(&observed(&c));
        let out = taken_out(&p);
        let n = i32::try_from(out.len()).unwrap_or(i32::MAX);
        if n == 0 {
            return Ok(());
        }
        prop_assert!(c.pdbs <= 1, "in place with {} PDBs", c.pdbs);
        if c.pdbs == 1 {
            prop_assert!(n <= c.allowed, "{n} > disruptionsAllowed {}", c.allowed);
        } else if c.max_unavailable.is_none() {
            prop_assert!(n <= 1);
        }
        let updating = i32::try_from(
            c.pods
                .iter()
                .filter(|s| matches!(s, PodState::InPlaceOut | PodState::InPlaceRestarting))
                .count(),
        )
        .unwrap_or(0);
        if let Some(mu) = c.max_unavailable {
            prop_assert!(n + updating <= mu, "{n} taken out + {updating} updating > maxUnavailable {mu}");
        }
        if c.interval.is_some() && !c.rollback {
            prop_assert!(n <= 1, "paced but took {n} out");
        }
        for i in out {
            prop_assert!(
                matches!(c.pods[i], PodState::OldReady | PodState::OldNotReady),
                "took web-{i} out of traffic in state {:?}", c.pods[i]
            );
        }
    }

    #[test]
    fn in_place_pods_stay_below_the_partition_until_patched(c in case()) {
        let c = Case { in_place: Some(c.in_place.unwrap_or(0)), on_delete: false, ..c };
        let p = plan(&observed(&c));
        let (_, partition) = effect(&p, &c);
        let partition = usize::try_from(partition.unwrap_or(0)).unwrap_or(0);
        let patched: Vec<usize> = match &p.action {
            Action::InPlace { writes, .. } => writes
                .iter()
                .filter(|w| matches!(w.op, Op::PatchImages { .. }))
                .map(|w| ordinal(&w.pod))
                .collect(),
            _ => vec![],
        };
        let out = taken_out(&p);
        for (i, s) in c.pods.iter().enumerate().skip(partition) {
            // The world may start with one above the partition (not a state the planner makes);
            // the plan must not lower the partition past one that was below it.
            prop_assert!(
                *s != PodState::InPlaceOut || patched.contains(&i) || i >= usize::try_from(c.partition).unwrap_or(0),
                "web-{i}, out of traffic at the old revision, at or above partition {partition}: {:?}",
                p.action
            );
            prop_assert!(!out.contains(&i) || patched.contains(&i), "web-{i} taken out at or above partition {partition}");
        }
        // Only a pod out of traffic (now or in this very plan) is patched.
        for i in patched {
            prop_assert!(
                c.pods[i] == PodState::InPlaceOut || taken_out(&p).contains(&i),
                "patched web-{i} in state {:?}", c.pods[i]
            );
        }
    }
}
