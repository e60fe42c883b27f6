// The lobby: idle screen -> (camera scan via server-sent events, or a typed code) -> the
// guest's screen (guest.js); back to idle after inactivity or when the session ends, with
// nothing of the guest left on the page and the screen's own language back.
"use strict";
const $ = id => document.getElementById(id);
const msg = $("message");
let idleTimer = null, endTimer = null, home = null, langChosen = false;
// a camera scan that came while someone was using the screen: its claim, handed over when the
// visit ends (the code is consumed only if the claim is redeemed: a claim left stays unused)
let waiting = null;
Kiosk.screen = "lobby";  // sessions opened here (any role) are this screen's visit

// The screen's language when nobody is using it: data-default-lang, else the device's.
function defaultLang() {
  const want = document.body.dataset.defaultLang || (navigator.language || "en").slice(0, 2);
  return Kiosk.strings[want] ? want : "en";
}

function showIdle(key) {
  Kiosk.signedIn = false;
  Kiosk.forget();  // the screen key of the session that ended
  home = null;
  clearTimeout(idleTimer);
  clearTimeout(endTimer);
  Guest.clear();  // the guest's name, room, requests, offers, answers and form contents go
  $("guest").hidden = true;
  $("idle").hidden = false;
  $("manual").reset();
  $("booking").reset();  // the booking number and name typed go too
  langChosen = false;
  localStorage.removeItem("kiosk.lang");  // the next person starts in the screen's language
  Kiosk.lang = defaultLang();
  Kiosk.translate();
  Kiosk.say(msg, key || "", key ? "info" : "");
  handOver();
}

// The next person's code, read while the screen was busy: theirs now, if the claim is still
// fresh (screen.claim_seconds); a stale one is dropped quietly and their code stays usable.
async function handOver() {
  const code = waiting;
  waiting = null;
  if (!code) return;
  const r = await Kiosk.api("POST", "/screen/claim", {claim: code});
  if (r.ok) await opened(r.data);
  else if (r.code !== "SESSION_EXPIRED") showError(r.code);
}

function touch() {
  if (!Kiosk.signedIn) return;
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => logout("session.ended"), Number(document.body.dataset.idleSeconds) * 1000);
}

async function logout(key) {
  if (Kiosk.signedIn) await Kiosk.api("DELETE", "/api/session");
  showIdle(key || "session.ended");
}

// Another language chosen while a guest uses the screen: the screen's words at once, the
// property's texts (offers) in it as soon as the kiosk answers.
async function renderGuest() {
  if (!home) return;
  Guest.render();
  const was = home, lang = Kiosk.lang;
  const r = await Kiosk.api("GET", "/api/guest/home?lang=" + encodeURIComponent(lang));
  if (!r.ok || home !== was || Kiosk.lang !== lang) return;  // logged out or changed again meanwhile
  home = r.data;
  Guest.update(home);
}

async function opened(result) {
  Kiosk.signedIn = true;  // the scan (or the claim) set the session cookie
  if (result.user.role !== "guest") {  // staff and admins work at the staff terminal
    location.href = result.user.role === "admin" ? "/admin" : "/staff";  // admins: the dashboard
    return;
  }
  // the property's texts (offers) in the language the person chose here, else the reservation's
  const r = await Kiosk.api("GET", "/api/guest/home" + (langChosen ? "?lang=" + encodeURIComponent(Kiosk.lang) : ""));
  if (!r.ok) return showError(r.code);
  home = r.data;
  // the reservation's language, unless the person at the screen chose one just now
  if (!langChosen && home.guest.language && Kiosk.strings[home.guest.language]) {
    Kiosk.lang = home.guest.language;
    Kiosk.translate();
  }
  Kiosk.say(msg, "");
  $("idle").hidden = true;
  $("guest").hidden = false;
  Guest.show(home);
  $("welcome").focus();
  touch();
  const left = Date.parse(result.expiresAt) - Date.now();
  endTimer = setTimeout(() => logout("session.ended"), Math.max(left, 1000));
}

