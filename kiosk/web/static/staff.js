// The staff terminal: log in with a badge code, see work orders and tasks, change a work
// order's status (through /api/pms/update: applied locally, queued for the PMS).
"use strict";
const $ = id => document.getElementById(id);
const msg = $("message");
let data = null;

function showError(code) {
  Kiosk.say(msg, "error." + (Kiosk.strings.en["error." + code] ? code : "INTERNAL_ERROR"), "error");
}

// The session is the HttpOnly cookie the scan set (here or at the lobby); quiet: on page
// load, where no session is the normal case, not an error.
async function start(quiet) {
  const who = await Kiosk.api("GET", "/api/session");
  if (!who.ok || who.data.user.role === "guest") {  // a guest's session is not a staff login
    Kiosk.signedIn = false;
    return quiet ? null : showError(who.ok ? "FORBIDDEN" : who.code);
  }
  Kiosk.signedIn = true;
  sessionId = who.data.sessionId;
  $("who").textContent = who.data.user.name;
  $("login").hidden = true;
  $("work").hidden = false;
  $("logout").hidden = false;
  await refresh();
  await loadFindings();
  $("who").focus();
}

let sessionId = null, audit = null;

async function refresh() {
  const r = await Kiosk.api("GET", "/api/staff/tasks");
  if (!r.ok) return showError(r.code);
  data = r.data;
  render();
}

// Night-audit findings of yesterday, from the night-audit model on this kiosk's data.
async function loadFindings() {
  const day = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
  const r = await Kiosk.api("POST", "/api/ai/trigger", {sessionId, modelId: "night-audit", requestPayload: {businessDate: day}});
  audit = r.ok ? {date: day, findings: r.data.findings || []} : {date: day, error: r.code};
  renderFindings();
}

function renderFindings() {
  if (!audit) return;
  $("findings-date").textContent = Kiosk.t("staff.findings.date", {date: audit.date});
  const ul = $("findings");
  ul.replaceChildren();
  if (audit.error) ul.append(item(Kiosk.t(audit.error === "FORBIDDEN" ? "error.FORBIDDEN" : "staff.findings.unavailable")));
  else if (!audit.findings.length) ul.append(item(Kiosk.t("staff.findings.none", {date: audit.date})));
  else for (const f of audit.findings) ul.append(item(`${f.type} · ${f.confirmation} · ${Number(f.amount).toFixed(2)} · ${f.detail}`));
}

async function decide(taskId, decision) {
  const r = await Kiosk.api("POST", "/api/approvals", {taskId, decision});
  if (!r.ok) { showError(r.code); return refresh(); }
  Kiosk.say(msg, decision === "approve" ? "staff.approved" : "staff.rejected", "ok");
  await refresh();
}

async function route() {
  const r = await Kiosk.api("POST", "/api/ai/trigger", {sessionId, modelId: "task-routing", requestPayload: {}});
  if (!r.ok) return showError(r.code);
  const out = r.data.outputs || {assignments: [], unassigned: []};
  let text = Kiosk.t("staff.routed", {n: out.assignments.length});
  if (out.unassigned.length) text += " " + Kiosk.t("staff.unassigned", {n: out.unassigned.length, why: out.unassigned[0].reason});
  msg.textContent = text;
  msg.className = "message ok";
  await refresh();
}

function render() {
  if (!data) return;
  const wo = $("workorders");
  wo.replaceChildren();
  if (!data.workOrders.length) wo.append(item(Kiosk.t("staff.workorders.none")));
  for (const w of data.workOrders) {
    const li = document.createElement("li");
    li.dataset.workOrder = w.workOrderId;
    const title = document.createElement("p");
    title.textContent = `${w.workOrderId} · ${w.roomNumber || "—"} · ${w.description || w.type} · ${Kiosk.t("status." + w.status)}`;
    const row = document.createElement("div");
    row.className = "row";
    const id = "status-" + w.workOrderId;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = Kiosk.t("staff.status") + " — " + w.workOrderId;
    label.className = "visually-hidden";
    const select = document.createElement("select");
    select.id = id;
    for (const s of w.allowedStatuses) {
      const o = document.createElement("option");
      o.value = s;
      o.textContent = Kiosk.t("status." + s);
      select.append(o);
    }
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = Kiosk.t("staff.update");
    button.disabled = !w.allowedStatuses.length;
    button.addEventListener("click", () => update(w, select.value));
    row.append(label, select, button);
    li.append(title, row);
    wo.append(li);
  }
  const tasks = $("tasks");
  tasks.replaceChildren();
  if (!data.tasks.length) tasks.append(item(Kiosk.t("staff.tasks.none")));
  for (const t of data.tasks) {
    if (t.type !== "approval") {
      tasks.append(item(`${t.type} · ${t.roomNumber || "—"} · ${t.priority} · ${t.assignee || "—"}${t.dueAt ? " · " + t.dueAt : ""}`));
      continue;
    }
    // a PMS correction a model proposed: staff decide
    let proposal = {};
    try { proposal = JSON.parse(t.description); } catch (e) { /* shown as is */ }
    const li = item(`${proposal.reason || "PMS change"} · ${proposal.entity || ""} ${proposal.id || ""}`);
    li.dataset.approval = t.taskId;
    const row = document.createElement("div");
    row.className = "row";
    for (const [key, decision] of [["staff.approve", "approve"], ["staff.reject", "reject"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = decision === "reject" ? "secondary" : "";
      b.textContent = Kiosk.t(key);
      b.addEventListener("click", () => decide(t.taskId, decision));
      row.append(b);
    }
    li.append(row);
    tasks.append(li);
  }
}

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

async function update(w, status) {
  const r = await Kiosk.api("POST", "/api/pms/update",
                            {workOrderId: w.workOrderId, changes: {status}, expectedVersion: w.version});
  if (!r.ok) { showError(r.code); return refresh(); }
  Kiosk.say(msg, "staff.saved", "ok");
  await refresh();
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
  Kiosk.onLang = () => { render(); renderFindings(); };
  $("route").addEventListener("click", route);
  Kiosk.translate();
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", async () => {
    await Kiosk.api("DELETE", "/api/session");
    Kiosk.signedIn = false;
    data = null;
    $("work").hidden = true; $("login").hidden = false; $("logout").hidden = true;
    Kiosk.say(msg, "session.ended", "ok");
  });
  await start(true);
  document.body.dataset.ready = "yes";
})();
