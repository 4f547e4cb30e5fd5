//! `x-kubernetes-validations` rules: compiled once per CRD version,
//! evaluated on every write.
//!
//! Mirrors `k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go`:
//! rules run on non-null values only, `self` is the node's value (at the
//! resource root with `apiVersion`, `kind` and `metadata.name`/`generateName`
//! only), transition rules (using `oldSelf`) run only when an old value
//! correlates — object properties of granular/atomic maps and items of
//! `x-kubernetes-list-type: map` lists matched by their keys — unless
//! `optionalOldSelf` is set. Object property names are escaped as
//! `k8s.io/apiserver/pkg/cel/escaping.go` does; `date-time` and `duration`
//! strings become timestamps and durations.
//!
//! The evaluator is the `cel` crate with kube-cel's Kubernetes function
//! libraries plus `type()` and the type identifiers (`int`, `string`, …),
//! which `cel` lacks. Simplifications: no static type checking at CRD
//! creation (a rule that does not return a bool fails at run time), no cost
//! budget, and runtime error texts are the `cel` crate's, not cel-go's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr};
use kube_cel::cel::objects::{Key, Map as CelMap, OptionalValue};
use kube_cel::cel::{Context, ExecutionError, Program, Value as CelValue, extractors::This};
use serde_json::Value;

use super::SchemaError;
use super::field::FieldError;
use super::structural::{Additional, Structural};

/// One compiled rule.
struct Rule {
    source: String,
    message: String,
    message_expression: Option<Program>,
    field_path: Option<String>,
    reason: Option<String>,
    optional_old_self: bool,
    program: Program,
    uses_old_self: bool,
}

/// The compiled rules of one schema node and its descendants.
#[derive(Default)]
pub(crate) struct CelNode {
    rules: Vec<Rule>,
    properties: BTreeMap<String, CelNode>,
    additional: Option<Box<CelNode>>,
    items: Option<Box<CelNode>>,
    all_of: Vec<CelNode>,
    /// The parts of `self` the rules (and message expressions) of this node read.
    self_reads: Projection,
    /// The parts of `oldSelf` they read.
    old_reads: Projection,
}

/// The parts of a variable (`self`, `oldSelf`) that a set of expressions can
/// read: the variable whole, or some of its object fields, each whole or in
/// part. Collected from the compiled expressions ([`Projection::collect`]),
/// so a rule such as `self.metadata.name.size() <= 63` on a custom
/// resource's root converts `metadata.name` to CEL, not the object's spec
/// and 1,000-entry status (upstream gets the same effect by wrapping the
/// object lazily: `UnstructuredToVal` in
/// `apiextensions-apiserver/pkg/apiserver/schema/cel/model`, whose fields are
/// converted only when a rule selects them).
#[derive(Debug, Default, Clone, PartialEq)]
struct Projection {
    whole: bool,
    fields: BTreeMap<String, Projection>,
}

/// The projection that keeps everything.
static WHOLE: Projection = Projection {
    whole: true,
    fields: BTreeMap::new(),
};

impl Projection {
    /// Records that the expression reads `path` (field names) of the variable, whole.
    fn add(&mut self, path: &[&str]) {
        if self.whole {
            return;
        }
        match path.split_first() {
            None => {
                self.whole = true;
                self.fields.clear();
            }
            Some((f, rest)) => self.fields.entry((*f).to_owned()).or_default().add(rest),
        }
    }

