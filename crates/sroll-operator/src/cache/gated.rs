//! Watches that run only while something needs them ([`WatchGate`], [`gated_reflector`]).
//!
//! The SidecarSet controller needs every pod of the cluster, as full objects, but only while at
//! least one SidecarSet exists: a cluster-wide operator with no SidecarSet held a second copy of
//! every pod for nothing (measured with heaptrack at 100 × 200 watched pods: 141 of 198 MiB of
//! peak heap were that pod cache and its watch, `BENCHMARKS.md`, branch sidemem). A gated watch
//! lists and watches while its gate is open; when the gate closes, the watch is dropped (its
//! connection closed) and its store emptied; opening it again starts a new list.

use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use kube::{
    Api, Resource,
    runtime::{WatchStreamExt, reflector::store::Writer, watcher},
};
use tokio::sync::watch;

use super::WatchBackoff;

/// What a gated watch should be doing, and whether its store is complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GateState {
    /// The watch should run.
    open: bool,
    /// Counts the openings: a watch started for one opening stops at the next (a close and a
    /// reopening its stream did not see still mean a new list).
    opening: u64,
    /// How many of the gate's watches have a complete list taken since this opening.
    synced: usize,
    /// How many watches the gate opens and closes.
    watches: usize,
}

impl GateState {
    fn synced(&self) -> bool {
        self.open && self.synced == self.watches
    }
}

/// Opens and closes one or more gated watches ([`gated_reflector`]) and tells their readers
/// when the store is complete. Clones share the gate.
#[derive(Clone, Debug)]
pub struct WatchGate(Arc<watch::Sender<GateState>>);

impl Default for WatchGate {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(GateState::default())))
    }
}

impl WatchGate {
    /// Opens (`true`) or closes the gate; nothing happens when it already is.
    pub fn set_open(&self, open: bool) {
        self.0.send_if_modified(|s| {
            if s.open == open {
                return false;
            }
            s.open = open;
            s.synced = 0;
            if open {
                s.opening += 1;
            }
            true
        });
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        self.0.borrow().open
    }

    /// Waits until the stores of all the gate's watches hold a complete list taken since the
    /// gate last opened (`true`), or the gate is closed (`false`: the stores are, or are about to
    /// be, empty).
    pub async fn synced(&self) -> bool {
        let mut rx = self.0.subscribe();
        rx.wait_for(|s| s.synced() || !s.open)
            .await
            .is_ok_and(|s| s.synced())
    }

    /// One watch has listed for `opening` (called once per watch and opening).
    fn mark_synced(&self, opening: u64) {
        self.0.send_if_modified(|s| {
            if !s.open || s.opening != opening {
                return false;
            }
            s.synced += 1;
            true
        });
    }
}

/// A watch of `api` into `writer`'s store that runs only while `gate` is open: each opening starts
/// a watcher (a new list), each closing drops it and empties the store. Yields the objects each
/// event touched, as `WatchStreamExt::touched_objects` does.
pub fn gated_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    mut writer: Writer<K>,
    gate: WatchGate,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    // Every change of the gate's state, starting with the current one. While a watch runs, this
    // stream is not polled (`flat_map` runs one inner stream at a time); it then yields the state
    // the gate is in once that watch has stopped.
    let states = stream::unfold((gate.0.subscribe(), true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let state = *rx.borrow_and_update();
        Some((state, (rx, false)))
    });
    gate.0.send_modify(|s| s.watches += 1);
    let sender = gate.clone();
    // The last opening this watch reported listed (a relist within an opening is not counted
    // again).
    let mut reported = 0;
    states
        .flat_map(move |state| {
            if state.open {
                let opening = state.opening;
                let mut rx = sender.0.subscribe();
                let closed = async move {
                    let _ = rx.wait_for(|s| !s.open || s.opening != opening).await;
                };
                watcher(api.clone(), config.clone())
                    .backoff(WatchBackoff::default())
                    .map(move |event| (Some(opening), event))
                    .take_until(closed)
                    .boxed()
            } else {
                // An empty list: the store drops every object.
                stream::iter([
                    (None, Ok(watcher::Event::Init)),
                    (None, Ok(watcher::Event::InitDone)),
                ])
                .boxed()
            }
        })
        .map(move |(opening, event)| {
            if let Ok(e) = &event {
                writer.apply_watcher_event(e);
                if let (Some(opening), watcher::Event::InitDone) = (opening, e)
                    && opening > reported
                {
                    reported = opening;
                    gate.mark_synced(opening);
                }
            }
            event
        })
        .touched_objects()
}
