"""The staff work queue and the guest's side of it, through the public API and the library.

* the ticket lifecycle: legal moves, INVALID_TRANSITION with what is allowed, every change
  local row + history + audit + outbox in one transaction (or nothing);
* GET /api/staff/tasks: one list (tickets, tasks, work orders, approvals), most urgent then
  newest first, names not ids, filters (mine / department / all, room, kind), the fields
  scripts read kept; POST /api/staff/tasks/<kind>/<id> with stable error codes;
* GET /api/staff/events: server-sent events for the session's hotel only;
* the guest: only their own requests, offers taken exactly once, FAQ or a handover ticket;
* sync: ``ticket.updated`` in the cloud and on pull, the later stamp wins; the demo seed
  keeps the kiosk's own work orders and approvals.
"""

from __future__ import annotations

import json

import pytest

from kiosk import audit, store, tickets, workorders
from kiosk import queue as work_queue
from kiosk.errors import InvalidTransition, NotFound, ValidationError

NODE = "kiosk-test"


def mk_ticket(instance, clock, title="Two extra towels please", *, room="412", by="R-1", type_="guest_request",
              priority="normal", hotel="demo"):
    return tickets.create(instance.db(), {"type": type_, "title": title, "roomNumber": room, "priority": priority},
                          hotel_id=hotel, by=by, now=clock.now(), node=NODE, window=3600)["ticket"]["ticketId"]


def count(instance, table, where="1=1", params=()):
    return instance.db().execute(f"SELECT count(*) FROM {table} WHERE {where}", list(params)).fetchone()[0]


@pytest.fixture
def hotel(instance, clock):
    db = instance.db()
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": n, "room_type": "KING", "floor": int(n[0]),
                             "status": "Inspected", "occupied": 1} for n in ("412", "105", "201")])
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": "R-1", "guest_name": "Ada Lovelace", "room_number": "412",
         "room_type": "KING", "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse"},
        {"hotel_id": "demo", "confirmation": "R-2", "guest_name": "Karl Benz", "room_number": "105",
         "room_type": "KING", "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse"}])
    db["staff"].insert_all([
        {"hotel_id": "demo", "staff_id": "s-ana", "name": "Ana Weber", "role": "housekeeping", "skills": "cleaning",
         "shift_start": "00:00", "shift_end": "23:59"},
        {"hotel_id": "demo", "staff_id": "s-bo", "name": "Bo Jensen", "role": "maintenance", "skills": "plumbing",
         "shift_start": "00:00", "shift_end": "00:00"}])  # never on shift
    db["offers"].insert_all([
        {"hotel_id": "demo", "offer_id": "LATE", "name": "Late checkout", "type": "addon", "price": 25.0,
         "margin": 20.0, "inventory": 2},
        {"hotel_id": "demo", "offer_id": "UPG", "name": "Suite", "type": "upgrade", "price": 90.0, "margin": 70.0,
         "room_type_from": "TWIN", "room_type_to": "SUITE", "inventory": 1}])
    db["faq"].insert({"hotel_id": "demo", "faq_id": "breakfast", "language": "en",
                      "question": "When is breakfast served?", "answer": "From 6:30 to 10:30."})
    return db


# --- the ticket lifecycle -----------------------------------------------------------------------

def test_a_ticket_moves_received_accepted_in_progress_done_each_step_synced(instance, clock):
    tid = mk_ticket(instance, clock)
    db = instance.db()
    assert tickets.get(db, "demo", tid)["status"] == "received"
    for status, assignee in (("accepted", "s-ana"), ("in_progress", tickets.UNSET), ("done", tickets.UNSET)):
        clock.advance(60)
        out = tickets.change(db, "demo", tid, status=status, assignee=assignee, by="s-ana", now=clock.now(),
                             node=NODE)
        assert out["syncStatus"] == "queued" and out["ticket"]["status"] == status
    row = tickets.get(db, "demo", tid)
    assert (row["status"], row["assignee"]) == ("done", "s-ana")
    updates = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox WHERE kind = 'ticket.updated'"
                                                    " AND entity_id = ? ORDER BY id", [tid])]
    assert [u["changes"]["status"] for u in updates] == [{"old": "received", "new": "accepted"},
                                                          {"old": "accepted", "new": "in_progress"},
                                                          {"old": "in_progress", "new": "done"}]
    assert [(h["field"], h["old"], h["new"]) for h in tickets.history(db, "demo", tid)] == [
        ("status", "received", "accepted"), ("assignee", None, "s-ana"), ("status", "accepted", "in_progress"),
        ("status", "in_progress", "done")]
    assert count(instance, "audit_log", "event = 'ticket.updated'") == 3
    assert row["status_hlc"] == db.execute("SELECT max(hlc) FROM outbox WHERE entity_id = ?", [tid]).fetchone()[0]


