"""Sign in with the booking: the confirmation number and the guest's last name instead of a QR code.

A guest without a camera-readable code (or without a camera at the kiosk) types two things
they know.  The answer is the scan's: a guest session for that reservation (the subject is
the confirmation number, as a guest code's is; ``hotelId`` absent: every hotel the kiosk
serves is searched), the same success body, the same screen and
API forms (kiosk/web/lobby_api.py), the same audit row (event ``scan``, ``scanMethod:
"booking"``) and ``session.opened`` outbox entry, in ONE transaction.

What may sign in (docs/security.md, "Signing in with the booking"):

* a stay that is ``InHouse``, or ``Confirmed`` and arriving today (the hotel's date);
  anything else (checked out, cancelled, no-show, arriving another day) is refused;
* the last name typed must be the last word(s) of the reservation's ``guest_name``, with
  case, accents, spaces, hyphens and apostrophes forgiven ("van der Berg", "VANDERBERG" and
  "Berg" all name "Anna van der Berg"; "Mueller" names "Jan Müller").

Every refusal is the same ``INVALID_TOKEN`` ("no stay matches this booking number and last
name"): it never says which half was wrong, nor whether the booking exists.  Refusals
count in the scan's failure limiter (the same instance: per source, and per booking
number as the scan counts per code), are audited like a refused scan, and write nothing
else.  A booking is not a token: nothing is consumed; the session's ``jti`` is a synthetic
``booking:<random>`` (never a real token id: those have no colon), so revoking a token
never ends it.
"""

from __future__ import annotations

import secrets
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from . import store
from .clock import local_date
from .config import ID_PATTERN
from .errors import InvalidToken, KioskError, NotFound, ValidationError
from .ratelimit import code_key
from .scan import NOT_THE_CLIENTS_FAULT
from .validation import parse

SCAN_METHOD = "booking"
#: the statuses a stay may sign in with (Confirmed: only on the day of arrival)
SIGN_IN_STATUSES = ("InHouse", "Confirmed")
REFUSAL = "no stay matches this booking number and last name"
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})


class SignInRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # absent: every hotel this kiosk serves is searched (the lobby's form sends none)
    hotelId: StrictStr | None = Field(None, pattern=ID_PATTERN)
    confirmation: StrictStr = Field(min_length=1, max_length=64)
    lastName: StrictStr = Field(min_length=1, max_length=120)


