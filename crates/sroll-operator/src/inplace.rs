//! Executes the writes of in-place updates ([`sroll_planner::inplace::PodWrite`]) on any pod,
//! whatever owns it: nothing here knows StatefulSets or rollouts.
//!
//! Every write is re-checked on the exact object it changes ([`Op::apply`] / [`Op::status_patch`]
//! return nothing for a write that no longer applies — the pod was recreated, already patched,
//! already marked — so a stale plan never updates a pod twice), and lands only on that version of
//! the pod (its resourceVersion is the write's precondition):
//!
//! - a pod's first status write (`TakeOutOfTraffic`, `MarkReady`: `pods/status`) is a strategic
//!   merge patch computed from the pod as the caller's watch cache holds it ([`SeenPod`]),
//!   carrying that `metadata.resourceVersion`: one request, no read. A 409 Conflict means the
//!   cache was behind the pod (usually a kubelet write in between): the write falls back to the
//!   read below.
//! - otherwise the write reads the pod fresh from the API server, re-checks it with [`Op::apply`]
//!   and replaces the object under its resourceVersion; a 409 is retried once on a fresh read, as
//!   OpenKruise retries its status write against a fresh GET.
//! - `PatchImages` writes the pod itself (`pods`): images, labels, annotations only, which the
//!   API server's pod update validation allows; it needs the pod's container statuses (their
//!   `imageID`s go into the state annotation), so it starts from the object the pod's previous
//!   write returned, or from a read.
//!
//! With `gracePeriodSeconds: 0` an in-place update therefore costs three requests per pod: the
//! out-of-traffic patch, the image update (from the object the patch returned) and the ready
//! patch.
//!
//! A pod's later writes in the same batch start from the object the previous write returned and
//! are skipped when it failed; different pods are written concurrently.

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use sroll_planner::inplace::{Op, PodWrite, SeenPod};

use crate::{Error, Result, error::api_code};

/// What a batch of in-place writes achieved.
#[derive(Debug, Default)]
pub struct InPlaceOutcome {
    /// Each pod written, as the API server returned it after its last write, in order.
    pub written: Vec<Pod>,
    /// Writes skipped because they no longer applied (already done, another incarnation, gone).
    pub skipped: usize,
    /// The first error that was not a conflict or a missing pod (that pod's later writes were
    /// skipped; other pods went on).
    pub error: Option<Error>,
}

/// How many pods are written at once. The planner already bounded the batch by the budget; the
/// writes of different pods are independent, so a 100-pod batch costs a few round trips, not 300.
const CONCURRENCY: usize = 16;

/// Performs `writes`: each pod's writes in order, different pods concurrently (at most
/// [`CONCURRENCY`] at once). A pod's later writes start from the object its previous write returned
/// and are skipped when one fails or no longer applies; other pods go on. `seen` gives the pod of
/// that name as the caller's watch cache holds it (`None`: not cached), for writes without a read.
pub async fn execute_seen(
    api: &Api<Pod>,
    writes: &[PodWrite],
    seen: impl Fn(&str) -> Option<SeenPod>,
) -> InPlaceOutcome {
    let mut pods: Vec<Vec<PodWrite>> = Vec::new();
    for write in writes {
        match pods.iter_mut().find(|list| list[0].pod == write.pod) {
            Some(list) => list.push(write.clone()),
            None => pods.push(vec![write.clone()]),
        }
    }
    // Owned futures, built before the first await (a closure borrowing across it would not be
    // `Send` for every lifetime the controller's executor asks of it).
    let futures: Vec<_> = pods
        .into_iter()
        .map(|list| {
            let cached = seen(&list[0].pod);
            write_pod(api.clone(), list, cached)
        })
        .collect();
    let results: Vec<(Option<Pod>, usize, Option<Error>)> = futures::stream::iter(futures)
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut out = InPlaceOutcome::default();
    for (written, skipped, error) in results {
        out.written.extend(written);
        out.skipped += skipped;
        if out.error.is_none() {
            out.error = error;
        }
    }
    out
}

