//! A watch on one app's pods that records the most pods unavailable at once during a measurement:
//! the check that a fast result did not come from breaking the disruption budget (a measured time
//! below the ideal can only be honest if the budget held).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use sroll_api::predicates::{is_pod_ready, is_terminating};

use super::env::NAMESPACE;

/// Whether a pod counts as available: Ready and not terminating.
fn available(pod: &Pod) -> bool {
    is_pod_ready(pod) && !is_terminating(&pod.metadata)
}

/// Tracks `replicas − available pods` of an app (a missing pod is unavailable) and its maximum.
#[derive(Debug, Default)]
struct Tally {
    replicas: usize,
    available: HashMap<String, bool>,
    synced: bool,
}

impl Tally {
    fn unavailable(&self) -> usize {
        let up = self.available.values().filter(|a| **a).count();
        self.replicas.saturating_sub(up)
    }

    /// Applies one watch event; returns the unavailability after it, once the initial list is in.
    fn apply(&mut self, event: watcher::Event<Pod>) -> Option<usize> {
        match event {
            watcher::Event::Init => self.available.clear(),
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                self.available.insert(p.name_any(), available(&p));
            }
            watcher::Event::Delete(p) => {
                self.available.remove(&p.name_any());
            }
            watcher::Event::InitDone => self.synced = true,
        }
        self.synced.then(|| self.unavailable())
    }
}

/// The running probe.
#[derive(Debug)]
pub struct Unavailability {
    max: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Unavailability {
    /// Starts watching the pods labelled `app=<app>` of a set of `replicas` pods.
    pub fn start(client: &Client, app: &str, replicas: usize) -> Self {
        let api = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
        let max = Arc::new(AtomicUsize::new(0));
        let seen = max.clone();
        let config = watcher::Config::default().labels(&format!("app={app}"));
        let task = tokio::spawn(async move {
            let mut tally = Tally {
                replicas,
                ..Tally::default()
            };
            let mut events = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = events.next().await {
                if let Ok(event) = event
                    && let Some(now) = tally.apply(event)
                {
                    seen.fetch_max(now, Ordering::Relaxed);
                }
            }
        });
        Self { max, task }
    }

    /// Stops the watch and returns the most pods seen unavailable at once.
    pub fn stop(self) -> usize {
        self.task.abort();
        self.max.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::{PodCondition, PodStatus},
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };

    use super::*;

    fn pod(name: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn missing_and_unready_pods_count_as_unavailable_after_the_initial_list() {
        let mut t = Tally {
            replicas: 3,
            ..Tally::default()
        };
        assert_eq!(t.apply(watcher::Event::Init), None);
        assert_eq!(t.apply(watcher::Event::InitApply(pod("a-0", true))), None);
        assert_eq!(t.apply(watcher::Event::InitApply(pod("a-1", true))), None);
        assert_eq!(t.apply(watcher::Event::InitDone), Some(1), "a-2 is missing");
        assert_eq!(t.apply(watcher::Event::Apply(pod("a-2", false))), Some(1));
        assert_eq!(t.apply(watcher::Event::Delete(pod("a-0", true))), Some(2));
        assert_eq!(t.apply(watcher::Event::Apply(pod("a-0", true))), Some(1));
        assert_eq!(t.apply(watcher::Event::Apply(pod("a-2", true))), Some(0));
    }
}
