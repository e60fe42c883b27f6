"""The cloud's PMS outbox delivered into a fake Cloudbeds that validates every request against
Cloudbeds' published OpenAPI specs: reservations in as reference data; one folio check per
offer taken through a lost answer (sent again with the same Idempotency-Key, never looked
up), 429/503 with Retry-After, and a PMS down for hours; guest requests stay in the cloud
(Cloudbeds has no service requests); a refusal is a dead letter and a conflict."""

from __future__ import annotations

import json

import pytest

from kiosk.clock import FakeClock
from sync.cloud import devices, pms_links, pms_outbox, storage
from sync.cloud.apply import apply_push
from sync.cloud.connectors.cloudbeds import CloudbedsConnector, idempotency_key
from sync.cloud.pms_delivery import PmsRunner
from tests.fakepms.cloudbeds import SPEC_DIR, CloudbedsFake

pytestmark = pytest.mark.skipif(not (SPEC_DIR / "pms-v1.3-openapi.yaml").exists(),
                                reason="Cloudbeds OpenAPI specs not available")

API_KEY = "cb-outbox-key"
PROPERTY = "4242"
HOTEL = "demo"
DEVICE = devices.Device("k1", (HOTEL,))
CHECKS = ("POST", "/folio/v1/checks")


@pytest.fixture(scope="module")
def server():
    fake = CloudbedsFake(api_key=API_KEY, property_id=PROPERTY)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def clock():
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def fake(server):
    """The module's server, cleared, with two reservations; clean of violations at the end."""
    server.reset()
    server.down = False
    server.add_reservation("R1001", guest_name="Ada Lovelace", start="2026-12-05", end="2026-12-09",
                           status="checked_in", room_id="204", room_name="204", third_party_id="BK-77")
    server.add_reservation("R1002", guest_name="Alan Turing", start="2026-12-06", end="2026-12-08",
                           status="confirmed")
    yield server
    server.down = False
    assert server.violations == [], server.violations
    assert server.response_violations == [], server.response_violations


@pytest.fixture
def cloud(tmp_path, fake, clock):
    st = storage.open_storage(tmp_path / "cloud")
    st.prepare()
    db = st.connect()
    with storage.transaction(db):
        pms_links.link(db, tmp_path / "cloud", HOTEL, kind="cloudbeds", url=fake.base_url, pms_hotel=PROPERTY,
                       credentials={"api_key": API_KEY}, charge_code="KIOSK", now=clock.now())
    runner = PmsRunner(st, tmp_path / "cloud", clock, poll=60)
    yield st, db, runner
    st.close()


_seq = iter(range(1, 10**6))


def entry(kind, entity_type, entity_id, payload, clock, key=None):
    n = next(_seq)
    return {"key": key or f"cb-{n}", "hotelId": HOTEL, "kind": kind, "entityType": entity_type,
            "entityId": entity_id, "hlc": f"{int(clock.now() * 1000):015d}-{n % 100000:05d}-k1",
            "createdAt": clock.now(), "payload": payload}


def offer_taken(clock, conf="R1001", offer="BREAKFAST", price=22.0, name="Breakfast buffet"):
    return entry("pms.update", "pms", f"reservation:{conf}", {
        "entity": "reservation", "id": conf, "changes": {"addOffer": {
            "offerId": offer, "name": name, "type": "addon", "price": price, "currency": "EUR"}},
        "reason": "the guest took the offer at the kiosk", "by": conf, "requiresApproval": False}, clock)


def guest_request(clock, ticket="T-1", room="204", title="Two more towels"):
    return entry("ticket.created", "ticket", ticket, {
        "ticketId": ticket, "type": "request", "title": title, "description": "", "roomNumber": room,
        "priority": "normal", "status": "open", "confirmation": "R1001"}, clock)


def ticket_step(clock, ticket="T-1", old="open", new="done"):
    return entry("ticket.updated", "ticket", ticket, {
        "ticketId": ticket, "changes": {"status": {"old": old, "new": new}}, "by": "s-ana"}, clock)


def push(db, clock, *entries):
    out = apply_push(db, DEVICE, list(entries), clock.now())
    assert all(r["status"] in ("applied", "duplicate") for r in out), out
    return out


def items(fake, reservation="R1001"):
    return [(i["name"], i["amount"], i["currency"], i["idempotencyKey"]) for i in fake.folio_items
            if i["reservationId"] == reservation]


def key_of(e) -> str:
    """The Idempotency-Key the connector sends for the charge of the kiosk entry ``e``."""
    return idempotency_key(PROPERTY, pms_outbox.reference(HOTEL, f"charge:{e['key']}"))


def settle(runner, clock, rounds=60, step=30.0):
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


