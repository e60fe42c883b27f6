"""GET|POST|PUT|DELETE /api/admin?endpoint=tokens|sessions|analytics|export|outbox|conflicts|security|sync
— admin only, own hotel only.  A thin layer: the work is in kiosk.tokens, kiosk.sessions,
kiosk.timeline, kiosk.analytics, kiosk.export and sync.*."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, current_app, g, request, stream_with_context
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from .. import analytics, booking, export, outbox, qr, sessions, sync_status, timeline, tokens
from ..clock import iso, parse_duration
from ..config import ID_PATTERN
from ..errors import HotelMismatch, KioskError, NotFound, ValidationError
from ..validation import JsonInt, parse
from .rbac import roles
from .responses import ok

bp = Blueprint("admin", __name__)


Role = Literal["guest", "staff", "admin"]


class CreateToken(BaseModel):
    """``role``/``expiresIn``, or the seed's names ``userRole``/``expiresInDays`` (not both)."""
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    userRole: Role | None = None
    hotelId: StrictStr | None = Field(None, pattern=ID_PATTERN)
    userId: StrictStr | None = Field(None, min_length=1, max_length=64)
    name: StrictStr | None = Field(None, min_length=1, max_length=80)
    expiresIn: StrictStr | None = None
    expiresInDays: StrictInt | None = Field(None, ge=1, le=36500)
    reusable: StrictBool = False
    walkIn: StrictBool = False  # a guest code without a stay (kiosk/booking.py check_guest_code)

    def pick(self, ours: str, seeds: str, default):
        a, b = getattr(self, ours), getattr(self, seeds)
        if a is not None and b is not None:
            raise ValidationError(f"give {ours} or the seed's {seeds}, not both",
                                  {"fields": [{"field": seeds, "problem": f"given together with {ours}"}]})
        if a is None and b is None and default is None:
            raise ValidationError(f"invalid request: {ours}",
                                  {"fields": [{"field": ours, "problem": f"Field required (or {seeds})"}]})
        return a if a is not None else b if b is not None else default


class RevokeToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jti: StrictStr = Field(min_length=1, max_length=64)
    action: Literal["revoke"] = "revoke"


class ResolveDead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: JsonInt = Field(ge=1)
    action: Literal["retry", "drop"]


class TerminateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sessionId: StrictStr = Field(min_length=1, max_length=64)


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    format: Literal["csv", "json", "ndjson"] = "csv"
    period: StrictStr | None = None
    from_: StrictStr | None = Field(None, alias="from")
    to: StrictStr | None = None
    kinds: list[Literal["audit", "sessions", "modelRuns", "pmsChanges", "tickets"]] | None = Field(
        None, min_length=1, max_length=5)


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
        role = req.pick("role", "userRole", None)
        if req.hotelId not in (None, hotel):
            raise HotelMismatch("admins create tokens for their own hotel only",
                                {"hotelId": req.hotelId})
        lifetime = req.pick("expiresIn", "expiresInDays", "30d")
        field = "expiresInDays" if isinstance(lifetime, int) else "expiresIn"
        try:
            ttl = lifetime * 86400 if isinstance(lifetime, int) else parse_duration(lifetime)
        except ValueError as e:
            raise ValidationError(str(e), {"field": field}) from None
        if ttl > parse_duration(inst.config.tokens.max_ttl):
            raise ValidationError(f"{field} is longer than allowed", {"field": field,
                                                                       "max": inst.config.tokens.max_ttl})
        booking.check_guest_code(inst.db(), hotel_id=hotel, role=role, user_id=req.userId, walk_in=req.walkIn,
                                 walk_in_flag="walkIn")
        token, row = tokens.issue(inst.db(), current_app.config["KIOSK_KEYS"], hotel_id=hotel,
                                  role=role, now=now, ttl_seconds=ttl, user_id=req.userId,
                                  name=req.name, reusable=req.reusable,
                                  issuer=inst.config.property.issuer, node=node,
                                  issued_by=f"admin:{g.session.user_id}")
        code = qr.make(token)
        fields = {"token": token, "jti": row["jti"], "userId": row["subject"], "role": row["role"],
                  "expiresAt": iso(row["expires_at"]), "reusable": req.reusable}
        return ok(201, **fields, data=fields,  # data: the seed's answer shape
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
        status = _session_status()
        rows = sessions.list_sessions(inst.db(), hotels=[hotel], now=now, active_only=status == "active",
                                      expired_only=status == "expired", limit=_int_arg("limit", 200, 1, 1000))
        return ok(sessions=[timeline.session_json(r, now) for r in rows], count=len(rows))
    if method == "POST":
        req = parse(TerminateSession, request.get_json(silent=True))
        return ok(**timeline.detail(inst.db(), hotel, req.sessionId, now=now))
    if method == "DELETE":
        body = request.get_json(silent=True)
        if body is None and "sessionId" in request.args:
            body = {"sessionId": request.args["sessionId"]}
        req = parse(TerminateSession, body)
        return ok(**sessions.terminate(inst.db(), req.sessionId, hotels=[hotel], now=now,
                                       by=f"admin:{g.session.user_id}", reason="terminated_by_admin",
                                       node=inst.config.property.kiosk_id))
    raise ValidationError("sessions supports GET, POST and DELETE", {"method": method})


def _session_status() -> str:
    """``status=active|expired|all`` (the seed's filter) or the older ``active=1``."""
    status, active = request.args.get("status"), request.args.get("active")
    if status is not None and status not in ("active", "expired", "all"):
        raise ValidationError("status must be active, expired or all", {"field": "status"})
    if active not in (None, "1", "0"):
        raise ValidationError("active must be 1 (or leave it out)", {"field": "active"})
    if active == "1" and status not in (None, "active"):
        raise ValidationError("active=1 and status disagree; give one of them", {"field": "status"})
    return status or ("active" if active == "1" else "all")


def _analytics(inst, method: str):
    if method != "GET":
        raise ValidationError("analytics supports GET", {"method": method})
    now = inst.clock.now()
    a = request.args
    w = analytics.parse_window(period=a.get("period"), from_=a.get("from"), to=a.get("to"), now=now)
    return ok(**analytics.summary(inst.db(), g.session.hotel_id, w, now=now))


def _export(inst, method: str):
    if method == "GET":  # a browser download link: the same fields as query parameters
        a = request.args
        body = {k: a[k] for k in ("format", "period", "from", "to") if k in a}
        if "kinds" in a:
            body["kinds"] = [k for v in a.getlist("kinds") for k in v.split(",") if k]
    elif method == "POST":
        body = request.get_json(silent=True)
    else:
        raise ValidationError("export supports GET and POST", {"method": method})
    req = parse(ExportRequest, body)
    w = analytics.parse_window(period=req.period, from_=req.from_, to=req.to, now=inst.clock.now(),
                               max_days=None)
    kinds = list(dict.fromkeys(req.kinds or export.KINDS))
    hotel = g.session.hotel_id
    chunks = export.stream(lambda: export.reader(inst.db_path), hotel, w, kinds, req.format)
    return Response(stream_with_context(chunks), mimetype=None, content_type=export.FORMATS[req.format][0],
                    headers={"Content-Disposition": f'attachment; filename="{export.filename(hotel, w, req.format)}"'})


def _outbox(inst, method: str):
    hotel = g.session.hotel_id
    if method == "GET":
        rows = outbox.list_dead(inst.db(), [hotel], limit=_int_arg("limit", 200, 1, 1000))
        return ok(dead=[{"id": r["id"], "kind": r["kind"], "entityType": r["entity_type"],
                         "entityId": r["entity_id"], "attempts": r["attempts"], "reason": r["last_error"],
                         "createdAt": iso(r["created_at"])} for r in rows],
                  count=len(rows))
    if method == "PUT":
        req = parse(ResolveDead, request.get_json(silent=True))
        return ok(**outbox.resolve_dead(inst.db(), req.id, req.action, hotels=[hotel],
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


ENDPOINTS = {"tokens": _tokens, "sessions": _sessions, "analytics": _analytics, "export": _export,
             "outbox": _outbox, "conflicts": _conflicts, "security": _security, "sync": _sync}
#: the methods each endpoint serves (docs/openapi.yaml lists the same per method)
METHODS = {"tokens": ("GET", "POST", "PUT"), "sessions": ("GET", "POST", "DELETE"), "analytics": ("GET",),
           "export": ("GET", "POST"), "outbox": ("GET", "PUT"), "conflicts": ("GET",), "security": ("GET",),
           "sync": ("GET",)}


@bp.route("/api/admin", methods=["GET", "POST", "PUT", "DELETE"])
@roles("admin")
def admin():
    name = request.args.get("endpoint", "")
    handler = ENDPOINTS.get(name)
    if handler is None:
        raise NotFound(f"no admin endpoint {name!r}", {"endpoints": sorted(ENDPOINTS)})
    if request.method not in METHODS[name]:
        raise KioskError(f"{name} supports {', '.join(METHODS[name])}",
                         {"method": request.method, "allowed": list(METHODS[name])}, code="METHOD_NOT_ALLOWED")
    return handler(current_app.config["KIOSK_INSTANCE"], request.method)
