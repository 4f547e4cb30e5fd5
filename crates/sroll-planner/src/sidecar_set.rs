//! SidecarSets, pure: which SidecarSets match a pod, what injecting them into a pod being created
//! does, which SidecarSets conflict, and the in-place upgrade plan of one SidecarSet's pods.
//!
//! The semantics are OpenKruise's (`pkg/webhook/pod/mutating/sidecarset.go`,
//! `pkg/control/sidecarcontrol/`, `pkg/controller/sidecarset/`, `pkg/util/pods.go`
//! `MergeVolumes`), re-derived from the project's reference notes and Kruise's documentation, not
//! copied. Annotation names are Kruise's with `kruise.io/` replaced by `sroll.io/`.
//!
//! ```text
//!  pod CREATE ─▶ matching(sets, pod) ─▶ inject(): metadata, init containers, sidecars (env
//!                                       IS_INJECTED, transferEnv, shared mounts), volumes
//!                                       (the pod's win), pull secrets, hash annotations
//!  SidecarSet ─▶ plan_upgrade(set, pods): status counts, the pods to upgrade now (in place, by
//!                                       `sroll_planner::inplace`: traffic first when the pod has
//!                                       the InPlaceUpdateReady gate, then only the changed
//!                                       sidecars' images), the pods not upgradable
//! ```
//!
//! Simplifications, each deliberate:
//! - the revision of a SidecarSet is a hash of its `containers` (as Kruise's `sidecarset-hash`);
//!   the hash without images decides whether a running pod can take a new version in place.
//!   No ControllerRevisions are kept, so `injectionStrategy.revision` is rejected at validation;
//! - the upgrade order is not-Ready pods first, then by name (Kruise's default sort also weighs
//!   scheduling, phase, ready time and restarts; its priority and scatter strategies are not
//!   accepted);
//! - a sidecar upgrade takes the pod out of traffic first when the pod has the
//!   [`inplace::READINESS_GATE`] (Kruise's SidecarSet does not, relying on the sidecar alone);
//!   without the gate the images are patched at once, as Kruise does.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::{
        Container, EnvVar, LocalObjectReference, Pod, PodCondition, Volume, VolumeMount,
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, Time},
    jiff::Timestamp,
};
use kube::core::{Selector, SelectorExt};
use serde::{Deserialize, Serialize};
use sroll_api::{
    predicates,
    sidecar_set::{
        PatchPolicy, PodInjectPolicy, SidecarContainer, SidecarSet, SidecarSetSpec,
        SidecarSetUpdateType,
    },
};

use crate::inplace::{self, ImageChange, InPlaceChange, InPlaceState, Op, PodInPlace, PodWrite};

/// Pod annotation: for each SidecarSet injected, the version (hash) of its sidecars the pod runs
/// (Kruise's `kruise.io/sidecarset-hash`), as JSON `{"<set>": {"hash": …, "sidecarList": […]}}`.
pub const HASH_ANNOTATION: &str = "sroll.io/sidecarset-hash";
/// Pod annotation: for each SidecarSet injected, the hash of its sidecars without their images
/// (Kruise's `kruise.io/sidecarset-hash-without-image`): a new version whose hash without images
/// is the same differs only in images, and can be upgraded in place.
pub const HASH_WITHOUT_IMAGE_ANNOTATION: &str = "sroll.io/sidecarset-hash-without-image";
/// Pod annotation: the SidecarSets injected, comma-separated (Kruise's
/// `kruise.io/sidecarset-injected-list`).
pub const INJECTED_LIST_ANNOTATION: &str = "sroll.io/sidecarset-injected-list";
/// Pod annotation: for each SidecarSet upgrading the pod in place, its [`InPlaceState`] (Kruise's
/// `kruise.io/sidecarset-inplace-update-state`), as JSON `{"<set>": {…}}`.
pub const STATE_ANNOTATION: &str = inplace::SIDECAR_STATE_ANNOTATION;
/// The env variable marking an injected container (Kruise's `IS_INJECTED`): shared volume mounts
/// and transferred env come from the containers without it.
pub const INJECTED_ENV: &str = "IS_INJECTED";
/// Pod condition: `False` while a SidecarSet's latest version cannot be upgraded in place on this
/// pod (Kruise's `SidecarSetUpgradable`), its message a JSON map `{"<set>": false}`.
pub const UPGRADABLE_CONDITION: &str = "SidecarSetUpgradable";
/// Reason of [`UPGRADABLE_CONDITION`] `False` (Kruise's).
pub const REASON_UPDATE_IMMUTABLE_FIELD: &str = "UpdateImmutableField";
/// Event reason on a SidecarSet with pods that cannot be upgraded in place (Kruise's).
pub const REASON_NOT_UPGRADABLE_PODS: &str = "NotUpgradablePods";
/// Event reason on a SidecarSet starting in-place upgrades.
pub const REASON_UPGRADING: &str = "UpgradingPods";
/// SidecarSet condition type: `True` while some matched pods cannot take the latest version.
pub const CONDITION_NOT_UPGRADABLE: &str = "NotUpgradable";

/// One SidecarSet's entry in [`HASH_ANNOTATION`] / [`HASH_WITHOUT_IMAGE_ANNOTATION`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HashEntry {
    /// The hash.
    pub hash: String,
    /// The sidecar containers the SidecarSet injected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecar_list: Vec<String>,
}

