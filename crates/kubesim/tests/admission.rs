//! Admission webhooks against a real HTTPS webhook server run by the test
//! (axum + rustls, its CA and certificate made with rcgen): JSONPatch
//! injection into the pods the StatefulSet controller creates, selectors and
//! matchConditions, failure policies, reinvocation, denials and warnings as
//! kubectl shows them, `pods/eviction`, configuration validation, metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubesim::testing::kubectl as kubectl_support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::Path, extract::State, routing::post};
use base64::Engine;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Namespace, Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::api::{Api, DeleteParams, EvictParams, PostParams};
use kubectl_support::{Kubectl, kubectl_available};
use kubesim::cluster::ClusterConfig;
use serde_json::{Value, json};

/// What the webhook server saw: requests per path; and a client the
/// `interfere` webhook writes with (once) while it is being called.
#[derive(Clone, Default)]
struct Seen(
    Arc<Mutex<HashMap<String, Vec<Value>>>>,
    Arc<Mutex<Option<kube::Client>>>,
);

impl Seen {
    fn count(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).map_or(0, Vec::len)
    }
    fn requests(&self, path: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

/// A webhook server on 127.0.0.1 with a certificate for `localhost`,
/// `127.0.0.1` and `hooks.webhooks.svc`.
struct WebhookServer {
    addr: SocketAddr,
    ca_bundle: String,
    seen: Seen,
    handle: axum_server::Handle,
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn patch(ops: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(ops.to_string())
}

fn labels(obj: &Value) -> serde_json::Map<String, Value> {
    obj["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// The webhooks' behaviour by path.
async fn review(
    State(seen): State<Seen>,
    Path(path): Path<String>,
    Json(review): Json<Value>,
) -> Json<Value> {
    let mut req = review["request"].clone();
    req["reviewApiVersion"] = review["apiVersion"].clone();
    seen.0
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default()
        .push(req.clone());
    let uid = req["uid"].clone();
    let obj = &req["object"];
    let calls = seen.count(&path);
    let mut resp = json!({"uid": uid, "allowed": true});
    match path.as_str() {
        "inject" => {
            let mut ops = vec![json!({"op": "add", "path": "/spec/containers/-",
                "value": {"name": "sidecar", "image": "proxy:1"}})];
            if obj["metadata"]["labels"].is_object() {
                ops.push(
                    json!({"op": "add", "path": "/metadata/labels/injected", "value": "true"}),
                );
            } else {
                ops.push(
                    json!({"op": "add", "path": "/metadata/labels", "value": {"injected": "true"}}),
                );
            }
            resp["patchType"] = json!("JSONPatch");
            resp["patch"] = json!(patch(&Value::Array(ops)));
        }
        "label-a" => {
            // Adds `a`, and `a-saw-b` once it sees the label the other webhook adds.
            let l = labels(obj);
            let mut ops = vec![];
            if l.is_empty() {
                ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
            }
            if !l.contains_key("a") {
                ops.push(json!({"op": "add", "path": "/metadata/labels/a", "value": "true"}));
            }
            if l.contains_key("b") && !l.contains_key("a-saw-b") {
                ops.push(json!({"op": "add", "path": "/metadata/labels/a-saw-b", "value": "true"}));
            }
            if !ops.is_empty() {
                resp["patchType"] = json!("JSONPatch");
                resp["patch"] = json!(patch(&Value::Array(ops)));
            }
        }
        "label-b" if !labels(obj).contains_key("b") => {
            resp["patchType"] = json!("JSONPatch");
            resp["patch"] = json!(patch(&json!([
                {"op": "add", "path": "/metadata/labels/b", "value": "true"}
            ])));
        }
        "deny"
            if obj["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("forbidden")) =>
        {
            resp["allowed"] = json!(false);
            resp["status"] =
                json!({"code": 403, "message": "pods named forbidden-* are not allowed"});
        }
        "warn" => {
            resp["warnings"] = json!(["images should be pinned by digest"]);
            resp["auditAnnotations"] = json!({"checked": "yes"});
        }
        "deny-status" => {
            resp["allowed"] = json!(false);
            resp["status"] = json!({"code": 403, "message": "status frozen"});
        }
        "deny-eviction" => {
            resp["allowed"] = json!(false);
            resp["status"] =
                json!({"code": 422, "message": "evictions are paused for maintenance"});
        }
        "cap-replicas" if obj["spec"]["replicas"].as_i64().is_some_and(|r| r > 3) => {
            resp["patchType"] = json!("JSONPatch");
            resp["patch"] = json!(patch(&json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3}
            ])));
            resp["warnings"] = json!(["replicas capped at 3"]);
        }
        "interfere" => {
            // The first call writes the same pod while its update is being admitted.
            let client = seen.1.lock().unwrap().take();
            if let Some(c) = client {
                let pods: Api<Pod> = Api::namespaced(c, "default");
                let name = req["name"].as_str().unwrap_or_default().to_owned();
                pods.patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(
                        json!({"metadata": {"annotations": {"side": "written"}}}),
                    ),
                )
                .await
                .unwrap();
            }
            resp["patchType"] = json!("JSONPatch");
            resp["patch"] = json!(patch(&json!([
                {"op": "add", "path": "/metadata/labels/admitted", "value": calls.to_string()}
            ])));
        }
        "wrong-uid" => resp["uid"] = json!("nope"),
        "sleep" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        _ => {}
    }
    Json(json!({"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": resp}))
}

impl WebhookServer {
    async fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "webhook-ca");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "hooks.webhooks.svc".to_owned(),
        ])
        .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let seen = Seen::default();
        let app = Router::new()
            .route("/{path}", post(review))
            .with_state(seen.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = axum_server::Handle::new();
        let srv = axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg)),
        )
        .handle(handle.clone());
        tokio::spawn(async move {
            srv.serve(app.into_make_service()).await.unwrap();
        });
        WebhookServer {
            addr,
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca_cert.pem()),
            seen,
            handle,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.addr.port())
    }

    /// `clientConfig` by URL.
    fn by_url(&self, path: &str) -> Value {
        json!({"url": self.url(path), "caBundle": self.ca_bundle})
    }
}

