//! In-memory object storage: the simulated etcd.
//!
//! Objects are kept serialized (compact JSON [`Bytes`]) next to the few
//! fields that lists, selectors and the garbage collector need (labels,
//! selectable fields, owner uids), so 100,000 pods cost little memory and a
//! list or a watch event is written to the wire without re-serializing.
//! Every write takes the next value of one global, monotonically increasing
//! resourceVersion and appends an event to a bounded history window from
//! which watches are served; a watch from a resourceVersion older than the
//! window gets `410 Expired`, like a compacted etcd.
//!
//! All writes go through [`Store::write`], which runs a closure on a
//! [`Txn`] under one lock: the API layer does its read-check-write logic
//! inside, so writes are linearizable.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    ops::Bound,
    sync::{Arc, Mutex, MutexGuard},
};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;

use crate::registry::ResourceDescriptor;

/// Key of an object inside one resource: (namespace, name); namespace is
/// empty for cluster-scoped resources. Ordered like etcd keys
/// (`/registry/<resource>/<namespace>/<name>`), i.e. by namespace, then name.
///
/// One allocation holding both strings, shared (cloned as an `Arc`) by the
/// resource map, the uid and dependents indexes and every stored version of
/// the object, instead of two boxed strings cloned into each of them.
#[derive(Clone)]
pub struct ObjKey {
    /// The namespace followed by the name.
    text: Arc<str>,
    /// Where the name starts in `text`.
    split: u32,
}

impl ObjKey {
    /// The key of `name` in namespace `ns` ("" for cluster-scoped).
    pub fn new(ns: &str, name: &str) -> Self {
        let mut text = String::with_capacity(ns.len() + name.len());
        text.push_str(ns);
        text.push_str(name);
        ObjKey {
            text: text.into(),
            // Object metadata is far below 4 GiB: the API's request bodies are bounded.
            split: u32::try_from(ns.len()).unwrap_or(u32::MAX),
        }
    }

    /// The namespace ("" for cluster-scoped).
    pub fn namespace(&self) -> &str {
        &self.text[..self.split as usize]
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.text[self.split as usize..]
    }
}

/// A key's (namespace, name), borrowed: what the store's maps are searched by, so a lookup
/// by `&str`s allocates no key ([`ObjKey`] borrows as `dyn KeyParts`).
pub trait KeyParts {
    /// (namespace, name).
    fn parts(&self) -> (&str, &str);
}

impl KeyParts for ObjKey {
    fn parts(&self) -> (&str, &str) {
        (self.namespace(), self.name())
    }
}

impl KeyParts for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn KeyParts + 'a> for ObjKey {
    fn borrow(&self) -> &(dyn KeyParts + 'a) {
        self
    }
}

impl PartialEq for dyn KeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}
impl Eq for dyn KeyParts + '_ {}
impl PartialOrd for dyn KeyParts + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for dyn KeyParts + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl PartialEq for ObjKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}
impl Eq for ObjKey {}
impl PartialOrd for ObjKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ObjKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}
impl std::hash::Hash for ObjKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}
impl std::fmt::Debug for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parts().fmt(f)
    }
}

/// Strings packed in one string: counts, then each string as its length and its bytes. Lengths
/// (and counts) are written as chars of 14-bit digits, least significant first (a digit below
/// `0x4000` ends the number, `0x4000 + d` continues it; every such char is a valid scalar value,
/// so the whole is a `str` and reading it needs no `unsafe`): one byte for a length below 128.
/// Nothing to pack packs as the empty string, which allocates nothing.
///
/// A version's labels and owner uids are one packed string ([`Stored::shared`]: the label
/// count, the owner count, label keys and values alternating, the owner uids), shared with the
/// object's previous version when they are the same (a pod's labels and owners rarely change
/// between its versions); its selectable field values are another ([`Stored::fields`]: the count,
/// the values in the descriptor's order). Before, each of these strings was its own `Box<str>` in
/// boxed slices: ~25 allocations for a pod with four labels (`docs/kubesim-scale.md`, simstore).
fn pack<'a>(counts: &[usize], strings: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut out =
        String::with_capacity(counts.len() + strings.clone().map(|s| 1 + s.len()).sum::<usize>());
    pack_into(&mut out, counts, strings);
    out
}

/// [`pack`] into `out` (cleared first).
fn pack_into<'a>(out: &mut String, counts: &[usize], strings: impl Iterator<Item = &'a str>) {
    out.clear();
    if counts.iter().all(|n| *n == 0) {
        return;
    }
    for n in counts {
        push_len(out, *n);
    }
    for s in strings {
        push_len(out, s.len());
        out.push_str(s);
    }
}

/// Labels and owner uids packed into an `Arc<str>` of exactly their length (through a per-thread
/// scratch buffer: `Arc<str>::from(String)` would allocate twice); `None` when there are neither.
fn pack_shared(labels: &[(&str, &str)], owners: &[&str]) -> Option<Arc<str>> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    let strings = labels
        .iter()
        .flat_map(|(k, v)| [*k, *v])
        .chain(owners.iter().copied());
    let counts = [labels.len(), owners.len()];
    SCRATCH.with(|cell| {
        // A re-entrant call (none today) gets a fresh buffer instead of a borrow panic.
        let mut fresh = String::new();
        let mut guard = cell.try_borrow_mut().ok();
        let buf = guard.as_deref_mut().unwrap_or(&mut fresh);
        pack_into(buf, &counts, strings);
        let packed = (!buf.is_empty()).then(|| Arc::from(buf.as_str()));
        if buf.capacity() > 1 << 16 {
            *buf = String::new();
        }
        packed
    })
}

