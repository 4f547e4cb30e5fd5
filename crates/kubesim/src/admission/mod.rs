//! Admission webhooks: `MutatingWebhookConfiguration` and
//! `ValidatingWebhookConfiguration` take effect on every admitted write.
//!
//! Upstream: `staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/`
//! (see [`dispatch`]). The order of a write is upstream's: the request's
//! object → mutating webhooks (in configuration-name order, JSONPatch
//! responses applied, `reinvocationPolicy: IfNeeded` honoured) → defaulting,
//! the kind's strategy and schema/CEL validation (the [`Api`]'s write path)
//! → validating webhooks (in parallel) → storage.
//!
//! # How the synchronous write path is admitted
//!
//! [`Api`]'s writes run under the store lock and cannot wait on an HTTPS
//! call. The admitted write methods here ([`Api::admit_create`],
//! [`Api::admit_update`], [`Api::admit_patch`], [`Api::admit_delete`], their
//! typed forms, [`Api::admit_object`] for `pods/eviction` and `*/scale`)
//! therefore run the synchronous write up to three times with an
//! [`Intercept`] in its [`WriteOptions`]: (1) as a dry run stopped where
//! mutating admission sits, capturing the request's object and the stored
//! one; then the mutating webhooks run; (2) as a dry run with the mutated
//! object, stopped where validating admission sits, capturing the object
//! as it would be stored; then the validating webhooks run; (3) for real
//! with the mutated object, provided the stored object has not changed
//! since (1) — otherwise the whole sequence starts again, as upstream's
//! `GuaranteedUpdate` re-runs admission on a conflict. Rounds that no
//! webhook needs are skipped, and without a configuration whose rules match
//! the request the write runs once, unchanged: with no configuration at all
//! the cost is one atomic load and a read lock.
//!
//! The HTTP server and the in-process controllers (the StatefulSet
//! controller's pod, claim and revision writes) both write through these
//! methods, so a webhook sees the pods a StatefulSet creates, as on a real
//! cluster where controllers write through kube-apiserver.
//!
//! Configurations are read from the store and compiled once per change
//! (the write path bumps a generation on every write to them).

pub mod client;
pub mod config;
pub mod dispatch;

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

pub use self::dispatch::{Attributes, Operation};
use self::{
    config::{HookType, Webhook},
    dispatch::{rule_candidates, run_mutating, run_validating},
};
use crate::{
    api::{
        Api, ApiError, DeleteOptions, DeleteOutcome, ListOptions, Part, PatchKind, Result,
        WriteOptions, from_value, strict::Warnings, to_value,
    },
    auth::UserInfo,
    registry::ResourceDescriptor,
    store::Stored,
};

/// Where the write path hands an admitted write to admission.
pub enum Point<'a> {
    /// The object as the request makes it (namespace set, before
    /// `generateName`, defaults and validation), and the stored object.
    Mutate {
        /// The request's object (may be replaced).
        obj: &'a mut Value,
        /// The stored object (updates).
        old: Option<&'a Stored>,
    },
    /// The object as it would be stored.
    Validate {
        /// The object.
        obj: &'a Value,
    },
}

type InterceptFn = dyn Fn(Point<'_>) -> Result<()> + Send + Sync;

/// A write's hook into admission (see the module docs). Set in
/// [`WriteOptions::admission`] only by the admitted write methods.
#[derive(Clone)]
pub struct Intercept(Arc<InterceptFn>);

impl std::fmt::Debug for Intercept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intercept")
    }
}

