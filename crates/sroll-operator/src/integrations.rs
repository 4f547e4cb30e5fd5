//! Wiring of `sroll-integrations` into the reconcile loop: Slack and webhook notifications, the
//! release callback and service-discovery health.
//!
//! Three hooks, all non-blocking (the integrations run on background tasks), none of which edits
//! a status (the planner owns every status field):
//! - [`Integrations::discovery`] before planning: the rollout's service-discovery health as the
//!   planner's [`sroll_planner::DiscoveryHealth`] (Consul from the snapshot the background poller
//!   keeps — a new or changed query is "not known yet" until its first answer, which reconciles
//!   the rollout; the Kubernetes Service's EndpointSlices from the watch cache). Nothing here
//!   waits or reads the API;
//! - [`Integrations::observe`] before planning: what the workers reported (Slack message ids,
//!   delivery errors, the release callback's delivery) as [`IntegrationsObserved`], which the
//!   planner records in `status.slackMessage`, `status.lastCallbackStageId`/`lastCallbackOutcome`
//!   and the `NotificationsDelivered` / `CallbackDelivered` conditions;
//! - [`Integrations::announce`] after the status write: hands the settled plan's announcements
//!   ([`sroll_planner::Notify`]: webhook triggers, the Slack update, the callback due) to the
//!   workers.
//!
//! The background workers (Slack, webhooks, callback, Consul poller) share one
//! [`sroll_integrations::Waker`]: a result concerning a rollout (new Slack message ids, an error
//! raised or cleared, a callback settled, a Consul health change) reconciles that rollout at once
//! through [`Integrations::wakes`], so its status shows the result without waiting for a requeue.
//!
//! The old version's image (messages show old → new) comes from the ControllerRevision of the
//! revision the pods are rolled away from, in the operator's ControllerRevision watch cache.
//!
//! Secrets (the Slack bot token, webhook bearer tokens, Consul ACL tokens) come from
//! [`secrets::Secrets`]: kept in memory, read with GET and refreshed every [`SECRET_TTL`] in the
//! background (why not a watch: see that module); their values never reach logs, status or events.

mod secrets;

pub use secrets::SECRET_TTL;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::channel::mpsc;
use kube::{Client, ResourceExt, runtime::reflector::ObjectRef};
use sroll_api::{
    DiscoveryProvider, Phase, StatefulsetRollout, StatefulsetRolloutStatus, sync::lock,
};
use sroll_integrations::{
    AnalysisSnapshot, CallbackBody, CallbackConfig, CallbackRequest, Callbacks, Discovery,
    DiscoveryConfig, DiscoveryHealth, Notifier, NotifyRequest, Outcome, RolloutKey,
    RolloutSnapshot, SecretToken, Version, Waker,
    allow::HostAllowlist,
    discovery::{ConsulQuery, endpointslice},
    slack::{DEFAULT_API_URL, SlackConfig, SlackTarget},
    webhook::{WebhookConfig, WebhookTarget},
};
use sroll_planner::{
    CallbackObserved, IntegrationsObserved, NotificationsObserved, Observed, Settled,
};

use crate::cache::{self, Caches};

/// A key of a Secret: `namespace/name/key`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretLocation {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Key in its data.
    pub key: String,
}

impl std::str::FromStr for SecretLocation {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [ns, name, key] if !ns.is_empty() && !name.is_empty() && !key.is_empty() => Ok(Self {
                namespace: (*ns).to_owned(),
                name: (*name).to_owned(),
                key: (*key).to_owned(),
            }),
            _ => Err(format!(
                "expected NAMESPACE/NAME/KEY (for example sroll-system/slack/token), got {s:?}"
            )),
        }
    }
}