def test_illegal_ticket_moves_say_what_is_allowed_and_change_nothing(instance, clock):
    tid = mk_ticket(instance, clock)
    db = instance.db()
    tickets.change(db, "demo", tid, status="done", by="s-ana", now=clock.now(), node=NODE)  # done at once is fine
    before = (count(instance, "outbox"), count(instance, "item_history"), count(instance, "audit_log"))
    with pytest.raises(InvalidTransition) as e:
        tickets.change(db, "demo", tid, status="in_progress", by="s-ana", now=clock.now(), node=NODE)
    assert e.value.details == {"from": "done", "to": "in_progress", "allowed": ["received"]}  # reopen only
    assert tickets.change(db, "demo", tid, status="done", by="s-ana", now=clock.now(), node=NODE)["syncStatus"] \
        == "unchanged"
    with pytest.raises(ValidationError):
        tickets.change(db, "demo", tid, status="teleported", by="s-ana", now=clock.now(), node=NODE)
    with pytest.raises(NotFound):
        tickets.change(db, "demo", "T-nope", status="done", by="s-ana", now=clock.now(), node=NODE)
    assert (count(instance, "outbox"), count(instance, "item_history"), count(instance, "audit_log")) == before
    assert tickets.allowed_from("cancelled") == [] and tickets.can_move("open", "accepted")  # older kiosks' 'open'


def test_a_ticket_change_is_all_or_nothing(instance, clock, monkeypatch):
    tid = mk_ticket(instance, clock)
    before = (count(instance, "outbox"), count(instance, "item_history"))

    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(OSError):
        tickets.change(instance.db(), "demo", tid, status="accepted", assignee="s-ana", by="s-ana",
                       now=clock.now(), node=NODE)
    assert tickets.get(instance.db(), "demo", tid)["status"] == "received"
    assert (count(instance, "outbox"), count(instance, "item_history")) == before


def test_a_duplicate_folds_into_a_request_still_being_worked_on_but_not_into_a_done_one(instance, clock):
    first = mk_ticket(instance, clock, "Two extra towels please")
    tickets.change(instance.db(), "demo", first, status="accepted", assignee="s-ana", by="s-ana", now=clock.now(),
                   node=NODE)
    again = tickets.create(instance.db(), {"type": "guest_request", "title": "two extra towels", "roomNumber": "412"},
                           hotel_id="demo", by="R-1", now=clock.now(), node=NODE, window=3600)
    assert again["duplicateOf"] == first
    tickets.change(instance.db(), "demo", first, status="done", by="s-ana", now=clock.now(), node=NODE)
    later = tickets.create(instance.db(), {"type": "guest_request", "title": "two extra towels", "roomNumber": "412"},
                           hotel_id="demo", by="R-1", now=clock.now(), node=NODE, window=3600)
    assert later["duplicateOf"] is None


# --- the queue through the API ------------------------------------------------------------------

def seed_queue(instance, clock):
    db = instance.db()
    old = mk_ticket(instance, clock, "The shower drips", room="201", type_="maintenance")
    clock.advance(600)
    towels = mk_ticket(instance, clock, "Two extra towels please", room="412", type_="housekeeping")
    clock.advance(60)
    urgent = mk_ticket(instance, clock, "Smoke smell in the corridor", room="105", type_="security", priority="urgent",
                       by="R-2")
    db["tasks"].insert({"hotel_id": "demo", "task_id": "T-1", "type": "extra clean", "room_number": "105",
                        "priority": "high", "required_skill": "cleaning", "created_at": "2026-05-28T08:00:00",
                        "due_at": "2026-05-28T21:00:00", "status": "open", "assignee": None, "description": ""})
    workorders.create(db, hotel_id="demo", work_order_id="WO-1", by="pms", now=clock.now() - 7200, node=NODE,
                      room_number="412", description="Shower drains slowly", status="assigned", assignee="s-bo")
    return {"old": old, "towels": towels, "urgent": urgent}


