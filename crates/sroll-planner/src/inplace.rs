//! In-place pod updates, pure and workload-agnostic: whether a revision change can be made in place,
//! where one pod stands in its in-place update (read from the pod alone), the next step for it, and
//! the pod objects each write produces.
//!
//! This module knows pods, pod templates and ControllerRevisions (k8s-openapi types) and nothing of
//! `StatefulsetRollout`: every workload that updates pods in place (the StatefulSet rollout planner
//! today) calls this one implementation. The mechanism is OpenKruise's (`pkg/util/inplaceupdate`,
//! described in `docs/` and the project's reference notes), re-derived, not copied:
//!
//! ```text
//!  pod at an old revision, chosen by the caller
//!    │ TakeOutOfTraffic: one pods/status write: InPlaceUpdateReady=False + Ready=False
//!    ▼                   (the pod leaves every EndpointSlice at once)
//!  WaitGrace until the condition's lastTransitionTime + gracePeriodSeconds
//!    │ PatchImages: one pod update: new images, controller-revision-hash = target,
//!    ▼              template label/annotation changes, the state annotation
//!  WaitContainers until every changed container runs the new image and is ready
//!    │ MarkReady: pods/status InPlaceUpdateReady=True (the kubelet recomputes Ready)
//!    ▼
//!  Done
//! ```
//!
//! All state lives on the pod (the revision label, the [`STATE_ANNOTATION`], the
//! [`READINESS_GATE`] condition and its `lastTransitionTime`), so an operator restarted anywhere in
//! this sequence resumes from the pod. A pod is patched once: after [`Step::PatchImages`] its
//! revision label is the target, and a pod at its target revision is never patched again. A
//! rollback during the grace period makes the pod's (old) revision the target again: its step is
//! then [`Step::MarkReady`], which drops the pending change.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::{
    api::{
        apps::v1::ControllerRevision,
        core::v1::{Pod, PodCondition, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sroll_api::{labels, predicates};

/// The readiness gate (and pod condition type) an in-place update drives: while it is `False` the
/// pod is not Ready, so it is out of every EndpointSlice (OpenKruise's `InPlaceUpdateReady`).
pub const READINESS_GATE: &str = "InPlaceUpdateReady";
/// The pod annotation recording an in-place update: [`InPlaceState`] as JSON.
pub const STATE_ANNOTATION: &str = "sroll.io/inplace-update-state";
/// The pod annotation recording the in-place updates of SidecarSets' sidecars: a JSON map from
/// SidecarSet name to its [`InPlaceState`] (`crate::sidecar_set`). Its containers count in
/// [`PodInPlace::containers_pending`] like the workload's own, so no update puts the pod back in
/// traffic while any in-place restarted container is not Ready.
pub const SIDECAR_STATE_ANNOTATION: &str = "sroll.io/sidecarset-inplace-update-state";
/// How the message of the [`READINESS_GATE`] condition written by [`out_of_traffic`] starts; the
/// target revision follows.
pub const OUT_OF_TRAFFIC_MESSAGE_PREFIX: &str = "updating in place to revision ";
/// Reason of the [`READINESS_GATE`] condition while the pod is taken out of traffic.
pub const REASON_STARTED: &str = "StartInPlaceUpdate";
/// Reason of the [`READINESS_GATE`] condition once the pod may serve again.
pub const REASON_READY: &str = "InPlaceUpdateReady";
/// Reason of the `Ready` condition the out-of-traffic write sets (the kubelet's own reason for a
/// readiness gate that is not `True`, upstream `status.generateContainersReadyCondition`).
pub const REASON_GATES_NOT_READY: &str = "ReadinessGatesNotReady";

/// A change between two pod templates that can be made on a running pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InPlaceChange {
    /// The containers whose image changes, with the new image, in template order (containers,
    /// then init containers).
    pub images: Vec<ImageChange>,
    /// Template labels to set (new or changed) and to remove.
    pub labels: MetadataChange,
    /// Template annotations to set (new or changed) and to remove.
    pub annotations: MetadataChange,
}

/// One container's new image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageChange {
    /// The container's name.
    pub container: String,
    /// An init container (`spec.initContainers`), not a main one.
    pub init: bool,
    /// The new image.
    pub image: String,
}

/// Changes to a string map (labels or annotations).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataChange {
    /// Keys to set, with their new value.
    pub set: BTreeMap<String, String>,
    /// Keys to remove.
    pub remove: Vec<String>,
}

impl MetadataChange {
    fn between(
        old: Option<&BTreeMap<String, String>>,
        new: Option<&BTreeMap<String, String>>,
    ) -> Self {
        let empty = BTreeMap::new();
        let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
        MetadataChange {
            set: new
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            remove: old
                .keys()
                .filter(|k| !new.contains_key(*k))
                .cloned()
                .collect(),
        }
    }

    fn apply(&self, map: &mut Option<BTreeMap<String, String>>) {
        if self.set.is_empty() && self.remove.is_empty() {
            return;
        }
        let map = map.get_or_insert_with(BTreeMap::new);
        for k in &self.remove {
            map.remove(k);
        }
        map.extend(self.set.clone());
    }
}

impl InPlaceChange {
    /// The change restarts containers (some image changes), rather than only relabelling the pod.
    pub fn restarts_containers(&self) -> bool {
        !self.images.is_empty()
    }
}

/// Why a change cannot be made in place: the first field (in a stable order) that differs beyond
/// what a pod update may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotInPlace {
    /// Path of the field in the pod template, e.g. `spec.containers[0].env`.
    pub path: String,
    /// The new template adds the [`READINESS_GATE`] the old one lacks: the first rollout after
    /// switching to an in-place policy, which must recreate the pods once to give them the gate.
    pub introduces_gate: bool,
}

impl fmt::Display for NotInPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "template field {} changed: only container and init-container images and template labels/annotations can change in place",
            self.path
        )
    }
}

