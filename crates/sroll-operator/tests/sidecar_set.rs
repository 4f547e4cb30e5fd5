//! SidecarSets (issue 20): the real operator and its real HTTPS admission webhook against kubesim,
//! which calls the webhook for every pod its controllers create and for every SidecarSet written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Namespace, Pod},
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use sroll_api::{clone_set::CloneSet, predicates, sidecar_set::SidecarSet};
use sroll_planner::sidecar_set::{INJECTED_LIST_ANNOTATION, UPGRADABLE_CONDITION, condition_says};
use sroll_testkit::{DEADLINE, Env, clone_set::clone_set, wait_for};

/// The scenario's world: kubesim, the operator watching every namespace (SidecarSets are
/// cluster-scoped) and serving its webhooks over HTTPS on a free local port, registered by URL.
struct World {
    env: Env,
    kubeconfig: PathBuf,
    home: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The requests the operator sent, path and query each, when they are recorded.
type Requests = Arc<Mutex<Vec<String>>>;

async fn world() -> World {
    world_recording(None).await
}

/// [`world`], with every request of the operator's client noted in `requests` when given.
async fn world_recording(requests: Option<Requests>) -> World {
    let home = std::env::temp_dir().join(format!(
        "sroll-sidecarset-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&home).unwrap();
    let kubeconfig = home.join("kubeconfig");
    let mut env = Env::without_operator_on(kubesim::cluster::ClusterConfig {
        write_kubeconfig: Some(kubeconfig.clone()),
        ..sroll_testkit::env::cluster_config()
    })
    .await;
    // The operator itself serves the webhook (every replica does), registered by URL.
    let settings = sroll_operator::Settings {
        namespaces: vec![],
        webhook: Some(env.webhook_settings()),
        ..env.settings()
    };
    match requests {
        None => env.start_operator_with(settings),
        Some(log) => {
            // The operator's client calls kubesim's router in process, through a layer that notes
            // each request; the test's own client stays the HTTP one.
            let router = env.cluster.service().layer(axum::middleware::map_request(
                move |req: axum::extract::Request| {
                    log.lock().unwrap().push(req.uri().to_string());
                    async move { req }
                },
            ));
            let own = std::mem::replace(&mut env.client, kube::Client::new(router, "default"));
            env.start_operator_with(settings);
            env.client = own;
        }
    }
    env.webhook_registered().await;
    World {
        env,
        kubeconfig,
        home,
    }
}

impl World {
    fn sets(&self) -> Api<SidecarSet> {
        Api::all(self.env.client.clone())
    }

    async fn create_set(&self, value: Value) -> kube::Result<SidecarSet> {
        self.sets()
            .create(
                &PostParams::default(),
                &serde_json::from_value(value).unwrap(),
            )
            .await
    }

    /// Waits until the injector's cache holds SidecarSet `name`: probe pods (label `app=probe`,
    /// which every SidecarSet of these tests selects) are created until one comes back injected.
    async fn injector_sees(&self, name: &str) {
        let api = self.env.pod_api();
        let n = AtomicUsize::new(0);
        wait_for(&format!("the injector to see {name}"), DEADLINE, || async {
            let probe: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("probe-{}", n.fetch_add(1, Ordering::SeqCst)), "labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}
            }))
            .unwrap();
            let created = api.create(&PostParams::default(), &probe).await.ok()?;
            let _ = api.delete(&created.name_any(), &Default::default()).await;
            created
                .annotations()
                .get(INJECTED_LIST_ANNOTATION)
                .is_some_and(|l| l.split(',').any(|s| s == name))
                .then_some(())
        })
        .await;
    }

