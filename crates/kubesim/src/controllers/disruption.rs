//! The disruption controller's PodDisruptionBudget status computation as a pure
//! function (`trySync`, `getExpectedPodCount`, `getExpectedScale`,
//! `buildDisruptedPodMap`, `countHealthyPods`, `updatePdbStatus`, `failSafe`
//! in `pkg/controller/disruption/disruption.go`, and
//! `UpdateDisruptionAllowedCondition` / `ConditionsAreUpToDate` in
//! `staging/src/k8s.io/component-helpers/apps/poddisruptionbudget/helpers.go`).
//!
//! Simplification: the stale `DisruptionTarget` condition cleanup of the
//! disruption controller (`stalePodDisruptionWorker`) is not modelled; the
//! "NotDeleted" warning events are returned for the driver to record.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::{
    api::{
        core::v1::Pod,
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus},
    },
    apimachinery::pkg::{
        apis::meta::v1::{Condition, OwnerReference, Time},
        util::intstr::IntOrString,
    },
    jiff::{SignedDuration, Timestamp},
};

use super::{Error, PodView, controller_of, is_pod_ready, scaled_value, selector_matches};

/// How long an entry of `status.disruptedPods` is trusted (`DeletionTimeout`).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);
/// Condition type of PDBs (`policy.DisruptionAllowedCondition`).
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";

/// Looks up the scale (`spec.replicas`) of a pod's controller, as the
/// disruption controller's finders do: `Ok(Some((controller uid, replicas)))`,
/// `Ok(None)` when the reference points to nothing this finder knows.
pub type ScaleLookup<'a> =
    dyn Fn(&OwnerReference, &str) -> Result<Option<(String, i32)>, Error> + 'a;

/// Result of one PDB sync.
#[derive(Debug, Clone, PartialEq)]
pub struct PdbOutcome {
    /// Events upstream records on the budget (`NoPods`,
    /// `CalculateExpectedPodCountFailed`), as (warning, reason, message).
    pub events: Vec<(bool, &'static str, String)>,
    /// The status to PUT, or `None` when the stored one is up to date.
    pub status: Option<PodDisruptionBudgetStatus>,
    /// Sync again after this long (earliest `disruptedPods` expiry).
    pub recheck_after: Option<SignedDuration>,
    /// Pods that were expected to be deleted but were not ("NotDeleted" events).
    pub not_deleted: Vec<String>,
    /// The sync error the status reflects (`failSafe`), if any.
    pub error: Option<Error>,
}

/// What a budget's status is computed from, kept per budget and updated one
/// pod at a time ([`Tally::update`]) so that a sync costs what changed, not
/// the pods the budget selects: the selected pods, the healthy ones
/// (`countHealthyPods` before the `disruptedPods` exclusion: ready and not
/// being deleted), the pods of each controller (`getExpectedScale` asks each
/// controller once) and the pods whose selector evaluation fails.
///
/// Upstream lists the budget's pods on every sync (`getPodsForPdb`); the
/// figures here are the ones that list yields, so the status is the same
/// ([`Tally::recount`] is the list, and the tests check the two agree).
///
/// Generic over how a pod is read ([`PodView`]): the runtime's tallies hold
/// the pod cache's [`super::CachedPod`]s, the tests whole pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally<P = Pod> {
    selected: BTreeMap<String, Arc<P>>,
    healthy: BTreeSet<String>,
    by_controller: BTreeMap<String, BTreeSet<String>>,
    /// Pods whose evaluation of the selector failed, with the error.
    invalid: BTreeMap<String, Error>,
}

impl<P> Default for Tally<P> {
    fn default() -> Self {
        Self {
            selected: BTreeMap::new(),
            healthy: BTreeSet::new(),
            by_controller: BTreeMap::new(),
            invalid: BTreeMap::new(),
        }
    }
}

