// The guest's screen in the lobby: welcome, room and stay, offers they can take, their
// requests and what became of each (refreshed every few seconds), a request by text or
// by voice, and questions for the hotel's FAQ.  Guest.clear() removes every guest datum
// from the page (logout, inactivity): the next person at the screen sees nothing of it.
"use strict";
const Guest = {
  POLL_MS: 3000,
  home: null,
  requests: null,
  requestsFailed: false,  // the requests never loaded (the last try failed): not "nothing yet"
  stages: {},        // requestId -> the stage last shown (to announce changes)
  replies: {},       // requestId -> the staff reply last shown (to announce a new one)
  pollTimer: null,
  answer: null,      // the last answer to a question {kind, text}
  voiceState: "",    // the voice status key shown
  onActivity: null,  // the lobby's inactivity timer: called on every guest action

  el(id) { return document.getElementById(id); },

  show(home) {
    this.home = home;
    this.requests = null;
    this.requestsFailed = false;
    this.stages = {};
    this.replies = {};
    this.render();
    this.el("talk").hidden = !Voice.supported();
    this.el("voice-help").hidden = !Voice.supported();
    this.refresh();
    clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => this.refresh(), this.POLL_MS);
  },

  // The same guest's screen again, in another language (the property's texts in it): their
  // requests, answers and what is being announced stay.
  update(home) {
    if (!this.home) return;
    this.home = home;
    this.render();
  },

  // Everything the guest's session put on the page goes; forms are emptied.
  clear() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
    Voice.cancel();
    this.home = null;
    this.requests = null;
    this.requestsFailed = false;
    this.stages = {};
    this.replies = {};
    this.answer = null;
    this.voiceState = "";
    for (const id of ["welcome", "room", "stay", "voice-status", "requests-live"]) this.el(id).textContent = "";
    for (const id of ["offers", "requests", "answer"]) this.el(id).replaceChildren();
    for (const id of ["request", "question"]) this.el(id).reset();
    this.setTalking(false);
  },

  render() {
    const home = this.home;
    if (!home) return;
    this.el("welcome").textContent = home.welcome && Kiosk.lang === home.guest.language
      ? home.welcome : Kiosk.t("guest.welcome", {name: home.guest.name});
    const room = home.room;
    this.el("room").textContent = room
      ? Kiosk.t(this.roomKey(room), {room: room.roomNumber})
      : Kiosk.t(home.stay ? "guest.room.none" : "guest.room.walkin");
    this.el("request-room-field").hidden = !!home.stay;  // a walk-in's code names no room: the guest says it
    this.el("request-room").required = !home.stay;
    this.el("stay").textContent = home.stay ? Kiosk.t("guest.stay.dates", {
      arrival: Fmt.date(home.stay.arrival), departure: Fmt.date(home.stay.departure),
      nights: home.stay.nights}) : "";
    this.renderOffers();
    this.renderRequests();
    this.renderAnswer();
    this.el("voice-status").textContent = this.voiceState ? Kiosk.t(this.voiceState.key, this.voiceState.vars) : "";
  },

  // What is true about the room today, as the server tells it (room.state): "being prepared"
  // is for an arrival; a guest in house reads that housekeeping is looking after it.
  ROOM_KEYS: {ready: "guest.room.ready", preparing: "guest.room.notready", upcoming: "guest.room.upcoming",
              service: "guest.room.service", unavailable: "guest.room.unavailable",
              checked_out: "guest.room.checked_out"},
  roomKey(room) {
    return this.ROOM_KEYS[room.state] || (room.ready ? "guest.room.ready" : "guest.room.notready");
  },

  // Words the hotel wrote (an offer, an FAQ answer) in the language they are in: lang= so a
  // screen reader reads English words as English on a German screen.
  inLang(el, lang) {
    if (lang) el.lang = lang;
    return el;
  },

  renderOffers() {
    const list = this.el("offers");
    list.replaceChildren();
    if (!this.home.offers.length) list.append(this.li(Kiosk.t("guest.offers.none"), "empty"));
    for (const o of this.home.offers) {
      const li = document.createElement("li");
      li.className = "offer";
      li.dataset.offer = o.offerId;
      const what = document.createElement("div");
      const name = this.inLang(document.createElement("strong"), o.lang);
      name.textContent = o.name;
      const price = document.createElement("span");
      price.className = "price";
      price.textContent = Fmt.money(o.price, o.currency);
      what.append(name, " ", price);
      const other = o.lang !== Kiosk.lang && {en: "guest.reply.in.en", de: "guest.reply.in.de"}[o.lang];
      if (o.description || other) {  // the hotel wrote none in the screen's language: said so
        const d = document.createElement("div");
        d.className = "hint offer-desc";
        if (o.description) {
          const words = this.inLang(document.createElement("span"), o.lang);
          words.textContent = o.description;
          d.append(words);
        }
        if (other) {
          const mark = document.createElement("span");
          mark.className = "offer-lang";
          mark.textContent = (o.description ? " " : "") + `(${Kiosk.t(other)})`;
          d.append(mark);
        }
        what.append(d);
      }
      if (o.fallback) li.classList.add("fallback");
      li.append(what);
      if (o.accepted) {
        const done = document.createElement("span");
        done.className = "badge stage-done";
        done.textContent = Kiosk.t("guest.offers.taken");
        li.append(done);
      } else {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "fit";
        b.textContent = Kiosk.t("guest.offers.take");
        b.setAttribute("aria-label", Kiosk.t("guest.offers.take.label", {name: o.name, price: Fmt.money(o.price, o.currency)}));
        b.addEventListener("click", () => this.takeOffer(o, b));
        li.append(b);
      }
      list.append(li);
    }
  },

  renderRequests() {
    const list = this.el("requests");
    list.replaceChildren();
    if (this.requests === null) {  // not loaded: say so only when loading failed
      if (this.requestsFailed) list.append(this.li(Kiosk.t("guest.requests.failed"), "empty failed"));
      return;
    }
    if (!this.requests.length) {
      list.append(this.li(Kiosk.t("guest.requests.none"), "empty"));
      return;
    }
    for (const r of this.requests) {
      const li = document.createElement("li");
      li.dataset.request = r.requestId;
      li.dataset.stage = r.stage;
      const text = document.createElement("span");
      text.className = "words";
      text.textContent = r.text;
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = Fmt.ago(r.createdAt);
      const badge = document.createElement("span");
      // a question answered is not just "received", and its "done" is the answer
      const answered = r.reply && (r.stage === "received" || r.stage === "done");
      badge.className = "badge stage-" + (answered ? "done" : r.stage);
      badge.textContent = answered ? Kiosk.t("guest.reply.badge") : Kiosk.t("guest.stage." + r.stage);
      li.append(text, badge, when);
      if (r.reply) li.append(this.replyLine(r.reply));
      list.append(li);
    }
  },

  // "Answered by Grace: …" — the staff member's words as they typed them (never machine-
  // translated); when they are in another language than the screen's, the language is said.
  replyLine(reply) {
    const p = document.createElement("p");
    p.className = "reply";
    const words = document.createElement("span");
    words.className = "reply-text";
    words.textContent = reply.text;
    if (reply.language) words.lang = reply.language;
    const [before, after] = Kiosk.t("guest.reply", {name: reply.by, text: "\u0000"}).split("\u0000");
    p.append(before || "", words, after || "");
    const other = {en: "guest.reply.in.en", de: "guest.reply.in.de", fr: "guest.reply.in.fr"}[reply.language];
    if (other && reply.language !== Kiosk.lang) {
      const mark = document.createElement("span");
      mark.className = "reply-lang";
      mark.textContent = ` (${Kiosk.t(other)})`;
      p.append(mark);
    }
    return p;
  },

  renderAnswer() {
    const box = this.el("answer");
    box.replaceChildren();
    if (!this.answer) return;
    const p = document.createElement("p");
    p.className = "answer-text " + this.answer.kind;
    if (this.answer.key) {
      p.textContent = Kiosk.t(this.answer.key);
    } else {  // the FAQ's words; in another language than the screen's (none in it): said so
      const words = this.inLang(document.createElement("span"), this.answer.lang);
      words.className = "answer-words";
      words.textContent = this.answer.text;
      p.append(words);
      const other = {en: "guest.reply.in.en", de: "guest.reply.in.de", fr: "guest.reply.in.fr"}[this.answer.lang];
      if (other && this.answer.lang !== Kiosk.lang) {
        const mark = document.createElement("span");
        mark.className = "answer-lang";
        mark.textContent = ` (${Kiosk.t(other)})`;
        p.append(mark);
      }
    }
    box.append(p);
  },

  li(text, cls) {
    const li = document.createElement("li");
    li.textContent = text;
    if (cls) li.className = cls;
    return li;
  },

  async refresh() {
    if (!this.home) return;
    const r = await Kiosk.api("GET", "/api/guest/requests");
    if (!this.home) return;  // logged out meanwhile
    if (!r.ok) {
      if (r.code === "SESSION_EXPIRED" || r.code === "UNAUTHORIZED") clearInterval(this.pollTimer);
      else if (this.requests === null && !this.requestsFailed) { this.requestsFailed = true; this.renderRequests(); }
      return;
    }
    this.requestsFailed = false;
    const changed = [], answered = [];
    for (const q of r.data.requests) {
      if (this.stages[q.requestId] && this.stages[q.requestId] !== q.stage) changed.push(q);
      this.stages[q.requestId] = q.stage;
      const at = q.reply ? q.reply.at + q.reply.text : "";
      if (q.requestId in this.replies && at && this.replies[q.requestId] !== at) answered.push(q);
      this.replies[q.requestId] = at;
    }
    this.requests = r.data.requests;
    this.renderRequests();
    if (changed.length || answered.length) {  // said once, politely, for screen-reader users
      this.el("requests-live").textContent = [
        ...changed.map(q => Kiosk.t("guest.stage.changed", {text: q.text, stage: Kiosk.t("guest.stage." + q.stage)})),
        ...answered.map(q => Kiosk.t("guest.reply.new", {text: q.text, name: q.reply.by, reply: q.reply.text})),
      ].join(" ");
    }
  },

  activity() { if (this.onActivity) this.onActivity(); },

  say(key, kind, vars) { Kiosk.say(document.getElementById("message"), key, kind, vars); },

  sayError(code) {
    this.say("error." + (Kiosk.strings.en["error." + code] ? code : "INTERNAL_ERROR"), "error");
  },

  // a refused request: "one moment" when the guest sent several at once (429 RATE_LIMITED:
  // nothing is wrong, the kiosk asks them to wait a little), the error's words otherwise
  sayRefused(r) {
    if (r.code !== "RATE_LIMITED") return this.sayError(r.code);
    const seconds = Number((((r.data || {}).error || {}).details || {}).retryAfter) || 0;
    this.say(seconds > 0 ? "guest.wait.seconds" : "guest.wait", "info", {seconds: Math.ceil(seconds)});
  },

  async sendRequest(ev) {
    ev.preventDefault();
    this.activity();
    const text = this.el("request-text").value.trim();
    if (text.length < 2) { this.el("request-text").focus(); return this.say("guest.request.short", "info"); }
    const body = {text, kind: this.el("request-kind").value};
    if (this.home && !this.home.stay) {  // a walk-in: staff must know where to go
      const room = this.el("request-room").value.trim();
      if (!/^[A-Za-z0-9-]{1,16}$/.test(room)) { this.el("request-room").focus(); return this.say("guest.request.room.missing", "info"); }
      body.roomNumber = room;
    }
    const r = await Kiosk.api("POST", "/api/guest/requests", body);
    if (!r.ok) return this.sayRefused(r);
    this.el("request").reset();
    this.voiceSay("");
    this.say(r.data.duplicateOf ? "guest.request.duplicate" : "guest.request.sent", "ok");
    await this.refresh();
  },

  async takeOffer(o, button) {
    this.activity();
    button.disabled = true;
    const r = await Kiosk.api("POST", `/api/guest/offers/${encodeURIComponent(o.offerId)}/accept`);
    if (!this.home) return;
    if (!r.ok) { button.disabled = false; return this.sayRefused(r); }
    o.accepted = true;
    this.renderOffers();
    this.say("guest.offers.added", "ok", {name: o.name, price: Fmt.money(r.data.price, r.data.currency)});
    const row = this.el("offers").querySelector(`li[data-offer="${CSS.escape(o.offerId)}"]`);
    if (row) { row.tabIndex = -1; row.focus(); }
  },

  async ask(ev) {
    ev.preventDefault();
    this.activity();
    const question = this.el("question-text").value.trim();
    if (question.length < 2) return this.el("question-text").focus();
    this.answer = {kind: "pending", key: "guest.question.thinking"};
    this.renderAnswer();
    const r = await Kiosk.api("POST", "/api/guest/questions", {question, language: Kiosk.lang});
    if (!this.home) return;
    if (!r.ok) { this.answer = null; this.renderAnswer(); return this.sayRefused(r); }
    this.showAnswer(r.data);
    this.el("question-text").value = "";
    await this.refresh();
  },

  showAnswer(a) {
    if (a.answered) this.answer = {kind: "answered", text: a.answer, lang: a.answerLanguage};
    else this.answer = {kind: "handover", key: a.reason === "unavailable" ? "guest.question.unavailable"
                                                                        : "guest.question.handover"};
    this.renderAnswer();
  },

  setTalking(on) {
    const b = this.el("talk");
    b.setAttribute("aria-pressed", String(on));
    b.classList.toggle("recording", on);
    b.textContent = Kiosk.t(on ? "guest.voice.stop" : "guest.voice.start");
    b.dataset.i18n = on ? "guest.voice.stop" : "guest.voice.start";
  },

  voiceSay(key, vars, kind) {
    this.voiceState = key ? {key, vars} : "";
    const el = this.el("voice-status");
    el.textContent = key ? Kiosk.t(key, vars) : "";
    el.className = "status" + (kind ? " " + kind : "");
  },

  async talk() {
    this.activity();
    if (Voice.session) { Voice.stop(); return; }  // the second press sends at once
    this.say("");  // an earlier message is not about this
    this.setTalking(true);
    let clip;
    try {
      clip = await Voice.record({maxSeconds: 10, onState: s => {
        this.activity();
        this.voiceSay(s === "speech" ? "guest.voice.hearing" : "guest.voice.listening");
      }});
    } catch (e) {
      this.setTalking(false);
      return this.voiceSay("guest.voice.nomic", null, "info");
    }
    this.setTalking(false);
    if (!this.home) return;  // logged out while listening: nothing is sent
    if (!clip.heardSpeech) return this.voiceSay("guest.voice.silence", null, "info");
    this.voiceSay("guest.voice.working");
    const r = await Kiosk.api("POST", "/api/guest/voice", {audio: clip.audio, language: Kiosk.lang});
    if (!this.home) return;
    if (!r.ok) return this.voiceSay(r.code === "VALIDATION_ERROR" ? "guest.voice.not_understood"
                                                                 : "guest.voice.unavailable", null, "info");
    const v = r.data;
    if (v.outcome === "request") {
      this.voiceSay(v.duplicateOf ? "guest.voice.duplicate" : "guest.voice.sent", {text: v.transcript}, "ok");
      await this.refresh();
    } else if (v.outcome === "answer" || v.outcome === "handover") {
      this.voiceSay("guest.voice.heard", {text: v.transcript});
      this.showAnswer(v);
      await this.refresh();
    } else {
      this.voiceSay(v.outcome === "unavailable" ? "guest.voice.unavailable" : "guest.voice.not_understood",
                    null, "info");
    }
  },

  init(onActivity) {
    this.onActivity = onActivity;
    this.el("request").addEventListener("submit", ev => this.sendRequest(ev));
    this.el("question").addEventListener("submit", ev => this.ask(ev));
    this.el("talk").addEventListener("click", () => this.talk());
    // relative times ("3 min ago") move on
    setInterval(() => { if (this.requests) this.renderRequests(); }, 30000);
  },
};