def test_the_queue_is_one_list_most_urgent_then_newest_with_names(client, login, instance, clock, hotel):
    ids = seed_queue(instance, clock)
    h = login("staff", user="s-ana", name="Ana Weber")
    body = client.get("/api/staff/tasks", headers=h).get_json()
    order = [(i["kind"], i["id"]) for i in body["items"]]
    assert order == [("ticket", ids["urgent"]), ("task", "T-1"), ("ticket", ids["old"]), ("ticket", ids["towels"]),
                     ("work_order", "WO-1")]  # urgent, high, then guests' normal ones waiting longest first, then
    # routine work newest first (tests/test_staff_replies.py)
    by_id = {i["id"]: i for i in body["items"]}
    urgent = by_id[ids["urgent"]]
    assert urgent["requestedByName"] == "Karl Benz" and urgent["fromGuest"] and urgent["text"] == \
        "Smoke smell in the corridor" and urgent["room"] == "105" and urgent["createdAt"].endswith("Z")
    assert urgent["actions"] == ["accept", "start", "done", "assign", "reply"]
    wo = by_id["WO-1"]
    assert (wo["assignee"], wo["assigneeName"], wo["status"], wo["version"]) == ("s-bo", "Bo Jensen", "assigned", 1)
    assert set(wo["allowedStatuses"]) == {"in_progress", "on_hold", "open", "cancelled"} and "status" in wo["actions"]
    assert by_id["T-1"]["dueAt"] == "2026-05-28T21:00:00.000Z" and by_id["T-1"]["department"] == "housekeeping"
    assert body["me"] == {"id": "s-ana", "name": "Ana Weber", "department": "housekeeping"}
    assert [(p["id"], p["onShift"]) for p in body["people"]] == [("s-ana", True), ("s-bo", False)]
    assert body["counts"] == {"all": 5, "mine": 0, "department": 2} and body["currency"] == "EUR"
    # what scripts read is still there
    assert [t["taskId"] for t in body["tasks"]] == ["T-1"] and [w["workOrderId"] for w in body["workOrders"]] == ["WO-1"]
    assert body["workOrders"][0]["assigneeName"] == "Bo Jensen"


def test_the_queue_filters_by_scope_room_and_kind(client, login, instance, clock, hotel):
    ids = seed_queue(instance, clock)
    h = login("staff", user="s-ana", name="Ana Weber")

    def listed(query):
        r = client.get("/api/staff/tasks" + query, headers=h)
        assert r.status_code == 200, r.get_json()
        return [i["id"] for i in r.get_json()["items"]]

    assert listed("?scope=mine") == []
    client.post(f"/api/staff/tasks/ticket/{ids['towels']}", headers=h, json={"action": "accept"})
    assert listed("?scope=mine") == [ids["towels"]]
    assert listed("?scope=department") == ["T-1", ids["towels"]]  # housekeeping's
    assert listed("?room=412") == [ids["towels"], "WO-1"]  # the newer first
    assert listed("?kind=work_order") == ["WO-1"]
    assert listed("?room=105&kind=task") == ["T-1"]
    for bad in ("?scope=everyone", "?kind=pizza", "?room=4%2712"):
        r = client.get("/api/staff/tasks" + bad, headers=h)
        assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR")
    admin = login("admin", user="boss")  # not on the staff list: no department, so "department" is everything
    assert len(client.get("/api/staff/tasks?scope=department", headers=admin).get_json()["items"]) == 5


