"""The live pull: a change at one kiosk shows at another kiosk of the hotel within a second.

* The cloud's long-poll, in process on SQLite and PostgreSQL (``GET /sync/v1/pull?wait=S``):
  it answers as soon as a change is recorded by another thread, an empty page when the wait
  passes, refuses a wait outside 0-25 like any bad parameter, and past its cap of waiting
  pulls answers at once.
* The agent's side, in process: a page asked for while the scheduled pull moved the cursor
  is dropped and asked again (never applied twice, the cursor never moves back); a cloud that
  is down or answers at once is not asked in a hot loop; the stop is not held up.
* Real processes (tests/harness.py): a cloud and two kiosks whose scheduled pull is an hour
  apart, so only the live pull can bring kiosk A's guest request to kiosk B; on SQLite with
  one process and on PostgreSQL with two worker processes (no in-process notification).
"""

from __future__ import annotations

import threading
import time

import pytest
from harness import Cloud, Kiosk, wait_for

from kiosk import config as config_mod
from kiosk import store, sync_status
from kiosk.clock import FakeClock
from kiosk.errors import ConfigError
from kiosk.instance import Instance
from sync import pull as pull_mod
from sync.cloud import changelog, devices, storage
from sync.cloud.app import create_app
from sync.cloud.routes import sync_api
from sync.transport import TransportError

_seq = iter(range(10**9))


# --- the cloud's long-poll, in process ----------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request, tmp_path):
    """(app, client, headers of a demo kiosk, a storage of its own to record changes with)."""
    database = None
    if request.param == "postgresql":
        database = request.getfixturevalue("pg").new_database(f"live{next(_seq)}")
    data_dir = tmp_path / "cloud"
    st = storage.open_storage(data_dir, database)
    st.prepare()
    db = st.connect()
    cred = devices.add_device(db, "k1", ["demo"])
    app = create_app(data_dir, clock=FakeClock(), database=database)
    app.config["TESTING"] = True
    yield app, app.test_client(), {"Authorization": f"Bearer {cred}"}, st
    app.config["CLOUD_STORAGE"].close()
    st.close()


def record(st, entity_id: str) -> None:
    """A change of hotel demo, committed by another connection (a push on another thread)."""
    db = st.connect()
    with storage.transaction(db):
        changelog.record(db, hotel_id="demo", entity_type="ticket", entity_id=entity_id,
                         data={"ticketId": entity_id}, hlc_stamp="001780000000000-00000-k2", now=1.0)


def in_thread(fn) -> tuple[threading.Thread, list]:
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def test_a_waiting_pull_answers_as_soon_as_a_change_is_recorded(cloud):
    app, client, h, st = cloud
    record(st, "T-0")
    t, out = in_thread(lambda: client.get("/sync/v1/pull?hotel=demo&after=1&wait=25", headers=h))
    time.sleep(0.5)
    assert t.is_alive() and not out  # nothing after cursor 1: it waits
    record(st, "T-1")
    t.join(20)  # well before the 25 s wait: the change ended it
    assert not t.is_alive(), "the waiting pull did not answer when the change came"
    body = out[0].get_json()
    assert out[0].status_code == 200, body
    assert [c["entityId"] for c in body["changes"]] == ["T-1"] and body["cursor"] == 2 and body["more"] is False
    # a change already there: answered at once, exactly as without wait
    now = client.get("/sync/v1/pull?hotel=demo&after=0&wait=25", headers=h).get_json()
    plain = client.get("/sync/v1/pull?hotel=demo&after=0", headers=h).get_json()
    assert now == plain and [c["seq"] for c in now["changes"]] == [1, 2]


def test_a_wait_that_passes_is_an_empty_page(cloud):
    _app, client, h, _st = cloud
    r = client.get("/sync/v1/pull?hotel=demo&after=0&wait=1", headers=h)
    assert r.status_code == 200
    assert r.get_json() | {"serverTime": 0} == {"hotelId": "demo", "changes": [], "cursor": 0, "more": False,
                                                 "serverTime": 0}


