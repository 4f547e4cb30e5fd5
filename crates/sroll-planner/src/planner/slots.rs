//! The set's slots as the planner reads them: one per ordinal of the set's range, its pod found on
//! demand in the ordinal-sorted [`Pods`], and the questions a decision asks answered from the
//! list's aggregates ([`SetCounts`]) instead of a walk over every pod.
//!
//! Every slot a decision looks at is counted ([`Slots::visits`], reported as
//! [`crate::PlanCost::pods_visited`]). A slot that is neither special nor looked up is one the
//! aggregates vouch for: present, Ready, not terminating, no in-place step pending, and — at the
//! update revision — available (`minReadySeconds` past, healthy in service discovery when gated).
//! The special slots ([`Slots::special`]) are the missing ones, the unavailable ones, those with
//! an in-place step pending, the update revision's pods Ready for less than `minReadySeconds`,
//! and, with a service-discovery gate, the update revision's pods not healthy there (finding those
//! reads every pod at the update revision: a discovery-gated rollout plans in O(updated pods)).
//! So a plan of a rollout with `k` pods in flight visits O(batch + k) slots, whatever the size of
//! the set.

use std::{
    cell::{Cell, OnceCell},
    collections::BTreeSet,
    sync::Arc,
};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::State;
use crate::{ObservedPod, Pods, index::SetCounts};

pub(super) struct Slots<'a> {
    pods: &'a Pods,
    name: &'a str,
    start: i32,
    len: usize,
    update: String,
    gate: Option<&'a BTreeSet<String>>,
    min_ready_seconds: i32,
    now: Timestamp,
    in_place_mode: bool,
    visits: Cell<u64>,
    special: OnceCell<Vec<Special<'a>>>,
}

/// A special slot, read once per plan: its index, state and pod.
#[derive(Clone, Copy)]
pub(super) struct Special<'a> {
    pub(super) i: usize,
    pub(super) state: State,
    pub(super) pod: Option<&'a ObservedPod>,
}

