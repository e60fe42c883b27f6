"""Sessions opened and ended at kiosks: recorded in the cloud's event log."""

from __future__ import annotations

from . import Kind, recorded

KIND = Kind("session", "sessions opened and ended (kiosk -> cloud)",
            push_entity="session",
            push=(recorded("session.opened"), recorded("session.ended")))
