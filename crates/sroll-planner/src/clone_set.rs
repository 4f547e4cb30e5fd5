//! The CloneSet's decisions, pure: given the pods of a CloneSet (each reduced to a [`PodView`]) and
//! its resolved strategy, what to do now — pods to create (and at which revision), pods to delete,
//! pods to recreate, in-place writes — and the status.
//!
//! The arithmetic is OpenKruise's `calculateDiffsWithExpectation`
//! (`pkg/controller/cloneset/sync/cloneset_sync_utils.go`), the order of a reconcile its `Scale`
//! then `Update` (`cloneset_scale.go`, `cloneset_update.go`: a reconcile that scales does not
//! update), re-derived, not copied:
//!
//! ```text
//!  pods ─▶ diffs (old/new active, unavailable, to-delete) ─▶ scale: create ≤ scaleUpLimit
//!                                                        │        delete named pods ≤ deleteReadyLimit
//!                                                        │        scale down (old revision first)
//!                                                        └▶ update (nothing scaled): ≤ updateNum pods,
//!                                                           ≤ updateMaxUnavailable unavailable,
//!                                                           in place or recreate (label the pod
//!                                                           for deletion; the scale step replaces it)
//! ```
//!
//! Simplified, and said so: the `CloneSetPartitionRollback` gate is off (raising the partition
//! does not move pods back), so `updateNum` is never negative; scale-down ranks pods on the same
//! node (Kruise's `SameNodeRanker`) without topology-spread ranks; the `inPlaceUpdate` and
//! `preNormal` lifecycle hooks are not acted on (`preDelete` is); `excludePreparingDelete` is
//! not supported.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BTreeMap, BTreeSet},
};

use k8s_openapi::jiff::Timestamp;
use kube::core::{Selector, SelectorExt};
use sroll_api::clone_set::{
    CloneSetSpec, CloneSetUpdateType, ResolvedStrategy, UpdatePriorityStrategy, UpdateScatterTerm,
};

use crate::inplace::{self, InPlaceChange, NotInPlace, Op, PodInPlace, PodWrite, Step};

/// A pod's phase as the orderings need it (upstream `ActivePods`: Pending < Unknown < Running).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum PodPhase {
    /// Pending (or no phase yet).
    #[default]
    Pending,
    /// Unknown.
    Unknown,
    /// Running.
    Running,
}

/// One pod of the CloneSet, as the decisions need it. Only active pods (not terminating, not
/// Succeeded or Failed) are given, as Kruise lists only active pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodView {
    /// Name.
    pub name: String,
    /// Uid (the in-place writes target this incarnation).
    pub uid: String,
    /// `controller-revision-hash`.
    pub revision: String,
    /// Labels (priority and scatter strategies, lifecycle hooks).
    pub labels: BTreeMap<String, String>,
    /// Bound to a node: the node's name.
    pub node: Option<String>,
    /// Phase.
    pub phase: PodPhase,
    /// `Ready=True`.
    pub ready: bool,
    /// Ready for at least `minReadySeconds` (and in lifecycle state `Normal`, and not in an
    /// in-place update): Kruise's `IsPodAvailable`.
    pub available: bool,
    /// When it last became Ready.
    pub ready_since: Option<Timestamp>,
    /// Sum of its containers' restart counts.
    pub restarts: i32,
    /// `controller.kubernetes.io/pod-deletion-cost`.
    pub deletion_cost: i32,
    /// Creation time.
    pub created: Option<Timestamp>,
    /// Labelled for deletion ([`sroll_api::clone_set::SPECIFIED_DELETE_LABEL`]).
    pub specified_delete: bool,
    /// In lifecycle state `PreparingDelete`.
    pub preparing_delete: bool,
    /// Where it stands in an in-place update.
    pub in_place: PodInPlace,
}

