//! A watch on one app's pods that records the most pods unavailable at once during a measurement:
//! the check that a fast result did not come from breaking the disruption budget (a measured time
//! below the ideal can only be honest if the budget held). It also records when the first pod
//! went out of service and when the last one came back: the span the performance model's ideal
//! (`ceil(k/B)` pod cycles) describes.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
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

/// When the app's pods left and came back, as the watch saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// The first event after the initial list that made more pods unavailable.
    pub first_out: Option<Instant>,
    /// The last event that made fewer pods unavailable (a pod became available).
    pub last_back: Option<Instant>,
}

impl Span {
    /// Records the unavailability going from `before` to `after` at `now`.
    fn record(&mut self, before: Option<usize>, after: usize, now: Instant) {
        let Some(before) = before else { return };
        if after > before && self.first_out.is_none() {
            self.first_out = Some(now);
        }
        if after < before {
            self.last_back = Some(now);
        }
    }

    /// Seconds from the first pod out to the last pod back.
    pub fn seconds(&self) -> Option<f64> {
        Some(
            self.last_back?
                .checked_duration_since(self.first_out?)?
                .as_secs_f64(),
        )
    }
}

/// `SROLL_BENCH_POD_TRACE=FILE`: every pod event the probe sees after its initial list is appended
/// to `FILE`, one line each (wall-clock seconds, name, resourceVersion, `Ready`, the
/// `InPlaceUpdateReady` gate, containers ready, restart count, revision label), to build a per-pod
/// timeline of a measurement beside the operator's debug log, each measurement after a `# probe
/// started` line. A diagnostic: off by default.
fn trace_file() -> Option<std::io::BufWriter<std::fs::File>> {
    use std::io::Write as _;
    let path = std::env::var_os("SROLL_BENCH_POD_TRACE")?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()
        .map(std::io::BufWriter::new)?;
    // One measurement per section.
    writeln!(out, "# probe started").ok()?;
    Some(out)
}

fn trace_line(out: &mut impl std::io::Write, pod: &Pod) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let status = pod.status.as_ref();
    let condition = |t: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == t))
            .map_or("-", |c| c.status.as_str())
    };
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{now:.6} {} {} ready={} gate={} containers_ready={}/{} restarts={} rev={}",
        pod.name_any(),
        pod.resource_version().unwrap_or_default(),
        condition("Ready"),
        condition("InPlaceUpdateReady"),
        containers.iter().filter(|c| c.ready).count(),
        containers.len(),
        containers.iter().map(|c| c.restart_count).sum::<i32>(),
        pod.labels()
            .get("controller-revision-hash")
            .map_or("-", String::as_str),
    );
    let _ = out.flush();
}

/// What the probe saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// The most pods unavailable at once.
    pub max_unavailable: usize,
    /// When the first pod left and the last came back.
    pub span: Span,
}

/// The running probe.
#[derive(Debug)]
pub struct Unavailability {
    max: Arc<AtomicUsize>,
    span: Arc<Mutex<Span>>,
    synced: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Unavailability {
    /// Starts watching the pods labelled `app=<app>` of a set of `replicas` pods.
    pub fn start(client: &Client, app: &str, replicas: usize) -> Self {
        let api = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
        let max = Arc::new(AtomicUsize::new(0));
        let seen = max.clone();
        let span = Arc::new(Mutex::new(Span::default()));
        let spans = span.clone();
        let (synced_tx, synced) = tokio::sync::watch::channel(false);
        let config = watcher::Config::default().labels(&format!("app={app}"));
        let task = tokio::spawn(async move {
            let mut tally = Tally {
                replicas,
                ..Tally::default()
            };
            let mut last: Option<usize> = None;
            let mut trace = trace_file();
            let mut events = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = events.next().await {
                if let (Some(out), Ok(watcher::Event::Apply(pod))) = (trace.as_mut(), &event) {
                    trace_line(out, pod);
                }
                if let Ok(event) = event
                    && let Some(now) = tally.apply(event)
                {
                    seen.fetch_max(now, Ordering::Relaxed);
                    if let Ok(mut s) = spans.lock() {
                        s.record(last, now, Instant::now());
                    }
                    last = Some(now);
                    let _ = synced_tx.send(true);
                }
            }
        });
        Self {
            max,
            span,
            synced,
            task,
        }
    }

    /// Waits (at most `limit`) until the initial list is in, so the first pod to leave is seen
    /// leaving.
    pub async fn synced(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.synced.wait_for(|s| *s)).await;
    }

    /// Stops the watch and returns what it saw.
    pub fn stop(self) -> Seen {
        self.task.abort();
        Seen {
            max_unavailable: self.max.load(Ordering::Relaxed),
            span: self.span.lock().map(|s| *s).unwrap_or_default(),
        }
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

    #[test]
    fn the_span_runs_from_the_first_pod_out_to_the_last_pod_back() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = Span::default();
        s.record(None, 1, at(0));
        assert_eq!(s, Span::default(), "the initial list is no change");
        s.record(Some(0), 0, at(5));
        s.record(Some(0), 2, at(10));
        s.record(Some(2), 1, at(20));
        s.record(Some(1), 2, at(30));
        s.record(Some(2), 0, at(45));
        s.record(Some(0), 0, at(60));
        assert_eq!(s.first_out, Some(at(10)));
        assert_eq!(s.last_back, Some(at(45)));
        assert_eq!(s.seconds(), Some(0.035));
    }
}
