//! Custom resources written through the API layer are pruned, defaulted and
//! validated against their CRD (schema + CEL), with the real 422 Status.

use kubesim::api::{Api, WriteOptions};
use serde_json::{Value, json};

fn load_yaml_docs(rel: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document parses"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn api_with_crd() -> Api {
    let api = Api::new(1000);
    let crds = api
        .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("crd resource");
    let crd = load_yaml_docs("deploy/crds/statefulsetrollouts.sroll.io.yaml").remove(0);
    api.create(&crds, None, crd, &WriteOptions::default())
        .expect("CRD is created");
    api
}

fn rollout() -> Value {
    load_yaml_docs("examples/rollout.yaml")
        .into_iter()
        .find(|d| d["kind"] == "StatefulsetRollout")
        .expect("example rollout")
}

#[test]
fn a_valid_rollout_is_stored_pruned() {
    let api = api_with_crd();
    let d = api
        .resource("sroll.io", "v1alpha1", "statefulsetrollouts")
        .expect("served at once");
    let mut r = rollout();
    r["metadata"]["namespace"] = json!("default");
    r["spec"]["bogus"] = json!(1);
    let stored = api
        .create(&d, Some("default"), r, &WriteOptions::default())
        .expect("valid rollout is accepted");
    assert!(
        stored["spec"].get("bogus").is_none(),
        "unknown fields are pruned"
    );
    assert_eq!(stored["spec"]["percent"], 50);
}

#[test]
fn an_invalid_rollout_gets_the_real_422() {
    let api = api_with_crd();
    let d = api
        .resource("sroll.io", "v1alpha1", "statefulsetrollouts")
        .expect("served");
    let mut r = rollout();
    r["metadata"]["namespace"] = json!("default");
    r["spec"]["percent"] = json!(150);
    let err = api
        .create(&d, Some("default"), r, &WriteOptions::default())
        .expect_err("rejected");
    let st = err.to_status();
    assert_eq!(st["code"], 422);
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(
        st["message"],
        "StatefulsetRollout.sroll.io \"memcached\" is invalid: spec.percent: Invalid value: 150: spec.percent in body should be less than or equal to 100"
    );
    assert_eq!(st["details"]["causes"][0]["field"], "spec.percent");
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");

    let mut r = rollout();
    r["metadata"]["namespace"] = json!("default");
    r["spec"]["maxUnavailable"] = json!("150%");
    let st = api
        .create(&d, Some("default"), r, &WriteOptions::default())
        .expect_err("CEL rejects")
        .to_status();
    assert_eq!(st["details"]["causes"][0]["field"], "spec.maxUnavailable");
    assert!(
        st["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("or a percentage from 1% to 100%, such as \"10%\"")),
        "{st}"
    );
}
