"""PostgreSQL's planner statistics kept up with tables that are still growing fast.

PostgreSQL plans a query from what ``ANALYZE`` last saw of each table.  Until autovacuum
first analyzes a table (it looks once a minute, ``autovacuum_naptime``), the planner knows
its size but nothing of its columns: it takes ``hotel_id = …`` for a rare value, reads
every row of the hotel through that index and filters them, and takes a push's ``key IN
(…100 keys…)`` for half the table and reads all of it.  A push then costs more with
every ticket the hotel already has (tests/test_planner_stats.py: at 800 tickets a hotel a
push read 2,500–2,800 rows, against 100 with fresh statistics).  A young chain cloud, or one
whose hotels have just been imported, is in that state for its first minutes.

:func:`refresh` analyzes every table of the cloud that has changed by more than half
again its size at the last analysis (and by at least :data:`MIN_CHANGED` rows) since then,
so plans follow a table while it grows and nothing is done once it is settled (that is
autovacuum's part), and every table never analyzed once it holds :data:`YOUNG_PAGES` pages
(on an empty database the statistics would otherwise wait for 500 changes to be counted:
a bench case of 25,000 entries read 1.3–3.0 million rows of remembered answers in the
seconds before).  ``kiosk-cloud serve`` on PostgreSQL runs it every :data:`EVERY`
seconds (:class:`Keeper`: one catalog query when nothing is due), one worker at a time (an
advisory lock); ``ANALYZE`` samples at most 30,000 rows whatever the size, and takes no lock
that holds up reads or writes.
SQLite: nothing to do (its plans do not depend on statistics for these queries).
"""

from __future__ import annotations

import logging

from . import storage
from .retention import Periodic

log = logging.getLogger("kiosk.cloud.planner_stats")

EVERY = 1.0
#: rows a table must have changed by before it is analyzed again
MIN_CHANGED = 500
#: ... and by this share of the rows it had at the last analysis (0.5: half as many again)
GROWTH = 0.5
#: a table no ANALYZE has seen is analyzed once it is this many pages (8 KiB each) long
YOUNG_PAGES = 8
#: the advisory lock one worker holds while it analyzes (several workers run the keeper)
LOCK = 727275

# never analyzed: no ANALYZE recorded, and PostgreSQL 14+ keeps reltuples at -1 until one
# (the size is read from the file: the counters of changes lag up to a second behind)
_DUE = ("SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
        " WHERE s.schemaname = current_schema() AND (s.n_mod_since_analyze >= ? + ? * greatest(c.reltuples, 0)"
        " OR (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND c.reltuples <= 0"
        " AND pg_relation_size(c.oid) >= ? * current_setting('block_size')::int))"
        " ORDER BY s.relname")


def due(db, min_changed: int = MIN_CHANGED, growth: float = GROWTH, young_pages: int = YOUNG_PAGES) -> list[str]:
    """The tables whose planner statistics are behind what they hold."""
    return [r[0] for r in db.execute(_DUE, [min_changed, growth, young_pages]).fetchall()]


def refresh(db) -> list[str]:
    """``ANALYZE`` each table that is :func:`due`; the tables analyzed.  Nothing on SQLite,
    and nothing while another worker is at it.  A table another session holds a conflicting
    lock on (a ``VACUUM``, an ``ANALYZE`` of autovacuum's) is left for the next pass."""
    if storage.backend(db) is storage.SqliteStorage:
        return []
    if not db.execute("SELECT pg_try_advisory_lock(?)", [LOCK]).fetchone()[0]:
        return []
    done = []
    try:
        db.execute("SET lock_timeout = '200ms'")
        for table in due(db):
            try:
                db.execute("ANALYZE " + _quoted(table))
                done.append(table)
            except Exception as e:  # lock_timeout, a table dropped meanwhile: the next pass
                log.info("analyze skipped", extra={"table": table, "reason": str(e).splitlines()[0][:200]})
    finally:
        db.execute("RESET lock_timeout")
        db.execute("SELECT pg_advisory_unlock(?)", [LOCK])
    return done


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Keeper(Periodic):
    """``kiosk-cloud serve``'s thread that keeps the planner's statistics up (:func:`refresh`),
    on a connection taken from ``store``'s pool for each pass and given back (a worker's pool
    is sized for its request threads)."""

    def __init__(self, store, clock, every: float = EVERY):
        super().__init__("planner-stats", lambda: store, clock, every, self._pass)

    @staticmethod
    def _pass(store, now: float) -> None:
        db = store.acquire()
        try:
            refresh(db)
        finally:
            store.release(db)