/// What the planner needs of a CloneSet and its pods.
#[derive(Clone, Debug, PartialEq)]
pub struct CloneSetObserved {
    /// The spec (strategy, podsToDelete, lifecycle, priority and scatter).
    pub spec: CloneSetSpec,
    /// `status.currentRevision` (the update revision on a new CloneSet).
    pub current_revision: String,
    /// The ControllerRevision of the current template.
    pub update_revision: String,
    /// Active pods.
    pub pods: Vec<PodView>,
    /// For each revision a pod runs other than the update revision: whether moving it to the update
    /// revision can be done in place. A revision missing here is treated as not in place.
    pub in_place: BTreeMap<String, Result<InPlaceChange, NotInPlace>>,
    /// The instant of the decision.
    pub now: Timestamp,
}

/// Kruise's `expectationDiffs`: the numbers one reconcile acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Diffs {
    /// Pods to create.
    pub scale_up: i32,
    /// Of those, at the current (old) revision.
    pub scale_up_old_revision: i32,
    /// Pods to delete.
    pub scale_down: i32,
    /// Of those, at an old revision.
    pub scale_down_old_revision: i32,
    /// Creations allowed now (`scaleStrategy.maxUnavailable`).
    pub scale_up_limit: i32,
    /// Ready pods that may be deleted now.
    pub delete_ready_limit: i32,
    /// Surge pods in use.
    pub use_surge: i32,
    /// Of those, at the old revision.
    pub use_surge_old_revision: i32,
    /// Pods to move to the update revision.
    pub update: i32,
    /// Pods that may be unavailable while updating.
    pub update_max_unavailable: i32,
}

/// Creates to do: `count` pods at `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    /// The revision of the new pods.
    pub revision: String,
    /// How many.
    pub count: i32,
}

/// What one reconcile does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloneSetPlan {
    /// The numbers the decision came from.
    pub diffs: Diffs,
    /// Pods to create, current revision first.
    pub create: Vec<Create>,
    /// Pods to delete now (by name), with their PVCs.
    pub delete: Vec<String>,
    /// Pods to move to lifecycle state `PreparingDelete` (a `preDelete` hook holds them).
    pub prepare_delete: Vec<String>,
    /// Pods to recreate at the update revision: labelled for deletion, which the next reconcile's
    /// scale step carries out within the budget (Kruise's specified-delete route).
    pub recreate: Vec<String>,
    /// In-place writes (new updates and continuations).
    pub in_place: Vec<PodWrite>,
    /// Names in `scaleStrategy.podsToDelete` that no longer name a pod: removed from the spec.
    pub forget_pods_to_delete: Vec<String>,
    /// The update cannot proceed (`InPlaceOnly` and a change that cannot be made in place): the
    /// message names the field.
    pub update_blocked: Option<String>,
    /// When to look again even without a watch event (a grace period or `minReadySeconds` ends).
    pub requeue_at: Option<Timestamp>,
}

impl CloneSetPlan {
    /// Nothing to write.
    pub fn is_idle(&self) -> bool {
        self.create.is_empty()
            && self.delete.is_empty()
            && self.prepare_delete.is_empty()
            && self.recreate.is_empty()
            && self.in_place.is_empty()
            && self.forget_pods_to_delete.is_empty()
    }

    /// Pods created by this plan.
    pub fn creations(&self) -> i32 {
        self.create.iter().map(|c| c.count).sum()
    }
}

/// A pod is to be deleted: labelled, or listed in `scaleStrategy.podsToDelete` (Kruise's
/// `isSpecifiedDelete`).
pub fn is_specified_delete(spec: &CloneSetSpec, pod: &PodView) -> bool {
    pod.specified_delete || spec.scale_strategy.pods_to_delete.contains(&pod.name)
}

