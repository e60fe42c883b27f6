"""Apply the entries of one push, in order, in ONE transaction (a crash applies nothing).

Per entry: a key seen before gets its first answer again (``duplicate`` if it
was applied, the same ``rejected`` if it was refused); otherwise the entry is
checked (storable text, hotel, shape, kind) and applied inside a savepoint, so a
refused entry leaves no trace but its answer.  After the first entry of an
entity that is not applied/duplicate, later entries of that entity in the push
get ``retry``.

Entry keys are scoped to their hotel (``applied_entries`` is keyed by hotel and key):

* an entry for a hotel the device does not serve is rejected (``FORBIDDEN_HOTEL``)
  before its key is even looked up, and that answer is NOT remembered: a device of
  hotel B pushing guessed keys "for hotel A" leaves nothing behind that could answer
  hotel A's real entry later;
* a key already applied for another hotel, or applied for this hotel by a device of
  another hotel, answers ``KEY_CONFLICT`` (rejected; never ``duplicate``, which would
  tell the kiosk that an effect it never had was delivered);
* an entry holding text no storage can keep (NUL, a lone surrogate) is rejected
  ``VALIDATION_ERROR`` before any of it reaches the database.

Applied and rejected answers for the device's own hotels are remembered under the
hotel and key; ``retry`` and the three refusals above are not (they are worked out
again, the same way, on every repeat).
"""

from __future__ import annotations

import json
from typing import Any

from kiosk import hlc
from kiosk.errors import ValidationError
from sync import kinds

from . import changelog, pms_outbox, relay_outbox, results, storage, upstream, validation
from .devices import Device
from .results import Rejected

#: the purge of remembered answers older than a cutoff, a chunk at a time (:mod:`.retention`)
PURGE_SQL = ("DELETE FROM applied_entries WHERE (hotel_id, key) IN (SELECT hotel_id, key"
             " FROM applied_entries WHERE applied_at < ? ORDER BY applied_at LIMIT ?)")


def apply_push(db, device: Device, entries: list[dict], now: float,
               max_skew: float = validation.MAX_CLOCK_SKEW_SECONDS) -> list[dict]:
    """One result per entry, in order, as docs/sync-protocol.md says; all in one transaction."""
    problems = validation.entry_keys(entries)
    if problems:
        raise ValidationError("every entry needs a key", {"fields": problems[:50]})
    with storage.transaction(db):
        storage.lock_hotels(db, served_hotels(device, entries))
        return apply_entries(db, device, entries, now, max_skew)


def served_hotels(device: Device, entries: list) -> list[str]:
    """The hotels a push names that its device serves: the only ones whose locks it takes
    (its entries for any other hotel are refused without touching that hotel)."""
    return sorted({h for e in entries if isinstance(e, dict) and device.serves(h := e.get("hotelId"))})


def apply_entries(db, device: Device, entries: list[dict], now: float,
                  max_skew: float = validation.MAX_CLOCK_SKEW_SECONDS) -> list[dict]:
    """:func:`apply_push` inside the caller's transaction (entries must have valid keys)."""
    blocked: set[tuple] = set()
    out = []
    relayed = upstream.get(db) is not None  # a hub: what it applies goes on to the chain's cloud
    for raw in entries:
        entity = _entity(raw)
        result = _refused(device, raw)
        if result is None:
            result = _remembered(db, device, raw)
        if result is None and entity in blocked:
            result = results.retry(raw["key"], f"blocked by an earlier entry of {entity[1]} {entity[2]}")
        elif result is None:
            result = _apply_one(db, device, raw, now, max_skew)
            if relayed and result["status"] == "applied":
                relay_outbox.queue(db, device.device_id, raw, now)
        if result["status"] not in ("applied", "duplicate") and entity is not None:
            blocked.add(entity)
        out.append(result)
    return out


def _entity(raw: dict) -> tuple | None:
    parts = (raw.get("hotelId"), raw.get("entityType"), raw.get("entityId"))
    return parts if all(isinstance(p, str) for p in parts) else None


