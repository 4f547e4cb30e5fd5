//! `sroll dashboard` (and `kubectl sroll dashboard`): a live web view of the cluster's
//! StatefulsetRollouts, CloneSets and SidecarSets, served on `127.0.0.1:3100` with the caller's kubeconfig and
//! permissions.
//!
//! ```text
//! kube-rs watchers ──► reflector stores (rollouts, CloneSets, SidecarSets, pods,
//!                      ControllerRevisions, Events)
//!        │ every change bumps one counter (tokio watch)
//!        ▼
//! per browser connection: wait for a change, coalesce 200 ms, compute the page's model
//! (model.rs, pure), send it as a server-sent event (the first whole, then only what changed)
//! ```
//!
//! The front end (`assets/`, embedded with `include_str!`) is plain JS and CSS: the list of
//! rollouts, CloneSets and SidecarSets, and one object's page with every pod drawn on a canvas
//! (the same page for every kind). Writes (pause, resume, set percent, rollback, retry) exist only
//! for rollouts, only with `--allow-actions`, and call the kubectl plugin's own functions
//! ([`crate::plugin::actions`]) with the caller's client, so RBAC applies as for
//! `kubectl sroll pause`. CloneSet and SidecarSet pages are read-only (the plugin has no actions
//! for them).

pub mod model;

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use axum::{
    Json, Router,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
    routing::{get, post},
};
use clap::Args;
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1::ControllerRevision,
    core::v1::{Event, Pod},
};
use kube::{
    Api, Client, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use sroll_api::{StatefulsetRollout, clone_set::CloneSet, labels, sidecar_set::SidecarSet};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use self::model::{Cell, Detail, Kind, Point};
use crate::plugin::{ClusterArgs, Ctx, actions};

/// Flags of `sroll dashboard`.
#[derive(Args, Debug, Clone)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Where to listen. Anything but a loopback address exposes the cluster, with your
    /// credentials, to whoever reaches it.
    #[arg(long, default_value = "127.0.0.1:3100")]
    pub address: SocketAddr,
    /// Show and accept pause, resume, set percent, rollback and retry (as your kubeconfig's user).
    #[arg(long)]
    pub allow_actions: bool,
    /// Watch one namespace only (for credentials that may not list cluster-wide); default: all.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// How often a page is sent at most, per connection: bursts of changes (a 1,000-pod set's pods
/// all moving) coalesce into one message.
pub const COALESCE: Duration = Duration::from_millis(200);
/// Time-dependent states (a pod unready long enough is broken) are re-evaluated this often even
/// without a change.
const REEVALUATE: Duration = Duration::from_secs(5);
/// Points of progress history kept per rollout.
const HISTORY: usize = 2000;
/// The header a write must carry: a browser sends it cross-site only after a CORS preflight,
/// which this server never grants, so a page of another site cannot trigger an action.
pub const ACTION_HEADER: &str = "x-sroll-dashboard";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// What the server needs: the caller's client and the mode.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen (port 0: any free port).
    pub address: SocketAddr,
    /// Whether writes are allowed.
    pub allow_actions: bool,
    /// Watch this namespace only (`None`: every namespace).
    pub namespace: Option<String>,
}

struct Shared {
    client: Client,
    allow_actions: bool,
    rollouts: Store<StatefulsetRollout>,
    clone_sets: Store<CloneSet>,
    sidecar_sets: Store<SidecarSet>,
    /// Per optional kind's watcher ([`OPTIONAL`], by [`Kind::api`]): set when the API server does not serve the
    /// kind (its CRD is not installed) or the credentials may not list it. The list then shows
    /// the other kinds, without an error banner and without waiting for that cache.
    absent: HashMap<&'static str, watch::Sender<bool>>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    events: Store<Event>,
    changed: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
    history: Mutex<HashMap<(Kind, String, String), Vec<Point>>>,
    /// The last error of each watcher (absent once it works again).
    api_errors: Mutex<HashMap<&'static str, String>>,
    /// The watchers' first list, awaited by any number of page loads at once (a store's own
    /// readiness wakes only one waiter: `sroll_operator::cache::Synced`).
    synced: sroll_operator::cache::Synced,
}

