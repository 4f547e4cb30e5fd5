//! The HTTP API server: routes requests to the in-process [`Api`].
//!
//! Paths follow `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`:
//! `/api/v1/…` and `/apis/{group}/{version}/…`, namespaced
//! (`/namespaces/{ns}/{resource}[/{name}[/{subresource}]]`) and
//! cluster-scoped (`/{resource}[/{name}[/{subresource}]]`) requests,
//! all-namespaces lists, the `status` and `scale` subresources and
//! subresources served by hooks registered on the [`Api`] (e.g.
//! `pods/eviction`). Errors are `metav1.Status` bodies; lists and watch
//! events are written from the stored JSON without re-serializing.

pub mod discovery;
mod events_v1;
pub mod metrics;
mod reshape;
mod watch;

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

pub use self::metrics::{ControllerMetrics, Metrics};
use crate::{
    api::{
        Api, ApiError, DeleteOptions, DeleteOutcome, ListOptions, Part, PatchKind, Result,
        WriteOptions, parse_propagation, strict,
    },
    faults::{Faults, RequestInfo},
    registry::ResourceDescriptor,
    selector::{FieldSelector, LabelSelector},
    store::Stored,
    table,
};

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// How often an idle watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bookmark_interval: Duration::from_secs(10),
            max_body_bytes: 64 << 20,
        }
    }
}

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct ServerState {
    /// The API.
    pub api: Api,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Fault injection (consulted for every resource request).
    pub faults: Option<Faults>,
    /// Settings.
    pub options: ServerOptions,
    /// Cancelled at shutdown: open watches end.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The OpenAPI documents, rebuilt only when the CRDs change.
    pub openapi: OpenApiCache,
}

/// The last built OpenAPI documents and the CRD state they were built
/// from: (number of CRDs, their highest resourceVersion). Any CRD create or
/// update raises the highest resourceVersion (one global, increasing
/// counter); a delete changes the count.
#[derive(Clone, Default)]
pub struct OpenApiCache(Arc<std::sync::Mutex<Option<CachedDocs>>>);

/// The CRD state key and the documents built for it.
type CachedDocs = ((usize, u64), Arc<OpenApiDocs>);

/// One build of the documents with their serialized forms, made on first use.
struct OpenApiDocs {
    doc: crate::openapi::OpenApi,
    v2: std::sync::OnceLock<Bytes>,
    v3: std::sync::Mutex<HashMap<String, Bytes>>,
}

impl OpenApiDocs {
    /// The serialized document at `rest` (`v2`, `v3`, `v3/apis/apps/v1`).
    fn bytes(&self, rest: &str) -> Option<Bytes> {
        if rest == "v2" {
            return Some(
                self.v2
                    .get_or_init(|| Bytes::from(self.doc.v2().to_string()))
                    .clone(),
            );
        }
        let mut v3 = self.v3.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = v3.get(rest) {
            return Some(b.clone());
        }
        let v = match rest {
            "v3" => self.doc.v3_index(),
            other => other
                .strip_prefix("v3/")
                .and_then(|k| self.doc.v3_document(k))?
                .clone(),
        };
        let b = Bytes::from(v.to_string());
        v3.insert(rest.to_string(), b.clone());
        Some(b)
    }
}

impl OpenApiCache {
    /// The documents for the API's current CRDs, built at most once per
    /// CRD change.
    fn get(&self, api: &Api) -> Arc<OpenApiDocs> {
        let crds = api
            .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .and_then(|d| api.list(&d, None, &ListOptions::default()))
            .map(|l| l.items)
            .unwrap_or_default();
        let key = (crds.len(), crds.iter().map(|c| c.rv).max().unwrap_or(0));
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, doc)) = &*slot
            && *k == key
        {
            return doc.clone();
        }
        let values: Vec<Value> = crds.iter().map(|c| c.value()).collect();
        let mut gvs = crate::openapi::builtin_group_versions();
        if let Ok(mut c) = crate::openapi::crd_group_versions(&values) {
            gvs.append(&mut c);
        }
        let doc = Arc::new(OpenApiDocs {
            doc: crate::openapi::OpenApi::new(&gvs),
            v2: std::sync::OnceLock::new(),
            v3: std::sync::Mutex::new(HashMap::new()),
        });
        *slot = Some((key, doc.clone()));
        doc
    }
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// Builds the router. `extra` routes (e.g. `/sim/…` admin endpoints) are
/// merged in front of the API fallback.
pub fn router(state: ServerState, extra: Option<Router>) -> Router {
    let mut r = Router::new()
        .route("/version", get(version))
        // The Python client (and go-restful upstream) asks for `/version/`.
        .route("/version/", get(version))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .route("/livez", get(ok))
        .route("/metrics", get(metrics_handler))
        .fallback(handle)
        .with_state(state);
    if let Some(extra) = extra {
        r = extra.merge(r);
    }
    r
}

