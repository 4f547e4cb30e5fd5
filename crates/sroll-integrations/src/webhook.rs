//! Generic JSON webhooks on Argo-Rollouts-style triggers (`on-rollout-started`, …), for teams not
//! on Slack. The payload is documented in `docs/notifications.md` ([`WebhookPayload`]).
//!
//! [`WebhookSender::send`] checks each URL against the allowlist and puts the deliveries on a
//! bounded queue; a worker posts them (a few at a time, each with a few quick retries). Results
//! are read with [`WebhookSender::report`]. Webhooks are fire-and-forget notifications: unlike the
//! release callback, a delivery is not tracked across operator restarts.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sroll_api::{BuildMetadata, WebhookTrigger, sync::lock};
use tokio::sync::{Semaphore, mpsc};

use crate::{
    AnalysisSnapshot, Error, Outcome, Result, RolloutKey, RolloutSnapshot, SecretToken, Version,
    Waker,
    allow::HostAllowlist,
    http::{Timeouts, backoff, client},
};

/// One receiver of a rollout (`spec.notifications.webhooks[]`, with its Secret resolved).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookTarget {
    /// Receiver URL.
    pub url: String,
    /// Triggers to send; empty means all.
    pub triggers: Vec<WebhookTrigger>,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer: Option<SecretToken>,
}

/// The JSON body of a webhook (see `docs/notifications.md`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// The trigger name (`on-rollout-completed`, …).
    pub trigger: String,
    /// When the event was sent (RFC 3339, UTC).
    pub timestamp: String,
    /// Which rollout.
    pub rollout: RolloutRef,
    /// Phase of the rollout.
    pub phase: String,
    /// Reason of the phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `RolloutDone` / `RolloutFailed` once terminal, `RolloutAborted` once aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The version pods are rolled away from.
    pub from: Version,
    /// The version pods are rolled to.
    pub to: Version,
    /// Build metadata (branch, commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_metadata: Option<BuildMetadata>,
    /// Counts and percentages.
    pub progress: Progress,
    /// Pods being rolled now.
    pub rolling_pods: Vec<String>,
    /// The analysis and its measurements, when the rollout has analysis steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSnapshot>,
}

/// Identifies the rollout in payloads.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRef {
    /// Namespace.
    pub namespace: String,
    /// Name of the StatefulsetRollout.
    pub name: String,
    /// The managed StatefulSet (the app).
    pub app: String,
    /// Cluster name (`--cluster-name`).
    pub cluster: String,
    /// `spec.rolloutIdentity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_identity: Option<String>,
}

/// Progress numbers of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Pods on the new revision.
    pub updated: i32,
    /// Pods that must be on it.
    pub target: i32,
    /// Replicas.
    pub total: i32,
    /// `spec.percent`.
    pub percent: i32,
    /// `status.percentDeployed`.
    pub percent_deployed: i32,
}

impl WebhookPayload {
    /// The payload of `trigger` for `snapshot`, stamped `now`.
    pub fn new(trigger: &WebhookTrigger, snapshot: &RolloutSnapshot, now: DateTime<Utc>) -> Self {
        Self {
            trigger: trigger.as_str().to_owned(),
            timestamp: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            rollout: RolloutRef {
                namespace: snapshot.key.namespace.clone(),
                name: snapshot.key.name.clone(),
                app: snapshot.app.clone(),
                cluster: snapshot.cluster.clone(),
                rollout_identity: snapshot.rollout_identity.clone(),
            },
            phase: snapshot.phase.as_str().to_owned(),
            reason: snapshot.reason.clone(),
            outcome: snapshot.outcome(),
            from: snapshot.from.clone(),
            to: snapshot.to.clone(),
            build_metadata: snapshot.build.clone(),
            progress: Progress {
                updated: snapshot.updated,
                target: snapshot.target,
                total: snapshot.total,
                percent: snapshot.percent,
                percent_deployed: snapshot.percent_deployed,
            },
            rolling_pods: snapshot.rolling_pods.clone(),
            analysis: snapshot.analysis.clone(),
        }
    }
}

/// Settings of the webhook sender.
#[derive(Clone)]
pub struct WebhookConfig {
    /// Hosts that may be called (`--callback-allow`).
    pub allow: HostAllowlist,
    /// Timeouts of each call.
    pub timeouts: Timeouts,
    /// Capacity of the delivery queue (256); beyond, deliveries are dropped and reported.
    pub queue: usize,
    /// Attempts per delivery (3).
    pub attempts: u32,
    /// First retry delay (500 ms), doubled per attempt.
    pub retry_base: Duration,
    /// Deliveries in flight at once (8).
    pub concurrency: usize,
    /// Called when a rollout's webhook report changes.
    pub waker: Option<Waker>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow: HostAllowlist::default(),
            timeouts: Timeouts::default(),
            queue: 256,
            attempts: 3,
            retry_base: Duration::from_millis(500),
            concurrency: 8,
            waker: None,
        }
    }
}

