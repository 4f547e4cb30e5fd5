//! Which pod spec changes an update may make (`ValidatePodUpdate` in
//! `pkg/apis/core/validation/validation.go`).
//!
//! A pod's spec is immutable but for `spec.containers[*].image`,
//! `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` (set when
//! unset, or lowered; never unset), additions to `spec.tolerations` (an
//! existing toleration may change only its `tolerationSeconds`), removals
//! from `spec.schedulingGates`, and `spec.terminationGracePeriodSeconds`
//! replaced by `1` when it was negative. Metadata is free (its own rules live
//! in [`super::validate_meta`]). The check runs on every write of the main
//! pod resource — PUT, every PATCH type and server-side apply — after
//! defaulting; `pods/status` writes keep the stored spec and never reach it.
//!
//! Simplifications, each against the upstream function named:
//! * The forbidden-update message ends, as upstream's does, with a diff of
//!   the spec after the updatable fields were taken from the old one; kubesim
//!   renders it as one `-`/`+` pair of lines per changed JSON path (old value,
//!   new value, compact JSON) instead of go-cmp's rendering of the internal
//!   Go struct `core.PodSpec`. The first line — the part clients match — is
//!   upstream's word for word.
//! * Equality is JSON equality after dropping `null`s and empty lists (Go's
//!   `apiequality.Semantic.DeepEqual` treats nil and empty slices alike);
//!   quantities are compared as written (`1000m` differs from `1`).
//! * The relaxations for pods that still have scheduling gates (additions to
//!   `nodeSelector` and required node affinity) are not implemented: such a
//!   change is refused like any other spec change.
//! * `validatePodMetadataAndSpec` (full validation of the new spec) is not
//!   run again; only the update rules are.
//! * `pods/resize` (`ValidatePodResize`, in-place resource changes) is not
//!   served: a change to `resources` is refused as a spec change.

use serde_json::{Map, Value};

use super::Cause;

/// The updatable fields, as upstream lists them in its message
/// (`updatablePodSpecFields`).
const UPDATABLE: [&str; 5] = [
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// The start of the message of a forbidden pod spec update (everything
/// before the diff), exactly as kube-apiserver words it.
pub fn forbidden_update_message() -> String {
    format!(
        "Forbidden: pod updates may not change fields other than {}",
        UPDATABLE.join(",")
    )
}

fn forbidden(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {detail}"),
        field: field.into(),
    }
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {detail}"),
        field: field.into(),
    }
}

