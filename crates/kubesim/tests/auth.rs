//! Authentication and RBAC over HTTP (`ClusterConfig { auth: true }`): 401 for anonymous and
//! unknown tokens, upstream's 403 `Status` bodies, grants through Roles and ClusterRoles,
//! TokenRequest, SelfSubjectAccessReview, and the same through the real `kubectl` (which, when
//! missing, fails under `CI` and is otherwise skipped).
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, time::Duration};

use http_body_util::BodyExt;
use k8s_openapi::api::{
    authentication::v1::TokenRequest,
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::{ConfigMap, Pod, ServiceAccount},
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kubesim::cluster::{Cluster, ClusterConfig, Handle};
use serde_json::{Value, json};

async fn start() -> Handle {
    Cluster::start(ClusterConfig {
        auth: true,
        ..ClusterConfig::default()
    })
    .await
    .unwrap()
}

/// One raw request through the HTTP layer: (status, JSON or text body).
async fn raw(h: &Handle, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let client = kube::Client::new(h.service(), "default");
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = client
        .send(req.body(kube::client::Body::empty()).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (code, v)
}

async fn service_account(h: &Handle, ns: &str, name: &str) -> String {
    let admin = h.client();
    let sas: Api<ServiceAccount> = Api::namespaced(admin, ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    let tr: TokenRequest = sas
        .create_token_request(
            name,
            &PostParams::default(),
            &serde_json::from_value(json!({"spec": {"audiences": []}})).unwrap(),
        )
        .await
        .unwrap();
    tr.status.unwrap().token
}

async fn apply(h: &Handle, yaml: Value) {
    let kind = yaml["kind"].as_str().unwrap().to_owned();
    let ns = yaml["metadata"]["namespace"].as_str().map(str::to_owned);
    let name = yaml["metadata"]["name"].as_str().unwrap().to_owned();
    let ar = kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "rbac.authorization.k8s.io",
        "v1",
        &kind,
    ));
    let api: Api<kube::core::DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(h.client(), &ns, &ar),
        None => Api::all_with(h.client(), &ar),
    };
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&yaml),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn anonymous_and_unknown_tokens_are_unauthorized_but_health_is_public() {
    let h = start().await;
    let (code, body) = raw(&h, "GET", "/api/v1/namespaces/default/pods", None).await;
    assert_eq!(code, 401);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    assert_eq!(raw(&h, "GET", "/apis", None).await.0, 401);
    assert_eq!(
        raw(&h, "GET", "/api/v1/pods", Some("not-a-token")).await.0,
        401
    );
    // An unknown token is refused even on public paths, like upstream.
    assert_eq!(raw(&h, "GET", "/healthz", Some("not-a-token")).await.0, 401);
    for p in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(raw(&h, "GET", p, None).await.0, 200, "{p}");
    }
    // The harness's own clients are administrators.
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    pods.list(&Default::default()).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(h.in_process_client());
    pods.list(&Default::default()).await.unwrap();
    h.shutdown().await;
}

#[tokio::test]
async fn a_service_account_is_forbidden_with_upstreams_message_until_a_role_allows_it() {
    let h = start().await;
    let token = service_account(&h, "default", "op").await;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(h.client());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
    )
    .await
    .unwrap();
    let (code, body) = raw(&h, "GET", "/api/v1/namespaces/team/pods", Some(&token)).await;
    assert_eq!(code, 403);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods is forbidden: User \"system:serviceaccount:default:op\" cannot list resource \"pods\" in API group \"\" in the namespace \"team\"",
               "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
    );
    let (code, body) = raw(
        &h,
        "POST",
        "/apis/apps/v1/namespaces/team/statefulsets/web/status",
        Some(&token),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "statefulsets.apps \"web\" is forbidden: User \"system:serviceaccount:default:op\" cannot create resource \"statefulsets/status\" in API group \"apps\" in the namespace \"team\""
    );
    assert_eq!(
        body["details"],
        json!({"group": "apps", "kind": "statefulsets", "name": "web"})
    );
    let (code, body) = raw(&h, "GET", "/api/v1/nodes", Some(&token)).await;
    assert_eq!(
        (code, body["message"].as_str().unwrap()),
        (
            403,
            "nodes is forbidden: User \"system:serviceaccount:default:op\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        )
    );
    let (code, body) = raw(&h, "GET", "/metrics", Some(&token)).await;
    assert_eq!(
        (code, body["message"].as_str().unwrap()),
        (
            403,
            "forbidden: User \"system:serviceaccount:default:op\" cannot get path \"/metrics\""
        )
    );
    // Discovery is open to every authenticated user (system:discovery).
    assert_eq!(raw(&h, "GET", "/apis/apps/v1", Some(&token)).await.0, 200);

    apply(
        &h,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "pods", "namespace": "team"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
    )
    .await;
    apply(
        &h,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "pods", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
               "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "default"}]}),
    )
    .await;
    assert_eq!(
        raw(&h, "GET", "/api/v1/namespaces/team/pods", Some(&token))
            .await
            .0,
        200
    );
    assert_eq!(
        raw(&h, "GET", "/api/v1/namespaces/other/pods", Some(&token))
            .await
            .0,
        403
    );
    assert_eq!(
        raw(
            &h,
            "GET",
            "/api/v1/namespaces/team/pods?watch=true",
            Some(&token)
        )
        .await
        .0,
        403
    );
    let denied = h
        .auth()
        .unwrap()
        .denials_of("system:serviceaccount:default:op");
    assert!(
        denied
            .iter()
            .any(|a| a.verb == "watch" && a.resource == "pods" && a.namespace == "team"),
        "{denied:?}"
    );

    // A binding to a missing ClusterRole says so in the denial.
    apply(
        &h,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "dangling"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gone"},
               "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "default"}]}),
    )
    .await;
    let (_, body) = raw(&h, "GET", "/api/v1/nodes", Some(&token)).await;
    assert!(
        body["message"].as_str().unwrap().ends_with(
            "at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found"
        ),
        "{body}"
    );

    // Deleting the ServiceAccount invalidates its tokens.
    let sas: Api<ServiceAccount> = Api::namespaced(h.client(), "default");
    sas.delete("op", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        raw(&h, "GET", "/api/v1/namespaces/team/pods", Some(&token))
            .await
            .0,
        401
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_server_side_apply_that_creates_also_needs_create() {
    let h = start().await;
    let token = service_account(&h, "default", "op").await;
    apply(
        &h,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "cm-patch"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}]}),
    )
    .await;
    apply(
        &h,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "cm-patch"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-patch"},
               "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "default"}]}),
    )
    .await;
    let sa_client = h.client_with_token(&token).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(sa_client, "default");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let err = cms
        .patch("c", &PatchParams::apply("op"), &Patch::Apply(&body))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.starts_with("configmaps \"c\" is forbidden"),
        "{}",
        status.message
    );
    // Once the object exists, patch alone is enough.
    let admin: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    admin
        .create(
            &PostParams::default(),
            &serde_json::from_value(body.clone()).unwrap(),
        )
        .await
        .unwrap();
    cms.patch("c", &PatchParams::apply("op"), &Patch::Apply(&body))
        .await
        .unwrap();
    h.shutdown().await;
}

