"""Model actions are done once per what they are about (issue 11): a rerun, a scheduled run
after a manual one, and the same nightly model at two kiosks of one hotel act once — locally
by the action's key in ``model_actions``, and in the cloud because both kiosks queue the
same entry key and the cloud answers the second ``duplicate``."""

from __future__ import annotations

import numpy as np
from replicas import HOTEL, Cloud, Site
from test_models import D, plant_folio

from kiosk.clock import FakeClock
from kiosk.models import actions, runner
from kiosk.models.base import Action

DAY = 86400.0


def plant_assets(db, now: float) -> None:
    """Boilers that fail every ~60 days (high risk within 30), TVs that hardly ever do."""
    rng = np.random.default_rng(1)
    assets, wos = [], []
    for i in range(8):
        for typ, scale in (("boiler", 60.0), ("tv", 2000.0)):
            aid = f"{typ}-{i}"
            assets.append({"hotel_id": HOTEL, "asset_id": aid, "type": typ, "room_number": str(100 + i),
                           "installed_on": "2025-05-28"})
            t = now - 365 * DAY
            while True:
                t += scale * rng.weibull(1.5) * DAY
                if t >= now:
                    break
                wos.append({"hotel_id": HOTEL, "work_order_id": f"W{len(wos)}", "asset_id": aid, "type": "failure",
                            "status": "done", "opened_at": t, "updated_at": t, "description": ""})
    db["assets"].insert_all(assets)
    db["work_orders"].insert_all(wos)


def counts(db) -> tuple[int, int, int]:
    """(approval tasks, preventive work orders, outbox entries)."""
    return tuple(db.execute(q).fetchone()[0] for q in (
        "SELECT count(*) FROM tasks WHERE type = 'approval'",
        "SELECT count(*) FROM work_orders WHERE type = 'preventive'",
        "SELECT count(*) FROM outbox"))


def test_billing_detection_run_again_proposes_no_correction_twice(instance, clock):
    plant_folio(instance.db())
    first = runner.run(instance, "billing-detection", {"businessDate": D}, hotel_id=HOTEL, role="staff", actor="s-1")
    assert [a["status"] for a in first["actionsTriggered"]] == ["awaiting_approval"] * 6
    db = instance.db()
    before = counts(db)
    assert before[0] == 6
    again = runner.run(instance, "billing-detection", {"businessDate": D}, hotel_id=HOTEL, role="staff")
    assert [a["status"] for a in again["actionsTriggered"]] == ["already_done"] * 6
    assert [a["approvalTaskId"] for a in again["actionsTriggered"]] == \
        [a["approvalTaskId"] for a in first["actionsTriggered"]]
    assert counts(db) == before
    # the duplicate's reversal approved, then the scheduled run of the same night: still not proposed again
    dup = next(a for a, f in zip(first["actionsTriggered"], first["findings"], strict=False)
               if f["type"] == "DUPLICATE_CHARGE")
    actions.decide(db, HOTEL, dup["approvalTaskId"], "approve", by="s-1", now=clock.now(), node="k")
    clock.advance(3600)
    scheduled = runner.run(instance, "billing-detection", {"businessDate": D}, hotel_id=HOTEL)
    assert all(a["status"] == "already_done" for a in scheduled["actionsTriggered"])
    reversals = db.execute("SELECT count(*) FROM outbox WHERE kind = 'pms.update'").fetchone()[0]
    assert reversals == 1 and counts(db)[0] == 6


def test_a_new_duplicate_on_the_folio_is_proposed_alone(instance, clock):
    db = instance.db()
    plant_folio(db)
    runner.run(instance, "billing-detection", {"businessDate": D}, hotel_id=HOTEL)
    db["charges"].insert({"hotel_id": HOTEL, "charge_id": "R-DUP-fnb3", "confirmation": "R-DUP", "code": "FNB",
                          "posted_at": f"{D}T19:04:00", "amount": 42.5, "quantity": 1})
    out = runner.run(instance, "billing-detection", {"businessDate": D}, hotel_id=HOTEL)
    new = [(f["correction"]["id"], a["status"]) for f, a in zip(out["findings"], out["actionsTriggered"], strict=False)
           if f["type"] == "DUPLICATE_CHARGE"]
    assert sorted(new) == [("R-DUP-fnb2", "already_done"), ("R-DUP-fnb3", "awaiting_approval")]


def test_maintenance_opens_one_preventive_work_order_per_asset_and_horizon(instance, clock):
    plant_assets(instance.db(), clock.now())
    first = runner.run(instance, "maintenance", {"horizonDays": 30, "threshold": 0.3}, hotel_id=HOTEL)
    opened = [a["workOrderId"] for a in first["actionsTriggered"]]
    assert opened and all(a["status"] == "queued" for a in first["actionsTriggered"])
    db = instance.db()
    assert counts(db)[1] == len(opened)
    again = runner.run(instance, "maintenance", {"horizonDays": 30, "threshold": 0.3}, hotel_id=HOTEL)
    assert again["actionsTriggered"] == []  # each asset at risk has its preventive order open
    assert {a["scheduled"] for a in again["outputs"]["assets"] if a["scheduled"]} == set(opened)
    clock.advance(2 * DAY)  # the nightly run two days later: only assets newly at risk get one
    runner.run(instance, "maintenance", {"horizonDays": 30, "threshold": 0.3}, hotel_id=HOTEL)
    per_asset = db.execute("SELECT asset_id, count(*) FROM work_orders WHERE type = 'preventive'"
                           " GROUP BY asset_id").fetchall()
    assert per_asset and all(n == 1 for _, n in per_asset)


