//! The Slack Web API methods the operator calls, `chat.postMessage` and `chat.update`, as Slack
//! documents them: a bearer token (`invalid_auth` otherwise), `{"ok": …, "channel": …, "ts": …}`
//! answers, a post naming the channel (`#deploys`, answered with [`CHANNEL_ID`]) and an update
//! naming the channel id and the `ts` of a posted message (`channel_not_found`,
//! `message_not_found` otherwise). It records every call and every accepted body per message with
//! its arrival time, and fails on demand: the statuses queued in [`SlackState::failures`] first
//! (429 with `Retry-After: 1`, or any other status), then, while [`SlackState::failing`],
//! alternately 429 and 500.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use sroll_integrations::slack::blocks::Page;
use tokio::time::Instant;

use super::Fake;

/// The channel the fake knows (by name, in posts).
pub const CHANNEL: &str = "#deploys";
/// Its id (in answers, and in updates).
pub const CHANNEL_ID: &str = "C0DEPLOYS";

/// Called with the body of every accepted post.
pub type PostObserver = Arc<dyn Fn(&Value) + Send + Sync>;

/// What the fake Slack saw, and how it is to misbehave.
#[derive(Default)]
pub struct SlackState {
    /// `ts` of every message posted, in order.
    pub posts: Vec<String>,
    /// Every accepted body of each message (post first, then updates), with its arrival time.
    pub messages: HashMap<String, Vec<(Instant, Value)>>,
    /// Accepted `chat.update` calls.
    pub updates: usize,
    /// Every call received, as `(method, body)`, whatever was answered.
    pub calls: Vec<(String, Value)>,
    /// Statuses to answer, in order, before behaving: 429 (with `Retry-After: 1`) or another.
    pub failures: Vec<u16>,
    /// While set, calls are answered alternately 429 and 500.
    pub failing: bool,
    /// Calls answered with a failure (queued or while failing).
    pub refused: usize,
    /// Calls received.
    pub requests: usize,
    /// When the last 429 was answered, and when the next call arrived.
    pub rate_limited_at: Option<Instant>,
    /// See [`SlackState::rate_limited_at`].
    pub first_after_rate_limit: Option<Instant>,
    observer: Option<PostObserver>,
}

/// The fake Slack Web API (a handle on its state; serve it with [`Fake::serve`]).
#[derive(Clone)]
pub struct Slack {
    state: Arc<Mutex<SlackState>>,
    token: Arc<str>,
}

impl Slack {
    /// A fake accepting bot token `token`.
    pub fn new(token: &str) -> Self {
        Self {
            state: Arc::default(),
            token: token.into(),
        }
    }

    /// Calls `observer` with the body of every accepted post (e.g. to report it to the checker).
    pub fn observe_posts(self, observer: PostObserver) -> Self {
        self.state().observer = Some(observer);
        self
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, SlackState> {
        self.state.lock().expect("the fake Slack's state")
    }

    /// `(messages posted, updates)` so far.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.state();
        (s.posts.len(), s.updates)
    }
}

impl SlackState {
    /// The `Rollout:` field of every posted first message of a rollout (the rollout identity,
    /// which makes a message unique), in order.
    pub fn rollout_posts(&self) -> Vec<String> {
        self.posts
            .iter()
            .filter_map(|ts| rollout_field(&self.messages[ts].first()?.1))
            .collect()
    }

    /// Further pages posted (messages without a `Rollout:` field: more than 50 pods in flight).
    pub fn more_pages(&self) -> usize {
        self.posts.len() - self.rollout_posts().len()
    }

