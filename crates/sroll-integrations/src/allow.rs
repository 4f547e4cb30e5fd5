//! The outbound allowlist (`--callback-allow`): which hosts the operator may call for URLs that come
//! from users' resources (release callbacks, webhooks).
//!
//! Entries, comma-separated or repeated:
//! - `bapi.example.com` — exactly this host, any port;
//! - `*.example.com` — any subdomain of `example.com` (at any depth), not `example.com` itself;
//! - `bapi.example.com:8443`, `*.example.com:443` — the same, on that port only (the URL's port,
//!   or the scheme's default port when the URL has none);
//! - `10.0.0.7`, `[fd00::1]:8080` — an IP literal, exactly. Only an exact IP entry lets a URL name
//!   an IP address; wildcards match DNS names only.
//!
//! An empty allowlist refuses everything. Link-local and cloud-metadata addresses are refused even
//! for allowed names unless given as exact IP entries (see [`crate::http`]).

use std::{fmt, net::IpAddr, str::FromStr};

use reqwest::Url;

use crate::{Error, Result};

/// One allowlist entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    Suffix(String),
    Ip(IpAddr),
}

impl FromStr for HostPattern {
    type Err = Error;

    fn from_str(entry: &str) -> Result<Self> {
        let bad = |reason: &str| Error::AllowlistEntry {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let text = entry.trim();
        if text.is_empty() {
            return Err(bad("empty entry"));
        }
        if text.contains("://") || text.contains('/') {
            return Err(bad(
                "expected a host pattern such as *.example.com or bapi.example.com:8443, not a URL",
            ));
        }
        // Split an optional port: `[v6]:port`, `host:port`; a bare IPv6 literal has several colons.
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (h, tail) = rest
                .split_once(']')
                .ok_or_else(|| bad("unterminated [IPv6] literal"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p),
                None if tail.is_empty() => None,
                None => return Err(bad("unexpected text after ]")),
            };
            (h, port)
        } else if text.matches(':').count() == 1 {
            let (h, p) = text.split_once(':').ok_or_else(|| bad("invalid port"))?;
            (h, Some(p))
        } else {
            (text, None)
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| bad("port must be a number from 1 to 65535"))
            })
            .transpose()?;
        if port == Some(0) {
            return Err(bad("port must be a number from 1 to 65535"));
        }
        let host = host.to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        };
        let host = if let Ok(ip) = host.parse::<IpAddr>() {
            HostMatch::Ip(ip)
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if !valid_name(suffix) || !suffix.contains('.') {
                return Err(bad(
                    "a wildcard needs a domain of at least two labels, like *.example.com",
                ));
            }
            HostMatch::Suffix(suffix.to_owned())
        } else if valid_name(host) {
            HostMatch::Exact(host.to_owned())
        } else {
            return Err(bad("not a host name, *.domain pattern or IP address"));
        };
        Ok(Self { host, port })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Exact(h) => f.write_str(h)?,
            HostMatch::Suffix(s) => write!(f, "*.{s}")?,
            HostMatch::Ip(IpAddr::V6(ip)) if self.port.is_some() => write!(f, "[{ip}]")?,
            HostMatch::Ip(ip) => write!(f, "{ip}")?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl HostPattern {
    fn matches(&self, host: &UrlHost, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, host) {
            (HostMatch::Exact(want), UrlHost::Name(name)) => want == name,
            (HostMatch::Suffix(suffix), UrlHost::Name(name)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostMatch::Ip(want), UrlHost::Ip(ip)) => want == ip,
            _ => false,
        }
    }
}

enum UrlHost {
    Name(String),
    Ip(IpAddr),
}

/// The set of hosts the operator may call (`--callback-allow`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAllowlist {
    patterns: Vec<HostPattern>,
}

impl HostAllowlist {
    /// Parses entries; each entry may itself be a comma-separated list.
    pub fn parse<I, S>(entries: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns = Vec::new();
        for entry in entries {
            for part in entry.as_ref().split(',') {
                if !part.trim().is_empty() {
                    patterns.push(part.parse()?);
                }
            }
        }
        Ok(Self { patterns })
    }

