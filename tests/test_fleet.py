"""Fleet health: each push and pull carries the kiosk's version, backlog and clock as headers
(sync/health.py); the cloud keeps the latest per device and flags the silent, the far
behind, the ones holding dead letters and the ones with a wrong clock (sync/cloud/fleet.py),
read by ``GET /v1/hotels/<hotel>/fleet``, ``GET /v1/fleet`` and ``kiosk-cloud fleet``.

The cloud runs on SQLite and on a throwaway PostgreSQL server (tests/pgserver.py);
tests/test_chain_integration.py shows the same with real agents over HTTP.
"""

from __future__ import annotations

import itertools
import json

import pytest
from click.testing import CliRunner

from kiosk import outbox, store
from kiosk.clock import FakeClock
from sync import health
from sync.cloud import devices, fleet, storage
from sync.cloud.app import create_app
from sync.cloud.cli import main as cloud_cli

_seq = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg").new_database(f"fleet{next(_seq)}")


@pytest.fixture
def clock():
    return FakeClock(1_780_000_000.0)


@pytest.fixture
def cloud(tmp_path, database, clock):
    st = storage.open_storage(tmp_path / "cloud", database)
    st.prepare()
    db = st.connect()
    creds = {d: devices.add_device(db, d, hotels, clock.now()) for d, hotels in
             (("k1", ["demo"]), ("k2", ["demo"]), ("k3", ["demo"]), ("h1", ["harbor"]), ("hq", ["demo", "harbor"]))}
    app = create_app(tmp_path / "cloud", clock=clock, database=database,
                     fleet_policy=fleet.Policy(silent_after=600, max_pending=100, max_backlog_age=1800,
                                               clock_tolerance=60))
    app.config["TESTING"] = True
    yield app.test_client(), creds, db
    app.config["CLOUD_STORAGE"].close()
    st.close()


def auth(creds, device, **report) -> dict:
    names = {"version": health.VERSION, "clock": health.CLOCK, "pending": health.PENDING,
             "oldest": health.OLDEST, "dead": health.DEAD}
    return {"Authorization": f"Bearer {creds[device]}", **{names[k]: str(v) for k, v in report.items()}}


def pull(client, creds, device, hotel="demo", **report):
    r = client.get(f"/sync/v1/pull?hotel={hotel}&after=0", headers=auth(creds, device, **report))
    assert r.status_code == 200, r.get_json()


def by_device(body) -> dict:
    return {d["deviceId"]: d for d in body["devices"]}


