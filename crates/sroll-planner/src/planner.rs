//! The decision procedure: from an [`Observed`] snapshot to one [`Plan`].
//!
//! Order of the checks (the first that applies decides the action):
//!
//! 1. the spec is invalid → `RolloutBlocked`, `SpecValid=False`, nothing applied;
//! 2. a terminal phase (`RolloutDone`/`RolloutFailed`) for this generation → nothing (except
//!    recreating a StatefulSet deleted under the rollout: the resource is the desired state);
//! 3. the set is missing → create it (`status.deleted` if it existed before);
//! 4. the set is being deleted → wait; not owned → `StatefulSetNotOwned` unless `adoptExisting`;
//! 5. the set's spec differs (spec-hash annotation) → apply it, unless an immutable field changed
//!    (→ `SpecValid=False` naming it, or recreate with orphaned pods when opted in);
//! 6. the StatefulSet controller has not observed the latest generation → wait;
//! 7. the rollout proper ([`Strategy::Partitioned`] or `OnDelete`): done? paused? deadline
//!    exceeded? broken pods to replace for free? a batch to evict within the budget and pacing?
//!    a partition to re-align? otherwise wait.
//!
//! Partitioned (leak-proof) invariant: after every action, every pod at or above the partition is
//! either at the update revision, on its way there (missing, terminating), or in the batch being
//! evicted; every pod the rollout has not chosen is below it. So the StatefulSet controller never
//! moves a pod on its own, and a pod that dies anywhere comes back at the revision the rollout chose
//! for it (`newVersionedStatefulSetPod`, pkg/controller/statefulset/stateful_set_utils.go).
//!
//! Cost: a plan does not walk the set. `Observed::pods` is sorted by ordinal and carries its
//! aggregates (`index::SetCounts`: counts, per-revision ordinals and ready-since instants, the
//! unavailable and in-place ordinals); `planner::slots` answers the decisions' questions from
//! them and from the few special slots (missing, unavailable, in flight, in-place steps pending,
//! not yet available), so a plan visits O(batch + in flight) pods — `Plan::cost.pods_visited`,
//! which a CI test (`tests/cost.rs`) bounds at 1,000 pods. `status.pods` lists every pod (a
//! reference field): writing it is O(pods) and counted apart (`Plan::cost.status_pods`). Still
//! O(pods): a service-discovery gate (the update revision's pods are checked against the healthy
//! set) and an analysis abort's rollback (it reads every slot).

use std::{collections::BTreeSet, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
    jiff::{SignedDuration, Timestamp},
};
use sroll_api::{
    Phase, PodVersion, RolloutStrategy, StatefulsetRolloutStatus, analysis::AbortPolicy,
    condition_types as ct, intstr::scaled_value, target_updated_replicas,
};

use crate::{
    Action, ApplyKind, EventType, LiveStatefulSet, Observed, ObservedPdb, ObservedPod,
    PartitionMove, Plan, PlannedEvent,
    analysis::Gate,
    conditions::{self, Status},
    desired::{desired_statefulset, spec_hash, template_hash},
    reasons as r, transitions,
};

mod in_place;
mod slots;

use slots::Slots;

/// Requeue after an action: the watches normally trigger the next reconcile sooner.
pub const REQUEUE_SOON: Duration = Duration::from_secs(2);
/// Requeue while waiting on pods (a pod turning Ready triggers a reconcile through the watch; this
/// is only the safety net).
pub const REQUEUE_WAITING: Duration = Duration::from_secs(10);
/// Requeue after an eviction was refused with 429.
pub const REQUEUE_BACKPRESSURE: Duration = Duration::from_secs(5);
/// Requeue while an integration's result is pending (a release callback under way, Slack messages
/// not showing the latest state yet): the workers wake the rollout when it arrives; this is the
/// safety net, and what keeps a terminal rollout looked at until then.
pub const REQUEUE_INTEGRATIONS: Duration = Duration::from_secs(2);

/// How many pod names a reason or event lists before "and N more".
const NAMES_SHOWN: usize = 10;

/// Decides the one action of this reconcile, the status to write and when to look again.
pub fn plan(obs: &Observed) -> Plan {
    Planner::new(obs).run()
}

/// Where a pod (or the slot of a missing pod) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No pod with this ordinal: the StatefulSet controller is creating it.
    Missing,
    /// Being deleted.
    Terminating,
    /// At the update revision; `available` once Ready for `minReadySeconds` and healthy in
    /// service discovery (when gated).
    Updated { available: bool },
    /// At another revision; `ready` when Running and Ready.
    Old { ready: bool },
    /// At another revision, out of traffic for an in-place update whose images are not patched
    /// yet (see `in_place`): unavailable, and kept below the partition like an unchosen old pod.
    InPlace,
}

impl State {
    fn unavailable(self) -> bool {
        match self {
            State::Missing | State::Terminating => true,
            State::Updated { available } => !available,
            State::Old { ready } => !ready,
            State::InPlace => true,
        }
    }
}

struct Planner<'a> {
    obs: &'a Observed,
    prev: StatefulsetRolloutStatus,
    status: StatefulsetRolloutStatus,
    events: Vec<PlannedEvent>,
    generation: Option<i64>,
    new_generation: bool,
    now: Timestamp,
    /// Reasons the rollout is slowed down (the `Degraded` condition), in order.
    degraded: Vec<(&'static str, String)>,
    /// The target, in pods, once known.
    target: Option<i32>,
    /// `SpecValid=False` was set by this plan.
    spec_invalid: bool,
    /// The `Progressing=False` reason of a failure.
    failure_reason: &'static str,
    /// When the next pod Ready at the update revision becomes available (`minReadySeconds`): no
    /// watch event marks that instant, so the requeue must.
    next_available: Option<Duration>,
    /// A step holds for the user (an inconclusive analysis): the `Paused` condition's message.
    analysis_paused: Option<String>,
    /// The `Progressing` condition's reason when the rollout waits within `RolloutInProgress`
    /// for something other than its pods (the StatefulSet controller).
    progress_reason: Option<&'static str>,
    /// Pods read outside [`Slots`] (its own visits are added when the rollout proper returns).
    visits: u64,
    /// Entries of `status.pods` written.
    status_pods: u64,
}

/// What the rollout proper decided, before the common status bookkeeping.
struct Outcome {
    phase: Phase,
    reason: String,
    action: Action,
    requeue: Option<Duration>,
}

impl Outcome {
    fn wait(phase: Phase, reason: impl Into<String>, requeue: Option<Duration>) -> Self {
        Outcome {
            phase,
            reason: reason.into(),
            action: Action::Wait,
            requeue,
        }
    }
}

impl<'a> Planner<'a> {
    fn new(obs: &'a Observed) -> Self {
        let rollout = &obs.rollout;
        let prev = rollout.status.clone().unwrap_or_default();
        let generation = rollout.metadata.generation;
        let new_generation = prev.observed_generation != generation
            || prev.rollout_identity != rollout.spec.rollout_identity;
        let mut status = prev.clone();
        status.observed_generation = generation;
        status.rollout_identity = rollout.spec.rollout_identity.clone();
        status.build_metadata = rollout.build_metadata();
        status.last_updated = Some(Time(obs.now));
        status.paused = Some(rollout.spec.paused());
        if new_generation {
            status.deleted = None;
            // The previous generation's progress says nothing about this one: until the rollout
            // proper measures it, a status for the new generation must not claim it (a client
            // reading `observedGeneration == generation && percentDeployed == 100` would think
            // a template change it just made was already deployed).
            status.percent_deployed = None;
            status.updated_replicas = None;
            status.target_updated_replicas = None;
        }
        Planner {
            obs,
            prev,
            status,
            events: Vec::new(),
            generation,
            new_generation,
            now: obs.now,
            degraded: Vec::new(),
            target: None,
            spec_invalid: false,
            failure_reason: r::PROGRESS_DEADLINE_EXCEEDED,
            next_available: None,
            analysis_paused: None,
            progress_reason: None,
            visits: 0,
            status_pods: 0,
        }
    }

    fn run(mut self) -> Plan {
        self.observe_pods();
        let outcome = self.decide();
        let outcome = self.with_in_place(outcome);
        self.finish(outcome)
    }