/// The operator's integration settings (flags of `sroll operator`).
#[derive(Clone, Debug, Default)]
pub struct IntegrationSettings {
    /// `--cluster-name`: shown in messages and sent in payloads.
    pub cluster_name: String,
    /// `--slack-api-url`; `None`: the public Slack API.
    pub slack_api_url: Option<String>,
    /// `--slack-token-secret`; `None`: no Slack notifications.
    pub slack_token_secret: Option<SecretLocation>,
    /// `--callback-allow` entries.
    pub callback_allow: Vec<String>,
    /// `--consul-addr`.
    pub consul_addr: Option<String>,
    /// Time between two Consul polls of a rollout's services (`None`: 5 s).
    pub discovery_interval: Option<Duration>,
    /// First retry delay of the release callback, doubled per attempt (`None`: 1 s); tests
    /// compress it.
    pub callback_retry_base: Option<Duration>,
}

/// Receivers of wake-ups, with the namespace scope each serves (`None`: all).
type Subscribers = Arc<
    Mutex<
        Vec<(
            Option<String>,
            mpsc::UnboundedSender<ObjectRef<StatefulsetRollout>>,
        )>,
    >,
>;

/// The running integrations, shared by every reconcile.
pub struct Integrations {
    settings: IntegrationSettings,
    notifier: Notifier,
    callbacks: Callbacks,
    discovery: Discovery,
    secrets: secrets::Secrets,
    slack_token: Mutex<Option<String>>,
    subscribers: Subscribers,
}