/// Kruise's `calculateDiffsWithExpectation`, with the partition-rollback gate off.
pub fn diffs(o: &CloneSetObserved) -> Diffs {
    let ResolvedStrategy {
        replicas,
        partition,
        max_surge,
        max_unavailable,
        scale_max_unavailable,
    } = o.spec.resolved();
    let (mut new_total, mut new_active, mut old_total, mut old_active) = (0, 0, 0, 0);
    let (mut new_unavailable, mut old_unavailable) = (0, 0);
    let (mut new_to_delete, mut old_to_delete) = (0, 0);
    let mut pre_deleting = 0;
    for p in &o.pods {
        let new = p.revision == o.update_revision;
        if new {
            new_total += 1;
        } else {
            old_total += 1;
        }
        if p.preparing_delete {
            pre_deleting += 1;
            continue;
        }
        let (active, to_delete, unavailable) = if new {
            (&mut new_active, &mut new_to_delete, &mut new_unavailable)
        } else {
            (&mut old_active, &mut old_to_delete, &mut old_unavailable)
        };
        *active += 1;
        if is_specified_delete(&o.spec, p) {
            *to_delete += 1;
        } else if !p.available {
            *unavailable += 1;
        }
    }
    let _ = new_total;
    // Without partition rollback, old pods above the partition move forward and none move back.
    let old_diff = (old_active - partition).max(0);
    let new_diff = (new_active - (replicas - partition)).min(0);
    let total_unavailable = pre_deleting + new_unavailable + old_unavailable;

    let mut d = Diffs::default();
    if max_surge > 0 {
        let to_delete = new_to_delete + old_to_delete;
        let (mut scale_surge, mut scale_old_surge) = (0, 0);
        if to_delete > 0 {
            scale_surge = (total_unavailable + to_delete - max_unavailable)
                .max(0)
                .min(to_delete);
            if scale_surge > new_to_delete {
                scale_old_surge = scale_surge - new_to_delete;
            }
        }
        // Surge only while the update still has pods to move: the diffs have opposite signs
        // (Kruise #266: surge is released once the partition is met).
        let (mut update_surge, mut update_old_surge) = (0, 0);
        if old_diff > 0 && new_diff < 0 {
            if old_diff <= -new_diff {
                update_surge = old_diff;
            } else {
                update_surge = -new_diff;
            }
        } else if old_diff < 0 && new_diff > 0 {
            // Only with partition rollback (not reached with the clamps above).
            update_surge = old_diff.abs().min(new_diff);
            update_old_surge = update_surge;
        }
        if scale_surge >= update_surge {
            d.use_surge = max_surge.min(scale_surge);
            d.use_surge_old_revision = d.use_surge.min(scale_old_surge);
        } else {
            d.use_surge = max_surge.min(update_surge);
            d.use_surge_old_revision = d.use_surge.min(update_old_surge);
        }
    }

    let total = o.pods.len() as i32;
    let expected_total = replicas + d.use_surge;
    let expected_old = partition + d.use_surge_old_revision;
    if expected_total > total {
        d.scale_up = expected_total - total;
        d.scale_up_old_revision = (expected_old - old_total).max(0);
        d.scale_up_limit = d
            .scale_up
            .min((scale_max_unavailable.saturating_sub(total_unavailable)).max(0));
    }
    let down = total - old_to_delete - new_to_delete - expected_total;
    if down > 0 {
        d.scale_down = down;
        d.scale_down_old_revision = (old_total - old_to_delete - expected_old).max(0);
    }
    if new_to_delete > 0 || old_to_delete > 0 || d.scale_down > 0 {
        d.delete_ready_limit = (max_unavailable + (total - replicas) - total_unavailable).max(0);
    }
    d.update = if old_diff <= -new_diff {
        old_diff
    } else {
        -new_diff
    };
    if d.update != 0 {
        d.update_max_unavailable = max_unavailable + total - replicas;
    }
    d
}

/// A pod matches a lifecycle hook while it carries every label the hook lists (Kruise's
/// `IsPodHooked`, labels only: finalizers are not seen by [`PodView`]).
fn hooked(hook: Option<&sroll_api::clone_set::LifecycleHook>, pod: &PodView) -> bool {
    hook.is_some_and(|h| {
        !h.labels_handler.is_empty()
            && h.labels_handler
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v))
    })
}

