"""POST /api/pms/update, POST /api/tickets/auto and POST /api/approvals — staff and admin, own hotel only."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from .. import tickets, workorders
from .rbac import roles
from .responses import ok

bp = Blueprint("ops", __name__)


def _ctx():
    inst = current_app.config["KIOSK_INSTANCE"]
    return inst, dict(hotel_id=g.session.hotel_id, by=g.session.user_id, now=inst.clock.now(),
                      node=inst.config.property.kiosk_id)


@bp.post("/api/pms/update")
@roles("staff", "admin")
def pms_update():
    inst, ctx = _ctx()
    return ok(**workorders.update(inst.db(), request.get_json(silent=True), **ctx))


@bp.post("/api/tickets/auto")
@roles("staff", "admin")
def ticket_auto():
    inst, ctx = _ctx()
    result = tickets.create(inst.db(), request.get_json(silent=True), **ctx,
                            window=inst.config.tickets.duplicate_window_seconds)
    return ok(200 if result["duplicateOf"] else 201, **result)


@bp.post("/api/approvals")
@roles("staff", "admin")
def approval():
    """Approve or reject a PMS correction a model proposed (held as an approval task)."""
    from ..models import actions

    inst, ctx = _ctx()
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    task_id, decision = body.get("taskId"), body.get("decision")
    if not isinstance(task_id, str) or not isinstance(decision, str) or set(body) - {"taskId", "decision"}:
        from ..errors import ValidationError
        raise ValidationError("give taskId and decision (approve or reject)", {"fields": [{"field": "taskId"},
                                                                                         {"field": "decision"}]})
    return ok(**actions.decide(inst.db(), ctx["hotel_id"], task_id, decision, by=ctx["by"], now=ctx["now"],
                               node=ctx["node"]))
