//! Fake Slack Web API (`chat.postMessage`, `chat.update`) and release-callback receiver for
//! chaos runs, on one local HTTP server. Each reports to the invariant checker, so a duplicated
//! Slack message or a callback applied twice is a violation; the callback receiver applies each
//! `Idempotency-Key` once, as docs/notifications.md asks of receivers, and counts redeliveries.
//!
//! Usable with the in-process operator ([`Fakes::settings`]) and with the `sroll operator`
//! process ([`Fakes::flags`], as `crates/sroll/tests/operator_process.rs` does).

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};
use sroll_api::{Bapi, NotificationLevel, Notifications, StatefulsetRollout};
use sroll_operator::{
    Settings,
    integrations::{IntegrationSettings, SecretLocation},
};

use super::{Env, Rollout, checker::Checker};

/// The Slack bot token stored in the test namespace's Secret.
pub const TOKEN: &str = "xoxb-chaos-token";

/// What the fake receivers saw.
#[derive(Default)]
pub struct Received {
    /// The `Rollout:` field of every posted message.
    pub slack_posts: Vec<String>,
    /// `chat.update` calls.
    pub slack_updates: usize,
    /// `(stageId, outcome)` of every applied callback.
    pub callbacks: Vec<(String, String)>,
    /// `Idempotency-Key`s already applied.
    pub applied_keys: BTreeSet<String>,
    /// Deliveries repeating an applied key: an operator killed between the receiver's 2xx and
    /// its status write sends again, with the same key (at-least-once delivery).
    pub redeliveries: usize,
}

#[derive(Clone)]
struct Receivers {
    checker: Checker,
    seen: Arc<Mutex<Received>>,
}

/// The `Rollout:` field of a Slack message (the rollout identity), which makes a message unique.
fn rollout_field(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.starts_with("*Rollout:*") => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(rollout_field),
        Value::Object(o) => o.values().find_map(rollout_field),
        _ => None,
    }
}

async fn slack_post(State(r): State<Receivers>, Json(body): Json<Value>) -> Json<Value> {
    let key = rollout_field(&body).unwrap_or_else(|| "(no rollout field)".into());
    r.checker.slack_posted(&key);
    let mut seen = r.seen.lock().unwrap();
    seen.slack_posts.push(key);
    let ts = format!("1700000000.{:06}", seen.slack_posts.len());
    Json(json!({"ok": true, "channel": "C0CHAOS", "ts": ts}))
}

async fn slack_update(State(r): State<Receivers>, Json(body): Json<Value>) -> Json<Value> {
    r.seen.lock().unwrap().slack_updates += 1;
    Json(json!({"ok": true, "channel": "C0CHAOS", "ts": body["ts"]}))
}

async fn callback(
    State(r): State<Receivers>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let stage = body["stageId"].as_str().unwrap_or_default().to_owned();
    let outcome = body["outcome"].as_str().unwrap_or_default().to_owned();
    let key = headers
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(!key.is_empty(), "every callback carries an Idempotency-Key");
    let mut seen = r.seen.lock().unwrap();
    if seen.applied_keys.insert(key) {
        // A new key: the checker flags a second *applied* delivery of the same
        // (stage, outcome), i.e. a retry that changed its key.
        r.checker.callback_delivered(&stage, &outcome);
        seen.callbacks.push((stage, outcome));
    } else {
        seen.redeliveries += 1;
    }
    StatusCode::OK
}

/// The running fakes.
pub struct Fakes {
    /// Where they listen.
    pub addr: SocketAddr,
    /// What they saw.
    pub seen: Arc<Mutex<Received>>,
    /// The Secret holding [`TOKEN`] in the test namespace.
    pub slack_secret: SecretLocation,
}

impl Fakes {
    /// Starts the fake Slack and callback receiver and stores the Slack token in `env`'s
    /// namespace.
    pub async fn start(env: &Env) -> Self {
        let state = Receivers {
            checker: env.checker.clone(),
            seen: Arc::default(),
        };
        let router = Router::new()
            .route("/api/chat.postMessage", post(slack_post))
            .route("/api/chat.update", post(slack_update))
            .route("/callback", post(callback))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let slack_secret = env.slack_token_secret(TOKEN).await;
        Self {
            addr,
            seen: state.seen,
            slack_secret,
        }
    }

    /// The release callback's URL.
    pub fn callback_url(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// Settings of an in-process operator pointed at the fakes.
    pub fn settings(&self, env: &Env) -> Settings {
        Settings {
            integrations: IntegrationSettings {
                cluster_name: "kubesim-chaos".into(),
                slack_api_url: Some(format!("http://{}/api", self.addr)),
                slack_token_secret: Some(self.slack_secret.clone()),
                callback_allow: vec![format!("127.0.0.1:{}", self.addr.port())],
                ..IntegrationSettings::default()
            },
            ..env.settings()
        }
    }

    /// The same, as `sroll operator` flags.
    pub fn flags(&self) -> Vec<String> {
        let s = &self.slack_secret;
        vec![
            "--cluster-name=kubesim-chaos".into(),
            format!("--slack-api-url=http://{}/api", self.addr),
            format!("--slack-token-secret={}/{}/{}", s.namespace, s.name, s.key),
            format!("--callback-allow=127.0.0.1:{}", self.addr.port()),
        ]
    }
}

/// `rollout` with a Slack channel (debug level) and a release callback for `stage`.
pub fn notified(rollout: &Rollout, url: &str, stage: &str) -> StatefulsetRollout {
    let mut r = rollout.build();
    r.spec.channel = Some("#deploys".into());
    r.spec.notifications = Some(Notifications {
        level: Some(NotificationLevel::Debug),
        webhooks: vec![],
    });
    r.spec.bapi = Some(Bapi {
        url: url.into(),
        stage_id: stage.into(),
    });
    r
}
