"""What a kiosk tells the cloud about itself on every push and pull (fleet health).

Request headers (docs/sync-protocol.md, "Fleet health"): the software version, the
backlog (pending entries, the oldest one's age in seconds, dead letters) and the
kiosk's wall clock (seconds since the epoch), so the cloud can flag kiosks that are
silent, far behind or whose clock is wrong.  The backlog is counted at most every
``every`` seconds (three index lookups); the clock is read for each request.
"""

from __future__ import annotations

import threading

from kiosk import __version__

VERSION = "Kiosk-Version"
CLOCK = "Kiosk-Clock"
PENDING = "Kiosk-Backlog-Pending"
OLDEST = "Kiosk-Backlog-Oldest-Age"
DEAD = "Kiosk-Backlog-Dead"


def backlog(db, now: float) -> dict:
    """Pending entries, the oldest one's age and dead letters, by index only (outbox_pending)."""
    pending = db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    oldest = db.execute("SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1").fetchone()
    dead = db.execute("SELECT count(*) FROM outbox WHERE state = 'dead'").fetchone()[0]
    return {"pending": pending, "oldestAge": max(0.0, now - oldest[0]) if oldest else 0.0, "dead": dead}


class Reporter:
    """Called by the transport before each request: the headers to send.

    ``connect()`` opens a connection to the kiosk's store; each thread that asks gets its
    own (the agent pushes and pulls on different threads)."""

    def __init__(self, connect, clock, *, version: str = __version__, every: float = 5.0):
        self.connect, self.clock, self.version, self.every = connect, clock, version, every
        self._local = threading.local()
        self._lock = threading.Lock()
        self._counted_at = float("-inf")
        self._backlog: dict | None = None

    def _db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.connect()
        return db

    def __call__(self) -> dict[str, str]:
        now = self.clock.now()
        with self._lock:
            if self._backlog is None or not 0 <= now - self._counted_at < self.every:
                self._backlog, self._counted_at = backlog(self._db(), now), now
            b = self._backlog
        return {VERSION: self.version, CLOCK: f"{now:.3f}", PENDING: str(b["pending"]),
                OLDEST: f"{b['oldestAge'] + max(0.0, now - self._counted_at) if b['pending'] else 0:.1f}",
                DEAD: str(b["dead"])}
