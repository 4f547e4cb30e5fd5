//! The CloneSet controller: `kube::runtime::Controller` on `CloneSet`, owning its pods and
//! ControllerRevisions (owner references), run by `sroll operator` beside the rollout controller
//! in the same process and under the same leader election.
//!
//! One reconcile: wait until this process's own creates and deletes show in the pod cache
//! ([`Expectations`], upstream's `ControllerExpectations` as Kruise's `ScaleExpectations` uses
//! them: a stale cache never double-creates or double-deletes) → the update revision (a
//! ControllerRevision named from the template's hash and the collision count, reused when an
//! older revision has the same template: a rollback) → the pods as [`PodView`]s (overlaid with the
//! pods this process just wrote) → [`sroll_planner::clone_set::plan`] → execute (create pods and
//! their claims, delete pods and their claims, label pods for recreation, in-place writes through
//! [`crate::inplace::execute_seen`], drop gone names from `scaleStrategy.podsToDelete`) → status
//! through the status subresource.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::ControllerRevision,
        core::v1::{
            PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodCondition, Volume,
        },
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    core::Selector,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action as Requeue,
        events::EventType,
        predicates,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::json;
use sroll_api::{
    clone_set::{
        CloneSet, CloneSetCondition, CloneSetStatus, INSTANCE_ID_LABEL, LIFECYCLE_STATE_LABEL,
        SPECIFIED_DELETE_LABEL, validate,
    },
    labels, predicates as pod_predicates,
    sync::lock,
};
use sroll_planner::{
    clone_set::{self as planner, CloneSetObserved, CloneSetPlan, PodPhase, PodView},
    inplace::{self, PodInPlace, SeenPod},
};

use crate::{
    Error, Result, cache,
    controller::{OperatorHandles, api_in},
    error::api_code,
};

/// How long an expected create or delete may stay unseen before it is given up (upstream's
/// `ExpectationsTimeout` is 5 minutes; a watch that lost an event re-lists well before that).
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The most writes of one kind one reconcile has in flight at once.
const MAX_CONCURRENT_WRITES: usize = 32;
/// How soon a CloneSet that acted is looked at again without a watch event.
const REQUEUE_ACTING: Duration = Duration::from_secs(2);
/// How soon an idle CloneSet is looked at again.
const REQUEUE_IDLE: Duration = Duration::from_secs(60);
/// The label on a CloneSet's ControllerRevisions naming the CloneSet (the revision watch selects
/// by it, so the rollout controller's StatefulSet revisions are not cached twice).
pub const REVISION_OWNER_LABEL: &str = "sroll.io/cloneset";
/// Condition type of a blocked update or an invalid spec (Kruise's `FailedUpdate`).
pub const FAILED_UPDATE: &str = "FailedUpdate";
/// Condition type of a failed create or delete (Kruise's `FailedScale`).
pub const FAILED_SCALE: &str = "FailedScale";

/// Pods deleted, by name: the uid of the incarnation and when.
type DeletedPods = HashMap<String, (String, Instant)>;

/// This process's writes the pod cache may not show yet, per CloneSet (`namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    creates: Mutex<HashMap<String, HashMap<String, Instant>>>,
    deletes: Mutex<HashMap<String, DeletedPods>>,
    /// Pods as our last write returned them, by `namespace/name` of the pod.
    written: Mutex<HashMap<String, Arc<Pod>>>,
}

impl Expectations {
    fn created(&self, set: &str, pod: &str) {
        lock(&self.creates)
            .entry(set.to_owned())
            .or_default()
            .insert(pod.to_owned(), Instant::now());
    }

    fn create_failed(&self, set: &str, pod: &str) {
        if let Some(m) = lock(&self.creates).get_mut(set) {
            m.remove(pod);
        }
    }

    fn deleted(&self, set: &str, pod: &str, uid: &str) {
        lock(&self.deletes)
            .entry(set.to_owned())
            .or_default()
            .insert(pod.to_owned(), (uid.to_owned(), Instant::now()));
    }

    fn delete_failed(&self, set: &str, pod: &str) {
        if let Some(m) = lock(&self.deletes).get_mut(set) {
            m.remove(pod);
        }
    }

