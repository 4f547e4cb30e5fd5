//! Strategic merge patch for built-in kinds, following
//! `staging/src/k8s.io/apimachinery/pkg/util/strategicpatch/patch.go`
//! (`StrategicMergeMapPatch` with `MergeParallelList` and
//! `IgnoreUnmatchedNulls`, as the API server calls it).
//!
//! * Maps merge key by key; `null` deletes a key.
//! * Lists whose field has `patchStrategy: merge` merge: lists of objects by
//!   the field's `patchMergeKey` (items matched by key are merged, new ones
//!   appended), lists of scalars as a union. Other lists are replaced.
//! * Directives: `$patch: replace|delete` on a map, `{"$patch": "replace"}`
//!   and `{"$patch": "delete", <key>: …}` list items, `$retainKeys`,
//!   `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`.
//!
//! Errors map like upstream `interpretStrategicMergePatchError`: malformed
//! directives are 400, list-of-lists and retainKeys mismatches 422, anything
//! else (e.g. an item without its merge key) a reason-less 500.
//!
//! Merged lists are ordered as upstream `normalizeElementOrder` orders them:
//! patched items in patch (or `$setElementOrder`) order, server-only items in
//! server order, interleaved by server position.
//!
//! Simplified: new items appended to a merged list of objects are merged into
//! an empty object (nulls and directives inside them are processed), where
//! upstream appends them verbatim and relies on decoding into the Go type to
//! drop what is left.

use serde_json::{Map, Value};

use super::error::PatchError;
use super::schema::TypeRef;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ORDER: &str = "$setElementOrder/";

/// Applies a strategic merge patch given as raw bytes to `target` (an object)
/// in place, typed by `schema` (see [`TypeRef::builtin`]). On error `target`
/// may be partially patched: patch a copy if the original is still needed.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &[u8],
    schema: TypeRef<'_>,
) -> Result<(), PatchError> {
    let patch: Map<String, Value> =
        serde_json::from_slice(patch).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    strategic_merge_patch_value(target, patch, schema)
}

/// [`strategic_merge_patch`] for an already decoded patch object.
pub fn strategic_merge_patch_value(
    target: &mut Value,
    patch: Map<String, Value>,
    schema: TypeRef<'_>,
) -> Result<(), PatchError> {
    let Value::Object(original) = target else {
        return Err(PatchError::BadRequest("invalid JSON document".into()));
    };
    merge_map(original, patch, schema)
}

fn merge_map(
    original: &mut Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: TypeRef<'_>,
) -> Result<(), PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                *original = patch;
                return Ok(());
            }
            Some("delete") => {
                original.clear();
                return Ok(());
            }
            _ => {
                return Err(PatchError::Internal(format!(
                    "unknown patch type: {} in map: {}",
                    go_fmt(&directive),
                    go_fmt(&Value::Object(patch))
                )));
            }
        }
    }
    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        apply_retain_keys(original, &patch, retain)?;
    }
    let orders: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ORDER))
        .cloned()
        .collect();
    for order_key in orders {
        let order = patch.remove(&order_key).unwrap_or(Value::Null);
        let field = &order_key[SET_ORDER.len()..];
        let list = patch.remove(field);
        merge_with_element_order(original, field, list, order, ty)?;
    }
    for (k, v) in patch {
        let (k, delete_list) = match k.strip_prefix(DELETE_PRIMITIVE) {
            Some(f) => (f.to_owned(), true),
            None => (k, false),
        };
        if v.is_null() {
            original.remove(&k);
            continue;
        }
        let field_ty = ty.field(&k);
        let strategy = ty.field_strategy(&k);
        let same_type = matches!(
            (original.get(&k), &v),
            (Some(Value::Object(_)), Value::Object(_)) | (Some(Value::Array(_)), Value::Array(_))
        );
        if !same_type {
            // Absent in the original, or of another type: take the patch
            // value without nulls and directives (upstream `removeDirectives`).
            if !delete_list {
                match remove_directives(v) {
                    Some(v) => {
                        original.insert(k, v);
                    }
                    None => {
                        original.remove(&k);
                    }
                }
            }
            continue;
        }
        match (original.get_mut(&k), v) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                if strategy.replace {
                    *o = p;
                } else {
                    merge_map(o, p, field_ty)?;
                }
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                if strategy.merge || delete_list {
                    let items = std::mem::take(o);
                    *o = merge_list(items, p, field_ty.elem(), strategy.key, delete_list)?;
                } else {
                    *o = p;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Upstream `applyRetainKeysDirective` (with `MergeParallelList`).
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: Value,
) -> Result<(), PatchError> {
    let bad = || PatchError::BadRequest("invalid patch format of retainKeys".into());
    let Value::Array(keys) = retain else {
        return Err(bad());
    };
    let names: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
    for (k, v) in patch {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE) || k.starts_with(SET_ORDER) {
            continue;
        }
        if !names.contains(&k.as_str()) {
            return Err(bad());
        }
    }
    original.retain(|k, _| names.contains(&k.as_str()));
    Ok(())
}