/// Upstream `controller.ActivePods` order (the update order's base): unscheduled < scheduled,
/// Pending < Unknown < Running, not ready < ready, then (Kruise's `ActivePodsWithRanks` for
/// deletion) lower deletion cost, more pods on the same node, shorter Ready, more restarts, newer.
fn delete_order(a: &PodView, b: &PodView, same_node: &BTreeMap<&str, usize>) -> Ordering {
    let rank = |p: &PodView| {
        p.node
            .as_deref()
            .and_then(|n| same_node.get(n))
            .copied()
            .unwrap_or(0)
    };
    a.node
        .is_some()
        .cmp(&b.node.is_some())
        .then(a.phase.cmp(&b.phase))
        .then(a.available.cmp(&b.available))
        .then(a.deletion_cost.cmp(&b.deletion_cost))
        .then(rank(b).cmp(&rank(a)))
        .then(Reverse(a.ready_since).cmp(&Reverse(b.ready_since)))
        .then(b.restarts.cmp(&a.restarts))
        .then(Reverse(a.created).cmp(&Reverse(b.created)))
        .then(a.name.cmp(&b.name))
}

/// Scale-down victims: `old` of the old-revision pods, the rest of the new-revision pods, each
/// group in [`delete_order`] (Kruise's `choosePodsToDelete`).
fn choose_to_delete<'a>(
    o: &'a CloneSetObserved,
    total: i32,
    old: i32,
    candidates: &[&'a PodView],
) -> Vec<&'a PodView> {
    let mut same_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in candidates {
        if let Some(n) = p.node.as_deref() {
            *same_node.entry(n).or_default() += 1;
        }
    }
    let pick = |mut pods: Vec<&'a PodView>, n: i32| {
        pods.sort_by(|a, b| delete_order(a, b, &same_node));
        pods.truncate(n.max(0) as usize);
        pods
    };
    let (olds, news): (Vec<&PodView>, Vec<&PodView>) = candidates
        .iter()
        .partition(|p| p.revision != o.update_revision);
    if old >= total {
        pick(olds, total)
    } else if old > 0 {
        let mut out = pick(olds, old);
        out.extend(pick(news, total - old));
        out
    } else {
        pick(news, total)
    }
}

/// The trailing integer of a label value (`"sts-10"` → 10), as Kruise's order priority reads it.
fn trailing_int(value: &str) -> i64 {
    let digits: String = value
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap_or(0)
}

fn priority_key(strategy: &UpdatePriorityStrategy, pod: &PodView) -> Vec<i64> {
    if !strategy.weight_priority.is_empty() {
        let weight = strategy
            .weight_priority
            .iter()
            .filter(|t| {
                Selector::try_from(t.match_selector.clone()).is_ok_and(|s| s.matches(&pod.labels))
            })
            .map(|t| i64::from(t.weight))
            .sum();
        return vec![weight];
    }
    strategy
        .order_priority
        .iter()
        .map(|t| {
            pod.labels
                .get(&t.ordered_key)
                .map_or(0, |v| trailing_int(v))
        })
        .collect()
}

/// Spreads the pods matching each scatter term evenly through `order` (Kruise's scatter sorter,
/// `pkg/util/updatesort/scatter_sort.go`, simplified: the matching pods take the evenly spaced
/// slots, the others keep their relative order in the rest).
fn scatter<'a>(order: Vec<&'a PodView>, terms: &[UpdateScatterTerm]) -> Vec<&'a PodView> {
    let mut order = order;
    for t in terms {
        let (matching, rest): (Vec<&'a PodView>, Vec<&'a PodView>) = order
            .iter()
            .partition(|p| p.labels.get(&t.key) == Some(&t.value));
        let (n, m) = (order.len(), matching.len());
        if m == 0 || m == n {
            continue;
        }
        // Slot i of m: positions spread over 0..n, first and last included when m > 1.
        let slots: BTreeSet<usize> = (0..m)
            .map(|i| if m == 1 { 0 } else { i * (n - 1) / (m - 1) })
            .collect();
        let (mut mi, mut ri) = (matching.into_iter(), rest.into_iter());
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let next = if slots.contains(&i) {
                mi.next().or_else(|| ri.next())
            } else {
                ri.next().or_else(|| mi.next())
            };
            out.extend(next);
        }
        order = out;
    }
    order
}

