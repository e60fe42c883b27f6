"""One session in detail: its row, its workflow's steps and a timeline of what it caused.

How rows link to a session:

* by ``session_id`` — the scan and any refusal during the session (``audit_log``), the
  workflow the scan started (``workflow_state``), the model runs (``ai_interactions``);
* by the session's user as actor within the session's lifetime (from its start to its
  end, its expiry or now, whichever is first) — the actions the models applied
  (audit ``model.actions``), approvals decided (``approval.*``), work-order changes
  through the PMS path (``work_order_history.by``), tickets (``tickets.created_by``; one
  that carries another session's ``session_id`` is that session's)
  and duplicates found (``ticket.duplicate``).  A user with two sessions open at once
  sees these in both;
* the end: ``ended_at``/``end_reason`` of the row (logout, an admin, a revoked or
  replayed token), or its expiry.

Also the follow-ups of the requests made in the session (accepted, started, answered,
done — by whom, whenever that was, the session's end notwithstanding: it is what the
session caused) and, for staff, the requests and tasks the session's user moved along
within its lifetime (``item_history.by``).

The timeline is ordered by time; entries at the same instant keep the order of the
workflow (scan, workflow, model run, its actions, ..., end).

Each entry says what happened twice: ``summary``, one English line (as before), and
``textKey`` + ``params``, an ``admin.timeline.say.*`` key of the screens' dictionary
(kiosk/web/static/i18n.json) with its placeholders, so the admin screen reads it in its own
language ("Accepted by Grace").  People are named (:mod:`kiosk.names`) where the property
data knows them, else by their id; the raw keys (``jti``, ``workflowId``, ...) stay in
``details`` for support.
"""

from __future__ import annotations

import json

from . import names
from .clock import iso
from .errors import NotFound

LIMIT = 1000  # entries per source; a session lasts an hour by default, far below this
STEP_STATUS = {"SUCCESS": "completed", "ERROR": "failed", "TIMEOUT": "timeout", "INVALID": "invalid"}
_RANK = {"scan": 0, "workflow.started": 1, "model.run": 2, "model.actions": 3, "session.ended": 9,
         "session.expired": 9}
_ACTOR_EVENTS = ("model.actions", "approval.approve", "approval.reject", "ticket.duplicate")
SAY = "admin.timeline.say."
#: every ``textKey`` an entry can carry (tests/test_names_and_timeline.py: each is in i18n.json, en and de)
TEXT_KEYS = tuple(SAY + k for k in (
    "scan.camera", "scan.manual", "scan", "workflow", "workflow.none", "model.ok", "model.error", "model.timeout",
    "model.actions", "approval.approve", "approval.reject", "ticket.created", "ticket.reported", "ticket.duplicate",
    "ticket.accepted", "ticket.assigned", "ticket.started", "ticket.done", "ticket.cancelled", "ticket.status",
    "ticket.unassigned", "ticket.replied", "ticket.workOrder", "task.accepted", "task.assigned", "task.started",
    "task.done", "task.cancelled", "task.status", "task.unassigned", "pms", "offer", "refused.forbidden",
    "refused.rateLimited", "refused.csrf", "refused", "event", "ended", "ended.by", "expired"))


def status_of(row: dict, now: float) -> str:
    if row["ended_at"] is not None:
        return "ended"
    return "active" if row["expires_at"] > now else "expired"


def session_json(row: dict, now: float) -> dict:
    """A session as the admin list shows it."""
    return {"sessionId": row["id"], "userId": row["user_id"], "role": row["role"], "name": row["display_name"],
            "scanMethod": row["scan_method"], "createdAt": iso(row["created_at"]),
            "expiresAt": iso(row["expires_at"]), "endedAt": iso(row["ended_at"]) if row["ended_at"] else None,
            "endReason": row["end_reason"], "status": status_of(row, now)}


def _entry(at: float, kind: str, summary: str, details: dict, tie: int = 0, key: str = "event",
           params: dict | None = None) -> dict:
    return {"at": at, "kind": kind, "summary": summary, "details": details, "_tie": tie, "textKey": SAY + key,
            "params": params or {}}


