//! OpenAPI v3 value validation of a custom resource, with upstream's causes.
//!
//! Mirrors kube-openapi's `pkg/validation/validate` (`SchemaValidator`: type,
//! schema-props, string, format, number, slice, common/enum and object
//! validators run in that order on every node) and the conversion of its
//! results to field errors in `kubeOpenAPIResultToFieldErrors`
//! (`k8s.io/apiextensions-apiserver/pkg/apiserver/validation/validation.go`).
//! Simplification: properties are visited in name order (upstream iterates a
//! Go map, so its order is random), and `anyOf`/`oneOf` keep the first
//! failing branch's errors instead of the branch with the most matches.

use serde_json::{Map, Value};

use super::field::{FieldError, go_float, go_quote};
use super::formats;
use super::structural::{Additional, Structural};

/// A raw kube-openapi validation result before conversion to a field error.
enum Raw {
    /// `openapierrors.Validation` with its code.
    Required {
        name: String,
    },
    Enum {
        name: String,
        value: Value,
        values: Vec<Value>,
    },
    TooLong {
        name: String,
        max: i64,
    },
    MaxItems {
        name: String,
        actual: i64,
        max: i64,
    },
    TooManyProps {
        name: String,
        actual: i64,
        max: i64,
    },
    InvalidType {
        name: String,
        value: Value,
        msg: String,
    },
    Other {
        name: String,
        value: Value,
        msg: String,
    },
    /// A composite (non-`Validation`) error: reported at the `<nil>` path.
    Composite {
        msg: String,
    },
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The types a node accepts (at most two: int-or-string), without allocating.
fn types_of(s: &Structural) -> ([&str; 2], usize) {
    if s.int_or_string {
        (["integer", "string"], 2)
    } else if s.type_.is_empty() {
        (["", ""], 0)
    } else {
        ([s.type_.as_str(), ""], 1)
    }
}

/// The path of the node being validated, rendered only when a result names
/// it (a large object has thousands of valid nodes).
struct Name<'a> {
    parent: Option<&'a Name<'a>>,
    seg: Seg<'a>,
    rendered: std::cell::OnceCell<String>,
}

enum Seg<'a> {
    /// The start (`""`).
    Root,
    /// `parent.key`, or `key` under an empty parent.
    Key(&'a str),
    /// `parent.key` always (`.key` under an empty parent).
    Dot(&'a str),
    /// `parent[i]`.
    Index(usize),
}

impl<'a> Name<'a> {
    fn new(parent: Option<&'a Name<'a>>, seg: Seg<'a>) -> Self {
        Name {
            parent,
            seg,
            rendered: std::cell::OnceCell::new(),
        }
    }

    fn root() -> Self {
        Name::new(None, Seg::Root)
    }

    fn key(parent: &'a Name<'a>, k: &'a str) -> Self {
        Name::new(Some(parent), Seg::Key(k))
    }

    fn dot(parent: &'a Name<'a>, k: &'a str) -> Self {
        Name::new(Some(parent), Seg::Dot(k))
    }

    fn index(parent: &'a Name<'a>, i: usize) -> Self {
        Name::new(Some(parent), Seg::Index(i))
    }

    fn get(&self) -> &str {
        self.rendered.get_or_init(|| {
            let parent = self.parent.map(Name::get).unwrap_or_default();
            match self.seg {
                Seg::Root => String::new(),
                Seg::Key(k) => child_name(parent, k),
                Seg::Dot(k) => format!("{parent}.{k}"),
                Seg::Index(i) => format!("{parent}[{i}]"),
            }
        })
    }
}

fn in_body(name: &str, rest: &str) -> String {
    if name.is_empty() {
        rest.to_owned()
    } else {
        format!("{name} in body {rest}")
    }
}

/// Validates `data` at path `name` against `s`, appending raw results.
fn validate_node(s: &Structural, data: &Value, name: &Name<'_>, out: &mut Vec<Raw>) {
    let (types, n_types) = types_of(s);
    let types = &types[..n_types];
    // typeValidator
    if data.is_null() {
        if !types.is_empty() && !s.nullable {
            let t = types.join(",");
            out.push(Raw::InvalidType {
                name: name.get().into(),
                value: Value::from("null"),
                msg: in_body(name.get(), &format!("must be of type {t}: \"null\"")),
            });
        }
        // upstream runs only the type and common (enum) validators on null.
        if !s.enum_.is_empty() && !enum_contains(&s.enum_, data) {
            out.push(Raw::Enum {
                name: name.get().into(),
                value: data.clone(),
                values: s.enum_.clone(),
            });
        }
        return;
    }
    let actual = json_type(data);
    let float_int = actual == "number"
        && data.as_f64().is_some_and(|f| f.fract() == 0.0)
        && types.contains(&"integer");
    let int_float = actual == "integer" && types.contains(&"number");
    if !(types.is_empty() || types.contains(&actual) || float_int || int_float) {
        let t = types.join(",");
        out.push(Raw::InvalidType {
            name: name.get().into(),
            value: Value::from(actual),
            msg: in_body(
                name.get(),
                &format!("must be of type {t}: {}", go_quote(actual)),
            ),
        });
    }
    // schemaPropsValidator
    validate_schema_props(s, data, name, out);
    match data {
        Value::String(str_) => {
            validate_string(s, str_, name, out);
            if !s.format.is_empty()
                && formats::is_known(&s.format)
                && !formats::validates(&s.format, str_)
            {
                out.push(Raw::InvalidType {
                    name: name.get().into(),
                    value: data.clone(),
                    msg: in_body(
                        name.get(),
                        &format!("must be of type {}: {}", s.format, go_quote(str_)),
                    ),
                });
            }
        }
        Value::Number(_) => validate_number(s, data, name, out),
        Value::Array(items) => validate_slice(s, items, name, out),
        _ => {}
    }
    // commonValidator (enum)
    if !s.enum_.is_empty() && !enum_contains(&s.enum_, data) {
        out.push(Raw::Enum {
            name: name.get().into(),
            value: data.clone(),
            values: s.enum_.clone(),
        });
    }
    if let Value::Object(map) = data {
        validate_object(s, map, name, out);
    }
}

fn enum_contains(values: &[Value], data: &Value) -> bool {
    values.iter().any(|e| match (e, data) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    })
}