impl<'a> Slots<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        pods: &'a Pods,
        name: &'a str,
        start: i32,
        len: usize,
        update: String,
        gate: Option<&'a BTreeSet<String>>,
        min_ready_seconds: i32,
        now: Timestamp,
        in_place_mode: bool,
    ) -> Self {
        Slots {
            pods,
            name,
            start,
            len,
            update,
            gate,
            min_ready_seconds,
            now,
            in_place_mode,
            visits: Cell::new(0),
            special: OnceCell::new(),
        }
    }

    /// The same view, its visits counted apart (a rollback plans with a copy of the context).
    pub(super) fn again(&self) -> Self {
        Slots::new(
            self.pods,
            self.name,
            self.start,
            self.len,
            self.update.clone(),
            self.gate,
            self.min_ready_seconds,
            self.now,
            self.in_place_mode,
        )
    }

    fn counts(&self) -> &'a SetCounts {
        self.pods.counts()
    }

    /// Slots visited so far.
    pub(super) fn visits(&self) -> u64 {
        self.visits.get()
    }

    pub(super) fn visit(&self, n: usize) {
        self.visits
            .set(self.visits.get() + u64::try_from(n).unwrap_or(u64::MAX));
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn ordinal(&self, i: usize) -> i32 {
        self.start + i32::try_from(i).unwrap_or(i32::MAX)
    }

    /// The slot of `ordinal`, if it is in the range.
    fn index(&self, ordinal: i32) -> Option<usize> {
        let i = usize::try_from(i64::from(ordinal) - i64::from(self.start)).ok()?;
        (i < self.len).then_some(i)
    }

    /// `<set>-<ordinal>`.
    pub(super) fn name(&self, i: usize) -> String {
        format!("{}-{}", self.name, i64::from(self.start) + i as i64)
    }

    /// The pod of slot `i` (one visit).
    pub(super) fn pod(&self, i: usize) -> Option<&'a ObservedPod> {
        self.visit(1);
        self.pods.get(self.ordinal(i))
    }

    /// Where slot `i` stands (one visit).
    pub(super) fn state(&self, i: usize) -> State {
        self.pod(i).map_or(State::Missing, |p| self.state_of(p))
    }

    pub(super) fn state_of(&self, pod: &ObservedPod) -> State {
        let at_update = pod.revision.as_deref() == Some(self.update.as_str());
        if pod.terminating {
            State::Terminating
        } else if !at_update && self.out_for_in_place(pod) {
            State::InPlace
        } else if at_update {
            State::Updated {
                available: self.available(pod)
                    && self.gate.is_none_or(|healthy| healthy.contains(&*pod.name)),
            }
        } else {
            State::Old { ready: pod.ready }
        }
    }

    fn out_for_in_place(&self, pod: &ObservedPod) -> bool {
        self.in_place_mode && pod.in_place.has_gate && pod.in_place.gate_ready == Some(false)
    }

    /// Ready for `minReadySeconds` (upstream `IsPodAvailable`, pkg/api/v1/pod/util.go).
    fn available(&self, pod: &ObservedPod) -> bool {
        pod.ready
            && (self.min_ready_seconds <= 0
                || pod.ready_since.is_some_and(|t| {
                    t.checked_add(SignedDuration::from_secs(i64::from(self.min_ready_seconds)))
                        .is_ok_and(|at| at <= self.now)
                }))
    }

    /// The instant before which a pod must have become Ready to be available now (`None`: every
    /// Ready pod is).
    fn available_before(&self) -> Option<Timestamp> {
        (self.min_ready_seconds > 0).then(|| {
            self.now
                .checked_sub(SignedDuration::from_secs(i64::from(self.min_ready_seconds)))
                .unwrap_or(Timestamp::MIN)
        })
    }

    /// Every slot that is not surely `Updated { available: true }` or `Old { ready: true }`,
    /// highest first (see the module doc), with their states. Computed once per plan: each
    /// special slot is one visit, however many questions read it.
    pub(super) fn special(&self) -> &[Special<'a>] {
        self.special.get_or_init(|| {
            let counts = self.counts();
            let (lo, hi) = (self.start, self.ordinal(self.len));
            let mut found: BTreeSet<usize> = BTreeSet::new();
            self.missing(&mut found);
            for set in [&counts.unavailable, &counts.in_place] {
                found.extend(set.range(lo..hi).filter_map(|&o| self.index(o)));
            }
            let update = counts
                .by_revision
                .get(&Some(Arc::from(self.update.as_str())));
            if let (Some(r), Some(before)) = (update, self.available_before()) {
                // Ready at or after `before`: not available yet (an unknown instant sorts last).
                found.extend(
                    r.ready_since
                        .range((before, i32::MIN)..)
                        .filter_map(|&(_, o)| self.index(o)),
                );
            }
            if let (Some(r), Some(healthy)) = (update, self.gate) {
                self.visit(r.ordinals.len());
                found.extend(
                    r.ordinals
                        .range(lo..hi)
                        .filter(|&&o| {
                            self.pods
                                .get(o)
                                .is_some_and(|p| !healthy.contains(&*p.name))
                        })
                        .filter_map(|&o| self.index(o)),
                );
            }
            found
                .into_iter()
                .rev()
                .map(|i| {
                    let pod = self.pod(i);
                    Special {
                        i,
                        state: pod.map_or(State::Missing, |p| self.state_of(p)),
                        pod,
                    }
                })
                .collect()
        })
    }

    /// The special slots in `lo..hi`, highest first.
    pub(super) fn special_in(
        &self,
        lo: usize,
        hi: usize,
    ) -> impl Iterator<Item = Special<'a>> + '_ {
        self.special()
            .iter()
            .copied()
            .filter(move |s| s.i >= lo && s.i < hi)
    }

    /// The slots without a pod, found by bisecting the sorted list: a run of positions whose
    /// ordinals are as far apart as the positions has no gap (O(gaps · log n) probes).
    fn missing(&self, out: &mut BTreeSet<usize>) {
        let (lo, hi) = (self.start, self.ordinal(self.len));
        let first = self.pods.partition_point(|p| p.ordinal < lo);
        let end = self.pods.partition_point(|p| p.ordinal < hi);
        // Ordinals in [lo, hi) present at positions [first, end).
        let mut stack = vec![(first, end, lo, hi)];
        while let Some((a, b, olo, ohi)) = stack.pop() {
            self.visit(1);
            let present = b - a;
            let span = usize::try_from(ohi - olo).unwrap_or(0);
            if present == span {
                continue;
            }
            if present == 0 {
                out.extend((olo..ohi).filter_map(|o| self.index(o)));
                continue;
            }
            let mid = a + present / 2;
            let o = self.pods[mid].ordinal;
            stack.push((a, mid, olo, o));
            stack.push((mid + 1, b, o + 1, ohi));
        }
    }

    /// Slots whose pod is at another revision than the update revision (old, in place, or
    /// terminating), in `lo..hi`, highest first, merged from the revisions' ordinal sets: taking
    /// the first `k` visits `k` slots plus the terminating ones among them.
    pub(super) fn not_updated_desc(
        &self,
        lo: usize,
        hi: usize,
    ) -> impl Iterator<Item = usize> + '_ {
        let (olo, ohi) = (self.ordinal(lo), self.ordinal(hi));
        let mut runs: Vec<_> = self
            .counts()
            .by_revision
            .iter()
            .filter(|(r, _)| r.as_deref() != Some(self.update.as_str()))
            .map(|(_, c)| c.ordinals.range(olo..ohi).rev().peekable())
            .collect();
        std::iter::from_fn(move || {
            let best = runs
                .iter_mut()
                .enumerate()
                .filter_map(|(k, r)| r.peek().map(|&&o| (o, k)))
                .max()?;
            runs[best.1].next();
            self.index(best.0)
        })
    }

    /// Slots in state `Updated` in `lo..hi`: the update revision's pods counted from the aggregates
    /// minus those outside the range (read one by one: the pods below the target range and
    /// outside the set's range, normally none) and the terminating ones (special).
    pub(super) fn updated_in(&self, lo: usize, hi: usize) -> usize {
        let Some(r) = self
            .counts()
            .by_revision
            .get(&Some(Arc::from(self.update.as_str())))
        else {
            return 0;
        };
        let (olo, ohi) = (self.ordinal(lo), self.ordinal(hi));
        let outside = r.ordinals.range(..olo).count() + r.ordinals.range(ohi..).count();
        self.visit(outside);
        let terminating = self
            .special_in(lo, hi)
            .filter(|s| {
                s.pod.is_some_and(|p| {
                    p.terminating && p.revision.as_deref() == Some(self.update.as_str())
                })
            })
            .count();
        r.pods - outside - terminating
    }

    /// Pods in the range (present).
    pub(super) fn present(&self) -> usize {
        let (lo, hi) = (self.start, self.ordinal(self.len));
        self.pods.partition_point(|p| p.ordinal < hi)
            - self.pods.partition_point(|p| p.ordinal < lo)
    }

    /// Pods in the range that are Ready and not terminating (what the disruption controller counts
    /// healthy): the aggregates' Ready count minus the Ready pods terminating (special) and those
    /// outside the range (read one by one, normally none).
    pub(super) fn healthy(&self) -> usize {
        let (lo, hi) = (self.start, self.ordinal(self.len));
        let first = self.pods.partition_point(|p| p.ordinal < lo);
        let end = self.pods.partition_point(|p| p.ordinal < hi);
        let outside = self.pods[..first].iter().chain(&self.pods[end..]);
        self.visit(first + self.pods.len() - end);
        let ready_outside = outside.filter(|p| p.ready).count();
        let ready_terminating = self
            .special()
            .iter()
            .filter(|s| s.pod.is_some_and(|p| p.ready && p.terminating))
            .count();
        self.counts().ready - ready_outside - ready_terminating
    }

    /// The latest instant a pod of the range at the update revision became available (Ready for
    /// `minReadySeconds`, healthy when gated), not after now.
    pub(super) fn latest_available(&self) -> Option<Timestamp> {
        let r = self
            .counts()
            .by_revision
            .get(&Some(Arc::from(self.update.as_str())))?;
        let mrs = SignedDuration::from_secs(i64::from(self.min_ready_seconds.max(0)));
        let bound = self.now.checked_sub(mrs).ok()?;
        r.ready_since
            .range(..=(bound, i32::MAX))
            .rev()
            .find(|&&(_, o)| {
                self.index(o)
                    .is_some_and(|i| self.state(i) == State::Updated { available: true })
            })
            .and_then(|&(t, _)| t.checked_add(mrs).ok())
    }

    /// How long until the next pod Ready at the update revision becomes available
    /// (`minReadySeconds`): no watch event marks that instant.
    pub(super) fn next_available(&self) -> Option<std::time::Duration> {
        let before = self.available_before()?;
        let r = self
            .counts()
            .by_revision
            .get(&Some(Arc::from(self.update.as_str())))?;
        let mrs = SignedDuration::from_secs(i64::from(self.min_ready_seconds));
        r.ready_since
            .range((before, i32::MIN)..)
            .filter(|&&(_, o)| {
                self.index(o)
                    .is_some_and(|i| self.state(i) == State::Updated { available: false })
            })
            .filter_map(|&(t, _)| t.checked_add(mrs).ok())
            .find(|at| *at > self.now)
            .map(|at| super::to_std(at.duration_since(self.now)))
    }
}

