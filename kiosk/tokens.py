"""Signed QR tokens, issued and verified offline.

A token is a compact JWT signed with the property's Ed25519 key (``EdDSA``),
header ``{"alg": "EdDSA", "kid": ...}`` and claims:

=====  =========================================================
iss    issuer (the property), must match the key's issuer
hid    hotel id, must be one the key may sign for
sub    user id
rol    ``guest`` | ``staff`` | ``admin``
jti    unique id (8 random bytes, base64url)
iat    issued at (s)
exp    expires at (s)
mu     ``1`` for a reusable token; absent means one-time (the safe default)
=====  =========================================================

Verification pins the algorithm, requires every claim, allows a small leeway,
looks ``kid`` up only in the trust list and never trusts the token's own
``alg``.  Expiry is checked against the injected clock, not pyjwt's.
Revocation and one-time consumption are checked by the scan service, inside
its transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import jwt

from . import audit, guest_keys, outbox, sessions, store
from .clock import iso
from .errors import (
    HotelMismatch,
    InvalidToken,
    NotFound,
    TokenAlreadyUsed,
    TokenExpired,
    TokenRevoked,
    ValidationError,
)
from .trust import TrustList

ROLES = ("guest", "staff", "admin")
REQUIRED = ["iss", "hid", "sub", "rol", "jti", "iat", "exp"]
MAX_TOKEN_CHARS = 2048
STATUSES = ("active", "used", "revoked", "expired")


@dataclass(frozen=True)
class Claims:
    issuer: str
    hotel_id: str
    subject: str
    role: str
    jti: str
    issued_at: int
    expires_at: int
    reusable: bool
    kid: str


def new_jti() -> str:
    """A fresh token id: 64 random bits, base64url, never starting with ``-``.

    An id that starts with a dash reads as an option to ``kiosk token revoke JTI`` (one
    token in 64 could not be revoked without ``--``), so such draws are drawn again.
    """
    while True:
        jti = secrets.token_urlsafe(8)
        if not jti.startswith("-"):
            return jti


def sign(signing_key, kid: str, *, issuer: str, hotel_id: str, role: str, user_id: str | None, now: float,
         ttl_seconds: int, reusable: bool = False) -> tuple[str, dict]:
    """The compact token and its claims (no bookkeeping: :func:`issue` records it)."""
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", {"field": "role"})
    if user_id is not None and not (0 < len(user_id) <= 64):
        raise ValidationError("user id must be 1-64 characters", {"field": "userId"})
    jti = new_jti()
    user_id = user_id or f"{role[0]}-{jti[:6]}"
    iat = int(now)
    claims = {"iss": issuer, "hid": hotel_id, "sub": user_id, "rol": role, "jti": jti,
              "iat": iat, "exp": iat + int(ttl_seconds)}
    if reusable:
        claims["mu"] = 1
    token = jwt.encode(claims, signing_key, algorithm="EdDSA", headers={"kid": kid, "typ": None})
    return token, claims


def seal_existing(db, limit: int) -> int:
    """Guests' code display names written in clear (by an older version): up to ``limit`` sealed
    now under the guest's key, inside the caller's transaction; how many."""
    from .erased import NAME, TEXT

    found = db.execute("SELECT jti, hotel_id, subject, display_name FROM qr_tokens WHERE role = 'guest'"
                       " AND display_name NOT IN ('', ?, ?) AND substr(display_name, 1, 5) <> 'pii1.' LIMIT ?",
                       [NAME, TEXT, limit]).fetchall()
    for jti, hotel_id, subject, name in found:
        db.execute("UPDATE qr_tokens SET display_name = ? WHERE jti = ? AND hotel_id = ?",
                   [guest_keys.seal(db, hotel_id, subject, name, "n"), jti, hotel_id])
    return len(found)


def issue(db, keys, *, hotel_id: str, role: str, now: float, ttl_seconds: int,
          user_id: str | None = None, name: str | None = None, reusable: bool = False,
          issuer: str, node: str, issued_by: str = "cli", before_commit=None) -> tuple[str, dict]:
    """Sign a token, record it in ``qr_tokens`` (+ audit, + outbox) and return (token, row).

    ``before_commit(token)`` runs inside the transaction, after the rows are written: if it
    raises (say, the QR picture could not be written), nothing is recorded.
    """
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", {"field": "role"})
    signer = keys.trust.get(keys.kid)
    if signer is None or hotel_id not in signer.hotels:
        raise HotelMismatch(f"this kiosk's key may not sign for hotel {hotel_id!r}",
                            {"hotelId": hotel_id, "kid": keys.kid})
    token, claims = sign(keys.signing_key, keys.kid, issuer=issuer, hotel_id=hotel_id, role=role,
                         user_id=user_id, now=now, ttl_seconds=ttl_seconds, reusable=reusable)
    jti, user_id = claims["jti"], claims["sub"]
    row = {"jti": jti, "hotel_id": hotel_id, "kid": keys.kid, "subject": user_id, "role": role,
           "display_name": name, "reusable": int(reusable), "issued_at": float(claims["iat"]),
           "expires_at": float(claims["exp"]), "issued_by": issued_by}
    with store.transaction(db):
        db.execute(
            "INSERT INTO qr_tokens (jti, hotel_id, kid, subject, role, display_name, reusable,"
            " issued_at, expires_at, issued_by) VALUES (:jti, :hotel_id, :kid, :subject, :role,"
            " :display_name, :reusable, :issued_at, :expires_at, :issued_by)",
            row | {"display_name": guest_keys.seal(db, hotel_id, user_id if role == "guest" else None, name, "n")})
        audit.record(db, hotel_id=hotel_id, event="token.created", outcome="success", at=now,
                     actor=issued_by, jti=jti, details={"role": role, "reusable": reusable})
        outbox.enqueue(db, hotel_id=hotel_id, kind="token.issued", entity_type="qr_token",
                       entity_id=jti, node=node, now=now,
                       payload={"jti": jti, "subject": user_id, "role": role,
                                "reusable": reusable, "expiresAt": claims["exp"]})
        if before_commit is not None:
            before_commit(token)
    return token, row


def verify(token: str, trust: TrustList, *, now: float, leeway: int = 30) -> Claims:
    """Check signature, key, algorithm and claims; raise the matching :class:`KioskError`."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("the token is empty or too long", {"reason": "length"})
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise InvalidToken("the token is not a well-formed JWT", {"reason": "malformed"}) from e
    kid = header.get("kid")
    if header.get("alg") != "EdDSA":
        raise InvalidToken("the token's algorithm is not accepted", {"reason": "algorithm"})
    key = trust.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("the token was signed by an unknown key", {"reason": "unknown_kid"})
    try:
        c = jwt.decode(token, key.public_key, algorithms=["EdDSA"],
                       options={"require": REQUIRED, "verify_exp": False, "verify_iat": False,
                                "verify_nbf": False, "verify_iss": False, "verify_aud": False})
    except jwt.MissingRequiredClaimError as e:
        raise InvalidToken(f"the token lacks the {e.claim!r} claim",
                           {"reason": "missing_claim", "claim": e.claim}) from e
    except jwt.InvalidSignatureError as e:
        raise InvalidToken("the token's signature does not verify", {"reason": "signature"}) from e
    except jwt.PyJWTError as e:
        raise InvalidToken("the token could not be verified", {"reason": "malformed"}) from e
    for name in ("iss", "hid", "sub", "rol", "jti"):
        if not isinstance(c[name], str) or not c[name] or len(c[name]) > 64:
            raise InvalidToken(f"the token's {name!r} claim is invalid", {"reason": "claim", "claim": name})
    for name in ("iat", "exp", "nbf"):
        if name in c and (not isinstance(c[name], int) or isinstance(c[name], bool)):
            raise InvalidToken(f"the token's {name!r} claim is invalid", {"reason": "claim", "claim": name})
    if c["rol"] not in ROLES:
        raise InvalidToken("the token's role is unknown", {"reason": "claim", "claim": "rol"})
    if c["iss"] != key.issuer or c["hid"] not in key.hotels:
        raise InvalidToken("the token's issuer or hotel does not match its key",
                           {"reason": "issuer"})
    if c["iat"] > now + leeway or c.get("nbf", 0) > now + leeway:
        raise InvalidToken("the token is not valid yet", {"reason": "not_yet_valid"})
    if c["exp"] < now - leeway:
        raise TokenExpired("the token has expired", {"expiredAt": c["exp"]})
    return Claims(issuer=c["iss"], hotel_id=c["hid"], subject=c["sub"], role=c["rol"],
                  jti=c["jti"], issued_at=c["iat"], expires_at=c["exp"],
                  reusable=c.get("mu") == 1, kid=kid)


