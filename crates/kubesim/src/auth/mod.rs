//! Authentication and RBAC authorization of the HTTP API, off unless
//! [`crate::cluster::ClusterConfig::auth`] (`sroll sim --auth`) turns it on.
//!
//! - **Authentication** (`staging/src/k8s.io/apiserver/pkg/endpoints/filters/authentication.go`):
//!   `Authorization: Bearer <token>` with the administrator token of the cluster's kubeconfig
//!   (user `kubesim-admin` in `system:masters`) or a ServiceAccount token (user
//!   `system:serviceaccount:<ns>:<name>`, groups `system:serviceaccounts`,
//!   `system:serviceaccounts:<ns>`, `system:authenticated`). ServiceAccount tokens come from the
//!   TokenRequest subresource `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`
//!   (`kubectl create token`) or [`Auth::service_account_token`]; like bound tokens they stop
//!   working when their ServiceAccount is deleted. An unknown token is `401 Unauthorized`.
//!   Requests without credentials are anonymous only on `/healthz`, `/livez`, `/readyz` and
//!   `/version` (kube-apiserver's `AuthenticationConfiguration` `anonymous.conditions`, the
//!   hardened setup; `pkg/kubeapiserver/options/authentication.go`); elsewhere they are `401`.
//! - **Authorization**: [`rbac`] over the stored Roles, ClusterRoles and bindings, with the
//!   default bootstrap policy seeded at start (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/
//!   policy.go`: `cluster-admin` for `system:masters`, `system:discovery` and
//!   `system:basic-user` for `system:authenticated`, `system:public-info-viewer` for everyone).
//!   A denial is `403 Forbidden` with upstream's message
//!   (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go`,
//!   `forbiddenMessage`). A server-side apply that creates its object also needs `create`
//!   (`handlers/patch.go`, `createAuthorizerAttributes`).
//! - **Reviews**: `SelfSubjectAccessReview` (`kubectl auth can-i`,
//!   `pkg/registry/authorization/selfsubjectaccessreview/rest.go`) and `SelfSubjectReview`
//!   (`kubectl auth whoami`).
//! - Every decision is kept in a bounded log ([`Auth::decisions`]) so tests can see what a
//!   client was refused (an audit log in miniature).

pub mod rbac;
pub mod requestinfo;
pub mod user;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::Response,
};
use k8s_openapi::api::{
    core::v1::ServiceAccount,
    rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject},
};
use serde_json::{Value, json};
use thiserror::Error;

pub use self::{
    rbac::{Decision, Policy},
    requestinfo::Attributes,
    user::UserInfo,
};
use crate::api::{Api, ApiError, ListOptions};

/// Errors of the authentication and authorization layer.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Seeding the bootstrap RBAC policy failed.
    #[error("failed to seed the bootstrap RBAC policy: {0}")]
    Bootstrap(ApiError),
}

/// Paths anonymous requests may use (then RBAC decides; `system:public-info-viewer` allows them).
pub const ANONYMOUS_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

/// How many decisions [`Auth::decisions`] keeps.
const DECISION_LOG: usize = 100_000;

/// One authorization decision, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// What was asked.
    pub attributes: Attributes,
    /// Whether it was allowed.
    pub allowed: bool,
}

#[derive(Clone, Debug)]
enum TokenOwner {
    Admin,
    ServiceAccount {
        namespace: String,
        name: String,
        uid: Option<String>,
    },
}

struct Inner {
    api: Api,
    admin_token: String,
    tokens: Mutex<HashMap<String, TokenOwner>>,
    decisions: Mutex<VecDeque<Recorded>>,
}

