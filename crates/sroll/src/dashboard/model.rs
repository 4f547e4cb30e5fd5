//! What the dashboard shows, computed from the watched objects: pure functions (no I/O), so the
//! classification of a pod and the shape of the JSON are table-tested without a cluster.
//!
//! The browser receives one [`Detail`] per page — a StatefulsetRollout's ([`detail`]), a
//! CloneSet's ([`clone_set_detail`]) or a SidecarSet's ([`sidecar_set_detail`]): the object's
//! status, its revisions with images, conditions, the last events, its progress history, the
//! rollout's analysis measurements ([`analysis_chart`]) and one compact [`Cell`] per pod (a
//! 1,000-pod set is about 55 kB of JSON as a first snapshot; later updates carry only the cells
//! that changed, see [`diff_cells`]). Every kind shares the grid ([`cells`]), the pod
//! classification ([`pod_state`]) and the event and condition rows; a new kind adds a [`Kind`], a
//! summary and a detail function.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1::ControllerRevision,
    core::v1::{Event, Pod},
};
use serde::Serialize;
use serde_json::Value;
use sroll_api::{
    StatefulsetRollout,
    analysis::Measurement,
    clone_set::CloneSet,
    predicates::{is_pod_ready, is_terminating},
    sidecar_set::{SidecarSet, SidecarSetUpdateType},
};
use sroll_planner::{
    inplace::PodInPlace,
    sidecar_set::{self as sidecar, HashEntry, PodSidecarView},
};

use crate::plugin::{
    actions::revision_template,
    view::{event_time, ordinal, pod_revision},
};

/// How long a running pod may stay not Ready before the dashboard calls it broken (a pod that
/// never passes its readiness probe looks like a starting one until then).
pub const BROKEN_AFTER_SECS: i64 = 30;

/// Container waiting reasons that mean the pod will not start without a change (kubelet's
/// `images.ErrImagePull`, `ErrImagePullBackOff`, `kuberuntime.ErrCrashLoopBackOff`, …).
const BROKEN_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// A pod's state as the grid draws it.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum PodState {
    /// Ready.
    Ready,
    /// Created, starting or not yet Ready (not for long).
    Updating,
    /// Being deleted (evicted or terminating).
    Terminating,
    /// In an in-place update (out of traffic by the `InPlaceUpdateReady` gate, or restarting the
    /// containers whose image changed): `sroll_planner::inplace::PodInPlace::in_progress`.
    InPlace,
    /// Failed, crash-looping, unpullable, or not Ready for [`BROKEN_AFTER_SECS`] while running.
    Broken,
    /// No pod object for this ordinal (evicted and not yet recreated).
    Missing,
    /// Running an old version of a SidecarSet's sidecars that cannot be upgraded in place (a
    /// sidecar field other than its image changed): it gets the new version when recreated.
    NotUpgradable,
}

impl PodState {
    /// The one-letter code the browser decodes.
    pub fn code(self) -> &'static str {
        match self {
            Self::Ready => "R",
            Self::Updating => "U",
            Self::Terminating => "T",
            Self::InPlace => "I",
            Self::Broken => "B",
            Self::Missing => "M",
            Self::NotUpgradable => "N",
        }
    }
}

/// Classifies a pod (terminating wins over everything; then failed or crash-looping, in place,
/// Ready, and not Ready: updating, or broken once unready for [`BROKEN_AFTER_SECS`]).
pub fn pod_state(pod: &Pod, now: Timestamp) -> (PodState, String) {
    if is_terminating(&pod.metadata) {
        return (PodState::Terminating, "terminating".into());
    }
    let status = pod.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) == Some("Failed") {
        let reason = status.and_then(|s| s.reason.clone()).unwrap_or_default();
        return (
            PodState::Broken,
            format!("pod Failed {reason}").trim().into(),
        );
    }
    for cs in status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(reason) = cs
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            && BROKEN_WAITING_REASONS.contains(&reason)
        {
            return (PodState::Broken, format!("{}: {reason}", cs.name));
        }
    }
    let in_place = PodInPlace::from_pod(pod);
    if in_place.in_progress(Some(pod_revision(pod))) {
        let why = if in_place.gate_ready == Some(false) {
            "in-place update: out of traffic (InPlaceUpdateReady False)".to_owned()
        } else {
            format!(
                "in-place update: restarting {}",
                in_place.containers_pending.join(", ")
            )
        };
        return (PodState::InPlace, why);
    }
    if is_pod_ready(pod) {
        return (PodState::Ready, "Ready".into());
    }
    // Not Ready: broken once it has been running unready for a while.
    let ready_cond = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let since = ready_cond
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let message = ready_cond
        .and_then(|c| c.message.clone().or_else(|| c.reason.clone()))
        .unwrap_or_else(|| {
            status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into())
        });
    if running && since.is_some_and(|t| now.duration_since(t).as_secs() >= BROKEN_AFTER_SECS) {
        return (PodState::Broken, format!("not Ready: {message}"));
    }
    (PodState::Updating, message)
}

/// One pod of the grid: `[key, revision index, state code, name, node, detail]` on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The pod's ordinal (a StatefulSet's pods), or its place in the grid (a CloneSet's pods,
    /// which have no ordinals: they are ordered by name).
    pub key: i64,
    /// Index into [`Detail::revisions`]; -1 when the pod's revision is unknown.
    pub revision: i64,
    /// Its state.
    pub state: PodState,
    /// Pod name.
    pub name: String,
    /// Node it runs on.
    pub node: String,
    /// Why it is in its state, for the hover card.
    pub detail: String,
}

impl Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            self.key,
            self.revision,
            self.state.code(),
            &self.name,
            &self.node,
            &self.detail,
        )
            .serialize(s)
    }
}

/// A revision of the StatefulSet or CloneSet.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// ControllerRevision name.
    pub name: String,
    /// Its number.
    pub number: i64,
    /// The images of its pod template.
    pub images: Vec<String>,
    /// `update`, `current`, `previous` or `other`: the colour the grid gives it.
    pub role: &'static str,
    /// Pods at this revision.
    pub pods: usize,
}

/// The kinds of object the dashboard shows. Each has its page (`#/PATH/NS/NAME`, or
/// `#/PATH/NAME` when cluster-scoped) and its API (`/api/API/NS/NAME`, `/api/API/NAME`); adding a
/// kind means a variant here, a summary and a detail function, a watcher, and its entry in
/// `app.js`'s `KINDS`.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `sroll.io/v1alpha1` StatefulsetRollout.
    StatefulsetRollout,
    /// `sroll.io/v1alpha1` CloneSet.
    CloneSet,
    /// `sroll.io/v1alpha1` SidecarSet (cluster-scoped).
    SidecarSet,
}

impl Kind {
    /// Every kind, for the routes.
    pub const ALL: [Kind; 3] = [Self::StatefulsetRollout, Self::CloneSet, Self::SidecarSet];

    /// The page's path segment (`#/r/…`, `#/c/…`, `#/s/…`).
    pub fn path(self) -> &'static str {
        match self {
            Self::StatefulsetRollout => "r",
            Self::CloneSet => "c",
            Self::SidecarSet => "s",
        }
    }

    /// The API's path segment (`/api/rollouts/…`, `/api/clonesets/…`, `/api/sidecarsets/…`).
    pub fn api(self) -> &'static str {
        match self {
            Self::StatefulsetRollout => "rollouts",
            Self::CloneSet => "clonesets",
            Self::SidecarSet => "sidecarsets",
        }
    }

    /// Whether its objects live in a namespace (its paths then name one).
    pub fn namespaced(self) -> bool {
        !matches!(self, Self::SidecarSet)
    }
}

/// One row of the list.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub kind: Kind,
    /// [`Kind::path`]: the page is `#/PATH/NAMESPACE/NAME`.
    pub path: &'static str,
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub reason: String,
    pub percent: i32,
    pub percent_deployed: i32,
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub target: i32,
    pub paused: bool,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// A point of the progress history: `[unix ms, updated, ready, target]` on the wire.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point(pub i64, pub i32, pub i32, pub i32);

/// One event, newest last.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    pub time: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
}

/// A condition of the rollout.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionRow {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub since: String,
}

/// Everything one object's page shows: what every kind has, and the facts of its own kind.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    pub update_revision: String,
    pub current_revision: String,
    pub revisions: Vec<Revision>,
    pub conditions: Vec<ConditionRow>,
    pub events: Vec<EventRow>,
    /// A rollout's StatefulSet, pause request and notifications (flattened; absent otherwise).
    #[serde(flatten)]
    pub rollout: Option<RolloutFacts>,
    /// A CloneSet's strategy and counts (absent for other kinds).
    pub clone_set: Option<CloneSetFacts>,
    /// A SidecarSet's strategy, sidecars and counts (absent for other kinds).
    pub sidecar_set: Option<SidecarSetFacts>,
    /// The rollout's analysis measurements (absent without analysis).
    pub analysis: Option<AnalysisChart>,
    pub history: Vec<Point>,
    pub cells: Vec<Cell>,
}

/// What a rollout's page shows beyond the common summary.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutFacts {
    pub statefulset: String,
    pub pause_requested: bool,
    pub rollout_identity: String,
    /// Links to the rollout's Slack messages (`https://slack.com/archives/CHANNEL/pTS`).
    pub slack_links: Vec<String>,
    pub callback_stage_id: String,
    pub callback_outcome: String,
    pub callback_url: String,
    pub build_branch: String,
    pub build_commit: String,
}

