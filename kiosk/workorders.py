"""Work orders: local rows, the state machine, field-level history, queued for the PMS.

Every change is applied to the local row, written as one history row per
field (who, when, old -> new), audited and queued in the outbox, all in one
transaction.  See docs/sync-protocol.md for the state machine.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from . import audit, outbox, store
from .clock import from_iso, iso
from .errors import InvalidTransition, NotFound, ValidationError, VersionConflict
from .validation import JsonInt, parse
from .workflow_rules import STATUSES, allowed_from, can_move

PRIORITIES = ("low", "normal", "high", "urgent")
FIELDS = ("status", "assignee", "priority", "notes", "description")
Status = Literal["open", "assigned", "in_progress", "on_hold", "done", "reopened", "cancelled"]
Priority = Literal["low", "normal", "high", "urgent"]


class Changes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    assignee: StrictStr | None = Field(None, max_length=64)
    priority: Priority | None = None
    notes: StrictStr | None = Field(None, max_length=2000)
    description: StrictStr | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.model_fields_set:
            raise ValueError("changes must name at least one field")
        return self


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workOrderId: StrictStr = Field(min_length=1, max_length=64)
    changes: Changes
    expectedVersion: JsonInt | None = Field(None, ge=1)


def to_json(row: dict) -> dict:
    return {"workOrderId": row["work_order_id"], "hotelId": row["hotel_id"],
            "assetId": row["asset_id"], "roomNumber": row["room_number"], "type": row["type"],
            "description": row["description"], "status": row["status"], "assignee": row["assignee"],
            "priority": row["priority"], "notes": row["notes"], "openedAt": iso(row["opened_at"]),
            "closedAt": iso(row["closed_at"]) if row["closed_at"] else None,
            "updatedAt": iso(row["updated_at"]), "version": row["version"]}


def _get(db, hotel_id: str, work_order_id: str) -> dict | None:
    rows = list(db.query("SELECT * FROM work_orders WHERE hotel_id = ? AND work_order_id = ?",
                         [hotel_id, work_order_id]))
    return rows[0] if rows else None


def get(db, hotel_id: str, work_order_id: str) -> dict:
    row = _get(db, hotel_id, work_order_id)
    if row is None:
        raise NotFound(f"no work order {work_order_id!r} in this hotel", {"workOrderId": work_order_id})
    return row


def create(db, *, hotel_id: str, work_order_id: str, by: str, now: float, node: str,
           room_number: str | None = None, asset_id: str | None = None, type: str = "failure",
           description: str = "", status: str = "open", assignee: str | None = None,
           priority: str = "normal", notes: str = "", enqueue: bool = True) -> dict:
    """Create a work order locally (and queue it for the cloud unless it came from there)."""
    if status not in STATUSES or priority not in PRIORITIES:
        raise ValidationError("unknown status or priority", {"status": status, "priority": priority})
    row = {"hotel_id": hotel_id, "work_order_id": work_order_id, "asset_id": asset_id,
           "room_number": room_number, "type": type, "description": description, "status": status,
           "assignee": assignee, "priority": priority, "notes": notes, "opened_at": now,
           "closed_at": now if status == "done" else None, "updated_at": now, "version": 1}
    with store.transaction(db):
        _insert(db, row, by=by, now=now, node=node, enqueue=enqueue)
    return to_json(row)


def _insert(db, row: dict, *, by: str, now: float, node: str, enqueue: bool):
    """The row, its audit and (``enqueue``) its outbox entry; the caller holds the transaction."""
    hotel_id, work_order_id = row["hotel_id"], row["work_order_id"]
    if _get(db, hotel_id, work_order_id) is not None:
        raise ValidationError(f"work order {work_order_id!r} exists", {"workOrderId": work_order_id})
    db.execute(f"INSERT INTO work_orders ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
               list(row.values()))
    audit.record(db, hotel_id=hotel_id, event="work_order.created", outcome="success", at=now,
                 actor=by, details={"workOrderId": work_order_id})
    if enqueue:
        payload = {k: v for k, v in to_json(row).items() if k not in ("hotelId", "updatedAt", "version")}
        return outbox.enqueue(db, hotel_id=hotel_id, kind="work_order.created", entity_type="work_order",
                              entity_id=work_order_id, payload=payload, node=node, now=now)
    return None


def insert(db, *, hotel_id: str, work_order_id: str, by: str, now: float, node: str, room_number: str | None,
           type: str, description: str, priority: str, notes: str) -> dict:
    """An open work order made inside the caller's transaction (e.g. with the ticket it came
    from linked to it), queued for the cloud; returns it with the outbox entry's stamp and key."""
    if priority not in PRIORITIES:
        priority = "normal"
    row = {"hotel_id": hotel_id, "work_order_id": work_order_id, "asset_id": None, "room_number": room_number,
           "type": type, "description": description, "status": "open", "assignee": None, "priority": priority,
           "notes": notes, "opened_at": now, "closed_at": None, "updated_at": now, "version": 1}
    q = _insert(db, row, by=by, now=now, node=node, enqueue=True)
    return to_json(row) | {"hlc": q.hlc, "outboxKey": q.idempotency_key}


