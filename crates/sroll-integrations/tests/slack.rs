//! The Slack notifier against a local server implementing the documented shapes of
//! `chat.postMessage` and `chat.update`: bearer token, JSON bodies, `ok`/`error`, 429 + Retry-After.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use sroll_api::{NotificationLevel, Phase, SlackMessage, WebhookTrigger};
use sroll_integrations::{
    RolloutKey, SecretToken,
    slack::{SlackConfig, SlackNotifier, SlackTarget},
};
use tokio::time::Instant;

use common::{serve, snapshot, wait_for};

const TOKEN: &str = "xoxb-test-token";
const CHANNEL_ID: &str = "C0123456789";

#[derive(Default)]
struct Fake {
    next_ts: u64,
    posts: Vec<String>,
    /// ts → (receipt time, body) of every accepted post and update, in order.
    messages: HashMap<String, Vec<(Instant, Value)>>,
    /// Answers to give before behaving: 429 or 500.
    failures: Vec<u16>,
    /// When the last 429 was answered, and when the next request arrived.
    rate_limited_at: Option<Instant>,
    first_after_rate_limit: Option<Instant>,
    requests: usize,
}

type Shared = Arc<Mutex<Fake>>;

fn gate(fake: &mut Fake, headers: &HeaderMap) -> Option<Response> {
    let now = Instant::now();
    fake.requests += 1;
    if fake.rate_limited_at.is_some() && fake.first_after_rate_limit.is_none() {
        fake.first_after_rate_limit = Some(now);
    }
    if !fake.failures.is_empty() {
        let status = fake.failures.remove(0);
        if status == 429 {
            fake.rate_limited_at = Some(now);
            fake.first_after_rate_limit = None;
            return Some(
                (StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "1")], "").into_response(),
            );
        }
        return Some(
            (
                StatusCode::from_u16(status).expect("status"),
                "upstream trouble",
            )
                .into_response(),
        );
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return Some(Json(json!({"ok": false, "error": "invalid_auth"})).into_response());
    }
    None
}

async fn post_message(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut fake = s.lock().expect("lock");
    if let Some(r) = gate(&mut fake, &headers) {
        return r;
    }
    if body["channel"] != "#deploys" {
        return Json(json!({"ok": false, "error": "channel_not_found"})).into_response();
    }
    fake.next_ts += 1;
    let ts = format!("1700000000.{:06}", fake.next_ts);
    fake.posts.push(ts.clone());
    fake.messages
        .entry(ts.clone())
        .or_default()
        .push((Instant::now(), body));
    Json(json!({"ok": true, "channel": CHANNEL_ID, "ts": ts, "message": {}})).into_response()
}

async fn update(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut fake = s.lock().expect("lock");
    if let Some(r) = gate(&mut fake, &headers) {
        return r;
    }
    if body["channel"] != CHANNEL_ID {
        return Json(json!({"ok": false, "error": "channel_not_found"})).into_response();
    }
    let ts = body["ts"].as_str().unwrap_or_default().to_owned();
    match fake.messages.get_mut(&ts) {
        Some(history) => {
            history.push((Instant::now(), body));
            Json(json!({"ok": true, "channel": CHANNEL_ID, "ts": ts})).into_response()
        }
        None => Json(json!({"ok": false, "error": "message_not_found"})).into_response(),
    }
}

async fn fake_slack() -> (Shared, String) {
    let shared: Shared = Arc::default();
    let router = Router::new()
        .route("/api/chat.postMessage", post(post_message))
        .route("/api/chat.update", post(update))
        .with_state(shared.clone());
    let addr = serve(router).await;
    (shared, format!("http://{addr}/api"))
}

fn config(url: &str, interval: Duration) -> SlackConfig {
    SlackConfig {
        api_url: url.to_owned(),
        token: Some(SecretToken::new(TOKEN)),
        min_update_interval: interval,
        retry_base: Duration::from_millis(50),
        retry_cap: Duration::from_millis(400),
        ..SlackConfig::default()
    }
}

fn target(level: NotificationLevel, existing: Option<SlackMessage>) -> SlackTarget {
    SlackTarget {
        channel: "#deploys".into(),
        level,
        existing,
    }
}

/// Pods listed in a received body: backtick-quoted names in the `pods-*` sections.
fn pods_listed(body: &Value) -> usize {
    body["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter(|b| {
            b["block_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("pods-"))
        })
        .map(|b| {
            b["text"]["text"]
                .as_str()
                .unwrap_or_default()
                .matches('`')
                .count()
                / 2
        })
        .sum()
}

