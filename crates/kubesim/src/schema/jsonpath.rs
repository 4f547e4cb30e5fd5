//! The JSONPath subset used by CRD `additionalPrinterColumns`.
//!
//! Upstream wraps a column's `jsonPath` in `{…}` and evaluates it with
//! `k8s.io/client-go/util/jsonpath` with missing keys allowed
//! (`pkg/registry/customresource/tableconvertor/tableconvertor.go`).
//! Supported here: `.field`, `['field']`/`["field"]`, `[n]` (negative counts
//! from the end), `[start:end]`, `[*]`, `.*`, `..field` (recursive descent)
//! and filters `[?(@.a.b == "x")]` with `==`, `!=`, `<`, `<=`, `>`, `>=` or
//! bare existence `[?(@.a)]`. Simplification: no unions (`[a,b]`), no
//! `range`/`end` templates, and filter operands are `@…` paths or literals.

use serde_json::Value;

use super::SchemaError;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Wildcard,
    Recursive(Option<String>),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(Vec<Step>),
    Literal(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Operand,
    op: Option<(String, Operand)>,
}

/// A parsed JSONPath expression.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
    source: String,
}

impl JsonPath {
    /// Parses `expr` (with or without the surrounding `{}`).
    pub fn parse(expr: &str) -> Result<Self, SchemaError> {
        let src = expr.trim();
        let inner = src
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(src)
            .trim();
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        let err = |reason: &str| SchemaError::InvalidJsonPath {
            path: expr.to_owned(),
            reason: reason.to_owned(),
        };
        let steps = parse_steps(inner).map_err(|r| err(&r))?;
        Ok(Self {
            steps,
            source: expr.to_owned(),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// All values the path selects in `data` (missing keys select nothing).
    pub fn find<'a>(&self, data: &'a Value) -> Vec<&'a Value> {
        eval(&self.steps, data)
    }
}

fn parse_steps(s: &str) -> Result<Vec<Step>, String> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut steps = Vec::new();
    while i < b.len() {
        match b[i] {
            '.' if b.get(i + 1) == Some(&'.') => {
                i += 2;
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let name: String = b[start..i].iter().collect();
                steps.push(Step::Recursive(if name.is_empty() {
                    None
                } else {
                    Some(name)
                }));
            }
            '.' => {
                i += 1;
                if b.get(i) == Some(&'*') {
                    i += 1;
                    steps.push(Step::Wildcard);
                    continue;
                }
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                if start == i {
                    if i >= b.len() {
                        break; // a lone trailing "." selects the current node
                    }
                    return Err(format!("unexpected character {:?} after '.'", b[i]));
                }
                steps.push(Step::Field(b[start..i].iter().collect()));
            }
            '[' => {
                let end = matching_bracket(&b, i).ok_or("unterminated '['")?;
                let body: String = b[i + 1..end].iter().collect();
                steps.push(parse_bracket(body.trim())?);
                i = end + 1;
            }
            c if c.is_whitespace() => i += 1,
            c if is_ident(c) && steps.is_empty() => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                steps.push(Step::Field(b[start..i].iter().collect()));
            }
            c => return Err(format!("unexpected character {c:?}")),
        }
    }
    Ok(steps)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '/'
}

fn matching_bracket(b: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (j, &c) in b.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('\'') && s.ends_with('\'')) || (s.starts_with('"') && s.ends_with('"')))
    {
        Some(s[1..s.len() - 1].to_owned())
    } else {
        None
    }
}

fn parse_bracket(body: &str) -> Result<Step, String> {
    if body == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(f) = body.strip_prefix('?') {
        let f = f.trim();
        let f = f
            .strip_prefix('(')
            .and_then(|f| f.strip_suffix(')'))
            .ok_or("filter must be ?(...)")?;
        return Ok(Step::Filter(Box::new(parse_filter(f.trim())?)));
    }
    if let Some(name) = unquote(body) {
        return Ok(Step::Field(name));
    }
    if let Some((a, b)) = body.split_once(':') {
        let num = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| format!("invalid slice bound {s:?}"))
            }
        };
        let b = b.split(':').next().unwrap_or_default();
        return Ok(Step::Slice(num(a)?, num(b)?));
    }
    body.parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("invalid array index {body:?}"))
}

fn parse_operand(s: &str) -> Result<Operand, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('@') {
        return Ok(Operand::Path(parse_steps(rest)?));
    }
    if let Some(q) = unquote(s) {
        return Ok(Operand::Literal(Value::String(q)));
    }
    serde_json::from_str::<Value>(s)
        .map(Operand::Literal)
        .map_err(|_| format!("invalid filter operand {s:?}"))
}