/// Reads a JSON-map annotation (`{"<set>": T}`); an absent or malformed one is empty.
pub fn read_map<T: for<'de> Deserialize<'de>>(pod: &Pod, key: &str) -> BTreeMap<String, T> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

fn write_map<T: Serialize>(pod: &mut Pod, key: &str, map: &BTreeMap<String, T>) {
    // A map of strings to plain structs always serializes.
    let json = serde_json::to_string(map).unwrap_or_default();
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), json);
}

/// The version of a SidecarSet's sidecars: a hash of `spec.containers` (each with its injection
/// fields). Changes whenever what a new pod gets in its containers changes.
pub fn revision_hash(spec: &SidecarSetSpec) -> String {
    crate::desired::hash_json(&spec.containers).unwrap_or_default()
}

/// The hash of `spec.containers` with every image blanked: equal for two versions that differ
/// only in images.
pub fn hash_without_image(spec: &SidecarSetSpec) -> String {
    let blanked: Vec<SidecarContainer> = spec
        .containers
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.container.image = None;
            c
        })
        .collect();
    crate::desired::hash_json(&blanked).unwrap_or_default()
}

/// Whether a label `selector` matches `labels` (an invalid selector matches nothing; an absent one
/// matches nothing either: a SidecarSet must select).
fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector
        .and_then(|s| Selector::try_from(s.clone()).ok())
        .is_some_and(|s| s.matches(labels))
}

/// Whether `set` applies to pods of `namespace` (with its labels, when known): `spec.namespace`,
/// else `namespaceSelector.namespaces`, else its label selector against the namespace's labels
/// (Kruise's `pkg/control/sidecarcontrol/util.go`). Labels unknown (`None`: the namespace is not
/// in the caller's cache yet) and a label selector set: the namespace's only sure label,
/// `kubernetes.io/metadata.name`, is used.
pub fn namespace_matches(
    spec: &SidecarSetSpec,
    namespace: &str,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if !spec.namespace.is_empty() {
        return spec.namespace == namespace;
    }
    let Some(ns) = &spec.namespace_selector else {
        return true;
    };
    if !ns.namespaces.is_empty() {
        return ns.namespaces.iter().any(|n| n == namespace);
    }
    match ns.label_selector() {
        None => true,
        Some(sel) => {
            let fallback = BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )]);
            selects(Some(&sel), namespace_labels.unwrap_or(&fallback))
        }
    }
}

/// Whether `spec` picks namespaces by their labels (a `namespaceSelector` with
/// `matchLabels`/`matchExpressions`): a Namespace's labels changing may change the pods it matches.
pub fn selects_namespaces_by_label(spec: &SidecarSetSpec) -> bool {
    spec.namespace.is_empty()
        && spec
            .namespace_selector
            .as_ref()
            .is_some_and(|n| n.namespaces.is_empty() && n.label_selector().is_some())
}

/// Whether `set` matches `pod` (its selector and namespace rules).
pub fn matches(
    set: &SidecarSet,
    pod: &Pod,
    namespace: &str,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    namespace_matches(&set.spec, namespace, namespace_labels)
        && selects(set.spec.selector.as_ref(), labels)
}

fn set_name(set: &SidecarSet) -> String {
    set.metadata.name.clone().unwrap_or_default()
}

/// What [`inject`] did, for logs and the admission answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// The SidecarSets injected, by name.
    pub sets: Vec<String>,
}

