//! The pod watch's compact entry. A `k8s_openapi` [`Pod`] is 2,440 bytes before any of its
//! strings (its `spec` field alone is 1,512 bytes even when `None`), so a reflector store of
//! 100,000 of them would take 250 MB however much of each pod were stripped. The pod watch
//! therefore deserialises a [`WatchedPod`] (of the metadata what is read, `managedFields` skipped;
//! of the spec and status what is read), and turns each event's pod into a [`CachedPod`], from
//! which the pod index builds the pod's slot (`super::index`; no store keeps the entries: the
//! index is the operator's only copy of its pods). The entry shares what it can with the other
//! pods, and the slot shares it on:
//!
//! - what every pod of a set and revision has in common (its labels without the two the
//!   StatefulSet controller sets per pod, its controller owner reference and its revision label)
//!   is one shared [`Arc`], interned by the [`PodInterner`] of the watch;
//! - the per-pod labels `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`
//!   are kept as two flags when they hold what the StatefulSet controller writes there (the pod's
//!   name, the ordinal of the name: `pkg/controller/statefulset/stateful_set_utils.go`
//!   `initIdentity`/`updateIdentity` in kubernetes/kubernetes), else in the shared labels;
//! - namespace, phase, revision and the `Ready` condition's status are interned strings (the
//!   planner's view, `sroll_planner::ObservedPod`, holds the same `Arc`s, and its name and uid
//!   are the entry's);
//! - where the pod stands in an in-place update (`sroll_planner::inplace::PodInPlace`: the
//!   `InPlaceUpdateReady` gate and condition, the state annotation's revision, the containers
//!   still restarting) is computed once per event from the parts of the pod that say it (the
//!   readiness gates, container names and images, container statuses and that annotation, parsed
//!   but not kept) and stored only for pods that have any of it.
//!
//! [`CachedPod::to_pod`] rebuilds the pod (tests compare it with the full one);
//! [`CachedPod::observed`] reads the planner's view straight from the entry.

use std::{
    borrow::{Borrow, Cow},
    collections::{BTreeMap, HashMap, HashSet},
    hash::Hash,
    sync::Arc,
};

use k8s_openapi::{
    NamespaceResourceScope,
    api::core::v1::{
        Container, ContainerStatus, Pod, PodCondition, PodReadinessGate, PodSpec, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time},
};
use kube::{
    core::{Selector, SelectorExt},
    runtime::{reflector::Lookup, watcher},
};
use serde::Deserialize;
use sroll_api::{labels, predicates};
use sroll_planner::inplace::{self, PodInPlace};

/// A pod as the operator's pod watch deserialises it: metadata, of the spec what in-place updates
/// read, and of the status the phase, the address, the conditions and the container statuses.
/// Every other field of the JSON is skipped while parsing, never built.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WatchedPod {
    /// `metadata` (parsed by [`slim_meta`]: `managedFields` and the other fields nothing reads are
    /// skipped, never built).
    #[serde(default, deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// `spec` (the readiness gates and each container's name and image).
    #[serde(default)]
    pub spec: Option<WatchedPodSpec>,
    /// `status` (five fields of it).
    #[serde(default)]
    pub status: Option<WatchedPodStatus>,
}

/// The metadata fields a [`WatchedPod`] reads (what [`PodInterner::intern`] and
/// [`WatchedPod::in_place`] read). Parsing `ObjectMeta` itself built every pod's `managedFields`
/// (a JSON tree per field manager) only to drop it, in the pages of the initial list of 100,000
/// pods among other places.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
}

fn slim_meta<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        labels: m.labels,
        annotations: m.annotations,
        owner_references: m.owner_references,
        deletion_timestamp: m.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

/// The part of `PodSpec` a [`WatchedPod`] reads (for in-place updates).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedPodSpec {
    /// `spec.readinessGates`.
    #[serde(default)]
    pub readiness_gates: Option<Vec<PodReadinessGate>>,
    /// `spec.containers[*].{name,image}`.
    #[serde(default)]
    pub containers: Vec<WatchedContainer>,
    /// `spec.initContainers[*].{name,image}`.
    #[serde(default)]
    pub init_containers: Option<Vec<WatchedContainer>>,
}

