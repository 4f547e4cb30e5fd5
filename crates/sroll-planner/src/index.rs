//! The pod index: per StatefulSet, a slot per ordinal and the aggregates the planner decides on,
//! kept up to date by the pod watch's events instead of being recomputed from every pod on every
//! reconcile.
//!
//! This is the pure half of the index (the operator feeds it from its pod watch:
//! `sroll_operator::cache::index`). It follows the linkerd policy-controller's
//! `IndexNamespacedResource` pattern (one `apply`/`delete`/`reset` per watch event, the index
//! owning the derived state) with the three event kinds `kube-runtime`'s watcher delivers:
//!
//! - [`PodIndex::apply`] for an added or modified pod (idempotent: a duplicated event changes
//!   nothing, not even the [`SetIndex::generation`]);
//! - [`PodIndex::delete`] for a deleted pod (ignored when the slot already holds a newer
//!   incarnation, i.e. another uid);
//! - [`PodIndex::relist_begin`], [`PodIndex::relist_item`], [`PodIndex::relist_end`] for a relist
//!   (`Init`, `InitApply`, `InitDone`): the listed pods replace the index at `relist_end`, as they
//!   replace the reflector store at `InitDone`, and only the slots that differ are touched — a
//!   relist after a missed event repairs exactly what was missed.
//!
//! Every change updates the [`SetCounts`] of its set in O(log n) and bumps the set's
//! [`SetIndex::generation`]; [`SetCounts::recount`] is the full recount the property tests hold
//! the incremental aggregates to. [`SetIndex::snapshot`] hands out the set's pods as the shared
//! [`Pods`] list the index itself keeps (copied only when an event changes it while an
//! observation still holds it), so observing an unchanged set costs O(1) and comparing two
//! observations of it is a pointer comparison.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use k8s_openapi::jiff::Timestamp;

use crate::{
    inplace::PodInPlace,
    observed::{ObservedPod, Pods},
};

/// How soon a change of a set's pods must reach its rollout's planner: the operator's pod and PDB
/// triggers wake the rollout at once for [`Wake::Now`] and within a short delay for
/// [`Wake::Later`] (unless something wakes it at once before then).
///
/// Why a change may wait: a plan reads the whole cache when it runs, so a plan made later never
/// decides on less than one made at once — it can only act later. And a change that leaves the
/// pod not Ready (or gone, or terminating) can only make the planner *wait*: it takes a pod out
/// of the budget, it never frees one. During a rollout most pod events are of that kind and are
/// the rollout's own doing — an evicted pod turning terminating, then deleted, then recreated not
/// Ready — and each woke a plan that found nothing to do but report it (issue #16: 1.55–1.72
/// reconciles per pod updated at 10 × 1,000). What such a change does alter is the status
/// (`status.pods`, the counts), and the status reports progress at most once a second anyway
/// (the operator's progress-write interval). The changes that can let the planner act — a pod
/// becoming Ready (budget freed, a batch complete), an in-place update moving on, new labels
/// (selector membership) — wake it at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Wake {
    /// Within the short delay (the change can only make the planner wait).
    Later,
    /// At once.
    Now,
}

impl Wake {
    /// How soon a pod slot that held `old` (`None`: empty) and now holds `new` (`None`: emptied)
    /// must be planned on; `labels_changed`: the feeder's extra (the pod's labels) changed.
    ///
    /// [`Wake::Now`] when the new pod is Ready and not terminating (it may complete a batch or
    /// free budget), when the pod's in-place state changed (an in-place update waits on each of
    /// its steps) or when its labels did; [`Wake::Later`] otherwise.
    pub fn of_change(
        old: Option<&ObservedPod>,
        new: Option<&ObservedPod>,
        labels_changed: bool,
    ) -> Wake {
        let ready = new.is_some_and(|p| p.ready && !p.terminating);
        let in_place = old.map(|p| &p.in_place) != new.map(|p| &p.in_place)
            && (old.is_some_and(|p| *p.in_place != PodInPlace::default())
                || new.is_some_and(|p| *p.in_place != PodInPlace::default()));
        if ready || in_place || labels_changed {
            Wake::Now
        } else {
            Wake::Later
        }
    }
}