def test_one_tap_actions_and_their_error_codes(client, login, instance, clock, hotel):
    ids = seed_queue(instance, clock)
    h = login("staff", user="s-ana", name="Ana Weber")

    def act(kind, id_, body, status=200):
        r = client.post(f"/api/staff/tasks/{kind}/{id_}", headers=h, json=body)
        assert r.status_code == status, r.get_json()
        return r.get_json()

    t = act("ticket", ids["towels"], {"action": "accept"})
    assert (t["item"]["status"], t["item"]["assigneeName"], t["syncStatus"]) == ("accepted", "Ana Weber", "queued")
    err = act("ticket", ids["towels"], {"action": "accept"}, 409)["error"]
    assert err["code"] == "INVALID_TRANSITION" and err["details"]["allowedActions"] == ["start", "done", "assign",
                                                                                              "reply"]
    assert "in_progress" in err["details"]["allowed"]
    assert act("ticket", ids["towels"], {"action": "start"})["item"]["status"] == "in_progress"
    assert act("ticket", ids["towels"], {"action": "done"})["item"]["status"] == "done"
    # a routed task: accept = mine, then done
    assert act("task", "T-1", {"action": "accept"})["item"]["assignee"] == "s-ana"
    assert act("task", "T-1", {"action": "done"})["item"]["status"] == "done"
    assert json.loads(instance.db().execute("SELECT payload FROM outbox WHERE kind = 'pms.update' AND entity_id ="
                                            " 'task:T-1' ORDER BY id DESC").fetchone()[0])["changes"] == {"status": "done"}
    # assign from the staff list
    a = act("ticket", ids["urgent"], {"action": "assign", "assignee": "s-bo"})
    assert (a["item"]["status"], a["item"]["assigneeName"]) == ("assigned", "Bo Jensen")
    assert act("ticket", ids["urgent"], {"action": "assign", "assignee": "s-nobody"}, 400)["error"]["code"] == \
        "VALIDATION_ERROR"
    assert act("ticket", ids["urgent"], {"action": "assign"}, 400)["error"]["code"] == "VALIDATION_ERROR"
    # a work order: its state machine, the version checked
    w = act("work_order", "WO-1", {"action": "status", "status": "in_progress", "expectedVersion": 1})
    assert (w["item"]["status"], w["item"]["version"]) == ("in_progress", 2)
    assert act("work_order", "WO-1", {"action": "status", "status": "on_hold", "expectedVersion": 1}, 409)[
        "error"]["code"] == "VERSION_CONFLICT"
    err = act("work_order", "WO-1", {"action": "status", "status": "reopened"}, 409)["error"]
    assert err["code"] == "INVALID_TRANSITION" and set(err["details"]["allowed"]) == {"on_hold", "done", "assigned"}
    assert act("work_order", "WO-1", {"action": "done"})["item"]["status"] == "done"
    workorders.create(instance.db(), hotel_id="demo", work_order_id="WO-2", by="pms", now=clock.now(), node=NODE)
    w2 = act("work_order", "WO-2", {"action": "status", "status": "assigned"})["item"]
    assert (w2["status"], w2["assignee"]) == ("assigned", "s-ana")  # "Assigned" never means nobody
    # stable errors
    assert act("ticket", "T-nope", {"action": "done"}, 404)["error"]["code"] == "NOT_FOUND"
    assert act("pizza", "1", {"action": "done"}, 404)["error"]["code"] == "NOT_FOUND"
    assert act("ticket", ids["old"], {"action": "fly"}, 400)["error"]["code"] == "VALIDATION_ERROR"
    assert act("ticket", ids["old"], {"action": "done", "extra": 1}, 400)["error"]["code"] == "VALIDATION_ERROR"
    assert act("approval", "T-1", {"action": "approve"}, 404)["error"]["code"] == "NOT_FOUND"  # a task, not an approval
    # the guest and another hotel cannot
    g = login("guest", user="R-1")
    assert client.post(f"/api/staff/tasks/ticket/{ids['old']}", headers=g, json={"action": "done"}).status_code == 403
    other = login("staff", "harbor", user="s-x")
    r = client.post(f"/api/staff/tasks/ticket/{ids['old']}", headers=other, json={"action": "done"})
    assert r.status_code == 404 and tickets.get(instance.db(), "demo", ids["old"])["status"] == "received"


def test_approvals_are_in_the_queue_and_decided_there(client, login, instance, clock, hotel):
    from kiosk.models import actions
    from kiosk.models.base import Action

    done = actions.apply(instance.db(), "demo", [Action("UPDATE_PMS", {"entity": "charge", "id": "R-1", "changes": {
        "post": "ROOM"}, "reason": "post the missing room charge", "requiresApproval": True})],
        model_id="billing-detection", by="s-ana", now=clock.now(), node=NODE)
    task_id = done[0]["approvalTaskId"]
    h = login("staff", user="s-ana")
    item = next(i for i in client.get("/api/staff/tasks", headers=h).get_json()["items"] if i["id"] == task_id)
    assert item["kind"] == "approval" and item["title"] == "post the missing room charge"
    assert item["actions"] == ["approve", "reject"]
    r = client.post(f"/api/staff/tasks/approval/{task_id}", headers=h, json={"action": "approve"}).get_json()
    assert r["syncStatus"] == "queued" and r["item"]["status"] == "done" and r["outboxKey"]


