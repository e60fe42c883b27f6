"""Automatic tickets: type validation, duplicate detection, routing to a queue, and the
lifecycle a guest's request goes through.

A ticket is a duplicate of an open one for the same room and type, created
within the duplicate window, whose meaning is the same: the sets of content
terms of title + description overlap by Jaccard >= 0.5 (or are identical,
which is what the fingerprint records for merging across kiosks).

Lifecycle (``TRANSITIONS``): ``received`` -> ``accepted`` (someone took it) or
``assigned`` (given to someone) -> ``in_progress`` -> ``done``; ``cancelled`` ends it,
and a done ticket is only reopened explicitly (back to ``received``).  ``open`` is
what tickets from older kiosks say for ``received``.  Every change is applied to the
local row, written as history (one row per field), audited and queued in the outbox
(``ticket.updated``) in one transaction; the row keeps the stamp of its last change,
so an older copy pulled from the cloud never overwrites a newer local one.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from . import audit, outbox, store
from .clock import iso
from .errors import InvalidTransition, NotFound, ValidationError
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

STATUSES = ("received", "accepted", "assigned", "in_progress", "done", "cancelled")
ACTIVE = ("received", "open", "accepted", "assigned", "in_progress")
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"accepted", "assigned", "in_progress", "done", "cancelled"}),
    "accepted": frozenset({"received", "assigned", "in_progress", "done", "cancelled"}),
    "assigned": frozenset({"received", "accepted", "in_progress", "done", "cancelled"}),
    "in_progress": frozenset({"accepted", "assigned", "done"}),
    "done": frozenset({"received"}),
    "cancelled": frozenset(),
}

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


def normal(status: str) -> str:
    """``open`` (older kiosks, the cloud's default) is ``received``."""
    return "received" if status == "open" else status


def allowed_from(status: str) -> list[str]:
    return sorted(TRANSITIONS.get(normal(status), frozenset()))


def can_move(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(normal(old), frozenset())


def to_json(row: dict) -> dict:
    return {"ticketId": row["ticket_id"], "hotelId": row["hotel_id"], "type": row["type"],
            "title": row["title"], "description": row["description"], "roomNumber": row["room_number"],
            "priority": row["priority"], "queue": row["queue"], "status": normal(row["status"]),
            "fingerprint": row["fingerprint"], "createdAt": iso(row["created_at"]),
            "createdBy": row["created_by"]}


def create(db, body: Any, *, hotel_id: str, by: str, now: float, node: str, window: float,
           session_id: str | None = None, channel: str | None = None) -> dict:
    """Create (or find the duplicate of) a ticket; returns the response body without ``success``.

    A duplicate is one still being worked on (received, accepted, assigned, in progress)."""
    req = parse(TicketRequest, body)
    t = terms(f"{req.title} {req.description}")
    with store.transaction(db):
        candidates = db.query(
            "SELECT * FROM tickets WHERE hotel_id = ? AND room_number IS ? AND type = ?"
            f" AND status IN ({', '.join('?' * len(ACTIVE))}) AND merged_into IS NULL"
            " AND created_at >= ? ORDER BY created_at",
            [hotel_id, req.roomNumber, req.type, *ACTIVE, now - window])
        for row in candidates:
            if jaccard(t, frozenset(json.loads(row["terms"]))) >= SIMILARITY:
                audit.record(db, hotel_id=hotel_id, event="ticket.duplicate", outcome="success", at=now,
                             actor=by, details={"ticketId": row["ticket_id"]})
                return {"ticket": to_json(row), "queue": row["queue"], "duplicateOf": row["ticket_id"],
                        "syncStatus": "unchanged"}
        row = {"hotel_id": hotel_id, "ticket_id": "T-" + uuid.uuid4().hex[:12], "type": req.type,
               "title": req.title, "description": req.description, "room_number": req.roomNumber,
               "priority": req.priority, "queue": QUEUES[req.type], "status": "received",
               "fingerprint": fingerprint(hotel_id, req.roomNumber, req.type, t),
               "terms": json.dumps(sorted(t)), "created_at": now, "created_by": by, "session_id": session_id,
               "updated_at": now, "channel": channel}
        payload = {k: v for k, v in to_json(row).items() if k != "hotelId"}  # channel: a local detail
        queued = outbox.enqueue(db, hotel_id=hotel_id, kind="ticket.created", entity_type="ticket",
                                entity_id=row["ticket_id"], payload=payload, node=node, now=now)
        row["status_hlc"] = queued.hlc
        db.execute(f"INSERT INTO tickets ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))
        audit.record(db, hotel_id=hotel_id, event="ticket.created", outcome="success", at=now, actor=by,
                     details={"ticketId": row["ticket_id"], "queue": row["queue"]})
    return {"ticket": to_json(row), "queue": row["queue"], "duplicateOf": None, "syncStatus": "queued",
            "outboxKey": queued.idempotency_key}


def get(db, hotel_id: str, ticket_id: str) -> dict:
    rows = list(db.query("SELECT * FROM tickets WHERE hotel_id = ? AND ticket_id = ?", [hotel_id, ticket_id]))
    if not rows:
        raise NotFound(f"no ticket {ticket_id!r} in this hotel", {"ticketId": ticket_id})
    return rows[0]


UNSET: Any = object()  # "leave as it is" (None means: nobody)


def change(db, hotel_id: str, ticket_id: str, *, by: str, now: float, node: str, status: str | None = None,
           assignee: str | None = UNSET) -> dict:
    """Move a ticket along its lifecycle and/or (re)assign it: local row, history, audit and
    outbox (``ticket.updated``) in one transaction.  An illegal move is INVALID_TRANSITION
    with the statuses it may move to; a change to what it already is changes nothing."""
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}", {"field": "status"})
    with store.transaction(db):
        row = get(db, hotel_id, ticket_id)
        current = normal(row["status"])
        wanted: dict[str, Any] = {}
        if status is not None and status != current:
            if not can_move(current, status):
                raise InvalidTransition(f"a {current} request cannot become {status}",
                                        {"from": current, "to": status, "allowed": allowed_from(current)})
            wanted["status"] = status
        if assignee is not UNSET and assignee != row["assignee"]:
            wanted["assignee"] = assignee
        if not wanted:
            return {"ticket": to_json(row) | {"assignee": row["assignee"]}, "changes": {}, "syncStatus": "unchanged"}
        changes = {f: {"old": normal(row[f]) if f == "status" else row[f], "new": v} for f, v in wanted.items()}
        queued = outbox.enqueue(db, hotel_id=hotel_id, kind="ticket.updated", entity_type="ticket",
                                entity_id=ticket_id, node=node, now=now,
                                payload={"ticketId": ticket_id, "changes": changes, "by": by, "at": iso(now)})
        new = dict(row) | wanted | {"updated_at": now, "status_hlc": queued.hlc}
        db.execute("UPDATE tickets SET status = ?, assignee = ?, updated_at = ?, status_hlc = ?"
                   " WHERE hotel_id = ? AND ticket_id = ?",
                   [normal(new["status"]), new["assignee"], now, queued.hlc, hotel_id, ticket_id])
        db.conn.executemany(
            "INSERT INTO item_history (hotel_id, kind, item_id, field, old, new, by, at, hlc)"
            " VALUES (?, 'ticket', ?, ?, ?, ?, ?, ?, ?)",
            [(hotel_id, ticket_id, f, c["old"], c["new"], by, now, queued.hlc) for f, c in changes.items()])
        audit.record(db, hotel_id=hotel_id, event="ticket.updated", outcome="success", at=now, actor=by,
                     details={"ticketId": ticket_id, "fields": sorted(changes)})
    return {"ticket": to_json(new) | {"assignee": new["assignee"]}, "changes": changes, "syncStatus": "queued",
            "outboxKey": queued.idempotency_key}


def history(db, hotel_id: str, ticket_id: str) -> list[dict]:
    return [{"field": r["field"], "old": r["old"], "new": r["new"], "by": r["by"], "at": iso(r["at"]),
             "hlc": r["hlc"]}
            for r in db.query("SELECT * FROM item_history WHERE hotel_id = ? AND kind = 'ticket' AND item_id = ?"
                              " ORDER BY id", [hotel_id, ticket_id])]