class _Names:
    """Names for actor ids, looked up once each (a session's timeline names a few people)."""

    def __init__(self, db, hotel_id: str):
        self.db, self.hotel_id, self.known = db, hotel_id, {}

    def __call__(self, actor: str | None) -> str:
        """The person's name, else their id (without a role prefix); "" for nobody."""
        b = names.bare(actor)
        if not b:
            return ""
        if b not in self.known:
            self.known[b] = names.actor_name(names.lookup(self.db, self.hotel_id, [b]), b)
        return self.known[b] or b


_REFUSED = {"security.forbidden": "refused.forbidden", "security.rate_limited": "refused.rateLimited",
            "security.csrf": "refused.csrf"}


def _audit(db, hotel_id: str, s: dict, end: float, who: _Names) -> list[dict]:
    rows = list(db.query("SELECT id, at, event, outcome, actor, jti, client, code, details FROM audit_log"
                         " WHERE session_id = ? AND +hotel_id = ? ORDER BY id LIMIT ?", [s["id"], hotel_id, LIMIT]))
    marks = ", ".join("?" for _ in _ACTOR_EVENTS)
    rows += db.query(f"SELECT id, at, event, outcome, actor, jti, client, code, details FROM audit_log"
                     f" WHERE hotel_id = ? AND at >= ? AND at <= ? AND actor = ? AND session_id IS NULL"
                     f" AND event IN ({marks}) ORDER BY id LIMIT ?",
                     [hotel_id, s["created_at"], end, s["user_id"], *_ACTOR_EVENTS, LIMIT])
    out = []
    for r in rows:
        d = json.loads(r["details"] or "{}")
        ev = r["event"]
        if ev == "session.terminated":
            continue  # the end comes from the session row (with who ended it)
        if ev == "scan":
            method = d.get("scanMethod", "?")
            out.append(_entry(r["at"], "scan", f"{d.get('role', s['role'])} scanned in ({method})",
                              {"outcome": r["outcome"], "actor": r["actor"], "jti": r["jti"], "client": r["client"],
                               **d}, r["id"], f"scan.{method}" if method in ("camera", "manual") else "scan",
                              {"who": who(r["actor"] or s["user_id"]), "method": method}))
        elif ev == "model.actions":
            acts = d.get("actions", [])
            out.append(_entry(r["at"], "model.actions",
                              f"{d.get('modelId')} applied and queued {len(acts)} action(s): {', '.join(acts)}",
                              {"modelId": d.get("modelId"), "actions": acts}, r["id"], "model.actions",
                              {"model": d.get("modelId") or "?", "actions": acts}))
        elif ev.startswith("approval."):
            decision = ev.split(".", 1)[1]
            out.append(_entry(r["at"], "approval", f"approval {d.get('taskId')} {decision}d"
                              f" ({d.get('entity')} {d.get('id')})", {"decision": decision, **d}, r["id"],
                              f"approval.{decision}" if decision in ("approve", "reject") else "event",
                              {"who": who(r["actor"]), "entity": d.get("entity") or "",
                               "id": _thing(who, d.get("entity"), d.get("id")), "event": ev}))
        elif ev == "ticket.duplicate":
            out.append(_entry(r["at"], "ticket.duplicate", f"a ticket was a duplicate of {d.get('ticketId')}",
                              d, r["id"], "ticket.duplicate", {"ticket": d.get("ticketId") or "?"}))
        elif ev == "offer.accepted":
            out.append(_entry(r["at"], ev, f"offer {d.get('offerId')} accepted", {"outcome": r["outcome"], **d},
                              r["id"], "offer", {"offer": _offer(db, hotel_id, d.get("offerId"))}))
        else:  # e.g. security.forbidden: a request the session's role may not make
            summary = f"{ev} ({r['outcome']}{', ' + r['code'] if r['code'] else ''})"
            request = ""
            if "path" in d:
                request = f"{d.get('method', '')} {d['path']}".strip()
                summary += f": {request}"
            key = _REFUSED.get(ev, "refused" if r["outcome"] == "refused" else "event")
            out.append(_entry(r["at"], ev, summary, {"outcome": r["outcome"], "code": r["code"], **d}, r["id"], key,
                              {"request": request or "—", "code": r["code"] or r["outcome"], "event": ev}))
    return out


def _thing(who: _Names, entity, id_) -> str:
    """What an approval was about: a reservation by its guest's name, else the id."""
    if entity == "reservation" and isinstance(id_, str):
        name = who(id_)
        return f"{name} ({id_})" if name != id_ else id_
    return str(id_ or "?")


