//! Slack notifications: one message per rollout (per `rolloutIdentity`), updated in place as it
//! progresses, paginated at [`blocks::MAX_PODS_PER_MESSAGE`] pods per message.
//!
//! [`SlackNotifier::notify`] only stores the latest snapshot of the rollout in a coalescing slot
//! (latest state wins; at most `max_rollouts` slots) and wakes the background worker: the caller
//! never waits on Slack. The worker sends one request at a time: it posts missing pages in order,
//! then updates each page whose content changed, at most once per `min_update_interval` per
//! message; a 429 pauses every call for `Retry-After`; other errors back the rollout off
//! exponentially. Results — the message ids for `status.slackMessage`, the last error for a
//! condition — are read with [`SlackNotifier::report`].
//!
//! A restarted operator passes the ids from `status.slackMessage` in [`SlackTarget::existing`]:
//! the worker adopts them and updates those messages instead of posting new ones. (A crash between
//! Slack's answer to `chat.postMessage` and the status write can still post a page twice; the
//! operator narrows that window by writing status on the reconcile after the report changes.)

pub mod blocks;
pub mod client;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use sroll_api::{NotificationLevel, SlackMessage, WebhookTrigger, sync::lock};
use tokio::{sync::Notify, time::Instant};

use self::blocks::{MAX_PODS_PER_MESSAGE, Page};
pub use self::client::{DEFAULT_API_URL, PostedMessage, SlackClient};
use crate::{
    Error, Result, RolloutKey, RolloutSnapshot, SecretToken, Waker,
    http::{Timeouts, backoff},
    is_lifecycle,
};

/// Settings of the Slack notifier.
#[derive(Clone)]
pub struct SlackConfig {
    /// Base URL of the Web API (`--slack-api-url`), [`DEFAULT_API_URL`] by default.
    pub api_url: String,
    /// Bot token; without one nothing is sent and reports say so.
    pub token: Option<SecretToken>,
    /// Least time between two updates of one message (1 s).
    pub min_update_interval: Duration,
    /// Pods per message, at most [`MAX_PODS_PER_MESSAGE`] (50).
    pub pods_per_message: usize,
    /// First retry delay after an error (1 s), doubled per failure up to `retry_cap` (60 s).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// Connect and total timeouts of each call.
    pub timeouts: Timeouts,
    /// Most rollouts waiting to be sent at once; beyond, `notify` refuses (1024).
    pub max_rollouts: usize,
    /// Called when a rollout's report changes (new message ids, error raised or cleared).
    pub waker: Option<Waker>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            api_url: DEFAULT_API_URL.into(),
            token: None,
            min_update_interval: Duration::from_secs(1),
            pods_per_message: MAX_PODS_PER_MESSAGE,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(60),
            timeouts: Timeouts::default(),
            max_rollouts: 1024,
            waker: None,
        }
    }
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("api_url", &self.api_url)
            .field("token", &self.token)
            .field("min_update_interval", &self.min_update_interval)
            .field("pods_per_message", &self.pods_per_message)
            .field("max_rollouts", &self.max_rollouts)
            .finish_non_exhaustive()
    }
}

/// Where and how verbosely one rollout is notified.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackTarget {
    /// `spec.channel`: a name (`#deploys`) or an id.
    pub channel: String,
    /// `spec.notifications.level`.
    pub level: NotificationLevel,
    /// `status.slackMessage` as last written, so a restarted operator updates those messages.
    pub existing: Option<SlackMessage>,
}

/// What the operator reads back for one rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlackReport {
    /// Ids to store in `status.slackMessage` (`None` until the first message is posted).
    pub message: Option<SlackMessage>,
    /// The last delivery error (cleared by the next success): show as `NotificationsDelivered=False`.
    pub last_error: Option<String>,
    /// Every message shows the latest accepted snapshot.
    pub up_to_date: bool,
}

/// What the [`SlackNotifier`] handles and the worker exchange: snapshots to show, rollouts to
/// forget, the reports back, the client (replaced when the token changes) and the wake-up.
struct Mailbox {
    pending: Mutex<BTreeMap<RolloutKey, (RolloutSnapshot, SlackTarget)>>,
    forget: Mutex<Vec<RolloutKey>>,
    reports: Mutex<HashMap<RolloutKey, SlackReport>>,
    client: Mutex<Option<SlackClient>>,
    wake: Notify,
    max_rollouts: usize,
}

