//! `sroll operator`: flags, kubeconfig resolution and signal handling around
//! [`sroll_operator::Operator`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, ValueEnum};
use sroll_operator::{
    LeaseSettings, Operator, Settings,
    integrations::{IntegrationSettings, SecretLocation},
    telemetry,
    watches::WatchRuntime,
    webhook::{CertSettings, ClientConfigMode, WebhookSettings},
};

/// Log line format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `sroll operator`.
#[derive(Args, Debug)]
pub struct OperatorArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster service account).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, env = "SROLL_CONTEXT")]
    pub context: Option<String>,
    /// Namespace to watch; repeat for several (default: all namespaces).
    #[arg(
        long = "namespace",
        short = 'n',
        value_name = "NAMESPACE",
        env = "SROLL_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "SROLL_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "SROLL_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Threads running the reconciles, the webhook and metrics servers and the integrations.
    /// 1 (the default) runs them on one thread: kube-runtime polls a controller's reconciles in
    /// one task anyway, and one thread spares the wake-ups between threads (two worker threads
    /// cost 0.72–1.21 ms of CPU per pod at 10 × 1,000 pods rolling, one 0.65–0.72 ms,
    /// BENCHMARKS.md "Sessions 14 and 15").
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..), env = "SROLL_WORKER_THREADS")]
    pub worker_threads: u16,
    /// Threads of their own for the rollout controller's watches (the HTTP streams, their
    /// decoding, the caches and pod index they update); 0 runs the watches on the worker threads,
    /// between reconciles. At 100 × 1,000 pods rolling at once one thread for everything let the
    /// pod watch fall behind until the API server expired it (BENCHMARKS.md "Session 14").
    #[arg(long, default_value_t = 1, env = "SROLL_WATCH_THREADS")]
    pub watch_threads: u16,
    /// Elect a leader through a coordination.k8s.io Lease, so several replicas can run with only one
    /// acting (`--leader-elect=false` acts at once).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "SROLL_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        default_value = "sroll-operator",
        env = "SROLL_LEADER_ELECTION_LEASE_NAME"
    )]
    pub leader_election_lease_name: String,
    /// Namespace of the leader-election Lease (default: the pod's namespace in-cluster, else the
    /// kubeconfig context's namespace).
    #[arg(long, env = "SROLL_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Seconds a lease stays valid without renewal; a standby takes over after that.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..), env = "SROLL_LEADER_ELECTION_LEASE_DURATION")]
    pub leader_election_lease_duration: u64,
    /// Seconds the leader keeps retrying to renew before it stops acting (less than the lease duration).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), env = "SROLL_LEADER_ELECTION_RENEW_DEADLINE")]
    pub leader_election_renew_deadline: u64,
    /// Milliseconds between two acquire or renew attempts.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..), env = "SROLL_LEADER_ELECTION_RETRY_PERIOD_MS")]
    pub leader_election_retry_period_ms: u64,
    /// This replica's identity in the Lease and in Events (default: $POD_NAME, else hostname and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Name of this cluster, shown in Slack messages and sent in webhook and callback payloads.
    #[arg(long, default_value = "", env = "SROLL_CLUSTER_NAME")]
    pub cluster_name: String,
    /// Slack Web API base URL (default https://slack.com/api/; tests and Slack-compatible servers
    /// such as Mattermost's).
    #[arg(long, value_name = "URL", env = "SROLL_SLACK_API_URL")]
    pub slack_api_url: Option<String>,
    /// Secret key holding the Slack bot token, as NAMESPACE/NAME/KEY (unset: no Slack messages).
    #[arg(
        long,
        value_name = "NAMESPACE/NAME/KEY",
        env = "SROLL_SLACK_TOKEN_SECRET"
    )]
    pub slack_token_secret: Option<SecretLocation>,
    /// Hosts that release callbacks and webhooks may call: `bapi.example.com`, `*.example.com`,
    /// `host:port`, or an exact IP; repeat or separate with commas (unset: none is called).
    #[arg(
        long,
        value_name = "HOST",
        value_delimiter = ',',
        env = "SROLL_CALLBACK_ALLOW"
    )]
    pub callback_allow: Vec<String>,
    /// Consul HTTP address for service-discovery health, e.g. http://consul-server.consul:8500.
    #[arg(long, value_name = "URL", env = "SROLL_CONSUL_ADDR")]
    pub consul_addr: Option<String>,
    /// Serve the admission webhooks (revision pinning, SidecarSet injection and validation) over
    /// HTTPS on this address, from every replica. Out of the cluster (`127.0.0.1:PORT`) the webhook
    /// configurations get `clientConfig.url: https://HOST:PORT/…`; in the cluster add
    /// `--webhook-service` (deploy/ does). Unset: no webhook server, and no configuration is
    /// registered.
    #[arg(long, value_name = "ADDR", env = "SROLL_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// In the cluster: the Service in front of the webhook port, in the operator's namespace; the
    /// configurations then get `clientConfig.service` (port 443) instead of a URL.
    #[arg(long, value_name = "NAME", env = "SROLL_WEBHOOK_SERVICE")]
    pub webhook_service: Option<String>,
    /// Out of the cluster: the host kube-apiserver dials in `clientConfig.url` (default: the
    /// `--webhook-addr` IP, 127.0.0.1 for 0.0.0.0); the serving certificate names it.
    #[arg(long, value_name = "HOST", env = "SROLL_WEBHOOK_HOST")]
    pub webhook_host: Option<String>,
    /// Namespace of the webhook's certificate Secret `sroll-webhook-certs` and of the Service
    /// (default: the pod's namespace in-cluster, else the kubeconfig context's).
    #[arg(long, value_name = "NAMESPACE", env = "SROLL_WEBHOOK_NAMESPACE")]
    pub webhook_namespace: Option<String>,
    /// Seconds a new webhook CA is valid (default 5 years).
    #[arg(long, default_value_t = 5 * 365 * 86400, value_parser = clap::value_parser!(u64).range(60..), env = "SROLL_WEBHOOK_CA_VALIDITY")]
    pub webhook_ca_validity: u64,
    /// Rotate the webhook CA when fewer seconds than this remain (default 1 year; the old CA stays
    /// in the bundle until it expires).
    #[arg(long, default_value_t = 365 * 86400, env = "SROLL_WEBHOOK_CA_RENEW_BEFORE")]
    pub webhook_ca_renew_before: u64,
    /// Seconds a new serving certificate is valid (default 1 year, never beyond its CA).
    #[arg(long, default_value_t = 365 * 86400, value_parser = clap::value_parser!(u64).range(60..), env = "SROLL_WEBHOOK_CERT_VALIDITY")]
    pub webhook_cert_validity: u64,
    /// Renew the serving certificate when fewer seconds than this remain (default 60 days).
    #[arg(long, default_value_t = 60 * 86400, env = "SROLL_WEBHOOK_CERT_RENEW_BEFORE")]
    pub webhook_cert_renew_before: u64,
    /// Seconds between two reads of the certificate Secret by each replica (default 300).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..), env = "SROLL_WEBHOOK_CERT_CHECK_INTERVAL")]
    pub webhook_cert_check_interval: u64,
}

