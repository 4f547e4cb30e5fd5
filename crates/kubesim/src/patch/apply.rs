//! Server-side apply and `managedFields` bookkeeping, after
//! sigs.k8s.io/structured-merge-diff `merge/update.go` (`Updater.Apply`,
//! `Updater.Update`, `prune`) and the API server's field manager
//! (`staging/src/k8s.io/apimachinery/pkg/util/managedfields/internal/`:
//! `structuredmerge.go`, `managedfieldsupdater.go`, `stripmeta.go`,
//! `buildmanagerinfo.go`, `conflict.go`, `managedfields.go`).
//!
//! * Apply merges the configuration into the live object: granular maps key
//!   by key, associative lists (`x-kubernetes-list-type: map|set`, or a
//!   `merge` patch strategy) item by item, everything else as a whole.
//! * The applier then owns exactly the fields of its configuration. Fields it
//!   owned after its previous apply and no longer applies are removed from the
//!   object unless another manager owns them.
//! * A field changed by the apply that another manager owns is a conflict
//!   (409) unless `force`, which moves the ownership to the applier.
//! * Updates (POST/PUT/PATCH) make their manager own every field they
//!   changed, taking it from any other manager; removed fields are dropped
//!   from every manager.
//! * As upstream `skipnonapplied.go` (with track-on-create probability 1):
//!   creates are tracked, updates of an existing object nobody manages are
//!   not, and the first apply to such an object first gives all its fields
//!   to `before-first-apply`. More than 10 update managers fold the oldest
//!   into `ancient-changes` (`capmanagers.go`).
//!
//! Simplified against upstream, deliberately:
//! * Only one version per kind exists, so no conversion between versions.
//! * The order of merged associative lists keeps the live order and puts new
//!   items after the applied item that precedes them (upstream
//!   `typed/merge.go` `visitListItems` interleaves slightly differently).
//! * A struct that an update creates is not itself recorded as a member (only
//!   its leaves), which matches upstream for Go non-pointer structs (e.g.
//!   `spec`, `template`) but not for pointer ones (e.g. `rollingUpdate`).
//! * Maps emptied by pruning are dropped (Go's `omitempty` does the same for
//!   map fields upstream).
//! * The client-side → server-side apply migration of `lastappliedmanager.go`
//!   / `lastappliedupdater.go` (conflicts forgiven against
//!   `kubectl.kubernetes.io/last-applied-configuration`, that annotation
//!   kept in sync on apply) is not done.
//! * List-map items lacking a key field use upstream's only default that
//!   matters for built-in kinds, `protocol: TCP`.
//! * The typed conversion of a configuration (upstream: 500 `failed to
//!   create typed patch object`) checks the shapes of lists and maps and the
//!   items of associative lists; scalar types (`expected string, got …`),
//!   atomic lists and undeclared fields of custom resources are left to
//!   validation, which answers 422 where upstream answers that 500.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::error::{PatchError, StatusCause};
use super::fieldpath::{Set, field_pe, index_pe, key_pe, path_string, value_pe};
use super::schema::{Shape, TypeRef};

/// Options of a server-side apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// `?fieldManager=`; required for apply (the caller answers 422 when it is
    /// missing, as upstream `ValidatePatchOptions` does).
    pub manager: &'a str,
    /// `?force=true`: take ownership of conflicting fields.
    pub force: bool,
    /// Current time, RFC 3339 in UTC with seconds (`2026-11-23T15:04:05Z`).
    pub now: &'a str,
    /// API version served by the endpoint, e.g. `apps/v1`.
    pub api_version: &'a str,
    /// Kind served by the endpoint, e.g. `StatefulSet`.
    pub kind: &'a str,
    /// Subresource (`status`, `scale`) or empty for the main resource.
    pub subresource: &'a str,
    /// Type of the object (see [`TypeRef::for_object`]).
    pub schema: TypeRef<'a>,
    /// Top-level fields the endpoint resets and does not track, e.g.
    /// `["status"]` for the main resource, `["spec"]` for `/status`
    /// (upstream `GetResetFields`).
    pub reset_fields: &'a [&'a str],
}

/// Options of an update (POST, PUT, non-apply PATCH).
#[derive(Debug, Clone, Copy)]
pub struct UpdateOptions<'a> {
    /// `?fieldManager=`, or [`manager_from_user_agent`] when absent.
    pub manager: &'a str,
    /// Current time, RFC 3339 in UTC with seconds.
    pub now: &'a str,
    /// API version served by the endpoint.
    pub api_version: &'a str,
    /// Subresource or empty.
    pub subresource: &'a str,
    /// Type of the object.
    pub schema: TypeRef<'a>,
    /// Top-level fields the endpoint resets (see [`ApplyOptions::reset_fields`]).
    pub reset_fields: &'a [&'a str],
}

/// Upstream `prefixFromUserAgent`: the user agent up to the first `/`,
/// without unprintable characters, at most 128 bytes. Used as the field
/// manager of updates that name none (`kubectl/v1.32.0 (linux/amd64) …` →
/// `kubectl`).
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars() {
        if c.is_control() {
            continue;
        }
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

/// Decodes an `application/apply-patch+yaml` body (YAML or JSON) into an
/// object; anything else is 400 `error decoding YAML: …` as upstream.
///
/// JSON is a subset of YAML and what programmatic clients (client-go,
/// kube-rs) send, so the body is parsed with `serde_json` first, several
/// times cheaper than the YAML parser for the same result; only a body that
/// is not JSON goes to `serde_yaml_ng`, whose error an invalid body gets, as
/// before.
pub fn decode_apply_body(body: &[u8]) -> Result<Value, PatchError> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => serde_yaml_ng::from_slice(body)
            .map_err(|e| PatchError::BadRequest(format!("error decoding YAML: {e}")))?,
    };
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Map::new())),
        other => Err(PatchError::BadRequest(format!(
            "error decoding YAML: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            kind_name(&other)
        ))),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        _ => "value",
    }
}

/// One `managedFields` entry, decoded.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    apply: bool,
    api_version: String,
    subresource: String,
    time: Option<String>,
    set: Set,
}

impl Entry {
    fn same_identity(
        &self,
        manager: &str,
        apply: bool,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        // Appliers are identified without their API version (upstream `BuildManagerIdentifier`).
        self.manager == manager
            && self.apply == apply
            && self.subresource == subresource
            && (apply || self.api_version == api_version)
    }

    /// Upstream `printManager`.
    fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if !self.apply {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert(
            "operation".into(),
            json!(if self.apply { "Apply" } else { "Update" }),
        );
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata").and_then(|m| m.get("managedFields"))
}

/// Decodes `metadata.managedFields`; entries with the same identity are merged.
fn decode_managed(list: Option<&Value>) -> Result<Vec<Entry>, String> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = list else {
        return Err("managedFields is not a list".into());
    };
    let mut out: Vec<Entry> = Vec::new();
    for item in items {
        let s = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let operation = s("operation");
        let apply = match operation.as_str() {
            "Apply" => true,
            "Update" => false,
            other => return Err(format!("unknown managedFields operation {other:?}")),
        };
        match item.get("fieldsType").and_then(Value::as_str) {
            Some("FieldsV1") => {}
            other => return Err(format!("unsupported fieldsType {other:?}")),
        }
        let set = Set::from_fields_v1(item.get("fieldsV1").unwrap_or(&Value::Object(Map::new())))?;
        let entry = Entry {
            manager: s("manager"),
            apply,
            api_version: s("apiVersion"),
            subresource: s("subresource"),
            time: item.get("time").and_then(Value::as_str).map(str::to_owned),
            set,
        };
        match out.iter_mut().find(|e| {
            e.same_identity(
                &entry.manager,
                apply,
                &entry.api_version,
                &entry.subresource,
            )
        }) {
            Some(e) => e.set.union_with(&entry.set),
            None => out.push(entry),
        }
    }
    Ok(out)
}

