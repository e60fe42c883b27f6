// The admin dashboard (/admin).  The page is rendered by the server in one of three modes
// (body[data-mode]): "login" (scan or paste an admin code), "forbidden" (a guest or staff
// session) and "dashboard".  The session is the HttpOnly cookie: this script never sees a
// session JWT; every call sends this screen's key (Kiosk.headers: X-Kiosk-Key, kept in this
// origin's localStorage by the scan), without which the cookie counts for nothing.
// State-changing calls carry the page's CSRF token (X-CSRF-Token).
"use strict";
const $ = id => document.getElementById(id);
const MODE = document.body.dataset.mode;
const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
const msg = $("message");
const t = (key, vars) => Kiosk.t(key, vars);

// --- keys used with a computed part, written out so a test can find every one ------------
const ROLE = {guest: "admin.role.guest", staff: "admin.role.staff", admin: "admin.role.admin"};
const TOKEN_STATUS = {active: "admin.token.status.active", used: "admin.token.status.used",
                      revoked: "admin.token.status.revoked", expired: "admin.token.status.expired"};
const END_REASON = {logout: "admin.session.reason.logout", terminated_by_admin: "admin.session.reason.terminated_by_admin",
                    revoked: "admin.session.reason.revoked", expired: "admin.session.reason.expired",
                    replayed: "admin.session.reason.replayed", idle: "admin.session.reason.idle"};
const METHOD = {camera: "admin.session.method.camera", manual: "admin.session.method.manual"};
const REFUSED = {INVALID_TOKEN: "admin.refused.INVALID_TOKEN", TOKEN_EXPIRED: "admin.refused.TOKEN_EXPIRED",
                 TOKEN_REVOKED: "admin.refused.TOKEN_REVOKED", TOKEN_ALREADY_USED: "admin.refused.TOKEN_ALREADY_USED",
                 HOTEL_MISMATCH: "admin.refused.HOTEL_MISMATCH", VALIDATION_ERROR: "admin.refused.VALIDATION_ERROR",
                 RATE_LIMITED: "admin.refused.RATE_LIMITED", CLOCK_NOT_TRUSTED: "admin.refused.CLOCK_NOT_TRUSTED"};
const TIMELINE_KIND = {"scan": "admin.timeline.kind.scan", "workflow.started": "admin.timeline.kind.workflow",
                       "model.run": "admin.timeline.kind.modelRun", "model.actions": "admin.timeline.kind.modelActions",
                       "approval": "admin.timeline.kind.approval", "ticket": "admin.timeline.kind.ticket",
                       "ticket.created": "admin.timeline.kind.ticket", "ticket.duplicate": "admin.timeline.kind.duplicate",
                       "pms.change": "admin.timeline.kind.pms", "session.ended": "admin.timeline.kind.ended",
                       "session.expired": "admin.timeline.kind.expired",
                       "security.forbidden": "admin.timeline.kind.forbidden",
                       "security.rate_limited": "admin.timeline.kind.forbidden", "security.csrf": "admin.timeline.kind.forbidden",
                       "ticket.updated": "admin.timeline.kind.ticketUpdated", "task.updated": "admin.timeline.kind.taskUpdated",
                       "offer.accepted": "admin.timeline.kind.offer"};
const OUTBOX_KIND = {"token.issued": "admin.outbox.token.issued", "token.revoked": "admin.outbox.token.revoked",
                     "token.used": "admin.outbox.token.used", "session.opened": "admin.outbox.session.opened",
                     "session.ended": "admin.outbox.session.ended", "pms.update": "admin.outbox.pms.update",
                     "work_order.created": "admin.outbox.work_order.created",
                     "work_order.updated": "admin.outbox.work_order.updated",
                     "ticket.created": "admin.outbox.ticket.created", "ticket.updated": "admin.outbox.ticket.updated",
                     "task.created": "admin.outbox.task.created", "message.send": "admin.outbox.message.send"};
const ENTITY = {work_order: "admin.entity.work_order", ticket: "admin.entity.ticket", qr_token: "admin.entity.qr_token",
                session: "admin.entity.session", task: "admin.entity.task", reservation: "admin.entity.reservation",
                room: "admin.entity.room", pms_action: "admin.entity.pms_action"};
const SECURITY_KIND = {TOKEN_REPLAY: "admin.security.TOKEN_REPLAY"};
const ERRORS = {NETWORK: "admin.error.NETWORK", FORBIDDEN: "admin.error.FORBIDDEN", NOT_FOUND: "admin.error.NOT_FOUND",
                UNAVAILABLE: "admin.error.UNAVAILABLE", VALIDATION_ERROR: "admin.error.VALIDATION_ERROR",
                STORE_BUSY: "error.STORE_BUSY", RATE_LIMITED: "error.RATE_LIMITED",
                HOTEL_MISMATCH: "error.HOTEL_MISMATCH", INTERNAL_ERROR: "admin.error.INTERNAL_ERROR",
                UNAUTHORIZED: "admin.error.SESSION", SESSION_EXPIRED: "admin.error.SESSION"};
const label = (map, value) => (map[value] ? t(map[value]) : String(value || "—"));

