//! The StatefulsetRollout API: reference-shaped resources round-trip, defaults apply, the generated
//! schema rejects bad input, and semantic validation names each problem.

use serde_json::{Value, json};
use sroll_api::{
    NotificationLevel, Phase, RolloutStrategy, StatefulsetRollout, crd, target_updated_replicas,
    validate::validate,
};

const REFERENCE: &str = include_str!("fixtures/reference-rollout.yaml");
const EXAMPLE: &str = include_str!("../../../examples/rollout.yaml");

fn yaml_to_json(doc: &str) -> Value {
    serde_yaml_ng::from_str(doc).expect("fixture is valid YAML")
}

/// The example file is a multi-document stream; returns the StatefulsetRollout document.
fn example_rollout_json() -> Value {
    serde_yaml_ng::Deserializer::from_str(EXAMPLE)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("valid YAML document"))
        .find(|v| v["kind"] == "StatefulsetRollout")
        .expect("examples/rollout.yaml holds a StatefulsetRollout")
}

fn schema() -> Value {
    let crd = crd::crds().remove(0);
    let version = crd.spec.versions.into_iter().next().expect("one version");
    serde_json::to_value(
        version
            .schema
            .expect("schema")
            .open_api_v3_schema
            .expect("v3 schema"),
    )
    .expect("schema serializes")
}

fn schema_errors(instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&schema()).expect("the CRD schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect()
}