/// Injects every SidecarSet of `sets` that matches `pod` (and is not `injectionStrategy.paused`)
/// into `pod`, a pod being created in `namespace`, by Kruise's rules:
///
/// 1. SidecarSets in name order; `patchPodMetadata` first (`Retain` keeps the pod's value,
///    `Overwrite` replaces it, `MergePatchJson` merges two JSON objects);
/// 2. init containers, sorted by name, after the pod's own;
/// 3. sidecars get env `IS_INJECTED=true`, the env `transferEnv` names copied from the source
///    container (a variable the sidecar sets wins), and with `shareVolumePolicy: enabled` every
///    volume mount of the pod's own containers whose mount path the sidecar does not use;
///    `BeforeAppContainer` sidecars go before the pod's containers, `AfterAppContainer` after;
/// 4. volumes that an injected container mounts, unless the pod has a volume of that name (the
///    pod's wins; among the SidecarSets' volumes, the first of a name wins);
/// 5. `imagePullSecrets` not already listed;
/// 6. [`HASH_ANNOTATION`], [`HASH_WITHOUT_IMAGE_ANNOTATION`], [`INJECTED_LIST_ANNOTATION`].
///
/// A SidecarSet the pod already records ([`HASH_ANNOTATION`]) is not injected again (a
/// reinvoked webhook changes nothing), and a container (or init container) whose name the pod
/// already has is not injected.
pub fn inject(
    pod: &mut Pod,
    namespace: &str,
    namespace_labels: Option<&BTreeMap<String, String>>,
    sets: &[&SidecarSet],
) -> Injected {
    let already: BTreeMap<String, HashEntry> = read_map(pod, HASH_ANNOTATION);
    let mut chosen: Vec<&SidecarSet> = sets
        .iter()
        .copied()
        .filter(|s| {
            !s.spec.injection_strategy.paused
                && !already.contains_key(&set_name(s))
                && matches(s, pod, namespace, namespace_labels)
        })
        .collect();
    chosen.sort_by_key(|s| set_name(s));
    if chosen.is_empty() {
        return Injected::default();
    }
    for set in &chosen {
        patch_metadata(pod, set);
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    let existing: BTreeSet<String> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect();
    let app: Vec<Container> = spec
        .containers
        .iter()
        .filter(|c| !is_injected(c))
        .cloned()
        .collect();
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut inits = Vec::new();
    let mut mounted: BTreeSet<String> = BTreeSet::new();
    let mut hashes: BTreeMap<String, HashEntry> = read_map(&*pod, HASH_ANNOTATION);
    let mut hashes_wo: BTreeMap<String, HashEntry> = read_map(&*pod, HASH_WITHOUT_IMAGE_ANNOTATION);
    let mut names = Vec::new();
    for set in &chosen {
        let name = set_name(set);
        let mut list = Vec::new();
        let mut set_inits: Vec<&SidecarContainer> = set.spec.init_containers.iter().collect();
        set_inits.sort_by(|a, b| a.container.name.cmp(&b.container.name));
        for sc in set_inits {
            if existing.contains(&sc.container.name) {
                continue;
            }
            let c = sc.container.clone();
            mounted.extend(c.volume_mounts.iter().flatten().map(|m| m.name.clone()));
            inits.push(c);
        }
        for sc in &set.spec.containers {
            if existing.contains(&sc.container.name) {
                continue;
            }
            let c = build_sidecar(sc, &app, &*pod);
            mounted.extend(c.volume_mounts.iter().flatten().map(|m| m.name.clone()));
            list.push(c.name.clone());
            match sc.inject_policy() {
                PodInjectPolicy::BeforeAppContainer => before.push(c),
                PodInjectPolicy::AfterAppContainer => after.push(c),
            }
        }
        hashes.insert(
            name.clone(),
            HashEntry {
                hash: revision_hash(&set.spec),
                sidecar_list: list.clone(),
            },
        );
        hashes_wo.insert(
            name.clone(),
            HashEntry {
                hash: hash_without_image(&set.spec),
                sidecar_list: list,
            },
        );
        names.push(name);
    }
    let additions: Vec<Volume> = chosen
        .iter()
        .flat_map(|s| s.spec.volumes.iter())
        .filter(|v| mounted.contains(&v.name))
        .cloned()
        .collect();
    let secrets: Vec<LocalObjectReference> = chosen
        .iter()
        .flat_map(|s| s.spec.image_pull_secrets.iter())
        .cloned()
        .collect();
    let spec = pod.spec.get_or_insert_with(Default::default);
    if !inits.is_empty() {
        spec.init_containers
            .get_or_insert_with(Vec::new)
            .extend(inits);
    }
    let own = std::mem::take(&mut spec.containers);
    spec.containers = before.into_iter().chain(own).chain(after).collect();
    let merged = merge_volumes(spec.volumes.take().unwrap_or_default(), additions);
    spec.volumes = (!merged.is_empty()).then_some(merged);
    if !secrets.is_empty() {
        let list = spec.image_pull_secrets.get_or_insert_with(Vec::new);
        for s in secrets {
            if !list.iter().any(|x| x.name == s.name) {
                list.push(s);
            }
        }
    }
    write_map(pod, HASH_ANNOTATION, &hashes);
    write_map(pod, HASH_WITHOUT_IMAGE_ANNOTATION, &hashes_wo);
    let mut list: BTreeSet<String> = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INJECTED_LIST_ANNOTATION))
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    list.extend(names.iter().cloned());
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            INJECTED_LIST_ANNOTATION.to_owned(),
            list.into_iter().collect::<Vec<_>>().join(","),
        );
    Injected { sets: names }
}

/// Whether a container was injected by a SidecarSet (env `IS_INJECTED`).
pub fn is_injected(c: &Container) -> bool {
    c.env.iter().flatten().any(|e| e.name == INJECTED_ENV)
}

/// Kruise's `MergeVolumes`: `additions` appended to `original` when no volume of the name is there
/// yet (the pod's volume wins; among additions, the first of a name wins).
pub fn merge_volumes(original: Vec<Volume>, additions: Vec<Volume>) -> Vec<Volume> {
    let mut out = original;
    for v in additions {
        if !out.iter().any(|x| x.name == v.name) {
            out.push(v);
        }
    }
    out
}

/// Kruise's shared-mount rule: `own` mounts plus every mount of `app` containers whose mount path
/// is not taken (by the sidecar's own mounts, or an earlier shared one; device paths count as
/// taken).
pub fn merge_mounts(
    own: &[VolumeMount],
    taken_devices: &[String],
    app: &[Container],
) -> Vec<VolumeMount> {
    let mut out = own.to_vec();
    let mut paths: BTreeSet<String> = own.iter().map(|m| m.mount_path.clone()).collect();
    paths.extend(taken_devices.iter().cloned());
    for c in app {
        for m in c.volume_mounts.iter().flatten() {
            if paths.insert(m.mount_path.clone()) {
                out.push(m.clone());
            }
        }
    }
    out
}

