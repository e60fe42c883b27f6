// The staff terminal's ONE work queue: guest requests, routed tasks, work orders and
// approvals, most urgent and newest first, filtered (mine / my department / all, room,
// type), each moved along with one tap (POST /api/staff/tasks/<kind>/<id>), refreshed live
// from the staff feed (GET /api/staff/events, server-sent events) — no reload.
"use strict";
const Queue = {
  data: null,
  failed: false,       // the last load of the list did not get through (not the same as an empty list)
  filters: {scope: localStorage.getItem("kiosk.staff.scope") || "all", room: "", kind: ""},
  feed: null,
  pollTimer: null,     // polling instead of the live feed while the kiosk refuses it (429 BUSY)
  retryTimer: null,
  POLL_MS: 10000,
  RETRY_MS: 15000,     // the feed is tried again after 15-30 s (capacity.stream_retry_seconds)
  pending: null,       // a refresh waiting for the person to finish with a list box
  drafts: {},          // choices made in a list box but not sent yet: they survive a refresh
  refreshing: null,
  onSignedOut: null,   // staff.js: the session ended
  say: null,           // staff.js: (key, kind, vars) into the message line

  el(id) { return document.getElementById(id); },

  label(it) {
    const what = it.kind === "ticket" ? it.text : it.title;
    return it.room ? Kiosk.t("staff.item.label", {what, room: it.room}) : what;
  },

  async refresh() {
    if (this.refreshing) { this.again = true; return this.refreshing; }
    const q = new URLSearchParams({scope: this.filters.scope});
    if (this.filters.room) q.set("room", this.filters.room);
    if (this.filters.kind) q.set("kind", this.filters.kind);
    this.refreshing = (async () => {
      const r = await Kiosk.api("GET", "/api/staff/tasks?" + q);
      if (!r.ok) {
        if (r.code === "SESSION_EXPIRED" || r.code === "UNAUTHORIZED") return this.onSignedOut && this.onSignedOut();
        if (!this.data) { this.failed = true; this.render(); }  // nothing loaded yet: not "no requests"
        return this.say && this.say("error." + (Kiosk.strings.en["error." + r.code] ? r.code : "INTERNAL_ERROR"), "error");
      }
      this.failed = false;
      this.data = r.data;
      Fmt.setServerNow(r.data.now);
      this.render();
    })();
    try { await this.refreshing; } finally { this.refreshing = null; }
    if (this.again) { this.again = false; await this.refresh(); }
  },

  // A list box that is open (or being used) is not pulled away from under the person:
  // the new list is shown when they leave it.
  render() {
    const active = document.activeElement;
    if (active && active.tagName === "SELECT" && this.el("queue").contains(active)) {
      this.pending = true;
      return;
    }
    this.pending = false;
    // The control the person was on: the focused one, or (when an earlier re-render took it
    // away and nothing else has been focused since) the one remembered from then.
    const list = this.el("queue");
    const inList = active && list.contains(active);
    const lost = !active || active === document.body;
    const focusKey = inList ? active.dataset.focus || null : lost ? this.focusKey : null;
    this.renderFilters();
    list.replaceChildren();
    const items = this.data ? this.data.items : [];
    if (!this.data && this.failed) {  // the list did not load: say that, not "no requests"
      const li = document.createElement("li");
      li.className = "empty failed";
      li.textContent = Kiosk.t("staff.queue.failed");
      list.append(li);
    } else if (this.data && !items.length) {  // before the first answer: nothing to say yet
      const li = document.createElement("li");
      li.className = "empty";
      const filtered = this.filters.scope !== "all" || this.filters.room || this.filters.kind;
      li.textContent = Kiosk.t(filtered ? "staff.queue.none.filtered" : "staff.queue.none");
      list.append(li);
    }
    for (const it of items) list.append(this.card(it));
    if (focusKey) {
      const again = list.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
      // the same control; else the same item's next step (Accept became Start); else the top of the
      // list. A control's data-focus is "<item key>:<action>", so the item is known from it.
      if (again) {
        again.focus();
        if (again.tagName === "TEXTAREA") again.selectionStart = again.selectionEnd = again.value.length;
      } else this.focusNear(focusKey.slice(0, focusKey.lastIndexOf(":")));
    }
    const now = document.activeElement;
    this.focusKey = now && list.contains(now) ? now.dataset.focus || null : null;
  },

  focusNear(key) {
    const list = this.el("queue");
    const own = key && list.querySelector(`li[data-key="${CSS.escape(key)}"] button`);
    (own || list.querySelector("li.item button") || this.el("queue-title")).focus();
  },

  renderFilters() {
    const d = this.data;
    document.querySelectorAll("[data-scope]").forEach(b => {
      b.setAttribute("aria-pressed", String(b.dataset.scope === this.filters.scope));
      b.hidden = b.dataset.scope === "department" && d && !d.me.department;
    });
    document.querySelectorAll("[data-count]").forEach(s => {
      s.textContent = d ? `(${d.counts[s.dataset.count]})` : "";
    });
    const room = this.el("filter-room");
    const rooms = d ? d.rooms : [];
    const keep = this.filters.room;
    room.replaceChildren(room.options[0] || new Option("", ""));
    room.options[0].textContent = Kiosk.t("staff.filter.room.any");
    for (const r of new Set([...rooms, ...(keep ? [keep] : [])])) room.append(new Option(r, r));
    room.value = keep;
    this.el("filter-kind").value = this.filters.kind;
  },

  card(it) {
    const li = document.createElement("li");
    const key = it.kind + ":" + it.id;
    li.className = `item kind-${it.kind} prio-${it.priority}`;
    li.dataset.key = key;
    li.dataset.kind = it.kind;
    li.dataset.id = it.id;
    li.dataset.status = it.status;
    if (it.kind === "work_order") li.dataset.workOrder = it.id;
    if (it.kind === "approval") li.dataset.approval = it.id;

    const head = document.createElement("div");
    head.className = "item-head";
    head.append(this.badge(Kiosk.t("kind." + it.kind), "kind"));
    if (it.channel === "spoken" || it.channel === "question") head.append(this.badge(Kiosk.t("channel." + it.channel), "kind"));
    if (it.priority === "urgent" || it.priority === "high") head.append(this.badge(Kiosk.t("priority." + it.priority), "prio"));
    const room = document.createElement("span");
    room.className = "room";
    room.textContent = it.room ? Kiosk.t("staff.room", {room: it.room}) : Kiosk.t("staff.room.none");
    head.append(room, this.badge(Kiosk.t("status." + it.status), "status status-" + it.status));
    li.append(head);

    const title = document.createElement("p");
    title.className = "item-title";
    title.textContent = it.fromGuest ? `“${it.text}”` : this.titleOf(it);
    li.append(title);
    const detail = it.fromGuest ? "" : (it.kind === "ticket" ? (it.text !== it.title ? it.text : "") : it.text);
    if (detail) {
      const p = document.createElement("p");
      p.className = "item-text";
      p.textContent = detail;
      li.append(p);
    }

    const meta = document.createElement("p");
    meta.className = "item-meta";
    const bits = [];
    if (it.requestedByName && it.kind === "ticket") {  // the name; the id (a confirmation, a badge) for support
      const from = document.createElement("span");
      from.className = "requester";
      from.title = it.requestedBy || "";
      from.textContent = Kiosk.t("staff.from", {name: it.requestedByName});
      bits.push(from);
    }
    const ago = document.createElement("time");
    ago.dateTime = it.createdAt || "";
    ago.title = Fmt.clock(it.createdAt);
    ago.textContent = Fmt.ago(it.createdAt);
    meta.append(...this.join(bits), bits.length ? " · " : "", ago);
    if (it.dueAt) {
      const due = document.createElement("time");
      due.dateTime = it.dueAt;
      due.title = Fmt.clock(it.dueAt);
      due.className = Fmt.overdue(it.dueAt) ? "overdue" : "";
      due.textContent = Fmt.due(it.dueAt);
      meta.append(" · ", due);
    }
    const who = document.createElement("span");
    who.className = it.assignee ? "assignee" : "assignee none";
    if (it.assignee) who.title = it.assignee;  // the staff id, for support
    who.textContent = it.assignee ? Kiosk.t("staff.assignee", {name: it.assigneeName || it.assignee})
                                  : Kiosk.t("staff.assignee.none");
    meta.append(" · ", who);
    li.append(meta);
    if (it.workOrderId) {
      const p = document.createElement("p");
      p.className = "item-followup work-order-made";
      p.textContent = Kiosk.t("staff.workorder.made", {id: it.workOrderId});
      li.append(p);
    }
    if (it.reply) {
      const p = document.createElement("p");
      p.className = "item-followup reply-sent";
      // the words put in as they are (never through a template's replace: "$&" stays "$&")
      const [before, after] = Kiosk.t("staff.reply.shown", {name: it.reply.byName || it.reply.by, text: "\u0000"})
        .split("\u0000");
      p.textContent = (before || "") + it.reply.text + (after || "");
      if (it.reply.language) p.lang = it.reply.language;
      li.append(p);
    }
    li.append(this.actions(it, key));
    return li;
  },

  // a task's type ("extra clean", "guest_question") in words, in the screen's language
  titleOf(it) {
    if (it.kind !== "task") return it.title;
    const key = "tasktype." + it.type.replace(/[^a-z0-9]+/gi, "_").toLowerCase();
    if (Kiosk.strings.en[key]) return Kiosk.t(key);
    const words = it.type.replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  },

  join(bits) { return bits.flatMap((b, i) => (i ? [" · ", b] : [b])); },

  badge(text, cls) {
    const s = document.createElement("span");
    s.className = "badge " + cls;
    s.textContent = text;
    return s;
  },

  button(it, key, action, text, cls) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls || "";
    b.textContent = text;
    b.dataset.focus = key + ":" + action;
    b.setAttribute("aria-label", Kiosk.t("staff.action.label", {action: text, what: this.label(it)}));
    return b;
  },

  actions(it, key) {
    const box = document.createElement("div");
    box.className = "item-actions";
    const row = document.createElement("div");
    row.className = "row tap";
    if (it.kind === "approval") {
      for (const [action, cls] of [["approve", ""], ["reject", "secondary"]]) {
        const b = this.button(it, key, action, Kiosk.t("staff." + action), cls);
        b.addEventListener("click", () => this.act(it, action));
        row.append(b);
      }
      box.append(row);
      return box;
    }
    // the next natural step stands out (accept a new one, start an accepted one, finish one in progress)
    const steps = ["accept", "start", "done"].filter(a => it.actions.includes(a));
    for (const action of steps) {
      const b = this.button(it, key, action, Kiosk.t("staff.action." + action), action === steps[0] ? "" : "secondary");
      b.addEventListener("click", () => this.act(it, action));
      row.append(b);
    }
    if (it.actions.includes("make_work_order")) {  // a guest's fault report becomes a work order: one tap
      const b = this.button(it, key, "make_work_order", Kiosk.t("staff.action.make_work_order"), "secondary");
      b.addEventListener("click", () => { b.disabled = true; this.act(it, "make_work_order"); });
      row.append(b);
    }
    if (row.childElementCount) box.append(row);
    if (it.actions.includes("reply")) box.append(this.replyRow(it, key));
    if (it.actions.includes("assign")) box.append(this.assignRow(it, key));
    if (it.kind === "work_order" && it.actions.includes("status")) box.append(this.statusRow(it, key));
    return box;
  },

  assignRow(it, key) {
    const row = document.createElement("div");
    row.className = "row pickrow";
    const people = (this.data.people || []).filter(p => p.onShift);
    if (!people.length) {
      const p = document.createElement("p");
      p.className = "hint";
      p.textContent = Kiosk.t("staff.assign.nobody");
      row.append(p);
      return row;
    }
    const id = "assign-" + key.replace(/[^A-Za-z0-9_-]/g, "-");
    const label = document.createElement("label");
    label.htmlFor = id;
    label.className = "visually-hidden";
    label.textContent = Kiosk.t("staff.assign.to") + " — " + this.label(it);
    const select = document.createElement("select");
    select.id = id;
    select.dataset.focus = key + ":assign-pick";
    for (const p of people) {
      const o = new Option(p.id === this.data.me.id ? Kiosk.t("staff.assign.me", {name: p.name}) : p.name, p.id);
      select.append(o);
    }
    select.value = people.some(p => p.id === it.assignee) ? it.assignee : people[0].id;
    this.keepDraft(select);
    const b = this.button(it, key, "assign", Kiosk.t("staff.action.assign"), "secondary");
    b.addEventListener("click", () => this.act(it, "assign", {assignee: select.value}));
    row.append(label, select, b);
    return row;
  },

  // An answer for the guest who asked: shown on their screen as typed (never translated).
  replyRow(it, key) {
    const row = document.createElement("div");
    row.className = "row pickrow replyrow";
    const id = "reply-" + key.replace(/[^A-Za-z0-9_-]/g, "-");
    const label = document.createElement("label");
    label.htmlFor = id;
    label.className = "reply-label";
    label.textContent = Kiosk.t("staff.reply.label", {name: it.requestedByName || it.requestedBy || ""});
    const text = document.createElement("textarea");
    text.id = id;
    text.rows = 2;
    text.maxLength = 1000;
    text.placeholder = Kiosk.t("staff.reply.placeholder");
    text.dataset.focus = key + ":reply-text";
    const draftKey = text.dataset.focus;
    if (this.drafts[draftKey]) text.value = this.drafts[draftKey];
    text.addEventListener("input", () => { this.drafts[draftKey] = text.value; });
    const b = this.button(it, key, "reply", Kiosk.t(it.reply ? "staff.reply.again" : "staff.reply.send"), "secondary");
    b.addEventListener("click", () => {
      const words = text.value.trim();
      if (!words) { text.focus(); return this.say("staff.reply.empty", "info"); }
      this.act(it, "reply", {text: words});
    });
    row.append(label, text, b);
    return row;
  },

  statusRow(it, key) {
    const row = document.createElement("div");
    row.className = "row pickrow";
    const id = "status-" + it.id.replace(/[^A-Za-z0-9_-]/g, "-");
    const label = document.createElement("label");
    label.htmlFor = id;
    label.className = "visually-hidden";
    label.textContent = `${Kiosk.t("staff.status")} — ${it.id} (${it.title})`;
    const select = document.createElement("select");
    select.id = id;
    select.dataset.focus = key + ":status-pick";
    for (const s of [it.status, ...it.allowedStatuses]) {
      const o = new Option(s === it.status ? Kiosk.t("staff.status.now", {status: Kiosk.t("status." + s)})
                                           : Kiosk.t("status." + s), s);
      select.append(o);
    }
    select.value = it.status;
    this.keepDraft(select);
    const b = this.button(it, key, "status", Kiosk.t("staff.update"), "secondary");
    b.addEventListener("click", () => this.act(it, "status", {status: select.value, expectedVersion: it.version}));
    row.append(label, select, b);
    return row;
  },

  // A choice not sent yet is put back after a refresh (the list may change under the
  // person's finger: a new request arrives while they pick a status).
  keepDraft(select) {
    const key = select.dataset.focus;
    if (key in this.drafts && [...select.options].some(o => o.value === this.drafts[key])) select.value = this.drafts[key];
    select.addEventListener("change", () => { this.drafts[key] = select.value; });
    select.addEventListener("blur", () => { if (this.pending) setTimeout(() => this.render(), 0); });
  },

  async act(it, action, extra) {
    const mine = k => k.startsWith(it.kind + ":" + it.id + ":");
    // a reply being written is kept until it is sent (a refused one stays to be corrected)
    for (const k of Object.keys(this.drafts)) if (mine(k) && !k.endsWith(":reply-text")) delete this.drafts[k];
    if (action === "status" && extra.status === it.status) return;
    const r = await Kiosk.api("POST", `/api/staff/tasks/${it.kind}/${encodeURIComponent(it.id)}`,
                              {action, ...(extra || {})});
    if (!r.ok) {
      const code = r.code === "INVALID_TRANSITION" ? "INVALID_TRANSITION" : r.code;
      if (action === "reply" && code === "VALIDATION_ERROR") this.say("staff.reply.invalid", "error");
      else this.say("error." + (Kiosk.strings.en["error." + code] ? code : "INTERNAL_ERROR"), "error");
      return this.refresh();
    }
    if (action === "reply") delete this.drafts[it.kind + ":" + it.id + ":reply-text"];
    const person = (this.data.people || []).find(p => p.id === (extra || {}).assignee);
    const key = action === "status" ? "staff.saved" : "staff.did." + action;
    this.say(key, "ok", {what: this.label(it), name: person ? person.name : ""});
    await this.refresh();
  },

  setScope(scope) {
    this.filters.scope = scope;
    localStorage.setItem("kiosk.staff.scope", scope);
    this.refresh();
  },

  live(on) {
    const el = this.el("live");
    el.textContent = Kiosk.t(on ? "staff.live" : "staff.reconnecting");
    el.className = "live " + (on ? "on" : "off");
  },

  listen() {
    this.stop();
    const es = Kiosk.eventSource("/api/staff/events");  // with this screen's key
    this.feed = es;
    es.addEventListener("hello", () => { this.live(true); this.refresh(); });  // (re)connected: catch up
    es.addEventListener("queue", () => this.refresh());
    es.addEventListener("ended", () => { this.stop(); if (this.onSignedOut) this.onSignedOut(); });
    es.onerror = () => {
      if (this.feed !== es) return;
      if (es.readyState !== EventSource.CLOSED) return this.live(false);  // the browser reconnects by itself
      // refused for good (429 BUSY: the kiosk has as many live screens open as it serves):
      // refresh by polling, and try the live feed again later
      this.feed = null;
      this.polling();
    };
  },

  polling() {
    const el = this.el("live");
    el.textContent = Kiosk.t("staff.polling");
    el.className = "live off";
    clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => this.refresh(), this.POLL_MS);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.listen(), this.RETRY_MS + Math.random() * this.RETRY_MS);
  },

  stop() {
    clearInterval(this.pollTimer);
    clearTimeout(this.retryTimer);
    this.pollTimer = this.retryTimer = null;
    if (this.feed) this.feed.close();
    this.feed = null;
  },

  clear() {
    this.stop();
    this.data = null;
    this.failed = false;
    this.el("queue").replaceChildren();
    this.el("live").textContent = "";
  },

  init({say, onSignedOut}) {
    this.say = say;
    this.onSignedOut = onSignedOut;
    document.querySelectorAll("[data-scope]").forEach(b => b.addEventListener("click", () => this.setScope(b.dataset.scope)));
    this.el("filter-room").addEventListener("change", ev => { this.filters.room = ev.target.value; this.refresh(); });
    this.el("filter-kind").addEventListener("change", ev => { this.filters.kind = ev.target.value; this.refresh(); });
    setInterval(() => { if (this.data) this.render(); }, 30000);  // "12 min ago" moves on
    // the person went somewhere else on purpose: a refresh no longer brings them back into the list
    for (const kind of ["focusin", "pointerdown"])
      document.addEventListener(kind, ev => { if (!this.el("queue").contains(ev.target)) this.focusKey = null; });
  },
};
