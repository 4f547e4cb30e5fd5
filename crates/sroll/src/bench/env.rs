//! One benchmark environment: kubesim (API server over HTTP on 127.0.0.1, controllers, scheduler
//! and fake kubelets with the scenario's pod timing) plus the operator, either in this process
//! (its metrics readable directly, evictions time-stamped by a 1 ms sampler) or as a `sroll
//! operator` child process (so its memory and CPU are its own: `/proc/<pid>/status` `VmHWM` and
//! `/proc/<pid>/stat` `utime + stime`).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use kubesim::{
    cluster::{Cluster, ClusterConfig, Handle},
    controllers::runtime::{SimConfig, Simulation},
    kubelet::KubeletConfig,
};
use serde_json::json;
use sroll_api::StatefulsetRollout;
use sroll_operator::{
    Operator, Settings,
    integrations::{IntegrationSettings, SecretLocation},
    metrics::{EvictionLabels, Metrics},
};

/// Where the operator runs.
#[derive(Clone, Debug)]
pub enum OperatorMode {
    /// A task of this process.
    InProcess,
    /// `EXE operator --kubeconfig …` as a child process.
    Subprocess(PathBuf),
}

/// Slack settings for the in-process operator.
#[derive(Clone, Debug)]
pub struct SlackTarget {
    /// Base URL of the (fake) Slack Web API.
    pub api_url: String,
    /// Where the bot token lives.
    pub token: SecretLocation,
}

/// How to start an [`Env`].
pub struct EnvConfig {
    /// Simulated-time speed factor of the kubelets.
    pub speed: f64,
    /// Fake nodes.
    pub nodes: usize,
    /// Fake kubelet timing.
    pub kubelet: KubeletConfig,
    /// Where the operator runs.
    pub operator: OperatorMode,
    /// Slack integration (in-process operator only).
    pub slack: Option<SlackTarget>,
    /// Run kubesim's controllers and kubelets (`false`: objects stay as they are written).
    pub simulate: bool,
    /// Stores objects in the cluster after the `bench` namespace exists and before the
    /// operator starts, so the operator lists them at start-up.
    pub prepare: Option<Prepare>,
}

/// See [`EnvConfig::prepare`].
pub type Prepare = Box<dyn FnOnce(&Handle) -> anyhow::Result<()> + Send>;

impl std::fmt::Debug for EnvConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvConfig")
            .field("speed", &self.speed)
            .field("nodes", &self.nodes)
            .field("operator", &self.operator)
            .field("simulate", &self.simulate)
            .field("prepare", &self.prepare.is_some())
            .finish_non_exhaustive()
    }
}

enum Op {
    InProcess {
        stop: tokio::sync::oneshot::Sender<()>,
        join: tokio::task::JoinHandle<sroll_operator::Result<()>>,
        metrics: Arc<Metrics>,
        sampler: tokio::task::JoinHandle<()>,
    },
    Subprocess {
        child: std::process::Child,
        metrics_url: String,
        dir: PathBuf,
    },
}

/// Eviction times seen by the sampler of the in-process operator's eviction counter.
#[derive(Default)]
pub struct EvictionClock {
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl EvictionClock {
    /// Evictions counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// When the last eviction was counted.
    pub fn last(&self) -> Option<Instant> {
        self.last.lock().ok().and_then(|l| *l)
    }
}

/// A running benchmark environment.
pub struct Env {
    /// The cluster.
    pub cluster: Handle,
    _sim: Option<Simulation>,
    /// An administrator's client (its calls are not the operator's).
    pub client: Client,
    /// Eviction times (in-process operator only; always zero for a child process).
    pub evictions: Arc<EvictionClock>,
    op: Op,
}

/// The namespace every scenario works in.
pub const NAMESPACE: &str = "bench";

static SEQ: AtomicU64 = AtomicU64::new(0);

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("failed to find a free port")?;
    Ok(l.local_addr()?.port())
}

