"""The kiosk's side of the hotels' backup keys (docs/privacy.md, "A key per guest at the kiosk").

A ``kiosk backup`` holds the guests' keys only wrapped under each hotel's backup key, which
the kiosk's upstream (the chain's cloud or the property hub) keeps (sync/cloud/backup_keys.py).
The agent (job ``guest-keys``, every minute) asks the upstream for the key of each hotel it
serves until it has it, so that a backup made later can wrap; and after a restore it asks
again, with the hotel's erasures, and unwraps every guest's key of the backup but those of
guests erased since the backup (kiosk/guest_keys.py).  Nothing of it blocks a guest: until
the keys are back, a restored kiosk's guests read as erased and their stays come again by
pull.
"""

from __future__ import annotations

import base64
import logging

from kiosk import guest_keys, store

from .transport import TransportError

log = logging.getLogger("kiosk.agent")


def refresh(db, transport, hotels: list[str]) -> dict:
    """For each hotel: its backup key fetched when this kiosk lacks it or has wrapped keys
    waiting; the waiting keys unwrapped.  An unreachable upstream is no error (tried again
    next run).  Returns what was done, by hotel."""
    waiting = set(guest_keys.wrapped_hotels(db))
    out: dict[str, dict] = {}
    for hotel_id in hotels:
        if hotel_id not in waiting and guest_keys.hotel_key(db, hotel_id) is not None:
            continue
        try:
            got = transport.backup_key(hotel_id)
            kid, key = str(got["kid"]), base64.b64decode(got["key"])
            erased = {str(c) for c in got.get("erased") or []}
        except (TransportError, KeyError, TypeError, ValueError) as e:
            out[hotel_id] = {"error": str(e)[:200]}
            continue
        with store.secure_delete(db):
            with store.transaction(db):
                guest_keys.keep_hotel_key(db, hotel_id, kid, key)
                done = guest_keys.unwrap(db, hotel_id, kid, key, erased) if hotel_id in waiting else {}
            if done:
                store.checkpoint_truncate(db)  # the wrapped copies leave the WAL too
        out[hotel_id] = {"key": kid, **done}
        if done:
            log.info("guest keys unwrapped", extra={"hotelId": hotel_id, **done})
    return out