/// Whether going from `old` to `new` can be done on running pods: only
/// `spec.containers[*].image`, `spec.initContainers[*].image` and `metadata.labels` /
/// `metadata.annotations` may differ (the pod update rules of upstream `ValidatePodUpdate` allow a
/// few more fields, which a template change never needs in place). Containers are matched by
/// position and must keep their names: a container added, removed, renamed or moved is not in
/// place. Fields are compared as the API serializes them (an absent list equals an empty one only
/// if both serialize the same).
pub fn qualifies(
    old: &PodTemplateSpec,
    new: &PodTemplateSpec,
) -> Result<InPlaceChange, NotInPlace> {
    let introduces_gate = !has_gate_in(old) && has_gate_in(new);
    let not = |path: String| NotInPlace {
        path,
        introduces_gate,
    };
    let (old_meta, new_meta) = (
        old.metadata.clone().unwrap_or_default(),
        new.metadata.clone().unwrap_or_default(),
    );
    let strip = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        let mut m = m.clone();
        m.labels = None;
        m.annotations = None;
        to_object(&m)
    };
    if let Some(key) = first_difference(&strip(&old_meta), &strip(&new_meta), &[]) {
        return Err(not(format!("metadata.{key}")));
    }
    let old_spec = to_object(&old.spec.clone().unwrap_or_default());
    let new_spec = to_object(&new.spec.clone().unwrap_or_default());
    let lists = ["containers", "initContainers"];
    if let Some(key) = first_difference(&old_spec, &new_spec, &lists) {
        return Err(not(format!("spec.{key}")));
    }
    let mut images = Vec::new();
    for list in lists {
        let empty = Vec::new();
        let olds = old_spec
            .get(list)
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let news = new_spec
            .get(list)
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        if olds.len() != news.len() {
            return Err(not(format!("spec.{list}")));
        }
        for (i, (o, n)) in olds.iter().zip(news).enumerate() {
            let empty = serde_json::Map::new();
            let (o, n) = (
                o.as_object().unwrap_or(&empty),
                n.as_object().unwrap_or(&empty),
            );
            if o.get("name") != n.get("name") {
                return Err(not(format!("spec.{list}[{i}].name")));
            }
            if let Some(key) = first_difference(o, n, &["image"]) {
                return Err(not(format!("spec.{list}[{i}].{key}")));
            }
            if o.get("image") != n.get("image") {
                images.push(ImageChange {
                    container: n
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    init: list == "initContainers",
                    image: n
                        .get("image")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        }
    }
    Ok(InPlaceChange {
        images,
        labels: MetadataChange::between(old_meta.labels.as_ref(), new_meta.labels.as_ref()),
        annotations: MetadataChange::between(
            old_meta.annotations.as_ref(),
            new_meta.annotations.as_ref(),
        ),
    })
}

/// The pod template a ControllerRevision of a StatefulSet records: its `data` is upstream's
/// `getPatch` output, `{"spec":{"template":{…,"$patch":"replace"}}}`
/// (`pkg/controller/statefulset/stateful_set_utils.go`). `None` when the data is not that shape.
pub fn template_from_revision(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let data = revision.data.as_ref()?;
    let mut template = data.0.get("spec")?.get("template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

fn has_gate_in(template: &PodTemplateSpec) -> bool {
    template
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.condition_type == READINESS_GATE))
}

fn to_object<T: Serialize>(value: &T) -> serde_json::Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        // k8s-openapi structs always serialize to objects; anything else compares as empty.
        _ => serde_json::Map::new(),
    }
}

/// The first key (sorted) whose value differs between `a` and `b`, skipping `skip`.
fn first_difference(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    skip: &[&str],
) -> Option<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .find(|k| a.get(*k) != b.get(*k))
        .cloned()
}

/// What [`STATE_ANNOTATION`] records on a pod updated in place.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceState {
    /// The revision the pod was updated to.
    pub revision: String,
    /// When the images were patched (RFC 3339).
    pub update_timestamp: String,
    /// For each changed container, its `imageID` before the update: the update is done for a
    /// container when its status reports another `imageID`, or the new image string (a re-tag of
    /// the same digest keeps the `imageID`).
    #[serde(default)]
    pub last_container_statuses: BTreeMap<String, LastContainerStatus>,
}

/// A container's status before its in-place update.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LastContainerStatus {
    /// `status.containerStatuses[*].imageID` before the update.
    #[serde(rename = "imageID", default)]
    pub image_id: String,
}

/// Where one pod stands, read from the pod alone (compact, for the planner's snapshot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInPlace {
    /// The pod's spec lists the [`READINESS_GATE`].
    pub has_gate: bool,
    /// The [`READINESS_GATE`] condition: `Some(true)` True, `Some(false)` False, `None` absent
    /// (or Unknown).
    pub gate_ready: Option<bool>,
    /// `lastTransitionTime` of the gate condition.
    pub gate_since: Option<Timestamp>,
    /// The revision recorded in [`STATE_ANNOTATION`], if the pod was ever patched in place.
    pub state_revision: Option<String>,
    /// Containers the recorded update changed that do not yet run their new image and are not yet
    /// ready (empty when no update is recorded), the workload's ([`STATE_ANNOTATION`]) and the
    /// SidecarSets' ([`SIDECAR_STATE_ANNOTATION`]) together.
    pub containers_pending: Vec<String>,
}

impl PodInPlace {
    /// Reads the view from a pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let has_gate = pod
            .spec
            .as_ref()
            .and_then(|s| s.readiness_gates.as_ref())
            .is_some_and(|g| g.iter().any(|g| g.condition_type == READINESS_GATE));
        let gate = gate_condition(pod);
        let state = state(pod);
        let mut containers_pending = state
            .as_ref()
            .map(|s| pending_containers(pod, s))
            .unwrap_or_default();
        let sidecars: BTreeMap<String, InPlaceState> =
            crate::sidecar_set::read_map(pod, SIDECAR_STATE_ANNOTATION);
        for s in sidecars.values() {
            for name in pending_containers(pod, s) {
                if !containers_pending.contains(&name) {
                    containers_pending.push(name);
                }
            }
        }
        PodInPlace {
            has_gate,
            gate_ready: gate.and_then(|c| match c.status.as_str() {
                "True" => Some(true),
                "False" => Some(false),
                _ => None,
            }),
            gate_since: gate.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0)),
            state_revision: state.map(|s| s.revision),
            containers_pending,
        }
    }

    /// The pod is somewhere in an in-place update (out of traffic by the gate, or restarting
    /// containers of a recorded update) rather than idle.
    pub fn in_progress(&self, revision: Option<&str>) -> bool {
        self.gate_ready == Some(false)
            || (self
                .state_revision
                .as_deref()
                .is_some_and(|r| Some(r) == revision)
                && !self.containers_pending.is_empty())
    }
}

