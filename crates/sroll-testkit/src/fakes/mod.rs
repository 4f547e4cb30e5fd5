//! One fake of each receiver the operator talks to, implementing the documented shapes of the real
//! service, recording what it received and able to misbehave on demand:
//!
//! - [`slack::Slack`]: the Slack Web API's `chat.postMessage` and `chat.update` (bearer token,
//!   `ok`/`error` bodies, channel ids, message timestamps), failing with queued statuses or
//!   alternating 429 (`Retry-After: 1`) / 500 answers, measuring the pace of calls per message and
//!   the first call after a 429;
//! - [`consul::Consul`]: Consul's `/v1/catalog/services` and `/v1/health/service/<name>` with
//!   `X-Consul-Token` ACLs, `?dc=` and `?passing`, static instances or instances computed per query
//!   (e.g. from the cluster's pods), "down" (500s) and datacenters whose queries hang;
//! - [`receiver::Receiver`]: a release-callback or webhook receiver recording every call (its
//!   `Idempotency-Key`, `Authorization` and body), failing with queued statuses, applying each
//!   idempotency key once and counting redeliveries.
//!
//! Each is a cloneable handle on its state with a [`Fake::router`]; [`serve`] serves one router (or
//! several merged, as [`crate::receivers`] does) on 127.0.0.1 behind a tarpit switch
//! ([`Server::hang`]): while hanging, a request is read and never answered, as a receiver stuck
//! behind a dead upstream behaves.

pub mod consul;
pub mod receiver;
pub mod slack;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::Response,
};

pub use self::{consul::Consul, receiver::Receiver, slack::Slack};

/// A fake: a handle on its state and the routes serving it.
pub trait Fake {
    /// The routes, bound to this handle's state.
    fn router(&self) -> Router;

    /// Serves [`Fake::router`] on a free port of 127.0.0.1.
    fn serve(&self) -> impl Future<Output = std::io::Result<Server>> + Send {
        serve(self.router())
    }
}

#[derive(Default)]
struct Tarpit {
    hanging: AtomicBool,
    /// Requests read and never answered.
    unanswered: AtomicUsize,
    /// Requests answered.
    answered: AtomicUsize,
}

/// While hanging, a request is read and left without an answer for good.
async fn tarpit_layer(State(t): State<Arc<Tarpit>>, request: Request, next: Next) -> Response {
    if t.hanging.load(Ordering::SeqCst) {
        t.unanswered.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
    let response = next.run(request).await;
    t.answered.fetch_add(1, Ordering::SeqCst);
    response
}

/// A router served on 127.0.0.1; stops serving when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    tarpit: Arc<Tarpit>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves `router` on a free port of 127.0.0.1, behind the tarpit switch.
pub async fn serve(router: Router) -> std::io::Result<Server> {
    let tarpit = Arc::new(Tarpit::default());
    let router = router.layer(middleware::from_fn_with_state(tarpit.clone(), tarpit_layer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Server { addr, tarpit, task })
}

impl Server {
    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// From now on, every request arriving is read and never answered (`true`), or answered
    /// again (`false`; requests already left unanswered stay so).
    pub fn hang(&self, hanging: bool) {
        self.tarpit.hanging.store(hanging, Ordering::SeqCst);
    }

    /// Requests left without an answer so far.
    pub fn unanswered(&self) -> usize {
        self.tarpit.unanswered.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.tarpit.answered.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
