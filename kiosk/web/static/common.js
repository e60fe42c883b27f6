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
  headers(extra) {
    const h = {"X-Kiosk-Screen": "1", ...(extra || {})};
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

  initLangSwitch() {
    document.querySelectorAll("[data-lang]").forEach(b => b.addEventListener("click", () => this.setLang(b.dataset.lang)));
  },
};
