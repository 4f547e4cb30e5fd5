//! `sroll dashboard` in a real headless Chromium, against kubesim with the operator running.
//!
//! The browser is driven over WebDriver (fantoccini + Debian's `chromium-driver`, which ships
//! `chromedriver` matched to the `chromium` package). The page exposes its model as
//! `window.sroll` (the grid's cells with the colour each is drawn in, the connection state, the
//! timings), which the tests read with JavaScript; everything they check about the cluster they
//! check through the API.
//!
//! Chromium missing outside CI fails the tests with the Debian package names; `.ci/run` installs
//! them, so in CI they always run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use sroll::dashboard::{self, Options, Running};
use sroll_api::{
    Phase,
    analysis::{
        AbortPolicy, Metric, MetricProvider, RolloutAnalysis, RolloutStep, StepAnalysis, WebMetric,
    },
    clone_set::{CloneSet, INSTANCE_ID_LABEL},
    labels,
    sidecar_set::SidecarSet,
};
use sroll_planner::sidecar_set::INJECTED_LIST_ANNOTATION;
use sroll_testkit::{DEADLINE, Env, Rollout, clone_set::clone_set, evictions::Evictions, wait_for};

/// The first of `names` on the PATH (or the file named by `env`).
fn find_program(env: &str, names: &[&str]) -> Option<String> {
    if let Some(p) = std::env::var_os(env) {
        return Some(p.to_string_lossy().into_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        names
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
    })
}

/// chromedriver (killed on drop) and a headless Chromium session. Dropping it also ends the
/// session with a plain blocking `DELETE /session/ID` to chromedriver, which quits its Chromium:
/// a failing test leaves no browser behind (killing chromedriver alone would orphan it).
struct Chromium {
    browser: Browser,
    port: u16,
    session: String,
    _driver: tokio::process::Child,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(
            s,
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.session, self.port
        );
        let _ = s.read_to_end(&mut Vec::new());
    }
}

