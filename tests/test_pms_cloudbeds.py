"""The Cloudbeds connector against a fake Cloudbeds that validates every request against
the published OpenAPI specs (and its own answers against the response schemas)."""

from __future__ import annotations

from decimal import Decimal
from email.utils import formatdate

import pytest
import requests

from kiosk.clock import FakeClock
from sync.cloud.connectors.cloudbeds import CloudbedsConnector, idempotency_key, minor_units
from sync.cloud.connectors.errors import PmsError
from tests.fakepms.cloudbeds import SPEC_DIR, CloudbedsFake

pytestmark = pytest.mark.skipif(not (SPEC_DIR / "pms-v1.3-openapi.yaml").exists(),
                                reason="Cloudbeds OpenAPI specs not available")

KEY = "cb-test-key"
PROPERTY = "4242"


@pytest.fixture(scope="module")
def server():
    fake = CloudbedsFake(api_key=KEY, property_id=PROPERTY)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server):
    """The module's server with its state cleared, and clean of violations at the end."""
    server.reset()
    yield server
    assert server.violations == []
    assert server.response_violations == []


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def cb(fake, clock):
    return CloudbedsConnector(fake.base_url, PROPERTY, {"api_key": KEY}, clock=clock, timeout=5)


STATUSES = ["confirmed", "not_confirmed", "checked_in", "checked_out", "canceled", "no_show"]
EXPECTED = {"confirmed": "Confirmed", "not_confirmed": "Confirmed", "checked_in": "InHouse",
            "checked_out": "CheckedOut", "canceled": "Canceled", "no_show": "Canceled"}


def test_reservations_are_read_across_pages_and_mapped(fake, cb):
    for i in range(450):
        assigned = i % 3 != 0
        fake.add_reservation(f"R{i:04d}", guest_name=f"Guest {i}", start="2026-03-01", end="2026-03-04",
                             status=STATUSES[i % len(STATUSES)],
                             room_id=f"{100 + i}" if assigned else None,
                             room_name=f"Room {100 + i}" if assigned else None, third_party_id=f"BK{i}")
    rows = list(cb.read_reservations())
    assert len(rows) == 450
    assert [r["pms_id"] for r in rows] == [f"R{i:04d}" for i in range(450)]
    pages = [c for c in fake.calls if c[1] == "/getReservations"]
    assert len(pages) == 5
    assert rows[1] == {"confirmation": "R0001", "guest_name": "Guest 1", "room_number": "Room 101",
                       "arrival": "2026-03-01", "departure": "2026-03-04", "status": "Confirmed", "pms_id": "R0001"}
    assert rows[0]["room_number"] is None
    for i, row in enumerate(rows):
        assert row["status"] == EXPECTED[STATUSES[i % len(STATUSES)]]


def test_reservation_filters_pass_through(fake, cb):
    fake.add_reservation("A", guest_name="In", start="2026-03-01", end="2026-03-02", status="checked_in")
    fake.add_reservation("B", guest_name="Out", start="2026-03-01", end="2026-03-02", status="checked_out")
    assert [r["pms_id"] for r in cb.read_reservations(status="checked_in")] == ["A"]


def test_no_reservations_is_one_call(fake, cb):
    assert list(cb.read_reservations()) == []
    assert len(fake.calls) == 1


def test_an_item_is_posted_once(fake, cb):
    fake.add_reservation("R1", guest_name="Ann", start="2026-03-01", end="2026-03-03")
    result = cb.post_item("R1", amount=Decimal("12.50"), currency="EUR", name="Late checkout", reference="act-1")
    assert result["check_id"] == idempotency_key(PROPERTY, "act-1") and result["replayed"] is False
    assert [(i["reservationId"], i["amount"], i["currency"], i["name"]) for i in fake.folio_items] == [
        ("R1", 1250, "EUR", "Late checkout")]


