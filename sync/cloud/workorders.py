"""Work orders in the cloud: ``work_order.created`` / ``work_order.updated`` and the read side.

An update is merged into the CLOUD's current row field by field with the rules
of :mod:`sync.conflicts` (per-field last writer wins by HLC; status by the
state machine).  Every field that really changes gets one history row (old =
the cloud's value before); every field that loses is a recorded conflict,
returned to the pushing kiosk with the entry's result.  Each change (and each
lost write, so the loser's kiosk pulls the winning state) is logged for pull.
"""

from __future__ import annotations

import json

from kiosk.clock import iso
from kiosk.workflow_rules import can_move
from sync import conflicts as rules

from . import changelog, validation
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
           "created_payload": canonical, "version": 1, "updated_at": now, "updated_hlc": e.hlc,
           # every field starts stamped with the creation, so LWW compares field by field
           "field_hlc": json.dumps({f: e.hlc for f in validation.CHANGEABLE}, sort_keys=True),
           "judged_hlc": json.dumps({f: e.hlc for f in validation.CHANGEABLE}, sort_keys=True)}
    insert(db, row, e.hlc, now)


def insert(db, row: dict, stamp: str, now: float) -> None:
    """A new work order row (a kiosk's, or the PMS's: :mod:`.pms`) and its change for the kiosks."""
    db.execute(f"INSERT INTO work_orders ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
               list(row.values()))
    _log(db, row["hotel_id"], row["work_order_id"], stamp, now)


