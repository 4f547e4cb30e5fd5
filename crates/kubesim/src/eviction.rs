//! The `pods/eviction` subresource (`POST …/pods/{name}/eviction` with a
//! policy/v1 `Eviction`), following `EvictionREST.Create` in
//! `pkg/registry/core/pod/storage/eviction.go`: `canIgnorePDB`, the PDB lookup
//! (a nil or empty selector matches nothing here), the unhealthy-pod policy
//! (`unhealthyPodEvictionPolicy`), `checkAndDecrement` with conflict retries
//! (which is what lets exactly one of two concurrent evictions through a
//! budget of one: the second PDB status write conflicts, re-reads the budget
//! and finds it exhausted), `addConditionAndDeletePod` (the `DisruptionTarget`
//! condition, then the delete with the eviction's `deleteOptions`) and the
//! exact `Status` bodies of each answer.
//!
//! The storage is reached through [`EvictionBackend`], which the API layer
//! implements on top of its store; every write it performs goes through the
//! normal write path (new resourceVersion, watch events).
//!
//! Simplification: upstream retries conflicts with `EvictionsRetry` (20 steps
//! of 500 ms); here 20 steps of [`RETRY_DELAY`] — conflicts in the in-process
//! store are resolved by the next read, no need to wait half a second.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::{
        core::v1::Pod,
        policy::v1::{Eviction, PodDisruptionBudget},
    },
    apimachinery::pkg::apis::meta::v1::{
        DeleteOptions, LabelSelector, ListMeta, Preconditions, Status, StatusCause, StatusDetails,
        Time,
    },
    jiff::Timestamp,
};

use crate::controllers::{
    disruption::update_disruption_allowed_condition, is_pod_ready, phase, selector_matches,
};

/// `MaxDisruptedPodSize`.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;
/// Retry steps of `EvictionsRetry`.
pub const RETRY_STEPS: usize = 20;
/// Pause between conflict retries (see the module docs).
pub const RETRY_DELAY: Duration = Duration::from_millis(5);
/// Message of the 429 answers.
pub const TOO_MANY_REQUESTS_MESSAGE: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";
/// Message of the 500 answer for a pod covered by several budgets.
pub const MULTIPLE_PDBS_MESSAGE: &str = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";

/// A failed API call or a failed eviction: the `metav1.Status` the server
/// answers with (its `code` is the HTTP status).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("failed to evict pod: {}", .0.message.as_deref().unwrap_or_default())]
pub struct StatusError(pub Box<Status>);

impl StatusError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.0
            .code
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500)
    }

    /// Whether this is a 409 Conflict (optimistic concurrency).
    pub fn is_conflict(&self) -> bool {
        self.code() == 409 && self.0.reason.as_deref() == Some("Conflict")
    }

    /// A `Status` error with code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self(Box::new(Status {
            code: Some(i32::from(code)),
            message: Some(message.into()),
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
            status: Some("Failure".into()),
            metadata: ListMeta::default(),
            details: None,
        }))
    }

    /// 409 Conflict on a pod or PDB, as the store's precondition checks answer.
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        let mut e = Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
        );
        e.0.details = Some(StatusDetails {
            name: Some(name.to_owned()),
            kind: Some(resource.split('.').next().unwrap_or(resource).to_owned()),
            group: resource.split_once('.').map(|(_, g)| g.to_owned()),
            ..StatusDetails::default()
        });
        e
    }
}

/// The 429 with the `DisruptionBudget` cause (`NewTooManyRequests(msg, retry)`).
pub fn too_many_requests(cause: String, retry_after_seconds: i32) -> StatusError {
    let mut e = StatusError::new(429, "TooManyRequests", TOO_MANY_REQUESTS_MESSAGE);
    e.0.details = Some(StatusDetails {
        causes: Some(vec![StatusCause {
            reason: Some("DisruptionBudget".into()),
            message: Some(cause),
            field: None,
        }]),
        retry_after_seconds: (retry_after_seconds > 0).then_some(retry_after_seconds),
        ..StatusDetails::default()
    });
    e
}

/// `createTooManyRequestsError`: the budget's status is stale (retry in 10 s).
pub fn still_being_processed(pdb: &str) -> StatusError {
    too_many_requests(
        format!("The disruption budget {pdb} is still being processed by the server."),
        10,
    )
}

/// The success answer (`Status{Success}`, code 201 filled in by the create handler).
pub fn success() -> Status {
    Status {
        status: Some("Success".into()),
        code: Some(201),
        metadata: ListMeta::default(),
        ..Status::default()
    }
}