@pytest.mark.parametrize("wait", ["26", "-1", "1.5", "x", "", "99999999999999999999"])
def test_a_wait_outside_0_to_25_seconds_is_a_validation_error(cloud, wait):
    _app, client, h, _st = cloud
    r = client.get(f"/sync/v1/pull?hotel=demo&after=0&wait={wait}", headers=h)
    assert r.status_code == 400, r.get_json()
    err = r.get_json()["error"]
    assert err["code"] == "VALIDATION_ERROR" and err["details"]["fields"] == [{"field": "wait"}]
    assert "wait" in err["message"]


def test_wait_is_checked_after_the_credential(cloud):
    _app, client, _h, _st = cloud
    assert client.get("/sync/v1/pull?hotel=demo&wait=99").status_code == 401


def test_past_the_cap_of_waiting_pulls_a_pull_answers_at_once(cloud):
    app, client, h, st = cloud
    app.config["CLOUD_MAX_WAITING_PULLS"] = 1
    slots = sync_api.waiting_slots(app)
    t, out = in_thread(lambda: client.get("/sync/v1/pull?hotel=demo&after=0&wait=25", headers=h))
    wait_for(lambda: slots._value == 0, timeout=20, what="the first pull to wait")
    r = client.get("/sync/v1/pull?hotel=demo&after=0&wait=25", headers=h)  # the cap is held: as wait=0
    assert r.status_code == 200 and r.get_json()["changes"] == []
    assert t.is_alive()  # the first one still waits
    record(st, "T-1")
    t.join(20)
    assert not t.is_alive() and [c["entityId"] for c in out[0].get_json()["changes"]] == ["T-1"]
    assert slots._value == 1  # its slot is given back


def test_the_cap_is_half_the_threads_unless_set(cloud, monkeypatch):
    app, _client, _h, _st = cloud
    pool = getattr(app.config["CLOUD_STORAGE"], "max_size", None)  # PostgreSQL: one connection per thread
    assert sync_api.max_waiting_pulls(app) == (pool or sync_api.DEFAULT_SERVER_THREADS) // 2
    monkeypatch.setenv(sync_api.MAX_WAITING_PULLS_ENV, "3")
    assert sync_api.max_waiting_pulls(app) == 3
    app.config["CLOUD_MAX_WAITING_PULLS"] = 0  # 0: no pull waits
    assert sync_api.max_waiting_pulls(app) == 0


def test_head_is_the_newest_committed_change(cloud):
    _app, _client, _h, st = cloud
    db = st.connect()
    assert changelog.head(db, "demo") == 0
    record(st, "T-1")
    record(st, "T-2")
    assert changelog.head(db, "demo") == 2 and changelog.head(db, "harbor") == 0


# --- the agent's side, in process ---------------------------------------------------------------

def page(cursor: int) -> dict:
    return {"hotelId": "demo", "changes": [], "cursor": cursor, "more": False, "serverTime": 1.0}


def test_a_page_asked_for_before_the_other_puller_moved_the_cursor_is_dropped(instance, clock):
    """The live pull's page comes back after the scheduled pull applied a newer one: it is not
    applied (the cursor would move back), and the live pull asks again after the new cursor."""
    lock = threading.Lock()
    calls = []

    class Transport:
        def pull(self, hotel_id, after, limit, wait=0):
            calls.append((after, wait))
            if len(calls) == 1:  # while this long-poll was open, the scheduled pull ran
                with lock:
                    scheduled.apply_page("demo", page(7))
                return page(5)
            return page(after)

    def puller(t):
        return pull_mod.Puller(instance.connect(), t, hotels=["demo"], node="kiosk-test", clock=clock,
                               trust_path=instance.trust_path)

    scheduled, live = puller(Transport()), puller(Transport())
    r = live.pull(hotels=["demo"], wait=20, lock=lock)
    assert calls == [(0, 20), (7, 0)] and r.error is None
    assert pull_mod.cursor(instance.db(), "demo") == 7
    # a guard that says no (the link changed meanwhile): nothing applied, the run ends
    calls.clear()
    r = live.pull(hotels=["demo"], wait=20, lock=lock, guard=lambda: False)
    assert r.error and pull_mod.cursor(instance.db(), "demo") == 7


