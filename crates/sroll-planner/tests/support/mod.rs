//! Fluent fixtures for planner tests: `Rollout::test().replicas(10).percent(25)` and
//! `World::of(&rollout).pods(0..10, OLD, Ready)…observed()`.
#![allow(dead_code)]

pub mod sim;

use std::{collections::BTreeMap, ops::Range};

use k8s_openapi::{
    api::{
        apps::v1::StatefulSetSpec,
        core::v1::{Container, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta, Time},
        util::intstr::IntOrString,
    },
    jiff::Timestamp,
};
use sroll_api::{
    EmbeddedStatefulSet, RolloutStrategy, StatefulsetRollout, StatefulsetRolloutSpec,
    StatefulsetRolloutStatus,
};
use sroll_planner::{
    LiveStatefulSet, Observed, ObservedPdb, ObservedPod, spec_hash, template_hash,
};

/// The revision pods are rolled away from.
pub const OLD: &str = "web-old";
/// The revision pods are rolled to.
pub const NEW: &str = "web-new";

/// Seconds since the epoch used as "now" unless a test says otherwise.
pub const T0: i64 = 1_800_000_000;

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("valid timestamp")
}

/// Fluent builder of a `StatefulsetRollout`.
#[derive(Clone)]
pub struct Rollout(pub StatefulsetRollout);

pub trait RolloutExt {
    fn test() -> Rollout;
}

impl RolloutExt for StatefulsetRollout {
    fn test() -> Rollout {
        Rollout::test()
    }
}

