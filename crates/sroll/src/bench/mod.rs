//! `sroll bench`: rollout speed against the physical limit and against native StatefulSets, and
//! the operator's cost, measured on kubesim in one invocation so machine noise cancels (issue 9).
//!
//! Every scenario starts a fresh [`env::Env`] (kubesim over HTTP on 127.0.0.1 with its controllers
//! and fake kubelets, and the operator) and reports measured time, the ideal time of DESIGN.md's
//! performance model ([`model`]) and their ratio:
//!
//! 1. speed, uniform pods: sroll `Partitioned` and `OnDelete`, native `RollingUpdate` with
//!    `maxUnavailable` 1 (run on fewer pods and extrapolated) and with `maxUnavailable` = the
//!    budget;
//! 2. speed, jittered pods: sroll's streaming against waves computed on the same pod timings;
//! 3. pacing (`minPodEvictionIntervalSeconds`);
//! 4. pause reaction, p50 and p99;
//! 5. scale: many StatefulSets rolling at once, the operator a child process so its peak RSS and
//!    CPU time are its own;
//! 6. notifications: Slack messages and updates per rollout, against a local fake Slack API;
//! 7. in place: the same pods, budget and image-only release under `podUpdatePolicy: ReCreate`
//!    and `InPlaceIfPossible`, each against its own ideal from kubesim's timing model.
//!
//! The table goes to standard output and, with `--json PATH`, the same rows as JSON.

pub mod env;
pub mod model;
mod probe;
mod report;
mod slack;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{Pod, Secret},
        policy::v1::PodDisruptionBudget,
    },
    jiff::SignedDuration,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use kubesim::kubelet::{Delay, KubeletConfig};
use serde_json::{Value, json};
use sroll_api::{Phase, StatefulsetRollout, labels};
use sroll_operator::integrations::SecretLocation;

pub use report::{Machine, Report, Row, Target};

use env::{Env, EnvConfig, NAMESPACE, OperatorMode};

/// Flags of `sroll bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// A reduced version of every scenario (a minute or two in a debug build); CI's smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Run only these scenarios (1-8); repeat or separate with commas. Default: all.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(1..=8))]
    pub only: Vec<u8>,
    /// Pods of the single-set scenarios 1, 2, 6, 7 and 8 (default 1000, 20 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub pods: Option<u32>,
    /// Scenario 5: StatefulSets rolling at once (default 100, 2 with --quick).
    #[arg(long)]
    pub scale_sets: Option<u32>,
    /// Scenario 5: pods per StatefulSet (default 1000, 10 with --quick).
    #[arg(long)]
    pub scale_pods: Option<u32>,
    /// Scenario 5: simulated-time speed factor (below 1 slows the pods down so the simulated
    /// cluster keeps up with many pods on a small machine; default 1).
    #[arg(long)]
    pub scale_speed: Option<f64>,
    /// Scenario 5 without kubesim's controllers and without a release: the sets' pods are stored
    /// Ready (as the StatefulSet controller and the kubelets would leave them) before the operator
    /// starts, the operator lists and reconciles them, then every pod changes status once; the
    /// operator's memory and CPU are read after that. For sizes the simulation cannot create in
    /// reasonable time on a small machine.
    #[arg(long)]
    pub scale_watch_only: bool,
    /// The `sroll` executable run as the operator child process of scenario 5 (default: this one).
    #[arg(long, value_name = "PATH", hide = true)]
    pub operator_exe: Option<PathBuf>,
}

/// Simulated kubelet timing of the uniform scenarios: containers stop in 0.5 s and start in 1.5 s,
/// a pod cycle of 2 s (simulated).
const STOP_SECS: f64 = 0.5;
const START_SECS: f64 = 1.5;
/// Jittered scenarios: start uniform in [0.5 s, 2.5 s], a pod cycle uniform in [1 s, 3 s].
const JITTER_START: (f64, f64) = (0.5, 2.5);
/// The PodDisruptionBudget of every sroll scenario.
const BUDGET_PERCENT: u32 = 10;

/// Sizes of one run.
#[derive(Clone, Debug)]
struct Sizes {
    quick: bool,
    /// Speed factor of scenarios 1-4 and 6.
    speed: f64,
    nodes: usize,
    s1_pods: u32,
    s1_native1_pods: u32,
    s2_pods: u32,
    s3_pods: u32,
    s3_interval: i64,
    s4_pods: u32,
    s4_trials: usize,
    s5_sets: u32,
    s5_pods: u32,
    s5_speed: f64,
    s5_watch_only: bool,
    s6_pods: u32,
    s7_pods: u32,
}

impl Sizes {
    fn of(args: &BenchArgs) -> Self {
        if args.quick {
            Self {
                quick: true,
                speed: 4.0,
                nodes: 4,
                s1_pods: args.pods.unwrap_or(20),
                s1_native1_pods: 3,
                s2_pods: args.pods.unwrap_or(20),
                s3_pods: 5,
                s3_interval: 1,
                s4_pods: 20,
                s4_trials: 3,
                s5_sets: args.scale_sets.unwrap_or(2),
                s5_pods: args.scale_pods.unwrap_or(10),
                s5_speed: args.scale_speed.unwrap_or(4.0),
                s5_watch_only: args.scale_watch_only,
                s6_pods: args.pods.unwrap_or(20),
                s7_pods: args.pods.unwrap_or(20),
            }
        } else {
            Self {
                quick: false,
                speed: 1.0,
                nodes: 12,
                s1_pods: args.pods.unwrap_or(1000),
                s1_native1_pods: 20,
                s2_pods: args.pods.unwrap_or(1000),
                s3_pods: 30,
                s3_interval: 1,
                s4_pods: 300,
                s4_trials: 20,
                s5_sets: args.scale_sets.unwrap_or(100),
                s5_pods: args.scale_pods.unwrap_or(1000),
                s5_speed: args.scale_speed.unwrap_or(1.0),
                s5_watch_only: args.scale_watch_only,
                s6_pods: args.pods.unwrap_or(1000),
                s7_pods: args.pods.unwrap_or(1000),
            }
        }
    }

    /// Real seconds of a uniform pod cycle at `speed`.
    fn cycle(speed: f64) -> f64 {
        (STOP_SECS + START_SECS) / speed
    }
}

fn budget_of(pods: u32) -> u32 {
    (pods * BUDGET_PERCENT).div_ceil(100).max(1)
}

fn secs(s: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(s)
}

fn uniform_kubelet() -> KubeletConfig {
    KubeletConfig {
        start_delay: Delay::Fixed(secs(START_SECS)),
        image_delays: Vec::new(),
        shutdown_delay: secs(STOP_SECS),
        ..KubeletConfig::default()
    }
}

fn jittered_kubelet() -> KubeletConfig {
    KubeletConfig {
        start_delay: Delay::Uniform {
            min: secs(JITTER_START.0),
            max: secs(JITTER_START.1),
        },
        image_delays: Vec::new(),
        shutdown_delay: secs(STOP_SECS),
        ..KubeletConfig::default()
    }
}

