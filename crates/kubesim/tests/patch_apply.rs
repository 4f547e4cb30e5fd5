//! Patches and server-side apply end to end: through `kube::Api` against a
//! running kubesim, and through the real `kubectl` binary (in CI a missing
//! kubectl fails; elsewhere those tests say they were skipped).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubesim::testing::kubectl as kubectl_support;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use kubectl_support::{Kubectl, kubectl_available};
use kubesim::cluster::{Cluster, ClusterConfig, Handle};
use serde_json::{Value, json};

async fn start() -> Handle {
    Cluster::start(ClusterConfig::default()).await.unwrap()
}

fn sts(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "serviceName": "web",
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}}
    })
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn managers(s: &StatefulSet) -> Vec<(String, String)> {
    s.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn server_side_apply_creates_conflicts_and_forces_through_kube_api() {
    let h = start().await;
    let api: Api<StatefulSet> = Api::default_namespaced(h.client());
    let created = api
        .patch(
            "web",
            &PatchParams::apply("deployer"),
            &Patch::Apply(sts(2, "nginx:1")),
        )
        .await
        .unwrap();
    assert_eq!(created.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        managers(&created),
        vec![("deployer".to_string(), "Apply".to_string())]
    );

    let scaler = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
                        "spec": {"replicas": 5}});
    let e = api_err(
        api.patch(
            "web",
            &PatchParams::apply("scaler"),
            &Patch::Apply(scaler.clone()),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"deployer\": .spec.replicas"
    );
    let causes = e.details.unwrap().causes;
    assert_eq!(causes[0].field, ".spec.replicas");
    assert_eq!(causes[0].reason, "FieldManagerConflict");

    let forced = api
        .patch(
            "web",
            &PatchParams::apply("scaler").force(),
            &Patch::Apply(scaler),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().replicas, Some(5));
    let mut m = managers(&forced);
    m.sort();
    assert_eq!(
        m,
        vec![
            ("deployer".to_string(), "Apply".to_string()),
            ("scaler".to_string(), "Apply".to_string())
        ]
    );

    // A forced re-apply by the deployer takes replicas back and changes the image.
    let out = api
        .patch(
            "web",
            &PatchParams::apply("deployer").force(),
            &Patch::Apply(sts(5, "nginx:2")),
        )
        .await
        .unwrap();
    let spec = out.spec.unwrap();
    assert_eq!(spec.replicas, Some(5));
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:2")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn strategic_merge_and_json_patches_answer_like_the_real_server() {
    let h = start().await;
    let api: Api<StatefulSet> = Api::default_namespaced(h.client());
    api.patch(
        "web",
        &PatchParams::apply("deployer"),
        &Patch::Apply(sts(1, "nginx:1")),
    )
    .await
    .unwrap();
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:3"}, {"name": "sidecar", "image": "busybox"}]}}}})),
        )
        .await
        .unwrap();
    let containers = patched.spec.unwrap().template.spec.unwrap().containers;
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "sidecar"]);
    assert_eq!(containers[0].image.as_deref(), Some("nginx:3"));
    // The update is recorded for the client's manager (from its user agent).
    assert!(
        patched
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.operation.as_deref() == Some("Update")),
        "{:?}",
        patched.metadata.managed_fields
    );

    let test_fails: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 9}]))
            .unwrap();
    let e = api_err(
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(test_fails),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        "the server rejected our request due to an error in our request"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_server_side_and_patch_types_work() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let manifest = serde_json::to_string(&sts(2, "nginx:1")).unwrap();
    k.ok_in(&["apply", "--server-side", "-f", "-"], Some(&manifest))
        .await;
    k.ok(&[
        "patch",
        "sts",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ])
    .await;
    let conflict = k
        .run(&["apply", "--server-side", "-f", "-"], Some(&manifest))
        .await;
    let forced = k
        .run(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&manifest),
        )
        .await;
    let smp = k
        .run(
            &[
                "patch",
                "sts",
                "web",
                "--type",
                "strategic",
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:9"}]}}}}"#,
            ],
            None,
        )
        .await;
    let json = k
        .run(
            &[
                "patch",
                "sts",
                "web",
                "--type",
                "json",
                "-p",
                r#"[{"op":"test","path":"/spec/replicas","value":42}]"#,
            ],
            None,
        )
        .await;
    let get = k.run(&["get", "sts", "web", "-o", "json"], None).await;
    assert!(!conflict.ok);
    let stderr = &conflict.stderr;
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with \"kubectl-patch\" using apps/v1: .spec.replicas"),
        "{stderr}"
    );
    assert!(forced.ok, "{}", forced.stderr);
    assert!(smp.ok, "{}", smp.stderr);
    assert!(!json.ok);
    assert!(
        json.stderr
            .contains("the server rejected our request due to an error in our request"),
        "{}",
        json.stderr
    );
    let obj: Value = serde_json::from_str(&get.stdout).unwrap();
    assert_eq!(
        obj["spec"]["replicas"], 2,
        "forced apply took replicas back"
    );
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:9"
    );
}
