"""A guest's right of access at the kiosk: everything this kiosk holds about one stay, as one
JSON document (``kiosk guest export``; docs/privacy.md), the kiosk's twin of the cloud's
``kiosk-cloud guest export`` (sync/cloud/guest_data.py, the same ``format``).

A guest is known by the hotel and the reservation's confirmation number.  What is tied to
them, and how (every query is ``WHERE hotel_id = ?``, so another hotel's guest with the same
confirmation never shows; the ties are the ones the pulled ``guest_erasure`` follows,
sync/kinds/guest_erasure.py):

* the stay: ``reservations`` (key: the confirmation) and its folio ``charges``;
* sessions and codes: ``sessions`` of role guest whose user is the confirmation and
  ``qr_tokens`` of role guest whose subject is, which give the session ids and token ids
  (jti); then the tokens' uses (``consumed_tokens``, ``remote_consumptions``), revocations
  (``remote_revocations``), security events (a replay of the code) and the sessions'
  workflows;
* requests: ``tickets`` whose ``created_by`` is the confirmation, with their history rows
  (``item_history``, a staff reply among them) and conflicts;
* offers: ``offer_history`` (shown, taken or not) and ``offer_acceptances``;
* questions a model handed to staff: ``tasks`` of type ``guest_question`` described
  ``"CONF: the question"``, or sealed under the guest's key;
* model runs: ``ai_interactions`` of the guest's sessions (or with the guest as the actor) and
  ``model_actions`` whose subject names the confirmation (as kiosk/models/actions.py
  ``erase_for`` finds them) or is sealed under the guest's key;
* ``audit_log`` rows whose actor is the confirmation, or of the guest's sessions or codes;
* ``outbox`` entries (pending, delivered or dead) of all these: the requests, the sessions,
  the codes, the questions, messages to the guest and the PMS changes of the reservation (an
  offer taken); their payloads opened (:func:`kiosk.guest_keys.open_tree`).

Sealed fields read plain through the store's connection (its row factory); a guest whose key
was destroyed reads as erased ("Erased guest", "(erased)"), which is what the kiosk holds.
A value sealed under the guest's key is found by its key id (``pii1.<tag>.<kid>.``) in SQL,
on the stored text.

Left out on purpose: staff ids and names (who was assigned, who replied: ``by`` reads
``guest`` or ``hotel``), token signatures and the tokens themselves (never stored), keys,
session secrets, request fingerprints and content terms, idempotency keys.  Read-only, in
one read transaction (one snapshot).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from .clock import iso
from .errors import NotFound, ValidationError

FORMAT = "kiosk-guest-export/1"
#: payload keys never exported, whatever put them there (none of them is a guest's data)
SECRET_KEYS = frozenset({"token", "sessionjwt", "jwt", "signature", "credential", "secret", "password",
                         "privatekey", "private_pem", "apikey", "api_key", "key", "idempotencykey",
                         "idempotency_key", "outboxkey"})
#: payload keys of the kiosk's own workings (a request's fingerprint and content terms: hashes)
INTERNAL_KEYS = frozenset({"fingerprint", "terms"})
#: payload keys naming staff (the staff's data, not the guest's)
STAFF_KEYS = frozenset({"assignee", "approvedBy", "replyBy", "byName", "staffId", "staff_id"})
#: payload fields that hold epoch seconds: exported as ISO 8601 UTC
TIME_KEYS = frozenset({"openedAt", "endedAt", "consumedAt", "revokedAt", "expiresAt", "detectedAt"})
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


# ---- helpers -----------------------------------------------------------------------------------

def _in(values: Iterable[str], size: int = 500) -> Iterator[tuple[str, list[str]]]:
    """(placeholders, chunk) for ``IN (…)`` over ``values``, a chunk at a time."""
    values = sorted(set(values))
    for at in range(0, len(values), size):
        chunk = values[at:at + size]
        yield ", ".join("?" * len(chunk)), chunk


def _when(ts: Any) -> Any:
    return iso(float(ts)) if isinstance(ts, int | float) and not isinstance(ts, bool) else ts


def _who(by: Any, confirmation: str) -> str | None:
    """Who did something: the guest, or someone of the hotel (staff, a model, the cloud: not named)."""
    return None if by is None else "guest" if by == confirmation else "hotel"


def _clean(value: Any, confirmation: str) -> Any:
    """A payload as the guest may see it: no secret-named, staff or internal keys, ``by`` as :func:`_who`,
    epoch times as ISO 8601."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if str(k).lower() in SECRET_KEYS or k in STAFF_KEYS or k in INTERNAL_KEYS:
                continue
            out[k] = _who(v, confirmation) if k == "by" else _when(v) if k in TIME_KEYS else _clean(v, confirmation)
        return out
    if isinstance(value, list):
        return [_clean(v, confirmation) for v in value]
    return value


