//! Consul health gating against a local server implementing `/v1/catalog/services` and
//! `/v1/health/service/<name>?dc=&passing` with `X-Consul-Token` ACLs.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sroll_integrations::{
    Discovery, DiscoveryConfig, DiscoveryHealth, RolloutKey, SecretToken,
    discovery::{ConsulClient, ConsulQuery},
    http::Timeouts,
};
use sroll_testkit::fakes::{Consul, Fake, Server};

use common::DEADLINE;
use sroll_testkit::wait_for;

/// A fake Consul serving `services` (`(pod IP, check status)` each), requiring `token` if given,
/// its server (serving while it lives) and its address.
async fn fake_consul(
    services: &[(&str, &[(&str, &str)])],
    token: Option<&str>,
) -> (Consul, Server, String) {
    let mut consul = Consul::new();
    for (name, instances) in services {
        consul = consul.service(name, instances);
    }
    if let Some(token) = token {
        consul = consul.token(token);
    }
    let server = consul.serve().await.expect("the fake Consul serves");
    let addr = server.url("");
    (consul, server, addr)
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
    let (consul, _server, addr) = fake_consul(
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
        consul.state().queries,
        vec![
            "catalog dc=Some(\"us-east-1\")".to_owned(),
            "health memcached dc=Some(\"us-east-1\") passing=true".to_owned(),
        ]
    );
}

#[tokio::test]
async fn a_bad_token_or_a_dead_agent_is_unreachable_not_unhealthy() {
    let (_consul, _server, addr) = fake_consul(
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
    let (consul, _server, addr) = fake_consul(
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
    wait_for("the first poll", DEADLINE, healthy("10.0.0.1")).await;
    assert!(!healthy("10.0.0.2")().await);
    consul.state().services.insert(
        "memcached".into(),
        vec![
            ("10.0.0.1".into(), "passing".into()),
            ("10.0.0.2".into(), "passing".into()),
        ],
    );
    wait_for("the pod to pass", DEADLINE, healthy("10.0.0.2")).await;
    assert!(
        woken.lock().expect("lock").len() >= 2,
        "woken on each change"
    );
}

/// A Consul whose queries for datacenter `remote` are read and never answered (a cross-datacenter
/// forward to an unreachable datacenter hangs like this); the others get an empty service.
async fn consul_hanging_for_remote() -> (Consul, Server, String) {
    let (consul, server, addr) = fake_consul(&[("memcached", &[])], None).await;
    consul.state().hanging_dcs.insert("remote".into());
    (consul, server, addr)
}

#[tokio::test]
async fn one_rollouts_hanging_query_does_not_hold_back_the_others() {
    let (_consul, _server, addr) = consul_hanging_for_remote().await;
    let discovery = Discovery::spawn(DiscoveryConfig {
        consul_addr: Some(addr),
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
    wait_for("five fresh answers for the local rollout", DEADLINE, || {
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