def test_lost_answer_then_retry_posts_exactly_one_item(fake, cb):
    fake.add_reservation("R1", guest_name="Ann", start="2026-03-01", end="2026-03-03")
    fake.lose_answer_next()
    with pytest.raises(PmsError) as lost:
        cb.post_item("R1", amount="30", currency="USD", name="Breakfast", reference="act-2")
    assert lost.value.status == 504 and not lost.value.permanent
    assert len(fake.folio_items) == 1  # applied, answer lost
    again = cb.post_item("R1", amount="30", currency="USD", name="Breakfast", reference="act-2")
    assert again["replayed"] is True
    assert len(fake.folio_items) == 1
    assert list(fake.idempotency) == [idempotency_key(PROPERTY, "act-2")]


def test_reused_key_with_another_body_is_permanent(fake, cb):
    fake.add_reservation("R1", guest_name="Ann", start="2026-03-01", end="2026-03-03")
    cb.post_item("R1", amount="30", currency="USD", name="Breakfast", reference="act-3")
    with pytest.raises(PmsError) as err:
        cb.post_item("R1", amount="31", currency="USD", name="Breakfast", reference="act-3")
    assert err.value.status == 409 and err.value.permanent
    assert "IDEMPOTENCY_KEY_REUSED" in str(err.value)
    assert len(fake.folio_items) == 1


def test_unknown_reservation_is_permanent(fake, cb):
    with pytest.raises(PmsError) as err:
        cb.post_item("NOPE", amount="1", currency="USD", name="x", reference="act-4")
    assert err.value.status == 404 and err.value.permanent


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_carries_retry_after_and_is_retryable(fake, cb, status):
    fake.add_reservation("R1", guest_name="Ann", start="2026-03-01", end="2026-03-03")
    fake.fail_next(1, status=status, retry_after=7)
    with pytest.raises(PmsError) as err:
        cb.post_item("R1", amount="5", currency="USD", name="Water", reference="act-5")
    assert (err.value.status, err.value.retry_after, err.value.permanent) == (status, 7.0, False)
    assert fake.folio_items == []
    cb.post_item("R1", amount="5", currency="USD", name="Water", reference="act-5")
    assert len(fake.folio_items) == 1


def test_retry_after_as_http_date_reads_the_clock(cb, clock):
    clock.t = 1_780_000_000.0
    assert cb._retry_after(formatdate(1_780_000_040, usegmt=True)) == pytest.approx(40.0)
    assert cb._retry_after("garbage") is None


def test_other_5xx_and_401_retryable_other_4xx_permanent(fake, cb):
    fake.fail_next(1, status=500, retry_after=None)
    with pytest.raises(PmsError) as err:
        list(cb.read_reservations())
    assert err.value.status == 500 and not err.value.permanent and err.value.retry_after is None
    bad = CloudbedsConnector(fake.base_url, PROPERTY, {"api_key": "wrong"}, clock=FakeClock())
    with pytest.raises(PmsError) as err:
        list(bad.read_reservations())
    assert err.value.status == 401 and not err.value.permanent  # a rotated key: nothing waiting goes dead
    fake.fail_next(1, status=404, retry_after=None)
    with pytest.raises(PmsError) as err:
        list(cb.read_reservations())
    assert err.value.status == 404 and err.value.permanent


def test_down_and_timeout_are_retryable(fake, cb, clock):
    fake.down = True
    try:
        with pytest.raises(PmsError) as err:
            list(cb.read_reservations())
        assert err.value.status is None and not err.value.permanent
    finally:
        fake.down = False
    assert list(cb.read_reservations()) == []

    class Slow(requests.Session):
        def request(self, *args, **kw):
            raise requests.Timeout("read timed out")

    slow = CloudbedsConnector(fake.base_url, PROPERTY, {"api_key": KEY}, clock=clock, session=Slow())
    with pytest.raises(PmsError) as err:
        slow.set_room_status("101", "Clean")
    assert err.value.status is None and not err.value.permanent


def test_room_status_is_set(fake, cb):
    fake.add_room("101", "dirty")
    assert cb.set_room_status("101", "Clean")["roomCondition"] == "clean"
    assert fake.room_status["101"]["roomCondition"] == "clean"
    cb.set_room_status("101", "Pickup", comments="guest asked")
    assert fake.room_status["101"] == {"roomCondition": "dirty", "vacantPickup": True,
                                       "doNotDisturb": False, "roomComments": "guest asked"}


