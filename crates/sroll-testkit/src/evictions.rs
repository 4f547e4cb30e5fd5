//! Evictions as kubesim saw them: each evicted pod incarnation's `deletionTimestamp`, stamped by
//! kubesim's API server (wall clock, second precision), and the moment this watch received it
//! (precise, late by the watch's delivery time). Independent of the operator's own metrics, so it
//! counts across operator restarts and kills. (A watch on the `DisruptionTarget` condition missed events: the
//! kubelet's status writes replace it within moments.)

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::jiff::Timestamp;
use kube::{ResourceExt, runtime::WatchStreamExt};

use crate::Env;

/// One evicted incarnation: `(pod name, deletionTimestamp, when the watch received it)`.
type Seen = (String, Timestamp, Timestamp);

/// A watch on the namespace's pods recording every eviction.
pub struct Evictions {
    /// By pod uid.
    seen: Arc<Mutex<BTreeMap<String, Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Evictions {
    /// Starts recording in `env`'s namespace: watches its pods and keeps each incarnation's
    /// `deletionTimestamp` (deletion time + the pods' common grace period, so the gaps between
    /// them are the gaps between evictions) and when the watch delivered it.
    pub fn watch(env: &Env) -> Self {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let record = seen.clone();
        let pods = env.pod_api();
        // A watch, not a poll: at the scenarios' speed a pod is terminated and gone within tens of
        // milliseconds, so a polling list can miss a whole eviction.
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(
                kube::runtime::watcher(pods, kube::runtime::watcher::Config::default())
                    .default_backoff()
            );
            while let Some(event) = futures::StreamExt::next(&mut events).await {
                let pod = match event {
                    Ok(
                        kube::runtime::watcher::Event::Apply(p)
                        | kube::runtime::watcher::Event::InitApply(p)
                        | kube::runtime::watcher::Event::Delete(p),
                    ) => p,
                    _ => continue,
                };
                if let Some(at) = pod.metadata.deletion_timestamp.as_ref() {
                    record
                        .lock()
                        .expect("evictions")
                        .entry(pod.uid().unwrap_or_default())
                        .or_insert((pod.name_any(), at.0, Timestamp::now()));
                }
            }
        });
        Self { seen, task }
    }

    /// `(pod, deletionTimestamp)`, oldest first.
    pub fn times(&self) -> Vec<(String, Timestamp)> {
        self.sorted(|(_, at, _)| *at)
    }

    /// `(pod, when this watch received its deletion)`, oldest first: sub-second, but each late by
    /// the watch's delivery time.
    pub fn received(&self) -> Vec<(String, Timestamp)> {
        self.sorted(|(_, _, received)| *received)
    }

    /// `(pod, time)` with the time `when` picks, oldest first.
    fn sorted(&self, when: impl Fn(&Seen) -> Timestamp) -> Vec<(String, Timestamp)> {
        let mut v: Vec<_> = self
            .seen
            .lock()
            .expect("evictions")
            .values()
            .map(|seen| (seen.0.clone(), when(seen)))
            .collect();
        v.sort_by_key(|(_, t)| *t);
        v
    }

    /// How many evictions were seen.
    pub fn count(&self) -> usize {
        self.seen.lock().expect("evictions").len()
    }
}

impl Drop for Evictions {
    fn drop(&mut self) {
        self.task.abort();
    }
}
