//! The invariant checker: watches pods and StatefulSets of the test namespace for the whole run
//! (its own kube watchers, independent of the operator's caches) and records
//!
//! (a) every moment more pods of a set are unavailable than the budget the scenario declares
//!     (once the set has been fully Ready, so initial creation does not count), and
//! (b) in `Partitioned` mode, every pod that came back at a revision the rollout did not choose:
//!     a new incarnation of a pod whose revision differs from its previous incarnation's is allowed
//!     only when the new revision is an update revision of the set and the pod's ordinal is at or
//!     above the lowest partition the set had for that revision. A move back to a revision the set
//!     reported as its current revision is the one drift DESIGN.md allows (three revisions in
//!     flight) and is reported separately.
//!
//! Partitions are judged at the end of the run against everything observed, so the order in which
//! the pod and StatefulSet watch streams deliver events cannot cause a false alarm.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};

/// One pod that changed revision between two incarnations.
#[derive(Clone, Debug)]
pub struct Move {
    /// Set name.
    pub set: String,
    /// Pod name.
    pub pod: String,
    /// Ordinal.
    pub ordinal: i32,
    /// Revision of the previous incarnation.
    pub from: String,
    /// Revision of the new incarnation.
    pub to: String,
}

#[derive(Default, Debug)]
struct SetState {
    replicas: i32,
    armed: bool,
    /// Lowest partition seen per update revision (`RollingUpdate` only).
    min_partition: HashMap<String, i32>,
    update_revisions: BTreeSet<String>,
    current_revisions: BTreeSet<String>,
    on_delete: bool,
}

#[derive(Default, Debug)]
struct PodState {
    uid: String,
    revision: String,
    ready: bool,
    terminating: bool,
}

#[derive(Default, Debug)]
struct State {
    sets: HashMap<String, SetState>,
    pods: BTreeMap<String, PodState>,
    moves: Vec<Move>,
    violations: Vec<String>,
    max_unavailable: HashMap<String, usize>,
    budget: HashMap<String, usize>,
    suspended: bool,
}

