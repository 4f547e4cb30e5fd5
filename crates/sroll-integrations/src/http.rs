//! The HTTP client every integration uses: rustls (ring), timeouts on connect and on the whole
//! request, no redirects (an allowed host must not bounce us elsewhere), no proxy from the
//! environment, and a resolver that drops link-local and metadata addresses
//! ([`crate::allow::is_forbidden_address`]) so an allowed name cannot point into the node's metadata
//! service (DNS answers are checked at connect time, which also defeats DNS rebinding).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::{Error, Result, allow::is_forbidden_address};

/// Timeouts of one HTTP client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Time allowed to open the TCP (and TLS) connection.
    pub connect: Duration,
    /// Time allowed for the whole request, response body included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(15),
        }
    }
}

/// Installs ring as rustls' process-wide crypto provider unless one is installed already (kube's
/// client uses ring too); reqwest is built without a provider of its own.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only if another thread installed one in between, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Builds a client with `timeouts`. With `guard_addresses`, host names resolving only to
/// link-local or metadata addresses fail to connect (used for URLs from users' resources).
pub fn client(timeouts: Timeouts, guard_addresses: bool) -> Result<reqwest::Client> {
    ensure_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("sroll/", env!("CARGO_PKG_VERSION")));
    if guard_addresses {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    builder.build().map_err(Error::HttpClient)
}

/// System resolution (`getaddrinfo` through tokio) minus forbidden addresses.
#[derive(Debug)]
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| !is_forbidden_address(a.ip()))
                .collect();
            if allowed.is_empty() && !resolved.is_empty() {
                return Err(format!(
                    "refused to call {host}: it resolves only to link-local or metadata addresses"
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Parses a `Retry-After` header given in seconds (Slack and most APIs); HTTP dates are ignored.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// Exponential back-off with jitter: `base × 2^(attempt-1)` capped at `cap`, then a random value in
/// its upper half (so retries of many clients spread out but never collapse to zero).
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let full = exp.min(cap);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Parses a base URL taken from configuration (`what` names it in the error: "the Slack API URL"),
/// which must be http or https.
pub(crate) fn http_base_url(url: &str, text: &str, what: &str) -> Result<url::Url> {
    let base = url::Url::parse(text).map_err(|e| Error::InvalidUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: format!("{what} must be http or https"),
        });
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_and_stays_under_the_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(10);
        for attempt in 1..40 {
            let d = backoff(attempt, base, cap);
            let full = base.saturating_mul(1 << (attempt - 1).min(20)).min(cap);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "soon".parse().expect("header"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[tokio::test]
    async fn names_resolving_only_to_forbidden_addresses_are_not_connected() {
        // `localhost` resolves to loopback, which is allowed; the guard must pass it through.
        let addrs: Vec<SocketAddr> = GuardedResolver
            .resolve("localhost".parse().expect("name"))
            .await
            .expect("localhost resolves")
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
