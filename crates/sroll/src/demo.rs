//! `sroll demo`: the whole product on the embedded simulated cluster, with no setup.
//!
//! Starts kubesim (API server + StatefulSet/disruption controllers + fake kubelets) and the real
//! operator in this process, installs the CRD, creates a namespace, a PodDisruptionBudget and a
//! StatefulsetRollout, then plays a realistic release over real API traffic:
//!
//! ```text
//! create → new image at 25% → promote to 100% with a pause half-way → resume
//!        → a broken image that fails at its progress deadline → rollback
//!        → switch to in-place updates (the readiness gate: one recreate) → a new image in place
//!        → (with `prometheus` on the PATH) a bad image gated by an analysis step: aborted at the
//!          first analysis and rolled back automatically
//! ```
//!
//! On a terminal it shows a live view (indicatif: one bar per revision, pods in flight, phase, the
//! last event); otherwise one line per step. It ends with a summary: each step's duration, the
//! ideal duration from the performance model (`ceil(k / B) × c`), their ratio, the evictions and
//! the operator's API calls (counted by kubesim's `/metrics`).

use std::{
    collections::BTreeMap,
    io::IsTerminal,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_openapi::{
    api::{
        core::v1::{Namespace, Pod},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use kubesim::cluster::{ClusterConfig, Handle};
use serde_json::json;
use sroll_api::{
    Phase, StatefulsetRollout,
    intstr::scaled_value,
    predicates::{is_pod_ready, is_terminating, resource_version},
    sync::lock,
};

/// Flags of `sroll demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Pods in the demo StatefulSet.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=5000))]
    pub pods: i32,
    /// The PodDisruptionBudget's maxUnavailable: a number of pods or a percentage ("10%").
    #[arg(long, default_value = "10%")]
    pub budget: String,
    /// Simulated-time speed factor: pods start and stop this many times faster than the
    /// simulated kubelet's defaults (2 s start, 1 s stop).
    #[arg(long, default_value_t = 4.0)]
    pub speed: f64,
    /// Fake nodes in the cluster.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub nodes: u32,
    /// Leave the cluster and the operator running afterwards (Ctrl-C stops them).
    #[arg(long)]
    pub keep_running: bool,
    /// Where to write the kubeconfig of the embedded cluster (with --keep-running).
    #[arg(long, default_value = "sroll-demo.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Serve `sroll dashboard` on the embedded cluster while the release plays (actions allowed:
    /// the cluster is this process's own), and keep running afterwards (implies --keep-running).
    #[arg(long)]
    pub dashboard: bool,
    /// Where the dashboard listens (with --dashboard).
    #[arg(long, default_value = "127.0.0.1:3100", requires = "dashboard")]
    pub dashboard_address: std::net::SocketAddr,
}

const NAMESPACE: &str = "demo";
const NAME: &str = "web";
/// Simulated kubelet timing (kubesim defaults): container start, and stop after SIGTERM.
const START_SECS: f64 = 2.0;
const STOP_SECS: f64 = 1.0;
/// Simulated kubelet timing (kubesim default): pulling the new image of a container restarted in
/// place (a new pod's image is taken as present).
const PULL_SECS: f64 = 5.0;

/// What a step expects at its end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Done,
    Failed,
    /// `RolloutAborted` by an analysis, with every pod back at the previous revision and Ready.
    RolledBack,
}

/// One measured step of the demo.
struct StepResult {
    name: String,
    took: Duration,
    ideal: Option<Duration>,
    evictions: u64,
    api_calls: u64,
    outcome: String,
}

fn budget_value(s: &str) -> anyhow::Result<IntOrString> {
    if s.ends_with('%') {
        let v = IntOrString::String(s.to_owned());
        scaled_value(&v, 100, true).with_context(|| format!("--budget {s:?}"))?;
        Ok(v)
    } else {
        let n: i32 = s.parse().with_context(|| {
            format!("--budget {s:?} must be a number of pods or a percentage such as \"10%\"")
        })?;
        if n < 1 {
            bail!("--budget {n} allows no disruption: use at least 1 (or a percentage)");
        }
        Ok(IntOrString::Int(n))
    }
}

fn template(image: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": NAME}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": NAME, "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]
        }
    })
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let budget = budget_value(&args.budget)?;
    let per_batch = scaled_value(&budget, args.pods, true)?.clamp(1, args.pods);
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();

    println!(
        "Starting kubesim ({} nodes, speed ×{}) and the sroll operator in this process…",
        args.nodes, args.speed
    );
    let embedded = start_embedded(usize::try_from(args.nodes).unwrap_or(12), args.speed).await?;
    let cluster = &embedded.cluster;
    let client = embedded.client.clone();
    let dashboard = if args.dashboard {
        let running = crate::dashboard::start(
            client.clone(),
            crate::dashboard::Options {
                address: args.dashboard_address,
                allow_actions: true,
                namespace: None,
            },
        )
        .await?;
        println!(
            "Dashboard: http://{}/#/r/{NAMESPACE}/{NAME} (open it in a browser; actions allowed)",
            running.addr
        );
        Some(running)
    } else {
        None
    };

    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await
        .context("failed to create the demo namespace")?;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {"maxUnavailable": budget, "selector": {"matchLabels": {"app": NAME}}}
    }))?;
    Api::<PodDisruptionBudget>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &pdb)
        .await
        .context("failed to create the PodDisruptionBudget")?;

    let rollouts: Api<StatefulsetRollout> = Api::namespaced(client.clone(), NAMESPACE);
    let cycle = (START_SECS + STOP_SECS) / args.speed;
    let ideal = |k: i32| {
        let batches = (k + per_batch - 1) / per_batch;
        Some(Duration::from_secs_f64(f64::from(batches) * cycle))
    };
    let ui = Ui::new(tty, args.pods);
    let mut results = Vec::new();

    // 1. Create from nothing: every pod starts at once (Parallel), nothing is evicted.
    let rollout: StatefulsetRollout = serde_json::from_value(json!({
        "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "percent": 100,
            "rolloutIdentity": "release-1",
            "progressDeadlineSeconds": 60,
            "sts": {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": NAME},
                "spec": {"replicas": args.pods, "serviceName": NAME, "podManagementPolicy": "Parallel",
                         "selector": {"matchLabels": {"app": NAME}}, "template": template("example.com/web:1.0")}}
        }
    }))?;
    results.push(
        step(
            cluster,
            &client,
            &ui,
            "create 1.0",
            Expect::Done,
            Some(Duration::from_secs_f64(START_SECS / args.speed)),
            || async {
                rollouts
                    .create(&PostParams::default(), &rollout)
                    .await
                    .context("failed to create the rollout")?;
                Ok(())
            },
        )
        .await?,
    );

    // 2. New image at 25%: ceil(n/4) pods move, highest ordinals first.
    let quarter = sroll_api::target_updated_replicas(args.pods, 25);
    results.push(
        step(
            cluster,
            &client,
            &ui,
            "1.1 at 25%",
            Expect::Done,
            ideal(quarter),
            || {
                patch(
                    &rollouts,
                    json!({"spec": {"percent": 25, "rolloutIdentity": "release-2",
                "sts": {"spec": {"template": template("example.com/web:1.1")}}}}),
                )
            },
        )
        .await?,
    );

    // 3. Promote to 100%, pause half-way, resume.
    let rest = args.pods - quarter;
    let pause_at = quarter + rest / 2;
    let paused_for = Duration::from_secs(3);
    let r = step(
        cluster,
        &client,
        &ui,
        "1.1 to 100% (paused 3 s mid-way)",
        Expect::Done,
        ideal(rest).map(|d| d + paused_for),
        || async {
            patch(&rollouts, json!({"spec": {"percent": 100}})).await?;
            follow_until(&rollouts, &ui, |r| {
                status_of(r).updated_replicas.unwrap_or(0) >= pause_at
            })
            .await?;
            patch(&rollouts, json!({"spec": {"pauseRequested": true}})).await?;
            follow_until(&rollouts, &ui, |r| {
                status_of(r).phase == Some(Phase::Paused)
            })
            .await?;
            ui.note("paused: no pod is evicted until resume");
            tokio::time::sleep(paused_for).await;
            patch(&rollouts, json!({"spec": {"pauseRequested": false}})).await?;
            ui.note("resumed");
            Ok(())
        },
    )
    .await?;
    results.push(r);

    // 4. A broken image: pods never become Ready; the rollout fails at its deadline, having broken
    //    no more pods than the budget allows.
    results.push(
        step(
            cluster,
            &client,
            &ui,
            "1.2-unready (broken)",
            Expect::Failed,
            None,
            || {
                patch(
                    &rollouts,
                    json!({"spec": {"rolloutIdentity": "release-3", "progressDeadlineSeconds": 10,
                "sts": {"spec": {"template": template("example.com/web:1.2-unready")}}}}),
                )
            },
        )
        .await?,
    );
    let broken = count_pods(&client, |p| !is_pod_ready(p) || is_terminating(&p.metadata)).await?;

    // 5. Roll back to 1.1: broken pods are replaced at once, without pacing.
    results.push(
        step(
            cluster,
            &client,
            &ui,
            "rollback to 1.1",
            Expect::Done,
            ideal(broken),
            || {
                patch(
                    &rollouts,
                    json!({"spec": {"rolloutIdentity": "release-4", "progressDeadlineSeconds": 60,
                "sts": {"spec": {"template": template("example.com/web:1.1")}}}}),
                )
            },
        )
        .await?,
    );
    // 6. Switch to in-place updates: the template gains the InPlaceUpdateReady readiness gate,
    //    itself a template change no pod can take in place, so this one release recreates.
    results.push(
        step(
            cluster,
            &client,
            &ui,
            "podUpdatePolicy InPlaceIfPossible",
            Expect::Done,
            ideal(args.pods),
            || {
                patch(
                    &rollouts,
                    json!({"spec": {"rolloutIdentity": "release-5", "podUpdatePolicy": "InPlaceIfPossible"}}),
                )
            },
        )
        .await?,
    );
    // 7. An image-only release in place: the same pods restart their container.
    let in_place_cycle = (STOP_SECS + PULL_SECS + START_SECS) / args.speed;
    let uids = |pods: Vec<Pod>| -> Vec<String> {
        pods.into_iter()
            .filter_map(|p| p.metadata.uid)
            .collect::<Vec<_>>()
    };
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let before = uids(pod_api.list(&ListParams::default()).await?.items);
    let mut r = step(
        cluster,
        &client,
        &ui,
        "1.3 in place",
        Expect::Done,
        Some(Duration::from_secs_f64(
            f64::from((args.pods + per_batch - 1) / per_batch) * in_place_cycle,
        )),
        || {
            patch(
                &rollouts,
                json!({"spec": {"rolloutIdentity": "release-6",
            "sts": {"spec": {"template": template("example.com/web:1.3")}}}}),
            )
        },
    )
    .await?;
    let after = uids(pod_api.list(&ListParams::default()).await?.items);
    let kept = after.iter().filter(|u| before.contains(u)).count();
    r.outcome = format!(
        "{}; {kept} of {} pods kept their uid (containers restarted in place, in-place cycle {in_place_cycle:.2} s)",
        r.outcome,
        after.len()
    );
    results.push(r);
    // 8. Optional: a release whose pods fail 20 % of their requests, gated by an analysis step
    //    against a real Prometheus scraping kubesim's simulated metrics; it aborts at the first
    //    analysis and rolls back by itself.
    match analysis_unavailable() {
        Some(why) => ui.note(&format!("analysis step skipped: {why}")),
        None => {
            let prometheus = sroll_testkit::prometheus::Prometheus::start(
                cluster.base_url(),
                Duration::from_secs(60),
            )
            .await
            .context("failed to start prometheus for the analysis step")?;
            ui.note(&format!(
                "prometheus at {} scrapes kubesim's simulated pod metrics every second",
                prometheus.url
            ));
            let r = step(
                cluster,
                &client,
                &ui,
                "1.4-errors20, analysis rollback",
                Expect::RolledBack,
                None,
                || {
                    patch(
                        &rollouts,
                        json!({"spec": {"rolloutIdentity": "release-7",
                            "steps": [{"percent": 25}, {"analysis": {}}, {"percent": 100}],
                            "analysis": {"abortPolicy": "Rollback", "metrics": [analysis_metric(&prometheus.url)]},
                            "sts": {"spec": {"template": template("example.com/web:1.4-errors20")}}}}),
                    )
                },
            )
            .await?;
            results.push(r);
        }
    }
    ui.finish();

    print_summary(
        &results,
        args.pods,
        per_batch,
        cycle,
        broken,
        started.elapsed(),
    );

    if args.keep_running || dashboard.is_some() {
        embedded
            .cluster
            .write_kubeconfig(&args.kubeconfig_out)
            .context("failed to write the kubeconfig")?;
        println!();
        println!("The cluster and the operator keep running (Ctrl-C stops them). Try:");
        println!("  export KUBECONFIG={}", args.kubeconfig_out.display());
        println!("  kubectl get sroll,statefulsets,pods -n {NAMESPACE}");
        println!("  sroll get {NAME} -n {NAMESPACE} -w");
        if let Some(d) = &dashboard {
            println!("  the dashboard: http://{}/", d.addr);
        }
        tokio::signal::ctrl_c()
            .await
            .context("failed to wait for Ctrl-C")?;
    }
    if let Some(d) = dashboard {
        d.shutdown().await;
    }
    embedded.shutdown().await;
    Ok(())
}