_STATUS_SQL = """CASE
    WHEN t.revoked_at IS NOT NULL THEN 'revoked'
    WHEN t.reusable = 0 AND coalesce(c.consumed_at, rc.consumed_at) IS NOT NULL THEN 'used'
    WHEN t.expires_at < :now THEN 'expired'
    ELSE 'active' END"""


def list_tokens(db, *, hotels: list[str], now: float, status: str | None = None,
                role: str | None = None, limit: int = 200) -> list[dict]:
    """Tokens of the given hotels, newest first, with their computed status."""
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}", {"field": "status"})
    if role is not None and role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", {"field": "role"})
    marks = ", ".join(f":h{i}" for i in range(len(hotels)))
    params = {f"h{i}": h for i, h in enumerate(hotels)} | {"now": now, "status": status,
                                                           "role": role, "limit": limit}
    # used here, or at another kiosk of the hotel (a pulled consumption: the first one)
    sql = (f"SELECT * FROM (SELECT t.*, coalesce(c.consumed_at, rc.consumed_at) AS used_at, {_STATUS_SQL} AS status"
           " FROM qr_tokens t LEFT JOIN consumed_tokens c ON c.jti = t.jti"
           " LEFT JOIN (SELECT jti, hotel_id, min(consumed_at) AS consumed_at FROM remote_consumptions"
           " GROUP BY jti, hotel_id) rc ON rc.jti = t.jti AND rc.hotel_id = t.hotel_id"
           f" WHERE t.hotel_id IN ({marks})) WHERE (:status IS NULL OR status = :status)"
           " AND (:role IS NULL OR role = :role) ORDER BY issued_at DESC, jti LIMIT :limit")
    return list(db.query(sql, params))


