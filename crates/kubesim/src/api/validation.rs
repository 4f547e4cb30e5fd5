//! Object-meta validation and the built-in validation rules clients depend on.
//!
//! Upstream: `k8s.io/apimachinery/pkg/api/validation/objectmeta.go`
//! (`ValidateObjectMeta`), `k8s.io/apimachinery/pkg/util/validation/validation.go`
//! (the DNS-1123 / DNS-1035 messages). Defaulting lives in
//! [`super::defaults`]. Full per-kind validation is a simplification (the
//! rules that matter for StatefulSets are enforced).

use serde_json::Value;

use super::error::Cause;
use crate::registry::{NameRule, ResourceDescriptor};
use crate::schema::go_quote;

pub mod pod_update;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";

/// A DNS-1123 label (upstream `IsDNS1123Label`).
pub(crate) fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain (upstream `IsDNS1123Subdomain`).
pub(crate) fn is_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label)
}

fn is_dns1035(s: &str) -> bool {
    is_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn invalid(field: &str, value: &str, msg: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{value}\": {msg}"),
        field: field.into(),
    }
}

/// Validates a name under `rule`; returns the causes (empty when valid).
pub fn validate_name(rule: NameRule, field: &str, name: &str) -> Vec<Cause> {
    match rule {
        NameRule::Subdomain if !is_subdomain(name) => {
            if name.len() > 253 {
                return vec![invalid(field, name, "must be no more than 253 characters")];
            }
            vec![invalid(
                field,
                name,
                &format!(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_SUBDOMAIN_FMT}')"
                ),
            )]
        }
        NameRule::Label if !is_label(name) => {
            if name.len() > 63 {
                return vec![invalid(field, name, "must be no more than 63 characters")];
            }
            vec![invalid(
                field,
                name,
                &format!(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL_FMT}')"
                ),
            )]
        }
        NameRule::Rfc1035Label if !is_dns1035(name) => vec![invalid(
            field,
            name,
            &format!(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '{DNS1035_LABEL_FMT}')"
            ),
        )],
        NameRule::PathSegment
            if name == "." || name == ".." || name.contains('/') || name.contains('%') =>
        {
            vec![invalid(
                field,
                name,
                "may not contain '/' or '%' and may not be '.' or '..'",
            )]
        }
        _ => vec![],
    }
}

/// A label or annotation key: an optional DNS-1123 subdomain prefix and `/`, then a name of at
/// most 63 alphanumerics, `-`, `_` or `.` starting and ending alphanumeric (upstream
/// `IsQualifiedName`, `k8s.io/apimachinery/pkg/util/validation/validation.go`). Label selectors
/// check their keys with it too.
pub(crate) fn valid_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_subdomain)
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_` or `.` starting and ending
/// alphanumeric (upstream `IsValidLabelValue`).
pub(crate) fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// `schema.FromAPIVersionAndKind(apiVersion, kind)` as `(group, version)`:
/// `ParseGroupVersion` fails on more than one `/`, leaving both empty.
fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        None => ("", api_version),
        Some((_, v)) if v.contains('/') => ("", ""),
        Some((g, v)) => (g, v),
    }
}

/// Go's `%#v` of a `metav1.OwnerReference`, as `field.Invalid` prints a
/// struct value. Simplification: upstream prints a set `controller` or
/// `blockOwnerDeletion` pointer as its heap address (`(*bool)(0xc0001234)`),
/// which no simulator can reproduce; kubesim prints `(*bool)(true)`.
fn go_owner_reference(r: &Value) -> String {
    let s = |k: &str| go_quote(r[k].as_str().unwrap_or_default());
    let b = |k: &str| match r[k].as_bool() {
        Some(v) => format!("(*bool)({v})"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        s("apiVersion"),
        s("kind"),
        s("name"),
        s("uid"),
        b("controller"),
        b("blockOwnerDeletion")
    )
}

/// `ValidateOwnerReferences` (`k8s.io/apimachinery/pkg/api/validation/objectmeta.go`,
/// v1.35): each reference needs an API version with a version, a kind, a
/// name and a uid (the field paths carry no index, as upstream), `v1 Event`
/// may not own anything, and only one reference may be the controller.
/// Entries of the wrong JSON type are read as Go's zero values.
fn validate_owner_references(meta: &Value, causes: &mut Vec<Cause>) {
    const FIELD: &str = "metadata.ownerReferences";
    let Some(refs) = meta["ownerReferences"].as_array() else {
        return;
    };
    let quoted = |field: &str, value: &str, msg: &str| Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {msg}", go_quote(value)),
        field: field.into(),
    };
    let mut first_controller: Option<String> = None;
    for r in refs {
        let s = |k: &str| r[k].as_str().unwrap_or_default();
        let (group, version) = group_version(s("apiVersion"));
        if version.is_empty() {
            causes.push(quoted(
                &format!("{FIELD}.apiVersion"),
                s("apiVersion"),
                "version must not be empty",
            ));
        }
        for (k, field) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if s(k).is_empty() {
                causes.push(quoted(
                    &format!("{FIELD}.{field}"),
                    s(k),
                    "must not be empty",
                ));
            }
        }
        if group.is_empty() && version == "v1" && s("kind") == "Event" {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {}: /v1, Kind=Event is disallowed from being an owner",
                    go_owner_reference(r)
                ),
                field: FIELD.into(),
            });
        }
        if r["controller"].as_bool() == Some(true) {
            let current = format!("{}/{}", s("kind"), s("name"));
            match &first_controller {
                Some(first) => {
                    let all: Vec<String> = refs.iter().map(go_owner_reference).collect();
                    causes.push(Cause {
                        reason: "FieldValueInvalid".into(),
                        message: format!(
                            "Invalid value: []v1.OwnerReference{{{}}}: Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}",
                            all.join(", ")
                        ),
                        field: FIELD.into(),
                    });
                }
                None => first_controller = Some(current),
            }
        }
    }
}

