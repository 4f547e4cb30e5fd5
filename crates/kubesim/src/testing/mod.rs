//! Test support shared by kubesim's own test suites and by the test kits of projects built on
//! kubesim (behind the `testing` feature, so a production build of kubesim carries none of it):
//!
//! - [`kubectl`]: a kubesim cluster with a kubeconfig on disk, and the real `kubectl` binary run
//!   against it;
//! - [`world`]: a deterministic in-memory world driving the pure controller, kubelet and scheduler
//!   decisions step by step with a manual clock;
//! - [`wait_for`]: the one "poll until it holds, fail after a deadline" helper;
//! - [`load_yaml_docs`]: the YAML documents of a file of the repository.
//!
//! This is test code: a failed expectation panics (the test's failure), so `unwrap`/`expect` are
//! how it reports rather than a shortcut.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod kubectl;
pub mod world;

use std::{future::Future, time::Duration};

use serde_json::Value;

/// What a [`wait_for`] condition returns: `bool` (holds or not) or `Option<T>` (`Some` ends the
/// wait with the value).
pub trait Outcome {
    /// The value the wait returns.
    type Value;
    /// `Some` once the condition holds.
    fn ready(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `cond` every 50 ms until it holds (`true`, or `Some(value)`: returned), panicking with
/// `what` once `deadline` has passed. Tests wait on conditions with this, never on wall-clock
/// sleeps, and choose generous deadlines: a deadline is a hang detector, not a speed assertion.
pub async fn wait_for<F, Fut>(
    what: &str,
    deadline: Duration,
    mut cond: F,
) -> <Fut::Output as Outcome>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = cond().await.ready() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The YAML documents of the repository's file `rel` (from the repository root), empty documents
/// left out.
pub fn load_yaml_docs(rel: &str) -> Vec<Value> {
    let path = kubectl::repo_file(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document parses"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}
