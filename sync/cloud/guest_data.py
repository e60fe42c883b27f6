"""A guest's right of access: everything the cloud holds about one stay, as one JSON document
(``kiosk-cloud guest export``; docs/privacy.md).

A guest is known by the hotel and the reservation's confirmation number.  What is tied to
them, and how (every query is scoped to the hotel, so another hotel's guest with the same
confirmation never shows):

* the reservation: ``ref_data`` (entity ``reservation``, id = the confirmation, as the PMS
  export or the PMS connector gave it) and the PMS's id for it (``pms_reservations``);
  its rows in the change log (``changes``: the copies kiosks pull, kept for ``--retention``);
* requests: ``tickets`` whose ``created_by`` is the confirmation (a guest's session names
  its reservation: the code's subject is the confirmation, kiosk/booking.py), with their
  rows in the change log and their conflicts (a twin merged into another ticket);
* sessions and codes: ``session.opened`` events of role ``guest`` whose ``userId`` is the
  confirmation and ``token.issued`` events whose ``subject`` is, which give the session
  ids and token ids (jti); then every event of those sessions and tokens (ended, used,
  revoked), the tokens' uses (``consumptions``), revocations, security events (a replay of
  the guest's code) and conflicts;
* messages queued for the guest (``message.send``: entity ``CONF`` or ``CONF:TEMPLATE``,
  payload ``confirmation``) and changes for the PMS on the reservation (``pms.update`` on
  ``reservation:CONF``: an offer taken is ``changes.addOffer``);
* the PMS outbox's actions for the reservation and the guest's requests (``pms_actions``)
  and, on a property hub, the relay outbox's copies on their way to the chain.

Not tied (docs/privacy.md says why): tickets staff opened for the guest's room, walk-in
codes (no reservation), work orders, remembered entry answers (ids only, purged after
``--retention``).  Token signatures and credentials are never held here, and never
exported.  Reads are plain parameterised SQL, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kiosk.clock import iso
from kiosk.errors import NotFound, ValidationError

from . import storage, validation

FORMAT = "kiosk-guest-export/1"
#: payload keys never exported, whatever a kiosk put in them (none of them is a guest's data)
SECRET_KEYS = frozenset({"token", "sessionjwt", "jwt", "signature", "credential", "secret", "password",
                         "privatekey", "private_pem", "apikey", "api_key"})
#: payload fields that hold epoch seconds: exported as ISO 8601 UTC
TIME_KEYS = frozenset({"openedAt", "endedAt", "consumedAt", "revokedAt", "expiresAt", "detectedAt"})


def _in(values: Iterable[str], size: int = 500):
    """(placeholders, chunk) for ``IN (…)`` over ``values``, a chunk at a time."""
    values = sorted(set(values))
    for at in range(0, len(values), size):
        chunk = values[at:at + size]
        yield ", ".join("?" * len(chunk)), chunk


def _like(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally anywhere (``ESCAPE '\\'``)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _when(ts: Any) -> str | None:
    return iso(float(ts)) if isinstance(ts, int | float) and not isinstance(ts, bool) else ts


def _clean(value: Any) -> Any:
    """A payload as a guest may see it: no secret-named keys, epoch times as ISO 8601."""
    if isinstance(value, dict):
        return {k: (_when(v) if k in TIME_KEYS else _clean(v)) for k, v in value.items()
                if str(k).lower() not in SECRET_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def check(hotel_id: str, confirmation: str) -> tuple[str, str]:
    """The hotel and confirmation, stripped; VALIDATION_ERROR for text no storage can hold."""
    out = []
    for field, value in (("hotel", hotel_id), ("confirmation", confirmation)):
        value = value.strip()
        if not value or not validation.storable_text(value, 128):
            raise ValidationError(f"--{field} must be 1-128 characters of text", {"field": field})
        out.append(value)
    return out[0], out[1]


def resolve(db, hotel_id: str, typed: str) -> str:
    """The confirmation as the hotel holds it: as typed, else in upper case when only that is a
    reservation (the kiosk's sign-in with the booking takes both)."""
    upper = typed.upper()
    if upper != typed and not reservations(db, hotel_id, typed) and reservations(db, hotel_id, upper):
        return upper
    return typed


# ---- each part of the export --------------------------------------------------------------

def reservations(db, hotel_id: str, confirmation: str) -> list[dict]:
    """The reservation as the PMS sent it (every field it holds: name, dates, contact...)."""
    return [{"confirmation": eid, "details": json.loads(data), "updatedAt": _when(at)}
            for eid, data, at in db.execute(
                "SELECT entity_id, data, updated_at FROM ref_data WHERE hotel_id = ? AND entity_type = 'reservation'"
                " AND entity_id = ?", [hotel_id, confirmation]).fetchall()]


def pms_reservations(db, hotel_id: str, confirmation: str) -> list[dict]:
    """The PMS's own id for the reservation (a hotel linked to its PMS)."""
    return [{"pmsId": r[0], "status": r[1], "room": r[2]} for r in db.execute(
        "SELECT pms_id, status, room FROM pms_reservations WHERE hotel_id = ? AND confirmation = ?",
        [hotel_id, confirmation]).fetchall()]


def requests(db, hotel_id: str, confirmation: str) -> list[dict]:
    """The guest's requests and faults (tickets their sessions opened), with staff's replies.
    Staff ids (assignee, who replied) are the staff's, not the guest's: left out."""
    return [{"requestId": r["ticket_id"], "type": r["type"], "title": r["title"], "description": r["description"],
             "roomNumber": r["room_number"], "priority": r["priority"], "queue": r["queue"], "status": r["status"],
             "createdAt": r["created_at"], "receivedAt": _when(r["received_at"]), "mergedInto": r["merged_into"],
             "reply": r.get("reply")}
            for r in db.query("SELECT * FROM tickets WHERE hotel_id = ? AND created_by = ?"
                              " ORDER BY created_at, ticket_id", [hotel_id, confirmation])]


def _event(r) -> dict:
    key, kind, etype, eid, payload, received_at = r
    return {"kind": kind, "entityType": etype, "entityId": eid, "receivedAt": _when(received_at),
            "details": _clean(json.loads(payload))}


_EVENT = "SELECT key, kind, entity_type, entity_id, payload, received_at FROM events"


def identities(db, hotel_id: str, confirmation: str) -> tuple[set[str], set[str], list]:
    """(session ids, token ids, their events) of the guest's codes: a ``session.opened`` of role
    guest naming the confirmation as its user, a ``token.issued`` naming it as the subject.
    The payload text is narrowed in SQL (LIKE: it holds the confirmation), then each row's
    parsed payload is checked exactly."""
    forms = {json.dumps(confirmation)[1:-1], json.dumps(confirmation, ensure_ascii=False)[1:-1]}
    like = " OR ".join(["payload LIKE ? ESCAPE '\\'"] * len(forms))
    sessions: set[str] = set()
    tokens: set[str] = set()
    for r in db.execute(f"{_EVENT} WHERE hotel_id = ? AND entity_type IN ('session', 'qr_token')"
                        f" AND kind IN ('session.opened', 'token.issued') AND ({like})",
                        [hotel_id, *(_like(f) for f in sorted(forms))]).fetchall():
        p = json.loads(r[4])
        if not isinstance(p, dict) or p.get("role") != "guest":
            continue
        if r[1] == "session.opened" and p.get("userId") == confirmation:
            sessions.add(r[3])
            if isinstance(p.get("jti"), str):
                tokens.add(p["jti"])
        elif r[1] == "token.issued" and p.get("subject") == confirmation:
            tokens.add(r[3])
    found = []
    for etype, ids in (("session", sessions), ("qr_token", tokens)):
        for marks, chunk in _in(ids):
            found += db.execute(f"{_EVENT} WHERE hotel_id = ? AND entity_type = ? AND entity_id IN ({marks})",
                                [hotel_id, etype, *chunk]).fetchall()
    return sessions, tokens, found


def stay_events(db, hotel_id: str, confirmation: str) -> list:
    """Messages queued for the guest and changes for the PMS on the reservation (offers taken)."""
    out = [r for r in db.execute(f"{_EVENT} WHERE hotel_id = ? AND entity_type = 'message'"
                                 " AND (entity_id = ? OR entity_id LIKE ? ESCAPE '\\')",
                                 [hotel_id, confirmation, _like(confirmation + ":")[1:]]).fetchall()
           if _names(json.loads(r[4]), "confirmation", confirmation)]
    out += [r for r in db.execute(f"{_EVENT} WHERE hotel_id = ? AND entity_type = 'pms' AND entity_id = ?",
                                  [hotel_id, f"reservation:{confirmation}"]).fetchall()
            if _names(json.loads(r[4]), "id", confirmation)]
    return out


def _names(payload: Any, field: str, confirmation: str) -> bool:
    return isinstance(payload, dict) and str(payload.get(field)) == confirmation


def offers_taken(events: list[dict]) -> list[dict]:
    """Offers the guest took at a kiosk (``pms.update`` adding one to the reservation)."""
    out = []
    for e in events:
        d = e["details"]
        offer = (d.get("changes") or {}).get("addOffer") if e["kind"] == "pms.update" else None
        if isinstance(offer, dict):
            out.append({"offerId": offer.get("offerId"), "name": offer.get("name"), "type": offer.get("type"),
                        "price": offer.get("price"), "currency": offer.get("currency"), "at": d.get("at"),
                        "receivedAt": e["receivedAt"]})
    return out


def token_uses(db, hotel_id: str, tokens: set[str]) -> list[dict]:
    out = []
    for marks, chunk in _in(tokens):
        out += [{"tokenId": r[0], "kioskId": r[1], "sessionId": r[2], "usedAt": _when(r[3])} for r in db.execute(
            f"SELECT jti, kiosk_id, session_id, consumed_at FROM consumptions WHERE hotel_id = ? AND jti IN ({marks})"
            " ORDER BY consumed_at, jti, kiosk_id", [hotel_id, *chunk]).fetchall()]
    return out


def token_revocations(db, hotel_id: str, tokens: set[str]) -> list[dict]:
    out = []
    for marks, chunk in _in(tokens):
        out += [{"tokenId": r[0], "revokedAt": _when(r[1]), "source": r[2]} for r in db.execute(
            f"SELECT jti, revoked_at, source FROM revocations WHERE hotel_id = ? AND jti IN ({marks})"
            " ORDER BY revoked_at, jti", [hotel_id, *chunk]).fetchall()]
    return out


def security_events(db, hotel_id: str, tokens: set[str]) -> list[dict]:
    """Security events about the guest's codes (a replay: the code used at two kiosks)."""
    out = []
    for marks, chunk in _in(tokens):
        out += [{"kind": r[0], "tokenId": r[1], "detectedAt": _when(r[3]), "details": _clean(json.loads(r[2]))}
                for r in db.execute(f"SELECT kind, subject, details, detected_at FROM security_events"
                                    f" WHERE hotel_id = ? AND subject IN ({marks}) ORDER BY id",
                                    [hotel_id, *chunk]).fetchall()]
    return out


def conflicts(db, hotel_id: str, tickets: set[str], tokens: set[str]) -> list[dict]:
    """How the cloud settled a clash over the guest's request or code (the rule, the outcome)."""
    out = []
    for etype, ids in (("ticket", tickets), ("qr_token", tokens)):
        for marks, chunk in _in(ids):
            out += [{"entityType": etype, "entityId": r[0], "rule": r[1], "outcome": r[2],
                     "detectedAt": _when(r[3])} for r in db.execute(
                f"SELECT entity_id, rule, outcome, detected_at FROM conflicts WHERE hotel_id = ? AND entity_type = ?"
                f" AND entity_id IN ({marks}) ORDER BY id", [hotel_id, etype, *chunk]).fetchall()]
    return out


def history(db, hotel_id: str, confirmation: str, tickets: set[str]) -> list[dict]:
    """The change log's rows of the reservation and of the requests: the copies kiosks pull
    (an entity's latest where the log is compacted; purged after ``--retention``)."""
    rows = db.execute("SELECT seq, entity_type, entity_id, op, data, at FROM changes WHERE hotel_id = ?"
                      " AND entity_type = 'reservation' AND entity_id = ?", [hotel_id, confirmation]).fetchall()
    for marks, chunk in _in(tickets):
        rows += db.execute(f"SELECT seq, entity_type, entity_id, op, data, at FROM changes WHERE hotel_id = ?"
                           f" AND entity_type = 'ticket' AND entity_id IN ({marks})", [hotel_id, *chunk]).fetchall()
    return [{"entityType": r[1], "entityId": r[2], "op": r[3], "at": _when(r[5]),
             "data": _clean(_without_staff(r[1], json.loads(r[4]) if r[4] else None))}
            for r in sorted(rows, key=lambda r: r[0])]


def _without_staff(etype: str, data: Any) -> Any:
    if etype == "ticket" and isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in ("assignee", "replyBy", "replyHlc", "fingerprint")}
    return data


