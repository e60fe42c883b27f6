"""Kiosks' audit checkpoints (``audit.checkpoint``; kiosk/audit.py, docs/audit-log.md).

A kiosk's audit log is a hash chain; every few minutes it signs a checkpoint of it — its
length and head hash, and the (length, hash) of its previous checkpoint as its chain holds it
now — with its Ed25519 key and pushes it.  The cloud sees no rows, only checkpoints, so its
rule is about them: a checkpoint is accepted when its signature is good and it extends the
last one the cloud accepted for the kiosk — it names that one as its previous (same length,
same hash) and is not shorter.  Anything else is refused ``AUDIT_REWRITTEN`` (a rewritten or
truncated history, or a kiosk restored from an older backup) or ``AUDIT_SIGNATURE``, kept as
evidence (status ``refused``), and raises a security event for the hotel's kiosks — once per
break: later refusals after the same last accepted checkpoint are kept without a new event.

The key: the kiosk signs with ``keys/issuer.pem``, the key it signs its own tokens with.  The
cloud's ``trust_keys`` holds only keys the cloud made (a kiosk's key never reaches it), so it
cannot look the kid up: each checkpoint carries its public key, and the first checkpoint the
cloud accepts for a kiosk pins it (trust on first use).  A later checkpoint under another key
is refused ``AUDIT_SIGNATURE``.

This module owns ``audit_checkpoints``.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.audit import signature_ok
from kiosk.trust import key_id, unb64u

from .results import Rejected
from .validation import Entry

REWRITTEN = "AUDIT_REWRITTEN"
SIGNATURE = "AUDIT_SIGNATURE"
_HASH_CHARS = 64

_COLUMNS = ("id, kiosk_id, hotel_id, hotels, length, head_hash, prev_length, prev_hash, made_at, kid, public_key,"
            " body, signature, status, reason, entry_key, received_at")


def _parse(e: Entry) -> tuple[dict, str, str, Ed25519PublicKey]:
    """The checkpoint's body, its text and signature, and the key it names (INVALID_ENTRY when
    it is not a checkpoint at all)."""
    text, signature = e.payload.get("checkpoint"), e.payload.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str) or len(text) > 8192 or len(signature) > 200:
        raise Rejected("INVALID_ENTRY", "payload: a checkpoint (text) and its signature (text)")
    try:
        body = json.loads(text)
    except ValueError:
        raise Rejected("INVALID_ENTRY", "payload.checkpoint: not JSON") from None
    if not isinstance(body, dict):
        raise Rejected("INVALID_ENTRY", "payload.checkpoint: not an object")
    ints = ("length", "prevLength")
    texts = ("kioskId", "headHash", "prevHash", "kid", "publicKey")
    bad = [f for f in ints if not (type(body.get(f)) is int and body[f] >= 0)]
    bad += [f for f in texts if not isinstance(body.get(f), str)]
    bad += [f for f in ("headHash", "prevHash") if isinstance(body.get(f), str) and len(body[f]) > _HASH_CHARS]
    if not isinstance(body.get("at"), int | float) or isinstance(body.get("at"), bool):
        bad.append("at")
    hotels = body.get("hotels")
    if not isinstance(hotels, list) or not hotels or not all(isinstance(h, str) for h in hotels):
        bad.append("hotels")
    if bad:
        raise Rejected("INVALID_ENTRY", f"payload.checkpoint: bad or missing {', '.join(bad)}")
    if body["kioskId"] != e.entityId:
        raise Rejected("INVALID_ENTRY", f"the checkpoint is {body['kioskId']!r}'s, the entry {e.entityId!r}'s")
    if e.hotelId not in hotels:
        raise Rejected("INVALID_ENTRY", f"the checkpoint does not name the entry's hotel {e.hotelId}")
    try:
        public = Ed25519PublicKey.from_public_bytes(unb64u(body["publicKey"]))
    except (ValueError, TypeError):
        raise Rejected("INVALID_ENTRY", "payload.checkpoint.publicKey: not an Ed25519 public key") from None
    return body, text, signature, public


def _last(db, kiosk_id: str) -> dict | None:
    rows = list(db.query(f"SELECT {_COLUMNS} FROM audit_checkpoints WHERE kiosk_id = ? AND status = 'accepted'"
                         " ORDER BY id DESC LIMIT 1", [kiosk_id]))
    return rows[0] if rows else None


def _pinned(db, kiosk_id: str) -> str | None:
    row = db.execute("SELECT public_key FROM audit_checkpoints WHERE kiosk_id = ? AND status = 'accepted'"
                     " ORDER BY id LIMIT 1", [kiosk_id]).fetchone()
    return row[0] if row else None


def _store(db, e: Entry, body: dict, text: str, signature: str, now: float, status: str,
           reason: str | None) -> None:
    db.execute("INSERT INTO audit_checkpoints (kiosk_id, hotel_id, hotels, length, head_hash, prev_length, prev_hash,"
               " made_at, kid, public_key, body, signature, status, reason, entry_key, received_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [body["kioskId"], e.hotelId, json.dumps(body["hotels"]), body["length"], body["headHash"],
                body["prevLength"], body["prevHash"], float(body["at"]), body["kid"][:64], body["publicKey"][:100],
                text, signature, status, reason, e.key, now])


def record(db, e: Entry, now: float) -> list[dict]:
    """Apply one pushed checkpoint: accepted and kept, or refused (kept, and a security event)."""
    body, text, signature, public = _parse(e)
    kiosk = body["kioskId"]
    # the same entry again after its remembered answer was purged: already accepted, nothing new
    if db.execute("SELECT 1 FROM audit_checkpoints WHERE kiosk_id = ? AND entry_key = ? AND status = 'accepted'",
                  [kiosk, e.key]).fetchone():
        return []
    last = _last(db, kiosk)
    pinned = _pinned(db, kiosk)
    refusal = None
    if key_id(public) != body["kid"] or not signature_ok(text, signature, public):
        refusal = (SIGNATURE, "the checkpoint's signature does not verify with the key it names")
    elif pinned is not None and pinned != body["publicKey"]:
        refusal = (SIGNATURE, f"signed with key {body['kid']}, not with the key this kiosk's first checkpoint"
                              " pinned")
    elif last is not None and (body["prevLength"], body["prevHash"]) != (last["length"], last["head_hash"]):
        refusal = (REWRITTEN, f"it names ({body['prevLength']}, {body['prevHash'][:12]}…) as its previous"
                              f" checkpoint; the last one accepted is ({last['length']}, {last['head_hash'][:12]}…):"
                              " the history that checkpoint covered was rewritten, or this kiosk's checkpoints"
                              " were made from another copy of it")
    elif body["length"] < body["prevLength"] or (last is not None and body["length"] < last["length"]):
        refusal = (REWRITTEN, f"{body['length']} rows, fewer than the {body['prevLength']} of its previous"
                              " checkpoint: rows were deleted")
    if refusal is None:
        _store(db, e, body, text, signature, now, "accepted", None)
        return []
    code, why = refusal

    def keep(reason: str) -> None:
        from . import events  # the cloud's security events (owner of security_events)

        announced = db.execute("SELECT 1 FROM audit_checkpoints WHERE kiosk_id = ? AND status = 'refused'"
                               " AND id > ?", [kiosk, last["id"] if last else 0]).fetchone()
        _store(db, e, body, text, signature, now, "refused", reason)
        if announced is None:  # the first refusal since the last accepted checkpoint: one event per break
            details: dict[str, Any] = {
                "kioskId": kiosk, "reason": reason, "checkpoint": {k: body[k] for k in (
                    "length", "headHash", "prevLength", "prevHash", "at", "kid")},
                "lastAccepted": last and {"length": last["length"], "headHash": last["head_hash"],
                                          "at": last["made_at"], "kid": last["kid"]}}
            events.security_event(db, e.hotelId, code, kiosk, f"audit:{kiosk}:{e.key}", details, e.hlc, now)

    raise Rejected(code, why, after_rollback=keep)  # kept after the entry's rollback (apply.py)


# --- reading and verifying ----------------------------------------------------------------------

def kiosks_of(db, hotel_id: str) -> list[str]:
    """The kiosks with checkpoints for ``hotel_id`` (pushed under it, or naming it)."""
    rows = db.execute("SELECT DISTINCT kiosk_id FROM audit_checkpoints WHERE hotel_id = ? OR hotels LIKE ?",
                      [hotel_id, f'%{json.dumps(hotel_id)}%']).fetchall()
    return sorted(r[0] for r in rows)


def checkpoints(db, kiosk_id: str) -> list[dict]:
    return list(db.query(f"SELECT {_COLUMNS} FROM audit_checkpoints WHERE kiosk_id = ? ORDER BY id", [kiosk_id]))


def verify_kiosk(db, kiosk_id: str) -> dict:
    """Check a kiosk's accepted checkpoints are one consistent sequence under one key: each
    signature good (under the pinned key), each naming the one before as its previous, none
    shorter; refused checkpoints are counted and make the kiosk not ok (a break to look into)."""
    problems: list[dict] = []
    rows = checkpoints(db, kiosk_id)
    accepted = [r for r in rows if r["status"] == "accepted"]
    refused = [r for r in rows if r["status"] == "refused"]
    pinned = accepted[0]["public_key"] if accepted else None
    before = None
    for r in accepted:
        try:
            body = json.loads(r["body"])
            public = Ed25519PublicKey.from_public_bytes(unb64u(r["public_key"]))
        except (ValueError, TypeError):
            problems.append({"checkpoint": r["id"], "reason": "its stored body or key does not parse"})
            continue
        if r["public_key"] != pinned or not signature_ok(r["body"], r["signature"], public):
            problems.append({"checkpoint": r["id"], "reason": "its signature does not verify with the pinned key"})
        elif not isinstance(body, dict) or (body.get("length"), body.get("headHash"), body.get("prevLength"),
                                            body.get("prevHash")) != (r["length"], r["head_hash"], r["prev_length"],
                                                                      r["prev_hash"]):
            problems.append({"checkpoint": r["id"], "reason": "its columns are not what was signed"})
        if before is not None:
            if (r["prev_length"], r["prev_hash"]) != (before["length"], before["head_hash"]):
                problems.append({"checkpoint": r["id"], "reason": f"it does not name checkpoint {before['id']}"
                                                                  " as its previous"})
            elif r["length"] < before["length"]:
                problems.append({"checkpoint": r["id"], "reason": "it is shorter than the one before"})
        before = r
    for r in refused:
        problems.append({"checkpoint": r["id"], "reason": f"refused: {r['reason']}"})
    last = accepted[-1] if accepted else None
    return {"kioskId": kiosk_id, "ok": not problems, "accepted": len(accepted), "refused": len(refused),
            "kid": last and last["kid"], "length": last and last["length"], "headHash": last and last["head_hash"],
            "lastAt": last and last["made_at"], "problems": problems[:100]}


def verify_hotel(db, hotel_id: str) -> dict:
    kiosks = [verify_kiosk(db, k) for k in kiosks_of(db, hotel_id)]
    return {"hotelId": hotel_id, "ok": all(k["ok"] for k in kiosks), "kiosks": kiosks}
