//! The `StatefulsetRollout` spec and status types.
//!
//! Field docs (`///`) become the CRD's descriptions, which `kubectl explain`
//! shows: write them for the user of the resource.

use std::{borrow::Cow, collections::BTreeMap, fmt, sync::Arc};

use k8s_openapi::{
    api::apps::v1::StatefulSetSpec,
    apimachinery::pkg::{
        apis::meta::v1::{Condition, MicroTime, Time},
        util::intstr::IntOrString,
    },
};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Desired state of a StatefulSet rollout: the StatefulSet to run and how far and how fast to roll it.
///
/// Every field of the reference system (Slack's Bedrock rollout operator) is accepted under the same
/// name; the fields after `serviceDiscovery` are sroll's additions and are all optional.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sroll.io",
    version = "v1alpha1",
    kind = "StatefulsetRollout",
    plural = "statefulsetrollouts",
    singular = "statefulsetrollout",
    shortname = "sroll",
    category = "sroll",
    namespaced,
    status = "StatefulsetRolloutStatus",
    derive = "PartialEq",
    doc = "StatefulsetRollout rolls a StatefulSet out to a new version: percent-based, pausable, paced, bounded by the PodDisruptionBudget, and leak-proof.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Where the rollout is in its lifecycle"),
    printcolumn(name = "Percent", type_ = "integer", json_path = ".spec.percent", description = "Target percentage of pods on the new version"),
    printcolumn(name = "Deployed", type_ = "integer", json_path = ".status.percentDeployed", description = "Percentage of pods running the new version"),
    printcolumn(name = "Updated", type_ = "integer", json_path = ".status.updatedReplicas", description = "Pods running the new version"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.sts.spec.replicas", description = "Desired replicas of the StatefulSet"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas", description = "Pods Ready in Kubernetes"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.reason", priority = "1", description = "Why the rollout is in its phase"),
    validation = Rule::new("self.metadata.name.size() <= 63").message("metadata.name must be at most 63 characters: it names the StatefulSet's pods' controller"),
)]
#[serde(rename_all = "camelCase")]
pub struct StatefulsetRolloutSpec {
    /// The desired StatefulSet, whole (apiVersion, kind, metadata, spec). The operator creates it if it
    /// does not exist and applies it otherwise. The operator owns `spec.updateStrategy`: it is driven from
    /// `strategy` below, whatever is written here.
    #[x_kube(validation = Rule::new("!has(self.kind) || self.kind == 'StatefulSet'").message("sts.kind must be StatefulSet"))]
    #[x_kube(validation = Rule::new("!has(self.apiVersion) || self.apiVersion == 'apps/v1'").message("sts.apiVersion must be apps/v1"))]
    #[x_kube(validation = Rule::new(
        "!has(self.spec.selector.matchLabels) || (has(self.spec.template.metadata) && has(self.spec.template.metadata.labels) && self.spec.selector.matchLabels.all(k, k in self.spec.template.metadata.labels && self.spec.template.metadata.labels[k] == self.spec.selector.matchLabels[k]))"
    ).message("sts.spec.selector.matchLabels must match sts.spec.template.metadata.labels").field_path(".spec.selector"))]
    pub sts: EmbeddedStatefulSet,

    /// Percentage of the StatefulSet's pods that must run the new version: the target number of
    /// updated pods is ceil(replicas × percent / 100), so any percent above 0 moves at least one pod.
    /// 100 rolls every pod. Raising it continues the rollout; lowering it never moves updated pods
    /// back (that is a rollback: apply the previous `sts`). Default 100.
    #[serde(default = "default_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: i32,

    /// `true` pauses an ongoing rollout: no new eviction from the next reconcile on. `false` or unset
    /// resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_requested: Option<bool>,

    /// Minimum time, in seconds, between two pod evictions (pacing). Kept across operator restarts.
    /// A rollback to the revision the pods ran just before skips this pacing. Default 0 (no pacing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub min_pod_eviction_interval_seconds: Option<i64>,

    /// Random string identifying one rollout request. Changing it retries a rollout that failed (for
    /// example for a transient reason); the same identity never re-runs a finished rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub rollout_identity: Option<String>,

    /// Slack channel (name like `#deploys` or id like `C0123456789`) that receives the rollout's
    /// notifications. Unset: no Slack notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80))]
    pub channel: Option<String>,

    /// Release-system callback: called once when the rollout is done or has failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bapi: Option<Bapi>,

    /// Service-discovery registration used to gate the rollout on the service's health: a pod counts
    /// as done only when it is Ready in Kubernetes and healthy in service discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_discovery: Option<ServiceDiscovery>,

    /// How the StatefulSet is driven. `Partitioned` (default, leak-proof): `RollingUpdate` with a
    /// partition the operator lowers as the rollout advances, so a pod that dies comes back at the
    /// version the rollout chose for it. `OnDelete`: the reference system's mode; a pod that dies for
    /// another reason comes back at the new version (the "version leak").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RolloutStrategy>,

    /// Caps how many pods the rollout takes down at once, as a number or a percentage of replicas
    /// (rounded up, at least 1). The PodDisruptionBudget selecting the pods bounds it further at run
    /// time. Unset: the budget alone decides (one pod at a time when no budget selects the pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_percent_schema")]
    pub max_unavailable: Option<IntOrString>,

    /// Seconds without progress (no pod becoming Ready at the new version) after which the rollout
    /// fails with `RolloutFailed`, naming the pods that did not become Ready. Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604800))]
    pub progress_deadline_seconds: Option<i32>,

    /// Notification settings: Slack verbosity and generic webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,

    /// Adopt an existing StatefulSet of the same name that this rollout does not own. Without it, such
    /// a StatefulSet is left untouched and the rollout reports `SpecValid=False` with reason
    /// `StatefulSetNotOwned`. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt_existing: Option<bool>,

    /// When the new `sts` changes an immutable StatefulSet field (`selector`, `serviceName`,
    /// `volumeClaimTemplates`, `podManagementPolicy`), delete the StatefulSet with orphaned pods and
    /// create it anew (pods are then adopted and rolled). Without it, the rollout reports
    /// `SpecValid=False` naming the field and applies nothing. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreate_on_immutable_change: Option<bool>,

    /// Analysis of the service's own metrics (Prometheus, HTTP) after each `analysis` step, or,
    /// without `steps`, while the rollout progresses and once it reaches `percent`. A failed
    /// analysis aborts the rollout (`RolloutAborted`) and, by default, rolls the updated pods back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::RolloutAnalysis>,

    /// Ordered steps of the release, e.g. `[{percent: 10}, {analysis: {}}, {pause: {duration: 5m}},
    /// {percent: 50}, {analysis: {}}]`. Each step holds until it is done; `percent` then caps them
    /// all. Unset: one step to `percent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub steps: Vec<crate::analysis::RolloutStep>,
    /// How a pod moves to a new revision (OpenKruise's names). `ReCreate` (default): the pod is
    /// evicted and the StatefulSet controller creates it anew. `InPlaceIfPossible`: when the new
    /// revision differs from the pod's only in container and init-container images and template
    /// labels/annotations, the pod is patched in place (the kubelet restarts only the changed
    /// containers; uid, node, IP and volumes stay), otherwise it is recreated. `InPlaceOnly`: as
    /// `InPlaceIfPossible`, but a change that cannot be made in place blocks the rollout with a
    /// condition naming the field. With an in-place policy the StatefulSet's pod template carries
    /// the readiness gate `InPlaceUpdateReady` (adding it is a template change: the first rollout
    /// after switching the policy recreates the pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_update_policy: Option<PodUpdatePolicy>,

    /// Settings of in-place updates (used when `podUpdatePolicy` is `InPlaceIfPossible` or
    /// `InPlaceOnly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update_strategy: Option<InPlaceUpdateStrategy>,

    /// `true` pins every pod the StatefulSet controller creates to the revision the rollout assigns
    /// to its ordinal, through sroll's admission webhook (`docs/webhook.md`): a pod that dies comes
    /// back at its own revision unless the rollout chose to move it, under both strategies (no
    /// `OnDelete` leak, no drift with three revisions in flight). The pod template then carries the
    /// label `sroll.io/revision-pinning: "true"` (switching pinning on or off is a template change),
    /// and those pods are refused while the webhook is down (`failurePolicy: Fail`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_pinning: Option<bool>,
}

