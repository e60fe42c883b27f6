"""What every authenticated route does: the device of the credential, the hotel it may
read or write, the body as JSON, the app's clock, and the fleet-health headers kept."""

from __future__ import annotations

import logging

from flask import current_app, g, request

from kiosk.errors import KioskError, ValidationError
from kiosk.validation import loads_bounded

from .. import devices, fleet

log = logging.getLogger("kiosk.cloud")


def now() -> float:
    return current_app.config["CLOUD_CLOCK"].now()


def device() -> devices.Device:
    """The device of ``Authorization: Bearer <credential>``; 401 without a valid one."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    found = devices.authenticate(g.db, credential.strip()) if scheme.lower() == "bearer" else None
    if found is None:
        log.warning("bad credential", extra={"path": request.path, "client": request.remote_addr})
        raise KioskError("a valid device credential is required (Authorization: Bearer …)", {},
                         code="UNAUTHORIZED")
    return found


def hotel(hotel_id: str) -> devices.Device:
    """:func:`device`, which must serve ``hotel_id`` (403 otherwise)."""
    found = device()
    if not found.serves(hotel_id):
        raise KioskError(f"this credential is not for hotel {hotel_id}", {"hotelId": hotel_id},
                         code="FORBIDDEN")
    return found


def json_body(data: bytes):
    """The body as JSON; not JSON (not UTF-8, or holding NaN, Infinity or 1e400) is a 400.  Lone
    surrogates (``"\\ud800"``) parse; what may hold them is judged where it is used (a push's
    entries: per entry)."""
    try:
        return loads_bounded(data, strict=True)
    except (ValueError, RecursionError):
        raise ValidationError("the request body is not JSON", {"fields": [{"field": "(body)"}]}) from None


def seen(dev: devices.Device, kind: str) -> None:
    """Keep the fleet-health headers of this request (docs/sync-protocol.md); never fails it."""
    try:
        fleet.seen(g.db, dev.device_id, fleet.report(request.headers), kind=kind, now=now(),
                   memo=current_app.extensions.setdefault("kiosk.fleet_seen", {}))
    except Exception:
        log.exception("fleet health not recorded", extra={"deviceId": dev.device_id})
