"""POST /api/lobby/sign-in: a guest signs in with the booking number and last name
(kiosk/booking.py).  It answers as the scan does (kiosk/web/scan_api.py): ``sessionJWT`` to
an API client; the bound cookie and ``screenKey`` to a screen's script (``X-Kiosk-Screen: 1``,
or ``lobby``: the session is then the lobby's visit)."""

from __future__ import annotations

from flask import Blueprint, current_app, request

from .. import booking, sessions
from .rbac import SCREEN_HEADER, public
from .responses import ok
from .scan_api import screen_answer

bp = Blueprint("lobby", __name__)


@bp.post("/api/lobby/sign-in")
@public
def sign_in():
    inst = current_app.config["KIOSK_INSTANCE"]
    result = booking.sign_in(current_app.config["KIOSK_SCAN"], inst.db(), request.get_json(silent=True),
                             client=request.remote_addr or "unknown")
    screen = request.headers.get(SCREEN_HEADER)
    if screen not in ("1", sessions.LOBBY):
        return ok(**result)
    return screen_answer(result, visit=sessions.LOBBY if screen == sessions.LOBBY else None)