/// What a pod of a set contributes to its set's aggregates, summed over the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetCounts {
    /// Pods in the index (whatever their state).
    pub pods: usize,
    /// Pods `Running` with condition `Ready` (`ObservedPod::ready`).
    pub ready: usize,
    /// Pods with a `deletionTimestamp`.
    pub terminating: usize,
    /// Per `controller-revision-hash` label (`None`: no label), the pods and the ready pods.
    pub by_revision: BTreeMap<Option<Arc<str>>, RevisionCount>,
    /// Ordinals of the pods not ready or terminating: the pods an update is in flight on, or that
    /// are broken — the only pods besides the next batch a decision can touch.
    pub unavailable: BTreeSet<i32>,
    /// Ordinals of the pods an in-place update still has to act on ([`in_place_active`]): out of
    /// traffic, containers not yet at their new image, or a gate not `True`.
    pub in_place: BTreeSet<i32>,
}

/// The pods of one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionCount {
    /// Pods carrying the revision.
    pub pods: usize,
    /// Of them, the ready ones.
    pub ready: usize,
    /// Their ordinals: the highest old pod, the next batch (old pods, highest ordinal first) and
    /// the pods of a revision in an ordinal range are found from it without visiting the others.
    pub ordinals: BTreeSet<i32>,
    /// The ready ones by `ready_since` (an unknown instant sorts last, as [`Timestamp::MAX`]):
    /// the pods not yet available for `minReadySeconds`, and the latest to become available,
    /// are its last entries.
    pub ready_since: BTreeSet<(Timestamp, i32)>,
}

/// Whether an in-place update still has to act on a pod with `view`: containers of a recorded
/// update not ready yet, or the readiness gate present and not `True` (out of traffic, or created
/// with the gate and never marked). Every other pod is one the planner's in-place continuation
/// (`planner::in_place`) leaves alone.
pub fn in_place_active(view: &PodInPlace) -> bool {
    !view.containers_pending.is_empty() || (view.has_gate && view.gate_ready != Some(true))
}

fn ready_key(pod: &ObservedPod) -> (Timestamp, i32) {
    (pod.ready_since.unwrap_or(Timestamp::MAX), pod.ordinal)
}

impl SetCounts {
    pub(crate) fn add(&mut self, pod: &ObservedPod) {
        self.pods += 1;
        self.ready += usize::from(pod.ready);
        self.terminating += usize::from(pod.terminating);
        let r = self.by_revision.entry(pod.revision.clone()).or_default();
        r.pods += 1;
        r.ready += usize::from(pod.ready);
        r.ordinals.insert(pod.ordinal);
        if pod.ready {
            r.ready_since.insert(ready_key(pod));
        }
        if !pod.ready || pod.terminating {
            self.unavailable.insert(pod.ordinal);
        }
        if in_place_active(&pod.in_place) {
            self.in_place.insert(pod.ordinal);
        }
    }

    pub(crate) fn remove(&mut self, pod: &ObservedPod) {
        self.pods -= 1;
        self.ready -= usize::from(pod.ready);
        self.terminating -= usize::from(pod.terminating);
        if let Some(r) = self.by_revision.get_mut(&pod.revision) {
            r.pods -= 1;
            r.ready -= usize::from(pod.ready);
            r.ordinals.remove(&pod.ordinal);
            if pod.ready {
                r.ready_since.remove(&ready_key(pod));
            }
            if r.pods == 0 {
                self.by_revision.remove(&pod.revision);
            }
        }
        self.unavailable.remove(&pod.ordinal);
        self.in_place.remove(&pod.ordinal);
    }

