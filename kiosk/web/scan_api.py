"""POST /api/qr/scan, plus the caller's own session (whoami, logout).

A scan answers in one of two ways:

* to an **API client** (no ``X-Kiosk-Screen``): the seed's answer with ``sessionJWT``, a
  bearer credential; no cookie;
* to a **screen's script** (``X-Kiosk-Screen: 1``): no JWT in the body, the session as an
  HttpOnly cookie bound to a fresh screen key, and the key itself as ``screenKey`` for the
  script to keep in its origin's ``localStorage`` and send as ``X-Kiosk-Key``
  (kiosk/sessions.py, kiosk/web/rbac.py).  The lobby marks its scans ``X-Kiosk-Screen: lobby``:
  the session is then the lobby's visit (cookie claim ``vis``), ended by the lobby's inactivity
  log-out whatever the role (``sessions.lobby_idle_seconds``).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from .. import sessions
from .rbac import SCREEN_HEADER, public, roles
from .responses import ok

bp = Blueprint("scan", __name__)


def _instance():
    return current_app.config["KIOSK_INSTANCE"]


@bp.post("/api/qr/scan")
@public
def scan():
    inst = _instance()
    result = current_app.config["KIOSK_SCAN"].scan(inst.db(), request.get_json(silent=True),
                                                   client=request.remote_addr or "unknown")
    screen = request.headers.get(SCREEN_HEADER)
    if screen not in ("1", sessions.LOBBY):
        return ok(**result)
    return screen_answer(result, visit=sessions.LOBBY if screen == sessions.LOBBY else None)


def screen_answer(result: dict, visit: str | None = None):
    """A scan's answer for a screen: without the JWT, with the screen key; the bound cookie set
    (``visit="lobby"``: the session belongs to the lobby's visit)."""
    key, binding = sessions.new_screen_key()
    cookie = sessions.for_cookie(current_app.config["KIOSK_KEYS"].session_secret, result["sessionJWT"], binding,
                                 visit)
    resp = ok(**{k: v for k, v in result.items() if k not in ("sessionJWT", "success")}, screenKey=key)
    set_session_cookie(resp, cookie)
    return resp


def set_session_cookie(resp, jwt: str) -> None:
    """The session for the screens: HttpOnly (no script reads it), SameSite=Strict.

    ``jwt`` must be a cookie credential (:func:`kiosk.sessions.for_cookie`): a bearer
    credential in the cookie is refused, and so is a cookie without its screen key.
    """
    cfg = _instance().config.sessions
    resp.set_cookie(cfg.cookie_name, jwt, max_age=cfg.ttl_seconds, httponly=True,
                    samesite="Strict", secure=cfg.cookie_secure, path="/")


@bp.get("/api/session")
@roles("guest", "staff", "admin")
def whoami():
    s = g.session
    return ok(sessionId=s.id, hotelId=s.hotel_id,
              user={"id": s.user_id, "role": s.role, "name": s.display_name or s.user_id},
              idleSeconds=s.idle_seconds, visit=s.visit)


@bp.delete("/api/session")
@roles("guest", "staff", "admin")
def logout():
    inst = _instance()
    s = g.session
    result = sessions.terminate(inst.db(), s.id, hotels=[s.hotel_id], now=inst.clock.now(),
                                by=s.user_id, reason="logout", node=inst.config.property.kiosk_id)
    resp = ok(**result)
    resp.delete_cookie(inst.config.sessions.cookie_name, path="/")
    return resp


@bp.get("/healthz")
@public
def health():
    inst = _instance()
    inst.db().execute("SELECT 1").fetchone()
    return ok(status="ok", kioskId=inst.config.property.kiosk_id)
