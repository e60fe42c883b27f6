"""Reference data the PMS owns (rooms, reservations, staff, rate plans, offers, assets,
tasks): imported into the cloud, replacing the kiosks' rows (rule ``reference-authoritative``)."""

from __future__ import annotations

from kiosk.property import tables

from ..reference import BY_ENTITY
from . import Kind


def pull(ctx, hotel_id: str, ch: dict) -> None:
    table, keys = BY_ENTITY[ch["entityType"]]
    if ch["op"] == "delete":
        tables.delete(ctx.db, hotel_id, table, keys, ch["entityId"].split("|"))
    else:
        tables.upsert(ctx.db, hotel_id, table, ch["data"])


KIND = Kind("reference", "the PMS's reference data (cloud -> kiosks)",
            pull_entities=tuple(BY_ENTITY), pull=pull,
            snapshot=(("reference", "sync.cloud.snapshot:reference_rows"),),
            conflict_rule="reference-authoritative", relay="sync.cloud.refdata:put_change")
