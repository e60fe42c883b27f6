"""Sync down and the conflict rules (docs/conflicts.md), one test (or more) per rule.

Replicas are real SQLite files driven by the real push and pull code; the
transport is in-memory so that partitions are exact and runs are fast
(tests/test_sync_down_integration.py does the same over HTTP with real processes).
"""

from __future__ import annotations

import json
import os
import random
import re

import pytest
from replicas import HOTEL, Cloud, Site

from kiosk.clock import FakeClock
from kiosk.errors import ClockNotTrusted, TokenAlreadyUsed, TokenRevoked
from sync import conflicts as rules
from sync import pull
from sync.cloud import keys as cloud_keys
from sync.cloud import refdata

RANDOM_RUNS = int(os.environ.get("CONVERGENCE_RUNS", "12"))


@pytest.fixture
def cloud(tmp_path):
    return Cloud(tmp_path, FakeClock(1_780_000_000.0))


@pytest.fixture
def sites(tmp_path, cloud):
    return [Site(tmp_path, f"k{i}", cloud) for i in range(3)]


def converge(sites, rounds=3):
    for _ in range(rounds):
        for s in sites:
            s.online = True
            assert s.sync()["error"] is None
    for s in sites:
        assert s.pending() == 0


def assert_all_equal(cloud, sites):
    want_wo, want_t = cloud.work_orders(), cloud.tickets()
    for s in sites:
        assert s.work_orders() == want_wo, s.name
        assert s.tickets() == want_t, s.name


# --- the rules as pure functions -----------------------------------------------------------

@pytest.mark.parametrize("current, new, later, applies, rule, seen", [
    ("on_hold", "done", True, True, "work-order-state", "in_progress"),  # legal from what the closer saw
    ("open", "on_hold", True, False, "work-order-state", "in_progress"),
])
def test_status_rule_judges_a_concurrent_close_from_what_its_writer_saw(current, new, later, applies, rule, seen):
    a, b = "001000000000000-00000-a", "001000000000001-00000-b"
    d = rules.status_decision(current, a if later else b, new, b if later else a, seen)
    assert (d.apply, d.rule) == (applies, rule)


@pytest.mark.parametrize("current, new, later, applies, rule", [
    ("in_progress", "on_hold", True, True, None),
    ("in_progress", "on_hold", False, False, "field-lww"),
    ("in_progress", "done", False, True, "work-order-state"),   # a close wins over concurrent changes
    ("done", "on_hold", True, False, "work-order-state"),       # not silently reopened
    ("done", "in_progress", True, False, "work-order-state"),
    ("done", "reopened", True, True, None),                     # the explicit, later reopen
    ("done", "reopened", False, False, "work-order-state"),
    ("reopened", "done", False, False, "work-order-state"),     # an older close loses to a reopen
    ("open", "done", True, False, "work-order-state"),          # illegal from the cloud's status
    ("done", "cancelled", True, True, "field-lww"),
])
def test_status_rule(current, new, later, applies, rule):
    a, b = "001000000000000-00000-a", "001000000000001-00000-b"
    d = rules.status_decision(current, a if later else b, new, b if later else a)
    assert (d.apply, d.rule) == (applies, rule)


def test_field_rule_is_last_writer_wins_by_stamp_not_arrival():
    assert rules.field_decision("x", "001-00000-a", "y", "002-00000-b").apply
    d = rules.field_decision("x", "002-00000-a", "y", "001-00000-b")
    assert (d.apply, d.rule) == (False, "field-lww")
    assert not rules.field_decision("x", "002-00000-a", "x", "001-00000-b").rule  # same value: no conflict


# --- work orders ---------------------------------------------------------------------------

