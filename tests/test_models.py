"""The hotel models on planted data where the right answer is known, the runner (timeouts,
errors, actions in one transaction, the run log) and POST /api/ai/trigger."""

from __future__ import annotations

import json
import time

import pytest

from kiosk.models import registry, runner
from kiosk.models.base import Context, ModelSpec

D = "2026-11-23"


def plant_folio(db, hotel="demo"):
    db["rate_plans"].insert_all([{"hotel_id": hotel, "code": "BAR", "room_type": "KING", "nightly_rate": 150.0,
                                  "tax_rate": 0.10}])
    res = [("R-OK", "InHouse", "2026-11-22", "2026-11-25"), ("R-DUP", "InHouse", "2026-11-22", "2026-11-25"),
           ("R-MISS", "InHouse", "2026-11-23", "2026-11-24"), ("R-RATE", "InHouse", "2026-11-20", "2026-11-24"),
           ("R-TAX", "InHouse", "2026-11-21", "2026-11-26"), ("R-BAL", "CheckedOut", "2026-11-20", "2026-11-23"),
           ("R-NOSHOW", "Confirmed", "2026-11-23", "2026-11-25"), ("R-REV", "InHouse", "2026-11-22", "2026-11-24")]
    db["reservations"].insert_all([{"hotel_id": hotel, "confirmation": c, "guest_name": c, "room_number": "101",
                                    "room_type": "KING", "arrival": a, "departure": dep, "status": st,
                                    "rate_plan": "BAR", "nightly_rate": 150.0} for c, st, a, dep in res])
    charges = []

    def ch(cid, conf, code, amount, t="22:00:00"):
        charges.append({"hotel_id": hotel, "charge_id": cid, "confirmation": conf, "posted_at": f"{D}T{t}",
                        "code": code, "amount": amount, "quantity": 1})

    for conf in ("R-OK", "R-DUP", "R-REV"):
        ch(f"{conf}-room", conf, "ROOM", 150.0)
        ch(f"{conf}-tax", conf, "TAX", 15.0)
    ch("R-DUP-fnb1", "R-DUP", "FNB", 42.5, "19:01:00")
    ch("R-DUP-fnb2", "R-DUP", "FNB", 42.5, "19:02:00")          # planted duplicate
    ch("R-REV-fnb1", "R-REV", "FNB", 30.0, "19:00:00")
    ch("R-REV-fnb2", "R-REV", "FNB", 30.0, "19:01:00")
    ch("R-REV-void", "R-REV", "FNB", -30.0, "19:05:00")         # reversed: not a duplicate
    ch("R-RATE-room", "R-RATE", "ROOM", 130.0)                   # planted rate mismatch
    ch("R-RATE-tax", "R-RATE", "TAX", 13.0)
    ch("R-TAX-room", "R-TAX", "ROOM", 150.0)
    ch("R-TAX-tax", "R-TAX", "TAX", 12.0)                        # planted tax mismatch
    ch("R-BAL-room", "R-BAL", "ROOM", 150.0, "08:00:00")
    ch("R-BAL-pay", "R-BAL", "PAYMENT", -100.0, "10:00:00")      # 50.00 left open
    # R-MISS has no room charge; R-NOSHOW never arrived
    db["charges"].insert_all(charges)


def ctx(instance, clock, hotel="demo"):
    return Context(db=instance.db(), hotel_id=hotel, now=clock.now())


def test_night_audit_finds_each_planted_anomaly_and_nothing_else(instance, clock):
    plant_folio(instance.db())
    r = registry.get("night-audit").run(ctx(instance, clock), {"businessDate": D})
    got = {(f["type"], f["confirmation"]): f for f in r.findings}
    assert set(got) == {("DUPLICATE_CHARGE", "R-DUP"), ("MISSING_ROOM_CHARGE", "R-MISS"),
                        ("RATE_MISMATCH", "R-RATE"), ("TAX_MISMATCH", "R-TAX"), ("OPEN_BALANCE", "R-BAL"),
                        ("NO_SHOW_CANDIDATE", "R-NOSHOW")}
    assert got[("DUPLICATE_CHARGE", "R-DUP")]["chargeIds"] == ["R-DUP-fnb1", "R-DUP-fnb2"]
    assert got[("DUPLICATE_CHARGE", "R-DUP")]["amount"] == 42.5
    assert got[("RATE_MISMATCH", "R-RATE")]["chargeIds"] == ["R-RATE-room"]
    assert got[("TAX_MISMATCH", "R-TAX")]["amount"] == -3.0
    assert got[("OPEN_BALANCE", "R-BAL")]["amount"] == 50.0


