"""One error vocabulary, from library to HTTP.

Every failure a user or script can see is a :class:`KioskError` with a stable
``code``; the HTTP layer turns it into the seed's error body, the CLI into a
one-line message ``error: CODE: message (hint)`` and a non-zero exit.
docs/errors.md lists every code, docs/troubleshooting.md says what to do about
each, and tests keep both equal to :data:`HTTP_STATUS`.
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
    "BUSY": 429,
    "KEY_CONFLICT": 409,
    "HOST_NOT_ALLOWED": 421,
    "CONFIG_ERROR": 500,
    "NOT_INITIALISED": 503,
    "STORE_BUSY": 503,
    "DATABASE_UNAVAILABLE": 503,
    "CLOCK_NOT_TRUSTED": 503,
    "STORAGE_FULL": 507,
    "SCHEMA_TOO_NEW": 500,
    "ADDRESS_IN_USE": 500,
    "CAMERA_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}

#: code -> what to do, for people at a command line: ``error: CODE: message (hint)``.
#: An error may carry a more specific ``hint``; docs/troubleshooting.md says more.
HINTS: dict[str, str] = {
    "VALIDATION_ERROR": "check the value against `--help` or docs/errors.md",
    "INVALID_TOKEN": "issue a new code with `kiosk token create`; the kiosk's trust list must hold the signing key",
    "TOKEN_EXPIRED": "issue a new code with `kiosk token create`",
    "TOKEN_REVOKED": "issue a new code with `kiosk token create`",
    "TOKEN_ALREADY_USED": "a one-time code opens one session; issue a new one, or a --reusable one",
    "HOTEL_MISMATCH": "use a hotel this kiosk serves (property.hotels in the config)",
    "UNAUTHORIZED": "scan a code first: POST /api/qr/scan",
    "SESSION_EXPIRED": "scan a code again to open a new session",
    "FORBIDDEN": "use a code of a role that may do this",
    "NOT_FOUND": "list what exists first (e.g. `kiosk token list`)",
    "INVALID_TRANSITION": "move the work order through the allowed statuses (details.allowed)",
    "VERSION_CONFLICT": "reload the work order and apply the change again",
    "METHOD_NOT_ALLOWED": "see docs/openapi.yaml for the methods the path serves",
    "IDEMPOTENCY_KEY_REUSED": "use a new Idempotency-Key for a different push",
    "CURSOR_EXPIRED": "the agent re-syncs by itself; `kiosk-agent resync` does it at once",
    "PAYLOAD_TOO_LARGE": "send less (server.max_body_bytes)",
    "RATE_LIMITED": "wait details.retryAfter seconds",
    "BUSY": "the kiosk is at its limit of work in flight; try again after details.retryAfter seconds",
    "KEY_CONFLICT": "this idempotency key was already used for another hotel or device; the entry needs a new key",
    "HOST_NOT_ALLOWED": "open the kiosk by an address listed in server.allowed_hosts",
    "CONFIG_ERROR": "fix the key named in the file or environment variable named",
    "NOT_INITIALISED": "every command of one kiosk needs the same --data-dir or KIOSK_DATA_DIR",
    "STORE_BUSY": "another process holds the database; try again",
    "DATABASE_UNAVAILABLE": "check that PostgreSQL runs and --database (host, port, name, role, password) is right;"
                            " `pg_isready -h HOST -p PORT` tells",
    "CLOCK_NOT_TRUSTED": "set the clock right (NTP: `timedatectl set-ntp true`), then try again",
    "STORAGE_FULL": "free disk space under the data directory (see docs/troubleshooting.md), then try again",
    "SCHEMA_TOO_NEW": "install the newer version again, or restore a backup made by this version",
    "ADDRESS_IN_USE": "stop the other server (`ss -ltnp` shows it) or choose another --port",
    "CAMERA_UNAVAILABLE": "check the cable and `ls /dev/video*`, or camera.source and camera.uri",
    "INTERNAL_ERROR": "a bug or a broken environment; KIOSK_DEBUG=1 shows the traceback, the log has it too",
}


class KioskError(Exception):
    """A failure with a stable code, a human message and structured details."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, code: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if self.code not in HTTP_STATUS:  # pragma: no cover - programming error
            raise ValueError(f"unknown error code {self.code}")
        self.message = message
        self.details = details or {}
        self.hint = hint or HINTS.get(self.code, "")

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


class Busy(KioskError):
    """Too much work in flight (model runs, event streams); ``details['retryAfter']`` in seconds."""

    code = "BUSY"


class KeyConflict(KioskError):
    """An idempotency key already names an effect of another hotel or device."""

    code = "KEY_CONFLICT"


class HostNotAllowed(KioskError):
    """The request's Host header is not one of ``server.allowed_hosts``."""

    code = "HOST_NOT_ALLOWED"


class ConfigError(KioskError):
    """The configuration has an unknown or invalid key; the message names key and file."""

    code = "CONFIG_ERROR"


class NotInitialised(KioskError):
    """The data directory has no keys yet; run ``kiosk init``."""

    code = "NOT_INITIALISED"


class StoreBusy(KioskError):
    """The local database stayed locked past the busy timeout."""

    code = "STORE_BUSY"


class DatabaseUnavailable(KioskError):
    """The cloud's PostgreSQL did not answer (down, unreachable, or it refused the login)."""

    code = "DATABASE_UNAVAILABLE"


class ClockNotTrusted(KioskError):
    """The wall clock is earlier than a trust-list timestamp this kiosk has seen."""

    code = "CLOCK_NOT_TRUSTED"


class StorageFull(KioskError):
    """The disk (or the database's size limit) is full; nothing was changed."""

    code = "STORAGE_FULL"


class SchemaTooNew(KioskError):
    """The database was written by a newer version (its schema version is past this one's)."""

    code = "SCHEMA_TOO_NEW"


class AddressInUse(KioskError):
    """Another process already listens on the host and port a server was asked to use."""

    code = "ADDRESS_IN_USE"


class CameraUnavailable(KioskError):
    """The configured frame source delivered no frame: no camera, no folder, no file, no stream."""

    code = "CAMERA_UNAVAILABLE"
