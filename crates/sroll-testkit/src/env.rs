//! The scenario environment: a kubesim cluster (its simulated delays compressed by [`SPEED`]),
//! the real operator running in-process against it over HTTP, and an invariant checker watching the
//! whole run. Scenarios read like prose:
//!
//! ```ignore
//! let env = Env::start().await;
//! env.apply(&Rollout::named("web").replicas(4)).await;
//! env.wait_phase("web", Phase::Done).await;
//! env.finish().await;
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::Pod,
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use sroll_api::{Phase, StatefulsetRollout};
use sroll_operator::{Settings, metrics::Metrics};

use crate::{
    checker::{self, Checker},
    fixture::Rollout,
    stack::{RunningOperator, Stack},
    wait_for,
};

/// How much faster than real time the simulated cluster runs.
pub const SPEED: f64 = 10.0;
/// Generous deadline for anything a scenario waits for.
pub const DEADLINE: Duration = Duration::from_secs(60);

static NEXT_NS: AtomicUsize = AtomicUsize::new(0);

/// One scenario's world.
pub struct Env {
    /// The simulated cluster.
    pub cluster: kubesim::cluster::Handle,
    /// A client acting as the user.
    pub client: Client,
    /// The scenario's namespace.
    pub ns: String,
    /// The operator, when running.
    pub operator: Option<RunningOperator>,
    /// The invariant checker.
    pub checker: Checker,
}

/// The cluster configuration of every scenario: simulation on, at [`SPEED`].
pub fn cluster_config() -> kubesim::cluster::ClusterConfig {
    kubesim::cluster::ClusterConfig {
        speed: SPEED,
        simulate: true,
        ..kubesim::cluster::ClusterConfig::default()
    }
}

impl Env {
    /// A cluster with the CRD installed, a fresh namespace, the checker and the operator running.
    pub async fn start() -> Self {
        let mut env = Self::without_operator().await;
        env.start_operator();
        env
    }

    /// [`Env::start`] with the operator serving its admission webhooks (revision pinning) over
    /// real HTTPS, out-of-cluster mode (`clientConfig.url` on 127.0.0.1 and a free port); returns
    /// once kube-apiserver (kubesim) is sent pods through them.
    pub async fn start_with_webhook() -> Self {
        let mut env = Self::without_operator().await;
        let settings = Settings {
            webhook: Some(env.webhook_settings()),
            ..env.settings()
        };
        env.start_operator_with(settings);
        env.webhook_registered().await;
        env
    }

    /// The webhook server of this scenario: 127.0.0.1 on a free port, `clientConfig.url`, the
    /// certificate Secret in the scenario's namespace, the default certificate lifetimes.
    pub fn webhook_settings(&self) -> sroll_operator::webhook::WebhookSettings {
        sroll_operator::webhook::WebhookSettings {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            client_config: sroll_operator::webhook::ClientConfigMode::Url { host: None },
            namespace: self.ns.clone(),
            certs: sroll_operator::webhook::CertSettings::default(),
        }
    }

    /// Waits until the operator's mutating webhook configuration is registered (the server
    /// answers before it registers).
    pub async fn webhook_registered(&self) {
        let configs: Api<
            k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
        > = Api::all(self.client.clone());
        wait_for(
            "the webhook configuration to be registered",
            DEADLINE,
            || {
                let configs = configs.clone();
                async move {
                    configs
                        .get_opt(sroll_operator::webhook::configs::MUTATING)
                        .await
                        .ok()
                        .flatten()
                }
            },
        )
        .await;
    }

    /// The same, without starting the operator.
    pub async fn without_operator() -> Self {
        Self::without_operator_on(cluster_config()).await
    }

    /// A cluster started with `config` (e.g. more nodes), the CRD, a namespace and the checker;
    /// no operator.
    pub async fn without_operator_on(config: kubesim::cluster::ClusterConfig) -> Self {
        let Stack {
            cluster, client, ..
        } = Stack::start(config)
            .await
            .expect("kubesim starts with the CRDs");
        let ns = format!("scenario-{}", NEXT_NS.fetch_add(1, Ordering::SeqCst));
        crate::stack::create_namespace(&client, &ns)
            .await
            .expect("namespace created");
        // The CRD is served once established; wait for the list to answer.
        let rollouts: Api<StatefulsetRollout> = Api::namespaced(client.clone(), &ns);
        wait_for("the CRD to be served", DEADLINE, || {
            let rollouts = rollouts.clone();
            async move { rollouts.list(&ListParams::default()).await.ok() }
        })
        .await;
        let checker = Checker::start(client.clone(), &ns);
        Self {
            cluster,
            client,
            ns,
            operator: None,
            checker,
        }
    }

    /// Operator settings for this scenario (single replica, no leader election, no HTTP server).
    pub fn settings(&self) -> Settings {
        Settings {
            namespaces: vec![self.ns.clone()],
            metrics_addr: None,
            leader_election: None,
            instance: "scenario".into(),
            ..Settings::default()
        }
    }