/// The update order of the pods waiting for the update (Kruise's `SortUpdateIndexes`): upstream's
/// `ActivePods` order, then the priority strategy (highest first, stable), then scatter.
pub fn update_order<'a>(spec: &CloneSetSpec, pods: Vec<&'a PodView>) -> Vec<&'a PodView> {
    let mut pods = pods;
    pods.sort_by(|a, b| {
        a.node
            .is_some()
            .cmp(&b.node.is_some())
            .then(a.phase.cmp(&b.phase))
            .then(a.ready.cmp(&b.ready))
            .then(a.name.cmp(&b.name))
    });
    if let Some(p) = &spec.update_strategy.priority_strategy {
        pods.sort_by_cached_key(|pod| Reverse(priority_key(p, pod)));
    }
    scatter(pods, &spec.update_strategy.scatter_strategy)
}

/// The order pods go in when the CloneSet scales down (exposed for tests and the plugin).
pub fn scale_down_order(pods: Vec<&PodView>) -> Vec<&PodView> {
    let mut same_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &pods {
        if let Some(n) = p.node.as_deref() {
            *same_node.entry(n).or_default() += 1;
        }
    }
    let mut pods = pods;
    pods.sort_by(|a, b| delete_order(a, b, &same_node));
    pods
}

/// The decision of one reconcile.
pub fn plan(o: &CloneSetObserved) -> CloneSetPlan {
    let mut out = CloneSetPlan {
        diffs: diffs(o),
        ..CloneSetPlan::default()
    };
    let names: BTreeSet<&str> = o.pods.iter().map(|p| p.name.as_str()).collect();
    out.forget_pods_to_delete = o
        .spec
        .scale_strategy
        .pods_to_delete
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .cloned()
        .collect();
    continue_in_place(o, &mut out);
    if scale(o, &mut out) {
        return out;
    }
    update(o, &mut out);
    out
}

/// Writes for pods already in an in-place update (or created with the gate and never marked):
/// Kruise's `refreshPodState`, every reconcile.
fn continue_in_place(o: &CloneSetObserved, out: &mut CloneSetPlan) {
    let grace = o.spec.grace_period_seconds();
    for p in &o.pods {
        let in_flight = p.in_place.in_progress(Some(&p.revision));
        if !in_flight && !inplace::needs_initial_mark(&p.in_place) {
            continue;
        }
        // A pod out of traffic moves on to the update revision; any other only finishes what is
        // under way at its own revision (restarting containers, the gate of a new pod).
        let target = if p.in_place.gate_ready == Some(false) {
            &o.update_revision
        } else {
            &p.revision
        };
        let step = inplace::next_step(&p.in_place, Some(&p.revision), target, grace, o.now);
        let op = match step {
            Step::PatchImages => match o.in_place.get(&p.revision) {
                Some(Ok(change)) => Op::PatchImages {
                    from: p.revision.clone(),
                    target: o.update_revision.clone(),
                    change: change.clone(),
                },
                // The change no longer qualifies (a newer template): put the pod back in
                // traffic; the update recreates it.
                _ => Op::MarkReady,
            },
            Step::MarkReady => Op::MarkReady,
            Step::WaitGrace { until } => {
                out.requeue_at = Some(out.requeue_at.map_or(until, |t| t.min(until)));
                continue;
            }
            Step::TakeOutOfTraffic | Step::WaitContainers { .. } | Step::Done => continue,
        };
        out.in_place.push(PodWrite {
            pod: p.name.clone(),
            uid: p.uid.clone(),
            op,
        });
    }
}

