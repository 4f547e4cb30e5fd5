//! CloneSets in scenarios: a fixture ([`clone_set`]) and an invariant checker ([`CloneSetChecker`])
//! that watches one CloneSet's pods for the whole run and judges every state the API server went
//! through (watch events come in resourceVersion order, so the checker replays the server's
//! history of the pods one write at a time):
//!
//! - never more than `replicas + maxSurge` pods (terminating pods excluded, as the CloneSet
//!   counts them);
//! - never fewer Ready pods than `replicas − maxUnavailable`, once the set was first whole;
//! - never fewer pods at the old revision than the partition while an update runs (no pod below
//!   the partition updated).
//!
//! The bounds are the ones a test [`arms`](CloneSetChecker::arm) before the change it makes.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use sroll_api::{
    clone_set::{CloneSet, INSTANCE_ID_LABEL},
    labels, predicates,
};

/// A CloneSet named `name` with `replicas` pods of `image` (label `app: <name>`); `spec` is merged
/// over the spec (JSON merge: e.g. `{"updateStrategy": {"maxSurge": 1}}`).
pub fn clone_set(name: &str, replicas: i32, image: &str, spec: Value) -> CloneSet {
    let mut base = json!({
        "apiVersion": "sroll.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    });
    merge(&mut base["spec"], spec);
    serde_json::from_value(base).expect("a valid CloneSet")
}

/// RFC 7386 merge of `patch` into `target`.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

/// Bounds one CloneSet's pods must respect.
#[derive(Clone, Debug, Default)]
pub struct Bounds {
    /// At most this many pods (replicas + maxSurge).
    pub max_pods: usize,
    /// At least this many Ready pods once the set was first whole (replicas − maxUnavailable).
    pub min_ready: usize,
    /// At least this many pods at this (old) revision, once an update started.
    pub min_at_revision: Option<(String, usize)>,
}

#[derive(Default)]
struct State {
    pods: BTreeMap<String, Pod>,
    bounds: Option<Bounds>,
    armed_whole: bool,
    max_seen: usize,
    violations: Vec<String>,
}

/// Watches the pods of one CloneSet; see the module documentation.
pub struct CloneSetChecker {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl CloneSetChecker {
    /// Starts watching the CloneSet pods of `namespace` whose `app` label is `app`.
    pub fn start(client: Client, namespace: &str, app: &str) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let pods = watcher(
            Api::<Pod>::namespaced(client, namespace),
            watcher::Config::default().labels(&format!("app={app},{INSTANCE_ID_LABEL}")),
        )
        .default_backoff();
        let st = state.clone();
        let task = tokio::spawn(async move {
            futures::pin_mut!(pods);
            while let Some(ev) = pods.next().await {
                let Ok(ev) = ev else { continue };
                let mut s = st.lock().unwrap();
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        s.pods.insert(p.name_any(), p);
                    }
                    watcher::Event::Delete(p) => {
                        s.pods.remove(&p.name_any());
                    }
                    watcher::Event::Init | watcher::Event::InitDone => {}
                }
                judge(&mut s);
            }
        });
        Self { state, task }
    }

    /// Sets the bounds from now on.
    pub fn arm(&self, bounds: Bounds) {
        let mut s = self.state.lock().unwrap();
        s.armed_whole = false;
        s.max_seen = 0;
        s.bounds = Some(bounds);
        judge(&mut s);
    }

    /// The most pods seen at once since the last [`arm`](Self::arm).
    pub fn max_seen(&self) -> usize {
        self.state.lock().unwrap().max_seen
    }

    /// Every violation seen.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// Stops watching and fails the test on any violation.
    pub fn assert_clean(self) {
        self.task.abort();
        let v = self.violations();
        assert!(v.is_empty(), "CloneSet invariants violated: {v:#?}");
    }
}

fn judge(s: &mut State) {
    let Some(b) = s.bounds.clone() else { return };
    let active: Vec<&Pod> = s
        .pods
        .values()
        .filter(|p| !predicates::is_terminating(&p.metadata))
        .collect();
    let ready = active
        .iter()
        .filter(|p| predicates::is_pod_ready(p))
        .count();
    s.max_seen = s.max_seen.max(active.len());
    let names = || {
        active
            .iter()
            .map(|p| {
                format!(
                    "{}@{}{}",
                    p.name_any(),
                    p.labels()
                        .get(labels::REVISION)
                        .cloned()
                        .unwrap_or_default(),
                    if predicates::is_pod_ready(p) {
                        ""
                    } else {
                        "(not ready)"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if active.len() > b.max_pods {
        let msg = format!("{} pods > {}: {}", active.len(), b.max_pods, names());
        s.violations.push(msg);
    }
    if ready >= b.min_ready {
        s.armed_whole = true;
    } else if s.armed_whole {
        let msg = format!("{ready} Ready pods < {}: {}", b.min_ready, names());
        s.violations.push(msg);
    }
    if let Some((rev, min)) = &b.min_at_revision {
        let at = active
            .iter()
            .filter(|p| p.labels().get(labels::REVISION) == Some(rev))
            .count();
        // Pods at the old revision only go down; fewer than the partition is an update too far
        // (a pod that merely died is replaced at the old revision, never past the bound).
        if at < *min && active.len() >= *min {
            let msg = format!("{at} pods at {rev} < partition {min}: {}", names());
            s.violations.push(msg);
        }
    }
}
