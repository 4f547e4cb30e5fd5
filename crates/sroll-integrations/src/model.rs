//! The plain data the operator hands to the integrations: which rollout, what it looks like now,
//! and which lifecycle events just happened.

use std::{fmt, sync::Arc};

use serde::Serialize;
use sroll_api::{BuildMetadata, Phase, WebhookTrigger};

/// Identifies one `StatefulsetRollout` object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RolloutKey {
    /// Namespace of the rollout.
    pub namespace: String,
    /// Name of the rollout.
    pub name: String,
}

impl RolloutKey {
    /// A key from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for RolloutKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One side of a version change: the container image and the StatefulSet revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// Image of the main container (`registry/app:tag`), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// StatefulSet revision (ControllerRevision name), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// The terminal result of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// `RolloutDone`: `percent` of the pods run the new version and are Ready.
    Done,
    /// `RolloutFailed`: no progress within the deadline, or discovery health timed out.
    Failed,
}

impl Outcome {
    /// The terminal phase this outcome is.
    pub fn phase(self) -> &'static Phase {
        static DONE: Phase = Phase::Done;
        static FAILED: Phase = Phase::Failed;
        match self {
            Self::Done => &DONE,
            Self::Failed => &FAILED,
        }
    }

    /// The phase name, as written to `status.lastCallbackOutcome` and sent in callbacks.
    pub fn as_str(self) -> &'static str {
        self.phase().as_str()
    }

    /// The outcome a phase stands for (`None` for non-terminal phases).
    pub fn from_phase(phase: &Phase) -> Option<Self> {
        match phase {
            Phase::Done => Some(Self::Done),
            Phase::Failed => Some(Self::Failed),
            _ => None,
        }
    }

    /// Parses the text written to `status.lastCallbackOutcome`.
    pub fn parse(text: &str) -> Option<Self> {
        Outcome::from_phase(&Phase::from(text))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a rollout looks like now: everything a notification shows.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutSnapshot {
    /// Which rollout.
    pub key: RolloutKey,
    /// Name of the cluster the operator runs in (`--cluster-name`).
    pub cluster: String,
    /// The application: the managed StatefulSet's name.
    pub app: String,
    /// `spec.rolloutIdentity`; a new identity starts new Slack messages.
    pub rollout_identity: Option<String>,
    /// The version pods are rolled away from.
    pub from: Version,
    /// The version pods are rolled to.
    pub to: Version,
    /// Build metadata (branch, commit) from the rollout's annotations.
    pub build: Option<BuildMetadata>,
    /// Pods running the new revision.
    pub updated: i32,
    /// Pods that must run the new revision for the rollout to be done.
    pub target: i32,
    /// Desired replicas of the StatefulSet.
    pub total: i32,
    /// `spec.percent`.
    pub percent: i32,
    /// `status.percentDeployed`.
    pub percent_deployed: i32,
    /// Current phase.
    pub phase: Phase,
    /// Human-readable reason of the phase.
    pub reason: Option<String>,
    /// The pods being rolled right now (evicted or not yet Ready at the new revision).
    pub rolling_pods: Vec<String>,
    /// Of `rolling_pods`, those being updated in place (`spec.podUpdatePolicy`): their containers
    /// restart inside the running pod.
    pub in_place_pods: Vec<String>,
}

impl RolloutSnapshot {
    /// The terminal outcome, if the phase is terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::from_phase(&self.phase)
    }
}

/// Called (from a background task) with the rollout a new result concerns, so the operator can
/// requeue it — useful once a rollout is terminal and no longer requeues itself.
pub type Waker = Arc<dyn Fn(&RolloutKey) + Send + Sync>;

/// Whether a trigger is a lifecycle event (sent at Slack level `info`); `StepCompleted` is not.
pub fn is_lifecycle(trigger: &WebhookTrigger) -> bool {
    !matches!(
        trigger,
        WebhookTrigger::StepCompleted | WebhookTrigger::Unknown(_)
    )
}

