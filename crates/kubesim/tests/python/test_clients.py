"""The official Python client against kubesim: CRUD, defaulting, paginated
lists, watches, every patch type, server-side apply, metadata-only lists,
Events through both APIs, orphaning deletes."""

import datetime
import json

from kubernetes import client, watch

from conftest import raw_get, raw_get_lines, raw_post, ready, statefulset, wait_for

JSON = "application/json"


def test_version_reports_a_kubernetes_version(api_client):
    v = client.VersionApi(api_client).get_code()
    assert v.major == "1" and v.git_version.startswith("v1.")
    assert v.platform and v.go_version


def test_configmap_crud_round_trips(core, namespace):
    cm = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cfg", "labels": {"a": "1"}}, "data": {"k": "v"}}
    )
    assert cm.metadata.uid and cm.metadata.resource_version
    assert isinstance(cm.metadata.creation_timestamp, datetime.datetime)
    assert cm.metadata.creation_timestamp.tzinfo is not None
    got = core.read_namespaced_config_map("cfg", namespace)
    assert got.data == {"k": "v"}
    got.data["k"] = "w"
    replaced = core.replace_namespaced_config_map("cfg", namespace, got)
    assert int(replaced.metadata.resource_version) > int(cm.metadata.resource_version)
    # A stale resourceVersion is a 409 Conflict.
    got.data["k"] = "x"
    try:
        core.replace_namespaced_config_map("cfg", namespace, got)
        raise AssertionError("a stale update was accepted")
    except client.ApiException as e:
        assert e.status == 409
        assert json.loads(e.body)["reason"] == "Conflict"
    # This client types the answer of a delete as a plain object.
    status = core.delete_namespaced_config_map("cfg", namespace)
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "cfg" and status["details"]["kind"] == "configmaps"
    assert "group" not in status["details"], "StatusDetails.group is omitempty"
    try:
        core.read_namespaced_config_map("cfg", namespace)
        raise AssertionError("deleted configmap still readable")
    except client.ApiException as e:
        assert e.status == 404
        body = json.loads(e.body)
        assert body["reason"] == "NotFound"
        assert body["details"] == {"name": "cfg", "kind": "configmaps"}


def test_a_secret_without_a_type_is_opaque_and_services_get_upstreams_defaults(core, namespace):
    s = core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    )
    assert s.type == "Opaque"
    assert s.data == {"password": "aHVudGVyMg=="}
    assert s.string_data is None
    svc = core.create_namespaced_service(
        namespace,
        {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    )
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.session_affinity == "None"
    assert svc.spec.internal_traffic_policy == "Cluster"
    assert svc.spec.ip_families == ["IPv4"] and svc.spec.ip_family_policy == "SingleStack"
    port = svc.spec.ports[0]
    assert port.protocol == "TCP" and port.target_port == 80
    pod = core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    )
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.dns_policy == "ClusterFirst"
    assert pod.spec.scheduler_name == "default-scheduler"
    assert pod.spec.termination_grace_period_seconds == 30
    c = pod.spec.containers[0]
    assert c.image_pull_policy == "Always"
    assert c.termination_message_path == "/dev/termination-log"
    assert c.termination_message_policy == "File"
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)


def test_statefulset_crud_creates_ready_pods_and_scales(apps, core, namespace):
    created = apps.create_namespaced_stateful_set(namespace, statefulset("web", 2))
    assert created.spec.update_strategy.type == "RollingUpdate"
    assert created.spec.pod_management_policy == "Parallel"
    assert created.spec.revision_history_limit == 10
    wait_for("2 ready replicas", lambda: ready(apps, namespace, "web", 2))
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert sorted(p.metadata.name for p in pods) == ["web-0", "web-1"]
    assert all(p.status.phase == "Running" and p.spec.node_name for p in pods)
    apps.patch_namespaced_stateful_set_scale("web", namespace, {"spec": {"replicas": 3}})
    wait_for("3 ready replicas", lambda: ready(apps, namespace, "web", 3))
    apps.delete_namespaced_stateful_set("web", namespace)
    wait_for(
        "pods garbage collected",
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=web").items,
    )