    /// The aggregates of `pods`, counted from scratch.
    pub fn recount<'a>(pods: impl IntoIterator<Item = &'a ObservedPod>) -> Self {
        let mut counts = SetCounts::default();
        for pod in pods {
            counts.add(pod);
        }
        counts
    }
}

/// One ordinal's pod as indexed: its planner view, the `resourceVersion` it was read at, and
/// whatever the feeder keeps beside it (`T`: the operator keeps a handle on the pod's interned
/// labels, to match the set's selector without rebuilding them, and what its other readers need
/// of the pod: the index is the operator's only copy of its pods).
#[derive(Clone, Debug)]
pub struct Slot<T> {
    /// The planner's view of the pod.
    pub pod: ObservedPod,
    /// `metadata.resourceVersion` (empty if unknown).
    pub resource_version: Box<str>,
    /// The feeder's extra.
    pub extra: T,
}

/// What a feeder keeps beside a pod's view ([`Slot::extra`]). Part of it may decide which pods an
/// observation selects (the operator's: the pod's labels, matched against the set's selector): a
/// change of that part is a change of the set (it bumps the [`SetIndex::generation`] and wakes
/// the planner at once, [`Wake::of_change`]); the rest is carried along as the `resourceVersion`
/// is, without counting as a change.
pub trait SlotExtra {
    /// Whether `self` and `other` select alike (a change from one to the other is no change of
    /// the set as observed).
    fn selects_alike(&self, other: &Self) -> bool;
}

/// Nothing kept beside the view (the tests' feeder).
impl SlotExtra for () {
    fn selects_alike(&self, _: &()) -> bool {
        true
    }
}

/// The index of one StatefulSet's pods: a slot per ordinal and the set's aggregates.
///
/// The pods' views are kept as the very list observations are handed ([`Pods`], sorted by
/// ordinal), with the slots' other parts in a parallel list: one copy of each view, changed in
/// place while no observation holds the list, copied once (by `Pods`' copy-on-write) when one
/// does.
#[derive(Debug)]
pub struct SetIndex<T> {
    /// The views, with their aggregates.
    pods: Pods,
    /// `(resourceVersion, extra)` of `pods[i]`.
    rest: Vec<(Box<str>, T)>,
    generation: u64,
    /// The last [`Self::snapshot`]: generation, filter key, and the filtered list (`None`: the
    /// filter kept every pod, the snapshot is `pods` itself).
    filtered: Option<(u64, u64, Option<Pods>)>,
}

impl<T> Default for SetIndex<T> {
    fn default() -> Self {
        SetIndex {
            pods: Pods::default(),
            rest: Vec::new(),
            generation: 0,
            filtered: None,
        }
    }
}

impl<T> SetIndex<T> {
    /// The pods, in ordinal order.
    pub fn pods(&self) -> &Pods {
        &self.pods
    }

    /// The slot of `ordinal`: the pod's view, its `resourceVersion` and the feeder's extra.
    pub fn slot(&self, ordinal: i32) -> Option<(&ObservedPod, &str, &T)> {
        let i = self.find(ordinal).ok()?;
        let (rv, extra) = &self.rest[i];
        Some((&self.pods[i], rv, extra))
    }

    /// Whether no pod is indexed.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The aggregates, as maintained event by event.
    pub fn counts(&self) -> &SetCounts {
        self.pods.counts()
    }

