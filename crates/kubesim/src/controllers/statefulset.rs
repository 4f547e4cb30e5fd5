//! One sync of the StatefulSet controller as a pure function: given the set,
//! its resolved current/update revisions, its pods and the namespace's PVCs,
//! decide which PVCs and pods to create, which pods to delete or repair, and
//! which status to write.
//!
//! Follows `updateStatefulSet`, `processReplica`, `processCondemned`,
//! `updateStatefulSetAfterInvariantEstablished` (the `MaxUnavailableStatefulSet`
//! path, beta and on by default in v1.35), `computeReplicaStatus`,
//! `completeRollingUpdate` and `inconsistentStatus` in
//! `pkg/controller/statefulset/stateful_set_control.go`, and
//! `newVersionedStatefulSetPod`, `newStatefulSetPod`, `updateStorage`,
//! `initIdentity`, `isClaimOwnerUpToDate`, `getStatefulSetMaxUnavailable` in
//! `stateful_set_utils.go`, plus `ClaimPods` of
//! `pkg/controller/controller_ref_manager.go` for adoption.
//!
//! Simplifications (each documented where it happens):
//! * upstream issues writes as it goes; here the writes are returned in the
//!   order upstream issues them and the driver executes them in that order,
//!   stopping at the first failure. For `Parallel` sets upstream runs creates in
//!   slow-start batches (1, 2, 4, …) and stops after a failing batch; the driver
//!   stopping at the first failure is the same outcome for a failure in the
//!   first batch and slightly more conservative otherwise.
//! * `CreateStatefulPod` creates PVCs, the pod, then patches the PVCs' owner
//!   references for the retention policy; PVCs are created here directly with
//!   the owner references the policy asks for (same end state, one write less).

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, LazyLock, Mutex, PoisonError},
};

use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, StatefulSet, StatefulSetSpec, StatefulSetStatus},
        core::v1::{
            PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodSpec,
            PodTemplateSpec, Volume,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
    jiff::{SignedDuration, Timestamp},
};

use super::{
    CachedPod, Error, POD_INDEX_LABEL, POD_NAME_LABEL, PodView, REVISION_LABEL, controller_of,
    controller_ref, history::revision_template, phase, ready_condition, scaled_value,
    selector_matches,
};

/// A write the StatefulSet controller issues during one sync, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SetWrite {
    /// POST a PersistentVolumeClaim from a `volumeClaimTemplate`.
    CreateClaim(PersistentVolumeClaim),
    /// PUT a PVC whose owner references must follow the retention policy.
    UpdateClaim(PersistentVolumeClaim),
    /// POST a pod.
    CreatePod(Pod),
    /// PUT a pod whose identity (pod-name label) or storage (claim volumes)
    /// drifted (`UpdateStatefulPod`).
    UpdatePod(Pod),
    /// DELETE a pod with default options (its own grace period).
    DeletePod {
        /// Pod name.
        name: String,
    },
}

/// Result of one sync.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    /// Writes to issue, in order; the driver stops at the first failure.
    pub writes: Vec<SetWrite>,
    /// The status upstream would write (after `completeRollingUpdate`).
    pub status: StatefulSetStatus,
    /// `inconsistentStatus`: whether the status must be written.
    pub write_status: bool,
    /// An error upstream would return after the writes (e.g. `pvc … is being
    /// deleted`); the sync is retried with back-off.
    pub error: Option<String>,
    /// When to sync again even without events (minReadySeconds gating).
    pub requeue_after: Option<SignedDuration>,
}

/// What a claim of pods by a StatefulSet decided (`ClaimPods`). Owned pods
/// are borrowed from the caller's cache; only pods about to be adopted (whose
/// controller reference is added here) are copies.
#[derive(Debug, Clone, PartialEq)]
pub struct PodClaims<'a, P = Pod> {
    /// Pods the set owns (including ones it is about to adopt), each with its
    /// [`MemberFacts`].
    pub owned: Vec<Member<'a, P>>,
    /// Orphans to adopt: patch a controller reference in.
    pub adopt: Vec<String>,
    /// Owned pods that no longer match: remove our controller reference.
    pub release: Vec<String>,
}

impl<P> Default for PodClaims<'_, P> {
    fn default() -> Self {
        Self {
            owned: Vec::new(),
            adopt: Vec::new(),
            release: Vec::new(),
        }
    }
}

/// A pod a sync reads: the cache's version (a `Pod`, or the pod cache's
/// [`super::CachedPod`]), the cache's version with the metadata of an
/// adoption, or a placeholder made in this sync; boxed so that the lists of
/// a sync's pods stay small (a `Pod` is over a kilobyte: the lists were
/// copied and moved at that size).
#[derive(Debug, PartialEq)]
pub enum PodRef<'a, P = Pod> {
    /// The cached version, read in place.
    Cached(&'a P),
    /// The cached version with this metadata (its new controller reference):
    /// a pod about to be adopted.
    Adopted(&'a P, Box<ObjectMeta>),
    /// A placeholder of a pod to create.
    New(Box<Pod>),
}

impl<P> Clone for PodRef<'_, P> {
    fn clone(&self) -> Self {
        match self {
            Self::Cached(p) => Self::Cached(p),
            Self::Adopted(p, m) => Self::Adopted(p, m.clone()),
            Self::New(p) => Self::New(p.clone()),
        }
    }
}

impl<P: PodView> PodView for PodRef<'_, P> {
    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Cached(p) => p.meta(),
            Self::Adopted(_, m) => m,
            Self::New(p) => &p.metadata,
        }
    }

    fn spec_node_name(&self) -> Option<&str> {
        match self {
            Self::Cached(p) | Self::Adopted(p, _) => p.spec_node_name(),
            Self::New(p) => p.spec_node_name(),
        }
    }

    fn spec_hostname(&self) -> Option<&str> {
        match self {
            Self::Cached(p) | Self::Adopted(p, _) => p.spec_hostname(),
            Self::New(p) => p.spec_hostname(),
        }
    }

    fn spec_subdomain(&self) -> Option<&str> {
        match self {
            Self::Cached(p) | Self::Adopted(p, _) => p.spec_subdomain(),
            Self::New(p) => p.spec_subdomain(),
        }
    }

    fn find_container_port(
        &self,
        found: &dyn Fn(&k8s_openapi::api::core::v1::ContainerPort) -> bool,
    ) -> Option<&k8s_openapi::api::core::v1::ContainerPort> {
        match self {
            Self::Cached(p) | Self::Adopted(p, _) => p.find_container_port(found),
            Self::New(p) => p.find_container_port(found),
        }
    }

    fn volume_claim(&self, volume: &str) -> Option<&PersistentVolumeClaimVolumeSource> {
        match self {
            Self::Cached(p) | Self::Adopted(p, _) => p.volume_claim(volume),
            Self::New(p) => p.volume_claim(volume),
        }
    }

    fn status_phase(&self) -> Option<&str> {
        match self {
            Self::Cached(p) | Self::Adopted(p, _) => p.status_phase(),
            Self::New(p) => p.status_phase(),
        }
    }

    fn ready_condition(&self) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
        match self {
            Self::Cached(p) | Self::Adopted(p, _) => p.ready_condition(),
            Self::New(p) => p.ready_condition(),
        }
    }

    fn status_pod_ip(&self) -> Option<&str> {
        match self {
            Self::Cached(p) | Self::Adopted(p, _) => p.status_pod_ip(),
            Self::New(p) => p.status_pod_ip(),
        }
    }

    fn to_pod(&self) -> Pod {
        match self {
            Self::Cached(p) => p.to_pod(),
            Self::Adopted(p, m) => Pod {
                metadata: (**m).clone(),
                ..p.to_pod()
            },
            Self::New(p) => (**p).clone(),
        }
    }
}

