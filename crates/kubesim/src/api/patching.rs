//! Patch dispatch: turns a PATCH body of a given content type into the new
//! object (with `metadata.managedFields` maintained), which then goes
//! through the ordinary update path. The patch semantics themselves live in
//! [`crate::patch`]; this module adapts the API layer's types to it.
//!
//! Content types (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`):
//! `application/json-patch+json` (RFC 6902), `application/merge-patch+json`
//! (RFC 7386), `application/strategic-merge-patch+json` (built-in kinds only)
//! and `application/apply-patch+yaml` (server-side apply).

use serde_json::Value;

use super::{ApiError, Cause, Part, Result, WriteOptions, now_rfc3339};
use crate::{
    patch::{self, PatchError, PatchRequest, PatchType, TypeRef, UpdateOptions},
    registry::ResourceDescriptor,
};

/// The patch content types.
pub type PatchKind = PatchType;

/// Converts a patch-module error to an API error.
pub fn from_patch_error(e: PatchError) -> ApiError {
    let mut out = ApiError::new(e.code(), e.reason(), e.message());
    let status = e.to_status();
    let det = &status["details"];
    out.details.name = det["name"].as_str().map(String::from);
    out.details.group = det["group"].as_str().map(String::from);
    out.details.kind = det["kind"].as_str().map(String::from);
    out.details.causes = e
        .causes()
        .into_iter()
        .map(|c| Cause {
            reason: c.reason,
            message: c.message,
            field: c.field,
        })
        .collect();
    out
}

fn crd_schema(d: &ResourceDescriptor) -> Option<&Value> {
    d.crd_version
        .as_deref()
        .map(|v| &v["schema"]["openAPIV3Schema"])
        .filter(|s| s.is_object())
}

fn reset_fields(d: &ResourceDescriptor, part: Part) -> &'static [&'static str] {
    match part {
        Part::Status => &["spec"],
        Part::Main if d.status_subresource => &["status"],
        Part::Main => &[],
    }
}

/// Runs one PATCH (or server-side apply when `current` is `None`) through the
/// patch module.
pub fn patch_object(
    d: &ResourceDescriptor,
    current: Option<&Value>,
    kind: PatchKind,
    body: &[u8],
    part: Part,
    opts: &WriteOptions,
) -> Result<Value> {
    let api_version = d.api_version();
    let now = now_rfc3339();
    let req = PatchRequest {
        patch_type: kind,
        body,
        field_manager: opts.field_manager.as_deref(),
        user_agent: opts.user_agent.as_deref().unwrap_or_default(),
        force: opts.force.then_some(true),
        now: &now,
        api_version: &api_version,
        kind: &d.kind,
        subresource: match part {
            Part::Main => "",
            Part::Status => "status",
        },
        schema: TypeRef::for_object(&api_version, &d.kind, crd_schema(d)),
        builtin: d.crd_version.is_none(),
        reset_fields: reset_fields(d, part),
    };
    patch::patch_object(current, &req).map_err(from_patch_error)
}

/// Records an `Update` managedFields entry for a POST / PUT.
pub fn track_update(
    d: &ResourceDescriptor,
    live: Option<&Value>,
    new: &mut Value,
    part: Part,
    opts: &WriteOptions,
) {
    let api_version = d.api_version();
    let now = now_rfc3339();
    let manager = opts.field_manager.clone().unwrap_or_else(|| {
        patch::manager_from_user_agent(opts.user_agent.as_deref().unwrap_or_default())
    });
    patch::update_managed_fields(
        live,
        new,
        &UpdateOptions {
            manager: &manager,
            now: &now,
            api_version: &api_version,
            subresource: match part {
                Part::Main => "",
                Part::Status => "status",
            },
            schema: TypeRef::for_object(&api_version, &d.kind, crd_schema(d)),
            reset_fields: reset_fields(d, part),
        },
    );
}
