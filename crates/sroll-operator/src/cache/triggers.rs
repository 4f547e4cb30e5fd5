//! Trigger filters: which watch events of StatefulSets, PodDisruptionBudgets and EndpointSlices
//! reconcile a rollout. An event passes when it changes what the operator reads of the object (its
//! fingerprint: [`statefulset_fingerprint`], [`pdb_fingerprint`], [`endpoint_slice_fingerprint`]),
//! or when the object is deleted or (re)listed; every other event is dropped.
//!
//! Why: each pod change is followed by a status write of the StatefulSet controller
//! (`readyReplicas`, `availableReplicas`, `updatedReplicas`, `currentReplicas`, …) and of the
//! disruption controller (`disruptionsAllowed`, `currentHealthy`, …). With every event a trigger,
//! a rollout was reconciled two to four times per pod updated, most of those reconciles finding
//! nothing to plan (issue #16).
//!
//! Why it is safe: a reconcile is a pure function of what the observer reads from the caches
//! (`observe::observe`, `Integrations::discovery`), and an event that changes none of it gives a
//! reconcile the same inputs as the previous one — a reconcile that plans nothing
//! (`Observed::same_inputs`). The fingerprints hash exactly what the observer reads; anything time
//! based comes back through the plan's own requeue. kube-runtime's `predicate_filter` is not used:
//! it drops a deletion (a deleted object hashes as it did before), and a deleted StatefulSet must
//! wake its rollout at once. Relists pass every listed object (as `touched_objects` did) and also
//! report the objects a relist no longer holds (deleted while the watch was down), which
//! `touched_objects` never did.

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    hash::{DefaultHasher, Hash, Hasher},
};

use futures::{Stream, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        discovery::v1::EndpointSlice,
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Resource, runtime::watcher};
use sroll_api::labels;
use sroll_planner::index::Wake;

/// `(namespace, name)` of a watched object.
type Key = (Option<String>, String);

