"""The scan service: a QR token in, a session out, in ONE transaction.

Verification (signature, key, claims, expiry, hotel) needs no database and
runs first.  Then, inside ``BEGIN IMMEDIATE``: revocation and prior use are
checked, the one-time token is consumed, the session opened, the workflow
started, and the audit and outbox rows written.  Either all of it commits or
none of it does.  A refused scan is audited in a transaction of its own and
counted by the failure limiter.

:meth:`ScanService.check` runs the same checks and consumes nothing: the camera loop uses it,
so a code held up to a screen that shows nobody (busy, or no lobby listening) stays usable;
the session opens (:meth:`ScanService.scan`) when the lobby redeems the scan's claim.

A one-time code is claimed at the kiosk's upstream (the cloud it is linked to,
kiosk/claims.py) before the transaction that consumes it, never inside it: used at another
kiosk of the hotel, it is refused here at once (``TOKEN_ALREADY_USED`` with that kiosk);
no answer within ``sync.claim_timeout_ms``, or not linked: the kiosk decides alone.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from . import audit, outbox, sessions, store, sync_status, tokens, workflows
from .claims import Upstream
from .clock import iso
from .config import ID_PATTERN
from .errors import (
    ClockNotTrusted,
    HotelMismatch,
    InvalidToken,
    KioskError,
    TokenAlreadyUsed,
)
from .ratelimit import FailureLimiter, code_key
from .validation import parse

log = logging.getLogger("kiosk.scan")


#: failures that say nothing about the scanned code: they do not count toward the rate limit
NOT_THE_CLIENTS_FAULT = frozenset({"STORE_BUSY", "CLOCK_NOT_TRUSTED"})


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    qrToken: StrictStr = Field(min_length=1, max_length=tokens.MAX_TOKEN_CHARS)
    hotelId: StrictStr = Field(pattern=ID_PATTERN)
    userId: StrictStr | None = Field(None, min_length=1, max_length=64)
    # the seed's clients send "qr_camera" (and "qr_manual"): the same as camera (manual)
    scanMethod: Literal["camera", "manual", "qr_camera", "qr_manual"] = "camera"

    @field_validator("scanMethod")
    @classmethod
    def _one_vocabulary(cls, v: str) -> str:
        return v.removeprefix("qr_")


class ScanService:
    def __init__(self, instance, keys):
        self.instance = instance
        self.keys = keys
        cfg = instance.config
        self.hotels = list(cfg.property.hotels)
        self.node = cfg.property.kiosk_id
        self.leeway = cfg.tokens.leeway_seconds
        self.ttl = cfg.sessions.ttl_seconds
        self.limiter = FailureLimiter(cfg.scan.max_failures, cfg.scan.window_seconds,
                                      max_failures_per_code=cfg.scan.max_failures_per_code,
                                      penalty_seconds=cfg.scan.penalty_seconds)
        self.refusals = audit.Refusals()
        self.clock_tolerance = cfg.sync.clock_tolerance_seconds
        self.upstream = Upstream(instance.root, kiosk_id=self.node, timeout_ms=cfg.sync.claim_timeout_ms,
                                 ca_bundle=cfg.cloud.ca_bundle)

    def scan(self, db, body, *, client: str = "local") -> dict:
        """Verify and consume; returns the seed's success body or raises a KioskError."""
        return self._run(db, body, client, consume=True)

    def check(self, db, body, *, client: str = "local") -> dict:
        """Verify, and check revocation and prior use, WITHOUT consuming or opening anything.

        Returns ``{"hotelId", "user": {"id", "role", "name"}}`` or raises what :meth:`scan`
        would; a refusal is audited and rate-limited the same way.  A success writes nothing:
        the scan's audit row comes with the session, if one opens.
        """
        return self._run(db, body, client, consume=False)

    def _run(self, db, body, client: str, *, consume: bool) -> dict:
        now = self.instance.clock.now()
        hotel_hint = body.get("hotelId") if isinstance(body, dict) else None
        hotel_hint = hotel_hint if isinstance(hotel_hint, str) and hotel_hint in self.hotels else None
        presented = code_key(body.get("qrToken") if isinstance(body, dict) else None)
        try:
            self.limiter.check(client, now, presented)
        except KioskError as e:
            self.refusals.record(db, hotel_id=hotel_hint, event="security.rate_limited", at=now, client=client,
                                 code=e.code, details={"scope": e.details.get("scope")})
            raise
        jti = None
        try:
            req = parse(ScanRequest, body)
            self._check_clock(db, now)
            claims = tokens.verify(req.qrToken, self.keys.trust, now=now, leeway=self.leeway)
            jti = claims.jti
            if claims.hotel_id != req.hotelId or req.hotelId not in self.hotels:
                raise HotelMismatch("this code is for another hotel",
                                    {"tokenHotel": claims.hotel_id, "requestedHotel": req.hotelId})
            if req.userId is not None and req.userId != claims.subject:
                raise InvalidToken("the token belongs to another user", {"reason": "subject"})
            if not consume:
                return self._peek(db, claims)
            return self._consume(db, req, claims, client, now)
        except KioskError as e:
            if e.code not in NOT_THE_CLIENTS_FAULT:
                self.limiter.fail(client, now, presented)
            # identical refusals (source, code, token) within a minute share one audit row and
            # count in its ``repeats``: a flood of junk codes cannot fill the disk
            self.refusals.record(db, hotel_id=hotel_hint, event="scan", at=now, client=client, jti=jti,
                                 code=e.code, details={k: v for k, v in e.details.items() if k != "fields"})
            raise

    def _check_clock(self, db, now: float) -> None:
        """Refuse to verify with a wall clock earlier than a trust-list timestamp seen."""
        newest = float(sync_status.get(db, "trust_newest_at") or 0.0)
        if now + self.clock_tolerance < newest:
            raise ClockNotTrusted("this kiosk's clock is wrong; tokens cannot be checked until it is fixed",
                                  {"now": now, "newestTrusted": newest})

    def _usable(self, db, claims: tokens.Claims) -> str:
        return tokens.usable(db, claims)

    def _peek(self, db, claims: tokens.Claims) -> dict:
        """What :meth:`check` answers: who the code is for; nothing written."""
        name = self._usable(db, claims)
        return {"hotelId": claims.hotel_id, "user": {"id": claims.subject, "role": claims.role, "name": name}}

    def _claim(self, db, claims: tokens.Claims, now: float) -> str | None:
        """Claim a one-time code at the upstream before consuming it (kiosk/claims.py); refuse
        it if another kiosk holds it.  Outside the scan's transaction: no write lock is held
        while the cloud answers.  Returns the stamp the cloud gave the consumption, if any."""
        link = self.upstream.current()
        if claims.reusable or link is None or db.conn.in_transaction:
            return None  # nothing to claim, or nobody to ask: decide alone, as offline
        self._usable(db, claims)  # refused here anyway (used, revoked): nothing to claim
        out = self.upstream.claim(link, hotel_id=claims.hotel_id, jti=claims.jti, at=now)
        if out.used_elsewhere:
            raise TokenAlreadyUsed("this code was already used at another kiosk",
                                   {"usedAt": out.used_at, "kioskId": out.kiosk_id})
        return out.hlc

    def _consume(self, db, req: ScanRequest, claims: tokens.Claims, client: str, now: float) -> dict:
        hotel = claims.hotel_id
        claimed_hlc = self._claim(db, claims, now)
        with store.transaction(db):
            name = self._usable(db, claims)

            def consume(s: sessions.Session) -> None:
                queued = outbox.enqueue(db, hotel_id=hotel, kind="token.used", entity_type="qr_token",
                                        entity_id=claims.jti, node=self.node, now=now,
                                        payload={"jti": claims.jti, "sessionId": s.id,
                                                 "kioskId": self.node, "consumedAt": now})
                # claimed: recorded with the cloud's stamp for it, so this kiosk judges a later
                # replay as the cloud and the other kiosks do
                tokens.consume(db, hotel_id=hotel, jti=claims.jti, kiosk_id=self.node, session_id=s.id, now=now,
                               hlc=claimed_hlc or queued.hlc)

            return self.open(db, hotel=hotel, subject=claims.subject, role=claims.role, name=name,
                             jti=claims.jti, scan_method=req.scanMethod, client=client, now=now,
                             after_open=None if claims.reusable else consume)

    def open(self, db, *, hotel: str, subject: str, role: str, name: str, jti: str, scan_method: str,
             client: str, now: float, after_open=None) -> dict:
        """Open the session, start its workflow, write the audit and outbox rows; returns the
        scan's success body.  Call inside the caller's transaction (the scan's, or a booking
        sign-in's: kiosk/booking.py).  ``after_open(session)`` runs right after the session row."""
        s = sessions.open_session(db, hotel_id=hotel, user_id=subject, role=role, display_name=name, jti=jti,
                                  scan_method=scan_method, client=client, now=now, ttl=self.ttl)
        if after_open is not None:
            after_open(s)
        models = workflows.start(db, hotel_id=hotel, session_id=s.id, role=role, now=now)
        audit.record(db, hotel_id=hotel, event="scan", outcome="success", at=now,
                     actor=subject, session_id=s.id, jti=jti, client=client,
                     details={"role": role, "scanMethod": scan_method})
        outbox.enqueue(db, hotel_id=hotel, kind="session.opened", entity_type="session",
                       entity_id=s.id, node=self.node, now=now,
                       payload={"sessionId": s.id, "userId": subject, "role": role,
                                "jti": jti, "kioskId": self.node, "openedAt": now,
                                "triggeredAIModels": models})
        return {
            "success": True,
            "sessionId": s.id,
            "sessionJWT": sessions.mint(self.keys.session_secret, s, now),
            "expiresAt": iso(s.expires_at),
            "hotelId": hotel,
            "user": {"id": subject, "role": role, "name": name},
            "triggeredAIModels": models,
        }