/// Encodes entries in upstream order (`sortEncodedManagedFields`): Apply
/// before Update, then by time, manager, API version, subresource.
fn encode_managed(mut entries: Vec<Entry>) -> Value {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            !a.apply,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                !b.apply,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(entries.iter().map(Entry::to_json).collect())
}

fn set_managed_fields(obj: &mut Value, entries: Vec<Entry>) {
    let encoded = encode_managed(entries);
    let Value::Object(root) = obj else { return };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        if encoded.as_array().is_some_and(Vec::is_empty) {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), encoded);
        }
    }
}

/// Paths never tracked (upstream `stripmeta.go`).
fn strip_set() -> Set {
    let mut s = Set::default();
    for p in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        let path: Vec<String> = p.iter().map(|f| field_pe(f)).collect();
        s.insert(&path);
    }
    s
}

/// Removes every path at or below the reset fields from `set`.
fn without_ignored(set: &Set, reset_fields: &[&str]) -> Set {
    let mut out = set.difference(&strip_set());
    for f in reset_fields {
        out.children.remove(&field_pe(f));
    }
    out
}

/// Whether a map entry is excluded from comparisons and merges.
fn ignored(path: &[String], key: &str, reset_fields: &[&str]) -> bool {
    match path.len() {
        0 => reset_fields.contains(&key),
        1 => path[0] == "f:metadata" && key == "managedFields",
        _ => false,
    }
}

/// The path element of list item `i` (`i:<i>` when it has none: an item of
/// an associative list that [`item_key_error`] rejects).
///
/// An item of a keyed list is named by the key fields it has (structured-merge-diff
/// v6.3.0, vendored by Kubernetes 1.35, `keyedAssociativeListItemToPathElement`:
/// "optional map keys"); a missing key field takes its schema default, and
/// the only defaulted key among built-in kinds is `protocol`.
fn item_pe(item: &Value, i: usize, keys: &[&str]) -> String {
    if keys.is_empty() {
        return value_pe(item);
    }
    let Value::Object(m) = item else {
        return index_pe(i);
    };
    let mut present: Map<String, Value> = Map::new();
    let mut names: Vec<&str> = Vec::new();
    for k in keys {
        match m.get(*k) {
            Some(v) => present.insert((*k).to_owned(), v.clone()),
            None if *k == "protocol" => present.insert((*k).to_owned(), json!("TCP")),
            None => continue,
        };
        names.push(k);
    }
    if names.is_empty() {
        return index_pe(i);
    }
    key_pe(&Value::Object(present), &names).unwrap_or_else(|| index_pe(i))
}

/// Why an item of an associative list cannot be converted to a typed value,
/// as structured-merge-diff v6.3.0 words it (`typed/helpers.go`:
/// `keyedAssociativeListItemToPathElement`, `setItemToPathElement`).
fn item_key_error(item: &Value, keys: &[&str]) -> Option<String> {
    if keys.is_empty() {
        return match item {
            Value::Object(_) => {
                Some("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => {
                Some("not supported: associative list with lists as elements".into())
            }
            Value::Null => {
                Some("associative list without keys has an element that's an explicit null".into())
            }
            _ => None,
        };
    }
    match item {
        Value::Null => Some("associative list with keys may not have a null element".into()),
        Value::Object(m) => {
            let any_key = keys.iter().any(|k| m.contains_key(*k) || *k == "protocol");
            (!any_key).then(|| {
                let quoted: Vec<String> = keys.iter().map(|k| crate::schema::go_quote(k)).collect();
                format!(
                    "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                    quoted.join(" ")
                )
            })
        }
        _ => Some("associative list with keys may not have non-map elements".into()),
    }
}

/// Go's `%#v` of a decoded JSON value (numbers are `float64`).
fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or_default()),
        Value::String(s) => crate::schema::go_quote(s),
        Value::Array(a) => format!(
            "[]interface {{}}{{{}}}",
            a.iter().map(go_sharp_v).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", crate::schema::go_quote(k), go_sharp_v(&m[*k])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", parts.join(", "))
        }
    }
}

/// Go's `%T` of a decoded JSON value.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// A scalar type of structured-merge-diff's schema.
#[derive(Clone, Copy)]
enum Scalar {
    String,
    Numeric,
    Boolean,
    Untyped,
}

/// structured-merge-diff's `validateScalar` (`typed/validate.go`) of `v`
/// at `path`.
fn scalar_error(path: &str, v: &Value, want: Scalar) -> Option<String> {
    let msg = match (want, v) {
        (_, Value::Null)
        | (Scalar::String, Value::String(_))
        | (Scalar::Numeric, Value::Number(_))
        | (Scalar::Boolean, Value::Bool(_))
        | (Scalar::Untyped, Value::String(_) | Value::Number(_) | Value::Bool(_)) => return None,
        (Scalar::String, _) => format!(
            "expected string, got &value.valueUnstructured{{Value:{}}}",
            go_sharp_v(v)
        ),
        (Scalar::Numeric, _) => format!("expected numeric (int or float), got {}", go_type(v)),
        (Scalar::Boolean, _) => format!("expected boolean, got &{{{}}}", go_v(v)),
        (Scalar::Untyped, _) => format!("expected any scalar, got &{{{}}}", go_v(v)),
    };
    Some(format!("{path}: {msg}"))
}

/// The scalar checks of structured-merge-diff's typed conversion for
/// `metadata` (the `ObjectMeta` and `OwnerReference` schemas of the
/// Kubernetes 1.35 OpenAPI: strings, `generation` and
/// `deletionGracePeriodSeconds` numeric, timestamps untyped, `controller`
/// and `blockOwnerDeletion` boolean). Lists whose items [`to_set`] rejected
/// are skipped, as upstream bails out of them.
fn metadata_scalar_errors(config: &Value, errs: &mut Vec<String>) {
    let Some(meta) = config.get("metadata").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in meta {
        let path = format!(".metadata.{k}");
        let want = match k.as_str() {
            "name" | "generateName" | "namespace" | "selfLink" | "uid" | "resourceVersion" => {
                Scalar::String
            }
            "generation" | "deletionGracePeriodSeconds" => Scalar::Numeric,
            "creationTimestamp" | "deletionTimestamp" => Scalar::Untyped,
            "labels" | "annotations" => {
                for (key, value) in v.as_object().into_iter().flatten() {
                    errs.extend(scalar_error(
                        &format!("{path}.{key}"),
                        value,
                        Scalar::String,
                    ));
                }
                continue;
            }
            "finalizers" | "ownerReferences" => {
                let keys: &[&str] = if k == "finalizers" { &[] } else { &["uid"] };
                let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
                if items.iter().any(|i| item_key_error(i, keys).is_some()) {
                    continue;
                }
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}{}", path_string(&[item_pe(item, i, keys)]));
                    if keys.is_empty() {
                        errs.extend(scalar_error(&item_path, item, Scalar::String));
                        continue;
                    }
                    for (f, fv) in item.as_object().into_iter().flatten() {
                        let want = match f.as_str() {
                            "apiVersion" | "kind" | "name" | "uid" => Scalar::String,
                            "controller" | "blockOwnerDeletion" => Scalar::Boolean,
                            _ => continue,
                        };
                        errs.extend(scalar_error(&format!("{item_path}.{f}"), fv, want));
                    }
                }
                continue;
            }
            _ => continue,
        };
        errs.extend(scalar_error(&path, v, want));
    }
}

