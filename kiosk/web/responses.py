"""The seed's response shapes and the error handlers that produce them."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..clock import iso
from ..errors import KioskError

log = logging.getLogger("kiosk.http")

_HTTP_CODES = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 429: "RATE_LIMITED"}


def ok(status: int = 200, /, **body):
    resp = jsonify({"success": True, **body})
    resp.status_code = status
    return resp


def error_body(err: KioskError, now: float) -> dict:
    return {"success": False, "error": err.to_dict(), "timestamp": iso(now)}


def install(app: Flask) -> None:
    clock = app.config["KIOSK_INSTANCE"].clock

    @app.errorhandler(KioskError)
    def _kiosk_error(err: KioskError):
        resp = jsonify(error_body(err, clock.now()))
        resp.status_code = err.http_status
        if err.code == "RATE_LIMITED" and "retryAfter" in err.details:
            resp.headers["Retry-After"] = str(err.details["retryAfter"])
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = _HTTP_CODES.get(exc.code or 500, "INTERNAL_ERROR")
        err = KioskError(exc.description or exc.name, {}, code=code)
        return _kiosk_error(err) if exc.code in _HTTP_CODES else _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.error("unhandled error", exc_info=exc, extra={"path": request.path})
        return _kiosk_error(KioskError("something went wrong on the kiosk; staff have been notified",
                                       {}, code="INTERNAL_ERROR"))

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp
