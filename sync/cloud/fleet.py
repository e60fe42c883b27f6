"""Fleet health: what each kiosk says about itself on every push and pull, and what is wrong.

A kiosk's sync agent sends, as request headers of each push, pull and snapshot
(docs/sync-protocol.md, "Fleet health"), its software version, its backlog (pending
entries, the oldest one's age, dead letters) and its wall clock.  The cloud keeps the
latest report per device (``device_health``) and, when asked, flags devices that are

* ``silent``: not heard from for longer than ``silent_after`` (counted from the device's
  registration when it was never heard from: a silent kiosk is noticed by its silence);
* ``behind``: more than ``max_pending`` entries waiting, or the oldest older than
  ``max_backlog_age``;
* ``dead_letters``: entries the cloud refused for good are waiting for an admin;
* ``clock``: its wall clock was off the cloud's by more than ``clock_tolerance``.

Old agents send no headers: they are still served, and flagged only by silence.
Telemetry never fails a sync: a malformed header is ignored.

Kiosks behind a property hub talk to the hub, not to the chain: the hub reports them
(:func:`relayed`, ``POST /sync/v1/fleet/relayed``, every few seconds while it relays),
and the chain lists them with ``via`` naming the hub, flagged by the same rules (silent
counts from when the hub last heard from them; a hub that stops reporting leaves its
kiosks' last word, which grows old and silent).  The hub itself is a device like any
other: its backlog is what waits in its relay outbox.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

from kiosk.clock import iso

from . import storage

VERSION = "Kiosk-Version"
CLOCK = "Kiosk-Clock"
PENDING = "Kiosk-Backlog-Pending"
OLDEST = "Kiosk-Backlog-Oldest-Age"
DEAD = "Kiosk-Backlog-Dead"
HEADERS = (VERSION, CLOCK, PENDING, OLDEST, DEAD)

#: a device's row is rewritten at once when its version or dead letters change, else at most
#: this often (an agent pulls every few seconds: that need not be a write every few seconds;
#: the thresholds are minutes)
WRITE_EVERY_SECONDS = float(os.environ.get("KIOSK_CLOUD_FLEET_WRITE_EVERY", "30"))
FLAGS = ("silent", "behind", "dead_letters", "clock")


@dataclass(frozen=True)
class Policy:
    """When a device is flagged (``kiosk-cloud serve`` / ``fleet`` options ``--fleet-…``)."""

    silent_after: float = 15 * 60
    max_pending: int = 1000
    max_backlog_age: float = 3600
    clock_tolerance: float = 120

    def to_json(self) -> dict:
        return {"silentAfterSeconds": self.silent_after, "maxPending": self.max_pending,
                "maxBacklogAgeSeconds": self.max_backlog_age, "clockToleranceSeconds": self.clock_tolerance}


def _number(text: str | None, kind=float, limit: float = 1e12):
    if text is None:
        return None
    try:
        value = kind(text.strip())
    except (ValueError, TypeError):
        return None
    return value if math.isfinite(value) and 0 <= value <= limit else None


def report(headers) -> dict:
    """The report in a request's headers (any of them may be missing or malformed: None)."""
    version = headers.get(VERSION)
    version = version.strip()[:64] if version and version.isprintable() else None
    return {"version": version or None, "clock": _number(headers.get(CLOCK), limit=1e11),
            "pending": _number(headers.get(PENDING), int, 1e12), "oldestAge": _number(headers.get(OLDEST)),
            "dead": _number(headers.get(DEAD), int, 1e12)}


def seen(db, device_id: str, rep: dict, *, kind: str, now: float, memo: dict | None = None) -> None:
    """Keep ``rep`` as the device's latest report (``kind``: push, pull or snapshot).  ``memo``
    (one per cloud app): when this process last found or made the device's row fresh for
    ``kind``, so a device that pushes many times a second is not read each time to learn that
    its row needs no write (no new version or dead letters within :data:`WRITE_EVERY_SECONDS`)."""
    offset = None if rep.get("clock") is None else round(rep["clock"] - now, 3)
    said = (rep.get("version"), rep.get("dead"))
    last_col = "last_push_at" if kind == "push" else "last_pull_at"
    if memo is not None:
        fresh = memo.get((device_id, last_col))
        if fresh is not None and fresh[1] == said and 0 <= now - fresh[0] < WRITE_EVERY_SECONDS:
            return
    row = db.execute("SELECT last_seen_at, version, pending, dead, last_push_at, last_pull_at FROM device_health"
                     " WHERE device_id = ?", [device_id]).fetchone()
    if row is not None:
        last_of_kind = row[4] if kind == "push" else row[5]
        if (row[1], row[3]) == said and last_of_kind is not None and 0 <= now - row[0] < WRITE_EVERY_SECONDS:
            if memo is not None:
                memo[(device_id, last_col)] = (row[0], said)
            return
    with storage.one_statement(db):
        db.execute(f"INSERT INTO device_health (device_id, version, kiosk_clock, clock_offset, pending,"
                   f" oldest_pending_age, dead, last_seen_at, {last_col}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                   f" ON CONFLICT (device_id) DO UPDATE SET version = excluded.version,"
                   f" kiosk_clock = excluded.kiosk_clock, clock_offset = excluded.clock_offset,"
                   f" pending = excluded.pending, oldest_pending_age = excluded.oldest_pending_age,"
                   f" dead = excluded.dead, last_seen_at = excluded.last_seen_at, {last_col} = excluded.{last_col}",
                   [device_id, rep.get("version"), rep.get("clock"), offset, rep.get("pending"), rep.get("oldestAge"),
                    rep.get("dead"), now, now])
    if memo is not None:
        memo[(device_id, last_col)] = (now, said)