type AppState = Arc<Shared>;

impl Shared {
    fn bump(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Waits (10 s at most) until every watcher has listed once, so a first page is not drawn from
    /// half-filled caches (every pod "missing").
    async fn caches_filled(&self) {
        let all = self.synced.wait(|| async {
            let _ = self.rollouts.wait_until_ready().await;
            self.filled_or_absent(&self.clone_sets, Kind::CloneSet)
                .await;
            self.filled_or_absent(&self.sidecar_sets, Kind::SidecarSet)
                .await;
            let _ = self.pods.wait_until_ready().await;
            let _ = self.revisions.wait_until_ready().await;
            let _ = self.events.wait_until_ready().await;
        });
        let _ = tokio::time::timeout(Duration::from_secs(10), all).await;
    }

    /// Waits until an optional kind's cache is filled, or the kind is found not served.
    async fn filled_or_absent<K>(&self, store: &Store<K>, kind: Kind)
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let Some(absent) = self.absent.get(kind.api()) else {
            let _ = store.wait_until_ready().await;
            return;
        };
        let mut absent = absent.subscribe();
        tokio::select! {
            _ = store.wait_until_ready() => {}
            _ = absent.wait_for(|a| *a) => {}
        }
    }

    fn api_error(&self) -> String {
        self.api_errors
            .lock()
            .map(|e| {
                let mut v: Vec<String> = e.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                v.sort();
                v.join("; ")
            })
            .unwrap_or_default()
    }

    fn record_progress(&self, s: model::Summary) {
        let point = Point(
            Timestamp::now().as_millisecond(),
            s.updated,
            s.ready,
            s.target,
        );
        if let Ok(mut h) = self.history.lock() {
            let points = h.entry((s.kind, s.namespace, s.name)).or_default();
            if points
                .last()
                .is_some_and(|p| (p.1, p.2, p.3) == (point.1, point.2, point.3))
            {
                return;
            }
            if points.len() >= HISTORY {
                points.remove(0);
            }
            points.push(point);
        }
    }

