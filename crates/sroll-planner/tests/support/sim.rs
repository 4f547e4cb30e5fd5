//! A tiny, pure model of the StatefulSet controller, the disruption controller, the eviction API
//! and the kubelet, driven by `plan()` in a loop: whole rollouts without a cluster.
//!
//! Simplifications (each deliberate, see /work/shared/reference/kubernetes-semantics.md):
//! - pods are created in one sync for every missing ordinal (`Parallel`), at the current revision
//!   below the partition and the update revision otherwise (§2.1);
//! - the RollingUpdate controller deletes one pod at or above the partition that is not at the
//!   update revision when no pod is unavailable (§4.1); every such deletion is counted in
//!   `controller_moves` — the leak-proof design says it never happens;
//! - `currentRevision` advances when every pod is updated and Ready under RollingUpdate (§1.5);
//! - a PDB with `maxUnavailable` gives `disruptionsAllowed = healthy − (replicas − maxUnavailable)`
//!   and the eviction API refuses with 429 at 0 (§7.2, §8.2);
//! - the kubelet makes a pod Ready `ready_delay` seconds after creation unless its revision is
//!   broken, and removes a terminating pod after `terminate_delay` seconds;
//! - in-place updates: a pod created from a template with the `InPlaceUpdateReady` gate is Ready
//!   only once that condition is `True`; an image patch restarts its container, which is ready
//!   again `restart_delay` seconds later. Every revision change is qualified by the real
//!   `sroll_planner::inplace::qualifies` on the templates the set had at each revision.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetStatus},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use sroll_api::{Phase, StatefulsetRollout};
use sroll_planner::{
    ANNOTATION_TEMPLATE_HASH, Action, LiveStatefulSet, Observed, ObservedPdb, ObservedPod, Plan,
    inplace::{self, Op, PodInPlace},
    plan,
};

use super::{T0, at};

/// One simulated pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPod {
    pub revision: String,
    pub ready_since: Option<i64>,
    pub created_at: i64,
    pub terminating_since: Option<i64>,
    /// The incarnation (a new uid for every pod the controller creates).
    pub uid: String,
    /// The pod's spec lists the `InPlaceUpdateReady` gate.
    pub has_gate: bool,
    /// The gate condition (`None`: absent) and its last transition.
    pub gate: Option<bool>,
    pub gate_since: i64,
    /// The revision of the last in-place patch, and when its container restarted.
    pub state_revision: Option<String>,
    pub restarted_at: Option<i64>,
    /// In-place image patches this incarnation received.
    pub patches: usize,
}

/// The simulated world.
pub struct Sim {
    pub rollout: StatefulsetRollout,
    pub applied: Option<StatefulSet>,
    pub generation: i64,
    pub observed_generation: i64,
    pub current: Option<String>,
    pub update: Option<String>,
    pub pods: BTreeMap<i32, SimPod>,
    pub pdb_max_unavailable: Option<i32>,
    pub broken_revisions: BTreeSet<String>,
    pub now: i64,
    pub ready_delay: i64,
    pub terminate_delay: i64,
    pub plans: usize,
    pub batches: usize,
    pub evictions: usize,
    pub refused: usize,
    pub deletes: usize,
    pub controller_moves: usize,
    /// Largest number of pods unavailable at once because of the rollout (evicted or deleted and
    /// not back Ready yet).
    pub max_unavailable_seen: usize,
    /// Simulated instants of every successful eviction.
    pub eviction_times: Vec<i64>,
    pub trace: Vec<String>,
    /// The pod template of every revision the set had.
    pub templates: BTreeMap<String, PodTemplateSpec>,
    pub restart_delay: i64,
    pub created: usize,
    /// Pods taken out of traffic, and image patches, over the whole run.
    pub out_of_traffic: usize,
    pub patches: usize,
    /// Shortest time a patched pod had been out of traffic when its images changed.
    pub min_grace_seen: Option<i64>,
    /// Times a pod out of traffic for an in-place update sat at or above the partition with its old
    /// revision (the StatefulSet controller would delete it): the design says never.
    pub in_place_exposed: usize,
}

impl Sim {
    pub fn new(rollout: StatefulsetRollout) -> Self {
        Sim {
            rollout,
            applied: None,
            generation: 0,
            observed_generation: 0,
            current: None,
            update: None,
            pods: BTreeMap::new(),
            pdb_max_unavailable: Some(1),
            broken_revisions: BTreeSet::new(),
            now: T0,
            ready_delay: 3,
            terminate_delay: 1,
            plans: 0,
            batches: 0,
            evictions: 0,
            refused: 0,
            deletes: 0,
            controller_moves: 0,
            max_unavailable_seen: 0,
            eviction_times: Vec::new(),
            trace: Vec::new(),
            templates: BTreeMap::new(),
            restart_delay: 2,
            created: 0,
            out_of_traffic: 0,
            patches: 0,
            min_grace_seen: None,
            in_place_exposed: 0,
        }
    }