impl std::fmt::Debug for Integrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integrations")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Integrations {
    /// Starts the background workers (call inside the tokio runtime). Fails on an invalid
    /// `--callback-allow` entry or URL flag.
    pub fn start(
        client: Client,
        settings: IntegrationSettings,
    ) -> std::result::Result<Self, sroll_integrations::Error> {
        let allow = HostAllowlist::parse(&settings.callback_allow)?;
        let subscribers: Subscribers = Arc::default();
        let waker: Waker = {
            let subscribers = subscribers.clone();
            Arc::new(move |key: &RolloutKey| {
                let rollout = ObjectRef::new(&key.name).within(&key.namespace);
                // Closed receivers (a stopped scope) are dropped.
                lock(&subscribers).retain(|(scope, tx)| {
                    scope.as_deref().is_some_and(|ns| ns != key.namespace)
                        || tx.unbounded_send(rollout.clone()).is_ok()
                });
            })
        };
        let notifier = Notifier::spawn(
            SlackConfig {
                api_url: settings
                    .slack_api_url
                    .clone()
                    .unwrap_or_else(|| DEFAULT_API_URL.into()),
                waker: Some(waker.clone()),
                ..SlackConfig::default()
            },
            WebhookConfig {
                allow: allow.clone(),
                waker: Some(waker.clone()),
                ..WebhookConfig::default()
            },
        )?;
        let callbacks = Callbacks::new(CallbackConfig {
            allow,
            retry_base: settings
                .callback_retry_base
                .unwrap_or(CallbackConfig::default().retry_base),
            waker: Some(waker.clone()),
            ..CallbackConfig::default()
        })?;
        let discovery = Discovery::spawn(DiscoveryConfig {
            consul_addr: settings.consul_addr.clone(),
            interval: settings
                .discovery_interval
                .unwrap_or(DiscoveryConfig::default().interval),
            waker: Some(waker.clone()),
            ..DiscoveryConfig::default()
        })?;
        let secrets = secrets::Secrets::spawn(client, Some(waker));
        if let Some(loc) = &settings.slack_token_secret {
            secrets.prefetch(loc);
        }
        Ok(Self {
            settings,
            notifier,
            callbacks,
            discovery,
            secrets,
            slack_token: Mutex::default(),
            subscribers,
        })
    }

    /// The rollouts of `namespace` (`None`: every namespace) the background workers have news
    /// about, for `Controller::reconcile_on`.
    pub fn wakes(
        &self,
        namespace: Option<&str>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<StatefulsetRollout>> {
        let (tx, rx) = mpsc::unbounded();
        lock(&self.subscribers).push((namespace.map(str::to_owned), tx));
        rx
    }

    async fn refresh_slack_token(&self) -> bool {
        let Some(loc) = &self.settings.slack_token_secret else {
            return false;
        };
        let token = self.secrets.get(loc).await.filter(|t| !t.trim().is_empty());
        let mut current = lock(&self.slack_token);
        if *current != token {
            if let Err(e) = self
                .notifier
                .slack()
                .set_token(token.clone().map(SecretToken::new))
            {
                tracing::warn!(error = %e, "failed to configure the Slack client");
            }
            *current = token;
        }
        current.is_some()
    }

    /// How often a rollout gated on Consul should be looked at again (Consul has no watch; its
    /// poller wakes the rollout on a change, this is the safety net); `None` when it is not gated
    /// on Consul (EndpointSlices are watched).
    pub fn discovery_poll(&self, rollout: &StatefulsetRollout) -> Option<Duration> {
        let sd = rollout.spec.service_discovery.as_ref()?;
        let consul =
            sd.provider.clone().unwrap_or(DiscoveryProvider::Consul) == DiscoveryProvider::Consul;
        (consul && !sd.services.is_empty()).then(|| {
            self.settings
                .discovery_interval
                .unwrap_or(DiscoveryConfig::default().interval)
                .max(Duration::from_millis(100))
        })
    }

    /// The rollout's service-discovery health for the planner; `None` when not configured. Never
    /// waits: Consul's answer comes from the poller's snapshot, and a query with no answer yet (or
    /// whose ACL token's Secret was never read) is `pending` — the planner holds the rollout, and
    /// the answer (or the token) reconciles it.
    pub fn discovery(
        &self,
        rollout: &StatefulsetRollout,
        observed: &Observed,
        caches: &Caches,
    ) -> Option<sroll_planner::DiscoveryHealth> {
        let sd = rollout.spec.service_discovery.as_ref()?;
        if sd.services.is_empty() {
            return None;
        }
        let namespace = rollout.namespace().unwrap_or_default();
        let key = RolloutKey::new(&namespace, rollout.name_any());
        let health = match sd.provider.clone().unwrap_or(DiscoveryProvider::Consul) {
            DiscoveryProvider::Kubernetes => {
                // The watch cache (synced before any reconcile runs) holds every Service's slices.
                let slices = cache::endpoint_slices_of(caches, &namespace, &sd.services);
                DiscoveryHealth::Reachable(endpointslice::health_from_endpoint_slices(
                    &namespace,
                    &sd.services,
                    slices.iter().map(|s| &**s),
                ))
            }
            _ => {
                let token = match &sd.acl_token_secret_ref {
                    Some(r) => {
                        let loc = SecretLocation {
                            namespace: namespace.clone(),
                            name: r.name.clone(),
                            key: r.key.clone(),
                        };
                        match self.secrets.peek(&loc, &key) {
                            secrets::Peek::Known(token) => token,
                            secrets::Peek::Pending => return Some(pending_discovery()),
                        }
                    }
                    None => None,
                };
                let query = ConsulQuery {
                    dc: sd.dc.clone(),
                    services: sd.services.clone(),
                    token: token.map(SecretToken::new),
                };
                match self.discovery.observe(&key, query) {
                    Some(obs) => obs.health,
                    None => return Some(pending_discovery()),
                }
            }
        };
        Some(match health {
            DiscoveryHealth::Unreachable { reason } => {
                tracing::debug!(rollout = %key, %reason, "service discovery unreachable");
                sroll_planner::DiscoveryHealth {
                    reachable: false,
                    ..sroll_planner::DiscoveryHealth::default()
                }
            }
            DiscoveryHealth::Reachable(h) => {
                let healthy_pods = observed
                    .pods
                    .iter()
                    .filter(|p| {
                        // No configured service exists: discovery cannot gate (status shows
                        // `consulServices: []`), so every pod counts as healthy.
                        !h.gates() || {
                            let ip = crate::cache::pod_ip(caches, &namespace, &p.name);
                            h.is_healthy(&p.name, ip.as_deref())
                        }
                    })
                    .map(|p| p.name.to_string())
                    .collect();
                sroll_planner::DiscoveryHealth {
                    reachable: true,
                    healthy_pods,
                    existing_services: h.existing_services(),
                    pending: false,
                }
            }
        })
    }

    /// What the background workers reported about `rollout` (its status is the one the plan
    /// starts from): the notifier's report when Slack or webhooks are configured, and the delivery
    /// of the release callback of the rollout's current outcome. The planner records them.
    pub fn observe(&self, rollout: &StatefulsetRollout) -> IntegrationsObserved {
        let namespace = rollout.namespace().unwrap_or_default();
        let key = RolloutKey::new(&namespace, rollout.name_any());
        let notifying = (rollout.spec.channel.is_some()
            && self.settings.slack_token_secret.is_some())
            || rollout
                .spec
                .notifications
                .as_ref()
                .is_some_and(|n| !n.webhooks.is_empty());
        let notifications = notifying.then(|| {
            let report = self.notifier.report(&key);
            NotificationsObserved {
                slack_message: report.slack.as_ref().and_then(|s| s.message.clone()),
                pending: report.slack.as_ref().is_some_and(|s| !s.up_to_date),
                error: report.error(),
            }
        });
        let phase = rollout.status.as_ref().and_then(|s| s.phase.clone());
        let callback = rollout
            .spec
            .bapi
            .as_ref()
            .zip(phase.as_ref().and_then(Outcome::from_phase))
            .and_then(|(bapi, outcome)| {
                let state = self.callbacks.state(&key, &bapi.stage_id, outcome)?;
                let (status, reason, message) = state.condition();
                Some(CallbackObserved {
                    stage_id: bapi.stage_id.clone(),
                    outcome: outcome.phase().clone(),
                    delivered: match status {
                        "True" => Some(true),
                        "False" => Some(false),
                        _ => None,
                    },
                    reason: reason.to_owned(),
                    message,
                })
            });
        IntegrationsObserved {
            notifications,
            callback,
        }
    }

    /// Announces what the settled plan says (`settled.notify`): the webhook triggers, the Slack
    /// update, the release callback. Every call returns at once (the workers deliver in the
    /// background and report through [`Self::observe`] on a later reconcile); nothing here
    /// touches the status. `evicting`: the pods the plan evicted (shown as rolling).
    pub async fn announce(
        &self,
        rollout: &StatefulsetRollout,
        observed: &Observed,
        settled: &Settled,
        evicting: &[String],
        caches: &Caches,
    ) {
        let namespace = rollout.namespace().unwrap_or_default();
        let key = RolloutKey::new(&namespace, rollout.name_any());
        let notify = &settled.notify;
        let status = &settled.status;
        if notify.callback.is_none() && rollout.spec.bapi.is_some() {
            // Recorded (or no outcome): the sender may forget its final deliveries.
            self.callbacks.acknowledge(&key);
        }
        let hooks = rollout
            .spec
            .notifications
            .as_ref()
            .map(|n| n.webhooks.as_slice())
            .unwrap_or_default();
        let webhook_due = !notify.triggers.is_empty() && !hooks.is_empty();
        if !notify.slack && !webhook_due && notify.callback.is_none() {
            return;
        }
        // Messages, webhook payloads and the callback body show the old image too.
        let from_image = from_revision(status).and_then(|revision| {
            let template = cache::revision_template(caches, &namespace, &revision)?;
            template.spec?.containers.into_iter().next()?.image
        });
        let snapshot = self.snapshot(&key, rollout, observed, evicting, status, from_image);

        let slack = match &rollout.spec.channel {
            Some(channel) if notify.slack && self.refresh_slack_token().await => {
                Some(SlackTarget {
                    channel: channel.clone(),
                    level: rollout.spec.notification_level(),
                    existing: status.slack_message.clone(),
                })
            }
            _ => None,
        };
        let mut webhooks = Vec::new();
        for hook in hooks.iter().filter(|_| webhook_due) {
            let bearer = match &hook.auth_secret_ref {
                Some(r) => self
                    .secrets
                    .get(&SecretLocation {
                        namespace: namespace.clone(),
                        name: r.name.clone(),
                        key: r.key.clone(),
                    })
                    .await
                    .map(SecretToken::new),
                None => None,
            };
            webhooks.push(WebhookTarget {
                url: hook.url.clone(),
                triggers: hook.triggers.clone(),
                bearer,
            });
        }
        if slack.is_some() || !webhooks.is_empty() {
            let request = NotifyRequest {
                snapshot: snapshot.clone(),
                events: notify.triggers.clone(),
                slack,
                webhooks,
            };
            if let Err(e) = self.notifier.notify(&request) {
                tracing::warn!(rollout = %key, error = %e, "failed to queue a notification");
            }
        }
        // The release callback, once per (stageId, outcome): the sender starts it once and
        // answers its state to every later hand-over.
        if let Some(due) = &notify.callback
            && let Some(bapi) = &rollout.spec.bapi
            && snapshot.outcome().map(Outcome::phase) == Some(&due.outcome)
            && let Some(body) = CallbackBody::new(&due.stage_id, &snapshot)
        {
            self.callbacks.deliver(CallbackRequest {
                key: key.clone(),
                url: bapi.url.clone(),
                body,
            });
        }
    }

    fn snapshot(
        &self,
        key: &RolloutKey,
        rollout: &StatefulsetRollout,
        observed: &Observed,
        evicting: &[String],
        status: &StatefulsetRolloutStatus,
        from_image: Option<String>,
    ) -> RolloutSnapshot {
        let update = status.update_revision.clone();
        let mut rolling: Vec<(i32, String)> = observed
            .pods
            .iter()
            .filter(|p| {
                p.terminating
                    || evicting.iter().any(|e| **e == *p.name)
                    || status.in_place_updating.iter().any(|e| **e == *p.name)
                    || (update.is_some() && p.revision.as_deref() == update.as_deref() && !p.ready)
            })
            .map(|p| (p.ordinal, p.name.to_string()))
            .collect();
        rolling.sort();
        let image = rollout
            .spec
            .sts
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone());
        RolloutSnapshot {
            key: key.clone(),
            cluster: self.settings.cluster_name.clone(),
            app: rollout.statefulset_name(),
            rollout_identity: rollout.spec.rollout_identity.clone(),
            from: Version {
                image: from_image,
                revision: from_revision(status),
            },
            to: Version {
                image,
                revision: update,
            },
            build: status.build_metadata.clone(),
            updated: status.updated_replicas.unwrap_or(0),
            target: status
                .target_updated_replicas
                .unwrap_or_else(|| rollout.spec.target_updated_replicas()),
            total: status.replicas.unwrap_or_else(|| rollout.spec.replicas()),
            percent: rollout.spec.percent,
            percent_deployed: status.percent_deployed.unwrap_or(0),
            phase: status.phase.clone().unwrap_or(Phase::Pending),
            reason: status.reason.clone(),
            in_place_pods: rolling
                .iter()
                .filter(|(_, n)| status.in_place_updating.contains(n))
                .map(|(_, n)| n.clone())
                .collect(),
            rolling_pods: rolling.into_iter().map(|(_, n)| n).collect(),
            analysis: status.analysis.as_ref().and_then(|a| {
                AnalysisSnapshot::from_status(
                    a,
                    rollout.spec.analysis.as_ref().and_then(|x| x.abort_policy),
                )
            }),
        }
    }
}

/// What the planner is told while service discovery has not answered the rollout's query yet.
fn pending_discovery() -> sroll_planner::DiscoveryHealth {
    sroll_planner::DiscoveryHealth {
        pending: true,
        ..sroll_planner::DiscoveryHealth::default()
    }
}

/// The revision the pods are rolled away from: the current revision while the rollout moves,
/// `previousRevision` once the update revision became current.
fn from_revision(status: &StatefulsetRolloutStatus) -> Option<String> {
    match (&status.current_revision, &status.update_revision) {
        (Some(c), Some(u)) if c == u => status.previous_revision.clone(),
        (c, _) => c.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_locations_parse_namespace_name_and_key() {
        let loc: SecretLocation = "sroll-system/slack/token".parse().expect("valid");
        assert_eq!(loc.namespace, "sroll-system");
        assert_eq!(loc.key, "token");
        assert!("slack/token".parse::<SecretLocation>().is_err());
        assert!("a//b".parse::<SecretLocation>().is_err());
    }
}
