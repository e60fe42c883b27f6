"""A guest's right to be forgotten: ``kiosk-cloud guest erase`` (docs/privacy.md), or an admin's
erasure at a kiosk, pushed as a ``guest.erase_requested`` entry (:func:`apply_request`).

The guest is known as :mod:`.guest_data` knows them for the export: the hotel and the
reservation's confirmation number; their requests are the tickets whose ``created_by`` is the
confirmation; their sessions and codes are found through the event log; messages to them and
changes for the PMS name the confirmation.  In ONE transaction (holding the hotel's lock),
each table through its owner:

* the reservation (``ref_data``): the name becomes :data:`kiosk.erased.NAME`, e-mail, phone
  and any other personal or free-text field null; dates, room, rate plan, rate, counts and
  status stay (analytics and the night audit's money are unchanged);
* the guest's requests (``tickets``): title, description and the reply written to them
  become :data:`kiosk.erased.TEXT` (the row and the ``ticket.created`` payload it keeps);
  the ticket stays, with its status, room and times;
* the event log (``events``: messages to the guest, their questions handed to staff) and the
  PMS outbox (``pms_actions``: a service request's words), and on a hub the relay queue
  (``relay_outbox``): the same entries, without the guest's words;
* each reservation and request that changed is logged for pull with its new state, which
  deletes its older changes (the log is compacted: :mod:`.changelog`), and one change of
  entity type ``guest_erasure`` (id: the confirmation, ``{"confirmation", "erasedAt"}``)
  tells kiosks and hubs to erase what only they hold (sync/kinds/guest_erasure.py);
* ``guest_erasures`` records which confirmation was erased, when and by whom (no name).  A
  later import keeps that reservation erased (:func:`.refdata.erased_confirmations`).

On SQLite the transaction's connection runs with ``PRAGMA secure_delete=ON`` (what it
overwrites or deletes is zeroed in the file) and the write-ahead log is checkpointed and
truncated after the commit, so the old bytes are gone from ``cloud.db`` and ``cloud.db-wal``.
On PostgreSQL the old row versions stay in the table files as dead tuples until ``VACUUM``.

Not erased here (docs/privacy.md says why): backups, logs, a work order made from the
guest's fault report, entries a kiosk pushes after the erasure that it made before it pulled
it (erase again: it is idempotent), and the confirmation number itself (the id everything is
tied by).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from kiosk import erased
from kiosk.clock import iso
from kiosk.errors import NotFound, ValidationError

from . import (
    changelog,
    events,
    guest_data,
    guest_vault,
    pms_outbox,
    refdata,
    relay_outbox,
    storage,
    tickets,
    validation,
)
from .results import Rejected

ENTITY = "guest_erasure"


def erase(db, hotel_id: str, confirmation: str, now: float, *, confirmed: bool, by: str = "cli") -> dict:
    """Erase one guest of ``hotel_id`` (see the module); returns what changed, by table (counts,
    never the guest's data).  Without ``confirmed`` nothing is done (VALIDATION_ERROR); a
    confirmation the hotel holds nothing under is NOT_FOUND, nothing changed."""
    hotel_id, confirmation = guest_data.check(hotel_id, confirmation)
    if not confirmed:
        raise ValidationError("erasing a guest cannot be undone: nothing was changed; add --yes to erase",
                              {"field": "yes"}, hint="export the guest's data first if they asked for it")
    with storage.secure_delete(db):  # outside the transaction: SQLite changes it only there
        with storage.transaction(db):
            storage.lock_hotels(db, [hotel_id])
            confirmation = guest_data.resolve(db, hotel_id, confirmation)
            out = apply(db, hotel_id, confirmation, now, by=by, require=True)
            if out is None:
                raise NotFound(f"hotel {hotel_id} holds nothing under confirmation {confirmation!r}",
                               {"hotelId": hotel_id, "confirmation": confirmation},
                               hint="give the hotel and the confirmation number as the PMS export has them")
    out["filesCheckpointed"] = storage.checkpoint(db)
    return out


def apply(db, hotel_id: str, confirmation: str, now: float, *, by: str, require: bool,
          stamp: str | None = None, data: dict | None = None) -> dict | None:
    """The erasure inside the caller's transaction; None (nothing written) when ``require`` and
    the hotel holds nothing of the guest.  ``stamp``/``data``: the ``guest_erasure`` change as
    the chain's cloud sent it (a hub passes it on as it came)."""
    ticket_ids = [r[0] for r in db.execute("SELECT ticket_id FROM tickets WHERE hotel_id = ? AND created_by = ?",
                                           [hotel_id, confirmation]).fetchall()]
    sessions, tokens, code_events = guest_data.identities(db, hotel_id, confirmation)
    rows = code_events + guest_data.stay_events(db, hotel_id, confirmation) + _questions(db, hotel_id, confirmation)
    if require and not (ticket_ids or rows or guest_data.reservations(db, hotel_id, confirmation)
                        or guest_data.pms_reservations(db, hotel_id, confirmation)):
        return None
    stamp = stamp or changelog.stamp(db, now, hotel_id)
    out = {"hotelId": hotel_id, "confirmation": confirmation, "erasedAt": iso(now),
           "reservations": int(refdata.erase_reservation(db, hotel_id, confirmation, stamp, now)),
           "requests": len(tickets.erase(db, hotel_id, ticket_ids, now))}
    scrubbed = {}
    for key, kind, _etype, _eid, payload, _at in rows:
        before = json.loads(payload)
        after = erased.entry_payload(kind, before, confirmation)
        if after is not None and after != before:
            scrubbed[key] = after
    out["events"] = events.rewrite_payloads(db, hotel_id, scrubbed)
    out["pmsActions"] = pms_outbox.rewrite_data(db, hotel_id, _pms_actions(db, hotel_id, confirmation, ticket_ids))
    entities = ({f"ticket:{t}" for t in ticket_ids} | {f"session:{s}" for s in sessions}
                | {f"qr_token:{j}" for j in tokens} | {f"{r[2]}:{r[3]}" for r in rows})
    out["relayQueue"] = relay_outbox.rewrite_entries(db, hotel_id, _relayed(db, hotel_id, confirmation, entities))
    db.execute("INSERT INTO guest_erasures (hotel_id, confirmation, erased_at, erased_by) VALUES (?, ?, ?, ?)"
               " ON CONFLICT (hotel_id, confirmation) DO UPDATE SET erased_at = excluded.erased_at,"
               " erased_by = excluded.erased_by", [hotel_id, confirmation, now, by])
    changelog.record(db, hotel_id=hotel_id, entity_type=ENTITY, entity_id=confirmation,
                     data=data or {"confirmation": confirmation, "erasedAt": now}, hlc_stamp=stamp, now=now)
    # last, the guest's key (the rewrites above read their words to count what changed): every
    # sealed copy of their fields, in this database and in every backup of it made before, is
    # unreadable from now on, whether or not this transaction commits (sync/cloud/guest_vault.py)
    out["keys"] = guest_vault.destroy(db, hotel_id, confirmation)
    return out


def _questions(db, hotel_id: str, confirmation: str) -> list:
    """``task.created`` events of the guest's questions a model handed to staff ("CONF: …")."""
    like = guest_data._like(json.dumps(f"{confirmation}: ")[1:-1])
    return [r for r in db.execute(f"{guest_data._EVENT} WHERE hotel_id = ? AND kind = 'task.created'"
                                  " AND payload LIKE ? ESCAPE '\\'", [hotel_id, like]).fetchall()
            if erased.entry_payload(r[1], json.loads(r[4]), confirmation) is not None]


def _pms_actions(db, hotel_id: str, confirmation: str, ticket_ids: list[str]) -> dict[int, dict]:
    """The PMS outbox's actions for the stay and the guest's requests, without the guest's words
    (a charge keeps its description: the offer's name, the folio's line)."""
    out = {}
    for marks, chunk in guest_data._in({f"reservation:{confirmation}", *(f"ticket:{t}" for t in ticket_ids)}):
        for action_id, action, data in db.execute(
                f"SELECT id, action, data FROM pms_actions WHERE hotel_id = ? AND entity IN ({marks})",
                [hotel_id, *chunk]).fetchall():
            before = json.loads(data)
            after = erased.scrub(before, keep=frozenset({"description"}) if action == "charge" else frozenset())
            if after != before:
                out[action_id] = after
    return out


def _relayed(db, hotel_id: str, confirmation: str, entities: set[str]) -> dict[int, dict]:
    """A hub's relay queue: the guest's entries (waiting or delivered) without their words."""
    out = {}
    for marks, chunk in guest_data._in(entities):
        for entry_id, text in db.execute(f"SELECT id, entry FROM relay_outbox WHERE hotel_id = ?"
                                         f" AND entity IN ({marks})", [hotel_id, *chunk]).fetchall():
            raw = json.loads(text)
            after = erased.entry_payload(str(raw.get("kind")), raw.get("payload"), confirmation)
            if after is not None and after != raw.get("payload"):
                out[entry_id] = raw | {"payload": after}
    return out


# ---- the sync kind's cloud side (sync/kinds/guest_erasure.py) --------------------------------

class EraseRequested(BaseModel):
    """A ``guest.erase_requested`` entry's payload: the confirmation, the admin who asked at the
    kiosk and when; never a name."""
    model_config = ConfigDict(extra="ignore")
    confirmation: StrictStr = Field(min_length=1, max_length=128)
    requestedBy: StrictStr = Field(min_length=1, max_length=128)
    requestedAt: StrictStr | None = Field(None, max_length=40)


def apply_request(db, e: validation.Entry, now: float) -> list[dict]:
    """An admin erased a guest at a kiosk (``POST /api/admin/guests/erase``, which erased it there
    at once): the cloud erases what it holds of the guest as ``kiosk-cloud guest erase`` does,
    inside the push's transaction (its savepoint), ``erased_by`` ``admin <user> at <kiosk>`` (the
    kiosk: the node of the entry's clock stamp, which a hub's relay keeps), and logs the
    ``guest_erasure`` change for every kiosk of the hotel.  A confirmation the cloud holds
    nothing under is no error, and changes nothing here: no erasure is recorded, so a mistyped
    booking number never erases a stay that arrives later under it (the kiosk erased what it
    held).  A repeated entry is a duplicate (sync/cloud/apply.py); a new request for the same
    guest erases again, changing nothing more.

    ``secure_delete`` and the checkpoint after are the push route's: it applies a push holding
    such an entry with them (sync/cloud/routes/sync_api.py, ``kinds.erasing_push``)."""
    p = validation.payload(EraseRequested, e, "confirmation")
    try:
        hotel_id, typed = guest_data.check(e.hotelId, p.confirmation)
    except ValidationError as err:
        raise Rejected("INVALID_ENTRY", f"payload.confirmation: {err}") from None
    device = e.hlc.split("-", 2)[2]
    apply(db, hotel_id, guest_data.resolve(db, hotel_id, typed), now, by=f"admin {p.requestedBy} at {device}",
          require=True)
    return []


def put_change(db, hotel_id: str, ch: dict, now: float) -> None:
    """A ``guest_erasure`` the chain's cloud sent a hub: the hub erases what it holds of the guest
    the same way (its own copies: reservation, requests, events, relay queue) and logs the change
    for its kiosks as it came, whether or not it held anything."""
    d = ch.get("data") or {}
    confirmation = str(d.get("confirmation") or ch["entityId"])
    apply(db, hotel_id, confirmation, now, by="chain", require=False, stamp=ch.get("hlc") or None,
          data=d | {"confirmation": confirmation})


def snapshot_rows(db, hotel_id, after, n, now):
    """The snapshot's section: every erasure of the hotel (a kiosk that re-syncs erases again
    what it still holds; applying one twice changes nothing)."""
    rows = db.execute("SELECT confirmation, erased_at FROM guest_erasures WHERE hotel_id = ? AND confirmation > ?"
                      " ORDER BY confirmation LIMIT ?", [hotel_id, after[0] if after else "", n]).fetchall()
    return ([((c,), {"entityType": ENTITY, "entityId": c, "op": "upsert",
                     "data": {"confirmation": c, "erasedAt": at}, "hlc": ""}) for c, at in rows],
            [rows[-1][0]] if rows else None, len(rows) < n)


def listed(db, hotel_id: str) -> list[dict]:
    """The hotel's erasures: which confirmation, when, by whom."""
    return [{"confirmation": r[0], "erasedAt": iso(r[1]), "erasedBy": r[2]} for r in db.execute(
        "SELECT confirmation, erased_at, erased_by FROM guest_erasures WHERE hotel_id = ? ORDER BY erased_at",
        [hotel_id]).fetchall()]