impl Env {
    /// Starts kubesim, the simulation, the CRD, the `bench` namespace and the operator.
    pub async fn start(cfg: EnvConfig) -> anyhow::Result<Self> {
        let cluster = Cluster::start(ClusterConfig {
            nodes: cfg.nodes,
            speed: cfg.speed,
            history_limit: 200_000,
            ..ClusterConfig::default()
        })
        .await
        .context("failed to start kubesim")?;
        // The simulation is started here rather than through `ClusterConfig::simulate` so the
        // kubelets get the scenario's timing.
        let sim = if cfg.simulate {
            Some(
                Simulation::start(
                    cluster.api().clone(),
                    SimConfig {
                        nodes: cfg.nodes,
                        speed: cfg.speed,
                        kubelet: cfg.kubelet.clone(),
                        seed: Some(1),
                        // BENCHMARKS.md was measured without Events; they also share the
                        // store's history window with the watches the operator holds.
                        record_events: false,
                    },
                )
                .map_err(|e| anyhow::anyhow!("failed to start the simulation: {}", e.message))?,
            )
        } else {
            None
        };
        let client = cluster.client();
        crate::demo::install_crd(&client).await?;
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
            )
            .await
            .context("failed to create the bench namespace")?;
        if let Some(prepare) = cfg.prepare {
            prepare(&cluster)?;
        }
        let evictions = Arc::new(EvictionClock::default());
        let op = match &cfg.operator {
            OperatorMode::InProcess => {
                let mut integrations = IntegrationSettings::default();
                if let Some(slack) = &cfg.slack {
                    integrations.slack_api_url = Some(slack.api_url.clone());
                    integrations.slack_token_secret = Some(slack.token.clone());
                }
                let operator = Operator::new(
                    crate::demo::operator_client(cluster.kubeconfig()).await?,
                    Settings {
                        instance: "sroll-bench".into(),
                        integrations,
                        ..Settings::default()
                    },
                );
                let metrics = operator.metrics();
                let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
                let join = tokio::spawn(operator.run(async move {
                    let _ = stop_rx.await;
                }));
                let sampler = tokio::spawn(sample_evictions(metrics.clone(), evictions.clone()));
                Op::InProcess {
                    stop,
                    join,
                    metrics,
                    sampler,
                }
            }
            OperatorMode::Subprocess(exe) => {
                let dir = std::env::temp_dir().join(format!(
                    "sroll-bench-{}-{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("failed to create {}", dir.display()))?;
                let kubeconfig = dir.join("kubeconfig");
                cluster
                    .write_kubeconfig(&kubeconfig)
                    .context("failed to write the kubeconfig")?;
                let log = std::fs::File::create(dir.join("operator.log"))
                    .context("failed to create the operator log")?;
                let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
                let child = std::process::Command::new(exe)
                    .arg("operator")
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .arg("--leader-elect=false")
                    .arg("--metrics-addr")
                    .arg(addr.to_string())
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("failed to start {} operator", exe.display()))?;
                Op::Subprocess {
                    child,
                    metrics_url: format!("http://{addr}/metrics"),
                    dir,
                }
            }
        };
        let env = Self {
            cluster,
            _sim: sim,
            client,
            evictions,
            op,
        };
        env.wait_operator_ready().await?;
        Ok(env)
    }