/// Handle to the Slack worker; cheap to clone.
#[derive(Clone)]
pub struct SlackNotifier {
    mailbox: Arc<Mailbox>,
    api_url: String,
    timeouts: Timeouts,
}

impl SlackNotifier {
    /// Starts the worker on the current tokio runtime.
    pub fn spawn(config: SlackConfig) -> Result<Self> {
        let client = config
            .token
            .clone()
            .map(|t| SlackClient::new(&config.api_url, t, config.timeouts))
            .transpose()?;
        let mailbox = Arc::new(Mailbox {
            pending: Mutex::new(BTreeMap::new()),
            forget: Mutex::new(Vec::new()),
            reports: Mutex::new(HashMap::new()),
            client: Mutex::new(client),
            wake: Notify::new(),
            max_rollouts: config.max_rollouts.max(1),
        });
        let handle = Self {
            mailbox: mailbox.clone(),
            api_url: config.api_url.clone(),
            timeouts: config.timeouts,
        };
        let worker = Worker {
            mailbox,
            config,
            states: BTreeMap::new(),
            paused_until: None,
        };
        tokio::spawn(worker.run());
        Ok(handle)
    }

    /// Replaces the bot token (the operator re-read its Secret); `None` stops sending.
    pub fn set_token(&self, token: Option<SecretToken>) -> Result<()> {
        let client = token
            .map(|t| SlackClient::new(&self.api_url, t, self.timeouts))
            .transpose()?;
        *lock(&self.mailbox.client) = client;
        self.mailbox.wake.notify_one();
        Ok(())
    }

    /// Hands the latest snapshot of a rollout to the worker; returns at once.
    ///
    /// `events` are the lifecycle events of this reconcile (the planner's `Notify::triggers`). At level
    /// `info` a snapshot is taken only with a lifecycle event or when terminal; at `debug`, always
    /// (so every batch shows). `Ok(false)`: filtered out by the level. [`Error::QueueFull`]: more than
    /// `max_rollouts` rollouts are waiting; the operator retries on its next reconcile.
    pub fn notify(
        &self,
        snapshot: &RolloutSnapshot,
        events: &[WebhookTrigger],
        target: &SlackTarget,
    ) -> Result<bool> {
        let wanted = matches!(target.level, NotificationLevel::Debug)
            || events.iter().any(is_lifecycle)
            || snapshot.outcome().is_some();
        if !wanted {
            return Ok(false);
        }
        {
            let mut pending = lock(&self.mailbox.pending);
            if !pending.contains_key(&snapshot.key) && pending.len() >= self.mailbox.max_rollouts {
                return Err(Error::QueueFull {
                    what: "a Slack notification",
                });
            }
            pending.insert(snapshot.key.clone(), (snapshot.clone(), target.clone()));
            // Until the worker has sent it, the report must not claim the messages are current.
            let mut reports = lock(&self.mailbox.reports);
            let report = reports.entry(snapshot.key.clone()).or_default();
            report.up_to_date = false;
        }
        self.mailbox.wake.notify_one();
        Ok(true)
    }

    /// The latest report of a rollout (`None` if nothing was ever accepted for it).
    pub fn report(&self, key: &RolloutKey) -> Option<SlackReport> {
        lock(&self.mailbox.reports).get(key).cloned()
    }

    /// Drops everything about a rollout (it was deleted); its messages stay as they are.
    pub fn forget(&self, key: &RolloutKey) {
        lock(&self.mailbox.pending).remove(key);
        lock(&self.mailbox.reports).remove(key);
        lock(&self.mailbox.forget).push(key.clone());
        self.mailbox.wake.notify_one();
    }
}

/// One message of a rollout.
struct Message {
    /// `None` after Slack said the message is gone: the page is posted again.
    ts: Option<String>,
    /// The content last accepted by Slack for it (`None`: unknown, e.g. adopted after a restart).
    sent: Option<String>,
    last_sent: Option<Instant>,
}

