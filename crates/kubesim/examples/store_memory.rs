//! What kubesim's store keeps per stored object version besides its JSON (issue #22, `simstore`;
//! a measurement, not a test): stores `OBJECTS` bench-like pods (four labels, one owner, the
//! selectable fields set) and rewrites each `REWRITES` times into a history large enough to keep
//! every version, then holds the store while it prints what the JSON takes. Run under heaptrack:
//!
//! ```text
//! cargo build -p kubesim --example store_memory
//! heaptrack -o /tmp/sm $CARGO_TARGET_DIR/debug/examples/store_memory 10000 9
//! heaptrack_print -f /tmp/sm.zst | grep -E "calls to allocation|peak heap"
//! ```
//!
//! (peak heap − the printed JSON and pod-template bytes) / versions is the per-version cost
//! (`docs/kubesim-scale.md`, "simstore (session 16)").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubesim::{registry::builtin_resources, store::Store};
use serde_json::{Value, json};

/// A pod as kubesim's StatefulSet controller, scheduler and kubelet leave it (the bench's pods:
/// four labels, one owner, the selectable fields set), at version `v` of `set`'s pod `i`: as
/// between the versions of a pod, labels and owners stay, the spec and status change.
fn pod(set: usize, i: usize, v: u64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("web-{set}-{i}"),
            "namespace": "bench",
            "uid": format!("0b6a4a7e-5f1c-4c7e-9b0e-{set:04}{i:08}"),
            "resourceVersion": v.to_string(),
            "labels": {
                "app": format!("web-{set}"),
                "controller-revision-hash": format!("web-{set}-6d5f9c7b8"),
                "statefulset.kubernetes.io/pod-name": format!("web-{set}-{i}"),
                "apps.kubernetes.io/pod-index": i.to_string(),
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": format!("web-{set}"),
                "uid": format!("5d1e7c9a-2b3f-4e6d-8a9b-{set:012}"),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "nodeName": format!("node-{}", i % 50),
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "containers": [{"name": "app", "image": format!("registry.local/app:v{}", v % 2)}],
        },
        "status": {"phase": "Running", "podIP": format!("10.{set}.{}.{}", i / 250, i % 250)},
    })
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let objects = args.next().unwrap_or(10_000);
    let rewrites = args.next().unwrap_or(9) as u64;
    let d = builtin_resources()
        .into_iter()
        .find(|d| d.group.is_empty() && d.plural == "pods")
        .expect("pods are built in");
    // Large enough never to compact: every version stays in the history.
    let store = Store::with_limits(usize::MAX, usize::MAX);
    let mut json_bytes = 0usize;
    for v in 0..=rewrites {
        for i in 0..objects {
            store.write(|t| {
                let rv = t.next_rv();
                let mut obj = pod(i % 10, i, v);
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                json_bytes += t.put(&d, &obj).expect("stores").json.len();
            });
        }
    }
    let stats = store.stats();
    assert_eq!(stats.history_len, objects * (1 + rewrites as usize));
    println!(
        "{} objects, {} versions, {json_bytes} bytes of JSON ({:.1} per version)",
        objects,
        stats.history_len,
        json_bytes as f64 / stats.history_len as f64
    );
}
