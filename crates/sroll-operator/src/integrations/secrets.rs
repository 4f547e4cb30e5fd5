//! The Secret values the integrations use (the Slack bot token, webhook bearer tokens, Consul ACL
//! tokens), kept in memory and refreshed in the background.
//!
//! **Why GET and not a watch.** A watch needs `list` and `watch` on Secrets. The names are the
//! users' choice (any Secret of a rollout's namespace), so RBAC cannot narrow those verbs to them:
//! the operator's ClusterRole would let its credentials enumerate and stream every Secret of the
//! cluster, and a `Store<Secret>` would hold all their values in memory. With `get` alone (what
//! `deploy/rbac-cluster.yaml` grants) a Secret can only be read by name, and only the keys the
//! rollouts name are kept here. A per-name watch (`fieldSelector=metadata.name=…`) would still
//! need the cluster-wide `list`/`watch` grant.
//!
//! **Off the reconcile path.** [`Secrets::peek`] answers from memory only: a key never read
//! before is registered and answered "not known yet" ([`Peek::Pending`]); the refresher reads it
//! at once and wakes the rollouts that asked ([`Waker`]). The refresher re-reads every key in use
//! every [`SECRET_TTL`] (a rotated token is used within that time, as with the former per-use
//! cache) and forgets keys nobody asked for in [`IDLE_AFTER`]. [`Secrets::get`] is for hand-overs
//! that must not go out without their token (a webhook's bearer token, the Slack token): it awaits
//! the first read of a key never read before — once per key and process — and answers from
//! memory afterwards.
//!
//! Values never reach logs, the status or events.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use sroll_api::sync::lock;
use sroll_integrations::{RolloutKey, Waker};
use tokio::sync::Notify;

use super::SecretLocation;

/// How long a Secret value is used before the refresher reads it again.
pub const SECRET_TTL: Duration = Duration::from_secs(60);

/// A key nobody asked for in this long is forgotten (its next use reads it again).
const IDLE_AFTER: Duration = Duration::from_secs(600);

/// What memory holds for a Secret key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peek {
    /// Read: the value (`None`: the Secret or the key does not exist, or could not be read).
    Known(Option<String>),
    /// Never read yet: the refresher reads it now and wakes the rollout that asked.
    Pending,
}

#[derive(Debug, Default)]
struct Entry {
    /// The last read: when, and the value.
    read: Option<(Instant, Option<String>)>,
    /// When a reconcile last asked for it.
    last_used: Option<Instant>,
    /// Rollouts waiting for its first read.
    waiting: HashSet<RolloutKey>,
}

struct State {
    client: Client,
    entries: Mutex<HashMap<SecretLocation, Entry>>,
    /// Wakes the refresher (a key to read at once).
    wake: Arc<Notify>,
    /// Serializes first reads, so that concurrent [`Secrets::get`] of one new key read it once.
    first_read: tokio::sync::Mutex<()>,
    waker: Option<Waker>,
}

/// The Secret values in use; cheap to clone.
#[derive(Clone)]
pub struct Secrets {
    state: Arc<State>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").finish_non_exhaustive()
    }
}

impl Secrets {
    /// Starts the refresher on the current tokio runtime (it stops when the last handle drops).
    pub fn spawn(client: Client, waker: Option<Waker>) -> Self {
        let state = Arc::new(State {
            client,
            entries: Mutex::default(),
            wake: Arc::new(Notify::new()),
            first_read: tokio::sync::Mutex::new(()),
            waker,
        });
        tokio::spawn(refresh_loop(Arc::downgrade(&state)));
        Self { state }
    }

    /// The value of `loc` from memory, or [`Peek::Pending`] the first time (then `rollout` is
    /// woken once it is read). Never waits.
    pub fn peek(&self, loc: &SecretLocation, rollout: &RolloutKey) -> Peek {
        let mut entries = lock(&self.state.entries);
        let entry = entries.entry(loc.clone()).or_default();
        entry.last_used = Some(Instant::now());
        match &entry.read {
            Some((_, value)) => Peek::Known(value.clone()),
            None => {
                entry.waiting.insert(rollout.clone());
                drop(entries);
                self.state.wake.notify_one();
                Peek::Pending
            }
        }
    }

    /// The value of `loc`: from memory, or read now if it was never read (once per key).
    pub async fn get(&self, loc: &SecretLocation) -> Option<String> {
        if let Some(value) = self.known(loc) {
            return value;
        }
        let _one = self.state.first_read.lock().await;
        if let Some(value) = self.known(loc) {
            return value;
        }
        read_into(&self.state, loc).await
    }

    /// Registers `loc` for reading in the background (e.g. the Slack token at start-up).
    pub fn prefetch(&self, loc: &SecretLocation) {
        lock(&self.state.entries)
            .entry(loc.clone())
            .or_default()
            .last_used = Some(Instant::now());
        self.state.wake.notify_one();
    }

    /// The value in memory, if `loc` was read (an unknown key is not registered: the caller reads
    /// it, and [`read_into`] records it).
    fn known(&self, loc: &SecretLocation) -> Option<Option<String>> {
        let mut entries = lock(&self.state.entries);
        let entry = entries.get_mut(loc)?;
        entry.last_used = Some(Instant::now());
        entry.read.as_ref().map(|(_, value)| value.clone())
    }
}

