"""What a guest's screen shows and does, from the property's data in the local store.

A guest token's subject is the reservation's confirmation number (how the PMS
link issues them); a token whose subject matches no reservation still gets a
welcome, without room or stay details.  Every query is scoped by hotel, and a guest
only ever sees their own reservation's requests and offers.

* requests typed, spoken (voice-ai) or asked (guest-messaging's FAQ, when it is not
  confident) become tickets in the staff queue, and the guest follows each one:
  received -> on its way -> done;
* an offer taken is a PMS action queued once per reservation and offer (a second tap
  changes nothing) and an ``offer_history`` row (accepted), so the upsell model learns.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from . import audit, outbox, store, tickets
from .clock import iso
from .errors import KioskError, NotFound
from .property import tables
from .validation import parse
from .workflow_rules import allowed_from

READY = ("Clean", "Inspected")
UNAVAILABLE = ("OutOfOrder", "OutOfService")
GREETING = {"en": "Welcome, {name}", "de": "Willkommen, {name}"}
#: the languages the guest's screen speaks; the property's own texts are in the first
LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = LANGUAGES[0]
#: per language: the offers table's columns for the name and the description
OFFER_TEXT = {"en": ("name", "description"), "de": ("name_de", "description_de")}


#: what the guest is told about a ticket's status
STAGE = {"received": "received", "open": "received", "accepted": "on_its_way", "assigned": "on_its_way",
         "in_progress": "on_its_way", "done": "done", "cancelled": "cancelled"}
REQUESTS_SHOWN_DAYS = 3
#: voice-ai intents that are requests, and the ticket type each becomes
VOICE_TICKET = {"request_item": "housekeeping", "clean_room": "housekeeping", "report_fault": "maintenance",
                "late_checkout": "guest_request"}
MAX_AUDIO_B64 = 2_000_000  # ~45 s of 16 kHz mono 16-bit PCM; voice-ai refuses more than 30 s anyway


class GuestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr = Field(min_length=2, max_length=500)
    kind: Literal["housekeeping", "maintenance", "guest_request"] = "guest_request"
    # a walk-in's code names no stay: the guest says which room (ignored for a reservation's guest)
    roomNumber: StrictStr | None = Field(None, min_length=1, max_length=16, pattern=r"^[A-Za-z0-9-]+$")


#: base64 (standard alphabet, padded) of bytes that begin "RIFF????WAVE" (docs/openapi.yaml says the same)
WAV_B64_PATTERN = r"^UklGR[g-v][A-Za-z0-9+/]{4}[BFJNRVZdhlptx159]XQVZF(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
MIN_AUDIO_B64 = 60  # a WAV's 44-byte header, base64


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: StrictStr = Field(min_length=2, max_length=500)
    # absent: the model guesses; when given, en or de (null is not a language: the schema says string)
    language: Literal["en", "de"] = None  # type: ignore[assignment]


class Voice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audio: StrictStr = Field(min_length=MIN_AUDIO_B64, max_length=MAX_AUDIO_B64, pattern=WAV_B64_PATTERN,
                             description="a WAV file, base64")
    language: Literal["en", "de"] = None  # type: ignore[assignment]


def reservation(db, hotel_id: str, confirmation: str) -> dict | None:
    rows = list(db.query("SELECT * FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                         [hotel_id, confirmation]))
    return rows[0] if rows else None


def room_state(status: str, res: dict | None, today: date | None) -> str:
    """What is true about the room for this guest today (the screen words it, guest.room.<state>):

    * ``ready`` — Clean or Inspected;
    * ``unavailable`` — out of order or service: the front desk explains;
    * ``checked_out`` — the stay is over;
    * ``service`` — the guest lives in it (in house) and housekeeping has it today (Dirty,
      Pickup): it is being cleaned, not "prepared" for an arrival six nights ago;
    * ``upcoming`` — arriving on a later day: it will be ready;
    * ``preparing`` — arriving today (or late, not checked in yet) and not ready yet."""
    if status in READY:
        return "ready"
    if status in UNAVAILABLE:
        return "unavailable"
    res = res or {}
    if res.get("status") == "CheckedOut":
        return "checked_out"
    if res.get("status") == "InHouse":
        return "service"
    if today is not None and res.get("arrival") and res["arrival"] > today.isoformat():
        return "upcoming"
    return "preparing"


def room_status(db, hotel_id: str, room_number: str | None, res: dict | None = None,
                today: date | None = None) -> dict | None:
    if not room_number:
        return None
    rows = list(db.query("SELECT status, occupied FROM rooms WHERE hotel_id = ? AND room_number = ?",
                         [hotel_id, room_number]))
    if not rows:
        return None
    status = rows[0]["status"]
    return {"roomNumber": room_number, "status": status, "ready": status in READY,
            "state": room_state(status, res, today)}


def screen_language(lang: str | None, res: dict | None) -> str:
    """The language the guest's screen asked for, else the reservation's, else the default."""
    for want in (lang, (res or {}).get("language")):
        if want in LANGUAGES:
            return want
    return DEFAULT_LANGUAGE


def offer_text(row: dict, lang: str) -> dict:
    """The offer's name and description in ``lang``; where the property wrote none in it, the
    default language's, marked (``lang``: the language the words are in, ``fallback``)."""
    name_col, desc_col = OFFER_TEXT.get(lang, OFFER_TEXT[DEFAULT_LANGUAGE])
    name, description = row.get(name_col), row.get(desc_col)
    if lang != DEFAULT_LANGUAGE and name:  # the name's language is the offer's language
        return {"name": name, "description": description or None, "lang": lang, "fallback": False}
    return {"name": row["name"], "description": row.get("description") or None, "lang": DEFAULT_LANGUAGE,
            "fallback": lang != DEFAULT_LANGUAGE}