// --- talking to the kiosk ------------------------------------------------------------------
async function call(method, params, body) {
  const headers = Kiosk.headers({Accept: "application/json"});
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
  let r;
  try {
    const {endpoint, ...query} = params;  // the route: /api/admin/<endpoint>, the rest its query
    r = await fetch("/api/admin/" + endpoint + "?" + new URLSearchParams(query), {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    return {ok: false, status: 0, code: "NETWORK"};
  }
  let data = {};
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (r.ok) return {ok: true, status: r.status, data};
  const err = data.error || {};
  let code = err.code || "INTERNAL_ERROR";
  if (code === "NOT_FOUND" && (err.details || {}).endpoints) code = "UNAVAILABLE";  // an older kiosk
  if (r.status === 401) sessionGone();
  return {ok: false, status: r.status, code, message: err.message};
}

function errorText(res) {
  return t(ERRORS[res.code] || "admin.error.INTERNAL_ERROR");
}

function sessionGone() {
  msg.replaceChildren(document.createTextNode(t("admin.session.gone") + " "),
                      button(t("admin.signin.again"), () => location.reload(), "secondary"));
  msg.className = "message error";
}

function say(key, kind, vars) {
  Kiosk.say(msg, key, kind, vars);
}

// --- small DOM helpers ------------------------------------------------------------------------
function el(name, attrs, ...children) {
  const e = document.createElement(name);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function button(text, onClick, cls, attrs) {
  const b = el("button", {type: "button", class: cls || null, ...(attrs || {})}, text);
  b.addEventListener("click", onClick);
  return b;
}

// A table that turns into labelled cards on a narrow screen (admin.css uses data-label).
function table(caption, columns, rows) {
  const tbl = el("table", {class: "data"});
  tbl.append(el("caption", {class: "visually-hidden"}, caption));
  const head = el("tr");
  for (const c of columns) head.append(el("th", {scope: "col"}, c));
  tbl.append(el("thead", {}, head));
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr", r.attrs || {});
    r.cells.forEach((cell, i) => {
      const td = el(i === 0 ? "th" : "td", {"data-label": columns[i], scope: i === 0 ? "row" : null});
      if (cell instanceof Node) td.append(cell); else td.textContent = cell === null || cell === undefined ? "—" : String(cell);
      tr.append(td);
    });
    body.append(tr);
  }
  tbl.append(body);
  return tbl;
}

function emptyState(key, vars) {
  return el("p", {class: "empty"}, t(key, vars));
}

// Where a list's data failed to load: say so, never "nothing here" (the panel's status line
// above has the reason and "Try again")
function failedState() {
  return el("p", {class: "empty failed"}, t("admin.list.failed"));
}

// --- people by name where known: token holders by token id and by user id -------------------
const names = {byJti: new Map(), byUser: new Map()};

function learnNames(rows) {
  for (const r of rows || []) {
    const name = r.personName || r.name;  // the property data's name (staff list, reservation) first
    if (!name) continue;
    if (r.jti) names.byJti.set(r.jti, name);
    if (r.userId) names.byUser.set(r.userId, name);
  }
}

// who a token or session row is: the name the kiosk knows, else the id
const whoOf = r => r.personName || r.name || r.userId;

// "Mia Keller (a-mia)" for a user id or an actor such as "admin:a-mia"; the id when unknown
function person(id) {
  if (typeof id !== "string" || !id) return id;
  const bare = id.replace(/^(admin|staff|guest):/, "");
  const name = names.byUser.get(bare);
  return name && name !== bare ? `${name} (${bare})` : id;
}

// a token's holder, for a token id (jti)
function holder(jti) {
  const name = names.byJti.get(jti);
  return name ? `${name} (${jti})` : jti;
}

// --- times, numbers, durations --------------------------------------------------------------
const locale = () => (Kiosk.lang === "de" ? "de-DE" : "en-GB");
const num = n => new Intl.NumberFormat(locale()).format(Number(n) || 0);
const pct = x => new Intl.NumberFormat(locale(), {style: "percent", maximumFractionDigits: 1}).format(Number(x) || 0);
const ms = n => t("admin.unit.ms", {n: num(Math.round(Number(n) || 0))});

// "1 Dec 2026 14:05" (en), "1. Dez. 2026 14:05" (de), in the kiosk's local time zone
function dateTime(value) {
  const d = value instanceof Date ? value : new Date(value);
  if (isNaN(d)) return "—";
  return dateOnly(d) + " " + hourMinute(d);
}

function dateOnly(d) {
  return new Intl.DateTimeFormat(locale(), {day: "numeric", month: "short", year: "numeric"}).format(d);
}

function dayMonth(d, timeZone) {
  return new Intl.DateTimeFormat(locale(), {day: "numeric", month: "short", timeZone}).format(d);
}

function clock(d) {
  return new Intl.DateTimeFormat(locale(), {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false}).format(d);
}

function hourMinute(d) {
  return new Intl.DateTimeFormat(locale(), {hour: "2-digit", minute: "2-digit", hour12: false}).format(d);
}

function duration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return t("admin.dur.s", {n: s});
  if (s < 3600) return t("admin.dur.min", {n: Math.round(s / 60)});
  if (s < 86400 * 2) return t("admin.dur.h", {n: Math.round(s / 3600)});
  return t("admin.dur.d", {n: Math.round(s / 86400)});
}

// "12 min ago", "in 3 h"; older than a week (or further ahead): the date
function relative(value) {
  const d = new Date(value);
  if (isNaN(d)) return "—";
  const secs = (d.getTime() - Date.now()) / 1000;
  const a = Math.abs(secs);
  if (a < 60) return t("admin.time.now");
  if (a >= 7 * 86400) return dateTime(d);
  const past = secs < 0;
  let key, n;
  if (a < 3600) { key = past ? "admin.time.ago.min" : "admin.time.in.min"; n = Math.round(a / 60); }
  else if (a < 86400) { key = past ? "admin.time.ago.h" : "admin.time.in.h"; n = Math.round(a / 3600); }
  else { key = past ? "admin.time.ago.d" : "admin.time.in.d"; n = Math.round(a / 86400); }
  return t(key, {n});
}

// <time> with the human form shown and the exact date on hover
function when(value) {
  if (!value) return el("span", {}, "—");
  return el("time", {datetime: value, title: dateTime(value)}, relative(value));
}

// --- panels: loading, error with retry, ready ----------------------------------------------
const panels = {};

function panelStatus(panel) {
  return panel.querySelector(".panel-status");
}

// Runs a loader for a panel: "Loading…" while it runs, a retryable message if it fails.
// The loader returns null when all went well, or the failed call's result.
async function run(panel, loader, status) {
  const st = status || panelStatus(panel);
  panel.dataset.state = "loading";
  panel.setAttribute("aria-busy", "true");
  st.className = "panel-status loading";
  st.replaceChildren(el("span", {class: "spinner", "aria-hidden": "true"}), t("admin.loading"));
  let failed;
  try {
    failed = await loader();
  } catch (e) {
    console.error(e);  // eslint-disable-line no-console
    failed = {code: "INTERNAL_ERROR"};
  }
  panel.removeAttribute("aria-busy");
  if (!failed) {
    st.className = "panel-status";
    st.replaceChildren();
    panel.dataset.state = "ready";
    return true;
  }
  panel.dataset.state = "error";
  st.className = "panel-status error";
  st.replaceChildren(el("span", {}, errorText(failed) + " "),
                     button(t("admin.retry"), () => run(panel, loader, st), "secondary"));
  return false;
}

// --- tabs (WAI-ARIA tabs pattern, automatic activation) -------------------------------------
const TABS = ["overview", "tokens", "sessions", "analytics", "sync", "export"];

function selectTab(name, focus) {
  if (!TABS.includes(name)) name = "overview";
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    if (on && focus) tab.focus();
    $("panel-" + tab.dataset.tab).hidden = !on;
  }
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  const p = panels[name];
  if (p && p.load) p.load();
}