_RELAYED = ("deviceId", "hotels", "version", "clockOffsetSeconds", "pending", "oldestPendingAgeSeconds",
            "deadLetters", "lastSeenAt", "lastPushAt", "lastPullAt")
MAX_RELAYED = 1000


def relayed(db, via: str, served: tuple[str, ...], reported: list, now: float) -> int:
    """Keep a hub's report of the kiosks behind it (only the hotels the hub serves); the
    number kept.  Malformed rows are skipped: telemetry never fails."""
    kept = 0
    with storage.transaction(db):
        for d in reported[:MAX_RELAYED]:
            if not isinstance(d, dict) or not isinstance(d.get("deviceId"), str) or not d["deviceId"][:64].isprintable():
                continue
            hotels = [h for h in d.get("hotels") or [] if isinstance(h, str) and h in served]
            if not hotels or d["deviceId"] == via:
                continue
            num = {k: (v if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None)
                   for k in ("clockOffsetSeconds", "pending", "oldestPendingAgeSeconds", "deadLetters",
                             "lastSeenAt", "lastPushAt", "lastPullAt") for v in [d.get(k)]}
            version = d.get("version") if isinstance(d.get("version"), str) and d["version"].isprintable() else None
            db.execute("INSERT INTO relayed_health (device_id, via, hotels, version, clock_offset, pending,"
                       " oldest_pending_age, dead, last_seen_at, last_push_at, last_pull_at, reported_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                       " via = excluded.via, hotels = excluded.hotels, version = excluded.version,"
                       " clock_offset = excluded.clock_offset, pending = excluded.pending,"
                       " oldest_pending_age = excluded.oldest_pending_age, dead = excluded.dead,"
                       " last_seen_at = excluded.last_seen_at, last_push_at = excluded.last_push_at,"
                       " last_pull_at = excluded.last_pull_at, reported_at = excluded.reported_at",
                       [d["deviceId"][:64], via, json.dumps(sorted(hotels)), version and version[:64],
                        num["clockOffsetSeconds"], num["pending"], num["oldestPendingAgeSeconds"], num["deadLetters"],
                        num["lastSeenAt"], num["lastPushAt"], num["lastPullAt"], now])
            kept += 1
    return kept


def report_for_upstream(db, policy: Policy, now: float) -> list[dict]:
    """What a hub tells the chain about the kiosks behind it (times as epoch seconds)."""
    rows = db.query("SELECT d.device_id, d.hotels, h.version, h.clock_offset, h.pending, h.oldest_pending_age,"
                    " h.dead, h.last_seen_at, h.last_push_at, h.last_pull_at FROM devices d"
                    " LEFT JOIN device_health h ON h.device_id = d.device_id WHERE d.revoked_at IS NULL")
    return [{"deviceId": r["device_id"], "hotels": json.loads(r["hotels"]), "version": r["version"],
             "clockOffsetSeconds": r["clock_offset"], "pending": r["pending"],
             "oldestPendingAgeSeconds": r["oldest_pending_age"], "deadLetters": r["dead"],
             "lastSeenAt": r["last_seen_at"], "lastPushAt": r["last_push_at"], "lastPullAt": r["last_pull_at"]}
            for r in rows]


def _flags(d: dict, policy: Policy, now: float) -> list[str]:
    out = []
    # the row may be up to WRITE_EVERY_SECONDS old for a device that is heard from all along
    if now - (d["last_seen_at"] or d["created_at"]) > policy.silent_after + WRITE_EVERY_SECONDS:
        out.append("silent")
    if (d["pending"] or 0) > policy.max_pending or (d["oldest_pending_age"] or 0) > policy.max_backlog_age:
        out.append("behind")
    if d["dead"]:
        out.append("dead_letters")
    if d["clock_offset"] is not None and abs(d["clock_offset"]) > policy.clock_tolerance:
        out.append("clock")
    return out


