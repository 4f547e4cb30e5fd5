//! sroll's admission webhook server, served by every replica of `sroll operator` (not only the
//! leader) over TLS on its own port (`--webhook-addr`).
//!
//! ```text
//!  kube-apiserver ──HTTPS AdmissionReview──▶ server.rs ──▶ POST /<entry path>
//!                                             │  pods/CREATE: one PodMutator per webhook entry
//!                                             │    (typed Pod in, JSON Patch = json_patch::diff out)
//!                                             │  other kinds: one Validator per entry
//!  certs.rs: CA + serving certificate in a Secret (create-or-adopt, rotation) ─▶ rustls reload
//!  configs.rs: Mutating/ValidatingWebhookConfigurations from the plug-ins' WebhookEntry, caBundle
//!  pinning.rs: revision pinning (the first pod mutator)
//! ```
//!
//! # Plugging in
//!
//! A feature that admits objects implements [`PodMutator`] (pod CREATE) or [`Validator`] (any other
//! kind), describes its webhook entry with a [`WebhookEntry`] and is registered with **one line** in
//! [`register`]. The server routes `POST <entry.path>` to it; the configuration registrar writes its
//! entry into `sroll-mutating-webhooks` / `sroll-validating-webhooks`. Mutators never write
//! patches: they change a typed [`Pod`], and the server answers with the JSON Patch between the pod
//! as received and as mutated. Order: kube-apiserver calls the webhooks of one configuration in
//! their order, which is the registration order here (revision pinning first, then sidecar
//! injection); a mutator whose entry says `reinvocation: true` is called once more when a later one
//! changed the pod, so mutators must be idempotent.
//!
//! A plug-in that needs watch caches builds its reflectors in its constructor from the
//! [`PluginContext`] and hands their drivers to [`Plugins::spawn`] and their readiness to
//! [`Plugins::wait_ready`]: the server answers only once every plug-in's caches are synced.

pub mod certs;
pub mod configs;
pub mod pinning;
pub mod server;

use std::{collections::BTreeMap, sync::Arc};

use futures::future::BoxFuture;
use k8s_openapi::{
    api::{admissionregistration::v1::RuleWithOperations, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement},
};
use kube::{
    Client,
    core::{DynamicObject, admission::AdmissionRequest},
};

pub use certs::CertSettings;
pub use configs::ClientConfigMode;
pub use server::{WebhookServer, WebhookSettings};

/// A refusal: the request is denied with `message` (naming the cause and the fix) and HTTP `code`
/// (403 unless said otherwise), which kube-apiserver shows as `admission webhook "NAME" denied the
/// request: MESSAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// What is wrong and how to fix it.
    pub message: String,
    /// The HTTP status code of the denial (403 Forbidden by default).
    pub code: u16,
}

impl Denial {
    /// A 403 denial with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 403,
        }
    }

    /// A denial because the webhook cannot decide yet (its caches are not synced, a referenced
    /// object is missing from them): 503, so clients and controllers retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 503,
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One step of pod CREATE admission. Mutators run in a fixed order on one typed Pod (revision
/// pinning first, then sidecar injection), each behind its own webhook entry; the server answers
/// with the JSON Patch between the pod as received and as mutated (`json_patch::diff`), so mutators
/// never write patches.
pub trait PodMutator: Send + Sync + 'static {
    /// A short name for logs and metrics (`pinning`, `sidecar-injection`).
    fn name(&self) -> &'static str;
    /// The webhook entry registered for this mutator (its path, rules, failure policy, selectors).
    fn webhook(&self) -> WebhookEntry;
    /// Mutates `pod` (being created in `namespace`; `metadata.name` is empty for a `generateName`
    /// create). Must be idempotent: a pod already as this mutator wants it is left untouched.
    /// `Err(Denial)` refuses the pod (message names the cause and the fix).
    fn mutate(&self, namespace: &str, pod: &mut Pod) -> Result<(), Denial>;
}

/// Validation of one kind (e.g. SidecarSet CREATE/UPDATE); the request is kube's typed
/// `AdmissionRequest<DynamicObject>`.
pub trait Validator: Send + Sync + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
    /// The webhook entry registered for this validator (its path, rules, failure policy…).
    fn webhook(&self) -> WebhookEntry;
    /// `Ok(warnings)` admits (kubectl prints each warning), `Err(Denial)` refuses.
    fn validate(&self, request: &AdmissionRequest<DynamicObject>) -> Result<Vec<String>, Denial>;
}

/// `failurePolicy` of a webhook entry: what kube-apiserver does when the webhook cannot be called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The request is refused (fail closed).
    Fail,
    /// The webhook is skipped (fail open).
    Ignore,
}

impl FailurePolicy {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "Fail",
            Self::Ignore => "Ignore",
        }
    }
}

/// What a plug-in contributes to the webhook configurations: one entry of
/// `sroll-mutating-webhooks` (for a [`PodMutator`]) or `sroll-validating-webhooks` (for a
/// [`Validator`]). The registrar adds `clientConfig` (service or url, with the CA bundle),
/// `sideEffects: None` and `admissionReviewVersions: [v1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEntry {
    /// The webhook's name, a subdomain with at least three segments (`pinning.pods.sroll.io`).
    pub name: String,
    /// The server path, starting with `/` (`/mutate/pods/pinning`); unique among the entries.
    pub path: &'static str,
    /// Which requests are sent.
    pub rules: Vec<RuleWithOperations>,
    /// Fail closed or open when the webhook is down.
    pub failure_policy: FailurePolicy,
    /// Namespaces whose objects are sent (see [`WebhookEntry::system_namespaces_excluded`]).
    pub namespace_selector: Option<LabelSelector>,
    /// Objects that are sent (by their labels).
    pub object_selector: Option<LabelSelector>,
    /// Seconds kube-apiserver waits for an answer (1–30).
    pub timeout_seconds: i32,
    /// Mutating entries only: `reinvocationPolicy: IfNeeded` (called again when a later mutator
    /// changed the object) instead of `Never`.
    pub reinvocation: bool,
}

