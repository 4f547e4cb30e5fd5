//! Patches and server-side apply: pure functions over `serde_json::Value`
//! that the API layer calls from its PATCH / PUT / POST pipeline.
//!
//! # API
//!
//! * [`PatchType::from_content_type`] maps the request `Content-Type` to a
//!   patch type (415 for anything else; [`PatchType::check_allowed`] rejects
//!   strategic merge for custom resources with 415 as upstream does).
//! * [`merge_patch`] (RFC 7386) and [`json_patch`] (RFC 6902) patch a
//!   document in place.
//! * [`strategic_merge_patch`] applies a strategic merge patch to a built-in
//!   kind, using patch-merge keys and strategies from the upstream OpenAPI
//!   document ([`TypeRef`]), with the `$patch`, `$retainKeys`,
//!   `$deleteFromPrimitiveList/…` and `$setElementOrder/…` directives.
//! * [`apply`] performs server-side apply (`application/apply-patch+yaml`,
//!   body decoded with [`decode_apply_body`]): merges the applied
//!   configuration into the live object (or creates it), removes fields the
//!   same manager applied before and no longer applies, detects conflicts with
//!   other managers (409 unless `force`), and writes `metadata.managedFields`.
//! * [`update_managed_fields`] records an `Update` operation (POST / PUT /
//!   non-apply PATCH) in `metadata.managedFields`; the manager name comes from
//!   `?fieldManager=` or [`manager_from_user_agent`].
//!
//! Every error is a [`PatchError`] carrying the HTTP code, reason, message
//! and causes of the real server's `metav1.Status`
//! ([`PatchError::to_status`]).
//!
//! * [`patch_object`] does a whole PATCH request (options validation, the
//!   patch or apply, field management) in one call; [`validate_patch_options`]
//!   is its first step.
//!
//! # Typical pipeline (PATCH) spelled out
//!
//! ```text
//! let ty = PatchType::from_content_type(content_type)?;   // 415
//! ty.check_allowed(is_builtin)?;                          // 415 for SMP on CRs
//! let schema = TypeRef::for_object(api_version, kind, crd_schema);
//! match ty {
//!     PatchType::Apply => {
//!         let cfg = decode_apply_body(body)?;
//!         let obj = apply(live.as_ref(), cfg, &ApplyOptions { manager, force, now, api_version, kind, schema, .. })?;
//!         // obj is created when `live` is None, else updated
//!     }
//!     _ => {
//!         let mut obj = live.clone();                      // 404 if None: only apply creates
//!         match ty { Json => json_patch(&mut obj, body)?, Merge => merge_patch(&mut obj, body)?,
//!                    Strategic => strategic_merge_patch(&mut obj, body, schema)?, _ => {} }
//!         update_managed_fields(Some(&live), &mut obj, &UpdateOptions { manager, now, api_version, schema, .. });
//!     }
//! }
//! ```

mod apply;
mod error;
mod fieldpath;
mod json;
mod schema;
#[rustfmt::skip]
mod schema_table;
mod strategic;

pub(crate) use apply::typed_patch_message;
pub use apply::{
    ApplyOptions, UpdateOptions, apply, decode_apply_body, manager_from_user_agent,
    update_managed_fields,
};
pub use error::{MAX_JSON_PATCH_OPERATIONS, PatchError, StatusCause};
pub use json::{json_patch, merge_patch, merge_patch_value};
pub use schema::TypeRef;
pub use strategic::{strategic_merge_patch, strategic_merge_patch_value};

use serde_json::Value;