fn build_sidecar(sc: &SidecarContainer, app: &[Container], pod: &Pod) -> Container {
    let mut c = sc.container.clone();
    let mut env: Vec<EnvVar> = vec![EnvVar {
        name: INJECTED_ENV.into(),
        value: Some("true".into()),
        value_from: None,
    }];
    let own = c.env.take().unwrap_or_default();
    for t in &sc.transfer_env {
        let source = if t.source_container_name.is_empty() {
            t.source_container_name_from
                .as_ref()
                .and_then(|f| f.field_ref.as_ref())
                .and_then(|f| pod_field(pod, &f.field_path))
        } else {
            Some(t.source_container_name.clone())
        };
        let Some(source) = source.and_then(|n| app.iter().find(|a| a.name == n)) else {
            continue;
        };
        for name in t.names() {
            if own.iter().any(|e| e.name == name) || env.iter().any(|e| e.name == name) {
                continue;
            }
            if let Some(e) = source.env.iter().flatten().find(|e| e.name == name) {
                env.push(e.clone());
            }
        }
    }
    env.retain(|e| !own.iter().any(|o| o.name == e.name));
    env.extend(own);
    c.env = Some(env);
    if sc.shares_volumes() {
        let devices: Vec<String> = c
            .volume_devices
            .iter()
            .flatten()
            .map(|d| d.device_path.clone())
            .collect();
        let merged = merge_mounts(
            c.volume_mounts.as_deref().unwrap_or_default(),
            &devices,
            app,
        );
        c.volume_mounts = (!merged.is_empty()).then_some(merged);
    }
    c
}

/// A pod field by downward-API path: `metadata.name`, `metadata.labels['K']`,
/// `metadata.annotations['K']`.
fn pod_field(pod: &Pod, path: &str) -> Option<String> {
    if path == "metadata.name" {
        return pod.metadata.name.clone();
    }
    let key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_owned)
    };
    if let Some(k) = key("metadata.labels['") {
        return pod.metadata.labels.as_ref()?.get(&k).cloned();
    }
    if let Some(k) = key("metadata.annotations['") {
        return pod.metadata.annotations.as_ref()?.get(&k).cloned();
    }
    None
}

fn patch_metadata(pod: &mut Pod, set: &SidecarSet) {
    for p in &set.spec.patch_pod_metadata {
        let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in &p.annotations {
            match (p.patch_policy.unwrap_or_default(), annotations.get(k)) {
                (_, None) | (PatchPolicy::Overwrite, Some(_)) => {
                    annotations.insert(k.clone(), v.clone());
                }
                (PatchPolicy::Retain, Some(_)) => {}
                (PatchPolicy::MergePatchJson, Some(old)) => {
                    let merged = match (
                        serde_json::from_str::<serde_json::Value>(old),
                        serde_json::from_str::<serde_json::Value>(v),
                    ) {
                        (Ok(mut base), Ok(patch)) if base.is_object() => {
                            merge_patch(&mut base, &patch);
                            base.to_string()
                        }
                        _ => v.clone(),
                    };
                    annotations.insert(k.clone(), merged);
                }
            }
        }
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// A conflict between two SidecarSets that select the same pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other SidecarSet.
    pub other: String,
    /// The field of the SidecarSet being admitted, e.g. `spec.containers[0].name`.
    pub field: String,
    /// What collides.
    pub message: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (SidecarSet {:?})",
            self.field, self.message, self.other
        )
    }
}

/// Whether two SidecarSets may select the same pods: their namespaces may overlap, and no label
/// key is required by one and excluded by the other (Kruise's `isSidecarSetSelectorOverlap`,
/// conservative: when in doubt, they overlap).
pub fn may_overlap(a: &SidecarSetSpec, b: &SidecarSetSpec) -> bool {
    let ns = |s: &SidecarSetSpec| -> Option<BTreeSet<String>> {
        if !s.namespace.is_empty() {
            return Some([s.namespace.clone()].into());
        }
        s.namespace_selector
            .as_ref()
            .filter(|n| !n.namespaces.is_empty())
            .map(|n| n.namespaces.iter().cloned().collect())
    };
    if let (Some(x), Some(y)) = (ns(a), ns(b))
        && x.is_disjoint(&y)
    {
        return false;
    }
    let (Some(sa), Some(sb)) = (&a.selector, &b.selector) else {
        return false;
    };
    !selectors_disjoint(sa, sb)
}

/// The values a selector allows for each key it constrains: `Some(set)` a finite set, `None`
/// "must not exist".
fn allowed(sel: &LabelSelector) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let mut out: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut restrict = |k: &str, v: Option<BTreeSet<String>>| {
        let entry = out.entry(k.to_owned()).or_insert_with(|| v.clone());
        *entry = match (entry.take(), v) {
            (Some(a), Some(b)) => Some(a.intersection(&b).cloned().collect()),
            _ => None,
        };
    };
    for (k, v) in sel.match_labels.iter().flatten() {
        restrict(k, Some([v.clone()].into()));
    }
    for LabelSelectorRequirement {
        key,
        operator,
        values,
    } in sel.match_expressions.iter().flatten()
    {
        match operator.as_str() {
            "In" => restrict(key, Some(values.iter().flatten().cloned().collect())),
            "DoesNotExist" => restrict(key, None),
            _ => {}
        }
    }
    out
}

