//! The schema, table and OpenAPI modules against sroll's real generated CRD
//! (`deploy/crds/statefulsetrollouts.sroll.io.yaml`) and example rollout.

use chrono::Utc;
use kubesim::schema::{CompiledSchema, invalid_message};
use kubesim::table::{PrinterColumns, TableOptions, TableVersion};
use kubesim::testing::load_yaml_docs;
use serde_json::{Value, json};

fn crd() -> Value {
    load_yaml_docs("deploy/crds/statefulsetrollouts.sroll.io.yaml").remove(0)
}

fn example_rollout() -> Value {
    load_yaml_docs("examples/rollout.yaml")
        .into_iter()
        .find(|d| d["kind"] == "StatefulsetRollout")
        .expect("example has a StatefulsetRollout")
}

fn compiled() -> CompiledSchema {
    CompiledSchema::new(&crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
        .expect("real CRD schema compiles")
}

fn admit(
    s: &CompiledSchema,
    mut obj: Value,
    old: Option<&Value>,
) -> (Value, Vec<String>, Vec<String>) {
    let unknown = s.prune(&mut obj);
    s.default(&mut obj);
    let errs = s
        .validate(&obj, old)
        .iter()
        .map(ToString::to_string)
        .collect();
    (obj, unknown, errs)
}

#[test]
fn the_example_rollout_is_valid_and_keeps_its_embedded_statefulset() {
    let s = compiled();
    let (obj, unknown, errs) = admit(&s, example_rollout(), None);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(
        obj["spec"]["sts"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/memcached:1.6.29"
    );
}

#[test]
fn out_of_range_and_unknown_values_get_the_real_servers_causes() {
    let s = compiled();
    let mut bad = example_rollout();
    bad["spec"]["percent"] = json!(150);
    bad["spec"]["strategy"] = json!("Foo");
    bad["spec"]["minPodEvictionIntervalSeconds"] = json!(100000);
    bad["spec"]["bogus"] = json!(true);
    let (_, unknown, errs) = admit(&s, bad, None);
    assert_eq!(unknown, vec!["spec.bogus"]);
    assert!(errs.contains(&"spec.percent: Invalid value: 150: spec.percent in body should be less than or equal to 100".to_owned()), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("spec.strategy: Unsupported value: \"Foo\": supported values: ")), "{errs:?}");
    assert!(errs.contains(&"spec.minPodEvictionIntervalSeconds: Invalid value: 100000: spec.minPodEvictionIntervalSeconds in body should be less than or equal to 86400".to_owned()), "{errs:?}");
    let msg = invalid_message(
        "StatefulsetRollout",
        "sroll.io",
        "memcached",
        &s.validate(
            &{
                let mut o = example_rollout();
                o["spec"]["percent"] = json!(150);
                o
            },
            None,
        ),
    );
    assert_eq!(
        msg,
        "StatefulsetRollout.sroll.io \"memcached\" is invalid: spec.percent: Invalid value: 150: spec.percent in body should be less than or equal to 100"
    );
}

#[test]
fn the_int_or_string_cel_rule_accepts_numbers_and_percentages_only() {
    let s = compiled();
    for (v, ok) in [
        (json!(2), true),
        (json!("25%"), true),
        (json!("100%"), true),
        (json!(0), false),
        (json!("150%"), false),
        (json!("x"), false),
    ] {
        let mut o = example_rollout();
        o["spec"]["maxUnavailable"] = v.clone();
        let (_, _, errs) = admit(&s, o, None);
        assert_eq!(errs.is_empty(), ok, "maxUnavailable={v}: {errs:?}");
        if !ok {
            assert!(
                errs[0].starts_with("spec.maxUnavailable: Invalid value: "),
                "{errs:?}"
            );
            assert!(errs[0].ends_with("must be a number of pods (at least 1) or a percentage from 1% to 100%, such as \"10%\""), "{errs:?}");
        }
    }
}

#[test]
fn printer_columns_of_the_real_crd_render() {
    let cols =
        PrinterColumns::from_crd_version(&crd()["spec"]["versions"][0]).expect("columns compile");
    let mut o = example_rollout();
    o["metadata"]["creationTimestamp"] = json!(Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    o["status"] = json!({"phase": "Progressing", "percentDeployed": 25, "updatedReplicas": 1, "readyReplicas": 4});
    let t = cols.table(
        &[o],
        None,
        &TableOptions::default(),
        TableVersion::V1,
        Utc::now(),
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[0], "memcached");
    assert_eq!(cells[1], "Progressing");
    assert_eq!(cells[2], 50);
    assert_eq!(cells[5], 4);
    assert_eq!(cells[6], 4);
    assert!(cells[7].as_str().is_some_and(|a| a.ends_with('s')));
    assert_eq!(cells[8], Value::Null);
}

#[test]
fn the_real_crd_is_published_for_explain() {
    let mut gvs = kubesim::openapi::builtin_group_versions();
    gvs.extend(kubesim::openapi::crd_group_versions(&[crd()]).expect("crd"));
    let docs = kubesim::openapi::OpenApi::new(&gvs);
    let doc = docs
        .v3_document("apis/sroll.io/v1alpha1")
        .expect("sroll doc");
    let schema = &doc["components"]["schemas"]["io.sroll.v1alpha1.StatefulsetRollout"];
    assert!(schema["properties"]["spec"]["properties"]["percent"]["description"].is_string());
    assert_eq!(
        schema["x-kubernetes-group-version-kind"][0]["kind"],
        "StatefulsetRollout"
    );
}