def test_same_work_order_edited_at_two_partitioned_kiosks_converges_with_conflict_on_both(cloud, sites):
    a, b, c = sites
    a.create_wo("WO-1", assignee="ana")
    converge(sites)
    a.online = b.online = False
    a.edit_wo("WO-1", status="in_progress", notes="started by a")
    b.edit_wo("WO-1", notes="parts ordered by b", priority="high")  # b's notes are stamped later
    converge(sites)
    assert_all_equal(cloud, sites)
    wo = cloud.work_orders()["WO-1"]
    assert wo == {"status": "in_progress", "assignee": "ana", "priority": "high", "notes": "parts ordered by b",
                  "description": ""}
    # a pushed first; b's later-stamped notes replaced a's value that b had never seen:
    # a conflict, recorded in the cloud, at b (from its push result) and at a and c (by pull)
    cloud_side = list(cloud.db.query("SELECT * FROM conflicts WHERE entity_id = 'WO-1'"))
    assert [(x["field"], x["rule"]) for x in cloud_side] == [("notes", "field-lww")]
    for site, source in ((a, "pull"), (b, "push"), (c, "pull")):
        mine = [x for x in site.conflicts() if x["entity_id"] == "WO-1"]
        assert [(x["field"], x["rule"], x["source"]) for x in mine] == [("notes", "field-lww", source)], site.name
        assert mine[0]["local_version"]["value"] == "parts ordered by b"
        assert json.loads(mine[0]["remote_version"])["value"] == "started by a"


def test_done_is_not_silently_reopened_whatever_the_arrival_order(cloud, sites):
    a, b, _ = sites
    a.create_wo("WO-2")
    a.edit_wo("WO-2", status="in_progress")
    converge(sites)
    a.online = b.online = False
    a.edit_wo("WO-2", status="done")
    b.edit_wo("WO-2", status="on_hold")  # later stamp, but concurrent with the close
    b.online = True
    b.sync()  # b arrives first: on_hold applies
    assert cloud.work_orders()["WO-2"]["status"] == "on_hold"
    converge(sites)
    assert cloud.work_orders()["WO-2"]["status"] == "done"
    assert_all_equal(cloud, sites)
    rule = [x for x in b.conflicts() if x["field"] == "status"]
    assert rule == [] or rule[0]["rule"] == "work-order-state"
    assert any(x["rule"] == "work-order-state" for x in cloud.db.query("SELECT rule FROM conflicts"))
    # an explicit reopen, made after seeing the close, is kept
    b.edit_wo("WO-2", status="reopened")
    converge(sites)
    assert {s.work_orders()["WO-2"]["status"] for s in sites} == {"reopened"}


def test_a_kiosk_with_a_wrong_clock_still_orders_causally_later_edits_after(tmp_path, cloud):
    ahead = Site(tmp_path, "ahead", cloud, skew=+7200)
    behind = Site(tmp_path, "behind", cloud, skew=-7200)
    ahead.create_wo("WO-3")
    ahead.edit_wo("WO-3", notes="written 2 h in the future")
    converge([ahead, behind])
    assert behind.work_orders()["WO-3"]["notes"] == "written 2 h in the future"
    # behind's wall clock is 4 h earlier, but it has seen ahead's stamp: its edit sorts after
    behind.edit_wo("WO-3", notes="answered after reading it")
    converge([ahead, behind])
    assert {s.work_orders()["WO-3"]["notes"] for s in (ahead, behind)} == {"answered after reading it"}
    assert cloud.work_orders()["WO-3"]["notes"] == "answered after reading it"
    stamp = behind.db.execute("SELECT max(hlc) FROM work_order_history WHERE field = 'notes' AND by LIKE"
                              " 'staff@behind'").fetchone()[0]
    assert int(stamp.split("-")[0]) / 1000 > behind.clock.now() + 3600  # its HLC ran ahead of its clock


# --- tickets -------------------------------------------------------------------------------

def test_tickets_for_the_same_problem_at_two_kiosks_merge_into_one(cloud, sites):
    a, b, _ = sites
    a.online = b.online = False
    first = a.ticket("Leaking tap in the bathroom")["ticket"]["ticketId"]
    second = b.ticket("Leaking tap in the bathroom")["ticket"]["ticketId"]
    other = b.ticket("Broken lamp", room="102")["ticket"]["ticketId"]
    converge(sites)
    assert_all_equal(cloud, sites)
    merged = cloud.tickets()
    assert merged[second] == first and merged[first] is None and merged[other] is None
    assert [x["rule"] for x in b.conflicts()] == ["ticket-fingerprint"]


# --- tokens --------------------------------------------------------------------------------