def test_reservations_come_in_as_reference_data_with_cloudbeds_ids(cloud, fake, clock):
    st, db, runner = cloud
    out = runner.run_hotel(HOTEL)
    assert out["read"] == {"added": 2, "changed": 0, "unchanged": 0}
    rows = {r[0]: json.loads(r[1]) for r in db.execute(
        "SELECT entity_id, data FROM ref_data WHERE hotel_id = ? AND entity_type = 'reservation'", [HOTEL])}
    assert rows == {
        "R1001": {"confirmation": "R1001", "guest_name": "Ada Lovelace", "room_number": "204",
                  "arrival": "2026-12-05", "departure": "2026-12-09", "status": "InHouse"},
        "R1002": {"confirmation": "R1002", "guest_name": "Alan Turing", "room_number": None,
                  "arrival": "2026-12-06", "departure": "2026-12-08", "status": "Confirmed"}}
    # the reservation id is Cloudbeds' own id too (what every write names); the OTA's number is not used
    assert pms_links.reservation(db, HOTEL, "R1001") == ("R1001", "InHouse")
    assert pms_links.reservation(db, HOTEL, "R1002") == ("R1002", "Confirmed")
    assert pms_links.in_house(db, HOTEL, "204") == "R1001"
    reads = [c for c in fake.calls if c == ("GET", "/getReservations")]
    assert len(reads) == 1
    # the status changed in Cloudbeds: the next read changes the one row
    fake.reservations[1]["status"] = "checked_in"
    fake.reservations[1]["roomName"] = "305"
    assert runner.run_hotel(HOTEL, read=True)["read"] == {"added": 0, "changed": 1, "unchanged": 1}
    assert pms_links.reservation(db, HOTEL, "R1002") == ("R1002", "InHouse")


def test_an_offer_taken_is_one_folio_check_with_a_stable_idempotency_key(cloud, fake, clock):
    st, db, runner = cloud
    e = offer_taken(clock)
    push(db, clock, e)
    push(db, clock, e)  # pushed again by a kiosk whose answer was lost: still one action
    assert pms_outbox.counts(db, HOTEL) == {"pending": 1, "delivered": 0, "dead": 0}
    settle(runner, clock)
    assert items(fake) == [("Breakfast buffet", 2200, "EUR", key_of(e))]
    [a] = pms_outbox.listed(db, HOTEL, "delivered")
    assert a.pms_ref == key_of(e)  # Cloudbeds' checkId, which the connector set to the key
    for _ in range(3):
        runner.run_hotel(HOTEL)
        clock.advance(60)
    assert fake.calls.count(CHECKS) == 1 and len(fake.folio_items) == 1


def test_a_lost_answer_is_sent_again_with_the_same_key_and_not_looked_up(cloud, fake, clock, monkeypatch):
    st, db, runner = cloud
    looked_up = []
    monkeypatch.setattr(CloudbedsConnector, "find", lambda self, *a: looked_up.append(a))
    runner.run_hotel(HOTEL)  # reads the reservations (the next read is a poll away)
    e = offer_taken(clock)
    push(db, clock, e)
    fake.lose_answer_next()
    out = runner.run_hotel(HOTEL, read=False)  # the check reaches Cloudbeds; its answer is lost
    assert out["unreachable"] == 1  # a 504: the pass stops there
    [a] = pms_outbox.listed(db, HOTEL, "pending")
    assert a.maybe_sent and a.attempts == 1 and "504" in a.last_error
    assert a.next_at == pytest.approx(clock.now() + pms_outbox.backoff(1))
    assert len(fake.folio_items) == 1  # applied, though the cloud could not know
    clock.advance(pms_outbox.backoff(1))
    out = runner.run_hotel(HOTEL, read=False)
    assert out["delivered"] == 1
    assert items(fake) == [("Breakfast buffet", 2200, "EUR", key_of(e))]  # Cloudbeds replayed the first check
    assert list(fake.idempotency) == [key_of(e)]  # both sends carried the one key
    # sent twice, never looked up: no call but the read and the two checks
    assert fake.calls == [("GET", "/getReservations"), CHECKS, CHECKS]
    assert looked_up == []  # the charge is idempotent in Cloudbeds: the runner never asked find()
    [a] = pms_outbox.listed(db, HOTEL, "delivered")
    assert a.pms_ref == key_of(e) and a.attempts == 2


@pytest.mark.parametrize("status,wait", [(429, 7), (503, 40)])
def test_throttling_waits_the_retry_after_cloudbeds_asked_for(cloud, fake, clock, status, wait):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    push(db, clock, offer_taken(clock))
    fake.fail_next(1, status, retry_after=wait)
    runner.run_hotel(HOTEL, read=False)
    [a] = pms_outbox.listed(db, HOTEL, "pending")
    assert f"HTTP {status}" in a.last_error
    assert a.next_at == pytest.approx(clock.now() + wait)  # Cloudbeds' wait, not the backoff
    assert pms_links.get(db, HOTEL).last_error == a.last_error
    sent = fake.calls.count(CHECKS)
    clock.advance(wait - 1)
    assert runner.run_hotel(HOTEL, read=False)["delivered"] == 0
    assert fake.calls.count(CHECKS) == sent  # nothing sent before the wait was over
    clock.advance(1)
    assert runner.run_hotel(HOTEL, read=False)["delivered"] == 1
    assert len(fake.folio_items) == 1 and fake.calls.count(CHECKS) == 2


