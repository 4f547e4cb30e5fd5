//! A parsed structural schema (one CRD version's `openAPIV3Schema`).
//!
//! Mirrors `Structural` in
//! `k8s.io/apiextensions-apiserver/pkg/apiserver/schema/structural.go`: the
//! typed tree pruning, defaulting and validation walk. Value validations in
//! `allOf`/`anyOf`/`oneOf`/`not` are kept as nested [`Structural`]s.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use super::SchemaError;

/// `additionalProperties`: either a boolean or a schema.
#[derive(Debug, Clone)]
pub enum Additional {
    /// `additionalProperties: true|false`.
    Bool(bool),
    /// `additionalProperties: {schema}`.
    Schema(Box<Structural>),
}

/// One node of a structural schema.
#[derive(Debug, Clone, Default)]
pub struct Structural {
    /// `type` (`""` when absent).
    pub type_: String,
    /// `format`.
    pub format: String,
    /// `description`.
    pub description: String,
    /// `nullable`.
    pub nullable: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown_fields: bool,
    /// `x-kubernetes-embedded-resource`.
    pub embedded_resource: bool,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`.
    pub map_type: Option<String>,
    /// `properties`, sorted by name.
    pub properties: BTreeMap<String, Structural>,
    /// `additionalProperties`.
    pub additional_properties: Option<Additional>,
    /// `items`.
    pub items: Option<Box<Structural>>,
    /// `required`.
    pub required: Vec<String>,
    /// `enum`.
    pub enum_: Vec<Value>,
    /// `default`.
    pub default: Option<Value>,
    /// `maximum`.
    pub maximum: Option<f64>,
    /// `exclusiveMaximum`.
    pub exclusive_maximum: bool,
    /// `minimum`.
    pub minimum: Option<f64>,
    /// `exclusiveMinimum`.
    pub exclusive_minimum: bool,
    /// `multipleOf`.
    pub multiple_of: Option<f64>,
    /// `maxLength`.
    pub max_length: Option<i64>,
    /// `minLength`.
    pub min_length: Option<i64>,
    /// `pattern` source and its compiled form.
    pub pattern: Option<(String, Regex)>,
    /// `maxItems`.
    pub max_items: Option<i64>,
    /// `minItems`.
    pub min_items: Option<i64>,
    /// `uniqueItems`.
    pub unique_items: bool,
    /// `maxProperties`.
    pub max_properties: Option<i64>,
    /// `minProperties`.
    pub min_properties: Option<i64>,
    /// `allOf`.
    pub all_of: Vec<Structural>,
    /// `anyOf`.
    pub any_of: Vec<Structural>,
    /// `oneOf`.
    pub one_of: Vec<Structural>,
    /// `not`.
    pub not: Option<Box<Structural>>,
    /// Whether any node at or below this one has `x-kubernetes-validations`.
    pub has_cel_rules: bool,
    /// Whether any node at or below this one (through `properties`,
    /// `additionalProperties` or `items`) is an `x-kubernetes-list-type:
    /// set` or `map` list: the list-type walk skips subtrees without one.
    pub has_list_types: bool,
}

impl Structural {
    /// Parses a JSON schema node; `path` names it in errors.
    pub fn parse(v: &Value, path: &str) -> Result<Self, SchemaError> {
        let Some(o) = v.as_object() else {
            return Err(SchemaError::InvalidSchema {
                path: path.to_owned(),
                reason: "must be an object".into(),
            });
        };
        let str_of = |k: &str| {
            o.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let bool_of = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
        let f64_of = |k: &str| o.get(k).and_then(Value::as_f64);
        let i64_of = |k: &str| o.get(k).and_then(Value::as_i64);
        let mut s = Structural {
            type_: str_of("type"),
            format: str_of("format"),
            description: str_of("description"),
            nullable: bool_of("nullable"),
            int_or_string: bool_of("x-kubernetes-int-or-string"),
            preserve_unknown_fields: bool_of("x-kubernetes-preserve-unknown-fields"),
            embedded_resource: bool_of("x-kubernetes-embedded-resource"),
            list_type: o
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            list_map_keys: o
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            map_type: o
                .get("x-kubernetes-map-type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            required: o
                .get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            enum_: o
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            default: o.get("default").cloned(),
            maximum: f64_of("maximum"),
            exclusive_maximum: bool_of("exclusiveMaximum"),
            minimum: f64_of("minimum"),
            exclusive_minimum: bool_of("exclusiveMinimum"),
            multiple_of: f64_of("multipleOf"),
            max_length: i64_of("maxLength"),
            min_length: i64_of("minLength"),
            max_items: i64_of("maxItems"),
            min_items: i64_of("minItems"),
            unique_items: bool_of("uniqueItems"),
            max_properties: i64_of("maxProperties"),
            min_properties: i64_of("minProperties"),
            has_cel_rules: o
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
            ..Structural::default()
        };
        s.has_list_types = matches!(s.list_type.as_deref(), Some("set" | "map"));
        if let Some(p) = o.get("pattern").and_then(Value::as_str) {
            let re = Regex::new(p).map_err(|e| SchemaError::InvalidSchema {
                path: format!("{path}.pattern"),
                reason: format!("must be a valid regular expression, but isn't: {e}"),
            })?;
            s.pattern = Some((p.to_owned(), re));
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            for (k, pv) in props {
                let child = Structural::parse(pv, &format!("{path}.properties[{k}]"))?;
                s.has_cel_rules |= child.has_cel_rules;
                s.has_list_types |= child.has_list_types;
                s.properties.insert(k.clone(), child);
            }
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(b)) => s.additional_properties = Some(Additional::Bool(*b)),
            Some(ap @ Value::Object(_)) => {
                let child = Structural::parse(ap, &format!("{path}.additionalProperties"))?;
                s.has_cel_rules |= child.has_cel_rules;
                s.has_list_types |= child.has_list_types;
                s.additional_properties = Some(Additional::Schema(Box::new(child)));
            }
            _ => {}
        }
        if let Some(items) = o.get("items").filter(|i| i.is_object()) {
            let child = Structural::parse(items, &format!("{path}.items"))?;
            s.has_cel_rules |= child.has_cel_rules;
            s.has_list_types |= child.has_list_types;
            s.items = Some(Box::new(child));
        }
        for (key, dst) in [
            ("allOf", &mut s.all_of),
            ("anyOf", &mut s.any_of),
            ("oneOf", &mut s.one_of),
        ] {
            if let Some(arr) = o.get(key).and_then(Value::as_array) {
                for (i, sub) in arr.iter().enumerate() {
                    dst.push(Structural::parse(sub, &format!("{path}.{key}[{i}]"))?);
                }
            }
        }
        if let Some(not) = o.get("not").filter(|n| n.is_object()) {
            s.not = Some(Box::new(Structural::parse(not, &format!("{path}.not"))?));
        }
        Ok(s)
    }

    /// The schema of property `k` (a declared property, else
    /// `additionalProperties` when it is a schema).
    pub fn field(&self, k: &str) -> Option<&Structural> {
        self.properties
            .get(k)
            .or(match &self.additional_properties {
                Some(Additional::Schema(s)) => Some(s),
                _ => None,
            })
    }

    /// Whether an object node keeps keys it does not declare.
    pub(crate) fn additional_allows_any(&self) -> bool {
        matches!(self.additional_properties, Some(Additional::Bool(true)))
    }
}