/// The next step of one pod's in-place update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// One pods/status write: `InPlaceUpdateReady=False` and `Ready=False`
    /// ([`out_of_traffic`]).
    TakeOutOfTraffic,
    /// Out of traffic; the images change at `until`: the gate condition's `lastTransitionTime` plus
    /// the grace period plus one second (the time has whole seconds, truncated), so the pod is
    /// out of traffic at least the grace period.
    WaitGrace {
        /// When the grace period ends.
        until: Timestamp,
    },
    /// One pod update: images, revision label, metadata, state annotation ([`patched`]).
    PatchImages,
    /// The images are patched; these containers do not run the new image and are not ready yet.
    WaitContainers {
        /// Their names.
        pending: Vec<String>,
    },
    /// One pods/status write: `InPlaceUpdateReady=True` ([`marked_ready`]).
    MarkReady,
    /// Nothing to do.
    Done,
}

/// The next step for a pod whose `controller-revision-hash` is `revision` (`None`: unlabelled),
/// `target` being the revision it must reach. A pod not at `target` is assumed chosen by the caller
/// for an in-place update (the caller checked that the change qualifies and fits the budget); a pod
/// at `target` only finishes what is under way: its recorded update's containers, and the gate
/// condition (also written for a pod created with the gate, which has no condition yet and would
/// otherwise never be Ready, and for a pod whose pending change a rollback dropped).
pub fn next_step(
    view: &PodInPlace,
    revision: Option<&str>,
    target: &str,
    grace_seconds: i64,
    now: Timestamp,
) -> Step {
    if revision == Some(target) {
        if view.state_revision.as_deref() == Some(target) && !view.containers_pending.is_empty() {
            return Step::WaitContainers {
                pending: view.containers_pending.clone(),
            };
        }
        if view.has_gate && view.gate_ready != Some(true) {
            return Step::MarkReady;
        }
        return Step::Done;
    }
    if view.gate_ready != Some(false) {
        return Step::TakeOutOfTraffic;
    }
    let since = view.gate_since.unwrap_or(now);
    // A condition's lastTransitionTime has whole seconds (truncated): one more second makes the
    // grace period at least as long as asked.
    let grace = match grace_seconds.max(0) {
        0 => 0,
        g => g + 1,
    };
    let until = since
        .checked_add(SignedDuration::from_secs(grace))
        .unwrap_or(since);
    if until > now {
        Step::WaitGrace { until }
    } else {
        Step::PatchImages
    }
}

/// Whether a pod that nobody is updating needs [`Step::MarkReady`]: it has the gate but no
/// condition for it (created from a template with the gate), so it can never become Ready.
pub fn needs_initial_mark(view: &PodInPlace) -> bool {
    view.has_gate && view.gate_ready.is_none() && view.state_revision.is_none()
}

fn gate_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == READINESS_GATE)
}

fn state(pod: &Pod) -> Option<InPlaceState> {
    let raw = pod.metadata.annotations.as_ref()?.get(STATE_ANNOTATION)?;
    serde_json::from_str(raw).ok()
}

/// `image` with a tag: an untagged, undigested reference means `:latest` (as the kubelet and
/// OpenKruise normalise it).
fn normalise(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

fn pending_containers(pod: &Pod, state: &InPlaceState) -> Vec<String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let specs = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let statuses: Vec<_> = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .collect();
    let mut pending = Vec::new();
    for (name, last) in &state.last_container_statuses {
        let want = specs
            .clone()
            .find(|c| &c.name == name)
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let done = statuses.iter().find(|s| &s.name == name).is_some_and(|s| {
            let new_image = s.image_id != last.image_id || normalise(&s.image) == normalise(&want);
            let running = s.state.as_ref().is_some_and(|st| st.running.is_some());
            new_image && running && s.ready
        });
        if !done {
            pending.push(name.clone());
        }
    }
    pending
}

/// One write of an in-place update to one pod, as a plan carries it to the executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodWrite {
    /// The pod's name.
    pub pod: String,
    /// The pod's uid when the write was planned: the executor writes only that incarnation.
    pub uid: String,
    /// What to write.
    pub op: Op,
}

/// The three writes of an in-place update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// pods/status: [`out_of_traffic`] towards `target`.
    TakeOutOfTraffic {
        /// The revision the pod is moving to.
        target: String,
    },
    /// The pod itself: [`patched`] from revision `from` (the executor refuses a pod whose
    /// revision label is no longer `from`) to `target`.
    PatchImages {
        /// The pod's revision when planned.
        from: String,
        /// The revision the pod moves to.
        target: String,
        /// Images and metadata to change.
        change: InPlaceChange,
    },
    /// pods/status: [`marked_ready`].
    MarkReady,
    /// The pod itself: a SidecarSet's sidecars from version `from` to `target`
    /// (`crate::sidecar_set`; the executor refuses a pod whose recorded version of the SidecarSet
    /// is no longer `from`, or that has the [`READINESS_GATE`] and is not out of traffic yet).
    /// The workload's revision label is not touched.
    PatchSidecars {
        /// The SidecarSet.
        sidecar_set: String,
        /// The pod's version of the SidecarSet when planned.
        from: String,
        /// The version it moves to.
        target: String,
        /// The sidecars' new images.
        change: InPlaceChange,
    },
}

