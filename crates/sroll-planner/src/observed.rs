//! The planner's input: a snapshot of the rollout and of the world it drives.
//!
//! The operator builds an [`Observed`] from its reflector caches (never from live GETs) on every
//! reconcile and hands it to [`crate::plan`]. The views are compact on purpose (a 1,000-pod set is
//! 1,000 small structs, not 1,000 full `Pod` objects), and each has a `from_*` constructor that reads
//! the corresponding `k8s-openapi` object, so the operator does not re-implement the extraction.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{PersistentVolumeClaim, Pod},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
    jiff::Timestamp,
};
use sroll_api::{StatefulsetRollout, predicates};

use crate::{
    desired::{ANNOTATION_SPEC_HASH, ANNOTATION_TEMPLATE_HASH},
    index::SetCounts,
    inplace::{InPlaceChange, NotInPlace, PodInPlace},
};

/// Everything [`crate::plan`] needs to decide, gathered at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The rollout as last seen (spec, metadata — `uid` and `generation` are needed — and the status
    /// the previous reconcile wrote, which carries the state that must survive restarts:
    /// `lastEvictionTime`, `lastProgressTime`, `previousRevision`, …).
    pub rollout: StatefulsetRollout,
    /// The managed StatefulSet (named [`StatefulsetRollout::statefulset_name`] in the rollout's
    /// namespace), or `None` if it does not exist.
    pub statefulset: Option<LiveStatefulSet>,
    /// The pods of that StatefulSet (pods whose name is `<set>-<ordinal>` and that the set selects),
    /// sorted by ordinal, with their aggregates. Empty when the set does not exist. Shared with the operator's pod index
    /// ([`crate::index`]), which hands out the same list until a pod of the set changes.
    pub pods: Pods,
    /// Every PodDisruptionBudget in the namespace whose selector matches the pods' labels (the
    /// operator's cache decides which do). The eviction API refuses to evict a pod with more than
    /// one.
    pub pdbs: Vec<ObservedPdb>,
    /// Service-discovery health of the pods, when `spec.serviceDiscovery` is set and the operator
    /// could look. `None`: not configured or not observed; the rollout is then not gated on it.
    pub discovery: Option<DiscoveryHealth>,
    /// The instant of the observation. The planner never reads a clock.
    pub now: Timestamp,
    /// Analysis measurements the operator took (any not yet in `status.analysis` are recorded).
    pub analysis: Vec<crate::analysis::ObservedMeasurement>,
    /// In-place updates: which revision changes can be made in place (empty unless
    /// `spec.podUpdatePolicy` allows them).
    pub in_place: InPlaceObserved,
    /// What the integrations' background workers reported (Slack message ids, delivery errors,
    /// the release callback's delivery): the planner records them in the status.
    pub integrations: IntegrationsObserved,
}

/// The integrations' results, as last reported by their background workers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IntegrationsObserved {
    /// Slack or webhooks are configured for the rollout (`None`: neither is): their report.
    pub notifications: Option<NotificationsObserved>,
    /// The delivery of the release callback of the outcome the rollout had when observed (`None`:
    /// no callback configured, no outcome, or never handed to the sender by this process).
    pub callback: Option<CallbackObserved>,
}

/// What the notifier reported for one rollout.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NotificationsObserved {
    /// The Slack messages' ids (`status.slackMessage`), once posted.
    pub slack_message: Option<sroll_api::SlackMessage>,
    /// The last delivery error of Slack or a webhook (cleared by the next success).
    pub error: Option<String>,
    /// The Slack messages do not show the latest state handed over yet.
    pub pending: bool,
}

/// Where the delivery of one release callback stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackObserved {
    /// Its `stageId`.
    pub stage_id: String,
    /// The outcome it reports.
    pub outcome: sroll_api::Phase,
    /// `Some(true)`: answered with a 2xx; `Some(false)`: given up or refused; `None`: under way.
    pub delivered: Option<bool>,
    /// The `CallbackDelivered` condition's reason (`CallbackDelivered`, `CallbackPending`,
    /// `CallbackFailed`, `CallbackRefused`).
    pub reason: String,
    /// Its message.
    pub message: String,
}

