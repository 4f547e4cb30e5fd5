//! The pod's own lifecycle through a real `kube::Client` against a running
//! kubesim: which spec updates kube-apiserver allows (`ValidatePodUpdate`),
//! readiness gates owned by controllers, and the kubelet's in-place restart
//! of a container whose image changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use kubesim::cluster::{Cluster, ClusterConfig, Handle};
use serde_json::{Value, json};

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
}
