//! Run-time switchable fault injection: API errors by verb, resource and
//! probability (500, 429 with `Retry-After`, 409), added latency, watch
//! streams cut every N seconds, node failure (its pods go NotReady, then are
//! deleted), random pod kills at a rate, and marking single pods unready.
//!
//! [`Faults`] holds the switchable state; it is shared by the HTTP layer (which
//! asks [`Faults::decide`] for every request, see [`RequestInfo`]), the fake
//! kubelet (forced-unready pods, failed nodes) and the chaos task (pod kills).
//! The state is read and replaced as JSON ([`FaultConfig`]) under `/sim/faults`.
//!
//! Injected error bodies are the real server's `Status` shapes
//! (`k8s.io/apimachinery/pkg/api/errors`: `NewInternalError`,
//! `NewTooManyRequests`, `NewConflict`).

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The error an API-error rule injects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum InjectedError {
    /// 500 `InternalError`.
    InternalError,
    /// 429 `TooManyRequests` with `Retry-After`.
    TooManyRequests {
        /// Seconds in `Retry-After` and `details.retryAfterSeconds`.
        #[serde(default = "one", rename = "retryAfterSeconds")]
        retry_after_seconds: u32,
    },
    /// 409 `Conflict` (as for a stale resourceVersion).
    Conflict,
}

fn one() -> u32 {
    1
}

/// Fail matching requests with a probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorRule {
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`); any when absent.
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource, optionally with subresource (`pods`, `pods/eviction`,
    /// `statefulsets/status`); any when absent.
    #[serde(default)]
    pub resource: Option<String>,
    /// Probability in `[0, 1]`.
    pub probability: f64,
    /// What to answer.
    pub error: InjectedError,
}

/// Add latency to matching requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyRule {
    /// Verb filter (any when absent).
    #[serde(default)]
    pub verb: Option<String>,
    /// Resource filter (any when absent).
    #[serde(default)]
    pub resource: Option<String>,
    /// Added latency in milliseconds (real time).
    pub millis: u64,
}

/// Random pod kills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodKills {
    /// Kills per simulated minute (Poisson-like: checked every simulated second).
    pub per_minute: f64,
    /// Only pods of this namespace (any when absent).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only pods with these labels (`k=v` pairs, all must match).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A pod reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The whole switchable fault state (the JSON of `/sim/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultConfig {
    /// API error rules, first match that fires wins.
    #[serde(default)]
    pub api_errors: Vec<ApiErrorRule>,
    /// Latency rules (all matching ones add up).
    #[serde(default)]
    pub latency: Vec<LatencyRule>,
    /// Cut every watch stream after this many (real) seconds.
    #[serde(default)]
    pub watch_cut_seconds: Option<u64>,
    /// When not empty, the request-level faults (API errors, latency, watch cuts) hit only the
    /// clients whose User-Agent product — the part before the first `/`, as in
    /// `apiserver_request_total{client=…}` — is one of these (`sroll-operator`, `kubectl`).
    /// Empty: every client. Pod kills, unready pods and failed nodes are not requests and are
    /// unaffected. This lets a test fault the system under test while its observers see the
    /// cluster as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_agents: Vec<String>,
    /// Random pod kills.
    #[serde(default)]
    pub pod_kills: Option<PodKills>,
    /// Pods whose Ready condition the kubelet keeps False.
    #[serde(default)]
    pub unready_pods: BTreeSet<PodRef>,
    /// Failed nodes: Ready Unknown, their pods NotReady, then deleted.
    #[serde(default)]
    pub failed_nodes: BTreeSet<String>,
    /// Simulated seconds between a node failing and its pods being deleted
    /// (the taint-based eviction of the node lifecycle controller, upstream
    /// default 300 s).
    #[serde(default = "default_node_eviction")]
    pub node_eviction_seconds: u64,
}

fn default_node_eviction() -> u64 {
    300
}

impl FaultConfig {
    /// Whether the request-level faults hit `client` (a User-Agent product).
    pub fn hits(&self, client: &str) -> bool {
        self.user_agents.is_empty() || self.user_agents.iter().any(|u| u == client)
    }
}

/// What the HTTP layer must do with one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Sleep this long before handling (or failing) the request.
    pub delay: Duration,
    /// Answer with this error instead of handling the request.
    pub error: Option<InjectedFailure>,
    /// For watches: end the stream after this long.
    pub cut_watch_after: Option<Duration>,
}

/// An injected failure: HTTP code, `Retry-After` header, `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedFailure {
    /// HTTP status code.
    pub code: u16,
    /// `Retry-After` header value in seconds.
    pub retry_after: Option<u32>,
    /// The `metav1.Status` body.
    pub body: Value,
}

