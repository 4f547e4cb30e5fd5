//! The running simulation: informer caches fed by the store's watches, work
//! queues, and the async drivers that execute the pure decisions of
//! [`super::statefulset`], [`super::disruption`], [`super::endpointslice`],
//! [`crate::kubelet`] and [`crate::faults`] through the in-process [`Api`] —
//! every write goes through the normal write path (new resourceVersion,
//! watch events), exactly as a real controller's writes would.
//!
//! Like client-go controllers, each driver keeps a cache per kind (one watch
//! each, `sendInitialEvents` to know when the cache is complete; a 410 or a
//! cut stream re-lists), turns watch events into keys on a de-duplicating
//! queue, and syncs one key at a time. Writes are applied to the caches as
//! soon as the API answers (write-through), so a sync never acts on a state
//! older than its own previous writes. Requeues after errors back off from
//! 5 ms to 1 s (client-go's per-item exponential limiter, capped lower
//! because the in-process store recovers at once).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex, RwLock, Weak},
    time::Duration,
};

use k8s_openapi::{
    Metadata, NamespaceResourceScope,
    api::{
        apps::v1::{ControllerRevision, StatefulSet},
        core::v1::{
            Binding, Endpoints, Node, ObjectReference, PersistentVolumeClaim, Pod, PodCondition,
            Service,
        },
        discovery::v1::EndpointSlice,
        policy::v1::{Eviction, PodDisruptionBudget},
    },
    apimachinery::pkg::apis::meta::v1::{
        DeleteOptions as K8sDeleteOptions, LabelSelector, ObjectMeta, OwnerReference,
        Preconditions, Status, Time,
    },
    jiff::{SignedDuration, Timestamp},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    CachedPod, PodView, controller_of, disruption,
    endpointslice::{self, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SliceWrite},
    history::{
        CandidateMemo, UpdateRevisionAction, plan_revisions_memo, rename_for_collision, same_data,
        sort_revisions, truncate_history,
    },
    is_pod_ready, projection,
    recorder::{EventKind, Record, Recorder, Reporter, reference},
    selector_matches,
    statefulset::{self, ClaimKey, MemberFacts, SetWrite, SyncInput},
};
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::{
    admission::controller_user,
    api::{
        Api, ApiError, DeleteOptions, DeleteOutcome, Part, WatchOptions, WriteOptions,
        error::ErrorDetails,
    },
    auth::UserInfo,
    eviction::{self, EvictionBackend, StatusError},
    faults::Faults,
    kubelet::{self, Clock, ContainerExit, KubeletAction, KubeletConfig, PodFacts},
    store::{EventType, Stored},
};

/// Configuration of the simulated control plane and nodes.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of fake nodes (spread over three zones).
    pub nodes: usize,
    /// Speed factor: simulated time runs this many times faster than real time.
    pub speed: f64,
    /// The fake kubelets' timing.
    pub kubelet: KubeletConfig,
    /// Seed of the fault-injection random draws (random when absent).
    pub seed: Option<u64>,
    /// Record Events (`SuccessfulCreate`, `Scheduled`, `Started`, …) as the
    /// controllers, scheduler and kubelets upstream do ([`super::recorder`]).
    pub record_events: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 3,
            speed: 1.0,
            kubelet: KubeletConfig::default(),
            seed: None,
            record_events: true,
        }
    }
}

type Key = (String, String);

/// A relist's versions by key: resourceVersion, what the cache keeps of the
/// version ([`Indexed::Kept`]) and its stored JSON.
type Listed<K> = BTreeMap<Key, (u64, Arc<<K as Indexed>::Kept>, Bytes)>;

/// What an informer cache holds of one version ([`Indexed::Kept`]) and
/// indexes besides the key: upstream's informers carry indexers
/// (`cache.Indexers`, e.g. `NamespaceIndex`, and the controllers' own
/// `controllerUIDIndex`); these are the ones kubesim's controllers use.
pub trait Kept: Send + Sync + 'static {
    /// The object's metadata (keys, controller, labels).
    fn kept_meta(&self) -> &ObjectMeta;

    /// The node the object is bound to (pods' `spec.nodeName`), counted per
    /// namespace for the scheduler's spreading.
    fn node_name(&self) -> Option<&str> {
        None
    }

    /// Which pods the object's label selector may select, for finding the
    /// selectors of a pod's labels without matching every one of the namespace.
    fn selects(&self) -> Selects<'_> {
        Selects::Nothing
    }

    /// What the StatefulSet controller reads of the version `obj` (pods
    /// only), computed once when the version is stored and kept in its slot.
    fn member_facts(obj: &Arc<Self>) -> Option<Arc<MemberFacts>>
    where
        Self: Sized,
    {
        let _ = obj;
        None
    }
}

/// A kind an informer caches: what its cache keeps of each version
/// ([`Indexed::Kept`]: the object itself, or for pods the compact
/// [`CachedPod`]) and how the whole object is reached.
pub trait Indexed: Metadata<Ty = ObjectMeta> + Sized + Send + Sync + 'static {
    /// What the cache keeps of a version.
    type Kept: Kept;

    /// Whether the cache keeps a projection of each version ([`Indexed::Kept`]
    /// is not the object) and reaches the whole object through the version's
    /// stored JSON ([`Cache::full`]).
    const PROJECTED: bool;

    /// What the cache keeps of the whole object `obj`, and `obj` itself when
    /// the kept object is a projection (kept as the version's whole object).
    fn keep(obj: Arc<Self>) -> (Arc<Self::Kept>, Option<Arc<Self>>);

    /// The whole object, when the kept object is it (`None` for a projected kind).
    fn whole(kept: Arc<Self::Kept>) -> Option<Arc<Self>>;

    /// What the cache keeps of the version whose stored JSON is `json` (pods:
    /// decoded straight into the projection, [`projection::decode_projection`]).
    fn decode_kept(json: &[u8]) -> Result<Self::Kept, serde_json::Error>;
}

/// What a selector requires of a pod's labels ([`Kept::selects`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selects<'a> {
    /// No selector: the object selects no pod.
    Nothing,
    /// Only pods carrying this label (one pair of the selector's `matchLabels`; the
    /// full selector is applied by the caller).
    Pair(&'a str, &'a str),
    /// Any pod may match (no `matchLabels`: expressions only, or `{}`).
    Any,
}

/// A kind whose cache keeps the object itself.
macro_rules! kept_whole {
    ($($t:ty),*) => {$(
        impl Indexed for $t {
            type Kept = Self;

            const PROJECTED: bool = false;

            fn keep(obj: Arc<Self>) -> (Arc<Self>, Option<Arc<Self>>) {
                (obj, None)
            }

            fn whole(kept: Arc<Self>) -> Option<Arc<Self>> {
                Some(kept)
            }

            fn decode_kept(json: &[u8]) -> Result<Self, serde_json::Error> {
                serde_json::from_slice(json)
            }
        }
    )*};
}

kept_whole!(
    StatefulSet,
    ControllerRevision,
    PersistentVolumeClaim,
    PodDisruptionBudget,
    Service,
    EndpointSlice,
    Endpoints,
    Node
);

macro_rules! kept_meta {
    ($($t:ty),*) => {$(
        impl Kept for $t {
            fn kept_meta(&self) -> &ObjectMeta {
                &self.metadata
            }
        }
    )*};
}

kept_meta!(
    StatefulSet,
    ControllerRevision,
    PersistentVolumeClaim,
    EndpointSlice,
    Endpoints,
    Node
);

impl Kept for PodDisruptionBudget {
    fn kept_meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn selects(&self) -> Selects<'_> {
        let Some(sel) = self.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return Selects::Nothing;
        };
        match sel.match_labels.iter().flatten().next() {
            Some((k, v)) => Selects::Pair(k, v),
            None => Selects::Any,
        }
    }
}

impl Kept for Service {
    fn kept_meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn selects(&self) -> Selects<'_> {
        match self
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|m| m.iter().next())
        {
            Some((k, v)) => Selects::Pair(k, v),
            None => Selects::Nothing,
        }
    }
}

impl Indexed for Pod {
    type Kept = CachedPod;

    const PROJECTED: bool = true;

    fn keep(obj: Arc<Self>) -> (Arc<CachedPod>, Option<Arc<Self>>) {
        (Arc::new(CachedPod::of(&obj)), Some(obj))
    }

    fn whole(_: Arc<CachedPod>) -> Option<Arc<Self>> {
        None
    }

    fn decode_kept(json: &[u8]) -> Result<CachedPod, serde_json::Error> {
        projection::decode_projection(json)
    }
}

impl Kept for CachedPod {
    fn kept_meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn member_facts(obj: &Arc<Self>) -> Option<Arc<MemberFacts>> {
        Some(Arc::new(MemberFacts::kept_with(obj.clone())))
    }

    fn node_name(&self) -> Option<&str> {
        self.spec_node_name().filter(|n| !n.is_empty())
    }
}

/// One cached object and the resourceVersion it was stored at.
struct Slot<K: Indexed> {
    rv: u64,
    /// The object, or its projection for a kind that keeps one ([`Indexed::PROJECTED`]).
    obj: Arc<K::Kept>,
    /// [`Kept::member_facts`] of `obj`, computed when this version was
    /// first stored (a version applied again at the same resourceVersion —
    /// a controller's own write, then its watch event — keeps them: objects
    /// are immutable per resourceVersion).
    facts: Option<Arc<MemberFacts>>,
    /// The whole object of a projected kind ([`Cache::full`]); `None` otherwise.
    full: Option<Full<K>>,
}

/// How a slot of a projected kind reaches the whole object of its version.
enum Full<K> {
    /// The version's stored JSON (`Stored::json`: the store's bytes, shared).
    Json(Bytes),
    /// The whole object as this process's write returned it, kept until the
    /// watch delivers the version's JSON (then dropped for it).
    Obj(Arc<K>),
}

impl<K> Clone for Full<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Json(j) => Self::Json(j.clone()),
            Self::Obj(o) => Self::Obj(o.clone()),
        }
    }
}

/// The whole object of a version applied twice at one resourceVersion (its
/// write, then its watch event): the stored JSON when either has it.
fn merge_full<K>(kept: Option<Full<K>>, new: Option<Full<K>>) -> Option<Full<K>> {
    match (kept, new) {
        (Some(Full::Json(j)), _) | (_, Some(Full::Json(j))) => Some(Full::Json(j)),
        (kept, new) => new.or(kept),
    }
}

/// The items of a cache and their indexes, under one lock.
///
/// The objects live in slots; the key map and the indexes hold slot ids, so a
/// read walks an index straight to its objects (no key look-ups, no string
/// compares per object), and a new version whose indexed attributes (its
/// controller, labels and node) did not change — a status write — only
/// replaces its slot, leaving the indexes alone.
struct CacheInner<K: Indexed> {
    /// Slot ids by namespace, then name (both ordered: lists are in key order).
    ids: BTreeMap<String, BTreeMap<String, usize>>,
    slots: Vec<Option<Slot<K>>>,
    /// Empty slots, reused first.
    free: Vec<usize>,
    /// Slot ids by the uid of their controller (`ownerReferences[controller=true]`), in key order.
    by_controller: HashMap<String, BTreeMap<Key, usize>>,
    /// Slot ids of objects without a controller (candidates for adoption), in key order.
    orphans: BTreeMap<Key, usize>,
    /// Slot ids by (namespace, label key, label value), in name order.
    by_label: HashMap<(String, String, String), BTreeMap<String, usize>>,
    /// Objects per namespace and node.
    per_node: HashMap<String, HashMap<String, usize>>,
    /// Objects per controller uid and node (the scheduler's spreading counts).
    per_owner_node: HashMap<String, HashMap<String, usize>>,
    /// Slot ids of selectors ([`Selects::Pair`]) by namespace, label key and value.
    by_selector: HashMap<String, HashMap<String, HashMap<String, BTreeSet<usize>>>>,
    /// Slot ids of selectors that may select any pod ([`Selects::Any`]), by namespace.
    selects_any: HashMap<String, BTreeSet<usize>>,
    /// How many times the contents were replaced by a relist ([`Cache::generation`]).
    relists: u64,
}

impl<K: Indexed> Default for CacheInner<K> {
    fn default() -> Self {
        Self {
            ids: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            by_controller: HashMap::new(),
            orphans: BTreeMap::new(),
            by_label: HashMap::new(),
            per_node: HashMap::new(),
            per_owner_node: HashMap::new(),
            by_selector: HashMap::new(),
            selects_any: HashMap::new(),
            relists: 0,
        }
    }
}

fn count_up(m: &mut HashMap<String, HashMap<String, usize>>, a: &str, b: &str) {
    if !m.contains_key(a) {
        m.insert(a.to_owned(), HashMap::new());
    }
    if let Some(inner) = m.get_mut(a) {
        match inner.get_mut(b) {
            Some(c) => *c += 1,
            None => {
                inner.insert(b.to_owned(), 1);
            }
        }
    }
}

fn count_down(m: &mut HashMap<String, HashMap<String, usize>>, a: &str, b: &str) {
    if let Some(inner) = m.get_mut(a) {
        if let Some(c) = inner.get_mut(b) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                inner.remove(b);
            }
        }
        if inner.is_empty() {
            m.remove(a);
        }
    }
}

/// Whether two versions of an object sit in the same index entries.
fn same_index_entries<K: Kept>(a: &K, b: &K) -> bool {
    let (ma, mb) = (a.kept_meta(), b.kept_meta());
    controller_of(ma).map(|r| &r.uid) == controller_of(mb).map(|r| &r.uid)
        && ma.labels == mb.labels
        && a.node_name() == b.node_name()
        && a.selects() == b.selects()
}

impl<K: Indexed> CacheInner<K> {
    fn index(&mut self, ns: &str, name: &str, id: usize, obj: &K::Kept) {
        let meta = obj.kept_meta();
        let key = || (ns.to_owned(), name.to_owned());
        let owner = controller_of(meta).map(|r| r.uid.as_str());
        match owner {
            Some(uid) => {
                self.by_controller
                    .entry(uid.to_owned())
                    .or_default()
                    .insert(key(), id);
            }
            None => {
                self.orphans.insert(key(), id);
            }
        }
        for (k, v) in meta.labels.iter().flatten() {
            self.by_label
                .entry((ns.to_owned(), k.clone(), v.clone()))
                .or_default()
                .insert(name.to_owned(), id);
        }
        if let Some(n) = obj.node_name() {
            count_up(&mut self.per_node, ns, n);
            if let Some(uid) = owner {
                count_up(&mut self.per_owner_node, uid, n);
            }
        }
        match obj.selects() {
            Selects::Nothing => {}
            Selects::Pair(k, v) => {
                self.by_selector
                    .entry(ns.to_owned())
                    .or_default()
                    .entry(k.to_owned())
                    .or_default()
                    .entry(v.to_owned())
                    .or_default()
                    .insert(id);
            }
            Selects::Any => {
                self.selects_any
                    .entry(ns.to_owned())
                    .or_default()
                    .insert(id);
            }
        }
    }