impl Chromium {
    async fn start() -> Self {
        let missing = "install Chromium and its WebDriver: `apt-get install -y chromium chromium-driver` (Debian packages `chromium`, `chromium-driver`), or set CHROME and CHROMEDRIVER";
        let chrome = find_program("CHROME", &["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("no Chromium found: {missing}"));
        let driver = find_program("CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|| panic!("no chromedriver found: {missing}"));
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {driver}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--hide-scrollbars"]
            }
        }))
        .unwrap();
        let browser = wait_for("chromedriver to start a Chromium session", DEADLINE, || {
            let (url, caps) = (url.clone(), caps.clone());
            async move {
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await;
        let session = browser
            .session_id()
            .await
            .expect("the session's id")
            .expect("a session");
        Self {
            browser,
            port,
            session,
            _driver: child,
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.browser
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script:?} failed: {e}"))
    }

    /// Waits until `script` returns something truthy; returns it.
    async fn wait_js(&self, what: &str, script: &str) -> Value {
        wait_for(what, DEADLINE, || async {
            let v = self.browser.execute(script, Vec::new()).await.ok()?;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Array(a) => !a.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            truthy.then_some(v)
        })
        .await
    }

    async fn close(self) {
        let _ = self.browser.clone().close().await;
    }
}

async fn start_dashboard(env: &Env, address: SocketAddr, allow_actions: bool) -> Running {
    dashboard::start(
        env.client.clone(),
        Options {
            address,
            allow_actions,
            namespace: None,
        },
    )
    .await
    .expect("the dashboard starts")
}

/// An HTTP client (the project's: ring as rustls' provider, as kube's client).
fn http() -> reqwest::Client {
    sroll_integrations::http::client(sroll_integrations::http::Timeouts::default(), false)
        .expect("an HTTP client")
}

fn loopback_any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn page(d: &Running, ns: &str, name: &str) -> String {
    format!("http://{}/#/r/{ns}/{name}", d.addr)
}

/// The grid as the page drew it: `[(ordinal, role, state, colour)]`.
async fn cells(chrome: &Chromium) -> Vec<(i64, String, String, String)> {
    let v = chrome.js("return window.sroll.cells();").await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["ordinal"].as_i64().unwrap(),
                c["role"].as_str().unwrap().to_owned(),
                c["state"].as_str().unwrap().to_owned(),
                c["colour"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const UPDATE_COLOUR: &str = "#0072b2";
const CURRENT_COLOUR: &str = "#e69f00";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_list_shows_the_rollout_and_the_grid_follows_it_to_100_percent() {
    let env = Env::start().await;
    let ns = env.ns.clone();
    env.apply(&Rollout::named("web").replicas(8).max_unavailable(1))
        .await;
    env.wait_phase("web", Phase::Done).await;
    let d = start_dashboard(&env, loopback_any_port(), false).await;
    let chrome = Chromium::start().await;

    // The list.
    chrome
        .browser
        .goto(&format!("http://{}/", d.addr))
        .await
        .unwrap();
    let row = chrome
        .wait_js(
            "the list to show the rollout",
            &format!(
                "const r = document.querySelector('tr[data-rollout=\"{ns}/web\"]'); return r && r.dataset.phase;"
            ),
        )
        .await;
    assert_eq!(row, json!("RolloutDone"));
    // The filter hides rows that do not match, and shows them again.
    let filter = chrome.browser.find(Locator::Id("filter")).await.unwrap();
    filter.send_keys("no-such-rollout").await.unwrap();
    let shown = chrome
        .js("return document.querySelectorAll('tr[data-rollout]').length;")
        .await;
    assert_eq!(shown, json!(0));
    filter.clear().await.unwrap();
    filter.send_keys("web").await.unwrap();
    let shown = chrome
        .js("return document.querySelectorAll('tr[data-rollout]').length;")
        .await;
    assert_eq!(shown, json!(1));
    // Its link opens the rollout's page.
    chrome
        .browser
        .find(Locator::Css(&format!("tr[data-rollout=\"{ns}/web\"] a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chrome
        .wait_js(
            "the rollout page with its grid",
            "return window.sroll.view === 'rollout' && window.sroll.detail && document.getElementById('grid').dataset.cells === '8';",
        )
        .await;
    // Hovering a cell shows its pod.
    let tip = chrome
        .js("const g = document.getElementById('grid'); const r = g.getBoundingClientRect(); \
             g.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 5, clientY: r.top + 5, bubbles: true})); \
             const t = document.getElementById('tip'); return t.hidden ? null : t.textContent;")
        .await;
    let tip = tip.as_str().expect("a hover card");
    assert!(
        tip.starts_with("web-0  (ordinal 0)\nReady") && tip.contains("registry.example/app:v1"),
        "{tip}"
    );
    let before = cells(&chrome).await;
    assert_eq!(before.len(), 8, "one cell per pod: {before:?}");
    assert!(
        before
            .iter()
            .all(|(_, role, state, colour)| role == "update"
                && state == "R"
                && colour == UPDATE_COLOUR),
        "a finished rollout is all Ready at its update revision: {before:?}"
    );

    // A new image to 100 %: the grid goes through old and new colours and ends all new and Ready.
    env.apply(
        &Rollout::named("web")
            .replicas(8)
            .max_unavailable(1)
            .min_eviction_interval(1)
            .image("registry.example/app:v2"),
    )
    .await;
    let mixed = chrome
        .wait_js(
            "the grid to show pods of both revisions",
            &format!(
                "const c = window.sroll.cells(); return c.some(x => x.colour === '{CURRENT_COLOUR}') && c.some(x => x.colour === '{UPDATE_COLOUR}' && x.revision === window.sroll.detail.updateRevision) && c.length;"
            ),
        )
        .await;
    assert_eq!(mixed, json!(8));
    let done = env.wait_phase("web", Phase::Done).await;
    let update = done.status.unwrap().update_revision.unwrap();
    chrome
        .wait_js(
            "the grid to be all new and Ready",
            &format!(
                "const c = window.sroll.cells(); return c.length === 8 && c.every(x => x.revision === '{update}' && x.state === 'R' && x.colour === '{UPDATE_COLOUR}');"
            ),
        )
        .await;
    // The rollout's own status may reach the page a moment after its pods' last change.
    chrome
        .wait_js(
            "the page to show RolloutDone",
            "return document.getElementById('main').dataset.phase === 'RolloutDone';",
        )
        .await;
    chrome.close().await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_clicked_with_allow_actions_stops_evictions() {
    let env = Env::start().await;
    let ns = env.ns.clone();
    let fixture = Rollout::named("web")
        .replicas(10)
        .max_unavailable(1)
        .min_eviction_interval(1);
    env.apply(&fixture).await;
    env.wait_phase("web", Phase::Done).await;
    let d = start_dashboard(&env, loopback_any_port(), true).await;

    // Writes need the dashboard's header and, from a browser, its own origin.
    let http = http();
    let url = format!("http://{}/api/rollouts/{ns}/web/pause", d.addr);
    let r = http.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 403, "no custom header");
    let r = http
        .post(&url)
        .header("X-Sroll-Dashboard", "1")
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "cross-origin");
    assert!(!env.rollout("web").await.spec.paused());

    let chrome = Chromium::start().await;
    chrome.browser.goto(&page(&d, &ns, "web")).await.unwrap();
    chrome
        .wait_js(
            "the pause button",
            "return document.querySelector('button[data-action=pause]') && window.sroll.detail;",
        )
        .await;
    let evictions = Evictions::watch(&env);
    env.apply(&fixture.clone().image("registry.example/app:v2"))
        .await;
    env.wait_updated("web", 2).await;
    chrome
        .browser
        .find(Locator::Css("button[data-action=pause]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let message = chrome
        .wait_js(
            "the action's answer",
            "const m = document.getElementById('actionmsg').textContent; return m.includes('paused') && m;",
        )
        .await;
    assert_eq!(message, json!("statefulsetrollout.sroll.io/web paused"));
    let paused = env.wait_phase("web", Phase::Paused).await;
    assert!(paused.spec.paused());
    // The page says so too.
    chrome
        .wait_js(
            "the page to show the pause",
            "return window.sroll.detail.phase === 'RolloutPaused';",
        )
        .await;
    // No eviction once paused (an eviction already in flight lands before the phase is Paused;
    // a second lets the eviction watch deliver it on a busy machine).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at_pause = evictions.count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        evictions.count(),
        at_pause,
        "evictions after the pause: {:?}",
        evictions.times()
    );
    let updated = env
        .rollout("web")
        .await
        .status
        .unwrap()
        .updated_replicas
        .unwrap();
    assert!(updated < 10, "the rollout stopped short: {updated} of 10");

    // Resume from the page: it completes.
    chrome
        .browser
        .find(Locator::Css("button[data-action=resume]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    env.wait_phase("web", Phase::Done).await;
    chrome.close().await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_only_mode_shows_no_action_buttons_and_refuses_writes() {
    let env = Env::start().await;
    let ns = env.ns.clone();
    env.apply(&Rollout::named("web").replicas(3)).await;
    env.wait_phase("web", Phase::Done).await;
    // Watching the one namespace (credentials that may not list cluster-wide).
    let d = dashboard::start(
        env.client.clone(),
        Options {
            address: loopback_any_port(),
            allow_actions: false,
            namespace: Some(ns.clone()),
        },
    )
    .await
    .expect("the dashboard starts");
    let chrome = Chromium::start().await;
    chrome.browser.goto(&page(&d, &ns, "web")).await.unwrap();
    chrome
        .wait_js(
            "the rollout page",
            "return window.sroll.detail && window.sroll.detail.name === 'web';",
        )
        .await;
    let buttons = chrome
        .js("return document.querySelectorAll('button[data-action], #actions').length;")
        .await;
    assert_eq!(buttons, json!(0), "no action buttons in read-only mode");
    let note = chrome
        .js("return document.querySelector('.readonly').textContent;")
        .await;
    assert!(note.as_str().unwrap().contains("--allow-actions"), "{note}");

    // Even with the header, from the page's own origin, every write is refused.
    let http = http();
    for action in ["pause", "resume", "set-percent", "rollback", "retry"] {
        let r = http
            .post(format!("http://{}/api/rollouts/{ns}/web/{action}", d.addr))
            .header("X-Sroll-Dashboard", "1")
            .json(&json!({"percent": 50}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{action}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("restart it with `sroll dashboard --allow-actions`"),
            "{body}"
        );
    }
    let r = env.rollout("web").await;
    assert!(!r.spec.paused());
    assert_eq!(r.spec.percent, 100);
    // A page of another site whose name now resolves to 127.0.0.1 (DNS rebinding) reads nothing.
    let r = http
        .get(format!("http://{}/api/rollouts", d.addr))
        .header("Host", format!("rebind.example:{}", d.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("answers only requests for a loopback host")
    );
    chrome.close().await;
    d.shutdown().await;
}

async fn set_paused(env: &Env, paused: bool) {
    env.rollouts()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"pauseRequested": paused}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_recovers_after_its_watches_are_cut_and_after_the_dashboard_restarts() {
    let env = Env::start().await;
    let ns = env.ns.clone();
    env.apply(&Rollout::named("web").replicas(3)).await;
    env.wait_phase("web", Phase::Done).await;
    let d = start_dashboard(&env, loopback_any_port(), false).await;
    let addr = d.addr;
    let chrome = Chromium::start().await;
    chrome.browser.goto(&page(&d, &ns, "web")).await.unwrap();
    chrome
        .wait_js(
            "the rollout page, live",
            "return window.sroll.connected && window.sroll.detail && window.sroll.detail.pauseRequested === false;",
        )
        .await;

    // kubesim cuts every watch each second: the dashboard's watchers resume, the page follows.
    env.cluster
        .faults()
        .update(|f| f.watch_cut_seconds = Some(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    set_paused(&env, true).await;
    chrome
        .wait_js(
            "the page to show the pause made while watches are being cut",
            "return window.sroll.detail.pauseRequested === true;",
        )
        .await;
    env.cluster.faults().update(|f| f.watch_cut_seconds = None);

    // The dashboard stops: the page says it is reconnecting; a change meanwhile shows once a new
    // dashboard serves the same address.
    d.shutdown().await;
    chrome
        .wait_js(
            "the page to notice the dashboard is gone",
            "return !window.sroll.connected && document.getElementById('conn').dataset.state;",
        )
        .await;
    set_paused(&env, false).await;
    let d = start_dashboard(&env, addr, false).await;
    chrome
        .wait_js(
            "the page to reconnect and show the resume",
            "return window.sroll.connected && window.sroll.detail.pauseRequested === false;",
        )
        .await;
    chrome.close().await;
    d.shutdown().await;
}

/// The pod names of CloneSet `name` (by name, as the grid orders them) and their revisions.
async fn clone_set_pods(env: &Env, name: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let mut v: Vec<(String, String)> = pods
        .list(&ListParams::default().labels(&format!("app={name},{INSTANCE_ID_LABEL}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            let rev = p
                .labels()
                .get(labels::REVISION)
                .cloned()
                .unwrap_or_default();
            (p.name_any(), rev)
        })
        .collect();
    v.sort();
    v
}

/// Waits until CloneSet `name`'s status, of its current generation, has every one of `replicas`
/// pods updated and Ready, and returns it.
async fn clone_set_settled(env: &Env, name: &str, replicas: i32) -> CloneSet {
    let sets: Api<CloneSet> = Api::namespaced(env.client.clone(), &env.ns);
    wait_for(
        &format!("CloneSet {name}: {replicas} pods updated and Ready"),
        DEADLINE * 2,
        || async {
            let cs = sets.get(name).await.ok()?;
            let s = cs.status.clone()?;
            (s.observed_generation == cs.metadata.generation.unwrap_or(0)
                && s.replicas == replicas
                && s.ready_replicas == replicas
                && s.updated_ready_replicas == replicas)
                .then_some(cs)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clone_set_is_listed_beside_rollouts_and_its_grid_follows_a_release_to_all_updated() {
    let env = Env::start().await;
    let ns = env.ns.clone();
    let sets: Api<CloneSet> = Api::namespaced(env.client.clone(), &ns);
    let spec = json!({"updateStrategy": {"maxUnavailable": 1}});
    sets.create(
        &PostParams::default(),
        &clone_set("api", 8, "registry.example/app:v1", spec.clone()),
    )
    .await
    .unwrap();
    env.apply(&Rollout::named("web").replicas(2)).await;
    env.wait_phase("web", Phase::Done).await;
    let v1 = clone_set_settled(&env, "api", 8).await;
    let d = start_dashboard(&env, loopback_any_port(), true).await;
    let chrome = Chromium::start().await;

    // The list: the CloneSet beside the rollout, its state derived from its status.
    chrome
        .browser
        .goto(&format!("http://{}/", d.addr))
        .await
        .unwrap();
    let row = chrome
        .wait_js(
            "the list to show the CloneSet as Done",
            &format!(
                "const r = document.querySelector('tr[data-kind=CloneSet][data-rollout=\"{ns}/api\"]'); return r && r.dataset.phase === 'Done' && r.textContent;"
            ),
        )
        .await;
    assert!(
        row.as_str().unwrap().contains("8/8 updated, 8 Ready"),
        "{row}"
    );
    let rollout_row = chrome
        .js(&format!(
            "const r = document.querySelector('tr[data-kind=StatefulsetRollout][data-rollout=\"{ns}/web\"]'); return r && r.dataset.phase;"
        ))
        .await;
    assert_eq!(rollout_row, json!("RolloutDone"));
    // The filter works on the kind too.
    let filter = chrome.browser.find(Locator::Id("filter")).await.unwrap();
    filter.send_keys("cloneset").await.unwrap();
    let shown = chrome
        .js("return [...document.querySelectorAll('tr[data-rollout]')].map(r => r.dataset.kind);")
        .await;
    assert_eq!(shown, json!(["CloneSet"]));
    chrome
        .browser
        .find(Locator::Css(&format!(
            "tr[data-kind=CloneSet][data-rollout=\"{ns}/api\"] a"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    chrome
        .wait_js(
            "the CloneSet page with its grid",
            "return window.sroll.detail && window.sroll.detail.kind === 'CloneSet' && document.getElementById('grid').dataset.cells === '8';",
        )
        .await;
    // Read-only: no action buttons even with --allow-actions, and a note saying why.
    let buttons = chrome
        .js("return document.querySelectorAll('button[data-action], #actions').length;")
        .await;
    assert_eq!(buttons, json!(0));
    // No analysis on a CloneSet.
    assert_eq!(
        chrome
            .js("return document.getElementById('analysis').hidden;")
            .await,
        json!(true)
    );
    // One cell per pod, ordered by name, all Ready at the update revision.
    let update = v1.status.unwrap().update_revision;
    let grid = chrome
        .js("return window.sroll.cells().map(c => [c.name, c.revision, c.state, c.colour]);")
        .await;
    let want: Vec<Value> = clone_set_pods(&env, "api")
        .await
        .into_iter()
        .map(|(name, rev)| {
            assert_eq!(rev, update);
            json!([name, update, "R", UPDATE_COLOUR])
        })
        .collect();
    assert_eq!(grid, json!(want));
    // Hovering a cell shows its pod (no ordinal: CloneSet pods have none).
    let tip = chrome
        .js("const g = document.getElementById('grid'); const r = g.getBoundingClientRect(); \
             g.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 5, clientY: r.top + 5, bubbles: true})); \
             const t = document.getElementById('tip'); return t.hidden ? null : t.textContent;")
        .await;
    let tip = tip.as_str().expect("a hover card");
    assert!(
        tip.starts_with(&format!("{}\nReady", want[0][0].as_str().unwrap()))
            && tip.contains("registry.example/app:v1"),
        "{tip}"
    );

    // A release: new pods of the new revision replace the old ones one at a time; the grid shows
    // both revisions, then every cell Ready at the new one.
    sets.patch(
        "api",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "registry.example/app:v2"}]}}}})),
    )
    .await
    .unwrap();
    chrome
        .wait_js(
            "the grid to show pods of both revisions",
            &format!(
                "const c = window.sroll.cells(); const u = window.sroll.detail.updateRevision; return u !== '{update}' && c.some(x => x.colour === '{CURRENT_COLOUR}') && c.some(x => x.colour === '{UPDATE_COLOUR}' && x.revision === u);"
            ),
        )
        .await;
    let v2 = clone_set_settled(&env, "api", 8).await;
    let update = v2.status.unwrap().update_revision;
    let pods = clone_set_pods(&env, "api").await;
    assert!(pods.iter().all(|(_, rev)| *rev == update), "{pods:?}");
    let names: Vec<&str> = pods.iter().map(|(n, _)| n.as_str()).collect();
    let names = serde_json::to_string(&names).unwrap();
    chrome
        .wait_js(
            "the grid to be the new pods, all Ready at the new revision",
            &format!(
                "const c = window.sroll.cells(); return JSON.stringify(c.map(x => x.name)) === JSON.stringify({names}) && c.every(x => x.revision === '{update}' && x.state === 'R' && x.colour === '{UPDATE_COLOUR}');"
            ),
        )
        .await;
    chrome
        .wait_js(
            "the page to show Done",
            "return document.getElementById('main').dataset.phase === 'Done';",
        )
        .await;
    let revisions = chrome
        .js("return window.sroll.detail.revisions.map(r => [r.role, r.images, r.pods]);")
        .await;
    // The CloneSet's own Events (the operator's pod creations and deletions).
    chrome
        .wait_js(
            "the CloneSet's events",
            "const e = window.sroll.detail.events; return e.some(x => x.reason === 'SuccessfulCreate') && e.some(x => x.reason === 'SuccessfulDelete') && document.querySelectorAll('#events tr').length > 1;",
        )
        .await;
    // Once every pod runs it, the update revision is also the current one; v1 is history.
    assert_eq!(
        revisions,
        json!([
            ["other", ["registry.example/app:v1"], 0],
            ["update", ["registry.example/app:v2"], 8]
        ])
    );
    chrome.close().await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clone_sets_in_place_update_shows_cells_updating_in_place_and_keeps_every_pod() {
    let env = Env::start().await;
    let ns = env.ns.clone();
    let sets: Api<CloneSet> = Api::namespaced(env.client.clone(), &ns);
    // Each pod stays out of traffic for 2 s before its image changes: long enough to be seen.
    let spec = json!({"updateStrategy": {"type": "InPlaceIfPossible", "maxUnavailable": 1,
        "inPlaceUpdateStrategy": {"gracePeriodSeconds": 2}}});
    sets.create(
        &PostParams::default(),
        &clone_set("cache", 4, "registry.example/app:v1", spec),
    )
    .await
    .unwrap();
    clone_set_settled(&env, "cache", 4).await;
    let before = clone_set_pods(&env, "cache").await;
    let d = start_dashboard(&env, loopback_any_port(), false).await;
    let chrome = Chromium::start().await;
    chrome
        .browser
        .goto(&format!("http://{}/#/c/{ns}/cache", d.addr))
        .await
        .unwrap();
    chrome
        .wait_js(
            "the CloneSet page",
            "return window.sroll.detail && document.getElementById('grid').dataset.cells === '4';",
        )
        .await;
    sets.patch(
        "cache",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "registry.example/app:v2"}]}}}})),
    )
    .await
    .unwrap();
    let in_place = chrome
        .wait_js(
            "a cell updating in place",
            "const c = window.sroll.cells().find(x => x.state === 'I'); \
             return c && [c.name, window.sroll.detail.cells.find(x => x[3] === c.name)[5]];",
        )
        .await;
    assert!(
        before.iter().any(|(n, _)| *n == in_place[0]),
        "an existing pod is updated in place: {in_place}"
    );
    assert!(
        in_place[1].as_str().unwrap().starts_with("in-place update"),
        "{in_place}"
    );
    let after = clone_set_settled(&env, "cache", 4).await;
    let update = after.status.unwrap().update_revision;
    let pods = clone_set_pods(&env, "cache").await;
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&pods), names(&before), "in place: the same pods");
    chrome
        .wait_js(
            "the same cells, all Ready at the new revision",
            &format!(
                "const c = window.sroll.cells(); return JSON.stringify(c.map(x => x.name)) === JSON.stringify({}) && c.every(x => x.revision === '{update}' && x.state === 'R');",
                serde_json::to_string(&names(&pods)).unwrap()
            ),
        )
        .await;
    chrome.close().await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_clone_set_and_sidecar_set_crds_the_list_shows_rollouts_and_no_error() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let env = Env::without_operator().await;
    let ns = env.ns.clone();
    // A cluster whose sroll predates CloneSets and SidecarSets.
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for crd in ["clonesets.sroll.io", "sidecarsets.sroll.io"] {
        crds.delete(crd, &Default::default()).await.unwrap();
    }
    let clone_sets: Api<CloneSet> = Api::namespaced(env.client.clone(), &ns);
    let sidecar_sets: Api<SidecarSet> = Api::all(env.client.clone());
    wait_for(
        "CloneSets and SidecarSets to be no longer served",
        DEADLINE,
        || async {
            let gone = |r: kube::Result<_>| matches!(r, Err(kube::Error::Api(s)) if s.code == 404);
            (gone(clone_sets.list(&ListParams::default()).await.map(drop))
                && gone(sidecar_sets.list(&ListParams::default()).await.map(drop)))
            .then_some(())
        },
    )
    .await;
    env.apply(&Rollout::named("web").replicas(2)).await;
    let d = start_dashboard(&env, loopback_any_port(), false).await;
    let chrome = Chromium::start().await;
    chrome
        .browser
        .goto(&format!("http://{}/", d.addr))
        .await
        .unwrap();
    chrome
        .wait_js(
            "the list to show the rollout",
            &format!("return document.querySelector('tr[data-rollout=\"{ns}/web\"]');"),
        )
        .await;
    // The CloneSet and SidecarSet watches keep failing (with backoff) meanwhile: no error banner
    // for them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let banner = chrome
        .js("const b = document.getElementById('apierror'); return [b.hidden, b.textContent, window.sroll.list.map(r => r.kind)];")
        .await;
    assert_eq!(banner, json!([true, "", ["StatefulsetRollout"]]));
    chrome.close().await;
    d.shutdown().await;
}

/// The operator watching every namespace (SidecarSets are cluster-scoped) and serving its
/// admission webhooks over HTTPS, registered by URL: the pod mutator injects SidecarSets.
async fn env_with_sidecar_injection() -> Env {
    let mut env = Env::without_operator().await;
    let settings = sroll_operator::Settings {
        namespaces: vec![],
        webhook: Some(env.webhook_settings()),
        ..env.settings()
    };
    env.start_operator_with(settings);
    env.webhook_registered().await;
    env
}

/// Waits until the injector's cache holds SidecarSet `name`: probe pods (label `app=probe`, which
/// the SidecarSet selects; no `controller-revision-hash`, so the dashboard does not draw them)
/// are created until one comes back injected.
async fn injector_sees(env: &Env, name: &str) {
    let api = env.pod_api();
    let n = std::sync::atomic::AtomicUsize::new(0);
    wait_for(&format!("the injector to see {name}"), DEADLINE, || async {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let probe: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("probe-{i}"), "labels": {"app": "probe"}},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}
        }))
        .unwrap();
        let created = api.create(&PostParams::default(), &probe).await.ok()?;
        let _ = api.delete(&created.name_any(), &Default::default()).await;
        created
            .annotations()
            .get(INJECTED_LIST_ANNOTATION)
            .is_some_and(|l| l.split(',').any(|s| s == name))
            .then_some(())
    })
    .await;
}

