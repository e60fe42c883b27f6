"""The audit log: every scan attempt and every security event, per hotel.

Rows are written inside the caller's transaction (a successful scan) or in a
transaction of their own (a refused one), and each is also logged as a JSON
line.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from . import store

log = logging.getLogger("kiosk.audit")

NO_HOTEL = "-"


def record(db, *, hotel_id: str | None, event: str, outcome: str, at: float,
           actor: str | None = None, session_id: str | None = None, jti: str | None = None,
           client: str | None = None, code: str | None = None,
           details: dict[str, Any] | None = None) -> None:
    """Insert one audit row (inside the caller's transaction) and log it."""
    details = details or {}
    db.execute(
        "INSERT INTO audit_log (hotel_id, at, event, outcome, actor, session_id, jti, client, code, details)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [hotel_id or NO_HOTEL, at, event, outcome, actor, session_id, jti, client, code,
         json.dumps(details, separators=(",", ":"), sort_keys=True)],
    )
    log.info(event, extra={"audit": {"hotelId": hotel_id or NO_HOTEL, "event": event,
                                     "outcome": outcome, "actor": actor, "sessionId": session_id,
                                     "jti": jti, "client": client, "code": code, **details}})


def record_now(db, **kwargs) -> None:
    """Like :func:`record`, in a transaction of its own."""
    with store.transaction(db):
        record(db, **kwargs)


def rows(db, hotel_id: str, limit: int = 100) -> list[dict]:
    return list(db.query("SELECT * FROM audit_log WHERE hotel_id = ? ORDER BY id DESC LIMIT ?",
                         [hotel_id, limit]))