    fn summaries(&self) -> Vec<model::Summary> {
        let mut rows: Vec<model::Summary> = self
            .rollouts
            .state()
            .iter()
            .map(|r| model::summary(r))
            .chain(
                self.clone_sets
                    .state()
                    .iter()
                    .map(|c| model::clone_set_summary(c)),
            )
            .chain(
                self.sidecar_sets
                    .state()
                    .iter()
                    .map(|s| model::sidecar_set_summary(s)),
            )
            .collect();
        rows.sort_by(|a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)));
        rows
    }

    fn history(&self, kind: Kind, ns: &str, name: &str) -> Vec<Point> {
        self.history
            .lock()
            .ok()
            .and_then(|h| h.get(&(kind, ns.to_owned(), name.to_owned())).cloned())
            .unwrap_or_default()
    }

    /// The page of the `kind` object `ns/name` (`ns` empty for a cluster-scoped kind).
    fn detail(&self, kind: Kind, ns: &str, name: &str) -> Option<Detail> {
        match kind {
            Kind::StatefulsetRollout => self.rollout_detail(ns, name),
            Kind::CloneSet => self.clone_set_detail(ns, name),
            Kind::SidecarSet => self.sidecar_set_detail(name),
        }
    }

    /// A SidecarSet's page: its matched pods among the watched ones (those recording it in their
    /// `sroll.io/sidecarset-hash` annotation), and its Events (recorded in the `default`
    /// namespace, as for every cluster-scoped object).
    fn sidecar_set_detail(&self, name: &str) -> Option<Detail> {
        let set = self.sidecar_sets.get(&reflector::ObjectRef::new(name))?;
        let pods = self.pods.state_filter(|p| {
            sroll_planner::sidecar_set::read_map::<Value>(
                p,
                sroll_planner::sidecar_set::HASH_ANNOTATION,
            )
            .contains_key(name)
        });
        let events = self.events.state_filter(|e| {
            let o = &e.involved_object;
            o.kind.as_deref() == Some("SidecarSet") && o.name.as_deref() == Some(name)
        });
        Some(model::sidecar_set_detail(model::SidecarSetInputs {
            sidecar_set: &set,
            pods: pods.iter().map(AsRef::as_ref).collect(),
            events: events.iter().map(AsRef::as_ref).collect(),
            history: self.history(Kind::SidecarSet, "", name),
            now: Timestamp::now(),
        }))
    }

    fn clone_set_detail(&self, ns: &str, name: &str) -> Option<Detail> {
        let cs = self
            .clone_sets
            .get(&reflector::ObjectRef::new(name).within(ns))?;
        let mine = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.namespace.as_deref() == Some(ns) && model::owned_by(meta, "CloneSet", name)
        };
        let pods = self.pods.state_filter(|p| mine(&p.metadata));
        let revisions = self.revisions.state_filter(|r| mine(&r.metadata));
        let events = self.events.state_filter(|e| {
            let o = &e.involved_object;
            e.metadata.namespace.as_deref() == Some(ns)
                && o.kind.as_deref() == Some("CloneSet")
                && o.name.as_deref() == Some(name)
        });
        Some(model::clone_set_detail(model::CloneSetInputs {
            clone_set: &cs,
            pods: pods.iter().map(AsRef::as_ref).collect(),
            revisions: revisions.iter().map(AsRef::as_ref).collect(),
            events: events.iter().map(AsRef::as_ref).collect(),
            history: self.history(Kind::CloneSet, ns, name),
            now: Timestamp::now(),
        }))
    }

    fn rollout_detail(&self, ns: &str, name: &str) -> Option<Detail> {
        let rollout = self
            .rollouts
            .get(&reflector::ObjectRef::new(name).within(ns))?;
        let sts = model::statefulset_of(&rollout);
        let pods = self.pods.state_filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && model::owned_by(&p.metadata, "StatefulSet", &sts)
        });
        let revisions = self.revisions.state_filter(|r| {
            r.metadata.namespace.as_deref() == Some(ns)
                && model::owned_by(&r.metadata, "StatefulSet", &sts)
        });
        let events = self.events.state_filter(|e| {
            let o = &e.involved_object;
            e.metadata.namespace.as_deref() == Some(ns)
                && match o.kind.as_deref() {
                    Some("StatefulsetRollout") => o.name.as_deref() == Some(name),
                    // The StatefulSet's warnings only: its `SuccessfulCreate`/`SuccessfulDelete`
                    // for every pod would bury the rollout's own events.
                    Some("StatefulSet") => {
                        o.name.as_deref() == Some(sts.as_str())
                            && e.type_.as_deref() == Some("Warning")
                    }
                    _ => false,
                }
        });
        let history = self.history(Kind::StatefulsetRollout, ns, name);
        Some(model::detail(model::Inputs {
            rollout: &rollout,
            pods: pods.iter().map(AsRef::as_ref).collect(),
            revisions: revisions.iter().map(AsRef::as_ref).collect(),
            events: events.iter().map(AsRef::as_ref).collect(),
            history,
            now: Timestamp::now(),
        }))
    }
}

/// A running dashboard: its address; [`Running::shutdown`] stops it.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    watchers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Ends every browser stream, stops serving and stops the watchers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for w in &self.watchers {
            w.abort();
        }
        // The streams end on `stop`, so the graceful shutdown finishes; bound it all the same.
        if tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .is_err()
        {
            tracing::warn!("the dashboard's server did not stop within 5 s");
        }
    }
}