def _at(t: float | None) -> str | None:
    return iso(t) if t is not None else None


def devices(db, hotels: list[str] | None, policy: Policy, now: float) -> list[dict]:
    """Every active device of ``hotels`` (None: all), with its latest report and its flags."""
    rows = db.query("SELECT d.device_id, d.hotels, d.created_at, h.version, h.clock_offset, h.pending,"
                    " h.oldest_pending_age, h.dead, h.last_seen_at, h.last_push_at, h.last_pull_at"
                    " FROM devices d LEFT JOIN device_health h ON h.device_id = d.device_id"
                    " WHERE d.revoked_at IS NULL ORDER BY d.device_id")
    out = []
    for d in rows:
        served = json.loads(d["hotels"])
        if hotels is not None and not set(served) & set(hotels):
            continue
        flags = _flags(d, policy, now)
        shown = served if hotels is None else [h for h in served if h in hotels]  # no other hotel's ids
        out.append({"deviceId": d["device_id"], "hotels": shown, "version": d["version"],
                    "lastSeenAt": _at(d["last_seen_at"]),
                    "secondsSinceSeen": None if d["last_seen_at"] is None else round(now - d["last_seen_at"], 1),
                    "lastPushAt": _at(d["last_push_at"]), "lastPullAt": _at(d["last_pull_at"]),
                    "clockOffsetSeconds": d["clock_offset"], "pending": d["pending"],
                    "oldestPendingAgeSeconds": d["oldest_pending_age"], "deadLetters": d["dead"],
                    "flags": flags, "healthy": not flags, "via": None})
    for d in db.query("SELECT r.*, r.reported_at AS created_at FROM relayed_health r"
                      " JOIN devices hub ON hub.device_id = r.via AND hub.revoked_at IS NULL ORDER BY r.device_id"):
        served = json.loads(d["hotels"])
        if hotels is not None and not set(served) & set(hotels):
            continue
        flags = _flags(d, policy, now)
        shown = served if hotels is None else [h for h in served if h in hotels]
        out.append({"deviceId": d["device_id"], "hotels": shown, "version": d["version"],
                    "lastSeenAt": _at(d["last_seen_at"]),
                    "secondsSinceSeen": None if d["last_seen_at"] is None else round(now - d["last_seen_at"], 1),
                    "lastPushAt": _at(d["last_push_at"]), "lastPullAt": _at(d["last_pull_at"]),
                    "clockOffsetSeconds": d["clock_offset"], "pending": d["pending"],
                    "oldestPendingAgeSeconds": d["oldest_pending_age"], "deadLetters": d["dead"],
                    "flags": flags, "healthy": not flags, "via": d["via"]})
    return out


def overview(db, hotels: list[str] | None, policy: Policy, now: float) -> dict:
    """What the read endpoint and ``kiosk-cloud fleet --json`` answer."""
    listed = devices(db, hotels, policy, now)
    summary = {"devices": len(listed), "healthy": sum(d["healthy"] for d in listed),
               **{f: sum(f in d["flags"] for d in listed) for f in FLAGS}}
    return {"devices": listed, "summary": summary, "policy": policy.to_json(), "serverTime": now}


def table(overview_: dict) -> list[str]:
    """The same as text lines, for a terminal."""
    lines = [f"{'DEVICE':<16} {'VERSION':<9} {'LAST SEEN':>10} {'PENDING':>8} {'OLDEST':>9} {'DEAD':>5}"
             f" {'CLOCK':>9}  FLAGS"]
    for d in overview_["devices"]:
        ago = "never" if d["secondsSinceSeen"] is None else _span(d["secondsSinceSeen"]) + " ago"
        oldest = "-" if d["oldestPendingAgeSeconds"] is None else _span(d["oldestPendingAgeSeconds"])
        clock = "-" if d["clockOffsetSeconds"] is None else f"{d['clockOffsetSeconds']:+.0f}s"
        via = f"  (via {d['via']})" if d.get("via") else ""
        lines.append(f"{d['deviceId']:<16} {d['version'] or '-':<9} {ago:>10} {_n(d['pending']):>8} {oldest:>9}"
                     f" {_n(d['deadLetters']):>5} {clock:>9}  {','.join(d['flags']) or 'ok'}{via}")
    s = overview_["summary"]
    lines.append(f"{s['devices']} devices, {s['healthy']} healthy"
                 + "".join(f", {s[f]} {f.replace('_', ' ')}" for f in FLAGS if s[f]))
    return lines


def _n(v) -> str:
    return "-" if v is None else str(v)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