/// Settings of in-place updates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceUpdateStrategy {
    /// Seconds a pod is kept out of traffic (`InPlaceUpdateReady=False`, so not Ready and out of
    /// every EndpointSlice) before its images change, to let connections drain. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub grace_period_seconds: Option<i32>,
}

fn default_percent() -> i32 {
    crate::defaults::PERCENT
}

fn int_or_percent_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "x-kubernetes-validations": [{
            "rule": "type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",
            "message": "must be a number of pods (at least 1) or a percentage from 1% to 100%, such as \"10%\""
        }],
        "description": "A number of pods (at least 1) or a percentage of replicas such as \"10%\" (1% to 100%)."
    })
}

/// The StatefulSet embedded in a rollout: an ordinary `apps/v1` StatefulSet without status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedStatefulSet {
    /// `apps/v1` (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `StatefulSet` (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name, labels and annotations of the StatefulSet. The name defaults to the rollout's name; the
    /// namespace is always the rollout's.
    #[serde(default)]
    pub metadata: EmbeddedMetadata,
    /// The StatefulSet spec, as for `kubectl apply` of a StatefulSet. Its fields are documented by
    /// `kubectl explain statefulset.spec` (their descriptions are left out of this CRD to keep it
    /// small enough for client-side `kubectl apply`).
    #[schemars(schema_with = "statefulset_spec_schema")]
    pub spec: StatefulSetSpec,
}