    fn spec(&self) -> &'a sroll_api::StatefulsetRolloutSpec {
        &self.obs.rollout.spec
    }

    /// `status.pods` built afresh from the observed pods (and, with revision pinning, the
    /// entries the pinning webhook recorded for pods missing now).
    fn status_pod_list(&self) -> sroll_api::PodVersions {
        let mut list: Vec<PodVersion> = self
            .obs
            .pods
            .iter()
            .map(|p| PodVersion {
                name: p.name.clone(),
                revision: p.revision.clone().unwrap_or_default(),
                ready: p.ready,
            })
            .collect();
        // With revision pinning the entries are the pinning webhook's record of each pod's
        // revision: a pod missing now (killed, being recreated) keeps its entry, not Ready, while
        // its ordinal is within the replicas.
        if self.spec().revision_pinning() {
            let replicas = self.spec().replicas();
            let start = self
                .obs
                .statefulset
                .as_ref()
                .map_or(0, |l| l.ordinals_start);
            let previous = self.obs.rollout.status.as_ref().map(|s| &s.pods);
            for old in previous.into_iter().flatten() {
                let Some(ordinal) = old
                    .name
                    .rsplit_once('-')
                    .and_then(|(_, o)| o.parse::<i32>().ok())
                else {
                    continue;
                };
                let kept = ordinal >= start && ordinal - start < replicas;
                if kept && !list.iter().any(|p| p.name == old.name) {
                    list.push(PodVersion {
                        ready: false,
                        ..old.clone()
                    });
                }
            }
            list.sort_by_key(|p| {
                p.name
                    .rsplit_once('-')
                    .and_then(|(_, o)| o.parse::<i32>().ok())
                    .unwrap_or(i32::MAX)
            });
        }
        list.into()
    }

    /// Status fields that only describe the pods and discovery.
    fn observe_pods(&mut self) {
        // `status.pods` lists every pod (a reference field): O(pods), counted apart. The list
        // is shared: when the pods still read as the status the rollout holds says, that list is
        // kept (compared without allocating; no copy).
        let held = self.obs.rollout.status.as_ref().map(|s| &s.pods);
        let same = |held: &sroll_api::PodVersions| {
            held.len() == self.obs.pods.len()
                && held.iter().zip(self.obs.pods.iter()).all(|(h, p)| {
                    h.ready == p.ready
                        && h.name == p.name
                        && *h.revision == *p.revision.as_deref().unwrap_or_default()
                })
        };
        match held {
            Some(held) if !self.spec().revision_pinning() && same(held) => {
                self.status.pods = held.clone();
            }
            _ => self.status.pods = self.status_pod_list(),
        }
        self.status_pods += self.status.pods.len() as u64;
        let counts = self.obs.pods.counts();
        self.status.ready_replicas = Some(i32::try_from(counts.ready).unwrap_or(i32::MAX));
        if let Some(d) = self.obs.discovery.as_ref().filter(|d| !d.pending) {
            self.status.consul_services = d.existing_services.clone();
            // The healthy names that are pods of the set (O(healthy pods)).
            self.visits += d.healthy_pods.len() as u64;
            self.status.ready_replicas_service_discovery =
                Some(count(d.healthy_pods.iter().filter(|n| {
                    crate::index::set_of(n)
                        .and_then(|(_, o)| self.obs.pods.get(o))
                        .is_some_and(|p| &*p.name == n.as_str())
                })));
        }
        self.status.statefulset_name = self.obs.statefulset.as_ref().map(|s| s.name.clone());
        let policy = self
            .spec()
            .sts
            .spec
            .pod_management_policy
            .clone()
            .or_else(|| {
                self.obs
                    .statefulset
                    .as_ref()
                    .map(|s| s.pod_management_policy.clone())
            });
        if policy.as_deref() == Some("OrderedReady") {
            self.degraded.push((
                r::ORDERED_READY,
                "podManagementPolicy is OrderedReady: the StatefulSet controller recreates evicted pods one at a time, in order, so parallel evictions are serialised (the field is immutable; Parallel is recommended)".into(),
            ));
        }
    }

    fn decide(&mut self) -> Outcome {
        let rollout = &self.obs.rollout;
        // 1. Validation.
        let errors = sroll_api::validate::validate(rollout);
        if !errors.is_empty() {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return self.spec_invalid(
                r::INVALID_SPEC,
                format!("invalid spec: {}", list.join("; ")),
            );
        }
        let (hash, thash) = match (spec_hash(rollout), template_hash(rollout)) {
            (Ok(h), Ok(t)) => (h, t),
            (Err(e), _) | (_, Err(e)) => return self.spec_invalid(r::INVALID_SPEC, e.to_string()),
        };

        // 2. Terminal phases hold until the spec (generation) or the identity changes.
        let live = self.obs.statefulset.as_ref();
        if self.prev.phase.as_ref().is_some_and(Phase::is_terminal)
            && !self.new_generation
            && live.is_some()
        {
            let phase = self.prev.phase.clone().unwrap_or(Phase::Done);
            let reason = self.prev.reason.clone().unwrap_or_default();
            if self
                .prev
                .conditions
                .iter()
                .any(|c| c.type_ == ct::PROGRESSING && c.reason == r::DISCOVERY_HEALTH_TIMEOUT)
            {
                self.failure_reason = r::DISCOVERY_HEALTH_TIMEOUT;
            }
            if let Some(live) = live {
                self.status.statefulset_spec_current =
                    Some(live.spec_hash.as_deref() == Some(&hash));
            }
            return Outcome::wait(phase, reason, None);
        }

        // 3. Missing set.
        let Some(live) = live else {
            return self.create(&thash);
        };
        self.status.statefulset_spec_current = Some(live.spec_hash.as_deref() == Some(&hash));

        // 4. Deleting, ownership.
        if live.deleting {
            // A recreate in progress (statefulsetName cleared) must not read as a deletion under us.
            self.status.statefulset_name = self.prev.statefulset_name.clone();
            return Outcome::wait(
                self.between_steps(),
                format!("waiting for StatefulSet {} to finish deleting", live.name),
                Some(REQUEUE_SOON),
            );
        }
        let adopt = rollout.spec.adopt_existing.unwrap_or(false) && !live.owned_by_other;
        if !live.owned_by_rollout && !adopt {
            let message = if live.owned_by_other {
                format!(
                    "StatefulSet {} already exists and is controlled by another owner; remove its controller owner reference, or choose another spec.sts.metadata.name",
                    live.name
                )
            } else {
                format!(
                    "StatefulSet {} already exists and is not owned by this rollout; set spec.adoptExisting: true to let this rollout take it over, or choose another spec.sts.metadata.name",
                    live.name
                )
            };
            return self.spec_invalid(r::STATEFULSET_NOT_OWNED, message);
        }

        // 5. Spec drift → apply (after the immutable-field check).
        if live.spec_hash.as_deref() != Some(&hash) || !live.owned_by_rollout {
            return self.apply(live, &thash);
        }

        // 6. The StatefulSet controller must have computed the revisions of this spec. Within a
        //    release (after each partition move) that is a wait of `RolloutInProgress`, with its
        //    own `Progressing` reason, never a step back to `RolloutPending`.
        if live.observed_generation.unwrap_or(0) < live.generation {
            self.progress_reason = Some(r::WAITING_FOR_STATEFULSET);
            return Outcome::wait(
                self.between_steps(),
                format!(
                    "waiting for the StatefulSet controller to observe generation {} of {}",
                    live.generation, live.name
                ),
                Some(REQUEUE_SOON),
            );
        }
        let Some(update) = live.update_revision.clone() else {
            self.progress_reason = Some(r::WAITING_FOR_STATEFULSET);
            return Outcome::wait(
                self.between_steps(),
                format!(
                    "waiting for the StatefulSet controller to compute the revisions of {}",
                    live.name
                ),
                Some(REQUEUE_SOON),
            );
        };
        self.rollout(live, update)
    }

    /// The phase while the rollout waits between two steps (the StatefulSet controller has not
    /// observed the partition just written, a spec change that keeps the pod template is being
    /// applied, the set is being deleted to be recreated): the phase of the release under way —
    /// `RolloutPending` is only the phase of a release that has not started moving.
    fn between_steps(&self) -> Phase {
        match &self.prev.phase {
            Some(p @ (Phase::InProgress | Phase::Paused | Phase::Aborted)) => p.clone(),
            _ => Phase::Pending,
        }
    }

    fn spec_invalid(&mut self, reason: &str, message: String) -> Outcome {
        self.spec_invalid = true;
        conditions::set(
            &mut self.status.conditions,
            ct::SPEC_VALID,
            Status::False,
            reason,
            message.clone(),
            self.generation,
            self.now,
        );
        Outcome::wait(Phase::Blocked, message, None)
    }

    fn desired(
        &self,
        partition: i32,
    ) -> Result<Box<k8s_openapi::api::apps::v1::StatefulSet>, String> {
        let mut sts =
            desired_statefulset(&self.obs.rollout, partition).map_err(|e| e.to_string())?;
        // OnDelete with pinning: keep the record of the pods moved (it lives in the set's
        // annotations, which every apply rewrites).
        if self.spec().strategy() == RolloutStrategy::OnDelete
            && self.spec().revision_pinning()
            && let Some(record) = self
                .obs
                .statefulset
                .as_ref()
                .and_then(|l| l.pinned_update.clone())
        {
            sts.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(crate::pinning::ANNOTATION_PINNED_UPDATE.into(), record);
        }
        Ok(Box::new(sts))
    }

    /// `OnDelete` with revision pinning: before `batch` is evicted or deleted, record on the set
    /// that the ordinals from the batch's lowest up are moved to the update revision (the pinning
    /// webhook creates them there, and every other pod at its own revision). `None` when the record
    /// already covers the batch.
    fn pin_record(
        &self,
        c: &RolloutCtx<'_>,
        batch: &[usize],
    ) -> Result<Option<PartitionMove>, String> {
        if self.spec().strategy() != RolloutStrategy::OnDelete || !self.spec().revision_pinning() {
            return Ok(None);
        }
        let Some(lowest) = batch.iter().min() else {
            return Ok(None);
        };
        let ordinal = c.live.ordinals_start + i32::try_from(*lowest).unwrap_or(i32::MAX);
        let recorded = crate::pinning::pinned_update_from(
            c.live.pinned_update.as_deref(),
            c.live.update_revision.as_deref(),
        );
        if recorded.is_some_and(|r| r <= ordinal) {
            return Ok(None);
        }
        let mut sts = self.desired(c.replicas)?;
        sts.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                crate::pinning::ANNOTATION_PINNED_UPDATE.into(),
                crate::pinning::pinned_update_value(&c.update, ordinal),
            );
        if self.spec().sts.spec.pod_management_policy.is_none()
            && let Some(spec) = sts.spec.as_mut()
        {
            spec.pod_management_policy = Some(c.live.pod_management_policy.clone());
        }
        Ok(Some(PartitionMove {
            partition: ordinal,
            statefulset: sts,
        }))
    }

    fn create(&mut self, _thash: &str) -> Outcome {
        let replicas = self.spec().replicas();
        let sts = match self.desired(replicas) {
            Ok(s) => s,
            Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
        };
        let name = self.obs.rollout.statefulset_name();
        let existed = self.prev.statefulset_name.is_some();
        let kind = if existed {
            self.status.deleted = Some(true);
            self.event(
                EventType::Warning,
                r::STATEFULSET_DELETED,
                format!("StatefulSet {name} was deleted; recreating it from the spec"),
                "Apply",
            );
            ApplyKind::Recreate
        } else {
            self.event(
                EventType::Normal,
                r::STATEFULSET_CREATED,
                format!("creating StatefulSet {name} with {replicas} replicas"),
                "Apply",
            );
            ApplyKind::Create
        };
        Outcome {
            phase: Phase::Pending,
            reason: format!("creating StatefulSet {name}"),
            action: Action::Apply {
                statefulset: sts,
                kind,
            },
            requeue: Some(REQUEUE_SOON),
        }
    }

    fn apply(&mut self, live: &LiveStatefulSet, thash: &str) -> Outcome {
        let changed = immutable_changes(&self.spec().sts.spec, live);
        if !changed.is_empty() {
            let fields = changed.join(", ");
            if self.spec().recreate_on_immutable_change.unwrap_or(false) && live.owned_by_rollout {
                self.event(
                    EventType::Warning,
                    r::STATEFULSET_RECREATING,
                    format!(
                        "immutable field(s) {fields} changed: deleting StatefulSet {} with orphaned pods to recreate it",
                        live.name
                    ),
                    "Delete",
                );
                // The next create is intended, not a deletion under us.
                self.status.statefulset_name = None;
                return Outcome {
                    phase: Phase::Pending,
                    reason: format!("recreating StatefulSet {} to change {fields}", live.name),
                    action: Action::RecreateOrphan {
                        name: live.name.clone(),
                        uid: live.uid.clone(),
                    },
                    requeue: Some(REQUEUE_SOON),
                };
            }
            return self.spec_invalid(
                r::IMMUTABLE_FIELD_CHANGED,
                format!(
                    "spec.sts changes immutable StatefulSet field(s) {fields} of {}; revert them, or set spec.recreateOnImmutableChange: true to recreate the StatefulSet with orphaned pods",
                    live.name
                ),
            );
        }
        // A template change creates a new revision: freeze it (partition = replicas) so nothing
        // moves by itself; other changes keep the partition where the rollout left it.
        let replicas = self.spec().replicas();
        let template_changed = live.template_hash.as_deref() != Some(thash);
        let partition = if template_changed {
            replicas
        } else {
            live.partition.unwrap_or(replicas).min(replicas.max(0))
        };
        let mut sts = match self.desired(partition) {
            Ok(s) => s,
            Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
        };
        // The user left podManagementPolicy unset: keep the live value (immutable).
        if self.spec().sts.spec.pod_management_policy.is_none()
            && let Some(spec) = sts.spec.as_mut()
        {
            spec.pod_management_policy = Some(live.pod_management_policy.clone());
        }
        let (kind, reason, what) = if live.owned_by_rollout {
            (ApplyKind::Update, r::STATEFULSET_UPDATED, "updating")
        } else {
            (ApplyKind::Adopt, r::STATEFULSET_ADOPTED, "adopting")
        };
        self.event(
            EventType::Normal,
            reason,
            format!(
                "{what} StatefulSet {}{}",
                live.name,
                if template_changed {
                    " (new pod template)"
                } else {
                    ""
                }
            ),
            "Apply",
        );
        Outcome {
            // A new pod template is a new release, which starts from `RolloutPending`; any other
            // change is a step within the release under way.
            phase: if template_changed {
                Phase::Pending
            } else {
                self.between_steps()
            },
            reason: format!("{what} StatefulSet {}", live.name),
            action: Action::Apply {
                statefulset: sts,
                kind,
            },
            requeue: Some(REQUEUE_SOON),
        }
    }

    /// The rollout proper, once the live set matches the spec and its revisions are known.
    fn rollout(&mut self, live: &LiveStatefulSet, update: String) -> Outcome {
        let spec = self.spec();
        let current = live
            .current_revision
            .clone()
            .unwrap_or_else(|| update.clone());
        let replicas = live.replicas.max(0);
        // A rollout to the current revision (a revert, or a fresh set) has no partial state that
        // makes sense: every pod goes there.
        let target = if update == current {
            replicas
        } else {
            target_updated_replicas(replicas, spec.percent)
        };
        // Analysis gates and steps (analysis.rs): the current step caps the target. After the
        // last pod moved, the set's current revision is the update revision: the steps of the
        // release under way (a final analysis) still run.
        let release = format!(
            "{update}/{}",
            spec.rollout_identity.as_deref().unwrap_or("")
        );
        let tracked = self
            .prev
            .analysis
            .as_ref()
            .and_then(|a| a.release.as_deref())
            == Some(release.as_str());
        let gate = (update != current || tracked)
            .then(|| {
                crate::analysis::gate(
                    spec,
                    &mut self.status.analysis,
                    &release,
                    &self.obs.analysis,
                    spec.paused(),
                    self.now,
                )
            })
            .flatten();
        let target = match &gate {
            Some(Gate::Percent { percent, .. }) if update != current => {
                target.min(target_updated_replicas(replicas, *percent))
            }
            _ => target,
        };
        self.target = Some(target);
        self.track_revisions(&update, &current);
        let fast_rollback = transitions::rolling_back(&self.prev, &self.status, &update);

        let slots = self.slots(live, &update);
        self.next_available = slots.next_available();
        let updated = i32::try_from(slots.updated_in(0, slots.len())).unwrap_or(i32::MAX);
        self.status.updated_replicas = Some(updated);
        self.status.target_updated_replicas = Some(target);
        self.status.percent_deployed = Some(if replicas == 0 {
            spec.percent
        } else {
            i32::try_from(i64::from(updated) * 100 / i64::from(replicas)).unwrap_or(100)
        });
        self.track_progress(&slots);

        let ctx = RolloutCtx {
            live,
            update,
            replicas,
            target,
            fast_rollback,
            hold_for_discovery: true,
            slots,
        };
        let outcome = self.rollout_step(&ctx, gate);
        self.visits += ctx.slots.visits();
        outcome
    }

    fn rollout_step(&mut self, ctx: &RolloutCtx<'_>, gate: Option<Gate>) -> Outcome {
        let spec = self.spec();
        match gate {
            Some(Gate::Percent { last: false, .. }) => {}
            Some(Gate::Percent { last: true, .. }) | None => {
                return match spec.strategy() {
                    RolloutStrategy::OnDelete => self.on_delete(ctx),
                    _ => self.partitioned(ctx),
                };
            }
            Some(hold) => return self.analysis_hold(ctx, hold),
        }
        let outcome = match spec.strategy() {
            RolloutStrategy::OnDelete => self.on_delete(ctx),
            _ => self.partitioned(ctx),
        };
        if outcome.phase != Phase::Done {
            return outcome;
        }
        // A percent step reached its target: the next step starts.
        crate::analysis::percent_step_done(&mut self.status.analysis, self.now);
        Outcome::wait(
            Phase::InProgress,
            format!("{}; next step", outcome.reason),
            Some(Duration::from_millis(200)),
        )
    }

    /// A step holds the rollout (analysis running, pause, inconclusive) or an analysis aborted
    /// it; with `abortPolicy: Rollback` the updated pods go back to the current revision through
    /// the eviction path, unpaced (as a rollback to the previous revision is).
    fn analysis_hold(&mut self, c: &RolloutCtx<'_>, gate: Gate) -> Outcome {
        // The progress deadline does not run while a step holds.
        self.status.last_progress_time = Some(Time(self.now));
        let progress = self.progress_text(c);
        match gate {
            Gate::Hold { reason, requeue } => {
                Outcome::wait(Phase::InProgress, format!("{reason}; {progress}"), requeue)
            }
            Gate::Paused { reason } => {
                self.analysis_paused = Some(reason.clone());
                Outcome::wait(Phase::Paused, format!("{reason}; {progress}"), None)
            }
            Gate::Aborted { policy, reason } => {
                let rollback = policy == AbortPolicy::Rollback
                    && self.spec().strategy() != RolloutStrategy::OnDelete
                    && c.live.current_revision.as_deref() != Some(c.update.as_str());
                if rollback && let Some(o) = self.roll_back(c, &reason) {
                    return o;
                }
                let done = if rollback {
                    "the updated pods are back at the previous revision"
                } else if policy == AbortPolicy::Hold {
                    "abortPolicy Hold: the pods stay where they are"
                } else {
                    "every pod already runs this revision (or the strategy is OnDelete): apply the previous spec.sts to roll back"
                };
                Outcome::wait(Phase::Aborted, format!("{reason}; {done}"), None)
            }
            Gate::Percent { .. } => Outcome::wait(Phase::InProgress, progress, Some(REQUEUE_SOON)),
        }
    }

    /// One batch of the abort's rollback, or `None` once no pod runs the update revision and the
    /// partition holds every pod at the current revision.
    fn roll_back(&mut self, c: &RolloutCtx<'_>, reason: &str) -> Option<Outcome> {
        let replicas = usize::try_from(c.replicas).unwrap_or(0);
        let partition = usize::try_from(c.live.partition.unwrap_or(0).max(0)).unwrap_or(0);
        let partition_move = match self.partition_move(replicas, partition) {
            Ok(m) => m,
            Err(e) => return Some(self.spec_invalid(r::INVALID_SPEC, e)),
        };
        // An abort's rollback reads every slot (a rare path; the pods going back are most of them).
        let updated: Vec<usize> = (0..replicas)
            .rev()
            .filter(|&i| matches!(c.slots.state(i), State::Updated { .. }))
            .collect();
        let in_flight = unavailable_total(&c.slots);
        let reason = format!(
            "{reason}; rolling back to revision {}",
            c.live.current_revision.as_deref().unwrap_or("")
        );
        // Updated pods that are not Ready are replaced without spending budget.
        let broken: Vec<usize> = updated
            .iter()
            .copied()
            .filter(|&i| c.slots.pod(i).is_some_and(|p| !p.ready && !p.terminating))
            .collect();
        if !broken.is_empty() {
            return Some(Outcome {
                phase: Phase::Aborted,
                reason,
                action: Action::DeletePods {
                    partition: partition_move,
                    pods: names(c, &broken),
                },
                requeue: Some(REQUEUE_SOON),
            });
        }
        let candidates: Vec<usize> = updated
            .iter()
            .copied()
            .filter(|&i| c.slots.pod(i).is_some_and(|p| !p.terminating))
            .collect();
        if candidates.is_empty() && in_flight == 0 && partition_move.is_none() {
            return None;
        }
        // A rollback is not paced (as a rollback to the previous revision is not).
        let unpaced = RolloutCtx {
            live: c.live,
            update: c.update.clone(),
            replicas: c.replicas,
            target: 0,
            fast_rollback: true,
            // The pods going back are the ones that failed: their health holds nothing.
            hold_for_discovery: false,
            slots: c.slots.again(),
        };
        let budget = self.budget(&unpaced, in_flight, in_flight);
        c.slots
            .visit(usize::try_from(unpaced.slots.visits()).unwrap_or(usize::MAX));
        let size = match budget {
            Ok((size, _, _)) => size.min(candidates.len()),
            Err(blocked) => return Some(blocked),
        };
        if size == 0 && partition_move.is_none() {
            return Some(Outcome::wait(
                Phase::Aborted,
                format!("{reason}; waiting for the disruption budget"),
                Some(REQUEUE_WAITING),
            ));
        }
        let pods = names(c, &candidates[..size]);
        if !pods.is_empty() {
            self.status.last_eviction_time = Some(MicroTime(self.now));
            self.event(
                EventType::Normal,
                r::ROLLBACK_STARTED,
                format!(
                    "analysis abort: evicting {} pod{} back to the current revision: {}",
                    pods.len(),
                    plural(pods.len()),
                    name_list(&pods)
                ),
                "Evict",
            );
        }
        Some(Outcome {
            phase: Phase::Aborted,
            reason,
            action: if pods.is_empty() {
                match partition_move {
                    Some(m) => Action::SetPartition(m),
                    None => Action::Wait,
                }
            } else {
                Action::Evict {
                    partition: partition_move,
                    pods,
                }
            },
            requeue: Some(REQUEUE_SOON),
        })
    }

    /// Revisions: a new update revision starts a rollout (or a rollback to the previous one).
    fn track_revisions(&mut self, update: &str, current: &str) {
        let started = self.prev.update_revision.as_deref() != Some(update);
        if started {
            if let Some(old_update) = self.prev.update_revision.clone() {
                if transitions::rollback_starts(&self.prev, update) {
                    // Keep previousRevision: the rollback stays unpaced until it completes.
                    self.event(
                        EventType::Normal,
                        r::ROLLBACK_STARTED,
                        format!("rolling back to the previous revision {update}"),
                        "Reconcile",
                    );
                } else {
                    self.status.previous_revision = Some(if current != update {
                        current.to_owned()
                    } else {
                        old_update
                    });
                    self.event(
                        EventType::Normal,
                        r::ROLLOUT_STARTED,
                        format!("rolling out revision {update} (from {current})"),
                        "Reconcile",
                    );
                }
            }
            self.status.last_progress_time = Some(Time(self.now));
        }
        if self.new_generation || self.spec().paused() {
            // The deadline counts from the latest spec change and never runs while paused.
            self.status.last_progress_time = Some(Time(self.now));
        }
        self.status.update_revision = Some(update.to_owned());
        self.status.current_revision = Some(current.to_owned());
    }

    fn slots(&self, live: &'a LiveStatefulSet, update: &str) -> Slots<'a> {
        Slots::new(
            &self.obs.pods,
            &live.name,
            live.ordinals_start,
            usize::try_from(live.replicas.max(0)).unwrap_or(0),
            update.to_owned(),
            self.discovery_gate(),
            live.min_ready_seconds,
            self.now,
            self.in_place_mode(),
        )
    }

    /// `Some(healthy pods)` when the rollout is gated on service discovery.
    fn discovery_gate(&self) -> Option<&'a BTreeSet<String>> {
        self.spec().service_discovery.as_ref()?;
        let d = self.obs.discovery.as_ref()?;
        d.reachable.then_some(&d.healthy_pods)
    }

    /// `lastProgressTime`: the latest instant a pod became available at the update revision.
    fn track_progress(&mut self, slots: &Slots<'_>) {
        let latest = slots.latest_available();
        if let Some(latest) = latest
            && self
                .status
                .last_progress_time
                .as_ref()
                .is_none_or(|t| t.0 < latest)
        {
            self.status.last_progress_time = Some(Time(latest));
        }
    }

    fn partitioned(&mut self, c: &RolloutCtx<'_>) -> Outcome {
        let replicas = usize::try_from(c.replicas).unwrap_or(0);
        let target = usize::try_from(c.target).unwrap_or(0).min(replicas);
        let range_start = replicas - target;
        let partition = usize::try_from(c.live.partition.unwrap_or(0).max(0))
            .unwrap_or(0)
            .min(replicas);
        // In-place pods wait below the partition until their patch, and restart their containers
        // there until the partition follows them: in flight all the same.
        let in_flight: Vec<usize> = c
            .slots
            .special()
            .iter()
            .filter(|s| {
                (s.i >= partition && s.state.unavailable())
                    || matches!(
                        s.state,
                        State::InPlace | State::Updated { available: false }
                    )
            })
            .map(|s| s.i)
            .collect();
        let progress = self.progress_text(c);

        // Done: every target pod is available at the update revision and the partition is aligned.
        let aligned = aligned_partition(&c.slots, &BTreeSet::new(), partition, range_start);
        let target_done = all_available(&c.slots, range_start, replicas);
        if target_done && aligned == partition {
            return self.done(c);
        }
        if self.spec().paused() {
            // Never lower the partition while paused; raising it above old pods a refused
            // eviction left exposed keeps the StatefulSet controller from moving them.
            if aligned > partition {
                match self.partition_move(aligned, partition) {
                    Ok(Some(m)) => {
                        return Outcome {
                            phase: Phase::Paused,
                            reason: format!(
                                "paused by spec.pauseRequested; moving the partition back up to {aligned}; {progress}"
                            ),
                            action: Action::SetPartition(m),
                            requeue: Some(REQUEUE_SOON),
                        };
                    }
                    Ok(None) => {}
                    Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
                }
            }
            return self.paused(&progress);
        }
        if let Some(failed) = self.deadline(c, &in_flight) {
            return failed;
        }
        if let Some(wait) = self.discovery_unreachable(&progress) {
            return wait;
        }

        // Self-healing: broken pods in the target range above every healthy old pod are replaced
        // at once, without budget (they are already unavailable).
        let highest_healthy_old = c.slots.not_updated_desc(0, replicas).find(|&i| {
            matches!(
                c.slots.state(i),
                State::Old { ready: true } | State::InPlace
            )
        });
        let broken: Vec<usize> = c
            .slots
            .special_in(range_start, replicas)
            .filter(|s| {
                s.state == State::Old { ready: false }
                    && highest_healthy_old.is_none_or(|h| s.i > h)
            })
            .map(|s| s.i)
            .collect();
        if !broken.is_empty() {
            let selected: BTreeSet<usize> = broken.iter().copied().collect();
            let new_partition = aligned_partition(&c.slots, &selected, partition, range_start);
            let names = names(c, &broken);
            let partition_move = match self.partition_move(new_partition, partition) {
                Ok(m) => m,
                Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
            };
            self.event(
                EventType::Normal,
                r::BROKEN_PODS_REPLACED,
                format!(
                    "replacing {} pod{} that {} not Ready at an old revision: {}",
                    names.len(),
                    plural(names.len()),
                    if names.len() == 1 { "is" } else { "are" },
                    name_list(&names)
                ),
                "Delete",
            );
            return Outcome {
                phase: Phase::InProgress,
                reason: format!(
                    "replacing {} broken pod{} ({}); {progress}",
                    names.len(),
                    plural(names.len()),
                    name_list(&names)
                ),
                action: Action::DeletePods {
                    partition: partition_move,
                    pods: names,
                },
                requeue: Some(REQUEUE_SOON),
            };
        }

        let unavailable_total = unavailable_total(&c.slots);
        let budget = self.budget(c, in_flight.len(), unavailable_total);
        let (size, limit_reason, requeue) = match budget {
            Ok(b) => b,
            Err(blocked) => return blocked,
        };
        // The batch: old pods of the target range, highest ordinal first (only as many as fit).
        let candidates: Vec<usize> = c
            .slots
            .not_updated_desc(range_start, replicas)
            .filter(|&i| matches!(c.slots.state(i), State::Old { .. }))
            .take(size)
            .collect();
        let size = size.min(candidates.len());
        if size > 0 {
            let realign = match self.partition_move(aligned, partition) {
                Ok(m) => m,
                Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
            };
            if let Some(o) = self.in_place_batch(c, &candidates, size, realign, &progress) {
                return o;
            }
            let batch: Vec<usize> = candidates[..size].to_vec();
            let selected: BTreeSet<usize> = batch.iter().copied().collect();
            let new_partition = aligned_partition(&c.slots, &selected, partition, range_start);
            let partition_move = match self.partition_move(new_partition, partition) {
                Ok(m) => m,
                Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
            };
            return self.evict(c, &batch, partition_move, &progress);
        }
        if aligned != partition {
            // Nothing to evict now, but pods the rollout did not choose sit at or above the
            // partition (an eviction was refused), or chosen pods sit below it: re-align.
            let partition_move = match self.partition_move(aligned, partition) {
                Ok(m) => m,
                Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
            };
            if let Some(m) = partition_move {
                self.event(
                    EventType::Normal,
                    r::PARTITION_MOVED,
                    format!("partition moved from {partition} to {aligned}"),
                    "Apply",
                );
                return Outcome {
                    phase: Phase::InProgress,
                    reason: format!("moving the partition to {aligned}; {progress}"),
                    action: Action::SetPartition(m),
                    requeue: Some(REQUEUE_SOON),
                };
            }
        }
        let in_flight_names = names(c, &in_flight);
        self.waiting(&in_flight_names, limit_reason, requeue, &progress)
    }

    fn on_delete(&mut self, c: &RolloutCtx<'_>) -> Outcome {
        let replicas = usize::try_from(c.replicas).unwrap_or(0);
        let target = usize::try_from(c.target).unwrap_or(0).min(replicas);
        let progress = self.progress_text(c);
        // Under OnDelete every recreated pod gets the update revision: missing and terminating pods
        // are on their way there.
        let coming = i32::try_from(replicas - old_count(&c.slots)).unwrap_or(i32::MAX);
        let needed = usize::try_from(c.target - coming).unwrap_or(0).min(target);
        let in_flight: Vec<usize> = c
            .slots
            .special()
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    State::Missing
                        | State::Terminating
                        | State::Updated { available: false }
                        | State::InPlace
                )
            })
            .map(|s| s.i)
            .collect();
        let all_updated = all_available(&c.slots, 0, replicas);
        if all_updated && c.live.current_revision.as_deref() != Some(c.update.as_str()) {
            self.event(
                EventType::Normal,
                r::CURRENT_REVISION_PATCHED,
                format!(
                    "every pod runs {}: recording it as the current revision of {}",
                    c.update, c.live.name
                ),
                "Patch",
            );
            return Outcome {
                phase: Phase::InProgress,
                reason: format!("recording {} as the current revision; {progress}", c.update),
                action: Action::PatchCurrentRevision {
                    statefulset: c.live.name.clone(),
                    revision: c.update.clone(),
                },
                requeue: Some(REQUEUE_SOON),
            };
        }
        if needed == 0 && in_flight.is_empty() {
            return self.done(c);
        }
        if self.spec().paused() {
            return self.paused(&progress);
        }
        if let Some(failed) = self.deadline(c, &in_flight) {
            return failed;
        }
        if let Some(wait) = self.discovery_unreachable(&progress) {
            return wait;
        }
        // The pods to move: the `needed` highest old pods. Only as many as the budget allows are
        // read, except to find whether a broken old pod (special) is among the `needed`: the walk
        // stops at the lowest of those.
        let old_desc = || {
            c.slots
                .not_updated_desc(0, replicas)
                .map(|i| (i, c.slots.state(i)))
                .filter(|(_, s)| matches!(s, State::Old { .. }))
                .take(needed)
        };
        let lowest_broken = c
            .slots
            .special()
            .iter()
            .filter(|s| s.state == State::Old { ready: false })
            .map(|s| s.i)
            .min();
        let broken: Vec<usize> = match lowest_broken {
            Some(lowest) => old_desc()
                .take_while(|(i, _)| *i >= lowest)
                .filter(|(_, s)| *s == State::Old { ready: false })
                .map(|(i, _)| i)
                .collect(),
            None => Vec::new(),
        };
        if !broken.is_empty() {
            let names = names(c, &broken);
            let record = match self.pin_record(c, &broken) {
                Ok(r) => r,
                Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
            };
            self.event(
                EventType::Normal,
                r::BROKEN_PODS_REPLACED,
                format!(
                    "replacing {} pod{} not Ready at an old revision: {}",
                    names.len(),
                    plural(names.len()),
                    name_list(&names)
                ),
                "Delete",
            );
            return Outcome {
                phase: Phase::InProgress,
                reason: format!(
                    "replacing {} broken pod{} ({}); {progress}",
                    names.len(),
                    plural(names.len()),
                    name_list(&names)
                ),
                action: Action::DeletePods {
                    partition: record,
                    pods: names,
                },
                requeue: Some(REQUEUE_SOON),
            };
        }
        let unavailable_total = unavailable_total(&c.slots);
        let (size, limit_reason, requeue) = match self.budget(c, in_flight.len(), unavailable_total)
        {
            Ok(b) => b,
            Err(blocked) => return blocked,
        };
        let chosen: Vec<usize> = old_desc().take(size).map(|(i, _)| i).collect();
        let size = size.min(chosen.len());
        if size > 0 {
            if let Some(o) = self.in_place_batch(c, &chosen, size, None, &progress) {
                return o;
            }
            let batch = chosen[..size].to_vec();
            let record = match self.pin_record(c, &batch) {
                Ok(r) => r,
                Err(e) => return self.spec_invalid(r::INVALID_SPEC, e),
            };
            return self.evict(c, &batch, record, &progress);
        }
        let in_flight_names = names(c, &in_flight);
        self.waiting(&in_flight_names, limit_reason, requeue, &progress)
    }

    /// How many pods may be evicted now: `(size, why it is limited, requeue)`, or a blocked outcome.
    ///
    /// `min(PDB disruptionsAllowed, maxUnavailable − in-flight, pacing)`. The PDB's
    /// `disruptionsAllowed` already discounts every unhealthy pod, so in-flight pods are not
    /// subtracted from it again.
    fn budget(
        &mut self,
        c: &RolloutCtx<'_>,
        in_flight: usize,
        unavailable_total: usize,
    ) -> Result<(usize, String, Option<Duration>), Outcome> {
        let spec = self.spec();
        let pdbs = &self.obs.pdbs;
        let mut size = usize::MAX;
        let mut why = String::new();
        let mut requeue = Some(REQUEUE_WAITING);
        match pdbs.as_slice() {
            [] => {
                self.degraded.push((
                    r::NO_DISRUPTION_BUDGET,
                    "no PodDisruptionBudget selects the pods: rolling one pod at a time (create one to roll several in parallel)".into(),
                ));
            }
            [pdb] if pdb.stale => {
                size = 0;
                why = format!(
                    "waiting for the disruption controller to process PodDisruptionBudget {}",
                    pdb.name
                );
            }
            [pdb] => {
                size = usize::try_from(pdb_allowance(pdb, c)).unwrap_or(0);
                if size == 0 {
                    why = format!(
                        "waiting for PodDisruptionBudget {} to allow a disruption",
                        pdb.name
                    );
                }
            }
            many => {
                let names: Vec<String> = many.iter().map(|p| p.name.clone()).collect();
                let msg = format!(
                    "more than one PodDisruptionBudget selects the pods ({}): the eviction API refuses to evict them; keep one",
                    names.join(", ")
                );
                self.degraded
                    .push((r::MULTIPLE_DISRUPTION_BUDGETS, msg.clone()));
                return Err(Outcome::wait(Phase::Blocked, msg, None));
            }
        }
        // A pod at the update revision Ready in Kubernetes but not healthy in service discovery
        // holds the next eviction until it is healthy (or `healthTimeoutSeconds` fails the
        // rollout): the PDB counts it healthy, so its allowance would let the rollout go on
        // moving pods that nobody serves.
        if c.hold_for_discovery && size > 0 {
            let unhealthy: Vec<String> = match self.discovery_gate() {
                Some(healthy) => c
                    .slots
                    .special()
                    .iter()
                    .filter(|s| s.state == State::Updated { available: false })
                    .filter_map(|s| s.pod)
                    .filter(|p| p.ready && !healthy.contains(&*p.name))
                    .map(|p| p.name.to_string())
                    .collect(),
                None => Vec::new(),
            };
            if !unhealthy.is_empty() {
                return Ok((
                    0,
                    format!(
                        "holding the next eviction until pod{} {} {} healthy in service discovery",
                        plural(unhealthy.len()),
                        name_list(&unhealthy),
                        if unhealthy.len() == 1 { "is" } else { "are" }
                    ),
                    requeue,
                ));
            }
        }
        // The rollout's own concurrency cap: spec.maxUnavailable, or one pod when no PDB.
        let cap = match &spec.max_unavailable {
            Some(mu) => Some((
                usize::try_from(scaled_value(mu, c.replicas, true).unwrap_or(1).max(1))
                    .unwrap_or(1),
                in_flight,
                "spec.maxUnavailable",
            )),
            None if pdbs.is_empty() => Some((
                1,
                unavailable_total,
                "no PodDisruptionBudget: one pod at a time",
            )),
            None => None,
        };
        if let Some((cap, used, label)) = cap {
            let free = cap.saturating_sub(used);
            if free < size {
                size = free;
                if free == 0 {
                    why = format!(
                        "{used} pod{} unavailable, {label} allows {cap}",
                        plural(used)
                    );
                }
            }
        }
        // Pacing (not for a rollback to the previous revision).
        let interval = spec.min_pod_eviction_interval_seconds();
        if interval > 0 && !c.fast_rollback && size > 0 {
            size = size.min(1);
            if let Some(last) = &self.prev.last_eviction_time {
                let next = last
                    .0
                    .checked_add(SignedDuration::from_secs(interval))
                    .unwrap_or(last.0);
                if next > self.now {
                    let remaining = to_std(next.duration_since(self.now));
                    size = 0;
                    why = format!(
                        "pacing: next eviction in {}s (minPodEvictionIntervalSeconds {interval})",
                        remaining.as_secs_f64().ceil()
                    );
                    requeue = Some(remaining);
                }
            }
        }
        Ok((size, why, requeue))
    }

    fn evict(
        &mut self,
        c: &RolloutCtx<'_>,
        batch: &[usize],
        partition: Option<PartitionMove>,
        progress: &str,
    ) -> Outcome {
        let names = names(c, batch);
        self.status.last_eviction_time = Some(MicroTime(self.now));
        self.event(
            EventType::Normal,
            r::PODS_EVICTED,
            format!(
                "evicting {} pod{} to revision {}: {}",
                names.len(),
                plural(names.len()),
                c.update,
                name_list(&names)
            ),
            "Evict",
        );
        Outcome {
            phase: Phase::InProgress,
            reason: format!(
                "evicting {} pod{} ({}); {progress}",
                names.len(),
                plural(names.len()),
                name_list(&names)
            ),
            action: Action::Evict {
                partition,
                pods: names,
            },
            requeue: Some(REQUEUE_SOON),
        }
    }

    fn waiting(
        &mut self,
        in_flight: &[String],
        limit_reason: String,
        requeue: Option<Duration>,
        progress: &str,
    ) -> Outcome {
        let mut parts = Vec::new();
        if !limit_reason.is_empty() {
            parts.push(limit_reason);
        }
        if !in_flight.is_empty() {
            parts.push(format!(
                "waiting for {} pod{} to become available ({})",
                in_flight.len(),
                plural(in_flight.len()),
                name_list(in_flight)
            ));
        }
        if parts.is_empty() {
            parts.push("waiting".into());
        }
        let mut requeue = requeue;
        for t in [self.deadline_in(), self.next_available]
            .into_iter()
            .flatten()
        {
            requeue = Some(requeue.map_or(t, |r| r.min(t)));
        }
        Outcome::wait(
            Phase::InProgress,
            format!("{}; {progress}", parts.join("; ")),
            requeue,
        )
    }

    /// Time left before the progress deadline, while pods are in flight.
    fn deadline_in(&self) -> Option<Duration> {
        let since = self.deadline_start()?;
        let deadline = since
            .checked_add(SignedDuration::from_secs(i64::from(
                self.spec().progress_deadline_seconds(),
            )))
            .ok()?;
        (deadline > self.now).then(|| to_std(deadline.duration_since(self.now)))
    }

    fn deadline_start(&self) -> Option<Timestamp> {
        let progress = self.status.last_progress_time.as_ref().map(|t| t.0);
        let eviction = self.status.last_eviction_time.as_ref().map(|t| t.0);
        progress.max(eviction)
    }

    fn deadline(&mut self, c: &RolloutCtx<'_>, in_flight: &[usize]) -> Option<Outcome> {
        if let Some(failed) = self.discovery_timeout(c) {
            return Some(failed);
        }
        if in_flight.is_empty() {
            return None;
        }
        let since = self.deadline_start()?;
        let limit = i64::from(self.spec().progress_deadline_seconds());
        if self.now.duration_since(since) < SignedDuration::from_secs(limit) {
            return None;
        }
        let stuck = names(c, in_flight);
        let reason = format!(
            "no progress for {limit}s (progressDeadlineSeconds): pod{} {} did not become Ready at revision {}",
            plural(stuck.len()),
            name_list(&stuck),
            c.update
        );
        Some(Outcome::wait(Phase::Failed, reason, None))
    }

    /// Pods Ready in Kubernetes at the update revision but not healthy in service discovery for
    /// `serviceDiscovery.healthTimeoutSeconds` fail the rollout.
    fn discovery_timeout(&mut self, c: &RolloutCtx<'_>) -> Option<Outcome> {
        let sd = self.spec().service_discovery.as_ref()?;
        let healthy = self.discovery_gate()?;
        let timeout = i64::from(
            sd.health_timeout_seconds
                .unwrap_or(sroll_api::defaults::DISCOVERY_HEALTH_TIMEOUT_SECONDS),
        );
        // Every pod at the update revision not healthy in service discovery is special.
        let unhealthy: Vec<&ObservedPod> = c
            .slots
            .special()
            .iter()
            .filter(|s| matches!(s.state, State::Updated { .. }))
            .filter_map(|s| s.pod)
            .filter(|p| p.ready && !healthy.contains(&*p.name))
            .collect();
        let stuck: Vec<String> = unhealthy
            .iter()
            .filter(|p| {
                p.ready_since.is_some_and(|t| {
                    self.now.duration_since(t) >= SignedDuration::from_secs(timeout)
                })
            })
            .map(|p| p.name.to_string())
            .collect();
        if stuck.is_empty() {
            if !unhealthy.is_empty() {
                let names: Vec<String> = unhealthy.iter().map(|p| p.name.to_string()).collect();
                self.degraded.push((
                    r::DISCOVERY_UNHEALTHY,
                    format!(
                        "pod{} {} Ready in Kubernetes but not healthy in service discovery: holding the next eviction (failing after {timeout}s, serviceDiscovery.healthTimeoutSeconds)",
                        plural(names.len()),
                        name_list(&names)
                    ),
                ));
            }
            return None;
        }
        self.failure_reason = r::DISCOVERY_HEALTH_TIMEOUT;
        Some(Outcome::wait(
            Phase::Failed,
            format!(
                "pod{} {} Ready in Kubernetes but not healthy in service discovery after {timeout}s (serviceDiscovery.healthTimeoutSeconds)",
                plural(stuck.len()),
                name_list(&stuck)
            ),
            None,
        ))
    }

    fn discovery_unreachable(&mut self, progress: &str) -> Option<Outcome> {
        self.spec().service_discovery.as_ref()?;
        let d = self.obs.discovery.as_ref()?;
        if d.reachable {
            return None;
        }
        if d.pending {
            return Some(Outcome::wait(
                Phase::InProgress,
                format!(
                    "waiting for the first answer from service discovery: no eviction until the health of moved pods can be checked; {progress}"
                ),
                Some(REQUEUE_WAITING),
            ));
        }
        let msg = "service discovery is unreachable: no eviction until the health of moved pods can be checked".to_owned();
        self.degraded.push((r::DISCOVERY_UNREACHABLE, msg.clone()));
        Some(Outcome::wait(
            Phase::InProgress,
            format!("{msg}; {progress}"),
            Some(REQUEUE_WAITING),
        ))
    }

    fn paused(&mut self, progress: &str) -> Outcome {
        Outcome::wait(
            Phase::Paused,
            format!("paused by spec.pauseRequested; {progress}"),
            None,
        )
    }

    fn done(&mut self, c: &RolloutCtx<'_>) -> Outcome {
        let updated = self.status.updated_replicas.unwrap_or(0);
        Outcome::wait(
            Phase::Done,
            format!(
                "{} of {} target pods run revision {} and are Ready ({} of {} pods updated, percent {})",
                c.target,
                c.target,
                c.update,
                updated,
                c.replicas,
                self.spec().percent
            ),
            None,
        )
    }

    fn progress_text(&self, c: &RolloutCtx<'_>) -> String {
        let target = usize::try_from(c.target).unwrap_or(0);
        let len = c.slots.len();
        let updated_in_target = if self.spec().strategy() == RolloutStrategy::OnDelete {
            c.slots.updated_in(0, len).min(target)
        } else {
            c.slots.updated_in(len.saturating_sub(target), len)
        };
        format!("{updated_in_target} of {} target pods updated", c.target)
    }

    fn partition_move(&self, new: usize, old: usize) -> Result<Option<PartitionMove>, String> {
        if new == old {
            return Ok(None);
        }
        let partition = i32::try_from(new).unwrap_or(i32::MAX);
        Ok(Some(PartitionMove {
            partition,
            statefulset: self.desired(partition)?,
        }))
    }

    fn event(&mut self, type_: EventType, reason: &str, note: String, action: &str) {
        self.events.push(PlannedEvent {
            type_,
            reason: reason.into(),
            note,
            action: action.into(),
        });
    }

    /// Phase, reason, conditions, transition events and the requeue.
    fn finish(mut self, o: Outcome) -> Plan {
        if !self.spec_invalid {
            conditions::set(
                &mut self.status.conditions,
                ct::SPEC_VALID,
                Status::True,
                r::SPEC_VALID,
                "the spec is valid and can be applied",
                self.generation,
                self.now,
            );
        }
        let (progressing, p_reason) = match o.phase {
            Phase::Done => (Status::True, r::ROLLOUT_DONE),
            Phase::Failed => (Status::False, self.failure_reason),
            Phase::Paused => (Status::Unknown, r::PAUSE_REQUESTED),
            Phase::Blocked => (Status::False, o.phase.as_str()),
            Phase::Aborted => (Status::False, r::ROLLOUT_ABORTED),
            _ => (
                Status::True,
                self.progress_reason.unwrap_or(r::ROLLOUT_IN_PROGRESS),
            ),
        };
        conditions::set(
            &mut self.status.conditions,
            ct::PROGRESSING,
            progressing,
            p_reason,
            o.reason.clone(),
            self.generation,
            self.now,
        );
        let paused = self.spec().paused();
        conditions::set(
            &mut self.status.conditions,
            ct::PAUSED,
            Status::from_bool(paused),
            if paused {
                r::PAUSE_REQUESTED
            } else {
                r::NOT_PAUSED
            },
            if paused {
                "spec.pauseRequested is true: no new eviction"
            } else {
                "the rollout is not paused"
            },
            self.generation,
            self.now,
        );
        if let Some(message) = self.analysis_paused.clone() {
            conditions::set(
                &mut self.status.conditions,
                ct::PAUSED,
                Status::True,
                r::ANALYSIS_INCONCLUSIVE,
                message,
                self.generation,
                self.now,
            );
        }
        let (available, a_msg) = self.availability();
        conditions::set(
            &mut self.status.conditions,
            ct::AVAILABLE,
            Status::from_bool(available),
            if available {
                r::MINIMUM_REPLICAS_AVAILABLE
            } else {
                r::MINIMUM_REPLICAS_UNAVAILABLE
            },
            a_msg,
            self.generation,
            self.now,
        );
        let ready = o.phase == Phase::Done;
        conditions::set(
            &mut self.status.conditions,
            ct::READY,
            Status::from_bool(ready),
            if ready {
                r::ROLLOUT_DONE
            } else {
                r::TARGET_NOT_REACHED
            },
            if ready {
                "the target number of pods run the update revision and are Ready".to_owned()
            } else {
                "the rollout has not reached its target".to_owned()
            },
            self.generation,
            self.now,
        );
        if self.status.deleted == Some(true) {
            // First: the rarest and most important cause names the condition's reason (a set
            // without a PDB would otherwise hide it behind NoDisruptionBudget).
            self.degraded.insert(
                0,
                (
                    r::STATEFULSET_DELETED,
                    "the StatefulSet was deleted under the rollout and recreated from the spec"
                        .into(),
                ),
            );
        }
        if self.degraded.is_empty() {
            conditions::set(
                &mut self.status.conditions,
                ct::DEGRADED,
                Status::False,
                r::AS_EXPECTED,
                "nothing slows the rollout down",
                self.generation,
                self.now,
            );
        } else {
            let reason = self.degraded[0].0;
            let msg: Vec<String> = self.degraded.iter().map(|(_, m)| m.clone()).collect();
            conditions::set(
                &mut self.status.conditions,
                ct::DEGRADED,
                Status::True,
                reason,
                msg.join("; "),
                self.generation,
                self.now,
            );
        }

        let pending = self.record_integrations(&o.phase);
        self.status.phase = Some(o.phase);
        self.status.reason = Some(o.reason);
        let requeue = match o.requeue {
            None if pending => Some(REQUEUE_INTEGRATIONS),
            r => r,
        };
        self.status.reconcile_after = requeue.and_then(|d| {
            SignedDuration::try_from(d)
                .ok()
                .and_then(|d| self.now.checked_add(d).ok())
                .map(Time)
        });
        let t = transitions::between(self.obs, &self.prev, &self.status);
        let first_degraded = self.degraded.first().map(|d| d.0);
        let events = transitions::events(&t, &self.prev, &self.status, || {
            blocked_reason(&self.status, first_degraded)
        });
        self.events.extend(events);
        let notify = transitions::notify(self.obs, &t, &o.action, &self.status);
        Plan {
            action: o.action,
            status: self.status,
            events: self.events,
            requeue_after: requeue,
            notify,
            cost: crate::PlanCost {
                pods_visited: self.visits,
                status_pods: self.status_pods,
            },
        }
    }

    /// Records what the integrations reported (`Observed::integrations`): the Slack messages'
    /// ids, the `NotificationsDelivered` condition, the release callback's delivery (its outcome is
    /// recorded in `lastCallbackStageId`/`lastCallbackOutcome` only after a 2xx) and the
    /// `CallbackDelivered` condition. Returns whether a result is still pending.
    fn record_integrations(&mut self, phase: &Phase) -> bool {
        let observed = &self.obs.integrations;
        let mut pending = false;
        if let Some(n) = &observed.notifications {
            if let Some(message) = &n.slack_message {
                self.status.slack_message = Some(message.clone());
            }
            pending |= n.pending;
            let (status, reason, message) = match &n.error {
                Some(e) => (Status::False, r::NOTIFICATION_FAILED, e.clone()),
                None => (
                    Status::True,
                    r::NOTIFICATIONS_DELIVERED,
                    "notifications are delivered".to_owned(),
                ),
            };
            conditions::set(
                &mut self.status.conditions,
                ct::NOTIFICATIONS_DELIVERED,
                status,
                reason,
                message,
                self.generation,
                self.now,
            );
        }
        let Some(bapi) = &self.spec().bapi else {
            return pending;
        };
        if !matches!(phase, Phase::Done | Phase::Failed | Phase::Aborted) {
            return pending;
        }
        let recorded = self.status.last_callback_stage_id.as_deref()
            == Some(bapi.stage_id.as_str())
            && self.status.last_callback_outcome.as_deref() == Some(phase.as_str());
        if recorded {
            return pending;
        }
        let (status, reason, message) = match &observed.callback {
            Some(c) if c.stage_id == bapi.stage_id && &c.outcome == phase => {
                if c.delivered == Some(true) {
                    // Recorded only after a 2xx: the next plan never asks for it again.
                    self.status.last_callback_stage_id = Some(bapi.stage_id.clone());
                    self.status.last_callback_outcome = Some(phase.as_str().to_owned());
                }
                pending |= c.delivered.is_none();
                let status = match c.delivered {
                    Some(true) => Status::True,
                    Some(false) => Status::False,
                    None => Status::Unknown,
                };
                (status, c.reason.clone(), c.message.clone())
            }
            _ => {
                pending = true;
                (
                    Status::Unknown,
                    r::CALLBACK_PENDING.to_owned(),
                    "delivering the release callback".to_owned(),
                )
            }
        };
        conditions::set(
            &mut self.status.conditions,
            ct::CALLBACK_DELIVERED,
            status,
            &reason,
            message,
            self.generation,
            self.now,
        );
        pending
    }

    fn availability(&self) -> (bool, String) {
        let ready = usize::try_from(self.status.ready_replicas.unwrap_or(0)).unwrap_or(0);
        if let [pdb] = self.obs.pdbs.as_slice() {
            let ok = pdb.current_healthy >= pdb.desired_healthy;
            return (
                ok,
                format!(
                    "{} healthy pods, PodDisruptionBudget {} wants {}",
                    pdb.current_healthy, pdb.name, pdb.desired_healthy
                ),
            );
        }
        let replicas = self
            .obs
            .statefulset
            .as_ref()
            .map_or(self.spec().replicas(), |s| s.replicas);
        let replicas = usize::try_from(replicas.max(0)).unwrap_or(0);
        let allowed = match &self.spec().max_unavailable {
            Some(mu) => usize::try_from(
                scaled_value(mu, i32::try_from(replicas).unwrap_or(i32::MAX), true)
                    .unwrap_or(1)
                    .max(1),
            )
            .unwrap_or(1),
            None => 1,
        };
        let ok = ready + allowed >= replicas;
        (ok, format!("{ready} of {replicas} pods Ready"))
    }
}