    fn unindex(&mut self, ns: &str, name: &str, id: usize, obj: &K::Kept) {
        let meta = obj.kept_meta();
        let key = (ns.to_owned(), name.to_owned());
        let owner = controller_of(meta).map(|r| r.uid.as_str());
        match owner {
            Some(uid) => {
                if let Some(set) = self.by_controller.get_mut(uid) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.by_controller.remove(uid);
                    }
                }
            }
            None => {
                self.orphans.remove(&key);
            }
        }
        for (k, v) in meta.labels.iter().flatten() {
            let lk = (key.0.clone(), k.clone(), v.clone());
            if let Some(set) = self.by_label.get_mut(&lk) {
                set.remove(name);
                if set.is_empty() {
                    self.by_label.remove(&lk);
                }
            }
        }
        if let Some(n) = obj.node_name() {
            count_down(&mut self.per_node, ns, n);
            if let Some(uid) = owner {
                count_down(&mut self.per_owner_node, uid, n);
            }
        }
        match obj.selects() {
            Selects::Nothing => {}
            Selects::Pair(k, v) => {
                if let Some(by_key) = self.by_selector.get_mut(ns) {
                    if let Some(by_value) = by_key.get_mut(k) {
                        if let Some(ids) = by_value.get_mut(v) {
                            ids.remove(&id);
                            if ids.is_empty() {
                                by_value.remove(v);
                            }
                        }
                        if by_value.is_empty() {
                            by_key.remove(k);
                        }
                    }
                    if by_key.is_empty() {
                        self.by_selector.remove(ns);
                    }
                }
            }
            Selects::Any => {
                if let Some(ids) = self.selects_any.get_mut(ns) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.selects_any.remove(ns);
                    }
                }
            }
        }
    }

    fn id_of(&self, ns: &str, name: &str) -> Option<usize> {
        self.ids.get(ns).and_then(|m| m.get(name)).copied()
    }

    fn slot(&self, id: usize) -> Option<&Slot<K>> {
        self.slots.get(id).and_then(Option::as_ref)
    }

    fn rv_of_key(&self, ns: &str, name: &str) -> Option<u64> {
        self.id_of(ns, name)
            .and_then(|id| self.slot(id))
            .map(|s| s.rv)
    }

    fn insert(
        &mut self,
        ns: &str,
        name: &str,
        rv: u64,
        obj: Arc<K::Kept>,
        full: Option<Full<K>>,
    ) -> Option<Arc<K::Kept>> {
        if let Some(id) = self.id_of(ns, name) {
            let old = self.slots.get_mut(id).and_then(Option::take);
            // The same version again keeps its object too: objects are
            // immutable per resourceVersion, and the kept facts hold it
            // ([`MemberFacts::cached`]), so one copy of the version stays.
            let (facts, full, obj) = match old {
                Some(ref o) if o.rv == rv && rv != 0 => (
                    o.facts.clone(),
                    merge_full(o.full.clone(), full),
                    o.obj.clone(),
                ),
                _ => (Kept::member_facts(&obj), full, obj),
            };
            let old = old.map(|s| s.obj);
            match &old {
                Some(o) if same_index_entries(&**o, &*obj) => {}
                Some(o) => {
                    self.unindex(ns, name, id, o);
                    self.index(ns, name, id, &obj);
                }
                None => self.index(ns, name, id, &obj),
            }
            if let Some(s) = self.slots.get_mut(id) {
                *s = Some(Slot {
                    rv,
                    obj,
                    facts,
                    full,
                });
            }
            return old;
        }
        let slot = Some(Slot {
            rv,
            obj: obj.clone(),
            facts: Kept::member_facts(&obj),
            full,
        });
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(s) = self.slots.get_mut(id) {
                    *s = slot;
                }
                id
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.ids
            .entry(ns.to_owned())
            .or_default()
            .insert(name.to_owned(), id);
        self.index(ns, name, id, &obj);
        None
    }

    fn take(&mut self, ns: &str, name: &str) -> Option<Arc<K::Kept>> {
        let names = self.ids.get_mut(ns)?;
        let id = names.remove(name)?;
        if names.is_empty() {
            self.ids.remove(ns);
        }
        let slot = self.slots.get_mut(id).and_then(Option::take)?;
        self.free.push(id);
        self.unindex(ns, name, id, &slot.obj);
        Some(slot.obj)
    }

    /// The slot ids of [`Cache::claimable`], in key order.
    fn claimable_ids(&self, ns: &str, uid: &str) -> Vec<usize> {
        let controlled = self.by_controller.get(uid);
        // A controller's objects are in its namespace (a uid names one
        // object): when the first and the last key (in namespace order) are
        // of `ns`, every one is, and none is compared (a string compare per
        // object, reading each key's namespace, was most of this walk).
        let all_in_ns = controlled.is_none_or(|m| {
            m.first_key_value().is_some_and(|((n, _), _)| n == ns)
                && m.last_key_value().is_some_and(|((n, _), _)| n == ns)
        });
        let owned = controlled
            .into_iter()
            .flatten()
            .filter(move |((n, _), _)| all_in_ns || n == ns);
        let mut ids: Vec<(&Key, usize)> = self
            .orphans
            .range((ns.to_owned(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .map(|(k, id)| (k, *id))
            .collect();
        if ids.is_empty() {
            return owned.map(|(_, id)| *id).collect();
        }
        ids.extend(owned.map(|(k, id)| (k, *id)));
        ids.sort_unstable_by(|a, b| a.0.cmp(b.0));
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// The objects of slots `ids`, in that order.
    fn objs(&self, ids: impl IntoIterator<Item = usize>) -> Vec<Arc<K::Kept>> {
        ids.into_iter()
            .filter_map(|id| self.slot(id).map(|s| s.obj.clone()))
            .collect()
    }

    fn ns_ids(&self, ns: &str) -> impl Iterator<Item = usize> + '_ {
        self.ids
            .get(ns)
            .into_iter()
            .flat_map(|m| m.values().copied())
    }
}

/// An informer cache of one kind, keyed by (namespace, name), with the
/// indexes of [`CacheInner`].
pub struct Cache<K: Indexed> {
    items: RwLock<CacheInner<K>>,
}

impl<K: Indexed> Default for Cache<K> {
    fn default() -> Self {
        Self {
            items: RwLock::default(),
        }
    }
}

fn rv_of(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn key_of(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl<K: Indexed> Cache<K> {
    /// One object.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K::Kept>> {
        let m = self.items.read().ok()?;
        m.id_of(ns, name)
            .and_then(|id| m.slot(id))
            .map(|s| s.obj.clone())
    }

    /// The object stored at exactly resourceVersion `rv`, if that is the cached version
    /// (objects are immutable per resourceVersion, so it is the one the store holds).
    pub fn get_at(&self, ns: &str, name: &str, rv: u64) -> Option<Arc<K::Kept>> {
        let m = self.items.read().ok()?;
        m.id_of(ns, name)
            .and_then(|id| m.slot(id))
            .filter(|s| s.rv == rv)
            .map(|s| s.obj.clone())
    }

    /// All objects of a namespace, in name order.
    pub fn list_ns(&self, ns: &str) -> Vec<Arc<K::Kept>> {
        self.items
            .read()
            .map_or_else(|_| Vec::new(), |m| m.objs(m.ns_ids(ns)))
    }

    /// Every object, in key order.
    pub fn list(&self) -> Vec<Arc<K::Kept>> {
        self.items.read().map_or_else(
            |_| Vec::new(),
            |m| m.objs(m.ids.values().flat_map(|n| n.values().copied())),
        )
    }

    /// The objects of namespace `ns` a controller with uid `uid` may claim:
    /// those it controls and those no one controls, in key order (what
    /// `ClaimPods` of `controller_ref_manager.go` can act on; objects of
    /// other controllers are ignored by it).
    pub fn claimable(&self, ns: &str, uid: &str) -> Vec<Arc<K::Kept>> {
        let Ok(m) = self.items.read() else {
            return Vec::new();
        };
        m.objs(m.claimable_ids(ns, uid))
    }

    /// The objects of `ns` controlled by `uid`, in key order.
    pub fn controlled_by(&self, ns: &str, uid: &str) -> Vec<Arc<K::Kept>> {
        let Ok(m) = self.items.read() else {
            return Vec::new();
        };
        m.by_controller.get(uid).map_or_else(Vec::new, |owned| {
            m.objs(
                owned
                    .iter()
                    .filter(|((n, _), _)| n == ns)
                    .map(|(_, id)| *id),
            )
        })
    }

    /// A superset of the objects of `ns` whose labels carry every pair of
    /// `required` (in key order): the objects of the smallest of the pairs'
    /// label indexes, or the whole namespace when `required` is empty. The
    /// caller still applies its full selector.
    pub fn with_labels<'a>(
        &self,
        ns: &str,
        required: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Vec<Arc<K::Kept>> {
        self.with_labels_at(ns, required).1
    }

    /// [`Cache::with_labels`], with the [`Cache::generation`] it was read at.
    pub fn with_labels_at<'a>(
        &self,
        ns: &str,
        required: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> (u64, Vec<Arc<K::Kept>>) {
        let Ok(m) = self.items.read() else {
            return (0, Vec::new());
        };
        let mut best: Option<&BTreeMap<String, usize>> = None;
        let mut any = false;
        for (k, v) in required {
            any = true;
            let names = m.by_label.get(&(ns.to_owned(), k.clone(), v.clone()));
            let Some(names) = names else {
                return (m.relists, Vec::new());
            };
            if best.is_none_or(|b| names.len() < b.len()) {
                best = Some(names);
            }
        }
        let objs = match best {
            Some(names) => m.objs(names.values().copied()),
            None if !any => m.objs(m.ns_ids(ns)),
            None => Vec::new(),
        };
        (m.relists, objs)
    }

    /// How many objects of `ns` are bound to `node` ([`Indexed::node_name`]).
    pub fn count_on_node(&self, ns: &str, node: &str) -> usize {
        self.items.read().map_or(0, |m| {
            m.per_node
                .get(ns)
                .and_then(|n| n.get(node))
                .copied()
                .unwrap_or(0)
        })
    }

    /// How many objects controlled by `uid` are bound to `node`.
    pub fn count_owned_on_node(&self, uid: &str, node: &str) -> usize {
        self.items.read().map_or(0, |m| {
            m.per_owner_node
                .get(uid)
                .and_then(|n| n.get(node))
                .copied()
                .unwrap_or(0)
        })
    }

    /// A superset of the objects of `ns` whose selector ([`Indexed::selects`]) may select a pod
    /// with any of `label_sets`, in slot order; the caller still applies the full selector.
    pub fn selecting(
        &self,
        ns: &str,
        label_sets: &[Option<&BTreeMap<String, String>>],
    ) -> Vec<Arc<K::Kept>> {
        let Ok(m) = self.items.read() else {
            return Vec::new();
        };
        let mut ids: BTreeSet<usize> = m.selects_any.get(ns).cloned().unwrap_or_default();
        if let Some(by_key) = m.by_selector.get(ns) {
            for (k, v) in label_sets.iter().flatten().flat_map(|l| l.iter()) {
                if let Some(found) = by_key.get(k).and_then(|by_value| by_value.get(v)) {
                    ids.extend(found);
                }
            }
        }
        m.objs(ids)
    }

    /// Stores `obj` unless the cache already holds a newer version; returns
    /// the previous version when it was replaced.
    pub fn apply(&self, obj: K) -> Option<Arc<K::Kept>> {
        self.apply_arc(Arc::new(obj))
    }

    /// [`Cache::apply`] of a shared object (a whole object: a kind that keeps
    /// a projection keeps this one as the version's whole object until its
    /// stored JSON arrives, [`Cache::apply_version`]).
    pub fn apply_arc(&self, obj: Arc<K>) -> Option<Arc<K::Kept>> {
        let (kept, whole) = K::keep(obj);
        self.put(kept, whole.map(Full::Obj))
    }

    /// Stores a version as the watch delivered it: `obj` is what the cache keeps
    /// of it (its [`Indexed::projection`] for a projected kind), `json` its stored
    /// bytes (kept for a projected kind only).
    pub fn apply_version(&self, obj: Arc<K::Kept>, json: &Bytes) -> Option<Arc<K::Kept>> {
        let full = K::PROJECTED.then(|| Full::Json(json.clone()));
        self.put(obj, full)
    }

    fn put(&self, obj: Arc<K::Kept>, full: Option<Full<K>>) -> Option<Arc<K::Kept>> {
        let keyed = obj.clone();
        let meta = keyed.kept_meta();
        let rv = rv_of(meta);
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        let mut m = self.items.write().ok()?;
        match m.rv_of_key(ns, name) {
            Some(old_rv) if old_rv > rv => None,
            _ => m.insert(ns, name, rv, obj, full),
        }
    }

    /// Forgets an object deleted at `rv`.
    pub fn remove(&self, ns: &str, name: &str, rv: u64) -> Option<Arc<K::Kept>> {
        let mut m = self.items.write().ok()?;
        match m.rv_of_key(ns, name) {
            Some(cur) if cur > rv => None,
            Some(_) => m.take(ns, name),
            None => None,
        }
    }

    fn replace_all(&self, items: Listed<K>) {
        let mut inner = CacheInner::default();
        for ((ns, name), (rv, o, json)) in items {
            let full = K::PROJECTED.then_some(Full::Json(json));
            inner.insert(&ns, &name, rv, o, full);
        }
        if let Ok(mut m) = self.items.write() {
            inner.relists = m.relists + 1;
            *m = inner;
        }
    }

    /// How many times a relist replaced the contents: a relist drops objects
    /// without a delete notification, so state kept from the notifications
    /// (the disruption budgets' tallies) is rebuilt when this moves.
    pub fn generation(&self) -> u64 {
        self.items.read().map_or(0, |m| m.relists)
    }
}

impl<K: Indexed + DeserializeOwned> Cache<K> {
    /// The whole object `ns/name` as cached (`None`: not cached): for a kind the
    /// cache keeps a projection of ([`Indexed::PROJECTED`]), decoded from the
    /// cached version's stored JSON, the very object that version is (a
    /// resourceVersion names one content); else the cached object.
    pub fn full(&self, ns: &str, name: &str) -> Option<Result<Arc<K>, ApiError>> {
        self.full_where(ns, name, |_| true)
    }

    /// [`Cache::full`] of the version stored at exactly `rv` (`None`: the cache
    /// holds another version, or none).
    pub fn full_at(&self, ns: &str, name: &str, rv: u64) -> Option<Result<Arc<K>, ApiError>> {
        self.full_where(ns, name, |r| r == rv)
    }

    fn full_where(
        &self,
        ns: &str,
        name: &str,
        rv_ok: impl Fn(u64) -> bool,
    ) -> Option<Result<Arc<K>, ApiError>> {
        let (obj, full) = {
            let m = self.items.read().ok()?;
            let s = m.id_of(ns, name).and_then(|id| m.slot(id))?;
            if !rv_ok(s.rv) {
                return None;
            }
            (s.obj.clone(), s.full.clone())
        };
        // Decoded outside the lock.
        Some(match full {
            Some(Full::Obj(o)) => Ok(o),
            Some(Full::Json(j)) => serde_json::from_slice::<K>(&j)
                .map(Arc::new)
                .map_err(|e| ApiError::internal(format!("failed to decode cached object: {e}"))),
            None => K::whole(obj).ok_or_else(|| {
                ApiError::internal(format!("the cache holds no whole object of {ns}/{name}"))
            }),
        })
    }
}

impl Cache<Pod> {
    /// [`Cache::claimable`] as each pod's [`MemberFacts`], kept per stored
    /// version and holding it ([`MemberFacts::cached`] is always some; the
    /// facts are computed afresh for a slot without them, which the pod cache
    /// never has: [`Kept::member_facts`] of a pod is always some). One shared
    /// object per pod is touched (the facts', not the pod's, reference count).
    pub fn claimable_members(&self, ns: &str, uid: &str) -> Vec<Arc<MemberFacts>> {
        let Ok(m) = self.items.read() else {
            return Vec::new();
        };
        m.claimable_ids(ns, uid)
            .into_iter()
            .filter_map(|id| m.slot(id))
            .map(|s| match &s.facts {
                Some(f) if f.cached().is_some() => f.clone(),
                _ => Arc::new(MemberFacts::kept_with(s.obj.clone())),
            })
            .collect()
    }
}

/// A change seen by an informer (of what the cache keeps, [`Indexed::Kept`]).
pub enum Change<K: Indexed> {
    /// Added or modified (with the previous version if cached).
    Upsert {
        /// Previous version.
        old: Option<Arc<K::Kept>>,
        /// New version.
        new: Arc<K::Kept>,
    },
    /// Deleted.
    Delete(Arc<K::Kept>),
}

/// A de-duplicating work queue of keys with delayed adds.
///
/// Like client-go's `workqueue` (`util/workqueue/queue.go`, `delaying_queue.go`):
/// a key waiting to be processed is queued once however often it is added,
/// a key is never processed by two workers at once (a key added while a worker
/// processes it waits, marked dirty, and is queued again when that worker is
/// done: `queue.go`'s `dirty` and `processing` sets), and delayed adds wait in
/// one timer per queue (a heap ordered by time, `waitingLoop`) — a key already
/// waiting keeps the earlier of its two times — instead of a task and a timer
/// per add.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<Key>,
    keys: Arc<Mutex<QueueKeys>>,
    failures: Arc<Mutex<HashMap<Key, u32>>>,
    delayed: Arc<Mutex<Delayed>>,
    wake: Arc<tokio::sync::Notify>,
}

/// The keys a [`Queue`] knows of: `dirty` ones are waiting to be processed (each
/// sent to the workers once, unless it is being processed), `processing` ones
/// are with a worker.
#[derive(Default)]
struct QueueKeys {
    dirty: HashSet<Key>,
    processing: HashSet<Key>,
}

/// Keys waiting for their time to be added, earliest first.
#[derive(Default)]
struct Delayed {
    by_time: BTreeSet<(tokio::time::Instant, Key)>,
    by_key: HashMap<Key, tokio::time::Instant>,
}

impl Queue {
    fn new() -> (Self, mpsc::UnboundedReceiver<Key>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                keys: Arc::default(),
                failures: Arc::default(),
                delayed: Arc::default(),
                wake: Arc::default(),
            },
            rx,
        )
    }

    /// Adds a key (no-op when already queued).
    pub fn add(&self, ns: &str, name: &str) {
        let key = (ns.to_owned(), name.to_owned());
        self.add_key(key);
    }

    fn add_key(&self, key: Key) {
        let Ok(mut k) = self.keys.lock() else {
            return;
        };
        // Queued once; a key being processed is sent again by `finish`.
        if k.dirty.insert(key.clone()) && !k.processing.contains(&key) {
            let _ = self.tx.send(key);
        }
    }

    /// Adds a key after a (real-time) delay; a key already waiting keeps the
    /// earlier time (`AddAfter` of `delaying_queue.go`).
    pub fn add_after(&self, ns: &str, name: &str, delay: Duration) {
        if delay.is_zero() {
            return self.add(ns, name);
        }
        let at = tokio::time::Instant::now() + delay;
        let key = (ns.to_owned(), name.to_owned());
        let Ok(mut d) = self.delayed.lock() else {
            return;
        };
        match d.by_key.get(&key) {
            Some(cur) if *cur <= at => return,
            Some(cur) => {
                let cur = *cur;
                d.by_time.remove(&(cur, key.clone()));
            }
            None => {}
        }
        let earliest = d.by_time.first().is_none_or(|(first, _)| at < *first);
        d.by_key.insert(key.clone(), at);
        d.by_time.insert((at, key));
        drop(d);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// The queue's timer: adds each delayed key when its time comes.
    async fn run_timer(self) {
        loop {
            let next = self
                .delayed
                .lock()
                .ok()
                .and_then(|d| d.by_time.first().map(|(at, _)| *at));
            match next {
                None => self.wake.notified().await,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.wake.notified() => continue,
                    }
                }
            }
            let now = tokio::time::Instant::now();
            let due: Vec<Key> = match self.delayed.lock() {
                Ok(mut d) => {
                    let mut due = Vec::new();
                    while d.by_time.first().is_some_and(|(at, _)| *at <= now) {
                        if let Some((_, key)) = d.by_time.pop_first() {
                            d.by_key.remove(&key);
                            due.push(key);
                        }
                    }
                    due
                }
                Err(_) => return,
            };
            for key in due {
                self.add_key(key);
            }
        }
    }

    /// Requeues after a failure with per-key exponential back-off.
    pub fn retry(&self, ns: &str, name: &str) {
        let key = (ns.to_owned(), name.to_owned());
        let n = self.failures.lock().map_or(0, |mut f| {
            let e = f.entry(key).or_insert(0);
            *e = e.saturating_add(1);
            *e
        });
        let ms = 5u64.saturating_mul(1u64 << n.min(8)).min(1000);
        self.add_after(ns, name, Duration::from_millis(ms));
    }

    fn forget(&self, key: &Key) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }

    /// A worker takes `key`: adds from now on queue it again (after `finish`).
    fn start(&self, key: &Key) {
        if let Ok(mut k) = self.keys.lock() {
            k.dirty.remove(key);
            k.processing.insert(key.clone());
        }
    }

    /// The worker is done with `key`: if it was added meanwhile, it is queued now.
    fn finish(&self, key: &Key) {
        if let Ok(mut k) = self.keys.lock() {
            k.processing.remove(key);
            if k.dirty.contains(key) {
                let _ = self.tx.send(key.clone());
            }
        }
    }
}

