//! Conformance through the real `kubectl` binary. Without kubectl these
//! tests fail when `CI` is set and otherwise print "skipped: kubectl not found".
#![allow(clippy::unwrap_used)]

use kubesim::testing::kubectl as kubectl_support;

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
