"""Apply the entries of one push, in order, in ONE transaction (a crash applies nothing).

Per entry: a key seen before gets its first answer again (``duplicate`` if it
was applied, the same ``rejected`` if it was refused); otherwise the entry is
checked (shape, hotel, kind) and applied inside a savepoint, so a refused
entry leaves no trace but its answer.  After the first entry of an entity that
is not applied/duplicate, later entries of that entity in the push get
``retry``.  Every applied and rejected answer is remembered under its key;
``retry`` is not.
"""

from __future__ import annotations

import json
from typing import Any

from kiosk.errors import ValidationError
from sync import hlc

from . import changelog, events, results, storage, tickets, validation, workorders
from .devices import Device
from .results import Rejected

HANDLERS = {
    "work_order.created": workorders.create,
    "work_order.updated": workorders.update,
    "ticket.created": tickets.create,
    "ticket.updated": tickets.update,
    **{kind: events.record for kind in validation.KINDS if kind.startswith(("token.", "session.", "task.",
                                                                              "message.", "pms."))},
}


def apply_push(db, device: Device, entries: list[dict], now: float,
               max_skew: float = validation.MAX_CLOCK_SKEW_SECONDS) -> list[dict]:
    """One result per entry, in order, as docs/sync-protocol.md says; all in one transaction."""
    problems = validation.entry_keys(entries)
    if problems:
        raise ValidationError("every entry needs a key", {"fields": problems[:50]})
    with storage.transaction(db):
        storage.lock_hotels(db, [e.get("hotelId") for e in entries if isinstance(e, dict)])
        return apply_entries(db, device, entries, now, max_skew)


def apply_entries(db, device: Device, entries: list[dict], now: float,
                  max_skew: float = validation.MAX_CLOCK_SKEW_SECONDS) -> list[dict]:
    """:func:`apply_push` inside the caller's transaction (entries must have valid keys)."""
    blocked: set[tuple] = set()
    out = []
    for raw in entries:
        entity = _entity(raw)
        result = _remembered(db, device, raw["key"])
        if result is None and entity in blocked:
            result = results.retry(raw["key"], f"blocked by an earlier entry of {entity[1]} {entity[2]}")
        elif result is None:
            result = _apply_one(db, device, raw, now, max_skew)
        if result["status"] not in ("applied", "duplicate") and entity is not None:
            blocked.add(entity)
        out.append(result)
    return out


def _entity(raw: dict) -> tuple | None:
    parts = (raw.get("hotelId"), raw.get("entityType"), raw.get("entityId"))
    return parts if all(isinstance(p, str) for p in parts) else None


def _remembered(db, device: Device, key: str) -> dict | None:
    row = db.execute("SELECT device_id, hotel_id, result FROM applied_entries WHERE key = ?", [key]).fetchone()
    if row is None:
        return None
    if row[0] != device.device_id and not device.serves(row[1]):
        return results.rejected(key, "KEY_CONFLICT: this key was used by another device for another hotel")
    original = json.loads(row[2])
    if original["status"] == "applied":
        return results.duplicate(key, original)
    return {"key": key, **original}


def _apply_one(db, device: Device, raw: dict, now: float, max_skew: float) -> dict:
    key = raw["key"]
    db.execute("SAVEPOINT entry")
    try:
        e = validation.entry(raw, now, max_skew)
        if not device.serves(e.hotelId):
            raise Rejected("FORBIDDEN_HOTEL", f"device {device.device_id} may not write for hotel {e.hotelId}")
        expected = validation.KINDS.get(e.kind)
        if expected is None:
            raise Rejected("UNKNOWN_KIND", e.kind)
        if e.entityType != expected:
            raise Rejected("INVALID_ENTRY", f"{e.kind} needs entityType {expected}, not {e.entityType}")
        conflicts = HANDLERS[e.kind](db, e, now) or []
        hlc.receive(db, changelog.clock(e.hotelId), e.hlc, now)  # the hotel's cloud stamps sort after it
        result = results.applied(key, conflicts)
    except Rejected as r:
        db.execute("ROLLBACK TO entry")
        result = results.rejected(key, r.reason)
    db.execute("RELEASE entry")
    _remember(db, device, raw, result, now)
    return result


def _short(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) else None


def _remember(db, device: Device, raw: dict, result: dict, now: float) -> None:
    stored = {k: v for k, v in result.items() if k != "key"}
    db.execute("INSERT INTO applied_entries (key, device_id, hotel_id, kind, entity_type, entity_id, hlc,"
               " result, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [raw["key"], device.device_id, *(_short(raw.get(f)) for f in
                                                ("hotelId", "kind", "entityType", "entityId", "hlc")),
                json.dumps(stored), now])
