//! The webhook's certificates, self-managed: a CA and a serving certificate signed by it, kept in
//! one Secret (`sroll-webhook-certs` in the operator's namespace) that every replica reads.
//!
//! - **Create or adopt**: the first replica to find no Secret creates one; a replica that loses the
//!   create race (409) reads the winner's. Every later write is an update with the read
//!   `resourceVersion` as precondition, so concurrent replicas converge on one CA: the loser of a
//!   conflict re-reads and finds the work done.
//! - **Serving certificate renewal** (`serving_renew_before` before its expiry, or when it does not
//!   name every address the server is reached at): a new certificate signed by the same CA; the CA
//!   bundle is unchanged, so no admission fails.
//! - **CA rotation** (`ca_renew_before` before the CA's expiry), in two phases: (1) the Secret gets
//!   the new CA and keeps the old one as `ca-previous.crt`, while the serving certificate stays the
//!   one signed by the old CA; the configurations' `caBundle` becomes old + new; (2) only once the
//!   configurations carry the new CA is a serving certificate signed by it issued. At every moment
//!   the certificate served is trusted by the bundle kube-apiserver holds. The previous CA leaves
//!   the bundle once it has expired.
//!
//! The decision of what to renew is the pure [`decide`], table-tested below.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::{Error, Result};

/// The Secret's name.
pub const SECRET_NAME: &str = "sroll-webhook-certs";
/// The current CA's certificate (PEM).
pub const CA_CERT: &str = "ca.crt";
/// The current CA's private key (PEM, PKCS#8).
pub const CA_KEY: &str = "ca.key";
/// The CA being retired during a rotation (PEM), kept in the bundle until it expires.
pub const CA_PREVIOUS: &str = "ca-previous.crt";
/// The serving certificate (PEM).
pub const TLS_CERT: &str = "tls.crt";
/// The serving certificate's private key (PEM, PKCS#8).
pub const TLS_KEY: &str = "tls.key";
/// The names the serving certificate was issued for, comma-separated.
pub const TLS_NAMES: &str = "tls.names";

/// Certificate lifetimes and rotation thresholds. `*_renew_before` is the remaining validity at
/// which a certificate is replaced; a test forces a rotation with short lifetimes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSettings {
    /// The Secret holding the CA and the serving certificate.
    pub secret_name: String,
    /// How long a new CA is valid.
    pub ca_validity: Duration,
    /// The CA is rotated when less than this remains (must exceed `serving_renew_before`).
    pub ca_renew_before: Duration,
    /// How long a new serving certificate is valid (never beyond its CA).
    pub serving_validity: Duration,
    /// The serving certificate is renewed when less than this remains.
    pub serving_renew_before: Duration,
    /// How often every replica re-reads the Secret.
    pub check_interval: Duration,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Default for CertSettings {
    /// CA: 5 years, rotated 1 year before expiry; serving certificate: 1 year, renewed 60 days
    /// before; the Secret re-read every 5 minutes.
    fn default() -> Self {
        Self {
            secret_name: SECRET_NAME.into(),
            ca_validity: 5 * 365 * DAY,
            ca_renew_before: 365 * DAY,
            serving_validity: 365 * DAY,
            serving_renew_before: 60 * DAY,
            check_interval: Duration::from_secs(300),
        }
    }
}

impl CertSettings {
    /// Checks the thresholds: each below its validity, and the CA rotated before the serving
    /// certificate would need a renewal it cannot get (serving certificates never outlive their
    /// CA).
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.ca_renew_before >= self.ca_validity {
            return Err(format!(
                "webhook CA: renew-before ({:?}) must be shorter than the validity ({:?})",
                self.ca_renew_before, self.ca_validity
            ));
        }
        if self.serving_renew_before >= self.serving_validity {
            return Err(format!(
                "webhook serving certificate: renew-before ({:?}) must be shorter than the validity ({:?})",
                self.serving_renew_before, self.serving_validity
            ));
        }
        if self.ca_renew_before < self.serving_renew_before {
            return Err(format!(
                "webhook CA renew-before ({:?}) must be at least the serving certificate's ({:?})",
                self.ca_renew_before, self.serving_renew_before
            ));
        }
        Ok(())
    }
}