impl<P: PodView> Tally<P> {
    /// The tally of `pods` (any pods: those of another namespace or not
    /// selected are left out) for `pdb`'s selector.
    pub fn recount(pdb: &PodDisruptionBudget, pods: impl IntoIterator<Item = Arc<P>>) -> Self {
        let mut t = Self::default();
        for p in pods {
            let name = p.meta().name.clone().unwrap_or_default();
            t.update(pdb, &name, Some(p));
        }
        t
    }

    /// Pod `name` of the budget's namespace is now `pod` (`None`: gone from
    /// the cache); a pod of another namespace is not counted and changes nothing.
    pub fn update(&mut self, pdb: &PodDisruptionBudget, name: &str, pod: Option<Arc<P>>) {
        if pod
            .as_ref()
            .is_some_and(|p| p.meta().namespace != pdb.metadata.namespace)
        {
            return;
        }
        if let Some(old) = self.selected.remove(name) {
            self.healthy.remove(name);
            if let Some(r) = controller_of(old.meta())
                && let Some(names) = self.by_controller.get_mut(&r.uid)
            {
                names.remove(name);
                if names.is_empty() {
                    self.by_controller.remove(&r.uid);
                }
            }
        }
        self.invalid.remove(name);
        let Some(pod) = pod else {
            return;
        };
        let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return; // a nil selector selects nothing (policy/v1)
        };
        match selector_matches(sel, pod.meta().labels.as_ref()) {
            Err(e) => {
                self.invalid.insert(name.to_owned(), e);
            }
            Ok(false) => {}
            Ok(true) => {
                if pod.meta().deletion_timestamp.is_none() && is_pod_ready(&*pod) {
                    self.healthy.insert(name.to_owned());
                }
                if let Some(r) = controller_of(pod.meta()) {
                    self.by_controller
                        .entry(r.uid.clone())
                        .or_default()
                        .insert(name.to_owned());
                }
                self.selected.insert(name.to_owned(), pod);
            }
        }
    }

    /// How many pods are selected.
    pub fn len(&self) -> usize {
        self.selected.len()
    }

    /// Whether no pod is selected.
    pub fn is_empty(&self) -> bool {
        self.selected.is_empty()
    }

    /// The selected pod `name`.
    pub fn pod(&self, name: &str) -> Option<&P> {
        self.selected.get(name).map(|p| &**p)
    }

    /// `getPodsForPdb` of the full list: the selector's error, as evaluated
    /// on the first pod (in name order) it fails on.
    fn check(&self) -> Result<(), Error> {
        match self.invalid.values().next() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// `getExpectedScale`: each controller asked once, in the order of its
    /// first pod by name (as the walk over the name-ordered list asks them),
    /// with that pod's reference.
    fn expected_scale(&self, scale_of: &ScaleLookup<'_>) -> Result<i32, Error> {
        let mut firsts: Vec<&str> = self
            .by_controller
            .values()
            .filter_map(|names| names.first().map(String::as_str))
            .collect();
        firsts.sort_unstable();
        let mut scales: BTreeMap<String, i32> = BTreeMap::new();
        for name in firsts {
            let Some(pod) = self.pod(name) else {
                continue;
            };
            let Some(r) = controller_of(pod.meta()) else {
                continue;
            };
            let ns = pod.meta().namespace.as_deref().unwrap_or_default();
            match scale_of(r, ns)? {
                Some((uid, scale)) => {
                    scales.insert(uid, scale);
                }
                None => return Err(Error::NoControllerForPod(name.to_owned())),
            }
        }
        Ok(scales.values().sum())
    }
}

