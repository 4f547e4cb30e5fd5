//! The sroll operator: watches `StatefulsetRollout`s, builds an observed snapshot from watch
//! caches, asks the pure planner (`sroll-planner`) for one action, executes it, and writes status.
//!
//! ```text
//!  rollouts ─┐                      ┌──────────────┐
//!  sts ──────┼─ reflectors (cache) ─▶ observe.rs   ├─ Observed ─▶ sroll_planner::plan() ─▶ Plan
//!  pods ─────┤  (trimmed, cache.rs) └──────────────┘                                      │
//!  pdbs ─────┘        ▲ triggers: owns(sts), watches(pods → rollout, pdb → rollouts)      ▼
//!                     └────────────── controller.rs ◀── requeue ◀── execute.rs (apply / partition /
//!                                                                   evict / delete / status / events)
//!  lib.rs: start-up checks (preflight.rs), leader election (leader.rs), /metrics /healthz /readyz
//!  (server.rs, metrics.rs), graceful shutdown; webhook/: the admission webhook server every
//!  replica runs (revision pinning; docs/webhook.md).
//! ```
//!
//! Embed it with [`Operator::new`] + [`Operator::run`]; the `sroll operator` subcommand is a thin
//! wrapper that resolves the kubeconfig and installs the SIGTERM handler.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod cache;
pub mod clone_set;
pub mod controller;
pub mod error;
pub mod events;
pub mod execute;
pub mod inplace;
pub mod integrations;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod preflight;
pub mod server;
pub mod sidecar_set;
pub mod telemetry;
pub mod watches;
pub mod webhook;

use std::{net::SocketAddr, sync::Arc, time::Duration};

pub use error::{Error, Result};
use futures::{FutureExt, future::join_all};
use kube::Client;
pub use leader::LeaseSettings;
use tokio::sync::watch;

use crate::{leader::LeaderElector, metrics::Metrics, server::Readiness};

/// How the operator runs.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election through a Lease; `None` acts at once (a single replica).
    pub leader_election: Option<LeaseSettings>,
    /// This replica's name in Events (`reportingInstance`) and logs.
    pub instance: String,
    /// Skip the start-up checks (tests that start many operators against one cluster).
    pub skip_preflight: bool,
    /// Slack, webhooks, release callback and service discovery.
    pub integrations: integrations::IntegrationSettings,
    /// The admission webhook server (revision pinning, sidecar injection), served by every
    /// replica; `None` serves none (and registers no webhook configuration).
    pub webhook: Option<webhook::WebhookSettings>,
    /// Where the rollout controller's watches run: `None` on the runtime that runs the operator
    /// (polled between reconciles), else on threads of their own (`watches.rs`).
    pub watches: Option<watches::WatchRuntime>,
}

/// A configured operator, ready to [`run`](Operator::run).
pub struct Operator {
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    bound: Option<watch::Sender<Option<SocketAddr>>>,
    webhook_bound: Option<watch::Sender<Option<SocketAddr>>>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// An operator acting through `client`.
    pub fn new(client: Client, settings: Settings) -> Self {
        Self {
            client,
            settings,
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(Readiness::default()),
            bound: None,
            webhook_bound: None,
        }
    }

    /// The address the webhook server bound, once it has (useful with port 0).
    pub fn webhook_addr(&mut self) -> watch::Receiver<Option<SocketAddr>> {
        let (tx, rx) = watch::channel(None);
        self.webhook_bound = Some(tx);
        rx
    }

    /// The operator's metrics (shared with the `/metrics` endpoint).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The address the metrics server bound, once it has (useful with port 0).
    pub fn metrics_addr(&mut self) -> watch::Receiver<Option<SocketAddr>> {
        let (tx, rx) = watch::channel(None);
        self.bound = Some(tx);
        rx
    }

