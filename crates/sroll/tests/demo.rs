//! `sroll demo` in its non-terminal mode: the whole release plays on the embedded cluster and the
//! summary reports every step.

use std::process::Command;

#[test]
fn demo_plays_every_step_and_prints_its_summary() {
    let out = Command::new(env!("CARGO_BIN_EXE_sroll"))
        .args(["demo", "--pods", "12", "--speed", "8", "--nodes", "4"])
        .output()
        .expect("sroll demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for step in [
        "✔ create 1.0",
        "✔ 1.1 at 25%",
        "✔ 1.1 to 100% (paused 3 s mid-way)",
        "✔ 1.2-unready (broken)",
        "✔ rollback to 1.1",
        "✔ podUpdatePolicy InPlaceIfPossible",
        "✔ 1.3 in place",
        "✔ 1.4-errors20, analysis rollback",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("Summary: 12 pods, budget 2 pods at once"),
        "{stdout}"
    );
    assert!(
        stdout.contains("paused: no pod is evicted until resume"),
        "{stdout}"
    );
    // 25% of 12 pods is 3 pods, moved by eviction.
    let quarter = stdout
        .lines()
        .find(|l| l.starts_with("✔ 1.1 at 25%"))
        .expect("25% step line");
    assert!(quarter.contains("3 of 3 target pods"), "{quarter}");
    assert!(quarter.contains("(3 evictions"), "{quarter}");
    // The broken image fails at its deadline and breaks no more pods than the budget.
    assert!(
        stdout.contains("The broken image left 2 pods unready (the budget allows 2)"),
        "{stdout}"
    );
    // The policy switch recreates once (the readiness gate); the next image goes in place.
    let switch = stdout
        .lines()
        .find(|l| l.starts_with("✔ podUpdatePolicy InPlaceIfPossible"))
        .expect("policy switch line");
    assert!(switch.contains("(12 evictions"), "{switch}");
    assert!(
        stdout.contains("1.3 in place: RolloutDone")
            && stdout.contains("12 of 12 pods kept their uid"),
        "{stdout}"
    );
    let in_place = stdout
        .lines()
        .find(|l| l.starts_with("✔ 1.3 in place"))
        .expect("in-place step line");
    assert!(in_place.contains("(0 evictions"), "{in_place}");
    // The bad image (20 % errors) aborts at its first analysis, against the real Prometheus, and
    // its pods go back by themselves.
    let analysis = stdout
        .lines()
        .find(|l| l.starts_with("✔ 1.4-errors20, analysis rollback"))
        .expect("analysis step line");
    assert!(
        analysis.contains("RolloutAborted (metric error-ratio failed")
            && analysis.contains("failureLimit 0")
            && analysis.contains("the updated pods are back at the previous revision"),
        "{analysis}"
    );
    // 25 % of 12 pods moved to the bad image, then went back.
    assert!(analysis.contains("(3 evictions"), "{analysis}");
    // No terminal: no progress-bar escape codes.
    assert!(
        !stdout.contains('\x1b'),
        "escape codes in non-terminal output"
    );
}

#[test]
fn without_prometheus_the_demo_says_it_skips_the_analysis_step_and_why() {
    let empty = std::env::temp_dir().join(format!("sroll-demo-no-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("a scratch directory");
    let out = Command::new(env!("CARGO_BIN_EXE_sroll"))
        .args(["demo", "--pods", "12", "--speed", "8", "--nodes", "4"])
        .env("PATH", &empty)
        .output()
        .expect("sroll demo runs");
    let _ = std::fs::remove_dir(&empty);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    let skipped: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("analysis step skipped"))
        .collect();
    assert_eq!(skipped.len(), 1, "{stdout}");
    assert!(
        skipped[0].contains("`prometheus` is not on the PATH"),
        "{}",
        skipped[0]
    );
    assert!(!stdout.contains("1.4-errors20"), "{stdout}");
    assert!(stdout.contains("✔ 1.3 in place"), "{stdout}");
}