fn excluded(sel: &LabelSelector) -> BTreeMap<String, Option<BTreeSet<String>>> {
    // NotIn values (Some) and Exists (None: must exist).
    let mut out = BTreeMap::new();
    for r in sel.match_expressions.iter().flatten() {
        match r.operator.as_str() {
            "NotIn" => {
                out.insert(
                    r.key.clone(),
                    Some(r.values.iter().flatten().cloned().collect::<BTreeSet<_>>()),
                );
            }
            "Exists" => {
                out.insert(r.key.clone(), None);
            }
            _ => {}
        }
    }
    out
}

fn selectors_disjoint(a: &LabelSelector, b: &LabelSelector) -> bool {
    let (aa, ab) = (allowed(a), allowed(b));
    for (k, va) in &aa {
        if let Some(vb) = ab.get(k) {
            match (va, vb) {
                (Some(x), Some(y)) if x.is_disjoint(y) => return true,
                (Some(_), None) | (None, Some(_)) => return true,
                _ => {}
            }
        }
    }
    for (allow, exclude) in [(&aa, excluded(b)), (&ab, excluded(a))] {
        for (k, ex) in exclude {
            match (allow.get(&k), ex) {
                (Some(Some(values)), Some(not_in)) if values.is_subset(&not_in) => return true,
                (Some(None), None) => return true,
                _ => {}
            }
        }
    }
    false
}

/// Every conflict of `set` with `others` (Kruise's `validateSidecarConflict`): for SidecarSets that
/// may select the same pods, a container or init container of the same name with different
/// content, a volume of the same name with different content, and an annotation patched by both
/// with a policy other than `Retain`.
pub fn conflicts(set: &SidecarSet, others: &[&SidecarSet]) -> Vec<Conflict> {
    let me = set_name(set);
    let mut out = Vec::new();
    for other in others {
        let name = set_name(other);
        if name == me || !may_overlap(&set.spec, &other.spec) {
            continue;
        }
        for (list, mine, theirs) in [
            ("containers", &set.spec.containers, &other.spec.containers),
            (
                "initContainers",
                &set.spec.init_containers,
                &other.spec.init_containers,
            ),
        ] {
            for (i, c) in mine.iter().enumerate() {
                let same = theirs
                    .iter()
                    .chain(if list == "containers" {
                        other.spec.init_containers.iter()
                    } else {
                        other.spec.containers.iter()
                    })
                    .find(|o| o.container.name == c.container.name);
                if let Some(o) = same
                    && o != c
                {
                    out.push(Conflict {
                        other: name.clone(),
                        field: format!("spec.{list}[{i}].name"),
                        message: format!(
                            "container {:?} is also injected by SidecarSet {name:?} with different content into the same pods: rename it, or make both identical",
                            c.container.name
                        ),
                    });
                }
            }
        }
        for (i, v) in set.spec.volumes.iter().enumerate() {
            if let Some(o) = other.spec.volumes.iter().find(|o| o.name == v.name)
                && o != v
            {
                out.push(Conflict {
                    other: name.clone(),
                    field: format!("spec.volumes[{i}]"),
                    message: format!(
                        "volume {:?} is also injected by SidecarSet {name:?} with different content into the same pods: rename it, or make both identical",
                        v.name
                    ),
                });
            }
        }
        for (i, p) in set.spec.patch_pod_metadata.iter().enumerate() {
            let policy = p.patch_policy.unwrap_or_default();
            for key in p.annotations.keys() {
                let theirs = other
                    .spec
                    .patch_pod_metadata
                    .iter()
                    .find(|q| q.annotations.contains_key(key));
                if let Some(q) = theirs
                    && (policy != PatchPolicy::Retain
                        || q.patch_policy.unwrap_or_default() != PatchPolicy::Retain)
                {
                    out.push(Conflict {
                        other: name.clone(),
                        field: format!("spec.patchPodMetadata[{i}].annotations"),
                        message: format!(
                            "annotation {key:?} is also patched by SidecarSet {name:?} on the same pods: patch it in one SidecarSet only (or both with patchPolicy Retain)"
                        ),
                    });
                }
            }
        }
    }
    out
}

/// One matched pod as the upgrade planner sees it (the operator builds it from its cache).
#[derive(Clone, Debug, Default)]
pub struct SidecarPod {
    /// The pod (metadata with annotations and labels, spec containers, status conditions and
    /// container statuses are read).
    pub pod: Pod,
    /// The key (`namespace/name`) of the PodDisruptionBudget selecting the pod, if one does.
    pub pdb: Option<String>,
}

/// What the upgrade planner observed for one SidecarSet.
#[derive(Clone, Debug)]
pub struct SidecarSetObserved<'a> {
    /// The SidecarSet.
    pub set: &'a SidecarSet,
    /// The pods its selector and namespace rules match (injected or not).
    pub pods: Vec<SidecarPod>,
    /// `status.disruptionsAllowed` of each PodDisruptionBudget named by a pod.
    pub pdb_allowed: BTreeMap<String, i32>,
    /// The instant.
    pub now: Timestamp,
}

