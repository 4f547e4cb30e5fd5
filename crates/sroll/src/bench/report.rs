//! The benchmark's results: rows, the machine they ran on, the targets marked met or
//! missed, rendered as a table and serialised as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

/// One measured line.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Scenario number (1-7).
    pub scenario: u8,
    /// What ran.
    pub variant: String,
    /// Pods rolled (per run; scenario 5: all sets together).
    pub pods: u32,
    /// Measured (or, where the notes say so, computed or extrapolated) seconds.
    pub measured_seconds: f64,
    /// The ideal seconds of the performance model (scenario 4: the target).
    pub ideal_seconds: f64,
    /// measured / ideal.
    pub ratio: f64,
    /// How to read the line.
    pub notes: String,
    /// Further numbers (API calls per pod, RSS, Slack calls …).
    pub metrics: BTreeMap<String, f64>,
}

impl Row {
    /// A row; the ratio is computed.
    pub fn new(
        scenario: u8,
        variant: String,
        pods: u32,
        measured_seconds: f64,
        ideal_seconds: f64,
        notes: String,
        metrics: BTreeMap<String, f64>,
    ) -> Self {
        let ratio = if ideal_seconds > 0.0 {
            measured_seconds / ideal_seconds
        } else {
            f64::NAN
        };
        Self {
            scenario,
            variant,
            pods,
            measured_seconds,
            ideal_seconds,
            ratio,
            notes,
            metrics,
        }
    }

    /// The row on one line.
    pub fn one_line(&self) -> String {
        format!(
            "{}: {} pods, {:.2} s measured, {:.2} s ideal, ratio {:.3} — {}",
            self.variant,
            self.pods,
            self.measured_seconds,
            self.ideal_seconds,
            self.ratio,
            self.notes
        )
    }
}

/// The machine the benchmark ran on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Total memory (MiB), from /proc/meminfo.
    pub memory_mib: u64,
    /// CPU model, from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads the machine's description (Linux `/proc`; blanks elsewhere).
    pub fn current() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Self {
            cores,
            memory_mib,
            cpu_model,
            kernel,
        }
    }

    /// One line.
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {} MiB, Linux {}",
            self.cores, self.cpu_model, self.memory_mib, self.kernel
        )
    }
}

/// One of the targets.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// The goal, in words.
    pub goal: String,
    /// The number measured.
    pub measured: String,
    /// Whether it was met.
    pub met: bool,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// sroll's version.
    pub version: String,
    /// `--quick`.
    pub quick: bool,
    /// `release` or `debug`.
    pub build: String,
    /// When the run started (UTC).
    pub started_at: String,
    /// The machine.
    pub machine: Machine,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// The measurements.
    pub rows: Vec<Row>,
    /// The targets, met or missed (only those whose scenarios ran).
    pub targets: Vec<Target>,
    /// Scenarios that failed, with the reason.
    pub failures: Vec<String>,
}