fn key_of<K: Resource>(object: &K) -> Key {
    let meta = object.meta();
    (
        meta.namespace.clone(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// What one trigger stream remembers of each object it saw: the fingerprint of what the operator
/// reads of it, and a stub (just what the trigger's mapper reads: identity, owner, selector or
/// Service) to report it by when it has changed owner or selector, or when a relist no longer
/// holds it.
pub struct Fingerprints<K> {
    seen: HashMap<Key, (u64, Levels, K)>,
    /// The keys listed by the relist under way.
    listing: Option<HashSet<Key>>,
    fingerprint: fn(&K) -> u64,
    levels: fn(&K) -> Levels,
    stub: fn(&K) -> K,
}

/// Counts read of an object whose fall can only make a rollout wait (a PDB's
/// `disruptionsAllowed` and `currentHealthy`): left out of its fingerprint, they make a change
/// that lowers them and changes nothing else a [`Wake::Later`] one (see [`Wake`]).
pub type Levels = [i32; 2];

/// No levels: every change of the fingerprint wakes at once.
fn no_levels<K>(_: &K) -> Levels {
    [0, 0]
}

impl<K> std::fmt::Debug for Fingerprints<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprints")
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl<K: Resource + Clone + PartialEq> Fingerprints<K> {
    /// A filter reading objects through `fingerprint` and reporting them, when gone, by `stub`.
    pub fn new(fingerprint: fn(&K) -> u64, stub: fn(&K) -> K) -> Self {
        Fingerprints {
            seen: HashMap::new(),
            listing: None,
            fingerprint,
            levels: no_levels::<K>,
            stub,
        }
    }

    /// The filter with `levels` read beside the fingerprint ([`Levels`]).
    pub fn with_levels(self, levels: fn(&K) -> Levels) -> Self {
        Fingerprints { levels, ..self }
    }

    /// The objects of [`Self::event_waking`], without how soon (what most tests read).
    #[cfg(test)]
    pub fn event(&mut self, event: watcher::Event<K>) -> Vec<K> {
        self.event_waking(event)
            .into_iter()
            .map(|(object, _)| object)
            .collect()
    }

    /// The objects one watch event reconciles the rollouts of:
    ///
    /// - `Apply`: the object, when its fingerprint differs from the last one seen (or it is new);
    ///   also the previous stub when the stub changed (a PDB whose selector moved to another
    ///   rollout's pods, a StatefulSet adopted or released: the rollout it left must look again);
    /// - `Delete`: the object, always;
    /// - `InitApply`: the object, always (a relist may follow missed events);
    /// - `InitDone`: the stubs of the objects seen before that the relist did not list.
    ///
    /// Each object comes with how soon its rollouts must plan on it: [`Wake::Later`] for an
    /// `Apply` that changed only [`Levels`], none of them up; [`Wake::Now`] for the rest.
    pub fn event_waking(&mut self, event: watcher::Event<K>) -> Vec<(K, Wake)> {
        match event {
            watcher::Event::Apply(object) => {
                let fingerprint = (self.fingerprint)(&object);
                let levels = (self.levels)(&object);
                let stub = (self.stub)(&object);
                match self.seen.entry(key_of(&object)) {
                    Entry::Occupied(mut seen) => {
                        let (old, old_levels, old_stub) = seen.get_mut();
                        if *old == fingerprint && *old_levels == levels && *old_stub == stub {
                            return Vec::new();
                        }
                        let fell = *old == fingerprint
                            && *old_stub == stub
                            && levels.iter().zip(old_levels.iter()).all(|(n, o)| n <= o);
                        let wake = if fell { Wake::Later } else { Wake::Now };
                        *old = fingerprint;
                        *old_levels = levels;
                        let left = std::mem::replace(old_stub, stub);
                        if left == *old_stub {
                            vec![(object, wake)]
                        } else {
                            vec![(object, wake), (left, Wake::Now)]
                        }
                    }
                    Entry::Vacant(v) => {
                        v.insert((fingerprint, levels, stub));
                        vec![(object, Wake::Now)]
                    }
                }
            }
            watcher::Event::Delete(object) => {
                self.seen.remove(&key_of(&object));
                vec![(object, Wake::Now)]
            }
            watcher::Event::Init => {
                self.listing = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                let key = key_of(&object);
                self.listing
                    .get_or_insert_with(HashSet::new)
                    .insert(key.clone());
                let read = (
                    (self.fingerprint)(&object),
                    (self.levels)(&object),
                    (self.stub)(&object),
                );
                self.seen.insert(key, read);
                vec![(object, Wake::Now)]
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let mut gone = Vec::new();
                self.seen.retain(|key, (_, _, stub)| {
                    let keep = listed.contains(key);
                    if !keep {
                        gone.push((stub.clone(), Wake::Now));
                    }
                    keep
                });
                gone
            }
        }
    }
}

/// The objects of a watch (its reflector already applied: pass `.reflect(writer)`'s stream) whose
/// events reconcile a rollout, through [`Fingerprints`].
pub fn changed_objects<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    fingerprint: fn(&K) -> u64,
    stub: fn(&K) -> K,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + PartialEq + Send + 'static,
{
    changed_objects_waking(events, Fingerprints::new(fingerprint, stub))
        .map_ok(|(object, _)| object)
}

/// [`changed_objects`] through `filter`, with how soon each object's rollouts must plan on it
/// ([`Fingerprints::event_waking`]).
pub fn changed_objects_waking<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    mut filter: Fingerprints<K>,
) -> impl Stream<Item = Result<(K, Wake), watcher::Error>> + Send + 'static
where
    K: Resource + Clone + PartialEq + Send + 'static,
{
    events
        .map_ok(move |event| {
            futures::stream::iter(
                filter
                    .event_waking(event)
                    .into_iter()
                    .map(Ok::<_, watcher::Error>),
            )
        })
        .try_flatten()
}

fn hash_of(f: impl FnOnce(&mut DefaultHasher)) -> u64 {
    let mut hasher = DefaultHasher::new();
    f(&mut hasher);
    hasher.finish()
}

/// A value without `Hash` (the API types), hashed by its JSON form.
fn hash_json<T: serde::Serialize>(value: &T, h: &mut DefaultHasher) {
    serde_json::to_string(value).unwrap_or_default().hash(h);
}

/// The controller owner reference's kind, name and uid (what `LiveStatefulSet::owned_by_rollout`,
/// `owned_by_other` and the `owns` mapper read).
fn hash_controller(meta: &ObjectMeta, h: &mut DefaultHasher) {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (&o.kind, &o.name, &o.uid))
        .hash(h);
}

/// What the observer reads of a StatefulSet: every input of
/// `sroll_planner::LiveStatefulSet::from_statefulset` (identity, controller owner,
/// deletionTimestamp, generation, the spec fields it keeps, its three annotations,
/// `status.observedGeneration`, `currentRevision`, `updateRevision`) and `status.replicas` (the
/// ordinals observed, `observe::observe`). Left out: `resourceVersion` and the status counts the
/// StatefulSet controller rewrites after each pod change (`readyReplicas`, `availableReplicas`,
/// `currentReplicas`, `updatedReplicas`, `conditions`, `collisionCount`): the planner counts pods
/// from the pod index, never from these.
pub fn statefulset_fingerprint(s: &StatefulSet) -> u64 {
    use sroll_planner::pinning::ANNOTATION_PINNED_UPDATE;
    use sroll_planner::{ANNOTATION_SPEC_HASH, ANNOTATION_TEMPLATE_HASH};
    hash_of(|h| {
        let meta = &s.metadata;
        (&meta.name, &meta.uid, meta.generation).hash(h);
        meta.deletion_timestamp.is_some().hash(h);
        hash_controller(meta, h);
        let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
        (
            annotation(ANNOTATION_SPEC_HASH),
            annotation(ANNOTATION_TEMPLATE_HASH),
            annotation(ANNOTATION_PINNED_UPDATE),
        )
            .hash(h);
        if let Some(spec) = &s.spec {
            (
                spec.replicas,
                spec.min_ready_seconds,
                &spec.pod_management_policy,
                &spec.service_name,
                spec.ordinals.as_ref().map(|o| o.start),
            )
                .hash(h);
            hash_json(&spec.update_strategy, h);
            hash_json(&spec.selector, h);
            hash_json(&spec.volume_claim_templates, h);
        }
        if let Some(status) = &s.status {
            (
                status.replicas,
                status.observed_generation,
                &status.current_revision,
                &status.update_revision,
            )
                .hash(h);
        }
    })
}

/// What the `owns` mapper reads of a StatefulSet: namespace, name, uid, owner references.
pub fn statefulset_stub(s: &StatefulSet) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: s.metadata.name.clone(),
            namespace: s.metadata.namespace.clone(),
            uid: s.metadata.uid.clone(),
            owner_references: s.metadata.owner_references.clone(),
            ..ObjectMeta::default()
        },
        ..StatefulSet::default()
    }
}