/// What a SidecarSet's page shows beyond the common summary (whose `replicas` are its matched
/// pods, `updated` those at the latest version, `target` the matched pods less the partition).
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSetFacts {
    /// `spec.selector` (`app in (db,web)`).
    pub selector: String,
    /// The namespaces it applies to (`every namespace`, `namespace shop`, …).
    pub namespaces: String,
    /// `updateStrategy.type`: `RollingUpdate` or `NotUpdate`.
    pub update_type: String,
    /// `partition` and `maxUnavailable` resolved for the matched pods.
    pub partition: i32,
    pub max_unavailable: i32,
    /// `updateStrategy.selector` (the canary's pods), empty when unset.
    pub update_selector: String,
    /// `injectionStrategy.paused`: new pods are not injected.
    pub injection_paused: bool,
    pub updated_ready: i32,
    /// The version (hash of the sidecars) new pods get and the upgrade goes to.
    pub latest_revision: String,
    pub generation: i64,
    pub observed_generation: i64,
    /// The containers and init containers it injects.
    pub containers: Vec<SidecarRow>,
    /// Matched pods the dashboard watches (drawn in the grid); fewer than `status.matchedPods`
    /// when some are not labelled `controller-revision-hash` (a Deployment's or a bare pod) or
    /// lie outside the dashboard's namespace.
    pub pods_shown: i32,
}

/// One container a SidecarSet injects.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SidecarRow {
    pub name: String,
    pub image: String,
    /// `init`, `BeforeAppContainer` or `AfterAppContainer`.
    pub placement: String,
}

/// What a CloneSet's page shows beyond the common summary.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CloneSetFacts {
    /// `updateStrategy.type`.
    pub update_type: String,
    /// `partition`, `maxSurge`, `maxUnavailable` resolved for the current replicas.
    pub partition: i32,
    pub max_surge: i32,
    pub max_unavailable: i32,
    pub updated_ready: i32,
    pub available: i32,
    /// Pods owned (`status.replicas`: surge pods included).
    pub pods: i32,
    pub generation: i64,
    pub observed_generation: i64,
}

/// `status.analysis` for the rollout page's chart.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisChart {
    /// Running, Successful, Inconclusive, Failed, Error (empty before the first analysis).
    pub phase: String,
    pub message: String,
    /// `step N of M` while `spec.steps` runs, else empty.
    pub step: String,
    pub metrics: Vec<MetricChart>,
}

/// One metric: its conditions, counts and recent measurements.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricChart {
    pub name: String,
    pub phase: String,
    pub success_condition: String,
    pub failure_condition: String,
    pub count: i32,
    pub successful: i32,
    pub failed: i32,
    pub inconclusive: i32,
    pub error: i32,
    /// Oldest first, as `status.analysis` keeps them.
    pub points: Vec<MeasurementPoint>,
}

/// One measurement as the chart draws it.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementPoint {
    /// `finishedAt` in Unix milliseconds (absent: drawn after the previous point).
    pub at: Option<i64>,
    /// The number drawn ([`measured_value`]); absent for an error or a non-numeric value, which
    /// are drawn on the baseline.
    pub value: Option<f64>,
    /// The value as the status holds it.
    pub text: String,
    /// Successful, Failed, Inconclusive or Error.
    pub phase: String,
    pub message: String,
}

fn ts(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

/// The list row of a rollout.
pub fn summary(r: &StatefulsetRollout) -> Summary {
    let st = r.status.clone().unwrap_or_default();
    Summary {
        kind: Kind::StatefulsetRollout,
        path: Kind::StatefulsetRollout.path(),
        namespace: r.metadata.namespace.clone().unwrap_or_default(),
        name: r.metadata.name.clone().unwrap_or_default(),
        phase: st
            .phase
            .map_or_else(|| "RolloutPending".to_owned(), |p| p.to_string()),
        reason: st.reason.unwrap_or_default(),
        percent: r.spec.percent,
        percent_deployed: st.percent_deployed.unwrap_or(0),
        replicas: st.replicas.unwrap_or_else(|| r.spec.replicas()),
        updated: st.updated_replicas.unwrap_or(0),
        ready: st.ready_replicas.unwrap_or(0),
        target: st
            .target_updated_replicas
            .unwrap_or_else(|| r.spec.target_updated_replicas()),
        paused: st.paused.unwrap_or(false) || r.spec.paused(),
        created: ts(r.metadata.creation_timestamp.as_ref().map(|t| t.0)),
    }
}

/// A CloneSet's state, derived from its spec and status (a CloneSet has no phase of its own), in
/// this order:
///
/// | state | when |
/// |---|---|
/// | `Pending` | no status yet, or `observedGeneration` behind `metadata.generation` |
/// | `Blocked` | a `FailedUpdate` or `FailedScale` condition is True |
/// | `Failed` | `Progressing` is False with `ProgressDeadlineExceeded` |
/// | `Paused` | `updateStrategy.paused` while fewer pods are updated than `replicas − partition` |
/// | `Updating` | fewer pods updated (or updated and Ready) than `replicas − partition` |
/// | `Scaling` | `status.replicas` differs from `spec.replicas` (surge pods, scaling) |
/// | `NotReady` | fewer pods Ready than `spec.replicas` |
/// | `Done` | otherwise: `replicas − partition` pods updated and every pod Ready |
pub fn clone_set_state(cs: &CloneSet) -> (String, String) {
    let r = cs.spec.resolved();
    let target = r.replicas - r.partition;
    let generation = cs.metadata.generation.unwrap_or(0);
    let Some(st) = cs.status.as_ref() else {
        return (
            "Pending".into(),
            "the operator has not written a status yet".into(),
        );
    };
    if st.observed_generation < generation {
        return (
            "Pending".into(),
            format!(
                "the operator has observed generation {} of {generation}",
                st.observed_generation
            ),
        );
    }
    let condition = |type_: &str| {
        st.conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if let Some(c) = condition("FailedUpdate").or_else(|| condition("FailedScale")) {
        return ("Blocked".into(), format!("{}: {}", c.type_, c.message));
    }
    if let Some(c) = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing" && c.status == "False")
        .filter(|c| c.reason == "ProgressDeadlineExceeded")
    {
        return ("Failed".into(), c.message.clone());
    }
    let partition = if r.partition > 0 {
        format!(" (partition {} keeps the rest)", r.partition)
    } else {
        String::new()
    };
    if st.updated_replicas < target {
        let progress = format!(
            "{} of {target} pods updated{partition}",
            st.updated_replicas
        );
        if cs.spec.update_strategy.paused {
            return ("Paused".into(), format!("paused: {progress}"));
        }
        return ("Updating".into(), progress);
    }
    if st.updated_ready_replicas < target {
        return (
            "Updating".into(),
            format!(
                "{} of {target} updated pods Ready{partition}",
                st.updated_ready_replicas
            ),
        );
    }
    if st.replicas != r.replicas {
        return (
            "Scaling".into(),
            format!("{} pods, {} desired", st.replicas, r.replicas),
        );
    }
    if st.ready_replicas < r.replicas {
        return (
            "NotReady".into(),
            format!("{} of {} pods Ready", st.ready_replicas, r.replicas),
        );
    }
    let done = if r.partition > 0 {
        format!(
            "{target} of {} pods updated; partition {} keeps the rest",
            r.replicas, r.partition
        )
    } else {
        format!("all {} pods updated and Ready", r.replicas)
    };
    ("Done".into(), done)
}

/// Percentage of `part` in `whole`, rounded down (100 for an empty whole).
fn percent_of(part: i32, whole: i32) -> i32 {
    if whole <= 0 {
        return 100;
    }
    i32::try_from(i64::from(part.max(0)) * 100 / i64::from(whole)).unwrap_or(100)
}

/// The list row of a CloneSet: target `replicas − partition`, phase from [`clone_set_state`].
pub fn clone_set_summary(cs: &CloneSet) -> Summary {
    let r = cs.spec.resolved();
    let st = cs.status.clone().unwrap_or_default();
    let target = r.replicas - r.partition;
    let (phase, reason) = clone_set_state(cs);
    Summary {
        kind: Kind::CloneSet,
        path: Kind::CloneSet.path(),
        namespace: cs.metadata.namespace.clone().unwrap_or_default(),
        name: cs.metadata.name.clone().unwrap_or_default(),
        phase,
        reason,
        percent: percent_of(target, r.replicas),
        percent_deployed: percent_of(st.updated_replicas, r.replicas),
        replicas: r.replicas,
        updated: st.updated_replicas,
        ready: st.ready_replicas,
        target,
        paused: cs.spec.update_strategy.paused,
        created: ts(cs.metadata.creation_timestamp.as_ref().map(|t| t.0)),
    }
}

/// The name of the StatefulSet a rollout manages (the status's, else the spec's).
pub fn statefulset_of(r: &StatefulsetRollout) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.statefulset_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| r.statefulset_name())
}

/// Whether `owner_refs` name the `kind` object `name` (a StatefulSet, a CloneSet).
pub fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
    name: &str,
) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == kind && o.name == name)
}

fn images(rev: &ControllerRevision) -> Vec<String> {
    let Some(template) = revision_template(rev) else {
        return Vec::new();
    };
    template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The inputs of [`detail`]: the rollout and the objects of its StatefulSet.
pub struct Inputs<'a> {
    pub rollout: &'a StatefulsetRollout,
    pub pods: Vec<&'a Pod>,
    pub revisions: Vec<&'a ControllerRevision>,
    pub events: Vec<&'a Event>,
    pub history: Vec<Point>,
    pub now: Timestamp,
}

