"""The hub's pieces in-process: what is queued for the chain, how the chain's changes are applied
at the hub (echoes skipped, a newer local state kept), and the fleet report's scoping."""

from __future__ import annotations

import json

import pytest
from harness import wait_for

from kiosk.clock import FakeClock
from sync.cloud import changelog, devices, fleet, relay_outbox, storage, upstream
from sync.cloud.apply import apply_push
from sync.cloud.relay import apply_change

HOTEL = "demo"


@pytest.fixture
def clock():
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def hub(tmp_path, clock):
    st = storage.open_storage(tmp_path / "hub")
    st.prepare()
    db = st.connect()
    yield db, tmp_path / "hub"
    st.close()


def ticket_entry(clock, tid="T-1", key="k-1", n=1):
    return {"key": key, "hotelId": HOTEL, "kind": "ticket.created", "entityType": "ticket", "entityId": tid,
            "hlc": f"{int(clock.now() * 1000):015d}-{n:05d}-lobby", "createdAt": clock.now(),
            "payload": {"ticketId": tid, "type": "housekeeping", "title": "towels", "roomNumber": "204"}}


def test_only_a_linked_cloud_queues_what_it_applied_and_only_once(hub, clock):
    db, root = hub
    lobby = devices.Device("lobby", (HOTEL,))
    apply_push(db, lobby, [ticket_entry(clock, "T-0", "k-0")], clock.now())
    assert relay_outbox.counts(db)["pending"] == 0  # not a hub
    with storage.transaction(db):
        upstream.link(db, root, url="http://chain.example", device_id="hub-1", credential="c" * 43, now=clock.now())
    e = ticket_entry(clock)
    apply_push(db, lobby, [e, dict(e)], clock.now())  # the same key twice: one entry for the chain
    bad = ticket_entry(clock, "T-2", "k-2") | {"hotelId": "other"}
    out = apply_push(db, lobby, [bad], clock.now())
    assert out[0]["status"] == "rejected"  # refused at the hub: never relayed
    [(_, raw, origin)] = relay_outbox.due(db, clock.now())
    assert raw == e and origin == "lobby"
    link = json.loads((root / upstream.FILE).read_text())
    assert link["credential"] == "c" * 43 and (root / upstream.FILE).stat().st_mode & 0o777 == 0o600
    assert "c" * 43 not in json.dumps(upstream.get(db).__dict__)


def test_the_chains_answers_settle_the_relay_outbox(hub, clock):
    db, root = hub
    with storage.transaction(db):
        upstream.link(db, root, url="http://chain.example", device_id="hub-1", credential="x", now=clock.now())
    apply_push(db, devices.Device("lobby", (HOTEL,)),
               [ticket_entry(clock, f"T-{i}", f"k-{i}", i) for i in range(3)], clock.now())
    batch = relay_outbox.due(db, clock.now())
    with storage.transaction(db):
        counts = relay_outbox.settle(db, [(batch[0][0], {"status": "applied"}),
                                          (batch[1][0], {"status": "rejected", "reason": "KEY_CONFLICT: …"}),
                                          (batch[2][0], {"status": "retry", "reason": "blocked"})], clock.now())
    assert counts == {"delivered": 1, "dead": 1, "waiting": 1}
    assert relay_outbox.due(db, clock.now()) == []  # the retry waits its backoff
    clock.advance(2)
    assert [i for i, _, _ in relay_outbox.due(db, clock.now())] == [batch[2][0]]
    assert relay_outbox.dead(db)[0]["result"]["reason"].startswith("KEY_CONFLICT")


