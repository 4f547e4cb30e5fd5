//! The reconcile loop: `kube::runtime::Controller` on `StatefulsetRollout`, triggered by changes of
//! the rollout's spec, its StatefulSet (owned), its pods, the PDBs selecting them and the
//! EndpointSlices of the Services gating it, by the integrations' background workers (a Consul
//! health change, a delivered callback, new Slack message ids) and by self-requeues for time-based
//! waits.
//!
//! One reconcile reads as its five steps: **observe** (caches and the integrations' reports →
//! [`Observed`](sroll_planner::Observed)) → **plan** (pure: one action, the status, the events,
//! the announcements) → **execute** the one action → **settle** (pure: the status of what really
//! happened, [`sroll_planner::settle`]) → **write** the status, then announce (webhooks, Slack, the
//! release callback), record the events and requeue. Nothing after `plan` edits a status but
//! `settle`. kube-rs never runs two reconciles of one rollout at once; what this process keeps of
//! a rollout between reconciles is one [`RolloutMemo`].
//!
//! The rollout's own trigger stream passes only spec changes (`predicates::generation`): the
//! status the operator writes must not wake the operator up again. A status this process wrote is
//! remembered until the cache catches up, so a reconcile triggered by a pod event in between plans
//! from the newest status (pacing and progress clocks are never read stale).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, StatefulSet},
        core::v1::Pod,
        discovery::v1::EndpointSlice,
        policy::v1::PodDisruptionBudget,
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::{Action as Requeue, Config as ControllerConfig},
        events::{Event, EventType},
        predicates,
        reflector::{self, ObjectRef},
        scheduler::{ScheduleRequest, scheduler},
        watcher,
    },
};
use sroll_api::{
    Phase, StatefulsetRollout, StatefulsetRolloutStatus, predicates::resource_version, sync::lock,
};
use sroll_planner::{Action, Executed, Observed, Plan, PlannedEvent, Settled, index::Wake};

use crate::{
    Error, Result,
    cache::{self, Caches},
    events::EventSink,
    execute,
    integrations::Integrations,
    metrics::Metrics,
    observe::{self, Expectations},
    watches::detached,
};

/// How long a reconcile waits for the watch caches' initial list before it gives up (and is
/// retried with backoff).
const CACHE_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// The shortest time between two status writes of one rollout that only report progress (pod
/// readiness and revisions, counts, the reason text, a condition's reason or message): for
/// statuses of up to [`PROGRESS_PODS_PER_SECOND`] pods; a larger status waits proportionally
/// longer, up to [`PROGRESS_WRITE_INTERVAL_MAX`] ([`progress_write_interval`]). Every other change
/// — phase, a condition's status, revisions, pacing, callbacks, Slack ids, observedGeneration — is
/// written at once, and so is any change made by a reconcile that acted. Without this, a 1,000-pod
/// rollout writes its 1,000-entry status once per pod event (thousands of writes of tens of
/// kilobytes each).
const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a change that can only make a rollout wait may wait for its plan
/// ([`sroll_planner::index::Wake::Later`]: a pod of the rollout went not Ready, terminating or
/// away, or its PDB's budget fell), unless a change that may let it act wakes it first: as long
/// as the shortest wait of a progress write, the one thing such a change alters being the
/// progress the status reports.
const LATER_WAKE: Duration = PROGRESS_WRITE_INTERVAL;

/// `status.pods` entries per second of [`PROGRESS_WRITE_INTERVAL`]: every write of a rollout's
/// status costs the operator, the API server and every watcher of rollouts a parse and a copy of
/// the whole list, so progress-only writes of a big set are spaced so that they carry at most
/// about this many entries per second (1,000 pods: one progress write per 5 s).
const PROGRESS_PODS_PER_SECOND: u32 = 200;

/// The longest wait of a progress-only write, whatever the size of the status.
const PROGRESS_WRITE_INTERVAL_MAX: Duration = Duration::from_secs(10);

/// At most this many rollouts have their first reconcile in this process at once. At start-up
/// (or on taking the lead) every rollout is reconciled at the same moment; each holds its
/// observation, plan and status patch (about 1 MB for a 1,000-pod rollout) until its write
/// returns, so 100 rollouts at once would hold 100 of them. Later reconciles are not limited: a
/// rollout's reconcile mostly waits on its own API requests (evictions one by one). Two: with 8,
/// watching 100 × 1,000 pods peaked 7–8 MiB above where it settled (102.6 against 94.2 MiB,
/// BENCHMARKS.md "Session 15"), and the first reconciles of 100 rollouts still take seconds.
const FIRST_RECONCILES_AT_ONCE: usize = 2;

/// The process-wide handles every namespace scope's controller works with: the API client,
/// the metrics, the event sink and the integrations.
#[derive(Clone)]
pub struct OperatorHandles {
    /// The API client.
    pub client: Client,
    /// The watch threads, if the rollout controller's watches run on threads of their own.
    pub watches: Option<crate::watches::WatchRuntime>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Events (events.k8s.io/v1), published in the background.
    pub events: EventSink,
    /// Notifications, release callback and service-discovery health.
    pub integrations: Arc<Integrations>,
}

impl std::fmt::Debug for OperatorHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorHandles").finish_non_exhaustive()
    }
}

type Key = ObjectRef<StatefulsetRollout>;

/// The context of one namespace scope's controller.
pub struct Context {
    handles: OperatorHandles,
    caches: Caches,
    /// The caches' first list, awaited once for every reconcile ([`cache::Synced`]).
    synced: cache::Synced,
    /// What this process remembers of each rollout between reconciles.
    memos: Mutex<HashMap<Key, RolloutMemo>>,
    /// Permits for a rollout's first reconcile ([`FIRST_RECONCILES_AT_ONCE`]).
    first_reconciles: tokio::sync::Semaphore,
    /// Writes the caches may not show yet.
    expectations: Expectations,
    /// Turns true when the scope shuts down: a reconcile still waiting for the caches gives up
    /// (the watches are no longer polled, so they would never become ready).
    stopping: tokio::sync::watch::Receiver<bool>,
    /// Measures `spec.analysis` outside reconcile (`analysis.rs`).
    analysis: crate::analysis::Analysis,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("caches", &self.caches)
            .finish_non_exhaustive()
    }
}

