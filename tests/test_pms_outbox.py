"""The cloud's PMS outbox and its delivery into a fake OPERA Cloud that validates every request
against the published specs: exactly one charge per offer taken and one service request per
guest request, through a lost answer, a 503 with Retry-After, an expired token, the PMS down
for a while, and a worker that dies between claiming an action and hearing the answer."""

from __future__ import annotations

import json

import pytest

from kiosk.clock import FakeClock
from sync.cloud import devices, pms_links, pms_outbox, storage
from sync.cloud.apply import apply_push
from sync.cloud.pms_delivery import PmsRunner
from tests.fakepms.opera import FakeOpera

APP_KEY = "41ecd082-8997-4c69-af34-2f72b83645ff"
CREDS = {"app_key": APP_KEY, "client_id": "kiosk-client", "client_secret": "s3cret",
         "username": "kiosk", "password": "pw"}
HOTEL = "demo"
DEVICE = devices.Device("k1", (HOTEL,))


@pytest.fixture
def clock():
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def opera(clock):
    fake = FakeOpera(clock, app_key=APP_KEY)
    fake.base_url = fake.start()
    fake.add_reservation(pms_id="50001", confirmation="C1001", given="Ada", surname="Lovelace", room="204",
                         arrival="2026-12-05", departure="2026-12-09", status="InHouse", language="de")
    fake.add_reservation(pms_id="50002", confirmation="C1002", given="Alan", surname="Turing", room="305",
                         arrival="2026-12-06", departure="2026-12-08", status="Reserved")
    yield fake
    fake.stop()
    assert fake.violations == [], fake.violations
    assert fake.response_violations == [], fake.response_violations


@pytest.fixture
def cloud(tmp_path, opera, clock):
    st = storage.open_storage(tmp_path / "cloud")
    st.prepare()
    db = st.connect()
    with storage.transaction(db):
        pms_links.link(db, tmp_path / "cloud", HOTEL, kind="opera", url=opera.base_url, pms_hotel="HOTEL1",
                       credentials=CREDS, charge_code="2010", now=clock.now())
    runner = PmsRunner(st, tmp_path / "cloud", clock, poll=60)
    yield st, db, runner
    st.close()


_seq = iter(range(1, 10**6))


def entry(kind, entity_type, entity_id, payload, clock, key=None):
    n = next(_seq)
    return {"key": key or f"k-{n}", "hotelId": HOTEL, "kind": kind, "entityType": entity_type, "entityId": entity_id,
            "hlc": f"{int(clock.now() * 1000):015d}-{n:05d}-k1", "createdAt": clock.now(), "payload": payload}


def offer_taken(clock, conf="C1001", offer="BREAKFAST", price=22.0, key=None):
    return entry("pms.update", "pms", f"reservation:{conf}", {
        "entity": "reservation", "id": conf, "changes": {"addOffer": {
            "offerId": offer, "name": "Breakfast buffet", "type": "addon", "price": price, "currency": "EUR"}},
        "reason": "the guest took the offer at the kiosk", "by": conf, "requiresApproval": False}, clock, key)


def guest_request(clock, ticket="T-1", room="204", title="Two more towels"):
    return entry("ticket.created", "ticket", ticket, {
        "ticketId": ticket, "type": "request", "title": title, "description": "", "roomNumber": room,
        "priority": "normal", "status": "open"}, clock)


def ticket_step(clock, ticket="T-1", old="open", new="done"):
    return entry("ticket.updated", "ticket", ticket, {
        "ticketId": ticket, "changes": {"status": {"old": old, "new": new}}, "by": "s-ana"}, clock)


def push(db, clock, *entries):
    out = apply_push(db, DEVICE, list(entries), clock.now())
    assert all(r["status"] in ("applied", "duplicate") for r in out), out
    return out


def charges(opera, pms_id="50001"):
    return [(c["transactionCode"], c["price"]["amount"], c["reference"]) for c in opera.charges.get(pms_id, [])]


def settle(runner, clock, rounds=40, step=30.0):
    """Passes until nothing is pending (the clock moved past each wait); the number of passes."""
    for i in range(rounds):
        runner.run_hotel(HOTEL)
        db = runner.store.acquire()
        try:
            if pms_outbox.counts(db, HOTEL)["pending"] == 0:
                return i + 1
        finally:
            runner.store.release(db)
        clock.advance(step)
    raise AssertionError("the PMS outbox never settled")