    /// Whether every expected create shows in `pods` and every expected delete is gone (or
    /// terminating); met and expired expectations are forgotten.
    pub fn satisfied(&self, set: &str, pods: &[Arc<Pod>]) -> bool {
        let seen = |name: &str| {
            pods.iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
        };
        let mut ok = true;
        if let Some(m) = lock(&self.creates).get_mut(set) {
            m.retain(|name, at| {
                let pending = seen(name).is_none() && at.elapsed() < EXPECTATION_TIMEOUT;
                if pending {
                    ok = false;
                }
                pending
            });
        }
        if let Some(m) = lock(&self.deletes).get_mut(set) {
            m.retain(|name, (uid, at)| {
                let pending = seen(name).is_some_and(|p| {
                    p.metadata.uid.as_deref() == Some(uid.as_str())
                        && p.metadata.deletion_timestamp.is_none()
                }) && at.elapsed() < EXPECTATION_TIMEOUT;
                if pending {
                    ok = false;
                }
                pending
            });
        }
        ok
    }

    fn written(&self, pod: Pod) {
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        lock(&self.written).insert(key, Arc::new(pod));
    }

    /// The newer of the cached pod and the one we last wrote (same uid, higher resourceVersion).
    fn freshest(&self, cached: Arc<Pod>) -> Arc<Pod> {
        let key = format!(
            "{}/{}",
            cached.namespace().unwrap_or_default(),
            cached.name_any()
        );
        let mut written = lock(&self.written);
        match written.get(&key) {
            Some(w)
                if w.uid() == cached.uid()
                    && pod_predicates::resource_version(&w.metadata)
                        > pod_predicates::resource_version(&cached.metadata) =>
            {
                w.clone()
            }
            Some(_) => {
                written.remove(&key);
                cached
            }
            None => cached,
        }
    }
}

struct Ctx {
    handles: OperatorHandles,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    /// The caches' first list, awaited once for every reconcile ([`cache::Synced`]: awaited
    /// directly, a store wakes only one of the CloneSets waiting at once, and the others would
    /// wait forever).
    synced: cache::Synced,
    expectations: Expectations,
}

/// Runs the CloneSet controller for one namespace scope (`None`: all namespaces) until `stopped`
/// resolves.
pub async fn run_scope(
    handles: OperatorHandles,
    namespace: Option<String>,
    stopped: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = namespace.as_deref();
    let client = handles.client.clone();
    let (sets, set_writer) = reflector::store::<CloneSet>();
    let set_stream = watcher(api_in::<CloneSet>(&client, ns), watcher::Config::default())
        .backoff(cache::WatchBackoff::default())
        .reflect(set_writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let (pods, pod_writer) = reflector::store::<Pod>();
    let pod_stream = watcher(
        api_in::<Pod>(&client, ns),
        watcher::Config::default().labels(INSTANCE_ID_LABEL),
    )
    .backoff(cache::WatchBackoff::default())
    .reflect(pod_writer)
    .touched_objects();
    let (revisions, revision_writer) = reflector::store::<ControllerRevision>();
    let revision_stream = watcher(
        api_in::<ControllerRevision>(&client, ns),
        watcher::Config::default().labels(REVISION_OWNER_LABEL),
    )
    .backoff(cache::WatchBackoff::default())
    .reflect(revision_writer)
    .touched_objects();
    let (claims, claim_writer) = reflector::store::<PersistentVolumeClaim>();
    let claim_stream = watcher(
        api_in::<PersistentVolumeClaim>(&client, ns),
        watcher::Config::default().labels(INSTANCE_ID_LABEL),
    )
    .backoff(cache::WatchBackoff::default())
    .reflect(claim_writer)
    .touched_objects();
    let ctx = Arc::new(Ctx {
        handles,
        pods,
        revisions,
        claims,
        synced: cache::Synced::default(),
        expectations: Expectations::default(),
    });
    Controller::for_stream(cache::errors_logged(set_stream, "CloneSet"), sets)
        .owns_stream(cache::errors_logged(pod_stream, "Pod"))
        .owns_stream(cache::errors_logged(revision_stream, "ControllerRevision"))
        .owns_stream(cache::errors_logged(claim_stream, "PersistentVolumeClaim"))
        .graceful_shutdown_on(stopped)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "CloneSet reconcile did not complete");
            }
        })
        .await;
    tracing::info!(namespace = ?namespace, "CloneSet controller stopped");
}

