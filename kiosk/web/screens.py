"""The kiosk's screens: the lobby (``/``) and the staff terminal (``/staff``), plain HTML,
CSS and JavaScript served by Flask (no build step), and the lobby's live feed of camera
scans as server-sent events (``/screen/events``).

The feed, its claims (``POST /screen/claim``) and the camera preview are bound to the
kiosk's own screen: loopback connections of the kiosk's user or of ``screen.allowed_uids``
only (``screen_binding``).  A camera scan crosses the feed as a one-time claim, never as
a session; the code it was made from is consumed only when the lobby redeems the claim, so
a scan the lobby does not take (someone is using the screen) leaves the code usable.
"""

from __future__ import annotations

import json
import queue

from flask import Blueprint, Response, current_app, render_template, request

from .. import audit, sessions
from ..errors import Forbidden, SessionExpired, ValidationError
from .capacity import event_stream
from .rbac import public
from .scan_api import screen_answer
from .screen_binding import peer_allowed

bp = Blueprint("screens", __name__)

KEEPALIVE_SECONDS = 15
TICK_SECONDS = 1.0  # how often a feed looks whether its screen is still there


def _own_screen(what: str) -> None:
    """Refuse anything but the kiosk's own screen (and say so in the audit log)."""
    inst = current_app.config["KIOSK_INSTANCE"]
    if not peer_allowed(request.environ, inst.config.screen.allowed_uids):
        db = inst.db()
        audit.record_now(db, hotel_id=inst.config.property.hotels[0], event="security.screen_refused",
                         outcome="refused", at=inst.clock.now(), client=request.remote_addr, code="FORBIDDEN",
                         details={"path": request.path})
        raise Forbidden(f"{what} is only for the kiosk's own screen", {"remote": request.remote_addr})


def _for_screen(event: dict, claims) -> dict:
    """What the lobby gets of a scan: a one-time claim instead of the session."""
    if event.get("type") == "scan" and event.get("ok") and ("pending" in event or "result" in event):
        code = claims.code_for(event)
        role = (event.get("pending") or event.get("result"))["user"]["role"]
        return {"type": "scan", "ok": True, "claim": code, "role": role}
    return {k: v for k, v in event.items() if not k.startswith("_")}


@bp.get("/")
@public
def lobby():
    return render_template("lobby.html", camera=current_app.config.get("KIOSK_CAMERA") is not None,
                           idle_seconds=current_app.config["KIOSK_INSTANCE"].config.sessions.lobby_idle_seconds)


@bp.get("/staff")
@public
def staff():
    return render_template("staff.html")


@bp.get("/screen/events")
@public
def events():
    _own_screen("the scan feed")
    bus, claims = current_app.config["KIOSK_EVENTS"], current_app.config["KIOSK_CLAIMS"]

    def stream(gone):
        q = bus.subscribe()
        try:
            yield "retry: 2000\n\n"
            quiet = 0.0
            while not gone():
                try:
                    event = q.get(timeout=TICK_SECONDS)
                except queue.Empty:
                    quiet += TICK_SECONDS
                    if quiet >= KEEPALIVE_SECONDS:
                        quiet = 0.0
                        yield ": keep-alive\n\n"
                    continue
                quiet = 0.0
                shown = _for_screen(event, claims)
                yield f"event: {shown.get('type', 'message')}\ndata: {json.dumps(shown)}\n\n"
        finally:
            bus.unsubscribe(q)

    # one lobby screen has one feed; the key is the connection, so only the total bound applies
    return event_stream(f"screen:{request.remote_addr}:{request.environ.get('REMOTE_PORT')}", stream)


@bp.post("/screen/claim")
@public
def claim():
    """Redeem a camera scan's claim: the code is consumed and the session opened now (one
    transaction, kiosk/scan.py; refused as a scan would be if the code was used or revoked
    meanwhile), answered as a screen gets it (no JWT; the session as a cookie bound to a fresh
    ``screenKey``, kiosk/web/scan_api.py ``screen_answer``) and as the lobby's visit."""
    _own_screen("a camera scan")
    body = request.get_json(silent=True)
    code = body.get("claim") if isinstance(body, dict) else None
    if not isinstance(code, str) or not 8 <= len(code) <= 64 or set(body) != {"claim"}:
        raise ValidationError("give the claim from the scan feed", {"fields": [{"field": "claim"}]})
    result = current_app.config["KIOSK_CLAIMS"].redeem(code)
    if result is None:
        raise SessionExpired("this scan was already taken or is too old; scan again", {})
    if "pending" in result:
        inst = current_app.config["KIOSK_INSTANCE"]
        result = current_app.config["KIOSK_SCAN"].scan(inst.db(), result["pending"]["scan"], client="camera")
    return screen_answer(result, visit=sessions.LOBBY)


@bp.get("/screen/preview.mjpg")
@public
def preview():
    """The camera's newest frame, as MJPEG, for the lobby's live preview (404 without a camera)."""
    camera = current_app.config.get("KIOSK_CAMERA")
    if camera is None:
        from ..errors import NotFound
        raise NotFound("no camera preview here", {})
    _own_screen("the camera preview")  # it shows the people in the lobby

    def frames():
        boundary = b"--frame\r\n"
        for jpeg in camera.jpeg_frames():
            yield boundary + b"Content-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode() \
                + b"\r\n\r\n" + jpeg + b"\r\n"

    return Response(frames(), mimetype="multipart/x-mixed-replace; boundary=frame")