def test_the_chains_changes_are_applied_once_and_never_over_a_newer_hub_state(hub, clock):
    db, root = hub
    lobby = devices.Device("lobby", (HOTEL,))
    apply_push(db, lobby, [ticket_entry(clock)], clock.now())
    own = changelog.latest(db, HOTEL, "ticket", "T-1")
    seq = db.execute("SELECT MAX(seq) FROM changes").fetchone()[0]
    with storage.transaction(db):  # the chain's echo of the hub's own ticket: nothing new for the kiosks
        assert not apply_change(db, HOTEL, {"entityType": "ticket", "entityId": "T-1", "op": "upsert",
                                            "data": own[1], "hlc": "0"}, clock.now())
    assert db.execute("SELECT MAX(seq) FROM changes").fetchone()[0] == seq
    older = own[1] | {"status": "open", "title": "stale"}
    with storage.transaction(db):  # an older state from the chain: the hub's newer one stays
        apply_change(db, HOTEL, {"entityType": "ticket", "entityId": "T-1", "op": "upsert", "data": older,
                                 "hlc": "000000000000001-00000-chain"}, clock.now())
    assert db.execute("SELECT title FROM tickets WHERE ticket_id = 'T-1'").fetchone()[0] == "towels"
    room = {"room_number": "901", "room_type": "suite", "floor": 9, "status": "Clean"}
    with storage.transaction(db):  # reference data from the chain: kept and logged for the kiosks
        assert apply_change(db, HOTEL, {"entityType": "room", "entityId": "901", "op": "upsert", "data": room,
                                        "hlc": "x"}, clock.now())
        assert not apply_change(db, HOTEL, {"entityType": "room", "entityId": "901", "op": "upsert",
                                            "data": room, "hlc": "x"}, clock.now())
        assert not apply_change(db, HOTEL, {"entityType": "nonsense", "entityId": "1", "op": "upsert",
                                            "data": {}, "hlc": "x"}, clock.now())
    assert json.loads(db.execute("SELECT data FROM ref_data WHERE entity_id = '901'").fetchone()[0]) == room
    assert db.execute("SELECT COUNT(*) FROM changes WHERE entity_type = 'room'").fetchone()[0] == 1


def test_a_hubs_fleet_report_names_only_the_hotels_it_serves(hub, clock):
    db, _ = hub
    with storage.transaction(db):
        devices.add_device(db, "hub-1", [HOTEL], clock.now())
    kept = fleet.relayed(db, "hub-1", (HOTEL,), [
        {"deviceId": "lobby", "hotels": [HOTEL], "version": "1.0", "pending": 3, "lastSeenAt": clock.now()},
        {"deviceId": "spy", "hotels": ["other"], "version": "1.0"},          # another hotel's: not kept
        {"deviceId": "mixed", "hotels": [HOTEL, "other"], "pending": "x"},    # kept for demo only, bad number dropped
        {"deviceId": "hub-1", "hotels": [HOTEL]},                             # not itself
        "junk", {"hotels": [HOTEL]}], clock.now())
    assert kept == 2
    listed = {d["deviceId"]: d for d in fleet.devices(db, None, fleet.Policy(), clock.now())}
    assert set(listed) == {"hub-1", "lobby", "mixed"}
    assert listed["lobby"]["via"] == "hub-1" and listed["lobby"]["pending"] == 3 and listed["lobby"]["healthy"]
    assert listed["mixed"]["hotels"] == [HOTEL] and listed["mixed"]["pending"] is None
    assert fleet.devices(db, ["other"], fleet.Policy(), clock.now()) == []


def test_an_entitys_entries_go_up_in_order_whatever_their_backoff(hub, clock):
    db, root = hub
    with storage.transaction(db):
        upstream.link(db, root, url="http://chain.example", device_id="hub-1", credential="x", now=clock.now())
    lobby, office = devices.Device("lobby", (HOTEL,)), devices.Device("office", (HOTEL,))
    apply_push(db, lobby, [ticket_entry(clock, "T-1", "k-1", 1)], clock.now())
    [(first, _, _)] = relay_outbox.due(db, clock.now())
    with storage.transaction(db):  # the chain was away a while: the ticket's entry waits long
        for _ in range(5):
            relay_outbox.wait(db, [first], "HTTP 503", clock.now())
    step = {"key": "k-2", "hotelId": HOTEL, "kind": "ticket.updated", "entityType": "ticket", "entityId": "T-1",
            "hlc": f"{int(clock.now() * 1000):015d}-00009-office", "createdAt": clock.now(),
            "payload": {"ticketId": "T-1", "changes": {"status": {"old": "received", "new": "accepted"}}}}
    assert apply_push(db, office, [step], clock.now())[0]["status"] == "applied"
    apply_push(db, office, [ticket_entry(clock, "T-2", "k-3", 3)], clock.now())
    assert [raw["key"] for _, raw, _ in relay_outbox.due(db, clock.now())] == ["k-3"]  # T-1's step waits for T-1
    clock.advance(120)
    assert [raw["key"] for _, raw, _ in relay_outbox.due(db, clock.now())] == ["k-1", "k-2", "k-3"]


