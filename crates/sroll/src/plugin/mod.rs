//! The kubectl plugin: `kubectl sroll …` (the same binary installed as `kubectl-sroll`) and the
//! matching `sroll …` subcommands. Each verb reads or patches StatefulsetRollouts through the API
//! server; the operator reacts to the change.
//!
//! ```text
//! list | get [-w] | history     read the rollout, its StatefulSet, pods, revisions and events
//! pause | resume | set-percent  merge-patch the rollout's spec
//! rollback | retry              apply an earlier template / a new rolloutIdentity
//! clone NAME [-w]               a CloneSet: replicas, surge, unavailable pods, revisions, pods
//! ```

pub mod actions;
mod clone_set;
pub(crate) mod view;

use std::{io::IsTerminal, path::PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use kube::{Api, Client, api::ListParams};
use sroll_api::StatefulsetRollout;

/// How to reach the cluster (kubectl's flags and resolution order).
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// Builds a client the way kubectl would (the operator's resolution: `--kubeconfig`, else
    /// KUBECONFIG / ~/.kube/config, else in-cluster; `--context` picks the context).
    pub async fn client(&self) -> anyhow::Result<(Client, String)> {
        sroll_operator::client_from(self.kubeconfig.as_deref(), self.context.clone())
            .await
            .context("failed to find a cluster: set KUBECONFIG, pass --kubeconfig, or run in a pod")
    }
}

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Human-readable.
    #[default]
    Table,
    /// The object(s) as JSON.
    Json,
    /// The object(s) as YAML.
    Yaml,
}

