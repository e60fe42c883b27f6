"""Tickets in the cloud: ``ticket.created``, ``ticket.updated`` and the read side.

``ticket.updated`` moves a ticket along its lifecycle (received, accepted, assigned,
in progress, done, cancelled) and/or changes its assignee; of two changes the one with
the later hybrid-logical-clock stamp wins (an older one arriving late changes nothing),
and the result goes to the change log so every kiosk shows the same status.

Two kiosks that are offline can both open a ticket for the same problem.  A new
ticket whose fingerprint (hotel, room, type, content terms; kiosk/tickets.py)
equals an open, unmerged ticket's is merged into it (rule ``ticket-fingerprint``
of :mod:`sync.conflicts`): it is kept, with ``mergedInto`` naming the first, and
the conflict is recorded and returned to the kiosk that pushed it.
"""

from __future__ import annotations

import json

from kiosk import jsontext
from sync.conflicts import Conflict

from . import changelog, guest_vault, storage, validation
from .results import Rejected
from .validation import Entry, TicketCreated

_COLUMNS = {"type": "type", "title": "title", "description": "description", "roomNumber": "room_number",
            "priority": "priority", "queue": "queue", "status": "status", "fingerprint": "fingerprint",
            "createdAt": "created_at", "createdBy": "created_by"}


def create(db, e: Entry, now: float) -> list[dict]:
    """Insert (merged into an open twin if there is one); the same ticket id again is fine only
    with identical fields (then nothing changes).  Returns the conflicts it resolved."""
    p = validation.payload(TicketCreated, e, "ticketId")
    canonical = jsontext.compact(p.model_dump())
    existing = db.execute("SELECT payload FROM tickets WHERE hotel_id = ? AND ticket_id = ?",
                          [e.hotelId, p.ticketId]).fetchone()
    if existing is not None:
        if existing[0] == canonical:
            return []
        raise Rejected("DUPLICATE_TICKET_ID", f"{p.ticketId} was created before with other fields")
    twin = None
    if p.fingerprint:
        twin = db.execute("SELECT ticket_id, hlc FROM tickets WHERE hotel_id = ? AND fingerprint = ?"
                          " AND merged_into IS NULL AND status IN ('open', 'received') ORDER BY received_at, ticket_id"
                          " LIMIT 1",
                          [e.hotelId, p.fingerprint]).fetchone()
    row = {"hotel_id": e.hotelId, "ticket_id": p.ticketId,
           **{col: getattr(p, field) for field, col in _COLUMNS.items()},
           "payload": canonical, "received_at": now, "merged_into": twin[0] if twin else None, "hlc": e.hlc}
    row = sealed(db, e.hotelId, row, create=guest_vault.subject_of(e) == p.createdBy)
    db.execute(f"INSERT INTO tickets ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
               list(row.values()))
    changelog.record(db, hotel_id=e.hotelId, entity_type="ticket", entity_id=p.ticketId,
                     data=snapshot(row), hlc_stamp=e.hlc, now=now, new=True)  # (tickets are never deleted)
    if twin is None:
        return []
    return [changelog.conflict(db, e.hotelId, _merged(p, e, twin), e.key, now)]


