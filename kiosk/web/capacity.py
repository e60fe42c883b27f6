"""Long work in the web layer goes through the kiosk's gates (:mod:`kiosk.admission`).

* :func:`model_run` wraps a view that runs a model: one place per session and a few in
  total; past that the request is ``429 BUSY`` at once.  A streamed answer keeps its place
  until the stream ends.
* :func:`event_stream` answers a live feed: it takes a place in the feeds' gate (or is
  ``429 BUSY``), gives it back when the feed ends for any reason, and lets the feed see a
  client that left (waitress' ``client_disconnected``) within one tick instead of at the
  next failed write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps

from flask import Response, current_app, g, request

from ..admission import Capacity


def capacity() -> Capacity:
    return current_app.config["KIOSK_CAPACITY"]


def model_run(view):
    """The view runs a model as the session's holder: admitted, or BUSY."""
    @wraps(view)
    def admitted(*args, **kwargs):
        gate = capacity().models
        key = g.session.id
        gate.enter(key)
        release = gate.release_once(key)
        try:
            resp = current_app.make_response(view(*args, **kwargs))
        except BaseException:
            release()
            raise
        if resp.is_streamed:  # the models go on while the answer streams: the place is kept till its end
            resp.call_on_close(release)
        else:
            release()
        return resp
    return admitted


def client_gone() -> Callable[[], bool]:
    """Whether the client of this request has closed its connection (always False where the
    server cannot tell)."""
    return request.environ.get("waitress.client_disconnected") or (lambda: False)


def event_stream(key: str, events: Callable[[Callable[[], bool]], Iterator[str]]) -> Response:
    """A ``text/event-stream`` answer from ``events(gone)``, admitted under the feeds' gate.

    ``events`` is called with the client-gone check and yields the stream's text; it should
    look at ``gone()`` at least every couple of seconds and return when it is true.  It runs
    outside the request's context: take what it needs from the app before.
    """
    gate = capacity().streams
    gate.enter(key)
    release = gate.release_once(key)
    gone = client_gone()

    def body():
        try:
            yield from events(gone)
        finally:
            release()

    resp = Response(body(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    resp.call_on_close(release)  # also when the server closes it before the first chunk
    return resp