async fn ok() -> &'static str {
    "ok"
}

async fn version() -> Response {
    json_response(StatusCode::OK, &discovery::version())
}

async fn metrics_handler(State(s): State<ServerState>) -> Response {
    let body = s.metrics.render_with(
        s.api.store(),
        &[
            s.api.admission().metrics().registry(),
            s.api.controller_metrics().registry(),
        ],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    bytes_response(code, "application/json", Bytes::from(v.to_string()))
}

fn bytes_response(code: StatusCode, content_type: &str, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// The `Status` response of an error.
pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(code, &e.to_status());
    if let Some(s) = e.details.retry_after_seconds
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A parsed resource request path.
#[derive(Debug, Default, Clone)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    /// `/api`
    LegacyVersions,
    /// `/apis`
    Groups,
    /// `/apis/{g}`
    Group(String),
    /// `/api/v1`, `/apis/{g}/{v}`
    ResourceList(String, String),
    /// a resource request
    Resource(Target),
    /// `/openapi/v2`, `/openapi/v3`, `/openapi/v3/…`
    OpenApi(String),
    NotFound,
}

fn parse_path(path: &str) -> Route {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Route::LegacyVersions,
        ["apis"] => return Route::Groups,
        ["apis", g] => return Route::Group((*g).to_string()),
        ["api", v] => return Route::ResourceList(String::new(), (*v).to_string()),
        ["apis", g, v] => return Route::ResourceList((*g).to_string(), (*v).to_string()),
        ["openapi", ..] => return Route::OpenApi(parts[1..].join("/")),
        ["api", v, rest @ ..] => (String::new(), (*v).to_string(), rest),
        ["apis", g, v, rest @ ..] => ((*g).to_string(), (*v).to_string(), rest),
        _ => return Route::NotFound,
    };
    let mut t = Target {
        group,
        version,
        ..Target::default()
    };
    let rest: &[&str] = match rest {
        ["namespaces", ns, tail @ ..]
            if !tail.is_empty() && tail[0] != "status" && tail[0] != "finalize" =>
        {
            t.namespace = Some((*ns).to_string());
            tail
        }
        other => other,
    };
    match rest {
        [res] => t.resource = (*res).to_string(),
        [res, name] => {
            t.resource = (*res).to_string();
            t.name = Some((*name).to_string());
        }
        [res, name, sub] => {
            t.resource = (*res).to_string();
            t.name = Some((*name).to_string());
            t.subresource = Some((*sub).to_string());
        }
        _ => return Route::NotFound,
    }
    Route::Resource(t)
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    if let Some(q) = q {
        for (k, v) in form_urlencoded_pairs(q) {
            m.insert(k, v);
        }
    }
    m
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn header_str(h: &HeaderMap, k: header::HeaderName) -> &str {
    h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn bool_param(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

/// The whole request pipeline of the API fallback route.
async fn handle(State(s): State<ServerState>, req: Request) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    // The authenticated user (auth middleware); without auth, the administrator.
    let user = req
        .extensions()
        .get::<crate::auth::UserInfo>()
        .cloned()
        .unwrap_or_else(crate::auth::UserInfo::admin);
    let path = uri.path().to_string();
    let ua = metrics::user_agent_product(header_str(&headers, header::USER_AGENT));
    let info = RequestInfo::parse(method.as_str(), &path, uri.query());
    let mut cut_watch_after = None;
    if let Some(f) = &s.faults
        && info.is_resource_request
    {
        let d = f.decide(&info, &ua);
        if !d.delay.is_zero() {
            tokio::time::sleep(d.delay).await;
        }
        if let Some(fail) = d.error {
            let code = StatusCode::from_u16(fail.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = json_response(code, &fail.body);
            if let Some(ra) = fail.retry_after
                && let Ok(v) = HeaderValue::from_str(&ra.to_string())
            {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            record(&s, &info, &ua, code.as_u16(), start);
            return r;
        }
        cut_watch_after = d.cut_watch_after;
    }
    let body = match axum::body::to_bytes(req.into_body(), s.options.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let r = error_response(&ApiError::bad_request(format!(
                "failed to read request body: {e}"
            )));
            record(&s, &info, &ua, 400, start);
            return r;
        }
    };
    let query = query_map(uri.query());
    let host = header_str(&headers, header::HOST).to_string();
    let res = match parse_path(&path) {
        Route::LegacyVersions => Ok(discovery_response(&headers, &s, true, || {
            discovery::api_versions(&host)
        })),
        Route::Groups => Ok(discovery_response(&headers, &s, false, || {
            discovery::api_group_list(s.api.registry())
        })),
        Route::Group(g) => discovery::api_group(s.api.registry(), &g)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(not_found_path),
        Route::ResourceList(g, v) => discovery::api_resource_list(s.api.registry(), &g, &v)
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(not_found_path),
        Route::OpenApi(rest) => openapi_response(&s, &rest, &query),
        Route::NotFound => Err(not_found_path()),
        Route::Resource(t) => {
            let is_watch = info.verb == "watch";
            let r = resource_request(
                &s,
                &method,
                &t,
                &query,
                &headers,
                body,
                cut_watch_after,
                &user,
            )
            .await;
            if is_watch && r.is_ok() {
                // watches record themselves when they end (long-running)
                let code = r.as_ref().map(|x| x.status().as_u16()).unwrap_or(500);
                count_request(&s, &info, &ua, code);
                return r.unwrap_or_else(|e| error_response(&e));
            }
            r
        }
    };
    let resp = res.unwrap_or_else(|e| error_response(&e));
    record(&s, &info, &ua, resp.status().as_u16(), start);
    resp
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn metric_verb(info: &RequestInfo) -> String {
    if info.is_resource_request {
        info.verb.to_uppercase()
    } else {
        "GET".into()
    }
}

fn count_request(s: &ServerState, info: &RequestInfo, ua: &str, code: u16) {
    s.metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            verb: metric_verb(info),
            group: info.group.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone().unwrap_or_default(),
            code: code.to_string(),
            user_agent: ua.to_string(),
        })
        .inc();
}

fn record(s: &ServerState, info: &RequestInfo, ua: &str, code: u16, start: std::time::Instant) {
    count_request(s, info, ua, code);
    s.metrics
        .latency
        .get_or_create(&metrics::VerbLabels {
            verb: metric_verb(info),
            resource: info.resource.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
}

fn discovery_response(
    headers: &HeaderMap,
    s: &ServerState,
    legacy: bool,
    plain: impl FnOnce() -> Value,
) -> Response {
    if discovery::wants_aggregated(header_str(headers, header::ACCEPT)) {
        let v = discovery::aggregated(s.api.registry(), legacy);
        return bytes_response(
            StatusCode::OK,
            discovery::AGGREGATED_CONTENT_TYPE,
            Bytes::from(v.to_string()),
        );
    }
    json_response(StatusCode::OK, &plain())
}

fn openapi_response(
    s: &ServerState,
    rest: &str,
    query: &HashMap<String, String>,
) -> Result<Response> {
    let _ = query;
    let docs = s.openapi.get(&s.api);
    docs.bytes(rest)
        .map(|b| bytes_response(StatusCode::OK, "application/json", b))
        .ok_or_else(not_found_path)
}

/// Options of a write from HTTP. `validated` is the verb and body of a
/// write whose body is decoded under `fieldValidation` (create, update,
/// merge/strategic/JSON patch); `None` for writes the server builds itself.
fn write_options(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    validated: Option<(strict::Verb, &[u8])>,
) -> Result<WriteOptions> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dryRun value: \"{other}\": supported values: \"All\""
            )));
        }
    };
    let force = match query.get("force").map(String::as_str) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid force value: {other}"
            )));
        }
    };
    let (field_validation, duplicate_fields) = match validated {
        Some((verb, body)) => {
            let fv = strict::FieldValidation::parse(
                query.get("fieldValidation").map(String::as_str),
                verb,
            )?;
            let ct = header_str(headers, header::CONTENT_TYPE);
            let dups = if ct.starts_with("application/json-patch+json")
                || ct.starts_with("application/apply-patch")
                || fv == strict::FieldValidation::Ignore
            {
                Vec::new()
            } else {
                strict::duplicate_fields(body)
            };
            (Some(fv), dups)
        }
        None => (None, Vec::new()),
    };
    Ok(WriteOptions {
        dry_run,
        field_manager: query.get("fieldManager").filter(|s| !s.is_empty()).cloned(),
        force,
        user_agent: Some(header_str(headers, header::USER_AGENT).to_string()),
        field_validation,
        duplicate_fields,
        warnings: strict::Warnings::default(),
        admission: None,
    })
}

