"""Role workflows: which hotel models a scan starts for each role."""

from __future__ import annotations

import json
import uuid

TRIGGERED_MODELS: dict[str, list[str]] = {
    "guest": ["guest-messaging", "room-status", "upsell-engine"],
    "staff": ["task-routing", "housekeeping", "night-audit", "maintenance", "billing-detection"],
    # Admins get the admin view (tokens, sessions, analytics); no models start.
    "admin": [],
}


def start(db, *, hotel_id: str, session_id: str, role: str, now: float) -> list[str]:
    """Record the workflow for a new session (inside the scan transaction)."""
    models = TRIGGERED_MODELS[role]
    db.execute(
        "INSERT INTO workflow_state (id, hotel_id, session_id, workflow, state, models, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, 'started', ?, ?, ?)",
        [uuid.uuid4().hex, hotel_id, session_id, role, json.dumps(models), now, now],
    )
    return models
