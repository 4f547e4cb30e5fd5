//! The `sroll` binary as a user runs it.

use std::process::Command;

fn sroll(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sroll"))
        .args(args)
        .output()
        .expect("the sroll binary runs")
}

#[test]
fn committed_crd_matches_sroll_crd() {
    let out = sroll(&["crd"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crds/statefulsetrollouts.sroll.io.yaml"
    );
    let committed = std::fs::read_to_string(path).expect("deploy/crds file exists");
    assert!(
        generated == committed,
        "deploy/crds/statefulsetrollouts.sroll.io.yaml is out of date with the Rust types.\n\
         Regenerate it with:\n  cargo run -p sroll -- crd > deploy/crds/statefulsetrollouts.sroll.io.yaml"
    );
}

#[test]
fn crd_output_is_a_parseable_custom_resource_definition() {
    let out = sroll(&["crd"]);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    assert_eq!(doc["kind"], "CustomResourceDefinition");
    assert_eq!(doc["metadata"]["name"], "statefulsetrollouts.sroll.io");
    assert_eq!(doc["spec"]["versions"][0]["name"], "v1alpha1");
}

#[test]
fn version_flag_prints_the_crate_version() {
    let out = sroll(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(text.trim(), format!("sroll {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn an_unknown_subcommand_fails_with_usage_help() {
    let out = sroll(&["frobnicate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unrecognized subcommand 'frobnicate'"),
        "{err}"
    );
}
