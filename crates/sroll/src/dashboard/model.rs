//! What the dashboard shows, computed from the watched objects: pure functions (no I/O), so the
//! classification of a pod and the shape of the JSON are table-tested without a cluster.
//!
//! The browser receives one [`Detail`] per rollout page: the rollout's status, its revisions with
//! images, conditions, the last events and its progress history, and one compact [`Cell`] per pod
//! (a 1,000-pod set is about 55 kB of JSON as a first snapshot; later updates carry only the
//! cells that changed, see [`diff_cells`]).

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
    predicates::{is_pod_ready, is_terminating},
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
    /// Failed, crash-looping, unpullable, or not Ready for [`BROKEN_AFTER_SECS`] while running.
    Broken,
    /// No pod object for this ordinal (evicted and not yet recreated).
    Missing,
}

impl PodState {
    /// The one-letter code the browser decodes.
    pub fn code(self) -> &'static str {
        match self {
            Self::Ready => "R",
            Self::Updating => "U",
            Self::Terminating => "T",
            Self::Broken => "B",
            Self::Missing => "M",
        }
    }
}

/// Classifies a pod (terminating wins over everything; then broken, Ready, updating).
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

/// One pod of the grid: `[ordinal, revision index, state code, name, node, detail]` on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The pod's ordinal.
    pub ordinal: i64,
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
            self.ordinal,
            self.revision,
            self.state.code(),
            &self.name,
            &self.node,
            &self.detail,
        )
            .serialize(s)
    }
}

/// A revision of the StatefulSet.
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

/// One row of the rollout list.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
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

/// Everything one rollout's page shows.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    pub statefulset: String,
    pub pause_requested: bool,
    pub rollout_identity: String,
    pub update_revision: String,
    pub current_revision: String,
    pub revisions: Vec<Revision>,
    pub conditions: Vec<ConditionRow>,
    pub events: Vec<EventRow>,
    /// Links to the rollout's Slack messages (`https://slack.com/archives/CHANNEL/pTS`).
    pub slack_links: Vec<String>,
    pub callback_stage_id: String,
    pub callback_outcome: String,
    pub callback_url: String,
    pub build_branch: String,
    pub build_commit: String,
    pub history: Vec<Point>,
    pub cells: Vec<Cell>,
}

fn ts(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

/// The list row of a rollout.
pub fn summary(r: &StatefulsetRollout) -> Summary {
    let st = r.status.clone().unwrap_or_default();
    Summary {
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

/// The name of the StatefulSet a rollout manages (the status's, else the spec's).
pub fn statefulset_of(r: &StatefulsetRollout) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.statefulset_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| r.statefulset_name())
}

/// Whether `owner_refs` name the StatefulSet `sts`.
pub fn owned_by_statefulset(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    sts: &str,
) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "StatefulSet" && o.name == sts)
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

/// How many events a page shows.
pub const EVENTS_SHOWN: usize = 20;

/// One rollout's page.
pub fn detail(inp: Inputs<'_>) -> Detail {
    let r = inp.rollout;
    let summary = summary(r);
    let st = r.status.clone().unwrap_or_default();
    let update = st.update_revision.clone().unwrap_or_default();
    let current = st.current_revision.clone().unwrap_or_default();
    let previous = st.previous_revision.clone().unwrap_or_default();

    let mut pod_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &inp.pods {
        *pod_counts.entry(pod_revision(p)).or_default() += 1;
    }
    let mut revs: Vec<&ControllerRevision> = inp.revisions.clone();
    revs.sort_by_key(|r| r.revision);
    // Revisions no pod runs and that are neither update nor current are history: keep the last few.
    let revisions: Vec<Revision> = revs
        .iter()
        .map(|rev| {
            let name = rev.metadata.name.clone().unwrap_or_default();
            let role = if name == update {
                "update"
            } else if name == current {
                "current"
            } else if name == previous {
                "previous"
            } else {
                "other"
            };
            Revision {
                pods: pod_counts.get(name.as_str()).copied().unwrap_or(0),
                number: rev.revision,
                images: images(rev),
                role,
                name,
            }
        })
        .collect();
    let rev_index = |name: &str| {
        revisions
            .iter()
            .position(|r| r.name == name)
            .and_then(|i| i64::try_from(i).ok())
            .unwrap_or(-1)
    };

    let mut by_ordinal: BTreeMap<i64, Cell> = BTreeMap::new();
    for p in &inp.pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let (state, why) = pod_state(p, inp.now);
        let ord = ordinal(&name);
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let revision = pod_revision(p);
        by_ordinal.insert(
            ord,
            Cell {
                ordinal: ord,
                revision: rev_index(revision),
                state,
                name,
                node,
                detail: why,
            },
        );
    }
    let sts = statefulset_of(r);
    for ord in 0..i64::from(summary.replicas.max(0)) {
        by_ordinal.entry(ord).or_insert_with(|| Cell {
            ordinal: ord,
            revision: -1,
            state: PodState::Missing,
            name: format!("{sts}-{ord}"),
            node: String::new(),
            detail: "no pod (evicted, being recreated)".into(),
        });
    }

    let mut events: Vec<&Event> = inp.events.clone();
    events.sort_by_key(|e| event_time(e));
    let events = events
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
        .collect();

    let build = r.build_metadata().or(st.build_metadata.clone());
    Detail {
        statefulset: sts,
        pause_requested: r.spec.paused(),
        rollout_identity: r.spec.rollout_identity.clone().unwrap_or_default(),
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
        events,
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
        history: inp.history,
        cells: by_ordinal.into_values().collect(),
        summary,
    }
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
            .map(|c| (c.ordinal, c.revision, c.state))
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
            d.slack_links,
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
            ordinal: ord,
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
}
