"""The contract every hotel model implements.

A model is a plain function ``run(ctx, payload) -> Result``.  It reads the
property's data from the local store (always scoped by ``ctx.hotel_id``),
computes, and returns findings or outputs plus the actions it proposes.  It
never writes: the runner (``kiosk.models.runner``) times it, enforces its
timeout, applies the proposed actions locally and queues them in the outbox in
one transaction, and logs the run in ``ai_interactions``.

Each model module defines ``SPEC = ModelSpec(...)``; ``kiosk.models.registry``
lists the modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from ..clock import local_date, local_hhmm

ActionType = Literal["CREATE_TASK", "UPDATE_PMS", "SEND_MESSAGE", "SCHEDULE_MAINTENANCE"]
ACTION_TYPES: tuple[str, ...] = ("CREATE_TASK", "UPDATE_PMS", "SEND_MESSAGE", "SCHEDULE_MAINTENANCE")


@dataclass(frozen=True)
class Action:
    """An effect a model proposes.  ``payload`` is JSON-able.

    CREATE_TASK          {"type", "roomNumber", "priority", "requiredSkill", "description", "dueAt"?}
    UPDATE_PMS           {"entity": "charge"|"reservation"|"room"|..., "id", "changes": {...},
                          "reason", "requiresApproval": bool}
    SEND_MESSAGE         {"confirmation", "channel", "language", "text"}
    SCHEDULE_MAINTENANCE {"assetId", "roomNumber", "risk", "dueBy", "description"}

    ``subject`` says what the action is about (the finding, the charge, the asset and horizon,
    the reservation and template): the runner acts once per subject, across reruns and kiosks
    (kiosk/models/actions.py).  None: the whole proposal on that day.
    """

    type: ActionType
    payload: dict[str, Any]
    subject: str | None = None


@dataclass
class Result:
    """What ``run`` returns.  Exactly one of ``findings`` / ``outputs`` is set."""

    confidence: float
    findings: list[dict[str, Any]] | None = None
    outputs: dict[str, Any] | None = None
    actions: list[Action] = field(default_factory=list)


@dataclass
class Context:
    """What a model may use.  ``db`` is a sqlite_utils.Database on the instance store."""

    db: Any
    hotel_id: str
    now: float                    # epoch seconds from the injected clock
    actor: str | None = None      # user id of the session that asked, if any
    role: str | None = None
    session_id: str | None = None
    data_dir: str | None = None   # instance data dir (for files such as room photos)
    settings: dict[str, Any] = field(default_factory=dict)
    tz: str = "UTC"               # the hotel's IANA time zone (property.timezone)

    def today(self) -> date:
        """The hotel's local calendar day now."""
        return local_date(self.now, self.tz)

    def hhmm(self) -> str:
        """The hotel's local time of day now, ``HH:MM`` (shifts)."""
        return local_hhmm(self.now, self.tz)


@dataclass(frozen=True)
class ModelSpec:
    id: str                                   # e.g. "night-audit"
    run: Callable[[Context, dict[str, Any]], Result]
    roles: frozenset[str]                     # session roles allowed to trigger it
    reads: tuple[str, ...]                    # tables it reads (documentation + tests)
    timeout_seconds: float = 20.0
    description: str = ""


def own_confirmation(ctx: Context, asked: str | None) -> str | None:
    """The reservation a request is about.  A guest session IS its reservation (the token's
    subject is the confirmation number): naming another one is FORBIDDEN, so no model shows
    a guest a stranger's name, room or stay.  Staff and admins may name any (default: none)."""
    from ..errors import Forbidden

    if ctx.role == "guest":
        if asked not in (None, ctx.actor):
            raise Forbidden("a guest may only ask about their own stay", {"confirmation": asked})
        return ctx.actor
    return asked or ctx.actor


def own_room(ctx: Context, asked: str | None) -> str | None:
    """The room a request is about: for a guest, only the room of their own reservation
    (another room is FORBIDDEN — whether it is occupied is somebody else's privacy)."""
    from ..errors import Forbidden

    if ctx.role != "guest":
        return asked
    row = ctx.db.execute("SELECT room_number FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                         [ctx.hotel_id, ctx.actor]).fetchone()
    mine = row[0] if row else None
    if asked is not None and asked != mine:
        raise Forbidden("a guest may only ask about their own room", {"roomNumber": asked})
    return mine
