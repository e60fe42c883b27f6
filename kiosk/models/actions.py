"""Apply a model's proposed actions locally and queue them for the cloud, in ONE transaction.

* ``CREATE_TASK``          a ``tasks`` row (source = the model) + outbox ``task.created``;
* ``UPDATE_PMS``           outbox ``pms.update``; with ``requiresApproval`` nothing goes to
                           the PMS yet: an ``approval`` task holds the proposal for staff;
* ``SEND_MESSAGE``         outbox ``message.send``;
* ``SCHEDULE_MAINTENANCE`` a preventive ``work_orders`` row + outbox ``work_order.created``.

Every action is done once for what it is about (its ``subject``: the finding, the charge,
the asset and horizon, the reservation and template…).  Its key is derived from the hotel,
the model, the type and the subject alone (:func:`action_key`), so a rerun, a scheduled run
after a manual one, and the same model at another kiosk of the hotel all arrive at the same
key.  Locally the key is unique in ``model_actions``: an action whose key is there is not
done again (the answer says ``already_done``, or ``already_sent`` for a message, with what
the first run did).  Towards the cloud the key is the outbox entry's idempotency key and the
ids it creates (task, work order) are derived from it: the cloud remembers every entry key
it applied, from any device of the hotel, and answers a second one ``duplicate`` without
applying it (docs/sync-protocol.md), so two kiosks that both acted before they synced still
act once in the cloud.  An approval's ``pms.update`` is keyed by the approval task, so
approving the same proposal at two kiosks reverses a charge once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

from .. import audit, guest_keys, outbox, queue, store, workorders
from ..clock import local_date
from .base import Action


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat()


def subject(a: Action, now: float, tz: str = "UTC") -> str:
    """What ``a`` is about: the model's own subject, else the whole proposal on that day, the
    hotel's local day in zone ``tz`` (the same proposal from the same model the same day is the
    same action)."""
    if a.subject:
        return a.subject
    about = json.dumps(a.payload, sort_keys=True, separators=(",", ":"), default=str)
    return about + "@" + local_date(now, tz).isoformat()


def action_key(hotel_id: str, model_id: str, type_: str, about: str) -> str:
    """The key of an action: the same at every kiosk and in every run for the same subject."""
    digest = hashlib.sha256(json.dumps([hotel_id, model_id, type_, about]).encode()).hexdigest()
    return "act-" + digest[:32]


def guest_of(a: Action) -> str | None:
    """The guest an action is about (its payload's confirmation, or a question's ``CONF: …``):
    what it keeps of their words is sealed under their key (kiosk/guest_keys.py)."""
    conf = a.payload.get("confirmation")
    if conf:
        return str(conf)
    words = a.payload.get("description")
    if a.payload.get("type") == "guest_question" and isinstance(words, str) and ": " in words:
        return words.split(": ", 1)[0]
    return None


def _claim(db, hotel_id: str, key: str, model_id: str, type_: str, about: str, now: float,
           guest: str | None = None) -> dict | None:
    """Take ``key`` for this action; None if taken, else what the first run did (inside the transaction)."""
    cur = db.execute("INSERT INTO model_actions (hotel_id, action_key, model_id, type, subject, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     [hotel_id, key, model_id, type_, guest_keys.seal(db, hotel_id, guest, about[:500]), now])
    if cur.rowcount:
        return None
    row = db.execute("SELECT result FROM model_actions WHERE hotel_id = ? AND action_key = ?", [hotel_id, key]).fetchone()
    return guest_keys.open_tree(db, json.loads(row[0])) if row and row[0] else {}


def _task(db, hotel_id: str, p: dict, *, source: str, now: float, node: str, type_: str | None = None,
          key: str | None = None, guest: str | None = None) -> dict:
    task_id = "T-" + (key[4:14] if key else uuid.uuid4().hex[:10])
    row = {"hotel_id": hotel_id, "task_id": task_id, "type": type_ or p.get("type", "general"),
           "room_number": p.get("roomNumber"), "priority": p.get("priority", "normal"),
           "required_skill": p.get("requiredSkill"), "created_at": _iso(now), "due_at": p.get("dueAt"),
           "status": "open", "assignee": p.get("assignee"), "description": str(p.get("description", ""))[:2000],
           "source": source}
    queue.add_task(db, row | {"description": guest_keys.seal(db, hotel_id, guest, row["description"])})
    outbox.enqueue(db, hotel_id=hotel_id, kind="task.created", entity_type="task", entity_id=row["task_id"],
                   payload={k: v for k, v in row.items() if k != "hotel_id"}, node=node, now=now,
                   idempotency_key=key, subject=guest)
    return {"type": "CREATE_TASK", "taskId": row["task_id"], "status": "queued"}


def apply(db, hotel_id: str, actions: list[Action], *, model_id: str, by: str | None, now: float,
          node: str, tz: str = "UTC") -> list[dict]:
    """Every action applied and queued, or none (one transaction); returns what was done.
    ``tz``: the hotel's time zone, for the day of an action without a subject of its own."""
    done: list[dict] = []
    if not actions:
        return done
    with store.transaction(db):
        for a in actions:
            p = dict(a.payload)
            about = subject(a, now, tz)
            key = action_key(hotel_id, model_id, a.type, about)
            guest = guest_of(a)
            first = _claim(db, hotel_id, key, model_id, a.type, about, now, guest)
            if first is not None:  # done before, by an earlier run here or one that came down
                status = "already_sent" if a.type == "SEND_MESSAGE" else "already_done"
                done.append({**first, "type": a.type, "status": status, "actionKey": key})
                continue
            result = _do(db, hotel_id, a.type, p, key=key, model_id=model_id, now=now, node=node, guest=guest)
            result["actionKey"] = key
            db.execute("UPDATE model_actions SET result = ? WHERE hotel_id = ? AND action_key = ?",
                       [json.dumps(guest_keys.seal_fields(db, hotel_id, guest, result), sort_keys=True), hotel_id, key])
            done.append(result)
        audit.record(db, hotel_id=hotel_id, event="model.actions", outcome="success", at=now, actor=by,
                     details={"modelId": model_id, "actions": [d["type"] for d in done]})
    return done


