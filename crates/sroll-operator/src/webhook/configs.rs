//! The webhook configurations: `sroll-mutating-webhooks` (a `MutatingWebhookConfiguration`, one
//! entry per pod mutator, in order) and `sroll-validating-webhooks` (one entry per validator),
//! built from the plug-ins' [`WebhookEntry`]s and the CA bundle, and kept so by every replica.
//!
//! In the cluster `deploy/` ships both configurations (so the operator needs no `create` on them:
//! it gets and updates them by name); out of the cluster the operator creates them when missing.
//! An update carries the `resourceVersion` read (a conflict is re-read and retried) and is skipped
//! when the configuration already says what this replica would write (the annotation
//! [`SPEC_HASH`] records it; kube-apiserver's defaults make a field-by-field comparison useless).

use std::{collections::BTreeMap, net::SocketAddr};

use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        MutatingWebhook, MutatingWebhookConfiguration, ServiceReference, ValidatingWebhook,
        ValidatingWebhookConfiguration, WebhookClientConfig,
    },
};
use kube::{
    Api, Client, Resource,
    api::{ObjectMeta, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

use super::WebhookEntry;
use crate::{Error, Result};

/// The mutating configuration's name.
pub const MUTATING: &str = "sroll-mutating-webhooks";
/// The validating configuration's name.
pub const VALIDATING: &str = "sroll-validating-webhooks";
/// The in-cluster Service in front of every replica's webhook port (deploy/base/webhook.yaml).
pub const SERVICE: &str = "sroll-webhook";
/// The annotation recording a hash of the webhooks this operator wrote.
pub const SPEC_HASH: &str = "webhook.sroll.io/spec-hash";

/// How kube-apiserver reaches the webhook server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientConfigMode {
    /// `clientConfig.service` (in the cluster): the Service `name` in `namespace`, port `port`.
    Service {
        /// The Service's name (`sroll-webhook`).
        name: String,
        /// The Service's namespace (the operator's).
        namespace: String,
        /// The Service's port (443).
        port: i32,
    },
    /// `clientConfig.url` (out of the cluster): `https://HOST:PORT/<path>` with the port the
    /// server bound; `host` defaults to the bound IP.
    Url {
        /// The host kube-apiserver dials (an IP or a DNS name the serving certificate names).
        host: Option<String>,
    },
}

impl ClientConfigMode {
    /// The in-cluster mode for the operator's namespace.
    pub fn service(namespace: &str) -> Self {
        Self::Service {
            name: SERVICE.into(),
            namespace: namespace.into(),
            port: 443,
        }
    }

    /// Fills the URL's host and port from the address the server bound.
    pub fn resolve(&self, bound: SocketAddr) -> Resolved {
        match self {
            Self::Service {
                name,
                namespace,
                port,
            } => Resolved::Service {
                name: name.clone(),
                namespace: namespace.clone(),
                port: *port,
            },
            Self::Url { host } => {
                let host = host.clone().unwrap_or_else(|| match bound.ip() {
                    ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                });
                Resolved::Url {
                    base: format!("https://{host}:{}", bound.port()),
                    host: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                }
            }
        }
    }
}

/// A [`ClientConfigMode`] with the server's address known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// `clientConfig.service`.
    Service {
        /// Name.
        name: String,
        /// Namespace.
        namespace: String,
        /// Port.
        port: i32,
    },
    /// `clientConfig.url` = `base` + path.
    Url {
        /// `https://HOST:PORT`.
        base: String,
        /// The host alone.
        host: String,
    },
}

