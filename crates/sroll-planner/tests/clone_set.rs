//! The CloneSet planner, table-tested step by step against OpenKruise's worked examples and run
//! through a small pure simulator whose invariants are checked at every step.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec},
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
    jiff::Timestamp,
};
use proptest::prelude::*;
use sroll_api::clone_set::{
    CloneSetSpec, CloneSetUpdateType, UpdatePriorityStrategy, UpdatePriorityWeightTerm,
    UpdateScatterTerm,
};
use sroll_planner::{
    clone_set::{CloneSetObserved, CloneSetPlan, PodPhase, PodView, plan, status, update_order},
    inplace::{self, InPlaceChange, NotInPlace, Op, PodInPlace},
};

fn template(image: &str, env: Option<&str>) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                env: env.map(|v| {
                    vec![EnvVar {
                        name: "MODE".into(),
                        value: Some(v.into()),
                        value_from: None,
                    }]
                }),
                ..Container::default()
            }],
            readiness_gates: Some(vec![k8s_openapi::api::core::v1::PodReadinessGate {
                condition_type: inplace::READINESS_GATE.into(),
            }]),
            ..PodSpec::default()
        }),
    }
}

fn spec(replicas: i32) -> CloneSetSpec {
    CloneSetSpec {
        replicas: Some(replicas),
        selector: LabelSelector {
            match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
            ..LabelSelector::default()
        },
        template: template("app:1", None),
        volume_claim_templates: Vec::new(),
        scale_strategy: Default::default(),
        update_strategy: Default::default(),
        revision_history_limit: None,
        min_ready_seconds: 0,
        lifecycle: None,
        progress_deadline_seconds: None,
    }
}

fn int(i: i32) -> Option<IntOrString> {
    Some(IntOrString::Int(i))
}

fn pct(s: &str) -> Option<IntOrString> {
    Some(IntOrString::String(s.into()))
}

/// A pure world: the CloneSet's pods, moved by the plans as the operator and the kubelet would.
struct Sim {
    spec: CloneSetSpec,
    current: String,
    update: String,
    pods: Vec<PodView>,
    in_place: BTreeMap<String, Result<InPlaceChange, NotInPlace>>,
    created: usize,
    now: i64,
}

impl Sim {
    fn new(spec: CloneSetSpec) -> Self {
        let mut sim = Sim {
            spec,
            current: "v1".into(),
            update: "v1".into(),
            pods: Vec::new(),
            in_place: BTreeMap::new(),
            created: 0,
            now: 0,
        };
        sim.settle();
        sim
    }

    fn observed(&self) -> CloneSetObserved {
        CloneSetObserved {
            spec: self.spec.clone(),
            current_revision: self.current.clone(),
            update_revision: self.update.clone(),
            pods: self.pods.clone(),
            in_place: self.in_place.clone(),
            now: Timestamp::from_second(1_700_000_000 + self.now).expect("in range"),
        }
    }

    /// A new template: `v2` (in place when `in_place` is Ok).
    fn roll(&mut self, to: &str, change: Result<InPlaceChange, NotInPlace>) {
        self.current = status(&self.observed()).current_revision;
        self.in_place.clear();
        self.in_place.insert(self.current.clone(), change);
        self.update = to.into();
    }

    fn counts(&self) -> (usize, usize) {
        let new = self
            .pods
            .iter()
            .filter(|p| p.revision == self.update)
            .count();
        (self.pods.len() - new, new)
    }

    fn names(&self) -> Vec<String> {
        self.pods.iter().map(|p| p.name.clone()).collect()
    }

