//! Starting a simulated cluster: the HTTP server on 127.0.0.1 (plain or TLS
//! with a generated CA), the garbage collector, a ready `kube::Client`, a
//! kubeconfig, and graceful shutdown.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let h = kubesim::cluster::Cluster::start(kubesim::cluster::ClusterConfig::default()).await?;
//! let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::default_namespaced(h.client());
//! let _ = pods.list(&Default::default()).await?;
//! h.shutdown().await;
//! # Ok(()) }
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::Router;
use base64::Engine;
use serde_json::json;
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    api::Api,
    auth::{Auth, AuthError},
    controllers::runtime::{SimConfig, Simulation},
    faults::{self, Faults},
    server::{self, Metrics, ServerOptions, ServerState},
};

/// Errors of starting a cluster.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// Binding the listener failed.
    #[error("failed to bind 127.0.0.1:{port}: {source}")]
    Bind {
        /// Requested port.
        port: u16,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Generating the TLS material failed.
    #[error("failed to generate TLS certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// Building the TLS server config failed.
    #[error("failed to configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Building the kube client failed.
    #[error("failed to build the kube client: {0}")]
    Client(String),
    /// Writing the kubeconfig failed.
    #[error("failed to write kubeconfig {path}: {source}")]
    WriteKubeconfig {
        /// Target path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Rendering the kubeconfig failed.
    #[error("failed to render kubeconfig: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// Setting up authentication and authorization failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Cluster settings.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Port on 127.0.0.1 (0 = a free port).
    pub port: u16,
    /// Serve HTTPS with a generated CA.
    pub tls: bool,
    /// Number of fake nodes (used by the kubelet simulation).
    pub nodes: usize,
    /// Simulated-time speed factor (used by the kubelet simulation).
    pub speed: f64,
    /// The fake kubelets' timing, node pools included (used by the kubelet
    /// simulation; see [`crate::kubelet::KubeletConfig`]).
    pub kubelet: crate::kubelet::KubeletConfig,
    /// Write the kubeconfig to this path.
    pub write_kubeconfig: Option<PathBuf>,
    /// Watch history window (events).
    pub history_limit: usize,
    /// Interval of idle BOOKMARK events.
    pub bookmark_interval: Duration,
    /// Fault injection state (defaults to none).
    pub faults: Option<Faults>,
    /// Run the controllers, scheduler and kubelets
    /// ([`crate::controllers::runtime::Simulation`]). `sroll sim` and the
    /// scenario tests turn this on; the bare API-server tests leave it off.
    pub simulate: bool,
    /// Authenticate bearer tokens and authorize with RBAC ([`crate::auth`]); the kubeconfig
    /// and [`Handle::client`] then carry an administrator token (`system:masters`). Pair it
    /// with `tls`: kubectl (clientcmd) only sends credentials over HTTPS.
    pub auth: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            port: 0,
            tls: false,
            nodes: 3,
            speed: 1.0,
            kubelet: crate::kubelet::KubeletConfig::default(),
            write_kubeconfig: None,
            history_limit: 50_000,
            bookmark_interval: Duration::from_secs(10),
            faults: None,
            simulate: false,
            auth: false,
        }
    }
}

/// A running cluster.
pub struct Handle {
    base_url: String,
    client: kube::Client,
    kubeconfig: String,
    api: Api,
    router: Router,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    ca_pem: Option<String>,
    sim: Option<Simulation>,
    faults: Faults,
    auth: Option<Auth>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Entry point.
#[derive(Debug)]
pub struct Cluster;

struct Tls {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn generate_tls() -> Result<Tls, ClusterError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kubesim-ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate()?;
    let mut sp = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    sp.distinguished_name.push(DnType::CommonName, "kubesim");
    let server_cert = sp.signed_by(&server_key, &issuer)?;
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![server_cert.der().clone()], key_der)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca_cert.pem(),
        server: Arc::new(cfg),
    })
}

/// Renders a kubeconfig for `server` (with `ca_pem` for HTTPS).
pub fn kubeconfig_yaml(server: &str, ca_pem: Option<&str>) -> Result<String, serde_yaml_ng::Error> {
    kubeconfig_yaml_with_token(server, ca_pem, "kubesim")
}

