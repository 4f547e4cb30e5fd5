//! Lifecycle transitions of a rollout: the one place that compares the status before a plan with
//! the status after it and says what happened — a release started (or a rollback to the previous
//! revision did), a batch completed, the rollout paused, resumed, completed, failed or aborted, an
//! aborted release's pods are back. The Kubernetes Events of those transitions, the webhook
//! triggers, whether the Slack message changes and the release callback to deliver
//! ([`crate::Notify`]) are all derived here, from statuses alone: a restarted operator neither
//! repeats nor skips one (the previous status is what the API server holds, or the status this
//! process planned and deferred).

use sroll_api::{
    NotificationLevel, Phase, StatefulsetRolloutStatus, WebhookTrigger, intstr::scaled_value,
};

use crate::{Action, CallbackDue, EventType, Notify, Observed, PlannedEvent, reasons as r};

/// The update revision `update` is the revision the pods ran before the release recorded in
/// `prev` (`status.previousRevision`), and `prev` recorded another one: a rollback to the previous
/// revision starts. The one rollback test of the planner (a rollback under way is
/// [`rolling_back`]).
pub(crate) fn rollback_starts(prev: &StatefulsetRolloutStatus, update: &str) -> bool {
    prev.update_revision.as_deref() != Some(update)
        && prev.previous_revision.as_deref() == Some(update)
}

/// A rollback to the previous revision is under way: `status` (as this plan writes it, after
/// [`rollback_starts`] kept `previousRevision`) rolls to the revision the pods ran before. Such a
/// rollback is not paced.
pub(crate) fn rolling_back(
    prev: &StatefulsetRolloutStatus,
    status: &StatefulsetRolloutStatus,
    update: &str,
) -> bool {
    status.previous_revision.as_deref() == Some(update) && prev.update_revision.is_some()
}

/// What changed between two statuses of one rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Transitions {
    /// Webhook triggers, in the order they happened.
    pub triggers: Vec<WebhookTrigger>,
    /// An aborted release's updated pods are all back at the previous revision (Slack shows it;
    /// no webhook trigger names it).
    pub rolled_back: bool,
}

/// The release a status describes: its update revision and rollout identity.
fn release(s: &StatefulsetRolloutStatus) -> (Option<&str>, Option<&str>) {
    (s.update_revision.as_deref(), s.rollout_identity.as_deref())
}

/// Pods of `s` Ready at revision `update`.
fn ready_at(s: &StatefulsetRolloutStatus, update: &str) -> usize {
    s.pods
        .iter()
        .filter(|p| p.ready && &*p.revision == update)
        .count()
}

/// How many pods one batch moves: `spec.maxUnavailable`, the PodDisruptionBudget's own budget
/// (`expectedPods − desiredHealthy`), the smaller of both, or one pod without either (the budget
/// rules of the planner's `budget`).
fn batch_size(obs: &Observed) -> usize {
    let spec = &obs.rollout.spec;
    let replicas = obs
        .statefulset
        .as_ref()
        .map_or(spec.replicas(), |s| s.replicas)
        .max(0);
    let own = spec.max_unavailable.as_ref().map(|mu| {
        usize::try_from(scaled_value(mu, replicas, true).unwrap_or(1).max(1)).unwrap_or(1)
    });
    let pdb = match obs.pdbs.as_slice() {
        [pdb] => {
            // `expectedPods` 0: not counted yet; the set's replicas are what it will count.
            let expected = if pdb.expected_pods > 0 {
                pdb.expected_pods
            } else {
                replicas
            };
            Some(usize::try_from((expected - pdb.desired_healthy).max(1)).unwrap_or(1))
        }
        _ => None,
    };
    match (own, pdb) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 1,
    }
}

/// Batches completed when `ready` pods of a `target` are Ready at the update revision, `batch` at a
/// time: a batch completes each time another `batch` pods are Ready, and the last (smaller) one
/// when the target is reached.
fn batches_done(ready: usize, target: usize, batch: usize) -> usize {
    let batch = batch.max(1);
    if target > 0 && ready >= target {
        target.div_ceil(batch)
    } else {
        ready / batch
    }
}

