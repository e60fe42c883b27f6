"""Retention and resync (sync/cloud/retention.py, sync/cloud/snapshot.py, Puller.resync): the cloud
purges what is older than its retention; a kiosk whose cursor fell off the retained log gets
410 CURSOR_EXPIRED and re-syncs from a paged snapshot of the hotel's current state, applied by
the pull code with the same rules, so its undelivered outbox and local edits survive.

The HTTP side runs on SQLite and on a throwaway PostgreSQL server; the kiosk side on real
replicas (tests/replicas.py); tests/test_chain_integration.py shows it with real processes.
"""

from __future__ import annotations

import itertools

import pytest
from replicas import HOTEL, Cloud, Site

from kiosk.clock import FakeClock
from sync import pull
from sync.cloud import devices, refdata, retention, snapshot, storage
from sync.cloud.app import create_app
from sync.cloud.apply import apply_push

DAY = 86400
_seq = itertools.count()
ROOMS = [{"room_number": str(100 + i), "room_type": "KING", "floor": 1, "status": "Clean", "occupied": 0}
         for i in range(1, 4)]


def converge(sites, rounds=3):
    for _ in range(rounds):
        for s in sites:
            s.online = True
            assert s.sync()["error"] is None
    assert all(s.pending() == 0 for s in sites)


@pytest.fixture
def cloud(tmp_path):
    return Cloud(tmp_path, FakeClock(1_780_000_000.0))


@pytest.fixture
def sites(tmp_path, cloud):
    return [Site(tmp_path, f"k{i}", cloud) for i in range(3)]


def rooms(site) -> list[str]:
    return [r[0] for r in site.db.execute("SELECT room_number FROM rooms WHERE hotel_id = ? ORDER BY 1", [HOTEL])]