/// A container's name and image.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WatchedContainer {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `image`.
    #[serde(default)]
    pub image: Option<String>,
}

/// The part of `PodStatus` a [`WatchedPod`] reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WatchedPodStatus {
    /// `status.phase`.
    #[serde(default)]
    pub phase: Option<String>,
    /// `status.podIP`.
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    /// `status.conditions`.
    #[serde(default)]
    pub conditions: Option<Vec<PodCondition>>,
    /// `status.containerStatuses`.
    #[serde(default, rename = "containerStatuses")]
    pub container_statuses: Option<Vec<ContainerStatus>>,
    /// `status.initContainerStatuses`.
    #[serde(default, rename = "initContainerStatuses")]
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
}

impl WatchedPod {
    /// Where the pod stands in an in-place update, from the parts of it this type keeps.
    pub fn in_place(&self) -> PodInPlace {
        let containers = |list: &[WatchedContainer]| -> Vec<Container> {
            list.iter()
                .map(|c| Container {
                    name: c.name.clone(),
                    image: c.image.clone(),
                    ..Container::default()
                })
                .collect()
        };
        let spec = self.spec.as_ref().map(|s| PodSpec {
            readiness_gates: s.readiness_gates.clone(),
            containers: containers(&s.containers),
            init_containers: s.init_containers.as_deref().map(containers),
            ..PodSpec::default()
        });
        let status = self.status.as_ref().map(|s| PodStatus {
            conditions: s.conditions.clone(),
            container_statuses: s.container_statuses.clone(),
            init_container_statuses: s.init_container_statuses.clone(),
            ..PodStatus::default()
        });
        let annotations = self.metadata.annotations.as_ref().map(|a| {
            [inplace::STATE_ANNOTATION, inplace::SIDECAR_STATE_ANNOTATION]
                .into_iter()
                .filter_map(|k| a.get(k).map(|v| (k.to_owned(), v.clone())))
                .collect::<BTreeMap<_, _>>()
        });
        PodInPlace::from_pod(&Pod {
            metadata: ObjectMeta {
                annotations,
                ..ObjectMeta::default()
            },
            spec,
            status,
        })
    }
}

impl k8s_openapi::Resource for WatchedPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = NamespaceResourceScope;
}

impl k8s_openapi::Metadata for WatchedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<Pod> for WatchedPod {
    fn from(pod: Pod) -> Self {
        let containers = |list: Vec<Container>| -> Vec<WatchedContainer> {
            list.into_iter()
                .map(|c| WatchedContainer {
                    name: c.name,
                    image: c.image,
                })
                .collect()
        };
        WatchedPod {
            metadata: pod.metadata,
            spec: pod.spec.map(|s| WatchedPodSpec {
                readiness_gates: s.readiness_gates,
                containers: containers(s.containers),
                init_containers: s.init_containers.map(containers),
            }),
            status: pod.status.map(|s| WatchedPodStatus {
                phase: s.phase,
                pod_ip: s.pod_ip,
                conditions: s.conditions,
                container_statuses: s.container_statuses,
                init_container_statuses: s.init_container_statuses,
            }),
        }
    }
}

/// The controller owner reference of a pod (`OwnerReference` is neither `Eq` nor `Hash`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ControllerRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    block_owner_deletion: Option<bool>,
}

/// The metadata the pods of one set and revision have in common (labels without the per-pod
/// identity labels, and the controller owner reference): one interned copy per combination.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SetRevisionMeta {
    labels: Option<BTreeMap<String, String>>,
    controller: Option<ControllerRef>,
    /// The `controller-revision-hash` label of `labels`, interned (shared by every pod view of
    /// the revision: `sroll_planner::ObservedPod::revision`).
    revision: Option<Arc<str>>,
}

