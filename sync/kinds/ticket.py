"""Tickets: guests' requests and faults, and their lifecycle and replies; twins merged in the
cloud (rule ``ticket-fingerprint``), steps last-writer-wins by stamp."""

from __future__ import annotations

from kiosk import tickets

from . import Kind, Push


def pull(ctx, hotel_id: str, ch: dict) -> None:
    tickets.apply_remote(ctx.db, hotel_id, ch["entityId"], ch["data"], ch.get("hlc") or "", ctx.now)


KIND = Kind("ticket", "guest requests and faults (both ways)",
            push_entity="ticket",
            push=(Push("ticket.created", "sync.cloud.tickets:create", many="sync.cloud.tickets:create_many"),
                  Push("ticket.updated", "sync.cloud.tickets:update")),
            pull_entities=("ticket",), pull=pull,
            snapshot=(("ticket", "sync.cloud.snapshot:ticket_rows"),),
            conflict_rule="ticket-fingerprint", relay="sync.cloud.tickets:put_snapshot")
