"""task-routing: assign open tasks to staff optimally (scipy's linear_sum_assignment).

A task can go to a member of staff who has its required skill (or it needs none) and
is on shift now (``kiosk.shifts``, the hotel's local time in ``property.timezone``).  Each
person takes at most ``MAX_OPEN`` open tasks, counting those they already have, so
current load spreads work.  The cost of a pair is the floor
distance between the task's room and the person's current room (their latest task's)
plus ``LOAD_COST`` per task they already hold; urgent and high-priority tasks get a
bonus so that, when there are more tasks than hands, they are the ones assigned.
Infeasible pairs are never assigned.  Each assignment is an UPDATE_PMS action
(applied to the local task at once and queued).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.optimize import linear_sum_assignment

from ..shifts import on_shift
from ..validation import parse
from .base import Action, Context, ModelSpec, Result

MAX_OPEN = 3
LOAD_COST = 2.0
INFEASIBLE = 1e6
# larger than any distance + load cost, so that assigning a task always beats leaving it
# (the optimum assigns as many tasks as possible, most urgent first, then the cheapest way)
PRIORITY_BONUS = {"urgent": 130.0, "high": 120.0, "normal": 110.0, "low": 100.0}


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | None = None  # HH:MM, the hotel's local time, to judge shifts at (default: now)


def cost_matrix(tasks: list[dict], slots: list[dict], floors: dict) -> np.ndarray:
    """Cost of giving task i to slot j (a person's n-th free slot); INFEASIBLE if they cannot."""
    cost = np.full((len(tasks), len(slots)), INFEASIBLE)
    seen_slot: dict[str, int] = {}
    for j, s in enumerate(slots):
        nth = seen_slot.get(s["staff_id"], 0)
        seen_slot[s["staff_id"]] = nth + 1
        for i, t in enumerate(tasks):
            if t["required_skill"] and t["required_skill"] not in s["skills_set"]:
                continue
            tf, sf = floors.get(t["room_number"]), s["at_floor"]
            distance = abs(tf - sf) if tf is not None and sf is not None else 0.0
            cost[i, j] = distance + LOAD_COST * (s["load"] + nth) - PRIORITY_BONUS.get(t["priority"], 110.0)
    return cost


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    db, hotel = ctx.db, ctx.hotel_id
    hhmm = p.at or ctx.hhmm()
    floors = {r[0]: r[1] for r in db.execute("SELECT room_number, floor FROM rooms WHERE hotel_id = ?", [hotel])}
    tasks = list(db.query("SELECT * FROM tasks WHERE hotel_id = ? AND status = 'open' AND assignee IS NULL"
                          " ORDER BY task_id", [hotel]))
    staff = []
    for s in db.query("SELECT * FROM staff WHERE hotel_id = ? ORDER BY staff_id", [hotel]):
        load_rows = db.execute("SELECT room_number FROM tasks WHERE hotel_id = ? AND assignee = ? AND status"
                               " IN ('open', 'assigned', 'in_progress') ORDER BY created_at DESC",
                               [hotel, s["staff_id"]]).fetchall()
        staff.append({**s, "skills_set": {x.strip() for x in (s["skills"] or "").split(";") if x.strip()},
                      "load": len(load_rows), "at_floor": floors.get(load_rows[0][0]) if load_rows else None,
                      "on": on_shift(s["shift_start"], s["shift_end"], hhmm)})
    slots = [s for s in staff if s["on"] for _ in range(max(0, MAX_OPEN - s["load"]))]
    if not tasks or not slots:
        why = "no open unassigned tasks" if not tasks else "nobody on shift with room for more work"
        return Result(confidence=1.0, outputs={"assignments": [], "unassigned": [
            {"taskId": t["task_id"], "reason": why} for t in tasks], "totalCost": 0.0})
    cost = cost_matrix(tasks, slots, floors)
    rows, cols = linear_sum_assignment(cost)
    assignments, actions, total = [], [], 0.0
    assigned = set()
    for i, j in zip(rows, cols, strict=True):
        if cost[i, j] >= INFEASIBLE / 2:
            continue
        t, s = tasks[i], slots[j]
        pair_cost = float(cost[i, j] + PRIORITY_BONUS.get(t["priority"], 110.0))
        total += pair_cost
        assigned.add(t["task_id"])
        assignments.append({"taskId": t["task_id"], "staffId": s["staff_id"], "cost": round(pair_cost, 2),
                            "reason": f"{t['required_skill'] or 'no skill needed'}; {s['load']} open before"})
        actions.append(Action("UPDATE_PMS", {"entity": "task", "id": t["task_id"],
                                             "changes": {"assignee": s["staff_id"]}, "reason": "task-routing",
                                             "requiresApproval": False},
                              subject=f"assign task {t['task_id']} to {s['staff_id']} on {ctx.today().isoformat()}"))
    unassigned = []
    for t in tasks:
        if t["task_id"] in assigned:
            continue
        skilled = [s for s in staff if not t["required_skill"] or t["required_skill"] in s["skills_set"]]
        reason = ("nobody has the skill " + t["required_skill"]) if not skilled else \
            ("nobody with the skill is on shift" if not any(s["on"] for s in skilled) else "everyone able is full")
        unassigned.append({"taskId": t["task_id"], "reason": reason})
    assignments.sort(key=lambda a: a["taskId"])
    return Result(confidence=1.0, outputs={"assignments": assignments, "unassigned": unassigned,
                                           "totalCost": round(total, 2)}, actions=actions)


SPEC = ModelSpec(id="task-routing", run=run, roles=frozenset({"staff", "admin"}),
                 reads=("tasks", "staff", "rooms"), timeout_seconds=20.0,
                 description="Optimal assignment of open tasks to staff on shift by skill, load and distance")