    /// A counter bumped by every change of a slot's view (never by a duplicated event, nor by one
    /// that changed only what the view leaves out).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn find(&self, ordinal: i32) -> Result<usize, usize> {
        self.pods.position(ordinal)
    }

    /// Puts `slot` at its ordinal; how soon the change must be planned on, `None` when the view
    /// did not change (a slot that differs only in its `resourceVersion`, or in a part of its
    /// extra that selects alike, is updated in place without counting as a change).
    fn put(&mut self, slot: Slot<T>) -> Option<Wake>
    where
        T: SlotExtra,
    {
        let Slot {
            pod,
            resource_version,
            extra,
        } = slot;
        let wake = match self.find(pod.ordinal) {
            Ok(i) => {
                let labels_changed = !self.rest[i].1.selects_alike(&extra);
                if *self.pods[i] == pod && !labels_changed {
                    self.rest[i] = (resource_version, extra);
                    return None;
                }
                let wake = Wake::of_change(Some(&*self.pods[i]), Some(&pod), labels_changed);
                self.pods.put(pod);
                self.rest[i] = (resource_version, extra);
                wake
            }
            Err(i) => {
                let wake = Wake::of_change(None, Some(&pod), false);
                self.pods.put(pod);
                self.rest.insert(i, (resource_version, extra));
                wake
            }
        };
        self.generation += 1;
        Some(wake)
    }

    /// Empties the ordinal when it holds the incarnation `uid` (any, when `uid` is empty); how
    /// soon that must be planned on ([`Wake::of_change`]), `None` when nothing was taken.
    fn take(&mut self, ordinal: i32, uid: &str) -> Option<Wake> {
        let i = self.find(ordinal).ok()?;
        let old = &self.pods[i];
        if !(uid.is_empty() || old.uid.is_empty() || *old.uid == *uid) {
            return None;
        }
        let wake = Wake::of_change(Some(&**old), None, false);
        self.pods.take(ordinal);
        self.rest.remove(i);
        self.generation += 1;
        Some(wake)
    }

    /// The pods `keep` accepts, in ordinal order, shared: the index's own list when `keep`
    /// accepts them all, else a filtered copy. `keep` is run again only when the set changed since
    /// the last call or `key` (which must identify `keep`: the operator hashes the selector and
    /// the ordinal range into it) differs from the last call's: an unchanged set costs O(1).
    pub fn snapshot(&mut self, key: u64, mut keep: impl FnMut(&ObservedPod, &T) -> bool) -> Pods {
        if let Some((generation, k, filtered)) = &self.filtered
            && *generation == self.generation
            && *k == key
        {
            return filtered.clone().unwrap_or_else(|| self.pods.clone());
        }
        let kept: Vec<bool> = self
            .pods
            .iter()
            .zip(&self.rest)
            .map(|(p, (_, extra))| keep(p, extra))
            .collect();
        let filtered = (!kept.iter().all(|k| *k)).then(|| {
            self.pods
                .iter()
                .zip(&kept)
                .filter(|(_, k)| **k)
                .map(|(p, _)| p.clone())
                .collect::<Pods>()
        });
        self.filtered = Some((self.generation, key, filtered.clone()));
        filtered.unwrap_or_else(|| self.pods.clone())
    }
}

/// Where a pod belongs in the index: its namespace, its set (the name without `-<ordinal>`) and
/// its ordinal. `None` for a name that is not `<set>-<ordinal>` (upstream
/// `getParentNameAndOrdinal`, `pkg/controller/statefulset/stateful_set_utils.go`).
pub fn set_of(pod_name: &str) -> Option<(&str, i32)> {
    let (set, ordinal) = pod_name.rsplit_once('-')?;
    if set.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((set, ordinal.parse().ok()?))
}

/// `(namespace, set name)`.
pub type SetKey = (Arc<str>, Arc<str>);

/// The index of every set's pods in the scope of one pod watch.
#[derive(Debug)]
pub struct PodIndex<T> {
    sets: HashMap<SetKey, SetIndex<T>>,
    relist: Option<Vec<(String, Slot<T>)>>,
}

impl<T> Default for PodIndex<T> {
    fn default() -> Self {
        PodIndex {
            sets: HashMap::new(),
            relist: None,
        }
    }
}

