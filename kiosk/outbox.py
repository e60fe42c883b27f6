"""The transactional outbox: one row per effect that must reach the cloud.

:func:`enqueue` is called inside the transaction that makes the local change,
so the change and its outbox row commit together.  The sync agent delivers the
entries (``sync.delivery``); an admin retries or drops the dead ones here
(:func:`list_dead`, :func:`resolve_dead`: the admin API and ``kiosk-agent dead``).
The outbox belongs to the kiosk's store, so the kiosk never imports ``sync``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, NamedTuple

from . import audit, guest_keys, hlc, store
from .errors import NotFound


class Queued(NamedTuple):
    idempotency_key: str
    hlc: str


def enqueue(db, *, hotel_id: str, kind: str, entity_type: str, entity_id: str,
            payload: dict[str, Any], node: str, now: float,
            idempotency_key: str | None = None, subject: str | None = None) -> Queued:
    """Add one pending entry; returns its key and HLC stamp.  Call inside a transaction.

    ``subject``: the guest the payload's names, contact details and words are about (the
    confirmation, or whoever wrote them); they are kept sealed under that guest's key
    (kiosk/guest_keys.py) and opened when the entry is pushed."""
    key = idempotency_key or str(uuid.uuid4())
    if subject:
        payload = guest_keys.seal_fields(db, hotel_id, subject, payload)
    stamp = hlc.tick(db, node, now)
    db.conn.execute(
        "INSERT INTO outbox (idempotency_key, hotel_id, kind, entity_type, entity_id, payload,"
        " hlc, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [key, hotel_id, kind, entity_type, entity_id,
         json.dumps(payload, separators=(",", ":"), sort_keys=True), str(stamp), now, now],
    )
    return Queued(key, str(stamp))


def pending(db, hotel_id: str, limit: int = 100) -> list[dict]:
    """Pending entries of one hotel, oldest first."""
    return list(db.query(
        "SELECT * FROM outbox WHERE hotel_id = ? AND state = 'pending' ORDER BY id LIMIT ?",
        [hotel_id, limit],
    ))


def list_dead(db, hotels: list[str], limit: int = 200) -> list[dict]:
    marks = ", ".join("?" for _ in hotels)
    return list(db.query(f"SELECT id, idempotency_key, hotel_id, kind, entity_type, entity_id, attempts,"
                         f" last_error, created_at FROM outbox WHERE state = 'dead' AND hotel_id IN ({marks})"
                         " ORDER BY id LIMIT ?", [*hotels, limit]))


def resolve_dead(db, entry_id: int, action: str, *, hotels: list[str], by: str, now: float) -> dict:
    """``retry`` puts a dead entry back in the queue; ``drop`` gives it up for good (audited)."""
    if action not in ("retry", "drop"):
        raise ValueError(action)
    marks = ", ".join("?" for _ in hotels)
    with store.transaction(db):
        row = db.execute(f"SELECT hotel_id, kind, entity_id, last_error FROM outbox WHERE id = ?"
                         f" AND state = 'dead' AND hotel_id IN ({marks})", [entry_id, *hotels]).fetchone()
        if row is None:
            raise NotFound(f"no dead outbox entry {entry_id}", {"id": entry_id})
        if action == "retry":
            db.execute("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE id = ?",
                       [now, entry_id])
        else:
            db.execute("UPDATE outbox SET state = 'dropped' WHERE id = ?", [entry_id])
        audit.record(db, hotel_id=row[0], event=f"outbox.{action}", outcome="success", at=now, actor=by,
                     details={"id": entry_id, "kind": row[1], "entityId": row[2], "lastError": row[3]})
    return {"id": entry_id, "state": "pending" if action == "retry" else "dropped"}


def record_results(db, *, delivered: list[tuple[float, int]], dead: list[tuple[str, int]],
                   retry: list[tuple[str, float, int]]) -> None:
    """What one push did to its entries (call inside the transaction that records it):
    ``delivered`` (delivered_at, id), ``dead`` (reason, id), ``retry`` (reason, next attempt, id)."""
    db.conn.executemany("UPDATE outbox SET state = 'delivered', delivered_at = ?,"
                        " attempts = attempts + 1, last_error = NULL WHERE id = ?", delivered)
    db.conn.executemany("UPDATE outbox SET state = 'dead', attempts = attempts + 1,"
                        " last_error = ? WHERE id = ?", dead)
    db.conn.executemany("UPDATE outbox SET attempts = attempts + 1, last_error = ?,"
                        " next_attempt_at = ? WHERE id = ?", retry)


def purge_delivered(db, *, before: float) -> int:
    """Forget entries delivered before ``before``; returns how many."""
    with store.transaction(db):
        return db.execute("DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?", [before]).rowcount


def rewrite_payloads(db, payloads: dict[int, dict]) -> int:
    """Replace the payloads of entries named by id, keeping each entry, its key, stamp, place and
    state (a guest's erasure, pulled: their words taken out of what waits or was delivered; a
    pending one goes up as it now reads, so nothing is lost or sent twice).  Inside the caller's
    transaction; how many changed."""
    return sum(db.execute("UPDATE outbox SET payload = ? WHERE id = ?",
                          [json.dumps(p, separators=(",", ":"), sort_keys=True), entry_id]).rowcount
               for entry_id, p in sorted(payloads.items()))
