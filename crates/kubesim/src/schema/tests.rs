//! End-to-end tests of [`CompiledSchema`] on a StatefulsetRollout-like CRD.

use serde_json::{Value, json};

use super::*;

fn rollout_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["targetRef"],
                "x-kubernetes-validations": [
                    {"rule": "self.maxSurge <= self.percent", "message": "maxSurge must not exceed percent"},
                    {"rule": "!has(self.pause) || self.pause == false || has(self.reason)",
                     "messageExpression": "'pause of ' + self.targetRef + ' needs a reason'",
                     "fieldPath": ".reason", "reason": "FieldValueRequired"}
                ],
                "properties": {
                    "targetRef": {"type": "string", "maxLength": 20, "x-kubernetes-validations": [
                        {"rule": "self == oldSelf", "message": "targetRef is immutable"}]},
                    "percent": {"type": "integer", "minimum": 0, "maximum": 100, "default": 100},
                    "maxSurge": {"type": "integer", "default": 0},
                    "strategy": {"type": "string", "enum": ["Partitioned", "OnDelete"], "default": "Partitioned"},
                    "pause": {"type": "boolean"},
                    "reason": {"type": "string"},
                    "window": {"type": "string", "format": "duration"},
                    "maxUnavailable": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "steps": {"type": "array", "items": {"type": "object", "properties": {
                        "weight": {"type": "integer", "default": 1},
                        "name": {"type": "string"}}}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                 "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}}
                }
            },
            "status": {"type": "object", "properties": {
                "phase": {"type": "string", "enum": ["Pending", "Done"]},
                "replicas": {"type": "integer"}}}
        }
    })
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
           "metadata": {"name": "x", "namespace": "default"}, "spec": spec})
}

fn compiled() -> CompiledSchema {
    CompiledSchema::new(&rollout_schema()).expect("schema compiles")
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

#[test]
fn compiled_schema_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledSchema>();
}

#[test]
fn pruning_drops_unknown_fields_but_keeps_preserved_and_embedded_meta() {
    let s = compiled();
    let mut o = obj(json!({
        "targetRef": "web", "bogus": 1,
        "steps": [{"weight": 2, "junk": true}],
        "extra": {"anything": {"goes": 1}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "nonsense": 1},
                     "spec": {"x": "y", "z": 1}}
    }));
    o["metadata"]["weird"] = json!(true);
    o["topLevel"] = json!(1);
    let unknown = s.prune(&mut o);
    assert_eq!(
        unknown,
        vec![
            "metadata.weird",
            "spec.bogus",
            "spec.steps[0].junk",
            "spec.template.metadata.nonsense",
            "spec.template.spec.z",
            "topLevel"
        ]
    );
    assert_eq!(o["spec"]["extra"], json!({"anything": {"goes": 1}}));
    assert_eq!(o["spec"]["template"]["kind"], "Pod");
    assert_eq!(o["metadata"], json!({"name": "x", "namespace": "default"}));
    assert_eq!(
        strict_decoding_message(&unknown[..2]),
        "strict decoding error: unknown field \"metadata.weird\", unknown field \"spec.bogus\""
    );
}

#[test]
fn defaults_fill_missing_fields_and_non_nullable_nulls() {
    let s = compiled();
    let mut o = obj(json!({"targetRef": "web", "strategy": null, "steps": [{"name": "a"}]}));
    s.prune(&mut o);
    s.default(&mut o);
    assert_eq!(o["spec"]["percent"], 100);
    assert_eq!(o["spec"]["strategy"], "Partitioned");
    assert_eq!(o["spec"]["steps"][0]["weight"], 1);
    assert!(
        s.validate(&o, None).is_empty(),
        "{:?}",
        messages(&s.validate(&o, None))
    );
}

#[test]
fn nulls_without_defaults_are_pruned_before_validation() {
    let s = compiled();
    let mut o = obj(json!({"targetRef": "web", "reason": null}));
    s.prune(&mut o);
    assert!(o["spec"].get("reason").is_none());
}

