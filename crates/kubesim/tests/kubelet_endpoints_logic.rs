//! Given/when/then scenarios for the fake kubelet, the scheduler and the
//! EndpointSlice/Endpoints computation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubesim::testing::world;

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::Service, jiff::SignedDuration};
use kubesim::{
    controllers::{ZONE_LABEL, endpointslice},
    kubelet::{self, Delay, FailureMode},
};
use serde_json::json;
use world::{World, sts, with};

fn condition(w: &World, pod: &str, t: &str) -> k8s_openapi::api::core::v1::PodCondition {
    w.pod(pod)
        .status
        .clone()
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == t)
        .unwrap()
}

fn container(w: &World, pod: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
    w.pod(pod)
        .status
        .clone()
        .unwrap()
        .container_statuses
        .unwrap()[0]
        .clone()
}

#[test]
fn a_pod_goes_pending_then_running_and_ready_after_the_start_delay() {
    let mut w = World::new();
    w.cfg.start_delay = Delay::Fixed(SignedDuration::from_secs(5));
    w.add_set(sts("web", 1, "nginx:1"));
    w.sync_set("web");
    w.kubelet_pass();
    let t0 = w.now;
    let st = w.pod("web-0").status.clone().unwrap();
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    assert!(st.pod_ip.is_some() && st.host_ip.is_some());
    assert_eq!(condition(&w, "web-0", "Ready").status, "False");
    assert_eq!(condition(&w, "web-0", "PodScheduled").status, "True");
    assert_eq!(
        container(&w, "web-0")
            .state
            .unwrap()
            .waiting
            .unwrap()
            .reason
            .as_deref(),
        Some("ContainerCreating")
    );
    w.advance(4);
    w.kubelet_pass();
    assert!(!w.ready("web-0"));
    w.advance(1);
    w.kubelet_pass();
    assert!(w.ready("web-0"));
    let ready = condition(&w, "web-0", "Ready");
    assert_eq!(
        ready
            .last_transition_time
            .unwrap()
            .0
            .duration_since(t0)
            .as_secs(),
        5
    );
    let cs = container(&w, "web-0");
    assert!(cs.container_id.unwrap().starts_with("containerd://"));
    assert!(cs.image_id.contains("sha256:"));
    assert_eq!(cs.restart_count, 0);
}

#[test]
fn an_unready_tag_runs_but_never_becomes_ready() {
    let mut w = World::new();
    w.add_set(sts("web", 1, "nginx:1.27-unready"));
    for _ in 0..30 {
        w.tick(1);
    }
    assert_eq!(kubesim::controllers::phase(w.pod("web-0")), "Running");
    assert!(!w.ready("web-0"));
    assert_eq!(
        condition(&w, "web-0", "ContainersReady").reason.as_deref(),
        Some("ContainersNotReady")
    );
    assert_eq!(
        kubelet::failure_mode("registry.io/x/nginx:1.27-unready"),
        FailureMode::Unready
    );
    assert_eq!(
        kubelet::failure_mode("localhost:5000/nginx"),
        FailureMode::Healthy
    );
}

#[test]
fn a_crashloop_tag_restarts_with_growing_back_off_and_never_becomes_ready() {
    let mut w = World::new();
    w.add_set(sts("web", 1, "app:v1-crashloop"));
    let mut restarts_at = Vec::new();
    for _ in 0..200 {
        w.tick(1);
        let rc = w
            .pods
            .get("web-0")
            .map_or(0, |_| container(&w, "web-0").restart_count);
        if rc as usize > restarts_at.len() {
            restarts_at.push(w.now);
        }
        assert!(!w.ready("web-0"));
    }
    assert!(restarts_at.len() >= 3, "restarts: {}", restarts_at.len());
    let gap1 = restarts_at[1].duration_since(restarts_at[0]).as_secs();
    let gap2 = restarts_at[2].duration_since(restarts_at[1]).as_secs();
    assert!(gap2 > gap1, "back-off grows: {gap1}s then {gap2}s");
    let cs = container(&w, "web-0");
    assert_eq!(cs.last_state.unwrap().terminated.unwrap().exit_code, 1);
    assert_eq!(kubelet::backoff(1), SignedDuration::from_secs(10));
    assert_eq!(kubelet::backoff(10), SignedDuration::from_secs(300));
}