/// A pod the set owns, as a sync reads it: the pod (the cache's version, or a
/// copy about to be adopted) and its [`MemberFacts`].
///
/// Made only by the claim ([`claim_members`]; `non_exhaustive`: not outside
/// this crate), which keeps a pod only when
/// it is in the set's namespace and a member of the set by name
/// (`isMemberOf`): the name and namespace parts of `identityMatches` hold for
/// every member, and a sync reads only the pod-name label part
/// ([`MemberFacts::named`]) of it.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub struct Member<'a, P = Pod> {
    /// The pod.
    pub pod: PodRef<'a, P>,
    /// What the controller reads of it.
    pub facts: Arc<MemberFacts>,
}

super::projection::forward_pod_view!(impl['a, P: PodView] for Member<'a, P> => |s| s.pod);

impl<P> Clone for Member<'_, P> {
    fn clone(&self) -> Self {
        Self {
            pod: self.pod.clone(),
            facts: self.facts.clone(),
        }
    }
}

/// The pod's phase, as the controller tells phases apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PhaseClass {
    /// No phase (`""`: the API server has not set one).
    #[default]
    Unset,
    /// `Pending`.
    Pending,
    /// `Running`.
    Running,
    /// `Succeeded` or `Failed`.
    Finished,
    /// Any other value.
    Other,
}

impl PhaseClass {
    fn of(phase: &str) -> Self {
        match phase {
            "" => Self::Unset,
            "Pending" => Self::Pending,
            "Running" => Self::Running,
            "Succeeded" | "Failed" => Self::Finished,
            _ => Self::Other,
        }
    }
}

/// A revision name (a pod's revision label, a sync's current or update
/// revision), interned: every live `Revision` of one name shares one
/// allocation, so equality is a pointer compare. A sync compares each pod's
/// revision with the current and the update revision (`getPodRevision(pod)
/// == currentRevision.Name` in `stateful_set_control.go`); as string compares
/// they read every pod's label bytes at every sync (a cache miss each: the
/// `memcmp` of the profiles). Exact: the interner hands out the allocation
/// it holds for a name while any `Revision` of it lives, and drops a name
/// only when no `Revision` holds it.
#[derive(Clone)]
pub struct Revision(Arc<str>);

/// The interner of [`Revision`]: the names, and the size at which names no
/// `Revision` holds are dropped next (amortized: at twice the size left).
struct Revisions {
    names: HashSet<Arc<str>>,
    sweep_at: usize,
}

static REVISIONS: LazyLock<Mutex<Revisions>> = LazyLock::new(|| {
    Mutex::new(Revisions {
        names: HashSet::new(),
        sweep_at: 64,
    })
});

impl Revision {
    /// The revision named `name`.
    pub fn intern(name: &str) -> Self {
        let mut all = REVISIONS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = all.names.get(name) {
            return Self(kept.clone());
        }
        if all.names.len() >= all.sweep_at {
            // Held only here: no `Revision` can compare with it (a clone is
            // made only from a holder, or here under the lock).
            all.names.retain(|n| Arc::strong_count(n) > 1);
            all.sweep_at = (all.names.len() * 2).max(64);
        }
        let fresh: Arc<str> = Arc::from(name);
        all.names.insert(fresh.clone());
        Self(fresh)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many names the interner holds (tests).
    #[cfg(test)]
    fn interned() -> usize {
        REVISIONS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .names
            .len()
    }
}

impl PartialEq for Revision {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for Revision {}

impl std::fmt::Debug for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Default for Revision {
    fn default() -> Self {
        Self::intern("")
    }
}

/// What a StatefulSet's claim of a pod reads of the set (`ClaimPods` with the
/// set's selector, `isMemberOf`, the controller reference's uid, and the
/// namespace the set lists): the key of the claim's verdict kept in each pod
/// version's [`MemberFacts`]. The runtime keeps one `Arc` per set while it
/// is equal, so that a verdict is found by pointer; [`claim_members`] checks
/// that a key it is given describes the set, and uses a fresh one if not.
#[derive(Debug, PartialEq)]
pub struct ClaimKey {
    namespace: Option<String>,
    name: String,
    uid: String,
    selector: LabelSelector,
}

impl ClaimKey {
    /// The key of `set`'s claim.
    pub fn of(set: &StatefulSet) -> Result<Self, Error> {
        Ok(Self {
            namespace: set.metadata.namespace.clone(),
            name: set_name(set).to_owned(),
            uid: set.metadata.uid.clone().unwrap_or_default(),
            selector: spec(set)?.selector.clone(),
        })
    }

    /// Whether this is the key of `set`'s claim (without copying the set's fields).
    pub fn describes(&self, set: &StatefulSet) -> bool {
        self.namespace == set.metadata.namespace
            && self.name == set_name(set)
            && self.uid == set.metadata.uid.as_deref().unwrap_or_default()
            && set
                .spec
                .as_ref()
                .is_some_and(|s| s.selector == self.selector)
    }
}

/// What the claim decided of one pod version for one [`ClaimKey`]: a pure
/// function of both (errors of the selector are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    /// The pod is in the set's namespace (the claim lists only that one).
    in_namespace: bool,
    /// A member of the set by name whose labels the selector matches
    /// (computed for pods of the namespace only).
    matches: bool,
    /// Whether its controller reference is the set's (`None`: no controller).
    ours: Option<bool>,
}

/// What the StatefulSet controller reads of one pod version that depends on
/// neither the set nor the instant: computed once per stored version (the
/// runtime's pod cache keeps it beside the pod, keyed by the version's
/// resourceVersion, `runtime::Cache::claimable_members`), so that a sync,
/// which upstream makes over every pod of the set at each pod event
/// (`getPodsForStatefulSet`, `ClaimPods`, then `getOrdinal`,
/// `getPodRevision`, `isRunningAndReady`, `IsPodAvailable` at each use),
/// reads small structs instead of the pods' maps. What depends on the set
/// (its revisions) or on `now` (availability) is derived per sync in
/// [`ReplicaFacts::of_member`].
#[derive(Debug, Default)]
pub struct MemberFacts {
    /// `getParentNameAndOrdinal`: the byte length of the parent name, when
    /// the name ends in `-<digits>` that parse as an ordinal.
    parent_len: Option<usize>,
    /// `getOrdinal` (-1 when the name has no ordinal).
    pub ordinal: i32,
    /// The phase.
    pub phase: PhaseClass,
    /// `deletionTimestamp` set.
    pub terminating: bool,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The `Ready` condition's `lastTransitionTime` (read only when ready).
    pub ready_since: Option<Timestamp>,
    /// The revision label (`""` when absent), interned.
    pub revision: Revision,
    /// The pod-name label equals the pod's name (part of `identityMatches`).
    pub named: bool,
    /// The uid of the controller owner reference.
    pub controller: Option<String>,
    /// The claim's verdict for this version and the [`ClaimKey`] held here
    /// (compared by identity): a memo, not a fact of the pod, so
    /// [`PartialEq`] ignores it.
    claimed: Mutex<Option<(Arc<ClaimKey>, Verdict)>>,
    /// The pod cache's version these facts are of, when the pod cache made
    /// them ([`MemberFacts::kept_with`]): a sync holds the facts of the set's
    /// pods and reads each pod through them, so that listing a set's pods
    /// touches one shared object per pod (the facts), not two (the pod's
    /// reference count was a cache miss per pod visited). Not a fact, so
    /// [`PartialEq`] ignores it.
    cached: Option<Arc<CachedPod>>,
}

impl PartialEq for MemberFacts {
    fn eq(&self, o: &Self) -> bool {
        self.parent_len == o.parent_len
            && self.ordinal == o.ordinal
            && self.phase == o.phase
            && self.terminating == o.terminating
            && self.ready == o.ready
            && self.ready_since == o.ready_since
            && self.revision == o.revision
            && self.named == o.named
            && self.controller == o.controller
    }
}

impl MemberFacts {
    /// The facts of one pod version.
    pub fn of(pod: &(impl PodView + ?Sized)) -> Self {
        let meta = pod.meta();
        let name = meta.name.as_deref().unwrap_or_default();
        let parsed = parent_and_ordinal(name);
        let ready = ready_condition(pod);
        Self {
            parent_len: parsed.map(|(p, _)| p.len()),
            ordinal: parsed.map_or(-1, |(_, o)| o),
            phase: PhaseClass::of(phase(pod)),
            terminating: meta.deletion_timestamp.is_some(),
            ready: ready.is_some_and(|c| c.status == "True"),
            ready_since: ready.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0)),
            revision: Revision::intern(pod_revision(pod)),
            named: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_NAME_LABEL))
                .is_some_and(|v| v == name),
            controller: controller_of(meta).map(|r| r.uid.clone()),
            claimed: Mutex::new(None),
            cached: None,
        }
    }

    /// The facts of the pod cache's version `pod`, holding it ([`MemberFacts::cached`]).
    pub fn kept_with(pod: Arc<CachedPod>) -> Self {
        Self {
            cached: Some(pod.clone()),
            ..Self::of(&*pod)
        }
    }

    /// The pod cache's version these facts are of, when made by [`MemberFacts::kept_with`].
    pub fn cached(&self) -> Option<&Arc<CachedPod>> {
        self.cached.as_ref()
    }

    /// Whether the pod `name` (the version these facts are of) is a member
    /// of the set `set_name` by name (`isMemberOf`: the parent name equals
    /// the set's).
    fn member_of(&self, name: &str, set_name: &str) -> bool {
        self.parent_len
            .is_some_and(|n| name.get(..n) == Some(set_name))
    }

    /// The claim's [`Verdict`] on this version (whose metadata is `meta`)
    /// for `key`, memoized per key (compared by identity). Errors are not kept.
    fn verdict(&self, meta: &ObjectMeta, key: &Arc<ClaimKey>) -> Result<Verdict, Error> {
        if let Ok(m) = self.claimed.lock()
            && let Some((k, v)) = m.as_ref()
            && Arc::ptr_eq(k, key)
        {
            return Ok(*v);
        }
        let v = if meta.namespace == key.namespace {
            let name = meta.name.as_deref().unwrap_or_default();
            Verdict {
                in_namespace: true,
                matches: self.member_of(name, &key.name)
                    && selector_matches(&key.selector, meta.labels.as_ref())?,
                ours: self.controller.as_deref().map(|c| c == key.uid),
            }
        } else {
            Verdict {
                in_namespace: false,
                matches: false,
                ours: None,
            }
        };
        if let Ok(mut m) = self.claimed.lock() {
            *m = Some((key.clone(), v));
        }
        Ok(v)
    }

    /// `podutil.IsPodAvailable` at `now` (see [`super::is_pod_available`]).
    fn available(&self, min_ready_seconds: i32, now: Timestamp) -> bool {
        if !self.ready {
            return false;
        }
        if min_ready_seconds <= 0 {
            return true;
        }
        self.ready_since.is_some_and(|t| {
            t.checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
                .is_ok_and(|ready_at| ready_at <= now)
        })
    }
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

