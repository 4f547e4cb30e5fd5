//! Predicates and accessors on a rollout's status, for waits and assertions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use sroll_api::{Phase, StatefulsetRollout};

/// The rollout's condition `type_`, if set.
pub fn condition<'a>(r: &'a StatefulsetRollout, type_: &str) -> Option<&'a Condition> {
    r.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

/// `status.updateRevision` (empty when unset).
pub fn update_revision(r: &StatefulsetRollout) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.update_revision.clone())
        .unwrap_or_default()
}

/// Whether the status describes the current generation (`observedGeneration`).
pub fn current(r: &StatefulsetRollout) -> bool {
    r.status
        .as_ref()
        .is_some_and(|s| s.observed_generation == r.metadata.generation)
}

/// `Done` at the current generation.
pub fn done_at_generation(r: &StatefulsetRollout) -> bool {
    current(r)
        && r.status
            .as_ref()
            .is_some_and(|s| s.phase == Some(Phase::Done))
}
