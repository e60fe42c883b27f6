"""The staff work queue: guest requests (tickets), routed tasks, work orders and approvals
in ONE list, and the one-tap actions that move each item along.

Every item has the same shape (``kind``, ``id``, ``status``, ``room``, the assignee's id
AND name, who asked and in what words, created/due times, the ``actions`` its state
allows).  The list is ordered most urgent first; of the same urgency guests' requests and
fault reports first (the one waiting longest first), then routine work newest first; filtered by
scope (``mine``: assigned to me; ``department``: my department — housekeeping,
maintenance or front office, from the staff table; ``all``), room and kind.

Actions (``accept``, ``start``, ``done``, ``assign``; ``status`` for a work order's
legal transitions; ``approve`` / ``reject`` for an approval; ``reply`` — words for the
guest who asked — and ``make_work_order`` from a fault report, see :mod:`kiosk.tickets`) go through the same
local-first path as everything else: the local row, its history, an audit row and an
outbox entry in one transaction — tickets through :func:`kiosk.tickets.change`
(``ticket.updated``), tasks here (``pms.update`` on entity ``task``, the form the
task-routing model already uses), work orders through :func:`kiosk.workorders.update`
(the state machine; ``work_order.updated``) and approvals through
:func:`kiosk.models.actions.decide`.  An action the item's state does not allow is
INVALID_TRANSITION, naming the actions and statuses that are allowed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import audit, guest_keys, outbox, store, tickets, workorders
from .clock import iso, local_hhmm
from .errors import InvalidTransition, NotFound, ValidationError
from .shifts import on_shift
from .workflow_rules import allowed_from as wo_allowed_from
from .workflow_rules import can_move as wo_can_move

KINDS = ("ticket", "task", "work_order", "approval")
SCOPES = ("all", "mine", "department")
ACTIONS = ("accept", "start", "done", "assign", "status", "approve", "reject", "reply", "make_work_order")
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
DEPARTMENTS = ("housekeeping", "maintenance", "front_office")
QUEUE_DEPARTMENT = {"housekeeping": "housekeeping", "engineering": "maintenance", "front-desk": "front_office",
                    "accounting": "front_office", "it-support": "maintenance", "security": "front_office"}
SKILL_DEPARTMENT = {"cleaning": "housekeeping", "housekeeping": "housekeeping", "delivery": "housekeeping",
                    "plumbing": "maintenance", "electric": "maintenance", "hvac": "maintenance",
                    "maintenance": "maintenance", "front_office": "front_office"}
TASK_STATUSES = ("open", "assigned", "in_progress", "done", "cancelled")
TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"assigned", "in_progress", "done", "cancelled"}),
    "assigned": frozenset({"open", "in_progress", "done", "cancelled"}),
    "in_progress": frozenset({"assigned", "done"}),
    "done": frozenset(),
    "cancelled": frozenset(),
}
CLOSED = ("done", "cancelled")
_UNSET: Any = tickets.UNSET


# --- times ---------------------------------------------------------------------------------

def epoch(value) -> float | None:
    """Seconds since the epoch from a number or an ISO 8601 string (no zone: UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        d = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


def _iso(value) -> str | None:
    t = epoch(value)
    return iso(t) if t is not None else None


# --- people ----------------------------------------------------------------------------------

def people(db, hotel_id: str, now: float, tz: str = "UTC") -> list[dict]:
    """The hotel's staff, who is on shift now (the hotel's local time, zone ``tz``) first, by name."""
    hhmm = local_hhmm(now, tz)
    out = [{"id": r["staff_id"], "name": r["name"], "department": r["role"],
            "onShift": on_shift(r["shift_start"], r["shift_end"], hhmm)}
           for r in db.query("SELECT staff_id, name, role, shift_start, shift_end FROM staff WHERE hotel_id = ?",
                             [hotel_id])]
    out.sort(key=lambda p: (not p["onShift"], p["name"], p["id"]))
    return out


def _names(db, hotel_id: str) -> dict[str, str]:
    return {r[0]: r[1] for r in db.execute("SELECT staff_id, name FROM staff WHERE hotel_id = ?", [hotel_id])}


def me(db, hotel_id: str, session) -> dict:
    row = db.execute("SELECT name, role FROM staff WHERE hotel_id = ? AND staff_id = ?",
                     [hotel_id, session.user_id]).fetchone()
    return {"id": session.user_id, "name": (row[0] if row else None) or session.display_name or session.user_id,
            "department": row[1] if row and row[1] in DEPARTMENTS else None}


# --- items -----------------------------------------------------------------------------------

def _base(kind: str, id_: str, *, status: str, type_: str, title: str, text: str, room, priority: str,
          department: str | None, assignee, names: dict, requested_by=None, requested_name=None,
          guest: bool = False, created=None, due=None, updated=None, source=None) -> dict:
    return {"kind": kind, "id": id_, "status": status, "type": type_, "title": title, "text": text,
            "room": room, "priority": priority or "normal", "department": department,
            "assignee": assignee, "assigneeName": names.get(assignee, assignee) if assignee else None,
            "requestedBy": requested_by, "requestedByName": requested_name, "fromGuest": guest,
            "createdAt": _iso(created), "dueAt": _iso(due), "updatedAt": _iso(updated), "source": source,
            "channel": None, "actions": [], "allowedStatuses": [], "version": None, "reply": None,
            "workOrderId": None}


def _ticket_item(r: dict, names: dict, guests: dict, follow: dict | None = None) -> dict:
    guest = guests.get(r["created_by"])
    status = tickets.normal(r["status"])
    it = _base("ticket", r["ticket_id"], status=status, type_=r["type"], title=r["title"],
               text=r["description"] or r["title"], room=r["room_number"], priority=r["priority"],
               department=QUEUE_DEPARTMENT.get(r["queue"], "front_office"), assignee=r["assignee"], names=names,
               requested_by=r["created_by"], requested_name=guest or names.get(r["created_by"], r["created_by"]),
               guest=guest is not None, created=r["created_at"], updated=r["updated_at"] or r["created_at"],
               source="guest" if guest is not None else "staff")
    it["channel"] = r.get("channel")
    it |= follow or {}
    it["actions"] = ticket_actions(status, r["assignee"], None, it)
    return it


def _task_item(r: dict, names: dict) -> dict:
    if r["type"] == "approval":
        try:
            p = json.loads(r["description"])
        except ValueError:
            p = {}
        p = p if isinstance(p, dict) else {}
        changes = p.get("changes") if isinstance(p.get("changes"), dict) else {}
        text = ", ".join(f"{k} {v}" for k, v in changes.items())
        it = _base("approval", r["task_id"], status=r["status"], type_="approval",
                   title=str(p.get("reason") or "PMS change"),
                   text=" · ".join(x for x in (f"{p.get('entity', '')} {p.get('id', '')}".strip(), text) if x),
                   room=r["room_number"], priority=r["priority"], department="front_office",
                   assignee=r["assignee"], names=names, created=r["created_at"], due=r["due_at"],
                   updated=r["updated_at"] or r["created_at"], source=r["source"])
        it["actions"] = ["approve", "reject"] if r["status"] in ("open", "assigned") else []
        return it
    it = _base("task", r["task_id"], status=r["status"], type_=r["type"], title=r["type"],
               text=r["description"] or "", room=r["room_number"], priority=r["priority"],
               department=SKILL_DEPARTMENT.get(r["required_skill"] or "", "front_office"), assignee=r["assignee"],
               names=names, created=r["created_at"], due=r["due_at"], updated=r["updated_at"] or r["created_at"],
               source=r["source"] or "pms")
    it["actions"] = task_actions(r["status"], r["assignee"], None)
    return it


def _wo_item(r: dict, names: dict) -> dict:
    it = _base("work_order", r["work_order_id"], status=r["status"], type_=r["type"],
               title=r["description"] or r["type"], text=r["notes"] or "", room=r["room_number"],
               priority=r["priority"], department="maintenance", assignee=r["assignee"], names=names,
               created=r["opened_at"], updated=r["updated_at"], source="pms")
    it["actions"] = wo_actions(r["status"], r["assignee"], None)
    it["allowedStatuses"] = wo_allowed_from(r["status"])
    it["version"] = r["version"]
    return it


def ticket_actions(status: str, assignee: str | None, user: str | None, it: dict | None = None) -> list[str]:
    """The lifecycle's steps; ``reply`` to a guest's request (not a cancelled one) and
    ``make_work_order`` from an open fault report that has none yet (``it``: the item)."""
    status = tickets.normal(status)
    out = []
    if status in ("received", "assigned") or (status == "accepted" and user is not None and assignee != user):
        out.append("accept")
    if tickets.can_move(status, "in_progress"):
        out.append("start")
    if tickets.can_move(status, "done"):
        out.append("done")
    if status in ("received", "accepted", "assigned", "in_progress"):
        out.append("assign")
    if it is not None and it.get("fromGuest") and status != "cancelled":
        out.append("reply")
    if it is not None and it.get("type") in tickets.WORK_ORDER_TYPES and not it.get("workOrderId") \
            and status not in ("done", "cancelled"):
        out.append("make_work_order")
    return out


def task_actions(status: str, assignee: str | None, user: str | None) -> list[str]:
    out = []
    if status == "open" or (status == "assigned" and user is not None and assignee != user):
        out.append("accept")
    if "in_progress" in TASK_TRANSITIONS.get(status, ()):
        out.append("start")
    if "done" in TASK_TRANSITIONS.get(status, ()):
        out.append("done")
    if status in ("open", "assigned"):
        out.append("assign")
    return out


def wo_actions(status: str, assignee: str | None, user: str | None) -> list[str]:
    out = []
    if wo_can_move(status, "assigned") or (status == "assigned" and user is not None and assignee != user):
        out.append("accept")
    if wo_can_move(status, "in_progress"):
        out.append("start")
    if wo_can_move(status, "done"):
        out.append("done")
    if wo_can_move(status, "assigned") or status == "assigned":
        out.append("assign")
    if wo_allowed_from(status):
        out.append("status")
    return out


def _with_user(it: dict, user: str | None) -> dict:
    """Actions as the viewer sees them ("accept" one that is someone else's)."""
    if it["kind"] == "ticket":
        it["actions"] = ticket_actions(it["status"], it["assignee"], user, it)
    fn = {"task": task_actions, "work_order": wo_actions}.get(it["kind"])
    if fn is not None:
        it["actions"] = fn(it["status"], it["assignee"], user)
    return it


def _guests(db, hotel_id: str, confirmations) -> dict[str, str]:
    conf = sorted({c for c in confirmations if c})
    out: dict[str, str] = {}
    for i in range(0, len(conf), 500):
        part = conf[i:i + 500]
        out |= {r[0]: r[1] or r[0] for r in db.execute(
            f"SELECT confirmation, guest_name FROM reservations WHERE hotel_id = ? AND confirmation IN"
            f" ({', '.join('?' * len(part))})", [hotel_id, *part])}
    return out


#: items read per source (tickets, tasks, work orders) for one listing, chosen in SQL AFTER the
#: listing's filters: most urgent first, then each requester's (tickets) or room's (tasks, work
#: orders) newest before anybody's second newest, and so on.  A flood of one guest's junk cannot
#: push another guest's urgent fault out of the list, nor out of the list filtered by its room;
#: it only pushes out its own older junk.  The list is then shown most urgent, then newest first.
LIMIT = 500


def _case(column: str, mapping: dict[str, str], default: str) -> str:
    """SQL: ``mapping.get(column, default)`` (the keys and values are this module's constants)."""
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"coalesce(CASE {column} {whens} END, '{default}')"


#: SQL for what the item builders compute in Python (kept equal by tests/test_input_hardening.py)
_RANK = ("CASE coalesce(priority, '') " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in PRIORITY_RANK.items())
         + f" WHEN '' THEN {PRIORITY_RANK['normal']} ELSE {PRIORITY_RANK['normal']} END")
