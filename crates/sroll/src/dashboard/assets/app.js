// sroll dashboard front end: plain JS, no build step, no external resources.
// Pages: "#/" (every rollout, CloneSet and SidecarSet), "#/r/NAMESPACE/NAME" (one
// StatefulsetRollout), "#/c/NAMESPACE/NAME" (one CloneSet) and "#/s/NAME" (one SidecarSet,
// cluster-scoped): the same page for every kind (KINDS below). Data arrives as
// server-sent events (EventSource reconnects by itself; a closed stream is reopened here).
// window.sroll exposes the page's model (cells, colours, timings) for tests and curious users.
"use strict";

const ROLE_COLOURS = { update: "#0072b2", current: "#e69f00", previous: "#cc79a7", other: "#8c8c8c" };
const UNKNOWN = "#bbbbbb";
const STATES = {
  R: "Ready",
  U: "updating (not Ready yet)",
  T: "evicted / terminating",
  I: "updating in place",
  B: "broken",
  M: "missing (evicted, not recreated yet)",
  N: "not upgradable in place",
};

const S = (window.sroll = {
  view: "none",
  connected: false,
  config: null,
  list: [],
  detail: null, // the page's model; detail.cells: [key (ordinal), revision, state, name, node, why]
  timings: { firstRenderMs: null, firstApplyMs: null, lastUpdateMs: null, updates: 0, lastMessageAt: null },
  // The grid as drawn: one entry per cell, in drawing order.
  cells() {
    const d = S.detail;
    if (!d) return [];
    return d.cells.map((c) => ({
      key: c[0],
      ordinal: kindOf().ordinals ? c[0] : null,
      revision: c[1] >= 0 ? d.revisions[c[1]].name : "",
      role: roleOf(c),
      state: c[2],
      name: c[3],
      colour: colourOf(c),
    }));
  },
  // The analysis chart as drawn: one entry per metric, its markers read back from the SVG.
  analysis() {
    return [...document.querySelectorAll("#analysis .metric")].map((m) => ({
      name: m.dataset.metric,
      phase: m.dataset.phase,
      counts: m.querySelector(".counts").textContent,
      // The y of the chart's lowest value (0, or the lowest value when negative): errors sit on it.
      baseline: Number(m.querySelector("svg").dataset.baseline),
      points: [...m.querySelectorAll("svg .m")].map((g) => ({
        phase: g.dataset.phase,
        text: g.dataset.text,
        at: g.dataset.at ? Number(g.dataset.at) : null,
        x: Number(g.dataset.x),
        y: Number(g.dataset.y),
      })),
    }));
  },
});

// The kinds of page: the path segment of "#/PATH/NS/NAME" (or "#/PATH/NAME" for a cluster-scoped
// kind) → the API's segment, whether its objects have a namespace, pod ordinals and actions, and
// why its page is read-only.
const KINDS = {
  r: { api: "rollouts", name: "StatefulsetRollout", namespaced: true, ordinals: true, actions: true },
  c: {
    api: "clonesets",
    name: "CloneSet",
    namespaced: true,
    readOnly: (name) =>
      `CloneSet pages are read-only: the kubectl plugin has no CloneSet actions (pause and partition are <code>spec.updateStrategy</code> fields; <code>kubectl sroll clone ${esc(name)}</code> shows the same set in a terminal).`,
  },
  s: {
    api: "sidecarsets",
    name: "SidecarSet",
    namespaced: false,
    readOnly: () =>
      "SidecarSet pages are read-only: the kubectl plugin has no SidecarSet actions (pause, partition and a canary selector are <code>spec.updateStrategy</code> fields, changed with <code>kubectl patch sidecarset</code>).",
  },
};
// The kind of the page shown (by its name, as the model says it).
const kindOf = (name) => Object.values(KINDS).find((k) => k.name === (name || (S.detail && S.detail.kind))) || {};
// A page's hash: "#/r/NS/NAME", "#/s/NAME".
const hrefOf = (r) =>
  `#/${r.path}/${r.namespace ? encodeURIComponent(r.namespace) + "/" : ""}${encodeURIComponent(r.name)}`;

let source = null;
let filter = "";

const $ = (id) => document.getElementById(id);
const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function age(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 120) return Math.round(s) + "s";
  if (s < 7200) return Math.round(s / 60) + "m";
  if (s < 172800) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}

