//! Field-level validation errors worded exactly as the API server words them,
//! and the 422 `Invalid` `Status` that aggregates them.
//!
//! Mirrors `k8s.io/apimachinery/pkg/util/validation/field/errors.go`
//! (`Error.ErrorBody`, `ErrorType.String`) and `NewInvalid` in
//! `k8s.io/apimachinery/pkg/api/errors/errors.go` (v0.35).

use std::fmt;

use serde_json::{Value, json};

/// The machine-readable type of a field error (`metav1.CauseType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// `FieldValueNotFound`.
    NotFound,
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueDuplicate`.
    Duplicate,
    /// `FieldValueInvalid`.
    Invalid,
    /// `FieldValueNotSupported`.
    NotSupported,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueTooLong`.
    TooLong,
    /// `FieldValueTooMany`.
    TooMany,
    /// `InternalError`.
    Internal,
    /// `FieldValueTypeInvalid`.
    TypeInvalid,
}

impl ErrorType {
    /// The `reason` string of a `StatusCause` (`FieldValueInvalid`, …).
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human wording that starts the error body (`Invalid value`, …).
    pub fn label(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }
}

/// The offending value of a field error, as upstream prints it.
#[derive(Clone, Debug, PartialEq)]
pub enum BadValue {
    /// Printed without a value (`field.OmitValueType`).
    Omit,
    /// A JSON value: strings are quoted, numbers and booleans printed bare,
    /// everything else JSON-encoded.
    Json(Value),
}

/// One field error: a `StatusCause` of a 422 `Invalid` response.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Machine-readable type.
    pub error_type: ErrorType,
    /// Field path such as `spec.items[0].name` (`<nil>` for object-level).
    pub field: String,
    /// The offending value.
    pub bad_value: BadValue,
    /// Free-text detail appended after the value.
    pub detail: String,
}

impl FieldError {
    fn new(error_type: ErrorType, field: &str, bad_value: BadValue, detail: String) -> Self {
        Self {
            error_type,
            field: field.to_owned(),
            bad_value,
            detail,
        }
    }

    /// `field.Invalid`.
    pub fn invalid(field: &str, value: Value, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::Invalid,
            field,
            BadValue::Json(value),
            detail.into(),
        )
    }

    /// `field.Invalid` with the value omitted (objects and arrays in CEL errors).
    pub fn invalid_omit_value(field: &str, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, BadValue::Omit, detail.into())
    }

    /// `field.TypeInvalid`.
    pub fn type_invalid(field: &str, value: Value, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::TypeInvalid,
            field,
            BadValue::Json(value),
            detail.into(),
        )
    }

    /// `field.Required`.
    pub fn required(field: &str, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::Required,
            field,
            BadValue::Json(Value::from("")),
            detail.into(),
        )
    }

    /// `field.Forbidden`.
    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::Forbidden,
            field,
            BadValue::Json(Value::from("")),
            detail.into(),
        )
    }

    /// `field.Duplicate`.
    pub fn duplicate(field: &str, value: Value) -> Self {
        Self::new(
            ErrorType::Duplicate,
            field,
            BadValue::Json(value),
            String::new(),
        )
    }

    /// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: Value, valid: &[String]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            ErrorType::NotSupported,
            field,
            BadValue::Json(value),
            detail,
        )
    }

    /// `field.TooLong`: `Too long: may not be more than N bytes`.
    pub fn too_long(field: &str, max: i64) -> Self {
        let detail = if max >= 0 {
            format!(
                "may not be more than {max} {}",
                if max == 1 { "byte" } else { "bytes" }
            )
        } else {
            "value is too long".to_owned()
        };
        Self::new(
            ErrorType::TooLong,
            field,
            BadValue::Json(Value::from("<value omitted>")),
            detail,
        )
    }

    /// `field.TooMany`: `Too many: 5: must have at most 3 items`.
    pub fn too_many(field: &str, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!(
                "must have at most {max} {}",
                if max == 1 { "item" } else { "items" }
            )
        } else {
            "has too many items".to_owned()
        };
        let bad = if actual >= 0 {
            BadValue::Json(Value::from(actual))
        } else {
            BadValue::Omit
        };
        Self::new(ErrorType::TooMany, field, bad, detail)
    }

    /// The message without the field (`ErrorBody`); this is a cause's `message`.
    pub fn body(&self) -> String {
        let mut s = match self.error_type {
            ErrorType::Required
            | ErrorType::Forbidden
            | ErrorType::TooLong
            | ErrorType::Internal => self.error_type.label().to_owned(),
            _ => match &self.bad_value {
                BadValue::Omit => self.error_type.label().to_owned(),
                BadValue::Json(v) => format!("{}: {}", self.error_type.label(), go_value(v)),
            },
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The `StatusCause` object (`{"reason","message","field"}`).
    pub fn to_cause(&self) -> Value {
        json!({"reason": self.error_type.reason(), "message": self.body(), "field": self.field})
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Formats a value as `field.Error` does: `%q` for strings, `%v` for numbers
/// and booleans, JSON for the rest.
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_number(n),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Go's `%v` of a JSON number (int64 bare, float64 shortest with `e+XX`
/// exponents outside `[1e-4, 1e21)`).
pub(crate) fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_float(n.as_f64().unwrap_or(f64::NAN))
}

/// Go's `%v` of a float64.
pub(crate) fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f.is_infinite() {
            if f > 0.0 {
                "+Inf".into()
            } else {
                "-Inf".into()
            }
        } else {
            "0".into()
        };
    }
    let exp = f.abs().log10().floor() as i32;
    if !(-4..21).contains(&exp) {
        // Rust prints `1e21` / `1.5e-5`; Go prints `1e+21` / `1.5e-05`.
        let s = format!("{f:e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        let digits = if digits.len() < 2 {
            format!("0{digits}")
        } else {
            digits.to_owned()
        };
        return format!("{mantissa}e{sign}{digits}");
    }
    format!("{f}")
}