fn error_policy(cs: Arc<CloneSet>, err: &Error, _: Arc<Ctx>) -> Requeue {
    tracing::warn!(cloneset = %cs.name_any(), error = %err, "CloneSet reconcile failed");
    Requeue::requeue(Duration::from_secs(2))
}

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

fn owner(cs: &CloneSet) -> Option<OwnerReference> {
    cs.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    })
}

fn condition<'p>(pod: &'p Pod, type_: &str) -> Option<&'p PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// A pod as the planner sees it (Kruise's `IsPodAvailable`: Ready for `minReadySeconds`, lifecycle
/// state empty or `Normal`, and not out of traffic for an in-place update).
fn view(cs: &CloneSet, pod: &Pod, now: Timestamp) -> PodView {
    let labels = pod.labels().clone();
    let ready_cond = condition(pod, pod_predicates::POD_READY).filter(|c| c.status == "True");
    let ready = ready_cond.is_some();
    let ready_since = ready_cond.and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
    let min_ready = i64::from(cs.spec.min_ready_seconds.max(0));
    let ready_long_enough = ready
        && (min_ready == 0
            || ready_since.is_some_and(|t| {
                t.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(min_ready))
                    .is_ok_and(|t| t <= now)
            }));
    let state = labels.get(LIFECYCLE_STATE_LABEL).map(String::as_str);
    let in_place = PodInPlace::from_pod(pod);
    let status = pod.status.clone().unwrap_or_default();
    PodView {
        name: pod.name_any(),
        uid: pod.uid().unwrap_or_default(),
        revision: labels.get(labels::REVISION).cloned().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        phase: match status.phase.as_deref() {
            Some("Running") => PodPhase::Running,
            Some("Unknown") => PodPhase::Unknown,
            _ => PodPhase::Pending,
        },
        ready,
        available: ready_long_enough
            && matches!(state, None | Some("Normal"))
            && in_place.gate_ready != Some(false),
        ready_since,
        restarts: status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| c.restart_count)
            .sum(),
        deletion_cost: pod
            .annotations()
            .get("controller.kubernetes.io/pod-deletion-cost")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        specified_delete: labels.get(SPECIFIED_DELETE_LABEL).map(String::as_str) == Some("true"),
        preparing_delete: state == Some("PreparingDelete"),
        in_place,
        labels,
    }
}

fn random_id() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// The ControllerRevisions of `cs`, newest first.
fn revisions_of(ctx: &Ctx, cs: &CloneSet, uid: &str) -> Vec<Arc<ControllerRevision>> {
    let ns = cs.namespace();
    let mut out: Vec<_> = ctx
        .revisions
        .state()
        .into_iter()
        .filter(|r| r.namespace() == ns && owned_by(&r.metadata, uid))
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.revision));
    out
}

/// The update revision's name, creating its ControllerRevision if needed. `Ok(None)`: a name
/// collision was recorded in the status (bumped `collisionCount`); the next reconcile retries.
async fn update_revision(
    ctx: &Ctx,
    cs: &CloneSet,
    uid: &str,
    revisions: &[Arc<ControllerRevision>],
) -> Result<Option<String>> {
    let template = planner::pod_template(&cs.spec);
    // A rollback: an existing revision with this template is reused.
    if let Some(r) = revisions
        .iter()
        .find(|r| inplace::template_from_revision(r).as_ref() == Some(&template))
    {
        return Ok(Some(r.name_any()));
    }
    let ns = cs.namespace().unwrap_or_default();
    let collision = cs
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let name = planner::revision_name(&cs.name_any(), &template, collision);
    let api: Api<ControllerRevision> = Api::namespaced(ctx.handles.client.clone(), &ns);
    let revision = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([(
                REVISION_OWNER_LABEL.to_owned(),
                cs.name_any(),
            )])),
            owner_references: owner(cs).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(planner::revision_data(&template)),
        revision: revisions.first().map_or(1, |r| r.revision + 1),
    };
    match api.create(&PostParams::default(), &revision).await {
        Ok(_) => Ok(Some(name)),
        Err(e) if api_code(&e) == Some(409) => {
            let existing = api
                .get(&name)
                .await
                .map_err(|source| write_err(cs, "get ControllerRevision", source))?;
            if inplace::template_from_revision(&existing).as_ref() == Some(&template)
                && owned_by(&existing.metadata, uid)
            {
                return Ok(Some(name));
            }
            let patch = json!({"status": {"collisionCount": collision + 1}});
            Api::<CloneSet>::namespaced(ctx.handles.client.clone(), &ns)
                .patch_status(
                    &cs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(|source| write_err(cs, "status", source))?;
            Ok(None)
        }
        Err(source) => Err(write_err(cs, "create ControllerRevision", source)),
    }
}

