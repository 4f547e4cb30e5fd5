//! The `sroll sim` command: serve a simulated cluster until Ctrl-C / SIGTERM.

use std::path::PathBuf;

use clap::Args;

use crate::cluster::{Cluster, ClusterConfig};

/// Arguments of `sroll sim`.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Port on 127.0.0.1 to serve on (0 picks a free port).
    #[arg(long, env = "KUBESIM_PORT", default_value_t = 0)]
    pub port: u16,
    /// Write a kubeconfig for the simulated cluster to this path.
    #[arg(long, env = "KUBESIM_WRITE_KUBECONFIG")]
    pub write_kubeconfig: Option<PathBuf>,
    /// Number of fake nodes.
    #[arg(long, env = "KUBESIM_NODES", default_value_t = 3)]
    pub nodes: usize,
    /// Simulated-time speed factor (2.0 runs pod lifecycles twice as fast).
    #[arg(long, env = "KUBESIM_SPEED", default_value_t = 1.0)]
    pub speed: f64,
    /// Serve HTTPS with a generated CA (written into the kubeconfig).
    #[arg(long, env = "KUBESIM_TLS")]
    pub tls: bool,
    /// Require bearer tokens and authorize with RBAC (the kubeconfig carries an admin token;
    /// ServiceAccount tokens come from `kubectl create token`). Implies `--tls`: kubectl only
    /// sends credentials over HTTPS.
    #[arg(long, env = "KUBESIM_AUTH")]
    pub auth: bool,
}

impl SimArgs {
    /// The cluster configuration these arguments describe.
    pub fn config(&self) -> ClusterConfig {
        ClusterConfig {
            port: self.port,
            tls: self.tls || self.auth,
            nodes: self.nodes,
            speed: self.speed,
            write_kubeconfig: self.write_kubeconfig.clone(),
            simulate: true,
            auth: self.auth,
            ..ClusterConfig::default()
        }
    }
}

async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = s.recv() => {}
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

/// Runs the simulated cluster: prints exactly one line
/// `kubesim listening on URL`, serves until Ctrl-C or SIGTERM, then shuts
/// down cleanly.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let handle = Cluster::start(args.config()).await?;
    println!("kubesim listening on {}", handle.base_url());
    terminated().await;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn sim_arguments_parse_and_the_command_is_well_formed() {
        Cli::command().debug_assert();
        let c = Cli::parse_from([
            "sim", "--port", "8080", "--tls", "--nodes", "5", "--speed", "4", "--auth",
        ]);
        assert_eq!((c.sim.port, c.sim.tls, c.sim.nodes), (8080, true, 5));
        assert!(c.sim.auth && c.sim.config().auth);
        assert!((c.sim.speed - 4.0).abs() < f64::EPSILON);
    }
}