#: seconds since the epoch of a REAL column or an ISO 8601 text one (no zone: UTC), as :func:`epoch`
_EPOCH = ("CASE WHEN typeof({c}) IN ('integer', 'real') THEN {c}"
          " ELSE coalesce((julianday({c}) - 2440587.5) * 86400.0, 0) END")


@dataclass(frozen=True)
class _Source:
    table: str
    id_col: str
    created: str        # SQL: seconds since the epoch
    department: str     # SQL: the item's department
    kinds: tuple[str, ...]
    share: str          # SQL: whose share of the list an item is (its requester, or its room)
    where: str = ""      # SQL: always applied (e.g. tickets merged into another are not items)
    kind_sql: str = ""   # SQL: the item's kind, when the table holds more than one


SOURCES = (
    _Source("tickets", "ticket_id", "created_at", _case("queue", QUEUE_DEPARTMENT, "front_office"), ("ticket",),
            "coalesce(created_by, '')", where=" AND merged_into IS NULL"),
    _Source("tasks", "task_id", _EPOCH.format(c="created_at"),
            f"CASE WHEN type = 'approval' THEN 'front_office' ELSE"
            f" {_case('coalesce(required_skill, ' + repr('') + ')', SKILL_DEPARTMENT, 'front_office')} END",
            ("task", "approval"), "coalesce(room_number, '')",
            kind_sql="CASE WHEN type = 'approval' THEN 'approval' ELSE 'task' END"),
    _Source("work_orders", "work_order_id", "opened_at", "'maintenance'", ("work_order",), "coalesce(room_number, '')"),
)


