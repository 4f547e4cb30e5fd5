//! Issue 16: the planner's work follows what changed, not the size of the set. `Plan::cost`
//! counts the pods a plan visits; at 1,000 pods and a 10 % budget (100 pods), a plan made when one
//! pod changed mid-rollout must visit O(batch + in flight) pods — bounded here by 3 × the budget —
//! whatever the 1,000. `status.pods` (which lists every pod by design) is counted apart.

mod support;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sroll_planner::{Action, plan};
use support::*;

const PODS: i32 = 1000;
const BUDGET: u64 = 100;
const BOUND: u64 = 3 * BUDGET;

/// Fails unless planning `p` read at most `bound` pods.
fn assert_visits_at_most(p: &sroll_planner::Plan, bound: u64) {
    eprintln!("visited {} pods", p.cost.pods_visited);
    assert!(
        p.cost.pods_visited <= bound,
        "visited {} pods (bound {bound})",
        p.cost.pods_visited
    );
}

fn rollout() -> Rollout {
    Rollout::test()
        .replicas(PODS)
        .max_unavailable(IntOrString::String("10%".into()))
        .deadline(86_400)
        .in_progress()
}

fn evicted(p: &sroll_planner::Plan) -> Vec<String> {
    match &p.action {
        Action::Evict { pods, .. } => pods.clone(),
        other => panic!("expected evictions, got {other:?}"),
    }
}

/// Mid-rollout: 500 pods updated and Ready, 99 of the last batch still on their way (one of it,
/// web-499, just became Ready: the change this plan reacts to), 401 old pods below the partition.
#[test]
fn one_pod_ready_mid_rollout_visits_the_batch_and_the_pods_in_flight_not_the_set() {
    let r = rollout();
    let w = World::of(&r)
        .pods(0..401, OLD, Ready)
        .pods(401..500, NEW, NotReady)
        .pods(500..1000, NEW, Ready)
        .partition(401)
        .pdb(100);
    let p = plan(&w.observed());
    // 99 in flight, maxUnavailable 100: one more pod, the highest old one.
    assert_eq!(evicted(&p), ["web-400"]);
    assert_eq!(p.status.updated_replicas, Some(599));
    assert_eq!(p.status.ready_replicas, Some(901));
    assert_visits_at_most(&p, BOUND);
    assert_eq!(p.cost.status_pods, 1000, "status.pods lists every pod");
}

/// The first batch of a 1,000-pod rollout: 100 pods chosen, 100 visited (and a few more).
#[test]
fn the_first_batch_visits_about_the_batch() {
    let r = rollout();
    let w = World::of(&r).pdb(100);
    let p = plan(&w.observed());
    assert_eq!(evicted(&p).len(), 100);
    assert_eq!(evicted(&p)[0], "web-999");
    assert_visits_at_most(&p, BOUND);
}

/// Waiting with a full batch in flight, some pods missing and some terminating, `minReadySeconds`
/// holding Ready ones: every one of those is special, nothing else is read.
#[test]
fn waiting_on_a_full_batch_visits_the_pods_in_flight() {
    let r = rollout();
    let mut w = World::of(&r)
        .pods(0..400, OLD, Ready)
        .pods(400..430, NEW, Terminating)
        .missing(430..460)
        .pods(460..500, NEW, NotReady)
        .pods(500..1000, NEW, Ready)
        .set(|l| l.min_ready_seconds = 60)
        .partition(400)
        .pdb(100)
        .now(T0);
    for o in 470..500 {
        w = w.ready_since(o, T0 - 10);
    }
    for o in 470..500 {
        if let Some(p) = w.pods.get_mut(&o) {
            p.ready = true;
            p.phase = "Running".into();
        }
    }
    let p = plan(&w.observed());
    assert!(matches!(p.action, Action::Wait), "{:?}", p.action);
    // 30 terminating, 30 missing, 10 not Ready, 30 Ready for less than minReadySeconds.
    assert!(
        p.status
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("waiting for 100 pods"),
        "{:?}",
        p.status.reason
    );
    assert_visits_at_most(&p, BOUND);
}

/// A finished rollout of 1,000 pods costs next to nothing to plan again.
#[test]
fn a_done_rollout_visits_almost_nothing() {
    let r = rollout();
    let w = World::of(&r)
        .pods(0..1000, NEW, Ready)
        .partition(0)
        .pdb(100);
    let p = plan(&w.observed());
    assert!(matches!(p.action, Action::Wait), "{:?}", p.action);
    assert_visits_at_most(&p, 10);
}

/// OnDelete: the next batch is the budget's worth of the highest old pods, read without walking
/// the set.
#[test]
fn an_on_delete_batch_visits_about_the_batch() {
    let r = rollout().on_delete();
    let w = World::of(&r)
        .pods(0..500, OLD, Ready)
        .pods(500..1000, NEW, Ready)
        .pdb(100);
    let p = plan(&w.observed());
    let pods = evicted(&p);
    assert_eq!(pods.len(), 100);
    assert_eq!(pods[0], "web-499");
    assert_visits_at_most(&p, BOUND);
}
