//! The one error type of the patch machinery, carrying what the HTTP layer
//! needs to answer like the real API server (code, reason, message, causes).

use serde_json::{Map, Value, json};

/// One `details.causes[]` entry of a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCause {
    /// `reason`, e.g. `FieldManagerConflict`.
    pub reason: String,
    /// `message`, e.g. `conflict with "kubectl"`.
    pub message: String,
    /// `field`, e.g. `.spec.replicas`.
    pub field: String,
}

/// Why a patch or apply could not be performed. Each variant maps to the
/// status code and reason upstream answers with
/// (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 400 BadRequest: the body could not be decoded (malformed JSON/YAML,
    /// wrong shape, bad directive format, bad apply configuration).
    #[error("failed to decode patch: {0}")]
    BadRequest(String),
    /// 415 UnsupportedMediaType: the patch type is unknown or not allowed for
    /// this resource (strategic merge on custom resources).
    #[error("failed to accept patch type: {message}")]
    UnsupportedMediaType {
        /// Full message, listing the accepted media types.
        message: String,
    },
    /// 422 Invalid with upstream's generic message: the patch was well formed
    /// but could not be applied (JSON-patch `test` failure, missing path,
    /// strategic-merge retainKeys mismatch, list of lists).
    #[error("failed to apply patch: {detail}")]
    Unprocessable {
        /// What went wrong, for logs; upstream does not put this in the Status.
        detail: String,
    },
    /// 422 Invalid naming a field: the patched result is not a valid object
    /// (upstream `errors.NewInvalid` with a `patch` field error).
    #[error("failed to decode patched object: {error}")]
    InvalidResult {
        /// The patched document (upstream prints it as the invalid value).
        value: String,
        /// Why it is not a valid object.
        error: String,
    },
    /// 422 Invalid on the request options (e.g. `PatchOptions` without a
    /// `fieldManager` for apply).
    #[error("failed to validate {kind}: {causes:?}")]
    InvalidOptions {
        /// Qualified kind of the options, e.g. `PatchOptions.meta.k8s.io`.
        kind: &'static str,
        /// One cause per invalid field.
        causes: Vec<StatusCause>,
    },
    /// 413 RequestEntityTooLarge: a JSON patch with more than 10000 operations.
    #[error("failed to apply patch: too many operations ({0})")]
    TooManyOperations(usize),
    /// 409 Conflict: server-side apply conflicts with other field managers.
    #[error("failed to apply: {message}")]
    ApplyConflict {
        /// `Apply failed with N conflict(s): …`
        message: String,
        /// One cause per conflicting field.
        causes: Vec<StatusCause>,
    },
    /// 500 with no reason: errors upstream does not convert to a Status
    /// (e.g. a strategic-merge list item missing its merge key).
    #[error("failed to patch: {0}")]
    Internal(String),
}

/// Maximum number of operations in one JSON patch (upstream `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