function initTabs() {
  const list = $("tabs");
  const tabs = [...list.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) tab.addEventListener("click", () => selectTab(tab.dataset.tab, true));
  list.addEventListener("keydown", ev => {
    const i = tabs.indexOf(document.activeElement);
    if (i < 0) return;
    let j = null;
    if (ev.key === "ArrowRight") j = (i + 1) % tabs.length;
    else if (ev.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = tabs.length - 1;
    if (j === null) return;
    ev.preventDefault();
    selectTab(tabs[j].dataset.tab, true);
  });
}

// --- charts -----------------------------------------------------------------------------------
function chart(id, spec) {
  Charts.render($(id), {tableLabel: t("admin.chart.table"), empty: t("admin.chart.empty"), ...spec});
}

// A series' time stamp as an axis label, by the period's bucket size.
// A time series' axis: short labels, each bucket in full (tooltips, the table) and, for
// hours, the date under the first hour of each day.  Hours are local; days are the
// kiosk's UTC days, so named as such.
function timeAxis(points, bucket) {
  const dates = points.map(p => new Date(p.t));
  if (bucket === "hour") {
    return {categories: dates.map(hourMinute), titles: dates.map(dateTime),
            groups: dates.map((d, i) => (i === 0 || d.getHours() === 0 ? dayMonth(d) : null))};
  }
  const full = new Intl.DateTimeFormat(locale(), {weekday: "short", day: "numeric", month: "short", year: "numeric",
                                                  timeZone: "UTC"});
  return {categories: dates.map(d => dayMonth(d, "UTC")), titles: dates.map(d => full.format(d)), groups: null};
}

function bucketAxis(bucket) {
  return t(bucket === "hour" ? "admin.axis.hour" : "admin.axis.day");
}

function refusedTotal(scans) {
  if (scans && typeof scans.refusedTotal === "number") return scans.refusedTotal;
  return Object.values((scans || {}).refused || {}).reduce((a, b) => a + (Number(b) || 0), 0);
}

// --- Overview ---------------------------------------------------------------------------------
const overview = {data: null, sync: null};

function card(title, value, sub, cls, attrs) {
  return el("div", {class: "stat " + (cls || ""), ...(attrs || {})},
            el("h3", {}, title), el("p", {class: "value"}, value), sub ? el("p", {class: "sub"}, sub) : null);
}

function cloudLine(target, s) {
  if (!s) { target.replaceChildren(); return; }
  const text = s.lastHeardAt ? t("admin.cloud.heard", {when: relative(s.lastHeardAt)}) : t("admin.cloud.never");
  if (s.credential === "refused") {  // nothing gets through until the kiosk is linked again
    target.className = "cloud bad";
    target.setAttribute("role", "alert");
    target.replaceChildren(el("span", {class: "dot", "aria-hidden": "true"}),
                           el("span", {}, t("admin.cloud.refused") + " " + t("admin.cloud.refused.do") + " " + text));
    target.lastChild.title = s.credentialError || "";
    return;
  }
  target.removeAttribute("role");
  target.className = "cloud " + (s.stale ? "warn" : "good");
  target.replaceChildren(el("span", {class: "dot", "aria-hidden": "true"}),
                         el("span", {}, text + (s.stale ? " " + t("admin.cloud.stale") : "")));
  if (s.lastHeardAt) target.lastChild.title = dateTime(s.lastHeardAt);
}

async function loadOverview() {
  const p = $("panel-overview");
  await run(p, async () => {
    const [a, s] = await Promise.all([call("GET", {endpoint: "analytics", period: "day"}),
                                      call("GET", {endpoint: "sync"})]);
    overview.sync = s.ok ? s.data : null;
    overview.data = a.ok ? a.data : null;
    renderOverview();
    return !a.ok ? a : (!s.ok ? s : null);
  });
}

function renderOverview() {
  cloudLine($("ov-cloud"), overview.sync);
  const a = overview.data;
  const cards = $("ov-cards");
  if (!a) {
    cards.replaceChildren();
    for (const id of ["chart-ov-scans", "chart-ov-models", "chart-ov-sync"]) $(id).replaceChildren();
    return;
  }
  const scans = a.scans || {}, sess = a.sessions || {}, sync = a.sync || {}, actions = a.actions || {};
  const models = a.models || [];
  const refused = refusedTotal(scans);
  const runs = models.reduce((x, m) => x + (m.runs || 0), 0);
  const errors = models.reduce((x, m) => x + (m.error || 0), 0);
  const timeouts = models.reduce((x, m) => x + (m.timeout || 0), 0);
  cards.replaceChildren(
    card(t("admin.card.scans"), num(scans.total), t("admin.card.scans.sub", {ok: num(scans.success), refused: num(refused)})),
    card(t("admin.card.active"), num(sess.activeNow), t("admin.card.active.sub", {n: num(sess.total)})),
    card(t("admin.card.runs"), num(runs), t("admin.card.runs.sub", {errors: num(errors), timeouts: num(timeouts)}),
         errors + timeouts ? "warn" : ""),
    // a refused credential holds everything back: the backlog is red and says why
    (refused => card(t("admin.card.pending"), num(sync.pending),
         refused ? t("admin.card.pending.refused") :
         sync.pending ? t("admin.card.pending.sub", {age: duration(sync.oldestPendingAgeSeconds)}) : t("admin.card.pending.none"),
         refused ? "bad" : ""))((overview.sync || {}).credential === "refused"),
    card(t("admin.card.dead"), num(sync.dead), sync.dead ? t("admin.card.dead.sub") : t("admin.card.dead.none"),
         sync.dead ? "bad" : ""),
    card(t("admin.card.approvals"), num(actions.approvalsPending),
         t(actions.approvalsPending ? "admin.card.approvals.waiting" : "admin.card.approvals.none"),
         actions.approvalsPending ? "warn" : ""),
  );
  const bucket = (a.period || {}).bucket || "hour";
  const series = (a.series || {}).scans || [];
  chart("chart-ov-scans", {
    kind: "bar", stacked: true, title: t("admin.chart.scansToday"),
    summary: t("admin.chart.scans.summary", {total: num(scans.total), ok: num(scans.success), refused: num(refused)}),
    xLabel: bucketAxis(bucket), yLabel: t("admin.axis.scans"), format: num,
    ...timeAxis(series, bucket),
    series: [{label: t("admin.series.accepted"), values: series.map(p => p.success || 0), cls: "s-ok"},
             {label: t("admin.series.refused"), values: series.map(p => p.refused || 0), cls: "s-bad"}],
  });
  const used = models.filter(m => m.runs).sort((x, y) => y.runs - x.runs);
  chart("chart-ov-models", {
    kind: "hbar", stacked: true, title: t("admin.chart.models"), empty: t("admin.chart.models.empty"),
    summary: t("admin.chart.models.summary", {runs: num(runs), n: used.length, errors: num(errors + timeouts)}),
    xLabel: t("admin.axis.runs"), yLabel: t("admin.axis.model"), format: num,
    categories: used.map(m => m.modelId),
    series: [{label: t("admin.series.success"), values: used.map(m => m.success || 0), cls: "s-ok"},
             {label: t("admin.series.error"), values: used.map(m => m.error || 0), cls: "s-bad"},
             {label: t("admin.series.timeout"), values: used.map(m => m.timeout || 0), cls: "s-warn"},
             // runs answered in a shape the kiosk refused are runs too: without them a period of only
             // such runs would read "No model ran"
             ...(used.some(m => m.invalid) ? [{label: t("admin.series.invalid"), values: used.map(m => m.invalid || 0),
                                               cls: "s-muted"}] : [])],
  });
  const syncRows = [[t("admin.sync.row.pending"), sync.pending], [t("admin.sync.row.dead"), sync.dead],
                    [t("admin.sync.row.conflicts"), sync.conflicts], [t("admin.sync.row.security"), sync.securityEvents]];
  chart("chart-ov-sync", {
    kind: "hbar", title: t("admin.chart.sync"),
    summary: syncRows.map(([k, v]) => `${k}: ${num(v)}`).join(", "),
    xLabel: t("admin.axis.entries"), yLabel: t("admin.axis.what"), format: num,
    empty: t("admin.chart.sync.empty"),
    categories: syncRows.map(r => r[0]),
    series: [{label: t("admin.axis.entries"), values: syncRows.map(r => Number(r[1]) || 0), cls: "s-info"}],
  });
}

// --- Tokens -------------------------------------------------------------------------------------
const tokensState = {rows: null};

async function loadTokens() {
  await run($("panel-tokens"), async () => {
    const params = {endpoint: "tokens", limit: 500};
    if ($("token-status").value) params.status = $("token-status").value;
    if ($("token-role").value) params.role = $("token-role").value;
    const r = await call("GET", params);
    if (!r.ok) {
      tokensState.rows = null;
      $("token-list").replaceChildren(failedState());
      return r;
    }
    tokensState.rows = r.data.tokens;
    learnNames(r.data.tokens);
    renderTokens();
    return null;
  });
}

// "Ada Lovelace" over "Room 412 · D02379": the name the kiosk knows (staff list, reservation,
// else the code's name), the guest's room, and the id for support (also the title)
function personOf(row, badge) {
  const given = row.personName || row.name;
  const name = given && given !== row.userId ? given : null;
  const room = row.roomNumber ? t("admin.person.room", {room: row.roomNumber}) : null;
  const title = row.userId ? {title: row.userId, "data-user": row.userId} : {};
  if (!name) {
    return el("span", title, el("span", {class: "name"}, row.userId || "—", badge),
              ...(room ? [el("span", {class: "sub"}, room)] : []));
  }
  return el("span", title, el("span", {class: "name"}, name, badge),
            el("span", {class: "sub"}, room ? `${room} · ${row.userId}` : row.userId));
}

function renderTokens() {
  const host = $("token-list");
  const rows = tokensState.rows;
  if (!rows) return;
  if (!rows.length) {
    const filtered = $("token-status").value || $("token-role").value;
    host.replaceChildren(emptyState(filtered ? "admin.tokens.empty.filtered" : "admin.tokens.empty"));
    return;
  }
  const cols = [t("admin.col.person"), t("admin.col.role"), t("admin.col.status"), t("admin.col.issued"),
                t("admin.col.expires"), t("admin.col.actions")];
  host.replaceChildren(table(t("admin.tab.tokens"), cols, rows.map(r => ({
    attrs: {"data-jti": r.jti},
    cells: [personOf(r), label(ROLE, r.role) + (r.reusable ? " · " + t("admin.tokens.reusable.short") : ""),
            el("span", {class: "pill " + r.status}, label(TOKEN_STATUS, r.status)),
            when(r.issuedAt), expiresCell(r),
            r.status === "active"
              ? el("div", {class: "actions-cell"},
                   button(t("admin.tokens.revoke"), () => confirmRevoke(r), "danger small",
                          {"aria-label": t("admin.tokens.revoke.label", {who: whoOf(r)})}))
              : el("span", {class: "muted none"}, "—")],
  }))));
}

function expiresCell(r) {
  if (r.status === "revoked") return el("span", {}, t("admin.tokens.revokedAt", {when: relative(r.revokedAt)}));
  if (r.status === "used") return el("span", {}, t("admin.tokens.usedAt", {when: relative(r.usedAt)}));
  const key = r.status === "expired" ? "admin.tokens.expiredAt" : "admin.tokens.until";
  return el("span", {title: dateTime(r.expiresAt)}, t(key, {when: relative(r.expiresAt)}));
}

function confirmRevoke(row) {
  confirmAction({
    title: t("admin.tokens.revoke.title"),
    text: t("admin.tokens.revoke.text", {who: whoOf(row)}),
    ok: t("admin.tokens.revoke"),
    action: async () => {
      const r = await call("POST", {endpoint: `tokens/${encodeURIComponent(row.jti)}/revoke`});
      if (!r.ok) return r;
      say("admin.tokens.revoked", "ok", {who: whoOf(row)});
      await loadTokens();
      return null;
    },
  });
}

// A confirmation dialog; the action runs when confirmed and may fail (message in the dialog).
function confirmAction({title, text, ok, action}) {
  const dlg = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  const okButton = $("confirm-ok");
  okButton.textContent = ok;
  okButton.disabled = false;
  okButton.onclick = null;
  const fresh = okButton.cloneNode(true);  // drop the previous action's listener
  okButton.replaceWith(fresh);
  fresh.addEventListener("click", async () => {
    fresh.disabled = true;
    const failed = await action();
    fresh.disabled = false;
    if (failed) {
      $("confirm-text").textContent = text + " — " + errorText(failed);
      return;
    }
    dlg.close();
  });
  dlg.showModal();
  $("confirm-cancel").focus();
}

function openTokenDialog() {
  const dlg = $("token-dialog");
  $("token-form").hidden = false;
  $("token-created").hidden = true;
  $("token-qr").removeAttribute("data-drawn");
  $("token-form").reset();
  Kiosk.say($("token-dialog-message"), "");
  dlg.showModal();
  $("new-role").focus();
}

async function createToken(ev) {
  ev.preventDefault();
  const body = {role: $("new-role").value, expiresIn: $("new-ttl").value, reusable: $("new-reusable").checked};
  const name = $("new-name").value.trim(), user = $("new-user").value.trim();
  if (name) body.name = name;
  if (user) body.userId = user;
  if (body.role === "guest") {  // a guest code names a reservation, or is a walk-in's on purpose
    body.walkIn = $("new-walkin").checked;
    if (!user && !body.walkIn) return Kiosk.say($("token-dialog-message"), "admin.tokens.needsStay", "error");
  }
  const go = $("token-create");
  go.disabled = true;
  Kiosk.say($("token-dialog-message"), "admin.tokens.creating");
  const r = await call("POST", {endpoint: "tokens"}, body);
  go.disabled = false;
  if (!r.ok) {
    $("token-dialog-message").textContent = errorText(r);
    $("token-dialog-message").className = "message error";
    return;
  }
  const who = name || r.data.userId;
  created = {who, png: r.data.qr.png};
  await drawQr(r.data.qr.png);
  $("token-qr").setAttribute("aria-label", t("admin.tokens.qr.alt", {who, role: label(ROLE, r.data.role)}));
  $("token-caption").replaceChildren(el("strong", {}, who), el("br"),
                                     t("admin.tokens.caption", {role: label(ROLE, r.data.role), until: dateTime(r.data.expiresAt)}));
  $("token-text").value = r.data.token;
  Kiosk.say($("token-copy-message"), "");
  $("token-form").hidden = true;
  $("token-created").hidden = false;
  $("token-copy").focus();
  loadTokens();
}

let created = null;  // the token just created: {who, png}

// The QR code arrives as a PNG data URI.  It is decoded here and drawn on a canvas, so
// the page needs no `img-src data:` in its Content-Security-Policy.
function pngBlob(dataUri) {
  const bytes = atob(dataUri.split(",")[1]);
  const buf = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) buf[i] = bytes.charCodeAt(i);
  return new Blob([buf], {type: "image/png"});
}