#[test]
fn an_in_place_image_change_restarts_the_container_with_new_ids() {
    let mut w = World::new();
    w.add_set(sts("web", 1, "nginx:1"));
    w.run_until(30, |w| w.all_ready("web", 1));
    let before = container(&w, "web-0");
    let uid = w.pod("web-0").metadata.uid.clone();
    // When the running pod's image is changed in place
    w.pods
        .get_mut("web-0")
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("nginx:2".into());
    w.kubelet_pass();
    // Then it is not ready, restarting
    assert!(!w.ready("web-0"));
    assert_eq!(container(&w, "web-0").restart_count, 1);
    // And becomes ready again with a new container and image id
    w.run_until(30, |w| w.ready("web-0"));
    let after = container(&w, "web-0");
    assert_ne!(after.container_id, before.container_id);
    assert_ne!(after.image_id, before.image_id);
    assert_eq!(after.image, "nginx:2");
    assert_eq!(
        w.pod("web-0").metadata.uid,
        uid,
        "same pod, restarted in place"
    );
}

#[test]
fn graceful_termination_removes_the_pod_after_the_shutdown_delay_capped_by_grace() {
    let mut w = World::new();
    w.cfg.shutdown_delay = SignedDuration::from_secs(20);
    w.add_set(with(
        sts("web", 1, "nginx:1"),
        json!({"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 5}}}}),
    ));
    w.run_until(30, |w| w.all_ready("web", 1));
    let uid = w.pod("web-0").metadata.uid.clone();
    w.delete_pod("web-0");
    w.kubelet_pass();
    let start = w.now;
    w.run_until(30, |w| {
        w.pods.get("web-0").is_none_or(|p| p.metadata.uid != uid)
    });
    let took = w.now.duration_since(start).as_secs();
    assert!(
        (5..=6).contains(&took),
        "removed after the 5 s grace period, took {took}"
    );
}

#[test]
fn the_scheduler_spreads_a_set_across_zones_and_honours_node_selectors() {
    let mut w = World::new();
    w.nodes = kubelet::fake_nodes(6, w.now);
    w.add_set(with(
        sts("web", 6, "nginx:1"),
        json!({"spec": {"podManagementPolicy": "Parallel"}}),
    ));
    w.tick(1);
    let nodes = w.nodes.clone();
    let zone_of = |node: &str| -> String {
        nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node))
            .unwrap()
            .metadata
            .labels
            .clone()
            .unwrap()[ZONE_LABEL]
            .clone()
    };
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for p in w.pods.values() {
        *per_zone
            .entry(zone_of(
                p.spec.as_ref().unwrap().node_name.as_deref().unwrap(),
            ))
            .or_default() += 1;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
    // A nodeSelector pins pods to a zone
    w.add_set(with(
        sts("db", 2, "pg:1"),
        json!({"spec": {"podManagementPolicy": "Parallel", "template": {"spec": {"nodeSelector": {ZONE_LABEL: "zone-b"}}}}}),
    ));
    w.tick(1);
    for i in 0..2 {
        let node = w
            .pod(&format!("db-{i}"))
            .spec
            .clone()
            .unwrap()
            .node_name
            .unwrap();
        assert_eq!(zone_of(&node), "zone-b");
    }
}

#[test]
fn uniform_delays_stay_in_range_and_images_can_override_them() {
    let cfg = kubelet::KubeletConfig {
        start_delay: Delay::Uniform {
            min: SignedDuration::from_secs(1),
            max: SignedDuration::from_secs(3),
        },
        image_delays: vec![("slow/".into(), Delay::Fixed(SignedDuration::from_secs(60)))],
        ..Default::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..200 {
        let d = cfg.start_delay_for("nginx:1", &format!("uid-{i}"), 0);
        assert!(d >= SignedDuration::from_secs(1) && d <= SignedDuration::from_secs(3));
        seen.insert(d.as_millis());
    }
    assert!(seen.len() > 50, "delays vary");
    assert_eq!(
        cfg.start_delay_for("slow/db:1", "u", 0),
        SignedDuration::from_secs(60)
    );
}

fn service() -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
        "spec": {"selector": {"app": "web"}, "clusterIP": "None",
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap()
}

#[test]
fn endpoint_slice_conditions_follow_pod_readiness_and_termination() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 3, "nginx:1"),
        json!({"spec": {"podManagementPolicy": "Parallel"}}),
    ));
    w.run_until(30, |w| w.all_ready("web", 3));
    w.unready.push("web-1".into());
    w.tick(1);
    w.tick(1);
    w.delete_pod("web-2");
    let pods: Vec<_> = w.pods.values().cloned().collect();
    let slices = endpointslice::desired_slices(&service(), &pods, &w.nodes).unwrap();
    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    let labels = s.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        s.ports.clone().unwrap()[0].port,
        Some(8080),
        "named targetPort resolved"
    );
    let cond = |i: usize| s.endpoints[i].conditions.clone().unwrap();
    let by_name: Vec<(String, bool, bool, bool)> = (0..3)
        .map(|i| {
            let c = cond(i);
            (
                s.endpoints[i].target_ref.clone().unwrap().name.unwrap(),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_name,
        vec![
            ("web-0".into(), true, true, false),
            ("web-1".into(), false, false, false),
            ("web-2".into(), false, true, true),
        ]
    );
    assert_eq!(s.endpoints[0].hostname.as_deref(), Some("web-0"));
    assert!(s.endpoints[0].zone.is_some());
    // Endpoints: ready in addresses, unready in notReadyAddresses, terminating left out
    let ep = endpointslice::endpoints(&service(), &pods).unwrap();
    let subset = &ep.subsets.unwrap()[0];
    assert_eq!(subset.addresses.clone().unwrap().len(), 1);
    assert_eq!(subset.not_ready_addresses.clone().unwrap().len(), 1);
}

#[test]
fn slices_are_reconciled_in_place_and_split_at_100_endpoints() {
    let mut w = World::new();
    w.add_set(with(
        sts("web", 150, "nginx:1"),
        json!({"spec": {"podManagementPolicy": "Parallel"}}),
    ));
    w.run_until(30, |w| {
        w.pods
            .values()
            .all(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
            && w.pods.len() == 150
    });
    let pods: Vec<_> = w.pods.values().cloned().collect();
    let desired = endpointslice::desired_slices(&service(), &pods, &w.nodes).unwrap();
    assert_eq!(
        desired
            .iter()
            .map(|s| s.endpoints.len())
            .collect::<Vec<_>>(),
        vec![100, 50]
    );
    let mut existing = desired.clone();
    existing[0].metadata.name = Some("web-abcde".into());
    existing[1].metadata.name = Some("web-fghij".into());
    assert!(endpointslice::reconcile(desired.clone(), &existing).is_empty());
    let writes = endpointslice::reconcile(desired[..1].to_vec(), &existing);
    assert_eq!(
        writes,
        vec![endpointslice::SliceWrite::Delete("web-fghij".into())]
    );
}

#[test]
fn container_start_delays_count_from_the_precise_sandbox_start_not_the_whole_second_start_time() {
    let cfg = kubelet::KubeletConfig {
        start_delay: Delay::Fixed(SignedDuration::from_millis(1500)),
        ..kubelet::KubeletConfig::default()
    };
    // status.startTime went through the API: a metav1.Time, whole seconds only.
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-0", "uid": "u1"},
        "spec": {"nodeName": "node-0", "containers": [{"name": "app", "image": "nginx:1"}]},
        "status": {"phase": "Pending", "startTime": "2026-01-01T00:00:10Z"}
    }))
    .unwrap();
    let sandbox: k8s_openapi::jiff::Timestamp = "2026-01-01T00:00:10.9Z".parse().unwrap();
    let now: k8s_openapi::jiff::Timestamp = "2026-01-01T00:00:11.6Z".parse().unwrap();
    let facts = |sandbox_started| kubelet::PodFacts {
        termination_started: None,
        sandbox_started,
        exits: &[],
        pod_ip: "10.0.0.1",
        host_ip: "172.18.0.2",
        forced_unready: false,
        ready_override_since: None,
    };
    let running = |step: &kubelet::KubeletStep| match &step.action {
        kubelet::KubeletAction::UpdateStatus(st) => st
            .container_statuses
            .as_ref()
            .is_some_and(|cs| cs[0].state.as_ref().is_some_and(|s| s.running.is_some())),
        _ => false,
    };

    // 0.7 s after the sandbox started: not yet; the kubelet wakes when the 1.5 s are up.
    let step = kubelet::step(&pod, &cfg, facts(Some(sandbox)), now);
    assert!(!running(&step), "the container does not start early");
    assert_eq!(step.wake_after, Some(SignedDuration::from_millis(800)));

    // Timed from the stored whole second, it would already run (0.9 s early).
    assert!(running(&kubelet::step(&pod, &cfg, facts(None), now)));
}