def test_one_puller_alone_asks_for_the_next_page_while_it_applies_this_one(instance, clock):
    """Over a transport that can (``pull_async``, the HTTP one), a puller alone on its database
    has the next page on its way before it applies the page in hand; every page is applied once,
    in order, and a page that fails ends the run with the cursor after the last one applied."""
    from settled import settled

    db = instance.connect()
    asked = []  # (after, the cursor the kiosk had saved when it was asked for)

    class Ahead:
        fail_after = None

        def pull(self, hotel_id, after, limit, wait=0):
            asked.append((after, pull_mod.cursor(db, hotel_id)))
            if after == self.fail_after:
                raise TransportError("ConnectionError: the cloud went away")
            return {"hotelId": hotel_id, "changes": [], "cursor": after + 5, "more": after + 5 < 20,
                    "serverTime": 1.0}

        def pull_async(self, hotel_id, after, limit):
            return settled(self.pull, hotel_id, after, limit)

    t = Ahead()
    puller = pull_mod.Puller(db, t, hotels=["demo"], node="kiosk-test", clock=clock, trust_path=instance.trust_path)
    r = puller.pull()
    # each page after the first was asked for while the one before it was not yet applied
    assert asked == [(0, 0), (5, 0), (10, 5), (15, 10)] and r.pages == 4 and r.error is None
    assert pull_mod.cursor(db, "demo") == 20
    with store.transaction(db):
        sync_status.put(db, {pull_mod.cursor_key("demo"): 0})
    asked.clear()
    t.fail_after = 10
    r = puller.pull()
    assert r.error.startswith("ConnectionError") and pull_mod.cursor(db, "demo") == 10 and r.pages == 2


def agent_with(instance, transport, **agent_cfg):
    from agent.runner import Agent

    agent = Agent(instance, transport, device_id="kiosk-test")
    agent.cfg = agent.cfg.model_copy(update=agent_cfg)
    return agent


class Counting:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def pull(self, hotel_id, after, limit, wait=0):
        self.calls.append((hotel_id, after, wait))
        return self.answer(after)


def down(_after):
    raise TransportError("ConnectionError: the cloud is down")


@pytest.mark.parametrize("answer", [down, page], ids=["cloud-down", "answers-at-once"])
def test_the_live_pull_is_no_hot_loop(instance, answer):
    """A cloud that is down (backoff from backoff_base_seconds) or that answers a long-poll at
    once with nothing (its cap of waiting pulls; an older cloud) is asked a few times in 2 s."""
    transport = Counting(answer)
    agent = agent_with(instance, transport, backoff_base_seconds=0.5, live_pull_wait_seconds=20)
    threads = agent.start_live_pull()
    assert len(threads) == len(instance.config.property.hotels)
    time.sleep(2)
    assert agent.stop_live_pull()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    for hotel in instance.config.property.hotels:
        n = sum(1 for c in transport.calls if c[0] == hotel)
        assert 1 <= n <= 6, (hotel, transport.calls)
    assert all(c[2] == 20 for c in transport.calls)
    if answer is page:  # what came was applied through the Puller: the cursor and the time of it
        assert sync_status.get(instance.db(), "last_pull_at") is not None


def test_no_live_pull_when_its_wait_is_0(instance):
    agent = agent_with(instance, Counting(page), live_pull_wait_seconds=0)
    assert agent.start_live_pull() == []


def test_the_setting_is_bounded():
    assert config_mod.defaults()["agent"]["live_pull_wait_seconds"] == 20
    for bad in (-1, 26):
        with pytest.raises(ConfigError) as e:
            config_mod.load(None, env={}, overrides={"agent": {"live_pull_wait_seconds": bad}})
        assert "live_pull_wait_seconds" in e.value.message


# --- real processes -----------------------------------------------------------------------------

def local(k: Kiosk) -> Instance:
    cfg = config_mod.load(None, env={}, overrides={"data_dir": str(k.dir),
                                                   "property": {"hotels": ["demo"], "kiosk_id": k.name}})
    return Instance(cfg)