/// The authenticator and authorizer of one cluster. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps: a panic elsewhere leaves them valid.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}.{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Auth {
    /// Auth for `api`: a fresh administrator token, the bootstrap policy seeded into the store,
    /// and the `serviceaccounts/token` subresource registered.
    pub fn start(api: &Api) -> Result<Self, AuthError> {
        let auth = Auth {
            inner: Arc::new(Inner {
                api: api.clone(),
                admin_token: random_token("kubesim-admin"),
                tokens: Mutex::default(),
                decisions: Mutex::default(),
            }),
        };
        lock(&auth.inner.tokens).insert(auth.inner.admin_token.clone(), TokenOwner::Admin);
        seed_bootstrap_policy(api).map_err(AuthError::Bootstrap)?;
        auth.register_token_request();
        Ok(auth)
    }

    /// The administrator's bearer token (`system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.inner.admin_token
    }

    /// Mints a token for the ServiceAccount `namespace/name` (it authenticates while that
    /// ServiceAccount exists).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let uid = self
            .inner
            .api
            .get_typed::<ServiceAccount>(Some(namespace), name)
            .ok()
            .and_then(|sa| sa.metadata.uid);
        let token = random_token("kubesim-sa");
        lock(&self.inner.tokens).insert(
            token.clone(),
            TokenOwner::ServiceAccount {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                uid,
            },
        );
        token
    }

    /// The user a bearer token authenticates, if any.
    pub fn authenticate_token(&self, token: &str) -> Option<UserInfo> {
        let owner = lock(&self.inner.tokens).get(token).cloned()?;
        match owner {
            TokenOwner::Admin => Some(UserInfo::admin()),
            TokenOwner::ServiceAccount {
                namespace,
                name,
                uid,
            } => {
                let sa = self
                    .inner
                    .api
                    .get_typed::<ServiceAccount>(Some(&namespace), &name)
                    .ok()?;
                if uid.is_some() && sa.metadata.uid != uid {
                    return None;
                }
                Some(UserInfo::service_account(&namespace, &name))
            }
        }
    }

    /// The current RBAC objects relevant to a request in `namespace` (`""`: cluster scope).
    pub fn policy(&self, namespace: &str) -> Policy {
        let api = &self.inner.api;
        let all = ListOptions::default();
        let ns = Some(namespace).filter(|n| !n.is_empty());
        Policy {
            cluster_roles: api
                .list_typed::<ClusterRole>(None, &all)
                .unwrap_or_default(),
            cluster_role_bindings: api
                .list_typed::<ClusterRoleBinding>(None, &all)
                .unwrap_or_default(),
            roles: ns
                .map(|n| api.list_typed::<Role>(Some(n), &all).unwrap_or_default())
                .unwrap_or_default(),
            role_bindings: ns
                .map(|n| {
                    api.list_typed::<RoleBinding>(Some(n), &all)
                        .unwrap_or_default()
                })
                .unwrap_or_default(),
        }
    }

    /// Decides `a` against the current policy and records the decision.
    pub fn authorize(&self, a: &Attributes) -> Decision {
        let d = self.policy(&a.namespace).authorize(a);
        let mut log = lock(&self.inner.decisions);
        if log.len() >= DECISION_LOG {
            log.pop_front();
        }
        log.push_back(Recorded {
            attributes: a.clone(),
            allowed: d.allowed,
        });
        d
    }

    /// Every recorded decision, oldest first.
    pub fn decisions(&self) -> Vec<Recorded> {
        lock(&self.inner.decisions).iter().cloned().collect()
    }

    /// The recorded denials of `user`.
    pub fn denials_of(&self, user: &str) -> Vec<Attributes> {
        lock(&self.inner.decisions)
            .iter()
            .filter(|r| !r.allowed && r.attributes.user.name == user)
            .map(|r| r.attributes.clone())
            .collect()
    }

    /// Wraps `router` so every request is authenticated and authorized first.
    pub fn layer(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            middleware,
        ))
    }

    fn register_token_request(&self) {
        self.inner.api.registry().add_hook_subresource(
            "",
            "serviceaccounts",
            crate::registry::HookSubresource {
                name: "token".into(),
                group: "authentication.k8s.io".into(),
                version: "v1".into(),
                kind: "TokenRequest".into(),
                verbs: vec!["create".into()],
            },
        );
    }

    /// `TokenRequest` (`serviceaccounts/<name>/token`): a token for an existing ServiceAccount
    /// (`pkg/registry/core/serviceaccount/storage/token.go`; tokens here are opaque and do not
    /// expire, `expirationTimestamp` is reported as requested, default one hour).
    fn token_request(&self, namespace: &str, name: &str, body: &Value) -> Response {
        let sa = match self
            .inner
            .api
            .get_typed::<ServiceAccount>(Some(namespace), name)
        {
            Ok(sa) => sa,
            Err(e) => {
                let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::NOT_FOUND);
                return status_response(code, &e.to_status());
            }
        };
        let token = self.service_account_token(namespace, name);
        let expiration = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
        let expires = chrono::Utc::now() + chrono::Duration::seconds(expiration);
        let mut spec = body["spec"].clone();
        if !spec.is_object() {
            spec = json!({});
        }
        spec["expirationSeconds"] = json!(expiration);
        if spec["audiences"].as_array().is_none_or(Vec::is_empty) {
            spec["audiences"] = json!(["https://kubernetes.default.svc.cluster.local"]);
        }
        status_response(
            StatusCode::CREATED,
            &json!({
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace,
                             "creationTimestamp": sa.metadata.creation_timestamp},
                "spec": spec,
                "status": {
                    "token": token,
                    "expirationTimestamp":
                        expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                },
            }),
        )
    }
}

