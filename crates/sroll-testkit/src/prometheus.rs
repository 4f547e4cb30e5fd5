//! A real Prometheus server for the analysis tests: Debian's `prometheus` package's binary, run
//! directly (never its systemd service) on a free loopback port, with a generated configuration that
//! scrapes kubesim's simulated application metrics (`/sim/metrics/pods`) every second into its own
//! temporary storage directory. It is killed, and its directory removed, on drop.
//!
//! When the binary is missing, [`Prometheus::start`] fails with a message naming the package: the
//! tests that need it fail, they never skip.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::Context;
use serde_json::Value;

/// The binary, `prometheus` on the `PATH` unless `SROLL_TEST_PROMETHEUS` names another.
fn binary() -> String {
    std::env::var("SROLL_TEST_PROMETHEUS").unwrap_or_else(|_| "prometheus".into())
}

/// The package that provides it, for the error message.
pub const PACKAGE_HINT: &str = "install Debian's `prometheus` package (`apt-get install -y prometheus`; .ci/run does it) or set SROLL_TEST_PROMETHEUS to a prometheus binary";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A running Prometheus server.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:<port>`: the base URL of its HTTP API (`/api/v1/query`).
    pub url: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus scraping `kubesim_url`'s `/sim/metrics/pods` every second and waits (up to
    /// `deadline`) until it answers `/-/ready`.
    pub async fn start(kubesim_url: &str, deadline: Duration) -> anyhow::Result<Self> {
        let target = kubesim_url
            .strip_prefix("http://")
            .with_context(|| {
                format!("the Prometheus harness scrapes kubesim over plain HTTP, not {kubesim_url}")
            })?
            .trim_end_matches('/');
        let dir = std::env::temp_dir().join(format!(
            "sroll-prometheus-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("data"))
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: kubesim-pods\n    metrics_path: /sim/metrics/pods\n    \
             honor_labels: true\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)
            .with_context(|| format!("failed to write {}", config_path.display()))?;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("failed to find a free port")?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let bin = binary();
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_dir_all(&dir);
                anyhow::bail!("`{bin}` was not found on the PATH: {PACKAGE_HINT}");
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e).with_context(|| format!("failed to start `{bin}`"));
            }
        };
        let http = sroll_integrations::http::client(
            sroll_integrations::http::Timeouts {
                connect: Duration::from_secs(2),
                total: Duration::from_secs(10),
            },
            false,
        )?;
        let mut prom = Self {
            child,
            dir,
            url: format!("http://{addr}"),
            http,
        };
        let start = tokio::time::Instant::now();
        loop {
            if let Some(status) = prom.child.try_wait()? {
                anyhow::bail!(
                    "prometheus exited with {status} before it was ready; its log:\n{}",
                    prom.log()
                );
            }
            let ready = prom
                .http
                .get(format!("{}/-/ready", prom.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(prom);
            }
            if start.elapsed() > deadline {
                anyhow::bail!(
                    "prometheus was not ready within {deadline:?}; its log:\n{}",
                    prom.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: the `data` of `/api/v1/query?query=…` (`resultType` and `result`).
    pub async fn query(&self, promql: &str) -> anyhow::Result<Value> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            [("query", promql)],
        )?;
        let body: Value = self.http.get(url).send().await?.json().await?;
        anyhow::ensure!(
            body["status"] == "success",
            "query {promql:?} failed: {body}"
        );
        Ok(body["data"].clone())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
