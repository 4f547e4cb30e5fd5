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
//!     flight) and is reported separately — except for sets with revision pinning on, where it is
//!     a leak, and whose `OnDelete` moves are judged too (allowed only to the update revision, at
//!     or above the lowest ordinal the rollout recorded in `sroll.io/pinned-update`).
//!
//! Partitions are judged at the end of the run against everything observed, so the order in which
//! the pod and StatefulSet watch streams deliver events cannot cause a false alarm.
//!
//! It also records
//!
//! (c) status going backwards without a spec change: a rollout's `percentDeployed` dropping, or a
//!     terminal phase (`RolloutDone`, `RolloutFailed`) turning into another phase, while
//!     `status.observedGeneration` stays the same (its own watch on StatefulsetRollouts). Drops while the
//!     scenario disturbs pods itself ([`Checker::suspend_availability`], pods declared
//!     [`Checker::external`]) are the truth being reported, not a regression, and are not judged;
//! (d) duplicated side effects: the scenario's fake receivers call [`Checker::callback_delivered`]
//!     and [`Checker::slack_posted`]; a second delivery of the same key is a violation;
//! (e) the operator panicking or exiting on its own: [`Checker::watch_operator`] follows an
//!     in-process operator (an exit the harness did not ask for is recorded), and a process-wide
//!     panic hook records every panic raised outside the test code (`tests/`, this kit), including panics in
//!     tasks the operator spawned, which tokio would otherwise swallow.
//!
//! In-place updates (`spec.podUpdatePolicy`) change a pod's revision label without a new
//! incarnation: they are recorded as in-place moves ([`Report::in_place`]), not as version moves,
//! and one to a revision the set never reported as its update revision is a leak all the same. A
//! pod being updated in place is not Ready (its `InPlaceUpdateReady` gate holds it out of traffic),
//! so it counts against the budget like an evicted pod, with no special case.
//!
//! Unavailability caused by the scenario itself (a failed node, pods it kills) can be excluded with
//! [`Checker::external`]: such pods do not count against the budget until they are Ready again,
//! so what remains is the unavailability attributable to the operator.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, Once},
};

use futures::StreamExt;
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use sroll_api::{Phase, StatefulsetRollout};

/// Panics raised anywhere in this test process outside the test code (see [`install_panic_hook`]).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Installs (once per process) a panic hook that records every panic whose location is not test
/// code (a `tests/` file or this kit), then runs the previous hook (so test failures still print as
/// usual).
pub fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let in_tests = location.contains("/tests/")
                || location.starts_with("tests/")
                || location.contains("sroll-testkit/")
                || location.contains("kubesim/src/testing/");
            if !in_tests {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let thread = std::thread::current().name().unwrap_or("?").to_owned();
                if let Ok(mut p) = PANICS.lock() {
                    p.push(format!("panic at {location} on thread {thread}: {message}"));
                }
            }
            previous(info);
        }));
    });
}

/// The record of one in-process operator's end: filled by the harness's wrapper around
/// `Operator::run` when the operator returns or panics without having been asked to stop.
pub type ExitLog = Arc<Mutex<Vec<String>>>;

/// A rollout's status as last seen (for the regression check).
#[derive(Debug, Clone)]
struct RolloutSeen {
    generation: Option<i64>,
    percent: Option<i32>,
    phase: Option<Phase>,
}

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
    /// `resourceVersion` of the newest version of the set seen.
    resource_version: String,
    replicas: i32,
    armed: bool,
    /// Lowest partition seen per update revision (`RollingUpdate` only).
    min_partition: HashMap<String, i32>,
    update_revisions: BTreeSet<String>,
    current_revisions: BTreeSet<String>,
    on_delete: bool,
    /// Revision pinning is on (the template carries `sroll.io/revision-pinning: "true"`): no drift
    /// is allowed, and under `OnDelete` the moves chosen are those at or above the ordinal the
    /// rollout recorded on the set (`sroll.io/pinned-update`).
    pinned: bool,
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
    /// Revision changes of one incarnation (in-place updates).
    in_place: Vec<Move>,
    violations: Vec<String>,
    max_unavailable: HashMap<String, usize>,
    budget: HashMap<String, usize>,
    suspended: bool,
    /// Pods disrupted by the scenario itself, until Ready again.
    external: BTreeSet<String>,
    rollouts: HashMap<String, RolloutSeen>,
    regressions: Vec<String>,
    /// Status updates of rollouts seen (for reports).
    rollout_updates: usize,
    deliveries: BTreeMap<String, usize>,
    duplicates: Vec<String>,
    exit_logs: Vec<ExitLog>,
    /// When the last scenario-made disturbance ended (status lags the pods by a reconcile).
    calm_since: Option<std::time::Instant>,
}

