//! The `SidecarSet` API (`sroll.io/v1alpha1`, cluster-scoped): OpenKruise's SidecarSet
//! (`apps.kruise.io/v1alpha1`, `apis/apps/v1alpha1/sidecarset_types.go`) under the same field names,
//! so a Kruise manifest with only its `apiVersion` changed is accepted as it is. A SidecarSet
//! injects containers, init containers, volumes, image pull secrets and annotations into the pods
//! its selector matches when they are created (sroll's mutating webhook), and rolls a changed
//! sidecar image to running pods in place.
//!
//! Differences from Kruise, each deliberate:
//! - hot upgrade (`upgradeStrategy.upgradeType: HotUpgrade`) is rejected by [`validate`]: it needs
//!   two containers per sidecar and a `postStart` hand-over, out of scope;
//! - `injectionStrategy.revision` (inject a historical revision) is rejected by [`validate`]:
//!   sroll keeps no SidecarSet ControllerRevisions yet, so it could not honour it;
//! - the containers' and volumes' schemas are the full Kubernetes ones (descriptions left out),
//!   where Kruise marks them schemaless, so the API server rejects a misspelt field;
//! - `updateStrategy.priorityStrategy`/`scatterStrategy` and `resourcesPolicy` are not accepted
//!   (the API server prunes them): the update order is Kruise's default sort.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::{Container, LocalObjectReference, ObjectFieldSelector, Volume},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::{intstr, validate::FieldError};

/// The default of `updateStrategy.maxUnavailable` (Kruise's: one pod).
pub const DEFAULT_MAX_UNAVAILABLE: i32 = 1;