impl Intercept {
    fn new(f: impl Fn(Point<'_>) -> Result<()> + Send + Sync + 'static) -> Self {
        Intercept(Arc::new(f))
    }

    /// Called by the write path where mutating admission runs.
    pub(crate) fn mutate(&self, obj: &mut Value, old: Option<&Stored>) -> Result<()> {
        (self.0)(Point::Mutate { obj, old })
    }

    /// Called by the write path where validating admission runs.
    pub(crate) fn validate(&self, obj: &Value) -> Result<()> {
        (self.0)(Point::Validate { obj })
    }
}

/// Reason of the internal error that stops a capturing round (never returned to callers).
const CAPTURED: &str = "kubesim.admission/Captured";
/// Reason of the internal error that restarts admission (the object changed in between).
const RETRY: &str = "kubesim.admission/Retry";
/// Attempts before an admitted write gives up with a conflict.
const MAX_ATTEMPTS: usize = 8;

fn signal(reason: &str) -> ApiError {
    ApiError::new(500, reason, "admission round stopped")
}

/// The compiled webhooks, in call order.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Mutating webhooks (configurations sorted by name, webhooks in order).
    pub mutating: Vec<Webhook>,
    /// Validating webhooks.
    pub validating: Vec<Webhook>,
}

impl Hooks {
    fn is_empty(&self) -> bool {
        self.mutating.is_empty() && self.validating.is_empty()
    }
}

/// Labels of `apiserver_admission_webhook_admission_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    name: String,
    r#type: String,
    operation: String,
    rejected: String,
}

/// Labels of `apiserver_admission_webhook_rejection_count`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    name: String,
    r#type: String,
    operation: String,
    error_type: String,
    rejection_code: String,
}

/// The admission metrics (upstream `staging/src/k8s.io/apiserver/pkg/admission/metrics/metrics.go`).
pub struct AdmissionMetrics {
    registry: Registry,
    duration: Family<DurationLabels, Histogram>,
    rejections: Family<RejectionLabels, Gauge<i64, AtomicI64>>,
}

impl std::fmt::Debug for AdmissionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionMetrics").finish_non_exhaustive()
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new([0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0, 25.0])
}

impl Default for AdmissionMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let duration = Family::<DurationLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let rejections = Family::<RejectionLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "apiserver_admission_webhook_admission_duration_seconds",
            "Admission webhook latency histogram in seconds, identified by name and broken out for each operation and API resource and type (validate or admit).",
            duration.clone(),
        );
        // Upstream's counter has no `_total` suffix; prometheus-client adds
        // one to counters, so the series is exposed as a gauge that only grows.
        registry.register(
            "apiserver_admission_webhook_rejection_count",
            "Admission webhook rejection count, identified by name and broken out for each admission type (validating or admit) and operation. Additional labels specify an error type (calling_webhook_error or apiserver_internal_error if an error occurred; no_error otherwise) and optionally a non-zero rejection code if the webhook rejects the request with an HTTP status code (honored by the apiserver when the code is greater or equal to 400). Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded.",
            rejections.clone(),
        );
        AdmissionMetrics {
            registry,
            duration,
            rejections,
        }
    }
}

impl AdmissionMetrics {
    /// Records one webhook call; `rejection` is (error type, code) when it rejected.
    fn observe(
        &self,
        h: &Webhook,
        operation: &str,
        rejected: bool,
        took: Duration,
        rejection: Option<(&str, i64)>,
    ) {
        let type_ = h.hook_type.metric_label().to_owned();
        self.duration
            .get_or_create(&DurationLabels {
                name: h.name.clone(),
                r#type: type_.clone(),
                operation: operation.to_owned(),
                rejected: rejected.to_string(),
            })
            .observe(took.as_secs_f64());
        if let Some((error_type, code)) = rejection {
            self.rejections
                .get_or_create(&RejectionLabels {
                    name: h.name.clone(),
                    r#type: type_,
                    operation: operation.to_owned(),
                    error_type: error_type.to_owned(),
                    rejection_code: code.min(600).to_string(),
                })
                .inc();
        }
    }

