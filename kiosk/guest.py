"""What a guest's screen shows, from the property's data in the local store.

A guest token's subject is the reservation's confirmation number (how the PMS
link issues them); a token whose subject matches no reservation still gets a
welcome, without room or stay details.  Every query is scoped by hotel.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from sync.workflow_rules import allowed_from

from . import tickets
from .validation import parse

READY = ("Clean", "Inspected")
GREETING = {"en": "Welcome, {name}", "de": "Willkommen, {name}"}


class GuestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr = Field(min_length=2, max_length=500)
    kind: Literal["housekeeping", "maintenance", "guest_request"] = "guest_request"


def reservation(db, hotel_id: str, confirmation: str) -> dict | None:
    rows = list(db.query("SELECT * FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                         [hotel_id, confirmation]))
    return rows[0] if rows else None


def room_status(db, hotel_id: str, room_number: str | None) -> dict | None:
    if not room_number:
        return None
    rows = list(db.query("SELECT status, occupied FROM rooms WHERE hotel_id = ? AND room_number = ?",
                         [hotel_id, room_number]))
    if not rows:
        return None
    return {"roomNumber": room_number, "status": rows[0]["status"], "ready": rows[0]["status"] in READY}


def offers(db, hotel_id: str, res: dict | None, limit: int = 3) -> list[dict]:
    """Offers in stock that fit the stay: add-ons, and upgrades from the booked room type."""
    room_type = (res or {}).get("room_type")
    rows = db.query("SELECT offer_id, name, type, price, room_type_to FROM offers WHERE hotel_id = ?"
                    " AND (inventory IS NULL OR inventory > 0) AND (type = 'addon' OR room_type_from IS ?)"
                    " ORDER BY margin DESC, offer_id LIMIT ?", [hotel_id, room_type, limit])
    return [{"offerId": r["offer_id"], "name": r["name"], "type": r["type"], "price": r["price"]} for r in rows]


def home(db, hotel_id: str, session, today: date) -> dict:
    res = reservation(db, hotel_id, session.user_id)
    name = (res or {}).get("guest_name") or session.display_name or session.user_id
    lang = (res or {}).get("language") or "en"
    stay = None
    if res:
        stay = {"confirmation": res["confirmation"], "arrival": res["arrival"], "departure": res["departure"],
                "nights": (date.fromisoformat(res["departure"]) - date.fromisoformat(res["arrival"])).days,
                "roomNumber": res["room_number"], "status": res["status"]}
    return {"guest": {"name": name, "language": lang if lang in GREETING else "en"},
            "welcome": GREETING.get(lang, GREETING["en"]).format(name=name),
            "stay": stay, "room": room_status(db, hotel_id, (res or {}).get("room_number")),
            "offers": offers(db, hotel_id, res)}


def request(db, body, *, hotel_id: str, session, now: float, node: str, window: float) -> dict:
    """A typed request from the guest screen becomes a ticket (duplicates folded, queued)."""
    req = parse(GuestRequest, body)
    res = reservation(db, hotel_id, session.user_id)
    title = req.text if len(req.text) <= 120 else req.text[:117] + "..."
    return tickets.create(db, {"type": req.kind, "title": title, "description": req.text,
                               "roomNumber": (res or {}).get("room_number")},
                          hotel_id=hotel_id, by=session.user_id, now=now, node=node, window=window)


def staff_tasks(db, hotel_id: str, staff_id: str) -> dict:
    """The staff member's open tasks first, then the hotel's open tasks and work orders."""
    tasks = [dict(r) for r in db.query(
        "SELECT task_id, type, room_number, priority, required_skill, due_at, status, assignee, description"
        " FROM tasks WHERE hotel_id = ? AND status NOT IN ('done', 'cancelled')"
        " ORDER BY (assignee IS ?) DESC, CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1"
        " WHEN 'normal' THEN 2 ELSE 3 END, due_at LIMIT 200", [hotel_id, staff_id])]
    work = [dict(r) for r in db.query(
        "SELECT work_order_id, room_number, type, description, status, assignee, priority, notes, version"
        " FROM work_orders WHERE hotel_id = ? AND status NOT IN ('done', 'cancelled')"
        " ORDER BY (assignee IS ?) DESC, CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1"
        " WHEN 'normal' THEN 2 ELSE 3 END, opened_at LIMIT 200", [hotel_id, staff_id])]
    return {"tasks": [{"taskId": t["task_id"], "type": t["type"], "roomNumber": t["room_number"],
                       "priority": t["priority"], "requiredSkill": t["required_skill"], "dueAt": t["due_at"],
                       "status": t["status"], "assignee": t["assignee"], "description": t["description"]}
                      for t in tasks],
            "workOrders": [{"workOrderId": w["work_order_id"], "roomNumber": w["room_number"], "type": w["type"],
                            "description": w["description"], "status": w["status"], "assignee": w["assignee"],
                            "priority": w["priority"], "notes": w["notes"], "version": w["version"],
                            "allowedStatuses": allowed_from(w["status"])}
                           for w in work]}