/// The transitions from `prev` to `next` (the planned, or settled, status).
pub(crate) fn between(
    obs: &Observed,
    prev: &StatefulsetRolloutStatus,
    next: &StatefulsetRolloutStatus,
) -> Transitions {
    let mut t = Transitions::default();
    let Some(phase) = next.phase.as_ref() else {
        return t;
    };
    let before = prev.phase.as_ref();
    let new_release = next.update_revision.is_some() && release(prev) != release(next);
    let active = matches!(
        phase,
        Phase::InProgress | Phase::Done | Phase::Failed | Phase::Aborted
    );
    // A release starts when it first moves (or ends at once); a rollout back from a terminal
    // phase (a spec change after it finished) starts again. `RolloutPending` is never a wait
    // state within a release, so leaving it is a start too.
    let idle = matches!(
        before,
        None | Some(Phase::Pending | Phase::Done | Phase::Failed | Phase::Aborted)
    );
    let started = active && (new_release || (idle && before != Some(phase)));
    if started {
        t.triggers.push(WebhookTrigger::Started);
        if let Some(update) = next.update_revision.as_deref()
            && rollback_starts(prev, update)
        {
            t.triggers.push(WebhookTrigger::Rollback);
        }
    }
    if before == Some(&Phase::Paused) && phase != &Phase::Paused {
        t.triggers.push(WebhookTrigger::Resumed);
    }
    if !started
        && matches!(phase, Phase::InProgress | Phase::Paused | Phase::Done)
        && let Some(update) = next.update_revision.as_deref()
    {
        let target = usize::try_from(next.target_updated_replicas.unwrap_or(0)).unwrap_or(0);
        let batch = batch_size(obs);
        let done = batches_done(ready_at(next, update), target, batch);
        let was = batches_done(ready_at(prev, update), target, batch);
        for _ in was..done {
            t.triggers.push(WebhookTrigger::StepCompleted);
        }
    }
    if phase == &Phase::Paused && before != Some(&Phase::Paused) {
        t.triggers.push(WebhookTrigger::Paused);
    }
    if before != Some(phase) {
        match phase {
            Phase::Done => t.triggers.push(WebhookTrigger::Completed),
            Phase::Failed => t.triggers.push(WebhookTrigger::Failed),
            Phase::Aborted => t.triggers.push(WebhookTrigger::Aborted),
            _ => {}
        }
    }
    t.rolled_back = phase == &Phase::Aborted
        && before == Some(&Phase::Aborted)
        && !new_release
        && all_back(obs, next)
        && !all_back(obs, prev);
    t
}

/// Every pod of the set is Ready at another revision than `s`'s update revision: an aborted
/// release's rollback is over (a pod still terminating, or missing, is not back yet).
fn all_back(obs: &Observed, s: &StatefulsetRolloutStatus) -> bool {
    let replicas = obs
        .statefulset
        .as_ref()
        .map_or(obs.rollout.spec.replicas(), |l| l.replicas);
    let Some(update) = s.update_revision.as_deref() else {
        return false;
    };
    i32::try_from(s.pods.len()).is_ok_and(|n| n >= replicas)
        && s.pods.iter().all(|p| p.ready && *p.revision != *update)
}

