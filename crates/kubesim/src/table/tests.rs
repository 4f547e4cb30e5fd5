//! Table tests: cells as upstream's printers compute them.

use chrono::{Duration, TimeZone};
use serde_json::json;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn ago(secs: i64) -> String {
    (now() - Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn opts() -> TableOptions {
    TableOptions::default()
}

fn cells(group: &str, kind: &str, obj: Value) -> Vec<Value> {
    let t = table(group, kind, &[obj], None, &opts(), TableVersion::V1, now());
    t["rows"][0]["cells"].as_array().cloned().expect("cells")
}

#[test]
fn human_duration_matches_upstream_boundaries() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (2 * 365 * 86400, "2y"),
        (2 * 365 * 86400 + 3 * 86400, "2y3d"),
        (9 * 365 * 86400, "9y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(Duration::seconds(secs)), want, "{secs}s");
    }
}

#[test]
fn accept_header_selects_the_table_version() {
    let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    assert_eq!(table_target(kubectl), Some(TableVersion::V1));
    assert_eq!(
        table_target("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
        Some(TableVersion::V1Beta1)
    );
    assert_eq!(table_target("application/json"), None);
    assert_eq!(
        table_target("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
        None
    );
}

#[test]
fn include_object_is_parsed_and_rejected_when_unknown() {
    assert_eq!(
        TableOptions::from_query(None, false)
            .expect("ok")
            .include_object,
        IncludeObject::Metadata
    );
    assert_eq!(
        TableOptions::from_query(Some("None"), false)
            .expect("ok")
            .include_object,
        IncludeObject::None
    );
    assert_eq!(
        TableOptions::from_query(Some("Object"), false)
            .expect("ok")
            .include_object,
        IncludeObject::Object
    );
    let err = TableOptions::from_query(Some("Bogus"), false).expect_err("bad");
    assert_eq!(
        err.to_string(),
        "unrecognized includeObject value: \"Bogus\""
    );
}

fn running_pod() -> Value {
    json!({
        "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": ago(300), "resourceVersion": "42"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "busybox"}]},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [
                       {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}}},
                       {"name": "side", "ready": false, "restartCount": 0, "state": {"running": {}}}]}
    })
}

