"""How long the cloud keeps what it remembers, and the purge that enforces it.

``retention`` (``kiosk-cloud serve --retention``, default 30 days) should be at least the
longest a kiosk may be offline.  Older than that, the purge deletes

* change-log rows, oldest first, per hotel; how far each hotel's log was purged is kept
  (``changelog_horizon``), and a pull after a cursor older than that is answered
  ``410 CURSOR_EXPIRED``: the kiosk missed changes that are gone, so it re-syncs from a
  snapshot of the current state (:mod:`.snapshot`) and pulls on from there;
* remembered entry keys (``applied_entries``) and push answers (``push_requests``).  An
  entry repeated after that is judged again, and the rules make that harmless: a write
  never wins twice against its own stamp, a created work order or ticket with the same
  fields is a no-op, a consumption or revocation is recorded once.

Conflicts, security events and the event log are the central office's records and are
kept.  Each step deletes in chunks, one short transaction each, so pushes and pulls go on
meanwhile; running the purge twice, or from two processes at once, is harmless.
"""

from __future__ import annotations

import logging
import threading

from kiosk.errors import CursorExpired

from . import apply, changelog, pushes, storage

log = logging.getLogger("kiosk.cloud")

DEFAULT_RETENTION_SECONDS = 30 * 86400
CHUNK = 5000

_HOTELS = ("WITH RECURSIVE h(id) AS (SELECT min(hotel_id) FROM changes UNION ALL"
           " SELECT (SELECT min(hotel_id) FROM changes WHERE hotel_id > h.id) FROM h WHERE h.id IS NOT NULL)"
           " SELECT id FROM h WHERE id IS NOT NULL")  # distinct hotels by the (hotel_id, seq) index, one seek each


def horizon(db, hotel_id: str) -> int:
    """The highest sequence number purged from the hotel's log (0: nothing purged)."""
    row = db.execute("SELECT purged_through FROM changelog_horizon WHERE hotel_id = ?", [hotel_id]).fetchone()
    return row[0] if row else 0


def check_cursor(db, hotel_id: str, after: int) -> None:
    """Raise :class:`CursorExpired` if changes after ``after`` were purged.  Ask it after reading
    the page: a purge that commits between the two is then seen, never passed over."""
    through = horizon(db, hotel_id)
    if after < through:
        raise CursorExpired(f"changes after {after} are no longer kept (the log of hotel {hotel_id} starts after"
                            f" {through}); re-sync from GET /sync/v1/snapshot",
                            {"hotelId": hotel_id, "after": after, "purgedThrough": through})


def purge(db, now: float, retention: float = DEFAULT_RETENTION_SECONDS, *, chunk: int = CHUNK) -> dict:
    """Delete what is older than ``retention`` seconds; returns what was deleted."""
    if retention < 0:
        raise ValueError("retention must be >= 0")
    cutoff = now - retention
    hotels = {h: n for h in [r[0] for r in db.execute(_HOTELS).fetchall()]
              if (n := _purge_log(db, h, cutoff, now, chunk))}
    entries = _purge_chunks(db, apply.PURGE_SQL, cutoff, chunk)
    requests = _purge_chunks(db, pushes.PURGE_SQL, cutoff, chunk)
    out = {"changes": sum(hotels.values()), "hotels": hotels, "appliedEntries": entries, "pushRequests": requests,
           "before": cutoff}
    log.info("purge", extra=out)
    return out


def _purge_log(db, hotel_id: str, cutoff: float, now: float, chunk: int) -> int:
    """Delete the hotel's oldest changes while they are older than ``cutoff``."""
    total = 0
    while True:
        with storage.transaction(db):
            rows = db.execute("SELECT seq, at FROM changes WHERE hotel_id = ? ORDER BY seq LIMIT ?",
                              [hotel_id, chunk]).fetchall()
            old = 0
            while old < len(rows) and rows[old][1] < cutoff:
                old += 1
            if not old:
                return total
            through = rows[old - 1][0]
            changelog.purge_through(db, hotel_id, through, now)
        total += old
        if old < len(rows) or len(rows) < chunk:
            return total


def _purge_chunks(db, sql: str, cutoff: float, chunk: int) -> int:
    total = 0
    while True:
        with storage.transaction(db):
            n = db.execute(sql, [cutoff, chunk]).rowcount
        total += max(n, 0)
        if n < chunk:
            return total


class Periodic:
    """A daemon thread of ``kiosk-cloud serve`` that runs ``work(db, now)`` every ``every``
    seconds (the first after one interval) on a connection of its own; a failure is logged and
    the next run tries again (serving goes on).  ``stop`` (an event) ends it."""

    def __init__(self, name: str, connect, clock, every: float, work):
        self.connect, self.clock, self.every, self.work = connect, clock, every, work
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self.thread.start()
        return self

    def _run(self) -> None:
        db = None
        while not self.stop.wait(self.every):
            try:
                db = db or self.connect()
                self.work(db, self.clock.now())
            except Exception:
                log.exception("%s failed", self.thread.name)


class Purger(Periodic):
    """``kiosk-cloud serve``'s periodic purge (:func:`purge`).  With several worker processes,
    run ``kiosk-cloud purge`` from a timer instead (docs/deployment.md)."""

    def __init__(self, connect, clock, retention: float, every: float):
        super().__init__("purge", connect, clock, every, lambda db, now: purge(db, now, retention))
