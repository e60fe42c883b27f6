"""Sessions opened and ended at kiosks: recorded in the cloud's event log."""

from __future__ import annotations

from . import Kind, Push

KIND = Kind("session", "sessions opened and ended (kiosk -> cloud)",
            push_entity="session",
            push=(Push("session.opened", "sync.cloud.events:record"), Push("session.ended", "sync.cloud.events:record")))
