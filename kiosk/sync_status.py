"""What the admin view shows about sync (staleness, backlog, conflicts, security events), and the
one owner of ``sync_state``, the kiosk's small key/value table of sync bookkeeping: pull
cursors, when the cloud was last heard from, a refused credential, the newest trust key, the
demo seed's marker.  Everything else reads and writes it through :func:`get`, :func:`put`
and :func:`forget`.  It also owns the records of what sync found: ``conflicts``
(:func:`record_conflict`) and ``security_events`` (:func:`record_security_event`)."""

from __future__ import annotations

import json

from .clock import iso


def get(db, key: str) -> str | None:
    """The value stored under ``key`` (text), or None."""
    row = db.execute("SELECT value FROM sync_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


_state = get


def put(db, values: dict) -> None:
    """Store each key's value (as text; None stores NULL), inside or outside a transaction."""
    db.conn.executemany("INSERT INTO sync_state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE"
                        " SET value = excluded.value", [(k, None if v is None else str(v)) for k, v in values.items()])


def forget(db, prefix: str) -> int:
    """Delete every key starting with ``prefix``; returns how many."""
    return db.execute("DELETE FROM sync_state WHERE substr(key, 1, ?) = ?", [len(prefix), prefix]).rowcount


#: sync_state keys: when the cloud last refused this kiosk's credential (401/403; cleared by
#: the next successful exchange) and the cloud's answer then
REFUSED_AT, REFUSED_REASON = "credential_refused_at", "credential_refused_reason"
#: what to do about a refused credential (the admin overview and `kiosk-agent status` say it)
REFUSED_HINT = ("the cloud refused this kiosk's credential (revoked or replaced): issue a new one in the cloud"
                " (`kiosk-cloud device add KIOSK_ID --hotel … --rotate`) and run `kiosk-agent link` with it")


def record_conflict(db, hotel_id: str, c: dict, *, source: str, now: float, key: str | None = None) -> None:
    """Record a conflict (from a push result or a pull) on this kiosk; idempotent by ``key``."""
    db.execute("INSERT INTO conflicts (hotel_id, entity_type, entity_id, field, rule, outcome, local_version,"
               " remote_version, source, detected_at, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
               " ON CONFLICT(key) DO NOTHING",
               [hotel_id, c.get("entityType"), c.get("entityId"), c.get("field"), c.get("rule"), c.get("outcome"),
                json.dumps(c.get("incoming")), json.dumps(c.get("current")), source, now, key])


def record_security_event(db, hotel_id: str, *, kind: str, subject: str, details: dict, at: float,
                          key: str) -> bool:
    """A security event (a replayed token, say), once by ``key``; True when it is new here."""
    cur = db.execute("INSERT INTO security_events (hotel_id, kind, subject, details, detected_at, key)"
                     " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                     [hotel_id, kind, subject, json.dumps(details), at, key])
    return cur.rowcount > 0


def credential_refused(db, reason: str, now: float) -> None:
    """The cloud answered 401/403 to this kiosk's credential (inside or outside a transaction)."""
    put(db, {REFUSED_AT: now, REFUSED_REASON: reason[:300]})


def heard(db, now: float) -> None:
    """A successful exchange with the cloud: "last heard", and the credential works."""
    put(db, {"last_heard_at": now, REFUSED_AT: None, REFUSED_REASON: None})


def credential(db) -> dict:
    """``{"credential": "ok" | "refused", "credentialError": reason | None, "credentialRefusedAt": iso | None}``."""
    at = _state(db, REFUSED_AT)
    return {"credential": "refused" if at else "ok", "credentialError": _state(db, REFUSED_REASON) if at else None,
            "credentialRefusedAt": iso(float(at)) if at else None}


def summary(db, hotel_id: str, *, now: float, stale_after: int) -> dict:
    """When the kiosk last heard from the cloud (a successful exchange), whether that is too long
    ago, and whether the cloud refuses its credential (then it is stale at once: nothing gets
    through until the kiosk is linked again)."""
    heard = _state(db, "last_heard_at")
    heard_at = float(heard) if heard else None
    cred = credential(db)
    pending, oldest = db.execute("SELECT count(*), min(created_at) FROM outbox WHERE hotel_id = ?"
                                 " AND state = 'pending'", [hotel_id]).fetchone()
    dead = db.execute("SELECT count(*) FROM outbox WHERE hotel_id = ? AND state = 'dead'", [hotel_id]).fetchone()[0]
    cursor = _state(db, f"pull_cursor:{hotel_id}")
    newest = _state(db, "trust_newest_at")
    return {"lastHeardAt": iso(heard_at) if heard_at else None,
            "secondsSinceHeard": round(now - heard_at, 1) if heard_at else None,
            "stale": heard_at is None or now - heard_at > stale_after or cred["credential"] == "refused",
            "staleAfterSeconds": stale_after, **cred,
            "hint": REFUSED_HINT if cred["credential"] == "refused" else None,
            "pending": pending, "oldestPendingAt": iso(oldest) if oldest else None, "dead": dead,
            "pullCursor": int(cursor) if cursor else 0,
            "newestTrustedAt": iso(float(newest)) if newest else None}


def conflicts(db, hotel_id: str, limit: int = 200) -> list[dict]:
    return [{"id": r[0], "entityType": r[1], "entityId": r[2], "field": r[3], "rule": r[4], "outcome": r[5],
             "incoming": json.loads(r[6]) if r[6] else None, "current": json.loads(r[7]) if r[7] else None,
             "source": r[8], "detectedAt": iso(r[9])}
            for r in db.execute("SELECT id, entity_type, entity_id, field, rule, outcome, local_version,"
                                " remote_version, source, detected_at FROM conflicts WHERE hotel_id = ?"
                                " ORDER BY id DESC LIMIT ?", [hotel_id, limit])]


def security_events(db, hotel_id: str, limit: int = 200) -> list[dict]:
    return [{"id": r[0], "kind": r[1], "subject": r[2], "details": json.loads(r[3]), "detectedAt": iso(r[4])}
            for r in db.execute("SELECT id, kind, subject, details, detected_at FROM security_events"
                                " WHERE hotel_id = ? ORDER BY id DESC LIMIT ?", [hotel_id, limit])]
