//! The `StatefulsetRollout` API (`sroll.io/v1alpha1`, short name `sroll`).
//!
//! ```text
//!  user / release system ──▶ StatefulsetRollout (this crate: types, defaults, validation, CRD)
//!                                   │
//!                    sroll-planner ─┤ decides one action per reconcile from an observed snapshot
//!                   sroll-operator ─┘ observes the cluster and executes the plan
//! ```
//!
//! The spec carries every field of the reference system (Slack's Bedrock rollout
//! operator) under the same JSON names, so a resource written for it is accepted
//! as is, plus the optional fields our design needs, each with a documented
//! default. The CRD YAML is generated from these types ([`crd::crd_yaml`]) and
//! committed under `deploy/crds/`; a test fails when the two drift.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod clone_set;
pub mod crd;
pub mod intstr;
pub mod labels;
pub mod predicates;
pub mod sidecar_set;
pub mod sync;
mod types;
pub mod validate;

pub use types::*;

/// API group of every sroll resource.
pub const GROUP: &str = "sroll.io";
/// Served and stored version of the `StatefulsetRollout` kind.
pub const VERSION: &str = "v1alpha1";
/// The field manager sroll uses for server-side apply and status writes.
pub const FIELD_MANAGER: &str = "sroll-operator";
/// Finalizer the operator may put on rollouts it manages.
pub const FINALIZER: &str = "statefulsetrollouts.sroll.io/finalizer";

/// Annotation carrying the build branch (the reference system's build metadata).
pub const ANNOTATION_BUILD_BRANCH: &str = "sroll.io/build-branch";
/// Annotation carrying the build commit (the reference system's build metadata).
pub const ANNOTATION_BUILD_COMMIT: &str = "sroll.io/build-commit";

/// Defaults of the optional spec fields, in one place so docs, schema and code agree.
pub mod defaults {
    /// `spec.percent` when omitted: roll every pod.
    pub const PERCENT: i32 = 100;
    /// `spec.progressDeadlineSeconds` when omitted.
    pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;
    /// `spec.minPodEvictionIntervalSeconds` when omitted: no pacing.
    pub const MIN_POD_EVICTION_INTERVAL_SECONDS: i64 = 0;
    /// `spec.serviceDiscovery.healthTimeoutSeconds` when omitted.
    pub const DISCOVERY_HEALTH_TIMEOUT_SECONDS: i32 = 600;
    /// `spec.inPlaceUpdateStrategy.gracePeriodSeconds` when omitted: the images change as soon as
    /// the pod is out of traffic.
    pub const IN_PLACE_GRACE_PERIOD_SECONDS: i32 = 0;
}

/// Condition types written to `status.conditions` (PascalCase, per API conventions).
pub mod condition_types {
    /// The rollout is moving pods (or has finished moving them).
    pub const PROGRESSING: &str = "Progressing";
    /// The rollout is paused by `spec.pauseRequested`.
    pub const PAUSED: &str = "Paused";
    /// Enough pods of the managed StatefulSet are Ready to serve.
    pub const AVAILABLE: &str = "Available";
    /// The rollout reached `spec.percent` and every target pod is Ready.
    pub const READY: &str = "Ready";
    /// The spec cannot be acted on as written (invalid, immutable field change, not owned, …).
    pub const SPEC_VALID: &str = "SpecValid";
    /// Something slows the rollout down (no PDB, OrderedReady pods, discovery unreachable, …).
    pub const DEGRADED: &str = "Degraded";
    /// Notifications (Slack, webhooks) are being delivered.
    pub const NOTIFICATIONS_DELIVERED: &str = "NotificationsDelivered";
    /// The release callback (`spec.bapi`) was delivered.
    pub const CALLBACK_DELIVERED: &str = "CallbackDelivered";
}

#[cfg(test)]
mod tests {
    use kube::Resource;

    use super::*;

    /// The derive needs literals; these constants are what the rest of sroll reads.
    #[test]
    fn group_and_version_constants_are_the_derived_resources() {
        assert_eq!(StatefulsetRollout::group(&()), GROUP);
        assert_eq!(StatefulsetRollout::version(&()), VERSION);
        assert_eq!(StatefulsetRollout::plural(&()), "statefulsetrollouts");
    }
}