/// The Kubernetes view of one HTTP request (`RequestInfoFactory` in
/// `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// Whether the path is an API resource path (not discovery, healthz, /sim).
    pub is_resource_request: bool,
    /// Verb.
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// Namespace, if namespaced.
    pub namespace: Option<String>,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`status`, `eviction`, `scale`).
    pub subresource: Option<String>,
    /// Object name.
    pub name: Option<String>,
}

impl RequestInfo {
    /// Parses method, path and query.
    pub fn parse(method: &str, path: &str, query: Option<&str>) -> Self {
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let mut out = Self::default();
        let rest: &[&str] = match parts.as_slice() {
            ["api", _v, rest @ ..] => rest,
            ["apis", g, _v, rest @ ..] => {
                out.group = (*g).to_owned();
                rest
            }
            _ => return out,
        };
        let rest = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => {
                out.namespace = Some((*ns).to_owned());
                tail
            }
            other => other,
        };
        let Some((resource, tail)) = rest.split_first() else {
            return out;
        };
        out.is_resource_request = true;
        out.resource = (*resource).to_owned();
        out.name = tail.first().map(|s| (*s).to_owned());
        out.subresource = tail.get(1).map(|s| (*s).to_owned());
        if out.resource == "namespaces" && out.namespace.is_none() {
            // /api/v1/namespaces/{name}[/status]
        }
        let watch = query.is_some_and(|q| {
            q.split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1" || kv == "watch")
        });
        out.verb = match method {
            "GET" | "HEAD" if watch => "watch",
            "GET" | "HEAD" if out.name.is_some() => "get",
            "GET" | "HEAD" => "list",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if out.name.is_some() => "delete",
            "DELETE" => "deletecollection",
            other => other,
        }
        .to_lowercase();
        out
    }

    /// `resource` or `resource/subresource`.
    pub fn full_resource(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.clone(),
        }
    }
}

fn rule_matches(verb: Option<&String>, resource: Option<&String>, info: &RequestInfo) -> bool {
    verb.is_none_or(|v| v.eq_ignore_ascii_case(&info.verb))
        && resource.is_none_or(|r| {
            *r == info.full_resource() || *r == info.resource && info.subresource.is_none()
        })
}

/// The live fault state. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Faults {
    config: Arc<RwLock<FaultConfig>>,
    rng: Arc<Mutex<fastrand::Rng>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Faults {
    /// No faults; `seed` makes the random draws reproducible.
    pub fn new(seed: Option<u64>) -> Self {
        Self {
            config: Arc::new(RwLock::new(FaultConfig {
                node_eviction_seconds: default_node_eviction(),
                ..FaultConfig::default()
            })),
            rng: Arc::new(Mutex::new(
                seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            )),
            changed: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// A receiver notified on every configuration change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// The current configuration.
    pub fn config(&self) -> FaultConfig {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Replaces the configuration.
    pub fn set(&self, config: FaultConfig) {
        if let Ok(mut c) = self.config.write() {
            *c = config;
        }
        self.notify();
    }

    /// Changes the configuration in place.
    pub fn update(&self, f: impl FnOnce(&mut FaultConfig)) {
        if let Ok(mut c) = self.config.write() {
            f(&mut c);
        }
        self.notify();
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set(FaultConfig {
            node_eviction_seconds: default_node_eviction(),
            ..FaultConfig::default()
        });
    }

    /// A uniform draw in `[0, 1)`.
    pub fn draw(&self) -> f64 {
        self.rng.lock().map_or(1.0, |mut r| r.f64())
    }

    /// Picks an index in `0..n` (n > 0).
    pub fn pick(&self, n: usize) -> usize {
        self.rng.lock().map_or(0, |mut r| r.usize(..n.max(1)))
    }

    /// Whether the kubelet must keep this pod unready.
    pub fn is_unready(&self, namespace: &str, name: &str) -> bool {
        self.config.read().is_ok_and(|c| {
            c.unready_pods.contains(&PodRef {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        })
    }

    /// Whether a node has failed.
    pub fn node_failed(&self, node: &str) -> bool {
        self.config
            .read()
            .is_ok_and(|c| c.failed_nodes.contains(node))
    }

    /// What to do with a request from the client whose User-Agent product is `client`.
    pub fn decide(&self, info: &RequestInfo, client: &str) -> Decision {
        let cfg = self.config();
        let mut decision = Decision {
            delay: Duration::ZERO,
            error: None,
            cut_watch_after: None,
        };
        if !info.is_resource_request || !cfg.hits(client) {
            return decision;
        }
        for l in &cfg.latency {
            if rule_matches(l.verb.as_ref(), l.resource.as_ref(), info) {
                decision.delay += Duration::from_millis(l.millis);
            }
        }
        if info.verb == "watch" {
            decision.cut_watch_after = cfg.watch_cut_seconds.map(Duration::from_secs);
        }
        for rule in &cfg.api_errors {
            if rule_matches(rule.verb.as_ref(), rule.resource.as_ref(), info)
                && self.draw() < rule.probability
            {
                decision.error = Some(failure(&rule.error, info));
                break;
            }
        }
        decision
    }
}

fn qualified(info: &RequestInfo) -> String {
    if info.group.is_empty() {
        info.resource.clone()
    } else {
        format!("{}.{}", info.resource, info.group)
    }
}

/// The `Status` an injected error answers with.
pub fn failure(err: &InjectedError, info: &RequestInfo) -> InjectedFailure {
    let name = info.name.clone().unwrap_or_default();
    match err {
        InjectedError::InternalError => InjectedFailure {
            code: 500,
            retry_after: None,
            body: json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Internal error occurred: injected by kubesim",
                "reason": "InternalError",
                "details": {"causes": [{"message": "injected by kubesim"}]},
                "code": 500
            }),
        },
        InjectedError::TooManyRequests {
            retry_after_seconds,
        } => InjectedFailure {
            code: 429,
            retry_after: Some(*retry_after_seconds),
            body: json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server has received too many requests and has asked us to try again later",
                "reason": "TooManyRequests",
                "details": {"retryAfterSeconds": retry_after_seconds},
                "code": 429
            }),
        },
        InjectedError::Conflict => InjectedFailure {
            code: 409,
            retry_after: None,
            body: json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", qualified(info)),
                "reason": "Conflict",
                "details": {"name": name, "group": (!info.group.is_empty()).then(|| info.group.clone()), "kind": info.resource},
                "code": 409
            }),
        },
    }
}