def words(text: str) -> list[str]:
    """``text`` folded for comparing names: accents dropped (NFKD), case folded, anything but
    letters and digits a word break."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()
    return "".join(c if c.isalnum() else " " for c in plain).split()


def last_name_matches(guest_name: str | None, typed: str) -> bool:
    """Whether ``typed`` is the last word(s) of ``guest_name`` (case, accents, spaces, hyphens
    and apostrophes forgiven; umlauts also as ae/oe/ue).  An empty name matches nothing."""
    wanted = "".join(words(typed))
    if not guest_name or not wanted:
        return False
    for form in {guest_name, guest_name.translate(_GERMAN)}:
        w = words(form)
        if any("".join(w[i:]) == wanted for i in range(len(w))):
            return True
    return False


def may_sign_in(res: dict, today: str) -> bool:
    """InHouse, or Confirmed arriving ``today`` (ISO date, the hotel's)."""
    return res["status"] == "InHouse" or (res["status"] == "Confirmed" and res["arrival"] == today)


def _booking_key(confirmation: object) -> str | None:
    """What the limiter counts per booking number (as the scan counts per code), whichever
    hotel the request names: naming each hotel in turn buys no extra tries."""
    if not isinstance(confirmation, str):
        return None
    return code_key(f"booking\0{confirmation.strip().casefold()}")


def sign_in(service, db, body, *, client: str = "local") -> dict:
    """A guest session for the stay ``body`` names; the scan's success body, or a KioskError.

    ``service`` is the :class:`kiosk.scan.ScanService` (its limiter, refusal audit, session
    opening and configuration are shared with the scan)."""
    inst = service.instance
    now = inst.clock.now()
    raw = body if isinstance(body, dict) else {}
    hotel_hint = raw.get("hotelId") if raw.get("hotelId") in service.hotels else None
    presented = _booking_key(raw.get("confirmation"))
    try:
        service.limiter.check(client, now, presented)
    except KioskError as e:
        service.refusals.record(db, hotel_id=hotel_hint, event="security.rate_limited", at=now, client=client,
                                code=e.code, details={"scope": e.details.get("scope"), "scanMethod": SCAN_METHOD})
        raise
    try:
        req = parse(SignInRequest, body)
        hotels = [req.hotelId] if req.hotelId is not None else service.hotels
        today = local_date(now, inst.config.property.timezone).isoformat()
        with store.transaction(db):
            typed = req.confirmation.strip()
            marks = ", ".join("?" for _ in hotels)
            rows = db.execute("SELECT hotel_id, confirmation, guest_name, status, arrival FROM reservations"
                              f" WHERE hotel_id IN ({marks}) AND hotel_id IN ({', '.join('?' for _ in service.hotels)})"
                              " AND confirmation IN (?, ?)",  # as printed, or in upper case
                              [*hotels, *service.hotels, typed, typed.upper()]).fetchall()
            named = [dict(zip(("hotel_id", "confirmation", "guest_name", "status", "arrival"), r, strict=True))
                     for r in rows if last_name_matches(r[2], req.lastName)]
            res = named[0] if len(named) == 1 else None  # the same booking and name in two hotels: ask at the desk
            why = ("unknown" if not rows else "name" if not named else "ambiguous" if res is None
                   else None if may_sign_in(res, today) else "status")
            if why is not None:
                hotel_hint = rows[0][0] if rows else hotel_hint  # the refusal audited in that hotel's log
                err = InvalidToken(REFUSAL, {"reason": "booking"}, hint="check the booking number and last name")
                err.why = why  # type: ignore[attr-defined]  # for the audit row only, never the answer
                raise err
            return service.open(db, hotel=res["hotel_id"], subject=res["confirmation"], role="guest",
                                name=res["guest_name"],
                                jti=f"booking:{secrets.token_hex(8)}", scan_method=SCAN_METHOD, client=client,
                                now=now)
    except KioskError as e:
        if e.code not in NOT_THE_CLIENTS_FAULT:
            service.limiter.fail(client, now, presented)
        details = {k: v for k, v in e.details.items() if k != "fields"} | {"scanMethod": SCAN_METHOD}
        if getattr(e, "why", None):
            details["why"] = e.why  # type: ignore[attr-defined]
        service.refusals.record(db, hotel_id=hotel_hint, event="scan", at=now, client=client, code=e.code,
                                details=details)
        raise


def check_guest_code(db, *, hotel_id: str, role: str, user_id: str | None, walk_in: bool,
                     walk_in_flag: str = "--walk-in") -> None:
    """A guest code names a stay: its subject (``user_id``) must be a confirmation number the
    property holds, unless the code is deliberately a walk-in's (``walk_in``: no stay, no
    offers; requests ask for the room).  A guest code without ``user_id`` gets a generated id,
    so it is a walk-in's code too (the seed's admin API creates those)."""
    if walk_in and role != "guest":
        raise ValidationError(f"{walk_in_flag} is for guest codes only", {"field": "walkIn"})
    if role != "guest" or user_id is None:
        return
    held = db.execute("SELECT 1 FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                      [hotel_id, user_id]).fetchone() is not None
    if walk_in and held:
        raise ValidationError(f"{user_id!r} is a reservation of hotel {hotel_id}: leave out {walk_in_flag}",
                              {"field": "walkIn", "userId": user_id})
    if not walk_in and not held:
        raise NotFound(f"hotel {hotel_id} holds no reservation {user_id!r}; a guest code names a stay",
                       {"field": "userId", "userId": user_id, "hotelId": hotel_id},
                       hint=f"give the booking's confirmation number, or {walk_in_flag} for a code without a stay")