async function drawQr(dataUri) {
  const canvas = $("token-qr");
  const bitmap = await createImageBitmap(pngBlob(dataUri));
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(bitmap, 0, 0);
  canvas.dataset.drawn = "yes";
}

function saveQr() {
  if (!created) return;
  const url = URL.createObjectURL(pngBlob(created.png));
  const a = el("a", {href: url, download: "qr-" + created.who.replace(/[^\w.-]+/g, "-") + ".png", class: "visually-hidden"}, "png");
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function copyToken() {
  const text = $("token-text").value;
  let done = false;
  try {
    await navigator.clipboard.writeText(text);
    done = true;
  } catch (e) {
    $("token-text").select();
    try { done = document.execCommand("copy"); } catch (e2) { done = false; }
  }
  Kiosk.say($("token-copy-message"), done ? "admin.tokens.copied" : "admin.tokens.copy.failed", done ? "ok" : "error");
}

// --- Sessions ------------------------------------------------------------------------------------
const sessionsState = {rows: null};

function sessionState(s) {
  if (s.status) return s.status;  // the kiosk says (active | ended | expired)
  if (s.endedAt) return "ended";
  if (Date.parse(s.expiresAt) <= Date.now()) return "expired";
  return "active";
}

async function loadSessions() {
  await run($("panel-sessions"), async () => {
    const filter = $("session-filter").value;
    const r = await call("GET", {endpoint: "sessions", status: filter, limit: 500});
    if (!r.ok) {  // not the earlier list (or its empty text) under the new filter
      sessionsState.rows = null;
      $("session-list").replaceChildren(failedState());
      return r;
    }
    sessionsState.rows = r.data.sessions;
    learnNames(r.data.sessions);
    renderSessions();
    return null;
  });
}

function renderSessions() {
  const rows = sessionsState.rows;
  if (!rows) return;
  const host = $("session-list");
  const filter = $("session-filter").value;
  if (!rows.length) {
    host.replaceChildren(emptyState(filter === "active" ? "admin.sessions.empty.active"
      : filter === "expired" ? "admin.sessions.empty.expired" : "admin.sessions.empty"));
    return;
  }
  const me = document.body.dataset.session;  // the admin's own session: log out instead of ending it
  const cols = [t("admin.col.person"), t("admin.col.role"), t("admin.col.method"), t("admin.col.started"),
                t("admin.col.state"), t("admin.col.actions")];
  host.replaceChildren(table(t("admin.tab.sessions"), cols, rows.map(s => {
    const state = sessionState(s);
    const who = whoOf(s);
    const stateText = state === "ended"
      ? t("admin.session.endedWhen", {when: relative(s.endedAt), why: label(END_REASON, s.endReason)})
      : state === "expired" ? t("admin.session.expiredWhen", {when: relative(s.expiresAt)})
        : t("admin.session.activeUntil", {when: relative(s.expiresAt)});
    const actions = el("div", {class: "actions-cell"},
      button(t("admin.sessions.timeline"), () => openTimeline(s), "secondary small",
             {"aria-label": t("admin.sessions.timeline.label", {who})}));
    if (state === "active" && s.sessionId !== me) {
      actions.append(button(t("admin.sessions.end"), () => confirmTerminate(s), "danger small",
                            {"aria-label": t("admin.sessions.end.label", {who})}));
    }
    return {attrs: {"data-session": s.sessionId},
            cells: [personOf(s, s.sessionId === me ? el("span", {class: "pill you"}, t("admin.sessions.you")) : null),
                    label(ROLE, s.role), label(METHOD, s.scanMethod), when(s.createdAt),
                    el("span", {class: "pill " + state}, stateText), actions]};
  })));
}

function confirmTerminate(s) {
  const who = whoOf(s);
  confirmAction({
    title: t("admin.sessions.end.title"),
    text: t("admin.sessions.end.text", {who}),
    ok: t("admin.sessions.end"),
    action: async () => {
      const r = await call("DELETE", {endpoint: `sessions/${encodeURIComponent(s.sessionId)}`});
      if (!r.ok) return r;
      say("admin.sessions.ended", "ok", {who});
      await loadSessions();
      return null;
    },
  });
}

async function openTimeline(s) {
  const dlg = $("session-dialog");
  const who = whoOf(s);
  $("session-dialog-title").textContent = t("admin.timeline.of", {who});
  $("session-facts").replaceChildren();
  $("session-timeline").replaceChildren();
  dlg.dataset.session = s.sessionId;
  dlg.showModal();
  $("session-close").focus();
  await run(dlg, async () => {
    const r = await call("GET", {endpoint: `sessions/${encodeURIComponent(s.sessionId)}`});
    if (!r.ok) return r;
    renderTimeline({...s, ...(r.data.session || {})}, r.data.timeline || [], r.data.workflow);
    return null;
  }, dlg.querySelector(".panel-status"));
}

function fact(term, value) {
  return [el("dt", {}, term), el("dd", {}, value)];
}

const ACTION_WORD = {CREATE_TASK: "admin.timeline.action.CREATE_TASK", UPDATE_PMS: "admin.timeline.action.UPDATE_PMS",
                     SEND_MESSAGE: "admin.timeline.action.SEND_MESSAGE",
                     SCHEDULE_MAINTENANCE: "admin.timeline.action.SCHEDULE_MAINTENANCE",
                     OUTLIER_CHARGE: "admin.timeline.action.OUTLIER_CHARGE"};

// "{who} accepted {what}" with its words, in one pass: a guest's words that look like a
// placeholder ("{who}") or a replacement pattern ("$&") stay as they are
function fill(key, vars) {
  const text = (Kiosk.strings[Kiosk.lang] || {})[key] || (Kiosk.strings.en || {})[key] || key;
  return text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? vars[k] : m));
}

