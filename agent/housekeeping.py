"""Scheduled housekeeping: plain functions the agent runs on an interval; each table's owner
module does the writing."""

from __future__ import annotations

from kiosk import outbox, queue, sessions, store, tickets, tokens
from kiosk.property import tables

#: rows sealed per transaction when personal fields written in clear (by an older version) are
#: sealed under their guests' keys
SEAL_BATCH = 500
#: at most this many batches per table and run (the agent's housekeeping runs again soon)
SEAL_MAX_BATCHES = 200

TOKEN_RETENTION_S = 30 * 86400


def expire_sessions(db, *, now: float, node: str) -> int:
    """End sessions past their expiry (audit + outbox); returns how many."""
    return sessions.expire_due(db, now=now, node=node)


def purge_expired_tokens(db, *, now: float) -> int:
    """Forget unused tokens expired for 30 days (they are refused anyway); consumed ones stay."""
    return tokens.purge_expired(db, before=now - TOKEN_RETENTION_S)


def purge_delivered(db, *, now: float, retention_days: int) -> int:
    return outbox.purge_delivered(db, before=now - retention_days * 86400)


def seal_existing(db, *, batch: int = SEAL_BATCH) -> int:
    """Personal fields an older version wrote in clear, sealed under their guests' keys (each
    table by its owner, a batch per transaction, until none is left; kiosk/guest_keys.py).
    Returns how many rows were sealed."""
    total = 0
    for owner in (tables, sessions, tokens, tickets, queue):
        for _ in range(SEAL_MAX_BATCHES):  # the rest at the next run
            with store.transaction(db):
                n = owner.seal_existing(db, batch)
            total += n
            if n < batch:
                break
    return total


def run_all(db, *, now: float, node: str, retention_days: int) -> dict:
    return {"sessionsExpired": expire_sessions(db, now=now, node=node),
            "tokensPurged": purge_expired_tokens(db, now=now),
            "deliveredPurged": purge_delivered(db, now=now, retention_days=retention_days),
            "personalFieldsSealed": seal_existing(db)}
