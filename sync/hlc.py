"""The hybrid logical clock lives with the kiosk's store: :mod:`kiosk.hlc` (re-exported here)."""

from kiosk.hlc import *  # noqa: F403
from kiosk.hlc import MAX_COUNTER, Stamp, receive, tick  # noqa: F401
