//! The real operator on kubesim with its integrations pointed at local servers implementing the
//! documented shapes of the Slack Web API, a release-callback receiver and Consul's health and
//! catalog endpoints (issue 6's "Done when").
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::StatefulSet,
        core::v1::{Pod, Secret},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use k8s_openapi::{
    api::{
        apps::v1::StatefulSetSpec,
        core::v1::{Container, Namespace, PodSpec, PodTemplateSpec},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use sroll_api::{Bapi, Phase, ServiceDiscovery, StatefulsetRollout, condition_types as ct};
use sroll_api::{EmbeddedStatefulSet, StatefulsetRolloutSpec};
use sroll_operator::Operator;
use sroll_operator::{
    Settings,
    integrations::{IntegrationSettings, SecretLocation},
};
use tokio::{sync::oneshot, task::JoinHandle};

const DEADLINE: Duration = Duration::from_secs(60);
const SPEED: f64 = 10.0;

/// Polls `f` every 50 ms until it returns `Some`, failing the test after `deadline`.
async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// kubesim with its controllers and fake kubelets, the CRD, a namespace, and the operator.
struct Env {
    cluster: kubesim::cluster::Handle,
    _sim: kubesim::controllers::runtime::Simulation,
    client: Client,
    ns: String,
    operator: Option<(oneshot::Sender<()>, JoinHandle<sroll_operator::Result<()>>)>,
}

impl Env {
    async fn start() -> Self {
        let cluster = kubesim::cluster::Cluster::start(kubesim::cluster::ClusterConfig {
            speed: SPEED,
            ..Default::default()
        })
        .await
        .unwrap();
        let sim = kubesim::controllers::runtime::Simulation::start(
            cluster.api().clone(),
            kubesim::controllers::runtime::SimConfig {
                speed: SPEED,
                ..Default::default()
            },
        )
        .unwrap();
        let client = cluster.client();
        for crd in sroll_api::crd::crds() {
            Api::<CustomResourceDefinition>::all(client.clone())
                .create(&PostParams::default(), &crd)
                .await
                .unwrap();
        }
        let ns = "integrations".to_owned();
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.clone()),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                },
            )
            .await
            .unwrap();
        let rollouts: Api<StatefulsetRollout> = Api::namespaced(client.clone(), &ns);
        wait_for("the CRD to be served", DEADLINE, || {
            let rollouts = rollouts.clone();
            async move { rollouts.list(&ListParams::default()).await.ok() }
        })
        .await;
        Self {
            cluster,
            _sim: sim,
            client,
            ns,
            operator: None,
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            namespaces: vec![self.ns.clone()],
            instance: "integrations".into(),
            ..Settings::default()
        }
    }

    fn rollouts(&self) -> Api<StatefulsetRollout> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn rollout(&self, name: &str) -> StatefulsetRollout {
        self.rollouts().get(name).await.unwrap()
    }

    async fn kill_operator(&mut self) {
        if let Some((_, task)) = self.operator.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn finish(mut self) {
        if let Some((stop, task)) = self.operator.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(DEADLINE, task).await;
        }
        self.cluster.shutdown().await;
    }

    async fn wait_rollout(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&StatefulsetRollout) -> bool,
    ) -> StatefulsetRollout {
        let api = self.rollouts();
        let pred = &pred;
        wait_for(what, DEADLINE, || {
            let api = api.clone();
            async move {
                let r = api.get(name).await.ok()?;
                pred(&r).then_some(r)
            }
        })
        .await
    }

    async fn wait_phase(&self, name: &str, phase: Phase) -> StatefulsetRollout {
        self.wait_rollout(name, &format!("{name} to reach {phase}"), |r| {
            let s = r.status.clone().unwrap_or_default();
            s.phase.as_ref() == Some(&phase) && s.observed_generation == r.metadata.generation
        })
        .await
    }
}