/// `Api` over one namespace, or all namespaces for `None` (a controller scope).
pub(crate) fn api_in<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller for one namespace scope (`None`: all namespaces) until `stopped` resolves;
/// then reconciles in flight finish and the function returns.
pub async fn run_scope(
    handles: OperatorHandles,
    namespace: Option<String>,
    stopped: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = namespace.as_deref();
    let client = &handles.client;
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let stopped = async move {
        stopped.await;
        let _ = stop_tx.send(true);
    };

    // The watches run on the watch threads when the operator has some (`watches.rs`): through
    // their client, and each stream up to the triggers it yields.
    let watches = handles.watches.clone();
    let watch_client = watches.as_ref().map_or(client, |w| w.client());

    let (pod_index, pod_stream) = cache::watch_pods(watch_client, ns);

    let (rollouts, rollout_writer) = reflector::store::<StatefulsetRollout>();
    let rollout_index = pod_index.clone();
    let rollout_stream = watcher(
        api_in(watch_client, ns),
        watcher::Config::default().any_semantic(),
    )
    .backoff(cache::WatchBackoff::default())
    .modify(move |rollout| cache::cache_rollout(&rollout_index, rollout))
    .reflect(rollout_writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());

    let (statefulsets, sts_writer) = reflector::store::<StatefulSet>();
    let sts_stream = watcher(
        api_in::<StatefulSet>(watch_client, ns),
        watcher::Config::default().any_semantic(),
    )
    .backoff(cache::WatchBackoff::default())
    .modify(cache::strip_statefulset)
    .reflect(sts_writer);
    // Only changes of what the planner reads of a set wake its rollout, not the StatefulSet
    // controller's status counts after each pod change (`cache::triggers`).
    let sts_stream = cache::triggers::changed_objects(
        sts_stream,
        cache::triggers::statefulset_fingerprint,
        cache::triggers::statefulset_stub,
    );

    let (pdbs, pdb_writer) = reflector::store::<PodDisruptionBudget>();
    let pdb_stream = watcher(
        api_in::<PodDisruptionBudget>(watch_client, ns),
        watcher::Config::default().any_semantic(),
    )
    .backoff(cache::WatchBackoff::default())
    .modify(cache::strip_pdb)
    .reflect(pdb_writer);
    let pdb_stream = cache::triggers::changed_objects_waking(
        pdb_stream,
        cache::triggers::Fingerprints::new(
            cache::triggers::pdb_fingerprint,
            cache::triggers::pdb_stub,
        )
        .with_levels(cache::triggers::pdb_levels),
    );

    let (endpoint_slices, slice_writer) = reflector::store::<EndpointSlice>();
    let slice_stream = watcher(
        api_in::<EndpointSlice>(watch_client, ns),
        watcher::Config::default()
            .labels(sroll_api::labels::SERVICE_NAME)
            .any_semantic(),
    )
    .backoff(cache::WatchBackoff::default())
    .modify(cache::strip_endpoint_slice)
    .reflect(slice_writer);
    let slice_stream = cache::triggers::changed_objects(
        slice_stream,
        cache::triggers::endpoint_slice_fingerprint,
        cache::triggers::endpoint_slice_stub,
    );

    let (controller_revisions, revision_writer) = reflector::store::<ControllerRevision>();
    let revision_stream = watcher(
        api_in::<ControllerRevision>(watch_client, ns),
        watcher::Config::default().any_semantic(),
    )
    .backoff(cache::WatchBackoff::default())
    .modify(cache::strip_controller_revision)
    .reflect(revision_writer)
    .touched_objects();

    // Results of the integrations' background workers concerning rollouts of this scope.
    let woken = handles.integrations.wakes(ns);
    let (analysis, measured) = crate::analysis::Analysis::new(client.clone());

    let caches = Caches {
        rollouts: rollouts.clone(),
        statefulsets: statefulsets.clone(),
        pod_index,
        pdbs,
        endpoint_slices,
        controller_revisions,
    };
    let ctx = Arc::new(Context {
        handles,
        caches,
        synced: cache::Synced::default(),
        memos: Mutex::default(),
        first_reconciles: tokio::sync::Semaphore::new(FIRST_RECONCILES_AT_ONCE),
        expectations: Expectations::default(),
        stopping,
        analysis,
    });

    let (pod_rollouts, pod_sets) = (rollouts.clone(), statefulsets.clone());
    let pdb_rollouts = rollouts.clone();
    let slice_rollouts = rollouts.clone();
    let (revision_rollouts, revision_sets) = (rollouts.clone(), statefulsets.clone());
    // Each watch backs off on its own; the errors stop here so that the Controller's trigger
    // back-off never pauses every cache at once (`cache::errors_logged`).
    let watches = watches.as_ref();
    Controller::for_stream(
        detached(
            watches,
            cache::errors_logged(rollout_stream, "StatefulsetRollout"),
        ),
        rollouts,
    )
    .with_config(ControllerConfig::default())
    .owns_stream(detached(
        watches,
        cache::errors_logged(sts_stream, "StatefulSet"),
    ))
    .watches_stream(
        detached(watches, cache::errors_logged(slice_stream, "EndpointSlice")),
        move |slice| cache::rollouts_of_endpoint_slice(&slice_rollouts, &slice),
    )
    .watches_stream(
        detached(
            watches,
            cache::errors_logged(revision_stream, "ControllerRevision"),
        ),
        move |revision| {
            cache::rollout_of_controller_revision(&revision_rollouts, &revision_sets, &revision)
        },
    )
    // Pods wake their rollout per set, only when the planner's view of the set changed
    // (`cache::watch_pods`); PDBs when what the planner reads of them did. A change that can only
    // make the rollout wait wakes it within `LATER_WAKE`, unless another wakes it before.
    .reconcile_on(wakes_in_time(
        detached(
            watches,
            cache::errors_logged(pod_stream, "Pod").filter_map(move |set| {
                std::future::ready(set.ok().and_then(|set| {
                    cache::rollout_of_set(&pod_rollouts, &pod_sets, &set).map(|r| (r, set.wake))
                }))
            }),
        ),
        detached(
            watches,
            cache::errors_logged(pdb_stream, "PodDisruptionBudget").flat_map(move |changed| {
                let wakes = match changed {
                    Ok((pdb, wake)) => cache::rollouts_of_pdb(&pdb_rollouts, &pdb)
                        .into_iter()
                        .map(|r| (r, wake))
                        .collect(),
                    Err(_) => Vec::new(),
                };
                futures::stream::iter(wakes)
            }),
        ),
    ))
    .reconcile_on(futures::stream::select(woken, measured))
    .graceful_shutdown_on(stopped)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        match result {
            Ok((obj, _)) => tracing::trace!(rollout = %obj, "reconciled"),
            Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
        }
    })
    .await;
    tracing::info!(namespace = ?namespace, "controller stopped");
}

