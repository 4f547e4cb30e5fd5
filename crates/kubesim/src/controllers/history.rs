//! ControllerRevision machinery of the StatefulSet controller: what is hashed
//! (`getPatch`), how (`HashControllerRevision`: FNV-1 32-bit over the patch
//! bytes and the collision count, then `rand.SafeEncodeString`), how revisions
//! are named, numbered, compared, reused on rollback and truncated.
//!
//! Upstream: `pkg/controller/history/controller_history.go` and
//! `getPatch`/`newRevision`/`ApplyRevision`/`nextRevision` in
//! `pkg/controller/statefulset/stateful_set_utils.go`,
//! `getStatefulSetRevisions`/`truncateHistory` in `stateful_set_control.go`.
//!
//! Simplification: upstream encodes the template with the apps/v1 legacy codec
//! and re-marshals it through `map[string]interface{}` (sorted keys, Go string
//! escaping). We serialize the k8s-openapi template, then write it with sorted
//! keys and Go's escaping ([`go_json`]); for a defaulted template this yields
//! the same bytes (and so the same hash) as a v1.34+ cluster, which the
//! fixture test below checks. Revisions are compared semantically (the
//! `StatefulSetSemanticRevisionComparison` behaviour, on by default since
//! v1.34): two revisions are equal when their decoded templates are equal.

use std::{
    borrow::Borrow,
    cmp::Ordering,
    collections::{BTreeMap, HashSet},
    fmt::Write as _,
};

use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, StatefulSet},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, runtime::RawExtension},
};
use serde_json::Value;

use super::{CONTROLLER_REVISION_HASH_LABEL, Error, PodView, REVISION_LABEL, controller_ref};

/// Alphabet of `k8s.io/apimachinery/pkg/util/rand.SafeEncodeString`.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Go `hash/fnv.New32` (FNV-1: multiply, then xor) over `data`.
pub fn fnv1_32(data: &[u8]) -> u32 {
    data.iter().fold(2_166_136_261u32, |h, b| {
        h.wrapping_mul(16_777_619) ^ u32::from(*b)
    })
}

/// `rand.SafeEncodeString`: each byte mapped through the vowel-free alphabet.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// `history.HashControllerRevision(revision, &collisionCount)`: FNV-1 32 of
/// the raw data followed by the decimal collision count, safe-encoded.
pub fn hash_revision_data(data: &[u8], collision_count: Option<i32>) -> String {
    let mut bytes = data.to_vec();
    if let Some(cc) = collision_count {
        bytes.extend_from_slice(cc.to_string().as_bytes());
    }
    safe_encode(&fnv1_32(&bytes).to_string())
}

/// `history.ControllerRevisionName`: prefix truncated to 223 bytes, `-`, hash.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(223);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// Writes `value` as Go's `json.Marshal` of a `map[string]interface{}` would:
/// compact, keys sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped.
pub fn go_json(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                write_go_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `getPatch`: `{"spec":{"template":<template with "$patch":"replace">}}`.
pub fn get_patch(template: &PodTemplateSpec) -> Result<Value, Error> {
    let mut t = serde_json::to_value(template).map_err(|e| Error::InvalidRevision {
        name: String::new(),
        reason: e.to_string(),
    })?;
    if let Value::Object(map) = &mut t {
        map.insert("$patch".into(), Value::String("replace".into()));
    }
    Ok(serde_json::json!({ "spec": { "template": t } }))
}

fn set_meta(set: &StatefulSet) -> (&str, &str) {
    (
        set.metadata.name.as_deref().unwrap_or_default(),
        set.metadata.namespace.as_deref().unwrap_or_default(),
    )
}

fn set_template(set: &StatefulSet) -> Result<&PodTemplateSpec, Error> {
    set.spec
        .as_ref()
        .map(|s| &s.template)
        .ok_or(Error::MissingField {
            what: "StatefulSet".into(),
            field: "spec",
        })
}

/// `newRevision` + `history.NewControllerRevision`: a ControllerRevision of the
/// set's current template with sequence number `revision`, named with the
/// hash of the patch and `collision_count`.
pub fn new_revision(
    set: &StatefulSet,
    revision: i64,
    collision_count: i32,
) -> Result<ControllerRevision, Error> {
    let template = set_template(set)?;
    let data = get_patch(template)?;
    let hash = hash_revision_data(go_json(&data).as_bytes(), Some(collision_count));
    revision_of(set, template, revision, data, &hash)
}

/// `history.NewControllerRevision` with the patch and its hash computed.
fn revision_of(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: i64,
    data: Value,
    hash: &str,
) -> Result<ControllerRevision, Error> {
    let (name, namespace) = set_meta(set);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.to_owned());
    Ok(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(name, hash)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(set.metadata.annotations.clone().unwrap_or_default()),
            owner_references: Some(vec![controller_ref(
                "apps/v1",
                "StatefulSet",
                &set.metadata,
            )?]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision,
    })
}

