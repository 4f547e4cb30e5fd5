//! `sroll operator`: flags, kubeconfig resolution and signal handling around
//! [`sroll_operator::Operator`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, ValueEnum};
use sroll_operator::{
    LeaseSettings, Operator, Settings,
    integrations::{IntegrationSettings, SecretLocation},
    telemetry,
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
        Settings {
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
    tracing::info!("shutdown requested: finishing the current reconciles");
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
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime.block_on(async move {
        let (client, default_ns) =
            sroll_operator::client_from(args.kubeconfig.as_deref(), args.context.clone()).await?;
        let identity = args.identity.clone().unwrap_or_else(default_identity);
        let settings = args.settings(&default_ns, identity);
        Operator::new(client, settings)
            .run(shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    })
}