/// The Kubernetes Events of the phase transitions of `t` (a release's start is recorded by the
/// planner when it first sees the new revision, with the revisions in its note).
pub(crate) fn events(
    t: &Transitions,
    prev: &StatefulsetRolloutStatus,
    next: &StatefulsetRolloutStatus,
    blocked_reason: impl FnOnce() -> String,
) -> Vec<PlannedEvent> {
    let mut out = Vec::new();
    let reason = next.reason.clone().unwrap_or_default();
    let mut push = |type_, r: &str, note: String, action: &str| {
        out.push(PlannedEvent {
            type_,
            reason: r.into(),
            note,
            action: action.into(),
        });
    };
    for trigger in &t.triggers {
        match trigger {
            WebhookTrigger::Paused => {
                push(
                    EventType::Normal,
                    r::ROLLOUT_PAUSED,
                    reason.clone(),
                    "Pause",
                );
            }
            WebhookTrigger::Resumed => push(
                EventType::Normal,
                r::ROLLOUT_RESUMED,
                "the rollout was resumed".into(),
                "Resume",
            ),
            WebhookTrigger::Completed => {
                push(
                    EventType::Normal,
                    r::ROLLOUT_DONE,
                    reason.clone(),
                    "Reconcile",
                );
            }
            WebhookTrigger::Aborted => push(
                EventType::Warning,
                r::ROLLOUT_ABORTED,
                reason.clone(),
                "Reconcile",
            ),
            WebhookTrigger::Failed => push(
                EventType::Warning,
                r::ROLLOUT_FAILED,
                reason.clone(),
                "Reconcile",
            ),
            _ => {}
        }
    }
    if next.phase == Some(Phase::Blocked)
        && (prev.phase != Some(Phase::Blocked) || prev.reason != next.reason)
    {
        push(EventType::Warning, &blocked_reason(), reason, "Reconcile");
    }
    out
}

