//! Watch caches: one reflector store per watched kind and namespace scope, trimmed to what the
//! reconcile loop reads so the operator stays small when the cluster holds 100,000 pods, and the
//! mappers that turn a change of a pod or a PodDisruptionBudget into a reconcile of its rollout.
//!
//! What the stores keep:
//!
//! | kind | dropped |
//! |---|---|
//! | all | `metadata.managedFields`, the `kubectl.kubernetes.io/last-applied-configuration` annotation |
//! | StatefulSet | the pod template's `spec` |
//! | Pod | Pods have no reflector store: the pod index is their only copy ([`SharedPodIndex`]: per pod the planner's view, the resourceVersion, the interned labels, `status.podIP` and the `Ready` condition's status), built from a compact entry per event ([`pod`]) that reads `spec` only for in-place updates and metadata only for name, namespace, uid, resourceVersion, labels, the controller owner reference and deletionTimestamp |
//! | EndpointSlice | metadata as for pods; `ports`; per endpoint everything but `addresses`, `conditions.ready` and the target's kind and name |
//! | ControllerRevision | metadata as for pods (the `data`, the pod template of a StatefulSet revision, is what in-place updates compare) |
//!
//! A cached pod yields the same `sroll_planner::ObservedPod` as the full one (tested below).
//!
//! Pods are watched with the label selector `controller-revision-hash` (only pods of a
//! StatefulSet or DaemonSet carry it), so other pods are never listed at all. EndpointSlices are
//! watched with the label selector `kubernetes.io/service-name` (every slice of a Service carries
//! it, `pkg/controller/endpointslice` of kubernetes/kubernetes) for Kubernetes-native
//! service-discovery gating; a change of a gated Service's slice reconciles its rollouts, so a pod
//! turning healthy releases the next eviction at once.
//!
//! Pods are observed per set from the pod index the pod watch keeps ([`SharedPodIndex`], a slot
//! per ordinal and the set's aggregates, updated per event): observing an unchanged set costs
//! O(1). Where one pod is needed it is looked up by name in the same index (`<set>-<ordinal>`,
//! the StatefulSet naming rule of `pkg/controller/statefulset/stateful_set_utils.go`
//! `getPodName`: [`pod_meta`], [`pod_seen`], [`pod_ip`]).

mod gated;
mod index;
pub mod pod;
pub mod triggers;

use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, StatefulSet},
        core::v1::{ObjectReference, PodTemplateSpec},
        discovery::v1::{Endpoint, EndpointConditions, EndpointSlice},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::{Selector, SelectorExt},
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use sroll_api::{DiscoveryProvider, StatefulsetRollout, labels};
use sroll_planner::index::{SetKey, Wake};

pub use gated::{WatchGate, gated_reflector};
pub use index::SharedPodIndex;
pub use pod::{CachedPod, PodInterner, PodLabels, WatchedPod};

/// Back-off between the failed (re)starts of the caches' watches and re-lists.
///
/// kube-runtime's `DefaultBackoff` carries client-go's reflector values: 0.8 s doubling to 30 s,
/// reset by an event or after two minutes without a failure. A watch the server cuts and the
/// operator re-opens yields no event, so under a flaky API server that also cuts watches, every
/// failed re-open counts as one more consecutive failure even though healthy streams ran in
/// between, and a quiet watch (the StatefulSets') soon waits 30 s between attempts while the
/// rollout gates on it.
///
/// sroll keeps five watches per operator, so retrying each at most every 5 s costs the API server
/// nothing; the delay doubles from 0.4 s to that cap, each drawn in `[d/2, d]` so replicas do
/// not retry in step, and starts over once 30 s pass without a failure.
#[derive(Debug)]
pub struct WatchBackoff {
    next: std::time::Duration,
    last: Option<std::time::Instant>,
    rng: fastrand::Rng,
}

impl WatchBackoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(400);
    const CAP: std::time::Duration = std::time::Duration::from_secs(5);
    const RESET_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: Self::FIRST,
            last: None,
            rng: fastrand::Rng::new(),
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<std::time::Duration> {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) > Self::RESET_AFTER)
        {
            self.next = Self::FIRST;
        }
        self.last = Some(now);
        let d = self.next;
        self.next = (d * 2).min(Self::CAP);
        Some(d.mul_f64(0.5 + 0.5 * self.rng.f64()))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Drops the errors of a watch stream that has its own back-off ([`WatchBackoff`]), logging them,