    async fn patch_set(&self, name: &str, spec: Value) {
        self.sets()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": spec})),
            )
            .await
            .expect("the SidecarSet patch is accepted");
    }

    async fn pods(&self, app: &str) -> Vec<Pod> {
        let mut pods: Vec<Pod> = self
            .env
            .pod_api()
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| !predicates::is_terminating(&p.metadata))
            .collect();
        pods.sort_by_key(|p| p.name_any());
        pods
    }

    async fn kubectl(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .args(args)
            .output()
            .await
            .unwrap()
    }

    /// Waits for the SidecarSet's status to satisfy `ok`.
    async fn wait_status(
        &self,
        name: &str,
        what: &str,
        ok: impl Fn(&SidecarSet) -> bool,
    ) -> SidecarSet {
        let api = self.sets();
        wait_for(&format!("SidecarSet {name}: {what}"), DEADLINE * 2, || {
            let api = api.clone();
            let ok = &ok;
            async move { api.get(name).await.ok().filter(|s| ok(s)) }
        })
        .await
    }

    async fn finish(mut self) {
        self.env.stop_operator().await;
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn log_agent(name: &str, image: &str, extra: Value) -> Value {
    let mut v = json!({
        "apiVersion": "sroll.io/v1alpha1",
        "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web", "probe"]}]},
            "containers": [{
                "name": "log-agent",
                "image": image,
                "shareVolumePolicy": {"type": "enabled"},
                "transferEnv": [{"sourceContainerName": "app", "envName": "LOG_LEVEL"}],
                "volumeMounts": [
                    {"name": "logs", "mountPath": "/var/log/agent"},
                    {"name": "data", "mountPath": "/agent-data"}
                ]
            }],
            "volumes": [
                {"name": "logs", "emptyDir": {}},
                {"name": "data", "hostPath": {"path": "/var/lib/agent"}}
            ]
        }
    });
    sroll_testkit::clone_set::merge(&mut v["spec"], extra);
    v
}

fn container<'p>(pod: &'p Pod, name: &str) -> &'p k8s_openapi::api::core::v1::Container {
    pod.spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{} has no container {name}", pod.name_any()))
}

fn restarts(pod: &Pod, name: &str) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|s| s.iter().find(|c| c.name == name))
        .map_or(-1, |c| c.restart_count)
}

/// Injection into a StatefulSet's and a CloneSet's pods (created by their controllers, admitted
/// by the real HTTPS webhook): the sidecar before the app, the pod's own `data` volume kept (the
/// SidecarSet's hostPath of the same name is not injected), `logs` injected, the app's mounts
/// shared by mount path, env transferred; the status counts them; `kubectl explain` documents
/// the spec; with the webhook down, pods are still created, without sidecars.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_are_injected_into_statefulset_and_clone_set_pods_by_kruises_merge_rules() {
    let w = world().await;
    let ns = w.env.ns.clone();
    w.create_set(log_agent("logging", "agent:1", json!({})))
        .await
        .expect("the SidecarSet is accepted");
    w.injector_sees("logging").await;
    let pod_spec = json!({
        "containers": [{
            "name": "app", "image": "app:1",
            "env": [{"name": "LOG_LEVEL", "value": "debug"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "data", "mountPath": "/var/log/agent", "subPath": "x"}]
        }],
        "volumes": [{"name": "data", "emptyDir": {}}]
    });
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec}
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(w.env.client.clone(), &ns)
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let cs: CloneSet = clone_set("web", 2, "app:1", json!({"template": {"spec": pod_spec}}));
    Api::<CloneSet>::namespaced(w.env.client.clone(), &ns)
        .create(&PostParams::default(), &cs)
        .await
        .unwrap();

    for app in ["db", "web"] {
        let pods = wait_for(&format!("two {app} pods"), DEADLINE, || async {
            let pods = w.pods(app).await;
            (pods.len() == 2).then_some(pods)
        })
        .await;
        for p in &pods {
            let spec = p.spec.as_ref().unwrap();
            let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names,
                ["log-agent", "app"],
                "{}: BeforeAppContainer",
                p.name_any()
            );
            assert_eq!(
                p.annotations()
                    .get(INJECTED_LIST_ANNOTATION)
                    .map(String::as_str),
                Some("logging")
            );
            let volumes: BTreeMap<&str, &k8s_openapi::api::core::v1::Volume> = spec
                .volumes
                .iter()
                .flatten()
                .map(|v| (v.name.as_str(), v))
                .collect();
            assert!(
                volumes["data"].empty_dir.is_some(),
                "the pod's own data volume wins"
            );
            assert!(volumes["data"].host_path.is_none());
            assert!(volumes["logs"].empty_dir.is_some(), "logs is injected");
            let agent = container(p, "log-agent");
            let mounts: Vec<(&str, &str)> = agent
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| (m.name.as_str(), m.mount_path.as_str()))
                .collect();
            assert_eq!(
                mounts,
                [
                    ("logs", "/var/log/agent"),
                    ("data", "/agent-data"),
                    ("data", "/data")
                ],
                "shared by mount path: the app's /var/log/agent loses to the sidecar's own"
            );
            let env: Vec<(&str, Option<&str>)> = agent
                .env
                .iter()
                .flatten()
                .map(|e| (e.name.as_str(), e.value.as_deref()))
                .collect();
            assert_eq!(
                env,
                [("IS_INJECTED", Some("true")), ("LOG_LEVEL", Some("debug"))]
            );
        }
    }
    let s = w
        .wait_status("logging", "4 matched pods, all updated and ready", |s| {
            s.status.as_ref().is_some_and(|s| {
                s.matched_pods == 4 && s.updated_pods == 4 && s.updated_ready_pods == 4
            })
        })
        .await;
    assert!(!s.status.unwrap().latest_revision.is_empty());

    if kubesim::testing::kubectl::kubectl_available() {
        let out = w.kubectl(&["explain", "sidecarsets.spec"]).await;
        let explain = String::from_utf8_lossy(&out.stdout);
        for field in [
            "containers",
            "initContainers",
            "namespaceSelector",
            "updateStrategy",
            "injectionStrategy",
            "patchPodMetadata",
            "volumes",
        ] {
            assert!(
                explain.contains(field),
                "kubectl explain shows {field}: {explain}"
            );
        }
        let out = w
            .kubectl(&["explain", "sidecarsets.spec.updateStrategy"])
            .await;
        let explain = String::from_utf8_lossy(&out.stdout);
        for field in ["maxUnavailable", "partition", "paused", "selector"] {
            assert!(
                explain.contains(field),
                "kubectl explain shows {field}: {explain}"
            );
        }
    }

    // The webhook down (the operator stopped, its configuration still registered): injection fails
    // open (failurePolicy Ignore, Kruise's default): the pod is created, without the sidecar.
    let mut w = w;
    w.env.stop_operator().await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "while-down", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]}
    }))
    .unwrap();
    let created = w
        .env
        .pod_api()
        .create(&PostParams::default(), &pod)
        .await
        .expect("a pod is created while the webhook is down");
    let names: Vec<&str> = created
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["app"], "no sidecar while the webhook is down");
    w.finish().await;
}

