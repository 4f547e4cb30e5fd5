//! `sroll render`: the reference app config renders; malformed configs get precise errors and
//! print nothing on standard output.

use std::{io::Write, process::Command};

const EXAMPLE: &str = include_str!("../../../examples/bedrock.yaml");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn render(config: &str, args: &[&str]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sroll"))
        .arg("render")
        .arg("-")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sroll runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(config.as_bytes())
        .expect("config written");
    let out = child.wait_with_output().expect("sroll exits");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8"),
    }
}

#[test]
fn reference_config_renders_a_pdb_and_a_rollout() {
    let out = render(
        EXAMPLE,
        &[
            "--cluster",
            "us-east-1a",
            "--percent",
            "50",
            "--identity",
            "release-1042",
            "--callback-url",
            "https://bapi.example.com/v1/callback",
            "--stage-id",
            "stage-88412",
            "--branch",
            "main",
            "--commit",
            "9b2d4e7",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("rendered_example", out.stdout);

    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&out.stdout)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML document"))
        .collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["kind"], "PodDisruptionBudget");
    assert_eq!(docs[0]["spec"]["maxUnavailable"], "50%");
    let rollout: sroll_api::StatefulsetRollout =
        serde_json::from_value(docs[1].clone()).expect("a StatefulsetRollout");
    assert_eq!(rollout.spec.percent, 50);
    assert!(sroll_api::validate::validate(&rollout).is_empty());
    // The disruption policy lives in the PDB only, as in the reference system.
    assert!(rollout.spec.max_unavailable.is_none());
}

#[test]
fn percent_defaults_to_the_highest_step_and_identity_is_fresh() {
    let a = render(EXAMPLE, &["--cluster", "eu-west-1a"]);
    let b = render(EXAMPLE, &["--cluster", "eu-west-1a"]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert!(a.stdout.contains("percent: 100"), "{}", a.stdout);
    let identity = |s: &str| {
        s.lines()
            .find_map(|l| l.trim().strip_prefix("rolloutIdentity: "))
            .map(str::to_owned)
    };
    assert!(identity(&a.stdout).is_some());
    assert_ne!(identity(&a.stdout), identity(&b.stdout));
}

/// Each malformed config: the edit, the flags, and the exact problem line expected on stderr.
#[test]
fn malformed_configs_get_precise_errors_and_print_nothing() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "misspelled field",
            "replicas: 8",
            "replica: 8",
            "replica: unknown field `replica`, expected one of",
        ),
        (
            "wrong type",
            "replicas: 8",
            "replicas: eight",
            "replicas: invalid type: string \"eight\", expected i32",
        ),
        (
            "missing image",
            "image: registry.example.com/flannel-cache:2026.11.20-9b2d4e7\n",
            "",
            "image: is required (missing field `image`",
        ),
        (
            "untagged image",
            "image: registry.example.com/flannel-cache:2026.11.20-9b2d4e7",
            "image: registry.example.com/flannel-cache",
            "image: \"registry.example.com/flannel-cache\" has no tag or digest",
        ),
        (
            "unsupported kind",
            "kind: StatefulSet",
            "kind: Deployment",
            "kind: \"Deployment\" is not supported: allowed: StatefulSet",
        ),
        (
            "zero disruption budget",
            "max_unavailable: 50%",
            "max_unavailable: 0",
            "disruption_policy.max_unavailable: 0 allows no disruption",
        ),
        (
            "bad percentage",
            "max_unavailable: 50%",
            "max_unavailable: 150%",
            "disruption_policy.max_unavailable: \"150%\" is not a percentage from 1% to 100%",
        ),
        (
            "percentages not ascending",
            "rollout_percentages: [1, 50, 100]",
            "rollout_percentages: [50, 1, 100]",
            "rollout_percentages: [50, 1, 100] must be strictly ascending",
        ),
        (
            "percentage out of range",
            "rollout_percentages: [1, 50, 100]",
            "rollout_percentages: [1, 50, 200]",
            "rollout_percentages[2]: 200 is out of range: allowed: 1 to 100",
        ),
        (
            "unknown strategy",
            "strategy: Partitioned",
            "strategy: Canary",
            "strategy: \"Canary\" is not a strategy: allowed: Partitioned, OnDelete",
        ),
        (
            "unknown level",
            "level: info",
            "level: verbose",
            "level: \"verbose\" is not a level: allowed: info, debug",
        ),
        (
            "bad port",
            "      port: 8080",
            "      port: 80800",
            "container.ports[0].port: 80800 is out of range: allowed: 1 to 65535",
        ),
        (
            "bad quantity",
            "    cpu: 500m",
            "    cpu: half",
            "container.requests.cpu: \"half\" is not a quantity",
        ),
    ];
    for (what, from, to, expected) in cases {
        assert!(EXAMPLE.contains(from), "{what}: fixture lacks {from:?}");
        let config = EXAMPLE.replacen(from, to, 1);
        let out = render(&config, &["--cluster", "us-east-1a"]);
        assert_eq!(out.code, 2, "{what}: exit code; stderr: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{what}: printed {:?}", out.stdout);
        assert!(
            out.stderr.contains(&format!("  - {expected}")),
            "{what}: expected {expected:?} in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn release_flags_are_checked_against_the_config() {
    let out = render(EXAMPLE, &["--cluster", "mars-1", "--percent", "30"]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains(
            "  - --cluster: \"mars-1\" is not one of the config's clusters: allowed: us-east-1a, us-east-1b, eu-west-1a"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("  - --percent: 30 is not an allowed rollout step: allowed: 1, 50, 100"),
        "{}",
        out.stderr
    );
    let out = render(EXAMPLE, &["--cluster", "us-east-1a", "--stage-id", "s1"]);
    assert!(
        out.stderr
            .contains("  - --callback-url: is required with --stage-id"),
        "{}",
        out.stderr
    );
}

#[test]
fn published_config_schema_is_current() {
    let out = Command::new(env!("CARGO_BIN_EXE_sroll"))
        .args(["render", "--schema"])
        .output()
        .expect("sroll runs");
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/app-config.schema.json"
    ))
    .expect("docs/app-config.schema.json exists");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "docs/app-config.schema.json is out of date; regenerate it with:\n  cargo run -p sroll -- render --schema > docs/app-config.schema.json"
    );
}