/// The inputs of [`clone_set_detail`]: the CloneSet and its objects.
pub struct CloneSetInputs<'a> {
    pub clone_set: &'a CloneSet,
    pub pods: Vec<&'a Pod>,
    pub revisions: Vec<&'a ControllerRevision>,
    pub events: Vec<&'a Event>,
    pub history: Vec<Point>,
    pub now: Timestamp,
}

/// How many events a page shows.
pub const EVENTS_SHOWN: usize = 20;

/// How a grid places its pods.
pub enum Placement<'a> {
    /// A StatefulSet's: by ordinal, with a missing cell for each ordinal below `replicas` without
    /// a pod (named `<statefulset>-<ordinal>`).
    Ordinals { statefulset: &'a str },
    /// A CloneSet's (pods without ordinals): by name, then a missing cell for each pod short of
    /// `replicas` (counting pods not being deleted).
    ByName,
    /// A SidecarSet's matched pods, of any namespace and workload: by namespace, then name, each
    /// cell named `namespace/name`; no missing cells (a SidecarSet wants no number of pods).
    AcrossNamespaces,
}

/// The revision roles of a grid: which revision is `update`, `current`, `previous`.
pub struct Roles<'a> {
    pub update: &'a str,
    pub current: &'a str,
    pub previous: &'a str,
}

impl Roles<'_> {
    fn of(&self, name: &str) -> &'static str {
        if name == self.update {
            "update"
        } else if name == self.current {
            "current"
        } else if !self.previous.is_empty() && name == self.previous {
            "previous"
        } else {
            "other"
        }
    }
}

/// The revision rows of a StatefulSet's or CloneSet's ControllerRevisions (oldest first, with
/// images, role and how many of `pods` run each).
pub fn controller_revisions(
    pods: &[&Pod],
    revisions: &[&ControllerRevision],
    roles: &Roles<'_>,
) -> Vec<Revision> {
    let mut pod_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods {
        *pod_counts.entry(pod_revision(p)).or_default() += 1;
    }
    let mut revs: Vec<&ControllerRevision> = revisions.to_vec();
    revs.sort_by_key(|r| r.revision);
    revs.iter()
        .map(|rev| {
            let name = rev.metadata.name.clone().unwrap_or_default();
            Revision {
                pods: pod_counts.get(name.as_str()).copied().unwrap_or(0),
                number: rev.revision,
                images: images(rev),
                role: roles.of(&name),
                name,
            }
        })
        .collect()
}

/// The cells of a pod grid, one implementation for every kind: `view` says each pod's revision
/// (a name of `revisions`) and state.
pub fn cells(
    pods: &[&Pod],
    revisions: &[Revision],
    replicas: i32,
    placement: &Placement<'_>,
    view: impl Fn(&Pod) -> (String, PodState, String),
) -> Vec<Cell> {
    let rev_index = |name: &str| {
        revisions
            .iter()
            .position(|r| r.name == name)
            .and_then(|i| i64::try_from(i).ok())
            .unwrap_or(-1)
    };
    let cell = |key: i64, p: &Pod| {
        let (revision, state, why) = view(p);
        let name = p.metadata.name.clone().unwrap_or_default();
        Cell {
            key,
            revision: rev_index(&revision),
            state,
            name: match placement {
                Placement::AcrossNamespaces => format!(
                    "{}/{name}",
                    p.metadata.namespace.as_deref().unwrap_or_default()
                ),
                _ => name,
            },
            node: p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            detail: why,
        }
    };
    let missing = |key: i64, name: String, why: &str| Cell {
        key,
        revision: -1,
        state: PodState::Missing,
        name,
        node: String::new(),
        detail: why.into(),
    };
    let place = |cells: &Vec<Cell>| i64::try_from(cells.len()).unwrap_or(i64::MAX);
    match placement {
        Placement::Ordinals { statefulset } => {
            let mut by_ordinal: BTreeMap<i64, Cell> = BTreeMap::new();
            for p in pods {
                let ord = ordinal(p.metadata.name.as_deref().unwrap_or_default());
                by_ordinal.insert(ord, cell(ord, p));
            }
            for ord in 0..i64::from(replicas.max(0)) {
                by_ordinal.entry(ord).or_insert_with(|| {
                    missing(
                        ord,
                        format!("{statefulset}-{ord}"),
                        "no pod (evicted, being recreated)",
                    )
                });
            }
            by_ordinal.into_values().collect()
        }
        Placement::ByName | Placement::AcrossNamespaces => {
            let mut sorted: Vec<&Pod> = pods.to_vec();
            sorted.sort_by(|a, b| {
                (&a.metadata.namespace, &a.metadata.name)
                    .cmp(&(&b.metadata.namespace, &b.metadata.name))
            });
            let mut cells: Vec<Cell> = Vec::with_capacity(sorted.len());
            for p in sorted {
                cells.push(cell(place(&cells), p));
            }
            if matches!(placement, Placement::ByName) {
                let active = pods.iter().filter(|p| !is_terminating(&p.metadata)).count();
                let short = usize::try_from(replicas)
                    .unwrap_or(0)
                    .saturating_sub(active);
                for _ in 0..short {
                    cells.push(missing(
                        place(&cells),
                        String::new(),
                        "no pod yet (being created)",
                    ));
                }
            }
            cells
        }
    }
}

/// The revisions and cells of a StatefulSet's or CloneSet's grid: pods coloured by their
/// `controller-revision-hash`, classified by [`pod_state`].
pub fn grid(
    pods: &[&Pod],
    revisions: &[&ControllerRevision],
    roles: &Roles<'_>,
    replicas: i32,
    placement: &Placement<'_>,
    now: Timestamp,
) -> (Vec<Revision>, Vec<Cell>) {
    let revisions = controller_revisions(pods, revisions, roles);
    let cells = cells(pods, &revisions, replicas, placement, |p| {
        let (state, why) = pod_state(p, now);
        (pod_revision(p).to_owned(), state, why)
    });
    (revisions, cells)
}