def _offer(db, hotel_id: str, offer_id) -> str:
    row = db.execute("SELECT name FROM offers WHERE hotel_id = ? AND offer_id = ?", [hotel_id, offer_id]).fetchone()
    return row[0] if row and row[0] else str(offer_id or "?")


def _workflow(db, hotel_id: str, sid: str) -> dict | None:
    row = db.execute("SELECT id, workflow, state, models, created_at, updated_at FROM workflow_state"
                     " WHERE session_id = ? AND +hotel_id = ? ORDER BY created_at LIMIT 1", [sid, hotel_id]).fetchone()
    if row is None:
        return None
    wid, workflow, state, models, created, updated = row
    return {"workflowId": wid, "workflow": workflow, "state": state, "triggeredAIModels": json.loads(models),
            "startedAt": created, "updatedAt": updated}


def _runs(db, hotel_id: str, sid: str) -> list[dict]:
    return list(db.query("SELECT id, model_id, actor, started_at, duration_ms, status, error, actions"
                         " FROM ai_interactions WHERE session_id = ? AND +hotel_id = ?"  # + : by the session's index
                         " ORDER BY started_at, id LIMIT ?",
                         [sid, hotel_id, LIMIT]))


def _pms_changes(db, hotel_id: str, s: dict, end: float) -> list[dict]:
    grouped: dict[tuple, dict] = {}
    for r in db.query("SELECT id, work_order_id, field, old, new, at, hlc FROM work_order_history"
                      " WHERE hotel_id = ? AND at >= ? AND at <= ? AND by = ? ORDER BY id LIMIT ?",
                      [hotel_id, s["created_at"], end, s["user_id"], LIMIT]):
        key = (r["work_order_id"], r["hlc"])  # one update: its fields share the outbox entry's stamp
        e = grouped.setdefault(key, _entry(r["at"], "pms.change", "", {"workOrderId": r["work_order_id"],
                                                                       "changes": {}, "hlc": r["hlc"]}, r["id"]))
        e["details"]["changes"][r["field"]] = {"old": r["old"], "new": r["new"]}
    for e in grouped.values():
        d = e["details"]
        changed = ", ".join(f"{f} {c['old']} → {c['new']}" for f, c in d["changes"].items())
        e["summary"] = f"work order {d['workOrderId']}: {changed}"
        e["textKey"], e["params"] = SAY + "pms", {"workOrder": d["workOrderId"], "changes": changed}
    return list(grouped.values())


def _tickets(db, hotel_id: str, s: dict, end: float) -> list[dict]:
    key = "ticket.created" if s["role"] == "guest" else "ticket.reported"
    return [_entry(r["created_at"], "ticket.created", f"ticket {r['ticket_id']} ({r['type']}) → {r['queue']}: {r['title']}",
                   {"ticketId": r["ticket_id"], "type": r["type"], "title": r["title"], "roomNumber": r["room_number"],
                    "priority": r["priority"], "queue": r["queue"], "status": r["status"]}, 0, key,
                   {"what": r["title"], "room": r["room_number"] or ""})
            for r in db.query("SELECT ticket_id, type, title, room_number, priority, queue, status, created_at"
                              " FROM tickets WHERE hotel_id = ? AND created_by = ? AND created_at >= ?"
                              " AND created_at <= ? AND (session_id IS NULL OR session_id = ?) ORDER BY created_at LIMIT ?",
                              [hotel_id, s["user_id"], s["created_at"], end, s["id"], LIMIT])]


_STEP = {"accepted": "accepted", "assigned": "assigned", "in_progress": "started", "done": "done",
         "cancelled": "cancelled"}