def revoke(db, jti: str, *, hotels: list[str], now: float, by: str, node: str) -> dict:
    """Revoke a token of one of ``hotels``; revoking twice is harmless."""
    marks = ", ".join("?" for _ in hotels)
    with store.transaction(db):
        row = db.execute(f"SELECT hotel_id, revoked_at FROM qr_tokens WHERE jti = ? AND hotel_id IN ({marks})",
                         [jti, *hotels]).fetchone()
        if row is None:
            raise NotFound(f"no token {jti!r} in this hotel", {"jti": jti})
        hotel_id, revoked_at = row
        if revoked_at is None:
            db.execute("UPDATE qr_tokens SET revoked_at = ?, revoked_by = ? WHERE jti = ?", [now, by, jti])
            audit.record(db, hotel_id=hotel_id, event="token.revoked", outcome="success", at=now,
                         actor=by, jti=jti)
            outbox.enqueue(db, hotel_id=hotel_id, kind="token.revoked", entity_type="qr_token",
                           entity_id=jti, payload={"jti": jti, "revokedAt": now}, node=node, now=now)
            sessions.end_for_token(db, hotel_id, jti, now=now, reason="revoked", node=node)
            revoked_at = now
    return {"jti": jti, "hotelId": hotel_id, "revokedAt": revoked_at}


def consume(db, *, hotel_id: str, jti: str, kiosk_id: str, session_id: str, now: float, hlc: str) -> None:
    """A one-time token used here (inside the scan's transaction, with its session)."""
    db.execute("INSERT INTO consumed_tokens (jti, hotel_id, consumed_at, kiosk_id, session_id, hlc)"
               " VALUES (?, ?, ?, ?, ?, ?)", [jti, hotel_id, now, kiosk_id, session_id, hlc])


def revoke_remote(db, hotel_id: str, jti: str, *, revoked_at: float, hlc: str, now: float) -> list[str] | None:
    """A revocation made elsewhere (pulled): the token stops here too and its open sessions end.
    Returns the sessions ended, or None when this revocation was applied before (idempotent)."""
    with store.transaction(db):
        cur = db.execute("INSERT INTO remote_revocations (jti, hotel_id, revoked_at, hlc) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT(jti) DO NOTHING", [jti, hotel_id, revoked_at, hlc])
        if cur.rowcount == 0:
            return None
        db.execute("UPDATE qr_tokens SET revoked_at = ?, revoked_by = 'cloud' WHERE jti = ? AND hotel_id = ?"
                   " AND revoked_at IS NULL", [now, jti, hotel_id])
        ended = sessions.end_for_token(db, hotel_id, jti, now=now, reason="revoked")
        audit.record(db, hotel_id=hotel_id, event="token.revoked", outcome="success", at=now, actor="cloud",
                     jti=jti, details={"source": "pull", "sessionsEnded": ended})
    return ended


