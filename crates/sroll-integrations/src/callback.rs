//! The release callback (`spec.bapi`): one POST per (stage id, outcome) when a rollout reaches
//! `RolloutDone` or `RolloutFailed`.
//!
//! Exactly once across operator restarts is a joint contract:
//! 1. the operator calls [`Callbacks::deliver`] on every reconcile of a terminal rollout whose
//!    `status.lastCallbackStageId`/`lastCallbackOutcome` differ from (`bapi.stageId`, outcome) —
//!    the call returns at once with the delivery's [`CallbackState`];
//! 2. only when it returns [`CallbackState::Delivered`] (a 2xx) does the operator write
//!    `lastCallbackStageId`/`lastCallbackOutcome`, then calls [`Callbacks::acknowledge`].
//!
//! A restart between the 2xx and the status write re-sends the same body with the same
//! `Idempotency-Key` header (derived from namespace, name, stage id and outcome only), so the
//! receiver can drop the repeat. Retries use exponential back-off with jitter until `deadline`,
//! then [`CallbackState::Failed`]. Only hosts on the allowlist are called
//! ([`CallbackState::Refused`] otherwise); link-local and metadata addresses are never called.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use sroll_api::{BuildMetadata, sync::lock};
use tokio::{sync::Semaphore, time::Instant};

use crate::{
    AnalysisSnapshot, Error, Outcome, Result, RolloutKey, RolloutSnapshot, Waker,
    allow::HostAllowlist,
    http::{Timeouts, backoff, client, retry_after},
};

/// Name of the idempotency header sent with every callback.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The JSON body of the callback (documented in `docs/notifications.md`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    /// `spec.bapi.stageId`.
    pub stage_id: String,
    /// `spec.rolloutIdentity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_identity: Option<String>,
    /// `RolloutDone`, `RolloutFailed` or `RolloutAborted`.
    pub outcome: Outcome,
    /// Why: the status reason; for `RolloutAborted`, the analysis' message (metric, last values,
    /// limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The analysis and its measurements, when the rollout has analysis steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSnapshot>,
    /// `status.percentDeployed`.
    pub percent_deployed: i32,
    /// `spec.percent`.
    pub percent: i32,
    /// StatefulSet revisions: rolled from, rolled to.
    pub revisions: Revisions,
    /// Images: rolled from, rolled to.
    pub images: Images,
    /// Build metadata (branch, commit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_metadata: Option<BuildMetadata>,
    /// Namespace of the rollout.
    pub namespace: String,
    /// Name of the rollout.
    pub name: String,
    /// Cluster name (`--cluster-name`).
    pub cluster: String,
    /// When the body was built (RFC 3339, UTC).
    pub timestamp: String,
}

/// Revisions in a callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Revisions {
    /// Revision rolled away from.
    pub from: Option<String>,
    /// Revision rolled to.
    pub to: Option<String>,
}

/// Images in a callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Images {
    /// Image rolled away from.
    pub from: Option<String>,
    /// Image rolled to.
    pub to: Option<String>,
}

impl CallbackBody {
    /// The body for a terminal or aborted snapshot; `None` otherwise.
    pub fn new(stage_id: &str, snapshot: &RolloutSnapshot) -> Option<Self> {
        let outcome = snapshot.outcome()?;
        // An abort's status reason also tells how far its rollback got, which changes while it
        // runs; the analysis' message does not.
        let reason = match outcome {
            Outcome::Aborted => snapshot
                .analysis
                .as_ref()
                .and_then(|a| a.message.clone())
                .or_else(|| snapshot.reason.clone()),
            Outcome::Done | Outcome::Failed => snapshot.reason.clone(),
        };
        Some(Self {
            stage_id: stage_id.to_owned(),
            rollout_identity: snapshot.rollout_identity.clone(),
            outcome,
            reason,
            analysis: snapshot.analysis.clone(),
            percent_deployed: snapshot.percent_deployed,
            percent: snapshot.percent,
            revisions: Revisions {
                from: snapshot.from.revision.clone(),
                to: snapshot.to.revision.clone(),
            },
            images: Images {
                from: snapshot.from.image.clone(),
                to: snapshot.to.image.clone(),
            },
            build_metadata: snapshot.build.clone(),
            namespace: snapshot.key.namespace.clone(),
            name: snapshot.key.name.clone(),
            cluster: snapshot.cluster.clone(),
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }
}

/// One callback to deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackRequest {
    /// Which rollout.
    pub key: RolloutKey,
    /// `spec.bapi.url`.
    pub url: String,
    /// The body (its `stageId` and `outcome` identify the delivery).
    pub body: CallbackBody,
}

impl CallbackRequest {
    /// The `Idempotency-Key` of this delivery: stable across retries and operator restarts.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.key, &self.body.stage_id, self.body.outcome)
    }
}