#[test]
fn schema_violations_produce_the_real_422_causes() {
    let s = compiled();
    let mut o =
        obj(json!({"percent": 150, "strategy": "Foo", "window": "soon", "maxUnavailable": "25%"}));
    s.prune(&mut o);
    s.default(&mut o);
    let errs = s.validate(&o, None);
    assert_eq!(
        messages(&errs),
        vec![
            "spec.percent: Invalid value: 150: spec.percent in body should be less than or equal to 100",
            "spec.strategy: Unsupported value: \"Foo\": supported values: \"Partitioned\", \"OnDelete\"",
            "spec.window: Invalid value: \"soon\": spec.window in body must be of type duration: \"soon\"",
            "spec.targetRef: Required value",
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
    let status = invalid_status("StatefulsetRollout", "sroll.io", "x", &errs);
    assert!(status["message"].as_str().is_some_and(|m| m.starts_with(
        "StatefulsetRollout.sroll.io \"x\" is invalid: [spec.percent: Invalid value: 150: "
    )));
    assert_eq!(
        status["details"]["causes"][3]["reason"],
        "FieldValueRequired"
    );
    assert_eq!(status["details"]["causes"][3]["field"], "spec.targetRef");
}

#[test]
fn cel_rules_report_message_message_expression_field_path_and_reason() {
    let s = compiled();
    let mut o = obj(json!({"targetRef": "web", "percent": 10, "maxSurge": 20, "pause": true}));
    s.prune(&mut o);
    s.default(&mut o);
    let got = messages(&s.validate(&o, None));
    assert_eq!(
        got,
        vec![
            "spec: Invalid value: maxSurge must not exceed percent",
            "spec.reason: Required value: pause of web needs a reason",
        ]
    );
}

#[test]
fn transition_rules_run_only_on_update() {
    let s = compiled();
    let mut old = obj(json!({"targetRef": "web"}));
    let mut new = obj(json!({"targetRef": "db"}));
    s.default(&mut old);
    s.default(&mut new);
    assert!(
        s.validate(&new, None).is_empty(),
        "{:?}",
        messages(&s.validate(&new, None))
    );
    assert_eq!(
        messages(&s.validate(&new, Some(&old))),
        vec!["spec.targetRef: Invalid value: \"db\": targetRef is immutable"]
    );
    assert!(s.validate(&old, Some(&old)).is_empty());
}

#[test]
fn cel_runtime_errors_name_the_rule_and_the_node_type() {
    let s = compiled();
    // No defaults applied: `self.percent` is missing when the rule runs.
    let o = obj(json!({"targetRef": "web", "maxSurge": 1}));
    let got = messages(&s.validate(&o, None));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("spec: Invalid value: "), "{got:?}");
    assert!(
        got[0].ends_with(" evaluating rule: maxSurge must not exceed percent"),
        "{got:?}"
    );
}

#[test]
fn transition_rules_on_map_lists_correlate_by_key() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer",
                      "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "ports only grow"}]}}}},
        "tags": {"type": "array", "items": {"type": "string",
                  "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "never checked: atomic list items do not correlate"}]}}}}}});
    let s = CompiledSchema::new(&schema).expect("compiles");
    let old = json!({"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 90}], "tags": ["x"]}});
    let new = json!({"spec": {"ports": [{"name": "b", "port": 91}, {"name": "a", "port": 70}], "tags": ["y"]}});
    assert_eq!(
        messages(&s.validate(&new, Some(&old))),
        vec!["spec.ports[1].port: Invalid value: 70: ports only grow"]
    );
}

#[test]
fn type_function_and_escaped_names_are_available_to_rules() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [
            {"rule": "type(self.v) == string ? self.v.endsWith('%') : self.v >= 0", "message": "bad v"},
            {"rule": "self.__namespace__ != 'kube-system' && self.max__dash__surge < 3", "message": "bad names"}],
        "properties": {"v": {"x-kubernetes-int-or-string": true}, "namespace": {"type": "string"}, "max-surge": {"type": "integer"}}}}});
    let s = CompiledSchema::new(&schema).expect("compiles");
    let ok = json!({"spec": {"v": "10%", "namespace": "default", "max-surge": 1}});
    assert!(
        s.validate(&ok, None).is_empty(),
        "{:?}",
        messages(&s.validate(&ok, None))
    );
    let bad = json!({"spec": {"v": -1, "namespace": "kube-system", "max-surge": 1}});
    assert_eq!(
        messages(&s.validate(&bad, None)),
        vec![
            "spec: Invalid value: bad v",
            "spec: Invalid value: bad names"
        ]
    );
}

#[test]
fn status_updates_validate_only_status() {
    let s = compiled();
    let old = obj(json!({"targetRef": "web"}));
    let mut new = old.clone();
    new["spec"]["percent"] = json!(500); // ignored: spec is not validated on status writes
    new["status"] = json!({"phase": "Weird"});
    assert_eq!(
        messages(&s.validate_status(&new, Some(&old))),
        vec![
            "status.phase: Unsupported value: \"Weird\": supported values: \"Pending\", \"Done\"",
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
        ]
    );
}

#[test]
fn uncompilable_cel_rules_are_rejected_at_crd_creation() {
    let bad = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "self.a +"}]}}});
    assert!(matches!(
        CompiledSchema::new(&bad),
        Err(SchemaError::CelCompile(_))
    ));
}

#[test]
fn invalid_patterns_are_rejected_at_crd_creation() {
    let bad = json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "("}}});
    assert!(matches!(
        CompiledSchema::new(&bad),
        Err(SchemaError::InvalidSchema { .. })
    ));
}

#[test]
fn type_meta_must_match_the_crd() {
    let o = json!({"apiVersion": "sroll.io/v1", "kind": "Other"});
    let got = messages(&validate_type_meta(
        &o,
        "sroll.io",
        "v1alpha1",
        "StatefulsetRollout",
    ));
    assert_eq!(
        got,
        vec![
            "kind: Invalid value: \"Other\": must be StatefulsetRollout",
            "apiVersion: Invalid value: \"sroll.io/v1\": must be sroll.io/v1alpha1"
        ]
    );
}