class _Chain:
    """The chain cloud as the relay's transport sees it: every entry applied, nothing to pull."""

    def __init__(self):
        self.pushes: list[list[str]] = []
        self.session = self

    def push(self, device_id, entries, key):
        self.pushes.append([e["key"] for e in entries])
        return [{"key": e["key"], "status": "applied"} for e in entries]

    def pull(self, hotel, after, limit):
        return {"hotelId": hotel, "changes": [], "cursor": after or 0, "more": False}

    def post(self, *a, **kw):  # the fleet report
        return type("Answer", (), {"status_code": 200})()


def _relaying(hub, clock, monkeypatch, chain, tickets: int):
    """A linked hub holding ``tickets`` new tickets for the chain, and its relay pushing to
    ``chain`` (a fake transport); ``(db, relay)``."""
    from sync.cloud import relay

    db, root = hub
    with storage.transaction(db):
        upstream.link(db, root, url="http://chain.example", device_id="hub-1", credential="x", now=clock.now())
    apply_push(db, devices.Device("lobby", (HOTEL,)),
               [ticket_entry(clock, f"T-{i}", f"k-{i}", i) for i in range(tickets)], clock.now())
    r = relay.Relay(storage.open_storage(root), root, clock, owner="test")
    monkeypatch.setattr(r, "_connect", lambda: (chain, "hub-1"))
    return db, r


def test_a_backlog_longer_than_a_pass_goes_up_pass_after_pass_without_waiting(hub, clock, monkeypatch):
    """A pass pushes at most MAX_BATCHES batches (then pulls); what is left goes in the next pass
    at once, not after the tick (a hub's 100,000-entry backlog waited 0.5 s every 4,000)."""
    from sync.cloud import relay

    monkeypatch.setattr(relay, "BATCH", 2)
    monkeypatch.setattr(relay, "MAX_BATCHES", 2)
    monkeypatch.setattr(relay, "TICK", 3600.0)  # a pass that waited for the tick would never come
    chain = _Chain()
    db, r = _relaying(hub, clock, monkeypatch, chain, 11)
    first = r.run_once()
    assert (first["pushed"], first["more"]) == (4, True)
    r.start()
    try:
        wait_for(lambda: relay_outbox.counts(db)["pending"] == 0, interval=0.05, what="the backlog at the chain")
    finally:
        r.stop()
    assert [k for p in chain.pushes for k in p] == [f"k-{i}" for i in range(11)]  # each once, in order
    assert [len(p) for p in chain.pushes] == [2, 2, 2, 2, 2, 1]


def test_a_batch_the_chain_finds_too_large_goes_up_in_halves(hub, clock, monkeypatch):
    """A 413 from the chain (4 MiB a push: 500 entries of large payloads are more) halves the
    relay's batch, as the agent's; the same batch again would be refused for ever."""
    from sync.cloud import relay
    from sync.transport import TransportError

    class Small(_Chain):
        def push(self, device_id, entries, key):
            if len(entries) > 2:
                raise TransportError("HTTP 413: batch too large", too_large=True)
            return super().push(device_id, entries, key)

    monkeypatch.setattr(relay, "BATCH", 8)
    chain = Small()
    db, r = _relaying(hub, clock, monkeypatch, chain, 5)
    errors = []
    for _ in range(4):
        errors.append(r.run_once()["error"])
        clock.advance(120)  # past the backoff of the entries refused
    assert errors[:2] == ["HTTP 413: batch too large"] * 2 and errors[2] is None and r.batch == 2
    assert relay_outbox.counts(db)["pending"] == 0
    assert [k for p in chain.pushes for k in p] == [f"k-{i}" for i in range(5)]  # each once, in order