def test_reservations_come_in_as_reference_data_with_the_pms_ids(cloud, opera, clock):
    st, db, runner = cloud
    out = runner.run_hotel(HOTEL)
    assert out["read"] == {"added": 2, "changed": 0, "unchanged": 0}
    rows = {r[0]: json.loads(r[1]) for r in db.execute(
        "SELECT entity_id, data FROM ref_data WHERE hotel_id = ? AND entity_type = 'reservation'", [HOTEL])}
    assert rows["C1001"] == {"confirmation": "C1001", "guest_name": "Ada Lovelace", "room_number": "204",
                             "arrival": "2026-12-05", "departure": "2026-12-09", "status": "InHouse",
                             "language": "de"}
    assert "pms_id" not in rows["C1002"]  # the PMS's own id stays in the cloud
    assert pms_links.reservation(db, HOTEL, "C1002") == ("50002", "Confirmed")
    changes = db.execute("SELECT COUNT(*) FROM changes WHERE hotel_id = ? AND entity_type = 'reservation'",
                         [HOTEL]).fetchone()[0]
    assert changes == 2
    assert runner.run_hotel(HOTEL, read=True)["read"] == {"added": 0, "changed": 0, "unchanged": 2}
    assert db.execute("SELECT COUNT(*) FROM changes WHERE hotel_id = ? AND entity_type = 'reservation'",
                      [HOTEL]).fetchone()[0] == changes  # the same reservations again log nothing


def test_an_offer_taken_is_one_charge_with_a_stable_reference(cloud, opera, clock):
    st, db, runner = cloud
    e = offer_taken(clock)
    push(db, clock, e)
    push(db, clock, e)  # the kiosk pushed it again (its answer was lost): still one action
    assert pms_outbox.counts(db, HOTEL) == {"pending": 1, "delivered": 0, "dead": 0}
    settle(runner, clock)
    ref = pms_outbox.reference(HOTEL, f"charge:{e['key']}")
    assert charges(opera) == [("2010", 22.0, ref)]
    assert pms_outbox.counts(db, HOTEL) == {"pending": 0, "delivered": 1, "dead": 0}
    for _ in range(3):
        runner.run_hotel(HOTEL)
    assert len(opera.charges["50001"]) == 1


def test_a_lost_answer_is_looked_up_not_sent_again(cloud, opera, clock):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)  # reads the reservations
    push(db, clock, offer_taken(clock), guest_request(clock))
    opera.lose_answer_next()
    out = runner.run_hotel(HOTEL)  # the charge reaches OPERA, its answer is lost (a 504): the pass stops there
    assert out["unreachable"] == 1 and pms_outbox.counts(db, HOTEL) == {"pending": 2, "delivered": 0, "dead": 0}
    settle(runner, clock)
    assert len(opera.charges["50001"]) == 1
    assert len(opera.service_requests) == 1
    posts = [p for m, p in opera.requests if m == "POST" and "/charges" in p]
    assert len(posts) == 1  # the second time, OPERA was asked (GET folios) and not sent it again
    assert any(m == "GET" and p.endswith("/folios") for m, p in opera.requests)


def test_503_with_retry_after_an_expired_token_and_a_pms_down_for_hours(cloud, opera, clock):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    push(db, clock, offer_taken(clock, offer="BREAKFAST"), offer_taken(clock, conf="C1002", offer="SPA", price=40),
         guest_request(clock, "T-1"), guest_request(clock, "T-2", room="305", title="The shower is broken"))
    opera.fail_next(1, 503, retry_after=7)
    runner.run_hotel(HOTEL)
    waiting = pms_outbox.listed(db, HOTEL, "pending")
    assert any(a.last_error and "503" in a.last_error and a.next_at == pytest.approx(clock.now() + 7)
               for a in waiting)
    opera.expire_tokens()
    opera.down = True
    for _ in range(20):  # hours of a PMS that answers 503 to everything
        runner.run_hotel(HOTEL)
        clock.advance(900)
    assert pms_outbox.counts(db, HOTEL)["dead"] == 0
    opera.down = False
    settle(runner, clock)
    assert len(opera.charges["50001"]) == 1 and len(opera.charges["50002"]) == 1
    assert sorted(sr["room"] for sr in opera.service_requests.values()) == ["204", "305"]
    assert opera.tokens_issued >= 2  # renewed after it expired


