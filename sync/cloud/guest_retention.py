"""Privacy retention: a guest is erased automatically some days after their stay (docs/privacy.md).

``kiosk-cloud serve --privacy-retention 30d`` (every ``--purge-every``) and ``kiosk-cloud purge
--privacy-retention 30d`` erase each guest whose reservation ended at least that many days ago,
exactly as ``kiosk-cloud guest erase`` does (:func:`.erasure.apply`: the reservation, the
guest's requests, events, PMS outbox; one ``guest_erasure`` change that every hub and kiosk of
the hotel applies by pull), recorded in ``guest_erasures`` with ``erased_by`` ``retention``.
``off`` disables it.  The cloud decides: kiosks have no setting of their own.

When a stay ended: the reservation's ``departure`` date (whatever its status: a cancelled or
no-show reservation too), or its ``arrival`` when it has no departure; one with neither, or
with a date that does not parse, is never due.  The cloud knows no hotel's time zone, so the
day is UTC's: a guest is due on the UTC day ``departure + days``.  Only reservations the cloud
holds (``ref_data``) are found: one the PMS export no longer has was deleted by the import and
is not seen here (its requests and events stay until erased by hand).

Already-erased guests are left out by the query itself (``guest_erasures``, the table's
primary key), so a pass does not redo them.  Each guest is erased in its own transaction under
the hotel's lock (:func:`.storage.lock_hotels`), and whether they are still due and not yet
erased is asked again under that lock: a failure rolls back that guest only and the pass goes
on; two processes running it at once (several workers' timers) erase each guest once.  A
property hub (``kiosk-cloud link``) does not run it: the chain's cloud decides, and its
erasures reach the hub by pull.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta

from . import erasure, retention, storage, upstream

log = logging.getLogger("kiosk.cloud")

DEFAULT_DAYS = 30
#: ``guest_erasures.erased_by`` of an automatic erasure (``cli`` by hand, ``chain`` at a hub)
BY = "retention"
#: reservations read per query while looking for due ones
PAGE = 1000

_PAGE_SQL = ("SELECT r.hotel_id, r.entity_id, r.data FROM ref_data r WHERE r.entity_type = 'reservation'"
             " AND (r.hotel_id > ? OR (r.hotel_id = ? AND r.entity_id > ?))"
             " AND NOT EXISTS (SELECT 1 FROM guest_erasures g WHERE g.hotel_id = r.hotel_id"
             " AND g.confirmation = r.entity_id)"
             " ORDER BY r.hotel_id, r.entity_id LIMIT ?")


def cutoff(now: float, days: int) -> date:
    """The last stay-end date that is due at ``now`` (UTC's day, ``days`` before)."""
    if days < 1:
        raise ValueError("privacy retention must be at least one day")
    return datetime.fromtimestamp(now, UTC).date() - timedelta(days=days)


def stay_end(data: str | dict) -> date | None:
    """When the stay ended: ``departure``, else ``arrival``; None when neither parses."""
    try:
        row = json.loads(data) if isinstance(data, str) else data
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    for field in ("departure", "arrival"):
        value = row.get(field)
        if value:
            try:
                return date.fromisoformat(str(value)[:10])
            except ValueError:
                return None
    return None


def due(db, now: float, days: int, *, limit: int | None = None) -> list[tuple[str, str]]:
    """(hotel, confirmation) of every reservation not yet erased whose stay ended at least
    ``days`` days before ``now``'s UTC date, by hotel and confirmation (at most ``limit``)."""
    last = cutoff(now, days)
    out: list[tuple[str, str]] = []
    after = ("", "")
    while limit is None or len(out) < limit:
        rows = db.execute(_PAGE_SQL, [after[0], after[0], after[1], PAGE]).fetchall()
        for hotel_id, confirmation, data in rows:
            end = stay_end(data)
            if end is not None and end <= last:
                out.append((hotel_id, confirmation))
                if limit is not None and len(out) >= limit:
                    break
        if len(rows) < PAGE:
            break
        after = (rows[-1][0], rows[-1][1])
    return out


def _still_due(db, hotel_id: str, confirmation: str, last: date) -> bool:
    """Under the hotel's lock: not erased meanwhile (another process), and still ended by ``last``
    (the PMS may have extended the stay since the guest was found)."""
    if db.execute("SELECT 1 FROM guest_erasures WHERE hotel_id = ? AND confirmation = ?",
                  [hotel_id, confirmation]).fetchone():
        return False
    row = db.execute("SELECT data FROM ref_data WHERE hotel_id = ? AND entity_type = 'reservation'"
                     " AND entity_id = ?", [hotel_id, confirmation]).fetchone()
    end = stay_end(row[0]) if row else None
    return end is not None and end <= last


def run(db, now: float, days: int, *, limit: int | None = None) -> dict:
    """Erase every guest due (:func:`due`, at most ``limit``), each in its own transaction;
    returns counts: ``due`` (found), ``erased``, ``skipped`` (erased or no longer due by the
    time its turn came), ``failed`` (rolled back and logged; tried again next pass)."""
    last = cutoff(now, days)
    out = {"days": days, "endedBy": last.isoformat(), "due": 0, "erased": 0, "skipped": 0, "failed": 0}
    if upstream.get(db) is not None:
        out["hub"] = True  # the chain's cloud decides; its erasures come by pull
        return out
    guests = due(db, now, days, limit=limit)
    out["due"] = len(guests)
    for hotel_id, confirmation in guests:
        try:
            with storage.secure_delete(db):  # outside the transaction: SQLite changes it only there
                with storage.transaction(db):
                    storage.lock_hotels(db, [hotel_id])
                    if not _still_due(db, hotel_id, confirmation, last):
                        out["skipped"] += 1
                        continue
                    erasure.apply(db, hotel_id, confirmation, now, by=BY, require=False)
            out["erased"] += 1
        except Exception:  # that guest only: the rest go on, it is tried again next pass
            out["failed"] += 1
            log.exception("privacy retention: erasing a guest failed",
                          extra={"hotelId": hotel_id, "confirmation": confirmation})
    if out["erased"]:
        out["filesCheckpointed"] = storage.checkpoint(db)
    log.info("privacy retention", extra=out)
    return out


class Retainer(retention.Periodic):
    """``kiosk-cloud serve``'s periodic privacy retention (:func:`run`), beside
    :class:`.retention.Purger`."""

    def __init__(self, connect, clock, days: int, every: float):
        super().__init__("privacy-retention", connect, clock, every, lambda db, now: run(db, now, days))