/// Starts the watchers and the server with `client` (the caller's identity).
pub async fn start(client: Client, options: Options) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(options.address).await.with_context(|| {
        format!(
            "failed to listen on {} (is another dashboard running? pick another with --address)",
            options.address
        )
    })?;
    let addr = listener
        .local_addr()
        .context("failed to read the listening address")?;
    let (rollouts, rollouts_w) = reflector::store();
    let (clone_sets, clone_sets_w) = reflector::store();
    let (sidecar_sets, sidecar_sets_w) = reflector::store();
    let (pods, pods_w) = reflector::store();
    let (revisions, revisions_w) = reflector::store();
    let (events, events_w) = reflector::store();
    let (stop_tx, stop) = watch::channel(false);
    let shared = Arc::new(Shared {
        client: client.clone(),
        allow_actions: options.allow_actions,
        rollouts,
        clone_sets,
        sidecar_sets,
        absent: OPTIONAL
            .iter()
            .map(|k| (k.api(), watch::Sender::new(false)))
            .collect(),
        pods,
        revisions,
        events,
        changed: watch::Sender::new(0),
        stop,
        history: Mutex::new(HashMap::new()),
        api_errors: Mutex::new(HashMap::new()),
        synced: Default::default(),
    });
    // Pods of StatefulSets and CloneSets only: their controllers label each with its revision.
    // A SidecarSet's page draws the matched pods among these (the pods of a StatefulSet, a
    // CloneSet or a DaemonSet): watching every pod of the cluster for a Deployment's or a bare
    // pod's sidecars would cost every user of the dashboard a copy of every pod.
    let pod_config = watcher::Config::default().labels(labels::REVISION);
    let watchers = vec![
        spawn_watch(
            scoped::<StatefulsetRollout>(&client, options.namespace.as_deref()),
            watcher::Config::default(),
            rollouts_w,
            "statefulsetrollouts",
            shared.clone(),
            |s, r| s.record_progress(model::summary(r)),
        ),
        spawn_watch(
            scoped::<CloneSet>(&client, options.namespace.as_deref()),
            watcher::Config::default(),
            clone_sets_w,
            Kind::CloneSet.api(),
            shared.clone(),
            |s, c| s.record_progress(model::clone_set_summary(c)),
        ),
        // Cluster-scoped: every SidecarSet, whatever `--namespace` says (the pods drawn are
        // those of the watched namespaces).
        spawn_watch(
            Api::<SidecarSet>::all(client.clone()),
            watcher::Config::default(),
            sidecar_sets_w,
            Kind::SidecarSet.api(),
            shared.clone(),
            |s, c| s.record_progress(model::sidecar_set_summary(c)),
        ),
        spawn_watch(
            scoped::<Pod>(&client, options.namespace.as_deref()),
            pod_config,
            pods_w,
            "pods",
            shared.clone(),
            |_, _| {},
        ),
        spawn_watch(
            scoped::<ControllerRevision>(&client, options.namespace.as_deref()),
            watcher::Config::default(),
            revisions_w,
            "controllerrevisions",
            shared.clone(),
            |_, _| {},
        ),
        spawn_watch(
            scoped::<Event>(&client, options.namespace.as_deref()),
            watcher::Config::default(),
            events_w,
            "events",
            shared.clone(),
            |_, _| {},
        ),
    ];
    let app = router(shared.clone(), addr);
    let mut stop_server = stop_tx.subscribe();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_server.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(Running {
        addr,
        stop: stop_tx,
        server,
        watchers,
    })
}