fn pods_rule() -> Value {
    json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
}

fn mutating(name: &str, hooks: Vec<Value>) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
           "metadata": {"name": name}, "webhooks": hooks})
}

fn validating(name: &str, hooks: Vec<Value>) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": name}, "webhooks": hooks})
}

fn hook(name: &str, client_config: Value, rules: Value) -> Value {
    json!({"name": name, "clientConfig": client_config, "rules": rules,
           "sideEffects": "None", "admissionReviewVersions": ["v1"]})
}

fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]}
    }))
    .unwrap()
}

async fn create_namespace(k: &Kubectl, name: &str, labels: Value) {
    let nss: Api<Namespace> = Api::all(k.h.client());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
    )
    .await
    .unwrap();
}

async fn apply_json(k: &Kubectl, obj: &Value) -> kubectl_support::Output {
    k.run(&["apply", "-f", "-"], Some(&obj.to_string())).await
}

/// Creates a configuration through the API (as `kubectl apply` would).
async fn create_config(k: &Kubectl, obj: &Value) {
    let o = apply_json(k, obj).await;
    assert!(o.ok, "applying {obj} failed: {}", o.stderr);
}

async fn eventually<F: Fn() -> Fut, Fut: std::future::Future<Output = bool>>(what: &str, f: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A one-container pod named `name`, as YAML for `kubectl apply`.
fn pod_manifest(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: app\n    image: app:1\n"
    )
}

/// kubesim with one validating webhook `hook_name` (configuration `config`) on pod CREATE served
/// at `path`, and the result of `kubectl apply` of a pod named `pod`.
async fn kubectl_apply_pod_under(
    config: &str,
    hook_name: &str,
    path: &str,
    pod: &str,
) -> (Kubectl, WebhookServer, kubectl_support::Output) {
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    create_config(
        &k,
        &validating(config, vec![hook(hook_name, w.by_url(path), pods_rule())]),
    )
    .await;
    let o = k.run(&["apply", "-f", "-"], Some(&pod_manifest(pod))).await;
    (k, w, o)
}