/// What the observer reads of a PodDisruptionBudget: its namespace and `spec.selector` (which
/// rollouts it selects, `cache::pdb_selects`), and every input of
/// `sroll_planner::ObservedPdb::from_pdb` (name, generation, `status.disruptionsAllowed`,
/// `currentHealthy`, `desiredHealthy`, `expectedPods`, `observedGeneration`). Left out:
/// `resourceVersion`, `status.disruptedPods` (the disruption controller's record of evictions in
/// flight, rewritten on every eviction) and `status.conditions`: the eviction API, not the
/// operator, reads them.
pub fn pdb_fingerprint(p: &PodDisruptionBudget) -> u64 {
    hash_of(|h| {
        (&p.metadata.name, &p.metadata.uid, p.metadata.generation).hash(h);
        hash_json(&p.spec.as_ref().map(|s| &s.selector), h);
        p.status.is_some().hash(h);
        if let Some(status) = &p.status {
            (
                status.desired_healthy,
                status.expected_pods,
                status.observed_generation,
            )
                .hash(h);
        }
    })
}

/// The rest of what the observer reads of a PDB (`sroll_planner::ObservedPdb`): its
/// `status.disruptionsAllowed` and `status.currentHealthy`. When they fall and nothing else
/// changed, a pod of the PDB went (an eviction the rollout made, most often): the rollout can
/// only wait on it, [`Wake::Later`]. When either rises the budget may allow the next eviction:
/// [`Wake::Now`].
pub fn pdb_levels(p: &PodDisruptionBudget) -> Levels {
    p.status
        .as_ref()
        .map_or([0, 0], |s| [s.disruptions_allowed, s.current_healthy])
}