def _refused(device: Device, raw: dict) -> dict | None:
    """The answers given before the key is looked up, never remembered: text that cannot be
    stored, an entry for a hotel the device does not serve."""
    problem = validation.unstorable(raw)
    if problem is not None:
        return results.rejected(raw["key"], f"VALIDATION_ERROR: {problem}"[:500])
    hotel = raw.get("hotelId")
    if not device.serves(hotel):
        shown = hotel if isinstance(hotel, str) else json.dumps(hotel)[:64]
        return results.rejected(raw["key"], f"FORBIDDEN_HOTEL: device {device.device_id} may not write for"
                                            f" hotel {shown[:64]}")
    return None


_CONFLICT = "KEY_CONFLICT: this key was used by another device for another hotel"


def _remembered(db, device: Device, raw: dict) -> dict | None:
    """The first answer to this hotel's key; KEY_CONFLICT if the key names another hotel's effect."""
    key, hotel = raw["key"], raw["hotelId"]
    rows = db.execute("SELECT a.hotel_id, a.device_id, a.result, d.hotels FROM applied_entries a"
                      " LEFT JOIN devices d ON d.device_id = a.device_id WHERE a.key = ?", [key]).fetchall()
    answer = None
    for row_hotel, row_device, text, hotels in rows:
        original = json.loads(text)
        applied = original.get("status") == "applied"
        if row_hotel != hotel:
            if applied:  # the key already means an effect in another hotel
                return results.rejected(key, _CONFLICT if row_device != device.device_id else
                                        "KEY_CONFLICT: this device used this key for another hotel")
            continue  # another hotel's refusal takes nothing from this one
        if row_device != device.device_id and hotels is not None and hotel not in json.loads(hotels):
            # remembered for this hotel from a device that does not serve it (a version before
            # hotel-scoped keys remembered such refusals, or the device moved to other hotels)
            if applied:
                return results.rejected(key, "KEY_CONFLICT: this key was applied by a device of another hotel")
            continue
        answer = results.duplicate(key, original) if applied else {"key": key, **original}
    return answer


def _apply_one(db, device: Device, raw: dict, now: float, max_skew: float) -> dict:
    key = raw["key"]
    db.execute("SAVEPOINT entry")
    try:
        e = validation.entry(raw, now, max_skew)
        declared = kinds.pushed(e.kind)
        if declared is None:
            raise Rejected("UNKNOWN_KIND", e.kind)
        kind, push = declared
        if e.entityType != kind.push_entity:
            raise Rejected("INVALID_ENTRY", f"{e.kind} needs entityType {kind.push_entity}, not {e.entityType}")
        conflicts = kinds.resolve(push.cloud)(db, e, now) or []
        pms_outbox.queue_for_entry(db, e, device.device_id, now)  # what it means for the PMS, same transaction
        hlc.receive(db, changelog.clock(e.hotelId), e.hlc, now)  # the hotel's cloud stamps sort after it
        result = results.applied(key, conflicts)
    except Rejected as r:
        db.execute("ROLLBACK TO entry")
        if r.after_rollback is not None:
            r.after_rollback(r.reason)
        result = results.rejected(key, r.reason)
    db.execute("RELEASE entry")
    _remember(db, device, raw, result, now)
    return result


def _short(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) else None


def _remember(db, device: Device, raw: dict, result: dict, now: float) -> None:
    stored = {k: v for k, v in result.items() if k != "key"}
    # ON CONFLICT: a refusal remembered for this hotel from a device that does not serve it
    # (ignored by _remembered) gives way to this answer
    db.execute("INSERT INTO applied_entries (key, device_id, hotel_id, kind, entity_type, entity_id, hlc,"
               " result, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hotel_id, key) DO UPDATE SET"
               " device_id = excluded.device_id, kind = excluded.kind, entity_type = excluded.entity_type,"
               " entity_id = excluded.entity_id, hlc = excluded.hlc, result = excluded.result,"
               " applied_at = excluded.applied_at",
               [raw["key"], device.device_id, raw["hotelId"], *(_short(raw.get(f)) for f in
                                                                ("kind", "entityType", "entityId", "hlc")),
                json.dumps(stored), now])