/// The `Ready` condition, the only one read (`sroll_planner::ObservedPod::from_pod`).
#[derive(Clone, Debug)]
struct Ready {
    status: Arc<str>,
    last_transition_time: Option<Time>,
}

const HAS_POD_NAME: u8 = 1;
const HAS_POD_INDEX: u8 = 2;

/// One pod in the operator's pod cache. Read it through [`CachedPod::to_pod`] or the accessors.
#[derive(Clone, Debug)]
pub struct CachedPod {
    name: Arc<str>,
    namespace: Option<Arc<str>>,
    uid: Option<Arc<str>>,
    resource_version: Option<Box<str>>,
    deletion_timestamp: Option<Time>,
    set_meta: Arc<SetRevisionMeta>,
    identity: u8,
    phase: Option<Arc<str>>,
    pod_ip: Option<Box<str>>,
    ready: Option<Ready>,
    /// Where the pod stands in an in-place update; `None` for a pod with none of it (no gate,
    /// no gate condition, no state annotation).
    in_place: Option<Arc<PodInPlace>>,
}

impl CachedPod {
    /// The compact entry of `pod`, without sharing anything with other entries (tests, one-offs;
    /// the watch goes through a [`PodInterner`]).
    pub fn new(pod: &WatchedPod) -> Self {
        PodInterner::default().intern(pod)
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// `status.podIP`.
    pub fn pod_ip(&self) -> Option<&str> {
        self.pod_ip.as_deref()
    }

    /// The `Ready` condition's status as the in-place executor reads it
    /// ([`sroll_planner::inplace::SeenPod::ready`]): `Some(true)` True, `Some(false)` False,
    /// `None` absent (or Unknown).
    pub fn ready_condition(&self) -> Option<bool> {
        self.ready.as_ref().and_then(|r| match &*r.status {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        })
    }

    /// Whether this entry shares its labels and owner with `other` (from the same interner).
    pub fn shares_with(&self, other: &CachedPod) -> bool {
        Arc::ptr_eq(&self.set_meta, &other.set_meta)
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// A handle on the pod's labels (shared with the other pods of its set and revision), to match
    /// selectors without rebuilding them ([`PodLabels::matches`]).
    pub fn labels(&self) -> PodLabels {
        PodLabels {
            set_meta: self.set_meta.clone(),
            identity: self.identity,
        }
    }

    /// The planner's view of the pod as a member of the set `set_name` (`None` if its name is not
    /// `<set_name>-<ordinal>`).
    ///
    /// Read straight from the entry (what `ObservedPod::from_pod` reads of the pod
    /// [`Self::to_pod`] rebuilds, tested equal), sharing its strings: the name and uid with this
    /// entry, the revision and phase with every pod that has the same (interned by the watch).
    pub fn observed(&self, set_name: &str) -> Option<sroll_planner::ObservedPod> {
        let ordinal = sroll_planner::observed::parse_ordinal(&self.name, set_name)?;
        let phase = self.phase.clone().unwrap_or_default();
        // Upstream `isRunningAndReady` (`pkg/controller/statefulset/stateful_set_utils.go`).
        let ready_condition = self.ready.as_ref();
        let ready = &*phase == "Running" && ready_condition.is_some_and(|r| &*r.status == "True");
        Some(sroll_planner::ObservedPod {
            name: self.name.clone(),
            ordinal,
            revision: self.set_meta.revision.clone(),
            ready,
            ready_since: if ready {
                ready_condition.and_then(|r| r.last_transition_time.as_ref().map(|t| t.0))
            } else {
                None
            },
            terminating: self.is_terminating(),
            phase,
            uid: self.uid.clone().unwrap_or_default(),
            in_place: self
                .in_place
                .clone()
                .unwrap_or_else(|| sroll_planner::observed::shared_in_place(PodInPlace::default())),
        })
    }

    /// Where the pod stands in an in-place update (the planner's `ObservedPod::in_place`).
    pub fn in_place(&self) -> PodInPlace {
        self.in_place.as_deref().cloned().unwrap_or_default()
    }

    /// Whether `metadata.deletionTimestamp` is set.
    pub fn is_terminating(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// The pod with every field the cache keeps: name, namespace, uid, resourceVersion, labels,
    /// the controller owner reference, deletionTimestamp, `status.phase`, `status.podIP` and the
    /// `Ready` condition's type, status and lastTransitionTime.
    pub fn to_pod(&self) -> Pod {
        let mut labels = self.set_meta.labels.clone();
        if self.identity != 0 {
            let l = labels.get_or_insert_with(BTreeMap::new);
            if self.identity & HAS_POD_NAME != 0 {
                l.insert(labels::POD_NAME.to_owned(), self.name.to_string());
            }
            if self.identity & HAS_POD_INDEX != 0
                && let Some(ordinal) = ordinal_of(&self.name)
            {
                l.insert(labels::POD_INDEX.to_owned(), ordinal.to_owned());
            }
        }
        let owner_references = self.set_meta.controller.as_ref().map(|c| {
            vec![OwnerReference {
                api_version: c.api_version.clone(),
                kind: c.kind.clone(),
                name: c.name.clone(),
                uid: c.uid.clone(),
                controller: Some(true),
                block_owner_deletion: c.block_owner_deletion,
            }]
        });
        let status =
            (self.phase.is_some() || self.pod_ip.is_some() || self.ready.is_some()).then(|| {
                PodStatus {
                    phase: self.phase.as_deref().map(str::to_owned),
                    pod_ip: self.pod_ip.as_deref().map(str::to_owned),
                    conditions: self.ready.as_ref().map(|r| {
                        vec![PodCondition {
                            type_: predicates::POD_READY.to_owned(),
                            status: r.status.to_string(),
                            last_transition_time: r.last_transition_time.clone(),
                            ..PodCondition::default()
                        }]
                    }),
                    ..PodStatus::default()
                }
            });
        Pod {
            metadata: ObjectMeta {
                name: (!self.name.is_empty()).then(|| self.name.to_string()),
                namespace: self.namespace.as_deref().map(str::to_owned),
                uid: self.uid.as_deref().map(str::to_owned),
                resource_version: self.resource_version.as_deref().map(str::to_owned),
                labels,
                owner_references,
                deletion_timestamp: self.deletion_timestamp.clone(),
                ..ObjectMeta::default()
            },
            spec: None,
            status,
        }
    }
}

/// The labels of a [`CachedPod`], as a handle on the interned part the pods of a set and
/// revision share, plus which of the two per-pod identity labels it has.
#[derive(Clone, Debug)]
pub struct PodLabels {
    set_meta: Arc<SetRevisionMeta>,
    identity: u8,
}

/// Same labels and controller (the watch's interner shares equal ones, so this is mostly a
/// pointer comparison).
impl PartialEq for PodLabels {
    fn eq(&self, other: &PodLabels) -> bool {
        self.identity == other.identity
            && (Arc::ptr_eq(&self.set_meta, &other.set_meta) || self.set_meta == other.set_meta)
    }
}

impl PodLabels {
    /// Whether `selector` selects the pod `pod_name` with these labels. `memo` remembers the
    /// answer per shared label set for selectors that do not read the per-pod identity labels
    /// (`per_pod == false`), so a set's pods cost one selector match per revision.
    pub fn matches(
        &self,
        pod_name: &str,
        selector: &Selector,
        per_pod: bool,
        memo: &mut HashMap<usize, bool>,
    ) -> bool {
        let shared_only = self.identity == 0 || !per_pod;
        let key = Arc::as_ptr(&self.set_meta) as usize;
        if shared_only && let Some(&m) = memo.get(&key) {
            return m;
        }
        let empty = BTreeMap::new();
        let shared = self.set_meta.labels.as_ref().unwrap_or(&empty);
        let matched = if shared_only {
            selector.matches(shared)
        } else {
            let mut labels = shared.clone();
            if self.identity & HAS_POD_NAME != 0 {
                labels.insert(labels::POD_NAME.to_owned(), pod_name.to_owned());
            }
            if self.identity & HAS_POD_INDEX != 0
                && let Some(ordinal) = ordinal_of(pod_name)
            {
                labels.insert(labels::POD_INDEX.to_owned(), ordinal.to_owned());
            }
            selector.matches(&labels)
        };
        if shared_only {
            memo.insert(key, matched);
        }
        matched
    }

    /// Whether `selector` reads one of the per-pod identity labels (then [`Self::matches`] cannot
    /// answer for all the pods sharing a label set at once).
    pub fn per_pod(selector: &LabelSelector) -> bool {
        let identity = |k: &str| k == labels::POD_NAME || k == labels::POD_INDEX;
        selector
            .match_labels
            .iter()
            .flatten()
            .any(|(k, _)| identity(k))
            || selector
                .match_expressions
                .iter()
                .flatten()
                .any(|e| identity(&e.key))
    }
}

impl Lookup for CachedPod {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT.into()
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        self.namespace.as_deref().map(Cow::Borrowed)
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        self.resource_version.as_deref().map(Cow::Borrowed)
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        self.uid.as_deref().map(Cow::Borrowed)
    }
}

/// The digits after the last `-` of a pod name.
fn ordinal_of(name: &str) -> Option<&str> {
    let (_, ordinal) = name.rsplit_once('-')?;
    (!ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit())).then_some(ordinal)
}

/// Shares the common parts of [`CachedPod`]s: one per pod watch. Entries no pod uses any more are
/// dropped whenever a table has doubled since its last sweep.
#[derive(Debug, Default)]
pub struct PodInterner {
    set_metas: Table<SetRevisionMeta>,
    strings: Table<str>,
}

#[derive(Debug)]
struct Table<T: ?Sized> {
    set: HashSet<Arc<T>>,
    sweep_at: usize,
}

impl<T: ?Sized> Default for Table<T> {
    fn default() -> Self {
        Table {
            set: HashSet::new(),
            sweep_at: 1024,
        }
    }
}

impl<T: ?Sized + Eq + Hash> Table<T> {
    fn find<Q>(&self, value: &Q) -> Option<Arc<T>>
    where
        Arc<T>: Borrow<Q>,
        Q: ?Sized + Eq + Hash,
    {
        self.set.get(value).cloned()
    }

