"""housekeeping: today's cleaning plan — which rooms, in what order, who does them.

Rooms to clean: departures today, stayovers, and vacant rooms that are not clean.
Priority: a dirty room a guest arrives in today first (VIP arrivals before others),
then departures, then stayovers, then other vacant dirty rooms.  Credits per room:
departure 1.0, vacant dirty 0.75, stayover 0.5, times 1.5 for suites.  Attendants are
staff with the ``cleaning`` skill on shift now, up to their ``max_credits`` (12 if
unset).  Rooms are dealt out in floor order so that each attendant works a run of
adjacent floors, with the run cut where the attendant reaches an even share of the
credits: balanced and grouped by floor.  Each attendant's rooms are then ordered by
priority.  Outputs the plan; no actions (the plan is shown, tasks come from it on
approval).
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel, ConfigDict

from ..shifts import on_shift
from ..validation import parse
from .base import Context, ModelSpec, Result

BASE = {"arrival": 1.0, "departure": 1.0, "vacant": 0.75, "stayover": 0.5}
RANK = {"arrival_vip": 0, "arrival": 1, "departure": 2, "stayover": 3, "vacant": 4}
DEFAULT_MAX = 12.0


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | None = None  # HH:MM, the hotel's local time, for shifts (default: now)


def rooms_to_clean(db, hotel: str, today: str) -> list[dict]:
    res = list(db.query("SELECT room_number, arrival, departure, status, vip FROM reservations WHERE hotel_id = ?"
                        " AND room_number IS NOT NULL AND arrival <= ? AND departure >= ? AND status IN"
                        " ('Confirmed', 'InHouse', 'CheckedOut')", [hotel, today, today]))
    arriving = {r["room_number"]: r for r in res if r["arrival"] == today and r["status"] == "Confirmed"}
    departing = {r["room_number"] for r in res if r["departure"] == today}
    staying = {r["room_number"] for r in res if r["arrival"] < today < r["departure"] and r["status"] == "InHouse"}
    out = []
    for room in db.query("SELECT * FROM rooms WHERE hotel_id = ? AND status NOT IN ('OutOfOrder', 'OutOfService')",
                         [hotel]):
        n, dirty = room["room_number"], room["status"] not in ("Clean", "Inspected")
        if n in departing:
            kind = "departure"
        elif n in staying:
            kind = "stayover"
        elif dirty and n in arriving:
            kind = "arrival_vip" if arriving[n]["vip"] else "arrival"
        elif dirty:
            kind = "vacant"
        else:
            continue
        factor = 1.5 if "SUITE" in (room["room_type"] or "").upper() else 1.0
        out.append({"roomNumber": n, "floor": room["floor"], "kind": kind, "arrivalToday": n in arriving,
                    "credits": BASE[kind.replace("_vip", "")] * factor})
    return out


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    hhmm = p.at or ctx.hhmm()
    rooms = sorted(rooms_to_clean(ctx.db, ctx.hotel_id, ctx.today().isoformat()),
                   key=lambda r: (r["floor"], r["roomNumber"]))
    team = [s for s in ctx.db.query("SELECT * FROM staff WHERE hotel_id = ? ORDER BY staff_id", [ctx.hotel_id])
            if "cleaning" in (s["skills"] or "").split(";") and on_shift(s["shift_start"], s["shift_end"], hhmm)]
    plan = [{"staffId": s["staff_id"], "rooms": [], "credits": 0.0, "cap": s["max_credits"] or DEFAULT_MAX}
            for s in team]
    unassigned = []
    total = sum(r["credits"] for r in rooms)
    share = total / len(plan) if plan else 0.0
    k = 0
    for r in rooms:
        while k < len(plan):  # move on once this attendant has an even share, or is full
            a = plan[k]
            has_share = bool(a["rooms"]) and a["credits"] + r["credits"] / 2 > share and k < len(plan) - 1
            if has_share or a["credits"] + r["credits"] > a["cap"]:
                k += 1
            else:
                break
        if k >= len(plan):
            unassigned.append({**r, "reason": "no attendant with credits left" if plan else "no attendant on shift"})
            continue
        plan[k]["rooms"].append(r)
        plan[k]["credits"] += r["credits"]
    for a in plan:
        a["rooms"].sort(key=lambda r: (RANK[r["kind"]], r["floor"], r["roomNumber"]))
        a["floors"] = sorted({r["floor"] for r in a["rooms"]})
        a["credits"] = round(a["credits"], 2)
        del a["cap"]
    credits = [a["credits"] for a in plan]
    balance = {"maxCredits": max(credits, default=0), "minCredits": min(credits, default=0),
               "stdev": round(statistics.pstdev(credits), 3) if credits else 0.0}
    return Result(confidence=1.0, outputs={"assignments": plan, "unassigned": unassigned, "balance": balance,
                                           "totalCredits": round(total, 2)})


SPEC = ModelSpec(id="housekeeping", run=run, roles=frozenset({"staff", "admin"}),
                 reads=("rooms", "reservations", "staff"), timeout_seconds=15.0,
                 description="Today's cleaning plan: priorities, credits, balanced across attendants by floor")
