"""Sessions: an HS256 JWT (per-kiosk secret) backed by a row in ``sessions``.

The JWT alone is never enough: every request also finds the row, so ending a
session (logout, admin termination, expiry) takes effect on the next request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import jwt

from . import audit, outbox, store
from .errors import NotFound, SessionExpired, Unauthorized

REQUIRED = ["sid", "sub", "hid", "rol", "iat", "exp"]


@dataclass(frozen=True)
class Session:
    id: str
    hotel_id: str
    user_id: str
    role: str
    display_name: str | None
    expires_at: float


def open_session(db, *, hotel_id: str, user_id: str, role: str, display_name: str | None,
                 jti: str, scan_method: str, client: str | None, now: float, ttl: int) -> Session:
    """Insert the session row; call inside the scan transaction."""
    sid = uuid.uuid4().hex
    db.execute(
        "INSERT INTO sessions (id, hotel_id, user_id, role, display_name, jti, scan_method, client,"
        " created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [sid, hotel_id, user_id, role, display_name, jti, scan_method, client, now, now + ttl, now],
    )
    return Session(sid, hotel_id, user_id, role, display_name, now + ttl)


def mint(secret: bytes, s: Session, now: float) -> str:
    return jwt.encode({"sid": s.id, "sub": s.user_id, "hid": s.hotel_id, "rol": s.role,
                       "iat": int(now), "exp": int(s.expires_at)}, secret, algorithm="HS256")


def authenticate(db, secret: bytes, token: str | None, *, now: float) -> Session:
    """The live session behind ``token``, or :class:`Unauthorized` / :class:`SessionExpired`."""
    if not token:
        raise Unauthorized("sign in first: scan your QR code", {})
    try:
        c = jwt.decode(token, secret, algorithms=["HS256"],
                       options={"require": REQUIRED, "verify_exp": False, "verify_iat": False})
    except jwt.PyJWTError as e:
        raise Unauthorized("the session credential is not valid", {"reason": "invalid"}) from e
    row = db.execute(
        "SELECT id, hotel_id, user_id, role, display_name, expires_at, ended_at FROM sessions"
        " WHERE id = ? AND hotel_id = ?", [c["sid"], c["hid"]]).fetchone()
    if row is None:
        raise SessionExpired("the session is unknown", {"reason": "unknown"})
    sid, hotel_id, user_id, role, name, expires_at, ended_at = row
    if ended_at is not None:
        raise SessionExpired("the session has ended", {"reason": "ended"})
    if expires_at <= now or c["exp"] <= now:
        raise SessionExpired("the session has expired", {"reason": "expired"})
    if (user_id, role) != (c["sub"], c["rol"]):
        raise Unauthorized("the session credential is not valid", {"reason": "mismatch"})
    return Session(sid, hotel_id, user_id, role, name, expires_at)


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