def test_one_time_token_used_at_two_partitioned_kiosks_is_flagged_as_a_replay(cloud, sites):
    a, b, c = sites
    cloud.key()
    converge(sites)  # every kiosk now trusts the cloud's key
    token = cloud.token("guest")
    a.online = b.online = False
    first = a.scan(token)
    a.tick(30)
    b.tick(60)
    second = b.scan(token)  # partitioned: b cannot know
    converge(sites)
    for s in (a, b):
        events = s.security_events()
        assert [e["kind"] for e in events] == ["TOKEN_REPLAY"], s.name
    assert a.session_ended(first["sessionId"]) is None            # the earliest keeps its session
    assert b.session_ended(second["sessionId"]) == "token_replay"  # the later one is ended
    assert [e["kind"] for e in cloud.db.query("SELECT kind FROM security_events")] == ["TOKEN_REPLAY"]
    with pytest.raises(TokenAlreadyUsed):
        c.scan(token)  # c learned both consumptions by pull: union


def test_a_revocation_in_the_cloud_stops_the_token_at_every_kiosk_after_their_pull(cloud, sites):
    cloud.key()
    converge(sites)
    token = cloud.token("staff", reusable=True)
    opened = sites[0].scan(token)
    jti = __import__("jwt").decode(token, options={"verify_signature": False})["jti"]
    cloud_keys.revoke_token(cloud.db, HOTEL, jti, cloud.clock.now())
    converge(sites)
    for s in sites:
        with pytest.raises(TokenRevoked):
            s.scan(token)
    assert sites[0].session_ended(opened["sessionId"]) == "revoked"


def test_trust_key_rotation_new_kid_accepted_retired_kid_refused(cloud, sites):
    old = cloud.key()
    converge(sites)
    old_token = cloud.token("guest", reusable=True)
    sites[0].scan(old_token)
    new = cloud.key()
    cloud_keys.retire(cloud.db, old["kid"], cloud.clock.now())
    assert cloud.token("guest").split(".")[0] != old_token.split(".")[0]  # signed by the new kid
    converge(sites)
    for s in sites:
        assert s.scan(cloud.token("guest"))["success"]
        with pytest.raises(Exception) as e:
            s.scan(old_token)
        assert e.value.code == "INVALID_TOKEN" and e.value.details["reason"] == "unknown_kid"
    assert new["kid"] != old["kid"]


def test_a_clock_earlier_than_the_trust_list_refuses_tokens(cloud, sites):
    cloud.key()
    converge(sites)
    token = cloud.token("guest", reusable=True)
    s = sites[0]
    s.clock.t = cloud.clock.now() - 3600  # booted with a clock an hour behind the key's timestamp
    with pytest.raises(ClockNotTrusted):
        s.scan(token)
    s.clock.t = cloud.clock.now() - 20  # within the tolerance (and the token leeway)
    assert s.scan(token)["success"]


# --- reference data, staleness, pull atomicity ----------------------------------------------

ROOMS = [{"room_number": "101", "room_type": "KING", "floor": 1, "status": "Clean", "occupied": 0},
         {"room_number": "102", "room_type": "TWIN", "floor": 1, "status": "Dirty", "occupied": 1}]


def test_reference_data_from_the_pms_is_authoritative_and_deletions_come_down(cloud, sites):
    s = sites[0]
    s.db.execute("INSERT INTO rooms (hotel_id, room_number, room_type, floor, status) VALUES (?, '101', 'X', 9,"
                 " 'Dirty')", [HOTEL])
    out = refdata.import_tables(cloud.db, HOTEL, {"rooms": ROOMS}, cloud.clock.now())
    assert out["rooms"] == {"added": 2, "changed": 0, "removed": 0, "unchanged": 0}
    converge([s])
    rooms = {r["room_number"]: r for r in s.db.query("SELECT * FROM rooms WHERE hotel_id = ?", [HOTEL])}
    assert rooms["101"]["room_type"] == "KING" and rooms["101"]["floor"] == 1  # the local edit is replaced
    again = refdata.import_tables(cloud.db, HOTEL, {"rooms": ROOMS[1:]}, cloud.clock.now())
    assert again["rooms"] == {"added": 0, "changed": 0, "removed": 1, "unchanged": 1}
    converge([s])
    assert [r[0] for r in s.db.execute("SELECT room_number FROM rooms WHERE hotel_id = ?", [HOTEL])] == ["102"]


