"""The admin dashboard screen (``/admin``): server-rendered HTML, its data from the admin API.

The page authenticates with the HttpOnly session cookie only (its JavaScript never sees
a session JWT):

* no session, or one that has ended → a login prompt (scan or paste an admin code);
* a guest or staff session → 403, an HTML page that says so (audited like the API's 403);
* an admin session → the dashboard, with the session's CSRF token in
  ``<meta name="csrf-token">`` for the admin API's state-changing calls (kiosk/web/csrf.py).

Listed in docs/screens.md with the other screens.
"""

from __future__ import annotations

from flask import Blueprint, current_app, make_response, render_template, request

from .. import audit, sessions
from ..errors import SessionExpired, Unauthorized
from . import csrf
from .rbac import public

bp = Blueprint("admin_screens", __name__)


def _page(status: int, **ctx):
    resp = make_response(render_template("admin.html", **ctx), status)
    resp.headers["Cache-Control"] = "no-store"  # the page carries the session's CSRF token
    return resp


@bp.get("/admin")
@public  # the view decides: login prompt, 403 page or the dashboard
def dashboard():
    inst = current_app.config["KIOSK_INSTANCE"]
    secret = current_app.config["KIOSK_KEYS"].session_secret
    now = inst.clock.now()
    db = inst.db()
    try:
        s = sessions.authenticate(db, secret, request.cookies.get(inst.config.sessions.cookie_name), now=now,
                                  idle=sessions.IdlePolicy.of(inst.config))
    except (Unauthorized, SessionExpired):
        return _page(200, mode="login")
    if s.role != "admin":
        audit.record_now(db, hotel_id=s.hotel_id, event="security.forbidden", outcome="refused", at=now,
                         actor=s.user_id, session_id=s.id, client=request.remote_addr, code="FORBIDDEN",
                         details={"path": request.path, "method": request.method, "role": s.role})
        return _page(403, mode="forbidden", role=s.role, name=s.display_name or s.user_id)
    return _page(200, mode="dashboard", name=s.display_name or s.user_id, hotel=s.hotel_id,
                 csrf_token=csrf.token_for(secret, s.id), expires_at=s.expires_at, session_id=s.id)
