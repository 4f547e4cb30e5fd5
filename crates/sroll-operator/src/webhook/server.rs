//! The HTTPS side: one `POST` route per registered webhook entry, answering kube's typed
//! `AdmissionReview` (v1), over rustls with the serving certificate `certs.rs` keeps (reloaded in
//! place on renewal: connections opened after a reload use the new certificate, open ones finish
//! with the old).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Json, Router, extract::State, routing::post};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Client,
    core::{
        DynamicObject,
        admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
    },
};
use tokio::sync::watch;

use super::{
    Plugins, PodMutator, Validator,
    certs::{self, CertSettings, Material},
    configs::{self, ClientConfigMode},
};
use crate::{Error, Result, server::Readiness};

/// How the webhook server runs.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Where to listen (`0.0.0.0:9443` in the cluster, `127.0.0.1:PORT` out of it; port 0 picks
    /// a free one).
    pub addr: SocketAddr,
    /// How kube-apiserver reaches the server: the `sroll-webhook` Service in the cluster, or a URL
    /// naming `addr` out of it.
    pub client_config: ClientConfigMode,
    /// The operator's namespace: where the certificate Secret lives.
    pub namespace: String,
    /// Certificate lifetimes and rotation thresholds.
    pub certs: CertSettings,
}

/// The webhook server, its port bound.
pub struct WebhookServer {
    listener: std::net::TcpListener,
    local: SocketAddr,
}

impl WebhookServer {
    /// Binds `addr` (port 0 picks a free port): a port in use fails the operator's start.
    pub fn bind(addr: SocketAddr) -> Result<Self> {
        let listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Server {
            addr: addr.to_string(),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| Error::Server {
            addr: addr.to_string(),
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| Error::Server {
                addr: local.to_string(),
                source,
            })?;
        Ok(Self { listener, local })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves `plugins` until `stop` turns true: keeps the certificate Secret (creating, adopting
    /// or rotating it), registers the webhook configurations with the CA bundle, waits for the
    /// plug-ins' caches, then answers. `readiness` reports the server waiting until then.
    pub async fn run(
        self,
        client: Client,
        settings: WebhookSettings,
        plugins: Plugins,
        readiness: Arc<Readiness>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let Self { listener, local } = self;
        readiness.set_webhook_waiting(true);
        plugins.check().map_err(Error::Config)?;
        settings.certs.check().map_err(Error::Config)?;
        let Plugins {
            mutators,
            validators,
            background,
            ready,
        } = plugins;
        let mutating = mutators.iter().map(|m| m.webhook()).collect::<Vec<_>>();
        let validating = validators.iter().map(|v| v.webhook()).collect::<Vec<_>>();
        let background = tokio::spawn(join_all(background));
        let _abort = AbortOnDrop(background);

        let client_config = settings.client_config.resolve(local);
        let names = client_config.serving_names(&settings.namespace);
        let client_config_for_registrar = client_config.clone();

        // The certificate first: nothing can be served without it.
        let store = certs::Store::new(client.clone(), &settings.namespace, settings.certs.clone());
        let material = loop {
            match store.ensure(&names).await {
                Ok(m) => break m,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook certificate not ready; retrying");
                    if wait_or_stop(&mut stop, Duration::from_secs(2)).await {
                        return Ok(());
                    }
                }
            }
        };
        let registrar = configs::Registrar::new(
            client.clone(),
            client_config_for_registrar,
            mutating,
            validating,
        );
        let tls = axum_server::tls_rustls::RustlsConfig::from_config(material.server_config()?);

        tokio::select! {
            _ = join_all(ready) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }

        let app = router(mutators, validators);
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls.clone()).handle(handle.clone());
        let serving = tokio::spawn(async move { server.serve(app.into_make_service()).await });
        tracing::info!(addr = %local, "serving the admission webhooks");

        // Serving first, then the configurations (so kube-apiserver is never sent to a server that
        // does not answer yet); then every check interval: re-read the Secret, publish its bundle,
        // reload the TLS configuration when the serving certificate changed.
        let mut current = material.clone();
        let mut next = Some(material);
        loop {
            let candidate = match next.take() {
                Some(m) => m,
                None => {
                    if wait_or_stop(&mut stop, settings.certs.check_interval).await {
                        break;
                    }
                    match store.ensure(&names).await {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "webhook certificate check failed; keeping the current one");
                            continue;
                        }
                    }
                }
            };
            match settle(&store, &registrar, &names, candidate, &mut stop).await {
                Ok(Some(settled)) => {
                    if settled.cert_pem != current.cert_pem {
                        match settled.server_config() {
                            Ok(config) => {
                                tls.reload_from_config(config);
                                tracing::info!("webhook serving certificate reloaded");
                                current = settled;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "new webhook certificate unusable")
                            }
                        }
                    }
                    readiness.set_webhook_waiting(false);
                }
                Ok(None) => break,
                Err(e) => tracing::warn!(error = %e, "webhook configurations not updated"),
            }
        }
        readiness.set_webhook_waiting(true);
        handle.graceful_shutdown(Some(Duration::from_secs(5)));
        match serving.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Server {
                addr: local.to_string(),
                source,
            }),
            Err(join) => {
                tracing::error!(error = %join, "the webhook server task failed");
                Ok(())
            }
        }
    }
}