def test_staleness_is_reported_after_the_configured_age(cloud, sites, monkeypatch):
    from kiosk import sync_status as status

    s = sites[0]
    assert status.summary(s.db, HOTEL, now=s.clock.now(), stale_after=3600)["stale"] is True  # never heard
    converge([s])
    fresh = status.summary(s.db, HOTEL, now=s.clock.now(), stale_after=3600)
    assert fresh["stale"] is False and fresh["lastHeardAt"]
    later = status.summary(s.db, HOTEL, now=s.clock.now() + 3601, stale_after=3600)
    assert later["stale"] is True and later["secondsSinceHeard"] > 3600


def test_a_page_is_applied_with_its_cursor_or_not_at_all(cloud, sites, monkeypatch):
    s = sites[0]
    refdata.import_tables(cloud.db, HOTEL, {"rooms": [dict(ROOMS[0], room_number=str(100 + i))
                                                      for i in range(120)]}, cloud.clock.now())
    from kiosk.property import tables
    real = tables.upsert
    calls = {"n": 0}

    def crash_on_the_70th(db, hotel, table, data):
        calls["n"] += 1
        if calls["n"] == 70:
            raise RuntimeError("power cut")
        real(db, hotel, table, data)

    monkeypatch.setattr(tables, "upsert", crash_on_the_70th)
    with pytest.raises(RuntimeError):
        s.puller.pull()
    # page 1 (50 rows) committed with its cursor; page 2 rolled back, rows and cursor
    assert s.db.execute("SELECT count(*) FROM rooms").fetchone()[0] == 50
    assert pull.cursor(s.db, HOTEL) == 50
    monkeypatch.setattr(tables, "upsert", real)
    s.reopen()
    s.puller.pull()
    assert s.db.execute("SELECT count(*) FROM rooms").fetchone()[0] == 120


# --- randomized convergence ----------------------------------------------------------------

def random_run(tmp_path, seed: int, n_sites: int = 3, steps: int = 60) -> None:
    rng = random.Random(seed)
    root = tmp_path / f"run{seed}"
    root.mkdir()
    cloud = Cloud(root, FakeClock(1_780_000_000.0))
    sites = [Site(root, f"k{i}", cloud, skew=rng.choice([-7200, 0, 0, 7200])) for i in range(n_sites)]
    wos = [f"WO-{i}" for i in range(4)]
    sites[0].create_wo(wos[0])
    cloud.key()
    tokens = [cloud.token("guest") for _ in range(3)]
    cloud.clock.advance(3 * 3600)  # so that kiosks 2 h behind are still later than the key and tokens
    converge(sites)
    for step in range(steps):
        cloud.clock.advance(rng.uniform(0.1, 5))
        s = rng.choice(sites)
        s.tick(0)
        r = rng.random()
        known = list(s.work_orders())
        try:
            if r < 0.15:
                s.online = not s.online  # partition or heal
            elif r < 0.22:
                s.reopen()  # restart
            elif r < 0.30 and len(known) < len(wos):
                s.create_wo(f"WO-{len(known)}-{s.name}-{step}")
            elif r < 0.34:
                s.scan(rng.choice(tokens))
            elif r < 0.40:
                s.ticket(rng.choice(["Leaking tap", "Broken lamp", "No hot water"]), room=rng.choice(["101", "102"]))
            elif r < 0.85 and known:
                wo = rng.choice(known)
                field = rng.choice(["status", "assignee", "priority", "notes"])
                value = {"status": rng.choice(["assigned", "in_progress", "on_hold", "done", "reopened", "cancelled"]),
                         "assignee": rng.choice(["ana", "ben", "eve"]),
                         "priority": rng.choice(["low", "normal", "high"]),
                         "notes": f"note {step} from {s.name}"}[field]
                s.edit_wo(wo, **{field: value})
            else:
                s.sync()
        except Exception as e:  # an edit the local state machine refuses is fine; nothing else is
            assert getattr(e, "code", None) in ("INVALID_TRANSITION", "VALIDATION_ERROR", "TOKEN_ALREADY_USED"), e
    converge(sites)
    converge(sites)
    assert_all_equal(cloud, sites)
    uses = {(r[0], r[1]) for r in cloud.db.execute("SELECT jti, kiosk_id FROM consumptions")}
    for s in sites:
        known = {(r[0], s.name) for r in s.db.execute("SELECT jti FROM consumed_tokens")}
        known |= {(r[0], r[1]) for r in s.db.execute("SELECT jti, kiosk_id FROM remote_consumptions")}
        assert known == uses, s.name  # consumed tokens merged by union everywhere
    return cloud.db.execute("SELECT count(*) FROM conflicts").fetchone()[0]


