//! Prometheus metrics (prometheus-client), served as text on `/metrics` by [`crate::server`].
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sroll_reconcile_total` | counter | — |
//! | `sroll_reconcile_errors_total` | counter | `reason` ([`crate::Error::metric_label`]) |
//! | `sroll_reconcile_duration_seconds` | histogram | — |
//! | `sroll_planner_pods_total` | counter | — (pods handed to the planner: one plan of n pods counts n) |
//! | `sroll_planner_pod_visits_total` | counter | — (pods the planner's decisions looked at, summed over plans: O(batch + in flight) per plan, not O(pods); `Plan::cost`) |
//! | `sroll_planner_status_pods_total` | counter | — (`status.pods` entries written by plans: that reference field lists every pod, so it is O(pods) per plan by design) |
//! | `sroll_plans_skipped_total` | counter | — (reconciles that observed nothing new and planned nothing) |
//! | `sroll_evictions_total` | counter | `result` (`evicted`, `throttled`, `gone`, `error`) |
//! | `sroll_rollout_duration_seconds` | histogram | — (first pod moved → done) |
//! | `sroll_rollout_pods_updated` | histogram | — (pods moved by a finished rollout) |
//! | `sroll_rollout_phase` | gauge | `namespace`, `name`, `phase` (1 for the current phase) |

use std::sync::Arc;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Label of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// [`crate::Error::metric_label`].
    pub reason: String,
}

/// Label of the eviction counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvictionLabels {
    /// `evicted`, `throttled` (429: the budget is spent), `gone` (404: already deleted) or `error`.
    pub result: String,
}

/// Labels of the phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// Rollout namespace.
    pub namespace: String,
    /// Rollout name.
    pub name: String,
    /// Phase name (`RolloutInProgress`, …).
    pub phase: String,
}

/// Every metric the operator exports, with the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconcile errors by reason.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration.
    pub reconcile_duration: Histogram,
    /// Pods handed to the planner, summed over plans: the planner's work.
    pub planner_pods: Counter,
    /// Pods the planner's decisions looked at (`PlanCost::pods_visited`), summed over plans.
    pub planner_pod_visits: Counter,
    /// `status.pods` entries written by plans (`PlanCost::status_pods`).
    pub planner_status_pods: Counter,
    /// Reconciles that observed nothing new since the rollout's last plan, with no timer due.
    pub plans_skipped: Counter,
    /// Eviction attempts by result.
    pub evictions: Family<EvictionLabels, Counter>,
    /// Duration of finished rollouts.
    pub rollout_duration: Histogram,
    /// Pods moved by finished rollouts.
    pub pods_updated: Histogram,
    /// 1 for each rollout's current phase, 0 for phases it left.
    pub phase: Family<PhaseLabels, Gauge>,
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

impl Metrics {
    /// Creates and registers every metric under the `sroll` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sroll");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let evictions = Family::<EvictionLabels, Counter>::default();
        let planner_pods = Counter::default();
        let planner_pod_visits = Counter::default();
        let planner_status_pods = Counter::default();
        let plans_skipped = Counter::default();
        let rollout_duration = Histogram::new([
            10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
            43200.0, 86400.0,
        ]);
        let pods_updated = Histogram::new([
            1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
        ]);
        let phase = Family::<PhaseLabels, Gauge>::default();
        registry.register("reconcile", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconcile errors by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile, in seconds",
            reconcile_duration.clone(),
        );
        registry.register(
            "planner_pods",
            "Pods handed to the planner, summed over plans",
            planner_pods.clone(),
        );
        registry.register(
            "planner_pod_visits",
            "Pods the planner's decisions looked at, summed over plans (O(batch + in flight) per plan)",
            planner_pod_visits.clone(),
        );
        registry.register(
            "planner_status_pods",
            "status.pods entries written by plans (the field lists every pod)",
            planner_status_pods.clone(),
        );
        registry.register(
            "plans_skipped",
            "Reconciles that observed nothing new since the last plan and planned nothing",
            plans_skipped.clone(),
        );
        registry.register(
            "evictions",
            "Pod eviction attempts by result",
            evictions.clone(),
        );
        registry.register(
            "rollout_duration_seconds",
            "Duration of finished rollouts, from the first pod moved to done, in seconds",
            rollout_duration.clone(),
        );
        registry.register(
            "rollout_pods_updated",
            "Pods moved to the new revision by a finished rollout",
            pods_updated.clone(),
        );
        registry.register(
            "rollout_phase",
            "1 for the current phase of each rollout",
            phase.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            reconcile_duration,
            planner_pods,
            planner_pod_visits,
            planner_status_pods,
            plans_skipped,
            evictions,
            rollout_duration,
            pods_updated,
            phase,
        }
    }

    /// Counts one eviction attempt.
    pub fn eviction(&self, result: &str) {
        self.evictions
            .get_or_create(&EvictionLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one reconcile error.
    pub fn error(&self, err: &crate::Error) {
        self.errors
            .get_or_create(&ErrorLabels {
                reason: err.metric_label().to_owned(),
            })
            .inc();
    }

    /// Sets the phase gauge of one rollout: 1 for `phase`, 0 for every other phase it had.
    pub fn set_phase(&self, namespace: &str, name: &str, phase: &str) {
        for known in sroll_api::Phase::KNOWN {
            let labels = PhaseLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                phase: (*known).to_owned(),
            };
            if *known == phase {
                self.phase.get_or_create(&labels).set(1);
            } else if self.phase.get(&labels).is_some() {
                self.phase.get_or_create(&labels).set(0);
            }
        }
    }

    /// Drops the phase gauge of a deleted rollout.
    pub fn forget(&self, namespace: &str, name: &str) {
        for known in sroll_api::Phase::KNOWN {
            self.phase.remove(&PhaseLabels {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                phase: (*known).to_owned(),
            });
        }
    }

    /// The metrics in the Prometheus text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Shared handle to the metrics.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_metrics_carry_the_documented_names() {
        let m = Metrics::new();
        m.reconciles.inc();
        m.eviction("throttled");
        m.error(&crate::Error::CrdMissing);
        m.set_phase("ns", "web", "RolloutInProgress");
        m.set_phase("ns", "web", "RolloutDone");
        m.reconcile_duration.observe(0.01);
        let text = m.encode();
        for needle in [
            "sroll_reconcile_total 1",
            "sroll_reconcile_errors_total{reason=\"crd_missing\"} 1",
            "sroll_evictions_total{result=\"throttled\"} 1",
            "sroll_reconcile_duration_seconds_count 1",
            "sroll_rollout_phase{namespace=\"ns\",name=\"web\",phase=\"RolloutDone\"} 1",
            "sroll_rollout_phase{namespace=\"ns\",name=\"web\",phase=\"RolloutInProgress\"} 0",
            "sroll_rollout_duration_seconds",
            "sroll_rollout_pods_updated",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