def _items_of(db, hotel_id: str, src: _Source, rows: list[dict], names: dict) -> list[dict]:
    if src.table == "tickets":
        guests = _guests(db, hotel_id, (r["created_by"] for r in rows))
        # a walk-in's code names no stay: the guest is known by the name on the code (their session)
        sids = sorted({r["session_id"] for r in rows if r["created_by"] not in guests and r.get("session_id")})
        for i in range(0, len(sids), 500):
            part = sids[i:i + 500]
            guests |= {u: n or u for u, n in db.execute(
                "SELECT user_id, display_name FROM sessions WHERE hotel_id = ? AND role = 'guest'"
                f" AND id IN ({', '.join('?' * len(part))})", [hotel_id, *part])}
        follow = tickets.follow_ups(db, hotel_id, (r["ticket_id"] for r in rows))
        return [_ticket_item(r, names, guests, follow.get(r["ticket_id"])) for r in rows]
    if src.table == "tasks":
        return [_task_item(r, names) for r in rows]
    return [_wo_item(r, names) for r in rows]


def all_items(db, hotel_id: str, *, include_closed: bool = False, where: str = "", params=()) -> list[dict]:
    """Every item of the hotel (open ones unless ``include_closed``; the newest ``LIMIT`` of each
    source), unsorted; ``where`` (``ticket``, ``task`` or ``work_order``) with ``params`` (the
    id) reads one item."""
    names = _names(db, hotel_id)
    open_only = "" if include_closed else " AND status NOT IN ('done', 'cancelled')"
    items: list[dict] = []
    for src in SOURCES:
        if where not in ("", src.kinds[0]):
            continue
        rows = list(db.query(f"SELECT * FROM {src.table} WHERE hotel_id = ?{src.where}{open_only}"
                             + (f" AND {src.id_col} = ?" if where else "")
                             + f" ORDER BY {src.created} DESC LIMIT {LIMIT}", [hotel_id, *params]))
        items += _items_of(db, hotel_id, src, rows, names)
    return items


