//! `/metrics` in Prometheus text format.
//!
//! Names follow the real API server where one exists
//! (`apiserver_request_total`, `apiserver_longrunning_requests`,
//! `apiserver_storage_objects`, `apiserver_request_duration_seconds`); the
//! request counter adds a `user_agent` label (product token only) so the
//! benchmarks can count one client's calls.

use std::sync::atomic::AtomicI64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::store::Store;

/// Labels of `apiserver_request_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`, `DELETECOLLECTION`.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource or "".
    pub subresource: String,
    /// HTTP status code.
    pub code: String,
    /// Client product token (`kubectl`, `kube-rs`, `sroll`).
    pub user_agent: String,
}

/// Labels of per-resource gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// Resource (`pods`, `statefulsets.apps`).
    pub resource: String,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    /// Verb.
    pub verb: String,
    /// Resource.
    pub resource: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by verb, resource, code and user agent.
    pub requests: Family<RequestLabels, Counter>,
    /// Open watch connections by resource.
    pub watches: Family<ResourceLabels, Gauge<i64, AtomicI64>>,
    /// Watch connections opened in total by resource.
    pub watches_total: Family<ResourceLabels, Counter>,
    /// Watch events sent.
    pub watch_events: Family<ResourceLabels, Counter>,
    /// Stored objects by resource (refreshed at scrape).
    pub objects: Family<ResourceLabels, Gauge<i64, AtomicI64>>,
    /// Request latency (non-watch).
    pub latency: Family<VerbLabels, Histogram>,
    /// Current resourceVersion.
    pub resource_version: Gauge<i64, AtomicI64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let watches = Family::<ResourceLabels, Gauge<i64, AtomicI64>>::default();
        let watches_total = Family::<ResourceLabels, Counter>::default();
        let watch_events = Family::<ResourceLabels, Counter>::default();
        let objects = Family::<ResourceLabels, Gauge<i64, AtomicI64>>::default();
        let latency = Family::<VerbLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let resource_version = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, group, resource, subresource, response code and user agent.",
            requests.clone(),
        );
        registry.register(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running (watch) requests by resource.",
            watches.clone(),
        );
        registry.register(
            "kubesim_watch_connections",
            "Counter of watch connections opened by resource.",
            watches_total.clone(),
        );
        registry.register(
            "kubesim_watch_events",
            "Counter of watch events sent by resource.",
            watch_events.clone(),
        );
        registry.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind.",
            objects.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb and resource (watches excluded).",
            latency.clone(),
        );
        registry.register(
            "kubesim_resource_version",
            "The current global resourceVersion.",
            resource_version.clone(),
        );
        Metrics {
            registry,
            requests,
            watches,
            watches_total,
            watch_events,
            objects,
            latency,
            resource_version,
        }
    }

    /// The exposition text, with storage gauges refreshed from `store`.
    pub fn render(&self, store: &Store) -> String {
        let stats = store.stats();
        for (res, n) in stats.objects {
            self.objects
                .get_or_create(&ResourceLabels { resource: res })
                .set(n as i64);
        }
        self.resource_version
            .set(i64::try_from(stats.resource_version).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Metrics {
    /// [`Metrics::render`] followed by the metrics of each of `extra` (the
    /// admission webhooks' registry, the controllers'), in one exposition.
    pub fn render_with(&self, store: &Store, extra: &[&Registry]) -> String {
        let mut out = self.render(store);
        for registry in extra {
            if let Some(head) = out.strip_suffix("# EOF\n") {
                out.truncate(head.len());
            }
            // Writing into a String cannot fail.
            let _ = encode(&mut out, registry);
        }
        out
    }
}

/// Labels of `kubesim_controller_syncs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `statefulset`, `disruption`, `endpointslice`, or `pod` (the kubelet
    /// and scheduler's per-pod sync).
    pub controller: String,
}

/// The simulated controllers' metrics, held by the [`crate::api::Api`] so
/// that a simulation started on it (`controllers::runtime::Simulation`)
/// counts into the `/metrics` of the server serving it.
///
/// `kubesim_controller_syncs_total{controller}`: syncs run (one per key a
/// worker takes from its work queue, whatever the outcome). kube-controller-
/// manager has no such series under this name; its work queues'
/// `workqueue_adds_total` counts additions, not syncs.
pub struct ControllerMetrics {
    registry: Registry,
    syncs: Family<ControllerLabels, Counter>,
}

impl std::fmt::Debug for ControllerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerMetrics").finish_non_exhaustive()
    }
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let syncs = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "kubesim_controller_syncs",
            "Counter of syncs run by the simulated controllers (one per key taken from a work queue), by controller.",
            syncs.clone(),
        );
        Self { registry, syncs }
    }
}

impl ControllerMetrics {
    /// The sync counter of `controller` (a handle sharing the count).
    pub fn syncs(&self, controller: &str) -> Counter {
        self.syncs
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .clone()
    }

    /// The registry (the server appends it to `/metrics`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// The product token of a `User-Agent` (`kubectl/v1.32.0 (linux/amd64)` → `kubectl`).
pub fn user_agent_product(ua: &str) -> String {
    let first = ua.split_whitespace().next().unwrap_or_default();
    let product = first.split('/').next().unwrap_or_default();
    if product.is_empty() {
        "unknown".into()
    } else {
        product.chars().take(64).collect()
    }
}
