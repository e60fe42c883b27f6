"""Staff finish what guests start.

* a reply to a guest's question reaches the guest's screen API ("Answered by Ana"), with
  one outbox row (``ticket.updated``, ``changes.reply``) written with it; a bad reply is
  VALIDATION_ERROR and writes nothing; the reply syncs (cloud, then another kiosk's pull);
* "Make a work order" on a guest's fault report: room and words carried over, linked to the
  ticket in the same transaction, once (a second tap makes no second order);
* ordering: a guest's fault waiting 10 min is above a routine normal-priority task;
* Playwright at 1920×1080 and 390×844: a staff member replies and makes a work order, the
  guest's screen shows the answer (screenshots: var/test-artifacts/screens/staff-replies-*).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from browser import ARTIFACTS as SHOTS
from test_docs import schema_errors

from kiosk import guest_keys, store, tickets
from kiosk.clock import iso

NODE = "kiosk-test"
SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml").read_text())


def schema(name):
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.fixture
def hotel(instance, clock):
    db = instance.db()
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": n, "room_type": "KING", "floor": int(n[0]),
                             "status": "Inspected", "occupied": 1} for n in ("412", "105")])
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": "R-1", "guest_name": "Ada Lovelace", "room_number": "412",
         "room_type": "KING", "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse",
         "language": "en"},
        {"hotel_id": "demo", "confirmation": "R-2", "guest_name": "Karl Benz", "room_number": "105",
         "room_type": "KING", "arrival": "2026-05-27", "departure": "2026-05-30", "status": "InHouse",
         "language": "de"}])
    db["staff"].insert_all([
        {"hotel_id": "demo", "staff_id": "s-ana", "name": "Ana Weber", "role": "front_office", "skills": "",
         "shift_start": "00:00", "shift_end": "23:59"},
        {"hotel_id": "demo", "staff_id": "s-bo", "name": "Bo Jensen", "role": "maintenance", "skills": "plumbing",
         "shift_start": "00:00", "shift_end": "23:59"}])
    return db


def outbox_rows(instance, entity_id):
    """The entries as they are pushed (a guest's words are kept sealed: opened for the push)."""
    db = instance.db()
    return [(r[0], guest_keys.open_tree(db, json.loads(r[1]))) for r in db.execute(
        "SELECT kind, payload FROM outbox WHERE entity_id = ? ORDER BY id", [entity_id])]


def counts(instance):
    db = instance.db()
    return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("outbox", "item_history", "work_orders", "audit_log"))


def ask_staff(client, headers, text="Can I bring my dog?"):
    """A typed request the guest sends (the FAQ's handover makes the same kind of ticket)."""
    r = client.post("/api/guest/requests", headers=headers, json={"text": text})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["ticket"]["ticketId"]


# --- 1. a reply reaches the guest ----------------------------------------------------------------

def test_a_reply_reaches_the_guests_screen_with_one_outbox_row(client, login, instance, clock, hotel):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-ana", name="Ana Weber")
    tid = ask_staff(client, ada)
    before = len(outbox_rows(instance, tid))
    item = next(i for i in client.get("/api/staff/tasks", headers=staff).get_json()["items"] if i["id"] == tid)
    assert "reply" in item["actions"] and item["reply"] is None

    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff,
                    json={"action": "reply", "text": "  Yes — dogs are welcome, 15 EUR a night.  "})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert not schema_errors(SPEC, schema("QueueActionResult"), body), schema_errors(
        SPEC, schema("QueueActionResult"), body)
    assert body["syncStatus"] == "queued" and body["item"]["reply"]["byName"] == "Ana Weber"
    assert body["item"]["status"] == "done"  # the answer settles the question (tests/test_front_desk_screens.py)
    rows = outbox_rows(instance, tid)
    assert len(rows) == before + 2  # the reply, and the status step (the cloud takes them one by one)
    kind, payload = rows[-2]
    assert kind == "ticket.updated" and payload["changes"] == {
        "reply": {"old": None, "new": "Yes — dogs are welcome, 15 EUR a night."}} and payload["by"] == "s-ana"
    assert rows[-1][1]["changes"] == {"status": {"old": "received", "new": "done"}}
    assert body["outboxKey"]

    listed = client.get("/api/guest/requests", headers=ada).get_json()
    assert not schema_errors(SPEC, schema("GuestRequests"), listed), schema_errors(SPEC, schema("GuestRequests"),
                                                                                 listed)
    mine = listed["requests"][0]
    assert mine["reply"]["text"] == "Yes — dogs are welcome, 15 EUR a night."
    assert mine["reply"]["by"] == "Ana" and mine["reply"]["language"] == "en"
    # another guest sees nothing of it
    karl = login("guest", user="R-2")
    assert client.get("/api/guest/requests", headers=karl).get_json()["requests"] == []

    # the same words again change nothing; new words are a second row
    again = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff,
                        json={"action": "reply", "text": "Yes — dogs are welcome, 15 EUR a night."}).get_json()
    assert again["syncStatus"] == "unchanged" and len(outbox_rows(instance, tid)) == before + 2
    client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "reply",
                                                                           "text": "Ja, Hunde sind im Zimmer willkommen."})
    reply = client.get("/api/guest/requests", headers=ada).get_json()["requests"][0]["reply"]
    assert (reply["text"], reply["language"]) == ("Ja, Hunde sind im Zimmer willkommen.", "de")  # shown as typed, its language marked
    assert len(outbox_rows(instance, tid)) == before + 3  # a done request: words only