/// Two SidecarSets selecting the same pods with a same-named container of different content are
/// rejected by the validating webhook, naming both and the field — through the API and through
/// `kubectl apply`; an identical copy and a disjoint selector are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_sidecar_sets_are_rejected_naming_both_and_the_field() {
    let w = world().await;
    w.create_set(log_agent("logging", "agent:1", json!({})))
        .await
        .expect("the first SidecarSet is accepted");
    // The validator's cache sees it before the next write is judged.
    wait_for(
        "the validator to see the first SidecarSet",
        DEADLINE,
        || async {
            match w
                .create_set(log_agent("logging-v2", "agent:2", json!({})))
                .await
            {
                Err(kube::Error::Api(e)) => Some(e),
                Ok(_) => {
                    let _ = w.sets().delete("logging-v2", &Default::default()).await;
                    None
                }
                Err(_) => None,
            }
        },
    )
    .await;
    let err = match w
        .create_set(log_agent("logging-v2", "agent:2", json!({})))
        .await
    {
        Err(kube::Error::Api(e)) => e,
        other => panic!("expected a denial, got {other:?}"),
    };
    assert_eq!(err.code, 403, "{err:?}");
    for part in [
        "\"logging-v2\"",
        "\"logging\"",
        "spec.containers[0].name",
        "log-agent",
    ] {
        assert!(err.message.contains(part), "{part}: {}", err.message);
    }
    w.create_set(log_agent("copy", "agent:1", json!({})))
        .await
        .expect("an identical sidecar does not conflict");
    w.create_set(log_agent(
        "elsewhere",
        "agent:2",
        json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["cache"]}]}}),
    ))
    .await
    .expect("a disjoint selector does not conflict");
    let invalid = w
        .create_set(log_agent("hot", "agent:1", json!({"updateStrategy": {"maxUnavailable": 0}, "selector": {"matchLabels": {"app": "x"}}})))
        .await
        .expect_err("maxUnavailable 0 is refused");
    assert!(
        invalid
            .to_string()
            .contains("spec.updateStrategy.maxUnavailable"),
        "{invalid}"
    );

    if kubesim::testing::kubectl::kubectl_available() {
        // The example of docs/sidecar-set.md, a Kruise manifest with only its apiVersion changed.
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/sidecar-set.yaml"
        );
        let out = w.kubectl(&["apply", "-f", example]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = w.home.join("conflict.yaml");
        std::fs::write(
            &file,
            serde_yaml_ng::to_string(&log_agent("logging-v3", "agent:3", json!({}))).unwrap(),
        )
        .unwrap();
        let out = w.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("kubectl apply said: {stderr}");
        assert!(
            stderr.contains("denied the request")
                && stderr.contains("\"logging-v3\"")
                && stderr.contains("\"logging\""),
            "{stderr}"
        );
    }
    w.finish().await;
}

