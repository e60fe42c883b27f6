"""Token and session entries: recorded in the cloud's event log as the kiosk wrote them.

Two of them also change what every kiosk must know, so they go to the change log:
``token.revoked`` (a revocation made at one kiosk stops the token at all of them)
and ``token.used`` (consumed one-time tokens merge by union; the same token
consumed at two kiosks is a replay, rule ``token-replay`` of :mod:`sync.conflicts`).
A replay is also a security event, logged for pull so that every kiosk of the hotel
shows it, not only the two involved.
"""

from __future__ import annotations

import json

from sync.conflicts import Conflict, replay_order

from . import changelog, guest_vault, storage
from .results import Rejected
from .validation import Entry


def record(db, e: Entry, now: float) -> list[dict]:
    # ON CONFLICT: an entry repeated after its key's retention (docs/sync-protocol.md) is recorded once
    cur = db.execute("INSERT INTO events (key, hotel_id, kind, entity_type, entity_id, payload, hlc, received_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                     [e.key, e.hotelId, e.kind, e.entityType, e.entityId, stored(db, e), e.hlc, now])
    if cur.rowcount == 0:
        # the event log is keyed by the entry key alone: a key whose remembered answer was
        # purged may still name another hotel's event; saying "applied" would lose this one
        row = db.execute("SELECT hotel_id FROM events WHERE key = ?", [e.key]).fetchone()
        if row is not None and row[0] != e.hotelId:
            raise Rejected("KEY_CONFLICT", "this key was used by another device for another hotel")
    if e.kind == "token.revoked":
        revoke(db, e.hotelId, e.entityId, e.hlc, now, source="kiosk")
    elif e.kind == "token.used":
        return consumed(db, e, now)
    return []


def record_many(db, es: list[Entry], now: float) -> list:
    """:func:`record` for a run of entries, each of its own entity, set-wise: the events in
    one multi-row ``INSERT ... RETURNING`` a chunk, the keys it skipped looked up in one
    query, the one-time tokens' uses in another multi-row insert and their other uses in one
    read.  The same answers as one by one; nothing written for a refused entry."""
    out: list = [None] * len(es)
    inserted: set[str] = set()
    for chunk in storage.chunks(es, 100):
        sql, params = storage.insert_rows(
            db, "INSERT INTO events (key, hotel_id, kind, entity_type, entity_id, payload, hlc, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING key",
            [[e.key, e.hotelId, e.kind, e.entityType, e.entityId, stored(db, e), e.hlc, now] for e in chunk])
        inserted |= {r[0] for r in db.execute(sql, params).fetchall()}
    owners: dict[str, str] = {}
    for chunk in storage.chunks([e.key for e in es if e.key not in inserted], 500):
        cond, params = storage.one_of(db, "key", chunk)
        owners |= dict(db.execute(f"SELECT key, hotel_id FROM events WHERE {cond}", params).fetchall())
    used = []
    for i, e in enumerate(es):
        if owners.get(e.key, e.hotelId) != e.hotelId:
            out[i] = Rejected("KEY_CONFLICT", "this key was used by another device for another hotel")
        elif e.kind == "token.used":
            used.append((i, e, *_use(e, now)))
    new_uses, uses = _consume_many(db, [(e.hotelId, e.entityId, kiosk, session, at, e.hlc)
                                        for _, e, kiosk, session, at in used])
    use_of = {i: rest for i, _, *rest in used}
    for i, e in enumerate(es):  # the change log in the entries' order, as one by one
        if out[i] is not None:
            continue
        out[i] = []
        if e.kind == "token.revoked":
            revoke(db, e.hotelId, e.entityId, e.hlc, now, source="kiosk")
        elif i in use_of and (e.hotelId, e.entityId, use_of[i][0]) in new_uses:
            out[i] = _logged_use(db, e, *use_of[i], uses.get((e.hotelId, e.entityId), []), now)
    return out


def stored(db, e: Entry) -> str:
    """An entry's payload as the event log keeps it: the names, contact details and words of the
    guest the kiosk named (``subject``) sealed under their key (sync/cloud/guest_vault.py)."""
    return json.dumps(guest_vault.seal_fields(db, e.hotelId, guest_vault.subject_of(e), e.payload),
                      sort_keys=True, separators=(",", ":"))


def _use(e: Entry, now: float) -> tuple[str, str | None, float]:
    """(kiosk, session, consumedAt) of a ``token.used`` entry."""
    p = e.payload
    return (str(p.get("kioskId") or "?")[:64], p.get("sessionId") if isinstance(p.get("sessionId"), str) else None,
            p.get("consumedAt") if isinstance(p.get("consumedAt"), int | float) else now)


def _consume_many(db, rows: list[tuple]) -> tuple[set, dict]:
    """Insert uses (hotel, jti, kiosk, session, at, hlc); returns the (hotel, jti, kiosk) that
    were new and, for their tokens, every use the cloud holds: (hotel, jti) -> [use, ...]."""
    new: set[tuple] = set()
    for chunk in storage.chunks(rows, 100):
        sql, params = storage.insert_rows(
            db, "INSERT INTO consumptions (hotel_id, jti, kiosk_id, session_id, consumed_at, hlc)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING hotel_id, jti, kiosk_id",
            [list(r) for r in chunk])
        new |= {tuple(r) for r in db.execute(sql, params).fetchall()}
    uses: dict[tuple, list] = {}
    tokens = sorted({(h, j) for h, j, _ in new})
    for chunk in storage.chunks(sorted({j for _, j in tokens}), 500):
        cond, params = storage.one_of(db, "jti", chunk)
        for hotel, jti, kiosk, session, stamp in db.execute(
                f"SELECT hotel_id, jti, kiosk_id, session_id, hlc FROM consumptions WHERE {cond} ORDER BY jti,"
                " kiosk_id", params).fetchall():
            uses.setdefault((hotel, jti), []).append({"kioskId": kiosk, "sessionId": session, "hlc": stamp})
    return new, uses


def revoke(db, hotel_id: str, jti: str, stamp: str, now: float, *, source: str) -> bool:
    """Record a revocation (the first one counts) and log it for pull; False if known."""
    cur = db.execute("INSERT INTO revocations (jti, hotel_id, revoked_at, hlc, source) VALUES (?, ?, ?, ?, ?)"
                     " ON CONFLICT(jti) DO NOTHING", [jti, hotel_id, now, stamp, source])
    if cur.rowcount == 0:
        return False
    changelog.record(db, hotel_id=hotel_id, entity_type="token_revocation", entity_id=jti,
                     data={"jti": jti, "revokedAt": now}, hlc_stamp=stamp, now=now)
    return True


def put_token_change(db, hotel_id: str, ch: dict, now: float) -> None:
    """A revocation or a one-time token's use the chain's cloud sent a hub (made at another
    property's box, or in the chain): recorded at the hub and logged for its kiosks."""
    d = ch["data"] or {}
    if ch["entityType"] == "token_revocation":
        revoke(db, hotel_id, ch["entityId"], ch.get("hlc") or "", now, source="chain")
        return
    cur = db.execute("INSERT INTO consumptions (jti, hotel_id, kiosk_id, session_id, consumed_at, hlc)"
                     " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     [d.get("jti"), hotel_id, d.get("kioskId"), d.get("sessionId"), d.get("consumedAt") or now,
                      d.get("hlc") or ch.get("hlc") or ""])
    if cur.rowcount:
        changelog.record(db, hotel_id=hotel_id, entity_type="token_consumption", entity_id=ch["entityId"], data=d,
                         hlc_stamp=ch.get("hlc") or "", now=now)


