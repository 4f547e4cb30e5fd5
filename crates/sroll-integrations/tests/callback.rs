//! The release callback against a local receiver: retries, exactly-once delivery, idempotency
//! key, allowlist refusals, deadline.

mod common;

use std::time::Duration;

use sroll_api::Phase;
use sroll_integrations::{
    CallbackBody, CallbackConfig, CallbackRequest, CallbackState, Callbacks, Outcome, RolloutKey,
    allow::HostAllowlist,
};

use common::{DEADLINE, snapshot};
use sroll_testkit::{
    fakes::{Fake, Receiver, Server},
    wait_for,
};

/// A callback receiver answering `fail_with` first, its server (serving while it lives) and
/// address.
async fn receiver(fail_with: Vec<u16>) -> (Receiver, Server, std::net::SocketAddr) {
    let receiver = Receiver::new("/callback").failing_with(fail_with);
    let server = receiver.serve().await.expect("the receiver serves");
    let addr = server.addr;
    (receiver, server, addr)
}

fn callbacks(allow: &str, deadline: Duration) -> Callbacks {
    Callbacks::new(CallbackConfig {
        allow: HostAllowlist::parse([allow]).expect("allowlist"),
        deadline,
        retry_base: Duration::from_millis(20),
        retry_cap: Duration::from_millis(200),
        ..CallbackConfig::default()
    })
    .expect("callbacks")
}

fn request(url: String, phase: Phase) -> CallbackRequest {
    let mut s = snapshot(1000, 0..0, phase);
    s.reason = Some("1000 of 1000 pods updated".into());
    CallbackRequest {
        key: RolloutKey::new("cache", "memcached"),
        url,
        body: CallbackBody::new("stage-7", &s).expect("terminal"),
    }
}

#[tokio::test]
async fn a_receiver_failing_five_times_then_succeeding_gets_exactly_one_delivery() {
    let (rx, _server, addr) = receiver(vec![500, 503, 502, 429, 500]).await;
    let cb = callbacks(
        &format!("127.0.0.1:{}", addr.port()),
        Duration::from_secs(60),
    );
    let req = request(
        format!("http://127.0.0.1:{}/callback", addr.port()),
        Phase::Done,
    );
    let first = cb.deliver(req.clone());
    assert!(matches!(first, CallbackState::Pending { .. }), "{first:?}");
    // The operator calls again on every reconcile: no second delivery starts.
    wait_for("the delivery", DEADLINE, || {
        let state = cb.deliver(req.clone());
        async move { state.is_final() }
    })
    .await;
    assert_eq!(
        cb.state(&req.key, "stage-7", Outcome::Done),
        Some(CallbackState::Delivered {
            status: 200,
            attempts: 6
        })
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rx = rx.state();
    let delivered: Vec<_> = rx.calls.iter().filter(|c| c.status == 200).collect();
    assert_eq!(rx.calls.len(), 6);
    assert_eq!(delivered.len(), 1, "exactly one successful delivery");
    // Same idempotency key on every attempt; the documented body.
    assert!(rx.calls.iter().all(|c| c.key == req.idempotency_key()));
    let body = &delivered[0].body;
    assert_eq!(body["stageId"], "stage-7");
    assert_eq!(body["rolloutIdentity"], "release-42");
    assert_eq!(body["outcome"], "RolloutDone");
    assert_eq!(body["percentDeployed"], 100);
    assert_eq!(body["revisions"]["from"], "memcached-6f7d");
    assert_eq!(body["revisions"]["to"], "memcached-7c9a");
    assert_eq!(body["buildMetadata"]["commit"], "abc123");
    assert_eq!(body["reason"], "1000 of 1000 pods updated");
}

#[tokio::test]
async fn a_restarted_sender_repeats_the_idempotency_key_and_acknowledge_forgets() {
    let (rx, _server, addr) = receiver(vec![]).await;
    let allow = format!("127.0.0.1:{}", addr.port());
    let req = request(
        format!("http://127.0.0.1:{}/callback", addr.port()),
        Phase::Failed,
    );
    for _ in 0..2 {
        // Two processes (the second after a crash before the status write) send the same key.
        let cb = callbacks(&allow, Duration::from_secs(60));
        cb.deliver(req.clone());
        wait_for("delivery", DEADLINE, || {
            let s = cb.state(&req.key, "stage-7", Outcome::Failed);
            async move { matches!(s, Some(CallbackState::Delivered { .. })) }
        })
        .await;
        cb.acknowledge(&req.key);
        assert_eq!(cb.state(&req.key, "stage-7", Outcome::Failed), None);
    }
    let rx = rx.state();
    assert_eq!(rx.calls.len(), 2);
    assert_eq!(rx.calls[0].key, rx.calls[1].key);
    assert_eq!(rx.calls[0].body["outcome"], "RolloutFailed");
}

#[tokio::test]
async fn a_disallowed_host_is_refused_and_never_called() {
    let (rx, _server, addr) = receiver(vec![]).await;
    let cb = callbacks(
        "bapi.example.com,*.corp.example.org",
        Duration::from_secs(60),
    );
    let state = cb.deliver(request(
        format!("http://127.0.0.1:{}/callback", addr.port()),
        Phase::Done,
    ));
    let CallbackState::Refused { reason } = state else {
        panic!("expected a refusal, got {state:?}");
    };
    assert!(
        reason.contains("127.0.0.1") && reason.contains("--callback-allow"),
        "{reason}"
    );
    let metadata = cb.deliver(CallbackRequest {
        url: "http://169.254.169.254/latest/meta-data/".into(),
        ..request(String::new(), Phase::Failed)
    });
    assert!(
        matches!(metadata, CallbackState::Refused { .. }),
        "{metadata:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rx.state().calls.is_empty());
}

#[tokio::test]
async fn a_receiver_down_past_the_deadline_yields_a_failure() {
    let (rx, _server, addr) = receiver(vec![500; 1000]).await;
    let cb = callbacks(
        &format!("127.0.0.1:{}", addr.port()),
        Duration::from_millis(500),
    );
    let req = request(
        format!("http://127.0.0.1:{}/callback", addr.port()),
        Phase::Done,
    );
    cb.deliver(req.clone());
    wait_for("the failure", DEADLINE, || {
        let s = cb.state(&req.key, "stage-7", Outcome::Done);
        async move { s.is_some_and(|s| s.is_final()) }
    })
    .await;
    let Some(CallbackState::Failed { reason, attempts }) =
        cb.state(&req.key, "stage-7", Outcome::Done)
    else {
        panic!("expected a failure");
    };
    assert!(attempts >= 2, "retried before giving up: {attempts}");
    assert!(
        reason.contains("gave up") && reason.contains("HTTP 500"),
        "{reason}"
    );
    assert_eq!(rx.state().calls.len() as u32, attempts);
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (rx, _server, addr) = receiver(vec![400]).await;
    let cb = callbacks(
        &format!("127.0.0.1:{}", addr.port()),
        Duration::from_secs(60),
    );
    let req = request(
        format!("http://127.0.0.1:{}/callback", addr.port()),
        Phase::Done,
    );
    cb.deliver(req.clone());
    wait_for("the failure", DEADLINE, || {
        let s = cb.state(&req.key, "stage-7", Outcome::Done);
        async move { s.is_some_and(|s| s.is_final()) }
    })
    .await;
    assert!(matches!(
        cb.state(&req.key, "stage-7", Outcome::Done),
        Some(CallbackState::Failed { attempts: 1, .. })
    ));
    assert_eq!(rx.state().calls.len(), 1);
}