def test_room_status_errors_are_permanent(fake, cb):
    with pytest.raises(PmsError) as err:
        cb.set_room_status("999", "Clean")  # Cloudbeds answers success: false
    assert err.value.permanent
    with pytest.raises(PmsError) as err:
        cb.set_room_status("101", "OutOfOrder")  # a room block in Cloudbeds, not a status
    assert err.value.permanent
    assert len(fake.calls) == 1


def test_minor_units():
    assert minor_units(Decimal("12.5"), "usd") == "1250"
    assert minor_units(1500, "JPY") == "1500"
    assert minor_units("1.234", "KWD") == "1234"
    with pytest.raises(ValueError):
        minor_units("1.234", "EUR")


# -- the fake itself: it refuses what breaks the spec, and its answers match the spec -----

def _headers(**extra):
    return {"x-api-key": KEY, **extra}


@pytest.mark.parametrize("method,path,kw,needle", [
    ("GET", "/api/v1.3/getReservations", {"params": {"pageSize": "lots"}}, "pageSize"),
    ("GET", "/api/v1.3/getReservations", {"params": {"page": "2"}}, "not in the spec"),
    ("GET", "/api/v1.3/getReservations", {"params": {"pageSize": "200"}}, "pageSize max 100"),
    ("GET", "/api/v1.3/getReservations", {"params": {"status": "in_house"}}, "status"),
    ("GET", "/api/v1.3/getReservationz", {}, "no such path"),
    ("DELETE", "/api/v1.3/getReservations", {}, "method DELETE"),
    ("POST", "/api/v1.3/postHousekeepingStatus", {"data": {"roomID": "1", "roomCondition": "sparkling"}},
     "roomCondition"),
    ("POST", "/api/v1.3/postHousekeepingStatus", {"json": {"roomID": "1"}}, "content type"),
    ("POST", "/folio/v1/checks", {"json": {"reservationId": "R1"}, "headers": {"x-property-id": PROPERTY}},
     "Idempotency-Key"),
    ("POST", "/folio/v1/checks", {"json": {"reservationId": "R1", "items": [{"itemType": "PRODUCT"}]},
                                  "headers": {"x-property-id": PROPERTY, "Idempotency-Key": "k"}}, "itemName"),
    ("POST", "/folio/v1/checks", {"json": {"reservationId": "R1", "items": [{
        "itemType": "PRODUCT", "itemName": "x", "itemQuantity": 1, "details": {"itemSku": "s"},
        "itemAmount": {"amount": 100, "currencyCode": "USD"}}]},
        "headers": {"x-property-id": PROPERTY, "Idempotency-Key": "k"}}, "amount"),
])
def test_fake_refuses_requests_that_break_the_spec(server, method, path, kw, needle):
    server.violations.clear()
    headers = _headers(**kw.pop("headers", {}))
    resp = requests.request(method, server.base_url + path, headers=headers, timeout=5, **kw)
    assert resp.status_code == 400
    assert len(server.violations) == 1 and needle in server.violations[0]
    assert server.idempotency == {} and server.folio_items == []
    server.violations.clear()


def test_fake_refuses_a_request_without_the_api_key(server):
    server.violations.clear()
    resp = requests.get(server.base_url + "/api/v1.3/getReservations", timeout=5)
    assert resp.status_code == 400 and "x-api-key" in server.violations[0]
    server.violations.clear()


def test_fake_checks_its_answers_against_the_response_schemas(server):
    spec = server.specs["1.3"]
    op = spec.doc["paths"]["/getReservations"]["get"]
    before = list(server.response_violations)
    server._check_response(spec, op, "/getReservations", 200,
                           {"success": True, "data": [{"reservationID": 7, "status": "in_house"}], "total": 1})
    found = server.response_violations[len(before):]
    del server.response_violations[len(before):]
    assert any("reservationID" in v for v in found) and any("status" in v for v in found)
