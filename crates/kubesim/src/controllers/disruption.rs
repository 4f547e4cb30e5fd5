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
    borrow::Borrow,
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

use super::{Error, controller_of, is_pod_ready, scaled_value, selector_matches};

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    selected: BTreeMap<String, Arc<Pod>>,
    healthy: BTreeSet<String>,
    by_controller: BTreeMap<String, BTreeSet<String>>,
    /// Pods whose evaluation of the selector failed, with the error.
    invalid: BTreeMap<String, Error>,
}

impl Tally {
    /// The tally of `pods` (any pods: those of another namespace or not
    /// selected are left out) for `pdb`'s selector.
    pub fn recount(pdb: &PodDisruptionBudget, pods: impl IntoIterator<Item = Arc<Pod>>) -> Self {
        let mut t = Self::default();
        for p in pods {
            let name = p.metadata.name.clone().unwrap_or_default();
            t.update(pdb, &name, Some(p));
        }
        t
    }

    /// Pod `name` is now `pod` (`None`: gone from the cache).
    pub fn update(&mut self, pdb: &PodDisruptionBudget, name: &str, pod: Option<Arc<Pod>>) {
        if let Some(old) = self.selected.remove(name) {
            self.healthy.remove(name);
            if let Some(r) = controller_of(&old.metadata)
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
        if pod.metadata.namespace != pdb.metadata.namespace {
            return;
        }
        match selector_matches(sel, pod.metadata.labels.as_ref()) {
            Err(e) => {
                self.invalid.insert(name.to_owned(), e);
            }
            Ok(false) => {}
            Ok(true) => {
                if pod.metadata.deletion_timestamp.is_none() && is_pod_ready(&pod) {
                    self.healthy.insert(name.to_owned());
                }
                if let Some(r) = controller_of(&pod.metadata) {
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
    pub fn pod(&self, name: &str) -> Option<&Pod> {
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
            let Some(r) = controller_of(&pod.metadata) else {
                continue;
            };
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
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
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pods: &Tally,
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
pub fn sync(
    pdb: &PodDisruptionBudget,
    pods: &[impl Borrow<Pod>],
    scale_of: &ScaleLookup<'_>,
    now: Timestamp,
) -> PdbOutcome {
    let tally = Tally::recount(pdb, pods.iter().map(|p| Arc::new(p.borrow().clone())));
    sync_tally(pdb, &tally, scale_of, now)
}

/// One sync of a PDB from the [`Tally`] of the pods it selects: the work is
/// that of the budget's controllers and `status.disruptedPods` entries, not
/// of its pods.
pub fn sync_tally(
    pdb: &PodDisruptionBudget,
    pods: &Tally,
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

fn try_sync(
    pdb: &PodDisruptionBudget,
    pods: &Tally,
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
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
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
    let current_healthy =
        i32::try_from(pods.healthy.len() - still_disrupted).unwrap_or(i32::MAX);

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