/// Adds one `Warning: 299 - "…"` header per warning the write collected.
fn with_warnings(mut r: Response, opts: &WriteOptions) -> Response {
    for w in opts.warnings.take() {
        if let Ok(v) = HeaderValue::from_str(&strict::Warnings::header_value(&w)) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// 415 for CBOR, which kubesim does not decode. client-go falls back to JSON
/// after a 415 only for CBOR (`UnsupportedMediaType` in `rest/client.go`).
/// Protobuf bodies are decoded ([`crate::protobuf`]).
fn reject_binary(headers: &HeaderMap) -> Result<()> {
    let ct = header_str(headers, header::CONTENT_TYPE);
    if ct.starts_with("application/cbor") {
        return Err(unsupported_body(
            ct,
            "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        ));
    }
    Ok(())
}

fn unsupported_body(ct: &str, accepted: &str) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {accepted}; got {ct:?}"
        ),
    )
}

/// Custom resources have no protobuf form: upstream's CRD handler negotiates
/// JSON and YAML only (`apiextensions-apiserver/pkg/apiserver/customresource_handler.go`).
fn reject_protobuf_for_custom(d: &ResourceDescriptor, headers: &HeaderMap) -> Result<()> {
    let ct = header_str(headers, header::CONTENT_TYPE);
    if d.crd_version.is_some() && crate::protobuf::is_protobuf(ct) {
        return Err(unsupported_body(ct, "application/json, application/yaml"));
    }
    Ok(())
}

/// A protobuf body as JSON; errors are 400s as upstream's decode errors
/// (`transformDecodeError` in `apiserver/pkg/endpoints/handlers/create.go`).
fn decode_protobuf(body: &[u8]) -> Result<Value> {
    crate::protobuf::decode(body)
        .map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))
}

