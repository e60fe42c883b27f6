"""The cloud's PMS outbox: every kiosk action meant for the hotel's PMS waits here, written in
the same transaction (the entry's savepoint) that applied the kiosk's entry.

What goes in (:func:`queue_for_entry`), for a hotel linked to a PMS whose connector sends it:

* ``charge`` — an offer the guest took (``pms.update`` adding an offer to a reservation):
  the offer's price on the reservation's folio;
* ``service_request`` — a guest's request or fault with a room (``ticket.created``; a twin
  merged into an earlier ticket makes none), and ``service_request_status`` — its later
  states (``ticket.updated`` with a status);
* ``room_status`` — a cleaning or inspection task done at a kiosk (``pms.update`` on a
  task): the room Clean or Inspected;
* ``maintenance`` — a fault in a room made a work order at a kiosk (``work_order.created``,
  not a preventive one), and ``maintenance_resolve`` — that work order done or cancelled
  (``work_order.updated``, as the cloud judged it).

An action's key is derived from the kiosk entry's key (``charge:<key>``), so the entry
pushed again adds nothing; the reference the PMS is given is derived from the action's key
(:func:`reference`), stable across every retry.  Actions of one entity (a ticket, a
reservation's offer) are delivered in order (:func:`due`).

States: ``pending`` (with ``next_at``, and ``maybe_sent`` once a send began: its answer
may have been lost, so a PMS without idempotency keys is asked before it is sent again),
``delivered`` (``pms_ref``: the PMS's id of what it made), ``dead`` (a refusal that will
never succeed, or a reservation the PMS cancelled: ``last_error`` holds the PMS's words).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from . import connectors, guest_vault, pms_links

#: the kiosk's ticket status -> OPERA's service request status
SR_STATUS = {"open": "Open", "new": "Open", "reopened": "Open", "received": "Open", "accepted": "Open", "assigned": "Open", "in_progress": "PendingFollowUp",
             "waiting": "PendingFollowUp", "done": "Closed", "resolved": "Closed", "closed": "Closed",
             "cancelled": "Closed"}
#: a task's type or skill -> the room status its completion means
ROOM_AFTER = {"cleaning": "Clean", "housekeeping": "Clean", "turndown": "Clean", "inspection": "Inspected"}
BACKOFF = (5.0, 15.0, 60.0, 300.0, 900.0)  # seconds; the last repeats

_COLUMNS = ("id", "hotel_id", "action_key", "action", "entity", "data", "source_key", "device_id", "status",
            "attempts", "maybe_sent", "next_at", "last_error", "pms_ref", "created_at", "done_at")


@dataclass(frozen=True)
class Action:
    id: int
    hotel_id: str
    action_key: str
    action: str
    entity: str
    data: dict
    source_key: str | None
    device_id: str | None
    status: str
    attempts: int
    maybe_sent: bool
    next_at: float
    last_error: str | None
    pms_ref: str | None
    created_at: float
    done_at: float | None

    @property
    def reference(self) -> str:
        return reference(self.hotel_id, self.action_key)

    def to_json(self) -> dict:
        return {"id": self.id, "action": self.action, "entity": self.entity, "status": self.status,
                "attempts": self.attempts, "nextAt": self.next_at, "lastError": self.last_error,
                "pmsRef": self.pms_ref, "reference": self.reference, "sourceKey": self.source_key,
                "deviceId": self.device_id, "createdAt": self.created_at, "doneAt": self.done_at, "data": self.data}


def _action(row) -> Action:
    values = list(row)
    values[5] = json.loads(values[5])
    values[10] = bool(values[10])
    return Action(*values)


def reference(hotel_id: str, action_key: str) -> str:
    """What the PMS is told the action is (a posting reference, a tag, an idempotency key's seed)."""
    return "kiosk-" + hashlib.sha256(f"{hotel_id}|{action_key}".encode()).hexdigest()[:24]


def backoff(attempts: int) -> float:
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


# ---- in: derived from a kiosk entry, in its transaction ---------------------------------

def queue_for_entry(db, e, device_id: str | None, now: float, links: dict | None = None) -> int:
    """Queue what the applied entry ``e`` (a validated :class:`~.validation.Entry`) means for
    the hotel's PMS; returns how many actions were added.  Nothing for an unlinked hotel.
    ``links``: a cache of each hotel's link for the length of one push (read once)."""
    if links is None:
        link = pms_links.get(db, e.hotelId)
    elif e.hotelId in links:
        link = links[e.hotelId]
    else:
        link = links[e.hotelId] = pms_links.get(db, e.hotelId)
    if link is None:
        return 0
    sends = connectors.connector_class(link.kind).ACTIONS
    added = 0
    for action, entity, data in _derive(db, e, link):
        if action not in sends:
            continue
        cur = db.execute("INSERT INTO pms_actions (hotel_id, action_key, action, entity, data, source_key, device_id,"
                         " status, attempts, maybe_sent, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending',"
                         " 0, 0, ?, ?) ON CONFLICT (hotel_id, action_key) DO NOTHING",
                         [e.hotelId, f"{action}:{e.key}", action, entity,
                          json.dumps(guest_vault.seal_fields(db, e.hotelId, guest_vault.subject_of(e), data,
                                                             create=False), sort_keys=True), e.key,
                          device_id, now, now])
        added += cur.rowcount
    return added


def _derive(db, e, link) -> list[tuple[str, str, dict]]:
    p = e.payload if isinstance(e.payload, dict) else {}
    if e.kind == "pms.update":
        changes = p.get("changes") if isinstance(p.get("changes"), dict) else {}
        offer = changes.get("addOffer")
        if p.get("entity") == "reservation" and isinstance(offer, dict) and offer.get("price") is not None:
            conf = str(p.get("id"))
            return [("charge", f"reservation:{conf}", {
                "confirmation": conf, "amount": offer["price"], "currency": str(offer.get("currency") or "EUR"),
                "code": link.charge_code, "description": str(offer.get("name") or offer.get("offerId"))[:200],
                "offerId": offer.get("offerId")})]
        if p.get("entity") == "task" and changes.get("status") == "done":
            task = _task(db, e.hotelId, str(p.get("id")))
            if task and task.get("room") and (status := ROOM_AFTER.get(task.get("kind") or "")):
                return [("room_status", f"room:{task['room']}", {"room": task["room"], "status": status,
                                                                  "taskId": str(p.get("id"))})]
        return []
    if e.kind == "work_order.created":
        room = p.get("roomNumber")
        if not room or p.get("type") == "preventive":
            return []  # a fault in a room is the PMS's business; a planned check is the house's own
        words = " - ".join(x for x in (p.get("description"), p.get("assetId") and f"asset {p['assetId']}") if x)
        return [("maintenance", f"work_order:{p.get('workOrderId')}", {
            "workOrderId": str(p.get("workOrderId")), "room": str(room), "code": link.maintenance_code,
            "remark": words[:1500]})]
    if e.kind == "work_order.updated":
        wo = str(p.get("workOrderId"))
        row = db.execute("SELECT status FROM work_orders WHERE hotel_id = ? AND work_order_id = ?",
                         [e.hotelId, wo]).fetchone()
        change = (p.get("changes") or {}).get("status")
        if row is not None and row[0] in ("done", "cancelled") and isinstance(change, dict) \
                and change.get("new") == row[0] and _opened(db, e.hotelId, f"work_order:{wo}"):
            # the close the cloud kept (not one it refused) of a work order the PMS was told of
            return [("maintenance_resolve", f"work_order:{wo}", {"workOrderId": wo, "remark": f"{row[0]} at the kiosk"})]
        return []
    if e.kind == "ticket.created":
        ticket = str(p.get("ticketId"))
        room = p.get("roomNumber")
        if not room or _merged(db, e.hotelId, ticket):
            return []
        words = " - ".join(x for x in (p.get("title"), p.get("description")) if x)
        return [("service_request", f"ticket:{ticket}", {
            "ticketId": ticket, "room": str(room), "code": str(p.get("type") or "REQUEST").upper()[:20],
            "comment": words[:1500], "priority": "High" if p.get("priority") in ("high", "urgent") else None,
            "confirmation": p.get("confirmation")})]
    if e.kind == "ticket.updated":
        change = (p.get("changes") or {}).get("status")
        status = SR_STATUS.get((change or {}).get("new") or "") if isinstance(change, dict) else None
        ticket = str(p.get("ticketId"))
        if status and _opened(db, e.hotelId, f"ticket:{ticket}"):  # only a request the PMS was told of
            return [("service_request_status", f"ticket:{ticket}", {"ticketId": ticket, "status": status})]
    return []


def _opened(db, hotel_id: str, entity: str) -> bool:
    """Whether the PMS was (or will be) told of the entity: its opening action is queued."""
    return db.execute("SELECT 1 FROM pms_actions WHERE hotel_id = ? AND entity = ? AND action IN"
                      " ('service_request', 'maintenance') LIMIT 1", [hotel_id, entity]).fetchone() is not None


def _merged(db, hotel_id: str, ticket_id: str) -> bool:
    row = db.execute("SELECT merged_into FROM tickets WHERE hotel_id = ? AND ticket_id = ?",
                     [hotel_id, ticket_id]).fetchone()
    return row is not None and row[0] is not None


def _task(db, hotel_id: str, task_id: str) -> dict | None:
    """A task's room and type, from the PMS's tasks or the one a kiosk's model made."""
    row = db.execute("SELECT data FROM ref_data WHERE hotel_id = ? AND entity_type = 'task' AND entity_id = ?",
                     [hotel_id, task_id]).fetchone()
    if row is not None:
        t = json.loads(row[0])
        return {"room": t.get("room_number"), "kind": t.get("type") if t.get("type") in ROOM_AFTER
                else t.get("required_skill")}
    row = db.execute("SELECT payload FROM events WHERE hotel_id = ? AND kind = 'task.created' AND entity_id = ?"
                     " ORDER BY received_at LIMIT 1", [hotel_id, task_id]).fetchone()
    if row is not None:
        t = json.loads(row[0])
        return {"room": t.get("roomNumber"), "kind": t.get("type") if t.get("type") in ROOM_AFTER
                else t.get("requiredSkill")}
    return None


# ---- out: what the delivery loop reads and writes ---------------------------------------

def due(db, hotel_id: str, now: float, limit: int = 50) -> list[Action]:
    """Pending actions whose time has come, oldest first, none behind an earlier pending
    action of the same entity."""
    return [_action(r) for r in db.execute(
        f"SELECT {', '.join('a.' + c for c in _COLUMNS)} FROM pms_actions a WHERE a.hotel_id = ?"
        " AND a.status = 'pending' AND a.next_at <= ? AND NOT EXISTS (SELECT 1 FROM pms_actions b"
        " WHERE b.hotel_id = a.hotel_id AND b.entity = a.entity AND b.status = 'pending' AND b.id < a.id)"
        " ORDER BY a.id LIMIT ?", [hotel_id, now, limit])]


def claim(db, action: Action, now: float, hold: float) -> bool:
    """Take one attempt at ``action``: it is marked as maybe sent and hidden for ``hold``
    seconds; False if another worker took it first.  Committed before the send begins, so
    a worker killed mid-send leaves an action that is looked up before it is sent again."""
    cur = db.execute("UPDATE pms_actions SET attempts = attempts + 1, maybe_sent = 1, next_at = ?"
                     " WHERE id = ? AND status = 'pending' AND attempts = ?",
                     [now + hold, action.id, action.attempts])
    return cur.rowcount == 1


def delivered(db, action_id: int, pms_ref: str | None, now: float) -> None:
    db.execute("UPDATE pms_actions SET status = 'delivered', pms_ref = ?, last_error = NULL, done_at = ?"
               " WHERE id = ?", [pms_ref, now, action_id])


def retry(db, action_id: int, error: str, next_at: float, *, maybe_sent: bool = True) -> None:
    db.execute("UPDATE pms_actions SET last_error = ?, next_at = ?, maybe_sent = ? WHERE id = ?",
               [error[:1000], next_at, int(maybe_sent), action_id])


def dead(db, action_id: int, error: str, now: float) -> None:
    db.execute("UPDATE pms_actions SET status = 'dead', last_error = ?, done_at = ? WHERE id = ?",
               [error[:1000], now, action_id])


def requeue(db, hotel_id: str, action_id: int, now: float) -> bool:
    """A dead action sent again (after the hotel fixed what the PMS refused)."""
    cur = db.execute("UPDATE pms_actions SET status = 'pending', next_at = ?, done_at = NULL WHERE hotel_id = ?"
                     " AND id = ? AND status = 'dead'", [now, hotel_id, action_id])
    return cur.rowcount == 1


def delivered_ref(db, hotel_id: str, action: str, entity: str) -> str | None:
    """The PMS's id of the delivered ``action`` of ``entity`` (a ticket's service request)."""
    row = db.execute("SELECT pms_ref FROM pms_actions WHERE hotel_id = ? AND action = ? AND entity = ?"
                     " AND status = 'delivered' ORDER BY id LIMIT 1", [hotel_id, action, entity]).fetchone()
    return row[0] if row is not None else None


def rewrite_data(db, hotel_id: str, data: dict[int, dict]) -> int:
    """Replace what the PMS is (or was) sent for the hotel's actions named by id (a guest's
    erasure, sync/cloud/erasure.py: a service request's words taken out); a pending action
    goes to the PMS as it now reads.  Returns how many."""
    n = 0
    for action_id, d in sorted(data.items()):
        n += db.execute("UPDATE pms_actions SET data = ? WHERE hotel_id = ? AND id = ?",
                        [json.dumps(d, sort_keys=True), hotel_id, action_id]).rowcount
    return n


def counts(db, hotel_id: str) -> dict[str, int]:
    out = {"pending": 0, "delivered": 0, "dead": 0}
    for status, n in db.execute("SELECT status, COUNT(*) FROM pms_actions WHERE hotel_id = ? GROUP BY status",
                                [hotel_id]):
        out[status] = n
    return out


def listed(db, hotel_id: str, status: str | None = None, limit: int = 100) -> list[Action]:
    sql = f"SELECT {', '.join(_COLUMNS)} FROM pms_actions WHERE hotel_id = ?"
    params: list = [hotel_id]
    if status:
        sql += " AND status = ?"
        params.append(status)
    return [_action(r) for r in db.execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])]