/// The rollouts to reconcile, from the pod and PDB triggers: each at once for a
/// [`Wake::Now`], [`LATER_WAKE`] after a [`Wake::Later`]; a rollout waiting to be woken is
/// woken once, at the earliest of its times (kube-runtime's `scheduler`: a `Now` for a rollout
/// waiting on a `Later` wakes it at once, and that wake serves both).
fn wakes_in_time(
    pods: impl Stream<Item = (Key, Wake)> + Send + 'static,
    pdbs: impl Stream<Item = (Key, Wake)> + Send + 'static,
) -> impl Stream<Item = Key> + Send + 'static {
    scheduler(
        futures::stream::select(pods, pdbs).map(|(rollout, wake)| ScheduleRequest {
            message: rollout,
            run_at: tokio::time::Instant::now()
                + match wake {
                    Wake::Now => Duration::ZERO,
                    Wake::Later => LATER_WAKE,
                },
        }),
    )
}

/// A status this process wrote, kept until the rollout cache shows a version at least as new.
#[derive(Debug)]
struct Written {
    /// `metadata.resourceVersion` the API server answered.
    resource_version: u64,
    /// The status sent (the API server stores it as sent: the operator owns every status field).
    status: Arc<StatefulsetRolloutStatus>,
}

/// What this process remembers of one rollout between reconciles (one entry per rollout key).
#[derive(Debug, Default)]
struct RolloutMemo {
    /// This process's last status write, until the cache catches up.
    written: Option<Written>,
    /// A status planned but not written yet (progress within [`progress_write_interval`] of the
    /// last write): the next reconcile plans from it.
    deferred: Option<Arc<StatefulsetRolloutStatus>>,
    /// The rollout had a reconcile in this process that got as far as its status decision.
    reconciled: bool,
    /// When this process last wrote the status (progress writes are spaced out).
    last_write: Option<Instant>,
    /// Consecutive transient failures (per-object backoff).
    failures: u32,
    /// When this process saw the rollout start moving pods (the rollout duration metric).
    started: Option<Instant>,
    /// What the last plan was made from (when it completed), its pod list
    /// [detached](sroll_planner::Observed::detached): a reconcile observing the same inputs
    /// before [`Self::due`] plans nothing.
    planned_from: Option<Observed>,
    /// When the last plan asked to be looked at again (its time-based waits come due).
    due: Option<Instant>,
}

impl Context {
    /// Runs `f` on the memo of `key` (created empty if missing).
    fn memo<T>(&self, key: &Key, f: impl FnOnce(&mut RolloutMemo) -> T) -> T {
        f(lock(&self.memos).entry(key.clone()).or_default())
    }

    /// `Some(requeue)` when `observed` holds the inputs of the rollout's last plan, no timer of
    /// that plan is due and no progress write is deferred: there is nothing to plan, and the next
    /// look is at that timer (`None`: when something changes).
    fn unchanged(&self, key: &Key, observed: &Observed) -> Option<Option<Duration>> {
        self.memo_read(key, |m| {
            if m.deferred.is_some() {
                return None;
            }
            let wait = match m.due {
                Some(due) => Some(due.checked_duration_since(Instant::now())?),
                None => None,
            };
            m.planned_from
                .as_ref()
                .filter(|p| p.same_inputs(observed))
                .map(|_| wait)
        })
    }

    /// Reads the memo of `key` (`f` of an empty memo when there is none).
    fn memo_read<T>(&self, key: &Key, f: impl FnOnce(&RolloutMemo) -> T) -> T {
        match lock(&self.memos).get(key) {
            Some(m) => f(m),
            None => f(&RolloutMemo::default()),
        }
    }

    /// The rollout to plan from, and the status the API server holds: the spec and metadata of
    /// `cached`, with the newer of `cached`'s status and the status this process last wrote
    /// (forgotten once the cache caught up), or the status this process planned but deferred, if
    /// any (so a deferred step is neither lost nor announced twice). The spec always comes from
    /// the cache: a spec change reconciles the rollout when the cache shows it.
    fn memo_view(
        &self,
        key: &Key,
        cached: Arc<StatefulsetRollout>,
    ) -> (Arc<StatefulsetRollout>, Held) {
        self.memo(key, |m| m.view(cached))
    }
}

impl RolloutMemo {
    /// [`Context::memo_view`] of this memo.
    fn view(&mut self, cached: Arc<StatefulsetRollout>) -> (Arc<StatefulsetRollout>, Held) {
        let m = self;
        {
            let cached_version = resource_version(&cached.metadata);
            let written = match &m.written {
                Some(w) if w.resource_version > cached_version => {
                    Some((w.resource_version, w.status.clone()))
                }
                _ => {
                    m.written = None;
                    None
                }
            };
            let held = match &written {
                Some((_, status)) => Held::Written(status.clone()),
                None => Held::Cached(cached.clone()),
            };
            let status = match (&m.deferred, written) {
                (Some(planned), w) => Some((w.map(|(v, _)| v), planned.clone())),
                (None, Some((v, status))) => Some((Some(v), status)),
                (None, None) => None,
            };
            let rollout = match status {
                None => cached,
                Some((version, status)) => {
                    let mut metadata = cached.metadata.clone();
                    if let Some(v) = version {
                        metadata.resource_version = Some(v.to_string());
                    }
                    Arc::new(StatefulsetRollout {
                        metadata,
                        spec: cached.spec.clone(),
                        status: Some((*status).clone()),
                    })
                }
            };
            (rollout, held)
        }
    }
}