fn parse_body(body: &[u8], headers: &HeaderMap) -> Result<Value> {
    reject_binary(headers)?;
    let ct = header_str(headers, header::CONTENT_TYPE);
    let v: Value = if crate::protobuf::is_protobuf(ct) {
        decode_protobuf(body)?
    } else if ct.starts_with("application/yaml") {
        // JSON (a subset of YAML) parses much faster with serde_json; the
        // YAML parser (and its error) only for bodies that are not JSON.
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => serde_yaml_ng::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
            })?,
        }
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized: couldn't get version/kind; json parse error: {e}"
            ))
        })?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (must be of type object)",
        ));
    }
    Ok(v)
}

fn list_options(q: &HashMap<String, String>) -> Result<ListOptions> {
    Ok(ListOptions {
        label_selector: LabelSelector::parse(
            q.get("labelSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?,
        field_selector: FieldSelector::parse(
            q.get("fieldSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?,
        limit: match q.get("limit").filter(|s| !s.is_empty()) {
            None => 0,
            Some(l) => l
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?
                .max(0) as usize,
        },
        continue_token: q.get("continue").filter(|s| !s.is_empty()).cloned(),
        resource_version: q.get("resourceVersion").filter(|s| !s.is_empty()).cloned(),
        resource_version_match: q
            .get("resourceVersionMatch")
            .filter(|s| !s.is_empty())
            .cloned(),
    })
}

fn item_json<'a>(d: &ResourceDescriptor, s: &'a Stored) -> std::borrow::Cow<'a, [u8]> {
    // Objects of another served version of the same resource only differ in apiVersion.
    let av = d.api_version();
    if d.crd_version.is_some() && !has_api_version(&s.json, &av) {
        let mut v = s.value();
        if v["apiVersion"].as_str() != Some(av.as_str()) {
            v["apiVersion"] = json!(av);
            return std::borrow::Cow::Owned(v.to_string().into_bytes());
        }
    }
    std::borrow::Cow::Borrowed(&s.json[..])
}

/// Whether the stored JSON of an object says `apiVersion: av`, read without
/// parsing the object: stored objects are compact JSON written by
/// `serde_json` from a `Value`, whose keys are sorted, so `apiVersion` is the
/// first key unless a key sorting before it exists (then this answers
/// `false` and the caller parses).
fn has_api_version(json: &[u8], av: &str) -> bool {
    json.strip_prefix(br#"{"apiVersion":""#)
        .and_then(|rest| rest.strip_prefix(av.as_bytes()))
        .is_some_and(|rest| rest.starts_with(b"\","))
}

fn object_response(d: &ResourceDescriptor, code: StatusCode, v: &Value) -> Response {
    if d.crd_version.is_some() {
        let av = d.api_version();
        if v["apiVersion"].as_str() != Some(av.as_str()) {
            let mut v = v.clone();
            v["apiVersion"] = json!(av);
            return json_response(code, &v);
        }
    }
    json_response(code, v)
}

fn table_response(
    d: &ResourceDescriptor,
    target: table::TableVersion,
    items: &[Value],
    list_meta: Option<&Value>,
    q: &HashMap<String, String>,
) -> Result<Response> {
    let opts = table::TableOptions::from_query(q.get("includeObject").map(String::as_str), false)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = chrono::Utc::now();
    let t = match &d.crd_version {
        Some(v) => table::PrinterColumns::from_crd_version(v)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .table(items, list_meta, &opts, target, now),
        None => table::table(&d.group, &d.kind, items, list_meta, &opts, target, now),
    };
    Ok(bytes_response(
        StatusCode::OK,
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        Bytes::from(t.to_string()),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    s: &ServerState,
    method: &Method,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    cut_watch_after: Option<Duration>,
    user: &crate::auth::UserInfo,
) -> Result<Response> {
    let watching = bool_param(q, "watch");
    if reshape::negotiate(header_str(headers, header::ACCEPT))? == reshape::Media::Yaml && !watching
    {
        return reshape::yaml_request(s, method, t, q, headers, body, cut_watch_after, user).await;
    }
    if events_v1::is_events_v1(t) {
        return events_v1::request(s, method, t, q, headers, body, cut_watch_after, user).await;
    }
    if let Some(v) = reshape::partial_target(header_str(headers, header::ACCEPT)) {
        return reshape::partial_request(s, method, t, q, headers, body, cut_watch_after, v, user)
            .await;
    }
    let api = &s.api;
    let d = api
        .registry()
        .get(&t.group, &t.version, &t.resource)
        .ok_or_else(not_found_path)?;
    if t.namespace.is_some() && !d.namespaced {
        return Err(not_found_path());
    }
    let ns = t.namespace.as_deref();
    reject_protobuf_for_custom(&d, headers)?;
    let accept = header_str(headers, header::ACCEPT);
    let table_target = table::table_target(accept);
    match (&t.name, t.subresource.as_deref()) {
        (None, _) => match *method {
            Method::GET if bool_param(q, "watch") => {
                let client = metrics::user_agent_product(header_str(headers, header::USER_AGENT));
                watch::serve(s, &d, ns, q, table_target, cut_watch_after, client)
            }
            Method::GET => {
                let opts = list_options(q)?;
                let l = api.list(&d, ns, &opts)?;
                let mut meta = json!({"resourceVersion": l.resource_version.to_string()});
                if let Some(c) = &l.continue_token {
                    meta["continue"] = json!(c);
                }
                if let Some(n) = l.remaining_item_count {
                    meta["remainingItemCount"] = json!(n);
                }
                if let Some(tt) = table_target {
                    return table_response(&d, tt, &l.values(), Some(&meta), q);
                }
                let mut out = Vec::with_capacity(
                    256 + l.items.iter().map(|i| i.json.len() + 1).sum::<usize>(),
                );
                out.extend_from_slice(
                    format!(
                        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
                        d.list_kind,
                        d.api_version(),
                        meta
                    )
                    .as_bytes(),
                );
                for (i, it) in l.items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&item_json(&d, it));
                }
                out.extend_from_slice(b"]}");
                Ok(bytes_response(
                    StatusCode::OK,
                    "application/json",
                    Bytes::from(out),
                ))
            }
            Method::POST => {
                if d.namespaced && ns.is_none() {
                    return Err(not_found_path());
                }
                let obj = parse_body(&body, headers)?;
                let opts = write_options(q, headers, Some((strict::Verb::Create, &body)))?;
                let out = api.admit_create(&d, ns, obj, &opts, user).await?;
                Ok(with_warnings(
                    object_response(&d, StatusCode::CREATED, &out),
                    &opts,
                ))
            }
            Method::DELETE => {
                let opts = list_options(q)?;
                let dopts = delete_options(q, headers, &body)?;
                let l = api.list(&d, ns, &opts)?;
                let mut deleted = vec![];
                for it in &l.items {
                    let ns = Some(it.namespace()).filter(|n| !n.is_empty());
                    match api.admit_delete(&d, ns, it.name(), &dopts, user).await {
                        Ok(o) => deleted.push(o.object().clone()),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"kind": d.list_kind, "apiVersion": d.api_version(),
                            "metadata": {"resourceVersion": api.store().current_rv().to_string()}, "items": deleted}),
                ))
            }
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        },
        (Some(name), None) => match *method {
            Method::GET => {
                let obj = api.get(&d, ns, name)?;
                if let Some(tt) = table_target {
                    return table_response(&d, tt, &[obj], None, q);
                }
                Ok(object_response(&d, StatusCode::OK, &obj))
            }
            Method::PUT => {
                let obj = parse_body(&body, headers)?;
                let opts = write_options(q, headers, Some((strict::Verb::Update, &body)))?;
                let out = api
                    .admit_update(&d, ns, name, obj, Part::Main, &opts, user)
                    .await?;
                Ok(with_warnings(
                    object_response(&d, StatusCode::OK, &out),
                    &opts,
                ))
            }
            Method::PATCH => {
                let kind = PatchKind::from_content_type(header_str(headers, header::CONTENT_TYPE))
                    .map_err(crate::api::patching::from_patch_error)?;
                let opts = write_options(q, headers, Some((strict::Verb::Patch, &body)))?;
                let existed = api.get_raw(&d, ns, name).is_ok();
                let out = api
                    .admit_patch(&d, ns, name, kind, &body, Part::Main, &opts, user)
                    .await?;
                let code = if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                Ok(with_warnings(object_response(&d, code, &out), &opts))
            }
            Method::DELETE => {
                let opts = delete_options(q, headers, &body)?;
                match api.admit_delete(&d, ns, name, &opts, user).await? {
                    DeleteOutcome::Pending(o) => Ok(object_response(&d, StatusCode::OK, &o)),
                    DeleteOutcome::Deleted(o) if d.return_deleted_object => {
                        Ok(object_response(&d, StatusCode::OK, &o))
                    }
                    DeleteOutcome::Deleted(o) => {
                        let mut details =
                            json!({"name": name, "kind": d.plural, "uid": o["metadata"]["uid"]});
                        // `StatusDetails.group` is `omitempty` (core kinds have none).
                        if !d.group.is_empty() {
                            details["group"] = json!(d.group);
                        }
                        Ok(json_response(
                            StatusCode::OK,
                            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                "details": details}),
                        ))
                    }
                }
            }
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        },
        (Some(name), Some("status")) if d.status_subresource => match *method {
            Method::GET => Ok(object_response(&d, StatusCode::OK, &api.get(&d, ns, name)?)),
            Method::PUT => {
                let obj = parse_body(&body, headers)?;
                let opts = write_options(q, headers, Some((strict::Verb::Update, &body)))?;
                let out = api
                    .admit_update(&d, ns, name, obj, Part::Status, &opts, user)
                    .await?;
                Ok(with_warnings(
                    object_response(&d, StatusCode::OK, &out),
                    &opts,
                ))
            }
            Method::PATCH => {
                let kind = PatchKind::from_content_type(header_str(headers, header::CONTENT_TYPE))
                    .map_err(crate::api::patching::from_patch_error)?;
                let opts = write_options(q, headers, Some((strict::Verb::Patch, &body)))?;
                let out = api
                    .admit_patch(&d, ns, name, kind, &body, Part::Status, &opts, user)
                    .await?;
                Ok(with_warnings(
                    object_response(&d, StatusCode::OK, &out),
                    &opts,
                ))
            }
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        },
        (Some(name), Some("scale")) if d.scale.is_some() => {
            scale_request(s, &d, ns, name, method, q, headers, &body, user).await
        }
        (Some(name), Some(sub)) => match api.subresource_handler(&d.plural, sub) {
            Some(h) if *method == Method::POST => {
                let obj = parse_body(&body, headers)?;
                // Admission of the subresource's object (`pods/eviction` is a
                // CREATE of an Eviction, as upstream).
                let opts = write_options(q, headers, None)?;
                let (g, v, k) = match (d.plural.as_str(), sub) {
                    ("pods", "eviction") => ("policy", "v1", "Eviction"),
                    _ => ("", "", ""),
                };
                let obj = if k.is_empty() {
                    obj
                } else {
                    api.admit_object(
                        &d,
                        sub,
                        (g, v, k),
                        crate::admission::Operation::Create,
                        ns,
                        name,
                        obj,
                        None,
                        &opts,
                        user,
                    )
                    .await?
                };
                let (code, v) = h(
                    api.clone(),
                    ns.unwrap_or_default().to_string(),
                    name.clone(),
                    obj,
                    q.clone(),
                )
                .await?;
                Ok(with_warnings(
                    json_response(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), &v),
                    &opts,
                ))
            }
            Some(_) => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
            None => Err(not_found_path()),
        },
    }
}