def test_cloudbeds_down_for_hours_loses_nothing_and_doubles_nothing(cloud, fake, clock):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    first = offer_taken(clock, offer="BREAKFAST")
    push(db, clock, first)
    fake.lose_answer_next()  # the first check reached Cloudbeds just before it went down
    runner.run_hotel(HOTEL, read=False)
    fake.down = True  # connection refused
    later = [offer_taken(clock, offer="SPA", price=40.0, name="Spa"),
             offer_taken(clock, conf="R1002", offer="LATE", price=15.5, name="Late checkout")]
    push(db, clock, *later)
    for _ in range(24):  # six hours of a PMS that takes no connection (reads included)
        runner.run_hotel(HOTEL)
        clock.advance(900)
    assert pms_outbox.counts(db, HOTEL) == {"pending": 3, "delivered": 0, "dead": 0}
    assert "ConnectionError" in pms_links.get(db, HOTEL).last_error
    fake.down = False
    settle(runner, clock)
    assert pms_outbox.counts(db, HOTEL) == {"pending": 0, "delivered": 3, "dead": 0}
    assert sorted(items(fake)) == sorted([("Breakfast buffet", 2200, "EUR", key_of(first)),
                                          ("Spa", 4000, "EUR", key_of(later[0]))])
    assert items(fake, "R1002") == [("Late checkout", 1550, "EUR", key_of(later[1]))]
    assert len(fake.idempotency) == 3


def test_guest_requests_queue_nothing_for_a_cloudbeds_hotel(cloud, fake, clock):
    st, db, runner = cloud
    assert "service_request" not in CloudbedsConnector.ACTIONS
    runner.run_hotel(HOTEL)
    out = push(db, clock, guest_request(clock, "T-1"), ticket_step(clock, "T-1", "open", "in_progress"),
               ticket_step(clock, "T-1", "in_progress", "done"))
    assert [r["status"] for r in out] == ["applied"] * 3  # the tickets are the cloud's, as before
    assert db.execute("SELECT status FROM tickets WHERE hotel_id = ? AND ticket_id = 'T-1'",
                      [HOTEL]).fetchone()[0] == "done"
    assert db.execute("SELECT COUNT(*) FROM pms_actions WHERE hotel_id = ?", [HOTEL]).fetchone()[0] == 0
    calls = list(fake.calls)
    for _ in range(3):
        runner.run_hotel(HOTEL, read=False)
        clock.advance(30)
    assert fake.calls == calls  # nothing was sent


def test_a_refusal_is_a_dead_letter_with_cloudbeds_words_and_a_conflict(cloud, fake, clock):
    st, db, runner = cloud
    runner.run_hotel(HOTEL)
    del fake.reservations[0]  # Cloudbeds no longer has R1001 (deleted there after the read)
    e = offer_taken(clock)
    push(db, clock, e)
    assert runner.run_hotel(HOTEL, read=False)["dead"] == 1
    [a] = pms_outbox.listed(db, HOTEL, "dead")
    assert "HTTP 404" in a.last_error and "FOLIO_NOT_FOUND" in a.last_error and a.source_key == e["key"]
    assert fake.folio_items == [] and fake.calls.count(CHECKS) == 1
    row = db.execute("SELECT rule, entry_key, device_id FROM conflicts WHERE hotel_id = ?", [HOTEL]).fetchone()
    assert tuple(row) == ("pms-authoritative", e["key"], "k1")
    assert db.execute("SELECT COUNT(*) FROM changes WHERE hotel_id = ? AND entity_type = 'conflict'",
                      [HOTEL]).fetchone()[0] == 1
    for _ in range(3):  # a dead letter is not sent again
        runner.run_hotel(HOTEL, read=False)
        clock.advance(900)
    assert fake.calls.count(CHECKS) == 1
    # a 4xx Cloudbeds gives for any reason is as final; a cancelled reservation is never sent
    fake.fail_next(1, 400, retry_after=None)
    push(db, clock, offer_taken(clock, conf="R1002", offer="SPA"))
    assert runner.run_hotel(HOTEL, read=False)["dead"] == 1
    fake.reservations[0]["status"] = "canceled"
    runner.run_hotel(HOTEL, read=True)
    push(db, clock, offer_taken(clock, conf="R1002", offer="LATE"))
    assert runner.run_hotel(HOTEL, read=False)["dead"] == 1
    dead = pms_outbox.listed(db, HOTEL, "dead")
    assert len(dead) == 3 and "Canceled" in dead[0].last_error and "HTTP 400" in dead[1].last_error
    assert fake.calls.count(CHECKS) == 2 and fake.folio_items == []
    assert db.execute("SELECT COUNT(*) FROM conflicts WHERE hotel_id = ? AND rule = 'pms-authoritative'",
                      [HOTEL]).fetchone()[0] == 3
