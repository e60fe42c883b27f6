"""The work-order state machine, shared by the kiosk and the cloud.

See docs/sync-protocol.md.  A done order is never silently reopened: reopening
is the explicit ``reopened`` status.
"""

from __future__ import annotations

STATUSES = ("open", "assigned", "in_progress", "on_hold", "done", "reopened", "cancelled")

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"assigned", "in_progress", "cancelled"}),
    "assigned": frozenset({"in_progress", "on_hold", "open", "cancelled"}),
    "in_progress": frozenset({"on_hold", "done", "assigned"}),
    "on_hold": frozenset({"in_progress", "assigned", "cancelled"}),
    "done": frozenset({"reopened"}),
    "reopened": frozenset({"assigned", "in_progress", "cancelled"}),
    "cancelled": frozenset(),
}


def can_move(old: str, new: str) -> bool:
    """True if ``old -> new`` is a legal status change (staying put is not a change)."""
    return new in TRANSITIONS.get(old, frozenset())


def reachable(old: str, new: str) -> bool:
    """True if ``new`` can be reached from ``old`` in one or more legal changes (a PMS export
    states where an order is now, not each step it took to get there)."""
    seen, todo = set(), [old]
    while todo:
        for nxt in TRANSITIONS.get(todo.pop(), frozenset()):
            if nxt == new:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def allowed_from(old: str) -> list[str]:
    return sorted(TRANSITIONS.get(old, frozenset()))
