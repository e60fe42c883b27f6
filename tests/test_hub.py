"""A property hub: the reference cloud on a property box, linked to the chain's cloud, that the
hotel's kiosks sync through.  Real processes on 127.0.0.1: a chain cloud, a hub and two
kiosks with their agents.  With the chain stopped the hotel keeps working as one (a request
at one box reaches the other); the hub SIGKILLed mid-relay loses and doubles nothing; with
the chain back everything reaches it exactly once, and what the chain has for the hotel
(PMS data) comes down to the kiosks through the hub."""

from __future__ import annotations

import json
import sqlite3

import pytest
from harness import Cloud, Kiosk, wait_for


def kiosk_rows(k: Kiosk, sql: str, params=()) -> list[tuple]:
    con = sqlite3.connect(f"file:{k.dir / 'kiosk.db'}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def cloud_rows(c: Cloud, sql: str, params=()) -> list[tuple]:
    con = sqlite3.connect(f"file:{c.dir / 'cloud.db'}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def upstream(hub: Cloud) -> dict:
    return json.loads(hub.cli("upstream", "--json").stdout)


@pytest.fixture
def property_(tmp_path):
    made = []
    (tmp_path / "chain").mkdir()
    (tmp_path / "hub").mkdir()
    chain = Cloud(tmp_path / "chain")
    hub = Cloud(tmp_path / "hub")
    made += [chain, hub]
    chain.start()
    hub_cred = chain.device("hub-1", "demo")
    r = hub.cli("link", "--cloud", chain.url, "--device-id", "hub-1", "--credential", hub_cred)
    assert json.loads(r.stdout) == {"cloud": chain.url, "deviceId": "hub-1", "linked": True}
    assert oct((hub.dir / "upstream.json").stat().st_mode & 0o777) == "0o600"
    hub.start()
    kiosks = []
    for name in ("lobby", "office"):
        k = Kiosk(tmp_path, name)
        made.append(k)
        k.serve()
        k.link(hub.url, hub.device(name, "demo"))
        k.start_agent()
        kiosks.append(k)
    yield chain, hub, kiosks
    for m in made:
        (m.stop_all if isinstance(m, Kiosk) else m.stop)()


def request(k: Kiosk, staff, i: int) -> str:
    r = staff.post(k.url + "/api/tickets/auto", timeout=60,
                   json={"type": "housekeeping", "title": f"towels for the hub {i}", "roomNumber": str(2000 + i)})
    assert r.status_code == 201, r.text
    return r.json()["ticket"]["ticketId"]


def test_the_hotel_works_as_one_with_the_chain_away_and_the_chain_gets_everything_once(property_, tmp_path):
    chain, hub, (lobby, office) = property_
    chain.cli("key", "create", "--hotel", "demo")  # a key the chain signs guests' codes with, at booking
    wait_for(lambda: all("cloud" in (k.dir / "keys" / "trust.json").read_text() for k in (lobby, office)),
             timeout=60, what="the chain's key to reach both boxes through the hub")
    code = chain.cli("token", "create", "--role", "guest", "--hotel", "demo").stdout.strip()
    chain.stop()  # the hotel's internet is down for the whole scenario
    # a one-time code used at the lobby is refused at the back office: the hub holds the claim
    assert lobby.scan(code).status_code == 200
    refused = office.scan(code)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "TOKEN_ALREADY_USED"
    assert refused.json()["error"]["details"]["kioskId"] == "lobby"
    staff = lobby.session("staff")
    tids = [request(lobby, staff, i) for i in range(5)]
    wait_for(lambda: len(kiosk_rows(office, "SELECT ticket_id FROM tickets WHERE ticket_id IN (?, ?, ?, ?, ?)",
                                    tids)) == 5, timeout=60, what="the lobby's requests at the back office")
    # staff at the back office act on one: the lobby sees it, still without the chain
    office_staff = office.session("staff")
    r = office_staff.post(office.url + "/api/staff/tasks/ticket/" + tids[0], json={"action": "accept"}, timeout=60)
    assert r.status_code == 200, r.text
    wait_for(lambda: kiosk_rows(lobby, "SELECT status FROM tickets WHERE ticket_id = ?", [tids[0]])
             not in ([], [("received",)], [("open",)]), timeout=60, what="the back office's step at the lobby")
    st = upstream(hub)
    assert st["linked"] and st["waiting"] >= 6 and st["lastError"]  # waiting for the chain, and saying why
    chain.start()
    wait_for(lambda: upstream(hub)["waiting"] == 0, timeout=90, what="the hub's backlog to reach the chain")
    got = cloud_rows(chain, "SELECT ticket_id, status FROM tickets WHERE hotel_id = 'demo'")
    assert sorted(t for t, _ in got) == sorted(tids)
    hub_state = dict(cloud_rows(hub, "SELECT ticket_id, status FROM tickets WHERE hotel_id = 'demo'"))
    assert dict(got) == hub_state, (
        cloud_rows(chain, "SELECT key, kind, entity_id, hlc, result FROM applied_entries ORDER BY applied_at"),
        cloud_rows(hub, "SELECT key, kind, entity_id, hlc, result FROM applied_entries ORDER BY applied_at"),
        cloud_rows(chain, "SELECT ticket_id, status, status_hlc, hlc FROM tickets"))
    # every key once at the chain, pushed by the hub
    keys = cloud_rows(chain, "SELECT key, device_id FROM applied_entries WHERE hotel_id = 'demo'")
    assert len(keys) == len({k for k, _ in keys}) and {d for _, d in keys} == {"hub-1"}
    assert upstream(hub)["dead"] == 0


def test_a_hub_killed_mid_relay_loses_and_doubles_nothing(property_):
    chain, hub, (lobby, office) = property_
    staff = lobby.session("staff")
    tids = [request(lobby, staff, i) for i in range(3)]
    wait_for(lambda: len(cloud_rows(chain, "SELECT 1 FROM tickets")) == 3, timeout=60, what="the chain to have them")
    for round_ in range(3):
        more = [request(lobby, staff, 100 * (round_ + 1) + i) for i in range(20)]
        tids += more
        # the moment the hub holds them (applied, maybe relaying): power off
        marks = ",".join("?" * len(more))
        wait_for(lambda m=more, q=marks: len(cloud_rows(hub, f"SELECT 1 FROM tickets WHERE ticket_id IN ({q})", m)) >= 10,
                 timeout=60, what="the hub to take the pushes")
        hub.proc.kill()
        hub.start()
    wait_for(lambda: len(cloud_rows(chain, "SELECT 1 FROM tickets")) == len(tids), timeout=120,
             what="every request at the chain")
    wait_for(lambda: upstream(hub)["waiting"] == 0, timeout=60, what="the relay to settle")
    assert sorted(r[0] for r in cloud_rows(chain, "SELECT ticket_id FROM tickets")) == sorted(tids)
    wait_for(lambda: len(kiosk_rows(office, "SELECT 1 FROM tickets")) == len(tids), timeout=60,
             what="the back office to have them all")
    assert lobby.status()["dead"] == 0 and upstream(hub)["dead"] == 0


def test_what_the_chain_has_for_the_hotel_comes_down_through_the_hub(property_, tmp_path):
    chain, hub, (lobby, office) = property_
    export = tmp_path / "export"
    export.mkdir()
    (export / "rooms.csv").write_text("room_number,room_type,floor,status\n901,suite,9,Clean\n902,double,9,Dirty\n")
    r = chain.cli("data", "import", str(export), "--hotel", "demo")
    assert json.loads(r.stdout)["rooms"]["added"] == 2, r.stdout
    for k in (lobby, office):
        wait_for(lambda k=k: sorted(kiosk_rows(k, "SELECT room_number, status FROM rooms WHERE room_number"
                                                  " IN ('901', '902')")) == [("901", "Clean"), ("902", "Dirty")],
                 timeout=60, what=f"the PMS's rooms at {k.name}")
    # the chain's changes are logged once at the hub, not again when its own kiosks' come back

    rooms = cloud_rows(hub, "SELECT COUNT(*) FROM changes WHERE entity_type = 'room'")[0][0]
    assert rooms == 2
    staff = lobby.session("staff")
    tid = request(lobby, staff, 7)
    wait_for(lambda: len(cloud_rows(chain, "SELECT 1 FROM tickets WHERE ticket_id = ?", [tid])) == 1,
             timeout=60, what="the chain to have the request")
    wait_for(lambda: upstream(hub)["cursors"].get("demo", 0) >= cloud_rows(
        chain, "SELECT MAX(seq) FROM changes WHERE hotel_id = 'demo'")[0][0], timeout=60,
        what="the hub to pull the chain's log")
    logged = cloud_rows(hub, "SELECT COUNT(*) FROM changes WHERE entity_type = 'ticket' AND entity_id = ?", [tid])
    assert logged[0][0] == 1  # the chain's echo of the hub's own change is not logged again
    # the chain's fleet view: the hub, and the kiosks behind it with their own reports
    def fleet():
        return {d["deviceId"]: d for d in json.loads(chain.cli("fleet", "--json").stdout)["devices"]}
    # a kiosk is in the hub's report from its registration; its own figures from its first
    # report to the hub, which may come after the hub's report of the moment (every 15 s)
    def reported():
        seen = fleet()
        return seen if all(seen.get(k, {}).get("version") for k in ("lobby", "office")) else None
    seen = wait_for(reported, timeout=90, interval=0.5,
                    what="the kiosks behind the hub in the fleet, with their reports")
    assert seen["hub-1"]["via"] is None and seen["hub-1"]["version"] and seen["hub-1"]["pending"] is not None
    for name in ("lobby", "office"):
        assert seen[name]["via"] == "hub-1" and seen[name]["hotels"] == ["demo"] and seen[name]["version"]
    assert "(via hub-1)" in chain.cli("fleet").stdout


# --- the exactly-once suite's scenarios with a hub in the path ------------------------------

def test_chain_down_then_back_every_action_arrives_exactly_once_through_the_hub(property_):
    """tests/test_sync_integration.py's backlog (tickets and work-order steps made while
    nothing upstream answers), with the hub between the kiosk and the chain: the hub up, the
    chain down; then the chain back.  The chain ends with what the kiosk made, each once."""
    from test_sync_integration import assert_cloud_matches, fill_backlog

    chain, hub, (lobby, office) = property_
    chain.stop()
    fill_backlog(lobby, n_tickets=60, n_wo=10)
    wait_for(lambda: lobby.status()["pending"] == 0, timeout=90, what="the lobby to hand everything to the hub")
    assert upstream(hub)["waiting"] >= 110
    assert_cloud_matches(hub, lobby)
    chain.start()
    wait_for(lambda: upstream(hub)["waiting"] == 0, timeout=120, what="the hub's backlog to reach the chain")
    assert_cloud_matches(chain, lobby)
    assert upstream(hub)["dead"] == 0


def test_the_chains_answer_lost_after_it_applied_a_relayed_batch_doubles_nothing(property_):
    """Between hub and chain, a proxy that forwards each push and then drops the answer: the
    hub sends the batch again under the same keys, and the chain applies it once."""
    from faultproxy import FaultProxy
    from test_sync_integration import assert_cloud_matches, fill_backlog

    chain, hub, (lobby, office) = property_
    with FaultProxy(chain.url) as proxy:
        cred = chain.device("hub-1", "demo", rotate=True)
        hub.cli("link", "--cloud", proxy.url, "--device-id", "hub-1", "--credential", cred)
        proxy.mode = "drop_after_forward"
        fill_backlog(lobby, n_tickets=40, n_wo=4)
        wait_for(lambda: len(chain.list("tickets", "demo")) == 40, timeout=90,
                 what="the chain to apply the relayed batch")
        assert upstream(hub)["waiting"] > 0  # ... while the hub never heard so
        proxy.mode = "pass"
        wait_for(lambda: upstream(hub)["waiting"] == 0, timeout=120, what="the hub to hear the chain's answers")
    assert any(path.startswith("/sync/v1/push") and mode == "drop_after_forward" for path, mode in proxy.seen)
    assert_cloud_matches(chain, lobby)