@pytest.mark.parametrize("body", [
    {"action": "reply", "text": ""},
    {"action": "reply", "text": "   "},
    {"action": "reply", "text": "x" * 1001},
    {"action": "reply", "text": "Yes\x00no"},
    {"action": "reply", "text": 42},
    {"action": "reply"},
])
def test_a_bad_reply_is_refused_and_writes_nothing(client, login, instance, clock, hotel, body):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-ana")
    tid = ask_staff(client, ada)
    before = counts(instance)
    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json=body)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR", r.get_json()
    assert counts(instance) == before
    assert client.get("/api/guest/requests", headers=ada).get_json()["requests"][0]["reply"] is None


def test_a_reply_is_only_for_a_guests_request(client, login, instance, clock, hotel):
    staff = login("staff", user="s-ana")
    own = tickets.create(instance.db(), {"type": "housekeeping", "title": "Restock the linen room"},
                         hotel_id="demo", by="s-ana", now=clock.now(), node=NODE, window=3600)["ticket"]["ticketId"]
    before = counts(instance)
    r = client.post(f"/api/staff/tasks/ticket/{own}", headers=staff, json={"action": "reply", "text": "ok"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "INVALID_TRANSITION"
    assert counts(instance) == before


def test_a_reply_syncs_to_the_cloud_and_to_another_kiosk(tmp_path, client, login, instance, clock, hotel):
    from sync import delivery
    from sync.cloud import db as cloud_db
    from sync.cloud import devices
    from sync.cloud.apply import apply_push

    ada, staff = login("guest", user="R-1"), login("staff", user="s-ana")
    tid = ask_staff(client, ada)
    client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "accept"})
    client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "reply", "text": "Yes, gladly."})
    cloud = cloud_db.connect(tmp_path / "cloud.db")
    entries = delivery.entries_of(instance.db(), list(instance.db().query(
        "SELECT * FROM outbox WHERE entity_id = ? ORDER BY id", [tid])))
    res = apply_push(cloud, devices.Device("k1", ("demo",)), entries, clock.now())
    assert [r["status"] for r in res] == ["applied"] * 4, res  # created, accepted, the reply, done
    row = cloud.execute("SELECT status, reply, reply_by FROM tickets WHERE ticket_id = ?", [tid]).fetchone()
    assert tuple(row) == ("done", "Yes, gladly.", "s-ana")  # the reply answered it
    # what another kiosk pulls: the ticket's latest snapshot, with the reply
    snap = json.loads(cloud.execute("SELECT data FROM changes WHERE entity_id = ? ORDER BY rowid DESC LIMIT 1",
                                    [tid]).fetchone()[0])
    assert snap["reply"] == "Yes, gladly." and snap["status"] == "done"
    db = instance.db()
    db.execute("DELETE FROM item_history WHERE item_id = ? AND field = 'reply'", [tid])  # as if made elsewhere
    stamp = snap["replyHlc"]
    with store.transaction(db):
        tickets.apply_remote(db, "demo", tid, snap | {"status": "received"}, stamp, clock.now())
    assert tickets.get(db, "demo", tid)["status"] == "done"  # a reply's (older) snapshot is not a status step
    assert client.get("/api/guest/requests", headers=ada).get_json()["requests"][0]["reply"]["text"] == "Yes, gladly."
    with store.transaction(db):  # the same again: nothing new
        tickets.apply_remote(db, "demo", tid, snap, stamp, clock.now())
    assert db.execute("SELECT count(*) FROM item_history WHERE item_id = ? AND field = 'reply'",
                      [tid]).fetchone()[0] == 1