def update(db, body: Any, *, hotel_id: str, by: str, now: float, node: str) -> dict:
    """Apply a validated update; returns the response body (without ``success``)."""
    req = parse(UpdateRequest, body)
    wanted = {f: getattr(req.changes, f) for f in req.changes.model_fields_set}
    if "status" in wanted and wanted["status"] is None:
        raise ValidationError("status cannot be null", {"fields": [{"field": "changes.status"}]})
    with store.transaction(db):
        row = get(db, hotel_id, req.workOrderId)
        if req.expectedVersion is not None and req.expectedVersion != row["version"]:
            raise VersionConflict("the work order changed since you loaded it",
                                  {"expectedVersion": req.expectedVersion, "version": row["version"]})
        changes = {f: {"old": row[f], "new": v} for f, v in wanted.items() if row[f] != v}
        if "status" in changes and not can_move(row["status"], wanted["status"]):
            raise InvalidTransition(f"a {row['status']} work order cannot become {wanted['status']}",
                                    {"from": row["status"], "to": wanted["status"],
                                     "allowed": allowed_from(row["status"])})
        if not changes:
            return {"workOrder": to_json(row), "changes": {}, "syncStatus": "unchanged"}
        new = dict(row) | {f: c["new"] for f, c in changes.items()}
        if "status" in changes:
            new["closed_at"] = now if new["status"] in ("done", "cancelled") else None
        new["updated_at"], new["version"] = now, row["version"] + 1
        db.execute("UPDATE work_orders SET status = ?, assignee = ?, priority = ?, notes = ?,"
                   " description = ?, closed_at = ?, updated_at = ?, version = ?"
                   " WHERE hotel_id = ? AND work_order_id = ?",
                   [new["status"], new["assignee"], new["priority"], new["notes"], new["description"],
                    new["closed_at"], now, new["version"], hotel_id, req.workOrderId])
        queued = outbox.enqueue(db, hotel_id=hotel_id, kind="work_order.updated", entity_type="work_order",
                                entity_id=req.workOrderId, node=node, now=now,
                                payload={"workOrderId": req.workOrderId, "changes": changes,
                                         "by": by, "at": iso(now)})
        db.conn.executemany(
            "INSERT INTO work_order_history (hotel_id, work_order_id, field, old, new, by, at, hlc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(hotel_id, req.workOrderId, f, c["old"], c["new"], by, now, queued.hlc)
             for f, c in changes.items()])
        stamps = json.loads(row.get("field_hlc") or "{}") | {f: queued.hlc for f in changes}
        db.execute("UPDATE work_orders SET field_hlc = ? WHERE hotel_id = ? AND work_order_id = ?",
                   [json.dumps(stamps, sort_keys=True), hotel_id, req.workOrderId])
        audit.record(db, hotel_id=hotel_id, event="work_order.updated", outcome="success", at=now,
                     actor=by, details={"workOrderId": req.workOrderId, "fields": sorted(changes)})
    return {"workOrder": to_json(new), "changes": changes, "syncStatus": "queued",
            "outboxKey": queued.idempotency_key}


def history(db, hotel_id: str, work_order_id: str) -> list[dict]:
    return [{"field": r["field"], "old": r["old"], "new": r["new"], "by": r["by"], "at": iso(r["at"]),
             "hlc": r["hlc"]}
            for r in db.query("SELECT * FROM work_order_history WHERE hotel_id = ? AND work_order_id = ?"
                              " ORDER BY id", [hotel_id, work_order_id])]


# --- changes that arrive: the cloud's copy (pull) and a property's data (import, demo) ----------

FIELDS = ("status", "assignee", "priority", "notes", "description")


def _pending_fields(db, hotel_id: str, work_order_id: str) -> set[str]:
    """Fields this kiosk changed and has not delivered yet."""
    out: set[str] = set()
    for (payload,) in db.execute("SELECT payload FROM outbox WHERE hotel_id = ? AND entity_type = 'work_order'"
                                 " AND entity_id = ? AND kind = 'work_order.updated' AND state = 'pending'",
                                 [hotel_id, work_order_id]):
        out |= set(json.loads(payload).get("changes", {}))
    return out


def _cloud_stamps(d: dict) -> dict[str, str]:
    """Per field, the newest write the cloud has judged (won or lost) for the value it sends."""
    base = d.get("updatedHlc") or ""
    judged, valued = d.get("judgedHlc") or {}, d.get("fieldHlc") or {}
    return {f: max(judged.get(f, ""), valued.get(f, ""), "" if (judged or valued) else base) for f in FIELDS}