function roleOf(c) {
  const d = S.detail;
  return c[1] >= 0 && d.revisions[c[1]] ? d.revisions[c[1]].role : "";
}
function colourOf(c) {
  if (c[2] === "M") return "#ffffff";
  return ROLE_COLOURS[roleOf(c)] || UNKNOWN;
}

// ---- connection -------------------------------------------------------------------------------

function connect(url, handlers) {
  if (source) source.close();
  setConn("connecting");
  const es = new EventSource(url);
  source = es;
  es.onopen = () => setConn("live");
  es.onerror = () => {
    setConn("reconnecting");
    // The browser retries by itself unless the server answered with an error: then reopen.
    if (es.readyState === EventSource.CLOSED && source === es) {
      setTimeout(() => source === es && connect(url, handlers), 2000);
    }
  };
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (ev) => {
      setConn("live");
      S.timings.lastMessageAt = Date.now();
      fn(JSON.parse(ev.data));
    });
  }
}

function setConn(state) {
  S.connected = state === "live";
  const el = $("conn");
  el.dataset.state = state;
  el.textContent = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…" }[state];
}

function apiError(msg) {
  const el = $("apierror");
  el.hidden = !msg;
  el.textContent = msg ? "The API server is not answering every watch (the dashboard retries): " + msg : "";
}

// ---- routing ----------------------------------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/([a-z])\/(?:([^/]+)\/)?([^/]+)$/);
  S.detail = null;
  const kind = m && KINDS[m[1]];
  if (kind && kind.namespaced === (m[2] !== undefined)) {
    showRollout(m[1], m[2] === undefined ? "" : decodeURIComponent(m[2]), decodeURIComponent(m[3]));
  } else {
    showList();
  }
}

// ---- the list ---------------------------------------------------------------------------------

function showList() {
  S.view = "list";
  $("crumb").textContent = "rollouts";
  $("main").innerHTML =
    '<h1>Rollouts, CloneSets and SidecarSets</h1>' +
    '<p><input type="search" id="filter" placeholder="filter by kind, namespace, name or phase" aria-label="filter"></p>' +
    '<table id="rollouts"><thead><tr><th>Kind</th><th>Namespace</th><th>Name</th><th>Phase</th><th>Progress</th><th>Pods</th><th>Age</th><th>Reason</th></tr></thead><tbody></tbody></table>' +
    '<div id="nolist" class="empty" hidden>No StatefulsetRollouts, CloneSets or SidecarSets visible with your credentials yet.</div>';
  const f = $("filter");
  f.value = filter;
  f.addEventListener("input", () => {
    filter = f.value;
    renderList();
  });
  connect("/api/stream", {
    list: (msg) => {
      S.list = msg.items;
      apiError(msg.apiError);
      renderList();
    },
  });
}

function bar(updated, replicas, target) {
  const pct = replicas ? (100 * updated) / replicas : 0;
  const tgt = replicas ? (100 * target) / replicas : 0;
  return `<div class="bar" title="${updated} of ${replicas} pods updated, target ${target}"><div class="fill" style="width:${pct}%"></div><div class="target" style="left:calc(${tgt}% - 1px)"></div></div>`;
}

function renderList() {
  const body = document.querySelector("#rollouts tbody");
  if (!body) return;
  const q = filter.trim().toLowerCase();
  const rows = S.list.filter((r) => !q || `${r.kind} ${r.namespace}/${r.name} ${r.phase}`.toLowerCase().includes(q));
  body.innerHTML = rows
    .map(
      (r) =>
        `<tr data-kind="${esc(r.kind)}" data-rollout="${r.namespace ? esc(r.namespace) + "/" : ""}${esc(r.name)}" data-phase="${esc(r.phase)}">` +
        `<td><span class="kind ${esc(r.kind)}">${esc(r.kind)}</span></td>` +
        `<td>${r.namespace ? esc(r.namespace) : '<span class="muted" title="cluster-scoped">—</span>'}</td><td><a href="${esc(hrefOf(r))}">${esc(r.name)}</a></td>` +
        `<td><span class="phase ${esc(r.phase)}">${esc(r.phase.replace(/^Rollout/, ""))}${pausedNote(r)}</span></td>` +
        `<td>${bar(r.updated, r.replicas, r.target)}<span class="bar-label">${r.percentDeployed}% of ${r.percent}%</span></td>` +
        `<td class="num">${r.updated}/${r.replicas} updated, ${r.ready} Ready</td><td>${age(r.created)}</td><td class="muted">${esc(r.reason)}</td></tr>`,
    )
    .join("");
  $("nolist").hidden = S.list.length > 0;
}

