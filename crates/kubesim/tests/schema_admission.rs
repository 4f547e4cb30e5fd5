//! Custom resources written through the API layer are pruned, defaulted and
//! validated against their CRD (schema + CEL), with the real 422 Status.

use kubesim::api::{Api, WriteOptions};
use kubesim::testing::load_yaml_docs;
use serde_json::{Value, json};

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

#[test]
fn custom_resource_metadata_of_the_wrong_json_type_is_refused_by_the_decoder_as_upstream() {
    use kubesim::api::{Part, PatchKind};
    let api = api_with_crd();
    let d = api
        .resource("sroll.io", "v1alpha1", "statefulsetrollouts")
        .expect("served");
    let mut r = rollout();
    r["metadata"]["namespace"] = json!("default");
    let name = r["metadata"]["name"].as_str().expect("named").to_owned();
    // Create: 400, as the decoder's error (`transformDecodeError`).
    let mut bad = r.clone();
    bad["metadata"]["labels"] = json!({"app": 5});
    let st = api
        .create(&d, Some("default"), bad, &WriteOptions::default())
        .expect_err("refused")
        .to_status();
    assert_eq!(st["code"], 400);
    assert_eq!(
        st["message"],
        "StatefulsetRollout in version \"v1alpha1\" cannot be handled as a StatefulsetRollout: json: cannot unmarshal number into Go struct field ObjectMeta.labels of type string"
    );
    api.create(&d, Some("default"), r, &WriteOptions::default())
        .expect("created");
    // Merge patch: 422 on `patch`, nothing stored.
    let st = api
        .patch(
            &d,
            Some("default"),
            &name,
            PatchKind::Merge,
            br#"{"metadata":{"ownerReferences":["x"]}}"#,
            Part::Main,
            &WriteOptions::default(),
        )
        .expect_err("refused")
        .to_status();
    assert_eq!(st["code"], 422);
    assert_eq!(st["details"]["causes"][0]["field"], "patch");
    assert!(
        st["message"].as_str().is_some_and(|m| m.starts_with(" \"\" is invalid: patch: Invalid value: \"{")
            && m.ends_with("\": json: cannot unmarshal string into Go struct field ObjectMeta.ownerReferences of type v1.OwnerReference")),
        "{st}"
    );
    let stored = api.get(&d, Some("default"), &name).expect("still there");
    assert!(stored["metadata"].get("ownerReferences").is_none());
}
