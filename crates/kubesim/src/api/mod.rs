//! The internal API layer: the simulated API server's request semantics,
//! callable in-process.
//!
//! [`Api`] is what the HTTP server, the controllers, the fake kubelet, the
//! eviction handler and tests call. It works on dynamic objects
//! (`serde_json::Value`) addressed by a [`ResourceDescriptor`], with typed
//! helpers for k8s-openapi and `kube::CustomResource` types
//! ([`Api::create_typed`], [`Api::get_typed`], …).
//!
//! Semantics follow `k8s.io/apiserver/pkg/registry/generic/registry/store.go`
//! and the per-kind strategies: one global resourceVersion, uid,
//! creationTimestamp, generateName, generation bumped on spec changes only,
//! status subresource split, optimistic concurrency (409), AlreadyExists,
//! NotFound, name validation, namespace existence, dryRun, graceful
//! deletion for pods, finalizers, delete preconditions and propagation
//! policies (the garbage collector is [`gc`]).
//!
//! Validators and patchers plugged in with [`Api::set_validator`] run under
//! the store lock and must not call back into the `Api`.

pub mod crd_schema;
pub mod defaults;
pub mod error;
pub mod events;
pub mod gc;
pub mod patching;
pub mod strict;
pub mod validation;

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
};

use chrono::{SecondsFormat, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::sync::watch;

pub use self::error::{ApiError, Cause, Result};
pub use self::patching::PatchKind;
use crate::{
    registry::{Registry, ResourceDescriptor, descriptors_from_crd},
    selector::{FieldSelector, LabelSelector},
    store::{EventType, Expired, ObjKey, Store, Stored, Txn},
};

/// Options of create / update / patch.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run every check, persist nothing.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force` (server-side apply).
    pub force: bool,
    /// The client's `User-Agent` (names the field manager of non-apply
    /// writes). When neither this nor `field_manager` is set (in-process
    /// callers), `managedFields` are not tracked for POST/PUT.
    pub user_agent: Option<String>,
    /// `fieldValidation` of an HTTP request. `None` (in-process callers,
    /// which write typed objects): built-in kinds are not checked for
    /// unknown fields; custom resources are still pruned.
    pub field_validation: Option<strict::FieldValidation>,
    /// Keys repeated within one object of the request body (paths).
    pub duplicate_fields: Vec<String>,
    /// Where `Warn` puts its warnings (the server sends them as headers).
    pub warnings: strict::Warnings,
    /// Admission webhooks' view into this write, set only by the admitted
    /// write methods of [`crate::admission`] (`None` otherwise).
    pub admission: Option<crate::admission::Intercept>,
}

impl WriteOptions {
    fn tracks_fields(&self) -> bool {
        self.field_manager.is_some() || self.user_agent.is_some()
    }
}

/// `propagationPolicy` of a DELETE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now, dependents in the background.
    Background,
    /// Keep the owner (finalizer `foregroundDeletion`) until blocking dependents are gone.
    Foreground,
    /// Keep dependents, removing their ownerReferences (finalizer `orphan`).
    Orphan,
}

/// Options of a DELETE (`metav1.DeleteOptions`).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy` (default Background).
    pub propagation: Option<Propagation>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `metav1.DeleteOptions` body (JSON).
    pub fn from_json(v: &Value) -> Result<Self> {
        let propagation = match v["propagationPolicy"].as_str() {
            None => match v["orphanDependents"].as_bool() {
                Some(true) => Some(Propagation::Orphan),
                Some(false) => Some(Propagation::Background),
                None => None,
            },
            Some(p) => Some(parse_propagation(p)?),
        };
        Ok(DeleteOptions {
            grace_period_seconds: v["gracePeriodSeconds"].as_i64(),
            propagation,
            precondition_uid: v["preconditions"]["uid"].as_str().map(String::from),
            precondition_resource_version: v["preconditions"]["resourceVersion"]
                .as_str()
                .map(String::from),
            dry_run: v["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "All")),
        })
    }
}

/// Parses a `propagationPolicy` value.
pub fn parse_propagation(p: &str) -> Result<Propagation> {
    match p {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(ApiError::bad_request(format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        ))),
    }
}

/// Result of a DELETE.
#[derive(Clone, Debug, PartialEq)]
pub enum DeleteOutcome {
    /// The object is gone; its last state.
    Deleted(Value),
    /// The object is still there (graceful deletion or finalizers), marked
    /// with `deletionTimestamp`.
    Pending(Value),
}

impl DeleteOutcome {
    /// The object carried either way.
    pub fn object(&self) -> &Value {
        match self {
            DeleteOutcome::Deleted(v) | DeleteOutcome::Pending(v) => v,
        }
    }
}

/// Options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
    /// `limit` (0 = no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (`Exact` | `NotOlderThan`).
    pub resource_version_match: Option<String>,
}

/// A list result (raw stored objects, in key order).
#[derive(Clone, Debug)]
pub struct ListResult {
    /// Matching objects.
    pub items: Vec<Arc<Stored>>,
    /// `metadata.resourceVersion` of the list.
    pub resource_version: u64,
    /// `metadata.continue` when more items follow.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount`: how many items follow this page, when
    /// it is limited and has no label or field selector (upstream's etcd
    /// store leaves it unset for selectors, whose count it cannot know).
    pub remaining_item_count: Option<u64>,
}

impl ListResult {
    /// Items parsed as JSON values.
    pub fn values(&self) -> Vec<Value> {
        self.items.iter().map(|s| s.value()).collect()
    }

    /// Items deserialized as `K`.
    pub fn typed<K: DeserializeOwned>(&self) -> Result<Vec<K>> {
        self.items
            .iter()
            .map(|s| {
                serde_json::from_slice(&s.json)
                    .map_err(|e| ApiError::internal(format!("failed to decode stored object: {e}")))
            })
            .collect()
    }
}

/// Options of a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
    /// `resourceVersion` (unset or "0": synthetic ADDED events for the current state first).
    pub resource_version: Option<String>,
    /// `sendInitialEvents=true`: initial ADDED events end with a BOOKMARK
    /// annotated `k8s.io/initial-events-end: "true"`.
    pub send_initial_events: bool,
}

/// One raw watch event.
#[derive(Clone, Debug)]
pub enum RawEvent {
    /// ADDED / MODIFIED / DELETED with the object.
    Object(EventType, Arc<Stored>),
    /// BOOKMARK at a resourceVersion; `initial_end` marks the end of initial events.
    Bookmark {
        /// resourceVersion.
        rv: u64,
        /// Whether this bookmark ends the initial events of `sendInitialEvents`.
        initial_end: bool,
    },
    /// ERROR (e.g. 410 Expired); the watch ends after it.
    Error(ApiError),
}