def test_a_worker_killed_mid_send_leaves_an_action_that_is_looked_up_first(cloud, opera, clock, tmp_path):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    push(db, clock, offer_taken(clock))
    a = pms_outbox.due(db, HOTEL, clock.now())[0]
    with storage.transaction(db):  # what the dead worker committed before its request left
        assert pms_outbox.claim(db, a, clock.now(), 120)
    from sync.cloud.connectors.opera import OperaConnector
    OperaConnector(opera.base_url, "HOTEL1", CREDS, clock=clock).send(
        "charge", {"pmsId": "50001", "amount": 22.0, "currency": "EUR", "code": "2010",
                   "description": "Breakfast buffet"}, a.reference)  # ... and it reached OPERA
    other = PmsRunner(st, tmp_path / "cloud", clock, poll=60, owner="worker-2")
    assert other.run_hotel(HOTEL)["skipped"]  # the lease is still the dead worker's
    clock.advance(130)  # the lease and the claim ran out
    settle(other, clock)
    assert len(opera.charges["50001"]) == 1
    assert pms_outbox.listed(db, HOTEL, "delivered")[0].pms_ref is not None


def test_a_guest_request_and_its_steps_become_one_service_request_in_order(cloud, opera, clock):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    push(db, clock, guest_request(clock, "T-9"), ticket_step(clock, "T-9", "open", "in_progress"),
         ticket_step(clock, "T-9", "in_progress", "done"))
    settle(runner, clock)
    [sr] = opera.service_requests.values()
    assert sr["room"] == "204" and sr["status"] == "Closed" and "Two more towels" in sr["comment"]
    assert sr["reservationIdList"][0]["id"] == "50001"


def test_a_refusal_is_a_dead_letter_with_the_pms_words_and_a_conflict_for_the_kiosks(cloud, opera, clock):
    st, db, runner = cloud
    opera.reservations[0]["reservationStatus"] = "Cancelled"
    runner.run_hotel(HOTEL)
    e = offer_taken(clock)
    push(db, clock, e)
    runner.run_hotel(HOTEL)
    [a] = pms_outbox.listed(db, HOTEL, "dead")
    assert "Canceled" in a.last_error and a.source_key == e["key"]
    assert opera.charges == {}
    row = db.execute("SELECT rule, entry_key, device_id FROM conflicts WHERE hotel_id = ?", [HOTEL]).fetchone()
    assert tuple(row) == ("pms-authoritative", e["key"], "k1")
    pulled = db.execute("SELECT COUNT(*) FROM changes WHERE hotel_id = ? AND entity_type = 'conflict'",
                        [HOTEL]).fetchone()[0]
    assert pulled == 1
    # a 4xx from OPERA itself: a room the hotel does not have
    push(db, clock, guest_request(clock, "T-5", room="204"))
    opera.fail_next(1, 400, retry_after=None)
    runner.run_hotel(HOTEL)
    dead = pms_outbox.listed(db, HOTEL, "dead")
    assert len(dead) == 2 and "HTTP 400" in dead[0].last_error


def test_an_unlinked_hotel_queues_nothing_and_the_lease_is_one_owners(cloud, opera, clock, tmp_path):
    st, db, runner = cloud
    with storage.transaction(db):
        assert pms_links.take_lease(db, HOTEL, "a", clock.now())
        assert not pms_links.take_lease(db, HOTEL, "b", clock.now())
        assert pms_links.take_lease(db, HOTEL, "b", clock.now() + pms_links.LEASE_SECONDS + 1)
        pms_links.unlink(db, tmp_path / "cloud", HOTEL)
    assert not pms_links.credentials_path(tmp_path / "cloud", HOTEL).exists()
    push(db, clock, offer_taken(clock))
    assert pms_outbox.counts(db, HOTEL)["pending"] == 0


def work_order(clock, wo="WO-7", room="204", type_="failure"):
    return entry("work_order.created", "work_order", wo, {
        "workOrderId": wo, "assetId": "AC-204", "roomNumber": room, "type": type_,
        "description": "air conditioning blows warm", "status": "open", "assignee": None, "priority": "high",
        "notes": "", "openedAt": "2026-12-06T08:00:00Z", "closedAt": None}, clock)


def work_order_step(clock, wo="WO-7", old="open", new="done"):
    return entry("work_order.updated", "work_order", wo, {
        "workOrderId": wo, "changes": {"status": {"old": old, "new": new}}, "by": "s-tom",
        "at": "2026-12-06T09:00:00Z"}, clock)


