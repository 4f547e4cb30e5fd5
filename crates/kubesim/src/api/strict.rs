//! Server-side field validation (`?fieldValidation=Strict|Warn|Ignore`):
//! unknown and duplicate fields of a request body, dropped from the object
//! and then rejected, warned about or ignored as the real API server does.
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/handlers/{create,update,patch,rest}.go`
//! (`fieldValidation` defaults an absent directive to `Warn`; the strict
//! decoder's errors become a 400 `X in version "v" cannot be handled as a X:
//! strict decoding error: …` on create/update, a 422 `Invalid` on the `patch`
//! field for JSON, merge and strategic merge patches, and `Warning: 299`
//! headers under `Warn`), `k8s.io/apimachinery/pkg/runtime/error.go`
//! (`strictDecodingError`) and `sigs.k8s.io/json` (the `unknown field "a.b[0].c"`
//! and `duplicate field "a.b"` errors).
//!
//! Built-in kinds are checked against the k8s-openapi (v1.35) schemas kubesim
//! also publishes under `/openapi/v3`; custom resources against their CRD's
//! structural schema (the pruning of [`crate::schema::CompiledSchema::prune`]).
//! Simplification: duplicate fields are found in JSON bodies only (a YAML
//! body with a repeated key is rejected by the YAML parser), and the errors
//! list duplicates before unknown fields rather than in document order.
//! Server-side apply bodies keep their own handling (`patch::apply`).

use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex},
};

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{ApiError, Cause};
use crate::{registry::ResourceDescriptor, schema::go_quote};

/// The `fieldValidation` directive of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Unknown and duplicate fields are dropped silently.
    Ignore,
    /// Dropped, with one `Warning` header each (the default of a request
    /// without the parameter, as upstream's `fieldValidation("")`).
    #[default]
    Warn,
    /// The write fails naming every unknown and duplicate field.
    Strict,
}

/// Which write a body belongs to: names the options kind of a bad
/// directive and shapes the strict error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// POST (`CreateOptions`).
    Create,
    /// PUT (`UpdateOptions`).
    Update,
    /// PATCH (`PatchOptions`).
    Patch,
}

impl FieldValidation {
    /// Parses the query parameter (`None` or empty: [`FieldValidation::Warn`]).
    /// An unknown value is the 422 of `ValidateCreateOptions` and friends.
    pub fn parse(v: Option<&str>, verb: Verb) -> Result<Self, ApiError> {
        match v.unwrap_or_default() {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => {
                let kind = match verb {
                    Verb::Create => "CreateOptions",
                    Verb::Update => "UpdateOptions",
                    Verb::Patch => "PatchOptions",
                };
                let body = format!(
                    "Unsupported value: {}: supported values: \"Ignore\", \"Strict\", \"Warn\"",
                    go_quote(other)
                );
                let mut e = ApiError::new(
                    422,
                    "Invalid",
                    format!("{kind}.meta.k8s.io \"\" is invalid: fieldValidation: {body}"),
                );
                e.details.group = Some("meta.k8s.io".into());
                e.details.kind = Some(kind.into());
                e.details.causes.push(Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: body,
                    field: "fieldValidation".into(),
                });
                Err(e)
            }
        }
    }
}

/// Warnings collected while serving one request (sent as `Warning` headers).
#[derive(Clone, Debug, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Adds warnings.
    pub fn extend(&self, w: impl IntoIterator<Item = String>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend(w);
    }

    /// The warnings so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A `Warning` header value (`299 - "<text>"`, RFC 7234 quoting as
    /// `k8s.io/apiserver/pkg/endpoints/filters/warning.go` writes it).
    pub fn header_value(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        out.push_str("299 - \"");
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

/// Where the body being decoded came from (shapes the strict error).
#[derive(Clone, Debug)]
pub enum Site {
    /// A POST or PUT body.
    Body,
    /// The object a JSON or merge patch produced (its JSON text).
    JsonPatch(String),
    /// A strategic merge patch (Go's `%+v` of the patch map).
    StrategicPatch(String),
}

impl Site {
    /// The error of `issues` (`unknown field "…"`, `duplicate field "…"`)
    /// under `Strict`.
    pub fn strict_error(&self, d: &ResourceDescriptor, issues: &[String]) -> ApiError {
        self.decode_error(d, &format!("strict decoding error: {}", issues.join(", ")))
    }

    /// The error of a body that does not decode (`msg`: the decoder's
    /// error): 400 `X in version "v" cannot be handled as a X: <msg>` for a
    /// POST/PUT body (`transformDecodeError` in `handlers/create.go`), 422
    /// `Invalid` on `patch` for the object a patch produced (`patch.go`).
    pub fn decode_error(&self, d: &ResourceDescriptor, msg: &str) -> ApiError {
        let value = match self {
            Site::Body => {
                return ApiError::bad_request(format!(
                    "{kind} in version {} cannot be handled as a {kind}: {msg}",
                    go_quote(&d.version),
                    kind = d.kind
                ));
            }
            Site::JsonPatch(v) | Site::StrategicPatch(v) => v,
        };
        let body = format!("Invalid value: {}: {msg}", go_quote(value));
        let mut e = ApiError::new(422, "Invalid", format!(" \"\" is invalid: patch: {body}"));
        e.details.causes.push(Cause {
            reason: "FieldValueInvalid".into(),
            message: body,
            field: "patch".into(),
        });
        e
    }
}

/// `unknown field "…"` for each path.
pub fn unknown_issues(paths: &[String]) -> impl Iterator<Item = String> + '_ {
    paths
        .iter()
        .map(|p| format!("unknown field {}", go_quote(p)))
}