impl<T: SlotExtra> PodIndex<T> {
    /// The index of the set `name` in `namespace`, if it has any pod.
    pub fn set(&self, namespace: &str, name: &str) -> Option<&SetIndex<T>> {
        self.sets.get(&key(namespace, name))
    }

    /// The slot of the pod `pod_name` of `namespace` (its view, `resourceVersion` and extra), if
    /// the index holds a pod of that name: the pods are looked up by name here, as in a reflector
    /// store keyed by name.
    pub fn pod(&self, namespace: &str, pod_name: &str) -> Option<(&ObservedPod, &str, &T)> {
        let (set, ordinal) = set_of(pod_name)?;
        self.set(namespace, set)?
            .slot(ordinal)
            .filter(|(pod, _, _)| *pod.name == *pod_name)
    }

    /// How many pods are indexed (O(sets)).
    pub fn len(&self) -> usize {
        self.sets.values().map(|s| s.pods.len()).sum()
    }

    /// Whether no pod is indexed.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Mutable access (for [`SetIndex::snapshot`]).
    pub fn set_mut(&mut self, namespace: &str, name: &str) -> Option<&mut SetIndex<T>> {
        self.sets.get_mut(&key(namespace, name))
    }

    /// Every indexed set.
    pub fn sets(&self) -> impl Iterator<Item = (&SetKey, &SetIndex<T>)> {
        self.sets.iter()
    }

    /// An added or modified pod `slot.pod` of `namespace`; whether its set's index changed.
    pub fn apply(&mut self, namespace: &str, slot: Slot<T>) -> bool {
        self.apply_waking(namespace, slot).is_some()
    }

    /// [`Self::apply`], telling how soon the change must be planned on (`None`: no change).
    pub fn apply_waking(&mut self, namespace: &str, slot: Slot<T>) -> Option<Wake> {
        let (set, _) = set_of(&slot.pod.name)?;
        let k = key(namespace, set);
        self.sets.entry(k).or_default().put(slot)
    }

    /// A deleted pod (`uid`: the incarnation deleted; empty if unknown); whether its set's index
    /// changed.
    pub fn delete(&mut self, namespace: &str, pod_name: &str, uid: &str) -> bool {
        self.delete_waking(namespace, pod_name, uid).is_some()
    }

    /// [`Self::delete`], telling how soon the change must be planned on (`None`: no change).
    pub fn delete_waking(&mut self, namespace: &str, pod_name: &str, uid: &str) -> Option<Wake> {
        let (set, ordinal) = set_of(pod_name)?;
        let k = key(namespace, set);
        let index = self.sets.get_mut(&k)?;
        let changed = index.take(ordinal, uid);
        if index.is_empty() {
            self.sets.remove(&k);
        }
        changed
    }

    /// A relist starts (`Init`): the pods listed until [`Self::relist_end`] replace the index.
    pub fn relist_begin(&mut self) {
        self.relist = Some(Vec::new());
    }

    /// A pod of the relist (`InitApply`).
    pub fn relist_item(&mut self, namespace: &str, slot: Slot<T>) {
        self.relist
            .get_or_insert_with(Vec::new)
            .push((namespace.to_owned(), slot));
    }

    /// The relist is complete (`InitDone`): pods not listed are removed, listed ones applied.
    /// Returns the sets that changed.
    pub fn relist_end(&mut self) -> Vec<SetKey> {
        let listed = self.relist.take().unwrap_or_default();
        let mut seen: HashMap<SetKey, BTreeSet<i32>> = HashMap::new();
        let mut changed: BTreeSet<SetKey> = BTreeSet::new();
        for (namespace, slot) in listed {
            let Some((set, ordinal)) = set_of(&slot.pod.name) else {
                continue;
            };
            let k = key(&namespace, set);
            seen.entry(k.clone()).or_default().insert(ordinal);
            if self.sets.entry(k.clone()).or_default().put(slot).is_some() {
                changed.insert(k);
            }
        }
        for (k, index) in &mut self.sets {
            let keep = seen.get(k);
            let gone: Vec<i32> = index
                .pods()
                .iter()
                .map(|p| p.ordinal)
                .filter(|o| keep.is_none_or(|s| !s.contains(o)))
                .collect();
            for ordinal in gone {
                let _ = index.take(ordinal, "");
                changed.insert(k.clone());
            }
        }
        self.sets.retain(|_, index| !index.is_empty());
        changed.into_iter().collect()
    }
}