    /// One reconcile: plan and carry the plan out (pods created not ready).
    fn reconcile(&mut self) -> CloneSetPlan {
        self.now += 1;
        let p = plan(&self.observed());
        for c in &p.create {
            for _ in 0..c.count {
                self.created += 1;
                self.pods.push(PodView {
                    name: format!("web-{:05}", self.created),
                    uid: format!("uid-{}", self.created),
                    revision: c.revision.clone(),
                    node: Some(format!("node-{}", self.created % 3)),
                    phase: PodPhase::Pending,
                    created: Timestamp::from_second(1_700_000_000 + self.now).ok(),
                    in_place: PodInPlace {
                        has_gate: true,
                        ..PodInPlace::default()
                    },
                    ..PodView::default()
                });
            }
        }
        self.pods.retain(|x| !p.delete.contains(&x.name));
        for x in &mut self.pods {
            if p.recreate.contains(&x.name) {
                x.specified_delete = true;
            }
            if p.prepare_delete.contains(&x.name) {
                x.preparing_delete = true;
            }
        }
        let names: Vec<String> = p.delete.clone();
        self.spec
            .scale_strategy
            .pods_to_delete
            .retain(|n| !p.forget_pods_to_delete.contains(n) && !names.contains(n));
        for w in &p.in_place {
            let Some(x) = self.pods.iter_mut().find(|x| x.name == w.pod) else {
                continue;
            };
            match &w.op {
                Op::TakeOutOfTraffic { .. } => {
                    x.in_place.gate_ready = Some(false);
                    x.in_place.gate_since = Timestamp::from_second(1_700_000_000 + self.now).ok();
                    x.ready = false;
                    x.available = false;
                }
                Op::PatchImages { target, .. } => {
                    x.revision = target.clone();
                    x.in_place.state_revision = Some(target.clone());
                    x.in_place.containers_pending = vec!["app".into()];
                }
                Op::MarkReady => x.in_place.gate_ready = Some(true),
                Op::PatchSidecars { .. } => {
                    unreachable!("the CloneSet planner never upgrades sidecars")
                }
            }
        }
        p
    }

    /// The kubelet: every pod runs its containers and (gate permitting) becomes Ready.
    fn kubelet(&mut self) {
        for x in &mut self.pods {
            x.phase = PodPhase::Running;
            x.in_place.containers_pending.clear();
            if x.in_place.gate_ready != Some(false) && x.in_place.gate_ready.is_some() {
                x.ready = true;
                x.available = true;
            }
        }
    }

    /// Reconciles and runs the kubelet until nothing changes.
    fn settle(&mut self) {
        for _ in 0..200 {
            let p = self.reconcile();
            self.kubelet();
            if p.is_idle() && self.pods.iter().all(|x| x.available) {
                return;
            }
        }
        panic!("did not settle: {:?}", self.pods);
    }
}

fn image_change() -> Result<InPlaceChange, NotInPlace> {
    inplace::qualifies(&template("app:1", None), &template("app:2", None))
}

fn env_change() -> Result<InPlaceChange, NotInPlace> {
    inplace::qualifies(&template("app:1", None), &template("app:1", Some("fast")))
}

/// OpenKruise v0.5.0's maxSurge example (openkruise.md §1.9): replicas 5, maxSurge 20% (→ 1),
/// maxUnavailable 0, partition 3. A sixth pod at v2 first, then an old one recreated within 6
/// pods, then the surge released: 3 old, 2 new, 5 pods.
#[test]
fn the_v0_5_0_worked_example_surges_one_pod_then_releases_it_at_the_partition() {
    let mut s = spec(5);
    s.update_strategy.max_surge = pct("20%");
    s.update_strategy.max_unavailable = int(0);
    s.update_strategy.partition = int(3);
    let mut sim = Sim::new(s);
    sim.roll("v2", env_change());
    assert_eq!(sim.counts(), (5, 0));

    // t0: oldDiff +2, newDiff −2 → useSurge 1 → one pod at v2.
    let p = sim.reconcile();
    assert_eq!(p.diffs.use_surge, 1);
    assert_eq!(p.creations(), 1);
    assert_eq!(p.create[0].revision, "v2");
    assert!(p.delete.is_empty() && p.recreate.is_empty());
    assert_eq!(sim.counts(), (5, 1));
    // The surge pod is not Ready: with maxUnavailable 0 nothing else moves.
    let p = sim.reconcile();
    assert!(
        p.create.is_empty() && p.delete.is_empty() && p.recreate.is_empty(),
        "{p:?}"
    );
    sim.kubelet();

    // t1: updateNum 1, budget 0 + 6 − 5 = 1 → one old pod marked for recreation.
    let p = sim.reconcile();
    assert_eq!((p.diffs.update, p.diffs.update_max_unavailable), (1, 1));
    assert_eq!(p.recreate.len(), 1);
    let marked = p.recreate[0].clone();
    // It is deleted (within deleteReadyLimit 1) and replaced at v2; never more than 6 pods.
    let p = sim.reconcile();
    assert_eq!(p.delete, [marked]);
    assert_eq!(sim.pods.len(), 5);
    let p = sim.reconcile();
    assert_eq!(p.creations(), 1);
    assert_eq!(p.create[0].revision, "v2");
    assert_eq!(sim.counts(), (4, 2));
    // t2: newDiff 0: the partition is met, the surge is released — but with maxUnavailable 0 no
    // Ready pod goes before the new one is available (it gets its gate condition first).
    let p = sim.reconcile();
    assert_eq!(p.diffs.scale_down, 1);
    assert!(
        p.delete.is_empty(),
        "deleteReadyLimit 0 while a pod is unavailable"
    );
    sim.kubelet();
    let p = sim.reconcile();
    assert_eq!(p.diffs.use_surge, 0);
    assert_eq!(p.diffs.scale_down, 1);
    assert_eq!(p.diffs.scale_down_old_revision, 1);
    assert_eq!(p.delete.len(), 1);
    // t3: steady: 5 pods, updatedReplicas 2 = expectedUpdatedReplicas.
    assert_eq!(sim.counts(), (3, 2));
    let st = status(&sim.observed());
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.expected_updated_replicas
        ),
        (5, 2, 2)
    );
    assert_eq!(st.current_revision, "v1", "not every pod is updated");
    assert!(sim.reconcile().is_idle());
}