def test_continued_list_pages_are_one_snapshot(core, namespace):
    for i in range(7):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"c{i}", "labels": {"page": "y"}}})
    first = core.list_namespaced_config_map(namespace, label_selector="page=y", limit=3)
    assert [c.metadata.name for c in first.items] == ["c0", "c1", "c2"]
    assert first.metadata._continue
    # With a selector upstream cannot count what follows; without one it does.
    assert first.metadata.remaining_item_count is None
    unfiltered = core.list_namespaced_config_map(namespace, limit=3)
    assert unfiltered.metadata.remaining_item_count == 4

    # Changes between pages must not show up in the later pages.
    core.delete_namespaced_config_map("c5", namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c3a", "labels": {"page": "y"}}})
    core.patch_namespaced_config_map("c4", namespace, {"data": {"changed": "yes"}})
    names = [c.metadata.name for c in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(namespace, label_selector="page=y", limit=3, _continue=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        for c in page.items:
            names.append(c.metadata.name)
            if c.metadata.name == "c4":
                assert c.data is None, "c4 as it was when the first page was served"
        token = page.metadata._continue
    assert names == [f"c{i}" for i in range(7)]


def test_watch_from_a_resource_version_sees_later_changes_and_bookmarks(core, namespace):
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "w1"}})
    core.patch_namespaced_config_map("w1", namespace, {"data": {"a": "b"}})
    core.delete_namespaced_config_map("w1", namespace)
    seen = []
    w = watch.Watch()
    for ev in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=3,
    ):
        if ev["type"] == "BOOKMARK":
            seen.append(("BOOKMARK", None))
            continue
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["type"] == "DELETED":
            w.stop()
    assert seen[:3] == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_every_patch_type_and_server_side_apply(apps, namespace):
    apps.create_namespaced_stateful_set(namespace, statefulset("p", 0))
    # Strategic merge: containers merge by name.
    apps.patch_namespaced_stateful_set(
        "p",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:1"}]}}}},
        _content_type="application/strategic-merge-patch+json",
    )
    s = apps.read_namespaced_stateful_set("p", namespace)
    assert [c.name for c in s.spec.template.spec.containers] == ["side", "app"]
    # JSON merge patch: lists are replaced.
    apps.patch_namespaced_stateful_set(
        "p",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}},
        _content_type="application/merge-patch+json",
    )
    s = apps.read_namespaced_stateful_set("p", namespace)
    assert [(c.name, c.image) for c in s.spec.template.spec.containers] == [("app", "nginx:1.28")]
    # JSON patch (a list body), with a failing test op answered 422.
    apps.patch_namespaced_stateful_set(
        "p", namespace, [{"op": "replace", "path": "/spec/replicas", "value": 0}, {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]
    )
    assert apps.read_namespaced_stateful_set("p", namespace).metadata.labels == {"x": "y"}
    try:
        apps.patch_namespaced_stateful_set("p", namespace, [{"op": "test", "path": "/spec/replicas", "value": 5}])
        raise AssertionError("a failing test op was accepted")
    except client.ApiException as e:
        assert e.status == 422
    # Server-side apply: a field manager owns what it applied; a conflicting
    # manager is refused with 409 until it forces.
    cm_body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}
    core = client.CoreV1Api(apps.api_client)
    out = core.patch_namespaced_config_map(
        "applied", namespace, cm_body, field_manager="pytest", _content_type="application/apply-patch+yaml"
    )
    assert out.data == {"a": "1"}
    mf = [(m.manager, m.operation) for m in out.metadata.managed_fields]
    assert ("pytest", "Apply") in mf
    other = dict(cm_body, data={"a": "2"})
    try:
        core.patch_namespaced_config_map(
            "applied", namespace, other, field_manager="other", _content_type="application/apply-patch+yaml"
        )
        raise AssertionError("a conflicting apply was accepted")
    except client.ApiException as e:
        assert e.status == 409
        assert "conflict" in json.loads(e.body)["message"].lower()
    forced = core.patch_namespaced_config_map(
        "applied", namespace, other, field_manager="other", force=True, _content_type="application/apply-patch+yaml"
    )
    assert forced.data == {"a": "2"}


