"""The kiosk's screens: the lobby (``/``) and the staff terminal (``/staff``), plain HTML,
CSS and JavaScript served by Flask (no build step), and the lobby's live feed of camera
scans as server-sent events (``/screen/events``).

The event stream carries the session a camera scan opened, so it is served only to the
kiosk's own browser (a loopback address), like the screens' purpose says.
"""

from __future__ import annotations

import json
import queue

from flask import Blueprint, Response, current_app, render_template, request, stream_with_context

from ..errors import Forbidden
from .rbac import public

bp = Blueprint("screens", __name__)

KEEPALIVE_SECONDS = 15
LOOPBACK = ("127.0.0.1", "::1")


@bp.get("/")
@public
def lobby():
    return render_template("lobby.html", camera=current_app.config.get("KIOSK_CAMERA") is not None)


@bp.get("/staff")
@public
def staff():
    return render_template("staff.html")


@bp.get("/screen/events")
@public
def events():
    if request.remote_addr not in LOOPBACK:
        raise Forbidden("the scan feed is only for the kiosk's own screen", {"remote": request.remote_addr})
    bus = current_app.config["KIOSK_EVENTS"]
    q = bus.subscribe()

    def stream():
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    event = q.get(timeout=KEEPALIVE_SECONDS)
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n"
        finally:
            bus.unsubscribe(q)

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@bp.get("/screen/preview.mjpg")
@public
def preview():
    """The camera's newest frame, as MJPEG, for the lobby's live preview (404 without a camera)."""
    camera = current_app.config.get("KIOSK_CAMERA")
    if camera is None or request.remote_addr not in LOOPBACK:
        from ..errors import NotFound
        raise NotFound("no camera preview here", {})

    def frames():
        boundary = b"--frame\r\n"
        for jpeg in camera.jpeg_frames():
            yield boundary + b"Content-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode() \
                + b"\r\n\r\n" + jpeg + b"\r\n"

    return Response(frames(), mimetype="multipart/x-mixed-replace; boundary=frame")