# --- 2. a work order from a fault report --------------------------------------------------------------

def test_a_work_order_from_a_fault_carries_room_and_words_once(client, login, instance, clock, hotel):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-bo", name="Bo Jensen")
    r = client.post("/api/guest/requests", headers=ada, json={"text": "The shower is broken, no hot water",
                                                              "kind": "maintenance"})
    tid = r.get_json()["ticket"]["ticketId"]
    item = next(i for i in client.get("/api/staff/tasks", headers=staff).get_json()["items"] if i["id"] == tid)
    assert "make_work_order" in item["actions"] and item["workOrderId"] is None

    first = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "make_work_order"})
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert not schema_errors(SPEC, schema("QueueActionResult"), body)
    wo_id = body["item"]["workOrderId"]
    assert wo_id and wo_id.startswith("WO-") and "make_work_order" not in body["item"]["actions"]
    wo = dict(next(instance.db().query("SELECT * FROM work_orders WHERE work_order_id = ?", [wo_id])))
    assert (wo["room_number"], wo["description"], wo["status"], wo["type"]) == (
        "412", "The shower is broken, no hot water", "open", "failure")
    assert tid in wo["notes"]
    assert [k for k, _ in outbox_rows(instance, wo_id)] == ["work_order.created"]

    before = counts(instance)
    second = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "make_work_order"})
    assert second.status_code == 200 and second.get_json()["syncStatus"] == "unchanged"
    assert second.get_json()["item"]["workOrderId"] == wo_id
    assert counts(instance) == before
    assert instance.db().execute("SELECT count(*) FROM work_orders").fetchone()[0] == 1
    # the work order is in the queue as maintenance work; the ticket says it was made
    items = client.get("/api/staff/tasks", headers=staff).get_json()["items"]
    assert any(i["kind"] == "work_order" and i["id"] == wo_id and i["room"] == "412" for i in items)


def test_making_a_work_order_is_all_or_nothing(client, login, instance, clock, hotel, monkeypatch):
    from kiosk import workorders

    ada = login("guest", user="R-1")
    tid = client.post("/api/guest/requests", headers=ada, json={"text": "The toilet is leaking",
                                                                "kind": "maintenance"}).get_json()["ticket"]["ticketId"]
    before = counts(instance)
    real = workorders.insert

    def then_fail(*a, **kw):
        real(*a, **kw)
        raise RuntimeError("power cut")

    monkeypatch.setattr(workorders, "insert", then_fail)
    with pytest.raises(RuntimeError):
        tickets.make_work_order(instance.db(), "demo", tid, by="s-bo", now=clock.now(), node=NODE)
    assert counts(instance) == before