/// Everything [`patch_object`] needs to know about one PATCH request.
#[derive(Debug, Clone, Copy)]
pub struct PatchRequest<'a> {
    /// From the `Content-Type` header ([`PatchType::from_content_type`]).
    pub patch_type: PatchType,
    /// The raw request body.
    pub body: &'a [u8],
    /// `?fieldManager=` (required for apply).
    pub field_manager: Option<&'a str>,
    /// The `User-Agent` header: the manager of non-apply patches without
    /// `fieldManager`.
    pub user_agent: &'a str,
    /// `?force=`.
    pub force: Option<bool>,
    /// Current time, RFC 3339 in UTC with seconds.
    pub now: &'a str,
    /// API version served by the endpoint, e.g. `apps/v1`.
    pub api_version: &'a str,
    /// Kind served by the endpoint, e.g. `StatefulSet`.
    pub kind: &'a str,
    /// Subresource (`status`, `scale`) or empty.
    pub subresource: &'a str,
    /// Type of the object ([`TypeRef::for_object`]).
    pub schema: TypeRef<'a>,
    /// Whether the kind is built in (strategic merge is 415 otherwise).
    pub builtin: bool,
    /// Top-level fields the endpoint resets (`["status"]` for the main
    /// resource, `["spec"]`-like for `/status`), ignored by field management.
    pub reset_fields: &'a [&'a str],
}

/// Upstream `ValidatePatchOptions`
/// (`staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go`):
/// apply needs a `fieldManager`; `force` is only for apply. 422 on
/// `PatchOptions.meta.k8s.io`.
pub fn validate_patch_options(
    patch_type: PatchType,
    field_manager: Option<&str>,
    force: Option<bool>,
) -> Result<(), PatchError> {
    let mut causes = Vec::new();
    if patch_type == PatchType::Apply {
        if field_manager.is_none_or(str::is_empty) {
            causes.push(StatusCause {
                reason: "FieldValueRequired".into(),
                message: "Required value: is required for apply patch".into(),
                field: "fieldManager".into(),
            });
        }
    } else if force.is_some() {
        causes.push(StatusCause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: may not be specified for non-apply patch".into(),
            field: "force".into(),
        });
    }
    if let Some(m) = field_manager
        && m.len() > 128
    {
        causes.push(StatusCause {
            reason: "FieldValueTooLong".into(),
            message: "Too long: may not be more than 128 bytes".into(),
            field: "fieldManager".into(),
        });
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(PatchError::InvalidOptions {
        kind: "PatchOptions.meta.k8s.io",
        causes,
    })
}

/// Runs one PATCH request against the current object (`None` when it does
/// not exist; only apply creates, every other patch type must be answered
/// 404 by the caller before calling) and returns the object to store, with
/// `metadata.managedFields` maintained (Apply entry for apply, Update entry
/// for the other types, as upstream `patcher.patchResource`).
///
/// Checks in upstream order: options (422), strategic merge on custom
/// resources (415), body decoding (400), patch application (422/500),
/// apply conflicts (409). The caller still checks the name, namespace,
/// `resourceVersion` precondition, validation and storage.
pub fn patch_object(current: Option<&Value>, req: &PatchRequest<'_>) -> Result<Value, PatchError> {
    validate_patch_options(req.patch_type, req.field_manager, req.force)?;
    req.patch_type.check_allowed(req.builtin)?;
    if req.patch_type == PatchType::Apply {
        let config = decode_apply_body(req.body)?;
        return apply(
            current,
            config,
            &ApplyOptions {
                manager: req.field_manager.unwrap_or_default(),
                force: req.force.unwrap_or(false),
                now: req.now,
                api_version: req.api_version,
                kind: req.kind,
                subresource: req.subresource,
                schema: req.schema,
                reset_fields: req.reset_fields,
            },
        );
    }
    let Some(current) = current else {
        return Err(PatchError::Internal(
            "the object to patch does not exist".into(),
        ));
    };
    let mut obj = current.clone();
    match req.patch_type {
        PatchType::Json => json_patch(&mut obj, req.body)?,
        PatchType::Merge => merge_patch(&mut obj, req.body)?,
        PatchType::Strategic => strategic_merge_patch(&mut obj, req.body, req.schema)?,
        PatchType::Apply => {}
    }
    if !obj.is_object() {
        return Err(PatchError::InvalidResult {
            value: obj.to_string(),
            error: "the patched document is not a JSON object".into(),
        });
    }
    let manager = match req.field_manager {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => manager_from_user_agent(req.user_agent),
    };
    update_managed_fields(
        Some(current),
        &mut obj,
        &UpdateOptions {
            manager: &manager,
            now: req.now,
            api_version: req.api_version,
            subresource: req.subresource,
            schema: req.schema,
            reset_fields: req.reset_fields,
        },
    );
    Ok(obj)
}

