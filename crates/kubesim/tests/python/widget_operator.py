"""A small kopf operator used by test_kopf_operator.py: it handles Widgets
(widgets.fidelity.kubesim.io/v1) through kopf's full cycle against kubesim."""

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    # Short server-side watch timeouts: the watch is re-established (with its
    # resourceVersion) several times during the test.
    settings.watching.server_timeout = 5
    settings.watching.client_timeout = 15
    settings.persistence.finalizer = "fidelity.kubesim.io/widget-cleanup"
    # Post the handlers' log lines as core/v1 Events (off by default in kopf 1.45).
    settings.posting.loggers = True


@kopf.on.create("fidelity.kubesim.io", "v1", "widgets")
def created(spec, patch, logger, **_):
    patch.status["phase"] = "Ready"
    patch.status["observedSize"] = spec.get("size")
    logger.info("widget created")
    return {"message": f"created with size {spec.get('size')}"}


@kopf.on.update("fidelity.kubesim.io", "v1", "widgets")
def updated(spec, old, new, patch, **_):
    patch.status["observedSize"] = spec.get("size")
    return {"from": (old or {}).get("spec", {}).get("size"), "to": spec.get("size")}


@kopf.on.delete("fidelity.kubesim.io", "v1", "widgets")
def deleted(name, namespace, logger, **_):
    import kubernetes

    kubernetes.config.load_kube_config()
    core = kubernetes.client.CoreV1Api()
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": f"{name}-deleted"}, "data": {"by": "kopf"}},
    )
    logger.info("widget deleted")
