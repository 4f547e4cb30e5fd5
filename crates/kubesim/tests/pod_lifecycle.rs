//! The pod's own lifecycle through a real `kube::Client` against a running
//! kubesim: which spec updates kube-apiserver allows (`ValidatePodUpdate`),
//! readiness gates owned by controllers, and the kubelet's in-place restart
//! of a container whose image changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/kubectl.rs"]
mod kubectl;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        core::v1::{ContainerStatus, Pod, Service},
        discovery::v1::EndpointSlice,
    },
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use kubesim::{
    cluster::{Cluster, ClusterConfig, Handle},
    kubelet::{Delay, KubeletConfig, NodePool},
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

const ALLOWED: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

async fn start() -> Handle {
    Cluster::start(ClusterConfig::default()).await.unwrap()
}

fn two_container_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "app", "image": "nginx:1.27"},
                {"name": "side", "image": "busybox:1.36"}
            ],
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]
        }
    }))
    .unwrap()
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn json_patch(ops: Value) -> Patch<Value> {
    Patch::Json(serde_json::from_value(ops).unwrap())
}

/// Asserts a 422 whose message is `Pod "NAME" is invalid: FIELD: DETAIL…`.
fn assert_invalid(e: kube::Error, name: &str, field: &str, detail: &str, case: &str) {
    let s = api_err(e);
    assert_eq!(
        (s.code, s.reason.as_str()),
        (422, "Invalid"),
        "{case}: {s:?}"
    );
    let prefix = format!("Pod \"{name}\" is invalid: {field}: {detail}");
    assert!(
        s.message.starts_with(&prefix),
        "{case}: message {:?} does not start with {prefix:?}",
        s.message
    );
    let causes = s.details.expect("details").causes;
    assert_eq!(causes[0].field, field, "{case}");
}

