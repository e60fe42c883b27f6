"""Devices (kiosks) and their credentials.

A credential is 32 random bytes, URL-safe base64; only its SHA-256 is stored,
so it is shown once, by :func:`add_device`.  A device serves one or more hotels.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

from kiosk.errors import NotFound, ValidationError

from . import storage

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True)
class Device:
    device_id: str
    hotels: tuple[str, ...]

    def serves(self, hotel_id: object) -> bool:
        return isinstance(hotel_id, str) and hotel_id in self.hotels


def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def add_device(db, device_id: str, hotels: list[str], now: float | None = None, *,
               rotate: bool = False) -> str:
    """Register ``device_id`` for ``hotels`` and return its new credential (stored only hashed).

    A device that exists and is active keeps its credential unless ``rotate`` is given
    (VALIDATION_ERROR: replacing it would lock the kiosk out until it is linked again);
    with ``rotate`` it gets a new credential (the old one stops working) and these hotels.
    A revoked device becomes active again with a new credential either way.
    :func:`exists` tells a caller which case it was.
    """
    if not _ID.match(device_id or ""):
        raise ValidationError(f"not a device id: {device_id!r} (letters, digits, . _ : -; up to 64)",
                              {"field": "deviceId"})
    hotels = sorted(set(hotels))
    bad = [h for h in hotels if not _ID.match(h)]
    if not hotels or bad:
        raise ValidationError(f"give one or more hotel ids (bad: {bad})", {"field": "hotels"})
    credential = secrets.token_urlsafe(32)
    with storage.transaction(db):
        if not rotate and exists(db, device_id) == "active":
            raise ValidationError(f"device {device_id!r} exists and its credential works; a new one would lock"
                                  " the kiosk out until it is linked again", {"field": "deviceId", "exists": True},
                                  hint="give --rotate to replace its credential (then `kiosk-agent link` the"
                                       " kiosk with the new one), or `kiosk-cloud device list`")
        db.execute(
            "INSERT INTO devices (device_id, hotels, credential_hash, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(device_id) DO UPDATE SET hotels = excluded.hotels,"
            " credential_hash = excluded.credential_hash, revoked_at = NULL",
            [device_id, json.dumps(hotels), credential_hash(credential), time.time() if now is None else now])
    return credential


def exists(db, device_id: str) -> str | None:
    """``"active"``, ``"revoked"`` or None (no such device)."""
    row = db.execute("SELECT revoked_at FROM devices WHERE device_id = ?", [device_id]).fetchone()
    return None if row is None else ("active" if row[0] is None else "revoked")


def revoke_device(db, device_id: str, now: float) -> None:
    """Its credential stops working at once."""
    with storage.transaction(db):
        cur = db.execute("UPDATE devices SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL",
                         [now, device_id])
        if cur.rowcount == 0:
            raise NotFound(f"no active device {device_id!r}", {"deviceId": device_id})


def authenticate(db, credential: str | None) -> Device | None:
    """The active device holding ``credential``, or None.

    The lookup is by the credential's SHA-256 (which tells a caller nothing
    about the credential), then the hashes are compared in constant time.
    """
    if not credential or len(credential) > 256:
        return None
    digest = credential_hash(credential)
    row = db.execute("SELECT device_id, hotels, credential_hash FROM devices"
                     " WHERE credential_hash = ? AND revoked_at IS NULL", [digest]).fetchone()
    if row is None or not hmac.compare_digest(row[2], digest):
        return None
    return Device(row[0], tuple(json.loads(row[1])))


def list_devices(db) -> list[dict]:
    return [{"deviceId": r[0], "hotels": json.loads(r[1]), "createdAt": r[2], "revokedAt": r[3]}
            for r in db.execute("SELECT device_id, hotels, created_at, revoked_at FROM devices ORDER BY device_id")]