fn write_err(cs: &CloneSet, what: &str, source: kube::Error) -> Error {
    Error::CloneSetWrite {
        name: cs.name_any(),
        what: what.to_owned(),
        source,
    }
}

async fn reconcile(cs: Arc<CloneSet>, ctx: Arc<Ctx>) -> Result<Requeue> {
    ctx.synced
        .wait(|| async {
            let _ = ctx.pods.wait_until_ready().await;
            let _ = ctx.revisions.wait_until_ready().await;
            let _ = ctx.claims.wait_until_ready().await;
        })
        .await;
    if cs.metadata.deletion_timestamp.is_some() {
        return Ok(Requeue::await_change());
    }
    let ns = cs.namespace().unwrap_or_default();
    let name = cs.name_any();
    let key = format!("{ns}/{name}");
    let uid = cs.uid().unwrap_or_default();
    let client = ctx.handles.client.clone();
    let sets: Api<CloneSet> = Api::namespaced(client.clone(), &ns);

    let errors = validate(&cs);
    if !errors.is_empty() {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let mut status = cs.status.clone().unwrap_or_default();
        set_condition(&mut status, FAILED_UPDATE, "InvalidSpec", &message);
        status.observed_generation = cs.metadata.generation.unwrap_or(0);
        write_status(&sets, &cs, status).await?;
        return Ok(Requeue::await_change());
    }

    let all: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && owned_by(&p.metadata, &uid))
        .collect();
    if !ctx.expectations.satisfied(&key, &all) {
        return Ok(Requeue::requeue(Duration::from_millis(500)));
    }
    let revisions = revisions_of(&ctx, &cs, &uid);
    let Some(update) = update_revision(&ctx, &cs, &uid, &revisions).await? else {
        return Ok(Requeue::requeue(Duration::from_millis(200)));
    };
    let status_before = cs.status.clone().unwrap_or_default();
    let current = if status_before.current_revision.is_empty() {
        update.clone()
    } else {
        status_before.current_revision.clone()
    };
    let now = Timestamp::now();
    let active: Vec<Arc<Pod>> = all
        .iter()
        .cloned()
        .map(|p| ctx.expectations.freshest(p))
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
        .collect();
    let templates: HashMap<String, _> = revisions
        .iter()
        .filter_map(|r| Some((r.name_any(), inplace::template_from_revision(r)?)))
        .collect();
    let target = planner::pod_template(&cs.spec);
    let mut in_place = BTreeMap::new();
    for p in &active {
        let rev = p
            .labels()
            .get(labels::REVISION)
            .cloned()
            .unwrap_or_default();
        if rev != update && !in_place.contains_key(&rev) {
            let q = match templates.get(&rev) {
                Some(old) => inplace::qualifies(old, &target),
                None => Err(inplace::NotInPlace {
                    path: format!("revision {rev} (its ControllerRevision is gone)"),
                    introduces_gate: false,
                }),
            };
            in_place.insert(rev, q);
        }
    }
    let observed = CloneSetObserved {
        spec: cs.spec.clone(),
        current_revision: current,
        update_revision: update.clone(),
        pods: active.iter().map(|p| view(&cs, p, now)).collect(),
        in_place,
        now,
    };
    let plan = planner::plan(&observed);
    let scale_error = execute(&ctx, &cs, &key, &plan, &templates, &update).await;

    let mut status = planner::status(&observed);
    status.observed_generation = cs.metadata.generation.unwrap_or(0);
    status.collision_count = status_before.collision_count;
    status.label_selector = Selector::try_from(cs.spec.selector.clone())
        .map(|s| s.to_string())
        .unwrap_or_default();
    status.conditions = status_before.conditions.clone();
    match &plan.update_blocked {
        Some(why) => set_condition(&mut status, FAILED_UPDATE, "InPlaceImpossible", why),
        None => status.conditions.retain(|c| c.type_ != FAILED_UPDATE),
    }
    match &scale_error {
        Some(e) => set_condition(&mut status, FAILED_SCALE, "WriteFailed", &e.to_string()),
        None => status.conditions.retain(|c| c.type_ != FAILED_SCALE),
    }
    let previous = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .cloned();
    let (progress, deadline) = planner::progressing(&cs.spec, &status, previous.as_ref(), now);
    status.conditions.retain(|c| c.type_ != "Progressing");
    status.conditions.extend(progress);
    write_status(&sets, &cs, status).await?;
    let history_error = prune_history(&ctx, &cs, &revisions, &observed).await;
    if let Some(e) = scale_error.or(history_error) {
        return Err(e);
    }
    let mut after = if plan.is_idle() {
        REQUEUE_IDLE
    } else {
        REQUEUE_ACTING
    };
    if let Some(at) = plan.requeue_at.into_iter().chain(deadline).min() {
        let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
        after = after.min(wait.max(Duration::from_millis(100)));
    }
    if cs.spec.min_ready_seconds > 0 && observed.pods.iter().any(|p| p.ready && !p.available) {
        after = after.min(Duration::from_secs(1));
    }
    Ok(Requeue::requeue(after))
}