impl OperatorArgs {
    /// The operator settings these flags describe; `default_namespace` is the client's (the pod's
    /// namespace in-cluster) and holds the Lease unless `--leader-election-namespace` is given.
    pub fn settings(&self, default_namespace: &str, identity: String) -> Settings {
        let leader_election = self.leader_elect.then(|| LeaseSettings {
            name: self.leader_election_lease_name.clone(),
            namespace: self
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_owned()),
            identity: identity.clone(),
            lease_duration: Duration::from_secs(self.leader_election_lease_duration),
            renew_deadline: Duration::from_secs(self.leader_election_renew_deadline),
            retry_period: Duration::from_millis(self.leader_election_retry_period_ms),
        });
        let webhook = self.webhook_addr.map(|addr| {
            let namespace = self
                .webhook_namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_owned());
            WebhookSettings {
                addr,
                client_config: match &self.webhook_service {
                    Some(name) => ClientConfigMode::Service {
                        name: name.clone(),
                        namespace: namespace.clone(),
                        port: 443,
                    },
                    None => ClientConfigMode::Url {
                        host: self.webhook_host.clone(),
                    },
                },
                namespace,
                certs: CertSettings {
                    ca_validity: Duration::from_secs(self.webhook_ca_validity),
                    ca_renew_before: Duration::from_secs(self.webhook_ca_renew_before),
                    serving_validity: Duration::from_secs(self.webhook_cert_validity),
                    serving_renew_before: Duration::from_secs(self.webhook_cert_renew_before),
                    check_interval: Duration::from_secs(self.webhook_cert_check_interval),
                    ..CertSettings::default()
                },
            }
        });
        Settings {
            webhook,
            namespaces: self.namespaces.clone(),
            metrics_addr: Some(self.metrics_addr),
            leader_election,
            instance: identity,
            skip_preflight: false,
            integrations: IntegrationSettings {
                cluster_name: self.cluster_name.clone(),
                slack_api_url: self.slack_api_url.clone(),
                slack_token_secret: self.slack_token_secret.clone(),
                callback_allow: self.callback_allow.clone(),
                consul_addr: self.consul_addr.clone(),
                discovery_interval: None,
                callback_retry_base: None,
            },
            watches: None,
        }
    }
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "sroll".into());
    format!("{host}-{}", std::process::id())
}

