"""What the admin view shows about sync: :mod:`kiosk.sync_status` (re-exported here)."""

from kiosk.sync_status import *  # noqa: F403
from kiosk.sync_status import conflicts, security_events, summary  # noqa: F401