// A timeline entry as a sentence in the screen's language (its textKey and params from the
// kiosk); the kiosk's English line when this screen does not know the key
function sentence(it) {
  if (!it.textKey || !(Kiosk.strings.en || {})[it.textKey]) return it.summary || "";
  const p = it.params || {};
  const vars = {};
  for (const [k, v] of Object.entries(p)) {
    if (k === "ms") vars.ms = ms(v);
    else if (k === "entity") vars.entity = label(ENTITY, v);
    else if (k === "reason") vars.reason = label(END_REASON, v);
    else if (k === "status") vars.status = (Kiosk.strings.en || {})["status." + v] ? t("status." + v) : String(v || "—");
    else if (k === "actions") vars.actions = (v || []).map(a => label(ACTION_WORD, a)).join(", ") || "—";
    else if (Array.isArray(v)) vars[k] = v.join(", ") || "—";
    else vars[k] = v === null || v === undefined || v === "" ? "—" : String(v);
  }
  if (p.what !== undefined) vars.what = fill(p.room ? "admin.timeline.what.room" : "admin.timeline.what", {what: p.what, room: p.room});
  return fill(it.textKey, vars);
}

function renderTimeline(s, items, workflow) {
  $("session-workflow").textContent = workflow
    ? t("admin.timeline.workflow", {name: label(ROLE, workflow.workflow), done: workflow.completedSteps, total: workflow.totalSteps,
                                     models: (workflow.triggeredAIModels || []).join(", ") || "—"})
    : "";
  const state = sessionState(s);
  $("session-facts").replaceChildren(
    ...fact(t("admin.col.person"), personOf(s)),
    ...fact(t("admin.col.role"), label(ROLE, s.role)),
    ...fact(t("admin.col.method"), label(METHOD, s.scanMethod)),
    ...fact(t("admin.col.started"), dateTime(s.createdAt)),
    ...fact(t("admin.col.state"), state === "ended"
      ? t("admin.session.endedAt", {when: dateTime(s.endedAt), why: label(END_REASON, s.endReason)})
      : state === "expired" ? t("admin.session.expiredAt", {when: dateTime(s.expiresAt)})
        : t("admin.session.activeUntil", {when: dateTime(s.expiresAt)})),
  );
  const ol = $("session-timeline");
  if (!items.length) {
    ol.replaceChildren(el("li", {class: "empty"}, t("admin.timeline.empty")));
    return;
  }
  let day = null;
  ol.replaceChildren(...items.map(it => {
    const d = new Date(it.at);
    const today = dayMonth(d);
    // the time to the second (a session's steps are seconds apart); the date where it changes
    const stamp = (today !== day ? dateOnly(d) + " " : "") + clock(d);
    day = today;
    const li = el("li", {"data-kind": it.kind},
      el("time", {datetime: it.at, title: dateTime(d) + " · " + relative(it.at)}, stamp),
      el("span", {class: "kind"}, label(TIMELINE_KIND, it.kind)),
      el("span", {class: "summary"}, sentence(it)));
    // for support: the raw facts (ids, jti, workflowId, …) and the kiosk's own line, folded away
    const details = it.details && typeof it.details === "object"
      ? Object.entries(it.details).filter(([, v]) => v !== null && v !== undefined && v !== "") : [];
    if (details.length && it.summary) details.push(["summary", it.summary]);
    if (details.length) {
      const dl = el("dl", {class: "facts small"});
      for (const [k, v] of details) {
        const text = ["by", "actor"].includes(k) ? person(v) : typeof v === "object" ? JSON.stringify(v) : String(v);
        dl.append(el("dt", {}, k), el("dd", {}, text));
      }
      li.append(el("details", {}, el("summary", {}, t("admin.timeline.details")), dl));
    }
    return li;
  }));
}

// --- Analytics ------------------------------------------------------------------------------------
const analytics = {data: null};

