//! kubesim + the StatefulsetRollout CRD (+ the operator in this process): the environment every
//! other one builds on — the scenario [`crate::Env`], `sroll demo` and `sroll bench`. Fallible
//! throughout (errors, not panics), since the `sroll` binary runs on it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};
use kubesim::cluster::{Cluster, ClusterConfig, Handle};
use sroll_operator::{Operator, Settings, metrics::Metrics};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::checker::ExitLog;

/// A running kubesim cluster with the CRD installed and, once started, the operator.
pub struct Stack {
    /// The cluster (base URL, kubeconfig, clients).
    pub cluster: Handle,
    /// An administrator's client (its calls are not the operator's).
    pub client: Client,
    operator: Option<RunningOperator>,
}

impl Stack {
    /// Starts kubesim with `config` and installs the CRDs (each one Established).
    pub async fn start(config: ClusterConfig) -> anyhow::Result<Self> {
        let cluster = Cluster::start(config)
            .await
            .context("failed to start kubesim")?;
        let client = cluster.client();
        install_crds(&client).await?;
        Ok(Self {
            cluster,
            client,
            operator: None,
        })
    }

    /// The operator's own client (user agent `sroll-operator`, so kubesim counts its calls apart).
    pub async fn operator_client(&self) -> anyhow::Result<Client> {
        let kc = Kubeconfig::from_yaml(self.cluster.kubeconfig())
            .context("failed to parse the cluster's kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .context("failed to load the cluster's kubeconfig")?;
        sroll_operator::operator_client(config).context("failed to build the operator's client")
    }

    /// Starts the operator in this process with `settings`, over its own client.
    pub async fn start_operator(&mut self, settings: Settings) -> anyhow::Result<&RunningOperator> {
        anyhow::ensure!(self.operator.is_none(), "the operator is already running");
        let op = RunningOperator::start(self.operator_client().await?, settings);
        Ok(self.operator.insert(op))
    }

    /// The operator, when running.
    pub fn operator(&self) -> Option<&RunningOperator> {
        self.operator.as_ref()
    }

    /// Creates namespace `name`.
    pub async fn namespace(&self, name: &str) -> anyhow::Result<()> {
        create_namespace(&self.client, name).await
    }

    /// Stops the operator (gracefully, 10 s at most) and the cluster.
    pub async fn shutdown(self) {
        if let Some(op) = self.operator {
            let _ = op.stop_within(Duration::from_secs(10)).await;
        }
        self.cluster.shutdown().await;
    }
}

/// Creates each of sroll's CRDs and waits (30 s at most) until it is Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in sroll_api::crd::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.create(&PostParams::default(), &crd)
            .await
            .with_context(|| format!("failed to install the CRD {name}"))?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("the CRD {name} was not Established within 30 s"))??;
    }
    Ok(())
}

/// Creates namespace `name`.
pub async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .with_context(|| format!("failed to create the namespace {name}"))?;
    Ok(())
}

/// The operator running in this process (a task of the caller's runtime).
pub struct RunningOperator {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<sroll_operator::Result<()>>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Set when it is asked to stop (so its return is not "exiting on its own").
    stopping: Arc<AtomicBool>,
    /// Exits and panics it was not asked for (see [`crate::Checker::watch_operator`]).
    pub exits: ExitLog,
}

impl RunningOperator {
    /// Starts an operator with `settings` over `client`.
    pub fn start(client: Client, settings: Settings) -> Self {
        use futures::FutureExt;
        let instance = settings.instance.clone();
        let op = Operator::new(client, settings);
        let metrics = op.metrics();
        let (tx, rx) = oneshot::channel::<()>();
        let stopping = Arc::new(AtomicBool::new(false));
        let exits = ExitLog::default();
        let (asked, log) = (stopping.clone(), exits.clone());
        let run = std::panic::AssertUnwindSafe(op.run(async move {
            let _ = rx.await;
        }));
        let task = tokio::spawn(async move {
            let result = run.catch_unwind().await;
            let unasked = !asked.load(Ordering::SeqCst);
            match result {
                Ok(result) => {
                    if unasked && let Ok(mut l) = log.lock() {
                        l.push(format!("operator {instance} exited on its own: {result:?}"));
                    }
                    result
                }
                Err(panic) => {
                    if let Ok(mut l) = log.lock() {
                        l.push(format!("operator {instance} panicked"));
                    }
                    std::panic::resume_unwind(panic)
                }
            }
        });
        Self {
            stop: Some(tx),
            task,
            metrics,
            stopping,
            exits,
        }
    }

    /// SIGTERM-like: finish the reconcile in flight, release the lease, return its result; `None`
    /// when it did not stop within `timeout` (or panicked).
    pub async fn stop_within(mut self, timeout: Duration) -> Option<sroll_operator::Result<()>> {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(timeout, &mut self.task)
            .await
            .ok()?
            .ok()
    }

    /// [`Self::stop_within`] the scenario deadline, failing the test when it does not stop or
    /// panics.
    pub async fn stop(mut self) -> sroll_operator::Result<()> {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(crate::DEADLINE, &mut self.task)
            .await
            .expect("the operator stops within the deadline")
            .expect("the operator task does not panic")
    }

    /// Waits (`timeout` at most) for the operator to end on its own, e.g. refusing to start; `None`
    /// while it still runs. Fails the test when it panicked.
    pub async fn exit_within(mut self, timeout: Duration) -> Option<sroll_operator::Result<()>> {
        let result = tokio::time::timeout(timeout, &mut self.task).await.ok()?;
        Some(result.expect("the operator task does not panic"))
    }

    /// SIGKILL-like: drop everything at once, wherever it is.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Pods it evicted so far (its `evicted` eviction counter).
    pub fn evicted(&self) -> u64 {
        self.metrics
            .evictions
            .get_or_create(&sroll_operator::metrics::EvictionLabels {
                result: "evicted".into(),
            })
            .get()
    }

    /// Whether the operator task ended (an error or a lost lease).
    pub fn finished(&self) -> bool {
        self.task.is_finished()
    }
}
