//! Watch caches: one reflector store per watched kind and namespace scope, trimmed to what the
//! reconcile loop reads so the operator stays small when the cluster holds 100,000 pods, and the
//! mappers that turn a change of a pod or a PodDisruptionBudget into a reconcile of its rollout.
//!
//! What the stores keep:
//!
//! | kind | dropped |
//! |---|---|
//! | all | `metadata.managedFields`, the `kubectl.kubernetes.io/last-applied-configuration` annotation |
//! | Pod | `spec` (the revision label says which template a pod runs), every annotation, status except `phase`, `conditions`, container `name`/`ready`/`restartCount`/`state` |
//!
//! Pods are watched with the label selector `controller-revision-hash` (only pods of a
//! StatefulSet or DaemonSet carry it), so other pods are never listed at all.
//!
//! Pods are looked up by name (`<set>-<ordinal>`, the StatefulSet naming rule of
//! `pkg/controller/statefulset/stateful_set_utils.go` `getPodName`), an O(replicas) store lookup
//! per reconcile instead of a scan of every pod.

use std::sync::Arc;

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{ContainerStatus, Pod, PodStatus},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Resource, ResourceExt,
    core::{Selector, SelectorExt},
    runtime::reflector::{ObjectRef, Store},
};
use sroll_api::StatefulsetRollout;

/// The label every StatefulSet pod carries with its revision (ControllerRevision name).
pub const REVISION_LABEL: &str = "controller-revision-hash";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The reader side of one namespace scope's caches.
#[derive(Clone)]
pub struct Caches {
    /// Rollouts.
    pub rollouts: Store<StatefulsetRollout>,
    /// StatefulSets.
    pub statefulsets: Store<StatefulSet>,
    /// StatefulSet pods (trimmed).
    pub pods: Store<Pod>,
    /// PodDisruptionBudgets.
    pub pdbs: Store<PodDisruptionBudget>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("rollouts", &self.rollouts.len())
            .field("statefulsets", &self.statefulsets.len())
            .field("pods", &self.pods.len())
            .field("pdbs", &self.pdbs.len())
            .finish()
    }
}

fn strip_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(ann) = meta.annotations.as_mut() {
        ann.remove(LAST_APPLIED);
        if ann.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Trims a rollout for the cache.
pub fn strip_rollout(r: &mut StatefulsetRollout) {
    strip_meta(&mut r.metadata);
}

/// Trims a StatefulSet for the cache.
pub fn strip_statefulset(s: &mut StatefulSet) {
    strip_meta(&mut s.metadata);
}

/// Trims a PodDisruptionBudget for the cache.
pub fn strip_pdb(p: &mut PodDisruptionBudget) {
    strip_meta(&mut p.metadata);
}

/// Trims a pod to what the planner reads.
pub fn strip_pod(p: &mut Pod) {
    p.metadata.managed_fields = None;
    p.metadata.annotations = None;
    p.metadata.generate_name = None;
    p.spec = None;
    if let Some(status) = p.status.take() {
        p.status = Some(PodStatus {
            phase: status.phase,
            conditions: status.conditions,
            container_statuses: status.container_statuses.map(|cs| {
                cs.into_iter()
                    .map(|c| ContainerStatus {
                        name: c.name,
                        ready: c.ready,
                        restart_count: c.restart_count,
                        state: c.state,
                        ..ContainerStatus::default()
                    })
                    .collect()
            }),
            ..PodStatus::default()
        });
    }
}

fn controller_of<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == kind)
        .map(|o| o.name.as_str())
}

/// The rollout managing the StatefulSet `sts_name` in `namespace`: its controller owner reference,
/// else the rollout whose `statefulset_name()` it is (a StatefulSet not yet adopted, or deleted).
pub fn rollout_of_statefulset(
    rollouts: &Store<StatefulsetRollout>,
    statefulsets: &Store<StatefulSet>,
    namespace: &str,
    sts_name: &str,
) -> Option<ObjectRef<StatefulsetRollout>> {
    let sts_ref = ObjectRef::<StatefulSet>::new(sts_name).within(namespace);
    if let Some(sts) = statefulsets.get(&sts_ref)
        && let Some(owner) = controller_of(&sts.metadata, StatefulsetRollout::kind(&()).as_ref())
    {
        return Some(ObjectRef::new(owner).within(namespace));
    }
    rollouts
        .find(|r| r.namespace().as_deref() == Some(namespace) && r.statefulset_name() == sts_name)
        .map(|r| ObjectRef::from_obj(&*r))
}

/// Maps a pod event to the rollout whose StatefulSet controls the pod.
pub fn rollout_of_pod(
    rollouts: &Store<StatefulsetRollout>,
    statefulsets: &Store<StatefulSet>,
    pod: &Pod,
) -> Option<ObjectRef<StatefulsetRollout>> {
    let ns = pod.namespace()?;
    let sts = controller_of(&pod.metadata, "StatefulSet")
        .map(str::to_owned)
        .or_else(|| {
            // An orphaned pod (StatefulSet deleted with orphan propagation): fall back to the name.
            let name = pod.name_any();
            name.rsplit_once('-').map(|(set, _)| set.to_owned())
        })?;
    rollout_of_statefulset(rollouts, statefulsets, &ns, &sts)
}

/// The labels of the pods a rollout's StatefulSet creates.
pub fn template_labels(r: &StatefulsetRollout) -> std::collections::BTreeMap<String, String> {
    r.spec
        .sts
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// Whether a PDB selects the pods of a rollout (same namespace, selector matching the template
/// labels). In policy/v1 a null selector selects nothing and an empty one selects every pod of the
/// namespace (`pkg/controller/disruption/disruption.go` `getPodsForPdb`).
pub fn pdb_selects(pdb: &PodDisruptionBudget, r: &StatefulsetRollout) -> bool {
    if pdb.namespace() != r.namespace() {
        return false;
    }
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return false;
    };
    match Selector::try_from(sel) {
        Ok(selector) => selector.matches(&template_labels(r)),
        Err(_) => false,
    }
}

/// Maps a PDB event to every rollout whose pods it selects.
pub fn rollouts_of_pdb(
    rollouts: &Store<StatefulsetRollout>,
    pdb: &PodDisruptionBudget,
) -> Vec<ObjectRef<StatefulsetRollout>> {
    rollouts
        .state()
        .iter()
        .filter(|r| pdb_selects(pdb, r))
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

/// The PDBs selecting a rollout's pods (more than one makes evictions fail upstream).
pub fn pdbs_for(caches: &Caches, r: &StatefulsetRollout) -> Vec<Arc<PodDisruptionBudget>> {
    caches.pdbs.state_filter(|p| pdb_selects(p, r))
}

/// The pods of StatefulSet `sts_name` with ordinals `start..start+replicas`, from the cache.
pub fn pods_of(
    caches: &Caches,
    namespace: &str,
    sts_name: &str,
    start: i32,
    replicas: i32,
) -> Vec<Arc<Pod>> {
    (start..start.saturating_add(replicas.max(0)))
        .filter_map(|ordinal| {
            caches
                .pods
                .get(&ObjectRef::new(&format!("{sts_name}-{ordinal}")).within(namespace))
        })
        .collect()
}