    /// The parsed patterns.
    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }

    /// Parses `url` and checks it against the allowlist: `Ok(url)` if it may be called, otherwise
    /// [`Error::InvalidUrl`] or [`Error::Refused`] with a reason a user can act on.
    pub fn check(&self, url: &str) -> Result<Url> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("only http and https URLs are called"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "credentials in the URL are not accepted; use a token Secret",
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => {
                UrlHost::Name(d.trim_end_matches('.').to_ascii_lowercase())
            }
            Some(url::Host::Ipv4(ip)) => UrlHost::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => UrlHost::Ip(IpAddr::V6(ip)),
            None => return Err(invalid("the URL has no host")),
        };
        let port = parsed.port_or_known_default().unwrap_or(443);
        let shown = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_owned(),
        };
        if self.patterns.is_empty() {
            return Err(Error::Refused {
                host: shown,
                reason: "no host is allowed: the operator's --callback-allow is empty".into(),
            });
        }
        if self.patterns.iter().any(|p| p.matches(&host, port)) {
            Ok(parsed)
        } else {
            let list: Vec<String> = self.patterns.iter().map(ToString::to_string).collect();
            Err(Error::Refused {
                host: shown,
                reason: format!(
                    "not in the operator's --callback-allow list ({}); ask the operator's administrators to allow it",
                    list.join(", ")
                ),
            })
        }
    }
}

/// Addresses never called unless named by an exact IP allowlist entry: link-local (which includes
/// the 169.254.169.254 metadata service of AWS, GCP and Azure), the unspecified address, and the
/// other clouds' metadata addresses (Alibaba `100.100.100.200`, AWS IPv6 `fd00:ec2::254`).
pub fn is_forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets() == [100, 100, 100, 200]
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_address(IpAddr::V4(v4));
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.is_unspecified()
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> HostAllowlist {
        HostAllowlist::parse(entries).expect("valid allowlist")
    }

    #[test]
    fn exact_hosts_and_wildcards_match_as_documented() {
        let allow = list(&["bapi.example.com", "*.corp.example.org"]);
        assert!(allow.check("https://bapi.example.com/cb").is_ok());
        assert!(allow.check("http://BAPI.example.com:8080/cb").is_ok());
        assert!(allow.check("https://a.corp.example.org/x").is_ok());
        assert!(allow.check("https://a.b.corp.example.org/x").is_ok());
        // The wildcard does not cover the apex, nor look-alike suffixes.
        assert!(allow.check("https://corp.example.org/x").is_err());
        assert!(allow.check("https://evilcorp.example.org/x").is_err());
        assert!(allow.check("https://bapi.example.com.evil.io/").is_err());
    }

    #[test]
    fn a_port_in_the_entry_restricts_the_port() {
        let allow = list(&["bapi.example.com:8443,*.example.net:443"]);
        assert!(allow.check("https://bapi.example.com:8443/").is_ok());
        assert!(allow.check("https://bapi.example.com/").is_err());
        assert!(allow.check("https://x.example.net/").is_ok());
        assert!(allow.check("http://x.example.net/").is_err());
    }

    #[test]
    fn ip_urls_need_an_exact_ip_entry() {
        let allow = list(&["127.0.0.1:9000", "[::1]", "*.example.com"]);
        assert!(allow.check("http://127.0.0.1:9000/cb").is_ok());
        assert!(allow.check("http://127.0.0.1:9001/cb").is_err());
        assert!(allow.check("http://[::1]:5/cb").is_ok());
        let err = allow
            .check("http://169.254.169.254/latest/meta-data")
            .expect_err("refused");
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        assert!(err.to_string().contains("169.254.169.254"), "{err}");
    }

    #[test]
    fn refusals_explain_what_to_do() {
        let err = HostAllowlist::default()
            .check("https://bapi.example.com/")
            .expect_err("refused");
        assert!(
            err.to_string().contains("--callback-allow is empty"),
            "{err}"
        );
        let err = list(&["a.example.com"])
            .check("https://b.example.com/")
            .expect_err("refused");
        assert!(err.to_string().contains("a.example.com"), "{err}");
        assert!(matches!(
            list(&["a.example.com"]).check("ftp://a.example.com/"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(
            list(&["a.example.com"]).check("https://user:pw@a.example.com/"),
            Err(Error::InvalidUrl { .. })
        ));
    }

    #[test]
    fn malformed_entries_are_rejected() {
        for bad in [
            "https://x.example.com",
            "*.com",
            "x.example.com:0",
            "x.example.com:http",
            "[::1",
            "a b",
        ] {
            assert!(
                HostPattern::from_str(bad).is_err(),
                "{bad} should be rejected"
            );
        }
        assert_eq!(list(&["[::1]:80"]).patterns()[0].to_string(), "[::1]:80");
    }

    #[test]
    fn metadata_and_link_local_addresses_are_forbidden() {
        for ip in [
            "169.254.169.254",
            "100.100.100.200",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_forbidden_address(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["10.0.0.1", "127.0.0.1", "2001:db8::1", "8.8.8.8"] {
            assert!(!is_forbidden_address(ip.parse().expect("ip")), "{ip}");
        }
    }
}