/// The JSON type of `v` as Go's decoder names it in an `UnmarshalTypeError`.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `encoding/json` text of a number decoded into `interface{}` and
/// marshalled again (`utiljson` keeps integers as `int64`; others are
/// `float64`, written with `'f'` unless below 1e-6 or from 1e21 on).
fn go_json_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    let f = n.as_f64().unwrap_or_default();
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        // Go writes at least two exponent digits except e-7 style (cleaned to one).
        return if exp < 0 && exp > -10 {
            format!("{mant}e-{}", -exp)
        } else {
            format!("{mant}e{sign}{:02}", exp.abs())
        };
    }
    // Rust's `Display` of an `f64` is Go's `'f'` with the shortest digits.
    format!("{f}")
}

/// One Go type of `metav1.ObjectMeta`'s tree, as the decoder treats it.
#[derive(Clone, Copy)]
enum GoTy {
    /// A string-kinded type, by name (`string`, `types.UID`).
    Str(&'static str),
    Int64,
    Bool,
    /// `metav1.Time` (its own `UnmarshalJSON`).
    Time,
    /// `map[string]string`.
    MapStr,
    /// `[]string`.
    Strings,
    OwnerRefs,
    OwnerRef,
    ManagedFields,
    ManagedField,
    /// `*metav1.FieldsV1`: any JSON.
    Raw,
}

impl GoTy {
    fn name(self) -> &'static str {
        match self {
            GoTy::Str(n) => n,
            GoTy::Int64 => "int64",
            GoTy::Bool => "bool",
            GoTy::Time => "v1.Time",
            GoTy::MapStr => "map[string]string",
            GoTy::Strings => "[]string",
            GoTy::OwnerRefs => "[]v1.OwnerReference",
            GoTy::OwnerRef => "v1.OwnerReference",
            GoTy::ManagedFields => "[]v1.ManagedFieldsEntry",
            GoTy::ManagedField => "v1.ManagedFieldsEntry",
            GoTy::Raw => "v1.FieldsV1",
        }
    }

    /// The fields of a struct type (json name, type).
    fn fields(self) -> &'static [(&'static str, GoTy)] {
        match self {
            GoTy::OwnerRef => &[
                ("apiVersion", GoTy::Str("string")),
                ("blockOwnerDeletion", GoTy::Bool),
                ("controller", GoTy::Bool),
                ("kind", GoTy::Str("string")),
                ("name", GoTy::Str("string")),
                ("uid", GoTy::Str("types.UID")),
            ],
            GoTy::ManagedField => &[
                ("apiVersion", GoTy::Str("string")),
                ("fieldsType", GoTy::Str("string")),
                ("fieldsV1", GoTy::Raw),
                ("manager", GoTy::Str("string")),
                ("operation", GoTy::Str("v1.ManagedFieldsOperationType")),
                ("subresource", GoTy::Str("string")),
                ("time", GoTy::Time),
            ],
            _ => &[],
        }
    }
}

