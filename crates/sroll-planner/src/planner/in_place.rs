//! In-place updates in the rollout (`spec.podUpdatePolicy: InPlaceIfPossible | InPlaceOnly`), on
//! top of the workload-agnostic steps of [`crate::inplace`].
//!
//! **Choosing in place.** For each old pod the rollout picks (highest ordinal first, as for
//! evictions), the operator's [`crate::InPlaceObserved`] says whether its revision → the update
//! revision qualifies. A batch is all in place or all recreate: the leading candidates that
//! qualify go in place; a candidate that does not is recreated (`InPlaceIfPossible`) or blocks the
//! rollout with `SpecValid=False`, reason `InPlaceUpdateImpossible`, naming the template field
//! (`InPlaceOnly`). A revision whose ControllerRevision the operator has not seen yet holds the
//! rollout (it re-checks soon).
//!
//! **Budget.** An in-place update makes no Eviction API call, so sroll enforces the budget itself:
//! a pod out of traffic (its `InPlaceUpdateReady` condition `False`) or restarting containers is
//! unavailable, exactly like an evicted pod: it is in flight against `spec.maxUnavailable`, it is
//! not Ready so the PDB's allowance (computed from the pods, see `pdb_allowance`) excludes it, and
//! pacing (`minPodEvictionIntervalSeconds`) starts at the moment it is taken out of traffic.
//!
//! **Partition.** The StatefulSet controller deletes every pod at or above the partition whose
//! `controller-revision-hash` is not the update revision. A pod keeps its old revision label until
//! its images are patched (the patch sets the label to the update revision), so an in-place batch
//! never moves the partition past its pods: they are treated like unchosen old pods
//! (`aligned_partition` keeps the partition above them) until the patch, after which the partition
//! follows them down (with the next in-place writes, or on its own). A pod that dies mid-update is
//! recreated by the StatefulSet controller at the revision its ordinal's side of the partition
//! dictates (the current revision below it), never at an unapproved one: no leak. While an in-place
//! pod still carries its old label, no pod below it is evicted (the partition could not cover the
//! evicted pod without exposing the in-place one).
//!
//! **Continuations.** Every reconcile, whatever else it decides, also finishes what is under way on
//! each pod: a pod whose grace period ended is patched, a pod whose changed containers run the new
//! image and are ready is marked `InPlaceUpdateReady=True`, a pod created from a template with the
//! gate gets the condition (otherwise it would never be Ready), and a pod taken out of traffic for
//! a change that no longer applies (a rollback during the grace period, a lower `percent`, a failed
//! or finished rollout) is put back. These are not
//! new disruptions, so they also run while paused; the partition is never moved while paused.
//!
//! **The first rollout with the gate.** [`crate::desired_statefulset`] adds the readiness gate to
//! the template when the policy allows in place; adding it is a template change, which cannot be
//! made in place (a pod's readiness gates are immutable), so that first rollout recreates the pods
//! (also under `InPlaceOnly`: [`crate::inplace::NotInPlace::introduces_gate`]), and every later
//! image-only rollout goes in place.
//!
//! `OnDelete` sets use the same batches without a partition.

