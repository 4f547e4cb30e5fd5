//! Shared helpers of the integration tests: local HTTP servers and condition waits.
#![allow(dead_code)]

use std::{future::Future, net::SocketAddr, time::Duration};

use sroll_api::{BuildMetadata, Phase};
use sroll_integrations::{RolloutKey, RolloutSnapshot, Version};

/// Serves `router` on an ephemeral local port.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    addr
}

/// Waits until `cond` holds, polling; panics with `what` after a generous deadline.
pub async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A snapshot of a 1,000-pod rollout.
pub fn snapshot(updated: i32, rolling: std::ops::Range<usize>, phase: Phase) -> RolloutSnapshot {
    RolloutSnapshot {
        key: RolloutKey::new("cache", "memcached"),
        cluster: "us-east-1a".into(),
        app: "memcached".into(),
        rollout_identity: Some("release-42".into()),
        from: Version {
            image: Some("memcached:1.6.20".into()),
            revision: Some("memcached-6f7d".into()),
        },
        to: Version {
            image: Some("memcached:1.6.21".into()),
            revision: Some("memcached-7c9a".into()),
        },
        build: Some(BuildMetadata {
            branch: Some("main".into()),
            commit: Some("abc123".into()),
        }),
        updated,
        target: 1000,
        total: 1000,
        percent: 100,
        percent_deployed: updated / 10,
        phase,
        reason: None,
        rolling_pods: rolling.map(|i| format!("memcached-{i}")).collect(),
    }
}
