"""The one writer of the property's data: the tables the PMS owns (rooms, reservations, staff,
rate plans, offers, assets, charges, the FAQ, offer history), filled by a PMS export
(:mod:`.importer`), the demo seed (:mod:`.demo`), the bookings dataset (:mod:`.bookings`) and
the cloud's reference changes (pull).  Rows of tables another module owns go to that owner:
work orders (:mod:`kiosk.workorders`) and tasks (:mod:`kiosk.queue`).

Table and column names never come from the data: a table must be one of :data:`OWNED`
(or an owner's), and only the table's own columns reach the SQL.
"""

from __future__ import annotations

from collections.abc import Iterable

from kiosk import guest_keys

#: tables written here, and their key columns (besides hotel_id)
OWNED: dict[str, tuple[str, ...]] = {
    "rooms": ("room_number",), "reservations": ("confirmation",), "staff": ("staff_id",),
    "rate_plans": ("code", "room_type"), "offers": ("offer_id",), "assets": ("asset_id",),
    "charges": ("charge_id",), "faq": ("faq_id", "language"), "offer_history": ("id",),
}


#: personal fields of a table, sealed under the guest's key (kiosk/guest_keys.py): column -> tag
SEALED: dict[str, dict[str, str]] = {"reservations": {"guest_name": "n", "email": "c", "phone": "c"}}


def _sealed(db, hotel_id: str, table: str, row: dict) -> dict:
    """``row`` with its personal fields sealed under its guest's key (the confirmation)."""
    fields = SEALED.get(table)
    if not fields or not row.get("confirmation"):
        return row
    conf = str(row["confirmation"])
    return row | {c: guest_keys.seal(db, hotel_id, conf, row[c], tag) for c, tag in fields.items() if c in row}


def _owner(table: str):
    """The module owning ``table`` when it is not this one (imported late: they import the store)."""
    if table == "work_orders":
        from kiosk import workorders
        return workorders
    if table == "tasks":
        from kiosk import queue
        return queue
    if table not in OWNED:
        raise ValueError(f"not a property data table: {table!r}")
    return None


def columns(db, table: str) -> set[str]:
    """The table's columns, asked once per connection (a re-sync applies thousands of rows)."""
    cache = db.__dict__.setdefault("_table_columns", {})
    if table not in cache:
        cache[table] = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    return cache[table]


def upsert(db, hotel_id: str, table: str, data: dict) -> None:
    """Insert one row or update the fields the change names (a reference change from the cloud;
    a PMS read through a connector names only the fields it has, the rest stay); unknown
    fields are dropped."""
    owner = _owner(table)
    if owner is not None:
        return owner.replace_row(db, hotel_id, data)
    row = _sealed(db, hotel_id, table, {k: v for k, v in data.items() if k in columns(db, table) - {"hotel_id"}})
    row["hotel_id"] = hotel_id
    names = list(row)
    keys = ("hotel_id", *OWNED[table])
    sets = [n for n in names if n not in keys]
    if table == "offer_history" or not sets or not set(keys) <= set(names):
        db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                   [row[n] for n in names])
        return
    # an UPDATE first: a partial row would fail the table's NOT NULL columns as an INSERT
    cur = db.execute(f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in sets)}"
                     f" WHERE {' AND '.join(f'{k} = ?' for k in keys)}", [*(row[n] for n in sets),
                                                                        *(row[k] for k in keys)])
    if cur.rowcount == 0:
        db.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                   [row[n] for n in names])


def delete(db, hotel_id: str, table: str, keys: tuple[str, ...], values: list) -> None:
    """Delete one row by its key columns (a reference change from the cloud)."""
    owner = _owner(table)
    if owner is not None:
        return owner.delete_rows(db, hotel_id, keys[0], [values[0]])
    db.execute(f"DELETE FROM {table} WHERE hotel_id = ? AND " + " AND ".join(f"{k} = ?" for k in keys),
               [hotel_id, *values])