/// Flags every plugin verb takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Namespace of the rollout (default: the kubeconfig context's namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// The plugin's verbs.
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// List rollouts with their phase and progress.
    List {
        /// List rollouts in every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[command(flatten)]
        common: Common,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one rollout as a tree: phase, progress, revisions, pods in flight, conditions, events.
    Get {
        /// The rollout's name.
        name: String,
        #[command(flatten)]
        common: Common,
        /// Keep watching and redraw on every change (Ctrl-C to stop).
        #[arg(short, long)]
        watch: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one CloneSet as a tree: replicas, surge and unavailable pods, revisions, pods.
    Clone {
        /// The CloneSet's name.
        name: String,
        #[command(flatten)]
        common: Common,
        /// Keep redrawing every second (Ctrl-C to stop).
        #[arg(short, long)]
        watch: bool,
    },
    /// Pause a rollout: no pod is evicted until it is resumed.
    Pause {
        /// The rollout's name.
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Resume a paused rollout.
    Resume {
        /// The rollout's name.
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Promote a rollout to another percentage of pods (lowering it never moves pods back).
    SetPercent {
        /// The rollout's name.
        name: String,
        #[command(flatten)]
        common: Common,
        /// The new percentage, 0 to 100.
        #[arg(value_parser = clap::value_parser!(i32).range(0..=100))]
        percent: i32,
    },
    /// Roll back to the previous revision (or `--to-revision`), at 100% unless `--percent` is given.
    Rollback {
        /// The rollout's name.
        name: String,
        #[command(flatten)]
        common: Common,
        /// The revision number to go back to (see `history`); default: the one before the current.
        #[arg(long)]
        to_revision: Option<i64>,
        /// Percentage of pods to roll back.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(0..=100))]
        percent: i32,
    },
    /// Retry a failed rollout with a new rolloutIdentity.
    Retry {
        /// The rollout's name.
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// List the StatefulSet's revisions with their images and pods.
    History {
        /// The rollout's name.
        name: String,
        #[command(flatten)]
        common: Common,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Whether to colour output: only on a terminal, and never when `NO_COLOR` is set.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

impl PluginCommand {
    fn common(&self) -> &Common {
        match self {
            Self::List { common, .. }
            | Self::Get { common, .. }
            | Self::Clone { common, .. }
            | Self::Pause { common, .. }
            | Self::Resume { common, .. }
            | Self::SetPercent { common, .. }
            | Self::Rollback { common, .. }
            | Self::Retry { common, .. }
            | Self::History { common, .. } => common,
        }
    }
}

/// Runs one plugin verb.
pub async fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    let common = cmd.common().clone();
    let (client, default_ns) = common.cluster.client().await?;
    let ns = common.namespace.clone().unwrap_or(default_ns);
    let ctx = Ctx { client, ns };
    match cmd {
        PluginCommand::List {
            all_namespaces,
            output,
            ..
        } => view::list(&ctx, all_namespaces, output).await,
        PluginCommand::Get {
            name,
            watch,
            output,
            ..
        } => view::get(&ctx, &name, watch, output).await,
        PluginCommand::Clone { name, watch, .. } => clone_set::show(&ctx, &name, watch).await,
        PluginCommand::History { name, output, .. } => view::history(&ctx, &name, output).await,
        PluginCommand::Pause { name, .. } => print(actions::set_paused(&ctx, &name, true).await),
        PluginCommand::Resume { name, .. } => print(actions::set_paused(&ctx, &name, false).await),
        PluginCommand::SetPercent { name, percent, .. } => {
            print(actions::set_percent(&ctx, &name, percent).await)
        }
        PluginCommand::Rollback {
            name,
            to_revision,
            percent,
            ..
        } => print(actions::rollback(&ctx, &name, to_revision, percent).await),
        PluginCommand::Retry { name, .. } => print(actions::retry(&ctx, &name).await),
    }
}

/// Prints what a write verb did.
fn print(done: anyhow::Result<String>) -> anyhow::Result<()> {
    println!("{}", done?);
    Ok(())
}

/// A client and the namespace the verb works in.
pub struct Ctx {
    pub client: Client,
    pub ns: String,
}

impl Ctx {
    fn rollouts(&self) -> Api<StatefulsetRollout> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Fetches a rollout, turning the usual failures into advice: a missing CRD says how to install
    /// it; a missing rollout lists the ones that exist.
    async fn rollout(&self, name: &str) -> anyhow::Result<StatefulsetRollout> {
        match self.rollouts().get_opt(name).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => {
                let names: Vec<String> = self
                    .rollouts()
                    .list(&ListParams::default())
                    .await
                    .map(|l| {
                        l.items
                            .into_iter()
                            .filter_map(|r| r.metadata.name)
                            .collect()
                    })
                    .unwrap_or_default();
                if names.is_empty() {
                    bail!(
                        "no StatefulsetRollout named {name:?} in namespace {:?}, and none exist there (use -n NAMESPACE or `sroll list -A`)",
                        self.ns
                    )
                }
                bail!(
                    "no StatefulsetRollout named {name:?} in namespace {:?}; rollouts there: {}",
                    self.ns,
                    names.join(", ")
                )
            }
            Err(e) => Err(explain(e)),
        }
    }
}

/// Turns an API error into something a person can act on.
pub fn explain(e: kube::Error) -> anyhow::Error {
    match &e {
        // A missing object is `Ok(None)` from `get_opt`; a 404 reaching here means the resource type
        // itself is not served.
        kube::Error::Api(s) if s.code == 404 => anyhow::anyhow!(
            "the StatefulsetRollout CRD is not installed in this cluster: install it with `sroll crd | kubectl apply -f -` (or `kubectl apply -k deploy/crds`)"
        ),
        kube::Error::Api(s) if s.code == 403 => anyhow::anyhow!(
            "forbidden: {} (ask for RBAC on statefulsetrollouts.sroll.io, or check --context)",
            s.message
        ),
        kube::Error::Api(s) => {
            anyhow::anyhow!(
                "the API server refused the request: {} ({})",
                s.message,
                s.reason
            )
        }
        _ => anyhow::Error::new(e).context("failed to reach the API server"),
    }
}