fn container_names(p: &Pod) -> Vec<String> {
    p.spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn pods_created_by_the_statefulset_controller_carry_the_injected_sidecar() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start_with(ClusterConfig {
        simulate: true,
        ..ClusterConfig::default()
    })
    .await;
    let w = WebhookServer::start().await;
    // The webhook is reached through a Service and its EndpointSlice.
    create_namespace(&k, "webhooks", json!({})).await;
    let services: Api<Service> = Api::namespaced(k.h.client(), "webhooks");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "hooks"},
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": w.addr.port()}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(k.h.client(), "webhooks");
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "hooks-1", "labels": {"kubernetes.io/service-name": "hooks"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": w.addr.port(), "protocol": "TCP"}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let mut h = hook(
        "inject.sidecar.example.com",
        json!({"service": {"namespace": "webhooks", "name": "hooks", "path": "/inject"},
               "caBundle": w.ca_bundle}),
        pods_rule(),
    );
    h["objectSelector"] = json!({"matchLabels": {"app": "web"}});
    create_config(&k, &mutating("sidecar-injector", vec![h])).await;
    let sets: Api<StatefulSet> = Api::namespaced(k.h.client(), "default");
    sets.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "serviceName": "web",
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");
    eventually("both pods of the StatefulSet", || async {
        pods.get_opt("web-1").await.unwrap().is_some()
    })
    .await;
    for name in ["web-0", "web-1"] {
        let p = pods.get(name).await.unwrap();
        assert_eq!(container_names(&p), ["app", "sidecar"], "{name}");
        let l = p.metadata.labels.unwrap();
        assert_eq!(l.get("injected").map(String::as_str), Some("true"));
        assert_eq!(l.get("app").map(String::as_str), Some("web"));
    }
    let reqs = w.seen.requests("inject");
    let creates: Vec<&Value> = reqs.iter().filter(|r| r["operation"] == "CREATE").collect();
    assert_eq!(creates.len(), 2, "{reqs:?}");
    for r in creates {
        assert_eq!(
            r["userInfo"]["username"],
            "system:serviceaccount:kube-system:statefulset-controller"
        );
        assert_eq!(
            r["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(r["namespace"], "default");
        assert_eq!(r["options"]["kind"], "CreateOptions");
    }
}

#[tokio::test]
async fn selectors_that_miss_keep_the_webhook_uncalled() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    create_namespace(&k, "on", json!({"webhooks": "on"})).await;
    create_namespace(&k, "off", json!({})).await;
    let mut h = hook(
        "inject.selectors.example.com",
        w.by_url("inject"),
        pods_rule(),
    );
    h["namespaceSelector"] = json!({"matchLabels": {"webhooks": "on"}});
    h["objectSelector"] =
        json!({"matchExpressions": [{"key": "inject", "operator": "In", "values": ["yes"]}]});
    create_config(&k, &mutating("selectors", vec![h])).await;
    let on: Api<Pod> = Api::namespaced(k.h.client(), "on");
    let off: Api<Pod> = Api::namespaced(k.h.client(), "off");
    let p = on
        .create(&PostParams::default(), &pod("unlabelled", json!({})))
        .await
        .unwrap();
    assert_eq!(container_names(&p), ["app"]);
    let p = off
        .create(
            &PostParams::default(),
            &pod("other-ns", json!({"inject": "yes"})),
        )
        .await
        .unwrap();
    assert_eq!(container_names(&p), ["app"]);
    assert_eq!(
        w.seen.count("inject"),
        0,
        "the webhook was called for a miss"
    );
    let p = on
        .create(
            &PostParams::default(),
            &pod("selected", json!({"inject": "yes"})),
        )
        .await
        .unwrap();
    assert_eq!(container_names(&p), ["app", "sidecar"]);
    assert_eq!(w.seen.count("inject"), 1);
    // NamespaceLifecycle comes first: no webhook call for a missing namespace.
    let missing: Api<Pod> = Api::namespaced(k.h.client(), "missing");
    let err = missing
        .create(
            &PostParams::default(),
            &pod("nowhere", json!({"inject": "yes"})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err}"
    );
    let mut everywhere = hook(
        "inject.everywhere.example.com",
        w.by_url("inject"),
        pods_rule(),
    );
    everywhere["objectSelector"] = json!({"matchLabels": {"inject": "yes"}});
    create_config(&k, &mutating("everywhere", vec![everywhere])).await;
    let err = missing
        .create(
            &PostParams::default(),
            &pod("nowhere", json!({"inject": "yes"})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err}"
    );
    assert_eq!(w.seen.count("inject"), 1);
    k.ok(&["delete", "mutatingwebhookconfiguration", "everywhere"])
        .await;
    // Deleting the configuration takes effect at once.
    k.ok(&["delete", "mutatingwebhookconfiguration", "selectors"])
        .await;
    let p = on
        .create(
            &PostParams::default(),
            &pod("after-delete", json!({"inject": "yes"})),
        )
        .await
        .unwrap();
    assert_eq!(container_names(&p), ["app"]);
    assert_eq!(w.seen.count("inject"), 1);
}