// A rollout asked to pause is "pausing" until its phase says Paused; a CloneSet's or SidecarSet's
// pause only holds updates, so a paused set that has nothing to update is still Done ("paused").
function pausedNote(r) {
  if (!r.paused) return "";
  if (r.kind !== "StatefulsetRollout") return r.phase === "Paused" ? "" : " (paused)";
  return r.phase === "RolloutPaused" ? "" : " (pausing)";
}

// ---- one rollout or CloneSet ------------------------------------------------------------------

function showRollout(path, ns, name) {
  const kind = KINDS[path];
  S.view = "rollout";
  $("crumb").innerHTML = `<a href="#/">rollouts</a> / ${esc(kind.name)} / ${ns ? esc(ns) + " / " : ""}${esc(name)}`;
  const actions = S.config && S.config.allowActions && kind.actions;
  $("main").innerHTML =
    `<h1><span class="kind ${esc(kind.name)}">${esc(kind.name)}</span> ${esc(name)} <span id="phase" class="phase"></span></h1><div id="reason" class="muted"></div>` +
    `<div class="summary" id="summary"></div>` +
    (kind.readOnly
      ? `<div class="readonly">${kind.readOnly(name)}</div>`
      : actions
      ? `<div class="actions" id="actions">` +
        `<button data-action="pause">Pause</button><button data-action="resume">Resume</button>` +
        `<label>Percent <input type="number" id="percent" min="0" max="100" step="1"></label><button data-action="set-percent">Set percent</button>` +
        `<button data-action="rollback">Roll back</button><button data-action="retry">Retry</button>` +
        `<span id="actionmsg" class="actionmsg" role="status"></span></div>`
      : `<div class="readonly">Read-only: restart with <code>sroll dashboard --allow-actions</code> to pause, resume, set percent, roll back or retry from here.</div>`) +
    `<div id="analysis" hidden></div>` +
    `<h2>${kind.namespaced ? "Pods" : "Matched pods"}</h2><div class="legend" id="legend"></div>` +
    `<div class="gridwrap"><canvas class="grid" id="grid" role="img" aria-label="pods by revision and state"></canvas></div>` +
    `<h2>Progress over time</h2><canvas class="chart" id="chart" aria-label="pods updated and Ready over time"></canvas>` +
    `<div class="legend"><span><b style="color:#0072b2">━</b> updated</span><span><b style="color:#009e73">┅</b> Ready</span><span><b>┄</b> target</span></div>` +
    `<div class="cols"><div><h2>${kind.name === "SidecarSet" ? "Sidecar versions" : "Revisions"}</h2><table id="revisions"></table><h2>Conditions</h2><table id="conditions"></table></div>` +
    `<div>${kind.name === "SidecarSet" ? `<h2>Sidecars</h2><table id="sidecars"></table>` : ""}` +
    `${kind.actions ? `<h2>Notifications</h2><div id="notify"></div>` : ""}<h2>Events</h2><table id="events"></table></div></div>`;
  if (actions) {
    for (const b of document.querySelectorAll("#actions button")) {
      b.addEventListener("click", () => act(ns, name, b.dataset.action));
    }
  }
  const grid = $("grid");
  grid.addEventListener("mousemove", (e) => hover(e));
  grid.addEventListener("mouseleave", () => ($("tip").hidden = true));
  connect(`/api/${kind.api}/${ns ? encodeURIComponent(ns) + "/" : ""}${encodeURIComponent(name)}/stream`, {
    rollout: (msg) => applyUpdate(msg),
    gone: (msg) => {
      S.detail = null;
      apiError(msg.apiError);
      $("reason").textContent = msg.error;
    },
  });
  window.onresize = () => S.detail && drawGrid();
}

function applyUpdate(msg) {
  const t0 = performance.now();
  const cells = msg.cells;
  delete msg.cells;
  if (msg.full || !S.detail) {
    msg.cells = cells;
  } else {
    const old = S.detail.cells;
    const index = S.index;
    for (const c of cells) {
      const i = index.get(c[0]);
      if (i === undefined) continue;
      old[i] = c;
    }
    msg.cells = old;
  }
  S.index = new Map(msg.cells.map((c, i) => [c[0], i]));
  S.detail = msg;
  apiError(msg.apiError);
  renderRollout();
  const took = performance.now() - t0;
  S.timings.lastUpdateMs = took;
  S.timings.updates += 1;
  if (S.timings.firstRenderMs === null) {
    S.timings.firstRenderMs = performance.now();
    S.timings.firstApplyMs = took;
  }
}