    /// [`Env::settings`] of replica `identity` under leader election on the Lease
    /// `sroll-operator` of the namespace.
    pub fn leader_settings(
        &self,
        identity: &str,
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Settings {
        Settings {
            leader_election: Some(sroll_operator::LeaseSettings {
                name: "sroll-operator".into(),
                namespace: self.ns.clone(),
                identity: identity.into(),
                lease_duration,
                renew_deadline,
                retry_period,
            }),
            instance: identity.into(),
            ..self.settings()
        }
    }

    /// The holder of the namespace's `sroll-operator` Lease.
    pub async fn lease_holder(&self) -> Option<String> {
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(self.client.clone(), &self.ns)
            .get_opt("sroll-operator")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
    }

    /// Starts the operator (in-process, over HTTP), followed by the checker.
    pub fn start_operator(&mut self) {
        self.start_operator_with(self.settings());
    }

    /// Stops the operator gracefully.
    /// Waits until the checker has seen every StatefulSet of the namespace as the server has it
    /// now, so that its judgement is not made on a lagging view.
    pub async fn checker_caught_up(&self) {
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.ns);
        wait_for(
            "the checker to see the StatefulSets as the server has them",
            Duration::from_secs(120),
            || async {
                let list = sets.list(&Default::default()).await.ok()?;
                list.items
                    .iter()
                    .all(|s| {
                        self.checker.has_seen_set(
                            &s.name_any(),
                            s.metadata.resource_version.as_deref().unwrap_or_default(),
                        )
                    })
                    .then_some(())
            },
        )
        .await;
    }