def apply_remote(db, hotel_id: str, work_order_id: str, d: dict, now: float) -> None:
    """The cloud's copy of a work order (pulled): adopt its fields, except those this kiosk
    holds a newer write of (rule ``work-order-fields``, docs/conflicts.md).

    A field is taken when the cloud has judged a write at least as new as the one this
    kiosk holds (its stamp in ``field_hlc``) and none of this kiosk's writes to it is
    still undelivered.  So a page fetched before this kiosk's latest push was judged
    (pull and push run concurrently) cannot roll the field back, and once every write
    has been judged every kiosk holds the cloud's value.  Each field changed gets a
    history row.
    """
    row = db.execute("SELECT status, assignee, priority, notes, description, version, field_hlc FROM work_orders"
                     " WHERE hotel_id = ? AND work_order_id = ?", [hotel_id, work_order_id]).fetchone()
    cloud = _cloud_stamps(d)
    if row is None:
        db.execute("INSERT INTO work_orders (hotel_id, work_order_id, asset_id, room_number, type, description,"
                   " status, assignee, priority, notes, opened_at, closed_at, updated_at, version, field_hlc)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [hotel_id, work_order_id, d.get("assetId"), d.get("roomNumber"), d.get("type") or "failure",
                    d.get("description") or "", d["status"], d.get("assignee"), d.get("priority") or "normal",
                    d.get("notes") or "", from_iso(d.get("openedAt")) or now, from_iso(d.get("closedAt")), now,
                    d.get("version") or 1, json.dumps(cloud, sort_keys=True)])
        return
    current = dict(zip(FIELDS, row[:5], strict=True))
    mine = json.loads(row[6] or "{}")
    keep = _pending_fields(db, hotel_id, work_order_id) | {f for f in FIELDS if mine.get(f, "") > cloud[f]}
    take = [f for f in FIELDS if f not in keep]
    changed = {f: d.get(f) for f in take if current[f] != d.get(f)
               and not (f in ("notes", "description") and (current[f] or "") == (d.get(f) or ""))}
    new = current | changed
    stamps = mine | {f: cloud[f] for f in take}
    version = row[5] if keep else max(row[5], d.get("version") or 1)
    db.execute("UPDATE work_orders SET status = ?, assignee = ?, priority = ?, notes = ?, description = ?,"
               " closed_at = CASE WHEN ? THEN ? ELSE closed_at END,"
               " updated_at = CASE WHEN ? THEN ? ELSE updated_at END, version = ?, field_hlc = ?"
               " WHERE hotel_id = ? AND work_order_id = ?",
               [new["status"], new["assignee"], new["priority"], new["notes"] or "", new["description"] or "",
                "status" in take, from_iso(d.get("closedAt")), bool(changed), now, version,
                json.dumps(stamps, sort_keys=True), hotel_id, work_order_id])
    db.conn.executemany(
        "INSERT INTO work_order_history (hotel_id, work_order_id, field, old, new, by, at, hlc)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(hotel_id, work_order_id, f, current[f], v, "cloud", now, cloud[f]) for f, v in changed.items()])


def replace_row(db, hotel_id: str, data: dict) -> None:
    """A property data row (kiosk.property.tables hands work orders here)."""
    delete_rows(db, hotel_id, "work_order_id", [data["work_order_id"]])
    insert_rows(db, hotel_id, [data])


def delete_rows(db, hotel_id: str, column: str | None, values: list | None) -> None:
    """Delete the hotel's work orders (all, or those whose id is in ``values``) with their history."""
    if values is None:
        db.execute("DELETE FROM work_order_history WHERE hotel_id = ?", [hotel_id])
        db.execute("DELETE FROM work_orders WHERE hotel_id = ?", [hotel_id])
        return
    if column not in (None, "work_order_id"):
        raise ValueError(f"work orders are deleted by work_order_id, not {column!r}")
    for i in range(0, len(values), 500):
        part = values[i:i + 500]
        marks = ", ".join("?" * len(part))
        db.execute(f"DELETE FROM work_order_history WHERE hotel_id = ? AND work_order_id IN ({marks})",
                   [hotel_id, *part])
        db.execute(f"DELETE FROM work_orders WHERE hotel_id = ? AND work_order_id IN ({marks})", [hotel_id, *part])


def insert_rows(db, hotel_id: str, rows: list[dict]) -> int:
    """Work orders of a property's data (an import or the demo seed), inside the loader's transaction."""
    if not rows:
        return 0
    known = {r[1] for r in db.execute("PRAGMA table_info(work_orders)")} - {"hotel_id"}
    cols = sorted({c for r in rows for c in r if c in known})
    db.conn.executemany(f"INSERT INTO work_orders (hotel_id, {', '.join(cols)}) VALUES (?, {', '.join('?' * len(cols))})",
                        [[hotel_id, *(r.get(c) for c in cols)] for r in rows])
    return len(rows)


def add_preventive(db, *, hotel_id: str, work_order_id: str, asset_id: str | None, room_number: str | None,
                   description: str, now: float) -> None:
    """A preventive work order a model scheduled (its caller queues it for the cloud, keyed by
    the model's action), inside the caller's transaction."""
    db.execute("INSERT INTO work_orders (hotel_id, work_order_id, asset_id, room_number, type, description,"
               " status, opened_at, updated_at) VALUES (?, ?, ?, ?, 'preventive', ?, 'open', ?, ?)",
               [hotel_id, work_order_id, asset_id, room_number, description, now, now])