/// The reason of a `RolloutBlocked` event: the `SpecValid=False` condition's reason, else the
/// first cause of `Degraded`, else the phase.
fn blocked_reason(status: &StatefulsetRolloutStatus, first_degraded: Option<&str>) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == ct::SPEC_VALID && c.status == "False")
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| first_degraded.unwrap_or(Phase::Blocked.as_str()).to_owned())
}

struct RolloutCtx<'a> {
    live: &'a LiveStatefulSet,
    update: String,
    replicas: i32,
    target: i32,
    fast_rollback: bool,
    /// Pods Ready but not healthy in service discovery hold the next eviction.
    hold_for_discovery: bool,
    slots: Slots<'a>,
}

/// What the PDB allows now: its `status.disruptionsAllowed`, but never more than the pods
/// themselves leave when the PDB selects only this set's pods (`status.expectedPods` equals the
/// replicas): Ready, non-terminating pods minus `status.desiredHealthy`, which is how the
/// disruption controller computes it (`pkg/controller/disruption/disruption.go`,
/// `countHealthyPods` and `updatePdbStatus`).
///
/// The status lags: the eviction API decrements `disruptionsAllowed` for each eviction it grants,
/// but a pod deleted any other way (by the StatefulSet controller replacing an old pod the
/// partition just exposed, before the rollout's eviction of it arrived; by a node failure; by a
/// user) is only counted once the disruption controller resyncs. Until then the status allows one
/// pod too many for each such deletion, and the eviction API (which reads only the status) would
/// grant it. The operator sees those pods go and keeps within the budget.
fn pdb_allowance(pdb: &ObservedPdb, c: &RolloutCtx<'_>) -> i32 {
    if pdb.expected_pods != c.replicas {
        // The PDB also counts pods of other workloads: only its own status can say.
        return pdb.disruptions_allowed;
    }
    let healthy = c.slots.healthy();
    let from_pods = i32::try_from(healthy)
        .unwrap_or(i32::MAX)
        .saturating_sub(pdb.desired_healthy);
    pdb.disruptions_allowed.min(from_pods)
}