/// Publishes the CA bundle of `material` in the configurations, then finishes a CA rotation (a
/// serving certificate signed by the new CA is issued only once the configurations trust it).
/// `None` when stopped.
async fn settle(
    store: &certs::Store,
    registrar: &configs::Registrar,
    names: &[String],
    mut material: Material,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Material>> {
    loop {
        match registrar.register(&material.ca_bundle_pem).await {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "registering the webhook configurations failed; retrying");
                if wait_or_stop(stop, Duration::from_secs(2)).await {
                    return Ok(None);
                }
                continue;
            }
        }
        if material.serving_issued_by_current_ca() {
            return Ok(Some(material));
        }
        material = match store.reissue_serving(names).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "issuing the serving certificate under the new CA failed; retrying");
                if wait_or_stop(stop, Duration::from_secs(2)).await {
                    return Ok(None);
                }
                store.ensure(names).await?
            }
        };
    }
}

/// Sleeps `period`; `true` when `stop` turned true meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, period: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = stop.wait_for(|s| *s) => true,
        () = tokio::time::sleep(period) => false,
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<Vec<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The router: `POST <path>` for every mutator and validator.
pub fn router(mutators: Vec<Arc<dyn PodMutator>>, validators: Vec<Arc<dyn Validator>>) -> Router {
    let mut app = Router::new();
    for mutator in mutators {
        let path = mutator.webhook().path;
        app = app.route(
            path,
            post(mutate_handler).with_state(mutator as Arc<dyn PodMutator>),
        );
    }
    for validator in validators {
        let path = validator.webhook().path;
        app = app.route(
            path,
            post(validate_handler).with_state(validator as Arc<dyn Validator>),
        );
    }
    app
}

