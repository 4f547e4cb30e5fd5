//! The simulated kube-controller-manager: pure decision code for the
//! StatefulSet controller (with its ControllerRevision history), the
//! disruption (PodDisruptionBudget) controller and the EndpointSlice /
//! Endpoints controllers.
//!
//! Every function here is pure: it takes k8s-openapi objects as a controller
//! would see them in its informer caches plus the current (simulated) time,
//! and returns the writes the upstream controller would issue together with
//! the status it would compute. The thin async drivers that read the store and
//! issue those writes through the API layer live in [`runtime`].
//!
//! This module also holds the small helpers several controllers share
//! (label-selector matching, int-or-percent scaling, pod predicates from
//! `pkg/api/v1/pod/util.go`, controller references).

use std::collections::BTreeMap;

use k8s_openapi::{
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
    jiff::{SignedDuration, Timestamp},
};

pub mod disruption;
pub mod endpointslice;
pub mod history;
pub mod projection;
pub mod recorder;
pub mod runtime;
pub mod statefulset;

pub use projection::{CachedPod, PodView};

/// Errors of the controllers' decision code.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A label selector could not be turned into a selector (bad operator,
    /// `In` without values, …), as `metav1.LabelSelectorAsSelector` rejects it.
    #[error("failed to parse label selector: {0}")]
    InvalidSelector(String),
    /// An int-or-string was neither an integer nor a percentage
    /// (`intstr.GetScaledValueFromIntOrPercent`).
    #[error("failed to scale int-or-percent value: invalid value {0:?}")]
    InvalidIntOrPercent(String),
    /// A ControllerRevision's data could not be decoded back into a template.
    #[error("failed to decode ControllerRevision {name}: {reason}")]
    InvalidRevision {
        /// Revision name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// An object lacked a field the controller requires (for example a
    /// StatefulSet without `spec`).
    #[error("failed to process {what}: missing {field}")]
    MissingField {
        /// The object (kind/name).
        what: String,
        /// The missing field path.
        field: &'static str,
    },
    /// The disruption controller found a pod whose controller it cannot scale
    /// (`getExpectedScale`: "found no controllers for pod").
    #[error("found no controllers for pod {0:?}")]
    NoControllerForPod(String),
    /// A controller may not adopt: the live (uncached) owner is gone, was
    /// replaced (another uid), or is being deleted (`RecheckDeletionTimestamp`).
    #[error("{0}")]
    CannotAdopt(String),
}

/// Label key of the pod's revision (`apps.StatefulSetRevisionLabel`), holding the
/// ControllerRevision *name*.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Label key of the pod name (`apps.StatefulSetPodNameLabel`).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label key of the pod ordinal (`apps.PodIndexLabel`).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Label put on ControllerRevisions with the bare hash
/// (`history.ControllerRevisionHashLabel`).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The zone label the fake nodes carry and EndpointSlices report.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Whether `labels` satisfy `selector` (`metav1.LabelSelectorAsSelector` +
/// `Matches`). An empty selector (no `matchLabels`, no `matchExpressions`)
/// matches everything; callers decide what a *missing* selector means.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<bool, Error> {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    if let Some(ml) = &selector.match_labels {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.as_deref().unwrap_or_default();
        let present = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => {
                if values.is_empty() {
                    return Err(Error::InvalidSelector(format!(
                        "{}: for 'in', 'notin' operators, values set can't be empty",
                        expr.key
                    )));
                }
                present.is_some_and(|v| values.contains(v))
            }
            "NotIn" => {
                if values.is_empty() {
                    return Err(Error::InvalidSelector(format!(
                        "{}: for 'in', 'notin' operators, values set can't be empty",
                        expr.key
                    )));
                }
                present.is_none_or(|v| !values.contains(v))
            }
            "Exists" => present.is_some(),
            "DoesNotExist" => present.is_none(),
            other => {
                return Err(Error::InvalidSelector(format!(
                    "{other:?} is not a valid label selector operator"
                )));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `intstr.GetScaledValueFromIntOrPercent`: an integer is returned as is; a
/// percentage `"N%"` is scaled against `total`, rounded up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, Error> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| Error::InvalidIntOrPercent(s.clone()))?;
            let product = pct * i64::from(total);
            let scaled = if round_up {
                // Go: int(math.Ceil(float64(value) * float64(total) / 100))
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).map_err(|_| Error::InvalidIntOrPercent(s.clone()))
        }
    }
}

