//! `events.k8s.io/v1` served from the `core/v1` Event store (see
//! [`crate::api::events`]): each request is converted to the `core/v1`
//! request, served by the normal pipeline, and its answer converted back —
//! as upstream's storage serves both groups from one etcd prefix through
//! conversion.
//!
//! Simplifications: server-side apply through `events.k8s.io/v1` answers
//! 415 (apply through `core/v1` works); a strategic merge patch is applied
//! as a JSON merge patch (an Event has no lists with merge keys); tables
//! use the `core/v1` columns.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::Response,
};
use serde_json::Value;

use super::{ServerState, Target, parse_body, resource_request};
use crate::{
    api::{
        ApiError, PatchKind, Result,
        events::{self, EVENTS_V1},
        patching::from_patch_error,
    },
    patch::{json_patch, merge_patch},
};

/// Whether a request target is the `events.k8s.io/v1` events resource.
pub(super) fn is_events_v1(t: &Target) -> bool {
    t.group == "events.k8s.io" && t.version == "v1" && t.resource == "events"
}

fn json_headers(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}

/// The request's headers asking for a JSON answer (a protobuf `Accept`
/// becomes `application/json`; tables and metadata-only forms stay).
fn json_answers(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    let accept = h
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("protobuf") {
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    }
    h
}

/// Converts a `core/v1` answer (object, list, watch frame) to `events.k8s.io/v1`.
fn convert_answer(v: &mut Value) {
    match v["kind"].as_str() {
        Some("Event") => *v = events::to_events_v1(v),
        Some("EventList") => {
            v["apiVersion"] = Value::from(EVENTS_V1);
            if let Some(items) = v["items"].as_array_mut() {
                for it in items {
                    *it = events::to_events_v1(it);
                }
            }
        }
        _ => {
            // A watch frame: {"type": …, "object": …}.
            if v["object"].is_object() && v["type"].is_string() {
                let obj = &mut v["object"];
                match obj["kind"].as_str() {
                    Some("Event") if obj["apiVersion"] == "v1" => {
                        // BOOKMARKs carry only metadata; keep them small.
                        if obj.get("involvedObject").is_some() || obj.get("message").is_some() {
                            *obj = events::to_events_v1(obj);
                        } else {
                            obj["apiVersion"] = Value::from(EVENTS_V1);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Serves one `events.k8s.io/v1` request through the `core/v1` resource
/// (answered in JSON: the conversion works on JSON).
#[allow(clippy::too_many_arguments)]
pub(super) async fn request(
    s: &ServerState,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    cut_watch_after: Option<std::time::Duration>,
    user: &crate::auth::UserInfo,
) -> Result<Response> {
    let core = Target {
        group: String::new(),
        version: "v1".into(),
        ..t.clone()
    };
    let watch = *method == Method::GET && q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let core_body = |v: &Value| Bytes::from(events::to_core(v).to_string());
    let (method, headers, body) = match (method, t.name.as_ref(), t.subresource.as_ref()) {
        (&Method::POST, None, None) => {
            let ev = parse_body(&body, headers)?;
            check_kind(&ev)?;
            let causes = events::validate_create(&ev);
            if !causes.is_empty() {
                let d = s.api.resource("events.k8s.io", "v1", "events")?;
                let name = ev["metadata"]["name"].as_str().unwrap_or_default();
                return Err(ApiError::invalid(&d, name, causes));
            }
            (Method::POST, json_headers(headers), core_body(&ev))
        }
        (&Method::PUT, Some(_), None) => {
            let ev = parse_body(&body, headers)?;
            check_kind(&ev)?;
            (Method::PUT, json_headers(headers), core_body(&ev))
        }
        (&Method::PATCH, Some(name), None) => {
            let kind = PatchKind::from_content_type(
                headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default(),
            )
            .map_err(from_patch_error)?;
            let d = s.api.resource("", "v1", "events")?;
            let current = s.api.get(&d, t.namespace.as_deref(), name)?;
            let mut ev = events::to_events_v1(&current);
            match kind {
                PatchKind::Json => json_patch(&mut ev, &body).map_err(from_patch_error)?,
                PatchKind::Merge | PatchKind::Strategic => {
                    merge_patch(&mut ev, &body).map_err(from_patch_error)?;
                }
                PatchKind::Apply => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "kubesim does not serve server-side apply of events.k8s.io/v1 Events; apply through core/v1 (/api/v1/namespaces/{ns}/events) or use a merge patch",
                    ));
                }
            }
            // Optimistic concurrency: the update fails with 409 if the event
            // changed since it was read (a patch upstream retries then).
            if ev["metadata"]["resourceVersion"].is_null() {
                ev["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            }
            (Method::PUT, json_headers(headers), core_body(&ev))
        }
        (m, _, _) => (m.clone(), headers.clone(), body),
    };
    let r = Box::pin(resource_request(
        s,
        &method,
        &core,
        q,
        &json_answers(&headers),
        body,
        cut_watch_after,
        user,
    ))
    .await?;
    if r.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(r);
    }
    super::reshape::reshape(r, watch, convert_answer).await
}

fn check_kind(ev: &Value) -> Result<()> {
    match ev["apiVersion"].as_str() {
        None | Some("") | Some(EVENTS_V1) => Ok(()),
        Some(av) => Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({EVENTS_V1})"
        ))),
    }
}