#[tokio::test]
async fn every_disallowed_pod_spec_update_gets_upstreams_422() {
    let h = start().await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    pods.create(&PostParams::default(), &two_container_pod("web-0"))
        .await
        .unwrap();
    let generic = format!("Forbidden: {ALLOWED}");
    let cases: Vec<(&str, Value, &str, String)> = vec![
        (
            "env",
            json!([{"op": "add", "path": "/spec/containers/0/env", "value": [{"name": "A", "value": "1"}]}]),
            "spec",
            generic.clone(),
        ),
        (
            "resources",
            json!([{"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"cpu": "1"}}]),
            "spec",
            generic.clone(),
        ),
        (
            "ports",
            json!([{"op": "add", "path": "/spec/containers/0/ports", "value": [{"containerPort": 80}]}]),
            "spec",
            generic.clone(),
        ),
        (
            "volumes",
            json!([{"op": "add", "path": "/spec/volumes", "value": [{"name": "v", "emptyDir": {}}]}]),
            "spec",
            generic.clone(),
        ),
        (
            "nodeName",
            json!([{"op": "add", "path": "/spec/nodeName", "value": "kubesim-node-0"}]),
            "spec",
            generic.clone(),
        ),
        (
            "restartPolicy",
            json!([{"op": "replace", "path": "/spec/restartPolicy", "value": "Never"}]),
            "spec",
            generic.clone(),
        ),
        (
            "container name",
            json!([{"op": "replace", "path": "/spec/containers/0/name", "value": "renamed"}]),
            "spec",
            generic.clone(),
        ),
        (
            "container added",
            json!([{"op": "add", "path": "/spec/containers/-", "value": {"name": "third", "image": "nginx:1.27"}}]),
            "spec.containers",
            "Forbidden: pod updates may not add or remove containers".into(),
        ),
        (
            "toleration removed",
            json!([{"op": "remove", "path": "/spec/tolerations/0"}]),
            "spec.tolerations",
            "Forbidden: existing toleration can not be modified except its tolerationSeconds"
                .into(),
        ),
        (
            "image emptied",
            json!([{"op": "replace", "path": "/spec/containers/1/image", "value": ""}]),
            "spec.containers[1].image",
            "Required value".into(),
        ),
    ];
    for (case, ops, field, detail) in cases {
        let e = pods
            .patch("web-0", &PatchParams::default(), &json_patch(ops))
            .await
            .expect_err(case);
        assert_invalid(e, "web-0", field, &detail, case);
    }
    // The generic message carries a diff naming the changed path.
    let e = pods
        .patch(
            "web-0",
            &PatchParams::default(),
            &json_patch(
                json!([{"op": "replace", "path": "/spec/restartPolicy", "value": "Never"}]),
            ),
        )
        .await
        .unwrap_err();
    let msg = api_err(e).message;
    assert!(
        msg.ends_with("\n- spec.restartPolicy: \"Always\"\n+ spec.restartPolicy: \"Never\""),
        "{msg}"
    );
    // Nothing was written.
    let pod = pods.get("web-0").await.unwrap();
    let spec = pod.spec.unwrap();
    assert_eq!(spec.containers.len(), 2);
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert!(spec.node_name.is_none());
}

#[tokio::test]
async fn update_and_every_patch_type_and_apply_are_validated_alike() {
    let h = start().await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    pods.create(&PostParams::default(), &two_container_pod("web-0"))
        .await
        .unwrap();
    let generic = format!("Forbidden: {ALLOWED}");
    let env = json!([{"name": "A", "value": "1"}]);

    // PUT
    let mut put = pods.get("web-0").await.unwrap();
    put.spec.as_mut().unwrap().containers[0].env =
        Some(serde_json::from_value(env.clone()).unwrap());
    let e = pods
        .replace("web-0", &PostParams::default(), &put)
        .await
        .unwrap_err();
    assert_invalid(e, "web-0", "spec", &generic, "PUT");
    // merge patch (replaces the container list)
    let merge = json!({"spec": {"containers": [
        {"name": "app", "image": "nginx:1.27", "env": env},
        {"name": "side", "image": "busybox:1.36"}
    ]}});
    let e = pods
        .patch("web-0", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .unwrap_err();
    assert_invalid(e, "web-0", "spec", &generic, "merge");
    // strategic merge patch (containers merge by name)
    let smp = json!({"spec": {"containers": [{"name": "app", "env": env}]}});
    let e = pods
        .patch("web-0", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap_err();
    assert_invalid(e, "web-0", "spec", &generic, "strategic");
    // server-side apply
    let applied = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "env": env}]}
    });
    let e = pods
        .patch(
            "web-0",
            &PatchParams::apply("tester").force(),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap_err();
    assert_invalid(e, "web-0", "spec", &generic, "apply");

    // The same paths carry allowed changes.
    let smp = json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}});
    pods.patch("web-0", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    let applied = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"},
        "spec": {"containers": [{"name": "side", "image": "busybox:1.37"}]}
    });
    pods.patch(
        "web-0",
        &PatchParams::apply("tester").force(),
        &Patch::Apply(&applied),
    )
    .await
    .unwrap();
    let mut put = pods.get("web-0").await.unwrap();
    put.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.29".into());
    let put = pods
        .replace("web-0", &PostParams::default(), &put)
        .await
        .unwrap();
    let images: Vec<_> = put
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.image.unwrap())
        .collect();
    assert_eq!(images, ["nginx:1.29", "busybox:1.37"]);
}

#[tokio::test]
async fn images_deadlines_added_tolerations_and_metadata_may_change() {
    let h = start().await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let mut pod = two_container_pod("web-0");
    pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(-1);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let ok = |p: Value| async {
        pods.patch("web-0", &PatchParams::default(), &Patch::Merge(p))
            .await
            .unwrap()
    };
    ok(json!({"metadata": {"labels": {"tier": "front"}, "annotations": {"a": "b"}}})).await;
    ok(json!({"spec": {"activeDeadlineSeconds": 600}})).await;
    ok(json!({"spec": {"activeDeadlineSeconds": 300}})).await;
    ok(json!({"spec": {"terminationGracePeriodSeconds": 1}})).await;
    pods.patch(
        "web-0",
        &PatchParams::default(),
        &json_patch(json!([
            {"op": "add", "path": "/spec/tolerations/-", "value": {"key": "spot", "operator": "Exists"}},
            {"op": "replace", "path": "/spec/containers/1/image", "value": "busybox:1.37"}
        ])),
    )
    .await
    .unwrap();
    let spec = pods.get("web-0").await.unwrap().spec.unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(300));
    assert_eq!(spec.termination_grace_period_seconds, Some(1));
    assert_eq!(spec.containers[1].image.as_deref(), Some("busybox:1.37"));
    assert!(
        spec.tolerations
            .unwrap()
            .iter()
            .any(|t| t.key.as_deref() == Some("spot"))
    );

    // ... but a deadline may not be raised or removed.
    let e = pods
        .patch(
            "web-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"activeDeadlineSeconds": 900}})),
        )
        .await
        .unwrap_err();
    assert_invalid(
        e,
        "web-0",
        "spec.activeDeadlineSeconds",
        "Invalid value: 900: must be less than or equal to previous value",
        "raised deadline",
    );
    let e = pods
        .patch(
            "web-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"activeDeadlineSeconds": null}})),
        )
        .await
        .unwrap_err();
    assert_invalid(
        e,
        "web-0",
        "spec.activeDeadlineSeconds",
        "Invalid value: \"null\": must not update from a positive integer to nil value",
        "removed deadline",
    );
}

