//! Service-discovery health: which configured services exist, and which pod addresses are
//! passing — from Consul ([`consul`]) or from Kubernetes EndpointSlices ([`endpointslice`]), in
//! the same [`DiscoveryHealth`] shape so the planner gates on either.
//!
//! Gating rule: a pod is healthy in discovery when it passes in **every** configured service that
//! exists; when none exists the result does not gate ([`ServiceHealth::gates`] is false and the
//! operator reports it). An unreachable Consul is a distinct result ([`DiscoveryHealth::Unreachable`]):
//! the planner then never evicts more.
//!
//! [`Discovery`] polls Consul in the background for the rollouts that asked recently;
//! [`Discovery::observe`] returns the latest result at once.

pub mod consul;
pub mod endpointslice;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use sroll_api::sync::lock;
use tokio::{sync::Notify, task::JoinSet, time::Instant};

pub use self::consul::{ConsulClient, ConsulQuery};
use crate::{Result, RolloutKey, Waker, http::Timeouts};

/// The health of one configured service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// The service is registered (Consul catalog) / has EndpointSlices (Kubernetes).
    pub exists: bool,
    /// Addresses (pod IPs) with every health check passing / ready endpoints.
    pub passing_addresses: BTreeSet<String>,
    /// Pod names of ready endpoints (Kubernetes only: from `targetRef`).
    pub passing_pods: BTreeSet<String>,
}

/// Health of the configured services, as read from a reachable discovery system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceHealth {
    /// Per configured service name.
    pub services: BTreeMap<String, ServiceState>,
}

impl ServiceHealth {
    /// The configured services that exist, sorted: `status.consulServices`.
    pub fn existing_services(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, s)| s.exists)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether the result can gate the rollout: at least one configured service exists.
    pub fn gates(&self) -> bool {
        self.services.values().any(|s| s.exists)
    }

    /// Whether a pod (by name and IP) passes in every existing configured service. `false` when
    /// nothing exists (check [`Self::gates`] first).
    pub fn is_healthy(&self, pod_name: &str, pod_ip: Option<&str>) -> bool {
        self.gates()
            && self.services.values().filter(|s| s.exists).all(|s| {
                s.passing_pods.contains(pod_name)
                    || pod_ip.is_some_and(|ip| s.passing_addresses.contains(ip))
            })
    }

    /// How many of `pods` (name, IP) are healthy: `status.readyReplicasServiceDiscovery`.
    pub fn count_healthy<'a>(
        &self,
        pods: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> usize {
        pods.into_iter()
            .filter(|(name, ip)| self.is_healthy(name, *ip))
            .count()
    }
}

/// Result of one discovery read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryHealth {
    /// The discovery system answered.
    Reachable(ServiceHealth),
    /// It did not (or refused us): hold the rollout, evict nothing more.
    Unreachable {
        /// What failed, without credentials.
        reason: String,
    },
}

/// The latest poll result for a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The health read.
    pub health: DiscoveryHealth,
    /// When it was read.
    pub at: Instant,
}

impl Observation {
    /// This observation, or — when it is older than `max_age` at `now` — the same one with the
    /// health unreachable. Polls are due every interval and take milliseconds; an older answer
    /// means the poll in flight hangs (each may take up to the client's 15 s timeout), and what
    /// Consul says about the pods may have changed since: it must not gate evictions any more.
    /// Found by chaos scenario 7 (RELIABILITY.md): with Consul accepting connections and never
    /// answering, the operator went on evicting on a 20 s old answer.
    pub fn current(self, max_age: Duration, now: Instant) -> Self {
        let age = now.saturating_duration_since(self.at);
        if age <= max_age {
            return self;
        }
        Self {
            health: DiscoveryHealth::Unreachable {
                reason: format!(
                    "Consul has not answered for {} s; its last answer is too old to gate on",
                    age.as_secs()
                ),
            },
            at: self.at,
        }
    }
}

/// Settings of the background poller.
#[derive(Clone)]
pub struct DiscoveryConfig {
    /// Consul HTTP address (`--consul-addr`, e.g. `http://consul.consul:8500`); `None` makes every
    /// Consul query unreachable with a reason saying so.
    pub consul_addr: Option<String>,
    /// Time between polls of one rollout's services (5 s).
    pub interval: Duration,
    /// A rollout not observed for this long stops being polled (2 min).
    pub idle_after: Duration,
    /// Timeouts of each call.
    pub timeouts: Timeouts,
    /// Called when a rollout's result changes.
    pub waker: Option<Waker>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            consul_addr: None,
            interval: Duration::from_secs(5),
            idle_after: Duration::from_secs(120),
            timeouts: Timeouts::default(),
            waker: None,
        }
    }
}

struct Entry {
    query: ConsulQuery,
    last_seen: Instant,
    observation: Option<Observation>,
}

/// What the [`Discovery`] handles and the poll loop both reach: the rollouts' queries with
/// their latest answers, and the loop's wake-up.
struct PollerState {
    entries: Mutex<HashMap<RolloutKey, Entry>>,
    wake: Notify,
}