def test_reports_are_kept_and_flags_say_what_is_wrong(cloud, clock):
    client, creds, _ = cloud
    now = clock.now()
    pull(client, creds, "k1", version="0.1.0", clock=now + 0.4, pending=3, oldest=12.5, dead=0)
    r = client.post("/sync/v1/push", json={"deviceId": "k2", "entries": []},
                    headers=auth(creds, "k2", version="0.0.9", clock=now - 3600, pending=500, oldest=7200, dead=2))
    assert r.status_code == 200, r.get_json()
    pull(client, creds, "h1", hotel="harbor", version="0.1.0", clock=now, pending=0, oldest=0, dead=0)
    clock.advance(30)
    body = client.get("/v1/hotels/demo/fleet", headers=auth(creds, "k1")).get_json()
    devs = by_device(body)
    assert set(devs) == {"k1", "k2", "k3", "hq"}  # harbor's h1 is not demo's
    k1, k2 = devs["k1"], devs["k2"]
    assert (k1["version"], k1["pending"], k1["oldestPendingAgeSeconds"], k1["deadLetters"]) == ("0.1.0", 3, 12.5, 0)
    assert k1["clockOffsetSeconds"] == pytest.approx(0.4) and k1["secondsSinceSeen"] == 30
    assert k1["lastPullAt"] and k1["lastPushAt"] is None and k1["flags"] == [] and k1["healthy"]
    assert k2["lastPushAt"] and k2["flags"] == ["behind", "dead_letters", "clock"]
    assert devs["k3"]["lastSeenAt"] is None and devs["k3"]["flags"] == []  # registered, not silent yet
    clock.advance(600)  # silent_after, but a heard-from device's row may be WRITE_EVERY_SECONDS old
    devs = by_device(client.get("/v1/hotels/demo/fleet", headers=auth(creds, "k1")).get_json())
    assert devs["k3"]["flags"] == [] and devs["k1"]["flags"] == []
    clock.advance(fleet.WRITE_EVERY_SECONDS)
    devs = by_device(client.get("/v1/hotels/demo/fleet", headers=auth(creds, "k1")).get_json())
    assert devs["k3"]["flags"] == ["silent"] and "silent" in devs["k1"]["flags"]
    body = client.get("/v1/fleet", headers=auth(creds, "hq")).get_json()
    assert set(by_device(body)) == {"k1", "k2", "k3", "h1", "hq"} and by_device(body)["hq"]["hotels"] == \
        ["demo", "harbor"]
    assert by_device(client.get("/v1/hotels/demo/fleet", headers=auth(creds, "k1")).get_json())["hq"]["hotels"] \
        == ["demo"]  # another hotel's id is not shown
    assert body["summary"]["devices"] == 5 and body["summary"]["silent"] == 5
    assert body["policy"] == {"silentAfterSeconds": 600, "maxPending": 100, "maxBacklogAgeSeconds": 1800,
                              "clockToleranceSeconds": 60}
    assert client.get("/v1/hotels/harbor/fleet", headers=auth(creds, "k1")).status_code == 403
    assert client.get("/v1/fleet").status_code == 401


def test_old_agents_and_malformed_headers_are_still_served(cloud, clock):
    client, creds, _ = cloud
    pull(client, creds, "k1")  # an agent that sends nothing
    pull(client, creds, "k2", version="x" * 500, clock="soon", pending=-4, oldest="nan", dead="1e400")
    devs = by_device(client.get("/v1/hotels/demo/fleet", headers=auth(creds, "k1")).get_json())
    assert devs["k1"]["lastSeenAt"] and devs["k1"]["version"] is None and devs["k1"]["flags"] == []
    k2 = devs["k2"]
    assert len(k2["version"]) == 64
    assert (k2["clockOffsetSeconds"], k2["pending"], k2["oldestPendingAgeSeconds"], k2["deadLetters"]) == \
        (None, None, None, None)


def test_a_device_row_is_rewritten_when_something_changed_or_after_a_while(cloud, clock):
    client, creds, db = cloud

    def seen_at():
        return db.execute("SELECT last_seen_at FROM device_health WHERE device_id = 'k1'").fetchone()[0]

    pull(client, creds, "k1", version="0.1.0", pending=1, dead=0)
    first = seen_at()
    clock.advance(5)
    pull(client, creds, "k1", version="0.1.0", pending=7, dead=0)
    assert seen_at() == first  # the next pull, a backlog that moved: not a write yet
    pull(client, creds, "k1", version="0.1.0", pending=7, dead=1)
    assert seen_at() == first + 5  # a new dead letter (or version) is written at once
    clock.advance(fleet.WRITE_EVERY_SECONDS)
    pull(client, creds, "k1", version="0.1.0", pending=2, dead=1)
    assert seen_at() == first + 5 + fleet.WRITE_EVERY_SECONDS
    assert db.execute("SELECT pending FROM device_health WHERE device_id = 'k1'").fetchone()[0] == 2


