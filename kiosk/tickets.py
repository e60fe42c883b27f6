"""Automatic tickets: type validation, duplicate detection, routing to a queue.

A ticket is a duplicate of an open one for the same room and type, created
within the duplicate window, whose meaning is the same: the sets of content
terms of title + description overlap by Jaccard >= 0.5 (or are identical,
which is what the fingerprint records for merging across kiosks).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from sync import outbox

from . import audit, store
from .clock import iso
from .validation import parse

QUEUES = {
    "maintenance": "engineering",
    "housekeeping": "housekeeping",
    "guest_request": "front-desk",
    "noise": "front-desk",
    "billing": "accounting",
    "it": "it-support",
    "security": "security",
}
TicketType = Literal["maintenance", "housekeeping", "guest_request", "noise", "billing", "it", "security"]
SIMILARITY = 0.5

_STOP = frozenset("""a an and are as at be but by for from has have i in is it its my of on or our
please the there this to was we with not no can could would should room guest our your""".split())
_WORD = re.compile(r"[a-z0-9]+")


class TicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: TicketType
    title: StrictStr = Field(min_length=1, max_length=120)
    description: StrictStr = Field("", max_length=2000)
    roomNumber: StrictStr | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,10}$")
    priority: Literal["low", "normal", "high", "urgent"] = "normal"


def _stem(w: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


def terms(text: str) -> frozenset[str]:
    """Content terms: lower-case words, stop words out, crude suffix stemming."""
    return frozenset(_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def fingerprint(hotel_id: str, room: str | None, type_: str, t: frozenset[str]) -> str:
    return hashlib.sha256("|".join([hotel_id, room or "", type_, " ".join(sorted(t))]).encode()).hexdigest()[:20]


def to_json(row: dict) -> dict:
    return {"ticketId": row["ticket_id"], "hotelId": row["hotel_id"], "type": row["type"],
            "title": row["title"], "description": row["description"], "roomNumber": row["room_number"],
            "priority": row["priority"], "queue": row["queue"], "status": row["status"],
            "fingerprint": row["fingerprint"], "createdAt": iso(row["created_at"]),
            "createdBy": row["created_by"]}


def create(db, body: Any, *, hotel_id: str, by: str, now: float, node: str, window: float) -> dict:
    """Create (or find the duplicate of) a ticket; returns the response body without ``success``."""
    req = parse(TicketRequest, body)
    t = terms(f"{req.title} {req.description}")
    with store.transaction(db):
        candidates = db.query(
            "SELECT * FROM tickets WHERE hotel_id = ? AND room_number IS ? AND type = ? AND status = 'open'"
            " AND merged_into IS NULL"
            " AND created_at >= ? ORDER BY created_at", [hotel_id, req.roomNumber, req.type, now - window])
        for row in candidates:
            if jaccard(t, frozenset(json.loads(row["terms"]))) >= SIMILARITY:
                audit.record(db, hotel_id=hotel_id, event="ticket.duplicate", outcome="success", at=now,
                             actor=by, details={"ticketId": row["ticket_id"]})
                return {"ticket": to_json(row), "queue": row["queue"], "duplicateOf": row["ticket_id"],
                        "syncStatus": "unchanged"}
        row = {"hotel_id": hotel_id, "ticket_id": "T-" + uuid.uuid4().hex[:12], "type": req.type,
               "title": req.title, "description": req.description, "room_number": req.roomNumber,
               "priority": req.priority, "queue": QUEUES[req.type], "status": "open",
               "fingerprint": fingerprint(hotel_id, req.roomNumber, req.type, t),
               "terms": json.dumps(sorted(t)), "created_at": now, "created_by": by}
        db.execute(f"INSERT INTO tickets ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))
        payload = {k: v for k, v in to_json(row).items() if k != "hotelId"}
        queued = outbox.enqueue(db, hotel_id=hotel_id, kind="ticket.created", entity_type="ticket",
                                entity_id=row["ticket_id"], payload=payload, node=node, now=now)
        audit.record(db, hotel_id=hotel_id, event="ticket.created", outcome="success", at=now, actor=by,
                     details={"ticketId": row["ticket_id"], "queue": row["queue"]})
    return {"ticket": to_json(row), "queue": row["queue"], "duplicateOf": None, "syncStatus": "queued",
            "outboxKey": queued.idempotency_key}
