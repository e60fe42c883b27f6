"""The cloud's signing keys and token revocations, sent to kiosks by pull.

A key the cloud creates signs tokens for its hotels (e.g. issued at booking, before
the guest reaches any kiosk).  Its public half goes to every kiosk of those hotels
as a ``trust_key`` change; retiring it sends the same key with status ``retired``,
and kiosks then refuse tokens with its ``kid``.  The private key stays in the
cloud's database (a real deployment would keep it in an HSM or KMS).
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from kiosk import tokens
from kiosk.clock import iso
from kiosk.errors import NotFound, ValidationError
from kiosk.trust import TrustedKey, key_id, new_signing_key

from . import changelog, events, storage

ISSUER = "cloud"


def _publish(db, key: TrustedKey, now: float) -> None:
    stamp = changelog.stamp(db, now)
    for hotel in key.hotels:
        changelog.record(db, hotel_id=hotel, entity_type="trust_key", entity_id=key.kid, data=key.to_json(),
                         hlc_stamp=stamp, now=now)


def put_public(db, hotel_id: str, ch: dict, now: float) -> None:
    """A signing key the chain's cloud made, sent down to a hub: its public half kept (the
    private one stays in the chain) and logged for the hub's kiosks of ``hotel_id``."""
    d = ch["data"] or {}
    key = TrustedKey.from_json(d)  # a key that does not parse is refused here, not at the kiosks
    db.execute("INSERT INTO trust_keys (kid, data, private_pem, status, added_at, retired_at)"
               " VALUES (?, ?, NULL, ?, ?, ?) ON CONFLICT (kid) DO UPDATE SET data = excluded.data,"
               " status = excluded.status, retired_at = excluded.retired_at",
               [key.kid, json.dumps(d, sort_keys=True), key.status, now, now if key.status == "retired" else None])
    changelog.record(db, hotel_id=hotel_id, entity_type="trust_key", entity_id=key.kid, data=d,
                     hlc_stamp=ch.get("hlc") or "", now=now)


def create(db, hotels: list[str], now: float) -> dict:
    """A new active signing key for ``hotels``; returns its public description."""
    if not hotels:
        raise ValidationError("a key needs at least one hotel", {"field": "hotel"})
    private = new_signing_key()
    key = TrustedKey(kid=key_id(private.public_key()), issuer=ISSUER, hotels=tuple(hotels),
                     public_key=private.public_key(), added_at=iso(now))
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    with storage.transaction(db):
        db.execute("INSERT INTO trust_keys (kid, data, private_pem, status, added_at) VALUES (?, ?, ?, 'active', ?)",
                   [key.kid, json.dumps(key.to_json()), pem, now])
        _publish(db, key, now)
    return key.to_json()


def retire(db, kid: str, now: float) -> dict:
    with storage.transaction(db):
        row = db.execute("SELECT data FROM trust_keys WHERE kid = ?", [kid]).fetchone()
        if row is None:
            raise NotFound(f"no cloud key {kid!r}", {"kid": kid})
        data = json.loads(row[0]) | {"status": "retired"}
        db.execute("UPDATE trust_keys SET status = 'retired', retired_at = ?, data = ? WHERE kid = ?",
                   [now, json.dumps(data), kid])
        _publish(db, TrustedKey.from_json(data), now)
    return data


def list_keys(db) -> list[dict]:
    return [json.loads(r[0]) for r in db.execute("SELECT data FROM trust_keys ORDER BY added_at")]


def sign(db, *, hotel_id: str, role: str, now: float, ttl_seconds: int, user_id: str | None = None,
         reusable: bool = False) -> str:
    """A token signed with the newest active cloud key of ``hotel_id``."""
    for data, pem in db.execute("SELECT data, private_pem FROM trust_keys WHERE status = 'active'"
                                " AND private_pem IS NOT NULL"  # a hub holds the chain's public halves only
                                " ORDER BY added_at DESC").fetchall():
        key = TrustedKey.from_json(json.loads(data))
        if hotel_id in key.hotels:
            token, _ = tokens.sign(load_pem_private_key(pem.encode(), password=None), key.kid, issuer=ISSUER,
                                   hotel_id=hotel_id, role=role, user_id=user_id, now=now,
                                   ttl_seconds=ttl_seconds, reusable=reusable)
            return token
    raise NotFound(f"no active cloud key for hotel {hotel_id!r}; run `kiosk-cloud key create`",
                   {"hotelId": hotel_id})


def revoke_token(db, hotel_id: str, jti: str, now: float) -> dict:
    with storage.transaction(db):
        new = events.revoke(db, hotel_id, jti, changelog.stamp(db, now, hotel_id), now, source="cloud")
    return {"jti": jti, "hotelId": hotel_id, "revoked": new}
