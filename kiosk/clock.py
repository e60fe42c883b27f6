"""Injectable time.  Everything that expires or schedules asks a clock."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


class SystemClock:
    """Wall-clock time in seconds since the epoch."""

    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: float = 1_780_000_000.0):
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def iso(ts: float) -> str:
    """RFC 3339 UTC with millisecond precision and a trailing ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def from_iso(value) -> float | None:
    """Seconds since the epoch from a number or an ISO 8601 text (``Z`` for UTC); None stays None."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def local(ts: float, tz: str = "UTC") -> datetime:
    """The hotel's wall-clock time at ``ts``: ``tz`` is an IANA zone (``property.timezone``),
    so summer time comes from the zone database, never from a fixed offset."""
    return datetime.fromtimestamp(ts, ZoneInfo(tz))


def local_date(ts: float, tz: str = "UTC") -> date:
    """The hotel's calendar day at ``ts`` (arrivals, departures, business dates)."""
    return local(ts, tz).date()


def local_hhmm(ts: float, tz: str = "UTC") -> str:
    """The hotel's time of day at ``ts`` as ``HH:MM`` (shifts)."""
    return local(ts, tz).strftime("%H:%M")


def parse_duration(text: str) -> int:
    """``"90s"``, ``"15m"``, ``"12h"``, ``"30d"`` or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = str(text).strip().lower()
    if text.isdigit():
        value = int(text)
    elif len(text) > 1 and text[-1] in units and text[:-1].isdigit():
        value = int(text[:-1]) * units[text[-1]]
    else:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 12h, 30d)")
    if value <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return value
