//! A deterministic in-memory world for driving kubesim's pure controller,
//! kubelet and scheduler decisions step by step, with a manual clock. It plays
//! the API server's part only where the decisions need it (uids, `Pending` on
//! pod create, graceful pod deletion as `podStrategy.CheckGracefulDelete`
//! does it).

use std::collections::BTreeMap;

use crate::{
    controllers::{
        PodView, disruption,
        history::{
            CandidateMemo, UpdateRevisionAction, plan_revisions_memo, rename_for_collision,
            same_data, sort_revisions, truncate_history,
        },
        statefulset::{self, SetWrite, SyncInput, SyncOutcome, claim_pods},
    },
    kubelet::{self, KubeletAction, KubeletConfig, PodFacts},
};
use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, StatefulSet},
        core::v1::{Node, PersistentVolumeClaim, Pod, PodStatus},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::{OwnerReference, Time},
    jiff::{SignedDuration, Timestamp},
};

pub struct World {
    pub now: Timestamp,
    pub seq: u64,
    pub sets: BTreeMap<String, StatefulSet>,
    pub revisions: BTreeMap<String, ControllerRevision>,
    pub pods: BTreeMap<String, Pod>,
    pub pvcs: BTreeMap<String, PersistentVolumeClaim>,
    pub pdbs: BTreeMap<String, PodDisruptionBudget>,
    pub nodes: Vec<Node>,
    pub cfg: KubeletConfig,
    pub term_started: BTreeMap<String, Timestamp>,
    pub unready: Vec<String>,
    /// Every pod create, in order (names).
    pub created: Vec<String>,
    /// Every pod delete issued by the StatefulSet controller, in order.
    pub deleted: Vec<String>,
    pub kubelet_enabled: bool,
    /// Per set name: the candidate revision memo kept across syncs, as the
    /// runtime keeps it.
    pub candidates: BTreeMap<String, CandidateMemo>,
}