function renderRollout() {
  const d = S.detail;
  const phase = $("phase");
  phase.className = "phase " + d.phase;
  phase.textContent = d.phase.replace(/^Rollout/, "");
  $("main").dataset.phase = d.phase;
  $("reason").textContent = d.reason;
  const pi = $("percent");
  if (pi && document.activeElement !== pi) pi.value = d.percent;
  const cs = d.cloneSet;
  const ss = d.sidecarSet;
  $("summary").innerHTML = ss
    ? kv("Updated", `${d.updated} / ${d.replicas} matched`) +
      kv("Target", `${d.target}${ss.partition ? ` (partition ${ss.partition})` : ""}`) +
      kv("Updated Ready", ss.updatedReady) +
      kv("Ready", d.ready) +
      kv(
        "Pods shown",
        ss.podsShown < d.replicas
          ? `${ss.podsShown} of ${d.replicas} <span class="muted" title="the dashboard watches pods labelled controller-revision-hash (StatefulSet, CloneSet, DaemonSet pods) in its namespaces">(only watched pods)</span>`
          : ss.podsShown,
      ) +
      kv(
        "Strategy",
        `${esc(ss.updateType)}, unavailable ${ss.maxUnavailable}${ss.updateSelector ? `, only <code>${esc(ss.updateSelector)}</code>` : ""}`,
      ) +
      kv("Paused", d.paused ? "yes" : "no") +
      kv("Injection", ss.injectionPaused ? "paused" : "on") +
      kv("Selects", `<code>${esc(ss.selector)}</code> in ${esc(ss.namespaces)}`) +
      kv("Latest version", `<span class="mono">${esc(ss.latestRevision)}</span>`) +
      kv("Generation", `${ss.observedGeneration} / ${ss.generation}`) +
      kv("Age", age(d.created)) +
      `<div style="flex:1">${bar(d.updated, d.replicas, d.target)}</div>`
    : cs
    ? kv("Updated", `${d.updated} / ${d.replicas}`) +
      kv("Target", `${d.target}${cs.partition ? ` (partition ${cs.partition})` : ""}`) +
      kv("Updated Ready", cs.updatedReady) +
      kv("Ready", d.ready) +
      kv("Pods", cs.pods) +
      kv("Strategy", `${esc(cs.updateType)}, surge ${cs.maxSurge}, unavailable ${cs.maxUnavailable}`) +
      kv("Paused", d.paused ? "yes" : "no") +
      kv("Generation", `${cs.observedGeneration} / ${cs.generation}`) +
      kv("Age", age(d.created)) +
      `<div style="flex:1">${bar(d.updated, d.replicas, d.target)}</div>`
    : kv("Updated", `${d.updated} / ${d.replicas}`) +
      kv("Target", `${d.target} (${d.percent}%)`) +
      kv("Ready", d.ready) +
      kv("Deployed", d.percentDeployed + "%") +
      kv("Paused", d.pauseRequested ? (d.paused ? "yes" : "requested") : "no") +
      kv("StatefulSet", esc(d.statefulset)) +
      kv("Age", age(d.created)) +
      `<div style="flex:1">${bar(d.updated, d.replicas, d.target)}</div>`;
  drawLegend();
  drawGrid();
  drawChart();
  drawAnalysis();
  $("revisions").innerHTML =
    "<tr><th></th><th>Revision</th><th>Images</th><th>Pods</th></tr>" +
    d.revisions
      .slice()
      .reverse()
      .map(
        (r) =>
          `<tr data-revision="${esc(r.name)}"><td><span style="display:inline-block;width:12px;height:12px;background:${ROLE_COLOURS[r.role]}"></span></td>` +
          `<td>${r.number ? `#${r.number} ` : ""}<span class="mono">${esc(r.name)}</span> <span class="muted">${esc(r.role)}</span></td>` +
          `<td class="mono">${r.images.map(esc).join("<br>")}</td><td class="num">${r.pods}</td></tr>`,
      )
      .join("");
  $("conditions").innerHTML =
    "<tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th></tr>" +
    d.conditions
      .map((c) => `<tr><td>${esc(c.type)}</td><td>${esc(c.status)}</td><td>${esc(c.reason)}</td><td>${esc(c.message)}</td></tr>`)
      .join("");
  $("events").innerHTML =
    "<tr><th>Age</th><th>Type</th><th>Reason</th><th>Message</th></tr>" +
    d.events
      .slice()
      .reverse()
      .map(
        (e) =>
          `<tr><td>${age(e.time)}</td><td>${esc(e.type)}</td><td>${esc(e.reason)}${e.count > 1 ? " ×" + e.count : ""}</td><td>${esc(e.message)}</td></tr>`,
      )
      .join("");
  if ($("sidecars") && ss) {
    $("sidecars").innerHTML =
      "<tr><th>Container</th><th>Image</th><th>Injected</th></tr>" +
      ss.containers
        .map((c) => `<tr data-sidecar="${esc(c.name)}"><td>${esc(c.name)}</td><td class="mono">${esc(c.image)}</td><td>${esc(c.placement)}</td></tr>`)
        .join("");
  }
  if (!$("notify")) return;
  const slack = d.slackLinks.length
    ? d.slackLinks.map((l, i) => `<a href="${esc(l)}" rel="noreferrer" target="_blank">Slack message${d.slackLinks.length > 1 ? " " + (i + 1) : ""}</a>`).join(" · ")
    : '<span class="muted">no Slack message</span>';
  const callback = d.callbackOutcome
    ? `release callback: <b>${esc(d.callbackOutcome)}</b> (stage ${esc(d.callbackStageId)})`
    : d.callbackUrl
      ? '<span class="muted">release callback not sent yet</span>'
      : '<span class="muted">no release callback</span>';
  const build = d.buildBranch || d.buildCommit ? `<div class="mono">${esc(d.buildBranch)} ${esc(d.buildCommit)}</div>` : "";
  $("notify").innerHTML = `<div>${slack}</div><div>${callback}</div>${build}${d.rolloutIdentity ? `<div class="muted mono">rolloutIdentity ${esc(d.rolloutIdentity)}</div>` : ""}`;
}

