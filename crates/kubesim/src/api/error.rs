//! The API error: everything the HTTP layer needs to answer with a
//! `metav1.Status` shaped like the real server's.
//!
//! Upstream: `k8s.io/apimachinery/pkg/api/errors/errors.go` (`NewNotFound`,
//! `NewAlreadyExists`, `NewConflict`, `NewInvalid`, `NewBadRequest`,
//! `NewResourceExpired`, …) — the message formats below are copied from there.

use serde_json::{Value, json};
use thiserror::Error;

use crate::registry::ResourceDescriptor;

/// One cause of an error (`details.causes[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason (`FieldValueInvalid`, `FieldValueRequired`, …).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Field path (`metadata.name`, `spec.replicas`).
    pub field: String,
}

/// The `details` of an error Status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// `details.name`.
    pub name: Option<String>,
    /// `details.group`.
    pub group: Option<String>,
    /// `details.kind` (upstream puts the resource or the kind here depending on the error).
    pub kind: Option<String>,
    /// `details.uid`.
    pub uid: Option<String>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds`.
    pub retry_after_seconds: Option<u32>,
}

/// An API error, convertible to a `metav1.Status` with [`ApiError::to_status`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `StatusReason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, …).
    pub reason: String,
    /// Message, formatted as upstream.
    pub message: String,
    /// `details`.
    pub details: Box<ErrorDetails>,
}

/// Result alias of the API layer.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    /// A bare error with code, reason and message.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.into(),
            message: message.into(),
            details: Box::default(),
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details.group = Some(group.to_string()).filter(|g| !g.is_empty());
        self.details.kind = Some(kind.to_string());
        self.details.name = Some(name.to_string()).filter(|n| !n.is_empty());
        self
    }

    /// 404 `NotFound`: `pods "web-0" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// 404 for a descriptor.
    pub fn not_found_in(d: &ResourceDescriptor, name: &str) -> Self {
        ApiError::not_found(&d.group, &d.plural, name)
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(d: &ResourceDescriptor, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", d.qualified_plural()),
        )
        .with_details(&d.group, &d.plural, name)
    }

    /// 409 `Conflict` with an explanation.
    pub fn conflict(d: &ResourceDescriptor, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                d.qualified_plural()
            ),
        )
        .with_details(&d.group, &d.plural, name)
    }

    /// 409 `Conflict` for a stale resourceVersion.
    pub fn stale(d: &ResourceDescriptor, name: &str) -> Self {
        ApiError::conflict(
            d,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `Invalid` listing causes: `Pod "x" is invalid: [a, b]`.
    pub fn invalid(d: &ResourceDescriptor, name: &str, causes: Vec<Cause>) -> Self {
        let qualified_kind = if d.group.is_empty() {
            d.kind.clone()
        } else {
            format!("{}.{}", d.kind, d.group)
        };
        let parts: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let msg = match parts.len() {
            0 => format!("{qualified_kind} \"{name}\" is invalid"),
            1 => format!("{qualified_kind} \"{name}\" is invalid: {}", parts[0]),
            _ => format!(
                "{qualified_kind} \"{name}\" is invalid: [{}]",
                parts.join(", ")
            ),
        };
        let mut e = ApiError::new(422, "Invalid", msg).with_details(&d.group, &d.kind, name);
        e.details.causes = causes;
        e
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 403 `Forbidden`.
    pub fn forbidden(d: &ResourceDescriptor, name: &str, why: &str) -> Self {
        ApiError::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", d.qualified_plural()),
        )
        .with_details(&d.group, &d.plural, name)
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    /// 410 `Expired` (watch or list from a compacted resourceVersion).
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type:?}"
            ),
        )
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        let m = message.into();
        let mut e = ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {m}"),
        );
        e.details.causes.push(Cause {
            reason: String::new(),
            message: m,
            field: String::new(),
        });
        e
    }

    /// 504 `Timeout`.
    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, "Timeout", message)
    }

    /// 429 `TooManyRequests`.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        ApiError::new(429, "TooManyRequests", message)
    }

    /// Adds a cause.
    pub fn with_cause(mut self, reason: &str, message: &str, field: &str) -> Self {
        self.details.causes.push(Cause {
            reason: reason.into(),
            message: message.into(),
            field: field.into(),
        });
        self
    }

    /// The `metav1.Status` body (`kind: Status, apiVersion: v1, status: Failure`).
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        let d = &self.details;
        if let Some(n) = &d.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &d.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &d.kind {
            details.insert("kind".into(), json!(k));
        }
        if let Some(u) = &d.uid {
            details.insert("uid".into(), json!(u));
        }
        if !d.causes.is_empty() {
            let causes: Vec<Value> = d
                .causes
                .iter()
                .map(|c| {
                    let mut m = serde_json::Map::new();
                    if !c.reason.is_empty() {
                        m.insert("reason".into(), json!(c.reason));
                    }
                    if !c.message.is_empty() {
                        m.insert("message".into(), json!(c.message));
                    }
                    if !c.field.is_empty() {
                        m.insert("field".into(), json!(c.field));
                    }
                    Value::Object(m)
                })
                .collect();
            details.insert("causes".into(), json!(causes));
        }
        if let Some(r) = d.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin_resources;

    #[test]
    fn not_found_status_is_shaped_like_the_real_server() {
        let s = ApiError::not_found("apps", "statefulsets", "web").to_status();
        assert_eq!(
            s,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"statefulsets.apps \"web\" not found","reason":"NotFound",
                "details":{"name":"web","group":"apps","kind":"statefulsets"},"code":404})
        );
    }

    #[test]
    fn invalid_lists_each_cause_in_the_message() {
        let d = builtin_resources()
            .into_iter()
            .find(|d| d.plural == "statefulsets")
            .unwrap();
        let e = ApiError::invalid(
            &d,
            "web",
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: -1: must be greater than or equal to 0".into(),
                field: "spec.replicas".into(),
            }],
        );
        assert_eq!(
            e.message,
            "StatefulSet.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(e.to_status()["details"]["kind"], "StatefulSet");
    }
}