/// Why the analysis step cannot run (`None`: it can): it needs the `prometheus` binary (Debian's
/// `prometheus` package) on the `PATH`.
fn analysis_unavailable() -> Option<String> {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("prometheus").is_file())
    });
    (!found).then(|| {
        "`prometheus` is not on the PATH (install Debian's `prometheus` package to see a bad release \
         rolled back by its analysis)"
            .to_owned()
    })
}

/// The analysis metric of step 8: the worst pod's error ratio over 10 s, under 5 %, measured three
/// times 1 s apart after 8 s (Prometheus scrapes every second; `rate` needs two samples of the
/// new pods' series).
fn analysis_metric(prometheus: &str) -> serde_json::Value {
    json!({
        "name": "error-ratio",
        "initialDelay": "8s",
        "interval": "1s",
        "count": 3,
        "consecutiveErrorLimit": 30,
        "successCondition": "result[0] < 0.05",
        "provider": {"prometheus": {
            "address": prometheus,
            "query": format!("max(rate(http_errors_total{{namespace=\"{NAMESPACE}\",app=\"{NAME}\"}}[10s]) / rate(http_requests_total{{namespace=\"{NAMESPACE}\",app=\"{NAME}\"}}[10s]))"),
        }}
    })
}

/// kubesim (API server, controllers, fake kubelets), the StatefulsetRollout CRD and the real
/// operator, all in this process: the cluster of `sroll demo` and of the CLI's end-to-end tests
/// (sroll-testkit's environment, the one tests and `sroll bench` run on too).
pub type Embedded = sroll_testkit::Stack;

