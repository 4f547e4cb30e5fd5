//! Label and field selectors: parsing of the query-string syntax and matching.
//!
//! Label selectors follow `k8s.io/apimachinery/pkg/labels/selector.go`
//! (`=`, `==`, `!=`, `in`, `notin`, exists, `!` not-exists, comma = AND).
//! Field selectors follow `k8s.io/apimachinery/pkg/fields/selector.go`
//! (`=`, `==`, `!=`, comma = AND) over the selectable fields of a kind.

use thiserror::Error;

use crate::api::validation::{valid_label_value, valid_qualified_name};

/// A selector that could not be parsed (the server answers 400 BadRequest).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SelectorError {
    /// The label selector is malformed.
    #[error("unable to parse requirement: {0}")]
    Label(String),
    /// The field selector is malformed.
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
    /// The field is not selectable for this kind.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also matches when the key is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also matches when the key is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector (AND of requirements). Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, all of which must hold.
    pub requirements: Vec<LabelRequirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, SelectorError> {
    let mut out = vec![];
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SelectorError::Label(format!("unexpected ')' in {s:?}")));
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError::Label(format!("unclosed '(' in {s:?}")));
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_set(key: &str, rest: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            SelectorError::Label(format!("found '{rest}', expected: '(' for key {key}"))
        })?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &vals {
        if !valid_label_value(v) {
            return Err(SelectorError::Label(format!("invalid label value: {v:?}")));
        }
    }
    Ok(vals)
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter syntax.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let s = s.trim();
        let mut reqs = vec![];
        if s.is_empty() {
            return Ok(LabelSelector::default());
        }
        for part in split_top(s)? {
            let p = part.trim();
            if p.is_empty() {
                return Err(SelectorError::Label(format!(
                    "found '', expected: identifier in {s:?}"
                )));
            }
            let key_check = |k: &str| -> Result<String, SelectorError> {
                let k = k.trim();
                if valid_qualified_name(k) {
                    Ok(k.to_string())
                } else {
                    Err(SelectorError::Label(format!("invalid label key {k:?}")))
                }
            };
            let value_check = |v: &str| -> Result<String, SelectorError> {
                let v = v.trim();
                if valid_label_value(v) {
                    Ok(v.to_string())
                } else {
                    Err(SelectorError::Label(format!("invalid label value: {v:?}")))
                }
            };
            if let Some(k) = p.strip_prefix('!') {
                reqs.push(LabelRequirement::DoesNotExist(key_check(k)?));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push(LabelRequirement::NotEquals(key_check(k)?, value_check(v)?));
            } else if let Some((k, v)) = p.split_once("==") {
                reqs.push(LabelRequirement::Equals(key_check(k)?, value_check(v)?));
            } else if let Some((k, v)) = p.split_once('=') {
                reqs.push(LabelRequirement::Equals(key_check(k)?, value_check(v)?));
            } else if let Some(idx) = p.find(" notin ").or_else(|| p.find(" notin(")) {
                let k = key_check(&p[..idx])?;
                let vals = parse_set(&k, &p[idx + 6..])?;
                reqs.push(LabelRequirement::NotIn(k, vals));
            } else if let Some(idx) = p.find(" in ").or_else(|| p.find(" in(")) {
                let k = key_check(&p[..idx])?;
                let vals = parse_set(&k, &p[idx + 3..])?;
                reqs.push(LabelRequirement::In(k, vals));
            } else {
                reqs.push(LabelRequirement::Exists(key_check(p)?));
            }
        }
        Ok(LabelSelector { requirements: reqs })
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON value
    /// (`matchLabels` + `matchExpressions`). Invalid operators yield an error.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, SelectorError> {
        let mut reqs = vec![];
        if let Some(m) = v["matchLabels"].as_object() {
            for (k, val) in m {
                reqs.push(LabelRequirement::Equals(
                    k.clone(),
                    val.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        for e in v["matchExpressions"].as_array().into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let vals: Vec<String> = e["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            reqs.push(match e["operator"].as_str().unwrap_or_default() {
                "In" => LabelRequirement::In(key, vals),
                "NotIn" => LabelRequirement::NotIn(key, vals),
                "Exists" => LabelRequirement::Exists(key),
                "DoesNotExist" => LabelRequirement::DoesNotExist(key),
                op => {
                    return Err(SelectorError::Label(format!(
                        "{op:?} is not a valid label selector operator"
                    )));
                }
            });
        }
        Ok(LabelSelector { requirements: reqs })
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Matches against a label lookup function.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Matches a list of (key, value) pairs.
    pub fn matches_pairs(&self, labels: &[(Box<str>, Box<str>)]) -> bool {
        self.matches_with(|k| labels.iter().find(|(lk, _)| &**lk == k).map(|(_, v)| &**v))
    }

    /// Renders the selector back to query syntax.
    pub fn to_query(&self) -> String {
        self.requirements
            .iter()
            .map(|r| match r {
                LabelRequirement::Equals(k, v) => format!("{k}={v}"),
                LabelRequirement::NotEquals(k, v) => format!("{k}!={v}"),
                LabelRequirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                LabelRequirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                LabelRequirement::Exists(k) => k.clone(),
                LabelRequirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One requirement of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path (`spec.nodeName`).
    pub field: String,
    /// Expected value.
    pub value: String,
    /// `!=` when true.
    pub negate: bool,
}

/// A parsed field selector (AND of requirements).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The requirements, all of which must hold.
    pub requirements: Vec<FieldRequirement>,
}

fn unescape_field_value(v: &str) -> String {
    // fields.UnescapeValue: `\,` `\=` `\\`
    let mut out = String::with_capacity(v.len());
    let mut esc = false;
    for c in v.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter syntax.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = vec![];
        if s.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for part in s.split(',') {
            let p = part.trim();
            let (field, value, negate) = if let Some((f, v)) = p.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = p.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = p.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError::Field(s.to_string(), p.to_string()));
            };
            reqs.push(FieldRequirement {
                field: field.trim().to_string(),
                value: unescape_field_value(value.trim()),
                negate,
            });
        }
        Ok(FieldSelector { requirements: reqs })
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Checks every field is selectable (`metadata.name`, `metadata.namespace`
    /// or one of `extra`).
    pub fn check_supported(&self, extra: &[String]) -> Result<(), SelectorError> {
        for r in &self.requirements {
            if r.field != "metadata.name"
                && r.field != "metadata.namespace"
                && !extra.contains(&r.field)
            {
                return Err(SelectorError::UnsupportedField(r.field.clone()));
            }
        }
        Ok(())
    }

    /// Matches against a field lookup function (missing fields read as "").
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| {
            let v = get(&r.field).unwrap_or("");
            (v == r.value) != r.negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(Box<str>, Box<str>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn label_selector_supports_every_operator() {
        let l = labels(&[("app", "web"), ("tier", "db")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=x", true),
            ("missing!=x", true),
            ("app in (web,api)", true),
            ("app in (api)", false),
            ("app notin (api)", true),
            ("missing notin (api)", true),
            ("app notin (web)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier in (db, cache)", true),
            ("app=web,tier=x", false),
            ("", true),
        ] {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches_pairs(&l), want, "{sel}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        for bad in ["app=we b", "in (", "a in (b", "=x", "a,,b", "a in b"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    /// Upstream `labels.Parse` checks keys with `IsQualifiedName`: the prefix must be a DNS-1123
    /// subdomain, as for the keys of an object's labels.
    #[test]
    fn selector_keys_follow_the_object_label_key_rules() {
        assert!(LabelSelector::parse("example.com/app=web").is_ok());
        for bad in [
            "a..b/app=web",
            "-x.example/app=web",
            "example.com./app=web",
            "/app=web",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selector_matches_and_negates() {
        let f = FieldSelector::parse("metadata.name=web-0,status.phase!=Running").unwrap();
        let get = |k: &str| match k {
            "metadata.name" => Some("web-0"),
            "status.phase" => Some("Pending"),
            _ => None,
        };
        assert!(f.matches_with(get));
        assert!(f.check_supported(&["status.phase".into()]).is_ok());
        assert!(f.check_supported(&[]).is_err());
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