/// The lowest partition that keeps every pod the rollout has not chosen below it: one above the
/// highest pod that must keep its revision (an old pod not selected now, or a pod that died on its
/// own below the partition outside the target range, which must come back at the current
/// revision). Pods at or above it are updated, on their way, or `selected`.
fn aligned_partition(
    slots: &Slots<'_>,
    selected: &BTreeSet<usize>,
    partition: usize,
    range_start: usize,
) -> usize {
    let kept = slots.not_updated_desc(0, slots.len()).find(|i| {
        !selected.contains(i) && matches!(slots.state(*i), State::Old { .. } | State::InPlace)
    });
    let gone = slots
        .special_in(0, partition.min(range_start))
        .find(|s| {
            !selected.contains(&s.i) && matches!(s.state, State::Missing | State::Terminating)
        })
        .map(|s| s.i);
    kept.max(gone).map_or(0, |i| i + 1)
}

/// Every slot of `lo..hi` is `Updated { available: true }`: no pod of another revision there,
/// and no special slot that is not.
fn all_available(slots: &Slots<'_>, lo: usize, hi: usize) -> bool {
    slots.not_updated_desc(lo, hi).next().is_none()
        && slots
            .special_in(lo, hi)
            .all(|s| s.state == State::Updated { available: true })
}