pub const NS: &str = "default";

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        Self {
            now,
            seq: 0,
            sets: BTreeMap::new(),
            revisions: BTreeMap::new(),
            pods: BTreeMap::new(),
            pvcs: BTreeMap::new(),
            pdbs: BTreeMap::new(),
            nodes: kubelet::fake_nodes(3, now),
            cfg: KubeletConfig::default(),
            term_started: BTreeMap::new(),
            unready: Vec::new(),
            created: Vec::new(),
            deleted: Vec::new(),
            kubelet_enabled: true,
            candidates: BTreeMap::new(),
        }
    }

    pub fn uid(&mut self) -> String {
        self.seq += 1;
        format!("uid-{}", self.seq)
    }

    pub fn rv(&mut self) -> String {
        self.seq += 1;
        self.seq.to_string()
    }

    pub fn advance(&mut self, secs: i64) {
        self.now = self
            .now
            .checked_add(SignedDuration::from_secs(secs))
            .unwrap();
    }

    pub fn add_set(&mut self, mut set: StatefulSet) {
        set.metadata.namespace = Some(NS.into());
        set.metadata.uid = Some(self.uid());
        set.metadata.generation = Some(1);
        set.metadata.creation_timestamp = Some(Time(self.now));
        self.sets.insert(set.metadata.name.clone().unwrap(), set);
    }

    /// Mutates a set's spec and bumps its generation like the API server.
    pub fn edit_set(&mut self, name: &str, f: impl FnOnce(&mut StatefulSet)) {
        let set = self.sets.get_mut(name).unwrap();
        let before = set.spec.clone();
        f(set);
        if set.spec != before {
            set.metadata.generation = Some(set.metadata.generation.unwrap_or(0) + 1);
        }
    }

    pub fn set_image(&mut self, name: &str, image: &str) {
        self.edit_set(name, |s| {
            s.spec
                .as_mut()
                .unwrap()
                .template
                .spec
                .as_mut()
                .unwrap()
                .containers[0]
                .image = Some(image.into());
        });
    }

    pub fn add_pdb(&mut self, mut pdb: PodDisruptionBudget) {
        pdb.metadata.namespace = Some(NS.into());
        pdb.metadata.uid = Some(self.uid());
        pdb.metadata.generation = Some(1);
        self.pdbs.insert(pdb.metadata.name.clone().unwrap(), pdb);
    }

    /// POST a pod: uid, Pending, creation timestamp.
    pub fn create_pod(&mut self, mut pod: Pod) {
        let name = pod.metadata.name.clone().unwrap();
        assert!(!self.pods.contains_key(&name), "pod {name} already exists");
        pod.metadata.uid = Some(self.uid());
        pod.metadata.resource_version = Some(self.rv());
        pod.metadata.creation_timestamp = Some(Time(self.now));
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        });
        self.created.push(name.clone());
        self.pods.insert(name, pod);
    }

    /// DELETE a pod as `podStrategy.CheckGracefulDelete` does.
    pub fn delete_pod(&mut self, name: &str) {
        let Some(pod) = self.pods.get_mut(name) else {
            return;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return;
        }
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let unscheduled = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none();
        let phase = crate::controllers::phase(pod).to_owned();
        if unscheduled || phase == "Failed" || phase == "Succeeded" || grace == 0 {
            self.pods.remove(name);
            return;
        }
        pod.metadata.deletion_timestamp = Some(Time(
            self.now
                .checked_add(SignedDuration::from_secs(grace))
                .unwrap(),
        ));
        pod.metadata.deletion_grace_period_seconds = Some(grace);
    }

    pub fn owned_revisions(&self, set: &StatefulSet) -> Vec<ControllerRevision> {
        let uid = set.metadata.uid.clone();
        let mut revs: Vec<ControllerRevision> = self
            .revisions
            .values()
            .filter(|r| {
                r.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| Some(&o.uid) == uid.as_ref())
            })
            .cloned()
            .collect();
        sort_revisions(&mut revs);
        revs
    }

    /// One sync of the StatefulSet controller for `name`.
    pub fn sync_set(&mut self, name: &str) -> SyncOutcome {
        let mut set = self.sets[name].clone();
        let all: Vec<Pod> = self.pods.values().cloned().collect();
        let claims = claim_pods(&set, &all).unwrap();
        for p in &claims.owned {
            let p: Pod = p.pod.to_pod();
            self.pods.insert(p.metadata.name.clone().unwrap(), p);
        }
        for r in &claims.release {
            if let Some(p) = self.pods.get_mut(r) {
                p.metadata.owner_references = None;
            }
        }
        let revs = self.owned_revisions(&set);
        let mut memo = self.candidates.remove(name);
        let plan = plan_revisions_memo(&set, &revs, &mut memo).unwrap();
        if let Some(m) = memo {
            self.candidates.insert(name.to_owned(), m);
        }
        let mut cc = plan.collision_count;
        let update = match plan.action.clone() {
            UpdateRevisionAction::Unchanged => plan.update.clone(),
            UpdateRevisionAction::Rollback { revision } => {
                self.revisions
                    .insert(revision.metadata.name.clone().unwrap(), revision.clone());
                revision
            }
            UpdateRevisionAction::Create { revision } => {
                let mut candidate = revision;
                loop {
                    let n = candidate.metadata.name.clone().unwrap();
                    match self.revisions.get(&n) {
                        Some(existing) if same_data(existing, &candidate) => {
                            break existing.clone();
                        }
                        Some(_) => {
                            cc += 1;
                            candidate = rename_for_collision(&set, &candidate, cc);
                        }
                        None => {
                            candidate.metadata.creation_timestamp = Some(Time(self.now));
                            candidate.metadata.uid = Some(self.uid());
                            self.revisions.insert(n, candidate.clone());
                            break candidate;
                        }
                    }
                }
            }
        };
        let current = if plan.current.metadata.name == plan.update.metadata.name {
            update.clone()
        } else {
            plan.current.clone()
        };
        let out = statefulset::sync(SyncInput {
            set: &set,
            current: &current,
            update: &update,
            collision_count: cc,
            pods: &claims.owned,
            claims: &self.pvcs,
            now: self.now,
        })
        .unwrap();
        for w in out.writes.clone() {
            match w {
                SetWrite::CreateClaim(mut c) => {
                    c.metadata.uid = Some(self.uid());
                    self.pvcs.insert(c.metadata.name.clone().unwrap(), c);
                }
                SetWrite::UpdateClaim(c) => {
                    self.pvcs.insert(c.metadata.name.clone().unwrap(), c);
                }
                SetWrite::CreatePod(p) => self.create_pod(p),
                SetWrite::UpdatePod(p) => {
                    self.pods.insert(p.metadata.name.clone().unwrap(), p);
                }
                SetWrite::DeletePod { name } => {
                    self.deleted.push(name.clone());
                    self.delete_pod(&name);
                }
            }
        }
        if out.write_status {
            set.status = Some(out.status.clone());
            self.sets.insert(name.to_owned(), set.clone());
        }
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        for n in truncate_history(
            limit,
            &claims.owned,
            &revs,
            current.metadata.name.as_deref().unwrap(),
            update.metadata.name.as_deref().unwrap(),
        ) {
            self.revisions.remove(&n);
        }
        out
    }

    /// Scheduler + kubelet pass over every pod.
    pub fn kubelet_pass(&mut self) {
        if !self.kubelet_enabled {
            return;
        }
        let names: Vec<String> = self.pods.keys().cloned().collect();
        for name in names {
            let pod = self.pods[&name].clone();
            if pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none()
            {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let all: Vec<Pod> = self.pods.values().cloned().collect();
                if let Some(node) = kubelet::schedule(&pod, &self.nodes, &all) {
                    let p = self.pods.get_mut(&name).unwrap();
                    p.spec.as_mut().unwrap().node_name = Some(node);
                }
            }
        }
        let names: Vec<String> = self.pods.keys().cloned().collect();
        for (i, name) in names.into_iter().enumerate() {
            let pod = self.pods[&name].clone();
            if pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none()
            {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap();
            if pod.metadata.deletion_timestamp.is_some() {
                self.term_started.entry(uid.clone()).or_insert(self.now);
            }
            let ip = kubelet::pod_ip(0, i + self.seq as usize);
            let facts = PodFacts {
                termination_started: self.term_started.get(&uid).copied(),
                sandbox_started: None,
                pod_ip: &ip,
                host_ip: "172.18.0.2",
                forced_unready: self.unready.contains(&name),
                ..PodFacts::default()
            };
            match kubelet::step(&pod, &self.cfg, facts, self.now).action {
                KubeletAction::Nothing => {}
                KubeletAction::UpdateStatus(st) => {
                    self.pods.get_mut(&name).unwrap().status = Some(*st);
                }
                KubeletAction::Remove => {
                    self.pods.remove(&name);
                }
            }
        }
    }

    pub fn sync_pdbs(&mut self) {
        let pods: Vec<Pod> = self.pods.values().cloned().collect();
        let sets = self.sets.clone();
        let lookup = move |r: &OwnerReference, _ns: &str| {
            Ok(sets
                .values()
                .find(|s| {
                    s.metadata.uid.as_deref() == Some(r.uid.as_str()) && r.kind == "StatefulSet"
                })
                .map(|s| (r.uid.clone(), statefulset::replicas(s))))
        };
        let names: Vec<String> = self.pdbs.keys().cloned().collect();
        for n in names {
            let pdb = self.pdbs[&n].clone();
            let out = disruption::sync(&pdb, &pods, &lookup, self.now);
            if let Some(st) = out.status {
                self.pdbs.get_mut(&n).unwrap().status = Some(st);
            }
        }
    }

    /// One tick: every controller once, then `secs` of simulated time.
    pub fn tick(&mut self, secs: i64) {
        let names: Vec<String> = self.sets.keys().cloned().collect();
        for n in &names {
            self.sync_set(n);
        }
        self.kubelet_pass();
        self.sync_pdbs();
        self.advance(secs);
    }

    /// Ticks (1 s each) until `cond` holds; panics after `max` ticks.
    pub fn run_until(&mut self, max: usize, cond: impl Fn(&World) -> bool) {
        for _ in 0..max {
            if cond(self) {
                return;
            }
            self.tick(1);
        }
        assert!(cond(self), "condition not reached after {max} ticks");
    }

    pub fn pod(&self, name: &str) -> &Pod {
        &self.pods[name]
    }

    pub fn revision_of(&self, pod: &str) -> String {
        statefulset::pod_revision(self.pod(pod)).to_owned()
    }

    pub fn status(&self, set: &str) -> k8s_openapi::api::apps::v1::StatefulSetStatus {
        self.sets[set].status.clone().unwrap_or_default()
    }

    pub fn ready(&self, pod: &str) -> bool {
        self.pods.get(pod).is_some_and(|p| {
            crate::controllers::is_pod_ready(p) && crate::controllers::phase(p) == "Running"
        })
    }

    pub fn all_ready(&self, set: &str, n: i32) -> bool {
        (0..n).all(|i| self.ready(&format!("{set}-{i}")))
            && self.status(set).ready_replicas.unwrap_or(0) == n
    }
}

/// A StatefulSet `name` with `replicas` pods of `image`, selector `app=<name>`.
pub fn sts(name: &str, replicas: i32, image: &str) -> StatefulSet {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]
                }
            }
        }
    }))
    .unwrap()
}

/// Edits the JSON of a StatefulSet (handy for strategies).
pub fn with(set: StatefulSet, patch: serde_json::Value) -> StatefulSet {
    let mut v = serde_json::to_value(&set).unwrap();
    json_merge(&mut v, &patch);
    serde_json::from_value(v).unwrap()
}

fn json_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

pub fn pdb(name: &str, app: &str, spec: serde_json::Value) -> PodDisruptionBudget {
    let mut s = spec;
    s["selector"] = serde_json::json!({"matchLabels": {"app": app}});
    serde_json::from_value(serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": s
    }))
    .unwrap()
}