/// What the eviction handler needs from storage. Implementations must apply
/// optimistic concurrency: `update_pdb_status` with a stale
/// `metadata.resourceVersion` fails with a 409 Conflict.
pub trait EvictionBackend {
    /// GET a pod (shared: the handler only reads it).
    fn get_pod(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Arc<Pod>, StatusError>> + Send;
    /// LIST the PDBs of a namespace (shared: the handler reads them and copies the one it
    /// decrements). The backend may leave out budgets whose selector does not select `pod`
    /// ([`selects`]): the handler keeps only those.
    fn list_pdbs(
        &self,
        ns: &str,
        pod: &Pod,
    ) -> impl Future<Output = Result<Vec<Arc<PodDisruptionBudget>>, StatusError>> + Send;
    /// GET a PDB.
    fn get_pdb(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<PodDisruptionBudget, StatusError>> + Send;
    /// PUT `pdb` to `poddisruptionbudgets/status` (conflict on a stale resourceVersion).
    fn update_pdb_status(
        &self,
        pdb: PodDisruptionBudget,
    ) -> impl Future<Output = Result<(), StatusError>> + Send;
    /// Add the `DisruptionTarget` condition to the pod's status (honouring the
    /// preconditions against the latest pod) and return the updated pod's
    /// resourceVersion. `seen` is the pod as the handler read it: when it is
    /// still the latest version the backend may start from it instead of
    /// reading the pod again (a resourceVersion names one content).
    fn add_disruption_target(
        &self,
        ns: &str,
        name: &str,
        preconditions: Option<Preconditions>,
        seen: Option<Arc<Pod>>,
    ) -> impl Future<Output = Result<Option<String>, StatusError>> + Send;
    /// DELETE the pod with these options (graceful deletion, preconditions, dryRun).
    fn delete_pod(
        &self,
        ns: &str,
        name: &str,
        options: DeleteOptions,
    ) -> impl Future<Output = Result<(), StatusError>> + Send;
    /// The simulated time (for `disruptedPods` entries and conditions).
    fn now(&self) -> Timestamp;
}

/// `propagateDryRun`: the query's `dryRun` and the body's must agree.
pub fn propagate_dry_run(
    eviction: &Eviction,
    query_dry_run: &[String],
) -> Result<DeleteOptions, StatusError> {
    let mut opts = eviction.delete_options.clone().unwrap_or_default();
    let body = opts.dry_run.clone().unwrap_or_default();
    if body.is_empty() {
        opts.dry_run = (!query_dry_run.is_empty()).then(|| query_dry_run.to_vec());
        return Ok(opts);
    }
    if query_dry_run.is_empty() || query_dry_run == body.as_slice() {
        return Ok(opts);
    }
    Err(StatusError::new(
        400,
        "BadRequest",
        format!(
            "Non-matching dry-run options in request and content: {query_dry_run:?} and {body:?}"
        ),
    ))
}

/// `canIgnorePDB`: terminal, pending or terminating pods are deleted directly.
pub fn can_ignore_pdb(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending")
        || pod.metadata.deletion_timestamp.is_some()
}

fn should_enforce_resource_version(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

fn rv_unset(opts: &DeleteOptions) -> bool {
    opts.preconditions
        .as_ref()
        .and_then(|p| p.resource_version.as_ref())
        .is_none()
}

fn with_rv(opts: &DeleteOptions, rv: Option<String>) -> DeleteOptions {
    let mut o = opts.clone();
    o.preconditions
        .get_or_insert_with(Preconditions::default)
        .resource_version = rv;
    o
}

fn is_dry_run(opts: &DeleteOptions) -> bool {
    opts.dry_run
        .as_ref()
        .is_some_and(|d| d.iter().any(|x| x == "All"))
}

/// `getPodDisruptionBudgets`: budgets whose (non-empty) selector matches the pod.
pub fn matching_pdbs(
    pod: &Pod,
    pdbs: Vec<Arc<PodDisruptionBudget>>,
) -> Vec<Arc<PodDisruptionBudget>> {
    pdbs.into_iter()
        .filter(|pdb| pdb.metadata.namespace == pod.metadata.namespace)
        .filter(|pdb| selects(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()), pod))
        .collect()
}

/// Whether a budget with this `spec.selector` covers `pod` (the namespace
/// aside): a selector that is set, not empty, parses and matches its labels.
pub fn selects(selector: Option<&LabelSelector>, pod: &Pod) -> bool {
    let Some(sel) = selector else {
        return false;
    };
    let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty());
    !empty && selector_matches(sel, pod.metadata.labels.as_ref()).unwrap_or(false)
}

/// `checkAndDecrement` as a pure step: the PDB with one disruption consumed
/// and the pod recorded in `disruptedPods`, or the refusal.
pub fn check_and_decrement(
    mut pdb: PodDisruptionBudget,
    pod_name: &str,
    dry_run: bool,
    now: Timestamp,
) -> Result<PodDisruptionBudget, StatusError> {
    let name = pdb.metadata.name.clone().unwrap_or_default();
    let generation = pdb.metadata.generation.unwrap_or(0);
    let status = pdb.status.get_or_insert_with(Default::default);
    if status.observed_generation.unwrap_or(0) < generation {
        return Err(still_being_processed(&name));
    }
    if status.disruptions_allowed < 0 {
        return Err(forbidden(&name, "pdb disruptions allowed is negative"));
    }
    if status.disrupted_pods.as_ref().map_or(0, |m| m.len()) > MAX_DISRUPTED_POD_SIZE {
        return Err(forbidden(
            &name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if status.disruptions_allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status.desired_healthy, status.current_healthy
            ),
            0,
        ));
    }
    status.disruptions_allowed -= 1;
    if status.disruptions_allowed == 0 {
        update_disruption_allowed_condition(status, now);
    }
    if !dry_run {
        status
            .disrupted_pods
            .get_or_insert_with(Default::default)
            .insert(pod_name.to_owned(), Time(now));
    }
    Ok(pdb)
}