fn key() -> RolloutKey {
    RolloutKey::new("cache", "memcached")
}

#[tokio::test]
async fn a_thousand_pod_rollout_with_a_hundred_in_flight_pages_and_paces_its_messages() {
    let (fake, url) = fake_slack().await;
    let interval = Duration::from_millis(200);
    let notifier = SlackNotifier::spawn(config(&url, interval)).expect("notifier");
    let t = target(NotificationLevel::Debug, None);
    // Ten batches of 100 pods, each reported several times as pods turn Ready (debug level).
    notifier
        .notify(
            &snapshot(0, 0..100, Phase::InProgress),
            &[WebhookTrigger::Started],
            &t,
        )
        .expect("accepted");
    for batch in 0..10usize {
        for step in 0..10usize {
            let updated = (batch * 100 + step * 10) as i32;
            let rolling = batch * 100 + step * 10..(batch + 1) * 100;
            notifier
                .notify(&snapshot(updated, rolling, Phase::InProgress), &[], &t)
                .expect("accepted");
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    let mut done = snapshot(1000, 0..0, Phase::Done);
    done.reason = Some("1000 of 1000 pods run memcached-7c9a".into());
    notifier
        .notify(&done, &[WebhookTrigger::Completed], &t)
        .expect("accepted");
    wait_for("the final state to reach Slack", || async {
        notifier.report(&key()).is_some_and(|r| r.up_to_date)
    })
    .await;

    let report = notifier.report(&key()).expect("report");
    let fake = fake.lock().expect("lock");
    // Two pages for 100 pods in flight, each posted exactly once, then only updated.
    assert_eq!(fake.posts.len(), 2, "posts: {:?}", fake.posts);
    assert_eq!(
        report.message,
        Some(SlackMessage {
            channel: CHANNEL_ID.into(),
            ts: fake.posts.clone(),
            rollout_identity: Some("release-42".into()),
        })
    );
    assert_eq!(report.last_error, None);
    let mut updates = 0;
    for ts in &fake.posts {
        let history = &fake.messages[ts];
        updates += history.len() - 1;
        for (_, body) in history {
            assert!(
                pods_listed(body) <= 50,
                "a message lists {} pods",
                pods_listed(body)
            );
        }
        for pair in history.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(gap >= interval, "message {ts} updated twice within {gap:?}");
        }
        let last = history.last().expect("history").1.to_string();
        assert!(
            last.contains("RolloutDone"),
            "final message {ts} lacks the outcome: {last}"
        );
    }
    // Coalescing: far fewer calls than the 102 snapshots handed over.
    assert!(updates < 100, "{updates} updates");
    // The first page listed 50 pods while 100 were in flight.
    assert_eq!(pods_listed(&fake.messages[&fake.posts[0]][0].1), 50);
}

#[tokio::test]
async fn slack_rate_limits_and_outages_never_block_the_caller_and_messages_catch_up() {
    let (fake, url) = fake_slack().await;
    fake.lock().expect("lock").failures = vec![500, 429, 500, 502, 429, 503];
    let notifier =
        SlackNotifier::spawn(config(&url, Duration::from_millis(100))).expect("notifier");
    let t = target(NotificationLevel::Debug, None);
    // The caller's loop only ever hands snapshots over: every call returns at once with Ok.
    for updated in (0..=1000).step_by(50) {
        let rolling = updated as usize..(updated as usize + 100).min(1000);
        assert!(
            notifier
                .notify(&snapshot(updated, rolling, Phase::InProgress), &[], &t)
                .expect("never refused")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for("an error to be reported while Slack fails", || async {
        notifier
            .report(&key())
            .is_some_and(|r| r.last_error.is_some())
    })
    .await;
    notifier
        .notify(
            &snapshot(1000, 0..0, Phase::Done),
            &[WebhookTrigger::Completed],
            &t,
        )
        .expect("accepted");
    wait_for("messages to catch up", || async {
        notifier
            .report(&key())
            .is_some_and(|r| r.up_to_date && r.last_error.is_none())
    })
    .await;
    let fake = fake.lock().expect("lock");
    assert!(fake.failures.is_empty());
    assert_eq!(
        fake.posts.len(),
        1,
        "one message, posted once: {:?}",
        fake.posts
    );
    let last = fake.messages[&fake.posts[0]]
        .last()
        .expect("history")
        .1
        .to_string();
    assert!(last.contains("RolloutDone"));
    // After a 429 with Retry-After: 1, nothing was sent for a second.
    let (limited, next) = (
        fake.rate_limited_at.expect("rate limited"),
        fake.first_after_rate_limit
            .expect("a request after the rate limit"),
    );
    assert!(
        next - limited >= Duration::from_secs(1),
        "retried after {:?}",
        next - limited
    );
}

#[tokio::test]
async fn a_restarted_operator_updates_the_existing_messages_instead_of_posting() {
    let (fake, url) = fake_slack().await;
    let first = SlackNotifier::spawn(config(&url, Duration::from_millis(50))).expect("notifier");
    let t = target(NotificationLevel::Info, None);
    first
        .notify(
            &snapshot(0, 0..80, Phase::InProgress),
            &[WebhookTrigger::Started],
            &t,
        )
        .expect("accepted");
    wait_for("two pages", || async {
        first.report(&key()).is_some_and(|r| r.up_to_date)
    })
    .await;
    let stored = first.report(&key()).and_then(|r| r.message).expect("ids");
    assert_eq!(stored.ts.len(), 2);

    // "Restart": a new notifier that only knows status.slackMessage.
    let second = SlackNotifier::spawn(config(&url, Duration::from_millis(50))).expect("notifier");
    let t = target(NotificationLevel::Info, Some(stored.clone()));
    // At info level a plain progress snapshot is not sent …
    assert!(
        !second
            .notify(
                &snapshot(500, 500..580, Phase::InProgress),
                &[WebhookTrigger::StepCompleted],
                &t
            )
            .expect("ok")
    );
    // … a pause is.
    second
        .notify(
            &snapshot(500, 500..580, Phase::Paused),
            &[WebhookTrigger::Paused],
            &t,
        )
        .expect("accepted");
    wait_for("the pause to show", || async {
        second.report(&key()).is_some_and(|r| r.up_to_date)
    })
    .await;
    assert_eq!(
        second.report(&key()).and_then(|r| r.message),
        Some(stored.clone())
    );
    let fake = fake.lock().expect("lock");
    assert_eq!(fake.posts.len(), 2, "no new message after the restart");
    for ts in &stored.ts {
        assert!(
            fake.messages[ts]
                .last()
                .expect("history")
                .1
                .to_string()
                .contains("RolloutPaused")
        );
    }
}

#[tokio::test]
async fn a_new_rollout_identity_starts_new_messages() {
    let (fake, url) = fake_slack().await;
    let notifier = SlackNotifier::spawn(config(&url, Duration::from_millis(50))).expect("notifier");
    let t = target(NotificationLevel::Info, None);
    notifier
        .notify(
            &snapshot(0, 0..10, Phase::InProgress),
            &[WebhookTrigger::Started],
            &t,
        )
        .expect("accepted");
    wait_for("the first message", || async {
        notifier.report(&key()).is_some_and(|r| r.up_to_date)
    })
    .await;
    let mut next = snapshot(0, 0..10, Phase::InProgress);
    next.rollout_identity = Some("release-43".into());
    notifier
        .notify(&next, &[WebhookTrigger::Started], &t)
        .expect("accepted");
    wait_for("the second message", || async {
        notifier
            .report(&key())
            .and_then(|r| r.message)
            .is_some_and(|m| m.rollout_identity.as_deref() == Some("release-43"))
    })
    .await;
    assert_eq!(fake.lock().expect("lock").posts.len(), 2);
}

#[tokio::test]
async fn slack_errors_are_reported_without_the_token() {
    let (_fake, url) = fake_slack().await;
    let mut cfg = config(&url, Duration::from_millis(50));
    cfg.token = Some(SecretToken::new("xoxb-wrong-secret"));
    let notifier = SlackNotifier::spawn(cfg).expect("notifier");
    notifier
        .notify(
            &snapshot(0, 0..10, Phase::InProgress),
            &[WebhookTrigger::Started],
            &target(NotificationLevel::Info, None),
        )
        .expect("accepted");
    wait_for("the auth error", || async {
        notifier
            .report(&key())
            .is_some_and(|r| r.last_error.is_some())
    })
    .await;
    let error = notifier
        .report(&key())
        .and_then(|r| r.last_error)
        .expect("error");
    assert!(error.contains("invalid_auth"), "{error}");
    assert!(!error.contains("xoxb"), "{error}");
}