def offers(db, hotel_id: str, res: dict | None, limit: int = 3, currency: str = "EUR",
           lang: str = DEFAULT_LANGUAGE) -> list[dict]:
    """Offers in stock that fit the stay: add-ons, and upgrades from the booked room type; the
    ones this reservation took are listed too (``accepted``), in stock or not.  None without a
    reservation (a walk-in's code): an offer is added to a stay, and there is none to add it to.
    ``name`` stays the default language's when ``lang`` is another (:func:`offer_text`)."""
    if res is None:
        return []
    room_type = (res or {}).get("room_type")
    conf = (res or {}).get("confirmation")
    taken = {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT offer_id, price, currency FROM offer_acceptances WHERE hotel_id = ? AND confirmation = ?",
        [hotel_id, conf])} if conf else {}
    cols = "offer_id, name, type, price, description, name_de, description_de"
    rows = list(db.query(f"SELECT {cols} FROM offers WHERE hotel_id = ?"
                         " AND (inventory IS NULL OR inventory > 0) AND (type = 'addon' OR room_type_from IS ?)"
                         " ORDER BY margin DESC, offer_id LIMIT ?", [hotel_id, room_type, limit]))
    shown = {r["offer_id"] for r in rows}
    if taken.keys() - shown:
        missing = sorted(taken.keys() - shown)
        rows += list(db.query(f"SELECT {cols} FROM offers WHERE hotel_id = ? AND offer_id IN"
                              f" ({', '.join('?' * len(missing))}) ORDER BY offer_id", [hotel_id, *missing]))
    return [{"offerId": r["offer_id"], "name": r["name"], "type": r["type"],
             "price": taken[r["offer_id"]][0] if r["offer_id"] in taken else r["price"],
             "currency": taken[r["offer_id"]][1] if r["offer_id"] in taken else currency,
             "accepted": r["offer_id"] in taken} | offer_text(r, lang) for r in rows]


def home(db, hotel_id: str, session, today: date, currency: str = "EUR", lang: str | None = None) -> dict:
    """The guest's screen.  ``lang``: the language the screen shows (the guest chose it there);
    the reservation's when not given or not one the screen speaks.  The property's texts
    (offers) are in it where the property wrote them, else in the default language, marked."""
    res = reservation(db, hotel_id, session.user_id)
    name = (res or {}).get("guest_name") or session.display_name or session.user_id
    shown = screen_language(lang, res)
    lang = (res or {}).get("language") or "en"
    stay = None
    if res:
        stay = {"confirmation": res["confirmation"], "arrival": res["arrival"], "departure": res["departure"],
                "nights": (date.fromisoformat(res["departure"]) - date.fromisoformat(res["arrival"])).days,
                "roomNumber": res["room_number"], "status": res["status"]}
    return {"guest": {"name": name, "language": lang if lang in GREETING else "en"},
            "welcome": GREETING.get(lang, GREETING["en"]).format(name=name),
            "stay": stay, "room": room_status(db, hotel_id, (res or {}).get("room_number"), res, today),
            "offers": offers(db, hotel_id, res, currency=currency, lang=shown), "language": shown}


