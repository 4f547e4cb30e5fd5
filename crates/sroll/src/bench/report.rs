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
        if let Some(r) = self.rows_of(5).next() {
            let rss = r
                .metrics
                .get("operator_peak_rss_mib")
                .copied()
                .unwrap_or(f64::NAN);
            targets.push(Target {
                goal: format!(
                    "scenario 5: operator peak RSS ≤ 128 MiB (goal at 100,000 pods; ran {} pods)",
                    r.pods
                ),
                measured: format!("{rss:.1} MiB"),
                met: rss <= 128.0,
            });
            // A watch-only run updates no pod: the writes target does not apply to it.
            if let Some(writes) = r.metrics.get("api_writes_per_pod").copied() {
                targets.push(Target {
                    goal: "scenario 5: ≤ 3 API writes per pod updated".into(),
                    measured: format!("{writes:.2}"),
                    met: writes <= 3.0,
                });
            }
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
