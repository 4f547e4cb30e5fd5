//! Watch streaming: newline-delimited JSON `{"type": …, "object": …}` events
//! over a chunked 200 response.
//!
//! Follows `k8s.io/apiserver/pkg/endpoints/handlers/watch.go` and the watch
//! cache (`k8s.io/apiserver/pkg/storage/cacher`): `timeoutSeconds` ends the
//! stream cleanly, `allowWatchBookmarks` yields periodic BOOKMARK events (and
//! one just before a timeout), `sendInitialEvents` ends the initial ADDED
//! events with a BOOKMARK annotated `k8s.io/initial-events-end: "true"`, an
//! expired resourceVersion is a single ERROR event carrying a 410 `Expired`
//! Status inside the 200 stream.
//!
//! Fault injection (`crate::faults`): a watch is cut (its stream ends cleanly, as when an API
//! server or a load balancer closes it) `watch_cut_seconds` after it opened — and a watch already
//! open when faults are switched on is cut that long after the switch, so a client's long-lived
//! watches (290 s for kube-rs, up to an hour upstream) meet the cuts too, not only the watches
//! opened after the faults were set. Switching the cut off spares the open watches.

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use serde_json::json;
use tokio::time::Instant;

use super::{ServerState, item_json, metrics::ResourceLabels};
use crate::{
    api::{ApiError, RawEvent, Result, Watch, WatchOptions},
    registry::ResourceDescriptor,
    selector::{FieldSelector, LabelSelector},
    store::EventType,
    table,
};

/// Decrements the open-watch gauge when the stream is dropped.
struct Guard {
    s: ServerState,
    labels: ResourceLabels,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.s.metrics.watches.get_or_create(&self.labels).dec();
    }
}

struct StreamState {
    w: Watch,
    d: Arc<ResourceDescriptor>,
    table: Option<table::TableVersion>,
    deadline: Instant,
    cut_at: Option<Instant>,
    /// Fault configuration changes (`None` without fault injection).
    faults: Option<tokio::sync::watch::Receiver<u64>>,
    /// The watching client's User-Agent product (faults may be limited to some clients).
    client: String,
    bookmarks: bool,
    interval: Duration,
    next_bookmark: Instant,
    done: bool,
    guard: Guard,
}

fn bookmark_frame(d: &ResourceDescriptor, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": d.kind, "apiVersion": d.api_version(), "metadata": meta});
    Bytes::from(format!("{{\"type\":\"BOOKMARK\",\"object\":{obj}}}\n"))
}

fn error_frame(e: &ApiError) -> Bytes {
    Bytes::from(format!(
        "{{\"type\":\"ERROR\",\"object\":{}}}\n",
        e.to_status()
    ))
}

impl StreamState {
    fn frame(&self, ev: &RawEvent) -> Bytes {
        match ev {
            RawEvent::Object(kind, s) => {
                let ty = match kind {
                    EventType::Added => "ADDED",
                    EventType::Modified => "MODIFIED",
                    EventType::Deleted => "DELETED",
                };
                if let Some(tt) = self.table {
                    let v = s.value();
                    let opts = table::TableOptions::default();
                    let now = chrono::Utc::now();
                    let t = match &self.d.crd_version {
                        Some(cv) => table::PrinterColumns::from_crd_version(cv)
                            .map(|c| c.table(std::slice::from_ref(&v), None, &opts, tt, now))
                            .unwrap_or(v),
                        None => table::table(
                            &self.d.group,
                            &self.d.kind,
                            std::slice::from_ref(&v),
                            None,
                            &opts,
                            tt,
                            now,
                        ),
                    };
                    return Bytes::from(format!("{{\"type\":\"{ty}\",\"object\":{t}}}\n"));
                }
                let body = item_json(&self.d, s);
                let mut out = Vec::with_capacity(body.len() + 40);
                out.extend_from_slice(b"{\"type\":\"");
                out.extend_from_slice(ty.as_bytes());
                out.extend_from_slice(b"\",\"object\":");
                out.extend_from_slice(&body);
                out.extend_from_slice(b"}\n");
                Bytes::from(out)
            }
            RawEvent::Bookmark { rv, initial_end } => bookmark_frame(&self.d, *rv, *initial_end),
            RawEvent::Error(e) => error_frame(e),
        }
    }