    fn insert(&mut self, value: Arc<T>) -> Arc<T> {
        if self.set.len() >= self.sweep_at {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.sweep_at = (self.set.len() * 2).max(1024);
        }
        self.set.insert(value.clone());
        value
    }
}

impl PodInterner {
    fn string(&mut self, s: &str) -> Arc<str> {
        match self.strings.find(s) {
            Some(found) => found,
            None => self.strings.insert(Arc::from(s)),
        }
    }

    /// The compact entry of `pod`.
    pub fn intern(&mut self, pod: &WatchedPod) -> CachedPod {
        let meta = &pod.metadata;
        let name = meta.name.as_deref().unwrap_or_default();
        let mut identity = 0;
        let labels = meta.labels.as_ref().map(|labels| {
            let mut labels = labels.clone();
            if labels.get(labels::POD_NAME).map(String::as_str) == Some(name) {
                labels.remove(labels::POD_NAME);
                identity |= HAS_POD_NAME;
            }
            if ordinal_of(name).is_some()
                && labels.get(labels::POD_INDEX).map(String::as_str) == ordinal_of(name)
            {
                labels.remove(labels::POD_INDEX);
                identity |= HAS_POD_INDEX;
            }
            labels
        });
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| ControllerRef {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                name: o.name.clone(),
                uid: o.uid.clone(),
                block_owner_deletion: o.block_owner_deletion,
            });
        let revision = labels
            .as_ref()
            .and_then(|l| l.get(labels::REVISION))
            .map(|r| self.string(r));
        let set_meta = SetRevisionMeta {
            labels,
            controller,
            revision,
        };
        let set_meta = match self.set_metas.find(&set_meta) {
            Some(found) => found,
            None => self.set_metas.insert(Arc::new(set_meta)),
        };
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == predicates::POD_READY))
            .map(|c| Ready {
                status: self.string(&c.status),
                last_transition_time: c.last_transition_time.clone(),
            });
        let in_place = pod.in_place();
        CachedPod {
            in_place: (in_place != PodInPlace::default()).then(|| Arc::new(in_place)),
            name: name.into(),
            namespace: meta.namespace.as_deref().map(|n| self.string(n)),
            uid: meta.uid.as_deref().map(Arc::from),
            resource_version: meta.resource_version.as_deref().map(Box::from),
            deletion_timestamp: meta.deletion_timestamp.clone(),
            set_meta,
            identity,
            phase: status
                .and_then(|s| s.phase.as_deref())
                .map(|p| self.string(p)),
            pod_ip: status.and_then(|s| s.pod_ip.as_deref()).map(Box::from),
            ready,
        }
    }

    /// The watch event of the compact entries of `event`'s pods.
    pub fn event(&mut self, event: &watcher::Event<WatchedPod>) -> watcher::Event<CachedPod> {
        match event {
            watcher::Event::Apply(p) => watcher::Event::Apply(self.intern(p)),
            watcher::Event::Delete(p) => watcher::Event::Delete(self.intern(p)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitApply(p) => watcher::Event::InitApply(self.intern(p)),
            watcher::Event::InitDone => watcher::Event::InitDone,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::{ContainerState, ContainerStateRunning},
        jiff::Timestamp,
    };
    use serde_json::json;

    use super::*;

    /// A pod of an in-place set, as the API server sends it, mid-update: its state annotation
    /// recorded, its container restarted with the new image but not ready yet.
    fn updating_pod() -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-0", "namespace": "ns", "uid": "u0", "resourceVersion": "7",
                "labels": {"app": "web", "controller-revision-hash": "web-2"},
                "annotations": {
                    "sroll.io/inplace-update-state": "{\"revision\":\"web-2\",\"updateTimestamp\":\"2026-01-01T00:00:00Z\",\"lastContainerStatuses\":{\"app\":{\"imageID\":\"sha-1\"}}}",
                    "other": "x"
                }
            },
            "spec": {
                "containers": [{"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}]}],
                "readinessGates": [{"conditionType": "InPlaceUpdateReady"}]
            },
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "InPlaceUpdateReady", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ],
                "containerStatuses": [{
                    "name": "app", "image": "app:2", "imageID": "sha-2", "ready": false,
                    "restartCount": 1, "state": {"running": {}}
                }]
            }
        }))
        .expect("a valid pod")
    }

    #[test]
    fn the_cache_keeps_where_a_pod_stands_in_an_in_place_update() {
        let full = updating_pod();
        let want = PodInPlace::from_pod(&full);
        assert_eq!(want.containers_pending, ["app"], "not ready yet");
        assert_eq!(want.gate_ready, Some(false));
        assert_eq!(want.state_revision.as_deref(), Some("web-2"));
        // Through the watch's own parser, from the JSON, as the reflector receives it.
        let watched: WatchedPod =
            serde_json::from_value(serde_json::to_value(&full).expect("serializes"))
                .expect("parses");
        assert_eq!(CachedPod::new(&watched).in_place(), want);
        assert_eq!(
            CachedPod::new(&WatchedPod::from(full.clone())).in_place(),
            want
        );

        // The container turns ready: the next event says so.
        let mut ready = full;
        if let Some(cs) = ready
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            cs[0].ready = true;
            cs[0].state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(Timestamp::UNIX_EPOCH)),
                }),
                ..ContainerState::default()
            });
        }
        let cached = CachedPod::new(&WatchedPod::from(ready));
        assert!(cached.in_place().containers_pending.is_empty());
    }

    #[test]
    fn a_pod_without_in_place_state_stores_none_of_it() {
        let plain: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "labels": {"controller-revision-hash": "web-1"}},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("a valid pod");
        let cached = CachedPod::new(&WatchedPod::from(plain));
        assert!(cached.in_place.is_none());
        assert_eq!(cached.in_place(), PodInPlace::default());
    }
}
