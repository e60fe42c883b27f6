"""The cloud's change log: what ``GET /sync/v1/pull`` serves, per hotel, by sequence.

Every change the cloud makes to something kiosks hold (a work order or ticket
applied from a push, reference data imported from the PMS, a revocation, a
consumed token, a trust key) appends one row with the entity's full new state
(``upsert``) or its id (``delete``).  Kiosks pull the rows after their cursor,
page by page, and apply each page in one transaction with the new cursor.
A kiosk receives its own changes back too; applying them is a no-op.

The log is compacted as it is written, as CouchDB's ``_changes`` lists a document once, at
its latest sequence: a row carries the whole state, so the entity's older rows say nothing
a puller needs, and the transaction that writes a change deletes them.  A kiosk behind both
gets the newest only; a kiosk between them already has the older.  Sequence numbers keep
their order and leave gaps; a pull never needs them to be consecutive.  A fresh kiosk pulls
one row per entity, not every edit ever made to it.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kiosk import hlc, jsontext

from . import guest_vault, storage

NODE = "cloud"
MAX_PAGE = 1000


def clock(hotel_id: str | None) -> str:
    """The row the cloud's clock for ``hotel_id`` is kept in (``hlc_state``): one per hotel,
    so pushes for different hotels never queue for one clock row (their transactions hold
    it until they commit); cloud-wide things (trust keys) use the cloud's own row.  Every
    entity belongs to one hotel, so its stamps all come from one clock."""
    return NODE if hotel_id is None else f"{NODE}:{hotel_id}"


def stamp(db, now: float, hotel_id: str | None = None) -> str:
    """A fresh cloud HLC stamp (for changes that originate in the cloud) from ``hotel_id``'s
    clock; the stamp's node is ``cloud`` whichever clock made it."""
    return str(hlc.tick(db, NODE, now, state=clock(hotel_id)))


_INSERT = "INSERT INTO changes (hotel_id, seq, entity_type, entity_id, op, data, hlc, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
#: the older changes of the entities whose changes were just written (seq >= the first new one)
_SUPERSEDED_BY_NEWER = (
    "DELETE FROM changes WHERE hotel_id = ? AND seq < ? AND (entity_type, entity_id) IN"
    " (SELECT entity_type, entity_id FROM changes WHERE hotel_id = ? AND seq >= ?)")
#: (db, changes recorded on it and not yet written) while a push is applied set-wise (:func:`deferred`)
_held: contextvars.ContextVar[tuple[Any, list, set] | None] = contextvars.ContextVar("changelog_held", default=None)


def record(db, *, hotel_id: str, entity_type: str, entity_id: str, data: dict | None, hlc_stamp: str,
           now: float, op: str = "upsert", new: bool = False) -> None:
    """Append one change; call inside the transaction that made it.

    Its sequence number comes from the hotel's counter row, taken in this transaction: on
    PostgreSQL the row stays locked until commit, so changes of one hotel commit in
    sequence order and a pull never passes over one that is still in flight.  Inside
    :func:`deferred` the change is held and written with the others at its end.  ``new``:
    the entity was made in this transaction (a ticket whose id was checked absent, a new
    conflict record), so no older change of it can be in the log to supersede."""
    if data is not None and entity_type in guest_vault.SEALED_CHANGES:
        data = guest_vault.seal_change(db, hotel_id, entity_type, entity_id, data)
    row = [hotel_id, entity_type, entity_id, op,
           None if data is None else jsontext.compact(data), hlc_stamp, now]
    held = _held.get()
    if held is not None and held[0] is db:
        held[1].append(row)
        if not new:
            held[2].add(hotel_id)
        return
    seq = db.execute("INSERT INTO hotel_seq (hotel_id, seq) VALUES (?, 1) ON CONFLICT (hotel_id)"
                     " DO UPDATE SET seq = hotel_seq.seq + 1 RETURNING seq", [hotel_id]).fetchone()[0]
    db.conn.execute(_INSERT, [hotel_id, seq, *row[1:]])
    db.conn.execute("DELETE FROM changes WHERE hotel_id = ? AND entity_type = ? AND entity_id = ? AND seq < ?",
                    [hotel_id, entity_type, entity_id, seq])


@contextmanager
def deferred(db) -> Iterator[None]:
    """Within: the changes :func:`record` gets for ``db`` are held, then numbered and written
    together at the end (:func:`flush`): one step of each hotel's counter and one
    ``executemany`` instead of two statements a change.  Numbers follow the order of the
    calls, as without it.  Anything that reads the log flushes first.  On an exception the
    held changes are dropped (the caller's transaction is rolled back)."""
    token = _held.set((db, [], set()))  # the changes, the hotels of those that may supersede older ones
    try:
        yield
        flush(db)
    finally:
        _held.reset(token)


def mark(db) -> int:
    """Where the held changes stand (for :func:`rollback_to` after a savepoint's rollback)."""
    held = _held.get()
    return len(held[1]) if held is not None and held[0] is db else 0