/// Namespaces no sroll webhook is ever called for: kube-apiserver's own and the node leases.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// The label on sroll's own pods (deploy/base/deployment.yaml): they are never sent to sroll's
/// webhooks, so the operator can always start, even when its webhook is down.
pub const OPERATOR_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "sroll");

impl WebhookEntry {
    /// An entry for pod CREATE at `path`, with the common selectors (system namespaces and the
    /// operator's own pods excluded), a 10 s timeout and `failurePolicy: Ignore`; plug-ins adjust
    /// the fields they need.
    pub fn pod_create(name: impl Into<String>, path: &'static str) -> Self {
        Self {
            name: name.into(),
            path,
            rules: vec![rule(&["CREATE"], "", "v1", "pods")],
            failure_policy: FailurePolicy::Ignore,
            namespace_selector: Some(Self::system_namespaces_excluded()),
            object_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: OPERATOR_POD_LABEL.0.into(),
                    operator: "NotIn".into(),
                    values: Some(vec![OPERATOR_POD_LABEL.1.into()]),
                }]),
                match_labels: None,
            }),
            timeout_seconds: 10,
            reinvocation: false,
        }
    }

    /// `kubernetes.io/metadata.name NotIn [kube-system, kube-public, kube-node-lease]`.
    pub fn system_namespaces_excluded() -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(SYSTEM_NAMESPACES.iter().map(|s| (*s).to_owned()).collect()),
            }]),
            match_labels: None,
        }
    }
}

/// A rule for `operations` on `group/version/resource` (namespaced or cluster-scoped: `scope: *`).
pub fn rule(operations: &[&str], group: &str, version: &str, resource: &str) -> RuleWithOperations {
    RuleWithOperations {
        operations: Some(operations.iter().map(|s| (*s).to_owned()).collect()),
        api_groups: Some(vec![group.to_owned()]),
        api_versions: Some(vec![version.to_owned()]),
        resources: Some(vec![resource.to_owned()]),
        scope: None,
    }
}

/// What plug-ins are built from.
#[derive(Clone)]
pub struct PluginContext {
    /// The operator's client.
    pub client: Client,
    /// Namespaces watched (empty: all), as the controllers.
    pub namespaces: Vec<String>,
}

/// The registered plug-ins, in order, with their caches' drivers.
#[derive(Default)]
pub struct Plugins {
    pub(crate) mutators: Vec<Arc<dyn PodMutator>>,
    pub(crate) validators: Vec<Arc<dyn Validator>>,
    pub(crate) background: Vec<BoxFuture<'static, ()>>,
    pub(crate) ready: Vec<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field(
                "mutators",
                &self.mutators.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .field(
                "validators",
                &self.validators.iter().map(|v| v.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Plugins {
    /// Adds a pod mutator after the ones already registered.
    pub fn mutator(&mut self, mutator: impl PodMutator) -> &mut Self {
        self.mutators.push(Arc::new(mutator));
        self
    }

    /// Adds a validator.
    pub fn validator(&mut self, validator: impl Validator) -> &mut Self {
        self.validators.push(Arc::new(validator));
        self
    }

    /// A future that runs for the server's lifetime (a reflector's driver).
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) -> &mut Self {
        self.background.push(Box::pin(task));
        self
    }

    /// A future that resolves once a plug-in can answer (its caches' first list).
    pub fn wait_ready(&mut self, ready: impl Future<Output = ()> + Send + 'static) -> &mut Self {
        self.ready.push(Box::pin(ready));
        self
    }

    /// The mutating entries, in order.
    pub fn mutating_entries(&self) -> Vec<WebhookEntry> {
        self.mutators.iter().map(|m| m.webhook()).collect()
    }

    /// The validating entries, in order.
    pub fn validating_entries(&self) -> Vec<WebhookEntry> {
        self.validators.iter().map(|v| v.webhook()).collect()
    }

    /// Checks that paths and names are unique and well formed.
    pub fn check(&self) -> Result<(), String> {
        let mut paths = BTreeMap::new();
        let mut names = BTreeMap::new();
        for entry in self
            .mutating_entries()
            .into_iter()
            .chain(self.validating_entries())
        {
            if !entry.path.starts_with('/') {
                return Err(format!(
                    "webhook {:?}: path {:?} must start with '/'",
                    entry.name, entry.path
                ));
            }
            if let Some(other) = paths.insert(entry.path, entry.name.clone()) {
                return Err(format!(
                    "webhooks {other:?} and {:?} share the path {:?}",
                    entry.name, entry.path
                ));
            }
            if names.insert(entry.name.clone(), ()).is_some() {
                return Err(format!("two webhooks are named {:?}", entry.name));
            }
        }
        Ok(())
    }
}

/// The one place plug-ins are registered, in the order kube-apiserver calls them.
pub fn register(ctx: &PluginContext) -> Plugins {
    let mut plugins = Plugins::default();
    // 1. Revision pinning: the pod's template and revision label come from the rollout.
    pinning::RevisionPinning::register(ctx, &mut plugins);
    // 2. Sidecar injection and SidecarSet validation.
    crate::sidecar_set::register(ctx, &mut plugins);
    plugins
}