/// `getExpectedPodCount`: `(expectedPods, desiredHealthy)`.
pub fn expected_and_desired<P: PodView>(
    pdb: &PodDisruptionBudget,
    pods: &Tally<P>,
    scale_of: &ScaleLookup<'_>,
) -> Result<(i32, i32), Error> {
    let no_spec = PodDisruptionBudgetSpec::default();
    let spec = pdb.spec.as_ref().unwrap_or(&no_spec);
    if let Some(mu) = &spec.max_unavailable {
        let expected = pods.expected_scale(scale_of)?;
        let max_unavailable = scaled_value(mu, expected, true)?;
        return Ok((expected, (expected - max_unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((i32::try_from(pods.len()).unwrap_or(i32::MAX), *n)),
        Some(pct @ IntOrString::String(_)) => {
            let expected = pods.expected_scale(scale_of)?;
            Ok((expected, scaled_value(pct, expected, true)?))
        }
        None => Ok((0, 0)),
    }
}

/// `apimeta.SetStatusCondition`: replace by type, moving `lastTransitionTime`
/// only when the status changes.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: Timestamp) {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) {
        if existing.status != new.status {
            existing.status = new.status;
            existing.last_transition_time = Time(now);
        }
        existing.reason = new.reason;
        existing.message = new.message;
        existing.observed_generation = new.observed_generation;
    } else {
        new.last_transition_time = Time(now);
        conditions.push(new);
    }
}

/// `UpdateDisruptionAllowedCondition`.
pub fn update_disruption_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    let (st, reason) = if status.disruptions_allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let cond = Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: st.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: status.observed_generation,
        last_transition_time: Time(now),
    };
    set_condition(status.conditions.get_or_insert_with(Vec::new), cond, now);
}

fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(st) = pdb.status.as_ref() else {
        return false;
    };
    let Some(c) = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    else {
        return false;
    };
    if c.observed_generation != st.observed_generation {
        return false;
    }
    (st.disruptions_allowed > 0) == (c.status == "True")
}

/// One sync of a PDB over every pod of its namespace: [`sync_tally`] of
/// their [`Tally::recount`].
pub fn sync<P: PodView + Clone>(
    pdb: &PodDisruptionBudget,
    pods: &[P],
    scale_of: &ScaleLookup<'_>,
    now: Timestamp,
) -> PdbOutcome {
    let tally = Tally::recount(pdb, pods.iter().map(|p| Arc::new(p.clone())));
    sync_tally(pdb, &tally, scale_of, now)
}

/// One sync of a PDB from the [`Tally`] of the pods it selects: the work is
/// that of the budget's controllers and `status.disruptedPods` entries, not
/// of its pods.
pub fn sync_tally<P: PodView>(
    pdb: &PodDisruptionBudget,
    pods: &Tally<P>,
    scale_of: &ScaleLookup<'_>,
    now: Timestamp,
) -> PdbOutcome {
    match try_sync(pdb, pods, scale_of, now) {
        Ok(o) => o,
        Err(e) => {
            // failSafe
            let mut status = pdb.status.clone().unwrap_or_default();
            status.disruptions_allowed = 0;
            let cond = Condition {
                type_: DISRUPTION_ALLOWED.into(),
                status: "False".into(),
                reason: "SyncFailed".into(),
                message: e.to_string(),
                observed_generation: status.observed_generation,
                last_transition_time: Time(now),
            };
            set_condition(status.conditions.get_or_insert_with(Vec::new), cond, now);
            // `trySync`: a selector that cannot be parsed fails `getPodsForPdb`.
            let event = match &e {
                Error::InvalidSelector(_) => (true, "NoPods", format!("Failed to get pods: {e}")),
                _ => (
                    true,
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {e}"),
                ),
            };
            PdbOutcome {
                events: vec![event],
                status: Some(status),
                recheck_after: None,
                not_deleted: Vec::new(),
                error: Some(e),
            }
        }
    }
}