/// `sroll-` + hex SHA-256 of namespace, name, stage id and outcome (NUL-separated).
pub fn idempotency_key(key: &RolloutKey, stage_id: &str, outcome: Outcome) -> String {
    let text = format!(
        "{}\0{}\0{}\0{}",
        key.namespace,
        key.name,
        stage_id,
        outcome.as_str()
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sroll-{hex}")
}

/// Where one delivery stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackState {
    /// Being delivered (or waiting to retry).
    Pending {
        /// Attempts made so far.
        attempts: u32,
        /// The last attempt's error.
        last_error: Option<String>,
    },
    /// Answered with a 2xx: now write `status.lastCallbackStageId`/`lastCallbackOutcome`.
    Delivered {
        /// The HTTP status.
        status: u16,
        /// Attempts it took.
        attempts: u32,
    },
    /// Gave up (deadline passed or a permanent 4xx): show `CallbackDelivered=False`.
    Failed {
        /// Why, with the last error.
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Never called: the URL is invalid or its host is not allowed.
    Refused {
        /// Why, naming the host and the allowlist.
        reason: String,
    },
}

impl CallbackState {
    /// The delivery is over (delivered, failed or refused).
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Pending { .. })
    }

    /// The `CallbackDelivered` condition for this state: (`"True"`/`"False"`/`"Unknown"`, reason,
    /// message). Reasons are in [`crate::reasons`].
    pub fn condition(&self) -> (&'static str, &'static str, String) {
        use crate::reasons::*;
        match self {
            Self::Pending {
                attempts,
                last_error,
            } => (
                "Unknown",
                CALLBACK_PENDING,
                match last_error {
                    Some(e) => {
                        format!("delivering the release callback: attempt {attempts} failed: {e}")
                    }
                    None => "delivering the release callback".into(),
                },
            ),
            Self::Delivered { status, attempts } => (
                "True",
                CALLBACK_DELIVERED,
                format!(
                    "the release callback was answered with HTTP {status} after {attempts} attempt(s)"
                ),
            ),
            Self::Failed { reason, .. } => ("False", CALLBACK_FAILED, reason.clone()),
            Self::Refused { reason } => ("False", CALLBACK_REFUSED, reason.clone()),
        }
    }
}

/// Settings of the callback sender.
#[derive(Clone)]
pub struct CallbackConfig {
    /// Hosts that may be called (`--callback-allow`).
    pub allow: HostAllowlist,
    /// Timeouts of each attempt.
    pub timeouts: Timeouts,
    /// Give up after this long (10 min).
    pub deadline: Duration,
    /// First retry delay (1 s), doubled per attempt with jitter, up to `retry_cap` (60 s).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// Attempts in flight at once (16); further deliveries wait their turn.
    pub concurrency: usize,
    /// Called when a delivery's state becomes final.
    pub waker: Option<Waker>,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            allow: HostAllowlist::default(),
            timeouts: Timeouts::default(),
            deadline: Duration::from_secs(600),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(60),
            concurrency: 16,
            waker: None,
        }
    }
}

type Id = (RolloutKey, String, Outcome);

/// The callback façade; cheap to clone.
#[derive(Clone)]
pub struct Callbacks {
    http: reqwest::Client,
    config: CallbackConfig,
    states: Arc<Mutex<HashMap<Id, CallbackState>>>,
    permits: Arc<Semaphore>,
}