fn forbidden(pdb: &str, why: &str) -> StatusError {
    let mut e = StatusError::new(
        403,
        "Forbidden",
        format!("poddisruptionbudget.policy \"{pdb}\" is forbidden: {why}"),
    );
    e.0.details = Some(StatusDetails {
        name: Some(pdb.to_owned()),
        group: Some("policy".into()),
        kind: Some("poddisruptionbudget".into()),
        ..StatusDetails::default()
    });
    e
}

async fn retry_on<T, F, Fut>(
    should_retry: impl Fn(&StatusError) -> bool,
    mut f: F,
) -> Result<T, StatusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StatusError>>,
{
    let mut last = None;
    for _ in 0..RETRY_STEPS {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if should_retry(&e) => {
                last = Some(e);
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| StatusError::new(500, "InternalError", "retries exhausted")))
}

/// `EvictionREST.Create`: evicts `name` in `ns`. `query_dry_run` is the
/// `dryRun` query parameter. On success returns the 201 `Status`.
pub async fn evict<B: EvictionBackend + Sync>(
    backend: &B,
    ns: &str,
    name: &str,
    eviction: &Eviction,
    query_dry_run: &[String],
) -> Result<Status, StatusError> {
    if eviction.metadata.name.as_deref() != Some(name) {
        return Err(StatusError::new(
            400,
            "BadRequest",
            "name in URL does not match name in Eviction object",
        ));
    }
    let original = propagate_dry_run(eviction, query_dry_run)?;
    let caller_rv = !rv_unset(&original);

    // Phase 1: pods that need no PDB check are deleted directly.
    let mut deleted = false;
    let pod = retry_on(
        |e| !caller_rv && e.is_conflict(),
        || async {
            let pod = backend.get_pod(ns, name).await?;
            if !can_ignore_pdb(&pod) {
                return Ok(pod);
            }
            let mut opts = original.clone();
            if should_enforce_resource_version(&pod) && rv_unset(&original) {
                opts = with_rv(&original, pod.metadata.resource_version.clone());
            }
            backend.delete_pod(ns, name, opts).await?;
            Ok(pod)
        },
    )
    .await?;
    if can_ignore_pdb(&pod) {
        deleted = true;
    }
    if deleted {
        return Ok(success());
    }

    // Phase 2: the budget.
    let pdbs = matching_pdbs(&pod, backend.list_pdbs(ns, &pod).await?);
    if pdbs.len() > 1 {
        return Err(StatusError::new(500, "", MULTIPLE_PDBS_MESSAGE));
    }
    let mut update_deletion_options = false;
    let mut pdb_name = String::new();
    if let Some(first) = pdbs.into_iter().next() {
        pdb_name = first.metadata.name.clone().unwrap_or_default();
        let mut skip_decrement = false;
        if !is_pod_ready(&pod) {
            let policy = first
                .spec
                .as_ref()
                .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
            let (healthy, desired) = first
                .status
                .as_ref()
                .map_or((0, 0), |st| (st.current_healthy, st.desired_healthy));
            if policy == Some("AlwaysAllow") || (healthy >= desired && desired > 0) {
                update_deletion_options = true;
                skip_decrement = true;
            }
        }
        if !skip_decrement {
            let dry = is_dry_run(&original);
            let mut current = Some(Arc::unwrap_or_clone(first));
            retry_on(StatusError::is_conflict, || {
                let cached = current.take();
                let pdb_name = pdb_name.clone();
                async move {
                    let pdb = match cached {
                        Some(p) => p,
                        None => backend.get_pdb(ns, &pdb_name).await?,
                    };
                    let updated = check_and_decrement(pdb, name, dry, backend.now())?;
                    if !dry {
                        backend.update_pdb_status(updated).await?;
                    }
                    Ok(())
                }
            })
            .await?;
        }
    }

    // Phase 3: mark and delete.
    let opts = if update_deletion_options {
        with_rv(&original, pod.metadata.resource_version.clone())
    } else {
        original.clone()
    };
    match add_condition_and_delete(backend, ns, name, opts, pod).await {
        Ok(()) => Ok(success()),
        Err(e) if e.is_conflict() && update_deletion_options && !caller_rv => {
            Err(still_being_processed(&pdb_name))
        }
        Err(e) => Err(e),
    }
}

/// `addConditionAndDeletePod`.
async fn add_condition_and_delete<B: EvictionBackend + Sync>(
    backend: &B,
    ns: &str,
    name: &str,
    mut opts: DeleteOptions,
    seen: Arc<Pod>,
) -> Result<(), StatusError> {
    if !is_dry_run(&opts) {
        let rv = backend
            .add_disruption_target(ns, name, opts.preconditions.clone(), Some(seen))
            .await?;
        if !rv_unset(&opts) {
            opts = with_rv(&opts, rv);
        }
    }
    backend.delete_pod(ns, name, opts).await
}
