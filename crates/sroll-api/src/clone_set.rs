//! The `CloneSet` API (`sroll.io/v1alpha1`, short name `clone`): OpenKruise's stateless workload
//! (`apps.kruise.io/v1alpha1` `CloneSet`, `apis/apps/v1alpha1/cloneset_types.go`) under the same
//! field names and defaults, so a Kruise manifest with only its `apiVersion` changed is accepted as
//! it is.
//!
//! Differences from Kruise, each deliberate:
//! - `spec.template` and `spec.volumeClaimTemplates` are validated against the full Kubernetes
//!   schemas (descriptions left out, as for the rollout's embedded StatefulSet), where Kruise marks
//!   them schemaless;
//! - the `preNormal` hook and `markPodNotReady` are accepted (Kruise manifests carry them) but only
//!   `preDelete` and `inPlaceUpdate` label hooks are acted on;
//! - the in-place settings under `updateStrategy.inPlaceUpdateStrategy` other than
//!   `gracePeriodSeconds` (image pre-download) are pruned by the API server.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::{
    api::core::v1::{PersistentVolumeClaim, PodTemplateSpec},
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, Time},
        util::intstr::IntOrString,
    },
};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::{InPlaceUpdateStrategy, intstr, validate::FieldError};

/// The label carrying a CloneSet pod's instance id (the 5 random characters of its name), shared
/// with the pod's PersistentVolumeClaims so a replacement pod can reuse them (Kruise's
/// `apps.kruise.io/cloneset-instance-id`).
pub const INSTANCE_ID_LABEL: &str = "sroll.io/cloneset-instance-id";
/// The pod label that asks for the pod's deletion (and replacement, if `replicas` is unchanged),
/// like listing it in `scaleStrategy.podsToDelete` (Kruise's `apps.kruise.io/specified-delete`).
pub const SPECIFIED_DELETE_LABEL: &str = "sroll.io/specified-delete";
/// The pod label holding its lifecycle state (Kruise's `lifecycle.apps.kruise.io/state`):
/// `PreparingNormal`, `Normal`, `PreparingUpdate`, `Updating`, `Updated`, `PreparingDelete`.
pub const LIFECYCLE_STATE_LABEL: &str = "lifecycle.sroll.io/state";
/// The default of `updateStrategy.maxUnavailable` (Kruise's `DefaultCloneSetMaxUnavailable`).
pub const DEFAULT_MAX_UNAVAILABLE: &str = "20%";
/// The default of `revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// Desired state of a CloneSet: `replicas` pods from `template`, rolled to a new template by
/// `updateStrategy` (recreate or in place, with `maxSurge`, `maxUnavailable` and `partition`) and
/// scaled down by `scaleStrategy` (named pods first).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sroll.io",
    version = "v1alpha1",
    kind = "CloneSet",
    plural = "clonesets",
    singular = "cloneset",
    shortname = "clone",
    category = "sroll",
    namespaced,
    status = "CloneSetStatus",
    derive = "PartialEq",
    doc = "CloneSet runs interchangeable pods (OpenKruise's CloneSet): rolling updates with maxSurge, maxUnavailable and partition together, in-place image updates, and scale-down by pod name.",
    scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas", label_selector_path = ".status.labelSelector"),
    printcolumn(name = "DESIRED", type_ = "integer", json_path = ".spec.replicas", description = "The desired number of pods."),
    printcolumn(name = "UPDATED", type_ = "integer", json_path = ".status.updatedReplicas", description = "The number of pods updated."),
    printcolumn(name = "UPDATED_READY", type_ = "integer", json_path = ".status.updatedReadyReplicas", description = "The number of pods updated and ready."),
    printcolumn(name = "UPDATED_AVAILABLE", type_ = "integer", json_path = ".status.updatedAvailableReplicas", description = "The number of pods updated and available."),
    printcolumn(name = "READY", type_ = "integer", json_path = ".status.readyReplicas", description = "The number of pods ready."),
    printcolumn(name = "TOTAL", type_ = "integer", json_path = ".status.replicas", description = "The number of currently all pods."),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "CONTAINERS", type_ = "string", priority = "1", json_path = ".spec.template.spec.containers[*].name", description = "The containers of currently cloneset."),
    printcolumn(name = "IMAGES", type_ = "string", priority = "1", json_path = ".spec.template.spec.containers[*].image", description = "The images of currently cloneset."),
    printcolumn(name = "SELECTOR", type_ = "string", priority = "1", json_path = ".status.labelSelector", description = "The selector of currently cloneset."),
    validation = Rule::new("self.metadata.name.size() <= 57").message("metadata.name must be at most 57 characters: pods are named <name>-<5 characters>"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.selector.matchLabels) || (has(self.template.metadata) && has(self.template.metadata.labels) && self.selector.matchLabels.all(k, k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k]))"
).message("spec.selector.matchLabels must match spec.template.metadata.labels").field_path(".selector"))]
pub struct CloneSetSpec {
    /// The desired number of pods. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

