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

from . import audit, guest_keys, outbox, store
from .clock import from_iso, iso
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
           session_id: str | None = None, channel: str | None = None, guest: bool = False) -> dict:
    """Create (or find the duplicate of) a ticket; returns the response body without ``success``.
    ``guest``: ``by`` is a guest, whose words are kept sealed under their key (kiosk/guest_keys.py).

    A duplicate is one still being worked on (received, accepted, assigned, in progress)."""
    req = parse(TicketRequest, body)
    t = terms(f"{req.title} {req.description}")
    with store.transaction(db):
        blind = frozenset(guest_keys.blind(db, t))  # as the content terms are kept
        candidates = db.query(
            "SELECT * FROM tickets WHERE hotel_id = ? AND room_number IS ? AND type = ?"
            f" AND status IN ({', '.join('?' * len(ACTIVE))}) AND merged_into IS NULL"
            " AND created_at >= ? ORDER BY created_at",
            [hotel_id, req.roomNumber, req.type, *ACTIVE, now - window])
        for row in candidates:
            if jaccard(blind, frozenset(json.loads(row["terms"]))) >= SIMILARITY:
                audit.record(db, hotel_id=hotel_id, event="ticket.duplicate", outcome="success", at=now,
                             actor=by, details={"ticketId": row["ticket_id"]})
                return {"ticket": to_json(row), "queue": row["queue"], "duplicateOf": row["ticket_id"],
                        "syncStatus": "unchanged"}
        row = {"hotel_id": hotel_id, "ticket_id": "T-" + uuid.uuid4().hex[:12], "type": req.type,
               "title": req.title, "description": req.description, "room_number": req.roomNumber,
               "priority": req.priority, "queue": QUEUES[req.type], "status": "received",
               "fingerprint": fingerprint(hotel_id, req.roomNumber, req.type, t),
               "terms": json.dumps(sorted(blind)), "created_at": now, "created_by": by, "session_id": session_id,
               "updated_at": now, "channel": channel}
        payload = {k: v for k, v in to_json(row).items() if k != "hotelId"}  # channel: a local detail
        queued = outbox.enqueue(db, hotel_id=hotel_id, kind="ticket.created", entity_type="ticket",
                                entity_id=row["ticket_id"], payload=payload, node=node, now=now,
                                subject=by if guest else None)
        row["status_hlc"] = queued.hlc
        stored = row | {f: guest_keys.seal(db, hotel_id, by if guest else None, row[f]) for f in ("title", "description")}
        db.execute(f"INSERT INTO tickets ({', '.join(stored)}) VALUES ({', '.join('?' * len(stored))})",
                   list(stored.values()))
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
        new, changes, queued = _apply(db, row, wanted, by=by, now=now, node=node)
    return {"ticket": to_json(new) | {"assignee": new["assignee"]}, "changes": changes, "syncStatus": "queued",
            "outboxKey": queued.idempotency_key}


def _apply(db, row: dict, wanted: dict, *, by: str, now: float, node: str):
    """Inside the caller's transaction: the changed fields of ``row`` (status, assignee) to the
    local row, one history row per field, audit and the outbox (``ticket.updated``).
    Returns (the row as it is now, the changes, the outbox entry)."""
    hotel_id, ticket_id = row["hotel_id"], row["ticket_id"]
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
    return new, changes, queued


def history(db, hotel_id: str, ticket_id: str) -> list[dict]:
    return [{"field": r["field"], "old": r["old"], "new": r["new"], "by": r["by"], "at": iso(r["at"]),
             "hlc": r["hlc"]}
            for r in db.query("SELECT * FROM item_history WHERE hotel_id = ? AND kind = 'ticket' AND item_id = ?"
                              " ORDER BY id", [hotel_id, ticket_id])]


# --- staff finish what guests start: a reply to the guest, a work order from a fault ----------

REPLY_MAX = 1000
#: ticket types a work order can be made from (a guest's fault report)
WORK_ORDER_TYPES = ("maintenance",)


def work_order_id_for(ticket_id: str) -> str:
    """The work order made from a ticket: one id per ticket (a second tap, or another kiosk of the
    hotel doing the same, arrives at the same id and makes nothing new)."""
    return "WO-" + (ticket_id[2:] if ticket_id.startswith("T-") else ticket_id)


