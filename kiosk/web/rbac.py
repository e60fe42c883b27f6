"""Role-based access, deny by default; which Host names the kiosk answers to.

Every view declares a policy with :func:`public` or :func:`roles`; a view
without one is refused for everybody (and a test walks the URL map to make
sure none is missing).  For protected views the session comes from
``Authorization: Bearer`` or the session cookie, is checked against its row,
and is put on ``g.session``.

Bearer tokens and cookies are different credentials (kiosk/sessions.py): a cookie
credential sent as a bearer token is refused, and a cookie counts only together with
the screen key it is bound to, which the screens' scripts send as ``X-Kiosk-Key`` (an
``EventSource`` cannot send headers: it puts it in the ``kioskKey`` query parameter,
GET only).  A browser sends its cookies to any port of the host — to another local
user's program too — so the cookie alone must not be enough.  Such a refusal is
``401 UNAUTHORIZED``, audited as ``security.session_refused``, and clears the cookie.

Before any of that, the request's ``Host`` (port stripped) must be one of
``server.allowed_hosts`` (plus ``server.host`` when it is a specific address), else
``421 HOST_NOT_ALLOWED``: a page of another site that re-points its own name at
127.0.0.1 (DNS rebinding) is same-origin with itself, not with the kiosk.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request

from .. import audit, sessions
from ..errors import Forbidden, HostNotAllowed, Unauthorized

POLICY_ATTR = "_kiosk_policy"
#: the screen key, on every request a screen's script makes
KEY_HEADER = "X-Kiosk-Key"
#: the screen key on an EventSource URL (GET only; never logged: logs carry request.path)
KEY_PARAM = "kioskKey"
#: marks a scan made by a screen's script: its answer sets the bound cookie instead of
#: carrying the session JWT
SCREEN_HEADER = "X-Kiosk-Screen"
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def public(view):
    setattr(view, POLICY_ATTR, "public")
    return view


def roles(*allowed: str):
    def deco(view):
        setattr(view, POLICY_ATTR, frozenset(allowed))
        return view
    return deco


def policy_of(view) -> object | None:
    view = getattr(view, "view_class", view)
    while view is not None:
        p = getattr(view, POLICY_ATTR, None)
        if p is not None:
            return p
        view = getattr(view, "__wrapped__", None)
    return None


# --- hosts --------------------------------------------------------------------------------------

def host_name(host: str) -> str:
    """A Host header's name: lower case, port and IPv6 brackets stripped."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        host = host[1:end] if end > 0 else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def allowed_hosts(server_cfg) -> frozenset[str]:
    names = {host_name(h) for h in server_cfg.allowed_hosts}
    if server_cfg.host.strip() not in WILDCARD_HOSTS:
        names.add(host_name(server_cfg.host))
    return frozenset(names)


# --- credentials --------------------------------------------------------------------------------

def bearer() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def screen_key() -> str | None:
    key = request.headers.get(KEY_HEADER)
    if key is None and request.method in ("GET", "HEAD"):
        key = request.args.get(KEY_PARAM)
    return key or None


def _cookie_name() -> str:
    return current_app.config["KIOSK_INSTANCE"].config.sessions.cookie_name


def cookie_credential(secret: bytes) -> str | None:
    """The session cookie bound to this request's screen key; else the first one sent.

    A page on another port may have set a cookie of its own under the same name (a
    narrower ``Path`` is even sent first); the one this screen's key belongs to is ours.
    """
    values = request.cookies.getlist(_cookie_name())
    key = screen_key()
    for v in values:
        c = sessions.claims_of(secret, v)
        if c is not None and sessions.key_matches(c, key):
            return v
    return values[0] if values else None


def credential() -> str | None:
    """The credential the request presents (bearer first), unchecked."""
    b = bearer()
    if b is not None:
        return b
    return cookie_credential(current_app.config["KIOSK_KEYS"].session_secret)


def _record_refusal(db, refusals: audit.Refusals, *, claims: dict | None, reason: str, at: float) -> None:
    """A refused credential, one audit row per (session, client, reason, request, minute) plus
    ``repeats``: a screen polling with a cookie that is not its own cannot fill the log."""
    sid = claims.get("sid") if claims else None
    refusals.record(db, hotel_id=claims.get("hid") if claims else None, event="security.session_refused", at=at,
                    client=request.remote_addr, code="UNAUTHORIZED", actor=claims.get("sub") if claims else None,
                    session_id=sid, kind=(sid, reason, request.method, request.path),
                    details={"path": request.path, "method": request.method, "reason": reason})


#: reasons (kiosk/sessions.py) that mean a credential was used where it does not belong
_MISUSE = frozenset({"cookie", "bearer", "key"})


def current_session(db, secret: bytes, now: float) -> sessions.Session:
    """The request's live session (bearer or bound cookie), or the refusal."""
    b = bearer()
    via, token = (sessions.BEARER, b) if b is not None else (sessions.COOKIE, cookie_credential(secret))
    try:
        return sessions.authenticate(db, secret, token, now=now, via=via, key=screen_key(),
                                     idle=sessions.IdlePolicy.of(current_app.config["KIOSK_INSTANCE"].config))
    except Unauthorized as e:
        reason = e.details.get("reason")
        if reason in _MISUSE:
            _record_refusal(db, current_app.config["KIOSK_SESSION_REFUSALS"],
                            claims=sessions.claims_of(secret, token), reason=reason, at=now)
            if via == sessions.COOKIE:
                g.drop_session_cookie = True  # useless in this browser: it signs nobody in
        raise


def install(app: Flask) -> None:
    app.config.setdefault("KIOSK_SESSION_REFUSALS", audit.Refusals())
    hosts = allowed_hosts(app.config["KIOSK_INSTANCE"].config.server)

    @app.before_request
    def _host():
        host = request.environ.get("HTTP_HOST")
        if host is None:  # no browser omits it; a local program can send any name anyway
            return None
        if host_name(host) in hosts:
            return None
        if request.path.startswith(("/api/", "/screen/", "/healthz")):
            raise HostNotAllowed("this kiosk does not answer to that name: open it by an address in"
                                 " server.allowed_hosts", {"host": host[:255]})
        resp = Response("421 Misdirected Request: this kiosk does not answer to that name;"
                        " open it at one of the addresses in server.allowed_hosts.\n",
                        status=421, mimetype="text/plain")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.before_request
    def _enforce():
        if request.endpoint is None:  # 404/405: handled by the error handlers
            return None
        view = app.view_functions.get(request.endpoint)
        # Flask's own /static route serves the screens' CSS, JavaScript and translations
        policy = "public" if request.endpoint == "static" else policy_of(view)
        if policy == "public":
            return None
        inst = app.config["KIOSK_INSTANCE"]
        now = inst.clock.now()
        db = inst.db()
        s = current_session(db, app.config["KIOSK_KEYS"].session_secret, now)
        g.session = s
        if not isinstance(policy, frozenset) or s.role not in policy:
            audit.record_now(db, hotel_id=s.hotel_id, event="security.forbidden", outcome="refused",
                             at=now, actor=s.user_id, session_id=s.id, client=request.remote_addr,
                             code="FORBIDDEN", details={"path": request.path, "method": request.method,
                                                        "role": s.role})
            raise Forbidden("your role may not do this", {"role": s.role})
        return None

    @app.after_request
    def _drop_cookie(resp):
        if g.get("drop_session_cookie"):
            cfg = app.config["KIOSK_INSTANCE"].config.sessions
            resp.delete_cookie(cfg.cookie_name, path="/", httponly=True, samesite="Strict",
                               secure=cfg.cookie_secure)
        return resp