/// Starts [`Embedded`]: a cluster of `nodes` fake nodes whose pods start and stop `speed` times
/// faster than the simulated kubelet's defaults, the CRD and the operator.
pub async fn start_embedded(nodes: usize, speed: f64) -> anyhow::Result<Embedded> {
    // `simulate` runs the controllers, scheduler and fake kubelets that make pods come and go.
    let mut embedded = Embedded::start(ClusterConfig {
        nodes,
        speed,
        simulate: true,
        ..Default::default()
    })
    .await
    .context("failed to start the embedded cluster")?;
    embedded
        .start_operator(sroll_operator::Settings {
            instance: "sroll-embedded".into(),
            ..Default::default()
        })
        .await?;
    Ok(embedded)
}

async fn patch(api: &Api<StatefulsetRollout>, body: serde_json::Value) -> anyhow::Result<()> {
    api.patch(
        NAME,
        &PatchParams {
            field_manager: Some("sroll-demo".into()),
            ..Default::default()
        },
        &Patch::Merge(body),
    )
    .await
    .context("failed to patch the rollout")?;
    Ok(())
}

fn status_of(r: &StatefulsetRollout) -> sroll_api::StatefulsetRolloutStatus {
    r.status.clone().unwrap_or_default()
}

async fn count_pods(client: &Client, pred: impl Fn(&Pod) -> bool) -> anyhow::Result<i32> {
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("app={NAME}")))
        .await?;
    Ok(i32::try_from(pods.items.iter().filter(|p| pred(p)).count()).unwrap_or(i32::MAX))
}