/// The shared informer caches.
#[derive(Default)]
pub struct Caches {
    /// StatefulSets.
    pub sets: Cache<StatefulSet>,
    /// Pods, as their projections ([`CachedPod`], read through [`PodView`]); the
    /// whole pod of a cached version is [`Cache::full`].
    pub pods: Cache<Pod>,
    /// ControllerRevisions.
    pub revisions: Cache<ControllerRevision>,
    /// PersistentVolumeClaims.
    pub pvcs: Cache<PersistentVolumeClaim>,
    /// PodDisruptionBudgets.
    pub pdbs: Cache<PodDisruptionBudget>,
    /// Services.
    pub services: Cache<Service>,
    /// EndpointSlices.
    pub slices: Cache<EndpointSlice>,
    /// Endpoints.
    pub endpoints: Cache<Endpoints>,
    /// Nodes.
    pub nodes: Cache<Node>,
}

struct Shared {
    api: Api,
    clock: Clock,
    faults: Faults,
    caches: Caches,
    kubelet: KubeletConfig,
    events: Recorder,
    sets_q: Queue,
    pdbs_q: Queue,
    eps_q: Queue,
    pods_q: Queue,
    ips: Mutex<HashMap<String, usize>>,
    pod_ips: Mutex<HashMap<String, String>>,
    terminating: Mutex<HashMap<String, Timestamp>>,
    /// When each pod's sandbox started, by uid, to the nanosecond (`status.startTime` is stored in
    /// whole seconds, so timing container starts from it would start them up to a second early).
    sandbox_started: Mutex<HashMap<String, Timestamp>>,
    /// Per pod uid: the latest exit of each container, to the nanosecond (the container runtime's
    /// record; `lastState.terminated.finishedAt` is stored in whole seconds).
    exits: Mutex<HashMap<String, Vec<ContainerExit>>>,
    /// When the scheduler first saw each unbound pod, by uid, to the nanosecond (its queue's
    /// timestamp; `creationTimestamp` is stored in whole seconds).
    queued: Mutex<HashMap<String, Timestamp>>,
    node_failed_at: Mutex<HashMap<String, Timestamp>>,
    /// Per pod uid: the `Ready` status the kubelet last computed, and since
    /// when the stored one differs from it (someone else's write).
    ready_seen: Mutex<HashMap<String, ReadySeen>>,
    /// Held while a pod is scheduled: the scheduler places one pod at a time, each
    /// seeing the ones placed before it (`schedule_one.go`), while the pod workers
    /// run concurrently ([`POD_WORKERS`]).
    scheduling: tokio::sync::Mutex<()>,
    /// Per StatefulSet (namespace, name): its last candidate revision's data
    /// and hash ([`CandidateMemo`]; dropped when a sync finds the set gone).
    candidates: Mutex<HashMap<(String, String), CandidateMemo>>,
    /// Per StatefulSet (namespace, name): its [`ClaimKey`] (namespace, name,
    /// uid, `spec.selector`) as one shared value while it is unchanged, the
    /// key of the claim verdicts kept in the pods' [`MemberFacts`] (dropped
    /// when a sync finds the set gone).
    selectors: Mutex<HashMap<Key, Arc<ClaimKey>>>,
    /// Per disruption budget: the tally of the pods it selects, kept from the pod
    /// notifications so that a sync reads what changed ([`PdbTally`]).
    pdb_tallies: Mutex<HashMap<Key, PdbTally>>,
}

/// A budget's [`disruption::Tally`] and what it was counted for: rebuilt from the
/// pod cache when the budget (uid), its selector or the cache's relist
/// generation differ, else brought up to date by re-reading the pods marked
/// `dirty` by the pod informer ([`Shared::on_pod`] marks the pods it syncs the
/// budget for, before it queues the budget).
///
/// Upstream lists the budget's pods from the informer on every sync
/// (`getPodsForPdb`, `disruption.go`); the tally holds the same pods, read from
/// the same cache when they last changed, so the status and when it is written
/// are the same.
#[derive(Debug)]
struct PdbTally {
    uid: Option<String>,
    selector: Option<LabelSelector>,
    generation: u64,
    tally: disruption::Tally<CachedPod>,
    dirty: BTreeSet<String>,
}

/// The kubelet's memory of a pod's `Ready` condition ([`PodFacts::ready_override_since`]).
#[derive(Debug, Default, Clone, Copy)]
struct ReadySeen {
    computed: Option<bool>,
    overridden_since: Option<Timestamp>,
}

/// The running simulation (controllers, kubelets, scheduler, fault reactor).
/// Dropping it stops every task.
pub struct Simulation {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl Drop for Simulation {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Simulation {
    /// Creates the fake nodes, registers `pods/eviction`, and starts every
    /// informer, controller and kubelet task on the current tokio runtime.
    pub fn start(api: Api, config: SimConfig) -> Result<Self, ApiError> {
        let faults = Faults::new(config.seed);
        Self::start_with_faults(api, config, faults)
    }