/// What the Secret holds, as far as renewal is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The CA's expiry.
    pub ca_not_after: SystemTime,
    /// The serving certificate's expiry.
    pub serving_not_after: SystemTime,
    /// The names the serving certificate covers.
    pub serving_names: Vec<String>,
    /// The retired CA's expiry, when one is kept.
    pub previous_ca_not_after: Option<SystemTime>,
}

/// What to do with the Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Nothing to do.
    Keep,
    /// Phase 1 of a CA rotation: a new CA, the old one kept as previous.
    RotateCa,
    /// A new serving certificate signed by the current CA.
    NewServing,
    /// The retired CA has expired: drop it from the bundle.
    DropPreviousCa,
}

/// The renewal due at `now` for a Secret holding `observed`, serving `names`.
pub fn decide(
    now: SystemTime,
    observed: &Observed,
    names: &[String],
    settings: &CertSettings,
) -> Renewal {
    let remaining = |t: SystemTime| t.duration_since(now).unwrap_or(Duration::ZERO);
    if remaining(observed.ca_not_after) < settings.ca_renew_before {
        return Renewal::RotateCa;
    }
    if remaining(observed.serving_not_after) < settings.serving_renew_before
        || names.iter().any(|n| !observed.serving_names.contains(n))
    {
        return Renewal::NewServing;
    }
    if observed
        .previous_ca_not_after
        .is_some_and(|t| remaining(t) == Duration::ZERO)
    {
        return Renewal::DropPreviousCa;
    }
    Renewal::Keep
}

/// The certificates a replica serves with, and the bundle the configurations carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// Current CA, then the previous one during a rotation (PEM).
    pub ca_bundle_pem: String,
    /// The current CA alone (PEM).
    pub ca_pem: String,
    /// The serving certificate (PEM).
    pub cert_pem: String,
    key_pem: String,
}

impl Material {
    /// Whether the serving certificate was signed by the current CA (false between the two phases
    /// of a CA rotation).
    pub fn serving_issued_by_current_ca(&self) -> bool {
        let (Ok(ca), Ok(cert)) = (der_of(&self.ca_pem), der_of(&self.cert_pem)) else {
            return false;
        };
        let (Ok((_, ca)), Ok((_, cert))) = (
            x509_parser::parse_x509_certificate(&ca),
            x509_parser::parse_x509_certificate(&cert),
        ) else {
            return false;
        };
        cert.issuer().as_raw() == ca.subject().as_raw()
    }

    /// The rustls server configuration serving this certificate.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            Error::Config(format!("webhook certificate Secret: {what}: {e}"))
        };
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| bad(TLS_CERT, &e))?;
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| bad(TLS_KEY, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", &e))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| bad(TLS_CERT, &e))?;
        Ok(Arc::new(config))
    }
}

fn der_of(pem: &str) -> std::result::Result<Vec<u8>, String> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|d| d.to_vec())
        .map_err(|e| e.to_string())
}