/// Handle to a running checker.
#[derive(Clone)]
pub struct Checker {
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

/// What the checker saw.
#[derive(Debug)]
pub struct Report {
    /// Budget violations (a).
    pub violations: Vec<String>,
    /// Pods that moved to a revision nobody chose (b).
    pub leaks: Vec<Move>,
    /// Pods that went back to the set's current revision (the allowed drift).
    pub drift: Vec<Move>,
    /// Highest number of unavailable pods per set while armed.
    pub max_unavailable: HashMap<String, usize>,
    /// Every revision move seen.
    pub moves: Vec<Move>,
}

fn set_of(pod: &Pod) -> Option<String> {
    pod.owner_references()
        .iter()
        .find(|o| o.kind == "StatefulSet")
        .map(|o| o.name.clone())
        .or_else(|| pod.name_any().rsplit_once('-').map(|(s, _)| s.to_owned()))
}

fn ordinal(pod: &str) -> i32 {
    pod.rsplit_once('-')
        .and_then(|(_, o)| o.parse().ok())
        .unwrap_or(-1)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

impl State {
    fn on_set(&mut self, sts: &StatefulSet) {
        let name = sts.name_any();
        let set = self.sets.entry(name).or_default();
        let spec = sts.spec.clone().unwrap_or_default();
        set.replicas = spec.replicas.unwrap_or(1);
        let strategy = spec.update_strategy.unwrap_or_default();
        set.on_delete = strategy.type_.as_deref() == Some("OnDelete");
        let status = sts.status.clone().unwrap_or_default();
        if let Some(cur) = status.current_revision.filter(|s| !s.is_empty()) {
            set.current_revisions.insert(cur);
        }
        if let Some(upd) = status.update_revision.filter(|s| !s.is_empty()) {
            set.update_revisions.insert(upd.clone());
            let partition = strategy
                .rolling_update
                .and_then(|r| r.partition)
                .unwrap_or(0);
            let p = if set.on_delete { 0 } else { partition };
            let e = set.min_partition.entry(upd).or_insert(p);
            *e = (*e).min(p);
        }
    }

    fn on_pod(&mut self, pod: &Pod, deleted: bool) {
        let name = pod.name_any();
        let Some(set) = set_of(pod) else { return };
        if deleted {
            // Keep the record: the pod's next incarnation (same name, new uid) is compared with
            // the revision this one had, which is the whole point of the version-leak check. Until
            // then the pod counts as unavailable.
            if let Some(entry) = self.pods.get_mut(&name) {
                entry.ready = false;
                entry.terminating = true;
            }
        } else {
            let uid = pod.uid().unwrap_or_default();
            let revision = pod
                .labels()
                .get("controller-revision-hash")
                .cloned()
                .unwrap_or_default();
            let entry = self.pods.entry(name.clone()).or_default();
            if !entry.uid.is_empty() && entry.uid != uid && entry.revision != revision {
                self.moves.push(Move {
                    set: set.clone(),
                    pod: name.clone(),
                    ordinal: ordinal(&name),
                    from: entry.revision.clone(),
                    to: revision.clone(),
                });
            }
            entry.uid = uid;
            entry.revision = revision;
            entry.ready = is_ready(pod);
            entry.terminating = pod.metadata.deletion_timestamp.is_some();
        }
        self.check(&set);
    }

    fn check(&mut self, set: &str) {
        let Some(s) = self.sets.get_mut(set) else {
            return;
        };
        let prefix = format!("{set}-");
        let ready = self
            .pods
            .iter()
            .filter(|(n, p)| {
                n.strip_prefix(&prefix)
                    .is_some_and(|o| o.bytes().all(|b| b.is_ascii_digit()))
                    && p.ready
                    && !p.terminating
            })
            .count();
        let replicas = usize::try_from(s.replicas.max(0)).unwrap_or(0);
        let unavailable = replicas.saturating_sub(ready);
        if unavailable == 0 {
            s.armed = true;
        }
        if !s.armed || self.suspended {
            return;
        }
        let max = self.max_unavailable.entry(set.to_owned()).or_insert(0);
        *max = (*max).max(unavailable);
        if let Some(budget) = self.budget.get(set)
            && unavailable > *budget
        {
            self.violations.push(format!(
                "{unavailable} pods of {set} unavailable at once, budget {budget}"
            ));
        }
    }
}

impl Checker {
    /// Starts watching `namespace`.
    pub fn start(client: Client, namespace: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let pods = watcher(
            Api::<Pod>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
        )
        .default_backoff();
        let sets = watcher(
            Api::<StatefulSet>::namespaced(client, namespace),
            watcher::Config::default(),
        )
        .default_backoff();
        let st = state.clone();
        let task = tokio::spawn(async move {
            enum Ev {
                Pod(watcher::Event<Pod>),
                Set(watcher::Event<StatefulSet>),
            }
            let merged =
                futures::stream::select(pods.map(|e| e.map(Ev::Pod)), sets.map(|e| e.map(Ev::Set)));
            futures::pin_mut!(merged);
            while let Some(ev) = merged.next().await {
                let Ok(ev) = ev else { continue };
                let mut s = st.lock().expect("checker state");
                match ev {
                    Ev::Set(watcher::Event::Apply(sts) | watcher::Event::InitApply(sts)) => {
                        s.on_set(&sts);
                        let name = sts.name_any();
                        s.check(&name);
                    }
                    Ev::Pod(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        s.on_pod(&p, false)
                    }
                    Ev::Pod(watcher::Event::Delete(p)) => s.on_pod(&p, true),
                    _ => {}
                }
            }
        });
        Self {
            state,
            task: Arc::new(task),
        }
    }

    /// Declares how many pods of `set` may be unavailable at once from now on.
    pub fn budget(&self, set: &str, n: usize) {
        self.state
            .lock()
            .expect("checker state")
            .budget
            .insert(set.to_owned(), n);
    }

    /// Stops judging availability (the test itself is about to kill pods).
    pub fn suspend_availability(&self) {
        self.state.lock().expect("checker state").suspended = true;
    }

    /// Judges availability again.
    pub fn resume_availability(&self) {
        self.state.lock().expect("checker state").suspended = false;
    }

    /// The highest unavailability seen for `set` so far.
    pub fn max_unavailable(&self, set: &str) -> usize {
        self.state
            .lock()
            .expect("checker state")
            .max_unavailable
            .get(set)
            .copied()
            .unwrap_or(0)
    }

    /// Stops watching and judges the run.
    pub fn report(&self, partitioned: bool) -> Report {
        self.task.abort();
        let s = self.state.lock().expect("checker state");
        let mut leaks = Vec::new();
        let mut drift = Vec::new();
        for m in &s.moves {
            let Some(set) = s.sets.get(&m.set) else {
                continue;
            };
            let chosen = set.update_revisions.contains(&m.to)
                && set
                    .min_partition
                    .get(&m.to)
                    .is_some_and(|p| m.ordinal >= *p);
            if chosen || !partitioned {
                continue;
            }
            if set.current_revisions.contains(&m.to) {
                drift.push(m.clone());
            } else {
                leaks.push(m.clone());
            }
        }
        Report {
            violations: s.violations.clone(),
            leaks,
            drift,
            max_unavailable: s.max_unavailable.clone(),
            moves: s.moves.clone(),
        }
    }
}