fn delete_options(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeleteOptions> {
    reject_binary(headers)?;
    let mut o = if body.iter().all(|b| b.is_ascii_whitespace()) {
        DeleteOptions::default()
    } else if crate::protobuf::is_protobuf(header_str(headers, header::CONTENT_TYPE)) {
        DeleteOptions::from_json(&decode_protobuf(body)?)?
    } else {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("failed to decode DeleteOptions: {e}")))?;
        DeleteOptions::from_json(&v)?
    };
    if let Some(g) = q.get("gracePeriodSeconds").filter(|s| !s.is_empty()) {
        o.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g}")))?,
        );
    }
    if let Some(p) = q.get("propagationPolicy").filter(|s| !s.is_empty()) {
        o.propagation = Some(parse_propagation(p)?);
    }
    if q.get("dryRun").is_some_and(|v| v == "All") {
        o.dry_run = true;
    }
    Ok(o)
}

fn path_get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = &cur[seg];
    }
    cur
}

fn path_set(v: &mut Value, path: &str, new: Value) {
    let segs: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    let mut cur = v;
    for (i, seg) in segs.iter().enumerate() {
        if i + 1 == segs.len() {
            cur[*seg] = new;
            return;
        }
        if !cur[*seg].is_object() {
            cur[*seg] = json!({});
        }
        cur = &mut cur[*seg];
    }
}