use std::{collections::BTreeSet, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use sroll_api::{Phase, PodUpdatePolicy};

use super::{Outcome, Planner, REQUEUE_SOON, RolloutCtx, State, name_list, names, plural, to_std};
use crate::{
    Action, EventType, ObservedPod, PartitionMove,
    inplace::{self, InPlaceChange, NotInPlace, Op, PodWrite, Step},
    reasons as r,
};

/// How one old pod moves to the update revision.
enum Route {
    InPlace(InPlaceChange),
    Recreate,
    Impossible(NotInPlace),
    /// The ControllerRevision of this revision is not observed yet.
    Unknown(String),
}

impl<'a> Planner<'a> {
    /// The policy allows in-place updates.
    pub(super) fn in_place_mode(&self) -> bool {
        self.spec().in_place_allowed()
    }

    /// A pod at a revision other than the update one that the rollout took out of traffic for an
    /// in-place update (its gate condition is `False`), waiting for its images to be patched.
    pub(super) fn out_for_in_place(&self, pod: &ObservedPod) -> bool {
        self.in_place_mode() && pod.in_place.has_gate && pod.in_place.gate_ready == Some(false)
    }

    fn route(&self, pod: &ObservedPod) -> Route {
        let Some(revision) = pod.revision.as_deref() else {
            return Route::Recreate;
        };
        match self.obs.in_place.changes.get(revision) {
            // Without the gate the pod cannot be taken out of traffic first.
            Some(Ok(change)) if pod.in_place.has_gate => Route::InPlace(change.clone()),
            Some(Ok(_)) => Route::Recreate,
            Some(Err(e))
                if self.spec().pod_update_policy() == PodUpdatePolicy::InPlaceOnly
                    && !e.introduces_gate =>
            {
                Route::Impossible(e.clone())
            }
            Some(Err(_)) => Route::Recreate,
            None => Route::Unknown(revision.to_owned()),
        }
    }

    /// The batch for `candidates` (old pods, highest ordinal first; `size` ≥ 1 of them fit the
    /// budget) when it goes in place, must wait or is blocked; `None` when it is recreated through
    /// evictions. `partition` is the move that realigns the partition now (`Partitioned` only).
    pub(super) fn in_place_batch(
        &mut self,
        c: &RolloutCtx<'_>,
        candidates: &[usize],
        size: usize,
        partition: Option<PartitionMove>,
        progress: &str,
    ) -> Option<Outcome> {
        if !self.in_place_mode() {
            return None;
        }
        let first = c.slots.pod(*candidates.first()?)?;
        match self.route(first) {
            Route::Impossible(e) => {
                let message = format!(
                    "spec.podUpdatePolicy is InPlaceOnly but revision {} cannot be reached in place from {}: {e}; change only images and template labels/annotations, or set spec.podUpdatePolicy: InPlaceIfPossible",
                    c.update,
                    first.revision.as_deref().unwrap_or_default()
                );
                return Some(self.spec_invalid(r::IN_PLACE_UPDATE_IMPOSSIBLE, message));
            }
            Route::Unknown(revision) => {
                return Some(Outcome::wait(
                    Phase::InProgress,
                    format!(
                        "waiting to observe ControllerRevision {revision} (whether its pods can be updated in place); {progress}"
                    ),
                    Some(REQUEUE_SOON),
                ));
            }
            Route::Recreate => {
                let waiting: Vec<usize> = c
                    .slots
                    .special()
                    .iter()
                    .filter(|s| s.state == State::InPlace)
                    .map(|s| s.i)
                    .collect();
                if waiting.is_empty() {
                    return None;
                }
                let names = names(c, &waiting);
                return Some(Outcome::wait(
                    Phase::InProgress,
                    format!(
                        "waiting for the in-place update of {} before recreating pods; {progress}",
                        name_list(&names)
                    ),
                    Some(REQUEUE_SOON),
                ));
            }
            Route::InPlace(_) => {}
        }
        let mut batch = Vec::new();
        for &i in candidates.iter().take(size) {
            let Some(pod) = c.slots.pod(i) else { break };
            match self.route(pod) {
                Route::InPlace(change) => batch.push((pod, change)),
                _ => break,
            }
        }
        let grace = self.spec().in_place_grace_period_seconds();
        let mut writes = Vec::new();
        for (pod, change) in &batch {
            writes.push(PodWrite {
                pod: pod.name.to_string(),
                uid: pod.uid.to_string(),
                op: Op::TakeOutOfTraffic {
                    target: c.update.clone(),
                },
            });
            if grace == 0 {
                writes.push(PodWrite {
                    pod: pod.name.to_string(),
                    uid: pod.uid.to_string(),
                    op: Op::PatchImages {
                        from: pod.revision.as_deref().unwrap_or_default().to_owned(),
                        target: c.update.clone(),
                        change: change.clone(),
                    },
                });
            }
        }
        let names: Vec<String> = batch.iter().map(|(p, _)| p.name.to_string()).collect();
        self.status.last_eviction_time = Some(MicroTime(self.now));
        self.event(
            EventType::Normal,
            r::PODS_UPDATING_IN_PLACE,
            format!(
                "updating {} pod{} in place to revision {}{}: {}",
                names.len(),
                plural(names.len()),
                c.update,
                if grace > 0 {
                    format!(" (out of traffic {grace}s before the images change)")
                } else {
                    String::new()
                },
                name_list(&names)
            ),
            "UpdateInPlace",
        );
        Some(Outcome {
            phase: Phase::InProgress,
            reason: format!(
                "updating {} pod{} in place ({}); {progress}",
                names.len(),
                plural(names.len()),
                name_list(&names)
            ),
            action: Action::InPlace { partition, writes },
            requeue: Some(REQUEUE_SOON),
        })
    }

    /// Adds to `o` the writes that finish in-place updates under way (see the module doc) and
    /// records `status.inPlaceUpdating`.
    pub(super) fn with_in_place(&mut self, mut o: Outcome) -> Outcome {
        let update = self
            .obs
            .statefulset
            .as_ref()
            .and_then(|l| l.update_revision.clone());
        let grace = self.spec().in_place_grace_period_seconds();
        let planned: BTreeSet<String> = match &o.action {
            Action::InPlace { writes, .. } => writes.iter().map(|w| w.pod.clone()).collect(),
            _ => BTreeSet::new(),
        };
        // Only pods an in-place step is pending on (`index::in_place_active`) and the ones this
        // plan takes out of traffic can need a write; every other pod falls through the match.
        let mut ordinals: BTreeSet<i32> = self.obs.pods.counts().in_place.clone();
        ordinals.extend(
            planned
                .iter()
                .filter_map(|n| crate::index::set_of(n).map(|(_, o)| o)),
        );
        self.visits += ordinals.len() as u64;
        let pods: Vec<&ObservedPod> = ordinals
            .iter()
            .rev()
            .filter_map(|&o| self.obs.pods.get(o))
            .filter(|p| !p.terminating)
            .collect();
        let mut writes = Vec::new();
        let mut updating = Vec::new();
        let mut wake: Option<Duration> = None;
        // A pod out of traffic is patched only while the rollout is live and still wants it (it is
        // in the target range); otherwise its pending change is dropped (back into traffic).
        let terminal = o.phase.is_terminal();
        let first_target = self
            .obs
            .statefulset
            .as_ref()
            .zip(self.target)
            .map(|(live, target)| {
                i64::from(live.ordinals_start) + i64::from(live.replicas.max(0) - target.max(0))
            });
        let wanted = |pod: &ObservedPod| {
            !terminal && first_target.is_some_and(|first| i64::from(pod.ordinal) >= first)
        };
        // No target this reconcile: the planner returned before computing it because it waits
        // (for the StatefulSet controller to observe the partition just written, or for a spec
        // change to be applied). That is no decision to drop a pending change: a pod out of
        // traffic stays as it is, neither patched nor put back, until a plan knows the target.
        // Putting it back here made it an old pod that is not Ready (the kubelet recomputes
        // `Ready` after the gate turns `True`), which the next plan replaced as broken.
        let undecided = !terminal && self.target.is_none() && o.phase != Phase::Blocked;
        for pod in pods {
            if planned.contains(&*pod.name) {
                updating.push(pod.name.to_string());
                continue;
            }
            let view = &pod.in_place;
            let revision = pod.revision.as_deref();
            let mark = || PodWrite {
                pod: pod.name.to_string(),
                uid: pod.uid.to_string(),
                op: Op::MarkReady,
            };
            match update.as_deref() {
                Some(update)
                    if revision != Some(update) && self.out_for_in_place(pod) && undecided =>
                {
                    updating.push(pod.name.to_string());
                }
                Some(update)
                    if revision != Some(update) && self.out_for_in_place(pod) && !wanted(pod) =>
                {
                    writes.push(mark());
                }
                Some(update) if revision != Some(update) && self.out_for_in_place(pod) => {
                    updating.push(pod.name.to_string());
                    match inplace::next_step(view, revision, update, grace, self.now) {
                        Step::WaitGrace { until } => {
                            let left = to_std(until.duration_since(self.now));
                            wake = Some(wake.map_or(left, |w| w.min(left)));
                        }
                        Step::PatchImages => writes.push(match self.route(pod) {
                            Route::InPlace(change) => PodWrite {
                                pod: pod.name.to_string(),
                                uid: pod.uid.to_string(),
                                op: Op::PatchImages {
                                    from: revision.unwrap_or_default().to_owned(),
                                    target: update.to_owned(),
                                    change,
                                },
                            },
                            // The change can no longer be made in place: back into traffic; the
                            // rollout recreates the pod (or reports why it cannot).
                            _ => mark(),
                        }),
                        _ => {}
                    }
                }
                Some(update) if revision == Some(update) => {
                    match inplace::next_step(view, revision, update, grace, self.now) {
                        Step::WaitContainers { .. } => updating.push(pod.name.to_string()),
                        Step::MarkReady => {
                            if view.state_revision.as_deref() == Some(update) {
                                updating.push(pod.name.to_string());
                            }
                            writes.push(mark());
                        }
                        _ => {}
                    }
                }
                // Any other pod: created with the gate and no condition yet, or taken out of
                // traffic under a policy that no longer updates in place: back into traffic.
                _ if view.has_gate
                    && view.gate_ready != Some(true)
                    && view.containers_pending.is_empty() =>
                {
                    writes.push(mark());
                }
                _ => {}
            }
        }
        self.status.in_place_updating = updating;
        if let Some(w) = wake {
            o.requeue = Some(o.requeue.map_or(w, |r| r.min(w)));
        }
        if writes.is_empty() {
            return o;
        }
        o.action = match std::mem::replace(&mut o.action, Action::Wait) {
            Action::Wait => Action::InPlace {
                partition: None,
                writes,
            },
            Action::SetPartition(m) => Action::InPlace {
                partition: Some(m),
                writes,
            },
            Action::InPlace {
                partition,
                writes: mut first,
            } => {
                first.extend(writes);
                Action::InPlace {
                    partition,
                    writes: first,
                }
            }
            // Evictions, deletions and applies go first; the continuations follow next time.
            other => other,
        };
        o.requeue = Some(o.requeue.map_or(REQUEUE_SOON, |r| r.min(REQUEUE_SOON)));
        o
    }
}