def use_remote(db, hotel_id: str, jti: str, *, kiosk_id: str, session_id: str | None, used_at: float,
               hlc: str, node: str) -> list[dict] | None:
    """A one-time token consumed at another kiosk (pulled); merged by union, once.

    Returns every known use of the token — this kiosk's first — when it was consumed here
    as well (a replay for the caller to judge), else None."""
    cur = db.execute("INSERT INTO remote_consumptions (jti, hotel_id, kiosk_id, session_id, consumed_at, one_time,"
                     " hlc) VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT DO NOTHING",
                     [jti, hotel_id, kiosk_id, session_id, used_at, hlc])
    if cur.rowcount == 0:
        return None
    mine = db.execute("SELECT session_id, hlc FROM consumed_tokens WHERE jti = ? AND hotel_id = ?",
                      [jti, hotel_id]).fetchone()
    if mine is None:
        return None
    return [{"kioskId": node, "sessionId": mine[0], "hlc": mine[1]}] + [
        {"kioskId": r[0], "sessionId": r[1], "hlc": r[2]} for r in db.execute(
            "SELECT kiosk_id, session_id, hlc FROM remote_consumptions WHERE jti = ? AND hotel_id = ?",
            [jti, hotel_id])]


def purge_expired(db, *, before: float) -> int:
    """Forget unused tokens that expired before ``before`` (refused anyway); used ones stay."""
    with store.transaction(db):
        return db.execute("DELETE FROM qr_tokens WHERE expires_at < ? AND jti NOT IN"
                          " (SELECT jti FROM consumed_tokens) AND jti NOT IN (SELECT jti FROM sessions)",
                          [before]).rowcount


def usable(db, claims: Claims) -> str:
    """Refuse a revoked or used token, else the name to show (the scan calls it inside its
    transaction when consuming, so the answer holds until the use is written)."""
    hotel = claims.hotel_id
    row = db.execute("SELECT revoked_at, display_name FROM qr_tokens WHERE jti = ? AND hotel_id = ?",
                     [claims.jti, hotel]).fetchone()
    if row is not None and row[0] is not None:
        raise TokenRevoked("this code was revoked", {"revokedAt": iso(row[0])})
    remote = db.execute("SELECT revoked_at FROM remote_revocations WHERE jti = ? AND hotel_id = ?",
                        [claims.jti, hotel]).fetchone()
    if remote is not None:  # revoked in the cloud or at another kiosk (pulled)
        raise TokenRevoked("this code was revoked", {"revokedAt": iso(remote[0])})
    if not claims.reusable:
        used = db.execute("SELECT consumed_at, kiosk_id FROM consumed_tokens WHERE jti = ?", [claims.jti]).fetchone()
        if used is None:  # consumed at another kiosk (pulled)? the first use names the kiosk
            used = db.execute("SELECT consumed_at, kiosk_id FROM remote_consumptions WHERE jti = ? AND hotel_id = ?"
                              " ORDER BY consumed_at, kiosk_id LIMIT 1", [claims.jti, hotel]).fetchone()
        if used is not None:  # where, as when the upstream refuses a claim (kiosk/claims.py)
            raise TokenAlreadyUsed("this code was already used", {"usedAt": iso(used[0]), "kioskId": used[1]})
    if claims.role == "guest":  # the PMS cancelled the stay (pulled): its codes open nothing
        res = db.execute("SELECT status FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                         [hotel, claims.subject]).fetchone()
        if res is not None and res[0] in ("Canceled", "NoShow"):
            raise TokenRevoked("this stay was cancelled", {"reason": "reservation", "status": res[0]},
                               hint="ask at the front desk")
    return (row[1] if row else None) or claims.subject


def erase_names(db, hotel_id: str, subject: str, name: str) -> int:
    """A guest's erasure (pulled): the display name of the codes issued here for them (their
    subject is the confirmation, kept: it ties the code to the stay) becomes ``name``; inside the
    caller's transaction.  How many changed."""
    return db.execute("UPDATE qr_tokens SET display_name = ? WHERE hotel_id = ? AND subject = ?"
                      " AND display_name IS NOT NULL AND display_name <> ?", [name, hotel_id, subject, name]).rowcount