def has_ticket(k: Kiosk, ticket_id: str) -> bool:
    db = local(k).connect()
    try:
        return db.execute("SELECT 1 FROM tickets WHERE hotel_id = 'demo' AND ticket_id = ?",
                          [ticket_id]).fetchone() is not None
    finally:
        db.conn.close()


#: the scheduled pull an hour apart: only the live pull can deliver within the test
SLOW_PULL = {"KIOSK__AGENT__PULL_INTERVAL_SECONDS": "3600"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql-2-workers"])
def test_a_guest_request_at_one_kiosk_reaches_another_by_the_live_pull(tmp_path, request, backend):
    database, workers = None, 1
    if backend != "sqlite":
        database, workers = request.getfixturevalue("pg").new_database(f"livep{next(_seq)}"), 2
    cloud = Cloud(tmp_path, database=database, workers=workers).start()
    b = Kiosk(tmp_path, "kb", agent_env=SLOW_PULL)
    a = Kiosk(tmp_path, "ka", agent_env=SLOW_PULL)
    try:
        b.link(cloud.url, cloud.device("kb", "demo"))
        a.link(cloud.url, cloud.device("ka", "demo"))
        b_log = b.start_agent().log
        wait_for(lambda: '"msg":"agent started"' in b_log.read_text(), timeout=120, what="kiosk B's agent")
        # B's first scheduled pull (at its start) is done: the next one is an hour away
        wait_for(lambda: sync_status.get(local(b).db(), "last_pull_at") is not None, timeout=120,
                 what="kiosk B's first pull")
        a.serve()
        a.start_agent()
        guest = a.session("guest", token=a.token("guest", walk_in=True))
        r = guest.post(a.url + "/api/guest/requests", json={"text": "Two more towels please", "kind": "housekeeping"},
                       timeout=60)
        assert r.status_code == 201, r.text
        ticket_id = r.json()["ticket"]["ticketId"]
        wait_for(lambda: has_ticket(b, ticket_id), timeout=90, what="the guest request at kiosk B")
        text = b_log.read_text()
        assert '"msg":"pulled live"' in text, text[-3000:]
        assert '"msg":"pulled"' not in text, text[-3000:]  # the scheduled pull brought nothing
        # the agent stops on SIGTERM with its long-poll open, cleanly
        assert b.agent.stop() == 0
        text = b_log.read_text()
        assert text.count('"msg":"agent stopping"') == 1 and '"msg":"agent stopped"' in text, text[-3000:]
        assert not any('"level":"ERROR"' in line for line in text.splitlines()), text[-3000:]
    finally:
        a.stop_all()
        b.stop_all()
        cloud.stop()


def test_a_cloud_stops_promptly_with_pulls_waiting(tmp_path):
    """SIGTERM to a cloud holding long-polls: they are answered, the stop is not held up."""
    cloud = Cloud(tmp_path).start()
    # a short wait, so that the first long-poll after the restart (which ends the backoff) ends soon
    k = Kiosk(tmp_path, "k1", agent_env={"KIOSK__AGENT__LIVE_PULL_WAIT_SECONDS": "4"})
    try:
        k.link(cloud.url, cloud.device("k1", "demo"))
        log = k.start_agent().log
        wait_for(lambda: '"msg":"agent started"' in log.read_text(), timeout=120, what="the agent")
        time.sleep(1.5)  # its long-poll is open
        assert cloud.proc.stop() == 0  # within the harness's 10 s, or it would have been SIGKILLed
        cloud_log = (tmp_path / "cloud.log").read_text()
        assert '"msg":"cloud stopped"' in cloud_log, cloud_log[-2000:]
        # the agent backs off and says so once, not once per try
        time.sleep(3)
        text = log.read_text()
        assert text.count("live pull: no answer from the cloud") <= 1, text[-3000:]
        cloud.start()
        wait_for(lambda: "live pull: the cloud answers again" in log.read_text(), timeout=120,
                 what="the live pull to come back")
    finally:
        k.stop_all()
        cloud.stop()

