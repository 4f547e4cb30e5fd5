//! Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`) of
//! built-in kinds and custom resources, through `kube::Api`, raw HTTP (to
//! see the `Warning` headers) and the real `kubectl`.
#![allow(clippy::unwrap_used)]

use kubesim::testing::kubectl as kubectl_support;

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams, ValidationDirective},
};
use kubectl_support::{Kubectl, kubectl_available};
use kubesim::cluster::{Cluster, ClusterConfig, Handle};
use serde_json::{Value, json};

const POD_WITH_UNKNOWN: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"odd"},"spec":{"foo":1,"containers":[{"name":"c","image":"nginx","bar":true}]}}"#;

/// POSTs `body` to `path` and returns (status, `Warning` headers, body).
async fn post(h: &Handle, path: &str, body: &str) -> (u16, Vec<String>, Value) {
    send(h, http::Method::POST, path, "application/json", body).await
}

/// Sends `body` to `path` and returns (status, `Warning` headers, body).
async fn send(
    h: &Handle,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Vec<String>, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let resp = h.client().send(req).await.unwrap();
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, warnings, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn strict_rejects_unknown_fields_of_a_pod_with_the_upstream_message() {
    let h = Cluster::start(ClusterConfig::default()).await.unwrap();
    let (code, _, status) = post(
        &h,
        "/api/v1/namespaces/default/pods?fieldValidation=Strict",
        POD_WITH_UNKNOWN,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.containers[0].bar\", unknown field \"spec.foo\""
    );
    let dup = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"d","name":"d"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}"#;
    let (code, _, status) = post(
        &h,
        "/api/v1/namespaces/default/pods?fieldValidation=Strict",
        dup,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: duplicate field \"metadata.name\""
    );
    let (code, _, status) = post(
        &h,
        "/api/v1/namespaces/default/pods?fieldValidation=Sloppy",
        POD_WITH_UNKNOWN,
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
}

#[tokio::test]
async fn warn_is_the_default_and_drops_the_fields_with_one_warning_each() {
    let h = Cluster::start(ClusterConfig::default()).await.unwrap();
    let (code, warnings, pod) = post(&h, "/api/v1/namespaces/default/pods", POD_WITH_UNKNOWN).await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"spec.containers[0].bar\"""#,
            r#"299 - "unknown field \"spec.foo\"""#
        ]
    );
    assert!(pod["spec"].get("foo").is_none(), "{pod}");
    assert!(pod["spec"]["containers"][0].get("bar").is_none(), "{pod}");

    let quiet = POD_WITH_UNKNOWN.replace("\"odd\"", "\"quiet\"");
    let (code, warnings, pod) = post(
        &h,
        "/api/v1/namespaces/default/pods?fieldValidation=Ignore",
        &quiet,
    )
    .await;
    assert_eq!(code, 201);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(pod["spec"].get("foo").is_none(), "{pod}");
}