/// The fields of `metav1.ObjectMeta` (json name, type), sorted as Go's
/// marshaller writes a map's keys.
const OBJECT_META: &[(&str, GoTy)] = &[
    ("annotations", GoTy::MapStr),
    ("creationTimestamp", GoTy::Time),
    ("deletionGracePeriodSeconds", GoTy::Int64),
    ("deletionTimestamp", GoTy::Time),
    ("finalizers", GoTy::Strings),
    ("generateName", GoTy::Str("string")),
    ("generation", GoTy::Int64),
    ("labels", GoTy::MapStr),
    ("managedFields", GoTy::ManagedFields),
    ("name", GoTy::Str("string")),
    ("namespace", GoTy::Str("string")),
    ("ownerReferences", GoTy::OwnerRefs),
    ("resourceVersion", GoTy::Str("string")),
    ("selfLink", GoTy::Str("string")),
    ("uid", GoTy::Str("types.UID")),
];

/// What decoding one value found: the first type error (kept, decoding goes
/// on) or an error of a type's own `UnmarshalJSON`, which ends the decode.
enum Decoded {
    Ok,
    Saved(String),
    Abort(String),
}

/// Go's `encoding/json` (sigs.k8s.io/json) decoding `v` into `ty`; `within`
/// is the innermost struct and `stack` the JSON field names from the root (map
/// keys and list indexes are not part of it, as upstream).
fn go_decode(v: &Value, ty: GoTy, within: &str, stack: &mut Vec<&'static str>) -> Decoded {
    let type_error = |value: String| {
        Decoded::Saved(format!(
            "json: cannot unmarshal {value} into Go struct field {within}.{} of type {}",
            stack.join("."),
            ty.name()
        ))
    };
    if v.is_null() {
        return Decoded::Ok;
    }
    match ty {
        GoTy::Raw => Decoded::Ok,
        GoTy::Str(_) if v.is_string() => Decoded::Ok,
        GoTy::Bool if v.is_boolean() => Decoded::Ok,
        GoTy::Int64 => match v {
            Value::Number(n) if n.as_i64().is_some() => Decoded::Ok,
            Value::Number(n) => type_error(format!("number {}", go_json_number(n))),
            other => type_error(json_kind(other).into()),
        },
        GoTy::Time => match v {
            // `metav1.Time.UnmarshalJSON` decodes a string with the standard library (whose
            // error carries no field context and ends the decode).
            Value::String(_) => Decoded::Ok,
            other => Decoded::Abort(format!(
                "json: cannot unmarshal {} into Go value of type string",
                json_kind(other)
            )),
        },
        GoTy::MapStr => match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                first_of(
                    keys.into_iter()
                        .map(|k| go_decode(&m[k.as_str()], GoTy::Str("string"), within, stack)),
                )
            }
            other => type_error(json_kind(other).into()),
        },
        GoTy::Strings | GoTy::OwnerRefs | GoTy::ManagedFields => match v {
            Value::Array(items) => {
                let elem = match ty {
                    GoTy::Strings => GoTy::Str("string"),
                    GoTy::OwnerRefs => GoTy::OwnerRef,
                    _ => GoTy::ManagedField,
                };
                first_of(items.iter().map(|i| go_decode(i, elem, within, stack)))
            }
            other => type_error(json_kind(other).into()),
        },
        GoTy::OwnerRef | GoTy::ManagedField => match v {
            Value::Object(m) => {
                let inner = ty.name().trim_start_matches("v1.");
                let mut out = Decoded::Ok;
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    let Some((name, fty)) = ty.fields().iter().find(|(n, _)| *n == k.as_str())
                    else {
                        continue;
                    };
                    stack.push(name);
                    let d = go_decode(&m[k.as_str()], *fty, inner, stack);
                    stack.pop();
                    match d {
                        Decoded::Abort(e) => return Decoded::Abort(e),
                        Decoded::Saved(e) if matches!(out, Decoded::Ok) => out = Decoded::Saved(e),
                        _ => {}
                    }
                }
                out
            }
            other => type_error(json_kind(other).into()),
        },
        GoTy::Str(_) | GoTy::Bool => type_error(json_kind(v).into()),
    }
}