def test_a_rooms_fault_is_one_maintenance_resolved_when_the_work_order_is_done(cloud, opera, clock):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    opera.lose_answer_next()  # the maintenance is made, its answer lost: looked up, not made twice
    push(db, clock, work_order(clock), work_order(clock, "WO-8", type_="preventive"))
    settle(runner, clock)
    [m] = opera.maintenances.values()
    assert m["room"] == "204" and m["code"] == "KIOSK" and "blows warm" in m["remarks"] and not m["resolved"]
    push(db, clock, work_order_step(clock, new="in_progress"))
    assert pms_outbox.counts(db, HOTEL)["pending"] == 0  # only a close is sent
    push(db, clock, work_order_step(clock, old="in_progress", new="done"))
    settle(runner, clock)
    assert [x["resolved"] for x in opera.maintenances.values()] == [True]
    assert sum(1 for m, p in opera.requests if m == "POST" and "maintenanceCodes" in p) == 1


def test_a_refused_login_waits_and_a_dead_action_can_be_sent_again(cloud, opera, clock, tmp_path):
    from click.testing import CliRunner

    from sync.cloud.cli import main

    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    opera.user = ("kiosk", "changed")  # the integration user's password changed in OPERA
    opera.expire_tokens()
    runner._connectors.clear()  # a fresh connector must log in again
    push(db, clock, offer_taken(clock))
    runner.run_hotel(HOTEL)
    [a] = pms_outbox.listed(db, HOTEL, "pending")
    assert "token" in a.last_error and pms_outbox.counts(db, HOTEL)["dead"] == 0  # waits, never dead
    opera.user = ("kiosk", "pw")
    settle(runner, clock)
    assert len(opera.charges["50001"]) == 1
    opera.fail_next(1, 422, retry_after=None)  # a refusal for good ...
    push(db, clock, offer_taken(clock, offer="SPA", price=40))
    runner.run_hotel(HOTEL)
    [dead] = pms_outbox.listed(db, HOTEL, "dead")
    out = CliRunner().invoke(main, ["pms", "status", "--hotel", HOTEL, "--data-dir", str(tmp_path / "cloud")])
    assert f"dead #{dead.id} charge" in out.output
    r = CliRunner().invoke(main, ["pms", "retry", "--hotel", HOTEL, "--action", str(dead.id),
                                  "--data-dir", str(tmp_path / "cloud")])
    assert r.exit_code == 0, r.output  # ... fixed in the PMS, sent again
    settle(runner, clock)
    assert len(opera.charges["50001"]) == 2
    r = CliRunner().invoke(main, ["pms", "retry", "--hotel", HOTEL, "--action", str(dead.id),
                                  "--data-dir", str(tmp_path / "cloud")])
    assert r.exit_code != 0 and "NOT_FOUND" in r.output


def test_steps_of_what_the_pms_never_heard_of_send_nothing_and_a_down_pms_stops_the_pass(cloud, opera, clock):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    push(db, clock, guest_request(clock, "T-NR", room=None), ticket_step(clock, "T-NR", "open", "done"),
         work_order(clock, "WO-P", type_="preventive"), work_order_step(clock, "WO-P", "open", "cancelled"))
    assert pms_outbox.counts(db, HOTEL) == {"pending": 0, "delivered": 0, "dead": 0}
    opera.down = True
    push(db, clock, *(offer_taken(clock, offer=f"O{i}", price=i + 1) for i in range(5)))
    out = runner.run_hotel(HOTEL)
    assert out["unreachable"] == 1 and out["retrying"] == 0  # one attempt, not five, while it is down
    posts = sum(1 for m, p in opera.requests if m == "POST" and "/charges" in p)
    assert posts == 1
    opera.down = False
    settle(runner, clock)
    assert len(opera.charges["50001"]) == 5


def test_pms_poll_off_never_reads(tmp_path, opera, clock):
    st = storage.open_storage(tmp_path / "c2")
    st.prepare()
    db = st.connect()
    with storage.transaction(db):
        pms_links.link(db, tmp_path / "c2", HOTEL, kind="opera", url=opera.base_url, pms_hotel="HOTEL1",
                       credentials=CREDS, charge_code="2010", now=clock.now())
    runner = PmsRunner(st, tmp_path / "c2", clock, poll=10 ** 9)
    assert runner.run_hotel(HOTEL)["read"] is None
    assert not any("/reservations" in p for _, p in opera.requests)
    st.close()