/// What the operator knows about in-place updates: for each revision a pod of the set carries
/// (other than the update revision), whether moving it to the update revision can be done in place,
/// decided by [`crate::inplace::qualifies`] on the two ControllerRevisions' templates. A revision
/// missing here is one whose ControllerRevision the operator has not seen (yet).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct InPlaceObserved {
    /// From-revision → the change to the update revision, or why it cannot be made in place.
    pub changes: BTreeMap<String, Result<InPlaceChange, NotInPlace>>,
}

/// The parts of the live StatefulSet the planner decides on.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LiveStatefulSet {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` (the precondition of a recreate).
    pub uid: String,
    /// The set has a controller owner reference to this rollout (same uid).
    pub owned_by_rollout: bool,
    /// The set has a controller owner reference to something else (another rollout, a Helm-less
    /// operator, …). Adopting it would fight that controller.
    pub owned_by_other: bool,
    /// `metadata.deletionTimestamp` is set: the set is going away.
    pub deleting: bool,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`: while it is below `generation` the StatefulSet controller has not
    /// computed the revisions of the latest spec yet.
    pub observed_generation: Option<i64>,
    /// `status.currentRevision` (a ControllerRevision name).
    pub current_revision: Option<String>,
    /// `status.updateRevision` (a ControllerRevision name).
    pub update_revision: Option<String>,
    /// `spec.updateStrategy.type` (`RollingUpdate` when unset, the API default).
    pub update_strategy: String,
    /// `spec.updateStrategy.rollingUpdate.partition`, when the strategy is `RollingUpdate` with a
    /// `rollingUpdate` block.
    pub partition: Option<i32>,
    /// `spec.replicas` (1 when unset, the API default).
    pub replicas: i32,
    /// `spec.ordinals.start` (0 when unset).
    pub ordinals_start: i32,
    /// `spec.minReadySeconds` (0 when unset).
    pub min_ready_seconds: i32,
    /// `spec.podManagementPolicy` (`OrderedReady` when unset, the API default).
    pub pod_management_policy: String,
    /// `spec.selector` (immutable).
    pub selector: LabelSelector,
    /// `spec.serviceName` (immutable; empty when unset).
    pub service_name: String,
    /// `spec.volumeClaimTemplates` (immutable).
    pub volume_claim_templates: Vec<PersistentVolumeClaim>,
    /// The `sroll.io/spec-hash` annotation: the hash of the rollout spec last applied to the set.
    pub spec_hash: Option<String>,
    /// The `sroll.io/template-hash` annotation: the hash of the pod template last applied.
    pub template_hash: Option<String>,
    /// `OnDelete` with revision pinning: the annotation
    /// [`crate::pinning::ANNOTATION_PINNED_UPDATE`] (`<updateRevision>/<ordinal>`), as written.
    pub pinned_update: Option<String>,
}

impl LiveStatefulSet {
    /// Reads the view from a live StatefulSet; `rollout_uid` is the uid of the rollout that should
    /// own it.
    pub fn from_statefulset(sts: &StatefulSet, rollout_uid: &str) -> Self {
        let meta = &sts.metadata;
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        let owned_by_rollout =
            controller.is_some_and(|o| !rollout_uid.is_empty() && o.uid == rollout_uid);
        let spec = sts.spec.clone().unwrap_or_default();
        let status = sts.status.clone().unwrap_or_default();
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let annotations = meta.annotations.clone().unwrap_or_default();
        LiveStatefulSet {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            owned_by_rollout,
            owned_by_other: controller.is_some() && !owned_by_rollout,
            deleting: meta.deletion_timestamp.is_some(),
            generation: meta.generation.unwrap_or(0),
            observed_generation: status.observed_generation,
            current_revision: status.current_revision.filter(|s| !s.is_empty()),
            update_revision: status.update_revision.filter(|s| !s.is_empty()),
            update_strategy: strategy
                .type_
                .clone()
                .unwrap_or_else(|| "RollingUpdate".into()),
            partition: strategy
                .rolling_update
                .as_ref()
                .map(|r| r.partition.unwrap_or(0)),
            replicas: spec.replicas.unwrap_or(1),
            ordinals_start: spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            pod_management_policy: spec
                .pod_management_policy
                .clone()
                .unwrap_or_else(|| "OrderedReady".into()),
            selector: spec.selector.clone(),
            service_name: spec.service_name.clone().unwrap_or_default(),
            volume_claim_templates: spec.volume_claim_templates.clone().unwrap_or_default(),
            spec_hash: annotations.get(ANNOTATION_SPEC_HASH).cloned(),
            template_hash: annotations.get(ANNOTATION_TEMPLATE_HASH).cloned(),
            pinned_update: annotations
                .get(crate::pinning::ANNOTATION_PINNED_UPDATE)
                .cloned(),
        }
    }
}

/// One pod of the managed StatefulSet.
///
/// Compact, as the operator's pod index holds one per watched pod (100,000 at fleet scale) and
/// it is the only copy the operator keeps: the strings are shared (`Arc<str>`), the revision and
/// the phase with every pod that has the same one (the operator's pod watch interns them), and
/// the name and revision with the `status.pods` lists built from them
/// (`sroll_api::PodVersion`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ObservedPod {
    /// `metadata.name` (`<set>-<ordinal>`).
    pub name: Arc<str>,
    /// The ordinal parsed from the name.
    pub ordinal: i32,
    /// The `controller-revision-hash` label (a ControllerRevision name), if any.
    pub revision: Option<Arc<str>>,
    /// Condition `Ready` is `True` and the phase is `Running` (the StatefulSet controller's
    /// `isRunningAndReady`).
    pub ready: bool,
    /// `lastTransitionTime` of the `Ready` condition when it is `True`.
    pub ready_since: Option<Timestamp>,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`; empty if unset).
    pub phase: Arc<str>,
    /// `metadata.uid`: which incarnation of the pod was observed (empty if unknown). The operator
    /// evicts with this uid as a precondition, so a newer incarnation is never evicted by mistake.
    pub uid: Arc<str>,
    /// Where the pod stands in an in-place update (its gate condition and state annotation);
    /// shared, most pods having none of it ([`shared_in_place`]).
    pub in_place: Arc<PodInPlace>,
}

