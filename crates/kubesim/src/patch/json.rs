//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902), with the error
//! answers of upstream `jsonPatcher.applyJSPatch`
//! (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go`).

use serde_json::Value;

use super::error::{MAX_JSON_PATCH_OPERATIONS, PatchError};

/// Applies an RFC 7386 merge patch given as raw bytes to `target` in place.
///
/// Errors as upstream: a body that is not JSON, or is JSON `null`, is
/// 400 `Invalid JSON Patch`; a patch that is not an object replaces the whole
/// document, which then is not an object: 422 Invalid.
pub fn merge_patch(target: &mut Value, patch: &[u8]) -> Result<(), PatchError> {
    let patch: Value = serde_json::from_slice(patch)
        .map_err(|_| PatchError::BadRequest("Invalid JSON Patch".into()))?;
    match patch {
        Value::Object(_) => {
            merge_owned(target, patch);
            Ok(())
        }
        other => merge_patch_value(target, &other),
    }
}

/// RFC 7386 `MergePatch` (as `json_patch::merge`), moving the decoded
/// patch's values into `target` instead of copying them: a status PATCH
/// carrying a 1,000-entry list costs one decode, not a decode and a copy.
fn merge_owned(target: &mut Value, patch: Value) {
    let Value::Object(fields) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (k, v) in fields {
        if v.is_null() {
            map.remove(&k);
        } else {
            merge_owned(map.entry(k).or_insert(Value::Null), v);
        }
    }
}

/// [`merge_patch`] for an already decoded patch.
pub fn merge_patch_value(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    match patch {
        Value::Null => Err(PatchError::BadRequest("Invalid JSON Patch".into())),
        Value::Object(_) => {
            json_patch::merge(target, patch);
            Ok(())
        }
        other => Err(PatchError::InvalidResult {
            value: other.to_string(),
            error:
                "json: cannot unmarshal non-object into Go value of type map[string]interface {}"
                    .into(),
        }),
    }
}

