//! Scale measurement of kubesim (a benchmark, not a test): stores N pods,
//! lists them in pages of 500 over HTTP, and measures a watch fan-out to 10
//! watchers. Prints the numbers; run with
//! `cargo run -p kubesim --example scale [N]`.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kubesim::{
    api::WriteOptions,
    cluster::{Cluster, ClusterConfig},
};
use serde_json::json;

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(0.0, |k| k / 1024.0)
}

fn pod(i: usize) -> serde_json::Value {
    json!({"metadata": {"name": format!("pod-{i:06}"), "labels": {"app": "bench", "shard": (i % 10).to_string()},
           "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "bench", "uid": "00000000-0000-0000-0000-000000000000"}]},
           "spec": {"nodeName": format!("node-{}", i % 50), "containers": [{"name": "app", "image": "registry.example.com/app:1.2.3",
                    "ports": [{"containerPort": 8080}], "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}})
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let h = Cluster::start(ClusterConfig {
        history_limit: 20_000,
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    let api = h.api().clone();
    let d = api.resource("", "v1", "pods").unwrap();
    let rss0 = rss_mib();
    let t = Instant::now();
    for i in 0..n {
        let mut p = pod(i);
        // no owner GC churn: drop the fake ownerReference
        p["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        api.create(&d, Some("default"), p, &WriteOptions::default())
            .unwrap();
    }
    let create = t.elapsed();
    let rss1 = rss_mib();
    println!(
        "created {n} pods in {:.2}s ({:.0}/s); RSS {:.0} MiB -> {:.0} MiB ({:.2} KiB/pod incl. watch history)",
        create.as_secs_f64(),
        n as f64 / create.as_secs_f64(),
        rss0,
        rss1,
        (rss1 - rss0) * 1024.0 / n as f64
    );

    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let t = Instant::now();
    let mut lp = ListParams::default().limit(500);
    let (mut pages, mut items) = (0, 0);
    loop {
        let page = pods.list_metadata(&lp).await.unwrap();
        pages += 1;
        items += page.items.len();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    println!(
        "paged list over HTTP (limit 500): {items} pods in {pages} pages, {:.2}s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let all = pods.list(&ListParams::default()).await.unwrap();
    println!(
        "unpaged list over HTTP: {} pods in {:.2}s",
        all.items.len(),
        t.elapsed().as_secs_f64()
    );

    let rv = api.store().current_rv().to_string();
    let events = 1000;
    let mut tasks = vec![];
    for _ in 0..10 {
        let pods = pods.clone();
        let rv = rv.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = pods
                .watch(&WatchParams::default().timeout(120), &rv)
                .await
                .unwrap()
                .boxed();
            let mut got = 0;
            while got < events {
                if let Some(Ok(WatchEvent::Modified(_))) = s.next().await {
                    got += 1;
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let t = Instant::now();
    for i in 0..events {
        let name = format!("pod-{i:06}");
        let body = br#"{"metadata":{"labels":{"touched":"yes"}}}"#;
        api.patch(
            &d,
            Some("default"),
            &name,
            kubesim::api::PatchKind::Merge,
            body,
            kubesim::api::Part::Main,
            &WriteOptions::default(),
        )
        .unwrap();
    }
    let writes = t.elapsed();
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "watch fan-out: {events} updates written in {:.2}s, delivered to 10 watchers over HTTP after {:.2}s ({:.0} events/s delivered)",
        writes.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        (events * 10) as f64 / t.elapsed().as_secs_f64()
    );
    h.shutdown().await;
}
