"""Changes for the PMS (an offer added to a reservation, a task's status): recorded in the
cloud, which hands them to the hotel's PMS."""

from __future__ import annotations

from . import Kind, recorded

KIND = Kind("pms", "changes for the hotel's PMS (kiosk -> cloud)",
            push_entity="pms", push=(recorded("pms.update"),))