/// The `N` counts of a packed string and a cursor at its first string.
fn unpack<const N: usize>(packed: &str) -> ([usize; N], Cursor<'_>) {
    let mut c = Cursor(packed);
    let mut counts = [0; N];
    if !packed.is_empty() {
        counts.iter_mut().for_each(|n| *n = c.len());
    }
    (counts, c)
}

const DIGIT: u32 = 0x4000;

fn push_len(out: &mut String, mut n: usize) {
    while n >= DIGIT as usize {
        // Below 0x8000: never a surrogate, so always a char.
        out.push(char::from_u32(DIGIT + (n % DIGIT as usize) as u32).unwrap_or_default());
        n /= DIGIT as usize;
    }
    out.push(char::from_u32(n as u32).unwrap_or_default());
}

/// Reads [`Meta`]'s encoding front to back.
#[derive(Clone)]
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    fn len(&mut self) -> usize {
        let (mut n, mut shift) = (0usize, 0u32);
        let mut chars = self.0.chars();
        for c in chars.by_ref() {
            let c = c as u32;
            if c < DIGIT {
                n += (c as usize) << shift;
                break;
            }
            n += ((c - DIGIT) as usize) << shift;
            shift += 14;
        }
        self.0 = chars.as_str();
        n
    }

    fn string(&mut self) -> &'a str {
        let n = self.len();
        let (s, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        s
    }

    fn skip(&mut self, strings: usize) {
        for _ in 0..strings {
            self.string();
        }
    }
}

/// One stored object version.
///
/// What the store keeps besides the JSON is compact: the key and the uid are shared with the
/// object's other versions and with the store's indexes, the labels and owner uids are one
/// packed string shared with the previous version when unchanged, the selectable fields another
/// ([`pack`]). Readers see them through the accessors.
pub struct Stored {
    key: ObjKey,
    uid: Arc<str>,
    /// `metadata.resourceVersion` as a number.
    pub rv: u64,
    /// The full object as compact JSON.
    pub json: Bytes,
    /// Labels and owner uids, packed; `None` when there are neither.
    shared: Option<Arc<str>>,
    /// Selectable field values, packed.
    fields: Box<str>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("namespace", &self.namespace())
            .field("name", &self.name())
            .field("uid", &self.uid())
            .field("rv", &self.rv)
            .field("labels", &self.labels().collect::<Vec<_>>())
            .field("fields", &{
                let ([n], mut c) = unpack::<1>(&self.fields);
                (0..n).map(|_| c.string()).collect::<Vec<_>>()
            })
            .field("owners", &self.owners().collect::<Vec<_>>())
            .field("terminating", &self.terminating)
            .finish_non_exhaustive()
    }
}

fn field_string<'a>(v: &'a Value, path: &str) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    let mut cur = v;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(n) => cur = n,
            None => return Cow::Borrowed(""),
        }
    }
    match cur {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Number(n) => Cow::Owned(n.to_string()),
        other => Cow::Owned(other.to_string()),
    }
}
/// `obj` as compact JSON in an allocation of exactly its length.
///
/// `serde_json::to_vec` grows its buffer by doubling from 128 bytes, and `Bytes::from(Vec)` keeps
/// the whole capacity: a 2.3 KB pod held 4 KiB, and a store of 100,000 pods plus its history
/// carried about 40 % of dead capacity (heaptrack, `docs/kubesim-scale.md`, simmem). The object
/// is written into a per-thread scratch buffer that keeps its capacity, then copied once.
fn exact_json(obj: &Value) -> Result<Bytes, serde_json::Error> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|cell| {
        // A re-entrant call (none today) gets a fresh buffer instead of a borrow panic.
        let mut fresh = Vec::new();
        let mut guard = cell.try_borrow_mut().ok();
        let buf = guard.as_deref_mut().unwrap_or(&mut fresh);
        buf.clear();
        let r = serde_json::to_writer(&mut *buf, obj).map(|()| Bytes::copy_from_slice(buf));
        // Do not keep a huge buffer (a large ConfigMap) alive on the thread for good.
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new();
        }
        r
    })
}

impl Stored {
    /// Builds a stored version from an object whose metadata (name,
    /// namespace, uid, resourceVersion) is already final.
    pub fn from_value(
        obj: &Value,
        d: &ResourceDescriptor,
        rv: u64,
    ) -> Result<Self, serde_json::Error> {
        Self::from_value_after(obj, d, rv, None)
    }

    /// Like [`Stored::from_value`], sharing the key and the uid of `prev` (the object's
    /// previous version) when they are the same.
    pub fn from_value_after(
        obj: &Value,
        d: &ResourceDescriptor,
        rv: u64,
        prev: Option<&Stored>,
    ) -> Result<Self, serde_json::Error> {
        let meta = &obj["metadata"];
        fn s(v: &Value) -> &str {
            v.as_str().unwrap_or_default()
        }
        let labels = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str(), s(v)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let fields = d
            .selectable_fields
            .iter()
            .map(|f| field_string(obj, f))
            .collect::<Vec<_>>();
        let owners = meta["ownerReferences"]
            .as_array()
            .map(|a| a.iter().map(|o| s(&o["uid"])).collect::<Vec<_>>())
            .unwrap_or_default();
        let (ns, name, uid) = (s(&meta["namespace"]), s(&meta["name"]), s(&meta["uid"]));
        let key = match prev {
            Some(p) if p.namespace() == ns && p.name() == name => p.key.clone(),
            _ => ObjKey::new(ns, name),
        };
        let uid = match prev {
            Some(p) if *p.uid == *uid => p.uid.clone(),
            _ => uid.into(),
        };
        let shared = match prev {
            Some(p)
                if p.labels().eq(labels.iter().copied())
                    && p.owners().eq(owners.iter().copied()) =>
            {
                p.shared.clone()
            }
            _ => pack_shared(&labels, &owners),
        };
        Ok(Stored {
            key,
            uid,
            rv,
            json: exact_json(obj)?,
            shared,
            fields: pack(&[fields.len()], fields.iter().map(|f| &**f)).into_boxed_str(),
            terminating: !meta["deletionTimestamp"].is_null(),
        })
    }