/// Desired state of a SidecarSet: what is injected into the pods `selector` matches (in the
/// namespaces `namespace`/`namespaceSelector` allow) when they are created, and how a changed
/// sidecar image reaches the pods already running (`updateStrategy`).
// Each `printcolumn(...)` repeats the same keys, which clippy takes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "sroll.io",
    version = "v1alpha1",
    kind = "SidecarSet",
    plural = "sidecarsets",
    singular = "sidecarset",
    category = "sroll",
    status = "SidecarSetStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "SidecarSet injects sidecar containers, volumes and annotations into the pods it selects when they are created, and upgrades a changed sidecar image in place (OpenKruise's SidecarSet).",
    printcolumn(
        name = "MATCHED",
        type_ = "integer",
        json_path = ".status.matchedPods",
        description = "The number of pods matched."
    ),
    printcolumn(
        name = "UPDATED",
        type_ = "integer",
        json_path = ".status.updatedPods",
        description = "The number of pods matched and updated."
    ),
    printcolumn(
        name = "READY",
        type_ = "integer",
        json_path = ".status.readyPods",
        description = "The number of pods matched and ready."
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetSpec {
    /// The pods to inject into and upgrade (a label query). Required: a SidecarSet without a
    /// selector matches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Only pods in this namespace. Empty: every namespace (also see `namespaceSelector`; set at
    /// most one of the two).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,

    /// Only pods in the namespaces listed in `namespaces`, or else in the namespaces whose labels
    /// match `matchLabels`/`matchExpressions` (every namespace carries
    /// `kubernetes.io/metadata.name`). Unset: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<SidecarSetNamespaceSelector>,

    /// Init containers injected when a pod is created, sorted by name, after the pod's own.
    /// Never upgraded on a running pod. `podInjectPolicy` does not apply to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "sidecar_containers_schema")]
    pub init_containers: Vec<SidecarContainer>,

    /// Sidecar containers injected when a pod is created, before or after the pod's own
    /// (`podInjectPolicy`). A change of only their `image` is rolled to running pods in place; any
    /// other change reaches new pods only, and running pods are reported not upgradable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "sidecar_containers_schema")]
    pub containers: Vec<SidecarContainer>,

    /// Volumes the injected containers mount. Only volumes an injected container mounts are
    /// added, and a volume whose name the pod already has is not: the pod's own volume wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "volumes_schema")]
    pub volumes: Vec<Volume>,

    /// How running pods get a changed sidecar image.
    #[serde(default, skip_serializing_if = "is_default")]
    pub update_strategy: SidecarSetUpdateStrategy,

    /// How pods being created are injected.
    #[serde(default, skip_serializing_if = "is_default")]
    pub injection_strategy: SidecarSetInjectionStrategy,

    /// Secrets for pulling the sidecar images, added to the pod's `imagePullSecrets` (a name the
    /// pod already lists is not repeated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Accepted for Kruise compatibility (Kruise keeps this many ControllerRevisions); sroll keeps
    /// none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: Option<i32>,

    /// Annotations written into the pods when they are created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patch_pod_metadata: Vec<SidecarSetPatchPodMetadata>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The namespaces a SidecarSet applies to (Kruise's `SidecarSetNamespaceSelector`: a list of
/// names, or a label selector over namespaces; not both).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetNamespaceSelector {
    /// Namespace names. When set, `matchLabels`/`matchExpressions` must be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespace labels that must all be present with these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Namespace label requirements (`In`, `NotIn`, `Exists`, `DoesNotExist`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions:
        Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement>>,
}

impl SidecarSetNamespaceSelector {
    /// The label-selector part, `None` when it selects by names only.
    pub fn label_selector(&self) -> Option<LabelSelector> {
        let empty = self.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && self.match_expressions.as_ref().is_none_or(Vec::is_empty);
        (!empty).then(|| LabelSelector {
            match_labels: self.match_labels.clone(),
            match_expressions: self.match_expressions.clone(),
        })
    }
}

/// A sidecar (or init) container: a full Kubernetes `Container` plus how it is injected.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SidecarContainer {
    /// The container, exactly as in a pod (name, image, command, env, volumeMounts, …).
    #[serde(flatten)]
    pub container: Container,

    /// `BeforeAppContainer` (default): injected before the pod's own containers;
    /// `AfterAppContainer`: after them. Ignored for init containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_inject_policy: Option<PodInjectPolicy>,

    /// `upgradeType: ColdUpgrade` (default: restart the container with its new image) is the only
    /// type sroll supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_strategy: Option<SidecarContainerUpgradeStrategy>,

    /// `type: enabled` gives the sidecar every `volumeMount` of the pod's own containers (merged
    /// by `mountPath`: the sidecar's own mount wins). Default `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_volume_policy: Option<ShareVolumePolicy>,

    /// Environment variables copied from one of the pod's containers into this sidecar when the
    /// pod is created (a variable the sidecar sets itself wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer_env: Vec<TransferEnvVar>,
}

impl SidecarContainer {
    /// `podInjectPolicy`, default `BeforeAppContainer`.
    pub fn inject_policy(&self) -> PodInjectPolicy {
        self.pod_inject_policy.unwrap_or_default()
    }

    /// Whether `shareVolumePolicy.type` is `enabled`.
    pub fn shares_volumes(&self) -> bool {
        self.share_volume_policy
            .as_ref()
            .is_some_and(|p| p.type_ == ShareVolumePolicyType::Enabled)
    }
}

/// Where a sidecar goes among the pod's containers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PodInjectPolicy {
    /// Before the pod's own containers (default).
    #[default]
    BeforeAppContainer,
    /// After the pod's own containers.
    AfterAppContainer,
}

/// How a sidecar container is upgraded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarContainerUpgradeStrategy {
    /// `ColdUpgrade` (default); `HotUpgrade` is not supported by sroll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_type: Option<SidecarContainerUpgradeType>,
    /// For `HotUpgrade` only (not supported).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hot_upgrade_empty_image: String,
}

/// `upgradeStrategy.upgradeType`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum SidecarContainerUpgradeType {
    /// Restart the container with its new image (default).
    #[default]
    ColdUpgrade,
    /// Two containers taking turns (not supported by sroll; rejected).
    HotUpgrade,
}

/// `shareVolumePolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct ShareVolumePolicy {
    /// `enabled` or `disabled` (default).
    #[serde(rename = "type", default)]
    pub type_: ShareVolumePolicyType,
}

/// `shareVolumePolicy.type` (lower case, as Kruise spells it).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShareVolumePolicyType {
    /// Share the pod's containers' volume mounts.
    Enabled,
    /// Do not (default).
    #[default]
    Disabled,
}

/// Environment variables copied from one of the pod's containers (Kruise's `TransferEnvVar`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferEnvVar {
    /// The pod container to copy from (set this or `sourceContainerNameFrom`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_container_name: String,
    /// The pod container to copy from, named by a field of the pod: `metadata.name`,
    /// `metadata.labels['KEY']` or `metadata.annotations['KEY']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_container_name_from: Option<SourceContainerNameSource>,
    /// One variable to copy (set this or `envNames`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub env_name: String,
    /// Variables to copy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_names: Vec<String>,
}

