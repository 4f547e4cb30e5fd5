//! The planner's output: one action, the status to write, the events to record, when to look again.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use sroll_api::StatefulsetRolloutStatus;

/// The decision of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The one thing to do to the cluster.
    pub action: Action,
    /// The whole status to write (status subresource) once the action has been executed. It assumes
    /// the action succeeds; after a partial eviction call [`Plan::record_evictions`].
    pub status: StatefulsetRolloutStatus,
    /// Events to record on the rollout after the action succeeded (one per decision, not per pod).
    pub events: Vec<PlannedEvent>,
    /// When to reconcile again if nothing else triggers it: `None` in terminal and blocked phases
    /// (a change of the rollout, set, pods or PDB triggers the next reconcile); the exact remaining
    /// time for time-based waits (pacing, `minReadySeconds`, progress deadline); a short interval
    /// while change is expected.
    pub requeue_after: Option<Duration>,
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

impl Plan {
    /// Replaces the plan's outcome after the API server rejected the StatefulSet it applies (422
    /// Invalid or 400): the same spec will be rejected again, so the rollout is `Blocked` with
    /// `SpecValid=False` (reason `StatefulSetRejected`, the server's message) until its spec
    /// changes, and nothing else is planned. `generation` is the rollout's `metadata.generation`.
    pub fn statefulset_rejected(
        &mut self,
        message: &str,
        generation: Option<i64>,
        now: k8s_openapi::jiff::Timestamp,
    ) {
        // Condition messages are capped at 32 KiB by the API; a rejection can quote the input.
        let message: String = message.chars().take(4096).collect();
        crate::conditions::set(
            &mut self.status.conditions,
            sroll_api::condition_types::SPEC_VALID,
            crate::conditions::Status::False,
            crate::reasons::STATEFULSET_REJECTED,
            message.clone(),
            generation,
            now,
        );
        self.status.phase = Some(sroll_api::Phase::Blocked);
        self.status.reason = Some(message);
        self.events.clear();
        self.requeue_after = None;
        self.action = Action::Wait;
    }

    /// Adjusts the plan after an [`Action::Evict`] that stopped early: only the first `evicted`
    /// pods were evicted (the next was refused with 429, or failed); `observed` is the snapshot the
    /// plan was made from. With `evicted == 0` the pacing clock (`lastEvictionTime`) is left as it
    /// was and no `PodsEvicted` event is recorded. A no-op when every pod was evicted.
    pub fn record_evictions(&mut self, evicted: usize, observed: &crate::Observed) {
        let Action::Evict { pods, .. } = &self.action else {
            return;
        };
        if evicted >= pods.len() {
            return;
        }
        let done: Vec<String> = pods.iter().take(evicted).cloned().collect();
        let refused = pods.len() - evicted;
        if evicted == 0 {
            self.status.last_eviction_time = observed
                .rollout
                .status
                .as_ref()
                .and_then(|s| s.last_eviction_time.clone());
        }
        self.events
            .retain(|e| e.reason != crate::reasons::PODS_EVICTED);
        if evicted > 0 {
            self.events.push(PlannedEvent {
                type_: EventType::Normal,
                reason: crate::reasons::PODS_EVICTED.into(),
                note: format!(
                    "evicted {} of {} pods ({}); the disruption budget refused the rest",
                    evicted,
                    pods.len(),
                    crate::planner::name_list(&done)
                ),
                action: "Evict".into(),
            });
        }
        self.status.reason = Some(format!(
            "evicted {} pod{} ({}); {} not evicted (refused by the disruption budget, or recreated since observed), retrying",
            evicted,
            if evicted == 1 { "" } else { "s" },
            crate::planner::name_list(&done),
            refused
        ));
        self.requeue_after = Some(crate::planner::REQUEUE_BACKPRESSURE);
    }
}