/// A sidecar image change is rolled in place: every pod keeps its uid, only the sidecar restarts
/// (kubelet `computePodActions`: only a container whose spec changed), at most `maxUnavailable`
/// pods unavailable at once; `partition` keeps pods back, `paused` stops the upgrade; an env change
/// marks the pods not upgradable (pod condition, SidecarSet condition and Event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_image_upgrade_goes_in_place_bounded_with_partition_and_pause() {
    let w = world().await;
    let ns = w.env.ns.clone();
    w.create_set(log_agent(
        "logging",
        "agent:1",
        json!({"updateStrategy": {"maxUnavailable": 1, "partition": 1}}),
    ))
    .await
    .unwrap();
    w.injector_sees("logging").await;
    let cs: CloneSet = clone_set("web", 4, "app:1", json!({}));
    Api::<CloneSet>::namespaced(w.env.client.clone(), &ns)
        .create(&PostParams::default(), &cs)
        .await
        .unwrap();
    w.wait_status("logging", "4 pods ready", |s| {
        s.status
            .as_ref()
            .is_some_and(|s| s.matched_pods == 4 && s.updated_ready_pods == 4)
    })
    .await;
    let before = w.pods("web").await;
    let uids: Vec<String> = before.iter().map(|p| p.uid().unwrap()).collect();

    // Watch unavailability through the whole upgrade.
    let max_unready = Arc::new(AtomicUsize::new(0));
    let sampling = {
        let api: Api<Pod> = Api::namespaced(w.env.client.clone(), &ns);
        let max = max_unready.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(list) = api.list(&ListParams::default().labels("app=web")).await {
                    let unready = list
                        .items
                        .iter()
                        .filter(|p| !predicates::is_pod_ready(p))
                        .count();
                    max.fetch_max(unready, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    w.patch_set("logging", json!({"containers": [{"name": "log-agent", "image": "agent:2", "shareVolumePolicy": {"type": "enabled"}, "transferEnv": [{"sourceContainerName": "app", "envName": "LOG_LEVEL"}], "volumeMounts": [{"name": "logs", "mountPath": "/var/log/agent"}, {"name": "data", "mountPath": "/agent-data"}]}]}))
        .await;
    let s = w
        .wait_status("logging", "3 updated and ready (partition 1)", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.observed_generation == s.metadata.generation.unwrap_or(0)
                    && st.updated_pods == 3
                    && st.updated_ready_pods == 3
                    && st.ready_pods == 4
            })
        })
        .await;
    sampling.abort();
    assert!(
        max_unready.load(Ordering::SeqCst) <= 1,
        "maxUnavailable 1: at most one pod out at once, saw {}",
        max_unready.load(Ordering::SeqCst)
    );
    let after = w.pods("web").await;
    assert_eq!(
        after.iter().map(|p| p.uid().unwrap()).collect::<Vec<_>>(),
        uids,
        "no pod was recreated"
    );
    let upgraded: Vec<&Pod> = after
        .iter()
        .filter(|p| container(p, "log-agent").image.as_deref() == Some("agent:2"))
        .collect();
    assert_eq!(upgraded.len(), 3, "one pod is kept back by the partition");
    for p in &upgraded {
        assert_eq!(
            restarts(p, "log-agent"),
            1,
            "{}: the sidecar restarted",
            p.name_any()
        );
        assert_eq!(
            restarts(p, "app"),
            0,
            "{}: the app kept running",
            p.name_any()
        );
    }
    let latest = s.status.unwrap().latest_revision;

    // Paused: a new image reaches no pod; partition 0 with it.
    w.patch_set("logging", json!({"updateStrategy": {"paused": true, "partition": 0}, "containers": [{"name": "log-agent", "image": "agent:3", "shareVolumePolicy": {"type": "enabled"}, "transferEnv": [{"sourceContainerName": "app", "envName": "LOG_LEVEL"}], "volumeMounts": [{"name": "logs", "mountPath": "/var/log/agent"}, {"name": "data", "mountPath": "/agent-data"}]}]}))
        .await;
    w.wait_status("logging", "the paused spec observed", |s| {
        s.status.as_ref().is_some_and(|st| {
            st.observed_generation == s.metadata.generation.unwrap_or(0)
                && st.latest_revision != latest
                && st.updated_pods == 0
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        w.pods("web")
            .await
            .iter()
            .all(|p| container(p, "log-agent").image.as_deref() != Some("agent:3")),
        "paused: no pod upgraded"
    );
    w.patch_set("logging", json!({"updateStrategy": {"paused": false}}))
        .await;
    w.wait_status("logging", "every pod at agent:3", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.updated_pods == 4 && st.updated_ready_pods == 4)
    })
    .await;

    // An env change cannot be made in place: pods are marked, the SidecarSet says so.
    w.patch_set("logging", json!({"containers": [{"name": "log-agent", "image": "agent:3", "env": [{"name": "MODE", "value": "verbose"}], "shareVolumePolicy": {"type": "enabled"}, "transferEnv": [{"sourceContainerName": "app", "envName": "LOG_LEVEL"}], "volumeMounts": [{"name": "logs", "mountPath": "/var/log/agent"}, {"name": "data", "mountPath": "/agent-data"}]}]}))
        .await;
    let s = w
        .wait_status("logging", "NotUpgradable", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "NotUpgradable" && c.status == "True")
            })
        })
        .await;
    let cond = s.status.unwrap().conditions.remove(0);
    assert_eq!(cond.reason, "NotUpgradablePods");
    assert!(cond.message.contains("4 pod(s)"), "{}", cond.message);
    wait_for("every pod marked not upgradable", DEADLINE, || async {
        let pods = w.pods("web").await;
        pods.iter()
            .all(|p| condition_says(p, "logging") == Some(false))
            .then_some(())
    })
    .await;
    let p = &w.pods("web").await[0];
    let c = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == UPGRADABLE_CONDITION))
        .unwrap();
    assert_eq!(c.status, "False");
    assert_eq!(c.reason.as_deref(), Some("UpdateImmutableField"));
    assert!(
        w.pods("web").await.iter().all(|p| container(p, "log-agent")
            .env
            .iter()
            .flatten()
            .all(|e| e.name != "MODE")),
        "running pods keep their sidecar"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(w.env.client.clone());
    wait_for("the NotUpgradablePods event", DEADLINE, || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("NotUpgradablePods")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("logging")
            })
    })
    .await;
    w.finish().await;
}