def test_night_audit_reads_only_its_hotel_and_rejects_a_bad_date(instance, clock):
    plant_folio(instance.db(), hotel="harbor")
    assert registry.get("night-audit").run(ctx(instance, clock), {"businessDate": D}).findings == []
    with pytest.raises(Exception) as e:
        registry.get("night-audit").run(ctx(instance, clock), {"businessDate": "yesterday"})
    assert e.value.code == "VALIDATION_ERROR"


def plant_routing(db):
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": n, "room_type": "KING", "floor": f, "status": "Clean"}
                            for n, f in (("101", 1), ("201", 2), ("401", 4), ("501", 5), ("502", 5))])
    db["staff"].insert_all([
        {"hotel_id": "demo", "staff_id": "ana", "name": "Ana", "role": "maintenance", "skills": "plumbing;electric",
         "shift_start": "07:00", "shift_end": "15:00"},
        {"hotel_id": "demo", "staff_id": "ben", "name": "Ben", "role": "maintenance", "skills": "plumbing",
         "shift_start": "07:00", "shift_end": "15:00"},
        {"hotel_id": "demo", "staff_id": "eve", "name": "Eve", "role": "maintenance", "skills": "plumbing;electric",
         "shift_start": "22:00", "shift_end": "06:00"}])  # off shift at 10:00
    # where they are and how busy: ana on floor 5, ben on floor 4, two open tasks each (one slot left)
    db["tasks"].insert_all([
        {"hotel_id": "demo", "task_id": f"T-old-{who}{k}", "type": "x", "room_number": room, "priority": "normal",
         "created_at": f"2026-11-24T08:0{k}", "status": "in_progress", "assignee": who}
        for who, room in (("ana", "502"), ("ben", "401")) for k in range(2)])
    db["tasks"].insert_all([
        # greedy (each task in turn to its cheapest person) gives T-1 to ana, and then nobody can do T-2
        {"hotel_id": "demo", "task_id": "T-1", "type": "leak", "room_number": "501", "priority": "normal",
         "required_skill": "plumbing", "created_at": "2026-11-24T09:00", "status": "open"},
        {"hotel_id": "demo", "task_id": "T-2", "type": "socket", "room_number": "501", "priority": "normal",
         "required_skill": "electric", "created_at": "2026-11-24T09:01", "status": "open"},
        {"hotel_id": "demo", "task_id": "T-3", "type": "hvac", "room_number": "201", "priority": "normal",
         "required_skill": "hvac", "created_at": "2026-11-24T09:02", "status": "open"}])


def test_task_routing_finds_the_optimal_assignment_and_says_why_not(instance, clock):
    plant_routing(instance.db())
    r = registry.get("task-routing").run(ctx(instance, clock), {"at": "10:00"})
    pairs = {(a["taskId"], a["staffId"]) for a in r.outputs["assignments"]}
    # the optimum: only ana can do electric and she has one slot left, so T-2 -> ana and
    # T-1 -> ben one floor away (eve, who could, is off shift)
    assert pairs == {("T-2", "ana"), ("T-1", "ben")}
    assert r.outputs["unassigned"] == [{"taskId": "T-3", "reason": "nobody has the skill hvac"}]
    assert [a.type for a in r.actions] == ["UPDATE_PMS", "UPDATE_PMS"]
    night = registry.get("task-routing").run(ctx(instance, clock), {"at": "23:00"})
    assert {(a["taskId"], a["staffId"]) for a in night.outputs["assignments"]} <= {("T-1", "eve"), ("T-2", "eve")}