/// Renders a kubeconfig for `server` (with `ca_pem` for HTTPS) whose user sends `token`.
pub fn kubeconfig_yaml_with_token(
    server: &str,
    ca_pem: Option<&str>,
    token: &str,
) -> Result<String, serde_yaml_ng::Error> {
    let mut cluster = json!({"server": server});
    if let Some(ca) = ca_pem {
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca.as_bytes()));
    }
    let cfg = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": cluster}],
        "users": [{"name": "kubesim", "user": {"token": token}}],
        "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"}}],
        "current-context": "kubesim",
        "preferences": {},
    });
    serde_yaml_ng::to_string(&cfg)
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default()
}

impl Cluster {
    /// Starts a cluster: binds the listener, spawns the server and the
    /// garbage collector, builds a client.
    pub async fn start(config: ClusterConfig) -> Result<Handle, ClusterError> {
        let api = Api::new(config.history_limit);
        Self::start_with_api(config, api).await
    }

    /// Starts a cluster serving an existing [`Api`].
    pub async fn start_with_api(config: ClusterConfig, api: Api) -> Result<Handle, ClusterError> {
        let shutdown = CancellationToken::new();
        // Controllers, scheduler, kubelets and fault reactor (controllers::runtime).
        let faults = config.faults.clone().unwrap_or_default();
        let sim = if config.simulate {
            let cfg = SimConfig {
                nodes: config.nodes,
                speed: config.speed,
                kubelet: config.kubelet.clone(),
                ..SimConfig::default()
            };
            Some(
                Simulation::start_with_faults(api.clone(), cfg, faults.clone()).map_err(|e| {
                    ClusterError::Client(format!("failed to start the simulation: {}", e.message))
                })?,
            )
        } else {
            None
        };
        let state = ServerState {
            api: api.clone(),
            metrics: Arc::new(Metrics::new()),
            faults: Some(faults.clone()),
            options: ServerOptions {
                bookmark_interval: config.bookmark_interval,
                ..ServerOptions::default()
            },
            shutdown: shutdown.clone(),
            openapi: server::OpenApiCache::default(),
        };
        let clock = sim
            .as_ref()
            .map_or_else(|| crate::kubelet::Clock::new(config.speed), |s| s.clock());
        let extra = faults::http::admin_router(faults.clone())
            .merge(crate::app_metrics::router(api.clone(), clock));
        let router = server::router(state, Some(extra));
        let auth = if config.auth {
            Some(Auth::start(&api)?)
        } else {
            None
        };
        let router = match &auth {
            Some(a) => a.layer(router),
            None => router,
        };
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", config.port)).map_err(|source| {
                ClusterError::Bind {
                    port: config.port,
                    source,
                }
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ClusterError::Bind {
                port: config.port,
                source,
            })?;
        let addr: SocketAddr = listener.local_addr().map_err(|source| ClusterError::Bind {
            port: config.port,
            source,
        })?;
        let mut tasks = vec![];
        let (base_url, ca_pem) = if config.tls {
            let tls = generate_tls()?;
            let handle = axum_server::Handle::new();
            let h2 = handle.clone();
            let sd = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                sd.cancelled().await;
                h2.graceful_shutdown(Some(Duration::from_secs(5)));
            }));
            let rcfg = axum_server::tls_rustls::RustlsConfig::from_config(tls.server.clone());
            let app = router.clone();
            let srv = axum_server::from_tcp_rustls(listener, rcfg);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = srv.handle(handle).serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "kubesim TLS server failed");
                }
            }));
            (
                format!("https://127.0.0.1:{}", addr.port()),
                Some(tls.ca_pem),
            )
        } else {
            let l = tokio::net::TcpListener::from_std(listener).map_err(|source| {
                ClusterError::Bind {
                    port: config.port,
                    source,
                }
            })?;
            let app = router.clone();
            let sd = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app)
                    .with_graceful_shutdown(async move { sd.cancelled().await })
                    .await
                {
                    tracing::error!(error = %e, "kubesim server failed");
                }
            }));
            (format!("http://127.0.0.1:{}", addr.port()), None)
        };
        tasks.push(tokio::spawn(api.clone().run_gc(shutdown.clone())));
        let token = auth.as_ref().map(|a| a.admin_token().to_owned());
        let kubeconfig = kubeconfig_yaml_with_token(
            &base_url,
            ca_pem.as_deref(),
            token.as_deref().unwrap_or("kubesim"),
        )?;
        if let Some(p) = &config.write_kubeconfig {
            write_file(p, &kubeconfig)?;
        }
        let client = client_for(&base_url, ca_pem.as_deref(), token.as_deref())?;
        Ok(Handle {
            base_url,
            client,
            kubeconfig,
            api,
            router,
            shutdown,
            tasks,
            ca_pem,
            sim,
            faults,
            auth,
        })
    }
}