#[tokio::test]
async fn status_writes_are_not_subject_to_the_spec_rules() {
    let h = start().await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    pods.create(&PostParams::default(), &two_container_pod("web-0"))
        .await
        .unwrap();
    // A status patch that also carries a spec change: the spec part is ignored
    // (podStatusStrategy), the status part written.
    let p = json!({
        "spec": {"restartPolicy": "Never"},
        "status": {"conditions": [{"type": "example.com/gate", "status": "True"}]}
    });
    let got = pods
        .patch_status("web-0", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(got.spec.unwrap().restart_policy.as_deref(), Some("Always"));
    let conds = got.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "example.com/gate" && c.status == "True")
    );
}

#[tokio::test]
async fn binding_sets_the_node_once_and_a_second_binding_conflicts() {
    let h = Cluster::start(ClusterConfig {
        simulate: true,
        speed: 20.0,
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let mut pod = two_container_pod("web-0");
    pod.spec.as_mut().unwrap().scheduler_name = Some("my-scheduler".into());
    pod.spec.as_mut().unwrap().node_selector =
        Some([("kubernetes.io/hostname".to_owned(), "nowhere".to_owned())].into());
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "web-0"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "kubesim-node-1"}
    });
    let req = |b: Value| {
        http::Request::post("/api/v1/namespaces/default/pods/web-0/binding")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&b).unwrap())
            .unwrap()
    };
    let st: Value = h.client().request(req(binding.clone())).await.unwrap();
    assert_eq!(st["status"], "Success");
    let got = pods.get("web-0").await.unwrap();
    assert_eq!(
        got.spec.unwrap().node_name.as_deref(),
        Some("kubesim-node-1")
    );
    let e = h.client().request::<Value>(req(binding)).await.unwrap_err();
    let s = api_err(e);
    assert_eq!(s.code, 409);
    assert_eq!(
        s.message,
        "Operation cannot be fulfilled on pods \"web-0\": pod web-0 is already assigned to node \"kubesim-node-1\""
    );
    let e = h
        .client()
        .request::<Value>(req(json!({
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web-0"},
            "target": {"kind": "Pod", "name": ""}
        })))
        .await
        .unwrap_err();
    let s = api_err(e);
    assert_eq!(
        (s.code, s.message.as_str()),
        (
            422,
            "Binding \"web-0\" is invalid: [target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\", target.name: Required value]"
        )
    );
}

// ---- with the simulation: the kubelet's in-place restart and readiness gates

/// kubesim with its controllers and kubelets at `speed`, timed by `kubelet`.
async fn simulated(speed: f64, kubelet: KubeletConfig) -> Handle {
    Cluster::start(ClusterConfig {
        simulate: true,
        speed,
        kubelet,
        ..ClusterConfig::default()
    })
    .await
    .unwrap()
}

/// Polls `check` until it returns `Some`, failing after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn condition(pod: &Pod, t: &str) -> Option<k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .cloned()
}

fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

fn status_of(pod: &Pod, container: &str) -> ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .cloned()
        .unwrap_or_else(|| panic!("no status for container {container}"))
}

async fn ready_pod(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(&format!("{name} to be ready"), || async {
        pods.get(name).await.ok().filter(is_ready)
    })
    .await
}

/// The `ready` condition of `pod`'s endpoint in the service's EndpointSlices.
async fn endpoint_ready(client: &kube::Client, service: &str, pod: &str) -> Option<bool> {
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    let list = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .ok()?;
    list.items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .find(|e| {
            e.target_ref
                .as_ref()
                .is_some_and(|r| r.name.as_deref() == Some(pod))
        })
        .and_then(|e| e.conditions.as_ref()?.ready)
}