/// What to announce for `t`: the webhook triggers; whether the Slack message changes (at level
/// `info` on a lifecycle transition only — start, pause, resume, rollback, completion, failure,
/// abort and an aborted release rolled back; at `debug` also on every batch completed and every
/// plan that moves pods); the release callback while the outcome is not recorded.
pub(crate) fn notify(
    obs: &Observed,
    t: &Transitions,
    action: &Action,
    next: &StatefulsetRolloutStatus,
) -> Notify {
    let spec = &obs.rollout.spec;
    let lifecycle = t
        .triggers
        .iter()
        .any(|e| !matches!(e, WebhookTrigger::StepCompleted))
        || t.rolled_back;
    let moving = matches!(
        action,
        Action::Evict { .. } | Action::DeletePods { .. } | Action::InPlace { .. }
    );
    let slack = spec.channel.is_some()
        && match spec.notification_level() {
            NotificationLevel::Debug => lifecycle || moving || !t.triggers.is_empty(),
            _ => lifecycle,
        };
    let callback = match (&spec.bapi, next.phase.as_ref()) {
        (Some(bapi), Some(phase @ (Phase::Done | Phase::Failed | Phase::Aborted)))
            if !(next.last_callback_stage_id.as_deref() == Some(bapi.stage_id.as_str())
                && next.last_callback_outcome.as_deref() == Some(phase.as_str())) =>
        {
            Some(CallbackDue {
                stage_id: bapi.stage_id.clone(),
                outcome: phase.clone(),
            })
        }
        _ => None,
    };
    Notify {
        triggers: t.triggers.clone(),
        slack,
        callback,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use sroll_api::{PodVersion, StatefulsetRollout};

    use super::*;

    fn obs() -> Observed {
        let rollout: StatefulsetRollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"maxUnavailable": 2, "channel": "#deploys", "sts": {"spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
            }}}
        }))
        .unwrap_or_else(|e| panic!("a valid rollout: {e}"));
        Observed::new(rollout, Timestamp::UNIX_EPOCH)
    }

    /// A status of phase `phase` rolling to `v2` (from `v1`) with `ready` pods Ready at `v2`.
    fn at(phase: Phase, ready: usize) -> StatefulsetRolloutStatus {
        StatefulsetRolloutStatus {
            phase: Some(phase),
            update_revision: Some("v2".into()),
            current_revision: Some("v1".into()),
            previous_revision: Some("v1".into()),
            target_updated_replicas: Some(4),
            updated_replicas: i32::try_from(ready).ok(),
            pods: (0..4)
                .map(|i| PodVersion {
                    name: format!("web-{i}").into(),
                    revision: if 4 - i <= ready { "v2" } else { "v1" }.into(),
                    ready: true,
                })
                .collect(),
            ..StatefulsetRolloutStatus::default()
        }
    }

    fn triggers(
        prev: &StatefulsetRolloutStatus,
        next: &StatefulsetRolloutStatus,
    ) -> Vec<WebhookTrigger> {
        between(&obs(), prev, next).triggers
    }

    #[test]
    fn a_release_starts_once_and_its_waits_are_no_new_start() {
        use WebhookTrigger as T;
        let mut done_v1 = at(Phase::Done, 0);
        done_v1.update_revision = Some("v1".into());
        assert_eq!(triggers(&done_v1, &at(Phase::Pending, 0)), []);
        assert_eq!(
            triggers(&at(Phase::Pending, 0), &at(Phase::InProgress, 0)),
            [T::Started]
        );
        assert_eq!(triggers(&done_v1, &at(Phase::InProgress, 0)), [T::Started]);
        // Within the release: nothing until a batch (2 pods, maxUnavailable) is Ready.
        assert_eq!(
            triggers(&at(Phase::InProgress, 0), &at(Phase::InProgress, 1)),
            []
        );
        assert_eq!(
            triggers(&at(Phase::InProgress, 1), &at(Phase::InProgress, 2)),
            [T::StepCompleted]
        );
        assert_eq!(
            triggers(&at(Phase::InProgress, 2), &at(Phase::InProgress, 2)),
            []
        );
        assert_eq!(
            triggers(&at(Phase::InProgress, 3), &at(Phase::Done, 4)),
            [T::StepCompleted, T::Completed]
        );
        assert_eq!(triggers(&at(Phase::Done, 4), &at(Phase::Done, 4)), []);
        assert_eq!(
            triggers(&at(Phase::InProgress, 2), &at(Phase::Paused, 2)),
            [T::Paused]
        );
        assert_eq!(triggers(&at(Phase::Paused, 2), &at(Phase::Paused, 2)), []);
        assert_eq!(
            triggers(&at(Phase::Paused, 2), &at(Phase::InProgress, 2)),
            [T::Resumed]
        );
        assert_eq!(
            triggers(&at(Phase::InProgress, 2), &at(Phase::Failed, 2)),
            [T::Failed]
        );
    }

    #[test]
    fn a_rollback_to_the_previous_revision_is_announced_with_its_start() {
        let mut prev = at(Phase::InProgress, 2);
        prev.update_revision = Some("v3".into());
        prev.previous_revision = Some("v2".into());
        assert_eq!(
            triggers(&prev, &at(Phase::InProgress, 2)),
            [WebhookTrigger::Started, WebhookTrigger::Rollback]
        );
        assert!(rollback_starts(&prev, "v2"));
        assert!(!rollback_starts(&prev, "v4"));
    }

    #[test]
    fn an_abort_is_announced_once_and_its_rollback_done_once_even_across_a_restart() {
        let o = obs();
        let running = at(Phase::InProgress, 1);
        let aborted = at(Phase::Aborted, 1);
        let back = at(Phase::Aborted, 0);
        let abort = between(&o, &running, &aborted);
        assert_eq!(abort.triggers, [WebhookTrigger::Aborted]);
        assert!(notify(&o, &abort, &Action::Wait, &aborted).slack);
        // The rollback's batches: nothing new.
        let during = between(&o, &aborted, &aborted);
        assert!(!notify(&o, &during, &Action::Wait, &aborted).slack);
        // Every pod back: the message says so, once.
        let done = between(&o, &aborted, &back);
        assert!(done.triggers.is_empty() && done.rolled_back);
        assert!(notify(&o, &done, &Action::Wait, &back).slack);
        // A restarted operator plans from the written status: nothing to announce.
        let again = between(&o, &back, &back);
        assert_eq!(again, Transitions::default());
        assert!(!notify(&o, &again, &Action::Wait, &back).slack);
    }

    #[test]
    fn a_batch_completes_every_batch_size_pods_and_the_last_one_at_the_target() {
        assert_eq!(batches_done(0, 120, 24), 0);
        assert_eq!(batches_done(23, 120, 24), 0);
        assert_eq!(batches_done(24, 120, 24), 1);
        assert_eq!(batches_done(119, 120, 24), 4);
        assert_eq!(batches_done(120, 120, 24), 5);
        assert_eq!(batches_done(10, 10, 4), 3, "4 + 4 + the last 2");
        assert_eq!(batches_done(5, 0, 0), 5, "a zero batch counts one pod");
    }
}
