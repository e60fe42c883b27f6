"""What an erased guest's data becomes (the right to be forgotten, docs/privacy.md).

One vocabulary for every place that erases: the cloud and a hub (sync/cloud/erasure.py), and
a kiosk applying a pulled ``guest_erasure`` (sync/kinds/guest_erasure.py).  A guest's name
becomes :data:`NAME`, the words they wrote (and words written to them) :data:`TEXT`, their
contact details nothing; ids, dates, rooms, rates, amounts and statuses stay, so counts,
analytics and the night audit's money are unchanged.  The same replacement everywhere means
the same payload everywhere: a kiosk's scrubbed outbox entry pushed again matches the
cloud's scrubbed copy of it.
"""

from __future__ import annotations

from typing import Any

#: the name an erased guest's reservation, sessions and codes show
NAME = "Erased guest"
#: what an erased guest's words become (a request's title and description, a reply, a message)
TEXT = "(erased)"

#: a reservation's fields that say nothing about who the guest is: kept
RESERVATION_KEPT = frozenset({
    "confirmation", "room_number", "room_type", "arrival", "departure", "status", "adults", "children",
    "rate_plan", "nightly_rate", "currency", "language", "vip", "segment", "booked_on", "canceled_on"})
#: payload keys holding a person's name
NAME_KEYS = frozenset({"guest_name", "guestName", "display_name", "displayName",
                       "first_name", "firstName", "last_name", "lastName"})
#: payload keys holding contact details (become null)
CONTACT_KEYS = frozenset({"email", "phone", "mobile", "address", "e_mail"})
#: payload keys holding free text someone wrote (become :data:`TEXT`); never an id that ties data to
#: the guest (``confirmation``, ``userId``, a token's ``subject``: the confirmation)
TEXT_KEYS = frozenset({"text", "content", "body", "message", "title", "description", "comment", "comments",
                       "remark", "remarks", "notes", "note", "reply", "words", "question", "answer"})


def reservation(row: dict) -> dict:
    """A reservation's row (the PMS's fields, by the kiosk's column names) with the guest erased:
    the kept fields as they are, ``guest_name`` :data:`NAME`, every other field null (e-mail,
    phone, notes, whatever else a PMS sent)."""
    return {k: (v if k in RESERVATION_KEPT else None) for k, v in row.items()} | {"guest_name": NAME}


def scrub(value: Any, keep: frozenset[str] = frozenset()) -> Any:
    """``value`` (a payload: dicts, lists, scalars) with every name, contact and free-text field
    replaced, at any depth; ids, numbers, flags and the keys in ``keep`` stay."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in keep:
                out[k] = v
            elif k in NAME_KEYS and isinstance(v, str) and v:
                out[k] = NAME
            elif k in CONTACT_KEYS and v is not None:
                out[k] = None
            elif k in TEXT_KEYS and isinstance(v, str) and v:
                out[k] = TEXT
            elif k in TEXT_KEYS and isinstance(v, dict) and set(v) <= {"old", "new"}:  # a change of a text
                out[k] = {f: (TEXT if isinstance(t, str) and t else t) for f, t in v.items()}
            else:
                out[k] = scrub(v, keep)
        return out
    if isinstance(value, list):
        return [scrub(v, keep) for v in value]
    return value


def entry_payload(kind: str, payload: Any, confirmation: str) -> Any:
    """A pushed entry's payload (``kind``: ``ticket.created``, ``message.send``…) without the
    guest's words, or None when it is not the guest's.  A kiosk scrubs its outbox with it, the
    cloud its event log and a hub its relay queue, so every copy of an entry reads the same."""
    if not isinstance(payload, dict):
        return None
    if kind == "task.created":  # a question a model handed to staff: "CONF: the question"
        prefix = f"{confirmation}: "
        words = payload.get("description")
        if payload.get("type") != "guest_question" or not isinstance(words, str) or not words.startswith(prefix):
            return None
        return payload | {"description": prefix + TEXT}
    if kind == "message.send" and str(payload.get("confirmation")) != confirmation:
        return None
    return scrub(payload)