def consumed(db, e: Entry, now: float) -> list[dict]:
    kiosk, session, at = _use(e, now)
    cur = db.execute("INSERT INTO consumptions (jti, hotel_id, kiosk_id, session_id, consumed_at, hlc)"
                     " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     [e.entityId, e.hotelId, kiosk, session, at, e.hlc])
    if cur.rowcount == 0:
        return []
    all_uses = [{"kioskId": r[0], "sessionId": r[1], "hlc": r[2]} for r in db.execute(
        "SELECT kiosk_id, session_id, hlc FROM consumptions WHERE hotel_id = ? AND jti = ? ORDER BY kiosk_id",
        [e.hotelId, e.entityId])]
    return _logged_use(db, e, kiosk, session, at, all_uses, now)


def _logged_use(db, e: Entry, kiosk: str, session: str | None, at: float, all_uses: list[dict],
                now: float) -> list[dict]:
    """Log a new use of a one-time token for pull; a second use is a replay (a security event
    and a conflict)."""
    changelog.record(db, hotel_id=e.hotelId, entity_type="token_consumption", entity_id=f"{e.entityId}@{kiosk}",
                     data={"jti": e.entityId, "kioskId": kiosk, "sessionId": session, "consumedAt": at,
                           "hlc": e.hlc}, hlc_stamp=e.hlc, now=now)
    if len(all_uses) < 2:
        return []
    keeper, *others = replay_order(all_uses)
    mine = {"kioskId": kiosk, "sessionId": session, "hlc": e.hlc}
    loser = mine if mine != keeper else others[0]
    outcome = (f"replay: the session at {keeper['kioskId']} (earliest) is kept;"
               f" the one at {loser['kioskId']} is ended")
    security_event(db, e.hotelId, "TOKEN_REPLAY", e.entityId, f"replay:{e.entityId}:{loser['kioskId']}",
                   {"keeper": keeper, "ended": loser, "consumptions": all_uses}, e.hlc, now)
    c = Conflict("qr_token", e.entityId, None, "token-replay", outcome, mine, keeper)
    return [changelog.conflict(db, e.hotelId, c, e.key, now)]


def claim(db, hotel_id: str, jti: str, kiosk_id: str, session_id: str | None, at: float, now: float) -> dict:
    """A kiosk claims a one-time token before it consumes it (``POST /sync/v1/claims``).

    Call inside a transaction holding the hotel's lock (:func:`sync.cloud.storage.lock_hotels`),
    so two kiosks claiming one token go one after the other.  The claim is the consumption row
    that kiosk's later ``token.used`` entry would write (same ``(jti, kiosk)``; that entry is
    then a no-op, so a kiosk's own claim is never a replay), stamped by the cloud's clock and
    logged for pull as :func:`consumed` logs a new one.  Returns ``{"claimed": True, "new",
    "hlc"}`` when no other kiosk holds the token (a repeat by the same kiosk: ``new`` false;
    ``hlc``: the consumption's stamp, which the kiosk records as its own so that it judges a
    later replay as the cloud and the other kiosks do), else ``{"claimed": False, "kioskId",
    "consumedAt"}`` of the use that came first."""
    uses = [{"kioskId": r[0], "sessionId": r[1], "consumedAt": r[2], "hlc": r[3]} for r in db.execute(
        "SELECT kiosk_id, session_id, consumed_at, hlc FROM consumptions WHERE hotel_id = ? AND jti = ?",
        [hotel_id, jti])]
    if uses:
        first = replay_order(uses)[0]
        if first["kioskId"] != kiosk_id:  # held by another kiosk (consumed, claimed, or the replay's keeper)
            return {"claimed": False, "kioskId": first["kioskId"], "consumedAt": first["consumedAt"]}
        return {"claimed": True, "new": False, "hlc": first["hlc"]}
    stamp = changelog.stamp(db, now, hotel_id)
    cur = db.execute("INSERT INTO consumptions (jti, hotel_id, kiosk_id, session_id, consumed_at, hlc)"
                     " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     [jti, hotel_id, kiosk_id, session_id, at, stamp])
    if cur.rowcount == 0:  # (jti, kiosk) already held in another hotel: nothing new to log
        return {"claimed": True, "new": False, "hlc": None}
    changelog.record(db, hotel_id=hotel_id, entity_type="token_consumption", entity_id=f"{jti}@{kiosk_id}",
                     data={"jti": jti, "kioskId": kiosk_id, "sessionId": session_id, "consumedAt": at,
                           "hlc": stamp}, hlc_stamp=stamp, now=now)
    return {"claimed": True, "new": True, "hlc": stamp}


def rewrite_payloads(db, hotel_id: str, payloads: dict[str, dict]) -> int:
    """Replace the payloads of the hotel's events named by key (a guest's erasure,
    sync/cloud/erasure.py: the same event with the guest's words taken out); returns how many."""
    n = 0
    for key, payload in sorted(payloads.items()):
        n += db.execute("UPDATE events SET payload = ? WHERE hotel_id = ? AND key = ?",
                        [json.dumps(payload, sort_keys=True, separators=(",", ":")), hotel_id, key]).rowcount
    return n


def security_event(db, hotel_id: str, kind: str, subject: str, key: str, details: dict, stamp: str,
                   now: float) -> dict:
    """Record a security event in the cloud and log it for pull: every kiosk of the hotel shows
    it, not only the ones involved.  ``key`` is the event's identity, the one the kiosks that
    detect it themselves give it (``replay:JTI:ENDED_KIOSK``), so each kiosk records it once."""
    event_id = db.execute("INSERT INTO security_events (hotel_id, kind, subject, details, detected_at, event_key)"
                          " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                          [hotel_id, kind, subject, json.dumps(details), now, key]).fetchone()[0]
    out = security_event_json(event_id, key, kind, subject, details, now)
    changelog.record(db, hotel_id=hotel_id, entity_type="security_event", entity_id=key, data=out,
                     hlc_stamp=stamp, now=now)
    return out


def security_event_json(event_id: int, key: str | None, kind: str, subject: str, details: dict,
                        detected_at: float) -> dict:
    """A security event as kiosks receive it (pull and snapshot).  An event recorded before
    events had keys gets the key the kiosks give it (a replay's), or one of its own."""
    ended = details.get("ended") if isinstance(details, dict) else None
    if not key and kind == "TOKEN_REPLAY" and isinstance(ended, dict) and ended.get("kioskId"):
        key = f"replay:{subject}:{ended['kioskId']}"
    return {"id": event_id, "key": key or f"cloud-security:{event_id}", "kind": kind, "subject": subject,
            "details": details, "detectedAt": detected_at}
