"""The screens' JSON.

The guest's screen: ``GET /api/guest/home``, ``GET|POST /api/guest/requests``,
``POST /api/guest/offers/<offerId>/accept``, ``POST /api/guest/questions``,
``POST /api/guest/voice`` — guest role, the session's own reservation only.

The staff terminal's work queue: ``GET /api/staff/tasks`` (the one list, filtered; the
``tasks`` and ``workOrders`` arrays scripts read are kept), ``POST
/api/staff/tasks/<kind>/<id>`` (accept, start, done, assign, …) and ``GET
/api/staff/events`` (server-sent events: ``event: queue`` whenever the hotel's queue
changed, so the terminal refreshes without a reload) — staff and admin roles, the
session's hotel only.
"""

from __future__ import annotations

import json
import queue as stdqueue
import time
from functools import wraps

from flask import Blueprint, current_app, g, request

from .. import audit, guest
from .. import queue as work_queue
from ..clock import local_date
from ..errors import RateLimited
from ..events import Bus
from ..ratelimit import AttemptLimiter
from .capacity import event_stream, model_run
from .rbac import roles
from .responses import ok

bp = Blueprint("guest", __name__)

#: state-changing requests under these paths may change a hotel's work queue
CHANGING = ("/api/pms/", "/api/tickets/", "/api/approvals", "/api/ai/trigger", "/api/guest/requests",
            "/api/guest/questions", "/api/guest/voice", "/api/staff/")
FEED_TICK_SECONDS = 2.0   # how often the feed looks for changes made by other processes (agent, schedules)
KEEPALIVE_SECONDS = 15.0


def _inst():
    return current_app.config["KIOSK_INSTANCE"]


def queue_bus(app) -> Bus:
    """The in-process bus of work-queue changes (apart from the lobby's scan feed)."""
    return app.config.setdefault("KIOSK_QUEUE_EVENTS", Bus())


