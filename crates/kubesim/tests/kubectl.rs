//! Conformance through the real `kubectl` binary. Without kubectl these
//! tests fail when `CI` is set and otherwise print "skipped: kubectl not found".
#![allow(clippy::unwrap_used)]

#[path = "support/kubectl.rs"]
mod kubectl_support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kubectl_support::{Kubectl, kubectl_available, repo_file};
use serde_json::json;

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  serviceName: web
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1.27
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: demo
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: web}
"#;

const ROLLOUT: &str = r#"
apiVersion: sroll.io/v1alpha1
kind: StatefulsetRollout
metadata:
  name: web
  namespace: demo
spec:
  percent: 50
  sts:
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: web}
    spec:
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: c, image: "nginx:1.27"}]}
"#;

#[tokio::test]
async fn kubectl_applies_gets_labels_patches_scales_and_deletes() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    // A custom resource can only be mapped once its CRD is served (as on a
    // real cluster): the CRD goes in first, then the whole file (which
    // carries the CRD again, unchanged) in one multi-document apply.
    let crd = std::fs::read_to_string(repo_file("deploy/crds/statefulsetrollouts.sroll.io.yaml"))
        .unwrap();
    k.ok_in(&["apply", "-f", "-"], Some(&crd)).await;
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/statefulsetrollouts.sroll.io",
        "--timeout=10s",
    ])
    .await;
    let all = format!("{MANIFEST}\n---\n{crd}\n---\n{ROLLOUT}");
    let out = k.ok_in(&["apply", "-f", "-"], Some(&all)).await;
    for created in [
        "namespace/demo created",
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created",
        "customresourcedefinition.apiextensions.k8s.io/statefulsetrollouts.sroll.io unchanged",
        "statefulset.apps/web created",
        "poddisruptionbudget.policy/web created",
        "statefulsetrollout.sroll.io/web created",
    ] {
        assert!(out.contains(created), "{created}: {out}");
    }
    let r = k
        .json(&[
            "get",
            "statefulsetrollouts",
            "web",
            "-n",
            "demo",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(r["spec"]["percent"], 50);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ])
    .await;

    // custom resources: created, printed with their columns, validated
    k.ok_in(
        &["apply", "-n", "demo", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n"),
    )
    .await;
    let table = k.ok(&["get", "wd", "-n", "demo"]).await;
    assert!(table.contains("SIZE") && table.contains("w1"), "{table}");
    let o = k
        .run(
            &["apply", "-n", "demo", "-f", "-"],
            Some(
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n",
            ),
        )
        .await;
    assert!(!o.ok);
    assert!(o.stderr.contains("spec.size"), "{}", o.stderr);

    // get in every form
    let pods = k.ok(&["get", "pods", "-A"]).await;
    assert!(pods.is_empty() || pods.contains("NAME"), "{pods}");
    let sts = k
        .json(&["get", "sts", "web", "-n", "demo", "-o", "json"])
        .await;
    assert_eq!(
        sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        0
    );
    let name = k
        .ok(&[
            "get",
            "sts",
            "-n",
            "demo",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
        .await;
    assert_eq!(name, "web");
    let yaml = k
        .ok(&["get", "pdb", "web", "-n", "demo", "-o", "yaml"])
        .await;
    assert!(yaml.contains("maxUnavailable: 1"), "{yaml}");

    // label, annotate, selectors
    k.ok(&["label", "sts", "web", "-n", "demo", "tier=front"])
        .await;
    k.ok(&["annotate", "sts", "web", "-n", "demo", "note=hello"])
        .await;
    let l = k
        .json(&["get", "sts", "-A", "-l", "tier=front", "-o", "json"])
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    assert_eq!(l["items"][0]["metadata"]["annotations"]["note"], "hello");
    let l = k
        .json(&["get", "sts", "-A", "-l", "tier!=front", "-o", "json"])
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 0);
    let l = k
        .json(&[
            "get",
            "sts",
            "-A",
            "--field-selector",
            "metadata.name=web",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);

    // patches of every type and scale
    k.ok(&[
        "patch",
        "sts",
        "web",
        "-n",
        "demo",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"m":"1"}}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "sts",
        "web",
        "-n",
        "demo",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "sts",
        "web",
        "-n",
        "demo",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx:1.28"}]}}}}"#,
    ])
    .await;
    k.ok(&["scale", "sts", "web", "-n", "demo", "--replicas=4"])
        .await;
    let s = k
        .json(&["get", "sts", "web", "-n", "demo", "-o", "json"])
        .await;
    assert_eq!(s["metadata"]["labels"]["m"], "1");
    assert_eq!(s["metadata"]["labels"]["j"], "2");
    assert_eq!(
        s["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    assert_eq!(s["spec"]["replicas"], 4);
    assert_eq!(s["metadata"]["generation"], 3);

    // server-side apply records the manager
    k.ok_in(
        &["apply", "--server-side", "-n", "demo", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: b}\n"),
    )
    .await;
    let cm = k
        .json(&[
            "get",
            "cm",
            "ssa",
            "-n",
            "demo",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(cm["metadata"]["managedFields"][0]["manager"], "kubectl");

    // cascading deletes: orphan keeps the pod (without its ownerReference), foreground removes it
    let uid = s["metadata"]["uid"].as_str().unwrap().to_string();
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "demo");
    let owned = |name: &str, uid: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": uid,
                                 "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
        .unwrap()
    };
    pods.create(&PostParams::default(), &owned("web-0", &uid))
        .await
        .unwrap();
    k.ok(&["delete", "sts", "web", "-n", "demo", "--cascade=orphan"])
        .await;
    let p = k
        .json(&["get", "pod", "web-0", "-n", "demo", "-o", "json"])
        .await;
    assert!(p["metadata"]["ownerReferences"].is_null(), "{p}");
    k.ok_in(&["apply", "-f", "-"], Some(MANIFEST)).await;
    let s = k
        .json(&["get", "sts", "web", "-n", "demo", "-o", "json"])
        .await;
    pods.create(
        &PostParams::default(),
        &owned("web-1", s["metadata"]["uid"].as_str().unwrap()),
    )
    .await
    .unwrap();
    k.ok(&[
        "delete",
        "sts",
        "web",
        "-n",
        "demo",
        "--cascade=foreground",
        "--timeout=20s",
    ])
    .await;
    let o = k.run(&["get", "pod", "web-1", "-n", "demo"], None).await;
    assert!(
        !o.ok,
        "the dependent should be gone after a foreground delete"
    );
    let o = k.run(&["get", "sts", "web", "-n", "demo"], None).await;
    assert!(!o.ok && o.stderr.contains("NotFound"), "{}", o.stderr);
}

#[tokio::test]
async fn kubectl_get_watch_sees_added_modified_and_deleted() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let mut c = k.command();
    c.args([
        "get",
        "configmaps",
        "-w",
        "--output-watch-events",
        "--request-timeout=30s",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // let the watch start
    tokio::time::sleep(Duration::from_millis(1500)).await;
    k.ok_in(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {a: b}\n"),
    )
    .await;
    k.ok(&["label", "cm", "c1", "z=1"]).await;
    k.ok(&["delete", "cm", "c1"]).await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    while !(seen.contains("ADDED") && seen.contains("MODIFIED") && seen.contains("DELETED")) {
        let n = tokio::time::timeout_at(deadline, stdout.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "watch ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("c1"), "{seen}");
    let _ = child.kill().await;
}

const GUARDED_SET: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  serviceName: web
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: "nginx:1.27"}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_raw_eviction_succeeds_then_gets_429_when_the_budget_is_spent() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start_with(kubesim::cluster::ClusterConfig {
        simulate: true,
        speed: 5.0,
        ..kubesim::cluster::ClusterConfig::default()
    })
    .await;
    k.ok_in(&["apply", "-f", "-"], Some(GUARDED_SET)).await;
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.disruptionsAllowed}=1",
        "pdb/web",
        "-n",
        "shop",
        "--timeout=60s",
    ])
    .await;
    // A finalizer keeps the evicted pod Terminating (so not healthy, and
    // not yet replaced): the budget stays spent however slow kubectl is.
    k.ok(&[
        "patch",
        "pod",
        "web-0",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await;
    let eviction = |pod: &str| {
        k.file(
            &format!("eviction-{pod}.json"),
            &json!({"apiVersion": "policy/v1", "kind": "Eviction",
                    "metadata": {"name": pod, "namespace": "shop"}})
            .to_string(),
        )
    };
    let first = eviction("web-0");
    let out = k
        .ok(&[
            "create",
            "--raw",
            "/api/v1/namespaces/shop/pods/web-0/eviction",
            "-f",
            &first,
        ])
        .await;
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["status"].as_str()),
        (Some("Status"), Some("Success")),
        "{out}"
    );
    let p = k
        .json(&["get", "pod", "web-0", "-n", "shop", "-o", "json"])
        .await;
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");

    let second = eviction("web-1");
    let o = k
        .run(
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/shop/pods/web-1/eviction",
                "-f",
                &second,
            ],
            None,
        )
        .await;
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(
        o.stderr.contains(
            "Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget."
        ),
        "{}",
        o.stderr
    );
    let p = k
        .json(&["get", "pod", "web-1", "-n", "shop", "-o", "json"])
        .await;
    assert!(p["metadata"]["deletionTimestamp"].is_null(), "{p}");
}