/// A set's last candidate revision data (`getPatch` of its template) and its
/// hash, kept between syncs. Upstream computes both on every sync
/// (`newRevision` in `getStatefulSetRevisions`); they are pure functions of
/// the template and the collision count, so while both are unchanged (every
/// sync but the first after a template edit) one template comparison replaces
/// an encode, a Go-ordered write and an FNV hash.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateMemo {
    template: PodTemplateSpec,
    collision_count: i32,
    data: Value,
    hash: String,
}

impl CandidateMemo {
    /// The memo of `template` at `collision_count`, computed afresh.
    pub fn compute(template: &PodTemplateSpec, collision_count: i32) -> Result<Self, Error> {
        let data = get_patch(template)?;
        let hash = hash_revision_data(go_json(&data).as_bytes(), Some(collision_count));
        Ok(Self {
            template: template.clone(),
            collision_count,
            data,
            hash,
        })
    }

    /// `memo` when it was computed from this template and count, else a
    /// fresh one stored in `memo`.
    pub fn refresh<'m>(
        memo: &'m mut Option<Self>,
        template: &PodTemplateSpec,
        collision_count: i32,
    ) -> Result<&'m Self, Error> {
        let fresh = memo
            .as_ref()
            .is_some_and(|m| m.collision_count == collision_count && m.template == *template);
        if !fresh {
            *memo = Some(Self::compute(template, collision_count)?);
        }
        memo.as_ref().ok_or(Error::MissingField {
            what: "StatefulSet".into(),
            field: "spec.template",
        })
    }

    /// The revision data (`getPatch`).
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The hash of the data and the collision count.
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// Name a candidate revision gets after `collision_count` collisions
/// (`CreateControllerRevision` recomputes only the name; the hash label keeps
/// the count the candidate was built with).
pub fn rename_for_collision(
    set: &StatefulSet,
    candidate: &ControllerRevision,
    collision_count: i32,
) -> ControllerRevision {
    let data = candidate
        .data
        .as_ref()
        .map(|d| go_json(&d.0))
        .unwrap_or_default();
    let hash = hash_revision_data(data.as_bytes(), Some(collision_count));
    let mut renamed = candidate.clone();
    renamed.metadata.name = Some(revision_name(set_meta(set).0, &hash));
    renamed
}

/// Whether an existing revision with the candidate's name holds the same data
/// (`bytes.Equal(exists.Data.Raw, clone.Data.Raw)` in
/// `CreateControllerRevision`): if not, the collision count is bumped.
pub fn same_data(existing: &ControllerRevision, candidate: &ControllerRevision) -> bool {
    let enc = |r: &ControllerRevision| r.data.as_ref().map(|d| go_json(&d.0));
    enc(existing) == enc(candidate)
}