def waiting(it: dict) -> bool:
    """A guest's request or a fault report: someone is waiting for it (not a routine task)."""
    return bool(it["fromGuest"]) or (it["kind"] == "ticket" and it["type"] in tickets.WORK_ORDER_TYPES)


def sort_key(it: dict) -> tuple:
    """Most urgent first; of the same urgency, guests' requests and fault reports first, the
    one waiting longest first, then routine work, newest first."""
    at = epoch(it["createdAt"]) or 0.0
    return (PRIORITY_RANK.get(it["priority"], 2), 0 if waiting(it) else 1, at if waiting(it) else -at,
            it["kind"], it["id"])


def _filtered(db, hotel_id: str, viewer: dict, *, scope: str, room: str | None, kind: str | None,
              names: dict) -> tuple[list[dict], dict[str, int]]:
    """The open items that pass the filters, each source filtered, chosen (see ``LIMIT``) and
    limited in SQL, then merged; and the counts per scope (under the room and kind filters),
    counted in SQL."""
    items: list[dict] = []
    counts = dict.fromkeys(SCOPES, 0)
    dept = viewer["department"]
    for src in SOURCES:
        kinds = [k for k in src.kinds if not kind or k == kind]
        if not kinds:
            continue
        cond = f"hotel_id = ?{src.where} AND status NOT IN ('done', 'cancelled')"
        params: list = [hotel_id]
        if src.kind_sql and len(kinds) < len(src.kinds):
            cond += f" AND {src.kind_sql} = ?"
            params.append(kinds[0])
        if room:
            cond += " AND room_number = ?"
            params.append(room)
        n_all, n_mine, n_dept = db.execute(
            f"SELECT count(*), coalesce(sum(assignee IS ?), 0), coalesce(sum({src.department} IS ?), 0)"
            f" FROM {src.table} WHERE {cond}", [viewer["id"], dept, *params]).fetchone()
        counts["all"] += n_all
        counts["mine"] += n_mine
        counts["department"] += n_all if dept is None else n_dept
        if scope == "mine":
            cond += " AND assignee IS ?"
            params.append(viewer["id"])
        elif scope == "department" and dept is not None:
            cond += f" AND {src.department} = ?"
            params.append(dept)
        # the choice reads only what it orders by (the rows' other columns: the chosen ones only)
        rows = list(db.query(
            f"SELECT t.* FROM (SELECT rowid AS row_, {_RANK} AS rank_, {src.created} AS at_, {src.id_col} AS id_,"
            f" row_number() OVER (PARTITION BY {src.share}, {_RANK} ORDER BY {src.created} DESC) AS nth_"
            f" FROM {src.table} WHERE {cond} ORDER BY rank_, nth_, at_ DESC, id_ LIMIT {LIMIT}) AS c"
            f" JOIN {src.table} AS t ON t.rowid = c.row_", params))
        items += _items_of(db, hotel_id, src, rows, names)
    return items, counts


