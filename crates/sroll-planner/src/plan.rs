//! The planner's output: one action, the status to write, the events to record, when to look again.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use sroll_api::{StatefulsetRolloutStatus, WebhookTrigger};

/// The decision of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The one thing to do to the cluster.
    pub action: Action,
    /// The whole status to write (status subresource) once the action has been executed. It assumes
    /// the action succeeds; [`crate::settle`] turns it into the status of what really happened.
    pub status: StatefulsetRolloutStatus,
    /// Events to record on the rollout after the action succeeded (one per decision, not per pod).
    pub events: Vec<PlannedEvent>,
    /// When to reconcile again if nothing else triggers it: `None` in terminal and blocked phases
    /// (a change of the rollout, set, pods or PDB triggers the next reconcile); the exact remaining
    /// time for time-based waits (pacing, `minReadySeconds`, progress deadline); a short interval
    /// while change is expected.
    pub requeue_after: Option<Duration>,
    /// What to announce (webhooks, Slack, the release callback), derived from the status before
    /// and after this plan (`transitions`): every event once per transition.
    pub notify: Notify,
    /// What deciding cost, in pods read (the operator exports it as
    /// `sroll_planner_pod_visits_total` and `sroll_planner_status_pods_total`).
    pub cost: PlanCost,
}

/// The planner's work for one plan, counted as it runs (no clock: the same observation always
/// costs the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanCost {
    /// Pods (slots of the set's ordinal range) the decision looked at: the special slots (missing,
    /// unavailable, in flight, in-place steps pending, not yet available), the next batch, the
    /// highest old pod, and the pods outside the set's range. O(batch + in flight), not
    /// O(replicas), except under a service-discovery gate (the update revision's pods are checked
    /// against the healthy set) and while an analysis abort rolls back (every slot is read).
    pub pods_visited: u64,
    /// Entries of `status.pods` written: the status lists every pod (a reference field), so this
    /// part of a plan is O(replicas) by design; it is counted apart.
    pub status_pods: u64,
}

/// What a plan (or its settled outcome) announces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// Webhook triggers, in the order they happened (`spec.notifications.webhooks` receive those
    /// they subscribe to).
    pub triggers: Vec<WebhookTrigger>,
    /// Update the Slack messages (`spec.channel`) with the rollout as it is now: at level `info`
    /// on lifecycle transitions only, at `debug` also on every batch.
    pub slack: bool,
    /// The release callback to deliver (`spec.bapi`), while the outcome is not recorded in
    /// `status.lastCallbackStageId`/`lastCallbackOutcome`. Delivering the same one again is a
    /// no-op for the sender (it is identified by rollout, stage id and outcome).
    pub callback: Option<CallbackDue>,
}

/// A release callback due: the stage and the outcome (`RolloutDone`, `RolloutFailed` or
/// `RolloutAborted`) to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackDue {
    /// `spec.bapi.stageId`.
    pub stage_id: String,
    /// The phase reported as the outcome.
    pub outcome: sroll_api::Phase,
}

/// What the operator does to the cluster in this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Nothing to change now; write the status and wait.
    Wait,
    /// Server-side apply `statefulset` (create if missing, update otherwise) under
    /// [`sroll_api::FIELD_MANAGER`] with `force: true`.
    Apply {
        /// The complete desired object (from [`crate::desired_statefulset`]).
        statefulset: Box<StatefulSet>,
        /// Why, for logs and metrics.
        kind: ApplyKind,
    },
    /// An immutable field changed and `spec.recreateOnImmutableChange` is set: DELETE the
    /// StatefulSet with `propagationPolicy: Orphan` and a `preconditions.uid` of `uid`. Its pods keep
    /// running; a later reconcile sees the set missing and creates it anew, which adopts them.
    RecreateOrphan {
        /// The set's name.
        name: String,
        /// The set's uid (delete precondition).
        uid: String,
    },
    /// Only move the partition (`Partitioned`): apply `partition.statefulset`.
    SetPartition(PartitionMove),
    /// Evict `pods` through the `pods/eviction` subresource, in the listed order (highest ordinal
    /// first), stopping at the first refusal (429: back-pressure, not failure) so the set of moved
    /// pods stays contiguous from the top. When `partition` is set, apply it first: the evicted pods
    /// must come back at the update revision.
    Evict {
        /// Partition to apply before evicting (`Partitioned` only, when it changes).
        partition: Option<PartitionMove>,
        /// Pod names, in eviction order.
        pods: Vec<String>,
    },
    /// DELETE `pods` directly (not through eviction): they are not Ready and not at their target
    /// revision, so they are already unavailable and replacing them spends no budget. When
    /// `partition` is set, apply it first.
    DeletePods {
        /// Partition to apply before deleting (`Partitioned` only, when it changes).
        partition: Option<PartitionMove>,
        /// Pod names, highest ordinal first.
        pods: Vec<String>,
    },
    /// Writes of in-place updates ([`crate::inplace`]), in order, each re-checked by the executor on
    /// a fresh copy of its pod ([`crate::inplace::Op::apply`]); a pod's later writes are skipped
    /// when one of its writes fails. When `partition` is set, apply it first: it only moves past
    /// pods already at the update revision (a pod keeps its old revision label until its images
    /// are patched, and the StatefulSet controller deletes a pod at or above the partition whose
    /// revision is not the update revision).
    InPlace {
        /// Partition to apply before the writes (`Partitioned` only, when it changes).
        partition: Option<PartitionMove>,
        /// The writes, highest ordinal first.
        writes: Vec<crate::inplace::PodWrite>,
    },
    /// `OnDelete`: every pod runs the update revision but the StatefulSet controller never advances
    /// `status.currentRevision` under OnDelete (≤ v1.36, kubernetes#73492): set it, through the
    /// status subresource, to `revision` (a merge patch `{"status":{"currentRevision":…}}`), as
    /// grafana's rollout-operator does, so "rollout not finished" alerts stop firing.
    PatchCurrentRevision {
        /// The set's name.
        statefulset: String,
        /// The revision to record (the set's `status.updateRevision`).
        revision: String,
    },
}

/// Why a StatefulSet is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyKind {
    /// The set does not exist.
    Create,
    /// The set was deleted under the rollout and is created again.
    Recreate,
    /// The set exists, is owned, and its spec differs.
    Update,
    /// The set exists but is not owned; `spec.adoptExisting` asks to take it over.
    Adopt,
}

/// A new partition and the complete StatefulSet carrying it, to server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionMove {
    /// The new `spec.updateStrategy.rollingUpdate.partition`.
    pub partition: i32,
    /// [`crate::desired_statefulset`] with that partition (apply it whole: a partial apply under
    /// the same field manager would drop the fields it leaves out).
    pub statefulset: Box<StatefulSet>,
}

/// `Normal` or `Warning`, as in `events.k8s.io/v1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Expected progress.
    Normal,
    /// Something needs attention.
    Warning,
}

/// An event to record on the rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// `Normal` or `Warning`.
    pub type_: EventType,
    /// PascalCase reason (see [`crate::reasons`]).
    pub reason: String,
    /// Human-readable note.
    pub note: String,
    /// The action taken, PascalCase (`Apply`, `Evict`, `Delete`, `Reconcile`, …).
    pub action: String,
}