/// The full, validating schema of `StatefulSetSpec` without its field descriptions: with them the
/// CRD is over 600 kB, past the 256 kB `last-applied-configuration` limit of client-side apply.
fn statefulset_spec_schema(generator: &mut SchemaGenerator) -> Schema {
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
    let mut value = generator.subschema_for::<StatefulSetSpec>().to_value();
    strip_descriptions(&mut value);
    let mut schema = Schema::try_from(value).unwrap_or_default();
    schema.insert(
        "description".into(),
        "A StatefulSet spec; see `kubectl explain statefulset.spec`.".into(),
    );
    schema
}

/// The metadata a rollout may set on the StatefulSet it manages.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedMetadata {
    /// Name of the StatefulSet; defaults to the rollout's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: Option<String>,
    /// Ignored if set: the StatefulSet always lives in the rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels of the StatefulSet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the StatefulSet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Where to report the rollout's outcome in the release system.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bapi {
    /// Callback URL (http or https). The operator only calls hosts allowed by its `--callback-allow`
    /// setting.
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/?#]+[^\s]*$")
    )]
    pub url: String,
    /// The release stage this rollout belongs to; sent back in the callback. One callback is sent per
    /// stage id and outcome.
    #[schemars(length(min = 1, max = 253))]
    pub stage_id: String,
}

/// The service-discovery registration of the workload, used as a health gate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDiscovery {
    /// Consul datacenter to query. Unset: the agent's own datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc: Option<String>,
    /// Names of the services the pods register as (Consul service names, or Kubernetes Service names
    /// with `provider: Kubernetes`).
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub services: Vec<String>,
    /// Where health is read: `Consul` (default; the reference system's behaviour) or `Kubernetes`
    /// (the ready endpoints of the named Services' EndpointSlices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<DiscoveryProvider>,
    /// Seconds a new pod may stay unhealthy in service discovery before the rollout fails. Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub health_timeout_seconds: Option<i32>,
    /// Secret (in the rollout's namespace) holding the Consul ACL token. Unset: no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_token_secret_ref: Option<SecretKeyRef>,
}

/// A key of a Secret in the rollout's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Notification settings of a rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// Verbosity of Slack notifications: `info` (default) updates the message on start, pause,
    /// resume, completion and failure; `debug` also on every batch of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<NotificationLevel>,
    /// Generic JSON webhooks, for teams not on Slack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub webhooks: Vec<Webhook>,
}

