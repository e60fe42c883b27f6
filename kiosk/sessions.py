"""Sessions: an HS256 JWT (per-kiosk secret) backed by a row in ``sessions``.

The JWT alone is never enough: every request also finds the row, so ending a
session (logout, admin termination, expiry) takes effect on the next request.

Two kinds of credential name a session, and neither works as the other:

* a **bearer** credential (the scan's ``sessionJWT`` for API clients), sent as
  ``Authorization: Bearer``;
* a **cookie** credential (claim ``"use": "cookie"``), the screens' HttpOnly cookie.  It
  is bound to a per-browser *screen key* (claim ``"bnd"``: the SHA-256 of the key, hex)
  that the screen keeps in its own origin's ``localStorage`` and sends with each request.
  A browser sends cookies to every port of the host, so the cookie alone reaches other
  local programs; the key does not.  A cookie credential sent as a bearer token, or one
  sent without its key, is refused.

A session also ends after a while **without a request** (:class:`IdlePolicy`:
``sessions.idle_seconds``, per role ``sessions.idle_seconds_by_role``).  A cookie credential
opened at the lobby screen (claim ``"vis": "lobby"``: a code typed there or a camera claim)
belongs to that screen's visit and ends after ``sessions.lobby_idle_seconds``, whatever the
role.  ``last_seen_at`` is written at most every :data:`TOUCH_SECONDS` per session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import jwt

from . import audit, guest_keys, outbox, store
from .errors import NotFound, SessionExpired, Unauthorized

REQUIRED = ["sid", "sub", "hid", "rol", "iat", "exp"]
COOKIE = "cookie"  #: the ``use`` claim of a cookie credential
BEARER = "bearer"
LOBBY = "lobby"  #: the ``vis`` claim of a cookie credential opened at the lobby screen
#: a request within this many seconds of the last recorded one writes nothing
TOUCH_SECONDS = 5.0


@dataclass(frozen=True)
class Session:
    id: str
    hotel_id: str
    user_id: str
    role: str
    display_name: str | None
    expires_at: float
    visit: str | None = None            #: "lobby": opened at the lobby screen, ends with its visit
    idle_seconds: float | None = None   #: ends after this long without a request


@dataclass(frozen=True)
class IdlePolicy:
    """How long a session may go without a request (config ``sessions``)."""

    default: float
    by_role: dict
    lobby: float
    node: str | None = None  #: the kiosk id, for the ``session.ended`` outbox row

    @classmethod
    def of(cls, cfg) -> IdlePolicy:
        s = cfg.sessions
        by_role = {role: v for role, v in s.idle_seconds_by_role.model_dump().items() if v is not None}
        return cls(s.idle_seconds, by_role, s.lobby_idle_seconds, cfg.property.kiosk_id)

    def limit(self, role: str, visit: str | None) -> float:
        base = self.by_role.get(role, self.default)
        return min(base, self.lobby) if visit == LOBBY else base


def seal_existing(db, limit: int) -> int:
    """Guests' session display names written in clear (by an older version): up to ``limit``
    sealed now under the guest's key, inside the caller's transaction; how many."""
    from .erased import NAME, TEXT

    found = db.execute("SELECT id, hotel_id, user_id, display_name FROM sessions WHERE role = 'guest'"
                       " AND display_name NOT IN ('', ?, ?) AND substr(display_name, 1, 5) <> 'pii1.' LIMIT ?",
                       [NAME, TEXT, limit]).fetchall()
    for sid, hotel_id, user_id, name in found:
        db.execute("UPDATE sessions SET display_name = ? WHERE id = ?",
                   [guest_keys.seal(db, hotel_id, user_id, name, "n"), sid])
    return len(found)


def open_session(db, *, hotel_id: str, user_id: str, role: str, display_name: str | None,
                 jti: str, scan_method: str, client: str | None, now: float, ttl: int) -> Session:
    """Insert the session row; call inside the scan transaction."""
    sid = uuid.uuid4().hex
    db.execute(
        "INSERT INTO sessions (id, hotel_id, user_id, role, display_name, jti, scan_method, client,"
        " created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [sid, hotel_id, user_id, role, guest_keys.seal(db, hotel_id, user_id if role == "guest" else None, display_name, "n"), jti, scan_method,
         client, now, now + ttl, now],
    )
    return Session(sid, hotel_id, user_id, role, display_name, now + ttl)


def mint(secret: bytes, s: Session, now: float) -> str:
    """A bearer credential for the session (the scan's ``sessionJWT``)."""
    return jwt.encode({"sid": s.id, "sub": s.user_id, "hid": s.hotel_id, "rol": s.role,
                       "iat": int(now), "exp": int(s.expires_at)}, secret, algorithm="HS256")


def new_screen_key() -> tuple[str, str]:
    """A fresh per-browser screen key and its digest (what a cookie credential carries)."""
    key = secrets.token_urlsafe(32)
    return key, key_digest(key)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _decode(secret: bytes, token: str) -> dict:
    return jwt.decode(token, secret, algorithms=["HS256"],
                      options={"require": REQUIRED, "verify_exp": False, "verify_iat": False})


def for_cookie(secret: bytes, bearer: str, binding: str, visit: str | None = None) -> str:
    """The cookie credential of the session ``bearer`` names, bound to the key with digest ``binding``
    (``visit="lobby"``: opened at the lobby screen, see :class:`IdlePolicy`)."""
    c = _decode(secret, bearer)
    if c.get("use") == COOKIE:
        raise ValueError("already a cookie credential")
    extra = {"vis": visit} if visit else {}
    return jwt.encode({**{k: c[k] for k in REQUIRED}, "use": COOKIE, "bnd": binding, **extra}, secret,
                      algorithm="HS256")


def claims_of(secret: bytes, token: str | None) -> dict | None:
    """The verified claims of a session credential, or None (for audit rows and choosing a cookie)."""
    if not token:
        return None
    try:
        return _decode(secret, token)
    except jwt.PyJWTError:
        return None


def key_matches(claims: dict, key: str | None) -> bool:
    """Whether ``key`` is the screen key a cookie credential's claims are bound to."""
    bnd = claims.get("bnd")
    return (claims.get("use") == COOKIE and isinstance(bnd, str) and bool(key)
            and hmac.compare_digest(key_digest(key), bnd))


def authenticate(db, secret: bytes, token: str | None, *, now: float, via: str | None = None,
                 key: str | None = None, idle: IdlePolicy | None = None) -> Session:
    """The live session behind ``token``, or :class:`Unauthorized` / :class:`SessionExpired`.

    ``via`` says how the credential came: ``"bearer"`` (``Authorization``: a cookie
    credential is refused, reason ``cookie``), ``"cookie"`` (a cookie credential bound to
    ``key`` only: reason ``bearer`` for another kind, ``key`` for a missing or wrong key),
    or None (either kind, no key: for a server-rendered page, which can do nothing).
    With ``idle``, a session unused for longer than its limit is ended (reason ``idle``) and
    refused; a use is recorded in ``last_seen_at`` (at most every :data:`TOUCH_SECONDS`).
    """
    if not token:
        raise Unauthorized("sign in first: scan your QR code", {})
    try:
        c = _decode(secret, token)
    except jwt.PyJWTError as e:
        raise Unauthorized("the session credential is not valid", {"reason": "invalid"}) from e
    if via == BEARER and c.get("use") == COOKIE:
        raise Unauthorized("a screen's session cookie is not a bearer token", {"reason": "cookie"})
    if via == COOKIE:
        if c.get("use") != COOKIE:
            raise Unauthorized("the session cookie is not valid", {"reason": "bearer"})
        if not key_matches(c, key):
            raise Unauthorized("the session cookie does not belong to this screen; sign in again",
                               {"reason": "key"})
    row = db.execute(
        "SELECT id, hotel_id, user_id, role, display_name, expires_at, ended_at, last_seen_at FROM sessions"
        " WHERE id = ? AND hotel_id = ?", [c["sid"], c["hid"]]).fetchone()
    if row is None:
        raise SessionExpired("the session is unknown", {"reason": "unknown"})
    sid, hotel_id, user_id, role, name, expires_at, ended_at, last_seen = row
    if ended_at is not None:
        raise SessionExpired("the session has ended", {"reason": "ended"})
    if expires_at <= now or c["exp"] <= now:
        raise SessionExpired("the session has expired", {"reason": "expired"})
    if (user_id, role) != (c["sub"], c["rol"]):
        raise Unauthorized("the session credential is not valid", {"reason": "mismatch"})
    visit = c.get("vis") if c.get("use") == COOKIE else None
    limit = idle.limit(role, visit) if idle is not None else None
    if limit is not None:
        last_seen = last_seen if last_seen is not None else now
        if last_seen + limit <= now:
            _end_idle(db, sid, hotel_id, now, idle.node)
            raise SessionExpired(f"the session ended after {int(limit)} s without activity",
                                 {"reason": "idle", "idleSeconds": limit})
        if now - last_seen >= TOUCH_SECONDS:
            _touch(db, sid, now)
    return Session(sid, hotel_id, user_id, role, name, expires_at, visit, limit)


def _touch(db, sid: str, now: float) -> None:
    """Record a use; a busy store skips it (the next request, seconds later, tries again)."""
    lock = getattr(db, "writer_lock", None)  # kiosk/store.py: this process's writers take turns
    if lock is not None and not lock.acquire(blocking=False):
        return
    try:
        db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ? AND ended_at IS NULL", [now, sid])
    except Exception:  # noqa: BLE001 - a missed touch must not refuse the request
        pass
    finally:
        if lock is not None:
            lock.release()


def _end_idle(db, sid: str, hotel_id: str, now: float, node: str | None) -> None:
    """End a session found idle (audit and ``session.ended`` as a termination); best effort."""
    try:
        terminate(db, sid, hotels=[hotel_id], now=now, by="kiosk", reason="idle", node=node or "kiosk")
    except Exception:  # noqa: BLE001 - the refusal stands even when the store is busy
        pass


def terminate(db, session_id: str, *, hotels: list[str], now: float, by: str, reason: str,
              node: str) -> dict:
    """End a session of one of ``hotels``; ending it twice is harmless."""
    marks = ", ".join("?" for _ in hotels)
    with store.transaction(db):
        row = db.execute(f"SELECT hotel_id, ended_at FROM sessions WHERE id = ? AND hotel_id IN ({marks})",
                         [session_id, *hotels]).fetchone()
        if row is None:
            raise NotFound(f"no session {session_id!r} in this hotel", {"sessionId": session_id})
        hotel_id, ended_at = row
        if ended_at is None:
            db.execute("UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?",
                       [now, reason, session_id])
            audit.record(db, hotel_id=hotel_id, event="session.terminated", outcome="success",
                         at=now, actor=by, session_id=session_id, details={"reason": reason})
            outbox.enqueue(db, hotel_id=hotel_id, kind="session.ended", entity_type="session",
                           entity_id=session_id, payload={"sessionId": session_id, "reason": reason,
                                                          "endedAt": now}, node=node, now=now)
            ended_at = now
    return {"sessionId": session_id, "hotelId": hotel_id, "endedAt": ended_at}


def list_sessions(db, *, hotels: list[str], now: float, active_only: bool = False,
                  limit: int = 200, expired_only: bool = False) -> list[dict]:
    marks = ", ".join("?" for _ in hotels)
    sql = (f"SELECT id, hotel_id, user_id, role, display_name, scan_method, created_at, expires_at,"
           f" ended_at, end_reason FROM sessions WHERE hotel_id IN ({marks})")
    params: list = list(hotels)
    if active_only:
        sql += " AND ended_at IS NULL AND expires_at > ?"
        params.append(now)
    elif expired_only:  # ended, or past its expiry: no longer usable
        sql += " AND (ended_at IS NOT NULL OR expires_at <= ?)"
        params.append(now)
    return list(db.query(sql + " ORDER BY created_at DESC LIMIT ?", [*params, limit]))


def end_for_token(db, hotel_id: str, jti: str, *, now: float, reason: str, node: str | None = None) -> list[str]:
    """End every open session opened with token ``jti``; call inside a transaction.

    Used when the token is revoked (here or in the cloud) or found replayed: a session
    must not outlive the token that opened it.  Queues ``session.ended`` when ``node``
    is given (a local decision the cloud should hear about).
    """
    ids = [r[0] for r in db.execute("SELECT id FROM sessions WHERE hotel_id = ? AND jti = ? AND ended_at IS NULL",
                                    [hotel_id, jti])]
    for sid in ids:
        db.execute("UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?", [now, reason, sid])
        if node is not None:
            outbox.enqueue(db, hotel_id=hotel_id, kind="session.ended", entity_type="session", entity_id=sid,
                           payload={"sessionId": sid, "reason": reason, "endedAt": now}, node=node, now=now)
    return ids


def expire_due(db, *, now: float, node: str) -> int:
    """End the sessions past their expiry (audit + ``session.ended`` for the cloud); how many."""
    with store.transaction(db):
        rows = db.execute("SELECT id, hotel_id FROM sessions WHERE ended_at IS NULL AND expires_at <= ?",
                          [now]).fetchall()
        for sid, hotel in rows:
            db.execute("UPDATE sessions SET ended_at = ?, end_reason = 'expired' WHERE id = ?", [now, sid])
            audit.record(db, hotel_id=hotel, event="session.expired", outcome="success", at=now,
                         actor="agent", session_id=sid)
            outbox.enqueue(db, hotel_id=hotel, kind="session.ended", entity_type="session", entity_id=sid,
                           payload={"sessionId": sid, "reason": "expired", "endedAt": now}, node=node, now=now)
    return len(rows)


def erase_names(db, hotel_id: str, user_id: str, name: str) -> int:
    """A guest's erasure (pulled): the display name of their sessions (the user is the
    confirmation) becomes ``name``; inside the caller's transaction.  How many changed."""
    return db.execute("UPDATE sessions SET display_name = ? WHERE hotel_id = ? AND user_id = ?"
                      " AND display_name IS NOT NULL AND display_name <> ?", [name, hotel_id, user_id, name]).rowcount