impl TransferEnvVar {
    /// `envName` and `envNames`, in order.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(self.env_name.as_str())
            .filter(|n| !n.is_empty())
            .chain(self.env_names.iter().map(String::as_str))
            .collect()
    }
}

/// Names the source container by a field of the pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceContainerNameSource {
    /// The pod field (`fieldPath`) holding the container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
}

/// Annotations written into the pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetPatchPodMetadata {
    /// The annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `Retain` (default): an annotation the pod already has is kept. `Overwrite`: the
    /// SidecarSet's value replaces it. `MergePatchJson`: both values are JSON objects, merged
    /// (RFC 7386) with the SidecarSet's on top. Applied when the pod is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_policy: Option<PatchPolicy>,
}

/// `patchPodMetadata[].patchPolicy`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PatchPolicy {
    /// Keep the pod's value (default).
    #[default]
    Retain,
    /// Replace the pod's value.
    Overwrite,
    /// Merge two JSON objects.
    MergePatchJson,
}

/// How running pods get a changed sidecar image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetUpdateStrategy {
    /// `RollingUpdate` (default): upgrade running pods in place when only sidecar images changed.
    /// `NotUpdate`: inject only; running pods keep what they were created with.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<SidecarSetUpdateType>,

    /// Stops upgrading running pods; injection into new pods goes on. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,

    /// Upgrade only the matched pods this selector also matches (a canary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Number (or percentage of the matched pods, rounded up) of pods kept at their old sidecar
    /// version. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent_schema")]
    pub partition: Option<IntOrString>,

    /// Matched pods (number, or percentage rounded up) that may be unavailable at once during
    /// the upgrade, counting pods not Ready and pods being upgraded. At least 1. Default 1.
    /// Each pod's own workload's PodDisruptionBudget is honoured too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent_schema")]
    pub max_unavailable: Option<IntOrString>,
}

/// `updateStrategy.type`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum SidecarSetUpdateType {
    /// Upgrade running pods (default).
    #[default]
    RollingUpdate,
    /// Inject only.
    NotUpdate,
}

/// How pods being created are injected.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetInjectionStrategy {
    /// Stops injecting into new pods; pods already injected keep being upgraded. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,

    /// Inject a historical revision (Kruise). Not supported by sroll yet: rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<SidecarSetInjectRevision>,
}

/// `injectionStrategy.revision` (Kruise's shape; rejected by sroll for now).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetInjectRevision {
    /// A revision's custom version label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_version: Option<String>,
    /// A ControllerRevision's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// `Always` (default) or `Partial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Observed state of a SidecarSet (Kruise's `SidecarSetStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "is_zero64")]
    pub observed_generation: i64,
    /// Pods the SidecarSet matches (selector and namespace) that carry its sidecars.
    #[serde(default)]
    pub matched_pods: i32,
    /// Matched pods running the latest sidecar version.
    #[serde(default)]
    pub updated_pods: i32,
    /// Matched pods Ready.
    #[serde(default)]
    pub ready_pods: i32,
    /// Matched pods running the latest version and Ready.
    #[serde(default)]
    pub updated_ready_pods: i32,
    /// The latest version of the sidecars (`<name>-<hash>`), recorded in each pod injected.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latest_revision: String,
    /// Accepted for Kruise compatibility (revision hash collisions); always unset in sroll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// `NotUpgradable` (True while some matched pods cannot take the latest version in place).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SidecarSetCondition>,
}

/// A SidecarSet condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetCondition {
    /// The condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Last time the status changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// One-word reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn is_zero64(v: &i64) -> bool {
    *v == 0
}

fn int_or_percent_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "x-kubernetes-validations": [{
            "rule": "type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",
            "message": "must be a number of pods (0 or more) or a percentage from 0% to 100%, such as \"20%\""
        }],
        "description": "A number of pods or a percentage of the matched pods such as \"20%\"."
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