/// Polls the rollout (and redraws the view) until `done` holds; gives up after 5 minutes.
async fn follow_until(
    api: &Api<StatefulsetRollout>,
    ui: &Ui,
    done: impl Fn(&StatefulsetRollout) -> bool,
) -> anyhow::Result<StatefulsetRollout> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(api.clone().into_client(), NAMESPACE);
    for poll in 0u64.. {
        let r = api.get(NAME).await.context("failed to read the rollout")?;
        if ui.tty
            && poll % 5 == 0
            && let Ok(list) = events.list(&ListParams::default()).await
        {
            let mut mine: Vec<_> = list
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|o| o.name.as_deref()) == Some(NAME))
                .collect();
            mine.sort_by_key(|e| resource_version(&e.metadata));
            let last: Vec<String> = mine
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(|e| {
                    format!(
                        "  event {}: {}",
                        e.reason.as_deref().unwrap_or_default(),
                        e.note.as_deref().unwrap_or_default()
                    )
                })
                .collect();
            ui.events.set_message(last.join("\n"));
        }
        ui.refresh(&r);
        if done(&r) {
            return Ok(r);
        }
        if Instant::now() > deadline {
            let s = status_of(&r);
            bail!(
                "the rollout did not get there within 5 minutes: phase {}, {}",
                s.phase.map_or_else(|| "-".into(), |p| p.to_string()),
                s.reason.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!("the poll loop only ends by returning")
}

/// Counters read from kubesim's `/metrics`: (evictions that succeeded, operator API calls).
async fn counters(cluster: &Handle) -> (u64, u64) {
    let Ok(text) = metrics_text(cluster).await else {
        return (0, 0);
    };
    let mut evictions = 0;
    let mut calls = 0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let value: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64);
        if line.contains("user_agent=\"sroll-operator\"") {
            calls += value;
            if line.contains("subresource=\"eviction\"") && line.contains("code=\"201\"") {
                evictions += value;
            }
        }
    }
    (evictions, calls)
}