fn key(namespace: &str, set: &str) -> SetKey {
    (Arc::from(namespace), Arc::from(set))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One pod's state in the world the watch reports on.
    #[derive(Clone, Debug, PartialEq)]
    struct PodState {
        uid: u8,
        revision: Option<u8>,
        ready: bool,
        terminating: bool,
        gate: Option<bool>,
    }

    fn pod_state() -> impl Strategy<Value = PodState> {
        (
            0u8..3,
            proptest::option::of(0u8..3),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(uid, revision, ready, terminating, gate)| PodState {
                uid,
                revision,
                ready,
                terminating,
                gate,
            })
    }

    /// What happens in the world: a pod (set, ordinal) is written or deleted.
    #[derive(Clone, Debug)]
    enum Change {
        Write(u8, i32, PodState),
        Delete(u8, i32),
    }

    /// How the watch delivers a change: normally, twice, or not at all (a missed event, repaired
    /// by the next relist only).
    #[derive(Clone, Copy, Debug)]
    enum Delivery {
        Once,
        Twice,
        Missed,
    }

    fn step() -> impl Strategy<Value = (Change, Delivery, bool)> {
        let change = prop_oneof![
            4 => (0u8..2, 0i32..6, pod_state()).prop_map(|(s, o, p)| Change::Write(s, o, p)),
            1 => (0u8..2, 0i32..6).prop_map(|(s, o)| Change::Delete(s, o)),
        ];
        let delivery = prop_oneof![
            6 => Just(Delivery::Once),
            1 => Just(Delivery::Twice),
            1 => Just(Delivery::Missed),
        ];
        // The bool: a relist happens after this step.
        (change, delivery, proptest::bool::weighted(0.1))
    }

    fn name(set: u8, ordinal: i32) -> String {
        format!("set{set}-{ordinal}")
    }

    fn slot(set: u8, ordinal: i32, p: &PodState, version: u64) -> Slot<()> {
        Slot {
            pod: ObservedPod {
                name: name(set, ordinal).into(),
                ordinal,
                revision: p.revision.map(|r| format!("rev-{r}").into()),
                ready: p.ready,
                ready_since: None,
                terminating: p.terminating,
                phase: if p.ready { "Running" } else { "Pending" }.into(),
                uid: format!("uid-{}", p.uid).into(),
                in_place: Arc::new(crate::inplace::PodInPlace {
                    has_gate: p.gate.is_some(),
                    gate_ready: p.gate,
                    ..Default::default()
                }),
            },
            resource_version: version.to_string().into(),
            extra: (),
        }
    }

    type World = BTreeMap<(u8, i32), (PodState, u64)>;

    fn relist(index: &mut PodIndex<()>, world: &World) {
        index.relist_begin();
        for ((s, o), (p, v)) in world {
            index.relist_item("ns", slot(*s, *o, p, *v));
        }
        index.relist_end();
    }

    /// The index's incremental aggregates equal a recount of its own slots, set by set.
    fn assert_consistent(index: &PodIndex<()>) -> Result<(), TestCaseError> {
        for (k, set) in index.sets() {
            prop_assert!(!set.is_empty(), "empty set {k:?} kept");
            let recount = SetCounts::recount(set.pods());
            prop_assert_eq!(set.counts(), &recount, "set {:?}", k);
            prop_assert!(
                set.pods().windows(2).all(|w| w[0].ordinal < w[1].ordinal),
                "sorted by ordinal, one pod per ordinal"
            );
        }
        Ok(())
    }

    /// The index holds exactly the world's pods, with the aggregates a recount of the world gives.
    fn assert_mirrors(index: &PodIndex<()>, world: &World) -> Result<(), TestCaseError> {
        for set in 0u8..2 {
            let want: Vec<ObservedPod> = world
                .iter()
                .filter(|((s, _), _)| *s == set)
                .map(|((s, o), (p, v))| slot(*s, *o, p, *v).pod)
                .collect();
            let got: Vec<ObservedPod> = index
                .set("ns", &format!("set{set}"))
                .map(|i| i.pods().iter().cloned().collect())
                .unwrap_or_default();
            prop_assert_eq!(&got, &want);
            let counts = index
                .set("ns", &format!("set{set}"))
                .map(|i| i.counts().clone())
                .unwrap_or_default();
            prop_assert_eq!(counts, SetCounts::recount(&want));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the order of events, duplicated and missed ones included: the aggregates
        /// always equal a recount of the slots; while no event was missed since the last relist
        /// the index mirrors the world; after a relist it mirrors the world again.
        #[test]
        fn the_aggregates_equal_a_recount_whatever_the_events(
            steps in proptest::collection::vec(step(), 0..60),
        ) {
            let mut index = PodIndex::<()>::default();
            let mut world = World::new();
            let mut version = 0u64;
            let mut missed = false;
            for (change, delivery, relist_after) in steps {
                version += 1;
                let times = match delivery {
                    Delivery::Once => 1,
                    Delivery::Twice => 2,
                    Delivery::Missed => 0,
                };
                match change {
                    Change::Write(s, o, p) => {
                        world.insert((s, o), (p.clone(), version));
                        for _ in 0..times {
                            index.apply("ns", slot(s, o, &p, version));
                        }
                    }
                    Change::Delete(s, o) => {
                        if let Some((p, _)) = world.remove(&(s, o)) {
                            for _ in 0..times {
                                index.delete("ns", &name(s, o), &format!("uid-{}", p.uid));
                            }
                        } else {
                            continue;
                        }
                    }
                }
                missed |= times == 0;
                assert_consistent(&index)?;
                if relist_after {
                    relist(&mut index, &world);
                    missed = false;
                }
                if !missed {
                    assert_mirrors(&index, &world)?;
                }
            }
            relist(&mut index, &world);
            assert_consistent(&index)?;
            assert_mirrors(&index, &world)?;
        }

        /// A duplicated event changes nothing, not even the generation; a snapshot of an unchanged
        /// set is the same shared list.
        #[test]
        fn a_duplicated_event_is_not_a_change(
            pods in proptest::collection::vec((0i32..8, pod_state()), 1..12),
        ) {
            let mut index = PodIndex::<()>::default();
            for (v, (o, p)) in pods.iter().enumerate() {
                index.apply("ns", slot(0, *o, p, v as u64));
            }
            let set = index.set_mut("ns", "set0").expect("indexed");
            let generation = set.generation();
            let first = set.snapshot(1, |_, _| true);
            let (v, (o, p)) = pods.iter().enumerate().next_back().expect("one pod");
            prop_assert!(!index.apply("ns", slot(0, *o, p, v as u64)));
            let set = index.set_mut("ns", "set0").expect("indexed");
            prop_assert_eq!(set.generation(), generation);
            prop_assert!(first.same_list(&set.snapshot(1, |_, _| true)));
            let odd = set.snapshot(2, |p, _| p.ordinal % 2 == 1);
            prop_assert!(odd.iter().all(|p| p.ordinal % 2 == 1), "another filter");
            prop_assert!(odd.same_list(&set.snapshot(2, |_, _| unreachable!("cached"))));
        }
    }

    #[test]
    fn a_new_resource_version_with_the_same_view_is_not_a_change() {
        let mut index = PodIndex::<()>::default();
        let p = PodState {
            uid: 1,
            revision: Some(1),
            ready: true,
            terminating: false,
            gate: None,
        };
        assert!(index.apply("ns", slot(0, 0, &p, 1)));
        let generation = index.set("ns", "set0").expect("indexed").generation();
        assert!(
            !index.apply("ns", slot(0, 0, &p, 2)),
            "an annotation changed"
        );
        let set = index.set("ns", "set0").expect("indexed");
        assert_eq!(set.generation(), generation);
        assert_eq!(set.slot(0).map(|(_, rv, _)| rv), Some("2"));
    }

    #[test]
    fn a_delete_of_an_older_incarnation_keeps_the_newer_one() {
        let mut index = PodIndex::<()>::default();
        let old = PodState {
            uid: 1,
            revision: Some(1),
            ready: true,
            terminating: false,
            gate: None,
        };
        let new = PodState {
            uid: 2,
            ..old.clone()
        };
        index.apply("ns", slot(0, 3, &old, 1));
        // The delete of uid-1 was missed; the recreated pod (uid-2) arrives, then a stale delete.
        index.apply("ns", slot(0, 3, &new, 2));
        assert!(!index.delete("ns", "set0-3", "uid-1"));
        let set = index.set("ns", "set0").expect("indexed");
        assert_eq!(set.slot(3).map(|(p, _, _)| &*p.uid), Some("uid-2"));
        assert!(index.delete("ns", "set0-3", "uid-2"));
        assert!(index.set("ns", "set0").is_none(), "an empty set is dropped");
    }

    #[test]
    fn names_map_to_their_set_and_ordinal() {
        assert_eq!(set_of("web-0"), Some(("web", 0)));
        assert_eq!(set_of("web-1-12"), Some(("web-1", 12)));
        assert_eq!(set_of("web"), None);
        assert_eq!(set_of("web-"), None);
        assert_eq!(set_of("-3"), None);
        assert_eq!(set_of("web-x1"), None);
    }

    /// Only a pod that can free budget or move an in-place update on, or new labels, wake the
    /// planner at once.
    #[test]
    fn a_change_wakes_the_planner_at_once_only_when_it_may_let_it_act() {
        let pod = |ready: bool, terminating: bool| ObservedPod {
            name: "web-0".into(),
            ready,
            terminating,
            phase: "Running".into(),
            uid: "u".into(),
            ..ObservedPod::default()
        };
        let (ready, down, going) = (pod(true, false), pod(false, false), pod(true, true));
        assert_eq!(Wake::of_change(Some(&down), Some(&ready), false), Wake::Now);
        assert_eq!(Wake::of_change(None, Some(&ready), false), Wake::Now);
        assert_eq!(
            Wake::of_change(Some(&ready), Some(&going), false),
            Wake::Later
        );
        assert_eq!(
            Wake::of_change(Some(&ready), Some(&down), false),
            Wake::Later
        );
        assert_eq!(Wake::of_change(Some(&ready), None, false), Wake::Later);
        assert_eq!(Wake::of_change(None, Some(&down), false), Wake::Later);
        // New labels may move the pod in or out of the selector.
        assert_eq!(Wake::of_change(Some(&ready), Some(&down), true), Wake::Now);
        // An in-place update's step, Ready or not.
        let mut gated = down.clone();
        Arc::make_mut(&mut gated.in_place).has_gate = true;
        Arc::make_mut(&mut gated.in_place).gate_ready = Some(false);
        assert_eq!(Wake::of_change(Some(&down), Some(&gated), false), Wake::Now);
        let mut patched = gated.clone();
        Arc::make_mut(&mut patched.in_place).state_revision = Some("web-2".into());
        assert_eq!(
            Wake::of_change(Some(&gated), Some(&patched), false),
            Wake::Now
        );
        assert_eq!(Wake::of_change(Some(&patched), None, false), Wake::Now);
    }
}