/// Deletes the oldest ControllerRevisions beyond `revisionHistoryLimit`, never the current or the
/// update revision nor one a pod still runs (upstream `truncateHistory`).
async fn prune_history(
    ctx: &Ctx,
    cs: &CloneSet,
    revisions: &[Arc<ControllerRevision>],
    observed: &CloneSetObserved,
) -> Option<Error> {
    let live: std::collections::BTreeSet<&str> = observed
        .pods
        .iter()
        .map(|p| p.revision.as_str())
        .chain([
            observed.update_revision.as_str(),
            observed.current_revision.as_str(),
        ])
        .collect();
    // `revisions` is newest first.
    let old: Vec<&Arc<ControllerRevision>> = revisions
        .iter()
        .filter(|r| !live.contains(r.name_any().as_str()))
        .collect();
    let limit = usize::try_from(cs.spec.revision_history_limit()).unwrap_or(0);
    let api: Api<ControllerRevision> = Api::namespaced(
        ctx.handles.client.clone(),
        &cs.namespace().unwrap_or_default(),
    );
    for r in old.into_iter().skip(limit) {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => {}
            Err(source) => return Some(write_err(cs, "delete ControllerRevision", source)),
        }
    }
    None
}

fn set_condition(status: &mut CloneSetStatus, type_: &str, reason: &str, message: &str) {
    let now = Some(Time(Timestamp::now()));
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != "True" {
                c.last_transition_time = now.clone();
            }
            if c.message != message {
                c.last_update_time = now;
            }
            c.status = "True".into();
            c.reason = reason.into();
            c.message = message.into();
        }
        None => status.conditions.push(CloneSetCondition {
            type_: type_.into(),
            status: "True".into(),
            last_update_time: now.clone(),
            last_transition_time: now,
            reason: reason.into(),
            message: message.into(),
        }),
    }
}

async fn write_status(sets: &Api<CloneSet>, cs: &CloneSet, status: CloneSetStatus) -> Result<()> {
    if cs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = json!({"status": status});
    sets.patch_status(
        &cs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|source| write_err(cs, "status", source))?;
    Ok(())
}

