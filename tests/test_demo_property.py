"""kiosk demo seed: a deterministic demo property on which every model runs and the night
audit finds exactly what was planted."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from kiosk.models import registry, runner
from kiosk.property import demo


def fingerprint(db) -> str:
    h = hashlib.sha256()
    for table in ("rooms", "reservations", "charges", "staff", "tasks", "assets", "offers"):
        for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
            h.update(json.dumps(row, default=str).encode())
    return h.hexdigest()


def test_the_demo_property_is_deterministic_and_the_audit_finds_what_was_planted(instance, clock):
    today = datetime.fromtimestamp(clock.now(), UTC).date()
    made = demo.seed(instance.db(), "demo", today)
    first = fingerprint(instance.db())
    assert demo.seed(instance.db(), "demo", today) == made and fingerprint(instance.db()) == first
    assert made["rooms"] == 120 and made["reservations"] > 3000 and made["charges"] > 10000
    demo.seed(instance.db(), "demo", today, seed_value=8)
    assert fingerprint(instance.db()) != first
    made = demo.seed(instance.db(), "demo", today)
    out = runner.run(instance, "night-audit", {}, hotel_id="demo", role="staff")
    assert {(f["type"], f["confirmation"]) for f in out["findings"]} == {(t, c) for t, c in made["planted"].items()}
    assert instance.db().execute("SELECT count(*) FROM charges WHERE hotel_id = 'harbor'").fetchone()[0] == 0


def test_every_model_runs_on_the_demo_property(instance, clock):
    today = datetime.fromtimestamp(clock.now(), UTC).date()
    demo.seed(instance.db(), "demo", today)
    conf = instance.db().execute("SELECT confirmation FROM reservations WHERE status = 'InHouse' LIMIT 1").fetchone()[0]
    payloads = {"forecasting": {"horizonDays": 30}, "staff-agent": {"staffId": "s01"},
                "upsell-engine": {"confirmation": conf}, "guest-messaging": {"confirmation": conf},
                "room-status": {"roomNumber": "101"}, "pms-linking": {"records": [{"guestName": "x",
                                                                                  "arrival": today.isoformat()}]},
                "voice-ai": {"text": "please bring two towels to room four one two"},
                "housekeeping": {"at": "09:00"}, "task-routing": {"at": "09:00"}}
    results = {m: runner.run(instance, m, payloads.get(m, {}), hotel_id="demo", role="admin")
               for m in registry.specs()}
    assert {m: r["status"] for m, r in results.items()} == {m: "SUCCESS" for m in registry.specs()}
    assert len(results["forecasting"]["outputs"]["daily"]) == 30
    assert results["housekeeping"]["outputs"]["assignments"] and results["maintenance"]["outputs"]["assets"]
    assert results["task-routing"]["outputs"]["assignments"] and results["upsell-engine"]["outputs"]["offers"]