#[test]
fn pod_rows_compute_ready_status_restarts_and_wide_columns() {
    let got = cells("", "Pod", running_pod());
    assert_eq!(
        got,
        vec![
            json!("web-0"),
            json!("1/2"),
            json!("Running"),
            json!("2 (90s ago)"),
            json!("5m"),
            json!("10.0.0.5"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
}

#[test]
fn pod_status_follows_print_pod_precedence() {
    let mut waiting = running_pod();
    waiting["status"]["containerStatuses"][1]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    assert_eq!(cells("", "Pod", waiting)[2], "CrashLoopBackOff");

    let mut terminating = running_pod();
    terminating["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("", "Pod", terminating)[2], "Terminating");

    let pending = json!({"metadata": {"name": "p", "creationTimestamp": ago(5)},
                         "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
    assert_eq!(
        cells("", "Pod", pending.clone()),
        vec![
            json!("p"),
            json!("0/1"),
            json!("Pending"),
            json!("0"),
            json!("5s"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );

    let mut init = pending;
    init["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
    init["status"]["initContainerStatuses"] = json!([
        {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
        {"name": "i2", "state": {"running": {}}}]);
    assert_eq!(cells("", "Pod", init.clone())[2], "Init:1/2");
    init["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 3}});
    assert_eq!(cells("", "Pod", init)[2], "Init:ExitCode:3");

    let mut gated = running_pod();
    gated["spec"]["readinessGates"] = json!([{"conditionType": "x/y"}, {"conditionType": "x/z"}]);
    gated["status"]["conditions"] =
        json!([{"type": "x/y", "status": "True"}, {"type": "Ready", "status": "True"}]);
    assert_eq!(cells("", "Pod", gated)[8], "1/2");

    let mut done = running_pod();
    done["status"]["phase"] = json!("Succeeded");
    done["status"]["containerStatuses"] = json!([{"name": "app", "ready": false, "restartCount": 0,
                                                  "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]);
    let t = table("", "Pod", &[done], None, &opts(), TableVersion::V1, now());
    assert_eq!(t["rows"][0]["cells"][2], "Completed");
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
}

#[test]
fn table_shape_carries_columns_metadata_and_partial_object_metadata() {
    let list_meta = json!({"resourceVersion": "77", "continue": "abc"});
    let t = table(
        "",
        "Pod",
        &[running_pod()],
        Some(&list_meta),
        &opts(),
        TableVersion::V1,
        now(),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "77", "continue": "abc"})
    );
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    assert!(
        t["columnDefinitions"][0]["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Name must be unique within a namespace"))
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");

    let none = TableOptions {
        include_object: IncludeObject::None,
        no_headers: true,
    };
    let t = table(
        "",
        "Pod",
        &[running_pod()],
        None,
        &none,
        TableVersion::V1Beta1,
        now(),
    );
    assert!(t["rows"][0].get("object").is_none());
    assert!(t["columnDefinitions"].is_null());
    assert_eq!(t["metadata"]["resourceVersion"], "42");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
}

#[test]
fn statefulset_pdb_node_and_service_rows() {
    let sts = json!({"metadata": {"name": "web", "creationTimestamp": ago(3600 * 50)},
                     "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "i:1"}, {"name": "b", "image": "j:2"}]}}},
                     "status": {"readyReplicas": 2}});
    assert_eq!(
        cells("apps", "StatefulSet", sts),
        vec![
            json!("web"),
            json!("2/3"),
            json!("2d2h"),
            json!("a,b"),
            json!("i:1,j:2")
        ]
    );

    let pdb = json!({"metadata": {"name": "p", "creationTimestamp": ago(30)}, "spec": {"minAvailable": "50%"},
                     "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells("policy", "PodDisruptionBudget", pdb),
        vec![
            json!("p"),
            json!("50%"),
            json!("N/A"),
            json!(1),
            json!("30s")
        ]
    );

    let node = json!({"metadata": {"name": "n1", "creationTimestamp": ago(60), "labels": {"node-role.kubernetes.io/control-plane": ""}},
                      "spec": {"unschedulable": true},
                      "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.35.0"},
                                 "addresses": [{"type": "InternalIP", "address": "10.1.0.1"}]}});
    assert_eq!(
        cells("", "Node", node)[..6].to_vec(),
        vec![
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane"),
            json!("60s"),
            json!("v1.35.0"),
            json!("10.1.0.1")
        ]
    );

    let svc = json!({"metadata": {"name": "s", "creationTimestamp": ago(10)},
                     "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80, "protocol": "TCP"}],
                              "selector": {"app": "web"}}});
    assert_eq!(
        cells("", "Service", svc),
        vec![
            json!("s"),
            json!("ClusterIP"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80/TCP"),
            json!("10s"),
            json!("app=web")
        ]
    );
}

#[test]
fn events_endpointslices_revisions_and_config_rows() {
    let ev = json!({"metadata": {"name": "e1"}, "type": "Normal", "reason": "Scheduled", "message": " ok ",
                    "involvedObject": {"kind": "Pod", "name": "web-0"}, "source": {"component": "kubesim"},
                    "firstTimestamp": ago(100), "lastTimestamp": ago(50), "count": 3});
    assert_eq!(
        cells("", "Event", ev),
        vec![
            json!("50s"),
            json!("Normal"),
            json!("Scheduled"),
            json!("pod/web-0"),
            json!(""),
            json!("kubesim"),
            json!("ok"),
            json!("100s"),
            json!(3),
            json!("e1")
        ]
    );
    let new_ev = json!({"metadata": {"name": "e2"}, "type": "Warning", "reason": "X", "note": "n",
                        "regarding": {"kind": "StatefulSet", "name": "web"}, "reportingController": "ctl", "eventTime": ago(5)});
    assert_eq!(
        cells("events.k8s.io", "Event", new_ev)[..4].to_vec(),
        vec![
            json!("5s"),
            json!("Warning"),
            json!("X"),
            json!("statefulset/web")
        ]
    );

    let slice = json!({"metadata": {"name": "web-abc", "creationTimestamp": ago(1)}, "addressType": "IPv4",
                       "ports": [{"port": 80}, {"name": "metrics"}],
                       "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
    assert_eq!(
        cells("discovery.k8s.io", "EndpointSlice", slice),
        vec![
            json!("web-abc"),
            json!("IPv4"),
            json!("80,metrics"),
            json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
            json!("1s")
        ]
    );

    let cr = json!({"metadata": {"name": "web-6d4b", "creationTimestamp": ago(1),
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
                    "revision": 2});
    assert_eq!(
        cells("apps", "ControllerRevision", cr),
        vec![
            json!("web-6d4b"),
            json!("statefulset.apps/web"),
            json!(2),
            json!("1s")
        ]
    );

    let cm = json!({"metadata": {"name": "c", "creationTimestamp": ago(1)}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells("", "ConfigMap", cm),
        vec![json!("c"), json!(3), json!("1s")]
    );
    let secret = json!({"metadata": {"name": "s", "creationTimestamp": ago(1)}, "type": "Opaque", "data": {"a": "MQ=="}});
    assert_eq!(
        cells("", "Secret", secret),
        vec![json!("s"), json!("Opaque"), json!(1), json!("1s")]
    );
    let lease = json!({"metadata": {"name": "l", "creationTimestamp": ago(1)}, "spec": {"holderIdentity": "sroll-0"}});
    assert_eq!(
        cells("coordination.k8s.io", "Lease", lease),
        vec![json!("l"), json!("sroll-0"), json!("1s")]
    );
}

#[test]
fn unknown_kinds_use_the_default_name_and_created_at_columns() {
    let role = json!({"metadata": {"name": "r", "creationTimestamp": "2026-01-02T03:04:05Z"}});
    let t = table(
        "rbac.authorization.k8s.io",
        "Role",
        &[role],
        None,
        &opts(),
        TableVersion::V1,
        now(),
    );
    assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(t["rows"][0]["cells"], json!(["r", "2026-01-02T03:04:05Z"]));
}

#[test]
fn crd_printer_columns_evaluate_json_paths_by_type() {
    let version = json!({"name": "v1alpha1", "additionalPrinterColumns": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1, "description": "how many"},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"}]});
    let cols = PrinterColumns::from_crd_version(&version).expect("columns compile");
    let obj = json!({"metadata": {"name": "r1", "creationTimestamp": ago(7200)},
                     "spec": {"replicas": 3.0, "ratio": 2, "paused": false},
                     "status": {"phase": "Progressing", "conditions": [{"type": "Ready", "status": "False"}]}});
    let t = cols.table(&[obj], None, &opts(), TableVersion::V1, now());
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["r1", "Progressing", "False", 3, 2.0, false, "120m", null])
    );
    assert_eq!(t["columnDefinitions"][3]["priority"], 1);
    assert_eq!(t["columnDefinitions"][3]["description"], "how many");
    assert_eq!(
        t["columnDefinitions"][1]["description"],
        "Custom resource definition column (in JSONPath format): .status.phase"
    );

    let default_cols = PrinterColumns::from_crd_version(&json!({"name": "v1"})).expect("default");
    let t = default_cols.table(
        &[json!({"metadata": {"name": "x", "creationTimestamp": ago(3)}})],
        None,
        &opts(),
        TableVersion::V1,
        now(),
    );
    assert_eq!(t["rows"][0]["cells"], json!(["x", "3s"]));
    assert!(PrinterColumns::from_crd_version(&json!({"additionalPrinterColumns": [{"name": "B", "type": "string", "jsonPath": ".a["}]})).is_err());
}
