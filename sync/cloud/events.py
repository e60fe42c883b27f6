"""Token and session entries: recorded in the cloud's event log as the kiosk wrote them."""

from __future__ import annotations

import json

from .validation import Entry


def record(db, e: Entry, now: float) -> None:
    db.execute("INSERT INTO events (key, hotel_id, kind, entity_type, entity_id, payload, hlc, received_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               [e.key, e.hotelId, e.kind, e.entityType, e.entityId,
                json.dumps(e.payload, sort_keys=True, separators=(",", ":")), e.hlc, now])


def list_for_hotel(db, hotel_id: str, limit: int = 1000) -> list[dict]:
    return [{"key": r["key"], "hotelId": r["hotel_id"], "kind": r["kind"], "entityType": r["entity_type"],
             "entityId": r["entity_id"], "payload": json.loads(r["payload"]), "hlc": r["hlc"],
             "receivedAt": r["received_at"]}
            for r in db.query("SELECT * FROM events WHERE hotel_id = ? ORDER BY hlc, key LIMIT ?",
                              [hotel_id, limit])]
