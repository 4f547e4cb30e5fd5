//! `sroll`: the operator, the kubectl plugin and the simulated cluster in one binary.
//!
//! The binary is thin: every subcommand parses its flags here and calls into a library crate.
#![forbid(unsafe_code)]

use std::io::Write;
use std::{io::Read, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use sroll::{bench, dashboard, demo, operator, plugin, render};

/// jemalloc, not glibc's malloc, for every process of the binary (the operator, kubesim under
/// `sroll sim`/`demo`/`bench`, the plugin). Both the operator and kubesim allocate and free many
/// small objects per watch event (decoded objects, `serde_json::Value` maps, strings), and glibc's
/// slow path (`_int_malloc`, `malloc_consolidate`) grew to about a third of kubesim's CPU at
/// 30 × 1,000 pods (docs/kubesim-scale.md "simmem"). Measured with `sroll bench --only 5
/// --scale-sets 10 --scale-pods 1000`, back to back against the same code on glibc (BENCHMARKS.md
/// "Session 14"): about 30 % less operator CPU and a quarter less kubesim CPU per pod, and lower
/// peak RSS, where mimalloc gave the same CPU for 10–16 MiB more operator RSS.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Fast, controlled, leak-proof StatefulSet rollouts.
#[derive(Parser, Debug)]
#[command(name = "sroll", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions sroll serves, as YAML (pipe to `kubectl apply -f -`).
    Crd {
        /// Print only this CRD (`statefulsetrollouts.sroll.io`, `clonesets.sroll.io`,
        /// `sidecarsets.sroll.io`).
        name: Option<String>,
    },
    /// Render an application's rollout config (bedrock.yaml) into a PodDisruptionBudget and a
    /// StatefulsetRollout, as YAML for `kubectl apply -f -`.
    Render(RenderArgs),
    #[command(flatten)]
    Plugin(plugin::PluginCommand),
    /// Serve a live web view of the cluster's rollouts and CloneSets on 127.0.0.1:3100, with your
    /// kubeconfig (read-only unless --allow-actions).
    Dashboard(dashboard::DashboardArgs),
    /// Run the operator: reconcile StatefulsetRollouts in the cluster of the current kubeconfig.
    Operator(Box<operator::OperatorArgs>),
    /// Run a release on the embedded simulated cluster: kubesim and the operator in this process,
    /// a StatefulSet rolled to 25%, paused, resumed, broken and rolled back, with a live view.
    Demo(demo::DemoArgs),
    /// Serve kubesim, the simulated Kubernetes cluster, on 127.0.0.1 (kubectl works against it).
    Sim(kubesim::cli::SimArgs),
    /// Measure rollout speed against the ideal and native StatefulSets, pause reaction, and the
    /// operator's cost at scale, on the embedded simulated cluster (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

#[derive(Args, Debug)]
struct RenderArgs {
    /// The application config (YAML); `-` reads standard input.
    #[arg(required_unless_present = "schema")]
    config: Option<PathBuf>,
    /// The cluster to render for (one of the config's `clusters`).
    #[arg(long, required_unless_present = "schema")]
    cluster: Option<String>,
    /// The rollout percentage (one of the config's `rollout_percentages`); default: the highest.
    #[arg(long)]
    percent: Option<i32>,
    /// The rollout identity; default: a new random UUID (a new identity retries a failed rollout).
    #[arg(long)]
    identity: Option<String>,
    /// Release-system callback URL (requires --stage-id).
    #[arg(long)]
    callback_url: Option<String>,
    /// Release-system stage id (requires --callback-url).
    #[arg(long)]
    stage_id: Option<String>,
    /// Build branch, recorded as an annotation.
    #[arg(long)]
    branch: Option<String>,
    /// Build commit, recorded as an annotation.
    #[arg(long)]
    commit: Option<String>,
    /// Print the config format's JSON Schema instead of rendering.
    #[arg(long, conflicts_with_all = ["config", "cluster"])]
    schema: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    // Installed as `kubectl-sroll`, kubectl runs us for `kubectl sroll …`: name ourselves so.
    let as_kubectl_plugin = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .is_some_and(|stem| stem == "kubectl-sroll");
    let mut command = <Cli as clap::CommandFactory>::command();
    if as_kubectl_plugin {
        command = command.bin_name("kubectl sroll").name("kubectl sroll");
    }
    let matches = command.get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
        .map_err(|e| e.exit())
        .unwrap_or_else(|never| never);
    match cli.command {
        Command::Plugin(cmd) => {
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
            runtime.block_on(plugin::run(cmd))?;
        }
        Command::Crd { name } => {
            let yaml = match name {
                None => sroll_api::crd::crd_yaml(),
                Some(name) => sroll_api::crd::crd_yaml_named(&name).with_context(|| {
                    format!(
                        "no CRD named {name:?}: sroll serves {}",
                        sroll_api::crd::crd_names().join(", ")
                    )
                })?,
            }
            .context("failed to render the CRD as YAML")?;
            write_stdout(&yaml)?;
        }
        Command::Render(args) => return run_render(args),
        Command::Operator(args) => operator::run(*args)?,
        Command::Dashboard(args) => {
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
            runtime.block_on(dashboard::run(args))?;
        }
        Command::Demo(args) => {
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
            runtime.block_on(demo::run(args))?;
        }
        Command::Sim(args) => {
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
            runtime.block_on(kubesim::cli::run(args))?;
        }
        Command::Bench(args) => {
            let runtime =
                tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
            // On SIGTERM or Ctrl-C the bench is dropped, not abandoned: its operator child
            // (`kill_on_drop`) and simulated cluster go with it.
            runtime.block_on(async {
                tokio::select! {
                    report = bench::run(args) => report.map(drop),
                    () = operator::termination_signal() => {
                        anyhow::bail!("sroll bench: interrupted; its operator process was stopped")
                    }
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("failed to write to standard output")
}

fn run_render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    if args.schema {
        write_stdout(&render::config_schema_json())?;
        return Ok(ExitCode::SUCCESS);
    }
    // clap enforces both when --schema is absent.
    let (Some(path), Some(cluster)) = (args.config, args.cluster) else {
        anyhow::bail!("a config file and --cluster are required");
    };
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("failed to read the config from standard input")?;
        s
    } else {
        std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read the config file {}", path.display()))?
    };
    let opts = render::RenderOptions {
        cluster,
        percent: args.percent,
        identity: args.identity,
        callback_url: args.callback_url,
        stage_id: args.stage_id,
        branch: args.branch,
        commit: args.commit,
    };
    match render::render(&text, &opts) {
        Ok(yaml) => {
            write_stdout(&yaml)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!(
                "error: {} is not a valid rollout config ({} problem{}):",
                path.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            for e in &errors {
                eprintln!("  - {e}");
            }
            eprintln!(
                "The config format is documented in docs/app-config.md (`sroll render --schema` prints its JSON Schema)."
            );
            Ok(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