fn minimal() -> Value {
    json!({
        "apiVersion": "sroll.io/v1alpha1",
        "kind": "StatefulsetRollout",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "sts": {
                "spec": {
                    "replicas": 10,
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

#[test]
fn reference_shaped_resource_round_trips_unchanged() {
    let original = yaml_to_json(REFERENCE);
    let parsed: StatefulsetRollout =
        serde_json::from_value(original.clone()).expect("reference resource deserializes");

    assert_eq!(parsed.spec.percent, 25);
    assert_eq!(parsed.spec.min_pod_eviction_interval_seconds, Some(10));
    assert_eq!(parsed.spec.pause_requested, Some(false));
    assert_eq!(parsed.spec.channel.as_deref(), Some("#flannel-deploys"));
    let bapi = parsed.spec.bapi.as_ref().expect("bapi");
    assert_eq!(bapi.stage_id, "stage-88412");
    let sd = parsed
        .spec
        .service_discovery
        .as_ref()
        .expect("serviceDiscovery");
    assert_eq!(sd.dc.as_deref(), Some("us-east-1"));
    assert_eq!(sd.services, ["flannel-cache", "flannel-cache-admin"]);
    let status = parsed.status.as_ref().expect("status");
    assert_eq!(status.phase, Some(Phase::InProgress));
    assert_eq!(status.pods.len(), 2);
    assert_eq!(
        status.last_callback_stage_id.as_deref(),
        Some("stage-88411")
    );
    assert_eq!(parsed.statefulset_name(), "flannel-cache");
    assert_eq!(
        parsed.build_metadata().and_then(|b| b.commit).as_deref(),
        Some("9b2d4e7a1c")
    );

    let back = serde_json::to_value(&parsed).expect("serializes");
    assert_eq!(
        back, original,
        "serializing must reproduce the reference document"
    );
    assert!(
        schema_errors(&original).is_empty(),
        "{:?}",
        schema_errors(&original)
    );
}

#[test]
fn example_resource_is_valid_everywhere() {
    let example = example_rollout_json();
    assert!(
        schema_errors(&example).is_empty(),
        "{:?}",
        schema_errors(&example)
    );
    let parsed: StatefulsetRollout = serde_json::from_value(example).expect("deserializes");
    assert!(validate(&parsed).is_empty(), "{:?}", validate(&parsed));
    assert_eq!(parsed.spec.target_updated_replicas(), 2);
}

#[test]
fn omitted_optional_fields_take_their_documented_defaults() {
    let rollout: StatefulsetRollout = serde_json::from_value(minimal()).expect("deserializes");
    let spec = &rollout.spec;
    assert_eq!(spec.percent, 100);
    assert_eq!(spec.strategy(), RolloutStrategy::Partitioned);
    assert_eq!(spec.progress_deadline_seconds(), 600);
    assert_eq!(spec.min_pod_eviction_interval_seconds(), 0);
    assert!(!spec.paused());
    assert_eq!(spec.notification_level(), NotificationLevel::Info);
    assert_eq!(spec.target_updated_replicas(), 10);
    assert_eq!(rollout.statefulset_name(), "web");
    assert!(rollout.build_metadata().is_none());
    // Defaults are not written back: the stored object stays as the user wrote it.
    let back = serde_json::to_value(&rollout).expect("serializes");
    assert_eq!(back["spec"]["percent"], 100);
    assert!(back["spec"].get("strategy").is_none());
}

#[test]
fn unknown_phase_values_survive_a_round_trip() {
    let mut doc = minimal();
    doc["status"] = json!({"phase": "RolloutCanaryAnalysis"});
    let parsed: StatefulsetRollout = serde_json::from_value(doc).expect("deserializes");
    let phase = parsed.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase, Some(Phase::Unknown("RolloutCanaryAnalysis".into())));
    let back = serde_json::to_value(&parsed).expect("serializes");
    assert_eq!(back["status"]["phase"], "RolloutCanaryAnalysis");
}

fn with_spec(field: &str, value: Value) -> Value {
    let mut doc = minimal();
    doc["spec"][field] = value;
    doc
}

#[test]
fn schema_rejects_percent_above_100() {
    let errs = schema_errors(&with_spec("percent", json!(150)));
    assert!(
        errs.iter().any(|e| e.starts_with("/spec/percent")),
        "{errs:?}"
    );
}

#[test]
fn schema_rejects_negative_eviction_interval() {
    let errs = schema_errors(&with_spec("minPodEvictionIntervalSeconds", json!(-5)));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("/spec/minPodEvictionIntervalSeconds")),
        "{errs:?}"
    );
}

#[test]
fn schema_rejects_unknown_strategy() {
    let errs = schema_errors(&with_spec("strategy", json!("Canary")));
    assert!(
        errs.iter().any(|e| e.starts_with("/spec/strategy")),
        "{errs:?}"
    );
}

#[test]
fn schema_rejects_callback_url_that_is_not_http() {
    let errs = schema_errors(&with_spec(
        "bapi",
        json!({"url": "ftp://bapi.example.com/x", "stageId": "s1"}),
    ));
    assert!(
        errs.iter().any(|e| e.starts_with("/spec/bapi/url")),
        "{errs:?}"
    );
}

#[test]
fn schema_accepts_int_or_percent_max_unavailable() {
    assert!(schema_errors(&with_spec("maxUnavailable", json!("10%"))).is_empty());
    assert!(schema_errors(&with_spec("maxUnavailable", json!(3))).is_empty());
}

#[test]
fn schema_requires_the_statefulset() {
    let mut doc = minimal();
    doc["spec"].as_object_mut().expect("object").remove("sts");
    let errs = schema_errors(&doc);
    assert!(errs.iter().any(|e| e.contains("sts")), "{errs:?}");
}

#[test]
fn schema_types_the_embedded_pod_template() {
    let mut doc = minimal();
    doc["spec"]["sts"]["spec"]["replicas"] = json!("ten");
    let errs = schema_errors(&doc);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("/spec/sts/spec/replicas")),
        "{errs:?}"
    );
}

#[test]
fn crd_carries_cel_rules_and_printer_columns() {
    let crd = crd::crds().remove(0);
    let v = serde_json::to_value(&crd).expect("serializes");
    let version = &v["spec"]["versions"][0];
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for name in ["Phase", "Percent", "Updated", "Desired", "Ready", "Age"] {
        assert!(
            columns.contains(&name),
            "missing column {name}: {columns:?}"
        );
    }
    assert_eq!(version["subresources"]["status"], json!({}));
    let sts_rules = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["sts"]
        ["x-kubernetes-validations"];
    assert!(
        sts_rules
            .as_array()
            .expect("rules")
            .iter()
            .any(|r| r["rule"]
                .as_str()
                .is_some_and(|s| s.contains("matchLabels"))),
        "{sts_rules}"
    );
    assert_eq!(v["spec"]["names"]["shortNames"], json!(["sroll"]));
    // Small enough for client-side `kubectl apply` (256 kB last-applied annotation limit).
    let compact = serde_json::to_string(&crd).expect("serializes");
    assert!(compact.len() < 200_000, "CRD is {} bytes", compact.len());
}