/// The `autoscaling/v1` Scale view of an object.
fn scale_of(d: &ResourceDescriptor, obj: &Value) -> Value {
    let Some(sc) = &d.scale else {
        return Value::Null;
    };
    let m = &obj["metadata"];
    let selector = match &sc.label_selector_path {
        Some(p) => path_get(obj, p).clone(),
        None => crate::selector::LabelSelector::from_json(&obj["spec"]["selector"])
            .map(|s| json!(s.to_query()))
            .unwrap_or(Value::Null),
    };
    let mut status =
        json!({"replicas": path_get(obj, &sc.status_replicas_path).as_i64().unwrap_or(0)});
    if !selector.is_null() {
        status["selector"] = selector;
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                     "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": path_get(obj, &sc.spec_replicas_path).as_i64().unwrap_or(0)},
        "status": status,
    })
}

#[allow(clippy::too_many_arguments)]
async fn scale_request(
    s: &ServerState,
    d: &Arc<ResourceDescriptor>,
    ns: Option<&str>,
    name: &str,
    method: &Method,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    user: &crate::auth::UserInfo,
) -> Result<Response> {
    let api = &s.api;
    let Some(sc) = &d.scale else {
        return Err(not_found_path());
    };
    let cur = api.get(d, ns, name)?;
    let scale = scale_of(d, &cur);
    let new_scale = match *method {
        Method::GET => return Ok(json_response(StatusCode::OK, &scale)),
        Method::PUT => parse_body(body, headers)?,
        Method::PATCH => {
            let kind = PatchKind::from_content_type(header_str(headers, header::CONTENT_TYPE))
                .map_err(crate::api::patching::from_patch_error)?;
            let mut target = scale.clone();
            match kind {
                PatchKind::Json => crate::patch::json_patch(&mut target, body),
                PatchKind::Apply => {
                    return Err(ApiError::unsupported_media_type(
                        "application/apply-patch+yaml",
                    ));
                }
                _ => crate::patch::merge_patch(&mut target, body),
            }
            .map_err(crate::api::patching::from_patch_error)?;
            target
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    // Webhooks on `<resource>/scale` see the Scale (UPDATE), as upstream.
    let opts = write_options(q, headers, None)?;
    let new_scale = api
        .admit_object(
            d,
            "scale",
            ("autoscaling", "v1", "Scale"),
            crate::admission::Operation::Update,
            ns,
            name,
            new_scale,
            Some(scale.clone()),
            &opts,
            user,
        )
        .await?;
    let replicas = new_scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            &ResourceDescriptor::clone(d),
            name,
            vec![crate::api::Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    let mut obj = cur.clone();
    path_set(&mut obj, &sc.spec_replicas_path, json!(replicas));
    match new_scale["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() => obj["metadata"]["resourceVersion"] = json!(rv),
        _ => {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            if !d.allow_unconditional_update {
                obj["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            }
        }
    }
    let out = api.update(d, ns, name, obj, &opts)?;
    Ok(with_warnings(
        json_response(StatusCode::OK, &scale_of(d, &out)),
        &opts,
    ))
}

#[cfg(test)]
mod tests {
    use super::has_api_version;

    #[test]
    fn the_stored_api_version_is_read_from_the_first_key_only() {
        let stored = serde_json::to_vec(&serde_json::json!({
            "kind": "X", "apiVersion": "sroll.io/v1alpha1", "metadata": {"name": "a"}}))
        .expect("serializes");
        assert!(has_api_version(&stored, "sroll.io/v1alpha1"));
        assert!(!has_api_version(&stored, "sroll.io/v1"));
        assert!(!has_api_version(&stored, "sroll.io/v1alpha"));
        // Another first key, or no apiVersion at all: not known without parsing.
        assert!(!has_api_version(br#"{"Zed":1,"apiVersion":"v1"}"#, "v1"));
        assert!(!has_api_version(br#"{"kind":"X"}"#, "v1"));
    }
}
