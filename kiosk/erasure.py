"""A guest erased at this kiosk (the right to be forgotten, docs/privacy.md): what a pulled
``guest_erasure`` change does here (sync/kinds/guest_erasure.py calls :func:`erase`), and an
admin's erasure from the dashboard (:func:`request`: ``POST /api/admin/guests/erase``).

:func:`erase`, inside the caller's transaction (the owners' functions), takes the guest's name
and words out of everything tied to the confirmation; ids, times, rooms, statuses and amounts
stay, so counts and the outbox's entries do: the reservation (in case its erased copy has not
come yet), sessions' and codes' display names, the requests the guest's sessions made (texts,
content terms, replies written to them), the questions a model handed to staff, the actions
models took for them (a message's text), and the outbox's entries of all these (pending,
delivered or dead: the entry stays where it is, only the words change); then the guest's key
is destroyed (kiosk/guest_keys.py).  The audit log is a hash chain and is not rewritten.

:func:`request` is the admin's: the same erasure here at once and, in the same transaction, an
audit row ``guest.erase_requested`` and an outbox entry ``guest.erase_requested`` (the
confirmation, who asked and when: never a name) that asks the cloud to erase the guest there
and send the ``guest_erasure`` change to every kiosk (sync/cloud/erasure.py ``apply_request``).
It runs with SQLite's ``secure_delete`` on and the write-ahead log truncated after, as a pulled
page that erases does (sync/pull.py).  The kiosk never imports ``sync``: this module is the
kiosk's side of both.
"""

from __future__ import annotations

import json
import logging

from . import audit, erased, guest_keys, outbox, queue, sessions, store, tickets, tokens
from .clock import iso
from .errors import ValidationError
from .models import actions
from .property import tables

log = logging.getLogger(__name__)

#: the outbox entry an admin's erasure sends the cloud (sync/kinds/guest_erasure.py)
REQUEST_KIND = "guest.erase_requested"
ENTITY = "guest_erasure"


def erase(db, hotel_id: str, confirmation: str, now: float, *, actor: str = "cloud") -> dict:
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
        audit.record(db, hotel_id=hotel_id, event="guest.erased", outcome="success", at=now, actor=actor,
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


def resolve(db, hotel_id: str, typed: str) -> str:
    """The confirmation as this kiosk holds it: as typed, else in upper case when only that is a
    reservation here (as the sign-in with the booking and the cloud take it)."""
    def held(c: str) -> bool:
        return db.execute("SELECT 1 FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                          [hotel_id, c]).fetchone() is not None

    upper = typed.upper()
    if upper != typed and not held(typed) and held(upper):
        return upper
    return typed


def request(db, *, hotel_id: str, confirmation: str, user_id: str, actor: str, node: str, now: float,
            session_id: str | None = None, client: str | None = None) -> dict:
    """An admin's erasure of one guest: erased here at once and asked of the cloud, in ONE
    transaction (the erasure, the audit row, the outbox entry), with ``secure_delete`` on and the
    write-ahead log truncated after the commit.  A confirmation this kiosk holds nothing under is
    fine (the cloud may).  Returns the confirmation, the counts erased here and the entry's key."""
    typed = confirmation.strip()
    if not typed or any(ord(ch) < 32 or ord(ch) == 127 for ch in typed):
        raise ValidationError("confirmation must be a booking number", {"fields": [{"field": "confirmation"}]})
    with store.secure_delete(db):  # outside the transaction: SQLite changes it only there
        with store.transaction(db):
            conf = resolve(db, hotel_id, typed)
            here = erase(db, hotel_id, conf, now, actor=actor)
            audit.record(db, hotel_id=hotel_id, event=REQUEST_KIND, outcome="success", at=now, actor=actor,
                         session_id=session_id, client=client, details={"confirmation": conf})
            queued = outbox.enqueue(db, hotel_id=hotel_id, kind=REQUEST_KIND, entity_type=ENTITY, entity_id=conf,
                                    payload={"confirmation": conf, "requestedBy": user_id, "requestedAt": iso(now)},
                                    node=node, now=now)
    if not store.checkpoint_truncate(db):
        log.warning("the write-ahead log could not be truncated after an erasure: a reader held it;"
                    " the next checkpoint will")
    return {"confirmation": conf, "erasedHere": here, "outboxKey": queued.idempotency_key}