/// Kruise's `Scale`; `true` when it acted (then the reconcile does not update).
fn scale(o: &CloneSetObserved, out: &mut CloneSetPlan) -> bool {
    let d = out.diffs;
    let lifecycle = o.spec.lifecycle.as_ref();
    let pre_delete_hook = lifecycle.and_then(|l| l.pre_delete.as_ref());
    if d.scale_up > 0 {
        let creations = d.scale_up_limit;
        let old = d.scale_up_old_revision.min(creations);
        if old > 0 && o.current_revision != o.update_revision {
            out.create.push(Create {
                revision: o.current_revision.clone(),
                count: old,
            });
        }
        let new = if o.current_revision != o.update_revision {
            creations - old
        } else {
            creations
        };
        if new > 0 {
            out.create.push(Create {
                revision: o.update_revision.clone(),
                count: new,
            });
        }
        return creations > 0;
    }
    // Pods in PreparingDelete are deleted once their hook no longer holds them.
    let mut acted = false;
    for p in o.pods.iter().filter(|p| p.preparing_delete) {
        if !hooked(pre_delete_hook, p) {
            out.delete.push(p.name.clone());
            acted = true;
        }
    }
    if acted {
        return true;
    }
    let mut ready_budget = d.delete_ready_limit;
    let mut remove = |p: &PodView, out: &mut CloneSetPlan| -> bool {
        if p.available || p.ready {
            if ready_budget <= 0 {
                return false;
            }
            ready_budget -= 1;
        }
        if hooked(pre_delete_hook, p) {
            out.prepare_delete.push(p.name.clone());
        } else {
            out.delete.push(p.name.clone());
        }
        true
    };
    let specified: Vec<&PodView> = o
        .pods
        .iter()
        .filter(|p| !p.preparing_delete && is_specified_delete(&o.spec, p))
        .collect();
    let pre_deleting = o.pods.iter().filter(|p| p.preparing_delete).count();
    if !specified.is_empty() {
        // Not-ready pods first: they spend no budget.
        for p in scale_down_order(specified.clone()) {
            acted |= remove(p, out);
        }
        if acted {
            return true;
        }
    }
    if d.scale_down > 0 {
        if !specified.is_empty() || pre_deleting > 0 {
            // Named deletions first; scaling down waits for them (Kruise skips, too).
            return false;
        }
        let candidates: Vec<&PodView> = o.pods.iter().collect();
        for p in choose_to_delete(o, d.scale_down, d.scale_down_old_revision, &candidates) {
            acted |= remove(p, out);
        }
    }
    acted
}

/// Kruise's `Update`: moves up to `diffs.update` pods to the update revision, within
/// `updateMaxUnavailable`, in [`update_order`].
fn update(o: &CloneSetObserved, out: &mut CloneSetPlan) {
    let d = out.diffs;
    let kind = o.spec.update_type();
    if kind == CloneSetUpdateType::OnDelete || o.spec.update_strategy.paused || d.update <= 0 {
        return;
    }
    let waiting: Vec<&PodView> = o
        .pods
        .iter()
        .filter(|p| {
            p.revision != o.update_revision
                && !p.preparing_delete
                && !is_specified_delete(&o.spec, p)
                // A pod in an in-place update (out of traffic, in its grace period) is the
                // continuation's.
                && p.in_place.gate_ready != Some(false)
        })
        .collect();
    // Old pods labelled for recreation or in an in-place update are already moving: they are part
    // of `diffs.update` (still at an old revision) and count against the budget.
    let updating = o
        .pods
        .iter()
        .filter(|p| {
            p.revision != o.update_revision
                && (p.in_place.gate_ready == Some(false) || is_specified_delete(&o.spec, p))
        })
        .count() as i32;
    let mut order = update_order(&o.spec, waiting);
    order.truncate((d.update - updating).max(0) as usize);

    // Kruise's `limitUpdateIndexes`: pods at the target revision that are unavailable count
    // against the budget, and so does each available pod taken down.
    let mut unavailable = o.pods.iter().filter(|p| !p.available).count() as i32;
    let target_unavailable = o
        .pods
        .iter()
        .filter(|p| !p.available && p.revision == o.update_revision)
        .count() as i32;
    let mut chosen: Vec<&PodView> = Vec::new();
    for p in order {
        if target_unavailable + updating + chosen.len() as i32 >= d.update_max_unavailable {
            break;
        }
        if p.available {
            if unavailable >= d.update_max_unavailable {
                break;
            }
            unavailable += 1;
        }
        chosen.push(p);
    }

    for p in chosen {
        let in_place_allowed = matches!(
            kind,
            CloneSetUpdateType::InPlaceIfPossible | CloneSetUpdateType::InPlaceOnly
        );
        match (in_place_allowed, o.in_place.get(&p.revision)) {
            (true, Some(Ok(_))) if p.in_place.has_gate => out.in_place.push(PodWrite {
                pod: p.name.clone(),
                uid: p.uid.clone(),
                op: Op::TakeOutOfTraffic {
                    target: o.update_revision.clone(),
                },
            }),
            _ if kind == CloneSetUpdateType::InPlaceOnly => {
                let why = match o.in_place.get(&p.revision) {
                    Some(Err(e)) => e.to_string(),
                    Some(Ok(_)) => format!(
                        "pod {} lacks the {} readiness gate: recreate it once (delete it) to update it in place",
                        p.name,
                        inplace::READINESS_GATE
                    ),
                    None => format!("revision {} of pod {} is unknown", p.revision, p.name),
                };
                out.update_blocked = Some(format!(
                    "updateStrategy.type is InPlaceOnly and pod {} cannot be updated in place: {why}",
                    p.name
                ));
                return;
            }
            _ => out.recreate.push(p.name.clone()),
        }
    }
}

