"""Tickets in the cloud: ``ticket.created`` and the read side."""

from __future__ import annotations

import json

from . import validation
from .results import Rejected
from .validation import Entry, TicketCreated

_COLUMNS = {"type": "type", "title": "title", "description": "description", "roomNumber": "room_number",
            "priority": "priority", "queue": "queue", "status": "status", "fingerprint": "fingerprint",
            "createdAt": "created_at", "createdBy": "created_by"}


def create(db, e: Entry, now: float) -> None:
    """Insert; the same ticket id again is fine only with identical fields (then nothing changes)."""
    p = validation.payload(TicketCreated, e, "ticketId")
    canonical = json.dumps(p.model_dump(), sort_keys=True, separators=(",", ":"))
    existing = db.execute("SELECT payload FROM tickets WHERE hotel_id = ? AND ticket_id = ?",
                          [e.hotelId, p.ticketId]).fetchone()
    if existing is not None:
        if existing[0] == canonical:
            return
        raise Rejected("DUPLICATE_TICKET_ID", f"{p.ticketId} was created before with other fields")
    row = {"hotel_id": e.hotelId, "ticket_id": p.ticketId,
           **{col: getattr(p, field) for field, col in _COLUMNS.items()},
           "payload": canonical, "received_at": now}
    db.execute(f"INSERT INTO tickets ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
               list(row.values()))


def list_for_hotel(db, hotel_id: str) -> list[dict]:
    return [{"ticketId": r["ticket_id"], "hotelId": r["hotel_id"],
             **{field: r[col] for field, col in _COLUMNS.items()}}
            for r in db.query("SELECT * FROM tickets WHERE hotel_id = ? ORDER BY created_at, ticket_id",
                              [hotel_id])]