impl Callbacks {
    /// A sender with `config`; deliveries run on the current tokio runtime.
    pub fn new(config: CallbackConfig) -> Result<Self> {
        Ok(Self {
            http: client(config.timeouts, true)?,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            states: Arc::default(),
        })
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<Id, CallbackState>> {
        lock(&self.states)
    }

    /// Starts delivering `request` unless this (rollout, stage id, outcome) is already known;
    /// returns its current state at once.
    pub fn deliver(&self, request: CallbackRequest) -> CallbackState {
        let id: Id = (
            request.key.clone(),
            request.body.stage_id.clone(),
            request.body.outcome,
        );
        let mut states = self.states();
        if let Some(state) = states.get(&id) {
            return state.clone();
        }
        let url = match self.config.allow.check(&request.url) {
            Ok(url) => url,
            Err(e) => {
                let state = CallbackState::Refused {
                    reason: e.to_string(),
                };
                tracing::warn!(rollout = %request.key, error = %e, "refused a release callback");
                states.insert(id, state.clone());
                return state;
            }
        };
        let state = CallbackState::Pending {
            attempts: 0,
            last_error: None,
        };
        states.insert(id.clone(), state.clone());
        drop(states);
        let this = self.clone();
        tokio::spawn(async move {
            let final_state = this.run(&id, url, &request).await;
            this.states().insert(id.clone(), final_state);
            if let Some(waker) = &this.config.waker {
                waker(&id.0);
            }
        });
        state
    }

    /// The state of one delivery, if known to this process.
    pub fn state(
        &self,
        key: &RolloutKey,
        stage_id: &str,
        outcome: Outcome,
    ) -> Option<CallbackState> {
        self.states()
            .get(&(key.clone(), stage_id.to_owned(), outcome))
            .cloned()
    }

    /// Forgets the final deliveries of a rollout (its status now records them, or it was deleted).
    /// A pending delivery is kept: it finishes, and its result is read on a later reconcile.
    pub fn acknowledge(&self, key: &RolloutKey) {
        self.states()
            .retain(|(k, _, _), s| k != key || !s.is_final());
    }

    async fn run(&self, id: &Id, url: reqwest::Url, request: &CallbackRequest) -> CallbackState {
        let Ok(_permit) = self.permits.acquire().await else {
            return CallbackState::Failed {
                reason: "failed to deliver the callback: the sender shut down".into(),
                attempts: 0,
            };
        };
        let started = Instant::now();
        let deadline = started + self.config.deadline;
        let key = request.idempotency_key();
        let what = format!("release callback {}", url.host_str().unwrap_or_default());
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let result = self
                .http
                .post(url.clone())
                .header(IDEMPOTENCY_HEADER, &key)
                .json(&request.body)
                .send()
                .await;
            let error = match result {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(rollout = %id.0, stage = %id.1, outcome = %id.2, attempts, "release callback delivered");
                    return CallbackState::Delivered {
                        status: r.status().as_u16(),
                        attempts,
                    };
                }
                Ok(r) => Error::Status {
                    what: what.clone(),
                    status: r.status().as_u16(),
                    retry_after: retry_after(r.headers()),
                },
                Err(e) => Error::transport(&what, &e),
            };
            if !error.is_retryable() {
                return CallbackState::Failed {
                    reason: format!("{error} (not retried: the receiver refused the request)"),
                    attempts,
                };
            }
            let wait = error
                .retry_after()
                .unwrap_or_else(|| backoff(attempts, self.config.retry_base, self.config.retry_cap))
                .min(self.config.retry_cap);
            if Instant::now() + wait > deadline {
                return CallbackState::Failed {
                    reason: format!(
                        "gave up after {attempts} attempts in {}s: {error}",
                        started.elapsed().as_secs()
                    ),
                    attempts,
                };
            }
            self.states().insert(
                id.clone(),
                CallbackState::Pending {
                    attempts,
                    last_error: Some(error.to_string()),
                },
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_depends_on_stage_and_outcome_only() {
        let k = RolloutKey::new("ns", "app");
        let a = idempotency_key(&k, "stage-1", Outcome::Done);
        assert_eq!(a, idempotency_key(&k, "stage-1", Outcome::Done));
        assert_ne!(a, idempotency_key(&k, "stage-1", Outcome::Failed));
        assert_ne!(a, idempotency_key(&k, "stage-2", Outcome::Done));
        assert_ne!(
            a,
            idempotency_key(&RolloutKey::new("ns", "other"), "stage-1", Outcome::Done)
        );
        assert!(a.starts_with("sroll-") && a.len() == 6 + 64, "{a}");
    }
}
