"""Reference data from the PMS (rooms, reservations, staff, rate plans, offers, …).

The PMS is authoritative (rule ``reference-authoritative``): an import replaces
what the cloud holds for that hotel and table, and every row that is new,
changed or gone becomes one change in the log, so kiosks pull only differences.
Importing the same export twice logs nothing the second time.  ``work_orders``
(the PMS's work orders, as :func:`.pms.read` gives them) are judged, not replaced
(:mod:`.pms`), in the same transaction.
"""

from __future__ import annotations

import json

from kiosk import erased

from ..reference import TABLES, entity_id
from . import changelog, guest_vault, pms, storage


def import_tables(db, hotel_id: str, tables: dict[str, list[dict]], now: float, progress=None) -> dict[str, dict]:
    """Replace the hotel's rows of each given table; returns per table added/changed/removed/unchanged."""
    out: dict[str, dict] = {}
    with storage.transaction(db):
        stamp = changelog.stamp(db, now, hotel_id)
        for table, rows in tables.items():
            if table == pms.STEM:
                out[table] = pms.import_work_orders(db, hotel_id, rows, stamp, now, progress)
                continue
            if table not in TABLES:
                continue
            etype = TABLES[table][0]
            if table == "reservations":
                rows = _kept_erased(table, rows, erased_confirmations(db, hotel_id))
            old = {r[0]: r[1] for r in db.execute(
                "SELECT entity_id, data FROM ref_data WHERE hotel_id = ? AND entity_type = ?", [hotel_id, etype])}
            counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
            seen = set()
            changed = []
            for row in rows:
                eid = entity_id(table, row)
                seen.add(eid)
                data = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
                if old.get(eid) == data:
                    counts["unchanged"] += 1
                    continue
                counts["changed" if eid in old else "added"] += 1
                changed.append((eid, data))
            if etype == "reservation":  # the new guests' keys in one step of the vault
                guest_vault.ensure(db, hotel_id, [eid for eid, _ in changed])
            for eid, data in changed:
                _put(db, hotel_id, etype, eid, json.loads(data), stamp, now)
                if progress:
                    progress(1)
            for eid in set(old) - seen:
                counts["removed"] += 1
                db.execute("DELETE FROM ref_data WHERE hotel_id = ? AND entity_type = ? AND entity_id = ?",
                           [hotel_id, etype, eid])
                changelog.record(db, hotel_id=hotel_id, entity_type=etype, entity_id=eid, data=None,
                                 hlc_stamp=stamp, now=now, op="delete")
            out[table] = counts
    return out


def merge_rows(db, hotel_id: str, table: str, rows: list[dict], now: float) -> dict:
    """Overlay a connected PMS's rows on what the cloud holds for ``table`` (inside the caller's
    transaction): each row's fields replace the same fields of the row with its key (the
    columns the PMS does not send, from an earlier export, stay); rows it does not send are
    left alone (a PMS is read a window at a time: arrivals, in-house, departures).  Every
    row that changed is one change in the log; the same rows again log nothing."""
    etype = TABLES[table][0]
    counts = {"added": 0, "changed": 0, "unchanged": 0}
    stamp = None
    gone = erased_confirmations(db, hotel_id) if table == "reservations" else set()
    for row in rows:
        eid = entity_id(table, row)
        old = db.execute("SELECT data FROM ref_data WHERE hotel_id = ? AND entity_type = ? AND entity_id = ?",
                         [hotel_id, etype, eid]).fetchone()
        merged = (json.loads(old[0]) if old is not None else {}) | row
        if eid in gone:
            merged = erased.reservation(merged)
        data = json.dumps(merged, sort_keys=True, separators=(",", ":"), default=str)
        if old is not None and old[0] == data:
            counts["unchanged"] += 1
            continue
        counts["changed" if old is not None else "added"] += 1
        stamp = stamp or changelog.stamp(db, now, hotel_id)
        _put(db, hotel_id, etype, eid, json.loads(data), stamp, now)
    return counts


def _put(db, hotel_id: str, etype: str, eid: str, row: dict, stamp: str, now: float) -> None:
    """Write one row and log it for pull; a reservation's personal fields sealed under its
    guest's key, in the row and in its change (sync/cloud/guest_vault.py)."""
    if etype == "reservation":
        row = guest_vault.seal_reservation(db, hotel_id, eid, row)
    db.execute("INSERT INTO ref_data (hotel_id, entity_type, entity_id, data, hlc, updated_at)"
               " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hotel_id, entity_type, entity_id) DO UPDATE SET"
               " data = excluded.data, hlc = excluded.hlc, updated_at = excluded.updated_at",
               [hotel_id, etype, eid, json.dumps(row, sort_keys=True, separators=(",", ":"), default=str), stamp, now])
    changelog.record(db, hotel_id=hotel_id, entity_type=etype, entity_id=eid, data=row, hlc_stamp=stamp, now=now)