@pytest.mark.parametrize("seed", range(RANDOM_RUNS))
def test_randomized_edits_partitions_and_restarts_always_converge(tmp_path, seed):
    random_run(tmp_path, seed)


@pytest.mark.slow
def test_randomized_convergence_200_runs(tmp_path):
    conflicts = [random_run(tmp_path, seed, n_sites=3 + seed % 3, steps=100) for seed in range(1000, 1200)]
    assert sum(conflicts) > 200  # the runs do make concurrent writes, not just serial ones


def test_the_rules_table_in_the_docs_is_the_rules_in_the_code():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "conflicts.md").read_text()
    documented = re.findall(r"^\| `([a-z-]+)` \|", text, re.M)
    assert documented == list(rules.RULES)


def test_cloud_imports_a_pms_export_all_or_nothing_and_a_new_kiosk_fills_itself(tmp_path, cloud):
    from click.testing import CliRunner

    from sync.cloud.cli import main as cloud_cli

    export = tmp_path / "export"
    export.mkdir()
    (export / "rooms.csv").write_text("room_number,room_type,floor,status,occupied,wing\n"
                                      "101,KING,1,Clean,0,east\n102,TWIN,1,Dirty,1,east\n")
    (export / "reservations.csv").write_text(
        "confirmation,guest_name,room_number,arrival,departure,status,adults,children,nightly_rate\n"
        "R1,Ada Lovelace,101,2026-11-24,2026-11-26,InHouse,2,0,120.50\n")
    runner = CliRunner()
    bad = export / "staff.csv"
    bad.write_text("staff_id,name,role,max_credits\nS1,Eve,housekeeping,lots\n")
    r = runner.invoke(cloud_cli, ["--data-dir", str(tmp_path), "data", "import", str(export), "--hotel", HOTEL])
    assert r.exit_code == 1 and "staff.csv line 2, column 'max_credits'" in r.output
    assert cloud.db.execute("SELECT count(*) FROM ref_data").fetchone()[0] == 0  # nothing half-imported
    bad.unlink()
    r = runner.invoke(cloud_cli, ["--data-dir", str(tmp_path), "data", "import", str(export), "--hotel", HOTEL])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[-1])["rooms"]["added"] == 2
    fresh = Site(tmp_path, "new-kiosk", cloud)
    converge([fresh])
    res = dict(next(fresh.db.query("SELECT * FROM reservations WHERE confirmation = 'R1'")))
    assert (res["guest_name"], res["nightly_rate"], res["adults"]) == ("Ada Lovelace", 120.5, 2)
    assert fresh.db.execute("SELECT count(*) FROM rooms").fetchone()[0] == 2


def test_a_wrong_clock_does_not_lock_the_lobby_out_by_the_rate_limit(cloud, sites):
    cloud.key()
    converge(sites)
    s = sites[0]
    token = cloud.token("guest", reusable=True)
    s.clock.t = cloud.clock.now() - 3600
    svc = __import__("kiosk.scan", fromlist=["ScanService"]).ScanService(s.inst, s.inst.load_keys())
    for _ in range(s.inst.config.scan.max_failures + 5):
        with pytest.raises(ClockNotTrusted):
            svc.scan(s.db, {"qrToken": token, "hotelId": HOTEL}, client="lobby")
    s.clock.t = cloud.clock.now()  # NTP fixed it: the very next scan works
    assert svc.scan(s.db, {"qrToken": token, "hotelId": HOTEL}, client="lobby")["success"]
