//! Revision pinning: which revision the rollout assigns to a pod's ordinal, so the admission webhook
//! can create every pod of an opted-in set (`spec.revisionPinning: true`) at that revision and no
//! other (`docs/webhook.md`).
//!
//! The rule, from what the rollout records (never from what the pod happens to be created at):
//!
//! 1. **Moved by the rollout → the update revision.** `Partitioned`: the ordinal is at or above the
//!    StatefulSet's partition (the partition is written before any pod above it is evicted).
//!    `OnDelete`: the ordinal is at or above the lowest ordinal the rollout chose to move to the
//!    update revision, which the operator records on the StatefulSet
//!    ([`ANNOTATION_PINNED_UPDATE`], `<updateRevision>/<ordinal>`) before it evicts or deletes
//!    those pods; a record naming another revision than the set's update revision is stale and
//!    ignored. (`OnDelete` moves pods highest ordinal first, so the moved pods are the ordinals at
//!    or above the lowest one moved.)
//! 2. **Otherwise → the pod's own last recorded revision** (`status.pods` of the rollout, which
//!    keeps the entry of a pod that is missing while pinning is on): a pod that dies comes back as
//!    it was.
//! 3. **Otherwise → the set's current revision** (a pod the rollout never recorded: a scale-up, a
//!    set the rollout has not reported yet), as the StatefulSet controller does below a partition;
//!    left as created when the set reports no current revision.

use sroll_api::RolloutStrategy;

/// Annotation on an `OnDelete` StatefulSet with revision pinning: `<updateRevision>/<ordinal>`,
/// the lowest ordinal the rollout moved to that revision.
pub const ANNOTATION_PINNED_UPDATE: &str = "sroll.io/pinned-update";

/// The label sroll puts on the pod template of a set with revision pinning on; the pinning
/// webhook's `objectSelector` selects it, so only those pods are sent (and refused when the
/// webhook is down).
pub const PINNING_LABEL: &str = "sroll.io/revision-pinning";

/// The record `<revision>/<ordinal>`.
pub fn pinned_update_value(revision: &str, ordinal: i32) -> String {
    format!("{revision}/{ordinal}")
}

/// The ordinal of an annotation value when it names `update_revision`.
pub fn pinned_update_from(value: Option<&str>, update_revision: Option<&str>) -> Option<i32> {
    let (revision, ordinal) = value?.rsplit_once('/')?;
    (Some(revision) == update_revision)
        .then(|| ordinal.parse().ok())
        .flatten()
}

/// What the webhook knows about one pod being created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinningInput<'a> {
    /// The rollout's strategy.
    pub strategy: RolloutStrategy,
    /// The pod's ordinal.
    pub ordinal: i32,
    /// The StatefulSet's `status.updateRevision`.
    pub update_revision: Option<&'a str>,
    /// `Partitioned`: the set's `rollingUpdate.partition`.
    pub partition: Option<i32>,
    /// `OnDelete`: the lowest ordinal moved to the update revision ([`pinned_update_from`]).
    pub moved_from: Option<i32>,
    /// The revision the rollout last recorded for this pod (`status.pods`).
    pub recorded: Option<&'a str>,
    /// The StatefulSet's `status.currentRevision`.
    pub current_revision: Option<&'a str>,
}

/// The revision the rollout assigns to the pod, or `None` to leave it as created.
pub fn assigned_revision(input: &PinningInput<'_>) -> Option<String> {
    let moved = match input.strategy {
        RolloutStrategy::OnDelete => input.moved_from.is_some_and(|m| input.ordinal >= m),
        _ => input.partition.is_some_and(|p| input.ordinal >= p),
    };
    if moved {
        return input.update_revision.map(str::to_owned);
    }
    input.recorded.filter(|r| !r.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(strategy: RolloutStrategy, ordinal: i32) -> PinningInput<'static> {
        PinningInput {
            strategy,
            ordinal,
            update_revision: Some("web-3"),
            partition: None,
            moved_from: None,
            recorded: None,
            current_revision: None,
        }
    }

    #[test]
    fn the_assigned_revision_follows_what_the_rollout_recorded() {
        use RolloutStrategy::{OnDelete, Partitioned};
        let cases: Vec<(&str, PinningInput<'static>, Option<&str>)> = vec![
            (
                "partitioned, at the partition: moved",
                PinningInput {
                    partition: Some(4),
                    recorded: Some("web-1"),
                    ..input(Partitioned, 4)
                },
                Some("web-3"),
            ),
            (
                "partitioned, below the partition: its own revision (the middle one of three)",
                PinningInput {
                    partition: Some(4),
                    recorded: Some("web-2"),
                    ..input(Partitioned, 3)
                },
                Some("web-2"),
            ),
            (
                "partitioned, below the partition, never recorded: left as created",
                PinningInput {
                    partition: Some(4),
                    ..input(Partitioned, 3)
                },
                None,
            ),
            (
                "on-delete, not moved: its own revision although the set would give the update one",
                PinningInput {
                    moved_from: Some(6),
                    recorded: Some("web-1"),
                    ..input(OnDelete, 5)
                },
                Some("web-1"),
            ),
            (
                "on-delete, moved: the update revision although the status still says the old one",
                PinningInput {
                    moved_from: Some(6),
                    recorded: Some("web-1"),
                    ..input(OnDelete, 6)
                },
                Some("web-3"),
            ),
            (
                "on-delete, nothing moved yet: its own revision",
                PinningInput {
                    recorded: Some("web-1"),
                    ..input(OnDelete, 7)
                },
                Some("web-1"),
            ),
            (
                "on-delete, updated in an earlier batch and recorded so",
                PinningInput {
                    moved_from: Some(6),
                    recorded: Some("web-3"),
                    ..input(OnDelete, 2)
                },
                Some("web-3"),
            ),
            (
                "on-delete, a scale-up pod: left as created",
                PinningInput {
                    moved_from: Some(6),
                    ..input(OnDelete, 9)
                },
                Some("web-3"),
            ),
            (
                "on-delete, a scale-up pod below the record: left as created",
                PinningInput {
                    ..input(OnDelete, 1)
                },
                None,
            ),
        ];
        for (case, input, want) in cases {
            assert_eq!(assigned_revision(&input).as_deref(), want, "{case}");
        }
    }

    #[test]
    fn a_record_of_another_revision_is_stale() {
        assert_eq!(pinned_update_from(Some("web-3/5"), Some("web-3")), Some(5));
        assert_eq!(pinned_update_from(Some("web-2/5"), Some("web-3")), None);
        assert_eq!(pinned_update_from(Some("garbage"), Some("web-3")), None);
        assert_eq!(pinned_update_from(None, Some("web-3")), None);
        assert_eq!(
            pinned_update_from(Some(&pinned_update_value("a/b-1", 0)), Some("a/b-1")),
            Some(0)
        );
    }
}