/// `view` behind an `Arc`; the default view (a pod with no in-place state, most of them) is one
/// allocation shared by every pod.
pub fn shared_in_place(view: PodInPlace) -> Arc<PodInPlace> {
    static NONE: std::sync::LazyLock<Arc<PodInPlace>> = std::sync::LazyLock::new(Arc::default);
    if view == PodInPlace::default() {
        NONE.clone()
    } else {
        Arc::new(view)
    }
}

impl ObservedPod {
    /// Reads the view from a pod of the set named `set_name`; `None` if the pod's name is not
    /// `<set_name>-<ordinal>` (upstream `isMemberOf` / `getParentNameAndOrdinal` in
    /// `pkg/controller/statefulset/stateful_set_utils.go`).
    pub fn from_pod(pod: &Pod, set_name: &str) -> Option<Self> {
        let name = pod.metadata.name.as_deref()?;
        let ordinal = parse_ordinal(name, set_name)?;
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or_default();
        // Upstream `isRunningAndReady` (`pkg/controller/statefulset/stateful_set_utils.go`).
        let ready = phase == "Running" && predicates::is_pod_ready(pod);
        let ready_condition = predicates::pod_ready_condition(pod);
        Some(ObservedPod {
            ordinal,
            revision: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(sroll_api::labels::REVISION))
                .map(|r| Arc::from(r.as_str())),
            ready,
            ready_since: if ready {
                ready_condition.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
            } else {
                None
            },
            terminating: predicates::is_terminating(&pod.metadata),
            phase: phase.into(),
            uid: pod.metadata.uid.as_deref().unwrap_or_default().into(),
            in_place: shared_in_place(PodInPlace::from_pod(pod)),
            name: name.into(),
        })
    }
}

/// The pods of a snapshot, sorted by ordinal (one pod per ordinal), with their aggregates
/// ([`SetCounts`]): a list shared between snapshots (and with the pod index that built it) until
/// one of them is changed ([`Pods::put`], [`Pods::take`] copy the list when it is shared, as
/// [`Arc::make_mut`] does). Two snapshots of an unchanged set hold the same list, so comparing
/// them ([`Observed::same_inputs`]) is a pointer comparison.
///
/// The aggregates are kept with the list (every change goes through `put`/`take`, which update
/// them in O(log n)): the planner decides from them and from the few pods a decision can touch,
/// not by walking every pod.
///
/// Every version of a list has a process-unique id (given when a list is built and on every
/// change), so what a plan was made from can be remembered without holding the list
/// ([`Pods::detached`]): a held list would make the pod index copy it on the next pod event.
#[derive(Clone, Debug, Default)]
pub struct Pods(Arc<PodList>);

