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
//! # Typical pipeline (PATCH)
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

pub use apply::{
    ApplyOptions, UpdateOptions, apply, decode_apply_body, manager_from_user_agent,
    update_managed_fields,
};
pub use error::{MAX_JSON_PATCH_OPERATIONS, PatchError, StatusCause};
pub use json::{json_patch, merge_patch, merge_patch_value};
pub use schema::TypeRef;
pub use strategic::{strategic_merge_patch, strategic_merge_patch_value};

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
