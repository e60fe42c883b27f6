"""Trust keys: the property's token-signing keys every kiosk trusts, added or retired in
``keys/trust.json`` (pulled; the cloud is where keys are made)."""

from __future__ import annotations

from datetime import datetime

from kiosk import sync_status
from kiosk.trust import TrustedKey

from . import Kind


def pull(ctx, hotel_id: str, ch: dict) -> None:
    key = TrustedKey.from_json(ch["data"])
    ctx.trust().add(key)
    if key.added_at:
        stamp = datetime.fromisoformat(key.added_at.replace("Z", "+00:00")).timestamp()
        newest = float(sync_status.get(ctx.db, "trust_newest_at") or 0)
        sync_status.put(ctx.db, {"trust_newest_at": max(newest, stamp)})  # the scan's clock check


KIND = Kind("trust_key", "token-signing keys the kiosks trust (cloud -> kiosks)",
            pull_entities=("trust_key",), pull=pull,
            snapshot=(("trust_key", "sync.cloud.snapshot:trust_key_rows"),),
            relay="sync.cloud.keys:put_public")
