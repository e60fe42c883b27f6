"""Names for the ids the kiosk stores, so screens show people, not ids.

A user id is a reservation's confirmation (a guest's code names a stay) or a staff id (a
badge); an actor as the audit log writes it may carry a role prefix (``admin:s01``).  The
property data knows the names: ``reservations.guest_name`` and ``room_number``,
``staff.name``.  Where it knows none (a walk-in guest's code, a member of staff deleted
since, the demo's ``demo-admin``) the name is ``None`` and the screens show the id, which
is always kept next to the name for support.

The hotel itself has no name in the property data (only its id), so none is invented here.
"""

from __future__ import annotations

PREFIXES = ("admin:", "staff:", "guest:")
_CHUNK = 500  # ids per query (SQLite's bound-parameter limit is far above)


def bare(actor: str | None) -> str | None:
    """``"admin:s01"`` → ``"s01"``; other values as they are."""
    if not isinstance(actor, str):
        return None
    for p in PREFIXES:
        if actor.startswith(p):
            return actor[len(p):]
    return actor


def _in(db, sql: str, hotel_id: str, ids: list[str]):
    for i in range(0, len(ids), _CHUNK):
        part = ids[i:i + _CHUNK]
        yield from db.execute(sql.format(marks=", ".join("?" * len(part))), [hotel_id, *part])


def lookup(db, hotel_id: str, ids) -> dict[str, dict]:
    """``id -> {"staffName", "guestName", "roomNumber"}`` for every id (prefixes stripped) the
    hotel's staff or reservations know; ids neither knows are left out."""
    wanted = sorted({b for b in (bare(i) for i in ids) if b})
    out: dict[str, dict] = {}
    if not wanted:
        return out
    for sid, name in _in(db, "SELECT staff_id, name FROM staff WHERE hotel_id = ? AND staff_id IN ({marks})",
                         hotel_id, wanted):
        if name:
            out.setdefault(sid, {"staffName": None, "guestName": None, "roomNumber": None})["staffName"] = name
    for conf, name, room in _in(db, "SELECT confirmation, guest_name, room_number FROM reservations"
                                    " WHERE hotel_id = ? AND confirmation IN ({marks})", hotel_id, wanted):
        one = out.setdefault(conf, {"staffName": None, "guestName": None, "roomNumber": None})
        one["guestName"] = name or None
        one["roomNumber"] = room or None
    return out


def person(known: dict[str, dict], user_id: str | None, role: str | None, token_name: str | None = None) -> dict:
    """The name fields of one person: ``staffName`` (staff and admins), ``guestName`` and
    ``roomNumber`` (guests), and ``personName``, the best name known (the property data's,
    else the name the code was issued with), or ``None`` (then show the id)."""
    k = known.get(bare(user_id) or "", {})
    staff = k.get("staffName") if role != "guest" else None
    guest = k.get("guestName") if role in (None, "guest") else None
    room = k.get("roomNumber") if role in (None, "guest") else None
    given = token_name if token_name and token_name != user_id else None  # a session without a name has its id
    return {"personName": staff or guest or given, "staffName": staff, "guestName": guest, "roomNumber": room}


def annotate(db, hotel_id: str, rows: list[dict]) -> list[dict]:
    """Rows with ``userId``, ``role`` and ``name`` (the admin's token and session lists) get
    the fields of :func:`person`; existing fields stay as they are."""
    known = lookup(db, hotel_id, (r.get("userId") for r in rows))
    for r in rows:
        r.update(person(known, r.get("userId"), r.get("role"), r.get("name")))
    return rows


def actor_name(known: dict[str, dict], actor: str | None) -> str | None:
    """The name for an actor id (``s01``, ``admin:s01``, a confirmation); ``None`` if unknown."""
    k = known.get(bare(actor) or "")
    return (k.get("staffName") or k.get("guestName")) if k else None
