//! Events off the reconcile's critical path: a reconcile hands its events to one background task
//! that publishes them in order through kube-runtime's [`Recorder`] (which aggregates repeats of a
//! reason into one events.k8s.io series). A reconcile that evicted a pod therefore returns as soon
//! as its status is written, and the next freed slot is not kept waiting behind an Event round
//! trip. One task, not one per event: two concurrent publishes of the same reason would both miss
//! the recorder's cache and create two Event objects instead of one series.
//!
//! Events stay best effort, as with any controller: a failed publish is logged, never retried, and
//! never undoes or repeats the action it describes.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::mpsc;

/// The sending half; cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<(Event, ObjectReference)>,
}

/// The publishing task; await [`EventPublisher::flush`] after the last sink is dropped to publish
/// what is still queued (a graceful shutdown).
#[derive(Debug)]
pub struct EventPublisher {
    task: tokio::task::JoinHandle<()>,
}

impl EventSink {
    /// Starts the publishing task.
    pub fn start(recorder: Recorder) -> (Self, EventPublisher) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Event, ObjectReference)>();
        let task = tokio::spawn(async move {
            while let Some((event, reference)) = rx.recv().await {
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::warn!(error = %e, reason = %event.reason, "failed to record an event");
                }
            }
        });
        (Self { tx }, EventPublisher { task })
    }

    /// Queues `event` about `reference`; never blocks.
    pub fn publish(&self, event: Event, reference: ObjectReference) {
        if self.tx.send((event, reference)).is_err() {
            tracing::debug!("the event publisher has stopped; event dropped");
        }
    }

    /// Queues an Event whose action is its reason, with no related object (the workload
    /// controllers' Events: `SuccessfulCreate`, `UpgradingPods`, …).
    pub fn publish_reason(
        &self,
        type_: EventType,
        reason: &str,
        note: String,
        reference: &ObjectReference,
    ) {
        self.publish(
            Event {
                type_,
                reason: reason.into(),
                note: Some(note),
                action: reason.into(),
                secondary: None,
            },
            reference.clone(),
        );
    }
}

/// How long a graceful shutdown waits for queued events.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl EventPublisher {
    /// Waits until every queued event is published (once every sink is dropped), at most
    /// [`FLUSH_TIMEOUT`]; then drops what is left (events are best effort, a shutdown is not).
    pub async fn flush(mut self) {
        match tokio::time::timeout(FLUSH_TIMEOUT, &mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the event publisher failed"),
            Err(_) => {
                tracing::warn!(
                    "events still queued after {FLUSH_TIMEOUT:?} at shutdown: dropping them"
                );
                self.task.abort();
            }
        }
    }
}