def _moves(db, hotel_id: str, rows: list[dict], who: _Names) -> list[dict]:
    """One entry per change of a request or task (its fields changed together share a stamp):
    "Grace accepted “towels” (room 412)", "“towels” (room 412) done — Grace"."""
    what = {}
    for kind, table, id_col, title in (("ticket", "tickets", "ticket_id", "title"), ("task", "tasks", "task_id", "type")):
        ids = sorted({r["item_id"] for r in rows if r["kind"] == kind})
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            for r in db.execute(f"SELECT {id_col}, {title}, room_number FROM {table} WHERE hotel_id = ? AND"
                                f" {id_col} IN ({', '.join('?' * len(part))})", [hotel_id, *part]):
                what[(kind, r[0])] = (r[1], r[2])
    grouped: dict[tuple, dict] = {}
    for r in rows:
        g = grouped.setdefault((r["kind"], r["item_id"], r["hlc"] or r["id"]),
                               {"at": r["at"], "kind": r["kind"], "id": r["item_id"], "by": r["by"], "row": r["id"],
                                "changes": {}})
        g["changes"][r["field"]] = {"old": r["old"], "new": r["new"]}
    out = []
    for g in grouped.values():
        title, room = what.get((g["kind"], g["id"]), (g["id"], None))
        ch = g["changes"]
        params = {"who": who(g["by"]), "what": title or g["id"], "room": room or ""}
        status = (ch.get("status") or {}).get("new")
        to = (ch.get("assignee") or {}).get("new")
        if "reply" in ch:
            step = "replied"
        elif "work_order" in ch:
            step, params["workOrder"] = "workOrder", ch["work_order"]["new"]
        elif status == "assigned" or (status is None and "assignee" in ch):
            step = "assigned" if to else "unassigned"
            if to and to == g["by"] and status == "assigned":
                step = "accepted"  # a task accepted by whoever took it
        elif status in _STEP:
            step = _STEP[status]
        else:
            step, params["status"] = "status", status or ""
        if step in ("assigned",):
            params["to"] = who(to)
        if g["kind"] == "task" and step in ("replied", "workOrder"):
            step = "status"
        key = f"{g['kind']}.{step}"
        summary = f"{g['kind']} {g['id']}: " + ", ".join(f"{f} {c['old']} → {c['new']}" for f, c in ch.items()
                                                       if f != "reply") + (" reply" if "reply" in ch else "")
        details = {f"{g['kind']}Id": g["id"], "by": g["by"],
                   "changes": {f: c for f, c in ch.items()}}
        out.append(_entry(g["at"], f"{g['kind']}.updated", summary.rstrip(": "), details, g["row"], key, params))
    return out


def _follow_ups(db, hotel_id: str, s: dict, end: float, who: _Names) -> list[dict]:
    """What became of the requests made in the session (by anyone, at any time) and what the
    session's user did to requests and tasks within its lifetime."""
    cols = "id, kind, item_id, field, old, new, by, at, hlc"
    rows = {r["id"]: r for r in db.query(
        f"SELECT {cols} FROM item_history WHERE hotel_id = ? AND kind = 'ticket' AND item_id IN"
        " (SELECT ticket_id FROM tickets WHERE hotel_id = ? AND created_by = ? AND created_at >= ? AND created_at <= ?"
        " AND (session_id IS NULL OR session_id = ?)) ORDER BY id LIMIT ?",
        [hotel_id, hotel_id, s["user_id"], s["created_at"], end, s["id"], LIMIT])}
    rows |= {r["id"]: r for r in db.query(
        f"SELECT {cols} FROM item_history WHERE hotel_id = ? AND by = ? AND at >= ? AND at <= ?"
        " AND kind IN ('ticket', 'task') ORDER BY id LIMIT ?", [hotel_id, s["user_id"], s["created_at"], end, LIMIT])}
    return _moves(db, hotel_id, sorted(rows.values(), key=lambda r: r["id"]), who)


def _end(db, s: dict, now: float, who: _Names) -> dict | None:
    if s["ended_at"] is not None:
        by = db.execute("SELECT actor FROM audit_log WHERE session_id = ? AND event = 'session.terminated'"
                        " ORDER BY id LIMIT 1", [s["id"]]).fetchone()
        reason = s["end_reason"]
        by = by[0] if by else None
        other = by is not None and names.bare(by) != s["user_id"]  # an admin ended it, not its own logout
        return _entry(s["ended_at"], "session.ended", f"session ended ({reason})", {"reason": reason, "by": by}, 0,
                      "ended.by" if other else "ended", {"reason": reason or "", "who": who(by) if other else ""})
    if s["expires_at"] <= now:
        return _entry(s["expires_at"], "session.expired", "session expired", {"reason": "expired"}, 0, "expired")
    return None


