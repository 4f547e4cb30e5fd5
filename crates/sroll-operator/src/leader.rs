//! Leader election through a `coordination.k8s.io/v1` Lease, with client-go's semantics
//! (k8s.io/client-go/tools/leaderelection/leaderelection.go, `tryAcquireOrRenew`):
//!
//! - a candidate takes the lease when it does not exist, has no holder, or its record has not
//!   changed for `leaseDuration` *as observed locally* (client-go compares the local time at which it
//!   last saw the record change, not the remote `renewTime`, so clock skew between replicas does not
//!   matter);
//! - the leader renews every `retryPeriod`; if no renewal succeeds for `renewDeadline` it has lost
//!   the lease and must stop acting at once;
//! - writes use the lease's `resourceVersion` (optimistic concurrency), so two candidates never both
//!   win;
//! - on graceful shutdown the leader releases the lease (empty holder, duration 1 s), as client-go
//!   does with `ReleaseOnCancel`, so a standby takes over without waiting for the lease to lapse.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};

use crate::{Error, Result};

/// Leader-election settings.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (unique per process).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

/// The last lease record seen and when (locally) it last changed.
#[derive(Debug, Clone)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    at: Instant,
}

/// One replica's participation in leader election.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
}

impl LeaderElector {
    /// A candidate for the lease described by `settings`.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    fn lease_err(&self, action: &'static str) -> impl FnOnce(kube::Error) -> Error + '_ {
        move |source| Error::Lease {
            action,
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            source,
        }
    }

    fn record(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let me = &self.settings.identity;
        let was_mine = previous.and_then(|p| p.holder_identity.as_ref()) == Some(me);
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(me.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.settings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: if was_mine {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if was_mine || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to acquire or renew; `Ok(true)` when this replica holds the lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let now = Timestamp::now();
        let existing = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(self.lease_err("get"))?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.record(None, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observe(lease.spec.as_ref());
                    Ok(true)
                }
                Err(e) if crate::error::api_code(&e) == Some(409) => Ok(false),
                Err(e) => Err(self.lease_err("create")(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        self.observe(Some(&spec));
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.settings.identity.as_str());
        if !mine && holder.is_some() {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.settings.lease_duration, Duration::from_secs);
            let seen = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
            if seen.elapsed() < duration {
                return Ok(false);
            }
        }
        lease.spec = Some(self.record(Some(&spec), now));
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(written.spec.as_ref());
                Ok(true)
            }
            Err(e) if crate::error::api_code(&e) == Some(409) => Ok(false),
            Err(e) => Err(self.lease_err("renew")(e)),
        }
    }

    fn observe(&mut self, spec: Option<&LeaseSpec>) {
        let holder = spec.and_then(|s| s.holder_identity.clone());
        let renew_time = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew_time != renew_time);
        if changed {
            self.observed = Some(Observed {
                holder,
                renew_time,
                at: Instant::now(),
            });
        }
    }

    /// Waits until this replica holds the lease (`Ok(true)`) or `shutdown` turns true
    /// (`Ok(false)`). API errors are logged and retried: a candidate never gives up.
    pub async fn acquire(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<bool> {
        loop {
            if *shutdown.borrow() {
                return Ok(false);
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(
                        lease = %self.settings.name,
                        identity = %self.settings.identity,
                        "acquired the leader-election lease"
                    );
                    return Ok(true);
                }
                Ok(false) => {
                    tracing::debug!(
                        holder = ?self.observed.as_ref().and_then(|o| o.holder.clone()),
                        "the lease is held by another replica; standing by"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.retry_period) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Renews the lease every `retryPeriod` until `stop` turns true (`Ok(())`) or renewal fails for
    /// `renewDeadline` (`Err(LeadershipLost)`).
    pub async fn hold(&mut self, stop: &mut watch::Receiver<bool>) -> Result<()> {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.retry_period) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return Ok(());
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::error!("another replica took the leader-election lease");
                    return Err(Error::LeadershipLost(self.settings.renew_deadline));
                }
                Err(e) => tracing::warn!(error = %e, "failed to renew the lease; retrying"),
            }
            if last_renewed.elapsed() >= self.settings.renew_deadline {
                return Err(Error::LeadershipLost(self.settings.renew_deadline));
            }
        }
    }

    /// Gives the lease up (empty holder, 1 s duration) if this replica still holds it.
    pub async fn release(&mut self) -> Result<()> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(self.lease_err("get"))?
        else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: spec.lease_transitions,
            ..LeaseSpec::default()
        });
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map_err(self.lease_err("release"))?;
        tracing::info!(lease = %self.settings.name, "released the leader-election lease");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{
        Json, Router,
        extract::State,
        http::StatusCode,
        response::{IntoResponse, Response},
        routing::get,
    };
    use serde_json::{Value, json};

    use super::*;

    type Slot = Arc<Mutex<Option<Value>>>;

    fn status(code: StatusCode, reason: &str) -> Response {
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": reason, "reason": reason, "code": code.as_u16()});
        (code, Json(body)).into_response()
    }

    /// One Lease object with optimistic concurrency, like the API server's.
    fn fake_lease_api() -> Client {
        let slot: Slot = Arc::default();
        let router = Router::new()
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases",
                axum::routing::post(
                    |State(slot): State<Slot>, Json(mut body): Json<Value>| async move {
                        let mut s = slot.lock().expect("lock");
                        if s.is_some() {
                            return status(StatusCode::CONFLICT, "AlreadyExists");
                        }
                        body["metadata"]["resourceVersion"] = json!("1");
                        *s = Some(body.clone());
                        (StatusCode::CREATED, Json(body)).into_response()
                    },
                ),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/sroll",
                get(|State(slot): State<Slot>| async move {
                    match slot.lock().expect("lock").clone() {
                        Some(v) => Json(v).into_response(),
                        None => status(StatusCode::NOT_FOUND, "NotFound"),
                    }
                })
                .put(
                    |State(slot): State<Slot>, Json(mut body): Json<Value>| async move {
                        let mut s = slot.lock().expect("lock");
                        let Some(current) = s.as_ref() else {
                            return status(StatusCode::NOT_FOUND, "NotFound");
                        };
                        let rv: u64 = current["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if body["metadata"]["resourceVersion"] != json!(rv.to_string()) {
                            return status(StatusCode::CONFLICT, "Conflict");
                        }
                        body["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
                        *s = Some(body.clone());
                        Json(body).into_response()
                    },
                ),
            )
            .with_state(slot);
        Client::new(router, "ops")
    }

    fn candidate(client: &Client, identity: &str) -> LeaderElector {
        LeaderElector::new(
            client.clone(),
            LeaseSettings {
                name: "sroll".into(),
                namespace: "ops".into(),
                identity: identity.into(),
                lease_duration: Duration::from_secs(1),
                renew_deadline: Duration::from_millis(800),
                retry_period: Duration::from_millis(100),
            },
        )
    }

    #[tokio::test]
    async fn only_one_candidate_holds_the_lease_until_it_releases_it() {
        let client = fake_lease_api();
        let mut a = candidate(&client, "a");
        let mut b = candidate(&client, "b");
        assert!(a.try_acquire_or_renew().await.expect("api"));
        assert!(!b.try_acquire_or_renew().await.expect("api"));
        assert!(a.try_acquire_or_renew().await.expect("renewal"));
        a.release().await.expect("release");
        assert!(
            b.try_acquire_or_renew().await.expect("api"),
            "a released lease is free at once"
        );
        assert!(!a.try_acquire_or_renew().await.expect("api"));
    }

    #[tokio::test]
    async fn a_standby_takes_over_only_after_the_lease_lapses() {
        let client = fake_lease_api();
        let mut a = candidate(&client, "a");
        let mut b = candidate(&client, "b");
        assert!(a.try_acquire_or_renew().await.expect("api"));
        // `a` stops renewing (it crashed). `b` must wait a full lease duration from when it first
        // saw the record, then take over.
        let (_tx, mut rx) = watch::channel(false);
        let started = Instant::now();
        assert!(b.acquire(&mut rx).await.expect("acquire"));
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "took over early"
        );
        // `a` notices it lost the lease when it tries to renew.
        let (_tx, mut rx) = watch::channel(false);
        let lost = a.hold(&mut rx).await;
        assert!(matches!(lost, Err(Error::LeadershipLost(_))), "{lost:?}");
    }
}