/// GET `/metrics` through the kube client (the API server serves it next to the API).
async fn metrics_text(cluster: &Handle) -> anyhow::Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(cluster.client().request_text(req).await?)
}

#[allow(clippy::too_many_arguments)]
async fn step<F, Fut>(
    cluster: &Handle,
    client: &Client,
    ui: &Ui,
    name: &str,
    expect: Expect,
    ideal: Option<Duration>,
    act: F,
) -> anyhow::Result<StepResult>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let api: Api<StatefulsetRollout> = Api::namespaced(client.clone(), NAMESPACE);
    let (ev0, calls0) = counters(cluster).await;
    ui.start_step(name);
    let t0 = Instant::now();
    act().await?;
    let generation = api.get(NAME).await?.metadata.generation.unwrap_or_default();
    let last = follow_until(&api, ui, |r| {
        let s = status_of(r);
        s.observed_generation == Some(generation)
            && match expect {
                Expect::Done => s.phase == Some(Phase::Done),
                Expect::Failed => s.phase == Some(Phase::Failed),
                Expect::RolledBack => {
                    s.phase == Some(Phase::Aborted)
                        && s.updated_replicas == Some(0)
                        && s.pods.iter().all(|p| p.ready)
                }
            }
    })
    .await?;
    let took = t0.elapsed();
    let (ev1, calls1) = counters(cluster).await;
    let s = status_of(&last);
    let result = StepResult {
        name: name.to_owned(),
        took,
        ideal,
        evictions: ev1.saturating_sub(ev0),
        api_calls: calls1.saturating_sub(calls0),
        outcome: format!(
            "{} ({})",
            s.phase.map_or_else(|| "-".into(), |p| p.to_string()),
            s.reason.unwrap_or_default()
        ),
    };
    ui.end_step(&result);
    Ok(result)
}

