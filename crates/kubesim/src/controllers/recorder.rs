//! The Events the simulated control plane records: one recorder shared by the
//! StatefulSet and disruption controllers, the scheduler and the kubelets.
//!
//! Callers hand a [`Record`] to [`Recorder::record`], which only queues it
//! (no formatting or store write on the controllers' path); one task drains
//! the queue in batches and writes the Events through the in-process API, so
//! they are visible through `core/v1` and `events.k8s.io/v1` like any other
//! object.
//!
//! Written from client-go's recorders:
//! * `tools/record` (controllers, kubelet): the Event is named
//!   `<involvedObject.name>.<unix nanos in hex>`, carries `source`
//!   (`component`, `host`), `reportingComponent`/`reportingInstance`,
//!   `firstTimestamp`/`lastTimestamp`/`count`; a repeat of the same event
//!   (`getEventKey`: source, involved object, type, reason, message) patches
//!   the existing Event's `count` and `lastTimestamp` (`EventLogger.eventObserve`),
//!   and a patch that finds the Event gone creates it anew (`recordToSink`).
//! * `tools/events` (the scheduler): `eventTime`, `action`,
//!   `reportingController`/`reportingInstance`, no `source` or deprecated
//!   counters; a repeat becomes a `series` (`count` from 2, `lastObservedTime`).
//!
//! Simplifications: the similar-event aggregation (`EventAggregator`: ten
//! events differing only in message within ten minutes become one "(combined
//! from similar events)") and the per-object spam filter (a token bucket of
//! 25) are not applied; the repeat cache holds the last 4096 event keys (as
//! client-go's LRU) and is cleared, not evicted one by one, when full.

use std::collections::HashMap;

use k8s_openapi::{api::core::v1::ObjectReference, jiff::Timestamp};
use serde_json::{Value, json};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::api::{Api, Part, PatchKind, WriteOptions};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Normal => "Normal",
            EventKind::Warning => "Warning",
        }
    }
}

/// Who records: a `tools/record` source or a `tools/events` reporter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// `tools/record`: `source.component` (and `host`, for kubelets).
    Legacy {
        /// `source.component` (`statefulset-controller`, `kubelet`).
        component: &'static str,
        /// `source.host` (the node of a kubelet).
        host: Option<String>,
    },
    /// `tools/events`: `reportingController`, `reportingInstance` and the `action`.
    Series {
        /// `reportingController` (`default-scheduler`).
        controller: &'static str,
        /// `reportingInstance`.
        instance: &'static str,
        /// `action` (`Binding`, `Scheduling`).
        action: &'static str,
    },
}

/// One Event to record.
#[derive(Debug, Clone)]
pub struct Record {
    /// The object the Event is about.
    pub involved: ObjectReference,
    /// `Normal` or `Warning`.
    pub kind: EventKind,
    /// Machine-readable reason (`SuccessfulCreate`).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Who records it.
    pub reporter: Reporter,
    /// When (simulated time).
    pub at: Timestamp,
}

/// A reference to an object for `involvedObject` (`reference.GetReference`).
pub fn reference(
    api_version: &str,
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    field_path: Option<String>,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(kind.to_owned()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path,
    }
}

/// Queues Events for the writer task. Cloning shares the queue; a disabled
/// recorder drops every record without building it.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: Option<mpsc::UnboundedSender<Record>>,
}

impl Recorder {
    /// A recorder that records nothing (`SimConfig::record_events` off).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// A recorder and its writer task (on the current tokio runtime).
    pub fn start(api: Api) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx: Some(tx) }, tokio::spawn(write_events(api, rx)))
    }

    /// Whether records are kept.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues the record `make` builds (called only when enabled).
    pub fn record(&self, make: impl FnOnce() -> Record) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(make());
        }
    }
}

/// `getEventKey` (and the reporter, which the key includes through `source`).
type EventKey = (
    Reporter,
    String,
    String,
    String,
    String,
    EventKind,
    &'static str,
    String,
);

fn key_of(r: &Record) -> EventKey {
    let o = &r.involved;
    (
        r.reporter.clone(),
        o.kind.clone().unwrap_or_default(),
        o.namespace.clone().unwrap_or_default(),
        format!(
            "{}/{}",
            o.name.as_deref().unwrap_or_default(),
            o.field_path.as_deref().unwrap_or_default()
        ),
        o.uid.clone().unwrap_or_default(),
        r.kind,
        r.reason,
        r.message.clone(),
    )
}

/// What the writer remembers of an Event it wrote.
struct Seen {
    name: String,
    count: i64,
}

