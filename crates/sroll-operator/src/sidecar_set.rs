//! SidecarSets in the operator: the controller that computes their status and upgrades sidecar
//! images in place, and the two admission plug-ins of the webhook server — the pod mutator that
//! injects them ([`Injector`]) and the validator that rejects invalid or conflicting SidecarSets
//! ([`SidecarSetValidator`]). The decisions are `sroll_planner::sidecar_set`'s; this module
//! observes and executes.
//!
//! The controller is one `kube::runtime::Controller` on the cluster-scoped `SidecarSet`, started by
//! `sroll operator` under the same leader election as the rollout and CloneSet controllers. Its pod
//! cache holds every pod of the operator's namespace scopes (a SidecarSet's selector can match any
//! pod), full objects: the planner reads annotations, containers and statuses; that cache and the
//! PodDisruptionBudget one are filled only while at least one SidecarSet exists
//! ([`cache::gated_reflector`]). One reconcile:
//! the pods the SidecarSet matches → [`sidecar_set::plan_upgrade`] → the pods'
//! `SidecarSetUpgradable` conditions (pods/status), the in-place writes through
//! [`crate::inplace::execute_seen`] (the one in-place executor; its status steps are patches on the
//! cached pod), Events → status through the status subresource.
//!
//! A `namespaceSelector` with labels is matched against the labels of the pod's Namespace, as
//! Kruise does (`pkg/control/sidecarcontrol/util.go`, the namespace's labels against the
//! selector): the controller and the injector each keep a Namespace reflector ([`NamespaceLabels`];
//! SidecarSets run only in cluster-wide installs, which may list and watch Namespaces). A
//! namespace not yet in the cache is matched by its `kubernetes.io/metadata.name` label alone, as
//! Kruise's webhook, which reads an informer cache too, would not find it either.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{
        core::v1::{Namespace, Pod},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    core::{DynamicObject, Selector, SelectorExt, admission::AdmissionRequest},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action as Requeue,
        events::EventType,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::json;
use sroll_api::sidecar_set::{SidecarSet, SidecarSetCondition, validate};
use sroll_planner::{
    inplace::{PodWrite, SeenPod},
    sidecar_set::{
        self, CONDITION_NOT_UPGRADABLE, REASON_NOT_UPGRADABLE_PODS, REASON_UPGRADING, SidecarPod,
        SidecarSetObserved,
    },
};

use crate::{
    Error, Result, cache,
    controller::{OperatorHandles, api_in},
    error::api_code,
    webhook::{
        Denial, FailurePolicy, PluginContext, Plugins, PodMutator, Validator, WebhookEntry, rule,
    },
};

/// How soon a SidecarSet with an upgrade under way is looked at again without a watch event.
const REQUEUE_ACTING: Duration = Duration::from_secs(2);
/// How soon an idle SidecarSet is looked at again.
const REQUEUE_IDLE: Duration = Duration::from_secs(60);

/// The labels of every Namespace, from a reflector (cluster-wide installs only: SidecarSets are
/// served only there).
#[derive(Clone)]
pub struct NamespaceLabels(Store<Namespace>);

impl NamespaceLabels {
    /// Starts watching Namespaces; the returned stream drives the cache and yields each Namespace
    /// that changed.
    fn watch(
        client: &Client,
    ) -> (
        Self,
        impl futures::Stream<Item = std::result::Result<Namespace, watcher::Error>> + Send + 'static,
    ) {
        let (store, writer) = reflector::store::<Namespace>();
        let stream = watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(cache::WatchBackoff::default())
        .reflect(writer)
        .touched_objects();
        (Self(store), stream)
    }

    /// The labels of namespace `name`, `None` while it is not in the cache.
    fn of(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.0
            .get(&ObjectRef::new(name))
            .map(|n| n.labels().clone())
    }

    /// Whether `set` applies to pods of namespace `ns` (`sidecar_set::namespace_matches` given the
    /// namespace's labels).
    fn set_applies(&self, set: &SidecarSet, ns: &str) -> bool {
        sidecar_set::namespace_matches(&set.spec, ns, self.of(ns).as_ref())
    }

    /// Whether `set` matches `pod` (`sidecar_set::matches` given its namespace's labels).
    fn set_matches(&self, set: &SidecarSet, pod: &Pod) -> bool {
        let ns = pod.namespace().unwrap_or_default();
        sidecar_set::matches(set, pod, &ns, self.of(&ns).as_ref())
    }
}

