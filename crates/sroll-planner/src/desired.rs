//! Building the desired StatefulSet from a rollout (Stackable's pure `build` step).
//!
//! The operator applies what [`desired_statefulset`] returns with server-side apply under
//! [`sroll_api::FIELD_MANAGER`]. Two annotations make "is the live set what the rollout says?"
//! a string comparison instead of a deep diff against a server-defaulted object:
//!
//! - [`ANNOTATION_SPEC_HASH`]: hash of the user's `spec.sts` plus `spec.strategy` (everything the
//!   builder reads, except the partition, which the planner moves on its own);
//! - [`ANNOTATION_TEMPLATE_HASH`]: hash of `spec.sts.spec.template` alone, which tells a change that
//!   creates a new StatefulSet revision (only the template is hashed upstream, see
//!   `pkg/controller/statefulset/stateful_set_utils.go` `getPatch`) from one that does not.
//!
//! Hashes are FNV-1a 64 over canonical JSON (object keys sorted at every level), so they are
//! stable across processes, versions and map orderings.

use std::{collections::BTreeMap, hash::Hasher};

use k8s_openapi::api::{
    apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetUpdateStrategy},
    core::v1::{PodReadinessGate, PodTemplateSpec},
};
use kube::{Resource, ResourceExt, api::ObjectMeta};
use serde::Serialize;
use serde_json::Value;
use sroll_api::{RolloutStrategy, StatefulsetRollout};

use crate::Error;

/// Annotation on the managed StatefulSet: hash of the rollout spec it was built from.
pub const ANNOTATION_SPEC_HASH: &str = "sroll.io/spec-hash";
/// Annotation on the managed StatefulSet: hash of the pod template it was built from.
pub const ANNOTATION_TEMPLATE_HASH: &str = "sroll.io/template-hash";

/// The StatefulSet the rollout wants, with `partition` as the partition (ignored for
/// `strategy: OnDelete`).
///
/// - name: `spec.sts.metadata.name`, else the rollout's name; namespace: the rollout's;
/// - labels and annotations: the user's, plus [`ANNOTATION_SPEC_HASH`] and
///   [`ANNOTATION_TEMPLATE_HASH`];
/// - a controller owner reference to the rollout (so deleting the rollout deletes the set, and the
///   operator's watch maps set events to the rollout);
/// - `spec`: the user's, with `updateStrategy` replaced: `Partitioned` → `RollingUpdate` with
///   `rollingUpdate.partition = partition`; `OnDelete` → `OnDelete` (no `rollingUpdate` block, which
///   upstream validation forbids with OnDelete);
/// - the pod template is [`pod_template`]: the user's, plus the `InPlaceUpdateReady` readiness gate
///   when `spec.podUpdatePolicy` allows in-place updates;
/// - `podManagementPolicy` defaults to `Parallel` when the user leaves it unset (with
///   `OrderedReady`, the upstream default, the StatefulSet controller recreates evicted pods one at
///   a time and parallel evictions gain little).
pub fn desired_statefulset(
    rollout: &StatefulsetRollout,
    partition: i32,
) -> Result<StatefulSet, Error> {
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or(Error::MissingRolloutIdentity)?;
    let user = &rollout.spec.sts;
    let mut annotations = user.metadata.annotations.clone();
    annotations.insert(ANNOTATION_SPEC_HASH.into(), spec_hash(rollout)?);
    annotations.insert(ANNOTATION_TEMPLATE_HASH.into(), template_hash(rollout)?);
    let mut spec = user.spec.clone();
    spec.template = pod_template(rollout);
    spec.update_strategy = Some(match rollout.spec.strategy() {
        RolloutStrategy::OnDelete => StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        },
        // `Partitioned` and any value a newer version may have written: the leak-proof default.
        _ => StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(partition.max(0)),
                max_unavailable: None,
            }),
        },
    });
    if spec.pod_management_policy.is_none() {
        spec.pod_management_policy = Some("Parallel".into());
    }
    Ok(StatefulSet {
        metadata: ObjectMeta {
            name: Some(rollout.statefulset_name()),
            namespace: rollout.namespace(),
            labels: (!user.metadata.labels.is_empty()).then(|| user.metadata.labels.clone()),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// Hash of everything in the rollout that [`desired_statefulset`] reads, except the partition:
/// `spec.sts` (whole), the effective `spec.strategy`, and whether `spec.podUpdatePolicy` allows
/// in-place updates (left out of the hashed JSON when it does not, so the hashes of rollouts
/// written before the field existed do not change).
pub fn spec_hash(rollout: &StatefulsetRollout) -> Result<String, Error> {
    #[derive(Serialize)]
    struct Hashed<'a> {
        sts: &'a sroll_api::EmbeddedStatefulSet,
        strategy: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        in_place: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pinning: bool,
    }
    hash_json(&Hashed {
        sts: &rollout.spec.sts,
        strategy: rollout.spec.strategy().to_string(),
        in_place: rollout.spec.in_place_allowed(),
        pinning: rollout.spec.revision_pinning(),
    })
}

/// Hash of the pod template the set gets ([`pod_template`]): changes exactly when the StatefulSet
/// gets a new revision.
pub fn template_hash(rollout: &StatefulsetRollout) -> Result<String, Error> {
    hash_json(&pod_template(rollout))
}

/// The pod template of the managed StatefulSet: `spec.sts.spec.template`, plus the readiness gate
/// [`crate::inplace::READINESS_GATE`] when `spec.podUpdatePolicy` allows in-place updates (the
/// gate lets sroll take a pod out of traffic before its images change). Adding the gate to a
/// running set is itself a template change, which no pod can take in place (readiness gates are
/// immutable on a pod): the first rollout after switching to an in-place policy recreates the pods.
///
/// With `spec.revisionPinning: true` the template also carries the label
/// [`crate::pinning::PINNING_LABEL`]`: "true"`, which sends its pods to the pinning webhook.
pub fn pod_template(rollout: &StatefulsetRollout) -> PodTemplateSpec {
    let mut template = rollout.spec.sts.spec.template.clone();
    if rollout.spec.revision_pinning() {
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(crate::pinning::PINNING_LABEL.into(), "true".into());
    }
    if rollout.spec.in_place_allowed() {
        let gates = template
            .spec
            .get_or_insert_with(Default::default)
            .readiness_gates
            .get_or_insert_with(Vec::new);
        if !gates
            .iter()
            .any(|g| g.condition_type == crate::inplace::READINESS_GATE)
        {
            gates.push(PodReadinessGate {
                condition_type: crate::inplace::READINESS_GATE.into(),
            });
        }
    }
    template
}

pub(crate) fn hash_json<T: Serialize>(value: &T) -> Result<String, Error> {
    let value = serde_json::to_value(value).map_err(Error::Serialize)?;
    let mut bytes = Vec::new();
    write_canonical(&value, &mut bytes);
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(&bytes);
    Ok(format!("{:016x}", hasher.finish()))
}

/// Writes `value` as JSON with object keys sorted at every level (independent of whether
/// serde_json's `preserve_order` feature is enabled somewhere in the build).
pub(crate) fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push(b'{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}