/// Waits for SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    termination_signal().await;
    tracing::info!("shutdown requested: finishing the current reconciles");
}

/// Resolves at the first SIGTERM or Ctrl-C (SIGINT).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the operator until SIGTERM / Ctrl-C.
pub fn run(args: OperatorArgs) -> anyhow::Result<()> {
    telemetry::init(match args.log_format {
        LogFormat::Text => telemetry::LogFormat::Text,
        LogFormat::Json => telemetry::LogFormat::Json,
    });
    if args.leader_elect
        && args.leader_election_renew_deadline >= args.leader_election_lease_duration
    {
        anyhow::bail!(
            "--leader-election-renew-deadline ({}s) must be shorter than --leader-election-lease-duration ({}s)",
            args.leader_election_renew_deadline,
            args.leader_election_lease_duration
        );
    }
    if args.webhook_addr.is_some() {
        let certs = CertSettings {
            ca_validity: Duration::from_secs(args.webhook_ca_validity),
            ca_renew_before: Duration::from_secs(args.webhook_ca_renew_before),
            serving_validity: Duration::from_secs(args.webhook_cert_validity),
            serving_renew_before: Duration::from_secs(args.webhook_cert_renew_before),
            ..CertSettings::default()
        };
        if let Err(e) = certs.check() {
            anyhow::bail!("--webhook-*: {e}");
        }
    }
    let runtime = match args.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(n));
            builder
        }
    }
    .enable_all()
    .build()
    .context("failed to start the async runtime")?;
    let mut watch_threads = None;
    let result = runtime.block_on(async {
        let config =
            sroll_operator::config_from(args.kubeconfig.as_deref(), args.context.clone()).await?;
        let default_ns = config.default_namespace.clone();
        let identity = args.identity.clone().unwrap_or_else(default_identity);
        let mut settings = args.settings(&default_ns, identity);
        if args.watch_threads > 0 {
            let (watches, threads) = WatchRuntime::start(config.clone(), args.watch_threads)?;
            settings.watches = Some(watches);
            watch_threads = Some(threads);
        }
        let client =
            sroll_operator::operator_client(config).context("failed to build the API client")?;
        Operator::new(client, settings)
            .run(shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    });
    // Outside the async context: a runtime may not be dropped inside another.
    if let Some(threads) = watch_threads {
        threads.shutdown(Duration::from_secs(1));
    }
    result
}
