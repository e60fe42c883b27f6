"""A hub's relay outbox: what its kiosks pushed, on its way to the chain's cloud.

An entry the hub applied (``applied``; a ``duplicate`` was queued the first time) is
queued here in the same transaction, as the kiosk sent it, with the kiosk that sent it
(``origin``); one entity's entries go up in the order the hub applied them (:func:`due`).  The relay (:mod:`.relay`) pushes it upstream under its own key, so the
chain cloud applies it once however often the relay sends it; ``applied`` and
``duplicate`` answers deliver it, a refusal is kept as ``dead`` with the chain's words,
``retry`` and transport failures leave it waiting.
"""

from __future__ import annotations

import json

from kiosk import jsontext

from . import guest_vault

BACKOFF = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)


def backoff(attempts: int) -> float:
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def queue_many(db, origin: str, raws: list[dict], now: float) -> None:
    """Queue applied entries in their order, one ``executemany`` (inside the transaction that
    applied them)."""
    db.conn.executemany(
        "INSERT INTO relay_outbox (hotel_id, key, origin, entity, entry, status, attempts, next_at,"
        " created_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?) ON CONFLICT (hotel_id, key) DO NOTHING",
        [[raw["hotelId"], raw["key"], origin, f"{raw['entityType']}:{raw['entityId']}",
          jsontext.compact(_sealed(db, raw)), now, now] for raw in raws])


def _sealed(db, raw: dict) -> dict:
    """An entry with the words of the guest it names sealed under their key (guest_vault)."""
    subject = raw.get("subject")
    if not subject or not isinstance(raw.get("payload"), dict):
        return raw
    return raw | {"payload": guest_vault.seal_fields(db, raw["hotelId"], str(subject), raw["payload"])}


def due(db, now: float, limit: int = 200) -> list[tuple[int, dict, str]]:
    """(id, entry, origin) of waiting entries whose time has come, oldest first, none behind an
    earlier waiting entry of the same entity (a ticket's step never reaches the chain before
    the ticket, whatever each one's backoff)."""
    out: list[tuple[int, dict, str]] = []
    blocked: set[tuple[str, str]] = set()
    for entry_id, hotel, entity, entry, origin, next_at in db.execute(
            "SELECT id, hotel_id, entity, entry, origin, next_at FROM relay_outbox WHERE status = 'pending'"
            " ORDER BY id LIMIT ?", [limit * 5]):
        if (hotel, entity) in blocked:
            continue
        if next_at > now:  # not yet: nor anything of its entity after it
            blocked.add((hotel, entity))
            continue
        out.append((entry_id, json.loads(entry), origin))
        if len(out) == limit:
            break
    return out


def settle(db, results: list[tuple[int, dict]], now: float) -> dict[str, int]:
    """Record the chain's answer to each sent entry: (id, result)."""
    counts = {"delivered": 0, "dead": 0, "waiting": 0}
    for entry_id, result in results:
        status = result.get("status")
        if status in ("applied", "duplicate"):
            db.execute("UPDATE relay_outbox SET status = 'delivered', result = ?, done_at = ? WHERE id = ?",
                       [json.dumps(result), now, entry_id])
            counts["delivered"] += 1
        elif status == "rejected":
            db.execute("UPDATE relay_outbox SET status = 'dead', result = ?, done_at = ? WHERE id = ?",
                       [json.dumps(result), now, entry_id])
            counts["dead"] += 1
        else:
            wait(db, [entry_id], str(result.get("reason") or status), now)
            counts["waiting"] += 1
    return counts


def wait(db, ids: list[int], why: str, now: float) -> None:
    for entry_id in ids:
        row = db.execute("SELECT attempts FROM relay_outbox WHERE id = ?", [entry_id]).fetchone()
        attempts = (row[0] if row else 0) + 1
        db.execute("UPDATE relay_outbox SET attempts = ?, next_at = ?, result = ? WHERE id = ?",
                   [attempts, now + backoff(attempts), json.dumps({"status": "waiting", "reason": why[:500]}),
                    entry_id])


def rewrite_entries(db, hotel_id: str, entries: dict[int, dict]) -> int:
    """Replace the hotel's queued (or delivered) entries named by id, keeping their keys and
    places (a guest's erasure, sync/cloud/erasure.py: the guest's words taken out of the
    payload; one still waiting goes up to the chain as it now reads).  Returns how many."""
    n = 0
    for entry_id, raw in sorted(entries.items()):
        n += db.execute("UPDATE relay_outbox SET entry = ? WHERE hotel_id = ? AND id = ?",
                        [json.dumps(raw, sort_keys=True, separators=(",", ":")), hotel_id, entry_id]).rowcount
    return n


def counts(db) -> dict[str, int]:
    out = {"pending": 0, "delivered": 0, "dead": 0}
    for status, n in db.execute("SELECT status, COUNT(*) FROM relay_outbox GROUP BY status"):
        out[status] = n
    return out


def oldest_waiting(db) -> float | None:
    row = db.execute("SELECT MIN(created_at) FROM relay_outbox WHERE status = 'pending'").fetchone()
    return row[0] if row else None


def dead(db, limit: int = 20) -> list[dict]:
    return [{"id": r[0], "hotelId": r[1], "key": r[2], "origin": r[3], "result": json.loads(r[4] or "{}")}
            for r in db.execute("SELECT id, hotel_id, key, origin, result FROM relay_outbox WHERE status = 'dead'"
                                " ORDER BY id DESC LIMIT ?", [limit])]