impl Resolved {
    /// The names the serving certificate must carry: the Service's DNS names in the operator's
    /// namespace, `localhost` and `127.0.0.1`, plus the URL's host. The same on every replica, so
    /// replicas never reissue each other's certificate.
    pub fn serving_names(&self, namespace: &str) -> Vec<String> {
        let mut names = vec![
            format!("{SERVICE}.{namespace}.svc"),
            format!("{SERVICE}.{namespace}.svc.cluster.local"),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        let extra = match self {
            Self::Service {
                name, namespace, ..
            } => format!("{name}.{namespace}.svc"),
            Self::Url { host, .. } => host.clone(),
        };
        if !names.contains(&extra) {
            names.push(extra);
        }
        names
    }

    fn client_config(&self, path: &str, ca_bundle_pem: &str) -> WebhookClientConfig {
        let ca_bundle = Some(ByteString(ca_bundle_pem.as_bytes().to_vec()));
        match self {
            Self::Service {
                name,
                namespace,
                port,
            } => WebhookClientConfig {
                ca_bundle,
                service: Some(ServiceReference {
                    name: name.clone(),
                    namespace: namespace.clone(),
                    path: Some(path.to_owned()),
                    port: Some(*port),
                }),
                url: None,
            },
            Self::Url { base, .. } => WebhookClientConfig {
                ca_bundle,
                service: None,
                url: Some(format!("{base}{path}")),
            },
        }
    }
}

const SIDE_EFFECTS_NONE: &str = "None";

/// The mutating webhooks for `entries` (in order).
pub fn mutating_webhooks(
    entries: &[WebhookEntry],
    client: &Resolved,
    ca_bundle_pem: &str,
) -> Vec<MutatingWebhook> {
    entries
        .iter()
        .map(|e| MutatingWebhook {
            admission_review_versions: vec!["v1".into()],
            client_config: client.client_config(e.path, ca_bundle_pem),
            failure_policy: Some(e.failure_policy.as_str().into()),
            match_policy: Some("Equivalent".into()),
            name: e.name.clone(),
            namespace_selector: e.namespace_selector.clone(),
            object_selector: e.object_selector.clone(),
            reinvocation_policy: Some(if e.reinvocation { "IfNeeded" } else { "Never" }.into()),
            rules: Some(e.rules.clone()),
            side_effects: SIDE_EFFECTS_NONE.into(),
            timeout_seconds: Some(e.timeout_seconds),
            match_conditions: None,
        })
        .collect()
}

/// The validating webhooks for `entries` (in order).
pub fn validating_webhooks(
    entries: &[WebhookEntry],
    client: &Resolved,
    ca_bundle_pem: &str,
) -> Vec<ValidatingWebhook> {
    entries
        .iter()
        .map(|e| ValidatingWebhook {
            admission_review_versions: vec!["v1".into()],
            client_config: client.client_config(e.path, ca_bundle_pem),
            failure_policy: Some(e.failure_policy.as_str().into()),
            match_policy: Some("Equivalent".into()),
            name: e.name.clone(),
            namespace_selector: e.namespace_selector.clone(),
            object_selector: e.object_selector.clone(),
            rules: Some(e.rules.clone()),
            side_effects: SIDE_EFFECTS_NONE.into(),
            timeout_seconds: Some(e.timeout_seconds),
            match_conditions: None,
        })
        .collect()
}

/// Keeps both configurations as the plug-ins and the CA bundle say.
pub struct Registrar {
    client: Client,
    resolved: Resolved,
    mutating: Vec<WebhookEntry>,
    validating: Vec<WebhookEntry>,
}

impl Registrar {
    /// A registrar for these entries, reached through `resolved`.
    pub fn new(
        client: Client,
        resolved: Resolved,
        mutating: Vec<WebhookEntry>,
        validating: Vec<WebhookEntry>,
    ) -> Self {
        Self {
            client,
            resolved,
            mutating,
            validating,
        }
    }