    /// The fields of `var` that `e` can read. A chain of field selections
    /// from the variable (`var.a.b`, `has(var.a.b)`) reads that field; any
    /// other use of the variable (`var`, `var[k]`, `var.?a`, `size(var)`,
    /// a comprehension over it) reads it whole. A comprehension variable
    /// named like `var` only makes the result larger (its fields are
    /// counted as the variable's), never smaller.
    fn collect(&mut self, e: &IdedExpr, var: &str) {
        let mut chain = Vec::new();
        if select_chain(e, var, &mut chain) {
            chain.reverse();
            self.add(&chain);
            return;
        }
        match &e.expr {
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
            Expr::Select(sel) => self.collect(&sel.operand, var),
            Expr::Call(c) => {
                if let Some(t) = &c.target {
                    self.collect(t, var);
                }
                for a in &c.args {
                    self.collect(a, var);
                }
            }
            Expr::Comprehension(c) => {
                for x in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    self.collect(x, var);
                }
            }
            Expr::List(l) => {
                for x in &l.elements {
                    self.collect(x, var);
                }
            }
            Expr::Map(m) => {
                for en in &m.entries {
                    self.collect_entry(&en.expr, var);
                }
            }
            Expr::Struct(st) => {
                for en in &st.entries {
                    self.collect_entry(&en.expr, var);
                }
            }
        }
    }

    fn collect_entry(&mut self, en: &EntryExpr, var: &str) {
        match en {
            EntryExpr::StructField(f) => self.collect(&f.value, var),
            EntryExpr::MapEntry(m) => {
                self.collect(&m.key, var);
                self.collect(&m.value, var);
            }
        }
    }
}

/// Whether `e` is `var` followed by field selections; pushes the field
/// names, innermost last.
fn select_chain<'e>(e: &'e IdedExpr, var: &str, out: &mut Vec<&'e str>) -> bool {
    match &e.expr {
        Expr::Ident(name) => name == var,
        Expr::Select(sel) => {
            out.push(&sel.field);
            select_chain(&sel.operand, var, out)
        }
        _ => false,
    }
}

impl CelNode {
    /// Compiles every rule under `schema` (a JSON schema node at `path`).
    pub(crate) fn compile(schema: &Value, path: &str) -> Result<Self, SchemaError> {
        let mut node = CelNode::default();
        for (i, r) in schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let at = format!("{path}.x-kubernetes-validations[{i}]");
            let source = r
                .get("rule")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let program = Program::compile(&source)
                .map_err(|e| SchemaError::CelCompile(format!("{at}.rule: {source:?}: {e}")))?;
            let message_expression = match r.get("messageExpression").and_then(Value::as_str) {
                Some(m) if !m.is_empty() => Some(Program::compile(m).map_err(|e| {
                    SchemaError::CelCompile(format!("{at}.messageExpression: {m:?}: {e}"))
                })?),
                _ => None,
            };
            let uses_old_self = program.references().has_variable("oldSelf");
            for p in std::iter::once(&program).chain(message_expression.as_ref()) {
                node.self_reads.collect(p.expression(), "self");
                node.old_reads.collect(p.expression(), "oldSelf");
            }
            node.rules.push(Rule {
                message: r
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                message_expression,
                field_path: r
                    .get("fieldPath")
                    .and_then(Value::as_str)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned),
                reason: r.get("reason").and_then(Value::as_str).map(str::to_owned),
                optional_old_self: r.get("optionalOldSelf").and_then(Value::as_bool) == Some(true),
                uses_old_self,
                source,
                program,
            });
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let child = CelNode::compile(v, &format!("{path}.properties[{k}]"))?;
                if !child.is_empty() {
                    node.properties.insert(k.clone(), child);
                }
            }
        }
        if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            let child = CelNode::compile(ap, &format!("{path}.additionalProperties"))?;
            if !child.is_empty() {
                node.additional = Some(Box::new(child));
            }
        }
        if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
            let child = CelNode::compile(items, &format!("{path}.items"))?;
            if !child.is_empty() {
                node.items = Some(Box::new(child));
            }
        }
        for (i, sub) in schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let child = CelNode::compile(sub, &format!("{path}.allOf[{i}]"))?;
            if !child.is_empty() {
                node.all_of.push(child);
            }
        }
        Ok(node)
    }

    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.properties.is_empty()
            && self.additional.is_none()
            && self.items.is_none()
            && self.all_of.is_empty()
    }
}

