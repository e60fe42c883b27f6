"""The admin API — admin only, own hotel only.  One route per resource and method:

    GET  /api/admin/tokens                      list          POST /api/admin/tokens   issue
    POST /api/admin/tokens/<jti>/revoke         revoke
    GET  /api/admin/sessions                    list
    GET  /api/admin/sessions/<session_id>       details       DELETE …/<session_id>    end it
    GET  /api/admin/analytics
    GET|POST /api/admin/export                  a download (GET: a plain link)
    GET  /api/admin/outbox                      dead letters  POST …/<entry_id>/retry|drop
    GET  /api/admin/conflicts | security | sync
    POST /api/admin/guests/erase                erase a guest: here at once, the cloud everywhere

and the seed's form ``/api/admin?endpoint=tokens|sessions|…`` (ids in the JSON body), kept
for the clients written for it: :func:`admin` dispatches each (endpoint, method) to the
same work as its route, so both answer alike.  A thin layer: the work is in kiosk.tokens,
kiosk.sessions, kiosk.timeline, kiosk.analytics, kiosk.export and sync.*.

Every view is ``@roles("admin")`` (kiosk/web/rbac.py: deny by default) and under
``/api/admin`` (kiosk/web/csrf.py: a cookie request that changes something needs the
CSRF token)."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, current_app, g, request, stream_with_context
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from .. import (
    analytics,
    booking,
    erasure,
    export,
    outbox,
    qr,
    sessions,
    sync_status,
    timeline,
    tokens,
)
from ..clock import iso, parse_duration
from ..config import ID_PATTERN
from ..errors import HotelMismatch, KioskError, NotFound, ValidationError
from ..names import annotate as with_names
from ..validation import JsonInt, parse
from .rbac import roles
from .responses import ok

bp = Blueprint("admin", __name__)
PREFIX = "/api/admin"


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


class NoBody(BaseModel):
    """The body of a route whose path says everything: none, or ``{}``."""
    model_config = ConfigDict(extra="forbid")


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
    kinds: list[Literal["audit", "sessions", "modelRuns", "pmsChanges", "tickets", "scans", "workOrders",
                        "offers"]] | None = Field(None, min_length=1, max_length=8)
    columns: Literal["keys", "readable"] = "keys"  # readable: a CSV header people read (kiosk/export.py)
    lang: Literal["en", "de"] = "en"  # the readable header's language


class EraseGuest(BaseModel):
    """``confirm``: the booking number typed a second time; it must be ``confirmation`` exactly."""
    model_config = ConfigDict(extra="forbid")
    hotelId: StrictStr = Field(pattern=ID_PATTERN)
    confirmation: StrictStr = Field(min_length=1, max_length=64)
    confirm: StrictStr = Field(min_length=1, max_length=64)


def _inst():
    return current_app.config["KIOSK_INSTANCE"]


def _by() -> str:
    return f"admin:{g.session.user_id}"


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValidationError(f"{name} must be an integer from {lo} to {hi}", {"field": name})
    return int(raw)


def _no_body() -> None:
    """A route whose path names the thing and the action takes no fields: a body, if any,
    must be ``{}`` (a mistaken field is VALIDATION_ERROR, not silently ignored)."""
    if request.get_data(cache=True):
        parse(NoBody, request.get_json(silent=True))


def _token_json(row: dict) -> dict:
    return {"jti": row["jti"], "hotelId": row["hotel_id"], "userId": row["subject"],
            "role": row["role"], "name": row["display_name"], "reusable": bool(row["reusable"]),
            "status": row["status"], "issuedAt": iso(row["issued_at"]),
            "expiresAt": iso(row["expires_at"]),
            "usedAt": iso(row["used_at"]) if row["used_at"] else None,
            "revokedAt": iso(row["revoked_at"]) if row["revoked_at"] else None}


# --- tokens -------------------------------------------------------------------------------------

@bp.get(f"{PREFIX}/tokens")
@roles("admin")
def list_tokens():
    inst = _inst()
    rows = tokens.list_tokens(inst.db(), hotels=[g.session.hotel_id], now=inst.clock.now(),
                              status=request.args.get("status"), role=request.args.get("role"),
                              limit=_int_arg("limit", 200, 1, 1000))
    return ok(tokens=with_names(inst.db(), g.session.hotel_id, [_token_json(r) for r in rows]),
              count=len(rows))


@bp.post(f"{PREFIX}/tokens")
@roles("admin")
def create_token():
    inst = _inst()
    hotel = g.session.hotel_id
    req = parse(CreateToken, request.get_json(silent=True))
    role = req.pick("role", "userRole", None)
    if req.hotelId not in (None, hotel):
        raise HotelMismatch("admins create tokens for their own hotel only", {"hotelId": req.hotelId})
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
                              role=role, now=inst.clock.now(), ttl_seconds=ttl, user_id=req.userId,
                              name=req.name, reusable=req.reusable,
                              issuer=inst.config.property.issuer, node=inst.config.property.kiosk_id,
                              issued_by=_by())
    code = qr.make(token)
    fields = {"token": token, "jti": row["jti"], "userId": row["subject"], "role": row["role"],
              "expiresAt": iso(row["expires_at"]), "reusable": req.reusable}
    return ok(201, **fields, data=fields,  # data: the seed's answer shape
              qr={"png": qr.png_data_uri(token), "version": code.version, "error": code.error})


def _revoke(jti: str):
    req = parse(RevokeToken, {"jti": jti})
    inst = _inst()
    return ok(**tokens.revoke(inst.db(), req.jti, hotels=[g.session.hotel_id], now=inst.clock.now(),
                              by=_by(), node=inst.config.property.kiosk_id))


@bp.post(f"{PREFIX}/tokens/<jti>/revoke")
@roles("admin")
def revoke_token(jti: str):
    _no_body()
    return _revoke(jti)


# --- sessions -----------------------------------------------------------------------------------

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


@bp.get(f"{PREFIX}/sessions")
@roles("admin")
def list_sessions():
    inst = _inst()
    now = inst.clock.now()
    status = _session_status()
    rows = sessions.list_sessions(inst.db(), hotels=[g.session.hotel_id], now=now, active_only=status == "active",
                                  expired_only=status == "expired", limit=_int_arg("limit", 200, 1, 1000))
    return ok(sessions=with_names(inst.db(), g.session.hotel_id,
                                [timeline.session_json(r, now) for r in rows]), count=len(rows))


@bp.get(f"{PREFIX}/sessions/<session_id>")
@roles("admin")
def session_detail(session_id: str):
    req = parse(TerminateSession, {"sessionId": session_id})
    inst = _inst()
    return ok(**timeline.detail(inst.db(), g.session.hotel_id, req.sessionId, now=inst.clock.now()))


def _end_session(session_id: str):
    req = parse(TerminateSession, {"sessionId": session_id})
    inst = _inst()
    return ok(**sessions.terminate(inst.db(), req.sessionId, hotels=[g.session.hotel_id], now=inst.clock.now(),
                                   by=_by(), reason="terminated_by_admin", node=inst.config.property.kiosk_id))


@bp.delete(f"{PREFIX}/sessions/<session_id>")
@roles("admin")
def end_session(session_id: str):
    _no_body()
    return _end_session(session_id)


# --- analytics and exports ----------------------------------------------------------------------

@bp.get(f"{PREFIX}/analytics")
@roles("admin")
def get_analytics():
    now = _inst().clock.now()
    a = request.args
    w = analytics.parse_window(period=a.get("period"), from_=a.get("from"), to=a.get("to"), now=now)
    return ok(**analytics.summary(_inst().db(), g.session.hotel_id, w, now=now))


def _export(body) -> Response:
    inst = _inst()
    req = parse(ExportRequest, body)
    w = analytics.parse_window(period=req.period, from_=req.from_, to=req.to, now=inst.clock.now(),
                               max_days=None)
    kinds = list(dict.fromkeys(req.kinds or export.DEFAULT_KINDS))
    hotel = g.session.hotel_id
    chunks = export.stream(lambda: export.reader(inst.db_path), hotel, w, kinds, req.format, columns=req.columns,
                           lang=req.lang)
    return Response(stream_with_context(chunks), mimetype=None, content_type=export.FORMATS[req.format][0],
                    headers={"Content-Disposition": f'attachment; filename="{export.filename(hotel, w, req.format)}"'})


@bp.get(f"{PREFIX}/export")
@roles("admin")
def export_link():
    """A browser download link: the export's fields as query parameters."""
    a = request.args
    body = {k: a[k] for k in ("format", "period", "from", "to", "columns", "lang") if k in a}
    if "kinds" in a:
        body["kinds"] = [k for v in a.getlist("kinds") for k in v.split(",") if k]
    return _export(body)


