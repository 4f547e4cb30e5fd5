//! `sroll`: the operator, the kubectl plugin and the simulated cluster in one binary.
//!
//! The binary is thin: every subcommand parses its flags here and calls into a library crate.
#![forbid(unsafe_code)]

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    Crd,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            let yaml = sroll_api::crd::crd_yaml().context("failed to render the CRD as YAML")?;
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .context("failed to write the CRD to standard output")?;
        }
    }
    Ok(())
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