/// The status the pods give (Kruise's `calculateStatus`), without conditions and generation.
pub fn status(o: &CloneSetObserved) -> sroll_api::clone_set::CloneSetStatus {
    let r = o.spec.resolved();
    let mut s = sroll_api::clone_set::CloneSetStatus {
        update_revision: o.update_revision.clone(),
        current_revision: o.current_revision.clone(),
        expected_updated_replicas: r.replicas - r.partition,
        ..Default::default()
    };
    for p in &o.pods {
        let updated = p.revision == o.update_revision;
        s.replicas += 1;
        s.ready_replicas += i32::from(p.ready);
        s.available_replicas += i32::from(p.available);
        s.updated_replicas += i32::from(updated);
        s.updated_ready_replicas += i32::from(updated && p.ready);
        s.updated_available_replicas += i32::from(updated && p.available);
    }
    if s.updated_replicas == s.replicas && s.replicas == r.replicas {
        s.current_revision = o.update_revision.clone();
    }
    s
}

/// The template a CloneSet's pods get: the spec's, with the [`inplace::READINESS_GATE`] readiness
/// gate added (Kruise's CloneSet injects it into every pod it creates, `cloneset_core.go`), so
/// any later in-place update can take a pod out of traffic first.
pub fn pod_template(spec: &CloneSetSpec) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    let mut template = spec.template.clone();
    let pod = template.spec.get_or_insert_with(Default::default);
    let gates = pod.readiness_gates.get_or_insert_with(Vec::new);
    if !gates
        .iter()
        .any(|g| g.condition_type == inplace::READINESS_GATE)
    {
        gates.push(k8s_openapi::api::core::v1::PodReadinessGate {
            condition_type: inplace::READINESS_GATE.into(),
        });
    }
    template
}

/// The ControllerRevision data of a template: the StatefulSet controller's shape,
/// `{"spec":{"template":{…,"$patch":"replace"}}}`, which [`inplace::template_from_revision`] reads.
pub fn revision_data(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
) -> k8s_openapi::apimachinery::pkg::runtime::RawExtension {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), "replace".into());
    }
    k8s_openapi::apimachinery::pkg::runtime::RawExtension(
        serde_json::json!({"spec": {"template": t}}),
    )
}

/// The name of the ControllerRevision of `template`: `<set>-<hash>`, the hash over the template's
/// canonical JSON and the collision count (upstream `controller.ComputeHash`, with FNV-64 over
/// sorted-key JSON instead of Go's `DeepHashObject`; rendered with the vowel-free alphabet of
/// `rand.SafeEncodeString`, so it reads like a Kubernetes hash).
pub fn revision_name(
    set: &str,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    collision_count: i32,
) -> String {
    use std::hash::Hasher;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let value = serde_json::to_value(template).unwrap_or_default();
    let mut bytes = Vec::new();
    crate::desired::write_canonical(&value, &mut bytes);
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(&bytes);
    if collision_count > 0 {
        hasher.write(&collision_count.to_le_bytes());
    }
    let mut n = hasher.finish();
    let mut hash = String::new();
    for _ in 0..10 {
        hash.push(char::from(ALPHABET[(n % ALPHABET.len() as u64) as usize]));
        n /= ALPHABET.len() as u64;
    }
    format!("{set}-{hash}")
}