@bp.post(f"{PREFIX}/export")
@roles("admin")
def export_post():
    return _export(request.get_json(silent=True))


# --- the outbox and sync ------------------------------------------------------------------------

@bp.get(f"{PREFIX}/outbox")
@roles("admin")
def list_dead():
    rows = outbox.list_dead(_inst().db(), [g.session.hotel_id], limit=_int_arg("limit", 200, 1, 1000))
    return ok(dead=[{"id": r["id"], "kind": r["kind"], "entityType": r["entity_type"],
                     "entityId": r["entity_id"], "attempts": r["attempts"], "reason": r["last_error"],
                     "createdAt": iso(r["created_at"])} for r in rows],
              count=len(rows))


def _resolve_dead(body):
    req = parse(ResolveDead, body)
    inst = _inst()
    return ok(**outbox.resolve_dead(inst.db(), req.id, req.action, hotels=[g.session.hotel_id],
                                    by=_by(), now=inst.clock.now()))


@bp.post(f"{PREFIX}/outbox/<int:entry_id>/retry")
@roles("admin")
def retry_dead(entry_id: int):
    _no_body()
    return _resolve_dead({"id": entry_id, "action": "retry"})


@bp.post(f"{PREFIX}/outbox/<int:entry_id>/drop")
@roles("admin")
def drop_dead(entry_id: int):
    _no_body()
    return _resolve_dead({"id": entry_id, "action": "drop"})