def follow_ups(db, hotel_id: str, ticket_ids) -> dict[str, dict]:
    """Per ticket: its latest reply to the guest (``reply``: text, by, byName, at, language) and
    the work order made from it (``workOrderId``), from the tickets' history rows."""
    ids = sorted({t for t in ticket_ids if t})
    out: dict[str, dict] = {}
    if not ids:
        return out
    names = {r[0]: r[1] for r in db.execute("SELECT staff_id, name FROM staff WHERE hotel_id = ?", [hotel_id])}
    from .models.guest_messaging import detect_language

    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        for item_id, field, new, by, at in db.execute(
                "SELECT item_id, field, new, by, at FROM item_history WHERE hotel_id = ? AND kind = 'ticket'"
                f" AND field IN ('reply', 'work_order') AND item_id IN ({', '.join('?' * len(part))}) ORDER BY id",
                [hotel_id, *part]):
            one = out.setdefault(item_id, {"reply": None, "workOrderId": None})
            if field == "work_order":
                one["workOrderId"] = new
            elif new:
                lang = detect_language(new, default="")
                one["reply"] = {"text": new, "by": by, "byName": names.get(by, by), "at": iso(at),
                                "language": lang or None}
    return out


def reply_text(text: Any) -> str:
    """The reply as it is kept: 1..1000 characters (ends trimmed), no NUL."""
    if not isinstance(text, str):
        raise ValidationError("reply needs text (what the guest is told)", {"field": "text"})
    text = text.strip()
    if not 1 <= len(text) <= REPLY_MAX:
        raise ValidationError(f"the reply must be 1 to {REPLY_MAX} characters", {"field": "text", "max": REPLY_MAX})
    if "\x00" in text:
        raise ValidationError("the reply contains a NUL character (U+0000)", {"field": "text"})
    return text


def reply(db, hotel_id: str, ticket_id: str, text: Any, *, by: str, now: float, node: str) -> dict:
    """A staff member's answer to the guest who asked: a history row (field ``reply``), audit
    and outbox (``ticket.updated`` with ``changes.reply``) in one transaction.  The same words
    again change nothing.  The answer settles the question: a request still open becomes
    ``done`` in the same transaction (its own ``ticket.updated`` with ``changes.status`` and a
    history row) — except a fault report (:data:`WORK_ORDER_TYPES`), which words do not repair."""
    text = reply_text(text)
    with store.transaction(db):
        row = get(db, hotel_id, ticket_id)
        old = (follow_ups(db, hotel_id, [ticket_id]).get(ticket_id) or {}).get("reply")
        if old is not None and old["text"] == text:
            return {"changes": {}, "syncStatus": "unchanged"}
        changes = {"reply": {"old": old["text"] if old else None, "new": text}}
        # the words are written to the guest who asked: under their key (if they have one: a guest)
        guest = row["created_by"] if guest_keys.has_key(db, hotel_id, row["created_by"]) else None
        queued = outbox.enqueue(db, hotel_id=hotel_id, kind="ticket.updated", entity_type="ticket",
                                entity_id=ticket_id, node=node, now=now, subject=guest,
                                payload={"ticketId": ticket_id, "changes": changes, "by": by, "at": iso(now)})
        db.execute("UPDATE tickets SET updated_at = ? WHERE hotel_id = ? AND ticket_id = ?", [now, hotel_id, ticket_id])
        db.execute("INSERT INTO item_history (hotel_id, kind, item_id, field, old, new, by, at, hlc)"
                   " VALUES (?, 'ticket', ?, 'reply', ?, ?, ?, ?, ?)",
                   [hotel_id, ticket_id, guest_keys.seal(db, hotel_id, guest, changes["reply"]["old"]),
                    guest_keys.seal(db, hotel_id, guest, text), by, now, queued.hlc])
        audit.record(db, hotel_id=hotel_id, event="ticket.replied", outcome="success", at=now, actor=by,
                     details={"ticketId": ticket_id, "room": row["room_number"], "chars": len(text)})
        if row["type"] not in WORK_ORDER_TYPES and can_move(row["status"], "done"):
            changes |= _apply(db, row, {"status": "done"}, by=by, now=now, node=node)[1]
    return {"changes": changes, "syncStatus": "queued", "outboxKey": queued.idempotency_key}