fn first_of(results: impl Iterator<Item = Decoded>) -> Decoded {
    let mut out = Decoded::Ok;
    for d in results {
        match d {
            Decoded::Abort(e) => return Decoded::Abort(e),
            Decoded::Saved(e) if matches!(out, Decoded::Ok) => out = Decoded::Saved(e),
            _ => {}
        }
    }
    out
}

/// The error a custom resource's write fails with when its `metadata` does
/// not decode into `metav1.ObjectMeta`, or `None`.
///
/// Upstream: the apiextensions decoder coerces `metadata` by a JSON round
/// trip into the Go type and, for requests (`dropInvalidMetadata` false),
/// returns the decoder's error (`objectmeta.GetObjectMetaWithOptions`,
/// apiextensions-apiserver `pkg/apiserver/schema/objectmeta/coerce.go`,
/// v1.35, decoding with sigs.k8s.io/json): the first field of the wrong JSON
/// type, keys in sorted order, e.g. `json: cannot unmarshal number into Go
/// struct field OwnerReference.ownerReferences.uid of type types.UID`. The
/// caller answers 400 on create and update, 422 on `patch` for a patch.
/// Simplification: a timestamp that is a string is not parsed (upstream
/// fails one that is not RFC 3339 with `time.Parse`'s error); the API server
/// sets the timestamps that matter itself.
pub fn object_meta_decode_error(obj: &Value) -> Option<String> {
    let meta = match obj.get("metadata") {
        None | Some(Value::Null) => return None,
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Some(format!(
                "json: cannot unmarshal {} into Go value of type v1.ObjectMeta",
                json_kind(other)
            ));
        }
    };
    let mut stack = Vec::new();
    let decoded = OBJECT_META.iter().filter_map(|(name, ty)| {
        let v = meta.get(*name)?;
        stack.push(*name);
        let d = go_decode(v, *ty, "ObjectMeta", &mut stack);
        stack.pop();
        Some(d)
    });
    match first_of(decoded) {
        Decoded::Ok => None,
        Decoded::Saved(e) | Decoded::Abort(e) => Some(e),
    }
}

/// `ValidateObjectMeta`: name, labels, annotation keys, ownerReferences.
pub fn validate_meta(d: &ResourceDescriptor, obj: &Value) -> Vec<Cause> {
    let meta = &obj["metadata"];
    let mut causes = vec![];
    let name = meta["name"].as_str().unwrap_or_default();
    causes.extend(validate_name(d.name_rule, "metadata.name", name));
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !valid_qualified_name(k) {
                causes.push(invalid("metadata.labels", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
            }
            match v.as_str() {
                Some(s) if valid_label_value(s) => {}
                _ => causes.push(invalid(
                    "metadata.labels",
                    &v.as_str().map(String::from).unwrap_or_else(|| v.to_string()),
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                )),
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        for k in ann.keys() {
            if !valid_qualified_name(k) {
                causes.push(invalid("metadata.annotations", k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
        }
    }
    validate_owner_references(meta, &mut causes);
    causes
}

/// StatefulSet rules clients trip over (`ValidateStatefulSetSpec`, subset) and
/// the pod update rules ([`pod_update`]).
pub fn validate_kind(d: &ResourceDescriptor, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = vec![];
    causes.extend(crate::admission::config::validate(d, obj));
    if d.group == "apps" && d.kind == "StatefulSet" {
        let spec = &obj["spec"];
        let sel = &spec["selector"];
        let empty_sel = sel.is_null()
            || (sel["matchLabels"].as_object().is_none_or(|m| m.is_empty())
                && sel["matchExpressions"]
                    .as_array()
                    .is_none_or(|a| a.is_empty()));
        if empty_sel {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: {}: empty selector is invalid for statefulset".into(),
                field: "spec.selector".into(),
            });
        } else if let Ok(s) = crate::selector::LabelSelector::from_json(sel) {
            let labels = spec["template"]["metadata"]["labels"].as_object();
            let ok = s.matches_with(|k| labels.and_then(|m| m.get(k)).and_then(|v| v.as_str()));
            if !ok {
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        spec["template"]["metadata"]["labels"]
                    ),
                    field: "spec.template.metadata.labels".into(),
                });
            }
        }
        if let Some(r) = spec["replicas"].as_i64()
            && r < 0
        {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {r}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            });
        }
        if let Some(p) = spec["podManagementPolicy"].as_str()
            && p != "OrderedReady"
            && p != "Parallel"
        {
            causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: \"{p}\": supported values: \"OrderedReady\", \"Parallel\""
                ),
                field: "spec.podManagementPolicy".into(),
            });
        }
        if let Some(rp) = spec["template"]["spec"]["restartPolicy"].as_str()
            && rp != "Always"
        {
            causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!("Unsupported value: \"{rp}\": supported values: \"Always\""),
                field: "spec.template.spec.restartPolicy".into(),
            });
        }
        if let Some(old) = old {
            let mut a = old["spec"].clone();
            let mut b = spec.clone();
            for f in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
                "revisionHistoryLimit",
            ] {
                if let Some(m) = a.as_object_mut() {
                    m.remove(f);
                }
                if let Some(m) = b.as_object_mut() {
                    m.remove(f);
                }
            }
            if a != b {
                causes.push(Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into(),
                    field: "spec".into(),
                });
            }
        }
    }
    if d.group.is_empty()
        && d.kind == "Pod"
        && let Some(old) = old
    {
        causes.extend(pod_update::validate_pod_update(obj, old));
    }
    if d.group.is_empty() && d.kind == "Pod" && old.is_none() {
        let containers = obj["spec"]["containers"].as_array();
        if containers.is_none_or(|c| c.is_empty()) {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.containers".into(),
            });
        }
    }
    causes
}