/// A client of `base_url` (trusting `ca_pem`), sending `token` when given.
fn client_for(
    base_url: &str,
    ca_pem: Option<&str>,
    token: Option<&str>,
) -> Result<kube::Client, ClusterError> {
    let mut kcfg = kube::Config::new(
        base_url
            .parse()
            .map_err(|e| ClusterError::Client(format!("bad url {base_url}: {e}")))?,
    );
    kcfg.default_namespace = "default".into();
    kcfg.read_timeout = None;
    if let Some(ca) = ca_pem {
        kcfg.root_cert = Some(vec![pem_to_der(ca)]);
    }
    if let Some(t) = token {
        kcfg.auth_info.token = Some(t.to_owned().into());
    }
    kube::Client::try_from(kcfg).map_err(|e| ClusterError::Client(e.to_string()))
}

fn write_file(p: &Path, s: &str) -> Result<(), ClusterError> {
    std::fs::write(p, s).map_err(|source| ClusterError::WriteKubeconfig {
        path: p.to_path_buf(),
        source,
    })
}

impl Handle {
    /// Base URL (`http://127.0.0.1:PORT` or `https://…`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A ready client over HTTP(S).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A client that calls the router in-process (no sockets); with auth on it acts as the
    /// administrator.
    pub fn in_process_client(&self) -> kube::Client {
        match &self.auth {
            Some(a) => {
                let value =
                    axum::http::HeaderValue::from_str(&format!("Bearer {}", a.admin_token())).ok();
                let router = self.router.clone().layer(axum::middleware::map_request(
                    move |mut req: axum::extract::Request| {
                        let value = value.clone();
                        async move {
                            if let Some(v) = value {
                                req.headers_mut()
                                    .insert(axum::http::header::AUTHORIZATION, v);
                            }
                            req
                        }
                    },
                ));
                kube::Client::new(router, "default")
            }
            None => kube::Client::new(self.router.clone(), "default"),
        }
    }

    /// A client over HTTP(S) that authenticates with `token` only (e.g. a ServiceAccount's).
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client, ClusterError> {
        client_for(&self.base_url, self.ca_pem.as_deref(), Some(token))
    }

    /// A kubeconfig like [`Handle::kubeconfig`] whose user sends `token`.
    pub fn kubeconfig_with_token(&self, token: &str) -> Result<String, ClusterError> {
        Ok(kubeconfig_yaml_with_token(
            &self.base_url,
            self.ca_pem.as_deref(),
            token,
        )?)
    }

    /// Authentication and authorization, when [`ClusterConfig::auth`] is on.
    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    /// The router as a `tower::Service`.
    pub fn service(&self) -> Router {
        self.router.clone()
    }

    /// The kubeconfig YAML.
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// Writes the kubeconfig to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ClusterError> {
        write_file(path, &self.kubeconfig)
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The in-process API (controllers, kubelet, tests).
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// A token cancelled at shutdown (for tasks started next to the cluster).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The run-time switchable faults (also under `/sim/faults`).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The running controllers, scheduler and kubelets (when `simulate` is on).
    pub fn simulation(&self) -> Option<&Simulation> {
        self.sim.as_ref()
    }

    /// Adds a task to be awaited at shutdown.
    pub fn add_task(&mut self, t: JoinHandle<()>) {
        self.tasks.push(t);
    }

    /// Stops the server (ending open watches) and background tasks.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}