impl Op {
    /// PascalCase name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Op::TakeOutOfTraffic { .. } => "TakeOutOfTraffic",
            Op::PatchImages { .. } => "PatchImages",
            Op::MarkReady => "MarkReady",
            Op::PatchSidecars { .. } => "PatchSidecars",
        }
    }

    /// Whether this write still applies to a pod at `revision` standing at `view`: not at the
    /// target and not out of traffic yet (take out of traffic), still at the planned revision and
    /// out of traffic (patch), every recorded container done and the gate not `True` (mark).
    fn applies(&self, view: &PodInPlace, revision: Option<&str>) -> bool {
        match self {
            Op::TakeOutOfTraffic { target } => {
                revision != Some(target.as_str()) && view.gate_ready != Some(false)
            }
            Op::PatchImages { from, .. } => {
                revision == Some(from.as_str()) && view.gate_ready == Some(false)
            }
            Op::MarkReady => {
                view.has_gate && view.gate_ready != Some(true) && view.containers_pending.is_empty()
            }
            // Needs the pod's SidecarSet hash: judged by `apply` on the pod itself, never offered
            // as a status patch.
            Op::PatchSidecars { .. } => false,
        }
    }

    /// The pod `pod` becomes with this write, or `None` when the write no longer applies to it
    /// (re-checked by the executor on a fresh copy of the pod: another revision than planned, or
    /// nothing to change), so a stale plan never updates a pod twice.
    pub fn apply(&self, pod: &Pod, now: Timestamp) -> Option<Pod> {
        let view = PodInPlace::from_pod(pod);
        match self {
            // A sidecar write is judged on the pod's SidecarSet hash, which the view lacks.
            Op::PatchSidecars {
                sidecar_set,
                from,
                target,
                change,
            } => (crate::sidecar_set::pod_hash(pod, sidecar_set).as_deref() == Some(from.as_str())
                && (!view.has_gate || view.gate_ready == Some(false)))
            .then(|| crate::sidecar_set::patched_sidecars(pod, sidecar_set, change, target, now)),
            _ if !self.applies(&view, revision_of(pod)) => None,
            Op::TakeOutOfTraffic { target } => Some(out_of_traffic(pod, target, now)),
            Op::PatchImages { target, change, .. } => Some(patched(pod, change, target, now)),
            Op::MarkReady => Some(marked_ready(pod, now)),
        }
    }

    /// The `pods/status` write of this step as a strategic merge patch on the pod as `seen` (the
    /// operator's watch cache), so the executor writes without reading the pod first. The patch
    /// carries `metadata.resourceVersion`: the API server applies it only to that exact version of
    /// the pod (else 409 Conflict, and the executor falls back to a fresh read and [`Op::apply`]),
    /// so the write is re-checked on the object it changes, as with a read. Its conditions are
    /// those [`Op::apply`] would write, merged by `type`: the other conditions are left alone, and
    /// a `lastTransitionTime` is sent only for a condition whose status changes.
    ///
    /// `None`: not a status write ([`Op::PatchImages`] needs the pod's container statuses), the
    /// write does not apply to the pod as seen, or its resourceVersion is unknown.
    pub fn status_patch(&self, seen: &SeenPod, now: Timestamp) -> Option<Value> {
        if seen.resource_version.is_empty()
            || !self.applies(&seen.in_place, seen.revision.as_deref())
        {
            return None;
        }
        let condition = |type_: &str, status: &str, reason: &str, message: &str, moved: bool| {
            let mut c = serde_json::json!({
                "type": type_, "status": status, "reason": reason, "message": message,
            });
            if moved {
                c["lastTransitionTime"] = serde_json::json!(Time(now));
            }
            c
        };
        // The gate changes status in both writes (`applies` checked it is not there yet).
        let conditions = match self {
            Op::TakeOutOfTraffic { target } => vec![
                condition(
                    READINESS_GATE,
                    "False",
                    REASON_STARTED,
                    &started_message(target),
                    true,
                ),
                condition(
                    predicates::POD_READY,
                    "False",
                    REASON_GATES_NOT_READY,
                    &gates_not_ready_message(),
                    seen.ready != Some(false),
                ),
            ],
            Op::MarkReady => vec![condition(READINESS_GATE, "True", REASON_READY, "", true)],
            Op::PatchImages { .. } | Op::PatchSidecars { .. } => return None,
        };
        Some(serde_json::json!({
            "metadata": {"resourceVersion": seen.resource_version},
            "status": {"conditions": conditions},
        }))
    }
}

/// What the operator's watch cache says of a pod: enough to write the status steps of an in-place
/// update ([`Op::status_patch`]) without reading the pod first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenPod {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion` (empty: unknown).
    pub resource_version: String,
    /// The `controller-revision-hash` label.
    pub revision: Option<String>,
    /// The `Ready` condition: `Some(true)` True, `Some(false)` False, `None` absent (or Unknown).
    pub ready: Option<bool>,
    /// Where the pod stands in an in-place update.
    pub in_place: PodInPlace,
}

impl SeenPod {
    /// Reads the view from a whole pod.
    pub fn from_pod(pod: &Pod) -> Self {
        SeenPod {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            resource_version: pod.metadata.resource_version.clone().unwrap_or_default(),
            revision: revision_of(pod).map(str::to_owned),
            ready: predicates::pod_ready_condition(pod).and_then(|c| match c.status.as_str() {
                "True" => Some(true),
                "False" => Some(false),
                _ => None,
            }),
            in_place: PodInPlace::from_pod(pod),
        }
    }
}

/// The pod's `controller-revision-hash` label.
fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::REVISION))
        .map(String::as_str)
}

/// The gate condition's message while the pod is out of traffic for `target`.
fn started_message(target: &str) -> String {
    format!("{OUT_OF_TRAFFIC_MESSAGE_PREFIX}{target}")
}

/// The `Ready` condition's message while the gate holds the pod (the kubelet's own wording).
fn gates_not_ready_message() -> String {
    format!("the status of pod readiness gate \"{READINESS_GATE}\" is not \"True\", but False")
}

/// `pod` with `type_` set to `status` (its `lastTransitionTime` moves only when the status does).
fn with_condition(
    pod: &Pod,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Pod {
    let mut pod = pod.clone();
    let conditions = pod
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(Time(now));
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
        }
        None => conditions.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(Time(now)),
            ..PodCondition::default()
        }),
    }
    pod
}