/// Waits until SidecarSet `name`'s status, of its current generation, satisfies `ok`.
async fn sidecar_set_status(
    env: &Env,
    name: &str,
    what: &str,
    ok: impl Fn(&sroll_api::sidecar_set::SidecarSetStatus) -> bool,
) -> SidecarSet {
    let sets: Api<SidecarSet> = Api::all(env.client.clone());
    wait_for(
        &format!("SidecarSet {name}: {what}"),
        DEADLINE * 2,
        || async {
            let s = sets.get(name).await.ok()?;
            let st = s.status.as_ref()?;
            (st.observed_generation == s.metadata.generation.unwrap_or(0) && ok(st)).then_some(s)
        },
    )
    .await
}

/// `(namespace/name, uid, log-agent image, log-agent restarts)` of the StatefulSet `db`'s pods.
async fn db_pods(env: &Env) -> Vec<(String, String, String, i32)> {
    let mut v: Vec<(String, String, String, i32)> = env
        .pod_api()
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            let image = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == "log-agent"))
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|s| s.iter().find(|c| c.name == "log-agent"))
                .map_or(-1, |c| c.restart_count);
            (
                format!("{}/{}", env.ns, p.name_any()),
                p.uid().unwrap_or_default(),
                image,
                restarts,
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sidecar_set_is_listed_and_its_grid_follows_an_in_place_sidecar_upgrade() {
    let env = env_with_sidecar_injection().await;
    let ns = env.ns.clone();
    let sets: Api<SidecarSet> = Api::all(env.client.clone());
    let spec = |image: &str, env_vars: Value| json!({"containers": [{"name": "log-agent", "image": image, "env": env_vars}]});
    let set: SidecarSet = serde_json::from_value(json!({
        "apiVersion": "sroll.io/v1alpha1", "kind": "SidecarSet",
        "metadata": {"name": "logging"},
        "spec": {
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "probe"]}]},
            "namespace": ns,
            "updateStrategy": {"partition": 1},
            "containers": [{"name": "log-agent", "image": "registry.example/agent:1", "env": []}]
        }
    }))
    .unwrap();
    sets.create(&PostParams::default(), &set).await.unwrap();
    injector_sees(&env, "logging").await;
    let sts: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                         "spec": {"containers": [{"name": "app", "image": "registry.example/db:1"}]}}
        }
    }))
    .unwrap();
    env.statefulsets()
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let v1 = sidecar_set_status(&env, "logging", "3 matched pods updated and Ready", |s| {
        s.matched_pods == 3 && s.updated_ready_pods == 3
    })
    .await;
    let latest = v1.status.unwrap().latest_revision;
    let before = db_pods(&env).await;
    assert!(
        before
            .iter()
            .all(|(_, _, image, _)| image == "registry.example/agent:1"),
        "every pod injected: {before:?}"
    );
    let d = start_dashboard(&env, loopback_any_port(), true).await;
    let chrome = Chromium::start().await;

    // The list: the SidecarSet, without a namespace, its state derived from its status.
    chrome
        .browser
        .goto(&format!("http://{}/", d.addr))
        .await
        .unwrap();
    let row = chrome
        .wait_js(
            "the list to show the SidecarSet as Done",
            "const r = document.querySelector('tr[data-kind=SidecarSet][data-rollout=\"logging\"]'); \
             return r && r.dataset.phase === 'Done' && [r.children[1].textContent, r.textContent];",
        )
        .await;
    assert_eq!(row[0], json!("—"), "cluster-scoped: no namespace");
    assert!(
        row[1].as_str().unwrap().contains("3/3 updated, 3 Ready"),
        "{row}"
    );
    chrome
        .browser
        .find(Locator::Css("tr[data-kind=SidecarSet] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(
        chrome
            .browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("#/s/logging")
    );
    chrome
        .wait_js(
            "the SidecarSet page with its grid",
            "return window.sroll.detail && window.sroll.detail.kind === 'SidecarSet' && document.getElementById('grid').dataset.cells === '3';",
        )
        .await;
    // Read-only even with --allow-actions; its sidecar listed.
    assert_eq!(
        chrome
            .js("return document.querySelectorAll('button[data-action], #actions').length;")
            .await,
        json!(0)
    );
    assert_eq!(
        chrome
            .js("return [...document.querySelectorAll('#sidecars tr[data-sidecar]')].map(r => r.textContent);")
            .await,
        json!(["log-agentregistry.example/agent:1BeforeAppContainer"])
    );
    // One cell per matched pod, by namespace and name, all Ready at the latest version.
    let grid = |pods: &[(String, String, String, i32)], revision: &str, state: &str| {
        json!(
            pods.iter()
                .map(|(n, ..)| json!([n, revision, state, UPDATE_COLOUR]))
                .collect::<Vec<_>>()
        )
    };
    assert_eq!(
        chrome
            .js("return window.sroll.cells().map(c => [c.name, c.revision, c.state, c.colour]);")
            .await,
        grid(&before, &latest, "R")
    );

    // A new sidecar image, held at partition 1: two pods upgraded in place, one kept back.
    sets.patch(
        "logging",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec("registry.example/agent:2", json!([]))})),
    )
    .await
    .unwrap();
    let v2 = sidecar_set_status(&env, "logging", "2 updated and Ready (partition 1)", |s| {
        s.updated_ready_pods == 2 && s.ready_pods == 3
    })
    .await;
    let latest2 = v2.status.unwrap().latest_revision;
    assert_ne!(latest2, latest);
    let held = chrome
        .wait_js(
            "two cells at the new version and one at the old",
            &format!(
                "const c = window.sroll.cells(); \
                 return c.length === 3 && c.every(x => x.state === 'R') \
                   && c.filter(x => x.revision === '{latest2}' && x.colour === '{UPDATE_COLOUR}').length === 2 \
                   && c.filter(x => x.revision === '{latest}' && x.colour === '{CURRENT_COLOUR}').length === 1 \
                   && document.getElementById('main').dataset.phase === 'Done' && c.map(x => x.name);"
            ),
        )
        .await;
    assert_eq!(
        held,
        json!(before.iter().map(|p| &p.0).collect::<Vec<_>>()),
        "the same pods"
    );

    // Released: the last pod follows, in place (same uids, the sidecar restarted once).
    sets.patch(
        "logging",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"partition": 0}}})),
    )
    .await
    .unwrap();
    let states_seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    wait_for(
        "every cell Ready at the new version",
        DEADLINE * 2,
        || async {
            let c = chrome
                .js("return window.sroll.cells().map(c => [c.revision, c.state]);")
                .await;
            let c = c.as_array().unwrap().clone();
            for x in &c {
                states_seen
                    .lock()
                    .unwrap()
                    .insert(x[1].as_str().unwrap().to_owned());
            }
            (c.len() == 3
                && c.iter()
                    .all(|x| x[0] == json!(latest2) && x[1] == json!("R")))
            .then_some(())
        },
    )
    .await;
    println!(
        "cell states seen while the last pod was upgraded: {:?}",
        states_seen.lock().unwrap()
    );
    sidecar_set_status(&env, "logging", "3 updated and Ready", |s| {
        s.updated_ready_pods == 3
    })
    .await;
    let after = db_pods(&env).await;
    assert_eq!(
        after
            .iter()
            .map(|(n, uid, image, restarts)| (n.clone(), uid.clone(), image.clone(), *restarts))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|(n, uid, ..)| (
                n.clone(),
                uid.clone(),
                "registry.example/agent:2".to_owned(),
                1
            ))
            .collect::<Vec<_>>(),
        "in place: the same pods, the sidecar restarted once with the new image"
    );
    assert_eq!(
        chrome
            .js("return window.sroll.cells().map(c => [c.name, c.revision, c.state, c.colour]);")
            .await,
        grid(&after, &latest2, "R")
    );
    chrome
        .wait_js(
            "the page to show Done and the operator's UpgradingPods Events",
            "return document.getElementById('main').dataset.phase === 'Done' && window.sroll.detail.events.some(e => e.reason === 'UpgradingPods');",
        )
        .await;
    let revisions = chrome
        .js("return window.sroll.detail.revisions.map(r => [r.role, r.images, r.pods]);")
        .await;
    assert_eq!(
        revisions,
        json!([["update", ["registry.example/agent:2"], 3]])
    );

    // A change that cannot be made in place (an env): every cell not upgradable, the set
    // Blocked by the operator's NotUpgradable condition.
    sets.patch(
        "logging",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec("registry.example/agent:2", json!([{"name": "MODE", "value": "verbose"}]))})),
    )
    .await
    .unwrap();
    let blocked = chrome
        .wait_js(
            "every cell not upgradable and the page Blocked",
            &format!(
                "const c = window.sroll.cells(); const d = window.sroll.detail; \
                 return c.length === 3 && c.every(x => x.state === 'N' && x.revision === '{latest2}') \
                   && d.phase === 'Blocked' && d.conditions.find(x => x.type === 'NotUpgradable' && x.status === 'True') && d.reason;"
            ),
        )
        .await;
    assert!(
        blocked
            .as_str()
            .unwrap()
            .starts_with("NotUpgradablePods: 3 pod(s)"),
        "{blocked}"
    );

    // A matched pod the dashboard does not watch (a bare pod: no controller-revision-hash) is
    // counted, not drawn, and the page says so.
    let bare: Pod = serde_json::from_value(json!({
        "metadata": {"name": "db-extra", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/db:1"}]}
    }))
    .unwrap();
    env.pod_api()
        .create(&PostParams::default(), &bare)
        .await
        .unwrap();
    sidecar_set_status(&env, "logging", "4 matched pods", |s| s.matched_pods == 4).await;
    chrome
        .wait_js(
            "the page to say 3 of 4 matched pods are drawn",
            "return window.sroll.detail.replicas === 4 && document.getElementById('grid').dataset.cells === '3' \
               && document.getElementById('summary').textContent.includes('Pods shown3 of 4 (only watched pods)');",
        )
        .await;
    chrome.close().await;
    d.shutdown().await;
}