    pub async fn stop_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            op.stop().await.expect("the operator stops cleanly");
        }
    }

    /// Kills the operator at once.
    pub async fn kill_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            op.kill().await;
        }
    }

    /// The operator's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.operator
            .as_ref()
            .expect("the operator is running")
            .metrics
            .clone()
    }

    /// Rollout API of the namespace.
    pub fn rollouts(&self) -> Api<StatefulsetRollout> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// StatefulSet API of the namespace.
    pub fn statefulsets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Pod API of the namespace.
    pub fn pod_api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Applies a rollout as a user would (`kubectl apply --server-side`).
    pub async fn apply(&self, rollout: &Rollout) -> StatefulsetRollout {
        self.apply_resource(&rollout.build()).await
    }

    /// Applies a rollout and returns the API server's answer (for invalid input).
    pub async fn try_apply(&self, rollout: &Rollout) -> kube::Result<StatefulsetRollout> {
        self.try_apply_resource(&rollout.build()).await
    }

    /// Applies a rollout built outside the fixture and returns the API server's answer.
    pub async fn try_apply_resource(
        &self,
        r: &StatefulsetRollout,
    ) -> kube::Result<StatefulsetRollout> {
        self.rollouts()
            .patch(
                &r.name_any(),
                &PatchParams::apply("scenario-user").force(),
                &Patch::Apply(r),
            )
            .await
    }

    /// The rollout as stored.
    pub async fn rollout(&self, name: &str) -> StatefulsetRollout {
        self.rollouts().get(name).await.expect("the rollout exists")
    }

    /// Waits until the rollout's status satisfies `pred`; returns it.
    pub async fn wait_rollout(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&StatefulsetRollout) -> bool,
    ) -> StatefulsetRollout {
        wait_rollout(&self.rollouts(), name, what, DEADLINE, pred).await
    }

    /// Waits until at least `n` pods of the rollout are updated (`status.updatedReplicas`).
    pub async fn wait_updated(&self, name: &str, n: i32) -> StatefulsetRollout {
        let what = format!("{n} updated pods of {name}");
        self.wait_rollout(name, &what, |r| {
            r.status
                .as_ref()
                .and_then(|s| s.updated_replicas)
                .is_some_and(|u| u >= n)
        })
        .await
    }

    /// Waits until the rollout reaches `phase` for its current generation.
    pub async fn wait_phase(&self, name: &str, phase: Phase) -> StatefulsetRollout {
        let what = format!("{name} to reach {phase}");
        self.wait_rollout(name, &what, |r| {
            let status = r.status.clone().unwrap_or_default();
            status.phase.as_ref() == Some(&phase)
                && status.observed_generation == r.metadata.generation
        })
        .await
    }

    /// The pods of set `set`, by ordinal.
    pub async fn pods(&self, set: &str) -> Vec<Pod> {
        let mut pods: Vec<Pod> = self
            .pod_api()
            .list(&ListParams::default())
            .await
            .expect("pods list")
            .items
            .into_iter()
            .filter(|p| {
                p.name_any()
                    .strip_prefix(&format!("{set}-"))
                    .is_some_and(|o| o.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        pods.sort_by_key(|p| ordinal(&p.name_any()));
        pods
    }

    /// Each pod's revision label, by ordinal.
    pub async fn revisions(&self, set: &str) -> Vec<(i32, String)> {
        self.pods(set)
            .await
            .iter()
            .map(|p| {
                (
                    ordinal(&p.name_any()),
                    p.labels()
                        .get("controller-revision-hash")
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The StatefulSet.
    pub async fn statefulset(&self, name: &str) -> Option<StatefulSet> {
        self.statefulsets().get_opt(name).await.expect("get")
    }

    /// The events.k8s.io Events the operator recorded about rollout `name` with `reason`, each as
    /// `(occurrences, note)`: an aggregated Event counts its series.
    pub async fn events(&self, name: &str, reason: &str) -> Vec<(i32, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        api.list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .map(|e| {
                (
                    e.series.as_ref().map_or(1, |s| s.count),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Creates a PDB selecting `app=<app>` with `maxUnavailable`.
    pub async fn pdb(&self, name: &str, app: &str, max_unavailable: IntOrString) {
        Api::<PodDisruptionBudget>::namespaced(self.client.clone(), &self.ns)
            .create(
                &PostParams::default(),
                &PodDisruptionBudget {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(PodDisruptionBudgetSpec {
                        max_unavailable: Some(max_unavailable),
                        selector: Some(LabelSelector {
                            match_labels: Some([("app".to_owned(), app.to_owned())].into()),
                            match_expressions: None,
                        }),
                        ..PodDisruptionBudgetSpec::default()
                    }),
                    status: None,
                },
            )
            .await
            .expect("PDB created");
    }

    /// Deletes a pod (as a node failure or chaos tool would).
    pub async fn kill_pod(&self, name: &str) {
        let _ = self
            .pod_api()
            .delete(
                name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await;
    }

    /// Stops the operator, then judges the run: fails on any budget violation, version leak,
    /// status regression, duplicated delivery, operator exit or panic.
    pub async fn finish(mut self, partitioned: bool) -> checker::Report {
        self.stop_operator().await;
        self.checker_caught_up().await;
        let report = self.checker.report(partitioned);
        assert!(
            report.violations.is_empty(),
            "availability budget exceeded: {:#?}",
            report.violations
        );
        assert!(
            report.leaks.is_empty(),
            "pods moved to a revision the rollout did not choose: {:#?}",
            report.leaks
        );
        report.assert_clean();
        report
    }
}

/// Polls rollout `name` of `api` until `pred` holds and returns it; fails the test after
/// `deadline`, naming `what` and the rollout's last status.
pub async fn wait_rollout(
    api: &Api<StatefulsetRollout>,
    name: &str,
    what: &str,
    deadline: Duration,
    pred: impl Fn(&StatefulsetRollout) -> bool,
) -> StatefulsetRollout {
    let last = std::sync::Mutex::new(None);
    let (pred, last_seen) = (&pred, &last);
    let found = tokio::time::timeout(
        deadline,
        wait_for(what, Duration::MAX, || async move {
            let r = api.get(name).await.ok()?;
            if pred(&r) {
                return Some(r);
            }
            *last_seen.lock().expect("the last status") = Some(r.status);
            None
        }),
    )
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "timed out after {deadline:?} waiting for {what}; last status: {:#?}",
            last.lock().expect("the last status")
        )
    })
}

/// The ordinal of a StatefulSet pod name.
pub fn ordinal(pod: &str) -> i32 {
    pod.rsplit_once('-')
        .and_then(|(_, o)| o.parse().ok())
        .unwrap_or(-1)
}

// ---- Operator settings overrides and raw resources (used by tests/integrations.rs) ----------

impl Env {
    /// Starts the operator (in-process, over HTTP) with `settings`, e.g. [`Env::settings`] with
    /// integration URLs pointed at local servers.
    pub fn start_operator_with(&mut self, settings: Settings) {
        assert!(self.operator.is_none(), "the operator is already running");
        let op = RunningOperator::start(self.client.clone(), settings);
        self.checker.watch_operator(&op.exits);
        self.operator = Some(op);
    }

    /// Applies a rollout built outside the fixture (fields [`Rollout`] has no builder for).
    pub async fn apply_resource(&self, r: &StatefulsetRollout) -> StatefulsetRollout {
        self.try_apply_resource(r)
            .await
            .expect("the rollout is accepted")
    }

    /// [`Env::wait_rollout`] with its own deadline (for long runs).
    pub async fn wait_rollout_within(
        &self,
        name: &str,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&StatefulsetRollout) -> bool,
    ) -> StatefulsetRollout {
        wait_rollout(&self.rollouts(), name, what, deadline, pred).await
    }
}

impl Env {
    /// Stores `token` as the Slack bot token in a Secret `slack` (key `token`) of the test
    /// namespace and returns where the operator finds it (`IntegrationSettings::slack_token_secret`).
    pub async fn slack_token_secret(
        &self,
        token: &str,
    ) -> sroll_operator::integrations::SecretLocation {
        use k8s_openapi::{ByteString, api::core::v1::Secret};
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some("slack".into()),
                        ..ObjectMeta::default()
                    },
                    data: Some(std::collections::BTreeMap::from([(
                        "token".to_owned(),
                        ByteString(token.as_bytes().to_vec()),
                    )])),
                    ..Secret::default()
                },
            )
            .await
            .expect("the Slack token Secret is created");
        sroll_operator::integrations::SecretLocation {
            namespace: self.ns.clone(),
            name: "slack".into(),
            key: "token".into(),
        }
    }
}
