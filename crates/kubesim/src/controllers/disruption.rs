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

use std::{borrow::Borrow, collections::BTreeMap};

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

/// The pods a PDB selects: a nil selector selects nothing, `{}` everything in
/// the namespace (policy/v1). `pods` may be owned or shared (`Arc<Pod>` from
/// an informer cache): only references are kept.
pub fn selected_pods<'p>(
    pdb: &PodDisruptionBudget,
    pods: &'p [impl Borrow<Pod>],
) -> Result<Vec<&'p Pod>, Error> {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in pods.iter().map(Borrow::borrow) {
        if p.metadata.namespace == pdb.metadata.namespace
            && selector_matches(sel, p.metadata.labels.as_ref())?
        {
            out.push(p);
        }
    }
    Ok(out)
}

fn expected_scale(pods: &[&Pod], scale_of: &ScaleLookup<'_>) -> Result<i32, Error> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    for pod in pods {
        let Some(r) = controller_of(&pod.metadata) else {
            continue; // unmanaged pod
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
}

/// `getExpectedPodCount`: `(expectedPods, desiredHealthy)`.
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: &ScaleLookup<'_>,
) -> Result<(i32, i32), Error> {
    let no_spec = PodDisruptionBudgetSpec::default();
    let spec = pdb.spec.as_ref().unwrap_or(&no_spec);
    if let Some(mu) = &spec.max_unavailable {
        let expected = expected_scale(pods, scale_of)?;
        let max_unavailable = scaled_value(mu, expected, true)?;
        return Ok((expected, (expected - max_unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((i32::try_from(pods.len()).unwrap_or(i32::MAX), *n)),
        Some(pct @ IntOrString::String(_)) => {
            let expected = expected_scale(pods, scale_of)?;
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

/// One sync of a PDB over every pod of its namespace (borrowed: the pods are
/// only read).
pub fn sync(
    pdb: &PodDisruptionBudget,
    pods: &[impl Borrow<Pod>],
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
    pods: &[impl Borrow<Pod>],
    scale_of: &ScaleLookup<'_>,
    now: Timestamp,
) -> Result<PdbOutcome, Error> {
    let pods = selected_pods(pdb, pods)?;
    let mut events = Vec::new();
    if pods.is_empty() {
        events.push((false, "NoPods", "No matching pods found".to_owned()));
    }
    let (expected, desired) = expected_and_desired(pdb, &pods, scale_of)?;

    // buildDisruptedPodMap
    let none = BTreeMap::new();
    let stored = pdb
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.as_ref())
        .unwrap_or(&none);
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut not_deleted = Vec::new();
    for pod in pods.iter().filter(|_| !stored.is_empty()) {
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

    // countHealthyPods
    let current_healthy = i32::try_from(
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                !p.metadata
                    .name
                    .as_ref()
                    .and_then(|n| disrupted.get(n))
                    .is_some_and(|t| t.0.checked_add(DELETION_TIMEOUT).is_ok_and(|e| e > now))
            })
            .filter(|p| is_pod_ready(p))
            .count(),
    )
    .unwrap_or(i32::MAX);

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