/// One generic webhook receiver.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Receiver URL (http or https); its host must be allowed by the operator's `--callback-allow`.
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/?#]+[^\s]*$")
    )]
    pub url: String,
    /// Triggers to send. Empty: every trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<WebhookTrigger>,
    /// Secret whose value is sent as `Authorization: Bearer <value>`. Unset: no header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretKeyRef>,
}

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        ///
        /// Forward compatible: a value this version does not know is kept as `Unknown` with its text.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value written by a newer version, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// Every value this version knows, in declaration order.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            /// The wire text of the value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Unknown(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $text => Self::$variant, )+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = Cow::<'de, str>::deserialize(d)?;
                Ok(Self::from(s.as_ref()))
            }
        }
    };
}

/// Generates a JsonSchema for a string enum: spec enums are closed (`enum:` in the schema, so a typo
/// is rejected by the API server); status enums are open (plain string, listing values in the doc).
macro_rules! enum_schema {
    ($name:ident, closed, $desc:literal) => {
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "enum": $name::KNOWN, "description": $desc })
            }
        }
    };
    ($name:ident, open, $desc:literal) => {
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "description": $desc })
            }
        }
    };
}

string_enum! {
    /// How the operator drives the managed StatefulSet.
    RolloutStrategy {
        /// `RollingUpdate` + `partition` moved by the operator: leak-proof (default).
        Partitioned = "Partitioned",
        /// `OnDelete`: the reference system's mode; pods that die come back at the new version.
        OnDelete = "OnDelete",
    }
}
enum_schema!(
    RolloutStrategy,
    closed,
    "Partitioned (default, leak-proof) or OnDelete (the reference system's mode)."
);

// Not derivable: the enum is generated by `string_enum!`, which cannot carry `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for RolloutStrategy {
    fn default() -> Self {
        Self::Partitioned
    }
}

string_enum! {
    /// How a pod moves to a new revision.
    PodUpdatePolicy {
        /// Evict the pod; the StatefulSet controller recreates it (default).
        ReCreate = "ReCreate",
        /// In place when only images and template labels/annotations change, else recreate.
        InPlaceIfPossible = "InPlaceIfPossible",
        /// In place only; any other change blocks the rollout with a condition naming the field.
        InPlaceOnly = "InPlaceOnly",
    }
}
enum_schema!(
    PodUpdatePolicy,
    closed,
    "ReCreate (default): evict and recreate the pod; InPlaceIfPossible: patch the images in place when only images and template labels/annotations change, else recreate; InPlaceOnly: in place, or block the rollout naming the field that prevents it."
);

// Not derivable: the enum is generated by `string_enum!`, which cannot carry `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for PodUpdatePolicy {
    fn default() -> Self {
        Self::ReCreate
    }
}

string_enum! {
    /// Where service-discovery health is read.
    DiscoveryProvider {
        /// Consul's health API.
        Consul = "Consul",
        /// The ready endpoints of Kubernetes EndpointSlices.
        Kubernetes = "Kubernetes",
    }
}
enum_schema!(
    DiscoveryProvider,
    closed,
    "Consul (default) or Kubernetes (EndpointSlices)."
);

string_enum! {
    /// Verbosity of Slack notifications.
    NotificationLevel {
        /// Start, pause, resume, completion and failure.
        Info = "info",
        /// Also every batch of pods.
        Debug = "debug",
    }
}
enum_schema!(
    NotificationLevel,
    closed,
    "info (default): start, pause, resume, completion, failure; debug: also every batch."
);

string_enum! {
    /// Webhook triggers, named as in Argo Rollouts' notifications.
    WebhookTrigger {
        /// A rollout started moving pods.
        Started = "on-rollout-started",
        /// A batch of pods became Ready at the new version.
        StepCompleted = "on-rollout-step-completed",
        /// The rollout was paused.
        Paused = "on-rollout-paused",
        /// The rollout was resumed.
        Resumed = "on-rollout-resumed",
        /// The rollout reached its target.
        Completed = "on-rollout-completed",
        /// The rollout failed.
        Failed = "on-rollout-failed",
        /// The rollout is going back to the previous revision.
        Rollback = "on-rollout-rollback",
        /// An analysis failed or erred: the rollout aborted (`RolloutAborted`).
        Aborted = "on-rollout-aborted",
    }
}
enum_schema!(
    WebhookTrigger,
    closed,
    "on-rollout-started, on-rollout-step-completed, on-rollout-paused, on-rollout-resumed, on-rollout-completed, on-rollout-failed, on-rollout-rollback or on-rollout-aborted."
);