    /// Waits until the operator serves its metrics (child process) and the rollouts API answers.
    async fn wait_operator_ready(&self) -> anyhow::Result<()> {
        let rollouts: Api<StatefulsetRollout> = Api::namespaced(self.client.clone(), NAMESPACE);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let api_ok = rollouts.list(&ListParams::default().limit(1)).await.is_ok();
            let op_ok = match &self.op {
                Op::InProcess { .. } => true,
                Op::Subprocess { .. } => self.operator_metrics_text().await.is_ok(),
            };
            if api_ok && op_ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator did not come up within 60 s{}",
                    self.log_hint()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_hint(&self) -> String {
        match &self.op {
            Op::Subprocess { dir, .. } => {
                format!(" (its log: {})", dir.join("operator.log").display())
            }
            Op::InProcess { .. } => String::new(),
        }
    }

    /// The operator's `/metrics` text.
    pub async fn operator_metrics_text(&self) -> anyhow::Result<String> {
        match &self.op {
            Op::InProcess { metrics, .. } => Ok(metrics.encode()),
            Op::Subprocess { metrics_url, .. } => {
                let text = reqwest::Client::new()
                    .get(metrics_url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .context("failed to read the operator's /metrics")?
                    .error_for_status()?
                    .text()
                    .await?;
                Ok(text)
            }
        }
    }

    /// Reconciles the operator ran so far.
    pub async fn reconciles(&self) -> anyhow::Result<f64> {
        let text = self.operator_metrics_text().await?;
        Ok(sum_metric(&text, "sroll_reconcile_total", |_| true))
    }

    /// Peak RSS (bytes) and CPU seconds (user + system) of the child operator process.
    pub fn operator_process(&self) -> Option<ProcessStats> {
        match &self.op {
            Op::Subprocess { child, .. } => process_stats(child.id()),
            Op::InProcess { .. } => None,
        }
    }

    /// Kubesim's request counters for the operator's user agent.
    pub async fn api_counters(&self) -> anyhow::Result<ApiCounters> {
        let req = http::Request::get("/metrics").body(Vec::new())?;
        let text = self
            .client
            .request_text(req)
            .await
            .context("failed to read kubesim's /metrics")?;
        Ok(ApiCounters::parse(&text))
    }

    /// Stops the operator and the cluster.
    pub async fn shutdown(self) {
        match self.op {
            Op::InProcess {
                stop,
                join,
                sampler,
                ..
            } => {
                let _ = stop.send(());
                let _ = tokio::time::timeout(Duration::from_secs(10), join).await;
                sampler.abort();
            }
            Op::Subprocess { mut child, dir, .. } => {
                // The child we started, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        self.cluster.shutdown().await;
    }
}

async fn sample_evictions(metrics: Arc<Metrics>, clock: Arc<EvictionClock>) {
    let counter = metrics
        .evictions
        .get_or_create(&EvictionLabels {
            result: "evicted".into(),
        })
        .clone();
    let mut seen = 0;
    loop {
        let now = counter.get();
        if now != seen {
            seen = now;
            if let Ok(mut last) = clock.last.lock() {
                *last = Some(Instant::now());
            }
            clock.count.store(now, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Resource use of a process.
#[derive(Clone, Copy, Debug)]
pub struct ProcessStats {
    /// Peak resident set size (`VmHWM`), bytes.
    pub peak_rss: u64,
    /// Current resident set size (`VmRSS`), bytes.
    pub rss: u64,
    /// User + system CPU time, seconds.
    pub cpu_seconds: f64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat` (Linux).
pub fn process_stats(pid: u32) -> Option<ProcessStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    // USER_HZ is 100 on every Linux architecture Rust targets (`sysconf(_SC_CLK_TCK)`).
    let cpu_seconds = (ticks(14)? + ticks(15)?) as f64 / 100.0;
    Some(ProcessStats {
        peak_rss: kib("VmHWM:")?,
        rss: kib("VmRSS:")?,
        cpu_seconds,
    })
}

/// Sums the samples of `name` whose label text satisfies `keep`.
pub fn sum_metric(text: &str, name: &str, keep: impl Fn(&str) -> bool) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, labels)) => (m, labels),
                None => (series, ""),
            };
            (metric == name && keep(labels)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// The operator's API requests as kubesim counted them (`apiserver_request_total` with
/// `user_agent="sroll-operator"`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiCounters {
    /// Every request.
    pub requests: f64,
    /// Writes: CREATE, UPDATE, PATCH, DELETE, DELETECOLLECTION (evictions and Events included).
    pub writes: f64,
    /// Accepted evictions (201).
    pub evictions: f64,
    /// Evictions refused by the budget (429).
    pub throttled: f64,
    /// Event writes.
    pub event_writes: f64,
    /// Writes by `VERB resource[/subresource]`: where the writes go.
    pub writes_by_target: BTreeMap<String, f64>,
}

fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=\"");
    labels
        .split_once(key.as_str())
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("", |(v, _)| v)
}

impl ApiCounters {
    /// Parses kubesim's `/metrics`.
    pub fn parse(text: &str) -> Self {
        let mine = |l: &str| l.contains("user_agent=\"sroll-operator\"");
        let write = |l: &str| {
            ["CREATE", "UPDATE", "PATCH", "DELETE", "DELETECOLLECTION"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        };
        let name = "apiserver_request_total";
        let mut writes_by_target = BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with(name)) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if !(mine(series) && write(series)) {
                continue;
            }
            let sub = label(series, "subresource");
            let target = format!(
                "{} {}{}{}",
                label(series, "verb"),
                label(series, "resource"),
                if sub.is_empty() { "" } else { "/" },
                sub
            );
            *writes_by_target.entry(target).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
        Self {
            writes_by_target,
            requests: sum_metric(text, name, mine),
            writes: sum_metric(text, name, |l| mine(l) && write(l)),
            evictions: sum_metric(text, name, |l| {
                mine(l) && l.contains("subresource=\"eviction\"") && l.contains("code=\"201\"")
            }),
            throttled: sum_metric(text, name, |l| {
                mine(l) && l.contains("subresource=\"eviction\"") && l.contains("code=\"429\"")
            }),
            event_writes: sum_metric(text, name, |l| {
                mine(l) && write(l) && l.contains("resource=\"events\"")
            }),
        }
    }

    /// The counts since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            requests: self.requests - earlier.requests,
            writes: self.writes - earlier.writes,
            evictions: self.evictions - earlier.evictions,
            throttled: self.throttled - earlier.throttled,
            event_writes: self.event_writes - earlier.event_writes,
            writes_by_target: self
                .writes_by_target
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v - earlier.writes_by_target.get(k).copied().unwrap_or(0.0),
                    )
                })
                .filter(|(_, v)| *v > 0.0)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_requests_are_told_apart_by_user_agent_and_verb() {
        let text = r#"# HELP apiserver_request_total x
apiserver_request_total{verb="CREATE",group="",resource="pods",subresource="eviction",code="201",user_agent="sroll-operator"} 7
apiserver_request_total{verb="CREATE",group="",resource="pods",subresource="eviction",code="429",user_agent="sroll-operator"} 2
apiserver_request_total{verb="PATCH",group="apps",resource="statefulsets",subresource="",code="200",user_agent="sroll-operator"} 3
apiserver_request_total{verb="CREATE",group="events.k8s.io",resource="events",subresource="",code="201",user_agent="sroll-operator"} 4
apiserver_request_total{verb="WATCH",group="",resource="pods",subresource="",code="200",user_agent="sroll-operator"} 5
apiserver_request_total{verb="PATCH",group="apps",resource="statefulsets",subresource="",code="200",user_agent="kubectl"} 100
"#;
        let c = ApiCounters::parse(text);
        assert_eq!(c.requests, 21.0);
        assert_eq!(c.writes, 16.0);
        assert_eq!(c.evictions, 7.0);
        assert_eq!(c.throttled, 2.0);
        assert_eq!(c.event_writes, 4.0);
        assert_eq!(c.writes_by_target.get("CREATE pods/eviction"), Some(&9.0));
        assert_eq!(c.writes_by_target.get("PATCH statefulsets"), Some(&3.0));
        assert_eq!(sum_metric(text, "apiserver_request_total", |_| true), 121.0);
    }
}
