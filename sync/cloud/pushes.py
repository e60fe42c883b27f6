"""A push request: per-device ``Idempotency-Key`` memory around :mod:`.apply`.

The lookup, the entries' effects and the remembered response body share one
transaction.  A repeat of a key answers the original body, provided it was for
the same entry keys and held no ``retry`` (a retry promises nothing, so such a
push is worked out afresh).
"""

from __future__ import annotations

import json

from kiosk import store

from .apply import apply_entries
from .devices import Device


def respond(db, device: Device, entries: list[dict], now: float,
            idempotency_key: str | None = None) -> tuple[dict, bool]:
    """``(response body, replayed)`` for one push whose body passed validation.push_body."""
    keys = [e["key"] for e in entries]
    with store.transaction(db):
        if idempotency_key:
            row = db.execute("SELECT response FROM push_requests WHERE device_id = ? AND idempotency_key = ?",
                             [device.device_id, idempotency_key]).fetchone()
            if row is not None:
                body = json.loads(row[0])
                if [r["key"] for r in body["results"]] == keys:
                    return body, True
        body = {"results": apply_entries(db, device, entries, now), "serverTime": now}
        if idempotency_key and all(r["status"] != "retry" for r in body["results"]):
            db.execute("INSERT INTO push_requests (device_id, idempotency_key, response, at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT(device_id, idempotency_key) DO UPDATE SET response = excluded.response,"
                       " at = excluded.at",
                       [device.device_id, idempotency_key, json.dumps(body, separators=(",", ":")), now])
    return body, False