/// Slots unavailable (all special).
fn unavailable_total(slots: &Slots<'_>) -> usize {
    slots
        .special()
        .iter()
        .filter(|s| s.state.unavailable())
        .count()
}

/// Slots in state `Old`: the pods of the range minus the updated ones and the special ones
/// terminating or out for an in-place update.
fn old_count(slots: &Slots<'_>) -> usize {
    let len = slots.len();
    let other = slots
        .special()
        .iter()
        .filter(|s| matches!(s.state, State::Terminating | State::InPlace))
        .count();
    slots.present() - slots.updated_in(0, len) - other
}

/// Which immutable StatefulSet fields the spec changes relative to the live set
/// (upstream `ValidateStatefulSetUpdate`, pkg/apis/apps/validation/validation.go). Volume claim
/// templates are compared on what users write (name, access modes, storage class, requests,
/// volume mode defaulted to Filesystem), not on server-added defaults.
fn immutable_changes(
    desired: &k8s_openapi::api::apps::v1::StatefulSetSpec,
    live: &LiveStatefulSet,
) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let norm_selector = |s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector| {
        (
            s.match_labels.clone().unwrap_or_default(),
            s.match_expressions.clone().unwrap_or_default(),
        )
    };
    if norm_selector(&desired.selector) != norm_selector(&live.selector) {
        changed.push("selector");
    }
    if desired.service_name.clone().unwrap_or_default() != live.service_name {
        changed.push("serviceName");
    }
    let norm_vct = |v: &[k8s_openapi::api::core::v1::PersistentVolumeClaim]| {
        let mut out: Vec<_> = v
            .iter()
            .map(|c| {
                let spec = c.spec.clone().unwrap_or_default();
                (
                    c.metadata.name.clone().unwrap_or_default(),
                    spec.access_modes.unwrap_or_default(),
                    spec.storage_class_name,
                    spec.resources.and_then(|r| r.requests).unwrap_or_default(),
                    spec.volume_mode.unwrap_or_else(|| "Filesystem".into()),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let desired_vct = norm_vct(
        desired
            .volume_claim_templates
            .as_deref()
            .unwrap_or_default(),
    );
    let live_vct = norm_vct(&live.volume_claim_templates);
    // A storage class the user did not write may have been filled in by the cluster.
    let vct_differs = desired_vct.len() != live_vct.len()
        || desired_vct.iter().zip(&live_vct).any(|(d, l)| {
            d.0 != l.0 || d.1 != l.1 || d.3 != l.3 || d.4 != l.4 || (d.2.is_some() && d.2 != l.2)
        });
    if vct_differs {
        changed.push("volumeClaimTemplates");
    }
    if let Some(policy) = desired.pod_management_policy.as_deref()
        && policy != live.pod_management_policy
    {
        changed.push("podManagementPolicy");
    }
    changed
}

fn names(c: &RolloutCtx<'_>, idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| c.slots.name(i)).collect()
}

/// `a, b, c` — or the first ten and "and N more".
pub(crate) fn name_list(names: &[String]) -> String {
    if names.len() <= NAMES_SHOWN {
        names.join(", ")
    } else {
        format!(
            "{} and {} more",
            names[..NAMES_SHOWN].join(", "),
            names.len() - NAMES_SHOWN
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn count<T>(it: impl Iterator<Item = T>) -> i32 {
    i32::try_from(it.count()).unwrap_or(i32::MAX)
}

fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}
