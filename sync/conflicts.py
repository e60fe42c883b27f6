"""The conflict rules, in one place (docs/conflicts.md has them as a table).

Every replica converges on the cloud's state: the cloud applies pushes in the
order they arrive, resolving each against its current row with the rules
below, and every kiosk adopts what the cloud holds when it pulls (keeping only
its own not-yet-delivered changes on top, until they are delivered and judged).
These functions are pure: they decide, the callers write.

Rule ids (stable; they appear in conflict records and the admin view):

``reference-authoritative``  rooms, reservations, staff, rate plans, offers come
                             from the PMS: the pulled row replaces the local one.
``field-lww``                independent fields: the write with the later HLC stamp
                             wins, field by field (a stamp orders causally even when
                             a kiosk's wall clock is wrong).
``work-order-state``         status follows the state machine: a closed order is not
                             reopened by a concurrent edit, only by an explicit
                             ``reopened`` stamped after the close; a close wins over
                             concurrent status changes; an illegal transition from
                             the cloud's status is refused.
``ticket-fingerprint``       two tickets with the same fingerprint (hotel, room, type,
                             content terms) while one is open merge into the first.
``token-replay``             consumed one-time tokens merge by union; one consumed at
                             two kiosks is a replay: the earliest consumption by HLC
                             keeps its session, the later one is ended and recorded
                             as a security event.
``pms-authoritative``        an action for the hotel's PMS (a charge, a service
                             request) that the PMS refuses for good, or that names a
                             reservation the PMS cancelled: the PMS's state stands and
                             the action is a dead letter with the PMS's words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kiosk.workflow_rules import can_move, reachable

CLOSED = ("done", "cancelled")
RULES = ("reference-authoritative", "field-lww", "work-order-state", "ticket-fingerprint", "token-replay",
         "pms-authoritative")


@dataclass(frozen=True)
class Conflict:
    """One resolved conflict: what was proposed, what was kept, by which rule."""

    entity_type: str
    entity_id: str
    field: str | None
    rule: str
    outcome: str
    incoming: dict[str, Any]  # {"value", "hlc", "by"?} the write that arrived
    current: dict[str, Any]   # {"value", "hlc"} what the cloud held

    def to_json(self) -> dict:
        d = asdict(self)
        return {"entityType": d["entity_type"], "entityId": d["entity_id"], "field": d["field"],
                "rule": d["rule"], "outcome": d["outcome"], "incoming": d["incoming"], "current": d["current"]}


@dataclass(frozen=True)
class Decision:
    apply: bool
    rule: str | None = None      # set when the decision resolved a conflict
    outcome: str | None = None


def status_decision(current: str, current_hlc: str, new: str, hlc: str, seen: str | None = None,
                    *, snapshot: bool = False) -> Decision:
    """May a status change to ``new`` stamped ``hlc`` replace ``current`` (stamped ``current_hlc``)?

    ``seen`` is the status the writer changed from; a close that was legal from there
    wins over whatever concurrent status change got to the cloud first.  ``snapshot``: the
    writer states where the order is now (the PMS's export), so the change may take several
    legal steps at once; everything else is judged the same.
    """
    can_move_ = reachable if snapshot else can_move
    later = hlc > current_hlc
    if new == current:
        return Decision(False)
    if current in CLOSED:
        if new == "reopened" and current == "done":
            return Decision(True) if later else Decision(
                False, "work-order-state", "kept closed: it was closed after this reopen")
        if new in CLOSED:
            return Decision(True, "field-lww", f"{new} replaces {current} (later stamp)") if later else Decision(
                False, "field-lww", f"kept {current} (later stamp)")
        return Decision(False, "work-order-state", f"kept {current}: a closed order is only reopened explicitly")
    if new in CLOSED:
        if current == "reopened" and not later:
            return Decision(False, "work-order-state", "kept reopened: the reopen is later than this close")
        origin = seen if seen is not None else current
        if not (can_move_(current, new) or can_move_(origin, new)):
            return Decision(False, "work-order-state", f"kept {current}: {current} -> {new} is not allowed")
        if origin != current or not later:
            return Decision(True, "work-order-state", f"{new} replaces {current}: a close wins over concurrent changes")
        return Decision(True)
    if not later:
        return Decision(False, "field-lww", f"kept {current} (later stamp)")
    if not can_move_(current, new):
        return Decision(False, "work-order-state", f"kept {current}: {current} -> {new} is not allowed")
    return Decision(True)


def field_decision(current: Any, current_hlc: str, new: Any, hlc: str) -> Decision:
    if new == current:
        return Decision(False)
    if hlc > current_hlc:
        return Decision(True)
    return Decision(False, "field-lww", "kept the value with the later stamp")


def merge_work_order(row: dict, field_hlc: dict[str, str], changes: dict[str, Any], hlc: str,
                     *, by: str | None = None, seen: dict[str, Any] | None = None, snapshot: bool = False
                     ) -> tuple[dict[str, Any], list[Conflict]]:
    """Which of ``changes`` (field -> new value, stamped ``hlc``) to apply to ``row``.

    ``seen`` is what the writer saw before its change (field -> old value): when it
    differs from the current value, the write was concurrent with another one, and
    even a write that wins replaces a value its author never saw — that is recorded
    as a conflict too, so the other writer's kiosk can see why its value went.
    Returns ``(to_apply, conflicts)``.  Status is judged first; the other fields are
    independent of it and of each other.  ``snapshot``: see :func:`status_decision` (the
    PMS's work orders, sync/cloud/pms.py).
    """
    seen = seen or {}
    base = ""  # a field with no stamp of its own was never written after creation: any write wins
    to_apply: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    for field in sorted(changes, key=lambda f: f != "status"):
        new, cur, cur_hlc = changes[field], row[field], field_hlc.get(field, base)
        if field == "status":
            d = status_decision(cur, cur_hlc, new, hlc, seen.get("status"), snapshot=snapshot)
        else:
            d = field_decision(cur, cur_hlc, new, hlc)
        if d.apply:
            to_apply[field] = new
            if not d.rule and field in seen and seen[field] != cur:
                d = Decision(True, "work-order-state" if field == "status" else "field-lww",
                             f"{new!r} replaces {cur!r}, a concurrent write with an earlier stamp")
        if d.rule:
            conflicts.append(Conflict("work_order", row["work_order_id"], field, d.rule, d.outcome,
                                      {"value": new, "hlc": hlc, "by": by}, {"value": cur, "hlc": cur_hlc}))
    return to_apply, conflicts


def replay_order(consumptions: list[dict]) -> list[dict]:
    """Consumptions of one one-time token, the keeper first: earliest HLC, then kiosk id."""
    return sorted(consumptions, key=lambda c: (c["hlc"], c["kioskId"]))