def make_work_order(db, hotel_id: str, ticket_id: str, *, by: str, now: float, node: str) -> dict:
    """A work order from a fault report, room and words carried over, in ONE transaction with
    the ticket's link to it (a history row, field ``work_order``); the work order is queued
    for the PMS (``work_order.created``).  Once per ticket: again, the same work order.  The
    fault is being handled now: a ticket not yet in progress moves to ``in_progress`` in the
    same transaction (``ticket.updated`` with ``changes.status``, a history row)."""
    from . import workorders

    with store.transaction(db):
        row = get(db, hotel_id, ticket_id)
        linked = (follow_ups(db, hotel_id, [ticket_id]).get(ticket_id) or {}).get("workOrderId")
        if linked:
            return {"changes": {}, "syncStatus": "unchanged", "workOrderId": linked}
        if row["type"] not in WORK_ORDER_TYPES or normal(row["status"]) in ("done", "cancelled"):
            raise InvalidTransition(f"a work order is made from an open fault report, not a {normal(row['status'])}"
                                    f" {row['type'].replace('_', ' ')} request",
                                    {"from": normal(row["status"]), "action": "make_work_order"})
        wo_id = work_order_id_for(ticket_id)
        if workorders._get(db, hotel_id, wo_id) is not None:  # made at another kiosk and pulled: link it only
            from . import hlc

            made = {"hlc": str(hlc.tick(db, node, now)), "outboxKey": None}
        else:
            made = workorders.insert(db, hotel_id=hotel_id, work_order_id=wo_id, by=by, now=now, node=node,
                                     room_number=row["room_number"], type="failure",
                                     description=row["description"] or row["title"],
                                     priority=row["priority"] or "normal", notes=f"From request {ticket_id}")
        db.execute("INSERT INTO item_history (hotel_id, kind, item_id, field, old, new, by, at, hlc)"
                   " VALUES (?, 'ticket', ?, 'work_order', NULL, ?, ?, ?, ?)",
                   [hotel_id, ticket_id, wo_id, by, now, made["hlc"]])
        db.execute("UPDATE tickets SET updated_at = ? WHERE hotel_id = ? AND ticket_id = ?", [now, hotel_id, ticket_id])
        changes = {"workOrder": {"old": None, "new": wo_id}}
        moved = None
        if normal(row["status"]) != "in_progress" and can_move(row["status"], "in_progress"):
            moved = _apply(db, row, {"status": "in_progress"}, by=by, now=now, node=node)
            changes |= moved[1]
    key = made["outboxKey"] or (moved[2].idempotency_key if moved else None)
    return {"changes": changes, "workOrderId": wo_id, "syncStatus": "queued" if key else "unchanged",
            "outboxKey": key}


# --- changes that arrive: the cloud's copy of a ticket (pull) ----------------------------------

def record_history(db, hotel_id: str, kind: str, item_id: str, changes: dict[str, dict], *, by: str, at: float,
                   hlc: str | None) -> None:
    """History rows of a ticket's or a task's fields (``item_history``): ``changes`` maps a field
    to ``{"old", "new"}``.  Inside the caller's transaction."""
    db.conn.executemany("INSERT INTO item_history (hotel_id, kind, item_id, field, old, new, by, at, hlc)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [(hotel_id, kind, item_id, f, c["old"], c["new"], by, at, hlc) for f, c in changes.items()])


def apply_remote(db, hotel_id: str, ticket_id: str, d: dict, stamp: str, now: float) -> None:
    """The cloud's copy of a ticket (pulled): inserted, or its merge and lifecycle step taken
    when newer by stamp (last writer wins, so an older copy never undoes a newer local step);
    a reply made at another kiosk becomes a history row like a local one."""
    status = normal(d.get("status") or "received")
    exists = db.execute("SELECT merged_into, status_hlc FROM tickets WHERE hotel_id = ? AND ticket_id = ?",
                        [hotel_id, ticket_id]).fetchone()
    if d.get("reply"):
        _apply_remote_reply(db, hotel_id, ticket_id, d, now)
    if exists:
        # nothing is written where nothing changes: most of a kiosk's pulled tickets are its own,
        # pushed a moment ago, already here as the cloud holds them
        if exists[0] != d.get("mergedInto"):
            db.execute("UPDATE tickets SET merged_into = ? WHERE hotel_id = ? AND ticket_id = ?",
                       [d.get("mergedInto"), hotel_id, ticket_id])
        if d.get("reply") and d.get("replyHlc") == stamp:
            return  # this change was a reply: the status it carries is not a newer step
        if (exists[1] or "") < stamp:
            db.execute("UPDATE tickets SET status = ?, assignee = ?, status_hlc = ?, updated_at = ?"
                       " WHERE hotel_id = ? AND ticket_id = ? AND status_hlc < ?",
                       [status, d.get("assignee"), stamp, now, hotel_id, ticket_id, stamp])
        return
    text_terms = guest_keys.blind(db, terms(f"{d.get('title', '')} {d.get('description') or ''}"))
    by = d.get("createdBy") or "cloud"
    sealed_by = by if guest_keys.has_key(db, hotel_id, by) else None  # a guest known here
    db.execute("INSERT INTO tickets (hotel_id, ticket_id, type, title, description, room_number, priority, queue,"
               " status, fingerprint, terms, created_at, created_by, merged_into, assignee, status_hlc, updated_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [hotel_id, ticket_id, d.get("type") or "maintenance",
                guest_keys.seal(db, hotel_id, sealed_by, d.get("title") or ""),
                guest_keys.seal(db, hotel_id, sealed_by, d.get("description") or ""), d.get("roomNumber"),
                d.get("priority") or "normal", d.get("queue") or "", status, d.get("fingerprint") or "",
                json.dumps(text_terms), from_iso(d.get("createdAt")) or now, by,
                d.get("mergedInto"), d.get("assignee"), stamp, now])


