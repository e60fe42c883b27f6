"""Work orders: made and changed at kiosks and by the PMS; merged field by field in the cloud
(rules ``field-lww`` and ``work-order-state``) and sent back down to every kiosk."""

from __future__ import annotations

from kiosk import workorders

from . import Kind, Push


def pull(ctx, hotel_id: str, ch: dict) -> None:
    workorders.apply_remote(ctx.db, hotel_id, ch["entityId"], ch["data"], ctx.now)


KIND = Kind("work_order", "maintenance work orders (both ways)",
            push_entity="work_order",
            push=(Push("work_order.created", "sync.cloud.workorders:create"),
                  Push("work_order.updated", "sync.cloud.workorders:update")),
            pull_entities=("work_order",), pull=pull,
            snapshot=(("work_order", "sync.cloud.snapshot:work_order_rows"),),
            conflict_rule="work-order-state", relay="sync.cloud.workorders:put_snapshot")