fn spec(set: &StatefulSet) -> Result<&StatefulSetSpec, Error> {
    set.spec.as_ref().ok_or(Error::MissingField {
        what: format!("StatefulSet {}", set_name(set)),
        field: "spec",
    })
}

/// `spec.replicas` with its default of 1.
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `getStartOrdinal`.
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// `getParentNameAndOrdinal`: `(.*)-([0-9]+)$`.
pub fn parent_and_ordinal(pod_name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = pod_name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

fn ordinal(pod: &(impl PodView + ?Sized)) -> i32 {
    pod.meta()
        .name
        .as_deref()
        .and_then(parent_and_ordinal)
        .map_or(-1, |(_, o)| o)
}

/// The revision name on a pod (`getPodRevision`).
pub fn pod_revision(pod: &(impl PodView + ?Sized)) -> &str {
    pod.meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map_or("", String::as_str)
}

/// The effective update strategy after `SetDefaults_StatefulSet`: type
/// (`RollingUpdate` or `OnDelete`) and the rolling-update block as
/// `(partition, maxUnavailable)` when present.
fn strategy(spec: &StatefulSetSpec) -> (String, Option<(i32, IntOrString)>) {
    let us = spec.update_strategy.as_ref();
    let ty = us.and_then(|u| u.type_.clone()).unwrap_or_default();
    let ru = us.and_then(|u| u.rolling_update.as_ref());
    if ty.is_empty() {
        // Defaulting: type "" => RollingUpdate and rollingUpdate {} when nil.
        let (p, mu) = ru.map_or((0, None), |r| {
            (r.partition.unwrap_or(0), r.max_unavailable.clone())
        });
        return (
            "RollingUpdate".into(),
            Some((p, mu.unwrap_or(IntOrString::Int(1)))),
        );
    }
    let block = ru.map(|r| {
        (
            r.partition.unwrap_or(0),
            r.max_unavailable.clone().unwrap_or(IntOrString::Int(1)),
        )
    });
    (ty, block)
}

fn retention(spec: &StatefulSetSpec) -> (bool, bool) {
    let p = spec.persistent_volume_claim_retention_policy.as_ref();
    let delete = |v: Option<&String>| v.is_some_and(|s| s == "Delete");
    (
        delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

/// `ClaimPods` for a StatefulSet over every pod of its namespace: owned pods
/// matching selector and name pattern are kept, matching orphans adopted,
/// owned non-matching pods released; pods of other controllers are ignored.
/// Each pod's facts are computed here; the runtime keeps them per pod version
/// and calls [`claim_members`].
pub fn claim_pods<'a, P: PodView>(
    set: &StatefulSet,
    pods: impl IntoIterator<Item = &'a P>,
) -> Result<PodClaims<'a, P>, Error> {
    let key = Arc::new(ClaimKey::of(set)?);
    claim_members(
        set,
        &key,
        pods.into_iter().map(|p| (p, Arc::new(MemberFacts::of(p)))),
    )
}

/// [`claim_pods`] over pods with their [`MemberFacts`] (each must be the
/// facts of that very pod version). `key` should be the set's
/// [`ClaimKey`] (a key that does not describe the set is replaced by a fresh
/// one); the claim's verdict on each version is memoized in its facts per
/// `key` (by identity), so that a claim over the same versions compares no
/// string (namespace, name, controller uid) and matches no selector again.
pub fn claim_members<'a, P: PodView>(
    set: &StatefulSet,
    key: &Arc<ClaimKey>,
    pods: impl IntoIterator<Item = (&'a P, Arc<MemberFacts>)>,
) -> Result<PodClaims<'a, P>, Error> {
    let fresh;
    let key = if key.describes(set) {
        key
    } else {
        fresh = Arc::new(ClaimKey::of(set)?);
        &fresh
    };
    let deleting = set.metadata.deletion_timestamp.is_some();
    let mut out = PodClaims::default();
    for (pod, facts) in pods {
        let meta = pod.meta();
        let v = facts.verdict(meta, key)?;
        if !v.in_namespace {
            continue;
        }
        let name = || meta.name.as_deref().unwrap_or_default();
        match v.ours {
            Some(false) => {}
            Some(true) if v.matches => out.owned.push(Member {
                pod: PodRef::Cached(pod),
                facts,
            }),
            Some(true) => {
                if !deleting {
                    out.release.push(name().to_owned());
                }
            }
            None => {
                if !deleting && v.matches && !facts.terminating {
                    let mut adopted = Box::new(meta.clone());
                    adopted
                        .owner_references
                        .get_or_insert_with(Vec::new)
                        .push(controller_ref("apps/v1", "StatefulSet", &set.metadata)?);
                    let adopted = PodRef::Adopted(pod, adopted);
                    let facts = Arc::new(MemberFacts::of(&adopted));
                    out.owned.push(Member {
                        pod: adopted,
                        facts,
                    });
                    out.adopt.push(name().to_owned());
                }
            }
        }
    }
    Ok(out)
}