impl Report {
    /// An empty report for this machine and build.
    pub fn new(quick: bool) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").into(),
            quick,
            build: if cfg!(debug_assertions) {
                "debug build".into()
            } else {
                "release build".into()
            },
            started_at: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
            machine: Machine::current(),
            total_seconds: 0.0,
            rows: Vec::new(),
            targets: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn rows_of(&self, scenario: u8) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(move |r| r.scenario == scenario)
    }

    /// Marks the targets met or missed from the rows.
    pub fn evaluate_targets(&mut self) {
        let mut targets = Vec::new();
        for r in self.rows_of(1).filter(|r| r.variant.starts_with("sroll")) {
            targets.push(Target {
                goal: format!("scenario 1, {}: measured/ideal ≤ 1.05", r.variant),
                measured: format!("{:.3}", r.ratio),
                met: r.ratio <= 1.05,
            });
        }
        let streaming = self
            .rows_of(2)
            .find(|r| r.variant.starts_with("sroll"))
            .map(|r| r.measured_seconds);
        let waves = self
            .rows_of(2)
            .find(|r| r.variant.starts_with("waves"))
            .map(|r| r.measured_seconds);
        if let (Some(s), Some(w)) = (streaming, waves) {
            targets.push(Target {
                goal: "scenario 2: streaming strictly faster than waves".into(),
                measured: format!("{s:.2} s vs {w:.2} s"),
                met: s < w,
            });
        }
        for r in self.rows_of(7) {
            targets.push(Target {
                goal: format!("scenario 7, {}: measured/ideal ≤ 1.05", r.variant),
                measured: format!("{:.3}", r.ratio),
                met: r.ratio <= 1.05,
            });
        }
        if let Some(r) = self.rows_of(4).find(|r| r.variant.contains("p99")) {
            targets.push(Target {
                goal: "scenario 4: pause reaction p99 ≤ 0.5 s".into(),
                measured: format!("{:.3} s", r.measured_seconds),
                met: r.measured_seconds <= 0.5,
            });
        }
        for r in self.rows_of(5) {
            targets.extend(scale_targets(r));
        }
        self.targets = targets;
    }

    /// The table (and the targets) as text.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<3} {:<58} {:>7} {:>10} {:>9} {:>8}  {}\n",
            "#", "VARIANT", "PODS", "MEASURED", "IDEAL", "RATIO", "NOTES"
        ));
        for r in &self.rows {
            out.push_str(&format!(
                "{:<3} {:<58} {:>7} {:>9.2}s {:>8.2}s {:>8.3}  {}\n",
                r.scenario,
                r.variant,
                r.pods,
                r.measured_seconds,
                r.ideal_seconds,
                r.ratio,
                r.notes
            ));
        }
        if !self.targets.is_empty() {
            out.push_str("\nTargets:\n");
            for t in &self.targets {
                out.push_str(&format!(
                    "  [{}] {} — measured {}\n",
                    if t.met { "met" } else { "MISSED" },
                    t.goal,
                    t.measured
                ));
            }
        }
        out.push_str(&format!(
            "\n{} · {} · {} · {:.0} s in all\n",
            self.machine.describe(),
            self.build,
            self.started_at,
            self.total_seconds
        ));
        out
    }
}
/// Scenario 5's targets for one row, as issues #16 (the operator at fleet scale) and #22 (kubesim
/// at fleet scale) set them: each target is checked at the size it was set for, and a row of
/// another size gets none of it (a 10 × 200 smoke run is not evidence either way).
fn scale_targets(r: &Row) -> Vec<Target> {
    let metric = |name: &str| r.metrics.get(name).copied();
    let sets = metric("statefulsets").unwrap_or(0.0);
    let per_set = metric("pods_per_set").unwrap_or(0.0);
    let size = format!("{sets:.0} × {per_set:.0}");
    let mut targets = Vec::new();
    let mut target = |goal: String, measured: String, met: bool| {
        targets.push(Target {
            goal,
            measured,
            met,
        });
    };
    let Some(writes) = metric("api_writes_per_pod") else {
        // The watch-only row (`--scale-watch-only`): no pod is updated.
        if r.pods >= 100_000 {
            let rss = metric("operator_peak_rss_mib").unwrap_or(f64::NAN);
            target(
                format!("#16 scenario 5 watch-only {size}: operator peak RSS ≤ 100 MiB"),
                format!("{rss:.1} MiB"),
                rss <= 100.0,
            );
            target(
                format!(
                    "#16 scenario 5 watch-only {size}: start-up to every rollout's first reconcile ≤ 30 s"
                ),
                format!("{:.2} s", r.measured_seconds),
                r.measured_seconds <= 30.0,
            );
        }
        return targets;
    };
    let pods = f64::from(r.pods.max(1));
    let operator_ms = metric("operator_cpu_seconds_rollout").unwrap_or(f64::NAN) * 1000.0 / pods;
    let reconciles = metric("reconciles_per_pod").unwrap_or(f64::NAN);
    let sim_ms = metric("kubesim_cpu_ms_per_pod").unwrap_or(f64::NAN);
    let sim_rss = metric("kubesim_peak_rss_mib").unwrap_or(f64::NAN);
    if r.pods == 10_000 && sets >= 10.0 {
        target(
            format!("#16 scenario 5 {size}: operator CPU ≤ 1 ms per pod updated"),
            format!("{operator_ms:.2} ms"),
            operator_ms <= 1.0,
        );
        target(
            format!("#16 scenario 5 {size}: ≤ 1.2 reconciles per pod updated"),
            format!("{reconciles:.2}"),
            reconciles <= 1.2,
        );
        target(
            format!("#16 scenario 5 {size}: ≤ 2.0 API writes per pod"),
            format!("{writes:.2}"),
            writes <= 2.0,
        );
        target(
            format!("#22 scenario 5 {size}: measured/ideal ≤ 1.5"),
            format!("{:.3}", r.ratio),
            r.ratio <= 1.5,
        );
    }
    if r.pods >= 100_000 {
        target(
            format!("#22 scenario 5 {size}: measured/ideal ≤ 3"),
            format!("{:.2}", r.ratio),
            r.ratio <= 3.0,
        );
        target(
            format!("#22 scenario 5 {size}: kubesim CPU ≤ 0.5 ms per pod cycle"),
            format!("{sim_ms:.3} ms"),
            sim_ms <= 0.5,
        );
        target(
            format!("#22 scenario 5 {size}: kubesim peak RSS ≤ 1 GiB"),
            format!("{sim_rss:.1} MiB"),
            sim_rss <= 1024.0,
        );
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pods: u32, measured: f64, ideal: f64, metrics: &[(&str, f64)]) -> Row {
        Row::new(
            5,
            "scale".into(),
            pods,
            measured,
            ideal,
            String::new(),
            metrics.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
        )
    }

    fn verdicts(rows: Vec<Row>) -> Vec<(String, bool)> {
        let mut report = Report::new(false);
        report.rows = rows;
        report.evaluate_targets();
        report
            .targets
            .into_iter()
            .map(|t| (t.goal, t.met))
            .collect()
    }

    #[test]
    fn the_fleet_targets_are_checked_at_the_size_they_were_set_for() {
        let rolling = |sets: f64, per_set: f64, cpu: f64, reconciles: f64| {
            vec![
                ("statefulsets", sets),
                ("pods_per_set", per_set),
                ("operator_cpu_seconds_rollout", cpu),
                ("reconciles_per_pod", reconciles),
                ("api_writes_per_pod", 1.34),
                ("kubesim_cpu_ms_per_pod", 1.5),
                ("kubesim_peak_rss_mib", 450.0),
            ]
        };
        // 10 × 1,000: 9.3 CPU s over 10,000 pods is 0.93 ms per pod (met); 1.3 reconciles
        // per pod is over 1.2 (missed); 30 s against 20 s ideal is 1.5 × (met, at the bound).
        let got = verdicts(vec![row(
            10_000,
            30.0,
            20.0,
            &rolling(10.0, 1000.0, 9.3, 1.3),
        )]);
        assert_eq!(
            got,
            [
                (
                    "#16 scenario 5 10 × 1000: operator CPU ≤ 1 ms per pod updated".into(),
                    true
                ),
                (
                    "#16 scenario 5 10 × 1000: ≤ 1.2 reconciles per pod updated".into(),
                    false
                ),
                (
                    "#16 scenario 5 10 × 1000: ≤ 2.0 API writes per pod".into(),
                    true
                ),
                (
                    "#22 scenario 5 10 × 1000: measured/ideal ≤ 1.5".into(),
                    true
                ),
            ]
        );
        // 100 × 1,000: #22's full-size targets; 1.5 ms of kubesim CPU per pod misses 0.5.
        let got = verdicts(vec![row(
            100_000,
            50.0,
            20.0,
            &rolling(100.0, 1000.0, 90.0, 1.0),
        )]);
        assert_eq!(
            got,
            [
                ("#22 scenario 5 100 × 1000: measured/ideal ≤ 3".into(), true),
                (
                    "#22 scenario 5 100 × 1000: kubesim CPU ≤ 0.5 ms per pod cycle".into(),
                    false
                ),
                (
                    "#22 scenario 5 100 × 1000: kubesim peak RSS ≤ 1 GiB".into(),
                    true
                ),
            ]
        );
        // A smoke size and the 1 × 10,000 variant are evidence of neither.
        assert!(
            verdicts(vec![row(
                2_000,
                25.0,
                20.0,
                &rolling(10.0, 200.0, 2.0, 1.0)
            )])
            .is_empty()
        );
        assert!(
            verdicts(vec![row(
                10_000,
                25.0,
                20.0,
                &rolling(1.0, 10_000.0, 9.0, 1.0)
            )])
            .is_empty()
        );
    }

    #[test]
    fn the_watch_only_row_is_held_to_memory_and_start_up() {
        let watch = |rss: f64| {
            vec![
                ("statefulsets", 100.0),
                ("pods_per_set", 1000.0),
                ("operator_peak_rss_mib", rss),
            ]
        };
        assert_eq!(
            verdicts(vec![row(100_000, 9.9, 0.0, &watch(170.6))]),
            [
                ("#16 scenario 5 watch-only 100 × 1000: operator peak RSS ≤ 100 MiB".into(), false),
                (
                    "#16 scenario 5 watch-only 100 × 1000: start-up to every rollout's first reconcile ≤ 30 s"
                        .into(),
                    true
                ),
            ]
        );
        assert_eq!(
            verdicts(vec![row(100_000, 31.0, 0.0, &watch(99.0))])
                .into_iter()
                .map(|(_, met)| met)
                .collect::<Vec<_>>(),
            [true, false]
        );
        assert!(verdicts(vec![row(2_000, 3.0, 0.0, &watch(40.0))]).is_empty());
    }
}
