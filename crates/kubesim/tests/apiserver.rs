//! Conformance of the simulated API server through `kube::Api` (HTTP and
//! in-process), including a watcher + reflector consistency check through
//! forced 410s and cut watch connections.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Namespace, Pod},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    runtime::{WatchStreamExt, reflector, watcher},
};
use kubesim::cluster::{Cluster, ClusterConfig, Handle};
use serde_json::json;

async fn start() -> Handle {
    Cluster::start(ClusterConfig::default()).await.unwrap()
}

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}
    }))
    .unwrap()
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_through_kube_api_returns_real_status_errors() {
    let h = start().await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let created = pods
        .create(&PostParams::default(), &pod("web-0", json!({"app": "web"})))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    let got = pods.get("web-0").await.unwrap();
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );

    let e = api_err(pods.get("nope").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "pods \"nope\" not found");

    let e = api_err(
        pods.create(&PostParams::default(), &pod("web-0", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));

    let e = api_err(
        pods.create(&PostParams::default(), &pod("Web_0", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(e.details.unwrap().causes[0].field, "metadata.name");

    // stale resourceVersion
    let mut stale = got.clone();
    pods.patch(
        "web-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
    )
    .await
    .unwrap();
    stale.labels_mut().insert("y".into(), "2".into());
    let e = api_err(
        pods.replace("web-0", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));

    // json patch
    let p: Patch<()> = Patch::Json(
        serde_json::from_value(json!([{"op": "add", "path": "/metadata/labels/z", "value": "3"}]))
            .unwrap(),
    );
    let patched = pods
        .patch("web-0", &PatchParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(patched.labels().get("z").map(String::as_str), Some("3"));

    // unscheduled pods are deleted at once and the object is returned
    let del = pods
        .delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    assert!(del.is_left());
    assert_eq!(api_err(pods.get("web-0").await.unwrap_err()).code, 404);

    // cluster-scoped kinds and other groups
    let nss: Api<Namespace> = Api::all(h.client());
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert!(names.contains(&"kube-system".to_string()));
    let e = api_err(
        Api::<ConfigMap>::namespaced(h.client(), "missing")
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
    h.shutdown().await;
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors_and_page() {
    let h = start().await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    for i in 0..12 {
        let tier = if i % 3 == 0 { "db" } else { "web" };
        pods.create(
            &PostParams::default(),
            &pod(
                &format!("p{i:02}"),
                json!({"tier": tier, "i": i.to_string()}),
            ),
        )
        .await
        .unwrap();
    }
    let l = pods
        .list(&ListParams::default().labels("tier=db"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 4);
    let l = pods
        .list(&ListParams::default().labels("tier in (db,cache),i notin (0)"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 3);
    let l = pods
        .list(&ListParams::default().labels("!tier"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 0);
    let l = pods
        .list(&ListParams::default().fields("metadata.name=p05"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let l = pods
        .list(&ListParams::default().fields("status.phase=Pending,metadata.name!=p05"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 11);
    let e = api_err(
        pods.list(&ListParams::default().fields("spec.bogus=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);

    let mut seen = vec![];
    let mut lp = ListParams::default().limit(5);
    let mut pages = 0;
    loop {
        let page = pods.list(&lp).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|p| p.name_any()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..12).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, want);
    h.shutdown().await;
}

#[tokio::test]
async fn watch_from_a_resource_version_streams_changes_and_too_old_gets_410() {
    let h = start().await;
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let a = pods
        .create(&PostParams::default(), &pod("a", json!({"app": "x"})))
        .await
        .unwrap();
    let rv = a.resource_version().unwrap();
    let mut stream = pods
        .watch(&WatchParams::default().labels("app=x").timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    pods.create(&PostParams::default(), &pod("b", json!({"app": "x"})))
        .await
        .unwrap();
    pods.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    let mut got = vec![];
    while got.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(p) => got.push(format!("ADDED {}", p.name_any())),
            WatchEvent::Modified(p) => got.push(format!("MODIFIED {}", p.name_any())),
            WatchEvent::Deleted(p) => got.push(format!("DELETED {}", p.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("unexpected error {e:?}"),
        }
    }
    // the pod that stopped matching the selector is sent as DELETED
    assert_eq!(got, ["ADDED b", "DELETED a"]);

    h.api().store().compact();
    let mut stream = pods
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    h.shutdown().await;
}

#[tokio::test]
async fn status_subresource_and_generation_follow_statefulset_rules() {
    let h = start().await;
    let sts: Api<StatefulSet> = Api::default_namespaced(h.client());
    let s: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    let s = sts.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    let s = sts
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    assert_eq!(s.status.as_ref().unwrap().ready_replicas, Some(1));
    let s = sts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(2));
    assert_eq!(s.status.unwrap().replicas, 2);
    let scale = sts.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    h.shutdown().await;
}

#[tokio::test]
async fn in_process_and_tls_clients_reach_the_same_api() {
    let h = start().await;
    let c = h.in_process_client();
    let cms: Api<ConfigMap> = Api::default_namespaced(c);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).unwrap(),
    )
    .await
    .unwrap();
    let over_http: Api<ConfigMap> = Api::default_namespaced(h.client());
    assert_eq!(over_http.get("c").await.unwrap().data.unwrap()["k"], "v");
    h.shutdown().await;

    let t = Cluster::start(ClusterConfig {
        tls: true,
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    assert!(t.base_url().starts_with("https://"));
    assert!(t.kubeconfig().contains("certificate-authority-data"));
    let nss: Api<Namespace> = Api::all(t.client());
    assert!(nss.get("default").await.is_ok());
    t.shutdown().await;
}

#[tokio::test]
async fn discovery_and_metrics_are_served() {
    let h = start().await;
    let c = h.client();
    let groups = c.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "apps"));
    let res = c.list_api_group_resources("apps/v1").await.unwrap();
    let sts = res
        .resources
        .iter()
        .find(|r| r.name == "statefulsets")
        .unwrap();
    assert_eq!(sts.short_names.as_deref(), Some(&["sts".to_string()][..]));
    assert!(res.resources.iter().any(|r| r.name == "statefulsets/scale"));
    let v = c.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "35"));
    let text = reqwest_get(&format!("{}/metrics", h.base_url())).await;
    assert!(text.contains("apiserver_request_total{"), "{text}");
    assert!(
        text.contains("apiserver_storage_objects{resource=\"namespaces\"} 4"),
        "{text}"
    );
    h.shutdown().await;
}

async fn reqwest_get(url: &str) -> String {
    // plain HTTP/1.1 GET without another client dependency
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn reflector_stays_consistent_through_410s_and_cut_watches() {
    let faults = kubesim::faults::Faults::new(Some(7));
    faults.update(|c| c.watch_cut_seconds = Some(1));
    let h = Cluster::start(ClusterConfig {
        faults: Some(faults),
        history_limit: 200,
        bookmark_interval: Duration::from_millis(300),
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let (reader, writer) = reflector::store::<Pod>();
    let stream = watcher(pods.clone(), watcher::Config::default().page_size(7))
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut s = stream.boxed();
        while s.try_next().await.is_ok() {}
    });
    for round in 0..6 {
        for i in 0..15 {
            let name = format!("p{round}-{i}");
            pods.create(
                &PostParams::default(),
                &pod(&name, json!({"round": round.to_string()})),
            )
            .await
            .unwrap();
        }
        for i in (0..15).step_by(2) {
            pods.patch(
                &format!("p{round}-{i}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
            )
            .await
            .unwrap();
        }
        for i in (0..15).step_by(3) {
            pods.delete(&format!("p{round}-{i}"), &DeleteParams::default())
                .await
                .unwrap();
        }
        if round % 2 == 1 {
            h.api().store().compact();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let fresh = pods.list(&ListParams::default()).await.unwrap();
    let mut want: Vec<(String, String)> = fresh
        .items
        .iter()
        .map(|p| (p.name_any(), p.resource_version().unwrap()))
        .collect();
    want.sort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut have: Vec<(String, String)> = reader
            .state()
            .iter()
            .map(|p| (p.name_any(), p.resource_version().unwrap()))
            .collect();
        have.sort();
        if have == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector diverged: {} vs {} objects",
            have.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(want.len(), 6 * 10);
    task.abort();
    h.shutdown().await;
}

/// A watch opened before the cut is switched on (a client's long-lived watch) is cut too, that
/// long after the switch; one opened after the cut is switched off again is not cut.
#[tokio::test]
async fn a_watch_opened_before_watch_cuts_are_switched_on_is_cut_too() {
    let faults = kubesim::faults::Faults::new(Some(3));
    let h = Cluster::start(ClusterConfig {
        faults: Some(faults.clone()),
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(h.client());
    let mut open = pods
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .unwrap()
        .boxed();
    pods.create(&PostParams::default(), &pod("before", json!({})))
        .await
        .unwrap();
    assert!(matches!(
        open.try_next().await.unwrap(),
        Some(WatchEvent::Added(_))
    ));

    // Cuts limited to another client spare this one's open watch.
    faults.update(|c| {
        c.watch_cut_seconds = Some(1);
        c.user_agents = vec!["sroll-operator".into()];
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pods.create(&PostParams::default(), &pod("spared", json!({})))
        .await
        .unwrap();
    match open.try_next().await.unwrap() {
        Some(WatchEvent::Added(p)) => assert_eq!(p.name_any(), "spared"),
        other => panic!("the watch of a client the faults spare was cut: {other:?}"),
    }

    faults.update(|c| c.user_agents.clear());
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while open.try_next().await.unwrap().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the open watch was never cut");

    // Switched off: a watch opened now outlives the former cut period and still delivers.
    faults.update(|c| c.watch_cut_seconds = None);
    let mut fresh = pods
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .unwrap()
        .boxed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pods.create(&PostParams::default(), &pod("after", json!({})))
        .await
        .unwrap();
    for initial in ["before", "spared"] {
        match fresh.try_next().await.unwrap() {
            Some(WatchEvent::Added(p)) => assert_eq!(p.name_any(), initial),
            other => panic!("expected the initial ADDED, got {other:?}"),
        }
    }
    match fresh.try_next().await.unwrap() {
        Some(WatchEvent::Added(p)) => assert_eq!(p.name_any(), "after"),
        other => panic!("expected ADDED after, got {other:?}"),
    }
    h.shutdown().await;
}