def test_the_staff_feed_streams_queue_changes_of_its_hotel_only(client, login, instance, clock, hotel, app,
                                                                monkeypatch):
    from kiosk.web import guest_api

    monkeypatch.setattr(guest_api, "FEED_TICK_SECONDS", 0.05)
    h = login("staff", user="s-ana")
    r = client.get("/api/staff/events", headers=h, buffered=False)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    chunks = iter(r.response)
    assert next(chunks) == b"retry: 2000\n\n" and next(chunks).startswith(b"event: hello")
    other = login("staff", "harbor", user="s-x")
    client.post("/api/tickets/auto", headers=other, json={"type": "it", "title": "wifi down"})  # another hotel
    g = login("guest", user="R-1")
    client.post("/api/guest/requests", headers=g, json={"text": "Two extra towels please"})
    assert next(chunks) == b'event: queue\ndata: {"hotelId": "demo"}\n\n'  # only ours reached this feed
    client.delete("/api/session", headers=h)
    assert next(chunks).startswith(b"event: ended")
    r.close()
    assert client.get("/api/staff/events", headers=g).status_code == 403


def test_the_staff_feed_notices_changes_made_by_another_process(client, login, instance, clock, hotel, monkeypatch):
    from kiosk.web import guest_api

    monkeypatch.setattr(guest_api, "FEED_TICK_SECONDS", 0.05)
    r = client.get("/api/staff/events", headers=login("staff", user="s-ana"), buffered=False)
    chunks = iter(r.response)
    next(chunks), next(chunks)
    other = instance.connect()  # e.g. the sync agent's pull, on its own connection
    with store.transaction(other):
        other.execute("INSERT INTO tasks (hotel_id, task_id, type, created_at, status) VALUES"
                      " ('demo', 'T-9', 'leak', '2026-05-28T08:00:00', 'open')")
    assert next(chunks).startswith(b"event: queue")
    r.close()


# --- the guest's side ---------------------------------------------------------------------------

def test_a_guest_sees_only_their_own_requests_and_how_far_each_is(client, login, instance, clock, hotel):
    ada, karl, staff = login("guest", user="R-1"), login("guest", user="R-2"), login("staff", user="s-ana")
    mine = client.post("/api/guest/requests", headers=ada, json={"text": "Two extra towels please"}).get_json()
    client.post("/api/guest/requests", headers=karl, json={"text": "A bottle of water please"})
    listed = client.get("/api/guest/requests", headers=ada).get_json()["requests"]
    assert [(q["text"], q["stage"], q["channel"]) for q in listed] == [("Two extra towels please", "received",
                                                                         "typed")]
    tid = mine["ticket"]["ticketId"]
    client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "accept"})
    assert client.get("/api/guest/requests", headers=ada).get_json()["requests"][0]["stage"] == "on_its_way"
    client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "done"})
    assert client.get("/api/guest/requests", headers=ada).get_json()["requests"][0]["stage"] == "done"
    assert client.get("/api/guest/requests", headers=staff).status_code == 403


def test_a_guest_takes_an_offer_exactly_once(client, login, instance, clock, hotel):
    ada = login("guest", user="R-1")
    home = client.get("/api/guest/home", headers=ada).get_json()
    assert [(o["offerId"], o["price"], o["currency"], o["accepted"]) for o in home["offers"]] == [
        ("LATE", 25.0, "EUR", False)]  # the upgrade is for another room type
    first = client.post("/api/guest/offers/LATE/accept", headers=ada)
    assert first.status_code == 201 and first.get_json()["syncStatus"] == "queued"
    again = client.post("/api/guest/offers/LATE/accept", headers=login("guest", user="R-1"))  # a new session too
    assert again.status_code == 200 and again.get_json()["syncStatus"] == "unchanged"
    assert again.get_json()["outboxKey"] == first.get_json()["outboxKey"]
    assert count(instance, "outbox", "kind = 'pms.update' AND entity_id = 'reservation:R-1'") == 1
    assert count(instance, "offer_history", "confirmation = 'R-1' AND accepted = 1") == 1
    assert instance.db().execute("SELECT inventory FROM offers WHERE offer_id = 'LATE'").fetchone()[0] == 1
    assert client.get("/api/guest/home", headers=ada).get_json()["offers"][0]["accepted"] is True
    r = client.post("/api/guest/offers/UPG/accept", headers=ada)
    assert (r.status_code, r.get_json()["error"]["code"]) == (404, "NOT_FOUND")  # not offered to this stay
    nobody = login("guest", user="guest-without-stay")
    assert client.post("/api/guest/offers/LATE/accept", headers=nobody).status_code == 404