/// Go's `%v` of a decoded JSON value (as `fmt` prints the `interface{}`
/// structured-merge-diff wraps: numbers are `float64`, since the apply body
/// is decoded by `sigs.k8s.io/yaml`; map keys sorted).
fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or_default()),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_v).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_v(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%v` of a `float64`: `strconv`'s `'g'` with the shortest digits,
/// which switches to `d.ddde±XX` for a decimal exponent below -4 or of 6 and
/// more (`2.147483648e+09`).
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits and decimal exponent.
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if neg { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let nd = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if exp < 0 {
        let zeros = "0".repeat(usize::try_from(-exp - 1).unwrap_or(0));
        format!("{sign}0.{zeros}{digits}")
    } else if exp + 1 >= nd {
        let zeros = "0".repeat(usize::try_from(exp + 1 - nd).unwrap_or(0));
        format!("{sign}{digits}{zeros}")
    } else {
        let (int, frac) = digits.split_at(usize::try_from(exp + 1).unwrap_or(0));
        format!("{sign}{int}.{frac}")
    }
}

/// The fields set by an applied configuration (upstream `ToFieldSet`),
/// collecting the errors structured-merge-diff's typed conversion of the
/// configuration reports (`typed/validate.go`): a list or map given a value
/// of another shape, and associative-list items without a usable key
/// (after which the rest of that list is skipped, as upstream). Scalar types
/// and undeclared fields are not checked here (see the module docs).
fn to_set(
    path: &mut Vec<String>,
    v: &Value,
    ty: TypeRef<'_>,
    set: &mut Set,
    errs: &mut Vec<String>,
) {
    match ty.shape(v) {
        Shape::Leaf => set.insert(path),
        Shape::Map => {
            let Value::Object(m) = v else {
                if !v.is_null() {
                    errs.push(format!(
                        "{}: expected map, got &{{{}}}",
                        path_string(path),
                        go_v(v)
                    ));
                }
                set.insert(path);
                return;
            };
            for (k, cv) in m {
                path.push(field_pe(k));
                to_set(path, cv, ty.field(k), set, errs);
                let empty_map = cv.as_object().is_some_and(Map::is_empty);
                if cv.is_null() || empty_map || !ty.is_declared(k) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Shape::List => {
            let Value::Array(items) = v else {
                if !v.is_null() {
                    errs.push(format!(
                        "{}: expected list, got &{{{}}}",
                        path_string(path),
                        go_v(v)
                    ));
                }
                set.insert(path);
                return;
            };
            let keys = ty.list_keys().unwrap_or_default();
            let mut seen: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if let Some(e) = item_key_error(item, &keys) {
                    errs.push(format!("{}: element {i}: {e}", path_string(path)));
                    return;
                }
                let pe = item_pe(item, i, &keys);
                if seen.contains(&pe) {
                    let mut p = path.clone();
                    p.push(pe.clone());
                    errs.push(format!(
                        "{}: duplicate entries for key {}",
                        path_string(path),
                        path_string(&p[p.len() - 1..])
                    ));
                }
                path.push(pe.clone());
                to_set(path, item, ty.elem(), set, errs);
                set.insert(path);
                path.pop();
                seen.push(pe);
            }
        }
    }
}

/// Added / modified / removed paths between two objects (upstream `Compare`).
#[derive(Debug, Default)]
struct Comparison {
    added: Set,
    modified: Set,
    removed: Set,
}

fn compare(
    path: &mut Vec<String>,
    l: Option<&Value>,
    r: Option<&Value>,
    ty: TypeRef<'_>,
    cmp: &mut Comparison,
    reset: &[&str],
) {
    let shape_l = l.map(|v| ty.shape(v));
    let shape_r = r.map(|v| ty.shape(v));
    let shape = match (shape_l, shape_r) {
        (Some(a), Some(b)) if a != b => Shape::Leaf,
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => return,
    };
    let empty = |v: Option<&Value>| match v {
        None => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    let leaf = shape == Shape::Leaf || (empty(l) && empty(r));
    if leaf {
        match (l, r) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            (Some(a), Some(b)) if a != b => cmp.modified.insert(path),
            _ => {}
        }
        return;
    }
    match shape {
        Shape::Map => {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            let mut keys: Vec<&String> = lm.map(|m| m.keys().collect()).unwrap_or_default();
            if let Some(rm) = rm {
                keys.extend(
                    rm.keys()
                        .filter(|k| lm.is_none_or(|lm| !lm.contains_key(*k))),
                );
            }
            for k in keys {
                if ignored(path, k, reset) {
                    continue;
                }
                path.push(field_pe(k));
                compare(
                    path,
                    lm.and_then(|m| m.get(k)),
                    rm.and_then(|m| m.get(k)),
                    ty.field(k),
                    cmp,
                    reset,
                );
                path.pop();
            }
        }
        Shape::List => {
            let keys = ty.list_keys().unwrap_or_default();
            let li = index_items(l, &keys);
            let ri = index_items(r, &keys);
            let lmap: HashMap<&str, &Value> = li.iter().map(|(p, v)| (p.as_str(), *v)).collect();
            let rmap: HashMap<&str, &Value> = ri.iter().map(|(p, v)| (p.as_str(), *v)).collect();
            let mut order: Vec<&str> = li.iter().map(|(p, _)| p.as_str()).collect();
            order.extend(
                ri.iter()
                    .map(|(p, _)| p.as_str())
                    .filter(|p| !lmap.contains_key(p)),
            );
            order.dedup();
            for pe in order {
                path.push(pe.to_owned());
                compare(
                    path,
                    lmap.get(pe).copied(),
                    rmap.get(pe).copied(),
                    ty.elem(),
                    cmp,
                    reset,
                );
                path.pop();
            }
        }
        Shape::Leaf => {}
    }
    // A struct of a built-in type is only tracked through its fields (Go
    // non-pointer structs always exist upstream); maps and items themselves too.
    let is_struct = shape == Shape::Map && !path.is_empty() && ty.is_struct();
    if !is_struct {
        match (l, r) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            _ => {}
        }
    }
}

fn index_items<'v>(v: Option<&'v Value>, keys: &[&str]) -> Vec<(String, &'v Value)> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, it)| (item_pe(it, i, keys), it))
                .collect()
        })
        .unwrap_or_default()
}

/// Merges the applied configuration `r` into `l` (upstream `Merge`).
fn merge(
    l: Option<Value>,
    r: &Value,
    ty: TypeRef<'_>,
    path: &mut Vec<String>,
    reset: &[&str],
) -> Value {
    let shape = ty.shape(r);
    let l = match l {
        Some(l) if ty.shape(&l) == shape => Some(l),
        _ => None,
    };
    match (shape, l, r) {
        (Shape::Map, l, Value::Object(rm)) => {
            let mut out = match l {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            for (k, rv) in rm {
                if ignored(path, k, reset) {
                    continue;
                }
                if rv.is_null() {
                    out.remove(k);
                    continue;
                }
                path.push(field_pe(k));
                let lv = out.remove(k);
                let merged = merge(lv, rv, ty.field(k), path, reset);
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Shape::List, Some(Value::Array(la)), Value::Array(ra)) if !ra.is_empty() => {
            let keys = ty.list_keys().unwrap_or_default();
            let elem = ty.elem();
            let rpes: Vec<String> = ra
                .iter()
                .enumerate()
                .map(|(i, it)| item_pe(it, i, &keys))
                .collect();
            let rindex: HashMap<&str, usize> = rpes
                .iter()
                .enumerate()
                .map(|(i, p)| (p.as_str(), i))
                .collect();
            let lpes: Vec<String> = la
                .iter()
                .enumerate()
                .map(|(i, it)| item_pe(it, i, &keys))
                .collect();
            let in_l: std::collections::HashSet<&str> = lpes.iter().map(String::as_str).collect();
            let mut emitted = vec![false; ra.len()];
            let mut next_r = 0;
            let mut out = Vec::with_capacity(la.len().max(ra.len()));
            for (litem, lpe) in la.into_iter().zip(lpes.iter()) {
                match rindex.get(lpe.as_str()) {
                    None => out.push(litem),
                    Some(&ri) => {
                        for j in next_r..ri {
                            if !emitted[j] && !in_l.contains(rpes[j].as_str()) {
                                path.push(rpes[j].clone());
                                out.push(merge(None, &ra[j], elem, path, reset));
                                path.pop();
                                emitted[j] = true;
                            }
                        }
                        next_r = next_r.max(ri + 1);
                        if !emitted[ri] {
                            path.push(lpe.clone());
                            out.push(merge(Some(litem), &ra[ri], elem, path, reset));
                            path.pop();
                            emitted[ri] = true;
                        }
                    }
                }
            }
            for j in 0..ra.len() {
                if !emitted[j] {
                    path.push(rpes[j].clone());
                    out.push(merge(None, &ra[j], elem, path, reset));
                    path.pop();
                }
            }
            Value::Array(out)
        }
        (_, _, r) => strip_nulls(r, ty),
    }
}

/// The applied value for a place the live object does not have: nulls in
/// granular maps mean "absent".
fn strip_nulls(r: &Value, ty: TypeRef<'_>) -> Value {
    match (ty.shape(r), r) {
        (Shape::Map, Value::Object(m)) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v, ty.field(k))))
                .collect(),
        ),
        (Shape::List, Value::Array(a)) => {
            Value::Array(a.iter().map(|v| strip_nulls(v, ty.elem())).collect())
        }
        _ => r.clone(),
    }
}

/// Removes from `v` the members of `remove` that nobody in `keep` owns
/// (upstream `prune` + `addBackOwnedItems` + `addBackDanglingItems`).
fn prune(v: &mut Value, remove: &Set, keep: Option<&Set>, ty: TypeRef<'_>, protected: &[&str]) {
    match v {
        Value::Object(m) => {
            for (pe, rnode) in &remove.children {
                let Some(k) = pe.strip_prefix("f:") else {
                    continue;
                };
                if protected.contains(&k) {
                    continue;
                }
                let knode = keep.and_then(|s| s.children.get(pe));
                let kept = knode.is_some_and(|s| !s.is_empty());
                if rnode.member && !kept {
                    m.remove(k);
                    continue;
                }
                if let Some(child) = m.get_mut(k) {
                    let was_empty = is_empty_container(child);
                    prune(child, rnode, knode, ty.field(k), &[]);
                    if !was_empty && is_empty_container(child) && !kept {
                        m.remove(k);
                    }
                }
            }
        }
        Value::Array(items) => {
            let keys = ty.list_keys().unwrap_or_default();
            let pes: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, it)| item_pe(it, i, &keys))
                .collect();
            let mut drop = vec![false; items.len()];
            for (i, pe) in pes.iter().enumerate() {
                let Some(rnode) = remove.children.get(pe) else {
                    continue;
                };
                let knode = keep.and_then(|s| s.children.get(pe));
                let kept = knode.is_some_and(|s| !s.is_empty());
                if rnode.member && !kept {
                    drop[i] = true;
                } else {
                    prune(&mut items[i], rnode, knode, ty.elem(), &keys);
                }
            }
            let mut i = 0;
            items.retain(|_| {
                let keep_it = !drop[i];
                i += 1;
                keep_it
            });
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn gvk_string(api_version: &str, kind: &str) -> String {
    if api_version.contains('/') {
        format!("{api_version}, Kind={kind}")
    } else {
        format!("/{api_version}, Kind={kind}")
    }
}

/// The message of upstream's failed typed conversion of an apply
/// configuration (`structuredmerge.go`: `failed to create typed patch object
/// (<namespace>/<name>; <gvk>): <errors>`, naming the configuration's own
/// `metadata.namespace` and `metadata.name`; one error as
/// `<path>: <message>`, several as structured-merge-diff's `errors:` list).
/// Upstream returns it as a plain error, which the API server answers with
/// 500 (`responsewriters.ErrorToAPIStatus`; kubernetes/kubernetes#139253).
pub(crate) fn typed_patch_message(config: &Value, gvk: &str, errs: &[String]) -> String {
    let meta_str = |k: &str| {
        config
            .get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let body = if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("errors:\n  {}", errs.join("\n  "))
    };
    format!(
        "failed to create typed patch object ({}/{}; {gvk}): {body}",
        meta_str("namespace"),
        meta_str("name")
    )
}

fn conflict_error(conflicts: &[(String, Vec<String>)]) -> PatchError {
    let causes: Vec<StatusCause> = conflicts
        .iter()
        .map(|(m, p)| StatusCause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {m}"),
            field: path_string(p),
        })
        .collect();
    let message = if let [(m, p)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {m}: {}",
            path_string(p)
        )
    } else {
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for (_, p) in conflicts.iter().filter(|(cm, _)| cm == m) {
                lines.push(format!("- {}", path_string(p)));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    PatchError::ApplyConflict { message, causes }
}

/// Server-side apply of `config` (decoded with [`decode_apply_body`]) to
/// `live` (`None` creates the object). Returns the object to store, with
/// `metadata.managedFields` updated; system metadata (uid, resourceVersion,
/// …) of the live object is kept, and the caller does its usual create /
/// update processing on the result.
///
/// Errors: 400 when the configuration's `apiVersion`/`kind` differ from the
/// endpoint's or it carries `metadata.managedFields`; 500 when its typed
/// conversion fails (see [`typed_patch_message`]: a list or map given
/// another shape, an associative-list item that is null, not an object, has
/// none of the key fields, or repeats a key); 409 for conflicts with other
/// managers unless `force`.
pub fn apply(
    live: Option<&Value>,
    config: Value,
    opts: &ApplyOptions<'_>,
) -> Result<Value, PatchError> {
    let cfg_av = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let cfg_kind = config
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if cfg_av != opts.api_version || cfg_kind != opts.kind {
        return Err(PatchError::BadRequest(format!(
            "invalid object type: {}",
            gvk_string(cfg_av, cfg_kind)
        )));
    }
    if managed_fields_of(&config).is_some_and(|m| !m.is_null()) {
        return Err(PatchError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let mut new_set = Set::default();
    let mut errs = Vec::new();
    to_set(
        &mut Vec::new(),
        &config,
        opts.schema,
        &mut new_set,
        &mut errs,
    );
    metadata_scalar_errors(&config, &mut errs);
    errs.sort();
    if !errs.is_empty() {
        return Err(PatchError::Internal(typed_patch_message(
            &config,
            &gvk_string(opts.api_version, opts.kind),
            &errs,
        )));
    }
    let new_set = without_ignored(&new_set, opts.reset_fields);

    let mut entries = live
        .map(|l| decode_managed(managed_fields_of(l)).unwrap_or_default())
        .unwrap_or_default();
    let mut base = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(Value::Object(meta)) = base.get_mut("metadata") {
        meta.remove("managedFields");
    }
    if entries.is_empty() && live.is_some() {
        // Upstream `skipNonAppliedManager.Apply`: the fields of an object
        // nobody manages yet belong to `before-first-apply`.
        record_update(
            &mut entries,
            &Value::Object(Map::new()),
            &base,
            &UpdateOptions {
                manager: BEFORE_FIRST_APPLY,
                now: opts.now,
                api_version: opts.api_version,
                subresource: opts.subresource,
                schema: opts.schema,
                reset_fields: opts.reset_fields,
            },
        );
    }
    let mut merged = merge(
        Some(base),
        &config,
        opts.schema,
        &mut Vec::new(),
        opts.reset_fields,
    );

    let idx = entries
        .iter()
        .position(|e| e.same_identity(opts.manager, true, opts.api_version, opts.subresource));
    let last = idx
        .map(|i| std::mem::take(&mut entries[i].set))
        .unwrap_or_default();
    let idx = match idx {
        Some(i) => {
            entries[i].set = new_set.clone();
            entries[i].api_version = opts.api_version.to_owned();
            i
        }
        None => {
            entries.push(Entry {
                manager: opts.manager.to_owned(),
                apply: true,
                api_version: opts.api_version.to_owned(),
                subresource: opts.subresource.to_owned(),
                time: None,
                set: new_set.clone(),
            });
            entries.len() - 1
        }
    };
    if !last.is_empty() {
        let mut keep = Set::default();
        for e in &entries {
            keep.union_with(&e.set);
        }
        let remove = last.difference(&keep);
        if !remove.is_empty() {
            prune(&mut merged, &remove, Some(&keep), opts.schema, &[]);
        }
    }

    let empty = Value::Object(Map::new());
    let mut cmp = Comparison::default();
    compare(
        &mut Vec::new(),
        Some(live.unwrap_or(&empty)),
        Some(&merged),
        opts.schema,
        &mut cmp,
        opts.reset_fields,
    );
    let mut changed = cmp.added;
    changed.union_with(&cmp.modified);
    let mut conflicts: Vec<(String, Vec<String>)> = Vec::new();
    let mut taken: Vec<(usize, Set)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if i == idx {
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            for p in c.paths() {
                conflicts.push((e.display(), p));
            }
            taken.push((i, c));
        }
    }
    if !conflicts.is_empty() && !opts.force {
        conflicts.sort();
        return Err(conflict_error(&conflicts));
    }
    for (i, c) in taken {
        entries[i].set = entries[i].set.difference(&c);
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if i != idx {
            e.set = e.set.difference(&cmp.removed);
        }
    }
    let object_changed = live.is_none_or(|l| !same_ignoring_managed(l, &merged));
    if object_changed || last != new_set || entries[idx].time.is_none() {
        entries[idx].time = Some(opts.now.to_owned());
    }
    set_managed_fields(&mut merged, entries);
    Ok(merged)
}

fn same_ignoring_managed(live: &Value, new: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (live, new) else {
        return live == new;
    };
    if a.len() != b.len() {
        return false;
    }
    a.iter().all(|(k, av)| {
        let Some(bv) = b.get(k) else { return false };
        if k != "metadata" {
            return av == bv;
        }
        let (Value::Object(am), Value::Object(bm)) = (av, bv) else {
            return av == bv;
        };
        let filtered =
            |m: &Map<String, Value>| m.iter().filter(|(k, _)| *k != "managedFields").count();
        filtered(am) == filtered(bm)
            && am
                .iter()
                .filter(|(k, _)| *k != "managedFields")
                .all(|(k, v)| bm.get(k) == Some(v))
    })
}

/// Upstream `Updater.Update` + `managedFieldsUpdater.Update`: `opts.manager`
/// takes every field changed from `old` to `new`, other managers lose them,
/// removed fields are dropped from everyone.
fn record_update(entries: &mut Vec<Entry>, old: &Value, new: &Value, opts: &UpdateOptions<'_>) {
    let mut cmp = Comparison::default();
    compare(
        &mut Vec::new(),
        Some(old),
        Some(new),
        opts.schema,
        &mut cmp,
        opts.reset_fields,
    );
    let mut changed = cmp.added;
    changed.union_with(&cmp.modified);
    let changed = without_ignored(&changed, opts.reset_fields);
    for e in entries.iter_mut() {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    let mine = entries
        .iter()
        .position(|e| e.same_identity(opts.manager, false, opts.api_version, opts.subresource));
    if !changed.is_empty() {
        let i = match mine {
            Some(i) => i,
            None => {
                entries.push(Entry {
                    manager: if opts.manager.is_empty() {
                        "unknown".into()
                    } else {
                        opts.manager.to_owned()
                    },
                    apply: false,
                    api_version: opts.api_version.to_owned(),
                    subresource: opts.subresource.to_owned(),
                    time: None,
                    set: Set::default(),
                });
                entries.len() - 1
            }
        };
        entries[i].set.union_with(&changed);
        entries[i].time = Some(opts.now.to_owned());
    }
}

/// Most update managers kept before the oldest are merged (upstream
/// `DefaultMaxUpdateManagers`).
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Upstream `capmanagers.go`: merges the oldest update managers into an
/// `ancient-changes` entry (one per API version) until at most
/// [`MAX_UPDATE_MANAGERS`] remain.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<usize> = (0..entries.len()).filter(|&i| !entries[i].apply).collect();
    let mut length = updaters.len();
    if length <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|&a, &b| {
        (
            &entries[a].time,
            &entries[a].manager,
            &entries[a].subresource,
        )
            .cmp(&(
                &entries[b].time,
                &entries[b].manager,
                &entries[b].subresource,
            ))
    });
    let mut first_by_version: HashMap<String, usize> = HashMap::new();
    let mut merged_away = vec![false; entries.len()];
    for i in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        let Some(&first) = first_by_version.get(&version) else {
            first_by_version.insert(version, i);
            continue;
        };
        let bucket = match entries.iter().position(|e| {
            !e.apply
                && e.manager == ANCIENT_CHANGES
                && e.subresource.is_empty()
                && e.api_version == version
        }) {
            Some(b) => b,
            None => {
                entries[first].manager = ANCIENT_CHANGES.to_owned();
                entries[first].subresource = String::new();
                first
            }
        };
        if bucket == i {
            continue;
        }
        let set = std::mem::take(&mut entries[i].set);
        entries[bucket].set.union_with(&set);
        entries[bucket].time = entries[i].time.clone();
        merged_away[i] = true;
        length -= 1;
    }
    let mut idx = 0;
    entries.retain(|_| {
        let keep = !merged_away[idx];
        idx += 1;
        keep
    });
}