/// How long after a disturbance ends status drops are still its echo.
const ECHO: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// Every in-place update seen: a pod whose revision label changed within one incarnation.
    pub in_place: Vec<Move>,
    /// Status going backwards without a spec change (c).
    pub regressions: Vec<String>,
    /// Callbacks or Slack messages delivered more than once (d).
    pub duplicates: Vec<String>,
    /// Operators that exited or panicked on their own (e).
    pub exits: Vec<String>,
    /// Panics outside the test code anywhere in the process (e).
    pub panics: Vec<String>,
    /// Rollout status updates the checker saw.
    pub rollout_updates: usize,
}

impl Report {
    /// Everything the checker judges a failure, as one list (empty for a clean run).
    pub fn problems(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .violations
            .iter()
            .map(|v| format!("budget: {v}"))
            .collect();
        all.extend(self.leaks.iter().map(|m| format!("leak: {m:?}")));
        all.extend(self.regressions.iter().map(|r| format!("regression: {r}")));
        all.extend(self.duplicates.iter().map(|d| format!("duplicate: {d}")));
        all.extend(self.exits.iter().map(|e| format!("exit: {e}")));
        all.extend(self.panics.iter().map(|p| format!("panic: {p}")));
        all
    }

    /// Fails the test on any problem.
    pub fn assert_clean(&self) {
        let problems = self.problems();
        assert!(problems.is_empty(), "the checker found: {problems:#?}");
    }
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

/// Running and Ready (the StatefulSet controller's `isRunningAndReady`).
fn is_ready(pod: &Pod) -> bool {
    sroll_api::predicates::is_pod_ready(pod)
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

impl State {
    fn on_set(&mut self, sts: &StatefulSet) {
        let name = sts.name_any();
        let set = self.sets.entry(name).or_default();
        set.resource_version = sts.resource_version().unwrap_or_default();
        let spec = sts.spec.clone().unwrap_or_default();
        set.replicas = spec.replicas.unwrap_or(1);
        let strategy = spec.update_strategy.unwrap_or_default();
        set.on_delete = strategy.type_.as_deref() == Some("OnDelete");
        set.pinned = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.get(sroll_planner::pinning::PINNING_LABEL))
            .is_some_and(|v| v == "true");
        let pinned_from = sts
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(sroll_planner::pinning::ANNOTATION_PINNED_UPDATE))
            .cloned();
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
            let p = match (set.on_delete, set.pinned) {
                (true, true) => sroll_planner::pinning::pinned_update_from(
                    pinned_from.as_deref(),
                    Some(upd.as_str()),
                )
                .unwrap_or(i32::MAX),
                (true, false) => 0,
                (false, _) => partition,
            };
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
            if entry.uid == uid && !entry.revision.is_empty() && entry.revision != revision {
                self.in_place.push(Move {
                    set: set.clone(),
                    pod: name.clone(),
                    ordinal: ordinal(&name),
                    from: entry.revision.clone(),
                    to: revision.clone(),
                });
            }
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
            if entry.ready && !entry.terminating && self.external.remove(&name) {
                self.calm_since = Some(std::time::Instant::now());
            }
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
        let external = self
            .pods
            .iter()
            .filter(|(n, p)| {
                n.strip_prefix(&prefix)
                    .is_some_and(|o| o.bytes().all(|b| b.is_ascii_digit()))
                    && (!p.ready || p.terminating)
                    && self.external.contains(*n)
            })
            .count();
        let replicas = usize::try_from(s.replicas.max(0)).unwrap_or(0);
        let unavailable = replicas.saturating_sub(ready).saturating_sub(external);
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

impl State {
    fn on_rollout(&mut self, r: &StatefulsetRollout) {
        self.rollout_updates += 1;
        let name = r.name_any();
        let status = r.status.clone().unwrap_or_default();
        // Judged per observed generation: a spec change shows up first as a new
        // `metadata.generation` with the old status, then as a status for the new generation.
        let now = RolloutSeen {
            generation: status.observed_generation,
            percent: status.percent_deployed,
            phase: status.phase,
        };
        let disturbed = self.suspended
            || !self.external.is_empty()
            || self.calm_since.is_some_and(|t| t.elapsed() < ECHO);
        if let Some(before) = self.rollouts.get(&name)
            && before.generation == now.generation
            && now.generation.is_some()
        {
            // An analysis abort's rollback (`RolloutAborted`) lowers it by design.
            if let (Some(b), Some(n)) = (before.percent, now.percent)
                && n < b
                && !disturbed
                && now.phase != Some(Phase::Aborted)
            {
                self.regressions.push(format!(
                    "{name}: percentDeployed {b} -> {n} at observed generation {:?}",
                    now.generation
                ));
            }
            if let Some(b) = &before.phase
                && b.is_terminal()
                && now.phase.as_ref() != Some(b)
                && !disturbed
            {
                self.regressions.push(format!(
                    "{name}: phase {b} -> {:?} at observed generation {:?}",
                    now.phase, now.generation
                ));
            }
        }
        self.rollouts.insert(name, now);
    }

    fn delivered(&mut self, key: String) {
        let n = self.deliveries.entry(key.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            self.duplicates.push(format!("{key} delivered {n} times"));
        }
    }
}

impl Checker {
    /// Starts watching `namespace`.
    pub fn start(client: Client, namespace: &str) -> Self {
        install_panic_hook();
        let state = Arc::new(Mutex::new(State::default()));
        let rollouts = watcher(
            Api::<StatefulsetRollout>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
        )
        .default_backoff();
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
                Rollout(Box<watcher::Event<StatefulsetRollout>>),
            }
            let merged = futures::stream::select(
                futures::stream::select(pods.map(|e| e.map(Ev::Pod)), sets.map(|e| e.map(Ev::Set))),
                rollouts.map(|e| e.map(|r| Ev::Rollout(Box::new(r)))),
            );
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
                    Ev::Rollout(ev) => match *ev {
                        watcher::Event::Apply(r) | watcher::Event::InitApply(r) => s.on_rollout(&r),
                        watcher::Event::Delete(r) => {
                            s.rollouts.remove(&r.name_any());
                        }
                        _ => {}
                    },
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
        let mut s = self.state.lock().expect("checker state");
        s.suspended = false;
        s.calm_since = Some(std::time::Instant::now());
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

    /// Declares pods the scenario itself disrupts (a failed node, a chaos kill): until each is
    /// Ready again they do not count against the budget, and status drops are not judged.
    pub fn external<'a>(&self, pods: impl IntoIterator<Item = &'a str>) {
        let mut s = self.state.lock().expect("checker state");
        s.external.extend(pods.into_iter().map(str::to_owned));
    }

    /// Pods currently declared external and not yet Ready again.
    pub fn external_pending(&self) -> usize {
        self.state.lock().expect("checker state").external.len()
    }

    /// A fake callback receiver reports a delivery it acknowledged (2xx): a second delivery of
    /// the same `(stage_id, outcome)` is a violation.
    pub fn callback_delivered(&self, stage_id: &str, outcome: &str) {
        self.state
            .lock()
            .expect("checker state")
            .delivered(format!("callback ({stage_id}, {outcome})"));
    }

    /// A fake Slack reports a new message (`chat.postMessage`), keyed by what makes it unique
    /// (e.g. the rollout and its identity): a second message with the same key is a violation.
    pub fn slack_posted(&self, key: &str) {
        self.state
            .lock()
            .expect("checker state")
            .delivered(format!("slack message {key}"));
    }

    /// How many times `key` was delivered (`callback (stage, outcome)` or `slack message key`).
    pub fn deliveries(&self, key: &str) -> usize {
        self.state
            .lock()
            .expect("checker state")
            .deliveries
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// Every revision move seen so far (the run continues).
    pub fn moves_so_far(&self) -> Vec<Move> {
        self.state.lock().expect("checker state").moves.clone()
    }

    /// Follows an in-process operator: an exit or panic it was not asked for is a violation.
    pub fn watch_operator(&self, exits: &ExitLog) {
        self.state
            .lock()
            .expect("checker state")
            .exit_logs
            .push(exits.clone());
    }

    /// Budget violations, regressions, duplicates, exits and panics so far (the run continues).
    pub fn problems_so_far(&self) -> Vec<String> {
        let s = self.state.lock().expect("checker state");
        let mut all: Vec<String> = s.violations.clone();
        all.extend(s.regressions.iter().cloned());
        all.extend(s.duplicates.iter().cloned());
        for log in &s.exit_logs {
            all.extend(log.lock().map(|l| l.clone()).unwrap_or_default());
        }
        all.extend(PANICS.lock().map(|p| p.clone()).unwrap_or_default());
        all
    }

    /// Whether the checker has seen `set` at `resource_version` (its watches may lag the
    /// server; a report judged on an older set than the pods would call chosen moves leaks).
    pub fn has_seen_set(&self, set: &str, resource_version: &str) -> bool {
        self.state
            .lock()
            .expect("checker state")
            .sets
            .get(set)
            .is_some_and(|s| s.resource_version == resource_version)
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
            if chosen || (!partitioned && !set.pinned) {
                continue;
            }
            if set.current_revisions.contains(&m.to) && !set.pinned {
                drift.push(m.clone());
            } else {
                leaks.push(m.clone());
            }
        }
        // An in-place update may only go to an update revision of the set.
        for m in &s.in_place {
            if s.sets
                .get(&m.set)
                .is_some_and(|set| !set.update_revisions.contains(&m.to))
            {
                leaks.push(m.clone());
            }
        }
        let exits = s
            .exit_logs
            .iter()
            .flat_map(|log| log.lock().map(|l| l.clone()).unwrap_or_default())
            .collect();
        Report {
            violations: s.violations.clone(),
            leaks,
            drift,
            max_unavailable: s.max_unavailable.clone(),
            moves: s.moves.clone(),
            in_place: s.in_place.clone(),
            regressions: s.regressions.clone(),
            duplicates: s.duplicates.clone(),
            exits,
            panics: PANICS.lock().map(|p| p.clone()).unwrap_or_default(),
            rollout_updates: s.rollout_updates,
        }
    }
}
