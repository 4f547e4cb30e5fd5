//! Structural-schema handling of custom resources: pruning, defaulting,
//! OpenAPI validation and `x-kubernetes-validations` CEL rules, with the
//! real API server's field errors.
//!
//! # API (what the HTTP pipeline calls)
//!
//! ```text
//! // once per CRD version, when the CRD is created/updated (422 on error):
//! let schema = CompiledSchema::new(&version["schema"]["openAPIV3Schema"])?;
//! // on every create/update of a custom resource (body already parsed):
//! let unknown = schema.prune(&mut obj);     // sorted paths, e.g. ["spec.foo"]
//! //   fieldValidation=Strict and !unknown.is_empty() -> 400 strict_decoding_message(&unknown)
//! //   fieldValidation=Warn -> one `Warning: 299 - "unknown field \"spec.foo\""` header each
//! schema.default(&mut obj);
//! let errs = schema.validate(&obj, old.as_ref());   // old = Some(..) on update
//! //   or schema.validate_status(&obj, old) for PUT/PATCH of the status subresource
//! if !errs.is_empty() { 422 invalid_status(kind, group, name, &errs) }
//! ```
//!
//! [`CompiledSchema`] is `Send + Sync`; CEL rules are compiled once in
//! [`CompiledSchema::new`]. [`invalid_status`] builds the whole `Status`
//! body. [`scale`] helps with the `/scale` subresource and
//! [`JsonPath`] evaluates `additionalPrinterColumns` (see `crate::table`).
//!
//! Upstream: `k8s.io/apiextensions-apiserver/pkg/apiserver/schema/{pruning,
//! defaulting,objectmeta,listtype,cel}` and
//! `pkg/registry/customresource/{strategy,validator}.go` (v1.35).
//! Simplifications (each cites its upstream file in its own doc): metadata
//! of the resource root and of embedded resources is pruned to the
//! `ObjectMeta` fields but not otherwise validated here (the core validates
//! names); CRD validation ratcheting is not implemented; CEL cost budgets are
//! not enforced; CEL rules are evaluated by the `cel` crate with kube-cel's
//! Kubernetes libraries (see `cel.rs` for what that implies).

pub(crate) mod cel;
mod field;
pub mod formats;
mod jsonpath;
pub mod scale;
mod structural;
mod validate;

use serde_json::{Map, Value};

pub(crate) use field::go_quote;
pub use field::{BadValue, ErrorType, FieldError, invalid_message, invalid_status};
pub use jsonpath::JsonPath;
pub use structural::{Additional, Structural};

/// Failures building a [`CompiledSchema`] or parsing a printer-column path.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema itself is malformed.
    #[error("failed to parse schema at {path}: {reason}")]
    InvalidSchema {
        /// Where in the schema (`.properties[spec].pattern`).
        path: String,
        /// Why.
        reason: String,
    },
    /// An `x-kubernetes-validations` rule or messageExpression does not compile.
    #[error("failed to compile x-kubernetes-validations rule: {0}")]
    CelCompile(String),
    /// A JSONPath expression does not parse.
    #[error("failed to parse JSONPath {path:?}: {reason}")]
    InvalidJsonPath {
        /// The expression.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Go's `%v` of a JSON number (as printed in field errors and table cells).
pub fn go_number_string(n: &serde_json::Number) -> String {
    field::go_number(n)
}

/// The fields of `metav1.ObjectMeta`; other keys under `metadata` are dropped
/// (`objectmeta.Coerce` in
/// `pkg/apiserver/schema/objectmeta/coerce.go` round-trips through the Go type).
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// One CRD version's schema, parsed and with its CEL rules compiled.
pub struct CompiledSchema {
    root: Structural,
    cel: Option<cel::CelNode>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("root", &self.root)
            .field("cel", &self.cel.is_some())
            .finish()
    }
}

/// The message of the 400 `BadRequest` for unknown fields under
/// `fieldValidation=Strict` (`runtime.NewStrictDecodingError`).
pub fn strict_decoding_message(unknown_paths: &[String]) -> String {
    let parts: Vec<String> = unknown_paths
        .iter()
        .map(|p| format!("unknown field {}", field::go_quote(p)))
        .collect();
    format!("strict decoding error: {}", parts.join(", "))
}