/// The pod's `Ready` condition, if any (`podutil.GetPodReadyCondition`).
pub fn ready_condition<P: PodView + ?Sized>(
    pod: &P,
) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.ready_condition()
}

/// `podutil.IsPodReady`: condition `Ready` is `True` (phase not checked).
pub fn is_pod_ready<P: PodView + ?Sized>(pod: &P) -> bool {
    pod.ready_condition().is_some_and(|c| c.status == "True")
}

/// `podutil.IsPodAvailable`: ready, and ready for at least `min_ready_seconds`
/// (`lastTransitionTime + minReadySeconds <= now`, the newest upstream
/// comparison in `pkg/api/v1/pod/util.go`).
pub fn is_pod_available<P: PodView + ?Sized>(
    pod: &P,
    min_ready_seconds: i32,
    now: Timestamp,
) -> bool {
    let Some(cond) = pod.ready_condition() else {
        return false;
    };
    if cond.status != "True" {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match &cond.last_transition_time {
        Some(t) => {
            t.0.checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
                .is_ok_and(|ready_at| ready_at <= now)
        }
        None => false,
    }
}

/// The pod's phase (`""` when the API server has not set one).
pub fn phase<P: PodView + ?Sized>(pod: &P) -> &str {
    pod.status_phase().unwrap_or("")
}

/// Whether the pod has a `deletionTimestamp`.
pub fn is_terminating<P: PodView + ?Sized>(pod: &P) -> bool {
    pod.meta().deletion_timestamp.is_some()
}

/// The controller owner reference of an object (`metav1.GetControllerOf`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller owner reference to `owner` (`metav1.NewControllerRef`):
/// `controller: true, blockOwnerDeletion: true`.
pub fn controller_ref(
    api_version: &str,
    kind: &str,
    owner: &ObjectMeta,
) -> Result<OwnerReference, Error> {
    Ok(OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: owner.name.clone().ok_or(Error::MissingField {
            what: kind.to_owned(),
            field: "metadata.name",
        })?,
        uid: owner.uid.clone().ok_or(Error::MissingField {
            what: kind.to_owned(),
            field: "metadata.uid",
        })?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// What the controllers' property tests generate pods from.
#[cfg(test)]
pub(crate) mod test_pods {
    use serde_json::{Value, json};

    /// A pod's `status.phase` by index: unset, empty, then each phase upstream defines.
    pub const PHASES: [Option<&str>; 7] = [
        None,
        Some(""),
        Some("Pending"),
        Some("Running"),
        Some("Succeeded"),
        Some("Failed"),
        Some("Unknown"),
    ];

    /// A `Ready` condition by `kind` (0: none; 1: `True` since second `at`; 2: `True` without a
    /// time; 3: `False` since second `at`; else `Unknown`).
    pub fn ready_condition(kind: usize, at: i64) -> Option<Value> {
        let time = format!("2026-01-01T00:00:{at:02}Z");
        match kind {
            0 => None,
            1 => Some(json!({"type": "Ready", "status": "True", "lastTransitionTime": time})),
            2 => Some(json!({"type": "Ready", "status": "True"})),
            3 => Some(json!({"type": "Ready", "status": "False", "lastTransitionTime": time})),
            _ => Some(json!({"type": "Ready", "status": "Unknown"})),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn percent_scaling_rounds_as_asked() {
        let p = IntOrString::String("50%".into());
        assert_eq!(scaled_value(&p, 3, true), Ok(2));
        assert_eq!(scaled_value(&p, 3, false), Ok(1));
        assert_eq!(scaled_value(&IntOrString::Int(4), 3, false), Ok(4));
        assert_eq!(
            scaled_value(&IntOrString::String("five".into()), 3, true),
            Err(Error::InvalidIntOrPercent("five".into()))
        );
    }

    #[test]
    fn selector_supports_every_operator() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "skip".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_matches(&sel, Some(&labels(&[("app", "web"), ("tier", "b")]))),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&sel, Some(&labels(&[("app", "web"), ("tier", "c")]))),
            Ok(false)
        );
        assert_eq!(
            selector_matches(
                &sel,
                Some(&labels(&[("app", "web"), ("tier", "a"), ("skip", "")]))
            ),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&LabelSelector::default(), None),
            Ok(true),
            "an empty selector matches everything"
        );
    }
}
