//! Consul's catalog and health endpoints as the operator queries them:
//! `/v1/catalog/services?dc=` and `/v1/health/service/<name>?dc=&passing`, with `X-Consul-Token`
//! ACLs (403 "ACL not found" for a wrong or missing token). A service's instances are either given
//! (`(address, check status)` pairs) or computed on each query by a [`Source`] (e.g. from the
//! cluster's pods). It records every query, answers 500 while [`ConsulState::down`], and leaves
//! queries for the datacenters in [`ConsulState::hanging_dcs`] unanswered for good (a
//! cross-datacenter forward to an unreachable datacenter hangs like this).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::Fake;

/// A service's instances, computed on each query: `(address, check status)` pairs.
pub type Source = Arc<dyn Fn() -> BoxFuture<'static, Vec<(String, String)>> + Send + Sync>;

/// What the fake Consul serves and saw.
#[derive(Default)]
pub struct ConsulState {
    /// service → `(address, check status)` of each instance (`passing`, `warning`, `critical`).
    pub services: BTreeMap<String, Vec<(String, String)>>,
    /// Services whose instances a [`Source`] computes on each query.
    sources: BTreeMap<String, Source>,
    /// The ACL token required, if any.
    pub token: Option<String>,
    /// Every query: `catalog dc=…` or `health <service> dc=… passing=…`.
    pub queries: Vec<String>,
    /// Answer 500 to everything.
    pub down: bool,
    /// Datacenters whose queries are never answered.
    pub hanging_dcs: BTreeSet<String>,
}

/// The fake Consul agent (a handle on its state; serve it with [`Fake::serve`]).
#[derive(Clone, Default)]
pub struct Consul {
    state: Arc<Mutex<ConsulState>>,
}

impl Consul {
    /// A Consul serving nothing yet, without ACLs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `service` with `instances` (`(address, check status)`).
    pub fn service(self, service: &str, instances: &[(&str, &str)]) -> Self {
        self.state().services.insert(
            service.to_owned(),
            instances
                .iter()
                .map(|(ip, status)| ((*ip).to_owned(), (*status).to_owned()))
                .collect(),
        );
        self
    }

    /// Serves `service` with the instances `source` computes on each query.
    pub fn computed(self, service: &str, source: Source) -> Self {
        self.state().sources.insert(service.to_owned(), source);
        self
    }

    /// Requires ACL token `token`.
    pub fn token(self, token: &str) -> Self {
        self.state().token = Some(token.to_owned());
        self
    }

    /// Its state.
    pub fn state(&self) -> MutexGuard<'_, ConsulState> {
        self.state.lock().expect("the fake Consul's state")
    }

    /// The answer to give before looking at the services, if any; records the query.
    async fn gate(
        &self,
        headers: &HeaderMap,
        query: String,
        dc: Option<&String>,
    ) -> Option<Response> {
        let hang = {
            let mut c = self.state();
            if c.down {
                return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
            let sent = headers.get("x-consul-token").and_then(|v| v.to_str().ok());
            if let Some(t) = &c.token
                && sent != Some(t.as_str())
            {
                return Some((StatusCode::FORBIDDEN, "ACL not found").into_response());
            }
            c.queries.push(query);
            dc.is_some_and(|dc| c.hanging_dcs.contains(dc))
        };
        if hang {
            std::future::pending::<()>().await;
        }
        None
    }
}

async fn catalog(
    State(consul): State<Consul>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = format!("catalog dc={:?}", q.get("dc"));
    if let Some(answer) = consul.gate(&headers, query, q.get("dc")).await {
        return answer;
    }
    let c = consul.state();
    let map: serde_json::Map<String, Value> = c
        .services
        .keys()
        .chain(c.sources.keys())
        .map(|k| (k.clone(), json!([])))
        .collect();
    Json(Value::Object(map)).into_response()
}

async fn health(
    State(consul): State<Consul>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let passing_only = q.contains_key("passing");
    let query = format!("health {name} dc={:?} passing={passing_only}", q.get("dc"));
    if let Some(answer) = consul.gate(&headers, query, q.get("dc")).await {
        return answer;
    }
    let (fixed, source) = {
        let c = consul.state();
        (
            c.services.get(&name).cloned(),
            c.sources.get(&name).cloned(),
        )
    };
    let instances = match source {
        Some(source) => source().await,
        None => fixed.unwrap_or_default(),
    };
    let entries: Vec<Value> = instances
        .iter()
        .filter(|(_, status)| !passing_only || status == "passing")
        .enumerate()
        .map(|(i, (ip, status))| {
            json!({
                "Node": {"Node": format!("node-{i}"), "Address": "192.168.0.1"},
                "Service": {"ID": format!("{name}-{i}"), "Service": name, "Address": ip, "Port": 11211},
                "Checks": [{"CheckID": "serfHealth", "Status": "passing"}, {"CheckID": "app", "Status": status}]
            })
        })
        .collect();
    Json(Value::Array(entries)).into_response()
}

impl Fake for Consul {
    fn router(&self) -> Router {
        Router::new()
            .route("/v1/catalog/services", get(catalog))
            .route("/v1/health/service/{name}", get(health))
            .with_state(self.clone())
    }
}