/// An API of every namespace, or of `ns`.
fn scoped<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs `sroll dashboard` until Ctrl-C.
pub async fn run(args: DashboardArgs) -> anyhow::Result<()> {
    let (client, _) = args.cluster.client().await?;
    if !args.address.ip().is_loopback() {
        eprintln!(
            "WARNING: the dashboard listens on {}, beyond this machine's loopback: anyone who can reach it sees the cluster with YOUR credentials{}. Use --address 127.0.0.1:PORT unless you mean it.",
            args.address,
            if args.allow_actions {
                " and can pause, resume, promote and roll back rollouts as you"
            } else {
                ""
            }
        );
        tracing::warn!(address = %args.address, "dashboard bound beyond loopback");
    }
    let running = start(
        client,
        Options {
            address: args.address,
            allow_actions: args.allow_actions,
            namespace: args.namespace,
        },
    )
    .await?;
    println!(
        "sroll dashboard on http://{}/ ({}; Ctrl-C stops it)",
        running.addr,
        if args.allow_actions {
            "actions allowed"
        } else {
            "read-only: --allow-actions enables pause, resume, set percent, rollback and retry"
        }
    );
    tokio::signal::ctrl_c()
        .await
        .context("failed to wait for Ctrl-C")?;
    running.shutdown().await;
    Ok(())
}

fn spawn_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    what: &'static str,
    shared: AppState,
    on_apply: fn(&Shared, &K),
) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    tokio::spawn(async move {
        // The watcher re-lists after any cut (an expired resourceVersion, a dropped connection, an
        // API server restart) and backs off while the API server is unreachable.
        let stream = watcher(api, config)
            .default_backoff()
            .modify(|o: &mut K| o.meta_mut().managed_fields = None)
            .reflect(writer);
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    if let Ok(mut e) = shared.api_errors.lock()
                        && e.remove(what).is_some()
                    {
                        tracing::info!(resource = what, "watch resumed");
                    }
                    if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = &event {
                        on_apply(&shared, o);
                    }
                    // A re-list's objects arrive one by one; the page changes once it is done.
                    if !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
                        shared.bump();
                    }
                }
                Err(e) if not_visible(&e) && shared.absent.contains_key(what) => {
                    // No CRD for an optional kind (an operator older than it) or no RBAC for
                    // it: nothing to show, no banner; the watcher keeps retrying with backoff in
                    // case it appears.
                    tracing::debug!(resource = what, error = %e, "not served; retrying");
                    if let Some(absent) = shared.absent.get(what) {
                        absent.send_replace(true);
                    }
                }
                Err(e) => {
                    tracing::debug!(resource = what, error = %e, "watch interrupted; retrying");
                    if let Ok(mut errors) = shared.api_errors.lock() {
                        errors.insert(what, e.to_string());
                    }
                    shared.bump();
                }
            }
        }
    })
}

/// Whether a watch failed because the API server does not serve the resource (404) or the
/// credentials may not list it (403).
fn not_visible(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => matches!(s.code, 403 | 404),
        _ => false,
    }
}

/// The kinds a cluster may not serve (a 404 or 403 on their watch hides them without a banner);
/// their watchers are named by [`Kind::api`].
const OPTIONAL: [Kind; 2] = [Kind::CloneSet, Kind::SidecarSet];

/// `/api/API/NS/NAME`, or `/api/API/NAME` for a cluster-scoped kind.
fn object_path(kind: Kind) -> String {
    if kind.namespaced() {
        format!("/api/{}/{{ns}}/{{name}}", kind.api())
    } else {
        format!("/api/{}/{{name}}", kind.api())
    }
}

/// The namespace and name of an object route's path (no namespace for a cluster-scoped kind).
type ObjectPath = Path<HashMap<String, String>>;

fn ns_name(Path(mut p): ObjectPath) -> (String, String) {
    (
        p.remove("ns").unwrap_or_default(),
        p.remove("name").unwrap_or_default(),
    )
}

fn router(shared: AppState, addr: SocketAddr) -> Router {
    let mut router = Router::new();
    for kind in Kind::ALL {
        let path = object_path(kind);
        router = router
            .route(&path, get(move |s, p| one(s, kind, ns_name(p))))
            .route(
                &format!("{path}/stream"),
                get(move |s, p| one_stream(s, kind, ns_name(p))),
            );
    }
    router
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/config", get(config))
        .route("/api/rollouts", get(list))
        .route("/api/stream", get(list_stream))
        .route("/api/rollouts/{ns}/{name}/{action}", post(action))
        .with_state(shared)
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            guard_host(addr, req, next)
        }))
}

