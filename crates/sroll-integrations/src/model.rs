//! The plain data the operator hands to the integrations: which rollout, what it looks like now,
//! and which lifecycle events just happened.

use std::{fmt, sync::Arc};

use serde::Serialize;
use sroll_api::{
    BuildMetadata, Phase, WebhookTrigger,
    analysis::{AbortPolicy, AnalysisStatus},
};

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
    /// `RolloutAborted`: an analysis failed or erred (the rollout stays aborted until its release
    /// changes; the pods roll back or are held).
    Aborted,
}

impl Outcome {
    /// The terminal phase this outcome is.
    pub fn phase(self) -> &'static Phase {
        static DONE: Phase = Phase::Done;
        static FAILED: Phase = Phase::Failed;
        static ABORTED: Phase = Phase::Aborted;
        match self {
            Self::Done => &DONE,
            Self::Failed => &FAILED,
            Self::Aborted => &ABORTED,
        }
    }

    /// The phase name, as written to `status.lastCallbackOutcome` and sent in callbacks.
    pub fn as_str(self) -> &'static str {
        self.phase().as_str()
    }

    /// The outcome a phase stands for (`None` for phases that are neither terminal nor
    /// `RolloutAborted`).
    pub fn from_phase(phase: &Phase) -> Option<Self> {
        match phase {
            Phase::Done => Some(Self::Done),
            Phase::Failed => Some(Self::Failed),
            Phase::Aborted => Some(Self::Aborted),
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
    /// The current (or last) analysis and its measurements (`status.analysis`), when the rollout
    /// has analysis steps.
    pub analysis: Option<AnalysisSnapshot>,
}

impl RolloutSnapshot {
    /// The outcome, once the rollout is done, failed or aborted by an analysis.
    pub fn outcome(&self) -> Option<Outcome> {
        Outcome::from_phase(&self.phase)
    }

    /// What an analysis abort does to the pods; `None` unless the rollout is aborted.
    pub fn abort_action(&self) -> Option<AbortAction> {
        if self.outcome() != Some(Outcome::Aborted) {
            return None;
        }
        let policy = self
            .analysis
            .as_ref()
            .and_then(|a| a.abort_policy)
            .unwrap_or_default();
        Some(match policy {
            AbortPolicy::Hold => AbortAction::Held,
            AbortPolicy::Rollback if self.updated == 0 => AbortAction::RolledBack,
            // The StatefulSet no longer knows the previous revision (the planner's reason says to
            // apply the previous `spec.sts`).
            AbortPolicy::Rollback if self.updated >= self.total => AbortAction::CannotRollBack,
            AbortPolicy::Rollback => AbortAction::RollingBack,
        })
    }
}

/// What happens to the pods of an aborted rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortAction {
    /// `abortPolicy: Rollback`: updated pods are going back to the previous revision.
    RollingBack,
    /// `abortPolicy: Rollback`: every pod is back at the previous revision.
    RolledBack,
    /// `abortPolicy: Rollback`, but every pod runs the new revision: nothing to roll back to.
    CannotRollBack,
    /// `abortPolicy: Hold`: every pod stays where it is.
    Held,
}

impl AbortAction {
    /// How messages say it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::RollingBack => "rolling back to the previous revision (abortPolicy Rollback)",
            Self::RolledBack => {
                "rolled back: every pod runs the previous revision (abortPolicy Rollback)"
            }
            Self::CannotRollBack => {
                "not rolled back: every pod runs the new revision; apply the previous spec.sts"
            }
            Self::Held => "held where they are (abortPolicy Hold)",
        }
    }
}

/// An analysis as notifications show it: the run's phase and message (naming the metric, its last
/// values and the limit) and each metric's last measured values.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSnapshot {
    /// Running, Successful, Inconclusive, Failed or Error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the run is in its phase (`status.analysis.message`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `spec.analysis.abortPolicy` (`None`: the default, Rollback).
    #[serde(skip)]
    pub abort_policy: Option<AbortPolicy>,
    /// One entry per metric.
    pub metrics: Vec<MetricValues>,
}

/// A metric's phase and last measured values (oldest first, at most 10).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricValues {
    /// The metric's name.
    pub name: String,
    /// Its phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The measured values (`[0.2]` for an instant vector); an erred measurement shows its phase.
    pub values: Vec<String>,
}

impl AnalysisSnapshot {
    /// The snapshot of `status.analysis` (`None` when it has no run yet).
    pub fn from_status(status: &AnalysisStatus, abort_policy: Option<AbortPolicy>) -> Option<Self> {
        if status.metrics.is_empty() && status.phase.is_none() {
            return None;
        }
        Some(Self {
            phase: status.phase.clone(),
            message: status.message.clone(),
            abort_policy,
            metrics: status
                .metrics
                .iter()
                .map(|m| MetricValues {
                    name: m.name.clone(),
                    phase: m.phase.clone(),
                    values: m
                        .measurements
                        .iter()
                        .map(|x| x.value.clone().unwrap_or_else(|| x.phase.clone()))
                        .collect(),
                })
                .collect(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_round_trips_through_its_status_text() {
        for o in [Outcome::Done, Outcome::Failed, Outcome::Aborted] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("RolloutInProgress"), None);
        assert!(!is_lifecycle(&WebhookTrigger::StepCompleted));
        assert!(is_lifecycle(&WebhookTrigger::Paused));
    }
}
