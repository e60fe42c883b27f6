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


class Refusals:
    """Refused attempts, audited without letting a flood grow the log.

    The first refusal of a kind — (hotel, event, client, code, token) — in a minute is a
    row; each identical one after it adds one to that row's ``repeats`` (an update in
    place: the file does not grow).  Bounded in memory: past ``MAX_KEYS`` kinds, the
    oldest are forgotten (their next refusal starts a new row).
    """

    MAX_KEYS = 4096

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._rows: dict[tuple, int] = {}  # key -> audit row id

    def record(self, db, *, hotel_id: str | None, event: str, at: float, client: str | None = None,
               jti: str | None = None, code: str | None = None, details: dict[str, Any] | None = None,
               actor: str | None = None, session_id: str | None = None, kind: tuple = ()) -> None:
        """``kind``: what else tells refusals apart besides hotel, event, client, code and token
        (e.g. the session, the reason and the request for a refused credential)."""
        key = (hotel_id, event, client, code, jti, *kind, int(at // 60))
        with self._lock:
            row_id = self._rows.get(key)
        with store.transaction(db):
            if row_id is not None and db.execute("UPDATE audit_log SET repeats = repeats + 1 WHERE id = ?",
                                                 [row_id]).rowcount == 1:
                return
            record(db, hotel_id=hotel_id, event=event, outcome="refused", at=at, actor=actor, session_id=session_id,
                   jti=jti, client=client, code=code, details=details)
            row_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        with self._lock:
            self._rows[key] = row_id
            for k in [k for k in self._rows if k[-1] < key[-1]]:  # earlier minutes are done
                del self._rows[k]
            while len(self._rows) > self.MAX_KEYS:
                del self._rows[next(iter(self._rows))]
