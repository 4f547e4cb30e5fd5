//! The operator's one error type. Every variant has a stable [`Error::metric_label`] used as the
//! `reason` label of `sroll_reconcile_errors_total` and in Warning events, and a
//! [`Error::is_transient`] verdict the controller's `error_policy` acts on.

use std::time::Duration;

/// Everything that can go wrong while starting or running the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("failed to load the Kubernetes client configuration: {0}")]
    Config(String),

    /// The Kubernetes client could not be built from the configuration.
    #[error("failed to build the Kubernetes client")]
    Client(#[source] kube::Error),

    /// The `StatefulsetRollout` CRD is not served by the cluster.
    #[error("the StatefulsetRollout CRD is not installed: run `sroll crd | kubectl apply -f -`")]
    CrdMissing,

    /// RBAC forbids a verb the operator needs.
    #[error(
        "the operator is not allowed to {verb} {resource}{scope}: grant it in the operator's (Cluster)Role"
    )]
    Forbidden {
        /// The forbidden verb (`list`, `patch`, `create`, …).
        verb: String,
        /// `resource[/subresource].group`, e.g. `pods/eviction`.
        resource: String,
        /// ` in namespace X` or empty for all namespaces.
        scope: String,
    },

    /// A start-up check could not talk to the API server.
    #[error("failed to run the start-up check {check}")]
    Preflight {
        /// Which check.
        check: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// The metrics/health server could not bind or serve.
    #[error("failed to serve metrics and health endpoints on {addr}")]
    Server {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Reading or writing the leader-election Lease failed.
    #[error("failed to {action} the leader-election lease {namespace}/{name}")]
    Lease {
        /// `get`, `create`, `renew`, `release`.
        action: &'static str,
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// The admission webhook server could not read or write its Secret or configurations.
    #[error("failed to {action} for the admission webhooks")]
    Webhook {
        /// What was being done (`read the certificate Secret`, `update sroll-mutating-webhooks`).
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// This replica lost the lease while leading; it stops acting at once.
    #[error("failed to keep leadership: the lease was not renewed within {0:?}")]
    LeadershipLost(Duration),

    /// The rollout has no namespace or name (cannot happen for objects from the API server).
    #[error("failed to identify the rollout: {0}")]
    InvalidObject(String),

    /// Building a patch body failed.
    #[error("failed to serialize {what}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// Creating or updating the StatefulSet (server-side apply) failed.
    #[error("failed to apply StatefulSet {name}")]
    ApplyStatefulSet {
        /// StatefulSet name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// The watch caches did not finish their initial list in time.
    #[error("failed to sync the watch caches within {0:?}")]
    CacheNotReady(Duration),

    /// Deleting the StatefulSet (orphaning its pods) failed.
    #[error("failed to delete StatefulSet {name} with orphaned pods")]
    DeleteStatefulSet {
        /// StatefulSet name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// Patching `status.currentRevision` of the StatefulSet failed.
    #[error("failed to set currentRevision of StatefulSet {name}")]
    PatchStatefulSetStatus {
        /// StatefulSet name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// An eviction failed for a reason other than back-pressure (429).
    #[error("failed to evict pod {pod}")]
    Evict {
        /// Pod name.
        pod: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// A write of an in-place update (a pod or pods/status update) failed.
    #[error("failed to write {op} on pod {pod} (in-place update)")]
    InPlaceWrite {
        /// Pod name.
        pod: String,
        /// The write (`TakeOutOfTraffic`, `PatchImages`, `MarkReady`).
        op: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// Deleting a broken pod failed.
    #[error("failed to delete pod {pod}")]
    DeletePod {
        /// Pod name.
        pod: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// A write of the CloneSet controller failed.
    #[error("CloneSet {name}: failed to write {what}")]
    CloneSetWrite {
        /// CloneSet name.
        name: String,
        /// What was written (`create pod`, `status`, …).
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// A write of the SidecarSet controller failed.
    #[error("SidecarSet {name}: failed to write {what}")]
    SidecarSetWrite {
        /// SidecarSet name.
        name: String,
        /// What was written (`status`, `pod condition`, …).
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },

    /// Writing the rollout's status failed.
    #[error("failed to write the status of rollout {name}")]
    PatchStatus {
        /// Rollout name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// `Result` with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short, stable label for metrics and events (`snake_case`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Client(_) => "client",
            Self::CrdMissing => "crd_missing",
            Self::Forbidden { .. } => "forbidden",
            Self::Preflight { .. } => "preflight",
            Self::Server { .. } => "server",
            Self::Lease { .. } => "lease",
            Self::Webhook { .. } => "webhook",
            Self::LeadershipLost(_) => "leadership_lost",
            Self::InvalidObject(_) => "invalid_object",
            Self::Serialize { .. } => "serialize",
            Self::ApplyStatefulSet { .. } => "apply_statefulset",
            Self::CacheNotReady(_) => "cache_not_ready",
            Self::DeleteStatefulSet { .. } => "delete_statefulset",
            Self::PatchStatefulSetStatus { .. } => "patch_statefulset_status",
            Self::Evict { .. } => "evict",
            Self::InPlaceWrite { .. } => "in_place_write",
            Self::DeletePod { .. } => "delete_pod",
            Self::PatchStatus { .. } => "patch_status",
            Self::CloneSetWrite { .. } => "cloneset_write",
            Self::SidecarSetWrite { .. } => "sidecarset_write",
        }
    }

    /// Whether retrying later can help. An invalid object (or a request the API server rejects as
    /// invalid) waits for the object to change instead of being retried in a loop.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::InvalidObject(_) | Self::Serialize { .. } => false,
            Self::ApplyStatefulSet { source, .. } | Self::PatchStatus { source, .. } => {
                !is_invalid(source)
            }
            _ => true,
        }
    }
}

/// The API server rejected the request as invalid (422) or malformed (400): the same request will
/// be rejected again until the object changes.
pub(crate) fn is_invalid(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 422 || status.code == 400)
}

/// The status code of an API error, if it is one.
pub(crate) fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