const CACHE_SIZE: usize = 4096;
const BATCH: usize = 512;

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// The new Event for a record (`makeEvent` / `generateEvent`), named with
/// `nanos` (the record's time in unix nanoseconds, made unique by the writer:
/// upstream's names differ because each is taken at its own call).
fn new_event(r: &Record, nanos: i128) -> Value {
    let ns = r
        .involved
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let name = format!(
        "{}.{:x}",
        r.involved.name.as_deref().unwrap_or_default(),
        nanos
    );
    let mut ev = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": r.involved,
        "reason": r.reason,
        "message": r.message,
        "type": r.kind.as_str(),
    });
    match &r.reporter {
        Reporter::Legacy { component, host } => {
            let t = rfc3339(r.at);
            ev["source"] = json!({"component": component});
            if let Some(h) = host {
                ev["source"]["host"] = json!(h);
                ev["reportingInstance"] = json!(h);
            } else {
                ev["reportingInstance"] = json!("");
            }
            ev["reportingComponent"] = json!(component);
            ev["firstTimestamp"] = json!(t);
            ev["lastTimestamp"] = json!(t);
            ev["count"] = json!(1);
            ev["eventTime"] = Value::Null;
        }
        Reporter::Series {
            controller,
            instance,
            action,
        } => {
            ev["eventTime"] = json!(micro_time(r.at));
            ev["action"] = json!(action);
            ev["reportingComponent"] = json!(controller);
            ev["reportingInstance"] = json!(instance);
            ev["source"] = json!({});
            ev["firstTimestamp"] = Value::Null;
            ev["lastTimestamp"] = Value::Null;
        }
    }
    ev
}

/// The patch of a repeated Event (`count`/`lastTimestamp`, or the series).
fn repeat_patch(r: &Record, count: i64) -> Value {
    match &r.reporter {
        Reporter::Legacy { .. } => json!({
            "count": count,
            "lastTimestamp": rfc3339(r.at),
            "message": r.message,
        }),
        Reporter::Series { .. } => json!({
            "series": {"count": count, "lastObservedTime": micro_time(r.at)},
        }),
    }
}

async fn write_events(api: Api, mut rx: mpsc::UnboundedReceiver<Record>) {
    let Ok(d) = api.resource("", "v1", "events") else {
        return;
    };
    let mut seen: HashMap<EventKey, Seen> = HashMap::new();
    let mut last_nanos: i128 = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        for r in batch.drain(..) {
            let key = key_of(&r);
            if let Some(s) = seen.get_mut(&key) {
                let count = s.count + 1;
                let body = repeat_patch(&r, count).to_string();
                let ns = r.involved.namespace.clone().filter(|n| !n.is_empty());
                let ns = ns.as_deref().unwrap_or("default");
                match api.patch(
                    &d,
                    Some(ns),
                    &s.name,
                    PatchKind::Merge,
                    body.as_bytes(),
                    Part::Main,
                    &WriteOptions::default(),
                ) {
                    Ok(_) => {
                        s.count = count;
                        continue;
                    }
                    Err(e) if e.code == 404 => {
                        seen.remove(&key);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e.message, "failed to update an event");
                        continue;
                    }
                }
            }
            last_nanos = r.at.as_nanosecond().max(last_nanos + 1);
            let ev = new_event(&r, last_nanos);
            let name = ev["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ns = ev["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match api.create(&d, Some(&ns), ev, &WriteOptions::default()) {
                Ok(_) => {
                    if seen.len() >= CACHE_SIZE {
                        seen.clear();
                    }
                    seen.insert(key, Seen { name, count: 1 });
                }
                // A namespace being deleted takes no new Events (as upstream).
                Err(e) => tracing::debug!(error = %e.message, "failed to record an event"),
            }
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reason: &'static str) -> Record {
        Record {
            involved: ObjectReference {
                api_version: Some("apps/v1".into()),
                kind: Some("StatefulSet".into()),
                namespace: Some("ns".into()),
                name: Some("web".into()),
                uid: Some("u1".into()),
                ..ObjectReference::default()
            },
            kind: EventKind::Normal,
            reason,
            message: "create Pod web-0 in StatefulSet web successful".into(),
            reporter: Reporter::Legacy {
                component: "statefulset-controller",
                host: None,
            },
            at: "2026-01-02T03:04:05.123456789Z".parse().unwrap_or_default(),
        }
    }

    #[test]
    fn a_legacy_event_is_named_after_its_object_and_counts_from_one() {
        let r = record("SuccessfulCreate");
        let ev = new_event(&r, r.at.as_nanosecond());
        let name = ev["metadata"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with("web."), "{name}");
        assert_eq!(ev["source"]["component"], "statefulset-controller");
        assert_eq!(ev["reportingComponent"], "statefulset-controller");
        assert_eq!(ev["count"], 1);
        assert_eq!(ev["firstTimestamp"], "2026-01-02T03:04:05Z");
        assert_eq!(ev["involvedObject"]["kind"], "StatefulSet");
        assert_eq!(repeat_patch(&record("SuccessfulCreate"), 2)["count"], 2);
    }
}
