//! Fluent rollout fixtures: `Rollout::named("web").replicas(8).image("app:v1").percent(25)`.

use k8s_openapi::{
    api::{
        apps::v1::StatefulSetSpec,
        core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use sroll_api::{
    EmbeddedStatefulSet, InPlaceUpdateStrategy, PodUpdatePolicy, RolloutStrategy,
    StatefulsetRollout, StatefulsetRolloutSpec,
};

/// A rollout under construction.
#[derive(Clone, Debug)]
pub struct Rollout {
    name: String,
    replicas: i32,
    image: String,
    percent: i32,
    paused: Option<bool>,
    strategy: Option<RolloutStrategy>,
    max_unavailable: Option<IntOrString>,
    progress_deadline: Option<i32>,
    min_interval: Option<i64>,
    identity: Option<String>,
    pod_management: Option<String>,
    service_name: Option<String>,
    selector_app: Option<String>,
    recreate_on_immutable_change: Option<bool>,
    analysis: Option<sroll_api::analysis::RolloutAnalysis>,
    steps: Vec<sroll_api::analysis::RolloutStep>,
    pod_update_policy: Option<PodUpdatePolicy>,
    revision_pinning: bool,
    in_place_grace: Option<i32>,
    env: Vec<(String, String)>,
}

impl Rollout {
    /// A 3-replica rollout of `app:v1` at 100 %, `Partitioned`, Parallel pods.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            replicas: 3,
            image: "registry.example/app:v1".into(),
            percent: 100,
            paused: None,
            strategy: None,
            max_unavailable: None,
            progress_deadline: None,
            min_interval: None,
            identity: None,
            pod_management: None,
            service_name: None,
            selector_app: None,
            recreate_on_immutable_change: None,
            analysis: None,
            steps: Vec::new(),
            pod_update_policy: None,
            revision_pinning: false,
            in_place_grace: None,
            env: Vec::new(),
        }
    }

    /// `spec.revisionPinning: true` (the scenario must run the webhook: `Env::start_with_webhook`).
    pub fn revision_pinning(mut self) -> Self {
        self.revision_pinning = true;
        self
    }

    /// `spec.podUpdatePolicy`.
    pub fn pod_update_policy(mut self, policy: PodUpdatePolicy) -> Self {
        self.pod_update_policy = Some(policy);
        self
    }

    /// `spec.inPlaceUpdateStrategy.gracePeriodSeconds`.
    pub fn in_place_grace(mut self, seconds: i32) -> Self {
        self.in_place_grace = Some(seconds);
        self
    }

    /// An environment variable of the container (a change that cannot be made in place).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Replicas of the set.
    pub fn replicas(mut self, n: i32) -> Self {
        self.replicas = n;
        self
    }

    /// The one container's image.
    pub fn image(mut self, image: &str) -> Self {
        self.image = image.into();
        self
    }

    /// `spec.percent`.
    pub fn percent(mut self, p: i32) -> Self {
        self.percent = p;
        self
    }

    /// `spec.pauseRequested`.
    pub fn paused(mut self, p: bool) -> Self {
        self.paused = Some(p);
        self
    }

    /// `spec.strategy: OnDelete`.
    pub fn on_delete(mut self) -> Self {
        self.strategy = Some(RolloutStrategy::OnDelete);
        self
    }

    /// `spec.maxUnavailable` as a number.
    pub fn max_unavailable(mut self, n: i32) -> Self {
        self.max_unavailable = Some(IntOrString::Int(n));
        self
    }

    /// `spec.progressDeadlineSeconds`.
    pub fn progress_deadline(mut self, s: i32) -> Self {
        self.progress_deadline = Some(s);
        self
    }

    /// `spec.minPodEvictionIntervalSeconds`.
    pub fn min_eviction_interval(mut self, s: i64) -> Self {
        self.min_interval = Some(s);
        self
    }

    /// `spec.rolloutIdentity`.
    pub fn identity(mut self, id: &str) -> Self {
        self.identity = Some(id.into());
        self
    }

    /// `spec.sts.spec.podManagementPolicy`.
    pub fn pod_management(mut self, p: &str) -> Self {
        self.pod_management = Some(p.into());
        self
    }

    /// `spec.sts.spec.serviceName` (default: the rollout's name).
    pub fn service_name(mut self, s: &str) -> Self {
        self.service_name = Some(s.into());
        self
    }

    /// The selector's `app` label (default: the template's, i.e. the rollout's name).
    pub fn selector_app(mut self, app: &str) -> Self {
        self.selector_app = Some(app.into());
        self
    }

    /// `spec.recreateOnImmutableChange`.
    pub fn recreate_on_immutable_change(mut self) -> Self {
        self.recreate_on_immutable_change = Some(true);
        self
    }

    /// `spec.analysis`.
    pub fn analysis(mut self, a: sroll_api::analysis::RolloutAnalysis) -> Self {
        self.analysis = Some(a);
        self
    }

    /// `spec.steps`.
    pub fn steps(mut self, steps: Vec<sroll_api::analysis::RolloutStep>) -> Self {
        self.steps = steps;
        self
    }

    /// The pods' `app` label.
    pub fn app_label(&self) -> &str {
        &self.name
    }

    /// The resource.
    pub fn build(&self) -> StatefulsetRollout {
        let labels = [("app".to_owned(), self.name.clone())].into();
        let selector = [(
            "app".to_owned(),
            self.selector_app
                .clone()
                .unwrap_or_else(|| self.name.clone()),
        )]
        .into();
        let mut r = StatefulsetRollout::new(
            &self.name,
            StatefulsetRolloutSpec {
                sts: EmbeddedStatefulSet {
                    api_version: Some("apps/v1".into()),
                    kind: Some("StatefulSet".into()),
                    metadata: Default::default(),
                    spec: StatefulSetSpec {
                        replicas: Some(self.replicas),
                        selector: LabelSelector {
                            match_labels: Some(selector),
                            match_expressions: None,
                        },
                        service_name: Some(
                            self.service_name
                                .clone()
                                .unwrap_or_else(|| self.name.clone()),
                        ),
                        pod_management_policy: Some(
                            self.pod_management
                                .clone()
                                .unwrap_or_else(|| "Parallel".into()),
                        ),
                        template: PodTemplateSpec {
                            metadata: Some(ObjectMeta {
                                labels: Some(labels),
                                ..ObjectMeta::default()
                            }),
                            spec: Some(PodSpec {
                                containers: vec![Container {
                                    name: "app".into(),
                                    image: Some(self.image.clone()),
                                    env: (!self.env.is_empty()).then(|| {
                                        self.env
                                            .iter()
                                            .map(|(name, value)| EnvVar {
                                                name: name.clone(),
                                                value: Some(value.clone()),
                                                value_from: None,
                                            })
                                            .collect()
                                    }),
                                    ..Container::default()
                                }],
                                termination_grace_period_seconds: Some(1),
                                ..PodSpec::default()
                            }),
                        },
                        ..StatefulSetSpec::default()
                    },
                },
                percent: self.percent,
                pause_requested: self.paused,
                min_pod_eviction_interval_seconds: self.min_interval,
                rollout_identity: self.identity.clone(),
                channel: None,
                bapi: None,
                service_discovery: None,
                strategy: self.strategy.clone(),
                max_unavailable: self.max_unavailable.clone(),
                progress_deadline_seconds: self.progress_deadline,
                notifications: None,
                adopt_existing: None,
                recreate_on_immutable_change: self.recreate_on_immutable_change,
                analysis: self.analysis.clone(),
                steps: self.steps.clone(),
                pod_update_policy: self.pod_update_policy.clone(),
                in_place_update_strategy: self.in_place_grace.map(|g| InPlaceUpdateStrategy {
                    grace_period_seconds: Some(g),
                }),
                revision_pinning: self.revision_pinning.then_some(true),
            },
        );
        r.metadata.namespace = None;
        r
    }
}