impl PatchError {
    /// HTTP status code of the answer.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::UnsupportedMediaType { .. } => 415,
            PatchError::Unprocessable { .. }
            | PatchError::InvalidResult { .. }
            | PatchError::InvalidOptions { .. } => 422,
            PatchError::TooManyOperations(_) => 413,
            PatchError::ApplyConflict { .. } => 409,
            PatchError::Internal(_) => 500,
        }
    }

    /// `metav1.Status` `reason` (empty for upstream's `StatusReasonUnknown`).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            PatchError::Unprocessable { .. }
            | PatchError::InvalidResult { .. }
            | PatchError::InvalidOptions { .. } => "Invalid",
            PatchError::TooManyOperations(_) => "RequestEntityTooLarge",
            PatchError::ApplyConflict { .. } => "Conflict",
            PatchError::Internal(_) => "",
        }
    }

    /// `metav1.Status` `message`, worded as upstream words it.
    pub fn message(&self) -> String {
        match self {
            PatchError::BadRequest(m) | PatchError::Internal(m) => m.clone(),
            PatchError::UnsupportedMediaType { message } => message.clone(),
            // errors.NewGenericServerResponse(422, …) drops the server message.
            PatchError::Unprocessable { .. } => {
                "the server rejected our request due to an error in our request".to_owned()
            }
            PatchError::InvalidResult { .. } => {
                format!(" \"\" is invalid: {}", self.invalid_cause_message())
            }
            PatchError::InvalidOptions { kind, causes } => {
                let parts: Vec<String> = causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect();
                if parts.len() == 1 {
                    format!("{kind} \"\" is invalid: {}", parts[0])
                } else {
                    format!("{kind} \"\" is invalid: [{}]", parts.join(", "))
                }
            }
            PatchError::TooManyOperations(n) => format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {n}"
            ),
            PatchError::ApplyConflict { message, .. } => message.clone(),
        }
    }

    fn invalid_cause_message(&self) -> String {
        match self {
            PatchError::InvalidResult { value, error } => {
                let quoted = serde_json::to_string(value).unwrap_or_default();
                format!("patch: Invalid value: {quoted}: {error}")
            }
            _ => String::new(),
        }
    }

    /// `details.causes` of the Status.
    pub fn causes(&self) -> Vec<StatusCause> {
        match self {
            PatchError::ApplyConflict { causes, .. }
            | PatchError::InvalidOptions { causes, .. } => causes.clone(),
            PatchError::InvalidResult { .. } => {
                let m = self.invalid_cause_message();
                vec![StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: m.strip_prefix("patch: ").unwrap_or(&m).to_owned(),
                    field: "patch".into(),
                }]
            }
            _ => Vec::new(),
        }
    }

    /// The whole `metav1.Status` body (`kind: Status, apiVersion: v1, status: Failure`).
    pub fn to_status(&self) -> Value {
        let mut status = Map::new();
        status.insert("kind".into(), json!("Status"));
        status.insert("apiVersion".into(), json!("v1"));
        status.insert("metadata".into(), json!({}));
        status.insert("status".into(), json!("Failure"));
        status.insert("message".into(), json!(self.message()));
        if !self.reason().is_empty() {
            status.insert("reason".into(), json!(self.reason()));
        }
        let causes = self.causes();
        if !causes.is_empty() {
            let causes: Vec<Value> = causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            let mut details = Map::new();
            if let PatchError::InvalidOptions { kind, .. } = self {
                // `PatchOptions.meta.k8s.io` -> kind `PatchOptions`, group `meta.k8s.io`.
                let (k, g) = kind.split_once('.').unwrap_or((kind, ""));
                details.insert("group".into(), json!(g));
                details.insert("kind".into(), json!(k));
            }
            details.insert("causes".into(), Value::Array(causes));
            status.insert("details".into(), Value::Object(details));
        } else if matches!(self, PatchError::Unprocessable { .. }) {
            status.insert("details".into(), json!({}));
        }
        status.insert("code".into(), json!(self.code()));
        Value::Object(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_status_has_causes_and_code_409() {
        let e = PatchError::ApplyConflict {
            message: "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
                .into(),
            causes: vec![StatusCause {
                reason: "FieldManagerConflict".into(),
                message: "conflict with \"kubectl\"".into(),
                field: ".spec.replicas".into(),
            }],
        };
        let s = e.to_status();
        assert_eq!(s["code"], 409);
        assert_eq!(s["reason"], "Conflict");
        assert_eq!(s["details"]["causes"][0]["field"], ".spec.replicas");
    }

    #[test]
    fn invalid_options_name_the_options_kind_and_group() {
        let e = PatchError::InvalidOptions {
            kind: "PatchOptions.meta.k8s.io",
            causes: vec![StatusCause {
                reason: "FieldValueRequired".into(),
                message: "Required value: is required for apply patch".into(),
                field: "fieldManager".into(),
            }],
        };
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["kind"], "PatchOptions");
        assert_eq!(s["details"]["group"], "meta.k8s.io");
        assert_eq!(s["details"]["causes"][0]["field"], "fieldManager");
    }

    #[test]
    fn internal_errors_have_no_reason_like_upstream_unknown() {
        let s = PatchError::Internal("boom".into()).to_status();
        assert_eq!(s["code"], 500);
        assert!(s.get("reason").is_none());
        assert_eq!(s["message"], "boom");
    }
}
