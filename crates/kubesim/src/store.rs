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
/// (`/registry/<resource>/<namespace>/<name>`).
pub type ObjKey = (Box<str>, Box<str>);

/// One stored object version.
#[derive(Debug)]
pub struct Stored {
    /// Namespace ("" for cluster-scoped).
    pub namespace: Box<str>,
    /// Name.
    pub name: Box<str>,
    /// `metadata.uid`.
    pub uid: Box<str>,
    /// `metadata.resourceVersion` as a number.
    pub rv: u64,
    /// The full object as compact JSON.
    pub json: Bytes,
    /// `metadata.labels`.
    pub labels: Box<[(Box<str>, Box<str>)]>,
    /// Values of the descriptor's `selectable_fields`, in the same order.
    pub fields: Box<[Box<str>]>,
    /// uids of `metadata.ownerReferences`.
    pub owners: Box<[Box<str>]>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

fn field_string(v: &Value, path: &str) -> Box<str> {
    let mut cur = v;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(n) => cur = n,
            None => return "".into(),
        }
    }
    match cur {
        Value::String(s) => s.as_str().into(),
        Value::Null => "".into(),
        Value::Bool(b) => b.to_string().into(),
        Value::Number(n) => n.to_string().into(),
        other => other.to_string().into(),
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
        let meta = &obj["metadata"];
        let s = |v: &Value| -> Box<str> { v.as_str().unwrap_or_default().into() };
        let labels = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str().into(), s(v)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_boxed_slice();
        let fields = d
            .selectable_fields
            .iter()
            .map(|f| field_string(obj, f))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let owners = meta["ownerReferences"]
            .as_array()
            .map(|a| a.iter().map(|o| s(&o["uid"])).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_boxed_slice();
        Ok(Stored {
            namespace: s(&meta["namespace"]),
            name: s(&meta["name"]),
            uid: s(&meta["uid"]),
            rv,
            json: exact_json(obj)?,
            labels,
            fields,
            owners,
            terminating: !meta["deletionTimestamp"].is_null(),
        })
    }

    /// Parses the stored JSON.
    pub fn value(&self) -> Value {
        // The bytes were produced by serde_json from a Value, so they parse.
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// Label lookup.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// Field lookup for field selectors (`metadata.name`, `metadata.namespace`
    /// or a selectable field of `d`).
    pub fn field<'a>(&'a self, d: &ResourceDescriptor, path: &str) -> Option<&'a str> {
        match path {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            _ => d
                .selectable_fields
                .iter()
                .position(|f| f == path)
                .and_then(|i| self.fields.get(i))
                .map(|v| &**v),
        }
    }

    /// The object key.
    pub fn key(&self) -> ObjKey {
        (self.namespace.clone(), self.name.clone())
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
    uids: HashMap<Box<str>, (Arc<str>, ObjKey)>,
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
        self.uids.remove(&s.uid);
        for o in s.owners.iter() {
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
        for o in s.owners.iter() {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert((res.clone(), s.key()));
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
            .get(&(Box::from(ns), Box::from(name)))
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
        for (res, m) in &self.inner.resources {
            let lo = (Box::from(ns), Box::from(""));
            for (k, _) in m.range((Bound::Included(lo), Bound::Unbounded)) {
                if &*k.0 != ns {
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

    /// Stores `obj` (already carrying resourceVersion `next_rv()`), emitting ADDED or MODIFIED.
    pub fn put(
        &mut self,
        d: &ResourceDescriptor,
        obj: &Value,
    ) -> Result<Arc<Stored>, serde_json::Error> {
        let rv = self.inner.rv + 1;
        let s = Arc::new(Stored::from_value(obj, d, rv)?);
        self.inner.rv = rv;
        self.wrote = true;
        let res = self.inner.intern(&d.storage_key());
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
        let s = Arc::new(Stored::from_value(obj, d, rv)?);
        let res = self.inner.intern(&d.storage_key());
        let Some(prev) = self
            .inner
            .resources
            .get_mut(&res)
            .and_then(|m| m.remove(&s.key()))
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
        let lower = match (after, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((Box::from(ns), Box::from(""))),
            (None, None) => Bound::Unbounded,
        };
        let mut out = vec![];
        for (k, v) in m.range((lower, Bound::Unbounded)) {
            if let Some(ns) = ns
                && &*k.0 != ns
            {
                if &*k.0 > ns {
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
        let lower = match (after, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((Box::from(ns), Box::from(""))),
            (None, None) => Bound::Unbounded,
        };
        let mut cur = now.range((lower.clone(), Bound::Unbounded)).peekable();
        let mut old = then.range((lower, Bound::Unbounded)).peekable();
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
                && &*key.0 != ns
            {
                if &*key.0 > ns {
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
}