def test_a_question_is_answered_or_handed_to_a_person_as_a_ticket(client, login, instance, clock, hotel):
    ada = login("guest", user="R-1")
    a = client.post("/api/guest/questions", headers=ada, json={"question": "When is breakfast served?"}).get_json()
    assert a["answered"] and a["answer"] == "From 6:30 to 10:30." and not a["handover"]
    b = client.post("/api/guest/questions", headers=ada, json={"question": "Can my dog stay in the room?"}).get_json()
    assert b["handover"] and b["reason"] == "not_confident" and b["request"]["stage"] == "received"
    row = tickets.get(instance.db(), "demo", b["request"]["requestId"])
    assert (row["description"], row["channel"], row["created_by"], row["room_number"]) == (
        "Can my dog stay in the room?", "question", "R-1", "412")
    assert count(instance, "tasks") == 0  # the model's proposed task became the guest's ticket, not a second item
    r = client.post("/api/guest/questions", headers=ada, json={"question": "x"})
    assert r.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_speech_becomes_the_guests_ticket(client, login, instance, clock, hotel, tmp_path):
    import base64
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh --test installs it)")
    wav = tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(wav), "could i have two more towels please"], check=True)
    ada = login("guest", user="R-1")
    v = client.post("/api/guest/voice", headers=ada, json={"audio": base64.b64encode(wav.read_bytes()).decode()})
    body = v.get_json()
    assert v.status_code == 200 and body["outcome"] == "request" and body["intent"] == "request_item", body
    row = tickets.get(instance.db(), "demo", body["request"]["requestId"])
    assert (row["type"], row["channel"], row["room_number"]) == ("housekeeping", "spoken", "412")
    bad = client.post("/api/guest/voice", headers=ada, json={"audio": base64.b64encode(b"not a wav file").decode()})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "VALIDATION_ERROR"


# --- sync and the demo seed ---------------------------------------------------------------------

def test_ticket_updates_sync_last_writer_wins_in_the_cloud_and_on_pull(tmp_path, instance, clock):
    from sync.cloud import db as cloud_db
    from sync.cloud import devices
    from sync.cloud.apply import apply_push

    cloud = cloud_db.connect(tmp_path / "cloud.db")
    dev = devices.Device("k1", ("demo",))
    tid = mk_ticket(instance, clock)
    created = json.loads(instance.db().execute("SELECT payload FROM outbox WHERE entity_id = ?", [tid]).fetchone()[0])

    def entry(kind, payload, stamp):
        return {"key": f"{kind}-{stamp}", "hotelId": "demo", "kind": kind, "entityType": "ticket", "entityId": tid,
                "hlc": stamp, "createdAt": clock.now(), "payload": payload}

    def step(old, new, by):
        return {"ticketId": tid, "changes": {"status": {"old": old, "new": new}}, "by": by, "at": "x"}

    t0, t1, t2 = (f"{clock.now() * 1000 + n:015.0f}-00000-k1" for n in (-30, -20, -10))  # before the local step
    res = apply_push(cloud, dev, [entry("ticket.created", created, t0), entry("ticket.updated",
                                  step("received", "done", "s-ana"), t2)], clock.now())
    assert [r["status"] for r in res] == ["applied", "applied"]
    late = apply_push(cloud, dev, [entry("ticket.updated", step("received", "accepted", "s-bo"), t1)], clock.now())
    assert late[0]["status"] == "applied"  # accepted, but older: it changes nothing
    assert cloud.execute("SELECT status FROM tickets WHERE ticket_id = ?", [tid]).fetchone()[0] == "done"
    bad = apply_push(cloud, dev, [entry("ticket.updated", step("received", "flying", "s-bo"), t2 + "x")], clock.now())
    assert bad[0]["status"] == "rejected"
    # on pull: an older copy never overwrites a newer local step
    db = instance.db()
    tickets.change(db, "demo", tid, status="accepted", assignee="s-ana", by="s-ana", now=clock.now(), node=NODE)
    local = tickets.get(db, "demo", tid)["status_hlc"]
    with store.transaction(db):
        tickets.apply_remote(db, "demo", tid, {**created, "status": "received"}, t0, clock.now())
    assert tickets.get(db, "demo", tid)["status"] == "accepted"
    newer = local[:-len("kiosk-test")] + "zz"
    with store.transaction(db):
        tickets.apply_remote(db, "demo", tid, {**created, "status": "done", "assignee": "s-bo"}, newer, clock.now())
    row = tickets.get(db, "demo", tid)
    assert (row["status"], row["assignee"]) == ("done", "s-bo")
    # the kiosk's own ticket coming back as the cloud holds it (most of what a kiosk pulls of
    # its tickets) is read, not written
    writes = db.conn.total_changes
    with store.transaction(db):
        tickets.apply_remote(db, "demo", tid, {**created, "status": "done", "assignee": "s-bo"}, newer, clock.now())
    assert db.conn.total_changes == writes
    with store.transaction(db):  # merged at the cloud meanwhile: that is written
        tickets.apply_remote(db, "demo", tid, {**created, "status": "done", "mergedInto": "T-1"}, newer, clock.now())
    assert db.conn.total_changes == writes + 1 and tickets.get(db, "demo", tid)["merged_into"] == "T-1"