def test_the_runner_applies_actions_with_the_outbox_and_logs_the_run(instance, clock):
    plant_routing(instance.db())
    out = runner.run(instance, "task-routing", {"at": "10:00"}, hotel_id="demo", role="staff", actor="s-1")
    assert out["status"] == "success" and len(out["actionsTriggered"]) == 2
    db = instance.db()
    assert dict(db.execute("SELECT task_id, assignee FROM tasks WHERE task_id IN ('T-1', 'T-2')").fetchall()) == \
        {"T-1": "ben", "T-2": "ana"}
    kinds = [r[0] for r in db.execute("SELECT kind FROM outbox WHERE kind = 'pms.update'")]
    assert kinds == ["pms.update", "pms.update"]
    log = db.execute("SELECT model_id, status, actions FROM ai_interactions").fetchall()
    assert log == [("task-routing", "SUCCESS", 2)]


@pytest.fixture
def fake_models(monkeypatch):
    """Test-only models (tests/fakemodels.py): overrunning, CPU-bound, memory-hungry, raising, proposing tasks."""
    import fakemodels

    specs = dict(registry.specs())
    for name in ("slow", "spin", "hog", "boom", "tasker"):
        specs[name] = ModelSpec(id=name, run=getattr(fakemodels, name), roles=frozenset({"staff"}), reads=())
    monkeypatch.setattr(registry, "specs", lambda: specs)
    return specs


def test_a_timeout_returns_timeout_and_its_late_actions_are_never_applied(instance, fake_models):
    mark = instance.root / "finished"
    out = runner.run(instance, "slow", {"seconds": 1.0, "mark": str(mark)}, hotel_id="demo", role="staff",
                     timeout=0.3)
    assert out["status"] == "timeout" and out["error"]["code"] == "TIMEOUT" and out["actionsTriggered"] == []
    time.sleep(1.5)  # past the time the model would have finished: it was stopped, not abandoned
    assert not mark.exists()
    assert instance.db().execute("SELECT count(*) FROM tasks").fetchone()[0] == 0
    out = runner.run(instance, "boom", {}, hotel_id="demo", role="staff")
    # the exception's text stays in the log: a guest's screen never shows paths or tables
    assert out["status"] == "error" and out["error"]["code"] == "MODEL_ERROR" and "model bug" not in json.dumps(out)
    assert out["error"]["ref"] in out["error"]["message"]
    out = runner.run(instance, "tasker", {}, hotel_id="demo", role="staff")
    assert [a["type"] for a in out["actionsTriggered"]] == ["CREATE_TASK", "SCHEDULE_MAINTENANCE"]
    db = instance.db()
    assert db.execute("SELECT count(*) FROM tasks WHERE source = 'tasker'").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM work_orders WHERE type = 'preventive'").fetchone()[0] == 1
    assert [r[0] for r in db.execute("SELECT status FROM ai_interactions ORDER BY id")] == ["TIMEOUT", "ERROR",
                                                                                          "SUCCESS"]


def test_a_model_that_never_returns_is_killed_and_the_next_run_gets_a_fresh_worker(instance, fake_models):
    import os

    pidfile = instance.root / "spin.pid"
    out = runner.run(instance, "spin", {"pidfile": str(pidfile)}, hotel_id="demo", role="staff", timeout=1.0)
    assert out["status"] == "timeout"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # SIGKILLed by the runner; reaped at once
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the worker {pid} still runs after its timeout")
    assert runner.run(instance, "tasker", {}, hotel_id="demo", role="staff")["status"] == "success"


def test_a_model_past_its_memory_budget_fails_alone(instance, fake_models):
    out = runner.run(instance, "hog", {"blocks": 64}, hotel_id="demo", role="staff", timeout=20)  # 4 GiB
    assert out["status"] == "error" and out["error"]["code"] == "MODEL_RESOURCES"
    assert runner.run(instance, "hog", {"blocks": 1}, hotel_id="demo", role="staff")["status"] == "success"
    log = instance.db().execute("SELECT status FROM ai_interactions WHERE model_id = 'hog' ORDER BY id").fetchall()
    assert log == [("ERROR",), ("SUCCESS",)]


