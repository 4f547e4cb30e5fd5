//! Shared data of the integration tests (the fakes and `wait_for` are `sroll_testkit`'s).
#![allow(dead_code)]

use std::time::Duration;

use sroll_api::{BuildMetadata, Phase};
use sroll_integrations::{RolloutKey, RolloutSnapshot, Version};

/// Generous deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(60);

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
        in_place_pods: Vec::new(),
        analysis: None,
    }
}