// ---- the pod's own lifecycle: readiness gates, foreign Ready writes, in-place restarts, timing

/// A bound pod driven by `kubelet::step` alone, with a manual clock.
struct Kubelet {
    pod: k8s_openapi::api::core::v1::Pod,
    cfg: kubelet::KubeletConfig,
    now: k8s_openapi::jiff::Timestamp,
    started: k8s_openapi::jiff::Timestamp,
    override_since: Option<k8s_openapi::jiff::Timestamp>,
    last_wake: Option<SignedDuration>,
    /// The containers' exits, kept as the driver keeps them.
    exits: Vec<kubelet::ContainerExit>,
}

impl Kubelet {
    fn new(spec: serde_json::Value) -> Self {
        let now: k8s_openapi::jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut spec = spec;
        spec["nodeName"] = json!("kubesim-node-0");
        Self {
            pod: serde_json::from_value(json!({
                "metadata": {"name": "web-0", "namespace": "default", "uid": "u1",
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": spec,
                "status": {"phase": "Pending"}
            }))
            .unwrap(),
            cfg: kubelet::KubeletConfig::default(),
            now,
            started: now,
            override_since: None,
            last_wake: None,
            exits: Vec::new(),
        }
    }

    /// One kubelet sync; applies its status write. Returns whether it wrote.
    fn sync(&mut self) -> bool {
        let facts = kubelet::PodFacts {
            sandbox_started: Some(self.started),
            pod_ip: "10.244.0.2",
            host_ip: "172.18.0.2",
            ready_override_since: self.override_since,
            exits: &self.exits,
            ..kubelet::PodFacts::default()
        };
        let step = kubelet::step(&self.pod, &self.cfg, facts, self.now);
        self.last_wake = step.wake_after;
        for exit in step.exits {
            self.exits.retain(|e| e.container != exit.container);
            self.exits.push(exit);
        }
        match step.action {
            kubelet::KubeletAction::UpdateStatus(st) => {
                self.pod.status = Some(*st);
                true
            }
            _ => false,
        }
    }

    /// Advances the clock to the kubelet's requested wake-up and syncs.
    fn wake(&mut self) -> bool {
        let d = self.last_wake.expect("the kubelet asked to be woken");
        self.now = self.now.checked_add(d).unwrap();
        self.sync()
    }

    fn at(&self) -> i64 {
        self.now.duration_since(self.started).as_secs()
    }

    fn condition(&self, t: &str) -> Option<k8s_openapi::api::core::v1::PodCondition> {
        self.pod
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == t)
            .cloned()
    }

