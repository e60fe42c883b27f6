"""Apply a model's proposed actions locally and queue them for the cloud, in ONE transaction.

* ``CREATE_TASK``          a ``tasks`` row (source = the model) + outbox ``task.created``;
* ``UPDATE_PMS``           outbox ``pms.update``; with ``requiresApproval`` nothing goes to
                           the PMS yet: an ``approval`` task holds the proposal for staff;
* ``SEND_MESSAGE``         outbox ``message.send``;
* ``SCHEDULE_MAINTENANCE`` a preventive ``work_orders`` row + outbox ``work_order.created``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from sync import outbox

from .. import audit, store
from .base import Action


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat()


def _task(db, hotel_id: str, p: dict, *, source: str, now: float, node: str, type_: str | None = None) -> dict:
    row = {"hotel_id": hotel_id, "task_id": "T-" + uuid.uuid4().hex[:10], "type": type_ or p.get("type", "general"),
           "room_number": p.get("roomNumber"), "priority": p.get("priority", "normal"),
           "required_skill": p.get("requiredSkill"), "created_at": _iso(now), "due_at": p.get("dueAt"),
           "status": "open", "assignee": p.get("assignee"), "description": str(p.get("description", ""))[:2000],
           "source": source}
    db.execute(f"INSERT INTO tasks ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    outbox.enqueue(db, hotel_id=hotel_id, kind="task.created", entity_type="task", entity_id=row["task_id"],
                   payload={k: v for k, v in row.items() if k != "hotel_id"}, node=node, now=now)
    return {"type": "CREATE_TASK", "taskId": row["task_id"], "status": "queued"}


def apply(db, hotel_id: str, actions: list[Action], *, model_id: str, by: str | None, now: float,
          node: str) -> list[dict]:
    """Every action applied and queued, or none (one transaction); returns what was done."""
    done: list[dict] = []
    if not actions:
        return done
    with store.transaction(db):
        for a in actions:
            p = dict(a.payload)
            if a.type == "CREATE_TASK":
                done.append(_task(db, hotel_id, p, source=model_id, now=now, node=node))
            elif a.type == "UPDATE_PMS" and p.get("requiresApproval"):
                t = _task(db, hotel_id, {"priority": "normal", "requiredSkill": "front_office",
                                         "description": json.dumps(p, sort_keys=True)},
                          source=model_id, now=now, node=node, type_="approval")
                done.append({"type": "UPDATE_PMS", "status": "awaiting_approval", "approvalTaskId": t["taskId"]})
            elif a.type == "UPDATE_PMS":
                if p.get("entity") == "task" and "assignee" in p.get("changes", {}):  # local first
                    db.execute("UPDATE tasks SET assignee = ?, status = 'assigned' WHERE hotel_id = ? AND task_id = ?",
                               [p["changes"]["assignee"], hotel_id, str(p.get("id"))])
                q = outbox.enqueue(db, hotel_id=hotel_id, kind="pms.update", entity_type="pms",
                                   entity_id=f"{p.get('entity', 'pms')}:{p.get('id', '?')}", payload=p, node=node,
                                   now=now)
                done.append({"type": "UPDATE_PMS", "status": "queued", "outboxKey": q.idempotency_key})
            elif a.type == "SEND_MESSAGE":
                entity = str(p.get("confirmation", "?")) + (f":{p['templateId']}" if p.get("templateId") else "")
                seen = db.execute("SELECT idempotency_key FROM outbox WHERE hotel_id = ? AND kind = 'message.send'"
                                  " AND entity_type = 'message' AND entity_id = ?", [hotel_id, entity]).fetchone() \
                    if p.get("templateId") else None
                shown = {"content": p.get("text"), "templateId": p.get("templateId")}
                if seen:  # this moment's message went to this guest already: once is enough
                    done.append({"type": "SEND_MESSAGE", "status": "already_sent", "outboxKey": seen[0]} | shown)
                    continue
                q = outbox.enqueue(db, hotel_id=hotel_id, kind="message.send", entity_type="message",
                                   entity_id=entity, payload=p, node=node, now=now)
                done.append({"type": "SEND_MESSAGE", "status": "queued", "outboxKey": q.idempotency_key} | shown)
            elif a.type == "SCHEDULE_MAINTENANCE":
                wo_id = "PM-" + uuid.uuid4().hex[:10]
                db.execute("INSERT INTO work_orders (hotel_id, work_order_id, asset_id, room_number, type, description,"
                           " status, opened_at, updated_at) VALUES (?, ?, ?, ?, 'preventive', ?, 'open', ?, ?)",
                           [hotel_id, wo_id, p.get("assetId"), p.get("roomNumber"),
                            str(p.get("description", "preventive maintenance"))[:2000], now, now])
                outbox.enqueue(db, hotel_id=hotel_id, kind="work_order.created", entity_type="work_order",
                               entity_id=wo_id, node=node, now=now,
                               payload={"workOrderId": wo_id, "assetId": p.get("assetId"),
                                        "roomNumber": p.get("roomNumber"), "type": "preventive",
                                        "description": str(p.get("description", ""))[:2000], "status": "open",
                                        "assignee": None, "priority": "normal", "notes": "",
                                        "openedAt": _iso(now), "closedAt": None})
                done.append({"type": "SCHEDULE_MAINTENANCE", "status": "queued", "workOrderId": wo_id})
            else:
                raise ValueError(f"unknown action {a.type!r}")
        audit.record(db, hotel_id=hotel_id, event="model.actions", outcome="success", at=now, actor=by,
                     details={"modelId": model_id, "actions": [d["type"] for d in done]})
    return done


def decide(db, hotel_id: str, task_id: str, decision: str, *, by: str, now: float, node: str) -> dict:
    """Approve (queue the held UPDATE_PMS) or reject an approval task; one transaction."""
    from ..errors import NotFound, ValidationError

    if decision not in ("approve", "reject"):
        raise ValidationError("decision must be approve or reject", {"field": "decision"})
    with store.transaction(db):
        row = db.execute("SELECT description FROM tasks WHERE hotel_id = ? AND task_id = ? AND type = 'approval'"
                         " AND status IN ('open', 'assigned')", [hotel_id, task_id]).fetchone()
        if row is None:
            raise NotFound(f"no open approval {task_id!r}", {"taskId": task_id})
        proposal = json.loads(row[0])
        result = {"taskId": task_id, "decision": decision, "proposal": proposal}
        if decision == "approve":
            payload = {k: v for k, v in proposal.items() if k != "requiresApproval"} | {"approvedBy": by}
            q = outbox.enqueue(db, hotel_id=hotel_id, kind="pms.update", entity_type="pms",
                               entity_id=f"{payload.get('entity', 'pms')}:{payload.get('id', '?')}", payload=payload,
                               node=node, now=now)
            result["outboxKey"] = q.idempotency_key
        db.execute("UPDATE tasks SET status = ?, assignee = coalesce(assignee, ?) WHERE hotel_id = ? AND task_id = ?",
                   ["done" if decision == "approve" else "cancelled", by, hotel_id, task_id])
        audit.record(db, hotel_id=hotel_id, event=f"approval.{decision}", outcome="success", at=now, actor=by,
                     details={"taskId": task_id, "entity": proposal.get("entity"), "id": proposal.get("id")})
    return result