/// Runs the benchmark, prints the table and writes the JSON.
pub async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let sizes = Sizes::of(&args);
    if std::env::var_os("RUST_LOG").is_some() {
        sroll_operator::telemetry::init(sroll_operator::telemetry::LogFormat::Text);
    }
    let exe = match &args.operator_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("failed to find the sroll executable")?,
    };
    let wanted = |n: u8| args.only.is_empty() || args.only.contains(&n);
    let started = Instant::now();
    let mut report = Report::new(sizes.quick);
    println!(
        "sroll bench{}: {} · {}",
        if sizes.quick { " --quick" } else { "" },
        report.machine.describe(),
        report.build
    );
    type Scenario = for<'a> fn(
        &'a Sizes,
        &'a std::path::Path,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = anyhow::Result<Vec<Row>>> + 'a>,
    >;
    let scenarios: [(u8, &str, Scenario); 8] = [
        (1, "speed, uniform pods", |s, _| Box::pin(speed_uniform(s))),
        (2, "speed, jittered pods", |s, _| {
            Box::pin(speed_jittered(s))
        }),
        (3, "pacing", |s, _| Box::pin(pacing(s))),
        (4, "pause reaction", |s, _| Box::pin(pause_reaction(s))),
        (5, "scale", |s, exe| Box::pin(scale(s, exe))),
        (6, "notifications", |s, _| Box::pin(notifications(s))),
        (7, "in place vs recreate", |s, _| Box::pin(in_place(s))),
        (8, "CloneSet: surge vs in place", |s, _| {
            Box::pin(clone_sets(s))
        }),
    ];
    for (n, title, f) in scenarios {
        if !wanted(n) {
            continue;
        }
        println!("▶ scenario {n}: {title}");
        let t = Instant::now();
        let rows = match f(&sizes, &exe).await {
            Ok(rows) => rows,
            Err(e) => {
                let message = format!("scenario {n} ({title}) failed: {e:#}");
                println!("  {message}");
                report.failures.push(message);
                continue;
            }
        };
        for r in &rows {
            println!("  {}", r.one_line());
            let profile: Vec<String> = r
                .metrics
                .iter()
                .filter_map(|(k, v)| {
                    Some(format!("{} {v:.2}", k.strip_prefix("writes_per_pod: ")?))
                })
                .collect();
            if !profile.is_empty() {
                println!("    operator writes per pod: {}", profile.join(", "));
            }
        }
        println!("  ({:.1} s)", t.elapsed().as_secs_f64());
        report.rows.extend(rows);
    }
    report.total_seconds = started.elapsed().as_secs_f64();
    report.evaluate_targets();
    println!();
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("failed to write {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    if !report.failures.is_empty() {
        bail!("{}", report.failures.join("\n"));
    }
    Ok(report)
}

// ---- objects ------------------------------------------------------------------------------------

fn image(version: u32) -> String {
    format!("example.com/bench:{version}.0")
}

fn template(app: &str, version: u32) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "app", "image": image(version)}]
        }
    })
}

async fn create_pdb(client: &Client, app: &str, max_unavailable: Value) -> anyhow::Result<()> {
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": {"app": app}}}
    }))?;
    Api::<PodDisruptionBudget>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &pdb)
        .await
        .with_context(|| format!("failed to create the PodDisruptionBudget {app}"))?;
    Ok(())
}

/// Creates a rollout of `pods` pods at version 1 (and its budget), without waiting.
async fn create_rollout(
    client: &Client,
    app: &str,
    pods: u32,
    extra_spec: Value,
) -> anyhow::Result<()> {
    create_pdb(client, app, json!(format!("{BUDGET_PERCENT}%"))).await?;
    let mut spec = json!({
        "percent": 100,
        "rolloutIdentity": "release-1",
        "progressDeadlineSeconds": 600,
        "sts": {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": app},
            "spec": {"replicas": pods, "serviceName": app, "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": {"app": app}}, "template": template(app, 1)}}
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let rollout: StatefulsetRollout = serde_json::from_value(json!({
        "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": spec
    }))?;
    Api::<StatefulsetRollout>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &rollout)
        .await
        .with_context(|| format!("failed to create the rollout {app}"))?;
    Ok(())
}

async fn patch_rollout(client: &Client, app: &str, body: Value) -> anyhow::Result<i64> {
    let r = Api::<StatefulsetRollout>::namespaced(client.clone(), NAMESPACE)
        .patch(
            app,
            &PatchParams {
                field_manager: Some("sroll-bench".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(body),
        )
        .await
        .with_context(|| format!("failed to patch the rollout {app}"))?;
    Ok(r.metadata.generation.unwrap_or_default())
}

/// The patch that releases `version` of `app`.
fn release(app: &str, version: u32) -> Value {
    json!({"spec": {"rolloutIdentity": format!("release-{version}"),
        "sts": {"spec": {"template": template(app, version)}}}})
}

fn is_done(r: &StatefulsetRollout, generation: i64) -> bool {
    r.status.as_ref().is_some_and(|s| {
        s.phase == Some(Phase::Done) && s.observed_generation.unwrap_or(0) >= generation
    })
}

/// The rollouts of the bench namespace as a watch keeps them (a reflector store), for reading
/// progress without listing them.
struct RolloutWatch {
    store: kube::runtime::reflector::Store<StatefulsetRollout>,
    task: tokio::task::JoinHandle<()>,
}

impl RolloutWatch {
    /// Starts the watch and waits for its first list.
    async fn start(client: &Client) -> anyhow::Result<Self> {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, reflector, watcher};
        let api = Api::<StatefulsetRollout>::namespaced(client.clone(), NAMESPACE);
        let (store, writer) = reflector::store();
        // The bench reads only each rollout's phase, generation and reason: the per-pod list of
        // its status (one entry per pod, 100,000 at 100 × 1,000) is dropped as each version
        // arrives, so the measuring harness does not hold a copy of it in the process whose
        // memory is reported as the simulated cluster's.
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|r| {
                if let Some(s) = r.status.as_mut() {
                    s.pods = Default::default();
                }
            })
            .reflect(writer)
            .applied_objects();
        let task = tokio::spawn(stream.for_each(|_| async {}));
        tokio::time::timeout(Duration::from_secs(60), store.wait_until_ready())
            .await
            .context("the bench's rollout watch did not list the rollouts within 60 s")?
            .context("the bench's rollout watch stopped before its first list")?;
        Ok(RolloutWatch { store, task })
    }

    /// Whether every rollout has a status with a phase (was reconciled at least once).
    fn all_have_a_phase(&self) -> bool {
        self.store
            .state()
            .iter()
            .all(|r| r.status.as_ref().is_some_and(|s| s.phase.is_some()))
    }

    /// A rollout that failed at `generation` (`RolloutFailed`, a terminal phase): its name and
    /// the status's reason. The bench gives up at once rather than waiting for a Done that cannot
    /// come.
    fn failed(&self, generation: i64) -> Option<(String, String)> {
        self.store.state().iter().find_map(|r| {
            let s = r.status.as_ref()?;
            (s.phase == Some(Phase::Failed) && s.observed_generation.unwrap_or(0) >= generation)
                .then(|| {
                    (
                        r.metadata.name.clone().unwrap_or_default(),
                        s.reason.clone().unwrap_or_default(),
                    )
                })
        })
    }

    /// The names of the rollouts [`is_done`] at `generation`.
    fn done(&self, generation: i64) -> Vec<String> {
        self.store
            .state()
            .iter()
            .filter(|r| is_done(r, generation))
            .filter_map(|r| r.metadata.name.clone())
            .collect()
    }
}