function showError(code) {
  Kiosk.say(msg, "error." + (Kiosk.strings.en["error." + code] ? code : "INTERNAL_ERROR"), "error");
}

async function scanTyped(ev) {
  ev.preventDefault();
  const token = $("token").value.trim();
  if (!token) return showError("VALIDATION_ERROR");
  Kiosk.say(msg, "lobby.checking");
  const r = await Kiosk.api("POST", "/api/qr/scan", {qrToken: token, hotelId: document.body.dataset.hotel || tokenHotel(token), scanMethod: "manual"});
  if (!r.ok) return showError(r.code);
  await opened(r.data);
}

// Sign in with the booking number and last name (no code at hand, or no camera): the same
// answer as a scan.  No hotelId: the kiosk looks in every hotel it serves.  A refusal never
// says which half was wrong.
async function signInWithBooking(ev) {
  ev.preventDefault();
  const confirmation = $("booking-number").value.trim(), lastName = $("last-name").value.trim();
  if (!confirmation || !lastName) return Kiosk.say(msg, "lobby.booking.missing", "error");
  Kiosk.say(msg, "lobby.booking.checking");
  const r = await Kiosk.api("POST", "/api/lobby/sign-in", {confirmation, lastName});
  if (!r.ok) return r.code === "INVALID_TOKEN" ? Kiosk.say(msg, "lobby.booking.refused", "error") : showError(r.code);
  await opened(r.data);
}

// The hotel a token claims (its payload's "hid"); the server checks it against the signature.
function tokenHotel(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).hid || "";
  } catch (e) { return ""; }
}

// A camera scan arrives as a one-time claim: redeeming it sets this screen's session cookie
// (the feed itself never carries a session).
async function claim(code) {
  const r = await Kiosk.api("POST", "/screen/claim", {claim: code});
  if (!r.ok) return showError(r.code);
  await opened(r.data);
}

function listen() {
  const es = new EventSource("/screen/events");
  es.addEventListener("scan", ev => {
    const e = JSON.parse(ev.data);
    if (Kiosk.signedIn) {  // someone is using the screen: their screen stays, the code stays unused
      if (e.ok) {
        waiting = e.claim;
        Kiosk.say(msg, "lobby.busy", "info");
      }
      return;
    }
    if (e.ok) claim(e.claim); else showError(e.code);
  });
}

(async () => {
  await Kiosk.loadStrings();
  localStorage.removeItem("kiosk.lang");  // a shared screen: no language carried over from before
  Kiosk.lang = defaultLang();
  document.querySelectorAll("[data-lang]").forEach(b => b.addEventListener("click", () => {
    langChosen = true;
    Kiosk.lang = b.dataset.lang;  // not remembered: the next person starts in the screen's language
    Kiosk.translate();
    renderGuest();
  }));
  Kiosk.translate();
  $("manual").addEventListener("submit", scanTyped);
  $("booking").addEventListener("submit", signInWithBooking);
  Guest.init(touch);
  $("logout").addEventListener("click", () => logout("session.ended"));
  const preview = $("preview-img");
  if (preview) {  // no picture from the camera: no empty box, the typed code instead
    const noPicture = () => {
      $("preview").hidden = true;
      $("preview-help").hidden = true;
      $("nocamera").hidden = false;
      $("invite").dataset.i18n = "lobby.invite.nocamera";  // no camera: the heading asks for the booking
      $("booking-title").dataset.i18n = "lobby.booking.title.only";
      Kiosk.translate();
    };
    preview.addEventListener("error", noPicture);
    if (preview.complete && preview.naturalWidth === 0) noPicture();  // failed before this script ran
  }
  ["pointerdown", "keydown", "input"].forEach(t => document.addEventListener(t, touch));
  listen();
  // a code read while a staff or admin visit from here was on (common.js watchLobby): theirs now
  waiting = sessionStorage.getItem(Kiosk.WAITING_ITEM);
  sessionStorage.removeItem(Kiosk.WAITING_ITEM);
  await handOver();
  document.body.dataset.ready = "yes";
})();