/// kubectl's typed `create` generators send protobuf bodies; kubesim decodes
/// them and the objects read back as created.
#[tokio::test]
async fn kubectl_create_generators_send_protobuf_that_kubesim_decodes() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    k.ok(&["create", "namespace", "shop"]).await;
    let ns = k.json(&["get", "namespace", "shop", "-o", "json"]).await;
    assert_eq!(ns["metadata"]["name"], "shop", "{ns}");
    assert!(ns["metadata"]["uid"].is_string(), "{ns}");

    k.ok(&[
        "create",
        "secret",
        "generic",
        "slack",
        "-n",
        "shop",
        "--from-literal=token=xoxb-123",
    ])
    .await;
    let s = k
        .json(&["get", "secret", "slack", "-n", "shop", "-o", "json"])
        .await;
    assert_eq!(s["type"], "Opaque", "{s}");
    assert_eq!(s["data"], json!({"token": "eG94Yi0xMjM="}), "{s}");

    k.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--from-literal=mode=fast",
        "--from-literal=empty=",
    ])
    .await;
    let cm = k
        .json(&["get", "configmap", "settings", "-n", "shop", "-o", "json"])
        .await;
    assert_eq!(cm["data"], json!({"mode": "fast", "empty": ""}), "{cm}");

    k.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "shop",
        "--image=nginx:1.27",
        "--replicas=0",
        "--port=8080",
    ])
    .await;
    let d = k
        .json(&["get", "deployment", "web", "-n", "shop", "-o", "json"])
        .await;
    assert_eq!(d["spec"]["replicas"], 0, "an explicit zero is kept: {d}");
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "{d}");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["name"].as_str(), c["image"].as_str()),
        (Some("nginx"), Some("nginx:1.27")),
        "{d}"
    );
    assert_eq!(
        (&c["ports"][0]["containerPort"], &c["ports"][0]["protocol"]),
        (&json!(8080), &json!("TCP")),
        "{d}"
    );

    k.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "shop",
        "--tcp=80:8080",
    ])
    .await;
    let svc = k
        .json(&["get", "service", "web", "-n", "shop", "-o", "json"])
        .await;
    assert_eq!(svc["spec"]["type"], "ClusterIP", "{svc}");
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"], 8080,
        "IntOrString: {svc}"
    );

    // A second create of the same name is the usual 409, not a decode error.
    let o = k.run(&["create", "namespace", "shop"], None).await;
    assert!(
        o.stderr
            .contains("Error from server (AlreadyExists): namespaces \"shop\" already exists"),
        "{}",
        o.stderr
    );
}

