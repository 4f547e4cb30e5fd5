//! Conformance through the real `kubectl` binary. Without kubectl these
//! tests fail when `CI` is set and otherwise print "skipped: kubectl not found".
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kubesim::cluster::{Cluster, ClusterConfig, Handle};
use serde_json::{Value, json};
use tokio::process::Command;

fn kubectl_available() -> bool {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
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

struct Kubectl {
    h: Handle,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Kubectl {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("kubesim-kubectl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        let h = Cluster::start(ClusterConfig {
            write_kubeconfig: Some(kubeconfig.clone()),
            ..ClusterConfig::default()
        })
        .await
        .unwrap();
        Kubectl { h, kubeconfig, dir }
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            let mut i = child.stdin.take().unwrap();
            i.write_all(s.as_bytes()).await.unwrap();
        }
        drop(child.stdin.take());
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, None).await;
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    async fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).await).unwrap()
    }
}

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

#[tokio::test]
async fn kubectl_applies_gets_labels_patches_scales_and_deletes() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let (ok, out, err) = k.run(&["apply", "-f", "-"], Some(MANIFEST)).await;
    assert!(ok, "{err}");
    assert!(out.contains("statefulset.apps/web created"), "{out}");
    assert!(
        out.contains("poddisruptionbudget.policy/web created"),
        "{out}"
    );
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ])
    .await;

    // custom resources: created, printed with their columns, validated
    let (ok, _, err) = k
        .run(
            &["apply", "-n", "demo", "-f", "-"],
            Some(
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n",
            ),
        )
        .await;
    assert!(ok, "{err}");
    let table = k.ok(&["get", "wd", "-n", "demo"]).await;
    assert!(table.contains("SIZE") && table.contains("w1"), "{table}");
    let (ok, _, err) = k
        .run(
            &["apply", "-n", "demo", "-f", "-"],
            Some(
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n",
            ),
        )
        .await;
    assert!(!ok);
    assert!(err.contains("spec.size"), "{err}");

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
    let (ok, _, err) = k
        .run(
            &["apply", "--server-side", "-n", "demo", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: b}\n"),
        )
        .await;
    assert!(ok, "{err}");
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
    let (ok, _, err) = k.run(&["apply", "-f", "-"], Some(MANIFEST)).await;
    assert!(ok, "{err}");
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
    let (ok, _, _) = k.run(&["get", "pod", "web-1", "-n", "demo"], None).await;
    assert!(
        !ok,
        "the dependent should be gone after a foreground delete"
    );
    let (ok, _, err) = k.run(&["get", "sts", "web", "-n", "demo"], None).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    k.h.shutdown().await;
    let _ = std::fs::remove_dir_all(&k.dir);
}

#[tokio::test]
async fn kubectl_get_watch_sees_added_modified_and_deleted() {
    if !kubectl_available() {
        return;
    }
    let k = Kubectl::start().await;
    let mut c = Command::new("kubectl");
    c.args([
        "get",
        "configmaps",
        "-w",
        "--output-watch-events",
        "--request-timeout=30s",
    ])
    .env("KUBECONFIG", &k.kubeconfig)
    .env("HOME", &k.dir)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // let the watch start
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, _, err) = k
        .run(
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {a: b}\n"),
        )
        .await;
    assert!(ok, "{err}");
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
    k.h.shutdown().await;
    let _ = std::fs::remove_dir_all(&k.dir);
}
