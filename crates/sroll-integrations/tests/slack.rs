//! The Slack notifier against a local server implementing the documented shapes of
//! `chat.postMessage` and `chat.update`: bearer token, JSON bodies, `ok`/`error`, 429 + Retry-After.

mod common;

use std::time::Duration;

use sroll_api::{NotificationLevel, Phase, SlackMessage, WebhookTrigger};
use sroll_integrations::{
    RolloutKey, SecretToken,
    slack::{SlackConfig, SlackNotifier, SlackTarget},
};
use sroll_testkit::fakes::{
    Fake, Server, Slack,
    slack::{CHANNEL, CHANNEL_ID, pods_listed},
};

use common::{DEADLINE, snapshot};
use sroll_testkit::wait_for;

const TOKEN: &str = "xoxb-test-token";

/// The fake Slack, its server (serving while it lives) and its API URL.
async fn fake_slack() -> (Slack, Server, String) {
    let fake = Slack::new(TOKEN);
    let server = fake.serve().await.expect("the fake Slack serves");
    let url = server.url("/api");
    (fake, server, url)
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
        channel: CHANNEL.into(),
        level,
        existing,
    }
}

fn key() -> RolloutKey {
    RolloutKey::new("cache", "memcached")
}

#[tokio::test]
async fn a_thousand_pod_rollout_with_a_hundred_in_flight_pages_and_paces_its_messages() {
    let (fake, _server, url) = fake_slack().await;
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
    wait_for("the final state to reach Slack", DEADLINE, || async {
        notifier.report(&key()).is_some_and(|r| r.up_to_date)
    })
    .await;

    let report = notifier.report(&key()).expect("report");
    let fake = fake.state();
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
    let (fake, _server, url) = fake_slack().await;
    fake.state().failures = vec![500, 429, 500, 502, 429, 503];
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
    wait_for(
        "an error to be reported while Slack fails",
        DEADLINE,
        || async {
            notifier
                .report(&key())
                .is_some_and(|r| r.last_error.is_some())
        },
    )
    .await;
    notifier
        .notify(
            &snapshot(1000, 0..0, Phase::Done),
            &[WebhookTrigger::Completed],
            &t,
        )
        .expect("accepted");
    wait_for("messages to catch up", DEADLINE, || async {
        notifier
            .report(&key())
            .is_some_and(|r| r.up_to_date && r.last_error.is_none())
    })
    .await;
    let fake = fake.state();
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
    let (fake, _server, url) = fake_slack().await;
    let first = SlackNotifier::spawn(config(&url, Duration::from_millis(50))).expect("notifier");
    let t = target(NotificationLevel::Info, None);
    first
        .notify(
            &snapshot(0, 0..80, Phase::InProgress),
            &[WebhookTrigger::Started],
            &t,
        )
        .expect("accepted");
    wait_for("two pages", DEADLINE, || async {
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
    wait_for("the pause to show", DEADLINE, || async {
        second.report(&key()).is_some_and(|r| r.up_to_date)
    })
    .await;
    assert_eq!(
        second.report(&key()).and_then(|r| r.message),
        Some(stored.clone())
    );
    let fake = fake.state();
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
    let (fake, _server, url) = fake_slack().await;
    let notifier = SlackNotifier::spawn(config(&url, Duration::from_millis(50))).expect("notifier");
    let t = target(NotificationLevel::Info, None);
    notifier
        .notify(
            &snapshot(0, 0..10, Phase::InProgress),
            &[WebhookTrigger::Started],
            &t,
        )
        .expect("accepted");
    wait_for("the first message", DEADLINE, || async {
        notifier.report(&key()).is_some_and(|r| r.up_to_date)
    })
    .await;
    let mut next = snapshot(0, 0..10, Phase::InProgress);
    next.rollout_identity = Some("release-43".into());
    notifier
        .notify(&next, &[WebhookTrigger::Started], &t)
        .expect("accepted");
    wait_for("the second message", DEADLINE, || async {
        notifier
            .report(&key())
            .and_then(|r| r.message)
            .is_some_and(|m| m.rollout_identity.as_deref() == Some("release-43"))
    })
    .await;
    assert_eq!(fake.state().posts.len(), 2);
}

#[tokio::test]
async fn slack_errors_are_reported_without_the_token() {
    let (_fake, _server, url) = fake_slack().await;
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
    wait_for("the auth error", DEADLINE, || async {
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