/// `kubectl get -w` of a ConfigMap created with `kubectl create configmap`
/// prints the change made afterwards.
#[tokio::test]
async fn kubectl_get_watch_prints_a_change_to_a_configmap_created_from_protobuf() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    k.ok(&["create", "configmap", "flags", "--from-literal=color=red"])
        .await;
    let mut c = k.command();
    c.args([
        "get",
        "configmap",
        "flags",
        "-w",
        "-o",
        "jsonpath={.data.color}{\"\\n\"}",
        "--request-timeout=40s",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let mut patched = false;
    while !seen.lines().any(|l| l == "blue") {
        if !patched && seen.lines().any(|l| l == "red") {
            k.ok(&[
                "patch",
                "configmap",
                "flags",
                "--type=merge",
                "-p",
                r#"{"data":{"color":"blue"}}"#,
            ])
            .await;
            patched = true;
        }
        let n = tokio::time::timeout_at(deadline, stdout.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no change printed: {seen:?}"))
            .unwrap();
        assert!(n > 0, "watch ended early: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert_eq!(
        seen.lines().collect::<Vec<_>>(),
        ["red", "blue"],
        "{seen:?}"
    );
    let _ = child.kill().await;
}

/// A body that is not protobuf, and a kind the schema does not have, are 400s
/// naming the problem; a custom resource endpoint does not take protobuf (415).
#[tokio::test]
async fn protobuf_bodies_that_cannot_be_decoded_are_rejected_with_clear_messages() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    k.ok_in(&["apply", "-f", "-"], Some(MANIFEST)).await;
    let client = k.h.client();
    let post = |path: &str, body: Vec<u8>| {
        let req = http::Request::post(path)
            .header("content-type", "application/vnd.kubernetes.protobuf")
            .body(kube::client::Body::from(body))
            .unwrap();
        let client = client.clone();
        async move {
            use http_body_util::BodyExt;
            let resp = client.send(req).await.unwrap();
            let code = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (
                code,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let (code, v) = post(
        "/api/v1/namespaces/demo/configmaps",
        b"{not protobuf".to_vec(),
    )
    .await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "the object provided is unrecognized: provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    );
    // k8s\0 + Unknown{typeMeta{apiVersion "v1", kind "Frob"}, raw ""}
    let unknown = [
        b"k8s\0".as_slice(),
        &[0x0a, 0x0a, 0x0a, 0x02],
        b"v1",
        &[0x12, 0x04],
        b"Frob",
        &[0x12, 0x00],
    ]
    .concat();
    let (code, v) = post("/api/v1/namespaces/demo/configmaps", unknown.clone()).await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["message"],
        "the object provided is unrecognized: no kind \"Frob\" is registered for version \"v1\" in the protobuf schema"
    );
    let (code, v) = post("/apis/example.com/v1/namespaces/demo/widgets", unknown).await;
    assert_eq!(code, 415, "{v}");
    assert_eq!(v["reason"], "UnsupportedMediaType", "{v}");
}

const DRAINED_SET: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: shop}
spec:
  replicas: 4
  serviceName: web
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "nginx:1.27"}]
      volumes: [{name: scratch, emptyDir: {}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  minAvailable: 3
  selector: {matchLabels: {app: web}}
"#;

/// Healthy for the disruption budget: Ready and not being deleted
/// (`countHealthyPods` in `pkg/controller/disruption/disruption.go`).
fn healthy(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `kubectl drain` cordons the node, evicts its pods through the eviction
/// subresource (protobuf bodies), is refused with 429 while the budget is
/// spent and retries until the replacements are Ready elsewhere. A watch on
/// the pods shows the budget held all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_evicts_within_the_disruption_budget_and_completes() {
    if !kubectl_available() {
        return;
    }
    use futures::StreamExt;
    use kube::runtime::watcher;
    let k = Kubectl::start_with(kubesim::cluster::ClusterConfig {
        simulate: true,
        speed: 5.0,
        nodes: 2,
        ..kubesim::cluster::ClusterConfig::default()
    })
    .await;
    k.ok_in(&["apply", "-f", "-"], Some(DRAINED_SET)).await;
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.currentHealthy}=4",
        "pdb/web",
        "-n",
        "shop",
        "--timeout=60s",
    ])
    .await;
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "shop");
    let on = |node: &str, list: &[Pod]| -> Vec<String> {
        list.iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    };
    let list = pods.list(&Default::default()).await.unwrap().items;
    let nodes = [
        kubesim::kubelet::node_name(0),
        kubesim::kubelet::node_name(1),
    ];
    let node = nodes
        .iter()
        .map(String::as_str)
        .max_by_key(|n| on(n, &list).len())
        .unwrap();
    let victims = on(node, &list);
    assert!(victims.len() >= 2, "{node} runs {victims:?}");

    // Healthy pods of the set, after every change, while the drain runs
    // (counted outside the watcher's (re)list phases).
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<()>();
    let watch = tokio::spawn({
        let pods = pods.clone();
        async move {
            let mut synced_tx = Some(synced_tx);
            let mut state: std::collections::BTreeMap<String, bool> = Default::default();
            let mut listing: std::collections::BTreeMap<String, bool> = Default::default();
            let mut in_init = false;
            let mut lowest = usize::MAX;
            let mut events = 0usize;
            let mut stream = watcher(pods, watcher::Config::default().labels("app=web")).boxed();
            loop {
                let ev = tokio::select! {
                    _ = &mut stop_rx => break,
                    ev = stream.next() => ev,
                };
                let Some(Ok(ev)) = ev else { continue };
                match ev {
                    watcher::Event::Init => {
                        in_init = true;
                        listing.clear();
                        continue;
                    }
                    watcher::Event::InitApply(p) => {
                        listing.insert(p.metadata.name.clone().unwrap(), healthy(&p));
                        continue;
                    }
                    watcher::Event::InitDone => {
                        in_init = false;
                        state = std::mem::take(&mut listing);
                        if let Some(tx) = synced_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    watcher::Event::Apply(p) => {
                        state.insert(p.metadata.name.clone().unwrap(), healthy(&p));
                    }
                    watcher::Event::Delete(p) => {
                        state.remove(p.metadata.name.as_deref().unwrap());
                    }
                }
                if !in_init {
                    events += 1;
                    lowest = lowest.min(state.values().filter(|h| **h).count());
                }
            }
            (lowest, events)
        }
    });
    tokio::time::timeout(Duration::from_secs(30), synced_rx)
        .await
        .expect("pod watch synced")
        .unwrap();

    let mut c = k.command();
    c.args([
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=150s",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let out = tokio::time::timeout(Duration::from_secs(170), c.output())
        .await
        .expect("kubectl drain finished")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "drain failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("node/{node} cordoned")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("node/{node} drained")), "{stdout}");
    for v in &victims {
        assert!(
            stdout.contains(&format!("pod/{v} evicted")),
            "{v} not evicted:\n{stdout}"
        );
    }
    // kubectl evicts all pods of the node at once: with one disruption
    // allowed, the others are refused with 429 and retried.
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "no 429 was retried:\n{stderr}"
    );

    let _ = stop_tx.send(());
    let (lowest, events) = watch.await.unwrap();
    assert!(events > victims.len(), "the watch saw {events} changes");
    // Each eviction takes one pod out (4 → 3 healthy); never two at once.
    assert_eq!(
        lowest, 3,
        "minAvailable 3 of 4: the lowest healthy count seen during the drain"
    );

    let n = k.json(&["get", "node", node, "-o", "json"]).await;
    assert_eq!(n["spec"]["unschedulable"], true, "{n}");
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.currentHealthy}=4",
        "pdb/web",
        "-n",
        "shop",
        "--timeout=60s",
    ])
    .await;
    let list = pods.list(&Default::default()).await.unwrap().items;
    assert!(on(node, &list).is_empty(), "pods left on {node}");
}