/// Go's `strconv.Quote` for the printable strings the API deals in.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The message of a 422 `Invalid` Status:
/// `Kind.group "name" is invalid: <err>` or `…: [<err>, <err>]`, duplicates removed.
pub fn invalid_message(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> String {
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let msg = e.to_string();
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.len() {
        0 => format!("{qualified} {} is invalid", go_quote(name)),
        1 => format!("{qualified} {} is invalid: {}", go_quote(name), seen[0]),
        _ => format!(
            "{qualified} {} is invalid: [{}]",
            go_quote(name),
            seen.join(", ")
        ),
    }
}

/// The complete 422 `Invalid` `Status` object for `errors` on object `name`
/// of `kind` in API group `group` (`""` for the core group).
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Value {
    let causes: Vec<Value> = errors.iter().map(FieldError::to_cause).collect();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": invalid_message(kind, group, name, errors),
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind, "causes": causes},
        "code": 422,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_worded_as_upstream() {
        let cases = [
            (
                FieldError::invalid(
                    "spec.percent",
                    json!(150),
                    "spec.percent in body should be less than or equal to 100",
                ),
                "spec.percent: Invalid value: 150: spec.percent in body should be less than or equal to 100",
            ),
            (
                FieldError::not_supported(
                    "spec.strategy",
                    json!("Foo"),
                    &["Partitioned".into(), "OnDelete".into()],
                ),
                "spec.strategy: Unsupported value: \"Foo\": supported values: \"Partitioned\", \"OnDelete\"",
            ),
            (
                FieldError::required("spec.target", ""),
                "spec.target: Required value",
            ),
            (
                FieldError::too_long("spec.name", 5),
                "spec.name: Too long: may not be more than 5 bytes",
            ),
            (
                FieldError::too_long("spec.name", 1),
                "spec.name: Too long: may not be more than 1 byte",
            ),
            (
                FieldError::too_many("spec.items", 4, 3),
                "spec.items: Too many: 4: must have at most 3 items",
            ),
            (
                FieldError::duplicate("spec.tags[2]", json!("a")),
                "spec.tags[2]: Duplicate value: \"a\"",
            ),
            (
                FieldError::duplicate("spec.ports[1]", json!({"name": "a"})),
                "spec.ports[1]: Duplicate value: {\"name\":\"a\"}",
            ),
            (
                FieldError::invalid_omit_value("spec", "must be sane"),
                "spec: Invalid value: must be sane",
            ),
            (
                FieldError::forbidden("spec.x", "nope"),
                "spec.x: Forbidden: nope",
            ),
            (
                FieldError::invalid("spec.ratio", json!(1.5), "x"),
                "spec.ratio: Invalid value: 1.5: x",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn go_float_formatting_matches_fmt_v() {
        assert_eq!(go_float(100.0), "100");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(-2.25), "-2.25");
    }

    #[test]
    fn invalid_status_aggregates_causes_like_new_invalid() {
        let errs = vec![
            FieldError::invalid(
                "spec.percent",
                json!(150),
                "spec.percent in body should be less than or equal to 100",
            ),
            FieldError::required("spec.target", ""),
        ];
        let st = invalid_status("StatefulsetRollout", "sroll.io", "x", &errs);
        assert_eq!(
            st["message"],
            "StatefulsetRollout.sroll.io \"x\" is invalid: [spec.percent: Invalid value: 150: spec.percent in body should be less than or equal to 100, spec.target: Required value]"
        );
        assert_eq!(st["code"], 422);
        assert_eq!(st["reason"], "Invalid");
        assert_eq!(
            st["details"]["causes"][1],
            json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.target"})
        );
        let one = invalid_message("Pod", "", "p", &errs[1..]);
        assert_eq!(one, "Pod \"p\" is invalid: spec.target: Required value");
    }
}
