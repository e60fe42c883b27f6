"""Work orders in the cloud: ``work_order.created`` / ``work_order.updated`` and the read side.

An update is checked against the CLOUD's current row: a status change must be
a legal transition from the cloud's status (sync.workflow_rules); every field
that really changes gets one history row (old = the cloud's value before).
"""

from __future__ import annotations

import json

from kiosk.clock import iso
from sync.workflow_rules import can_move

from . import validation
from .results import Rejected
from .validation import Entry, WorkOrderCreated, WorkOrderUpdated

_COLUMNS = {"assetId": "asset_id", "roomNumber": "room_number", "type": "type", "description": "description",
            "status": "status", "assignee": "assignee", "priority": "priority", "notes": "notes",
            "openedAt": "opened_at", "closedAt": "closed_at"}
CLOSED = ("done", "cancelled")


def _row(db, hotel_id: str, work_order_id: str) -> dict | None:
    rows = list(db.query("SELECT * FROM work_orders WHERE hotel_id = ? AND work_order_id = ?",
                         [hotel_id, work_order_id]))
    return rows[0] if rows else None


def create(db, e: Entry, now: float) -> None:
    """Insert; the same id again is fine only with identical fields (then nothing changes)."""
    p = validation.payload(WorkOrderCreated, e, "workOrderId")
    canonical = json.dumps(p.model_dump(), sort_keys=True, separators=(",", ":"))
    existing = _row(db, e.hotelId, p.workOrderId)
    if existing is not None:
        if existing["created_payload"] == canonical:
            return
        raise Rejected("WORK_ORDER_EXISTS", f"{p.workOrderId} was created before with other fields")
    row = {"hotel_id": e.hotelId, "work_order_id": p.workOrderId,
           **{col: getattr(p, field) for field, col in _COLUMNS.items()},
           "created_payload": canonical, "version": 1, "updated_at": now, "updated_hlc": e.hlc}
    db.execute(f"INSERT INTO work_orders ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
               list(row.values()))


def update(db, e: Entry, now: float) -> None:
    """Apply the fields that differ from the cloud's row, with one history row each."""
    p = validation.payload(WorkOrderUpdated, e, "workOrderId")
    row = _row(db, e.hotelId, p.workOrderId)
    if row is None:
        raise Rejected("UNKNOWN_WORK_ORDER", f"no work order {p.workOrderId} in hotel {e.hotelId}")
    changed = {f: (row[f], c.new) for f, c in p.changes.items() if row[f] != c.new}
    if "status" in changed and not can_move(*changed["status"]):
        raise Rejected("INVALID_TRANSITION", "{} -> {}".format(*changed["status"]))
    if not changed:
        return
    new = {f: row[f] for f in validation.CHANGEABLE} | {f: v for f, (_, v) in changed.items()}
    closed_at = row["closed_at"]
    if "status" in changed:
        closed_at = p.at if new["status"] in CLOSED else None
    db.execute("UPDATE work_orders SET status = ?, assignee = ?, priority = ?, notes = ?, description = ?,"
               " closed_at = ?, version = version + 1, updated_at = ?, updated_hlc = ?"
               " WHERE hotel_id = ? AND work_order_id = ?",
               [new["status"], new["assignee"], new["priority"], new["notes"], new["description"],
                closed_at, now, e.hlc, e.hotelId, p.workOrderId])
    db.conn.executemany(
        "INSERT INTO work_order_history (hotel_id, work_order_id, field, old, new, by, at, hlc, entry_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(e.hotelId, p.workOrderId, f, old, v, p.by, p.at, e.hlc, e.key) for f, (old, v) in changed.items()])


def list_for_hotel(db, hotel_id: str) -> list[dict]:
    """Every work order of the hotel, as the cloud holds it, each with its history."""
    history: dict[str, list[dict]] = {}
    for h in db.query("SELECT * FROM work_order_history WHERE hotel_id = ? ORDER BY id", [hotel_id]):
        history.setdefault(h["work_order_id"], []).append(
            {"field": h["field"], "old": h["old"], "new": h["new"], "by": h["by"], "at": h["at"],
             "hlc": h["hlc"]})
    return [{"workOrderId": r["work_order_id"], "hotelId": r["hotel_id"],
             **{field: r[col] for field, col in _COLUMNS.items()},
             "version": r["version"], "updatedAt": iso(r["updated_at"]), "updatedHlc": r["updated_hlc"],
             "history": history.get(r["work_order_id"], [])}
            for r in db.query("SELECT * FROM work_orders WHERE hotel_id = ? ORDER BY work_order_id", [hotel_id])]