    fn ready(&self) -> (String, Option<String>, Option<String>) {
        let c = self.condition("Ready").unwrap();
        (c.status, c.reason, c.message)
    }

    /// A controller writes a condition through `pods/status`.
    fn set_condition(&mut self, t: &str, status: &str) {
        let conds = self
            .pod
            .status
            .as_mut()
            .unwrap()
            .conditions
            .get_or_insert_with(Vec::new);
        conds.retain(|c| c.type_ != t);
        conds.push(k8s_openapi::api::core::v1::PodCondition {
            type_: t.into(),
            status: status.into(),
            reason: Some("ByController".into()),
            ..Default::default()
        });
    }

    fn container(&self, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
        self.pod
            .status
            .clone()
            .unwrap()
            .container_statuses
            .unwrap()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap()
    }

    fn run_until_ready(&mut self) {
        self.sync();
        for _ in 0..10 {
            if self.ready().0 == "True" {
                return;
            }
            self.wake();
        }
        panic!("not ready: {:?}", self.ready());
    }
}

#[test]
fn a_readiness_gate_holds_ready_false_with_upstreams_reason_until_its_condition_is_true() {
    let mut k = Kubelet::new(json!({
        "containers": [{"name": "app", "image": "nginx:1"}],
        "readinessGates": [{"conditionType": "example.com/lb"}]
    }));
    k.sync();
    k.wake();
    assert!(k.container("app").ready, "the container runs and is ready");
    assert_eq!(k.condition("ContainersReady").unwrap().status, "True");
    assert_eq!(
        k.ready(),
        (
            "False".into(),
            Some("ReadinessGatesNotReady".into()),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
                    .into()
            )
        )
    );
    // The controller reports the gate False: the message says so.
    k.set_condition("example.com/lb", "False");
    assert!(k.sync());
    assert_eq!(
        k.ready().2.as_deref(),
        Some("the status of pod readiness gate \"example.com/lb\" is not \"True\", but False")
    );
    // True: Ready at once, and the kubelet leaves the gate condition as written.
    k.set_condition("example.com/lb", "True");
    assert!(k.sync());
    assert_eq!(k.ready(), ("True".into(), None, None));
    let gate = k.condition("example.com/lb").unwrap();
    assert_eq!(
        (gate.status.as_str(), gate.reason.as_deref()),
        ("True", Some("ByController"))
    );
    assert!(!k.sync(), "nothing more to write");
}

