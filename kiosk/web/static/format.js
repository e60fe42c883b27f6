// Times and money the way people read them, in the screen's language: "12 min ago",
// "due in 1 h", "€25.00".  Shared by the lobby and the staff terminal.
"use strict";
const Fmt = {
  // the server's clock minus ours, so relative times agree with the kiosk's clock
  skewMs: 0,

  setServerNow(iso) {
    const t = Date.parse(iso || "");
    if (!Number.isNaN(t)) this.skewMs = t - Date.now();
  },

  now() { return Date.now() + this.skewMs; },

  // "just now", "12 min ago", "3 h ago", "2 d ago"
  ago(iso) {
    const t = Date.parse(iso || "");
    if (Number.isNaN(t)) return "";
    const min = Math.max(0, Math.round((this.now() - t) / 60000));
    if (min < 1) return Kiosk.t("time.now");
    if (min < 60) return Kiosk.t("time.ago.m", {n: min});
    const h = Math.round(min / 60);
    if (h < 48) return Kiosk.t("time.ago.h", {n: h});
    return Kiosk.t("time.ago.d", {n: Math.round(h / 24)});
  },

  // "due in 40 min", "due in 2 h", "overdue by 15 min"
  due(iso) {
    const t = Date.parse(iso || "");
    if (Number.isNaN(t)) return "";
    const diff = Math.round((t - this.now()) / 60000);
    const n = Math.abs(diff);
    const unit = n < 60 ? "m" : n < 48 * 60 ? "h" : "d";
    const value = unit === "m" ? Math.max(1, n) : unit === "h" ? Math.round(n / 60) : Math.round(n / 1440);
    return Kiosk.t((diff >= 0 ? "time.due." : "time.overdue.") + unit, {n: value});
  },

  overdue(iso) {
    const t = Date.parse(iso || "");
    return !Number.isNaN(t) && t < this.now();
  },

  // the clock time of a moment, for a tooltip next to a relative time
  clock(iso) {
    const t = Date.parse(iso || "");
    if (Number.isNaN(t)) return "";
    return new Date(t).toLocaleString(Kiosk.lang, {dateStyle: "medium", timeStyle: "short"});
  },

  money(amount, currency) {
    try {
      return new Intl.NumberFormat(Kiosk.lang, {style: "currency", currency: currency || "EUR"}).format(Number(amount));
    } catch (e) {
      return `${Number(amount).toFixed(2)} ${currency || ""}`.trim();
    }
  },

  date(isoDate) {
    const t = Date.parse((isoDate || "") + "T12:00:00Z");
    if (Number.isNaN(t)) return isoDate || "";
    return new Date(t).toLocaleDateString(Kiosk.lang, {weekday: "short", day: "numeric", month: "long"});
  },
};
