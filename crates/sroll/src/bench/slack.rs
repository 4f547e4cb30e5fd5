//! A local fake of the two Slack Web API methods the operator calls (`chat.postMessage`,
//! `chat.update`, with the documented `{"ok": …, "channel": …, "ts": …}` answers), counting them.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context;
use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};

/// The bot token the fake accepts.
pub const TOKEN: &str = "xoxb-sroll-bench";

#[derive(Default)]
struct Counts {
    posts: AtomicU64,
    updates: AtomicU64,
}

/// The running fake.
pub struct FakeSlack {
    addr: SocketAddr,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

async fn post_message(
    State(c): State<Arc<Counts>>,
    headers: HeaderMap,
    Json(_body): Json<Value>,
) -> Json<Value> {
    if !authorised(&headers) {
        return Json(json!({"ok": false, "error": "invalid_auth"}));
    }
    let n = c.posts.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({"ok": true, "channel": "C0DEPLOYS", "ts": format!("1700000000.{n:06}")}))
}

async fn update(
    State(c): State<Arc<Counts>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    if !authorised(&headers) {
        return Json(json!({"ok": false, "error": "invalid_auth"}));
    }
    c.updates.fetch_add(1, Ordering::SeqCst);
    Json(json!({"ok": true, "channel": body["channel"], "ts": body["ts"]}))
}

impl FakeSlack {
    /// Serves the fake on a free port of 127.0.0.1.
    pub async fn start() -> anyhow::Result<Self> {
        let counts = Arc::new(Counts::default());
        let app = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(update))
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("failed to bind the fake Slack server")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, counts, task })
    }

    /// The base URL to give the operator (`--slack-api-url`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// (messages posted, updates) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.posts.load(Ordering::SeqCst),
            self.counts.updates.load(Ordering::SeqCst),
        )
    }

    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}