def test_a_metadata_only_list_returns_partial_object_metadata(api_client, core, namespace):
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "m1", "labels": {"k": "v"}}, "data": {"big": "x" * 100}})
    status, headers, data = raw_get(
        api_client,
        f"/api/v1/namespaces/{namespace}/configmaps",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/json;as=PartialObjectMetadataList")
    assert data["kind"] == "PartialObjectMetadataList"
    assert data["apiVersion"] == "meta.k8s.io/v1"
    assert data["metadata"]["resourceVersion"]
    item = data["items"][0]
    assert item["kind"] == "PartialObjectMetadata" and item["apiVersion"] == "meta.k8s.io/v1"
    assert item["metadata"]["name"] == "m1" and item["metadata"]["labels"] == {"k": "v"}
    assert "data" not in item
    status, _, one = raw_get(
        api_client,
        f"/api/v1/namespaces/{namespace}/configmaps/m1",
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    )
    assert status == 200 and one["kind"] == "PartialObjectMetadata" and "data" not in one
    # A metadata-only watch (what client-go's metadata informers open).
    status, headers, frames = raw_get_lines(
        api_client,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=1",
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    )
    assert status == 200
    assert frames[0]["type"] == "ADDED" and frames[0]["object"]["kind"] == "PartialObjectMetadata"
    assert "data" not in frames[0]["object"]


def test_events_written_through_events_k8s_io_are_read_through_core_v1(api_client, core, namespace):
    ev_api = client.EventsV1Api(api_client)
    now = datetime.datetime.now(datetime.timezone.utc)
    created = ev_api.create_namespaced_event(
        namespace,
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="e1"),
            event_time=now,
            reporting_controller="fidelity.kubesim.io/pytest",
            reporting_instance="pytest-1",
            action="Testing",
            reason="Checked",
            type="Normal",
            note="events share one store",
            regarding=client.V1ObjectReference(kind="ConfigMap", name="x", namespace=namespace),
        ),
    )
    assert created.note == "events share one store"
    legacy = core.read_namespaced_event("e1", namespace)
    assert legacy.message == "events share one store"
    assert legacy.involved_object.kind == "ConfigMap" and legacy.involved_object.name == "x"
    assert legacy.reporting_component == "fidelity.kubesim.io/pytest"
    assert legacy.reporting_instance == "pytest-1"
    assert legacy.action == "Testing" and legacy.reason == "Checked"
    # Times are stored as Go encodes them: UTC "Z", microseconds for MicroTime.
    _, _, raw = raw_get(api_client, f"/apis/events.k8s.io/v1/namespaces/{namespace}/events/e1")
    assert raw["eventTime"] == now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), raw["eventTime"]
    # And the other way: a core/v1 event is listed by events.k8s.io/v1.
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="e2"),
            involved_object=client.V1ObjectReference(kind="Pod", name="p", namespace=namespace),
            reason="Legacy",
            message="from core",
            count=3,
            source=client.V1EventSource(component="old-style"),
            type="Warning",
            first_timestamp=datetime.datetime(2026, 1, 2, 4, 4, 5, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
        ),
    )
    _, _, raw2 = raw_get(api_client, f"/api/v1/namespaces/{namespace}/events/e2")
    assert raw2["firstTimestamp"] == "2026-01-02T03:04:05Z"
    # (Read raw: a core/v1 Event has no eventTime, which this client's
    # EventsV1Event model requires, against a real cluster too.)
    status, _, listed = raw_get(api_client, f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")
    assert listed["kind"] == "EventList" and listed["apiVersion"] == "events.k8s.io/v1"
    by_name = {e["metadata"]["name"]: e for e in listed["items"]}
    assert set(by_name) == {"e1", "e2"}
    e2 = by_name["e2"]
    assert e2["apiVersion"] == "events.k8s.io/v1"
    assert e2["note"] == "from core" and e2["deprecatedCount"] == 3
    assert e2["deprecatedSource"] == {"component": "old-style"} and e2["regarding"]["kind"] == "Pod"
    assert "message" not in e2 and "involvedObject" not in e2
    # A watch through events.k8s.io streams the events.k8s.io form.
    status, _, frames = raw_get_lines(
        api_client, f"/apis/events.k8s.io/v1/namespaces/{namespace}/events?watch=true&timeoutSeconds=1", "application/json"
    )
    assert status == 200
    watched = {f["object"]["metadata"]["name"]: f["object"] for f in frames if f["type"] == "ADDED"}
    assert watched["e2"]["apiVersion"] == "events.k8s.io/v1" and watched["e2"]["note"] == "from core"
    # A patch through events.k8s.io changes what core/v1 reads.
    ev_api.patch_namespaced_event("e1", namespace, {"note": "patched"})
    assert core.read_namespaced_event("e1", namespace).message == "patched"
    # events.k8s.io/v1 validates creates (eventTime, reportingController, ... are required).
    # (Raw: this client refuses such a body before sending it.)
    status, answer = raw_post(
        api_client,
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
        {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "bad"}, "reason": "X", "type": "Normal"},
    )
    assert status == 422 and answer["reason"] == "Invalid"
    assert "eventTime: Required value" in answer["message"]
    assert answer["details"]["kind"] == "Event" and answer["details"]["group"] == "events.k8s.io"
    ev_api.delete_namespaced_event("e2", namespace)
    assert [e.metadata.name for e in core.list_namespaced_event(namespace).items] == ["e1"]