/// Upstream `mergePatchIntoOriginal`: merges list `field` (if patched) and
/// orders the result by the `$setElementOrder/field` list.
fn merge_with_element_order(
    original: &mut Map<String, Value>,
    field: &str,
    list: Option<Value>,
    order: Value,
    ty: TypeRef<'_>,
) -> Result<(), PatchError> {
    let bad = || PatchError::BadRequest("invalid patch format of setElementOrder list".into());
    let Value::Array(order) = order else {
        return Err(bad());
    };
    let patch_list = match list {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => return Err(bad()),
    };
    let original_list = match original.remove(field) {
        None => None,
        Some(Value::Array(a)) => Some(a),
        Some(other) => {
            original.insert(field.to_owned(), other);
            return Err(PatchError::Internal(format!("expected a list for {field}")));
        }
    };
    let strategy = ty.field_strategy(field);
    let key = strategy.key;
    let server_order: Vec<Value> = original_list
        .as_deref()
        .map(|l| ids(l, key))
        .unwrap_or_default();
    let merged = match (original_list, patch_list) {
        (Some(o), None) => o,
        (None, Some(p)) => match remove_directives(Value::Array(p)) {
            Some(Value::Array(a)) => a,
            _ => return Ok(()),
        },
        (Some(o), Some(p)) => {
            if strategy.merge {
                merge_list(o, p, ty.field(field).elem(), key, false)?
            } else {
                p
            }
        }
        (None, None) => return Ok(()),
    };
    let order_ids = ids(&order, key);
    let sorted = normalize_element_order(merged, &order_ids, &server_order, key);
    original.insert(field.to_owned(), Value::Array(sorted));
    Ok(())
}

/// The identities of list items: their merge key value, or themselves.
fn ids(items: &[Value], key: Option<&str>) -> Vec<Value> {
    items
        .iter()
        .map(|i| match key {
            Some(k) => i.get(k).cloned().unwrap_or(Value::Null),
            None => i.clone(),
        })
        .collect()
}

/// Upstream `removeDirectives` after `discardNullValuesFromPatch`: `None`
/// when the value is a map carrying `$patch` (it is dropped).
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            let mut out = Map::new();
            for (k, v) in m {
                // Nulls are discarded (`IgnoreUnmatchedNulls`); other
                // directive keys would be dropped by decoding into the Go
                // type upstream, so they are dropped here.
                if v.is_null() || k.starts_with('$') {
                    continue;
                }
                if let Some(v) = remove_directives(v) {
                    out.insert(k, v);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Upstream `mergeSlice`.
fn merge_list(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    elem: TypeRef<'_>,
    key: Option<&str>,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let first = original
        .iter()
        .chain(patch.iter())
        .next()
        .map(kind_of)
        .unwrap_or("null");
    if first == "array" {
        return Err(PatchError::Unprocessable {
            detail: "lists of lists are not supported".into(),
        });
    }
    if original
        .iter()
        .chain(patch.iter())
        .any(|v| kind_of(v) != first)
    {
        return Err(PatchError::Internal(format!(
            "list element types are not identical: {}",
            go_fmt(&Value::Array(
                original.iter().chain(patch.iter()).cloned().collect()
            ))
        )));
    }
    if first != "object" {
        if delete_list {
            original.retain(|v| !patch.contains(v));
            return Ok(original);
        }
        let server_order = original.clone();
        for v in &patch {
            if !original.contains(v) {
                original.push(v.clone());
            }
        }
        return Ok(normalize_element_order(
            original,
            &patch,
            &server_order,
            None,
        ));
    }
    let Some(key) = key else {
        return Err(PatchError::Internal(
            "cannot merge lists without merge key".into(),
        ));
    };
    // Special elements: `$patch: delete` items and `$patch: replace`.
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        match item.get(DIRECTIVE) {
            None => plain.push(item),
            Some(d) => match d.as_str() {
                Some("delete") => match item.get(key) {
                    Some(id) => original.retain(|o| o.get(key) != Some(id)),
                    None => return Err(no_merge_key(&item, key)),
                },
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(PatchError::Internal(
                        "merging lists cannot yet be specified in the patch".into(),
                    ));
                }
                _ => {
                    return Err(PatchError::Internal(format!(
                        "unknown patch type: {} in map: {}",
                        go_fmt(d),
                        go_fmt(&item)
                    )));
                }
            },
        }
    }
    let patch = if replace {
        original = plain;
        Vec::new()
    } else {
        plain
    };
    let server_order = ids(&original, Some(key));
    let mut order = Vec::with_capacity(patch.len());
    for item in patch {
        let Value::Object(item) = item else {
            return Err(PatchError::Internal(format!(
                "value for key {key} is not a map"
            )));
        };
        let Some(id) = item.get(key).cloned() else {
            return Err(no_merge_key(&Value::Object(item), key));
        };
        match original.iter_mut().find(|o| o.get(key) == Some(&id)) {
            Some(Value::Object(o)) => merge_map(o, item, elem)?,
            _ => {
                let mut fresh = Map::new();
                merge_map(&mut fresh, item, elem)?;
                original.push(Value::Object(fresh));
            }
        }
        order.push(id);
    }
    Ok(normalize_element_order(
        original,
        &order,
        &server_order,
        Some(key),
    ))
}