#[test]
fn max_surge_one_without_partition_rolls_every_pod_and_ends_at_five() {
    let mut s = spec(5);
    s.update_strategy.max_surge = int(1);
    s.update_strategy.max_unavailable = int(0);
    let mut sim = Sim::new(s);
    sim.roll("v2", env_change());
    let mut max = 0;
    for _ in 0..100 {
        let p = sim.reconcile();
        max = max.max(sim.pods.len());
        let available = sim.pods.iter().filter(|x| x.available).count();
        assert!(available >= 5, "maxUnavailable 0: {available} available");
        sim.kubelet();
        if p.is_idle() && sim.counts() == (0, 5) {
            break;
        }
    }
    assert_eq!(sim.counts(), (0, 5));
    assert_eq!(max, 6, "the surge pod is the only extra one");
    assert_eq!(status(&sim.observed()).current_revision, "v2");
}

#[test]
fn an_image_change_in_place_keeps_every_pod_and_its_uid() {
    let mut s = spec(4);
    s.update_strategy.type_ = Some(CloneSetUpdateType::InPlaceIfPossible);
    s.update_strategy.max_unavailable = int(2);
    let mut sim = Sim::new(s);
    let uids: Vec<String> = sim.pods.iter().map(|p| p.uid.clone()).collect();
    sim.roll("v2", image_change());
    let p = sim.reconcile();
    assert_eq!(p.in_place.len(), 2, "maxUnavailable 2");
    assert!(
        p.in_place
            .iter()
            .all(|w| matches!(w.op, Op::TakeOutOfTraffic { .. }))
    );
    assert!(p.create.is_empty() && p.delete.is_empty() && p.recreate.is_empty());
    let p = sim.reconcile();
    assert_eq!(
        p.in_place
            .iter()
            .filter(|w| matches!(w.op, Op::PatchImages { .. }))
            .count(),
        2,
        "grace 0: the images change on the next reconcile"
    );
    sim.settle();
    assert_eq!(sim.counts(), (0, 4));
    let after: Vec<String> = sim.pods.iter().map(|p| p.uid.clone()).collect();
    assert_eq!(after, uids, "no pod was recreated");
}

