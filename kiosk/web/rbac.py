"""Role-based access, deny by default.

Every view declares a policy with :func:`public` or :func:`roles`; a view
without one is refused for everybody (and a test walks the URL map to make
sure none is missing).  For protected views the session comes from
``Authorization: Bearer`` or the session cookie, is checked against its row,
and is put on ``g.session``.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request

from .. import audit, sessions
from ..errors import Forbidden

POLICY_ATTR = "_kiosk_policy"


def public(view):
    setattr(view, POLICY_ATTR, "public")
    return view


def roles(*allowed: str):
    def deco(view):
        setattr(view, POLICY_ATTR, frozenset(allowed))
        return view
    return deco


def policy_of(view) -> object | None:
    view = getattr(view, "view_class", view)
    while view is not None:
        p = getattr(view, POLICY_ATTR, None)
        if p is not None:
            return p
        view = getattr(view, "__wrapped__", None)
    return None


def credential() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.cookies.get(current_app.config["KIOSK_INSTANCE"].config.sessions.cookie_name)


def install(app: Flask) -> None:
    @app.before_request
    def _enforce():
        if request.endpoint is None:  # 404/405: handled by the error handlers
            return None
        view = app.view_functions.get(request.endpoint)
        # Flask's own /static route serves the screens' CSS, JavaScript and translations
        policy = "public" if request.endpoint == "static" else policy_of(view)
        if policy == "public":
            return None
        inst = app.config["KIOSK_INSTANCE"]
        now = inst.clock.now()
        db = inst.db()
        s = sessions.authenticate(db, app.config["KIOSK_KEYS"].session_secret, credential(), now=now)
        g.session = s
        if not isinstance(policy, frozenset) or s.role not in policy:
            audit.record_now(db, hotel_id=s.hotel_id, event="security.forbidden", outcome="refused",
                             at=now, actor=s.user_id, session_id=s.id, client=request.remote_addr,
                             code="FORBIDDEN", details={"path": request.path, "method": request.method,
                                                        "role": s.role})
            raise Forbidden("your role may not do this", {"role": s.role})
        return None