def create_many(db, es: list[Entry], now: float) -> list:
    """:func:`create` for a run of entries, each of its own ticket, set-wise: per hotel one
    read of the ids and one of the open twins' fingerprints, then one ``executemany``.  A
    twin may be a ticket created earlier in the same run, as one by one.  Writes nothing
    for an entry it refuses."""
    out: list = [None] * len(es)
    parsed = []
    for i, e in enumerate(es):
        try:
            p = validation.payload(TicketCreated, e, "ticketId")
        except Rejected as r:
            out[i] = r
            continue
        parsed.append((i, e, p, jsontext.compact(p.model_dump())))
    existing: dict[tuple, str] = {}
    twins: dict[tuple, tuple] = {}
    asked = []  # every read sent before any is read: inside a pipeline, one round trip for all
    for hotel_id in sorted({e.hotelId for _, e, _, _ in parsed}):
        mine = [p for _, e, p, _ in parsed if e.hotelId == hotel_id]
        for chunk in storage.chunks(sorted(p.ticketId for p in mine)):
            cond, params = storage.one_of(db, "ticket_id", chunk)
            asked.append((existing, hotel_id, db.execute(
                f"SELECT ticket_id, payload FROM tickets WHERE hotel_id = ? AND {cond}", [hotel_id, *params])))
        for chunk in storage.chunks(sorted({p.fingerprint for p in mine if p.fingerprint})):
            cond, params = storage.one_of(db, "fingerprint", chunk)
            asked.append((twins, hotel_id, db.execute(
                f"SELECT fingerprint, ticket_id, hlc FROM tickets WHERE hotel_id = ? AND {cond} AND merged_into IS"
                " NULL AND status IN ('open', 'received') ORDER BY received_at, ticket_id", [hotel_id, *params])))
    for into, hotel_id, cur in asked:
        for first, *rest in cur.fetchall():
            if into is existing:
                existing[(hotel_id, first)] = rest[0]
            else:
                twins.setdefault((hotel_id, first), tuple(rest))
    made = []
    for i, e, p, canonical in parsed:
        before = existing.get((e.hotelId, p.ticketId))
        if before is not None:
            out[i] = [] if before == canonical else Rejected(
                "DUPLICATE_TICKET_ID", f"{p.ticketId} was created before with other fields")
            continue
        twin = twins.get((e.hotelId, p.fingerprint)) if p.fingerprint else None
        row = {"hotel_id": e.hotelId, "ticket_id": p.ticketId,
               **{col: getattr(p, field) for field, col in _COLUMNS.items()},
               "payload": canonical, "received_at": now, "merged_into": twin[0] if twin else None, "hlc": e.hlc}
        if twin is None and p.fingerprint and p.status in ("open", "received"):
            twins[(e.hotelId, p.fingerprint)] = (p.ticketId, e.hlc)  # a twin for the run's later tickets
        made.append((i, e, p, sealed(db, e.hotelId, row, create=guest_vault.subject_of(e) == p.createdBy), twin))
    if made:
        cols = list(made[0][3])
        db.conn.executemany(f"INSERT INTO tickets ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [[row[c] for c in cols] for _, _, _, row, _ in made])
    recorded = iter(changelog.conflicts(db, [(e.hotelId, _merged(p, e, twin), e.key) for _, e, p, _, twin in made
                                             if twin is not None], now, log=False))  # one statement for all
    for i, e, p, row, twin in made:
        changelog.record(db, hotel_id=e.hotelId, entity_type="ticket", entity_id=p.ticketId,
                         data=snapshot(row), hlc_stamp=e.hlc, now=now, new=True)
        out[i] = [] if twin is None else [next(recorded)]
        for c in out[i]:
            changelog.log_conflict(db, e.hotelId, c, now)  # right after its ticket's, as one by one
    return out


def _merged(p, e: Entry, twin: tuple) -> Conflict:
    return Conflict("ticket", p.ticketId, None, "ticket-fingerprint", f"merged into {twin[0]}",
                    {"value": p.ticketId, "hlc": e.hlc}, {"value": twin[0], "hlc": twin[1]})


def update(db, e: Entry, now: float) -> list[dict]:
    """Apply a kiosk's lifecycle step if it is newer than the ticket's last one."""
    p = validation.payload(validation.TicketUpdated, e, "ticketId")
    rows = list(db.query("SELECT * FROM tickets WHERE hotel_id = ? AND ticket_id = ?", [e.hotelId, p.ticketId]))
    if not rows:
        raise Rejected("UNKNOWN_TICKET", f"no ticket {p.ticketId} in hotel {e.hotelId}")
    row = rows[0]
    if "reply" in p.changes:  # the guest's answer: the latest stamp's words win
        if (row.get("reply_hlc") or "") >= e.hlc:
            return []
        row["reply"], row["reply_by"] = p.changes["reply"].new, p.by
        row = sealed(db, e.hotelId, row)
        db.execute("UPDATE tickets SET reply = ?, reply_by = ?, reply_hlc = ? WHERE hotel_id = ? AND ticket_id = ?",
                   [row["reply"], row["reply_by"], e.hlc, e.hotelId, p.ticketId])
        changelog.record(db, hotel_id=e.hotelId, entity_type="ticket", entity_id=p.ticketId, data=snapshot(row),
                         hlc_stamp=e.hlc, now=now)
        return []
    if (row.get("status_hlc") or "") >= e.hlc:
        return []  # a later change is already here: this one is history
    if "status" in p.changes:
        row["status"] = p.changes["status"].new
    if "assignee" in p.changes:
        row["assignee"] = p.changes["assignee"].new
    db.execute("UPDATE tickets SET status = ?, assignee = ?, status_hlc = ? WHERE hotel_id = ? AND ticket_id = ?",
               [row["status"], row.get("assignee"), e.hlc, e.hotelId, p.ticketId])
    changelog.record(db, hotel_id=e.hotelId, entity_type="ticket", entity_id=p.ticketId, data=snapshot(row),
                     hlc_stamp=e.hlc, now=now)
    return []


def put_snapshot(db, hotel_id: str, ch: dict, now: float) -> None:
    """A ticket as the chain's cloud holds it, sent down to a hub: the hub's row becomes it and
    is logged for the hub's kiosks."""
    d = ch["data"] or {}
    tid = ch["entityId"]
    stamp = ch.get("hlc") or ""
    fields = {col: d.get(field) for field, col in _COLUMNS.items()}
    fields["type"] = fields["type"] or "request"
    fields["title"] = fields["title"] or tid
    extra = {"merged_into": d.get("mergedInto"), "assignee": d.get("assignee"), "reply": d.get("reply"),
             "reply_by": d.get("replyBy"), "reply_hlc": d.get("replyHlc") or "", "status_hlc": stamp}
    existing = db.execute("SELECT status_hlc, hlc FROM tickets WHERE hotel_id = ? AND ticket_id = ?",
                          [hotel_id, tid]).fetchone()
    if existing is not None and max(existing[0] or "", existing[1] or "") > stamp:
        return  # the hub holds a later step, still on its way to the chain: the chain's answer follows
    if existing is None:
        created = {f: d.get(f) for f in ("ticketId", *_COLUMNS)}
        row = sealed(db, hotel_id, {"hotel_id": hotel_id, "ticket_id": tid, **fields, **extra, "hlc": stamp,
                                    "received_at": now,
                                    "payload": jsontext.compact(created)})
        db.execute(f"INSERT INTO tickets ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))
    else:
        sets = sealed(db, hotel_id, {**fields, **extra})
        db.execute(f"UPDATE tickets SET {', '.join(f'{k} = ?' for k in sets)} WHERE hotel_id = ? AND ticket_id = ?",
                   [*sets.values(), hotel_id, tid])
    row = next(iter(db.query("SELECT * FROM tickets WHERE hotel_id = ? AND ticket_id = ?", [hotel_id, tid])))
    changelog.record(db, hotel_id=hotel_id, entity_type="ticket", entity_id=tid, data=snapshot(row),
                     hlc_stamp=stamp, now=now)


def erase(db, hotel_id: str, ticket_ids: list[str], now: float) -> list[str]:
    """A guest's erasure (sync/cloud/erasure.py): the words of the hotel's tickets named, the
    guest's (title, description) and the reply written to them, become :data:`kiosk.erased.TEXT`
    in the row and in its ``payload`` (the ``ticket.created`` as applied, so the kiosk's entry
    scrubbed the same way still matches it); ids, type, room, status and times stay, so counts
    do not change.  Each ticket that changed is logged for pull with its latest stamp (the same
    state as before but for the words: kiosks and hubs take no step from it), which deletes
    its older changes, the ones with the words.  Returns the tickets changed."""
    from kiosk import erased

    changed = []
    ids = sorted(set(ticket_ids))
    for at in range(0, len(ids), 500):
        chunk = ids[at:at + 500]
        for row in list(db.query(f"SELECT * FROM tickets WHERE hotel_id = ? AND ticket_id IN"
                                 f" ({', '.join('?' * len(chunk))}) ORDER BY ticket_id", [hotel_id, *chunk])):
            words = {f: erased.TEXT if row.get(f) else row.get(f) for f in ("title", "description", "reply")}
            words["title"] = erased.TEXT  # never empty (NOT NULL)
            created = json.loads(row["payload"])
            payload = json.dumps(created | {f: erased.TEXT for f in ("title", "description") if created.get(f)},
                                 sort_keys=True, separators=(",", ":"))
            if all(row.get(f) == v for f, v in words.items()) and payload == row["payload"]:
                continue
            db.execute("UPDATE tickets SET title = ?, description = ?, reply = ?, payload = ? WHERE hotel_id = ?"
                       " AND ticket_id = ?", [words["title"], words["description"], words["reply"], payload,
                                              hotel_id, row["ticket_id"]])
            before = snapshot(row)
            row |= words
            if snapshot(row) != before:
                stamp = max(row.get("hlc") or "", row.get("status_hlc") or "", row.get("reply_hlc") or "")
                changelog.record(db, hotel_id=hotel_id, entity_type="ticket", entity_id=row["ticket_id"],
                                 data=snapshot(row), hlc_stamp=stamp, now=now)
            changed.append(row["ticket_id"])
    return changed


def sealed(db, hotel_id: str, row: dict, *, create: bool = False) -> dict:
    """A ticket's row with its words (title, description, the reply, and the same in the
    ``ticket.created`` it keeps) sealed under the key of its creator, if a guest: one with a key
    here (their reservation's), or ``create`` (the kiosk's entry named them: a guest's request,
    sync/cloud/guest_vault.py)."""
    subject = row.get("created_by")
    if guest_vault.of(db) is None or not subject or not (create or guest_vault.has_key(db, hotel_id, subject)):
        return row
    out = dict(row)
    for col in ("title", "description", "reply"):
        if col in out:
            out[col] = guest_vault.seal(db, hotel_id, subject, out[col], "t")
    if out.get("payload"):
        out["payload"] = json.dumps(guest_vault.seal_fields(db, hotel_id, subject, json.loads(out["payload"])),
                                    sort_keys=True, separators=(",", ":"))
    return out


def snapshot(row: dict) -> dict:
    return {"ticketId": row["ticket_id"], **{field: row[col] for field, col in _COLUMNS.items()},
            "mergedInto": row["merged_into"], "assignee": row.get("assignee"),
            **({"reply": row["reply"], "replyBy": row.get("reply_by"), "replyHlc": row.get("reply_hlc")}
               if row.get("reply") else {})}


def list_for_hotel(db, hotel_id: str) -> list[dict]:
    return [{"ticketId": r["ticket_id"], "hotelId": r["hotel_id"],
             **{field: r[col] for field, col in _COLUMNS.items()}, "mergedInto": r["merged_into"]}
            for r in db.query("SELECT * FROM tickets WHERE hotel_id = ? ORDER BY created_at, ticket_id",
                              [hotel_id])]


def seal_existing(db, after: tuple[str, str], limit: int) -> tuple[int, tuple[str, str] | None]:
    """Guests' requests an earlier version stored in clear (their creator has a key here: a
    guest whose reservation the cloud holds), sealed as :func:`create` seals them now (inside
    the caller's transaction), ``limit`` rows after ``after`` (hotel, ticket id): (rows sealed,
    the key to go on from, None at the end)."""
    rows = list(db.query("SELECT * FROM tickets WHERE (hotel_id > ? OR (hotel_id = ? AND ticket_id > ?))"
                         " AND title NOT LIKE 'pii1.%' ORDER BY hotel_id, ticket_id LIMIT ?",
                         [after[0], *after, limit]))
    n = 0
    for row in rows:
        new = sealed(db, row["hotel_id"], row)
        if new is not row and new["title"] != row["title"]:
            n += db.execute("UPDATE tickets SET title = ?, description = ?, reply = ?, payload = ? WHERE hotel_id = ?"
                            " AND ticket_id = ?", [new["title"], new["description"], new["reply"], new["payload"],
                                                   row["hotel_id"], row["ticket_id"]]).rowcount
    return n, ((rows[-1]["hotel_id"], rows[-1]["ticket_id"]) if len(rows) == limit else None)