fn try_sync<P: PodView>(
    pdb: &PodDisruptionBudget,
    pods: &Tally<P>,
    scale_of: &ScaleLookup<'_>,
    now: Timestamp,
) -> Result<PdbOutcome, Error> {
    pods.check()?;
    let mut events = Vec::new();
    if pods.is_empty() {
        events.push((false, "NoPods", "No matching pods found".to_owned()));
    }
    let (expected, desired) = expected_and_desired(pdb, pods, scale_of)?;

    // buildDisruptedPodMap: the stored entries naming a selected pod not being
    // deleted (in name order, as the walk over the pods finds them).
    let none = BTreeMap::new();
    let stored = pdb
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.as_ref())
        .unwrap_or(&none);
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut not_deleted = Vec::new();
    for (name, t) in stored {
        if pods
            .pod(name)
            .is_none_or(|p| p.meta().deletion_timestamp.is_some())
        {
            continue;
        }
        let expiry = t.0.checked_add(DELETION_TIMEOUT).unwrap_or(t.0);
        if expiry < now {
            not_deleted.push(name.clone());
        } else {
            recheck = Some(recheck.map_or(expiry, |r| r.min(expiry)));
            disrupted.insert(name.clone(), t.clone());
        }
    }

    // countHealthyPods: the ready pods not being deleted, less those disrupted
    // and not yet expired.
    let still_disrupted = disrupted
        .iter()
        .filter(|(n, t)| {
            pods.healthy.contains(*n) && t.0.checked_add(DELETION_TIMEOUT).is_ok_and(|e| e > now)
        })
        .count();
    let current_healthy = i32::try_from(pods.healthy.len() - still_disrupted).unwrap_or(i32::MAX);

    // updatePdbStatus
    let mut allowed = current_healthy - desired;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let no_status = PodDisruptionBudgetStatus::default();
    let old = pdb.status.as_ref().unwrap_or(&no_status);
    let disrupted_opt = (!disrupted.is_empty()).then_some(disrupted);
    let unchanged = old.current_healthy == current_healthy
        && old.desired_healthy == desired
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old.disrupted_pods.as_ref().unwrap_or(&none) == disrupted_opt.as_ref().unwrap_or(&none)
        && old.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb);
    let recheck_after = recheck.map(|r| r.duration_since(now));
    if unchanged {
        return Ok(PdbOutcome {
            events,
            status: None,
            recheck_after,
            not_deleted,
            error: None,
        });
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: disrupted_opt,
        observed_generation: pdb.metadata.generation,
        conditions: old.conditions.clone(),
    };
    update_disruption_allowed_condition(&mut status, now);
    Ok(PdbOutcome {
        events,
        status: Some(status),
        recheck_after,
        not_deleted,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    //! The tally kept from pod notifications equals the recount of the pods,
    //! and the status computed from it equals the one of a walk over every pod
    //! (the controller's former computation, kept here as the oracle).

    use k8s_openapi::{
        api::core::v1::{PodCondition, PodStatus},
        apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta},
    };
    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];

    #[derive(Debug, Clone)]
    struct PodSpec {
        name: usize,
        other_ns: bool,
        app: Option<&'static str>,
        tier: bool,
        ready: bool,
        deleting: bool,
        controller: Option<&'static str>,
    }

    #[derive(Debug, Clone)]
    struct BudgetSpec {
        uid: u8,
        selector: u8,
        policy: u8,
        generation: i64,
        disrupted: Vec<(usize, i64)>,
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(PodSpec),
        Delete(usize),
        Budget(BudgetSpec),
        Advance(i64),
    }

    fn pod_spec() -> impl Strategy<Value = PodSpec> {
        (
            0..NAMES.len(),
            prop::bool::weighted(0.1),
            prop::option::of(prop::sample::select(vec!["a", "b"])),
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.2),
            prop::option::of(prop::sample::select(vec!["c1", "c2", "c3"])),
        )
            .prop_map(
                |(name, other_ns, app, tier, ready, deleting, controller)| PodSpec {
                    name,
                    other_ns,
                    app,
                    tier,
                    ready,
                    deleting,
                    controller,
                },
            )
    }

    fn budget_spec() -> impl Strategy<Value = BudgetSpec> {
        (
            0u8..2,
            0u8..7,
            0u8..5,
            1i64..3,
            prop::collection::vec((0..NAMES.len(), -300i64..60), 0..4),
        )
            .prop_map(
                |(uid, selector, policy, generation, disrupted)| BudgetSpec {
                    uid,
                    selector,
                    policy,
                    generation,
                    disrupted,
                },
            )
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => pod_spec().prop_map(Op::Upsert),
            2 => (0..NAMES.len()).prop_map(Op::Delete),
            1 => budget_spec().prop_map(Op::Budget),
            1 => (0i64..200).prop_map(Op::Advance),
        ]
    }

    fn start() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn pod(s: &PodSpec, now: Timestamp) -> Pod {
        let mut labels = BTreeMap::new();
        if let Some(app) = s.app {
            labels.insert("app".to_owned(), app.to_owned());
        }
        if s.tier {
            labels.insert("tier".to_owned(), "web".to_owned());
        }
        Pod {
            metadata: ObjectMeta {
                name: Some(NAMES[s.name].to_owned()),
                namespace: Some(if s.other_ns { "other" } else { "ns" }.to_owned()),
                labels: Some(labels),
                deletion_timestamp: s.deleting.then_some(Time(now)),
                owner_references: s.controller.map(|c| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "StatefulSet".into(),
                        name: c.into(),
                        uid: c.into(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if s.ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn selector(v: u8) -> Option<LabelSelector> {
        let labels = |k: &str, v: &str| Some(BTreeMap::from([(k.to_owned(), v.to_owned())]));
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        };
        match v {
            0 => None,
            1 => Some(LabelSelector {
                match_labels: labels("app", "a"),
                ..LabelSelector::default()
            }),
            2 => Some(LabelSelector::default()),
            3 => Some(LabelSelector {
                match_expressions: Some(vec![expr("app", "In", &["a", "b"])]),
                ..LabelSelector::default()
            }),
            // Invalid once reached: `In` without values, after a matching expression.
            4 => Some(LabelSelector {
                match_expressions: Some(vec![expr("tier", "Exists", &[]), expr("app", "In", &[])]),
                ..LabelSelector::default()
            }),
            5 => Some(LabelSelector {
                match_labels: labels("app", "b"),
                match_expressions: Some(vec![expr("tier", "DoesNotExist", &[])]),
            }),
            _ => Some(LabelSelector {
                match_expressions: Some(vec![expr("app", "Bogus", &["a"])]),
                ..LabelSelector::default()
            }),
        }
    }

    fn budget(
        b: &BudgetSpec,
        now: Timestamp,
        status: Option<PodDisruptionBudgetStatus>,
    ) -> PodDisruptionBudget {
        let (min, max) = match b.policy {
            0 => (Some(IntOrString::Int(2)), None),
            1 => (Some(IntOrString::String("50%".into())), None),
            2 => (None, Some(IntOrString::Int(1))),
            3 => (None, Some(IntOrString::String("30%".into()))),
            _ => (None, None),
        };
        let mut status = status;
        if !b.disrupted.is_empty() {
            let st = status.get_or_insert_with(PodDisruptionBudgetStatus::default);
            st.disrupted_pods = Some(
                b.disrupted
                    .iter()
                    .map(|(n, off)| {
                        let t = now.checked_add(SignedDuration::from_secs(*off)).unwrap();
                        (NAMES[*n].to_owned(), Time(t))
                    })
                    .collect(),
            );
        }
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("pdb".into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{}", b.uid)),
                generation: Some(b.generation),
                ..ObjectMeta::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector: selector(b.selector),
                min_available: min,
                max_unavailable: max,
                unhealthy_pod_eviction_policy: None,
            }),
            status,
        }
    }

    fn scale_of(r: &OwnerReference, _ns: &str) -> Result<Option<(String, i32)>, Error> {
        Ok(match r.uid.as_str() {
            "c1" => Some(("c1".into(), 3)),
            "c2" => Some(("c2".into(), 2)),
            _ => None,
        })
    }

    type Walked = (
        Vec<(bool, &'static str, String)>,
        Option<PodDisruptionBudgetStatus>,
        Option<SignedDuration>,
        Vec<String>,
    );

    /// The former computation: every pod walked on every sync (`getPodsForPdb`,
    /// `getExpectedScale`, `buildDisruptedPodMap`, `countHealthyPods`).
    fn walk(
        pdb: &PodDisruptionBudget,
        all: &[&Pod],
        scale_of: &ScaleLookup<'_>,
        now: Timestamp,
    ) -> Result<Walked, Error> {
        let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return walk_selected(pdb, &[], scale_of, now);
        };
        let mut pods = Vec::new();
        for p in all {
            if p.metadata.namespace == pdb.metadata.namespace
                && selector_matches(sel, p.metadata.labels.as_ref())?
            {
                pods.push(*p);
            }
        }
        walk_selected(pdb, &pods, scale_of, now)
    }

    fn walk_selected(
        pdb: &PodDisruptionBudget,
        pods: &[&Pod],
        scale_of: &ScaleLookup<'_>,
        now: Timestamp,
    ) -> Result<Walked, Error> {
        let mut events = Vec::new();
        if pods.is_empty() {
            events.push((false, "NoPods", "No matching pods found".to_owned()));
        }
        let expected_scale = || -> Result<i32, Error> {
            let mut scales: BTreeMap<String, i32> = BTreeMap::new();
            for pod in pods {
                let Some(r) = controller_of(&pod.metadata) else {
                    continue;
                };
                if scales.contains_key(&r.uid) {
                    continue;
                }
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                match scale_of(r, ns)? {
                    Some((uid, scale)) => {
                        scales.insert(uid, scale);
                    }
                    None => {
                        return Err(Error::NoControllerForPod(
                            pod.metadata.name.clone().unwrap_or_default(),
                        ));
                    }
                }
            }
            Ok(scales.values().sum())
        };
        let spec = pdb.spec.clone().unwrap_or_default();
        let (expected, desired) = if let Some(mu) = &spec.max_unavailable {
            let e = expected_scale()?;
            (e, (e - scaled_value(mu, e, true)?).max(0))
        } else {
            match &spec.min_available {
                Some(IntOrString::Int(n)) => (i32::try_from(pods.len()).unwrap(), *n),
                Some(pct) => {
                    let e = expected_scale()?;
                    (e, scaled_value(pct, e, true)?)
                }
                None => (0, 0),
            }
        };
        let stored = pdb
            .status
            .as_ref()
            .and_then(|s| s.disrupted_pods.clone())
            .unwrap_or_default();
        let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
        let mut recheck: Option<Timestamp> = None;
        let mut not_deleted = Vec::new();
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let Some(t) = stored.get(name) else {
                continue;
            };
            let expiry = t.0.checked_add(DELETION_TIMEOUT).unwrap_or(t.0);
            if expiry < now {
                not_deleted.push(name.to_owned());
            } else {
                recheck = Some(recheck.map_or(expiry, |r| r.min(expiry)));
                disrupted.insert(name.to_owned(), t.clone());
            }
        }
        let healthy = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                !p.metadata
                    .name
                    .as_ref()
                    .and_then(|n| disrupted.get(n))
                    .is_some_and(|t| t.0.checked_add(DELETION_TIMEOUT).is_ok_and(|e| e > now))
            })
            .filter(is_pod_ready)
            .count();
        let current_healthy = i32::try_from(healthy).unwrap();
        let mut allowed = current_healthy - desired;
        if expected <= 0 || allowed <= 0 {
            allowed = 0;
        }
        let old = pdb.status.clone().unwrap_or_default();
        let disrupted_opt = (!disrupted.is_empty()).then_some(disrupted);
        let unchanged = old.current_healthy == current_healthy
            && old.desired_healthy == desired
            && old.expected_pods == expected
            && old.disruptions_allowed == allowed
            && old.disrupted_pods.clone().unwrap_or_default()
                == disrupted_opt.clone().unwrap_or_default()
            && old.observed_generation == pdb.metadata.generation
            && conditions_up_to_date(pdb);
        let recheck_after = recheck.map(|r| r.duration_since(now));
        if unchanged {
            return Ok((events, None, recheck_after, not_deleted));
        }
        let mut status = PodDisruptionBudgetStatus {
            current_healthy,
            desired_healthy: desired,
            expected_pods: expected,
            disruptions_allowed: allowed,
            disrupted_pods: disrupted_opt,
            observed_generation: pdb.metadata.generation,
            conditions: old.conditions,
        };
        update_disruption_allowed_condition(&mut status, now);
        Ok((events, Some(status), recheck_after, not_deleted))
    }

    /// Whether the pod notification of a change from `old` to `new` reaches the
    /// budget (`Shared::on_pod`: a selector matching either label set, or failing).
    fn notified(pdb: &PodDisruptionBudget, old: Option<&Pod>, new: Option<&Pod>) -> bool {
        let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return false;
        };
        [old, new]
            .into_iter()
            .flatten()
            .filter(|p| p.metadata.namespace == pdb.metadata.namespace)
            .any(|p| selector_matches(sel, p.metadata.labels.as_ref()).unwrap_or(true))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn the_kept_tally_and_its_status_equal_a_walk_over_every_pod(
            first in budget_spec(),
            ops in prop::collection::vec(op(), 1..60),
        ) {
            let mut now = start();
            // Pods by (namespace, name), as the cache holds them.
            let mut pods: BTreeMap<(bool, usize), Arc<Pod>> = BTreeMap::new();
            let mut spec = first;
            let mut pdb = budget(&spec, now, None);
            let mut tally = Tally::recount(&pdb, pods.values().cloned());
            for op in ops {
                match op {
                    Op::Upsert(s) => {
                        let new = Arc::new(pod(&s, now));
                        let old = pods.insert((s.other_ns, s.name), new.clone());
                        if !s.other_ns && notified(&pdb, old.as_deref(), Some(&new)) {
                            tally.update(&pdb, NAMES[s.name], Some(new));
                        }
                    }
                    Op::Delete(n) => {
                        if let Some(old) = pods.remove(&(false, n))
                            && notified(&pdb, Some(&old), None)
                        {
                            tally.update(&pdb, NAMES[n], None);
                        }
                    }
                    Op::Budget(b) => {
                        let same = b.uid == spec.uid && b.selector == spec.selector;
                        spec = b;
                        pdb = budget(&spec, now, pdb.status.clone());
                        if !same {
                            tally = Tally::recount(&pdb, pods.values().cloned());
                        }
                    }
                    Op::Advance(secs) => {
                        now = now.checked_add(SignedDuration::from_secs(secs)).unwrap();
                    }
                }
                let recounted = Tally::recount(&pdb, pods.values().cloned());
                prop_assert_eq!(&tally, &recounted);
                let out = sync_tally(&pdb, &tally, &scale_of, now);
                let all: Vec<&Pod> = pods.values().map(|p| &**p).collect();
                match walk(&pdb, &all, &scale_of, now) {
                    Err(e) => prop_assert_eq!(out.error, Some(e)),
                    Ok((events, status, recheck, not_deleted)) => {
                        prop_assert_eq!(out.error, None);
                        prop_assert_eq!(out.events, events);
                        prop_assert_eq!(&out.status, &status);
                        prop_assert_eq!(out.recheck_after, recheck);
                        prop_assert_eq!(out.not_deleted, not_deleted);
                    }
                }
                // The controller writes what it computed.
                if let Some(st) = out.status {
                    pdb.status = Some(st);
                }
            }
        }
    }
}