/// `duplicate field "…"` for each path.
pub fn duplicate_issues(paths: &[String]) -> impl Iterator<Item = String> + '_ {
    paths
        .iter()
        .map(|p| format!("duplicate field {}", go_quote(p)))
}

/// The message of a server-side apply whose configuration has fields the
/// kind does not declare, as structured-merge-diff's `ValidationErrors`
/// print them (one: `.foo: field not declared in schema`; several: an
/// `errors:` list), naming the configuration's namespace and name
/// ([`crate::patch::typed_patch_message`]).
pub fn undeclared_fields_message(
    d: &ResourceDescriptor,
    config: &Value,
    paths: &[String],
) -> String {
    let errs: Vec<String> = paths
        .iter()
        .map(|p| format!(".{p}: field not declared in schema"))
        .collect();
    let gv = if d.group.is_empty() {
        format!("/{}", d.version)
    } else {
        format!("{}/{}", d.group, d.version)
    };
    crate::patch::typed_patch_message(config, &format!("{gv}, Kind={}", d.kind), &errs)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Drops the fields of a built-in kind's object that its schema does not
/// declare; returns their paths in document order (`spec.foo`,
/// `spec.containers[0].bar`). Kinds without a published schema are left as
/// they are.
pub fn drop_unknown_builtin(d: &ResourceDescriptor, obj: &mut Value) -> Vec<String> {
    let Some((defs, root)) = crate::openapi::builtin_schema(&d.group, &d.kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(schema) = defs.get(root) {
        walk(defs, schema, obj, "", &mut out);
    }
    out
}

const REF_PREFIX: &str = "#/components/schemas/";

fn resolve<'a>(defs: &'a Map<String, Value>, mut s: &'a Value) -> &'a Value {
    // `$ref` chains are short; the bound guards against a cycle.
    for _ in 0..8 {
        match s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(REF_PREFIX))
            .and_then(|n| defs.get(n))
        {
            Some(next) => s = next,
            None => match s.get("allOf").and_then(Value::as_array) {
                Some(all) if all.len() == 1 => s = &all[0],
                _ => return s,
            },
        }
    }
    s
}

fn walk(
    defs: &Map<String, Value>,
    schema: &Value,
    v: &mut Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let s = resolve(defs, schema);
    match v {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            if props.is_none() && additional.is_none() {
                // free-form (RawExtension, JSON, FieldsV1): anything goes
                return;
            }
            let mut unknown = Vec::new();
            for (k, child) in m.iter_mut() {
                let p = join(path, k);
                match props.and_then(|p| p.get(k)).or(additional) {
                    Some(cs) => walk(defs, cs, child, &p, out),
                    None => {
                        out.push(p);
                        unknown.push(k.clone());
                    }
                }
            }
            for k in unknown {
                m.remove(&k);
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, child) in items.iter_mut().enumerate() {
                    walk(defs, is, child, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The paths of keys repeated within one JSON object of `body` (in
/// document order). Not JSON, or malformed: none (the parser reports it).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let starts_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_json {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Dups {
        path: &mut Vec::new(),
        out: &mut out,
    }
    .deserialize(&mut de);
    out
}

/// One step of the path of a JSON node: an object key or a list index.
enum Seg<'de> {
    Key(std::borrow::Cow<'de, str>),
    Index(usize),
}

/// Renders a path as [`join`] and `[i]` would have built it.
fn render(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Walks a body without building it, keeping the path of the node it is in
/// (rendered only for a repeated key) and borrowing keys from the body when
/// they have no escapes.
struct Dups<'p, 'de> {
    path: &'p mut Vec<Seg<'de>>,
    out: &'p mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Dups<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key, borrowed from the body when possible.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }
}

impl<'de> Visitor<'de> for Dups<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (path, out) = (self.path, self.out);
        let mut i = 0usize;
        loop {
            path.push(Seg::Index(i));
            let more = seq.next_element_seed(Dups {
                path: &mut *path,
                out: &mut *out,
            });
            path.pop();
            if more?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (path, out) = (self.path, self.out);
        // Objects are small: a list scan beats hashing until they are not.
        let mut seen: Vec<std::borrow::Cow<'de, str>> = Vec::new();
        let mut seen_set: HashSet<std::borrow::Cow<'de, str>> = HashSet::new();
        while let Some(k) = map.next_key_seed(Key)? {
            let repeated = if seen_set.is_empty() && seen.len() < 16 {
                let r = seen.contains(&k);
                if !r {
                    seen.push(k.clone());
                }
                r
            } else {
                seen_set.extend(seen.drain(..));
                !seen_set.insert(k.clone())
            };
            path.push(Seg::Key(k));
            if repeated {
                out.push(render(path));
            }
            let r = map.next_value_seed(Dups {
                path: &mut *path,
                out: &mut *out,
            });
            path.pop();
            r?;
        }
        Ok(())
    }
}

/// Go's `fmt.Sprintf("%+v", v)` of a decoded JSON value (`map[a:1 b:[x y]]`,
/// keys sorted), as upstream prints a strategic merge patch in its errors.
pub fn go_format(v: &Value) -> String {
    let mut s = String::new();
    go_format_into(v, &mut s);
    s
}

fn go_format_into(v: &Value, s: &mut String) {
    match v {
        Value::Null => s.push_str("<nil>"),
        Value::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => s.push_str(&crate::schema::go_number_string(n)),
        Value::String(t) => s.push_str(t),
        Value::Array(a) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                go_format_into(x, s);
            }
            s.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            s.push_str("map[");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(k);
                s.push(':');
                go_format_into(&m[k], s);
            }
            s.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::registry::builtin_resources;

    fn pods() -> ResourceDescriptor {
        builtin_resources()
            .into_iter()
            .find(|d| d.group.is_empty() && d.plural == "pods")
            .unwrap()
    }

    #[test]
    fn unknown_fields_of_a_pod_are_dropped_and_named_with_their_paths() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"foo": true, "containers": [{"name": "c", "image": "i", "bar": {"x": 1}}],
                     "nodeSelector": {"any": "key"}},
            "status": {"phase": "Running"}});
        let paths = drop_unknown_builtin(&pods(), &mut pod);
        assert_eq!(
            paths,
            ["metadata.bogus", "spec.containers[0].bar", "spec.foo"]
        );
        assert_eq!(
            pod,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
                   "spec": {"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"any": "key"}},
                   "status": {"phase": "Running"}})
        );
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let body = br#"{"metadata":{"name":"a","name":"b"},"spec":{"containers":[{"name":"c","image":"x","image":"y"}]}}"#;
        assert_eq!(
            duplicate_fields(body),
            ["metadata.name", "spec.containers[0].image"]
        );
        assert!(duplicate_fields(b"kind: Pod\nkind: Pod\n").is_empty());
    }

    #[test]
    fn strict_errors_have_the_upstream_shapes() {
        let issues: Vec<String> = unknown_issues(&["spec.foo".into()]).collect();
        let e = Site::Body.strict_error(&pods(), &issues);
        assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
        assert_eq!(
            e.message,
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.foo\""
        );
        let e = Site::StrategicPatch(go_format(&json!({"spec": {"foo": 1, "x": [1, "a"]}})))
            .strict_error(&pods(), &issues);
        assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            e.message,
            " \"\" is invalid: patch: Invalid value: \"map[spec:map[foo:1 x:[1 a]]]\": strict decoding error: unknown field \"spec.foo\""
        );
        assert_eq!(e.details.causes[0].field, "patch");
    }

    #[test]
    fn the_directive_defaults_to_warn_and_rejects_unknown_values() {
        assert_eq!(
            FieldValidation::parse(None, Verb::Create).unwrap(),
            FieldValidation::Warn
        );
        assert_eq!(
            FieldValidation::parse(Some("Strict"), Verb::Patch).unwrap(),
            FieldValidation::Strict
        );
        let e = FieldValidation::parse(Some("Loose"), Verb::Update).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "UpdateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Loose\": supported values: \"Ignore\", \"Strict\", \"Warn\""
        );
    }

    #[test]
    fn undeclared_apply_fields_are_listed_like_structured_merge_diff() {
        assert_eq!(
            undeclared_fields_message(
                &pods(),
                &serde_json::json!({"metadata": {"name": "p", "namespace": "ns"}}),
                &["spec.foo".into()]
            ),
            "failed to create typed patch object (ns/p; /v1, Kind=Pod): .spec.foo: field not declared in schema"
        );
        assert!(
            undeclared_fields_message(
                &pods(),
                &serde_json::json!({"metadata": {"name": "p"}}),
                &["a".into(), "b".into()]
            )
            .ends_with(
                "(/p; /v1, Kind=Pod): errors:\n  .a: field not declared in schema\n  .b: field not declared in schema"
            )
        );
    }

    #[test]
    fn warning_headers_quote_like_the_apiserver() {
        assert_eq!(
            Warnings::header_value("unknown field \"spec.foo\""),
            "299 - \"unknown field \\\"spec.foo\\\"\""
        );
    }
}
