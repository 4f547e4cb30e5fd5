//! Unit tests of the API layer's semantics.

use std::time::Duration;

use serde_json::json;

use tokio_util::sync::CancellationToken;

use super::*;

fn api() -> Api {
    Api::new(1000)
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}})
}

fn pods(a: &Api) -> Arc<ResourceDescriptor> {
    a.resource("", "v1", "pods").unwrap()
}

fn sts(a: &Api) -> Arc<ResourceDescriptor> {
    a.resource("apps", "v1", "statefulsets").unwrap()
}

fn sts_obj(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

#[test]
fn create_sets_server_fields_and_a_growing_resource_version() {
    let a = api();
    let d = pods(&a);
    let p1 = a
        .create(&d, Some("default"), pod("a"), &WriteOptions::default())
        .unwrap();
    let p2 = a
        .create(&d, Some("default"), pod("b"), &WriteOptions::default())
        .unwrap();
    assert!(p1["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(p1["metadata"]["creationTimestamp"].is_string());
    assert_eq!(p1["status"]["phase"], "Pending");
    assert_eq!(p1["metadata"]["generation"], 1);
    let rv1: u64 = p1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let rv2: u64 = p2["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    let e = a
        .create(&d, Some("default"), pod("a"), &WriteOptions::default())
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "pods \"a\" already exists");
}

#[test]
fn generate_name_appends_five_characters() {
    let a = api();
    let d = pods(&a);
    let mut p = pod("");
    p["metadata"] = json!({"generateName": "web-"});
    let out = a
        .create(&d, Some("default"), p, &WriteOptions::default())
        .unwrap();
    let name = out["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
}

#[test]
fn invalid_names_and_missing_namespaces_are_rejected() {
    let a = api();
    let d = pods(&a);
    let e = a
        .create(
            &d,
            Some("default"),
            pod("Bad_Name"),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(e.details.causes[0].field, "metadata.name");
    let e = a
        .create(&d, Some("nope"), pod("a"), &WriteOptions::default())
        .unwrap_err();
    assert_eq!(e.code, 404);
    assert_eq!(e.message, "namespaces \"nope\" not found");
}

#[test]
fn stale_resource_version_conflicts_and_generation_tracks_spec_only() {
    let a = api();
    let d = sts(&a);
    let s = a
        .create(
            &d,
            Some("default"),
            sts_obj("web"),
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    assert_eq!(s["status"]["replicas"], 0);
    let mut m = s.clone();
    m["metadata"]["labels"] = json!({"x": "y"});
    let m = a
        .update(&d, Some("default"), "web", m, &WriteOptions::default())
        .unwrap();
    assert_eq!(m["metadata"]["generation"], 1);
    let mut sp = m.clone();
    sp["spec"]["replicas"] = json!(3);
    let sp = a
        .update(&d, Some("default"), "web", sp, &WriteOptions::default())
        .unwrap();
    assert_eq!(sp["metadata"]["generation"], 2);
    // stale write
    let e = a
        .update(&d, Some("default"), "web", m, &WriteOptions::default())
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message
            .starts_with("Operation cannot be fulfilled on statefulsets.apps \"web\"")
    );
    // status write keeps spec and generation
    let mut st = sp.clone();
    st["status"] = json!({"replicas": 3, "readyReplicas": 3});
    st["spec"]["replicas"] = json!(9);
    let st = a
        .update_status(&d, Some("default"), "web", st, &WriteOptions::default())
        .unwrap();
    assert_eq!(st["spec"]["replicas"], 3);
    assert_eq!(st["status"]["readyReplicas"], 3);
    assert_eq!(st["metadata"]["generation"], 2);
    // main write keeps status
    let mut mw = st.clone();
    mw["status"] = json!({});
    let mw = a
        .update(&d, Some("default"), "web", mw, &WriteOptions::default())
        .unwrap();
    assert_eq!(mw["status"]["readyReplicas"], 3);
    // a no-op write does not bump the resourceVersion
    let again = a
        .update(
            &d,
            Some("default"),
            "web",
            mw.clone(),
            &WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(
        again["metadata"]["resourceVersion"],
        mw["metadata"]["resourceVersion"]
    );
}

#[test]
fn dry_run_persists_nothing() {
    let a = api();
    let d = pods(&a);
    let rv = a.store().current_rv();
    let out = a
        .create(
            &d,
            Some("default"),
            pod("a"),
            &WriteOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(out["metadata"]["name"], "a");
    assert_eq!(a.store().current_rv(), rv);
    assert_eq!(a.get(&d, Some("default"), "a").unwrap_err().code, 404);
}

#[test]
fn scheduled_pods_delete_gracefully_and_unscheduled_at_once() {
    let a = api();
    let d = pods(&a);
    a.create(&d, Some("default"), pod("u"), &WriteOptions::default())
        .unwrap();
    let out = a
        .delete(&d, Some("default"), "u", &DeleteOptions::default())
        .unwrap();
    assert!(matches!(out, DeleteOutcome::Deleted(_)));
    let mut p = pod("s");
    p["spec"]["nodeName"] = json!("node-1");
    a.create(&d, Some("default"), p, &WriteOptions::default())
        .unwrap();
    let out = a
        .delete(&d, Some("default"), "s", &DeleteOptions::default())
        .unwrap();
    let DeleteOutcome::Pending(o) = out else {
        panic!("expected graceful deletion")
    };
    assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(o["metadata"]["deletionTimestamp"].is_string());
    let out = a
        .delete(
            &d,
            Some("default"),
            "s",
            &DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(matches!(out, DeleteOutcome::Deleted(_)));
}

#[test]
fn finalizers_hold_deletion_and_cannot_be_added_while_terminating() {
    let a = api();
    let d = a.resource("", "v1", "configmaps").unwrap();
    let cm = json!({"metadata": {"name": "c", "finalizers": ["x/y"]}, "data": {"a": "b"}});
    a.create(&d, Some("default"), cm, &WriteOptions::default())
        .unwrap();
    let out = a
        .delete(&d, Some("default"), "c", &DeleteOptions::default())
        .unwrap();
    let DeleteOutcome::Pending(mut o) = out else {
        panic!("expected pending")
    };
    o["metadata"]["finalizers"] = json!(["x/y", "x/z"]);
    let e = a
        .update(
            &d,
            Some("default"),
            "c",
            o.clone(),
            &WriteOptions::default(),
        )
        .unwrap_err();
    assert_eq!(e.code, 422);
    o["metadata"]["finalizers"] = json!([]);
    a.update(&d, Some("default"), "c", o, &WriteOptions::default())
        .unwrap();
    assert_eq!(a.get(&d, Some("default"), "c").unwrap_err().code, 404);
}

#[test]
fn delete_preconditions_conflict() {
    let a = api();
    let d = pods(&a);
    a.create(&d, Some("default"), pod("a"), &WriteOptions::default())
        .unwrap();
    let e = a
        .delete(
            &d,
            Some("default"),
            "a",
            &DeleteOptions {
                precondition_uid: Some("nope".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code, 409);
}

#[test]
fn lists_page_with_continue_tokens_and_filter_by_selectors() {
    let a = api();
    let d = pods(&a);
    for i in 0..7 {
        let mut p = pod(&format!("p{i}"));
        p["metadata"]["labels"] = json!({"i": (i % 2).to_string()});
        a.create(&d, Some("default"), p, &WriteOptions::default())
            .unwrap();
    }
    let mut names = vec![];
    let mut opts = ListOptions {
        limit: 3,
        ..Default::default()
    };
    loop {
        let r = a.list(&d, None, &opts).unwrap();
        names.extend(r.items.iter().map(|s| s.name().to_string()));
        match r.continue_token {
            Some(c) => opts.continue_token = Some(c),
            None => break,
        }
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    let r = a
        .list(
            &d,
            Some("default"),
            &ListOptions {
                label_selector: LabelSelector::parse("i=1").unwrap(),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.items.len(), 3);
    let e = a
        .list(
            &d,
            None,
            &ListOptions {
                field_selector: FieldSelector::parse("spec.foo=1").unwrap(),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code, 400);
}

#[test]
fn continued_pages_show_the_first_pages_snapshot_and_expire_with_410() {
    let a = Api::new(8);
    let d = pods(&a);
    for i in 0..6 {
        a.create(
            &d,
            Some("default"),
            pod(&format!("p{i}")),
            &WriteOptions::default(),
        )
        .unwrap();
    }
    let first = a
        .list(
            &d,
            Some("default"),
            &ListOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    let snapshot_rv = first.resource_version;
    // Between pages: one pod after the cursor is deleted, one is added, one is changed.
    a.delete(
        &d,
        Some("default"),
        "p3",
        &DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    a.create(&d, Some("default"), pod("p2a"), &WriteOptions::default())
        .unwrap();
    a.patch(
        &d,
        Some("default"),
        "p4",
        PatchKind::Merge,
        br#"{"metadata":{"labels":{"changed":"yes"}}}"#,
        Part::Main,
        &WriteOptions::default(),
    )
    .unwrap();
    let mut names: Vec<String> = first.items.iter().map(|s| s.name().to_string()).collect();
    let mut token = first.continue_token.clone();
    while let Some(c) = token {
        let page = a
            .list(
                &d,
                Some("default"),
                &ListOptions {
                    limit: 2,
                    continue_token: Some(c),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            page.resource_version, snapshot_rv,
            "every page is served at the first page's resourceVersion"
        );
        for it in &page.items {
            names.push(it.name().to_string());
            if it.name() == "p4" {
                assert!(
                    it.value()["metadata"]["labels"].get("changed").is_none(),
                    "p4 as it was then"
                );
            }
        }
        token = page.continue_token;
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5"]);
    // Once the history window has moved past the snapshot, the token is 410 Expired.
    let again = a
        .list(
            &d,
            Some("default"),
            &ListOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    for i in 0..10 {
        a.create(
            &d,
            Some("default"),
            pod(&format!("q{i}")),
            &WriteOptions::default(),
        )
        .unwrap();
    }
    let e = a
        .list(
            &d,
            Some("default"),
            &ListOptions {
                limit: 2,
                continue_token: again.continue_token,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
}

#[test]
fn exact_list_rebuilds_a_past_state() {
    let a = api();
    let d = pods(&a);
    a.create(&d, Some("default"), pod("a"), &WriteOptions::default())
        .unwrap();
    let rv = a.store().current_rv();
    a.create(&d, Some("default"), pod("b"), &WriteOptions::default())
        .unwrap();
    a.delete(&d, Some("default"), "a", &DeleteOptions::default())
        .unwrap();
    let r = a
        .list(
            &d,
            None,
            &ListOptions {
                resource_version: Some(rv.to_string()),
                resource_version_match: Some("Exact".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let names: Vec<_> = r.items.iter().map(|s| s.name().to_string()).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(r.resource_version, rv);
}

/// A watch of the `app=web` pods of `default` from `rv`.
fn web_pods_after(a: &Api, d: &Arc<ResourceDescriptor>, rv: u64) -> Watch {
    a.watch(
        d,
        Some("default"),
        &WatchOptions {
            resource_version: Some(rv.to_string()),
            label_selector: LabelSelector::parse("app=web").unwrap(),
            ..Default::default()
        },
    )
    .unwrap()
}

/// A bookmark may only carry a resourceVersion whose events have all been delivered: with events
/// still queued, a client resuming from the cursor would never see them.
#[tokio::test]
async fn no_bookmark_is_offered_ahead_of_queued_events() {
    let a = api();
    let d = pods(&a);
    let rv = a.store().current_rv();
    let mut w = web_pods_after(&a, &d, rv);
    assert_eq!(w.bookmark_rv(), Some(rv), "nothing read, nothing queued");
    for name in ["a", "b", "c"] {
        a.create(&d, Some("default"), pod(name), &WriteOptions::default())
            .unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(&first, WatchEvent::Added(o) if o["metadata"]["name"] == "a"));
    assert_eq!(w.cursor(), a.store().current_rv(), "all three were read");
    assert_eq!(w.bookmark_rv(), None, "two are still queued");
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(w.bookmark_rv(), Some(a.store().current_rv()));
}

#[tokio::test]
async fn watch_from_a_resource_version_sees_later_changes_and_selector_exits() {
    let a = api();
    let d = pods(&a);
    a.create(&d, Some("default"), pod("a"), &WriteOptions::default())
        .unwrap();
    let rv = a.store().current_rv();
    let mut w = web_pods_after(&a, &d, rv);
    a.create(&d, Some("default"), pod("b"), &WriteOptions::default())
        .unwrap();
    let mut p = a.get(&d, Some("default"), "a").unwrap();
    p["metadata"]["labels"] = json!({"app": "other"});
    a.update(&d, Some("default"), "a", p, &WriteOptions::default())
        .unwrap();
    let e1 = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&e1, WatchEvent::Added(o) if o["metadata"]["name"] == "b"),
        "{e1:?}"
    );
    let e2 = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&e2, WatchEvent::Deleted(o) if o["metadata"]["name"] == "a"),
        "{e2:?}"
    );
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_410_expired() {
    let a = api();
    let d = pods(&a);
    let rv = a.store().current_rv();
    a.create(&d, Some("default"), pod("a"), &WriteOptions::default())
        .unwrap();
    a.store().compact();
    let mut w = a
        .watch(
            &d,
            None,
            &WatchOptions {
                resource_version: Some(rv.to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    match w.next().await.unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
            assert!(e.message.starts_with("too old resource version"));
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(w.next().await.is_none());
}

async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

fn owned_pod(name: &str, owner: &Value, block: bool) -> Value {
    let mut p = pod(name);
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": block}]);
    p
}

#[tokio::test]
async fn garbage_collector_honours_background_orphan_and_foreground() {
    let a = api();
    let token = CancellationToken::new();
    tokio::spawn(a.clone().run_gc(token.clone()));
    let (p, s) = (pods(&a), sts(&a));
    let w = WriteOptions::default();
    // Background
    let o = a.create(&s, Some("default"), sts_obj("bg"), &w).unwrap();
    a.create(&p, Some("default"), owned_pod("bg-0", &o, true), &w)
        .unwrap();
    a.delete(&s, Some("default"), "bg", &DeleteOptions::default())
        .unwrap();
    eventually(|| a.get(&p, Some("default"), "bg-0").is_err()).await;
    // Orphan
    let o = a.create(&s, Some("default"), sts_obj("or"), &w).unwrap();
    a.create(&p, Some("default"), owned_pod("or-0", &o, true), &w)
        .unwrap();
    a.delete(
        &s,
        Some("default"),
        "or",
        &DeleteOptions {
            propagation: Some(Propagation::Orphan),
            ..Default::default()
        },
    )
    .unwrap();
    eventually(|| a.get(&s, Some("default"), "or").is_err()).await;
    let kept = a.get(&p, Some("default"), "or-0").unwrap();
    assert!(kept["metadata"]["ownerReferences"].is_null());
    // Foreground: owner stays until the blocking dependent is gone
    let o = a.create(&s, Some("default"), sts_obj("fg"), &w).unwrap();
    let mut dep = owned_pod("fg-0", &o, true);
    dep["spec"]["nodeName"] = json!("n1");
    a.create(&p, Some("default"), dep, &w).unwrap();
    a.delete(
        &s,
        Some("default"),
        "fg",
        &DeleteOptions {
            propagation: Some(Propagation::Foreground),
            ..Default::default()
        },
    )
    .unwrap();
    eventually(|| {
        a.get(&p, Some("default"), "fg-0")
            .is_ok_and(|x| x["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    assert!(a.get(&s, Some("default"), "fg").is_ok());
    a.delete(
        &p,
        Some("default"),
        "fg-0",
        &DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    eventually(|| a.get(&s, Some("default"), "fg").is_err()).await;
    token.cancel();
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_content() {
    let a = api();
    let token = CancellationToken::new();
    tokio::spawn(a.clone().run_gc(token.clone()));
    let ns = a.resource("", "v1", "namespaces").unwrap();
    let w = WriteOptions::default();
    a.create(&ns, None, json!({"metadata": {"name": "t"}}), &w)
        .unwrap();
    a.create(&pods(&a), Some("t"), pod("a"), &w).unwrap();
    let out = a.delete(&ns, None, "t", &DeleteOptions::default()).unwrap();
    assert_eq!(out.object()["status"]["phase"], "Terminating");
    eventually(|| a.get(&ns, None, "t").is_err()).await;
    assert!(a.get(&pods(&a), Some("t"), "a").is_err());
    token.cancel();
}

#[test]
fn custom_resource_definitions_serve_their_resources() {
    let a = api();
    let crd = a
        .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .unwrap();
    let body = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let out = a
        .create(&crd, None, body, &WriteOptions::default())
        .unwrap();
    assert_eq!(out["status"]["conditions"][1]["type"], "Established");
    let d = a.resource("example.com", "v1", "widgets").unwrap();
    let w = a
        .create(
            &d,
            Some("default"),
            json!({"metadata": {"name": "w"}, "spec": {"a": 1}, "status": {"x": 1}}),
            &WriteOptions::default(),
        )
        .unwrap();
    assert!(w["status"].is_null());
    // custom resources require a resourceVersion on update
    let mut u = w.clone();
    u["metadata"]["resourceVersion"] = Value::Null;
    assert_eq!(
        a.update(&d, Some("default"), "w", u, &WriteOptions::default())
            .unwrap_err()
            .code,
        422
    );
    a.delete(&crd, None, "widgets.example.com", &DeleteOptions::default())
        .unwrap();
    assert!(a.resource("example.com", "v1", "widgets").is_err());
}

#[test]
fn merge_and_json_patches_apply_and_respect_resource_version_preconditions() {
    let a = api();
    let d = pods(&a);
    let w = WriteOptions::default();
    a.create(&d, Some("default"), pod("a"), &w).unwrap();
    let out = a
        .patch(
            &d,
            Some("default"),
            "a",
            PatchKind::Merge,
            br#"{"metadata":{"labels":{"x":"1"}}}"#,
            Part::Main,
            &w,
        )
        .unwrap();
    assert_eq!(out["metadata"]["labels"]["x"], "1");
    let out = a
        .patch(
            &d,
            Some("default"),
            "a",
            PatchKind::Json,
            br#"[{"op":"add","path":"/metadata/labels/y","value":"2"}]"#,
            Part::Main,
            &w,
        )
        .unwrap();
    assert_eq!(out["metadata"]["labels"]["y"], "2");
    let e = a
        .patch(
            &d,
            Some("default"),
            "a",
            PatchKind::Merge,
            br#"{"metadata":{"resourceVersion":"1"}}"#,
            Part::Main,
            &w,
        )
        .unwrap_err();
    assert_eq!(e.code, 409);
    let e = a
        .patch(
            &d,
            Some("default"),
            "a",
            PatchKind::Merge,
            b"{nope",
            Part::Main,
            &w,
        )
        .unwrap_err();
    assert_eq!(e.code, 400);
}

/// The status write's object as `ResetObjectMetaForStatus` defines it, built
/// by copying (the construction [`status_write_object`] replaced).
fn status_write_reference(obj: &Value, old: &Value, pod_meta: bool) -> Value {
    let mut new = match old {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "status")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    };
    if let Some(st) = obj.get("status").filter(|s| !s.is_null())
        && let Some(m) = new.as_object_mut()
    {
        m.insert("status".into(), st.clone());
    }
    if let Some(mf) = obj.get("metadata").and_then(|m| m.get("managedFields")) {
        meta_mut(&mut new).insert("managedFields".into(), mf.clone());
    }
    if pod_meta {
        for k in ["labels", "annotations", "finalizers"] {
            match obj.get("metadata").and_then(|m| m.get(k)) {
                Some(v) => {
                    meta_mut(&mut new).insert(k.into(), v.clone());
                }
                None => {
                    meta_mut(&mut new).remove(k);
                }
            }
        }
    }
    new
}

fn small_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..3).prop_map(Value::from),
        "[ab]{0,2}".prop_map(Value::from),
        proptest::collection::btree_map("[ab]", "[ab]", 0..2)
            .prop_map(|m| serde_json::to_value(m).unwrap()),
    ]
}

/// An object of the keys a status write treats apart, each present or not.
fn status_write_side() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let meta_keys = [
        "name",
        "uid",
        "labels",
        "annotations",
        "finalizers",
        "managedFields",
        "resourceVersion",
    ];
    let top_keys = ["apiVersion", "kind", "spec", "status", "extra"];
    (
        proptest::collection::vec(proptest::option::of(small_json()), meta_keys.len()),
        proptest::collection::vec(proptest::option::of(small_json()), top_keys.len()),
        0u8..4,
    )
        .prop_map(move |(mv, tv, meta_kind)| {
            let meta: serde_json::Map<String, Value> = meta_keys
                .iter()
                .zip(mv)
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect();
            let mut top: serde_json::Map<String, Value> = top_keys
                .iter()
                .zip(tv)
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect();
            match meta_kind {
                0 => {}
                1 => {
                    top.insert("metadata".into(), json!("not an object"));
                }
                _ => {
                    top.insert("metadata".into(), Value::Object(meta));
                }
            }
            Value::Object(top)
        })
}

proptest::proptest! {
    /// The status write's object, built in the request's object, is the one
    /// built by copying the stored object's parts, for pods and other kinds.
    #[test]
    fn the_status_write_object_is_the_old_object_with_the_requests_status(
        obj in status_write_side(),
        old in status_write_side(),
        same in proptest::bool::ANY,
        pod_meta in proptest::bool::ANY,
    ) {
        // Mostly a writer sends back what it read: the request shares the old parts.
        let obj = if same {
            let mut o = old.clone();
            if let (Some(m), Some(st)) = (o.as_object_mut(), obj.get("status")) {
                m.insert("status".into(), st.clone());
            }
            o
        } else {
            obj
        };
        let want = status_write_reference(&obj, &old, pod_meta);
        proptest::prop_assert_eq!(status_write_object(obj, &old, pod_meta), want);
    }
}