#[cfg(test)]
mod tests {
    //! The aggregate-driven answers equal a walk over every slot, for arbitrary sets: pods
    //! missing, outside the range, of several revisions (or none), Ready or not, terminating,
    //! Ready for a while or just now (or at an unknown instant), out of traffic for an in-place
    //! update, and healthy in service discovery or not.

    use proptest::prelude::*;

    use super::*;
    use crate::inplace::PodInPlace;

    const NOW: i64 = 1_800_000_000;

    #[derive(Clone, Debug)]
    struct P {
        ordinal: i32,
        revision: Option<u8>,
        ready: bool,
        since: Option<i64>,
        terminating: bool,
        out: bool,
        healthy: bool,
    }

    fn pod() -> impl Strategy<Value = P> {
        (
            -3..30i32,
            prop::option::weighted(0.9, 0..3u8),
            any::<bool>(),
            prop::option::weighted(0.9, -100..5i64),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.8),
        )
            .prop_map(
                |(ordinal, revision, ready, since, terminating, out, healthy)| P {
                    ordinal,
                    revision,
                    ready,
                    since,
                    terminating,
                    out,
                    healthy,
                },
            )
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(NOW + secs).expect("valid")
    }

    fn observed(p: &P) -> ObservedPod {
        ObservedPod {
            name: format!("web-{}", p.ordinal).into(),
            ordinal: p.ordinal,
            revision: p.revision.map(|r| format!("rev-{r}").into()),
            ready: p.ready,
            ready_since: p.ready.then(|| p.since.map(at)).flatten(),
            terminating: p.terminating,
            phase: "Running".into(),
            uid: "".into(),
            in_place: Arc::new(PodInPlace {
                has_gate: p.out,
                gate_ready: p.out.then_some(false),
                ..PodInPlace::default()
            }),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn the_answers_equal_a_walk_over_every_slot(
            pods in prop::collection::vec(pod(), 0..40),
            start in 0..3i32,
            len in 0..25usize,
            min_ready in -1..20i32,
            gated in any::<bool>(),
            in_place_mode in any::<bool>(),
            lo in 0..25usize,
            span in 0..25usize,
        ) {
            let list: Pods = pods.iter().map(observed).collect();
            let healthy: BTreeSet<String> = pods
                .iter()
                .filter(|p| p.healthy)
                .map(|p| format!("web-{}", p.ordinal))
                .collect();
            let gate = gated.then_some(&healthy);
            let slots = Slots::new(
                &list, "web", start, len, "rev-0".into(), gate, min_ready, at(0), in_place_mode,
            );
            let walk = Slots::new(
                &list, "web", start, len, "rev-0".into(), gate, min_ready, at(0), in_place_mode,
            );
            let states: Vec<State> = (0..len).map(|i| walk.state(i)).collect();
            let (lo, hi) = (lo.min(len), (lo + span).min(len));

            // Every slot left out of the special ones is surely fine.
            let special: BTreeSet<usize> = slots.special().iter().map(|s| s.i).collect();
            for (i, state) in states.iter().enumerate() {
                if !matches!(state, State::Updated { available: true } | State::Old { ready: true }) {
                    prop_assert!(special.contains(&i), "slot {} ({:?}) not special", i, state);
                }
            }
            for s in slots.special() {
                prop_assert_eq!(s.state, states[s.i]);
            }
            // Pods of another revision, highest first.
            let not_updated: Vec<usize> = (lo..hi)
                .rev()
                .filter(|&i| {
                    walk.pod(i).is_some_and(|p| p.revision.as_deref() != Some("rev-0"))
                })
                .collect();
            prop_assert_eq!(slots.not_updated_desc(lo, hi).collect::<Vec<_>>(), not_updated);
            let updated = states[lo..hi]
                .iter()
                .filter(|s| matches!(s, State::Updated { .. }))
                .count();
            prop_assert_eq!(slots.updated_in(lo, hi), updated);
            let healthy_pods = (0..len)
                .filter_map(|i| walk.pod(i))
                .filter(|p| p.ready && !p.terminating)
                .count();
            prop_assert_eq!(slots.healthy(), healthy_pods);
            prop_assert_eq!(slots.present(), (0..len).filter(|&i| walk.pod(i).is_some()).count());
            let mrs = SignedDuration::from_secs(i64::from(min_ready.max(0)));
            let latest = (0..len)
                .filter(|&i| states[i] == State::Updated { available: true })
                .filter_map(|i| walk.pod(i).and_then(|p| p.ready_since))
                .filter_map(|t| t.checked_add(mrs).ok())
                .filter(|t| *t <= at(0))
                .max();
            prop_assert_eq!(slots.latest_available(), latest);
            // Only `minReadySeconds` makes a Ready pod wait for a time: with 0 (or less) a pod
            // at the update revision that is still unavailable (out of traffic, unhealthy in
            // service discovery) waits for an event, not an instant, even if its `Ready` time
            // lies ahead of `now` (clock skew).
            let next = (0..len)
                .filter(|_| min_ready > 0)
                .filter(|&i| states[i] == State::Updated { available: false })
                .filter_map(|i| walk.pod(i))
                .filter(|p| p.ready)
                .filter_map(|p| {
                    p.ready_since?
                        .checked_add(SignedDuration::from_secs(i64::from(min_ready)))
                        .ok()
                })
                .filter(|t| *t > at(0))
                .map(|t| super::super::to_std(t.duration_since(at(0))))
                .min();
            prop_assert_eq!(slots.next_available(), next);
        }
    }
}
