"""The transactional outbox: one row per effect that must reach the cloud.

:func:`enqueue` is called inside the transaction that makes the local change,
so the change and its outbox row commit together.  Delivery (the agent) comes
with the sync protocol.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, NamedTuple

from . import hlc


class Queued(NamedTuple):
    idempotency_key: str
    hlc: str


def enqueue(db, *, hotel_id: str, kind: str, entity_type: str, entity_id: str,
            payload: dict[str, Any], node: str, now: float,
            idempotency_key: str | None = None) -> Queued:
    """Add one pending entry; returns its key and HLC stamp.  Call inside a transaction."""
    key = idempotency_key or str(uuid.uuid4())
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