/// Waits until the page's analysis chart draws as many points as `m` has measurements, checks
/// that they are `m`'s (phase, value, `finishedAt`, in order) and its counts, and returns the
/// drawn metric (`window.sroll.analysis()[0]`).
async fn chart_of(chrome: &Chromium, m: &sroll_api::analysis::MetricResult) -> Value {
    // The chart's points are the status's measurements, in order, each with its phase, value and
    // time.
    let want: Vec<Value> = m
        .measurements
        .iter()
        .map(|x| {
            json!({
                "phase": x.phase,
                "text": x.value.clone().unwrap_or_default(),
                "at": x.finished_at.as_ref().map(|t| t.0.as_millisecond()),
            })
        })
        .collect();
    let counts = format!(
        "{} measured: {} successful, {} failed, {} inconclusive, {} erred",
        m.count, m.successful, m.failed, m.inconclusive, m.error
    );
    let drawn = chrome
        .wait_js(
            "the chart to show the measurements of the status",
            &format!(
                "const a = window.sroll.analysis(); const want = {}; const p = a.length === 1 ? a[0].points : []; \
                 return p.length === want.length && want.every((w, i) => p[i].phase === w.phase && p[i].text === w.text && p[i].at === w.at) \
                   && a[0].counts === {} && a;",
                serde_json::to_string(&want).unwrap(),
                serde_json::to_string(&counts).unwrap()
            ),
        )
        .await;
    let points: Vec<Value> = drawn[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!({"phase": p["phase"], "text": p["text"], "at": p["at"]}))
        .collect();
    assert_eq!(points, want);
    assert_eq!(drawn[0]["counts"], json!(counts));
    drawn[0].clone()
}

