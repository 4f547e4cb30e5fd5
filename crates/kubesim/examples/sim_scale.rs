//! Scale measurements of the simulation (a benchmark, not a test):
//! time for Parallel StatefulSets to become Ready, and the resident memory
//! of the process holding them.
//!
//! `cargo run -p kubesim --example sim_scale -- <sets> <replicas> [speed] [no-events]`
//! creates `<sets>` Parallel StatefulSets of `<replicas>` pods (one namespace
//! each), waits until every set reports all replicas ready, and prints the
//! elapsed wall time and the process's VmRSS before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::{apps::v1::StatefulSet, core::v1::Namespace},
    jiff::SignedDuration,
};
use kubesim::{
    Api,
    controllers::runtime::{SimConfig, Simulation},
    kubelet::{Delay, KubeletConfig},
};
use serde_json::json;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sets: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let replicas: i32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let speed: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100.0);
    let record_events = args.get(4).map(String::as_str) != Some("no-events");
    let api = Api::new(10_000);
    let sim = Simulation::start(
        api.clone(),
        SimConfig {
            nodes: 30,
            speed,
            kubelet: KubeletConfig {
                start_delay: Delay::Fixed(SignedDuration::from_secs(2)),
                ..KubeletConfig::default()
            },
            seed: Some(1),
            record_events,
        },
    )
    .unwrap();
    let before = rss_kib();
    let start = Instant::now();
    for i in 0..sets {
        let ns = format!("bench-{i}");
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        api.create_typed(None, &n).unwrap();
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": replicas, "serviceName": "web", "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
        }))
        .unwrap();
        api.create_typed(Some(&ns), &set).unwrap();
    }
    loop {
        let ready = (0..sets)
            .filter(|i| {
                let s: StatefulSet = api.get_typed(Some(&format!("bench-{i}")), "web").unwrap();
                s.status.and_then(|st| st.ready_replicas) == Some(replicas)
            })
            .count();
        if ready == sets {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed();
    let after = rss_kib();
    println!(
        "sets={sets} replicas={replicas} speed={speed} events={record_events} all_ready_after={:.2}s (simulated start delay 2 s = {:.3}s real) rss_before={}MiB rss_after={}MiB pods_cached={}",
        elapsed.as_secs_f64(),
        2.0 / speed,
        before / 1024,
        after / 1024,
        sim.summary().pods
    );
}