/// A rollout of `replicas` pods of `image` (Parallel pods, `rolloutIdentity` `identity`).
fn rollout(name: &str, replicas: i32, image: &str, identity: &str) -> StatefulsetRollout {
    let labels: BTreeMap<String, String> = [("app".to_owned(), name.to_owned())].into();
    let mut r = StatefulsetRollout::new(
        name,
        StatefulsetRolloutSpec {
            sts: EmbeddedStatefulSet {
                api_version: Some("apps/v1".into()),
                kind: Some("StatefulSet".into()),
                metadata: Default::default(),
                spec: StatefulSetSpec {
                    replicas: Some(replicas),
                    selector: LabelSelector {
                        match_labels: Some(labels.clone()),
                        match_expressions: None,
                    },
                    service_name: Some(name.into()),
                    pod_management_policy: Some("Parallel".into()),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            containers: vec![Container {
                                name: "app".into(),
                                image: Some(image.into()),
                                ..Container::default()
                            }],
                            termination_grace_period_seconds: Some(1),
                            ..PodSpec::default()
                        }),
                    },
                    ..StatefulSetSpec::default()
                },
            },
            percent: 100,
            pause_requested: None,
            min_pod_eviction_interval_seconds: None,
            rollout_identity: Some(identity.into()),
            channel: None,
            bapi: None,
            service_discovery: None,
            strategy: None,
            max_unavailable: None,
            progress_deadline_seconds: None,
            notifications: None,
            adopt_existing: None,
            recreate_on_immutable_change: None,
        },
    );
    r.metadata.namespace = None;
    r
}

const TOKEN: &str = "xoxb-e2e-token";

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

// ---- Slack ----------------------------------------------------------------------------------

#[derive(Default)]
struct Slack {
    posts: Vec<String>,
    messages: HashMap<String, Vec<Value>>,
}

async fn slack_post(
    State(s): State<Arc<Mutex<Slack>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return Json(json!({"ok": false, "error": "invalid_auth"}));
    }
    let mut s = s.lock().unwrap();
    let ts = format!("1700000000.{:06}", s.posts.len() + 1);
    s.posts.push(ts.clone());
    s.messages.entry(ts.clone()).or_default().push(body);
    Json(json!({"ok": true, "channel": "C0DEPLOYS", "ts": ts}))
}

async fn slack_update(State(s): State<Arc<Mutex<Slack>>>, Json(body): Json<Value>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    let ts = body["ts"].as_str().unwrap_or_default().to_owned();
    match s.messages.get_mut(&ts) {
        Some(h) if body["channel"] == "C0DEPLOYS" => {
            h.push(body);
            Json(json!({"ok": true, "channel": "C0DEPLOYS", "ts": ts}))
        }
        _ => Json(json!({"ok": false, "error": "message_not_found"})),
    }
}

// ---- Callback receiver -----------------------------------------------------------------------

#[derive(Default)]
struct Receiver {
    fail_first: usize,
    calls: Vec<(String, Value, u16)>,
}

async fn receive(
    State(s): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let mut r = s.lock().unwrap();
    let status = if r.fail_first > 0 {
        r.fail_first -= 1;
        503
    } else {
        200
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    r.calls.push((key, body, status));
    StatusCode::from_u16(status).unwrap()
}

// ---- Consul ---------------------------------------------------------------------------------

/// Consul whose `memcached` service reports the set's pods: pods at the update revision pass only
/// once `new_pods_pass` is set.
struct Consul {
    client: Client,
    ns: String,
    set: String,
    new_pods_pass: Mutex<bool>,
    down: Mutex<bool>,
}

async fn consul_catalog(State(c): State<Arc<Consul>>) -> Response {
    if *c.down.lock().unwrap() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Json(json!({"consul": [], "memcached": ["v1"]})).into_response()
}

async fn consul_health(State(c): State<Arc<Consul>>, Path(name): Path<String>) -> Response {
    if *c.down.lock().unwrap() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if name != "memcached" {
        return Json(json!([])).into_response();
    }
    let update = Api::<StatefulSet>::namespaced(c.client.clone(), &c.ns)
        .get_opt(&c.set)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.status.and_then(|s| s.update_revision));
    let pass_new = *c.new_pods_pass.lock().unwrap();
    let pods = Api::<Pod>::namespaced(c.client.clone(), &c.ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let entries: Vec<Value> = pods
        .iter()
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            let rev = p.labels().get("controller-revision-hash").cloned();
            let new = rev.is_some() && rev == update;
            (!new || pass_new).then(|| {
                json!({"Node": {"Address": "192.168.1.1"}, "Service": {"Service": "memcached", "Address": ip},
                       "Checks": [{"Status": "passing"}]})
            })
        })
        .collect();
    Json(Value::Array(entries)).into_response()
}

