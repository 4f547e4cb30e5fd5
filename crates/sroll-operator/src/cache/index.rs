//! The operator's pod index ([`sroll_planner::index::PodIndex`]), fed by the pod watch: each event
//! updates the slot of one ordinal of one set and that set's aggregates, and
//! [`SharedPodIndex::pods`] hands the observer the set's pods as a shared list rebuilt only when
//! one of them changed. Before it, every reconcile rebuilt a `Pod` from every cached entry of the
//! set and read the planner's view out of it again (`CachedPod::to_pod`, then
//! `ObservedPod::from_pod`): O(replicas) allocations per reconcile whether or not anything
//! changed. Now that conversion happens once per watch event.
//!
//! The index is the operator's only copy of the pods it watches: the few readers that look a pod
//! up by name (the expectations, the in-place executor, service discovery's address match) read
//! its slot ([`SharedPodIndex::pod`]: the planner's view, the `resourceVersion` and a [`PodExtra`]
//! with what they need beyond the view). It used to sit beside a reflector store of the same pods,
//! which held each of them a second time (heaptrack, 100 × 1,000 watched pods: the store 44.8 MiB,
//! the index 38.9 MiB of a 113 MiB peak heap; issue #16).

use std::{
    collections::{HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{core::Selector, runtime::watcher};
use sroll_api::sync::lock;
use sroll_planner::{
    ObservedPod, Pods,
    index::{PodIndex, SetKey, Slot, SlotExtra, Wake, set_of},
};

use super::{CachedPod, PodLabels};

/// The pod index of one pod watch, shared by the watch (writer) and the reconciles (readers),
/// with the signal of its first complete list ([`SharedPodIndex::wait_until_ready`]).
#[derive(Clone, Debug)]
pub struct SharedPodIndex(
    Arc<Mutex<PodIndex<PodExtra>>>,
    Arc<Mutex<Feed>>,
    Arc<tokio::sync::watch::Sender<bool>>,
);

impl Default for SharedPodIndex {
    fn default() -> Self {
        SharedPodIndex(
            Arc::default(),
            Arc::default(),
            Arc::new(tokio::sync::watch::channel(false).0),
        )
    }
}

/// What the operator keeps of a pod beside its planner view and `resourceVersion` (the slot's
/// extra): its labels, for selector matching (a change of them is a change of the set), and,
/// carried along without counting as a change, what the readers of single pods need —
/// `status.podIP` (service-discovery health matches pods by address) and the `Ready` condition's
/// status as the in-place executor reads it ([`sroll_planner::inplace::SeenPod::ready`]).
#[derive(Clone, Debug)]
pub struct PodExtra {
    /// The pod's labels (shared with the other pods of its set and revision).
    pub labels: PodLabels,
    /// `status.podIP`.
    pub pod_ip: Option<Box<str>>,
    /// The `Ready` condition: `Some(true)` True, `Some(false)` False, `None` absent (or Unknown).
    pub ready_condition: Option<bool>,
}

impl SlotExtra for PodExtra {
    fn selects_alike(&self, other: &PodExtra) -> bool {
        self.labels == other.labels
    }
}

/// How the watch's lists reach the index.
///
/// A relist is buffered until it is complete (`PodIndex::relist_item`, then `relist_end` replaces
/// the index), so readers never see half of one. The first list into an empty index goes straight
/// in instead (`PodIndex::apply` per pod, which a complete relist into an empty index amounts
/// to): nothing reads the index before its first `InitDone` (reconciles wait for it,
/// `cache::Synced`), and the buffer of 100,000 listed pods beside the index they build was the
/// largest part of the operator's peak heap (heaptrack, 100 × 1,000 watched pods: 61 of 121 MiB;
/// BENCHMARKS.md, branch sidemem).
#[derive(Debug, Default)]
struct Feed {
    /// A pod was put into the index (by an event or a list).
    fed: bool,
    /// The list under way goes straight into the index.
    direct: bool,
    /// The sets the list under way holds pods of (reported when it completes).
    listed: HashSet<SetKey>,
}

/// A pod's slot: its planner view as a member of the set its name says, and its [`PodExtra`].
fn slot(pod: &CachedPod) -> Option<Slot<PodExtra>> {
    let (set, _) = set_of(pod.name())?;
    Some(Slot {
        pod: pod.observed(set)?,
        resource_version: pod.resource_version().unwrap_or_default().into(),
        extra: PodExtra {
            labels: pod.labels(),
            pod_ip: pod.pod_ip().map(Box::from),
            ready_condition: pod.ready_condition(),
        },
    })
}

/// `(namespace, set)` of a pod named `<set>-<ordinal>`.
fn set_key(namespace: &str, pod: &CachedPod) -> Option<SetKey> {
    let (set, _) = set_of(pod.name())?;
    Some((namespace.into(), set.into()))
}

fn namespace_of(pod: &CachedPod) -> String {
    kube::runtime::reflector::Lookup::namespace(pod)
        .map(|n| n.into_owned())
        .unwrap_or_default()
}

impl SharedPodIndex {
    /// The sets of [`Self::event_waking`], without how soon (what most tests read).
    #[cfg(test)]
    pub fn event(&self, event: &watcher::Event<CachedPod>) -> Vec<SetKey> {
        self.event_waking(event)
            .into_iter()
            .map(|(set, _)| set)
            .collect()
    }

    /// Applies one event of the pod watch. The first `InitDone` is what wakes the reconciles
    /// waiting for the caches ([`Self::wait_until_ready`], `cache::Synced`), and it is signalled
    /// only once that list is in the index: a reconcile woken before would observe a set without
    /// pods (a restarted operator wrote `percentDeployed` 0 when the index was fed after the
    /// reflector store that then signalled readiness, caught by the kill tests' invariant
    /// checker).
    ///
    /// The first list into an empty index is applied pod by pod as it comes ([`Feed`]); a list
    /// started again before it completed, and every later one, is a buffered relist.
    ///
    /// Returns the sets (`(namespace, set)`) whose pods this event changed *as the planner sees
    /// them* — the pod triggers of the reconcile loop (`cache::watch_pods`):
    ///
    /// - `Apply`: the pod's set when its slot changed: its [`sroll_planner::ObservedPod`] view
    ///   (revision, readiness and since when, phase, terminating, uid, in-place state) or its
    ///   labels (selector matching). A duplicated event, or one that changed only what the view
    ///   leaves out (scheduling, container states, other conditions, `resourceVersion`), reports
    ///   nothing: a reconcile would observe exactly what the last one did;
    /// - `Delete`: the pod's set when the slot held that incarnation;
    /// - `InitDone`: every set the list held pods of, and every set the index lost pods of (a
    ///   relist repairs missed events, and a reconcile of a listed set is cheap); reported when
    ///   the list is complete, so the reconcile it triggers observes the whole of it;
    /// - `Init`, `InitApply`: nothing (the list reports at its end).
    ///
    /// Each set comes with how soon its rollout must plan on the change ([`Wake::of_change`] of
    /// the pod's slot; a relist's sets [`Wake::Now`]).
    pub fn event_waking(&self, event: &watcher::Event<CachedPod>) -> Vec<(SetKey, Wake)> {
        let mut feed = lock(&self.1);
        let mut index = lock(&self.0);
        match event {
            watcher::Event::Apply(pod) => {
                if let Some(slot) = slot(pod) {
                    feed.fed = true;
                    let namespace = namespace_of(pod);
                    if let Some(wake) = index.apply_waking(&namespace, slot) {
                        return set_key(&namespace, pod)
                            .map(|set| (set, wake))
                            .into_iter()
                            .collect();
                    }
                }
                Vec::new()
            }
            watcher::Event::Delete(pod) => {
                let namespace = namespace_of(pod);
                if let Some(wake) =
                    index.delete_waking(&namespace, pod.name(), pod.uid().unwrap_or_default())
                {
                    return set_key(&namespace, pod)
                        .map(|set| (set, wake))
                        .into_iter()
                        .collect();
                }
                Vec::new()
            }
            watcher::Event::Init => {
                feed.direct = !feed.fed;
                feed.listed.clear();
                if !feed.direct {
                    index.relist_begin();
                }
                Vec::new()
            }
            watcher::Event::InitApply(pod) => {
                if let Some(slot) = slot(pod) {
                    let namespace = namespace_of(pod);
                    feed.listed.extend(set_key(&namespace, pod));
                    if feed.direct {
                        feed.fed = true;
                        index.apply(&namespace, slot);
                    } else {
                        index.relist_item(&namespace, slot);
                    }
                }
                Vec::new()
            }
            watcher::Event::InitDone => {
                let mut sets = std::mem::take(&mut feed.listed);
                if feed.direct {
                    feed.direct = false;
                } else {
                    sets.extend(index.relist_end());
                }
                self.2.send_replace(true);
                let mut sets: Vec<SetKey> = sets.into_iter().collect();
                sets.sort();
                sets.into_iter().map(|set| (set, Wake::Now)).collect()
            }
        }
    }

    /// Resolves once the index holds the watch's first complete list (its first `InitDone`):
    /// what the reconciles wait for before they observe (`cache::Synced`), as they waited for the
    /// reflector store's readiness when there was one. Every waiter is woken.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.2.subscribe();
        // The sender lives in `self`: the wait cannot fail.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Whether the index holds the watch's first complete list.
    pub fn is_ready(&self) -> bool {
        *self.2.borrow()
    }

    /// How many pods the index holds.
    pub fn len(&self) -> usize {
        lock(&self.0).len()
    }

    /// Whether the index holds no pod.
    pub fn is_empty(&self) -> bool {
        lock(&self.0).is_empty()
    }

    /// `read` of the slot of the pod `name` of `namespace` (its planner view, `resourceVersion`
    /// and [`PodExtra`]), if the index holds it. The index is locked while `read` runs.
    /// Replaces the names and revisions of `pods` — a rollout's `status.pods` as the rollout
    /// watch decoded it — by the index's own strings where they are equal, so that the rollout
    /// cache holds no second copy of them (issue #16: about 80 bytes per entry, 8 MB for 100
    /// rollouts of 1,000 pods). The strings are equal, so no reader sees a difference; entries of
    /// pods the index does not hold (yet), or at another revision, keep their own.
    pub fn share_strings(&self, namespace: &str, pods: &mut sroll_api::PodVersions) {
        if pods.is_empty() {
            return;
        }
        let index = lock(&self.0);
        for entry in pods.make_mut() {
            let Some((pod, _, _)) = index.pod(namespace, &entry.name) else {
                continue;
            };
            // `pod` holds the view of the pod of that very name.
            entry.name = pod.name.clone();
            if let Some(revision) = &pod.revision
                && **revision == *entry.revision
            {
                entry.revision = revision.clone();
            }
        }
    }

    pub fn pod<R>(
        &self,
        namespace: &str,
        name: &str,
        read: impl FnOnce(&ObservedPod, &str, &PodExtra) -> R,
    ) -> Option<R> {
        let index = lock(&self.0);
        index
            .pod(namespace, name)
            .map(|(pod, rv, extra)| read(pod, rv, extra))
    }

    /// The pods of set `set` in `namespace` with ordinals `start..start+count` that `selector`
    /// selects (upstream `isMemberOf` plus selector matching), in ordinal order: the same shared
    /// list as the last call's as long as no pod of the set changed and the arguments are the
    /// same. An invalid selector selects nothing.
    pub fn pods(
        &self,
        namespace: &str,
        set: &str,
        start: i32,
        count: i32,
        selector: &LabelSelector,
    ) -> Pods {
        let Ok(parsed) = Selector::try_from(selector.clone()) else {
            return Pods::default();
        };
        let mut hasher = std::hash::DefaultHasher::new();
        serde_json::to_string(selector)
            .unwrap_or_default()
            .hash(&mut hasher);
        (start, count).hash(&mut hasher);
        let key = hasher.finish();
        let per_pod = PodLabels::per_pod(selector);
        let end = start.saturating_add(count.max(0));
        let mut memo = HashMap::new();
        let mut index = lock(&self.0);
        let Some(set_index) = index.set_mut(namespace, set) else {
            return Pods::default();
        };
        set_index.snapshot(key, |pod, extra| {
            (start..end).contains(&pod.ordinal)
                && extra.labels.matches(&pod.name, &parsed, per_pod, &mut memo)
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::cache::tests::{cached, full_pod};
    use sroll_planner::index::{SetCounts, Wake};

    /// The aggregates of set `set` in `namespace` over all its indexed pods (selector aside), and
    /// the index's generation for it (observation reads them from the `Pods` list it takes).
    fn counts(index: &SharedPodIndex, namespace: &str, set: &str) -> Option<(SetCounts, u64)> {
        lock(&index.0)
            .set(namespace, set)
            .map(|s| (s.counts().clone(), s.generation()))
    }

    fn pod(ordinal: u32, ready: bool) -> CachedPod {
        cached(full_pod(ordinal, ready, false))
    }

    fn feed(events: Vec<Event<CachedPod>>) -> SharedPodIndex {
        let index = SharedPodIndex::default();
        for e in &events {
            index.event(e);
        }
        index
    }

    fn list(pods: Vec<CachedPod>) -> Vec<Event<CachedPod>> {
        let mut events = vec![Event::Init];
        events.extend(pods.into_iter().map(Event::InitApply));
        events.push(Event::InitDone);
        events
    }

    /// The set's pods and aggregates as a reconcile reads them.
    fn view(index: &SharedPodIndex) -> (Vec<sroll_planner::ObservedPod>, Option<SetCounts>) {
        let all = LabelSelector::default();
        let pods = index.pods("ns", "web", 0, 10, &all);
        (
            pods.iter().cloned().collect(),
            counts(index, "ns", "web").map(|(c, _)| c),
        )
    }

    /// A rollout's decoded `status.pods` takes the index's strings where they are equal, and
    /// reads the same before and after.
    #[test]
    fn status_pods_share_the_index_strings_where_equal() {
        let index = feed(list(vec![pod(0, true), pod(1, false)]));
        let decoded: sroll_api::PodVersions = serde_json::from_value(serde_json::json!([
            {"name": "web-0", "revision": "web-abc", "ready": true},
            {"name": "web-1", "revision": "web-old", "ready": false},
            {"name": "web-7", "revision": "web-abc", "ready": true},
        ]))
        .expect("parses");
        let mut shared = decoded.clone().into_vec().into();
        index.share_strings("ns", &mut shared);
        assert_eq!(shared, decoded, "the entries read the same");
        let (name0, revision0) = index
            .pod("ns", "web-0", |pod, _, _| {
                (pod.name.clone(), pod.revision.clone().expect("labelled"))
            })
            .expect("indexed");
        assert!(
            Arc::ptr_eq(&shared[0].name, &name0),
            "web-0's name is the index's"
        );
        assert!(
            Arc::ptr_eq(&shared[0].revision, &revision0),
            "web-0's revision is the index's"
        );
        let name1 = index
            .pod("ns", "web-1", |pod, _, _| pod.name.clone())
            .expect("indexed");
        assert!(
            Arc::ptr_eq(&shared[1].name, &name1),
            "web-1's name is the index's"
        );
        assert!(
            !Arc::ptr_eq(&shared[1].revision, &revision0),
            "a revision the pod does not carry keeps its own string"
        );
        assert_eq!(&*shared[1].revision, "web-old");
        // web-7 is not indexed: its entry is untouched; in another namespace nothing is shared.
        assert_eq!(&*shared[2].name, "web-7");
        let mut elsewhere = decoded.clone().into_vec().into();
        index.share_strings("other", &mut elsewhere);
        assert!(!Arc::ptr_eq(&elsewhere[0].name, &name0));
    }

    /// The first list, applied pod by pod into the empty index, gives what a buffered relist
    /// gives; a first list started again before it completed, and every later list, is a relist
    /// (pods it no longer holds are dropped).
    #[test]
    fn the_first_list_applied_directly_indexes_as_a_relist() {
        let listed = || vec![pod(0, true), pod(1, false), pod(2, true)];
        let direct = feed(list(listed()));
        let (pods, counts) = view(&direct);
        assert_eq!(pods.len(), 3);
        assert_eq!(counts.as_ref().map(|c| c.ready), Some(2));

        // Relisted after a first list that also held web-3: web-3 is gone.
        let mut events = list(vec![pod(3, true)]);
        events.extend(list(listed()));
        assert_eq!(view(&feed(events)), (pods.clone(), counts.clone()));

        // The first list restarted after web-3 (a watch error mid-list): web-3 is gone.
        let mut events = vec![Event::Init, Event::InitApply(pod(3, true))];
        events.extend(list(listed()));
        assert_eq!(view(&feed(events)), (pods.clone(), counts.clone()));

        // Events after the first list go on updating the index; a later relist still replaces it.
        let later = feed({
            let mut events = list(listed());
            events.push(Event::Apply(pod(3, true)));
            events.extend(list(listed()));
            events
        });
        assert_eq!(view(&later), (pods, counts));
    }

    /// One pod as the watch may deliver it: `incarnation` picks the uid, `revision` the
    /// `controller-revision-hash`, and `noise` changes only what the planner's view leaves out
    /// (resourceVersion, node, container restarts, the `Ready` condition's message).
    fn variant(
        ordinal: u32,
        ready: bool,
        terminating: bool,
        incarnation: bool,
        revision: bool,
        noise: u8,
    ) -> CachedPod {
        let mut p = full_pod(ordinal, ready, terminating);
        if incarnation {
            p.metadata.uid = Some(format!("pod-uid-{ordinal}-b"));
        }
        if revision {
            p.metadata
                .labels
                .as_mut()
                .expect("labels")
                .insert(sroll_api::labels::REVISION.into(), "web-def".into());
        }
        p.metadata.resource_version = Some(format!("{}", 5000 + u32::from(noise)));
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = Some(format!("node-{}", noise % 3));
        }
        if let Some(status) = p.status.as_mut() {
            for c in status.container_statuses.iter_mut().flatten() {
                c.restart_count = i32::from(noise % 4);
            }
            for c in status.conditions.iter_mut().flatten() {
                c.message = Some(format!("noise {noise}"));
            }
        }
        cached(p)
    }

    #[derive(Clone, Debug)]
    enum Op {
        Apply(CachedPod),
        Delete(CachedPod),
        Relist(Vec<CachedPod>),
    }

    fn arb_pod() -> impl proptest::strategy::Strategy<Value = CachedPod> {
        use proptest::prelude::*;
        (
            0u32..4,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0u8..6,
        )
            .prop_map(
                |(ordinal, ready, terminating, incarnation, revision, noise)| {
                    variant(ordinal, ready, terminating, incarnation, revision, noise)
                },
            )
    }

    fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            6 => arb_pod().prop_map(Op::Apply),
            2 => arb_pod().prop_map(Op::Delete),
            1 => proptest::collection::vec(arb_pod(), 0..5).prop_map(Op::Relist),
        ]
    }

    fn web() -> SetKey {
        ("ns".into(), "web".into())
    }

    proptest::proptest! {
        /// The pod trigger: an `Apply` or `Delete` reports the set exactly when the planner's view
        /// of its pods (as a reconcile observes them) changed — never for a duplicated event or one
        /// that changed only what the view leaves out; a list reports, when it completes, every set
        /// it holds pods of and every set whose view it changed, and nothing before.
        #[test]
        fn the_pod_trigger_fires_exactly_when_the_planners_view_changes(
            ops in proptest::collection::vec(arb_op(), 1..40),
        ) {
            let index = SharedPodIndex::default();
            for op in ops {
                let before = view(&index);
                // The wake: at once exactly when the pod is Ready (and not terminating) after the
                // change, or its labels changed (in the variants: the revision label of a pod
                // that stays in its slot); the in-place state is the same in every variant.
                let ready_after = |pod: &CachedPod, after: &(Vec<sroll_planner::ObservedPod>, _)| {
                    let ready = after
                        .0
                        .iter()
                        .any(|p| *p.name == *pod.name() && p.ready && !p.terminating);
                    let relabelled = before.0.iter().any(|p| {
                        *p.name == *pod.name()
                            && after.0.iter().any(|a| a.name == p.name && a.revision != p.revision)
                    });
                    if ready || relabelled { Wake::Now } else { Wake::Later }
                };
                match op {
                    Op::Apply(pod) => {
                        let fired = index.event_waking(&Event::Apply(pod.clone()));
                        let after = view(&index);
                        let want = if after == before {
                            Vec::new()
                        } else {
                            vec![(web(), ready_after(&pod, &after))]
                        };
                        proptest::prop_assert_eq!(fired, want);
                    }
                    Op::Delete(pod) => {
                        let fired = index.event_waking(&Event::Delete(pod));
                        let after = view(&index);
                        let want = if after == before {
                            Vec::new()
                        } else {
                            vec![(web(), Wake::Later)]
                        };
                        proptest::prop_assert_eq!(fired, want);
                    }
                    Op::Relist(pods) => {
                        let listed = !pods.is_empty();
                        proptest::prop_assert!(index.event(&Event::Init).is_empty());
                        for pod in pods {
                            proptest::prop_assert!(index.event(&Event::InitApply(pod)).is_empty());
                        }
                        let fired = index.event_waking(&Event::InitDone);
                        let after = view(&index);
                        let want = if listed || after != before {
                            vec![(web(), Wake::Now)]
                        } else {
                            Vec::new()
                        };
                        proptest::prop_assert_eq!(fired, want);
                    }
                }
            }
        }
    }

    /// What a reconcile's observation cannot see does not fire the trigger; what it can, does.
    #[test]
    fn pod_events_the_planner_cannot_see_do_not_fire_the_trigger() {
        let index = feed(list(vec![pod(0, false)]));
        let apply = |p| index.event(&Event::Apply(p));
        // Scheduled, a container restarted, a new resourceVersion: the same view.
        assert!(apply(variant(0, false, false, false, false, 1)).is_empty());
        assert!(apply(variant(0, false, false, false, false, 2)).is_empty());
        // Ready: the view changed.
        assert_eq!(apply(variant(0, true, false, false, false, 2)), vec![web()]);
        // Terminating, then deleted: both change it; a stale delete of another incarnation not.
        assert_eq!(apply(variant(0, true, true, false, false, 2)), vec![web()]);
        assert!(
            index
                .event(&Event::Delete(variant(0, true, true, true, false, 2)))
                .is_empty()
        );
        assert_eq!(
            index.event(&Event::Delete(variant(0, true, true, false, false, 2))),
            vec![web()]
        );
        // Recreated at the new revision.
        assert_eq!(apply(variant(0, false, false, true, true, 0)), vec![web()]);
    }

    /// The pod cycle of an eviction wakes the rollout at once only when the pod is back Ready:
    /// going terminating, not Ready, away, and coming back not Ready can only make it wait.
    #[test]
    fn an_evicted_pods_cycle_wakes_its_rollout_at_once_only_when_it_is_ready_again() {
        let index = feed(list(vec![pod(0, true)]));
        let apply = |p| index.event_waking(&Event::Apply(p));
        let later = vec![(web(), Wake::Later)];
        // Evicted: terminating while still Ready, then not Ready.
        assert_eq!(apply(variant(0, true, true, false, false, 1)), later);
        assert_eq!(apply(variant(0, false, true, false, false, 1)), later);
        // Deleted, recreated at the new revision, scheduled.
        assert_eq!(
            index.event_waking(&Event::Delete(variant(0, false, true, false, false, 1))),
            later
        );
        assert_eq!(apply(variant(0, false, false, true, true, 0)), later);
        assert!(apply(variant(0, false, false, true, true, 2)).is_empty());
        // Ready at the new revision: the budget it held is free.
        assert_eq!(
            apply(variant(0, true, false, true, true, 2)),
            vec![(web(), Wake::Now)]
        );
        // A relist reports at once whatever it holds.
        index.event_waking(&Event::Init);
        index.event_waking(&Event::InitApply(variant(0, false, false, true, true, 3)));
        assert_eq!(
            index.event_waking(&Event::InitDone),
            vec![(web(), Wake::Now)]
        );
    }
}