string_enum! {
    /// High-level summary of where a rollout is in its lifecycle.
    Phase {
        /// Accepted; the StatefulSet is being created or updated.
        Pending = "RolloutPending",
        /// Pods are being moved to the new version.
        InProgress = "RolloutInProgress",
        /// Paused by `spec.pauseRequested`.
        Paused = "RolloutPaused",
        /// Cannot proceed until the spec or the cluster changes; `reason` says why.
        Blocked = "RolloutBlocked",
        /// `percent` of the pods run the new version and are Ready (terminal).
        Done = "RolloutDone",
        /// No progress within the deadline, or discovery health timed out (terminal).
        Failed = "RolloutFailed",
        /// An analysis failed or erred: the rollout stopped (and, with `abortPolicy: Rollback`,
        /// returned its updated pods to the previous revision) until the spec or
        /// `rolloutIdentity` changes.
        Aborted = "RolloutAborted",
    }
}
enum_schema!(
    Phase,
    open,
    "RolloutPending, RolloutInProgress, RolloutPaused, RolloutBlocked, RolloutDone (terminal), RolloutFailed (terminal) or RolloutAborted (an analysis failed). Clients must accept values added later."
);

impl Phase {
    /// Terminal phases stop the reconcile loop's self-requeues until the spec changes.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// Observed state of a rollout, written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatefulsetRolloutStatus {
    /// Where the rollout is in its lifecycle: RolloutPending, RolloutInProgress, RolloutPaused,
    /// RolloutBlocked, RolloutDone or RolloutFailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Percentage of the pods running the new version; equals `spec.percent` at the end of a rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_deployed: Option<i32>,
    /// Human-readable explanation of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Pods Ready in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Pods healthy in service discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas_service_discovery: Option<i32>,
    /// The rollout is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// The managed StatefulSet was found deleted (it is then recreated from the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// The pods of the managed StatefulSet, with the revision each runs.
    #[serde(default, skip_serializing_if = "PodVersions::is_empty")]
    pub pods: PodVersions,
    /// When the operator plans to look at this rollout again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_after: Option<Time>,
    /// When this status was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<Time>,
    /// Stage id of the last release callback delivered (no duplicate callbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_callback_stage_id: Option<String>,
    /// Outcome (`RolloutDone`, `RolloutFailed` or `RolloutAborted`) of the last release callback
    /// delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_callback_outcome: Option<String>,
    /// Build metadata (branch, commit), from the rollout's annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_metadata: Option<BuildMetadata>,
    /// Ids of the Slack message(s) of this rollout, so they are updated rather than posted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_message: Option<SlackMessage>,
    /// Which `serviceDiscovery` services exist in service discovery (empty if none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consul_services: Vec<String>,
    /// Name of the managed StatefulSet; empty if none matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statefulset_name: Option<String>,
    /// True when the live StatefulSet spec equals the one in this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statefulset_spec_current: Option<bool>,
    /// The `spec.rolloutIdentity` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_identity: Option<String>,

    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The StatefulSet revision (ControllerRevision name) pods are rolled away from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// The StatefulSet revision (ControllerRevision name) pods are rolled to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// The revision the pods ran before the current rollout (a rollback to it is not paced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    /// Desired replicas of the managed StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods running the update revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Pods that must run the update revision for this rollout to be done: ceil(replicas × percent / 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_updated_replicas: Option<i32>,
    /// When the operator last evicted a pod (pacing survives restarts). A `MicroTime`
    /// (RFC 3339 with microseconds), as a Lease's `renewTime`: a whole-second `Time` would let the
    /// next eviction come up to a second before `minPodEvictionIntervalSeconds` has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_eviction_time: Option<MicroTime>,
    /// When the rollout last made progress (a pod became Ready at the update revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_time: Option<Time>,
    /// Latest observations of the rollout's state, per Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The current step of `spec.steps` and the measurements of the current analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::AnalysisStatus>,
    /// Names of the pods being updated in place right now (out of traffic, waiting for the grace
    /// period, or restarting their containers), highest ordinal first. Absent when none is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_place_updating: Vec<String>,
}

