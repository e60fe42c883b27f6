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
    assert {m: r["status"] for m, r in results.items()} == {m: "success" for m in registry.specs()}
    assert len(results["forecasting"]["outputs"]["daily"]) == 30
    assert results["housekeeping"]["outputs"]["assignments"] and results["maintenance"]["outputs"]["assets"]
    assert results["task-routing"]["outputs"]["assignments"] and results["upsell-engine"]["outputs"]["offers"]


def test_no_model_sees_another_hotels_data(instance, clock):
    """The demo property is seeded for 'demo' only; every model run for 'harbor' finds nothing."""
    today = datetime.fromtimestamp(clock.now(), UTC).date()
    made = demo.seed(instance.db(), "demo", today)
    conf = made["guestConfirmation"]
    probes = {"forecasting": {"horizonDays": 7}, "staff-agent": {"staffId": "s01"},
              "guest-messaging": {"confirmation": conf, "question": "when is breakfast"},
              "pms-linking": {"records": [{"guestName": "x", "arrival": today.isoformat(), "confirmation": conf}]},
              "voice-ai": {"text": "please bring two towels"}, "housekeeping": {"at": "09:00"},
              "task-routing": {"at": "09:00"}}
    out = {m: runner.run(instance, m, p, hotel_id="harbor", role="admin") for m, p in probes.items()}
    out["night-audit"] = runner.run(instance, "night-audit", {}, hotel_id="harbor", role="admin")
    out["billing-detection"] = runner.run(instance, "billing-detection", {}, hotel_id="harbor", role="admin")
    out["maintenance"] = runner.run(instance, "maintenance", {}, hotel_id="harbor", role="admin")
    assert out["night-audit"]["findings"] == [] and out["billing-detection"]["findings"] == []
    assert {d["roomsOnBooks"] for d in out["forecasting"]["outputs"]["daily"]} == {0.0}
    assert out["staff-agent"]["outputs"]["worklist"] == []
    assert "message" not in out["guest-messaging"]["outputs"]  # the demo guest is not harbor's
    assert out["guest-messaging"]["outputs"]["handover"] is True  # nor is the demo FAQ
    assert out["pms-linking"]["outputs"]["links"][0]["status"] == "unmatched"
    assert out["housekeeping"]["outputs"]["assignments"] == [] and out["task-routing"]["outputs"]["assignments"] == []
    assert out["maintenance"]["outputs"]["assets"] == []
    for model_id, payload in (("upsell-engine", {"confirmation": conf}), ("room-status", {"roomNumber": "101"})):
        try:
            runner.run(instance, model_id, payload, hotel_id="harbor", role="admin")
            raise AssertionError(f"{model_id} found demo's data from harbor")
        except Exception as e:
            assert getattr(e, "code", None) == "NOT_FOUND", e
    # nothing to act on from another hotel's data (voice and the handed-over question act on the request itself)
    assert [m for m, r in out.items() if r["actionsTriggered"] and m not in ("voice-ai", "guest-messaging")] == []
