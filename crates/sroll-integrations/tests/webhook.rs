//! Generic webhooks against a local receiver: payload, bearer token, trigger filter, refusals.

mod common;

use sroll_api::{Phase, WebhookTrigger};
use sroll_integrations::{
    RolloutKey, SecretToken,
    allow::HostAllowlist,
    webhook::{WebhookConfig, WebhookSender, WebhookTarget},
};

use common::{DEADLINE, snapshot};
use sroll_testkit::{
    fakes::{Fake, Receiver},
    wait_for,
};

#[tokio::test]
async fn webhooks_post_the_documented_payload_for_subscribed_triggers_only() {
    let receiver = Receiver::new("/hook");
    let server = receiver.serve().await.expect("the receiver serves");
    let addr = server.addr;
    let sender = WebhookSender::spawn(WebhookConfig {
        allow: HostAllowlist::parse([format!("127.0.0.1:{}", addr.port())]).expect("allow"),
        ..WebhookConfig::default()
    })
    .expect("sender");
    let url = format!("http://127.0.0.1:{}/hook", addr.port());
    let targets = [
        WebhookTarget {
            url: url.clone(),
            triggers: vec![],
            bearer: Some(SecretToken::new("hook-secret")),
        },
        WebhookTarget {
            url: url.clone(),
            triggers: vec![WebhookTrigger::Completed],
            bearer: None,
        },
        WebhookTarget {
            url: "https://evil.example.net/x".into(),
            triggers: vec![],
            bearer: None,
        },
    ];
    let s = snapshot(1000, 0..0, Phase::Done);
    let queued = sender.send(
        &s,
        &[WebhookTrigger::StepCompleted, WebhookTrigger::Completed],
        &targets,
    );
    assert_eq!(
        queued, 3,
        "two events to the catch-all, one to the completed-only target"
    );
    wait_for("three deliveries", DEADLINE, || {
        let n = receiver.state().calls.len();
        async move { n == 3 }
    })
    .await;
    let seen = receiver.state();
    let completed: Vec<_> = seen
        .calls
        .iter()
        .filter(|c| c.body["trigger"] == "on-rollout-completed")
        .collect();
    assert_eq!(completed.len(), 2);
    let with_token = seen
        .calls
        .iter()
        .filter(|c| c.authorization.as_deref() == Some("Bearer hook-secret"))
        .count();
    assert_eq!(with_token, 2);
    let body = &completed[0].body;
    assert_eq!(body["rollout"]["namespace"], "cache");
    assert_eq!(body["rollout"]["cluster"], "us-east-1a");
    assert_eq!(body["outcome"], "RolloutDone");
    assert_eq!(body["progress"]["updated"], 1000);
    assert_eq!(body["to"]["image"], "memcached:1.6.21");
    let report = sender
        .report(&RolloutKey::new("cache", "memcached"))
        .expect("report");
    assert_eq!(report.failed, 2, "the refused host, once per event");
    assert!(report.last_error.is_none() || report.delivered > 0);
}