@bp.after_app_request
def _announce(resp):
    """Every successful change that may touch a hotel's queue is announced on the bus."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and resp.status_code < 400 \
            and request.path.startswith(CHANGING):
        s = g.get("session")
        if s is not None:
            queue_bus(current_app).publish({"type": "queue", "hotelId": s.hotel_id})
    return resp


def _ctx(inst):
    return dict(now=inst.clock.now(), node=inst.config.property.kiosk_id,
                window=inst.config.tickets.duplicate_window_seconds)


def guest_limited(what: str):
    """At most ``guest.max_<what>_per_minute`` attempts per guest session in any 60 s, or
    ``429 RATE_LIMITED`` (``retryAfter``, ``Retry-After``) before the body is even read; the
    first refusal of a run is audited as ``security.rate_limited``."""
    def deco(view):
        @wraps(view)
        def limited(*args, **kwargs):
            inst, s = _inst(), g.session
            limiter = current_app.config.setdefault("KIOSK_GUEST_LIMITER", AttemptLimiter(60.0))
            now = inst.clock.now()
            limit = getattr(inst.config.guest, f"max_{what}_per_minute")
            try:
                limiter.hit(f"{s.id}:{what}", now, limit, scope=what,
                            message="one moment, please: you have sent several just now; try again shortly")
            except RateLimited as e:
                if getattr(e, "first", False):
                    audit.record_now(inst.db(), hotel_id=s.hotel_id, event="security.rate_limited",
                                     outcome="refused", at=now, actor=s.user_id, session_id=s.id,
                                     code=e.code, details={"scope": what, "limit": limit, "path": request.path})
                raise
            request.get_json(silent=True)  # text checked even where the view reads no body (offers)
            return view(*args, **kwargs)
        return limited
    return deco


# --- the guest's screen ----------------------------------------------------------------------

@bp.get("/api/guest/home")
@roles("guest")
def guest_home():
    inst = _inst()
    today = local_date(inst.clock.now(), inst.config.property.timezone)
    return ok(**guest.home(inst.db(), g.session.hotel_id, g.session, today,
                           currency=inst.config.property.currency, lang=request.args.get("lang")))


@bp.post("/api/guest/requests")
@roles("guest")
@guest_limited("requests")
def guest_request():
    inst = _inst()
    result = guest.request(inst.db(), request.get_json(silent=True), hotel_id=g.session.hotel_id,
                           session=g.session, **_ctx(inst))
    return ok(200 if result["duplicateOf"] else 201, **result)


@bp.get("/api/guest/requests")
@roles("guest")
def guest_requests():
    inst = _inst()
    return ok(requests=guest.my_requests(inst.db(), g.session.hotel_id, g.session, inst.clock.now()))


@bp.post("/api/guest/offers/<offer_id>/accept")
@roles("guest")
@guest_limited("offers")
def guest_offer_accept(offer_id: str):
    inst = _inst()
    body, created = guest.accept_offer(inst.db(), g.session.hotel_id, g.session, offer_id,
                                       currency=inst.config.property.currency, now=inst.clock.now(),
                                       node=inst.config.property.kiosk_id)
    return ok(201 if created else 200, **body)


@bp.post("/api/guest/questions")
@roles("guest")
@guest_limited("questions")  # before the model gate: a refused question takes no place in it
@model_run  # guest-messaging answers it
def guest_question():
    inst = _inst()
    return ok(**guest.ask(inst, inst.db(), g.session, request.get_json(silent=True), **_ctx(inst)))


@bp.post("/api/guest/voice")
@roles("guest")
@model_run  # voice-ai: seconds of a model worker
def guest_voice():
    inst = _inst()
    request.max_content_length = inst.config.server.max_media_body_bytes  # speech is bigger than a form
    return ok(**guest.voice(inst, inst.db(), g.session, request.get_json(silent=True), **_ctx(inst)))


# --- the staff terminal's work queue ----------------------------------------------------------

@bp.get("/api/staff/tasks")
@roles("staff", "admin")
def staff_tasks():
    inst = _inst()
    db, s = inst.db(), g.session
    listing = work_queue.listing(db, s.hotel_id, s, now=inst.clock.now(), scope=request.args.get("scope", "all"),
                                 room=request.args.get("room") or None, kind=request.args.get("kind") or None,
                                 tz=inst.config.property.timezone)
    return ok(**guest.staff_tasks(db, s.hotel_id, s.user_id), **listing, currency=inst.config.property.currency)


@bp.post("/api/staff/tasks/<kind>/<item_id>")
@roles("staff", "admin")
def staff_task_action(kind: str, item_id: str):
    inst = _inst()
    s = g.session
    return ok(**work_queue.act(inst.db(), s.hotel_id, kind, item_id, request.get_json(silent=True), by=s.user_id,
                               now=inst.clock.now(), node=inst.config.property.kiosk_id))


@bp.get("/api/staff/events")
@roles("staff", "admin")
def staff_events():
    """``event: queue`` when the session's hotel's queue changed (here, or in another process:
    the feed compares a fingerprint of the open queue every couple of seconds once the
    database changed); ``event: ended`` when the session ended.  Keep-alive comments."""
    inst = _inst()
    s = g.session
    bus = queue_bus(current_app)

    def stream(gone):
        sub = bus.subscribe()
        db = inst.db()
        try:
            sig = work_queue.signature(db, s.hotel_id)
            version = db.execute("PRAGMA data_version").fetchone()[0]
            quiet_since = time.monotonic()
            yield "retry: 2000\n\n"
            yield f"event: hello\ndata: {json.dumps({'hotelId': s.hotel_id})}\n\n"
            while not gone():
                try:
                    event = sub.get(timeout=FEED_TICK_SECONDS)
                except stdqueue.Empty:
                    event = None
                changed = event is not None and event.get("hotelId") == s.hotel_id
                if event is None:
                    row = db.execute("SELECT ended_at, expires_at FROM sessions WHERE id = ?", [s.id]).fetchone()
                    if row is None or row[0] is not None or row[1] <= inst.clock.now():
                        yield "event: ended\ndata: {}\n\n"
                        return
                    now_version = db.execute("PRAGMA data_version").fetchone()[0]
                    if now_version != version:
                        version = now_version
                        fresh = work_queue.signature(db, s.hotel_id)
                        changed, sig = fresh != sig, fresh
                if changed:
                    quiet_since = time.monotonic()
                    yield f"event: queue\ndata: {json.dumps({'hotelId': s.hotel_id})}\n\n"
                elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
        finally:
            bus.unsubscribe(sub)

    # a place in the feeds' gate (per session: a staff member's tabs), or 429 BUSY: the
    # terminal then refreshes by polling and tries the feed again after Retry-After
    return event_stream(s.id, stream)
