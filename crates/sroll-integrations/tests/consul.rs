//! Consul health gating against a local server implementing `/v1/catalog/services` and
//! `/v1/health/service/<name>?dc=&passing` with `X-Consul-Token` ACLs.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};
use sroll_integrations::{
    Discovery, DiscoveryConfig, DiscoveryHealth, RolloutKey, SecretToken,
    discovery::{ConsulClient, ConsulQuery},
    http::Timeouts,
};

use common::{serve, wait_for};

/// service → [(pod IP, check status)].
#[derive(Default)]
struct Consul {
    services: HashMap<String, Vec<(String, &'static str)>>,
    token: Option<String>,
    queries: Vec<String>,
}

type Shared = Arc<Mutex<Consul>>;

fn denied(c: &Consul, headers: &HeaderMap) -> Option<Response> {
    let sent = headers.get("x-consul-token").and_then(|v| v.to_str().ok());
    match &c.token {
        Some(t) if sent != Some(t.as_str()) => {
            Some((StatusCode::FORBIDDEN, "ACL not found").into_response())
        }
        _ => None,
    }
}

async fn catalog(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut c = s.lock().expect("lock");
    if let Some(r) = denied(&c, &headers) {
        return r;
    }
    c.queries.push(format!("catalog dc={:?}", q.get("dc")));
    let map: serde_json::Map<String, Value> =
        c.services.keys().map(|k| (k.clone(), json!([]))).collect();
    Json(Value::Object(map)).into_response()
}

async fn health(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut c = s.lock().expect("lock");
    if let Some(r) = denied(&c, &headers) {
        return r;
    }
    c.queries.push(format!(
        "health {name} dc={:?} passing={}",
        q.get("dc"),
        q.contains_key("passing")
    ));
    let passing_only = q.contains_key("passing");
    let entries: Vec<Value> = c
        .services
        .get(&name)
        .into_iter()
        .flatten()
        .filter(|(_, status)| !passing_only || *status == "passing")
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

async fn fake_consul(
    services: &[(&str, &[(&str, &'static str)])],
    token: Option<&str>,
) -> (Shared, String) {
    let shared: Shared = Arc::new(Mutex::new(Consul {
        services: services
            .iter()
            .map(|(n, e)| {
                (
                    (*n).to_owned(),
                    e.iter().map(|(ip, s)| ((*ip).to_owned(), *s)).collect(),
                )
            })
            .collect(),
        token: token.map(str::to_owned),
        queries: Vec::new(),
    }));
    let router = Router::new()
        .route("/v1/catalog/services", get(catalog))
        .route("/v1/health/service/{name}", get(health))
        .with_state(shared.clone());
    let addr = serve(router).await;
    (shared, format!("http://{addr}"))
}

fn query(services: &[&str], token: Option<&str>) -> ConsulQuery {
    ConsulQuery {
        dc: Some("us-east-1".into()),
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        token: token.map(SecretToken::new),
    }
}

fn short() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn consul_reports_failing_and_passing_pods_and_which_services_exist() {
    let (consul, addr) = fake_consul(
        &[(
            "memcached",
            &[
                ("10.0.0.1", "passing"),
                ("10.0.0.2", "critical"),
                ("10.0.0.3", "warning"),
            ],
        )],
        Some("acl-secret"),
    )
    .await;
    let client = ConsulClient::new(&addr, short()).expect("client");
    let DiscoveryHealth::Reachable(h) = client
        .health(&query(&["memcached", "absent"], Some("acl-secret")))
        .await
    else {
        panic!("reachable");
    };
    assert_eq!(h.existing_services(), vec!["memcached".to_owned()]);
    assert!(h.is_healthy("memcached-0", Some("10.0.0.1")));
    assert!(
        !h.is_healthy("memcached-1", Some("10.0.0.2")),
        "critical fails"
    );
    assert!(
        !h.is_healthy("memcached-2", Some("10.0.0.3")),
        "warning is not passing"
    );
    assert!(!h.is_healthy("memcached-3", None));
    assert_eq!(
        consul.lock().expect("lock").queries,
        vec![
            "catalog dc=Some(\"us-east-1\")".to_owned(),
            "health memcached dc=Some(\"us-east-1\") passing=true".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_bad_token_or_a_dead_agent_is_unreachable_not_unhealthy() {
    let (_consul, addr) = fake_consul(
        &[("memcached", &[("10.0.0.1", "passing")])],
        Some("acl-secret"),
    )
    .await;
    let client = ConsulClient::new(&addr, short()).expect("client");
    let DiscoveryHealth::Unreachable { reason } =
        client.health(&query(&["memcached"], Some("wrong"))).await
    else {
        panic!("a 403 is unreachable");
    };
    assert!(
        reason.contains("403") && !reason.contains("wrong"),
        "{reason}"
    );

    // Nothing listens on this port once the listener is dropped.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dead = ConsulClient::new(&format!("127.0.0.1:{port}"), short()).expect("client");
    assert!(matches!(
        dead.health(&query(&["memcached"], None)).await,
        DiscoveryHealth::Unreachable { .. }
    ));
}

#[tokio::test]
async fn the_poller_follows_pods_from_failing_to_passing_and_wakes_the_operator() {
    let (consul, addr) = fake_consul(
        &[(
            "memcached",
            &[("10.0.0.1", "passing"), ("10.0.0.2", "critical")],
        )],
        None,
    )
    .await;
    let woken = Arc::new(Mutex::new(Vec::<RolloutKey>::new()));
    let w = woken.clone();
    let discovery = Discovery::spawn(DiscoveryConfig {
        consul_addr: Some(addr),
        interval: Duration::from_millis(50),
        timeouts: short(),
        waker: Some(Arc::new(move |k: &RolloutKey| {
            w.lock().expect("lock").push(k.clone())
        })),
        ..DiscoveryConfig::default()
    })
    .expect("discovery");
    let key = RolloutKey::new("cache", "memcached");
    let healthy = |ip: &'static str| {
        let discovery = discovery.clone();
        let key = key.clone();
        move || {
            let obs = discovery.observe(&key, query(&["memcached"], None));
            async move {
                matches!(obs, Some(o) if matches!(&o.health, DiscoveryHealth::Reachable(h) if h.is_healthy("p", Some(ip))))
            }
        }
    };
    assert_eq!(
        discovery.observe(&key, query(&["memcached"], None)),
        None,
        "nothing polled yet"
    );
    wait_for("the first poll", healthy("10.0.0.1")).await;
    assert!(!healthy("10.0.0.2")().await);
    consul.lock().expect("lock").services.insert(
        "memcached".into(),
        vec![
            ("10.0.0.1".into(), "passing"),
            ("10.0.0.2".into(), "passing"),
        ],
    );
    wait_for("the pod to pass", healthy("10.0.0.2")).await;
    assert!(
        woken.lock().expect("lock").len() >= 2,
        "woken on each change"
    );
}

/// A Consul whose queries for datacenter `remote` are read and never answered (a cross-datacenter
/// forward to an unreachable datacenter hangs like this); the others get an empty service.
async fn consul_hanging_for_remote() -> String {
    async fn answer(Query(q): Query<HashMap<String, String>>, body: Value) -> Json<Value> {
        if q.get("dc").map(String::as_str) == Some("remote") {
            std::future::pending::<()>().await;
        }
        Json(body)
    }
    let router = Router::new()
        .route(
            "/v1/catalog/services",
            get(|q| answer(q, json!({"memcached": []}))),
        )
        .route("/v1/health/service/{name}", get(|q| answer(q, json!([]))));
    format!("http://{}", serve(router).await)
}

#[tokio::test]
async fn one_rollouts_hanging_query_does_not_hold_back_the_others() {
    let discovery = Discovery::spawn(DiscoveryConfig {
        consul_addr: Some(consul_hanging_for_remote().await),
        interval: Duration::from_millis(50),
        // Far longer than the test: the hanging poll never ends while it runs.
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(120),
        },
        ..DiscoveryConfig::default()
    })
    .expect("discovery");
    let (stuck, fine) = (
        RolloutKey::new("cache", "far"),
        RolloutKey::new("cache", "near"),
    );
    let remote = ConsulQuery {
        dc: Some("remote".into()),
        ..query(&["memcached"], None)
    };
    assert_eq!(discovery.observe(&stuck, remote.clone()), None);
    // The local rollout is polled again and again while the remote one's first poll hangs; with
    // one round of polls joined before the next, it got one answer and then waited with it.
    let mut answers = std::collections::BTreeSet::new();
    wait_for("five fresh answers for the local rollout", || {
        if let Some(o) = discovery.observe(&fine, query(&["memcached"], None)) {
            assert!(matches!(o.health, DiscoveryHealth::Reachable(_)), "{o:?}");
            answers.insert(o.at);
        }
        let still_hanging = discovery.observe(&stuck, remote.clone()).is_none();
        assert!(still_hanging, "the remote query was expected to hang");
        let enough = answers.len() >= 5;
        async move { enough }
    })
    .await;
}

#[tokio::test]
async fn without_a_consul_address_discovery_is_unreachable_with_a_reason() {
    let discovery = Discovery::spawn(DiscoveryConfig::default()).expect("discovery");
    let obs = discovery
        .observe(&RolloutKey::new("a", "b"), query(&["x"], None))
        .expect("immediate");
    assert!(
        matches!(obs.health, DiscoveryHealth::Unreachable { ref reason } if reason.contains("--consul-addr"))
    );
}
