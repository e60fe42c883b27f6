"""The OPERA Cloud connector against a fake OPERA that validates every request against
the published Swagger specs (tests/fakepms/opera.py)."""

from __future__ import annotations

import pytest
import requests

from sync.cloud.connectors.errors import PmsError
from sync.cloud.connectors.opera import OperaConnector
from tests.fakepms.opera import FakeOpera, SchemaValidator, operations

APP_KEY = "41ecd082-8997-4c69-af34-2f72b83645ff"
CREDS = {"app_key": APP_KEY, "client_id": "kiosk-client", "client_secret": "s3cret",
         "username": "kiosk", "password": "pw"}


class FakeClock:
    def __init__(self, t=1_800_000_000.0):
        self.t = t

    def now(self):
        return self.t

    def advance(self, seconds):
        self.t += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake(clock):
    f = FakeOpera(clock, app_key=APP_KEY)
    f.base_url = f.start()
    yield f
    f.stop()
    assert f.violations == [], f.violations
    assert f.response_violations == [], f.response_violations


@pytest.fixture
def opera(fake, clock):
    with requests.Session() as s:
        yield OperaConnector(fake.base_url, "HOTEL1", CREDS, clock=clock, session=s)


def seed(fake, n):
    statuses = ["Reserved", "InHouse", "CheckedOut", "Cancelled", "DueOut"]
    for i in range(n):
        fake.add_reservation(pms_id=str(50000 + i), confirmation=f"C{i:05d}",
                             given="Ada", surname=f"Guest{i}", room=f"{100 + i % 300}",
                             arrival="2026-12-06", departure="2026-12-09",
                             status=statuses[i % 5], language="de" if i % 2 else None)


def test_reservations_read_across_pages_with_field_mapping(fake, opera):
    seed(fake, 450)
    rows = list(opera.read_reservations())
    assert len(rows) == 450
    assert len({r["pms_id"] for r in rows}) == 450
    pages = [p for m, p in fake.requests if p.endswith("/reservations")]
    assert len(pages) == 3
    assert rows[0] == {"confirmation": "C00000", "pms_id": "50000", "guest_name": "Ada Guest0",
                       "room_number": "100", "arrival": "2026-12-06",
                       "departure": "2026-12-09", "status": "Confirmed"}
    assert rows[1]["status"] == "InHouse" and rows[1]["language"] == "de"
    assert [r["status"] for r in rows[2:5]] == ["CheckedOut", "Canceled", "InHouse"]
    assert rows[449]["confirmation"] == "C00449"


def test_token_fetched_once_and_renewed_after_expiry(fake, opera, clock):
    seed(fake, 3)
    for _ in range(3):
        assert len(list(opera.read_reservations())) == 3
    assert fake.tokens_issued == 1
    clock.advance(3600 - 30)  # inside the renewal margin
    list(opera.read_reservations())
    assert fake.tokens_issued == 2


def test_token_renewed_once_on_401(fake, opera):
    seed(fake, 1)
    list(opera.read_reservations())
    fake.expire_tokens()
    assert len(list(opera.read_reservations())) == 1
    assert fake.tokens_issued == 2


def test_persistent_401_is_not_a_loop(fake, opera):
    seed(fake, 1)
    list(opera.read_reservations())
    fake.fail_next(2, status=401, retry_after=None)
    with pytest.raises(PmsError) as e:
        list(opera.read_reservations())
    assert e.value.status == 401 and not e.value.permanent


def test_charge_posted_once(fake, opera):
    seed(fake, 1)
    out = opera.post_charge("50000", amount=12.5, currency="EUR", code="2010",
                            description="Minibar", reference="kiosk-ch-1")
    assert out["reference"] == "kiosk-ch-1" and out["amount"] == 12.5
    assert len(fake.charges["50000"]) == 1
    assert fake.charges["50000"][0]["price"] == {"amount": 12.5, "currencyCode": "EUR"}
    assert opera.find_charge("50000", "kiosk-ch-1")["transaction_no"] == out["transaction_no"]
    assert opera.find_charge("50000", "other") is None


def test_lost_answer_is_found_not_posted_twice(fake, opera):
    seed(fake, 1)
    fake.lose_answer_next()
    with pytest.raises(PmsError) as e:
        opera.post_charge("50000", amount=30, currency="EUR", code="2010",
                          description="Breakfast", reference="kiosk-ch-2")
    assert e.value.status == 504 and not e.value.permanent
    # what a retrying outbox does: look the effect up before sending again
    found = opera.find_charge("50000", "kiosk-ch-2")
    assert found is not None and found["amount"] == 30
    assert len(fake.charges["50000"]) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_carries_retry_after(fake, opera, status):
    seed(fake, 1)
    fake.fail_next(1, status=status, retry_after=7)
    with pytest.raises(PmsError) as e:
        opera.post_charge("50000", amount=1, currency="EUR", code="2010",
                          description="x", reference="r")
    assert e.value.status == status and e.value.retry_after == 7.0
    assert not e.value.permanent
    assert "50000" not in fake.charges