fn not_after(pem: &str) -> std::result::Result<SystemTime, String> {
    let der = der_of(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
    let secs = cert.validity().not_after.timestamp();
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// The Secret's contents, decoded.
#[derive(Clone, Debug)]
struct Contents {
    ca_cert: String,
    ca_key: String,
    ca_previous: Option<String>,
    tls_cert: String,
    tls_key: String,
    tls_names: Vec<String>,
}

impl Contents {
    fn from_secret(secret: &Secret) -> std::result::Result<Self, String> {
        let data = secret.data.as_ref();
        let get = |key: &str| -> std::result::Result<String, String> {
            let bytes = data
                .and_then(|d| d.get(key))
                .ok_or_else(|| format!("no {key:?}"))?;
            String::from_utf8(bytes.0.clone()).map_err(|_| format!("{key:?} is not UTF-8 PEM"))
        };
        Ok(Self {
            ca_cert: get(CA_CERT)?,
            ca_key: get(CA_KEY)?,
            ca_previous: get(CA_PREVIOUS).ok().filter(|s| !s.is_empty()),
            tls_cert: get(TLS_CERT)?,
            tls_key: get(TLS_KEY)?,
            tls_names: get(TLS_NAMES)
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    fn observed(&self) -> std::result::Result<Observed, String> {
        Ok(Observed {
            ca_not_after: not_after(&self.ca_cert).map_err(|e| format!("{CA_CERT}: {e}"))?,
            serving_not_after: not_after(&self.tls_cert).map_err(|e| format!("{TLS_CERT}: {e}"))?,
            serving_names: self.tls_names.clone(),
            previous_ca_not_after: match &self.ca_previous {
                Some(p) => Some(not_after(p).map_err(|e| format!("{CA_PREVIOUS}: {e}"))?),
                None => None,
            },
        })
    }

    fn data(&self) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            data.insert(k.to_owned(), ByteString(v.as_bytes().to_vec()));
        };
        put(CA_CERT, &self.ca_cert);
        put(CA_KEY, &self.ca_key);
        if let Some(previous) = &self.ca_previous {
            put(CA_PREVIOUS, previous);
        }
        put(TLS_CERT, &self.tls_cert);
        put(TLS_KEY, &self.tls_key);
        put(TLS_NAMES, &self.tls_names.join(","));
        data
    }

    fn material(&self) -> Material {
        let mut bundle = self.ca_cert.clone();
        if let Some(previous) = &self.ca_previous {
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(previous);
        }
        Material {
            ca_bundle_pem: bundle,
            ca_pem: self.ca_cert.clone(),
            cert_pem: self.tls_cert.clone(),
            key_pem: self.tls_key.clone(),
        }
    }
}

fn kube_err(action: &str, source: kube::Error) -> Error {
    Error::Webhook {
        action: action.to_owned(),
        source,
    }
}

fn cert_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("generating the webhook {what}: {e}"))
}

fn window(now: SystemTime, validity: Duration) -> (time::OffsetDateTime, time::OffsetDateTime) {
    // Five minutes of clock skew tolerated at the start.
    let start = now.checked_sub(Duration::from_secs(300)).unwrap_or(now);
    (
        time::OffsetDateTime::from(start),
        time::OffsetDateTime::from(now + validity),
    )
}

/// A new self-signed CA: (certificate PEM, key PEM). Its common name carries the issue time and a
/// random tag, so two CAs never share a subject (the serving certificate's issuer tells them apart).
fn new_ca(now: SystemTime, validity: Duration) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|e| cert_err("CA key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| cert_err("CA", e))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issued = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("sroll-webhook-ca-{issued}-{:08x}", fastrand::u32(..)),
    );
    (params.not_before, params.not_after) = window(now, validity);
    let cert = params.self_signed(&key).map_err(|e| cert_err("CA", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A serving certificate for `names` signed by the CA, never valid beyond it.
fn new_serving(
    ca_cert: &str,
    ca_key: &str,
    names: &[String],
    now: SystemTime,
    validity: Duration,
) -> Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key).map_err(|e| cert_err("CA key", e))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key).map_err(|e| cert_err("CA", e))?;
    let key = KeyPair::generate().map_err(|e| cert_err("serving key", e))?;
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|e| cert_err("serving certificate", e))?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.clone());
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let ca_end = not_after(ca_cert).map_err(|e| cert_err("CA", e))?;
    let end = (now + validity).min(ca_end);
    (params.not_before, params.not_after) =
        window(now, end.duration_since(now).unwrap_or_default());
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| cert_err("serving certificate", e))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn fresh(names: &[String], now: SystemTime, settings: &CertSettings) -> Result<Contents> {
    let (ca_cert, ca_key) = new_ca(now, settings.ca_validity)?;
    let (tls_cert, tls_key) =
        new_serving(&ca_cert, &ca_key, names, now, settings.serving_validity)?;
    Ok(Contents {
        ca_cert,
        ca_key,
        ca_previous: None,
        tls_cert,
        tls_key,
        tls_names: names.to_vec(),
    })
}

