// The lobby: idle screen -> (camera scan via server-sent events, or a typed code) -> the
// guest's screen; back to idle after inactivity or when the session ends.
"use strict";
const $ = id => document.getElementById(id);
const msg = $("message");
let idleTimer = null, endTimer = null, home = null;

function showIdle(key) {
  Kiosk.signedIn = false;
  home = null;
  clearTimeout(idleTimer);
  clearTimeout(endTimer);
  $("guest").hidden = true;
  $("idle").hidden = false;
  $("token").value = "";
  Kiosk.say(msg, key || "", key ? "ok" : "");
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

function renderGuest() {
  if (!home) return;
  $("welcome").textContent = home.welcome && Kiosk.lang === home.guest.language
    ? home.welcome : Kiosk.t("lobby.title") + ", " + home.guest.name;
  const room = home.room;
  $("room").textContent = room ? Kiosk.t(room.ready ? "guest.room.ready" : "guest.room.notready", {room: room.roomNumber})
                               : Kiosk.t("guest.room.none");
  $("stay-card").hidden = !home.stay;
  if (home.stay) $("stay").textContent = Kiosk.t("guest.stay.dates", home.stay);
  const list = $("offers");
  list.replaceChildren();
  if (!home.offers.length) {
    const li = document.createElement("li");
    li.textContent = Kiosk.t("guest.offers.none");
    list.append(li);
  }
  for (const o of home.offers) {
    const li = document.createElement("li");
    li.textContent = `${o.name} — ${Number(o.price).toFixed(2)}`;
    list.append(li);
  }
}

async function opened(result) {
  Kiosk.signedIn = true;  // the scan (or the claim) set the session cookie
  if (result.user.role !== "guest") {  // staff and admins work at the staff terminal
    location.href = result.user.role === "admin" ? "/admin" : "/staff";  // admins: the dashboard
    return;
  }
  const r = await Kiosk.api("GET", "/api/guest/home");
  if (!r.ok) return showError(r.code);
  home = r.data;
  if (home.guest.language && Kiosk.strings[home.guest.language]) Kiosk.setLang(home.guest.language);
  Kiosk.say(msg, "");
  $("idle").hidden = true;
  $("guest").hidden = false;
  renderGuest();
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

// The hotel a token claims (its payload's "hid"); the server checks it against the signature.
function tokenHotel(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).hid || "";
  } catch (e) { return ""; }
}

async function sendRequest(ev) {
  ev.preventDefault();
  touch();
  const r = await Kiosk.api("POST", "/api/guest/requests", {text: $("request-text").value.trim(), kind: $("request-kind").value});
  if (!r.ok) return showError(r.code);
  $("request-text").value = "";
  Kiosk.say(msg, r.data.duplicateOf ? "guest.request.duplicate" : "guest.request.sent", "ok");
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
    if (Kiosk.signedIn) return;  // someone is using the screen
    if (e.ok) claim(e.claim); else showError(e.code);
  });
}

(async () => {
  await Kiosk.loadStrings();
  Kiosk.initLangSwitch();
  Kiosk.onLang = renderGuest;
  Kiosk.translate();
  $("manual").addEventListener("submit", scanTyped);
  $("request").addEventListener("submit", sendRequest);
  $("logout").addEventListener("click", () => logout("session.ended"));
  ["pointerdown", "keydown"].forEach(t => document.addEventListener(t, touch));
  listen();
  document.body.dataset.ready = "yes";
})();
