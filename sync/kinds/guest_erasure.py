"""A guest erased at their request (the right to be forgotten, docs/privacy.md): the cloud
erases what it holds (``kiosk-cloud guest erase``, sync/cloud/erasure.py) and sends one
``guest_erasure`` change (id: the confirmation, ``{"confirmation", "erasedAt"}``) with the
erased reservation and requests; each kiosk, by pull, erases what only it holds.

At the kiosk, in the page's transaction (the owners' functions), everything tied to the
confirmation loses the guest's name and words; ids, times, rooms, statuses and amounts stay,
so counts and the outbox's entries do: the reservation (in case its erased copy has not come
yet), sessions' and codes' display names, the requests the guest's sessions made (texts,
content terms, replies written to them), the questions a model handed to staff, the actions
models took for them (a message's text), and the outbox's entries of all these (pending,
delivered or dead: the entry stays where it is, only the words change).  The audit log is a
hash chain and is not rewritten: it holds the confirmation as the actor of the guest's scans
and requests, never a name or the guest's words (sync/pull.py then zeroes the old bytes).
A hub erases what it holds the same way and passes the change on to its kiosks.
"""

from __future__ import annotations

import json

from kiosk import audit, erased, guest_keys, outbox, queue, sessions, tickets, tokens
from kiosk.models import actions
from kiosk.property import tables

from . import Kind

ENTITY = "guest_erasure"


def pull(ctx, hotel_id: str, ch: dict) -> None:
    erase(ctx.db, hotel_id, str((ch.get("data") or {}).get("confirmation") or ch["entityId"]), ctx.now)


def erase(db, hotel_id: str, confirmation: str, now: float) -> dict:
    """Erase the guest ``confirmation`` of ``hotel_id`` from this kiosk's store, inside the caller's
    transaction; applying it again changes nothing.  Returns what changed, by table."""
    out = {"reservations": int(tables.erase_reservation(db, hotel_id, confirmation)),
           "sessions": sessions.erase_names(db, hotel_id, confirmation, erased.NAME),
           "tokens": tokens.erase_names(db, hotel_id, confirmation, erased.NAME)}
    ticket_ids = tickets.erase_texts(db, hotel_id, confirmation, erased.TEXT)
    out["tickets"] = len(ticket_ids)
    out["tasks"] = len(queue.erase_questions(db, hotel_id, confirmation, erased.TEXT))
    out["modelActions"] = actions.erase_for(db, hotel_id, confirmation, erased.TEXT)
    out["outbox"] = outbox.rewrite_payloads(db, _entries(db, hotel_id, confirmation, ticket_ids))
    # the key: every sealed copy of the guest's data (here, in the outbox, in every backup made
    # before) is unreadable from now on (kiosk/guest_keys.py)
    out["keys"] = guest_keys.destroy(db, hotel_id, confirmation)
    if any(out.values()):
        audit.record(db, hotel_id=hotel_id, event="guest.erased", outcome="success", at=now, actor="cloud",
                     details={"confirmation": confirmation, **out})
    return out


def _entries(db, hotel_id: str, confirmation: str, ticket_ids: list[str]) -> dict[int, dict]:
    """The outbox's entries with the guest's words, as they read without them: their requests'
    (created, replied to), messages to them, their questions handed to staff."""
    found: list[tuple[int, str, str]] = []
    for i in range(0, len(ticket_ids), 500):
        part = ticket_ids[i:i + 500]
        found += db.execute(f"SELECT id, kind, payload FROM outbox WHERE hotel_id = ? AND entity_type = 'ticket'"
                            f" AND entity_id IN ({', '.join('?' * len(part))})", [hotel_id, *part]).fetchall()
    found += db.execute("SELECT id, kind, payload FROM outbox WHERE hotel_id = ? AND entity_type = 'message'"
                        " AND (entity_id = ? OR substr(entity_id, 1, ?) = ?)",
                        [hotel_id, confirmation, len(confirmation) + 1, confirmation + ":"]).fetchall()
    found += db.execute("SELECT id, kind, payload FROM outbox WHERE hotel_id = ? AND kind = 'task.created'"
                        " AND instr(payload, ?) > 0", [hotel_id, confirmation]).fetchall()
    out = {}
    for entry_id, kind, text in found:
        payload = json.loads(text)
        new = erased.entry_payload(kind, payload, confirmation)
        if new is not None and new != payload:
            out[entry_id] = new
    return out


KIND = Kind("guest_erasure", "a guest erased at their request (cloud -> kiosks)",
            pull_entities=(ENTITY,), pull=pull, erases=True,
            snapshot=((ENTITY, "sync.cloud.erasure:snapshot_rows"),),
            relay="sync.cloud.erasure:put_change")