    /// Runs until `shutdown` resolves (then finishes the reconciles in flight and releases the
    /// lease) or a fatal error: a failed start-up check, a lost lease, a server error.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Self {
            client,
            settings,
            metrics,
            readiness,
            bound,
            webhook_bound,
        } = self;
        if !settings.skip_preflight {
            preflight::check(
                &client,
                &settings.namespaces,
                settings
                    .leader_election
                    .as_ref()
                    .map(|l| l.namespace.as_str()),
                settings.webhook.as_ref().map(|w| w.namespace.as_str()),
            )
            .await?;
            tracing::info!("start-up checks passed");
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        {
            let stop_tx = stop_tx.clone();
            tokio::spawn(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            });
        }
        let stopped = {
            let rx = stop_rx.clone();
            move || {
                let mut rx = rx.clone();
                async move {
                    let _ = rx.wait_for(|v| *v).await;
                }
            }
        };

        let mut server_task = None;
        if let Some(addr) = settings.metrics_addr {
            let (local, serve) =
                server::bind(addr, metrics.clone(), readiness.clone(), stopped()).await?;
            tracing::info!(addr = %local, "serving /metrics, /healthz and /readyz");
            if let Some(tx) = &bound {
                let _ = tx.send(Some(local));
            }
            server_task = Some(tokio::spawn(serve));
        }

        // The admission webhooks: served by every replica, leader or not.
        let mut webhook_task = None;
        if let Some(webhook_settings) = settings.webhook.clone() {
            let server = webhook::WebhookServer::bind(webhook_settings.addr).map_err(|source| {
                Error::Server {
                    addr: webhook_settings.addr.to_string(),
                    source,
                }
            })?;
            if let Some(tx) = &webhook_bound {
                let _ = tx.send(Some(server.local_addr()));
            }
            let plugins = webhook::register(&webhook::PluginContext {
                client: client.clone(),
                namespaces: settings.namespaces.clone(),
            });
            readiness.set_webhook_waiting(true);
            webhook_task = Some(tokio::spawn(server.run(
                client.clone(),
                webhook_settings,
                plugins,
                readiness.clone(),
                stop_rx.clone(),
            )));
        }

        let mut elector = settings
            .leader_election
            .clone()
            .map(|l| LeaderElector::new(client.clone(), l));
        if let Some(elector) = elector.as_mut() {
            // A standby is healthy and ready: it serves its purpose by waiting.
            readiness.set(true);
            let mut rx = stop_rx.clone();
            let acquired = match elector.acquire(&mut rx).await {
                Ok(acquired) => acquired,
                Err(e) => {
                    // Stop the webhook server with the rest.
                    let _ = stop_tx.send(true);
                    return Err(e);
                }
            };
            if !acquired {
                let webhook = finish_webhook(webhook_task).await;
                return finish(server_task).await.and(webhook);
            }
        }

        let (events, publisher) = events::EventSink::start(kube::runtime::events::Recorder::new(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: sroll_api::FIELD_MANAGER.into(),
                instance: Some(settings.instance.clone()),
            },
        ));
        let ctx = controller::OperatorHandles {
            integrations: Arc::new(
                integrations::Integrations::start(client.clone(), settings.integrations.clone())
                    .map_err(|e| Error::Config(e.to_string()))?,
            ),
            client: client.clone(),
            watches: settings.watches.clone(),
            metrics: metrics.clone(),
            events,
        };
        let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
            vec![None]
        } else {
            settings.namespaces.iter().cloned().map(Some).collect()
        };
        let controllers = join_all(
            scopes
                .iter()
                .cloned()
                .map(|ns| controller::run_scope(ctx.clone(), ns, stopped()).boxed()),
        );
        // The CloneSet controller, beside the rollout controller in every scope.
        let clone_sets = join_all(
            scopes
                .iter()
                .cloned()
                .map(|ns| clone_set::run_scope(ctx.clone(), ns, stopped()).boxed()),
        );
        // The SidecarSet controller, over every scope's pods; SidecarSets are cluster-scoped, so it
        // runs only when the operator watches every namespace (its ClusterRole grants them).
        let sidecar_sets = if settings.namespaces.is_empty() {
            sidecar_set::run(ctx.clone(), scopes, stopped()).boxed()
        } else {
            tracing::info!("SidecarSets are not served: the operator watches only some namespaces");
            futures::future::ready(()).boxed()
        };
        let controllers = bounded_after_stop(
            futures::future::join3(controllers, clone_sets, sidecar_sets).map(drop),
            stop_rx.clone(),
        );
        drop(ctx);
        readiness.set(true);

        let result = match elector.as_mut() {
            None => {
                controllers.await;
                Ok(())
            }
            Some(elector) => {
                let outcome = {
                    // `hold` only ends early with an error (the lease was lost).
                    let (_hold_stop_tx, mut hold_stop_rx) = watch::channel(false);
                    let hold = elector.hold(&mut hold_stop_rx);
                    tokio::pin!(hold);
                    tokio::pin!(controllers);
                    tokio::select! {
                        () = &mut controllers => Ok(()),
                        r = &mut hold => r,
                    }
                };
                match outcome {
                    // Graceful stop: reconciles in flight finished; hand the lease over.
                    Ok(()) => {
                        match tokio::time::timeout(RELEASE_TIMEOUT, elector.release()).await {
                            Ok(released) => released,
                            Err(_) => {
                                // The lease then expires on its own after its duration.
                                tracing::warn!(
                                    "the lease was not released within {RELEASE_TIMEOUT:?}: leaving it to expire"
                                );
                                Ok(())
                            }
                        }
                    }
                    Err(e) => {
                        // Lost the lease: stop acting at once, whatever is in flight.
                        let _ = stop_tx.send(true);
                        Err(e)
                    }
                }
            }
        };
        readiness.set(false);
        let _ = stop_tx.send(true);
        // The controllers are gone with their event sinks: publish what they queued.
        publisher.flush().await;
        let webhook = finish_webhook(webhook_task).await;
        let served = finish(server_task).await;
        result.and(webhook).and(served)
    }
}

