"""A guest erased at their request (the right to be forgotten, docs/privacy.md): the cloud
erases what it holds (``kiosk-cloud guest erase``, sync/cloud/erasure.py) and sends one
``guest_erasure`` change (id: the confirmation, ``{"confirmation", "erasedAt"}``) with the
erased reservation and requests; each kiosk, by pull, erases what only it holds.

At the kiosk, in the page's transaction (kiosk/erasure.py, through the tables' owners),
everything tied to the confirmation loses the guest's name and words; ids, times, rooms,
statuses and amounts stay, so counts and the outbox's entries do: the reservation (in case its
erased copy has not come yet), sessions' and codes' display names, the requests the guest's
sessions made (texts, content terms, replies written to them), the questions a model handed
to staff, the actions models took for them (a message's text), and the outbox's entries of all
these (pending, delivered or dead: the entry stays where it is, only the words change).  The
audit log is a hash chain and is not rewritten: it holds the confirmation as the actor of the
guest's scans and requests, never a name or the guest's words (sync/pull.py then zeroes the
old bytes).  A hub erases what it holds the same way and passes the change on to its kiosks.

The push side: an admin erases a guest from a kiosk's dashboard (``POST
/api/admin/guests/erase``, kiosk/erasure.py ``request``): the kiosk erases at once and pushes
one ``guest.erase_requested`` entry (entity type ``guest_erasure``, id the confirmation,
``{"confirmation", "requestedBy", "requestedAt"}``: no name); the cloud applies it as
``kiosk-cloud guest erase`` would (sync/cloud/erasure.py ``apply_request``), and its
``guest_erasure`` change reaches every kiosk of the hotel by pull.
"""

from __future__ import annotations

from kiosk import erasure

from . import Kind, Push

ENTITY = "guest_erasure"


def pull(ctx, hotel_id: str, ch: dict) -> None:
    erase(ctx.db, hotel_id, str((ch.get("data") or {}).get("confirmation") or ch["entityId"]), ctx.now)


def erase(db, hotel_id: str, confirmation: str, now: float) -> dict:
    """Erase the guest ``confirmation`` of ``hotel_id`` from this kiosk's store, inside the caller's
    transaction; applying it again changes nothing.  Returns what changed, by table
    (kiosk/erasure.py)."""
    return erasure.erase(db, hotel_id, confirmation, now)


KIND = Kind("guest_erasure", "a guest erased at their request (an admin's request kiosk -> cloud; cloud -> kiosks)",
            push_entity=ENTITY,
            push=(Push(erasure.REQUEST_KIND, "sync.cloud.erasure:apply_request"),),
            pull_entities=(ENTITY,), pull=pull, erases=True,
            snapshot=((ENTITY, "sync.cloud.erasure:snapshot_rows"),),
            relay="sync.cloud.erasure:put_change")