async fn mutate_handler(
    State(mutator): State<Arc<dyn PodMutator>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<serde_json::Value> {
    let review = match TryInto::<AdmissionRequest<DynamicObject>>::try_into(review) {
        Ok(request) => admit_pod(mutator.as_ref(), &request).into_review(),
        Err(e) => AdmissionResponse::invalid(e).into_review(),
    };
    Json(wire(&review))
}

/// The review as sent: kube-core serializes `response.patch` (a `Vec<u8>`) as an array of numbers;
/// the API's `[]byte` is a base64 string (Go's decoder accepts both, but the string is the
/// documented form, and kubesim reads only it).
pub fn wire(review: &AdmissionReview<DynamicObject>) -> serde_json::Value {
    use base64::Engine as _;
    let mut value = serde_json::to_value(review).unwrap_or_default();
    if let Some(response) = value.get_mut("response")
        && let Some(patch) = response.get_mut("patch")
        && let Ok(bytes) = serde_json::from_value::<Vec<u8>>(patch.clone())
    {
        *patch = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    value
}

async fn validate_handler(
    State(validator): State<Arc<dyn Validator>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    Json(
        match TryInto::<AdmissionRequest<DynamicObject>>::try_into(review) {
            Ok(request) => {
                let response = AdmissionResponse::from(&request);
                match validator.validate(&request) {
                    Ok(warnings) if warnings.is_empty() => response,
                    Ok(warnings) => {
                        let mut response = response;
                        response.warnings = Some(warnings);
                        response
                    }
                    Err(denial) => deny(response, &denial),
                }
                .into_review()
            }
            Err(e) => AdmissionResponse::invalid(e).into_review(),
        },
    )
}

fn deny(response: AdmissionResponse, denial: &super::Denial) -> AdmissionResponse {
    let mut response = response.deny(&denial.message);
    response.result.code = denial.code;
    response
}

/// Runs `mutator` on the request's pod and answers with the JSON Patch between the pod as decoded
/// and as mutated. The diff is taken between two serializations of the typed pod, so fields the
/// typed pod does not model are never touched by the patch.
pub fn admit_pod(
    mutator: &dyn PodMutator,
    request: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let Some(object) = &request.object else {
        return response;
    };
    let decoded = serde_json::to_value(object).and_then(serde_json::from_value::<Pod>);
    let mut pod = match decoded {
        Ok(pod) => pod,
        Err(e) => {
            return deny(
                response,
                &super::Denial {
                    message: format!("the object is not a valid v1 Pod: {e}"),
                    code: 400,
                },
            );
        }
    };
    let before = serde_json::to_value(&pod);
    let namespace = request.namespace.as_deref().unwrap_or_default();
    if let Err(denial) = mutator.mutate(namespace, &mut pod) {
        tracing::info!(mutator = mutator.name(), namespace, pod = ?pod.metadata.name,
            message = %denial.message, "pod refused");
        return deny(response, &denial);
    }
    let after = serde_json::to_value(&pod);
    let (Ok(before), Ok(after)) = (before, after) else {
        return deny(
            response,
            &super::Denial {
                message: "the mutated pod cannot be serialized".into(),
                code: 500,
            },
        );
    };
    let patch = json_patch::diff(&before, &after);
    if patch.0.is_empty() {
        return response;
    }
    match response.clone().with_patch(patch) {
        Ok(patched) => patched,
        Err(e) => deny(
            response,
            &super::Denial {
                message: format!("the patch cannot be serialized: {e}"),
                code: 500,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{Denial, WebhookEntry};
    use serde_json::json;

    struct AddLabel;

    impl PodMutator for AddLabel {
        fn name(&self) -> &'static str {
            "add-label"
        }
        fn webhook(&self) -> WebhookEntry {
            WebhookEntry::pod_create("add-label.pods.sroll.io", "/add-label")
        }
        fn mutate(&self, namespace: &str, pod: &mut Pod) -> Result<(), Denial> {
            if namespace == "forbidden" {
                return Err(Denial::new(
                    "pods in `forbidden` are refused: use another namespace",
                ));
            }
            pod.metadata
                .labels
                .get_or_insert_default()
                .insert("seen".into(), "yes".into());
            Ok(())
        }
    }

    fn review(namespace: &str, pod: serde_json::Value) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "web-0", "namespace": namespace, "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:statefulset-controller"},
                "object": pod,
            }
        }))
        .expect("a valid review");
        review.try_into().expect("a request")
    }

    #[test]
    fn a_mutation_is_answered_with_the_json_patch_of_its_changes_only() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "labels": {"app": "web"}, "someFutureField": 1},
            "spec": {"containers": [{"name": "app", "image": "web:1"}]}});
        let response = admit_pod(&AddLabel, &review("apps", pod));
        assert!(response.allowed);
        let sent = wire(&response.clone().into_review());
        assert_eq!(sent["response"]["patchType"], "JSONPatch");
        let decoded = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            sent["response"]["patch"]
                .as_str()
                .expect("the patch is a base64 string"),
        )
        .expect("base64");
        let patch: serde_json::Value = serde_json::from_slice(&decoded).expect("json");
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/metadata/labels/seen", "value": "yes"}])
        );
    }

    #[test]
    fn a_denial_carries_the_mutators_message_and_code() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"},
            "spec": {"containers": [{"name": "app", "image": "web:1"}]}});
        let response = admit_pod(&AddLabel, &review("forbidden", pod));
        assert!(!response.allowed);
        assert_eq!(response.result.code, 403);
        assert!(response.result.message.contains("use another namespace"));
        assert!(response.patch.is_none());
    }
}