/// The extension fields of a [`SidecarContainer`], for its schema.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Only its schema is used.
struct SidecarExtensions {
    /// `BeforeAppContainer` (default): injected before the pod's own containers;
    /// `AfterAppContainer`: after them. Ignored for init containers.
    pod_inject_policy: Option<PodInjectPolicy>,
    /// `upgradeType: ColdUpgrade` (default) is the only type sroll supports.
    upgrade_strategy: Option<SidecarContainerUpgradeStrategy>,
    /// `type: enabled` gives the sidecar every volumeMount of the pod's own containers (merged by
    /// mountPath: the sidecar's own mount wins). Default `disabled`.
    share_volume_policy: Option<ShareVolumePolicy>,
    /// Environment variables copied from one of the pod's containers when the pod is created.
    transfer_env: Option<Vec<TransferEnvVar>>,
}

/// A list of [`SidecarContainer`]s: the Kubernetes `Container` schema (descriptions left out, as
/// `kubectl explain pod.spec.containers` has them) with the injection fields added.
fn sidecar_containers_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut container = generator.subschema_for::<Container>().to_value();
    strip_descriptions(&mut container);
    let extensions = generator.subschema_for::<SidecarExtensions>().to_value();
    if let (Some(props), Some(ext)) = (
        container
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut),
        extensions
            .get("properties")
            .and_then(serde_json::Value::as_object),
    ) {
        for (k, v) in ext {
            props.insert(k.clone(), v.clone());
        }
    }
    if let Some(obj) = container.as_object_mut() {
        obj.insert(
            "description".into(),
            "A container as in a pod (see `kubectl explain pod.spec.containers`) plus podInjectPolicy, upgradeStrategy, shareVolumePolicy and transferEnv.".into(),
        );
    }
    json_schema!({
        "type": "array",
        "items": container,
    })
}

fn volumes_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut value = generator.subschema_for::<Vec<Volume>>().to_value();
    strip_descriptions(&mut value);
    let mut schema = Schema::try_from(value).unwrap_or_default();
    schema.insert(
        "description".into(),
        "Volumes the injected containers mount; see `kubectl explain pod.spec.volumes`. A volume whose name the pod already has is not injected: the pod's own wins."
            .into(),
    );
    schema
}

/// The resolved numbers of a SidecarSet's update strategy for `matched` pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedUpdate {
    /// Pods kept at their old version, in `0..=matched`.
    pub partition: i32,
    /// Pods allowed to be unavailable at once (at least 1).
    pub max_unavailable: i32,
}

impl SidecarSetSpec {
    /// `updateStrategy.type`, default `RollingUpdate`.
    pub fn update_type(&self) -> SidecarSetUpdateType {
        self.update_strategy.type_.unwrap_or_default()
    }

    /// `partition` and `maxUnavailable` for `matched` pods, both rounded up as Kruise rounds them
    /// (`pkg/controller/sidecarset/sidecarset_strategy.go`: `GetScaledValueFromIntOrPercent(…,
    /// true)`); `maxUnavailable` at least 1. Values that do not parse count as their default
    /// ([`validate`] reports them).
    pub fn resolved(&self, matched: i32) -> ResolvedUpdate {
        let u = &self.update_strategy;
        let partition = u
            .partition
            .as_ref()
            .map_or(0, |p| intstr::scaled_value(p, matched, true).unwrap_or(0))
            .clamp(0, matched.max(0));
        let max_unavailable = u
            .max_unavailable
            .as_ref()
            .map_or(DEFAULT_MAX_UNAVAILABLE, |m| {
                intstr::scaled_value(m, matched, true).unwrap_or(DEFAULT_MAX_UNAVAILABLE)
            })
            .max(1);
        ResolvedUpdate {
            partition,
            max_unavailable,
        }
    }
}

