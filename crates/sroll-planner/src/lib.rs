//! The pure decision core of the sroll operator.
//!
//! ```text
//!  reflector caches ─▶ Observed ─▶ plan() ─▶ Plan { action, status, events, notify, requeue_after }
//!   + integrations'    (observed)  (planner)   (plan)          │
//!     reports                                                  ▼ sroll-operator executes the action
//!                                  settle(observed, plan, executed) ─▶ Settled { status, events,
//!                                   (settle)                            notify, requeue_after }
//!                                   sroll-operator writes the status, records the events,
//!                                   announces (webhooks, Slack, callback), requeues
//! ```
//!
//! Transitions (a release started, a batch completed, paused, resumed, done, failed, aborted) are
//! detected in one place, `transitions`, from the status before and after a plan; the
//! announcements a plan makes ([`Notify`]) are derived from them, so every event fires once per
//! transition.
//!
//! [`plan`] is a function from an [`Observed`] snapshot (the rollout with its previous status, the
//! live StatefulSet, its pods, the PodDisruptionBudgets selecting them, service-discovery health and
//! the current instant) to exactly one [`Action`] plus the new status. It does no I/O, reads no
//! clock and keeps no state: everything that must survive an operator restart lives in the status
//! it returns (`lastEvictionTime`, `lastProgressTime`, `previousRevision`, …), which the next
//! snapshot brings back. This is brupop's pure state machine and Stackable's
//! `validate → build → apply → status` pipeline with the I/O cut out.
//!
//! [`desired_statefulset`] is the pure builder of the StatefulSet the rollout wants.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod clone_set;
mod conditions;
pub mod desired;
pub mod index;
pub mod inplace;
pub mod observed;
pub mod pinning;
pub mod plan;
mod planner;
pub mod settle;
pub mod sidecar_set;
mod transitions;

pub use analysis::ObservedMeasurement;
pub use desired::{
    ANNOTATION_SPEC_HASH, ANNOTATION_TEMPLATE_HASH, desired_statefulset, spec_hash, template_hash,
};
pub use observed::{
    CallbackObserved, DiscoveryHealth, InPlaceObserved, IntegrationsObserved, LiveStatefulSet,
    NotificationsObserved, Observed, ObservedPdb, ObservedPod, Pods,
};
pub use plan::{
    Action, ApplyKind, CallbackDue, EventType, Notify, PartitionMove, Plan, PlanCost, PlannedEvent,
};
pub use planner::{
    REQUEUE_BACKPRESSURE, REQUEUE_INTEGRATIONS, REQUEUE_SOON, REQUEUE_WAITING, plan,
};
pub use settle::{Executed, Settled, settle};

/// Why a pure step could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rollout has no `metadata.uid` or `metadata.name`, so no owner reference can point at it
    /// (a rollout read from the API server always has both).
    #[error("failed to build an owner reference: the rollout has no metadata.uid or metadata.name")]
    MissingRolloutIdentity,
    /// Serializing the spec for hashing failed.
    #[error("failed to serialize the StatefulSet spec for hashing")]
    Serialize(#[source] serde_json::Error),
}

impl Error {
    /// A stable label for metrics and events.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingRolloutIdentity => "missing_rollout_identity",
            Error::Serialize(_) => "serialize",
        }
    }
}

