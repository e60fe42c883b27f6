"""Security events the cloud recorded (a replay between two other kiosks, say): shown at every
kiosk of the hotel, once, by key (a kiosk involved already holds it under the same key)."""

from __future__ import annotations

from kiosk import sync_status

from . import Kind


def pull(ctx, hotel_id: str, ch: dict) -> None:
    d = ch["data"]
    sync_status.record_security_event(ctx.db, hotel_id, kind=str(d.get("kind") or "UNKNOWN"),
                                      subject=str(d.get("subject") or ""), details=d.get("details") or {},
                                      at=float(d.get("detectedAt") or ctx.now), key=ch["entityId"])


KIND = Kind("security_event", "security events (cloud -> kiosks)",
            pull_entities=("security_event",), pull=pull,
            snapshot=(("security_event", "sync.cloud.snapshot:security_event_rows"),),
            relay="sync.cloud.changelog:put_record")
