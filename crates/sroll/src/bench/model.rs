//! The performance model of DESIGN.md ("Performance model") as pure functions: the ideal time of a
//! streaming rollout (a pod is evicted as soon as the budget and the pacing allow), and the time a
//! wave-by-wave strategy (evict a batch, wait for the whole batch) needs on the same pod timings.
//!
//! Both take the pods' cycle times (terminate + create + Ready, in seconds) in eviction order.
//! For `k` uniform pods of cycle `c` and a budget `B` without pacing the streaming ideal is
//! DESIGN.md's `ceil(k / B) × c`; with pacing `p` pod `i` cannot be evicted before
//! `t(i-1) + p`, which is the "plus `minPodEvictionIntervalSeconds` pacing" of the formula made
//! exact.

use std::{cmp::Reverse, collections::BinaryHeap};

/// `ceil(k / budget) × cycle`: DESIGN.md's ideal time for `k` uniform pods.
pub fn uniform_ideal(k: usize, budget: usize, cycle: f64) -> f64 {
    let budget = budget.max(1);
    k.div_ceil(budget) as f64 * cycle
}

/// Millisecond key so cycle times can live in a min-heap (cycles are finite and non-negative).
fn key(t: f64) -> u64 {
    (t.max(0.0) * 1e6).round() as u64
}

/// The ideal streaming rollout: pods are evicted in order, each as soon as fewer than `budget`
/// pods are down and at least `pacing` seconds after the previous eviction; a pod is back after
/// its cycle time. Returns the time the last pod is back.
pub fn streaming_ideal(cycles: &[f64], budget: usize, pacing: f64) -> f64 {
    let budget = budget.max(1);
    // Completion times of the pods currently down (at most `budget`), earliest first.
    let mut down: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
    let mut last_eviction: Option<f64> = None;
    let mut end = 0.0f64;
    for &c in cycles {
        let mut start = last_eviction.map_or(0.0, |t| t + pacing);
        if down.len() >= budget
            && let Some(Reverse(free)) = down.pop()
        {
            start = start.max(free as f64 / 1e6);
        }
        last_eviction = Some(start);
        let back = start + c;
        end = end.max(back);
        down.push(Reverse(key(back)));
    }
    end
}

/// The wave-by-wave strategy: pods in order, in batches of `budget`; a batch is evicted at once
/// (or `pacing` apart) and the next batch starts when every pod of this one is back.
pub fn waves(cycles: &[f64], budget: usize, pacing: f64) -> f64 {
    cycles
        .chunks(budget.max(1))
        .map(|batch| {
            batch
                .iter()
                .enumerate()
                .map(|(i, c)| i as f64 * pacing + c)
                .fold(0.0, f64::max)
        })
        .sum()
}

/// The `q`-quantile (0..=1) of `values` by the nearest-rank method; 0 for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn uniform_pods_without_pacing_take_ceil_k_over_b_cycles() {
        assert!(close(uniform_ideal(1000, 100, 2.0), 20.0));
        assert!(close(uniform_ideal(1001, 100, 2.0), 22.0));
        assert!(close(streaming_ideal(&[2.0; 1000], 100, 0.0), 20.0));
        assert!(close(streaming_ideal(&[2.0; 1001], 100, 0.0), 22.0));
        assert!(close(waves(&[2.0; 1000], 100, 0.0), 20.0));
    }

    #[test]
    fn a_budget_of_one_moves_pods_one_after_the_other() {
        assert!(close(streaming_ideal(&[2.0; 10], 1, 0.0), 20.0));
        assert!(close(uniform_ideal(10, 0, 2.0), 20.0));
    }

    #[test]
    fn pacing_longer_than_the_budget_allows_dominates() {
        // 10 pods, 1 s apart, 2 s cycle, budget 5: evictions at 0..9, the last back at 11.
        assert!(close(streaming_ideal(&[2.0; 10], 5, 1.0), 11.0));
        // Pacing shorter than cycle / budget: the budget dominates after the first wave.
        // budget 2, cycle 2, pacing 0.5: evictions at 0, 0.5, 2, 2.5, 4, 4.5 → last back at 6.5.
        assert!(close(streaming_ideal(&[2.0; 6], 2, 0.5), 6.5));
    }

    #[test]
    fn streaming_beats_waves_when_pod_times_vary() {
        let cycles = [1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 3.0];
        let s = streaming_ideal(&cycles, 2, 0.0);
        let w = waves(&cycles, 2, 0.0);
        assert!(close(w, 12.0), "{w}");
        assert!(s < w, "streaming {s} vs waves {w}");
        // Two slots: pods start at 0, 0, 1, 2, 3, 4, 5, 6; the last (3 s) is back at 9.
        assert!(close(s, 9.0), "{s}");
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert!(close(quantile(&v, 0.5), 10.0));
        assert!(close(quantile(&v, 0.99), 20.0));
        assert!(close(quantile(&[], 0.5), 0.0));
    }
}
