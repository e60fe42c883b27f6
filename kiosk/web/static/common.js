// Shared by the lobby and the staff screens: translations, the API, the session.
"use strict";
const Kiosk = {
  lang: localStorage.getItem("kiosk.lang") || (navigator.language || "en").slice(0, 2),
  strings: {},
  signedIn: false,  // the session itself is an HttpOnly cookie: scripts never see it

  // The cookie counts only with this screen's key (a browser sends cookies to every port of
  // the host; localStorage is this origin's alone, port included).  A scan or claim answers
  // with the key (never a session JWT); every request sends it back as X-Kiosk-Key, an
  // EventSource (no headers) as ?kioskKey=.  Signing out forgets it.
  KEY_ITEM: "kiosk.screenKey",
  key() { return localStorage.getItem(this.KEY_ITEM) || ""; },
  keep(data) { if (data && data.screenKey) localStorage.setItem(this.KEY_ITEM, data.screenKey); },
  forget() { localStorage.removeItem(this.KEY_ITEM); },

  // Headers for a request of this screen: the key, and the mark that makes a scan answer for
  // a screen (the bound cookie and the key instead of the JWT).
  // The lobby says "lobby": a session opened there is the lobby's visit (it ends with it).
  screen: "1",
  headers(extra) {
    const h = {"X-Kiosk-Screen": this.screen, ...(extra || {})};
    const k = this.key();
    if (k) h["X-Kiosk-Key"] = k;
    return h;
  },

  eventSource(path) {
    const k = this.key();
    return new EventSource(k ? path + (path.includes("?") ? "&" : "?") + "kioskKey=" + encodeURIComponent(k) : path);
  },

  async loadStrings() {
    const r = await fetch("/static/i18n.json");
    this.strings = await r.json();
    if (!this.strings[this.lang]) this.lang = "en";
  },

  t(key, vars) {
    let s = (this.strings[this.lang] || {})[key] || (this.strings.en || {})[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
    return s;
  },

  // Every element with data-i18n gets its text from the dictionary.
  translate(root) {
    (root || document).querySelectorAll("[data-i18n]").forEach(el => { el.textContent = this.t(el.dataset.i18n); });
    document.documentElement.lang = this.lang;
    document.querySelectorAll("[data-lang]").forEach(b => b.setAttribute("aria-pressed", String(b.dataset.lang === this.lang)));
  },

  setLang(lang) {
    this.lang = lang;
    localStorage.setItem("kiosk.lang", lang);
    this.translate();
    if (this.onLang) this.onLang();
  },

  async api(method, path, body) {
    const headers = this.headers({"Content-Type": "application/json"});
    let r;
    try {
      r = await fetch(path, {method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (e) {
      return {ok: false, status: 0, code: "NETWORK"};
    }
    let data = {};
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) return {ok: false, status: r.status, code: (data.error || {}).code || "INTERNAL_ERROR", data};
    this.keep(data);  // a scan's or claim's answer: this screen's new key
    return {ok: true, status: r.status, data};
  },

  say(el, key, kind, vars) {
    el.textContent = key ? this.t(key, vars) : "";
    el.className = "message" + (kind ? " " + kind : "");
  },

  // Staff and admin pages sign out by themselves after the session's idle time without a
  // touch, key or input (`who`: GET /api/session's answer: idleSeconds, visit), counting down
  // in a line of the header ("Signs out in 4:12 without activity").  Activity also tells the
  // server now and then (its idle timer counts requests).  At zero: DELETE /api/session, then
  // onEnd(lobby) — lobby: the session was the lobby's visit, so the screen goes back there.
  watchIdle(who, onEnd) {
    this.stopIdle();
    const seconds = Number(who && who.idleSeconds);
    if (!seconds) return;
    const lobby = who.visit === "lobby", pingMs = Math.min(30, seconds / 3) * 1000;
    let last = Date.now(), pinged = last, ended = false;
    let el = document.getElementById("idle-left");
    if (!el) {
      el = document.createElement("span");
      el.id = "idle-left";
      el.className = "idle-left";
      el.setAttribute("role", "timer");  // not announced every second
      const nav = document.querySelector("header nav") || document.querySelector("header");
      if (nav) nav.prepend(el);
    }
    const end = async () => {
      if (ended) return;
      ended = true;
      this.idleEnding = true;  // the live feed's "ended" for this DELETE is ours: the screen says why
      this.stopIdle();
      await this.api("DELETE", "/api/session");
      this.forget();
      try { onEnd(lobby); } finally { this.idleEnding = false; }
    };
    const activity = () => {
      if (ended) return;
      last = Date.now();
      if (last - pinged < pingMs) return;
      pinged = last;
      this.api("GET", "/api/session").then(r => { if (!r.ok && r.status === 401) end(); });
    };
    const tick = () => {
      const left = Math.ceil((seconds * 1000 - (Date.now() - last)) / 1000);
      if (left <= 0) return end();
      const time = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      el.textContent = this.t("session.idle.countdown", {time});
      el.classList.toggle("soon", left <= 30);  // the last half minute stands out
      el.hidden = false;
    };
    const events = ["pointerdown", "keydown", "input", "wheel"];
    events.forEach(t => document.addEventListener(t, activity, true));
    const timer = setInterval(tick, 1000);
    tick();
    const unwatch = lobby ? this.watchLobby() : () => {};
    this.idle = {lobby, end, stop: () => {
      clearInterval(timer);
      events.forEach(t => document.removeEventListener(t, activity, true));
      el.hidden = true;
      unwatch();
    }};
  },

  // A staff or admin visit from the lobby keeps the lobby's camera in view: a guest holding a
  // code up meanwhile is told about on this page (a banner: "A guest is waiting …").  The
  // scan's one-time claim is left for the lobby, which takes it when the visit ends (the
  // code is not consumed before; a claim gone stale is dropped and the code still works).
  WAITING_ITEM: "kiosk.waitingClaim",
  watchLobby() {
    const es = new EventSource("/screen/events");  // the kiosk's own screen only (else refused: nothing shown)
    es.addEventListener("scan", ev => {
      const e = JSON.parse(ev.data);
      if (!e.ok) return;
      sessionStorage.setItem(this.WAITING_ITEM, e.claim);
      let note = document.getElementById("lobby-waiting");
      if (!note) {
        note = document.createElement("p");
        note.id = "lobby-waiting";
        note.className = "notice lobby-waiting";
        note.setAttribute("role", "status");
        note.dataset.i18n = "visit.waiting";
        const main = document.querySelector("main");
        if (main) main.prepend(note); else document.body.prepend(note);
      }
      note.textContent = this.t("visit.waiting");
      note.hidden = false;
    });
    return () => {
      es.close();
      const note = document.getElementById("lobby-waiting");
      if (note) note.hidden = true;
    };
  },

  stopIdle() {
    if (this.idle) this.idle.stop();
  },

  initLangSwitch() {
    document.querySelectorAll("[data-lang]").forEach(b => b.addEventListener("click", () => this.setLang(b.dataset.lang)));
  },
};
