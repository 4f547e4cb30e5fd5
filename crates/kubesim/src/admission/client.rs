//! HTTPS calls to webhooks: one client per `caBundle` (and per resolved
//! service endpoint), the server verified against the bundle, errors worded
//! as client-go's (`Post "URL": …`).
//!
//! Services are resolved as kube-apiserver does with
//! `--enable-aggregator-routing` (`staging/src/k8s.io/apiserver/pkg/util/proxy/endpoints.go`,
//! `ResolveEndpoint`): the Service's port is looked up, then a ready endpoint
//! of its EndpointSlices (label `kubernetes.io/service-name`) with the
//! matching port; the TLS server name stays `<service>.<namespace>.svc`
//! (`staging/src/k8s.io/apiserver/pkg/util/webhook/client.go`). kubesim has
//! no cluster network, so endpoints must be addresses this process can reach
//! (a webhook server run by the test or the host, with a selector-less
//! Service and a hand-made EndpointSlice).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

use super::config::Target;
use crate::api::{Api, ListOptions};

/// A client's key: its `caBundle` and, for services, the host name pinned
/// to the resolved endpoint.
type ClientKey = (Option<Arc<Vec<u8>>>, Option<(String, SocketAddr)>);

/// Cached clients.
#[derive(Default)]
pub struct Clients {
    cache: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

/// Installs ring as rustls' process-wide provider unless one is installed
/// (reqwest is built without a provider of its own).
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one in between, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn build_client(
    ca: Option<&[u8]>,
    host_override: Option<&(String, SocketAddr)>,
) -> Result<reqwest::Client, String> {
    ensure_crypto_provider();
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "kube-apiserver-admission (kubesim/",
            env!("CARGO_PKG_VERSION"),
            ")"
        ));
    if let Some(ca) = ca {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            // client-go's `rootCertPool` (`transport/transport.go`).
            return Err(if ca.windows(11).any(|w| w == b"-----BEGIN ") {
                "unable to load root certificates: no valid certificate authority data seen".into()
            } else {
                "unable to load root certificates: unable to parse bytes as PEM block".into()
            });
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        b = b.tls_backend_preconfigured(cfg);
    }
    if let Some((host, addr)) = host_override {
        b = b.resolve(host, *addr);
    }
    b.build().map_err(|e| e.to_string())
}

impl Clients {
    fn client(
        &self,
        ca: Option<&Arc<Vec<u8>>>,
        host_override: Option<(String, SocketAddr)>,
    ) -> Result<reqwest::Client, String> {
        let key = (ca.cloned(), host_override);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let c = build_client(ca.map(|c| c.as_slice()), key.1.as_ref())?;
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(key, c.clone());
        Ok(c)
    }
}

/// The outcome of one call: the response body, or the call error's text
/// (the `Reason` of upstream's `ErrCallingWebhook`).
pub type CallResult = Result<Value, String>;

/// Resolves `<name>.<namespace>.svc:<port>` to a ready endpoint.
fn resolve_service(
    api: &Api,
    namespace: &str,
    name: &str,
    port: i64,
) -> Result<SocketAddr, String> {
    let svc_d = api
        .resource("", "v1", "services")
        .map_err(|e| e.message.clone())?;
    let svc = api
        .get(&svc_d, Some(namespace), name)
        .map_err(|_| format!("service \"{name}\" not found"))?;
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let Some(sp) = ports.iter().find(|p| p["port"].as_i64() == Some(port)) else {
        return Err(format!(
            "no service port {port} found for service \"{name}\""
        ));
    };
    let port_name = sp["name"].as_str().unwrap_or_default();
    let slice_d = api
        .resource("discovery.k8s.io", "v1", "endpointslices")
        .map_err(|e| e.message.clone())?;
    let opts = ListOptions {
        label_selector: crate::selector::LabelSelector::parse(&format!(
            "kubernetes.io/service-name={name}"
        ))
        .map_err(|e| e.to_string())?,
        ..ListOptions::default()
    };
    let slices = api
        .list(&slice_d, Some(namespace), &opts)
        .map_err(|e| e.message.clone())?
        .values();
    let mut candidates = vec![];
    for s in &slices {
        let Some(p) = s["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for e in s["endpoints"].as_array().into_iter().flatten() {
            if e["conditions"]["ready"].as_bool() == Some(false) {
                continue;
            }
            for a in e["addresses"].as_array().into_iter().flatten() {
                if let Some(ip) = a.as_str().and_then(|a| a.parse::<IpAddr>().ok()) {
                    candidates.push(SocketAddr::new(ip, p));
                }
            }
        }
    }
    if candidates.is_empty() {
        return Err(format!("no endpoints available for service \"{name}\""));
    }
    Ok(candidates[fastrand::usize(..candidates.len())])
}

/// Go's wording of a failed HTTP call (`url.Error` around a net error).
fn describe(e: &reqwest::Error, addr: Option<SocketAddr>, url: &str) -> String {
    use std::error::Error as _;
    if e.is_timeout() {
        return format!("Post \"{url}\": context deadline exceeded");
    }
    let mut chain = vec![];
    let mut src = e.source();
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    let text = chain.join(": ");
    let lower = text.to_ascii_lowercase();
    if lower.contains("connection refused") {
        let at = addr.map(|a| a.to_string()).unwrap_or_else(|| {
            url.split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or_default()
                .to_owned()
        });
        return format!("Post \"{url}\": dial tcp {at}: connect: connection refused");
    }
    if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        return format!(
            "Post \"{url}\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
        );
    }
    if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        return format!(
            "Post \"{url}\": tls: failed to verify certificate: x509: certificate is valid for other names ({text})"
        );
    }
    if text.is_empty() {
        format!("Post \"{url}\": {e}")
    } else {
        format!("Post \"{url}\": {text}")
    }
}

/// POSTs `review` to the webhook and parses the response (`timeout` bounds
/// the whole call, sent to the server as `?timeout=…s` as client-go does).
pub async fn call(
    api: &Api,
    clients: &Clients,
    target: &Target,
    ca: Option<&Arc<Vec<u8>>>,
    timeout: Duration,
    review: &Value,
) -> CallResult {
    let secs = timeout.as_secs().max(1);
    let (url, override_, addr) = match target {
        Target::Url(u) => (u.clone(), None, None),
        Target::Service {
            namespace,
            name,
            path,
            port,
        } => {
            let addr = resolve_service(api, namespace, name, *port)
                .map_err(|e| format!("could not get REST client: {e}"))?;
            let host = format!("{name}.{namespace}.svc");
            let path = if path.starts_with('/') {
                path.clone()
            } else {
                format!("/{path}")
            };
            (
                format!("https://{host}:{}{path}", addr.port()),
                Some((host, addr)),
                Some(addr),
            )
        }
    };
    let client = clients
        .client(ca, override_)
        .map_err(|e| format!("could not get REST client: {e}"))?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}timeout={secs}s");
    let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
    let resp = client
        .post(&full)
        .timeout(timeout)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("failed to call webhook: {}", describe(&e, addr, &full)))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("failed to call webhook: {}", describe(&e, addr, &full)))?;
    if !status.is_success() {
        // client-go's `transformResponse`: the body as the error text.
        let text = String::from_utf8_lossy(&bytes);
        return Err(format!(
            "failed to call webhook: an error on the server ({}) has prevented the request from succeeding",
            text.trim()
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("failed to call webhook: couldn't decode response: {e}"))
}