fn status_response(code: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The `401` of `responsewriters.Unauthorized`.
pub fn unauthorized() -> Response {
    status_response(
        StatusCode::UNAUTHORIZED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
    )
}

/// `forbiddenMessage` of `responsewriters/errors.go`.
pub fn forbidden_message(a: &Attributes) -> String {
    let user = &a.user.name;
    if !a.resource_request {
        return format!("User \"{user}\" cannot {} path \"{}\"", a.verb, a.path);
    }
    let resource = a.combined_resource();
    if a.namespace.is_empty() {
        format!(
            "User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" at the cluster scope",
            a.verb, a.api_group
        )
    } else {
        format!(
            "User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" in the namespace \"{}\"",
            a.verb, a.api_group, a.namespace
        )
    }
}

/// `apierrors.NewForbidden(groupResource, name, err)` as a `Status` body.
pub fn forbidden_status(a: &Attributes, err: &str) -> Value {
    let gr = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let message = if gr.is_empty() {
        format!("forbidden: {err}")
    } else if a.name.is_empty() {
        format!("{gr} is forbidden: {err}")
    } else {
        format!("{gr} \"{}\" is forbidden: {err}", a.name)
    };
    let mut details = json!({"kind": a.resource});
    if !a.api_group.is_empty() {
        details["group"] = json!(a.api_group);
    }
    if !a.name.is_empty() {
        details["name"] = json!(a.name);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": "Forbidden", "details": details, "code": 403})
}

/// The `403` of `responsewriters.Forbidden` for a denied request.
pub fn forbidden(a: &Attributes, reason: &str) -> Response {
    let msg = forbidden_message(a);
    let err = if reason.is_empty() {
        msg
    } else {
        format!("{msg}: {reason}")
    };
    let mut r = status_response(StatusCode::FORBIDDEN, &forbidden_status(a, &err));
    r.headers_mut().insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn bearer(req: &Request) -> Option<Result<&str, ()>> {
    let h = req.headers().get(header::AUTHORIZATION)?;
    let Ok(s) = h.to_str() else {
        return Some(Err(()));
    };
    let mut parts = s.trim().splitn(2, ' ');
    match (parts.next(), parts.next()) {
        (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let t = token.trim();
            Some(if t.is_empty() { Err(()) } else { Ok(t) })
        }
        _ => Some(Err(())),
    }
}

async fn middleware(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let user = match bearer(&req) {
        Some(Ok(token)) => match auth.authenticate_token(token) {
            Some(u) => u,
            None => return unauthorized(),
        },
        Some(Err(())) => return unauthorized(),
        None if ANONYMOUS_PATHS.contains(&path.as_str()) => UserInfo::anonymous(),
        None => return unauthorized(),
    };
    let mut a = requestinfo::attributes(req.method().as_str(), &path, req.uri().query());
    a.user = user;
    let d = auth.authorize(&a);
    if !d.allowed {
        return forbidden(&a, &d.reason);
    }
    if a.resource_request
        && a.verb == "create"
        && a.subresource.is_empty()
        && a.name.is_empty()
        && a.namespace.is_empty()
    {
        match (a.api_group.as_str(), a.resource.as_str()) {
            ("authorization.k8s.io", "selfsubjectaccessreviews") => {
                return self_subject_access_review(&auth, &a.user, req).await;
            }
            ("authentication.k8s.io", "selfsubjectreviews") => {
                return self_subject_review(&a.user, &a.api_version);
            }
            _ => {}
        }
    }
    if a.resource_request
        && a.verb == "create"
        && a.api_group.is_empty()
        && a.resource == "serviceaccounts"
        && a.subresource == "token"
    {
        let body = match read_body(req).await {
            Ok(v) => v,
            Err(r) => return r,
        };
        return auth.token_request(&a.namespace, &a.name, &body);
    }
    // A server-side apply that creates the object is also a create (handlers/patch.go).
    if a.resource_request
        && req.method() == Method::PATCH
        && a.subresource.is_empty()
        && !a.name.is_empty()
        && is_apply(&req)
        && !object_exists(&auth.inner.api, &a)
    {
        let create = Attributes {
            verb: "create".to_owned(),
            ..a.clone()
        };
        let d = auth.authorize(&create);
        if !d.allowed {
            return status_response(StatusCode::FORBIDDEN, &forbidden_status(&create, &d.reason));
        }
    }
    // The user travels with the request (admission webhooks' `userInfo`).
    req.extensions_mut().insert(a.user);
    next.run(req).await
}

fn is_apply(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/apply-patch"))
}

fn object_exists(api: &Api, a: &Attributes) -> bool {
    let Some(d) = api
        .registry()
        .get(&a.api_group, &a.api_version, &a.resource)
    else {
        // Unknown resource: the server answers 404 itself.
        return true;
    };
    let ns = Some(a.namespace.as_str()).filter(|n| !n.is_empty());
    api.get_raw(&d, ns, &a.name).is_ok()
}

/// The request body as JSON; a protobuf body (kubectl's `create token`,
/// `auth can-i`) through [`crate::protobuf`].
async fn read_body(req: Request) -> Result<Value, Response> {
    let protobuf = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::protobuf::is_protobuf);
    let body: Bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| bad_request(&format!("failed to read request body: {e}")))?;
    if protobuf {
        return crate::protobuf::decode(&body)
            .map_err(|e| bad_request(&format!("the object provided is unrecognized: {e}")));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body)
        .map_err(|e| bad_request(&format!("failed to decode request body: {e}")))
}

fn bad_request(msg: &str) -> Response {
    status_response(
        StatusCode::BAD_REQUEST,
        &ApiError::bad_request(msg).to_status(),
    )
}

/// `SelfSubjectAccessReview`: the authorizer's answer for the caller and the given attributes
/// (`pkg/registry/authorization/selfsubjectaccessreview/rest.go`, `ResourceAttributesFrom` /
/// `NonResourceAttributesFrom` in `pkg/registry/authorization/util/helpers.go`).
async fn self_subject_access_review(auth: &Auth, user: &UserInfo, req: Request) -> Response {
    let mut review = match read_body(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let spec = &review["spec"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let a = if let Some(r) = spec["resourceAttributes"].as_object() {
        let g = |k: &str| r.get(k).map(s).unwrap_or_default();
        Attributes {
            user: user.clone(),
            verb: g("verb"),
            resource_request: true,
            api_group: g("group"),
            api_version: g("version"),
            namespace: g("namespace"),
            resource: g("resource"),
            subresource: g("subresource"),
            name: g("name"),
            path: String::new(),
        }
    } else if let Some(n) = spec["nonResourceAttributes"].as_object() {
        Attributes {
            user: user.clone(),
            verb: n.get("verb").map(s).unwrap_or_default(),
            path: n.get("path").map(s).unwrap_or_default(),
            ..Attributes::default()
        }
    } else {
        return status_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    "reason": "Invalid", "details": {"group": "authorization.k8s.io", "kind": "SelfSubjectAccessReview"}, "code": 422}),
        );
    };
    let d = auth.authorize(&a);
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    review["status"] = status;
    if review["metadata"].is_null() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    status_response(StatusCode::CREATED, &review)
}