    /// What Slack saw of `messages` (their `ts`).
    pub fn figures(&self, messages: &[String]) -> SlackFigures {
        let mut f = SlackFigures {
            messages: messages.len(),
            calls: 0,
            max_pods_per_message: 0,
            max_calls_per_second: 0,
            min_gap: None,
        };
        for ts in messages {
            let history = &self.messages[ts];
            f.calls += history.len();
            for (i, (at, body)) in history.iter().enumerate() {
                f.max_pods_per_message = f.max_pods_per_message.max(pods_listed(body));
                let in_window = history[i..]
                    .iter()
                    .take_while(|(t, _)| t.duration_since(*at) < Duration::from_secs(1))
                    .count();
                f.max_calls_per_second = f.max_calls_per_second.max(in_window);
                if let Some((next, _)) = history.get(i + 1) {
                    let gap = next.duration_since(*at);
                    f.min_gap = Some(f.min_gap.map_or(gap, |g| g.min(gap)));
                }
            }
        }
        f
    }

    /// The failure to answer now, if any.
    fn failure(&mut self) -> Option<Response> {
        let now = Instant::now();
        self.requests += 1;
        if self.rate_limited_at.is_some() && self.first_after_rate_limit.is_none() {
            self.first_after_rate_limit = Some(now);
        }
        let status = if self.failures.is_empty() {
            if !self.failing {
                return None;
            }
            if self.refused.is_multiple_of(2) {
                429
            } else {
                500
            }
        } else {
            self.failures.remove(0)
        };
        self.refused += 1;
        if status == 429 {
            self.rate_limited_at = Some(now);
            self.first_after_rate_limit = None;
            return Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    Json(json!({"ok": false, "error": "ratelimited"})),
                )
                    .into_response(),
            );
        }
        Some(
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "upstream connect error",
            )
                .into_response(),
        )
    }
}

/// What Slack saw of a set of messages.
#[derive(Debug)]
pub struct SlackFigures {
    /// Messages.
    pub messages: usize,
    /// `chat.postMessage` + `chat.update` calls accepted.
    pub calls: usize,
    /// Most pods one body listed.
    pub max_pods_per_message: usize,
    /// Most calls on one message within any one-second window.
    pub max_calls_per_second: usize,
    /// Shortest time between two calls on one message.
    pub min_gap: Option<Duration>,
}

/// Pod names a message body lists (its `pods-*` sections hold `` `name` `` lists), as the
/// notifier's own [`Page::pods_listed`] counts them.
pub fn pods_listed(body: &Value) -> usize {
    Page {
        text: String::new(),
        blocks: body["blocks"].clone(),
    }
    .pods_listed()
}

/// The `Rollout:` field of a Slack message (the rollout identity), which makes a message unique.
pub fn rollout_field(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.starts_with("*Rollout:*") => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(rollout_field),
        Value::Object(o) => o.values().find_map(rollout_field),
        _ => None,
    }
}

fn error(code: &str) -> Response {
    Json(json!({"ok": false, "error": code})).into_response()
}

async fn call(
    State(slack): State<Slack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {}", slack.token));
    let mut s = slack.state();
    s.calls.push((method.clone(), body.clone()));
    if let Some(failure) = s.failure() {
        return failure;
    }
    if !authorized {
        return error("invalid_auth");
    }
    match method.as_str() {
        "chat.postMessage" => {
            if body["channel"] != CHANNEL {
                return error("channel_not_found");
            }
            let ts = format!("1700000000.{:06}", s.posts.len() + 1);
            s.posts.push(ts.clone());
            if let Some(observe) = s.observer.clone() {
                observe(&body);
            }
            s.messages
                .entry(ts.clone())
                .or_default()
                .push((Instant::now(), body));
            Json(json!({"ok": true, "channel": CHANNEL_ID, "ts": ts, "message": {}}))
                .into_response()
        }
        "chat.update" => {
            if body["channel"] != CHANNEL_ID {
                return error("channel_not_found");
            }
            let ts = body["ts"].as_str().unwrap_or_default().to_owned();
            match s.messages.get_mut(&ts) {
                Some(history) => {
                    history.push((Instant::now(), body));
                    s.updates += 1;
                    Json(json!({"ok": true, "channel": CHANNEL_ID, "ts": ts})).into_response()
                }
                None => error("message_not_found"),
            }
        }
        _ => error("unknown_method"),
    }
}

impl Fake for Slack {
    fn router(&self) -> Router {
        Router::new()
            .route("/api/{method}", post(call))
            .with_state(self.clone())
    }
}