/// `canAdoptFunc` + `RecheckDeletionTimestamp`
/// (`pkg/controller/statefulset/stateful_set.go`,
/// `pkg/controller/controller_ref_manager.go`): before adopting orphans, the
/// controller re-reads its set *live* (uncached) and refuses to adopt when the
/// set is gone, was replaced by another of the same name, or is being deleted.
/// `fresh` is that live read (`None`: not found). Without it a set deleted with
/// `propagationPolicy: Orphan` re-adopts the pods the garbage collector just
/// orphaned (its cache has not seen the deletion yet), and the collector then
/// deletes them with the set (kubernetes#42639).
pub fn can_adopt(cached: &StatefulSet, fresh: Option<&StatefulSet>) -> Result<(), Error> {
    let ns = cached.metadata.namespace.as_deref().unwrap_or_default();
    let name = set_name(cached);
    let Some(fresh) = fresh else {
        return Err(Error::CannotAdopt(format!(
            "statefulsets.apps \"{name}\" not found"
        )));
    };
    let want = cached.metadata.uid.as_deref().unwrap_or_default();
    let got = fresh.metadata.uid.as_deref().unwrap_or_default();
    if got != want {
        return Err(Error::CannotAdopt(format!(
            "original StatefulSet {ns}/{name} is gone: got uid {got}, wanted {want}"
        )));
    }
    if let Some(t) = &fresh.metadata.deletion_timestamp {
        return Err(Error::CannotAdopt(format!(
            "{ns}/{name} has just been deleted at {}",
            t.0
        )));
    }
    Ok(())
}

/// `getPersistentVolumeClaimName`: `<template>-<set>-<ordinal>`.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// Whether the set has `volumeClaimTemplates`.
pub(crate) fn has_claim_templates(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .is_some_and(|t| !t.is_empty())
}

/// `getPersistentVolumeClaims`: the claims a pod of this ordinal uses.
fn pod_claims(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let Some(spec) = set.spec.as_ref().filter(|_| has_claim_templates(set)) else {
        return Vec::new();
    };
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let mut c = t.clone();
            let tname = t.metadata.name.clone().unwrap_or_default();
            c.metadata.name = Some(claim_name(&tname, set_name(set), ordinal));
            c.metadata.namespace = set.metadata.namespace.clone();
            let mut labels = c.metadata.labels.take().unwrap_or_default();
            labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
            c.metadata.labels = Some(labels);
            c
        })
        .collect()
}

/// `newStatefulSetPod`: the pod of `ordinal` built from `template`.
fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32) -> Result<Pod, Error> {
    let name = format!("{}-{ordinal}", set_name(set));
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let mut spec: PodSpec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(format!("{}-", set_name(set))),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(
                "apps/v1",
                "StatefulSet",
                &set.metadata,
            )?]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    };
    update_storage(set, &mut pod, ordinal);
    Ok(pod)
}

/// `updateStorage`: claim volumes first (replacing same-named template
/// volumes), then the other volumes.
fn update_storage(set: &StatefulSet, pod: &mut Pod, ordinal: i32) {
    let claims = pod_claims(set, ordinal);
    if claims.is_empty() {
        return;
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let tnames: Vec<String> = set
        .spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
        .map(|t| t.metadata.name.clone().unwrap_or_default())
        .collect();
    let mut volumes: Vec<Volume> = tnames
        .iter()
        .zip(&claims)
        .map(|(t, c)| Volume {
            name: t.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: c.metadata.name.clone().unwrap_or_default(),
                read_only: Some(false),
            }),
            ..Volume::default()
        })
        .collect();
    for v in spec.volumes.take().unwrap_or_default() {
        if !tnames.contains(&v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = Some(volumes);
}

/// `identityMatches`: a member of the set by name, in its namespace, with
/// the pod-name label (`facts.named`, read from the pod's facts) equal to its name.
/// A pod of the claim ([`Member`]: the cache's version, or one adopted) is a
/// member by name in the set's namespace (the claim kept it for that), so
/// only the label is read of it; a placeholder is checked in full.
fn identity_matches<P: PodView>(
    set: &StatefulSet,
    pod: &PodRef<'_, P>,
    facts: ReplicaFacts,
) -> bool {
    if !facts.named {
        return false;
    }
    match pod {
        PodRef::Cached(_) | PodRef::Adopted(..) => true,
        PodRef::New(p) => {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            parent_and_ordinal(name).is_some_and(|(p, _)| p == set_name(set))
                && p.metadata.namespace == set.metadata.namespace
        }
    }
}

fn storage_matches(set: &StatefulSet, pod: &impl PodView, ord: i32) -> bool {
    if ord < 0 {
        return false;
    }
    set.spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
        .all(|t| {
            let tname = t.metadata.name.as_deref().unwrap_or_default();
            pod.volume_claim(tname)
                .is_some_and(|c| c.claim_name == claim_name(tname, set_name(set), ord))
        })
}

fn matches_ref(r: &OwnerReference, api_version: &str, kind: &str, name: &str) -> bool {
    r.api_version == api_version && r.kind == kind && r.name == name
}

/// `updateClaimOwnerRefForSetAndPod` for a claim: the owner references the
/// retention policy wants. `None` when the claim must not be touched
/// (`hasStaleOwnerRef` — references to a previous set or pod of that name).
fn desired_claim_refs(
    set: &StatefulSet,
    pod: &impl PodView,
    claim: &PersistentVolumeClaim,
    in_range: bool,
) -> Option<Vec<OwnerReference>> {
    let spec = set.spec.as_ref()?;
    let set_uid = set.metadata.uid.as_deref().unwrap_or_default();
    let pod_uid = pod.meta().uid.as_deref().unwrap_or_default();
    let pod_name = pod.meta().name.as_deref().unwrap_or_default();
    let refs = claim.metadata.owner_references.clone().unwrap_or_default();
    for r in &refs {
        let stale_set = matches_ref(r, "apps/v1", "StatefulSet", set_name(set)) && r.uid != set_uid;
        let stale_pod = matches_ref(r, "v1", "Pod", pod_name) && r.uid != pod_uid;
        if stale_set || stale_pod {
            return None;
        }
    }
    let mut out: Vec<OwnerReference> = refs
        .into_iter()
        .filter(|r| {
            !matches_ref(r, "apps/v1", "StatefulSet", set_name(set))
                && !matches_ref(r, "v1", "Pod", pod_name)
        })
        .collect();
    if out.iter().any(|r| r.controller == Some(true)) {
        // hasUnexpectedController: leave our references scrubbed.
        return Some(out);
    }
    let (when_deleted, when_scaled) = retention(spec);
    if when_scaled && !in_range && !pod_uid.is_empty() {
        out.extend(controller_ref("v1", "Pod", pod.meta()).ok());
    }
    if when_deleted && (in_range || !when_scaled) {
        out.extend(controller_ref("apps/v1", "StatefulSet", &set.metadata).ok());
    }
    Some(out)
}

fn claim_refs_update(
    set: &StatefulSet,
    pod: &impl PodView,
    claims: &BTreeMap<String, PersistentVolumeClaim>,
    in_range: bool,
) -> Vec<PersistentVolumeClaim> {
    let mut out = Vec::new();
    if claims.is_empty() {
        return out;
    }
    for c in pod_claims(set, ordinal(pod)) {
        let Some(existing) = c.metadata.name.as_ref().and_then(|n| claims.get(n)) else {
            continue;
        };
        let Some(want) = desired_claim_refs(set, pod, existing, in_range) else {
            continue;
        };
        let have = existing
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default();
        let same = want.len() == have.len() && want.iter().all(|w| have.contains(w));
        if !same {
            let mut updated = existing.clone();
            updated.metadata.owner_references = if want.is_empty() { None } else { Some(want) };
            out.push(updated);
        }
    }
    out
}

/// What one sync reads of a pod, derived once per pod per sync from its
/// [`MemberFacts`] (kept per pod version), the set's revisions and `now`.
/// Upstream recomputes `getOrdinal`, `getPodRevision`, `isRunningAndReady`,
/// `isHealthy`/`isUnavailable` at each use (`stateful_set_control.go`); none
/// can change within one sync (the pods and `now` are fixed), so each is
/// read once here instead of at every comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaFacts {
    /// `getOrdinal` (-1 when the name has no ordinal).
    pub ordinal: i32,
    /// The phase is set (the pod exists; placeholders have none).
    pub created: bool,
    /// Phase `Failed` or `Succeeded`.
    pub finished: bool,
    /// Phase `Pending`.
    pub pending: bool,
    /// `deletionTimestamp` set.
    pub terminating: bool,
    /// `isRunningAndReady`.
    pub running_ready: bool,
    /// `podutil.IsPodAvailable(pod, minReadySeconds, now)`.
    pub available: bool,
    /// The revision label names the current revision.
    pub at_current: bool,
    /// The revision label names the update revision.
    pub at_update: bool,
    /// The pod-name label equals the pod's name (the label part of
    /// `identityMatches`).
    pub named: bool,
}

