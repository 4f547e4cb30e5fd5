//! Patch dispatch: turns a PATCH body of a given content type into the new
//! object, which then goes through the ordinary update path.
//!
//! Content types (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`):
//! `application/json-patch+json` (RFC 6902), `application/merge-patch+json`
//! (RFC 7386), `application/strategic-merge-patch+json` (built-in kinds only)
//! and `application/apply-patch+yaml` (server-side apply).
//!
//! Simplification until the `patch` module lands: strategic merge patch is
//! applied as a JSON merge patch (lists replaced, no `$patch` directives),
//! and server-side apply merges the applied configuration into the live
//! object without field-ownership tracking or conflicts.

use serde_json::Value;

use super::{ApiError, Part, Result, WriteOptions};
use crate::registry::ResourceDescriptor;

/// The patch content types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (also `+cbor`-less JSON bodies).
    Apply,
}

impl PatchKind {
    /// From a `Content-Type` header value (parameters ignored).
    pub fn from_content_type(ct: &str) -> Result<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            _ => Err(ApiError::unsupported_media_type(ct)),
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Parses an apply body (YAML or JSON).
pub fn parse_apply_body(body: &[u8]) -> Result<Value> {
    let v: Value = serde_yaml_ng::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the object provided is unrecognized (must be of type object)",
        ));
    }
    Ok(v)
}

/// The object a server-side apply creates when none exists.
pub fn apply_create(d: &ResourceDescriptor, body: &[u8], _opts: &WriteOptions) -> Result<Value> {
    let v = parse_apply_body(body)?;
    check_apply_gvk(d, &v)?;
    Ok(v)
}

fn check_apply_gvk(d: &ResourceDescriptor, v: &Value) -> Result<()> {
    let av = v["apiVersion"].as_str().unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or_default();
    if av.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request("invalid object type: /, Kind="));
    }
    if av != d.api_version() || kind != d.kind {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            d.api_version()
        )));
    }
    Ok(())
}

/// Applies a patch to the current object.
pub fn apply_patch(
    d: &ResourceDescriptor,
    current: &Value,
    kind: PatchKind,
    body: &[u8],
    _part: Part,
    _opts: &WriteOptions,
) -> Result<Value> {
    let mut target = current.clone();
    match kind {
        PatchKind::Merge => {
            let p = parse_json(body)?;
            json_patch::merge(&mut target, &p);
        }
        PatchKind::Strategic => {
            if d.crd_version.is_some() {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                ));
            }
            let p = parse_json(body)?;
            json_patch::merge(&mut target, &p);
        }
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut target, &p).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchKind::Apply => {
            let v = parse_apply_body(body)?;
            check_apply_gvk(d, &v)?;
            json_patch::merge(&mut target, &v);
        }
    }
    Ok(target)
}