struct Ctx {
    handles: OperatorHandles,
    namespaces: NamespaceLabels,
    /// Pods, one store per namespace scope.
    pods: Vec<Store<Pod>>,
    /// PodDisruptionBudgets, one store per namespace scope.
    pdbs: Vec<Store<PodDisruptionBudget>>,
    /// Open while at least one SidecarSet exists: the pod and PodDisruptionBudget watches run
    /// only then (see [`run`]).
    gate: cache::WatchGate,
    synced: cache::Synced,
}

/// Runs the SidecarSet controller over `scopes` (`None`: every namespace) until `stopped`.
///
/// The pod and PodDisruptionBudget watches (every pod of the scopes, as full objects) run only
/// while at least one SidecarSet exists ([`cache::gated_reflector`]): they start with the first
/// SidecarSet and stop, their stores emptied, when the last one is deleted. A cluster-wide
/// operator without SidecarSets holds no copy of the cluster's pods for them.
pub async fn run(
    handles: OperatorHandles,
    scopes: Vec<Option<String>>,
    stopped: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = handles.client.clone();
    let gate = cache::WatchGate::default();
    let (sets, set_writer) = reflector::store::<SidecarSet>();
    let gated_sets = sets.clone();
    let opener = gate.clone();
    let set_stream = watcher(
        Api::<SidecarSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .backoff(cache::WatchBackoff::default())
    .reflect(set_writer)
    .inspect(move |event| {
        // The store is complete after `InitDone` and after each change: open the gate before
        // the controller is handed the SidecarSet, so its reconcile waits for the pods' list.
        if matches!(
            event,
            Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_))
        ) {
            opener.set_open(!gated_sets.is_empty());
        }
    })
    .applied_objects();
    let mut pods = Vec::new();
    let mut pdbs = Vec::new();
    let mut controller =
        Controller::for_stream(cache::errors_logged(set_stream, "SidecarSet"), sets.clone());
    // A Namespace's labels changing can change which pods a SidecarSet with a label
    // namespaceSelector matches: those SidecarSets are looked at again.
    let (namespaces, ns_stream) = NamespaceLabels::watch(&client);
    let mapped_sets = sets.clone();
    controller = controller.watches_stream(
        cache::errors_logged(ns_stream, "Namespace"),
        move |_: Namespace| {
            mapped_sets
                .state()
                .iter()
                .filter(|s| sidecar_set::selects_namespaces_by_label(&s.spec))
                .map(|s| ObjectRef::from_obj(&**s))
                .collect::<Vec<_>>()
        },
    );
    for ns in &scopes {
        let (store, writer) = reflector::store::<Pod>();
        let stream = cache::gated_reflector(
            api_in::<Pod>(&client, ns.as_deref()),
            watcher::Config::default(),
            writer,
            gate.clone(),
        );
        let mapped_sets = sets.clone();
        let mapped_namespaces = namespaces.clone();
        controller = controller
            .watches_stream(cache::errors_logged(stream, "Pod"), move |pod: Pod| {
                sets_of(&mapped_sets, &mapped_namespaces, &pod)
            });
        pods.push(store);
        let (store, writer) = reflector::store::<PodDisruptionBudget>();
        let stream = cache::gated_reflector(
            api_in::<PodDisruptionBudget>(&client, ns.as_deref()),
            watcher::Config::default(),
            writer,
            gate.clone(),
        );
        let mapped_sets = sets.clone();
        let mapped_namespaces = namespaces.clone();
        controller = controller.watches_stream(
            cache::errors_logged(stream, "PodDisruptionBudget"),
            move |pdb: PodDisruptionBudget| {
                let ns = pdb.namespace().unwrap_or_default();
                mapped_sets
                    .state()
                    .iter()
                    .filter(|s| mapped_namespaces.set_applies(s, &ns))
                    .map(|s| ObjectRef::from_obj(&**s))
                    .collect::<Vec<_>>()
            },
        );
        pdbs.push(store);
    }
    let ctx = Arc::new(Ctx {
        handles,
        namespaces,
        pods,
        pdbs,
        gate,
        synced: cache::Synced::default(),
    });
    controller
        .graceful_shutdown_on(stopped)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "SidecarSet reconcile did not complete");
            }
        })
        .await;
    tracing::info!("SidecarSet controller stopped");
}

