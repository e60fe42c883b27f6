"""POST /api/pms/update and POST /api/tickets/auto: local first, one transaction, clear errors."""

import pytest

from kiosk import workorders


def count(instance, table):
    return instance.db().execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def snapshot(instance):
    return {t: count(instance, t) for t in ("work_orders", "work_order_history", "tickets", "outbox")}


@pytest.fixture
def wo(instance, clock):
    for hotel, wid in (("demo", "WO-1"), ("harbor", "WO-H1")):
        workorders.create(instance.db(), hotel_id=hotel, work_order_id=wid, by="pms", now=clock.now(),
                          node="kiosk-test", room_number="101", description="AC rattles")
    return "WO-1"


def test_update_applies_locally_with_history_audit_and_outbox(client, login, instance, wo, clock):
    h = login("staff", user="s-7")
    before = snapshot(instance)
    r = client.post("/api/pms/update", headers=h, json={
        "workOrderId": wo, "changes": {"status": "assigned", "assignee": "s-7", "notes": "on my way"}})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["syncStatus"] == "queued"
    assert body["workOrder"]["status"] == "assigned" and body["workOrder"]["version"] == 2
    assert body["changes"]["status"] == {"old": "open", "new": "assigned"}
    hist = workorders.history(instance.db(), "demo", wo)
    assert {(x["field"], x["old"], x["new"], x["by"]) for x in hist} == {
        ("status", "open", "assigned", "s-7"), ("assignee", None, "s-7", "s-7"), ("notes", "", "on my way", "s-7")}
    after = snapshot(instance)
    assert after["work_order_history"] - before["work_order_history"] == 3
    assert after["outbox"] - before["outbox"] == 1
    row = instance.db().execute("SELECT kind, entity_id FROM outbox ORDER BY id DESC LIMIT 1").fetchone()
    assert row == ("work_order.updated", wo)


def test_done_then_explicit_reopen(client, login, wo):
    h = login("staff")
    for status in ("in_progress", "done"):
        assert client.post("/api/pms/update", headers=h,
                           json={"workOrderId": wo, "changes": {"status": status}}).status_code == 200
    r = client.post("/api/pms/update", headers=h, json={"workOrderId": wo, "changes": {"status": "open"}})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "INVALID_TRANSITION"
    assert r.get_json()["error"]["details"] == {"from": "done", "to": "open", "allowed": ["reopened"]}
    r = client.post("/api/pms/update", headers=h, json={"workOrderId": wo, "changes": {"status": "reopened"}})
    assert r.status_code == 200 and r.get_json()["workOrder"]["closedAt"] is None


def test_no_change_writes_nothing(client, login, instance, wo):
    h = login("staff")
    before = snapshot(instance)
    r = client.post("/api/pms/update", headers=h, json={"workOrderId": wo, "changes": {"status": "open"}})
    assert r.status_code == 200 and r.get_json()["syncStatus"] == "unchanged"
    assert snapshot(instance) == before


def test_expected_version_conflict(client, login, wo):
    h = login("staff")
    r = client.post("/api/pms/update", headers=h,
                    json={"workOrderId": wo, "changes": {"notes": "x"}, "expectedVersion": 5})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "VERSION_CONFLICT"


