//! Where the rollout controller's watches run: on the runtime that polls the controller (the
//! default of an embedded [`Operator`](crate::Operator)), or on a runtime of their own
//! ([`WatchRuntime`], what `sroll operator` starts by default).
//!
//! kube-runtime's `Controller` polls its trigger streams and its reconciles in one task, so on
//! any runtime the watches decode events only between reconciles. At 100 sets × 1,000 pods
//! rolling at once that starved the pod watch on one thread until the API server expired it
//! (BENCHMARKS.md "Session 14"); a multi-thread runtime kept up but spent half to two thirds
//! more CPU per pod than one thread in the same runs, waking its worker threads for each other
//! (session 15). A watch runtime of its own gives the watches — the HTTP connections, the JSON
//! decoding, the caches and the pod index they update, and the trigger filters — a thread of
//! their own, and hands the controller only the triggers, through one channel per watch
//! ([`WatchRuntime::detach`]).

use std::{fmt, time::Duration};

use futures::{Stream, StreamExt, stream::BoxStream};
use kube::Client;
use tokio::runtime::{Handle, Runtime};

/// How many triggers of one watch may wait for the controller before the watch itself waits
/// (as it does when the controller polls it directly). Triggers are small (a key or a trimmed
/// object), and the controller coalesces them per rollout.
const TRIGGERS_IN_FLIGHT: usize = 4096;

/// Why the watch threads did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The runtime could not be built (threads, the I/O driver).
    #[error("failed to start the watch threads: {0}")]
    Runtime(#[source] std::io::Error),
    /// The watches' client could not be built from the configuration.
    #[error("failed to build the watches' API client: {0}")]
    Client(#[source] Box<kube::Error>),
}

/// A runtime for the watches, and an API client whose connections live on it.
#[derive(Clone)]
pub struct WatchRuntime {
    handle: Handle,
    client: Client,
}

impl fmt::Debug for WatchRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchRuntime").finish_non_exhaustive()
    }
}

/// The runtime a [`WatchRuntime`] runs on; shut it down ([`WatchThreads::shutdown`]) after the
/// operator returned, outside any async context.
#[derive(Debug)]
pub struct WatchThreads(Runtime);

impl WatchThreads {
    /// Stops the watch threads, waiting up to `timeout` for their tasks to notice.
    pub fn shutdown(self, timeout: Duration) {
        self.0.shutdown_timeout(timeout);
    }
}

impl WatchRuntime {
    /// Starts `threads` threads (named `sroll-watch`) for the watches and builds, on them, a
    /// client of `config` ([`operator_client`](crate::operator_client)): kube's client spawns its
    /// request buffer and HTTP connections on the runtime it is built in, so the watches' bytes
    /// are read and decoded there.
    pub fn start(config: kube::Config, threads: u16) -> Result<(Self, WatchThreads), StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(threads.max(1)))
            .thread_name("sroll-watch")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let client = {
            let _entered = runtime.enter();
            crate::operator_client(config).map_err(|e| StartError::Client(Box::new(e)))?
        };
        let watches = Self {
            handle: runtime.handle().clone(),
            client,
        };
        Ok((watches, WatchThreads(runtime)))
    }

    /// The client the watches use (its connections live on the watch threads).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Polls `stream` on the watch threads and yields its items here, in order. The task ends
    /// when `stream` does or when the returned stream is dropped (it notices at once, even while
    /// `stream` waits for an event).
    pub fn detach<S>(&self, stream: S) -> BoxStream<'static, S::Item>
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel(TRIGGERS_IN_FLIGHT);
        self.handle.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                let item = tokio::select! {
                    item = stream.next() => item,
                    () = tx.closed() => return,
                };
                let Some(item) = item else { return };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }
}

/// `stream` on the watch threads when there are some, else as it is (polled by its consumer).
pub fn detached<S>(watches: Option<&WatchRuntime>, stream: S) -> BoxStream<'static, S::Item>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    match watches {
        Some(watches) => watches.detach(stream),
        None => stream.boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_config() -> kube::Config {
        kube::Config::new("http://127.0.0.1:9".parse().expect("a valid URL"))
    }

    #[tokio::test]
    async fn a_detached_stream_runs_on_the_watch_threads_and_keeps_its_order() {
        let (watches, threads) = WatchRuntime::start(local_config(), 1).expect("starts");
        let here = std::thread::current().id();
        let items: Vec<(u32, bool)> = watches
            .detach(futures::stream::iter(0..10_000u32).map(move |i| {
                let name = std::thread::current().name().map(str::to_owned);
                (
                    i,
                    std::thread::current().id() != here && name.as_deref() == Some("sroll-watch"),
                )
            }))
            .collect()
            .await;
        assert_eq!(
            items.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..10_000).collect::<Vec<_>>()
        );
        assert!(
            items.iter().all(|(_, elsewhere)| *elsewhere),
            "every item was produced on a sroll-watch thread"
        );
        tokio::task::spawn_blocking(move || threads.shutdown(Duration::from_secs(5)))
            .await
            .expect("shuts down");
    }

    #[tokio::test]
    async fn dropping_the_detached_stream_ends_the_task_even_while_the_watch_waits() {
        let (watches, threads) = WatchRuntime::start(local_config(), 1).expect("starts");
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        // A stream that never yields and reports when the task drops it.
        struct Guard(Option<tokio::sync::oneshot::Sender<()>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                if let Some(tx) = self.0.take() {
                    let _ = tx.send(());
                }
            }
        }
        let guard = Guard(Some(dropped_tx));
        let pending = futures::stream::pending::<u8>().map(move |x| {
            let _ = &guard;
            x
        });
        let stream = watches.detach(pending);
        drop(stream);
        tokio::time::timeout(Duration::from_secs(30), dropped_rx)
            .await
            .expect("the watch task ends once nobody reads it")
            .expect("the guard was dropped, not leaked");
        tokio::task::spawn_blocking(move || threads.shutdown(Duration::from_secs(5)))
            .await
            .expect("shuts down");
    }

    #[tokio::test]
    async fn without_watch_threads_the_stream_is_polled_by_its_consumer() {
        let here = std::thread::current().id();
        let threads: Vec<bool> = detached(
            None,
            futures::stream::iter(0..3).map(move |_| std::thread::current().id() == here),
        )
        .collect()
        .await;
        assert_eq!(threads, vec![true, true, true]);
    }

    #[test]
    fn the_watch_client_is_built_on_the_watch_threads() {
        // kube's client spawns its request buffer on the runtime it is built in; outside of any
        // runtime (this plain test thread) that panics unless `start` entered the watch runtime.
        let (watches, threads) = WatchRuntime::start(local_config(), 1).expect("starts");
        drop(watches);
        threads.shutdown(Duration::from_secs(5));
    }
}