async fn create_service(client: &kube::Client) {
    let services: Api<Service> = Api::default_namespaced(client.clone());
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

fn seconds_between(a: &Timestamp, b: &Timestamp) -> i64 {
    b.duration_since(*a).as_secs()
}

/// Changes the image of `web`'s container `app` and returns the pod once the
/// container runs the new image and the pod is Ready again, with whether a
/// `Ready=False` was seen on the way.
async fn restart_in_place(pods: &Api<Pod>, name: &str, image: &str) -> (Pod, bool) {
    let rv = pods
        .get(name)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = pods
        .watch(
            &WatchParams::default().fields(&format!("metadata.name={name}")),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    let smp = json!({"spec": {"containers": [{"name": "app", "image": image}]}});
    pods.patch(name, &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .unwrap();
    let mut saw_unready = false;
    let done = tokio::time::timeout(DEADLINE, async {
        while let Some(ev) = events.try_next().await.unwrap() {
            if let WatchEvent::Modified(p) = ev {
                saw_unready |= !is_ready(&p);
                let app = status_of(&p, "app");
                let running = app.state.as_ref().is_some_and(|s| s.running.is_some());
                if running && app.image == image && is_ready(&p) {
                    return p;
                }
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the in-place restart did not complete");
    (done, saw_unready)
}

#[tokio::test]
async fn an_image_update_restarts_exactly_that_container_in_place() {
    let slow_pulls = KubeletConfig {
        image_pull_delay: Delay::Fixed(SignedDuration::from_secs(30)),
        ..KubeletConfig::default()
    };
    let kubelet = KubeletConfig {
        pools: vec![NodePool {
            name: "slow-registry".into(),
            node_labels: [(
                "kubernetes.io/hostname".to_owned(),
                "kubesim-node-1".to_owned(),
            )]
            .into(),
            kubelet: slow_pulls,
        }],
        ..KubeletConfig::default()
    };
    let h = simulated(20.0, kubelet).await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    for (name, node) in [("web-0", "kubesim-node-0"), ("web-1", "kubesim-node-1")] {
        let mut pod = two_container_pod(name);
        pod.spec.as_mut().unwrap().node_selector =
            Some([("kubernetes.io/hostname".to_owned(), node.to_owned())].into());
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    // (pod, stop + pull + start in simulated seconds). A loaded machine can
    // only make the driver wake late, so the bounds are: no earlier than the
    // cycle, and (default pool) under the slow pool's (32 s at least).
    for (name, cycle, under) in [("web-0", 1 + 5 + 2, 32), ("web-1", 1 + 30 + 2, i64::MAX)] {
        let before = ready_pod(&pods, name).await;
        let (after, saw_unready) = restart_in_place(&pods, name, "nginx:1.28").await;
        assert!(saw_unready, "{name}: Ready went False during the restart");
        assert_eq!(after.metadata.uid, before.metadata.uid, "{name}: same pod");
        let (b, a) = (
            before.status.clone().unwrap(),
            after.status.clone().unwrap(),
        );
        assert_eq!(a.pod_ip, b.pod_ip, "{name}: same sandbox IP");
        assert_eq!(a.start_time, b.start_time);
        assert_eq!(
            after.spec.as_ref().unwrap().node_name,
            before.spec.as_ref().unwrap().node_name
        );
        let (old_app, app) = (status_of(&before, "app"), status_of(&after, "app"));
        assert_eq!(app.restart_count, 1);
        assert_ne!(app.container_id, old_app.container_id);
        assert!(app.image_id.starts_with("docker.io/library/nginx@sha256:"));
        assert_ne!(app.image_id, old_app.image_id);
        assert_eq!(app.started, Some(true));
        let killed = app.last_state.clone().unwrap().terminated.unwrap();
        assert_eq!(
            (killed.exit_code, killed.reason.as_deref()),
            (0, Some("Completed"))
        );
        assert_eq!(killed.container_id, old_app.container_id);
        assert_eq!(
            killed.started_at,
            old_app.state.unwrap().running.unwrap().started_at
        );
        let started = app.state.unwrap().running.unwrap().started_at.unwrap();
        let took = seconds_between(&killed.finished_at.unwrap().0, &started.0);
        assert!(
            (cycle - 1..under).contains(&took),
            "{name}: restarted {took} s after the kill, expected stop + pull + start = {cycle} s"
        );
        assert_eq!(
            status_of(&after, "side"),
            status_of(&before, "side"),
            "{name}: the other container is untouched"
        );
    }
}

#[tokio::test]
async fn a_readiness_gate_holds_ready_and_the_endpoint_until_a_controller_sets_it() {
    let h = simulated(20.0, KubeletConfig::default()).await;
    let client = h.client();
    create_service(&client).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut pod = two_container_pod("web-0");
    pod.spec.as_mut().unwrap().readiness_gates = Some(vec![
        serde_json::from_value(json!({"conditionType": "example.com/lb"})).unwrap(),
    ]);
    pods.create(&PostParams::default(), &pod).await.unwrap();

    // Containers ready, the gate's condition absent: Ready False, endpoint not ready.
    let p = eventually("the containers to be ready", || async {
        pods.get("web-0")
            .await
            .ok()
            .filter(|p| condition(p, "ContainersReady").is_some_and(|c| c.status == "True"))
    })
    .await;
    let ready = condition(&p, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist.")
    );
    let ep = eventually("a not-ready endpoint", || async {
        endpoint_ready(&client, "web", "web-0").await
    })
    .await;
    assert!(!ep);

    // Strategic merge patch of pods/status (conditions merge by type): False.
    let gate = |status: &str| json!({"type": "example.com/lb", "status": status});
    pods.patch_status(
        "web-0",
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"conditions": [gate("False")]}})),
    )
    .await
    .unwrap();
    let p = eventually("the gate's False to be reported", || async {
        pods.get("web-0").await.ok().filter(|p| {
            condition(p, "Ready").and_then(|c| c.message).as_deref()
                == Some("the status of pod readiness gate \"example.com/lb\" is not \"True\", but False")
        })
    })
    .await;
    assert!(
        condition(&p, "PodScheduled").is_some(),
        "the kubelet's conditions stay"
    );

    // PUT pods/status: True. Ready, and the endpoint follows.
    let mut p = pods.get("web-0").await.unwrap();
    let conds = p.status.as_mut().unwrap().conditions.as_mut().unwrap();
    conds.retain(|c| c.type_ != "example.com/lb");
    conds.push(serde_json::from_value(gate("True")).unwrap());
    pods.replace_status("web-0", &PostParams::default(), &p)
        .await
        .unwrap();
    let p = ready_pod(&pods, "web-0").await;
    assert_eq!(condition(&p, "example.com/lb").unwrap().status, "True");
    eventually("a ready endpoint", || async {
        endpoint_ready(&client, "web", "web-0").await.filter(|r| *r)
    })
    .await;

    // JSON patch of pods/status: back to False, endpoint not ready.
    let p = pods.get("web-0").await.unwrap();
    let idx = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .position(|c| c.type_ == "example.com/lb")
        .unwrap();
    pods.patch_status(
        "web-0",
        &PatchParams::default(),
        &json_patch(json!([
            {"op": "test", "path": format!("/status/conditions/{idx}/type"), "value": "example.com/lb"},
            {"op": "replace", "path": format!("/status/conditions/{idx}/status"), "value": "False"}
        ])),
    )
    .await
    .unwrap();
    eventually("the endpoint to be not ready again", || async {
        endpoint_ready(&client, "web", "web-0")
            .await
            .filter(|r| !*r)
    })
    .await;
    assert!(!is_ready(&pods.get("web-0").await.unwrap()));

    // Merge patch (replaces the whole list): the kubelet puts its own conditions back.
    pods.patch_status(
        "web-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [gate("True")]}})),
    )
    .await
    .unwrap();
    let p = ready_pod(&pods, "web-0").await;
    for t in [
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "example.com/lb",
    ] {
        assert_eq!(
            condition(&p, t).map(|c| c.status).as_deref(),
            Some("True"),
            "{t}"
        );
    }
    eventually("a ready endpoint after the merge patch", || async {
        endpoint_ready(&client, "web", "web-0").await.filter(|r| *r)
    })
    .await;
}

#[tokio::test]
async fn a_controllers_ready_false_takes_the_endpoint_out_until_the_kubelets_next_recompute() {
    let kubelet = KubeletConfig {
        status_reconcile: SignedDuration::from_secs(100),
        ..KubeletConfig::default()
    };
    let h = simulated(20.0, kubelet).await;
    let client = h.client();
    create_service(&client).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &two_container_pod("web-0"))
        .await
        .unwrap();
    ready_pod(&pods, "web-0").await;
    eventually("a ready endpoint", || async {
        endpoint_ready(&client, "web", "web-0").await.filter(|r| *r)
    })
    .await;

    // An in-place updater marks the pod not ready through pods/status.
    let written = h.simulation().unwrap().clock().now();
    pods.patch_status(
        "web-0",
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"conditions": [{
            "type": "Ready", "status": "False", "reason": "StartInPlaceUpdate",
            "lastTransitionTime": written.to_string()
        }]}})),
    )
    .await
    .unwrap();
    eventually("the endpoint to leave the ready set", || async {
        endpoint_ready(&client, "web", "web-0")
            .await
            .filter(|r| !*r)
    })
    .await;
    // The kubelet writes its own Ready again at its reconcile period, not before.
    let p = ready_pod(&pods, "web-0").await;
    let back = condition(&p, "Ready")
        .unwrap()
        .last_transition_time
        .unwrap()
        .0;
    let floor = Timestamp::from_second(written.as_second()).unwrap();
    assert!(
        seconds_between(&floor, &back) >= 100,
        "the kubelet rewrote Ready {} s after the controller",
        seconds_between(&floor, &back)
    );
    eventually("the endpoint to be ready again", || async {
        endpoint_ready(&client, "web", "web-0").await.filter(|r| *r)
    })
    .await;
}