#[test]
fn status_subresource_splits_main_and_status_writes() {
    let old = json!({"metadata": {"name": "x"}, "spec": {"a": 1}, "status": {"p": 1}});
    let mut main = json!({"metadata": {"name": "x"}, "spec": {"a": 2}, "status": {"p": 9}});
    main_update_keep_status(&mut main, &old);
    assert_eq!(main["status"], json!({"p": 1}));
    let st = status_update_merge(
        &json!({"metadata": {"name": "x"}, "spec": {"a": 5}, "status": {"p": 2}}),
        &old,
    );
    assert_eq!(st["spec"], json!({"a": 1}));
    assert_eq!(st["status"], json!({"p": 2}));
}

#[test]
fn a_status_write_never_converts_a_large_list_under_a_subtree_without_rules() {
    let pods: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("web-{i}"), "revision": "r1", "ready": true}))
        .collect();
    let schema = json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "maxUnavailable": {"x-kubernetes-int-or-string": true, "x-kubernetes-validations": [
                    {"rule": "type(self) == int ? self >= 1 : self.matches('^[1-9][0-9]?%$')",
                     "message": "bad budget"}]}}},
            "status": {"type": "object", "properties": {"pods": {"type": "array", "items": {
                "type": "object", "properties": {
                    "name": {"type": "string"}, "revision": {"type": "string"},
                    "ready": {"type": "boolean"}}}}}}
        }
    });
    let big = CompiledSchema::new(&schema).expect("schema compiles");
    let with = |mu: Value| {
        json!({"apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
               "metadata": {"name": "x", "namespace": "default"},
               "spec": {"maxUnavailable": mu}, "status": {"pods": pods.clone()}})
    };
    cel::CONVERTED.with(|c| c.set(0));
    assert!(big.validate_status(&with(json!("10%")), None).is_empty());
    let converted = cel::CONVERTED.with(std::cell::Cell::get);
    assert!(
        (1..10).contains(&converted),
        "only spec.maxUnavailable is converted, not the 1,000 status entries: {converted} values"
    );
    // The rule elsewhere still fires on the same kind of write.
    assert_eq!(
        messages(&big.validate_status(&with(json!(0)), None)),
        ["spec.maxUnavailable: Invalid value: 0: bad budget"]
    );
}

#[test]
fn a_root_rule_converts_only_the_fields_it_reads() {
    let pods: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("web-{i}"), "revision": "r1", "ready": true}))
        .collect();
    let schema = |rules: Value| {
        json!({
            "type": "object",
            "x-kubernetes-validations": rules,
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": {
                    "max-surge": {"type": "integer"}, "replicas": {"type": "integer"}}},
                "status": {"type": "object", "properties": {"pods": {"type": "array", "items": {
                    "type": "object", "properties": {
                        "name": {"type": "string"}, "revision": {"type": "string"},
                        "ready": {"type": "boolean"}}}}}}
            }
        })
    };
    let obj = |name: &str, surge: i64| {
        json!({"apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
               "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"}},
               "spec": {"max-surge": surge, "replicas": 3}, "status": {"pods": pods.clone()}})
    };
    let name_rule = CompiledSchema::new(&schema(json!([
        {"rule": "self.metadata.name.size() <= 5", "message": "name too long"}])))
    .expect("schema compiles");
    cel::CONVERTED.with(|c| c.set(0));
    assert!(
        name_rule
            .validate_status(&obj("x", 1), Some(&obj("x", 1)))
            .is_empty()
    );
    let converted = cel::CONVERTED.with(std::cell::Cell::get);
    assert!(
        (1..10).contains(&converted),
        "only metadata.name is converted, not the 1,000 status entries: {converted} values"
    );
    assert_eq!(
        messages(&name_rule.validate(&obj("toolong", 1), None)),
        ["<nil>: Invalid value: name too long"]
    );
    // Escaped names, has() and transition rules read through the projection
    // as through the whole object; metadata is still reduced to the name.
    let rules = CompiledSchema::new(&schema(json!([
        {"rule": "self.spec.max__dash__surge <= self.spec.replicas", "message": "surge"},
        {"rule": "!has(self.metadata.labels)", "message": "labels visible"},
        {"rule": "self.spec.replicas == oldSelf.spec.replicas", "message": "replicas changed"},
        {"rule": "size(self.status.pods) == 1000", "message": "pods"}])))
    .expect("schema compiles");
    assert!(rules.validate(&obj("x", 2), Some(&obj("x", 1))).is_empty());
    let mut changed = obj("x", 9);
    changed["spec"]["replicas"] = json!(4);
    assert_eq!(
        messages(&rules.validate(&changed, Some(&obj("x", 1)))),
        [
            "<nil>: Invalid value: surge",
            "<nil>: Invalid value: replicas changed"
        ]
    );
}