fn parse_filter(f: &str) -> Result<Filter, String> {
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some((l, r)) = split_outside_quotes(f, op) {
            return Ok(Filter {
                left: parse_operand(l)?,
                op: Some((op.to_owned(), parse_operand(r)?)),
            });
        }
    }
    Ok(Filter {
        left: parse_operand(f)?,
        op: None,
    })
}

fn split_outside_quotes<'a>(s: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if s[i..].starts_with(op) => return Some((&s[..i], &s[i + op.len()..])),
            None => {}
        }
    }
    None
}

fn eval<'a>(steps: &[Step], data: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![data];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            apply(step, v, &mut next);
        }
        cur = next;
    }
    cur
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => {
            if let Some(x) = v.get(name) {
                out.push(x);
            }
        }
        Step::Wildcard => match v {
            Value::Object(m) => out.extend(m.values()),
            Value::Array(a) => out.extend(a.iter()),
            _ => {}
        },
        Step::Recursive(name) => descend(v, name.as_deref(), out),
        Step::Index(i) => {
            if let Value::Array(a) = v {
                let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                    out.push(x);
                }
            }
        }
        Step::Slice(start, end) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = norm(start.unwrap_or(0));
                let e = norm(end.unwrap_or(len));
                if s < e {
                    out.extend(a[s as usize..e as usize].iter());
                }
            }
        }
        Step::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(m) => m.values().collect(),
                _ => vec![],
            };
            out.extend(items.into_iter().filter(|item| filter_matches(f, item)));
        }
    }
}

fn descend<'a>(v: &'a Value, name: Option<&str>, out: &mut Vec<&'a Value>) {
    match name {
        None => out.push(v),
        Some(n) => {
            if let Some(x) = v.get(n) {
                out.push(x);
            }
        }
    }
    match v {
        Value::Object(m) => m.values().for_each(|c| descend(c, name, out)),
        Value::Array(a) => a.iter().for_each(|c| descend(c, name, out)),
        _ => {}
    }
}

fn operand_value<'a>(o: &'a Operand, item: &'a Value) -> Option<&'a Value> {
    match o {
        Operand::Literal(l) => Some(l),
        Operand::Path(p) => eval(p, item).into_iter().next(),
    }
}

fn filter_matches(f: &Filter, item: &Value) -> bool {
    let Some(left) = operand_value(&f.left, item) else {
        return false;
    };
    let Some((op, right)) = &f.op else {
        return true;
    };
    let Some(right) = operand_value(right, item) else {
        return false;
    };
    let ord = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(std::cmp::Ordering::Equal),
        _ => None,
    };
    match op.as_str() {
        "==" => ord == Some(std::cmp::Ordering::Equal),
        "!=" => ord != Some(std::cmp::Ordering::Equal),
        "<" => ord == Some(std::cmp::Ordering::Less),
        "<=" => matches!(
            ord,
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        ),
        ">" => ord == Some(std::cmp::Ordering::Greater),
        ">=" => matches!(
            ord,
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printer_column_paths_select_like_client_go_jsonpath() {
        let obj = json!({
            "metadata": {"name": "r", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "items": [{"n": 1}, {"n": 2}, {"n": 3}]},
            "status": {"conditions": [
                {"type": "Progressing", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "Done"}]}
        });
        let cases: Vec<(&str, Vec<Value>)> = vec![
            (".spec.replicas", vec![json!(3)]),
            ("{.spec.replicas}", vec![json!(3)]),
            (
                ".status.conditions[?(@.type==\"Ready\")].status",
                vec![json!("True")],
            ),
            (
                ".status.conditions[?(@.type=='Ready')].reason",
                vec![json!("Done")],
            ),
            (
                ".status.conditions[?(@.type!=\"Ready\")].type",
                vec![json!("Progressing")],
            ),
            (".spec.items[-1].n", vec![json!(3)]),
            (".spec.items[0:2].n", vec![json!(1), json!(2)]),
            (".spec.items[*].n", vec![json!(1), json!(2), json!(3)]),
            (".spec.items[?(@.n > 1)].n", vec![json!(2), json!(3)]),
            (
                ".metadata.labels['app.kubernetes.io/name']",
                vec![json!("web")],
            ),
            ("..n", vec![json!(1), json!(2), json!(3)]),
            (".spec.missing.deeper", vec![]),
        ];
        for (path, want) in cases {
            let p = JsonPath::parse(path).expect("parses");
            let got: Vec<Value> = p.find(&obj).into_iter().cloned().collect();
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn malformed_paths_are_rejected() {
        assert!(JsonPath::parse(".spec[").is_err());
        assert!(JsonPath::parse(".spec[abc]").is_err());
    }
}
