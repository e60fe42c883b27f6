"""The work-order state machine: :mod:`kiosk.workflow_rules` (re-exported here for the cloud)."""

from kiosk.workflow_rules import *  # noqa: F403
from kiosk.workflow_rules import STATUSES, TRANSITIONS, allowed_from, can_move  # noqa: F401