def put_change(db, hotel_id: str, ch: dict, now: float) -> None:
    """A reference change the chain's cloud sent a hub: the hub's row replaced (or deleted) and
    logged for its kiosks, with the chain's stamp."""
    etype, eid = ch["entityType"], ch["entityId"]
    if ch.get("op") == "delete":
        db.execute("DELETE FROM ref_data WHERE hotel_id = ? AND entity_type = ? AND entity_id = ?",
                   [hotel_id, etype, eid])
        changelog.record(db, hotel_id=hotel_id, entity_type=etype, entity_id=eid, data=None,
                         hlc_stamp=ch.get("hlc") or "", now=now, op="delete")
        return
    _put(db, hotel_id, etype, eid, ch["data"], ch.get("hlc") or "", now)


def erase_reservation(db, hotel_id: str, confirmation: str, stamp: str, now: float) -> bool:
    """A guest's erasure (sync/cloud/erasure.py): the reservation's personal fields replaced
    (:func:`kiosk.erased.reservation`: the name an erased marker, contact details and any other
    field null; dates, room, rate and amounts kept) and the new state logged for pull, which
    deletes the reservation's older changes (the ones with the name).  False when the hotel
    holds no such reservation, or it is erased already."""
    row = db.execute("SELECT data FROM ref_data WHERE hotel_id = ? AND entity_type = 'reservation' AND entity_id = ?",
                     [hotel_id, confirmation]).fetchone()
    if row is None:
        return False
    new = erased.reservation(json.loads(row[0]))
    data = json.dumps(new, sort_keys=True, separators=(",", ":"), default=str)
    if data == row[0]:
        return False
    db.execute("UPDATE ref_data SET data = ?, hlc = ?, updated_at = ? WHERE hotel_id = ? AND entity_type = 'reservation'"
               " AND entity_id = ?", [data, stamp, now, hotel_id, confirmation])
    changelog.record(db, hotel_id=hotel_id, entity_type="reservation", entity_id=confirmation, data=new,
                     hlc_stamp=stamp, now=now)
    return True


def erased_confirmations(db, hotel_id: str) -> set[str]:
    """The hotel's erased guests (``guest_erasures``, written by sync/cloud/erasure.py): their
    reservations stay erased whatever a later import or PMS read says of them."""
    return {r[0] for r in db.execute("SELECT confirmation FROM guest_erasures WHERE hotel_id = ?", [hotel_id])}


def _kept_erased(table: str, rows: list[dict], gone: set[str]) -> list[dict]:
    """``rows`` with the reservations of erased guests erased again (an import brings them back
    with the name the PMS still has)."""
    if table != "reservations" or not gone:
        return rows
    return [erased.reservation(r) if str(r.get("confirmation")) in gone else r for r in rows]


def read_export(folder) -> dict[str, list[dict]]:
    """The reference tables of a PMS export folder, parsed and checked by the kiosk's own
    importer (docs/property-data.md): a bad cell raises ValidationError naming file, line
    and column, before anything is written."""
    from kiosk.property.importer import parse_dir

    out = {stem: rows for stem, rows in parse_dir(folder).items() if stem in TABLES}
    views = pms.read(folder)
    if views is not None:
        out[pms.STEM] = views
    return out


def seal_existing(db, after: tuple[str, str], limit: int) -> tuple[int, tuple[str, str] | None]:
    """Reservations an earlier version stored in clear, sealed under their guests' keys (inside
    the caller's transaction), ``limit`` rows after the key ``after`` (hotel, confirmation):
    (rows sealed, the key to go on from, None at the end).  An erased one stays as it is."""
    rows = db.execute("SELECT hotel_id, entity_id, data FROM ref_data WHERE entity_type = 'reservation'"
                      " AND (hotel_id > ? OR (hotel_id = ? AND entity_id > ?)) AND data NOT LIKE '%\"pii1.%'"
                      " ORDER BY hotel_id, entity_id LIMIT ?", [after[0], *after, limit]).fetchall()
    for hotel_id in sorted({r[0] for r in rows}):
        guest_vault.ensure(db, hotel_id, [r[1] for r in rows if r[0] == hotel_id])
    n = 0
    for hotel_id, eid, data in rows:
        new = json.dumps(guest_vault.seal_reservation(db, hotel_id, eid, json.loads(data)), sort_keys=True,
                         separators=(",", ":"), default=str)
        if "pii1." in new:
            n += db.execute("UPDATE ref_data SET data = ? WHERE hotel_id = ? AND entity_type = 'reservation'"
                            " AND entity_id = ?", [new, hotel_id, eid]).rowcount
    return n, ((rows[-1][0], rows[-1][1]) if len(rows) == limit else None)