#[derive(Clone, Debug, Default)]
struct PodList {
    /// Each pod shared: copying a shared list to change it (`Arc::make_mut`, e.g. to overlay the
    /// operator's pending evictions on the index's list) copies pointers, not pods.
    pods: Vec<Arc<ObservedPod>>,
    counts: SetCounts,
    /// This version's id (0: the empty default list; ids of built or changed lists start at 1).
    version: u64,
}

/// A new list version id.
fn next_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Pods {
    /// Whether `self` and `other` are the same shared list (not only equal ones).
    pub fn same_list(&self, other: &Pods) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// A handle that compares equal ([`PartialEq`]) to this version of the list and to nothing
    /// else non-empty, holding none of its pods (its own view is empty): for remembering what a
    /// plan was made from ([`Observed::detached`]) without keeping the list shared.
    pub fn detached(&self) -> Pods {
        Pods(Arc::new(PodList {
            pods: Vec::new(),
            counts: SetCounts::default(),
            version: self.0.version,
        }))
    }

    /// The aggregates of the pods (always equal to [`SetCounts::recount`] of them).
    pub fn counts(&self) -> &SetCounts {
        &self.0.counts
    }

    /// The pod with `ordinal`, found by binary search.
    pub fn get(&self, ordinal: i32) -> Option<&ObservedPod> {
        self.position(ordinal).ok().map(|i| &*self.0.pods[i])
    }

    /// The pods in ordinal order.
    pub fn iter(&self) -> PodsIter<'_> {
        self.0.pods.iter().map(|p| &**p)
    }

    /// Where the pod with `ordinal` is (`Ok`), or would be inserted (`Err`).
    pub fn position(&self, ordinal: i32) -> Result<usize, usize> {
        self.0.pods.binary_search_by_key(&ordinal, |p| p.ordinal)
    }

    /// Puts `pod` at its ordinal (replacing the pod there); whether anything changed. Copies the
    /// list first if it is shared and the pod differs.
    pub fn put(&mut self, pod: ObservedPod) -> bool {
        match self.position(pod.ordinal) {
            Ok(i) if *self.0.pods[i] == pod => false,
            Ok(i) => {
                let list = Arc::make_mut(&mut self.0);
                list.counts.remove(&list.pods[i]);
                list.counts.add(&pod);
                list.pods[i] = Arc::new(pod);
                list.version = next_version();
                true
            }
            Err(i) => {
                let list = Arc::make_mut(&mut self.0);
                list.counts.add(&pod);
                list.pods.insert(i, Arc::new(pod));
                list.version = next_version();
                true
            }
        }
    }

    /// Removes the pod with `ordinal` (copying the list first if it is shared).
    pub fn take(&mut self, ordinal: i32) -> Option<ObservedPod> {
        let i = self.position(ordinal).ok()?;
        let list = Arc::make_mut(&mut self.0);
        let pod = list.pods.remove(i);
        list.counts.remove(&pod);
        list.version = next_version();
        Some(Arc::unwrap_or_clone(pod))
    }
}

impl PartialEq for Pods {
    /// The same shared list, the same version of a list (one of them may be
    /// [`detached`](Pods::detached)), or equal pods.
    fn eq(&self, other: &Pods) -> bool {
        self.same_list(other)
            || (self.0.version != 0 && self.0.version == other.0.version)
            || self.0.pods == other.0.pods
    }
}

impl Eq for Pods {}

impl Deref for Pods {
    type Target = [Arc<ObservedPod>];

    fn deref(&self) -> &[Arc<ObservedPod>] {
        &self.0.pods
    }
}