/// The status the API server holds for a rollout, as far as this process knows.
#[derive(Debug)]
enum Held {
    /// The cached rollout's.
    Cached(Arc<StatefulsetRollout>),
    /// The one this process wrote last (the cache is behind).
    Written(Arc<StatefulsetRolloutStatus>),
}

impl Held {
    fn status(&self) -> &StatefulsetRolloutStatus {
        static NONE: std::sync::LazyLock<StatefulsetRolloutStatus> =
            std::sync::LazyLock::new(StatefulsetRolloutStatus::default);
        match self {
            Held::Cached(rollout) => rollout.status.as_ref().unwrap_or(&NONE),
            Held::Written(status) => status,
        }
    }
}

/// Waits until every cache has its first list. Only through `synced`: kube-runtime's readiness
/// wakes one waiter per store, and reconciles of several rollouts wait at once.
async fn wait_for_caches(
    caches: &Caches,
    synced: &cache::Synced,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let sync = synced.wait(|| async {
        let _ = caches.statefulsets.wait_until_ready().await;
        caches.pod_index.wait_until_ready().await;
        let _ = caches.pdbs.wait_until_ready().await;
        let _ = caches.endpoint_slices.wait_until_ready().await;
        let _ = caches.controller_revisions.wait_until_ready().await;
    });
    tokio::select! {
        synced = tokio::time::timeout(CACHE_SYNC_TIMEOUT, sync) => {
            synced.map_err(|_| Error::CacheNotReady(CACHE_SYNC_TIMEOUT))
        }
        _ = stopping.wait_for(|stop| *stop) => Err(Error::CacheNotReady(Duration::ZERO)),
    }
}

/// How a planned status differs from the one the API server holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    /// Not at all, clocks aside (`lastUpdated`, `reconcileAfter` change on every plan).
    None,
    /// Only in what reports progress: pod readiness and revisions (`pods`, `inPlaceUpdating`),
    /// the counts, `percentDeployed`, the reason text, `lastProgressTime`, a condition's reason or
    /// message, and `lastEvictionTime` of an unpaced rollout.
    Progress,
    /// In anything else: the phase, a condition's status (or the set of conditions), revisions,
    /// pacing (`lastEvictionTime` of a `paced` rollout, `minPodEvictionIntervalSeconds` > 0, where
    /// the next eviction depends on it even across a restart), callbacks, Slack ids, analysis,
    /// observedGeneration.
    Milestone,
}

/// How `planned` differs from `held`, field by field without copying either (a status carries
/// one entry per pod). Every field is named, so a new status field must be classified here.
fn change(
    held: &StatefulsetRolloutStatus,
    planned: &StatefulsetRolloutStatus,
    paced: bool,
) -> Change {
    let StatefulsetRolloutStatus {
        phase,
        percent_deployed,
        reason,
        ready_replicas,
        ready_replicas_service_discovery,
        paused,
        deleted,
        pods,
        reconcile_after: _,
        last_updated: _,
        last_callback_stage_id,
        last_callback_outcome,
        build_metadata,
        slack_message,
        consul_services,
        statefulset_name,
        statefulset_spec_current,
        rollout_identity,
        observed_generation,
        current_revision,
        update_revision,
        previous_revision,
        replicas,
        updated_replicas,
        target_updated_replicas,
        last_eviction_time,
        last_progress_time,
        conditions,
        analysis,
        in_place_updating,
    } = held;
    let same_conditions = |by: fn(&Condition, &Condition) -> bool| {
        conditions.len() == planned.conditions.len()
            && conditions
                .iter()
                .zip(&planned.conditions)
                .all(|(a, b)| by(a, b))
    };
    let milestone = *phase != planned.phase
        || *paused != planned.paused
        || *deleted != planned.deleted
        || *last_callback_stage_id != planned.last_callback_stage_id
        || *last_callback_outcome != planned.last_callback_outcome
        || *build_metadata != planned.build_metadata
        || *slack_message != planned.slack_message
        || *consul_services != planned.consul_services
        || *statefulset_name != planned.statefulset_name
        || *statefulset_spec_current != planned.statefulset_spec_current
        || *rollout_identity != planned.rollout_identity
        || *observed_generation != planned.observed_generation
        || *current_revision != planned.current_revision
        || *update_revision != planned.update_revision
        || *previous_revision != planned.previous_revision
        || *replicas != planned.replicas
        || *target_updated_replicas != planned.target_updated_replicas
        || (paced && *last_eviction_time != planned.last_eviction_time)
        || *analysis != planned.analysis
        || !same_conditions(|a, b| {
            a.type_ == b.type_
                && a.status == b.status
                && a.observed_generation == b.observed_generation
                && a.last_transition_time == b.last_transition_time
        });
    if milestone {
        return Change::Milestone;
    }
    let progress = *percent_deployed != planned.percent_deployed
        || *reason != planned.reason
        || *ready_replicas != planned.ready_replicas
        || *ready_replicas_service_discovery != planned.ready_replicas_service_discovery
        || *pods != planned.pods
        || *updated_replicas != planned.updated_replicas
        || *last_eviction_time != planned.last_eviction_time
        || *last_progress_time != planned.last_progress_time
        || *in_place_updating != planned.in_place_updating
        || !same_conditions(|a, b| a.reason == b.reason && a.message == b.message);
    if progress {
        Change::Progress
    } else {
        Change::None
    }
}

/// The shortest time between two progress-only writes of a status of `pods` entries:
/// [`PROGRESS_WRITE_INTERVAL`] per [`PROGRESS_PODS_PER_SECOND`] entries, at least
/// [`PROGRESS_WRITE_INTERVAL`] and at most [`PROGRESS_WRITE_INTERVAL_MAX`].
fn progress_write_interval(pods: usize) -> Duration {
    let scaled = PROGRESS_WRITE_INTERVAL
        .saturating_mul(u32::try_from(pods).unwrap_or(u32::MAX) / PROGRESS_PODS_PER_SECOND);
    scaled.clamp(PROGRESS_WRITE_INTERVAL, PROGRESS_WRITE_INTERVAL_MAX)
}