/// Records an update (POST when `live` is `None`, PUT, or a non-apply PATCH)
/// by `opts.manager` in `new`'s `metadata.managedFields`.
///
/// As upstream `FieldManager.Update`: managed fields sent in `new` are used
/// when they decode and are not empty (clients may edit them; `[{}]` clears
/// them), else the live object's are kept; subresource updates always keep
/// the live ones. Never fails: undecodable managed fields are reset.
pub fn update_managed_fields(live: Option<&Value>, new: &mut Value, opts: &UpdateOptions<'_>) {
    let from_live = || {
        live.map(|l| decode_managed(managed_fields_of(l)).unwrap_or_default())
            .unwrap_or_default()
    };
    let sent = managed_fields_of(new);
    let clear = sent
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty));
    let mut entries = if clear {
        Vec::new()
    } else if !opts.subresource.is_empty() {
        from_live()
    } else {
        match decode_managed(sent) {
            Ok(e) if !e.is_empty() => e,
            _ => from_live(),
        }
    };
    if let Some(Value::Object(meta)) = new.get_mut("metadata") {
        meta.remove("managedFields");
    }
    // Upstream `skipNonAppliedManager`: an existing object nobody manages
    // yet stays unmanaged through updates.
    let existing = live.is_some_and(|l| {
        l.get("metadata")
            .and_then(|m| m.get("uid"))
            .is_some_and(|u| u.as_str().is_some_and(|u| !u.is_empty()))
    });
    if entries.is_empty() && existing {
        return;
    }
    let empty = Value::Object(Map::new());
    record_update(&mut entries, live.unwrap_or(&empty), new, opts);
    entries.retain(|e| !e.set.is_empty());
    cap_update_managers(&mut entries);
    set_managed_fields(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: &str = "2026-11-23T15:00:00Z";
    const T1: &str = "2026-11-23T15:01:00Z";

    fn sts_opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
        ApplyOptions {
            manager,
            force,
            now,
            api_version: "apps/v1",
            kind: "StatefulSet",
            subresource: "",
            schema: TypeRef::builtin("apps/v1", "StatefulSet").expect("built in"),
            reset_fields: &["status"],
        }
    }

    fn sts(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]}}}})
    }

    fn entry<'v>(obj: &'v Value, manager: &str) -> &'v Value {
        obj["metadata"]["managedFields"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["manager"] == manager))
            .unwrap_or_else(|| panic!("no managedFields entry for {manager} in {obj}"))
    }

    #[test]
    fn apply_creates_the_object_and_records_an_apply_entry_in_fields_v1() {
        let out = apply(None, sts(3, "nginx:1"), &sts_opts("kubectl", false, T0)).expect("created");
        assert_eq!(out["spec"]["replicas"], 3);
        let e = entry(&out, "kubectl");
        assert_eq!(e["operation"], "Apply");
        assert_eq!(e["apiVersion"], "apps/v1");
        assert_eq!(e["time"], T0);
        assert_eq!(e["fieldsType"], "FieldsV1");
        let f = &e["fieldsV1"];
        assert_eq!(f["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert!(
            f["f:metadata"].get("f:name").is_none(),
            "name is stripped like upstream stripmeta"
        );
        assert_eq!(f["f:spec"]["f:replicas"], json!({}));
        assert_eq!(
            f["f:spec"]["f:selector"],
            json!({}),
            "LabelSelector is atomic"
        );
        let c = &f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:image"], json!({}));
        assert_eq!(
            c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["f:containerPort"],
            json!({})
        );
    }

    #[test]
    fn conflicting_apply_names_the_other_manager_and_field_like_upstream() {
        let live =
            apply(None, sts(3, "nginx:1"), &sts_opts("kubectl", false, T0)).expect("created");
        let mut cfg = sts(5, "nginx:1");
        cfg["spec"]
            .as_object_mut()
            .expect("object")
            .remove("template");
        let e = apply(Some(&live), cfg.clone(), &sts_opts("hpa", false, T1)).expect_err("conflict");
        assert_eq!(e.code(), 409);
        assert_eq!(e.reason(), "Conflict");
        assert_eq!(
            e.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
        );
        let causes = e.causes();
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason, "FieldManagerConflict");
        assert_eq!(causes[0].message, "conflict with \"kubectl\"");
        assert_eq!(causes[0].field, ".spec.replicas");

        // force takes ownership.
        let out = apply(Some(&live), cfg, &sts_opts("hpa", true, T1)).expect("forced");
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(
            entry(&out, "hpa")["fieldsV1"]["f:spec"]["f:replicas"],
            json!({})
        );
        assert!(
            entry(&out, "kubectl")["fieldsV1"]["f:spec"]
                .get("f:replicas")
                .is_none()
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1",
            "other fields untouched"
        );
    }

    #[test]
    fn applying_the_same_value_as_another_manager_shares_ownership_without_conflict() {
        let live =
            apply(None, sts(3, "nginx:1"), &sts_opts("kubectl", false, T0)).expect("created");
        let cfg = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let out = apply(Some(&live), cfg, &sts_opts("other", false, T1)).expect("no conflict");
        assert_eq!(
            entry(&out, "other")["fieldsV1"]["f:spec"]["f:replicas"],
            json!({})
        );
        assert_eq!(
            entry(&out, "kubectl")["fieldsV1"]["f:spec"]["f:replicas"],
            json!({})
        );
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_someone_else_owns_them() {
        let mut cfg = sts(3, "nginx:1");
        cfg["metadata"]["labels"]["tier"] = json!("web");
        cfg["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("array")
            .push(json!({"name": "sidecar", "image": "busybox"}));
        let live = apply(None, cfg, &sts_opts("kubectl", false, T0)).expect("created");
        // Another manager takes over the tier label by an update.
        let mut updated = live.clone();
        updated["metadata"]["labels"]["tier"] = json!("frontend");
        update_managed_fields(
            Some(&live),
            &mut updated,
            &UpdateOptions {
                manager: "labeler",
                now: T1,
                api_version: "apps/v1",
                subresource: "",
                schema: TypeRef::builtin("apps/v1", "StatefulSet").expect("built in"),
                reset_fields: &["status"],
            },
        );
        // kubectl re-applies without the sidecar and without the tier label.
        let out = apply(
            Some(&updated),
            sts(3, "nginx:2"),
            &sts_opts("kubectl", false, T1),
        )
        .expect("applied");
        let containers = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("array");
        assert_eq!(containers.len(), 1, "sidecar pruned: {out}");
        assert_eq!(containers[0]["image"], "nginx:2");
        assert_eq!(
            out["metadata"]["labels"]["tier"], "frontend",
            "label owned by labeler survives"
        );
        assert_eq!(out["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn an_update_takes_ownership_of_changed_fields_from_the_applier() {
        let live =
            apply(None, sts(3, "nginx:1"), &sts_opts("kubectl", false, T0)).expect("created");
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(7);
        update_managed_fields(
            Some(&live),
            &mut new,
            &UpdateOptions {
                manager: "kube-controller-manager",
                now: T1,
                api_version: "apps/v1",
                subresource: "",
                schema: TypeRef::builtin("apps/v1", "StatefulSet").expect("built in"),
                reset_fields: &["status"],
            },
        );
        let e = entry(&new, "kube-controller-manager");
        assert_eq!(e["operation"], "Update");
        assert_eq!(e["time"], T1);
        assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        assert!(
            entry(&new, "kubectl")["fieldsV1"]["f:spec"]
                .get("f:replicas")
                .is_none()
        );
        // Entries are sorted Apply first.
        assert_eq!(new["metadata"]["managedFields"][0]["operation"], "Apply");
        // Re-applying replicas 3 now conflicts with the updater, shown with its API version.
        let e = apply(
            Some(&new),
            sts(3, "nginx:1"),
            &sts_opts("kubectl", false, T1),
        )
        .expect_err("conflict");
        assert_eq!(
            e.message(),
            "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" using apps/v1: .spec.replicas"
        );
    }

    #[test]
    fn create_by_update_records_leaves_and_maps_with_a_dot() {
        let mut new = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}});
        update_managed_fields(
            None,
            &mut new,
            &UpdateOptions {
                manager: "kubectl-create",
                now: T0,
                api_version: "v1",
                subresource: "",
                schema: TypeRef::builtin("v1", "ConfigMap").expect("built in"),
                reset_fields: &[],
            },
        );
        let e = entry(&new, "kubectl-create");
        assert_eq!(
            e["fieldsV1"],
            json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        );
    }

    #[test]
    fn multiple_conflicts_are_grouped_by_manager() {
        let live =
            apply(None, sts(3, "nginx:1"), &sts_opts("kubectl", false, T0)).expect("created");
        let e = apply(
            Some(&live),
            sts(4, "nginx:2"),
            &sts_opts("other", false, T1),
        )
        .expect_err("conflicts");
        assert_eq!(
            e.message(),
            "Apply failed with 2 conflicts: conflicts with \"kubectl\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"app\"].image"
        );
        assert_eq!(e.causes().len(), 2);
    }

    #[test]
    fn apply_rejects_wrong_kind_and_managed_fields_with_400() {
        let mut cfg = sts(1, "x");
        cfg["kind"] = json!("Deployment");
        let e = apply(None, cfg, &sts_opts("kubectl", false, T0)).expect_err("wrong kind");
        assert_eq!(e.code(), 400);
        assert_eq!(e.message(), "invalid object type: apps/v1, Kind=Deployment");
        let mut cfg = sts(1, "x");
        cfg["metadata"]["managedFields"] = json!([]);
        let e = apply(None, cfg, &sts_opts("kubectl", false, T0)).expect_err("managed fields");
        assert_eq!(e.message(), "metadata.managedFields must be nil");
    }

    #[test]
    fn duplicate_list_map_keys_in_the_configuration_are_rejected() {
        let mut cfg = sts(1, "x");
        cfg["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("array")
            .push(json!({"name": "app", "image": "y"}));
        let e = apply(None, cfg, &sts_opts("kubectl", false, T0)).expect_err("duplicate");
        assert_eq!(e.code(), 500);
        assert!(
            e.message()
                .contains("duplicate entries for key [name=\"app\"]"),
            "{}",
            e.message()
        );
    }

    /// The typed-conversion failure of a configuration whose
    /// `metadata.ownerReferences` (an associative list keyed by `uid`) is `refs`.
    fn owner_refs_error(refs: Value) -> Option<(u16, String)> {
        let mut cfg = sts(1, "x");
        cfg["metadata"]["ownerReferences"] = refs;
        apply(None, cfg, &sts_opts("kubectl", false, T0))
            .err()
            .map(|e| (e.code(), e.message()))
    }

    #[test]
    fn list_map_items_that_are_not_objects_fail_as_structured_merge_diff_words_it() {
        let prefix = "failed to create typed patch object (default/web; apps/v1, Kind=StatefulSet): .metadata.ownerReferences: ";
        for (refs, want) in [
            (
                json!([2_147_483_648_i64]),
                "element 0: associative list with keys may not have non-map elements",
            ),
            (
                json!(["x"]),
                "element 0: associative list with keys may not have non-map elements",
            ),
            (
                json!([[1]]),
                "element 0: associative list with keys may not have non-map elements",
            ),
            (
                json!([null]),
                "element 0: associative list with keys may not have a null element",
            ),
            (
                json!([{"uid": "a", "name": "a"}, {"name": "b"}, 7]),
                "element 1: associative list with keys has an element that omits all key fields [\"uid\"] (and doesn't have default values for any key fields)",
            ),
            (json!("x"), "expected list, got &{x}"),
            (
                json!(2_147_483_648_i64),
                "expected list, got &{2.147483648e+09}",
            ),
            (
                json!({"b": [1, 2.5], "a": true}),
                "expected list, got &{map[a:true b:[1 2.5]]}",
            ),
        ] {
            assert_eq!(
                owner_refs_error(refs.clone()),
                Some((500, format!("{prefix}{want}"))),
                "{refs}"
            );
        }
        // Only the first bad item of a list is reported; errors elsewhere are listed too.
        let mut cfg = sts(1, "x");
        cfg["metadata"]["ownerReferences"] = json!([1, null]);
        cfg["metadata"]["finalizers"] = json!([{"a": 1}]);
        let e = apply(None, cfg, &sts_opts("kubectl", false, T0)).expect_err("two errors");
        assert_eq!(
            e.message(),
            "failed to create typed patch object (default/web; apps/v1, Kind=StatefulSet): errors:\n  \
             .metadata.finalizers: element 0: associative list without keys has an element that's a map type\n  \
             .metadata.ownerReferences: element 0: associative list with keys may not have non-map elements"
        );
    }

    #[test]
    fn metadata_scalars_of_the_wrong_type_fail_as_structured_merge_diff_words_it() {
        let mut cfg = sts(1, "x");
        cfg["metadata"]["labels"] = json!({"app": 5, "tier": "db"});
        cfg["metadata"]["generation"] = json!("7");
        cfg["metadata"]["finalizers"] = json!(["a", 1.5]);
        cfg["metadata"]["ownerReferences"] = json!([{"uid": "u", "apiVersion": "v1", "kind": "K", "name": ["n"], "controller": "yes"}]);
        let e = apply(None, cfg, &sts_opts("kubectl", false, T0)).expect_err("four errors");
        assert_eq!(e.code(), 500);
        assert_eq!(
            e.message(),
            "failed to create typed patch object (default/web; apps/v1, Kind=StatefulSet): errors:\n  \
             .metadata.finalizers[=1.5]: expected string, got &value.valueUnstructured{Value:1.5}\n  \
             .metadata.generation: expected numeric (int or float), got string\n  \
             .metadata.labels.app: expected string, got &value.valueUnstructured{Value:5}\n  \
             .metadata.ownerReferences[uid=\"u\"].controller: expected boolean, got &{yes}\n  \
             .metadata.ownerReferences[uid=\"u\"].name: expected string, got &value.valueUnstructured{Value:[]interface {}{\"n\"}}"
        );
    }

    #[test]
    fn list_map_items_with_some_key_fields_or_a_null_list_convert() {
        // Kubernetes 1.35 (structured-merge-diff v6.3.0, "optional map keys") names an item by
        // the key fields it has; validation judges the rest.
        assert_eq!(owner_refs_error(json!([{"uid": "u"}])), None);
        assert_eq!(owner_refs_error(json!(null)), None);
        assert_eq!(owner_refs_error(json!([])), None);
    }

    #[test]
    fn go_prints_floats_with_the_shortest_digits_and_an_exponent_from_1e6() {
        for (f, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (100_000.0, "100000"),
            (1_000_000.0, "1e+06"),
            (123_456_789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e308, "1e+308"),
            (-9.223_372_036_854_776e18, "-9.223372036854776e+18"),
        ] {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn status_is_neither_merged_nor_tracked_on_the_main_resource() {
        let mut cfg = sts(1, "x");
        cfg["status"] = json!({"replicas": 9});
        let out = apply(None, cfg, &sts_opts("kubectl", false, T0)).expect("created");
        assert!(out.get("status").is_none());
        assert!(entry(&out, "kubectl")["fieldsV1"].get("f:status").is_none());
    }

    #[test]
    fn custom_resources_use_their_crd_schema_and_deduce_the_rest() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "steps": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "properties": {"name": {"type": "string"}, "pause": {"type": "integer"}}}},
            "args": {"type": "array", "items": {"type": "string"}}}}}});
        let opts = ApplyOptions {
            manager: "a",
            force: false,
            now: T0,
            api_version: "example.io/v1",
            kind: "Rollout",
            subresource: "",
            schema: TypeRef::from_openapi_v3(&schema),
            reset_fields: &["status"],
        };
        let cfg = json!({"apiVersion": "example.io/v1", "kind": "Rollout", "metadata": {"name": "r"},
                         "spec": {"steps": [{"name": "one", "pause": 1}], "args": ["x"]}});
        let live = apply(None, cfg, &opts).expect("created");
        let f = &entry(&live, "a")["fieldsV1"];
        assert_eq!(f["f:spec"]["f:args"], json!({}), "untyped-list is atomic");
        assert_eq!(
            f["f:spec"]["f:steps"]["k:{\"name\":\"one\"}"]["f:pause"],
            json!({})
        );
        let cfg_b = json!({"apiVersion": "example.io/v1", "kind": "Rollout", "metadata": {"name": "r"},
                           "spec": {"steps": [{"name": "two", "pause": 2}]}});
        let out = apply(
            Some(&live),
            cfg_b,
            &ApplyOptions {
                manager: "b",
                ..opts
            },
        )
        .expect("merged");
        assert_eq!(
            out["spec"]["steps"],
            json!([{"name": "one", "pause": 1}, {"name": "two", "pause": 2}])
        );
    }

    #[test]
    fn apply_body_decodes_yaml_and_json_and_rejects_garbage_with_400() {
        let v = decode_apply_body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
            .expect("yaml");
        assert_eq!(v["metadata"]["name"], "c");
        let v = decode_apply_body(br#"{"apiVersion":"v1","kind":"ConfigMap"}"#).expect("json");
        assert_eq!(v["kind"], "ConfigMap");
        let e = decode_apply_body(b"- a\n- b\n").expect_err("list");
        assert_eq!(e.code(), 400);
        assert!(
            e.message().starts_with("error decoding YAML: "),
            "{}",
            e.message()
        );
        assert_eq!(decode_apply_body(b"a: [").map_err(|e| e.code()), Err(400));
    }

    #[test]
    fn json_apply_bodies_decode_as_the_yaml_decoder_decodes_them() {
        for body in [
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"a":"b"}}}"#,
            r#"{"spec":{"replicas":3,"ratio":0.5,"big":18446744073709551615,"neg":-7,"on":true,"off":null}}"#,
            r#"{"data":{"k":"line\nbreak \u00e9 \"quoted\" \\ tab\t"},"list":[1,"two",[3],{"four":4}]}"#,
            "  {\n \"a\" : [ ] , \"b\" : { } }\n",
            "null",
            "",
        ] {
            let fast = decode_apply_body(body.as_bytes()).expect("decodes");
            let yaml: Value = serde_yaml_ng::from_slice(body.as_bytes()).expect("yaml");
            let yaml = if yaml.is_null() { json!({}) } else { yaml };
            assert_eq!(fast, yaml, "{body}");
        }
        let e = decode_apply_body(b"[1, 2]").expect_err("a JSON array is not an object");
        assert_eq!(
            e.message(),
            "error decoding YAML: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        let e = decode_apply_body(br#"{"a": [}"#).expect_err("invalid JSON is invalid YAML");
        assert!(
            e.message().starts_with("error decoding YAML: "),
            "{}",
            e.message()
        );
    }

    #[test]
    fn manager_defaults_to_the_user_agent_prefix() {
        assert_eq!(
            manager_from_user_agent("kubectl/v1.32.0 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(manager_from_user_agent("kube-rs/5.0"), "kube-rs");
        assert_eq!(manager_from_user_agent(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn more_than_ten_update_managers_fold_the_oldest_into_ancient_changes() {
        let mut obj =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        for i in 0..12 {
            let live = obj.clone();
            obj["data"][format!("k{i}")] = json!("v");
            let now = format!("2026-11-23T15:{i:02}:00Z");
            let manager = format!("m{i:02}");
            update_managed_fields(
                Some(&live),
                &mut obj,
                &UpdateOptions {
                    manager: &manager,
                    now: &now,
                    api_version: "v1",
                    subresource: "",
                    schema: TypeRef::builtin("v1", "ConfigMap").expect("built in"),
                    reset_fields: &[],
                },
            );
        }
        let entries = obj["metadata"]["managedFields"]
            .as_array()
            .expect("entries");
        assert_eq!(entries.len(), 10);
        let ancient = entry(&obj, "ancient-changes");
        let f = &ancient["fieldsV1"]["f:data"];
        assert!(
            f.get("f:k0").is_some() && f.get("f:k1").is_some() && f.get("f:k2").is_some(),
            "{ancient}"
        );
        assert!(
            entries
                .iter()
                .all(|e| e["manager"] != "m00" && e["manager"] != "m02")
        );
        assert_eq!(
            entry(&obj, "m11")["fieldsV1"]["f:data"],
            json!({"f:k11": {}})
        );
    }

    fn arb_config() -> impl Strategy<Value = Value> {
        let labels = prop::collection::btree_map("[a-c]", "[x-z]{1,2}", 0..3);
        let containers =
            prop::collection::btree_map("[a-c]", ("[a-b]{1}", proptest::option::of(0u16..3)), 0..3);
        (labels, containers, proptest::option::of(0i64..5)).prop_map(|(labels, containers, replicas)| {
            let containers: Vec<Value> = containers
                .into_iter()
                .map(|(name, (image, port))| {
                    let mut c = json!({"name": name, "image": image});
                    if let Some(p) = port {
                        c["ports"] = json!([{"containerPort": 80 + p}]);
                    }
                    c
                })
                .collect();
            let mut cfg = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
                                 "spec": {"template": {"spec": {"containers": containers}}}});
            if !labels.is_empty() {
                cfg["metadata"]["labels"] = json!(labels);
            }
            if let Some(r) = replicas {
                cfg["spec"]["replicas"] = json!(r);
            }
            cfg
        })
    }

    fn without_managed(mut v: Value) -> Value {
        if let Some(Value::Object(m)) = v.get_mut("metadata") {
            m.remove("managedFields");
        }
        v
    }

    proptest! {
        #[test]
        fn a_sole_applier_converges_on_its_latest_configuration(a in arb_config(), b in arb_config()) {
            let first = apply(None, a.clone(), &sts_opts("kubectl", false, T0)).expect("create");
            prop_assert_eq!(without_managed(first.clone()), a);
            let second = apply(Some(&first), b.clone(), &sts_opts("kubectl", false, T1)).expect("sole applier never conflicts");
            // Everything the first configuration set and the second does not is pruned.
            let mut want = b.clone();
            if want["spec"]["template"]["spec"]["containers"].as_array().is_some_and(Vec::is_empty)
                && first["spec"]["template"]["spec"]["containers"].as_array().is_some_and(|c| !c.is_empty())
            {
                // An empty applied list is a leaf: it replaces the live list.
                want["spec"]["template"]["spec"]["containers"] = json!([]);
            }
            prop_assert_eq!(without_managed(second.clone()), want);
            // Re-applying the same configuration is a no-op (unless it sets
            // no field at all: then, as upstream, the applier is not recorded
            // and the next apply starts with `before-first-apply`).
            if second["metadata"].get("managedFields").is_some() {
                let third = apply(Some(&second), b, &sts_opts("kubectl", false, "2026-11-23T16:00:00Z")).expect("reapply");
                prop_assert_eq!(third, second);
            }
        }
    }

    #[test]
    fn applying_to_an_unmanaged_object_conflicts_with_before_first_apply() {
        let mut live = sts(3, "nginx:1");
        live["metadata"]["uid"] = json!("u1");
        let mut cfg = sts(5, "nginx:1");
        cfg["spec"]
            .as_object_mut()
            .expect("object")
            .remove("template");
        let e =
            apply(Some(&live), cfg.clone(), &sts_opts("kubectl", false, T1)).expect_err("conflict");
        assert_eq!(
            e.message(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
        );
        let out = apply(Some(&live), cfg, &sts_opts("kubectl", true, T1)).expect("forced");
        assert_eq!(entry(&out, "before-first-apply")["operation"], "Update");
        assert_eq!(
            entry(&out, "kubectl")["fieldsV1"]["f:spec"]["f:replicas"],
            json!({})
        );
    }

    #[test]
    fn updates_of_an_existing_unmanaged_object_stay_unmanaged() {
        let mut live = sts(3, "nginx:1");
        live["metadata"]["uid"] = json!("u1");
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(4);
        update_managed_fields(
            Some(&live),
            &mut new,
            &UpdateOptions {
                manager: "kubectl",
                now: T1,
                api_version: "apps/v1",
                subresource: "",
                schema: TypeRef::builtin("apps/v1", "StatefulSet").expect("built in"),
                reset_fields: &["status"],
            },
        );
        assert!(new["metadata"].get("managedFields").is_none());
    }

    /// Prints the cost of apply and update on a 100-container pod template;
    /// a measurement, not a test (`cargo test -p kubesim measure_ -- --ignored --nocapture`).
    #[test]
    #[ignore = "measurement"]
    fn measure_apply_and_update_cost() {
        let containers: Vec<Value> = (0..100)
            .map(|i| json!({"name": format!("c{i}"), "image": "nginx:1", "ports": [{"containerPort": 80 + i}],
                            "env": (0..10).map(|j| json!({"name": format!("E{j}"), "value": "v"})).collect::<Vec<_>>()}))
            .collect();
        let mut cfg = sts(3, "nginx:1");
        cfg["spec"]["template"]["spec"]["containers"] = json!(containers);
        let live = apply(None, cfg.clone(), &sts_opts("kubectl", false, T0)).expect("created");
        let n = 200;
        let start = std::time::Instant::now();
        for _ in 0..n {
            let out =
                apply(Some(&live), cfg.clone(), &sts_opts("kubectl", false, T1)).expect("applied");
            assert_eq!(out["spec"]["replicas"], 3);
        }
        let per_apply = start.elapsed() / n;
        let start = std::time::Instant::now();
        for i in 0..n {
            let mut new = live.clone();
            new["spec"]["replicas"] = json!(i);
            update_managed_fields(
                Some(&live),
                &mut new,
                &UpdateOptions {
                    manager: "ctl",
                    now: T1,
                    api_version: "apps/v1",
                    subresource: "",
                    schema: TypeRef::builtin("apps/v1", "StatefulSet").expect("built in"),
                    reset_fields: &["status"],
                },
            );
        }
        let per_update = start.elapsed() / n;
        println!(
            "apply (100 containers x 10 env): {per_apply:?}; update_managed_fields: {per_update:?}"
        );
        let small =
            apply(None, sts(3, "nginx:1"), &sts_opts("kubectl", false, T0)).expect("created");
        let start = std::time::Instant::now();
        for _ in 0..n {
            apply(
                Some(&small),
                sts(4, "nginx:2"),
                &sts_opts("kubectl", false, T1),
            )
            .expect("applied");
        }
        println!(
            "apply (typical 1-container StatefulSet): {:?}",
            start.elapsed() / n
        );
    }

    #[test]
    fn reapplying_unchanged_configuration_keeps_the_time() {
        let live =
            apply(None, sts(3, "nginx:1"), &sts_opts("kubectl", false, T0)).expect("created");
        let out = apply(
            Some(&live),
            sts(3, "nginx:1"),
            &sts_opts("kubectl", false, T1),
        )
        .expect("no-op");
        assert_eq!(entry(&out, "kubectl")["time"], T0);
        assert_eq!(out, live);
    }
}