struct RolloutState {
    identity: Option<String>,
    channel: String,
    channel_id: Option<String>,
    messages: Vec<Message>,
    desired: Vec<(Page, String)>,
    snapshot: Option<RolloutSnapshot>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

enum Job {
    Post { key: RolloutKey, page: usize },
    Update { key: RolloutKey, page: usize },
}

struct Worker {
    mailbox: Arc<Mailbox>,
    config: SlackConfig,
    states: BTreeMap<RolloutKey, RolloutState>,
    paused_until: Option<Instant>,
}

impl Worker {
    async fn run(mut self) {
        loop {
            self.ingest();
            let now = Instant::now();
            let (job, wake_at) = match self.paused_until {
                Some(until) if until > now => (None, Some(until)),
                _ => self.next_job(now),
            };
            let client = lock(&self.mailbox.client).clone();
            match (job, client) {
                (Some(job), Some(client)) => self.execute(job, &client).await,
                (job, client) => {
                    if job.is_some() && client.is_none() {
                        self.report_all_without_token();
                    }
                    match wake_at.filter(|_| client.is_some()) {
                        Some(at) => {
                            tokio::select! {
                                () = self.mailbox.wake.notified() => {}
                                () = tokio::time::sleep_until(at) => {}
                            }
                        }
                        None => self.mailbox.wake.notified().await,
                    }
                }
            }
        }
    }

    fn ingest(&mut self) {
        for key in std::mem::take(&mut *lock(&self.mailbox.forget)) {
            self.states.remove(&key);
        }
        let pending = std::mem::take(&mut *lock(&self.mailbox.pending));
        let per_message = self.config.pods_per_message.clamp(1, MAX_PODS_PER_MESSAGE);
        for (key, (snapshot, target)) in pending {
            let fresh = || RolloutState {
                identity: snapshot.rollout_identity.clone(),
                channel: target.channel.clone(),
                channel_id: None,
                messages: Vec::new(),
                desired: Vec::new(),
                snapshot: None,
                failures: 0,
                retry_at: None,
                last_error: None,
            };
            let state = self.states.entry(key.clone()).or_insert_with(fresh);
            if state.identity != snapshot.rollout_identity {
                *state = fresh();
            }
            if state.messages.is_empty()
                && let Some(existing) = &target.existing
                && existing.rollout_identity == snapshot.rollout_identity
                && !existing.ts.is_empty()
            {
                state.channel_id = Some(existing.channel.clone());
                state.messages = existing
                    .ts
                    .iter()
                    .map(|ts| Message {
                        ts: Some(ts.clone()),
                        sent: None,
                        last_sent: None,
                    })
                    .collect();
            }
            state.channel = target.channel.clone();
            let pages = blocks::render(&snapshot, per_message, state.messages.len());
            state.desired = pages
                .into_iter()
                .map(|p| {
                    let content = serde_json::json!([p.text, p.blocks]).to_string();
                    (p, content)
                })
                .collect();
            state.snapshot = Some(snapshot);
            self.publish(&key);
        }
    }

    /// The most urgent job due now, else when the next one falls due.
    fn next_job(&self, now: Instant) -> (Option<Job>, Option<Instant>) {
        let mut best: Option<(Instant, Job)> = None;
        let mut wake: Option<Instant> = None;
        let interval = self.config.min_update_interval;
        for (key, state) in &self.states {
            if let Some(at) = state.retry_at
                && at > now
            {
                wake = Some(wake.map_or(at, |w| w.min(at)));
                continue;
            }
            for (page, (_, content)) in state.desired.iter().enumerate() {
                let (due, job) = match state.messages.get(page) {
                    None => {
                        // Pages are posted in order; page n+1 waits for page n's ts.
                        (
                            now,
                            Job::Post {
                                key: key.clone(),
                                page,
                            },
                        )
                    }
                    Some(Message { ts: None, .. }) => (
                        now,
                        Job::Post {
                            key: key.clone(),
                            page,
                        },
                    ),
                    Some(m) if m.sent.as_deref() == Some(content.as_str()) => continue,
                    Some(m) => (
                        m.last_sent.map_or(now, |t| t + interval),
                        Job::Update {
                            key: key.clone(),
                            page,
                        },
                    ),
                };
                if due <= now {
                    if best.as_ref().is_none_or(|(b, _)| due < *b) {
                        best = Some((due, job));
                    }
                } else {
                    wake = Some(wake.map_or(due, |w| w.min(due)));
                }
                if state.messages.get(page).is_none() {
                    break;
                }
            }
        }
        (best.map(|(_, j)| j), wake)
    }