function isoDate(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

// A local date's start and the start of the day after another, as RFC 3339 instants.
function rangeOf(fromDate, toDate) {
  const [fy, fm, fd] = fromDate.split("-").map(Number);
  const [ty, tm, td] = toDate.split("-").map(Number);
  return {from: new Date(fy, fm - 1, fd).toISOString(), to: new Date(new Date(ty, tm - 1, td + 1).getTime() - 1).toISOString()};
}

function periodParams() {
  const p = document.querySelector('input[name="period"]:checked').value;
  if (p !== "custom") return {period: p};
  return rangeOf($("period-from").value, $("period-to").value);
}

async function loadAnalytics() {
  const custom = document.querySelector('input[name="period"]:checked').value === "custom";
  $("custom-range").hidden = !custom;
  if (custom && !($("period-from").value && $("period-to").value)) return;
  if (custom && $("period-from").value > $("period-to").value) {
    say("admin.period.invalid", "error");
    return;
  }
  await run($("panel-analytics"), async () => {
    const r = await call("GET", {endpoint: "analytics", ...periodParams()});
    if (!r.ok) return r;
    analytics.data = r.data;
    renderAnalytics();
    return null;
  });
}

// --- the manager's figures: requests, how fast they were taken and done, offers, refused scans ------
const REQTYPE = {maintenance: "admin.reqtype.maintenance", housekeeping: "admin.reqtype.housekeeping",
                 guest_request: "admin.reqtype.guest_request", noise: "admin.reqtype.noise",
                 billing: "admin.reqtype.billing", it: "admin.reqtype.it", security: "admin.reqtype.security"};
const REFUSED_WHY = {...REFUSED, UNREADABLE: "admin.refused.UNREADABLE"};

// 7.5 -> "7.5 min", 150 -> "2.5 h"; null -> "—"
function minutes(m) {
  if (m === null || m === undefined) return "—";
  const one = n => new Intl.NumberFormat(locale(), {maximumFractionDigits: 1}).format(n);
  return m < 120 ? t("admin.unit.min", {n: one(m)}) : t("admin.unit.h", {n: one(m / 60)});
}

// {"EUR": 65.5, "CHF": 10} -> "€65.50 + CHF 10.00"
function money(revenue) {
  const parts = Object.entries(revenue || {}).map(([cur, v]) => {
    try { return new Intl.NumberFormat(locale(), {style: "currency", currency: cur}).format(v); }
    catch (e) { return `${num(v)} ${cur}`; }
  });
  return parts.length ? parts.join(" + ") : new Intl.NumberFormat(locale(), {style: "currency", currency: "EUR"}).format(0);
}

function renderFigures(a) {
  const req = a.requests, off = a.offersTaken, ref = a.refusedScans;
  const box = $("an-figures").closest(".manager");
  box.hidden = !req;  // an older kiosk without these figures: nothing false shown
  if (!req) return;
  const types = Object.entries(req.byType || {});
  const top = types[0];
  $("an-figures").replaceChildren(
    card(t("admin.fig.requests"), num(req.total),
         top ? t("admin.fig.requests.top", {type: label(REQTYPE, top[0]), n: num(top[1])}) : t("admin.fig.requests.none"),
         "", {"data-figure": "requests"}),
    card(t("admin.fig.accept"), minutes(req.medianMinutesToAccept),
         req.accepted ? t("admin.fig.accept.sub", {n: num(req.accepted)}) :
           t(req.total ? "admin.fig.accept.none" : "admin.fig.requests.none"), "", {"data-figure": "accept"}),
    card(t("admin.fig.done"), minutes(req.medianMinutesToDone),
         req.done ? t("admin.fig.done.sub", {n: num(req.done)}) :
           t(req.total ? "admin.fig.done.none" : "admin.fig.requests.none"), "", {"data-figure": "done"}),
    card(t("admin.fig.revenue"), money((off || {}).revenue),
         off && off.taken ? t("admin.fig.revenue.sub", {n: num(off.taken)}) : t("admin.fig.revenue.none"),
         "", {"data-figure": "revenue"}),
    card(t("admin.fig.refused"), num((ref || {}).total),
         ref && ref.total ? t("admin.fig.refused.sub", {n: num(ref.unreadable), camera: num(ref.unreadableByCamera)})
                          : t("admin.fig.refused.none"),
         ref && ref.unreadable ? "warn" : "", {"data-figure": "refused"}),
  );
  chart("chart-an-requests", {
    kind: "hbar", title: t("admin.chart.requests"), empty: t("admin.fig.requests.none"),
    summary: types.map(([k, n]) => `${label(REQTYPE, k)}: ${num(n)}`).join(", "),
    xLabel: t("admin.axis.requests"), yLabel: t("admin.axis.reqtype"), format: num,
    categories: types.map(([k]) => label(REQTYPE, k)),
    series: [{label: t("admin.axis.requests"), values: types.map(([, n]) => n), cls: "s-info"}],
  });
  const timed = (req.types || []).filter(x => x.medianMinutesToAccept !== null || x.medianMinutesToDone !== null);
  chart("chart-an-times", {
    kind: "hbar", title: t("admin.chart.times"), empty: t("admin.chart.times.empty"),
    summary: timed.map(x => `${label(REQTYPE, x.type)}: ${minutes(x.medianMinutesToAccept)} / ${minutes(x.medianMinutesToDone)}`).join(", "),
    xLabel: t("admin.axis.minutes"), yLabel: t("admin.axis.reqtype"),
    format: v => new Intl.NumberFormat(locale(), {maximumFractionDigits: 1}).format(v),
    categories: timed.map(x => label(REQTYPE, x.type)),
    series: [{label: t("admin.series.toAccept"), values: timed.map(x => x.medianMinutesToAccept || 0), cls: "s-info"},
             {label: t("admin.series.toDone"), values: timed.map(x => x.medianMinutesToDone || 0), cls: "s-ok"}],
  });
}

function renderAnalytics() {
  const a = analytics.data;
  if (!a) return;
  const period = a.period || {};
  const bucket = period.bucket || "day";
  if (period.from && period.to) {
    $("an-range").textContent = t("admin.period.showing", {from: dateTime(period.from), to: dateTime(period.to)});
  }
  renderFigures(a);
  const scans = a.scans || {}, sess = a.sessions || {}, actions = a.actions || {};
  const models = (a.models || []).slice().sort((x, y) => (y.runs || 0) - (x.runs || 0));
  const refused = refusedTotal(scans);
  const runs = models.reduce((x, m) => x + (m.runs || 0), 0);
  const failed = models.reduce((x, m) => x + (m.error || 0) + (m.timeout || 0), 0);
  $("an-cards").replaceChildren(
    card(t("admin.card.scans.period"), num(scans.total),
         scans.total ? t("admin.card.rate", {rate: pct((scans.success || 0) / scans.total)}) : t("admin.card.noscans")),
    card(t("admin.card.sessions.period"), num(sess.total),
         Object.entries(sess.byRole || {}).filter(([, n]) => n).map(([r, n]) => `${label(ROLE, r)} ${num(n)}`).join(" · ") || null),
    card(t("admin.card.runs"), num(runs), runs ? t("admin.card.errorRate", {rate: pct(failed / runs)}) : t("admin.card.noruns"),
         failed ? "warn" : ""),
    card(t("admin.card.actions"), num((actions.tasksCreated || 0) + (actions.pmsUpdatesQueued || 0)),
         t("admin.card.approvals.sub", {tasks: num(actions.tasksCreated), pms: num(actions.pmsUpdatesQueued)})),
  );
  const ss = (a.series || {}).scans || [];
  chart("chart-an-scans", {
    kind: "bar", stacked: true, title: t(bucket === "hour" ? "admin.chart.scansHour" : "admin.chart.scansDay"),
    summary: t("admin.chart.scans.summary", {total: num(scans.total), ok: num(scans.success), refused: num(refused)}),
    xLabel: bucketAxis(bucket), yLabel: t("admin.axis.scans"), format: num,
    ...timeAxis(ss, bucket),
    series: [{label: t("admin.series.accepted"), values: ss.map(p => p.success || 0), cls: "s-ok"},
             {label: t("admin.series.refused"), values: ss.map(p => p.refused || 0), cls: "s-bad"}],
  });
  const ms_ = (a.series || {}).models || [];
  chart("chart-an-runs", {
    kind: "line", title: t("admin.chart.runs"), empty: t("admin.chart.models.empty"),
    summary: t("admin.chart.runs.summary", {runs: num(runs), errors: num(failed)}),
    xLabel: bucketAxis(bucket), yLabel: t("admin.axis.runs"), format: num,
    ...timeAxis(ms_, bucket),
    series: [{label: t("admin.series.runs"), values: ms_.map(p => p.runs || 0), cls: "s-info"},
             {label: t("admin.series.errors"), values: ms_.map(p => p.errors || 0), cls: "s-bad"}],
  });
  const roles = Object.entries(sess.byRole || {});
  chart("chart-an-roles", {
    kind: "hbar", title: t("admin.chart.roles"),
    summary: roles.map(([r, n]) => `${label(ROLE, r)}: ${num(n)}`).join(", "),
    xLabel: t("admin.axis.sessions"), yLabel: t("admin.col.role"), format: num,
    categories: roles.map(([r]) => label(ROLE, r)),
    series: [{label: t("admin.axis.sessions"), values: roles.map(([, n]) => n), cls: "s-info"}],
  });
  const timed = models.filter(m => m.runs);
  chart("chart-an-latency", {
    kind: "hbar", title: t("admin.chart.latency"),
    // runs whose durations were all 0 ms are not "no model ran"
    empty: t(timed.length ? "admin.chart.latency.zero" : "admin.chart.models.empty"),
    summary: timed.map(m => `${m.modelId}: ${ms(m.meanMs)} / ${ms(m.p95Ms)}`).join(", "),
    xLabel: t("admin.axis.ms"), yLabel: t("admin.axis.model"), format: v => num(Math.round(v)),
    categories: timed.map(m => m.modelId),
    series: [{label: t("admin.series.mean"), values: timed.map(m => m.meanMs || 0), cls: "s-info"},
             {label: t("admin.series.p95"), values: timed.map(m => m.p95Ms || 0), cls: "s-warn"}],
  });
  chart("chart-an-errors", {
    kind: "hbar", title: t("admin.chart.errorRate"),
    summary: timed.map(m => `${m.modelId}: ${pct(((m.error || 0) + (m.timeout || 0)) / m.runs)}`).join(", "),
    xLabel: t("admin.axis.percent"), yLabel: t("admin.axis.model"), format: v => pct(v / 100),
    // every rate 0 %: models ran and none failed (the chart has nothing to draw, the table has the runs)
    empty: t(timed.length ? "admin.chart.errors.none" : "admin.chart.models.empty"),
    categories: timed.map(m => m.modelId),
    series: [{label: t("admin.axis.percent"), values: timed.map(m => 100 * ((m.error || 0) + (m.timeout || 0)) / m.runs),
              cls: "s-bad"}],
  });
  // unreadable codes apart where the kiosk says so (refusedScans), else by error code
  const reasons = Object.entries((a.refusedScans || {}).byReason || scans.refused || {})
    .filter(([, n]) => n).sort((x, y) => y[1] - x[1]);
  chart("chart-an-refused", {
    kind: "hbar", title: t("admin.chart.refused"),
    summary: reasons.map(([c, n]) => `${label(REFUSED_WHY, c)}: ${num(n)}`).join(", "),
    xLabel: t("admin.axis.scans"), yLabel: t("admin.axis.reason"), format: num,
    empty: t("admin.chart.refused.empty"),
    categories: reasons.map(([c]) => label(REFUSED_WHY, c)),
    series: [{label: t("admin.axis.scans"), values: reasons.map(([, n]) => n), cls: "s-bad"}],
  });
  const host = $("an-models");
  if (!models.length) {
    host.replaceChildren(emptyState("admin.models.empty"));
    return;
  }
  const cols = [t("admin.col.model"), t("admin.col.runs"), t("admin.col.errors"), t("admin.col.timeouts"),
                t("admin.col.errorRate"), t("admin.col.mean"), t("admin.col.p95")];
  host.replaceChildren(table(t("admin.models.table"), cols, models.map(m => ({
    attrs: {"data-model": m.modelId},
    cells: [m.modelId, num(m.runs), num(m.error), num(m.timeout),
            m.runs ? pct(((m.error || 0) + (m.timeout || 0)) / m.runs) : "—",
            m.runs ? ms(m.meanMs) : "—", m.runs ? ms(m.p95Ms) : "—"],
  }))));
}

// --- Sync ---------------------------------------------------------------------------------------------
const syncState = {summary: null, dead: null, conflicts: null, security: null, loaded: false};

async function loadSync() {
  await run($("panel-sync"), async () => {
    const [s, d, c, x, tk] = await Promise.all([
      call("GET", {endpoint: "sync"}), call("GET", {endpoint: "outbox"}), call("GET", {endpoint: "conflicts"}),
      call("GET", {endpoint: "security"}), call("GET", {endpoint: "tokens", limit: 1000})]);
    if (tk.ok) learnNames(tk.data.tokens);  // to name the people behind token ids
    syncState.summary = s.ok ? s.data : null;
    syncState.dead = d.ok ? d.data.dead : null;
    syncState.conflicts = c.ok ? c.data.conflicts : null;
    syncState.security = x.ok ? x.data.securityEvents : null;
    syncState.loaded = true;  // from now on a list without data is one that failed to load
    renderSync();
    return [s, d, c, x].find(r => !r.ok) || null;
  });
}

function renderSync() {
  const s = syncState.summary;
  cloudLine($("sy-cloud"), s);
  $("sy-cards").replaceChildren(...(s ? [
    card(t("admin.card.pending"), num(s.pending),
         s.oldestPendingAt ? t("admin.sync.oldest", {when: relative(s.oldestPendingAt)}) : t("admin.card.pending.none")),
    card(t("admin.card.dead"), num(s.dead), s.dead ? t("admin.card.dead.sub.here") : t("admin.card.dead.none"),
         s.dead ? "bad" : ""),
    card(t("admin.card.cloud"), s.lastHeardAt ? relative(s.lastHeardAt) : t("admin.never"),
         s.credential === "refused" ? t("admin.cloud.refused") :
         s.stale ? t("admin.cloud.stale.short", {after: duration(s.staleAfterSeconds)}) : t("admin.cloud.fresh"),
         s.credential === "refused" ? "bad" : s.stale ? "warn" : ""),
    card(t("admin.card.keys"), s.newestTrustedAt ? relative(s.newestTrustedAt) : "—",
         s.newestTrustedAt ? t("admin.card.keys.sub") : t("admin.card.keys.none")),
  ] : []));
  const dead = syncState.dead;
  if (!dead) { if (syncState.loaded) $("sy-dead").replaceChildren(failedState()); }
  else {
    $("sy-dead").replaceChildren(!dead.length ? emptyState("admin.sync.dead.empty") : table(t("admin.sync.dead"),
      [t("admin.col.what"), t("admin.col.item"), t("admin.col.attempts"), t("admin.col.reason"), t("admin.col.since"),
       t("admin.col.actions")],
      dead.map(e => ({attrs: {"data-dead": e.id}, cells: [
        label(OUTBOX_KIND, e.kind), e.entityType === "qr_token" ? holder(e.entityId) : `${label(ENTITY, e.entityType)} ${e.entityId}`,
        num(e.attempts), e.reason, when(e.createdAt),
        el("div", {class: "actions-cell"},
           button(t("admin.sync.retry"), () => resolveDead(e, "retry"), "secondary small",
                  {"aria-label": t("admin.sync.retry.label", {what: label(OUTBOX_KIND, e.kind), id: e.entityId})}),
           button(t("admin.sync.drop"), () => confirmDrop(e), "danger small",
                  {"aria-label": t("admin.sync.drop.label", {what: label(OUTBOX_KIND, e.kind), id: e.entityId})}))]}))));
  }
  const conflicts = syncState.conflicts;
  if (!conflicts) { if (syncState.loaded) $("sy-conflicts").replaceChildren(failedState()); }
  else {
    $("sy-conflicts").replaceChildren(!conflicts.length ? emptyState("admin.sync.conflicts.empty") : table(t("admin.sync.conflicts"),
      [t("admin.col.item"), t("admin.col.field"), t("admin.col.outcome"), t("admin.col.rule"), t("admin.col.when")],
      conflicts.map(c => ({cells: [`${label(ENTITY, c.entityType)} ${c.entityId}`, c.field, c.outcome, c.rule,
                                   when(c.detectedAt)]}))));
  }
  const sec = syncState.security;
  if (!sec) { if (syncState.loaded) $("sy-security").replaceChildren(failedState()); }
  else {
    $("sy-security").replaceChildren(!sec.length ? emptyState("admin.sync.security.empty") : table(t("admin.sync.security"),
      [t("admin.col.what"), t("admin.col.subject"), t("admin.col.when")],
      sec.map(e => ({cells: [label(SECURITY_KIND, e.kind), holder(e.subject), when(e.detectedAt)]}))));
  }
}

async function resolveDead(e, action) {
  const r = await call("POST", {endpoint: `outbox/${encodeURIComponent(e.id)}/${action}`});
  if (!r.ok) { Kiosk.say(msg, ""); msg.textContent = errorText(r); msg.className = "message error"; return r; }
  say(action === "retry" ? "admin.sync.retried" : "admin.sync.dropped", "ok", {what: label(OUTBOX_KIND, e.kind), id: e.entityId});
  await loadSync();
  return null;
}

function confirmDrop(e) {
  confirmAction({title: t("admin.sync.drop.title"), text: t("admin.sync.drop.text", {what: label(OUTBOX_KIND, e.kind), id: e.entityId}),
                 ok: t("admin.sync.drop"), action: () => resolveDead(e, "drop")});
}

// --- Export -------------------------------------------------------------------------------------------
function initExport() {
  const today = new Date();
  $("export-to").value = isoDate(today);
  $("export-from").value = isoDate(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6));
  $("export").addEventListener("submit", download);
}