#[test]
fn an_env_change_recreates_under_in_place_if_possible_and_blocks_in_place_only() {
    let mut s = spec(3);
    s.update_strategy.type_ = Some(CloneSetUpdateType::InPlaceIfPossible);
    let mut sim = Sim::new(s.clone());
    sim.roll("v2", env_change());
    let p = sim.reconcile();
    assert_eq!(p.recreate.len(), 1, "maxUnavailable 20% of 3 → 1");
    assert!(p.in_place.is_empty());
    sim.settle();
    assert_eq!(sim.counts(), (0, 3));

    s.update_strategy.type_ = Some(CloneSetUpdateType::InPlaceOnly);
    let mut sim = Sim::new(s);
    sim.roll("v2", env_change());
    let p = sim.reconcile();
    let why = p.update_blocked.expect("blocked");
    assert!(why.contains("spec.containers[0].env"), "{why}");
    assert!(p.recreate.is_empty() && p.in_place.is_empty());
}

#[test]
fn pods_to_delete_are_replaced_when_replicas_stay_and_go_when_replicas_drop() {
    let mut sim = Sim::new(spec(5));
    let names = sim.names();
    sim.spec.scale_strategy.pods_to_delete = vec![names[1].clone(), "gone-pod".into()];
    let p = sim.reconcile();
    assert_eq!(p.delete, [names[1].clone()]);
    assert_eq!(p.forget_pods_to_delete, ["gone-pod"]);
    sim.settle();
    assert_eq!(sim.pods.len(), 5);
    assert!(!sim.names().contains(&names[1]));
    assert!(sim.spec.scale_strategy.pods_to_delete.is_empty());

    // Scaling 5 → 3 naming two pods: exactly those go, even though others would rank first.
    let names = sim.names();
    sim.pods[0].ready = false;
    sim.pods[0].available = false;
    sim.spec.replicas = Some(3);
    sim.spec.update_strategy.max_unavailable = int(2);
    sim.spec.scale_strategy.pods_to_delete = vec![names[3].clone(), names[4].clone()];
    let mut p = sim.reconcile();
    p.delete.sort();
    assert_eq!(p.delete, [names[3].clone(), names[4].clone()]);
    sim.settle();
    assert_eq!(sim.names(), names[..3].to_vec());
}

#[test]
fn scale_down_takes_unscheduled_then_pending_then_not_ready_pods_first() {
    let mut sim = Sim::new(spec(6));
    let names = sim.names();
    sim.pods[4].node = None;
    sim.pods[4].phase = PodPhase::Pending;
    sim.pods[4].ready = false;
    sim.pods[4].available = false;
    sim.pods[2].phase = PodPhase::Pending;
    sim.pods[2].ready = false;
    sim.pods[2].available = false;
    sim.pods[0].ready = false;
    sim.pods[0].available = false;
    sim.spec.replicas = Some(3);
    let p = sim.reconcile();
    assert_eq!(
        p.delete,
        [names[4].clone(), names[2].clone(), names[0].clone()]
    );
}

#[test]
fn paused_updates_nothing_and_uses_no_surge_but_keeps_replicas() {
    let mut s = spec(4);
    s.update_strategy.max_surge = int(2);
    s.update_strategy.paused = true;
    let mut sim = Sim::new(s);
    sim.roll("v2", env_change());
    let p = sim.reconcile();
    assert!(p.is_idle(), "{p:?}");
    sim.pods.remove(0);
    let p = sim.reconcile();
    assert_eq!(p.creations(), 1, "the replica count is kept");
    assert_eq!(p.create[0].revision, "v2");
    sim.settle();
    assert_eq!(sim.counts(), (3, 1));
    sim.spec.update_strategy.paused = false;
    sim.settle();
    assert_eq!(sim.counts(), (0, 4));
}

#[test]
fn scale_up_during_an_update_creates_old_pods_up_to_the_partition() {
    let mut s = spec(4);
    s.update_strategy.partition = int(3);
    let mut sim = Sim::new(s);
    sim.roll("v2", env_change());
    sim.settle();
    assert_eq!(sim.counts(), (3, 1));
    // Two more pods while old pods are below… at the partition: both at v2.
    sim.spec.replicas = Some(6);
    sim.settle();
    assert_eq!(sim.counts(), (3, 3));
    // Losing old pods below the partition brings them back at the current revision.
    sim.pods.retain(|p| p.revision == "v2");
    let p = sim.reconcile();
    assert_eq!(p.create.first().map(|c| c.revision.as_str()), Some("v1"));
    sim.settle();
    assert_eq!(
        sim.counts(),
        (3, 3),
        "no pod below the partition is updated"
    );
}

