//! A release-callback or webhook receiver: records every call (its `Idempotency-Key`,
//! `Authorization` and JSON body, and the status answered), answers the statuses queued in
//! [`ReceiverState::fail_with`] first and 200 after that, and, as docs/notifications.md asks of
//! receivers, applies each `Idempotency-Key` once: a 2xx delivery repeating an applied key is a
//! redelivery (an operator killed between the receiver's 2xx and its status write sends again, with
//! the same key: at-least-once delivery).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::Value;

use super::Fake;

/// One call received.
#[derive(Clone, Debug)]
pub struct Call {
    /// Its `Idempotency-Key` (empty when absent).
    pub key: String,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its body.
    pub body: Value,
    /// The status answered.
    pub status: u16,
}

/// Called with every call that applied a new idempotency key.
pub type ApplyObserver = Arc<dyn Fn(&Call) + Send + Sync>;

/// What the receiver saw, and how it is to fail.
#[derive(Default)]
pub struct ReceiverState {
    /// Statuses to answer, in order, before answering 200.
    pub fail_with: Vec<u16>,
    /// Every call, in order.
    pub calls: Vec<Call>,
    /// Idempotency keys applied, in order (a repeated key is a no-op).
    pub applied: Vec<String>,
    /// 2xx deliveries repeating an applied key.
    pub redeliveries: usize,
    observer: Option<ApplyObserver>,
}

impl ReceiverState {
    /// The calls answered 200.
    pub fn delivered(&self) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.status == 200).collect()
    }

    /// The calls that applied a key (the first 2xx delivery of each), in order.
    pub fn applied_calls(&self) -> Vec<&Call> {
        self.applied
            .iter()
            .filter_map(|k| self.calls.iter().find(|c| c.status == 200 && &c.key == k))
            .collect()
    }
}

/// The fake receiver (a handle on its state; serve it with [`Fake::serve`]), at `path`.
#[derive(Clone)]
pub struct Receiver {
    state: Arc<Mutex<ReceiverState>>,
    path: Arc<str>,
}

impl Receiver {
    /// A receiver of POSTs to `path` (e.g. `/callback`).
    pub fn new(path: &str) -> Self {
        Self {
            state: Arc::default(),
            path: path.into(),
        }
    }

    /// Answers `statuses`, in order, before answering 200.
    pub fn failing_with(self, statuses: Vec<u16>) -> Self {
        self.state().fail_with = statuses;
        self
    }

    /// Calls `observer` with every call applying a new key (e.g. to report it to the checker).
    pub fn observe_applied(self, observer: ApplyObserver) -> Self {
        self.state().observer = Some(observer);
        self
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, ReceiverState> {
        self.state.lock().expect("the fake receiver's state")
    }
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut s = r.state();
    let status = if s.fail_with.is_empty() {
        200
    } else {
        s.fail_with.remove(0)
    };
    let call = Call {
        key: header("idempotency-key").unwrap_or_default(),
        authorization: header("authorization"),
        body,
        status,
    };
    if status == 200 {
        if s.applied.contains(&call.key) {
            s.redeliveries += 1;
        } else {
            s.applied.push(call.key.clone());
            if let Some(observe) = s.observer.clone() {
                observe(&call);
            }
        }
    }
    s.calls.push(call);
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Fake for Receiver {
    fn router(&self) -> Router {
        Router::new()
            .route(&self.path, post(receive))
            .with_state(self.clone())
    }
}