#[test]
fn unready_containers_take_precedence_over_gates_in_the_ready_reason() {
    let mut k = Kubelet::new(json!({
        "containers": [{"name": "app", "image": "nginx:1"}],
        "readinessGates": [{"conditionType": "example.com/lb"}]
    }));
    k.sync();
    assert_eq!(
        k.ready(),
        (
            "False".into(),
            Some("ContainersNotReady".into()),
            Some("containers with unready status: [app]".into())
        )
    );
}

#[test]
fn a_ready_false_written_by_a_controller_stands_until_the_status_reconcile_period() {
    let mut k = Kubelet::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    k.run_until_ready();
    // An in-place updater takes the pod out of endpoints.
    k.set_condition("Ready", "False");
    k.override_since = Some(k.now);
    let since = k.now;
    assert!(!k.sync(), "the kubelet leaves it alone at first");
    assert_eq!(k.last_wake, Some(SignedDuration::from_secs(10)));
    assert_eq!(k.ready().0, "False");
    // At the reconcile period it writes its own again.
    assert!(k.wake());
    assert_eq!(k.now.duration_since(since), SignedDuration::from_secs(10));
    assert_eq!(k.ready(), ("True".into(), None, None));
}

#[test]
fn the_kubelet_overwrites_a_foreign_ready_at_once_when_its_own_view_changes() {
    let mut k = Kubelet::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    k.run_until_ready();
    k.set_condition("Ready", "False");
    k.override_since = Some(k.now);
    // The image changes: the kubelet kills the container and writes its
    // whole status, Ready (False, ContainersNotReady) included.
    k.pod.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    assert!(k.sync());
    assert_eq!(
        k.ready().1.as_deref(),
        Some("ContainersNotReady"),
        "the kubelet's own Ready replaced the controller's"
    );
}