    /// Selects the pods the CloneSet owns; must match `template.metadata.labels`.
    pub selector: LabelSelector,

    /// The pod template. Its fields are documented by `kubectl explain pod.spec` (descriptions are
    /// left out of this CRD to keep it small enough for client-side `kubectl apply`).
    #[schemars(schema_with = "pod_template_schema")]
    pub template: PodTemplateSpec,

    /// Claims each pod gets one of (named `<claim>-<pod name>`), kept with the pod's instance id:
    /// an in-place update keeps them, a recreate deletes them with the pod, and a replacement pod
    /// reuses a claim left without its pod unless `scaleStrategy.disablePVCReuse` is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "claim_templates_schema")]
    pub volume_claim_templates: Vec<PersistentVolumeClaim>,

    /// How pods are created and deleted when scaling.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scale_strategy: CloneSetScaleStrategy,

    /// How pods move to a new template.
    #[serde(default, skip_serializing_if = "is_default")]
    pub update_strategy: CloneSetUpdateStrategy,

    /// How many old ControllerRevisions are kept for rollback. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: Option<i32>,

    /// Seconds a new pod must be Ready before it counts as available. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: i32,

    /// Label hooks that hold a pod before deletion or before an in-place update until another
    /// controller removes the labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,

    /// Seconds without progress after which the `Progressing` condition turns False with reason
    /// `ProgressDeadlineExceeded` (time paused does not count). Unset: no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i32>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// How pods are created and deleted when scaling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetScaleStrategy {
    /// Names of pods to delete first. With `replicas` unchanged each is deleted and replaced; when
    /// `replicas` goes down in the same edit, they are the pods that go. Names of pods that do not
    /// exist are ignored, and names of deleted pods are removed from the list. Deletions of Ready
    /// pods are bounded by `updateStrategy.maxUnavailable` (and may use `maxSurge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods_to_delete: Vec<String>,

    /// Limits scale-up: at most this many pods (number or percentage of replicas, rounded up) are
    /// unavailable while new pods are created. Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent_schema")]
    pub max_unavailable: Option<IntOrString>,

    /// Never reuse the claims a deleted pod left behind: a new pod always gets new claims.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[serde(rename = "disablePVCReuse")]
    pub disable_pvc_reuse: bool,
}