/// One pod's writes, in order: the pod as last written, the writes skipped, the error that
/// stopped them. The first write goes without a read when `seen` allows it ([`patch_seen`]).
async fn write_pod(
    api: Api<Pod>,
    writes: Vec<PodWrite>,
    seen: Option<SeenPod>,
) -> (Option<Pod>, usize, Option<Error>) {
    let mut last: Option<Pod> = None;
    let total = writes.len();
    for (i, write) in writes.iter().enumerate() {
        if i == 0
            && let Some(seen) = &seen
        {
            match patch_seen(&api, write, seen).await {
                Ok(Some(pod)) => {
                    last = Some(pod);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return (last, total - 1, Some(e)),
            }
        }
        match write_one(&api, write, last.clone()).await {
            Ok(Some(pod)) => last = Some(pod),
            Ok(None) => return (last, total - i, None),
            Err(e) => return (last, total - i - 1, Some(e)),
        }
    }
    (last, 0, None)
}

/// `write` as a status patch on the pod as the cache holds it (`seen`, its resourceVersion the
/// precondition). `Ok(None)`: not done this way — not a status write, not applicable to the cached
/// pod (the cache may be behind the plan), another incarnation, or a 409 because the pod moved on
/// since — so the caller reads the pod and decides on the fresh object.
async fn patch_seen(api: &Api<Pod>, write: &PodWrite, seen: &SeenPod) -> Result<Option<Pod>> {
    if !write.uid.is_empty() && seen.uid != write.uid {
        return Ok(None);
    }
    let Some(patch) = write.op.status_patch(seen, Timestamp::now()) else {
        return Ok(None);
    };
    match api
        .patch_status(
            &write.pod,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        Ok(written) => {
            tracing::debug!(pod = %write.pod, op = write.op.name(), "in-place write (patch)");
            Ok(Some(written))
        }
        Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
            tracing::debug!(pod = %write.pod, op = write.op.name(), code = ?api_code(&e), "the cached pod is stale: reading it");
            Ok(None)
        }
        Err(source) => Err(Error::InPlaceWrite {
            pod: write.pod.clone(),
            op: write.op.name(),
            source,
        }),
    }
}

/// One write, retried once on a conflict. `Ok(None)`: it no longer applies (or the pod is gone
/// or is another incarnation).
async fn write_one(api: &Api<Pod>, write: &PodWrite, fresh: Option<Pod>) -> Result<Option<Pod>> {
    let mut current = fresh;
    for attempt in 0..2 {
        let pod = match current.take() {
            Some(p) => p,
            None => match api.get(&write.pod).await {
                Ok(p) => p,
                Err(e) if api_code(&e) == Some(404) => return Ok(None),
                Err(source) => {
                    return Err(Error::InPlaceWrite {
                        pod: write.pod.clone(),
                        op: write.op.name(),
                        source,
                    });
                }
            },
        };
        if !write.uid.is_empty() && pod.uid().as_deref() != Some(write.uid.as_str()) {
            return Ok(None);
        }
        let Some(next) = write.op.apply(&pod, Timestamp::now()) else {
            return Ok(None);
        };
        let result = match write.op {
            Op::PatchImages { .. } | Op::PatchSidecars { .. } => {
                api.replace(&write.pod, &PostParams::default(), &next).await
            }
            Op::TakeOutOfTraffic { .. } | Op::MarkReady => {
                api.replace_status(&write.pod, &PostParams::default(), &next)
                    .await
            }
        };
        match result {
            Ok(written) => {
                tracing::debug!(pod = %write.pod, op = write.op.name(), "in-place write");
                return Ok(Some(written));
            }
            Err(e) if api_code(&e) == Some(409) && attempt == 0 => {
                tracing::debug!(pod = %write.pod, op = write.op.name(), "conflict: retrying on a fresh read");
            }
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => return Ok(None),
            Err(source) => {
                return Err(Error::InPlaceWrite {
                    pod: write.pod.clone(),
                    op: write.op.name(),
                    source,
                });
            }
        }
    }
    Ok(None)
}
