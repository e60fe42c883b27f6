"""One error vocabulary, from library to HTTP.

Every failure a user or script can see is a :class:`KioskError` with a stable
``code``; the HTTP layer turns it into the seed's error body, the CLI into a
one-line message and a non-zero exit.  docs/errors.md lists every code and a
test keeps the two equal.
"""

from __future__ import annotations

from typing import Any

#: code -> HTTP status.  The keys are the public contract.
HTTP_STATUS: dict[str, int] = {
    "VALIDATION_ERROR": 400,
    "INVALID_TOKEN": 401,
    "TOKEN_EXPIRED": 401,
    "TOKEN_REVOKED": 401,
    "TOKEN_ALREADY_USED": 409,
    "HOTEL_MISMATCH": 403,
    "UNAUTHORIZED": 401,
    "SESSION_EXPIRED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "INVALID_TRANSITION": 409,
    "VERSION_CONFLICT": 409,
    "METHOD_NOT_ALLOWED": 405,
    "IDEMPOTENCY_KEY_REUSED": 422,
    "CURSOR_EXPIRED": 410,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "CONFIG_ERROR": 500,
    "NOT_INITIALISED": 503,
    "STORE_BUSY": 503,
    "CLOCK_NOT_TRUSTED": 503,
    "INTERNAL_ERROR": 500,
}


class KioskError(Exception):
    """A failure with a stable code, a human message and structured details."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if self.code not in HTTP_STATUS:  # pragma: no cover - programming error
            raise ValueError(f"unknown error code {self.code}")
        self.message = message
        self.details = details or {}

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationError(KioskError):
    """The input does not have the documented shape."""

    code = "VALIDATION_ERROR"


class InvalidToken(KioskError):
    """Signature, key id, algorithm or claims of a token are not acceptable."""

    code = "INVALID_TOKEN"


class TokenExpired(KioskError):
    """The token's ``exp`` lies in the past (beyond the leeway)."""

    code = "TOKEN_EXPIRED"


class TokenRevoked(KioskError):
    """The token was revoked by an admin or by the cloud."""

    code = "TOKEN_REVOKED"


class TokenAlreadyUsed(KioskError):
    """A one-time token was consumed before; ``details['usedAt']`` says when."""

    code = "TOKEN_ALREADY_USED"


class HotelMismatch(KioskError):
    """The token, key or request belongs to another hotel than the one asked for."""

    code = "HOTEL_MISMATCH"


class Unauthorized(KioskError):
    """No session credential came with the request."""

    code = "UNAUTHORIZED"


class SessionExpired(KioskError):
    """The session ended: expired, terminated, or unknown."""

    code = "SESSION_EXPIRED"


class Forbidden(KioskError):
    """The session's role may not use this route."""

    code = "FORBIDDEN"


class NotFound(KioskError):
    """No such resource in the caller's hotel."""

    code = "NOT_FOUND"


class InvalidTransition(KioskError):
    """A work-order status change the state machine does not allow; details carry from/to/allowed."""

    code = "INVALID_TRANSITION"


class VersionConflict(KioskError):
    """The caller's ``expectedVersion`` is not the row's current version."""

    code = "VERSION_CONFLICT"


class CursorExpired(KioskError):
    """A pull's cursor is older than the cloud's retained change log; re-sync from a snapshot."""

    code = "CURSOR_EXPIRED"


class RateLimited(KioskError):
    """Too many failed attempts from one client; ``details['retryAfter']`` in seconds."""

    code = "RATE_LIMITED"


class ConfigError(KioskError):
    """The configuration has an unknown or invalid key; the message names key and file."""

    code = "CONFIG_ERROR"


class NotInitialised(KioskError):
    """The data directory has no keys yet; run ``kiosk init``."""

    code = "NOT_INITIALISED"


class StoreBusy(KioskError):
    """The local database stayed locked past the busy timeout."""

    code = "STORE_BUSY"


class ClockNotTrusted(KioskError):
    """The wall clock is earlier than a trust-list timestamp this kiosk has seen."""

    code = "CLOCK_NOT_TRUSTED"