/// The events between two consecutive observations of a rollout, in the order they happened.
///
/// `prev_phase`/`prev_updated` come from the status before this reconcile (`None` for a rollout seen
/// for the first time, or a new `rolloutIdentity`); `rollback` is true when the new revision is the
/// one the pods ran before (`status.previousRevision`). Derived from status, not from memory, so a
/// restarted operator neither repeats nor skips an event.
pub fn transition_events(
    prev_phase: Option<&Phase>,
    prev_updated: Option<i32>,
    next_phase: &Phase,
    next_updated: i32,
    rollback: bool,
) -> Vec<WebhookTrigger> {
    let mut events = Vec::new();
    let moving = |p: &Phase| matches!(p, Phase::InProgress);
    let fresh = matches!(
        prev_phase,
        None | Some(Phase::Pending) | Some(Phase::Done) | Some(Phase::Failed)
    );
    if fresh && (moving(next_phase) || next_phase.is_terminal()) && prev_phase != Some(next_phase) {
        events.push(WebhookTrigger::Started);
        if rollback {
            events.push(WebhookTrigger::Rollback);
        }
    }
    if prev_phase == Some(&Phase::Paused) && !matches!(next_phase, Phase::Paused) {
        events.push(WebhookTrigger::Resumed);
    }
    if let Some(prev) = prev_updated
        && next_updated > prev
        && !fresh
    {
        events.push(WebhookTrigger::StepCompleted);
    }
    if matches!(next_phase, Phase::Paused) && prev_phase != Some(&Phase::Paused) {
        events.push(WebhookTrigger::Paused);
    }
    if prev_phase != Some(next_phase) {
        match next_phase {
            Phase::Done => events.push(WebhookTrigger::Completed),
            Phase::Failed => events.push(WebhookTrigger::Failed),
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_rollout_starting_emits_started_only() {
        let ev = transition_events(None, None, &Phase::InProgress, 0, false);
        assert_eq!(ev, vec![WebhookTrigger::Started]);
        let ev = transition_events(Some(&Phase::Pending), Some(0), &Phase::InProgress, 3, true);
        assert_eq!(ev, vec![WebhookTrigger::Started, WebhookTrigger::Rollback]);
    }

    #[test]
    fn progress_pause_resume_and_completion_are_reported_once() {
        let ip = Phase::InProgress;
        assert_eq!(
            transition_events(Some(&ip), Some(10), &ip, 20, false),
            vec![WebhookTrigger::StepCompleted]
        );
        assert!(transition_events(Some(&ip), Some(20), &ip, 20, false).is_empty());
        assert_eq!(
            transition_events(Some(&ip), Some(20), &Phase::Paused, 20, false),
            vec![WebhookTrigger::Paused]
        );
        assert!(
            transition_events(Some(&Phase::Paused), Some(20), &Phase::Paused, 20, false).is_empty()
        );
        assert_eq!(
            transition_events(Some(&Phase::Paused), Some(20), &ip, 20, false),
            vec![WebhookTrigger::Resumed]
        );
        assert_eq!(
            transition_events(Some(&ip), Some(90), &Phase::Done, 100, false),
            vec![WebhookTrigger::StepCompleted, WebhookTrigger::Completed]
        );
        assert!(
            transition_events(Some(&Phase::Done), Some(100), &Phase::Done, 100, false).is_empty()
        );
        assert_eq!(
            transition_events(Some(&ip), Some(5), &Phase::Failed, 5, false),
            vec![WebhookTrigger::Failed]
        );
    }

    #[test]
    fn outcome_round_trips_through_its_status_text() {
        for o in [Outcome::Done, Outcome::Failed] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("RolloutInProgress"), None);
        assert!(!is_lifecycle(&WebhookTrigger::StepCompleted));
        assert!(is_lifecycle(&WebhookTrigger::Paused));
    }
}