#[test]
fn priority_weights_then_scatter_order_the_update() {
    let mut s = spec(6);
    let pod = |name: &str, labels: &[(&str, &str)]| PodView {
        name: name.into(),
        revision: "v1".into(),
        node: Some("n".into()),
        phase: PodPhase::Running,
        ready: true,
        available: true,
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..PodView::default()
    };
    let pods = [
        pod("a", &[]),
        pod("b", &[("tier", "canary")]),
        pod("c", &[]),
        pod("d", &[("tier", "canary")]),
    ];
    s.update_strategy.priority_strategy = Some(UpdatePriorityStrategy {
        weight_priority: vec![UpdatePriorityWeightTerm {
            weight: 50,
            match_selector: LabelSelector {
                match_labels: Some([("tier".to_owned(), "canary".to_owned())].into()),
                ..LabelSelector::default()
            },
        }],
        ..UpdatePriorityStrategy::default()
    });
    let order: Vec<&str> = update_order(&s, pods.iter().collect())
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(order, ["b", "d", "a", "c"]);

    // Scatter: 3 of 10 pods with foo=bar go 1st, 5th-ish and last.
    let mut s = spec(10);
    s.update_strategy.scatter_strategy = vec![UpdateScatterTerm {
        key: "foo".into(),
        value: "bar".into(),
    }];
    let pods: Vec<PodView> = (0..10)
        .map(|i| {
            let name = format!("p{i}");
            if i < 3 {
                pod(&name, &[("foo", "bar")])
            } else {
                pod(&name, &[])
            }
        })
        .collect();
    let order: Vec<&str> = update_order(&s, pods.iter().collect())
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let at: Vec<usize> = ["p0", "p1", "p2"]
        .iter()
        .map(|n| order.iter().position(|o| o == n).expect("present"))
        .collect();
    assert_eq!(at, [0, 4, 9]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the strategy, through a whole update: never more than replicas + maxSurge pods,
    /// never fewer available than replicas − maxUnavailable (once a pod was taken down), the
    /// partition's pods stay at the old revision, and the update completes.
    #[test]
    fn an_update_keeps_the_surge_and_availability_bounds_and_the_partition(
        replicas in 1i32..9,
        surge in 0i32..4,
        unavailable in 0i32..4,
        partition in 0i32..9,
        in_place in any::<bool>(),
        flaky in proptest::collection::vec(any::<bool>(), 0..60),
    ) {
        let unavailable = if surge == 0 { unavailable.max(1) } else { unavailable };
        let partition = partition.min(replicas);
        let mut s = spec(replicas);
        s.update_strategy.max_surge = int(surge);
        s.update_strategy.max_unavailable = int(unavailable);
        s.update_strategy.partition = int(partition);
        if in_place {
            s.update_strategy.type_ = Some(CloneSetUpdateType::InPlaceIfPossible);
        }
        let r = s.resolved();
        let mut sim = Sim::new(s);
        sim.roll("v2", if in_place { image_change() } else { env_change() });
        let mut flaky = flaky.into_iter();
        for _ in 0..400 {
            let p = sim.reconcile();
            let total = sim.pods.len() as i32;
            prop_assert!(total <= r.replicas + r.max_surge, "{total} pods");
            let available = sim.pods.iter().filter(|x| x.available).count() as i32;
            prop_assert!(available >= r.replicas - r.max_unavailable, "{available} available");
            let old = sim.pods.iter().filter(|x| x.revision == "v1").count() as i32;
            prop_assert!(old >= r.partition.min(total), "{old} old pods, partition {}", r.partition);
            // The kubelet is sometimes slow (no pod becomes Ready this step).
            if flaky.next() != Some(true) {
                sim.kubelet();
            }
            if p.is_idle() && sim.pods.iter().all(|x| x.available) && sim.counts() == ((r.partition) as usize, (r.replicas - r.partition) as usize) {
                return Ok(());
            }
        }
        prop_assert!(false, "did not complete: {:?}", sim.counts());
    }
}

#[test]
fn a_pre_delete_hook_holds_a_pod_until_its_label_is_removed() {
    let mut s = spec(3);
    s.lifecycle = Some(sroll_api::clone_set::Lifecycle {
        pre_delete: Some(sroll_api::clone_set::LifecycleHook {
            labels_handler: [("example.io/block".to_owned(), "true".to_owned())].into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut sim = Sim::new(s);
    for p in &mut sim.pods {
        p.labels.insert("example.io/block".into(), "true".into());
    }
    let victim = sim.pods[2].name.clone();
    sim.spec.scale_strategy.pods_to_delete = vec![victim.clone()];
    let p = sim.reconcile();
    assert_eq!(p.prepare_delete, std::slice::from_ref(&victim));
    assert!(p.delete.is_empty());
    // Held: nothing is deleted and no replacement is created while the hook label stays.
    let p = sim.reconcile();
    assert!(p.delete.is_empty() && p.create.is_empty(), "{p:?}");
    // The hook released: the pod goes.
    if let Some(x) = sim.pods.iter_mut().find(|x| x.name == victim) {
        x.labels.remove("example.io/block");
    }
    let p = sim.reconcile();
    assert_eq!(p.delete, [victim]);
}

#[test]
fn progressing_runs_out_at_the_deadline_and_pausing_restarts_the_clock() {
    use sroll_planner::clone_set::{progress_reasons as r, progressing};
    let at = |s: i64| Timestamp::from_second(1_700_000_000 + s).expect("in range");
    let mut s = spec(4);
    let mid = sroll_api::clone_set::CloneSetStatus {
        replicas: 4,
        updated_replicas: 1,
        expected_updated_replicas: 4,
        update_revision: "v2".into(),
        current_revision: "v1".into(),
        ..Default::default()
    };
    assert_eq!(
        progressing(&s, &mid, None, at(0)),
        (None, None),
        "no deadline"
    );
    s.progress_deadline_seconds = Some(60);
    let (c, due) = progressing(&s, &mid, None, at(0));
    let c = c.expect("a condition");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", r::UPDATED));
    assert_eq!(due, Some(at(60)));
    // Still progressing at 59 s: the clock is not reset by the next reconcile.
    let (c2, _) = progressing(&s, &mid, Some(&c), at(59));
    assert_eq!(c2.as_ref().map(|c| c.reason.as_str()), Some(r::UPDATED));
    let (late, _) = progressing(&s, &mid, c2.as_ref(), at(61));
    let late = late.expect("a condition");
    assert_eq!(
        (late.status.as_str(), late.reason.as_str()),
        ("False", r::DEADLINE_EXCEEDED)
    );
    assert!(late.message.contains("v2"), "{}", late.message);
    // Exceeded stays exceeded while nothing is reached…
    let (still, _) = progressing(&s, &mid, Some(&late), at(62));
    assert_eq!(
        still.map(|c| c.reason),
        Some(r::DEADLINE_EXCEEDED.to_owned())
    );
    // …pausing excludes the paused time: resuming starts the clock again.
    s.update_strategy.paused = true;
    let (paused, _) = progressing(&s, &mid, Some(&late), at(100));
    assert_eq!(paused.as_ref().map(|c| c.reason.as_str()), Some(r::PAUSED));
    s.update_strategy.paused = false;
    let (resumed, due) = progressing(&s, &mid, paused.as_ref(), at(500));
    assert_eq!(resumed.map(|c| c.reason), Some(r::UPDATED.to_owned()));
    assert_eq!(due, Some(at(560)));
    // Done: available.
    let done = sroll_api::clone_set::CloneSetStatus {
        updated_replicas: 4,
        updated_available_replicas: 4,
        current_revision: "v2".into(),
        ..mid.clone()
    };
    let (ok, due) = progressing(&s, &done, None, at(600));
    assert_eq!(ok.map(|c| c.reason), Some(r::AVAILABLE.to_owned()));
    assert_eq!(due, None);
    // Partition reached.
    let part = sroll_api::clone_set::CloneSetStatus {
        expected_updated_replicas: 2,
        updated_replicas: 2,
        updated_available_replicas: 2,
        ..mid
    };
    let (p, _) = progressing(&s, &part, None, at(600));
    assert_eq!(p.map(|c| c.reason), Some(r::PARTITION_AVAILABLE.to_owned()));
}