def listing(db, hotel_id: str, session, *, now: float, scope: str = "all", room: str | None = None,
            kind: str | None = None, tz: str = "UTC") -> dict:
    """The queue as the staff terminal shows it: items filtered and ordered, counts per scope,
    the viewer, and who is on shift to assign to (at the hotel's local time, zone ``tz``).

    Filters and the choice of items are made in SQL before each source's ``LIMIT``: the
    newest few hundred rows are NOT read first and sorted after (a flood of junk requests
    would push an older urgent one out of the list, even filtered by its room)."""
    if scope not in SCOPES:
        raise ValidationError(f"scope must be one of {', '.join(SCOPES)}", {"field": "scope", "allowed": list(SCOPES)})
    if kind not in (None, "", *KINDS):
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}", {"field": "kind", "allowed": list(KINDS)})
    if room is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,10}", room):
        raise ValidationError("room must be a room number", {"field": "room"})
    viewer = me(db, hotel_id, session)
    found, counts = _filtered(db, hotel_id, viewer, scope=scope, room=room or None, kind=kind or None,
                              names=_names(db, hotel_id))
    items = sorted((_with_user(it, viewer["id"]) for it in found), key=sort_key)
    rooms = sorted({r[0] for r in db.execute(
        "SELECT room_number FROM tickets WHERE hotel_id = ? AND room_number IS NOT NULL AND merged_into IS NULL"
        " AND status NOT IN ('done', 'cancelled') UNION SELECT room_number FROM tasks WHERE hotel_id = ?"
        " AND room_number IS NOT NULL AND status NOT IN ('done', 'cancelled') UNION SELECT room_number FROM"
        " work_orders WHERE hotel_id = ? AND room_number IS NOT NULL AND status NOT IN ('done', 'cancelled')",
        [hotel_id, hotel_id, hotel_id])})
    return {"items": items, "counts": counts, "me": viewer, "people": people(db, hotel_id, now, tz), "rooms": rooms,
            "filters": {"scope": scope, "room": room or None, "kind": kind or None}, "now": iso(now)}


def item(db, hotel_id: str, kind: str, id_: str, user: str | None = None) -> dict:
    """One item, open or closed; NOT_FOUND if the hotel has none of that kind and id."""
    if kind not in KINDS:
        raise NotFound(f"no kind of item {kind!r}", {"kind": kind, "allowed": list(KINDS)})
    found = [it for it in all_items(db, hotel_id, include_closed=True,
                                    where="task" if kind == "approval" else kind, params=(id_,))
             if it["kind"] == kind]
    if not found:
        raise NotFound(f"no {kind.replace('_', ' ')} {id_!r} in this hotel", {"kind": kind, "id": id_})
    return _with_user(found[0], user)