/// PascalCase reasons of the events and conditions the planner writes.
pub mod reasons {
    /// The StatefulSet was created.
    pub const STATEFULSET_CREATED: &str = "StatefulSetCreated";
    /// The StatefulSet's spec was updated.
    pub const STATEFULSET_UPDATED: &str = "StatefulSetUpdated";
    /// An existing StatefulSet was adopted (`spec.adoptExisting`).
    pub const STATEFULSET_ADOPTED: &str = "StatefulSetAdopted";
    /// The StatefulSet was deleted under the rollout (it is recreated).
    pub const STATEFULSET_DELETED: &str = "StatefulSetDeleted";
    /// The StatefulSet is deleted with orphaned pods to change an immutable field.
    pub const STATEFULSET_RECREATING: &str = "StatefulSetRecreating";
    /// The StatefulSet exists but is not owned by the rollout and `adoptExisting` is not set.
    pub const STATEFULSET_NOT_OWNED: &str = "StatefulSetNotOwned";
    /// The spec changes an immutable StatefulSet field.
    pub const IMMUTABLE_FIELD_CHANGED: &str = "ImmutableFieldChanged";
    /// The spec is invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The API server rejected the StatefulSet the spec describes (422 or 400).
    pub const STATEFULSET_REJECTED: &str = "StatefulSetRejected";
    /// The spec is valid.
    pub const SPEC_VALID: &str = "Valid";
    /// The partition was moved.
    pub const PARTITION_MOVED: &str = "PartitionMoved";
    /// A batch of pods was evicted.
    pub const PODS_EVICTED: &str = "PodsEvicted";
    /// A batch of pods is being updated in place.
    pub const PODS_UPDATING_IN_PLACE: &str = "PodsUpdatingInPlace";
    /// `podUpdatePolicy: InPlaceOnly` and the revision change cannot be made in place.
    pub const IN_PLACE_UPDATE_IMPOSSIBLE: &str = "InPlaceUpdateImpossible";
    /// Pods that were not Ready and not at their target revision were replaced.
    pub const BROKEN_PODS_REPLACED: &str = "BrokenPodsReplaced";
    /// `status.currentRevision` of an OnDelete set was advanced.
    pub const CURRENT_REVISION_PATCHED: &str = "CurrentRevisionPatched";
    /// The rollout is moving pods.
    pub const ROLLOUT_IN_PROGRESS: &str = "RolloutInProgress";
    /// A new rollout (a new update revision or identity) started.
    pub const ROLLOUT_STARTED: &str = "RolloutStarted";
    /// A rollback to the previous revision started.
    pub const ROLLBACK_STARTED: &str = "RollbackStarted";
    /// The rollout was paused.
    pub const ROLLOUT_PAUSED: &str = "RolloutPaused";
    /// The rollout was resumed.
    pub const ROLLOUT_RESUMED: &str = "RolloutResumed";
    /// The rollout reached its target.
    pub const ROLLOUT_DONE: &str = "RolloutDone";
    /// The rollout failed (progress deadline or discovery health timeout).
    pub const ROLLOUT_FAILED: &str = "RolloutFailed";
    /// The StatefulSet controller has not caught up with the latest spec yet.
    pub const WAITING_FOR_STATEFULSET: &str = "WaitingForStatefulSetController";
    /// No PodDisruptionBudget selects the pods: one pod at a time.
    pub const NO_DISRUPTION_BUDGET: &str = "NoDisruptionBudget";
    /// More than one PodDisruptionBudget selects the pods: the eviction API refuses them all.
    pub const MULTIPLE_DISRUPTION_BUDGETS: &str = "MultipleDisruptionBudgets";
    /// `podManagementPolicy: OrderedReady` serialises pod re-creation.
    pub const ORDERED_READY: &str = "OrderedReadyPodManagement";
    /// Service discovery could not be reached.
    pub const DISCOVERY_UNREACHABLE: &str = "DiscoveryUnreachable";
    /// An analysis failed or erred: the rollout is aborted.
    pub const ROLLOUT_ABORTED: &str = "RolloutAborted";
    /// An analysis was inconclusive: the rollout waits for the user.
    pub const ANALYSIS_INCONCLUSIVE: &str = "AnalysisInconclusive";
    /// A step (an analysis, a pause) holds the rollout.
    pub const STEP_HOLD: &str = "StepHold";
    /// Nothing slows the rollout down.
    pub const AS_EXPECTED: &str = "AsExpected";
    /// No progress within `progressDeadlineSeconds`.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Pods stayed unhealthy in service discovery past the health timeout.
    pub const DISCOVERY_HEALTH_TIMEOUT: &str = "DiscoveryHealthTimeout";
    /// Pods Ready in Kubernetes are not (yet) healthy in service discovery: the rollout holds.
    pub const DISCOVERY_UNHEALTHY: &str = "DiscoveryUnhealthy";
    /// `spec.pauseRequested` is true.
    pub const PAUSE_REQUESTED: &str = "PauseRequested";
    /// `spec.pauseRequested` is false or unset.
    pub const NOT_PAUSED: &str = "NotPaused";
    /// Enough pods are Ready.
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Too few pods are Ready.
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    /// The target is not reached yet.
    pub const TARGET_NOT_REACHED: &str = "TargetNotReached";
    /// Every notification (Slack, webhooks) was delivered.
    pub const NOTIFICATIONS_DELIVERED: &str = "NotificationsDelivered";
    /// A Slack call or a webhook failed (the message has the error).
    pub const NOTIFICATION_FAILED: &str = "NotificationFailed";
    /// The release callback is being delivered (the text of
    /// `sroll_integrations::reasons::CALLBACK_PENDING`, which reports the delivery itself).
    pub const CALLBACK_PENDING: &str = "CallbackPending";
}

#[cfg(test)]
mod tests {
    use sroll_api::Phase;

    use super::reasons;

    /// A reason named after a phase is the phase's own wire text (`Phase` in sroll-api is where
    /// it is spelt); `Blocked` has no constant here, the planner writes `Phase::Blocked`'s text.
    #[test]
    fn reasons_named_after_a_phase_spell_it_as_the_phase_does() {
        for (reason, phase) in [
            (reasons::ROLLOUT_IN_PROGRESS, Phase::InProgress),
            (reasons::ROLLOUT_PAUSED, Phase::Paused),
            (reasons::ROLLOUT_DONE, Phase::Done),
            (reasons::ROLLOUT_FAILED, Phase::Failed),
        ] {
            assert_eq!(reason, phase.as_str());
        }
    }
}