/// Carries out `plan`; the first failed create or delete is returned (the rest of the plan still
/// runs where it is independent).
async fn execute(
    ctx: &Ctx,
    cs: &CloneSet,
    key: &str,
    plan: &CloneSetPlan,
    templates: &HashMap<String, k8s_openapi::api::core::v1::PodTemplateSpec>,
    update: &str,
) -> Option<Error> {
    let ns = cs.namespace().unwrap_or_default();
    let client = ctx.handles.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let mut failure = None;
    let reference = cs.object_ref(&());
    let event = |reason: &str, note: String, type_: EventType| {
        ctx.handles
            .events
            .publish_reason(type_, reason, note, &reference);
    };

    // Claims left without a pod, by instance id (reused unless disablePVCReuse).
    let uid = cs.uid().unwrap_or_default();
    let claims: Vec<Arc<PersistentVolumeClaim>> = ctx
        .claims
        .state()
        .into_iter()
        .filter(|c| c.namespace().as_deref() == Some(ns.as_str()) && owned_by(&c.metadata, &uid))
        .collect();
    let live_ids: Vec<String> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| owned_by(&p.metadata, &uid))
        .filter_map(|p| p.labels().get(INSTANCE_ID_LABEL).cloned())
        .collect();
    let mut free_ids: Vec<String> = if cs.spec.scale_strategy.disable_pvc_reuse {
        Vec::new()
    } else {
        let mut ids: Vec<String> = claims
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .filter_map(|c| c.labels().get(INSTANCE_ID_LABEL).cloned())
            .filter(|id| !live_ids.contains(id))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };

    // The pods to create, each with its claims; ids and names are chosen first.
    let mut planned: Vec<(Pod, Vec<PersistentVolumeClaim>, String)> = Vec::new();
    for create in &plan.create {
        let Some(template) = templates
            .get(&create.revision)
            .cloned()
            .or_else(|| (create.revision == update).then(|| planner::pod_template(&cs.spec)))
        else {
            failure.get_or_insert(Error::InvalidObject(format!(
                "revision {} of CloneSet {} has no ControllerRevision",
                create.revision,
                cs.name_any()
            )));
            continue;
        };
        for _ in 0..create.count {
            let id = free_ids.pop().unwrap_or_else(|| {
                // Kruise's getOrGenInstanceID: a new id no pod or claim has.
                let taken = |id: &str| {
                    live_ids.iter().any(|l| l == id)
                        || claims.iter().any(|c| {
                            c.labels().get(INSTANCE_ID_LABEL).map(String::as_str) == Some(id)
                        })
                };
                let mut id = random_id();
                while taken(&id) {
                    id = random_id();
                }
                id
            });
            let pod = new_pod(cs, &template, &create.revision, &id);
            let new = new_claims(cs, &pod.name_any(), &id)
                .into_iter()
                .filter(|c| !claims.iter().any(|x| x.name_any() == c.name_any()))
                .collect();
            planned.push((pod, new, create.revision.clone()));
        }
    }
    // Kruise's slow start (`DoItSlowly`): batches of 1, 2, 4, … created concurrently, stopping
    // after a batch with a failure, so a quota or admission error costs one request, not hundreds.
    let create_one = |(pod, new_claims, revision): (Pod, Vec<PersistentVolumeClaim>, String)| {
        let (pods, claims_api) = (pods.clone(), claims_api.clone());
        let event = &event;
        async move {
            for claim in new_claims {
                match claims_api.create(&PostParams::default(), &claim).await {
                    Ok(_) => {}
                    Err(e) if api_code(&e) == Some(409) => {}
                    Err(source) => {
                        return Some(write_err(cs, "create PersistentVolumeClaim", source));
                    }
                }
            }
            let pod_name = pod.name_any();
            ctx.expectations.created(key, &pod_name);
            match pods.create(&PostParams::default(), &pod).await {
                Ok(_) => {
                    event(
                        "SuccessfulCreate",
                        format!("created pod {pod_name} at revision {revision}"),
                        EventType::Normal,
                    );
                    None
                }
                Err(source) => {
                    ctx.expectations.create_failed(key, &pod_name);
                    event(
                        "FailedCreate",
                        format!("failed to create pod {pod_name}: {source}"),
                        EventType::Warning,
                    );
                    Some(write_err(cs, "create pod", source))
                }
            }
        }
    };
    let mut batch = 1;
    let mut planned = planned.into_iter();
    loop {
        let chunk: Vec<_> = planned.by_ref().take(batch).collect();
        if chunk.is_empty() {
            break;
        }
        let errors: Vec<Error> = futures::future::join_all(chunk.into_iter().map(create_one))
            .await
            .into_iter()
            .flatten()
            .collect();
        if let Some(e) = errors.into_iter().next() {
            failure.get_or_insert(e);
            break;
        }
        batch = (batch * 2).min(MAX_CONCURRENT_WRITES);
    }

    let cached: HashMap<String, Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && owned_by(&p.metadata, &uid))
        .map(|p| (p.name_any(), p))
        .collect();
    let delete_one = |name: &String| {
        let (pods, claims_api) = (pods.clone(), claims_api.clone());
        let (cached, claims, event) = (&cached, &claims, &event);
        let name = name.clone();
        async move {
            let pod = cached.get(&name)?;
            let pod_uid = pod.uid().unwrap_or_default();
            ctx.expectations.deleted(key, &name, &pod_uid);
            let params = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(pod_uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pods.delete(&name, &params).await {
                Ok(_) => {
                    event(
                        "SuccessfulDelete",
                        format!("deleted pod {name}"),
                        EventType::Normal,
                    );
                    let id = pod
                        .labels()
                        .get(INSTANCE_ID_LABEL)
                        .cloned()
                        .unwrap_or_default();
                    for c in claims
                        .iter()
                        .filter(|c| c.labels().get(INSTANCE_ID_LABEL) == Some(&id))
                    {
                        if let Err(e) = claims_api
                            .delete(&c.name_any(), &DeleteParams::default())
                            .await
                            && api_code(&e) != Some(404)
                        {
                            return Some(write_err(cs, "delete PersistentVolumeClaim", e));
                        }
                    }
                    None
                }
                Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                    ctx.expectations.delete_failed(key, &name);
                    None
                }
                Err(source) => {
                    ctx.expectations.delete_failed(key, &name);
                    Some(write_err(cs, "delete pod", source))
                }
            }
        }
    };
    for chunk in plan.delete.chunks(MAX_CONCURRENT_WRITES) {
        let errors = futures::future::join_all(chunk.iter().map(delete_one)).await;
        if let Some(e) = errors.into_iter().flatten().next() {
            failure.get_or_insert(e);
        }
    }

    let labelled = plan
        .recreate
        .iter()
        .map(|n| (n, SPECIFIED_DELETE_LABEL, "true"))
        .chain(
            plan.prepare_delete
                .iter()
                .map(|n| (n, LIFECYCLE_STATE_LABEL, "PreparingDelete")),
        );
    let labelled: Vec<(&String, &str, &str)> = labelled.collect();
    for chunk in labelled.chunks(MAX_CONCURRENT_WRITES) {
        let results = futures::future::join_all(chunk.iter().map(|(name, label, value)| {
            let patch = json!({"metadata": {"labels": {*label: *value}}});
            let pods = pods.clone();
            async move {
                pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
        }))
        .await;
        for r in results {
            match r {
                Ok(pod) => ctx.expectations.written(pod),
                Err(e) if api_code(&e) == Some(404) => {}
                Err(source) => {
                    failure.get_or_insert(write_err(cs, "label pod", source));
                }
            }
        }
    }

    // In-place writes through the shared executor: each pod's in order, pods concurrently, status
    // writes from the cached pod without a read.
    if !plan.in_place.is_empty() {
        let outcome = crate::inplace::execute_seen(&pods, &plan.in_place, |name| {
            ctx.pods
                .get(&ObjectRef::new(name).within(&ns))
                .map(|p| SeenPod::from_pod(&p))
        })
        .await;
        for pod in outcome.written {
            ctx.expectations.written(pod);
        }
        if let Some(e) = outcome.error {
            failure.get_or_insert(e);
        }
    }

    if !plan.forget_pods_to_delete.is_empty() || !plan.delete.is_empty() {
        let keep: Vec<&String> = cs
            .spec
            .scale_strategy
            .pods_to_delete
            .iter()
            .filter(|n| !plan.forget_pods_to_delete.contains(n) && !plan.delete.contains(n))
            .collect();
        if keep.len() != cs.spec.scale_strategy.pods_to_delete.len() {
            let sets: Api<CloneSet> = Api::namespaced(client.clone(), &ns);
            let patch = json!({
                "metadata": {"resourceVersion": cs.resource_version()},
                "spec": {"scaleStrategy": {"podsToDelete": keep}},
            });
            if let Err(e) = sets
                .patch(
                    &cs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                && api_code(&e) != Some(409)
            {
                failure.get_or_insert(write_err(cs, "podsToDelete", e));
            }
        }
    }
    failure
}

/// A new pod of `cs` at `revision`: `<set>-<id>`, the template's labels plus
/// `controller-revision-hash` and the instance id, owned by the CloneSet, with a volume for each
/// claim template (Kruise's `NewVersionedPods`).
pub fn new_pod(
    cs: &CloneSet,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    revision: &str,
    id: &str,
) -> Pod {
    let name = format!("{}-{id}", cs.name_any());
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(labels::REVISION.into(), revision.into());
    labels.insert(INSTANCE_ID_LABEL.into(), id.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    for claim in &cs.spec.volume_claim_templates {
        let claim_name = claim.name_any();
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        if volumes.iter().any(|v| v.name == claim_name) {
            continue;
        }
        volumes.push(Volume {
            name: claim_name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: format!("{claim_name}-{name}"),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cs.namespace(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: owner(cs).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The claims of pod `pod_name` (Kruise's `GetPersistentVolumeClaims`): `<claim>-<pod>`, labelled
/// with the instance id and the selector's labels, owned by the CloneSet.
pub fn new_claims(cs: &CloneSet, pod_name: &str, id: &str) -> Vec<PersistentVolumeClaim> {
    cs.spec
        .volume_claim_templates
        .iter()
        .map(|t| {
            let mut claim = t.clone();
            let mut labels = cs.spec.selector.match_labels.clone().unwrap_or_default();
            labels.extend(t.metadata.labels.clone().unwrap_or_default());
            labels.insert(INSTANCE_ID_LABEL.into(), id.into());
            claim.metadata = ObjectMeta {
                name: Some(format!("{}-{pod_name}", t.name_any())),
                namespace: cs.namespace(),
                labels: Some(labels),
                annotations: t.metadata.annotations.clone(),
                owner_references: owner(cs).map(|o| vec![o]),
                ..ObjectMeta::default()
            };
            claim.status = None;
            claim
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use sroll_api::clone_set::CloneSetSpec;

    use super::*;

    fn clone_set() -> CloneSet {
        let spec: CloneSetSpec = serde_json::from_value(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        }))
        .expect("spec");
        let mut cs = CloneSet::new("web", spec);
        cs.metadata.namespace = Some("prod".into());
        cs.metadata.uid = Some("uid-1".into());
        cs
    }

    #[test]
    fn a_new_pod_is_named_labelled_owned_and_mounts_its_claims() {
        let cs = clone_set();
        let template = planner::pod_template(&cs.spec);
        let pod = new_pod(&cs, &template, "web-abc", "x7k2p");
        assert_eq!(pod.name_any(), "web-x7k2p");
        let labels = pod.labels();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            labels.get(labels::REVISION).map(String::as_str),
            Some("web-abc")
        );
        assert_eq!(
            labels.get(INSTANCE_ID_LABEL).map(String::as_str),
            Some("x7k2p")
        );
        let owner = &pod.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CloneSet", Some(true))
        );
        let spec = pod.spec.as_ref().expect("spec");
        assert!(
            spec.readiness_gates
                .iter()
                .flatten()
                .any(|g| g.condition_type == inplace::READINESS_GATE)
        );
        let volume = &spec.volumes.as_ref().expect("volumes")[0];
        assert_eq!(
            volume
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("data-web-x7k2p")
        );
        let claims = new_claims(&cs, "web-x7k2p", "x7k2p");
        assert_eq!(claims[0].name_any(), "data-web-x7k2p");
        assert_eq!(
            claims[0]
                .labels()
                .get(INSTANCE_ID_LABEL)
                .map(String::as_str),
            Some("x7k2p")
        );
    }

    #[test]
    fn instance_ids_are_five_lowercase_alphanumerics() {
        for _ in 0..100 {
            let id = random_id();
            assert_eq!(id.len(), 5);
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            );
        }
    }

    #[test]
    fn the_revision_name_follows_the_template_and_the_collision_count() {
        let cs = clone_set();
        let t = planner::pod_template(&cs.spec);
        let a = planner::revision_name("web", &t, 0);
        assert!(a.starts_with("web-") && a.len() == 14, "{a}");
        assert_eq!(a, planner::revision_name("web", &t, 0));
        assert_ne!(a, planner::revision_name("web", &t, 1));
        let mut other = cs.spec.clone();
        if let Some(s) = other.template.spec.as_mut() {
            s.containers[0].image = Some("app:2".into());
        }
        assert_ne!(
            a,
            planner::revision_name("web", &planner::pod_template(&other), 0)
        );
        let cr = ControllerRevision {
            data: Some(planner::revision_data(&t)),
            ..ControllerRevision::default()
        };
        assert_eq!(inplace::template_from_revision(&cr), Some(t));
    }
}