    /// The revision name a template hash gets.
    pub fn revision_of(thash: &str) -> String {
        format!("web-{}", &thash[..thash.len().min(10)])
    }

    fn replicas(&self) -> i32 {
        self.applied
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0)
    }

    pub fn partition(&self) -> Option<i32> {
        self.applied
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
    }

    fn on_delete(&self) -> bool {
        self.applied
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            == Some("OnDelete")
    }

    fn ready(&self, p: &SimPod) -> bool {
        p.ready_since.is_some() && p.terminating_since.is_none() && self.serving(p)
    }

    /// The gate (when the pod has it) is `True` and no container is restarting.
    fn serving(&self, p: &SimPod) -> bool {
        (!p.has_gate || p.gate == Some(true)) && self.containers_done(p)
    }

    fn containers_done(&self, p: &SimPod) -> bool {
        p.restarted_at
            .is_none_or(|t| self.now - t >= self.restart_delay)
    }

    fn view(&self, p: &SimPod) -> PodInPlace {
        PodInPlace {
            has_gate: p.has_gate,
            gate_ready: p.gate,
            gate_since: p.gate.map(|_| at(p.gate_since)),
            state_revision: p.state_revision.clone(),
            containers_pending: if p.state_revision.as_ref() == Some(&p.revision)
                && !self.containers_done(p)
            {
                vec!["app".into()]
            } else {
                vec![]
            },
        }
    }

    fn healthy(&self) -> i32 {
        i32::try_from(self.pods.values().filter(|p| self.ready(p)).count()).unwrap_or(0)
    }

    fn pdb(&self) -> Option<ObservedPdb> {
        let max_unavailable = self.pdb_max_unavailable?;
        let desired = (self.replicas() - max_unavailable).max(0);
        let healthy = self.healthy();
        Some(ObservedPdb {
            name: "web".into(),
            disruptions_allowed: (healthy - desired).max(0),
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: self.replicas(),
            stale: false,
        })
    }

    pub fn observed(&self) -> Observed {
        let mut o = Observed::new(self.rollout.clone(), at(self.now));
        o.pdbs = self.pdb().into_iter().collect();
        if let Some(applied) = &self.applied {
            let mut sts = applied.clone();
            sts.metadata.generation = Some(self.generation);
            sts.metadata.uid = Some("uid-sts".into());
            sts.status = Some(StatefulSetStatus {
                observed_generation: Some(self.observed_generation),
                current_revision: self.current.clone(),
                update_revision: self.update.clone(),
                ..Default::default()
            });
            let uid = self.rollout.metadata.uid.clone().unwrap_or_default();
            o.statefulset = Some(LiveStatefulSet::from_statefulset(&sts, &uid));
            o.pods = self
                .pods
                .iter()
                .map(|(&ordinal, p)| ObservedPod {
                    name: format!("web-{ordinal}").into(),
                    ordinal,
                    revision: Some(p.revision.as_str().into()),
                    ready: self.ready(p),
                    ready_since: p.ready_since.map(at),
                    terminating: p.terminating_since.is_some(),
                    phase: if p.ready_since.is_some() {
                        "Running"
                    } else {
                        "Pending"
                    }
                    .into(),
                    uid: p.uid.as_str().into(),
                    in_place: self.view(p).into(),
                })
                .collect();
            if let Some(update) = &self.update
                && let Some(new) = self.templates.get(update)
            {
                for p in self.pods.values() {
                    if &p.revision != update
                        && let Some(old) = self.templates.get(&p.revision)
                    {
                        o.in_place
                            .changes
                            .insert(p.revision.clone(), inplace::qualifies(old, new));
                    }
                }
            }
        }
        o
    }

    /// Pods made unavailable by the rollout are those not Ready; with no other disruption in the
    /// model, that is every unavailable pod.
    fn unavailable(&self) -> usize {
        let replicas = usize::try_from(self.replicas()).unwrap_or(0);
        let present_ready = self.pods.values().filter(|p| self.ready(p)).count();
        replicas.saturating_sub(present_ready)
    }

    /// Runs one plan and executes its action. Returns the plan.
    pub fn step(&mut self) -> Plan {
        let observed = self.observed();
        let mut p = plan(&observed);
        self.plans += 1;
        let mut evicted_partially = None;
        match &p.action {
            Action::Wait => {}
            Action::Apply { statefulset, .. } => self.apply(statefulset),
            Action::SetPartition(m) => self.apply(&m.statefulset),
            Action::RecreateOrphan { .. } => {
                self.applied = None;
            }
            Action::Evict { partition, pods } => {
                if let Some(m) = partition {
                    self.apply(&m.statefulset);
                }
                self.batches += 1;
                let mut done = 0;
                for name in pods {
                    if let Some(pdb) = self.pdb()
                        && pdb.disruptions_allowed <= 0
                    {
                        self.refused += 1;
                        break;
                    }
                    let ordinal = ordinal(name);
                    if let Some(pod) = self.pods.get_mut(&ordinal) {
                        pod.terminating_since = Some(self.now);
                    }
                    self.evictions += 1;
                    self.eviction_times.push(self.now);
                    done += 1;
                }
                if done < pods.len() {
                    evicted_partially = Some(done);
                }
                self.trace
                    .push(format!("t+{} evict {:?}", self.now - T0, &pods[..done]));
            }
            Action::DeletePods { partition, pods } => {
                if let Some(m) = partition {
                    self.apply(&m.statefulset);
                }
                for name in pods {
                    if let Some(pod) = self.pods.get_mut(&ordinal(name)) {
                        pod.terminating_since = Some(self.now);
                    }
                    self.deletes += 1;
                }
                self.trace
                    .push(format!("t+{} delete {pods:?}", self.now - T0));
            }
            Action::PatchCurrentRevision { revision, .. } => {
                self.current = Some(revision.clone());
            }
            Action::InPlace { partition, writes } => {
                if let Some(m) = partition {
                    self.apply(&m.statefulset);
                }
                let now = self.now;
                for w in writes {
                    let done = self.containers_done_of(&w.pod);
                    let Some(p) = self.pods.get_mut(&ordinal(&w.pod)) else {
                        continue;
                    };
                    if p.uid != w.uid || p.terminating_since.is_some() {
                        continue;
                    }
                    match &w.op {
                        Op::TakeOutOfTraffic { target } => {
                            if &p.revision != target && p.gate != Some(false) {
                                p.gate = Some(false);
                                p.gate_since = now;
                                p.ready_since = None;
                                self.out_of_traffic += 1;
                            }
                        }
                        Op::PatchImages { from, target, .. } => {
                            if &p.revision == from && p.gate == Some(false) {
                                p.revision = target.clone();
                                p.state_revision = Some(target.clone());
                                p.restarted_at = Some(now);
                                p.patches += 1;
                                self.patches += 1;
                                let waited = now - p.gate_since;
                                self.min_grace_seen =
                                    Some(self.min_grace_seen.map_or(waited, |m| m.min(waited)));
                            }
                        }
                        Op::PatchSidecars { .. } => {
                            unreachable!("the rollout planner never upgrades sidecars")
                        }
                        Op::MarkReady => {
                            if p.has_gate && p.gate != Some(true) && done {
                                p.gate = Some(true);
                                p.gate_since = now;
                            }
                        }
                    }
                }
                self.trace.push(format!(
                    "t+{} in place {:?}",
                    self.now - T0,
                    writes
                        .iter()
                        .map(|w| format!("{}:{}", w.pod, w.op.name()))
                        .collect::<Vec<_>>()
                ));
            }
        }
        // What the operator writes: the plan settled with what its action achieved.
        let settled = sroll_planner::settle(
            &observed,
            &p,
            &sroll_planner::Executed {
                evicted: evicted_partially,
                ..Default::default()
            },
        );
        p.status = settled.status;
        p.events = settled.events;
        p.requeue_after = settled.requeue_after;
        p.notify = settled.notify;
        self.check_in_place_exposure();
        self.rollout.status = Some(p.status.clone());
        self.controllers();
        p
    }

    fn containers_done_of(&self, name: &str) -> bool {
        self.pods
            .get(&ordinal(name))
            .is_some_and(|p| self.containers_done(p))
    }

    fn check_in_place_exposure(&mut self) {
        let (Some(update), Some(partition)) = (self.update.clone(), self.partition()) else {
            return;
        };
        if self.on_delete() {
            return;
        }
        self.in_place_exposed += self
            .pods
            .iter()
            .filter(|(o, p)| **o >= partition && p.revision != update && p.gate == Some(false))
            .count();
    }

    fn has_gate(&self, revision: &str) -> bool {
        self.templates
            .get(revision)
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.readiness_gates.as_ref())
            .is_some_and(|g| {
                g.iter()
                    .any(|g| g.condition_type == inplace::READINESS_GATE)
            })
    }

    fn apply(&mut self, sts: &StatefulSet) {
        let changed = self.applied.as_ref().map(|a| &a.spec) != Some(&sts.spec)
            || self.applied.as_ref().map(|a| &a.metadata.annotations)
                != Some(&sts.metadata.annotations);
        self.applied = Some(sts.clone());
        if changed {
            self.generation += 1;
        }
    }

    /// One sync of the StatefulSet controller (revisions, pod creation, its own rolling update,
    /// status), then the kubelet.
    pub fn controllers(&mut self) {
        let Some(applied) = &self.applied else {
            return;
        };
        let thash = applied
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_TEMPLATE_HASH))
            .cloned()
            .unwrap_or_default();
        self.observed_generation = self.generation;
        let update = Self::revision_of(&thash);
        if let Some(t) = applied.spec.as_ref().map(|s| s.template.clone()) {
            self.templates.entry(update.clone()).or_insert(t);
        }
        self.update = Some(update.clone());
        let current = self.current.get_or_insert_with(|| update.clone()).clone();
        let replicas = self.replicas();
        let partition = self.partition().unwrap_or(0);
        let on_delete = self.on_delete();
        // Condemned pods go.
        self.pods.retain(|&o, _| o < replicas);
        // Missing pods are created.
        for o in 0..replicas {
            if self.pods.contains_key(&o) {
                continue;
            }
            let revision = if !on_delete && o < partition {
                current.clone()
            } else {
                update.clone()
            };
            self.created += 1;
            let pod = SimPod {
                has_gate: self.has_gate(&revision),
                revision,
                ready_since: None,
                created_at: self.now,
                terminating_since: None,
                uid: format!("uid-{}", self.created),
                gate: None,
                gate_since: self.now,
                state_revision: None,
                restarted_at: None,
                patches: 0,
            };
            self.pods.insert(o, pod);
        }
        // The controller's own rolling update (RollingUpdate only).
        if !on_delete && self.unavailable() == 0 {
            let stray = (partition..replicas).rev().find(|o| {
                self.pods
                    .get(o)
                    .is_some_and(|p| p.revision != update && p.terminating_since.is_none())
            });
            if let Some(o) = stray {
                self.controller_moves += 1;
                if let Some(p) = self.pods.get_mut(&o) {
                    p.terminating_since = Some(self.now);
                }
            }
        }
        // completeRollingUpdate.
        if !on_delete
            && self.pods.len() == usize::try_from(replicas).unwrap_or(0)
            && self.pods.values().all(|p| {
                p.revision == update && p.ready_since.is_some() && p.terminating_since.is_none()
            })
        {
            self.current = Some(update.clone());
        }
        self.max_unavailable_seen = self.max_unavailable_seen.max(self.unavailable());
    }

    /// The kubelet, `secs` seconds later.
    pub fn advance(&mut self, secs: i64) {
        for _ in 0..secs.max(1) {
            self.now += 1;
            let now = self.now;
            let (ready_delay, terminate_delay) = (self.ready_delay, self.terminate_delay);
            self.pods.retain(|_, p| {
                p.terminating_since
                    .is_none_or(|t| now - t < terminate_delay)
            });
            let broken = self.broken_revisions.clone();
            let serving: BTreeSet<i32> = self
                .pods
                .iter()
                .filter(|(_, p)| self.serving(p))
                .map(|(&o, _)| o)
                .collect();
            for (o, p) in self.pods.iter_mut() {
                if p.ready_since.is_none()
                    && p.terminating_since.is_none()
                    && now - p.created_at >= ready_delay
                    && !broken.contains(&p.revision)
                    && serving.contains(o)
                {
                    p.ready_since = Some(now);
                }
            }
            self.controllers();
        }
    }

    /// Plans until the phase is terminal (or `max_plans`), advancing time between waits.
    pub fn run(&mut self, max_plans: usize) -> Plan {
        let mut last = self.step();
        for _ in 0..max_plans {
            let phase = last.status.phase.clone();
            if phase.as_ref().is_some_and(Phase::is_terminal) && last.action == Action::Wait {
                return last;
            }
            if last.action == Action::Wait {
                let secs = last.requeue_after.map_or(1, |d| {
                    i64::try_from(d.as_secs()).unwrap_or(1).clamp(1, 3600)
                });
                self.advance(secs.min(5));
            }
            last = self.step();
        }
        last
    }

    /// Changes the rollout's spec as a user would (a new generation).
    pub fn edit(&mut self, f: impl FnOnce(&mut StatefulsetRollout)) {
        f(&mut self.rollout);
        let g = self.rollout.metadata.generation.unwrap_or(1);
        self.rollout.metadata.generation = Some(g + 1);
    }

    pub fn revisions(&self) -> BTreeMap<i32, String> {
        self.pods
            .iter()
            .map(|(&o, p)| (o, p.revision.clone()))
            .collect()
    }

    pub fn count_at(&self, revision: &str) -> usize {
        self.pods
            .values()
            .filter(|p| p.revision == revision)
            .count()
    }

    pub fn last_eviction(&self) -> Option<MicroTime> {
        self.rollout
            .status
            .as_ref()
            .and_then(|s| s.last_eviction_time.clone())
    }
}

fn ordinal(name: &str) -> i32 {
    name.rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}