// ---- helpers --------------------------------------------------------------------------------

struct World {
    env: Env,
    slack: Arc<Mutex<Slack>>,
    receiver: Arc<Mutex<Receiver>>,
    receiver_addr: SocketAddr,
    settings: Settings,
}

async fn world(consul: Option<String>) -> World {
    let env = Env::start().await;
    let slack: Arc<Mutex<Slack>> = Arc::default();
    let slack_addr = serve(
        Router::new()
            .route("/api/chat.postMessage", post(slack_post))
            .route("/api/chat.update", post(slack_update))
            .with_state(slack.clone()),
    )
    .await;
    let receiver: Arc<Mutex<Receiver>> = Arc::default();
    let receiver_addr = serve(
        Router::new()
            .route("/callback", post(receive))
            .with_state(receiver.clone()),
    )
    .await;
    Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("slack".into()),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(
                    "token".to_owned(),
                    ByteString(TOKEN.as_bytes().to_vec()),
                )])),
                ..Secret::default()
            },
        )
        .await
        .unwrap();
    let settings = Settings {
        integrations: IntegrationSettings {
            cluster_name: "kubesim-e2e".into(),
            slack_api_url: Some(format!("http://{slack_addr}/api")),
            slack_token_secret: Some(SecretLocation {
                namespace: env.ns.clone(),
                name: "slack".into(),
                key: "token".into(),
            }),
            callback_allow: vec![format!("127.0.0.1:{}", receiver_addr.port())],
            consul_addr: consul,
            discovery_interval: Some(Duration::from_millis(200)),
        },
        ..env.settings()
    };
    World {
        env,
        slack,
        receiver,
        receiver_addr,
        settings,
    }
}

impl World {
    fn start(&mut self) {
        let (tx, rx) = oneshot::channel::<()>();
        let op = Operator::new(self.env.client.clone(), self.settings.clone());
        let task = tokio::spawn(op.run(async move {
            let _ = rx.await;
        }));
        self.env.operator = Some((tx, task));
    }

    async fn apply(&self, r: &StatefulsetRollout) {
        self.env
            .rollouts()
            .patch(
                &r.name_any(),
                &PatchParams::apply("scenario-user").force(),
                &Patch::Apply(r),
            )
            .await
            .expect("the rollout is accepted");
    }

    fn callback_url(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.receiver_addr.port())
    }
}

fn with_integrations(
    r: &StatefulsetRollout,
    channel: bool,
    bapi: Option<(String, &str)>,
) -> StatefulsetRollout {
    let mut built = r.clone();
    if channel {
        built.spec.channel = Some("#deploys".into());
        built.spec.notifications = Some(sroll_api::Notifications {
            level: Some(sroll_api::NotificationLevel::Debug),
            webhooks: vec![],
        });
    }
    built.spec.bapi = bapi.map(|(url, stage)| Bapi {
        url,
        stage_id: stage.into(),
    });
    built
}