impl CompiledSchema {
    /// Parses `openapi_v3_schema` and compiles its CEL rules.
    pub fn new(openapi_v3_schema: &Value) -> Result<Self, SchemaError> {
        let root = Structural::parse(openapi_v3_schema, "openAPIV3Schema")?;
        let cel = if root.has_cel_rules {
            Some(cel::CelNode::compile(openapi_v3_schema, "openAPIV3Schema")?)
        } else {
            None
        };
        Ok(Self { root, cel })
    }

    /// Builds from a k8s-openapi `JSONSchemaProps`.
    pub fn from_props(
        props: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    ) -> Result<Self, SchemaError> {
        let v = serde_json::to_value(props).map_err(|e| SchemaError::InvalidSchema {
            path: "openAPIV3Schema".into(),
            reason: e.to_string(),
        })?;
        Self::new(&v)
    }

    /// The parsed schema tree (for OpenAPI publishing and printer columns).
    pub fn structural(&self) -> &Structural {
        &self.root
    }

    /// Drops unknown fields (and non-`ObjectMeta` keys under `metadata`) in
    /// place; returns the dropped paths, sorted (`spec.foo`,
    /// `spec.items[0].bar`, `metadata.foo`).
    ///
    /// Also drops `null`s of non-nullable fields without a default
    /// (`defaulting/prunenulls.go`), as the decoder does before defaulting.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut unknown = Vec::new();
        prune_node(obj, Some(&self.root), true, &Path::Root(""), &mut unknown);
        prune_nulls(obj, Some(&self.root));
        unknown.sort();
        unknown
    }

    /// Applies `default`s in place (`defaulting/algorithm.go`).
    pub fn default(&self, obj: &mut Value) {
        default_node(obj, &self.root);
    }

    /// Validates a whole object (create when `old` is `None`, update
    /// otherwise): schema, list types, then CEL rules unless an earlier error
    /// blocks them (`hasBlockingErr` in `customresource/strategy.go`).
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validate::validate_value(&self.root, obj, "");
        self.list_types_and_cel(obj, old, &mut errs);
        errs
    }

    /// Validates an update of the status subresource: only `status` against
    /// its schema (`ValidateStatusUpdate` in `customresource/validator.go`),
    /// then list types and CEL rules on the whole object.
    pub fn validate_status(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = match (obj.get("status"), self.root.properties.get("status")) {
            (Some(status), Some(s)) => validate::validate_value(s, status, "status"),
            _ => Vec::new(),
        };
        self.list_types_and_cel(obj, old, &mut errs);
        errs
    }

    fn list_types_and_cel(&self, obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
        let old_list_ok = old.is_none_or(|o| {
            let mut e = Vec::new();
            validate::validate_list_types(&self.root, o, "", &mut e);
            e.is_empty()
        });
        if old_list_ok {
            validate::validate_list_types(&self.root, obj, "", errs);
        }
        let Some(cel) = &self.cel else { return };
        if errs.iter().any(|e| {
            matches!(
                e.error_type,
                ErrorType::NotSupported
                    | ErrorType::Required
                    | ErrorType::TooLong
                    | ErrorType::TooMany
                    | ErrorType::TypeInvalid
            )
        }) {
            errs.push(FieldError::invalid(
                "<nil>",
                Value::Null,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
            return;
        }
        cel::validate(cel, &self.root, obj, old, "", true, errs);
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A field path, rendered only when an unknown field names it (a write of a
/// large object prunes thousands of nodes and drops none).
enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root(p) => (*p).to_owned(),
            Path::Key(parent, k) => join(&parent.render(), k),
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

/// `pruning/algorithm.go`: `embedded` marks a resource root (the object
/// itself or an `x-kubernetes-embedded-resource` node), where `apiVersion`,
/// `kind` and `metadata` are kept and `metadata` is coerced to `ObjectMeta`.
fn prune_node(
    x: &mut Value,
    s: Option<&Structural>,
    embedded: bool,
    path: &Path<'_>,
    unknown: &mut Vec<String>,
) {
    let embedded = embedded || s.is_some_and(|s| s.embedded_resource);
    match x {
        Value::Object(map) => {
            if embedded && let Some(Value::Object(meta)) = map.get_mut("metadata") {
                meta.retain(|k, _| {
                    let keep = OBJECT_META_FIELDS.contains(&k.as_str());
                    if !keep {
                        unknown.push(Path::Key(&Path::Key(path, "metadata"), k).render());
                    }
                    keep
                });
            }
            let Some(s) = s else {
                for k in std::mem::take(map).keys() {
                    unknown.push(Path::Key(path, k).render());
                }
                return;
            };
            let preserve = s.preserve_unknown_fields || s.additional_allows_any();
            map.retain(|k, v| {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    return true;
                }
                let child = s.properties.get(k).or(match &s.additional_properties {
                    Some(Additional::Schema(a)) => Some(a),
                    _ => None,
                });
                match child {
                    Some(c) => {
                        prune_node(v, Some(c), false, &Path::Key(path, k), unknown);
                        true
                    }
                    None if preserve => true,
                    None => {
                        unknown.push(Path::Key(path, k).render());
                        false
                    }
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            let preserve = s.is_some_and(|s| s.preserve_unknown_fields);
            for (i, v) in items.iter_mut().enumerate() {
                if item_schema.is_none() && preserve {
                    continue;
                }
                prune_node(v, item_schema, false, &Path::Index(path, i), unknown);
            }
        }
        _ => {}
    }
}

/// `defaulting/prunenulls.go`.
fn prune_nulls(x: &mut Value, s: Option<&Structural>) {
    match x {
        Value::Object(map) => {
            map.retain(|k, v| {
                let child = s.and_then(|s| s.field(k));
                let drop = v.is_null() && child.is_some_and(|c| !c.nullable && c.default.is_none());
                if !drop {
                    prune_nulls(v, child);
                }
                !drop
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            items.iter_mut().for_each(|v| prune_nulls(v, item_schema));
        }
        _ => {}
    }
}

fn non_nullable_null(x: Option<&Value>, s: &Structural) -> bool {
    x.is_some_and(Value::is_null) && !s.nullable
}

/// `defaulting/algorithm.go`.
fn default_node(x: &mut Value, s: &Structural) {
    match x {
        Value::Object(map) => {
            for (k, prop) in &s.properties {
                if let Some(d) = &prop.default
                    && (!map.contains_key(k) || non_nullable_null(map.get(k), prop))
                {
                    map.insert(k.clone(), d.clone());
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    default_node(v, prop);
                } else if let Some(Additional::Schema(ap)) = &s.additional_properties {
                    if let Some(d) = &ap.default
                        && non_nullable_null(Some(v), ap)
                    {
                        *v = d.clone();
                    }
                    default_node(v, ap);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = &s.items {
                for v in items.iter_mut() {
                    if let Some(d) = &is.default
                        && v.is_null()
                        && !is.nullable
                    {
                        *v = d.clone();
                    }
                    default_node(v, is);
                }
            }
        }
        _ => {}
    }
}

/// Validates `apiVersion` and `kind` of a custom resource
/// (`ValidateTypeMeta` in `customresource/validator.go`).
pub fn validate_type_meta(obj: &Value, group: &str, version: &str, kind: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let got_kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if got_kind != kind {
        errs.push(FieldError::invalid(
            "kind",
            Value::from(got_kind),
            format!("must be {kind}"),
        ));
    }
    let want_av = format!("{group}/{version}");
    let got_av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if got_av != want_av {
        errs.push(FieldError::invalid(
            "apiVersion",
            Value::from(got_av),
            format!("must be {want_av}"),
        ));
    }
    errs
}

/// Drops every top-level key of a custom resource except `status` and the
/// type/object metadata — the part of an update that a status-subresource
/// write may change. Returns `new` with `old`'s non-status content, as
/// `statusStrategy.PrepareForUpdate` does (`customresource/status_strategy.go`).
pub fn status_update_merge(new: &Value, old: &Value) -> Value {
    let mut out: Map<String, Value> = old.as_object().cloned().unwrap_or_default();
    match new.get("status") {
        Some(st) => {
            out.insert("status".into(), st.clone());
        }
        None => {
            out.remove("status");
        }
    }
    if let (Some(Value::Object(nm)), Some(Value::Object(om))) =
        (new.get("metadata"), out.get_mut("metadata"))
    {
        // Status writes may still change labels/annotations etc.; the core
        // applies its own ObjectMeta update rules on top.
        for (k, v) in nm {
            om.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// For updates of the main resource when the status subresource is enabled:
/// `status` is taken from `old` (`customResourceStrategy.PrepareForUpdate`).
pub fn main_update_keep_status(new: &mut Value, old: &Value) {
    if let Some(map) = new.as_object_mut() {
        match old.get("status") {
            Some(st) => {
                map.insert("status".into(), st.clone());
            }
            None => {
                map.remove("status");
            }
        }
    }
}

#[cfg(test)]
mod tests;
