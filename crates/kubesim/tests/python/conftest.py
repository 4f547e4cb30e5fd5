"""Fixtures of kubesim's client conformance suite.

Run by tests/python_clients.rs, which starts kubesim (simulation on) and sets
KUBECONFIG; every test talks to it through the official `kubernetes` client.
"""

import os
import time
import uuid

import pytest
from kubernetes import client, config


def wait_for(what, cond, timeout=60.0, interval=0.1):
    """Polls `cond` until it returns a truthy value; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except client.ApiException as e:  # a transient 404/409 while converging
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def api_client():
    config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    c = client.ApiClient()
    yield c
    c.close()


@pytest.fixture(scope="session")
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client):
    return client.AppsV1Api(api_client)


@pytest.fixture
def namespace(core):
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def statefulset(name, replicas, image="nginx:1.27"):
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def raw_get(api_client, path, accept="application/json"):
    """GET `path` with an explicit Accept header: (status, headers, JSON body)."""
    import json

    r = api_client.call_api(
        "GET", api_client.configuration.host + path, header_params={"Accept": accept}
    )
    r.read()
    return r.status, r.headers, json.loads(r.data)


def raw_get_lines(api_client, path, accept):
    """GET a watch stream (ended by its timeoutSeconds): (status, headers, frames)."""
    import json

    r = api_client.call_api(
        "GET", api_client.configuration.host + path, header_params={"Accept": accept}
    )
    r.read()
    return r.status, r.headers, [json.loads(l) for l in r.data.splitlines() if l.strip()]


def raw_post(api_client, path, body):
    """POST a JSON `body` without the client's model validation: (status, JSON answer)."""
    import json

    r = api_client.call_api(
        "POST",
        api_client.configuration.host + path,
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=body,
    )
    r.read()
    return r.status, json.loads(r.data)


def ready(apps, ns, name, replicas):
    s = apps.read_namespaced_stateful_set(name, ns)
    return (s.status.ready_replicas or 0) == replicas and s.status.observed_generation == s.metadata.generation