/// A parsed watch event for in-process consumers.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// Object added (or started matching the selector).
    Added(Value),
    /// Object modified.
    Modified(Value),
    /// Object deleted (or stopped matching the selector).
    Deleted(Value),
    /// Bookmark at a resourceVersion.
    Bookmark(u64),
    /// Error; the watch ends.
    Error(ApiError),
}

/// A running watch over one resource. Poll with [`Watch::next`] (cancel-safe).
pub struct Watch {
    store: Arc<Store>,
    desc: Arc<ResourceDescriptor>,
    resource: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    cursor: u64,
    pending: VecDeque<RawEvent>,
    rx: watch::Receiver<u64>,
    done: bool,
}

impl Watch {
    /// The descriptor watched.
    pub fn descriptor(&self) -> &Arc<ResourceDescriptor> {
        &self.desc
    }

    /// resourceVersion up to which events have been read from the history (some may still wait
    /// in the queue to be delivered).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The resourceVersion a BOOKMARK may carry now: the cursor once every event read up to it has
    /// been delivered; `None` while some still wait in the queue. A bookmark promises the client
    /// that it has seen everything up to its resourceVersion — a client resuming from it never
    /// gets the events in between again (`k8s.io/apiserver/pkg/storage/cacher`: the cacher sends a
    /// bookmark only between events, at the resourceVersion of the last one dispatched).
    pub fn bookmark_rv(&self) -> Option<u64> {
        self.pending.is_empty().then_some(self.cursor)
    }

    fn matches(&self, s: &Stored) -> bool {
        if let Some(ns) = &self.namespace
            && s.namespace() != &**ns
        {
            return false;
        }
        self.labels.matches_with(|k| s.label(k))
            && self.fields.matches_with(|f| s.field(&self.desc, f))
    }

    /// Next raw event; `None` when the watch has ended or the server shuts down.
    pub async fn next_raw(&mut self) -> Option<RawEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            self.rx.borrow_and_update();
            match self.store.events_after(Some(&self.resource), self.cursor) {
                Err(Expired { requested, floor }) => {
                    self.done = true;
                    return Some(RawEvent::Error(ApiError::expired(format!(
                        "too old resource version: {requested} ({floor})"
                    ))));
                }
                Ok((evs, upto)) => {
                    self.cursor = upto;
                    for e in evs {
                        let now = self.matches(&e.obj);
                        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
                        let out = match e.kind {
                            EventType::Added if now => Some(EventType::Added),
                            EventType::Modified => match (before, now) {
                                (true, true) => Some(EventType::Modified),
                                (false, true) => Some(EventType::Added),
                                (true, false) => Some(EventType::Deleted),
                                (false, false) => None,
                            },
                            EventType::Deleted if before || now => Some(EventType::Deleted),
                            _ => None,
                        };
                        if let Some(k) = out {
                            self.pending.push_back(RawEvent::Object(k, e.obj.clone()));
                        }
                    }
                    if self.pending.is_empty() && self.rx.changed().await.is_err() {
                        self.done = true;
                        return None;
                    }
                }
            }
        }
    }

    /// Next parsed event.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        Some(match self.next_raw().await? {
            RawEvent::Object(EventType::Added, s) => WatchEvent::Added(s.value()),
            RawEvent::Object(EventType::Modified, s) => WatchEvent::Modified(s.value()),
            RawEvent::Object(EventType::Deleted, s) => WatchEvent::Deleted(s.value()),
            RawEvent::Bookmark { rv, .. } => WatchEvent::Bookmark(rv),
            RawEvent::Error(e) => WatchEvent::Error(e),
        })
    }
}

/// A handler for a subresource served by another module (e.g. `pods/eviction`).
/// Receives the API, namespace, name, request body and query parameters
/// (e.g. `dryRun`); answers with an HTTP code and a body.
pub type SubresourceHandler = Arc<
    dyn Fn(
            Api,
            String,
            String,
            Value,
            HashMap<String, String>,
        ) -> Pin<Box<dyn Future<Output = Result<(u16, Value)>> + Send>>
        + Send
        + Sync,
>;

/// Validation of objects beyond object-meta (custom resource schemas, CEL).
/// Runs under the store lock: must not call the [`Api`].
pub trait ObjectValidator: Send + Sync {
    /// Validates (and may prune or default) `obj`; `old` is set on updates;
    /// `subresource` is `Some("status")` for status writes.
    fn validate(
        &self,
        d: &ResourceDescriptor,
        obj: &mut Value,
        old: Option<&Value>,
        subresource: Option<&str>,
    ) -> Result<()>;

    /// Drops the fields of `obj` its schema does not know (the decoder's
    /// pruning); returns their paths. Called once per HTTP write, before
    /// [`ObjectValidator::validate`].
    fn drop_unknown_fields(&self, d: &ResourceDescriptor, obj: &mut Value) -> Result<Vec<String>> {
        let _ = (d, obj);
        Ok(Vec::new())
    }
}

struct Inner {
    store: Arc<Store>,
    registry: Registry,
    hooks: RwLock<HashMap<(String, String), SubresourceHandler>>,
    validators: RwLock<Vec<Arc<dyn ObjectValidator>>>,
    next_cluster_ip: std::sync::atomic::AtomicU32,
    admission: crate::admission::Admission,
    controller_metrics: crate::server::ControllerMetrics,
}

/// The in-process API. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("store", &self.inner.store)
            .finish()
    }
}