#[test]
fn an_image_change_restarts_only_that_container_after_stop_pull_and_start() {
    let mut k = Kubelet::new(json!({
        "terminationGracePeriodSeconds": 30,
        "containers": [{"name": "app", "image": "nginx:1"}, {"name": "side", "image": "busybox:1"}]
    }));
    k.run_until_ready();
    let (app, side) = (k.container("app"), k.container("side"));
    let ip = k.pod.status.as_ref().unwrap().pod_ip.clone();
    k.pod.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    let killed_at = k.now;
    assert!(k.sync());
    let waiting = k.container("app");
    assert!(!waiting.ready);
    assert_eq!(waiting.restart_count, 1);
    assert_eq!(waiting.container_id, None);
    assert_eq!(
        waiting
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("ContainerCreating")
    );
    let last = waiting.last_state.unwrap().terminated.unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(last.container_id, app.container_id);
    assert_eq!(
        last.started_at,
        app.state.unwrap().running.unwrap().started_at
    );
    assert_eq!(k.ready().1.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        k.container("side"),
        side,
        "the other container is untouched"
    );
    // Defaults: stop 1 s + pull 5 s + start 2 s.
    assert_eq!(k.last_wake, Some(SignedDuration::from_secs(8)));
    assert!(k.wake());
    assert_eq!(
        k.now.duration_since(killed_at),
        SignedDuration::from_secs(8)
    );
    let restarted = k.container("app");
    assert!(restarted.ready);
    assert_eq!(restarted.image, "nginx:2");
    assert_ne!(restarted.container_id, app.container_id);
    assert_ne!(restarted.image_id, app.image_id);
    assert!(restarted.image_id.contains("nginx@sha256:"));
    assert_eq!(k.ready().0, "True");
    assert_eq!(k.pod.status.as_ref().unwrap().pod_ip, ip, "same sandbox");
    assert_eq!(k.container("side"), side);
}

#[test]
fn the_stop_of_an_in_place_restart_is_capped_by_the_grace_period() {
    let mut k = Kubelet::new(json!({
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "app", "image": "nginx:1"}]
    }));
    k.cfg.shutdown_delay = SignedDuration::from_secs(20);
    k.run_until_ready();
    k.pod.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    k.sync();
    // stop min(20, 2) + pull 5 + start 2
    assert_eq!(k.last_wake, Some(SignedDuration::from_secs(9)));
}

#[test]
fn a_new_pod_waits_for_its_volumes_and_sandbox_before_its_ip_and_containers() {
    let spec = json!({
        "containers": [{"name": "app", "image": "nginx:1"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}]
    });
    let mut k = Kubelet::new(spec.clone());
    k.cfg.sandbox_delay = Delay::Fixed(SignedDuration::from_secs(1));
    k.sync();
    let st = k.pod.status.clone().unwrap();
    assert!(st.start_time.is_some() && st.host_ip.is_some());
    assert_eq!(st.pod_ip, None, "no sandbox yet");
    assert_eq!(
        k.condition("PodReadyToStartContainers").unwrap().status,
        "False"
    );
    // volumes 10 s + sandbox 1 s
    k.wake();
    assert_eq!(k.at(), 11);
    assert_eq!(
        k.pod.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.244.0.2")
    );
    assert_eq!(
        k.condition("PodReadyToStartContainers").unwrap().status,
        "True"
    );
    // + start 2 s
    k.wake();
    assert_eq!((k.at(), k.ready().0.as_str()), (13, "True"));

    // Without persistent volumes: no attach.
    let mut k = Kubelet::new(json!({"containers": [{"name": "app", "image": "nginx:1"}],
        "volumes": [{"name": "tmp", "emptyDir": {}}]}));
    k.run_until_ready();
    assert_eq!(k.at(), 2);
}