fn condition_row(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    since: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> ConditionRow {
    ConditionRow {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        since: ts(since.map(|t| t.0)),
    }
}

fn event_rows(events: &[&Event]) -> Vec<EventRow> {
    let mut events: Vec<&Event> = events.to_vec();
    events.sort_by_key(|e| event_time(e));
    events
        .iter()
        .rev()
        .take(EVENTS_SHOWN)
        .rev()
        .map(|e| EventRow {
            time: ts(event_time(e)),
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.count.unwrap_or(1),
        })
        .collect()
}

/// One rollout's page.
pub fn detail(inp: Inputs<'_>) -> Detail {
    let r = inp.rollout;
    let summary = summary(r);
    let st = r.status.clone().unwrap_or_default();
    let update = st.update_revision.clone().unwrap_or_default();
    let current = st.current_revision.clone().unwrap_or_default();
    let previous = st.previous_revision.clone().unwrap_or_default();
    let sts = statefulset_of(r);
    let (revisions, cells) = grid(
        &inp.pods,
        &inp.revisions,
        &Roles {
            update: &update,
            current: &current,
            previous: &previous,
        },
        summary.replicas,
        &Placement::Ordinals { statefulset: &sts },
        inp.now,
    );
    let build = r.build_metadata().or(st.build_metadata.clone());
    Detail {
        update_revision: update,
        current_revision: current,
        revisions,
        conditions: st
            .conditions
            .iter()
            .map(|c| ConditionRow {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                since: c.last_transition_time.0.to_string(),
            })
            .collect(),
        events: event_rows(&inp.events),
        rollout: Some(RolloutFacts {
            statefulset: sts,
            pause_requested: r.spec.paused(),
            rollout_identity: r.spec.rollout_identity.clone().unwrap_or_default(),
            slack_links: st
                .slack_message
                .as_ref()
                .map(|m| m.ts.iter().map(|ts| slack_link(&m.channel, ts)).collect())
                .unwrap_or_default(),
            callback_stage_id: st.last_callback_stage_id.clone().unwrap_or_default(),
            callback_outcome: st.last_callback_outcome.clone().unwrap_or_default(),
            callback_url: r
                .spec
                .bapi
                .as_ref()
                .map(|b| b.url.clone())
                .unwrap_or_default(),
            build_branch: build
                .as_ref()
                .and_then(|b| b.branch.clone())
                .unwrap_or_default(),
            build_commit: build.and_then(|b| b.commit).unwrap_or_default(),
        }),
        clone_set: None,
        sidecar_set: None,
        analysis: analysis_chart(r),
        history: inp.history,
        cells,
        summary,
    }
}

/// One CloneSet's page (read-only: the kubectl plugin has no CloneSet actions).
pub fn clone_set_detail(inp: CloneSetInputs<'_>) -> Detail {
    let cs = inp.clone_set;
    let summary = clone_set_summary(cs);
    let st = cs.status.clone().unwrap_or_default();
    let r = cs.spec.resolved();
    let (revisions, cells) = grid(
        &inp.pods,
        &inp.revisions,
        &Roles {
            update: &st.update_revision,
            current: &st.current_revision,
            previous: "",
        },
        r.replicas,
        &Placement::ByName,
        inp.now,
    );
    Detail {
        update_revision: st.update_revision.clone(),
        current_revision: st.current_revision.clone(),
        revisions,
        conditions: st
            .conditions
            .iter()
            .map(|c| {
                condition_row(
                    &c.type_,
                    &c.status,
                    &c.reason,
                    &c.message,
                    c.last_transition_time.as_ref(),
                )
            })
            .collect(),
        events: event_rows(&inp.events),
        rollout: None,
        clone_set: Some(CloneSetFacts {
            update_type: cs.spec.update_type().to_string(),
            partition: r.partition,
            max_surge: r.max_surge,
            max_unavailable: r.max_unavailable,
            updated_ready: st.updated_ready_replicas,
            available: st.available_replicas,
            pods: st.replicas,
            generation: cs.metadata.generation.unwrap_or(0),
            observed_generation: st.observed_generation,
        }),
        sidecar_set: None,
        analysis: None,
        history: inp.history,
        cells,
        summary,
    }
}

/// A SidecarSet's state, derived from its spec and status (a SidecarSet has no phase of its own),
/// the first that applies:
///
/// | state | when |
/// |---|---|
/// | `Pending` | no status yet, or `observedGeneration` behind `metadata.generation` |
/// | `Blocked` | the `NotUpgradable` condition is True (matched pods cannot take the latest version in place) |
/// | `NotUpdate` | `updateStrategy.type: NotUpdate` with pods not at the latest version |
/// | `Paused` | `updateStrategy.paused` with fewer pods updated than matched − partition |
/// | `Updating` | fewer pods updated (or updated and Ready) than matched − partition |
/// | `NotReady` | fewer matched pods Ready than matched |
/// | `Done` | otherwise |
pub fn sidecar_set_state(set: &SidecarSet) -> (String, String) {
    let generation = set.metadata.generation.unwrap_or(0);
    let Some(st) = set.status.as_ref() else {
        return (
            "Pending".into(),
            "the operator has not written a status yet".into(),
        );
    };
    if st.observed_generation < generation {
        return (
            "Pending".into(),
            format!(
                "the operator has observed generation {} of {generation}",
                st.observed_generation
            ),
        );
    }
    if let Some(c) = st
        .conditions
        .iter()
        .find(|c| c.type_ == sidecar::CONDITION_NOT_UPGRADABLE && c.status == "True")
    {
        return ("Blocked".into(), format!("{}: {}", c.reason, c.message));
    }
    let matched = st.matched_pods;
    let r = set.spec.resolved(matched);
    let target = matched - r.partition;
    let strategy = &set.spec.update_strategy;
    if st.updated_pods < matched && set.spec.update_type() == SidecarSetUpdateType::NotUpdate {
        return (
            "NotUpdate".into(),
            format!(
                "updateStrategy.type NotUpdate: {} of {matched} matched pods at the latest version; running pods keep theirs, new pods get it",
                st.updated_pods
            ),
        );
    }
    let mut limits = String::new();
    if r.partition > 0 {
        limits.push_str(&format!(" (partition {} keeps the rest)", r.partition));
    }
    if strategy.selector.is_some() {
        limits.push_str(" (updateStrategy.selector: only the pods it matches)");
    }
    if st.updated_pods < target {
        let progress = format!(
            "{} of {target} matched pods at the latest version{limits}",
            st.updated_pods
        );
        if strategy.paused {
            return ("Paused".into(), format!("paused: {progress}"));
        }
        return ("Updating".into(), progress);
    }
    if st.updated_ready_pods < target {
        return (
            "Updating".into(),
            format!(
                "{} of {target} updated pods Ready{limits}",
                st.updated_ready_pods
            ),
        );
    }
    if st.ready_pods < matched {
        return (
            "NotReady".into(),
            format!("{} of {matched} matched pods Ready", st.ready_pods),
        );
    }
    let done = if matched == 0 {
        "no pods matched".to_owned()
    } else if r.partition > 0 {
        format!(
            "{target} of {matched} matched pods at the latest version; partition {} keeps the rest",
            r.partition
        )
    } else {
        format!("all {matched} matched pods at the latest version and Ready")
    };
    ("Done".into(), done)
}

/// The list row of a SidecarSet: no namespace (cluster-scoped); its pods are the matched pods,
/// progress `updatedPods / matchedPods`, target the matched pods less the partition, phase from
/// [`sidecar_set_state`].
pub fn sidecar_set_summary(set: &SidecarSet) -> Summary {
    let st = set.status.clone().unwrap_or_default();
    let matched = st.matched_pods;
    let target = matched - set.spec.resolved(matched).partition;
    let (phase, reason) = sidecar_set_state(set);
    Summary {
        kind: Kind::SidecarSet,
        path: Kind::SidecarSet.path(),
        namespace: String::new(),
        name: set.metadata.name.clone().unwrap_or_default(),
        phase,
        reason,
        percent: percent_of(target, matched),
        percent_deployed: percent_of(st.updated_pods, matched),
        replicas: matched,
        updated: st.updated_pods,
        ready: st.ready_pods,
        target,
        paused: set.spec.update_strategy.paused,
        created: ts(set.metadata.creation_timestamp.as_ref().map(|t| t.0)),
    }
}

/// The inputs of [`sidecar_set_detail`]: the SidecarSet and the objects around it.
pub struct SidecarSetInputs<'a> {
    pub sidecar_set: &'a SidecarSet,
    /// Candidate pods (those recording the SidecarSet in their `sroll.io/sidecarset-hash`); the
    /// ones its selector and namespace rules no longer match are left out, as the operator
    /// leaves them out of `matchedPods`.
    pub pods: Vec<&'a Pod>,
    pub events: Vec<&'a Event>,
    pub history: Vec<Point>,
    pub now: Timestamp,
}

/// One matched pod's state as a SidecarSet's grid draws it: terminating or broken first (as
/// [`pod_state`] says), then a sidecar upgrade in place (out of traffic for it, or its sidecars
/// restarting), the workload's own in-place update, not upgradable (an old version whose hash
/// without images differs from the latest's: `sroll_planner::sidecar_set::plan_upgrade`'s rule),
/// and otherwise Ready or updating as [`pod_state`] says.
pub fn sidecar_pod_state(
    pod: &Pod,
    view: &PodSidecarView,
    latest: &str,
    latest_without_image: &str,
    now: Timestamp,
) -> (PodState, String) {
    let (state, why) = pod_state(pod, now);
    if matches!(state, PodState::Terminating | PodState::Broken) {
        return (state, why);
    }
    if view.state_revision.is_some()
        && view.state_revision == view.hash
        && !view.in_place.containers_pending.is_empty()
    {
        return (
            PodState::InPlace,
            format!(
                "sidecar upgrade in place: restarting {}",
                view.in_place.containers_pending.join(", ")
            ),
        );
    }
    if view.in_place.gate_ready == Some(false) && view.out_for.is_some() {
        return (
            PodState::InPlace,
            "sidecar upgrade in place: out of traffic (InPlaceUpdateReady False)".into(),
        );
    }
    if state == PodState::InPlace {
        return (state, why);
    }
    if view.hash.as_deref() != Some(latest)
        && view.hash_without_image.as_deref() != Some(latest_without_image)
    {
        return (
            PodState::NotUpgradable,
            "not upgradable in place: a sidecar field other than its image changed; the pod gets the latest version when it is recreated".into(),
        );
    }
    (state, why)
}