def pms_actions(db, hotel_id: str, confirmation: str, tickets: set[str]) -> list[dict]:
    """What the cloud sent (or will send) the hotel's PMS for the stay: charges for offers taken,
    service requests for the guest's requests."""
    entities = {f"reservation:{confirmation}", *(f"ticket:{t}" for t in tickets)}
    out = []
    for marks, chunk in _in(entities):
        out += [{"action": r[0], "entity": r[1], "status": r[2], "createdAt": _when(r[4]), "doneAt": _when(r[5]),
                 "pmsRef": r[6], "data": _clean(json.loads(r[3]))} for r in db.execute(
            f"SELECT action, entity, status, data, created_at, done_at, pms_ref FROM pms_actions WHERE hotel_id = ?"
            f" AND entity IN ({marks}) ORDER BY id", [hotel_id, *chunk]).fetchall()]
    return out


def relay_queue(db, hotel_id: str, entities: set[str]) -> list[dict]:
    """On a property hub: the guest's entries on their way to the chain's cloud (or delivered)."""
    out = []
    for marks, chunk in _in(entities):
        out += [{"kind": json.loads(r[1]).get("kind"), "entity": r[0], "status": r[2], "createdAt": _when(r[3]),
                 "doneAt": _when(r[4])} for r in db.execute(
            f"SELECT entity, entry, status, created_at, done_at FROM relay_outbox WHERE hotel_id = ?"
            f" AND entity IN ({marks}) ORDER BY id", [hotel_id, *chunk]).fetchall()]
    return out