    /// Applies a changed fault configuration to this open watch: a cut switched on ends it that
    /// long from now (or earlier, when one is already due sooner); switched off, it is not cut.
    fn recut(&mut self) {
        let cut = self
            .guard
            .s
            .faults
            .as_ref()
            .map(crate::faults::Faults::config)
            .filter(|c| c.hits(&self.client))
            .and_then(|c| c.watch_cut_seconds)
            .map(Duration::from_secs);
        self.cut_at = cut.map(|c| {
            let at = Instant::now() + c;
            self.cut_at.map_or(at, |due| due.min(at))
        });
    }

    async fn step(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let mut wake = self.deadline;
            if self.bookmarks {
                wake = wake.min(self.next_bookmark);
            }
            if let Some(c) = self.cut_at {
                wake = wake.min(c);
            }
            let shutdown = self.guard.s.shutdown.clone();
            let faults = &mut self.faults;
            let faults_changed = async move {
                match faults.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                live = faults_changed => {
                    if live {
                        self.recut();
                    } else {
                        self.faults = None;
                    }
                }
                ev = self.w.next_raw() => {
                    let ev = ev?;
                    if matches!(ev, RawEvent::Error(_)) {
                        self.done = true;
                    }
                    if let RawEvent::Bookmark { initial_end: true, .. } = ev
                        && !self.bookmarks
                    {
                        continue;
                    }
                    self.guard.s.metrics.watch_events.get_or_create(&self.guard.labels).inc();
                    return Some(self.frame(&ev));
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if self.cut_at.is_some_and(|c| now >= c) {
                        return None;
                    }
                    // A bookmark only when every event read so far has been sent: one carrying
                    // the cursor ahead of queued events would let a client resuming from it (after
                    // a cut or the timeout) skip them for good.
                    if now >= self.deadline {
                        self.done = true;
                        if self.bookmarks
                            && let Some(rv) = self.w.bookmark_rv()
                        {
                            return Some(bookmark_frame(&self.d, rv, false));
                        }
                        return None;
                    }
                    if self.bookmarks && now >= self.next_bookmark {
                        self.next_bookmark = now + self.interval;
                        if let Some(rv) = self.w.bookmark_rv() {
                            return Some(bookmark_frame(&self.d, rv, false));
                        }
                    }
                }
            }
        }
    }
}

/// Serves `GET …?watch=true`.
pub(super) fn serve(
    s: &ServerState,
    d: &Arc<ResourceDescriptor>,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    table_target: Option<table::TableVersion>,
    cut_after: Option<Duration>,
    client: String,
) -> Result<Response> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let send_initial = get("sendInitialEvents") == Some("true");
    if send_initial && get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::new(
            422,
            "Invalid",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let opts = WatchOptions {
        label_selector: LabelSelector::parse(get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        field_selector: FieldSelector::parse(get("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        resource_version: get("resourceVersion").map(String::from),
        send_initial_events: send_initial,
    };
    let timeout = match get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t}")))?,
        ),
        // upstream default: a random duration in [minRequestTimeout, 2*minRequestTimeout) (30–60 min)
        None => Duration::from_secs(1800),
    };
    let w = s.api.watch(d, ns, &opts)?;
    let labels = ResourceLabels {
        resource: d.storage_key(),
    };
    s.metrics.watches.get_or_create(&labels).inc();
    s.metrics.watches_total.get_or_create(&labels).inc();
    let now = Instant::now();
    let st = StreamState {
        w,
        d: d.clone(),
        table: table_target,
        deadline: now + timeout,
        cut_at: cut_after.map(|c| now + c),
        faults: s.faults.as_ref().map(crate::faults::Faults::subscribe),
        client,
        bookmarks: get("allowWatchBookmarks") == Some("true"),
        interval: s.options.bookmark_interval,
        next_bookmark: now + s.options.bookmark_interval,
        done: false,
        guard: Guard {
            s: s.clone(),
            labels,
        },
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        let b = st.step().await?;
        Some((Ok::<Bytes, Infallible>(b), st))
    });
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = StatusCode::OK;
    let ct = if table_target.is_some() {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    } else {
        "application/json"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}