/// `type()` of a CEL value, as a type-name string compared against the
/// type identifiers bound in [`base_context`].
fn cel_type(This(v): This<CelValue>) -> Result<CelValue, ExecutionError> {
    let name = match v {
        CelValue::Int(_) => "int",
        CelValue::UInt(_) => "uint",
        CelValue::Float(_) => "double",
        CelValue::String(_) => "string",
        CelValue::Bytes(_) => "bytes",
        CelValue::Bool(_) => "bool",
        CelValue::List(_) => "list",
        CelValue::Map(_) => "map",
        CelValue::Null => "null_type",
        CelValue::Duration(_) => "google.protobuf.Duration",
        CelValue::Timestamp(_) => "google.protobuf.Timestamp",
        CelValue::Function(..) => "function",
        CelValue::Opaque(_) => "optional_type",
    };
    Ok(CelValue::String(Arc::new(name.to_owned())))
}

fn base_context() -> Context<'static> {
    let mut ctx = Context::default().with_all();
    ctx.add_function("type", cel_type);
    for t in [
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "list",
        "map",
        "null_type",
    ] {
        ctx.add_variable_from_value(t, CelValue::String(Arc::new(t.to_owned())));
    }
    ctx
}

thread_local! {
    static BASE: Context<'static> = base_context();
}

const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// `escaping.Escape`: the CEL name of an object property, or `None` when the
/// property cannot be accessed from CEL.
fn escape(name: &str) -> Option<String> {
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// Parses a Go duration (`1h30m`, `-1.5s`, `300ms`).
fn parse_go_duration(s: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total_ns += n * mult;
    }
    let ns = if neg { -total_ns } else { total_ns };
    Some(chrono::Duration::nanoseconds(ns as i64))
}

#[cfg(test)]
thread_local! {
    /// JSON values converted to CEL on this thread (tests check that
    /// subtrees without rules are never converted).
    pub(crate) static CONVERTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Converts a JSON value to CEL as `UnstructuredToVal` does for schema `s`.
///
/// Only the values of nodes that declare rules are converted: [`validate`]
/// walks the [`CelNode`] tree, which holds no subtree without a rule, as
/// upstream evaluates rules only where they are declared
/// (`apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go`).
fn to_cel(v: &Value, s: Option<&Structural>) -> CelValue {
    #[cfg(test)]
    CONVERTED.with(|c| c.set(c.get() + 1));
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let is_number_schema = s.is_some_and(|s| s.type_ == "number");
            if is_number_schema {
                CelValue::Float(n.as_f64().unwrap_or_default())
            } else if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                let f = n.as_f64().unwrap_or_default();
                if s.is_some_and(|s| s.type_ == "integer") && f.fract() == 0.0 {
                    CelValue::Int(f as i64)
                } else {
                    CelValue::Float(f)
                }
            }
        }
        Value::String(st) => {
            let format = s.map(|s| s.format.as_str()).unwrap_or_default();
            match format {
                "date-time" | "datetime" => match chrono::DateTime::parse_from_rfc3339(st) {
                    Ok(t) => CelValue::Timestamp(t),
                    Err(_) => CelValue::String(Arc::new(st.clone())),
                },
                "duration" => match parse_go_duration(st) {
                    Some(d) => CelValue::Duration(d),
                    None => CelValue::String(Arc::new(st.clone())),
                },
                _ => CelValue::String(Arc::new(st.clone())),
            }
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            CelValue::List(Arc::new(
                items.iter().map(|i| to_cel(i, item_schema)).collect(),
            ))
        }
        Value::Object(m) => object_to_cel(m, s, &WHOLE, false),
    }
}

/// The CEL name and schema of property `k` of an object of schema `s`;
/// `None` when CEL cannot access it (see [`escape`]).
fn property<'s>(k: &str, s: Option<&'s Structural>) -> Option<(String, Option<&'s Structural>)> {
    match s.and_then(|s| s.properties.get(k)) {
        Some(ps) => escape(k).map(|name| (name, Some(ps))),
        None => {
            let ap = s.and_then(|s| match &s.additional_properties {
                Some(Additional::Schema(a)) => Some(a.as_ref()),
                _ => None,
            });
            Some((k.to_owned(), ap))
        }
    }
}