    /// Writes the configurations with `ca_bundle_pem` unless they already say so. A configuration
    /// with no entry is left alone (not created).
    pub async fn register(&self, ca_bundle_pem: &str) -> Result<()> {
        if !self.mutating.is_empty() {
            let webhooks = mutating_webhooks(&self.mutating, &self.resolved, ca_bundle_pem);
            ensure(
                Api::<MutatingWebhookConfiguration>::all(self.client.clone()),
                MUTATING,
                &webhooks,
                |c: &mut MutatingWebhookConfiguration| c.webhooks = Some(webhooks.clone()),
            )
            .await?;
        }
        if !self.validating.is_empty() {
            let webhooks = validating_webhooks(&self.validating, &self.resolved, ca_bundle_pem);
            ensure(
                Api::<ValidatingWebhookConfiguration>::all(self.client.clone()),
                VALIDATING,
                &webhooks,
                |c: &mut ValidatingWebhookConfiguration| c.webhooks = Some(webhooks.clone()),
            )
            .await?;
        }
        Ok(())
    }
}

/// A stable hash (FNV-1a, 64 bits) of what is written.
fn spec_hash(webhooks: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(webhooks).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

async fn ensure<K>(
    api: Api<K>,
    name: &str,
    webhooks: &impl Serialize,
    set: impl Fn(&mut K),
) -> Result<()>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Default
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let hash = spec_hash(webhooks);
    let err = |action: &str, source| Error::Webhook {
        action: format!("{action} the {} {name}", K::kind(&())),
        source,
    };
    for _ in 0..8 {
        match api.get_opt(name).await.map_err(|e| err("read", e))? {
            None => {
                let mut object = K::default();
                *object.meta_mut() = ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/name".to_owned(),
                        "sroll".to_owned(),
                    )])),
                    annotations: Some(BTreeMap::from([(SPEC_HASH.to_owned(), hash.clone())])),
                    ..ObjectMeta::default()
                };
                set(&mut object);
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => {
                        tracing::info!(configuration = name, "created the webhook configuration");
                        return Ok(());
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => return Err(err("create", e)),
                }
            }
            Some(mut object) => {
                let current = object
                    .meta()
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(SPEC_HASH));
                if current == Some(&hash) {
                    return Ok(());
                }
                object
                    .meta_mut()
                    .annotations
                    .get_or_insert_default()
                    .insert(SPEC_HASH.to_owned(), hash.clone());
                set(&mut object);
                match api.replace(name, &PostParams::default(), &object).await {
                    Ok(_) => {
                        tracing::info!(configuration = name, "updated the webhook configuration");
                        return Ok(());
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => return Err(err("update", e)),
                }
            }
        }
    }
    Err(Error::Config(format!(
        "the webhook configuration {name} kept changing under this replica"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::FailurePolicy;

    #[test]
    fn an_entry_becomes_a_webhook_with_its_path_in_the_url_and_the_bundle() {
        let mut entry = WebhookEntry::pod_create("pinning.pods.sroll.io", "/mutate/pods/pinning");
        entry.failure_policy = FailurePolicy::Fail;
        let resolved = ClientConfigMode::Url { host: None }
            .resolve("127.0.0.1:9443".parse().expect("an address"));
        let hooks = mutating_webhooks(&[entry], &resolved, "PEM");
        let hook = &hooks[0];
        assert_eq!(
            hook.client_config.url.as_deref(),
            Some("https://127.0.0.1:9443/mutate/pods/pinning")
        );
        assert_eq!(
            hook.client_config.ca_bundle,
            Some(ByteString(b"PEM".to_vec()))
        );
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(hook.side_effects, "None");
        assert_eq!(hook.reinvocation_policy.as_deref(), Some("Never"));
    }

    #[test]
    fn in_the_cluster_the_service_is_named_and_its_dns_name_is_served() {
        let resolved = ClientConfigMode::service("sroll-system")
            .resolve("0.0.0.0:9443".parse().expect("an address"));
        let config = resolved.client_config("/p", "PEM");
        let service = config.service.expect("a service reference");
        assert_eq!(
            (
                service.name.as_str(),
                service.namespace.as_str(),
                service.port,
                service.path.as_deref()
            ),
            ("sroll-webhook", "sroll-system", Some(443), Some("/p"))
        );
        assert!(
            resolved
                .serving_names("sroll-system")
                .contains(&"sroll-webhook.sroll-system.svc".to_owned())
        );
    }
}