    /// The metrics' registry (the server appends it to `/metrics`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Admission state held by the [`Api`]: the compiled configurations, the
/// webhook clients and the metrics.
#[derive(Debug, Default)]
pub struct Admission {
    generation: AtomicU64,
    cache: RwLock<Option<(u64, Arc<Hooks>)>>,
    clients: client::Clients,
    metrics: AdmissionMetrics,
}

impl Admission {
    /// Called by the write path after every committed write: a write to a
    /// webhook configuration invalidates the compiled hooks.
    pub(crate) fn note_write(&self, d: &ResourceDescriptor) {
        if d.group == config::GROUP {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &AdmissionMetrics {
        &self.metrics
    }

    /// The compiled webhooks, rebuilt from the store after a configuration changed.
    pub fn hooks(&self, api: &Api) -> Arc<Hooks> {
        let g = self.generation.load(Ordering::Acquire);
        if let Some((cg, h)) = &*self.cache.read().unwrap_or_else(|e| e.into_inner())
            && *cg == g
        {
            return h.clone();
        }
        let mut hooks = Hooks::default();
        for (plural, t) in [
            ("mutatingwebhookconfigurations", HookType::Mutating),
            ("validatingwebhookconfigurations", HookType::Validating),
        ] {
            let Ok(d) = api.resource(config::GROUP, "v1", plural) else {
                continue;
            };
            let Ok(l) = api.list(&d, None, &ListOptions::default()) else {
                continue;
            };
            let mut configs = l.values();
            configs.sort_by(|a, b| {
                a["metadata"]["name"]
                    .as_str()
                    .cmp(&b["metadata"]["name"].as_str())
            });
            let list = match t {
                HookType::Mutating => &mut hooks.mutating,
                HookType::Validating => &mut hooks.validating,
            };
            for c in &configs {
                list.extend(config::compile(c, t));
            }
        }
        let hooks = Arc::new(hooks);
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Some((g, hooks.clone()));
        hooks
    }
}

/// What the capturing rounds saw.
#[derive(Default)]
struct Captured {
    object: Option<Value>,
    old: Option<(Value, u64)>,
    stored: Option<Value>,
}

fn lock(c: &Mutex<Captured>) -> std::sync::MutexGuard<'_, Captured> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

/// A round that only captures: stops at the mutating point when
/// `stop_at_mutate`, else at the validating point.
fn capture(opts: &WriteOptions, slot: Arc<Mutex<Captured>>, stop_at_mutate: bool) -> WriteOptions {
    WriteOptions {
        dry_run: true,
        warnings: Warnings::default(),
        admission: Some(Intercept::new(move |p| match p {
            Point::Mutate { obj, old } => {
                let mut c = lock(&slot);
                c.object = Some(obj.clone());
                c.old = old.map(|s| (s.value(), s.rv));
                if stop_at_mutate {
                    Err(signal(CAPTURED))
                } else {
                    Ok(())
                }
            }
            Point::Validate { obj } => {
                lock(&slot).stored = Some(obj.clone());
                Err(signal(CAPTURED))
            }
        })),
        ..opts.clone()
    }
}

/// A round that writes `replacement` (when set) in place of the request's
/// object, provided the stored object is still at `expected_rv`; with
/// `slot`, a dry run stopped at the validating point.
fn replay(
    opts: &WriteOptions,
    replacement: Option<Value>,
    expected_rv: Option<u64>,
    pin_name: Option<String>,
    slot: Option<Arc<Mutex<Captured>>>,
) -> WriteOptions {
    let dry_run = opts.dry_run || slot.is_some();
    let warnings = if slot.is_some() {
        Warnings::default()
    } else {
        opts.warnings.clone()
    };
    WriteOptions {
        dry_run,
        warnings,
        admission: Some(Intercept::new(move |p| match p {
            Point::Mutate { obj, old } => {
                if old.map(|s| s.rv) != expected_rv {
                    return Err(signal(RETRY));
                }
                if let Some(r) = &replacement {
                    *obj = r.clone();
                }
                if let Some(n) = &pin_name
                    && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    m.insert("name".into(), Value::String(n.clone()));
                }
                Ok(())
            }
            Point::Validate { obj } => match &slot {
                Some(s) => {
                    lock(s).stored = Some(obj.clone());
                    Err(signal(CAPTURED))
                }
                None => Ok(()),
            },
        })),
        ..opts.clone()
    }
}

/// The request an admitted write makes.
struct Target<'a> {
    d: &'a ResourceDescriptor,
    ns: Option<&'a str>,
    name: Option<&'a str>,
    sub: &'a str,
    ops: &'a [Operation],
}

fn conflict(d: &ResourceDescriptor, name: &str) -> ApiError {
    ApiError::conflict(
        d,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// The user of in-process writes of the controllers (upstream's
/// kube-controller-manager with `--use-service-account-credentials`).
pub fn controller_user(controller: &str) -> UserInfo {
    UserInfo::service_account("kube-system", controller)
}

impl Api {
    /// Runs an admitted write (see the module docs); `run` is the
    /// synchronous write of `body` (moved, not copied, when no webhook applies).
    async fn admitted<B: Clone>(
        &self,
        t: Target<'_>,
        body: B,
        opts: &WriteOptions,
        user: &UserInfo,
        run: impl Fn(B, &WriteOptions) -> Result<Value>,
    ) -> Result<Value> {
        let adm = self.admission();
        let hooks = adm.hooks(self);
        if hooks.is_empty() {
            return run(body, opts);
        }
        let mutating = rule_candidates(&hooks.mutating, t.ops, t.d, t.sub);
        let validating = rule_candidates(&hooks.validating, t.ops, t.d, t.sub);
        if mutating.is_empty() && validating.is_empty() {
            return run(body, opts);
        }
        for _ in 0..MAX_ATTEMPTS {
            // (1) capture the request's object and the stored one.
            let slot = Arc::new(Mutex::new(Captured::default()));
            match run(
                body.clone(),
                &capture(opts, slot.clone(), !mutating.is_empty()),
            ) {
                Err(e) if e.reason == CAPTURED => {}
                Err(e) => return Err(e),
                // The write never reached admission (nothing to admit).
                Ok(_) => return run(body, opts),
            }
            let Captured {
                object,
                old,
                stored,
            } = std::mem::take(&mut *lock(&slot));
            let Some(object) = object else {
                return run(body, opts);
            };
            let (old_object, expected_rv) = match old {
                Some((v, rv)) => (Some(v), Some(rv)),
                None => (None, None),
            };
            let operation = if old_object.is_some() {
                Operation::Update
            } else {
                Operation::Create
            };
            if operation == Operation::Create && t.d.namespaced && !self.namespace_accepts(&object)
            {
                // NamespaceLifecycle runs before the webhooks: the write's
                // own NotFound / Forbidden (terminating) is the answer.
                return run(body, opts);
            }
            let name = object["metadata"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(t.name)
                .unwrap_or_default()
                .to_owned();
            let namespace = if t.d.namespaced {
                object["metadata"]["namespace"]
                    .as_str()
                    .or(t.ns)
                    .unwrap_or_default()
                    .to_owned()
            } else {
                String::new()
            };
            let mut attrs = Attributes {
                d: t.d,
                subresource: t.sub,
                kind: (t.d.group.clone(), t.d.version.clone(), t.d.kind.clone()),
                namespace,
                name,
                operation,
                object: Some(object),
                old_object,
                dry_run: opts.dry_run,
                user,
                field_manager: opts.field_manager.clone(),
            };
            let mut stored = stored;
            let mut replacement = None;
            if !mutating.is_empty() {
                run_mutating(self, adm, &mutating, &mut attrs, &opts.warnings).await?;
                replacement = attrs.object.clone();
                if !validating.is_empty() {
                    // (2) the object as it would be stored.
                    let slot = Arc::new(Mutex::new(Captured::default()));
                    let o = replay(
                        opts,
                        replacement.clone(),
                        expected_rv,
                        None,
                        Some(slot.clone()),
                    );
                    match run(body.clone(), &o) {
                        Err(e) if e.reason == CAPTURED => stored = lock(&slot).stored.take(),
                        Err(e) if e.reason == RETRY => continue,
                        Err(e) => return Err(e),
                        Ok(_) => {
                            return Err(ApiError::internal(
                                "admission: the write skipped validation",
                            ));
                        }
                    }
                }
            }
            let mut pin_name = None;
            if !validating.is_empty() {
                let Some(stored) = stored else {
                    return Err(ApiError::internal(
                        "admission: the write skipped validation",
                    ));
                };
                if attrs.name.is_empty() {
                    let generated = stored["metadata"]["name"].as_str().unwrap_or_default();
                    pin_name = Some(generated.to_owned());
                    attrs.name = generated.to_owned();
                }
                attrs.object = Some(stored);
                run_validating(self, adm, &validating, &attrs, &opts.warnings).await?;
            }
            // (3) the write itself.
            match run(
                body.clone(),
                &replay(opts, replacement, expected_rv, pin_name, None),
            ) {
                Err(e) if e.reason == RETRY => continue,
                r => return r,
            }
        }
        Err(conflict(t.d, t.name.unwrap_or_default()))
    }

    /// Whether the namespace of `obj` exists and is not terminating.
    fn namespace_accepts(&self, obj: &Value) -> bool {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        self.resource("", "v1", "namespaces")
            .and_then(|d| self.get_raw(&d, None, ns))
            .is_ok_and(|n| !n.terminating)
    }

    /// An admitted create (POST).
    pub async fn admit_create(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
        user: &UserInfo,
    ) -> Result<Value> {
        let t = Target {
            d,
            ns,
            name: None,
            sub: "",
            ops: &[Operation::Create],
        };
        self.admitted(t, obj, opts, user, |obj, o| self.create(d, ns, obj, o))
            .await
    }

    /// An admitted PUT of the main resource or of `status`.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_update(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        part: Part,
        opts: &WriteOptions,
        user: &UserInfo,
    ) -> Result<Value> {
        if part == Part::Status && !d.status_subresource {
            return Err(ApiError::not_found_in(d, name));
        }
        let t = Target {
            d,
            ns,
            name: Some(name),
            sub: if part == Part::Status { "status" } else { "" },
            ops: &[Operation::Update],
        };
        self.admitted(t, obj, opts, user, |obj, o| {
            self.update_part(d, ns, name, obj, part, o)
        })
        .await
    }

    /// An admitted PATCH (a server-side apply that creates is admitted as CREATE).
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_patch(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        part: Part,
        opts: &WriteOptions,
        user: &UserInfo,
    ) -> Result<Value> {
        let ops: &[Operation] = if kind == PatchKind::Apply && part == Part::Main {
            &[Operation::Update, Operation::Create]
        } else {
            &[Operation::Update]
        };
        let t = Target {
            d,
            ns,
            name: Some(name),
            sub: if part == Part::Status { "status" } else { "" },
            ops,
        };
        self.admitted(t, (), opts, user, |(), o| {
            self.patch(d, ns, name, kind, body, part, o)
        })
        .await
    }

    /// An admitted DELETE: the webhooks see the stored object as
    /// `oldObject`; the delete then requires that object's resourceVersion
    /// (a change in between re-runs admission).
    pub async fn admit_delete(
        &self,
        d: &ResourceDescriptor,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
        user: &UserInfo,
    ) -> Result<DeleteOutcome> {
        let adm = self.admission();
        let hooks = adm.hooks(self);
        if hooks.is_empty() {
            return self.delete(d, ns, name, opts);
        }
        let ops = [Operation::Delete];
        let mutating = rule_candidates(&hooks.mutating, &ops, d, "");
        let validating = rule_candidates(&hooks.validating, &ops, d, "");
        if mutating.is_empty() && validating.is_empty() {
            return self.delete(d, ns, name, opts);
        }
        for _ in 0..MAX_ATTEMPTS {
            let cur = self.get_raw(d, ns, name)?;
            let mut attrs = Attributes {
                d,
                subresource: "",
                kind: (d.group.clone(), d.version.clone(), d.kind.clone()),
                namespace: cur.namespace().to_string(),
                name: name.to_owned(),
                operation: Operation::Delete,
                object: None,
                old_object: Some(cur.value()),
                dry_run: opts.dry_run,
                user,
                field_manager: None,
            };
            let warnings = Warnings::default();
            run_mutating(self, adm, &mutating, &mut attrs, &warnings).await?;
            run_validating(self, adm, &validating, &attrs, &warnings).await?;
            let mut o = opts.clone();
            let ours = o.precondition_resource_version.is_none();
            if ours {
                o.precondition_resource_version = Some(cur.rv.to_string());
            }
            match self.delete(d, ns, name, &o) {
                Err(e) if e.code == 409 && ours => continue,
                r => return r,
            }
        }
        Err(conflict(d, name))
    }

    /// Admission of a subresource request whose object is not the stored
    /// one (`pods/eviction` as CREATE of an `Eviction`, `*/scale` as UPDATE
    /// of a `Scale`): runs the webhooks on `obj` (and `old`) and returns the
    /// object as the mutating webhooks left it. The write that follows is
    /// the subresource's own and is not admitted again.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_object(
        &self,
        d: &ResourceDescriptor,
        subresource: &str,
        kind: (&str, &str, &str),
        operation: Operation,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        old: Option<Value>,
        opts: &WriteOptions,
        user: &UserInfo,
    ) -> Result<Value> {
        let adm = self.admission();
        let hooks = adm.hooks(self);
        if hooks.is_empty() {
            return Ok(obj);
        }
        let ops = [operation];
        let mutating = rule_candidates(&hooks.mutating, &ops, d, subresource);
        let validating = rule_candidates(&hooks.validating, &ops, d, subresource);
        if mutating.is_empty() && validating.is_empty() {
            return Ok(obj);
        }
        let mut attrs = Attributes {
            d,
            subresource,
            kind: (kind.0.to_owned(), kind.1.to_owned(), kind.2.to_owned()),
            namespace: ns.unwrap_or_default().to_owned(),
            name: name.to_owned(),
            operation,
            object: Some(obj),
            old_object: old,
            dry_run: opts.dry_run,
            user,
            field_manager: opts.field_manager.clone(),
        };
        run_mutating(self, adm, &mutating, &mut attrs, &opts.warnings).await?;
        run_validating(self, adm, &validating, &attrs, &opts.warnings).await?;
        Ok(attrs.object.unwrap_or_default())
    }

    /// An admitted create of a typed object.
    pub async fn admit_create_typed<K>(
        &self,
        ns: Option<&str>,
        obj: &K,
        user: &UserInfo,
    ) -> Result<K>
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        let v = to_value(obj)?;
        from_value(
            self.admit_create(&d, ns, v, &WriteOptions::default(), user)
                .await?,
        )
    }

    /// An admitted PUT of a typed object (main resource or `status`).
    pub async fn admit_update_typed<K>(
        &self,
        ns: Option<&str>,
        obj: &K,
        part: Part,
        user: &UserInfo,
    ) -> Result<K>
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        let v = to_value(obj)?;
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        from_value(
            self.admit_update(&d, ns, &name, v, part, &WriteOptions::default(), user)
                .await?,
        )
    }

    /// An admitted JSON merge patch of a typed object.
    pub async fn admit_merge_patch_typed<K>(
        &self,
        ns: Option<&str>,
        name: &str,
        patch: &Value,
        part: Part,
        user: &UserInfo,
    ) -> Result<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let d = self.resource_of::<K>()?;
        let body = serde_json::to_vec(patch)
            .map_err(|e| ApiError::internal(format!("failed to encode object: {e}")))?;
        from_value(
            self.admit_patch(
                &d,
                ns,
                name,
                PatchKind::Merge,
                &body,
                part,
                &WriteOptions::default(),
                user,
            )
            .await?,
        )
    }

    /// An admitted delete of a typed object.
    pub async fn admit_delete_typed<K>(
        &self,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
        user: &UserInfo,
    ) -> Result<DeleteOutcome>
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let d = self.resource_of::<K>()?;
        self.admit_delete(&d, ns, name, opts, user).await
    }
}
