"""The seed's response shapes and the error handlers that produce them."""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

from flask import Flask, jsonify, make_response, render_template, request
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


#: the languages the screens speak (static/i18n.json); the first is the default
LANGUAGES = ("en", "de")
#: the statuses the browser's error page has its own words for; any other says "could not be shown"
PAGE_STATUSES = (403, 404, 405, 500)


@cache
def _strings() -> dict:
    return json.loads((Path(__file__).parent / "static" / "i18n.json").read_text(encoding="utf-8"))


def wants_html() -> bool:
    """Whether the error is for a person at a browser's address bar: a request that prefers
    ``text/html`` (a navigation) outside the API and the screens' feeds, not a script's
    ``fetch``/XHR.  Everything else (API clients, curl, no ``Accept``) gets the JSON body."""
    path = request.path
    if path == "/api" or path.startswith(("/api/", "/screen/", "/healthz")):
        return False
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return False
    if request.headers.get("Sec-Fetch-Mode", "navigate") != "navigate":  # a script's fetch
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def page_language() -> str:
    """The error page's language: the browser's preference among the screens' (else English)."""
    return request.accept_languages.best_match(LANGUAGES) or LANGUAGES[0]


def error_page(err: KioskError):
    """A small HTML page for a browser: the status, a sentence in the page's language and the
    way back to the lobby; no message text from the code, no trace."""
    lang = page_language()
    strings = _strings().get(lang) or _strings()["en"]
    status = err.http_status
    which = str(status) if status in PAGE_STATUSES else "other"

    def t(key: str) -> str:
        return strings.get(key) or _strings()["en"][key]

    resp = make_response(render_template(
        "error.html", lang=lang, status=status, code=err.code, which=which,
        title=t(f"errorpage.{which}.title"), text=t(f"errorpage.{which}.text"),
        label=t("errorpage.status").replace("{status}", str(status)), back=t("errorpage.back")), status)
    resp.headers["Cache-Control"] = "no-store"
    return resp


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
        resp = None
        if wants_html():  # a browser's navigation: a page; API clients: the error body
            try:
                resp = error_page(err)
            except Exception as exc:  # the page itself failed: the body below, never a bare 500
                log.error("error page failed", exc_info=exc, extra={"path": request.path})
        if resp is None:
            resp = jsonify(error_body(err, clock.now()))
            resp.status_code = err.http_status
        resp.vary.update(("Accept", "Accept-Language"))
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