    async fn execute(&mut self, job: Job, client: &SlackClient) {
        let (key, page) = match &job {
            Job::Post { key, page } | Job::Update { key, page } => (key.clone(), *page),
        };
        let Some(state) = self.states.get(&key) else {
            return;
        };
        let Some((rendered, content)) = state.desired.get(page).cloned() else {
            return;
        };
        let result = match &job {
            Job::Post { .. } => client
                .post_message(&state.channel, &rendered)
                .await
                .map(Some),
            Job::Update { .. } => {
                let channel = state
                    .channel_id
                    .clone()
                    .unwrap_or_else(|| state.channel.clone());
                let ts = state
                    .messages
                    .get(page)
                    .and_then(|m| m.ts.clone())
                    .unwrap_or_default();
                client
                    .update_message(&channel, &ts, &rendered)
                    .await
                    .map(|()| None)
            }
        };
        let now = Instant::now();
        let Some(state) = self.states.get_mut(&key) else {
            return;
        };
        match result {
            Ok(posted) => {
                if let Some(PostedMessage { channel, ts }) = posted {
                    state.channel_id = Some(channel);
                    let message = Message {
                        ts: Some(ts),
                        sent: None,
                        last_sent: None,
                    };
                    if page < state.messages.len() {
                        state.messages[page] = message;
                    } else {
                        state.messages.push(message);
                    }
                }
                if let Some(m) = state.messages.get_mut(page) {
                    m.sent = Some(content);
                    m.last_sent = Some(now);
                }
                state.failures = 0;
                state.retry_at = None;
                state.last_error = None;
            }
            Err(err) => {
                let rate_limited = matches!(err, Error::Status { status: 429, .. })
                    || matches!(&err, Error::Slack { code, .. } if code == "ratelimited");
                if rate_limited {
                    let wait = err.retry_after().unwrap_or(Duration::from_secs(1));
                    tracing::debug!(rollout = %key, ?wait, "Slack rate limit; pausing");
                    self.paused_until = Some(now + wait);
                } else {
                    if matches!(&err, Error::Slack { code, .. }
                        if matches!(code.as_str(), "message_not_found" | "cant_update_message" | "edit_window_closed"))
                        && let Some(m) = state.messages.get_mut(page)
                    {
                        // The message is gone (deleted by someone): post the page again.
                        m.ts = None;
                    }
                    state.failures = state.failures.saturating_add(1);
                    state.retry_at = Some(
                        now + backoff(
                            state.failures,
                            self.config.retry_base,
                            self.config.retry_cap,
                        ),
                    );
                    tracing::warn!(rollout = %key, error = %err, "failed to deliver a Slack notification");
                    state.last_error = Some(err.to_string());
                }
            }
        }
        self.publish(&key);
    }

    fn report_all_without_token(&mut self) {
        let keys: Vec<RolloutKey> = self.states.keys().cloned().collect();
        for key in keys {
            if let Some(state) = self.states.get_mut(&key) {
                state.last_error =
                    Some("failed to notify Slack: no bot token is configured".into());
            }
            self.publish(&key);
        }
    }

    fn publish(&self, key: &RolloutKey) {
        let Some(state) = self.states.get(key) else {
            return;
        };
        let ts: Vec<String> = state.messages.iter().filter_map(|m| m.ts.clone()).collect();
        let report = SlackReport {
            message: state
                .channel_id
                .clone()
                .filter(|_| !ts.is_empty())
                .map(|channel| SlackMessage {
                    channel,
                    ts,
                    rollout_identity: state.identity.clone(),
                }),
            last_error: state.last_error.clone(),
            up_to_date: state.desired.len() == state.messages.len()
                && state
                    .desired
                    .iter()
                    .zip(&state.messages)
                    .all(|((_, c), m)| m.sent.as_deref() == Some(c.as_str())),
        };
        let changed = {
            // Lock order pending → reports, as in `notify`: a snapshot handed over while this job
            // ran is not sent yet, whatever the messages show.
            let pending = lock(&self.mailbox.pending);
            let mut report = report;
            report.up_to_date &= !pending.contains_key(key);
            let mut reports = lock(&self.mailbox.reports);
            let old = reports.insert(key.clone(), report.clone());
            old.is_none_or(|o| {
                o.message != report.message || o.last_error.is_some() != report.last_error.is_some()
            })
        };
        if changed && let Some(waker) = &self.config.waker {
            waker(key);
        }
    }
}
