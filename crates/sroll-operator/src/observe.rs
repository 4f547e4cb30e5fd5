//! Builds the planner's [`Observed`] snapshot from the watch caches — never from live GETs, so a
//! reconcile costs no API round-trip until it acts.
//!
//! Pods are fetched by name from the cache (`<set>-<ordinal>` for every ordinal the desired or
//! the live set may have), an O(replicas) lookup, and kept only when the set's selector matches
//! them (upstream `isMemberOf` plus selector matching in `pkg/controller/statefulset`).

use k8s_openapi::jiff::Timestamp;
use kube::{
    ResourceExt,
    core::{Selector, SelectorExt},
    runtime::reflector::ObjectRef,
};
use sroll_api::StatefulsetRollout;
use sroll_planner::{LiveStatefulSet, Observed, ObservedPdb, ObservedPod};

use crate::cache::{self, Caches};

/// The snapshot of `rollout`'s world at `now`, from `caches`.
pub fn observe(caches: &Caches, rollout: &StatefulsetRollout, now: Timestamp) -> Observed {
    let namespace = rollout.namespace().unwrap_or_default();
    let set_name = rollout.statefulset_name();
    let uid = rollout.uid().unwrap_or_default();
    let mut observed = Observed::new(rollout.clone(), now);

    let live = caches
        .statefulsets
        .get(&ObjectRef::new(&set_name).within(&namespace));
    let labels = cache::template_labels(rollout);
    observed.pdbs = caches
        .pdbs
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .filter_map(|p| ObservedPdb::from_pdb(p, &labels))
        .collect();

    let Some(live) = live else {
        return observed;
    };
    let view = LiveStatefulSet::from_statefulset(&live, &uid);
    // Every ordinal either the live or the desired set may have: pods of a scale-down still exist.
    let status_replicas = live.status.as_ref().map_or(0, |s| s.replicas);
    let count = view
        .replicas
        .max(rollout.spec.replicas())
        .max(status_replicas);
    let selector = Selector::try_from(view.selector.clone()).ok();
    observed.pods = cache::pods_of(caches, &namespace, &set_name, view.ordinals_start, count)
        .iter()
        .filter(|pod| {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            selector.as_ref().is_some_and(|s| s.matches(&labels))
        })
        .filter_map(|pod| ObservedPod::from_pod(pod, &set_name))
        .collect();
    observed.statefulset = Some(view);
    observed
}