/// How pods move to a new template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetUpdateStrategy {
    /// `ReCreate` (default): delete the old pod (and its claims) and create a new one.
    /// `InPlaceIfPossible`: update the pod in place when only container images and template
    /// labels/annotations change, otherwise recreate it. `InPlaceOnly`: in place only; any other
    /// change stops the update with a `FailedUpdate` condition naming the field. `OnDelete`: pods
    /// take the new template only when deleted.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<CloneSetUpdateType>,

    /// Number (or percentage of replicas, rounded up) of pods kept at the old revision; the
    /// CloneSet updates `replicas − partition` pods. A percentage below 100% updates at least one
    /// pod when replicas > 1. Raising it does not roll updated pods back. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent_schema")]
    pub partition: Option<IntOrString>,

    /// Pods (number or percentage of replicas) that may be unavailable during the update and
    /// during deletions by name. Percentages round up, or down when `maxSurge` is above 0.
    /// Default 20%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent_schema")]
    pub max_unavailable: Option<IntOrString>,

    /// Pods (number or percentage of replicas, rounded up) created above `replicas` while two
    /// revisions run; they are removed once the update reached the partition. Not allowed with
    /// `InPlaceOnly`; 0 while paused. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent_schema")]
    pub max_surge: Option<IntOrString>,

    /// Stops updating pods; the replica count is still kept. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,

    /// Which pods are updated first (one of `weightPriority` or `orderPriority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_strategy: Option<UpdatePriorityStrategy>,

    /// Spreads the pods carrying a label `key=value` evenly through the update order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scatter_strategy: Vec<UpdateScatterTerm>,

    /// In-place settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update_strategy: Option<InPlaceUpdateStrategy>,
}

/// `updateStrategy.type`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum CloneSetUpdateType {
    /// Delete and recreate (default).
    #[default]
    ReCreate,
    /// In place when possible, else recreate.
    InPlaceIfPossible,
    /// In place only.
    InPlaceOnly,
    /// Only when a pod is deleted.
    OnDelete,
}

impl fmt::Display for CloneSetUpdateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReCreate => "ReCreate",
            Self::InPlaceIfPossible => "InPlaceIfPossible",
            Self::InPlaceOnly => "InPlaceOnly",
            Self::OnDelete => "OnDelete",
        })
    }
}

/// Update priority (Kruise's `UpdatePriorityStrategy`): set one of the two lists.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityStrategy {
    /// Pods are sorted by the integer at the end of these labels' values (`"sts-10"` → 10),
    /// highest first; later keys break ties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_priority: Vec<UpdatePriorityOrderTerm>,
    /// Pods are sorted by the sum of the weights of the terms whose selector they match, highest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_priority: Vec<UpdatePriorityWeightTerm>,
}

/// One label whose value's trailing integer orders updates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityOrderTerm {
    /// The label key.
    pub ordered_key: String,
}

/// A weight given to the pods a selector matches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePriorityWeightTerm {
    /// 1 to 100.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// The pods this weight applies to.
    pub match_selector: LabelSelector,
}

impl Eq for UpdatePriorityWeightTerm {}

/// Pods labelled `key=value` are spread evenly through the update order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateScatterTerm {
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
}

/// Lifecycle hooks (Kruise's `apis/apps/pub/lifecycle.go`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Held in `PreparingDelete` while the pod carries these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_delete: Option<LifecycleHook>,
    /// Held in `PreparingUpdate` before an in-place update while the pod carries these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update: Option<LifecycleHook>,
    /// Accepted for Kruise compatibility; not acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_normal: Option<LifecycleHook>,
}

/// A hook: the pod "matches" while it carries every label (and finalizer) listed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHook {
    /// Labels that hold the pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels_handler: BTreeMap<String, String>,
    /// Finalizers that hold the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers_handler: Vec<String>,
    /// Accepted for Kruise compatibility; not acted on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mark_pod_not_ready: bool,
}

/// Observed state of a CloneSet (Kruise's `CloneSetStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "is_zero64")]
    pub observed_generation: i64,
    /// Pods owned, whatever their state.
    #[serde(default)]
    pub replicas: i32,
    /// Pods Ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods Ready for `minReadySeconds` and in lifecycle state `Normal`.
    #[serde(default)]
    pub available_replicas: i32,
    /// Pods at `updateRevision`.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Pods at `updateRevision` and Ready.
    #[serde(default)]
    pub updated_ready_replicas: i32,
    /// Pods at `updateRevision` and available.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated_available_replicas: i32,
    /// `replicas − partition`: the update is complete when `updatedReplicas` reaches it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expected_updated_replicas: i32,
    /// The ControllerRevision of the current template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub update_revision: String,
    /// The revision every pod last ran.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_revision: String,
    /// Bumped when a revision name collides; part of the revision hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// `FailedScale`, `FailedUpdate`, `Progressing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CloneSetCondition>,
    /// The selector as a string, for the scale subresource (HPA).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label_selector: String,
}