/// Reads and writes the certificate Secret.
#[derive(Clone)]
pub struct Store {
    api: Api<Secret>,
    settings: CertSettings,
}

/// How many read-decide-write rounds a replica tries before reporting the conflict.
const ATTEMPTS: usize = 8;

impl Store {
    /// The Secret `settings.secret_name` in `namespace`.
    pub fn new(client: Client, namespace: &str, settings: CertSettings) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            settings,
        }
    }

    /// Creates, adopts or renews the Secret as [`decide`] says (phase 1 of a CA rotation at most),
    /// and returns what it then holds.
    pub async fn ensure(&self, names: &[String]) -> Result<Material> {
        self.settings.check().map_err(Error::Config)?;
        for _ in 0..ATTEMPTS {
            let now = SystemTime::now();
            let Some(secret) = self
                .api
                .get_opt(&self.settings.secret_name)
                .await
                .map_err(|e| kube_err("read the certificate Secret", e))?
            else {
                let contents = fresh(names, now, &self.settings)?;
                match self
                    .api
                    .create(&PostParams::default(), &self.secret(&contents, None))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(secret = %self.settings.secret_name, "created the webhook CA and serving certificate");
                        return Ok(contents.material());
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => return Err(kube_err("create the certificate Secret", e)),
                }
            };
            let next = match Contents::from_secret(&secret).and_then(|c| {
                let observed = c.observed()?;
                Ok((c, observed))
            }) {
                Err(problem) => {
                    tracing::warn!(secret = %self.settings.secret_name, %problem,
                        "the webhook certificate Secret is unusable; replacing its contents");
                    fresh(names, now, &self.settings)?
                }
                Ok((contents, observed)) => match decide(now, &observed, names, &self.settings) {
                    Renewal::Keep => return Ok(contents.material()),
                    Renewal::RotateCa => {
                        let (ca_cert, ca_key) = new_ca(now, self.settings.ca_validity)?;
                        tracing::info!("rotating the webhook CA (phase 1: new CA in the bundle)");
                        Contents {
                            ca_previous: Some(contents.ca_cert.clone()),
                            ca_cert,
                            ca_key,
                            ..contents
                        }
                    }
                    Renewal::NewServing => {
                        tracing::info!("renewing the webhook serving certificate");
                        self.reissued(contents, names, now)?
                    }
                    Renewal::DropPreviousCa => Contents {
                        ca_previous: None,
                        ..contents
                    },
                },
            };
            match self.write(&secret, &next).await {
                Ok(()) => return Ok(next.material()),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(kube_err("update the certificate Secret", e)),
            }
        }
        Err(Error::Config(format!(
            "the webhook certificate Secret {:?} kept changing under this replica",
            self.settings.secret_name
        )))
    }

    /// Phase 2 of a CA rotation: a serving certificate signed by the current CA (unless another
    /// replica already issued one).
    pub async fn reissue_serving(&self, names: &[String]) -> Result<Material> {
        for _ in 0..ATTEMPTS {
            let secret = self
                .api
                .get(&self.settings.secret_name)
                .await
                .map_err(|e| kube_err("read the certificate Secret", e))?;
            let contents = Contents::from_secret(&secret).map_err(Error::Config)?;
            if contents.material().serving_issued_by_current_ca() {
                return Ok(contents.material());
            }
            tracing::info!(
                "rotating the webhook CA (phase 2: serving certificate under the new CA)"
            );
            let next = self.reissued(contents, names, SystemTime::now())?;
            match self.write(&secret, &next).await {
                Ok(()) => return Ok(next.material()),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(kube_err("update the certificate Secret", e)),
            }
        }
        Err(Error::Config(format!(
            "the webhook certificate Secret {:?} kept changing under this replica",
            self.settings.secret_name
        )))
    }

    fn reissued(&self, contents: Contents, names: &[String], now: SystemTime) -> Result<Contents> {
        let (tls_cert, tls_key) = new_serving(
            &contents.ca_cert,
            &contents.ca_key,
            names,
            now,
            self.settings.serving_validity,
        )?;
        Ok(Contents {
            tls_cert,
            tls_key,
            tls_names: names.to_vec(),
            ..contents
        })
    }

    fn secret(&self, contents: &Contents, resource_version: Option<String>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.settings.secret_name.clone()),
                resource_version,
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/name".to_owned(),
                    "sroll".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(contents.data()),
            ..Secret::default()
        }
    }

    /// Replaces the Secret's data, on the precondition that it is still the version read.
    async fn write(&self, read: &Secret, next: &Contents) -> kube::Result<()> {
        let mut secret = read.clone();
        secret.data = Some(next.data());
        secret.string_data = None;
        self.api
            .replace(&self.settings.secret_name, &PostParams::default(), &secret)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn settings() -> CertSettings {
        CertSettings {
            secret_name: SECRET_NAME.into(),
            ca_validity: Duration::from_secs(1000),
            ca_renew_before: Duration::from_secs(300),
            serving_validity: Duration::from_secs(200),
            serving_renew_before: Duration::from_secs(50),
            check_interval: Duration::from_secs(1),
        }
    }

    fn names() -> Vec<String> {
        vec!["sroll-webhook.sroll-system.svc".into(), "127.0.0.1".into()]
    }

    #[test]
    fn renewal_follows_the_thresholds() {
        let observed = |ca: u64, serving: u64, previous: Option<u64>| Observed {
            ca_not_after: at(ca),
            serving_not_after: at(serving),
            serving_names: names(),
            previous_ca_not_after: previous.map(at),
        };
        let cases = [
            ("fresh", observed(1000, 200, None), Renewal::Keep),
            (
                "serving certificate close to expiry",
                observed(1000, 49, None),
                Renewal::NewServing,
            ),
            (
                "serving certificate expired",
                observed(1000, 0, None),
                Renewal::NewServing,
            ),
            (
                "CA close to expiry wins",
                observed(299, 10, None),
                Renewal::RotateCa,
            ),
            (
                "expired previous CA dropped",
                observed(1000, 200, Some(0)),
                Renewal::DropPreviousCa,
            ),
            (
                "live previous CA kept",
                observed(1000, 200, Some(10)),
                Renewal::Keep,
            ),
        ];
        for (case, observed, want) in cases {
            assert_eq!(
                decide(at(0), &observed, &names(), &settings()),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn a_certificate_missing_a_name_is_reissued() {
        let observed = Observed {
            ca_not_after: at(1000),
            serving_not_after: at(200),
            serving_names: vec!["127.0.0.1".into()],
            previous_ca_not_after: None,
        };
        assert_eq!(
            decide(at(0), &observed, &names(), &settings()),
            Renewal::NewServing
        );
    }

    #[test]
    fn thresholds_that_would_loop_are_refused() {
        let mut s = settings();
        assert_eq!(s.check(), Ok(()));
        s.ca_renew_before = s.ca_validity;
        assert!(s.check().unwrap_err().contains("CA: renew-before"));
        let mut s = settings();
        s.ca_renew_before = Duration::from_secs(10);
        assert!(s.check().unwrap_err().contains("at least the serving"));
    }

    #[test]
    fn a_serving_certificate_is_signed_by_its_ca_and_ends_with_it() {
        let now = SystemTime::now();
        let contents = fresh(&names(), now, &settings()).expect("certificates");
        let material = contents.material();
        assert!(material.serving_issued_by_current_ca());
        material.server_config().expect("rustls accepts the pair");
        assert!(
            not_after(&contents.tls_cert).expect("parsed")
                <= not_after(&contents.ca_cert).expect("parsed")
        );
        // A second CA: the old serving certificate is not its.
        let (ca_cert, ca_key) = new_ca(now, Duration::from_secs(1000)).expect("a CA");
        let rotated = Contents {
            ca_previous: Some(contents.ca_cert.clone()),
            ca_cert,
            ca_key,
            ..contents
        };
        let material = rotated.material();
        assert!(!material.serving_issued_by_current_ca());
        assert_eq!(
            material.ca_bundle_pem.matches("BEGIN CERTIFICATE").count(),
            2
        );
    }
}