fn condition(r: &StatefulsetRollout, type_: &str) -> Option<(String, String, String)> {
    r.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

// ---- scenarios ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_posts_one_slack_message_updates_it_and_calls_back_exactly_once_across_restarts()
{
    let mut w = world(None).await;
    w.receiver.lock().unwrap().fail_first = 2;
    w.start();
    let base = rollout("memcached", 6, "memcached:1.6.20", "r1");
    w.apply(&with_integrations(
        &base,
        true,
        Some((w.callback_url(), "stage-1")),
    ))
    .await;
    w.env.wait_phase("memcached", Phase::Done).await;
    let first = w
        .env
        .wait_rollout("memcached", "the first callback to be recorded", |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.last_callback_stage_id.as_deref() == Some("stage-1"))
        })
        .await;
    assert_eq!(
        condition(&first, ct::CALLBACK_DELIVERED).map(|c| c.0),
        Some("True".into())
    );

    // A new version, a new stage: the operator is restarted three times while it rolls.
    let next = rollout("memcached", 6, "memcached:1.6.21", "r2");
    w.apply(&with_integrations(
        &next,
        true,
        Some((w.callback_url(), "stage-2")),
    ))
    .await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.env.kill_operator().await;
        w.start();
    }
    let done = w
        .env
        .wait_rollout("memcached", "stage-2 done and called back", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == Some(Phase::Done)
                    && s.observed_generation == r.metadata.generation
                    && s.last_callback_stage_id.as_deref() == Some("stage-2")
            })
        })
        .await;
    // More restarts after completion: nothing is sent again.
    for _ in 0..3 {
        w.env.kill_operator().await;
        w.start();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = done.status.clone().unwrap();
    assert_eq!(status.last_callback_outcome.as_deref(), Some("RolloutDone"));

    {
        let r = w.receiver.lock().unwrap();
        let delivered: Vec<&(String, Value, u16)> = r.calls.iter().filter(|c| c.2 == 200).collect();
        let stages: Vec<&str> = delivered
            .iter()
            .map(|c| c.1["stageId"].as_str().unwrap())
            .collect();
        assert_eq!(
            stages,
            vec!["stage-1", "stage-2"],
            "one delivery per stage: {:?}",
            r.calls
        );
        assert_eq!(r.calls.iter().filter(|c| c.2 == 503).count(), 2);
        assert_eq!(delivered[1].1["outcome"], "RolloutDone");
        assert_eq!(delivered[1].1["cluster"], "kubesim-e2e");
        assert_eq!(delivered[1].1["rolloutIdentity"], "r2");
    }

    // Slack: one message per rollout identity, updated in place, ids in status, outcome shown.
    let message = status.slack_message.clone().expect("status.slackMessage");
    assert_eq!(message.channel, "C0DEPLOYS");
    assert_eq!(message.rollout_identity.as_deref(), Some("r2"));
    wait_for("the final Slack update", DEADLINE, || async {
        let s = w.slack.lock().unwrap();
        message
            .ts
            .iter()
            .all(|ts| {
                s.messages[ts]
                    .last()
                    .is_some_and(|m| m.to_string().contains("RolloutDone"))
            })
            .then_some(())
    })
    .await;
    {
        let s = w.slack.lock().unwrap();
        assert_eq!(
            s.posts.len(),
            2,
            "one message per rollout identity, none duplicated: {:?}",
            s.posts
        );
        assert_eq!(message.ts, vec![s.posts[1].clone()]);
        assert!(
            s.messages[&s.posts[1]].len() >= 2,
            "the message was updated in place"
        );
        let last = s.messages[&s.posts[1]].last().unwrap().to_string();
        assert!(
            last.contains("memcached:1.6.21") && last.contains("kubesim-e2e"),
            "{last}"
        );
    }
    w.env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_to_a_host_not_allowed_is_refused_with_a_condition() {
    let mut w = world(None).await;
    w.start();
    let r = rollout("web", 2, "web:1", "w1");
    w.apply(&with_integrations(
        &r,
        false,
        Some(("http://bapi.internal.example:8080/cb".into(), "s")),
    ))
    .await;
    let refused = w
        .env
        .wait_rollout("web", "the refusal", |r| {
            condition(r, ct::CALLBACK_DELIVERED).is_some_and(|c| c.1 == "CallbackRefused")
        })
        .await;
    let (status, _, message) = condition(&refused, ct::CALLBACK_DELIVERED).unwrap();
    assert_eq!(status, "False");
    assert!(
        message.contains("bapi.internal.example") && message.contains("--callback-allow"),
        "{message}"
    );
    assert_eq!(refused.status.unwrap().last_callback_stage_id, None);
    assert!(w.receiver.lock().unwrap().calls.is_empty());
    w.env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_holds_the_rollout_while_new_pods_fail_and_unreachable_consul_evicts_nothing() {
    // Consul needs the cluster's client: start it on a world without Consul, then point at it.
    let mut w = world(None).await;
    let consul = Arc::new(Consul {
        client: w.env.client.clone(),
        ns: w.env.ns.clone(),
        set: "memcached".into(),
        new_pods_pass: Mutex::new(true),
        down: Mutex::new(false),
    });
    let addr = serve(
        Router::new()
            .route("/v1/catalog/services", get(consul_catalog))
            .route("/v1/health/service/{name}", get(consul_health))
            .with_state(consul.clone()),
    )
    .await;
    w.settings.integrations.consul_addr = Some(format!("http://{addr}"));
    w.start();
    let gated = |image: &str, id: &str| {
        let mut r = rollout("memcached", 4, image, id);
        r.spec.service_discovery = Some(ServiceDiscovery {
            services: vec!["memcached".into(), "absent".into()],
            ..ServiceDiscovery::default()
        });
        r
    };
    w.apply(&gated("memcached:1", "g1")).await;
    let done = w.env.wait_phase("memcached", Phase::Done).await;
    let status = done.status.unwrap();
    assert_eq!(status.consul_services, vec!["memcached".to_owned()]);
    assert_eq!(status.ready_replicas_service_discovery, Some(4));

    // New pods fail their checks: the rollout holds after the first batch.
    *consul.new_pods_pass.lock().unwrap() = false;
    w.apply(&gated("memcached:2", "g2")).await;
    let held = w
        .env
        .wait_rollout(
            "memcached",
            "a new pod Ready but unhealthy in Consul",
            |r| {
                r.status.as_ref().is_some_and(|s| {
                    s.rollout_identity.as_deref() == Some("g2")
                        && s.updated_replicas.unwrap_or(0) >= 1
                        && s.ready_replicas_service_discovery.unwrap_or(4) < 4
                        && s.phase == Some(Phase::InProgress)
                })
            },
        )
        .await;
    let updated = held.status.as_ref().unwrap().updated_replicas.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = w.env.rollout("memcached").await;
    let s = still.status.unwrap();
    assert_eq!(s.phase, Some(Phase::InProgress), "held: {:?}", s.reason);
    assert!(
        s.updated_replicas.unwrap() <= updated + 1,
        "no more than the batch in flight moved"
    );

    // Consul unreachable: nothing more is evicted.
    *consul.down.lock().unwrap() = true;
    *consul.new_pods_pass.lock().unwrap() = true;
    let degraded = w
        .env
        .wait_rollout("memcached", "a DiscoveryUnreachable condition", |r| {
            condition(r, ct::DEGRADED)
                .is_some_and(|c| c.2.contains("unreachable") || c.1 == "DiscoveryUnreachable")
        })
        .await;
    let frozen = degraded.status.unwrap().updated_replicas;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        w.env
            .rollout("memcached")
            .await
            .status
            .unwrap()
            .updated_replicas
            <= frozen.map(|n| n + 1)
    );

    // Consul back, pods passing: the rollout finishes.
    *consul.down.lock().unwrap() = false;
    let done = w
        .env
        .wait_rollout("memcached", "the gated rollout to finish", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == Some(Phase::Done) && s.rollout_identity.as_deref() == Some("g2")
            })
        })
        .await;
    assert_eq!(
        done.status.unwrap().ready_replicas_service_discovery,
        Some(4)
    );
    w.env.finish().await;
}