def _steps(s: dict, wf: dict | None, runs: list[dict]) -> dict | None:
    """The seed's WorkflowExecutionTracker: scan, workflow start, then one step per triggered model."""
    if wf is None:
        return None
    steps = [{"step": 1, "name": "scan", "status": "completed", "at": iso(s["created_at"])},
             {"step": 2, "name": "workflow.start", "status": "completed", "at": iso(wf["startedAt"])}]
    latest: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for r in runs:  # ordered by time: the last one wins
        latest[r["model_id"]] = r
        counts[r["model_id"]] = counts.get(r["model_id"], 0) + 1
    for m in wf["triggeredAIModels"]:
        r = latest.get(m)
        steps.append({"step": len(steps) + 1, "name": m, "modelId": m,
                      "status": STEP_STATUS.get(r["status"], "failed") if r else "pending",
                      "at": iso(r["started_at"]) if r else None, "durationMs": r["duration_ms"] if r else None,
                      "actions": r["actions"] if r else 0, "runs": counts.get(m, 0)})
    model_steps = steps[2:]
    done = sum(st["status"] == "completed" for st in model_steps)
    if done == len(model_steps):
        status = "completed"
    elif any(st["status"] in ("failed", "timeout") for st in model_steps):
        status = "failed"
    else:
        status = "in_progress"
    return {"workflowId": wf["workflowId"], "workflow": wf["workflow"], "state": wf["state"],
            "triggeredAIModels": wf["triggeredAIModels"], "startedAt": iso(wf["startedAt"]), "status": status,
            "completedSteps": done, "totalSteps": len(model_steps), "steps": steps}


def detail(db, hotel_id: str, session_id: str, *, now: float) -> dict:
    """``{"session", "timeline", "workflow"}`` of one session of ``hotel_id`` (else NOT_FOUND)."""
    s = db.execute("SELECT id, hotel_id, user_id, role, display_name, scan_method, client, created_at, expires_at,"
                   " ended_at, end_reason FROM sessions WHERE id = ? AND hotel_id = ?", [session_id, hotel_id]).fetchone()
    if s is None:
        raise NotFound(f"no session {session_id!r} in this hotel", {"sessionId": session_id})
    s = dict(zip(("id", "hotel_id", "user_id", "role", "display_name", "scan_method", "client", "created_at",
                  "expires_at", "ended_at", "end_reason"), s, strict=True))
    end = s["ended_at"] if s["ended_at"] is not None else min(s["expires_at"], now)
    who = _Names(db, hotel_id)
    wf = _workflow(db, hotel_id, s["id"])
    runs = _runs(db, hotel_id, s["id"])
    entries = _audit(db, hotel_id, s, end, who)
    if wf is not None:
        models = wf["triggeredAIModels"]
        entries.append(_entry(wf["startedAt"], "workflow.started",
                              f"{wf['workflow']} workflow started: {', '.join(models) or 'no models'}",
                              {"workflowId": wf["workflowId"], "workflow": wf["workflow"], "state": wf["state"],
                               "triggeredAIModels": models}, 0, "workflow" if models else "workflow.none",
                              {"role": wf["workflow"], "models": models}))
    entries += [_entry(r["started_at"], "model.run",
                       f"{r['model_id']} {r['status']} in {r['duration_ms']:.0f} ms, {r['actions']} action(s)",
                       {"interactionId": r["id"], "modelId": r["model_id"], "status": r["status"],
                        "durationMs": r["duration_ms"], "actions": r["actions"], "error": r["error"]}, r["id"],
                       _MODEL_KEY.get(r["status"], "model.error"),
                       {"model": r["model_id"], "ms": round(r["duration_ms"] or 0), "n": r["actions"] or 0})
                for r in runs]
    entries += _pms_changes(db, hotel_id, s, end) + _tickets(db, hotel_id, s, end) + _follow_ups(db, hotel_id, s,
                                                                                                  end, who)
    if (e := _end(db, s, now, who)) is not None:
        entries.append(e)
    entries.sort(key=lambda e: (e["at"], _RANK.get(e["kind"], 5), e["_tie"]))
    timeline = [{"at": iso(e["at"]), "kind": e["kind"], "summary": e["summary"], "details": e["details"],
                 "textKey": e["textKey"], "params": e["params"]} for e in entries]
    session = names.annotate(db, hotel_id, [session_json(s, now)])[0]
    return {"session": session, "timeline": timeline, "workflow": _steps(s, wf, runs)}


_MODEL_KEY = {"SUCCESS": "model.ok", "ERROR": "model.error", "TIMEOUT": "model.timeout"}