def test_a_kiosk_offline_past_the_retention_resyncs_and_keeps_its_outbox(cloud, sites):
    k0, k1, k2 = sites
    cloud.key()
    refdata.import_tables(cloud.db, HOTEL, {"rooms": ROOMS}, cloud.clock.now())
    k1.create_wo("WO-1", room_number="101", description="leak")
    converge(sites)
    token = cloud.token("staff", reusable=True)
    assert k0.scan(token)["success"]
    # k0 goes dark for 40 days with local work nobody has seen
    k0.online = False
    k0.edit_wo("WO-1", notes="k0: offline note")
    k0.ticket("Lamp broken")
    k1.edit_wo("WO-1", assignee="ben", priority="high")
    refdata.import_tables(cloud.db, HOTEL, {"rooms": ROOMS[1:] + [dict(ROOMS[0], room_number="104")]},
                          cloud.clock.now())
    jti = __import__("json").loads(__import__("base64").urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    cloud_keys = __import__("sync.cloud.keys", fromlist=["revoke_token"])
    cloud_keys.revoke_token(cloud.db, HOTEL, jti, cloud.clock.now())
    converge([k1, k2])
    cloud.clock.advance(40 * DAY)
    for s in sites:
        s.tick(0)
    out = retention.purge(cloud.db, cloud.clock.now(), 30 * DAY)
    assert out["changes"] > 0 and out["appliedEntries"] > 0 and out["pushRequests"] == 0
    assert cloud.db.execute("SELECT count(*) FROM changes").fetchone()[0] == 0
    # back online, but pull only (the push job has not run yet): the re-sync must not need it
    k0.online = True
    before = k0.pending()
    report = k0.puller.pull()
    assert report.error is None and report.resynced == [HOTEL]
    assert k0.pending() == before >= 2  # the outbox is untouched
    assert rooms(k0) == ["102", "103", "104"]  # 101 was dropped by the PMS while the log was purged
    wo = k0.work_orders()["WO-1"]
    assert (wo["assignee"], wo["priority"], wo["notes"]) == ("ben", "high", "k0: offline note")  # local edit kept
    assert k0.db.execute("SELECT jti FROM remote_revocations").fetchall() == [(jti,)]  # (the token expired too)
    converge(sites)  # now the outbox goes up and everybody agrees
    for s in sites:
        assert s.work_orders() == cloud.work_orders() and s.tickets() == cloud.tickets()
    assert cloud.work_orders()["WO-1"]["notes"] == "k0: offline note"
    assert pull.cursor(k0.db, HOTEL) == \
        cloud.db.execute("SELECT max(seq) FROM changes WHERE hotel_id = ?", [HOTEL]).fetchone()[0]


def test_a_new_kiosk_after_a_purge_fills_itself_from_the_snapshot(tmp_path, cloud, sites):
    cloud.key()
    refdata.import_tables(cloud.db, HOTEL, {"rooms": ROOMS}, cloud.clock.now())
    sites[0].create_wo("WO-1", description="x")
    sites[0].ticket("Towels please", room="101")
    converge(sites[:1])
    cloud.clock.advance(31 * DAY)
    retention.purge(cloud.db, cloud.clock.now(), 30 * DAY)
    fresh = Site(tmp_path, "new", cloud)
    fresh.puller.page_size = 2  # many small pages, across sections
    report = fresh.puller.pull()
    assert report.resynced == [HOTEL] and report.error is None
    assert rooms(fresh) == ["101", "102", "103"]
    assert fresh.work_orders() == cloud.work_orders() and fresh.tickets() == cloud.tickets()
    assert "cloud" in fresh.inst.trust_path.read_text()  # the trust key came too
    again = fresh.puller.pull()  # from the snapshot's cursor on: nothing expired, nothing new
    assert again.resynced == [] and again.changes == 0


def test_security_events_reach_every_kiosk_by_pull_and_by_snapshot(tmp_path, cloud, sites):
    a, b, c = sites
    cloud.key()
    converge(sites)
    token = cloud.token("guest")
    a.online = b.online = False
    a.scan(token)
    a.tick(30)
    b.tick(60)
    b.scan(token)
    converge(sites)
    for s in sites:  # the two involved and the third
        events = s.security_events()
        assert [(e["kind"], e["key"]) for e in events] == [("TOKEN_REPLAY", "replay:" + events[0]["subject"] + ":k1")]
    converge(sites)  # pulled again: still once
    assert all(len(s.security_events()) == 1 for s in sites)
    cloud.clock.advance(31 * DAY)
    retention.purge(cloud.db, cloud.clock.now(), 30 * DAY)
    cloud.clock.advance(-30 * DAY)  # (the snapshot sends the events of the last 30 days)
    with __import__("kiosk").store.transaction(cloud.db):  # as recorded before events had keys
        cloud.db.execute("UPDATE security_events SET event_key = NULL")
    fresh = Site(tmp_path, "new", cloud)
    assert fresh.puller.pull().resynced == [HOTEL]
    assert [(e["kind"], e["key"]) for e in fresh.security_events()] == \
        [("TOKEN_REPLAY", a.security_events()[0]["key"])]
    assert len(fresh.conflicts()) == 1


def test_a_repeat_after_the_keys_retention_is_judged_again_and_changes_nothing(cloud, sites):
    s = sites[0]
    cloud.key()
    converge([s])
    s.create_wo("WO-1", description="x")
    s.edit_wo("WO-1", status="assigned", assignee="ann")
    s.ticket("Towels please")
    s.scan(cloud.token("guest"))
    entries = [dict(r) for r in s.db.query("SELECT * FROM outbox ORDER BY id")]
    converge([s])
    state = (cloud.work_orders(), cloud.tickets(), cloud.db.execute("SELECT count(*) FROM changes").fetchone()[0],
             cloud.db.execute("SELECT count(*) FROM work_order_history").fetchone()[0])
    cloud.clock.advance(31 * DAY)
    assert retention.purge(cloud.db, cloud.clock.now(), 30 * DAY)["appliedEntries"] == len(entries)
    again = [{"key": e["idempotency_key"], "hotelId": e["hotel_id"], "kind": e["kind"], "entityType": e["entity_type"],
              "entityId": e["entity_id"], "hlc": e["hlc"], "createdAt": e["created_at"],
              "payload": __import__("json").loads(e["payload"])} for e in entries]
    results = apply_push(cloud.db, s.transport.device, again, cloud.clock.now(), 3 * 3600)
    assert {r["status"] for r in results} == {"applied"}  # not remembered any more, and harmless:
    purged_log = state[2] - cloud.db.execute("SELECT count(*) FROM changes").fetchone()[0]
    assert (cloud.work_orders(), cloud.tickets()) == state[:2] and purged_log == state[2]
    assert cloud.db.execute("SELECT count(*) FROM work_order_history").fetchone()[0] == state[3]


# --- the HTTP side, on SQLite and on PostgreSQL -------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg").new_database(f"resync{next(_seq)}")


@pytest.fixture
def http(tmp_path, database):
    clock = FakeClock(1_780_000_000.0)
    st = storage.open_storage(tmp_path / "cloud", database)
    st.prepare()
    db = st.connect()
    cred = devices.add_device(db, "k1", ["demo"], clock.now())
    app = create_app(tmp_path / "cloud", clock=clock, database=database)
    app.config["TESTING"] = True
    yield app.test_client(), {"Authorization": f"Bearer {cred}"}, db, clock
    app.config["CLOUD_STORAGE"].close()
    st.close()


def test_an_expired_cursor_is_410_and_the_snapshot_pages_the_current_state(http):
    client, auth, db, clock = http
    rows = [dict(ROOMS[0], room_number=str(200 + i)) for i in range(25)]
    refdata.import_tables(db, "demo", {"rooms": rows}, clock.now())
    refdata.import_tables(db, "demo", {"rooms": rows[5:]}, clock.now())  # 5 deleted
    head = db.execute("SELECT max(seq) FROM changes WHERE hotel_id = 'demo'").fetchone()[0]
    assert client.get("/sync/v1/pull?hotel=demo&after=0", headers=auth).status_code == 200
    clock.advance(2 * DAY)
    refdata.import_tables(db, "demo", {"rooms": rows[5:] + [dict(rows[0], room_number="300")]}, clock.now())
    out = retention.purge(db, clock.now(), DAY)
    # 25 rooms logged, then 5 deleted: a deletion replaces the room's row in the (compacted) log
    assert out["changes"] == 25 and out["hotels"] == {"demo": 25}
    assert retention.purge(db, clock.now(), DAY)["changes"] == 0  # twice is harmless
    r = client.get("/sync/v1/pull?hotel=demo&after=3", headers=auth)
    assert r.status_code == 410
    assert r.get_json()["error"]["code"] == "CURSOR_EXPIRED"
    assert r.get_json()["error"]["details"] == {"hotelId": "demo", "after": 3, "purgedThrough": head}
    ok = client.get(f"/sync/v1/pull?hotel=demo&after={head}", headers=auth).get_json()  # up to date: fine
    assert [c["entityId"] for c in ok["changes"]] == ["300"]
    seen, token, cursors = [], None, set()
    while True:
        page = client.get("/sync/v1/snapshot?hotel=demo&limit=7" + (f"&page={token}" if token else ""),
                          headers=auth).get_json()
        assert len(page["changes"]) <= 7
        seen += [c["entityId"] for c in page["changes"]]
        cursors.add(page["cursor"])
        token = page["next"]
        if not token:
            break
    assert sorted(seen) == sorted([str(200 + i) for i in range(5, 25)] + ["300"])
    assert cursors == {head + 1}
    for bad in ("nope", "W1siIl0", "WzEsOTksbnVsbF0"):  # not base64 JSON; not a list of 3; section 99
        r = client.get(f"/sync/v1/snapshot?hotel=demo&page={bad}", headers=auth)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.get("/sync/v1/snapshot?hotel=harbor", headers=auth).status_code == 403
    assert client.get("/sync/v1/snapshot?hotel=demo&limit=0", headers=auth).status_code == 400


def test_snapshot_sections_come_in_order_with_the_pull_format(http):
    client, auth, db, clock = http
    refdata.import_tables(db, "demo", {"rooms": ROOMS[:1]}, clock.now())
    page = snapshot.page(db, "demo", None, 1000, clock.now())
    assert page["next"] is None
    assert [(c["entityType"], c["entityId"], c["op"]) for c in page["changes"]] == [("room", "101", "upsert")]
    assert page["changes"][0]["data"]["room_type"] == "KING"


def test_a_purge_while_a_pull_is_answered_is_never_passed_over(http, monkeypatch):
    client, auth, db, clock = http
    refdata.import_tables(db, "demo", {"rooms": ROOMS}, clock.now() - 2 * DAY)
    from sync.cloud import changelog

    real = changelog.page

    def purge_then_page(*args, **kw):
        retention.purge(db, clock.now(), DAY)  # commits while the pull is being answered...
        return real(*args, **kw)  # ...so the page no longer holds changes 2 and 3
    monkeypatch.setattr(changelog, "page", purge_then_page)
    r = client.get("/sync/v1/pull?hotel=demo&after=1", headers=auth)
    assert r.status_code == 410 and r.get_json()["error"]["code"] == "CURSOR_EXPIRED"
