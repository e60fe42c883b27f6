"""Reference data the PMS owns and kiosks receive by pull (rule ``reference-authoritative``):
one table of which local table each entity type is, and its key columns.  The cloud's
import (sync/cloud/refdata.py) and the kiosk's pull (sync/pull.py) both read it."""

from __future__ import annotations

#: local table (= PMS export file stem) -> (entity type in the change log, key columns)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "rooms": ("room", ("room_number",)),
    "reservations": ("reservation", ("confirmation",)),
    "staff": ("staff", ("staff_id",)),
    "rate_plans": ("rate_plan", ("code", "room_type")),
    "offers": ("offer", ("offer_id",)),
    "assets": ("asset", ("asset_id",)),
    "tasks": ("task", ("task_id",)),
}

#: entity type -> (local table, key columns)
BY_ENTITY: dict[str, tuple[str, tuple[str, ...]]] = {etype: (table, keys) for table, (etype, keys) in TABLES.items()}


def entity_id(table: str, row: dict) -> str:
    """The change log's id of a row: its key columns joined by ``|``."""
    return "|".join(str(row[k]) for k in TABLES[table][1])