/// The `/sim/…` admin endpoints. The API server's request pipeline itself
/// consults [`Faults::decide`] for every request (latency, injected errors,
/// watch cuts); these routes switch the state at run time:
///
/// | method and path | effect |
/// |---|---|
/// | `GET /sim/faults` | the current [`FaultConfig`] |
/// | `PUT /sim/faults` | replace it (JSON body) |
/// | `DELETE /sim/faults` | remove every fault |
/// | `POST /sim/nodes/{node}/fail`, `…/recover` | fail or recover a node |
/// | `POST /sim/pods/{ns}/{name}/unready`, `…/ready` | force a pod's Ready condition False, or stop |
pub mod http {
    use axum::{
        Json, Router,
        extract::{Path, State},
        routing::{get, post},
    };

    use super::{FaultConfig, Faults, PodRef};

    /// The `/sim/…` admin routes.
    pub fn admin_router(faults: Faults) -> Router {
        Router::new()
            .route(
                "/sim/faults",
                get(get_faults).put(put_faults).delete(clear_faults),
            )
            .route("/sim/nodes/{node}/fail", post(fail_node))
            .route("/sim/nodes/{node}/recover", post(recover_node))
            .route("/sim/pods/{ns}/{name}/unready", post(pod_unready))
            .route("/sim/pods/{ns}/{name}/ready", post(pod_ready))
            .with_state(faults)
    }

    async fn get_faults(State(f): State<Faults>) -> Json<FaultConfig> {
        Json(f.config())
    }

    async fn put_faults(
        State(f): State<Faults>,
        Json(cfg): Json<FaultConfig>,
    ) -> Json<FaultConfig> {
        f.set(cfg);
        Json(f.config())
    }

    async fn clear_faults(State(f): State<Faults>) -> Json<FaultConfig> {
        f.clear();
        Json(f.config())
    }

    async fn fail_node(State(f): State<Faults>, Path(node): Path<String>) -> Json<FaultConfig> {
        f.update(|c| {
            c.failed_nodes.insert(node);
        });
        Json(f.config())
    }

    async fn recover_node(State(f): State<Faults>, Path(node): Path<String>) -> Json<FaultConfig> {
        f.update(|c| {
            c.failed_nodes.remove(&node);
        });
        Json(f.config())
    }

    async fn pod_unready(
        State(f): State<Faults>,
        Path((namespace, name)): Path<(String, String)>,
    ) -> Json<FaultConfig> {
        f.update(|c| {
            c.unready_pods.insert(PodRef { namespace, name });
        });
        Json(f.config())
    }

