//! The real `sroll operator` binary as a subprocess against a kubesim cluster served over HTTP:
//! start it, SIGKILL it wherever it is, SIGTERM it, read its log. For restart and chaos tests that
//! must not share a process (or a tokio runtime, or caches) with the operator they kill.
//!
//! The binary's path comes from the caller: integration tests of the `sroll` package get it from
//! `env!("CARGO_BIN_EXE_sroll")` (Cargo only sets that for the package owning the binary), and
//! `sroll bench` from `std::env::current_exe()`.
//!
//! ```ignore
//! let env = Env::without_operator().await;
//! let mut op = OperatorProcess::start(env!("CARGO_BIN_EXE_sroll"), &env, &[]);
//! op.kill().await;                       // SIGKILL
//! let op = op.restart();                 // same flags, new process
//! ```

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicUsize, Ordering},
};

use tokio::process::{Child, Command};

use kubesim::cluster::Handle;

use crate::Env;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A running `sroll operator` process.
pub struct OperatorProcess {
    child: Child,
    bin: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
    log: PathBuf,
    rust_log: String,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`.
    pub metrics_addr: SocketAddr,
    /// How many processes this handle has started (1 for the first).
    pub generation: usize,
}

/// A free local port (bound then released: a small window another process could take it in).
fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr())
}

impl OperatorProcess {
    /// Starts `bin operator` against `env`'s cluster (a kubeconfig written from the kubesim
    /// handle), watching `env`'s namespace, without leader election (a SIGKILLed leader's lease
    /// would hold its successor back), logging JSON at debug level for `sroll_operator` to a file.
    /// `extra` flags are appended (e.g. `--leader-elect=true`).
    pub fn start(bin: impl AsRef<Path>, env: &Env, extra: &[&str]) -> Self {
        let mut flags: Vec<String> = vec![
            "--namespace".into(),
            env.ns.clone(),
            "--leader-elect=false".into(),
            "--log-format".into(),
            "json".into(),
        ];
        flags.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::launch(bin, &env.cluster, flags, "info,sroll_operator=debug")
            .unwrap_or_else(|e| panic!("the operator process starts: {e}"))
    }

    /// Starts `bin operator --kubeconfig <a kubeconfig of cluster> <flags…> --metrics-addr <a free
    /// port>` with `RUST_LOG=rust_log`, its output going to a log file in [`Self::dir`].
    pub fn launch(
        bin: impl AsRef<Path>,
        cluster: &Handle,
        flags: Vec<String>,
        rust_log: &str,
    ) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "sroll-operator-process-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        let kubeconfig = dir.join("kubeconfig");
        cluster
            .write_kubeconfig(&kubeconfig)
            .map_err(|e| std::io::Error::other(format!("failed to write the kubeconfig: {e}")))?;
        let mut args: Vec<String> = vec![
            "operator".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
        ];
        args.extend(flags);
        Self::spawn(bin.as_ref().to_owned(), args, dir, rust_log.to_owned(), 1)
    }

    fn spawn(
        bin: PathBuf,
        args: Vec<String>,
        dir: PathBuf,
        rust_log: String,
        generation: usize,
    ) -> std::io::Result<Self> {
        let metrics_addr = free_addr()?;
        let log = dir.join(format!("operator-{generation}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(&bin)
            .args(&args)
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .env("RUST_LOG", &rust_log)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                std::io::Error::other(format!("failed to start {}: {e}", bin.display()))
            })?;
        Ok(Self {
            child,
            bin,
            args,
            dir,
            log,
            rust_log,
            metrics_addr,
            generation,
        })
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: the process ends at once, wherever it is (mid-reconcile, mid-eviction batch,
    /// before a status write), and is reaped.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// A new process with the same flags (call after [`Self::kill`] or [`Self::terminate`]).
    pub fn restart(self) -> Self {
        let Self {
            bin,
            args,
            dir,
            rust_log,
            generation,
            ..
        } = self;
        Self::spawn(bin, args, dir, rust_log, generation + 1)
            .unwrap_or_else(|e| panic!("the operator process restarts: {e}"))
    }

    /// SIGTERM (a graceful stop: the reconcile in flight finishes, the lease is released) and waits
    /// for the exit; returns whether it exited successfully.
    pub async fn terminate(&mut self) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        self.child
            .wait()
            .await
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Whether the process has exited (an error at start-up, or a crash).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Where the current process's log is.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The current process's log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where it serves `/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_addr)
    }

    /// SIGKILL, then removes [`Self::dir`] (the kubeconfig and the logs).
    pub async fn kill_and_clean_up(mut self) {
        self.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The directory holding the kubeconfig and every process's log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