fn print_summary(
    results: &[StepResult],
    pods: i32,
    per_batch: i32,
    cycle: f64,
    broken: i32,
    total: Duration,
) {
    println!();
    println!(
        "Summary: {pods} pods, budget {per_batch} pods at once, pod cycle {cycle:.2} s (ideal = ceil(k / {per_batch}) × {cycle:.2} s)"
    );
    println!(
        "{:<36} {:>9} {:>9} {:>7} {:>10} {:>10}",
        "STEP", "TOOK", "IDEAL", "RATIO", "EVICTIONS", "API CALLS"
    );
    for r in results {
        let (ideal, ratio) = match r.ideal {
            Some(i) if !i.is_zero() => (
                format!("{:.1}s", i.as_secs_f64()),
                format!("{:.2}", r.took.as_secs_f64() / i.as_secs_f64()),
            ),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "{:<36} {:>8.1}s {:>9} {:>7} {:>10} {:>10}",
            r.name,
            r.took.as_secs_f64(),
            ideal,
            ratio,
            r.evictions,
            r.api_calls
        );
    }
    println!(
        "The broken image left {broken} pods unready (the budget allows {per_batch}); the whole demo took {:.1} s.",
        total.as_secs_f64()
    );
    for r in results {
        println!("  {}: {}", r.name, r.outcome);
    }
}

/// The live view: progress bars per revision on a terminal, one line per step otherwise.
struct Ui {
    tty: bool,
    multi: MultiProgress,
    bars: std::sync::Mutex<BTreeMap<String, ProgressBar>>,
    status: ProgressBar,
    events: ProgressBar,
    pods: i32,
}