/// before the stream is handed to the `Controller` as a trigger.
///
/// The `Controller` wraps all its trigger streams, merged, in one more back-off
/// (`Controller::trigger_backoff`, kube's `DefaultBackoff`): an error from any watch pauses the
/// merged stream — and with it every reflector it drives, pods, StatefulSets, PDBs and
/// EndpointSlices alike — for 0.8 s doubling to 30 s. Under a flaky API server the caches froze
/// for tens of seconds at a time and a rollout waited 100 s for a pod that had long been Ready
/// (chaos scenario 2, RELIABILITY.md). The failing watch already waits out its own back-off;
/// nothing else needs to stop.
pub fn errors_logged<K>(
    stream: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    kind: &'static str,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Send + 'static,
{
    futures::StreamExt::filter_map(stream, move |item| {
        std::future::ready(match item {
            Ok(object) => Some(Ok(object)),
            Err(error) => {
                tracing::warn!(kind, %error, "watch failed; retrying after its back-off");
                None
            }
        })
    })
}

/// The first list of a scope's watch caches, awaited by any number of reconciles at once.
///
/// kube-runtime's `Store::wait_until_ready` (5.0, `utils/delayed_init.rs` `DelayedInit::get`)
/// polls one `futures::channel::oneshot::Receiver` shared by every caller of a store, and that
/// receiver keeps a single waker: each poll replaces the previous caller's. When two reconciles
/// wait at once (two rollouts created before the caches finished their first list), the list
/// wakes only the one polled last; the other sleeps until something else polls it — its 60 s
/// timeout (`controller::CACHE_SYNC_TIMEOUT`), whose expiry polls the wait once more and finds the
/// stores ready. That rollout got its first status a minute late.
///
/// Here one caller at a time waits on the stores (a `tokio::sync::OnceCell`: the others queue on
/// its semaphore, which wakes each of them), and once they are ready nobody waits again.
#[derive(Debug, Default)]
pub struct Synced(tokio::sync::OnceCell<()>);

impl Synced {
    /// Resolves once `ready` (the wait on every store) has completed, in this call or an earlier
    /// one. A caller dropped while it waits on the stores (its timeout) hands the wait on to the
    /// next one.
    pub async fn wait<F: Future<Output = ()>>(&self, ready: impl FnOnce() -> F) {
        self.0.get_or_init(ready).await;
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The reader side of one namespace scope's caches.
#[derive(Clone)]
pub struct Caches {
    /// Rollouts.
    pub rollouts: Store<StatefulsetRollout>,
    /// StatefulSets.
    pub statefulsets: Store<StatefulSet>,
    /// StatefulSet pods, indexed per set and ordinal, with each set's aggregates (what the
    /// observer reads: [`SharedPodIndex::pods`]; single pods: [`pod_meta`], [`pod_seen`],
    /// [`pod_ip`]). The operator's only copy of its pods: no reflector store holds them.
    pub pod_index: SharedPodIndex,
    /// PodDisruptionBudgets.
    pub pdbs: Store<PodDisruptionBudget>,
    /// EndpointSlices of Services (label `kubernetes.io/service-name`).
    pub endpoint_slices: Store<EndpointSlice>,
    /// ControllerRevisions (their templates decide whether a revision change can be made in
    /// place: [`revision_template`]).
    pub controller_revisions: Store<ControllerRevision>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("rollouts", &self.rollouts.len())
            .field("statefulsets", &self.statefulsets.len())
            .field("pods", &self.pod_index.len())
            .field("pdbs", &self.pdbs.len())
            .field("endpoint_slices", &self.endpoint_slices.len())
            .field("controller_revisions", &self.controller_revisions.len())
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

/// Keeps the metadata a cached pod or EndpointSlice is read by: name, namespace, uid,
/// resourceVersion, labels, the controller owner reference, deletionTimestamp.
fn slim_meta(meta: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        labels: meta.labels,
        owner_references: meta
            .owner_references
            .and_then(|refs| refs.into_iter().find(|o| o.controller == Some(true)))
            .map(|o| vec![o]),
        deletion_timestamp: meta.deletion_timestamp,
        ..ObjectMeta::default()
    }
}

/// Trims a rollout for the cache.
pub fn strip_rollout(r: &mut StatefulsetRollout) {
    strip_meta(&mut r.metadata);
}

/// [`strip_rollout`], and the rollout's `status.pods` takes the pod index's strings where they
/// are equal ([`SharedPodIndex::share_strings`]): what the rollout cache keeps of a rollout.
pub fn cache_rollout(index: &SharedPodIndex, r: &mut StatefulsetRollout) {
    strip_rollout(r);
    if let (Some(namespace), Some(status)) = (r.metadata.namespace.as_deref(), r.status.as_mut()) {
        index.share_strings(namespace, &mut status.pods);
    }
}

/// Trims a StatefulSet for the cache: the pod template's `spec` goes (the planner compares the
/// hashes the operator writes into the set's annotations, never the live template:
/// `sroll_planner::LiveStatefulSet::from_statefulset`).
pub fn strip_statefulset(s: &mut StatefulSet) {
    strip_meta(&mut s.metadata);
    if let Some(spec) = s.spec.as_mut() {
        spec.template.spec = None;
        if let Some(meta) = spec.template.metadata.as_mut() {
            meta.managed_fields = None;
            meta.annotations = None;
        }
    }
}

/// Trims a ControllerRevision for the cache: its metadata as for pods; `data` stays.
pub fn strip_controller_revision(r: &mut ControllerRevision) {
    r.metadata = slim_meta(std::mem::take(&mut r.metadata));
}

/// The pod template ControllerRevision `name` of `namespace` records, from the cache.
pub fn revision_template(caches: &Caches, namespace: &str, name: &str) -> Option<PodTemplateSpec> {
    let revision = caches
        .controller_revisions
        .get(&ObjectRef::new(name).within(namespace))?;
    sroll_planner::inplace::template_from_revision(&revision)
}

/// Maps a ControllerRevision event to the rollout of the StatefulSet that owns it (a new revision
/// may arrive after the set's status names it: the rollout waiting on it looks again at once).
pub fn rollout_of_controller_revision(
    rollouts: &Store<StatefulsetRollout>,
    statefulsets: &Store<StatefulSet>,
    revision: &ControllerRevision,
) -> Option<ObjectRef<StatefulsetRollout>> {
    let namespace = revision.namespace()?;
    let set = controller_of(&revision.metadata, "StatefulSet")?;
    rollout_of_statefulset(rollouts, statefulsets, &namespace, set)
}

/// Trims a PodDisruptionBudget for the cache.
pub fn strip_pdb(p: &mut PodDisruptionBudget) {
    strip_meta(&mut p.metadata);
}

/// Trims an EndpointSlice to what service-discovery gating reads
/// (`sroll_integrations::discovery::endpointslice::health_from_endpoint_slices`): per endpoint its
/// addresses, its `ready` condition and its target's kind and name.
pub fn strip_endpoint_slice(e: &mut EndpointSlice) {
    e.metadata = slim_meta(std::mem::take(&mut e.metadata));
    e.ports = None;
    for endpoint in &mut e.endpoints {
        *endpoint = Endpoint {
            addresses: std::mem::take(&mut endpoint.addresses),
            conditions: endpoint.conditions.take().map(|c| EndpointConditions {
                ready: c.ready,
                ..EndpointConditions::default()
            }),
            target_ref: endpoint.target_ref.take().map(|t| ObjectReference {
                kind: t.kind,
                name: t.name,
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        };
    }
}

/// The watch of the pods the operator may manage (those with the `controller-revision-hash`
/// label) in `namespace` (`None`: all), and the index it keeps of them (the only copy: no
/// reflector store). The stream yields the sets whose pods an event changed as the planner sees
/// them ([`SharedPodIndex::event_waking`]), or whose pod got a new `status.podIP` (service-discovery
/// health matches pods by address: `Integrations::discovery`), for the controller's set-to-rollout
/// mapper ([`rollout_of_set`]). Every other pod event — scheduling, container states, conditions
/// the planner does not read, a duplicated event — wakes nothing: a reconcile after it would
/// observe what the last one did and plan nothing (`Observed::same_inputs`).
pub fn watch_pods(
    client: &Client,
    namespace: Option<&str>,
) -> (
    SharedPodIndex,
    impl Stream<Item = Result<PodsChanged, watcher::Error>> + Send + 'static,
) {
    let api: Api<WatchedPod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let index = SharedPodIndex::default();
    let indexer = index.clone();
    let mut interner = PodInterner::default();
    let stream = watcher(
        api,
        watcher::Config::default()
            .labels(labels::REVISION)
            .any_semantic(),
    )
    .backoff(WatchBackoff::default())
    .map_ok(move |event| {
        let cached = interner.event(&event);
        futures::stream::iter(
            pod_triggers(&indexer, &cached)
                .into_iter()
                .map(Ok::<_, watcher::Error>),
        )
    })
    .try_flatten();
    (index, stream)
}

/// Applies one pod event to `index`; the triggers it yields ([`watch_pods`]): the sets whose
/// pods changed as the planner sees them, else (an `Apply` that changed no view) the pod's set
/// when the pod's `status.podIP` changed.
pub fn pod_triggers(index: &SharedPodIndex, event: &watcher::Event<CachedPod>) -> Vec<PodsChanged> {
    let old_ip = match event {
        watcher::Event::Apply(pod) => reflector::Lookup::namespace(pod).and_then(|namespace| {
            index.pod(&namespace, pod.name(), |_, _, extra| extra.pod_ip.clone())
        }),
        _ => None,
    };
    let mut changed: Vec<PodsChanged> = index
        .event_waking(event)
        .into_iter()
        .map(|(set, wake)| PodsChanged {
            set,
            view: true,
            wake,
        })
        .collect();
    if let watcher::Event::Apply(pod) = event
        && changed.is_empty()
        && let Some(old_ip) = old_ip
        && old_ip.as_deref() != pod.pod_ip()
        && let Some(namespace) = reflector::Lookup::namespace(pod)
        && let Some((set, _)) = sroll_planner::index::set_of(pod.name())
    {
        changed.push(PodsChanged {
            set: (namespace.as_ref().into(), set.into()),
            view: false,
            wake: Wake::Now,
        });
    }
    changed
}

/// A pod trigger of [`watch_pods`]: a set whose pods changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodsChanged {
    /// `(namespace, set name)`.
    pub set: SetKey,
    /// The planner's view of the set's pods changed; `false`: only a pod's `status.podIP` did.
    pub view: bool,
    /// How soon the rollout must plan on it ([`Wake::of_change`]; a new address: at once).
    pub wake: Wake,
}

/// Maps a set whose pods changed ([`watch_pods`]) to its rollout: always when the planner's view
/// of the pods changed; for a new pod address only when the rollout is gated on service
/// discovery (the one reader of pod addresses, `Integrations::discovery`).
pub fn rollout_of_set(
    rollouts: &Store<StatefulsetRollout>,
    statefulsets: &Store<StatefulSet>,
    changed: &PodsChanged,
) -> Option<ObjectRef<StatefulsetRollout>> {
    let (namespace, set) = &changed.set;
    let rollout = rollout_of_statefulset(rollouts, statefulsets, namespace, set)?;
    if changed.view {
        return Some(rollout);
    }
    rollouts
        .get(&rollout)
        .filter(|r| {
            r.spec
                .service_discovery
                .as_ref()
                .is_some_and(|sd| !sd.services.is_empty())
        })
        .map(|_| rollout)
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
        Ok(selector) => selector.matches(&r.spec.template_labels()),
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

/// The Services whose EndpointSlices gate a rollout (`serviceDiscovery.provider: Kubernetes`).
pub fn gating_services(r: &StatefulsetRollout) -> &[String] {
    match &r.spec.service_discovery {
        Some(sd) if sd.provider == Some(DiscoveryProvider::Kubernetes) => &sd.services,
        _ => &[],
    }
}

/// Maps an EndpointSlice event to every rollout of its namespace gated on its Service.
pub fn rollouts_of_endpoint_slice(
    rollouts: &Store<StatefulsetRollout>,
    slice: &EndpointSlice,
) -> Vec<ObjectRef<StatefulsetRollout>> {
    let Some(service) = slice.labels().get(labels::SERVICE_NAME) else {
        return Vec::new();
    };
    let namespace = slice.namespace();
    rollouts
        .state()
        .iter()
        .filter(|r| r.namespace() == namespace && gating_services(r).contains(service))
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

/// The cached EndpointSlices of `services` in `namespace`.
pub fn endpoint_slices_of(
    caches: &Caches,
    namespace: &str,
    services: &[String],
) -> Vec<Arc<EndpointSlice>> {
    caches.endpoint_slices.state_filter(|e| {
        e.metadata.namespace.as_deref() == Some(namespace)
            && e.labels()
                .get(labels::SERVICE_NAME)
                .is_some_and(|s| services.contains(s))
    })
}

/// The PDBs selecting a rollout's pods (more than one makes evictions fail upstream).
pub fn pdbs_for(caches: &Caches, r: &StatefulsetRollout) -> Vec<Arc<PodDisruptionBudget>> {
    caches.pdbs.state_filter(|p| pdb_selects(p, r))
}

/// What the expectations read of a cached pod ([`pod_meta`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMeta {
    /// `metadata.uid` (empty if unknown).
    pub uid: String,
    /// `metadata.resourceVersion` as a number (`sroll_api::predicates::resource_version`).
    pub resource_version: u64,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

/// The uid, resourceVersion and deletion state of the cached pod `name` of `namespace`.
pub fn pod_meta(caches: &Caches, namespace: &str, name: &str) -> Option<PodMeta> {
    caches.pod_index.pod(namespace, name, |pod, rv, _| PodMeta {
        uid: pod.uid.to_string(),
        resource_version: rv.parse().unwrap_or(0),
        terminating: pod.terminating,
    })
}

/// The cached pod `name` of `namespace` as the in-place executor reads it
/// ([`sroll_planner::inplace::SeenPod`]: uid, resourceVersion, revision, `Ready`, in-place view).
pub fn pod_seen(
    caches: &Caches,
    namespace: &str,
    name: &str,
) -> Option<sroll_planner::inplace::SeenPod> {
    caches.pod_index.pod(namespace, name, |pod, rv, extra| {
        sroll_planner::inplace::SeenPod {
            uid: pod.uid.to_string(),
            resource_version: rv.to_owned(),
            revision: pod.revision.as_deref().map(str::to_owned),
            ready: extra.ready_condition,
            in_place: (*pod.in_place).clone(),
        }
    })
}

/// `status.podIP` of the cached pod `name` of `namespace` (`None`: no address, or not cached).
pub fn pod_ip(caches: &Caches, namespace: &str, name: &str) -> Option<String> {
    caches
        .pod_index
        .pod(namespace, name, |_, _, extra| {
            extra.pod_ip.as_deref().map(str::to_owned)
        })
        .flatten()
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::{
        api::{core::v1::Pod, policy::v1::PodDisruptionBudgetSpec},
        apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference},
    };
    use kube::runtime::{reflector, watcher};

    use super::*;

    #[test]
    fn watch_backoff_doubles_to_its_cap_with_jitter_and_starts_over_on_reset() {
        use std::time::Duration;

        use kube::runtime::utils::Backoff;
        let mut b = WatchBackoff::default();
        let ceilings = [400, 800, 1600, 3200, 5000, 5000, 5000, 5000];
        for (d, ceiling) in b.by_ref().take(8).zip(ceilings) {
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                d <= ceiling && d >= ceiling / 2,
                "{d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next().expect("endless") <= Duration::from_millis(400));
    }

    fn rollout(name: &str, ns: &str, labels: &[(&str, &str)]) -> StatefulsetRollout {
        let mut r: StatefulsetRollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "sroll.io/v1alpha1",
            "kind": "StatefulsetRollout",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
            "spec": {"sts": {"spec": {
                "selector": {"matchLabels": {}},
                "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                "serviceName": name
            }}}
        }))
        .expect("valid rollout");
        let l: std::collections::BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        r.spec.sts.spec.template.metadata = Some(ObjectMeta {
            labels: Some(l),
            ..ObjectMeta::default()
        });
        r
    }

    fn pdb(ns: &str, selector: Option<LabelSelector>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("budget".into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector,
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        }
    }

    fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            match_expressions: None,
        }
    }

    /// A reflector store already holding `objs` (as after a completed initial list), and its
    /// writer for tests that change it later. Shared with the other modules' tests.
    pub(crate) fn writer_with<K>(objs: Vec<K>) -> (Store<K>, reflector::store::Writer<K>)
    where
        K: reflector::Lookup + Clone + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in objs {
            writer.apply_watcher_event(&watcher::Event::InitApply(o));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        (reader, writer)
    }

    /// A pod index holding `pods` (after a completed initial list), fed as the pod watch feeds
    /// it.
    pub(crate) struct PodFeed {
        pub index: SharedPodIndex,
    }

    impl PodFeed {
        pub(crate) fn new(pods: Vec<CachedPod>) -> Self {
            let mut feed = PodFeed {
                index: SharedPodIndex::default(),
            };
            feed.event(&watcher::Event::Init);
            for p in pods {
                feed.event(&watcher::Event::InitApply(p));
            }
            feed.event(&watcher::Event::InitDone);
            feed
        }

        pub(crate) fn event(&mut self, event: &watcher::Event<CachedPod>) -> Vec<PodsChanged> {
            pod_triggers(&self.index, event)
        }
    }

    fn store_of<K>(objs: Vec<K>) -> Store<K>
    where
        K: reflector::Lookup + Clone + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        writer_with(objs).0
    }

    #[test]
    fn a_pdb_selects_rollouts_whose_template_labels_match_in_its_namespace() {
        let web = rollout("web", "ns", &[("app", "web")]);
        let other_ns = rollout("web", "elsewhere", &[("app", "web")]);
        let db = rollout("db", "ns", &[("app", "db")]);
        let p = pdb("ns", Some(match_labels(&[("app", "web")])));
        assert!(pdb_selects(&p, &web));
        assert!(!pdb_selects(&p, &other_ns));
        assert!(!pdb_selects(&p, &db));
        let store = store_of(vec![web.clone(), other_ns, db]);
        let refs = rollouts_of_pdb(&store, &p);
        assert_eq!(refs, vec![ObjectRef::from_obj(&web)]);
    }

    #[test]
    fn a_null_pdb_selector_selects_nothing_and_an_empty_one_everything() {
        let web = rollout("web", "ns", &[("app", "web")]);
        assert!(!pdb_selects(&pdb("ns", None), &web));
        assert!(pdb_selects(
            &pdb("ns", Some(LabelSelector::default())),
            &web
        ));
    }

    fn owned_by(kind: &str, name: &str) -> Option<Vec<OwnerReference>> {
        Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: Some(true),
            block_owner_deletion: None,
        }])
    }

    /// The rollout a change of `pod` wakes: the pod index keys a pod by its namespace and the set
    /// name of `<set>-<ordinal>` (`sroll_planner::index::set_of`), then [`rollout_of_set`].
    fn rollout_of_pod(
        rollouts: &Store<StatefulsetRollout>,
        statefulsets: &Store<StatefulSet>,
        pod: &Pod,
    ) -> Option<ObjectRef<StatefulsetRollout>> {
        let name = pod.name_any();
        let (set, _) = sroll_planner::index::set_of(&name)?;
        let changed = PodsChanged {
            set: (pod.namespace()?.into(), set.into()),
            view: true,
            wake: Wake::Now,
        };
        rollout_of_set(rollouts, statefulsets, &changed)
    }

    #[test]
    fn a_pod_maps_to_the_rollout_owning_its_statefulset() {
        // The rollout "web" manages a set named "cache" (spec.sts.metadata.name).
        let mut web = rollout("web", "ns", &[("app", "cache")]);
        web.spec.sts.metadata.name = Some("cache".into());
        let sts = StatefulSet {
            metadata: ObjectMeta {
                name: Some("cache".into()),
                namespace: Some("ns".into()),
                owner_references: owned_by("StatefulsetRollout", "web"),
                ..ObjectMeta::default()
            },
            ..StatefulSet::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("cache-3".into()),
                namespace: Some("ns".into()),
                owner_references: owned_by("StatefulSet", "cache"),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let rollouts = store_of(vec![web.clone()]);
        let with_set = store_of(vec![sts]);
        let want = Some(ObjectRef::new("web").within("ns"));
        assert_eq!(rollout_of_pod(&rollouts, &with_set, &pod), want);
        // The set is gone (deleted under the rollout): the rollout's set name still maps the pod.
        let without_set = store_of(Vec::<StatefulSet>::new());
        assert_eq!(rollout_of_pod(&rollouts, &without_set, &pod), want);
        // An orphaned pod maps by its name.
        let orphan = Pod {
            metadata: ObjectMeta {
                owner_references: None,
                ..pod.metadata.clone()
            },
            ..Pod::default()
        };
        assert_eq!(rollout_of_pod(&rollouts, &without_set, &orphan), want);
    }

    fn slice(ns: &str, service: &str) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{service}-abcde")),
                namespace: Some(ns.into()),
                labels: Some([(labels::SERVICE_NAME.to_owned(), service.to_owned())].into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![],
            ports: None,
        }
    }

    #[test]
    fn an_endpoint_slice_maps_to_the_rollouts_gated_on_its_service() {
        let gated = |name: &str, ns: &str, provider: DiscoveryProvider| {
            let mut r = rollout(name, ns, &[("app", name)]);
            r.spec.service_discovery = Some(sroll_api::ServiceDiscovery {
                services: vec!["web".into()],
                provider: Some(provider),
                ..sroll_api::ServiceDiscovery::default()
            });
            r
        };
        let web = gated("web", "ns", DiscoveryProvider::Kubernetes);
        let consul = gated("consul", "ns", DiscoveryProvider::Consul);
        let elsewhere = gated("web", "other", DiscoveryProvider::Kubernetes);
        let plain = rollout("plain", "ns", &[]);
        let store = store_of(vec![web.clone(), consul, elsewhere, plain]);
        assert_eq!(
            rollouts_of_endpoint_slice(&store, &slice("ns", "web")),
            vec![ObjectRef::from_obj(&web)]
        );
        assert!(rollouts_of_endpoint_slice(&store, &slice("ns", "db")).is_empty());
        let slices = store_of(vec![
            slice("ns", "web"),
            slice("ns", "db"),
            slice("other", "web"),
        ]);
        let caches = Caches {
            rollouts: store_of(Vec::new()),
            statefulsets: store_of(Vec::new()),
            pod_index: SharedPodIndex::default(),
            pdbs: store_of(Vec::new()),
            endpoint_slices: slices,
            controller_revisions: store_of(Vec::new()),
        };
        let found = endpoint_slices_of(&caches, "ns", &["web".to_owned()]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].namespace().as_deref(), Some("ns"));
    }

    #[test]
    fn a_pod_of_an_unmanaged_statefulset_maps_to_nothing() {
        let rollouts = store_of(vec![rollout("web", "ns", &[])]);
        let sets = store_of(Vec::<StatefulSet>::new());
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("other-0".into()),
                namespace: Some("ns".into()),
                owner_references: owned_by("StatefulSet", "other"),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        assert_eq!(rollout_of_pod(&rollouts, &sets, &pod), None);
    }

    /// A pod as the StatefulSet controller and the kubelet leave it: full spec, every condition,
    /// container statuses, managed fields, annotations, two owner references.
    pub(crate) fn full_pod(ordinal: u32, ready: bool, terminating: bool) -> Pod {
        let status = if ready { "True" } else { "False" };
        let mut v = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": format!("web-{ordinal}"), "namespace": "ns",
                "uid": format!("pod-uid-{ordinal}"), "resourceVersion": "4242",
                "generateName": "web-", "creationTimestamp": "2026-11-23T10:00:00Z",
                "labels": {"app": "web", (labels::REVISION): "web-abc",
                    "statefulset.kubernetes.io/pod-name": format!("web-{ordinal}"),
                    "apps.kubernetes.io/pod-index": ordinal.to_string()},
                "annotations": {"big": "x".repeat(10_000), LAST_APPLIED: "{}"},
                "finalizers": ["example.com/hold"],
                "ownerReferences": [
                    {"apiVersion": "example.com/v1", "kind": "Other", "name": "o", "uid": "o-uid"},
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                     "uid": "sts-uid", "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                    "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
            },
            "spec": {"hostname": format!("web-{ordinal}"), "subdomain": "web", "nodeName": "node-1",
                "containers": [{"name": "app", "image": "app:2",
                    "env": [{"name": "A", "value": "x".repeat(1_000)}]}]},
            "status": {
                "phase": "Running", "podIP": "10.0.0.7", "hostIP": "10.1.0.1",
                "startTime": "2026-11-23T10:00:01Z", "qosClass": "BestEffort",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-23T10:00:00Z"},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-23T10:00:01Z"},
                    {"type": "ContainersReady", "status": status, "lastTransitionTime": "2026-11-23T10:00:02Z"},
                    {"type": "Ready", "status": status, "lastTransitionTime": "2026-11-23T10:00:03Z",
                     "reason": "ContainersNotReady", "message": "x".repeat(500)}],
                "containerStatuses": [{"name": "app", "image": "app:2", "imageID": "sha256:abc",
                    "ready": ready, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": "2026-11-23T10:00:02Z"}}}]
            }
        });
        if terminating {
            v["metadata"]["deletionTimestamp"] = serde_json::json!("2026-11-23T11:00:00Z");
        }
        serde_json::from_value(v).expect("a valid pod")
    }

    /// The cache entry of a pod (shared with the other modules' tests).
    pub(crate) fn cached(pod: Pod) -> CachedPod {
        CachedPod::new(&WatchedPod::from(pod))
    }

    /// A pod as the cache gives it back.
    fn stripped(pod: &Pod) -> Pod {
        cached(pod.clone()).to_pod()
    }

    /// The watch's parser skips what nothing reads (`managedFields` among it) and keeps the rest:
    /// a pod parsed from its JSON caches as the full pod does.
    #[test]
    fn a_pod_parsed_by_the_watch_caches_as_the_full_pod() {
        for (ordinal, ready, terminating) in [(0, true, false), (2, true, true)] {
            let full = full_pod(ordinal, ready, terminating);
            let json = serde_json::to_value(&full).expect("serializes");
            assert!(
                json["metadata"]["managedFields"].is_array(),
                "the fixture has them"
            );
            let watched: WatchedPod = serde_json::from_value(json).expect("parses");
            assert!(watched.metadata.managed_fields.is_none());
            assert!(watched.metadata.creation_timestamp.is_none());
            let parsed = CachedPod::new(&watched);
            assert_eq!(parsed.to_pod(), cached(full.clone()).to_pod());
            assert_eq!(parsed.observed("web"), cached(full).observed("web"));
        }
    }

    /// The readers of single pods get from the index what they read from the full pod.
    #[test]
    fn single_pods_read_from_the_index_what_the_full_pod_says() {
        let pods: Vec<Pod> = [(0, true, false), (1, false, false), (2, true, true)]
            .into_iter()
            .map(|(o, ready, terminating)| full_pod(o, ready, terminating))
            .collect();
        let feed = PodFeed::new(pods.iter().cloned().map(cached).collect());
        let caches = Caches {
            rollouts: store_of(Vec::new()),
            statefulsets: store_of(Vec::new()),
            pod_index: feed.index.clone(),
            pdbs: store_of(Vec::new()),
            endpoint_slices: store_of(Vec::new()),
            controller_revisions: store_of(Vec::new()),
        };
        for full in &pods {
            let name = full.metadata.name.as_deref().expect("a name");
            let want = sroll_planner::inplace::SeenPod::from_pod(full);
            assert_eq!(pod_seen(&caches, "ns", name), Some(want));
            assert_eq!(
                pod_meta(&caches, "ns", name),
                Some(PodMeta {
                    uid: full.metadata.uid.clone().expect("a uid"),
                    resource_version: 4242,
                    terminating: full.metadata.deletion_timestamp.is_some(),
                })
            );
            assert_eq!(pod_ip(&caches, "ns", name).as_deref(), Some("10.0.0.7"));
        }
        // Not held: another namespace, another name for the same ordinal, no ordinal.
        assert_eq!(pod_meta(&caches, "other", "web-0"), None);
        assert_eq!(pod_meta(&caches, "ns", "web-00"), None);
        assert_eq!(pod_seen(&caches, "ns", "web"), None);
        assert_eq!(pod_ip(&caches, "ns", "web-7"), None);
    }

    /// A pod whose address alone changed wakes its set for service discovery (`view: false`);
    /// the same address, or a pod the index does not hold yet, does not.
    #[test]
    fn a_new_pod_address_alone_is_a_discovery_trigger() {
        let mut feed = PodFeed::new(vec![cached(full_pod(0, true, false))]);
        let with_ip = |ip: Option<&str>, rv: &str| {
            let mut p = full_pod(0, true, false);
            p.metadata.resource_version = Some(rv.into());
            p.status.as_mut().expect("status").pod_ip = ip.map(str::to_owned);
            cached(p)
        };
        assert!(
            feed.event(&watcher::Event::Apply(with_ip(Some("10.0.0.7"), "5000")))
                .is_empty()
        );
        let moved = feed.event(&watcher::Event::Apply(with_ip(Some("10.0.0.8"), "5001")));
        assert_eq!(
            moved,
            vec![PodsChanged {
                set: ("ns".into(), "web".into()),
                view: false,
                wake: Wake::Now,
            }]
        );
        assert_eq!(pod_ip_of(&feed, "web-0").as_deref(), Some("10.0.0.8"));
        assert_eq!(
            feed.event(&watcher::Event::Apply(with_ip(None, "5002")))
                .len(),
            1,
            "the address is gone"
        );
        assert_eq!(pod_ip_of(&feed, "web-0"), None);
        // A view change reports the view (whatever the address did).
        let mut not_ready = full_pod(0, false, false);
        not_ready.status.as_mut().expect("status").pod_ip = Some("10.0.0.9".into());
        let changed = feed.event(&watcher::Event::Apply(cached(not_ready)));
        assert_eq!(changed.len(), 1);
        assert!(changed[0].view);
        // A new pod is a view change of its set.
        assert!(feed.event(&watcher::Event::Apply(cached(full_pod(1, false, false))))[0].view);
    }

    fn pod_ip_of(feed: &PodFeed, name: &str) -> Option<String> {
        feed.index
            .pod("ns", name, |_, _, extra| {
                extra.pod_ip.as_deref().map(str::to_owned)
            })
            .flatten()
    }

    /// The reconciles wait for the index's first complete list, each of them woken by it.
    #[test]
    fn the_pod_index_is_ready_at_its_first_complete_list() {
        let index = SharedPodIndex::default();
        let (a, b) = (Arc::new(Woken::default()), Arc::new(Woken::default()));
        let mut first = std::pin::pin!(index.wait_until_ready());
        let mut second = std::pin::pin!(index.wait_until_ready());
        assert!(poll(first.as_mut(), &a).is_pending());
        assert!(poll(second.as_mut(), &b).is_pending());
        index.event(&watcher::Event::Init);
        index.event(&watcher::Event::InitApply(cached(full_pod(0, true, false))));
        assert!(!index.is_ready(), "not before the list is complete");
        assert!(!a.take() && !b.take());
        index.event(&watcher::Event::InitDone);
        assert!(index.is_ready());
        assert!(a.take() && b.take(), "every waiter is woken");
        assert!(poll(first.as_mut(), &a).is_ready());
        assert!(poll(second.as_mut(), &b).is_ready());
        assert_eq!(index.len(), 1, "the list is in the index by then");
        // A relist does not make it unready.
        index.event(&watcher::Event::Init);
        assert!(index.is_ready());
        assert!(poll(std::pin::pin!(index.wait_until_ready()), &a).is_ready());
    }

    #[test]
    fn a_cached_pod_yields_the_same_observed_pod_as_the_full_one() {
        for (ordinal, ready, terminating) in [(0, true, false), (1, false, false), (2, true, true)]
        {
            let full = full_pod(ordinal, ready, terminating);
            let slim = stripped(&full);
            let want = sroll_planner::ObservedPod::from_pod(&full, "web").expect("a member");
            let entry = cached(full.clone());
            assert_eq!(entry.name(), full.metadata.name.as_deref().expect("a name"));
            assert_eq!(entry.uid(), full.metadata.uid.as_deref());
            assert_eq!(entry.pod_ip(), Some("10.0.0.7"));
            assert_eq!(entry.is_terminating(), terminating);
            assert_eq!(want.ready, ready, "the fixture is what it says");
            assert_eq!(want.terminating, terminating);
            assert_eq!(
                sroll_planner::ObservedPod::from_pod(&slim, "web"),
                Some(want)
            );
            // Service discovery reads the address; the pod mapper the controller reference.
            assert_eq!(
                slim.status.as_ref().and_then(|s| s.pod_ip.as_deref()),
                Some("10.0.0.7")
            );
            assert_eq!(controller_of(&slim.metadata, "StatefulSet"), Some("web"));
            assert_eq!(slim.metadata.labels, full.metadata.labels);
        }
    }

    #[test]
    fn cached_pods_give_the_snapshot_the_full_pods_would() {
        let rollout: StatefulsetRollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "ns", "uid": "r-uid"},
            "spec": {"replicas": 4, "sts": {"spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "app:2"}]}},
                "serviceName": "web"}}}
        }))
        .expect("a valid rollout");
        let set: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "sts-uid", "generation": 2,
                "resourceVersion": "10",
                "ownerReferences": [{"apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
                    "name": "web", "uid": "r-uid", "controller": true}]},
            "spec": {"replicas": 4, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "app:2"}]}}},
            "status": {"replicas": 4, "observedGeneration": 2, "currentRevision": "web-old",
                "updateRevision": "web-abc"}
        }))
        .expect("a valid set");
        // A pod relabelled out of the set's selector is not a member.
        let mut relabelled = full_pod(3, true, false);
        relabelled
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("app".into(), "debug".into());
        let pods = vec![
            full_pod(0, true, false),
            full_pod(1, false, false),
            full_pod(2, true, true),
            relabelled,
        ];
        let selector = Selector::try_from(match_labels(&[("app", "web")])).expect("a selector");
        let want: Vec<_> = pods
            .iter()
            .filter(|p| selector.matches(p.metadata.labels.as_ref().expect("labels")))
            .filter_map(|p| sroll_planner::ObservedPod::from_pod(p, "web"))
            .collect();
        assert_eq!(want.len(), 3, "the relabelled pod is left out");
        let mut slim_set = set;
        strip_statefulset(&mut slim_set);
        assert!(
            slim_set
                .spec
                .as_ref()
                .is_some_and(|s| s.template.spec.is_none())
        );
        let feed = PodFeed::new(pods.into_iter().map(cached).collect());
        let caches = Caches {
            rollouts: store_of(vec![rollout.clone()]),
            statefulsets: store_of(vec![slim_set]),
            pod_index: feed.index.clone(),
            pdbs: store_of(Vec::new()),
            endpoint_slices: store_of(Vec::new()),
            controller_revisions: store_of(Vec::new()),
        };
        let now = "2026-11-23T12:00:00Z".parse().expect("a timestamp");
        let expectations = crate::observe::Expectations::default();
        let observed = crate::observe::observe(&caches, &expectations, &rollout, now);
        assert_eq!(observed.pods.iter().cloned().collect::<Vec<_>>(), want);
        let live = observed.statefulset.expect("the live set");
        assert_eq!(
            (live.partition, live.update_revision.as_deref()),
            (Some(1), Some("web-abc"))
        );
    }

    #[test]
    fn the_pods_of_a_set_share_their_labels_and_controller_in_the_cache() {
        let mut interner = PodInterner::default();
        let a = interner.intern(&WatchedPod::from(full_pod(0, true, false)));
        let b = interner.intern(&WatchedPod::from(full_pod(1, false, false)));
        assert!(a.shares_with(&b));
        // The per-pod identity labels come back from the name.
        let labels = b.to_pod().metadata.labels.expect("labels");
        assert_eq!(
            labels.get(labels::POD_NAME).map(String::as_str),
            Some("web-1")
        );
        assert_eq!(labels.get(labels::POD_INDEX).map(String::as_str), Some("1"));
        // An identity label that does not hold what the StatefulSet controller writes is kept as is.
        let mut odd = full_pod(2, true, false);
        odd.metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert(labels::POD_INDEX.into(), "7".into());
        let c = interner.intern(&WatchedPod::from(odd.clone()));
        assert!(!a.shares_with(&c));
        assert_eq!(c.to_pod().metadata.labels, odd.metadata.labels);
    }

    #[test]
    fn cached_pods_drop_what_nothing_reads() {
        let slim = stripped(&full_pod(0, true, false));
        assert!(slim.spec.is_none());
        let meta = &slim.metadata;
        assert!(meta.annotations.is_none());
        assert!(meta.managed_fields.is_none());
        assert!(meta.finalizers.is_none());
        assert!(meta.generate_name.is_none());
        assert!(meta.creation_timestamp.is_none());
        assert_eq!(meta.owner_references.as_ref().map(Vec::len), Some(1));
        let status = slim.status.as_ref().expect("status kept");
        assert!(status.container_statuses.is_none());
        assert!(status.host_ip.is_none());
        let conditions = status.conditions.as_ref().expect("Ready kept");
        assert_eq!(conditions.len(), 1);
        assert!(conditions[0].message.is_none());
    }

    #[test]
    fn a_stripped_endpoint_slice_gives_the_same_service_health() {
        let full: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abcde", "namespace": "ns",
                "labels": {(labels::SERVICE_NAME): "web"},
                "managedFields": [{"manager": "endpointslice-controller"}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                    "uid": "svc-uid", "controller": true}]},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true, "serving": true},
                 "hostname": "web-0", "nodeName": "node-1", "zone": "a",
                 "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "ns", "uid": "u0"}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "terminating": true},
                 "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "ns", "uid": "u1"}},
                {"addresses": ["10.0.0.3"],
                 "targetRef": {"kind": "Pod", "name": "web-2", "namespace": "ns", "uid": "u2"}}]
        }))
        .expect("a valid slice");
        let mut slim = full.clone();
        strip_endpoint_slice(&mut slim);
        assert!(slim.metadata.managed_fields.is_none() && slim.ports.is_none());
        assert!(slim.endpoints.iter().all(|e| e.node_name.is_none()));
        let services = ["web".to_owned()];
        let health = |s: &EndpointSlice| {
            sroll_integrations::discovery::endpointslice::health_from_endpoint_slices(
                "ns",
                &services,
                [s],
            )
        };
        let want = health(&full);
        assert!(want.is_healthy("web-0", None) && !want.is_healthy("web-1", None));
        assert_eq!(health(&slim), want);
    }

    /// A waker that records whether it was woken.
    #[derive(Default)]
    struct Woken(std::sync::atomic::AtomicBool);

    impl futures::task::ArcWake for Woken {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl Woken {
        fn take(&self) -> bool {
            self.0.swap(false, std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn poll<F: Future + ?Sized>(
        f: std::pin::Pin<&mut F>,
        woken: &Arc<Woken>,
    ) -> std::task::Poll<F::Output> {
        let waker = futures::task::waker(woken.clone());
        f.poll(&mut std::task::Context::from_waker(&waker))
    }

    fn ready(writer: &mut reflector::store::Writer<StatefulSet>) {
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
    }

    /// Why [`Synced`] exists: when this fails, kube-runtime wakes every waiter of a store and the
    /// gate may go.
    #[test]
    fn kube_runtime_wakes_only_the_last_of_two_waiters_on_a_store() {
        let (store, mut writer) = reflector::store::<StatefulSet>();
        let (a, b) = (Arc::new(Woken::default()), Arc::new(Woken::default()));
        let mut first = std::pin::pin!(store.wait_until_ready());
        let mut second = std::pin::pin!(store.wait_until_ready());
        assert!(poll(first.as_mut(), &a).is_pending());
        assert!(poll(second.as_mut(), &b).is_pending());
        ready(&mut writer);
        assert!(b.take(), "the waiter polled last is woken");
        assert!(!a.take(), "the first waiter's wake-up is lost");
        assert!(poll(first.as_mut(), &a).is_ready(), "ready when polled");
    }

    #[test]
    fn every_reconcile_waiting_for_the_caches_is_woken_when_they_are_ready() {
        let (store, mut writer) = reflector::store::<StatefulSet>();
        let synced = Synced::default();
        let wait = || async {
            let _ = store.wait_until_ready().await;
        };
        let wakers: Vec<Arc<Woken>> = (0..3).map(|_| Arc::default()).collect();
        let mut waits: Vec<_> = (0..3).map(|_| Box::pin(synced.wait(wait))).collect();
        for (w, woken) in waits.iter_mut().zip(&wakers) {
            assert!(poll(w.as_mut(), woken).is_pending());
        }
        ready(&mut writer);
        // Each waiter is woken in turn (the one waiting on the stores first, then each queued one
        // when the one before it finishes), never left to its timeout.
        let mut done = vec![false; 3];
        for _ in 0..3 {
            for (i, (w, woken)) in waits.iter_mut().zip(&wakers).enumerate() {
                if woken.take() && poll(w.as_mut(), woken).is_ready() {
                    done[i] = true;
                }
            }
        }
        assert_eq!(done, vec![true; 3], "every waiter was woken and finished");
        // Once ready, a new waiter does not wait at all.
        let fresh = Arc::new(Woken::default());
        assert!(poll(std::pin::pin!(synced.wait(wait)), &fresh).is_ready());
    }
}
