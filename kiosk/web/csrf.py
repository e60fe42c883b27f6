"""Cross-site request forgery protection for the screens' state-changing requests.

The screens authenticate with the HttpOnly session cookie, which a browser attaches to
any request to the kiosk — also to one a hostile page makes it send.  So a request that
changes something and rides on the cookie must also prove that it comes from one of the
kiosk's own pages:

* **same origin** — the browser's ``Sec-Fetch-Site`` (when sent) is ``same-origin`` (or
  ``none``: typed by the user), and ``Origin`` (when sent) is the kiosk's own;
* **a CSRF token** — ``HMAC-SHA256(session secret, "csrf:" + session id)``, rendered into
  the page (``<meta name="csrf-token">``) and sent back by its JavaScript as the
  ``X-CSRF-Token`` header.  It is bound to the session (a new scan, a new token), needs
  no storage, and another site can neither read nor compute it.

Requests with ``Authorization: Bearer`` are not checked: a browser never adds that header
by itself, so a cross-site page cannot make one.  GET and HEAD change nothing and are
not checked either.

Before any of this, :mod:`kiosk.web.rbac` has already refused a cookie that came without
the screen key it is bound to (``X-Kiosk-Key``, which only the kiosk's own origin can
read) and any ``Host`` not in ``server.allowed_hosts``; these checks are the second line
for the requests that do carry the key.

:func:`install` checks the paths in ``PROTECTED`` (the admin API) for both; every other
unsafe request without ``Authorization: Bearer`` must at least be same-origin.  Other
blueprints can call :func:`require` for their own views.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request

from .. import audit
from ..errors import Forbidden

HEADER = "X-CSRF-Token"
META = "csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: path prefixes whose cookie-authenticated, state-changing requests need the token
PROTECTED = ("/api/admin",)


def token_for(secret: bytes, session_id: str) -> str:
    """The session's CSRF token (hex)."""
    return hmac.new(secret, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()


def valid(secret: bytes, session_id: str, supplied: str | None) -> bool:
    return bool(supplied) and hmac.compare_digest(token_for(secret, session_id), supplied)


def same_origin() -> bool:
    """Whether the browser says the request comes from a page of this kiosk.

    Headers a client did not send count as agreement (curl, tests, old browsers);
    the token check is what a forged request cannot pass.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is not None:
        o, h = urlsplit(origin), urlsplit(request.host_url)
        if (o.scheme, o.netloc) != (h.scheme, h.netloc):
            return False
    return True


def uses_cookie() -> bool:
    return request.headers.get("Authorization", "")[:7].lower() != "bearer "


def require(session) -> None:
    """Refuse (403 ``FORBIDDEN``, audited) a cookie-authenticated unsafe request without proof."""
    if request.method not in UNSAFE or not uses_cookie():
        return
    secret = current_app.config["KIOSK_KEYS"].session_secret
    reason = None
    if not same_origin():
        reason = "cross-site"
    elif not valid(secret, session.id, request.headers.get(HEADER)):
        reason = "csrf-token"
    if reason is None:
        return
    inst = current_app.config["KIOSK_INSTANCE"]
    audit.record_now(inst.db(), hotel_id=session.hotel_id, event="security.csrf", outcome="refused",
                     at=inst.clock.now(), actor=session.user_id, session_id=session.id,
                     client=request.remote_addr, code="FORBIDDEN",
                     details={"path": request.path, "method": request.method, "reason": reason})
    raise Forbidden("this request did not come from the kiosk's own page; reload it and try again",
                    {"reason": reason})


def install(app: Flask) -> None:
    """Check the ``PROTECTED`` paths; call after :func:`rbac.install` (it sets ``g.session``)."""
    @app.before_request
    def _csrf():
        session = g.get("session")
        if session is not None and request.path.startswith(PROTECTED):
            require(session)
        elif request.method in UNSAFE and uses_cookie() and not same_origin():
            # every other state-changing request a browser sends (the scan too: a forged
            # login) must come from the kiosk's own pages, whatever SameSite does
            inst = current_app.config["KIOSK_INSTANCE"]
            audit.record_now(inst.db(), hotel_id=session.hotel_id if session else None, event="security.csrf",
                             outcome="refused", at=inst.clock.now(), client=request.remote_addr, code="FORBIDDEN",
                             details={"path": request.path, "method": request.method, "reason": "cross-site"})
            raise Forbidden("this request did not come from the kiosk's own page; reload it and try again",
                            {"reason": "cross-site"})
