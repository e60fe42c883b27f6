"""Test-only models, at module level so a model worker process can import them by reference."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kiosk.models.base import Action, Result


def slow(ctx, payload):
    """Overruns any short timeout; leaves a mark if it ever gets to finish."""
    time.sleep(float(payload.get("seconds", 1.0)))
    if payload.get("mark"):
        Path(payload["mark"]).write_text("finished")
    return Result(confidence=1.0, outputs={}, actions=[Action("CREATE_TASK", {"type": "late"})])


def spin(ctx, payload):
    """Burns CPU forever (a thread running this could never be stopped); reports its pid first."""
    Path(payload["pidfile"]).write_text(str(os.getpid()))
    while True:
        pass


def hog(ctx, payload):
    """Allocates far past any sane budget."""
    blocks = [bytearray(64 * 1024 * 1024) for _ in range(int(payload.get("blocks", 64)))]
    return Result(confidence=1.0, outputs={"blocks": len(blocks)})


def boom(ctx, payload):
    raise RuntimeError("model bug in /secret/path/table guests")


def tasker(ctx, payload):
    return Result(confidence=0.5, outputs={"ok": True},
                  actions=[Action("CREATE_TASK", {"type": "towels", "roomNumber": "101", "priority": "high"}),
                           Action("SCHEDULE_MAINTENANCE", {"assetId": "A-1", "roomNumber": "101"})])