async function download(ev) {
  ev.preventDefault();
  const form = $("export");
  const from = $("export-from").value, to = $("export-to").value;
  const st = form.querySelector(".panel-status");
  if (!from || !to || from > to) {
    st.className = "panel-status error";
    st.textContent = t("admin.period.invalid");
    return;
  }
  const format = document.querySelector('input[name="format"]:checked').value;
  const params = {format, ...rangeOf(from, to)};
  const kind = (document.querySelector('#export-kinds input:checked') || {}).value;
  if (!kind) {
    st.className = "panel-status error";
    st.textContent = t("admin.export.nokinds");
    return;
  }
  params.kinds = kind;  // one kind per file
  if (format === "csv") Object.assign(params, {columns: "readable", lang: Kiosk.lang === "de" ? "de" : "en"});
  $("export-go").disabled = true;
  let saved = null;
  await run($("panel-export"), async () => {
    let r;
    try {
      r = await fetch("/api/admin/export?" + new URLSearchParams(params), {credentials: "same-origin", headers: Kiosk.headers()});
    } catch (e) {
      return {code: "NETWORK"};
    }
    if (!r.ok) {
      let code = "INTERNAL_ERROR";
      try {
        const err = (await r.json()).error || {};
        code = err.code === "NOT_FOUND" && (err.details || {}).endpoints ? "UNAVAILABLE" : (err.code || code);
      } catch (e) { /* not JSON */ }
      if (r.status === 401) sessionGone();
      return {code};
    }
    const blob = await r.blob();
    // named by the local dates chosen (the kiosk's name has the UTC instants)
    const hotel = document.body.dataset.hotel || "hotel";
    const name = `kiosk-export-${hotel}-${kind}-${from}-to-${to}.${format}`;
    const url = URL.createObjectURL(blob);
    const a = el("a", {href: url, download: name, class: "visually-hidden"}, name);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    saved = {name, size: blob.size};
    return null;
  }, st);
  $("export-go").disabled = false;
  if (saved) {
    st.className = "panel-status ok";
    st.textContent = t("admin.export.done", {file: saved.name, size: num(Math.max(1, Math.round(saved.size / 1024)))});
  }
}