/// A label `namespaceSelector` is matched against the pod's Namespace's labels (the operator
/// watches Namespaces): pods in the namespace labelled `team=a` get the sidecar, pods in the one
/// labelled `team=b` do not; relabelling `team-b` to `team=a` makes its new pods injected and its
/// injected pod counted by the controller, and relabelling it back uncounts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_selector_matches_the_namespaces_labels() {
    let w = world().await;
    let namespaces: Api<Namespace> = Api::all(w.env.client.clone());
    // team-b first: once a pod in team-a comes back injected, the caches hold team-b too.
    for (name, team) in [("team-b", "b"), ("team-a", "a")] {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"team": team}}
        }))
        .unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    w.create_set(json!({
        "apiVersion": "sroll.io/v1alpha1",
        "kind": "SidecarSet",
        "metadata": {"name": "team-a-logging"},
        "spec": {
            "selector": {"matchLabels": {"app": "teamed"}},
            "namespaceSelector": {"matchLabels": {"team": "a"}},
            "containers": [{"name": "log-agent", "image": "agent:1"}]
        }
    }))
    .await
    .expect("the SidecarSet is admitted");
    let create = |ns: &'static str| {
        let api: Api<Pod> = Api::namespaced(w.env.client.clone(), ns);
        async move {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"generateName": "teamed-", "labels": {"app": "teamed"}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}
            }))
            .unwrap();
            api.create(&PostParams::default(), &pod).await.unwrap()
        }
    };
    let injected = |p: &Pod| {
        p.spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .any(|c| c.name == "log-agent")
    };
    // The injector's caches fill asynchronously: pods are created in team-a until one is injected
    // (the ones created before are deleted).
    wait_for("a pod in team-a injected", DEADLINE, || async {
        let p = create("team-a").await;
        if injected(&p) {
            return Some(());
        }
        let api: Api<Pod> = Api::namespaced(w.env.client.clone(), "team-a");
        let _ = api.delete(&p.name_any(), &Default::default()).await;
        None
    })
    .await;
    let in_b = create("team-b").await;
    assert!(
        !injected(&in_b),
        "a pod in the namespace labelled team=b is not injected: {:?}",
        in_b.spec
    );
    assert!(!in_b.annotations().contains_key(INJECTED_LIST_ANNOTATION));
    w.wait_status("team-a-logging", "matchedPods 1", |s| {
        s.status.as_ref().is_some_and(|s| s.matched_pods == 1)
    })
    .await;

    // Relabelled team=a: team-b's new pods are injected, and the controller counts them.
    namespaces
        .patch(
            "team-b",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    wait_for("a pod in relabelled team-b injected", DEADLINE, || async {
        let p = create("team-b").await;
        if injected(&p) {
            return Some(());
        }
        let api: Api<Pod> = Api::namespaced(w.env.client.clone(), "team-b");
        let _ = api.delete(&p.name_any(), &Default::default()).await;
        None
    })
    .await;
    w.wait_status("team-a-logging", "matchedPods 2", |s| {
        s.status.as_ref().is_some_and(|s| s.matched_pods == 2)
    })
    .await;
    // Back to team=b: the controller no longer matches team-b's injected pod.
    namespaces
        .patch(
            "team-b",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"team": "b"}}})),
        )
        .await
        .unwrap();
    w.wait_status("team-a-logging", "matchedPods back to 1", |s| {
        s.status.as_ref().is_some_and(|s| s.matched_pods == 1)
    })
    .await;
    w.finish().await;
}