// ---- kubectl as the client

const POD_YAML: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web-0
spec:
  containers:
  - name: app
    image: nginx:1.27
";

#[tokio::test]
async fn kubectl_apply_of_a_changed_pod_spec_prints_upstreams_error_and_set_image_works() {
    if !kubectl::kubectl_available() {
        return;
    }
    let k = kubectl::Kubectl::start().await;
    k.ok_in(&["apply", "-f", "-"], Some(POD_YAML)).await;
    let changed = format!("{POD_YAML}    env:\n    - name: A\n      value: \"1\"\n");
    let o = k.run(&["apply", "-f", "-"], Some(&changed)).await;
    assert!(!o.ok, "{o:?}");
    assert!(
        o.stderr.contains(&format!(
            "The Pod \"web-0\" is invalid: spec: Forbidden: {ALLOWED}"
        )),
        "{}",
        o.stderr
    );
    let out = k.ok(&["set", "image", "pod/web-0", "app=nginx:1.28"]).await;
    assert!(out.contains("pod/web-0 image updated"), "{out}");
    let image = k
        .ok(&[
            "get",
            "pod",
            "web-0",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "nginx:1.28");
    // A controller's gate condition through the status subresource.
    k.ok(&[
        "patch",
        "pod",
        "web-0",
        "--subresource=status",
        "--type=strategic",
        "-p",
        r#"{"status":{"conditions":[{"type":"example.com/lb","status":"True"}]}}"#,
    ])
    .await;
    let gate = k
        .ok(&[
            "get",
            "pod",
            "web-0",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="example.com/lb")].status}"#,
        ])
        .await;
    assert_eq!(gate, "True");
}

