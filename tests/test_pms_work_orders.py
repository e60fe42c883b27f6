"""Work orders from the PMS, imported into the cloud (sync/cloud/pms.py): they reach every kiosk
by pull, a re-import of the same file changes nothing, and a PMS change to an order a kiosk also
edited is judged by the rules of sync/conflicts.py and recorded as a conflict on both sides.

Replicas are real SQLite files driven by the real push and pull code (tests/replicas.py);
tests/test_chain_integration.py imports through ``kiosk-cloud data import`` with real processes.
"""

from __future__ import annotations

import itertools
import json

import pytest
from click.testing import CliRunner
from replicas import HOTEL, Cloud, Site

from kiosk.clock import FakeClock
from sync.cloud import refdata
from sync.cloud.cli import main as cloud_cli

_seq = itertools.count()
HEADER = "work_order_id,asset_id,room_number,opened_at,closed_at,type,description,status,assignee,priority,notes\n"


@pytest.fixture
def cloud(tmp_path):
    return Cloud(tmp_path, FakeClock(1_780_000_000.0))


@pytest.fixture
def sites(tmp_path, cloud):
    return [Site(tmp_path, f"k{i}", cloud) for i in range(3)]


def converge(sites, rounds=3):
    for _ in range(rounds):
        for s in sites:
            assert s.sync()["error"] is None
    assert all(s.pending() == 0 for s in sites)


def export(tmp_path, *rows: str, name="export"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "work_orders.csv").write_text(HEADER + "".join(r + "\n" for r in rows))
    return d


def pms_import(cloud, folder) -> dict:
    cloud.clock.advance(60)  # the PMS's export comes after what the kiosks did before it
    return refdata.import_tables(cloud.db, HOTEL, refdata.read_export(folder), cloud.clock.now())["work_orders"]


def head(cloud) -> int:
    return cloud.db.execute("SELECT count(*) FROM changes WHERE hotel_id = ?", [HOTEL]).fetchone()[0]


P1 = "WO-P1,,101,2026-11-24T08:00:00+00:00,,failure,AC rattles,open,,high,"
P2 = "WO-P2,A-7,102,2026-11-24T09:00:00+00:00,,preventive,filter,assigned,s-1,,"


def test_new_work_orders_reach_every_kiosk_and_a_reimport_changes_nothing(tmp_path, cloud, sites):
    counts = pms_import(cloud, export(tmp_path, P1, P2))
    assert counts == {"added": 2, "changed": 0, "removed": 0, "unchanged": 0, "conflicts": 0}
    converge(sites)
    for s in sites:
        assert s.work_orders()["WO-P1"] == {"status": "open", "assignee": None, "priority": "high", "notes": "",
                                            "description": "AC rattles"}
        assert s.work_orders()["WO-P2"]["assignee"] == "s-1"
    row = sites[0].db.execute("SELECT asset_id, room_number, type FROM work_orders WHERE work_order_id = 'WO-P2'"
                              ).fetchone()
    assert row == ("A-7", "102", "preventive")
    before = head(cloud)
    again = pms_import(cloud, export(tmp_path, P1, P2))
    assert again == {"added": 0, "changed": 0, "removed": 0, "unchanged": 2, "conflicts": 0}
    assert head(cloud) == before  # nothing logged, nothing for the kiosks to pull


def test_a_pms_change_after_a_kiosk_edit_wins_by_stamp_and_is_a_conflict_on_both_sides(tmp_path, cloud, sites):
    pms_import(cloud, export(tmp_path, P1))
    converge(sites)
    k1 = sites[1]
    k1.edit_wo("WO-P1", notes="k1: gasket ordered", status="assigned", assignee="ben")
    converge(sites)
    # the PMS had not seen the kiosk's edit: its notes replace the kiosk's (later stamp), a conflict
    counts = pms_import(cloud, export(tmp_path, P1 + "PMS: vendor visit Tue"))
    assert counts["changed"] == 1 and counts["conflicts"] == 1
    converge(sites)
    assert cloud.work_orders()["WO-P1"] == {"status": "assigned", "assignee": "ben", "priority": "high",
                                           "notes": "PMS: vendor visit Tue", "description": "AC rattles"}
    for s in sites:
        assert s.work_orders() == cloud.work_orders()
        assert [(c["entity_id"], c["field"], c["rule"]) for c in s.conflicts()] == [("WO-P1", "notes", "field-lww")]
    rows = cloud.db.execute("SELECT field, rule FROM conflicts WHERE hotel_id = ?", [HOTEL]).fetchall()
    assert rows == [("notes", "field-lww")]
    # a field the PMS did not change (status, assignee) keeps the kiosk's value on a later import too
    pms_import(cloud, export(tmp_path, P1 + "PMS: vendor visit Tue", "WO-X,,1,2026-11-24T08:00:00,,,x,open,,,"))
    assert cloud.work_orders()["WO-P1"]["status"] == "assigned"