impl Rollout {
    pub fn test() -> Self {
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let spec = StatefulsetRolloutSpec {
            sts: EmbeddedStatefulSet {
                api_version: Some("apps/v1".into()),
                kind: Some("StatefulSet".into()),
                metadata: Default::default(),
                spec: StatefulSetSpec {
                    replicas: Some(10),
                    service_name: Some("web".into()),
                    pod_management_policy: Some("Parallel".into()),
                    selector: LabelSelector {
                        match_labels: Some(labels.clone()),
                        ..Default::default()
                    },
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..Default::default()
                        }),
                        spec: Some(PodSpec {
                            containers: vec![Container {
                                name: "app".into(),
                                image: Some("registry.example.com/app:v2".into()),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                },
            },
            percent: 100,
            pause_requested: None,
            min_pod_eviction_interval_seconds: None,
            rollout_identity: Some("id-1".into()),
            channel: None,
            bapi: None,
            service_discovery: None,
            strategy: None,
            max_unavailable: None,
            progress_deadline_seconds: None,
            notifications: None,
            adopt_existing: None,
            recreate_on_immutable_change: None,
            analysis: None,
            steps: Vec::new(),
            pod_update_policy: None,
            in_place_update_strategy: None,
            revision_pinning: None,
        };
        let mut r = StatefulsetRollout::new("web", spec);
        r.metadata.namespace = Some("default".into());
        r.metadata.uid = Some("uid-web".into());
        r.metadata.generation = Some(1);
        Rollout(r)
    }
    pub fn replicas(mut self, n: i32) -> Self {
        self.0.spec.sts.spec.replicas = Some(n);
        self
    }
    pub fn percent(mut self, p: i32) -> Self {
        self.0.spec.percent = p;
        self
    }
    pub fn paused(mut self) -> Self {
        self.0.spec.pause_requested = Some(true);
        self
    }
    pub fn interval(mut self, secs: i64) -> Self {
        self.0.spec.min_pod_eviction_interval_seconds = Some(secs);
        self
    }
    pub fn max_unavailable(mut self, v: IntOrString) -> Self {
        self.0.spec.max_unavailable = Some(v);
        self
    }
    pub fn on_delete(mut self) -> Self {
        self.0.spec.strategy = Some(RolloutStrategy::OnDelete);
        self
    }
    pub fn deadline(mut self, secs: i32) -> Self {
        self.0.spec.progress_deadline_seconds = Some(secs);
        self
    }
    pub fn image(mut self, image: &str) -> Self {
        if let Some(pod) = self.0.spec.sts.spec.template.spec.as_mut() {
            pod.containers[0].image = Some(image.into());
        }
        self
    }
    pub fn generation(mut self, g: i64) -> Self {
        self.0.metadata.generation = Some(g);
        self
    }
    pub fn identity(mut self, id: &str) -> Self {
        self.0.spec.rollout_identity = Some(id.into());
        self
    }
    pub fn adopt(mut self) -> Self {
        self.0.spec.adopt_existing = Some(true);
        self
    }
    pub fn recreate_on_immutable_change(mut self) -> Self {
        self.0.spec.recreate_on_immutable_change = Some(true);
        self
    }
    /// `spec.podUpdatePolicy` and `spec.inPlaceUpdateStrategy.gracePeriodSeconds`.
    pub fn in_place(mut self, policy: sroll_api::PodUpdatePolicy, grace: i32) -> Self {
        self.0.spec.pod_update_policy = Some(policy);
        self.0.spec.in_place_update_strategy = Some(sroll_api::InPlaceUpdateStrategy {
            grace_period_seconds: Some(grace),
        });
        self
    }
    /// Edits the status as the previous reconcile left it; `observedGeneration` and
    /// `rolloutIdentity` default to the current ones and revisions to OLD → NEW.
    pub fn status(mut self, f: impl FnOnce(&mut StatefulsetRolloutStatus)) -> Self {
        let mut s = self
            .0
            .status
            .take()
            .unwrap_or_else(|| StatefulsetRolloutStatus {
                observed_generation: self.0.metadata.generation,
                rollout_identity: self.0.spec.rollout_identity.clone(),
                update_revision: Some(NEW.into()),
                current_revision: Some(OLD.into()),
                previous_revision: Some(OLD.into()),
                statefulset_name: Some("web".into()),
                ..Default::default()
            });
        f(&mut s);
        self.0.status = Some(s);
        self
    }
    /// A previous status in the same rollout (same generation, identity, revisions).
    pub fn in_progress(self) -> Self {
        self.status(|_| {})
    }
    pub fn build(&self) -> StatefulsetRollout {
        self.0.clone()
    }
}

/// Readiness of fixture pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ready,
    NotReady,
    Terminating,
}
pub use Health::*;

/// The observed world around a rollout.
#[derive(Clone)]
pub struct World {
    pub rollout: StatefulsetRollout,
    pub live: Option<LiveStatefulSet>,
    pub pods: BTreeMap<i32, ObservedPod>,
    pub pdbs: Vec<ObservedPdb>,
    pub now: Timestamp,
}

impl World {
    /// A live set in sync with the rollout (owned, hashes equal, generation observed), revisions
    /// OLD → NEW, partition = replicas, every pod at OLD and Ready, a PDB allowing 1 disruption.
    pub fn of(r: &Rollout) -> Self {
        let rollout = r.build();
        let replicas = rollout.spec.replicas();
        let live = LiveStatefulSet {
            name: "web".into(),
            uid: "uid-sts".into(),
            owned_by_rollout: true,
            owned_by_other: false,
            deleting: false,
            generation: 3,
            observed_generation: Some(3),
            current_revision: Some(OLD.into()),
            update_revision: Some(NEW.into()),
            update_strategy: if rollout.spec.strategy() == RolloutStrategy::OnDelete {
                "OnDelete".into()
            } else {
                "RollingUpdate".into()
            },
            partition: (rollout.spec.strategy() != RolloutStrategy::OnDelete).then_some(replicas),
            replicas,
            ordinals_start: 0,
            min_ready_seconds: 0,
            pod_management_policy: "Parallel".into(),
            selector: rollout.spec.sts.spec.selector.clone(),
            service_name: "web".into(),
            volume_claim_templates: vec![],
            spec_hash: Some(spec_hash(&rollout).expect("hash")),
            template_hash: Some(template_hash(&rollout).expect("hash")),
            pinned_update: None,
        };
        let mut w = World {
            rollout,
            live: Some(live),
            pods: BTreeMap::new(),
            pdbs: vec![ObservedPdb {
                name: "web".into(),
                disruptions_allowed: 1,
                current_healthy: replicas,
                desired_healthy: replicas - 1,
                // Unknown: the budget is the status alone (see `pdb_counting`).
                expected_pods: 0,
                stale: false,
            }],
            now: at(T0),
        };
        w = w.pods(0..replicas, OLD, Ready);
        w
    }
    pub fn no_set(mut self) -> Self {
        self.live = None;
        self.pods.clear();
        self
    }
    pub fn set(mut self, f: impl FnOnce(&mut LiveStatefulSet)) -> Self {
        if let Some(l) = self.live.as_mut() {
            f(l);
        }
        self
    }
    pub fn partition(self, p: i32) -> Self {
        self.set(|l| l.partition = Some(p))
    }
    pub fn revisions(self, current: &str, update: &str) -> Self {
        let (c, u) = (current.to_owned(), update.to_owned());
        self.set(|l| {
            l.current_revision = Some(c);
            l.update_revision = Some(u);
        })
    }
    pub fn pods(mut self, ordinals: Range<i32>, revision: &str, health: Health) -> Self {
        for o in ordinals {
            self.pods.insert(
                o,
                ObservedPod {
                    name: format!("web-{o}").into(),
                    ordinal: o,
                    revision: Some(revision.into()),
                    ready: health == Ready,
                    ready_since: (health == Ready).then(|| at(T0 - 3600)),
                    terminating: health == Terminating,
                    phase: if health == Ready {
                        "Running"
                    } else {
                        "Pending"
                    }
                    .into(),
                    uid: "".into(),
                    in_place: Default::default(),
                },
            );
        }
        self
    }
    pub fn ready_since(mut self, ordinal: i32, secs: i64) -> Self {
        if let Some(p) = self.pods.get_mut(&ordinal) {
            p.ready_since = Some(at(secs));
        }
        self
    }
    pub fn missing(mut self, ordinals: Range<i32>) -> Self {
        for o in ordinals {
            self.pods.remove(&o);
        }
        self
    }
    pub fn pdb(mut self, allowed: i32) -> Self {
        let replicas = self.rollout.spec.replicas();
        self.pdbs = vec![ObservedPdb {
            name: "web".into(),
            disruptions_allowed: allowed,
            current_healthy: replicas,
            desired_healthy: replicas - allowed,
            // Unknown: the budget is the status alone (see `pdb_counting`).
            expected_pods: 0,
            stale: false,
        }];
        self
    }
    /// A PDB selecting exactly the set's pods (`expectedPods` = replicas) whose status says
    /// `allowed` and `desired_healthy`, whatever the pods say (a status that may lag them).
    pub fn pdb_counting(mut self, allowed: i32, desired_healthy: i32) -> Self {
        let replicas = self.rollout.spec.replicas();
        self.pdbs = vec![ObservedPdb {
            name: "web".into(),
            disruptions_allowed: allowed,
            current_healthy: desired_healthy + allowed,
            desired_healthy,
            expected_pods: replicas,
            stale: false,
        }];
        self
    }
    pub fn no_pdb(mut self) -> Self {
        self.pdbs.clear();
        self
    }
    pub fn extra_pdb(mut self, name: &str) -> Self {
        let mut p = self.pdbs.first().cloned().unwrap_or_default();
        p.name = name.into();
        self.pdbs.push(p);
        self
    }
    pub fn now(mut self, secs: i64) -> Self {
        self.now = at(secs);
        self
    }
    pub fn observed(&self) -> Observed {
        Observed {
            rollout: self.rollout.clone(),
            statefulset: self.live.clone(),
            pods: self.pods.values().cloned().collect(),
            pdbs: self.pdbs.clone(),
            discovery: None,
            now: self.now,
            analysis: Vec::new(),
            in_place: Default::default(),
            integrations: Default::default(),
        }
    }
}

pub fn time(secs: i64) -> Time {
    Time(at(secs))
}
/// `secs` as a `MicroTime` (the type of `lastEvictionTime`).
pub fn micro(secs: i64) -> MicroTime {
    MicroTime(at(secs))
}