#[tokio::test]
async fn self_subject_access_reviews_answer_for_the_caller() {
    let h = start().await;
    let token = service_account(&h, "default", "op").await;
    apply(
        &h,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "evict"},
               "rules": [{"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]}),
    )
    .await;
    apply(
        &h,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "evict"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "evict"},
               "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "default"}]}),
    )
    .await;
    let reviews: Api<SelfSubjectAccessReview> = Api::all(h.client_with_token(&token).unwrap());
    let ask = |verb: &str, sub: Option<&str>| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("d".into()),
                verb: Some(verb.into()),
                resource: Some("pods".into()),
                subresource: sub.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let yes = reviews
        .create(&PostParams::default(), &ask("create", Some("eviction")))
        .await
        .unwrap();
    assert!(yes.status.unwrap().allowed);
    let no = reviews
        .create(&PostParams::default(), &ask("delete", None))
        .await
        .unwrap();
    assert!(!no.status.unwrap().allowed);
    h.shutdown().await;
}

fn kubectl_available() -> bool {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl not found (required in CI)"
        );
        println!("skipped: kubectl not found");
    }
    found
}

async fn kubectl(
    dir: &std::path::Path,
    kubeconfig: &PathBuf,
    args: &[&str],
) -> (bool, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", dir)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_creates_tokens_and_asks_can_i() {
    if !kubectl_available() {
        return;
    }
    // kubectl (clientcmd) only sends credentials over HTTPS.
    let h = Cluster::start(ClusterConfig {
        auth: true,
        tls: true,
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("kubesim-auth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let admin = dir.join("admin");
    h.write_kubeconfig(&admin).unwrap();
    service_account(&h, "default", "op").await;
    let (ok, token, err) = kubectl(&dir, &admin, &["create", "token", "op"]).await;
    assert!(ok, "{err}");
    let sa = dir.join("sa");
    std::fs::write(&sa, h.kubeconfig_with_token(token.trim()).unwrap()).unwrap();
    let (ok, out, err) = kubectl(
        &dir,
        &sa,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "system:serviceaccount:default:op");
    let (ok, out, _) = kubectl(&dir, &sa, &["auth", "can-i", "list", "pods"]).await;
    assert!(!ok);
    assert_eq!(out.trim(), "no");
    let (ok, _, err) = kubectl(&dir, &sa, &["get", "pods"]).await;
    assert!(!ok);
    assert!(
        err.contains("Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:default:op\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    // kubectl's typed `create clusterrole|rolebinding` send protobuf bodies.
    for args in [
        &[
            "create",
            "clusterrole",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ][..],
        &[
            "create",
            "rolebinding",
            "op-reads-pods",
            "--clusterrole=pod-reader",
            "--serviceaccount=default:op",
        ],
    ] {
        let (ok, _, err) = kubectl(&dir, &admin, args).await;
        assert!(ok, "kubectl {args:?}: {err}");
    }
    let (ok, out, err) = kubectl(
        &dir,
        &admin,
        &["get", "rolebinding", "op-reads-pods", "-o", "json"],
    )
    .await;
    assert!(ok, "{err}");
    let rb: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (rb["roleRef"].clone(), rb["subjects"].clone()),
        (
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"}),
            json!([{"kind": "ServiceAccount", "name": "op", "namespace": "default"}])
        )
    );
    let (ok, out, _) = kubectl(&dir, &sa, &["auth", "can-i", "list", "pods"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "yes");
    let (ok, out, _) = kubectl(
        &dir,
        &sa,
        &["auth", "can-i", "list", "pods", "-n", "kube-system"],
    )
    .await;
    assert!(!ok, "{out}");
    let (ok, _, err) = kubectl(&dir, &sa, &["get", "pods"]).await;
    assert!(ok, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    h.shutdown().await;
}