    /// Like [`Simulation::start`], sharing an existing fault state (the one
    /// the API server's request pipeline consults).
    pub fn start_with_faults(
        api: Api,
        config: SimConfig,
        faults: Faults,
    ) -> Result<Self, ApiError> {
        let clock = Clock::new(config.speed);
        let (sets_q, sets_rx) = Queue::new();
        let (pdbs_q, pdbs_rx) = Queue::new();
        let (eps_q, eps_rx) = Queue::new();
        let (pods_q, pods_rx) = Queue::new();
        for node in kubelet::fake_nodes(config.nodes, clock.now()) {
            match api.create_typed(None, &node) {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        let (events, events_task) = if config.record_events {
            let (r, t) = Recorder::start(api.clone());
            (r, Some(t))
        } else {
            (Recorder::disabled(), None)
        };
        let shared = Arc::new(Shared {
            api: api.clone(),
            clock,
            faults,
            caches: Caches::default(),
            kubelet: config.kubelet,
            events,
            sets_q,
            pdbs_q,
            eps_q,
            pods_q,
            ips: Mutex::default(),
            pod_ips: Mutex::default(),
            terminating: Mutex::default(),
            sandbox_started: Mutex::default(),
            exits: Mutex::default(),
            queued: Mutex::default(),
            node_failed_at: Mutex::default(),
            ready_seen: Mutex::default(),
            scheduling: tokio::sync::Mutex::default(),
            candidates: Mutex::default(),
            selectors: Mutex::default(),
            pdb_tallies: Mutex::default(),
        });
        register_eviction(&shared);
        register_binding(&shared);
        let mut tasks = vec![
            informer::<StatefulSet>(shared.clone(), |s, c| s.on_set(c), |s| &s.caches.sets),
            informer::<Pod>(shared.clone(), |s, c| s.on_pod(c), |s| &s.caches.pods),
            informer::<ControllerRevision>(shared.clone(), |_, _| {}, |s| &s.caches.revisions),
            informer::<PersistentVolumeClaim>(shared.clone(), |_, _| {}, |s| &s.caches.pvcs),
            informer::<PodDisruptionBudget>(shared.clone(), |s, c| s.on_pdb(c), |s| &s.caches.pdbs),
            informer::<Service>(
                shared.clone(),
                |s, c| s.on_service(c),
                |s| &s.caches.services,
            ),
            informer::<EndpointSlice>(shared.clone(), |_, _| {}, |s| &s.caches.slices),
            informer::<Endpoints>(shared.clone(), |_, _| {}, |s| &s.caches.endpoints),
            cluster_informer::<Node>(shared.clone(), |s, c| s.on_node(c), |s| &s.caches.nodes),
        ];
        for q in [
            &shared.sets_q,
            &shared.pdbs_q,
            &shared.eps_q,
            &shared.pods_q,
        ] {
            tasks.push(tokio::spawn(q.clone().run_timer()));
        }
        tasks.push(set_worker(shared.clone(), sets_rx));
        // The disruption controller runs one worker (`disruption.go` `Run`); the
        // EndpointSlice controller's default is five (`ConcurrentServiceEndpointSyncs`)
        // but one keeps the simulation's slices in the order of its pod events.
        tasks.extend(workers(
            &shared,
            pdbs_rx,
            ("disruption", |s| &s.pdbs_q),
            |s, ns, n| Box::pin(sync_pdb(s, ns, n)),
            1,
        ));
        tasks.extend(workers(
            &shared,
            eps_rx,
            ("endpointslice", |s| &s.eps_q),
            |s, ns, n| Box::pin(sync_service(s, ns, n)),
            1,
        ));
        tasks.extend(workers(
            &shared,
            pods_rx,
            ("pod", |s| &s.pods_q),
            |s, ns, n| Box::pin(sync_pod(s, ns, n)),
            POD_WORKERS,
        ));
        tasks.push(tokio::spawn(fault_reactor(shared.clone())));
        tasks.push(tokio::spawn(pod_killer(shared.clone())));
        tasks.extend(events_task);
        Ok(Self { shared, tasks })
    }

    /// The run-time switchable faults.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The simulated clock.
    pub fn clock(&self) -> Clock {
        self.shared.clock
    }

    /// The informer caches (read-only view of what the controllers see; pods are
    /// kept as projections, [`Caches::pods`]).
    pub fn caches(&self) -> &Caches {
        &self.shared.caches
    }

    /// Stops every task.
    pub fn shutdown(self) {
        drop(self);
    }
}

fn informer<K>(
    shared: Arc<Shared>,
    on_change: fn(&Shared, Change<K>),
    cache: fn(&Shared) -> &Cache<K>,
) -> JoinHandle<()>
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Indexed
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static,
{
    tokio::spawn(run_informer(shared, on_change, cache))
}

fn cluster_informer<K>(
    shared: Arc<Shared>,
    on_change: fn(&Shared, Change<K>),
    cache: fn(&Shared) -> &Cache<K>,
) -> JoinHandle<()>
where
    K: kube::Resource<DynamicType = ()>
        + Indexed
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static,
{
    tokio::spawn(run_informer(shared, on_change, cache))
}

async fn run_informer<K>(
    shared: Arc<Shared>,
    on_change: fn(&Shared, Change<K>),
    cache: fn(&Shared) -> &Cache<K>,
) where
    K: kube::Resource<DynamicType = ()>
        + Indexed
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static,
{
    loop {
        let opts = WatchOptions {
            send_initial_events: true,
            ..WatchOptions::default()
        };
        let mut watch = match shared.api.watch_typed::<K>(None, &opts) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e.message, "informer failed to watch");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut initial: Option<Listed<K>> = Some(BTreeMap::new());
        while let Some(ev) = watch.next_raw().await {
            match ev {
                crate::api::RawEvent::Object(kind, stored) => {
                    let c = cache(&shared);
                    // A version this process wrote is in the cache already (the writes are
                    // applied as the API answers): the same object, as a resourceVersion
                    // names one content, so it is not decoded again.
                    let written = match kind {
                        EventType::Deleted => None,
                        _ => c.get_at(stored.namespace(), stored.name(), stored.rv),
                    };
                    // What the cache keeps: the object, or its projection (the whole
                    // object is then decoded from `stored.json` when needed, `Cache::full`).
                    let obj = match written {
                        Some(o) => o,
                        None => match K::decode_kept(&stored.json) {
                            Ok(o) => Arc::new(o),
                            Err(_) => continue,
                        },
                    };
                    if let Some(init) = initial.as_mut() {
                        init.insert(
                            key_of(obj.kept_meta()),
                            (stored.rv, obj, stored.json.clone()),
                        );
                        continue;
                    }
                    match kind {
                        EventType::Deleted => {
                            let (ns, name) = ns_name(obj.kept_meta());
                            c.remove(ns, name, stored.rv);
                            on_change(&shared, Change::Delete(obj));
                        }
                        _ => {
                            let old = c.apply_version(obj.clone(), &stored.json);
                            on_change(&shared, Change::Upsert { old, new: obj });
                        }
                    }
                }
                crate::api::RawEvent::Bookmark { initial_end, .. } => {
                    if initial_end && let Some(init) = initial.take() {
                        let c = cache(&shared);
                        let items: Vec<Arc<K::Kept>> =
                            init.values().map(|(_, k, _)| k.clone()).collect();
                        c.replace_all(init);
                        for k in items {
                            on_change(&shared, Change::Upsert { old: None, new: k });
                        }
                    }
                }
                crate::api::RawEvent::Error(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A sync: its writes go through admission (webhooks see the controllers' and the kubelets'
/// writes, as on a cluster where they talk to kube-apiserver), so it is async.
type SyncFn =
    for<'a> fn(&'a Shared, &'a str, &'a str) -> BoxFuture<'a, Result<Option<Duration>, ApiError>>;

/// How many pods the kubelets and the scheduler sync at once. On a cluster every
/// node's kubelet works on its pods at the same time, each pod in its own
/// goroutine (`pod_workers.go` `managePodLoop`), so a batch of pods restarting
/// together is not served one after the other; the scheduler stays serial
/// (`Shared::scheduling`, `schedule_one.go` schedules one pod at a time).
const POD_WORKERS: usize = 8;

/// `n` workers taking keys from one queue (`rx`), each key synced by one
/// worker at a time ([`Queue::start`], [`Queue::finish`]).
/// `controller` names the syncs' counter (`kubesim_controller_syncs_total`).
fn workers(
    shared: &Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Key>,
    (controller, queue): (&str, fn(&Shared) -> &Queue),
    sync: SyncFn,
    n: usize,
) -> Vec<JoinHandle<()>> {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let syncs = shared.api.controller_metrics().syncs(controller);
    (0..n.max(1))
        .map(|_| {
            let shared = shared.clone();
            let rx = rx.clone();
            let syncs = syncs.clone();
            tokio::spawn(async move {
                loop {
                    let Some(key) = rx.lock().await.recv().await else {
                        return;
                    };
                    let q = queue(&shared);
                    syncs.inc();
                    q.start(&key);
                    let r = sync(&shared, &key.0, &key.1).await;
                    requeue(q, &key, r);
                    q.finish(&key);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect()
}

/// The StatefulSet worker: like [`workers`], with an async sync whose writes
/// go through admission (webhooks see the pods the controller creates).
fn set_worker(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Key>) -> JoinHandle<()> {
    let syncs = shared.api.controller_metrics().syncs("statefulset");
    tokio::spawn(async move {
        while let Some(key) = rx.recv().await {
            syncs.inc();
            shared.sets_q.start(&key);
            let r = sync_set(&shared, &key.0, &key.1).await;
            requeue(&shared.sets_q, &key, r);
            shared.sets_q.finish(&key);
            tokio::task::yield_now().await;
        }
    })
}

fn requeue(q: &Queue, key: &Key, r: Result<Option<Duration>, ApiError>) {
    match r {
        Ok(after) => {
            q.forget(key);
            if let Some(d) = after {
                q.add_after(&key.0, &key.1, d);
            }
        }
        Err(e) => {
            tracing::debug!(ns = %key.0, name = %key.1, error = %e.message, "sync failed, requeued");
            q.retry(&key.0, &key.1);
        }
    }
}

fn ns_name(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

impl Shared {
    /// The set's [`ClaimKey`] as the `Arc` kept for it ([`Shared::selectors`]):
    /// the same one while the key is equal, a new one when it changed.
    fn set_claim_key(
        &self,
        ns: &str,
        name: &str,
        set: &StatefulSet,
    ) -> Result<Arc<ClaimKey>, ApiError> {
        let mut all = self
            .selectors
            .lock()
            .map_err(|_| ApiError::internal("claim key memo poisoned"))?;
        if let Some(kept) = all.get(&(ns.to_owned(), name.to_owned()))
            && kept.describes(set)
        {
            return Ok(kept.clone());
        }
        let fresh = Arc::new(ClaimKey::of(set).map_err(|e| ApiError::internal(e.to_string()))?);
        all.insert((ns.to_owned(), name.to_owned()), fresh.clone());
        Ok(fresh)
    }

    fn on_set(&self, c: Change<StatefulSet>) {
        if let Change::Upsert { new, old } = c {
            let (ns, name) = ns_name(&new.metadata);
            self.sets_q.add(ns, name);
            // A budget reads a set only for its uid and scale (`getScaleController`), so
            // only a change of those re-syncs the namespace's budgets (status writes,
            // one per pod transition, do not).
            let scale = |s: &StatefulSet| (s.metadata.uid.clone(), statefulset::replicas(s));
            if old.as_deref().is_none_or(|o| scale(o) != scale(&new)) {
                for p in self.caches.pdbs.list_ns(ns) {
                    let (pns, pname) = ns_name(&p.metadata);
                    self.pdbs_q.add(pns, pname);
                }
            }
        }
    }

    fn on_pdb(&self, c: Change<PodDisruptionBudget>) {
        match c {
            Change::Upsert { new, .. } => {
                let (ns, name) = ns_name(&new.metadata);
                self.pdbs_q.add(ns, name);
            }
            Change::Delete(old) => {
                let (ns, name) = ns_name(&old.metadata);
                if let Ok(mut t) = self.pdb_tallies.lock() {
                    t.remove(&(ns.to_owned(), name.to_owned()));
                }
            }
        }
    }

    fn on_service(&self, c: Change<Service>) {
        let obj = match &c {
            Change::Upsert { new, .. } => new,
            Change::Delete(o) => o,
        };
        let (ns, name) = ns_name(&obj.metadata);
        self.eps_q.add(ns, name);
    }

    fn on_node(&self, c: Change<Node>) {
        if let Change::Upsert { new, .. } = c {
            let node = new.metadata.name.clone().unwrap_or_default();
            for p in self.caches.pods.list() {
                if p.spec_node_name() == Some(node.as_str()) {
                    let (ns, name) = ns_name(&p.metadata);
                    self.pods_q.add(ns, name);
                }
            }
        }
    }

    fn on_pod(&self, c: Change<Pod>) {
        let (pod, old) = match &c {
            Change::Upsert { new, old } => (new.clone(), old.clone()),
            Change::Delete(o) => {
                // A pod deleted before the scheduler or the kubelet finished with it.
                let uid = o.metadata.uid.as_deref().unwrap_or_default();
                if let Ok(mut q) = self.queued.lock() {
                    q.remove(uid);
                }
                if let Ok(mut m) = self.exits.lock() {
                    m.remove(uid);
                }
                (o.clone(), None)
            }
        };
        let (ns, name) = ns_name(&pod.metadata);
        // kubelet + scheduler
        self.pods_q.add(ns, name);
        // StatefulSet controller: the owner, or every matching set for adoption.
        match controller_of(&pod.metadata) {
            Some(r) if r.kind == "StatefulSet" => self.sets_q.add(ns, &r.name),
            Some(_) => {}
            None => {
                for s in self.caches.sets.list_ns(ns) {
                    let matches = s.spec.as_ref().is_some_and(|spec| {
                        selector_matches(&spec.selector, pod.metadata.labels.as_ref())
                            .unwrap_or(false)
                    });
                    if matches {
                        let (sns, sname) = ns_name(&s.metadata);
                        self.sets_q.add(sns, sname);
                    }
                }
            }
        }
        // minReadySeconds: re-sync when the pod becomes available.
        if let (Some(old), Some(r)) = (old.as_ref(), controller_of(&pod.metadata))
            && !is_pod_ready(old)
            && is_pod_ready(&pod)
            && let Some(set) = self.caches.sets.get(ns, &r.name)
            && let Some(mrs) = set
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .filter(|m| *m > 0)
        {
            let d = self
                .clock
                .real(SignedDuration::from_secs(i64::from(mrs) + 1));
            self.sets_q.add_after(ns, &r.name, d);
        }
        // The disruption budgets selecting the pod, before or after the change
        // (`getPdbForPod`, `disruption.go`; a budget whose selector does not parse
        // is synced to report it), and likewise the services
        // (`GetPodServiceMemberships` of the old and new labels, `endpointslice_controller.go`).
        let labels = [
            pod.metadata.labels.as_ref(),
            old.as_ref().and_then(|o| o.metadata.labels.as_ref()),
        ];
        let label_sets = [Some(&pod), old.as_ref()];
        let label_sets = label_sets
            .iter()
            .flatten()
            .map(|p| p.metadata.labels.as_ref());
        // Only the selectors the labels can satisfy (the selector index), each then matched.
        for p in self.caches.pdbs.selecting(ns, &labels) {
            let Some(sel) = p.spec.as_ref().and_then(|sp| sp.selector.as_ref()) else {
                continue;
            };
            if label_sets
                .clone()
                .any(|l| selector_matches(sel, l).unwrap_or(true))
            {
                let (pns, pname) = ns_name(&p.metadata);
                // Marked before it is queued, so the sync that follows re-reads the pod.
                if let Ok(mut t) = self.pdb_tallies.lock()
                    && let Some(t) = t.get_mut(&(pns.to_owned(), pname.to_owned()))
                {
                    t.dirty.insert(name.to_owned());
                }
                self.pdbs_q.add(pns, pname);
            }
        }
        for s in self.caches.services.selecting(ns, &labels) {
            let Some(sel) = s
                .spec
                .as_ref()
                .and_then(|sp| sp.selector.as_ref())
                .filter(|m| !m.is_empty())
            else {
                continue;
            };
            if label_sets
                .clone()
                .any(|l| sel.iter().all(|(k, v)| l.and_then(|l| l.get(k)) == Some(v)))
            {
                let (sns, sname) = ns_name(&s.metadata);
                self.eps_q.add(sns, sname);
            }
        }
    }
}

fn typed<K: DeserializeOwned>(v: &Value) -> Result<K, ApiError> {
    serde_json::from_value(v.clone())
        .map_err(|e| ApiError::internal(format!("failed to decode object: {e}")))
}

// ------------------------------------------------------------- StatefulSet

async fn sync_set(s: &Shared, ns: &str, name: &str) -> Result<Option<Duration>, ApiError> {
    let Some(set) = s.caches.sets.get(ns, name) else {
        if let Ok(mut all) = s.candidates.lock() {
            all.remove(&(ns.to_owned(), name.to_owned()));
        }
        if let Ok(mut all) = s.selectors.lock() {
            all.remove(&(ns.to_owned(), name.to_owned()));
        }
        return Ok(None);
    };
    let user = &controller_user("statefulset-controller");
    // Read in place, as upstream's sync reads the informer's object.
    let set: &StatefulSet = &set;
    // The pods it controls and the orphans of the namespace (`getPodsForStatefulSet`
    // lists the namespace by selector; pods of other controllers are ignored by the claim).
    let pods = s
        .caches
        .pods
        .claimable_members(ns, set.metadata.uid.as_deref().unwrap_or_default());
    let key = s.set_claim_key(ns, name, set)?;
    let claims = statefulset::claim_members(
        set,
        &key,
        pods.iter()
            .filter_map(|f| f.cached().map(|p| (&**p, f.clone()))),
    )
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if !claims.adopt.is_empty() {
        // `CanAdopt`: a live read, never the cache (kubernetes#42639).
        let fresh = match s.api.get_typed::<StatefulSet>(Some(ns), name) {
            Ok(f) => Some(f),
            Err(e) if e.code == 404 => None,
            Err(e) => return Err(e),
        };
        statefulset::can_adopt(set, fresh.as_ref())
            .map_err(|e| ApiError::new(409, "Conflict", e.to_string()))?;
    }
    for adopted in &claims.adopt {
        if let Some(p) = claims
            .owned
            .iter()
            .map(|m| &m.pod)
            .find(|p| p.meta().name.as_deref() == Some(adopted))
        {
            let patch = json!({"metadata": {
                "ownerReferences": p.meta().owner_references,
                "uid": p.meta().uid,
            }});
            let v: Pod = s
                .api
                .admit_merge_patch_typed(Some(ns), adopted, &patch, Part::Main, user)
                .await?;
            s.caches.pods.apply(v);
        }
    }
    let uid = set.metadata.uid.clone().unwrap_or_default();
    for released in &claims.release {
        if let Some(p) = pods
            .iter()
            .filter_map(|f| f.cached())
            .find(|p| p.metadata.name.as_deref() == Some(released))
        {
            let refs: Vec<&OwnerReference> = p
                .metadata
                .owner_references
                .iter()
                .flatten()
                .filter(|r| r.uid != uid)
                .collect();
            let patch = json!({"metadata": {"ownerReferences": if refs.is_empty() { Value::Null } else { json!(refs) }, "uid": p.metadata.uid}});
            let v: Pod = s
                .api
                .admit_merge_patch_typed(Some(ns), released, &patch, Part::Main, user)
                .await?;
            s.caches.pods.apply(v);
        }
    }

    // Read in place (the cache's `Arc`s), as upstream lists its informer.
    let mut revisions: Vec<Arc<ControllerRevision>> = s.caches.revisions.controlled_by(ns, &uid);
    sort_revisions(&mut revisions);
    let key = (ns.to_owned(), name.to_owned());
    let mut memo = s.candidates.lock().ok().and_then(|mut m| m.remove(&key));
    let plan = plan_revisions_memo(set, &revisions, &mut memo)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if let (Some(m), Ok(mut all)) = (memo, s.candidates.lock()) {
        all.insert(key, m);
    }
    let mut collision_count = plan.collision_count;
    let same_revision = plan.current.metadata.name == plan.update.metadata.name;
    let planned_current = plan.current;
    let update = match plan.action {
        UpdateRevisionAction::Unchanged => plan.update,
        UpdateRevisionAction::Rollback { revision } => {
            let r: ControllerRevision = s
                .api
                .admit_update_typed(Some(ns), &revision, Part::Main, user)
                .await?;
            s.caches.revisions.apply(r.clone());
            r
        }
        UpdateRevisionAction::Create { revision } => {
            let mut candidate = revision;
            loop {
                match s.api.admit_create_typed(Some(ns), &candidate, user).await {
                    Ok(r) => {
                        s.caches.revisions.apply(r.clone());
                        break r;
                    }
                    Err(e) if e.reason == "AlreadyExists" => {
                        let cname = candidate.metadata.name.clone().unwrap_or_default();
                        let existing: ControllerRevision = s.api.get_typed(Some(ns), &cname)?;
                        if same_data(&existing, &candidate) {
                            break existing;
                        }
                        collision_count += 1;
                        candidate = rename_for_collision(set, &candidate, collision_count);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };
    let current = if same_revision {
        update.clone()
    } else {
        planned_current
    };
    // The sync reads claims only through the set's `volumeClaimTemplates`
    // (`getPersistentVolumeClaims`): a set without templates reads none, so
    // the namespace's claims are not copied for it.
    let claims_map: BTreeMap<String, PersistentVolumeClaim> =
        if statefulset::has_claim_templates(set) {
            s.caches
                .pvcs
                .list_ns(ns)
                .iter()
                .map(|c| (c.metadata.name.clone().unwrap_or_default(), (**c).clone()))
                .collect()
        } else {
            BTreeMap::new()
        };
    let out = statefulset::sync(SyncInput {
        set,
        current: &current,
        update: &update,
        collision_count,
        pods: &claims.owned,
        claims: &claims_map,
        now: s.clock.now(),
    })
    .map_err(|e| ApiError::internal(e.to_string()))?;

    let mut write_error = None;
    for w in out.writes {
        if let Err(e) = execute_set_write(s, ns, set, w, user).await {
            write_error = Some(e);
            break;
        }
    }
    if out.write_status {
        write_set_status(s, ns, name, set, out.status.clone(), user).await?;
    }
    let limit = set
        .spec
        .as_ref()
        .and_then(|sp| sp.revision_history_limit)
        .unwrap_or(10);
    for old in truncate_history(
        limit,
        &claims.owned,
        &revisions,
        current.metadata.name.as_deref().unwrap_or_default(),
        update.metadata.name.as_deref().unwrap_or_default(),
    ) {
        match s
            .api
            .admit_delete_typed::<ControllerRevision>(
                Some(ns),
                &old,
                &DeleteOptions::default(),
                user,
            )
            .await
        {
            Ok(_) => {
                s.caches.revisions.remove(ns, &old, u64::MAX);
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = write_error {
        return Err(e);
    }
    if let Some(e) = out.error {
        return Err(ApiError::internal(e));
    }
    Ok(out.requeue_after.map(|d| s.clock.real(d)))
}

/// What a StatefulSet event is about: a pod, or a claim of a pod.
enum Subject {
    Pod(String),
    Claim { claim: String, pod: String },
}

/// `recordPodEvent` / `recordClaimEvent` of `stateful_pod_control.go`.
fn set_event(
    s: &Shared,
    set: &StatefulSet,
    verb: &'static str,
    what: &Subject,
    err: Option<&ApiError>,
) {
    s.events.record(|| {
        let set_name = set.metadata.name.as_deref().unwrap_or_default();
        let reason = match (verb, err.is_none()) {
            ("create", true) => "SuccessfulCreate",
            ("update", true) => "SuccessfulUpdate",
            (_, true) => "SuccessfulDelete",
            ("create", false) => "FailedCreate",
            ("update", false) => "FailedUpdate",
            (_, false) => "FailedDelete",
        };
        let (kind, message) = match (what, err) {
            (Subject::Pod(pod), None) => (
                EventKind::Normal,
                format!("{verb} Pod {pod} in StatefulSet {set_name} successful"),
            ),
            (Subject::Pod(pod), Some(e)) => (
                EventKind::Warning,
                format!(
                    "{verb} Pod {pod} in StatefulSet {set_name} failed error: {}",
                    e.message
                ),
            ),
            (Subject::Claim { claim, pod }, None) => (
                EventKind::Normal,
                format!("{verb} Claim {claim} Pod {pod} in StatefulSet {set_name} success"),
            ),
            (Subject::Claim { claim, pod }, Some(e)) => (
                EventKind::Warning,
                format!(
                    "{verb} Claim {claim} for Pod {pod} in StatefulSet {set_name} failed error: {}",
                    e.message
                ),
            ),
        };
        Record {
            involved: reference("apps/v1", "StatefulSet", &set.metadata, None),
            kind,
            reason,
            message,
            reporter: Reporter::Legacy {
                component: "statefulset-controller",
                host: None,
            },
            at: s.clock.now(),
        }
    });
}

/// A sync's pod write whose version the pod cache no longer holds (a newer one
/// arrived since the sync read it): the whole pod of that version cannot be
/// rebuilt from the cache's projection, so the write is not sent and the set is
/// synced again (with the newer version), as after the conflict the API would
/// answer a write at a stale resourceVersion.
fn stale_version(name: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!("pod {name} changed since the sync read it"),
    )
}

async fn execute_set_write(
    s: &Shared,
    ns: &str,
    set: &StatefulSet,
    w: SetWrite,
    user: &crate::auth::UserInfo,
) -> Result<(), ApiError> {
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    match w {
        SetWrite::CreateClaim(c) => {
            let claim = c.metadata.name.clone().unwrap_or_default();
            let pod = claim
                .rsplit_once('-')
                .map(|(_, ord)| format!("{set_name}-{ord}"))
                .unwrap_or_default();
            match s.api.admit_create_typed(Some(ns), &c, user).await {
                Ok(c) => {
                    s.caches.pvcs.apply(c);
                    set_event(s, set, "create", &Subject::Claim { claim, pod }, None);
                }
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => {
                    set_event(s, set, "create", &Subject::Claim { claim, pod }, Some(&e));
                    return Err(e);
                }
            }
        }
        SetWrite::UpdateClaim(c) => {
            let c = s
                .api
                .admit_update_typed(Some(ns), &c, Part::Main, user)
                .await?;
            s.caches.pvcs.apply(c);
        }
        SetWrite::CreatePod(p) => {
            let name = p.metadata.name.clone().unwrap_or_default();
            // A cached pod without a phase is created again as it is (`isCreated`
            // is the phase; the API sets `Pending` on create, so this is a pod
            // written with an empty phase): the whole pod of that version, not the
            // cache's projection. A new pod (no resourceVersion) is sent as built.
            // Simplification: when the cache moved on from that version (an adopted
            // copy: the adoption's patch made a new one), the create is answered with
            // a conflict without being sent; upstream's POST of the stale copy would
            // fail too (AlreadyExists), unless the pod was deleted meanwhile.
            let p = match p.metadata.resource_version.as_ref() {
                None => Ok(p),
                Some(_) => match s.caches.pods.full_at(ns, &name, rv_of(&p.metadata)) {
                    Some(full) => full.map(Arc::unwrap_or_clone),
                    None => Err(stale_version(&name)),
                },
            };
            let created = match p {
                Ok(p) => s.api.admit_create_typed(Some(ns), &p, user).await,
                Err(e) => Err(e),
            };
            match created {
                Ok(p) => {
                    s.caches.pods.apply(p);
                    set_event(s, set, "create", &Subject::Pod(name), None);
                }
                Err(e) => {
                    set_event(s, set, "create", &Subject::Pod(name), Some(&e));
                    return Err(e);
                }
            }
        }
        SetWrite::UpdatePod(p) => {
            let name = p.metadata.name.clone().unwrap_or_default();
            // The sync fixed the cache's projection of the pod; the PUT carries the
            // whole pod of that version with the same fix (`UpdateStatefulPod`).
            let p = match s.caches.pods.full_at(ns, &name, rv_of(&p.metadata)) {
                Some(full) => {
                    let mut whole = Arc::unwrap_or_clone(full?);
                    statefulset::update_stateful_pod(set, &mut whole);
                    whole
                }
                // The cache moved on since the sync read it: the PUT of that version
                // would conflict (its resourceVersion is stale), so it is not sent.
                None => return Err(stale_version(&name)),
            };
            match s
                .api
                .admit_update_typed(Some(ns), &p, Part::Main, user)
                .await
            {
                Ok(p) => {
                    s.caches.pods.apply(p);
                    set_event(s, set, "update", &Subject::Pod(name), None);
                }
                Err(e) => {
                    set_event(s, set, "update", &Subject::Pod(name), Some(&e));
                    return Err(e);
                }
            }
        }
        SetWrite::DeletePod { name } => {
            match s
                .api
                .admit_delete_typed::<Pod>(Some(ns), &name, &DeleteOptions::default(), user)
                .await
            {
                Ok(outcome) => {
                    apply_delete(&s.caches.pods, outcome);
                    set_event(s, set, "delete", &Subject::Pod(name), None);
                }
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    set_event(s, set, "delete", &Subject::Pod(name), Some(&e));
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

fn apply_delete<K: Indexed + DeserializeOwned>(cache: &Cache<K>, outcome: DeleteOutcome) {
    match outcome {
        DeleteOutcome::Pending(v) => {
            if let Ok(k) = typed::<K>(&v) {
                cache.apply(k);
            }
        }
        DeleteOutcome::Deleted(v) => {
            if let Ok(k) = typed::<K>(&v) {
                let (ns, name) = key_of(k.metadata());
                cache.remove(&ns, &name, rv_of(k.metadata()));
            }
        }
    }
}

/// `UpdateStatefulSetStatus`: PUT status, re-reading on conflict.
async fn write_set_status(
    s: &Shared,
    ns: &str,
    name: &str,
    set: &StatefulSet,
    status: k8s_openapi::api::apps::v1::StatefulSetStatus,
    user: &crate::auth::UserInfo,
) -> Result<(), ApiError> {
    let mut target = set.clone();
    for _ in 0..5 {
        target.status = Some(status.clone());
        match s
            .api
            .admit_update_typed(Some(ns), &target, Part::Status, user)
            .await
        {
            Ok(v) => {
                s.caches.sets.apply(v);
                return Ok(());
            }
            Err(e) if e.code == 409 => {
                target = s.api.get_typed(Some(ns), name)?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict_retries(name))
}

trait ConflictRetries {
    fn conflict_retries(name: &str) -> ApiError;
}

impl ConflictRetries for ApiError {
    fn conflict_retries(name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!("failed to update status of {name}: conflicts persisted"),
        )
    }
}

// --------------------------------------------------------------- PDBs

fn scale_of(
    s: &Shared,
    r: &OwnerReference,
    ns: &str,
) -> Result<Option<(String, i32)>, super::Error> {
    let get = |group: &str, plural: &str, name: &str| -> Option<Value> {
        let d = s.api.resource(group, "v1", plural).ok()?;
        s.api.get(&d, Some(ns), name).ok()
    };
    let replicas =
        |v: &Value| i32::try_from(v["spec"]["replicas"].as_i64().unwrap_or(1)).unwrap_or(0);
    match r.kind.as_str() {
        "StatefulSet" => Ok(s
            .caches
            .sets
            .get(ns, &r.name)
            .filter(|set| set.metadata.uid.as_deref() == Some(r.uid.as_str()))
            .map(|set| (r.uid.clone(), statefulset::replicas(&set)))),
        "ReplicationController" => Ok(get("", "replicationcontrollers", &r.name)
            .filter(|v| v["metadata"]["uid"] == r.uid.as_str())
            .map(|v| (r.uid.clone(), replicas(&v)))),
        "ReplicaSet" => {
            let Some(rs) = get("apps", "replicasets", &r.name)
                .filter(|v| v["metadata"]["uid"] == r.uid.as_str())
            else {
                return Ok(None);
            };
            let owner = rs["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|a| a.iter().find(|o| o["controller"] == true).cloned());
            match owner {
                Some(o) if o["kind"] == "Deployment" => {
                    let dname = o["name"].as_str().unwrap_or_default();
                    Ok(get("apps", "deployments", dname)
                        .filter(|d| d["metadata"]["uid"] == o["uid"])
                        .map(|d| {
                            (
                                o["uid"].as_str().unwrap_or_default().to_owned(),
                                replicas(&d),
                            )
                        }))
                }
                _ => Ok(Some((r.uid.clone(), replicas(&rs)))),
            }
        }
        _ => Ok(None),
    }
}

async fn sync_pdb(s: &Shared, ns: &str, name: &str) -> Result<Option<Duration>, ApiError> {
    let Some(pdb) = s.caches.pdbs.get(ns, name) else {
        if let Ok(mut t) = s.pdb_tallies.lock() {
            t.remove(&(ns.to_owned(), name.to_owned()));
        }
        return Ok(None);
    };
    let out = {
        let Ok(mut tallies) = s.pdb_tallies.lock() else {
            return Ok(None);
        };
        let key = (ns.to_owned(), name.to_owned());
        let sel = pdb.spec.as_ref().and_then(|sp| sp.selector.as_ref());
        let generation = s.caches.pods.generation();
        let current = tallies.get(&key).is_some_and(|t| {
            t.uid == pdb.metadata.uid && t.selector.as_ref() == sel && t.generation == generation
        });
        if !current {
            // Counted afresh (new budget, new selector, relist), under the lock so
            // that no pod notification falls between the read and the tally: the
            // cache's shared pods carrying the selector's `matchLabels` (the label
            // index), the selector applied by the tally.
            let (generation, pods) = match sel {
                Some(sel) => s
                    .caches
                    .pods
                    .with_labels_at(ns, sel.match_labels.iter().flatten()),
                None => (generation, Vec::new()),
            };
            let t = PdbTally {
                uid: pdb.metadata.uid.clone(),
                selector: sel.cloned(),
                generation,
                tally: disruption::Tally::recount(&pdb, pods),
                dirty: BTreeSet::new(),
            };
            tallies.insert(key.clone(), t);
        }
        let Some(t) = tallies.get_mut(&key) else {
            return Ok(None);
        };
        // The pods that changed since the last sync, as the cache holds them now.
        for pod in std::mem::take(&mut t.dirty) {
            let cur = s.caches.pods.get(ns, &pod);
            t.tally.update(&pdb, &pod, cur);
        }
        let lookup = |r: &OwnerReference, ns: &str| scale_of(s, r, ns);
        disruption::sync_tally(&pdb, &t.tally, &lookup, s.clock.now())
    };
    for (warning, reason, message) in &out.events {
        s.events.record(|| Record {
            involved: reference("policy/v1", "PodDisruptionBudget", &pdb.metadata, None),
            kind: if *warning {
                EventKind::Warning
            } else {
                EventKind::Normal
            },
            reason,
            message: message.clone(),
            // `NewDisruptionController`'s recorder source.
            reporter: Reporter::Legacy {
                component: "controllermanager",
                host: None,
            },
            at: s.clock.now(),
        });
    }
    for p in &out.not_deleted {
        tracing::warn!(pod = %p, pdb = %name, "NotDeleted: pod was expected by the PDB to be deleted but it wasn't");
    }
    if let Some(status) = out.status {
        let mut target = (*pdb).clone();
        target.status = Some(status);
        let user = controller_user("disruption-controller");
        let v = s
            .api
            .admit_update_typed(Some(ns), &target, Part::Status, &user)
            .await?;
        s.caches.pdbs.apply(v);
    }
    Ok(out.recheck_after.map(|d| s.clock.real(d)))
}

// ------------------------------------------------------------- Services

async fn sync_service(s: &Shared, ns: &str, name: &str) -> Result<Option<Duration>, ApiError> {
    let slices_user = controller_user("endpointslice-controller");
    let endpoints_user = controller_user("endpoint-controller");
    let existing: Vec<EndpointSlice> = s
        .caches
        .slices
        .list_ns(ns)
        .iter()
        .filter(|e| {
            let l = e.metadata.labels.clone().unwrap_or_default();
            l.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
                && l.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .map(|e| (**e).clone())
        .collect();
    let Some(svc) = s.caches.services.get(ns, name) else {
        if s.caches.endpoints.get(ns, name).is_some() {
            match s
                .api
                .admit_delete_typed::<Endpoints>(
                    Some(ns),
                    name,
                    &DeleteOptions::default(),
                    &endpoints_user,
                )
                .await
            {
                Ok(o) => apply_delete(&s.caches.endpoints, o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(None);
    };
    let pods = s.caches.pods.with_labels(
        ns,
        svc.spec
            .as_ref()
            .and_then(|sp| sp.selector.as_ref())
            .into_iter()
            .flatten(),
    );
    let nodes: Vec<Node> = s
        .caches
        .nodes
        .list()
        .iter()
        .map(|n| (**n).clone())
        .collect();
    let desired = endpointslice::desired_slices(&svc, &pods, &nodes)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if svc
        .spec
        .as_ref()
        .and_then(|sp| sp.selector.as_ref())
        .is_none_or(|m| m.is_empty())
    {
        return Ok(None);
    }
    for w in endpointslice::reconcile(desired, &existing) {
        match w {
            SliceWrite::Create(e) => {
                let v = s.api.admit_create_typed(Some(ns), &e, &slices_user).await?;
                s.caches.slices.apply(v);
            }
            SliceWrite::Update(e) => {
                let v = s
                    .api
                    .admit_update_typed(Some(ns), &e, Part::Main, &slices_user)
                    .await?;
                s.caches.slices.apply(v);
            }
            SliceWrite::Delete(n) => {
                match s
                    .api
                    .admit_delete_typed::<EndpointSlice>(
                        Some(ns),
                        &n,
                        &DeleteOptions::default(),
                        &slices_user,
                    )
                    .await
                {
                    Ok(o) => apply_delete(&s.caches.slices, o),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if let Some(want) = endpointslice::endpoints(&svc, &pods) {
        match s.caches.endpoints.get(ns, name) {
            None => match s
                .api
                .admit_create_typed(Some(ns), &want, &endpoints_user)
                .await
            {
                Ok(v) => {
                    s.caches.endpoints.apply(v);
                }
                Err(e) if e.reason == "AlreadyExists" => return Err(e),
                Err(e) => return Err(e),
            },
            Some(have)
                if have.subsets != want.subsets || have.metadata.labels != want.metadata.labels =>
            {
                let mut next = (*have).clone();
                next.subsets = want.subsets;
                next.metadata.labels = want.metadata.labels;
                let v = s
                    .api
                    .admit_update_typed(Some(ns), &next, Part::Main, &endpoints_user)
                    .await?;
                s.caches.endpoints.apply(v);
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

// ------------------------------------------------------- kubelet, scheduler

/// The kubelet of `node` as kube-apiserver knows it (`system:node:<name>` in `system:nodes`,
/// `pkg/kubelet/certificate/bootstrap`), for admission.
fn node_user(node: &str) -> UserInfo {
    UserInfo {
        name: format!("system:node:{node}"),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    }
}

/// kube-scheduler's user (`system:kube-scheduler`), for admission.
fn scheduler_user() -> UserInfo {
    UserInfo {
        name: "system:kube-scheduler".into(),
        groups: vec!["system:authenticated".into()],
    }
}

fn node_index(node: &str) -> usize {
    node.rsplit('-')
        .next()
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

async fn sync_pod(s: &Shared, ns: &str, name: &str) -> Result<Option<Duration>, ApiError> {
    // The kubelet and the scheduler read (and write) the whole pod: decoded from
    // the cached version's stored JSON (the cache keeps a projection).
    let pod = match s.caches.pods.full(ns, name) {
        None => return Ok(None),
        Some(p) => p?,
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let now = s.clock.now();
    let node = pod
        .spec
        .as_ref()
        .and_then(|sp| sp.node_name.clone())
        .filter(|n| !n.is_empty());
    let Some(node) = node else {
        if pod.metadata.deletion_timestamp.is_some() {
            if let Ok(mut q) = s.queued.lock() {
                q.remove(&uid);
            }
            return Ok(None);
        }
        return schedule(s, ns, name, &pod, now).await;
    };
    if s.faults.node_failed(&node) {
        // The node's kubelet is gone, and with it its memory of the pods'
        // status: back, it writes its own at once.
        if let Ok(mut m) = s.ready_seen.lock() {
            m.remove(&uid);
        }
        return failed_node_pod(s, ns, name, &pod, &node, now).await;
    }
    if pod.metadata.deletion_timestamp.is_some()
        && let Ok(mut t) = s.terminating.lock()
        && !t.contains_key(&uid)
    {
        t.insert(uid.clone(), now);
        kubelet_killing_events(s, &pod, &node, now);
    }
    let idx = node_index(&node);
    let ip = {
        let mut ips = s
            .pod_ips
            .lock()
            .map_err(|_| ApiError::internal("poisoned lock"))?;
        if let Some(ip) = ips.get(&uid) {
            ip.clone()
        } else {
            let n = s.ips.lock().map_or(0, |mut c| {
                let e = c.entry(node.clone()).or_insert(0);
                *e += 1;
                *e
            });
            let ip = kubelet::pod_ip(idx, n);
            ips.insert(uid.clone(), ip.clone());
            ip
        }
    };
    let host = kubelet::host_ip(idx);
    let sandbox_started = s
        .sandbox_started
        .lock()
        .ok()
        .map(|mut t| *t.entry(uid.clone()).or_insert(now));
    // Someone else's Ready write: the stored condition differs from what the
    // kubelet computed last.
    let ready_override_since = s.ready_seen.lock().ok().and_then(|mut m| {
        let seen = m.entry(uid.clone()).or_default();
        match seen.computed {
            Some(c) if Some(c) != kubelet::stored_ready(&pod) => {
                Some(*seen.overridden_since.get_or_insert(now))
            }
            _ => {
                seen.overridden_since = None;
                None
            }
        }
    });
    let exits = s
        .exits
        .lock()
        .ok()
        .and_then(|m| m.get(&uid).cloned())
        .unwrap_or_default();
    let facts = PodFacts {
        termination_started: s.terminating.lock().ok().and_then(|t| t.get(&uid).copied()),
        sandbox_started,
        exits: &exits,
        pod_ip: &ip,
        host_ip: &host,
        forced_unready: s.faults.is_unready(ns, name),
        ready_override_since,
    };
    let node_labels = s.caches.nodes.get("", &node);
    let cfg = s.kubelet.for_node(
        node_labels
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref()),
    );
    let step = kubelet::step(&pod, cfg, facts, now);
    match step.action {
        KubeletAction::Nothing => {}
        KubeletAction::UpdateStatus(st) => {
            let mut next = (*pod).clone();
            next.status = Some(*st);
            let v = s
                .api
                .admit_update_typed(Some(ns), &next, Part::Status, &node_user(&node))
                .await?;
            kubelet_container_events(s, &pod, &v, &node, now);
            s.caches.pods.apply(v);
            // The runtime stopped these containers (only once the status saying so is written: a
            // failed write is redone by the next sync, which records its own instant).
            if !step.exits.is_empty()
                && let Ok(mut m) = s.exits.lock()
            {
                let kept = m.entry(uid.clone()).or_default();
                for exit in step.exits {
                    kept.retain(|e| e.container != exit.container);
                    kept.push(exit);
                }
            }
        }
        KubeletAction::Remove => {
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                precondition_uid: Some(uid.clone()),
                ..DeleteOptions::default()
            };
            match s
                .api
                .admit_delete_typed::<Pod>(Some(ns), name, &opts, &node_user(&node))
                .await
            {
                Ok(o) => apply_delete(&s.caches.pods, o),
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
            if let Ok(mut t) = s.terminating.lock() {
                t.remove(&uid);
            }
            if let Ok(mut t) = s.sandbox_started.lock() {
                t.remove(&uid);
            }
            if let Ok(mut m) = s.exits.lock() {
                m.remove(&uid);
            }
            if let Ok(mut ips) = s.pod_ips.lock() {
                ips.remove(&uid);
            }
            if let Ok(mut m) = s.ready_seen.lock() {
                m.remove(&uid);
            }
            return Ok(None);
        }
    }
    // What the kubelet now stands by (not after a failed write: its retry
    // must not mistake its own unwritten value for someone else's).
    if let Some(ready) = step.ready
        && let Ok(mut m) = s.ready_seen.lock()
    {
        m.entry(uid.clone()).or_default().computed = Some(ready);
    }
    Ok(step.wake_after.map(|d| s.clock.real(d)))
}

async fn schedule(
    s: &Shared,
    ns: &str,
    name: &str,
    pod: &Pod,
    now: Timestamp,
) -> Result<Option<Duration>, ApiError> {
    let _one_at_a_time = s.scheduling.lock().await;
    // The scheduling delay counts from the scheduler's first sight of the pod.
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let queued = s
        .queued
        .lock()
        .ok()
        .map(|mut q| *q.entry(uid.clone()).or_insert(now));
    let nodes: Vec<Arc<Node>> = s
        .caches
        .nodes
        .list()
        .into_iter()
        .filter(|n| {
            !s.faults
                .node_failed(n.metadata.name.as_deref().unwrap_or_default())
        })
        .collect();
    // Spreading is per controller, which is namespaced: the pods of the
    // pod's controller per node and the namespace's pods per node (both indexed).
    let owner = controller_of(&pod.metadata).map(|r| r.uid.as_str());
    // A pod with scheduling gates waits for them to be removed
    // (`SchedulingGated`, `pkg/scheduler/schedule_one.go`).
    let gated = pod
        .spec
        .as_ref()
        .and_then(|sp| sp.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty());
    let chosen = if gated {
        None
    } else {
        kubelet::schedule_counted(
            pod,
            &nodes,
            |n| owner.map_or(0, |uid| s.caches.pods.count_owned_on_node(uid, n)),
            |n| s.caches.pods.count_on_node(ns, n),
        )
    };
    let Some(node) = chosen else {
        let mut conds = pod
            .status
            .as_ref()
            .and_then(|st| st.conditions.clone())
            .unwrap_or_default();
        conds.retain(|c| c.type_ != "PodScheduled");
        let (reason, message) = if gated {
            (
                "SchedulingGated",
                "Scheduling is blocked due to non-empty scheduling gates".to_owned(),
            )
        } else {
            (
                "Unschedulable",
                format!(
                    "0/{} nodes are available: no node matches the pod's node selector or is ready.",
                    s.caches.nodes.list().len()
                ),
            )
        };
        let previous = pod
            .status
            .as_ref()
            .and_then(|st| st.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .filter(|c| c.status == "False" && c.reason.as_deref() == Some(reason))
            .and_then(|c| c.last_transition_time.clone());
        conds.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: previous.or(Some(Time(now))),
            ..PodCondition::default()
        });
        let mut next = pod.clone();
        next.status.get_or_insert_with(Default::default).conditions = Some(conds);
        if next.status != pod.status {
            let v = s
                .api
                .admit_update_typed(Some(ns), &next, Part::Status, &scheduler_user())
                .await?;
            s.caches.pods.apply(v);
        }
        // Gated pods are not attempted, so they get no FailedScheduling.
        if !gated {
            let message = next
                .status
                .as_ref()
                .and_then(|st| st.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            scheduler_event(
                s,
                pod,
                EventKind::Warning,
                "FailedScheduling",
                "Scheduling",
                message,
                now,
            );
        }
        // Removing the last gate is a pod update: its event wakes the scheduler.
        return Ok((!gated).then(|| Duration::from_secs(1)));
    };
    // The chosen node's pool decides how long scheduling takes.
    let pool = s.caches.nodes.get("", &node);
    if let Some(at) = s
        .kubelet
        .for_node(pool.as_ref().and_then(|n| n.metadata.labels.as_ref()))
        .bind_at(pod, queued)
        && at > now
    {
        return Ok(Some(s.clock.real(at.duration_since(now))));
    }
    // Binding (pods/binding sets spec.nodeName and PodScheduled=True).
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.clone()),
            ..ObjectReference::default()
        },
    };
    let bound = crate::binding::bind(&s.api, ns, name, &binding, now)?;
    if let Ok(mut q) = s.queued.lock() {
        q.remove(&uid);
    }
    s.caches.pods.apply(bound);
    scheduler_event(
        s,
        pod,
        EventKind::Normal,
        "Scheduled",
        "Binding",
        format!("Successfully assigned {ns}/{name} to {node}"),
        now,
    );
    Ok(Some(Duration::ZERO))
}

/// The scheduler's Events (`pkg/scheduler/schedule_one.go`, written with
/// the `events.k8s.io` recorder: `action`, `reportingController`, a series
/// on repeats).
fn scheduler_event(
    s: &Shared,
    pod: &Pod,
    kind: EventKind,
    reason: &'static str,
    action: &'static str,
    message: String,
    now: Timestamp,
) {
    s.events.record(|| Record {
        involved: reference("v1", "Pod", &pod.metadata, None),
        kind,
        reason,
        message,
        reporter: Reporter::Series {
            controller: "default-scheduler",
            instance: "default-scheduler-kubesim",
            action,
        },
        at: now,
    });
}

#[allow(clippy::too_many_arguments)]
fn kubelet_event(
    s: &Shared,
    pod: &Pod,
    container: &str,
    node: &str,
    kind: EventKind,
    reason: &'static str,
    message: String,
    now: Timestamp,
) {
    s.events.record(|| Record {
        involved: reference(
            "v1",
            "Pod",
            &pod.metadata,
            Some(format!("spec.containers{{{container}}}")),
        ),
        kind,
        reason,
        message,
        reporter: Reporter::Legacy {
            component: "kubelet",
            host: Some(node.to_owned()),
        },
        at: now,
    });
}

/// `Killing` ("Stopping container app", `kuberuntime_container.go`
/// `killContainer`) for each running container once termination starts.
fn kubelet_killing_events(s: &Shared, pod: &Pod, node: &str, now: Timestamp) {
    if !s.events.enabled() {
        return;
    }
    for c in pod
        .status
        .as_ref()
        .and_then(|st| st.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
    {
        kubelet_event(
            s,
            pod,
            &c.name,
            node,
            EventKind::Normal,
            "Killing",
            format!("Stopping container {}", c.name),
            now,
        );
    }
}

/// The container Events of a status change, derived from the old and new
/// status: a container that (re)started gets `Pulled` ("already present on
/// machine": kubesim has no registry, every image counts as cached),
/// `Created` and `Started` (`kuberuntime_container.go` `startContainer`); one
/// that entered `CrashLoopBackOff` gets `BackOff` (`pod_workers`/`kuberuntime_manager.go`).
fn kubelet_container_events(s: &Shared, old: &Pod, new: &Pod, node: &str, now: Timestamp) {
    if !s.events.enabled() {
        return;
    }
    let statuses = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|st| st.container_statuses.clone())
            .unwrap_or_default()
    };
    let before = statuses(old);
    for c in statuses(new) {
        let prev = before.iter().find(|b| b.name == c.name);
        let started = |x: &k8s_openapi::api::core::v1::ContainerStatus| {
            x.state
                .as_ref()
                .and_then(|st| st.running.as_ref())
                .and_then(|r| r.started_at.clone())
        };
        let now_started = started(&c);
        if now_started.is_some() && prev.and_then(started) != now_started {
            let image = new
                .spec
                .as_ref()
                .and_then(|sp| sp.containers.iter().find(|x| x.name == c.name))
                .and_then(|x| x.image.clone())
                .unwrap_or_else(|| c.image.clone());
            for (reason, message) in [
                (
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                ),
                ("Created", format!("Created container: {}", c.name)),
                ("Started", format!("Started container {}", c.name)),
            ] {
                kubelet_event(
                    s,
                    new,
                    &c.name,
                    node,
                    EventKind::Normal,
                    reason,
                    message,
                    now,
                );
            }
        }
        let waiting = |x: &k8s_openapi::api::core::v1::ContainerStatus| {
            x.state
                .as_ref()
                .and_then(|st| st.waiting.as_ref())
                .and_then(|w| w.reason.clone())
        };
        if waiting(&c).as_deref() == Some("CrashLoopBackOff")
            && prev.and_then(waiting).as_deref() != Some("CrashLoopBackOff")
        {
            let pod_name = new.metadata.name.as_deref().unwrap_or_default();
            let pod_ns = new.metadata.namespace.as_deref().unwrap_or_default();
            let uid = new.metadata.uid.as_deref().unwrap_or_default();
            kubelet_event(
                s,
                new,
                &c.name,
                node,
                EventKind::Warning,
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {pod_name}_{pod_ns}({uid})",
                    c.name
                ),
                now,
            );
        }
    }
}

/// Pods of a failed node: `MarkPodsNotReady` at once, deleted (grace 0) after
/// the configured eviction delay (upstream taint eviction deletes them
/// gracefully and they stay Terminating while the kubelet is gone; kubesim
/// removes them so the set can recover — see `pkg/controller/nodelifecycle`).
async fn failed_node_pod(
    s: &Shared,
    ns: &str,
    name: &str,
    pod: &Pod,
    node: &str,
    now: Timestamp,
) -> Result<Option<Duration>, ApiError> {
    let failed_at = s
        .node_failed_at
        .lock()
        .map_or(now, |mut m| *m.entry(node.to_owned()).or_insert(now));
    let delay = SignedDuration::from_secs(
        i64::try_from(s.faults.config().node_eviction_seconds).unwrap_or(300),
    );
    let evict_at = failed_at.checked_add(delay).unwrap_or(now);
    if now >= evict_at {
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: pod.metadata.uid.clone(),
            ..DeleteOptions::default()
        };
        let user = controller_user("node-controller");
        match s
            .api
            .admit_delete_typed::<Pod>(Some(ns), name, &opts, &user)
            .await
        {
            Ok(o) => apply_delete(&s.caches.pods, o),
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
        return Ok(None);
    }
    if is_pod_ready(pod) {
        let mut next = pod.clone();
        if let Some(c) = next
            .status
            .as_mut()
            .and_then(|st| st.conditions.as_mut())
            .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Ready"))
        {
            c.status = "False".into();
            c.reason = Some("NodeNotReady".into());
            c.last_transition_time = Some(Time(now));
        }
        let user = controller_user("node-controller");
        let v = s
            .api
            .admit_update_typed(Some(ns), &next, Part::Status, &user)
            .await?;
        s.caches.pods.apply(v);
    }
    Ok(Some(s.clock.real(evict_at.duration_since(now))))
}

/// Applies fault changes: node conditions, and re-syncs affected pods.
async fn fault_reactor(s: Arc<Shared>) {
    let mut rx = s.faults.subscribe();
    let mut failed: HashSet<String> = HashSet::new();
    let mut unready: HashSet<(String, String)> = HashSet::new();
    loop {
        let cfg = s.faults.config();
        let now = s.clock.now();
        for node in s.caches.nodes.list() {
            let name = node.metadata.name.clone().unwrap_or_default();
            let should_fail = cfg.failed_nodes.contains(&name);
            if should_fail != failed.contains(&name) {
                if should_fail {
                    failed.insert(name.clone());
                    if let Ok(mut m) = s.node_failed_at.lock() {
                        m.insert(name.clone(), now);
                    }
                } else {
                    failed.remove(&name);
                    if let Ok(mut m) = s.node_failed_at.lock() {
                        m.remove(&name);
                    }
                }
                let mut next = (*node).clone();
                let st = next.status.get_or_insert_with(Default::default);
                let mut conds = st.conditions.clone().unwrap_or_default();
                conds.retain(|c| c.type_ != "Ready");
                conds.push(kubelet::node_ready_condition(!should_fail, now));
                st.conditions = Some(conds);
                match s.api.update_status_typed(None, &next) {
                    Ok(v) => {
                        s.caches.nodes.apply(v);
                    }
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e.message, "failed to update node status")
                    }
                }
                for p in s.caches.pods.list() {
                    if p.spec_node_name() == Some(name.as_str()) {
                        let (ns, pname) = ns_name(&p.metadata);
                        s.pods_q.add(ns, pname);
                    }
                }
            }
        }
        let now_unready: HashSet<(String, String)> = cfg
            .unready_pods
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        for (ns, name) in now_unready.symmetric_difference(&unready) {
            s.pods_q.add(ns, name);
        }
        unready = now_unready;
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Random pod kills at the configured rate (checked every simulated second).
async fn pod_killer(s: Arc<Shared>) {
    loop {
        tokio::time::sleep(
            s.clock
                .real(SignedDuration::from_secs(1))
                .max(Duration::from_millis(5)),
        )
        .await;
        let Some(kills) = s.faults.config().pod_kills else {
            continue;
        };
        if s.faults.draw() >= kills.per_minute / 60.0 {
            continue;
        }
        let candidates: Vec<Arc<CachedPod>> = s
            .caches
            .pods
            .list()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                kills
                    .namespace
                    .as_ref()
                    .is_none_or(|n| p.metadata.namespace.as_ref() == Some(n))
            })
            .filter(|p| {
                let l = p.metadata.labels.clone().unwrap_or_default();
                kills.labels.iter().all(|(k, v)| l.get(k) == Some(v))
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let victim = &candidates[s.faults.pick(candidates.len())];
        let (ns, name) = ns_name(&victim.metadata);
        match s
            .api
            .delete_typed::<Pod>(Some(ns), name, &DeleteOptions::default())
        {
            Ok(o) => apply_delete(&s.caches.pods, o),
            Err(e) => tracing::debug!(pod = %name, error = %e.message, "chaos kill failed"),
        }
    }
}

// ---------------------------------------------------------------- eviction

/// [`EvictionBackend`] over the in-process API.
///
/// Its reads are the API's (live, as `EvictionREST` reads storage, never an informer);
/// a version the simulation's caches hold at the same resourceVersion is taken from them
/// instead of being decoded again (one resourceVersion names one content).
struct ApiBackend {
    api: Api,
    clock: Clock,
    shared: Weak<Shared>,
}

/// The object `stored` holds: the cache's copy of that very version, or decoded.
fn decoded<K: Indexed + DeserializeOwned>(
    cache: Option<&Cache<K>>,
    stored: &Stored,
) -> Result<Arc<K>, ApiError> {
    if let Some(o) = cache
        .and_then(|c| c.get_at(stored.namespace(), stored.name(), stored.rv))
        .and_then(K::whole)
    {
        return Ok(o);
    }
    serde_json::from_slice(&stored.json)
        .map(Arc::new)
        .map_err(|e| ApiError::internal(format!("failed to decode stored object: {e}")))
}

fn to_status_error(e: ApiError) -> StatusError {
    let status: Status = serde_json::from_value(e.to_status()).unwrap_or_default();
    StatusError(Box::new(status))
}

fn to_api_error(e: &StatusError) -> ApiError {
    let details = e.0.details.clone().unwrap_or_default();
    ApiError {
        code: e.code(),
        reason: e.0.reason.clone().unwrap_or_default(),
        message: e.0.message.clone().unwrap_or_default(),
        details: Box::new(ErrorDetails {
            name: details.name,
            group: details.group,
            kind: details.kind,
            uid: details.uid,
            causes: details
                .causes
                .unwrap_or_default()
                .into_iter()
                .map(|c| crate::api::Cause {
                    reason: c.reason.unwrap_or_default(),
                    message: c.message.unwrap_or_default(),
                    field: c.field.unwrap_or_default(),
                })
                .collect(),
            retry_after_seconds: details
                .retry_after_seconds
                .and_then(|r| u32::try_from(r).ok()),
        }),
    }
}

fn check_preconditions(pod: &Pod, pre: Option<&Preconditions>) -> Result<(), StatusError> {
    let Some(p) = pre else {
        return Ok(());
    };
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if let Some(u) = p.uid.as_ref().filter(|u| !u.is_empty())
        && Some(u) != pod.metadata.uid.as_ref()
    {
        return Err(StatusError::conflict(
            "pods",
            name,
            &format!(
                "Precondition failed: UID in precondition: {u}, UID in object meta: {}",
                pod.metadata.uid.as_deref().unwrap_or_default()
            ),
        ));
    }
    if let Some(r) = p.resource_version.as_ref().filter(|r| !r.is_empty())
        && Some(r) != pod.metadata.resource_version.as_ref()
    {
        return Err(StatusError::conflict(
            "pods",
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {r}, ResourceVersion in object meta: {}",
                pod.metadata.resource_version.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// A stored budget's `spec.selector`, decoded alone (the rest of the object,
/// its status the bulk, is skipped).
#[derive(serde::Deserialize)]
struct PdbSelectorOnly {
    spec: Option<PdbSelectorSpec>,
}

#[derive(serde::Deserialize)]
struct PdbSelectorSpec {
    selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

impl EvictionBackend for ApiBackend {
    async fn get_pod(&self, ns: &str, name: &str) -> Result<Arc<Pod>, StatusError> {
        let d = self.api.resource_of::<Pod>().map_err(to_status_error)?;
        let stored = self
            .api
            .get_raw(&d, Some(ns), name)
            .map_err(to_status_error)?;
        // The whole pod (its status is written back): decoded from the stored
        // version, never the pod cache's projection.
        serde_json::from_slice(&stored.json)
            .map(Arc::new)
            .map_err(|e| ApiError::internal(format!("failed to decode stored object: {e}")))
            .map_err(to_status_error)
    }

    async fn list_pdbs(
        &self,
        ns: &str,
        pod: &Pod,
    ) -> Result<Vec<Arc<PodDisruptionBudget>>, StatusError> {
        let shared = self.shared.upgrade();
        let cache = shared.as_ref().map(|s| &s.caches.pdbs);
        let d = self
            .api
            .resource_of::<PodDisruptionBudget>()
            .map_err(to_status_error)?;
        let list = self
            .api
            .list(&d, Some(ns), &crate::api::ListOptions::default())
            .map_err(to_status_error)?;
        // Every budget of the namespace is listed, as upstream's handler does; only those
        // selecting the pod are decoded whole (a version the cache holds is not decoded at all).
        let mut out = Vec::new();
        for st in &list.items {
            if let Some(p) = cache.and_then(|c| c.get_at(st.namespace(), st.name(), st.rv)) {
                if eviction::selects(p.spec.as_ref().and_then(|s| s.selector.as_ref()), pod) {
                    out.push(p);
                }
                continue;
            }
            let sel: PdbSelectorOnly = serde_json::from_slice(&st.json)
                .map_err(|e| ApiError::internal(format!("failed to decode stored object: {e}")))
                .map_err(to_status_error)?;
            if eviction::selects(sel.spec.and_then(|s| s.selector).as_ref(), pod) {
                out.push(decoded(None, st).map_err(to_status_error)?);
            }
        }
        Ok(out)
    }

    async fn get_pdb(&self, ns: &str, name: &str) -> Result<PodDisruptionBudget, StatusError> {
        self.api.get_typed(Some(ns), name).map_err(to_status_error)
    }

    async fn update_pdb_status(&self, pdb: PodDisruptionBudget) -> Result<(), StatusError> {
        // The handler reads nothing of the answer: it is not decoded.
        let ns = pdb.metadata.namespace.clone();
        let name = pdb.metadata.name.clone().unwrap_or_default();
        let d = self
            .api
            .resource_of::<PodDisruptionBudget>()
            .map_err(to_status_error)?;
        let v = crate::api::to_value(&pdb).map_err(to_status_error)?;
        self.api
            .update_status(&d, ns.as_deref(), &name, v, &WriteOptions::default())
            .map(|_| ())
            .map_err(to_status_error)
    }

    async fn add_disruption_target(
        &self,
        ns: &str,
        name: &str,
        preconditions: Option<Preconditions>,
        mut seen: Option<Arc<Pod>>,
    ) -> Result<Option<String>, StatusError> {
        let d = self.api.resource_of::<Pod>().map_err(to_status_error)?;
        // GuaranteedUpdate: retry on conflict against the latest pod
        // (`addConditionAndDeletePod`: `store.Update` with a condition
        // appender). The pod the handler read serves the first attempt while
        // it is the stored version.
        for _ in 0..10 {
            let stored_rv = self
                .api
                .get_raw(&d, Some(ns), name)
                .map_err(to_status_error)?
                .rv
                .to_string();
            let mut pod = match seen.take() {
                Some(p) if p.metadata.resource_version.as_deref() == Some(stored_rv.as_str()) => {
                    Arc::unwrap_or_clone(p)
                }
                _ => Arc::unwrap_or_clone(self.get_pod(ns, name).await?),
            };
            check_preconditions(&pod, preconditions.as_ref())?;
            let now = self.clock.now();
            let conds = pod
                .status
                .get_or_insert_with(Default::default)
                .conditions
                .get_or_insert_with(Vec::new);
            let cond = PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("EvictionByEvictionAPI".into()),
                message: Some("Eviction API: evicting".into()),
                last_transition_time: Some(Time(now)),
                ..PodCondition::default()
            };
            match conds.iter_mut().find(|c| c.type_ == "DisruptionTarget") {
                Some(c) if c.status == "True" => {
                    c.reason = cond.reason;
                    c.message = cond.message;
                }
                Some(c) => *c = cond,
                None => conds.push(cond),
            }
            let v = crate::api::to_value(&pod).map_err(to_status_error)?;
            match self
                .api
                .update_status(&d, Some(ns), name, v, &WriteOptions::default())
            {
                // Only the new resourceVersion is read of the answer.
                Ok(p) => return Ok(p["metadata"]["resourceVersion"].as_str().map(str::to_owned)),
                Err(e) if e.code == 409 => continue,
                Err(e) => return Err(to_status_error(e)),
            }
        }
        Err(StatusError::conflict(
            "pods",
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ))
    }

    async fn delete_pod(
        &self,
        ns: &str,
        name: &str,
        options: K8sDeleteOptions,
    ) -> Result<(), StatusError> {
        let v = serde_json::to_value(&options).unwrap_or(Value::Null);
        let opts = DeleteOptions::from_json(&v).map_err(to_status_error)?;
        self.api
            .delete_typed::<Pod>(Some(ns), name, &opts)
            .map(|_| ())
            .map_err(to_status_error)
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Serves `POST …/pods/{name}/eviction` through [`eviction::evict`]; a
/// `?dryRun=All` query is merged with `deleteOptions.dryRun` as
/// `EvictionREST.Create` does (`propagateDryRun`).
fn register_eviction(shared: &Arc<Shared>) {
    let clock = shared.clock;
    // Weak: the API holds the handler, and the simulation holds the API.
    let weak = Arc::downgrade(shared);
    let handler: crate::api::SubresourceHandler = Arc::new(
        move |api: Api, ns: String, name: String, body: Value, query: HashMap<String, String>| {
            let weak = weak.clone();
            Box::pin(async move {
                let ev: Eviction = serde_json::from_value(body).map_err(|e| {
                    ApiError::bad_request(format!("failed to decode Eviction: {e}"))
                })?;
                let dry_run: Vec<String> = query
                    .get("dryRun")
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .into_iter()
                    .collect();
                let backend = ApiBackend {
                    api,
                    clock,
                    shared: weak,
                };
                match eviction::evict(&backend, &ns, &name, &ev, &dry_run).await {
                    Ok(status) => Ok((201, serde_json::to_value(status).unwrap_or(Value::Null))),
                    Err(e) => Err(to_api_error(&e)),
                }
            })
        },
    );
    shared.api.register_subresource("pods", "eviction", handler);
    // Advertised as upstream's `/api/v1` lists it: `kubectl drain` evicts only
    // when discovery shows `pods/eviction` (kind Eviction, policy/v1) and
    // deletes the pods otherwise (`CheckEvictionSupport`, kubectl/pkg/drain).
    shared.api.registry().add_hook_subresource(
        "",
        "pods",
        crate::registry::HookSubresource {
            name: "eviction".into(),
            group: "policy".into(),
            version: "v1".into(),
            kind: "Eviction".into(),
            verbs: vec!["create".into()],
        },
    );
}

/// `POST pods/{name}/binding` ([`crate::binding::bind`]), for schedulers
/// other than kubesim's own; answers `201` with a `Success` status.
fn register_binding(shared: &Arc<Shared>) {
    let clock = shared.clock;
    let handler: crate::api::SubresourceHandler = Arc::new(
        move |api: Api, ns: String, name: String, body: Value, _query: HashMap<String, String>| {
            Box::pin(async move {
                let binding: Binding = serde_json::from_value(body)
                    .map_err(|e| ApiError::bad_request(format!("failed to decode Binding: {e}")))?;
                crate::binding::bind(&api, &ns, &name, &binding, clock.now())?;
                Ok((
                    201,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                ))
            })
        },
    );
    shared.api.register_subresource("pods", "binding", handler);
}

/// Serializable helper for tests and the `/sim` endpoints: a short summary of
/// what the simulation holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Pods in the caches.
    pub pods: usize,
    /// StatefulSets in the caches.
    pub statefulsets: usize,
    /// Nodes and whether they are ready.
    pub nodes: BTreeMap<String, bool>,
}

impl Simulation {
    /// A summary of the simulated cluster.
    pub fn summary(&self) -> Summary {
        let c = &self.shared.caches;
        Summary {
            pods: c.pods.list().len(),
            statefulsets: c.sets.list().len(),
            nodes: c
                .nodes
                .list()
                .iter()
                .map(|n| {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    let failed = self.shared.faults.node_failed(&name);
                    (name, !failed)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(
        name: &str,
        rv: u64,
        owner: Option<&str>,
        labels: &[(&str, &str)],
        node: Option<&str>,
    ) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": "ns", "resourceVersion": rv.to_string(),
                "labels": labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "ownerReferences": owner.map(|u| vec![json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": "s", "uid": u, "controller": true})]).unwrap_or_default(),
            },
            "spec": {"containers": [], "nodeName": node},
        }))
        .unwrap_or_else(|e| panic!("pod fixture: {e}"))
    }

    fn names(pods: &[Arc<CachedPod>]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or_default())
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// The facts the pod cache keeps per slot are those of the version the
        /// slot holds, over arbitrary applies (newer, stale, the same version
        /// again), deletes and relists; `claimable_members` lists what
        /// `claimable` lists.
        #[test]
        fn the_kept_member_facts_are_those_of_the_cached_version(
            steps in proptest::collection::vec(
                (0usize..4, 0usize..3, 0usize..3, 0usize..3, 0u64..4), 1..40),
        ) {
            let c: Cache<Pod> = Cache::default();
            // The whole pod of each cached version, as the API returned it.
            let mut whole: BTreeMap<String, Pod> = BTreeMap::new();
            let mut rv = 10;
            for (op, name, owner, label, back) in steps {
                let name = ["web-0", "web-1", "web-2"][name];
                let owner = [Some("u1"), Some("u2"), None][owner];
                let labels = [[("app", "web"), (crate::controllers::REVISION_LABEL, "r1")], [("app", "web"), (crate::controllers::REVISION_LABEL, "r2")], [("app", "x"), ("t", "a")]][label];
                match op {
                    0 => {
                        rv += 1;
                        let mut p = pod(name, rv, owner, &labels, None);
                        // Fields the projection drops, so that whole and projection differ.
                        if let Some(spec) = p.spec.as_mut() {
                            spec.service_account_name = Some(format!("sa-{rv}"));
                        }
                        whole.insert(name.to_owned(), p.clone());
                        c.apply(p);
                    }
                    // The cached version applied again (a controller's own write,
                    // then its watch event: the same object at the same version,
                    // once whole, once as the watch delivers it: projection and
                    // JSON), or a stale version (ignored).
                    1 => match c.get("ns", name) {
                        Some(cur) if back == 0 => {
                            let full = c.full("ns", name).unwrap().unwrap();
                            let json = Bytes::from(serde_json::to_vec(&*full).unwrap());
                            c.apply_version(cur.clone(), &json);
                            c.apply_arc(full);
                        }
                        Some(cur) => {
                            let stale = rv_of(&cur.metadata).saturating_sub(back).max(1);
                            if stale < rv_of(&cur.metadata) {
                                c.apply(pod(name, stale, owner, &labels, None));
                            }
                        }
                        None => {}
                    },
                    2 => {
                        rv += 1;
                        c.remove("ns", name, rv);
                        whole.remove(name);
                    }
                    _ => {
                        let items = c
                            .list()
                            .into_iter()
                            .map(|p| {
                                let name = p.metadata.name.clone().unwrap_or_default();
                                let json = Bytes::from(serde_json::to_vec(&whole[&name]).unwrap());
                                ((String::from("ns"), name), (rv_of(&p.metadata), p, json))
                            })
                            .collect();
                        c.replace_all(items);
                    }
                }
                // The cache keeps the projection of each version and gives back its whole pod.
                proptest::prop_assert_eq!(c.list().len(), whole.len());
                for (name, w) in &whole {
                    let kept = c.get("ns", name).unwrap();
                    proptest::prop_assert_eq!(&*kept, &CachedPod::of(w));
                    proptest::prop_assert_eq!(kept.to_pod(), projection::project_pod(w));
                    proptest::prop_assert!(kept.to_pod() != *w);
                    let full = c.full("ns", name).unwrap().unwrap();
                    proptest::prop_assert_eq!(&*full, w);
                    let at = c.full_at("ns", name, rv_of(&w.metadata)).unwrap().unwrap();
                    proptest::prop_assert_eq!(&*at, w);
                    proptest::prop_assert!(c.full_at("ns", name, rv_of(&w.metadata) + 1).is_none());
                }
                for uid in ["u1", "u2"] {
                    let members = c.claimable_members("ns", uid);
                    let plain = c.claimable("ns", uid);
                    proptest::prop_assert_eq!(members.len(), plain.len());
                    for (f, q) in members.iter().zip(&plain) {
                        let p = f.cached().unwrap();
                        proptest::prop_assert!(Arc::ptr_eq(p, q));
                        proptest::prop_assert_eq!(&**f, &MemberFacts::of(&**p));
                    }
                }
            }
        }
    }

    /// The claim's list skips the per-pod namespace compare when a
    /// controller's first and last pods are of the namespace; pods of one
    /// controller uid in several namespaces (not made by a controller, but
    /// stored as any object) are still read from the asked namespace only.
    #[test]
    fn a_controllers_pods_are_read_from_its_namespace_only() {
        let c: Cache<Pod> = Cache::default();
        let in_ns = |name: &str, rv: u64, ns: &str| {
            let mut p = pod(name, rv, Some("u1"), &[], None);
            p.metadata.namespace = Some(ns.to_owned());
            p
        };
        c.apply(in_ns("a-0", 1, "ns"));
        c.apply(in_ns("a-1", 2, "ns"));
        assert_eq!(names(&c.claimable("ns", "u1")), ["a-0", "a-1"]);
        assert!(c.claimable("other", "u1").is_empty());
        // Before, between and after "ns" in key order.
        c.apply(in_ns("a-2", 3, "a"));
        c.apply(in_ns("a-3", 4, "nt"));
        c.apply(in_ns("a-4", 5, "z"));
        c.apply(pod("orphan", 6, None, &[], None));
        assert_eq!(names(&c.claimable("ns", "u1")), ["a-0", "a-1", "orphan"]);
        assert_eq!(names(&c.claimable("nt", "u1")), ["a-3"]);
        assert_eq!(names(&c.claimable("a", "u1")), ["a-2"]);
        assert_eq!(names(&c.claimable("z", "u1")), ["a-4"]);
        let members: Vec<String> = c
            .claimable_members("ns", "u1")
            .iter()
            .filter_map(|f| f.cached()?.metadata.name.clone())
            .collect();
        assert_eq!(members, ["a-0", "a-1", "orphan"]);
        c.remove("a", "a-2", 7);
        c.remove("z", "a-4", 8);
        assert_eq!(names(&c.claimable("nt", "u1")), ["a-3"]);
        assert_eq!(names(&c.claimable("ns", "u1")), ["a-0", "a-1", "orphan"]);
    }

    #[test]
    fn the_pod_cache_indexes_follow_every_write_and_delete() {
        let c: Cache<Pod> = Cache::default();
        c.apply(pod("a-0", 1, Some("u1"), &[("app", "a")], Some("n1")));
        c.apply(pod("a-1", 2, Some("u1"), &[("app", "a")], None));
        c.apply(pod("b-0", 3, Some("u2"), &[("app", "b")], Some("n1")));
        c.apply(pod("orphan", 4, None, &[("app", "a")], Some("n2")));
        assert_eq!(names(&c.claimable("ns", "u1")), ["a-0", "a-1", "orphan"]);
        assert_eq!(names(&c.controlled_by("ns", "u2")), ["b-0"]);
        let app_a = BTreeMap::from([("app".to_owned(), "a".to_owned())]);
        assert_eq!(
            names(&c.with_labels("ns", &app_a)),
            ["a-0", "a-1", "orphan"]
        );
        assert_eq!(c.count_on_node("ns", "n1"), 2);
        // A relabelled, rebound, adopted pod moves between the indexes.
        c.apply(pod("orphan", 5, Some("u2"), &[("app", "b")], Some("n1")));
        assert_eq!(names(&c.claimable("ns", "u1")), ["a-0", "a-1"]);
        assert_eq!(names(&c.controlled_by("ns", "u2")), ["b-0", "orphan"]);
        assert_eq!(names(&c.with_labels("ns", &app_a)), ["a-0", "a-1"]);
        assert_eq!(c.count_on_node("ns", "n1"), 3);
        assert_eq!(c.count_on_node("ns", "n2"), 0);
        // An older version does not replace a newer one, nor its index entries.
        c.apply(pod("orphan", 4, None, &[("app", "a")], Some("n2")));
        assert_eq!(names(&c.controlled_by("ns", "u2")), ["b-0", "orphan"]);
        c.remove("ns", "a-0", 6);
        assert_eq!(names(&c.claimable("ns", "u1")), ["a-1"]);
        assert_eq!(c.count_on_node("ns", "n1"), 2);
        // No required label: the whole namespace; a label nobody carries: nothing.
        assert_eq!(c.with_labels("ns", &BTreeMap::new()).len(), 3);
        let none = BTreeMap::from([("app".to_owned(), "zzz".to_owned())]);
        assert!(c.with_labels("ns", &none).is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_a_worker_has_it_is_queued_again_only_when_that_worker_is_done() {
        let (q, mut rx) = Queue::new();
        let key = ("ns".to_owned(), "k".to_owned());
        q.add("ns", "k");
        q.add("ns", "k");
        assert_eq!(rx.try_recv().ok(), Some(key.clone()));
        assert!(rx.try_recv().is_err(), "queued once however often added");
        q.start(&key);
        // Added twice while a worker syncs it: no second worker may take it now.
        q.add("ns", "k");
        q.add("ns", "k");
        q.add("ns", "other");
        assert_eq!(
            rx.try_recv().ok(),
            Some(("ns".to_owned(), "other".to_owned()))
        );
        assert!(
            rx.try_recv().is_err(),
            "a key is never with two workers at once"
        );
        q.finish(&key);
        assert_eq!(rx.try_recv().ok(), Some(key.clone()), "queued again, once");
        assert!(rx.try_recv().is_err());
        // Not added while processed: finishing queues nothing.
        q.start(&key);
        q.finish(&key);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_delayed_key_waits_for_its_earliest_time_and_is_queued_once() {
        let (q, mut rx) = Queue::new();
        let timer = tokio::spawn(q.clone().run_timer());
        let start = tokio::time::Instant::now();
        q.add_after("ns", "k", Duration::from_millis(1000));
        q.add_after("ns", "k", Duration::from_millis(300));
        q.add_after("ns", "k", Duration::from_millis(500));
        q.add_after("ns", "other", Duration::from_millis(600));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .ok()
                .flatten(),
            Some(("ns".to_owned(), "k".to_owned()))
        );
        assert!(start.elapsed() >= Duration::from_millis(300), "never early");
        q.start(&("ns".to_owned(), "k".to_owned()));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .ok()
                .flatten(),
            Some(("ns".to_owned(), "other".to_owned()))
        );
        assert!(start.elapsed() >= Duration::from_millis(600), "never early");
        // Past the later times given for `k`: they were dropped, not queued again.
        tokio::time::sleep_until(start + Duration::from_millis(1500)).await;
        assert!(
            rx.try_recv().is_err(),
            "the later times of `k` were dropped"
        );
        timer.abort();
    }
}