/// `metav1.Time` for now (RFC 3339, seconds).
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn rfc3339_in(secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` suffix: 5 characters of `bcdfghjklmnpqrstvwxz2456789`
/// (`k8s.io/apiserver/pkg/storage/names/generate.go`).
fn random_suffix() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    b.iter()
        .take(5)
        .map(|x| ALPHANUMS[*x as usize % ALPHANUMS.len()] as char)
        .collect()
}

fn meta_str<'a>(obj: &'a Value, k: &str) -> Option<&'a str> {
    obj["metadata"][k].as_str().filter(|s| !s.is_empty())
}

/// Whether two objects differ anywhere but `metadata` and `status` (a custom
/// resource's generation moves on such a change, `customresource/strategy.go`),
/// compared in place rather than on stripped copies.
fn differs_outside_metadata_and_status(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let spec_like =
                |(k, _): &(&String, &Value)| k.as_str() != "metadata" && k.as_str() != "status";
            !x.iter().filter(spec_like).eq(y.iter().filter(spec_like))
        }
        _ => a != b,
    }
}

/// The object a status write stores: `old` without its status, with the
/// status of `obj` (the request), its `metadata.managedFields` when it has
/// them, and, for a pod (`pod_meta`), its labels, annotations and finalizers
/// (`ResetObjectMetaForStatus` and the pod status strategy's
/// `PrepareForUpdate`).
///
/// Built in `obj`, whose other parts are made equal to `old`'s where they
/// differ: a writer sends the object it read back with a new status, so the
/// rest is mostly compared, not copied.
fn status_write_object(mut obj: Value, old: &Value, pod_meta: bool) -> Value {
    let status = obj
        .as_object_mut()
        .and_then(|m| m.remove("status"))
        .filter(|s| !s.is_null());
    let meta = obj.get_mut("metadata").and_then(Value::as_object_mut);
    let managed = meta.as_ref().and_then(|m| m.get("managedFields")).is_some();
    let mut taken: Vec<(&str, Option<Value>)> = Vec::new();
    if let Some(m) = meta {
        if managed {
            taken.push(("managedFields", m.remove("managedFields")));
        }
        if pod_meta {
            for k in ["labels", "annotations", "finalizers"] {
                taken.push((k, m.remove(k)));
            }
        }
    } else if pod_meta {
        taken.extend([
            ("labels", None),
            ("annotations", None),
            ("finalizers", None),
        ]);
    }
    match (obj.as_object_mut(), old.as_object()) {
        (Some(dst), Some(src)) => make_equal_except_status(dst, src),
        (_, Some(src)) => {
            obj = Value::Object(
                src.iter()
                    .filter(|(k, _)| k.as_str() != "status")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
        }
        _ => obj = old.clone(),
    }
    if !taken.is_empty() {
        let m = meta_mut(&mut obj);
        for (k, v) in taken {
            match v {
                Some(v) => {
                    m.insert(k.into(), v);
                }
                None => {
                    m.remove(k);
                }
            }
        }
    }
    if let Some(st) = status
        && old.is_object()
        && let Some(m) = obj.as_object_mut()
    {
        m.insert("status".into(), st);
    }
    obj
}

/// Makes `dst` equal to `src` without `src`'s `status` (`dst` has none):
/// keys `src` lacks go, differing values are copied, `metadata` member by
/// member.
fn make_equal_except_status(
    dst: &mut serde_json::Map<String, Value>,
    src: &serde_json::Map<String, Value>,
) {
    dst.retain(|k, _| k != "status" && src.contains_key(k));
    for (k, v) in src {
        if k == "status" {
            continue;
        }
        match (dst.get_mut(k), v) {
            (Some(d), s) if d == s => {}
            (Some(Value::Object(d)), Value::Object(s)) if k == "metadata" => {
                d.retain(|k, _| s.contains_key(k));
                for (mk, mv) in s {
                    match d.get_mut(mk) {
                        Some(dv) if dv == mv => {}
                        Some(dv) => *dv = mv.clone(),
                        None => {
                            d.insert(mk.clone(), mv.clone());
                        }
                    }
                }
            }
            (Some(d), s) => *d = s.clone(),
            (None, s) => {
                dst.insert(k.clone(), s.clone());
            }
        }
    }
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    match &mut obj["metadata"] {
        Value::Object(m) => m,
        // metadata was made an object just above
        _ => unreachable!("metadata is an object"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(obj: &mut Value, f: &[String]) {
    let m = meta_mut(obj);
    if f.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(f));
    }
}

fn enc_err(e: serde_json::Error) -> ApiError {
    ApiError::internal(format!("failed to encode object: {e}"))
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The main resource (status kept from storage when a status subresource exists).
    Main,
    /// The `status` subresource (everything but status kept from storage).
    Status,
}

/// Finalizer added by foreground deletion.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Finalizer added by orphan deletion.
pub const ORPHAN_FINALIZER: &str = "orphan";

impl Api {
    /// A fresh API with the built-in kinds and the default namespaces
    /// (`default`, `kube-system`, `kube-public`, `kube-node-lease`).
    pub fn new(history_limit: usize) -> Self {
        let api = Api {
            inner: Arc::new(Inner {
                store: Arc::new(Store::new(history_limit)),
                registry: Registry::with_builtins(),
                hooks: RwLock::default(),
                validators: RwLock::default(),
                next_cluster_ip: std::sync::atomic::AtomicU32::new(1),
                admission: crate::admission::Admission::default(),
                controller_metrics: crate::server::ControllerMetrics::default(),
            }),
        };
        api.add_validator(Arc::new(crd_schema::CrdSchemaValidator::default()));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            // Creating a fixed, valid namespace in an empty store cannot fail.
            let _ = api.create_in(
                "",
                "v1",
                "namespaces",
                None,
                json!({"metadata": {"name": ns}}),
            );
        }
        api
    }

    /// The store (for `/metrics` and low-level access).
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The resource registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The admission webhooks' state (configuration cache, clients, metrics).
    pub fn admission(&self) -> &crate::admission::Admission {
        &self.inner.admission
    }

    /// The simulated controllers' metrics (their sync counts), served on `/metrics`.
    pub fn controller_metrics(&self) -> &crate::server::ControllerMetrics {
        &self.inner.controller_metrics
    }

    /// Resolves a resource by group, version and plural or fails with 404.
    pub fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceDescriptor>> {
        self.inner
            .registry
            .get(group, version, plural)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            })
    }

    /// Resolves the descriptor of a typed resource `K`.
    pub fn resource_of<K: kube::Resource<DynamicType = ()>>(
        &self,
    ) -> Result<Arc<ResourceDescriptor>> {
        self.resource(&K::group(&()), &K::version(&()), &K::plural(&()))
    }

    /// Registers a subresource handler (e.g. `("pods", "eviction")` by the
    /// eviction module). The HTTP layer routes `POST …/{plural}/{name}/{sub}` to it.
    pub fn register_subresource(&self, plural: &str, sub: &str, handler: SubresourceHandler) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((plural.to_string(), sub.to_string()), handler);
    }

    /// The handler of a registered subresource.
    pub fn subresource_handler(&self, plural: &str, sub: &str) -> Option<SubresourceHandler> {
        self.inner
            .hooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(plural.to_string(), sub.to_string()))
            .cloned()
    }

    /// Adds a validator run on every write (custom resource schemas, CEL).
    pub fn add_validator(&self, v: Arc<dyn ObjectValidator>) {
        self.inner
            .validators
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(v);
    }

    fn run_validators(
        &self,
        d: &ResourceDescriptor,
        obj: &mut Value,
        old: Option<&Value>,
        sub: Option<&str>,
    ) -> Result<()> {
        let vs = self
            .inner
            .validators
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for v in vs {
            v.validate(d, obj, old, sub)?;
        }
        Ok(())
    }

    /// The decoder's part of a write from HTTP: drops unknown fields and
    /// applies the request's `fieldValidation` to them and to the body's
    /// duplicate fields (see [`strict`]).
    fn decode_fields(
        &self,
        d: &ResourceDescriptor,
        obj: &mut Value,
        site: impl FnOnce() -> strict::Site,
        opts: &WriteOptions,
    ) -> Result<()> {
        let Some(fv) = opts.field_validation else {
            return Ok(());
        };
        let unknown = if d.crd_version.is_some() {
            let vs = self
                .inner
                .validators
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut all = Vec::new();
            for v in vs {
                all.extend(v.drop_unknown_fields(d, obj)?);
            }
            all
        } else {
            strict::drop_unknown_builtin(d, obj)
        };
        if fv == strict::FieldValidation::Ignore
            || (unknown.is_empty() && opts.duplicate_fields.is_empty())
        {
            return Ok(());
        }
        let issues: Vec<String> = strict::duplicate_issues(&opts.duplicate_fields)
            .chain(strict::unknown_issues(&unknown))
            .collect();
        if fv == strict::FieldValidation::Strict {
            return Err(site().strict_error(d, &issues));
        }
        opts.warnings.extend(issues);
        Ok(())
    }

    /// The decoder's check of a custom resource's `metadata` (see
    /// [`validation::object_meta_decode_error`]). Built-in kinds are
    /// written as typed objects in-process and decoded by their clients'
    /// own types; their metadata is not checked here.
    fn decode_meta(
        d: &ResourceDescriptor,
        obj: &Value,
        site: impl FnOnce() -> strict::Site,
    ) -> Result<()> {
        if d.crd_version.is_none() {
            return Ok(());
        }
        match validation::object_meta_decode_error(obj) {
            Some(e) => Err(site().decode_error(d, &e)),
            None => Ok(()),
        }
    }

    fn check_namespace(d: &ResourceDescriptor, ns: Option<&str>) -> Result<String> {
        match (d.namespaced, ns) {
            (true, Some(ns)) if !ns.is_empty() => Ok(ns.to_string()),
            (true, _) => Err(ApiError::bad_request(
                "the server could not find the requested resource",
            )
            .with_cause("", "namespace is required", "metadata.namespace")),
            (false, _) => Ok(String::new()),
        }
    }

    // ---------------------------------------------------------------- reads

    /// Gets one object.
    pub fn get(&self, d: &ResourceDescriptor, ns: Option<&str>, name: &str) -> Result<Value> {
        Ok(self.get_raw(d, ns, name)?.value())
    }

    /// Gets one stored object (serialized form).
    pub fn get_raw(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Arc<Stored>> {
        let ns = Self::check_namespace(d, ns)?;
        self.inner
            .store
            .read(|t| t.get(&d.storage_key(), &ns, name))
            .ok_or_else(|| ApiError::not_found_in(d, name))
    }

    /// Lists objects (all namespaces when `ns` is `None` for a namespaced resource).
    pub fn list(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListResult> {
        opts.field_selector
            .check_supported(&d.selectable_fields)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let ns = if d.namespaced {
            ns.filter(|n| !n.is_empty())
        } else {
            None
        };
        let rv_param = opts.resource_version.as_deref().filter(|s| !s.is_empty());
        if let Some(m) = opts
            .resource_version_match
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            if rv_param.is_none() {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if m != "Exact" && m != "NotOlderThan" {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
            if m == "Exact" && rv_param == Some("0") {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        let requested_rv = match rv_param {
            None => None,
            Some(s) => Some(s.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {s}")).with_cause(
                    "",
                    "",
                    "resourceVersion",
                )
            })?),
        };
        let exact = opts.resource_version_match.as_deref() == Some("Exact");
        let key = d.storage_key();
        let keep = |s: &Stored| {
            opts.label_selector.matches_with(|k| s.label(k))
                && opts.field_selector.matches_with(|f| s.field(d, f))
        };
        let (after, token_rv) = match opts.continue_token.as_deref().filter(|s| !s.is_empty()) {
            Some(tok) => {
                if rv_param.is_some_and(|r| r != "0") {
                    return Err(ApiError::bad_request(
                        "specifying resource version is not allowed when using continue",
                    ));
                }
                let (rv, k) = decode_continue(tok)?;
                (Some(k), Some(rv))
            }
            None => (None, None),
        };
        self.inner.store.read(|t| {
            let cur = t.current_rv();
            if let Some(trv) = token_rv
                && trv < t.floor()
            {
                return Err(ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."));
            }
            if let Some(r) = requested_rv
                && r > cur
            {
                return Err(ApiError::timeout(format!(
                    "Too large resource version: {r}, current: {cur}"
                ))
                .with_cause("ResourceVersionTooLarge", "Too large resource version", ""));
            }
            if exact && let Some(r) = requested_rv && r != cur {
                return self.list_exact(t, d, ns, r, opts, &keep);
            }
            // Continued pages are served at the first page's resourceVersion
            // (the token carries it), never at the current state.
            let list_rv = token_rv.unwrap_or(cur);
            let (items, more) = t.list_at(&key, ns, after.as_ref(), opts.limit, list_rv, keep);
            let remaining_item_count = match items.last() {
                Some(last) if more && opts.label_selector.is_empty() && opts.field_selector.is_empty() => {
                    let mut n = 0u64;
                    t.list_at(&key, ns, Some(&last.key()), 0, list_rv, |_| {
                        n += 1;
                        false
                    });
                    Some(n)
                }
                _ => None,
            };
            let continue_token = if more {
                items.last().map(|s| encode_continue(list_rv, &s.key()))
            } else {
                None
            };
            Ok(ListResult {
                items,
                resource_version: list_rv,
                continue_token,
                remaining_item_count,
            })
        })
    }

    /// A list at an exact past resourceVersion, rebuilt by undoing the
    /// history window's events (the watch cache's `Exact` semantic).
    fn list_exact(
        &self,
        t: &Txn<'_>,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        rv: u64,
        opts: &ListOptions,
        keep: &dyn Fn(&Stored) -> bool,
    ) -> Result<ListResult> {
        if rv < t.floor() {
            return Err(ApiError::expired(format!(
                "too old resource version: {rv} ({})",
                t.floor()
            )));
        }
        let key = d.storage_key();
        let (items, more) = t.list_at(&key, ns, None, opts.limit, rv, keep);
        let continue_token = if more {
            items.last().map(|s| encode_continue(rv, &s.key()))
        } else {
            None
        };
        Ok(ListResult {
            items,
            resource_version: rv,
            continue_token,
            remaining_item_count: None,
        })
    }

    /// Starts a watch.
    pub fn watch(
        &self,
        d: &Arc<ResourceDescriptor>,
        ns: Option<&str>,
        opts: &WatchOptions,
    ) -> Result<Watch> {
        opts.field_selector
            .check_supported(&d.selectable_fields)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let rv_param = opts.resource_version.as_deref().filter(|s| !s.is_empty());
        let from = match rv_param {
            None | Some("0") => None,
            Some(s) => Some(
                s.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
            ),
        };
        let ns = if d.namespaced {
            ns.filter(|n| !n.is_empty()).map(String::from)
        } else {
            None
        };
        let rx = self.inner.store.subscribe();
        let mut w = Watch {
            store: self.inner.store.clone(),
            desc: d.clone(),
            resource: d.storage_key(),
            namespace: ns,
            labels: opts.label_selector.clone(),
            fields: opts.field_selector.clone(),
            cursor: 0,
            pending: VecDeque::new(),
            rx,
            done: false,
        };
        match from {
            Some(rv) if !opts.send_initial_events => w.cursor = rv,
            _ => {
                let key = d.storage_key();
                let (items, cur) = self.inner.store.read(|t| {
                    let (items, _) = t.list(&key, w.namespace.as_deref(), None, 0, |s| {
                        w.labels.matches_with(|k| s.label(k))
                            && w.fields.matches_with(|f| s.field(d, f))
                    });
                    (items, t.current_rv())
                });
                w.cursor = cur;
                w.pending = items
                    .into_iter()
                    .map(|s| RawEvent::Object(EventType::Added, s))
                    .collect();
                if opts.send_initial_events {
                    w.pending.push_back(RawEvent::Bookmark {
                        rv: cur,
                        initial_end: true,
                    });
                }
            }
        }
        Ok(w)
    }

    // --------------------------------------------------------------- create

    fn create_in(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: Option<&str>,
        obj: Value,
    ) -> Result<Value> {
        let d = self.resource(group, version, plural)?;
        self.create(&d, ns, obj, &WriteOptions::default())
    }

    fn check_type(d: &ResourceDescriptor, obj: &mut Value) -> Result<()> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is unrecognized (must be of type object)",
            ));
        }
        let want_av = d.api_version();
        match obj["apiVersion"].as_str() {
            None | Some("") => obj["apiVersion"] = json!(want_av),
            Some(av) if av != want_av => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
            _ => {}
        }
        match obj["kind"].as_str() {
            None | Some("") => obj["kind"] = json!(d.kind),
            Some(k) if k != d.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    d.kind
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// Creates an object. For namespaced resources `ns` must be given (the
    /// object's own `metadata.namespace`, if set, must agree).
    pub fn create(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        self.create_inner(d, ns, obj, opts, true)
    }

    fn create_inner(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        track: bool,
    ) -> Result<Value> {
        Self::check_type(d, &mut obj)?;
        if track {
            Self::decode_meta(d, &obj, || strict::Site::Body)?;
            self.decode_fields(d, &mut obj, || strict::Site::Body, opts)?;
        }
        if track && opts.tracks_fields() {
            patching::track_update(d, None, &mut obj, Part::Main, opts);
        }
        let ns = match (d.namespaced, ns, meta_str(&obj, "namespace")) {
            (true, Some(u), Some(b)) if u != b && !u.is_empty() => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (true, Some(u), _) if !u.is_empty() => u.to_string(),
            (true, _, Some(b)) => b.to_string(),
            (true, _, None) => {
                return Err(ApiError::bad_request("namespace is required"));
            }
            (false, _, _) => String::new(),
        };
        // Mutating admission sees the object before generateName, defaults and validation.
        if let Some(a) = &opts.admission {
            if d.namespaced {
                meta_mut(&mut obj).insert("namespace".into(), json!(ns));
            }
            a.mutate(&mut obj, None)?;
        }
        {
            let m = meta_mut(&mut obj);
            if d.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            if m.get("name")
                .and_then(|n| n.as_str())
                .is_none_or(|n| n.is_empty())
            {
                match m.get("generateName").and_then(|g| g.as_str()) {
                    Some(g) if !g.is_empty() => {
                        let n = format!("{g}{}", random_suffix());
                        m.insert("name".into(), json!(n));
                    }
                    _ => {
                        let name = String::new();
                        return Err(ApiError::invalid(
                            d,
                            &name,
                            vec![Cause {
                                reason: "FieldValueRequired".into(),
                                message: "Required value: name or generateName is required".into(),
                                field: "metadata.name".into(),
                            }],
                        ));
                    }
                }
            }
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "generation",
            ] {
                m.remove(k);
            }
        }
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        defaults::apply_defaults(d, &mut obj);
        defaults::normalize_times(d, &mut obj)?;
        self.prepare_for_create(d, &mut obj);
        let mut causes = validation::validate_meta(d, &obj);
        causes.extend(validation::validate_kind(d, &obj, None));
        if !causes.is_empty() {
            return Err(ApiError::invalid(d, &name, causes));
        }
        self.run_validators(d, &mut obj, None, None)?;
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            if d.tracks_generation {
                m.insert("generation".into(), json!(1));
            }
        }
        if let Some(a) = &opts.admission {
            a.validate(&obj)?;
        }
        let key = d.storage_key();
        let out = self.inner.store.write(|t| -> Result<Value> {
            if d.namespaced {
                match t.get("namespaces", "", &ns) {
                    None => return Err(ApiError::not_found("", "namespaces", &ns)),
                    Some(n) if n.terminating => {
                        let mut e = ApiError::forbidden(
                            d,
                            &name,
                            &format!("unable to create new content in namespace {ns} because it is being terminated"),
                        );
                        e.details.causes.push(Cause {
                            reason: "NamespaceTerminating".into(),
                            message: format!("namespace {ns} is being terminated"),
                            field: "metadata.namespace".into(),
                        });
                        return Err(e);
                    }
                    _ => {}
                }
            }
            if t.get(&key, &ns, &name).is_some() {
                return Err(ApiError::already_exists(d, &name));
            }
            if opts.dry_run {
                return Ok(obj);
            }
            let rv = t.next_rv();
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
            t.put(d, &obj).map_err(enc_err)?;
            Ok(obj)
        })?;
        if d.group == "apiextensions.k8s.io"
            && d.plural == "customresourcedefinitions"
            && !opts.dry_run
        {
            self.sync_crd(&out);
        }
        if !opts.dry_run {
            self.inner.admission.note_write(d);
        }
        Ok(out)
    }

    /// Server-side create-time changes per kind (`PrepareForCreate`).
    fn prepare_for_create(&self, d: &ResourceDescriptor, obj: &mut Value) {
        match (d.group.as_str(), d.kind.as_str()) {
            ("", "Pod") => {
                let qos = validation::pod_qos_class(&obj["spec"]);
                obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            }
            ("", "Namespace") => {
                obj["status"] = json!({"phase": "Active"});
                if obj["spec"]["finalizers"].is_null() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                }
                let name = meta_str(obj, "name").unwrap_or_default().to_string();
                let m = meta_mut(obj);
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
            ("", "Service") => {
                // Allocation (`pkg/registry/core/service/storage`), not defaulting:
                // a cluster IP of the IPv4 family for every type but ExternalName.
                if obj["spec"]["type"] != "ExternalName" && obj["spec"]["clusterIP"].is_null() {
                    let n = self
                        .inner
                        .next_cluster_ip
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let ip = format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff);
                    obj["spec"]["clusterIP"] = json!(ip);
                    obj["spec"]["clusterIPs"] = json!([ip]);
                }
                if obj["spec"]["type"] != "ExternalName" {
                    if obj["spec"]["ipFamilyPolicy"].is_null() {
                        obj["spec"]["ipFamilyPolicy"] = json!("SingleStack");
                    }
                    if obj["spec"]["ipFamilies"].is_null() {
                        obj["spec"]["ipFamilies"] = json!(["IPv4"]);
                    }
                }
                obj["status"] = json!({"loadBalancer": {}});
            }
            ("apps", "StatefulSet") => {
                obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
            }
            ("apps", "Deployment") => obj["status"] = json!({}),
            ("policy", "PodDisruptionBudget") => {
                obj["status"] = json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0});
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                let now = now_rfc3339();
                let versions: Vec<Value> = obj["spec"]["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| v["storage"].as_bool() == Some(true))
                    .map(|v| v["name"].clone())
                    .collect();
                obj["status"] = json!({
                    "acceptedNames": obj["spec"]["names"].clone(),
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
                         "reason": "NoConflicts", "message": "no conflicts found"},
                        {"type": "Established", "status": "True", "lastTransitionTime": now,
                         "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
                    ],
                    "storedVersions": versions,
                });
            }
            _ => {
                if d.status_subresource
                    && d.crd_version.is_some()
                    && let Some(m) = obj.as_object_mut()
                {
                    m.remove("status");
                }
            }
        }
    }

    /// Registers the resources a CRD serves (called after the CRD is written).
    fn sync_crd(&self, crd: &Value) {
        let descs = descriptors_from_crd(crd);
        if let Some(first) = descs.first() {
            let (g, p) = (first.group.clone(), first.plural.clone());
            self.inner.registry.remove_resource(&g, &p);
        }
        for d in descs {
            self.inner.registry.add(d);
        }
    }

    // --------------------------------------------------------------- update

    /// PUT of the main resource.
    pub fn update(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        self.update_part(d, ns, name, obj, Part::Main, opts)
    }

    /// PUT of the `status` subresource.
    pub fn update_status(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        if !d.status_subresource {
            return Err(ApiError::not_found_in(d, name));
        }
        self.update_part(d, ns, name, obj, Part::Status, opts)
    }

    /// PUT of the main resource or of `status`.
    pub fn update_part(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Value> {
        Self::check_type(d, &mut obj)?;
        Self::decode_meta(d, &obj, || strict::Site::Body)?;
        self.decode_fields(d, &mut obj, || strict::Site::Body, opts)?;
        if let Some(n) = meta_str(&obj, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let ns = Self::check_namespace(d, ns)?;
        if d.namespaced
            && let Some(b) = meta_str(&obj, "namespace")
            && b != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let key = d.storage_key();
        self.inner.store.write(|t| {
            let old = t
                .get(&key, &ns, name)
                .ok_or_else(|| ApiError::not_found_in(d, name))?;
            match meta_str(&obj, "resourceVersion") {
                Some(rv) if rv != old.rv.to_string() => return Err(ApiError::stale(d, name)),
                None if !d.allow_unconditional_update => {
                    return Err(ApiError::invalid(
                        d,
                        name,
                        vec![Cause {
                            reason: "FieldValueInvalid".into(),
                            message: "Invalid value: 0: must be specified for an update".into(),
                            field: "metadata.resourceVersion".into(),
                        }],
                    ));
                }
                _ => {}
            }
            let mut obj = obj;
            let mut parsed = None;
            if opts.tracks_fields() {
                let live = parsed.insert(old.value());
                patching::track_update(d, Some(live), &mut obj, part, opts);
            }
            self.write_locked(t, d, &ns, name, &old, parsed, obj, part, opts)
        })
    }

    /// The shared tail of update, update_status and patch: merges the parts
    /// the write may not change, validates, bumps generation, detects no-ops,
    /// completes deletion when the last finalizer goes. `old` is `old_s`
    /// parsed, when the caller has it already (a large object costs as much
    /// to parse as the rest of the write).
    #[allow(clippy::too_many_arguments)]
    fn write_locked(
        &self,
        t: &mut Txn<'_>,
        d: &ResourceDescriptor,
        ns: &str,
        name: &str,
        old_s: &Stored,
        old: Option<Value>,
        mut obj: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Value> {
        if let Some(a) = &opts.admission {
            a.mutate(&mut obj, Some(old_s))?;
        }
        let old = old.unwrap_or_else(|| old_s.value());
        if let Some(u) = meta_str(&obj, "uid")
            && u != old_s.uid()
        {
            return Err(ApiError::conflict(
                d,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {u}, UID in object meta: {}",
                    old_s.uid()
                ),
            ));
        }
        match part {
            Part::Status => {
                // ResetObjectMetaForStatus + status strategies: only status
                // (and, for pods, metadata other than the protected fields) changes.
                obj = status_write_object(obj, &old, d.group.is_empty() && d.kind == "Pod");
            }
            Part::Main => {
                if d.status_subresource {
                    match old.get("status") {
                        Some(s) => obj["status"] = s.clone(),
                        None => {
                            if let Some(m) = obj.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                let om = &old["metadata"];
                let m = meta_mut(&mut obj);
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "namespace",
                    "name",
                ] {
                    match om.get(k) {
                        Some(v) => {
                            m.insert(k.into(), v.clone());
                        }
                        None => {
                            m.remove(k);
                        }
                    }
                }
                m.remove("selfLink");
                if !d.namespaced {
                    m.remove("namespace");
                }
                defaults::apply_defaults(d, &mut obj);
            }
        }
        defaults::normalize_times(d, &mut obj)?;
        // Finalizers may not be added to an object being deleted.
        if old_s.terminating {
            let of = finalizers(&old);
            let nf = finalizers(&obj);
            if nf.iter().any(|f| !of.contains(f)) {
                return Err(ApiError::invalid(
                    d,
                    name,
                    vec![Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: no new finalizers can be added if the object is being deleted".into(),
                        field: "metadata.finalizers".into(),
                    }],
                ));
            }
        }
        let mut causes = validation::validate_meta(d, &obj);
        if part == Part::Main {
            causes.extend(validation::validate_kind(d, &obj, Some(&old)));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(d, name, causes));
        }
        self.run_validators(
            d,
            &mut obj,
            Some(&old),
            (part == Part::Status).then_some("status"),
        )?;
        if d.tracks_generation && part == Part::Main {
            let changed = if d.crd_version.is_some() {
                differs_outside_metadata_and_status(&obj, &old)
            } else {
                obj.get("spec") != old.get("spec")
            };
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            meta_mut(&mut obj).insert("generation".into(), json!(if changed { g + 1 } else { g }));
        }
        if let Some(a) = &opts.admission {
            a.validate(&obj)?;
        }
        // A write that changes nothing is a no-op: no new resourceVersion, no event.
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(old_s.rv.to_string()));
        if obj == old {
            return Ok(old);
        }
        if opts.dry_run {
            return Ok(obj);
        }
        let rv = t.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let grace_zero = old["metadata"]["deletionGracePeriodSeconds"].as_i64() == Some(0);
        if old_s.terminating && finalizers(&obj).is_empty() && grace_zero {
            t.remove(d, &obj).map_err(enc_err)?;
            let _ = (ns, name);
        } else {
            t.put(d, &obj).map_err(enc_err)?;
        }
        self.inner.admission.note_write(d);
        Ok(obj)
    }

    // ---------------------------------------------------------------- patch

    /// PATCH of the main resource or of `status`. Server-side apply creates
    /// the object when absent.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Value> {
        if part == Part::Status && !d.status_subresource {
            return Err(ApiError::not_found_in(d, name));
        }
        if kind == PatchKind::Apply && opts.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        if kind == PatchKind::Apply && d.crd_version.is_none() && opts.field_validation.is_some() {
            // The field manager converts the configuration to the kind's
            // type first: an undeclared field fails the apply whatever the
            // fieldValidation (`structuredmerge.go`: "failed to create typed
            // patch object"). Simplification: list items are named by index,
            // not by their merge key.
            let mut cfg =
                crate::patch::decode_apply_body(body).map_err(patching::from_patch_error)?;
            let unknown = strict::drop_unknown_builtin(d, &mut cfg);
            if !unknown.is_empty() {
                return Err(patching::from_patch_error(
                    crate::patch::PatchError::Internal(strict::undeclared_fields_message(
                        d, &cfg, &unknown,
                    )),
                ));
            }
        }
        let ns_s = Self::check_namespace(d, ns)?;
        let key = d.storage_key();
        let existing = self.inner.store.read(|t| t.get(&key, &ns_s, name));
        if existing.is_none() {
            if kind == PatchKind::Apply && part == Part::Main {
                let mut obj = patching::patch_object(d, None, kind, body, part, opts)?;
                if let Some(n) = meta_str(&obj, "name")
                    && n != name
                {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                meta_mut(&mut obj).insert("name".into(), json!(name));
                return self.create_inner(d, ns, obj, opts, false);
            }
            return Err(ApiError::not_found_in(d, name));
        }
        self.inner.store.write(|t| {
            let old = t
                .get(&key, &ns_s, name)
                .ok_or_else(|| ApiError::not_found_in(d, name))?;
            let current = old.value();
            let mut patched = patching::patch_object(d, Some(&current), kind, body, part, opts)?;
            match kind {
                PatchKind::Apply => {}
                PatchKind::Strategic => self.decode_fields(
                    d,
                    &mut patched,
                    || {
                        let p: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                        strict::Site::StrategicPatch(strict::go_format(&p))
                    },
                    opts,
                )?,
                PatchKind::Merge | PatchKind::Json => {
                    Self::decode_meta(d, &patched, || {
                        strict::Site::JsonPatch(patched.to_string())
                    })?;
                    // The patched object as sent, for a strict error's text
                    // only (serialized only when the request is strict).
                    let text = (opts.field_validation == Some(strict::FieldValidation::Strict))
                        .then(|| patched.to_string());
                    self.decode_fields(
                        d,
                        &mut patched,
                        || strict::Site::JsonPatch(text.unwrap_or_default()),
                        opts,
                    )?
                }
            }
            let rv_in_patch = meta_str(&patched, "resourceVersion").map(String::from);
            if let Some(rv) = rv_in_patch
                && rv != old.rv.to_string()
            {
                return Err(ApiError::stale(d, name));
            }
            self.write_locked(t, d, &ns_s, name, &old, Some(current), patched, part, opts)
        })
    }

    // --------------------------------------------------------------- delete

    /// DELETE with grace period, preconditions and propagation policy.
    pub fn delete(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome> {
        let ns = Self::check_namespace(d, ns)?;
        let key = d.storage_key();
        let out = self.inner.store.write(|t| -> Result<DeleteOutcome> {
            let old_s = t
                .get(&key, &ns, name)
                .ok_or_else(|| ApiError::not_found_in(d, name))?;
            if let Some(u) = &opts.precondition_uid
                && **u != *old_s.uid()
            {
                return Err(ApiError::conflict(d, name, &format!("Precondition failed: UID in precondition: {u}, UID in object meta: {}", old_s.uid())));
            }
            if let Some(rv) = &opts.precondition_resource_version
                && *rv != old_s.rv.to_string()
            {
                return Err(ApiError::conflict(d, name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", old_s.rv)));
            }
            let mut obj = old_s.value();
            let policy = opts.propagation.unwrap_or(Propagation::Background);
            let mut fins = finalizers(&obj);
            let mut want_fin = |f: &str| {
                if !fins.iter().any(|x| x == f) {
                    fins.push(f.to_string());
                }
            };
            let has_dependents = !t.dependents_of(old_s.uid()).is_empty();
            match policy {
                Propagation::Foreground if has_dependents || !old_s.terminating => want_fin(FOREGROUND_FINALIZER),
                Propagation::Orphan => want_fin(ORPHAN_FINALIZER),
                _ => {}
            }
            // Namespaces are finalized by the namespace controller (gc module).
            let is_namespace = d.group.is_empty() && d.kind == "Namespace";
            // Graceful deletion (podStrategy.CheckGracefulDelete).
            let mut grace: i64 = 0;
            if d.graceful_delete {
                grace = opts
                    .grace_period_seconds
                    .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
                    .unwrap_or(30);
                let phase = obj["status"]["phase"].as_str().unwrap_or_default();
                if obj["spec"]["nodeName"].as_str().unwrap_or_default().is_empty()
                    || phase == "Failed"
                    || phase == "Succeeded"
                {
                    grace = 0;
                }
                if grace < 0 {
                    grace = 1;
                }
            }
            if old_s.terminating {
                // Deletion already in progress: only a shorter grace period changes anything.
                let cur = obj["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
                let fin_added = fins.len() != finalizers(&obj).len();
                if (grace >= cur || !d.graceful_delete) && !fin_added {
                    return Ok(DeleteOutcome::Pending(obj));
                }
                if grace < cur {
                    let m = meta_mut(&mut obj);
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    m.insert("deletionTimestamp".into(), json!(rfc3339_in(grace)));
                }
            }
            let keep = grace > 0 || !fins.is_empty() || is_namespace;
            if opts.dry_run {
                return Ok(if keep { DeleteOutcome::Pending(obj) } else { DeleteOutcome::Deleted(obj) });
            }
            let rv = t.next_rv();
            if keep {
                set_finalizers(&mut obj, &fins);
                let m = meta_mut(&mut obj);
                if !old_s.terminating {
                    m.insert("deletionTimestamp".into(), json!(rfc3339_in(grace)));
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                m.insert("resourceVersion".into(), json!(rv.to_string()));
                if is_namespace {
                    obj["status"]["phase"] = json!("Terminating");
                }
                if !fins.is_empty() || grace > 0 || is_namespace {
                    t.put(d, &obj).map_err(enc_err)?;
                    return Ok(DeleteOutcome::Pending(obj));
                }
            }
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
            t.remove(d, &obj).map_err(enc_err)?;
            Ok(DeleteOutcome::Deleted(obj))
        })?;
        if let DeleteOutcome::Deleted(o) = &out
            && d.group == "apiextensions.k8s.io"
            && d.plural == "customresourcedefinitions"
            && !opts.dry_run
        {
            self.drop_crd(o);
        }
        if !opts.dry_run {
            self.inner.admission.note_write(d);
        }
        Ok(out)
    }

    /// Removes a CRD's resources and their objects.
    fn drop_crd(&self, crd: &Value) {
        let g = crd["spec"]["group"].as_str().unwrap_or_default();
        let p = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        self.inner.registry.remove_resource(g, p);
        let key = crate::registry::storage_key(g, p);
        self.inner.store.write(|t| t.drop_resource(&key));
    }

    /// The finalizer-removal write used by the garbage collector and the
    /// kubelet: removes `finalizer` (completing deletion when it was the last one).
    pub fn remove_finalizer(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        finalizer: &str,
    ) -> Result<()> {
        let ns = Self::check_namespace(d, ns)?;
        let key = d.storage_key();
        self.inner.store.write(|t| {
            let Some(old) = t.get(&key, &ns, name) else {
                return Ok(());
            };
            let mut obj = old.value();
            let mut f = finalizers(&obj);
            let before = f.len();
            f.retain(|x| x != finalizer);
            if f.len() == before {
                return Ok(());
            }
            set_finalizers(&mut obj, &f);
            self.write_locked(
                t,
                d,
                &ns,
                name,
                &old,
                None,
                obj,
                Part::Main,
                &WriteOptions::default(),
            )
            .map(|_| ())
        })
    }

    // ---------------------------------------------------------------- typed

    /// Creates a typed object.
    pub fn create_typed<K>(&self, ns: Option<&str>, obj: &K) -> Result<K>
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        from_value(self.create(&d, ns, to_value(obj)?, &WriteOptions::default())?)
    }

    /// Gets a typed object.
    pub fn get_typed<K>(&self, ns: Option<&str>, name: &str) -> Result<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        let s = self.get_raw(&d, ns, name)?;
        serde_json::from_slice(&s.json)
            .map_err(|e| ApiError::internal(format!("failed to decode stored object: {e}")))
    }

    /// Lists typed objects.
    pub fn list_typed<K>(&self, ns: Option<&str>, opts: &ListOptions) -> Result<Vec<K>>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        self.list(&d, ns, opts)?.typed()
    }

    /// Replaces a typed object (PUT).
    pub fn update_typed<K>(&self, ns: Option<&str>, obj: &K) -> Result<K>
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        let v = to_value(obj)?;
        let name = meta_str(&v, "name").unwrap_or_default().to_string();
        from_value(self.update(&d, ns, &name, v, &WriteOptions::default())?)
    }

    /// Replaces a typed object's status (PUT …/status).
    pub fn update_status_typed<K>(&self, ns: Option<&str>, obj: &K) -> Result<K>
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        let v = to_value(obj)?;
        let name = meta_str(&v, "name").unwrap_or_default().to_string();
        from_value(self.update_status(&d, ns, &name, v, &WriteOptions::default())?)
    }

    /// JSON-merge-patches a typed object.
    pub fn merge_patch_typed<K>(
        &self,
        ns: Option<&str>,
        name: &str,
        patch: &Value,
        part: Part,
    ) -> Result<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        let body = serde_json::to_vec(patch).map_err(enc_err)?;
        from_value(self.patch(
            &d,
            ns,
            name,
            PatchKind::Merge,
            &body,
            part,
            &WriteOptions::default(),
        )?)
    }

    /// Deletes a typed object.
    pub fn delete_typed<K>(
        &self,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome>
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let d = self.resource_of::<K>()?;
        self.delete(&d, ns, name, opts)
    }

    /// Watches a typed resource.
    pub fn watch_typed<K>(&self, ns: Option<&str>, opts: &WatchOptions) -> Result<Watch>
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let d = self.resource_of::<K>()?;
        self.watch(&d, ns, opts)
    }
}

/// A typed object as a `Value` (an encoding failure is a 500).
pub(crate) fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(enc_err)
}

/// A `Value` as a typed object (a decoding failure is a 500).
pub(crate) fn from_value<T: DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| ApiError::internal(format!("failed to decode object: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let j = json!({"v": "meta.k8s.io/v1", "rv": rv, "ns": key.namespace(), "name": key.name()});
    hex(j.to_string().as_bytes())
}

fn decode_continue(tok: &str) -> Result<(u64, ObjKey)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {tok}"));
    let bytes = unhex(tok).ok_or_else(bad)?;
    let j: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = j["rv"].as_u64().ok_or_else(bad)?;
    let ns = j["ns"].as_str().ok_or_else(bad)?;
    let name = j["name"].as_str().ok_or_else(bad)?;
    Ok((rv, ObjKey::new(ns, name)))
}

#[cfg(test)]
mod tests;
