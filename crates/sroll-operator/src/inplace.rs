//! Executes the writes of in-place updates ([`sroll_planner::inplace::PodWrite`]) on any pod,
//! whatever owns it: nothing here knows StatefulSets or rollouts.
//!
//! Each write reads the pod fresh from the API server (the cache may lag, and a write must be
//! computed on the object it replaces), re-checks it with [`Op::apply`] (a write that no longer
//! applies — the pod was recreated, already patched, already marked — is skipped, so a stale plan
//! never updates a pod twice) and replaces the object with the pod's resourceVersion as a
//! precondition: a 409 Conflict means someone (usually the kubelet) wrote in between, and the write
//! is retried once on a fresh read, as OpenKruise retries its status write against a fresh GET.
//!
//! - `TakeOutOfTraffic` and `MarkReady` write the status subresource (`pods/status`);
//! - `PatchImages` writes the pod itself (`pods`): images, labels, annotations only, which the
//!   API server's pod update validation allows.
//!
//! A pod's later writes in the same batch start from the object the previous write returned and
//! are skipped when it failed; different pods are written concurrently.

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{Api, ResourceExt, api::PostParams};
use sroll_planner::inplace::{Op, PodWrite};

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
/// and are skipped when one fails or no longer applies; other pods go on.
pub async fn execute(api: &Api<Pod>, writes: &[PodWrite]) -> InPlaceOutcome {
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
        .map(|list| write_pod(api.clone(), list))
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
/// stopped them.
async fn write_pod(api: Api<Pod>, writes: Vec<PodWrite>) -> (Option<Pod>, usize, Option<Error>) {
    let mut last: Option<Pod> = None;
    let total = writes.len();
    for (i, write) in writes.iter().enumerate() {
        match write_one(&api, write, last.clone()).await {
            Ok(Some(pod)) => last = Some(pod),
            Ok(None) => return (last, total - i, None),
            Err(e) => return (last, total - i - 1, Some(e)),
        }
    }
    (last, 0, None)
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