const kv = (k, v) => `<div><div class="k">${k}</div><div class="v">${v}</div></div>`;

// ---- the pod grid -----------------------------------------------------------------------------

let layout = null;

function cellSize(n) {
  if (n <= 60) return 34;
  if (n <= 200) return 26;
  if (n <= 600) return 20;
  return 16;
}

function drawCell(ctx, x, y, s, c) {
  const colour = colourOf(c);
  const st = c[2];
  const inner = s - 3;
  ctx.save();
  ctx.translate(x, y);
  if (st === "R") {
    ctx.fillStyle = colour;
    ctx.fillRect(0, 0, inner, inner);
  } else if (st === "U") {
    // Updating: the revision's colour, striped.
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, inner, inner);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.strokeRect(1, 1, inner - 2, inner - 2);
    ctx.beginPath();
    for (let k = -inner; k < inner; k += 5) {
      ctx.moveTo(k, inner);
      ctx.lineTo(k + inner, 0);
    }
    ctx.save();
    ctx.rect(0, 0, inner, inner);
    ctx.clip();
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.restore();
  } else if (st === "T") {
    // Evicted / terminating: an outline with a cross.
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, inner, inner);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.strokeRect(1, 1, inner - 2, inner - 2);
    ctx.strokeStyle = "#1b1f24";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(3, 3);
    ctx.lineTo(inner - 3, inner - 3);
    ctx.moveTo(inner - 3, 3);
    ctx.lineTo(3, inner - 3);
    ctx.stroke();
  } else if (st === "I") {
    // Updating in place: the revision's outline around a dot of its colour (the pod stays).
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, inner, inner);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.strokeRect(1, 1, inner - 2, inner - 2);
    ctx.fillStyle = colour === "#ffffff" ? "#5b6570" : colour;
    ctx.beginPath();
    ctx.arc(inner / 2, inner / 2, Math.max(2, inner / 4), 0, 2 * Math.PI);
    ctx.fill();
  } else if (st === "N") {
    // Not upgradable in place: filled (it runs), black border and a white bar (a "no entry").
    ctx.fillStyle = colour;
    ctx.fillRect(0, 0, inner, inner);
    ctx.strokeStyle = "#000000";
    ctx.lineWidth = 2;
    ctx.strokeRect(1, 1, inner - 2, inner - 2);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(3, inner / 2 - 2, inner - 6, 4);
  } else if (st === "B") {
    // Broken: filled, with a black border and a black triangle (not colour alone).
    ctx.fillStyle = colour;
    ctx.fillRect(0, 0, inner, inner);
    ctx.strokeStyle = "#000000";
    ctx.lineWidth = 2;
    ctx.strokeRect(1, 1, inner - 2, inner - 2);
    ctx.fillStyle = "#000000";
    ctx.beginPath();
    ctx.moveTo(inner / 2, 2);
    ctx.lineTo(inner - 2, inner - 2);
    ctx.lineTo(2, inner - 2);
    ctx.closePath();
    ctx.fill();
  } else {
    // Missing: a dashed outline.
    ctx.setLineDash([3, 2]);
    ctx.strokeStyle = "#5b6570";
    ctx.lineWidth = 1;
    ctx.strokeRect(0.5, 0.5, inner - 1, inner - 1);
  }
  ctx.restore();
}

