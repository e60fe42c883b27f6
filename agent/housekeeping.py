"""Scheduled housekeeping: plain functions the agent runs on an interval; each table's owner
module does the writing."""

from __future__ import annotations

from kiosk import outbox, sessions, tokens

TOKEN_RETENTION_S = 30 * 86400


def expire_sessions(db, *, now: float, node: str) -> int:
    """End sessions past their expiry (audit + outbox); returns how many."""
    return sessions.expire_due(db, now=now, node=node)


def purge_expired_tokens(db, *, now: float) -> int:
    """Forget unused tokens expired for 30 days (they are refused anyway); consumed ones stay."""
    return tokens.purge_expired(db, before=now - TOKEN_RETENTION_S)


def purge_delivered(db, *, now: float, retention_days: int) -> int:
    return outbox.purge_delivered(db, before=now - retention_days * 86400)


def run_all(db, *, now: float, node: str, retention_days: int) -> dict:
    return {"sessionsExpired": expire_sessions(db, now=now, node=node),
            "tokensPurged": purge_expired_tokens(db, now=now),
            "deliveredPurged": purge_delivered(db, now=now, retention_days=retention_days)}