/// Whether the status must be written now: `Ok(())` yes, `Err(wait)` not before `wait` (a
/// progress-only change written less than [`progress_write_interval`] ago), `None`: nothing to
/// write (the planned status is the one the API server holds, clocks aside: nothing is sent).
/// `acted`: the reconcile changed the StatefulSet or deleted pods (what changed is recorded at
/// once); evictions of an unpaced rollout are progress (the next reconcile sees them in the pods,
/// and the Slack message and webhooks are sent from the plan, not from the status).
fn status_write_due(
    acted: bool,
    paced: bool,
    held: &StatefulsetRolloutStatus,
    planned: &StatefulsetRolloutStatus,
    since_last_write: Option<Duration>,
) -> Option<std::result::Result<(), Duration>> {
    match change(held, planned, paced) {
        Change::None => None,
        Change::Milestone => Some(Ok(())),
        Change::Progress if acted => Some(Ok(())),
        Change::Progress => {
            let interval = progress_write_interval(planned.pods.len());
            match since_last_write {
                Some(since) if since < interval => Some(Err(interval - since)),
                _ => Some(Ok(())),
            }
        }
    }
}

async fn reconcile(rollout: Arc<StatefulsetRollout>, ctx: Arc<Context>) -> Result<Requeue> {
    let started = Instant::now();
    ctx.handles.metrics.reconciles.inc();
    let result = reconcile_inner(rollout, &ctx).await;
    ctx.handles
        .metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_inner(rollout: Arc<StatefulsetRollout>, ctx: &Context) -> Result<Requeue> {
    let key = ObjectRef::from_obj(&*rollout);
    let namespace = rollout
        .namespace()
        .ok_or_else(|| Error::InvalidObject("the rollout has no namespace".into()))?;
    wait_for_caches(&ctx.caches, &ctx.synced, ctx.stopping.clone()).await?;

    // A rollout's first reconcile in this process waits for one of a few permits (start-up).
    let _first = match ctx.memo_read(&key, |m| m.reconciled) {
        true => None,
        false => ctx.first_reconciles.acquire().await.ok(),
    };

    // Observe: the rollout as this process last knew it, the caches, the integrations' reports.
    let (rollout, held) = ctx.memo_view(&key, rollout);
    let observed = observe_all(ctx, &rollout);
    // Nothing the rollout depends on changed since its last plan, and no timer of that plan is
    // due: that plan stands (a plan is a pure function of what was observed).
    if let Some(wait) = ctx.unchanged(&key, &observed) {
        ctx.handles.metrics.plans_skipped.inc();
        tracing::trace!(rollout = %key, ?wait, "nothing changed since the last plan");
        return Ok(wait.map_or_else(Requeue::await_change, Requeue::requeue));
    }
    ctx.memo(&key, |m| m.planned_from = None);
    // Plan.
    ctx.handles
        .metrics
        .planner_pods
        .inc_by(u64::try_from(observed.pods.len()).unwrap_or(u64::MAX));
    let plan = sroll_planner::plan(&observed);
    ctx.handles
        .metrics
        .planner_pod_visits
        .inc_by(plan.cost.pods_visited);
    ctx.handles
        .metrics
        .planner_status_pods
        .inc_by(plan.cost.status_pods);
    tracing::debug!(
        rollout = %key,
        action = ?action_name(&plan.action),
        reason = plan.status.reason.as_deref().unwrap_or(""),
        "planned"
    );
    // Execute the one action. An eviction error after some evictions still settles and writes
    // the status (the evictions happened) and is returned afterwards.
    let (executed, deferred_error) =
        execute_action(ctx, &key, &namespace, &observed, &plan).await?;
    // Settle: the status of what really happened.
    let settled = sroll_planner::settle(&observed, &plan, &executed);
    ctx.analysis.after_plan(&rollout, &settled.status);
    // Write, then announce and record.
    let deferred_write = write_status(ctx, &key, &rollout, &plan.action, &held, &settled).await?;
    drop(held);
    let evicting: &[String] = match &plan.action {
        Action::Evict { pods, .. } if executed.rejected.is_none() => pods,
        _ => &[],
    };
    ctx.handles
        .integrations
        .announce(&rollout, &observed, &settled, evicting, &ctx.caches)
        .await;
    publish_events(ctx, &rollout, &settled.events);
    record_phase_metrics(ctx, &key, &rollout, &settled);

    ctx.memo(&key, |m| m.failures = 0);
    if let Some(err) = deferred_error {
        return Err(err);
    }
    let after = requeue_after(ctx, &rollout, &settled, deferred_write);
    ctx.memo(&key, |m| {
        m.due = after.map(|a| Instant::now() + a);
        // Without the pod list: a held list would make the pod index copy it on the next event.
        m.planned_from = Some(observed.detached());
    });
    Ok(after.map_or_else(Requeue::await_change, Requeue::requeue))
}

/// The planner's snapshot: the caches (with this process's pending writes), the analysis
/// measurements, service-discovery health and the integrations' reports.
fn observe_all(ctx: &Context, rollout: &StatefulsetRollout) -> Observed {
    let mut observed = observe::observe(&ctx.caches, &ctx.expectations, rollout, Timestamp::now());
    observed.discovery = ctx
        .handles
        .integrations
        .discovery(rollout, &observed, &ctx.caches);
    observed.analysis = ctx.analysis.measurements(rollout);
    observed.integrations = ctx.handles.integrations.observe(rollout);
    observed
}

/// Executes the plan's one action and reports what it achieved for [`sroll_planner::settle`],
/// with an error to return once the status is written (evictions or in-place writes that stopped
/// on an error after some were done).
async fn execute_action(
    ctx: &Context,
    key: &Key,
    namespace: &str,
    observed: &Observed,
    plan: &Plan,
) -> Result<(Executed, Option<Error>)> {
    let client = &ctx.handles.client;
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut executed = Executed::default();
    let mut deferred = None;
    match &plan.action {
        Action::Wait => {}
        Action::Apply { statefulset, kind } => {
            tracing::info!(rollout = %key, ?kind, "applying the StatefulSet");
            executed.rejected = apply_set(ctx, &sts_api, statefulset).await?;
        }
        Action::RecreateOrphan { name, uid } => {
            tracing::info!(rollout = %key, statefulset = %name, "deleting the StatefulSet (orphaning its pods) to recreate it");
            execute::delete_statefulset_orphan(&sts_api, name, uid).await?;
        }
        Action::SetPartition(mv) => {
            tracing::info!(rollout = %key, partition = mv.partition, "moving the partition");
            executed.rejected = apply_set(ctx, &sts_api, &mv.statefulset).await?;
        }
        Action::Evict { partition, pods } => {
            if let Some(mv) = partition {
                executed.rejected = apply_set(ctx, &sts_api, &mv.statefulset).await?;
            }
            // Never evict without the partition that covers the batch.
            if executed.rejected.is_none() {
                let targets = targets(observed, pods);
                let outcome = execute::evict(&pod_api, &targets, &ctx.handles.metrics).await;
                ctx.expectations
                    .pods_deleted(namespace, chosen(&targets, &outcome.evicted));
                tracing::info!(
                    rollout = %key,
                    evicted = ?outcome.evicted,
                    throttled = ?outcome.throttled,
                    conflicted = ?outcome.conflicted,
                    "evicted pods"
                );
                if outcome.done() < pods.len() {
                    executed.evicted = Some(outcome.done());
                }
                deferred = outcome.error;
            }
        }
        Action::DeletePods { partition, pods } => {
            if let Some(mv) = partition {
                executed.rejected = apply_set(ctx, &sts_api, &mv.statefulset).await?;
            }
            if executed.rejected.is_none() {
                let targets = targets(observed, pods);
                let deleted = execute::delete_pods(&pod_api, &targets).await?;
                ctx.expectations
                    .pods_deleted(namespace, chosen(&targets, &deleted));
                tracing::info!(rollout = %key, ?deleted, "deleted broken pods");
            }
        }
        Action::PatchCurrentRevision {
            statefulset,
            revision,
        } => {
            execute::set_current_revision(&sts_api, statefulset, revision).await?;
        }
        Action::InPlace { partition, writes } => {
            if let Some(mv) = partition {
                executed.rejected = apply_set(ctx, &sts_api, &mv.statefulset).await?;
            }
            if executed.rejected.is_none() {
                let outcome = crate::inplace::execute_seen(&pod_api, writes, |pod| {
                    cache::pod_seen(&ctx.caches, namespace, pod)
                })
                .await;
                let names: Vec<String> = outcome.written.iter().map(|p| p.name_any()).collect();
                tracing::info!(rollout = %key, written = ?names, skipped = outcome.skipped, "in-place writes");
                for pod in outcome.written {
                    ctx.expectations.pod_written(pod);
                }
                deferred = outcome.error;
            }
        }
    }
    if let Some(message) = &executed.rejected {
        tracing::warn!(rollout = %key, %message, "the StatefulSet was rejected; blocked until the spec changes");
    }
    Ok((executed, deferred))
}

/// Writes the settled status when it must be written now ([`status_write_due`]), or keeps it in
/// the rollout's memo for the next reconcile (a progress-only change); returns how long a
/// deferred write may wait.
async fn write_status(
    ctx: &Context,
    key: &Key,
    rollout: &StatefulsetRollout,
    action: &Action,
    held: &Held,
    settled: &Settled,
) -> Result<Option<Duration>> {
    let paced = rollout.spec.min_pod_eviction_interval_seconds() > 0;
    let acted = match action {
        Action::Wait => false,
        // In-place writes, like evictions, are progress: the next reconcile sees them in the pods.
        Action::Evict { .. } | Action::InPlace { .. } => paced,
        _ => true,
    };
    let since_last_write = ctx.memo(key, |m| {
        m.reconciled = true;
        m.last_write.map(|t| t.elapsed())
    });
    match status_write_due(
        acted,
        paced,
        held.status(),
        &settled.status,
        since_last_write,
    ) {
        Some(Ok(())) => {
            let name = rollout.name_any();
            let api: Api<StatefulsetRollout> = Api::namespaced(
                ctx.handles.client.clone(),
                &rollout.namespace().unwrap_or_default(),
            );
            let body =
                execute::status_body(&settled.status).map_err(|source| Error::Serialize {
                    what: "the rollout status",
                    source,
                })?;
            let version = execute::write_status(&ctx.handles.client, &api, &name, body).await?;
            let status = Arc::new(settled.status.clone());
            ctx.memo(key, |m| {
                m.written = Some(Written {
                    resource_version: version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
                    status,
                });
                m.last_write = Some(Instant::now());
                m.deferred = None;
            });
            Ok(None)
        }
        Some(Err(wait)) => {
            tracing::trace!(rollout = %key, ?wait, "progress-only status change: writing it later");
            let status = Arc::new(settled.status.clone());
            ctx.memo(key, |m| m.deferred = Some(status));
            Ok(Some(wait))
        }
        None => {
            ctx.memo(key, |m| m.deferred = None);
            Ok(None)
        }
    }
}

/// How soon to look again: the settled plan's requeue (a Consul-gated rollout at least every poll
/// interval, Consul having no watch: its poller wakes the rollout on a change, this is the safety
/// net), and a deferred progress write at the latest.
fn requeue_after(
    ctx: &Context,
    rollout: &StatefulsetRollout,
    settled: &Settled,
    deferred_write: Option<Duration>,
) -> Option<Duration> {
    let terminal = settled
        .status
        .phase
        .as_ref()
        .is_some_and(Phase::is_terminal);
    let discovery_poll = (!terminal)
        .then(|| ctx.handles.integrations.discovery_poll(rollout))
        .flatten();
    let after = match (settled.requeue_after, discovery_poll) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match (after, deferred_write) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The pods the plan names, each with the uid of the incarnation it was planned from.
fn targets<'a>(observed: &'a Observed, names: &'a [String]) -> Vec<execute::Target<'a>> {
    names
        .iter()
        .map(|name| execute::Target {
            name,
            uid: observed
                .pods
                .iter()
                .find(|p| *p.name == **name)
                .map_or("", |p| &*p.uid),
        })
        .collect()
}

/// Server-side applies `desired` and records the expectation. `Ok(Some(message))` when the API
/// server rejected it as invalid (422) or malformed (400): the same spec will be rejected again,
/// which is a state of the rollout to report, not an error to retry.
async fn apply_set(
    ctx: &Context,
    api: &Api<StatefulSet>,
    desired: &StatefulSet,
) -> Result<Option<String>> {
    match execute::apply_statefulset(api, desired).await {
        Ok(applied) => {
            ctx.expectations.applied(applied);
            Ok(None)
        }
        Err(Error::ApplyStatefulSet {
            name,
            source: kube::Error::Api(status),
        }) if status.code == 422 || status.code == 400 => Ok(Some(format!(
            "the API server rejected StatefulSet {name} ({} {}): {}",
            status.code, status.reason, status.message
        ))),
        Err(e) => Err(e),
    }
}

/// `(name, uid)` of the targets whose write was accepted.
fn chosen<'a>(
    targets: &'a [execute::Target<'a>],
    done: &'a [String],
) -> impl Iterator<Item = (&'a str, &'a str)> {
    targets
        .iter()
        .filter(|t| done.iter().any(|d| d == t.name))
        .map(|t| (t.name, t.uid))
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Wait => "Wait",
        Action::Apply { .. } => "Apply",
        Action::RecreateOrphan { .. } => "RecreateOrphan",
        Action::SetPartition(_) => "SetPartition",
        Action::Evict { .. } => "Evict",
        Action::DeletePods { .. } => "DeletePods",
        Action::PatchCurrentRevision { .. } => "PatchCurrentRevision",
        Action::InPlace { .. } => "InPlace",
    }
}