def test_validation_failure_is_permanent(fake, opera):
    seed(fake, 1)
    fake.fail_next(1, status=400, retry_after=None)
    with pytest.raises(PmsError) as e:
        opera.set_room_status("101", "Clean")
    assert e.value.status == 400 and e.value.permanent and e.value.retry_after is None


def test_unknown_reservation_is_permanent(fake, opera):
    with pytest.raises(PmsError) as e:
        opera.post_charge("nope", amount=1, currency="EUR", code="2010",
                          description="x", reference="r")
    assert e.value.status == 404 and e.value.permanent


def test_down_and_unreachable_are_retryable(fake, opera, clock):
    fake.down = True
    with pytest.raises(PmsError) as e:
        opera.set_room_status("101", "Dirty")
    assert e.value.status == 503 and not e.value.permanent
    gone = OperaConnector("http://127.0.0.1:9", "HOTEL1", CREDS, clock=clock)
    with pytest.raises(PmsError) as e:
        gone.set_room_status("101", "Dirty")
    assert e.value.status is None and not e.value.permanent


def test_service_request_post_find_update(fake, opera):
    sid = opera.post_service_request(room="204", code="TOWELS", comment="Two towels",
                                     reference="kiosk-sr-9")
    assert sid in fake.service_requests
    assert fake.service_requests[sid]["room"] == "204"
    found = opera.find_service_request("kiosk-sr-9")
    assert found["id"] == sid and found["status"] == "Open"
    opera.update_service_request(sid, "Closed")
    assert fake.service_requests[sid]["status"] == "Closed"
    assert opera.find_service_request("kiosk-sr-9", statuses=("Open",)) is None
    assert opera.find_service_request("kiosk-sr-9", statuses=("Open", "Closed"))["id"] == sid
    # status travelled as a repeated query parameter, not as a comma list
    assert fake.violations == []


def test_room_status_set(fake, opera):
    opera.set_room_status("101", "Inspected")
    assert fake.room_status == {"101": "Inspected"}


def test_every_call_carries_the_headers(fake, opera):
    seen = []
    fake.app.before_request(lambda: seen.append(dict(requests_headers())))
    opera.set_room_status("101", "Clean")
    token_call, call = seen
    assert call["Authorization"].startswith("Bearer ")
    assert call["X-App-Key"] == APP_KEY and call["X-Hotelid"] == "HOTEL1"
    assert token_call["Authorization"].startswith("Basic ")


def requests_headers():
    from flask import request
    return request.headers


# ---- the fake really validates --------------------------------------------------------

def _raw(fake, opera, method, path, **kw):
    headers = {"Authorization": f"Bearer {opera._bearer()}", "x-app-key": APP_KEY,
               "x-hotelid": "HOTEL1", **kw.pop("headers", {})}
    return requests.request(method, fake.base_url + path, headers=headers, timeout=5, **kw)


def _charge_body(**charge):
    c = {"transactionCode": "2010", "price": {"amount": 5.0, "currencyCode": "EUR"}, **charge}
    return {"criteria": {"hotelId": "HOTEL1", "charges": [c]}}


def test_fake_refuses_requests_that_break_the_spec(fake, opera):
    seed(fake, 1)
    path = "/csh/v1/hotels/HOTEL1/reservations/50000/charges"
    bad = [
        ("POST", path, {"json": _charge_body(price={"amount": "5.00", "currencyCode": "EUR"})},
         "expected number"),
        ("POST", path, {"json": {"criteria": {**_charge_body()["criteria"],
                                              "incomeAuditDate": "2026-12-06"}}},
         "maxLength 8"),
        ("POST", path, {"json": {"criteria": {**_charge_body()["criteria"],
                                              "incomeAuditDate": "20261206"}}},
         "not a date"),
        ("GET", "/fof/v1/hotels/HOTEL1/serviceRequests", {"params": {"status": "Open,Closed"}},
         "not in enum"),
        ("GET", "/rsv/v1/hotels/HOTEL1/reservations", {"params": {"limit": "ten"}},
         "not integer"),
        ("PUT", "/hsk/v1/hotels/HOTEL1/rooms/status",
         {"json": {"roomList": [{"roomId": "101"}], "housekeepingRoomStatus": "Sparkling"}},
         "not in enum"),
        ("DELETE", "/hsk/v1/hotels/HOTEL1/rooms/status", {}, "no such operation"),
        ("POST", path, {"data": "criteria=1"}, "content-type"),
    ]
    for method, p, kw, why in bad:
        before = len(fake.violations)
        r = _raw(fake, opera, method, p, **kw)
        assert r.status_code == 400, (method, p, kw)
        assert len(fake.violations) > before and why in " ".join(fake.violations[before:]), \
            (why, fake.violations[before:])
    r = _raw(fake, opera, "GET", "/rsv/v1/hotels/HOTEL1/reservations",
             headers={"x-hotelid": None})
    assert r.status_code == 400 and "x-hotelid: required" in fake.violations[-1]
    assert "50000" not in fake.charges
    fake.violations.clear()  # they were the point of this test


