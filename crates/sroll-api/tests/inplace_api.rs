//! `spec.podUpdatePolicy` and `spec.inPlaceUpdateStrategy`: defaults, the schema, validation naming
//! the field, and `status.inPlaceUpdating`.

use serde_json::{Value, json};
use sroll_api::{PodUpdatePolicy, StatefulsetRollout, crd, validate::validate};

fn minimal() -> Value {
    json!({
        "apiVersion": "sroll.io/v1alpha1",
        "kind": "StatefulsetRollout",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "sts": {
                "spec": {
                    "replicas": 3,
                    "serviceName": "web",
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
                    }
                }
            }
        }
    })
}

fn spec_schema() -> Value {
    let crd = crd::crds().remove(0);
    let version = crd.spec.versions.into_iter().next().expect("one version");
    let schema = serde_json::to_value(
        version
            .schema
            .expect("schema")
            .open_api_v3_schema
            .expect("v3 schema"),
    )
    .expect("schema serializes");
    schema["properties"]["spec"].clone()
}

fn schema_errors(instance: &Value) -> Vec<String> {
    let crd = crd::crds().remove(0);
    let version = crd.spec.versions.into_iter().next().expect("one version");
    let schema = serde_json::to_value(version.schema.expect("schema").open_api_v3_schema)
        .expect("schema serializes");
    let validator = jsonschema::validator_for(&schema).expect("the CRD schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect()
}

#[test]
fn an_omitted_pod_update_policy_means_recreate_with_no_grace_period() {
    let rollout: StatefulsetRollout = serde_json::from_value(minimal()).expect("deserializes");
    assert_eq!(rollout.spec.pod_update_policy(), PodUpdatePolicy::ReCreate);
    assert!(!rollout.spec.in_place_allowed());
    assert_eq!(rollout.spec.in_place_grace_period_seconds(), 0);
    // Defaults are not written back: a resource without the fields round-trips without them.
    let back = serde_json::to_value(&rollout).expect("serializes");
    assert!(back["spec"].get("podUpdatePolicy").is_none());
    assert!(back["spec"].get("inPlaceUpdateStrategy").is_none());
}

#[test]
fn the_in_place_fields_round_trip_under_their_openkruise_names() {
    let mut doc = minimal();
    doc["spec"]["podUpdatePolicy"] = json!("InPlaceIfPossible");
    doc["spec"]["inPlaceUpdateStrategy"] = json!({"gracePeriodSeconds": 10});
    doc["status"] = json!({"inPlaceUpdating": ["web-2", "web-1"]});
    let rollout: StatefulsetRollout = serde_json::from_value(doc.clone()).expect("deserializes");
    assert_eq!(
        rollout.spec.pod_update_policy(),
        PodUpdatePolicy::InPlaceIfPossible
    );
    assert!(rollout.spec.in_place_allowed());
    assert_eq!(rollout.spec.in_place_grace_period_seconds(), 10);
    assert_eq!(
        rollout.status.as_ref().map(|s| s.in_place_updating.clone()),
        Some(vec!["web-2".to_owned(), "web-1".to_owned()])
    );
    assert!(validate(&rollout).is_empty(), "{:?}", validate(&rollout));
    let back = serde_json::to_value(&rollout).expect("serializes");
    for (field, value) in [
        ("podUpdatePolicy", &doc["spec"]["podUpdatePolicy"]),
        (
            "inPlaceUpdateStrategy",
            &doc["spec"]["inPlaceUpdateStrategy"],
        ),
    ] {
        assert_eq!(&back["spec"][field], value, "{field}");
    }
    assert_eq!(back["status"], doc["status"]);
    assert!(schema_errors(&doc).is_empty(), "{:?}", schema_errors(&doc));
}

#[test]
fn the_schema_rejects_an_unknown_policy_and_a_negative_grace_period() {
    let mut doc = minimal();
    doc["spec"]["podUpdatePolicy"] = json!("InPlace");
    let errs = schema_errors(&doc);
    assert!(
        errs.iter().any(|e| e.starts_with("/spec/podUpdatePolicy")),
        "{errs:?}"
    );
    let mut doc = minimal();
    doc["spec"]["inPlaceUpdateStrategy"] = json!({"gracePeriodSeconds": -1});
    let errs = schema_errors(&doc);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("/spec/inPlaceUpdateStrategy/gracePeriodSeconds")),
        "{errs:?}"
    );
}

#[test]
fn validation_names_the_in_place_field_that_is_wrong() {
    // A value the schema would refuse can still reach the operator (an older CRD installed).
    let mut doc = minimal();
    doc["spec"]["podUpdatePolicy"] = json!("InPlace");
    doc["spec"]["inPlaceUpdateStrategy"] = json!({"gracePeriodSeconds": 7200});
    let rollout: StatefulsetRollout = serde_json::from_value(doc).expect("deserializes");
    let paths: Vec<String> = validate(&rollout).into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "spec.podUpdatePolicy",
            "spec.inPlaceUpdateStrategy.gracePeriodSeconds"
        ]
    );
}

#[test]
fn kubectl_explain_text_documents_both_fields() {
    let spec = spec_schema();
    let policy = spec["properties"]["podUpdatePolicy"]["description"]
        .as_str()
        .expect("podUpdatePolicy has a description");
    for word in [
        "ReCreate",
        "InPlaceIfPossible",
        "InPlaceOnly",
        "InPlaceUpdateReady",
    ] {
        assert!(policy.contains(word), "{word} missing from: {policy}");
    }
    let grace = spec["properties"]["inPlaceUpdateStrategy"]["properties"]["gracePeriodSeconds"]
        ["description"]
        .as_str()
        .expect("gracePeriodSeconds has a description");
    assert!(grace.contains("Default 0"), "{grace}");
}