    /// Parses the stored JSON.
    pub fn value(&self) -> Value {
        // The bytes were produced by serde_json from a Value, so they parse.
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// `metadata.namespace` ("" for cluster-scoped).
    pub fn namespace(&self) -> &str {
        self.key.namespace()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.key.name()
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// `metadata.labels` (key, value), in the object's order.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        let ([n, _], mut c) = unpack::<2>(self.shared.as_deref().unwrap_or_default());
        (0..n).map(move |_| (c.string(), c.string()))
    }

    /// Label lookup.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// uids of `metadata.ownerReferences`, in order.
    pub fn owners(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        let ([l, o], mut c) = unpack::<2>(self.shared.as_deref().unwrap_or_default());
        c.skip(2 * l);
        (0..o).map(move |_| c.string())
    }

    /// Field lookup for field selectors (`metadata.name`, `metadata.namespace`
    /// or a selectable field of `d`).
    pub fn field<'a>(&'a self, d: &ResourceDescriptor, path: &str) -> Option<&'a str> {
        match path {
            "metadata.name" => Some(self.name()),
            "metadata.namespace" => Some(self.namespace()),
            _ => d
                .selectable_fields
                .iter()
                .position(|f| f == path)
                .and_then(|i| {
                    let ([n], mut c) = unpack::<1>(&self.fields);
                    (i < n).then(|| {
                        c.skip(i);
                        c.string()
                    })
                }),
        }
    }

    /// The object key (shared: an `Arc` clone).
    pub fn key(&self) -> ObjKey {
        self.key.clone()
    }
}

/// Watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed (the event carries its last state with the deletion's resourceVersion).
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One entry of the history window.
#[derive(Debug)]
pub struct Event {
    /// resourceVersion of the write.
    pub rv: u64,
    /// Storage key of the resource (`pods`, `statefulsets.apps`).
    pub resource: Arc<str>,
    /// What happened.
    pub kind: EventType,
    /// The object after the write (for DELETED: its last state).
    pub obj: Arc<Stored>,
    /// The object before the write (for selector transitions).
    pub prev: Option<Arc<Stored>>,
}

/// A watch cannot start or continue: its resourceVersion fell out of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// The requested resourceVersion.
    pub requested: u64,
    /// The oldest resourceVersion still servable.
    pub floor: u64,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    resources: HashMap<Arc<str>, BTreeMap<ObjKey, Arc<Stored>>>,
    /// Keyed by the uid its versions share.
    uids: HashMap<Arc<str>, (Arc<str>, ObjKey)>,
    dependents: HashMap<Box<str>, HashSet<(Arc<str>, ObjKey)>>,
    history: VecDeque<Arc<Event>>,
    /// Events with rv <= floor are no longer available.
    floor: u64,
    history_limit: usize,
    /// Bytes of the objects the history holds (their stored JSON).
    history_bytes: usize,
    history_bytes_limit: usize,
    interned: HashMap<String, Arc<str>>,
}

impl Inner {
    fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.interned.get(key) {
            return k.clone();
        }
        let k: Arc<str> = key.into();
        self.interned.insert(key.to_string(), k.clone());
        k
    }

    /// Appends an event, compacting the oldest ones while the window holds
    /// more than `history_limit` events or more than `history_bytes_limit`
    /// bytes of objects (the newest event always stays).
    fn push_event(&mut self, ev: Event) {
        self.history_bytes += ev.obj.json.len();
        self.history.push_back(Arc::new(ev));
        while (self.history.len() > self.history_limit
            || self.history_bytes > self.history_bytes_limit)
            && self.history.len() > 1
            && let Some(old) = self.history.pop_front()
        {
            self.history_bytes -= old.obj.json.len();
            self.floor = old.rv;
        }
    }

    fn unindex(&mut self, res: &Arc<str>, s: &Stored) {
        self.uids.remove(s.uid());
        for o in s.owners() {
            if let Some(set) = self.dependents.get_mut(o) {
                set.remove(&(res.clone(), s.key()));
                if set.is_empty() {
                    self.dependents.remove(o);
                }
            }
        }
    }

    fn index(&mut self, res: &Arc<str>, s: &Stored) {
        self.uids.insert(s.uid.clone(), (res.clone(), s.key()));
        for o in s.owners() {
            let entry = (res.clone(), s.key());
            // Allocate the owner's uid only for its first dependent.
            match self.dependents.get_mut(o) {
                Some(set) => {
                    set.insert(entry);
                }
                None => {
                    self.dependents.insert(o.into(), HashSet::from([entry]));
                }
            }
        }
    }
}

/// The object store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    notify: watch::Sender<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("rv", &self.current_rv())
            .finish()
    }
}

/// A write transaction (holds the store lock).
pub struct Txn<'a> {
    inner: MutexGuard<'a, Inner>,
    wrote: bool,
}