def test_a_message_for_the_moment_is_still_sent_once(instance, clock):
    db = instance.db()
    db["reservations"].insert({"hotel_id": HOTEL, "confirmation": "DE1", "guest_name": "Karl", "room_number": "412",
                               "arrival": "2026-05-28", "departure": "2026-05-31", "status": "Confirmed",
                               "language": "de"})
    one = runner.run(instance, "guest-messaging", {"confirmation": "DE1"}, hotel_id=HOTEL)["actionsTriggered"]
    two = runner.run(instance, "guest-messaging", {"confirmation": "DE1"}, hotel_id=HOTEL)["actionsTriggered"]
    assert [x["status"] for x in one + two] == ["queued", "already_sent"]
    assert two[0]["outboxKey"] == one[0]["outboxKey"] and two[0]["templateId"] == "arrival"
    assert two[0]["content"].startswith("Willkommen, Karl!")


def test_the_same_action_from_a_rerun_is_not_applied_twice_even_with_a_new_payload(instance, clock):
    db = instance.db()
    a = Action("CREATE_TASK", {"type": "inspection", "roomNumber": "101", "description": "2 areas"},
               subject="inspect 101 on 2026-05-28")
    b = Action("CREATE_TASK", {"type": "inspection", "roomNumber": "101", "description": "3 areas"},
               subject="inspect 101 on 2026-05-28")
    one = actions.apply(db, HOTEL, [a], model_id="room-status", by=None, now=clock.now(), node="k")
    two = actions.apply(db, HOTEL, [b], model_id="room-status", by=None, now=clock.now(), node="k")
    assert two[0]["status"] == "already_done" and two[0]["taskId"] == one[0]["taskId"]
    # without a subject: the same proposal the same day is the same action, another day is not
    c = Action("CREATE_TASK", {"type": "delivery", "roomNumber": "101", "description": "2 towels"})
    assert actions.apply(db, HOTEL, [c], model_id="voice-ai", by=None, now=clock.now(), node="k")[0]["status"] == \
        "queued"
    assert actions.apply(db, HOTEL, [c], model_id="voice-ai", by=None, now=clock.now() + 60,
                         node="k")[0]["status"] == "already_done"
    assert actions.apply(db, HOTEL, [c], model_id="voice-ai", by=None, now=clock.now() + DAY,
                         node="k")[0]["status"] == "queued"
    assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 3


def test_two_kiosks_running_the_nightly_models_act_once_in_the_cloud(tmp_path):
    cloud = Cloud(tmp_path, FakeClock())
    a, b = Site(tmp_path, "lobby-1", cloud), Site(tmp_path, "lobby-2", cloud)
    for site in (a, b):  # the same property at both (as the PMS import or a pull gives it)
        plant_folio(site.db)
        plant_assets(site.db, site.clock.now())
    out = {}
    for site in (a, b):
        out[site.name] = [runner.run(site.inst, m, p, hotel_id=HOTEL) for m, p in (
            ("billing-detection", {"businessDate": D}), ("maintenance", {"horizonDays": 30, "threshold": 0.3}))]
    keys = {name: sorted(r[0] for r in site.db.execute("SELECT idempotency_key FROM outbox"))
            for name, site in (("a", a), ("b", b))}
    assert keys["a"] == keys["b"] and len(keys["a"]) == counts(a.db)[0] + counts(a.db)[1]
    ids = [[x.get("approvalTaskId") or x.get("workOrderId") for r in out[s] for x in r["actionsTriggered"]]
           for s in ("lobby-1", "lobby-2")]
    assert ids[0] == ids[1]  # the same task and work-order ids at both kiosks
    first = a.pusher.drain()
    second = b.pusher.drain()
    assert first.delivered == len(keys["a"]) and second.delivered == len(keys["b"])
    statuses = [r[0] for r in cloud.db.execute("SELECT json_extract(result, '$.status') FROM applied_entries")]
    assert len(statuses) == len(keys["a"])  # remembered once each: b's entries were duplicates
    assert cloud.db.execute("SELECT count(*) FROM work_orders WHERE type = 'preventive'").fetchone()[0] == \
        counts(a.db)[1]
    # both kiosks' staff approve the same reversal: one pms.update key, so the cloud reverses once
    task = next(x["approvalTaskId"] for x in out["lobby-1"][0]["actionsTriggered"])
    ka = actions.decide(a.db, HOTEL, task, "approve", by="s-1", now=a.clock.now(), node=a.name)["outboxKey"]
    kb = actions.decide(b.db, HOTEL, task, "approve", by="s-9", now=b.clock.now(), node=b.name)["outboxKey"]
    assert ka == kb
    a.pusher.drain()
    b.pusher.drain()
    assert cloud.db.execute("SELECT count(*) FROM events WHERE kind = 'pms.update'").fetchone()[0] == 1