/// Reads `loc` with GET, records the value and wakes the rollouts waiting for it.
async fn read_into(state: &State, loc: &SecretLocation) -> Option<String> {
    let value = read(&state.client, loc).await;
    let waiting = {
        let mut entries = lock(&state.entries);
        let entry = entries.entry(loc.clone()).or_default();
        let changed = entry.read.as_ref().is_none_or(|(_, v)| *v != value);
        entry.read = Some((Instant::now(), value.clone()));
        entry.last_used.get_or_insert_with(Instant::now);
        let waiting = std::mem::take(&mut entry.waiting);
        if changed { waiting } else { HashSet::new() }
    };
    if let Some(waker) = &state.waker {
        for key in &waiting {
            waker(key);
        }
    }
    value
}

/// The value of one key of a Secret (`data`, else `stringData`); `None` if it cannot be read.
async fn read(client: &Client, loc: &SecretLocation) -> Option<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &loc.namespace);
    match api.get_opt(&loc.name).await {
        Ok(secret) => secret.and_then(|s| {
            s.data
                .and_then(|d| {
                    d.get(&loc.key)
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                })
                .or_else(|| s.string_data.and_then(|d| d.get(&loc.key).cloned()))
        }),
        Err(e) => {
            tracing::warn!(namespace = %loc.namespace, secret = %loc.name, error = %e, "failed to read a Secret");
            None
        }
    }
}

/// Reads every key never read and every key read more than [`SECRET_TTL`] ago, one at a time;
/// forgets idle keys; sleeps until the next one is due or a new key arrives.
async fn refresh_loop(state: Weak<State>) {
    loop {
        let Some(state) = state.upgrade() else { return };
        let now = Instant::now();
        let (due, next) = {
            let mut entries = lock(&state.entries);
            entries.retain(|_, e| {
                !e.waiting.is_empty()
                    || e.last_used
                        .is_some_and(|t| now.duration_since(t) < IDLE_AFTER)
            });
            let due: Vec<SecretLocation> = entries
                .iter()
                .filter(|(_, e)| {
                    e.read
                        .as_ref()
                        .is_none_or(|(at, _)| now.duration_since(*at) >= SECRET_TTL)
                })
                .map(|(loc, _)| loc.clone())
                .collect();
            let next = entries
                .values()
                .filter_map(|e| e.read.as_ref().map(|(at, _)| *at + SECRET_TTL))
                .min();
            (due, next)
        };
        for loc in &due {
            read_into(&state, loc).await;
        }
        if !due.is_empty() {
            continue;
        }
        let sleep = next.map_or(SECRET_TTL, |at| {
            at.saturating_duration_since(Instant::now())
        });
        let wake = state.wake.clone();
        drop(state);
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(sleep.max(Duration::from_millis(10))) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::{Json, Router, extract::State, routing::get};
    use serde_json::json;

    use super::*;

    /// An API server with one Secret `ns/tokens` (key `slack` = `xoxb-1`), counting its reads.
    fn api(reads: Arc<AtomicUsize>) -> Client {
        let router = Router::new()
            .route(
                "/api/v1/namespaces/ns/secrets/tokens",
                get(|State(reads): State<Arc<AtomicUsize>>| async move {
                    reads.fetch_add(1, Ordering::SeqCst);
                    Json(json!({
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "tokens", "namespace": "ns"},
                        "data": {"slack": "eG94Yi0x"},
                    }))
                }),
            )
            .with_state(reads);
        Client::new(router, "ns")
    }

    fn loc(key: &str) -> SecretLocation {
        SecretLocation {
            namespace: "ns".into(),
            name: "tokens".into(),
            key: key.into(),
        }
    }

    #[tokio::test]
    async fn a_key_never_read_is_pending_until_the_background_read_wakes_the_rollout() {
        let reads = Arc::new(AtomicUsize::new(0));
        let (tx, mut woken) = tokio::sync::mpsc::unbounded_channel();
        let waker: Waker = Arc::new(move |key: &RolloutKey| {
            let _ = tx.send(key.clone());
        });
        let secrets = Secrets::spawn(api(reads.clone()), Some(waker));
        let rollout = RolloutKey::new("ns", "web");
        assert_eq!(secrets.peek(&loc("slack"), &rollout), Peek::Pending);
        let key = tokio::time::timeout(Duration::from_secs(5), woken.recv())
            .await
            .expect("woken within 5 s");
        assert_eq!(key, Some(rollout.clone()));
        assert_eq!(
            secrets.peek(&loc("slack"), &rollout),
            Peek::Known(Some("xoxb-1".into()))
        );
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "read once, in the background"
        );
    }

    #[tokio::test]
    async fn a_hand_over_reads_a_new_key_once_then_from_memory() {
        let reads = Arc::new(AtomicUsize::new(0));
        let secrets = Secrets::spawn(api(reads.clone()), None);
        let slack = loc("slack");
        let (a, b) = tokio::join!(secrets.get(&slack), secrets.get(&slack));
        assert_eq!(
            (a.as_deref(), b.as_deref()),
            (Some("xoxb-1"), Some("xoxb-1"))
        );
        assert_eq!(secrets.get(&loc("missing")).await, None, "no such key");
        let before = reads.load(Ordering::SeqCst);
        for _ in 0..10 {
            assert_eq!(secrets.get(&loc("slack")).await.as_deref(), Some("xoxb-1"));
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            before,
            "later uses within the TTL come from memory"
        );
        assert_eq!(before, 2, "one read per key");
    }
}