/// [`Pods::iter`].
pub type PodsIter<'a> = std::iter::Map<
    std::slice::Iter<'a, Arc<ObservedPod>>,
    fn(&'a Arc<ObservedPod>) -> &'a ObservedPod,
>;

impl From<Vec<ObservedPod>> for Pods {
    /// Sorts `pods` by ordinal; of two pods with the same ordinal the later one is kept.
    fn from(mut pods: Vec<ObservedPod>) -> Self {
        pods.reverse();
        // Stable: of equal ordinals the later pod (now first) survives the dedup.
        pods.sort_by_key(|p| p.ordinal);
        pods.dedup_by_key(|p| p.ordinal);
        let counts = SetCounts::recount(&pods);
        Pods(Arc::new(PodList {
            pods: pods.into_iter().map(Arc::new).collect(),
            counts,
            version: next_version(),
        }))
    }
}

impl FromIterator<ObservedPod> for Pods {
    fn from_iter<I: IntoIterator<Item = ObservedPod>>(iter: I) -> Self {
        Pods::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a Pods {
    type Item = &'a ObservedPod;
    type IntoIter = PodsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The ordinal of a pod named `<set_name>-<ordinal>`, if it is one.
pub fn parse_ordinal(pod_name: &str, set_name: &str) -> Option<i32> {
    let rest = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// A PodDisruptionBudget selecting the set's pods.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ObservedPdb {
    /// `metadata.name`.
    pub name: String,
    /// `status.disruptionsAllowed`.
    pub disruptions_allowed: i32,
    /// `status.currentHealthy`.
    pub current_healthy: i32,
    /// `status.desiredHealthy`.
    pub desired_healthy: i32,
    /// `status.expectedPods`: the pods the budget counts (the scale of their controllers). Equal
    /// to the set's replicas when the PDB selects only the set's pods.
    pub expected_pods: i32,
    /// `status.observedGeneration < metadata.generation`: the disruption controller has not
    /// processed the latest spec, and the eviction API answers 429 until it has
    /// (`pkg/registry/core/pod/storage/eviction.go`, `checkAndDecrement`).
    pub stale: bool,
}

impl ObservedPdb {
    /// Reads the view from a PDB that selects the set's pods (which PDBs do is the observer's
    /// question: `sroll_operator::cache::pdb_selects`).
    pub fn from_pdb(pdb: &PodDisruptionBudget) -> Self {
        let status = pdb.status.clone().unwrap_or_default();
        ObservedPdb {
            name: pdb.metadata.name.clone().unwrap_or_default(),
            disruptions_allowed: status.disruptions_allowed,
            current_healthy: status.current_healthy,
            desired_healthy: status.desired_healthy,
            expected_pods: status.expected_pods,
            stale: status.observed_generation.unwrap_or(0) < pdb.metadata.generation.unwrap_or(0),
        }
    }
}

/// What service discovery says about the workload.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DiscoveryHealth {
    /// Service discovery answered. When `false`, the rollout does not evict (it cannot check that
    /// the pods it moved came back healthy) and reports a `Degraded` condition.
    pub reachable: bool,
    /// Names of the pods healthy in service discovery (passing in every listed service).
    pub healthy_pods: BTreeSet<String>,
    /// Which of `spec.serviceDiscovery.services` exist in service discovery.
    pub existing_services: Vec<String>,
    /// Not known yet: service discovery has not answered the rollout's current query (a new or
    /// changed query, or a restart of the operator; the operator never waits for the answer, the
    /// poller reconciles the rollout when it comes). The rollout holds — no eviction — without a
    /// `Degraded` condition, and keeps the discovery fields of its status; the other fields are
    /// empty.
    pub pending: bool,
}

impl Observed {
    /// Whether `self` and `other` hold the same inputs, their instants aside: a plan of one would
    /// decide what a plan of the other did, as long as no time-based wait of that plan (its
    /// `requeue_after`: pacing, `minReadySeconds`, deadlines, analysis schedules) came due.
    pub fn same_inputs(&self, other: &Observed) -> bool {
        let Observed {
            rollout,
            statefulset,
            pods,
            pdbs,
            discovery,
            now: _,
            analysis,
            in_place,
            integrations,
        } = self;
        *rollout == other.rollout
            && *statefulset == other.statefulset
            && *pods == other.pods
            && *pdbs == other.pdbs
            && *discovery == other.discovery
            && *analysis == other.analysis
            && *in_place == other.in_place
            && *integrations == other.integrations
    }

    /// This snapshot as a memory of what a plan was made from: equal under [`Self::same_inputs`]
    /// to every snapshot this one is, but holding no pod list ([`Pods::detached`]).
    pub fn detached(mut self) -> Observed {
        self.pods = self.pods.detached();
        self
    }

    /// A snapshot with no StatefulSet, pods, PDB or discovery view.
    pub fn new(rollout: StatefulsetRollout, now: Timestamp) -> Self {
        Observed {
            rollout,
            statefulset: None,
            pods: Pods::default(),
            pdbs: Vec::new(),
            discovery: None,
            now,
            analysis: Vec::new(),
            in_place: InPlaceObserved::default(),
            integrations: IntegrationsObserved::default(),
        }
    }
}
