//! Runs the real `kubectl` binary against a kubesim cluster: the one
//! kubectl harness of kubesim's test suites and of the projects built on kubesim. Without kubectl a test fails
//! when `CI` is set and otherwise prints "skipped: kubectl not found".

use std::{path::PathBuf, time::Duration};

use crate::cluster::{Cluster, ClusterConfig, Handle};
use serde_json::Value;
use tokio::{io::AsyncWriteExt, process::Command};

/// Whether kubectl can run here; panics in CI when it cannot.
pub fn kubectl_available() -> bool {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl not found (required in CI)"
        );
        println!("skipped: kubectl not found");
    }
    found
}

/// What one kubectl run printed.
#[derive(Debug)]
pub struct Output {
    /// Exit status 0.
    pub ok: bool,
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A kubesim cluster with a kubeconfig on disk and a private `HOME` (so
/// kubectl's discovery cache is never shared between tests).
pub struct Kubectl {
    /// The running cluster.
    pub h: Handle,
    /// The kubeconfig kubectl uses.
    pub kubeconfig: PathBuf,
    /// A scratch directory (kubectl's `HOME`), removed on drop.
    pub dir: PathBuf,
}

impl Kubectl {
    /// A plain API server (no simulation).
    pub async fn start() -> Self {
        Self::start_with(ClusterConfig::default()).await
    }

    /// A cluster with `config`; its kubeconfig is written to the scratch dir.
    pub async fn start_with(config: ClusterConfig) -> Self {
        let dir = std::env::temp_dir().join(format!("kubesim-kubectl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        let h = Cluster::start(ClusterConfig {
            write_kubeconfig: Some(kubeconfig.clone()),
            ..config
        })
        .await
        .unwrap();
        Kubectl { h, kubeconfig, dir }
    }

    /// A `kubectl` command bound to this cluster.
    pub fn command(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir)
            .kill_on_drop(true);
        c
    }

    /// Runs `kubectl args…`, feeding `stdin` if given (60 s deadline).
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.command();
        c.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            let mut i = child.stdin.take().unwrap();
            i.write_all(s.as_bytes()).await.unwrap();
        }
        drop(child.stdin.take());
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        Output {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, None).await
    }

    /// Like [`Kubectl::ok`] with `stdin`.
    pub async fn ok_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.run(args, stdin).await;
        assert!(o.ok, "kubectl {args:?} failed: {}", o.stderr);
        o.stdout
    }

    /// Runs kubectl, asserts success and parses stdout as JSON.
    pub async fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).await).unwrap()
    }

    /// Stops the cluster: cancels its server (ending open watches) and background tasks, without
    /// waiting for them ([`Handle::shutdown`] takes the handle, which this type owns).
    pub fn shutdown(&self) {
        self.h.shutdown_token().cancel();
    }

    /// A file in the scratch directory with `content`; returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The absolute path of a file of this repository (`rel` from the root).
pub fn repo_file(rel: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
        .display()
        .to_string()
}