def test_the_api_checks_session_role_and_model_and_runs_batches(client, login, instance, fake_models):
    plant_folio(instance.db())
    staff = login("staff")
    sid = client.get("/api/session", headers=staff).get_json()["sessionId"]
    r = client.post("/api/ai/trigger", headers=staff,
                    json={"sessionId": sid, "modelId": "night-audit", "requestPayload": {"businessDate": D}})
    assert r.status_code == 200 and len(r.get_json()["findings"]) == 6
    guest = login("guest")
    gsid = client.get("/api/session", headers=guest).get_json()["sessionId"]
    r = client.post("/api/ai/trigger", headers=guest, json={"sessionId": gsid, "modelId": "night-audit"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "FORBIDDEN"
    r = client.post("/api/ai/trigger", headers=staff, json={"sessionId": gsid, "modelId": "night-audit"})
    assert r.status_code == 403  # someone else's session id
    r = client.post("/api/ai/trigger", headers=staff, json={"sessionId": sid, "modelId": "nope"})
    assert r.status_code == 404
    r = client.post("/api/ai/trigger", headers=staff, json={"sessionId": sid, "modelId": "night-audit",
                                                            "requestPayload": {"businessDate": "31.12."}})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"
    r = client.post("/api/ai/trigger", headers=staff,
                    json={"sessionId": sid, "modelIds": ["tasker", "boom", "night-audit"], "requestPayload": {}})
    results = {x["modelId"]: x["status"] for x in r.get_json()["results"]}
    assert results == {"tasker": "success", "boom": "error", "night-audit": "success"}
    r = client.post("/api/ai/trigger?stream=1", headers=staff,
                    json={"sessionId": sid, "modelIds": ["tasker", "night-audit"], "requestPayload": {}})
    assert r.headers["Content-Type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in r.get_data(as_text=True).splitlines() if line.startswith("data: ")]
    assert sorted(e.get("modelId", "done") for e in events) == ["done", "night-audit", "tasker"]


def booking(conf, arrival, nights, booked, status="CheckedOut", canceled=None, rate=100.0):
    from datetime import date, timedelta

    a = date.fromisoformat(arrival)
    return {"hotel_id": "demo", "confirmation": conf, "arrival": arrival,
            "departure": (a + timedelta(days=nights)).isoformat(), "status": status, "booked_on": booked,
            "canceled_on": canceled, "nightly_rate": rate, "room_type": "KING", "adults": 2, "children": 0,
            "vip": 0, "currency": "EUR", "language": "en", "guest_name": ""}


def test_forecasting_with_a_known_pickup_pattern_is_exact_and_uses_only_what_was_known(instance, clock):
    from datetime import date, timedelta

    # every night of 2026: 10 rooms booked 30 days ahead, 5 more booked 3 days ahead
    rows, n = [], 0
    for k in range(200):
        night = date(2026, 1, 1) + timedelta(days=k)
        for i in range(15):
            lead = 30 if i < 10 else 3
            rows.append(booking(f"B{n}", night.isoformat(), 1, (night - timedelta(days=lead)).isoformat()))
            n += 1
    # known only later: a booking made after asOf, and one cancelled before asOf
    as_of = date(2026, 6, 1)
    rows.append(booking("LATE", "2026-06-10", 1, "2026-06-05"))
    rows.append(booking("CXL", "2026-06-10", 1, "2026-05-01", status="Canceled", canceled="2026-05-20"))
    instance.db()["reservations"].insert_all(rows)
    out = registry.get("forecasting").run(ctx(instance, clock), {"asOf": as_of.isoformat(), "horizonDays": 14})
    daily = {d["date"]: d for d in out.outputs["daily"]}
    assert len(daily) == 14
    for day in daily.values():
        lead = (date.fromisoformat(day["date"]) - as_of).days
        assert day["roomsOnBooks"] == (15 if lead <= 3 else 10)  # LATE and CXL are not on the books
        assert day["roomsOccupied"] == 15.0                        # the pickup pattern, exactly
        assert day["adr"] == 100.0 and day["revpar"] == round(15 * 100 / out.outputs["capacity"], 2)
    assert out.outputs["capacity"] == 15.0  # no rooms table: the most rooms ever occupied
    for method in ("additive", "multiplicative"):
        other = registry.get("forecasting").run(ctx(instance, clock), {"asOf": "2026-06-01", "method": method})
        assert {d["roomsOccupied"] for d in other.outputs["daily"]} == {15.0}
    with pytest.raises(Exception) as e:
        registry.get("forecasting").run(ctx(instance, clock), {"asOf": "2026-06-01", "horizonDays": 90})
    assert e.value.code == "VALIDATION_ERROR"


def test_the_bookings_dataset_imports_as_history(tmp_path, instance):
    from kiosk.property import bookings

    path = tmp_path / "bookings.csv"
    header = ("hotel,is_canceled,lead_time,arrival_date_year,arrival_date_month,arrival_date_week_number,"
              "arrival_date_day_of_month,stays_in_weekend_nights,stays_in_week_nights,adults,children,babies,meal,"
              "country,market_segment,distribution_channel,is_repeated_guest,previous_cancellations,"
              "previous_bookings_not_canceled,reserved_room_type,assigned_room_type,booking_changes,deposit_type,"
              "agent,company,days_in_waiting_list,customer_type,adr,required_car_parking_spaces,"
              "total_of_special_requests,reservation_status,reservation_status_date\n")
    path.write_text(header
                    + "City Hotel,0,10,2016,March,10,5,1,2,2,0,0,BB,PRT,Online TA,TA/TO,0,0,0,A,A,0,No Deposit,"
                      "9,NULL,0,Transient,98.5,0,1,Check-Out,2016-03-08\n"
                    + "City Hotel,1,40,2016,March,10,6,0,2,1,NA,0,BB,PRT,Groups,TA/TO,0,0,0,D,D,0,No Deposit,"
                      "9,NULL,0,Transient,80,0,0,Canceled,2016-02-01\n"
                    + "Resort Hotel,0,1,2016,March,10,6,0,1,1,0,0,BB,PRT,Direct,Direct,0,0,0,A,A,0,No Deposit,"
                      "NULL,NULL,0,Transient,50,0,0,Check-Out,2016-03-07\n")
    n = bookings.import_bookings(instance.db(), path, "demo", "City Hotel")
    assert n == 2
    rows = {r["status"]: r for r in instance.db().query("SELECT * FROM reservations")}
    out = rows["CheckedOut"]
    assert (out["arrival"], out["departure"], out["booked_on"], out["room_type"], out["nightly_rate"],
            out["segment"]) == ("2016-03-05", "2016-03-08", "2016-02-24", "A", 98.5, "Online TA")
    assert rows["Canceled"]["canceled_on"] == "2016-02-01" and rows["Canceled"]["children"] == 0


def test_timeouts_come_from_the_model_unless_the_config_overrides(instance, fake_models, monkeypatch):
    import dataclasses

    fake_models["slow"] = dataclasses.replace(fake_models["slow"], timeout_seconds=0.1)
    out = runner.run(instance, "slow", {}, hotel_id="demo")  # sleeps 1 s: only the model's own 0.1 s stops it
    assert out["status"] == "timeout"
    instance.config = instance.config.model_copy(update={"models": instance.config.models.model_copy(
        update={"timeout_seconds": {"slow": 60.0}})})  # generous: a loaded machine, not the timeout, decides
    assert runner.run(instance, "slow", {}, hotel_id="demo")["status"] == "success"
    real = [s for s in registry.specs().values() if s.id not in ("slow", "spin", "hog", "boom", "tasker")]
    assert len(real) == 12 and all(15 <= s.timeout_seconds <= 30 for s in real)
