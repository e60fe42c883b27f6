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

The timeline is ordered by time; entries at the same instant keep the order of the
workflow (scan, workflow, model run, its actions, ..., end).
"""

from __future__ import annotations

import json

from .clock import iso
from .errors import NotFound

LIMIT = 1000  # entries per source; a session lasts an hour by default, far below this
STEP_STATUS = {"SUCCESS": "completed", "ERROR": "failed", "TIMEOUT": "timeout", "INVALID": "invalid"}
_RANK = {"scan": 0, "workflow.started": 1, "model.run": 2, "model.actions": 3, "session.ended": 9,
         "session.expired": 9}
_ACTOR_EVENTS = ("model.actions", "approval.approve", "approval.reject", "ticket.duplicate")


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


def _entry(at: float, kind: str, summary: str, details: dict, tie: int = 0) -> dict:
    return {"at": at, "kind": kind, "summary": summary, "details": details, "_tie": tie}


def _audit(db, hotel_id: str, s: dict, end: float) -> list[dict]:
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
            out.append(_entry(r["at"], "scan", f"{d.get('role', s['role'])} scanned in ({d.get('scanMethod', '?')})",
                              {"outcome": r["outcome"], "actor": r["actor"], "jti": r["jti"], "client": r["client"],
                               **d}, r["id"]))
        elif ev == "model.actions":
            acts = d.get("actions", [])
            out.append(_entry(r["at"], "model.actions",
                              f"{d.get('modelId')} applied and queued {len(acts)} action(s): {', '.join(acts)}",
                              {"modelId": d.get("modelId"), "actions": acts}, r["id"]))
        elif ev.startswith("approval."):
            decision = ev.split(".", 1)[1]
            out.append(_entry(r["at"], "approval", f"approval {d.get('taskId')} {decision}d"
                              f" ({d.get('entity')} {d.get('id')})", {"decision": decision, **d}, r["id"]))
        elif ev == "ticket.duplicate":
            out.append(_entry(r["at"], "ticket.duplicate", f"a ticket was a duplicate of {d.get('ticketId')}",
                              d, r["id"]))
        else:  # e.g. security.forbidden: a request the session's role may not make
            summary = f"{ev} ({r['outcome']}{', ' + r['code'] if r['code'] else ''})"
            if "path" in d:
                summary += f": {d.get('method', '')} {d['path']}".rstrip()
            out.append(_entry(r["at"], ev, summary, {"outcome": r["outcome"], "code": r["code"], **d}, r["id"]))
    return out


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
        e["summary"] = f"work order {d['workOrderId']}: " + ", ".join(
            f"{f} {c['old']} → {c['new']}" for f, c in d["changes"].items())
    return list(grouped.values())


def _tickets(db, hotel_id: str, s: dict, end: float) -> list[dict]:
    return [_entry(r["created_at"], "ticket.created", f"ticket {r['ticket_id']} ({r['type']}) → {r['queue']}: {r['title']}",
                   {"ticketId": r["ticket_id"], "type": r["type"], "title": r["title"], "roomNumber": r["room_number"],
                    "priority": r["priority"], "queue": r["queue"], "status": r["status"]})
            for r in db.query("SELECT ticket_id, type, title, room_number, priority, queue, status, created_at"
                              " FROM tickets WHERE hotel_id = ? AND created_by = ? AND created_at >= ?"
                              " AND created_at <= ? AND (session_id IS NULL OR session_id = ?) ORDER BY created_at LIMIT ?",
                              [hotel_id, s["user_id"], s["created_at"], end, s["id"], LIMIT])]


def _end(db, s: dict, now: float) -> dict | None:
    if s["ended_at"] is not None:
        by = db.execute("SELECT actor FROM audit_log WHERE session_id = ? AND event = 'session.terminated'"
                        " ORDER BY id LIMIT 1", [s["id"]]).fetchone()
        reason = s["end_reason"]
        return _entry(s["ended_at"], "session.ended", f"session ended ({reason})",
                      {"reason": reason, "by": by[0] if by else None})
    if s["expires_at"] <= now:
        return _entry(s["expires_at"], "session.expired", "session expired", {"reason": "expired"})
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
    wf = _workflow(db, hotel_id, s["id"])
    runs = _runs(db, hotel_id, s["id"])
    entries = _audit(db, hotel_id, s, end)
    if wf is not None:
        models = wf["triggeredAIModels"]
        entries.append(_entry(wf["startedAt"], "workflow.started",
                              f"{wf['workflow']} workflow started: {', '.join(models) or 'no models'}",
                              {"workflowId": wf["workflowId"], "workflow": wf["workflow"], "state": wf["state"],
                               "triggeredAIModels": models}))
    entries += [_entry(r["started_at"], "model.run",
                       f"{r['model_id']} {r['status']} in {r['duration_ms']:.0f} ms, {r['actions']} action(s)",
                       {"interactionId": r["id"], "modelId": r["model_id"], "status": r["status"],
                        "durationMs": r["duration_ms"], "actions": r["actions"], "error": r["error"]}, r["id"])
                for r in runs]
    entries += _pms_changes(db, hotel_id, s, end) + _tickets(db, hotel_id, s, end)
    if (e := _end(db, s, now)) is not None:
        entries.append(e)
    entries.sort(key=lambda e: (e["at"], _RANK.get(e["kind"], 5), e["_tie"]))
    timeline = [{"at": iso(e["at"]), "kind": e["kind"], "summary": e["summary"], "details": e["details"]}
                for e in entries]
    return {"session": session_json(s, now), "timeline": timeline, "workflow": _steps(s, wf, runs)}
