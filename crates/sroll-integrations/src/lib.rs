//! sroll's I/O integrations: Slack notifications, generic webhooks, the release callback (`bapi`)
//! and service-discovery health — each behind a small façade that never blocks the reconcile loop.
//!
//! ```text
//!   sroll-operator reconcile ──snapshot──▶ Notifier::notify ──(coalescing slot)──▶ Slack worker ──▶ chat.postMessage / chat.update
//!                             │                             └─(bounded queue)────▶ webhook worker ──▶ POST <webhook url>
//!                             ├─request──▶ Callbacks::deliver ─(task, retries)───▶ POST <bapi.url>
//!                             └─observe──▶ Discovery::observe ─(poller)──────────▶ Consul health + catalog
//!        ◀── reports: Slack message ids, delivery states, latest health (read on the next reconcile) ──
//! ```
//!
//! Nothing here knows about kube: the operator passes plain snapshots ([`RolloutSnapshot`]) and reads
//! plain results back, so each client is tested against local HTTP servers. Every façade call returns
//! at once: the HTTP work runs on background tasks, and results are read from shared state (plus an
//! optional [`Waker`] callback so the operator can requeue the rollout a result concerns).
//!
//! Outbound calls to URLs taken from users' resources (webhooks, callbacks) go through
//! [`allow::HostAllowlist`] and a resolver that refuses link-local and cloud-metadata addresses
//! ([`http`]): no SSRF into the cluster network.
#![forbid(unsafe_code)]

pub mod allow;
pub mod callback;
pub mod discovery;
mod error;
pub mod http;
mod model;
mod notifier;
pub mod secret;
pub mod slack;
pub mod webhook;

pub use callback::{CallbackBody, CallbackConfig, CallbackRequest, CallbackState, Callbacks};
pub use discovery::{Discovery, DiscoveryConfig, DiscoveryHealth, ServiceHealth};
pub use error::{Error, Result};
pub use model::*;
pub use notifier::{NotificationReport, Notifier, NotifyRequest};
pub use secret::SecretToken;

/// Condition reasons (PascalCase) of the `CallbackDelivered` condition, reported by
/// [`CallbackState::condition`]. The planner (`sroll_planner::reasons`) writes every condition,
/// `NotificationsDelivered` and the `Degraded` reasons about service discovery included.
pub mod reasons {
    /// The release callback was answered with a 2xx.
    pub const CALLBACK_DELIVERED: &str = "CallbackDelivered";
    /// The release callback is being delivered or retried.
    pub const CALLBACK_PENDING: &str = "CallbackPending";
    /// The release callback gave up (deadline or permanent 4xx).
    pub const CALLBACK_FAILED: &str = "CallbackFailed";
    /// The callback host is not allowed (`--callback-allow`) or the URL is invalid.
    pub const CALLBACK_REFUSED: &str = "CallbackRefused";
}