/// `qosClass` of a pod spec (`pkg/apis/core/helper/qos/qos.go`, simplified to
/// cpu and memory).
pub fn pod_qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for c in spec["containers"].as_array().into_iter().flatten() {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let (q, l) = (&req[r], &lim[r]);
            if !q.is_null() || !l.is_null() {
                any = true;
            }
            if l.is_null() || (!q.is_null() && q != l) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_checked_against_the_dns_rules() {
        assert!(validate_name(NameRule::Subdomain, "metadata.name", "web-0.a").is_empty());
        assert!(!validate_name(NameRule::Subdomain, "metadata.name", "Web_0").is_empty());
        assert!(!validate_name(NameRule::Label, "metadata.name", "a.b").is_empty());
        assert!(!validate_name(NameRule::Rfc1035Label, "metadata.name", "0abc").is_empty());
        assert!(validate_name(NameRule::PathSegment, "metadata.name", "system:admin").is_empty());
    }

    fn owner_causes(refs: Value) -> Vec<(String, String)> {
        let mut causes = Vec::new();
        validate_owner_references(&json!({ "ownerReferences": refs }), &mut causes);
        causes.into_iter().map(|c| (c.field, c.message)).collect()
    }

    #[test]
    fn owner_references_need_a_version_kind_name_and_uid_as_upstream_words_it() {
        let c = |f: &str, m: &str| (f.to_owned(), m.to_owned());
        assert_eq!(
            owner_causes(json!([{ "uid": "u" }])),
            vec![
                c(
                    "metadata.ownerReferences.apiVersion",
                    "Invalid value: \"\": version must not be empty"
                ),
                c(
                    "metadata.ownerReferences.kind",
                    "Invalid value: \"\": must not be empty"
                ),
                c(
                    "metadata.ownerReferences.name",
                    "Invalid value: \"\": must not be empty"
                ),
            ]
        );
        // More than one '/' fails ParseGroupVersion; "apps/" has no version; a wrong JSON type
        // reads as Go's zero value.
        assert_eq!(
            owner_causes(json!([
                { "apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "1" },
                { "apiVersion": "apps/", "kind": "K", "name": "n", "uid": "2" },
                { "apiVersion": "v1", "kind": "K", "name": "n", "uid": 5 },
            ])),
            vec![
                c(
                    "metadata.ownerReferences.apiVersion",
                    "Invalid value: \"a/b/c\": version must not be empty"
                ),
                c(
                    "metadata.ownerReferences.apiVersion",
                    "Invalid value: \"apps/\": version must not be empty"
                ),
                c(
                    "metadata.ownerReferences.uid",
                    "Invalid value: \"\": must not be empty"
                ),
            ]
        );
        assert!(
            owner_causes(
                json!([{ "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "n", "uid": "u" }])
            )
            .is_empty()
        );
    }

    #[test]
    fn events_cannot_own_and_only_one_owner_is_the_controller() {
        let r = |kind: &str, name: &str, uid: &str| json!({ "apiVersion": "v1", "kind": kind, "name": name, "uid": uid, "controller": true });
        let event = owner_causes(json!([r("Event", "e", "1")]));
        assert_eq!(event.len(), 1);
        assert_eq!(event[0].0, "metadata.ownerReferences");
        assert!(
            event[0]
                .1
                .ends_with(": /v1, Kind=Event is disallowed from being an owner"),
            "{}",
            event[0].1
        );
        let two = owner_causes(json!([
            r("A", "a", "1"),
            r("B", "b", "2"),
            r("C", "c", "3")
        ]));
        assert_eq!(two.len(), 2);
        assert!(
            two[0].1.starts_with("Invalid value: []v1.OwnerReference{v1.OwnerReference{APIVersion:\"v1\", Kind:\"A\", Name:\"a\", UID:\"1\", Controller:(*bool)(true), BlockOwnerDeletion:(*bool)(nil)}, "),
            "{}",
            two[0].1
        );
        assert!(two[0].1.ends_with(": Only one reference can have Controller set to true. Found \"true\" in references for A/a and B/b"));
        assert!(
            two[1]
                .1
                .ends_with("Found \"true\" in references for A/a and C/c")
        );
    }

    #[test]
    fn custom_resource_metadata_of_the_wrong_json_type_fails_as_gos_decoder_words_it() {
        let err = |meta: Value| object_meta_decode_error(&json!({ "metadata": meta }));
        assert_eq!(
            err(json!({"name": "a", "labels": {"a": "b"}, "ownerReferences": [{"uid": "u"}]})),
            None
        );
        assert_eq!(err(json!(null)), None);
        for (meta, want) in [
            (
                json!("x"),
                "json: cannot unmarshal string into Go value of type v1.ObjectMeta",
            ),
            (
                json!({"ownerReferences": [2_147_483_648_i64]}),
                "json: cannot unmarshal number into Go struct field ObjectMeta.ownerReferences of type v1.OwnerReference",
            ),
            (
                json!({"ownerReferences": "x"}),
                "json: cannot unmarshal string into Go struct field ObjectMeta.ownerReferences of type []v1.OwnerReference",
            ),
            (
                json!({"ownerReferences": [{"uid": 5}]}),
                "json: cannot unmarshal number into Go struct field OwnerReference.ownerReferences.uid of type types.UID",
            ),
            (
                json!({"ownerReferences": [{"controller": "yes"}]}),
                "json: cannot unmarshal string into Go struct field OwnerReference.ownerReferences.controller of type bool",
            ),
            (
                json!({"labels": {"a": 5}}),
                "json: cannot unmarshal number into Go struct field ObjectMeta.labels of type string",
            ),
            (
                json!({"labels": [1]}),
                "json: cannot unmarshal array into Go struct field ObjectMeta.labels of type map[string]string",
            ),
            (
                json!({"finalizers": {"a": 1}}),
                "json: cannot unmarshal object into Go struct field ObjectMeta.finalizers of type []string",
            ),
            (
                json!({"generation": 1.5}),
                "json: cannot unmarshal number 1.5 into Go struct field ObjectMeta.generation of type int64",
            ),
            (
                json!({"generation": u64::MAX}),
                "json: cannot unmarshal number 18446744073709552000 into Go struct field ObjectMeta.generation of type int64",
            ),
            (
                json!({"generation": 1e300}),
                "json: cannot unmarshal number 1e+300 into Go struct field ObjectMeta.generation of type int64",
            ),
            (
                json!({"creationTimestamp": 5}),
                "json: cannot unmarshal number into Go value of type string",
            ),
            // The first error in key order wins ("annotations" before "name").
            (
                json!({"name": 5, "annotations": {"a": true}}),
                "json: cannot unmarshal bool into Go struct field ObjectMeta.annotations of type string",
            ),
        ] {
            assert_eq!(err(meta.clone()).as_deref(), Some(want), "{meta}");
        }
    }
}
