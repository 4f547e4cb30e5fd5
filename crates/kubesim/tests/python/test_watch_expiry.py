"""The 410 Gone paths, reached by pushing a resourceVersion out of kubesim's
history window (tests/python_clients.rs starts it with a small one): a watch
from that version gets an ERROR event with a 410 Expired Status, and a list
continue token from before is refused with 410. Runs last (file order): the
writes age every resourceVersion the other tests hold."""

import json

from kubernetes import client, watch

WRITES = 1700  # more than the history window of tests/python_clients.rs


def test_an_expired_resource_version_is_410_for_watches_and_continue_tokens(core, namespace):
    for i in range(3):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"x{i}"}})
    first = core.list_namespaced_config_map(namespace, limit=1)
    old_rv = first.metadata.resource_version
    token = first.metadata._continue
    assert token
    for i in range(WRITES):
        core.patch_namespaced_config_map("x0", namespace, {"data": {"n": str(i)}})
    w = watch.Watch()
    try:
        for _ in w.stream(
            core.list_namespaced_config_map, namespace, resource_version=old_rv, timeout_seconds=5, _request_timeout=20
        ):
            pass
        raise AssertionError("a watch from a compacted resourceVersion was served")
    except client.ApiException as e:
        assert e.status == 410
        assert e.reason.startswith("Expired: too old resource version")
    try:
        core.list_namespaced_config_map(namespace, limit=1, _continue=token)
        raise AssertionError("an expired continue token was served")
    except client.ApiException as e:
        assert e.status == 410
        body = json.loads(e.body)
        assert body["reason"] == "Expired"
        assert "continue" in body["message"]
