//! Fake Slack Web API (`chat.postMessage`, `chat.update`) and release-callback receiver for
//! chaos runs, on one local HTTP server. Each reports to the invariant checker, so a duplicated
//! Slack message or a callback applied twice is a violation; the callback receiver applies each
//! `Idempotency-Key` once, as docs/notifications.md asks of receivers, and counts redeliveries.
//!
//! The same server is a Consul agent whose service [`CONSUL_SERVICE`] lists every pod of the
//! test namespace as passing (`/v1/catalog/services`, `/v1/health/service/{name}`).
//!
//! [`Fakes::hang`] turns all of them into a tarpit: a request that arrives while hanging is read
//! and never answered (the connection stays open until the client gives up), as a receiver stuck
//! behind a dead upstream behaves; requests arriving after [`Fakes::hang`]`(false)` are answered.
//!
//! Usable with the in-process operator ([`Fakes::settings`]) and with the `sroll operator`
//! process ([`Fakes::flags`], as `crates/sroll/tests/operator_process.rs` does).

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::{Path, Request, State},
    http::{HeaderMap, StatusCode},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use serde_json::{Value, json};
use sroll_api::{Bapi, NotificationLevel, Notifications, StatefulsetRollout};
use sroll_operator::{
    Settings,
    integrations::{IntegrationSettings, SecretLocation},
};

use super::{Env, Rollout, checker::Checker};

/// The Slack bot token stored in the test namespace's Secret.
pub const TOKEN: &str = "xoxb-chaos-token";

/// The Consul service whose instances are the namespace's pods.
pub const CONSUL_SERVICE: &str = "app";

/// What the fake receivers saw.
#[derive(Default)]
pub struct Received {
    /// The `Rollout:` field of every posted first message of a rollout.
    pub slack_posts: Vec<String>,
    /// Further pages posted (messages without a `Rollout:` field).
    pub slack_more_pages: usize,
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
    client: Client,
    namespace: String,
    hanging: Arc<AtomicBool>,
    /// Requests read and never answered.
    unanswered: Arc<AtomicUsize>,
    /// Requests answered.
    answered: Arc<AtomicUsize>,
}

/// While hanging, a request is read and left without an answer for good.
async fn tarpit(State(r): State<Receivers>, request: Request, next: Next) -> Response {
    if r.hanging.load(Ordering::SeqCst) {
        r.unanswered.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
    let response = next.run(request).await;
    r.answered.fetch_add(1, Ordering::SeqCst);
    response
}

async fn consul_catalog() -> Json<Value> {
    Json(json!({"consul": [], CONSUL_SERVICE: ["v1"]}))
}

/// Every pod of the namespace with an IP, passing.
async fn consul_health(State(r): State<Receivers>, Path(name): Path<String>) -> Json<Value> {
    if name != CONSUL_SERVICE {
        return Json(json!([]));
    }
    let pods = Api::<Pod>::namespaced(r.client.clone(), &r.namespace)
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let entries = pods
        .iter()
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            Some(json!({"Node": {"Address": "192.168.1.1"},
                        "Service": {"Service": CONSUL_SERVICE, "Address": ip},
                        "Checks": [{"Status": "passing"}]}))
        })
        .collect();
    Json(Value::Array(entries))
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
    let mut seen = r.seen.lock().unwrap();
    // The first message of a rollout carries its identity; further pages (more than 50 pods in
    // flight) do not, and are counted apart.
    match rollout_field(&body) {
        Some(key) => {
            r.checker.slack_posted(&key);
            seen.slack_posts.push(key);
        }
        None => seen.slack_more_pages += 1,
    }
    let ts = format!(
        "1700000000.{:06}",
        seen.slack_posts.len() + seen.slack_more_pages
    );
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
    hanging: Arc<AtomicBool>,
    unanswered: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl Fakes {
    /// Starts the fake Slack and callback receiver and stores the Slack token in `env`'s
    /// namespace.
    pub async fn start(env: &Env) -> Self {
        let state = Receivers {
            checker: env.checker.clone(),
            seen: Arc::default(),
            client: env.client.clone(),
            namespace: env.ns.clone(),
            hanging: Arc::default(),
            unanswered: Arc::default(),
            answered: Arc::default(),
        };
        let router = Router::new()
            .route("/api/chat.postMessage", post(slack_post))
            .route("/api/chat.update", post(slack_update))
            .route("/callback", post(callback))
            .route("/v1/catalog/services", get(consul_catalog))
            .route("/v1/health/service/{name}", get(consul_health))
            .layer(middleware::from_fn_with_state(state.clone(), tarpit))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let slack_secret = env.slack_token_secret(TOKEN).await;
        Self {
            addr,
            seen: state.seen,
            slack_secret,
            hanging: state.hanging,
            unanswered: state.unanswered,
            answered: state.answered,
        }
    }

    /// From now on, every request arriving is read and never answered (`true`), or answered
    /// again (`false`; requests already left unanswered stay so).
    pub fn hang(&self, hanging: bool) {
        self.hanging.store(hanging, Ordering::SeqCst);
    }

    /// Requests left without an answer so far.
    pub fn unanswered(&self) -> usize {
        self.unanswered.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
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
                consul_addr: Some(format!("http://{}", self.addr)),
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
            format!("--consul-addr=http://{}", self.addr),
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
