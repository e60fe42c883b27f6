"""``POST /sync/v1/claims``: a kiosk claims a one-time token before it consumes it, so a code
used at one box of a hotel is refused at the others at once, not only after their next pull
(docs/sync-protocol.md, "Claims").  The work is :func:`sync.cloud.events.claim`'s.

``POST /sync/v1/backup-key``: the hotel's backup key and erasures, which a kiosk's backup and
restore need for its guests' keys (:mod:`sync.cloud.backup_keys`)."""

from __future__ import annotations

import logging
import math
from typing import Any

from flask import Blueprint, g, jsonify
from flask import request as flask_request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from pydantic import ValidationError as PydanticError

from kiosk.clock import iso
from kiosk.errors import KioskError, TokenAlreadyUsed, ValidationError

from .. import backup_keys, events, storage, validation
from .common import device, json_body, now

log = logging.getLogger("kiosk.cloud")

bp = Blueprint("claims", __name__, url_prefix="/sync/v1")

#: what a claim may carry: at most a claim's worth of JSON
MAX_BODY_BYTES = 4096
#: ``at`` is seconds since the epoch: before the year 5138
MAX_AT = 1e11


class ClaimBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # newer kiosks may say more
    hotelId: StrictStr = Field(min_length=1, max_length=64)
    jti: StrictStr = Field(min_length=1, max_length=64)  # a token's jti claim: 1-64 characters
    kioskId: StrictStr = Field(min_length=1, max_length=64)
    sessionId: StrictStr | None = Field(None, min_length=1, max_length=64)
    at: StrictFloat | StrictInt = Field(ge=0, le=MAX_AT, allow_inf_nan=False)


def parse(raw: Any) -> ClaimBody:
    """The claim, or :class:`ValidationError` (HTTP 400) naming every bad field."""
    if not isinstance(raw, dict):
        raise ValidationError("the request body must be a JSON object", {"fields": [{"field": "(body)"}]})
    try:
        body = ClaimBody.model_validate(raw)
    except PydanticError as e:
        problems = [{"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
                    for err in e.errors()[:20]]
        raise ValidationError(f"invalid claim: {', '.join(p['field'] for p in problems)}",
                              {"fields": problems}) from None
    for name in ("hotelId", "jti", "kioskId", "sessionId"):
        value = getattr(body, name)
        if value is not None and not validation.storable_text(value):
            raise ValidationError(f"invalid claim: {name}",
                                  {"fields": [{"field": name, "problem": "holds a NUL or a lone surrogate"}]})
    if not math.isfinite(float(body.at)):
        raise ValidationError("invalid claim: at", {"fields": [{"field": "at", "problem": "must be finite"}]})
    return body


@bp.post("/claims")
def claim():
    dev = device()
    data = flask_request.get_data(cache=False)
    if len(data) > MAX_BODY_BYTES:
        raise KioskError(f"a claim is at most {MAX_BODY_BYTES} bytes", {"max": MAX_BODY_BYTES},
                         code="PAYLOAD_TOO_LARGE")
    body = parse(json_body(data))
    if not dev.serves(body.hotelId):
        raise KioskError(f"this credential is not for hotel {body.hotelId}", {"hotelId": body.hotelId},
                         code="FORBIDDEN")
    at = float(body.at)
    with storage.transaction(g.db):
        storage.lock_hotels(g.db, [body.hotelId])  # two kiosks claiming one token: one after the other
        out = events.claim(g.db, body.hotelId, body.jti, body.kioskId, body.sessionId, at, now())
    log.info("claim", extra={"deviceId": dev.device_id, "hotelId": body.hotelId, "kioskId": body.kioskId,
                             "claimed": out["claimed"], "new": out.get("new")})
    if not out["claimed"]:
        raise TokenAlreadyUsed("this code was already used at another kiosk",
                               {"usedAt": _when(out["consumedAt"]), "kioskId": out["kioskId"]})
    return jsonify({"claimed": True, "new": out["new"], "hlc": out["hlc"]})


class BackupKeyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hotelId: StrictStr = Field(min_length=1, max_length=64)


@bp.post("/backup-key")
def backup_key():
    """The hotel's backup key and erasures (sync/cloud/backup_keys.py): a kiosk wraps its guests'
    keys under it in a backup, and a restored kiosk unwraps them with it."""
    data = flask_request.get_data(cache=False)
    if len(data) > MAX_BODY_BYTES:
        raise KioskError(f"a backup-key request is at most {MAX_BODY_BYTES} bytes", {"max": MAX_BODY_BYTES},
                         code="PAYLOAD_TOO_LARGE")
    raw = json_body(data)
    try:
        body = BackupKeyBody.model_validate(raw if isinstance(raw, dict) else None)
    except PydanticError:
        raise ValidationError("invalid backup-key request: hotelId", {"fields": [{"field": "hotelId"}]}) from None
    dev = device()
    if not dev.serves(body.hotelId):
        raise KioskError(f"this credential is not for hotel {body.hotelId}", {"hotelId": body.hotelId},
                         code="FORBIDDEN")
    out = backup_keys.answer(g.db, body.hotelId, now())
    log.info("backup key", extra={"deviceId": dev.device_id, "hotelId": body.hotelId, "erased": len(out["erased"])})
    return jsonify(out)


def _when(at: float) -> str | float:
    """RFC 3339, as the kiosk says ``usedAt``; a time no calendar holds (a pushed entry may say
    anything) as it is."""
    try:
        return iso(float(at))
    except (ValueError, OverflowError, OSError):
        return at
