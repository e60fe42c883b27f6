"""The hotel's local time (``property.timezone``): shifts, "today" and the agent's schedule.

The instance here is a hotel in New York (UTC-5, UTC-4 in summer).  Only the clock is faked.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import loaded
import pytest
from procs import kiosk
from test_models import D, plant_folio

from kiosk import config as config_mod
from kiosk import queue as work_queue
from kiosk.errors import ConfigError
from kiosk.models import registry, runner
from kiosk.models.base import Context

NY = "America/New_York"


def at(text: str) -> float:
    """Epoch seconds of a UTC time ``YYYY-MM-DDTHH:MM``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def cfg(tmp_path):  # conftest's instance, app and client, for a hotel in New York
    return config_mod.load(None, env={}, overrides={
        "data_dir": str(tmp_path / "kiosk"),
        "property": {"hotels": ["demo", "harbor"], "issuer": "demo", "kiosk_id": "kiosk-test", "timezone": NY},
        **loaded.overrides(),
    })


def plant_staff(db):
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": "101", "room_type": "KING", "floor": 1,
                             "status": "Dirty"}])
    db["staff"].insert_all([
        {"hotel_id": "demo", "staff_id": "day", "name": "Dana", "role": "housekeeping",
         "skills": "cleaning;plumbing", "shift_start": "07:00", "shift_end": "15:00"},
        {"hotel_id": "demo", "staff_id": "night", "name": "Nico", "role": "housekeeping",
         "skills": "cleaning;plumbing", "shift_start": "22:00", "shift_end": "06:00"},
        {"hotel_id": "demo", "staff_id": "early", "name": "Emil", "role": "maintenance",
         "skills": "electric", "shift_start": "08:00", "shift_end": "09:00"}])


def on_shift(db, now: float) -> set[str]:
    return {p["id"] for p in work_queue.people(db, "demo", now, NY) if p["onShift"]}


# --- the three places that ask who is on shift -----------------------------------------------------

def test_task_routing_judges_shifts_at_the_hotels_local_time(instance, clock):
    db = instance.db()
    plant_staff(db)
    db["tasks"].insert({"hotel_id": "demo", "task_id": "T-1", "type": "leak", "room_number": "101",
                        "priority": "normal", "required_skill": "plumbing", "created_at": "2027-01-15T12:00",
                        "status": "open"})
    clock.t = at("2027-01-15T21:00")  # 16:00 in New York: the day shift went home
    off = runner.run(instance, "task-routing", {}, hotel_id="demo", role="staff", actor="s-1")
    assert off["outputs"]["assignments"] == []
    assert off["outputs"]["unassigned"] == [{"taskId": "T-1", "reason": "nobody on shift with room for more work"}]
    clock.t = at("2027-01-15T11:00")  # 06:00 in New York: the night shift is over, the day's not begun
    assert runner.run(instance, "task-routing", {}, hotel_id="demo", role="staff", actor="s-1")["outputs"][
        "assignments"] == []
    clock.t = at("2027-01-15T13:00")  # 08:00 in New York
    on = runner.run(instance, "task-routing", {}, hotel_id="demo", role="staff", actor="s-1")
    assert [(a["taskId"], a["staffId"]) for a in on["outputs"]["assignments"]] == [("T-1", "day")]
    assert db.execute("SELECT assignee FROM tasks WHERE task_id = 'T-1'").fetchone()[0] == "day"


def test_the_housekeeping_plan_deals_rooms_to_attendants_on_shift_locally(instance, clock):
    plant_staff(instance.db())
    clock.t = at("2027-01-15T13:00")  # 08:00 in New York
    on = runner.run(instance, "housekeeping", {}, hotel_id="demo", role="staff", actor="s-1")["outputs"]
    assert [(a["staffId"], [r["roomNumber"] for r in a["rooms"]]) for a in on["assignments"]] == [("day", ["101"])]
    clock.t = at("2027-01-15T17:00")  # 12:00 in New York
    noon = runner.run(instance, "housekeeping", {}, hotel_id="demo", role="staff", actor="s-1")["outputs"]
    assert [a["staffId"] for a in noon["assignments"]] == ["day"]
    for utc in ("2027-01-15T21:00", "2027-01-15T11:00"):  # 16:00 and 06:00 in New York
        clock.t = at(utc)
        off = runner.run(instance, "housekeeping", {}, hotel_id="demo", role="staff", actor="s-1")["outputs"]
        assert off["assignments"] == [] and [r["reason"] for r in off["unassigned"]] == ["no attendant on shift"]


def test_the_staff_queue_lists_who_is_on_shift_locally(client, login, instance, clock):
    plant_staff(instance.db())
    clock.t = at("2027-01-15T13:00")  # 08:00 in New York
    people = client.get("/api/staff/tasks", headers=login("staff", user="day")).get_json()["people"]
    assert [(p["id"], p["onShift"]) for p in people] == [("day", True), ("early", True), ("night", False)]
    clock.t = at("2027-01-15T21:00")  # 16:00 in New York
    people = client.get("/api/staff/tasks", headers=login("staff", user="day")).get_json()["people"]
    assert not any(p["onShift"] for p in people)