# ---- the document ---------------------------------------------------------------------------

def export(db, hotel_id: str, confirmation: str, now: float) -> dict:
    """One JSON-ready document of everything the cloud holds about the stay; NOT_FOUND when the
    hotel holds nothing under that confirmation (another hotel's guest included)."""
    hotel_id, confirmation = check(hotel_id, confirmation)
    with storage.transaction(db):  # one consistent view
        confirmation = resolve(db, hotel_id, confirmation)
        res = reservations(db, hotel_id, confirmation)
        reqs = requests(db, hotel_id, confirmation)
        sessions, tokens, code_events = identities(db, hotel_id, confirmation)
        rows = sorted(code_events + stay_events(db, hotel_id, confirmation), key=lambda r: (r[5], r[0]))
        events = [_event(r) for r in rows]
        ticket_ids = {r["requestId"] for r in reqs}
        doc = {
            "format": FORMAT, "hotelId": hotel_id, "confirmation": confirmation, "exportedAt": iso(now),
            "reservations": res,
            "pmsReservations": pms_reservations(db, hotel_id, confirmation),
            "requests": reqs,
            "events": events,
            "offersTaken": offers_taken(events),
            "tokenUses": token_uses(db, hotel_id, tokens),
            "tokenRevocations": token_revocations(db, hotel_id, tokens),
            "securityEvents": security_events(db, hotel_id, tokens),
            "conflicts": conflicts(db, hotel_id, ticket_ids, tokens),
            "pmsActions": pms_actions(db, hotel_id, confirmation, ticket_ids),
            "history": history(db, hotel_id, confirmation, ticket_ids),
            "relayQueue": relay_queue(db, hotel_id, {f"ticket:{t}" for t in ticket_ids}
                                      | {f"session:{s}" for s in sessions} | {f"qr_token:{j}" for j in tokens}
                                      | {f"{r[2]}:{r[3]}" for r in rows}),
        }
    if not any(doc[k] for k in ("reservations", "pmsReservations", "requests", "events", "history")):
        raise NotFound(f"hotel {hotel_id} holds nothing under confirmation {confirmation!r}",
                       {"hotelId": hotel_id, "confirmation": confirmation},
                       hint="give the hotel and the confirmation number as the PMS export has them")
    return doc