fn child_name(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn validate_schema_props(s: &Structural, data: &Value, name: &Name<'_>, out: &mut Vec<Raw>) {
    if !s.any_of.is_empty() {
        let mut first_failure: Option<Vec<Raw>> = None;
        let mut ok = false;
        for sub in &s.any_of {
            let mut r = Vec::new();
            validate_node(sub, data, name, &mut r);
            if r.is_empty() {
                ok = true;
                break;
            }
            first_failure.get_or_insert(r);
        }
        if !ok {
            out.push(Raw::Composite {
                msg: format!(
                    "{} must validate at least one schema (anyOf)",
                    go_quote(name.get())
                ),
            });
            out.extend(first_failure.unwrap_or_default());
        }
    }
    if !s.one_of.is_empty() {
        let mut first_failure: Option<Vec<Raw>> = None;
        let mut valid = 0;
        for sub in &s.one_of {
            let mut r = Vec::new();
            validate_node(sub, data, name, &mut r);
            if r.is_empty() {
                valid += 1;
            } else if valid == 0 {
                first_failure.get_or_insert(r);
            }
        }
        if valid != 1 {
            let extra = if valid == 0 {
                "Found none valid".to_owned()
            } else {
                format!("Found {valid} valid alternatives")
            };
            out.push(Raw::Composite {
                msg: format!(
                    "{} must validate one and only one schema (oneOf). {extra}",
                    go_quote(name.get())
                ),
            });
            if valid == 0 {
                out.extend(first_failure.unwrap_or_default());
            }
        }
    }
    if !s.all_of.is_empty() {
        let mut validated = 0;
        for sub in &s.all_of {
            let mut r = Vec::new();
            validate_node(sub, data, name, &mut r);
            if r.is_empty() {
                validated += 1;
            }
            out.extend(r);
        }
        if validated != s.all_of.len() {
            let extra = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            out.push(Raw::Composite {
                msg: format!(
                    "{} must validate all the schemas (allOf){extra}",
                    go_quote(name.get())
                ),
            });
        }
    }
    if let Some(not) = &s.not {
        let mut r = Vec::new();
        validate_node(not, data, name, &mut r);
        if r.is_empty() {
            out.push(Raw::Composite {
                msg: format!(
                    "{} must not validate the schema (not)",
                    go_quote(name.get())
                ),
            });
        }
    }
}

fn validate_string(s: &Structural, data: &str, name: &Name<'_>, out: &mut Vec<Raw>) {
    let len = data.chars().count() as i64;
    if let Some(max) = s.max_length
        && len > max
    {
        out.push(Raw::TooLong {
            name: name.get().into(),
            max,
        });
        return;
    }
    if let Some(min) = s.min_length
        && len < min
    {
        out.push(Raw::Other {
            name: name.get().into(),
            value: Value::from(data),
            msg: in_body(name.get(), &format!("should be at least {min} chars long")),
        });
        return;
    }
    if let Some((src, re)) = &s.pattern
        && !re.is_match(data)
    {
        out.push(Raw::Other {
            name: name.get().into(),
            value: Value::from(data),
            msg: in_body(name.get(), &format!("should match '{src}'")),
        });
    }
}

/// Formats a bound as kube-openapi does: as an int64 when the value is an
/// integer (`MaximumInt`), else Go's `%v` of a float64.
fn bound(data: &Value, b: f64) -> String {
    if data.is_i64() || data.is_u64() {
        (b as i64).to_string()
    } else {
        go_float(b)
    }
}

fn validate_number(s: &Structural, data: &Value, name: &Name<'_>, out: &mut Vec<Raw>) {
    let Some(v) = data.as_f64() else { return };
    let is_int = data.is_i64() || data.is_u64();
    if let Some(m) = s.multiple_of
        && m > 0.0
    {
        let q = v / m;
        if q.fract() != 0.0 {
            out.push(Raw::Other {
                name: name.get().into(),
                value: data.clone(),
                msg: in_body(
                    name.get(),
                    &format!("should be a multiple of {}", go_float(m)),
                ),
            });
        }
    }
    if let Some(min) = s.minimum {
        let fail = if is_int {
            let (v, min) = (data.as_i64().unwrap_or(i64::MIN), min as i64);
            if s.exclusive_minimum {
                v <= min
            } else {
                v < min
            }
        } else if s.exclusive_minimum {
            v <= min
        } else {
            v < min
        };
        if fail {
            let rel = if s.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(Raw::Other {
                name: name.get().into(),
                value: data.clone(),
                msg: in_body(name.get(), &format!("should be {rel} {}", bound(data, min))),
            });
        }
    }
    if let Some(max) = s.maximum {
        let fail = if is_int {
            let (v, max) = (data.as_i64().unwrap_or(i64::MAX), max as i64);
            if s.exclusive_maximum {
                v >= max
            } else {
                v > max
            }
        } else if s.exclusive_maximum {
            v >= max
        } else {
            v > max
        };
        if fail {
            let rel = if s.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(Raw::Other {
                name: name.get().into(),
                value: data.clone(),
                msg: in_body(name.get(), &format!("should be {rel} {}", bound(data, max))),
            });
        }
    }
}

fn validate_slice(s: &Structural, items: &[Value], name: &Name<'_>, out: &mut Vec<Raw>) {
    if let Some(item_schema) = &s.items {
        for (i, item) in items.iter().enumerate() {
            validate_node(item_schema, item, &Name::index(name, i), out);
        }
    }
    let size = items.len() as i64;
    if let Some(min) = s.min_items
        && size < min
    {
        out.push(Raw::Other {
            name: name.get().into(),
            value: Value::from(size),
            msg: in_body(name.get(), &format!("should have at least {min} items")),
        });
    }
    if let Some(max) = s.max_items
        && size > max
    {
        out.push(Raw::MaxItems {
            name: name.get().into(),
            actual: size,
            max,
        });
    }
    if s.unique_items {
        let mut seen: Vec<&Value> = Vec::new();
        if items.iter().any(|i| {
            let dup = seen.contains(&i);
            seen.push(i);
            dup
        }) {
            out.push(Raw::Other {
                name: name.get().into(),
                value: Value::from(""),
                msg: in_body(name.get(), "shouldn't contain duplicates"),
            });
        }
    }
}

fn validate_object(s: &Structural, map: &Map<String, Value>, name: &Name<'_>, out: &mut Vec<Raw>) {
    let n = map.len() as i64;
    if let Some(min) = s.min_properties
        && n < min
    {
        out.push(Raw::Other {
            name: name.get().into(),
            value: Value::from(n),
            msg: in_body(
                name.get(),
                &format!("should have at least {min} properties"),
            ),
        });
    }
    if let Some(max) = s.max_properties
        && n > max
    {
        out.push(Raw::TooManyProps {
            name: name.get().into(),
            actual: n,
            max,
        });
    }
    match &s.additional_properties {
        Some(Additional::Bool(false)) => {
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|k| !s.properties.contains_key(*k))
                .collect();
            keys.sort();
            for k in keys {
                out.push(Raw::Composite {
                    msg: format!("{}.{k} in body is a forbidden property", name.get()),
                });
            }
        }
        Some(Additional::Schema(ap)) => {
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|k| !s.properties.contains_key(*k))
                .collect();
            keys.sort();
            for k in keys {
                validate_node(ap, &map[k.as_str()], &Name::dot(name, k), out);
            }
        }
        _ => {}
    }
    for (k, ps) in &s.properties {
        if let Some(v) = map.get(k) {
            validate_node(ps, v, &Name::key(name, k), out);
        }
    }
    for k in &s.required {
        if !map.contains_key(k) {
            out.push(Raw::Required {
                name: format!("{}.{k}", name.get()),
            });
        }
    }
}