/// `status.pods`: one entry per pod of the set, in a shared list. A status is cloned several times
/// per reconcile (the operator's memo of what it wrote, the settled plan, the view it plans from),
/// and at 1,000 pods copying this list was most of that cost; sharing it makes a clone O(1). It
/// reads as a slice (`Deref`), is built from a `Vec` (`From`), and is (de)serialized and described
/// in the CRD's schema exactly as a `Vec<PodVersion>` (a JSON array).
#[derive(Clone, Debug, Default, Eq)]
pub struct PodVersions(std::sync::Arc<Vec<PodVersion>>);

impl PodVersions {
    /// Whether the list has no entries (the field is then left out of the JSON).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `self` and `other` are the same shared list (not only equal ones).
    pub fn same_list(&self, other: &PodVersions) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }

    /// The entries, copied only if the list is shared.
    pub fn into_vec(self) -> Vec<PodVersion> {
        std::sync::Arc::unwrap_or_clone(self.0)
    }

    /// The list to change, copied first if it is shared.
    pub fn make_mut(&mut self) -> &mut Vec<PodVersion> {
        std::sync::Arc::make_mut(&mut self.0)
    }
}

impl PartialEq for PodVersions {
    fn eq(&self, other: &PodVersions) -> bool {
        self.same_list(other) || self.0 == other.0
    }
}

impl std::ops::Deref for PodVersions {
    type Target = [PodVersion];

    fn deref(&self) -> &[PodVersion] {
        &self.0
    }
}

impl From<Vec<PodVersion>> for PodVersions {
    fn from(pods: Vec<PodVersion>) -> Self {
        PodVersions(std::sync::Arc::new(pods))
    }
}

impl FromIterator<PodVersion> for PodVersions {
    fn from_iter<I: IntoIterator<Item = PodVersion>>(iter: I) -> Self {
        PodVersions::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a PodVersions {
    type Item = &'a PodVersion;
    type IntoIter = std::slice::Iter<'a, PodVersion>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for PodVersions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PodVersions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<PodVersion>::deserialize(deserializer).map(PodVersions::from)
    }
}

impl JsonSchema for PodVersions {
    fn inline_schema() -> bool {
        <Vec<PodVersion> as JsonSchema>::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        <Vec<PodVersion> as JsonSchema>::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        <Vec<PodVersion> as JsonSchema>::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <Vec<PodVersion> as JsonSchema>::json_schema(generator)
    }
}

// The strings are shared (`Arc<str>`, (de)serialized as plain strings and described in the schema
// as the `String`s they were): the operator builds the list from its pod index's views and shares
// their name and revision instead of copying them for every status it writes. (Not a doc comment:
// the struct's doc is its description in the CRD.)
/// One pod of the managed StatefulSet and the revision it runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodVersion {
    /// Pod name.
    #[serde(with = "shared_str")]
    #[schemars(with = "String")]
    pub name: Arc<str>,
    /// The pod's `controller-revision-hash` label (its StatefulSet revision).
    #[serde(default, skip_serializing_if = "str_is_empty", with = "shared_str")]
    #[schemars(with = "String")]
    pub revision: Arc<str>,
    /// The pod is Ready.
    #[serde(default)]
    pub ready: bool,
}

fn str_is_empty(s: &Arc<str>) -> bool {
    s.is_empty()
}

/// An `Arc<str>` as a plain JSON string (serde's own impls for `Arc` need its `rc` feature, which
/// would rebuild every crate depending on serde).
mod shared_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(deserializer).map(Arc::from)
    }
}

/// Build metadata of the release, from the rollout's annotations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    /// Source branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Source commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Where the rollout's Slack messages live.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackMessage {
    /// Channel id the messages were posted to.
    pub channel: String,
    /// Message timestamps (Slack's message ids), one per page of at most 50 pods, in order.
    #[serde(default)]
    pub ts: Vec<String>,
    /// The rollout identity the messages describe (a new identity starts new messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_identity: Option<String>,
}

