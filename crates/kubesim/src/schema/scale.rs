//! The `/scale` subresource of custom resources.
//!
//! Mirrors `pkg/registry/customresource/etcd.go` (`scaleFromCustomResource`,
//! `scaleUpdatedObjectInfo`) and `ValidateScaleSpec`/`ValidateScaleStatus` in
//! `customresource/validator.go`: the CRD names where replicas and the label
//! selector live (`.spec.replicas`, `.status.replicas`, `.status.selector`).

use serde_json::{Map, Value, json};

use super::field::FieldError;

/// A CRD's `subresources.scale` paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// `specReplicasPath`, e.g. `.spec.replicas`.
    pub spec_replicas_path: String,
    /// `statusReplicasPath`, e.g. `.status.replicas`.
    pub status_replicas_path: String,
    /// `labelSelectorPath`, e.g. `.status.selector`.
    pub label_selector_path: Option<String>,
}

impl ScalePaths {
    /// Reads them from a CRD version's `subresources.scale` object.
    pub fn from_crd(scale: &Value) -> Option<Self> {
        Some(Self {
            spec_replicas_path: scale.get("specReplicasPath")?.as_str()?.to_owned(),
            status_replicas_path: scale.get("statusReplicasPath")?.as_str()?.to_owned(),
            label_selector_path: scale
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect()
}

fn get<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    segments(path)
        .into_iter()
        .try_fold(obj, |cur, seg| cur.get(seg))
}

/// The `autoscaling/v1` `Scale` of custom resource `obj`.
pub fn scale_of(obj: &Value, paths: &ScalePaths) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut m = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    let spec_replicas = get(obj, &paths.spec_replicas_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = get(obj, &paths.status_replicas_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut status = json!({"replicas": status_replicas});
    if let Some(sel) = paths
        .label_selector_path
        .as_deref()
        .and_then(|p| get(obj, p))
        .and_then(Value::as_str)
    {
        status["selector"] = Value::from(sel);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": Value::Object(m),
        "spec": {"replicas": spec_replicas},
        "status": status,
    })
}

/// Writes `replicas` into `obj` at the spec replicas path, creating objects
/// on the way.
pub fn set_spec_replicas(obj: &mut Value, paths: &ScalePaths, replicas: i64) {
    let segs = segments(&paths.spec_replicas_path);
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == segs.len() {
            map.insert((*seg).to_owned(), Value::from(replicas));
            return;
        }
        cur = map
            .entry((*seg).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn check_replicas(obj: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match get(obj, path) {
        None => {}
        Some(v) => match v.as_i64() {
            None => errs.push(FieldError::invalid(
                path,
                Value::from(0),
                format!(
                    ".{} accessor error: {v} is of the type {}, expected int64",
                    segments(path).join("."),
                    go_type(v)
                ),
            )),
            Some(n) if n < 0 => errs.push(FieldError::invalid(
                path,
                Value::from(n),
                "should be a non-negative integer",
            )),
            Some(n) if n > i64::from(i32::MAX) => errs.push(FieldError::invalid(
                path,
                Value::from(n),
                format!("should be less than or equal to {}", i32::MAX),
            )),
            Some(_) => {}
        },
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Null => "<nil>",
    }
}

/// `ValidateScaleSpec` + `ValidateScaleStatus`.
pub fn validate_scale_paths(obj: &Value, paths: &ScalePaths) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_replicas(obj, &paths.spec_replicas_path, &mut errs);
    check_replicas(obj, &paths.status_replicas_path, &mut errs);
    if let Some(sel_path) = &paths.label_selector_path
        && let Some(v) = get(obj, sel_path)
        && !v.is_string()
    {
        errs.push(FieldError::invalid(
            sel_path,
            Value::from(""),
            format!(
                ".{} accessor error: {v} is of the type {}, expected string",
                segments(sel_path).join("."),
                go_type(v)
            ),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> ScalePaths {
        ScalePaths::from_crd(
            &json!({"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                     "labelSelectorPath": ".status.selector"}),
        )
        .expect("paths")
    }

    #[test]
    fn scale_reflects_the_custom_resource() {
        let obj = json!({"metadata": {"name": "r", "namespace": "ns", "resourceVersion": "7"},
                         "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=web"}});
        let s = scale_of(&obj, &paths());
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=web"}));
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        assert_eq!(s["apiVersion"], "autoscaling/v1");
    }

    #[test]
    fn setting_replicas_creates_missing_parents() {
        let mut obj = json!({"metadata": {"name": "r"}});
        set_spec_replicas(&mut obj, &paths(), 5);
        assert_eq!(obj["spec"]["replicas"], 5);
    }

    #[test]
    fn negative_replicas_are_invalid() {
        let obj = json!({"spec": {"replicas": -1}});
        let errs = validate_scale_paths(&obj, &paths());
        assert_eq!(
            errs[0].to_string(),
            ".spec.replicas: Invalid value: -1: should be a non-negative integer"
        );
    }
}