def _apply_remote_reply(db, hotel_id: str, ticket_id: str, d: dict, now: float) -> None:
    """A reply to the guest made at another kiosk: a history row (field ``reply``) like a local
    one, unless a reply with a later (or the same) stamp is here already."""
    stamp = d.get("replyHlc") or ""
    latest = db.execute("SELECT new, hlc FROM item_history WHERE hotel_id = ? AND kind = 'ticket' AND item_id = ?"
                        " AND field = 'reply' ORDER BY id DESC LIMIT 1", [hotel_id, ticket_id]).fetchone()
    if latest is not None and ((latest[1] or "") >= stamp or latest[0] == d["reply"]):
        return
    guest = d.get("createdBy")  # the words were written to the guest who asked: under their key
    record_history(db, hotel_id, "ticket", ticket_id, {"reply": {
        "old": guest_keys.seal(db, hotel_id, guest, latest[0] if latest else None, create=False),
        "new": guest_keys.seal(db, hotel_id, guest, d["reply"], create=False)}},
                   by=d.get("replyBy") or "cloud", at=now, hlc=stamp)


def seal_existing(db, limit: int) -> int:
    """Guests' requests written in clear (by an older version; a guest: one with a key here):
    up to ``limit`` of them sealed now under the guest's key, with their content terms as a
    blind index and the replies written to them; inside the caller's transaction; how many."""
    from .erased import NAME, TEXT

    found = db.execute(
        "SELECT hotel_id, ticket_id, created_by, title, description FROM tickets t WHERE"
        " title NOT IN ('', ?, ?) AND substr(title, 1, 5) <> 'pii1.' AND EXISTS (SELECT 1 FROM guest_keys k"
        " WHERE k.hotel_id = t.hotel_id AND k.subject = t.created_by) LIMIT ?", [TEXT, NAME, limit]).fetchall()
    for hotel_id, ticket_id, by, title, description in found:
        blind = guest_keys.blind(db, terms(f"{title} {description}"))
        db.execute("UPDATE tickets SET title = ?, description = ?, terms = ? WHERE hotel_id = ? AND ticket_id = ?",
                   [guest_keys.seal(db, hotel_id, by, title), guest_keys.seal(db, hotel_id, by, description),
                    json.dumps(blind), hotel_id, ticket_id])
        for hid, old, new in db.execute("SELECT id, old, new FROM item_history WHERE hotel_id = ? AND kind = 'ticket'"
                                        " AND item_id = ? AND field = 'reply'", [hotel_id, ticket_id]).fetchall():
            db.execute("UPDATE item_history SET old = ?, new = ? WHERE id = ?",
                       [guest_keys.seal(db, hotel_id, by, old), guest_keys.seal(db, hotel_id, by, new), hid])
    return len(found)


def erase_texts(db, hotel_id: str, created_by: str, text: str) -> list[str]:
    """A guest's erasure (pulled): the words of the requests their sessions made (``created_by``
    is the confirmation) become ``text`` — title, description, the content terms kept for
    duplicate detection — and so do the replies written to them (history rows of field
    ``reply``).  Ids, type, room, status, times and the fingerprint (a hash) stay, so counts do
    not change.  Inside the caller's transaction; returns the tickets' ids."""
    ids = [r[0] for r in db.execute("SELECT ticket_id FROM tickets WHERE hotel_id = ? AND created_by = ?"
                                    " ORDER BY ticket_id", [hotel_id, created_by])]
    if not ids:
        return ids
    db.execute("UPDATE tickets SET title = ?, description = CASE WHEN description = '' THEN '' ELSE ? END,"
               " terms = '[]' WHERE hotel_id = ? AND created_by = ?", [text, text, hotel_id, created_by])
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        db.execute("UPDATE item_history SET old = CASE WHEN old IS NULL OR old = '' THEN old ELSE ? END,"
                   " new = CASE WHEN new IS NULL OR new = '' THEN new ELSE ? END WHERE hotel_id = ? AND kind = 'ticket'"
                   f" AND field = 'reply' AND item_id IN ({', '.join('?' * len(part))})", [text, text, hotel_id, *part])
    return ids
