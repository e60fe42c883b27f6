"""Privacy retention (sync/cloud/guest_retention.py): the cloud erases a guest by itself some days
after their stay, exactly as ``kiosk-cloud guest erase`` does, with ``erased_by`` ``retention``.

A real cloud database (SQLite, and PostgreSQL where a throwaway server can run) with a fake
clock: a stay that ended 31 days ago is erased (the reservation, the guest's request, a
``guest_erasure`` change for kiosks), one that ended 29 days ago, an in-house one and another
hotel's are not; a second pass changes nothing; ``off`` disables it; two processes at once
erase each guest once; ``kiosk-cloud purge --privacy-retention 30d`` prints the counts and
``serve``'s thread does the same on its own.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta

import cloud_cli as cloud_cli_helper
import pytest
from harness import wait_for
from test_guest_erasure import HEADER, ROOMS, ticket

from kiosk.clock import FakeClock
from sync.cloud import cli as cloud_cli_module
from sync.cloud import devices, guest_retention, refdata, storage
from sync.cloud.apply import apply_push

NOW = datetime(2027, 3, 10, 15, 30, tzinfo=UTC).timestamp()
TODAY = date(2027, 3, 10)


def day(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


#: R-2001 ended 31 days ago (due), R-2002 29 days ago (not yet), R-2003 is in the house,
#: R-2004 was cancelled for a stay that would have ended 40 days ago (due), R-2005 ended exactly
#: 30 days ago (due: the 30th day after departure)
DEMO = HEADER + (
    f"R-2001,Olga Oldstay,101,{day(-34)},{day(-31)},CheckedOut,1,0,olga@example.org,+1 555 0101,100\n"
    f"R-2002,Rita Recent,102,{day(-31)},{day(-29)},CheckedOut,1,0,rita@example.org,+1 555 0102,100\n"
    f"R-2003,Ivan Inhouse,101,{day(-2)},{day(2)},InHouse,2,0,ivan@example.org,+1 555 0103,120\n"
    f"R-2004,Cora Cancel,102,{day(-42)},{day(-40)},Canceled,1,0,cora@example.org,+1 555 0104,90\n"
    f"R-2005,Eda Edge,102,{day(-33)},{day(-30)},CheckedOut,1,0,eda@example.org,+1 555 0105,90\n")
#: the same confirmation at another hotel, a recent stay: not touched
HARBOR = HEADER + f"R-2001,Hugo Harbor,101,{day(-5)},{day(-1)},CheckedOut,1,0,hugo@example.org,+1 555 0200,90\n"
DUE = [("demo", "R-2001"), ("demo", "R-2004"), ("demo", "R-2005")]
KEPT_NAMES = ("Rita Recent", "Ivan Inhouse", "Hugo Harbor")

_seq = iter(range(1, 10**9))


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request, tmp_path, monkeypatch):
    """A cloud holding the stays above, its CLI's clock at :data:`NOW`; ``cloud(*args)`` runs
    ``kiosk-cloud`` on it (CliRunner)."""
    url = None if request.param == "sqlite" else request.getfixturevalue("pg").new_database(f"gr{next(_seq)}")
    clock = FakeClock(NOW)
    monkeypatch.setattr(cloud_cli_module, "SystemClock", lambda: clock)
    run, data_dir = cloud_cli_helper.imported(tmp_path, url, ROOMS, {"demo": DEMO, "harbor": HARBOR})
    st = storage.open_storage(data_dir, url)
    st.prepare()
    db = st.connect()
    try:
        device = devices.authenticate(db, devices.add_device(db, "kiosk-demo", ["demo"], NOW))
        pushed = [ticket("T-O1", "R-2001", "Olga needs towels", "101"),
                  ticket("T-R1", "R-2002", "Rita wants a pillow", "102")]
        for e in pushed:
            e["createdAt"] = NOW - 40 * 86400
        assert {r["status"] for r in apply_push(db, device, pushed, NOW - 40 * 86400)} == {"applied"}
        run.db, run.st, run.clock, run.sqlite = db, st, clock, url is None
        yield run
    finally:
        st.close()


def names(db) -> dict[tuple[str, str], str]:
    return {(h, c): json.loads(d)["guest_name"] for h, c, d in db.execute(
        "SELECT hotel_id, entity_id, data FROM ref_data WHERE entity_type = 'reservation'").fetchall()}


def erasures(db) -> list[tuple]:
    return sorted(tuple(r) for r in db.execute(
        "SELECT hotel_id, confirmation, erased_by FROM guest_erasures").fetchall())


def erasure_changes(db) -> list[tuple]:
    return sorted(tuple(r) for r in db.execute(
        "SELECT hotel_id, entity_id FROM changes WHERE entity_type = 'guest_erasure'").fetchall())


def test_due_finds_stays_that_ended_the_retention_ago(cloud):
    assert guest_retention.due(cloud.db, NOW, 30) == DUE
    assert guest_retention.due(cloud.db, NOW, 30, limit=2) == DUE[:2]
    assert guest_retention.due(cloud.db, NOW, 41) == []
    assert guest_retention.due(cloud.db, NOW, 28) == sorted([*DUE, ("demo", "R-2002")])


def test_a_stay_ended_long_enough_ago_is_erased_and_the_rest_is_not(cloud):
    out = guest_retention.run(cloud.db, NOW, 30)
    assert {k: out[k] for k in ("days", "endedBy", "due", "erased", "skipped", "failed")} == {
        "days": 30, "endedBy": day(-30), "due": 3, "erased": 3, "skipped": 0, "failed": 0}
    got = names(cloud.db)
    assert {k: got[k] for k in DUE} == {k: "Erased guest" for k in DUE}
    assert {got[("demo", "R-2002")], got[("demo", "R-2003")], got[("harbor", "R-2001")]} == set(KEPT_NAMES)
    assert erasures(cloud.db) == [(h, c, "retention") for h, c in DUE]
    assert erasure_changes(cloud.db) == DUE  # what kiosks and hubs pull
    [(data,)] = cloud.db.execute("SELECT data FROM ref_data WHERE hotel_id = 'demo' AND entity_id = 'R-2001'"
                                 " AND entity_type = 'reservation'").fetchall()
    olga = json.loads(data)
    assert (olga["email"], olga["phone"], olga["departure"], olga["room_number"]) == (None, None, day(-31), "101")
    tickets = dict(cloud.db.execute("SELECT ticket_id, title FROM tickets").fetchall())
    assert tickets == {"T-O1": "(erased)", "T-R1": "Rita wants a pillow"}
    # the guest's export (access) sees the erased stay, as after `guest erase`
    doc = json.loads(cloud("guest", "export", "--hotel", "demo", "--confirmation", "R-2001").stdout)
    assert doc["reservations"][0]["details"]["guest_name"] == "Erased guest"

    before = (names(cloud.db), erasures(cloud.db),
              cloud.db.execute("SELECT COUNT(*), MAX(seq) FROM changes").fetchone()[:])
    cloud.clock.advance(3600)
    again = guest_retention.run(cloud.db, cloud.clock.now(), 30)
    assert (again["due"], again["erased"], again["failed"]) == (0, 0, 0)
    assert (names(cloud.db), erasures(cloud.db),
            cloud.db.execute("SELECT COUNT(*), MAX(seq) FROM changes").fetchone()[:]) == before


def test_a_guest_erased_by_hand_is_not_due_and_a_longer_stay_is_asked_again(cloud, monkeypatch):
    r = cloud("guest", "erase", "--hotel", "demo", "--confirmation", "R-2001", "--yes")
    assert r.exit_code == 0, r.output
    assert guest_retention.due(cloud.db, NOW, 30) == DUE[1:]
    # found due, then the PMS extended the stay before its turn: skipped, not erased
    with storage.transaction(cloud.db):
        refdata.merge_rows(cloud.db, "demo", "reservations", [{"confirmation": "R-2004", "departure": day(1)}], NOW)
    monkeypatch.setattr(guest_retention, "due", lambda db, now, days, limit=None: DUE[1:])
    out = guest_retention.run(cloud.db, NOW, 30)
    assert (out["due"], out["erased"], out["skipped"]) == (2, 1, 1)
    assert erasures(cloud.db) == [("demo", "R-2001", "cli"), ("demo", "R-2005", "retention")]
    assert names(cloud.db)[("demo", "R-2004")] == "Cora Cancel"


def test_without_a_departure_the_arrival_counts_and_a_stay_without_dates_is_never_due(cloud):
    with storage.transaction(cloud.db):  # a PMS read may send fewer fields than an export
        refdata.merge_rows(cloud.db, "harbor", "reservations", [
            {"confirmation": "N-1", "guest_name": "Nora Noshow", "arrival": day(-35), "status": "NoShow"},
            {"confirmation": "N-2", "guest_name": "Dina Nodate", "status": "Canceled"},
            {"confirmation": "N-3", "guest_name": "Bad Date", "departure": "soon"}], NOW)
    assert guest_retention.due(cloud.db, NOW, 30) == [*DUE, ("harbor", "N-1")]


def test_one_guest_that_fails_does_not_stop_the_others(cloud, monkeypatch):
    real = guest_retention.erasure.apply

    def apply(db, hotel_id, confirmation, now, **kw):
        if confirmation == "R-2004":
            raise RuntimeError("a bad row")
        return real(db, hotel_id, confirmation, now, **kw)

    monkeypatch.setattr(guest_retention.erasure, "apply", apply)
    out = guest_retention.run(cloud.db, NOW, 30)
    assert (out["due"], out["erased"], out["failed"]) == (3, 2, 1)
    assert erasures(cloud.db) == [("demo", "R-2001", "retention"), ("demo", "R-2005", "retention")]
    assert names(cloud.db)[("demo", "R-2004")] == "Cora Cancel"  # rolled back whole: tried again next pass
    monkeypatch.setattr(guest_retention.erasure, "apply", real)
    assert guest_retention.run(cloud.db, NOW, 30)["erased"] == 1


def test_two_processes_at_once_erase_each_guest_once(cloud):
    """Several workers' timers may run the pass at the same moment: under the hotel's lock each
    asks again, so the erasures add up to the guests due, never more."""
    start = threading.Barrier(2)
    results, errors = [], []

    def worker():
        db = None
        try:
            db = cloud.st.connect()  # this thread's own connection
            start.wait(timeout=30)
            results.append(guest_retention.run(db, NOW, 30))
        except Exception as e:  # reported below
            errors.append(e)
        finally:
            if db is not None and cloud.sqlite:
                db.conn.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(r["erased"] for r in results) == 3 and sum(r["failed"] for r in results) == 0, results
    assert erasures(cloud.db) == [(h, c, "retention") for h, c in DUE]


def test_a_hub_leaves_it_to_the_chain(cloud):
    r = cloud("link", "--cloud", "http://chain.invalid", "--device-id", "hub-1", "--credential", "x")
    assert r.exit_code == 0, r.output
    out = guest_retention.run(cloud.db, NOW, 30)
    assert out["hub"] is True and out["erased"] == 0 and erasures(cloud.db) == []


def test_the_purge_command_prints_the_counts_and_off_disables_it(cloud):
    r = cloud("purge", "--privacy-retention", "off")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["privacyRetention"] is None and erasures(cloud.db) == []

    for bad in ("12h", "0d", "soon"):
        r = cloud("purge", "--privacy-retention", bad)
        assert r.exit_code == 1 and r.stderr.startswith("error: VALIDATION_ERROR: --privacy-retention"), r.output
    assert erasures(cloud.db) == []

    r = cloud("purge", "--privacy-retention", "30d")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {k: out["privacyRetention"][k] for k in ("days", "due", "erased", "failed")} == {
        "days": 30, "due": 3, "erased": 3, "failed": 0}
    assert "changes" in out and "appliedEntries" in out  # the purge as before
    assert erasures(cloud.db) == [(h, c, "retention") for h, c in DUE]
    assert erasure_changes(cloud.db) == DUE  # logged at the (fake) now: not purged
    assert "Olga" not in r.stdout

    r = cloud("purge")  # the default is 30 days: nothing left to do
    assert r.exit_code == 0 and json.loads(r.stdout)["privacyRetention"]["due"] == 0, r.output


def test_serves_thread_erases_on_its_own(cloud):
    retainer = guest_retention.Retainer(cloud.st.connect, cloud.clock, 30, every=0.05).start()
    try:
        wait_for(lambda: len(erasures(cloud.db)) == 3, timeout=30, what="the retention thread's pass")
    finally:
        retainer.stop.set()
        retainer.thread.join(timeout=30)
    assert erasures(cloud.db) == [(h, c, "retention") for h, c in DUE]