fn no_merge_key(item: &Value, key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_fmt(item)
    ))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Upstream `normalizeElementOrder` + `mergeSortedSlice`: items named by the
/// patch (`patch_order`) in patch order, server-only items in server order,
/// interleaved by their server positions.
fn normalize_element_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let id = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let pos = |list: &[Value], v: &Value| list.iter().position(|o| *o == id(v));
    let (mut patched, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| pos(patch_order, v).is_some());
    patched.sort_by_key(|v| pos(patch_order, v).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| pos(server_order, v).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patched.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patched.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (pos(server_order, l), pos(server_order, r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Go's `%v` formatting of decoded JSON, for error messages worded like upstream.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_fmt(&m[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn pod() -> TypeRef<'static> {
        TypeRef::builtin("v1", "Pod").expect("pod is built in")
    }

    fn smp(ty: TypeRef<'_>, original: Value, patch: Value) -> Result<Value, PatchError> {
        let mut doc = original;
        let Value::Object(p) = patch else {
            panic!("patch must be an object")
        };
        strategic_merge_patch_value(&mut doc, p, ty)?;
        Ok(doc)
    }

    /// Table of cases after upstream `strategicpatch/patch_test.go`
    /// (`createStrategicMergePatchTestCaseData` semantics), on real pod fields.
    #[test]
    fn strategic_merge_table() {
        struct Case {
            name: &'static str,
            original: Value,
            patch: Value,
            want: Value,
        }
        let cases = vec![
            Case {
                name: "containers merge by name, new ones appended",
                original: json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}),
                patch: json!({"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}}),
                want: json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}}),
            },
            Case {
                name: "env merges by name inside a container",
                original: json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}}),
                patch: json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "3"}]}]}}),
                want: json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}]}]}}),
            },
            Case {
                name: "delete directive removes a list item by key",
                original: json!({"spec": {"volumes": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}]}}),
                patch: json!({"spec": {"volumes": [{"name": "v1", "$patch": "delete"}]}}),
                want: json!({"spec": {"volumes": [{"name": "v2", "emptyDir": {}}]}}),
            },
            Case {
                name: "replace directive item replaces the whole list",
                original: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                patch: json!({"spec": {"containers": [{"name": "z"}, {"$patch": "replace"}]}}),
                want: json!({"spec": {"containers": [{"name": "z"}]}}),
            },
            Case {
                name: "replace directive on a map replaces it",
                original: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                patch: json!({"metadata": {"labels": {"c": "3", "$patch": "replace"}}}),
                want: json!({"metadata": {"labels": {"c": "3"}}}),
            },
            Case {
                name: "delete directive on a map empties it",
                original: json!({"metadata": {"labels": {"a": "1"}, "name": "p"}}),
                patch: json!({"metadata": {"labels": {"$patch": "delete"}}}),
                want: json!({"metadata": {"labels": {}, "name": "p"}}),
            },
            Case {
                name: "null deletes a map key",
                original: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                patch: json!({"metadata": {"labels": {"a": null}}}),
                want: json!({"metadata": {"labels": {"b": "2"}}}),
            },
            Case {
                name: "finalizers (merge, no key) are a union of scalars",
                original: json!({"metadata": {"finalizers": ["a", "b"]}}),
                patch: json!({"metadata": {"finalizers": ["b", "c"]}}),
                want: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            },
            Case {
                name: "deleteFromPrimitiveList removes scalars",
                original: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
                want: json!({"metadata": {"finalizers": ["a", "c"]}}),
            },
            Case {
                name: "lists without a strategy are replaced (args)",
                original: json!({"spec": {"containers": [{"name": "a", "args": ["1", "2"]}]}}),
                patch: json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
                want: json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
            },
            Case {
                name: "ports merge by containerPort",
                original: json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]}}),
                patch: json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]}}),
                want: json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]}}),
            },
            Case {
                name: "conditions merge by type",
                original: json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}),
                patch: json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                want: json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}}),
            },
            Case {
                name: "retainKeys clears keys not listed (volume source switch)",
                original: json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
                patch: json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}, "$retainKeys": ["name", "hostPath"]}]}}),
                want: json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}}),
            },
            Case {
                name: "setElementOrder reorders merged items",
                original: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                patch: json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}], "containers": [{"name": "a", "image": "x"}]}}),
                want: json!({"spec": {"containers": [{"name": "b"}, {"name": "a", "image": "x"}]}}),
            },
            Case {
                name: "a new list keeps no directives",
                original: json!({"spec": {}}),
                patch: json!({"spec": {"tolerations": [{"key": "k", "operator": "Exists"}], "volumes": [{"name": "gone", "$patch": "delete"}, {"name": "v", "x": null}]}}),
                want: json!({"spec": {"tolerations": [{"key": "k", "operator": "Exists"}], "volumes": [{"name": "v"}]}}),
            },
            Case {
                // Upstream `mergeSortedSlice` puts patch items not on the
                // server before the server-only ones.
                name: "ownerReferences merge by uid",
                original: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
                patch: json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
                want: json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}}),
            },
        ];
        for c in cases {
            let got = smp(pod(), c.original, c.patch).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn merged_lists_are_ordered_like_upstream_normalize_element_order() {
        let original =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let got = smp(
            pod(),
            original.clone(),
            json!({"spec": {"containers": [{"name": "c", "image": "1"}, {"name": "d"}]}}),
        )
        .expect("valid");
        let names: Vec<&str> = got["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        // A new item listed before a patched server item goes before it.
        let got = smp(
            pod(),
            original,
            json!({"spec": {"containers": [{"name": "d"}, {"name": "a", "image": "1"}]}}),
        )
        .expect("valid");
        let names: Vec<&str> = got["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["d", "a", "b", "c"]);
        // Scalars: patch order, server-only kept in place.
        let got = smp(
            pod(),
            json!({"metadata": {"finalizers": ["x", "y"]}}),
            json!({"metadata": {"finalizers": ["z", "x"]}}),
        )
        .expect("valid");
        assert_eq!(got["metadata"]["finalizers"], json!(["z", "x", "y"]));
    }

    /// Three-way cases of upstream `strategicpatch/patch_test.go` ("set
    /// elements order in a list with server-only items" 1–3, "add map to
    /// merging list by pointer"): the three-way patch applied to the current
    /// object gives the expected result, including server-only item placement.
    #[test]
    fn set_element_order_places_server_only_items_like_upstream_fixtures() {
        let list = |names: &[i64]| -> Value {
            json!(names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>())
        };
        let cases: Vec<(Vec<i64>, Value, Vec<i64>)> = vec![
            (
                vec![1, 3, 4, 2, 9],
                json!({"$setElementOrder/containers": list(&[4, 2, 3, 1])}),
                vec![4, 2, 3, 1, 9],
            ),
            (
                vec![1, 2, 9, 3, 4],
                json!({"$setElementOrder/containers": list(&[2, 1, 4, 3])}),
                vec![2, 1, 9, 4, 3],
            ),
            (
                vec![1, 2, 7, 9, 8, 3, 4],
                json!({"$setElementOrder/containers": list(&[2, 1, 4, 3])}),
                vec![2, 1, 7, 9, 8, 4, 3],
            ),
            (
                vec![1, 3],
                json!({"$setElementOrder/containers": list(&[1, 2]), "containers": list(&[2])}),
                vec![1, 2, 3],
            ),
        ];
        for (current, patch, want) in cases {
            let got = smp(
                pod(),
                json!({"spec": {"containers": list(&current)}}),
                json!({"spec": patch}),
            )
            .expect("valid");
            let names: Vec<i64> = got["spec"]["containers"]
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|c| c["name"].as_i64())
                .collect();
            assert_eq!(names, want, "current {current:?}");
        }
    }

    #[test]
    fn merge_directive_in_a_list_and_unknown_map_directives_are_500() {
        let e = smp(
            pod(),
            json!({"spec": {"containers": []}}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
        )
        .expect_err("merge directive");
        assert_eq!(e.code(), 500);
        let e = smp(
            pod(),
            json!({"spec": {}}),
            json!({"spec": {"$patch": "frob"}}),
        )
        .expect_err("bad directive");
        assert_eq!(e.message(), "unknown patch type: frob in map: map[]");
    }

    #[test]
    fn statefulset_volume_claim_templates_and_service_ports_use_their_keys() {
        let sts = TypeRef::builtin("apps/v1", "StatefulSet").expect("built in");
        // volumeClaimTemplates has no patch strategy upstream: replaced.
        let got = smp(
            sts,
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "a"}}], "template": {"spec": {"containers": [{"name": "c", "image": "1"}]}}}}),
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "b"}}], "template": {"spec": {"containers": [{"name": "c", "image": "2"}]}}}}),
        )
        .expect("valid");
        assert_eq!(
            got,
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "b"}}], "template": {"spec": {"containers": [{"name": "c", "image": "2"}]}}}})
        );
        let svc = TypeRef::builtin("v1", "Service").expect("built in");
        let got = smp(
            svc,
            json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
        )
        .expect("valid");
        assert_eq!(
            got["spec"]["ports"][1],
            json!({"port": 443, "name": "https", "targetPort": 8443})
        );
    }

    #[test]
    fn item_without_merge_key_is_a_reasonless_500() {
        let e = smp(
            pod(),
            json!({"spec": {"containers": []}}),
            json!({"spec": {"containers": [{"image": "x"}]}}),
        )
        .expect_err("no key");
        assert_eq!(e.code(), 500);
        assert!(
            e.message()
                .contains("does not contain declared merge key: name"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn retain_keys_mismatch_and_bad_directive_formats_are_400_and_list_of_lists_422() {
        let e = smp(
            pod(),
            json!({"spec": {"volumes": [{"name": "v"}]}}),
            json!({"spec": {"volumes": [{"name": "v", "nfs": {}, "$retainKeys": ["name"]}]}}),
        )
        .expect_err("mismatch");
        assert_eq!(e.code(), 400);
        assert_eq!(e.message(), "invalid patch format of retainKeys");
        // A non-list deletion list is ignored, as upstream (type mismatch).
        let got = smp(
            pod(),
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        )
        .expect("ignored");
        assert_eq!(got["metadata"]["finalizers"], json!(["a"]));
        let e = smp(
            pod(),
            json!({"spec": {}}),
            json!({"spec": {"$setElementOrder/containers": {}}}),
        )
        .expect_err("bad format");
        assert_eq!(e.code(), 400);
        let e = smp(
            pod(),
            json!({"spec": {"containers": [[1]]}}),
            json!({"spec": {"containers": [[2]]}}),
        )
        .expect_err("list of lists");
        assert_eq!(e.code(), 422);
    }

    #[test]
    fn malformed_patch_body_is_400() {
        let mut doc = json!({});
        assert_eq!(
            strategic_merge_patch(&mut doc, b"[]", pod()).map_err(|e| e.code()),
            Err(400)
        );
        assert_eq!(
            strategic_merge_patch(&mut doc, b"{", pod()).map_err(|e| e.code()),
            Err(400)
        );
    }

    fn arb_map() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i8>().prop_map(|i| json!(i)),
            "[a-z]{0,3}".prop_map(Value::String),
            prop::collection::vec(any::<i8>().prop_map(|i| json!(i)), 0..3).prop_map(Value::Array),
        ];
        leaf.prop_recursive(3, 20, 3, |inner| {
            prop::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        /// Without merge strategies or directives a strategic merge patch is a JSON merge patch.
        #[test]
        fn strategic_merge_without_strategies_equals_json_merge_patch(
            original in prop::collection::btree_map("[a-c]", arb_map(), 0..3),
            patch in prop::collection::btree_map("[a-c]", arb_map(), 0..3),
        ) {
            let original = Value::Object(original.into_iter().collect());
            let patch: Map<String, Value> = patch.into_iter().collect();
            let mut want = original.clone();
            json_patch::merge(&mut want, &Value::Object(patch.clone()));
            let mut got = original;
            strategic_merge_patch_value(&mut got, patch, TypeRef::Deduced).expect("valid patch");
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn unknown_fields_merge_maps_and_replace_lists() {
        let got = smp(
            TypeRef::Deduced,
            json!({"a": {"b": 1, "l": [1]}}),
            json!({"a": {"c": 2, "l": [2]}}),
        )
        .expect("valid");
        assert_eq!(got, json!({"a": {"b": 1, "c": 2, "l": [2]}}));
    }
}