/// A web metric's endpoint answering, request after request, 0.01 (successful), 0.07
/// (inconclusive), 0.2 (failed), an HTTP 500 (an error), then 0.02 (successful) for ever.
async fn measured_endpoint() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let served = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/error-rate",
        axum::routing::get(move || {
            let n = served.fetch_add(1, Ordering::SeqCst);
            async move {
                use axum::response::IntoResponse;
                match n {
                    0 => axum::Json(json!({"errorRate": 0.01})).into_response(),
                    1 => axum::Json(json!({"errorRate": 0.07})).into_response(),
                    2 => axum::Json(json!({"errorRate": 0.2})).into_response(),
                    3 => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
                    _ => axum::Json(json!({"errorRate": 0.02})).into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_analysis_chart_draws_the_measurements_of_the_rollouts_status() {
    let env = Env::start().await;
    let ns = env.ns.clone();
    let v1 = Rollout::named("web")
        .replicas(4)
        .image("registry.example/app:v1");
    env.apply(&v1).await;
    env.wait_phase("web", Phase::Done).await;
    let d = start_dashboard(&env, loopback_any_port(), false).await;
    let chrome = Chromium::start().await;
    chrome.browser.goto(&page(&d, &ns, "web")).await.unwrap();
    chrome
        .wait_js(
            "the rollout page",
            "return window.sroll.detail && window.sroll.detail.name === 'web';",
        )
        .await;
    // No analysis, no chart.
    assert_eq!(
        chrome
            .js(
                "return [document.getElementById('analysis').hidden, window.sroll.detail.analysis];"
            )
            .await,
        json!([true, null])
    );

    // A release with an analysis step: five measurements of a web metric, one of each kind, with
    // limits high enough that the analysis passes.
    let (addr, server) = measured_endpoint().await;
    let metric = Metric {
        name: "error-rate".into(),
        interval: Some("1s".into()),
        count: Some(5),
        success_condition: Some("result < 0.05".into()),
        failure_condition: Some("result > 0.1".into()),
        failure_limit: Some(1),
        inconclusive_limit: Some(1),
        consecutive_error_limit: Some(2),
        provider: MetricProvider {
            prometheus: None,
            web: Some(WebMetric {
                url: format!("http://{addr}/error-rate"),
                json_path: Some("$.errorRate".into()),
                ..WebMetric::default()
            }),
        },
        ..Metric::default()
    };
    let step = |percent: Option<i32>| RolloutStep {
        percent,
        analysis: percent.is_none().then_some(StepAnalysis {}),
        ..RolloutStep::default()
    };
    env.apply(
        &v1.clone()
            .image("registry.example/app:v2")
            .steps(vec![step(Some(50)), step(None), step(Some(100))])
            .analysis(RolloutAnalysis {
                metrics: vec![metric],
                abort_policy: Some(AbortPolicy::Hold),
            }),
    )
    .await;
    // The chart appears while the analysis runs (live, through the page's stream).
    chrome
        .wait_js(
            "the chart to show a first measurement",
            "const a = window.sroll.analysis(); return a.length === 1 && a[0].points.length > 0;",
        )
        .await;
    let done = env.wait_phase("web", Phase::Done).await;
    let analysis = done.status.unwrap().analysis.unwrap();
    let m = &analysis.metrics[0];
    assert!(m.measurements.len() >= 5, "{m:?}");
    let drawn = chart_of(&chrome, m).await;
    assert_eq!(drawn["name"], "error-rate");
    assert_eq!(drawn["phase"], json!(m.phase));
    let phases: std::collections::BTreeSet<&str> =
        m.measurements.iter().map(|x| x.phase.as_str()).collect();
    assert_eq!(
        phases,
        ["Error", "Failed", "Inconclusive", "Successful"].into(),
        "one measurement of each kind: {m:?}"
    );
    // Higher values are drawn higher (smaller y), the error on the baseline below them all, and
    // time runs left to right.
    let points = drawn["points"].as_array().unwrap();
    let y = |text: &str| {
        points
            .iter()
            .find(|p| p["text"] == text)
            .unwrap_or_else(|| panic!("no point {text}: {points:?}"))["y"]
            .as_f64()
            .unwrap()
    };
    let error_y = points.iter().find(|p| p["phase"] == "Error").unwrap()["y"]
        .as_f64()
        .unwrap();
    assert!(
        y("0.2") < y("0.07") && y("0.07") < y("0.01") && y("0.01") < error_y,
        "{points:?}"
    );
    assert_eq!(error_y, drawn["baseline"].as_f64().unwrap());
    let xs: Vec<f64> = points.iter().map(|p| p["x"].as_f64().unwrap()).collect();
    assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{xs:?}");
    // The conditions and the analysis phase are shown.
    let text = chrome
        .js("return document.getElementById('analysis').textContent;")
        .await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("success: result < 0.05")
            && text.contains("failure: result > 0.1")
            && text.contains(analysis.phase.as_deref().unwrap()),
        "{text}"
    );
    server.abort();
    chrome.close().await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_analysis_chart_draws_a_real_prometheus_analysis() {
    let env = Env::start().await;
    let ns = env.ns.clone();
    let v1 = Rollout::named("web")
        .replicas(4)
        .image("registry.example/app:v1");
    env.apply(&v1).await;
    env.wait_phase("web", Phase::Done).await;
    // Debian's prometheus, scraping kubesim's simulated application metrics.
    let prom = sroll_testkit::prometheus::Prometheus::start(env.cluster.base_url(), DEADLINE)
        .await
        .unwrap();
    let d = start_dashboard(&env, loopback_any_port(), false).await;
    let chrome = Chromium::start().await;
    chrome.browser.goto(&page(&d, &ns, "web")).await.unwrap();
    chrome
        .wait_js(
            "the rollout page",
            "return window.sroll.detail && window.sroll.detail.name === 'web';",
        )
        .await;
    // The new image fails 3 % of its requests: the worst pod's error ratio, three times, 1 s
    // apart, after 8 s (until Prometheus has two samples of a series, `rate` is empty and the
    // measurement errs and is retried).
    let metric = Metric {
        name: "worst-pod-error-ratio".into(),
        initial_delay: Some("8s".into()),
        interval: Some("1s".into()),
        count: Some(3),
        consecutive_error_limit: Some(30),
        success_condition: Some("result[0] < 0.05".into()),
        provider: MetricProvider {
            prometheus: Some(sroll_api::analysis::PrometheusMetric {
                address: prom.url.clone(),
                query: "max(rate(http_errors_total{app=\"web\"}[10s]) / rate(http_requests_total{app=\"web\"}[10s]))".into(),
                ..Default::default()
            }),
            web: None,
        },
        ..Metric::default()
    };
    let step = |percent: Option<i32>| RolloutStep {
        percent,
        analysis: percent.is_none().then_some(StepAnalysis {}),
        ..RolloutStep::default()
    };
    env.apply(
        &v1.clone()
            .image("registry.example/app:v2-errors3")
            .steps(vec![step(Some(50)), step(None), step(Some(100))])
            .analysis(RolloutAnalysis {
                metrics: vec![metric],
                abort_policy: Some(AbortPolicy::Hold),
            }),
    )
    .await;
    let done = env.wait_phase("web", Phase::Done).await;
    let analysis = done.status.unwrap().analysis.unwrap();
    let m = &analysis.metrics[0];
    assert_eq!(m.successful, 3, "{m:?}");
    let drawn = chart_of(&chrome, m).await;
    // Every successful measurement is a one-element vector of about 0.03, drawn above the
    // chart's zero line.
    let points = drawn["points"].as_array().unwrap();
    let baseline = drawn["baseline"].as_f64().unwrap();
    for (p, x) in points.iter().zip(&m.measurements) {
        if x.phase == "Successful" {
            let v: Vec<f64> = serde_json::from_str(x.value.as_deref().unwrap()).unwrap();
            assert!(v.len() == 1 && v[0] > 0.0 && v[0] < 0.05, "{x:?}");
            assert!(
                p["y"].as_f64().unwrap() < baseline,
                "{points:?} (zero at y {baseline})"
            );
        }
    }
    println!("Prometheus analysis on the page: {}", drawn["counts"]);
    drop(prom);
    chrome.close().await;
    d.shutdown().await;
}

/// The deadline of the 1,000-pod tests' waits.
const LONG: Duration = Duration::from_secs(300);

/// A 1,000-pod rollout mid-flight: prints the page's render time and one event's update time
/// (printed, not asserted), checks one cell per pod, and returns the browser for a screenshot.
async fn thousand_pods(then: impl AsyncFnOnce(&Env, &Chromium)) {
    let mut config = sroll_testkit::env::cluster_config();
    config.nodes = 40;
    let mut env = Env::without_operator_on(config).await;
    env.start_operator();
    let ns = env.ns.clone();
    let fixture = Rollout::named("cache").replicas(1000).max_unavailable(50);
    env.apply(&fixture).await;
    // 1,000 pods take a while on a busy machine: a longer deadline than the scenarios' 60 s.
    env.wait_rollout_within("cache", "1,000 pods Done", LONG, |r| {
        let s = r.status.clone().unwrap_or_default();
        s.phase == Some(Phase::Done) && s.observed_generation == r.metadata.generation
    })
    .await;
    let d = start_dashboard(&env, loopback_any_port(), true).await;
    let chrome = Chromium::start().await;
    env.apply(&fixture.clone().percent(60).image("registry.example/app:v2"))
        .await;
    // 300 pods at the new revision (of this generation: the status of the last one said 1,000).
    env.wait_rollout_within("cache", "300 pods at v2", LONG, |r| {
        let s = r.status.clone().unwrap_or_default();
        s.observed_generation == r.metadata.generation && s.updated_replicas.unwrap_or(0) >= 300
    })
    .await;
    chrome.browser.goto(&page(&d, &ns, "cache")).await.unwrap();
    let n = chrome
        .wait_js(
            "the 1,000-pod grid",
            "return window.sroll.timings.firstRenderMs !== null && document.getElementById('grid').dataset.cells;",
        )
        .await;
    assert_eq!(n, json!("1000"));
    let snapshot = http()
        .get(format!("http://{}/api/rollouts/{ns}/cache", d.addr))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    println!(
        "1,000-pod page: its whole model is {} bytes of JSON",
        snapshot.len()
    );
    let render = chrome
        .js("return window.sroll.timings.firstRenderMs;")
        .await;
    let first = chrome.js("return window.sroll.timings.firstApplyMs;").await;
    println!(
        "1,000-pod page: drawn {render} ms after navigation start (headless Chromium), of which {first} ms to apply the first message and draw the page"
    );

    // One event: the time from the API write to the page showing it (includes the 200 ms
    // coalescing), and the browser's own time to apply one message and redraw.
    let started = Instant::now();
    env.rollouts()
        .patch(
            "cache",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"pauseRequested": true}})),
        )
        .await
        .unwrap();
    chrome
        .wait_js(
            "the page to show the pause",
            "return window.sroll.detail.pauseRequested === true;",
        )
        .await;
    let took = started.elapsed();
    let apply = chrome.js("return window.sroll.timings.lastUpdateMs;").await;
    println!(
        "1,000-pod page: one change reached the page {} ms after the API write; applying one message and redrawing took {apply} ms in the browser",
        took.as_millis()
    );
    then(&env, &chrome).await;
    chrome.close().await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_1000_pod_page_has_one_cell_per_pod_and_prints_its_timings() {
    thousand_pods(async |_, chrome| {
        let c = cells(chrome).await;
        assert_eq!(c.len(), 1000);
        let ordinals: std::collections::BTreeSet<i64> = c.iter().map(|x| x.0).collect();
        assert_eq!(ordinals, (0..1000).collect());
        let detail = chrome.js("const d = window.sroll.detail; return [d.updateRevision, d.currentRevision, d.revisions];").await;
        assert!(
            c.iter().any(|x| x.3 == UPDATE_COLOUR) && c.iter().any(|x| x.3 == CURRENT_COLOUR),
            "{detail}"
        );
    })
    .await;
}

/// Writes `docs/dashboard.png`: `cargo nextest run -p sroll --test dashboard --run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "writes docs/dashboard.png"]
async fn screenshot_of_a_1000_pod_rollout_mid_flight() {
    thousand_pods(async |env, chrome| {
        // Resume so pods are in flight in the picture, then take it.
        env.rollouts()
            .patch(
                "cache",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"pauseRequested": false}})),
            )
            .await
            .unwrap();
        chrome.browser.set_window_size(1400, 1300).await.unwrap();
        chrome
            .wait_js(
                "pods in flight on the page",
                "return window.sroll.detail.phase === 'RolloutInProgress' && window.sroll.cells().filter(c => c.state !== 'R').length > 20;",
            )
            .await;
        let png = chrome.browser.screenshot().await.unwrap();
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        std::fs::write(&path, &png).unwrap();
        println!("wrote {} ({} bytes)", path.display(), png.len());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sroll_demo_with_dashboard_prints_its_url_and_serves_the_demo_rollout() {
    use tokio::io::AsyncBufReadExt;
    let kubeconfig =
        std::env::temp_dir().join(format!("sroll-demo-{}.kubeconfig", std::process::id()));
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_sroll"))
        .args(["demo", "--dashboard", "--dashboard-address", "127.0.0.1:0"])
        .args([
            "--pods",
            "6",
            "--speed",
            "8",
            "--nodes",
            "3",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sroll demo starts");
    let mut lines = tokio::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Dashboard: ") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("sroll demo ended without printing the dashboard's URL")
    })
    .await
    .expect("the dashboard's URL within the deadline");
    assert!(url.ends_with("/#/r/demo/web"), "{url}");
    // Keep reading the demo's output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = url.trim_end_matches("#/r/demo/web");
    let http = http();
    let list = wait_for(
        "the demo's rollout in the dashboard's list",
        DEADLINE,
        || async {
            let v: Value = http
                .get(format!("{base}api/rollouts"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["items"][0]["name"] == "web").then_some(v)
        },
    )
    .await;
    assert_eq!(list["items"][0]["namespace"], "demo");
    let page = http.get(base).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<script src=\"/app.js\"></script>"), "{page}");
    demo.kill().await.unwrap();
    let _ = std::fs::remove_file(&kubeconfig);
}