#[tokio::test]
async fn patches_under_strict_fail_on_the_patch_field_through_kube_api() {
    let h = Cluster::start(ClusterConfig::default()).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let strict = PatchParams {
        field_validation: Some(ValidationDirective::Strict),
        ..PatchParams::default()
    };
    let e = pods
        .patch(
            "web",
            &strict,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "spec": {"foo": 1}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = e else {
        panic!("expected an API error")
    };
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message
            .starts_with(" \"\" is invalid: patch: Invalid value: \"{")
            && s.message
                .ends_with("\": strict decoding error: unknown field \"spec.foo\""),
        "{}",
        s.message
    );
    let e = pods
        .patch(
            "web",
            &strict,
            &Patch::Strategic(json!({"spec": {"foo": 1}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = e else {
        panic!("expected an API error")
    };
    assert_eq!(
        s.message,
        " \"\" is invalid: patch: Invalid value: \"map[spec:map[foo:1]]\": strict decoding error: unknown field \"spec.foo\""
    );
    // nothing was written; Ignore drops the field and applies the rest
    assert!(pods.get("web").await.unwrap().metadata.labels.is_none());
    let ignore = PatchParams {
        field_validation: Some(ValidationDirective::Ignore),
        ..PatchParams::default()
    };
    let out = pods
        .patch(
            "web",
            &ignore,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}, "spec": {"foo": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.labels.unwrap()["a"], "b");
}

#[tokio::test]
async fn server_side_apply_of_an_undeclared_field_fails_as_the_field_manager_does() {
    let h = Cluster::start(ClusterConfig::default()).await.unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::default_namespaced(h.client());
    let e = cms
        .patch(
            "cfg",
            &PatchParams::apply("tester"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "cfg"}, "data": {"a": "b"}, "foo": 1})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = e else {
        panic!("expected an API error")
    };
    assert_eq!(s.code, 500);
    assert_eq!(
        s.message,
        "failed to create typed patch object (/cfg; /v1, Kind=ConfigMap): .foo: field not declared in schema"
    );
    assert!(cms.get_opt("cfg").await.unwrap().is_none());
}

const WIDGETS: &str = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"widgets.example.com"},
 "spec":{"group":"example.com","scope":"Namespaced",
  "names":{"plural":"widgets","singular":"widget","kind":"Widget"},
  "versions":[{"name":"v1","served":true,"storage":true,
   "schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"type":"object","properties":{"size":{"type":"integer"}}}}}}}]}}"#;

#[tokio::test]
async fn custom_resources_follow_the_directive_too() {
    let h = Cluster::start(ClusterConfig::default()).await.unwrap();
    let (code, _, _) = post(
        &h,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        WIDGETS,
    )
    .await;
    assert_eq!(code, 201);
    let w = r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":1,"colour":"red"}}"#;
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    let (code, _, status) = post(&h, &format!("{path}?fieldValidation=Strict"), w).await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.colour\""
    );
    let (code, warnings, obj) = post(&h, path, w).await;
    assert_eq!(code, 201);
    assert_eq!(warnings, [r#"299 - "unknown field \"spec.colour\"""#]);
    assert_eq!(obj["spec"], json!({"size": 1}));
}

#[tokio::test]
async fn a_status_write_checks_the_status_schema_and_passes_a_spec_stored_under_an_older_schema() {
    let h = Cluster::start(ClusterConfig::default()).await.unwrap();
    let crd: Value = serde_json::from_str(WIDGETS).unwrap();
    let mut crd_status = crd.clone();
    crd_status["spec"]["versions"][0]["subresources"] = json!({"status": {}});
    crd_status["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"] =
        json!({"type": "object", "properties": {"ready": {"type": "boolean"}}});
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, _, _) = post(&h, crds, &crd_status.to_string()).await;
    assert_eq!(code, 201);
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    let (code, _, _) = post(
        &h,
        path,
        r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":0}}"#,
    )
    .await;
    assert_eq!(code, 201);
    // Given the schema tightens after the object was stored (size >= 1) ...
    let mut tight = crd_status.clone();
    tight["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["size"]["minimum"] = json!(1);
    let (code, _, stored) = send(
        &h,
        http::Method::GET,
        &format!("{crds}/widgets.example.com"),
        "application/json",
        "",
    )
    .await;
    assert_eq!(code, 200);
    tight["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
    let (code, _, _) = send(
        &h,
        http::Method::PUT,
        &format!("{crds}/widgets.example.com"),
        "application/json",
        &tight.to_string(),
    )
    .await;
    assert_eq!(code, 200);
    // ... a status write still passes (only status is validated) ...
    let (code, _, out) = send(
        &h,
        http::Method::PATCH,
        &format!("{path}/w/status"),
        "application/merge-patch+json",
        r#"{"status":{"ready":true}}"#,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["status"]["ready"], true);
    // (a main-resource write keeping the old size passes too: upstream's
    // validation ratcheting), and a bad status value is refused.
    let (code, _, out) = send(
        &h,
        http::Method::PATCH,
        &format!("{path}/w/status"),
        "application/merge-patch+json",
        r#"{"status":{"ready":"yes"}}"#,
    )
    .await;
    assert_eq!(code, 422, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("status.ready"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_a_pod_with_an_unknown_field_fails_like_a_real_server() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let o = k
        .run(
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: Pod\nmetadata: {name: odd, namespace: default}\nspec:\n  foo: 1\n  containers: [{name: c, image: nginx}]\n"),
        )
        .await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(
            "Error from server (BadRequest): error when creating \"STDIN\": Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.foo\""
        ),
        "{}",
        o.stderr
    );
    // --validate=warn sends Warn: created, with kubectl printing the warning
    let o = k
        .run(
            &["apply", "--validate=warn", "-f", "-"],
            Some("apiVersion: v1\nkind: Pod\nmetadata: {name: odd, namespace: default}\nspec:\n  foo: 1\n  containers: [{name: c, image: nginx}]\n"),
        )
        .await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stderr.contains("Warning: unknown field \"spec.foo\""),
        "{}",
        o.stderr
    );
}