def test_fake_accepts_a_valid_charge_body(fake, opera):
    seed(fake, 1)
    r = _raw(fake, opera, "POST", "/csh/v1/hotels/HOTEL1/reservations/50000/charges",
             json=_charge_body(postingReference="ok"))
    assert r.status_code == 201, r.text


def test_validator_handles_refs_allof_and_formats():
    op = next(o for o in operations() if o.id == "postBillingCharges")
    v = SchemaValidator(op.spec)
    schema = next(p for p in op.params if p["in"] == "body")["schema"]
    assert v.errors(_charge_body(), schema) == []
    errs = v.errors({"criteria": {"charges": [{"postingQuantity": 1.5}]}}, schema)
    assert any("postingQuantity: expected integer" in e for e in errs)
    errs = v.errors({"criteria": {"hotelId": "H" * 21}}, schema)
    assert any("maxLength 20" in e for e in errs)


def test_fake_checks_its_own_answers(fake, opera):
    seed(fake, 1)
    fake.reservations[0]["reservationStatus"] = "Sleeping"  # not in pMS_ResStatusType
    list(opera.read_reservations())
    assert any("not in enum" in e for e in fake.response_violations)
    fake.response_violations.clear()


# ---- room maintenances (hsk) ----------------------------------------------------------

def _maintenance_posts(fake):
    return [p for m, p in fake.requests if m == "POST" and "/maintenanceCodes/" in p]


def test_maintenance_posted_and_found_by_reference(fake, opera):
    mid = opera.post_maintenance("305", "LEAK", "Tap drips in bathroom", "kiosk-wo-1")
    assert mid in fake.maintenances
    stored = fake.maintenances[mid]
    assert stored["room"] == "305" and stored["code"] == "LEAK" and not stored["resolved"]
    assert stored["remarks"] == "Tap drips in bathroom [ref:kiosk-wo-1]"
    assert _maintenance_posts(fake) == ["/hsk/v1/hotels/HOTEL1/rooms/maintenanceCodes/LEAK"]
    found = opera.find_maintenance("kiosk-wo-1", "305")
    assert found == {"id": mid, "room": "305", "code": "LEAK",
                     "remarks": "Tap drips in bathroom [ref:kiosk-wo-1]", "resolved": False}
    assert opera.find_maintenance("kiosk-wo-1")["id"] == mid  # without the room too
    assert opera.find_maintenance("kiosk-wo-1", "306") is None  # OPERA answers 204
    assert opera.find_maintenance("other", "305") is None
    assert opera.send("maintenance", {"room": "306", "code": "AC", "remark": "Noisy"},
                      "kiosk-wo-2") == opera.find("maintenance", {"room": "306"}, "kiosk-wo-2")
    assert opera.find("maintenance", {"room": "306"}, "kiosk-wo-3") is None


def test_maintenance_long_remark_keeps_its_tag(fake, opera):
    mid = opera.post_maintenance("305", "LEAK", "x" * 3000, "kiosk-wo-long")
    remarks = fake.maintenances[mid]["remarks"]
    assert len(remarks) == 2000 and remarks.endswith(" [ref:kiosk-wo-long]")


def test_maintenance_lost_answer_is_found_not_posted_twice(fake, opera):
    fake.lose_answer_next()
    data = {"room": "412", "code": "TV", "remark": "No signal"}
    with pytest.raises(PmsError) as e:
        opera.send("maintenance", data, "kiosk-wo-4")
    assert e.value.status == 504 and not e.value.permanent
    assert "maintenance" in opera.ACTIONS and "maintenance" not in opera.IDEMPOTENT
    # what the retrying outbox does for a non-idempotent action: find before sending again
    ref = opera.find("maintenance", data, "kiosk-wo-4")
    assert ref in fake.maintenances and fake.maintenances[ref]["room"] == "412"
    assert len(fake.maintenances) == 1 and len(_maintenance_posts(fake)) == 1


