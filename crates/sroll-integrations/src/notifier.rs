//! The notification façade the operator calls on every reconcile: Slack and webhooks behind one
//! non-blocking call, and one report to fill `status.slackMessage` and the
//! `NotificationsDelivered` condition.

use sroll_api::WebhookTrigger;

use crate::{
    Result, RolloutKey, RolloutSnapshot,
    slack::{SlackConfig, SlackNotifier, SlackReport, SlackTarget},
    webhook::{WebhookConfig, WebhookReport, WebhookSender, WebhookTarget},
};

/// What to notify for one reconcile of one rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyRequest {
    /// The rollout now.
    pub snapshot: RolloutSnapshot,
    /// Lifecycle events of this reconcile (the planner's `Notify::triggers`); may be empty.
    pub events: Vec<WebhookTrigger>,
    /// Slack target (`spec.channel` set and a token configured), if any.
    pub slack: Option<SlackTarget>,
    /// Webhook receivers (`spec.notifications.webhooks`, Secrets resolved).
    pub webhooks: Vec<WebhookTarget>,
}

/// Everything the operator reads back for one rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationReport {
    /// Slack state (message ids, last error).
    pub slack: Option<SlackReport>,
    /// Webhook state.
    pub webhooks: Option<WebhookReport>,
}

impl NotificationReport {
    /// The error to show in a `NotificationsDelivered=False` condition, if any.
    pub fn error(&self) -> Option<String> {
        let slack = self.slack.as_ref().and_then(|s| s.last_error.clone());
        let hooks = self.webhooks.as_ref().and_then(|w| w.last_error.clone());
        match (slack, hooks) {
            (Some(s), Some(w)) => Some(format!("{s}; {w}")),
            (s, w) => s.or(w),
        }
    }
}

/// Slack + webhooks; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    slack: SlackNotifier,
    webhooks: WebhookSender,
}

impl Notifier {
    /// Starts both workers on the current tokio runtime.
    pub fn spawn(slack: SlackConfig, webhooks: WebhookConfig) -> Result<Self> {
        Ok(Self {
            slack: SlackNotifier::spawn(slack)?,
            webhooks: WebhookSender::spawn(webhooks)?,
        })
    }

    /// The Slack worker (to replace its token).
    pub fn slack(&self) -> &SlackNotifier {
        &self.slack
    }

    /// Hands the request to the workers and returns at once. Errors (queue full) are also
    /// reflected in [`Self::report`]; the operator may ignore them and retry next reconcile.
    pub fn notify(&self, request: &NotifyRequest) -> Result<()> {
        if !request.events.is_empty() && !request.webhooks.is_empty() {
            self.webhooks
                .send(&request.snapshot, &request.events, &request.webhooks);
        }
        if let Some(target) = &request.slack {
            self.slack
                .notify(&request.snapshot, &request.events, target)?;
        }
        Ok(())
    }

    /// The latest report of a rollout.
    pub fn report(&self, key: &RolloutKey) -> NotificationReport {
        NotificationReport {
            slack: self.slack.report(key),
            webhooks: self.webhooks.report(key),
        }
    }

    /// Forgets a deleted rollout.
    pub fn forget(&self, key: &RolloutKey) {
        self.slack.forget(key);
    }
}