// --- Guest data: erase a guest (the right to be forgotten, docs/privacy.md) ----------------------------
// The booking number, then a dialog that says what happens and asks for it again: "Erase" is
// enabled only when the two match.  The kiosk erases at once and queues the request for the cloud.
const ERASE_ERRORS = {VALIDATION_ERROR: "admin.guest.error.VALIDATION_ERROR",
                      HOTEL_MISMATCH: "admin.guest.error.HOTEL_MISMATCH"};
const erasing = {conf: "", status: null};

function eraseStatus(key, kind, vars) {
  erasing.status = key ? {key, kind, vars} : null;
  const st = $("erase-status");
  st.className = "erase-status" + (kind ? " " + kind : "");
  st.textContent = key ? t(key, vars) : "";
}

function openErase(ev) {
  ev.preventDefault();
  const conf = $("erase-conf").value.trim();
  if (!conf) {
    eraseStatus("admin.guest.needsConf", "error");
    $("erase-conf").focus();
    return;
  }
  eraseStatus(null);
  erasing.conf = conf;
  $("erase-which").textContent = conf;
  $("erase-confirm").reset();
  $("erase-go").disabled = true;
  $("erase-cancel").disabled = false;
  Kiosk.say($("erase-dialog-message"), "");
  $("erase-dialog").showModal();
  $("erase-again").focus();
}

function eraseMatches() {
  $("erase-go").disabled = $("erase-again").value.trim() !== erasing.conf;
}

async function eraseGuest(ev) {
  ev.preventDefault();
  const conf = erasing.conf, again = $("erase-again").value.trim();
  if (!conf || again !== conf) return;
  $("erase-go").disabled = true;
  $("erase-cancel").disabled = true;
  Kiosk.say($("erase-dialog-message"), "admin.guest.erasing", "info");
  const r = await call("POST", {endpoint: "guests/erase"},
                       {hotelId: document.body.dataset.hotel || "", confirmation: conf, confirm: again});
  $("erase-cancel").disabled = false;
  if (!r.ok) {
    eraseMatches();
    const m = $("erase-dialog-message");
    m.className = "message error";
    m.textContent = ERASE_ERRORS[r.code] ? t(ERASE_ERRORS[r.code]) : errorText(r);
    return;
  }
  $("erase-dialog").close();
  $("erase-conf").value = "";
  eraseStatus("admin.guest.erased", "ok", {conf: r.data.confirmation || conf});
}

function initErase() {
  $("erase-form").addEventListener("submit", openErase);
  $("erase-confirm").addEventListener("submit", eraseGuest);
  $("erase-again").addEventListener("input", eraseMatches);
  $("erase-cancel").addEventListener("click", () => $("erase-dialog").close());
  $("erase-dialog").addEventListener("close", () => $("erase-open").focus());
}

// --- page set-up ----------------------------------------------------------------------------------------
function translateExtras() {
  for (const e of document.querySelectorAll("[data-i18n-label]")) e.setAttribute("aria-label", t(e.dataset.i18nLabel));
  document.title = t(MODE === "login" ? "admin.login.title" : "admin.title");
  const ends = $("session-ends");
  if (ends && ends.dataset.expires) {
    ends.textContent = t("admin.session.ends", {when: relative(new Date(Number(ends.dataset.expires) * 1000))});
  }
}

function rerender() {
  translateExtras();
  if (MODE !== "dashboard") return;
  renderOverview();
  renderTokens();
  renderSessions();
  renderAnalytics();
  renderSync();
  if (erasing.status) eraseStatus(erasing.status.key, erasing.status.kind, erasing.status.vars);
}

async function logout() {
  const lobby = Boolean(Kiosk.idle && Kiosk.idle.lobby);  // opened at the lobby: its visit is over
  Kiosk.stopIdle();
  await fetch("/api/session", {method: "DELETE", credentials: "same-origin", headers: Kiosk.headers({"X-CSRF-Token": CSRF})});
  Kiosk.forget();
  location.replace(lobby ? "/" : "/admin");
}

// Signs out by itself after the session's idle time (common.js watchIdle); an admin code
// scanned at the lobby is the lobby's visit: the screen goes back to the lobby.
async function watchIdle() {
  const who = await Kiosk.api("GET", "/api/session");
  if (!who.ok) return;
  Kiosk.watchIdle(who.data, lobby => location.replace(lobby ? "/" : "/admin"));
}

async function login(ev) {
  ev.preventDefault();
  const token = $("token").value.trim();
  if (!token) return say("error.VALIDATION_ERROR", "error");
  let hotel = "";
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    hotel = JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).hid || "";
  } catch (e) { /* the server says what is wrong */ }
  say("lobby.checking");
  let r, data = {};
  try {
    r = await fetch("/api/qr/scan", {method: "POST", credentials: "same-origin",
                                      headers: Kiosk.headers({"Content-Type": "application/json", Accept: "application/json"}),
                                      body: JSON.stringify({qrToken: token, hotelId: hotel, scanMethod: "manual"})});
    data = await r.json();
  } catch (e) {
    return say("error.NETWORK", "error");
  }
  if (!r.ok) {
    const code = (data.error || {}).code || "INTERNAL_ERROR";
    return say(Kiosk.strings.en["error." + code] ? "error." + code : "error.INTERNAL_ERROR", "error");
  }
  Kiosk.keep(data);  // this screen's key: the cookie counts only with it
  location.reload();  // the session cookie is set: the server renders the dashboard (or says no)
}

(async () => {
  await Kiosk.loadStrings();
  Kiosk.initLangSwitch();
  Kiosk.onLang = rerender;
  Kiosk.translate();
  translateExtras();
  if ($("logout")) $("logout").addEventListener("click", logout);
  if ($("logout-here")) $("logout-here").addEventListener("click", logout);
  if (MODE === "login") {
    $("login").addEventListener("submit", login);
    $("token").focus();
  }
  if (MODE === "dashboard") {
    panels.overview = {load: loadOverview};
    panels.tokens = {load: loadTokens};
    panels.sessions = {load: loadSessions};
    panels.analytics = {load: loadAnalytics};
    panels.sync = {load: loadSync};
    panels.export = {load: null};
    initTabs();
    $("token-status").addEventListener("change", loadTokens);
    $("token-role").addEventListener("change", loadTokens);
    $("token-new").addEventListener("click", openTokenDialog);
    $("token-form").addEventListener("submit", createToken);
    $("token-cancel").addEventListener("click", () => $("token-dialog").close());
    $("token-done").addEventListener("click", () => $("token-dialog").close());
    $("token-copy").addEventListener("click", copyToken);
    $("token-print").addEventListener("click", () => window.print());
    $("token-save").addEventListener("click", saveQr);
    $("confirm-cancel").addEventListener("click", () => $("confirm-dialog").close());
    $("session-close").addEventListener("click", () => $("session-dialog").close());
    $("session-filter").addEventListener("change", loadSessions);
    $("session-refresh").addEventListener("click", loadSessions);
    for (const r of document.querySelectorAll('input[name="period"]')) r.addEventListener("change", loadAnalytics);
    $("period").addEventListener("submit", ev => { ev.preventDefault(); loadAnalytics(); });
    const today = new Date();
    $("period-to").value = isoDate(today);
    $("period-from").value = isoDate(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6));
    initExport();
    initErase();
    selectTab(location.hash.slice(1) || "overview", false);
    setInterval(translateExtras, 30000);  // "session ends in 12 min" stays true
    await watchIdle();
  }
  document.body.dataset.ready = "yes";
})();