@bp.get(f"{PREFIX}/conflicts")
@roles("admin")
def list_conflicts():
    rows = sync_status.conflicts(_inst().db(), g.session.hotel_id, limit=_int_arg("limit", 200, 1, 1000))
    return ok(conflicts=rows, count=len(rows))


@bp.get(f"{PREFIX}/security")
@roles("admin")
def list_security_events():
    rows = sync_status.security_events(_inst().db(), g.session.hotel_id, limit=_int_arg("limit", 200, 1, 1000))
    return ok(securityEvents=rows, count=len(rows))


@bp.get(f"{PREFIX}/sync")
@roles("admin")
def sync_summary():
    inst = _inst()
    return ok(**sync_status.summary(inst.db(), g.session.hotel_id, now=inst.clock.now(),
                                    stale_after=inst.config.sync.stale_after_seconds))


# --- guest data -----------------------------------------------------------------------------------

@bp.post(f"{PREFIX}/guests/erase")
@roles("admin")
def erase_guest():
    """The right to be forgotten from the dashboard (docs/privacy.md, "Erasure"): the guest is
    erased here at once and the cloud is asked to erase them everywhere (kiosk/erasure.py)."""
    inst = _inst()
    req = parse(EraseGuest, request.get_json(silent=True))
    if req.confirm != req.confirmation:
        raise ValidationError("the booking number typed again does not match: nothing was erased",
                              {"fields": [{"field": "confirm", "problem": "must equal confirmation"}]})
    if req.hotelId != g.session.hotel_id or req.hotelId not in inst.config.property.hotels:
        raise HotelMismatch("admins erase guests of their own hotel only", {"hotelId": req.hotelId})
    out = erasure.request(inst.db(), hotel_id=req.hotelId, confirmation=req.confirmation,
                          user_id=g.session.user_id, actor=_by(), node=inst.config.property.kiosk_id,
                          now=inst.clock.now(), session_id=g.session.id, client=request.remote_addr)
    return ok(confirmation=out["confirmation"], erasedHere=out["erasedHere"], syncStatus="queued",
              outboxKey=out["outboxKey"])


# --- the seed's form: /api/admin?endpoint=… ------------------------------------------------------

def _seed_revoke():
    """``PUT ?endpoint=tokens {"jti": …}``."""
    req = parse(RevokeToken, request.get_json(silent=True))
    return _revoke(req.jti)


def _seed_session_detail():
    """``POST ?endpoint=sessions {"sessionId": …}``."""
    return session_detail(parse(TerminateSession, request.get_json(silent=True)).sessionId)


def _seed_end_session():
    """``DELETE ?endpoint=sessions``: the id in the JSON body or, without one, ``?sessionId=``."""
    body = request.get_json(silent=True)
    if body is None and "sessionId" in request.args:
        body = {"sessionId": request.args["sessionId"]}
    return _end_session(parse(TerminateSession, body).sessionId)


def _seed_resolve_dead():
    """``PUT ?endpoint=outbox {"id": …, "action": "retry" | "drop"}``."""
    return _resolve_dead(request.get_json(silent=True))


#: endpoint -> method -> the work; the methods are the ones docs/openapi.yaml lists per endpoint
SEED_FORM: dict[str, dict[str, object]] = {
    "tokens": {"GET": list_tokens, "POST": create_token, "PUT": _seed_revoke},
    "sessions": {"GET": list_sessions, "POST": _seed_session_detail, "DELETE": _seed_end_session},
    "analytics": {"GET": get_analytics},
    "export": {"GET": export_link, "POST": export_post},
    "outbox": {"GET": list_dead, "PUT": _seed_resolve_dead},
    "conflicts": {"GET": list_conflicts},
    "security": {"GET": list_security_events},
    "sync": {"GET": sync_summary},
}


@bp.route(PREFIX, methods=["GET", "POST", "PUT", "DELETE"])
@roles("admin")
def admin():
    """The seed's ``/api/admin?endpoint=…`` (a compatibility form of the routes above)."""
    name = request.args.get("endpoint", "")
    methods = SEED_FORM.get(name)
    if methods is None:
        raise NotFound(f"no admin endpoint {name!r}", {"endpoints": sorted(SEED_FORM)})
    view = methods.get(request.method)
    if view is None:
        allowed = list(methods)
        raise KioskError(f"{name} supports {', '.join(allowed)}",
                         {"method": request.method, "allowed": allowed}, code="METHOD_NOT_ALLOWED")
    return view()