/// A label selector as `kubectl get -l` reads it.
fn selector_text(
    s: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> String {
    s.and_then(|s| kube::core::Selector::try_from(s.clone()).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// The namespaces a SidecarSet applies to, in words.
fn namespaces_text(set: &SidecarSet) -> String {
    let spec = &set.spec;
    if !spec.namespace.is_empty() {
        return format!("namespace {}", spec.namespace);
    }
    match &spec.namespace_selector {
        Some(ns) if !ns.namespaces.is_empty() => format!("namespaces {}", ns.namespaces.join(", ")),
        Some(ns) => match ns.label_selector() {
            Some(sel) => format!("namespaces labelled {}", selector_text(Some(&sel))),
            None => "every namespace".into(),
        },
        None => "every namespace".into(),
    }
}

/// One SidecarSet's page (read-only: the kubectl plugin has no SidecarSet actions). Its revisions
/// are the versions (hashes of its sidecars) the matched pods record: the latest is `update`, the
/// old version most pods run `current`, the next `previous`, any other `other`; a version's
/// images are its sidecars' images in a pod running it (the spec's for the latest).
pub fn sidecar_set_detail(inp: SidecarSetInputs<'_>) -> Detail {
    let set = inp.sidecar_set;
    let name = set.metadata.name.clone().unwrap_or_default();
    let summary = sidecar_set_summary(set);
    let st = set.status.clone().unwrap_or_default();
    let latest = sidecar::revision_hash(&set.spec);
    let latest_wo = sidecar::hash_without_image(&set.spec);
    let pods: Vec<(&Pod, PodSidecarView)> = inp
        .pods
        .iter()
        .filter(|p| {
            sidecar::matches(
                set,
                p,
                p.metadata.namespace.as_deref().unwrap_or_default(),
                None,
            )
        })
        .map(|p| (*p, PodSidecarView::from_pod(p, &name)))
        .filter(|(_, v)| v.hash.is_some())
        .collect();
    // Versions by pods running them; the latest first whether or not any pod runs it.
    let mut counts: BTreeMap<&str, (usize, &Pod)> = BTreeMap::new();
    for (p, v) in &pods {
        if let Some(h) = v.hash.as_deref() {
            counts.entry(h).or_insert((0, p)).0 += 1;
        }
    }
    let mut old: Vec<(&str, usize, &Pod)> = counts
        .iter()
        .filter(|(h, _)| **h != latest)
        .map(|(h, (n, p))| (*h, *n, *p))
        .collect();
    old.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let roles = ["current", "previous"];
    let mut revisions: Vec<Revision> = old
        .iter()
        .enumerate()
        .map(|(i, (hash, n, pod))| {
            let list = sidecar::read_map::<HashEntry>(pod, sidecar::HASH_ANNOTATION)
                .remove(&name)
                .map(|e| e.sidecar_list)
                .unwrap_or_default();
            let images = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .filter(|c| list.contains(&c.name))
                .filter_map(|c| c.image.clone())
                .collect();
            Revision {
                name: (*hash).to_owned(),
                number: 0,
                images,
                role: roles.get(i).copied().unwrap_or("other"),
                pods: *n,
            }
        })
        .collect();
    // Oldest first, as the other kinds' revisions: the least-run versions, then the latest.
    revisions.reverse();
    revisions.push(Revision {
        name: latest.clone(),
        number: 0,
        images: set
            .spec
            .containers
            .iter()
            .filter_map(|c| c.container.image.clone())
            .collect(),
        role: "update",
        pods: counts.get(latest.as_str()).map_or(0, |c| c.0),
    });
    let pod_refs: Vec<&Pod> = pods.iter().map(|(p, _)| *p).collect();
    let views: BTreeMap<(String, String), &PodSidecarView> = pods
        .iter()
        .map(|(p, v)| {
            (
                (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                ),
                v,
            )
        })
        .collect();
    let cells = cells(
        &pod_refs,
        &revisions,
        0,
        &Placement::AcrossNamespaces,
        |p| {
            let key = (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
            match views.get(&key) {
                Some(v) => {
                    let (state, why) = sidecar_pod_state(p, v, &latest, &latest_wo, inp.now);
                    (v.hash.clone().unwrap_or_default(), state, why)
                }
                None => {
                    let (state, why) = pod_state(p, inp.now);
                    (String::new(), state, why)
                }
            }
        },
    );
    let r = set.spec.resolved(st.matched_pods);
    let containers = set
        .spec
        .init_containers
        .iter()
        .map(|c| (c, "init".to_owned()))
        .chain(
            set.spec
                .containers
                .iter()
                .map(|c| (c, format!("{:?}", c.inject_policy()))),
        )
        .map(|(c, placement)| SidecarRow {
            name: c.container.name.clone(),
            image: c.container.image.clone().unwrap_or_default(),
            placement,
        })
        .collect();
    Detail {
        update_revision: latest.clone(),
        current_revision: String::new(),
        conditions: st
            .conditions
            .iter()
            .map(|c| {
                condition_row(
                    &c.type_,
                    &c.status,
                    &c.reason,
                    &c.message,
                    c.last_transition_time.as_ref(),
                )
            })
            .collect(),
        events: event_rows(&inp.events),
        rollout: None,
        clone_set: None,
        sidecar_set: Some(SidecarSetFacts {
            selector: selector_text(set.spec.selector.as_ref()),
            namespaces: namespaces_text(set),
            update_type: format!("{:?}", set.spec.update_type()),
            partition: r.partition,
            max_unavailable: r.max_unavailable,
            update_selector: selector_text(set.spec.update_strategy.selector.as_ref()),
            injection_paused: set.spec.injection_strategy.paused,
            updated_ready: st.updated_ready_pods,
            latest_revision: latest,
            generation: set.metadata.generation.unwrap_or(0),
            observed_generation: st.observed_generation,
            containers,
            pods_shown: i32::try_from(cells.len()).unwrap_or(i32::MAX),
        }),
        analysis: None,
        history: inp.history,
        revisions,
        cells,
        summary,
    }
}

/// The number a measurement's value draws as: the value itself when it is a number (the web
/// provider's `0.01`), else the first number of a JSON list (a Prometheus instant vector's
/// `[0.02]`, as the operator records it); `None` for anything else (no value, an error, text).
pub fn measured_value(text: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    let n = match &v {
        Value::Array(items) => items.first()?.as_f64()?,
        other => other.as_f64()?,
    };
    n.is_finite().then_some(n)
}

fn point(m: &Measurement) -> MeasurementPoint {
    let text = m.value.clone().unwrap_or_default();
    MeasurementPoint {
        at: m.finished_at.as_ref().map(|t| t.0.as_millisecond()),
        value: measured_value(&text),
        text,
        phase: m.phase.clone(),
        message: m.message.clone().unwrap_or_default(),
    }
}

/// The analysis chart of a rollout: every metric of `status.analysis` (with its conditions from
/// `spec.analysis`), then the spec's metrics not measured yet. `None` when the rollout has no
/// `spec.analysis` and no measurements.
pub fn analysis_chart(r: &StatefulsetRollout) -> Option<AnalysisChart> {
    let spec = r.spec.analysis.as_ref();
    let status = r
        .status
        .as_ref()
        .and_then(|s| s.analysis.clone())
        .unwrap_or_default();
    if spec.is_none() && status.metrics.is_empty() {
        return None;
    }
    let spec_metrics = spec.map(|a| a.metrics.as_slice()).unwrap_or_default();
    let conditions = |name: &str| {
        spec_metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| {
                (
                    m.success_condition.clone().unwrap_or_default(),
                    m.failure_condition.clone().unwrap_or_default(),
                )
            })
            .unwrap_or_default()
    };
    let mut metrics: Vec<MetricChart> = status
        .metrics
        .iter()
        .map(|m| {
            let (success_condition, failure_condition) = conditions(&m.name);
            MetricChart {
                name: m.name.clone(),
                phase: m.phase.clone().unwrap_or_default(),
                success_condition,
                failure_condition,
                count: m.count,
                successful: m.successful,
                failed: m.failed,
                inconclusive: m.inconclusive,
                error: m.error,
                points: m.measurements.iter().map(point).collect(),
            }
        })
        .collect();
    for m in spec_metrics {
        if !metrics.iter().any(|c| c.name == m.name) {
            let (success_condition, failure_condition) = conditions(&m.name);
            metrics.push(MetricChart {
                name: m.name.clone(),
                success_condition,
                failure_condition,
                ..MetricChart::default()
            });
        }
    }
    let steps = r.spec.steps.len();
    let step = match status.step_index.and_then(|i| usize::try_from(i).ok()) {
        Some(i) if steps > 0 && i >= steps => format!("all {steps} steps done"),
        Some(i) if steps > 0 => format!("step {} of {steps}", i + 1),
        _ => String::new(),
    };
    Some(AnalysisChart {
        phase: status.phase.unwrap_or_default(),
        message: status.message.unwrap_or_default(),
        step,
        metrics,
    })
}

/// Slack's permalink form: `https://slack.com/archives/<channel>/p<ts without the dot>` (Slack
/// redirects it to the workspace the reader is signed in to).
pub fn slack_link(channel: &str, ts: &str) -> String {
    format!(
        "https://slack.com/archives/{channel}/p{}",
        ts.replace('.', "")
    )
}

/// The cells of `new` that differ from `old` at the same position (all of them when the grid's
/// size changed).
pub fn diff_cells<'a>(old: &[Cell], new: &'a [Cell]) -> Vec<&'a Cell> {
    if old.len() != new.len() {
        return new.iter().collect();
    }
    old.iter()
        .zip(new)
        .filter(|(a, b)| a != b)
        .map(|(_, b)| b)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_pod_is_classified_by_deletion_failure_readiness_and_age_of_unreadiness() {
        let cases = [
            (
                "terminating beats ready",
                json!({"metadata": {"name": "w-0", "deletionTimestamp": "2026-12-06T11:59:59Z"},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
                PodState::Terminating,
            ),
            (
                "ready",
                json!({"metadata": {"name": "w-0"},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
                PodState::Ready,
            ),
            (
                "pending is updating",
                json!({"metadata": {"name": "w-0"}, "status": {"phase": "Pending"}}),
                PodState::Updating,
            ),
            (
                "unready for 10 s is updating",
                json!({"metadata": {"name": "w-0"},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-12-06T11:59:50Z"}]}}),
                PodState::Updating,
            ),
            (
                "unready for a minute is broken",
                json!({"metadata": {"name": "w-0"},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-12-06T11:59:00Z"}]}}),
                PodState::Broken,
            ),
            (
                "crash loop is broken at once",
                json!({"metadata": {"name": "w-0"},
                       "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                          "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
                PodState::Broken,
            ),
            (
                "failed is broken",
                json!({"metadata": {"name": "w-0"}, "status": {"phase": "Failed"}}),
                PodState::Broken,
            ),
            (
                "out of traffic by the in-place gate is in place, even unready for a minute",
                json!({"metadata": {"name": "w-0", "labels": {"controller-revision-hash": "w-2"}},
                       "spec": {"containers": [], "readinessGates": [{"conditionType": "InPlaceUpdateReady"}]},
                       "status": {"phase": "Running", "conditions": [
                           {"type": "InPlaceUpdateReady", "status": "False"},
                           {"type": "Ready", "status": "False", "lastTransitionTime": "2026-12-06T11:59:00Z"}]}}),
                PodState::InPlace,
            ),
            (
                "restarting a container of a recorded in-place update is in place",
                json!({"metadata": {"name": "w-0", "labels": {"controller-revision-hash": "w-2"},
                         "annotations": {"sroll.io/inplace-update-state":
                           "{\"revision\":\"w-2\",\"updateTimestamp\":\"2026-12-06T11:59:58Z\",\"lastContainerStatuses\":{\"app\":{\"imageID\":\"sha-1\"}}}"}},
                       "spec": {"containers": [{"name": "app", "image": "app:v2"}]},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                          "containerStatuses": [{"name": "app", "image": "app:v1", "imageID": "sha-1", "ready": false, "restartCount": 0,
                             "state": {"running": {}}}]}}),
                PodState::InPlace,
            ),
            (
                "a finished in-place update is Ready",
                json!({"metadata": {"name": "w-0", "labels": {"controller-revision-hash": "w-2"},
                         "annotations": {"sroll.io/inplace-update-state":
                           "{\"revision\":\"w-2\",\"updateTimestamp\":\"2026-12-06T11:59:58Z\",\"lastContainerStatuses\":{\"app\":{\"imageID\":\"sha-1\"}}}"}},
                       "spec": {"containers": [{"name": "app", "image": "app:v2"}]},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                          "containerStatuses": [{"name": "app", "image": "app:v2", "imageID": "sha-2", "ready": true, "restartCount": 1,
                             "state": {"running": {}}}]}}),
                PodState::Ready,
            ),
        ];
        for (what, p, want) in cases {
            assert_eq!(pod_state(&pod(p), now()).0, want, "{what}");
        }
    }

    fn rollout(replicas: i32) -> StatefulsetRollout {
        serde_json::from_value(json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"percent": 50, "sts": {"spec": {"replicas": replicas, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}}, "template": {}}}},
            "status": {"phase": "RolloutInProgress", "updateRevision": "web-2", "currentRevision": "web-1",
                "slackMessage": {"channel": "C1", "ts": ["1700000000.000100"]}}
        }))
        .unwrap()
    }

    fn revision(name: &str, n: i64, image: &str) -> ControllerRevision {
        serde_json::from_value(json!({
            "metadata": {"name": name}, "revision": n,
            "data": {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}, "$patch": "replace"}}}
        }))
        .unwrap()
    }

    #[test]
    fn the_grid_has_one_cell_per_ordinal_with_missing_pods_drawn_as_missing() {
        let r = rollout(4);
        let pods = [
            pod(
                json!({"metadata": {"name": "web-0", "labels": {"controller-revision-hash": "web-1"}},
                   "spec": {"nodeName": "n1", "containers": []},
                   "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            pod(
                json!({"metadata": {"name": "web-3", "labels": {"controller-revision-hash": "web-2"}},
                   "status": {"phase": "Pending"}}),
            ),
        ];
        let revs = [
            revision("web-1", 1, "app:v1"),
            revision("web-2", 2, "app:v2"),
        ];
        let d = detail(Inputs {
            rollout: &r,
            pods: pods.iter().collect(),
            revisions: revs.iter().collect(),
            events: Vec::new(),
            history: Vec::new(),
            now: now(),
        });
        let cells: Vec<(i64, i64, PodState)> = d
            .cells
            .iter()
            .map(|c| (c.key, c.revision, c.state))
            .collect();
        assert_eq!(
            cells,
            [
                (0, 0, PodState::Ready),
                (1, -1, PodState::Missing),
                (2, -1, PodState::Missing),
                (3, 1, PodState::Updating),
            ]
        );
        assert_eq!(d.revisions[0].role, "current");
        assert_eq!(d.revisions[1].role, "update");
        assert_eq!(d.revisions[1].images, ["app:v2"]);
        assert_eq!(d.revisions[1].pods, 1);
        assert_eq!(
            d.rollout.as_ref().unwrap().slack_links,
            ["https://slack.com/archives/C1/p1700000000000100"]
        );
        assert_eq!(
            serde_json::to_value(&d.cells[0]).unwrap(),
            json!([0, 0, "R", "web-0", "n1", "Ready"])
        );
    }

    #[test]
    fn a_diff_carries_only_the_cells_that_changed() {
        let cell = |ord, state| Cell {
            key: ord,
            revision: 0,
            state,
            name: format!("w-{ord}"),
            node: String::new(),
            detail: String::new(),
        };
        let old = [cell(0, PodState::Ready), cell(1, PodState::Ready)];
        let new = [cell(0, PodState::Ready), cell(1, PodState::Terminating)];
        assert_eq!(diff_cells(&old, &new), [&new[1]]);
        assert_eq!(diff_cells(&old[..1], &new).len(), 2);
    }

    fn clone_set(spec: Value, status: Value, generation: i64) -> CloneSet {
        let mut base = json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "api", "namespace": "shop", "generation": generation},
            "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"containers": [{"name": "app", "image": "app:v2"}]}}},
        });
        for (k, v) in spec.as_object().unwrap() {
            base["spec"][k] = v.clone();
        }
        if !status.is_null() {
            base["status"] = status;
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_clone_sets_state_is_derived_from_its_generation_conditions_counts_and_partition() {
        let st = |updated: i32, updated_ready: i32, replicas: i32, ready: i32| {
            json!({"observedGeneration": 2, "replicas": replicas, "readyReplicas": ready,
                   "updatedReplicas": updated, "updatedReadyReplicas": updated_ready,
                   "updateRevision": "api-b", "currentRevision": "api-a"})
        };
        let cases = [
            ("no status", json!({}), Value::Null, 1, "Pending"),
            (
                "status of an older generation",
                json!({}),
                st(5, 5, 5, 5),
                3,
                "Pending",
            ),
            (
                "fewer updated than replicas",
                json!({}),
                st(2, 2, 5, 5),
                2,
                "Updating",
            ),
            (
                "paused short of the target",
                json!({"updateStrategy": {"paused": true}}),
                st(2, 2, 5, 5),
                2,
                "Paused",
            ),
            (
                "paused once every pod is updated is done",
                json!({"updateStrategy": {"paused": true}}),
                st(5, 5, 5, 5),
                2,
                "Done",
            ),
            (
                "updated pods not Ready yet",
                json!({}),
                st(5, 3, 5, 3),
                2,
                "Updating",
            ),
            ("a surge pod left", json!({}), st(5, 5, 6, 6), 2, "Scaling"),
            ("a pod not Ready", json!({}), st(5, 5, 5, 4), 2, "NotReady"),
            (
                "at the partition",
                json!({"updateStrategy": {"partition": 3}}),
                st(2, 2, 5, 5),
                2,
                "Done",
            ),
            (
                "short of the partition's target",
                json!({"updateStrategy": {"partition": 3}}),
                st(1, 1, 5, 5),
                2,
                "Updating",
            ),
            (
                "an impossible in-place update",
                json!({}),
                {
                    let mut s = st(2, 2, 5, 5);
                    s["conditions"] = json!([{"type": "FailedUpdate", "status": "True",
                        "reason": "InPlaceImpossible", "message": "spec.template.spec.containers[0].env changed"}]);
                    s
                },
                2,
                "Blocked",
            ),
            (
                "past its progress deadline",
                json!({}),
                {
                    let mut s = st(2, 2, 5, 5);
                    s["conditions"] = json!([{"type": "Progressing", "status": "False",
                        "reason": "ProgressDeadlineExceeded", "message": "timed out"}]);
                    s
                },
                2,
                "Failed",
            ),
        ];
        for (what, spec, status, generation, want) in cases {
            let cs = clone_set(spec, status, generation);
            assert_eq!(
                clone_set_state(&cs).0,
                want,
                "{what}: {:?}",
                clone_set_state(&cs)
            );
        }
        let cs = clone_set(
            json!({"updateStrategy": {"partition": 3}}),
            st(2, 2, 5, 5),
            2,
        );
        let row = clone_set_summary(&cs);
        assert_eq!(
            (
                row.kind,
                row.path,
                row.target,
                row.percent,
                row.percent_deployed
            ),
            (Kind::CloneSet, "c", 2, 40, 40)
        );
        assert_eq!(
            clone_set_state(&cs).1,
            "2 of 5 pods updated; partition 3 keeps the rest"
        );
        let blocked = clone_set(
            json!({}),
            {
                let mut s = st(2, 2, 5, 5);
                s["conditions"] =
                    json!([{"type": "FailedUpdate", "status": "True", "message": "env changed"}]);
                s
            },
            2,
        );
        assert_eq!(clone_set_state(&blocked).1, "FailedUpdate: env changed");
    }

    #[test]
    fn a_clone_sets_grid_orders_pods_by_name_colours_by_revision_and_counts_pods_to_create() {
        let cs = clone_set(
            json!({"updateStrategy": {"type": "InPlaceIfPossible", "maxSurge": 1}}),
            json!({"observedGeneration": 2, "replicas": 4, "readyReplicas": 2, "updatedReplicas": 2,
                   "updatedReadyReplicas": 1, "updateRevision": "api-b", "currentRevision": "api-a"}),
            2,
        );
        let owned = json!([{"apiVersion": "sroll.io/v1alpha1", "kind": "CloneSet", "name": "api", "uid": "u1", "controller": true}]);
        let pods = [
            pod(
                json!({"metadata": {"name": "api-zzzzz", "ownerReferences": owned, "labels": {"controller-revision-hash": "api-a"}},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            pod(
                json!({"metadata": {"name": "api-aaaaa", "ownerReferences": owned, "labels": {"controller-revision-hash": "api-b"}},
                       "spec": {"nodeName": "n2", "containers": [], "readinessGates": [{"conditionType": "InPlaceUpdateReady"}]},
                       "status": {"phase": "Running", "conditions": [{"type": "InPlaceUpdateReady", "status": "False"}]}}),
            ),
            pod(
                json!({"metadata": {"name": "api-mmmmm", "ownerReferences": owned, "labels": {"controller-revision-hash": "api-b"}},
                       "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
            pod(
                json!({"metadata": {"name": "api-ccccc", "ownerReferences": owned, "deletionTimestamp": "2026-12-06T11:59:59Z",
                                    "labels": {"controller-revision-hash": "api-a"}},
                       "status": {"phase": "Running"}}),
            ),
        ];
        let revs = [
            revision("api-b", 2, "app:v2"),
            revision("api-a", 1, "app:v1"),
        ];
        let d = clone_set_detail(CloneSetInputs {
            clone_set: &cs,
            pods: pods.iter().collect(),
            revisions: revs.iter().collect(),
            events: Vec::new(),
            history: Vec::new(),
            now: now(),
        });
        let cells: Vec<(i64, &str, i64, PodState)> = d
            .cells
            .iter()
            .map(|c| (c.key, c.name.as_str(), c.revision, c.state))
            .collect();
        // Four pods by name (the terminating one included), then the two pods of the five
        // replicas that do not exist yet (three are not being deleted).
        assert_eq!(
            cells,
            [
                (0, "api-aaaaa", 1, PodState::InPlace),
                (1, "api-ccccc", 0, PodState::Terminating),
                (2, "api-mmmmm", 1, PodState::Ready),
                (3, "api-zzzzz", 0, PodState::Ready),
                (4, "", -1, PodState::Missing),
                (5, "", -1, PodState::Missing),
            ]
        );
        assert_eq!(
            d.revisions
                .iter()
                .map(|r| (r.name.as_str(), r.role, r.pods, r.images.clone()))
                .collect::<Vec<_>>(),
            [
                ("api-a", "current", 2, vec!["app:v1".to_owned()]),
                ("api-b", "update", 2, vec!["app:v2".to_owned()]),
            ]
        );
        let facts = d.clone_set.clone().unwrap();
        assert_eq!(
            (
                facts.update_type.as_str(),
                facts.max_surge,
                facts.updated_ready,
                facts.pods
            ),
            ("InPlaceIfPossible", 1, 1, 4)
        );
        assert_eq!(d.summary.kind, Kind::CloneSet);
        assert!(d.analysis.is_none());
        assert!(d.rollout.is_none() && d.sidecar_set.is_none());
        let page = serde_json::to_value(&d).unwrap();
        assert!(page.get("slackLinks").is_none() && page["cloneSet"].is_object());
    }

    fn sidecar_set(spec: Value, status: Value, generation: i64) -> SidecarSet {
        let mut base = json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "SidecarSet",
            "metadata": {"name": "logging", "generation": generation},
            "spec": {"selector": {"matchLabels": {"logs": "on"}},
                     "containers": [{"name": "log-agent", "image": "agent:2"}]},
        });
        for (k, v) in spec.as_object().unwrap() {
            base["spec"][k] = v.clone();
        }
        if !status.is_null() {
            base["status"] = status;
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_sidecar_sets_state_is_derived_from_its_generation_condition_counts_and_strategy() {
        let st = |matched: i32, updated: i32, updated_ready: i32, ready: i32| {
            json!({"observedGeneration": 2, "matchedPods": matched, "updatedPods": updated,
                   "updatedReadyPods": updated_ready, "readyPods": ready, "latestRevision": "h2"})
        };
        let not_upgradable = {
            let mut s = st(4, 2, 2, 4);
            s["conditions"] = json!([{"type": "NotUpgradable", "status": "True", "reason": "NotUpgradablePods",
                "message": "2 pod(s) cannot take version h2 in place"}]);
            s
        };
        let upgradable = {
            let mut s = st(4, 4, 4, 4);
            s["conditions"] =
                json!([{"type": "NotUpgradable", "status": "False", "reason": "AllUpgradable"}]);
            s
        };
        let cases = [
            ("no status", json!({}), Value::Null, 1, "Pending"),
            (
                "an older generation observed",
                json!({}),
                st(4, 4, 4, 4),
                3,
                "Pending",
            ),
            (
                "pods not upgradable",
                json!({}),
                not_upgradable,
                2,
                "Blocked",
            ),
            (
                "every pod upgradable and updated",
                json!({}),
                upgradable,
                2,
                "Done",
            ),
            ("pods behind", json!({}), st(4, 1, 1, 4), 2, "Updating"),
            (
                "updated pods not Ready yet",
                json!({}),
                st(4, 4, 3, 3),
                2,
                "Updating",
            ),
            (
                "paused short of the target",
                json!({"updateStrategy": {"paused": true}}),
                st(4, 1, 1, 4),
                2,
                "Paused",
            ),
            (
                "inject-only keeps running pods",
                json!({"updateStrategy": {"type": "NotUpdate"}}),
                st(4, 1, 1, 4),
                2,
                "NotUpdate",
            ),
            (
                "at the partition",
                json!({"updateStrategy": {"partition": "50%"}}),
                st(4, 2, 2, 4),
                2,
                "Done",
            ),
            (
                "short of the partition's target",
                json!({"updateStrategy": {"partition": 1}}),
                st(4, 2, 2, 4),
                2,
                "Updating",
            ),
            (
                "a matched pod not Ready",
                json!({}),
                st(4, 4, 4, 3),
                2,
                "NotReady",
            ),
            ("nothing matched", json!({}), st(0, 0, 0, 0), 2, "Done"),
        ];
        for (what, spec, status, generation, want) in cases {
            let s = sidecar_set(spec, status, generation);
            assert_eq!(
                sidecar_set_state(&s).0,
                want,
                "{what}: {:?}",
                sidecar_set_state(&s)
            );
        }
        let blocked = sidecar_set(json!({}), not_upgradable_status(), 2);
        assert_eq!(
            sidecar_set_state(&blocked).1,
            "NotUpgradablePods: 2 pod(s) cannot take version h2 in place"
        );
        // The row: no namespace, progress updatedPods / matchedPods, target less the partition.
        let s = sidecar_set(
            json!({"updateStrategy": {"partition": 1}}),
            st(4, 2, 2, 3),
            2,
        );
        let row = sidecar_set_summary(&s);
        assert_eq!(
            (
                row.kind,
                row.path,
                row.namespace.as_str(),
                row.replicas,
                row.updated,
                row.ready,
                row.target,
                row.percent,
                row.percent_deployed
            ),
            (Kind::SidecarSet, "s", "", 4, 2, 3, 3, 75, 50)
        );
        assert_eq!(
            sidecar_set_state(&s).1,
            "2 of 3 matched pods at the latest version (partition 1 keeps the rest)"
        );
    }

    fn not_upgradable_status() -> Value {
        json!({"observedGeneration": 2, "matchedPods": 4, "updatedPods": 2, "updatedReadyPods": 2,
               "readyPods": 4, "conditions": [{"type": "NotUpgradable", "status": "True",
               "reason": "NotUpgradablePods", "message": "2 pod(s) cannot take version h2 in place"}]})
    }

    /// A pod of `ns` recording `hashes` (`(hash, hash without image)`) for SidecarSet `logging`.
    fn injected(
        ns: &str,
        name: &str,
        labels: Value,
        hash: (&str, &str),
        image: &str,
        extra: Value,
    ) -> Pod {
        let entry =
            |h: &str| json!({"logging": {"hash": h, "sidecarList": ["log-agent"]}}).to_string();
        let mut v = json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": {
                sidecar::HASH_ANNOTATION: entry(hash.0),
                sidecar::HASH_WITHOUT_IMAGE_ANNOTATION: entry(hash.1)}},
            "spec": {"nodeName": "n1", "containers": [{"name": "log-agent", "image": image}, {"name": "app", "image": "app:1"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "log-agent", "image": image, "imageID": format!("id-{image}"), "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "app", "image": "app:1", "imageID": "id-app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
        });
        merge_json(&mut v, extra);
        pod(v)
    }

    /// JSON merge of `extra` into `v` (objects merged, everything else replaced).
    fn merge_json(v: &mut Value, extra: Value) {
        match (v, extra) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, x) in b {
                    merge_json(a.entry(k).or_insert(Value::Null), x);
                }
            }
            (v, x) => *v = x,
        }
    }

    #[test]
    fn a_sidecar_sets_grid_has_its_matched_pods_across_namespaces_coloured_by_version_and_shaped_by_upgrade()
     {
        let set = sidecar_set(
            json!({"updateStrategy": {"partition": 1}}),
            json!({"observedGeneration": 2, "matchedPods": 5, "updatedPods": 2,
                   "updatedReadyPods": 1, "readyPods": 4}),
            2,
        );
        let latest = (
            sidecar::revision_hash(&set.spec),
            sidecar::hash_without_image(&set.spec),
        );
        // The version before (only the image differs) and an older one with an env (a field
        // that cannot change in place).
        let v1 = sidecar_set(
            json!({"containers": [{"name": "log-agent", "image": "agent:1"}]}),
            Value::Null,
            1,
        );
        let v1 = (
            sidecar::revision_hash(&v1.spec),
            sidecar::hash_without_image(&v1.spec),
        );
        let v0 = sidecar_set(
            json!({"containers": [{"name": "log-agent", "image": "agent:0", "env": [{"name": "A", "value": "1"}]}]}),
            Value::Null,
            1,
        );
        let v0 = (
            sidecar::revision_hash(&v0.spec),
            sidecar::hash_without_image(&v0.spec),
        );
        assert_eq!(
            v1.1, latest.1,
            "an image-only change keeps the hash without images"
        );
        assert_ne!(v0.1, latest.1);
        let on = json!({"logs": "on", "controller-revision-hash": "x"});
        let pair = |h: &(String, String)| (h.0.clone(), h.1.clone());
        let (l, o1, o0) = (pair(&latest), pair(&v1), pair(&v0));
        let restart_state =
            json!({"logging": {"revision": l.0, "updateTimestamp": "2026-12-06T11:59:58Z",
            "lastContainerStatuses": {"log-agent": {"imageID": "id-agent:1"}}}})
            .to_string();
        let pods = [
            injected(
                "shop",
                "web-1",
                on.clone(),
                (&o1.0, &o1.1),
                "agent:1",
                json!({}),
            ),
            injected(
                "billing",
                "db-0",
                on.clone(),
                (&l.0, &l.1),
                "agent:2",
                json!({}),
            ),
            injected(
                "shop",
                "web-0",
                on.clone(),
                (&o1.0, &o1.1),
                "agent:1",
                json!({}),
            ),
            injected(
                "shop",
                "web-2",
                on.clone(),
                (&o0.0, &o0.1),
                "agent:0",
                json!({}),
            ),
            // Its images patched, the sidecar not restarted yet.
            injected(
                "shop",
                "web-3",
                on.clone(),
                (&l.0, &l.1),
                "agent:2",
                json!({"metadata": {"annotations": {sidecar::STATE_ANNOTATION: restart_state}},
                       "status": {"conditions": [{"type": "Ready", "status": "False"}],
                          "containerStatuses": [
                            {"name": "log-agent", "image": "agent:1", "imageID": "id-agent:1", "ready": false, "restartCount": 0, "state": {"running": {}}},
                            {"name": "app", "image": "app:1", "imageID": "id-app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}}),
            ),
            // Out of traffic for this SidecarSet's upgrade (its images not patched yet).
            injected(
                "shop",
                "web-4",
                on.clone(),
                (&o1.0, &o1.1),
                "agent:1",
                json!({"spec": {"readinessGates": [{"conditionType": "InPlaceUpdateReady"}]},
                       "status": {"conditions": [
                           {"type": "InPlaceUpdateReady", "status": "False", "message": format!(
                               "{}{}", sroll_planner::inplace::OUT_OF_TRAFFIC_MESSAGE_PREFIX,
                               sidecar::traffic_target("logging", &l.0))},
                           {"type": "Ready", "status": "False"}]}}),
            ),
            // Recorded, but the selector no longer matches it: not a matched pod.
            injected(
                "shop",
                "cache-0",
                json!({"logs": "off"}),
                (&o1.0, &o1.1),
                "agent:1",
                json!({}),
            ),
        ];
        let events: [Event; 1] = [serde_json::from_value(json!({
            "metadata": {"name": "logging.1", "namespace": "default"},
            "involvedObject": {"kind": "SidecarSet", "name": "logging"},
            "type": "Warning", "reason": "NotUpgradablePods", "message": "1 pod(s) cannot take version",
            "lastTimestamp": "2026-12-06T11:59:00Z"
        }))
        .unwrap()];
        let d = sidecar_set_detail(SidecarSetInputs {
            sidecar_set: &set,
            pods: pods.iter().collect(),
            events: events.iter().collect(),
            history: Vec::new(),
            now: now(),
        });
        let cells: Vec<(i64, &str, &str, PodState)> = d
            .cells
            .iter()
            .map(|c| {
                (
                    c.key,
                    c.name.as_str(),
                    d.revisions[usize::try_from(c.revision).unwrap()].role,
                    c.state,
                )
            })
            .collect();
        assert_eq!(
            cells,
            [
                (0, "billing/db-0", "update", PodState::Ready),
                (1, "shop/web-0", "current", PodState::Ready),
                (2, "shop/web-1", "current", PodState::Ready),
                (3, "shop/web-2", "previous", PodState::NotUpgradable),
                (4, "shop/web-3", "update", PodState::InPlace),
                (5, "shop/web-4", "current", PodState::InPlace),
            ]
        );
        assert_eq!(
            d.cells[4].detail,
            "sidecar upgrade in place: restarting log-agent"
        );
        assert_eq!(
            d.cells[5].detail,
            "sidecar upgrade in place: out of traffic (InPlaceUpdateReady False)"
        );
        assert_eq!(
            d.revisions
                .iter()
                .map(|r| (r.name.as_str(), r.role, r.pods, r.images.clone()))
                .collect::<Vec<_>>(),
            [
                (o0.0.as_str(), "previous", 1, vec!["agent:0".to_owned()]),
                (o1.0.as_str(), "current", 3, vec!["agent:1".to_owned()]),
                (l.0.as_str(), "update", 2, vec!["agent:2".to_owned()]),
            ]
        );
        assert_eq!(d.update_revision, l.0);
        let facts = d.sidecar_set.as_ref().unwrap();
        assert_eq!(
            (
                facts.selector.as_str(),
                facts.namespaces.as_str(),
                facts.update_type.as_str(),
                facts.partition,
                facts.pods_shown
            ),
            ("logs=on", "every namespace", "RollingUpdate", 1, 6)
        );
        assert_eq!(
            facts
                .containers
                .iter()
                .map(|c| (c.name.as_str(), c.image.as_str(), c.placement.as_str()))
                .collect::<Vec<_>>(),
            [("log-agent", "agent:2", "BeforeAppContainer")]
        );
        assert_eq!(d.events.len(), 1);
        assert_eq!(d.summary.kind, Kind::SidecarSet);
        assert!(d.rollout.is_none() && d.clone_set.is_none() && d.analysis.is_none());
        assert_eq!(
            serde_json::to_value(&d.cells[3]).unwrap()[2],
            json!("N"),
            "the wire code of not upgradable"
        );
    }

    #[test]
    fn measurement_values_draw_as_the_number_or_the_first_of_a_vector() {
        assert_eq!(measured_value("0.01"), Some(0.01));
        assert_eq!(measured_value("[0.02]"), Some(0.02));
        assert_eq!(measured_value("[0.5, 0.7]"), Some(0.5));
        assert_eq!(measured_value("3"), Some(3.0));
        assert_eq!(measured_value(""), None);
        assert_eq!(measured_value("[]"), None);
        assert_eq!(measured_value("\"ok\""), None);
        assert_eq!(measured_value("{\"a\": 1}"), None);
    }

    #[test]
    fn the_analysis_chart_has_every_metrics_measurements_conditions_and_counts() {
        let mut r = rollout(4);
        assert_eq!(analysis_chart(&r), None, "no analysis, no chart");
        r = serde_json::from_value(json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"percent": 100, "sts": {"spec": {"replicas": 4, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}}, "template": {}}},
                "steps": [{"percent": 50}, {"analysis": {}}, {"percent": 100}],
                "analysis": {"metrics": [
                    {"name": "errors", "successCondition": "result[0] < 0.05", "failureCondition": "result[0] > 0.1",
                     "provider": {"prometheus": {"address": "http://p:9090", "query": "q"}}},
                    {"name": "latency", "successCondition": "result < 300",
                     "provider": {"web": {"url": "http://w/latency"}}}]}},
            "status": {"phase": "RolloutInProgress", "analysis": {
                "stepIndex": 1, "phase": "Running", "message": "measuring",
                "metrics": [{"name": "errors", "phase": "Running", "count": 3, "successful": 1, "failed": 0,
                             "inconclusive": 1, "error": 1, "consecutiveError": 1,
                             "measurements": [
                                 {"phase": "Successful", "value": "[0.01]", "finishedAt": "2026-12-06T12:00:00Z"},
                                 {"phase": "Inconclusive", "value": "[0.07]", "finishedAt": "2026-12-06T12:00:10Z"},
                                 {"phase": "Error", "message": "connection refused", "finishedAt": "2026-12-06T12:00:20Z"}]}]}}
        }))
        .unwrap();
        let chart = analysis_chart(&r).expect("a chart");
        assert_eq!(
            (
                chart.phase.as_str(),
                chart.message.as_str(),
                chart.step.as_str()
            ),
            ("Running", "measuring", "step 2 of 3")
        );
        assert_eq!(
            chart.metrics.len(),
            2,
            "the measured metric and the one not measured yet"
        );
        let errors = &chart.metrics[0];
        assert_eq!(
            (
                errors.success_condition.as_str(),
                errors.failure_condition.as_str()
            ),
            ("result[0] < 0.05", "result[0] > 0.1")
        );
        assert_eq!(
            (
                errors.count,
                errors.successful,
                errors.failed,
                errors.inconclusive,
                errors.error
            ),
            (3, 1, 0, 1, 1)
        );
        let t0 = "2026-12-06T12:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond();
        assert_eq!(
            errors
                .points
                .iter()
                .map(|p| (
                    p.at,
                    p.value,
                    p.phase.as_str(),
                    p.text.as_str(),
                    p.message.as_str()
                ))
                .collect::<Vec<_>>(),
            [
                (Some(t0), Some(0.01), "Successful", "[0.01]", ""),
                (Some(t0 + 10_000), Some(0.07), "Inconclusive", "[0.07]", ""),
                (Some(t0 + 20_000), None, "Error", "", "connection refused"),
            ]
        );
        let latency = &chart.metrics[1];
        assert_eq!(
            (
                latency.name.as_str(),
                latency.success_condition.as_str(),
                latency.points.len()
            ),
            ("latency", "result < 300", 0)
        );
        // The page carries it.
        let d = detail(Inputs {
            rollout: &r,
            pods: Vec::new(),
            revisions: Vec::new(),
            events: Vec::new(),
            history: Vec::new(),
            now: now(),
        });
        assert_eq!(d.analysis, Some(chart));
    }
}
