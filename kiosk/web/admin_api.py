"""GET|POST|PUT|DELETE /api/admin?endpoint=tokens|sessions|outbox|conflicts|security|sync — admin only,
own hotel only."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, current_app, g, request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from sync import delivery
from sync import status as sync_status

from .. import qr, sessions, tokens
from ..clock import iso, parse_duration
from ..config import ID_PATTERN
from ..errors import HotelMismatch, NotFound, ValidationError
from ..validation import parse
from .rbac import roles
from .responses import ok

bp = Blueprint("admin", __name__)


class CreateToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["guest", "staff", "admin"]
    hotelId: StrictStr | None = Field(None, pattern=ID_PATTERN)
    userId: StrictStr | None = Field(None, min_length=1, max_length=64)
    name: StrictStr | None = Field(None, min_length=1, max_length=80)
    expiresIn: StrictStr = "30d"
    reusable: StrictBool = False


class RevokeToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jti: StrictStr = Field(min_length=1, max_length=64)
    action: Literal["revoke"] = "revoke"


class ResolveDead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictInt = Field(ge=1)
    action: Literal["retry", "drop"]


class TerminateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sessionId: StrictStr = Field(min_length=1, max_length=64)


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValidationError(f"{name} must be an integer from {lo} to {hi}", {"field": name})
    return int(raw)


def _token_json(row: dict) -> dict:
    return {"jti": row["jti"], "hotelId": row["hotel_id"], "userId": row["subject"],
            "role": row["role"], "name": row["display_name"], "reusable": bool(row["reusable"]),
            "status": row["status"], "issuedAt": iso(row["issued_at"]),
            "expiresAt": iso(row["expires_at"]),
            "usedAt": iso(row["used_at"]) if row["used_at"] else None,
            "revokedAt": iso(row["revoked_at"]) if row["revoked_at"] else None}


def _tokens(inst, method: str):
    hotel = g.session.hotel_id
    now = inst.clock.now()
    node = inst.config.property.kiosk_id
    if method == "GET":
        rows = tokens.list_tokens(inst.db(), hotels=[hotel], now=now,
                                  status=request.args.get("status"), role=request.args.get("role"),
                                  limit=_int_arg("limit", 200, 1, 1000))
        return ok(tokens=[_token_json(r) for r in rows], count=len(rows))
    body = request.get_json(silent=True)
    if method == "POST":
        req = parse(CreateToken, body)
        if req.hotelId not in (None, hotel):
            raise HotelMismatch("admins create tokens for their own hotel only",
                                {"hotelId": req.hotelId})
        try:
            ttl = parse_duration(req.expiresIn)
        except ValueError as e:
            raise ValidationError(str(e), {"field": "expiresIn"}) from None
        if ttl > parse_duration(inst.config.tokens.max_ttl):
            raise ValidationError("expiresIn is longer than allowed", {"field": "expiresIn",
                                                                         "max": inst.config.tokens.max_ttl})
        token, row = tokens.issue(inst.db(), current_app.config["KIOSK_KEYS"], hotel_id=hotel,
                                  role=req.role, now=now, ttl_seconds=ttl, user_id=req.userId,
                                  name=req.name, reusable=req.reusable,
                                  issuer=inst.config.property.issuer, node=node,
                                  issued_by=f"admin:{g.session.user_id}")
        code = qr.make(token)
        return ok(201, token=token, jti=row["jti"], userId=row["subject"], role=row["role"],
                  expiresAt=iso(row["expires_at"]), reusable=req.reusable,
                  qr={"png": qr.png_data_uri(token), "version": code.version, "error": code.error})
    if method == "PUT":
        req = parse(RevokeToken, body)
        return ok(**tokens.revoke(inst.db(), req.jti, hotels=[hotel], now=now,
                                  by=f"admin:{g.session.user_id}", node=node))
    raise ValidationError("tokens supports GET, POST and PUT", {"method": method})


def _sessions(inst, method: str):
    hotel = g.session.hotel_id
    now = inst.clock.now()
    if method == "GET":
        rows = sessions.list_sessions(inst.db(), hotels=[hotel], now=now,
                                      active_only=request.args.get("active") == "1",
                                      limit=_int_arg("limit", 200, 1, 1000))
        return ok(sessions=[{"sessionId": r["id"], "userId": r["user_id"], "role": r["role"],
                             "name": r["display_name"], "scanMethod": r["scan_method"],
                             "createdAt": iso(r["created_at"]), "expiresAt": iso(r["expires_at"]),
                             "endedAt": iso(r["ended_at"]) if r["ended_at"] else None,
                             "endReason": r["end_reason"]} for r in rows], count=len(rows))
    if method == "DELETE":
        body = request.get_json(silent=True)
        if body is None and "sessionId" in request.args:
            body = {"sessionId": request.args["sessionId"]}
        req = parse(TerminateSession, body)
        return ok(**sessions.terminate(inst.db(), req.sessionId, hotels=[hotel], now=now,
                                       by=f"admin:{g.session.user_id}", reason="terminated_by_admin",
                                       node=inst.config.property.kiosk_id))
    raise ValidationError("sessions supports GET and DELETE", {"method": method})


def _outbox(inst, method: str):
    hotel = g.session.hotel_id
    if method == "GET":
        rows = delivery.list_dead(inst.db(), [hotel], limit=_int_arg("limit", 200, 1, 1000))
        return ok(dead=[{"id": r["id"], "kind": r["kind"], "entityType": r["entity_type"],
                         "entityId": r["entity_id"], "attempts": r["attempts"], "reason": r["last_error"],
                         "createdAt": iso(r["created_at"])} for r in rows],
                  count=len(rows))
    if method == "PUT":
        req = parse(ResolveDead, request.get_json(silent=True))
        return ok(**delivery.resolve_dead(inst.db(), req.id, req.action, hotels=[hotel],
                                          by=f"admin:{g.session.user_id}", now=inst.clock.now()))
    raise ValidationError("outbox supports GET and PUT", {"method": method})


def _conflicts(inst, method: str):
    if method != "GET":
        raise ValidationError("conflicts supports GET", {"method": method})
    rows = sync_status.conflicts(inst.db(), g.session.hotel_id, limit=_int_arg("limit", 200, 1, 1000))
    return ok(conflicts=rows, count=len(rows))


def _security(inst, method: str):
    if method != "GET":
        raise ValidationError("security supports GET", {"method": method})
    rows = sync_status.security_events(inst.db(), g.session.hotel_id, limit=_int_arg("limit", 200, 1, 1000))
    return ok(securityEvents=rows, count=len(rows))


def _sync(inst, method: str):
    if method != "GET":
        raise ValidationError("sync supports GET", {"method": method})
    return ok(**sync_status.summary(inst.db(), g.session.hotel_id, now=inst.clock.now(),
                                    stale_after=inst.config.sync.stale_after_seconds))


ENDPOINTS = {"tokens": _tokens, "sessions": _sessions, "outbox": _outbox, "conflicts": _conflicts,
             "security": _security, "sync": _sync}


@bp.route("/api/admin", methods=["GET", "POST", "PUT", "DELETE"])
@roles("admin")
def admin():
    name = request.args.get("endpoint", "")
    handler = ENDPOINTS.get(name)
    if handler is None:
        raise NotFound(f"no admin endpoint {name!r}", {"endpoints": sorted(ENDPOINTS)})
    return handler(current_app.config["KIOSK_INSTANCE"], request.method)