/// A pod write the upgrade planner asks for besides the in-place ones: the
/// [`UPGRADABLE_CONDITION`] (pods/status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionWrite {
    /// The pod.
    pub pod: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's uid when planned.
    pub uid: String,
    /// Whether the pod can take the latest version in place.
    pub upgradable: bool,
}

/// The upgrade plan of one SidecarSet.
#[derive(Clone, Debug, Default)]
pub struct SidecarSetPlan {
    /// The new status (conditions' times left to the caller to keep or set).
    pub status: sroll_api::sidecar_set::SidecarSetStatus,
    /// In-place writes, by namespace (each pod's writes in order).
    pub writes: Vec<(String, PodWrite)>,
    /// [`UPGRADABLE_CONDITION`] writes.
    pub conditions: Vec<ConditionWrite>,
    /// Pods that cannot take the latest version in place (names, `namespace/name`).
    pub not_upgradable: Vec<String>,
    /// Pods whose upgrade starts now (`namespace/name`).
    pub started: Vec<String>,
    /// Whether more work is expected (requeue soon).
    pub in_progress: bool,
}

/// Where one injected pod stands with respect to one SidecarSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSidecarView {
    /// The hash of the SidecarSet's sidecars the pod runs (`None`: not injected).
    pub hash: Option<String>,
    /// The hash without images.
    pub hash_without_image: Option<String>,
    /// The revision of the SidecarSet's in-place state on the pod, if any.
    pub state_revision: Option<String>,
    /// The pod's view in the in-place machinery (gate, pending containers of every update).
    pub in_place: PodInPlace,
    /// The pod is out of traffic (gate condition `False`) for an upgrade of this SidecarSet: the
    /// version it was taken out for (the gate's message names [`traffic_target`]).
    pub out_for: Option<String>,
    /// The pod's `Ready` condition is `True`.
    pub ready: bool,
    /// The pod is being deleted.
    pub terminating: bool,
}

impl PodSidecarView {
    /// Reads the view of `pod` for SidecarSet `set`.
    pub fn from_pod(pod: &Pod, set: &str) -> Self {
        let hashes: BTreeMap<String, HashEntry> = read_map(pod, HASH_ANNOTATION);
        let wo: BTreeMap<String, HashEntry> = read_map(pod, HASH_WITHOUT_IMAGE_ANNOTATION);
        let states: BTreeMap<String, InPlaceState> = read_map(pod, STATE_ANNOTATION);
        let ours = traffic_target(set, "");
        let out_for = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == inplace::READINESS_GATE))
            .filter(|c| c.status == "False")
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.strip_prefix(inplace::OUT_OF_TRAFFIC_MESSAGE_PREFIX))
            .and_then(|t| t.strip_prefix(ours.as_str()))
            .map(str::to_owned);
        PodSidecarView {
            hash: hashes.get(set).map(|h| h.hash.clone()),
            hash_without_image: wo.get(set).map(|h| h.hash.clone()),
            state_revision: states.get(set).map(|s| s.revision.clone()),
            in_place: PodInPlace::from_pod(pod),
            out_for,
            ready: predicates::is_pod_ready(pod),
            terminating: predicates::is_terminating(&pod.metadata),
        }
    }
}