BAD_UPDATES = [
    ({"workOrderId": 5, "changes": {"status": "assigned"}}, 400, "VALIDATION_ERROR"),
    ({"workOrderId": "WO-1", "changes": {"status": "teleported"}}, 400, "VALIDATION_ERROR"),
    ({"workOrderId": "WO-1", "changes": {}}, 400, "VALIDATION_ERROR"),
    ({"workOrderId": "WO-1", "changes": {"colour": "red"}}, 400, "VALIDATION_ERROR"),
    ({"workOrderId": "WO-1", "changes": {"status": None}}, 400, "VALIDATION_ERROR"),
    ({"workOrderId": "WO-1", "changes": {"notes": "x" * 2001}}, 400, "VALIDATION_ERROR"),
    ({"workOrderId": "WO-1", "changes": "assigned"}, 400, "VALIDATION_ERROR"),
    ({"workOrderId": "WO-404", "changes": {"status": "assigned"}}, 404, "NOT_FOUND"),
    ({"workOrderId": "WO-H1", "changes": {"status": "assigned"}}, 404, "NOT_FOUND"),  # harbor's
    ({"workOrderId": "WO-1", "changes": {"status": "done"}}, 409, "INVALID_TRANSITION"),
    ([1, 2], 400, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize("body,status,code", BAD_UPDATES)
def test_bad_updates_write_nothing(client, login, instance, wo, body, status, code):
    h = login("staff")
    before = snapshot(instance)
    r = client.post("/api/pms/update", headers=h, json=body)
    assert (r.status_code, r.get_json()["error"]["code"]) == (status, code)
    assert snapshot(instance) == before


def test_oversize_body_is_413(client, login, wo):
    r = client.post("/api/pms/update", headers=login("staff"),
                    json={"workOrderId": "WO-1", "changes": {"notes": "x" * 70000}})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


TICKET = {"type": "maintenance", "title": "Air conditioning is leaking water",
          "description": "Water dripping from the AC unit onto the carpet", "roomNumber": "204",
          "priority": "high"}


def test_ticket_routed_and_queued(client, login, instance):
    r = client.post("/api/tickets/auto", headers=login("staff"), json=TICKET)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["queue"] == "engineering" and body["duplicateOf"] is None and body["syncStatus"] == "queued"
    row = instance.db().execute("SELECT kind, entity_id FROM outbox ORDER BY id DESC LIMIT 1").fetchone()
    assert row == ("ticket.created", body["ticket"]["ticketId"])


def test_duplicate_by_meaning_within_window(client, login, instance, clock):
    h = login("staff")
    first = client.post("/api/tickets/auto", headers=h, json=TICKET).get_json()["ticket"]["ticketId"]
    again = dict(TICKET, title="AC leaking water", description="the air conditioning unit drips water")
    r = client.post("/api/tickets/auto", headers=h, json=again)
    assert r.status_code == 200 and r.get_json()["duplicateOf"] == first
    other_room = client.post("/api/tickets/auto", headers=h, json=dict(TICKET, roomNumber="205"))
    assert other_room.get_json()["duplicateOf"] is None
    other_meaning = client.post("/api/tickets/auto", headers=h,
                                json=dict(TICKET, title="TV remote missing", description="no remote"))
    assert other_meaning.get_json()["duplicateOf"] is None
    clock.advance(3601)
    late = client.post("/api/tickets/auto", headers=login("staff"), json=TICKET)
    assert late.get_json()["duplicateOf"] is None
    assert count(instance, "tickets") == 4


def test_ticket_queues_by_type(client, login):
    h = login("admin")
    for type_, queue in [("housekeeping", "housekeeping"), ("billing", "accounting"), ("it", "it-support")]:
        r = client.post("/api/tickets/auto", headers=h, json={"type": type_, "title": f"{type_} issue"})
        assert r.get_json()["queue"] == queue


@pytest.mark.parametrize("body", [
    {"type": "plumbing", "title": "x"},
    {"type": "maintenance"},
    {"type": "maintenance", "title": ""},
    {"type": "maintenance", "title": "x" * 121},
    {"type": "maintenance", "title": "x", "roomNumber": 204},
    {"type": "maintenance", "title": "x", "roomNumber": "2'; DROP TABLE tickets;--"},
    {"type": "maintenance", "title": "x", "priority": "asap"},
    {"type": "maintenance", "title": "x", "description": "y" * 2001},
    {"type": "maintenance", "title": "x", "hotelId": "harbor"},
])
def test_bad_tickets_write_nothing(client, login, instance, body):
    h = login("staff")
    before = snapshot(instance)
    r = client.post("/api/tickets/auto", headers=h, json=body)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"
    assert snapshot(instance) == before


def test_guests_cannot_use_staff_endpoints(client, login, wo):
    h = login("guest")
    assert client.post("/api/tickets/auto", headers=h, json=TICKET).status_code == 403
    assert client.post("/api/pms/update", headers=h,
                       json={"workOrderId": wo, "changes": {"status": "assigned"}}).status_code == 403


def test_tickets_are_scoped_to_the_session_hotel(client, login, instance):
    client.post("/api/tickets/auto", headers=login("staff", "harbor"), json=TICKET)
    r = client.post("/api/tickets/auto", headers=login("staff", "demo"), json=TICKET)
    assert r.get_json()["duplicateOf"] is None  # harbor's ticket is not demo's duplicate
    hotels = [h for (h,) in instance.db().execute("SELECT hotel_id FROM tickets ORDER BY rowid")]
    assert hotels == ["harbor", "demo"]
