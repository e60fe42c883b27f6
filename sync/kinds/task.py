"""Tasks a hotel model created at a kiosk: recorded in the cloud for the PMS side.  (Tasks the
PMS sends down are reference data: see :mod:`.reference`.)"""

from __future__ import annotations

from . import Kind, recorded

KIND = Kind("task", "tasks the hotel models made (kiosk -> cloud)",
            push_entity="task", push=(recorded("task.created"),))