/// The target an out-of-traffic write of SidecarSet `set` names (`sidecarset/<set>/<version>`):
/// it tells this SidecarSet's upgrades from the workload's (whose targets are revision names),
/// so each puts back in traffic only the pods it took out.
pub fn traffic_target(set: &str, version: &str) -> String {
    format!("sidecarset/{set}/{version}")
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The image changes that take `pod`'s sidecars of `set` to `spec`'s images.
fn image_changes(pod: &Pod, spec: &SidecarSetSpec) -> InPlaceChange {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let images = spec
        .containers
        .iter()
        .filter_map(|sc| {
            let running = containers.iter().find(|c| c.name == sc.container.name)?;
            let want = sc.container.image.clone()?;
            (running.image.as_deref() != Some(want.as_str())).then(|| ImageChange {
                container: sc.container.name.clone(),
                init: false,
                image: want,
            })
        })
        .collect();
    InPlaceChange {
        images,
        ..InPlaceChange::default()
    }
}

/// The upgrade plan of one SidecarSet (Kruise's `pkg/controller/sidecarset/sidecarset_processor.go`
/// and `sidecarset_strategy.go`, simplified as the module says):
///
/// - the matched pods are the pods the SidecarSet selects that carry it ([`HASH_ANNOTATION`]);
///   `updatedPods` those at the latest hash, `readyPods` those Ready;
/// - a pod whose hash without images differs from the latest is not upgradable: it gets
///   [`UPGRADABLE_CONDITION`] `False` (and `True` back once it is upgradable again), and the
///   SidecarSet a `NotUpgradable` condition and a [`REASON_NOT_UPGRADABLE_PODS`] Event;
/// - pods already upgrading are carried on (even when paused): the images patched once the pod
///   is out of traffic, the gate put back once the restarted sidecars are Ready;
/// - with `type: RollingUpdate` and not `paused`, new pods start while the unavailable pods
///   (upgrading, or updated and not Ready) stay under `maxUnavailable`, the pods left at an old
///   version stay at least `partition`, only pods `updateStrategy.selector` matches, and a Ready
///   pod only within its PodDisruptionBudget's `disruptionsAllowed` (each start spends one).
pub fn plan_upgrade(o: &SidecarSetObserved<'_>) -> SidecarSetPlan {
    let set = o.set;
    let name = set_name(set);
    let latest = revision_hash(&set.spec);
    let latest_wo = hash_without_image(&set.spec);
    let mut plan = SidecarSetPlan::default();
    let views: Vec<(&SidecarPod, PodSidecarView)> = o
        .pods
        .iter()
        .map(|p| (p, PodSidecarView::from_pod(&p.pod, &name)))
        .filter(|(_, v)| v.hash.is_some())
        .collect();
    let matched = i32::try_from(views.len()).unwrap_or(i32::MAX);
    let status = &mut plan.status;
    status.observed_generation = set.metadata.generation.unwrap_or(0);
    status.latest_revision = latest.clone();
    status.matched_pods = matched;
    for (_, v) in &views {
        let updated = v.hash.as_deref() == Some(latest.as_str());
        status.updated_pods += i32::from(updated);
        status.ready_pods += i32::from(v.ready);
        status.updated_ready_pods += i32::from(updated && v.ready);
    }
    let resolved = set.spec.resolved(matched);
    let mut unavailable = 0;
    let mut started = 0;
    for (p, v) in &views {
        let uid = p.pod.metadata.uid.clone().unwrap_or_default();
        let ns = p.pod.metadata.namespace.clone().unwrap_or_default();
        let pod_name = p.pod.metadata.name.clone().unwrap_or_default();
        let at_latest = v.hash.as_deref() == Some(latest.as_str());
        let upgradable = v.hash_without_image.as_deref() == Some(latest_wo.as_str());
        if !at_latest {
            let current = condition_says(&p.pod, &name);
            if current != Some(upgradable) && !(upgradable && current.is_none()) {
                plan.conditions.push(ConditionWrite {
                    pod: pod_name.clone(),
                    namespace: ns.clone(),
                    uid: uid.clone(),
                    upgradable,
                });
            }
            if !upgradable {
                plan.not_upgradable.push(key(&p.pod));
            }
        } else if condition_says(&p.pod, &name) == Some(false) {
            plan.conditions.push(ConditionWrite {
                pod: pod_name.clone(),
                namespace: ns.clone(),
                uid: uid.clone(),
                upgradable: true,
            });
        }
        // This SidecarSet's own upgrade in flight: out of traffic for it (towards any of its
        // versions: the latest may have moved since), or its sidecars restarting.
        let ours_out = v.out_for.is_some() && v.in_place.gate_ready == Some(false);
        let restarting = v.state_revision.as_deref() == v.hash.as_deref()
            && v.state_revision.is_some()
            && !v.in_place.containers_pending.is_empty();
        if v.terminating {
            continue;
        }
        if at_latest {
            if restarting {
                unavailable += 1;
                plan.in_progress = true;
            } else if ours_out {
                unavailable += 1;
                plan.in_progress = true;
                plan.writes.push((
                    ns,
                    PodWrite {
                        pod: pod_name,
                        uid,
                        op: Op::MarkReady,
                    },
                ));
            } else if !v.ready {
                unavailable += 1;
            }
        } else if ours_out && upgradable {
            // Out of traffic for us, images not patched yet: patch now.
            unavailable += 1;
            started += 1;
            plan.in_progress = true;
            plan.writes.push((
                ns,
                PodWrite {
                    pod: pod_name,
                    uid,
                    op: Op::PatchSidecars {
                        sidecar_set: name.clone(),
                        from: v.hash.clone().unwrap_or_default(),
                        target: latest.clone(),
                        change: image_changes(&p.pod, &set.spec),
                    },
                },
            ));
        }
    }
    let update_allowed = set.spec.update_type() == SidecarSetUpdateType::RollingUpdate
        && !set.spec.update_strategy.paused;
    let old = views
        .iter()
        .filter(|(_, v)| v.hash.as_deref() != Some(latest.as_str()))
        .count();
    let old = i32::try_from(old).unwrap_or(i32::MAX) - started;
    let mut may_start = (old - resolved.partition).min(resolved.max_unavailable - unavailable);
    let mut candidates: Vec<&(&SidecarPod, PodSidecarView)> = views
        .iter()
        .filter(|(p, v)| {
            v.hash.as_deref() != Some(latest.as_str())
                && v.hash_without_image.as_deref() == Some(latest_wo.as_str())
                && !v.terminating
                && v.in_place.gate_ready != Some(false)
                && !v.in_place.in_progress(None)
                && v.in_place.containers_pending.is_empty()
                && set.spec.update_strategy.selector.as_ref().is_none_or(|s| {
                    selects(
                        Some(s),
                        p.pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
                    )
                })
        })
        .collect();
    candidates.sort_by_key(|(p, v)| (v.ready, key(&p.pod)));
    let mut pdb_allowed = o.pdb_allowed.clone();
    let waiting = !candidates.is_empty();
    for (p, v) in candidates {
        if !update_allowed || may_start <= 0 {
            break;
        }
        if v.ready
            && let Some(pdb) = &p.pdb
        {
            let left = pdb_allowed.entry(pdb.clone()).or_insert(0);
            if *left <= 0 {
                continue;
            }
            *left -= 1;
        }
        may_start -= 1;
        plan.in_progress = true;
        plan.started.push(key(&p.pod));
        let ns = p.pod.metadata.namespace.clone().unwrap_or_default();
        let uid = p.pod.metadata.uid.clone().unwrap_or_default();
        let pod_name = p.pod.metadata.name.clone().unwrap_or_default();
        if v.in_place.has_gate {
            plan.writes.push((
                ns.clone(),
                PodWrite {
                    pod: pod_name.clone(),
                    uid: uid.clone(),
                    op: Op::TakeOutOfTraffic {
                        target: traffic_target(&name, &latest),
                    },
                },
            ));
        }
        plan.writes.push((
            ns,
            PodWrite {
                pod: pod_name,
                uid,
                op: Op::PatchSidecars {
                    sidecar_set: name.clone(),
                    from: v.hash.clone().unwrap_or_default(),
                    target: latest.clone(),
                    change: image_changes(&p.pod, &set.spec),
                },
            },
        ));
    }
    if waiting && update_allowed {
        plan.in_progress = true;
    }
    plan
}

/// What the pod's [`UPGRADABLE_CONDITION`] says about `set` (`None`: nothing).
pub fn condition_says(pod: &Pod, set: &str) -> Option<bool> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == UPGRADABLE_CONDITION)?;
    let map: BTreeMap<String, bool> = serde_json::from_str(c.message.as_deref()?).ok()?;
    map.get(set).copied()
}