def signature(db, hotel_id: str) -> int:
    """A cheap fingerprint of the open queue (what the staff feed compares to spot changes
    made by other processes: the sync agent's pull, scheduled models)."""
    rows = db.execute(
        "SELECT 't', ticket_id, status, coalesce(assignee, '') FROM tickets WHERE hotel_id = ?1"
        " AND status NOT IN ('done', 'cancelled') AND merged_into IS NULL"
        " UNION ALL SELECT 'k', task_id, status, coalesce(assignee, '') FROM tasks WHERE hotel_id = ?1"
        " AND status NOT IN ('done', 'cancelled')"
        " UNION ALL SELECT 'w', work_order_id, status, version FROM work_orders WHERE hotel_id = ?1"
        " AND status NOT IN ('done', 'cancelled') ORDER BY 1, 2", [hotel_id]).fetchall()
    return hash(tuple(rows))


# --- actions ---------------------------------------------------------------------------------

def _staff_member(db, hotel_id: str, staff_id) -> str:
    if not isinstance(staff_id, str) or not staff_id:
        raise ValidationError("assign needs an assignee (a staff id)", {"field": "assignee"})
    if db.execute("SELECT 1 FROM staff WHERE hotel_id = ? AND staff_id = ?", [hotel_id, staff_id]).fetchone() is None:
        raise ValidationError(f"{staff_id!r} is not a member of staff of this hotel", {"field": "assignee"})
    return staff_id


def _refuse(kind: str, status: str, action: str, allowed_actions: list[str], allowed_statuses: list[str]):
    raise InvalidTransition(f"{action!r} is not possible: this {kind.replace('_', ' ')} is {status.replace('_', ' ')}",
                            {"from": status, "action": action, "allowed": allowed_statuses,
                             "allowedActions": allowed_actions})


def change_task(db, hotel_id: str, task_id: str, *, by: str, now: float, node: str, status: str | None = None,
                assignee: str | None = _UNSET) -> dict:
    """A routed task's status and/or assignee: the local row, history, audit and outbox
    (``pms.update`` on entity ``task``) in one transaction."""
    with store.transaction(db):
        rows = list(db.query("SELECT * FROM tasks WHERE hotel_id = ? AND task_id = ? AND type != 'approval'",
                             [hotel_id, task_id]))
        if not rows:
            raise NotFound(f"no task {task_id!r} in this hotel", {"kind": "task", "id": task_id})
        row = rows[0]
        wanted: dict[str, Any] = {}
        if status is not None and status != row["status"]:
            if status not in TASK_TRANSITIONS.get(row["status"], ()):
                raise InvalidTransition(f"a {row['status']} task cannot become {status}",
                                        {"from": row["status"], "to": status,
                                         "allowed": sorted(TASK_TRANSITIONS.get(row["status"], ()))})
            wanted["status"] = status
        if assignee is not _UNSET and assignee != row["assignee"]:
            wanted["assignee"] = assignee
        if not wanted:
            return {"syncStatus": "unchanged", "changes": {}}
        changes = {f: {"old": row[f], "new": v} for f, v in wanted.items()}
        q = outbox.enqueue(db, hotel_id=hotel_id, kind="pms.update", entity_type="pms", entity_id=f"task:{task_id}",
                           node=node, now=now,
                           payload={"entity": "task", "id": task_id, "changes": wanted,
                                    "previous": {f: c["old"] for f, c in changes.items()},
                                    "reason": "staff at the kiosk", "by": by, "at": iso(now),
                                    "requiresApproval": False})
        new = dict(row) | wanted
        set_task(db, hotel_id, task_id, status=new["status"], assignee=new["assignee"], at=now)
        tickets.record_history(db, hotel_id, "task", task_id, changes, by=by, at=now, hlc=q.hlc)
        audit.record(db, hotel_id=hotel_id, event="task.updated", outcome="success", at=now, actor=by,
                     details={"taskId": task_id, "fields": sorted(changes)})
    return {"syncStatus": "queued", "changes": changes, "outboxKey": q.idempotency_key}