impl StatefulsetRolloutSpec {
    /// The effective strategy (`Partitioned` when unset).
    pub fn strategy(&self) -> RolloutStrategy {
        self.strategy.clone().unwrap_or_default()
    }

    /// The effective `progressDeadlineSeconds`.
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds
            .unwrap_or(crate::defaults::PROGRESS_DEADLINE_SECONDS)
    }

    /// The effective `minPodEvictionIntervalSeconds`.
    pub fn min_pod_eviction_interval_seconds(&self) -> i64 {
        self.min_pod_eviction_interval_seconds
            .unwrap_or(crate::defaults::MIN_POD_EVICTION_INTERVAL_SECONDS)
    }

    /// The effective `podUpdatePolicy` (`ReCreate` when unset).
    pub fn pod_update_policy(&self) -> PodUpdatePolicy {
        self.pod_update_policy.clone().unwrap_or_default()
    }

    /// Revision pinning is on (`spec.revisionPinning: true`).
    pub fn revision_pinning(&self) -> bool {
        self.revision_pinning == Some(true)
    }

    /// The policy allows in-place updates (`InPlaceIfPossible` or `InPlaceOnly`).
    pub fn in_place_allowed(&self) -> bool {
        matches!(
            self.pod_update_policy(),
            PodUpdatePolicy::InPlaceIfPossible | PodUpdatePolicy::InPlaceOnly
        )
    }

    /// The effective `inPlaceUpdateStrategy.gracePeriodSeconds` (0 when unset).
    pub fn in_place_grace_period_seconds(&self) -> i64 {
        i64::from(
            self.in_place_update_strategy
                .as_ref()
                .and_then(|s| s.grace_period_seconds)
                .unwrap_or(crate::defaults::IN_PLACE_GRACE_PERIOD_SECONDS)
                .max(0),
        )
    }

    /// `pauseRequested` as a plain bool.
    pub fn paused(&self) -> bool {
        self.pause_requested.unwrap_or(false)
    }

    /// The effective Slack notification level.
    pub fn notification_level(&self) -> NotificationLevel {
        self.notifications
            .as_ref()
            .and_then(|n| n.level.clone())
            .unwrap_or(NotificationLevel::Info)
    }

    /// Desired replicas of the embedded StatefulSet (Kubernetes defaults an absent value to 1).
    pub fn replicas(&self) -> i32 {
        self.sts.spec.replicas.unwrap_or(1)
    }

    /// The labels of the pods the StatefulSet creates (`sts.spec.template.metadata.labels`;
    /// empty when unset).
    pub fn template_labels(&self) -> BTreeMap<String, String> {
        self.sts
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }

    /// The number of pods that must run the new revision:
    /// `ceil(replicas × percent / 100)`, so any percent above 0 moves at least one pod.
    pub fn target_updated_replicas(&self) -> i32 {
        target_updated_replicas(self.replicas(), self.percent)
    }
}

/// `ceil(replicas × percent / 100)`, with `percent` clamped to 0..=100 and `replicas` to ≥ 0.
pub fn target_updated_replicas(replicas: i32, percent: i32) -> i32 {
    let replicas = i64::from(replicas.max(0));
    let percent = i64::from(percent.clamp(0, 100));
    // ceil(a / b) for non-negative integers; the result is ≤ replicas, so it fits in i32.
    i32::try_from((replicas * percent + 99) / 100).unwrap_or(i32::MAX)
}

impl StatefulsetRollout {
    /// Name of the managed StatefulSet: `spec.sts.metadata.name`, else the rollout's name.
    pub fn statefulset_name(&self) -> String {
        self.spec
            .sts
            .metadata
            .name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }

    /// Build metadata from the rollout's annotations, if any is present.
    pub fn build_metadata(&self) -> Option<BuildMetadata> {
        let ann = self.metadata.annotations.as_ref()?;
        let branch = ann.get(crate::ANNOTATION_BUILD_BRANCH).cloned();
        let commit = ann.get(crate::ANNOTATION_BUILD_COMMIT).cloned();
        (branch.is_some() || commit.is_some()).then_some(BuildMetadata { branch, commit })
    }
}