/// The SidecarSets that match `pod` (a pod event reconciles them).
fn sets_of(
    sets: &Store<SidecarSet>,
    namespaces: &NamespaceLabels,
    pod: &Pod,
) -> Vec<ObjectRef<SidecarSet>> {
    sets.state()
        .iter()
        .filter(|s| namespaces.set_matches(s, pod))
        .map(|s| ObjectRef::from_obj(&**s))
        .collect()
}

fn error_policy(set: Arc<SidecarSet>, err: &Error, _: Arc<Ctx>) -> Requeue {
    tracing::warn!(sidecarset = %set.name_any(), error = %err, "SidecarSet reconcile failed");
    Requeue::requeue(Duration::from_secs(2))
}

fn write_err(set: &SidecarSet, what: &str, source: kube::Error) -> Error {
    Error::SidecarSetWrite {
        name: set.name_any(),
        what: what.to_owned(),
        source,
    }
}

/// The key (`namespace/name`) of the PodDisruptionBudget selecting `pod`, and its allowance.
fn pdb_of(pdbs: &[Store<PodDisruptionBudget>], pod: &Pod) -> Option<(String, i32)> {
    let ns = pod.namespace()?;
    let labels = pod.labels();
    pdbs.iter()
        .flat_map(Store::state)
        .find(|p| {
            p.namespace().as_deref() == Some(ns.as_str())
                && p.spec
                    .as_ref()
                    .and_then(|s| s.selector.clone())
                    .and_then(|s| Selector::try_from(s).ok())
                    .is_some_and(|s| s.matches(labels))
        })
        .map(|p| {
            (
                format!("{ns}/{}", p.name_any()),
                p.status.as_ref().map_or(0, |s| s.disruptions_allowed),
            )
        })
}