impl Ui {
    fn new(tty: bool, pods: i32) -> Self {
        let target = if tty {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::with_target(tty, target, pods)
    }

    /// `tty`: show bars (else one line per step on stdout); `target`: where bars are drawn.
    fn with_target(tty: bool, target: ProgressDrawTarget, pods: i32) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let status = multi.add(ProgressBar::new_spinner());
        status.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let events = multi.add(ProgressBar::new_spinner());
        events.set_style(
            ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self {
            tty,
            multi,
            bars: std::sync::Mutex::new(BTreeMap::new()),
            status,
            events,
            pods,
        }
    }

    fn start_step(&self, name: &str) {
        if self.tty {
            let _ = self.multi.println(format!("▶ {name}"));
        } else {
            println!("▶ {name}");
        }
    }

    fn note(&self, text: &str) {
        if self.tty {
            let _ = self.multi.println(format!("  {text}"));
        } else {
            println!("  {text}");
        }
    }

    fn end_step(&self, r: &StepResult) {
        let line = format!(
            "✔ {} in {:.1}s: {} ({} evictions, {} operator API calls)",
            r.name,
            r.took.as_secs_f64(),
            r.outcome,
            r.evictions,
            r.api_calls
        );
        if self.tty {
            let _ = self.multi.println(line);
        } else {
            println!("{line}");
        }
    }

    fn refresh(&self, r: &StatefulsetRollout) {
        if !self.tty {
            return;
        }
        let s = status_of(r);
        let in_flight = s.pods.iter().filter(|p| !p.ready).count();
        {
            let mut bars = lock(&self.bars);
            let known: Vec<String> = bars.keys().cloned().collect();
            for count in revision_bars(&s, &known) {
                let bar = bars.entry(count.revision.clone()).or_insert_with(|| {
                    let b = self.multi.insert_before(
                        &self.status,
                        ProgressBar::new(u64::try_from(self.pods).unwrap_or(0)),
                    );
                    b.set_style(
                        ProgressStyle::with_template(
                            "  {prefix:<18} [{bar:40}] {pos:>4}/{len} {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("##."),
                    );
                    b.set_prefix(count.revision.clone());
                    b
                });
                bar.set_position(count.pods);
                bar.set_message(format!("{} ready", count.ready));
            }
        }
        self.status.set_message(format!(
            "{}  {}% deployed, {} in flight — {}",
            s.phase.map_or_else(|| "-".into(), |p| p.to_string()),
            s.percent_deployed.unwrap_or(0),
            in_flight,
            s.reason.unwrap_or_default()
        ));
        self.status.tick();
    }

    fn finish(&self) {
        self.status.finish_and_clear();
        self.events.finish_and_clear();
        for b in lock(&self.bars).values() {
            // `abandon`, not `finish`: `finish` moves the bar to its length, which would show
            // every revision at "200/200" in the last frame.
            b.abandon();
        }
    }
}

/// One revision's bar in a frame of the live view: how many pods run the revision and how many
/// of those are Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RevisionBar {
    revision: String,
    pods: u64,
    ready: u64,
}

/// The bars of the frame showing `status`: one per revision the pods run, in revision order,
/// plus a bar at 0 for each revision in `known` (shown before) that no pod runs any more.
fn revision_bars(
    status: &sroll_api::StatefulsetRolloutStatus,
    known: &[String],
) -> Vec<RevisionBar> {
    let mut counts: BTreeMap<&str, (u64, u64)> =
        known.iter().map(|rev| (rev.as_str(), (0, 0))).collect();
    for p in &status.pods {
        let c = counts.entry(&*p.revision).or_default();
        c.0 += 1;
        c.1 += u64::from(p.ready);
    }
    counts
        .into_iter()
        .map(|(revision, (pods, ready))| RevisionBar {
            revision: revision.to_owned(),
            pods,
            ready,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use sroll_api::{PodVersion, StatefulsetRolloutSpec, StatefulsetRolloutStatus};

    use super::*;

    /// A rollout whose status lists `pods` as (revision, how many, how many of them Ready).
    fn rollout(pods: &[(&str, usize, usize)]) -> StatefulsetRollout {
        let spec: StatefulsetRolloutSpec =
            serde_json::from_value(json!({"sts": {"spec": {"selector": {}, "template": {}}}}))
                .expect("a minimal spec deserializes");
        let mut r = StatefulsetRollout::new(NAME, spec);
        let mut list = Vec::new();
        for (revision, count, ready) in pods {
            for i in 0..*count {
                list.push(PodVersion {
                    name: format!("{NAME}-{}", list.len()).into(),
                    revision: (*revision).into(),
                    ready: i < *ready,
                });
            }
        }
        r.status = Some(StatefulsetRolloutStatus {
            pods: list.into(),
            ..StatefulsetRolloutStatus::default()
        });
        r
    }

    #[test]
    fn a_frame_has_one_bar_per_revision_and_zero_for_a_revision_gone() {
        let r = rollout(&[("web-b", 3, 1), ("web-a", 2, 2)]);
        let bars = revision_bars(&status_of(&r), &["web-old".to_owned()]);
        let bar = |revision: &str, pods, ready| RevisionBar {
            revision: revision.to_owned(),
            pods,
            ready,
        };
        assert_eq!(
            bars,
            vec![bar("web-a", 2, 2), bar("web-b", 3, 1), bar("web-old", 0, 0)]
        );
    }

    /// The demo's last step rolls the broken revision back: its bar and the first revision's must
    /// end at their real counts, not at the bar length.
    #[test]
    fn the_last_frame_shows_each_revisions_real_count() {
        let ui = Ui::with_target(true, ProgressDrawTarget::hidden(), 200);
        ui.refresh(&rollout(&[("web-1-0", 200, 200)]));
        ui.refresh(&rollout(&[("web-1-1", 190, 190), ("web-1-2", 10, 0)]));
        ui.refresh(&rollout(&[("web-1-1", 196, 195), ("web-1-2", 4, 0)]));
        ui.finish();
        let bars = lock(&ui.bars);
        let shown: Vec<(u64, String, bool)> = ["web-1-0", "web-1-1", "web-1-2"]
            .iter()
            .map(|rev| {
                let b = &bars[*rev];
                (b.position(), b.message(), b.is_finished())
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (0, "0 ready".to_owned(), true),
                (196, "195 ready".to_owned(), true),
                (4, "0 ready".to_owned(), true),
            ]
        );
    }
}