function drawGrid() {
  const d = S.detail;
  const canvas = $("grid");
  if (!d || !canvas) return;
  const n = d.cells.length;
  const s = cellSize(n);
  const width = canvas.clientWidth || 800;
  const cols = Math.max(1, Math.floor(width / s));
  const rows = Math.ceil(n / cols);
  const dpr = window.devicePixelRatio || 1;
  const height = Math.max(s, rows * s);
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.height = height + "px";
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  layout = { s, cols };
  canvas.dataset.cells = String(n);
  const showOrdinal = s >= 26 && kindOf().ordinals;
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (let i = 0; i < n; i++) {
    const c = d.cells[i];
    const x = (i % cols) * s;
    const y = Math.floor(i / cols) * s;
    drawCell(ctx, x, y, s, c);
    if (showOrdinal && c[2] !== "B" && c[2] !== "N") {
      ctx.fillStyle = c[2] === "R" ? "#ffffff" : "#1b1f24";
      ctx.fillText(String(c[0]), x + (s - 3) / 2, y + (s - 3) / 2);
    }
  }
}

function drawLegend() {
  const d = S.detail;
  const parts = [];
  for (const r of d.revisions.slice().reverse()) {
    if (r.pods === 0 && r.role === "other") continue;
    parts.push(
      `<span><span style="display:inline-block;width:12px;height:12px;background:${ROLE_COLOURS[r.role]};vertical-align:middle"></span> ${r.number ? `#${r.number} ` : ""}${esc(r.role)} <span class="mono">${esc(r.images.join(", "))}</span> (${r.pods})</span>`,
    );
  }
  const counts = {};
  for (const c of d.cells) counts[c[2]] = (counts[c[2]] || 0) + 1;
  const legend = $("legend");
  legend.innerHTML =
    parts.join("") +
    Object.keys(STATES)
      .filter((k) => k !== "N" || kindOf().name === "SidecarSet")
      .map((k) => `<span data-state="${k}"><canvas width="16" height="16" data-swatch="${k}"></canvas>${STATES[k]} (${counts[k] || 0})</span>`)
      .join("");
  for (const sw of legend.querySelectorAll("canvas[data-swatch]")) {
    const ctx = sw.getContext("2d");
    drawCell(ctx, 0, 0, 16, [0, -1, sw.dataset.swatch]);
  }
}