impl ReplicaFacts {
    /// The facts of `pod` for a sync at `now` with these revisions.
    pub fn of(
        pod: &(impl PodView + ?Sized),
        min_ready: i32,
        now: Timestamp,
        current: &Revision,
        update: &Revision,
    ) -> Self {
        Self::of_member(&MemberFacts::of(pod), min_ready, now, current, update)
    }

    /// The facts of a pod version with facts `m`, for a sync at `now` with
    /// these revisions (compared as interned names: [`Revision`]).
    pub fn of_member(
        m: &MemberFacts,
        min_ready: i32,
        now: Timestamp,
        current: &Revision,
        update: &Revision,
    ) -> Self {
        let ph = m.phase;
        Self {
            ordinal: m.ordinal,
            created: ph != PhaseClass::Unset,
            finished: ph == PhaseClass::Finished,
            pending: ph == PhaseClass::Pending,
            terminating: m.terminating,
            running_ready: ph == PhaseClass::Running && m.ready,
            available: m.available(min_ready, now),
            at_current: m.revision == *current,
            at_update: m.revision == *update,
            named: m.named,
        }
    }

    /// `isUnavailable`: not available for `minReadySeconds`, or terminating.
    fn unavailable(self) -> bool {
        !self.available || self.terminating
    }
}

#[derive(Default)]
struct Counts {
    replicas: i32,
    ready: i32,
    available: i32,
    current: i32,
    updated: i32,
}

/// `computeReplicaStatus` over the pods' facts (placeholders have no phase).
fn count(facts: impl IntoIterator<Item = ReplicaFacts>) -> Counts {
    let mut c = Counts::default();
    for f in facts {
        if f.created {
            c.replicas += 1;
        }
        if f.running_ready {
            c.ready += 1;
            if f.available {
                c.available += 1;
            }
        }
        if f.created && !f.terminating {
            if f.at_current {
                c.current += 1;
            }
            if f.at_update {
                c.updated += 1;
            }
        }
    }
    c
}

fn nz(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

fn apply_counts(status: &mut StatefulSetStatus, c: &Counts) {
    status.replicas = c.replicas;
    status.ready_replicas = nz(c.ready);
    status.available_replicas = Some(c.available);
    status.current_replicas = nz(c.current);
    status.updated_replicas = nz(c.updated);
}

/// Inputs of one sync.
#[derive(Debug)]
pub struct SyncInput<'a, P = Pod> {
    /// The StatefulSet as read.
    pub set: &'a StatefulSet,
    /// The current revision (`status.currentRevision` or the update revision).
    pub current: &'a ControllerRevision,
    /// The update revision (the set's template now).
    pub update: &'a ControllerRevision,
    /// Collision count to carry into status.
    pub collision_count: i32,
    /// Pods the set owns with their facts (see [`claim_members`]); read,
    /// never copied, except for the ones a write changes.
    pub pods: &'a [Member<'a, P>],
    /// PVCs of the namespace by name.
    pub claims: &'a BTreeMap<String, PersistentVolumeClaim>,
    /// The simulated time.
    pub now: Timestamp,
}

impl<P> Clone for SyncInput<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for SyncInput<'_, P> {}

enum Step {
    Continue,
    Stop,
}