/// Applies an RFC 6902 JSON patch given as raw bytes to `target` in place.
/// On error `target` is left unchanged.
///
/// Errors as upstream: a body that is not a JSON array of objects is 400;
/// more than 10000 operations is 413; an operation that cannot be decoded
/// or applied (unknown op, missing path, failed `test`) is 422 Invalid with
/// upstream's generic message.
pub fn json_patch(target: &mut Value, patch: &[u8]) -> Result<(), PatchError> {
    let ops: Vec<serde_json::Map<String, Value>> =
        serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations(ops.len()));
    }
    let mut decoded = Vec::with_capacity(ops.len());
    for op in ops {
        let op: json_patch::PatchOperation =
            serde_json::from_value(Value::Object(op)).map_err(|e| PatchError::Unprocessable {
                detail: e.to_string(),
            })?;
        decoded.push(op);
    }
    json_patch::patch(target, &decoded).map_err(|e| PatchError::Unprocessable {
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_objects_replaces_lists_and_null_deletes() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "x": "y"});
        merge_patch(
            &mut doc,
            br#"{"a": {"b": null, "d": 3}, "l": [3], "x": null}"#,
        )
        .expect("valid patch");
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn malformed_merge_patch_is_400_invalid_json_patch() {
        let mut doc = json!({});
        let e = merge_patch(&mut doc, b"{not json").expect_err("malformed");
        assert_eq!(e.code(), 400);
        assert_eq!(e.message(), "Invalid JSON Patch");
        let e = merge_patch(&mut doc, b"null").expect_err("null patch");
        assert_eq!(e.code(), 400);
    }

    #[test]
    fn merge_patch_with_an_array_body_is_422() {
        let mut doc = json!({"a": 1});
        let e = merge_patch(&mut doc, b"[1]").expect_err("array patch");
        assert_eq!(e.code(), 422);
        assert_eq!(e.to_status()["details"]["causes"][0]["field"], "patch");
    }

    #[test]
    fn json_patch_applies_operations_in_order() {
        let mut doc = json!({"spec": {"replicas": 1, "l": ["a"]}});
        json_patch(
            &mut doc,
            br#"[{"op":"test","path":"/spec/replicas","value":1},
                 {"op":"replace","path":"/spec/replicas","value":3},
                 {"op":"add","path":"/spec/l/-","value":"b"},
                 {"op":"copy","from":"/spec/l","path":"/spec/m"},
                 {"op":"remove","path":"/spec/l/0"}]"#,
        )
        .expect("valid patch");
        assert_eq!(
            doc,
            json!({"spec": {"replicas": 3, "l": ["b"], "m": ["a", "b"]}})
        );
    }

    #[test]
    fn failed_json_patch_test_is_422_and_leaves_the_target_untouched() {
        let mut doc = json!({"spec": {"replicas": 1}});
        let e = json_patch(
            &mut doc,
            br#"[{"op":"replace","path":"/spec/replicas","value":5},{"op":"test","path":"/spec/replicas","value":2}]"#,
        )
        .expect_err("test fails");
        assert_eq!(e.code(), 422);
        assert_eq!(e.reason(), "Invalid");
        assert_eq!(
            e.message(),
            "the server rejected our request due to an error in our request"
        );
        assert_eq!(doc, json!({"spec": {"replicas": 1}}));
    }

    #[test]
    fn json_patch_on_a_missing_path_or_unknown_op_is_422() {
        let mut doc = json!({"a": 1});
        assert_eq!(
            json_patch(&mut doc, br#"[{"op":"remove","path":"/nope"}]"#).map_err(|e| e.code()),
            Err(422)
        );
        assert_eq!(
            json_patch(&mut doc, br#"[{"op":"frob","path":"/a"}]"#).map_err(|e| e.code()),
            Err(422)
        );
    }

    #[test]
    fn malformed_json_patch_is_400() {
        let mut doc = json!({});
        assert_eq!(
            json_patch(&mut doc, b"{\"op\":\"add\"}").map_err(|e| e.code()),
            Err(400)
        );
        assert_eq!(
            json_patch(&mut doc, b"[oops").map_err(|e| e.code()),
            Err(400)
        );
    }

    #[test]
    fn json_patch_with_too_many_operations_is_413() {
        let mut doc = json!({"a": 1});
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op":"test","path":"/a","value":1}))
            .collect();
        let body = serde_json::to_vec(&ops).expect("serializable");
        let e = json_patch(&mut doc, &body).expect_err("too many");
        assert_eq!(e.code(), 413);
        assert!(e.message().contains("got 10001"), "{}", e.message());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| json!(i)),
            "[a-z]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Strips nulls out of objects: merge patch cannot express a null value.
    fn without_nulls(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), without_nulls(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// RFC 7386 diff: the merge patch turning `from` into `to`.
    fn diff(from: &Value, to: &Value) -> Value {
        match (from, to) {
            (Value::Object(a), Value::Object(b)) => {
                let mut out = serde_json::Map::new();
                for k in a.keys() {
                    if !b.contains_key(k) {
                        out.insert(k.clone(), Value::Null);
                    }
                }
                for (k, bv) in b {
                    match a.get(k) {
                        Some(av) if av == bv => {}
                        Some(av) => {
                            out.insert(k.clone(), diff(av, bv));
                        }
                        None => {
                            out.insert(k.clone(), bv.clone());
                        }
                    }
                }
                Value::Object(out)
            }
            (_, b) => b.clone(),
        }
    }

    proptest! {
        #[test]
        fn merge_patch_of_a_diff_reproduces_the_target(
            a in prop::collection::btree_map("[a-c]", arb_json(), 0..4),
            b in prop::collection::btree_map("[a-c]", arb_json(), 0..4),
        ) {
            let a = without_nulls(&Value::Object(a.into_iter().collect()));
            let b = without_nulls(&Value::Object(b.into_iter().collect()));
            let mut doc = a.clone();
            merge_patch_value(&mut doc, &diff(&a, &b)).expect("object patch");
            prop_assert_eq!(doc, b);
        }

        #[test]
        fn a_merge_patch_from_bytes_moves_values_as_the_copying_merge_would(
            doc in arb_json(),
            patch in prop::collection::btree_map("[a-c]", arb_json(), 0..4),
        ) {
            let patch = Value::Object(patch.into_iter().collect());
            let mut copied = doc.clone();
            json_patch::merge(&mut copied, &patch);
            let mut moved = doc;
            merge_patch(&mut moved, patch.to_string().as_bytes()).expect("object patch");
            prop_assert_eq!(moved, copied);
        }
    }
}