/// The pod for the [`Step::TakeOutOfTraffic`] status write: `InPlaceUpdateReady=False` (reason
/// [`REASON_STARTED`]) and `Ready=False` (reason [`REASON_GATES_NOT_READY`]) in one write, so the
/// EndpointSlice controller drops the pod at once instead of after the kubelet's next sync.
pub fn out_of_traffic(pod: &Pod, target: &str, now: Timestamp) -> Pod {
    let pod = with_condition(
        pod,
        READINESS_GATE,
        "False",
        REASON_STARTED,
        &started_message(target),
        now,
    );
    with_condition(
        &pod,
        predicates::POD_READY,
        "False",
        REASON_GATES_NOT_READY,
        &gates_not_ready_message(),
        now,
    )
}

/// The pod for the [`Step::MarkReady`] status write: `InPlaceUpdateReady=True`. `Ready` is left to
/// the kubelet, which recomputes it from the containers and every gate.
pub fn marked_ready(pod: &Pod, now: Timestamp) -> Pod {
    with_condition(pod, READINESS_GATE, "True", REASON_READY, "", now)
}

/// The pod for the [`Step::PatchImages`] update: every changed container's image, `change`'s label
/// and annotation edits, the revision label set to `target`, and [`STATE_ANNOTATION`] recording the
/// target, the instant and the changed containers' current `imageID`s. Only fields a pod update may
/// change are touched.
pub fn patched(pod: &Pod, change: &InPlaceChange, target: &str, now: Timestamp) -> Pod {
    let mut pod = pod.clone();
    let status = pod.status.clone().unwrap_or_default();
    let mut last = BTreeMap::new();
    if let Some(spec) = pod.spec.as_mut() {
        for c in &change.images {
            let list = if c.init {
                spec.init_containers.get_or_insert_with(Vec::new)
            } else {
                &mut spec.containers
            };
            if let Some(container) = list.iter_mut().find(|x| x.name == c.container) {
                container.image = Some(c.image.clone());
                let statuses = if c.init {
                    status.init_container_statuses.as_ref()
                } else {
                    status.container_statuses.as_ref()
                };
                let image_id = statuses
                    .and_then(|s| s.iter().find(|s| s.name == c.container))
                    .map(|s| s.image_id.clone())
                    .unwrap_or_default();
                last.insert(c.container.clone(), LastContainerStatus { image_id });
            }
        }
    }
    change.labels.apply(&mut pod.metadata.labels);
    change.annotations.apply(&mut pod.metadata.annotations);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::REVISION.into(), target.into());
    let state = InPlaceState {
        revision: target.into(),
        update_timestamp: now.to_string(),
        last_container_statuses: last,
    };
    // Serializing a struct of strings and maps of strings cannot fail.
    let json = serde_json::to_string(&state).unwrap_or_default();
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(STATE_ANNOTATION.into(), json);
    pod
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::{
            Container, ContainerState, ContainerStateRunning, ContainerStateWaiting,
            ContainerStatus, EnvVar, PodReadinessGate, PodSpec, PodStatus, ResourceRequirements,
        },
        apimachinery::pkg::runtime::RawExtension,
        apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
    };
    use serde_json::json;

    use super::*;

    fn container(name: &str, image: &str) -> Container {
        Container {
            name: name.into(),
            image: Some(image.into()),
            ..Container::default()
        }
    }

    fn template(containers: Vec<Container>) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers,
                readiness_gates: Some(vec![PodReadinessGate {
                    condition_type: READINESS_GATE.into(),
                }]),
                ..PodSpec::default()
            }),
        }
    }

    fn base() -> PodTemplateSpec {
        template(vec![
            container("app", "app:1"),
            container("proxy", "envoy:1"),
        ])
    }

    fn edit(f: impl FnOnce(&mut PodTemplateSpec)) -> PodTemplateSpec {
        let mut t = base();
        f(&mut t);
        t
    }

    fn spec_mut(t: &mut PodTemplateSpec) -> &mut PodSpec {
        t.spec.as_mut().expect("the test templates have a spec")
    }

    #[test]
    fn only_images_and_template_metadata_qualify_for_an_in_place_update() {
        type Case = (
            &'static str,
            PodTemplateSpec,
            Result<Vec<(&'static str, bool, &'static str)>, &'static str>,
        );
        let cases: Vec<Case> = vec![
            ("nothing changes", base(), Ok(vec![])),
            (
                "one image",
                edit(|t| spec_mut(t).containers[0].image = Some("app:2".into())),
                Ok(vec![("app", false, "app:2")]),
            ),
            (
                "two images",
                edit(|t| {
                    spec_mut(t).containers[0].image = Some("app:2".into());
                    spec_mut(t).containers[1].image = Some("envoy:2".into());
                }),
                Ok(vec![("app", false, "app:2"), ("proxy", false, "envoy:2")]),
            ),
            (
                "labels and annotations",
                edit(|t| {
                    let m = t.metadata.as_mut().expect("metadata");
                    m.labels = Some(
                        [
                            ("app".to_owned(), "web".to_owned()),
                            ("tier".to_owned(), "1".to_owned()),
                        ]
                        .into(),
                    );
                    m.annotations = Some([("note".to_owned(), "x".to_owned())].into());
                }),
                Ok(vec![]),
            ),
            (
                "an env var",
                edit(|t| {
                    spec_mut(t).containers[0].image = Some("app:2".into());
                    spec_mut(t).containers[0].env = Some(vec![EnvVar {
                        name: "MODE".into(),
                        value: Some("fast".into()),
                        value_from: None,
                    }]);
                }),
                Err("spec.containers[0].env"),
            ),
            (
                "resources",
                edit(|t| {
                    spec_mut(t).containers[1].resources = Some(ResourceRequirements {
                        requests: Some([("cpu".to_owned(), Quantity("100m".into()))].into()),
                        ..ResourceRequirements::default()
                    })
                }),
                Err("spec.containers[1].resources"),
            ),
            (
                "containers reordered",
                template(vec![
                    container("proxy", "envoy:1"),
                    container("app", "app:1"),
                ]),
                Err("spec.containers[0].name"),
            ),
            (
                "a container added",
                edit(|t| spec_mut(t).containers.push(container("log", "fluent:1"))),
                Err("spec.containers"),
            ),
            (
                "a container removed",
                template(vec![container("app", "app:2")]),
                Err("spec.containers"),
            ),
            (
                "an init container's image",
                // Compared against a base with the init container at `migrate:1` (below).
                edit(|t| {
                    spec_mut(t).init_containers = Some(vec![container("migrate", "migrate:2")])
                }),
                Ok(vec![("migrate", true, "migrate:2")]),
            ),
            (
                "a pod-level field",
                edit(|t| spec_mut(t).service_account_name = Some("other".into())),
                Err("spec.serviceAccountName"),
            ),
            (
                "the template's name",
                edit(|t| t.metadata.as_mut().expect("metadata").name = Some("x".into())),
                Err("metadata.name"),
            ),
        ];
        for (what, new, want) in cases {
            let old = if what == "an init container's image" {
                edit(|t| {
                    spec_mut(t).init_containers = Some(vec![container("migrate", "migrate:1")])
                })
            } else {
                base()
            };
            let got = qualifies(&old, &new);
            match want {
                Ok(images) => {
                    let change = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                    let got: Vec<(&str, bool, &str)> = change
                        .images
                        .iter()
                        .map(|c| (c.container.as_str(), c.init, c.image.as_str()))
                        .collect();
                    assert_eq!(got, images, "{what}");
                }
                Err(path) => {
                    let e = got.expect_err(what);
                    assert_eq!(e.path, path, "{what}");
                    assert!(!e.introduces_gate, "{what}");
                    assert!(e.to_string().contains(path), "{what}: {e}");
                }
            }
        }
    }

    #[test]
    fn label_and_annotation_edits_are_computed_both_ways() {
        let new = edit(|t| {
            t.metadata.as_mut().expect("metadata").labels =
                Some([("tier".to_owned(), "1".to_owned())].into());
        });
        let change = qualifies(&base(), &new).expect("metadata only");
        assert_eq!(
            change.labels.set,
            BTreeMap::from([("tier".to_owned(), "1".to_owned())])
        );
        assert_eq!(change.labels.remove, ["app"]);
        assert!(!change.restarts_containers());
    }

    #[test]
    fn adding_the_readiness_gate_is_not_in_place_and_says_so() {
        let old = edit(|t| spec_mut(t).readiness_gates = None);
        let new = edit(|t| spec_mut(t).containers[0].image = Some("app:2".into()));
        let e = qualifies(&old, &new).expect_err("a new readiness gate is a pod spec change");
        assert_eq!(e.path, "spec.readinessGates");
        assert!(e.introduces_gate);
    }

    #[test]
    fn the_template_is_read_from_a_statefulset_controller_revision() {
        let t = base();
        let mut data = serde_json::to_value(&t).expect("serializes");
        data["$patch"] = json!("replace");
        let cr = ControllerRevision {
            data: Some(RawExtension(json!({"spec": {"template": data}}))),
            revision: 1,
            ..ControllerRevision::default()
        };
        assert_eq!(template_from_revision(&cr), Some(t));
        let other = ControllerRevision {
            data: Some(RawExtension(json!({"spec": {}}))),
            ..ControllerRevision::default()
        };
        assert_eq!(template_from_revision(&other), None);
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("in range")
    }

    fn running(name: &str, image: &str, image_id: &str, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: image.into(),
            image_id: image_id.into(),
            ready,
            restart_count: 0,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn pod(revision: &str) -> Pod {
        let t = base();
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                labels: Some(
                    [
                        ("app".to_owned(), "web".to_owned()),
                        (labels::REVISION.to_owned(), revision.to_owned()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: t.spec,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![
                    PodCondition {
                        type_: READINESS_GATE.into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(at(0))),
                        ..PodCondition::default()
                    },
                    PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(at(0))),
                        ..PodCondition::default()
                    },
                ]),
                container_statuses: Some(vec![
                    running("app", "app:1", "sha-app1", true),
                    running("proxy", "envoy:1", "sha-envoy1", true),
                ]),
                ..PodStatus::default()
            }),
        }
    }

    fn image_change() -> InPlaceChange {
        qualifies(
            &base(),
            &edit(|t| spec_mut(t).containers[0].image = Some("app:2".into())),
        )
        .expect("image only")
    }

    fn set_status(p: &mut Pod, name: &str, s: ContainerStatus) {
        let statuses = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
            .expect("statuses");
        if let Some(x) = statuses.iter_mut().find(|x| x.name == name) {
            *x = s;
        }
    }

    /// Every stage of one update, each read back from the pod alone (as after an operator
    /// restart): the step is a function of the pod, the target, the grace period and the instant.
    #[test]
    fn the_next_step_of_a_pod_comes_from_the_pod_alone() {
        let grace = 10;
        let change = image_change();
        let old = pod("rev-1");
        let step = |p: &Pod, now: i64| {
            let revision = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::REVISION))
                .cloned();
            next_step(
                &PodInPlace::from_pod(p),
                revision.as_deref(),
                "rev-2",
                grace,
                at(now),
            )
        };
        assert_eq!(step(&old, 100), Step::TakeOutOfTraffic);

        let out = out_of_traffic(&old, "rev-2", at(100));
        assert!(
            !predicates::is_pod_ready(&out),
            "Ready=False in the same write"
        );
        assert_eq!(step(&out, 100), Step::WaitGrace { until: at(111) });
        assert_eq!(step(&out, 110), Step::WaitGrace { until: at(111) });
        assert_eq!(step(&out, 111), Step::PatchImages);

        let patched = patched(&out, &change, "rev-2", at(111));
        let spec = patched.spec.as_ref().expect("spec");
        assert_eq!(spec.containers[0].image.as_deref(), Some("app:2"));
        assert_eq!(
            spec.containers[1].image.as_deref(),
            Some("envoy:1"),
            "untouched"
        );
        let state = super::state(&patched).expect("state annotation");
        assert_eq!(state.revision, "rev-2");
        assert_eq!(
            state
                .last_container_statuses
                .get("app")
                .map(|s| s.image_id.as_str()),
            Some("sha-app1")
        );
        assert!(!state.last_container_statuses.contains_key("proxy"));
        assert_eq!(
            step(&patched, 111),
            Step::WaitContainers {
                pending: vec!["app".into()]
            },
            "the kubelet has not restarted the container yet"
        );

        // Restarting: waiting, then running the new image but not ready, then ready.
        let mut restarting = patched.clone();
        set_status(
            &mut restarting,
            "app",
            ContainerStatus {
                name: "app".into(),
                image: "app:2".into(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ContainerCreating".into()),
                        message: None,
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            },
        );
        assert!(matches!(
            step(&restarting, 112),
            Step::WaitContainers { .. }
        ));
        set_status(
            &mut restarting,
            "app",
            running("app", "app:2", "sha-app2", false),
        );
        assert!(matches!(
            step(&restarting, 113),
            Step::WaitContainers { .. }
        ));
        set_status(
            &mut restarting,
            "app",
            running("app", "app:2", "sha-app2", true),
        );
        assert_eq!(step(&restarting, 114), Step::MarkReady);

        let ready = marked_ready(&restarting, at(115));
        assert_eq!(step(&ready, 115), Step::Done);
        assert_eq!(step(&ready, 999), Step::Done, "never updated twice");
    }

    #[test]
    fn a_retag_of_the_same_digest_is_done_when_the_image_string_matches() {
        let patched = patched(
            &out_of_traffic(&pod("rev-1"), "rev-2", at(0)),
            &image_change(),
            "rev-2",
            at(0),
        );
        let mut p = patched.clone();
        set_status(&mut p, "app", running("app", "app:1", "sha-app1", true));
        assert_eq!(
            PodInPlace::from_pod(&p).containers_pending,
            ["app"],
            "old image still runs"
        );
        set_status(
            &mut p,
            "app",
            running("app", "docker.io/app:2", "sha-app1", true),
        );
        assert_eq!(
            PodInPlace::from_pod(&p).containers_pending,
            ["app"],
            "another string"
        );
        set_status(&mut p, "app", running("app", "app:2", "sha-app1", true));
        assert!(
            PodInPlace::from_pod(&p).containers_pending.is_empty(),
            "same digest, new tag"
        );
        assert_eq!(normalise("app"), "app:latest");
        assert_eq!(normalise("registry:5000/app"), "registry:5000/app:latest");
        assert_eq!(normalise("app@sha256:ab"), "app@sha256:ab");
    }

    #[test]
    fn a_rollback_during_the_grace_period_drops_the_pending_change() {
        let out = out_of_traffic(&pod("rev-1"), "rev-2", at(0));
        let view = PodInPlace::from_pod(&out);
        assert!(view.in_progress(Some("rev-1")));
        // The target is the pod's own revision again: only the gate is put back.
        assert_eq!(
            next_step(&view, Some("rev-1"), "rev-1", 30, at(5)),
            Step::MarkReady
        );
        let back = marked_ready(&out, at(5));
        let view = PodInPlace::from_pod(&back);
        assert_eq!(
            next_step(&view, Some("rev-1"), "rev-1", 30, at(6)),
            Step::Done
        );
        assert!(!view.in_progress(Some("rev-1")));
        assert_eq!(
            back.spec.as_ref().map(|s| s.containers[0].image.clone()),
            Some(Some("app:1".into())),
            "the images never changed"
        );
    }

    #[test]
    fn a_pod_created_with_the_gate_gets_its_condition_once() {
        let mut fresh = pod("rev-2");
        if let Some(c) = fresh.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c.retain(|c| c.type_ != READINESS_GATE);
        }
        let view = PodInPlace::from_pod(&fresh);
        assert!(needs_initial_mark(&view));
        assert_eq!(
            next_step(&view, Some("rev-2"), "rev-2", 0, at(0)),
            Step::MarkReady
        );
        let marked = marked_ready(&fresh, at(1));
        assert!(!needs_initial_mark(&PodInPlace::from_pod(&marked)));
        // A pod without the gate needs nothing.
        let mut plain = fresh.clone();
        if let Some(s) = plain.spec.as_mut() {
            s.readiness_gates = None;
        }
        let view = PodInPlace::from_pod(&plain);
        assert!(!needs_initial_mark(&view));
        assert_eq!(
            next_step(&view, Some("rev-2"), "rev-2", 0, at(0)),
            Step::Done
        );
    }

    #[test]
    fn the_patch_applies_template_metadata_and_keeps_the_controllers_labels() {
        let new = edit(|t| {
            let m = t.metadata.as_mut().expect("metadata");
            m.labels = Some(
                [
                    ("app".to_owned(), "web".to_owned()),
                    ("tier".to_owned(), "1".to_owned()),
                ]
                .into(),
            );
            m.annotations = Some([("note".to_owned(), "x".to_owned())].into());
            spec_mut(t).containers[1].image = Some("envoy:2".into());
        });
        let change = qualifies(&base(), &new).expect("in place");
        let p = patched(&pod("rev-1"), &change, "rev-2", at(0));
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("tier").map(String::as_str), Some("1"));
        assert_eq!(
            labels.get(labels::REVISION).map(String::as_str),
            Some("rev-2")
        );
        let ann = p.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(ann.get("note").map(String::as_str), Some("x"));
        assert!(ann.contains_key(STATE_ANNOTATION));
        // The status is untouched by a pod update: only the status writes change conditions.
        assert_eq!(p.status, pod("rev-1").status);
    }

    /// `gracePeriodSeconds: 0` (the default): the images are patched as soon as the pod is out of
    /// traffic, in the same instant, even though the stored `lastTransitionTime` has whole seconds
    /// (truncated: here 0.9 s earlier than the write) — no rounding up to the next second, as
    /// OpenKruise updates at once with a zero grace period.
    #[test]
    fn with_a_zero_grace_period_the_images_are_patched_the_instant_the_pod_leaves_traffic() {
        let written = at(100)
            .checked_add(SignedDuration::from_millis(900))
            .expect("in range");
        let out = out_of_traffic(&pod("rev-1"), "rev-2", written);
        // What the operator reads back: the condition time serialized in whole seconds.
        let out: Pod = serde_json::from_value(serde_json::to_value(&out).expect("serializes"))
            .expect("deserializes");
        let view = PodInPlace::from_pod(&out);
        assert_eq!(view.gate_since, Some(at(100)), "stored truncated");
        for now in [written, at(100)] {
            assert_eq!(
                next_step(&view, Some("rev-1"), "rev-2", 0, now),
                Step::PatchImages,
                "no wait at {now}"
            );
        }
        assert!(
            Op::PatchImages {
                from: "rev-1".into(),
                target: "rev-2".into(),
                change: image_change(),
            }
            .apply(&out, written)
            .is_some(),
            "the executor patches the pod it just took out of traffic"
        );
        // A grace period of one second still holds the pod at least one second.
        assert_eq!(
            next_step(&view, Some("rev-1"), "rev-2", 1, written),
            Step::WaitGrace { until: at(102) }
        );
    }

    #[test]
    fn the_out_of_traffic_write_moves_transition_times_only_on_change() {
        let out = out_of_traffic(&pod("rev-1"), "rev-2", at(50));
        let again = out_of_traffic(&out, "rev-2", at(60));
        let gate = gate_condition(&again).expect("gate condition");
        assert_eq!(gate.status, "False");
        assert_eq!(gate.reason.as_deref(), Some(REASON_STARTED));
        assert_eq!(
            gate.last_transition_time,
            Some(Time(at(50))),
            "the grace period starts once"
        );
    }

    /// `pod` after the API server applies `patch` to its status: a strategic merge of
    /// `status.conditions` by `type`, field by field (the patch strategy of `PodStatus.conditions`).
    fn merged(pod: &Pod, patch: &Value) -> Pod {
        let mut v = serde_json::to_value(pod).expect("serializes");
        if v["status"]["conditions"].is_null() {
            v["status"]["conditions"] = json!([]);
        }
        let conditions = v["status"]["conditions"]
            .as_array_mut()
            .expect("a list of conditions");
        for c in patch["status"]["conditions"]
            .as_array()
            .expect("conditions")
        {
            match conditions.iter_mut().find(|x| x["type"] == c["type"]) {
                Some(x) => {
                    for (k, val) in c.as_object().expect("an object") {
                        x[k] = val.clone();
                    }
                }
                None => conditions.push(c.clone()),
            }
        }
        serde_json::from_value(v).expect("deserializes")
    }

    /// Through JSON, as the API server stores it (whole-second times).
    fn stored(pod: &Pod) -> Pod {
        serde_json::from_value(serde_json::to_value(pod).expect("serializes"))
            .expect("deserializes")
    }

    #[test]
    fn each_status_patch_writes_what_a_read_and_replace_would_write() {
        let with_rv = |mut p: Pod| {
            p.metadata.resource_version = Some("7".into());
            p
        };
        let idle = with_rv(pod("rev-1"));
        // Already not Ready (a container restarted on its own): Ready's transition time stays.
        let mut unready = idle.clone();
        for c in unready
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .expect("conditions")
            .iter_mut()
            .filter(|c| c.type_ == "Ready")
        {
            c.status = "False".into();
        }
        // Patched, its containers done: to be marked ready.
        let change = image_change();
        let mut restarted = patched(
            &out_of_traffic(&idle, "rev-2", at(10)),
            &change,
            "rev-2",
            at(10),
        );
        set_status(
            &mut restarted,
            "app",
            running("app", "app:2", "sha-app2", true),
        );
        // Created from a template with the gate: no gate condition yet.
        let mut fresh = with_rv(pod("rev-2"));
        if let Some(c) = fresh.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c.retain(|c| c.type_ != READINESS_GATE);
        }
        let take_out = Op::TakeOutOfTraffic {
            target: "rev-2".into(),
        };
        for (what, op, p) in [
            ("take a Ready pod out", &take_out, &idle),
            ("take an unready pod out", &take_out, &unready),
            ("mark a restarted pod ready", &Op::MarkReady, &restarted),
            ("give a new pod its condition", &Op::MarkReady, &fresh),
        ] {
            let now = at(20);
            let patch = op
                .status_patch(&SeenPod::from_pod(p), now)
                .unwrap_or_else(|| panic!("{what}: a patch"));
            assert_eq!(patch["metadata"], json!({"resourceVersion": "7"}), "{what}");
            assert_eq!(
                patch.as_object().map(|o| o.len()),
                Some(2),
                "{what}: metadata and status only"
            );
            let replaced = op.apply(p, now).expect("applies");
            assert_eq!(
                stored(&merged(p, &patch)).status,
                stored(&replaced).status,
                "{what}"
            );
        }
        // The transition times the patches carry: the gate's always, Ready's only when it moves.
        let patch = take_out
            .status_patch(&SeenPod::from_pod(&unready), at(20))
            .expect("a patch");
        assert!(patch["status"]["conditions"][1]["lastTransitionTime"].is_null());
        assert_eq!(
            patch["status"]["conditions"][0]["lastTransitionTime"],
            json!(Time(at(20)))
        );
    }

    #[test]
    fn a_status_patch_is_offered_only_where_the_write_applies_on_the_pod_as_seen() {
        let mut idle = pod("rev-1");
        idle.metadata.resource_version = Some("7".into());
        let take_out = Op::TakeOutOfTraffic {
            target: "rev-2".into(),
        };
        let out = out_of_traffic(&idle, "rev-2", at(1));
        let patching = Op::PatchImages {
            from: "rev-1".into(),
            target: "rev-2".into(),
            change: image_change(),
        };
        let restarting = patched(&out, &image_change(), "rev-2", at(1));
        let mut unknown_version = SeenPod::from_pod(&idle);
        unknown_version.resource_version.clear();
        for (what, op, seen) in [
            ("already out of traffic", &take_out, SeenPod::from_pod(&out)),
            ("already at the target", &take_out, {
                let mut p = idle.clone();
                p.metadata.labels =
                    Some([(labels::REVISION.to_owned(), "rev-2".to_owned())].into());
                SeenPod::from_pod(&p)
            }),
            (
                "containers still restarting",
                &Op::MarkReady,
                SeenPod::from_pod(&restarting),
            ),
            ("already marked", &Op::MarkReady, SeenPod::from_pod(&idle)),
            (
                "a pod update, not a status write",
                &patching,
                SeenPod::from_pod(&out),
            ),
            ("resourceVersion unknown", &take_out, unknown_version),
        ] {
            assert_eq!(op.status_patch(&seen, at(2)), None, "{what}");
        }
        assert!(
            take_out
                .status_patch(&SeenPod::from_pod(&idle), at(2))
                .is_some()
        );
    }
}