def act(db, hotel_id: str, kind: str, id_: str, body: Any, *, by: str, now: float, node: str) -> dict:
    """Apply one action to one item; returns what changed and the item as it is now."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be an object with an action", {"field": "action"})
    extra = set(body) - {"action", "assignee", "status", "expectedVersion", "text"}
    if extra:
        raise ValidationError(f"unknown fields: {', '.join(sorted(extra))}", {"fields": sorted(extra)})
    action = body.get("action")
    if action not in ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(ACTIONS)}", {"field": "action",
                                                                           "allowed": list(ACTIONS)})
    current = item(db, hotel_id, kind, id_, by)
    allowed = current["actions"]
    ctx = dict(by=by, now=now, node=node)
    if action == "reply" and kind == "ticket":
        text = tickets.reply_text(body.get("text"))  # VALIDATION_ERROR before anything else
        if action in allowed:
            return _done(db, hotel_id, kind, id_, action, by, tickets.reply(db, hotel_id, id_, text, **ctx))
    if action == "make_work_order" and kind == "ticket" and current["workOrderId"]:
        return _done(db, hotel_id, kind, id_, action, by, {"syncStatus": "unchanged", "changes": {}})
    if action == "make_work_order" and kind == "ticket" and action in allowed:
        return _done(db, hotel_id, kind, id_, action, by, tickets.make_work_order(db, hotel_id, id_, **ctx))
    if action not in allowed:
        statuses = (current["allowedStatuses"] if kind == "work_order" else
                    tickets.allowed_from(current["status"]) if kind == "ticket" else
                    sorted(TASK_TRANSITIONS.get(current["status"], ())) if kind == "task" else [])
        _refuse(kind, current["status"], action, allowed, statuses)
    assignee = _staff_member(db, hotel_id, body.get("assignee")) if action == "assign" else None
    if kind == "ticket":
        target = {"accept": ("accepted", by), "start": ("in_progress", current["assignee"] or by),
                  "done": ("done", _UNSET), "assign": ("assigned", assignee)}[action]
        result = tickets.change(db, hotel_id, id_, status=target[0], assignee=target[1], **ctx)
    elif kind == "task":
        target = {"accept": ("assigned", by), "start": ("in_progress", current["assignee"] or by),
                  "done": ("done", _UNSET), "assign": ("assigned", assignee)}[action]
        result = change_task(db, hotel_id, id_, status=target[0], assignee=target[1], **ctx)
    elif kind == "work_order":
        status = current["status"]
        if action == "accept":
            changes = {"assignee": by} | ({"status": "assigned"} if wo_can_move(status, "assigned") else {})
        elif action == "start":
            changes = {"status": "in_progress"} | ({} if current["assignee"] else {"assignee": by})
        elif action == "done":
            changes = {"status": "done"}
        elif action == "assign":
            changes = {"assignee": assignee} | ({"status": "assigned"} if wo_can_move(status, "assigned") else {})
        else:
            wanted = body.get("status")
            if not isinstance(wanted, str):
                raise ValidationError("status needs the status to move to", {"field": "status"})
            if wanted == status:
                return {"kind": kind, "id": id_, "action": action, "syncStatus": "unchanged", "changes": {},
                        "item": current}
            changes = {"status": wanted}
            if wanted == "assigned" and not current["assignee"]:
                changes["assignee"] = by  # "assigned" always names someone: whoever set it, unless assigned
        req = {"workOrderId": id_, "changes": changes}
        if body.get("expectedVersion") is not None:
            req["expectedVersion"] = body["expectedVersion"]
        result = workorders.update(db, req, hotel_id=hotel_id, **ctx)
    else:
        from .models import actions as model_actions

        result = model_actions.decide(db, hotel_id, id_, action, **ctx)
        result = {"syncStatus": "queued" if action == "approve" else "unchanged",
                  "outboxKey": result.get("outboxKey")}
    return _done(db, hotel_id, kind, id_, action, by, result)


def _done(db, hotel_id: str, kind: str, id_: str, action: str, by: str, result: dict) -> dict:
    out = {"kind": kind, "id": id_, "action": action, "syncStatus": result.get("syncStatus", "queued"),
           "changes": result.get("changes", {}), "item": item(db, hotel_id, kind, id_, by)}
    if result.get("outboxKey"):
        out["outboxKey"] = result["outboxKey"]
    return out


# --- tasks: the one writer of the table -------------------------------------------------------

def add_task(db, row: dict) -> None:
    """A new task row (a model's, inside its caller's transaction); known columns only."""
    known = _task_columns(db)
    row = {k: v for k, v in row.items() if k in known}
    db.execute(f"INSERT INTO tasks ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def set_task(db, hotel_id: str, task_id: str, *, status: str, assignee=_UNSET, keep_assignee: bool = False,
             at: float | None = None) -> None:
    """A task's status and assignee (no outbox of its own: the caller queues what the cloud must
    hear).  ``keep_assignee`` keeps one already set; ``at`` also sets ``updated_at``."""
    if at is not None:
        db.execute("UPDATE tasks SET status = ?, assignee = ?, updated_at = ? WHERE hotel_id = ? AND task_id = ?",
                   [status, assignee, at, hotel_id, task_id])
    elif assignee is _UNSET:
        db.execute("UPDATE tasks SET status = ? WHERE hotel_id = ? AND task_id = ?", [status, hotel_id, task_id])
    elif keep_assignee:
        db.execute("UPDATE tasks SET status = ?, assignee = coalesce(assignee, ?) WHERE hotel_id = ? AND task_id = ?",
                   [status, assignee, hotel_id, task_id])
    else:
        db.execute("UPDATE tasks SET status = ?, assignee = ? WHERE hotel_id = ? AND task_id = ?",
                   [status, assignee, hotel_id, task_id])


def _task_columns(db) -> set[str]:
    cache = db.__dict__.setdefault("_table_columns", {})
    if "tasks" not in cache:
        cache["tasks"] = {r[1] for r in db.execute("PRAGMA table_info(tasks)")}
    return cache["tasks"]


def replace_row(db, hotel_id: str, data: dict) -> None:
    """A task from the PMS (a reference change pulled, kiosk.property.tables hands it here)."""
    row = {k: v for k, v in data.items() if k in _task_columns(db) - {"hotel_id"}} | {"hotel_id": hotel_id}
    db.execute(f"INSERT OR REPLACE INTO tasks ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
               list(row.values()))


def delete_rows(db, hotel_id: str, column: str | None, values: list | None) -> None:
    """Delete the hotel's tasks: all, or those whose ``task_id`` is in ``values``."""
    if values is None:
        db.execute("DELETE FROM tasks WHERE hotel_id = ?", [hotel_id])
        return
    if column not in (None, "task_id"):
        raise ValueError(f"tasks are deleted by task_id, not {column!r}")
    for i in range(0, len(values), 500):
        part = values[i:i + 500]
        db.execute(f"DELETE FROM tasks WHERE hotel_id = ? AND task_id IN ({', '.join('?' * len(part))})",
                   [hotel_id, *part])