/// What the operator reads back for one rollout's webhooks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookReport {
    /// Deliveries answered with 2xx.
    pub delivered: u64,
    /// Deliveries that failed or were refused.
    pub failed: u64,
    /// The last failure (cleared by the next success).
    pub last_error: Option<String>,
}

struct Delivery {
    key: RolloutKey,
    url: reqwest::Url,
    bearer: Option<SecretToken>,
    payload: WebhookPayload,
}

type Reports = Arc<Mutex<HashMap<RolloutKey, WebhookReport>>>;

/// Handle to the webhook worker; cheap to clone.
#[derive(Clone)]
pub struct WebhookSender {
    tx: mpsc::Sender<Delivery>,
    allow: HostAllowlist,
    reports: Reports,
    waker: Option<Waker>,
}

fn record(reports: &Reports, waker: Option<&Waker>, key: &RolloutKey, result: Result<(), String>) {
    let changed = {
        let mut reports = lock(reports);
        let report = reports.entry(key.clone()).or_default();
        let had_error = report.last_error.is_some();
        match result {
            Ok(()) => {
                report.delivered += 1;
                report.last_error = None;
            }
            Err(e) => {
                report.failed += 1;
                report.last_error = Some(e);
            }
        }
        had_error != report.last_error.is_some()
    };
    if changed && let Some(w) = waker {
        w(key);
    }
}

impl WebhookSender {
    /// Starts the worker on the current tokio runtime.
    pub fn spawn(config: WebhookConfig) -> Result<Self> {
        let http = client(config.timeouts, true)?;
        let (tx, mut rx) = mpsc::channel::<Delivery>(config.queue.max(1));
        let reports: Reports = Arc::default();
        let sender = Self {
            tx,
            allow: config.allow.clone(),
            reports: reports.clone(),
            waker: config.waker.clone(),
        };
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        tokio::spawn(async move {
            while let Some(delivery) = rx.recv().await {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let http = http.clone();
                let reports = reports.clone();
                let config = config.clone();
                tokio::spawn(async move {
                    let result = post_with_retries(&http, &delivery, &config).await;
                    if let Err(e) = &result {
                        tracing::warn!(rollout = %delivery.key, error = %e, "failed to deliver a webhook");
                    }
                    record(
                        &reports,
                        config.waker.as_ref(),
                        &delivery.key,
                        result.map_err(|e| e.to_string()),
                    );
                    drop(permit);
                });
            }
        });
        Ok(sender)
    }

    /// Queues one POST per (event, target whose triggers include it); returns how many were
    /// queued. Refused URLs and a full queue are recorded in the report, never block.
    pub fn send(
        &self,
        snapshot: &RolloutSnapshot,
        events: &[WebhookTrigger],
        targets: &[WebhookTarget],
    ) -> usize {
        let now = Utc::now();
        let mut queued = 0;
        for event in events {
            for target in targets {
                if !target.triggers.is_empty() && !target.triggers.contains(event) {
                    continue;
                }
                let url = match self.allow.check(&target.url) {
                    Ok(url) => url,
                    Err(e) => {
                        record(
                            &self.reports,
                            self.waker.as_ref(),
                            &snapshot.key,
                            Err(e.to_string()),
                        );
                        continue;
                    }
                };
                let delivery = Delivery {
                    key: snapshot.key.clone(),
                    url,
                    bearer: target.bearer.clone(),
                    payload: WebhookPayload::new(event, snapshot, now),
                };
                match self.tx.try_send(delivery) {
                    Ok(()) => queued += 1,
                    Err(_) => record(
                        &self.reports,
                        self.waker.as_ref(),
                        &snapshot.key,
                        Err(Error::QueueFull { what: "a webhook" }.to_string()),
                    ),
                }
            }
        }
        queued
    }

    /// The latest report of a rollout's webhooks.
    pub fn report(&self, key: &RolloutKey) -> Option<WebhookReport> {
        lock(&self.reports).get(key).cloned()
    }
}

async fn post_with_retries(
    http: &reqwest::Client,
    d: &Delivery,
    config: &WebhookConfig,
) -> Result<()> {
    let what = format!("webhook {}", d.url.host_str().unwrap_or_default());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = http
            .post(d.url.clone())
            .header("X-Sroll-Trigger", d.payload.trigger.as_str())
            .json(&d.payload);
        if let Some(token) = &d.bearer {
            request = request.bearer_auth(token.expose());
        }
        let result = match request.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => Err(Error::Status {
                what: what.clone(),
                status: r.status().as_u16(),
                retry_after: crate::http::retry_after(r.headers()),
            }),
            Err(e) => Err(Error::transport(&what, &e)),
        };
        match result {
            Err(e) if e.is_retryable() && attempt < config.attempts.max(1) => {
                let wait = e
                    .retry_after()
                    .unwrap_or_else(|| backoff(attempt, config.retry_base, config.retry_base * 8));
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
            }
            other => return other,
        }
    }
}
