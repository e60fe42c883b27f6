"""staff-agent: one person's ordered worklist and the next best action.

Their open tasks and work orders, ordered: anything blocking an arrival today first
(a room that is not clean with a guest arriving), then by priority, then by deadline.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..validation import parse
from .base import Context, ModelSpec, Result

RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
READY = ("Clean", "Inspected")


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staffId: str | None = None


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    who = p.staffId or ctx.actor
    db, hotel, today = ctx.db, ctx.hotel_id, ctx.today().isoformat()
    arriving = {r[0] for r in db.execute("SELECT room_number FROM reservations WHERE hotel_id = ? AND arrival = ?"
                                         " AND status = 'Confirmed' AND room_number IS NOT NULL", [hotel, today])}
    not_ready = {r[0] for r in db.execute("SELECT room_number FROM rooms WHERE hotel_id = ? AND status NOT IN"
                                          " ('Clean', 'Inspected')", [hotel])}
    items = []
    for t in db.query("SELECT * FROM tasks WHERE hotel_id = ? AND assignee = ? AND status IN"
                      " ('open', 'assigned', 'in_progress')", [hotel, who]):
        items.append({"kind": "task", "id": t["task_id"], "type": t["type"], "roomNumber": t["room_number"],
                      "priority": t["priority"], "dueAt": t["due_at"]})
    for w in db.query("SELECT * FROM work_orders WHERE hotel_id = ? AND assignee = ? AND status NOT IN"
                      " ('done', 'cancelled')", [hotel, who]):
        items.append({"kind": "work_order", "id": w["work_order_id"], "type": w["type"], "roomNumber": w["room_number"],
                      "priority": w["priority"], "dueAt": None})
    for it in items:
        it["blocksArrival"] = it["roomNumber"] in arriving and it["roomNumber"] in not_ready
    items.sort(key=lambda it: (not it["blocksArrival"], RANK.get(it["priority"], 2), it["dueAt"] or "9999", it["id"]))
    nba = None
    if items:
        first = items[0]
        why = "a guest arrives today and the room is not ready" if first["blocksArrival"] else \
            f"{first['priority']} priority" + (f", due {first['dueAt']}" if first["dueAt"] else "")
        nba = {**first, "why": why}
    return Result(confidence=1.0, outputs={"staffId": who, "worklist": items, "nextBestAction": nba})


SPEC = ModelSpec(id="staff-agent", run=run, roles=frozenset({"staff", "admin"}),
                 reads=("tasks", "work_orders", "rooms", "reservations"), timeout_seconds=15.0,
                 description="One person's ordered worklist and next best action")