async fn reconcile(set: Arc<SidecarSet>, ctx: Arc<Ctx>) -> Result<Requeue> {
    ctx.synced
        .wait(|| async {
            let _ = ctx.namespaces.0.wait_until_ready().await;
        })
        .await;
    // Every gated watch (pods, PodDisruptionBudgets) listed since the gate opened; a closed gate
    // means no SidecarSet is left (this one is gone).
    if !ctx.gate.synced().await {
        return Ok(Requeue::await_change());
    }
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let name = set.name_any();
    let now = Timestamp::now();
    let mut pdb_allowed = BTreeMap::new();
    let pods: Vec<SidecarPod> = ctx
        .pods
        .iter()
        .flat_map(Store::state)
        .filter(|p| ctx.namespaces.set_matches(&set, p))
        .map(|p| {
            let pdb = pdb_of(&ctx.pdbs, &p).map(|(key, allowed)| {
                pdb_allowed.insert(key.clone(), allowed);
                key
            });
            SidecarPod {
                pod: (*p).clone(),
                pdb,
            }
        })
        .collect();
    let errors = validate(&set);
    let observed = SidecarSetObserved {
        set: &set,
        pods,
        pdb_allowed,
        now,
    };
    let mut plan = sidecar_set::plan_upgrade(&observed);
    if !errors.is_empty() {
        // An invalid SidecarSet (admitted while the webhook was down) upgrades nothing.
        plan.writes.clear();
        plan.started.clear();
    }
    let client = ctx.handles.client.clone();
    let reference = set.object_ref(&());
    let event = |type_: EventType, reason: &str, note: String| {
        ctx.handles
            .events
            .publish_reason(type_, reason, note, &reference);
    };

    // The pods' SidecarSetUpgradable conditions, written on the cached pods (a stale copy is
    // refused by its resourceVersion and written again by the next reconcile).
    for c in &plan.conditions {
        let api: Api<Pod> = Api::namespaced(client.clone(), &c.namespace);
        let cached = observed.pods.iter().find(|p| {
            p.pod.metadata.name.as_deref() == Some(c.pod.as_str())
                && p.pod.metadata.namespace.as_deref() == Some(c.namespace.as_str())
        });
        if let Some(p) = cached {
            write_condition(&api, &name, &p.pod, c).await;
        }
    }

    // In-place writes, by namespace.
    let mut by_ns: BTreeMap<String, Vec<PodWrite>> = BTreeMap::new();
    for (ns, w) in &plan.writes {
        by_ns.entry(ns.clone()).or_default().push(w.clone());
    }
    // The status steps are patches on the pod as cached (no read; a stale copy gets 409 and the
    // executor reads it), as for rollouts and CloneSets.
    let mut failure = None;
    for (ns, writes) in by_ns {
        let seen = |pod: &str| {
            observed
                .pods
                .iter()
                .find(|p| {
                    p.pod.metadata.name.as_deref() == Some(pod)
                        && p.pod.metadata.namespace.as_deref() == Some(ns.as_str())
                })
                .map(|p| SeenPod::from_pod(&p.pod))
        };
        let outcome =
            crate::inplace::execute_seen(&Api::namespaced(client.clone(), &ns), &writes, seen)
                .await;
        if let Some(e) = outcome.error {
            failure.get_or_insert(e);
        }
    }
    if !plan.started.is_empty() {
        event(
            EventType::Normal,
            REASON_UPGRADING,
            format!(
                "upgrading sidecars in place to version {} on {}",
                plan.status.latest_revision,
                plan.started.join(", ")
            ),
        );
    }

    // Status, with the NotUpgradable condition.
    let mut status = plan.status.clone();
    let previous = set.status.clone().unwrap_or_default();
    let not_upgradable = !plan.not_upgradable.is_empty();
    let message = if not_upgradable {
        format!(
            "{} pod(s) cannot take version {} in place (a field other than a sidecar image changed; new pods get it): {}",
            plan.not_upgradable.len(),
            status.latest_revision,
            plan.not_upgradable.join(", ")
        )
    } else {
        String::new()
    };
    let was = previous
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_NOT_UPGRADABLE);
    let status_str = if not_upgradable { "True" } else { "False" };
    let reason = if not_upgradable {
        REASON_NOT_UPGRADABLE_PODS
    } else {
        "AllUpgradable"
    };
    let transition = was
        .filter(|c| c.status == status_str)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    if not_upgradable && was.is_none_or(|c| c.status != "True" || c.message != message) {
        event(
            EventType::Warning,
            REASON_NOT_UPGRADABLE_PODS,
            message.clone(),
        );
    }
    status.conditions = vec![SidecarSetCondition {
        type_: CONDITION_NOT_UPGRADABLE.into(),
        status: status_str.into(),
        last_transition_time: Some(transition),
        reason: reason.into(),
        message,
    }];
    status.collision_count = previous.collision_count;
    if set.status.as_ref() != Some(&status) {
        let sets: Api<SidecarSet> = Api::all(client.clone());
        sets.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .map_err(|source| write_err(&set, "status", source))?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(if plan.in_progress {
        Requeue::requeue(REQUEUE_ACTING)
    } else {
        Requeue::requeue(REQUEUE_IDLE)
    })
}

/// Writes one pod's `SidecarSetUpgradable` condition (pods/status) from `pod` as cached, once; a
/// gone pod or a conflict is left to the next reconcile.
async fn write_condition(api: &Api<Pod>, set: &str, pod: &Pod, c: &sidecar_set::ConditionWrite) {
    if pod.uid().as_deref() != Some(c.uid.as_str()) {
        return;
    }
    let Some(next) =
        sidecar_set::with_upgradable_condition(pod, set, c.upgradable, Timestamp::now())
    else {
        return;
    };
    match api
        .replace_status(&c.pod, &PostParams::default(), &next)
        .await
    {
        Ok(_) => {}
        Err(e) if matches!(api_code(&e), Some(404 | 409)) => {}
        Err(e) => tracing::warn!(pod = %c.pod, error = %e, "pod condition: write failed"),
    }
}

/// The SidecarSet and Namespace caches the admission plug-ins share.
#[derive(Clone)]
pub struct SidecarSetCache {
    sets: Store<SidecarSet>,
    namespaces: NamespaceLabels,
}

impl SidecarSetCache {
    /// Watches SidecarSets and Namespaces for the webhook server: the drivers and the first lists
    /// are handed to `plugins` (the server answers once they are synced).
    pub fn start(client: &Client, plugins: &mut Plugins) -> Self {
        let (store, writer) = reflector::store::<SidecarSet>();
        let stream = watcher(
            Api::<SidecarSet>::all(client.clone()),
            watcher::Config::default(),
        )
        .backoff(cache::WatchBackoff::default())
        .reflect(writer)
        .applied_objects();
        plugins.spawn(async move {
            cache::errors_logged(stream, "SidecarSet")
                .for_each(|_| async {})
                .await;
        });
        let (namespaces, ns_stream) = NamespaceLabels::watch(client);
        plugins.spawn(async move {
            cache::errors_logged(ns_stream, "Namespace")
                .for_each(|_| async {})
                .await;
        });
        let ready = store.clone();
        let ns_ready = namespaces.0.clone();
        plugins.wait_ready(async move {
            let _ = ready.wait_until_ready().await;
            let _ = ns_ready.wait_until_ready().await;
        });
        Self {
            sets: store,
            namespaces,
        }
    }