impl Txn<'_> {
    /// Current (last written) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.inner.rv
    }

    /// Reads one object.
    pub fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Arc<Stored>> {
        self.inner
            .resources
            .get(resource)?
            .get(&(ns, name) as &dyn KeyParts)
            .cloned()
    }

    /// Looks an object up by uid: (storage key, key).
    pub fn by_uid(&self, uid: &str) -> Option<(Arc<str>, ObjKey)> {
        self.inner.uids.get(uid).cloned()
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<(Arc<str>, ObjKey)> {
        self.inner
            .dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether any object of any resource lives in namespace `ns`.
    pub fn namespace_objects(&self, ns: &str) -> Vec<(Arc<str>, ObjKey)> {
        let mut out = vec![];
        let lo = (ns, "");
        for (res, m) in &self.inner.resources {
            let lower = Bound::Included(&lo as &dyn KeyParts);
            for (k, _) in m.range::<dyn KeyParts, _>((lower, Bound::Unbounded)) {
                if k.namespace() != ns {
                    break;
                }
                out.push((res.clone(), k.clone()));
            }
        }
        out
    }

    /// Allocates the next resourceVersion (each write takes one).
    pub fn next_rv(&mut self) -> u64 {
        self.inner.rv + 1
    }

    /// The current version of `obj`'s key (its namespace and name), if stored.
    fn current(&self, res: &str, obj: &Value) -> Option<Arc<Stored>> {
        let meta = &obj["metadata"];
        let key = (
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap_or_default(),
        );
        self.inner
            .resources
            .get(res)?
            .get(&key as &dyn KeyParts)
            .cloned()
    }

    /// Stores `obj` (already carrying resourceVersion `next_rv()`), emitting ADDED or MODIFIED.
    pub fn put(
        &mut self,
        d: &ResourceDescriptor,
        obj: &Value,
    ) -> Result<Arc<Stored>, serde_json::Error> {
        let rv = self.inner.rv + 1;
        let res = self.inner.intern(&d.storage_key());
        let cur = self.current(&res, obj);
        let s = Arc::new(Stored::from_value_after(obj, d, rv, cur.as_deref())?);
        self.inner.rv = rv;
        self.wrote = true;
        let key = s.key();
        let prev = self
            .inner
            .resources
            .entry(res.clone())
            .or_default()
            .insert(key, s.clone());
        if let Some(p) = &prev {
            self.inner.unindex(&res, p);
        }
        self.inner.index(&res, &s);
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.inner.push_event(Event {
            rv,
            resource: res,
            kind,
            obj: s.clone(),
            prev,
        });
        Ok(s)
    }

    /// Removes an object, emitting DELETED with its last state (`obj`, which
    /// must carry resourceVersion `next_rv()`).
    pub fn remove(
        &mut self,
        d: &ResourceDescriptor,
        obj: &Value,
    ) -> Result<Option<Arc<Stored>>, serde_json::Error> {
        let rv = self.inner.rv + 1;
        let res = self.inner.intern(&d.storage_key());
        let cur = self.current(&res, obj);
        let s = Arc::new(Stored::from_value_after(obj, d, rv, cur.as_deref())?);
        let Some(prev) = self
            .inner
            .resources
            .get_mut(&res)
            .and_then(|m| m.remove(&s.key as &dyn KeyParts))
        else {
            return Ok(None);
        };
        self.inner.rv = rv;
        self.wrote = true;
        self.inner.unindex(&res, &prev);
        self.inner.push_event(Event {
            rv,
            resource: res,
            kind: EventType::Deleted,
            obj: s.clone(),
            prev: Some(prev),
        });
        Ok(Some(s))
    }

    /// Lists objects of a resource in key order, starting after `after`,
    /// keeping those `keep` accepts, at most `limit` (0 = all). Returns the
    /// items and whether more matching items follow.
    pub fn list(
        &self,
        resource: &str,
        ns: Option<&str>,
        after: Option<&ObjKey>,
        limit: usize,
        mut keep: impl FnMut(&Stored) -> bool,
    ) -> (Vec<Arc<Stored>>, bool) {
        let Some(m) = self.inner.resources.get(resource) else {
            return (vec![], false);
        };
        let lo = (ns.unwrap_or_default(), "");
        let lower: Bound<&dyn KeyParts> = match (after, ns) {
            (Some(k), _) => Bound::Excluded(k),
            (None, Some(_)) => Bound::Included(&lo),
            (None, None) => Bound::Unbounded,
        };
        let mut out = vec![];
        for (k, v) in m.range::<dyn KeyParts, _>((lower, Bound::Unbounded)) {
            if let Some(ns) = ns
                && k.namespace() != ns
            {
                if k.namespace() > ns {
                    break;
                }
                continue;
            }
            if keep(v) {
                if limit > 0 && out.len() == limit {
                    return (out, true);
                }
                out.push(v.clone());
            }
        }
        (out, false)
    }

    /// Like [`Txn::list`], but as the store was at resourceVersion `at`
    /// (a consistent snapshot for every page of a paginated list, as etcd
    /// serves continued pages at the first page's revision). Objects changed
    /// since `at` are read back from the history window: the first event of a
    /// key after `at` holds its state at `at` (`prev`; none when it was
    /// added later). The caller checks `at >= floor()` first (else 410).
    pub fn list_at(
        &self,
        resource: &str,
        ns: Option<&str>,
        after: Option<&ObjKey>,
        limit: usize,
        at: u64,
        mut keep: impl FnMut(&Stored) -> bool,
    ) -> (Vec<Arc<Stored>>, bool) {
        if at >= self.inner.rv {
            return self.list(resource, ns, after, limit, keep);
        }
        // State at `at` of every key written since.
        let mut then: BTreeMap<ObjKey, Option<Arc<Stored>>> = BTreeMap::new();
        for e in self.events_since(resource, at) {
            then.entry(e.obj.key()).or_insert_with(|| match e.kind {
                EventType::Added => None,
                EventType::Modified | EventType::Deleted => e.prev.clone(),
            });
        }
        let empty = BTreeMap::new();
        let now = self.inner.resources.get(resource).unwrap_or(&empty);
        let lo = (ns.unwrap_or_default(), "");
        let lower: Bound<&dyn KeyParts> = match (after, ns) {
            (Some(k), _) => Bound::Excluded(k),
            (None, Some(_)) => Bound::Included(&lo),
            (None, None) => Bound::Unbounded,
        };
        let mut cur = now
            .range::<dyn KeyParts, _>((lower, Bound::Unbounded))
            .peekable();
        let mut old = then
            .range::<dyn KeyParts, _>((lower, Bound::Unbounded))
            .peekable();
        let mut out = vec![];
        loop {
            // Merge the two key-ordered streams; a key changed since `at`
            // takes its old state (or is skipped when it did not exist).
            let (key, item): (&ObjKey, Option<&Arc<Stored>>) = match (cur.peek(), old.peek()) {
                (None, None) => break,
                (Some((ck, _)), Some((ok, _))) if ok <= ck => {
                    let (k, v) = old.next().unwrap_or_else(|| unreachable!("peeked"));
                    if *ck == k {
                        cur.next();
                    }
                    (k, v.as_ref())
                }
                (Some(_), _) => {
                    let (k, v) = cur.next().unwrap_or_else(|| unreachable!("peeked"));
                    (k, Some(v))
                }
                (None, Some(_)) => {
                    let (k, v) = old.next().unwrap_or_else(|| unreachable!("peeked"));
                    (k, v.as_ref())
                }
            };
            if let Some(ns) = ns
                && key.namespace() != ns
            {
                if key.namespace() > ns {
                    break;
                }
                continue;
            }
            if let Some(v) = item
                && keep(v)
            {
                if limit > 0 && out.len() == limit {
                    return (out, true);
                }
                out.push(v.clone());
            }
        }
        (out, false)
    }

    /// Every stored object with its storage key (full scans: GC resync).
    pub fn all_objects(&self) -> Vec<(Arc<str>, Arc<Stored>)> {
        self.inner
            .resources
            .iter()
            .flat_map(|(r, m)| m.values().map(move |s| (r.clone(), s.clone())))
            .collect()
    }

    /// Number of objects of a resource.
    pub fn count(&self, resource: &str) -> usize {
        self.inner.resources.get(resource).map_or(0, |m| m.len())
    }

    /// Removes every object of a resource without events (CRD removal).
    pub fn drop_resource(&mut self, resource: &str) {
        if let Some(m) = self.inner.resources.remove(resource) {
            let res: Arc<str> = resource.into();
            for s in m.values() {
                self.inner.unindex(&res, s);
            }
        }
    }

    /// Events of `resource` with rv > `after` still in the window.
    pub fn events_since(&self, resource: &str, after: u64) -> Vec<Arc<Event>> {
        let start = self.inner.history.partition_point(|e| e.rv <= after);
        self.inner
            .history
            .range(start..)
            .filter(|e| *e.resource == *resource)
            .cloned()
            .collect()
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn floor(&self) -> u64 {
        self.inner.floor
    }
}

/// Store statistics for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// Objects per storage key.
    pub objects: Vec<(String, usize)>,
    /// Events in the history window.
    pub history_len: usize,
    /// Bytes of the objects of the history window (their stored JSON).
    pub history_bytes: usize,
    /// Current resourceVersion.
    pub resource_version: u64,
}

/// The default bound of the watch history in bytes of stored objects.
pub const DEFAULT_HISTORY_BYTES: usize = 128 << 20;

impl Store {
    /// An empty store keeping at most `history_limit` events for watches,
    /// and at most [`DEFAULT_HISTORY_BYTES`] of their objects.
    pub fn new(history_limit: usize) -> Self {
        Self::with_limits(history_limit, DEFAULT_HISTORY_BYTES)
    }

    /// An empty store whose watch history keeps at most `history_limit`
    /// events and at most `history_bytes` bytes of their objects' JSON.
    ///
    /// Upstream bounds history by time (etcd compacts revisions older than
    /// `--etcd-compaction-interval`, 5 minutes) and the watch cache by
    /// events; the byte bound is ours, so a window of 50,000 events can not
    /// hold 50,000 versions of a 200 KB custom resource. A watch from a
    /// resourceVersion the bound compacted gets `410 Expired` exactly as
    /// one the event bound compacted (see [`Store::events_after`]).
    pub fn with_limits(history_limit: usize, history_bytes: usize) -> Self {
        let (notify, _) = watch::channel(0);
        Store {
            inner: Mutex::new(Inner {
                history_limit: history_limit.max(1),
                history_bytes_limit: history_bytes,
                ..Inner::default()
            }),
            notify,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write:
        // every mutation is a single map operation after all fallible work.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the store lock; watchers are woken afterwards if it wrote.
    pub fn write<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let mut txn = Txn {
            inner: self.lock(),
            wrote: false,
        };
        let r = f(&mut txn);
        let rv = txn.inner.rv;
        let wrote = txn.wrote;
        drop(txn);
        if wrote {
            self.notify.send_replace(rv);
        }
        r
    }

    /// Runs a read-only closure under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&Txn<'_>) -> R) -> R {
        let txn = Txn {
            inner: self.lock(),
            wrote: false,
        };
        f(&txn)
    }

    /// Current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Subscribes to resourceVersion changes (used by watchers to wait).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Events of `resource` with rv > `after` (all resources when `None`),
    /// and the rv up to which the history was scanned. Errors when `after`
    /// is older than the window.
    pub fn events_after(
        &self,
        resource: Option<&str>,
        after: u64,
    ) -> Result<(Vec<Arc<Event>>, u64), Expired> {
        let g = self.lock();
        if after < g.floor {
            return Err(Expired {
                requested: after,
                floor: g.floor,
            });
        }
        let start = g.history.partition_point(|e| e.rv <= after);
        let evs = g
            .history
            .range(start..)
            .filter(|e| resource.is_none_or(|r| *e.resource == *r))
            .cloned()
            .collect();
        Ok((evs, g.rv.max(after)))
    }

    /// Drops the whole history window (the next watch from any older
    /// resourceVersion gets 410): a forced etcd compaction for tests and faults.
    pub fn compact(&self) {
        let mut g = self.lock();
        g.history.clear();
        g.history_bytes = 0;
        g.floor = g.rv;
    }

    /// Counts for `/metrics`.
    pub fn stats(&self) -> StoreStats {
        let g = self.lock();
        StoreStats {
            objects: g
                .resources
                .iter()
                .map(|(k, m)| (k.to_string(), m.len()))
                .collect(),
            history_len: g.history.len(),
            history_bytes: g.history_bytes,
            resource_version: g.rv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> ResourceDescriptor {
        crate::registry::builtin_resources()
            .into_iter()
            .find(|d| d.group.is_empty() && d.plural == "pods")
            .expect("pods are built in")
    }

    fn write(store: &Store, d: &ResourceDescriptor, name: &str, pad: usize) -> u64 {
        store.write(|t| {
            let rv = t.next_rv();
            let obj = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": rv.to_string()},
                "spec": {"pad": "x".repeat(pad)}});
            t.put(d, &obj).expect("stores");
            rv
        })
    }

    #[test]
    fn the_history_is_bounded_by_bytes_and_a_watch_from_before_it_expires() {
        let d = pods();
        let store = Store::with_limits(1_000, 10_000);
        let first = write(&store, &d, "a", 3_000);
        let second = write(&store, &d, "a", 3_000);
        let third = write(&store, &d, "b", 3_000);
        assert!(store.events_after(None, 0).is_ok(), "3 × ~3.1 KB fit");
        assert_eq!(store.stats().history_len, 3);
        let fourth = write(&store, &d, "b", 3_000);
        // The oldest event was compacted: from its rv on is still servable,
        // from before it is 410 (etcd's "required revision has been compacted").
        assert_eq!(
            store.events_after(None, 0).map(|_| ()),
            Err(Expired {
                requested: 0,
                floor: first
            })
        );
        let (evs, upto) = store.events_after(None, first).expect("servable");
        assert_eq!(
            evs.iter().map(|e| e.rv).collect::<Vec<_>>(),
            [second, third, fourth]
        );
        assert_eq!(upto, fourth);
        let stats = store.stats();
        assert_eq!(stats.history_len, 3);
        assert!(stats.history_bytes <= 10_000, "{stats:?}");
        // One object larger than the bound still makes an event (the newest stays).
        let huge = write(&store, &d, "c", 20_000);
        let (evs, _) = store.events_after(None, fourth).expect("servable");
        assert_eq!(evs.iter().map(|e| e.rv).collect::<Vec<_>>(), [huge]);
        // The event bound is unchanged.
        let small = Store::with_limits(2, usize::MAX);
        let a = write(&small, &d, "a", 1);
        write(&small, &d, "a", 1);
        write(&small, &d, "a", 1);
        assert!(small.events_after(None, a - 1).is_err());
        assert!(small.events_after(None, a).is_ok());
    }

    #[test]
    fn stored_json_is_the_compact_serialization_whatever_came_before() {
        let d = pods();
        let store = Store::new(100);
        // A large object (past the scratch buffer's kept capacity), then smaller ones: each
        // version's bytes are its own serialization, nothing of the previous one left over.
        for (name, pad) in [("big", 2 << 20), ("a", 3_000), ("b", 10), ("c", 0)] {
            store.write(|t| {
                let obj = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": "1"},
                    "spec": {"pad": "é".repeat(pad)}});
                let s = t.put(&d, &obj).expect("stores");
                assert_eq!(&s.json[..], &serde_json::to_vec(&obj).expect("serializes")[..]);
                assert_eq!(s.value(), obj);
            });
        }
    }

    /// What `Stored` held before the compact representation, read the way it read it (the
    /// fields of `main` at `54fc47d`): the oracle of the accessors.
    #[derive(Debug, PartialEq)]
    struct Plain {
        namespace: String,
        name: String,
        uid: String,
        labels: Vec<(String, String)>,
        fields: Vec<String>,
        owners: Vec<String>,
    }

    fn plain(obj: &Value, d: &ResourceDescriptor) -> Plain {
        fn field(v: &Value, path: &str) -> String {
            let mut cur = v;
            for seg in path.split('.') {
                match cur.get(seg) {
                    Some(n) => cur = n,
                    None => return String::new(),
                }
            }
            match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => other.to_string(),
            }
        }
        let meta = &obj["metadata"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Plain {
            namespace: s(&meta["namespace"]),
            name: s(&meta["name"]),
            uid: s(&meta["uid"]),
            labels: meta["labels"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
                .unwrap_or_default(),
            fields: d.selectable_fields.iter().map(|f| field(obj, f)).collect(),
            owners: meta["ownerReferences"]
                .as_array()
                .map(|a| a.iter().map(|o| s(&o["uid"])).collect())
                .unwrap_or_default(),
        }
    }

    fn read_back(st: &Stored, d: &ResourceDescriptor) -> Plain {
        Plain {
            namespace: st.namespace().to_string(),
            name: st.name().to_string(),
            uid: st.uid().to_string(),
            labels: st
                .labels()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fields: d
                .selectable_fields
                .iter()
                .map(|f| st.field(d, f).expect("a selectable field").to_string())
                .collect(),
            owners: st.owners().map(str::to_string).collect(),
        }
    }

    use proptest::prelude::*;

    /// Short strings of any chars, and now and then one long enough to need a length of two or
    /// three digits (≥ 0x4000 bytes).
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => ".{0,12}",
            1 => (any::<bool>(), 0x3ff0usize..0x4010, any::<char>()).prop_map(|(ascii, n, c)| if ascii {
                "a".repeat(n)
            } else {
                c.to_string().repeat(n / c.len_utf8() + 1)
            }),
        ]
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => text().prop_map(Value::from),
            1 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            1 => prop::collection::vec(".{0,4}", 0..3).prop_map(|v| json!(v)),
            1 => (".{0,4}", any::<u8>()).prop_map(|(k, v)| json!({k: v})),
        ]
    }

    prop_compose! {
        fn object()(
            ns in prop_oneof![Just(None), text().prop_map(Some)],
            name in text(),
            uid in prop_oneof![Just(None), text().prop_map(Some)],
            labels in prop::option::of(prop::collection::btree_map(text(), json_leaf(), 0..6)),
            owners in prop::option::of(prop::collection::vec(prop::option::of(json_leaf()), 0..4)),
            paths in prop::collection::vec(
                prop::sample::select(vec!["spec.nodeName", "status.phase", "spec.hostNetwork", "a.b.c", "x", "spec"]),
                0..5,
            ),
            values in prop::collection::vec(json_leaf(), 0..5),
            terminating in any::<bool>(),
        ) -> (Value, Vec<String>) {
            let mut meta = json!({"name": name});
            if let Some(ns) = ns { meta["namespace"] = json!(ns); }
            if let Some(uid) = uid { meta["uid"] = json!(uid); }
            if let Some(l) = labels { meta["labels"] = json!(l); }
            if let Some(o) = owners {
                meta["ownerReferences"] = o.into_iter()
                    .map(|u| u.map_or_else(|| json!({"kind": "X"}), |u| json!({"uid": u})))
                    .collect();
            }
            if terminating { meta["deletionTimestamp"] = json!("2026-12-07T21:00:00Z"); }
            let mut obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta});
            for (p, v) in paths.iter().zip(values) {
                let mut cur = &mut obj;
                for seg in p.split('.') {
                    if !cur.is_object() { *cur = json!({}); }
                    cur = &mut cur[seg];
                }
                *cur = v;
            }
            (obj, paths.iter().map(|p| p.to_string()).collect())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The compact version reads back exactly what the plain fields held, for arbitrary
        /// objects and selectable fields (strings of every length, non-string label values,
        /// owner references without a uid, fields of every JSON type or missing).
        #[test]
        fn the_compact_version_reads_as_the_plain_fields_did(
            (obj, paths) in object(),
            (other, _) in object(),
        ) {
            let mut d = pods();
            d.selectable_fields = paths;
            let st = Stored::from_value(&obj, &d, 9).expect("stores");
            let want = plain(&obj, &d);
            prop_assert_eq!(read_back(&st, &d), want);
            prop_assert_eq!(st.terminating, !obj["metadata"]["deletionTimestamp"].is_null());
            for (k, v) in st.labels() {
                prop_assert_eq!(st.label(k), Some(v));
            }
            prop_assert_eq!(st.label("no such label, never generated: \u{1}\u{2}"), None);
            prop_assert_eq!(st.field(&d, "metadata.name"), Some(st.name()));
            prop_assert_eq!(st.field(&d, "metadata.namespace"), Some(st.namespace()));
            prop_assert_eq!(st.field(&d, "not.selectable"), None);
            // A later version built on this one reads the same and shares its key and uid.
            let next = Stored::from_value_after(&obj, &d, 10, Some(&st)).expect("stores");
            prop_assert_eq!(read_back(&next, &d), plain(&obj, &d));
            prop_assert!(Arc::ptr_eq(&next.key.text, &st.key.text));
            prop_assert!(Arc::ptr_eq(&next.uid, &st.uid));
            match (&next.shared, &st.shared) {
                (Some(a), Some(b)) => prop_assert!(Arc::ptr_eq(a, b)),
                (a, b) => prop_assert!(a.is_none() && b.is_none()),
            }
            // A version built on another object's (or a changed one's) reads as its own.
            let after_other = Stored::from_value_after(&other, &d, 11, Some(&st)).expect("stores");
            prop_assert_eq!(read_back(&after_other, &d), plain(&other, &d));
        }

        /// Lengths of every size read back, each digit a valid char (none replaced).
        #[test]
        fn lengths_read_back(n in prop_oneof![0usize..0x8000, any::<u32>().prop_map(|n| n as usize), any::<usize>()]) {
            let mut out = String::new();
            push_len(&mut out, n);
            out.push_str("rest");
            prop_assert_eq!(out.chars().count(), 4 + 1 + (usize::BITS - n.leading_zeros()).saturating_sub(1) as usize / 14);
            prop_assert!(!out.starts_with('\0') || n == 0);
            let mut c = Cursor(&out);
            prop_assert_eq!(c.len(), n);
            prop_assert_eq!(c.0, "rest");
        }

        /// Keys order, compare and hash as (namespace, name) tuples, and a map of keys is
        /// searched by borrowed `(&str, &str)` exactly as by keys.
        #[test]
        fn keys_behave_as_namespace_name_tuples(
            keys in prop::collection::vec(("[ab]{0,3}", "[ab]{0,3}"), 1..12),
        ) {
            use std::hash::{BuildHasher, RandomState};
            let h = RandomState::new();
            let map: BTreeMap<ObjKey, usize> = keys
                .iter()
                .enumerate()
                .map(|(i, (ns, n))| (ObjKey::new(ns, n), i))
                .collect();
            let tuples: BTreeMap<(String, String), usize> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect();
            prop_assert_eq!(
                map.iter().map(|(k, i)| ((k.namespace().to_string(), k.name().to_string()), *i)).collect::<Vec<_>>(),
                tuples.clone().into_iter().collect::<Vec<_>>()
            );
            for (a_ns, a_n) in &keys {
                let a = ObjKey::new(a_ns, a_n);
                prop_assert_eq!(map.get(&(a_ns.as_str(), a_n.as_str()) as &dyn KeyParts), tuples.get(&(a_ns.clone(), a_n.clone())));
                // A namespace's keys start at (ns, "").
                let lo = (a_ns.as_str(), "");
                let from: Vec<_> = map
                    .range::<dyn KeyParts, _>((Bound::Included(&lo as &dyn KeyParts), Bound::Unbounded))
                    .map(|(k, _)| k.clone())
                    .collect();
                let want: Vec<_> = tuples
                    .range((a_ns.clone(), String::new())..)
                    .map(|((ns, n), _)| ObjKey::new(ns, n))
                    .collect();
                prop_assert_eq!(from, want);
                for (b_ns, b_n) in &keys {
                    let b = ObjKey::new(b_ns, b_n);
                    prop_assert_eq!(a.cmp(&b), (a_ns, a_n).cmp(&(b_ns, b_n)));
                    prop_assert_eq!(a == b, (a_ns, a_n) == (b_ns, b_n));
                    if a == b {
                        prop_assert_eq!(h.hash_one(&a), h.hash_one(&b));
                    }
                }
            }
        }
    }

    #[test]
    fn a_version_without_labels_fields_or_owners_allocates_no_metadata() {
        let mut d = pods();
        d.selectable_fields.clear();
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "uid": "u"}});
        let st = Stored::from_value(&obj, &d, 1).expect("stores");
        assert!(st.shared.is_none());
        assert!(st.fields.is_empty());
        assert_eq!(st.labels().len(), 0);
        assert_eq!(st.owners().len(), 0);
        // Empty field values take one byte each (their length), not an allocation each.
        let d = pods();
        let st = Stored::from_value(&obj, &d, 1).expect("stores");
        assert_eq!(st.fields.len(), 1 + d.selectable_fields.len());
    }

    /// Every version of an object and the store's indexes share one key and one uid; a new
    /// object under the same name (a new uid) gets its own.
    #[test]
    fn versions_and_indexes_share_the_key_and_the_uid() {
        let d = pods();
        let store = Store::new(100);
        let put = |uid: &str, owner: &str| {
            store.write(|t| {
                let obj = json!({"metadata": {"name": "a", "namespace": "ns", "uid": uid,
                    "ownerReferences": [{"uid": owner}]}});
                t.put(&d, &obj).expect("stores")
            })
        };
        let v1 = put("u1", "o");
        let v2 = put("u1", "o");
        assert!(Arc::ptr_eq(&v1.key.text, &v2.key.text));
        assert!(Arc::ptr_eq(&v1.uid, &v2.uid));
        store.read(|t| {
            let (k, (res, key)) = t.inner.uids.get_key_value("u1").expect("indexed");
            assert!(Arc::ptr_eq(k, &v2.uid));
            assert_eq!(&**res, "pods");
            assert!(Arc::ptr_eq(&key.text, &v2.key.text));
            let (stored_key, _) = t.inner.resources["pods"].iter().next().expect("stored");
            assert!(Arc::ptr_eq(&stored_key.text, &v2.key.text));
            let deps = t.dependents_of("o");
            assert_eq!(deps.len(), 1);
            assert!(Arc::ptr_eq(&deps[0].1.text, &v2.key.text));
        });
        // Deleted, then created again under the same name: a new uid.
        store.write(|t| {
            let obj = json!({"metadata": {"name": "a", "namespace": "ns", "uid": "u1"}});
            t.remove(&d, &obj).expect("removes").expect("was stored")
        });
        let v3 = put("u2", "p");
        assert_eq!(v3.uid(), "u2");
        assert!(!Arc::ptr_eq(&v3.uid, &v2.uid));
        store.read(|t| {
            assert!(t.by_uid("u1").is_none());
            assert_eq!(t.by_uid("u2").map(|(_, k)| k), Some(ObjKey::new("ns", "a")));
            assert!(t.dependents_of("o").is_empty());
            assert_eq!(t.dependents_of("p").len(), 1);
            assert_eq!(t.get("pods", "ns", "a").map(|s| s.rv), Some(v3.rv));
            assert_eq!(t.namespace_objects("ns").len(), 1);
            assert!(t.namespace_objects("n").is_empty());
        });
    }
}