/// How long releasing the lease at a graceful stop may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the reconciles in flight may take to finish once a stop is requested. Kubernetes sends
/// SIGKILL 30 s after SIGTERM by default (`terminationGracePeriodSeconds`); this leaves time to
/// release the lease and flush the Events after it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs `controllers` to the end, but no longer than [`SHUTDOWN_GRACE`] after `stop` turns true: a
/// reconcile stuck on a request that never answers must not keep the lease (and the process) for
/// the client's read timeout of several minutes. Whatever is abandoned is safe to abandon: every
/// decision is re-derived from the cluster by the next leader.
async fn bounded_after_stop(
    controllers: impl Future<Output = ()>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::pin!(controllers);
    tokio::select! {
        () = &mut controllers => return,
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, controllers)
        .await
        .is_err()
    {
        tracing::warn!(
            "reconciles still in flight {SHUTDOWN_GRACE:?} after the stop was requested: abandoning them"
        );
    }
}

async fn finish_webhook(server: Option<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    match server {
        Some(task) => match task.await {
            Ok(r) => r,
            Err(join) => {
                tracing::error!(error = %join, "the webhook server task failed");
                Ok(())
            }
        },
        None => Ok(()),
    }
}

async fn finish(server: Option<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    match server {
        Some(task) => match task.await {
            Ok(r) => r,
            Err(join) => {
                tracing::error!(error = %join, "the metrics server task failed");
                Ok(())
            }
        },
        None => Ok(()),
    }
}

/// Builds a client with the standard kubeconfig resolution: `--kubeconfig PATH` when given, else
/// `KUBECONFIG` / `~/.kube/config`, else the in-cluster service account; `context` selects a
/// kubeconfig context. Returns the client and its default namespace (the kubeconfig context's, or
/// the pod's namespace in-cluster).
pub async fn client_from(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
) -> Result<(Client, String)> {
    let config = config_from(kubeconfig, context).await?;
    let namespace = config.default_namespace.clone();
    let client = operator_client(config).map_err(Error::Client)?;
    Ok((client, namespace))
}

/// The client configuration [`client_from`] builds its client of: the kubeconfig at `kubeconfig`
/// (its `context`, or its current one), else the in-cluster or default one.
pub async fn config_from(
    kubeconfig: Option<&std::path::Path>,
    context: Option<String>,
) -> Result<kube::Config> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
        }
        None if options.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Error::Config(e.to_string()))?,
        None => Config::infer()
            .await
            .map_err(|e| Error::Config(e.to_string()))?,
    };
    Ok(config)
}

/// Builds the operator's client from a loaded `config`: kube's default retry layer off (an
/// eviction refused by the budget answers 429 without Retry-After — back-pressure the planner
/// handles, not something to retry for minutes) and `User-Agent: sroll-operator/<version>` so the
/// API server's metrics count the operator's calls apart.
pub fn operator_client(mut config: kube::Config) -> kube::Result<Client> {
    config.default_retry = false;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("sroll-operator/", env!("CARGO_PKG_VERSION"))),
    ));
    Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Virtual time (`start_paused`): the durations below are exact and cost nothing.

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_never_ends_is_abandoned_a_grace_period_after_the_stop() {
        let (stop, stopping) = watch::channel(false);
        let started = tokio::time::Instant::now();
        let run = tokio::spawn(bounded_after_stop(std::future::pending(), stopping));
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!run.is_finished(), "without a stop the controllers run on");
        stop.send(true).expect("the controllers still listen");
        run.await.expect("the run does not panic");
        assert_eq!(started.elapsed(), Duration::from_secs(100) + SHUTDOWN_GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn reconciles_that_finish_within_the_grace_period_are_waited_for() {
        let (stop, stopping) = watch::channel(false);
        let (finished_tx, finished) = tokio::sync::oneshot::channel();
        let mut stopped = stopping.clone();
        let controllers = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = finished_tx.send(());
        };
        let run = tokio::spawn(bounded_after_stop(controllers, stopping));
        stop.send(true).expect("the controllers still listen");
        run.await.expect("the run does not panic");
        assert!(finished.await.is_ok(), "the controllers ran to their end");
    }
}
