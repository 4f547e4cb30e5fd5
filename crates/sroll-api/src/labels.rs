//! Well-known label keys sroll reads on objects Kubernetes manages.
//!
//! These are Kubernetes' names, not sroll's: each constant says which upstream constant it mirrors.
//! Every sroll crate reads them from here, so a key is spelt once.

/// The label the StatefulSet controller puts on every pod with the name of the
/// ControllerRevision the pod was created from: its revision (upstream
/// `apps/v1.ControllerRevisionHashLabelKey`). The operator watches pods by this label and
/// compares it with `status.updateRevision` / `status.currentRevision` of the StatefulSet.
pub const REVISION: &str = "controller-revision-hash";

/// The label the StatefulSet controller sets to the pod's own name (upstream
/// `apps/v1.StatefulSetPodNameLabel`).
pub const POD_NAME: &str = "statefulset.kubernetes.io/pod-name";

/// The label the StatefulSet controller sets to the pod's ordinal (upstream
/// `apps/v1.PodIndexLabel`).
pub const POD_INDEX: &str = "apps.kubernetes.io/pod-index";

/// The label linking an EndpointSlice to the Service it belongs to (upstream
/// `discovery/v1.LabelServiceName`).
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