/// The patch types of `PATCH` requests, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json` (built-in kinds only).
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply; JSON is valid YAML).
    Apply,
}

impl PatchType {
    /// Parses a `Content-Type` header (parameters such as `; charset=utf-8`
    /// are ignored, as upstream does). Unknown types are 415.
    pub fn from_content_type(content_type: &str) -> Result<PatchType, PatchError> {
        let base = content_type.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            _ => Err(unsupported_media_type(true)),
        }
    }

    /// The media type string.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }

    /// Rejects strategic merge patches of custom resources (`builtin == false`)
    /// with 415, as upstream's CRD handler does (its patch types omit SMP).
    pub fn check_allowed(self, builtin: bool) -> Result<(), PatchError> {
        if self == PatchType::Strategic && !builtin {
            return Err(unsupported_media_type(false));
        }
        Ok(())
    }
}

/// Upstream `negotiation.NewUnsupportedMediaTypeError(patchTypes)`.
fn unsupported_media_type(builtin: bool) -> PatchError {
    let types: &[&str] = if builtin {
        &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/apply-patch+yaml",
        ]
    } else {
        &[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
    };
    PatchError::UnsupportedMediaType {
        message: format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            types.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_map_to_patch_types_ignoring_charset() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Ok(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Ok(PatchType::Apply)
        );
        let e = PatchType::from_content_type("text/plain").expect_err("unknown type");
        assert_eq!(e.code(), 415);
    }

    fn request<'a>(patch_type: PatchType, body: &'a [u8]) -> PatchRequest<'a> {
        PatchRequest {
            patch_type,
            body,
            field_manager: None,
            user_agent: "kubectl/v1.32.0 (linux/amd64) kubernetes/abc",
            force: None,
            now: "2026-11-23T16:00:00Z",
            api_version: "apps/v1",
            kind: "StatefulSet",
            subresource: "",
            schema: TypeRef::builtin("apps/v1", "StatefulSet").expect("built in"),
            builtin: true,
            reset_fields: &["status"],
        }
    }

    #[test]
    fn patch_object_runs_strategic_patches_and_records_the_user_agent_as_manager() {
        let live = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}});
        let body =
            br#"{"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "2"}]}}}}"#;
        let out = patch_object(Some(&live), &request(PatchType::Strategic, body)).expect("patched");
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "1"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["image"],
            "2"
        );
        let mf = &out["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "kubectl");
        assert_eq!(mf["operation"], "Update");
        assert_eq!(
            mf["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"b\"}"]
                ["f:image"],
            serde_json::json!({})
        );
    }

    #[test]
    fn patch_object_applies_creates_and_requires_a_field_manager() {
        let body = b"apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  replicas: 2\n";
        let e = patch_object(None, &request(PatchType::Apply, body)).expect_err("no manager");
        assert_eq!(e.code(), 422);
        assert_eq!(
            e.message(),
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        let mut req = request(PatchType::Apply, body);
        req.field_manager = Some("kubectl");
        let out = patch_object(None, &req).expect("created");
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
        let mut req = request(PatchType::Merge, b"{}");
        req.force = Some(true);
        assert_eq!(
            patch_object(Some(&out), &req).map_err(|e| e.code()),
            Err(422)
        );
    }

    #[test]
    fn strategic_merge_on_custom_resources_is_415() {
        let e = PatchType::Strategic.check_allowed(false).expect_err("crd");
        assert_eq!(e.code(), 415);
        assert_eq!(e.reason(), "UnsupportedMediaType");
        assert!(!e.message().contains("strategic"), "{}", e.message());
        assert!(PatchType::Strategic.check_allowed(true).is_ok());
        assert!(PatchType::Merge.check_allowed(false).is_ok());
    }
}
