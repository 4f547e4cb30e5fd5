//! One benchmark environment: kubesim (API server over HTTP on 127.0.0.1, controllers, scheduler
//! and fake kubelets with the scenario's pod timing) plus the operator, either in this process
//! (its metrics readable directly, evictions time-stamped by a 1 ms sampler) or as a `sroll
//! operator` child process (so its memory and CPU are its own: `/proc/<pid>/status` `VmHWM` and
//! `/proc/<pid>/stat` `utime + stime`).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use kube::{Api, Client, api::ListParams};
use kubesim::{
    cluster::{ClusterConfig, Handle},
    controllers::runtime::{SimConfig, Simulation},
    kubelet::KubeletConfig,
};
use sroll_api::StatefulsetRollout;
use sroll_operator::{
    Settings,
    integrations::{IntegrationSettings, SecretLocation},
    metrics::{EvictionLabels, Metrics},
};
use sroll_testkit::{OperatorProcess, RunningOperator, Stack};

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
        operator: RunningOperator,
        sampler: tokio::task::JoinHandle<()>,
    },
    Subprocess(Box<OperatorProcess>),
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

impl Env {
    /// Starts kubesim, the simulation, the CRD, the `bench` namespace and the operator.
    pub async fn start(cfg: EnvConfig) -> anyhow::Result<Self> {
        let stack = Stack::start(ClusterConfig {
            nodes: cfg.nodes,
            speed: cfg.speed,
            history_limit: 200_000,
            ..ClusterConfig::default()
        })
        .await?;
        // The simulation is started here rather than through `ClusterConfig::simulate` so the
        // kubelets get the scenario's timing.
        let sim = if cfg.simulate {
            Some(
                Simulation::start(
                    stack.cluster.api().clone(),
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
        stack.namespace(NAMESPACE).await?;
        if let Some(prepare) = cfg.prepare {
            prepare(&stack.cluster)?;
        }
        let evictions = Arc::new(EvictionClock::default());
        let op = match &cfg.operator {
            OperatorMode::InProcess => {
                let mut integrations = IntegrationSettings::default();
                if let Some(slack) = &cfg.slack {
                    integrations.slack_api_url = Some(slack.api_url.clone());
                    integrations.slack_token_secret = Some(slack.token.clone());
                }
                let operator = RunningOperator::start(
                    stack.operator_client().await?,
                    Settings {
                        instance: "sroll-bench".into(),
                        integrations,
                        ..Settings::default()
                    },
                );
                let sampler = tokio::spawn(sample_evictions(
                    operator.metrics.clone(),
                    evictions.clone(),
                ));
                Op::InProcess { operator, sampler }
            }
            OperatorMode::Subprocess(exe) => Op::Subprocess(Box::new(
                OperatorProcess::launch(
                    exe,
                    &stack.cluster,
                    vec!["--leader-elect=false".into()],
                    "warn",
                )
                .with_context(|| format!("failed to start {} operator", exe.display()))?,
            )),
        };
        let Stack {
            cluster, client, ..
        } = stack;
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
                Op::Subprocess(_) => self.operator_metrics_text().await.is_ok(),
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
            Op::Subprocess(op) => format!(" (its log: {})", op.log_path().display()),
            Op::InProcess { .. } => String::new(),
        }
    }

    /// The operator's `/metrics` text.
    pub async fn operator_metrics_text(&self) -> anyhow::Result<String> {
        match &self.op {
            Op::InProcess { operator, .. } => Ok(operator.metrics.encode()),
            Op::Subprocess(op) => {
                let text = reqwest::Client::new()
                    .get(op.metrics_url())
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
            Op::Subprocess(op) => process_stats(op.pid()?),
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
            Op::InProcess { operator, sampler } => {
                let _ = operator.stop_within(Duration::from_secs(10)).await;
                sampler.abort();
            }
            // The child we started, by its handle.
            Op::Subprocess(op) => op.kill_and_clean_up().await,
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