/// `SelfSubjectReview`: who the caller is (`kubectl auth whoami`).
fn self_subject_review(user: &UserInfo, version: &str) -> Response {
    status_response(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": format!("authentication.k8s.io/{version}"),
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": {"username": user.name, "groups": user.groups}},
        }),
    )
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| (*s).into()).collect()),
        resources: Some(resources.iter().map(|s| (*s).into()).collect()),
        verbs: verbs.iter().map(|s| (*s).into()).collect(),
        ..PolicyRule::default()
    }
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(urls.iter().map(|s| (*s).into()).collect()),
        verbs: verbs.iter().map(|s| (*s).into()).collect(),
        ..PolicyRule::default()
    }
}

/// The bootstrap ClusterRoles and bindings kubesim seeds (a subset of upstream's
/// `bootstrappolicy.ClusterRoles()` / `ClusterRoleBindings()`).
pub fn bootstrap_policy() -> (Vec<ClusterRole>, Vec<ClusterRoleBinding>) {
    let meta = |name: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name.into()),
        labels: Some(
            [(
                "kubernetes.io/bootstrapping".to_owned(),
                "rbac-defaults".to_owned(),
            )]
            .into(),
        ),
        annotations: Some(
            [(
                "rbac.authorization.kubernetes.io/autoupdate".to_owned(),
                "true".to_owned(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let role = |name: &str, rules: Vec<PolicyRule>| ClusterRole {
        metadata: meta(name),
        rules: Some(rules),
        ..ClusterRole::default()
    };
    let group = |g: &str| Subject {
        kind: "Group".into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        name: g.into(),
        namespace: None,
    };
    let binding = |name: &str, subjects: Vec<Subject>| ClusterRoleBinding {
        metadata: meta(name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(subjects),
    };
    let roles = vec![
        role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        role(
            "system:discovery",
            vec![url_rule(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        role(
            "system:public-info-viewer",
            vec![url_rule(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        role(
            "system:basic-user",
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
    ];
    let bindings = vec![
        binding("cluster-admin", vec![group(user::SYSTEM_MASTERS)]),
        binding("system:discovery", vec![group(user::SYSTEM_AUTHENTICATED)]),
        binding(
            "system:public-info-viewer",
            vec![
                group(user::SYSTEM_AUTHENTICATED),
                group(user::SYSTEM_UNAUTHENTICATED),
            ],
        ),
        binding("system:basic-user", vec![group(user::SYSTEM_AUTHENTICATED)]),
    ];
    (roles, bindings)
}

fn seed_bootstrap_policy(api: &Api) -> Result<(), ApiError> {
    let (roles, bindings) = bootstrap_policy();
    for r in roles {
        match api.create_typed(None, &r) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    for b in bindings {
        match api.create_typed(None, &b) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