#[test]
fn node_pools_give_matching_nodes_their_own_timing() {
    let slow = kubelet::KubeletConfig {
        image_pull_delay: Delay::Fixed(SignedDuration::from_secs(60)),
        scheduling_delay: Delay::Fixed(SignedDuration::from_secs(30)),
        ..kubelet::KubeletConfig::default()
    };
    let cfg = kubelet::KubeletConfig {
        pools: vec![kubelet::NodePool {
            name: "spot".into(),
            node_labels: BTreeMap::from([("pool".to_owned(), "spot".to_owned())]),
            kubelet: slow.clone(),
        }],
        ..kubelet::KubeletConfig::default()
    };
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        cfg.for_node(Some(&labels(&[("pool", "spot"), ("a", "b")]))),
        &slow
    );
    assert_eq!(
        cfg.for_node(Some(&labels(&[("pool", "on-demand")])))
            .image_pull_delay,
        Delay::Fixed(SignedDuration::from_secs(5))
    );
    assert_eq!(
        cfg.for_node(None).pools.len(),
        1,
        "no labels: the default config"
    );
    // The pool's scheduling delay counts from the pod's creation.
    let k = Kubelet::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    let created = k.now;
    assert_eq!(
        slow.bind_at(&k.pod, None).unwrap().duration_since(created),
        SignedDuration::from_secs(30)
    );
    assert_eq!(cfg.bind_at(&k.pod, None), Some(created));
}

#[test]
fn the_scheduling_delay_counts_from_the_schedulers_first_sight_not_the_whole_second_creation() {
    let cfg = kubelet::KubeletConfig {
        scheduling_delay: Delay::Fixed(SignedDuration::from_millis(500)),
        ..kubelet::KubeletConfig::default()
    };
    // creationTimestamp went through the API: whole seconds. The pod was created (and first seen
    // by the scheduler) 0.7 s into that second.
    let k = Kubelet::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    let created = k.now;
    let seen = created
        .checked_add(SignedDuration::from_millis(700))
        .unwrap();
    assert_eq!(
        cfg.bind_at(&k.pod, Some(seen)),
        Some(seen.checked_add(SignedDuration::from_millis(500)).unwrap())
    );
    // From the stored second, the delay would already be over when the scheduler first looks.
    assert!(cfg.bind_at(&k.pod, None).unwrap() < seen);
}

#[test]
fn an_in_place_restart_counts_from_the_precise_kill_not_the_whole_second_finished_at() {
    let mut k = Kubelet::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    k.run_until_ready();
    // The image changes 0.7 s into a second.
    k.now = k.now.checked_add(SignedDuration::from_millis(700)).unwrap();
    let killed_at = k.now;
    k.pod.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    assert!(k.sync());
    assert_eq!(
        k.exits,
        vec![kubelet::ContainerExit {
            container: "app".into(),
            restart_count: 1,
            at: killed_at,
        }],
        "the step reports the kill to the driver, to the nanosecond"
    );
    // The status goes through the API: finishedAt loses its fraction.
    k.pod = serde_json::from_value(serde_json::to_value(&k.pod).unwrap()).unwrap();
    let finished = k.container("app").last_state.unwrap().terminated.unwrap();
    assert_eq!(
        killed_at.duration_since(finished.finished_at.unwrap().0),
        SignedDuration::from_millis(700),
        "the API keeps whole seconds"
    );
    // Defaults: stop 1 s + pull 5 s + start 2 s = 8 s after the kill. At 7.9 s: not yet.
    k.now = killed_at
        .checked_add(SignedDuration::from_millis(7900))
        .unwrap();
    assert!(!k.sync(), "the container does not start early");
    assert_eq!(k.last_wake, Some(SignedDuration::from_millis(100)));
    assert!(k.wake());
    assert_eq!(
        k.now.duration_since(killed_at),
        SignedDuration::from_secs(8)
    );
    assert!(k.container("app").ready);

    // Without the kubelet's own record, the stored second would start it 0.7 s early.
    let mut early = Kubelet::new(json!({"containers": [{"name": "app", "image": "nginx:1"}]}));
    early.run_until_ready();
    early.now = early
        .now
        .checked_add(SignedDuration::from_millis(700))
        .unwrap();
    let early_kill = early.now;
    early.pod.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    early.sync();
    early.pod = serde_json::from_value(serde_json::to_value(&early.pod).unwrap()).unwrap();
    early.exits.clear();
    early.now = early_kill
        .checked_add(SignedDuration::from_millis(7400))
        .unwrap();
    assert!(early.sync());
    assert!(
        early.container("app").ready,
        "started from the truncated finishedAt"
    );
}