def _json(db, text: Any) -> Any:
    """A JSON column's value with every sealed string in it opened."""
    from . import guest_keys

    if not isinstance(text, str) or not text:
        return None
    try:
        return guest_keys.open_tree(db, json.loads(text))
    except ValueError:
        return text


def _sealed_by(column: str, kid: str | None) -> tuple[str, list]:
    """SQL (and its parameters) true when ``column``'s stored text is sealed under the key ``kid``
    (``pii1.<tag>.<kid>.…``, the tag one letter); never true without a key."""
    if not kid:
        return "0", []
    return f"(substr({column}, 1, 5) = 'pii1.' AND substr({column}, 8, ?) = ?)", [len(kid) + 1, kid + "."]


def check(hotel_id: str, confirmation: str) -> tuple[str, str]:
    """The hotel and confirmation, stripped; VALIDATION_ERROR for what no hotel can hold."""
    out = []
    for field, value in (("hotel", hotel_id), ("confirmation", confirmation)):
        value = str(value).strip()
        if not value or len(value) > 128 or _UNSTORABLE.search(value):
            raise ValidationError(f"--{field} must be 1-128 characters of text, no control characters",
                                  {"field": field})
        out.append(value)
    return out[0], out[1]


# ---- each part of the export ------------------------------------------------------------------