/// Reasons of the `Progressing` condition (Kruise v1.9's `CloneSetConditionReason`s).
pub mod progress_reasons {
    /// Every pod runs the update revision and is available.
    pub const AVAILABLE: &str = "CloneSetAvailable";
    /// `updateStrategy.paused`.
    pub const PAUSED: &str = "CloneSetProgressPaused";
    /// The pods above the partition are updated and available.
    pub const PARTITION_AVAILABLE: &str = "ProgressPartitionAvailable";
    /// No such state within `progressDeadlineSeconds`.
    pub const DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// The update is under way.
    pub const UPDATED: &str = "CloneSetUpdated";
}

/// The `Progressing` condition for `status` (already computed by [`status`]), from the previous
/// one (Kruise's `calculateProgressingStatus`, `pkg/controller/cloneset/cloneset_status.go`):
/// `None` without `progressDeadlineSeconds`. The deadline runs from when the update started
/// progressing (the condition's `lastUpdateTime` under reason `CloneSetUpdated`); time paused does
/// not count, because pausing changes the reason and resuming starts the clock again. Once
/// exceeded it stays so until the set is available, partition-available or paused. Also returns
/// when the deadline falls, to look again then.
pub fn progressing(
    spec: &CloneSetSpec,
    status: &sroll_api::clone_set::CloneSetStatus,
    previous: Option<&sroll_api::clone_set::CloneSetCondition>,
    now: Timestamp,
) -> (
    Option<sroll_api::clone_set::CloneSetCondition>,
    Option<Timestamp>,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use progress_reasons as r;
    let Some(deadline) = spec.progress_deadline_seconds else {
        return (None, None);
    };
    let replicas = spec.replicas();
    let make = |ok: bool, reason: &str, message: String| {
        let same = previous.is_some_and(|p| p.reason == reason && (p.status == "True") == ok);
        let kept = |t: Option<&Time>| t.cloned().unwrap_or(Time(now));
        sroll_api::clone_set::CloneSetCondition {
            type_: "Progressing".into(),
            status: if ok { "True" } else { "False" }.into(),
            last_update_time: Some(if same {
                kept(previous.and_then(|p| p.last_update_time.as_ref()))
            } else {
                Time(now)
            }),
            last_transition_time: Some(match previous {
                Some(p) if (p.status == "True") == ok => kept(p.last_transition_time.as_ref()),
                _ => Time(now),
            }),
            reason: reason.into(),
            message,
        }
    };
    let available = status.current_revision == status.update_revision
        && status.replicas == replicas
        && status.updated_replicas == replicas
        && status.updated_available_replicas == replicas;
    if available {
        return (
            Some(make(true, r::AVAILABLE, "CloneSet is available".into())),
            None,
        );
    }
    if spec.update_strategy.paused {
        return (
            Some(make(true, r::PAUSED, "CloneSet is paused".into())),
            None,
        );
    }
    if status.expected_updated_replicas < replicas
        && status.expected_updated_replicas <= status.updated_available_replicas
    {
        return (
            Some(make(
                true,
                r::PARTITION_AVAILABLE,
                "the pods above the partition are updated and available".into(),
            )),
            None,
        );
    }
    let exceeded_message = format!(
        "CloneSet revision {} has timed out progressing (progressDeadlineSeconds {deadline})",
        status.update_revision
    );
    if previous.is_some_and(|p| p.reason == r::DEADLINE_EXCEEDED) {
        return (
            Some(make(false, r::DEADLINE_EXCEEDED, exceeded_message)),
            None,
        );
    }
    let started = match previous {
        Some(p) if p.reason == r::UPDATED => p.last_update_time.as_ref().map_or(now, |t| t.0),
        _ => now,
    };
    let due = started
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            deadline,
        )))
        .unwrap_or(started);
    if due < now {
        return (
            Some(make(false, r::DEADLINE_EXCEEDED, exceeded_message)),
            None,
        );
    }
    (
        Some(make(true, r::UPDATED, "CloneSet is progressing".into())),
        Some(due),
    )
}