#[tokio::test]
async fn a_false_match_condition_skips_the_webhook() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    let mut h = hook(
        "inject.conditions.example.com",
        w.by_url("inject"),
        pods_rule(),
    );
    h["matchConditions"] = json!([
        {"name": "not-skipped", "expression": "object.metadata.name != 'skip-me'"},
        {"name": "is-create", "expression": "request.operation == 'CREATE' && oldObject == null"}
    ]);
    create_config(&k, &mutating("conditions", vec![h])).await;
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("skip-me", json!({})))
        .await
        .unwrap();
    assert_eq!(container_names(&p), ["app"]);
    assert_eq!(w.seen.count("inject"), 0);
    let p = pods
        .create(&PostParams::default(), &pod("take-me", json!({})))
        .await
        .unwrap();
    assert_eq!(container_names(&p), ["app", "sidecar"]);
    assert_eq!(w.seen.count("inject"), 1);

    // A condition that cannot be evaluated (kubesim binds no `authorizer`):
    // `failurePolicy: Fail` refuses the request, `Ignore` skips the webhook.
    k.ok(&["delete", "mutatingwebhookconfiguration", "conditions"])
        .await;
    let cond = json!([{"name": "authz", "expression": "authorizer.serviceAccount('x', 'y').group('').resource('pods').check('create').allowed()"}]);
    let mut fail = hook(
        "inject.authz-fail.example.com",
        w.by_url("inject"),
        pods_rule(),
    );
    fail["matchConditions"] = cond.clone();
    fail["objectSelector"] = json!({"matchLabels": {"case": "fail"}});
    let mut ignore = hook(
        "inject.authz-ignore.example.com",
        w.by_url("inject"),
        pods_rule(),
    );
    ignore["matchConditions"] = cond;
    ignore["failurePolicy"] = json!("Ignore");
    ignore["objectSelector"] = json!({"matchLabels": {"case": "ignore"}});
    create_config(&k, &mutating("authz", vec![fail, ignore])).await;
    let err = pods
        .create(
            &PostParams::default(),
            &pod("authz-fail", json!({"case": "fail"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!(s.code, 403);
    assert!(
        s.message.starts_with(
            "pods \"authz-fail\" is forbidden: expression 'authorizer.serviceAccount('x', 'y')"
        ),
        "{}",
        s.message
    );
    let p = pods
        .create(
            &PostParams::default(),
            &pod("authz-ignore", json!({"case": "ignore"})),
        )
        .await
        .unwrap();
    assert_eq!(container_names(&p), ["app"]);
    assert_eq!(w.seen.count("inject"), 1);
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn failure_policy_decides_when_the_webhook_is_down_or_too_slow() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    let port = closed_port();
    let down = json!({"url": format!("https://127.0.0.1:{port}/"), "caBundle": w.ca_bundle});
    let mut fail = hook("down.fail.example.com", down.clone(), pods_rule());
    fail["failurePolicy"] = json!("Fail");
    fail["objectSelector"] = json!({"matchLabels": {"case": "down-fail"}});
    let mut ignore = hook("down.ignore.example.com", down, pods_rule());
    ignore["failurePolicy"] = json!("Ignore");
    ignore["objectSelector"] = json!({"matchLabels": {"case": "down-ignore"}});
    let mut slow_fail = hook("slow.fail.example.com", w.by_url("sleep"), pods_rule());
    slow_fail["timeoutSeconds"] = json!(1);
    slow_fail["objectSelector"] = json!({"matchLabels": {"case": "slow-fail"}});
    let mut slow_ignore = hook("slow.ignore.example.com", w.by_url("sleep"), pods_rule());
    slow_ignore["timeoutSeconds"] = json!(1);
    slow_ignore["failurePolicy"] = json!("Ignore");
    slow_ignore["objectSelector"] = json!({"matchLabels": {"case": "slow-ignore"}});
    create_config(
        &k,
        &validating("policies", vec![fail, ignore, slow_fail, slow_ignore]),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");

    let err = pods
        .create(
            &PostParams::default(),
            &pod("down-fail", json!({"case": "down-fail"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!(s.code, 500);
    assert_eq!(
        s.message,
        format!(
            "Internal error occurred: failed calling webhook \"down.fail.example.com\": failed to call webhook: Post \"https://127.0.0.1:{port}/?timeout=10s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
    assert!(pods.get_opt("down-fail").await.unwrap().is_none());

    pods.create(
        &PostParams::default(),
        &pod("down-ignore", json!({"case": "down-ignore"})),
    )
    .await
    .unwrap();

    let err = pods
        .create(
            &PostParams::default(),
            &pod("slow-fail", json!({"case": "slow-fail"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!(
        s.message,
        format!(
            "Internal error occurred: failed calling webhook \"slow.fail.example.com\": failed to call webhook: Post \"{}?timeout=1s\": context deadline exceeded",
            w.url("sleep")
        )
    );
    pods.create(
        &PostParams::default(),
        &pod("slow-ignore", json!({"case": "slow-ignore"})),
    )
    .await
    .unwrap();
    assert_eq!(w.seen.count("sleep"), 2);
}

#[tokio::test]
async fn kubectl_apply_shows_the_webhooks_denial_and_metrics_count_it() {
    if !kubectl_available() {
        return;
    }
    let (k, w, o) =
        kubectl_apply_pod_under("deny", "deny.names.example.com", "deny", "forbidden-1").await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains(
            "pods \"forbidden-1\" is forbidden: admission webhook \"deny.names.example.com\" denied the request: pods named forbidden-* are not allowed"
        ),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Error from server (Forbidden)"),
        "{}",
        o.stderr
    );
    k.ok_in(&["apply", "-f", "-"], Some(&pod_manifest("fine")))
        .await;
    // The webhook saw the validated object: defaults applied, uid set.
    let reqs = w.seen.requests("deny");
    let fine = reqs.iter().find(|r| r["name"] == "fine").unwrap();
    assert_eq!(fine["object"]["spec"]["restartPolicy"], "Always");
    assert!(fine["object"]["metadata"]["uid"].is_string());
    // Metrics.
    let text =
        k.h.client()
            .request_text(http::Request::get("/metrics").body(vec![]).unwrap())
            .await
            .unwrap();
    assert!(
        text.contains(
            "apiserver_admission_webhook_rejection_count{name=\"deny.names.example.com\",type=\"validating\",operation=\"CREATE\",error_type=\"no_error\",rejection_code=\"403\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "apiserver_admission_webhook_admission_duration_seconds_count{name=\"deny.names.example.com\",type=\"validating\",operation=\"CREATE\",rejected=\"false\"} 1"
        ),
        "{text}"
    );
    // The configuration prints as a table.
    let table = k.ok(&["get", "validatingwebhookconfigurations"]).await;
    assert!(table.contains("WEBHOOKS"), "{table}");
    assert!(table.contains("deny "), "{table}");
}

#[tokio::test]
async fn a_later_mutation_reinvokes_an_if_needed_webhook_once() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    let mut a = hook("a.labels.example.com", w.by_url("label-a"), pods_rule());
    a["reinvocationPolicy"] = json!("IfNeeded");
    // Configurations run in name order: "1-a" before "2-b".
    create_config(&k, &mutating("1-a", vec![a])).await;
    create_config(
        &k,
        &mutating(
            "2-b",
            vec![hook(
                "b.labels.example.com",
                w.by_url("label-b"),
                pods_rule(),
            )],
        ),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("relabelled", json!({})))
        .await
        .unwrap();
    let l = p.metadata.labels.unwrap();
    for key in ["a", "b", "a-saw-b"] {
        assert_eq!(l.get(key).map(String::as_str), Some("true"), "{key}: {l:?}");
    }
    assert_eq!(w.seen.count("label-a"), 2);
    assert_eq!(w.seen.count("label-b"), 1);
    // Without IfNeeded the first webhook runs once and misses the label.
    k.ok(&["delete", "mutatingwebhookconfiguration", "1-a"])
        .await;
    let a = hook("a.labels.example.com", w.by_url("label-a"), pods_rule());
    create_config(&k, &mutating("1-a", vec![a])).await;
    let p = pods
        .create(&PostParams::default(), &pod("once", json!({})))
        .await
        .unwrap();
    let l = p.metadata.labels.unwrap();
    assert!(
        l.contains_key("a") && l.contains_key("b") && !l.contains_key("a-saw-b"),
        "{l:?}"
    );
    assert_eq!(w.seen.count("label-a"), 3);
}

#[tokio::test]
async fn kubectl_prints_the_webhooks_warnings() {
    if !kubectl_available() {
        return;
    }
    let (_k, w, o) =
        kubectl_apply_pod_under("warn", "warn.images.example.com", "warn", "warned").await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("Warning: images should be pinned by digest"),
        "{}",
        o.stderr
    );
    assert_eq!(w.seen.count("warn"), 1);
}

#[tokio::test]
async fn a_validating_webhook_on_pods_eviction_denies_the_eviction() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start_with(ClusterConfig {
        simulate: true,
        ..ClusterConfig::default()
    })
    .await;
    let w = WebhookServer::start().await;
    let rules = json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["pods/eviction"]}]);
    create_config(
        &k,
        &validating(
            "evictions",
            vec![hook(
                "evictions.example.com",
                w.by_url("deny-eviction"),
                rules,
            )],
        ),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");
    pods.create(&PostParams::default(), &pod("victim", json!({})))
        .await
        .unwrap();
    // A plain pod create does not match `pods/eviction`.
    assert_eq!(w.seen.count("deny-eviction"), 0);
    let err = pods
        .evict("victim", &EvictParams::default())
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!(s.code, 422);
    assert_eq!(
        s.message,
        "pods \"victim\" is forbidden: admission webhook \"evictions.example.com\" denied the request: evictions are paused for maintenance"
    );
    let reqs = w.seen.requests("deny-eviction");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["operation"], "CREATE");
    assert_eq!(reqs[0]["subResource"], "eviction");
    assert_eq!(
        reqs[0]["kind"],
        json!({"group": "policy", "version": "v1", "kind": "Eviction"})
    );
    assert_eq!(
        reqs[0]["resource"],
        json!({"group": "", "version": "v1", "resource": "pods"})
    );
    assert!(pods.get_opt("victim").await.unwrap().is_some());
    // Deleting the pod directly is not an eviction.
    pods.delete("victim", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn invalid_configurations_are_rejected_naming_the_field() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let bad = mutating(
        "bad",
        vec![
            json!({"name": "short", "clientConfig": {"url": "http://example.com/x?y=1"},
                   "rules": [{"operations": ["CREATE", "*"], "apiGroups": [""], "apiVersions": ["v1"],
                              "resources": ["*/*", "pods"], "scope": "Somewhere"}],
                   "timeoutSeconds": 31}),
            json!({"name": "dup.example.com", "clientConfig": {},
                   "sideEffects": "Some", "admissionReviewVersions": ["v1"]}),
            json!({"name": "dup.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                   "clientConfig": {"service": {"namespace": "x", "name": "y", "path": "no-slash"}},
                   "matchConditions": [{"name": "c", "expression": "object.metadata.name =="}]}),
        ],
    );
    let o = apply_json(&k, &bad).await;
    assert!(!o.ok);
    let expected = [
        // kubectl rewrites the 422's message from its causes.
        "The MutatingWebhookConfiguration \"bad\" is invalid:",
        "webhooks[0].name: Invalid value: \"short\": should be a domain with at least three segments separated by dots",
        "webhooks[0].rules[0].operations: Invalid value: []string{\"CREATE\", \"*\"}: if '*' is present, must not specify other operations",
        "webhooks[0].rules[0].resources: Invalid value: []string{\"*/*\", \"pods\"}: if '*/*' is present, must not specify other resources",
        "webhooks[0].rules[0].scope: Unsupported value: \"Somewhere\": supported values: \"*\", \"Cluster\", \"Namespaced\"",
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
        "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
        "webhooks[0].clientConfig.url: Invalid value: \"y=1\": query parameters are not permitted in the URL",
        "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
        "webhooks[1].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
        "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
        "webhooks[2].clientConfig.service.path: Invalid value: \"no-slash\": must start with a '/'",
        "webhooks[2].matchConditions[0].expression: Invalid value: \"object.metadata.name ==\": compilation failed",
        "webhooks[2].name: Duplicate value: \"dup.example.com\"",
    ];
    for e in expected {
        assert!(o.stderr.contains(e), "missing {e:?} in:\n{}", o.stderr);
    }
    assert!(
        k.run(&["get", "mutatingwebhookconfiguration", "bad"], None)
            .await
            .stderr
            .contains("NotFound")
    );
    // A valid one is stored with upstream's defaults.
    let good = mutating(
        "good",
        vec![hook(
            "good.example.com",
            json!({"service": {"namespace": "x", "name": "y"}}),
            pods_rule(),
        )],
    );
    create_config(&k, &good).await;
    let v = k
        .json(&["get", "mutatingwebhookconfiguration", "good", "-o", "json"])
        .await;
    let h = &v["webhooks"][0];
    assert_eq!(h["failurePolicy"], "Fail");
    assert_eq!(h["matchPolicy"], "Equivalent");
    assert_eq!(h["timeoutSeconds"], 10);
    assert_eq!(h["reinvocationPolicy"], "Never");
    assert_eq!(h["namespaceSelector"], json!({}));
    assert_eq!(h["rules"][0]["scope"], "*");
    assert_eq!(h["clientConfig"]["service"]["port"], 443);
}

#[tokio::test]
async fn dry_run_requests_reach_webhooks_flagged_and_store_nothing() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    let mut h = hook("inject.dryrun.example.com", w.by_url("inject"), pods_rule());
    h["sideEffects"] = json!("NoneOnDryRun");
    create_config(&k, &mutating("dry", vec![h])).await;
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dry\nspec:\n  containers:\n  - name: app\n    image: app:1\n";
    let out = k
        .ok_in(
            &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
            Some(manifest),
        )
        .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["spec"]["containers"][1]["name"], "sidecar");
    let reqs = w.seen.requests("inject");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["dryRun"], true);
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");
    assert!(pods.get_opt("dry").await.unwrap().is_none());
}

#[tokio::test]
async fn a_mutating_webhook_on_the_scale_subresource_caps_kubectl_scale() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    let rules = json!([{"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                        "resources": ["statefulsets/scale"]}]);
    create_config(
        &k,
        &mutating(
            "cap",
            vec![hook(
                "cap.scale.example.com",
                w.by_url("cap-replicas"),
                rules,
            )],
        ),
    )
    .await;
    let sets: Api<StatefulSet> = Api::namespaced(k.h.client(), "default");
    sets.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "serviceName": "web",
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    // The StatefulSet write itself is not `statefulsets/scale`.
    assert_eq!(w.seen.count("cap-replicas"), 0);
    let o = k
        .run(&["scale", "statefulset", "web", "--replicas=10"], None)
        .await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stderr.contains("Warning: replicas capped at 3"),
        "{}",
        o.stderr
    );
    let set = sets.get("web").await.unwrap();
    assert_eq!(set.spec.unwrap().replicas, Some(3));
    let reqs = w.seen.requests("cap-replicas");
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(r["operation"], "UPDATE");
    assert_eq!(r["subResource"], "scale");
    assert_eq!(
        r["kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(r["object"]["spec"]["replicas"], 10);
    assert_eq!(r["oldObject"]["spec"]["replicas"], 1);
}

#[tokio::test]
async fn an_update_changed_while_being_admitted_is_admitted_again() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    let rules = json!([{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                        "resources": ["pods"]}]);
    create_config(
        &k,
        &mutating(
            "interfere",
            vec![hook("interfere.example.com", w.by_url("interfere"), rules)],
        ),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");
    pods.create(
        &PostParams::default(),
        &pod("contended", json!({"app": "x"})),
    )
    .await
    .unwrap();
    *w.seen.1.lock().unwrap() = Some(k.h.client());
    let p = pods
        .patch(
            "contended",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    // Call 1 admits the patch and makes the side write, itself an admitted
    // UPDATE (call 2). The pod changed under the patch, so the patch is
    // applied to the new pod and admitted again (call 3): nothing is lost.
    let l = p.metadata.labels.unwrap();
    let a = p.metadata.annotations.unwrap();
    assert_eq!(l.get("touch").map(String::as_str), Some("1"));
    assert_eq!(a.get("side").map(String::as_str), Some("written"));
    assert_eq!(
        w.seen.count("interfere"),
        3,
        "{:?}",
        w.seen.requests("interfere")
    );
    assert_eq!(l.get("admitted").map(String::as_str), Some("3"));
}

#[tokio::test]
async fn review_versions_and_response_checks_follow_upstream() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let w = WebhookServer::start().await;
    let mut beta = hook("inject.beta.example.com", w.by_url("inject"), pods_rule());
    beta["admissionReviewVersions"] = json!(["v1beta1"]);
    beta["objectSelector"] = json!({"matchLabels": {"case": "beta"}});
    create_config(&k, &mutating("beta", vec![beta])).await;
    let mut uid = hook("uid.example.com", w.by_url("wrong-uid"), pods_rule());
    uid["objectSelector"] = json!({"matchLabels": {"case": "uid"}});
    create_config(&k, &validating("uid", vec![uid])).await;
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");
    let p = pods
        .create(
            &PostParams::default(),
            &pod("beta", json!({"case": "beta"})),
        )
        .await
        .unwrap();
    assert_eq!(container_names(&p), ["app", "sidecar"]);
    assert_eq!(
        w.seen.requests("inject")[0]["reviewApiVersion"],
        "admission.k8s.io/v1beta1"
    );
    let err = pods
        .create(&PostParams::default(), &pod("uid", json!({"case": "uid"})))
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    // A caBundle without a PEM certificate is accepted by validation (as
    // upstream) and fails each call with client-go's text.
    let mut bad_ca = hook(
        "ca.example.com",
        json!({"url": w.url("inject"),
               "caBundle": base64::engine::general_purpose::STANDARD.encode("not a certificate")}),
        pods_rule(),
    );
    bad_ca["objectSelector"] = json!({"matchLabels": {"case": "ca"}});
    create_config(&k, &validating("ca", vec![bad_ca])).await;
    let err = pods
        .create(&PostParams::default(), &pod("ca", json!({"case": "ca"})))
        .await
        .unwrap_err();
    let kube::Error::Api(ca) = err else {
        panic!("{err}")
    };
    assert_eq!(
        ca.message,
        "Internal error occurred: failed calling webhook \"ca.example.com\": could not get REST client: unable to load root certificates: unable to parse bytes as PEM block"
    );
    let sent = w.seen.requests("wrong-uid")[0]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.message,
        format!(
            "Internal error occurred: failed calling webhook \"uid.example.com\": expected response.uid=\"{sent}\", got \"nope\""
        )
    );
}

#[tokio::test]
async fn the_kubelets_and_the_endpointslice_controllers_writes_are_admitted() {
    let k = kubesim::cluster::Cluster::start(ClusterConfig {
        simulate: true,
        speed: 20.0,
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    let client = k.client();
    let w = WebhookServer::start().await;
    let configs: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        )),
    );
    let mut frozen = hook(
        "status.freeze.example.com",
        w.by_url("deny-status"),
        json!([{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods/status"]}]),
    );
    frozen["objectSelector"] = json!({"matchLabels": {"hold": "true"}});
    configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(validating("freeze", vec![frozen])).unwrap(),
        )
        .await
        .unwrap();
    let mutating_configs: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
        )),
    );
    mutating_configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(mutating(
                "slices",
                vec![hook(
                    "slices.label.example.com",
                    w.by_url("label-b"),
                    json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": ["discovery.k8s.io"],
                            "apiVersions": ["v1"], "resources": ["endpointslices"]}]),
                )],
            ))
            .unwrap(),
        )
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("free", json!({"app": "web"})))
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &pod("held", json!({"app": "web", "hold": "true"})),
    )
    .await
    .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
            .unwrap(),
        )
        .await
        .unwrap();

    // The free pod's kubelet writes go through: it runs and turns Ready.
    eventually("free to be Ready", || async {
        pods.get("free")
            .await
            .ok()
            .is_some_and(|p| kubesim::controllers::is_pod_ready(&p))
    })
    .await;
    // The held pod's kubelet is refused each status write: it never runs.
    eventually(
        "the kubelet's status write for held to be refused",
        || async { w.seen.count("deny-status") > 0 },
    )
    .await;
    let held = pods.get("held").await.unwrap();
    let phase = held.status.as_ref().and_then(|s| s.phase.clone());
    assert_ne!(phase.as_deref(), Some("Running"), "{held:?}");
    assert!(!kubesim::controllers::is_pod_ready(&held));
    let reqs = w.seen.requests("deny-status");
    assert!(
        reqs.iter().all(|r| r["name"] == "held"
            && r["subResource"] == "status"
            && r["userInfo"]["username"]
                .as_str()
                .is_some_and(|u| u.starts_with("system:node:"))
            && r["userInfo"]["groups"]
                .as_array()
                .is_some_and(|g| g.contains(&json!("system:nodes")))),
        "{reqs:?}"
    );

    // The EndpointSlice controller's slice was admitted and mutated.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    eventually(
        "the service's slice to carry the webhook's label",
        || async {
            slices
                .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .ok()
                .is_some_and(|l| {
                    l.items.iter().any(|e| {
                        e.metadata
                            .labels
                            .as_ref()
                            .is_some_and(|m| m.get("b").map(String::as_str) == Some("true"))
                    })
                })
        },
    )
    .await;
    let slice_reqs = w.seen.requests("label-b");
    assert!(
        slice_reqs.iter().any(|r| r["userInfo"]["username"]
            == "system:serviceaccount:kube-system:endpointslice-controller"),
        "{slice_reqs:?}"
    );
}
