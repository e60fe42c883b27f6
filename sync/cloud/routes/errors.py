"""One error vocabulary from library to HTTP: a :class:`KioskError` (or an HTTP error of
werkzeug's, or anything unexpected) is answered ``{"error": {"code", "message",
"details"}}`` with its status."""

from __future__ import annotations

import logging
import time

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from kiosk.errors import KioskError

log = logging.getLogger("kiosk.cloud")

_HTTP_CODES = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}

_last_unavailable_log = [0.0]


def log_unavailable(err: KioskError) -> None:
    """A database that does not answer is logged once a minute, not once per request."""
    if err.code == "DATABASE_UNAVAILABLE" and time.monotonic() - _last_unavailable_log[0] >= 60:
        _last_unavailable_log[0] = time.monotonic()
        log.error("database unavailable", extra={"reason": err.message})


def unavailable(exc: Exception) -> KioskError:
    """``DATABASE_UNAVAILABLE`` for what the app's storage raised, in its words."""
    return current_app.config["CLOUD_STORAGE"].unavailable(exc)


def error(err: KioskError):
    log_unavailable(err)
    resp = jsonify({"error": err.to_dict()})
    resp.status_code = err.http_status
    if err.http_status == 401:
        resp.headers["WWW-Authenticate"] = "Bearer"
    if err.http_status == 429 and isinstance(err.details, dict) and "retryAfter" in err.details:
        resp.headers["Retry-After"] = str(err.details["retryAfter"])
    return resp


def install(app: Flask) -> None:
    app.register_error_handler(KioskError, error)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = _HTTP_CODES.get(exc.code or 500)
        if code is None:
            return _unexpected(exc)
        resp = error(KioskError(exc.description or exc.name, {}, code=code))
        if getattr(exc, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.error("unhandled error", exc_info=exc, extra={"path": request.path})
        return error(KioskError("something went wrong in the cloud; try again later", {}))
