//! The `sroll` binary as a user runs it.

use std::process::Command;

fn sroll(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sroll"))
        .args(args)
        .output()
        .expect("the sroll binary runs")
}

#[test]
fn committed_crds_match_sroll_crd() {
    for name in [
        "statefulsetrollouts.sroll.io",
        "clonesets.sroll.io",
        "sidecarsets.sroll.io",
    ] {
        let out = sroll(&["crd", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let generated = String::from_utf8(out.stdout).expect("UTF-8");
        let path = format!(
            "{}/../../deploy/crds/{name}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let committed = std::fs::read_to_string(&path).expect("deploy/crds file exists");
        assert!(
            generated == committed,
            "deploy/crds/{name}.yaml is out of date with the Rust types.\n\
             Regenerate it with:\n  cargo run -p sroll -- crd {name} > deploy/crds/{name}.yaml"
        );
    }
}

#[test]
fn crd_output_is_every_custom_resource_definition() {
    let out = sroll(&["crd"]);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .collect();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| {
            assert_eq!(d["kind"], "CustomResourceDefinition");
            assert_eq!(d["spec"]["versions"][0]["name"], "v1alpha1");
            d["metadata"]["name"].as_str().expect("a name")
        })
        .collect();
    assert_eq!(
        names,
        [
            "statefulsetrollouts.sroll.io",
            "clonesets.sroll.io",
            "sidecarsets.sroll.io"
        ]
    );
    let unknown = sroll(&["crd", "widgets.sroll.io"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("clonesets.sroll.io"),
        "names the CRDs it serves"
    );
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