fn is_zero64(v: &i64) -> bool {
    *v == 0
}

/// A CloneSet condition (Kruise's shape: with `lastUpdateTime`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetCondition {
    /// `FailedScale`, `FailedUpdate` or `Progressing`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Last time the condition was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// Last time the status changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// One-word reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn int_or_percent_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "x-kubernetes-validations": [{
            "rule": "type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",
            "message": "must be a number of pods (0 or more) or a percentage from 0% to 100%, such as \"20%\""
        }],
        "description": "A number of pods or a percentage of replicas such as \"20%\"."
    })
}

fn strip_descriptions(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("description");
            map.values_mut().for_each(strip_descriptions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

fn pod_template_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut value = generator.subschema_for::<PodTemplateSpec>().to_value();
    strip_descriptions(&mut value);
    let mut schema = Schema::try_from(value).unwrap_or_default();
    schema.insert(
        "description".into(),
        "A pod template; see `kubectl explain pod`. `spec.activeDeadlineSeconds` is not allowed."
            .into(),
    );
    schema
}

fn claim_templates_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut value = generator
        .subschema_for::<Vec<PersistentVolumeClaim>>()
        .to_value();
    strip_descriptions(&mut value);
    let mut schema = Schema::try_from(value).unwrap_or_default();
    schema.insert(
        "description".into(),
        "PersistentVolumeClaims each pod gets one of; see `kubectl explain persistentvolumeclaim`."
            .into(),
    );
    schema
}

/// The resolved numbers of a CloneSet's strategy for its current `replicas` (Kruise's
/// `calculateDiffsWithExpectation` prologue, `pkg/controller/cloneset/sync/cloneset_sync_utils.go`,
/// and `util.CalculatePartitionReplicas`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedStrategy {
    /// `spec.replicas` (default 1).
    pub replicas: i32,
    /// Pods kept at the old revision, in `0..=replicas`.
    pub partition: i32,
    /// Extra pods allowed (0 while paused).
    pub max_surge: i32,
    /// Pods allowed to be unavailable.
    pub max_unavailable: i32,
    /// Scale-up limit on unavailable pods (`i32::MAX` when unset).
    pub scale_max_unavailable: i32,
}

impl CloneSetSpec {
    /// `replicas`, default 1.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1).max(0)
    }

    /// `updateStrategy.type`, default `ReCreate`.
    pub fn update_type(&self) -> CloneSetUpdateType {
        self.update_strategy.type_.unwrap_or_default()
    }

    /// `updateStrategy.inPlaceUpdateStrategy.gracePeriodSeconds`, default 0.
    pub fn grace_period_seconds(&self) -> i64 {
        self.update_strategy
            .in_place_update_strategy
            .as_ref()
            .and_then(|s| s.grace_period_seconds)
            .map_or(0, i64::from)
    }

    /// `revisionHistoryLimit`, default 10.
    pub fn revision_history_limit(&self) -> i32 {
        self.revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
            .max(0)
    }

    /// The strategy's numbers for the current `replicas`, with Kruise's rounding: `partition` up
    /// (but below `replicas` for a percentage under 100% when replicas > 1), `maxSurge` up (0 when
    /// paused), `maxUnavailable` up, or down when `maxSurge` > 0. Values that do not parse count
    /// as their default ([`validate`] reports them).
    pub fn resolved(&self) -> ResolvedStrategy {
        let replicas = self.replicas();
        let u = &self.update_strategy;
        let partition = match &u.partition {
            None => 0,
            Some(p) => {
                let v = intstr::scaled_value(p, replicas, true).unwrap_or(0);
                let v = match p {
                    IntOrString::String(s) if replicas > 1 && v >= replicas && s != "100%" => {
                        replicas - 1
                    }
                    _ => v,
                };
                v.clamp(0, replicas)
            }
        };
        let max_surge = match &u.max_surge {
            Some(s) if !u.paused => intstr::scaled_value(s, replicas, true).unwrap_or(0).max(0),
            _ => 0,
        };
        let default_mu = IntOrString::String(DEFAULT_MAX_UNAVAILABLE.into());
        let max_unavailable = intstr::scaled_value(
            u.max_unavailable.as_ref().unwrap_or(&default_mu),
            replicas,
            max_surge == 0,
        )
        .unwrap_or(0)
        .max(0);
        let scale_max_unavailable = self
            .scale_strategy
            .max_unavailable
            .as_ref()
            .map_or(i32::MAX, |v| {
                intstr::scaled_value(v, replicas, true).unwrap_or(i32::MAX)
            });
        ResolvedStrategy {
            replicas,
            partition,
            max_surge,
            max_unavailable,
            scale_max_unavailable,
        }
    }
}

