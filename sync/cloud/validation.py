"""Shapes: the push body (bad -> HTTP 400), each entry and its payload (bad -> ``INVALID_ENTRY``)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic import ValidationError as PydanticError

from kiosk import jsontext
from kiosk.errors import KioskError, ValidationError
from kiosk.workflow_rules import STATUSES

from .results import Rejected

MAX_ENTRIES = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_KEY_CHARS = 200
#: kiosk.hlc.Stamp's form: 15-digit wall milliseconds, 5-digit counter, the node
HLC_PATTERN = r"^[0-9]{15}-[0-9]{5}-[A-Za-z0-9._:@-]{1,64}$"
MAX_CLOCK_SKEW_SECONDS = 3600.0

CHANGEABLE = ("status", "assignee", "priority", "notes", "description")


def _text(n: int, *, min_length: int = 0, default: Any = ...) -> Any:
    return Field(default, min_length=min_length, max_length=n)


class Entry(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    key: StrictStr = _text(MAX_KEY_CHARS, min_length=1)
    hotelId: StrictStr = _text(64, min_length=1)
    kind: StrictStr = _text(64, min_length=1)
    entityType: StrictStr = _text(64, min_length=1)
    entityId: StrictStr = _text(128, min_length=1)
    hlc: StrictStr = Field(min_length=1, max_length=100, pattern=HLC_PATTERN)
    createdAt: StrictFloat | StrictInt = Field(allow_inf_nan=False)
    payload: dict[str, Any]
    #: the guest the payload's names and words are about (their confirmation), if the kiosk
    #: keeps them sealed: the cloud seals them under that guest's key (sync/cloud/guest_vault.py)
    subject: StrictStr | None = _text(128, default=None)


class WorkOrderCreated(BaseModel):
    model_config = ConfigDict(extra="ignore")
    workOrderId: StrictStr = _text(64, min_length=1)
    assetId: StrictStr | None = _text(64, default=None)
    roomNumber: StrictStr | None = _text(32, default=None)
    type: StrictStr = _text(32, min_length=1, default="failure")
    description: StrictStr | None = _text(4000, default="")
    status: StrictStr = "open"
    assignee: StrictStr | None = _text(64, default=None)
    priority: StrictStr = _text(16, min_length=1, default="normal")
    notes: StrictStr | None = _text(4000, default="")
    openedAt: StrictStr | None = _text(40, default=None)
    closedAt: StrictStr | None = _text(40, default=None)

    @model_validator(mode="after")
    def _known_status(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        return self


class Change(BaseModel):
    model_config = ConfigDict(extra="ignore")
    old: StrictStr | None = _text(4000, default=None)
    new: StrictStr | None = _text(4000)


class WorkOrderUpdated(BaseModel):
    model_config = ConfigDict(extra="ignore")
    workOrderId: StrictStr = _text(64, min_length=1)
    changes: dict[str, Change]
    by: StrictStr = _text(128, min_length=1)
    at: StrictStr = _text(40, min_length=1)

    @model_validator(mode="after")
    def _changeable(self):
        if not self.changes:
            raise ValueError("changes must name at least one field")
        unknown = sorted(set(self.changes) - set(CHANGEABLE))
        if unknown:
            raise ValueError(f"fields that cannot change: {', '.join(unknown)}")
        status = self.changes.get("status")
        if status is not None and status.new not in STATUSES:
            raise ValueError(f"changes.status.new must be one of {', '.join(STATUSES)}")
        return self


class TicketCreated(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ticketId: StrictStr = _text(64, min_length=1)
    type: StrictStr = _text(32, min_length=1)
    title: StrictStr = _text(500, min_length=1)
    description: StrictStr | None = _text(4000, default="")
    roomNumber: StrictStr | None = _text(32, default=None)
    priority: StrictStr = _text(16, min_length=1, default="normal")
    queue: StrictStr | None = _text(64, default=None)
    status: StrictStr = _text(32, min_length=1, default="open")
    fingerprint: StrictStr | None = _text(128, default=None)
    createdAt: StrictStr | None = _text(40, default=None)
    createdBy: StrictStr | None = _text(128, default=None)


class TicketChange(BaseModel):
    model_config = ConfigDict(extra="ignore")
    old: StrictStr | None = _text(1000, default=None)  # a reply's words (status, assignee: 64 at most)
    new: StrictStr | None = _text(1000, default=None)


class TicketUpdated(BaseModel):
    """A ticket's lifecycle step at a kiosk (kiosk/tickets.py): status and/or assignee; or a
    staff member's reply to the guest (``reply``, on its own)."""
    model_config = ConfigDict(extra="ignore")
    ticketId: StrictStr = _text(64, min_length=1)
    changes: dict[str, TicketChange]
    by: StrictStr | None = _text(128, default=None)
    at: StrictStr | None = _text(40, default=None)

    @model_validator(mode="after")
    def _fields(self):
        if not self.changes or set(self.changes) - {"status", "assignee"} and set(self.changes) != {"reply"}:
            raise ValueError("changes names status and/or assignee, or reply")
        for f in ("status", "assignee"):
            c = self.changes.get(f)
            if c is not None and any(v is not None and len(v) > 64 for v in (c.old, c.new)):
                raise ValueError(f"changes.{f} is at most 64 characters")
        reply = self.changes.get("reply")
        if reply is not None and not reply.new:
            raise ValueError("changes.reply.new is the reply's words")
        status = self.changes.get("status")
        if status is not None and status.new not in TICKET_STATUSES:
            raise ValueError(f"changes.status.new must be one of {', '.join(TICKET_STATUSES)}")
        return self


