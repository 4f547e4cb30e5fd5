//! Questions several sroll crates ask of Kubernetes objects, answered once.
//!
//! They follow upstream's helpers (named on each function) so the operator, the CLI and the
//! benchmarks agree on what "Ready" or "newer" means.

use k8s_openapi::{
    api::core::v1::{Pod, PodCondition},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

/// The type of the pod condition saying the pod can serve (`PodReady` in `core/v1`).
pub const POD_READY: &str = "Ready";

/// The pod's `Ready` condition, if it has one (upstream `podutil.GetPodReadyCondition`,
/// `pkg/api/v1/pod/util.go`).
pub fn pod_ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == POD_READY)
}

/// Whether the pod's `Ready` condition is `True` (upstream `podutil.IsPodReady`). Neither the
/// phase nor a deletion in progress is looked at: combine with [`is_terminating`] or the phase
/// where that matters.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Whether the object is being deleted (`metadata.deletionTimestamp` is set).
pub fn is_terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// `metadata.resourceVersion` as a number, 0 when absent or not a number.
///
/// The API conventions call resource versions opaque; sroll compares them only between two
/// copies of one object read from one API server (its own write against its cache), where the
/// server hands out increasing numbers (the etcd revision, as does kubesim). Comparing them
/// decides which copy is newer, never anything across objects.
pub fn resource_version(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{api::core::v1::PodStatus, apimachinery::pkg::apis::meta::v1::Time};

    use super::*;

    fn pod(conditions: &[(&str, &str)]) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| PodCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            ..PodCondition::default()
                        })
                        .collect(),
                ),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn a_pod_is_ready_only_when_its_ready_condition_is_true() {
        assert!(is_pod_ready(&pod(&[
            ("PodScheduled", "True"),
            ("Ready", "True")
        ])));
        assert!(!is_pod_ready(&pod(&[("Ready", "False")])));
        assert!(!is_pod_ready(&pod(&[("ContainersReady", "True")])));
        assert!(!is_pod_ready(&Pod::default()));
    }

    #[test]
    fn readiness_ignores_a_deletion_in_progress_which_is_asked_apart() {
        let mut p = pod(&[("Ready", "True")]);
        p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        assert!(is_pod_ready(&p));
        assert!(is_terminating(&p.metadata));
    }

    #[test]
    fn resource_versions_compare_as_numbers_and_default_to_zero() {
        let rv = |v: Option<&str>| ObjectMeta {
            resource_version: v.map(str::to_owned),
            ..ObjectMeta::default()
        };
        assert!(resource_version(&rv(Some("10"))) > resource_version(&rv(Some("9"))));
        assert_eq!(resource_version(&rv(None)), 0);
        assert_eq!(resource_version(&rv(Some("opaque-token"))), 0);
    }
}