impl Drop for RolloutWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` every `every` until it returns `Some`, failing after `limit`.
async fn poll<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("gave up after {} s waiting for {what}", limit.as_secs());
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until the rollout `app` is done at `generation` or later.
async fn wait_done(
    client: &Client,
    app: &str,
    generation: i64,
    limit: Duration,
) -> anyhow::Result<()> {
    let api = Api::<StatefulsetRollout>::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + limit;
    loop {
        let r = api.get(app).await.context("failed to read the rollout")?;
        let s = r.status.clone().unwrap_or_default();
        if s.phase == Some(Phase::Failed) {
            bail!("the rollout {app} failed: {}", s.reason.unwrap_or_default());
        }
        if is_done(&r, generation) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "gave up after {} s waiting for the rollout {app} to be Done at generation {generation}: generation {:?}, observed {:?}, phase {:?}, {} of {:?} updated, reason {:?}",
                limit.as_secs(),
                r.metadata.generation,
                s.observed_generation,
                s.phase,
                s.updated_replicas.unwrap_or(0),
                s.replicas,
                s.reason
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Generous limit for a rollout whose ideal time is `ideal` seconds.
fn limit_for(ideal: f64) -> Duration {
    Duration::from_secs_f64(120.0 + ideal * 20.0)
}

/// Measures one release of `app` (created at version 1 and done): the time from the patch to Done,
/// and the operator's API counters and reconciles over that time.
struct Measured {
    seconds: f64,
    api: env::ApiCounters,
    reconciles: f64,
    /// The most pods of the app seen unavailable at once (a pod watch; missing pods count).
    max_unavailable: usize,
    /// When the release was written, the first pod went out of service and the last came back.
    started: Instant,
    span: probe::Span,
}

impl Measured {
    /// Seconds from the first pod out of service to the last one back (the span the ideal's pod
    /// cycles describe), and from the release's write to the first pod out and from the last pod
    /// back to `Done`; `None` when the watch saw no pod leave.
    fn pod_span(&self) -> Option<(f64, f64, f64)> {
        let (out, back) = (self.span.first_out?, self.span.last_back?);
        let before = out.checked_duration_since(self.started)?.as_secs_f64();
        let after = self.seconds - back.checked_duration_since(self.started)?.as_secs_f64();
        Some((self.span.seconds()?, before, after))
    }
}

async fn measure_release(
    env: &Env,
    app: &str,
    version: u32,
    ideal: f64,
) -> anyhow::Result<Measured> {
    let api0 = env.api_counters().await?;
    let rec0 = env.reconciles().await?;
    let mut probe = probe::Unavailability::start(&env.client, app, replicas_of(env, app).await?);
    probe.synced(Duration::from_secs(30)).await;
    let t0 = Instant::now();
    let generation = patch_rollout(&env.client, app, release(app, version)).await?;
    wait_done(&env.client, app, generation, limit_for(ideal)).await?;
    let seconds = t0.elapsed().as_secs_f64();
    let seen = probe.stop();
    let api = env.api_counters().await?.since(&api0);
    let reconciles = env.reconciles().await? - rec0;
    Ok(Measured {
        seconds,
        api,
        reconciles,
        max_unavailable: seen.max_unavailable,
        started: t0,
        span: seen.span,
    })
}

/// `writes_per_pod: VERB resource` entries: where the operator's writes go.
fn write_profile(api: &env::ApiCounters, pods: u32) -> impl Iterator<Item = (String, f64)> + '_ {
    let p = f64::from(pods.max(1));
    api.writes_by_target
        .iter()
        .map(move |(k, v)| (format!("writes_per_pod: {k}"), v / p))
}

/// `spec.sts.spec.replicas` of rollout `app`.
async fn replicas_of(env: &Env, app: &str) -> anyhow::Result<usize> {
    let r = Api::<StatefulsetRollout>::namespaced(env.client.clone(), NAMESPACE)
        .get(app)
        .await
        .with_context(|| format!("failed to read rollout {app}"))?;
    Ok(usize::try_from(r.spec.replicas()).unwrap_or(0))
}

fn per_pod_metrics(m: &Measured, pods: u32) -> BTreeMap<String, f64> {
    let p = f64::from(pods.max(1));
    let mut out = BTreeMap::from([
        ("api_requests_per_pod".into(), m.api.requests / p),
        ("api_writes_per_pod".into(), m.api.writes / p),
        ("event_writes_per_pod".into(), m.api.event_writes / p),
        ("reconciles_per_pod".into(), m.reconciles / p),
        ("evictions".into(), m.api.evictions),
        ("evictions_throttled".into(), m.api.throttled),
        ("max_unavailable".into(), m.max_unavailable as f64),
    ]);
    out.extend(write_profile(&m.api, pods));
    out
}

async fn start_env(sizes: &Sizes, kubelet: KubeletConfig) -> anyhow::Result<Env> {
    Env::start(EnvConfig {
        speed: sizes.speed,
        nodes: sizes.nodes,
        kubelet,
        operator: OperatorMode::InProcess,
        slack: None,
        simulate: true,
        prepare: None,
    })
    .await
}

/// Creates `app` at version 1 with `pods` pods and waits until it is done.
async fn setup_rollout(env: &Env, app: &str, pods: u32, extra_spec: Value) -> anyhow::Result<()> {
    create_rollout(&env.client, app, pods, extra_spec).await?;
    wait_done(&env.client, app, 1, Duration::from_secs(600)).await
}

// ---- scenario 1 ---------------------------------------------------------------------------------

async fn speed_uniform(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let pods = sizes.s1_pods;
    let budget = budget_of(pods);
    let cycle = Sizes::cycle(sizes.speed);
    let ideal = model::uniform_ideal(pods as usize, budget as usize, cycle);
    let basis =
        format!("ideal ceil({pods}/{budget}) × {cycle:.2} s; PDB maxUnavailable {BUDGET_PERCENT}%");
    let mut rows = Vec::new();
    for strategy in ["Partitioned", "OnDelete"] {
        let env = start_env(sizes, uniform_kubelet()).await?;
        setup_rollout(&env, "web", pods, json!({"strategy": strategy})).await?;
        let m = measure_release(&env, "web", 2, ideal).await?;
        env.shutdown().await;
        rows.push(Row::new(
            1,
            format!("sroll {strategy}"),
            pods,
            m.seconds,
            ideal,
            format!(
                "{basis}; {:.2} API writes/pod, {:.2} reconciles/pod; at most {} of {budget} unavailable",
                m.api.writes / f64::from(pods),
                m.reconciles / f64::from(pods),
                m.max_unavailable
            ),
            per_pod_metrics(&m, pods),
        ));
    }
    // Native maxUnavailable = the budget (the 1.35 beta field).
    let env = start_env(sizes, uniform_kubelet()).await?;
    let t = native_rollout(&env, "native", pods, budget, ideal).await?;
    env.shutdown().await;
    rows.push(Row::new(
        1,
        format!("native RollingUpdate maxUnavailable {budget}"),
        pods,
        t,
        ideal,
        basis.clone(),
        BTreeMap::new(),
    ));
    // Native maxUnavailable 1 on fewer pods, extrapolated per pod.
    let small = sizes.s1_native1_pods;
    let env = start_env(sizes, uniform_kubelet()).await?;
    let small_ideal = f64::from(small) * cycle;
    let t = native_rollout(&env, "native1", small, 1, small_ideal).await?;
    env.shutdown().await;
    let per_pod = t / f64::from(small);
    rows.push(Row::new(
        1,
        "native RollingUpdate maxUnavailable 1".into(),
        pods,
        per_pod * f64::from(pods),
        ideal,
        format!(
            "EXTRAPOLATED: measured {small} pods in {t:.1} s ({per_pod:.2} s/pod) × {pods}; {basis}"
        ),
        BTreeMap::from([
            ("measured_pods".into(), f64::from(small)),
            ("measured_seconds".into(), t),
        ]),
    ));
    Ok(rows)
}

/// A plain StatefulSet with `RollingUpdate` and `maxUnavailable`, created at version 1 and rolled to
/// version 2 by the StatefulSet controller alone; returns the rollout time.
async fn native_rollout(
    env: &Env,
    app: &str,
    pods: u32,
    max_unavailable: u32,
    ideal: f64,
) -> anyhow::Result<f64> {
    let api: Api<StatefulSet> = Api::namespaced(env.client.clone(), NAMESPACE);
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {"replicas": pods, "serviceName": app, "podManagementPolicy": "Parallel",
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}},
                 "selector": {"matchLabels": {"app": app}}, "template": template(app, 1)}
    }))?;
    api.create(&PostParams::default(), &sts)
        .await
        .context("failed to create the native StatefulSet")?;
    let settled = |s: &StatefulSet, generation: i64| {
        let st = s.status.clone().unwrap_or_default();
        st.observed_generation.unwrap_or(0) >= generation
            && st.updated_replicas.unwrap_or(0) == pods as i32
            && st.ready_replicas.unwrap_or(0) == pods as i32
            && st.update_revision.is_some()
            && st.current_revision == st.update_revision
    };
    let wait = |generation: i64, limit: Duration| {
        let api = api.clone();
        async move {
            poll(
                "the native StatefulSet to settle",
                limit,
                Duration::from_millis(20),
                || async {
                    let s = api
                        .get(app)
                        .await
                        .context("failed to read the StatefulSet")?;
                    Ok(settled(&s, generation).then_some(()))
                },
            )
            .await
        }
    };
    wait(1, Duration::from_secs(600)).await?;
    let t0 = Instant::now();
    let s = api
        .patch(
            app,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": template(app, 2)}})),
        )
        .await
        .context("failed to patch the native StatefulSet")?;
    wait(s.metadata.generation.unwrap_or(2), limit_for(ideal)).await?;
    Ok(t0.elapsed().as_secs_f64())
}

// ---- scenario 2 ---------------------------------------------------------------------------------

/// The cycle time (real seconds) of every pod of `app` at `version`, highest ordinal first (the
/// operator's eviction order): the kubelet's shutdown delay plus the start delay it draws for the
/// pod, exactly as the simulation does ([`KubeletConfig::start_delay_for`]).
async fn pod_cycles(
    client: &Client,
    app: &str,
    version: u32,
    kubelet: &KubeletConfig,
    speed: f64,
) -> anyhow::Result<Vec<f64>> {
    let list = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .context("failed to list the pods")?;
    let img = image(version);
    let mut timed: Vec<(u32, f64)> = list
        .items
        .iter()
        .map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let ordinal = name
                .rsplit_once('-')
                .and_then(|(_, o)| o.parse::<u32>().ok())
                .unwrap_or(0);
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let start = kubelet.start_delay_for(&img, &uid, 0).as_secs_f64();
            (
                ordinal,
                (kubelet.shutdown_delay.as_secs_f64() + start) / speed,
            )
        })
        .collect();
    timed.sort_by_key(|t| std::cmp::Reverse(t.0));
    Ok(timed.into_iter().map(|(_, c)| c).collect())
}

async fn speed_jittered(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let pods = sizes.s2_pods;
    let budget = budget_of(pods);
    let kubelet = jittered_kubelet();
    let env = start_env(sizes, kubelet.clone()).await?;
    setup_rollout(&env, "web", pods, json!({})).await?;
    let rough = model::uniform_ideal(pods as usize, budget as usize, 3.0 / sizes.speed);
    let m = measure_release(&env, "web", 2, rough).await?;
    let cycles = pod_cycles(&env.client, "web", 2, &kubelet, sizes.speed).await?;
    env.shutdown().await;
    if cycles.len() != pods as usize {
        bail!("expected {pods} pods at version 2, found {}", cycles.len());
    }
    let streaming = model::streaming_ideal(&cycles, budget as usize, 0.0);
    let waves = model::waves(&cycles, budget as usize, 0.0);
    let timing = format!(
        "pod cycle uniform in [{:.2}, {:.2}] s; per-pod timings recomputed from the kubelet's draws",
        (STOP_SECS + JITTER_START.0) / sizes.speed,
        (STOP_SECS + JITTER_START.1) / sizes.speed
    );
    Ok(vec![
        Row::new(
            2,
            "sroll streaming (measured)".into(),
            pods,
            m.seconds,
            streaming,
            format!(
                "ideal = streaming schedule of the same pods with budget {budget}; {timing}; {} than waves; at most {} of {budget} unavailable",
                if m.seconds < waves { "FASTER" } else { "SLOWER" },
                m.max_unavailable
            ),
            per_pod_metrics(&m, pods),
        ),
        Row::new(
            2,
            format!("waves of {budget} (computed)"),
            pods,
            waves,
            streaming,
            "evict a batch, wait for its slowest pod; simulated on the same per-pod timings with zero overhead".into(),
            BTreeMap::from([("waves".into(), f64::from(pods.div_ceil(budget)))]),
        ),
    ])
}

// ---- scenario 3 ---------------------------------------------------------------------------------

async fn pacing(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let pods = sizes.s3_pods;
    let budget = budget_of(pods);
    let interval = sizes.s3_interval;
    let cycle = Sizes::cycle(sizes.speed);
    let ideal = model::streaming_ideal(
        &vec![cycle; pods as usize],
        budget as usize,
        interval as f64,
    );
    let env = start_env(sizes, uniform_kubelet()).await?;
    setup_rollout(
        &env,
        "web",
        pods,
        json!({"minPodEvictionIntervalSeconds": interval}),
    )
    .await?;
    let m = measure_release(&env, "web", 2, ideal).await?;
    env.shutdown().await;
    Ok(vec![Row::new(
        3,
        format!("sroll, minPodEvictionIntervalSeconds {interval}"),
        pods,
        m.seconds,
        ideal,
        format!(
            "ideal: evictions {interval} s apart within budget {budget}, pod cycle {cycle:.2} s, last pod back"
        ),
        per_pod_metrics(&m, pods),
    )])
}

// ---- scenario 4 ---------------------------------------------------------------------------------

/// How long scenario 4 watches for further evictions once the rollout reports Paused.
const SETTLE: Duration = Duration::from_millis(500);

/// Returns once no eviction has been counted for `quiet` (at most 30 s).
async fn settle_evictions(clock: &env::EvictionClock, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = clock.count();
        tokio::time::sleep(quiet).await;
        if clock.count() == seen || Instant::now() > deadline {
            return;
        }
    }
}

async fn pause_reaction(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let pods = sizes.s4_pods;
    let env = start_env(sizes, jittered_kubelet()).await?;
    setup_rollout(&env, "web", pods, json!({})).await?;
    let api = Api::<StatefulsetRollout>::namespaced(env.client.clone(), NAMESPACE);
    let mut version = 1;
    let mut reactions = Vec::new();
    let mut after_pause = 0u64;
    let trials_started = Instant::now();
    while reactions.len() < sizes.s4_trials {
        // A rollout in progress: start the next release when the last one is done.
        let r = api.get("web").await?;
        let status = r.status.clone().unwrap_or_default();
        let remaining = status.replicas.unwrap_or(0) - status.updated_replicas.unwrap_or(0);
        if status.phase == Some(Phase::Done) || remaining < budget_of(pods) as i32 {
            if status.phase != Some(Phase::Done) {
                wait_done(
                    &env.client,
                    "web",
                    r.metadata.generation.unwrap_or(0),
                    Duration::from_secs(300),
                )
                .await?;
            }
            version += 1;
            patch_rollout(&env.client, "web", release("web", version)).await?;
        }
        // Pause right after an eviction, when the operator is busiest.
        let seen = env.evictions.count();
        poll(
            "an eviction",
            Duration::from_secs(120),
            Duration::from_millis(1),
            || async { Ok((env.evictions.count() > seen).then_some(())) },
        )
        .await?;
        let before = env.evictions.count();
        let written = Instant::now();
        patch_rollout(
            &env.client,
            "web",
            json!({"spec": {"pauseRequested": true}}),
        )
        .await?;
        poll(
            "the rollout to report Paused",
            Duration::from_secs(60),
            Duration::from_millis(10),
            || async {
                let r = api.get("web").await?;
                Ok((r.status.and_then(|s| s.phase) == Some(Phase::Paused)).then_some(()))
            },
        )
        .await?;
        // Paused is written by the reconcile that saw the request, after its last eviction, and
        // every later reconcile plans from the paused spec: an eviction after this point would be
        // a bug, not a slow reaction. Wait until no eviction has been counted for 0.5 s so the
        // sampler and any such stray eviction are seen.
        settle_evictions(&env.evictions, SETTLE).await;
        let reaction = match env.evictions.last() {
            Some(last) if last > written => (last - written).as_secs_f64(),
            _ => 0.0,
        };
        after_pause += env.evictions.count() - before;
        reactions.push(reaction);
        patch_rollout(
            &env.client,
            "web",
            json!({"spec": {"pauseRequested": false}}),
        )
        .await?;
    }
    let trials_seconds = trials_started.elapsed().as_secs_f64();
    env.shutdown().await;
    let p50 = model::quantile(&reactions, 0.5);
    let p99 = model::quantile(&reactions, 0.99);
    let max = reactions.iter().copied().fold(0.0, f64::max);
    let notes = format!(
        "{} trials in {trials_seconds:.1} s, each paused right after an eviction; {after_pause} evictions landed after the pause was written; max {max:.3} s; ideal column = the target",
        reactions.len()
    );
    let extra = BTreeMap::from([
        ("trials".into(), reactions.len() as f64),
        ("evictions_after_pause".into(), after_pause as f64),
        ("max_seconds".into(), max),
        ("trials_seconds".into(), trials_seconds),
    ]);
    Ok(vec![
        Row::new(
            4,
            "pause → last eviction, p50".into(),
            pods,
            p50,
            0.5,
            notes.clone(),
            extra.clone(),
        ),
        Row::new(
            4,
            "pause → last eviction, p99".into(),
            pods,
            p99,
            0.5,
            notes,
            extra,
        ),
    ])
}

// ---- scenario 5 ---------------------------------------------------------------------------------

async fn scale(sizes: &Sizes, exe: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    if sizes.s5_watch_only {
        return scale_watch_only(sizes, exe).await;
    }
    let (sets, pods) = (sizes.s5_sets, sizes.s5_pods);
    let total = sets * pods;
    let budget = budget_of(pods);
    let cycle = Sizes::cycle(sizes.s5_speed);
    let ideal = model::uniform_ideal(pods as usize, budget as usize, cycle);
    let env = Env::start(EnvConfig {
        speed: sizes.s5_speed,
        nodes: (total as usize / 5000).max(sizes.nodes),
        kubelet: uniform_kubelet(),
        operator: OperatorMode::Subprocess(exe.to_path_buf()),
        slack: None,
        simulate: true,
        prepare: None,
    })
    .await?;
    let names: Vec<String> = (0..sets).map(|i| format!("set{i:03}")).collect();
    let setup = Instant::now();
    for name in &names {
        create_rollout(&env.client, name, pods, json!({})).await?;
    }
    // Progress is read from a watch's copy of the rollouts, not by listing them: a list carries
    // every rollout's `status.pods` (one entry per pod), and listing 100 of them every 250 ms
    // would be a large part of what this process (the simulated cluster) serves.
    let rollouts = RolloutWatch::start(&env.client).await?;
    poll(
        "every set to be created",
        Duration::from_secs(1800),
        Duration::from_millis(500),
        || async { Ok((rollouts.done(1).len() == names.len()).then_some(())) },
    )
    .await?;
    let setup_seconds = setup.elapsed().as_secs_f64();
    let before = env.operator_process();
    // The bench process is the simulated cluster (kubesim's API server, controllers and
    // kubelets; the operator is the child process): its own CPU and memory.
    let sim_before = env::process_stats(std::process::id());
    let api0 = env.api_counters().await?;
    let rec0 = env.reconciles().await?;
    let t0 = Instant::now();
    for name in &names {
        patch_rollout(&env.client, name, release(name, 2)).await?;
    }
    let mut finished: BTreeMap<String, f64> = BTreeMap::new();
    let deadline = Instant::now() + limit_for(ideal * f64::from(sets));
    while finished.len() < names.len() {
        if Instant::now() > deadline {
            bail!(
                "gave up waiting for every set to be rolled: {} of {} done",
                finished.len(),
                names.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some((name, reason)) = rollouts.failed(2) {
            bail!(
                "rollout {name} failed after {:.1} s ({} of {} done): {reason}",
                t0.elapsed().as_secs_f64(),
                finished.len(),
                names.len()
            );
        }
        let now = t0.elapsed().as_secs_f64();
        for name in rollouts.done(2) {
            finished.entry(name).or_insert(now);
        }
    }
    let seconds = finished.values().copied().fold(0.0, f64::max);
    let mean = finished.values().sum::<f64>() / finished.len().max(1) as f64;
    let api = env.api_counters().await?.since(&api0);
    let reconciles = env.reconciles().await? - rec0;
    let after = env.operator_process();
    let sim_after = env::process_stats(std::process::id());
    drop(rollouts);
    env.shutdown().await;
    let (Some(before), Some(after), Some(sim_before), Some(sim_after)) =
        (before, after, sim_before, sim_after)
    else {
        bail!("failed to read the operator's or the bench's /proc entries");
    };
    let p = f64::from(total);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let cpu = after.cpu_seconds - before.cpu_seconds;
    let sim_cpu = sim_after.cpu_seconds - sim_before.cpu_seconds;
    let mut metrics = BTreeMap::from([
        ("statefulsets".into(), f64::from(sets)),
        ("pods_per_set".into(), f64::from(pods)),
        ("operator_peak_rss_mib".into(), mib(after.peak_rss)),
        ("operator_rss_mib_at_end".into(), mib(after.rss)),
        ("operator_cpu_seconds_rollout".into(), cpu),
        ("operator_cpu_seconds_total".into(), after.cpu_seconds),
        ("api_requests_per_pod".into(), api.requests / p),
        ("api_writes_per_pod".into(), api.writes / p),
        (
            "api_writes_per_pod_without_events".into(),
            (api.writes - api.event_writes) / p,
        ),
        ("reconciles_per_pod".into(), reconciles / p),
        ("mean_set_seconds".into(), mean),
        ("setup_seconds".into(), setup_seconds),
        ("kubesim_cpu_seconds_rollout".into(), sim_cpu),
        ("kubesim_cpu_ms_per_pod".into(), sim_cpu * 1000.0 / p),
        ("kubesim_peak_rss_mib".into(), mib(sim_after.peak_rss)),
        ("kubesim_rss_mib_at_end".into(), mib(sim_after.rss)),
    ]);
    metrics.extend(write_profile(&api, total));
    Ok(vec![Row::new(
        5,
        format!("{sets} sets × {pods} pods at once (operator subprocess)"),
        total,
        seconds,
        ideal,
        format!(
            "slowest set; operator: peak RSS {:.1} MiB, {cpu:.1} CPU s, {:.2} API req/pod, {:.2} writes/pod ({:.2} without Events), {:.2} reconciles/pod; kubesim (bench process): {sim_cpu:.1} CPU s ({:.3} ms/pod), peak RSS {:.1} MiB, RSS at end {:.1} MiB; speed ×{}",
            mib(after.peak_rss),
            api.requests / p,
            api.writes / p,
            (api.writes - api.event_writes) / p,
            reconciles / p,
            sim_cpu * 1000.0 / p,
            mib(sim_after.peak_rss),
            mib(sim_after.rss),
            sizes.s5_speed
        ),
        metrics,
    )])
}

/// The pod `ordinal` of set `app` as the StatefulSet controller creates it.
fn seeded_pod(app: &str, set_uid: &str, ordinal: u32) -> Value {
    let template = template(app, 1);
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(format!("{app}-{ordinal}"));
    spec["subdomain"] = json!(app);
    spec["nodeName"] = json!(format!("node-{}", ordinal % 12));
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{app}-{ordinal}"), "namespace": NAMESPACE,
            "labels": {"app": app, (labels::REVISION): format!("{app}-7c9d5b6f4d"),
                (labels::POD_NAME): format!("{app}-{ordinal}"),
                (labels::POD_INDEX): ordinal.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": app,
                "uid": set_uid, "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": spec
    })
}

/// The status the kubelet reports for a running, ready pod; `generation` varies the times.
fn seeded_status(app: &str, ordinal: u32, generation: u32) -> Value {
    let at = format!("2026-11-23T10:{:02}:{:02}Z", generation % 60, ordinal % 60);
    let condition = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": at});
    json!({
        "phase": "Running",
        "podIP": format!("10.{}.{}.{}", ordinal / 65_536 % 256, ordinal / 256 % 256, ordinal % 256),
        "hostIP": format!("192.168.0.{}", ordinal % 12),
        "startTime": at,
        "qosClass": "BestEffort",
        "conditions": [condition("PodReadyToStartContainers"), condition("Initialized"),
            condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
        "containerStatuses": [{"name": "app", "image": image(1),
            "imageID": format!("{}@sha256:{}", image(1), "0".repeat(64)),
            "containerID": format!("containerd://{app}-{ordinal}-{generation}"),
            "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": at}}}]
    })
}

/// Stores `sets` rollouts with their PodDisruptionBudgets and `pods` Ready pods each (see
/// [`BenchArgs::scale_watch_only`]).
fn seed_watched(h: &kubesim::cluster::Handle, sets: u32, pods: u32) -> anyhow::Result<()> {
    let api = h.api();
    let err = |e: kubesim::api::ApiError| anyhow::anyhow!("failed to seed kubesim: {}", e.message);
    let opts = kubesim::api::WriteOptions::default();
    let pod_d = api.resource("", "v1", "pods").map_err(err)?;
    let pdb_d = api
        .resource("policy", "v1", "poddisruptionbudgets")
        .map_err(err)?;
    let rollout_d = api
        .resource("sroll.io", "v1alpha1", "statefulsetrollouts")
        .map_err(err)?;
    let set_d = api.resource("apps", "v1", "statefulsets").map_err(err)?;
    for i in 0..sets {
        let app = format!("set{i:03}");
        api.create(
            &pdb_d,
            Some(NAMESPACE),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": app, "namespace": NAMESPACE},
                "spec": {"maxUnavailable": format!("{BUDGET_PERCENT}%"),
                    "selector": {"matchLabels": {"app": app}}}}),
            &opts,
        )
        .map_err(err)?;
        let rollout = api
            .create(
                &rollout_d,
                Some(NAMESPACE),
                json!({"apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
                "metadata": {"name": app, "namespace": NAMESPACE},
                "spec": {"percent": 100, "rolloutIdentity": "release-1",
                    "sts": {"apiVersion": "apps/v1", "kind": "StatefulSet",
                        "metadata": {"name": app},
                        "spec": {"replicas": pods, "serviceName": app,
                            "podManagementPolicy": "Parallel",
                            "selector": {"matchLabels": {"app": app}},
                            "template": template(&app, 1)}}}}),
                &opts,
            )
            .map_err(err)?;
        // The set the operator would have created: pods need an owner that exists, or the
        // garbage collector deletes them.
        let set = api
            .create(
                &set_d,
                Some(NAMESPACE),
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "metadata": {"name": app, "namespace": NAMESPACE,
                        "ownerReferences": [{"apiVersion": "sroll.io/v1alpha1",
                            "kind": "StatefulsetRollout", "name": app,
                            "uid": rollout["metadata"]["uid"], "controller": true,
                            "blockOwnerDeletion": true}]},
                    "spec": {"replicas": pods, "serviceName": app,
                        "podManagementPolicy": "Parallel",
                        "selector": {"matchLabels": {"app": app}},
                        "template": template(&app, 1)}}),
                &opts,
            )
            .map_err(err)?;
        let set_uid = set["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for ordinal in 0..pods {
            let created = api
                .create(
                    &pod_d,
                    Some(NAMESPACE),
                    seeded_pod(&app, &set_uid, ordinal),
                    &opts,
                )
                .map_err(err)?;
            let mut with_status = created;
            with_status["status"] = seeded_status(&app, ordinal, 0);
            if let Some(meta) = with_status["metadata"].as_object_mut() {
                meta.remove("resourceVersion");
            }
            api.update_status(
                &pod_d,
                Some(NAMESPACE),
                &format!("{app}-{ordinal}"),
                with_status,
                &opts,
            )
            .map_err(err)?;
        }
    }
    Ok(())
}

/// Writes a new status (new times, a new container id) to every seeded pod: one watch event each.
fn churn_watched(h: &kubesim::cluster::Handle, sets: u32, pods: u32) -> anyhow::Result<()> {
    let api = h.api();
    let err = |e: kubesim::api::ApiError| anyhow::anyhow!("failed to update a pod: {}", e.message);
    let opts = kubesim::api::WriteOptions::default();
    let pod_d = api.resource("", "v1", "pods").map_err(err)?;
    for i in 0..sets {
        let app = format!("set{i:03}");
        for ordinal in 0..pods {
            let name = format!("{app}-{ordinal}");
            let mut pod = api.get(&pod_d, Some(NAMESPACE), &name).map_err(err)?;
            pod["status"] = seeded_status(&app, ordinal, 1);
            if let Some(meta) = pod["metadata"].as_object_mut() {
                meta.remove("resourceVersion");
            }
            api.update_status(&pod_d, Some(NAMESPACE), &name, pod, &opts)
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Waits until the operator's reconcile counter has not moved for `quiet` (at most `limit`).
async fn reconciles_settle(env: &Env, quiet: Duration, limit: Duration) -> anyhow::Result<f64> {
    let deadline = Instant::now() + limit;
    let mut last = env.reconciles().await?;
    loop {
        tokio::time::sleep(quiet).await;
        let now = env.reconciles().await?;
        if now == last || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

async fn scale_watch_only(sizes: &Sizes, exe: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let (sets, pods) = (sizes.s5_sets, sizes.s5_pods);
    let total = sets * pods;
    let setup = Instant::now();
    let env = Env::start(EnvConfig {
        speed: 1.0,
        nodes: sizes.nodes,
        kubelet: uniform_kubelet(),
        operator: OperatorMode::Subprocess(exe.to_path_buf()),
        slack: None,
        simulate: false,
        prepare: Some(Box::new(move |h| seed_watched(h, sets, pods))),
    })
    .await?;
    let seed_seconds = setup.elapsed().as_secs_f64();
    // A rollout whose set never gets a status (no controllers) is requeued now and then, so the
    // reconcile counter may never stand still: bounded.
    let settle_limit = Duration::from_secs(if sizes.quick { 4 } else { 30 });
    // Every rollout reconciled at least once (its status written).
    let rollouts = RolloutWatch::start(&env.client).await?;
    poll(
        "every rollout to be reconciled",
        Duration::from_secs(1800),
        Duration::from_millis(500),
        || async { Ok(rollouts.all_have_a_phase().then_some(())) },
    )
    .await?;
    drop(rollouts);
    // Issue #16's start-up: until every rollout was reconciled once. The memory and CPU of the
    // start-up are read after its reconciles settled (at most `settle_limit` more).
    let first_reconciled = setup.elapsed().as_secs_f64() - seed_seconds;
    reconciles_settle(&env, Duration::from_secs(2), settle_limit).await?;
    let synced = env
        .operator_process()
        .context("failed to read the operator process's /proc entries")?;
    let sync_seconds = setup.elapsed().as_secs_f64() - seed_seconds;
    let rec0 = env.reconciles().await?;
    let churn = Instant::now();
    churn_watched(&env.cluster, sets, pods)?;
    reconciles_settle(&env, Duration::from_secs(2), settle_limit).await?;
    let churn_seconds = churn.elapsed().as_secs_f64();
    let reconciles = env.reconciles().await? - rec0;
    let after = env
        .operator_process()
        .context("failed to read the operator process's /proc entries")?;
    env.shutdown().await;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let metrics = BTreeMap::from([
        ("statefulsets".into(), f64::from(sets)),
        ("pods_per_set".into(), f64::from(pods)),
        ("operator_peak_rss_mib".into(), mib(after.peak_rss)),
        (
            "operator_peak_rss_mib_after_start".into(),
            mib(synced.peak_rss),
        ),
        ("operator_rss_mib_at_end".into(), mib(after.rss)),
        ("operator_cpu_seconds_start".into(), synced.cpu_seconds),
        (
            "operator_cpu_seconds_churn".into(),
            after.cpu_seconds - synced.cpu_seconds,
        ),
        ("reconciles_churn".into(), reconciles),
        ("seed_seconds".into(), seed_seconds),
        ("sync_seconds".into(), sync_seconds),
        ("first_reconcile_seconds".into(), first_reconciled),
        ("churn_seconds".into(), churn_seconds),
    ]);
    Ok(vec![Row::new(
        5,
        format!("{sets} sets × {pods} pods watched, no release (operator subprocess)"),
        total,
        first_reconciled,
        0.0,
        format!(
            "watch only: pods stored Ready without kubesim's controllers, then one status change each; peak RSS {:.1} MiB after start-up (list + first reconciles, settled after {sync_seconds:.1} s, {:.1} CPU s), {:.1} MiB after the churn ({:.1} CPU s, {reconciles:.0} reconciles), RSS at end {:.1} MiB; measured = start-up: seconds from the operator's start until every rollout was reconciled once, no ideal",
            mib(synced.peak_rss),
            synced.cpu_seconds,
            mib(after.peak_rss),
            after.cpu_seconds - synced.cpu_seconds,
            mib(after.rss),
        ),
        metrics,
    )])
}

// ---- scenario 6 ---------------------------------------------------------------------------------

async fn notifications(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let pods = sizes.s6_pods;
    let budget = budget_of(pods);
    let cycle = Sizes::cycle(sizes.speed);
    let ideal = model::uniform_ideal(pods as usize, budget as usize, cycle);
    let fake = slack::FakeSlack::start().await?;
    let env = Env::start(EnvConfig {
        speed: sizes.speed,
        nodes: sizes.nodes,
        kubelet: uniform_kubelet(),
        operator: OperatorMode::InProcess,
        slack: Some(env::SlackTarget {
            api_url: fake.api_url(),
            token: SecretLocation {
                namespace: NAMESPACE.into(),
                name: "slack".into(),
                key: "token".into(),
            },
        }),
        simulate: true,
        prepare: None,
    })
    .await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "slack", "namespace": NAMESPACE},
        "stringData": {"token": slack::TOKEN}
    }))?;
    Api::<Secret>::namespaced(env.client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .context("failed to create the Slack token Secret")?;
    setup_rollout(&env, "web", pods, json!({"channel": "#deploys"})).await?;
    // Let the creation's final message update land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (posts0, updates0) = fake.counts();
    let m = measure_release(&env, "web", 2, ideal).await?;
    // The final update follows the Done status write; give it a moment.
    let settle = Instant::now();
    let mut counts = fake.counts();
    while settle.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        counts = fake.counts();
    }
    env.shutdown().await;
    fake.stop();
    let (posts, updates) = (counts.0 - posts0, counts.1 - updates0);
    let per_1000 = 1000.0 / f64::from(pods);
    Ok(vec![Row::new(
        6,
        "sroll with Slack".into(),
        pods,
        m.seconds,
        ideal,
        format!(
            "{posts} message(s) posted, {updates} update(s) for this {pods}-pod rollout ({:.1} messages + {:.1} updates per 1,000 pods)",
            posts as f64 * per_1000,
            updates as f64 * per_1000
        ),
        BTreeMap::from([
            ("slack_posts".into(), posts as f64),
            ("slack_updates".into(), updates as f64),
            (
                "slack_calls_per_1000_pods".into(),
                (posts + updates) as f64 * per_1000,
            ),
        ]),
    )])
}

// ---- scenario 7 ---------------------------------------------------------------------------------

/// Scenario 7's kubelet (simulated seconds): a recreated pod costs the stop, scheduling, the sandbox
/// and the start; an in-place restart costs the stop, the new image's pull and the start
/// (`KubeletConfig::in_place_restart_after`).
const S7_SCHEDULING: f64 = 0.5;
const S7_SANDBOX: f64 = 1.0;
const S7_PULL: f64 = 0.5;

fn in_place_kubelet() -> KubeletConfig {
    KubeletConfig {
        start_delay: Delay::Fixed(secs(START_SECS)),
        image_delays: Vec::new(),
        shutdown_delay: secs(STOP_SECS),
        scheduling_delay: Delay::Fixed(secs(S7_SCHEDULING)),
        sandbox_delay: Delay::Fixed(secs(S7_SANDBOX)),
        image_pull_delay: Delay::Fixed(secs(S7_PULL)),
        ..KubeletConfig::default()
    }
}

async fn in_place(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    let pods = sizes.s7_pods;
    let budget = budget_of(pods);
    let recreate_cycle = (STOP_SECS + S7_SCHEDULING + S7_SANDBOX + START_SECS) / sizes.speed;
    let in_place_cycle = (STOP_SECS + S7_PULL + START_SECS) / sizes.speed;
    let timings = format!(
        "kubesim: stop {STOP_SECS} s, scheduling {S7_SCHEDULING} s, sandbox {S7_SANDBOX} s, image pull {S7_PULL} s, start {START_SECS} s (simulated, speed {}); recreate cycle {recreate_cycle:.2} s, in-place cycle {in_place_cycle:.2} s; PDB maxUnavailable {BUDGET_PERCENT}%",
        sizes.speed
    );
    println!("  {timings}");
    let mut rows = Vec::new();
    for (policy, cycle) in [
        ("ReCreate", recreate_cycle),
        ("InPlaceIfPossible", in_place_cycle),
    ] {
        let ideal = model::uniform_ideal(pods as usize, budget as usize, cycle);
        let env = start_env(sizes, in_place_kubelet()).await?;
        setup_rollout(&env, "web", pods, json!({"podUpdatePolicy": policy})).await?;
        let m = measure_release(&env, "web", 2, ideal).await?;
        let restarted = Api::<Pod>::namespaced(env.client.clone(), NAMESPACE)
            .list(&ListParams::default().labels("app=web"))
            .await
            .context("failed to list the pods")?
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.restart_count > 0))
            })
            .count();
        env.shutdown().await;
        if policy == "InPlaceIfPossible" && (m.api.evictions > 0.0 || restarted != pods as usize) {
            bail!(
                "the in-place release evicted {} pods and restarted containers in {restarted} of {pods}",
                m.api.evictions
            );
        }
        let mut metrics = per_pod_metrics(&m, pods);
        metrics.insert("pods_restarted_in_place".into(), restarted as f64);
        metrics.insert("cycle_seconds".into(), cycle);
        // The ideal is `ceil(k/B)` pod cycles: it starts when the first pod goes out of service
        // and ends when the last one is back, so that is what is measured against it. The time
        // before (the operator applies the release, the StatefulSet controller makes the
        // revision) and after (the operator records Done) is reported beside it.
        let (measured, span_note) = match m.pod_span() {
            Some((span, before, after)) => {
                metrics.insert("release_to_done_seconds".into(), m.seconds);
                metrics.insert("release_to_first_pod_out_seconds".into(), before);
                metrics.insert("last_pod_back_to_done_seconds".into(), after);
                (
                    span,
                    format!(
                        "measured = first pod out of service → last pod back ({:.2} s from the release to Done: {before:.2} s before the first pod out, {after:.2} s after the last pod back)",
                        m.seconds
                    ),
                )
            }
            None => (
                m.seconds,
                "measured = release to Done (no pod seen leaving)".to_owned(),
            ),
        };
        rows.push(Row::new(
            7,
            format!("sroll {policy}"),
            pods,
            measured,
            ideal,
            format!(
                "{span_note}; ideal ceil({pods}/{budget}) × {cycle:.2} s ({} cycle); {timings}; at most {} of {budget} unavailable; {restarted} pods restarted in place",
                if policy == "ReCreate" { "recreate" } else { "in-place" },
                m.max_unavailable
            ),
            metrics,
        ));
    }
    Ok(rows)
}

// ---- scenario 8 ---------------------------------------------------------------------------------

/// Scenario 8: a CloneSet of `s7_pods` pods released two ways on scenario 7's kubelet: recreated
/// through `maxSurge: 10%` with `maxUnavailable: 0` (each batch is a pod creation: scheduling,
/// sandbox, start; the old pods go once their replacements are Ready), and in place with
/// `maxUnavailable: 10%` (each batch is a container restart: stop, pull, start). The ideal is
/// `ceil(pods / batch) × cycle`; the most pods and the fewest Ready pods seen are reported.
async fn clone_sets(sizes: &Sizes) -> anyhow::Result<Vec<Row>> {
    use sroll_api::clone_set::CloneSet;
    let pods = sizes.s7_pods;
    let batch = budget_of(pods);
    let create_cycle = (S7_SCHEDULING + S7_SANDBOX + START_SECS) / sizes.speed;
    let in_place_cycle = (STOP_SECS + S7_PULL + START_SECS) / sizes.speed;
    let mut rows = Vec::new();
    for (variant, strategy, cycle) in [
        (
            "CloneSet ReCreate, maxSurge 10%, maxUnavailable 0",
            json!({"maxSurge": format!("{BUDGET_PERCENT}%"), "maxUnavailable": 0}),
            create_cycle,
        ),
        (
            "CloneSet InPlaceIfPossible, maxUnavailable 10%",
            json!({"type": "InPlaceIfPossible", "maxUnavailable": format!("{BUDGET_PERCENT}%")}),
            in_place_cycle,
        ),
    ] {
        let ideal = model::uniform_ideal(pods as usize, batch as usize, cycle);
        let env = start_env(sizes, in_place_kubelet()).await?;
        let api: Api<CloneSet> = Api::namespaced(env.client.clone(), NAMESPACE);
        let set: CloneSet = serde_json::from_value(json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {
                "replicas": pods,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template("web", 1),
                "updateStrategy": strategy,
            },
        }))
        .context("the CloneSet")?;
        api.create(&PostParams::default(), &set)
            .await
            .context("failed to create the CloneSet")?;
        let settled = |generation: i64| {
            let api = api.clone();
            move || {
                let api = api.clone();
                async move {
                    let cs = api
                        .get("web")
                        .await
                        .context("failed to read the CloneSet")?;
                    let s = cs.status.unwrap_or_default();
                    let n = i32::try_from(pods).unwrap_or(i32::MAX);
                    Ok((s.observed_generation >= generation
                        && s.replicas == n
                        && s.ready_replicas == n
                        && s.updated_replicas == n)
                        .then_some(()))
                }
            }
        };
        poll(
            "the CloneSet's first pods",
            Duration::from_secs(600),
            Duration::from_millis(50),
            settled(1),
        )
        .await?;
        let pod_api: Api<Pod> = Api::namespaced(env.client.clone(), NAMESPACE);
        let extremes = std::sync::Arc::new(std::sync::Mutex::new((0usize, usize::MAX)));
        let watch = {
            let extremes = extremes.clone();
            let pod_api = pod_api.clone();
            tokio::spawn(async move {
                loop {
                    if let Ok(list) = pod_api.list(&ListParams::default().labels("app=web")).await {
                        let active: Vec<&Pod> = list
                            .items
                            .iter()
                            .filter(|p| !sroll_api::predicates::is_terminating(&p.metadata))
                            .collect();
                        let ready = active
                            .iter()
                            .filter(|p| sroll_api::predicates::is_pod_ready(p))
                            .count();
                        let mut e = sroll_api::sync::lock(&extremes);
                        e.0 = e.0.max(active.len());
                        e.1 = e.1.min(ready);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let t0 = Instant::now();
        let patched = api
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"template": template("web", 2)}})),
            )
            .await
            .context("failed to release the CloneSet")?;
        poll(
            "the CloneSet's release",
            limit_for(ideal),
            Duration::from_millis(20),
            settled(patched.metadata.generation.unwrap_or(2)),
        )
        .await?;
        let seconds = t0.elapsed().as_secs_f64();
        watch.abort();
        let (max_pods, min_ready) = *sroll_api::sync::lock(&extremes);
        env.shutdown().await;
        let metrics = BTreeMap::from([
            ("max_pods".to_owned(), max_pods as f64),
            ("min_ready".to_owned(), min_ready as f64),
            ("cycle_seconds".to_owned(), cycle),
        ]);
        rows.push(Row::new(
            8,
            variant.to_owned(),
            pods,
            seconds,
            ideal,
            format!(
                "ideal ceil({pods}/{batch}) × {cycle:.2} s; at most {max_pods} pods, at least {min_ready} Ready (sampled every 0.1 s)"
            ),
            metrics,
        ));
    }
    Ok(rows)
}