def reservations(db, hotel_id: str, confirmation: str) -> list[dict]:
    """The reservation as this kiosk holds it (every field: name, dates, room, contact…)."""
    return [{"confirmation": r["confirmation"], "details": {k: v for k, v in r.items() if k != "hotel_id"}}
            for r in db.query("SELECT * FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                              [hotel_id, confirmation])]


def resolve(db, hotel_id: str, typed: str) -> str:
    """The confirmation as the hotel holds it: as typed, else in upper case when only that is a
    reservation (the sign-in with the booking takes both)."""
    upper = typed.upper()
    if upper != typed and not reservations(db, hotel_id, typed) and reservations(db, hotel_id, upper):
        return upper
    return typed


def charges(db, hotel_id: str, confirmation: str) -> list[dict]:
    """The stay's folio as the PMS export gave it."""
    return [{"chargeId": r[0], "postedAt": r[1], "code": r[2], "description": r[3], "amount": r[4],
             "quantity": r[5]} for r in db.execute(
        "SELECT charge_id, posted_at, code, description, amount, quantity FROM charges WHERE hotel_id = ?"
        " AND confirmation = ? ORDER BY posted_at, charge_id", [hotel_id, confirmation]).fetchall()]


def sessions(db, hotel_id: str, confirmation: str) -> list[dict]:
    """The guest's sessions at this kiosk (no secret: the session's credential is never stored)."""
    return [{"sessionId": r["id"], "displayName": r["display_name"], "tokenId": r["jti"],
             "scanMethod": r["scan_method"], "client": r["client"], "createdAt": _when(r["created_at"]),
             "expiresAt": _when(r["expires_at"]), "lastSeenAt": _when(r["last_seen_at"]),
             "endedAt": _when(r["ended_at"]), "endReason": r["end_reason"]}
            for r in db.query("SELECT * FROM sessions WHERE hotel_id = ? AND user_id = ? AND role = 'guest'"
                              " ORDER BY created_at, id", [hotel_id, confirmation])]


def codes(db, hotel_id: str, confirmation: str) -> list[dict]:
    """Codes issued here for the guest: ids, name and times (never the token, its signature, its key
    or who issued it)."""
    return [{"tokenId": r["jti"], "displayName": r["display_name"], "reusable": bool(r["reusable"]),
             "issuedAt": _when(r["issued_at"]), "expiresAt": _when(r["expires_at"]),
             "revokedAt": _when(r["revoked_at"])}
            for r in db.query("SELECT jti, display_name, reusable, issued_at, expires_at, revoked_at FROM qr_tokens"
                              " WHERE hotel_id = ? AND subject = ? AND role = 'guest' ORDER BY issued_at, jti",
                              [hotel_id, confirmation])]


def token_uses(db, hotel_id: str, tokens: set[str]) -> list[dict]:
    """The codes' scans: here (``consumed_tokens``) and at other kiosks (learnt by pull)."""
    out = []
    for marks, chunk in _in(tokens):
        out += [{"tokenId": r[0], "kioskId": r[1], "sessionId": r[2], "usedAt": _when(r[3]), "where": "here"}
                for r in db.execute(f"SELECT jti, kiosk_id, session_id, consumed_at FROM consumed_tokens"
                                    f" WHERE hotel_id = ? AND jti IN ({marks})", [hotel_id, *chunk]).fetchall()]
        out += [{"tokenId": r[0], "kioskId": r[1], "sessionId": r[2], "usedAt": _when(r[3]), "where": "elsewhere"}
                for r in db.execute(f"SELECT jti, kiosk_id, session_id, consumed_at FROM remote_consumptions"
                                    f" WHERE hotel_id = ? AND jti IN ({marks})", [hotel_id, *chunk]).fetchall()]
    return sorted(out, key=lambda u: (u["usedAt"] or "", u["tokenId"], u["kioskId"]))


def token_revocations(db, hotel_id: str, tokens: set[str]) -> list[dict]:
    """Revocations of the codes learnt from the cloud (one made here is the code's ``revokedAt``)."""
    out = []
    for marks, chunk in _in(tokens):
        out += [{"tokenId": r[0], "revokedAt": _when(r[1])} for r in db.execute(
            f"SELECT jti, revoked_at FROM remote_revocations WHERE hotel_id = ? AND jti IN ({marks})"
            " ORDER BY revoked_at, jti", [hotel_id, *chunk]).fetchall()]
    return out


def security_events(db, hotel_id: str, tokens: set[str], confirmation: str) -> list[dict]:
    """Security events about the guest's codes (a replay: the code used at two kiosks)."""
    out = []
    for marks, chunk in _in(tokens):
        out += [{"kind": r[0], "tokenId": r[1], "detectedAt": _when(r[3]), "details": _clean(_json(db, r[2]),
                                                                                             confirmation)}
                for r in db.execute(f"SELECT kind, subject, details, detected_at FROM security_events"
                                    f" WHERE hotel_id = ? AND subject IN ({marks}) ORDER BY id",
                                    [hotel_id, *chunk]).fetchall()]
    return out


def workflows(db, hotel_id: str, session_ids: set[str]) -> list[dict]:
    """The workflow each of the guest's sessions started (which models it triggered)."""
    out = []
    for marks, chunk in _in(session_ids):
        out += [{"sessionId": r[0], "workflow": r[1], "state": r[2], "models": _json(db, r[3]),
                 "createdAt": _when(r[4]), "updatedAt": _when(r[5])} for r in db.execute(
            f"SELECT session_id, workflow, state, models, created_at, updated_at FROM workflow_state"
            f" WHERE hotel_id = ? AND session_id IN ({marks}) ORDER BY created_at, id", [hotel_id, *chunk]).fetchall()]
    return out


def _history(db, hotel_id: str, kind: str, ids: set[str], confirmation: str) -> dict[str, list[dict]]:
    """History rows of tickets or tasks, by item: what changed and when; who only as guest or
    hotel, and no row of an assignment (staff ids)."""
    out: dict[str, list[dict]] = {}
    for marks, chunk in _in(ids):
        for item_id, field, old, new, by, at in db.execute(
                f"SELECT item_id, field, old, new, by, at FROM item_history WHERE hotel_id = ? AND kind = ?"
                f" AND field <> 'assignee' AND item_id IN ({marks}) ORDER BY id", [hotel_id, kind, *chunk]):
            out.setdefault(item_id, []).append({"field": field, "old": old, "new": new,
                                                "by": _who(by, confirmation), "at": _when(at)})
    return out


def requests(db, hotel_id: str, confirmation: str) -> list[dict]:
    """The guest's requests and fault reports (tickets their sessions opened), each with its
    history (status changes, replies written to the guest) and the latest reply."""
    rows = list(db.query("SELECT * FROM tickets WHERE hotel_id = ? AND created_by = ? ORDER BY created_at, ticket_id",
                         [hotel_id, confirmation]))
    history = _history(db, hotel_id, "ticket", {r["ticket_id"] for r in rows}, confirmation)
    out = []
    for r in rows:
        steps = history.get(r["ticket_id"], [])
        replies = [h["new"] for h in steps if h["field"] == "reply" and h["new"]]
        out.append({"requestId": r["ticket_id"], "type": r["type"], "title": r["title"],
                    "description": r["description"], "roomNumber": r["room_number"], "priority": r["priority"],
                    "queue": r["queue"], "status": r["status"], "channel": r["channel"],
                    "sessionId": r["session_id"], "createdAt": _when(r["created_at"]),
                    "updatedAt": _when(r["updated_at"]), "mergedInto": r["merged_into"],
                    "reply": replies[-1] if replies else None, "history": steps})
    return out


def conflicts(db, hotel_id: str, entities: dict[str, set[str]]) -> list[dict]:
    """How a clash over the guest's request, session or code was settled (the rule, the outcome;
    not the versions, which may hold another guest's request)."""
    out = []
    for etype, ids in sorted(entities.items()):
        for marks, chunk in _in(ids):
            out += [{"entityType": etype, "entityId": r[0], "field": r[1], "rule": r[2], "outcome": r[3],
                     "detectedAt": _when(r[4])} for r in db.execute(
                f"SELECT entity_id, field, rule, outcome, detected_at FROM conflicts WHERE hotel_id = ?"
                f" AND entity_type = ? AND entity_id IN ({marks}) ORDER BY id", [hotel_id, etype, *chunk]).fetchall()]
    return out


def offers(db, hotel_id: str, confirmation: str) -> tuple[list[dict], list[dict]]:
    """(offers shown to the guest, offers the guest took)."""
    shown = [{"offerId": r[0], "shownAt": r[1], "accepted": bool(r[2])} for r in db.execute(
        "SELECT offer_id, shown_at, accepted FROM offer_history WHERE hotel_id = ? AND confirmation = ?"
        " ORDER BY shown_at, id", [hotel_id, confirmation]).fetchall()]
    taken = [{"offerId": r[0], "price": r[1], "currency": r[2], "acceptedAt": _when(r[3]), "sessionId": r[4]}
             for r in db.execute("SELECT offer_id, price, currency, accepted_at, session_id FROM offer_acceptances"
                                 " WHERE hotel_id = ? AND confirmation = ? ORDER BY accepted_at, offer_id",
                                 [hotel_id, confirmation]).fetchall()]
    names: dict[str, str] = {}
    for marks, chunk in _in({o["offerId"] for o in shown + taken}):
        names |= {r[0]: r[1] for r in db.execute(f"SELECT offer_id, name FROM offers WHERE hotel_id = ?"
                                                 f" AND offer_id IN ({marks})", [hotel_id, *chunk])}
    for o in shown + taken:
        o["name"] = names.get(o["offerId"])
    return shown, taken


def questions(db, hotel_id: str, confirmation: str, kid: str | None) -> list[dict]:
    """Questions a model handed to staff for the guest (``"CONF: the question"``), with their history."""
    prefix = f"{confirmation}: "
    sealed, params = _sealed_by("description", kid)
    rows = list(db.query(
        "SELECT task_id, room_number, priority, created_at, due_at, status, description, source, updated_at"
        f" FROM tasks WHERE hotel_id = ? AND type = 'guest_question' AND (substr(description, 1, ?) = ? OR {sealed})"
        " ORDER BY created_at, task_id", [hotel_id, len(prefix), prefix, *params]))
    history = _history(db, hotel_id, "task", {r["task_id"] for r in rows}, confirmation)
    return [{"taskId": r["task_id"], "question": r["description"], "roomNumber": r["room_number"],
             "priority": r["priority"], "status": r["status"], "source": r["source"], "createdAt": r["created_at"],
             "dueAt": r["due_at"], "updatedAt": _when(r["updated_at"]), "history": history.get(r["task_id"], [])}
            for r in rows]


def model_runs(db, hotel_id: str, confirmation: str, session_ids: set[str]) -> list[dict]:
    """Model runs of the guest's sessions (or run with the guest as the actor): no words, ids and times."""
    rows = {r[0]: r for r in db.execute(
        "SELECT id, model_id, session_id, started_at, duration_ms, status, error, actions FROM ai_interactions"
        " WHERE hotel_id = ? AND actor = ?", [hotel_id, confirmation]).fetchall()}
    for marks, chunk in _in(session_ids):
        rows |= {r[0]: r for r in db.execute(
            "SELECT id, model_id, session_id, started_at, duration_ms, status, error, actions FROM ai_interactions"
            f" WHERE hotel_id = ? AND session_id IN ({marks})", [hotel_id, *chunk]).fetchall()}
    return [{"modelId": r[1], "sessionId": r[2], "startedAt": _when(r[3]), "durationMs": r[4], "status": r[5],
             "error": r[6], "actions": r[7]} for _, r in sorted(rows.items())]


def model_actions(db, hotel_id: str, confirmation: str, kid: str | None) -> list[dict]:
    """What models did for the guest (a message sent, a question handed over): found by subject as
    the erasure finds them (the confirmation, ``CONF:moment``, ``question CONF …``, a proposal
    naming the confirmation) or sealed under the guest's key."""
    named = f'"confirmation":{json.dumps(confirmation)}'
    sealed, params = _sealed_by("subject", kid)
    return [{"actionKey": r[0], "modelId": r[1], "type": r[2], "subject": r[3], "createdAt": _when(r[4]),
             "result": _clean(_json(db, r[5]), confirmation)} for r in db.execute(
        "SELECT action_key, model_id, type, subject, created_at, result FROM model_actions WHERE hotel_id = ?"
        " AND (subject = ? OR substr(subject, 1, ?) = ? OR substr(subject, 1, ?) = ? OR instr(subject, ?) > 0"
        f" OR {sealed}) ORDER BY created_at, action_key",
        [hotel_id, confirmation, len(confirmation) + 1, confirmation + ":", len(confirmation) + 10,
         f"question {confirmation} ", named, *params]).fetchall()]


_AUDIT = "SELECT id, at, event, outcome, actor, session_id, jti, client, code, details, repeats FROM audit_log"


def audit_rows(db, hotel_id: str, confirmation: str, session_ids: set[str], tokens: set[str]) -> list[dict]:
    """The audit log's rows about the guest: the guest as the actor, or the guest's sessions or
    codes (a refused scan of their code, a session staff ended: the actor then reads ``hotel``)."""
    rows = {r[0]: r for r in db.execute(f"{_AUDIT} WHERE hotel_id = ? AND actor = ?",
                                        [hotel_id, confirmation]).fetchall()}
    for column, ids in (("session_id", session_ids), ("jti", tokens)):
        for marks, chunk in _in(ids):
            rows |= {r[0]: r for r in db.execute(f"{_AUDIT} WHERE hotel_id = ? AND {column} IN ({marks})",
                                                 [hotel_id, *chunk]).fetchall()}
    return [{"id": r[0], "at": _when(r[1]), "event": r[2], "outcome": r[3], "actor": _who(r[4], confirmation),
             "sessionId": r[5], "tokenId": r[6], "client": r[7], "code": r[8],
             "details": _clean(_json(db, r[9]), confirmation), "repeats": r[10]} for _, r in sorted(rows.items())]


_OUTBOX = "SELECT id, kind, entity_type, entity_id, payload, state, created_at, delivered_at FROM outbox"


def outbox(db, hotel_id: str, confirmation: str, entities: dict[str, set[str]]) -> list[dict]:
    """The outbox's entries about the guest (pending, delivered or dead), payloads opened: their
    requests, sessions, codes and questions; messages to them; PMS changes of the reservation."""
    rows = {}
    for etype, ids in entities.items():
        for marks, chunk in _in(ids):
            rows |= {r[0]: r for r in db.execute(f"{_OUTBOX} WHERE hotel_id = ? AND entity_type = ?"
                                                 f" AND entity_id IN ({marks})", [hotel_id, etype, *chunk]).fetchall()}
    for r in db.execute(f"{_OUTBOX} WHERE hotel_id = ? AND entity_type = 'message'"
                        " AND (entity_id = ? OR substr(entity_id, 1, ?) = ?)",
                        [hotel_id, confirmation, len(confirmation) + 1, confirmation + ":"]).fetchall():
        payload = _json(db, r[4])
        if isinstance(payload, dict) and str(payload.get("confirmation")) == confirmation:
            rows[r[0]] = r
    return [{"kind": r[1], "entityType": r[2], "entityId": r[3], "state": r[5], "createdAt": _when(r[6]),
             "deliveredAt": _when(r[7]), "payload": _clean(_json(db, r[4]), confirmation)}
            for _, r in sorted(rows.items())]


# ---- the document -------------------------------------------------------------------------------

def export(db, hotel_id: str, confirmation: str, now: float) -> dict:
    """One JSON-ready document of everything this kiosk holds about the stay, read in one snapshot;
    NOT_FOUND when the hotel holds no guest under that confirmation (another hotel's included)."""
    hotel_id, confirmation = check(hotel_id, confirmation)
    conn = db.conn if hasattr(db, "conn") else db
    began = not conn.in_transaction
    if began:
        conn.execute("BEGIN")  # deferred: a read snapshot, no write lock
    try:
        confirmation = resolve(db, hotel_id, confirmation)
        res = reservations(db, hotel_id, confirmation)
        sess = sessions(db, hotel_id, confirmation)
        cds = codes(db, hotel_id, confirmation)
        if not (res or sess or cds):
            raise NotFound(f"hotel {hotel_id} holds no guest under confirmation {confirmation!r} here",
                           {"hotelId": hotel_id, "confirmation": confirmation},
                           hint="give the hotel and the confirmation number as the reservation has them")
        row = conn.execute("SELECT kid FROM guest_keys WHERE hotel_id = ? AND subject = ?",
                           [hotel_id, confirmation]).fetchone()
        kid = row[0] if row else None
        session_ids = {s["sessionId"] for s in sess}
        tokens = {c["tokenId"] for c in cds} | {s["tokenId"] for s in sess}
        reqs = requests(db, hotel_id, confirmation)
        asked = questions(db, hotel_id, confirmation, kid)
        shown, taken = offers(db, hotel_id, confirmation)
        ticket_ids = {r["requestId"] for r in reqs}
        doc = {
            "format": FORMAT, "source": "kiosk", "hotelId": hotel_id, "confirmation": confirmation,
            "exportedAt": iso(now),
            "reservations": res,
            "charges": charges(db, hotel_id, confirmation),
            "sessions": sess,
            "codes": cds,
            "tokenUses": token_uses(db, hotel_id, tokens),
            "tokenRevocations": token_revocations(db, hotel_id, tokens),
            "securityEvents": security_events(db, hotel_id, tokens, confirmation),
            "workflows": workflows(db, hotel_id, session_ids),
            "requests": reqs,
            "conflicts": conflicts(db, hotel_id, {"ticket": ticket_ids, "qr_token": tokens, "session": session_ids}),
            "offersShown": shown,
            "offersTaken": taken,
            "questions": asked,
            "modelRuns": model_runs(db, hotel_id, confirmation, session_ids),
            "modelActions": model_actions(db, hotel_id, confirmation, kid),
            "audit": audit_rows(db, hotel_id, confirmation, session_ids, tokens),
            "outbox": outbox(db, hotel_id, confirmation, {
                "ticket": ticket_ids, "session": session_ids, "qr_token": tokens,
                "task": {q["taskId"] for q in asked}, "pms": {f"reservation:{confirmation}"}}),
        }
    finally:
        if began and conn.in_transaction:
            conn.rollback()  # read only: nothing to keep
    return doc