/// On a loopback address, refuses requests whose `Host` is not a loopback name: a page of another
/// site that re-points its DNS name at 127.0.0.1 (DNS rebinding) must not read the cluster.
async fn guard_host(addr: SocketAddr, req: Request, next: Next) -> Response {
    if addr.ip().is_loopback() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let hostname = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .trim_matches(['[', ']']);
        let loopback = hostname == "localhost"
            || hostname
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return (
                StatusCode::FORBIDDEN,
                format!(
                    "the dashboard answers only requests for a loopback host (got Host: {host:?}); open http://{addr}/"
                ),
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                ),
            ),
        ],
        body,
    )
        .into_response()
}

async fn config(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"allowActions": s.allow_actions, "version": env!("CARGO_PKG_VERSION")}))
}

async fn list(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"items": s.summaries(), "apiError": s.api_error()}))
}

/// "no CloneSet "api" in namespace "shop"", "no SidecarSet "logging"".
fn no_such(kind: Kind, ns: &str, name: &str) -> String {
    if kind.namespaced() {
        format!("no {kind:?} {name:?} in namespace {ns:?}")
    } else {
        format!("no {kind:?} {name:?}")
    }
}

async fn one(State(s): State<AppState>, kind: Kind, (ns, name): (String, String)) -> Response {
    match s.detail(kind, &ns, &name) {
        Some(d) => Json(d).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("{} (yet)", no_such(kind, &ns, &name))})),
        )
            .into_response(),
    }
}

type SseStream = Sse<
    axum::response::sse::KeepAliveStream<
        std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, Infallible>> + Send>>,
    >,
>;