def _do(db, hotel_id: str, type_: str, p: dict, *, key: str, model_id: str, now: float, node: str,
        guest: str | None = None) -> dict:
    """One action, applied locally and queued under ``key`` (inside the caller's transaction);
    the words of a guest's (``guest``) kept sealed under their key."""
    if type_ == "CREATE_TASK":
        return _task(db, hotel_id, p, source=model_id, now=now, node=node, key=key, guest=guest)
    if type_ == "UPDATE_PMS" and p.get("requiresApproval"):
        t = _task(db, hotel_id, {"priority": "normal", "requiredSkill": "front_office",
                                 "description": json.dumps(p, sort_keys=True)},
                  source=model_id, now=now, node=node, type_="approval", key=key)
        return {"type": "UPDATE_PMS", "status": "awaiting_approval", "approvalTaskId": t["taskId"]}
    if type_ == "UPDATE_PMS":
        if p.get("entity") == "task" and "assignee" in p.get("changes", {}):  # local first
            queue.set_task(db, hotel_id, str(p.get("id")), status="assigned", assignee=p["changes"]["assignee"])
        q = outbox.enqueue(db, hotel_id=hotel_id, kind="pms.update", entity_type="pms",
                           entity_id=f"{p.get('entity', 'pms')}:{p.get('id', '?')}", payload=p, node=node, now=now,
                           idempotency_key=key)
        return {"type": "UPDATE_PMS", "status": "queued", "outboxKey": q.idempotency_key}
    if type_ == "SEND_MESSAGE":
        entity = str(p.get("confirmation", "?")) + (f":{p['templateId']}" if p.get("templateId") else "")
        q = outbox.enqueue(db, hotel_id=hotel_id, kind="message.send", entity_type="message",
                           entity_id=entity, payload=p, node=node, now=now, idempotency_key=key, subject=guest)
        return {"type": "SEND_MESSAGE", "status": "queued", "outboxKey": q.idempotency_key,
                "content": p.get("text"), "templateId": p.get("templateId")}
    if type_ == "SCHEDULE_MAINTENANCE":
        wo_id = "PM-" + key[4:14]
        workorders.add_preventive(db, hotel_id=hotel_id, work_order_id=wo_id, asset_id=p.get("assetId"),
                                  room_number=p.get("roomNumber"),
                                  description=str(p.get("description", "preventive maintenance"))[:2000], now=now)
        outbox.enqueue(db, hotel_id=hotel_id, kind="work_order.created", entity_type="work_order",
                       entity_id=wo_id, node=node, now=now, idempotency_key=key,
                       payload={"workOrderId": wo_id, "assetId": p.get("assetId"),
                                "roomNumber": p.get("roomNumber"), "type": "preventive",
                                "description": str(p.get("description", ""))[:2000], "status": "open",
                                "assignee": None, "priority": "normal", "notes": "",
                                "openedAt": _iso(now), "closedAt": None})
        return {"type": "SCHEDULE_MAINTENANCE", "status": "queued", "workOrderId": wo_id}
    raise ValueError(f"unknown action {type_!r}")


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
            # keyed by the approval (itself keyed by what it proposes): the same proposal approved
            # at two kiosks is one pms.update in the cloud
            key = "act-" + hashlib.sha256(f"{hotel_id}|{task_id}|approve".encode()).hexdigest()[:32]
            q = outbox.enqueue(db, hotel_id=hotel_id, kind="pms.update", entity_type="pms",
                               entity_id=f"{payload.get('entity', 'pms')}:{payload.get('id', '?')}", payload=payload,
                               node=node, now=now, idempotency_key=key)
            result["outboxKey"] = q.idempotency_key
        queue.set_task(db, hotel_id, task_id, status="done" if decision == "approve" else "cancelled", assignee=by,
                       keep_assignee=True)
        audit.record(db, hotel_id=hotel_id, event=f"approval.{decision}", outcome="success", at=now, actor=by,
                     details={"taskId": task_id, "entity": proposal.get("entity"), "id": proposal.get("id")})
    return result