def test_a_fresh_row_is_not_read_again_within_the_interval(tmp_path):
    """With the app's memo, a device that pushes many times a second costs one read of its
    row per interval, not one per push; a new version still goes in at once."""
    st = storage.open_storage(tmp_path)
    st.prepare()
    db = st.connect()
    said: list[str] = []
    db.conn.set_trace_callback(said.append)
    memo: dict = {}
    rep = {"version": "0.1.0", "clock": None, "pending": 1, "oldestAge": None, "dead": 0}
    for t in range(5):
        fleet.seen(db, "k1", rep, kind="push", now=1000.0 + t, memo=memo)
    assert sum("device_health" in s for s in said) == 2  # the first push: a read, then a write
    fleet.seen(db, "k1", {**rep, "version": "0.2.0"}, kind="push", now=1006.0, memo=memo)
    assert db.execute("SELECT version FROM device_health").fetchone()[0] == "0.2.0"
    fleet.seen(db, "k1", rep | {"version": "0.2.0"}, kind="push", now=1007.0 + fleet.WRITE_EVERY_SECONDS, memo=memo)
    assert db.execute("SELECT last_push_at FROM device_health").fetchone()[0] == 1007.0 + fleet.WRITE_EVERY_SECONDS


def test_the_fleet_command_prints_a_table_or_json(tmp_path, database, clock, cloud, monkeypatch):
    client, creds, _ = cloud
    pull(client, creds, "k1", version="0.1.0", clock=clock.now(), pending=0, oldest=0, dead=0)
    args = ["--data-dir", str(tmp_path / "cloud")] + (["--database", database] if database else [])
    opened = []
    real_open = storage.open_storage
    monkeypatch.setattr(storage, "open_storage", lambda *a, **kw: opened.append(real_open(*a, **kw)) or opened[-1])
    r = CliRunner().invoke(cloud_cli, [*args, "fleet", "--hotel", "demo", "--fleet-silent-after", "1d"])
    assert r.exit_code == 0, r.output
    # the command's storage is closed when it ends (a PostgreSQL pool left open was collected on
    # one of its own threads: "cannot join current thread")
    assert opened and all(getattr(st, "_pool", None) is None for st in opened)
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["DEVICE", "VERSION", "LAST"]
    assert [ln.split()[0] for ln in lines[1:-1]] == ["hq", "k1", "k2", "k3"]
    assert lines[-1].startswith("4 devices")
    r = CliRunner().invoke(cloud_cli, [*args, "fleet", "--json", "--fleet-max-pending", "5"])
    body = json.loads(r.output)
    assert len(body["devices"]) == 5 and body["policy"]["maxPending"] == 5
    r = CliRunner().invoke(cloud_cli, [*args, "fleet", "--fleet-clock-tolerance", "soon"])
    assert r.exit_code == 1 and "--fleet-clock-tolerance" in r.output


def test_the_kiosk_reports_its_backlog_version_and_clock(tmp_path):
    clock = FakeClock(1_000.0)
    db = store.connect(tmp_path / "k.db")
    with store.transaction(db):
        for i in range(3):
            outbox.enqueue(db, hotel_id="demo", kind="ticket.created", entity_type="ticket", entity_id=f"T{i}",
                           payload={}, node="k", now=clock.now() + i)
        db.execute("UPDATE outbox SET state = 'dead' WHERE entity_id = 'T2'")
    reporter = health.Reporter(lambda: store.connect(tmp_path / "k.db"), clock, every=5)
    clock.advance(10)
    h = reporter()
    assert (h[health.PENDING], h[health.OLDEST], h[health.DEAD]) == ("2", "10.0", "1")
    assert h[health.VERSION] == __import__("kiosk").__version__ and float(h[health.CLOCK]) == clock.now()
    with store.transaction(db):
        db.execute("UPDATE outbox SET state = 'delivered'")
    clock.advance(1)
    h = reporter()  # counted at most every 5 s: the age grows, the count waits
    assert (h[health.PENDING], h[health.OLDEST], float(h[health.CLOCK])) == ("2", "11.0", clock.now())
    clock.advance(5)
    assert (reporter()[health.PENDING], reporter()[health.OLDEST]) == ("0", "0.0")
    # the cloud reads exactly what the kiosk sends
    assert fleet.report(reporter()) | {"clock": None} == {"version": h[health.VERSION], "clock": None,
                                                          "pending": 0, "oldestAge": 0.0, "dead": 0}
