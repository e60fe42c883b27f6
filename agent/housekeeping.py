"""Scheduled housekeeping: plain functions the agent runs on an interval."""

from __future__ import annotations

from kiosk import audit, store
from sync import outbox

TOKEN_RETENTION_S = 30 * 86400


def expire_sessions(db, *, now: float, node: str) -> int:
    """End sessions past their expiry (audit + outbox); returns how many."""
    with store.transaction(db):
        rows = db.execute("SELECT id, hotel_id FROM sessions WHERE ended_at IS NULL AND expires_at <= ?",
                          [now]).fetchall()
        for sid, hotel in rows:
            db.execute("UPDATE sessions SET ended_at = ?, end_reason = 'expired' WHERE id = ?", [now, sid])
            audit.record(db, hotel_id=hotel, event="session.expired", outcome="success", at=now,
                         actor="agent", session_id=sid)
            outbox.enqueue(db, hotel_id=hotel, kind="session.ended", entity_type="session", entity_id=sid,
                           payload={"sessionId": sid, "reason": "expired", "endedAt": now}, node=node, now=now)
    return len(rows)


def purge_expired_tokens(db, *, now: float) -> int:
    """Forget unused tokens expired for 30 days (they are refused anyway); consumed ones stay."""
    with store.transaction(db):
        cur = db.execute("DELETE FROM qr_tokens WHERE expires_at < ? AND jti NOT IN"
                         " (SELECT jti FROM consumed_tokens) AND jti NOT IN (SELECT jti FROM sessions)",
                         [now - TOKEN_RETENTION_S])
    return cur.rowcount


def purge_delivered(db, *, now: float, retention_days: int) -> int:
    with store.transaction(db):
        cur = db.execute("DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?",
                         [now - retention_days * 86400])
    return cur.rowcount


def run_all(db, *, now: float, node: str, retention_days: int) -> dict:
    return {"sessionsExpired": expire_sessions(db, now=now, node=node),
            "tokensPurged": purge_expired_tokens(db, now=now),
            "deliveredPurged": purge_delivered(db, now=now, retention_days=retention_days)}