/// The discovery façade; cheap to clone.
#[derive(Clone)]
pub struct Discovery {
    state: Arc<PollerState>,
    configured: bool,
    /// Answers older than this no longer gate ([`Observation::current`]).
    max_age: Duration,
}

impl Discovery {
    /// Starts the poller on the current tokio runtime.
    pub fn spawn(config: DiscoveryConfig) -> Result<Self> {
        let client = config
            .consul_addr
            .as_deref()
            .map(|addr| ConsulClient::new(addr, config.timeouts))
            .transpose()?;
        let state = Arc::new(PollerState {
            entries: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        });
        let configured = client.is_some();
        let max_age = config.interval * 2 + Duration::from_secs(1);
        if let Some(client) = client {
            tokio::spawn(poll_loop(state.clone(), client, config));
        }
        Ok(Self {
            state,
            configured,
            max_age,
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<RolloutKey, Entry>> {
        lock(&self.state.entries)
    }

    /// The latest Consul health for the rollout's `query`, polling it from now on; `None` until
    /// the first poll of a new or changed query completes (the planner waits). An answer older
    /// than two poll intervals and a second comes back unreachable ([`Observation::current`]).
    pub fn observe(&self, key: &RolloutKey, query: ConsulQuery) -> Option<Observation> {
        if !self.configured {
            return Some(Observation {
                health: DiscoveryHealth::Unreachable {
                    reason: "no Consul address is configured (--consul-addr)".into(),
                },
                at: Instant::now(),
            });
        }
        let mut entries = self.entries();
        let now = Instant::now();
        match entries.get_mut(key) {
            Some(entry) if entry.query == query => {
                entry.last_seen = now;
                entry
                    .observation
                    .clone()
                    .map(|o| o.current(self.max_age, now))
            }
            _ => {
                entries.insert(
                    key.clone(),
                    Entry {
                        query,
                        last_seen: now,
                        observation: None,
                    },
                );
                drop(entries);
                self.state.wake.notify_one();
                None
            }
        }
    }

    /// Stops polling for a rollout.
    pub fn forget(&self, key: &RolloutKey) {
        self.entries().remove(key);
    }
}

/// Polls every due rollout's query, each on its own: a poll that hangs (up to the client's
/// timeout) holds back only its own rollout, never the refresh of the others. A rollout's next poll
/// starts once its previous one has answered and `interval` has passed.
async fn poll_loop(state: Arc<PollerState>, client: ConsulClient, config: DiscoveryConfig) {
    let mut polls = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, RolloutKey> = HashMap::new();
    let tick = config
        .interval
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(10));
    loop {
        let now = Instant::now();
        let due: Vec<(RolloutKey, ConsulQuery)> = {
            let mut entries = lock(&state.entries);
            entries.retain(|_, e| now.duration_since(e.last_seen) < config.idle_after);
            entries
                .iter()
                .filter(|(k, e)| {
                    !in_flight.values().any(|f| f == *k)
                        && e.observation
                            .as_ref()
                            .is_none_or(|o| now.duration_since(o.at) >= config.interval)
                })
                .map(|(k, e)| (k.clone(), e.query.clone()))
                .collect()
        };
        for (key, query) in due {
            let client = client.clone();
            let poll_key = key.clone();
            let handle = polls.spawn(async move {
                let health = client.health(&query).await;
                (poll_key, query, health)
            });
            in_flight.insert(handle.id(), key);
        }
        tokio::select! {
            Some(joined) = polls.join_next_with_id(), if !polls.is_empty() => {
                let (key, query, health) = match joined {
                    Ok((id, done)) => {
                        in_flight.remove(&id);
                        done
                    }
                    Err(e) => {
                        in_flight.remove(&e.id());
                        continue;
                    }
                };
                let changed = {
                    let mut entries = lock(&state.entries);
                    match entries.get_mut(&key) {
                        Some(entry) if entry.query == query => {
                            let changed = entry
                                .observation
                                .as_ref()
                                .is_none_or(|o| o.health != health);
                            entry.observation = Some(Observation {
                                health,
                                at: Instant::now(),
                            });
                            changed
                        }
                        _ => false,
                    }
                };
                if changed && let Some(waker) = &config.waker {
                    waker(&key);
                }
            }
            () = state.wake.notified() => {}
            () = tokio::time::sleep(tick) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_older_than_its_bound_is_unreachable() {
        let now = Instant::now();
        let healthy = DiscoveryHealth::Reachable(ServiceHealth::default());
        let answered = |ago: u64| Observation {
            health: healthy.clone(),
            at: now - Duration::from_secs(ago),
        };
        let bound = Duration::from_secs(11);
        assert_eq!(answered(4).current(bound, now).health, healthy);
        match answered(20).current(bound, now).health {
            DiscoveryHealth::Unreachable { reason } => assert!(
                reason.starts_with("Consul has not answered for 20 s"),
                "{reason}"
            ),
            other => panic!("a 20 s old answer gated: {other:?}"),
        }
    }
}