def rollback_to(db, at: int) -> None:
    """Forget the changes held since :func:`mark` said ``at`` (their entry was rolled back)."""
    held = _held.get()
    if held is not None and held[0] is db:
        del held[1][at:]


def flush(db) -> None:
    """Write the held changes: each hotel's counter moves once by its count (the row stays
    locked until commit, as with :func:`record`), then every row in one ``executemany``."""
    held = _held.get()
    if held is None or held[0] is not db or not held[1]:
        return
    rows, by_hotel, superseding = held[1][:], {}, set(held[2])
    del held[1][:]
    held[2].clear()
    for row in rows:
        by_hotel.setdefault(row[0], []).append(row)
    numbered, firsts = [], []
    for hotel_id in sorted(by_hotel):
        mine = by_hotel[hotel_id]
        last = db.execute("INSERT INTO hotel_seq (hotel_id, seq) VALUES (?, ?) ON CONFLICT (hotel_id)"
                          " DO UPDATE SET seq = hotel_seq.seq + excluded.seq RETURNING seq",
                          [hotel_id, len(mine)]).fetchone()[0]
        first = last - len(mine) + 1
        newest = {(row[1], row[2]): i for i, row in enumerate(mine)}  # an entity twice here: its last only
        numbered += [[hotel_id, first + i, *row[1:]] for i, row in enumerate(mine) if newest[(row[1], row[2])] == i]
        firsts.append((hotel_id, first))
    db.conn.executemany(_INSERT, numbered)
    for hotel_id, first in firsts:  # what the rows just written supersede: one statement a hotel
        if hotel_id in superseding:  # (none when every change is of an entity made just now)
            db.conn.execute(_SUPERSEDED_BY_NEWER, [hotel_id, first, hotel_id, first])


def latest(db, hotel_id: str, entity_type: str, entity_id: str) -> tuple[str, dict | None] | None:
    """(op, data) of the newest change logged for the entity, or None."""
    flush(db)
    row = db.conn.execute("SELECT op, data FROM changes WHERE hotel_id = ? AND entity_type = ? AND entity_id = ?"
                          " ORDER BY seq DESC LIMIT 1", [hotel_id, entity_type, entity_id]).fetchone()
    return (row[0], None if row[1] is None else json.loads(row[1])) if row is not None else None


def put_record(db, hotel_id: str, ch: dict, now: float) -> None:
    """A record the chain's cloud sent down (a conflict it resolved, a security event), logged
    for a hub's kiosks as it came; a conflict's id is the chain's, kept apart from the hub's own."""
    eid = ch["entityId"] if ch["entityType"] != "conflict" else f"chain:{ch['entityId']}"
    record(db, hotel_id=hotel_id, entity_type=ch["entityType"], entity_id=eid, data=ch.get("data"),
           hlc_stamp=ch.get("hlc") or "", now=now, op=ch.get("op") or "upsert")