/// `pod` with its [`UPGRADABLE_CONDITION`] saying `upgradable` for `set` (Kruise's shape: the
/// message is a JSON map of the SidecarSets that are not upgradable, `{"<set>": false}`; the
/// condition is `False` while that map is not empty). `None` when nothing changes.
pub fn with_upgradable_condition(
    pod: &Pod,
    set: &str,
    upgradable: bool,
    now: Timestamp,
) -> Option<Pod> {
    let mut pod = pod.clone();
    let conditions = pod
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let existing = conditions
        .iter()
        .position(|c| c.type_ == UPGRADABLE_CONDITION);
    let mut map: BTreeMap<String, bool> = existing
        .and_then(|i| conditions[i].message.as_deref())
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    let before = map.clone();
    if upgradable {
        map.remove(set);
    } else {
        map.insert(set.to_owned(), false);
    }
    if existing.is_some() && before == map {
        return None;
    }
    if existing.is_none() && upgradable {
        return None;
    }
    let status = if map.is_empty() { "True" } else { "False" };
    let message = serde_json::to_string(&map).unwrap_or_default();
    let reason = if map.is_empty() {
        ""
    } else {
        REASON_UPDATE_IMMUTABLE_FIELD
    };
    match existing {
        Some(i) => {
            let c = &mut conditions[i];
            if c.status != status {
                c.last_transition_time = Some(Time(now));
            }
            c.status = status.into();
            c.reason = (!reason.is_empty()).then(|| reason.into());
            c.message = Some(message);
        }
        None => conditions.push(PodCondition {
            type_: UPGRADABLE_CONDITION.into(),
            status: status.into(),
            reason: (!reason.is_empty()).then(|| reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
            ..PodCondition::default()
        }),
    }
    Some(pod)
}

/// The pod after [`Op::PatchSidecars`]: `change`'s images, the SidecarSet's entry in
/// [`HASH_ANNOTATION`] set to `target`, and its [`InPlaceState`] in [`STATE_ANNOTATION`] (the
/// changed containers' `imageID`s before the update, for the completion check).
pub(crate) fn patched_sidecars(
    pod: &Pod,
    set: &str,
    change: &InPlaceChange,
    target: &str,
    now: Timestamp,
) -> Pod {
    let mut out = pod.clone();
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let mut last = BTreeMap::new();
    if let Some(spec) = out.spec.as_mut() {
        for c in &change.images {
            if let Some(container) = spec.containers.iter_mut().find(|x| x.name == c.container) {
                container.image = Some(c.image.clone());
                let image_id = statuses
                    .iter()
                    .find(|s| s.name == c.container)
                    .map(|s| s.image_id.clone())
                    .unwrap_or_default();
                last.insert(
                    c.container.clone(),
                    inplace::LastContainerStatus { image_id },
                );
            }
        }
    }
    let mut hashes: BTreeMap<String, HashEntry> = read_map(&out, HASH_ANNOTATION);
    hashes.entry(set.to_owned()).or_default().hash = target.to_owned();
    write_map(&mut out, HASH_ANNOTATION, &hashes);
    let mut states: BTreeMap<String, InPlaceState> = read_map(&out, STATE_ANNOTATION);
    states.insert(
        set.to_owned(),
        InPlaceState {
            revision: target.to_owned(),
            update_timestamp: now.to_string(),
            last_container_statuses: last,
        },
    );
    write_map(&mut out, STATE_ANNOTATION, &states);
    out
}

/// The current hash of SidecarSet `set` on `pod` (for [`Op::PatchSidecars`]'s precondition).
pub(crate) fn pod_hash(pod: &Pod, set: &str) -> Option<String> {
    read_map::<HashEntry>(pod, HASH_ANNOTATION)
        .get(set)
        .map(|h| h.hash.clone())
}