def test_a_kiosk_edit_made_before_the_pms_change_loses_when_it_arrives_and_the_kiosk_records_why(
        tmp_path, cloud, sites):
    pms_import(cloud, export(tmp_path, P1))
    converge(sites)
    k0 = sites[0]
    k0.online = False
    k0.edit_wo("WO-P1", priority="low")  # offline, before the PMS's change
    pms_import(cloud, export(tmp_path, P1.replace(",high,", ",urgent,")))
    k0.online = True
    out = k0.sync()
    assert out["conflicts"] == 1  # in the push result: the PMS's later write was kept
    converge(sites)
    assert all(s.work_orders()["WO-P1"]["priority"] == "urgent" for s in sites)
    for s in sites:
        assert [(c["field"], c["rule"]) for c in s.conflicts()] == [("priority", "field-lww")]


def test_status_from_the_pms_may_skip_steps_but_a_done_order_is_only_reopened_explicitly(tmp_path, cloud, sites):
    pms_import(cloud, export(tmp_path, P1))
    converge(sites)
    done = P1.replace(",open,", ",done,").replace("+00:00,,", "+00:00,2026-11-25T10:00:00+00:00,")
    assert pms_import(cloud, export(tmp_path, done))["conflicts"] == 0  # open -> done: a state, not a step
    converge(sites)
    assert all(s.work_orders()["WO-P1"]["status"] == "done" for s in sites)
    counts = pms_import(cloud, export(tmp_path, P1.replace(",open,", ",in_progress,")))
    assert counts["conflicts"] == 1
    converge(sites)
    assert all(s.work_orders()["WO-P1"]["status"] == "done" for s in sites)
    assert [(c["field"], c["rule"]) for c in sites[2].conflicts()] == [("status", "work-order-state")]
    pms_import(cloud, export(tmp_path, P1.replace(",open,", ",reopened,")))
    converge(sites)
    assert all(s.work_orders()["WO-P1"]["status"] == "reopened" for s in sites)


def test_work_orders_born_at_a_kiosk_are_kept_and_may_be_named_by_the_pms_later(tmp_path, cloud, sites):
    k0 = sites[0]
    k0.create_wo("WO-K1", room_number="204", description="lamp")
    converge(sites)
    pms_import(cloud, export(tmp_path, P1))
    converge(sites)
    assert set(cloud.work_orders()) == {"WO-K1", "WO-P1"}
    pms_import(cloud, export(tmp_path, P1, "WO-K1,,204,2026-11-24T08:00:00+00:00,,failure,lamp,assigned,s-9,,"))
    converge(sites)
    assert all(s.work_orders()["WO-K1"]["assignee"] == "s-9" for s in sites)


def test_the_cli_imports_work_orders_all_or_nothing(tmp_path, cloud):
    d = export(tmp_path, P1, "WO-P9,,1,yesterday,,failure,x,open,,,")
    r = CliRunner().invoke(cloud_cli, ["--data-dir", str(tmp_path), "data", "import", str(d), "--hotel", HOTEL])
    assert r.exit_code == 1 and "work_orders.csv line 3, column 'opened_at'" in r.output
    d = export(tmp_path, P1, "W" * 65 + ",,1,2026-11-24T08:00:00,,failure,x,open,,,")
    r = CliRunner().invoke(cloud_cli, ["--data-dir", str(tmp_path), "data", "import", str(d), "--hotel", HOTEL])
    assert r.exit_code == 1 and "work_orders.csv line 3, column 'work_order_id'" in r.output
    assert cloud.db.execute("SELECT count(*) FROM work_orders").fetchone()[0] == 0
    d = export(tmp_path, P1)
    r = CliRunner().invoke(cloud_cli, ["--data-dir", str(tmp_path), "data", "import", str(d), "--hotel", HOTEL])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[-1])["work_orders"]["added"] == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg").new_database(f"pms{next(_seq)}")


def test_the_import_on_sqlite_and_postgresql(tmp_path, database):
    from sync.cloud import storage

    st = storage.open_storage(tmp_path / "cloud", database)
    st.prepare()
    db = st.connect()
    try:
        clock = FakeClock(1_780_000_000.0)
        counts = refdata.import_tables(db, HOTEL, refdata.read_export(export(tmp_path, P1, P2)), clock.now())
        assert counts["work_orders"]["added"] == 2
        db.execute("UPDATE work_orders SET notes = 'kiosk', field_hlc = '{}' WHERE work_order_id = 'WO-P1'")
        clock.advance(60)
        counts = refdata.import_tables(db, HOTEL, refdata.read_export(export(tmp_path, P1 + "pms", P2)), clock.now())
        assert counts["work_orders"] == {"added": 0, "changed": 1, "removed": 0, "unchanged": 1, "conflicts": 1}
        assert db.execute("SELECT notes, version FROM work_orders WHERE work_order_id = 'WO-P1'").fetchone() == \
            ("pms", 2)
        logged = [tuple(r) for r in db.execute("SELECT entity_type, entity_id FROM changes WHERE hotel_id = ?"
                                                 " ORDER BY seq", [HOTEL])]
        # WO-P1's first row went when its new state was logged (the log keeps an entity's newest)
        assert logged == [("work_order", "WO-P2"), ("conflict", logged[1][1]), ("work_order", "WO-P1")]
    finally:
        st.close()
