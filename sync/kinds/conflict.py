"""Conflicts the cloud resolved: sent down so every kiosk of the hotel shows them."""

from __future__ import annotations

from kiosk import sync_status

from . import Kind


def pull(ctx, hotel_id: str, ch: dict) -> None:
    sync_status.record_conflict(ctx.db, hotel_id, ch["data"], source="pull", now=ctx.now, key=f"cloud:{ch['entityId']}")


KIND = Kind("conflict", "conflicts the cloud resolved (cloud -> kiosks)",
            pull_entities=("conflict",), pull=pull, snapshot=(("conflict", "sync.cloud.snapshot:conflict_rows"),),
            relay="sync.cloud.changelog:put_record")