def insert_rows(db, hotel_id: str, rows: list[dict]) -> int:
    """Tasks of a property's data (an import or the demo seed), inside the loader's transaction."""
    if not rows:
        return 0
    cols = sorted({c for r in rows for c in r if c in _task_columns(db) - {"hotel_id"}})
    db.conn.executemany(f"INSERT INTO tasks (hotel_id, {', '.join(cols)}) VALUES (?, {', '.join('?' * len(cols))})",
                        [[hotel_id, *(r.get(c) for c in cols)] for r in rows])
    return len(rows)


def seal_existing(db, limit: int) -> int:
    """Guests' questions handed to staff written in clear (``"CONF: the question"``, by an older
    version): up to ``limit`` sealed now under the guest's key; inside the caller's
    transaction; how many."""
    found = db.execute("SELECT hotel_id, task_id, description FROM tasks WHERE type = 'guest_question'"
                       " AND instr(description, ': ') > 1 AND substr(description, 1, 5) <> 'pii1.' LIMIT ?",
                       [limit]).fetchall()
    for hotel_id, task_id, words in found:
        db.execute("UPDATE tasks SET description = ? WHERE hotel_id = ? AND task_id = ?",
                   [guest_keys.seal(db, hotel_id, words.split(": ", 1)[0], words), hotel_id, task_id])
    return len(found)


def erase_questions(db, hotel_id: str, confirmation: str, text: str) -> list[str]:
    """A guest's erasure (pulled): the tasks a hotel model made of their questions (type
    ``guest_question``, described ``"CONF: the question"``) keep the confirmation and lose the
    words (``"CONF: <text>"``).  Inside the caller's transaction; returns the tasks' ids."""
    prefix = f"{confirmation}: "
    ids = [r[0] for r in db.execute("SELECT task_id FROM tasks WHERE hotel_id = ? AND type = 'guest_question'"
                                    " AND substr(description, 1, ?) = ?", [hotel_id, len(prefix), prefix])]
    for task_id in ids:
        db.execute("UPDATE tasks SET description = ? WHERE hotel_id = ? AND task_id = ?",
                   [prefix + text, hotel_id, task_id])
    return ids
