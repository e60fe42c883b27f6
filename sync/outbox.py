"""The transactional outbox lives with the kiosk's store: :mod:`kiosk.outbox` (re-exported here)."""

from kiosk.outbox import *  # noqa: F403
from kiosk.outbox import Queued, enqueue, list_dead, pending, resolve_dead  # noqa: F401
