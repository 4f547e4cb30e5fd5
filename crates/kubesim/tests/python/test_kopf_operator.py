"""A kopf operator (widget_operator.py, run with `kopf run --standalone`)
through its whole cycle against kubesim: its watch with resourceVersion,
create/update/delete handlers, the status and annotations it patches, its
finalizer, and the Events it posts."""

import os
import pathlib
import subprocess
import sys
import time

import pytest
from kubernetes import client

from conftest import wait_for

GROUP, VERSION, PLURAL = "fidelity.kubesim.io", "v1", "widgets"
HERE = pathlib.Path(__file__).parent

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def operator(api_client, core):
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(CRD)
    ns = "kopf-widgets"
    core.create_namespace({"metadata": {"name": ns}})
    log_path = pathlib.Path(os.environ.get("KUBESIM_SCRATCH", "/tmp")) / "kopf.log"
    log = open(log_path, "w")
    kopf = pathlib.Path(os.environ.get("KUBESIM_VENV_BIN", pathlib.Path(sys.executable).parent)) / "kopf"
    proc = subprocess.Popen(
        [str(kopf), "run", "--standalone", "--namespace", ns, "--verbose", str(HERE / "widget_operator.py")],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(HERE.parent),
    )
    try:
        yield ns, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def show_log(log_path):
    return "\n--- kopf log (tail) ---\n" + "\n".join(log_path.read_text().splitlines()[-80:])


def test_kopf_handles_create_update_and_delete_with_its_finalizer(api_client, core, operator):
    ns, log_path = operator
    co = client.CustomObjectsApi(api_client)
    co.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    )

    def get():
        return co.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w")

    try:
        # create: the finalizer is added, the handler patches status (its own
        # field and the handler's return value) and kopf records its progress.
        w = wait_for("the create handler's status", lambda: (lambda o: o if o.get("status", {}).get("phase") == "Ready" else None)(get()))
        assert w["status"]["observedSize"] == 1
        assert w["status"]["created"] == {"message": "created with size 1"}
        assert "fidelity.kubesim.io/widget-cleanup" in w["metadata"]["finalizers"]
        assert "kopf.zalando.org/last-handled-configuration" in w["metadata"].get("annotations", {})
        # update
        co.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w", {"spec": {"size": 3}})
        w = wait_for("the update handler", lambda: (lambda o: o if o.get("status", {}).get("observedSize") == 3 else None)(get()))
        assert w["status"]["updated"] == {"from": 1, "to": 3}
        # kopf posts Events about its handlers (through core/v1).
        def kopf_events():
            evs = core.list_namespaced_event(ns).items
            return [(e.reason, e.message) for e in evs if e.involved_object.name == "w"] or None

        posted = wait_for("kopf's events", kopf_events)
        assert ("Logging", "Handler 'created' succeeded.") in posted, posted
        # delete: the handler runs, the finalizer is removed, the object goes.
        co.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "w")

        def gone():
            try:
                get()
                return False
            except client.ApiException as e:
                return e.status == 404

        wait_for("the widget gone after its delete handler", gone)
        assert core.read_namespaced_config_map("w-deleted", ns).data == {"by": "kopf"}
    except BaseException:
        time.sleep(0.5)
        print(show_log(log_path))
        raise
    log = log_path.read_text()
    for bad in ("Traceback", "Unprocessable", "Unsupported", "ERROR"):
        assert bad not in log, f"kopf logged {bad!r}:" + show_log(log_path)


PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "kopfpeerings.kopf.dev"},
    "spec": {
        "scope": "Namespaced",
        "group": "kopf.dev",
        "names": {"kind": "KopfPeering", "plural": "kopfpeerings", "singular": "kopfpeering"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                },
            }
        ],
    },
}


def test_kopf_peering_announces_the_operator_and_withdraws_it_on_exit(api_client, core, operator):
    # The Widget CRD exists (the operator fixture installed it); kopf without
    # --standalone finds the peering CRD and the namespace's "default" peering.
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(PEERING_CRD)
    ns = "kopf-peering"
    core.create_namespace({"metadata": {"name": ns}})
    co = client.CustomObjectsApi(api_client)
    co.create_namespaced_custom_object(
        "kopf.dev", "v1", ns, "kopfpeerings", {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "default"}}
    )
    log_path = pathlib.Path(os.environ.get("KUBESIM_SCRATCH", "/tmp")) / "kopf-peering.log"
    kopf = pathlib.Path(os.environ.get("KUBESIM_VENV_BIN", pathlib.Path(sys.executable).parent)) / "kopf"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(kopf), "run", "--namespace", ns, "--verbose", str(HERE / "widget_operator.py")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(HERE.parent),
        )
        try:
            def peers():
                st = co.get_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings", "default").get("status") or {}
                return st or None

            try:
                announced = wait_for("kopf to announce itself in the peering", peers, timeout=60)
            except BaseException:
                print(show_log(log_path))
                raise
            (ident, info), = announced.items()
            assert {"priority", "lifetime", "lastseen"} <= set(info), info
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    st = co.get_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings", "default").get("status") or {}
    assert ident not in st, f"kopf left its peering entry behind: {st}" + show_log(log_path)
    text = log_path.read_text()
    for bad in ("Traceback", "Unprocessable"):
        assert bad not in text, f"kopf logged {bad!r}:" + show_log(log_path)