/// [`to_cel`] of the part `p` of `v`: the fields `p` does not name are left
/// out of objects (a rule reading them does not exist, see [`Projection`]).
fn to_cel_projected(v: &Value, s: Option<&Structural>, p: &Projection) -> CelValue {
    match v {
        Value::Object(m) if !p.whole => {
            #[cfg(test)]
            CONVERTED.with(|c| c.set(c.get() + 1));
            object_to_cel(m, s, p, false)
        }
        _ => to_cel(v, s),
    }
}

/// An object of schema `s` as a CEL map, keeping the fields `p` names. At
/// the resource `root`, `metadata` is reduced to `name` and `generateName`
/// (`model.WithTypeAndObjectMeta`).
fn object_to_cel(
    m: &serde_json::Map<String, Value>,
    s: Option<&Structural>,
    p: &Projection,
    root: bool,
) -> CelValue {
    let mut out: HashMap<Key, CelValue> =
        HashMap::with_capacity(if p.whole { m.len() } else { p.fields.len() });
    for (k, val) in m {
        let Some((name, child_schema)) = property(k, s) else {
            continue;
        };
        let child = if p.whole {
            &WHOLE
        } else {
            match p.fields.get(&name) {
                Some(c) => c,
                None => continue,
            }
        };
        let converted = match val {
            Value::Object(meta) if root && k == "metadata" => {
                let reduced: serde_json::Map<String, Value> = meta
                    .iter()
                    .filter(|(k, _)| *k == "name" || *k == "generateName")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                object_to_cel(&reduced, child_schema, child, false)
            }
            _ => to_cel_projected(val, child_schema, child),
        };
        out.insert(Key::String(Arc::new(name)), converted);
    }
    CelValue::Map(CelMap { map: Arc::new(out) })
}

/// `self` (or `oldSelf`) of a node: the part `p` of `v`, converted.
fn node_to_cel(v: &Value, s: &Structural, p: &Projection, root: bool) -> CelValue {
    match v {
        Value::Object(m) if root => object_to_cel(m, Some(s), p, true),
        _ => to_cel_projected(v, Some(s), p),
    }
}