def test_a_night_shift_crosses_the_hotels_midnight(instance):
    db = instance.db()
    plant_staff(db)
    assert on_shift(db, at("2027-01-16T02:59")) == set()       # 21:59: not yet
    assert on_shift(db, at("2027-01-16T03:00")) == {"night"}   # 22:00
    assert on_shift(db, at("2027-01-16T05:30")) == {"night"}   # 00:30, the next local day
    assert on_shift(db, at("2027-01-16T10:59")) == {"night"}   # 05:59
    assert on_shift(db, at("2027-01-16T11:00")) == set()       # 06:00: over
    assert on_shift(db, at("2027-01-16T12:00")) == {"day"}     # 07:00


def test_summer_time_comes_from_the_zone_database(instance):
    """New York went to summer time (UTC-4) at 02:00 on 8 March 2026 and back (UTC-5) on 1 November:
    the same UTC time is an hour later on the local clock in summer."""
    db = instance.db()
    plant_staff(db)  # "early" works 08:00-09:00 local
    assert "early" not in on_shift(db, at("2026-03-07T12:30"))  # 07:30 EST
    assert "early" in on_shift(db, at("2026-03-08T12:30"))      # 08:30 EDT, the day the clocks went forward
    assert "early" in on_shift(db, at("2026-10-31T12:30"))      # 08:30 EDT
    assert "early" not in on_shift(db, at("2026-11-01T12:30"))  # 07:30 EST, the day they went back
    ctx = Context(db=db, hotel_id="demo", now=at("2026-03-08T06:59"), tz=NY)  # 01:59 EST, just before the change
    assert ctx.hhmm() == "01:59"
    assert Context(db=db, hotel_id="demo", now=at("2026-03-08T07:00"), tz=NY).hhmm() == "03:00"  # 02:00 never was


# --- the hotel's day -------------------------------------------------------------------------------

def test_today_and_the_night_audits_business_date_are_the_hotels(instance):
    evening = Context(db=instance.db(), hotel_id="demo", now=at("2027-01-16T03:00"), tz=NY)  # 22:00 on the 15th
    assert evening.today() == date(2027, 1, 15)
    # a hotel in Tokyo audits at 03:00 local, 18:00 UTC the day before: the business date is local yesterday
    plant_folio(instance.db())
    tokyo = Context(db=instance.db(), hotel_id="demo", now=at(f"{D}T18:00"), tz="Asia/Tokyo")
    assert tokyo.today() == date(2026, 11, 24)  # D is 2026-11-23
    found = {f["type"] for f in registry.get("night-audit").run(tokyo, {}).findings}
    assert {"DUPLICATE_CHARGE", "MISSING_ROOM_CHARGE", "OPEN_BALANCE"} <= found


# --- the agent's schedule --------------------------------------------------------------------------

def test_scheduled_models_run_at_the_hotels_local_time(instance):
    from agent.runner import Agent

    sched = Agent(instance, transport=None, device_id="kiosk-test").scheduler()
    job = sched.get_job("model:night-audit:03:00")
    assert str(job.trigger.timezone) == NY
    # 03:00 local on both sides of the change to summer time: 08:00 UTC, then 07:00 UTC
    first = job.trigger.get_next_fire_time(None, datetime(2026, 3, 7, tzinfo=UTC))
    second = job.trigger.get_next_fire_time(None, datetime(2026, 3, 8, tzinfo=UTC))
    assert [first.astimezone(UTC).hour, second.astimezone(UTC).hour] == [8, 7]


# --- the setting -----------------------------------------------------------------------------------

def test_the_zone_defaults_to_utc():
    assert config_mod.load(None, env={}).property.timezone == "UTC"
    assert Context(db=None, hotel_id="demo", now=at("2027-01-16T03:00")).today() == date(2027, 1, 16)


@pytest.mark.parametrize("name", ["Mars/Olympus", "EST+5", "../../etc/passwd", "", "localtime"])
def test_an_unknown_zone_is_a_config_error_naming_the_key_and_file(tmp_path, name):
    f = tmp_path / "k.yaml"
    f.write_text(f"property:\n  timezone: {name!r}\n")
    with pytest.raises(ConfigError) as e:
        config_mod.load(f, env={})
    assert "property.timezone" in e.value.message and str(f) in e.value.message
    assert "unknown time zone" in e.value.message and e.value.details == {"key": "property.timezone", "file": str(f)}


def test_an_unknown_zone_stops_the_program_at_startup(tmp_path):
    p = kiosk("--data-dir", str(tmp_path / "k"), "init", env={"KIOSK__PROPERTY__TIMEZONE": "Europe/Atlantis"})
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert "CONFIG_ERROR" in p.stderr and "KIOSK__PROPERTY__TIMEZONE" in p.stderr
    assert "unknown time zone 'Europe/Atlantis'" in p.stderr
    assert not (tmp_path / "k").exists()
