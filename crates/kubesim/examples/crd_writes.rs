//! Large custom-resource writes (a benchmark, not a test): the cost kubesim
//! pays per status PATCH of a big object, as sroll's operator sends them at
//! fleet scale (a `StatefulsetRollout` whose `status.pods` lists 1,000 pods).
//!
//! Creates `<sets>` rollouts of sroll's real CRD (`deploy/crds/`) and example
//! spec (`examples/rollout.yaml`), starts `<watchers>` HTTP watches on them,
//! then sends `<writes>` merge PATCHes of `status` over HTTP, one at a time,
//! round-robin over the rollouts; each carries the full `status.pods` list
//! (`<pods>` entries) with one entry changed. Prints the process's CPU per
//! write, the wall time and the peak RSS. Run with
//! `cargo run --release -p kubesim --example crd_writes -- [sets] [pods] [writes] [watchers]`.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use kubesim::{
    api::WriteOptions,
    cluster::{Cluster, ClusterConfig},
};
use serde_json::{Value, json};

const CRD: &str = include_str!("../../../deploy/crds/statefulsetrollouts.sroll.io.yaml");
const EXAMPLE: &str = include_str!("../../../examples/rollout.yaml");

/// (CPU seconds of this process, RSS MiB, peak RSS MiB).
fn usage() -> (f64, f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the `)`.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<f64>().ok())
            .map_or(0.0, |k| k / 1024.0)
    };
    (cpu, kib("VmRSS:"), kib("VmHWM:"))
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The status the operator would write: `pods` entries, the first `updated`
/// of them at the new revision.
fn status(set: usize, pods: usize, updated: usize) -> Value {
    let entries: Vec<Value> = (0..pods)
        .map(|i| {
            json!({
                "name": format!("set-{set:03}-{i}"),
                "ready": i % 7 != 0,
                "revision": if i < updated { format!("set-{set:03}-7d9f8b6c55") } else { format!("set-{set:03}-5c4b7f9d88") },
            })
        })
        .collect();
    json!({"status": {
        "phase": "RolloutInProgress",
        "reason": format!("{updated} of {pods} pods updated"),
        "currentRevision": format!("set-{set:03}-5c4b7f9d88"),
        "updateRevision": format!("set-{set:03}-7d9f8b6c55"),
        "replicas": pods, "readyReplicas": pods - pods / 7, "updatedReplicas": updated,
        "targetUpdatedReplicas": pods, "percentDeployed": updated * 100 / pods.max(1),
        "observedGeneration": 1, "statefulsetName": format!("set-{set:03}"),
        "statefulsetSpecCurrent": true,
        "lastUpdated": "2026-12-07T01:00:00Z",
        "pods": entries,
    }})
}

#[tokio::main]
async fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (sets, pods, writes, watchers) = (arg(1, 10), arg(2, 1000), arg(3, 2000), arg(4, 3));
    let h = Cluster::start(ClusterConfig {
        history_limit: 200_000,
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    let api = h.api().clone();
    let opts = WriteOptions::default();
    let crds = api
        .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .unwrap();
    api.create(&crds, None, yaml_docs(CRD).remove(0), &opts)
        .unwrap();
    let d = api
        .resource("sroll.io", "v1alpha1", "statefulsetrollouts")
        .unwrap();
    let template = yaml_docs(EXAMPLE)
        .into_iter()
        .find(|d| d["kind"] == "StatefulsetRollout")
        .unwrap();
    for s in 0..sets {
        let mut r = template.clone();
        r["metadata"] = json!({"name": format!("set-{s:03}")});
        api.create(&d, Some("default"), r, &opts).unwrap();
    }
    let base = h.base_url().to_owned();
    let http = reqwest::Client::new();
    let coll = format!("{base}/apis/sroll.io/v1alpha1/namespaces/default/statefulsetrollouts");
    let mut watch_tasks = Vec::new();
    for _ in 0..watchers {
        let mut resp = http
            .get(format!("{coll}?watch=true&allowWatchBookmarks=true"))
            .send()
            .await
            .unwrap();
        watch_tasks.push(tokio::spawn(async move {
            let mut bytes = 0usize;
            while let Ok(Some(chunk)) = resp.chunk().await {
                bytes += chunk.len();
            }
            bytes
        }));
    }
    // One status per rollout first (each is then a large object), outside the measurement.
    let send = |s: usize, body: Vec<u8>| {
        let http = http.clone();
        let url = format!("{coll}/set-{s:03}/status");
        async move {
            let resp = http
                .patch(url)
                .header("content-type", "application/merge-patch+json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            resp.bytes().await.unwrap().len()
        }
    };
    for s in 0..sets {
        send(s, serde_json::to_vec(&status(s, pods, 0)).unwrap()).await;
    }
    let bodies: Vec<Vec<u8>> = (0..writes)
        .map(|w| serde_json::to_vec(&status(w % sets, pods, 1 + w / sets)).unwrap())
        .collect();
    let (cpu0, rss0, _) = usage();
    let t = Instant::now();
    let mut response_bytes = 0;
    for (w, body) in bodies.into_iter().enumerate() {
        response_bytes += send(w % sets, body).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let (cpu1, rss1, peak) = usage();
    println!(
        "{writes} status PATCHes of {sets} rollouts x {pods} pods ({} KB responses), {watchers} watchers: {wall:.2} s wall, {:.2} CPU s = {:.3} ms CPU per write; RSS {rss0:.0} -> {rss1:.0} MiB, peak {peak:.0} MiB",
        response_bytes / writes.max(1) / 1000,
        cpu1 - cpu0,
        (cpu1 - cpu0) * 1000.0 / writes.max(1) as f64,
    );
    let st = api.store().stats();
    println!("store: {st:?}");
    for w in watch_tasks {
        w.abort();
    }
}
