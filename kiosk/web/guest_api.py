"""The screens' JSON: GET /api/guest/home, POST /api/guest/requests, GET /api/staff/tasks."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, g, request

from .. import guest
from .rbac import roles
from .responses import ok

bp = Blueprint("guest", __name__)


def _inst():
    return current_app.config["KIOSK_INSTANCE"]


@bp.get("/api/guest/home")
@roles("guest")
def guest_home():
    inst = _inst()
    today = datetime.fromtimestamp(inst.clock.now(), UTC).date()
    return ok(**guest.home(inst.db(), g.session.hotel_id, g.session, today))


@bp.post("/api/guest/requests")
@roles("guest")
def guest_request():
    inst = _inst()
    result = guest.request(inst.db(), request.get_json(silent=True), hotel_id=g.session.hotel_id,
                           session=g.session, now=inst.clock.now(), node=inst.config.property.kiosk_id,
                           window=inst.config.tickets.duplicate_window_seconds)
    return ok(200 if result["duplicateOf"] else 201, **result)


@bp.get("/api/staff/tasks")
@roles("staff", "admin")
def staff_tasks():
    return ok(**guest.staff_tasks(_inst().db(), g.session.hotel_id, g.session.user_id))