def head(db, hotel_id: str) -> int:
    """The hotel's newest committed sequence number in the log (0 when it holds none): one
    seek on the ``(hotel_id, seq)`` index, cheap enough for a waiting pull to ask every
    ~100 ms.  A change still in flight (its transaction not committed) is not counted."""
    flush(db)
    row = db.execute("SELECT max(seq) FROM changes WHERE hotel_id = ?", [hotel_id]).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def page(db, hotel_id: str, after: int, limit: int) -> dict[str, Any]:
    """Changes of ``hotel_id`` with ``seq > after``, oldest first, at most ``limit``."""
    flush(db)
    limit = max(1, min(limit, MAX_PAGE))
    rows = db.conn.execute(
        "SELECT seq, entity_type, entity_id, op, data, hlc FROM changes WHERE hotel_id = ? AND seq > ?"
        " ORDER BY seq LIMIT ?", [hotel_id, after, limit + 1]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    changes = [{"seq": r[0], "entityType": r[1], "entityId": r[2], "op": r[3],
                "data": None if r[4] is None else json.loads(r[4]), "hlc": r[5]} for r in rows]
    return {"hotelId": hotel_id, "changes": changes, "cursor": rows[-1][0] if rows else after, "more": more}


def conflict(db, hotel_id: str, c, entry_key: str | None, now: float, device_id: str | None = None) -> dict:
    """Record a resolved :class:`sync.conflicts.Conflict` on the cloud's side and log it for
    pull (every kiosk of the hotel records it too); returns it as JSON with its ``conflictId``."""
    return conflicts(db, [(hotel_id, c, entry_key)], now, device_id)[0]


_CONFLICT_COLUMNS = ("hotel_id", "entity_type", "entity_id", "field", "rule", "outcome", "incoming", "current",
                     "device_id", "entry_key", "detected_at")
_INSERT_CONFLICT = (f"INSERT INTO conflicts ({', '.join(_CONFLICT_COLUMNS)})"
                    f" VALUES ({', '.join('?' * len(_CONFLICT_COLUMNS))}) RETURNING id, {', '.join(_CONFLICT_COLUMNS[:-1])}")


def conflicts(db, items: list[tuple], now: float, device_id: str | None = None, *, log: bool = True) -> list[dict]:
    """:func:`conflict` for each ``(hotel_id, conflict, entry_key)``, in order: one ``INSERT …
    RETURNING`` a chunk of rows, not one a conflict (a push of tickets that all merge into
    open twins made one round trip each on PostgreSQL).  RETURNING's rows come in no promised
    order, so each is matched to its item by the values it was written with.  ``log=False``:
    the caller logs each with :func:`log_conflict`, where its change belongs among others."""
    rows = [[hotel_id, c.entity_type, c.entity_id, c.field, c.rule, c.outcome, json.dumps(c.incoming),
             json.dumps(c.current), device_id, entry_key, now] for hotel_id, c, entry_key in items]
    ids: dict[tuple, list[int]] = {}
    for at in range(0, len(rows), 500):
        chunk = rows[at:at + 500]
        sql, params = storage.insert_rows(db.conn, _INSERT_CONFLICT, chunk)
        for found, *written in db.conn.execute(sql, params).fetchall():
            ids.setdefault(tuple(written), []).append(found)
    for same in ids.values():
        same.sort(reverse=True)  # (rows written alike are alike: which id each takes does not matter)
    out = [c.to_json() | {"conflictId": ids[tuple(row[:-1])].pop()} for (_h, c, _k), row in zip(items, rows, strict=True)]
    if log:
        for (hotel_id, _c, _k), recorded in zip(items, out, strict=True):
            log_conflict(db, hotel_id, recorded, now)
    return out


def log_conflict(db, hotel_id: str, recorded: dict, now: float) -> None:
    """A recorded conflict's change, for every kiosk of the hotel to pull."""
    record(db, hotel_id=hotel_id, entity_type="conflict", entity_id=str(recorded["conflictId"]), data=recorded,
           hlc_stamp=str((recorded.get("incoming") or {}).get("hlc") or ""), now=now, new=True)  # ids never reused


def conflicts_for_hotel(db, hotel_id: str, limit: int = 1000) -> list[dict]:
    return [{"id": r[0], "entityType": r[1], "entityId": r[2], "field": r[3], "rule": r[4], "outcome": r[5],
             "incoming": json.loads(r[6]), "current": json.loads(r[7]), "deviceId": r[8], "detectedAt": r[9]}
            for r in db.conn.execute(
                "SELECT id, entity_type, entity_id, field, rule, outcome, incoming, current, device_id,"
                " detected_at FROM conflicts WHERE hotel_id = ? ORDER BY id DESC LIMIT ?", [hotel_id, limit])]


def security_events_for_hotel(db, hotel_id: str, limit: int = 1000) -> list[dict]:
    return [{"id": r[0], "kind": r[1], "subject": r[2], "details": json.loads(r[3]), "detectedAt": r[4]}
            for r in db.conn.execute(
                "SELECT id, kind, subject, details, detected_at FROM security_events WHERE hotel_id = ?"
                " ORDER BY id DESC LIMIT ?", [hotel_id, limit])]


def purge_through(db, hotel_id: str, through: int, now: float) -> None:
    """Forget the hotel's changes up to ``through`` and remember how far the log was purged
    (a cursor before it is CURSOR_EXPIRED: :mod:`.retention`).  Inside the caller's transaction."""
    flush(db)
    db.execute("DELETE FROM changes WHERE hotel_id = ? AND seq <= ?", [hotel_id, through])
    db.execute("INSERT INTO changelog_horizon (hotel_id, purged_through, purged_at) VALUES (?, ?, ?)"
               " ON CONFLICT (hotel_id) DO UPDATE SET purged_through ="
               " GREATEST(changelog_horizon.purged_through, excluded.purged_through),"
               " purged_at = excluded.purged_at", [hotel_id, through, now])


def seal_existing(db, after: tuple[str, int], limit: int) -> tuple[int, tuple[str, int] | None]:
    """Reservation and ticket changes an earlier version logged in clear, sealed as
    :func:`record` seals them now (inside the caller's transaction), ``limit`` rows after
    ``after`` (hotel, seq): (rows sealed, the key to go on from, None at the end)."""
    rows = db.execute("SELECT hotel_id, seq, entity_type, entity_id, data FROM changes WHERE entity_type IN"
                      " ('reservation', 'ticket') AND data IS NOT NULL AND (hotel_id > ? OR (hotel_id = ? AND seq > ?))"
                      " AND data NOT LIKE '%\"pii1.%' ORDER BY hotel_id, seq LIMIT ?",
                      [after[0], *after, limit]).fetchall()
    n = 0
    for hotel_id, seq, etype, eid, data in rows:
        new = json.dumps(guest_vault.seal_change(db, hotel_id, etype, eid, json.loads(data)), separators=(",", ":"),
                         sort_keys=True)
        if "pii1." in new:
            n += db.execute("UPDATE changes SET data = ? WHERE hotel_id = ? AND seq = ?", [new, hotel_id, seq]).rowcount
    return n, ((rows[-1][0], rows[-1][1]) if len(rows) == limit else None)