/// Evaluates `program` with JSON `vars` bound, with the libraries of the
/// CRD rules (used for admission webhooks' `matchConditions`: `object`,
/// `oldObject`, `request`). Returns the value or the evaluation error's text.
pub(crate) fn evaluate(program: &Program, vars: &[(&str, &Value)]) -> Result<CelValue, String> {
    BASE.with(|base| {
        let mut ctx = base.new_inner_scope();
        for (k, v) in vars {
            ctx.add_variable_from_value(*k, to_cel(v, None));
        }
        program.execute(&ctx).map_err(|e| e.to_string())
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn node_path(path: &str) -> String {
    if path.is_empty() {
        "<nil>".to_owned()
    } else {
        path.to_owned()
    }
}

/// Evaluates the rules of `node` (schema `s`) on `obj` at `path`, recursing.
pub(crate) fn validate(
    node: &CelNode,
    s: &Structural,
    obj: &Value,
    old: Option<&Value>,
    path: &str,
    root: bool,
    errs: &mut Vec<FieldError>,
) {
    if obj.is_null() {
        return;
    }
    if !node.rules.is_empty() {
        BASE.with(|base| evaluate_rules(base, node, s, obj, old, path, root, errs));
    }
    for sub in &node.all_of {
        validate(sub, s, obj, old, path, false, errs);
    }
    match obj {
        Value::Object(m) => {
            let correlatable = matches!(
                s.map_type.as_deref(),
                None | Some("granular") | Some("atomic")
            );
            for (k, v) in m {
                let (child_node, child_schema) = match (node.properties.get(k), s.properties.get(k))
                {
                    (Some(n), Some(cs)) => (n, cs),
                    (None, Some(_)) => continue,
                    _ => match (&node.additional, &s.additional_properties) {
                        (Some(n), Some(Additional::Schema(cs)))
                            if !s.properties.contains_key(k) =>
                        {
                            (n.as_ref(), cs.as_ref())
                        }
                        _ => continue,
                    },
                };
                let old_v = if correlatable {
                    old.and_then(|o| o.get(k))
                } else {
                    None
                };
                validate(
                    child_node,
                    child_schema,
                    v,
                    old_v,
                    &join(path, k),
                    false,
                    errs,
                );
            }
        }
        Value::Array(items) => {
            let (Some(item_node), Some(item_schema)) = (&node.items, &s.items) else {
                return;
            };
            let keyed = s.list_type.as_deref() == Some("map") && !s.list_map_keys.is_empty();
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let old_item = if keyed {
                    old_items.and_then(|olds| {
                        olds.iter()
                            .find(|o| s.list_map_keys.iter().all(|k| o.get(k) == item.get(k)))
                    })
                } else {
                    None
                };
                validate(
                    item_node,
                    item_schema,
                    item,
                    old_item,
                    &format!("{path}[{i}]"),
                    false,
                    errs,
                );
            }
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn evaluate_rules(
    base: &Context<'static>,
    node: &CelNode,
    s: &Structural,
    obj: &Value,
    old: Option<&Value>,
    path: &str,
    root: bool,
    errs: &mut Vec<FieldError>,
) {
    // `oldSelf` is converted only when a rule can read it (a root object with a
    // 1,000-entry status costs as much to convert as the write itself).
    let needs_old = node
        .rules
        .iter()
        .any(|r| r.uses_old_self || r.optional_old_self);
    let old = old.filter(|_| needs_old);
    let self_v = node_to_cel(obj, s, &node.self_reads, root);
    let old_v = old.map(|o| node_to_cel(o, s, &node.old_reads, root));
    let mut ctx = base.new_inner_scope();
    ctx.add_variable_from_value("self", self_v);
    if let Some(o) = &old_v {
        ctx.add_variable_from_value("oldSelf", o.clone());
    }
    let type_name = if s.int_or_string {
        String::new()
    } else {
        s.type_.clone()
    };
    for rule in &node.rules {
        if rule.uses_old_self && old_v.is_none() && !rule.optional_old_self {
            continue;
        }
        let optional_ctx;
        let eval_ctx: &Context<'_> = if rule.optional_old_self {
            let mut c = ctx.new_inner_scope();
            let opt = match &old_v {
                Some(o) => OptionalValue::of(o.clone()),
                None => OptionalValue::none(),
            };
            c.add_variable_from_value("oldSelf", CelValue::Opaque(Arc::new(opt)));
            optional_ctx = c;
            &optional_ctx
        } else {
            &ctx
        };
        let err_path = match &rule.field_path {
            Some(fp) => join(path, fp.trim_start_matches('.')),
            None => node_path(path),
        };
        match rule.program.execute(eval_ctx) {
            Ok(CelValue::Bool(true)) => {}
            Ok(CelValue::Bool(false)) => {
                let detail = rule
                    .message_expression
                    .as_ref()
                    .and_then(|m| match m.execute(eval_ctx) {
                        Ok(CelValue::String(s)) => Some(s.trim().to_owned()),
                        _ => None,
                    })
                    .filter(|m| !m.is_empty() && !m.contains('\n'))
                    .unwrap_or_else(|| {
                        if rule.message.is_empty() {
                            format!("failed rule: {}", rule.source.trim())
                        } else {
                            rule.message.clone()
                        }
                    });
                let value = if s.type_ == "object" || s.type_ == "array" {
                    None
                } else {
                    Some(obj.clone())
                };
                errs.push(match rule.reason.as_deref() {
                    Some("FieldValueForbidden") => FieldError::forbidden(&err_path, detail),
                    Some("FieldValueRequired") => FieldError::required(&err_path, detail),
                    Some("FieldValueDuplicate") => {
                        FieldError::duplicate(&err_path, value.unwrap_or(Value::Null))
                    }
                    _ => match value {
                        Some(v) => FieldError::invalid(&err_path, v, detail),
                        None => FieldError::invalid_omit_value(&err_path, detail),
                    },
                });
            }
            Ok(other) => errs.push(FieldError::invalid(
                &node_path(path),
                Value::from(type_name.clone()),
                format!(
                    "rule did not evaluate to a bool (got {}) evaluating rule: {}",
                    type_of(&other),
                    rule_error_string(rule)
                ),
            )),
            Err(e) => {
                let detail = match &e {
                    ExecutionError::NoSuchOverload => format!(
                        "'{e}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                        rule_error_string(rule)
                    ),
                    _ => format!("{e} evaluating rule: {}", rule_error_string(rule)),
                };
                errs.push(FieldError::invalid(
                    &node_path(path),
                    Value::from(type_name.clone()),
                    detail,
                ));
            }
        }
    }
}

fn type_of(v: &CelValue) -> String {
    match cel_type(This(v.clone())) {
        Ok(CelValue::String(s)) => (*s).clone(),
        _ => String::new(),
    }
}

/// `ruleErrorString`: the message if any, else the rule.
fn rule_error_string(rule: &Rule) -> String {
    if rule.message.is_empty() {
        rule.source.trim().to_owned()
    } else {
        rule.message.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names_are_escaped_like_upstream() {
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("foo-bar").as_deref(), Some("foo__dash__bar"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("my_field").as_deref(), Some("my_field"));
        assert_eq!(escape("x__y").as_deref(), Some("x__underscores__y"));
        assert_eq!(escape("1abc"), None);
        assert_eq!(escape("a b"), None);
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(
            parse_go_duration("1h30m"),
            Some(chrono::Duration::minutes(90))
        );
        assert_eq!(
            parse_go_duration("-1.5s"),
            Some(chrono::Duration::milliseconds(-1500))
        );
        assert_eq!(
            parse_go_duration("300ms"),
            Some(chrono::Duration::milliseconds(300))
        );
        assert_eq!(parse_go_duration("soon"), None);
    }

    fn reads(rule: &str, var: &str) -> Projection {
        let mut p = Projection::default();
        p.collect(Program::compile(rule).expect("compiles").expression(), var);
        p
    }

    fn paths(p: &Projection) -> Vec<String> {
        if p.whole {
            return vec![String::new()];
        }
        p.fields
            .iter()
            .flat_map(|(k, c)| {
                paths(c).into_iter().map(move |rest| {
                    if rest.is_empty() {
                        k.clone()
                    } else {
                        format!("{k}.{rest}")
                    }
                })
            })
            .collect()
    }

    #[test]
    fn a_rule_reads_the_fields_it_selects_and_the_variable_whole_otherwise() {
        assert_eq!(
            paths(&reads("self.metadata.name.size() <= 63", "self")),
            ["metadata.name"]
        );
        assert_eq!(
            paths(&reads(
                "!has(self.spec.a) || self.spec.a.all(k, k in self.spec.b) && self.status.x == 1",
                "self"
            )),
            ["spec.a", "spec.b", "status.x"]
        );
        // The whole variable: bare, indexed, a function argument, a comprehension's range.
        for rule in [
            "self == oldSelf",
            "self['spec'].a == 1",
            "size(self) > 1",
            "self.all(k, k != 'x')",
        ] {
            assert_eq!(paths(&reads(rule, "self")), [""], "{rule}");
        }
        // A field read whole and in part is read whole.
        assert_eq!(
            paths(&reads(
                "self.spec.a == 1 && self.spec != oldSelf.spec",
                "self"
            )),
            ["spec"]
        );
        assert_eq!(
            paths(&reads(
                "self.spec.a == 1 && self.spec != oldSelf.spec",
                "oldSelf"
            )),
            ["spec"]
        );
        assert!(paths(&reads("self.spec.a == 1", "oldSelf")).is_empty());
    }

    #[test]
    fn compiled_rules_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CelNode>();
    }
}