/// Lists of every pod of the cluster (no label selector) among `requests`: the SidecarSet
/// controller's pod cache (the rollout controller lists pods by the `controller-revision-hash`
/// label, the CloneSet controller by its instance label; the start-up permission check reads one
/// pod, `limit=1`).
fn unfiltered_pod_lists(requests: &Requests) -> usize {
    requests
        .lock()
        .unwrap()
        .iter()
        .filter(|uri| {
            let (path, query) = uri.split_once('?').unwrap_or((uri.as_str(), ""));
            path == "/api/v1/pods"
                && !query.split('&').any(|p| {
                    p.starts_with("labelSelector=") || p.starts_with("watch=") || p == "limit=1"
                })
        })
        .count()
}

/// A cluster-wide operator watches every pod for SidecarSets only while one exists: none is
/// listed before the first SidecarSet; the first one starts the watch and its status counts the
/// pods it injected; deleting it stops the watch, and a SidecarSet created again lists the pods
/// anew and counts them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_watched_for_sidecar_sets_only_while_one_exists() {
    let requests = Requests::default();
    let w = world_recording(Some(requests.clone())).await;
    let sent = |what: &str| {
        requests
            .lock()
            .unwrap()
            .iter()
            .any(|uri| uri.contains(what) && uri.contains("watch=true"))
    };
    // The SidecarSet controller and the rollout controller have listed and watch (the pod watch,
    // were it unconditional, starts with them).
    wait_for("the operator's watches", DEADLINE, || async {
        (sent("/apis/sroll.io/v1alpha1/sidecarsets?") && sent("/api/v1/namespaces?")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        unfiltered_pod_lists(&requests),
        0,
        "no SidecarSet: the pods are not listed; requests: {:#?}",
        requests.lock().unwrap()
    );

    w.create_set(log_agent("logging", "agent:1", json!({})))
        .await
        .expect("the SidecarSet is accepted");
    w.injector_sees("logging").await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]}
    }))
    .unwrap();
    w.env
        .pod_api()
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let counted = |s: &SidecarSet| {
        s.status.as_ref().is_some_and(|st| {
            st.matched_pods >= 1 && st.observed_generation == s.metadata.generation.unwrap_or(0)
        })
    };
    w.wait_status("logging", "the injected pod counted", counted)
        .await;
    assert_eq!(unfiltered_pod_lists(&requests), 1, "one list of the pods");

    // The last SidecarSet deleted: the watch stops. Created again: the pods are listed again and
    // counted (the emptied cache is not read as "no pods").
    w.sets()
        .delete("logging", &Default::default())
        .await
        .unwrap();
    wait_for("the SidecarSet to be gone", DEADLINE, || async {
        w.sets()
            .get_opt("logging")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    w.create_set(log_agent("logging", "agent:1", json!({})))
        .await
        .expect("the SidecarSet is accepted again");
    w.wait_status("logging", "the injected pod counted again", counted)
        .await;
    assert_eq!(
        unfiltered_pod_lists(&requests),
        2,
        "the pods listed again after the watch stopped"
    );
    w.finish().await;
}