fn publish_events(ctx: &Context, rollout: &StatefulsetRollout, events: &[PlannedEvent]) {
    if events.is_empty() {
        return;
    }
    let reference = rollout.object_ref(&());
    for ev in events {
        let event = Event {
            type_: match ev.type_ {
                sroll_planner::EventType::Normal => EventType::Normal,
                sroll_planner::EventType::Warning => EventType::Warning,
            },
            reason: ev.reason.clone(),
            note: Some(truncate(&ev.note, 1024)),
            action: ev.action.clone(),
            secondary: None,
        };
        ctx.handles.events.publish(event, reference.clone());
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary (events.k8s.io limits `note` to 1 kB).
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The phase gauge, and on reaching `RolloutDone` or `RolloutFailed` the rollout's duration (from
/// when this process saw it start moving pods) and the pods it moved.
fn record_phase_metrics(ctx: &Context, key: &Key, rollout: &StatefulsetRollout, settled: &Settled) {
    let metrics = &ctx.handles.metrics;
    let Some(phase) = settled.status.phase.as_ref() else {
        return;
    };
    let previous = rollout.status.as_ref().and_then(|s| s.phase.as_ref());
    metrics.set_phase(
        &rollout.namespace().unwrap_or_default(),
        &rollout.name_any(),
        phase.as_str(),
    );
    match phase {
        Phase::InProgress => ctx.memo(key, |m| {
            m.started.get_or_insert_with(Instant::now);
        }),
        Phase::Done | Phase::Failed if previous != Some(phase) => {
            if let Some(t) = ctx.memo(key, |m| m.started.take()) {
                metrics.rollout_duration.observe(t.elapsed().as_secs_f64());
            }
            if *phase == Phase::Done {
                let moved = settled.status.updated_replicas.unwrap_or(0);
                metrics.pods_updated.observe(f64::from(moved.max(0)));
            }
        }
        _ => {}
    }
}

/// An invalid object waits for a change; a transient error retries with per-object exponential
/// backoff (0.5 s doubling to 5 min).
fn error_policy(rollout: Arc<StatefulsetRollout>, err: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.handles.metrics.error(err);
    let key = ObjectRef::from_obj(&*rollout);
    if !err.is_transient() {
        tracing::warn!(rollout = %key, error = %err, "reconcile failed; waiting for the rollout to change");
        return Requeue::await_change();
    }
    let n = ctx.memo(&key, |m| {
        m.failures = m.failures.saturating_add(1);
        m.failures
    });
    let delay = Duration::from_millis(500)
        .saturating_mul(1u32 << (n - 1).min(10))
        .min(Duration::from_secs(300));
    tracing::warn!(rollout = %key, error = %err, retry_in = ?delay, "reconcile failed; retrying");
    Requeue::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_event_notes_are_cut_on_a_character_boundary() {
        let s = "é".repeat(600);
        let t = truncate(&s, 1024);
        assert!(t.len() <= 1024);
        assert!(t.ends_with("..."));
        assert_eq!(truncate("short", 1024), "short");
    }

    fn status(ready: i32) -> StatefulsetRolloutStatus {
        StatefulsetRolloutStatus {
            phase: Some(Phase::InProgress),
            ready_replicas: Some(ready),
            reason: Some(format!("{ready} pods ready")),
            pods: vec![sroll_api::PodVersion {
                name: "web-0".into(),
                revision: "web-1".into(),
                ready: ready > 0,
            }]
            .into(),
            ..StatefulsetRolloutStatus::default()
        }
    }

    #[test]
    fn progress_only_changes_are_written_at_most_once_per_interval() {
        let just_now = Some(Duration::from_millis(200));
        match status_write_due(false, false, &status(0), &status(1), just_now) {
            Some(Err(wait)) => {
                assert_eq!(wait, PROGRESS_WRITE_INTERVAL - Duration::from_millis(200))
            }
            other => panic!("expected a deferred write, got {other:?}"),
        }
        assert_eq!(
            status_write_due(
                false,
                false,
                &status(0),
                &status(1),
                Some(PROGRESS_WRITE_INTERVAL)
            ),
            Some(Ok(()))
        );
        assert_eq!(
            status_write_due(false, false, &status(0), &status(1), None),
            Some(Ok(())),
            "the first write of this process is never deferred"
        );
        assert_eq!(
            status_write_due(false, false, &status(1), &status(1), just_now),
            None
        );
    }

    #[test]
    fn milestones_and_actions_are_written_at_once() {
        let just_now = Some(Duration::from_millis(10));
        let mut paused = status(1);
        paused.phase = Some(Phase::Paused);
        assert_eq!(
            status_write_due(false, false, &status(1), &paused, just_now),
            Some(Ok(()))
        );
        let mut evicted = status(1);
        evicted.last_eviction_time = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now()),
        );
        assert_eq!(
            status_write_due(false, true, &status(1), &evicted, just_now),
            Some(Ok(())),
            "a paced rollout's lastEvictionTime is written at once"
        );
        assert!(
            matches!(
                status_write_due(false, false, &status(1), &evicted, just_now),
                Some(Err(_))
            ),
            "an unpaced rollout's lastEvictionTime is progress"
        );
        assert_eq!(
            status_write_due(true, false, &status(0), &status(1), just_now),
            Some(Ok(())),
            "a reconcile that acted always writes"
        );
        let mut condition = status(1);
        condition.conditions.push(Condition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: "PodsEvicted".into(),
            message: "1 pod".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::now(),
            ),
            observed_generation: None,
        });
        assert_eq!(
            status_write_due(false, false, &status(1), &condition, just_now),
            Some(Ok(()))
        );
        let mut message_only = condition.clone();
        message_only.conditions[0].message = "2 pods".into();
        assert!(
            matches!(
                status_write_due(false, false, &condition, &message_only, just_now),
                Some(Err(_))
            ),
            "a condition message is progress"
        );
    }

    #[test]
    fn an_unchanged_status_is_not_sent_even_after_an_action() {
        let mut later = status(1);
        later.last_updated = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        later.reconcile_after = later.last_updated.clone();
        assert_eq!(change(&status(1), &later, false), Change::None);
        assert_eq!(
            status_write_due(true, false, &status(1), &later, None),
            None,
            "only the clocks differ: nothing to send"
        );
    }

    fn progressing(condition: &str, reason: &str) -> StatefulsetRolloutStatus {
        let mut s = status(1);
        s.conditions.push(Condition {
            type_: "Progressing".into(),
            status: condition.into(),
            reason: reason.into(),
            message: "waiting".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
            observed_generation: Some(1),
        });
        s
    }

    #[test]
    fn a_condition_reason_within_the_same_status_is_progress() {
        // After each partition move the planner says `WaitingForStatefulSet`, then
        // `RolloutInProgress` again: both `Progressing=True`, neither worth a write of its own.
        let waiting = progressing("True", "WaitingForStatefulSet");
        let moving = progressing("True", "RolloutInProgress");
        assert_eq!(change(&moving, &waiting, false), Change::Progress);
        assert!(matches!(
            status_write_due(false, false, &moving, &waiting, Some(Duration::ZERO)),
            Some(Err(_))
        ));
        let failed = progressing("False", "ProgressDeadlineExceeded");
        assert_eq!(change(&moving, &failed, false), Change::Milestone);
        let mut next_generation = progressing("True", "RolloutInProgress");
        next_generation.conditions[0].observed_generation = Some(2);
        assert_eq!(change(&moving, &next_generation, false), Change::Milestone);
        assert_eq!(
            change(&status(1), &moving, false),
            Change::Milestone,
            "a new condition"
        );
    }

    #[test]
    fn progress_writes_of_a_big_status_are_spaced_by_its_size() {
        assert_eq!(progress_write_interval(0), PROGRESS_WRITE_INTERVAL);
        assert_eq!(progress_write_interval(200), PROGRESS_WRITE_INTERVAL);
        assert_eq!(progress_write_interval(1_000), Duration::from_secs(5));
        assert_eq!(
            progress_write_interval(100_000),
            PROGRESS_WRITE_INTERVAL_MAX
        );
        let big = |ready: bool| StatefulsetRolloutStatus {
            phase: Some(Phase::InProgress),
            pods: (0..1_000)
                .map(|i| sroll_api::PodVersion {
                    name: format!("web-{i}").into(),
                    revision: "web-1".into(),
                    ready: ready || i > 0,
                })
                .collect(),
            ..StatefulsetRolloutStatus::default()
        };
        assert_eq!(change(&big(false), &big(true), false), Change::Progress);
        assert_eq!(
            status_write_due(
                false,
                false,
                &big(false),
                &big(true),
                Some(Duration::from_secs(2))
            ),
            Some(Err(Duration::from_secs(3)))
        );
        assert_eq!(
            status_write_due(
                false,
                false,
                &big(false),
                &big(true),
                Some(Duration::from_secs(5))
            ),
            Some(Ok(()))
        );
    }

    fn rollout(
        version: u64,
        generation: i64,
        status: Option<StatefulsetRolloutStatus>,
    ) -> Arc<StatefulsetRollout> {
        let mut r: StatefulsetRollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "sroll.io/v1alpha1",
            "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"sts": {"spec": {
                "selector": {"matchLabels": {}},
                "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                "serviceName": "web"
            }}}
        }))
        .expect("valid rollout");
        r.metadata.resource_version = Some(version.to_string());
        r.metadata.generation = Some(generation);
        r.status = status;
        Arc::new(r)
    }

    #[test]
    fn the_memo_plans_from_the_cached_spec_and_the_newest_status() {
        let mut memo = RolloutMemo::default();
        // Nothing written by this process: the cached rollout as it is.
        let cached = rollout(5, 1, Some(status(0)));
        let (view, held) = memo.view(cached.clone());
        assert!(Arc::ptr_eq(&view, &cached));
        assert_eq!(held.status(), &status(0));

        // Written at version 7; the cache still shows version 6 with a newer spec.
        memo.written = Some(Written {
            resource_version: 7,
            status: Arc::new(status(1)),
        });
        let (view, held) = memo.view(rollout(6, 2, Some(status(0))));
        assert_eq!(
            view.metadata.generation,
            Some(2),
            "the spec comes from the cache"
        );
        assert_eq!(view.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(view.status.as_ref(), Some(&status(1)));
        assert_eq!(held.status(), &status(1));

        // A deferred status is planned from; the API server still holds the written one.
        memo.deferred = Some(Arc::new(status(2)));
        let (view, held) = memo.view(rollout(6, 2, Some(status(0))));
        assert_eq!(view.status.as_ref(), Some(&status(2)));
        assert_eq!(held.status(), &status(1));

        // The cache caught up: the written status is forgotten.
        memo.deferred = None;
        let caught_up = rollout(7, 2, Some(status(1)));
        let (view, _) = memo.view(caught_up.clone());
        assert!(Arc::ptr_eq(&view, &caught_up));
        assert!(memo.written.is_none());
    }
}