def test_two_taps_at_once_make_one_work_order(client, login, instance, clock, hotel):
    ada = login("guest", user="R-1")
    tid = client.post("/api/guest/requests", headers=ada, json={"text": "The heating does not work",
                                                                "kind": "maintenance"}).get_json()["ticket"]["ticketId"]
    results, errors = [], []

    def tap():
        try:
            results.append(tickets.make_work_order(instance.db(), "demo", tid, by="s-bo", now=clock.now(), node=NODE))
        except Exception as e:  # noqa: BLE001 - what went wrong is what the test reports
            errors.append(e)

    threads = [threading.Thread(target=tap) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert sorted(r["syncStatus"] for r in results) == ["queued", "unchanged", "unchanged", "unchanged"]
    assert instance.db().execute("SELECT count(*) FROM work_orders").fetchone()[0] == 1


def test_only_an_open_fault_report_becomes_a_work_order(client, login, instance, clock, hotel):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-bo")
    towels = ask_staff(client, ada, "Two extra towels please")
    before = counts(instance)
    r = client.post(f"/api/staff/tasks/ticket/{towels}", headers=staff, json={"action": "make_work_order"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "INVALID_TRANSITION"
    assert counts(instance) == before


# --- 3. ordering -------------------------------------------------------------------------------------

def test_a_guest_fault_waiting_10_min_is_above_routine_normal_tasks(client, login, instance, clock, hotel):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-ana")
    fault = client.post("/api/guest/requests", headers=ada, json={"text": "The shower is broken, no hot water",
                                                                  "kind": "maintenance"}).get_json()
    tid = fault["ticket"]["ticketId"]
    clock.advance(600)
    db = instance.db()
    now = clock.now()
    db["tasks"].insert_all([
        {"hotel_id": "demo", "task_id": f"T-{n}", "type": "stayover clean", "room_number": f"1{n:02d}",
         "priority": "normal", "required_skill": "cleaning", "created_at": iso(now - 60 * n), "due_at": None,
         "status": "open", "assignee": None, "description": ""} for n in range(1, 16)]
        + [{"hotel_id": "demo", "task_id": "T-hi", "type": "vip setup", "room_number": "301", "priority": "high",
            "required_skill": "cleaning", "created_at": iso(now - 30), "due_at": None, "status": "open", "assignee": None,
            "description": ""}])
    karl = login("guest", user="R-2")
    newer = ask_staff(client, karl, "Mehr Kaffee bitte")
    items = client.get("/api/staff/tasks", headers=staff).get_json()["items"]
    order = [i["id"] for i in items]
    assert order[0] == "T-hi"  # more urgent stays above
    assert order[1:3] == [tid, newer]  # guests of the same urgency: the one waiting longest first
    assert all(i["kind"] == "task" for i in items[3:])  # then the routine tasks, newest first
    assert [i["id"] for i in items[3:6]] == ["T-1", "T-2", "T-3"]


# --- 4. in the browser --------------------------------------------------------------------------



@pytest.fixture
def kiosk(tmp_path):
    """The workflow tests' kiosk, with Grace at the front desk and a morning's routine: 13
    stayover cleans, newer than the guests' requests (the review's "14th card")."""
    from harness import Kiosk
    from test_workflows import db_of, seed

    k = Kiosk(tmp_path, "lobby")
    seed(k)
    db = db_of(k)
    db["staff"].insert({"hotel_id": "demo", "staff_id": "s-grace", "name": "Grace Hopper", "role": "front_office",
                        "skills": "front_office", "shift_start": "00:00", "shift_end": "23:59"})
    now = time.time()
    db["tasks"].insert_all([
        {"hotel_id": "demo", "task_id": f"T-STAY-{n}", "type": "stayover clean", "room_number": f"2{n:02d}",
         "priority": "normal", "required_skill": "cleaning", "created_at": iso(now + 60 + n), "due_at": None,
         "status": "open", "description": ""} for n in range(1, 14)])
    db.conn.close()
    k.serve()
    yield k
    k.stop_all()


@pytest.mark.parametrize("size", [{"width": 1920, "height": 1080}, {"width": 390, "height": 844}],
                         ids=["1920x1080", "390x844"])
def test_in_the_browser_staff_reply_and_make_a_work_order_and_the_guest_sees_the_answer(kiosk, browser, size):
    from test_workflows import (
        WAIT_MS,
        new_page,
        sign_in_guest,
        sign_in_staff,
        wait_text,
    )

    tag = f"{size['width']}x{size['height']}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    gctx, guest = new_page(browser, size)
    sctx, staff = new_page(browser, size)
    try:
        sign_in_guest(guest, kiosk, "R-1042", "Welcome, Ada Lovelace")
        guest.locator("#question-text").fill("Can I bring my dog?")
        guest.locator("#question button[type=submit]").click()
        guest.locator("#requests li[data-request]", has_text="Can I bring my dog?").wait_for(timeout=WAIT_MS)
        guest.locator("#request-kind").select_option("maintenance")
        guest.locator("#request-text").fill("The shower is broken, no hot water")
        guest.locator("#request button[type=submit]").click()
        guest.locator("#requests li[data-request]", has_text="The shower is broken").wait_for(timeout=WAIT_MS)

        sign_in_staff(staff, kiosk, "s-grace", "Grace Hopper")
        tickets_ = staff.locator("#queue li.item[data-kind=ticket]")
        dog, shower = tickets_.filter(has_text="Can I bring my dog?"), tickets_.filter(has_text="The shower is broken")
        dog.wait_for(timeout=WAIT_MS)
        shower.wait_for(timeout=WAIT_MS)
        kinds = staff.locator("#queue li.item").evaluate_all(
            "els => els.map(e => [e.dataset.kind, e.textContent.includes('stayover') || e.textContent.includes("
            "'Stayover')])")
        firsts = [k for k, _ in kinds[:4]]
        assert firsts.count("ticket") == 2, kinds  # below the high-priority task, above every routine clean
        if size["width"] == 1920:  # the fault is on the first screen of a 1080p terminal
            # found and measured in ONE synchronous step in the page: the live queue may re-render
            # the item between a locator's lookup and its measure (a detached node measures 0 x 0)
            box = staff.evaluate(
                "() => { const li = [...document.querySelectorAll('#queue li.item[data-kind=ticket]')]"
                ".find(e => e.textContent.includes('The shower is broken'));"
                " const r = li.querySelector('.item-title').getBoundingClientRect();"
                " return {top: r.top, bottom: r.bottom, height: r.height}; }")
            assert box["height"] > 0 and box["bottom"] <= 1080, box
        staff.screenshot(path=str(SHOTS / f"staff-replies-1-queue-{tag}.png"))

        answer = "Yes — dogs are welcome, 15 EUR a night."
        dog.get_by_label("Answer for Ada Lovelace").fill(answer)
        dog.get_by_role("button", name="Send answer").click()
        wait_text(staff, "#message", "Answer sent to the guest")
        # the answer settled the question: done, so its card leaves the queue
        staff.wait_for_function("""() => ![...document.querySelectorAll('#queue li.item')].some(li =>
            li.textContent.includes('Can I bring my dog'))""", timeout=WAIT_MS)
        shower.get_by_role("button", name="Make a work order").click()
        wait_text(staff, "#message", "Work order made")
        staff.wait_for_function("""() => [...document.querySelectorAll('#queue li.item')].some(li =>
            li.textContent.includes('The shower is broken') && li.textContent.includes('Work order WO-'))""",
                                timeout=WAIT_MS)
        staff.locator("#queue li.item[data-kind=work_order]", has_text="The shower is broken").wait_for(
            timeout=WAIT_MS)
        assert shower.get_by_role("button", name="Make a work order").count() == 0  # once
        staff.evaluate("() => document.querySelector('#queue li.item[data-kind=ticket]').scrollIntoView()")
        staff.screenshot(path=str(SHOTS / f"staff-replies-2-staff-done-{tag}.png"))
        staff.screenshot(path=str(SHOTS / f"staff-replies-2-staff-done-full-{tag}.png"), full_page=True)

        reply = guest.locator("#requests li[data-request]", has_text="Can I bring my dog?").locator(".reply")
        reply.wait_for(timeout=WAIT_MS)
        wait_text(guest, "#requests .reply", f"Answered by Grace: {answer}")
        assert "Answered" in guest.locator("#requests li[data-request]", has_text="Can I bring my dog?").locator(
            ".badge").text_content()
        guest.evaluate("() => document.getElementById('requests-card').scrollIntoView()")  # the list re-renders
        guest.screenshot(path=str(SHOTS / f"staff-replies-3-guest-answer-{tag}.png"))
        guest.screenshot(path=str(SHOTS / f"staff-replies-3-guest-answer-full-{tag}.png"), full_page=True)
    finally:
        gctx.close()
        sctx.close()

    from test_workflows import db_of

    db = db_of(kiosk)
    assert db.execute("SELECT count(*) FROM work_orders WHERE description = 'The shower is broken, no hot water'"
                      " AND room_number = '412'").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'ticket.updated' AND payload LIKE '%\"reply\"%'"
                      ).fetchone()[0] == 1