fn list(spec: &Value, key: &str) -> Vec<Value> {
    spec.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `ValidateContainerUpdates`: the same number of containers, each with an
/// image without surrounding whitespace. `Err` stops the validation (upstream
/// returns at once when containers were added or removed).
fn container_updates(
    new: &[Value],
    old: &[Value],
    path: &str,
    causes: &mut Vec<Cause>,
) -> Result<(), ()> {
    if new.len() != old.len() {
        causes.push(forbidden(
            path,
            "pod updates may not add or remove containers",
        ));
        return Err(());
    }
    for (i, c) in new.iter().enumerate() {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let field = format!("{path}[{i}].image");
        if image.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field,
            });
        } else if image.trim() != image {
            causes.push(invalid(
                &field,
                &crate::schema::go_quote(image),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    Ok(())
}

/// A toleration as Go's `reflect.DeepEqual` sees it once `tolerationSeconds`
/// is cleared: absent string fields are empty strings.
fn toleration_identity(t: &Value) -> [String; 4] {
    ["key", "operator", "value", "effect"].map(|k| {
        t.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    })
}

/// Drops `null`s and empty lists, recursively (nil and empty slices are
/// equal to `apiequality.Semantic`).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null() && !x.as_array().is_some_and(|a| a.is_empty()))
                .map(|(k, x)| (k.clone(), normalized(x)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// `-`/`+` lines for every JSON path where `old` and `new` differ.
fn diff(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<String>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff(&format!("{path}.{k}"), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => {
            let show = |v: Option<&Value>| v.map_or_else(|| "<unset>".to_owned(), Value::to_string);
            out.push(format!("- {path}: {}", show(a)));
            out.push(format!("+ {path}: {}", show(b)));
        }
    }
}

/// The causes that make the update of a pod from `old` to `new` (whole
/// objects, defaulted) invalid; empty when it is allowed.
pub fn validate_pod_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (new_spec, old_spec) = (&new["spec"], &old["spec"]);
    for key in ["containers", "initContainers"] {
        let path = format!("spec.{key}");
        if container_updates(
            &list(new_spec, key),
            &list(old_spec, key),
            &path,
            &mut causes,
        )
        .is_err()
        {
            return causes;
        }
    }

    // activeDeadlineSeconds: set from nil, or lowered; never back to nil.
    let ads = "spec.activeDeadlineSeconds";
    match (
        new_spec
            .get("activeDeadlineSeconds")
            .and_then(Value::as_i64),
        old_spec
            .get("activeDeadlineSeconds")
            .and_then(Value::as_i64),
    ) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            causes.push(invalid(
                ads,
                &n.to_string(),
                "must be between 0 and 2147483647, inclusive",
            ));
            return causes;
        }
        (Some(n), Some(o)) if o < n => {
            causes.push(invalid(
                ads,
                &n.to_string(),
                "must be less than or equal to previous value",
            ));
            return causes;
        }
        (None, Some(_)) => causes.push(invalid(
            ads,
            "\"null\"",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }

    // validateOnlyAddedTolerations: every old toleration is still there
    // (tolerationSeconds aside).
    let new_tol: Vec<[String; 4]> = list(new_spec, "tolerations")
        .iter()
        .map(toleration_identity)
        .collect();
    if list(old_spec, "tolerations")
        .iter()
        .any(|t| !new_tol.contains(&toleration_identity(t)))
    {
        causes.push(forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }

    // validateOnlyDeletedSchedulingGates.
    let gate_name = |g: &Value| g.get("name").and_then(Value::as_str).map(str::to_owned);
    let old_gates: Vec<Option<String>> = list(old_spec, "schedulingGates")
        .iter()
        .map(gate_name)
        .collect();
    for (i, g) in list(new_spec, "schedulingGates").iter().enumerate() {
        let name = gate_name(g);
        if !old_gates.contains(&name) {
            causes.push(forbidden(
                &format!("spec.schedulingGates[{i}].name"),
                &format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    name.unwrap_or_default()
                ),
            ));
        }
    }

    let old_norm = normalized(old_spec);
    if normalized(new_spec) == old_norm {
        return causes;
    }
    // Take the updatable fields from the old spec, then compare.
    let mut munged = new_spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for key in ["containers", "initContainers"] {
            let olds = list(old_spec, key);
            if let Some(cs) = m.get_mut(key).and_then(Value::as_array_mut) {
                for (c, o) in cs.iter_mut().zip(&olds) {
                    if let Some(cm) = c.as_object_mut() {
                        match o.get("image") {
                            Some(img) => cm.insert("image".into(), img.clone()),
                            None => cm.remove("image"),
                        };
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old_spec.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let tgps = "terminationGracePeriodSeconds";
        let old_tgps = old_spec.get(tgps).and_then(Value::as_i64);
        if old_tgps.is_some_and(|o| o < 0) && m.get(tgps).and_then(Value::as_i64) == Some(1) {
            m.insert(tgps.into(), old_spec[tgps].clone());
        }
    }
    let munged = normalized(&munged);
    if munged != old_norm {
        let mut lines = Vec::new();
        diff("spec", Some(&old_norm), Some(&munged), &mut lines);
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("{}\n{}", forbidden_update_message(), lines.join("\n")),
            field: "spec".into(),
        });
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    fn base() -> Value {
        json!({
            "containers": [{"name": "app", "image": "nginx:1"}],
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        })
    }

    fn with(f: impl FnOnce(&mut Value)) -> Value {
        let mut s = base();
        f(&mut s);
        pod(s)
    }

    #[test]
    fn the_message_lists_the_updatable_fields_as_upstream_does() {
        assert_eq!(
            forbidden_update_message(),
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
        );
    }

    #[test]
    fn an_image_change_and_a_metadata_change_are_allowed() {
        let mut new = with(|s| s["containers"][0]["image"] = json!("nginx:2"));
        new["metadata"]["labels"] = json!({"a": "b"});
        assert!(validate_pod_update(&new, &pod(base())).is_empty());
    }

    #[test]
    fn an_env_change_is_forbidden_with_a_diff_naming_the_path() {
        let new = with(|s| s["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]));
        let causes = validate_pod_update(&new, &pod(base()));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        let (first, rest) = causes[0].message.split_once('\n').unwrap();
        assert_eq!(first, forbidden_update_message());
        assert_eq!(
            rest,
            "- spec.containers[0].env: <unset>\n+ spec.containers[0].env: [{\"name\":\"A\",\"value\":\"1\"}]"
        );
    }

    #[test]
    fn an_empty_list_equals_an_absent_one() {
        let new = with(|s| s["containers"][0]["env"] = json!([]));
        assert!(validate_pod_update(&new, &pod(base())).is_empty());
    }

    #[test]
    fn termination_grace_may_only_become_one_from_a_negative_value() {
        let neg = with(|s| s["terminationGracePeriodSeconds"] = json!(-1));
        let one = with(|s| s["terminationGracePeriodSeconds"] = json!(1));
        assert!(validate_pod_update(&one, &neg).is_empty());
        assert_eq!(validate_pod_update(&one, &pod(base())).len(), 1);
        let two = with(|s| s["terminationGracePeriodSeconds"] = json!(2));
        assert_eq!(validate_pod_update(&two, &neg).len(), 1);
    }

    #[test]
    fn active_deadline_may_be_set_or_lowered_but_not_raised_or_unset() {
        let unset = pod(base());
        let ten = with(|s| s["activeDeadlineSeconds"] = json!(10));
        let five = with(|s| s["activeDeadlineSeconds"] = json!(5));
        assert!(validate_pod_update(&ten, &unset).is_empty());
        assert!(validate_pod_update(&five, &ten).is_empty());
        let raised = validate_pod_update(&ten, &five);
        assert_eq!(
            raised[0].message,
            "Invalid value: 10: must be less than or equal to previous value"
        );
        let removed = validate_pod_update(&unset, &ten);
        assert_eq!(
            removed[0].message,
            "Invalid value: \"null\": must not update from a positive integer to nil value"
        );
        assert_eq!(removed[0].field, "spec.activeDeadlineSeconds");
    }

    #[test]
    fn tolerations_may_be_added_and_their_seconds_changed_but_not_removed() {
        let added = with(|s| {
            s["tolerations"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": "b", "operator": "Exists"}));
        });
        assert!(validate_pod_update(&added, &pod(base())).is_empty());
        let seconds = with(|s| s["tolerations"][0]["tolerationSeconds"] = json!(60));
        assert!(validate_pod_update(&seconds, &pod(base())).is_empty());
        let removed = with(|s| s["tolerations"] = json!([]));
        let causes = validate_pod_update(&removed, &pod(base()));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.tolerations");
        assert_eq!(
            causes[0].message,
            "Forbidden: existing toleration can not be modified except its tolerationSeconds"
        );
    }

    #[test]
    fn adding_a_container_stops_at_the_container_count() {
        let new = with(|s| {
            s["containers"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "b", "image": "x"}));
        });
        let causes = validate_pod_update(&new, &pod(base()));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.containers");
        assert_eq!(
            causes[0].message,
            "Forbidden: pod updates may not add or remove containers"
        );
    }

    #[test]
    fn scheduling_gates_may_only_be_removed() {
        let gated = with(|s| s["schedulingGates"] = json!([{"name": "g1"}]));
        let more = with(|s| s["schedulingGates"] = json!([{"name": "g1"}, {"name": "g2"}]));
        assert!(validate_pod_update(&pod(base()), &gated).is_empty());
        let causes = validate_pod_update(&more, &gated);
        assert_eq!(causes[0].field, "spec.schedulingGates[1].name");
        assert_eq!(
            causes[0].message,
            "Forbidden: only deletion is allowed, but found new scheduling gate 'g2'"
        );
    }
}