    fn sets(&self) -> Vec<Arc<SidecarSet>> {
        self.sets.state()
    }
}

/// Registers the SidecarSet plug-ins: the injector (a pod mutator) and the validator — only when
/// the operator watches every namespace (SidecarSets are cluster-scoped; the namespaced install
/// has no ClusterRole to read them).
pub fn register(ctx: &PluginContext, plugins: &mut Plugins) {
    if !ctx.namespaces.is_empty() {
        return;
    }
    let cache = SidecarSetCache::start(&ctx.client, plugins);
    plugins.mutator(Injector {
        cache: cache.clone(),
    });
    plugins.validator(SidecarSetValidator { cache });
}

/// Injects the matching SidecarSets into pods being created (`sroll_planner::sidecar_set::inject`).
/// `failurePolicy: Ignore`, Kruise's default: with the webhook down, pods are created without
/// sidecars rather than not at all.
pub struct Injector {
    cache: SidecarSetCache,
}

impl PodMutator for Injector {
    fn name(&self) -> &'static str {
        "sidecar-injection"
    }

    fn webhook(&self) -> WebhookEntry {
        WebhookEntry::pod_create("injection.sidecarsets.sroll.io", "/mutate/pods/sidecarsets")
    }

    fn mutate(&self, namespace: &str, pod: &mut Pod) -> Result<(), Denial> {
        let sets = self.cache.sets();
        let refs: Vec<&SidecarSet> = sets.iter().map(|s| &**s).collect();
        let labels = self.cache.namespaces.of(namespace);
        let injected = sidecar_set::inject(pod, namespace, labels.as_ref(), &refs);
        if !injected.sets.is_empty() {
            tracing::debug!(
                namespace,
                pod = pod.metadata.name.as_deref().or(pod.metadata.generate_name.as_deref()).unwrap_or_default(),
                sets = ?injected.sets,
                "sidecars injected"
            );
        }
        Ok(())
    }
}

/// Rejects SidecarSets that are invalid ([`validate`]) or conflict with another SidecarSet on the
/// same pods ([`sidecar_set::conflicts`]), naming both SidecarSets and the field.
pub struct SidecarSetValidator {
    cache: SidecarSetCache,
}

impl Validator for SidecarSetValidator {
    fn name(&self) -> &'static str {
        "sidecarset-validation"
    }

    fn webhook(&self) -> WebhookEntry {
        WebhookEntry {
            name: "validation.sidecarsets.sroll.io".into(),
            path: "/validate/sidecarsets",
            rules: vec![rule(
                &["CREATE", "UPDATE"],
                "sroll.io",
                "v1alpha1",
                "sidecarsets",
            )],
            failure_policy: FailurePolicy::Fail,
            namespace_selector: None,
            object_selector: None,
            timeout_seconds: 10,
            reinvocation: false,
        }
    }

    fn validate(&self, request: &AdmissionRequest<DynamicObject>) -> Result<Vec<String>, Denial> {
        let Some(object) = &request.object else {
            return Ok(vec![]);
        };
        let set: SidecarSet = serde_json::to_value(object)
            .and_then(serde_json::from_value)
            .map_err(|e| Denial::new(format!("not a SidecarSet: {e}")))?;
        let name = set.name_any();
        let errors = validate(&set);
        if !errors.is_empty() {
            return Err(Denial::new(format!(
                "SidecarSet {name:?} is invalid: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        let others = self.cache.sets();
        let refs: Vec<&SidecarSet> = others.iter().map(|s| &**s).collect();
        let conflicts = sidecar_set::conflicts(&set, &refs);
        if !conflicts.is_empty() {
            return Err(Denial::new(format!(
                "SidecarSet {name:?} conflicts with {}",
                conflicts
                    .iter()
                    .map(|c| format!("SidecarSet {:?} at {}: {}", c.other, c.field, c.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        Ok(vec![])
    }
}
