"""Work orders from the PMS: ``work_orders.csv`` of an export given to ``kiosk-cloud data import``.

The PMS is authoritative for what it says, but work orders are also edited (and born)
at the kiosks, so an import is a set of writes judged by the same rules as a kiosk's
(:mod:`sync.conflicts`), stamped with a fresh cloud HLC (later than every write the
cloud has seen):

* a work order the cloud does not hold is created, and reaches every kiosk by pull;
* of one it holds, only the fields the PMS changed since its previous export are
  written (so a kiosk's edit of a field the PMS left alone stays); a field a kiosk
  changed meanwhile is a concurrent write, and the PMS's value replacing it is
  recorded as a conflict on both sides (the cloud's ``conflicts``, and every kiosk by
  pull), as is a PMS change the rules refuse (a done order is only reopened
  explicitly).  A status may take several legal steps at once (an export is a state);
* the fixed fields (asset, room, type, opened at) are the PMS's and are replaced;
* work orders the file does not name are left alone;
* a file identical to the previous one changes nothing (what each export said is kept
  in ``pms_work_orders``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import ValidationError as PydanticError

from kiosk.clock import iso
from kiosk.errors import ValidationError
from sync import conflicts as rules

from . import changelog, validation, workorders

STEM = "work_orders"
FILE = f"{STEM}.csv"
#: work_orders.csv column -> the work order's field (as pushed and pulled)
FIELDS = {"asset_id": "assetId", "room_number": "roomNumber", "type": "type", "description": "description",
          "status": "status", "assignee": "assignee", "priority": "priority", "notes": "notes",
          "opened_at": "openedAt", "closed_at": "closedAt"}
FIXED = ("assetId", "roomNumber", "type", "openedAt")
DEFAULTS = {"type": "failure", "description": "", "priority": "normal", "notes": "", "assignee": None,
            "assetId": None, "roomNumber": None, "closedAt": None}
_COLUMN = {"assetId": "asset_id", "roomNumber": "room_number", "openedAt": "opened_at", "closedAt": "closed_at"}


def read(folder) -> list[dict] | None:
    """``work_orders.csv`` of the export folder as PMS views (only the columns the file
    has), or None when there is none.  Parsed and checked by the kiosk's importer: a bad
    cell raises ValidationError naming file, line and column."""
    from kiosk.property.importer import parse_file

    path = Path(folder) / FILE
    if not path.exists():
        return None
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = set(next(csv.reader(f), []))
    views = []
    for line, row in enumerate(parse_file(path), start=2):
        view = {"workOrderId": row["work_order_id"],
                **{field: row.get(col) for col, field in FIELDS.items() if col in header}}
        try:  # what a kiosk's work_order.created may hold (lengths), checked before anything is written
            validation.WorkOrderCreated.model_validate(DEFAULTS | {k: v for k, v in view.items() if v is not None})
        except PydanticError as e:
            err = e.errors()[0]
            column = next((c for c, f in FIELDS.items() if f == err["loc"][0]), "work_order_id") \
                if err["loc"] else "work_order_id"
            raise ValidationError(f"{FILE} line {line}, column {column!r}: {err['msg']}",
                                  {"file": FILE, "line": line, "column": column, "problem": err["msg"]}) from None
        views.append(view)
    return views


def import_work_orders(db, hotel_id: str, views: list[dict], stamp: str, now: float, progress=None) -> dict:
    """Apply the PMS's views inside the caller's transaction; returns the counts."""
    counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0, "conflicts": 0}
    for view in views:
        wo_id = view["workOrderId"]
        canonical = json.dumps(view, sort_keys=True, separators=(",", ":"), default=str)
        prev = db.execute("SELECT data FROM pms_work_orders WHERE hotel_id = ? AND work_order_id = ?",
                          [hotel_id, wo_id]).fetchone()
        if prev is not None and prev[0] == canonical:
            counts["unchanged"] += 1
            continue
        row = workorders._row(db, hotel_id, wo_id)
        if row is None:
            _create(db, hotel_id, view, stamp, now)
            counts["added"] += 1
        else:
            before = json.loads(prev[0]) if prev is not None else None
            counts["conflicts"] += _change(db, hotel_id, row, view, before, stamp, now)
            counts["changed"] += 1
        db.execute("INSERT INTO pms_work_orders (hotel_id, work_order_id, data, hlc, imported_at)"
                   " VALUES (?, ?, ?, ?, ?) ON CONFLICT (hotel_id, work_order_id) DO UPDATE SET"
                   " data = excluded.data, hlc = excluded.hlc, imported_at = excluded.imported_at",
                   [hotel_id, wo_id, canonical, stamp, now])
        if progress:
            progress(1)
    return counts


def _create(db, hotel_id: str, view: dict, stamp: str, now: float) -> None:
    fields = DEFAULTS | {k: v for k, v in view.items() if v is not None}
    payload = validation.WorkOrderCreated.model_validate(fields)
    stamps = json.dumps({f: stamp for f in validation.CHANGEABLE}, sort_keys=True)
    row = {"hotel_id": hotel_id, "work_order_id": payload.workOrderId,
           **{col: getattr(payload, field) for field, col in workorders._COLUMNS.items()},
           "created_payload": json.dumps(payload.model_dump(), sort_keys=True, separators=(",", ":")),
           "version": 1, "updated_at": now, "updated_hlc": stamp, "field_hlc": stamps, "judged_hlc": stamps}
    workorders.insert(db, row, stamp, now)


def _value(view: dict, field: str):
    v = view.get(field)
    return DEFAULTS.get(field) if v is None else v


def _change(db, hotel_id: str, row: dict, view: dict, before: dict | None, stamp: str, now: float) -> int:
    """Judge what the PMS changed since ``before`` (its previous view; None: it never named
    this order, so every field it states that differs is a change); returns the conflicts."""
    wo_id = row["work_order_id"]
    base = before if before is not None else {f: row[workorders._COLUMNS[f]] for f in FIELDS.values()}
    changes = {f: _value(view, f) for f in validation.CHANGEABLE
               if f in view and _value(view, f) != _value(base, f)}
    seen = {f: _value(base, f) for f in changes}
    field_hlc = json.loads(row["field_hlc"] or "{}")
    to_apply, lost = rules.merge_work_order(row, field_hlc, changes, stamp, by="pms", seen=seen, snapshot=True)
    for c in lost:
        changelog.conflict(db, hotel_id, c, None, now)
    judged = json.loads(row["judged_hlc"] or "{}")
    judged_new = judged | {f: max(judged.get(f, ""), stamp) for f in changes}
    fixed = {_COLUMN.get(f, f): view[f] for f in FIXED if f in view and view[f] is not None
             and view[f] != row[_COLUMN.get(f, f)]}
    new = {f: row[f] for f in validation.CHANGEABLE} | to_apply
    closed_at = row["closed_at"]
    if "status" in to_apply:
        closed_at = (view.get("closedAt") or iso(now)) if new["status"] in workorders.CLOSED else None
    field_hlc |= {f: stamp for f in to_apply}
    if to_apply or fixed or judged_new != judged:
        sets = {**{f: new[f] for f in validation.CHANGEABLE}, **fixed, "closed_at": closed_at,
                "field_hlc": json.dumps(field_hlc, sort_keys=True),
                "judged_hlc": json.dumps(judged_new, sort_keys=True), "updated_at": now}
        workorders.write_judged(db, hotel_id, wo_id, sets, stamp,
                                [(f, row[f], v, "pms", iso(now), stamp, f"pms:{stamp}") for f, v in to_apply.items()],
                                now)
    return len(lost)
