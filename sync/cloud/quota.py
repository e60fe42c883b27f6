"""A per-device push quota: at most so many entries and so many bytes per window.

A device that pushes more within ``window`` seconds than its quota allows is answered
``429 RATE_LIMITED`` with ``Retry-After`` (the seconds until its window ends); nothing of
that push is applied, and its agent tries again after that (sync/delivery.py: a 429 is
transient, never a dead letter).  The defaults (``kiosk-cloud serve --push-quota-entries``,
``--push-quota-bytes``, ``--push-quota-window``) are far above what a kiosk sends, a
backlog drained after a long outage included (one push is at most 1,000 entries and
4 MiB; a kiosk pushes one batch at a time), and stop a device that floods the chain.

The counts live in the database (``push_quota``, one row per device, a fixed window), so
every worker process and machine of a chain shares them; one small upsert per push,
a transaction of its own (on PostgreSQL one round trip).  Every push counts, refused ones
too: a device ignoring ``Retry-After`` stays refused until its window ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kiosk.errors import RateLimited

from . import storage

DEFAULT_ENTRIES = 20_000
DEFAULT_BYTES = 64 * 1024 * 1024
DEFAULT_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Quota:
    entries: int | None = DEFAULT_ENTRIES  # None: no limit
    bytes: int | None = DEFAULT_BYTES
    window: float = DEFAULT_WINDOW_SECONDS

    @property
    def off(self) -> bool:
        return self.entries is None and self.bytes is None


def charge(db, quota: Quota, device_id: str, entries: int, size: int, now: float) -> None:
    """Count one push of ``entries`` entries and ``size`` bytes against the device's window;
    raise :class:`RateLimited` (429, ``details.retryAfter``) when the window is over quota."""
    if quota.off:
        return
    with storage.one_statement(db):
        start, n, b = db.execute(
            "INSERT INTO push_quota (device_id, window_start, entries, bytes) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET"
            " entries = CASE WHEN push_quota.window_start <= ? THEN excluded.entries"
            " ELSE push_quota.entries + excluded.entries END,"
            " bytes = CASE WHEN push_quota.window_start <= ? THEN excluded.bytes"
            " ELSE push_quota.bytes + excluded.bytes END,"
            " window_start = CASE WHEN push_quota.window_start <= ? THEN excluded.window_start"
            " ELSE push_quota.window_start END"
            " RETURNING window_start, entries, bytes",
            [device_id, now, entries, size, *[now - quota.window] * 3]).fetchone()
    over = []
    if quota.entries is not None and n > quota.entries:
        over.append(f"{n} entries (at most {quota.entries})")
    if quota.bytes is not None and b > quota.bytes:
        over.append(f"{b} bytes (at most {quota.bytes})")
    if over:
        retry = max(1, math.ceil(start + quota.window - now))
        raise RateLimited(f"device {device_id} pushed {' and '.join(over)} within {quota.window:g} s;"
                          f" try again in {retry} s",
                          {"scope": "device", "deviceId": device_id, "retryAfter": retry})