/// Every problem of a CloneSet's spec the schema cannot express (Kruise's validating webhook,
/// `pkg/webhook/cloneset/validating/validation.go`), each naming its field.
pub fn validate(cs: &CloneSet) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |path: &str, message: String| {
        errs.push(FieldError {
            path: path.to_owned(),
            message,
        })
    };
    let spec = &cs.spec;
    let replicas = spec.replicas();
    if spec.replicas.is_some_and(|r| r < 0) {
        err("spec.replicas", "must be 0 or more".into());
    }
    let u = &spec.update_strategy;
    for (path, v) in [
        ("spec.updateStrategy.partition", &u.partition),
        ("spec.updateStrategy.maxUnavailable", &u.max_unavailable),
        ("spec.updateStrategy.maxSurge", &u.max_surge),
        (
            "spec.scaleStrategy.maxUnavailable",
            &spec.scale_strategy.max_unavailable,
        ),
    ] {
        match v.clone() {
            Some(IntOrString::Int(i)) if i < 0 => err(path, "must be 0 or more".into()),
            Some(IntOrString::String(s)) => {
                match intstr::scaled_value(&IntOrString::String(s.clone()), 100, true) {
                    Err(e) => err(path, e.to_string()),
                    Ok(p) if !(0..=100).contains(&p) => {
                        err(path, format!("{s:?} must be a percentage from 0% to 100%"))
                    }
                    Ok(_) => {}
                }
            }
            _ => {}
        }
    }
    let r = spec.resolved();
    if replicas > 0 && r.max_unavailable < 1 && r.max_surge < 1 && !u.paused {
        err(
            "spec.updateStrategy.maxUnavailable",
            "maxUnavailable and maxSurge cannot both be 0: set maxUnavailable or maxSurge to at least 1 pod".into(),
        );
    }
    if spec.update_type() == CloneSetUpdateType::InPlaceOnly
        && u.max_surge
            .as_ref()
            .is_some_and(|s| intstr::scaled_value(s, replicas.max(1), true).unwrap_or(0) > 0)
    {
        err(
            "spec.updateStrategy.maxSurge",
            "must be 0 with type InPlaceOnly: an in-place update creates no pod; use InPlaceIfPossible for surge".into(),
        );
    }
    if let Some(p) = &u.priority_strategy {
        if !p.order_priority.is_empty() && !p.weight_priority.is_empty() {
            err(
                "spec.updateStrategy.priorityStrategy",
                "set only one of weightPriority and orderPriority".into(),
            );
        }
        for (i, w) in p.weight_priority.iter().enumerate() {
            if !(1..=100).contains(&w.weight) {
                err(
                    &format!("spec.updateStrategy.priorityStrategy.weightPriority[{i}].weight"),
                    "must be between 1 and 100".into(),
                );
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in u.scatter_strategy.iter().enumerate() {
        if t.key.is_empty() || t.value.is_empty() {
            err(
                &format!("spec.updateStrategy.scatterStrategy[{i}]"),
                "key and value must not be empty".into(),
            );
        }
        if !seen.insert((t.key.clone(), t.value.clone())) {
            err(
                &format!("spec.updateStrategy.scatterStrategy[{i}]"),
                format!("{}={} is listed twice", t.key, t.value),
            );
        }
    }
    if let Some(g) = u
        .in_place_update_strategy
        .as_ref()
        .and_then(|s| s.grace_period_seconds)
        && !(0..=3600).contains(&g)
    {
        err(
            "spec.updateStrategy.inPlaceUpdateStrategy.gracePeriodSeconds",
            "must be between 0 and 3600 seconds".into(),
        );
    }
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = &spec.selector;
    if selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
    {
        err(
            "spec.selector",
            "must select the pods: set matchLabels (matching spec.template.metadata.labels)".into(),
        );
    }
    for (k, v) in selector.match_labels.iter().flatten() {
        if template_labels.get(k) != Some(v) {
            err(
                "spec.selector.matchLabels",
                format!(
                    "{k}={v} is not in spec.template.metadata.labels: the CloneSet would not select its own pods"
                ),
            );
        }
    }
    let pod_spec = spec.template.spec.as_ref();
    if pod_spec.is_none_or(|s| s.containers.is_empty()) {
        err(
            "spec.template.spec.containers",
            "must list at least one container".into(),
        );
    }
    if pod_spec.is_some_and(|s| s.active_deadline_seconds.is_some()) {
        err(
            "spec.template.spec.activeDeadlineSeconds",
            "is not allowed in a CloneSet template: a pod would stop on its own".into(),
        );
    }
    for (i, c) in spec.volume_claim_templates.iter().enumerate() {
        if c.metadata.name.as_deref().is_none_or(str::is_empty) {
            err(
                &format!("spec.volumeClaimTemplates[{i}].metadata.name"),
                "must be set: it names the claim and the pod volume it fills".into(),
            );
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> CloneSetSpec {
        serde_yaml_ng::from_str(yaml).expect("a valid spec")
    }

    const BASE: &str = "
selector: {matchLabels: {app: web}}
template:
  metadata: {labels: {app: web}}
  spec: {containers: [{name: app, image: 'app:1'}]}
";

    #[test]
    fn percentages_resolve_with_kruises_rounding() {
        let mut s = spec(BASE);
        s.replicas = Some(5);
        let r = s.resolved();
        assert_eq!((r.partition, r.max_surge, r.max_unavailable), (0, 0, 1));
        assert_eq!(r.scale_max_unavailable, i32::MAX);

        s.update_strategy.max_surge = Some(IntOrString::String("20%".into()));
        s.update_strategy.max_unavailable = Some(IntOrString::String("30%".into()));
        s.update_strategy.partition = Some(IntOrString::String("50%".into()));
        let r = s.resolved();
        // 5 × 50% = 2.5 → 3 (up); maxSurge 1 (up); maxUnavailable 1.5 → 1 (down, surge > 0).
        assert_eq!((r.partition, r.max_surge, r.max_unavailable), (3, 1, 1));

        s.update_strategy.partition = Some(IntOrString::String("99%".into()));
        assert_eq!(s.resolved().partition, 4, "below 100% updates one pod");
        s.update_strategy.partition = Some(IntOrString::String("100%".into()));
        assert_eq!(s.resolved().partition, 5);
        s.update_strategy.partition = Some(IntOrString::Int(9));
        assert_eq!(s.resolved().partition, 5, "clamped to replicas");

        s.update_strategy.paused = true;
        assert_eq!(s.resolved().max_surge, 0, "no surge while paused");
    }

    #[test]
    fn a_kruise_manifest_with_only_its_api_version_changed_parses() {
        let cs: CloneSet = serde_yaml_ng::from_str(
            "
apiVersion: sroll.io/v1alpha1
kind: CloneSet
metadata: {name: sample}
spec:
  replicas: 5
  selector: {matchLabels: {app: sample}}
  template:
    metadata: {labels: {app: sample}}
    spec: {containers: [{name: main, image: 'nginx:alpine'}]}
  volumeClaimTemplates:
    - metadata: {name: data-vol}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 20Gi}}}
  scaleStrategy: {podsToDelete: [sample-9m8hs], maxUnavailable: 1, disablePVCReuse: true}
  updateStrategy:
    type: InPlaceIfPossible
    partition: 3
    maxSurge: 20%
    maxUnavailable: 0
    paused: false
    priorityStrategy: {weightPriority: [{weight: 50, matchSelector: {matchLabels: {test-key: foo}}}]}
    scatterStrategy: [{key: foo, value: bar}]
    inPlaceUpdateStrategy: {gracePeriodSeconds: 10}
  lifecycle:
    preDelete: {labelsHandler: {example.io/block-deleting: 'true'}}
    inPlaceUpdate: {labelsHandler: {example.io/block-updating: 'true'}}
  revisionHistoryLimit: 5
  minReadySeconds: 3
  progressDeadlineSeconds: 600
",
        )
        .expect("parses");
        assert!(validate(&cs).is_empty(), "{:?}", validate(&cs));
        assert_eq!(cs.spec.update_type(), CloneSetUpdateType::InPlaceIfPossible);
        assert!(cs.spec.scale_strategy.disable_pvc_reuse);
        assert_eq!(cs.spec.grace_period_seconds(), 10);
        let r = cs.spec.resolved();
        assert_eq!((r.partition, r.max_surge, r.max_unavailable), (3, 1, 0));
        assert_eq!(r.scale_max_unavailable, 1);
    }

    #[test]
    fn validation_names_each_field_and_how_to_fix_it() {
        let cs = |f: &dyn Fn(&mut CloneSetSpec)| {
            let mut s = spec(BASE);
            f(&mut s);
            CloneSet::new("web", s)
        };
        type Edit = Box<dyn Fn(&mut CloneSetSpec)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "spec.updateStrategy.maxUnavailable",
                Box::new(|s| s.update_strategy.max_unavailable = Some(IntOrString::Int(0))),
            ),
            (
                "spec.updateStrategy.maxSurge",
                Box::new(|s| {
                    s.update_strategy.type_ = Some(CloneSetUpdateType::InPlaceOnly);
                    s.update_strategy.max_surge = Some(IntOrString::Int(1));
                }),
            ),
            (
                "spec.updateStrategy.partition",
                Box::new(|s| s.update_strategy.partition = Some(IntOrString::String("5".into()))),
            ),
            (
                "spec.updateStrategy.priorityStrategy",
                Box::new(|s| {
                    s.update_strategy.priority_strategy = Some(UpdatePriorityStrategy {
                        order_priority: vec![UpdatePriorityOrderTerm {
                            ordered_key: "k".into(),
                        }],
                        weight_priority: vec![UpdatePriorityWeightTerm {
                            weight: 10,
                            match_selector: LabelSelector::default(),
                        }],
                    })
                }),
            ),
            (
                "spec.selector.matchLabels",
                Box::new(|s| {
                    s.selector.match_labels = Some([("app".to_owned(), "db".to_owned())].into())
                }),
            ),
            (
                "spec.template.spec.activeDeadlineSeconds",
                Box::new(|s| {
                    if let Some(p) = s.template.spec.as_mut() {
                        p.active_deadline_seconds = Some(5)
                    }
                }),
            ),
        ];
        for (path, edit) in cases {
            let errs = validate(&cs(&*edit));
            assert!(
                errs.iter().any(|e| e.path == path && !e.message.is_empty()),
                "{path}: {errs:?}"
            );
        }
        assert!(validate(&cs(&|_| {})).is_empty());
    }
}