def test_a_demo_reseed_keeps_the_kiosks_own_work_orders_and_approvals(instance, clock):
    from datetime import UTC, datetime

    from kiosk.models import actions
    from kiosk.models.base import Action
    from kiosk.property import demo

    today = datetime.fromtimestamp(clock.now(), UTC).date()
    made = demo.seed(instance.db(), "demo", today)
    db = instance.db()
    workorders.create(db, hotel_id="demo", work_order_id="WO-LOCAL", by="s01", now=clock.now(), node=NODE,
                      room_number="101", description="Door squeaks")
    workorders.update(db, {"workOrderId": "WO-0001", "changes": {"notes": "seen"}}, hotel_id="demo", by="s01",
                      now=clock.now(), node=NODE)
    approval = actions.apply(db, "demo", [Action("UPDATE_PMS", {"entity": "charge", "id": "x", "changes": {},
                                                                "requiresApproval": True})],
                             model_id="billing-detection", by="s01", now=clock.now(), node=NODE)[0]["approvalTaskId"]
    assert demo.seed(db, "demo", today) == made  # again: the same property
    assert count(instance, "work_orders", "work_order_id = 'WO-LOCAL'") == 1
    assert count(instance, "tasks", "task_id = ?", [approval]) == 1
    assert count(instance, "work_orders", "work_order_id LIKE 'WO-0%'") == made["work_orders"]
    assert instance.db().execute("SELECT notes FROM work_orders WHERE work_order_id = 'WO-0001'").fetchone()[0] == ""
    assert count(instance, "tasks", "task_id LIKE 'T0%'") == made["tasks"]


def test_people_on_shift_and_times(instance, clock):
    assert work_queue.on_shift("22:00", "06:00", "23:30") and work_queue.on_shift("22:00", "06:00", "05:59")
    assert not work_queue.on_shift("07:00", "15:00", "15:00") and work_queue.on_shift(None, None, "03:00")
    assert work_queue.epoch("2026-05-28T08:00:00") == work_queue.epoch("2026-05-28T08:00:00Z") == \
        work_queue.epoch("2026-05-28T10:00:00+02:00")
    assert work_queue.epoch("not a time") is None and work_queue.epoch(12.5) == 12.5


@pytest.mark.parametrize("words,queue", [("Two extra towels please", "housekeeping"),
                                         ("could you clean my room", "housekeeping"),
                                         ("the shower is not working", "engineering"),
                                         ("can you recommend a restaurant", "front-desk")])
def test_a_typed_guest_request_goes_to_the_team_that_acts_on_it(client, login, instance, words, queue):
    db = instance.db()
    db["reservations"].insert({"hotel_id": "demo", "confirmation": "R-9", "guest_name": "Ada", "room_number": "412",
                               "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse"})
    r = client.post("/api/guest/requests", json={"text": words}, headers=login("guest", user="R-9"))
    assert r.status_code == 201, r.get_json()
    assert db.execute("SELECT queue FROM tickets").fetchone()[0] == queue
