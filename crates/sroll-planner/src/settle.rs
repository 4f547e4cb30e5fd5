//! From a plan and what executing its action achieved to the status to write: the one pure step
//! after [`crate::plan`]. The operator executes the plan's action, reports the outcome in an
//! [`Executed`], and writes (and announces) what [`settle`] returns; nothing else edits a status.

use std::time::Duration;

use sroll_api::{Phase, StatefulsetRolloutStatus, condition_types as ct};

use crate::{
    Action, EventType, Notify, Observed, Plan, PlannedEvent,
    conditions::{self, Status},
    planner::{REQUEUE_BACKPRESSURE, name_list},
    reasons as r, transitions,
};

/// What executing a plan's action achieved, as far as the status is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Executed {
    /// For [`Action::Evict`]: how many pods from the front of the batch were evicted (or were
    /// already gone) when fewer than all of them were (the next was refused with 429, conflicted
    /// with 409 or failed). `None`: every pod of the batch, or not an eviction.
    pub evicted: Option<usize>,
    /// The API server rejected the StatefulSet the plan applies (422 Invalid or 400), with its
    /// answer: the same spec will be rejected again.
    pub rejected: Option<String>,
}

/// The settled outcome of a plan: what to write, record and announce.
#[derive(Clone, Debug, PartialEq)]
pub struct Settled {
    /// The status to write.
    pub status: StatefulsetRolloutStatus,
    /// The events to record.
    pub events: Vec<PlannedEvent>,
    /// What to announce.
    pub notify: Notify,
    /// When to reconcile again if nothing else triggers it.
    pub requeue_after: Option<Duration>,
}

/// The status (events, announcements, requeue) of `plan`, made from `obs`, once its action was
/// executed with `executed`:
///
/// - a StatefulSet the API server rejected blocks the rollout: `RolloutBlocked` with
///   `SpecValid=False`, reason `StatefulSetRejected` and the server's answer, until the spec changes;
/// - an eviction that stopped early records only the pods evicted: with none, the pacing clock
///   (`lastEvictionTime`) stays as it was and no `PodsEvicted` event is recorded; the reason says
///   how many were refused, and the rollout looks again after [`REQUEUE_BACKPRESSURE`];
/// - otherwise the plan stands as planned.
///
/// The announcements are derived again from the settled status, so a blocked rollout announces
/// what really happened, not what was planned.
pub fn settle(obs: &Observed, plan: &Plan, executed: &Executed) -> Settled {
    let mut settled = Settled {
        status: plan.status.clone(),
        events: plan.events.clone(),
        notify: plan.notify.clone(),
        requeue_after: plan.requeue_after,
    };
    let prev = obs.rollout.status.clone().unwrap_or_default();
    if let Some(message) = &executed.rejected {
        // Condition messages are capped at 32 KiB by the API; a rejection can quote the input.
        let message: String = message.chars().take(4096).collect();
        let s = &mut settled.status;
        conditions::set(
            &mut s.conditions,
            ct::SPEC_VALID,
            Status::False,
            r::STATEFULSET_REJECTED,
            message.clone(),
            obs.rollout.metadata.generation,
            obs.now,
        );
        s.phase = Some(Phase::Blocked);
        s.reason = Some(message);
        s.reconcile_after = None;
        settled.requeue_after = None;
        let t = transitions::between(obs, &prev, s);
        settled.events = transitions::events(&t, &prev, s, || r::STATEFULSET_REJECTED.into());
        settled.notify = transitions::notify(obs, &t, &Action::Wait, s);
        return settled;
    }
    if let (Action::Evict { pods, .. }, Some(evicted)) = (&plan.action, executed.evicted)
        && evicted < pods.len()
    {
        let done: Vec<String> = pods.iter().take(evicted).cloned().collect();
        let refused = pods.len() - evicted;
        if evicted == 0 {
            settled.status.last_eviction_time = prev.last_eviction_time.clone();
        }
        settled.events.retain(|e| e.reason != r::PODS_EVICTED);
        if evicted > 0 {
            settled.events.push(PlannedEvent {
                type_: EventType::Normal,
                reason: r::PODS_EVICTED.into(),
                note: format!(
                    "evicted {} of {} pods ({}); the disruption budget refused the rest",
                    evicted,
                    pods.len(),
                    name_list(&done)
                ),
                action: "Evict".into(),
            });
        }
        settled.status.reason = Some(format!(
            "evicted {} pod{} ({}); {} not evicted (refused by the disruption budget, or recreated since observed), retrying",
            evicted,
            if evicted == 1 { "" } else { "s" },
            name_list(&done),
            refused
        ));
        settled.requeue_after = Some(REQUEUE_BACKPRESSURE);
    }
    settled
}