/// `updateStatefulSet` + `updateStatefulSetStatus`'s decision.
pub fn sync<P: PodView>(input: SyncInput<'_, P>) -> Result<SyncOutcome, Error> {
    let SyncInput {
        set,
        current,
        update,
        collision_count,
        pods,
        claims,
        now,
    } = input;
    let spec = spec(set)?;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let current_name = current.metadata.name.clone().unwrap_or_default();
    let update_name = update.metadata.name.clone().unwrap_or_default();
    // `ApplyRevision` for the current and update sets: only the template
    // differs from `set`, and only new pods read it, so the templates are
    // decoded (errors as upstream's) and the set itself is not copied.
    let current_template = revision_template(current)?;
    let update_template = revision_template(update)?;
    // Interned once per sync: each pod's revision is then compared by pointer.
    let (current_rev, update_rev) = (
        Revision::intern(&current_name),
        Revision::intern(&update_name),
    );
    let facts_of = |pod: &Pod| ReplicaFacts::of(pod, min_ready, now, &current_rev, &update_rev);

    let pods: Vec<(&PodRef<'_, P>, ReplicaFacts)> = pods
        .iter()
        .map(|m| {
            let f = ReplicaFacts::of_member(&m.facts, min_ready, now, &current_rev, &update_rev);
            (&m.pod, f)
        })
        .collect();
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(current_name.clone()),
        update_revision: Some(update_name.clone()),
        collision_count: Some(collision_count),
        ..StatefulSetStatus::default()
    };
    apply_counts(&mut status, &count(pods.iter().map(|(_, f)| *f)));

    let replica_count = usize::try_from(replicas(set)).unwrap_or(0);
    let start = start_ordinal(set);
    let end = start + replicas(set) - 1;
    let mut slots: Vec<Option<(&PodRef<'_, P>, ReplicaFacts)>> = vec![None; replica_count];
    let mut condemned: Vec<(&PodRef<'_, P>, ReplicaFacts)> = Vec::new();
    for &(pod, f) in &pods {
        let ord = f.ordinal;
        if ord >= start && ord <= end {
            if let Some(slot) = usize::try_from(ord - start)
                .ok()
                .and_then(|i| slots.get_mut(i))
            {
                *slot = Some((pod, f));
            }
        } else if ord >= 0 {
            condemned.push((pod, f));
        }
    }
    let (strategy_type, rolling) = strategy(spec);
    // newVersionedStatefulSetPod: note Go precedence `A && B || C`.
    let old_ru_nil = strategy_type == "RollingUpdate" && rolling.is_none();
    let stored_current_replicas = set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let mut replicas_v: Vec<(PodRef<'_, P>, ReplicaFacts)> = Vec::with_capacity(replica_count);
    for (i, slot) in slots.into_iter().enumerate() {
        let ord = start + i32::try_from(i).unwrap_or(i32::MAX);
        let pod = match slot {
            Some((p, f)) => (p.clone(), f),
            None => {
                let at_current = (old_ru_nil && ord < start + stored_current_replicas)
                    || rolling.as_ref().is_some_and(|(p, _)| ord < start + p);
                let (tmpl, rev) = if at_current {
                    (&current_template, &current_name)
                } else {
                    (&update_template, &update_name)
                };
                let mut p = new_pod(set, tmpl, ord)?;
                p.metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(REVISION_LABEL.into(), rev.clone());
                let f = facts_of(&p);
                (PodRef::New(Box::new(p)), f)
            }
        };
        replicas_v.push(pod);
    }
    condemned.sort_by_key(|(_, f)| std::cmp::Reverse(f.ordinal));

    let first_unavailable: Option<&str> = replicas_v
        .iter()
        .map(|(p, f)| (p, *f))
        .chain(condemned.iter().rev().copied())
        .filter(|(_, f)| f.unavailable())
        .find_map(|(p, _)| p.meta().name.as_deref());

    let mut out = SyncOutcome {
        writes: Vec::new(),
        status: status.clone(),
        write_status: false,
        error: None,
        requeue_after: None,
    };

    if set.metadata.deletion_timestamp.is_none() {
        let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
        let stopped = run_replicas(set, monotonic, &replicas_v, claims, &mut out);
        let stopped = stopped
            || run_condemned_claims(set, &condemned, claims, &mut out)
            || run_condemned(monotonic, &condemned, first_unavailable, &mut out);
        apply_counts(
            &mut status,
            &count(
                replicas_v
                    .iter()
                    .map(|(_, f)| *f)
                    .chain(condemned.iter().map(|(_, f)| *f)),
            ),
        );
        if !stopped && out.error.is_none() && strategy_type != "OnDelete" {
            rolling_update(set, &replicas_v, rolling.as_ref(), &mut status, &mut out)?;
        }
    }

    complete_rolling_update(set, &strategy_type, &mut status);
    out.write_status = inconsistent_status(set, &status);
    if min_ready > 0 && status.available_replicas.unwrap_or(0) != replicas(set) {
        out.requeue_after = Some(SignedDuration::from_secs(i64::from(min_ready)));
    }
    out.status = status;
    Ok(out)
}

/// `runForAll(replicas, processReplica)`. Returns whether processing stopped.
fn run_replicas<P: PodView>(
    set: &StatefulSet,
    monotonic: bool,
    replicas_v: &[(PodRef<'_, P>, ReplicaFacts)],
    claims: &BTreeMap<String, PersistentVolumeClaim>,
    out: &mut SyncOutcome,
) -> bool {
    let mut stopped = false;
    for (pod, facts) in replicas_v {
        match process_replica(set, monotonic, pod, *facts, claims, out) {
            Step::Continue => {}
            Step::Stop => {
                stopped = true;
                if monotonic || out.error.is_some() {
                    return true;
                }
            }
        }
    }
    // In Parallel mode the per-pod "stop" is ignored; only errors stop.
    stopped && (monotonic || out.error.is_some())
}

/// `processReplica`. The update set of upstream differs from `set` only in
/// its template, which nothing here reads (new pods were built already).
fn process_replica<P: PodView>(
    set: &StatefulSet,
    monotonic: bool,
    pod: &PodRef<'_, P>,
    facts: ReplicaFacts,
    claims: &BTreeMap<String, PersistentVolumeClaim>,
    out: &mut SyncOutcome,
) -> Step {
    // Only a write reads the pod's name (the pod itself is not touched
    // for a healthy replica: its facts answer every check below).
    if facts.finished {
        if !facts.terminating {
            out.writes.push(SetWrite::DeletePod {
                name: pod.meta().name.clone().unwrap_or_default(),
            });
        }
        return Step::Stop;
    }
    if !facts.created {
        if claim_is_stale(set, pod, claims) {
            return Step::Stop;
        }
        if !create_claims(set, pod, claims, true, out) {
            return Step::Stop;
        }
        out.writes.push(SetWrite::CreatePod(pod.to_pod()));
        if monotonic {
            return Step::Stop;
        }
    }
    if facts.pending && !create_claims(set, pod, claims, true, out) {
        return Step::Stop;
    }
    if !facts.created {
        // A pod created in this sync is still a placeholder locally: upstream
        // goes on with the checks below on the unchanged (phase "") object,
        // which only matter for monotonic sets (already returned above).
        return Step::Continue;
    }
    if monotonic && facts.terminating {
        return Step::Stop;
    }
    if monotonic && !facts.running_ready {
        return Step::Stop;
    }
    if monotonic && !facts.available {
        return Step::Stop;
    }
    let claim_updates = claim_refs_update(set, pod, claims, true);
    let ord = facts.ordinal;
    if identity_matches(set, pod, facts)
        && storage_matches(set, pod, ord)
        && claim_updates.is_empty()
    {
        return Step::Continue;
    }
    // UpdateStatefulPod: fix identity and storage, create missing claims,
    // fix claim owner references, then PUT the pod if it changed.
    let read = pod.to_pod();
    let mut fixed = read.clone();
    update_stateful_pod(set, &mut fixed);
    if !storage_matches(set, pod, ord) && !create_claims(set, pod, claims, true, out) {
        return Step::Stop;
    }
    out.writes
        .extend(claim_updates.into_iter().map(SetWrite::UpdateClaim));
    if fixed != read {
        out.writes.push(SetWrite::UpdatePod(fixed));
    }
    Step::Continue
}

/// The fix of `UpdateStatefulPod` (`updateIdentity`, `updateStorage`): the set's
/// namespace, the pod-name and pod-index labels, the claims' volumes. The
/// ordinal is the one of the pod's name (-1 without one, as `getOrdinal`).
/// The runtime applies it again to the whole pod when the sync fixed the pod
/// cache's projection of it ([`super::projection`]).
pub fn update_stateful_pod(set: &StatefulSet, pod: &mut Pod) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ord = ordinal(pod);
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name);
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
    update_storage(set, pod, ord);
}

/// `PodClaimIsStale`: with `whenScaled: Delete`, an existing claim that points
/// to another pod of this name blocks creation until it is gone.
fn claim_is_stale(
    set: &StatefulSet,
    pod: &impl PodView,
    claims: &BTreeMap<String, PersistentVolumeClaim>,
) -> bool {
    let when_scaled = set.spec.as_ref().is_some_and(|s| retention(s).1);
    if !when_scaled {
        return false;
    }
    let pod_name = pod.meta().name.as_deref().unwrap_or_default();
    let pod_uid = pod.meta().uid.as_deref().unwrap_or_default();
    pod_claims(set, ordinal(pod)).iter().any(|c| {
        c.metadata
            .name
            .as_ref()
            .and_then(|n| claims.get(n))
            .and_then(|pvc| pvc.metadata.owner_references.as_ref())
            .into_iter()
            .flatten()
            .any(|r| matches_ref(r, "v1", "Pod", pod_name) && r.uid != pod_uid)
    })
}

/// `createPersistentVolumeClaims`: returns false (and records the error) when a
/// claim is being deleted.
fn create_claims(
    set: &StatefulSet,
    pod: &impl PodView,
    claims: &BTreeMap<String, PersistentVolumeClaim>,
    in_range: bool,
    out: &mut SyncOutcome,
) -> bool {
    // Without templates there is no claim to create: the pod's name is not
    // parsed for its ordinal (each pending pod of every sync came here).
    if !has_claim_templates(set) {
        return true;
    }
    for mut c in pod_claims(set, ordinal(pod)) {
        let name = c.metadata.name.clone().unwrap_or_default();
        match claims.get(&name) {
            Some(existing) if existing.metadata.deletion_timestamp.is_some() => {
                out.error = Some(format!("pvc {name} is being deleted"));
                return false;
            }
            Some(_) => {}
            None => {
                if out.writes.iter().any(|w| matches!(w, SetWrite::CreateClaim(x) if x.metadata.name.as_deref() == Some(name.as_str()))) {
                    continue;
                }
                if let Some(refs) =
                    desired_claim_refs(set, pod, &c, in_range).filter(|r| !r.is_empty())
                {
                    c.metadata.owner_references = Some(refs);
                }
                out.writes.push(SetWrite::CreateClaim(c));
            }
        }
    }
    true
}

/// `runForAll(condemned, fixPodClaim)`: owner references of condemned pods'
/// claims follow the retention policy (never stops processing by itself).
fn run_condemned_claims(
    set: &StatefulSet,
    condemned: &[(&impl PodView, ReplicaFacts)],
    claims: &BTreeMap<String, PersistentVolumeClaim>,
    out: &mut SyncOutcome,
) -> bool {
    for (pod, _) in condemned {
        out.writes.extend(
            claim_refs_update(set, pod, claims, false)
                .into_iter()
                .map(SetWrite::UpdateClaim),
        );
    }
    false
}

/// `runForAll(condemned, processCondemned)`.
fn run_condemned(
    monotonic: bool,
    condemned: &[(&impl PodView, ReplicaFacts)],
    first_unavailable: Option<&str>,
    out: &mut SyncOutcome,
) -> bool {
    for (pod, facts) in condemned {
        let name = pod.meta().name.as_deref().unwrap_or_default();
        let is_first = first_unavailable == Some(name);
        if facts.terminating {
            if monotonic {
                return true;
            }
            continue;
        }
        if monotonic && !facts.running_ready && !is_first {
            return true;
        }
        if monotonic && !facts.available && !is_first {
            return true;
        }
        out.writes.push(SetWrite::DeletePod {
            name: name.to_owned(),
        });
        if monotonic {
            return true;
        }
    }
    false
}

/// `updateStatefulSetAfterInvariantEstablished` (maxUnavailable path).
fn rolling_update<P: PodView>(
    set: &StatefulSet,
    replicas_v: &[(PodRef<'_, P>, ReplicaFacts)],
    rolling: Option<&(i32, IntOrString)>,
    status: &mut StatefulSetStatus,
    out: &mut SyncOutcome,
) -> Result<(), Error> {
    let mut update_min = 0usize;
    let mut max_unavailable = 1i32;
    if let Some((partition, mu)) = rolling {
        update_min = usize::try_from(*partition).unwrap_or(0);
        max_unavailable = scaled_value(mu, replicas(set), false)?.max(1);
    }
    let unavailable = i32::try_from(replicas_v.iter().filter(|(_, f)| f.unavailable()).count())
        .unwrap_or(i32::MAX);
    if unavailable > max_unavailable {
        return Ok(());
    }
    let to_delete = max_unavailable - unavailable;
    let mut deleted = 0;
    for (pod, facts) in replicas_v.iter().skip(update_min).rev() {
        if deleted >= to_delete {
            break;
        }
        if !facts.at_update && !facts.terminating {
            out.writes.push(SetWrite::DeletePod {
                name: pod.meta().name.clone().unwrap_or_default(),
            });
            deleted += 1;
            status.current_replicas = nz(status.current_replicas.unwrap_or(0) - 1);
        }
    }
    Ok(())
}

/// `completeRollingUpdate`: the current revision advances once all
/// `spec.replicas` pods are updated, ready and present — RollingUpdate only
/// (OnDelete never advances it before v1.37).
fn complete_rolling_update(set: &StatefulSet, strategy_type: &str, status: &mut StatefulSetStatus) {
    let want = replicas(set);
    if strategy_type == "RollingUpdate"
        && status.updated_replicas.unwrap_or(0) == want
        && status.ready_replicas.unwrap_or(0) == want
        && status.replicas == want
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

/// `inconsistentStatus`.
fn inconsistent_status(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let Some(old) = set.status.as_ref() else {
        return true;
    };
    status.observed_generation.unwrap_or(0) > old.observed_generation.unwrap_or(0)
        || status.replicas != old.replicas
        || status.current_replicas.unwrap_or(0) != old.current_replicas.unwrap_or(0)
        || status.ready_replicas.unwrap_or(0) != old.ready_replicas.unwrap_or(0)
        || status.updated_replicas.unwrap_or(0) != old.updated_replicas.unwrap_or(0)
        || status.current_revision != old.current_revision
        || status.available_replicas.unwrap_or(0) != old.available_replicas.unwrap_or(0)
        || status.update_revision != old.update_revision
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::controllers::{is_pod_available, is_pod_ready, is_terminating};

    const SET_UID: &str = "uid-web";

    /// `ReplicaFacts` as computed before the facts were kept: straight from
    /// the pod's maps at each sync (the oracle).
    fn oracle_facts(
        pod: &Pod,
        min_ready: i32,
        now: Timestamp,
        cur: &str,
        upd: &str,
    ) -> ReplicaFacts {
        let ph = phase(pod);
        let rev = pod_revision(pod);
        ReplicaFacts {
            ordinal: pod
                .metadata
                .name
                .as_deref()
                .and_then(parent_and_ordinal)
                .map_or(-1, |(_, o)| o),
            created: !ph.is_empty(),
            finished: ph == "Failed" || ph == "Succeeded",
            pending: ph == "Pending",
            terminating: is_terminating(pod),
            running_ready: ph == "Running" && is_pod_ready(pod),
            available: is_pod_available(pod, min_ready, now),
            at_current: rev == cur,
            at_update: rev == upd,
            named: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_NAME_LABEL))
                .is_some_and(|v| Some(v) == pod.metadata.name.as_ref()),
        }
    }

    /// Owned pod names, pods to adopt, pods to release.
    type Claimed = (Vec<String>, Vec<String>, Vec<String>);

    /// `ClaimPods` as computed before the facts were kept: name parse,
    /// selector and controller reference read from every pod (the oracle).
    fn oracle_claim(set: &StatefulSet, pods: &[Pod]) -> Result<Claimed, Error> {
        let spec = spec(set)?;
        let uid = set.metadata.uid.as_deref().unwrap_or_default();
        let deleting = set.metadata.deletion_timestamp.is_some();
        let set_name = set_name(set);
        let (mut owned, mut adopt, mut release) = (vec![], vec![], vec![]);
        for pod in pods {
            if pod.metadata.namespace != set.metadata.namespace {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let member = parent_and_ordinal(&name).is_some_and(|(p, _)| p == set_name);
            let matches = member && selector_matches(&spec.selector, pod.metadata.labels.as_ref())?;
            match controller_of(&pod.metadata) {
                Some(r) if r.uid != uid => {}
                Some(_) if matches => owned.push(name),
                Some(_) => {
                    if !deleting {
                        release.push(name);
                    }
                }
                None => {
                    if !deleting && matches && !is_terminating(pod) {
                        owned.push(name.clone());
                        adopt.push(name);
                    }
                }
            }
        }
        Ok((owned, adopt, release))
    }

    fn selector(i: usize) -> Value {
        match i % 6 {
            0 => json!({"matchLabels": {"app": "web"}}),
            1 => json!({"matchLabels": {"app": "web", "tier": "a"}}),
            2 => {
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]})
            }
            3 => {
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]})
            }
            4 => json!({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}),
            _ => json!({}),
        }
    }

    /// A set of selector `sel`; `who` picks its name (`web`, `webx`, `web-2`:
    /// names the arbitrary pods' names are members of or not), namespace and uid.
    fn set_of(sel: usize, deleting: bool, who: usize) -> StatefulSet {
        let name = ["web", "webx", "web-2"][who % 3];
        let ns = ["ns", "other"][(who / 3) % 2];
        let uid = [SET_UID, "uid-other"][(who / 6) % 2];
        let mut v = json!({
            "metadata": {"name": name, "namespace": ns, "uid": uid},
            "spec": {"selector": selector(sel), "serviceName": "web",
                     "template": {"metadata": {}, "spec": {"containers": []}}},
        });
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    }

    /// An arbitrary pod version: name (with and without an ordinal, of this
    /// set, of a set whose name has this one as a prefix), namespace,
    /// labels, phase, Ready condition and its time, deletion, owners.
    fn arb_pod() -> impl Strategy<Value = Pod> {
        (
            (0usize..9, 0usize..4, any::<bool>()),
            (0usize..3, 0usize..3, 0usize..4),
            (0usize..7, 0usize..5, 0i64..40),
            0usize..5,
        )
            .prop_map(|((name, ns, deleting), (app, tier, rev), (phase, ready, at), owner)| {
                let name = [
                    "web-0", "web-7", "web-12", "web-", "web-x1", "webx-3", "web-01", "web-2-3",
                    "other-2",
                ][name];
                let ns = ["ns", "ns", "ns", "other"][ns];
                let mut labels = serde_json::Map::new();
                if let Some(a) = [Some("web"), Some("other"), None][app] {
                    labels.insert("app".into(), json!(a));
                }
                if let Some(t) = [Some("a"), Some("b"), None][tier] {
                    labels.insert("tier".into(), json!(t));
                }
                // The pod-name label: right, wrong or absent.
                if let Some(n) = [Some(name), Some("web-9"), None][(tier + app) % 3] {
                    labels.insert(POD_NAME_LABEL.into(), json!(n));
                }
                if let Some(r) = [Some("web-r1"), Some("web-r2"), Some(""), None][rev] {
                    labels.insert(REVISION_LABEL.into(), json!(r));
                }
                let mut v = json!({"metadata": {"name": name, "namespace": ns, "labels": labels}});
                if deleting {
                    v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:10Z");
                }
                let owners = match owner {
                    0 => None,
                    1 => Some(json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": SET_UID, "controller": true}])),
                    2 => Some(json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "uid-other", "controller": true}])),
                    3 => Some(json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": SET_UID}])),
                    _ => Some(json!([
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "uid-c"},
                        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": SET_UID, "controller": true},
                    ])),
                };
                if let Some(o) = owners {
                    v["metadata"]["ownerReferences"] = o;
                }
                let mut status = serde_json::Map::new();
                if let Some(p) = crate::controllers::test_pods::PHASES[phase] {
                    status.insert("phase".into(), json!(p));
                }
                let cond = crate::controllers::test_pods::ready_condition(ready, at);
                if let Some(c) = cond {
                    status.insert(
                        "conditions".into(),
                        json!([{"type": "PodScheduled", "status": "True"}, c]),
                    );
                }
                v["status"] = Value::Object(status);
                serde_json::from_value(v).unwrap()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The facts kept per pod version and the claim memoized per (version,
        /// claim key) give, over arbitrary pod versions, sets (selector, name,
        /// namespace, uid) and syncs, what the former per-sync computation
        /// from the pods gave; so does a claim given the key of another set.
        #[test]
        fn kept_facts_and_memoized_claims_equal_a_fresh_computation(
            pods in proptest::collection::vec(arb_pod(), 0..12),
            syncs in proptest::collection::vec(
                (
                    (0usize..6, 0usize..12, 0usize..8),
                    any::<bool>(), 0i32..20, 0i64..60, 0usize..3, 0usize..3,
                ),
                1..8,
            ),
        ) {
            // Facts computed once per version, as the pod cache keeps them.
            let kept: Vec<Arc<MemberFacts>> =
                pods.iter().map(|p| Arc::new(MemberFacts::of(p))).collect();
            // One `Arc` per claim key while it is unchanged, as the runtime keeps it.
            let mut arcs: HashMap<(usize, usize), Arc<ClaimKey>> = HashMap::new();
            for ((sel, who, stale), deleting, min_ready, now_s, cur, upd) in syncs {
                let set = set_of(sel, deleting, who);
                let mut key = |sel: usize, who: usize| {
                    arcs.entry((sel % 6, who))
                        .or_insert_with(|| {
                            Arc::new(ClaimKey::of(&set_of(sel, false, who)).unwrap())
                        })
                        .clone()
                };
                // One sync in eight is handed the key of another set (or of
                // this set's former selector): the claim must not use it.
                let key = if stale == 0 { key(sel + 1, who) } else { key(sel, who) };
                let got = claim_members(
                    &set,
                    &key,
                    pods.iter().zip(&kept).map(|(p, f)| (p, f.clone())),
                );
                let want = oracle_claim(&set, &pods);
                match (got, want) {
                    (Err(g), Err(w)) => prop_assert_eq!(g.to_string(), w.to_string()),
                    (Ok(g), Ok((owned, adopt, release))) => {
                        let names: Vec<String> = g
                            .owned
                            .iter()
                            .map(|m| m.pod.meta().name.clone().unwrap_or_default())
                            .collect();
                        prop_assert_eq!(names, owned);
                        prop_assert_eq!(&g.adopt, &adopt);
                        prop_assert_eq!(&g.release, &release);
                        let now = Timestamp::from_second(1_767_225_600 + now_s).unwrap();
                        let (cur, upd) = (["web-r1", "web-r2", ""][cur], ["web-r1", "web-r2", ""][upd]);
                        let (cur_rev, upd_rev) = (Revision::intern(cur), Revision::intern(upd));
                        for m in &g.owned {
                            // Each member's facts are those of its very version
                            // (an adopted copy's are its own).
                            prop_assert_eq!(&*m.facts, &MemberFacts::of(&m.pod));
                            let f = ReplicaFacts::of_member(&m.facts, min_ready, now, &cur_rev, &upd_rev);
                            prop_assert_eq!(f, oracle_facts(&m.pod.to_pod(), min_ready, now, cur, upd));
                            // `identityMatches` read in full (the oracle) equals
                            // the claimed member's label fact.
                            let p = m.pod.to_pod();
                            let name = p.metadata.name.as_deref().unwrap_or_default();
                            let full = parent_and_ordinal(name).is_some_and(|(p, _)| p == set_name(&set))
                                && p.metadata.namespace == set.metadata.namespace
                                && f.named;
                            prop_assert_eq!(identity_matches(&set, &m.pod, f), full);
                            prop_assert_eq!(identity_matches(&set, &PodRef::<Pod>::New(Box::new(p)), f), full);
                        }
                    }
                    (g, w) => prop_assert!(false, "claim {:?} vs oracle {:?}", g.map(|c| c.adopt), w),
                }
            }
            // Every pod's derived facts equal the oracle, whether claimed or not.
            for (p, f) in pods.iter().zip(&kept) {
                let now = Timestamp::from_second(1_767_225_620).unwrap();
                prop_assert_eq!(
                    ReplicaFacts::of_member(
                        f, 10, now, &Revision::intern("web-r1"), &Revision::intern("web-r2")
                    ),
                    oracle_facts(p, 10, now, "web-r1", "web-r2")
                );
            }
        }

        /// Interned revisions are equal exactly when their names are, also
        /// across the interner's sweeps of names no revision holds any more.
        #[test]
        fn interned_revisions_compare_as_their_names(
            rounds in proptest::collection::vec(
                proptest::collection::vec(0usize..40, 1..60),
                1..6,
            ),
        ) {
            let name = |i: usize| format!("web-{:x}", i * 7919);
            // Held across rounds: the first of each round's names.
            let mut held: Vec<(usize, Revision)> = Vec::new();
            for round in rounds {
                // Many short-lived names, enough to make the interner sweep.
                for i in 0..200 {
                    let _ = Revision::intern(&format!("gone-{i}-{}", round.len()));
                }
                let revs: Vec<(usize, Revision)> =
                    round.iter().map(|&i| (i, Revision::intern(&name(i)))).collect();
                for (i, a) in revs.iter().chain(&held) {
                    prop_assert_eq!(a.as_str(), name(*i));
                    for (j, b) in revs.iter().chain(&held) {
                        prop_assert_eq!(a == b, i == j);
                    }
                }
                held.push(revs[0].clone());
            }
            // The sweeps keep the interner near the names still held (other
            // tests of this process may hold a few).
            prop_assert!(Revision::interned() < 1_000);
        }
    }
}