TICKET_STATUSES = ("received", "open", "accepted", "assigned", "in_progress", "done", "cancelled")


def _problem(e: PydanticError, prefix: str) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    return f"{where or '(entry)'}: {err['msg']}"


def entry(raw: Any, now: float | None = None, max_skew: float = MAX_CLOCK_SKEW_SECONDS,
          text: str | None = None) -> Entry:
    """The validated envelope of one entry, or :class:`Rejected` ``INVALID_ENTRY`` (shape) or
    ``HLC_AHEAD`` (a stamp further ahead of the cloud's clock than ``max_skew`` seconds: it
    would win every later conflict for the hotel).  ``text``: the entry as :func:`text_of`
    wrote it, if at hand (the payload is a part of it: when the whole is short enough, so is
    the payload, and it need not be written again to be measured)."""
    try:
        e = Entry.model_validate(raw)
    except PydanticError as err:
        raise Rejected("INVALID_ENTRY", _problem(err, "")) from None
    if now is not None:
        ahead = int(e.hlc[:15]) / 1000 - now
        if ahead > max_skew:
            raise Rejected("HLC_AHEAD", f"the entry's clock stamp is {ahead:.0f} s ahead of the cloud's clock"
                                        f" (at most {max_skew:.0f} s); set the kiosk's clock right, then retry"
                                        " the dead letters")
    if text is not None and len(text) <= MAX_PAYLOAD_BYTES // 4:  # (UTF-8: at most 4 bytes a character)
        return e
    size = len(jsontext.compact(e.payload, sort_keys=False, ensure_ascii=False).encode(errors="surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        raise Rejected("INVALID_ENTRY", f"payload is {size} bytes, more than {MAX_PAYLOAD_BYTES}")
    return e


def payload(model: type[BaseModel], e: Entry, id_field: str) -> Any:
    """The entry's payload as ``model``; its id field must be the entry's entityId."""
    try:
        p = model.model_validate(e.payload)
    except PydanticError as err:
        raise Rejected("INVALID_ENTRY", _problem(err, "payload")) from None
    if getattr(p, id_field) != e.entityId:
        raise Rejected("INVALID_ENTRY", f"payload.{id_field} {getattr(p, id_field)!r}"
                                        f" is not the entityId {e.entityId!r}")
    return p


#: U+0000 (PostgreSQL refuses it in text) and the UTF-16 surrogates (no UTF-8 encodes a lone one)
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _holds_unstorable(text: str) -> bool:
    """Whether :func:`text_of`'s JSON (U+0000 written ``\\u0000``, a surrogate as itself: JSON
    never holds a raw NUL) holds either (two scans in C; the second only for text that is not
    all ASCII)."""
    return "\\u0000" in text or (not text.isascii() and _UNSTORABLE.search(text) is not None)


def text_of(value: Any) -> str | None:
    """``value`` (a parsed JSON document) as compact JSON with sorted keys, characters as
    themselves (None if it is not JSON): what :func:`unstorable`, :func:`entry` and a push's
    digest (:func:`.pushes.digest`) look at."""
    try:
        return jsontext.compact(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return None


def unstorable(value: Any, where: str = "", text: str | None = None) -> str | None:
    """Where in ``value`` (a parsed JSON document) a string holds a NUL or a lone surrogate, or
    None.  Such text cannot be stored (PostgreSQL refuses U+0000; a lone surrogate has no
    UTF-8), so an entry holding one is refused before any of it reaches the database.

    First the whole document is looked at once as JSON text (``text``, or :func:`text_of`
    written here; a substring search and, for text not all ASCII, a regex find either); only a
    document that holds one is walked, to say where."""
    if text is None:
        text = text_of(value)
    if text is not None and not _holds_unstorable(text):
        return None
    stack = [(where, value)]
    while stack:
        at, v = stack.pop()
        if isinstance(v, str):
            m = _UNSTORABLE.search(v)
            if m:
                what = "a NUL character" if m.group() == "\x00" else "a lone surrogate"
                return f"{at or '(entry)'} holds {what} (U+{ord(m.group()):04X})"
        elif isinstance(v, dict):
            for k, item in v.items():
                if isinstance(k, str) and _UNSTORABLE.search(k):
                    return f"{at or '(entry)'} has a field name holding a NUL or a lone surrogate"
                stack.append((f"{at}.{k}" if at else str(k), item))
        elif isinstance(v, list):
            stack.extend((f"{at}.{i}", item) for i, item in enumerate(v))
    return None


def storable_text(value: str, limit: int = 1000) -> bool:
    """A short string that can be stored and compared on either storage."""
    return len(value) <= limit and _UNSTORABLE.search(value) is None


_DIGITS = re.compile(r"[0-9]{1,19}")


def ascii_int(value: str | None, field: str, default: int) -> int:
    """A query parameter that must be a non-negative integer: ASCII digits only (``int()``
    also takes ``"١٢"`` and ``" 12"``), below 2**63 (PostgreSQL's bigint); anything else is a
    400 VALIDATION_ERROR."""
    if value is None:
        return default
    if not _DIGITS.fullmatch(value) or int(value) >= 2**63:
        raise ValidationError(f"{field} must be a non-negative integer (ASCII digits, below 2**63)",
                              {"fields": [{"field": field}]})
    return int(value)


def push_body(body: Any) -> tuple[str, list[dict]]:
    """``(deviceId, entries)`` of a push body; :class:`ValidationError` (HTTP 400) if malformed.

    Only what is needed to answer per entry is checked here: each entry must be
    an object with a usable ``key``.  Everything else is judged per entry.
    """
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object", {"fields": [{"field": "(body)"}]})
    device_id, entries = body.get("deviceId"), body.get("entries")
    problems = []
    if not isinstance(device_id, str) or not device_id:
        problems.append({"field": "deviceId", "problem": "must be a non-empty string"})
    if not isinstance(entries, list):
        problems.append({"field": "entries", "problem": "must be a list"})
    elif len(entries) > MAX_ENTRIES:
        raise KioskError(f"{len(entries)} entries in one push; at most {MAX_ENTRIES}",
                         {"entries": len(entries), "max": MAX_ENTRIES}, code="PAYLOAD_TOO_LARGE")
    else:
        problems += entry_keys(entries)
    if problems:
        names = ", ".join(p["field"] for p in problems[:10])
        raise ValidationError(f"invalid push: {names}", {"fields": problems[:50]})
    return device_id, entries


def entry_keys(entries: list) -> list[dict]:
    """Problems with the entries' keys (each must be an object with a string key)."""
    problems = []
    for i, raw in enumerate(entries):
        key = raw.get("key") if isinstance(raw, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
            problems.append({"field": f"entries.{i}.key",
                             "problem": f"each entry must be an object with a key of 1-{MAX_KEY_CHARS} characters"})
    return problems
