//! Answers served by rewriting the `application/json` answer of another
//! request: `events.k8s.io/v1` Events (from `core/v1`, see `events_v1`) and
//! metadata-only answers (`as=PartialObjectMetadata[List]`, `meta.k8s.io`),
//! which upstream's handlers produce by converting the object they read
//! (`k8s.io/apiserver/pkg/endpoints/handlers/response.go`,
//! `transformResponseObject` / `asPartialObjectMetadata[List]`).

use std::collections::HashMap;

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, Method, header},
    response::Response,
};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{ServerState, Target, resource_request};
use crate::api::{ApiError, Result};

/// Rewrites each JSON value of an `application/json` answer with `f`: the
/// whole body, or each line of a watch stream. Other answers pass unchanged.
pub(super) async fn reshape(r: Response, watch: bool, f: fn(&mut Value)) -> Result<Response> {
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c == "application/json");
    if !is_json {
        return Ok(r);
    }
    let (mut parts, body) = r.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if watch {
        // One frame per line; partial lines are kept across chunks.
        let mut pending: Vec<u8> = Vec::new();
        let stream = body.into_data_stream().map(move |chunk| {
            pending.extend_from_slice(&chunk.unwrap_or_default());
            let mut out = Vec::with_capacity(pending.len());
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                match serde_json::from_slice::<Value>(&line) {
                    Ok(mut v) => {
                        f(&mut v);
                        out.extend_from_slice(v.to_string().as_bytes());
                        out.push(b'\n');
                    }
                    Err(_) => out.extend_from_slice(&line),
                }
            }
            Ok::<Bytes, std::convert::Infallible>(Bytes::from(out))
        });
        return Ok(Response::from_parts(parts, Body::from_stream(stream)));
    }
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::internal(format!("failed to read response: {e}")))?;
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    };
    f(&mut v);
    Ok(Response::from_parts(parts, Body::from(v.to_string())))
}

/// The `meta.k8s.io` version of a metadata-only `Accept`
/// (`application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1|v1beta1`),
/// when that is the first media range the server can serve.
pub(super) fn partial_target(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        let params: HashMap<&str, &str> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        match params.get("as") {
            Some(&("PartialObjectMetadata" | "PartialObjectMetadataList"))
                if params.get("g") == Some(&"meta.k8s.io") =>
            {
                match params.get("v") {
                    Some(&"v1") => return Some("v1"),
                    Some(&"v1beta1") => return Some("v1beta1"),
                    _ => continue,
                }
            }
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

fn partial_object(v: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn to_partial(v: &mut Value, version: &str) {
    let kind = v["kind"].as_str().unwrap_or_default().to_owned();
    if kind == "Status" || kind == "Table" {
        return;
    }
    if v["type"].is_string() && v["object"].is_object() {
        // A watch frame; ERROR frames carry a Status.
        if v["object"]["kind"] != "Status" {
            v["object"] = partial_object(&v["object"], version);
        }
    } else if kind.ends_with("List") && v["items"].is_array() {
        let items: Vec<Value> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| partial_object(i, version))
            .collect();
        *v = json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": v["metadata"].clone(),
            "items": items,
        });
    } else if v.get("metadata").is_some() {
        *v = partial_object(v, version);
    }
}

/// Serves a metadata-only read (`get`, `list`, `watch`) by reading the full
/// objects and keeping their metadata.
#[allow(clippy::too_many_arguments)]
pub(super) async fn partial_request(
    s: &ServerState,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    cut_watch_after: Option<std::time::Duration>,
    version: &'static str,
    user: &crate::auth::UserInfo,
) -> Result<Response> {
    let mut h = headers.clone();
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let r = Box::pin(resource_request(
        s,
        method,
        t,
        q,
        &h,
        body,
        cut_watch_after,
        user,
    ))
    .await?;
    if *method != Method::GET {
        return Ok(r);
    }
    let (ct, f): (&'static str, fn(&mut Value)) = match (version, t.name.is_some() && !watch) {
        ("v1", true) => (
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            |v| to_partial(v, "v1"),
        ),
        ("v1", false) => (
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            |v| to_partial(v, "v1"),
        ),
        (_, true) => (
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1",
            |v| to_partial(v, "v1beta1"),
        ),
        (_, false) => (
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1",
            |v| to_partial(v, "v1beta1"),
        ),
    };
    let ct = if watch {
        ct.replace("PartialObjectMetadataList", "PartialObjectMetadata")
    } else {
        ct.to_owned()
    };
    let r = reshape(r, watch, f).await?;
    let (mut parts, body) = r.into_parts();
    if parts.status.is_success()
        && let Ok(v) = HeaderValue::from_str(&ct)
    {
        parts.headers.insert(header::CONTENT_TYPE, v);
    }
    Ok(Response::from_parts(parts, body))
}

/// What a resource request's answer is encoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    /// `application/json` (also for `as=Table`/`PartialObjectMetadata…`,
    /// served by their own paths, and for a protobuf `Accept`: kubesim
    /// encodes no protobuf answers).
    Json,
    /// `application/yaml`.
    Yaml,
}

/// Content negotiation of a resource request's `Accept`
/// (`k8s.io/apiserver/pkg/endpoints/handlers/negotiation`): the first media
/// range the server can encode wins; none is `406 NotAcceptable`.
pub(super) fn negotiate(accept: &str) -> Result<Media> {
    if accept.trim().is_empty() {
        return Ok(Media::Json);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: HashMap<&str, &str> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let as_kind = params.get("as").copied();
        let meta_version = params.get("g") == Some(&"meta.k8s.io")
            && matches!(params.get("v"), Some(&("v1" | "v1beta1")));
        match media.as_str() {
            "application/json" | "*/*" | "application/*" => match as_kind {
                None => return Ok(Media::Json),
                Some("Table" | "PartialObjectMetadata" | "PartialObjectMetadataList")
                    if meta_version =>
                {
                    return Ok(Media::Json);
                }
                Some(_) => {}
            },
            "application/yaml" if as_kind.is_none() => return Ok(Media::Yaml),
            "application/vnd.kubernetes.protobuf" if as_kind.is_none() => return Ok(Media::Json),
            _ => {}
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    ))
}

/// Serves a request whose client asked for YAML: the JSON answer, re-encoded.
#[allow(clippy::too_many_arguments)]
pub(super) async fn yaml_request(
    s: &ServerState,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    cut_watch_after: Option<std::time::Duration>,
    user: &crate::auth::UserInfo,
) -> Result<Response> {
    let mut h = headers.clone();
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let r = Box::pin(resource_request(
        s,
        method,
        t,
        q,
        &h,
        body,
        cut_watch_after,
        user,
    ))
    .await?;
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c == "application/json");
    if !is_json {
        return Ok(r);
    }
    let (mut parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::internal(format!("failed to read response: {e}")))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("failed to re-encode the answer: {e}")))?;
    let yaml = serde_yaml_ng::to_string(&v)
        .map_err(|e| ApiError::internal(format!("failed to encode YAML: {e}")))?;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    Ok(Response::from_parts(parts, Body::from(yaml)))
}
