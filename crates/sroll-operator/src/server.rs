//! The operator's HTTP side: `/metrics` (Prometheus text), `/healthz` (the process is serving) and
//! `/readyz` (start-up checks passed and, when leading, the watch caches are synced; a standby
//! replica waiting for the lease is ready too, so a rolling update of the operator can proceed).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router, extract::State, http::StatusCode, http::header, response::IntoResponse, routing::get,
};
use tokio::net::TcpListener;

use crate::{Error, Result, metrics::Metrics};

/// Readiness shared between the operator and the HTTP server: the controllers' (or the standby's)
/// and, when the operator serves admission webhooks, the webhook server's (its certificate loaded,
/// its configurations registered, its caches synced).
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    webhook_waiting: AtomicBool,
}

impl Readiness {
    /// Marks the operator ready (or not).
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Marks the webhook server as not answering yet (`true`) or answering (`false`).
    pub fn set_webhook_waiting(&self, waiting: bool) {
        self.webhook_waiting.store(waiting, Ordering::SeqCst);
    }

    /// Whether the webhook server answers (always, when there is none).
    pub fn webhook_ready(&self) -> bool {
        !self.webhook_waiting.load(Ordering::SeqCst)
    }

    /// Whether the operator is ready.
    pub fn get(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && self.webhook_ready()
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The router serving `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, readiness })
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.readiness.get() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Binds `addr` and returns the bound address (port 0 picks a free port) with the serving future,
/// which ends when `shutdown` resolves.
pub async fn bind(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = Result<()>>)> {
    let server_err = |source| Error::Server {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(server_err)?;
    let local = listener.local_addr().map_err(server_err)?;
    let app = router(metrics, readiness);
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| Error::Server {
                addr: local.to_string(),
                source,
            })
    };
    Ok((local, serve))
}
