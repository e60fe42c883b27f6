// The staff terminal: log in with a badge code; the one work queue (queue.js: guest
// requests, tasks, work orders and approvals, live), "Assign open tasks" (task-routing)
// and yesterday's night-audit findings.
"use strict";
const $ = id => document.getElementById(id);
const msg = $("message");

function showError(code) {
  Kiosk.say(msg, "error." + (Kiosk.strings.en["error." + code] ? code : "INTERNAL_ERROR"), "error");
}

// The session is the HttpOnly cookie the scan set (here or at the lobby), good only with
// the screen key the scan gave this origin (Kiosk.api sends it); quiet: on page load, where
// no session is the normal case, not an error.
async function start(quiet) {
  const who = await Kiosk.api("GET", "/api/session");
  if (!who.ok || who.data.user.role === "guest") {  // a guest's session is not a staff login
    Kiosk.signedIn = false;
    return quiet ? null : showError(who.ok ? "FORBIDDEN" : who.code);
  }
  Kiosk.signedIn = true;
  sessionId = who.data.sessionId;
  // signs out by itself after the session's idle time; a visit from the lobby goes back there
  Kiosk.watchIdle(who.data, () => signedOut("session.idle.ended"));
  $("login").hidden = true;
  $("work").hidden = false;
  $("logout").hidden = false;
  await refresh();
  showWho();
  Queue.listen();
  $("who").focus();
  await loadFindings();
}

function showWho() {
  const me = (Queue.data || {}).me;
  if (!me) return;
  $("who").textContent = me.name;
  $("who-role").textContent = me.department ? Kiosk.t("dept." + me.department) : "";
}

function signedOut(key) {
  if (!Kiosk.signedIn) return;  // once: the idle timer and the live feed may both notice
  // the idle timer's own DELETE ends the live feed too: that echo must not say "logged out"
  // before the timer says "signed out after a while without activity"
  if (Kiosk.idleEnding && key !== "session.idle.ended") return;
  const lobby = Boolean(Kiosk.idle && Kiosk.idle.lobby);  // opened at the lobby: its visit is over
  Kiosk.stopIdle();
  Kiosk.idle = null;
  Kiosk.signedIn = false;
  Kiosk.forget();  // the screen key of the session that ended
  Queue.clear();
  audit = null;
  $("findings").replaceChildren();
  $("who").textContent = "";
  $("who-role").textContent = "";
  $("work").hidden = true; $("login").hidden = false; $("logout").hidden = true;
  $("login").reset();
  Kiosk.say(msg, key || "session.ended", "info");
  if (lobby) location.replace("/");
}

let sessionId = null, audit = null;

function refresh() {
  return Queue.refresh();
}

// Night-audit findings of yesterday, from the night-audit model on this kiosk's data.
async function loadFindings() {
  const day = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
  const r = await Kiosk.api("POST", "/api/ai/trigger", {sessionId, modelId: "night-audit", requestPayload: {businessDate: day}});
  const ran = r.ok && String(r.data.status).toLowerCase() === "success";
  // no night-audit model here (NOT_FOUND) is "not available"; a run that failed or a call that did not
  // get through is a failure, said as one: neither is "no findings"
  audit = ran ? {date: day, findings: r.data.findings || []}
    : {date: day, error: r.ok ? "FAILED" : r.code === "NOT_FOUND" ? "UNAVAILABLE" : r.code};
  renderFindings();
}

function renderFindings() {
  if (!audit) return;
  $("findings-date").textContent = Kiosk.t("staff.findings.date", {date: audit.date});
  const ul = $("findings");
  ul.replaceChildren();
  if (audit.error) {
    const li = item(Kiosk.t(audit.error === "FORBIDDEN" ? "error.FORBIDDEN"
      : audit.error === "UNAVAILABLE" ? "staff.findings.unavailable" : "staff.findings.failed"));
    li.className = audit.error === "UNAVAILABLE" ? "empty" : "empty failed";
    ul.append(li);
  }
  else if (!audit.findings.length) ul.append(item(Kiosk.t("staff.findings.none", {date: audit.date})));
  else for (const f of audit.findings) {
    const li = document.createElement("li");
    const what = document.createElement("strong");
    what.textContent = Kiosk.strings.en["finding." + f.type] ? Kiosk.t("finding." + f.type) : f.type;
    const amount = document.createElement("span");
    amount.className = "price";
    amount.textContent = Fmt.money(f.amount, (Queue.data || {}).currency || "EUR");
    const detail = document.createElement("span");
    detail.className = "hint";
    detail.textContent = f.detail;
    li.append(what, " · ", f.confirmation, " · ", amount, document.createElement("br"), detail);
    ul.append(li);
  }
}

// Why task-routing left tasks unassigned, in the screen's language.
function routeReason(why) {
  if (why === "nobody on shift with room for more work" || why === "nobody with the skill is on shift") return "staff.route.nobody";
  if (why === "everyone able is full") return "staff.route.full";
  if (why === "no open unassigned tasks") return "staff.route.none";
  if ((why || "").startsWith("nobody has the skill")) return "staff.route.skill";
  return "staff.route.other";
}

// "Assign open tasks": the task-routing model.  Something assigned is good news (green);
// nothing assigned is said in a neutral colour, with why (e.g. nobody on shift at night).
async function route() {
  const r = await Kiosk.api("POST", "/api/ai/trigger", {sessionId, modelId: "task-routing", requestPayload: {}});
  if (!r.ok) return showError(r.code);
  if (String(r.data.status).toLowerCase() !== "success") return Kiosk.say(msg, "staff.route.unavailable", "info");
  const out = r.data.outputs || {assignments: [], unassigned: []};
  const n = out.assignments.length, left = out.unassigned.length;
  if (!n && !left) Kiosk.say(msg, "staff.route.none", "info");
  else if (!n) Kiosk.say(msg, routeReason(out.unassigned[0].reason), "info", {n: left});
  else {
    let text = Kiosk.t(n === 1 ? "staff.routed.one" : "staff.routed", {n});
    if (left) text += " " + Kiosk.t(routeReason(out.unassigned[0].reason), {n: left});
    msg.textContent = text;
    msg.className = "message ok";
  }
  await refresh();
}

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

async function login(ev) {
  ev.preventDefault();
  const token = $("token").value.trim();
  if (!token) return showError("VALIDATION_ERROR");
  const part = (token.split(".")[1] || "").replace(/-/g, "+").replace(/_/g, "/");
  let hotel = "";
  try { hotel = JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).hid; } catch (e) { /* server says */ }
  const r = await Kiosk.api("POST", "/api/qr/scan", {qrToken: token, hotelId: hotel, scanMethod: "manual"});
  if (!r.ok) return showError(r.code);
  if (r.data.user.role === "guest") return showError("FORBIDDEN");
  await start(false);
}

(async () => {
  await Kiosk.loadStrings();
  Kiosk.initLangSwitch();
  Kiosk.onLang = () => { Queue.render(); showWho(); renderFindings(); };
  $("route").addEventListener("click", route);
  Kiosk.translate();
  Queue.init({say: (key, kind, vars) => Kiosk.say(msg, key, kind, vars), onSignedOut: () => signedOut("session.ended")});
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", async () => {
    await Kiosk.api("DELETE", "/api/session");
    signedOut("session.ended");
  });
  await start(true);
  document.body.dataset.ready = "yes";
})();