/// What the PDB mapper reads: namespace, name and `spec.selector`.
pub fn pdb_stub(p: &PodDisruptionBudget) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: p.metadata.name.clone(),
            namespace: p.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            selector: p.spec.as_ref().and_then(|s| s.selector.clone()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// What service-discovery gating reads of an EndpointSlice
/// (`sroll_integrations::discovery::endpointslice::health_from_endpoint_slices`): its Service
/// label and, per endpoint, the addresses, the `ready` condition and the target's kind and name —
/// the fields `cache::strip_endpoint_slice` keeps. Left out: `resourceVersion`, and whatever the
/// strip drops (`serving`, `terminating`, hints, zones, ports).
pub fn endpoint_slice_fingerprint(e: &EndpointSlice) -> u64 {
    hash_of(|h| {
        (&e.metadata.name, &e.metadata.uid).hash(h);
        e.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::SERVICE_NAME))
            .hash(h);
        for endpoint in &e.endpoints {
            endpoint.addresses.hash(h);
            endpoint.conditions.as_ref().and_then(|c| c.ready).hash(h);
            endpoint
                .target_ref
                .as_ref()
                .map(|t| (&t.kind, &t.name))
                .hash(h);
        }
    })
}

/// What the EndpointSlice mapper reads: namespace, name and the Service label.
pub fn endpoint_slice_stub(e: &EndpointSlice) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: e.metadata.name.clone(),
            namespace: e.metadata.namespace.clone(),
            labels: e.metadata.labels.as_ref().map(|l| {
                l.iter()
                    .filter(|(k, _)| k.as_str() == labels::SERVICE_NAME)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            ..ObjectMeta::default()
        },
        address_type: e.address_type.clone(),
        ..EndpointSlice::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::{
        apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetStatus},
        policy::v1::PodDisruptionBudgetStatus,
    };
    use kube::runtime::watcher::Event;

    use super::*;

    fn statefulset() -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "s-1", "generation": 2,
                "resourceVersion": "10",
                "annotations": {"sroll.io/spec-hash": "a", "sroll.io/template-hash": "b"},
                "ownerReferences": [{"apiVersion": "sroll.io/v1alpha1",
                    "kind": "StatefulsetRollout", "name": "web", "uid": "r-1", "controller": true}]},
            "spec": {"replicas": 4, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
                "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"replicas": 4, "readyReplicas": 3, "availableReplicas": 3,
                "currentReplicas": 2, "updatedReplicas": 2, "observedGeneration": 2,
                "currentRevision": "web-1", "updateRevision": "web-2"}
        }))
        .expect("a valid set")
    }

    fn spec(s: &mut StatefulSet) -> &mut StatefulSetSpec {
        s.spec.get_or_insert_with(Default::default)
    }

    fn status(s: &mut StatefulSet) -> &mut StatefulSetStatus {
        s.status.get_or_insert_with(Default::default)
    }

    /// What the observer reads of a set: the planner's view and the replicas the status counts.
    fn observed(s: &StatefulSet) -> (sroll_planner::LiveStatefulSet, i32) {
        (
            sroll_planner::LiveStatefulSet::from_statefulset(s, "r-1"),
            s.status.as_ref().map_or(0, |st| st.replicas),
        )
    }

    /// Every field `LiveStatefulSet::from_statefulset` reads changes the fingerprint; the status
    /// counts the StatefulSet controller rewrites after each pod change, and the
    /// resourceVersion, change neither the view nor the fingerprint.
    #[test]
    fn the_statefulset_fingerprint_changes_exactly_with_what_the_observer_reads() {
        type Edit = fn(&mut StatefulSet);
        let read: Vec<(&str, Edit)> = vec![
            ("uid", |s| s.metadata.uid = Some("s-2".into())),
            ("owner", |s| s.metadata.owner_references = None),
            ("deleting", |s| {
                s.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        "2026-11-23T10:00:00Z".parse().expect("a timestamp"),
                    ))
            }),
            ("generation", |s| s.metadata.generation = Some(3)),
            ("spec hash", |s| {
                s.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(sroll_planner::ANNOTATION_SPEC_HASH.into(), "c".into());
            }),
            ("template hash", |s| {
                s.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(sroll_planner::ANNOTATION_TEMPLATE_HASH.into(), "c".into());
            }),
            ("pinned", |s| {
                s.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(
                        sroll_planner::pinning::ANNOTATION_PINNED_UPDATE.into(),
                        "web-2/3".into(),
                    );
            }),
            ("partition", |s| {
                spec(s)
                    .update_strategy
                    .get_or_insert_with(Default::default)
                    .rolling_update = Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(1),
                    ..Default::default()
                })
            }),
            ("strategy", |s| {
                spec(s)
                    .update_strategy
                    .get_or_insert_with(Default::default)
                    .type_ = Some("OnDelete".into())
            }),
            ("replicas", |s| spec(s).replicas = Some(5)),
            ("ordinals", |s| {
                spec(s).ordinals =
                    Some(k8s_openapi::api::apps::v1::StatefulSetOrdinals { start: Some(1) })
            }),
            ("minReadySeconds", |s| spec(s).min_ready_seconds = Some(5)),
            ("policy", |s| {
                spec(s).pod_management_policy = Some("Parallel".into())
            }),
            ("selector", |s| {
                spec(s).selector.match_labels = Some([("app".into(), "x".into())].into())
            }),
            ("serviceName", |s| {
                spec(s).service_name = Some("other".into())
            }),
            ("volumeClaimTemplates", |s| {
                spec(s).volume_claim_templates = Some(vec![Default::default()])
            }),
            ("observedGeneration", |s| {
                status(s).observed_generation = Some(1)
            }),
            ("currentRevision", |s| {
                status(s).current_revision = Some("web-2".into())
            }),
            ("updateRevision", |s| {
                status(s).update_revision = Some("web-3".into())
            }),
            ("status.replicas", |s| status(s).replicas = 5),
        ];
        let base = statefulset();
        for (name, edit) in read {
            let mut changed = base.clone();
            edit(&mut changed);
            assert_ne!(
                observed(&changed),
                observed(&base),
                "{name}: the view reads it"
            );
            assert_ne!(
                statefulset_fingerprint(&changed),
                statefulset_fingerprint(&base),
                "{name}"
            );
        }
        let unread: Vec<(&str, Edit)> = vec![
            ("resourceVersion", |s| {
                s.metadata.resource_version = Some("11".into())
            }),
            ("readyReplicas", |s| status(s).ready_replicas = Some(4)),
            ("availableReplicas", |s| {
                status(s).available_replicas = Some(4)
            }),
            ("currentReplicas", |s| status(s).current_replicas = Some(3)),
            ("updatedReplicas", |s| status(s).updated_replicas = Some(3)),
            ("collisionCount", |s| status(s).collision_count = Some(1)),
        ];
        for (name, edit) in unread {
            let mut changed = base.clone();
            edit(&mut changed);
            assert_eq!(
                observed(&changed),
                observed(&base),
                "{name}: the view ignores it"
            );
            assert_eq!(
                statefulset_fingerprint(&changed),
                statefulset_fingerprint(&base),
                "{name}"
            );
        }
    }

    fn pdb() -> PodDisruptionBudget {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "p-1", "generation": 1,
                "resourceVersion": "3"},
            "spec": {"maxUnavailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 2, "currentHealthy": 4, "desiredHealthy": 2,
                "expectedPods": 4, "observedGeneration": 1}
        }))
        .expect("a valid PDB")
    }

    fn pdb_status(p: &mut PodDisruptionBudget) -> &mut PodDisruptionBudgetStatus {
        p.status.get_or_insert_with(Default::default)
    }

    #[test]
    fn the_pdb_fingerprint_changes_exactly_with_what_the_observer_reads() {
        type Edit = fn(&mut PodDisruptionBudget);
        let read: Vec<(&str, Edit)> = vec![
            ("disruptionsAllowed", |p| {
                pdb_status(p).disruptions_allowed = 1
            }),
            ("currentHealthy", |p| pdb_status(p).current_healthy = 3),
            ("desiredHealthy", |p| pdb_status(p).desired_healthy = 3),
            ("expectedPods", |p| pdb_status(p).expected_pods = 5),
            ("stale", |p| p.metadata.generation = Some(2)),
        ];
        let base = pdb();
        for (name, edit) in read {
            let mut changed = base.clone();
            edit(&mut changed);
            assert_ne!(
                sroll_planner::ObservedPdb::from_pdb(&changed),
                sroll_planner::ObservedPdb::from_pdb(&base),
                "{name}: the view reads it"
            );
            assert_ne!(pdb_reading(&changed), pdb_reading(&base), "{name}");
        }
        // The selector decides which rollouts the PDB counts for.
        let mut moved = base.clone();
        moved
            .spec
            .as_mut()
            .and_then(|s| s.selector.as_mut())
            .expect("a selector")
            .match_labels = Some([("app".into(), "db".into())].into());
        assert_ne!(pdb_reading(&moved), pdb_reading(&base));
        // Evictions in flight and the resourceVersion are not read.
        let mut evicting = base.clone();
        evicting.metadata.resource_version = Some("4".into());
        pdb_status(&mut evicting).disrupted_pods = Some(
            [(
                "web-1".into(),
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    "2026-11-23T10:00:00Z".parse().expect("a timestamp"),
                ),
            )]
            .into(),
        );
        assert_eq!(pdb_reading(&evicting), pdb_reading(&base));
    }

    /// What the PDB trigger compares: the fingerprint and the levels.
    fn pdb_reading(p: &PodDisruptionBudget) -> (u64, Levels) {
        (pdb_fingerprint(p), pdb_levels(p))
    }

    #[test]
    fn a_pdb_whose_budget_only_fell_wakes_its_rollouts_later_and_one_that_rose_at_once() {
        let mut filter = Fingerprints::new(pdb_fingerprint, pdb_stub).with_levels(pdb_levels);
        let with = |allowed: i32, healthy: i32, desired: i32| {
            let mut p = pdb();
            let status = pdb_status(&mut p);
            status.disruptions_allowed = allowed;
            status.current_healthy = healthy;
            status.desired_healthy = desired;
            p
        };
        let wakes = |filter: &mut Fingerprints<PodDisruptionBudget>, p: &PodDisruptionBudget| {
            filter
                .event_waking(Event::Apply(p.clone()))
                .into_iter()
                .map(|(_, wake)| wake)
                .collect::<Vec<_>>()
        };
        assert_eq!(wakes(&mut filter, &with(2, 10, 8)), [Wake::Now], "new");
        assert_eq!(wakes(&mut filter, &with(2, 10, 8)), [], "the same");
        // An eviction granted, then its pod gone from the healthy count.
        assert_eq!(wakes(&mut filter, &with(1, 10, 8)), [Wake::Later]);
        assert_eq!(wakes(&mut filter, &with(1, 9, 8)), [Wake::Later]);
        // A pod back healthy: the budget may allow the next eviction.
        assert_eq!(wakes(&mut filter, &with(2, 10, 8)), [Wake::Now]);
        // One count up and one down is not only a fall.
        assert_eq!(wakes(&mut filter, &with(1, 11, 8)), [Wake::Now]);
        // A fall along with another change (the desired count) is read at once.
        assert_eq!(wakes(&mut filter, &with(0, 10, 9)), [Wake::Now]);
        let mut stale = with(0, 10, 9);
        stale.metadata.generation = Some(2);
        assert_eq!(wakes(&mut filter, &stale), [Wake::Now]);
        assert_eq!(
            filter
                .event_waking(Event::Delete(stale))
                .into_iter()
                .map(|(_, wake)| wake)
                .collect::<Vec<_>>(),
            [Wake::Now]
        );
    }

    fn sts_filter() -> Fingerprints<StatefulSet> {
        Fingerprints::new(statefulset_fingerprint, statefulset_stub)
    }

    fn names(objects: &[StatefulSet]) -> Vec<(Option<&str>, Option<&str>)> {
        objects
            .iter()
            .map(|s| {
                (
                    s.metadata.name.as_deref(),
                    s.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .next()
                        .map(|o| o.name.as_str()),
                )
            })
            .collect()
    }

    #[test]
    fn a_statefulset_wakes_its_rollout_only_when_what_the_planner_reads_changes() {
        let mut filter = sts_filter();
        let base = statefulset();
        assert_eq!(
            names(&filter.event(Event::Apply(base.clone()))).len(),
            1,
            "new"
        );
        assert!(
            filter.event(Event::Apply(base.clone())).is_empty(),
            "duplicate"
        );
        let mut counted = base.clone();
        status(&mut counted).ready_replicas = Some(4);
        counted.metadata.resource_version = Some("11".into());
        assert!(
            filter.event(Event::Apply(counted.clone())).is_empty(),
            "status counts"
        );
        let mut observed_generation = counted.clone();
        status(&mut observed_generation).observed_generation = Some(3);
        assert_eq!(
            filter
                .event(Event::Apply(observed_generation.clone()))
                .len(),
            1
        );
        // A deletion always wakes it (a predicate on the hash would drop it: it hashes the same).
        assert_eq!(
            filter
                .event(Event::Delete(observed_generation.clone()))
                .len(),
            1
        );
        assert_eq!(
            filter.event(Event::Apply(base.clone())).len(),
            1,
            "created again"
        );
        // Adopted by another rollout: both the new and the former owner look again.
        let mut adopted = base.clone();
        adopted.metadata.owner_references.as_mut().expect("owners")[0].name = "other".into();
        assert_eq!(
            names(&filter.event(Event::Apply(adopted.clone()))),
            vec![(Some("web"), Some("other")), (Some("web"), Some("web"))]
        );
    }

    #[test]
    fn a_relist_wakes_every_listed_object_and_the_ones_it_no_longer_holds() {
        let mut filter = sts_filter();
        let web = statefulset();
        let mut db = statefulset();
        db.metadata.name = Some("db".into());
        db.metadata.owner_references.as_mut().expect("owners")[0].name = "db".into();
        assert!(filter.event(Event::Init).is_empty());
        assert_eq!(filter.event(Event::InitApply(web.clone())).len(), 1);
        assert_eq!(filter.event(Event::InitApply(db.clone())).len(), 1);
        assert!(filter.event(Event::InitDone).is_empty());
        // `db` was deleted while the watch was down: the relist reports it by its stub.
        assert!(filter.event(Event::Init).is_empty());
        assert_eq!(filter.event(Event::InitApply(web.clone())).len(), 1);
        assert_eq!(
            names(&filter.event(Event::InitDone)),
            vec![(Some("db"), Some("db"))]
        );
        // And it is forgotten: created again, it is new.
        assert_eq!(filter.event(Event::Apply(db)).len(), 1);
        assert!(filter.event(Event::Apply(web)).is_empty());
    }

    #[test]
    fn an_endpoint_slice_wakes_its_rollouts_when_an_endpoint_it_gates_on_changes() {
        let slice = |ready: bool, rv: &str| -> EndpointSlice {
            let mut e: EndpointSlice = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-abc", "namespace": "ns", "resourceVersion": rv,
                    "labels": {(labels::SERVICE_NAME): "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready,
                    "serving": ready},
                    "targetRef": {"kind": "Pod", "name": "web-0"}}]
            }))
            .expect("a valid slice");
            crate::cache::strip_endpoint_slice(&mut e);
            e
        };
        let mut filter = Fingerprints::new(endpoint_slice_fingerprint, endpoint_slice_stub);
        assert_eq!(filter.event(Event::Apply(slice(false, "1"))).len(), 1);
        assert!(filter.event(Event::Apply(slice(false, "2"))).is_empty());
        let woken = filter.event(Event::Apply(slice(true, "3")));
        assert_eq!(woken.len(), 1);
        assert_eq!(
            woken[0]
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::SERVICE_NAME))
                .map(String::as_str),
            Some("web")
        );
    }
}
