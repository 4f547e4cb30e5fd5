//! The operator's pod index ([`sroll_planner::index::PodIndex`]), fed by the pod watch beside the
//! reflector store: each event updates the slot of one ordinal of one set and that set's
//! aggregates, and [`SharedPodIndex::pods`] hands the observer the set's pods as a shared list
//! rebuilt only when one of them changed. Before it, every reconcile rebuilt a `Pod` from every
//! cached entry of the set and read the planner's view out of it again (`CachedPod::to_pod`, then
//! `ObservedPod::from_pod`): O(replicas) allocations per reconcile whether or not anything
//! changed. Now that conversion happens once per watch event.

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{core::Selector, runtime::watcher};
use sroll_api::sync::lock;
use sroll_planner::{
    Pods,
    index::{PodIndex, SetCounts, Slot, set_of},
};

use super::{CachedPod, PodLabels};

/// The pod index of one pod watch, shared by the watch (writer) and the reconciles (readers).
#[derive(Clone, Debug, Default)]
pub struct SharedPodIndex(Arc<Mutex<PodIndex<PodLabels>>>);

/// A pod's slot: its planner view as a member of the set its name says, and its labels.
fn slot(pod: &CachedPod) -> Option<Slot<PodLabels>> {
    let (set, _) = set_of(pod.name())?;
    Some(Slot {
        pod: pod.observed(set)?,
        resource_version: pod.resource_version().unwrap_or_default().to_owned(),
        extra: pod.labels(),
    })
}

fn namespace_of(pod: &CachedPod) -> String {
    kube::runtime::reflector::Lookup::namespace(pod)
        .map(|n| n.into_owned())
        .unwrap_or_default()
}

impl SharedPodIndex {
    /// Applies one event of the pod watch, *before* the reflector store does: the store's first
    /// `InitDone` is what wakes the reconciles waiting for the caches (`cache::Synced`), so the
    /// index must hold that list by then — fed after the store, a reconcile woken in between
    /// observed a set without pods (a restarted operator wrote `percentDeployed` 0, caught by
    /// the kill tests' invariant checker). The index may run an event ahead of the store; readers
    /// of the store treat it as the possibly stale cache it always is.
    pub fn event(&self, event: &watcher::Event<CachedPod>) {
        let mut index = lock(&self.0);
        match event {
            watcher::Event::Apply(pod) => {
                if let Some(slot) = slot(pod) {
                    index.apply(&namespace_of(pod), slot);
                }
            }
            watcher::Event::Delete(pod) => {
                index.delete(
                    &namespace_of(pod),
                    pod.name(),
                    pod.uid().unwrap_or_default(),
                );
            }
            watcher::Event::Init => index.relist_begin(),
            watcher::Event::InitApply(pod) => {
                if let Some(slot) = slot(pod) {
                    index.relist_item(&namespace_of(pod), slot);
                }
            }
            watcher::Event::InitDone => {
                index.relist_end();
            }
        }
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
        set_index.snapshot(key, |pod, labels| {
            (start..end).contains(&pod.ordinal)
                && labels.matches(&pod.name, &parsed, per_pod, &mut memo)
        })
    }

    /// The aggregates of set `set` in `namespace` over all its indexed pods (selector aside), and
    /// the index's generation for it; `None` when no pod of it is indexed.
    pub fn counts(&self, namespace: &str, set: &str) -> Option<(SetCounts, u64)> {
        let index = lock(&self.0);
        index
            .set(namespace, set)
            .map(|s| (s.counts().clone(), s.generation()))
    }
}