    async fn pod_ready(
        State(f): State<Faults>,
        Path((namespace, name)): Path<(String, String)>,
    ) -> Json<FaultConfig> {
        f.update(|c| {
            c.unready_pods.remove(&PodRef { namespace, name });
        });
        Json(f.config())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_info_parses_core_group_and_subresource_paths() {
        let i = RequestInfo::parse(
            "POST",
            "/api/v1/namespaces/default/pods/web-0/eviction",
            None,
        );
        assert_eq!(
            (
                i.verb.as_str(),
                i.resource.as_str(),
                i.subresource.as_deref(),
                i.name.as_deref()
            ),
            ("create", "pods", Some("eviction"), Some("web-0"))
        );
        let i = RequestInfo::parse(
            "GET",
            "/apis/apps/v1/namespaces/ns/statefulsets",
            Some("watch=true&resourceVersion=5"),
        );
        assert_eq!(
            (i.verb.as_str(), i.group.as_str(), i.namespace.as_deref()),
            ("watch", "apps", Some("ns"))
        );
        let i = RequestInfo::parse("GET", "/api/v1/namespaces/kube-system", None);
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str(), i.name.as_deref()),
            ("get", "namespaces", Some("kube-system"))
        );
        assert!(!RequestInfo::parse("GET", "/apis/apps/v1", None).is_resource_request);
        assert!(!RequestInfo::parse("GET", "/sim/faults", None).is_resource_request);
    }

    #[test]
    fn error_rules_fire_by_verb_resource_and_probability() {
        let f = Faults::new(Some(7));
        f.update(|c| {
            c.api_errors.push(ApiErrorRule {
                verb: Some("create".into()),
                resource: Some("pods/eviction".into()),
                probability: 1.0,
                error: InjectedError::TooManyRequests {
                    retry_after_seconds: 3,
                },
            });
            c.api_errors.push(ApiErrorRule {
                verb: Some("patch".into()),
                resource: Some("statefulsets".into()),
                probability: 0.5,
                error: InjectedError::Conflict,
            });
        });
        let ev = RequestInfo::parse("POST", "/api/v1/namespaces/d/pods/p/eviction", None);
        let e = f.decide(&ev, "test").error.unwrap();
        assert_eq!((e.code, e.retry_after), (429, Some(3)));
        let get = RequestInfo::parse("GET", "/api/v1/namespaces/d/pods/p", None);
        assert!(f.decide(&get, "test").error.is_none());
        let patch =
            RequestInfo::parse("PATCH", "/apis/apps/v1/namespaces/d/statefulsets/web", None);
        let fired = (0..1000)
            .filter(|_| f.decide(&patch, "test").error.is_some())
            .count();
        assert!((400..600).contains(&fired), "about half fire: {fired}");
        let body = f.decide(&ev, "test").error.unwrap().body;
        assert_eq!(body["reason"], "TooManyRequests");
        f.clear();
        assert!(f.decide(&ev, "test").error.is_none());
    }

    #[test]
    fn request_faults_can_be_limited_to_some_clients() {
        let f = Faults::new(Some(1));
        f.set(
            serde_json::from_value(json!({
                "apiErrors": [{"probability": 1.0, "error": {"type": "internalError"}}],
                "latency": [{"millis": 30}],
                "watchCutSeconds": 2,
                "userAgents": ["sroll-operator"]
            }))
            .unwrap(),
        );
        let watch = RequestInfo::parse("GET", "/api/v1/pods", Some("watch=true"));
        let hit = f.decide(&watch, "sroll-operator");
        assert_eq!(hit.error.map(|e| e.code), Some(500));
        assert_eq!(hit.delay, Duration::from_millis(30));
        assert_eq!(hit.cut_watch_after, Some(Duration::from_secs(2)));
        let spared = f.decide(&watch, "kubectl");
        assert_eq!(
            spared,
            Decision {
                delay: Duration::ZERO,
                error: None,
                cut_watch_after: None
            }
        );
        f.update(|c| c.user_agents.clear());
        assert!(
            f.decide(&watch, "kubectl").error.is_some(),
            "empty list: every client"
        );
    }

    #[test]
    fn config_round_trips_as_json() {
        let cfg: FaultConfig = serde_json::from_value(json!({
            "apiErrors": [{"verb": "get", "probability": 0.1, "error": {"type": "internalError"}}],
            "latency": [{"millis": 20}],
            "watchCutSeconds": 5,
            "unreadyPods": [{"namespace": "d", "name": "web-0"}],
            "failedNodes": ["kubesim-node-1"]
        }))
        .unwrap();
        assert_eq!(cfg.node_eviction_seconds, 300);
        let f = Faults::default();
        f.set(cfg.clone());
        assert!(f.is_unready("d", "web-0"));
        assert!(f.node_failed("kubesim-node-1"));
        let watch = RequestInfo::parse("GET", "/api/v1/pods", Some("watch=1"));
        let d = f.decide(&watch, "test");
        assert_eq!(d.cut_watch_after, Some(Duration::from_secs(5)));
        assert_eq!(d.delay, Duration::from_millis(20));
        assert_eq!(
            serde_json::from_value::<FaultConfig>(serde_json::to_value(&cfg).unwrap()).unwrap(),
            cfg
        );
    }
}