function hover(e) {
  const d = S.detail;
  const tip = $("tip");
  if (!d || !layout) return;
  const rect = e.target.getBoundingClientRect();
  const col = Math.floor((e.clientX - rect.left) / layout.s);
  const row = Math.floor((e.clientY - rect.top) / layout.s);
  const i = row * layout.cols + col;
  const c = col < layout.cols ? d.cells[i] : undefined;
  if (!c) {
    tip.hidden = true;
    return;
  }
  const rev = c[1] >= 0 ? d.revisions[c[1]] : null;
  const title = kindOf().ordinals ? `${c[3]}  (ordinal ${c[0]})` : c[3] || "(no pod yet)";
  tip.textContent =
    `${title}\n${STATES[c[2]]}: ${c[5]}\n` +
    (rev ? `revision ${rev.number ? `#${rev.number} ` : ""}${rev.name} (${rev.role})\n${rev.images.join(", ")}\n` : "") +
    (c[4] ? `node ${c[4]}` : "");
  tip.hidden = false;
  tip.style.left = e.clientX + 14 + "px";
  tip.style.top = e.clientY + 14 + "px";
}

// ---- progress over time -----------------------------------------------------------------------

function drawChart() {
  const d = S.detail;
  const canvas = $("chart");
  if (!canvas) return;
  const w = canvas.clientWidth || 800;
  const h = canvas.clientHeight || 160;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pts = d.history;
  if (pts.length === 0) return;
  const t0 = pts[0][0];
  const t1 = Math.max(Date.now(), t0 + 1000);
  const ymax = Math.max(1, d.replicas);
  const X = (t) => 40 + ((w - 50) * (t - t0)) / (t1 - t0);
  const Y = (v) => h - 18 - ((h - 28) * v) / ymax;
  ctx.fillStyle = "#5b6570";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(String(ymax), 4, Y(ymax) + 4);
  ctx.fillText("0", 4, Y(0) + 4);
  ctx.fillText(`${Math.round((t1 - t0) / 1000)} s`, w - 40, h - 4);
  const line = (k, colour, dash) => {
    ctx.strokeStyle = colour;
    ctx.setLineDash(dash);
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach((p, i) => {
      // Step lines: a value holds until the next point.
      if (i === 0) ctx.moveTo(X(p[0]), Y(p[k]));
      else {
        ctx.lineTo(X(p[0]), Y(pts[i - 1][k]));
        ctx.lineTo(X(p[0]), Y(p[k]));
      }
    });
    ctx.lineTo(X(t1), Y(pts[pts.length - 1][k]));
    ctx.stroke();
  };
  line(3, "#1b1f24", [3, 3]);
  line(2, "#009e73", [6, 3]);
  line(1, "#0072b2", []);
  ctx.setLineDash([]);
}

// ---- analysis measurements ---------------------------------------------------------------------

// Marker per measurement phase: colour (Okabe–Ito) and shape, so neither carries it alone.
const MEASUREMENT = {
  Successful: { colour: "#0072b2", shape: "circle", label: "successful" },
  Failed: { colour: "#d55e00", shape: "triangle", label: "failed" },
  Inconclusive: { colour: "#e69f00", shape: "diamond", label: "inconclusive" },
  Error: { colour: "#5b6570", shape: "cross", label: "error (drawn on the baseline)" },
};

function marker(shape, x, y, colour) {
  const r = 4.5;
  switch (shape) {
    case "circle":
      return `<circle cx="${x}" cy="${y}" r="${r}" fill="${colour}" stroke="#1b1f24" stroke-width="0.8"/>`;
    case "triangle":
      return `<path d="M${x} ${y - r - 1}L${x + r + 1} ${y + r}L${x - r - 1} ${y + r}Z" fill="${colour}" stroke="#1b1f24" stroke-width="1"/>`;
    case "diamond":
      return `<path d="M${x} ${y - r - 1}L${x + r + 1} ${y}L${x} ${y + r + 1}L${x - r - 1} ${y}Z" fill="#ffffff" stroke="${colour}" stroke-width="2.2"/>`;
    default:
      return `<path d="M${x - r} ${y - r}L${x + r} ${y + r}M${x + r} ${y - r}L${x - r} ${y + r}" stroke="${colour}" stroke-width="2.4"/>`;
  }
}

function sparkline(m) {
  const W = 360,
    H = 84,
    L = 44,
    R = 10,
    T = 10,
    B = 16;
  const pts = m.points;
  const values = pts.map((p) => p.value).filter((v) => v !== null && v !== undefined);
  let lo = Math.min(0, ...values),
    hi = Math.max(...values, lo);
  if (hi === lo) hi = lo + 1;
  const timed = pts.length > 1 && pts.every((p) => p.at !== null && p.at !== undefined) && pts[pts.length - 1].at > pts[0].at;
  const X = (p, i) =>
    pts.length === 1
      ? L + (W - L - R) / 2
      : timed
        ? L + ((W - L - R) * (p.at - pts[0].at)) / (pts[pts.length - 1].at - pts[0].at)
        : L + ((W - L - R) * i) / (pts.length - 1);
  const Y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const fmt = (v) => String(Number(v.toPrecision(3)));
  let svg = `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(m.name)}: ${pts.length} recent measurements" data-baseline="${Y(lo).toFixed(1)}">`;
  svg += `<line x1="${L}" y1="${Y(lo)}" x2="${W - R}" y2="${Y(lo)}" stroke="#d8dce1"/><line x1="${L}" y1="${Y(hi)}" x2="${W - R}" y2="${Y(hi)}" stroke="#eef0f2"/>`;
  svg += `<text x="${L - 4}" y="${Y(hi) + 4}" text-anchor="end" class="axis">${fmt(hi)}</text><text x="${L - 4}" y="${Y(lo) + 4}" text-anchor="end" class="axis">${fmt(lo)}</text>`;
  const line = pts
    .map((p, i) => [p, i])
    .filter(([p]) => p.value !== null && p.value !== undefined)
    .map(([p, i]) => `${X(p, i).toFixed(1)},${Y(p.value).toFixed(1)}`);
  if (line.length > 1) svg += `<polyline points="${line.join(" ")}" fill="none" stroke="#1b1f24" stroke-width="1.2"/>`;
  pts.forEach((p, i) => {
    const kind = MEASUREMENT[p.phase] || MEASUREMENT.Error;
    const x = X(p, i),
      y = p.value !== null && p.value !== undefined ? Y(p.value) : Y(lo);
    const when = p.at ? new Date(p.at).toISOString().replace(".000Z", "Z") : "";
    const title = `${p.phase}${p.text ? " " + p.text : ""}${when ? " at " + when : ""}${p.message ? ": " + p.message : ""}`;
    svg +=
      `<g class="m" data-phase="${esc(p.phase)}" data-text="${esc(p.text)}" data-at="${p.at ?? ""}" data-x="${x.toFixed(1)}" data-y="${y.toFixed(1)}">` +
      `<title>${esc(title)}</title>${marker(kind.shape, x, y, kind.colour)}</g>`;
  });
  if (pts.length === 0) svg += `<text x="${L + 8}" y="${H / 2}" class="axis">no measurements yet</text>`;
  return svg + "</svg>";
}

function drawAnalysis() {
  const el = $("analysis");
  const a = S.detail && S.detail.analysis;
  if (!el) return;
  el.hidden = !a;
  if (!a) {
    el.innerHTML = "";
    return;
  }
  const cond = (m) =>
    [m.successCondition && `success: <code>${esc(m.successCondition)}</code>`, m.failureCondition && `failure: <code>${esc(m.failureCondition)}</code>`]
      .filter(Boolean)
      .join(" · ");
  el.innerHTML =
    `<h2>Analysis <span class="phase analysis-${esc(a.phase)}" id="analysisphase">${esc(a.phase || "not run yet")}</span> <span class="muted">${esc(a.step)}</span></h2>` +
    (a.message ? `<div class="muted">${esc(a.message)}</div>` : "") +
    `<div class="metrics">` +
    a.metrics
      .map(
        (m) =>
          `<div class="metric" data-metric="${esc(m.name)}" data-phase="${esc(m.phase)}"><div><b>${esc(m.name)}</b> <span class="muted">${esc(m.phase)}</span></div>` +
          `<div class="cond">${cond(m)}</div>${sparkline(m)}` +
          `<div class="counts">${m.count} measured: ${m.successful} successful, ${m.failed} failed, ${m.inconclusive} inconclusive, ${m.error} erred</div></div>`,
      )
      .join("") +
    `</div><div class="legend">` +
    Object.entries(MEASUREMENT)
      .map(([, k]) => `<span><svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">${marker(k.shape, 7, 7, k.colour)}</svg> ${k.label}</span>`)
      .join("") +
    `</div>`;
}

// ---- actions ----------------------------------------------------------------------------------

async function act(ns, name, action) {
  const msg = $("actionmsg");
  const body = {};
  if (action === "set-percent") body.percent = Number($("percent").value);
  if (action === "rollback" && !confirm(`Roll ${name} back to its previous revision?`)) return;
  msg.className = "actionmsg";
  msg.textContent = `${action}…`;
  try {
    const r = await fetch(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Sroll-Dashboard": "1" },
      body: JSON.stringify(body),
    });
    const j = await r.json();
    msg.className = r.ok ? "actionmsg" : "actionmsg error";
    msg.textContent = r.ok ? j.message : j.error;
  } catch (e) {
    msg.className = "actionmsg error";
    msg.textContent = `${action} failed: ${e}`;
  }
}

// ---- start ------------------------------------------------------------------------------------

async function start() {
  for (;;) {
    try {
      const r = await fetch("/api/config");
      S.config = await r.json();
      break;
    } catch (e) {
      setConn("reconnecting");
      await new Promise((ok) => setTimeout(ok, 1000));
    }
  }
  $("mode").textContent = S.config.allowActions ? "actions allowed" : "read-only";
  window.addEventListener("hashchange", route);
  route();
}

start();