#[test]
fn validation_names_the_selector_that_misses_the_template() {
    let mut doc = minimal();
    doc["spec"]["sts"]["spec"]["selector"]["matchLabels"] = json!({"app": "other"});
    let rollout: StatefulsetRollout = serde_json::from_value(doc).expect("deserializes");
    let errs = validate(&rollout);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "spec.sts.spec.selector.matchLabels.app");
}

#[test]
fn validation_rejects_an_empty_image_and_names_the_container() {
    let mut doc = minimal();
    doc["spec"]["sts"]["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "web", "image": "nginx"}, {"name": "sidecar", "image": " "}]);
    let rollout: StatefulsetRollout = serde_json::from_value(doc).expect("deserializes");
    let errs = validate(&rollout);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].path,
        "spec.sts.spec.template.spec.containers[1].image"
    );
}

#[test]
fn validation_rejects_max_unavailable_that_allows_nothing() {
    for bad in [json!(0), json!("0%"), json!("ten")] {
        let rollout: StatefulsetRollout =
            serde_json::from_value(with_spec("maxUnavailable", bad.clone())).expect("deserializes");
        let errs = validate(&rollout);
        assert!(
            errs.iter().any(|e| e.path == "spec.maxUnavailable"),
            "{bad}: {errs:?}"
        );
    }
}

mod target {
    use proptest::prelude::*;

    use super::target_updated_replicas;

    #[test]
    fn target_is_ceil_of_replicas_times_percent() {
        assert_eq!(target_updated_replicas(10, 25), 3);
        assert_eq!(target_updated_replicas(8, 25), 2);
        assert_eq!(target_updated_replicas(1000, 1), 10);
        assert_eq!(target_updated_replicas(3, 1), 1);
        assert_eq!(target_updated_replicas(3, 0), 0);
        assert_eq!(target_updated_replicas(0, 50), 0);
    }

    proptest! {
        #[test]
        fn any_positive_percent_moves_at_least_one_pod(replicas in 1..5000i32, percent in 1..=100i32) {
            let t = target_updated_replicas(replicas, percent);
            prop_assert!(t >= 1);
            prop_assert!(t <= replicas);
        }

        #[test]
        fn target_never_decreases_as_percent_grows(replicas in 0..5000i32, a in 0..=100i32, b in 0..=100i32) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(target_updated_replicas(replicas, lo) <= target_updated_replicas(replicas, hi));
            prop_assert_eq!(target_updated_replicas(replicas, 100), replicas);
        }
    }
}

#[test]
fn last_eviction_time_keeps_sub_second_precision_and_reads_whole_seconds() {
    // Pacing is measured from lastEvictionTime: a whole-second value would let the next eviction
    // come up to a second early.
    let mut r: StatefulsetRollout = serde_json::from_value(minimal()).expect("minimal rollout");
    let status: sroll_api::StatefulsetRolloutStatus =
        serde_json::from_value(json!({"lastEvictionTime": "2026-11-23T10:00:00.750000Z"}))
            .expect("a MicroTime status");
    r.status = Some(status);
    let json = serde_json::to_value(&r).expect("serializes");
    assert_eq!(
        json["status"]["lastEvictionTime"],
        "2026-11-23T10:00:00.750000Z"
    );
    assert!(
        schema_errors(&json).is_empty(),
        "{:?}",
        schema_errors(&json)
    );
    let back: StatefulsetRollout = serde_json::from_value(json).expect("round-trips");
    assert_eq!(back.status, r.status);
    // A status written before (whole seconds) still reads.
    let old: sroll_api::StatefulsetRolloutStatus =
        serde_json::from_value(json!({"lastEvictionTime": "2026-11-23T10:00:00Z"}))
            .expect("a whole-second time still reads");
    let t = old.last_eviction_time.expect("set").0;
    assert_eq!(t.to_string(), "2026-11-23T10:00:00Z");
}

/// `status.pods` entries share their strings in memory and read and write as plain strings on the
/// wire, an empty revision left out as before.
#[test]
fn status_pods_entries_are_plain_strings_on_the_wire() {
    let wire =
        r#"[{"name":"web-0","revision":"web-1","ready":true},{"name":"web-1","ready":false}]"#;
    let pods: Vec<sroll_api::PodVersion> = serde_json::from_str(wire).expect("parses");
    assert_eq!(&*pods[0].name, "web-0");
    assert_eq!(&*pods[0].revision, "web-1");
    assert_eq!(&*pods[1].revision, "", "absent: empty");
    assert_eq!(serde_json::to_string(&pods).expect("serializes"), wire);
}