def write_judged(db, hotel_id: str, work_order_id: str, sets: dict, stamp: str, history: list[tuple],
                 now: float) -> None:
    """What the PMS's view changed after judging (:mod:`.pms`): the columns in ``sets``, the
    history rows (field, old, new, by, at, hlc, entry_key), and the change for the kiosks."""
    db.execute(f"UPDATE work_orders SET {', '.join(f'{c} = ?' for c in sets)}, version = version + 1,"
               " updated_hlc = GREATEST(updated_hlc, ?) WHERE hotel_id = ? AND work_order_id = ?",
               [*sets.values(), stamp, hotel_id, work_order_id])
    db.conn.executemany(
        "INSERT INTO work_order_history (hotel_id, work_order_id, field, old, new, by, at, hlc, entry_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(hotel_id, work_order_id, *h) for h in history])
    _log(db, hotel_id, work_order_id, stamp, now)


def update(db, e: Entry, now: float) -> list[dict]:
    """Merge the changes into the cloud's row; returns the conflicts it resolved."""
    p = validation.payload(WorkOrderUpdated, e, "workOrderId")
    row = _row(db, e.hotelId, p.workOrderId)
    if row is None:
        raise Rejected("UNKNOWN_WORK_ORDER", f"no work order {p.workOrderId} in hotel {e.hotelId}")
    status = p.changes.get("status")
    if status is not None and not can_move(status.old if status.old is not None else row["status"], status.new):
        # the kiosk enforces the state machine: a change that is illegal even from the
        # status the kiosk saw is a bad entry, not a concurrent edit to resolve
        raise Rejected("INVALID_TRANSITION", f"{status.old or row['status']} -> {status.new}")
    field_hlc = json.loads(row["field_hlc"] or "{}")
    to_apply, lost = rules.merge_work_order(row, field_hlc, {f: c.new for f, c in p.changes.items()}, e.hlc,
                                            by=p.by, seen={f: c.old for f, c in p.changes.items()})
    recorded = [changelog.conflict(db, e.hotelId, c, e.key, now) for c in lost]
    # every field this entry wrote has now been judged up to its stamp, won or lost: a
    # kiosk holding that write (or an older one) adopts the cloud's value on pull
    judged = json.loads(row["judged_hlc"] or "{}")
    judged_new = judged | {f: max(judged.get(f, ""), e.hlc) for f in p.changes}
    if judged_new != judged:
        db.execute("UPDATE work_orders SET judged_hlc = ? WHERE hotel_id = ? AND work_order_id = ?",
                   [json.dumps(judged_new, sort_keys=True), e.hotelId, p.workOrderId])
    if to_apply:
        new = {f: row[f] for f in validation.CHANGEABLE} | to_apply
        closed_at = row["closed_at"]
        if "status" in to_apply:
            closed_at = p.at if new["status"] in CLOSED else None
        field_hlc |= {f: e.hlc for f in to_apply}
        db.execute("UPDATE work_orders SET status = ?, assignee = ?, priority = ?, notes = ?, description = ?,"
                   " closed_at = ?, version = version + 1, updated_at = ?, updated_hlc = GREATEST(updated_hlc, ?),"
                   " field_hlc = ? WHERE hotel_id = ? AND work_order_id = ?",
                   [new["status"], new["assignee"], new["priority"], new["notes"], new["description"],
                    closed_at, now, e.hlc, json.dumps(field_hlc, sort_keys=True), e.hotelId, p.workOrderId])
        db.conn.executemany(
            "INSERT INTO work_order_history (hotel_id, work_order_id, field, old, new, by, at, hlc, entry_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(e.hotelId, p.workOrderId, f, row[f], v, p.by, p.at, e.hlc, e.key) for f, v in to_apply.items()])
    if to_apply or lost or judged_new != judged:
        _log(db, e.hotelId, p.workOrderId, e.hlc, now)
    return recorded


def snapshot(row: dict) -> dict:
    """The work order as kiosks receive it on pull."""
    return {"workOrderId": row["work_order_id"], **{field: row[col] for field, col in _COLUMNS.items()},
            "version": row["version"], "updatedHlc": row["updated_hlc"],
            "fieldHlc": json.loads(row["field_hlc"] or "{}"), "judgedHlc": json.loads(row["judged_hlc"] or "{}")}


def put_snapshot(db, hotel_id: str, ch: dict, now: float) -> None:
    """A work order as the chain's cloud holds it, sent down to a hub: the hub's row becomes it
    (the chain judged every write, the hub's kiosks' too) and is logged for the hub's kiosks."""
    d = ch["data"] or {}
    wo_id = ch["entityId"]
    existing = _row(db, hotel_id, wo_id)
    incoming = str(d.get("updatedHlc") or ch.get("hlc") or "")
    if existing is not None and existing["updated_hlc"] > incoming:
        return  # the hub holds a later write, still on its way to the chain: the chain's answer follows
    row = {"hotel_id": hotel_id, "work_order_id": wo_id,
           **{col: d.get(field) for field, col in _COLUMNS.items()},
           "version": int(d.get("version") or 1), "updated_at": now,
           "updated_hlc": str(d.get("updatedHlc") or ch.get("hlc") or ""),
           "field_hlc": json.dumps(d.get("fieldHlc") or {}, sort_keys=True),
           "judged_hlc": json.dumps(d.get("judgedHlc") or {}, sort_keys=True)}
    row["type"] = row["type"] or "failure"
    row["status"] = row["status"] or "open"
    if existing is None:
        row["created_payload"] = json.dumps({f: d.get(f) for f in ("workOrderId", *_COLUMNS)}, sort_keys=True,
                                            separators=(",", ":"))
        db.execute(f"INSERT INTO work_orders ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))
    else:
        sets = {k: v for k, v in row.items() if k not in ("hotel_id", "work_order_id")}
        db.execute(f"UPDATE work_orders SET {', '.join(f'{k} = ?' for k in sets)}"
                   " WHERE hotel_id = ? AND work_order_id = ?", [*sets.values(), hotel_id, wo_id])
    _log(db, hotel_id, wo_id, row["updated_hlc"], now)


def _log(db, hotel_id: str, work_order_id: str, stamp: str, now: float) -> None:
    row = _row(db, hotel_id, work_order_id)
    changelog.record(db, hotel_id=hotel_id, entity_type="work_order", entity_id=work_order_id,
                     data=snapshot(row), hlc_stamp=max(stamp, row["updated_hlc"]), now=now)


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
