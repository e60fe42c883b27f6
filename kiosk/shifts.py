"""Who is on shift: a staff member's ``shift_start``-``shift_end`` (``HH:MM``, the hotel's
local time, ``property.timezone``) against the hotel's time of day now.

One rule for task routing, the housekeeping plan and the staff queue's people list.
"""

from __future__ import annotations


def on_shift(start: str | None, end: str | None, hhmm: str) -> bool:
    """Is ``hhmm`` (local ``HH:MM``) within the shift?  No shift set: always on.  A shift that
    ends before it starts crosses midnight (22:00-06:00); the end minute is off."""
    if not start or not end:
        return True
    return start <= hhmm < end if start <= end else (hhmm >= start or hhmm < end)