/// `history.SortControllerRevisions`: by `.revision`, then creation time, then name.
pub fn sort_revisions(revisions: &mut [impl Borrow<ControllerRevision>]) {
    revisions.sort_by(|a, b| {
        let (a, b) = (a.borrow(), b.borrow());
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                ta.partial_cmp(&tb).unwrap_or(Ordering::Equal)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The template a revision restores (`ApplyRevision`: the strategic merge of
/// `{"spec":{"template":{…,"$patch":"replace"}}}` replaces the template).
pub fn revision_template(revision: &ControllerRevision) -> Result<PodTemplateSpec, Error> {
    let name = revision.metadata.name.clone().unwrap_or_default();
    let mut t = revision
        .data
        .as_ref()
        .and_then(|d| d.0.pointer("/spec/template"))
        .cloned()
        .ok_or_else(|| Error::InvalidRevision {
            name: name.clone(),
            reason: "data has no spec.template".into(),
        })?;
    if let Value::Object(map) = &mut t {
        map.remove("$patch");
    }
    serde_json::from_value(t).map_err(|e| Error::InvalidRevision {
        name,
        reason: e.to_string(),
    })
}

/// `history.EqualRevision` with semantic comparison: the decoded data are
/// equal as JSON values (key order and formatting do not matter).
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    a.data == b.data
}

/// `nextRevision`: one more than the highest revision number (1 when none).
pub fn next_revision(sorted: &[impl Borrow<ControllerRevision>]) -> i64 {
    sorted.last().map_or(1, |r| r.borrow().revision + 1)
}

/// What `getStatefulSetRevisions` does to the update revision.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateRevisionAction {
    /// The template matches the newest revision: nothing to write.
    Unchanged,
    /// The template went back to an older revision: PUT it with `revision`
    /// bumped to the next number (rollback reuses the old name).
    Rollback {
        /// The revision with its new number.
        revision: ControllerRevision,
    },
    /// A new template: create this revision (on `AlreadyExists` see
    /// [`same_data`] and [`rename_for_collision`]).
    Create {
        /// The candidate to create.
        revision: ControllerRevision,
    },
}

/// Outcome of the revision step of one StatefulSet sync.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionPlan {
    /// The write to perform for the update revision.
    pub action: UpdateRevisionAction,
    /// The update revision as it will exist after `action`.
    pub update: ControllerRevision,
    /// The current revision (`status.currentRevision`, else the update revision).
    pub current: ControllerRevision,
    /// The collision count to carry into status.
    pub collision_count: i32,
}

/// `getStatefulSetRevisions`. `sorted` must hold the set's revisions sorted
/// with [`sort_revisions`].
pub fn plan_revisions(
    set: &StatefulSet,
    sorted: &[impl Borrow<ControllerRevision>],
) -> Result<RevisionPlan, Error> {
    plan_revisions_memo(set, sorted, &mut None)
}

/// [`plan_revisions`] with the candidate's data and hash taken from `memo`
/// when the set's template and collision count are the ones it was computed
/// from (see [`CandidateMemo`]); `memo` is refreshed otherwise. The plan is
/// the same as without the memo.
pub fn plan_revisions_memo(
    set: &StatefulSet,
    sorted: &[impl Borrow<ControllerRevision>],
    memo: &mut Option<CandidateMemo>,
) -> Result<RevisionPlan, Error> {
    let collision_count = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let template = set_template(set)?;
    let candidate = CandidateMemo::refresh(memo, template, collision_count)?;
    // `history.EqualRevision` against the candidate: its data is the memo's.
    let equal_candidate =
        |r: &ControllerRevision| r.data.as_ref().is_some_and(|d| d.0 == candidate.data);
    let last = sorted.last().map(Borrow::borrow);
    let equal_last = sorted
        .iter()
        .map(Borrow::borrow)
        .rfind(|r| equal_candidate(r));
    let (action, update) = match (equal_last, last) {
        (Some(eq), Some(last)) if equal_revision(last, eq) => {
            (UpdateRevisionAction::Unchanged, last.clone())
        }
        (Some(eq), _) => {
            let mut bumped = eq.clone();
            bumped.revision = next_revision(sorted);
            (
                UpdateRevisionAction::Rollback {
                    revision: bumped.clone(),
                },
                bumped,
            )
        }
        (None, _) => {
            let revision = revision_of(
                set,
                template,
                next_revision(sorted),
                candidate.data.clone(),
                &candidate.hash,
            )?;
            (
                UpdateRevisionAction::Create {
                    revision: revision.clone(),
                },
                revision,
            )
        }
    };
    let status_current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .unwrap_or("");
    let current = sorted
        .iter()
        .map(Borrow::borrow)
        .find(|r| r.metadata.name.as_deref() == Some(status_current))
        .cloned()
        .unwrap_or_else(|| update.clone());
    Ok(RevisionPlan {
        action,
        update,
        current,
        collision_count,
    })
}

/// `truncateHistory`: names of revisions to delete. Live revisions (current,
/// update, any named by a pod's `controller-revision-hash`) are kept; of the
/// rest, the oldest go until at most `revisionHistoryLimit` remain (a negative
/// limit disables truncation). `sorted` is the list read before this sync.
pub fn truncate_history(
    limit: i32,
    pods: &[impl PodView],
    sorted: &[impl Borrow<ControllerRevision>],
    current: &str,
    update: &str,
) -> Vec<String> {
    // The non-live revisions are a subset of `sorted`: when even all of them
    // fit under the limit nothing goes, and the pods need not be read (every
    // sync of a set with a short history, i.e. almost every sync).
    let Ok(limit) = usize::try_from(limit) else {
        return Vec::new();
    };
    if sorted.len() <= limit {
        return Vec::new();
    }
    let mut live: HashSet<&str> = HashSet::from([current, update]);
    live.extend(pods.iter().map(|p| {
        p.meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .map_or("", String::as_str)
    }));
    let history: Vec<&ControllerRevision> = sorted
        .iter()
        .map(Borrow::borrow)
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or("")))
        .collect();
    if history.len() <= limit {
        return Vec::new();
    }
    history[..history.len() - limit]
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `testdata/compatibility_revision_1.34.0.json` in
    /// `pkg/controller/statefulset` (reference file, Appendix A).
    const FIXTURE_134: &str = r#"{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test","imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}}}"#;
    const FIXTURE_133: &str = r#"{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},"creationTimestamp":null,"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test","imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}}}"#;

    fn fixture_template() -> PodTemplateSpec {
        let v: Value = serde_json::from_str(FIXTURE_134).expect("fixture parses");
        let mut t = v.pointer("/spec/template").cloned().expect("has template");
        t.as_object_mut().expect("object").remove("$patch");
        serde_json::from_value(t).expect("template decodes")
    }

    #[test]
    fn hash_matches_upstream_fixtures() {
        assert_eq!(
            hash_revision_data(FIXTURE_133.as_bytes(), Some(0)),
            "c77f6d978"
        );
        assert_eq!(
            hash_revision_data(FIXTURE_134.as_bytes(), Some(0)),
            "776999688b"
        );
        assert_eq!(
            hash_revision_data(FIXTURE_134.as_bytes(), Some(1)),
            "776999688c"
        );
        assert_eq!(
            hash_revision_data(FIXTURE_134.as_bytes(), Some(2)),
            "7769996888"
        );
    }

    #[test]
    fn get_patch_reproduces_the_upstream_bytes_of_a_defaulted_template() {
        let patch = get_patch(&fixture_template()).expect("patch");
        assert_eq!(go_json(&patch), FIXTURE_134);
    }

    #[test]
    fn go_json_escapes_like_go() {
        let v = serde_json::json!({"b": "<a&b>\u{2028}", "a": [1, "\n\u{1}"]});
        assert_eq!(
            go_json(&v),
            r#"{"a":[1,"\n\u0001"],"b":"\u003ca\u0026b\u003e\u2028"}"#
        );
    }

    #[test]
    fn revision_name_truncates_long_prefixes() {
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "h").len(), 225);
        assert_eq!(revision_name("web", "abc"), "web-abc");
    }
    fn set_with(image: &str, label: &str, collision_count: i32) -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": label}},
                    "spec": {"containers": [{"name": "c", "image": image}]}
                }
            },
            "status": {"replicas": 0, "collisionCount": collision_count}
        }))
        .expect("set decodes")
    }

    /// Applies a plan's write to the stored revisions, as the controller does.
    fn apply(sorted: &mut Vec<ControllerRevision>, plan: &RevisionPlan) {
        match &plan.action {
            UpdateRevisionAction::Unchanged => {}
            UpdateRevisionAction::Rollback { revision } => {
                for r in sorted.iter_mut() {
                    if r.metadata.name == revision.metadata.name {
                        *r = revision.clone();
                    }
                }
            }
            UpdateRevisionAction::Create { revision } => {
                if !sorted
                    .iter()
                    .any(|r| r.metadata.name == revision.metadata.name)
                {
                    sorted.push(revision.clone());
                }
            }
        }
        sort_revisions(sorted);
    }

    use proptest::prelude::*;

    proptest! {
        /// The memoized candidate never changes a plan: over arbitrary
        /// sequences of template edits, collision counts, rollbacks and
        /// truncations, the plan with the memo kept across syncs equals the
        /// plan computed afresh.
        #[test]
        fn the_candidate_memo_plans_as_a_fresh_computation(
            steps in prop::collection::vec(
                (0..3usize, 0..2usize, 0..3i32, any::<bool>()),
                1..40,
            ),
        ) {
            let images = ["nginx:1", "nginx:2", "nginx:3"];
            let labels = ["a", "b"];
            let mut sorted: Vec<ControllerRevision> = Vec::new();
            let mut memo = None;
            for (image, label, cc, truncate) in steps {
                let set = set_with(images[image], labels[label], cc);
                let fresh = plan_revisions(&set, &sorted).expect("fresh plan");
                let memoized = plan_revisions_memo(&set, &sorted, &mut memo).expect("memo plan");
                prop_assert_eq!(&memoized, &fresh);
                let template = set.spec.as_ref().map(|s| &s.template).expect("template");
                prop_assert_eq!(
                    memo.as_ref(),
                    Some(&CandidateMemo::compute(template, cc).expect("memo"))
                );
                apply(&mut sorted, &fresh);
                if truncate && sorted.len() > 1 {
                    sorted.remove(0);
                }
            }
        }
    }
}