def _title(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."


def request(db, body, *, hotel_id: str, session, now: float, node: str, window: float) -> dict:
    """A typed request from the guest screen becomes a ticket (duplicates folded, queued)."""
    req = parse(GuestRequest, body)
    return _ticket(db, routed_kind(req.kind, req.text), req.text, "typed", hotel_id=hotel_id, session=session,
                   now=now, node=node, window=window, room=req.roomNumber)


def routed_kind(kind: str, words: str) -> str:
    """A general request goes to the team that can act on it: "two extra towels" to
    housekeeping, "the shower is broken" to maintenance (voice-ai's intent parser, on the
    typed words); anything else stays with the front desk."""
    if kind != "guest_request":
        return kind
    from .models.voice_ai import parse_intent

    intent, _ = parse_intent(words)
    return {"request_item": "housekeeping", "clean_room": "housekeeping", "report_fault": "maintenance"}.get(
        intent, kind)


def _ticket(db, kind: str, words: str, channel: str, *, hotel_id: str, session, now: float, node: str,
            window: float, room: str | None = None) -> dict:
    """The guest's words as a ticket for their room (title: the words, shortened): the
    reservation's room, or — for a walk-in's code, which names no stay — the room the guest typed."""
    res = reservation(db, hotel_id, session.user_id)
    return tickets.create(db, {"type": kind, "title": _title(words), "description": words,
                               "roomNumber": res.get("room_number") if res else room},
                          hotel_id=hotel_id, by=session.user_id, now=now, node=node, window=window,
                          session_id=session.id, channel=channel, guest=session.role == "guest")


def request_json(row: dict, follow: dict | None = None) -> dict:
    """A request as its guest sees it; ``reply``: the staff member's answer (their name, the
    words as typed — never machine-translated — and the words' language when it can be told)."""
    status = tickets.normal(row["status"])
    answer = (follow or {}).get("reply")
    return {"requestId": row["ticket_id"], "text": row["description"] or row["title"], "type": row["type"],
            "channel": row.get("channel"), "status": status, "stage": STAGE.get(status, "received"), "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["updated_at"] or row["created_at"]),
            "reply": {"text": answer["text"], "by": (str(answer["byName"] or "").split() or [""])[0],  # first name
                      "at": answer["at"],
                      "language": answer["language"]} if answer else None}


def _request_now(db, hotel_id: str, ticket_id: str) -> dict:
    """One request as it is now (asked again: with the answer staff already gave)."""
    return request_json(tickets.get(db, hotel_id, ticket_id), tickets.follow_ups(db, hotel_id, [ticket_id]).get(ticket_id))


def my_requests(db, hotel_id: str, session, now: float) -> list[dict]:
    """The guest's own requests (their reservation's, of the last few days), newest first."""
    rows = list(db.query(
        "SELECT * FROM tickets WHERE hotel_id = ? AND created_by = ? AND merged_into IS NULL AND created_at >= ?"
        " ORDER BY created_at DESC, ticket_id LIMIT 20",
        [hotel_id, session.user_id, now - REQUESTS_SHOWN_DAYS * 86400]))
    follow = tickets.follow_ups(db, hotel_id, (r["ticket_id"] for r in rows))
    return [request_json(r, follow.get(r["ticket_id"])) for r in rows]


def accept_offer(db, hotel_id: str, session, offer_id: str, *, currency: str, now: float, node: str) -> tuple[dict, bool]:
    """Take an offer: once per reservation and offer.  The first time, in ONE transaction: the
    acceptance, an ``offer_history`` row (accepted = 1: the upsell model learns from it), one
    less in stock, the audit row and the PMS action in the outbox (``pms.update`` adding the
    offer to the reservation).  Again: the first answer, nothing new.  Returns (body, created)."""
    res = reservation(db, hotel_id, session.user_id)
    if res is None:
        raise NotFound("offers are for guests with a reservation", {"offerId": offer_id})
    conf = res["confirmation"]

    def answer(row, sync_status: str) -> dict:
        return {"offerId": offer_id, "accepted": True, "price": row["price"], "currency": row["currency"],
                "acceptedAt": iso(row["accepted_at"]), "syncStatus": sync_status, "outboxKey": row["outbox_key"]}

    def existing():
        rows = list(db.query("SELECT * FROM offer_acceptances WHERE hotel_id = ? AND confirmation = ? AND offer_id = ?",
                             [hotel_id, conf, offer_id]))
        return rows[0] if rows else None

    try:
        with store.transaction(db):
            seen = existing()
            if seen is not None:
                return answer(seen, "unchanged"), False
            offer = next((o for o in offers(db, hotel_id, res, limit=100, currency=currency)
                          if o["offerId"] == offer_id), None)
            if offer is None:
                raise NotFound(f"no offer {offer_id!r} for this stay", {"offerId": offer_id})
            # the key names this kiosk and a random part: nobody can guess it and take it first
            # at the cloud (it was hotel:confirmation:offer); once per stay and offer is kept
            # here by offer_acceptances' primary key (the IntegrityError below), not by the key
            import secrets

            q = outbox.enqueue(db, hotel_id=hotel_id, kind="pms.update", entity_type="pms",
                               entity_id=f"reservation:{conf}", node=node, now=now,
                               idempotency_key=f"offer-accepted:{node}:{secrets.token_hex(16)}",
                               payload={"entity": "reservation", "id": conf,
                                        "changes": {"addOffer": {"offerId": offer_id, "name": offer["name"],
                                                                 "type": offer["type"], "price": offer["price"],
                                                                 "currency": currency}},
                                        "reason": "the guest took the offer at the kiosk", "by": conf,
                                        "at": iso(now), "requiresApproval": False})
            row = {"hotel_id": hotel_id, "confirmation": conf, "offer_id": offer_id, "price": offer["price"],
                   "currency": currency, "accepted_at": now, "session_id": session.id, "outbox_key": q.idempotency_key}
            db.execute(f"INSERT INTO offer_acceptances ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                       list(row.values()))
            tables.record_offer_shown(db, hotel_id, conf, offer_id, iso(now), accepted=1)
            tables.take_offer_unit(db, hotel_id, offer_id)
            audit.record(db, hotel_id=hotel_id, event="offer.accepted", outcome="success", at=now, actor=conf,
                         session_id=session.id, details={"offerId": offer_id, "outboxKey": q.idempotency_key})
    except sqlite3.IntegrityError:  # the same tap twice at once: the other one won
        seen = existing()
        if seen is None:
            raise
        return answer(seen, "unchanged"), False
    return answer(row, "queued"), True


def _run(inst, session, model_id: str, payload: dict) -> dict:
    """A model run as the guest (their role and reservation), actions not applied."""
    from .models import runner

    try:
        return runner.run(inst, model_id, payload, hotel_id=session.hotel_id, role=session.role,
                          actor=session.user_id, session_id=session.id, apply_actions=False)
    except KioskError as e:  # refused (e.g. no reservation): the guest gets a person instead
        return {"modelId": model_id, "status": "refused", "confidence": 0.0, "error": e.to_dict()}


def ask(inst, db, session, body, *, now: float, node: str, window: float, question: str | None = None) -> dict:
    """A question for the FAQ (guest-messaging, as the guest).  Answered when the model is
    confident; otherwise — or when the model cannot run — a person is asked: the question
    becomes the guest's ticket in the staff queue, and the answer says so (``handover``)."""
    if question is None:
        req = parse(Question, body)
        question, language = req.question, req.language
    else:
        language = (body or {}).get("language")
    payload = {"question": question} | ({"language": language} if language else {})
    r = _run(inst, session, "guest-messaging", payload)
    status = str(r.get("status", "")).lower()
    out = r.get("outputs") or {}
    if status == "success" and not out.get("handover") and out.get("answer"):
        # the words' language, and whether they are the default language's for want of the
        # guest's (the screen shows them as such: lang="en", "in English")
        return {"question": question, "answered": True, "handover": False, "answer": out["answer"],
                "confidence": r.get("confidence", 0.0), "reason": None,
                "answerLanguage": out.get("answerLanguage") or DEFAULT_LANGUAGE,
                "fallback": bool(out.get("fallback"))}
    ticket = _ticket(db, "guest_request", question, "question", hotel_id=session.hotel_id, session=session,
                     now=now, node=node, window=window)
    reason = "not_confident" if status == "success" else "unavailable"
    return {"question": question, "answered": False, "handover": True, "answer": out.get("answer"),
            "confidence": r.get("confidence", 0.0), "reason": reason,
            "request": _request_now(db, session.hotel_id, ticket["ticket"]["ticketId"]),
            "duplicateOf": ticket["duplicateOf"]}


def voice(inst, db, session, body, *, now: float, node: str, window: float) -> dict:
    """Speech from the guest screen's microphone (a 16 kHz mono 16-bit WAV, base64) to voice-ai,
    as the guest.  A request becomes the guest's ticket (their words: the transcript); a
    question goes to the FAQ; anything else is answered ``not_understood`` (say it again or
    type it) or ``unavailable`` (the model could not run)."""
    req = parse(Voice, body)
    r = _run(inst, session, "voice-ai", {"audio": req.audio})
    status = str(r.get("status", "")).lower()
    out = r.get("outputs") or {}
    transcript, intent = (out.get("transcript") or "").strip(), out.get("intent") or "unknown"
    base = {"transcript": transcript, "intent": intent, "confidence": r.get("confidence", 0.0)}
    if status == "refused" and (r.get("error") or {}).get("code") == "VALIDATION_ERROR":
        raise KioskError(r["error"]["message"], r["error"]["details"], code="VALIDATION_ERROR")
    if status != "success":
        return base | {"outcome": "unavailable"}
    if intent in VOICE_TICKET and transcript:
        words = transcript[0].upper() + transcript[1:]
        ticket = _ticket(db, VOICE_TICKET[intent], words, "spoken", hotel_id=session.hotel_id, session=session,
                         now=now, node=node, window=window)
        return base | {"outcome": "request", "request": _request_now(db, session.hotel_id, ticket["ticket"]["ticketId"]),
                       "duplicateOf": ticket["duplicateOf"]}
    if intent == "question" and transcript:
        answered = ask(inst, db, session, {"language": req.language}, now=now, node=node, window=window,
                       question=transcript)
        return base | answered | {"outcome": "answer" if answered["answered"] else "handover"}
    return base | {"outcome": "not_understood"}


def staff_tasks(db, hotel_id: str, staff_id: str) -> dict:
    """The staff member's open tasks first, then the hotel's open tasks and work orders (the
    list scripts read; the staff terminal's one queue is :func:`kiosk.queue.listing`)."""
    names = {r[0]: r[1] for r in db.execute("SELECT staff_id, name FROM staff WHERE hotel_id = ?", [hotel_id])}
    tasks = [dict(r) for r in db.query(
        "SELECT task_id, type, room_number, priority, required_skill, due_at, status, assignee, description"
        " FROM tasks WHERE hotel_id = ? AND status NOT IN ('done', 'cancelled')"
        " ORDER BY (assignee IS ?) DESC, CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1"
        " WHEN 'normal' THEN 2 ELSE 3 END, due_at LIMIT 200", [hotel_id, staff_id])]
    work = [dict(r) for r in db.query(
        "SELECT work_order_id, room_number, type, description, status, assignee, priority, notes, version"
        " FROM work_orders WHERE hotel_id = ? AND status NOT IN ('done', 'cancelled')"
        " ORDER BY (assignee IS ?) DESC, CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1"
        " WHEN 'normal' THEN 2 ELSE 3 END, opened_at LIMIT 200", [hotel_id, staff_id])]
    return {"tasks": [{"taskId": t["task_id"], "type": t["type"], "roomNumber": t["room_number"],
                       "priority": t["priority"], "requiredSkill": t["required_skill"], "dueAt": t["due_at"],
                       "status": t["status"], "assignee": t["assignee"],
                       "assigneeName": names.get(t["assignee"], t["assignee"]) if t["assignee"] else None,
                       "description": t["description"]}
                      for t in tasks],
            "workOrders": [{"workOrderId": w["work_order_id"], "roomNumber": w["room_number"], "type": w["type"],
                            "description": w["description"], "status": w["status"], "assignee": w["assignee"],
                            "assigneeName": names.get(w["assignee"], w["assignee"]) if w["assignee"] else None,
                            "priority": w["priority"], "notes": w["notes"], "version": w["version"],
                            "allowedStatuses": allowed_from(w["status"])}
                           for w in work]}
