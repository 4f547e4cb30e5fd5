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
    // No terminal: no progress-bar escape codes.
    assert!(
        !stdout.contains('\x1b'),
        "escape codes in non-terminal output"
    );
}