fn sse(stream: impl Stream<Item = SseEvent> + Send + 'static) -> SseStream {
    // The first message sets the browser's reconnection delay (1 s instead of its 3 s default).
    let first = futures::stream::once(async { SseEvent::default().retry(Duration::from_secs(1)) });
    Sse::new(first.chain(stream).map(Ok).boxed())
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// One connection's pace: the first page at once (once the caches are filled), then one
/// evaluation per change, at most one per [`COALESCE`] — a lone change goes out at once, a burst
/// waits out the rest of the 200 ms and goes out as one message.
struct Pacer {
    shared: AppState,
    changed: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    last: Option<tokio::time::Instant>,
}

impl Pacer {
    fn new(shared: AppState) -> Self {
        Self {
            changed: shared.changed.subscribe(),
            stop: shared.stop.clone(),
            shared,
            last: None,
        }
    }

    /// Waits until the page should be evaluated again; `None` at shutdown.
    async fn next(&mut self) -> Option<()> {
        if *self.stop.borrow() {
            return None;
        }
        let Some(last) = self.last else {
            self.shared.caches_filled().await;
            self.last = Some(tokio::time::Instant::now());
            return Some(());
        };
        tokio::select! {
            r = self.changed.changed() => r.ok()?,
            () = tokio::time::sleep(REEVALUATE) => {}
            _ = self.stop.wait_for(|s| *s) => return None,
        }
        tokio::select! {
            () = tokio::time::sleep_until(last + COALESCE) => {}
            _ = self.stop.wait_for(|s| *s) => return None,
        }
        self.changed.borrow_and_update();
        self.last = Some(tokio::time::Instant::now());
        Some(())
    }
}

async fn list_stream(State(s): State<AppState>) -> SseStream {
    sse(futures::stream::unfold(
        (Pacer::new(s), String::new()),
        |(mut pacer, mut last)| async move {
            loop {
                pacer.next().await?;
                let s = &pacer.shared;
                let body = json!({"items": s.summaries(), "apiError": s.api_error()}).to_string();
                if body != last {
                    last.clone_from(&body);
                    let event = SseEvent::default().event("list").data(body);
                    return Some((event, (pacer, last)));
                }
            }
        },
    ))
}

/// What one rollout's stream has sent so far.
struct Sent {
    cells: Vec<Cell>,
    rest: Value,
    first: bool,
}

async fn one_stream(
    State(s): State<AppState>,
    kind: Kind,
    (ns, name): (String, String),
) -> SseStream {
    let sent = Sent {
        cells: Vec::new(),
        rest: Value::Null,
        first: true,
    };
    sse(futures::stream::unfold(
        (Pacer::new(s), sent, ns, name),
        move |(mut pacer, mut sent, ns, name)| async move {
            loop {
                pacer.next().await?;
                let s = &pacer.shared;
                let event = match s.detail(kind, &ns, &name) {
                    None => {
                        let gone =
                            json!({"error": no_such(kind, &ns, &name), "apiError": s.api_error()});
                        if sent.rest == gone {
                            sent.first = false;
                            continue;
                        }
                        sent.rest = gone.clone();
                        sent.cells.clear();
                        sent.first = false;
                        SseEvent::default().event("gone").data(gone.to_string())
                    }
                    Some(mut detail) => {
                        let cells = std::mem::take(&mut detail.cells);
                        let mut rest = serde_json::to_value(&detail).unwrap_or(Value::Null);
                        rest["apiError"] = Value::String(s.api_error());
                        let full = sent.first || sent.cells.len() != cells.len();
                        let changed_cells = model::diff_cells(&sent.cells, &cells);
                        if !full && changed_cells.is_empty() && rest == sent.rest {
                            continue;
                        }
                        let mut body = rest.clone();
                        body["n"] = json!(cells.len());
                        body["full"] = json!(full);
                        body["cells"] = json!(changed_cells);
                        sent.rest = rest;
                        sent.first = false;
                        sent.cells = cells;
                        SseEvent::default().event("rollout").data(body.to_string())
                    }
                };
                return Some((event, (pacer, sent, ns, name)));
            }
        },
    ))
}

/// The body of an action.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActionBody {
    percent: Option<i32>,
    to_revision: Option<i64>,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn action(
    State(s): State<AppState>,
    Path((ns, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !s.allow_actions {
        return refuse(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only: restart it with `sroll dashboard --allow-actions` to pause, resume, set percent, roll back or retry",
        );
    }
    if headers.get(ACTION_HEADER).is_none() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("actions need the {ACTION_HEADER} header (sent by the dashboard's own page)"),
        );
    }
    // Same origin only: a browser names the page that sent the request.
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if origin != format!("http://{host}") {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin action refused: Origin {origin} is not this dashboard (http://{host})"
                ),
            );
        }
    }
    let body: ActionBody = if body.is_empty() {
        ActionBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("the action's body is not {{\"percent\": N, \"toRevision\": R}}: {e}"),
                );
            }
        }
    };
    let ctx = Ctx {
        client: s.client.clone(),
        ns,
    };
    let done = match action.as_str() {
        "pause" => actions::set_paused(&ctx, &name, true).await,
        "resume" => actions::set_paused(&ctx, &name, false).await,
        "set-percent" => match body.percent {
            Some(p) if (0..=100).contains(&p) => actions::set_percent(&ctx, &name, p).await,
            _ => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "set-percent needs {\"percent\": N} with N from 0 to 100",
                );
            }
        },
        "rollback" => {
            let percent = body.percent.unwrap_or(100);
            if !(0..=100).contains(&percent) {
                return refuse(StatusCode::BAD_REQUEST, "percent must be from 0 to 100");
            }
            actions::rollback(&ctx, &name, body.to_revision, percent).await
        }
        "retry" => actions::retry(&ctx, &name).await,
        other => {
            return refuse(
                StatusCode::NOT_FOUND,
                format!(
                    "no action {other:?}: the actions are pause, resume, set-percent, rollback and retry"
                ),
            );
        }
    };
    match done {
        Ok(message) => Json(json!({"message": message})).into_response(),
        Err(e) => {
            let message = format!("{e:#}");
            let status = if message.starts_with("forbidden") {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::CONFLICT
            };
            refuse(status, message)
        }
    }
}