def erase_for(db, hotel_id: str, confirmation: str, text: str) -> int:
    """A guest's erasure (pulled): the actions models took for them keep their keys (so none is
    taken again) and lose the guest's words: a message's text in what the action did
    (``result``), a question's words in its subject.  Found by subject: the confirmation, a
    message's ``CONF:moment``, a question's ``question CONF …``, or a whole proposal naming the
    confirmation.  Inside the caller's transaction; how many changed."""
    from kiosk import erased

    named = f'"confirmation":{json.dumps(confirmation)}'
    n = 0
    for key, subject_, result in db.execute(
            "SELECT action_key, subject, result FROM model_actions WHERE hotel_id = ? AND (subject = ?"
            " OR substr(subject, 1, ?) = ? OR substr(subject, 1, ?) = ? OR instr(subject, ?) > 0)",
            [hotel_id, confirmation, len(confirmation) + 1, confirmation + ":", len(confirmation) + 10,
             f"question {confirmation} ", named]).fetchall():
        about = subject_
        if subject_.startswith(f"question {confirmation} "):
            about = f"question {confirmation} {text}"
        elif named in subject_:
            about = f"{confirmation}:{text}"
        done = json.loads(result) if result else None
        scrubbed = erased.scrub(done) if done is not None else None
        if about == subject_ and scrubbed == done:
            continue
        db.execute("UPDATE model_actions SET subject = ?, result = ? WHERE hotel_id = ? AND action_key = ?",
                   [about, json.dumps(scrubbed, sort_keys=True) if scrubbed is not None else result, hotel_id, key])
        n += 1
    return n