def clear(db, hotel_id: str, table: str, *, column: str | None = None, values: Iterable | None = None,
          prefix: str | None = None) -> None:
    """Delete the hotel's rows of ``table``: all, those whose ``column`` is one of ``values``, or
    whose ``column`` starts with ``prefix``.  Call inside the loader's transaction."""
    owner = _owner(table)
    if owner is not None:
        return owner.delete_rows(db, hotel_id, column, None if values is None else list(values))
    if column is not None and column not in columns(db, table):
        raise ValueError(f"no column {column!r} in {table}")
    if prefix is not None:
        db.execute(f"DELETE FROM {table} WHERE hotel_id = ? AND substr({column}, 1, ?) = ?",
                   [hotel_id, len(prefix), prefix])
    elif values is None:
        db.execute(f"DELETE FROM {table} WHERE hotel_id = ?", [hotel_id])
    else:
        ids = list(values)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            db.execute(f"DELETE FROM {table} WHERE hotel_id = ? AND {column} IN ({', '.join('?' * len(part))})",
                       [hotel_id, *part])


def insert_many(db, hotel_id: str, table: str, rows: list[dict]) -> int:
    """Insert rows (a loader's, inside its transaction); every row gets ``hotel_id``."""
    owner = _owner(table)
    if owner is not None:
        return owner.insert_rows(db, hotel_id, rows)
    if not rows:
        return 0
    cols = sorted({c for r in rows for c in r if c in columns(db, table) - {"hotel_id"}})
    if table in SEALED:
        rows = [_sealed(db, hotel_id, table, r) for r in rows]
    db.conn.executemany(f"INSERT INTO {table} (hotel_id, {', '.join(cols)}) VALUES (?, {', '.join('?' * len(cols))})",
                        [[hotel_id, *(r.get(c) for c in cols)] for r in rows])
    return len(rows)


def take_offer_unit(db, hotel_id: str, offer_id: str) -> None:
    """One unit of an offer's inventory taken (an accepted offer, in its transaction)."""
    db.execute("UPDATE offers SET inventory = inventory - 1 WHERE hotel_id = ? AND offer_id = ?"
               " AND inventory IS NOT NULL AND inventory > 0", [hotel_id, offer_id])


def record_offer_shown(db, hotel_id: str, confirmation: str, offer_id: str, shown_at, accepted: int) -> None:
    """An offer shown to a guest and whether it was taken (the upsell model learns from it)."""
    db.execute("INSERT INTO offer_history (hotel_id, confirmation, offer_id, shown_at, accepted)"
               " VALUES (?, ?, ?, ?, ?)", [hotel_id, confirmation, offer_id, shown_at, accepted])


def seal_existing(db, limit: int) -> int:
    """Reservations written in clear (by a version before personal fields were sealed): up to
    ``limit`` of them sealed now, inside the caller's transaction; how many."""
    from kiosk import erased

    found = db.execute(
        "SELECT hotel_id, confirmation, guest_name, email, phone FROM reservations WHERE"
        " (guest_name NOT IN ('', ?) AND substr(guest_name, 1, 5) <> 'pii1.')"
        " OR (email <> '' AND substr(email, 1, 5) <> 'pii1.') OR (phone <> '' AND substr(phone, 1, 5) <> 'pii1.')"
        " LIMIT ?", [erased.NAME, limit]).fetchall()
    for hotel_id, conf, name, email, phone in found:
        row = _sealed(db, hotel_id, "reservations", {"confirmation": conf, "guest_name": name, "email": email,
                                                     "phone": phone})
        db.execute("UPDATE reservations SET guest_name = ?, email = ?, phone = ? WHERE hotel_id = ? AND confirmation = ?",
                   [row["guest_name"], row["email"], row["phone"], hotel_id, conf])
    return len(found)


def erase_reservation(db, hotel_id: str, confirmation: str) -> bool:
    """A guest's erasure (pulled): the reservation's personal fields replaced as the cloud
    replaces them (:func:`kiosk.erased.reservation`: the name an erased marker, e-mail and phone
    null; dates, room, rate and amounts kept), whether or not the cloud's erased copy came
    first.  False when the kiosk holds no such reservation.  Inside the caller's transaction."""
    from kiosk import erased

    rows = list(db.query("SELECT * FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                         [hotel_id, confirmation]))
    if not rows:
        return False
    row = {k: v for k, v in rows[0].items() if k != "hotel_id"}
    new = erased.reservation(row)
    if new != row:
        upsert(db, hotel_id, "reservations", new)
    return True