def test_maintenance_resolve(fake, opera):
    mid = opera.post_maintenance("305", "LEAK", "Tap drips", "kiosk-wo-5")
    opera.resolve_maintenance(mid)
    assert fake.maintenances[mid]["resolved"]
    found = opera.find_maintenance("kiosk-wo-5", "305")  # resolved ones are found too
    assert found["id"] == mid and found["resolved"]
    puts = [p for m, p in fake.requests if m == "PUT"]
    assert puts == [f"/hsk/v1/hotels/HOTEL1/maintenances/{mid}/resolve"]
    # resolving again (OPERA refuses: already resolved) is no error
    opera.resolve_maintenance(mid)
    assert opera.send("maintenance_resolve", {"pmsRef": mid}, "kiosk-wo-5-done") == mid
    assert fake.maintenances[mid]["resolved"]


def test_maintenance_resolve_with_remark_keeps_the_tag(fake, opera):
    mid = opera.post_maintenance("305", "LEAK", "Tap drips", "kiosk-wo-6")
    opera.resolve_maintenance(mid, remark="Washer replaced")
    assert fake.maintenances[mid]["remarks"] == "Tap drips [ref:kiosk-wo-6] Washer replaced"
    assert fake.maintenances[mid]["resolved"]
    assert opera.find_maintenance("kiosk-wo-6", "305")["resolved"]
    opera.resolve_maintenance(mid, remark="again")  # already resolved: nothing sent
    assert fake.maintenances[mid]["remarks"].endswith("Washer replaced")


def test_maintenance_resolve_answer_lost_then_sent_again(fake, opera):
    mid = opera.post_maintenance("305", "LEAK", "Tap drips", "kiosk-wo-7")
    fake.lose_answer_next()
    with pytest.raises(PmsError) as e:
        opera.send("maintenance_resolve", {"pmsRef": mid}, "kiosk-wo-7-done")
    assert e.value.status == 504 and not e.value.permanent
    assert "maintenance_resolve" in opera.IDEMPOTENT  # the outbox just sends it again
    assert opera.send("maintenance_resolve", {"pmsRef": mid}, "kiosk-wo-7-done") == mid
    assert fake.maintenances[mid]["resolved"]


def test_maintenance_resolve_by_reference_when_no_id_was_found(fake, opera):
    # the create's id was never found (send answered the reference): resolve finds it by tag
    opera.post_maintenance("305", "LEAK", "Tap drips", "kiosk-wo-8")
    mid = opera.find_maintenance("kiosk-wo-8")["id"]
    assert opera.send("maintenance_resolve", {"pmsRef": "kiosk-wo-8", "room": "305"}, "r") == mid
    assert fake.maintenances[mid]["resolved"]


def test_maintenance_resolve_unknown_is_permanent(fake, opera):
    with pytest.raises(PmsError) as e:
        opera.resolve_maintenance("999999")
    assert e.value.status == 404 and e.value.permanent
    with pytest.raises(PmsError) as e:
        opera.send("maintenance_resolve", {"pmsRef": "999999"}, "r")
    assert e.value.status == 404 and e.value.permanent


def test_maintenance_faults_are_retryable(fake, opera):
    fake.fail_next(1, status=503, retry_after=4)
    with pytest.raises(PmsError) as e:
        opera.post_maintenance("305", "LEAK", "Tap drips", "kiosk-wo-9")
    assert e.value.status == 503 and e.value.retry_after == 4.0 and not e.value.permanent
    assert fake.maintenances == {}
    fake.down = True
    with pytest.raises(PmsError) as e:
        opera.find_maintenance("kiosk-wo-9", "305")
    assert e.value.status == 503 and not e.value.permanent


def test_fake_checks_maintenance_requests_against_the_spec(fake, opera):
    base = "/hsk/v1/hotels/HOTEL1"
    bad = [
        ("POST", f"{base}/rooms/maintenanceCodes/LEAK",
         {"json": {"criteria": {"roomIds": ["305"], "maintenanceCode": "L" * 21}}}, "maxLength 20"),
        ("POST", f"{base}/rooms/maintenanceCodes/LEAK",
         {"json": {"criteria": {"roomIds": ["305"], "remarks": "r" * 2001}}}, "maxLength 2000"),
        ("POST", f"{base}/rooms/maintenanceCodes/LEAK",
         {"json": {"criteria": {"roomIds": ["305"], "assignedUserInfo": {
             "expectedByDate": "2026-12-06"}}}}, "maxLength 8"),
        ("GET", f"{base}/rooms/maintenances", {"params": {"roomMaintenanceStatus": "Open"}},
         "not in enum"),
        ("PUT", f"{base}/maintenances/1001/resolve", {}, "body: missing"),
    ]
    for method, p, kw, why in bad:
        before = len(fake.violations)
        r = _raw(fake, opera, method, p, **kw)
        assert r.status_code == 400, (method, p, kw)
        assert why in " ".join(fake.violations[before:]), (why, fake.violations[before:])
    assert fake.maintenances == {}
    fake.violations.clear()  # they were the point of this test