def test_controllers_record_events_a_client_can_read(apps, core, namespace):
    apps.create_namespaced_stateful_set(namespace, statefulset("ev", 1))
    wait_for("ready", lambda: ready(apps, namespace, "ev", 1))

    def reasons():
        evs = core.list_namespaced_event(namespace).items
        return {(e.reason, e.message) for e in evs}

    pod = core.read_namespaced_pod("ev-0", namespace)
    wait_for(
        "the controller's, scheduler's and kubelet's events",
        lambda: {
            ("SuccessfulCreate", "create Pod ev-0 in StatefulSet ev successful"),
            ("Scheduled", f"Successfully assigned {namespace}/ev-0 to {pod.spec.node_name}"),
            ("Started", "Started container app"),
        }
        <= reasons(),
    )
    by_field = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=StatefulSet,reason=SuccessfulCreate")
    assert [e.involved_object.name for e in by_field.items] == ["ev"]
    assert by_field.items[0].source.component == "statefulset-controller"


def test_an_orphaning_delete_keeps_the_pods(apps, core, namespace):
    apps.create_namespaced_stateful_set(namespace, statefulset("keep", 4))
    wait_for("ready", lambda: ready(apps, namespace, "keep", 4))
    before = {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(namespace).items}
    assert len(before) == 4
    apps.delete_namespaced_stateful_set("keep", namespace, propagation_policy="Orphan")

    def gone():
        try:
            apps.read_namespaced_stateful_set("keep", namespace)
            return False
        except client.ApiException as e:
            return e.status == 404

    wait_for("the set gone", gone)
    import time

    time.sleep(1.0)
    pods = core.list_namespaced_pod(namespace).items
    assert {p.metadata.name: p.metadata.uid for p in pods} == before
    assert all(not p.metadata.owner_references and p.metadata.deletion_timestamp is None for p in pods)


def test_content_negotiation_serves_yaml_and_refuses_what_it_cannot_encode(api_client, core, namespace):
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "neg"}, "data": {"k": "v"}})
    path = f"/api/v1/namespaces/{namespace}/configmaps/neg"
    r = api_client.call_api("GET", api_client.configuration.host + path, header_params={"Accept": "application/yaml"})
    r.read()
    assert r.status == 200 and r.headers["Content-Type"] == "application/yaml"
    text = r.data.decode()
    assert "kind: ConfigMap" in text and "k: v" in text
    for accept in ("text/html", "application/json;as=Foo;g=meta.k8s.io;v=v1"):
        r = api_client.call_api("GET", api_client.configuration.host + path, header_params={"Accept": accept})
        r.read()
        body = json.loads(r.data)
        assert (r.status, body["reason"]) == (406, "NotAcceptable"), (accept, r.status, body)
    # The first range the server can encode wins.
    status, headers, obj = raw_get(api_client, path, "text/html, application/json")
    assert status == 200 and obj["data"] == {"k": "v"}