/// A DELETE whose `DeleteOptions` body is protobuf (client-go's typed `Delete`, e.g.
/// `kubectl drain --disable-eviction`) is honoured: `gracePeriodSeconds: 0` removes the pod at
/// once, where the default grace period leaves it terminating.
#[tokio::test]
async fn a_protobuf_delete_options_body_is_honoured() {
    let k = Kubectl::start().await;
    let pods: Api<Pod> = Api::namespaced(k.h.client(), "default");
    for name in ["graceful", "immediate"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            // Scheduled: an unscheduled pod is removed at once whatever the grace period.
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx:1.27"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    // k8s\0 + Unknown{typeMeta{apiVersion "v1", kind "DeleteOptions"}, raw: DeleteOptions{…}}
    let delete_options = |raw: &[u8]| -> Vec<u8> {
        let type_meta = [&[0x0a, 0x02][..], b"v1", &[0x12, 0x0d], b"DeleteOptions"].concat();
        let mut unknown = vec![0x0a, u8::try_from(type_meta.len()).unwrap()];
        unknown.extend(type_meta);
        unknown.extend([0x12, u8::try_from(raw.len()).unwrap()]);
        unknown.extend(raw);
        [b"k8s\0".as_slice(), &unknown].concat()
    };
    let client = k.h.client();
    let delete = |name: &str, body: Vec<u8>| {
        let req = http::Request::delete(format!("/api/v1/namespaces/default/pods/{name}"))
            .header("content-type", "application/vnd.kubernetes.protobuf")
            .body(kube::client::Body::from(body))
            .unwrap();
        let client = client.clone();
        async move {
            use http_body_util::BodyExt;
            let resp = client.send(req).await.unwrap();
            let code = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (code, String::from_utf8_lossy(&body).into_owned())
        }
    };
    // DeleteOptions.gracePeriodSeconds (field 1) = 0
    let (code, body) = delete("immediate", delete_options(&[0x08, 0x00])).await;
    assert_eq!(code, 200, "{body}");
    // DeleteOptions.propagationPolicy (field 4) = "Background": default grace period
    let background = [&[0x22, 0x0a][..], b"Background"].concat();
    let (code, body) = delete("graceful", delete_options(&background)).await;
    assert_eq!(code, 200, "{body}");
    assert!(pods.get_opt("immediate").await.unwrap().is_none());
    let graceful = pods.get("graceful").await.unwrap();
    assert!(
        graceful.metadata.deletion_timestamp.is_some(),
        "{graceful:?}"
    );
    assert_eq!(graceful.metadata.deletion_grace_period_seconds, Some(30));
}
