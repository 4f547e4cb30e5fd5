//! `sroll bench --quick`: CI's smoke test of the benchmark. It runs every scenario in its reduced
//! form and checks the JSON report is complete and well-formed; it asserts nothing about speed.

use std::process::Command;

use serde_json::Value;

fn number(row: &Value, field: &str) -> f64 {
    row[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {row}"))
}

/// Runs `sroll bench <args> --json <file>` and returns the JSON report and the printed table; fails
/// on a non-zero exit.
fn run_bench(tag: &str, args: &[&str]) -> (Value, String) {
    let dir = std::env::temp_dir().join(format!("sroll-bench-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sroll"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("sroll bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON file"))
            .expect("JSON");
    let _ = std::fs::remove_dir_all(&dir);
    (report, stdout.into_owned())
}

#[test]
fn bench_quick_reports_every_scenario_with_finite_measured_and_ideal_times() {
    let (report, stdout) = run_bench("test", &["--quick"]);

    assert_eq!(report["quick"], true);
    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    let rows = report["rows"].as_array().expect("rows");
    for scenario in 1..=8u64 {
        let of: Vec<&Value> = rows
            .iter()
            .filter(|r| r["scenario"].as_u64() == Some(scenario))
            .collect();
        assert!(
            !of.is_empty(),
            "scenario {scenario} is missing from {report}"
        );
        for row in of {
            let measured = number(row, "measured_seconds");
            let ideal = number(row, "ideal_seconds");
            assert!(ideal.is_finite() && ideal > 0.0, "ideal in {row}");
            assert!(measured.is_finite(), "measured in {row}");
            // A pause can take effect before any further eviction: 0 is a valid reaction time.
            if scenario == 4 {
                assert!(measured >= 0.0, "measured in {row}");
            } else {
                assert!(measured > 0.0, "measured in {row}");
            }
            assert!(row["pods"].as_u64().is_some_and(|p| p > 0), "pods in {row}");
            assert!(number(row, "ratio").is_finite(), "ratio in {row}");
        }
    }
    // The native maxUnavailable 1 line is extrapolated, and says so.
    assert!(
        rows.iter().any(|r| r["variant"]
            .as_str()
            .is_some_and(|v| v.contains("maxUnavailable 1"))
            && r["notes"]
                .as_str()
                .is_some_and(|n| n.contains("EXTRAPOLATED"))),
        "{report}"
    );
    // Scenario 5 measured the operator child process and kubesim's request counters.
    let scale = rows
        .iter()
        .find(|r| r["scenario"].as_u64() == Some(5))
        .expect("scenario 5");
    assert!(
        number(&scale["metrics"], "operator_peak_rss_mib") > 0.0,
        "{scale}"
    );
    assert!(
        number(&scale["metrics"], "api_writes_per_pod") > 0.0,
        "{scale}"
    );
    // Scenario 6 saw the Slack message.
    let slack = rows
        .iter()
        .find(|r| r["scenario"].as_u64() == Some(6))
        .expect("scenario 6");
    assert!(number(&slack["metrics"], "slack_posts") >= 1.0, "{slack}");
    // Scenario 8: the CloneSet surge release stayed within replicas + maxSurge with every pod
    // Ready (maxUnavailable 0).
    let surge = rows
        .iter()
        .find(|r| {
            r["scenario"].as_u64() == Some(8)
                && r["variant"]
                    .as_str()
                    .is_some_and(|v| v.contains("maxSurge"))
        })
        .expect("scenario 8, surge");
    let pods = number(surge, "pods");
    assert!(
        number(&surge["metrics"], "max_pods") <= pods + (pods * 0.1).ceil(),
        "{surge}"
    );
    assert!(number(&surge["metrics"], "min_ready") >= pods, "{surge}");
    // Scenario 7 measures the pods' span (first pod out of service to the last back), inside the
    // time from the release to Done, which it reports beside it.
    for row in rows.iter().filter(|r| r["scenario"].as_u64() == Some(7)) {
        let total = number(&row["metrics"], "release_to_done_seconds");
        assert!(total >= number(row, "measured_seconds"), "{row}");
        assert!(
            number(&row["metrics"], "release_to_first_pod_out_seconds") >= 0.0,
            "{row}"
        );
    }
    // The table and the targets were printed.
    assert!(
        stdout.contains("MEASURED") && stdout.contains("Targets:"),
        "{stdout}"
    );
}

#[test]
fn bench_scale_watch_only_measures_the_operator_over_stored_ready_pods_and_their_churn() {
    let (report, _) = run_bench(
        "watch",
        &[
            "--quick",
            "--only",
            "5",
            "--scale-watch-only",
            "--scale-sets",
            "2",
            "--scale-pods",
            "5",
        ],
    );
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{report}");
    let row = &rows[0];
    assert_eq!(row["pods"].as_u64(), Some(10), "{row}");
    assert!(
        row["variant"]
            .as_str()
            .is_some_and(|v| v.contains("watched, no release")),
        "{row}"
    );
    let metrics = &row["metrics"];
    assert!(number(metrics, "operator_peak_rss_mib") > 0.0, "{metrics}");
    // Each pod's status change reaches the operator's watch and reconciles its rollout.
    assert!(number(metrics, "reconciles_churn") >= 1.0, "{metrics}");
}