fn enum_strings(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Prefixes an error name (`spec.x`, `.spec.x`) with `prefix` as
/// `field.Path.Child` would.
fn err_path(prefix: &str, name: &str) -> String {
    let name = name.strip_prefix('.').unwrap_or(name);
    if name.is_empty() {
        if prefix.is_empty() {
            "<nil>".to_owned()
        } else {
            prefix.to_owned()
        }
    } else if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Validates `data` against `s` and returns upstream's field errors; `prefix`
/// is the field path of `data` within the object (`""` for the whole object,
/// `status` for status updates).
pub fn validate_value(s: &Structural, data: &Value, prefix: &str) -> Vec<FieldError> {
    let mut raw = Vec::new();
    validate_node(s, data, &Name::root(), &mut raw);
    raw.into_iter()
        .map(|r| match r {
            Raw::Required { name } => FieldError::required(&err_path(prefix, &name), ""),
            Raw::Enum {
                name,
                value,
                values,
            } => FieldError::not_supported(&err_path(prefix, &name), value, &enum_strings(&values)),
            Raw::TooLong { name, max } => FieldError::too_long(&err_path(prefix, &name), max),
            Raw::MaxItems { name, actual, max } | Raw::TooManyProps { name, actual, max } => {
                FieldError::too_many(&err_path(prefix, &name), actual, max)
            }
            Raw::InvalidType { name, value, msg } => {
                FieldError::type_invalid(&err_path(prefix, &name), value, msg)
            }
            Raw::Other { name, value, msg } => {
                FieldError::invalid(&err_path(prefix, &name), value, msg)
            }
            Raw::Composite { msg } => {
                FieldError::invalid(&err_path(prefix, ""), Value::from(""), msg)
            }
        })
        .collect()
}

/// Validates `x-kubernetes-list-type: set|map` uniqueness as
/// `pkg/apiserver/schema/listtype/validation.go` does.
pub fn validate_list_types(s: &Structural, data: &Value, path: &str, out: &mut Vec<FieldError>) {
    if !s.has_list_types {
        // No set or map list at or below this node: nothing to check (and no
        // need to walk, say, a 1,000-entry status list item by item).
        return;
    }
    match data {
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(sub) = s.field(k) {
                    validate_list_types(sub, v, &child_name(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            match s.list_type.as_deref() {
                Some("set") => {
                    for i in non_unique(items) {
                        out.push(FieldError::duplicate(
                            &format!("{path}[{i}]"),
                            items[i].clone(),
                        ));
                    }
                }
                Some("map") => validate_list_map(s, items, path, out),
                _ => {}
            }
            if let Some(item_schema) = &s.items {
                for (i, item) in items.iter().enumerate() {
                    validate_list_types(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Indices of the second occurrence of each repeated value.
fn non_unique(items: &[Value]) -> Vec<usize> {
    let mut seen: Vec<(&Value, usize)> = Vec::new();
    let mut out = Vec::new();
    for (i, x) in items.iter().enumerate() {
        if let Some(entry) = seen.iter_mut().find(|(v, _)| *v == x) {
            entry.1 += 1;
            if entry.1 == 2 {
                out.push(i);
            }
        } else {
            seen.push((x, 1));
        }
    }
    out
}

fn validate_list_map(s: &Structural, items: &[Value], path: &str, out: &mut Vec<FieldError>) {
    for (i, x) in items.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            out.push(FieldError::invalid(
                &format!("{path}[{i}]"),
                x.clone(),
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    let keys: Vec<Value> = items
        .iter()
        .map(|x| {
            let mut key = Map::new();
            for k in &s.list_map_keys {
                if let Some(v) = x.get(k) {
                    key.insert(k.clone(), v.clone());
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in non_unique(&keys) {
        out.push(FieldError::duplicate(
            &format!("{path}[{i}]"),
            keys[i].clone(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(schema: Value, obj: Value) -> Vec<String> {
        let s = Structural::parse(&schema, "").expect("schema parses");
        validate_value(&s, &obj, "")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn spec(props: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}})
    }

    #[test]
    fn each_keyword_is_worded_as_the_real_server() {
        let cases: Vec<(Value, Value, Vec<&str>)> = vec![
            (
                json!({"percent": {"type": "integer", "maximum": 100}}),
                json!({"percent": 150}),
                vec![
                    "spec.percent: Invalid value: 150: spec.percent in body should be less than or equal to 100",
                ],
            ),
            (
                json!({"percent": {"type": "integer", "minimum": 0, "exclusiveMinimum": true}}),
                json!({"percent": 0}),
                vec![
                    "spec.percent: Invalid value: 0: spec.percent in body should be greater than 0",
                ],
            ),
            (
                json!({"percent": {"type": "integer", "minimum": 1}}),
                json!({"percent": -3}),
                vec![
                    "spec.percent: Invalid value: -3: spec.percent in body should be greater than or equal to 1",
                ],
            ),
            (
                json!({"ratio": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true}}),
                json!({"ratio": 2.5}),
                vec!["spec.ratio: Invalid value: 2.5: spec.ratio in body should be less than 1.5"],
            ),
            (
                json!({"strategy": {"type": "string", "enum": ["Partitioned", "OnDelete"]}}),
                json!({"strategy": "Foo"}),
                vec![
                    "spec.strategy: Unsupported value: \"Foo\": supported values: \"Partitioned\", \"OnDelete\"",
                ],
            ),
            (
                json!({"replicas": {"type": "integer"}}),
                json!({"replicas": "3"}),
                vec![
                    "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                ],
            ),
            (
                json!({"replicas": {"type": "integer"}}),
                json!({"replicas": 3.0}),
                vec![],
            ),
            (
                json!({"replicas": {"type": "integer"}}),
                json!({"replicas": 3.5}),
                vec![
                    "spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\"",
                ],
            ),
            (
                json!({"ratio": {"type": "number"}}),
                json!({"ratio": 3}),
                vec![],
            ),
            (
                json!({"name": {"type": "string", "maxLength": 3}}),
                json!({"name": "abcd"}),
                vec!["spec.name: Too long: may not be more than 3 bytes"],
            ),
            (
                json!({"name": {"type": "string", "minLength": 2}}),
                json!({"name": "a"}),
                vec![
                    "spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long",
                ],
            ),
            (
                json!({"name": {"type": "string", "pattern": "^[a-z]+$"}}),
                json!({"name": "A1"}),
                vec!["spec.name: Invalid value: \"A1\": spec.name in body should match '^[a-z]+$'"],
            ),
            (
                json!({"xs": {"type": "array", "items": {"type": "string"}, "maxItems": 1}}),
                json!({"xs": ["a", "b"]}),
                vec!["spec.xs: Too many: 2: must have at most 1 item"],
            ),
            (
                json!({"xs": {"type": "array", "items": {"type": "string"}, "minItems": 2}}),
                json!({"xs": ["a"]}),
                vec!["spec.xs: Invalid value: 1: spec.xs in body should have at least 2 items"],
            ),
            (
                json!({"xs": {"type": "array", "items": {"type": "integer", "maximum": 3}}}),
                json!({"xs": [1, 5]}),
                vec![
                    "spec.xs[1]: Invalid value: 5: spec.xs[1] in body should be less than or equal to 3",
                ],
            ),
            (
                json!({"m": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}}),
                json!({"m": {"a": "1", "b": "2"}}),
                vec!["spec.m: Too many: 2: must have at most 1 item"],
            ),
            (
                json!({"m": {"type": "object", "minProperties": 2, "additionalProperties": {"type": "string"}}}),
                json!({"m": {"a": "1"}}),
                vec!["spec.m: Invalid value: 1: spec.m in body should have at least 2 properties"],
            ),
            (
                json!({"m": {"type": "object", "additionalProperties": {"type": "integer"}}}),
                json!({"m": {"a": "x"}}),
                vec![
                    "spec.m.a: Invalid value: \"string\": spec.m.a in body must be of type integer: \"string\"",
                ],
            ),
            (
                json!({"p": {"x-kubernetes-int-or-string": true}}),
                json!({"p": "25%"}),
                vec![],
            ),
            (
                json!({"p": {"x-kubernetes-int-or-string": true}}),
                json!({"p": 2}),
                vec![],
            ),
            (
                json!({"p": {"x-kubernetes-int-or-string": true}}),
                json!({"p": true}),
                vec![
                    "spec.p: Invalid value: \"boolean\": spec.p in body must be of type integer,string: \"boolean\"",
                ],
            ),
            (
                json!({"s": {"type": "string"}}),
                json!({"s": null}),
                vec![
                    "spec.s: Invalid value: \"null\": spec.s in body must be of type string: \"null\"",
                ],
            ),
            (
                json!({"s": {"type": "string", "nullable": true}}),
                json!({"s": null}),
                vec![],
            ),
            (
                json!({"at": {"type": "string", "format": "date-time"}}),
                json!({"at": "yesterday"}),
                vec![
                    "spec.at: Invalid value: \"yesterday\": spec.at in body must be of type date-time: \"yesterday\"",
                ],
            ),
            (
                json!({"at": {"type": "string", "format": "date-time"}}),
                json!({"at": "2026-11-23T10:00:00Z"}),
                vec![],
            ),
            (
                json!({"n": {"type": "integer", "multipleOf": 5}}),
                json!({"n": 7}),
                vec!["spec.n: Invalid value: 7: spec.n in body should be a multiple of 5"],
            ),
            (
                json!({"xs": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}}}),
                json!({"xs": [1, 1]}),
                vec!["spec.xs: Invalid value: \"\": spec.xs in body shouldn't contain duplicates"],
            ),
        ];
        for (props, spec_obj, want) in cases {
            let got = errs(spec(props.clone()), json!({"spec": spec_obj}));
            assert_eq!(got, want, "schema {props}");
        }
    }

    #[test]
    fn required_fields_are_reported_with_their_path() {
        let schema = json!({"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "required": ["target", "strategy"], "properties": {
                "target": {"type": "string"}, "strategy": {"type": "string"}}}}});
        assert_eq!(
            errs(schema.clone(), json!({})),
            vec!["spec: Required value"]
        );
        assert_eq!(
            errs(schema, json!({"spec": {"strategy": "x"}})),
            vec!["spec.target: Required value"]
        );
    }

    #[test]
    fn any_of_failure_is_a_nil_path_composite_error() {
        let schema = spec(
            json!({"v": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true}}),
        );
        let got = errs(schema, json!({"spec": {"v": true}}));
        assert_eq!(
            got[0],
            "spec.v: Invalid value: \"boolean\": spec.v in body must be of type integer,string: \"boolean\""
        );
        assert_eq!(
            got[1],
            "<nil>: Invalid value: \"\": \"spec.v\" must validate at least one schema (anyOf)"
        );
    }

    #[test]
    fn list_type_set_and_map_report_duplicates() {
        let schema = Structural::parse(
            &spec(json!({
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {"name": {"type": "string"}}}}})),
            "",
        )
        .expect("parses");
        let obj = json!({"spec": {"tags": ["a", "b", "a", "a"], "ports": [{"name": "x"}, {"name": "y"}, {"name": "x", "p": 1}]}});
        let mut out = Vec::new();
        validate_list_types(&schema, &obj, "", &mut out);
        let got: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "spec.ports[2]: Duplicate value: {\"name\":\"x\"}",
                "spec.tags[2]: Duplicate value: \"a\""
            ]
        );
    }
}