#[tokio::test]
async fn a_gated_pod_waits_unscheduled_until_its_last_gate_is_removed() {
    let h = simulated(20.0, KubeletConfig::default()).await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let mut pod = two_container_pod("web-0");
    pod.spec.as_mut().unwrap().scheduling_gates = Some(vec![
        serde_json::from_value(json!({"name": "example.com/quota"})).unwrap(),
        serde_json::from_value(json!({"name": "example.com/arch"})).unwrap(),
    ]);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let p = eventually("the SchedulingGated condition", || async {
        pods.get("web-0")
            .await
            .ok()
            .filter(|p| condition(p, "PodScheduled").is_some())
    })
    .await;
    let c = condition(&p, "PodScheduled").unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
        (
            "False",
            Some("SchedulingGated"),
            Some("Scheduling is blocked due to non-empty scheduling gates")
        )
    );
    // Adding a gate is refused; removing them is allowed, and the pod runs.
    let e = pods
        .patch(
            "web-0",
            &PatchParams::default(),
            &json_patch(
                json!([{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": "x"}}]),
            ),
        )
        .await
        .unwrap_err();
    assert_invalid(
        e,
        "web-0",
        "spec.schedulingGates[2].name",
        "Forbidden: only deletion is allowed, but found new scheduling gate 'x'",
        "added gate",
    );
    pods.patch(
        "web-0",
        &PatchParams::default(),
        &json_patch(json!([{"op": "remove", "path": "/spec/schedulingGates/0"}])),
    )
    .await
    .unwrap();
    let one_left = pods.get("web-0").await.unwrap();
    assert!(
        one_left.spec.unwrap().node_name.is_none(),
        "one gate still holds it"
    );
    pods.patch(
        "web-0",
        &PatchParams::default(),
        &json_patch(json!([{"op": "remove", "path": "/spec/schedulingGates"}])),
    )
    .await
    .unwrap();
    let p = ready_pod(&pods, "web-0").await;
    assert!(p.spec.as_ref().unwrap().node_name.is_some());
    assert_eq!(condition(&p, "PodScheduled").unwrap().status, "True");
}
