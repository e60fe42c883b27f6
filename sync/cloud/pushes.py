"""A push request: per-device ``Idempotency-Key`` memory around :mod:`.apply`.

The lookup, the entries' effects and the remembered response body share one
transaction.  A repeat of a key answers the original body, provided it was for
the same entry keys and held no ``retry`` (a retry promises nothing, so such a
push is worked out afresh).
"""

from __future__ import annotations

import hashlib
import json

from kiosk import jsontext
from kiosk.errors import KioskError

from . import storage, validation
from .apply import prepare, served_hotels
from .devices import Device
from .validation import MAX_CLOCK_SKEW_SECONDS

#: the purge of remembered pushes older than a cutoff, a chunk at a time (:mod:`.retention`)
PURGE_SQL = ("DELETE FROM push_requests WHERE (device_id, idempotency_key) IN (SELECT device_id,"
             " idempotency_key FROM push_requests WHERE at < ? ORDER BY at LIMIT ?)")


def digest(entries: list[dict], texts: list[str | None] | None = None) -> str:
    """What a push said, independent of key order and spacing: ``2:`` and the SHA-256 of its
    entries as :func:`.validation.text_of` writes them (sorted keys, compact; ``texts`` if the
    caller has them already, as the push does: no second pass over the entries)."""
    texts = [validation.text_of(e) for e in entries] if texts is None else texts
    body = "[" + ",".join("null" if t is None else t for t in texts) + "]"
    return "2:" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def _digest_v1(entries: list[dict]) -> str:
    """The digest remembered before ``2:`` (characters escaped to ASCII): a retry that spans
    the upgrade is still known for the same push."""
    return hashlib.sha256(json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def same_push(remembered: str, entries: list[dict], body_digest: str) -> bool:
    """Whether a remembered digest is of the push now made (``body_digest``, :func:`digest`)."""
    return remembered == body_digest or (not remembered.startswith("2:") and remembered == _digest_v1(entries))


def respond(db, device: Device, entries: list[dict], now: float, idempotency_key: str | None = None,
            max_skew: float = MAX_CLOCK_SKEW_SECONDS) -> tuple[dict, bool]:
    """``(response body, replayed)`` for one push whose body passed validation.push_body.

    The same ``Idempotency-Key`` with a different body is refused (``IDEMPOTENCY_KEY_REUSED``,
    HTTP 422, as the IETF idempotency-key draft and Stripe answer): applying it as new would
    make the key mean two things."""
    texts = [validation.text_of(raw) for raw in entries]  # once: the digest, the checks, the size
    body_digest = digest(entries, texts)
    with storage.pipeline(db), storage.transaction(db):
        # PostgreSQL with several workers: one push per hotel at a time (hotels in parallel),
        # so a twin with the same key waits and then finds the first answer, and two kiosks'
        # edits of one entity are judged in one order; only the hotels this device serves
        # (its entries for any other hotel are refused without taking that hotel's lock)
        storage.lock_hotels(db, served_hotels(device, entries))
        push = prepare(db, device, entries, now, max_skew, texts)  # its first reads sent with the key's
        if idempotency_key:
            row = db.execute("SELECT response, body_sha256 FROM push_requests WHERE device_id = ?"
                             " AND idempotency_key = ?", [device.device_id, idempotency_key]).fetchone()
            if row is not None:
                body = json.loads(row[0])
                same = same_push(row[1], entries, body_digest) if row[1] else \
                    [r["key"] for r in body["results"]] == [e.get("key") for e in entries]
                if not same:
                    raise KioskError("this Idempotency-Key was used for a different push; use a new key",
                                     {"field": "Idempotency-Key"}, code="IDEMPOTENCY_KEY_REUSED")
                return body, True
        body = {"results": push.run(), "serverTime": now}
        if idempotency_key and all(r["status"] != "retry" for r in body["results"]):
            db.execute("INSERT INTO push_requests (device_id, idempotency_key, response, at, body_sha256)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT(device_id, idempotency_key) DO UPDATE SET"
                       " response = excluded.response, at = excluded.at, body_sha256 = excluded.body_sha256",
                       [device.device_id, idempotency_key, jsontext.compact(body, sort_keys=False), now,
                        body_digest])
    return body, False
