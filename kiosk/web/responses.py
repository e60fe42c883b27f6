"""The seed's response shapes and the error handlers that produce them."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..clock import iso
from ..errors import KioskError
from ..validation import check_text, loads_bounded

log = logging.getLogger("kiosk.http")

_HTTP_CODES = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 429: "RATE_LIMITED"}


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


def ok(status: int = 200, /, **body):
    resp = jsonify({"success": True, **body})
    resp.status_code = status
    return resp


def error_body(err: KioskError, now: float) -> dict:
    return {"success": False, "error": err.to_dict(), "timestamp": iso(now)}


class BoundedJSON(DefaultJSONProvider):
    """Request bodies nested deeper than ``validation.MAX_JSON_DEPTH`` are not JSON to us
    (VALIDATION_ERROR), rather than a RecursionError (a 500) somewhere later.

    Text is normalised here, at the edge, for every route at once: a string (or a key) holding
    a NUL or a lone surrogate (``"\\ud800"``) is VALIDATION_ERROR naming the field, raised from
    ``request.get_json`` even with ``silent=True`` (it is no ValueError), before the route has
    used the body: nothing is written.  (A body that is not JSON stays ``None`` there.)"""

    def loads(self, s, **kwargs):
        return check_text(loads_bounded(s, **kwargs))


def install(app: Flask) -> None:
    clock = app.config["KIOSK_INSTANCE"].clock
    sort_keys = app.json.sort_keys
    app.json = BoundedJSON(app)
    app.json.sort_keys = sort_keys

    @app.errorhandler(KioskError)
    def _kiosk_error(err: KioskError):
        resp = jsonify(error_body(err, clock.now()))
        resp.status_code = err.http_status
        if err.code in ("RATE_LIMITED", "BUSY") and "retryAfter" in err.details:
            resp.headers["Retry-After"] = str(err.details["retryAfter"])
        if err.code == "METHOD_NOT_ALLOWED" and err.details.get("allowed"):
            resp.headers["Allow"] = ", ".join(err.details["allowed"])
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = _HTTP_CODES.get(exc.code or 500, "INTERNAL_ERROR")
        err = KioskError(exc.description or exc.name, {}, code=code)
        if exc.code not in _HTTP_CODES:
            return _unexpected(exc)
        resp = _kiosk_error(err)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            resp.headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # RFC 9110: a 405 says what is allowed
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.error("unhandled error", exc_info=exc, extra={"path": request.path})
        return _kiosk_error(KioskError("something went wrong on the kiosk; staff have been notified",
                                       {}, code="INTERNAL_ERROR"))

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        # the screens load only their own files: no inline script or style, no other origin,
        # and no page of another site may frame them (clickjacking the staff or admin screen)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if request.path.startswith("/api/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp
