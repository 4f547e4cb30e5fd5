//! Consul's HTTP API: the catalog (`GET /v1/catalog/services?dc=`) for which services exist, and
//! the health endpoint (`GET /v1/health/service/<name>?dc=&passing`) for the instances whose checks
//! all pass. An ACL token goes in `X-Consul-Token` (<https://developer.hashicorp.com/consul/api-docs>).
//!
//! An instance's address is its `Service.Address`, or its node's `Node.Address` when the service
//! registered none (Consul's own fallback rule for DNS answers).

use std::collections::BTreeMap;

use reqwest::Url;
use serde::Deserialize;

use super::{DiscoveryHealth, ServiceHealth, ServiceState};
use crate::{
    Error, Result, SecretToken,
    http::{Timeouts, client},
};

/// What to ask Consul for one rollout (`spec.serviceDiscovery`, with its token Secret resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsulQuery {
    /// Datacenter; `None`: the agent's own.
    pub dc: Option<String>,
    /// Service names.
    pub services: Vec<String>,
    /// ACL token.
    pub token: Option<SecretToken>,
}

/// Consul HTTP client for one agent/server address.
#[derive(Clone, Debug)]
pub struct ConsulClient {
    http: reqwest::Client,
    base: Url,
}

#[derive(Deserialize)]
struct HealthEntry {
    #[serde(rename = "Node", default)]
    node: NodeInfo,
    #[serde(rename = "Service", default)]
    service: ServiceInfo,
}

#[derive(Deserialize, Default)]
struct NodeInfo {
    #[serde(rename = "Address", default)]
    address: String,
}

#[derive(Deserialize, Default)]
struct ServiceInfo {
    #[serde(rename = "Address", default)]
    address: String,
}

impl ConsulClient {
    /// A client for `addr` (`http://host:8500`; a bare `host:port` means http).
    pub fn new(addr: &str, timeouts: Timeouts) -> Result<Self> {
        let text = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        let base = crate::http::http_base_url(addr, &text, "the Consul address")?;
        Ok(Self {
            http: client(timeouts, false)?,
            base,
        })
    }

    fn url(&self, segments: &[&str], dc: Option<&str>, passing: bool) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidUrl {
                url: self.base.to_string(),
                reason: "cannot be a base URL".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        {
            let mut q = url.query_pairs_mut();
            if let Some(dc) = dc {
                q.append_pair("dc", dc);
            }
            if passing {
                q.append_key_only("passing");
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        url: Url,
        token: Option<&SecretToken>,
    ) -> Result<T> {
        let what = format!("Consul {}", url.path());
        let mut request = self.http.get(url);
        if let Some(token) = token {
            request = request.header("X-Consul-Token", token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::transport(&what, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Status {
                what,
                status: status.as_u16(),
                retry_after: None,
            });
        }
        response.json().await.map_err(|e| Error::Decode {
            what,
            message: e.to_string(),
        })
    }

    /// Reads which of `query.services` exist and which addresses pass their checks. Any failure
    /// (connect, timeout, non-2xx such as 403 for a bad token, undecodable body) is
    /// [`DiscoveryHealth::Unreachable`] with the reason.
    pub async fn health(&self, query: &ConsulQuery) -> DiscoveryHealth {
        match self.try_health(query).await {
            Ok(h) => DiscoveryHealth::Reachable(h),
            Err(e) => DiscoveryHealth::Unreachable {
                reason: e.to_string(),
            },
        }
    }

    async fn try_health(&self, query: &ConsulQuery) -> Result<ServiceHealth> {
        let dc = query.dc.as_deref();
        let token = query.token.as_ref();
        let catalog: BTreeMap<String, serde_json::Value> = self
            .get(self.url(&["v1", "catalog", "services"], dc, false)?, token)
            .await?;
        let mut health = ServiceHealth::default();
        for name in &query.services {
            let mut state = ServiceState {
                exists: catalog.contains_key(name),
                ..ServiceState::default()
            };
            if state.exists {
                let entries: Vec<HealthEntry> = self
                    .get(
                        self.url(&["v1", "health", "service", name], dc, true)?,
                        token,
                    )
                    .await?;
                state.passing_addresses = entries
                    .into_iter()
                    .map(|e| {
                        if e.service.address.is_empty() {
                            e.node.address
                        } else {
                            e.service.address
                        }
                    })
                    .filter(|a| !a.is_empty())
                    .collect();
            }
            health.services.insert(name.clone(), state);
        }
        Ok(health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_service_names_and_carry_dc_and_passing() {
        let c = ConsulClient::new("consul.example:8500", Timeouts::default()).expect("client");
        let u = c
            .url(&["v1", "health", "service", "a/b c"], Some("us-east"), true)
            .expect("url");
        assert_eq!(
            u.as_str(),
            "http://consul.example:8500/v1/health/service/a%2Fb%20c?dc=us-east&passing"
        );
        let u = c
            .url(&["v1", "catalog", "services"], None, false)
            .expect("url");
        assert_eq!(u.as_str(), "http://consul.example:8500/v1/catalog/services");
    }
}