/// Every problem of a SidecarSet's spec the schema cannot express (Kruise's validating webhook,
/// `pkg/webhook/sidecarset/validating/sidecarset_create_update_handler.go`), each naming its
/// field and how to fix it. Conflicts with other SidecarSets are checked by the planner
/// (`sroll_planner::sidecar_set::conflicts`), which needs them all.
pub fn validate(set: &SidecarSet) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |path: String, message: String| errs.push(FieldError { path, message });
    let spec = &set.spec;
    let selector_empty = spec.selector.as_ref().is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    });
    if selector_empty {
        err(
            "spec.selector".into(),
            "must select the pods to inject: set matchLabels or matchExpressions".into(),
        );
    }
    if let Some(s) = &spec.selector
        && let Err(e) = kube::core::Selector::try_from(s.clone())
    {
        err(
            "spec.selector".into(),
            format!("is not a valid selector: {e}"),
        );
    }
    if let Some(ns) = &spec.namespace_selector {
        if !spec.namespace.is_empty() {
            err(
                "spec.namespaceSelector".into(),
                "set only one of spec.namespace and spec.namespaceSelector".into(),
            );
        }
        if !ns.namespaces.is_empty() && ns.label_selector().is_some() {
            err(
                "spec.namespaceSelector".into(),
                "set only one of namespaces and matchLabels/matchExpressions".into(),
            );
        }
        if let Some(s) = ns.label_selector()
            && let Err(e) = kube::core::Selector::try_from(s)
        {
            err(
                "spec.namespaceSelector".into(),
                format!("is not a valid selector: {e}"),
            );
        }
    }
    if spec.containers.is_empty() && spec.init_containers.is_empty() {
        err(
            "spec.containers".into(),
            "must list at least one container or init container to inject".into(),
        );
    }
    let volume_names: BTreeSet<&str> = spec.volumes.iter().map(|v| v.name.as_str()).collect();
    let mut names = BTreeSet::new();
    for (list, containers) in [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ] {
        for (i, c) in containers.iter().enumerate() {
            let path = format!("spec.{list}[{i}]");
            let name = c.container.name.as_str();
            if name.is_empty() {
                err(format!("{path}.name"), "must be set".into());
            } else if !names.insert(name) {
                err(
                    format!("{path}.name"),
                    format!("{name:?} is used twice: container names must be unique"),
                );
            }
            if c.container.image.as_deref().is_none_or(str::is_empty) {
                err(format!("{path}.image"), "must be set".into());
            }
            if c.upgrade_strategy
                .as_ref()
                .and_then(|u| u.upgrade_type)
                .is_some_and(|t| t == SidecarContainerUpgradeType::HotUpgrade)
            {
                err(
                    format!("{path}.upgradeStrategy.upgradeType"),
                    "HotUpgrade is not supported by sroll: remove it (ColdUpgrade restarts the sidecar with its new image)".into(),
                );
            }
            for (j, m) in c.container.volume_mounts.iter().flatten().enumerate() {
                if !volume_names.contains(m.name.as_str()) && !c.shares_volumes() {
                    err(
                        format!("{path}.volumeMounts[{j}].name"),
                        format!(
                            "volume {:?} is not in spec.volumes: add it there (a pod volume of the same name would then win)",
                            m.name
                        ),
                    );
                }
            }
            for (j, t) in c.transfer_env.iter().enumerate() {
                let p = format!("{path}.transferEnv[{j}]");
                let from_field = t
                    .source_container_name_from
                    .as_ref()
                    .and_then(|f| f.field_ref.as_ref());
                match (t.source_container_name.is_empty(), from_field) {
                    (true, None) => err(
                        p.clone(),
                        "set sourceContainerName or sourceContainerNameFrom.fieldRef".into(),
                    ),
                    (false, Some(_)) => err(
                        p.clone(),
                        "set only one of sourceContainerName and sourceContainerNameFrom".into(),
                    ),
                    _ => {}
                }
                if let Some(f) = from_field
                    && !(f.field_path == "metadata.name"
                        || f.field_path.starts_with("metadata.labels['")
                        || f.field_path.starts_with("metadata.annotations['"))
                {
                    err(
                        format!("{p}.sourceContainerNameFrom.fieldRef.fieldPath"),
                        "must be metadata.name, metadata.labels['KEY'] or metadata.annotations['KEY']".into(),
                    );
                }
                if t.names().is_empty() {
                    err(p.clone(), "set envName or envNames".into());
                }
            }
        }
    }
    let mut volumes = BTreeSet::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        if v.name.is_empty() {
            err(format!("spec.volumes[{i}].name"), "must be set".into());
        } else if !volumes.insert(v.name.as_str()) {
            err(
                format!("spec.volumes[{i}].name"),
                format!("{:?} is listed twice", v.name),
            );
        }
    }
    let u = &spec.update_strategy;
    for (path, v) in [
        ("spec.updateStrategy.partition", &u.partition),
        ("spec.updateStrategy.maxUnavailable", &u.max_unavailable),
    ] {
        match v {
            Some(IntOrString::Int(i)) if *i < 0 => err(path.into(), "must be 0 or more".into()),
            Some(IntOrString::String(s)) => {
                match intstr::scaled_value(&IntOrString::String(s.clone()), 100, true) {
                    Err(e) => err(path.into(), e.to_string()),
                    Ok(p) if !(0..=100).contains(&p) => err(
                        path.into(),
                        format!("{s:?} must be a percentage from 0% to 100%"),
                    ),
                    Ok(_) => {}
                }
            }
            _ => {}
        }
    }
    if matches!(&u.max_unavailable, Some(IntOrString::Int(0)))
        || matches!(&u.max_unavailable, Some(IntOrString::String(s)) if s == "0%")
    {
        err(
            "spec.updateStrategy.maxUnavailable".into(),
            "cannot be 0: allow at least one pod (or pause with updateStrategy.paused)".into(),
        );
    }
    if let Some(s) = &u.selector
        && let Err(e) = kube::core::Selector::try_from(s.clone())
    {
        err(
            "spec.updateStrategy.selector".into(),
            format!("is not a valid selector: {e}"),
        );
    }
    if spec.injection_strategy.revision.is_some() {
        err(
            "spec.injectionStrategy.revision".into(),
            "injecting a historical revision is not supported by sroll yet: remove it (new pods get the latest version; pause the upgrade with updateStrategy.paused)".into(),
        );
    }
    let mut keys = BTreeSet::new();
    for (i, p) in spec.patch_pod_metadata.iter().enumerate() {
        for (k, v) in &p.annotations {
            if !keys.insert(k.as_str()) {
                err(
                    format!("spec.patchPodMetadata[{i}].annotations"),
                    format!("{k:?} is patched twice: list each annotation once"),
                );
            }
            if p.patch_policy == Some(PatchPolicy::MergePatchJson)
                && !matches!(
                    serde_json::from_str::<serde_json::Value>(v),
                    Ok(serde_json::Value::Object(_))
                )
            {
                err(
                    format!("spec.patchPodMetadata[{i}].annotations"),
                    format!(
                        "{k:?}: with patchPolicy MergePatchJson the value must be a JSON object"
                    ),
                );
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kruise's documented sample (docs/user-manuals/sidecarset.md) with every field our API
    /// accepts, only `apiVersion` changed.
    const KRUISE_SAMPLE: &str = "
apiVersion: sroll.io/v1alpha1
kind: SidecarSet
metadata: {name: test-sidecarset}
spec:
  selector: {matchLabels: {app: nginx}}
  namespaceSelector: {matchLabels: {team: a}}
  updateStrategy:
    type: RollingUpdate
    maxUnavailable: 20%
    partition: 1
    paused: false
    selector: {matchLabels: {canary: 'true'}}
  injectionStrategy: {paused: false}
  initContainers:
    - name: init
      image: busybox:1
      command: [sh, -c, 'true']
  containers:
    - name: sidecar1
      image: centos:6.7
      command: [sleep, 999d]
      podInjectPolicy: BeforeAppContainer
      shareVolumePolicy: {type: disabled}
      upgradeStrategy: {upgradeType: ColdUpgrade}
      transferEnv:
        - {sourceContainerName: main, envName: PROXY_IP}
        - sourceContainerNameFrom: {fieldRef: {fieldPath: \"metadata.labels['main']\"}}
          envNames: [A, B]
      volumeMounts: [{name: log-volume, mountPath: /var/log}]
  volumes:
    - name: log-volume
      emptyDir: {}
  imagePullSecrets: [{name: my-secret}]
  revisionHistoryLimit: 5
  patchPodMetadata:
    - annotations: {oom-score: '{\"log-agent\": 1}'}
      patchPolicy: MergePatchJson
";

    #[test]
    fn a_kruise_manifest_with_only_its_api_version_changed_parses_and_is_valid() {
        let s: SidecarSet = serde_yaml_ng::from_str(KRUISE_SAMPLE).expect("parses");
        assert!(validate(&s).is_empty(), "{:?}", validate(&s));
        let c = &s.spec.containers[0];
        assert_eq!(c.container.name, "sidecar1");
        assert_eq!(c.container.command.as_ref().map(Vec::len), Some(2));
        assert_eq!(c.inject_policy(), PodInjectPolicy::BeforeAppContainer);
        assert!(!c.shares_volumes());
        assert_eq!(c.transfer_env[1].names(), ["A", "B"]);
        assert_eq!(s.spec.update_type(), SidecarSetUpdateType::RollingUpdate);
        assert_eq!(
            s.spec.resolved(10),
            ResolvedUpdate {
                partition: 1,
                max_unavailable: 2
            }
        );
        // Round trip: the flattened container and the extensions come back as written.
        let back: SidecarSet =
            serde_json::from_value(serde_json::to_value(&s).expect("serializes")).expect("parses");
        assert_eq!(back, s);
        let json = serde_json::to_value(c).expect("serializes");
        assert_eq!(json["name"], "sidecar1");
        assert_eq!(json["podInjectPolicy"], "BeforeAppContainer");
        assert_eq!(json["shareVolumePolicy"]["type"], "disabled");
    }

    #[test]
    fn max_unavailable_rounds_up_and_is_at_least_one() {
        let mut s = SidecarSetSpec::default();
        assert_eq!(s.resolved(10).max_unavailable, 1);
        s.update_strategy.max_unavailable = Some(IntOrString::String("25%".into()));
        assert_eq!(s.resolved(10).max_unavailable, 3, "2.5 rounds up");
        assert_eq!(s.resolved(0).max_unavailable, 1);
        s.update_strategy.partition = Some(IntOrString::String("50%".into()));
        assert_eq!(s.resolved(5).partition, 3, "2.5 rounds up");
        s.update_strategy.partition = Some(IntOrString::Int(9));
        assert_eq!(s.resolved(5).partition, 5, "clamped to the matched pods");
    }

    #[test]
    fn validation_names_each_field_and_how_to_fix_it() {
        let base: SidecarSet = serde_yaml_ng::from_str(KRUISE_SAMPLE).expect("parses");
        type Edit = Box<dyn Fn(&mut SidecarSetSpec)>;
        let cases: Vec<(&str, &str, Edit)> = vec![
            (
                "spec.selector",
                "set matchLabels",
                Box::new(|s| s.selector = None),
            ),
            (
                "spec.namespaceSelector",
                "only one of spec.namespace",
                Box::new(|s| s.namespace = "default".into()),
            ),
            (
                "spec.containers[0].name",
                "used twice",
                Box::new(|s| s.containers[0].container.name = "init".into()),
            ),
            (
                "spec.containers[0].image",
                "must be set",
                Box::new(|s| s.containers[0].container.image = None),
            ),
            (
                "spec.containers[0].upgradeStrategy.upgradeType",
                "HotUpgrade is not supported",
                Box::new(|s| {
                    s.containers[0].upgrade_strategy = Some(SidecarContainerUpgradeStrategy {
                        upgrade_type: Some(SidecarContainerUpgradeType::HotUpgrade),
                        hot_upgrade_empty_image: "empty:1".into(),
                    })
                }),
            ),
            (
                "spec.containers[0].volumeMounts[0].name",
                "add it there",
                Box::new(|s| s.volumes.clear()),
            ),
            (
                "spec.containers[0].transferEnv[0]",
                "set sourceContainerName",
                Box::new(|s| {
                    s.containers[0].transfer_env[0]
                        .source_container_name
                        .clear()
                }),
            ),
            (
                "spec.updateStrategy.maxUnavailable",
                "cannot be 0",
                Box::new(|s| s.update_strategy.max_unavailable = Some(IntOrString::Int(0))),
            ),
            (
                "spec.updateStrategy.partition",
                "percentage",
                Box::new(|s| s.update_strategy.partition = Some(IntOrString::String("5".into()))),
            ),
            (
                "spec.injectionStrategy.revision",
                "not supported by sroll yet",
                Box::new(|s| {
                    s.injection_strategy.revision = Some(SidecarSetInjectRevision {
                        revision_name: Some("x".into()),
                        ..SidecarSetInjectRevision::default()
                    })
                }),
            ),
            (
                "spec.patchPodMetadata[0].annotations",
                "JSON object",
                Box::new(|s| {
                    s.patch_pod_metadata[0]
                        .annotations
                        .insert("oom-score".into(), "1".into());
                }),
            ),
        ];
        for (path, fix, edit) in cases {
            let mut s = base.clone();
            edit(&mut s.spec);
            let errs = validate(&s);
            assert!(
                errs.iter()
                    .any(|e| e.path == path && e.message.contains(fix)),
                "{path}: {errs:?}"
            );
        }
    }
}
