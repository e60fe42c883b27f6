"""Names instead of ids, and a session's timeline in hotel words.

* the admin's token and session lists carry ``personName``, ``guestName``, ``roomNumber``
  and ``staffName`` next to the ids (from the reservations and the staff list): a guest's
  code names its stay, a staff badge its member of staff; a guest code without a stay and a
  member of staff deleted since have no name (null) and nothing breaks;
* a session's timeline: every entry has a ``textKey`` of the screens' dictionary (in English
  and German) with its ``params``: "Ada Lovelace scanned…", "“towels” (room 412) accepted
  by Grace Hopper", "… done (Grace Hopper)" — what became of the request after the session
  too; an admin who ended a session is named;
* the staff queue names the assignee, the id when the staff list no longer does;
* Playwright at 1920×1080 and 390×844: the admin's session detail and a staff card read
  names (screenshots: var/test-artifacts/screens/names-*).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from browser import ARTIFACTS as SHOTS
from browser import needs_chromium, sign_in_as_admin
from test_docs import schema_errors

from kiosk import timeline

SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml").read_text())
STRINGS = json.loads((Path(__file__).resolve().parents[1] / "kiosk/web/static/i18n.json").read_text())
WAIT_MS = 60_000


def schema(name):
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.fixture
def hotel(instance):
    db = instance.db()
    db["rooms"].insert({"hotel_id": "demo", "room_number": "412", "room_type": "KING", "floor": 4,
                        "status": "Inspected", "occupied": 1})
    db["reservations"].insert({"hotel_id": "demo", "confirmation": "D02379", "guest_name": "Ada Lovelace",
                               "room_number": "412", "room_type": "KING", "arrival": "2026-05-27",
                               "departure": "2026-05-30", "status": "InHouse", "language": "en"})
    db["staff"].insert_all([
        {"hotel_id": "demo", "staff_id": sid, "name": name, "role": role, "skills": "", "shift_start": "00:00",
         "shift_end": "23:59"}
        for sid, name, role in (("s01", "Grace Hopper", "front_office"), ("s02", "Bo Jensen", "maintenance"),
                                ("a-mia", "Mia Keller", "front_office"))])
    return db


def session_id(client, headers) -> str:
    r = client.get("/api/session", headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["sessionId"]


def admin_get(client, admin, endpoint, **query):
    r = client.get("/api/admin", headers=admin, query_string={"endpoint": endpoint, **query})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def detail(client, admin, sid) -> dict:
    r = client.post("/api/admin?endpoint=sessions", headers=admin, json={"sessionId": sid})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert not schema_errors(SPEC, schema("SessionDetail"), body), schema_errors(SPEC, schema("SessionDetail"), body)
    return body


# --- 1. names in the admin's lists ----------------------------------------------------------------

def test_the_admin_lists_name_guests_staff_and_fall_back_to_the_id(client, login, hotel):
    login("guest", user="D02379")                            # a stay: Ada Lovelace, room 412
    login("guest", user="visitor-7", name="Conference guest")  # a code without a stay, named when made
    login("guest", user="visitor-8")                         # without a stay or a name
    login("staff", user="s01")                               # a badge: Grace Hopper
    login("staff", user="s-gone", name="Old badge")          # a member of staff the staff list does not know
    admin = login("admin", user="a-mia")
    hotel.execute("DELETE FROM staff WHERE staff_id = 's02'")  # deleted: nobody of that id is in a list

    body = admin_get(client, admin, "sessions")
    assert not schema_errors(SPEC, schema("SessionList"), body), schema_errors(SPEC, schema("SessionList"), body)
    by_user = {s["userId"]: s for s in body["sessions"]}
    assert {k: by_user["D02379"][k] for k in ("personName", "guestName", "roomNumber", "staffName")} == {
        "personName": "Ada Lovelace", "guestName": "Ada Lovelace", "roomNumber": "412", "staffName": None}
    assert by_user["D02379"]["name"] == "D02379"  # the existing field as it was
    assert by_user["visitor-7"]["personName"] == "Conference guest" and by_user["visitor-7"]["guestName"] is None
    assert by_user["visitor-7"]["roomNumber"] is None
    assert by_user["visitor-8"]["personName"] is None  # the screen shows the id
    assert by_user["s01"]["staffName"] == "Grace Hopper" and by_user["s01"]["personName"] == "Grace Hopper"
    assert by_user["s01"]["guestName"] is None and by_user["s01"]["roomNumber"] is None
    assert by_user["s-gone"]["staffName"] is None and by_user["s-gone"]["personName"] == "Old badge"
    assert by_user["a-mia"]["personName"] == "Mia Keller"  # an admin on the staff list
    assert all(s["userId"] and s["sessionId"] for s in body["sessions"])  # the ids stay

    tokens = admin_get(client, admin, "tokens")
    assert not schema_errors(SPEC, schema("TokenList"), tokens), schema_errors(SPEC, schema("TokenList"), tokens)
    by_user = {t["userId"]: t for t in tokens["tokens"]}
    assert by_user["D02379"]["personName"] == "Ada Lovelace" and by_user["D02379"]["roomNumber"] == "412"
    assert by_user["s01"]["personName"] == "Grace Hopper"
    assert by_user["visitor-8"]["personName"] is None and by_user["visitor-8"]["jti"]


def test_a_guest_id_is_not_named_after_a_member_of_staff_with_the_same_id(client, login, hotel):
    hotel["staff"].insert({"hotel_id": "demo", "staff_id": "D02379", "name": "Not A Guest", "role": "front_office",
                           "skills": ""})
    login("guest", user="D02379")
    admin = login("admin", user="a-mia")
    row = next(s for s in admin_get(client, admin, "sessions")["sessions"] if s["userId"] == "D02379")
    assert (row["personName"], row["staffName"], row["guestName"]) == ("Ada Lovelace", None, "Ada Lovelace")


# --- 2. the timeline in hotel words ----------------------------------------------------------------

def placeholders(key: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", STRINGS["en"][key]))


def check_sentences(timeline_: list[dict]) -> None:
    """Every entry has a key both languages know, and the params its placeholders need."""
    for e in timeline_:
        assert e["textKey"] in timeline.TEXT_KEYS, e
        for lang in ("en", "de"):
            assert STRINGS[lang].get(e["textKey"]), (lang, e["textKey"])
        assert placeholders(e["textKey"]) <= set(e["params"]), e
        assert e["summary"] and isinstance(e["details"], dict)  # the older fields stay


def test_every_sentence_key_is_in_both_languages_with_the_same_placeholders():
    for key in timeline.TEXT_KEYS:
        assert STRINGS["en"].get(key) and STRINGS["de"].get(key), key
        assert set(re.findall(r"\{(\w+)\}", STRINGS["de"][key])) == placeholders(key), key


def test_a_guests_timeline_tells_the_request_and_who_took_it_by_name(client, login, hotel, clock):
    guest = login("guest", user="D02379")
    grace = login("staff", user="s01")
    guest_sid, grace_sid = session_id(client, guest), session_id(client, grace)
    r = client.post("/api/guest/requests", headers=guest, json={"text": "Two more towels, please"})
    assert r.status_code == 201, r.get_json()
    tid = r.get_json()["ticket"]["ticketId"]
    clock.advance(120)
    assert client.post(f"/api/staff/tasks/ticket/{tid}", headers=grace, json={"action": "accept"}).status_code == 200
    clock.advance(600)  # Ada's session has ended by now (idle): the request's fate is still hers
    assert client.post(f"/api/staff/tasks/ticket/{tid}", headers=grace, json={"action": "done"}).status_code == 200
    admin = login("admin", user="a-mia")

    body = detail(client, admin, guest_sid)
    assert body["session"]["personName"] == "Ada Lovelace" and body["session"]["roomNumber"] == "412"
    tl = body["timeline"]
    check_sentences(tl)
    keys = [e["textKey"].removeprefix(timeline.SAY) for e in tl]
    assert keys[0].startswith("scan") and tl[0]["params"]["who"] == "Ada Lovelace"
    assert keys.index("ticket.created") < keys.index("ticket.accepted") < keys.index("ticket.done"), keys
    created = tl[keys.index("ticket.created")]
    assert created["params"]["room"] == "412" and created["params"]["what"]
    accepted, done = tl[keys.index("ticket.accepted")], tl[keys.index("ticket.done")]
    assert accepted["params"]["who"] == "Grace Hopper" and done["params"]["who"] == "Grace Hopper"
    assert accepted["kind"] == "ticket.updated" and accepted["details"]["ticketId"] == tid
    assert accepted["details"]["by"] == "s01"  # the id for support
    assert accepted["at"] < done["at"]
    wf = tl[keys.index("workflow")]
    assert wf["params"]["models"] and "workflowId" in wf["details"]  # the raw key only in the details
    assert "workflowId" not in wf["params"] and "jti" not in tl[0]["params"]

    # Grace's own session tells what she did, by name
    grace_tl = detail(client, admin, grace_sid)["timeline"]
    check_sentences(grace_tl)
    mine = [e for e in grace_tl if e["kind"] == "ticket.updated"]
    assert [e["textKey"].removeprefix(timeline.SAY) for e in mine] == ["ticket.accepted", "ticket.done"]
    assert all(e["params"]["who"] == "Grace Hopper" for e in mine)

    # a member of staff deleted since: the id, no crash
    hotel.execute("DELETE FROM staff WHERE staff_id = 's01'")
    tl = detail(client, admin, guest_sid)["timeline"]
    check_sentences(tl)
    assert [e["params"]["who"] for e in tl if e["kind"] == "ticket.updated"] == ["s01", "s01"]


def test_an_ended_session_names_the_admin_who_ended_it_and_a_walk_in_code_reads_too(client, login, hotel):
    walk_in = login("guest", user="visitor-9")
    admin = login("admin", user="a-mia")
    sid = session_id(client, walk_in)
    r = client.delete("/api/admin?endpoint=sessions", headers=admin, json={"sessionId": sid})
    assert r.status_code == 200, r.get_json()
    body = detail(client, admin, sid)
    assert body["session"]["personName"] is None and body["session"]["userId"] == "visitor-9"
    tl = body["timeline"]
    check_sentences(tl)
    assert tl[0]["params"]["who"] == "visitor-9"  # nobody knows a name: the id
    end = tl[-1]
    assert end["textKey"] == timeline.SAY + "ended.by" and end["params"]["who"] == "Mia Keller"
    assert end["details"]["by"] == "admin:a-mia" and end["params"]["reason"] == "terminated_by_admin"


def test_a_refused_request_and_a_model_run_read_as_sentences(client, login, hotel):
    staff = login("staff", user="s01")
    admin = login("admin", user="a-mia")
    assert client.get("/api/admin?endpoint=sessions", headers=staff).status_code == 403
    r = client.post("/api/ai/trigger", headers=staff, json={"sessionId": session_id(client, staff),
                                                            "modelId": "task-routing", "requestPayload": {}})
    assert r.status_code == 200, r.get_json()
    tl = detail(client, admin, session_id(client, staff))["timeline"]
    check_sentences(tl)
    refused = next(e for e in tl if e["kind"] == "security.forbidden")
    assert refused["textKey"] == timeline.SAY + "refused.forbidden" and "/api/admin" in refused["params"]["request"]
    run = next(e for e in tl if e["kind"] == "model.run")
    assert run["params"]["model"] == "task-routing" and isinstance(run["params"]["ms"], int)


# --- 3. the staff queue names people -------------------------------------------------------------------

def test_the_staff_queue_names_the_assignee_and_falls_back_to_the_id(client, login, hotel):
    guest = login("guest", user="D02379")
    grace = login("staff", user="s01")
    tid = client.post("/api/guest/requests", headers=guest, json={"text": "A fan, please"}).get_json()["ticket"][
        "ticketId"]
    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=grace, json={"action": "assign", "assignee": "s02"})
    assert r.status_code == 200, r.get_json()

    def item():
        items = client.get("/api/staff/tasks", headers=grace).get_json()["items"]
        return next(i for i in items if i["id"] == tid)

    it = item()
    assert (it["assignee"], it["assigneeName"]) == ("s02", "Bo Jensen")
    assert (it["requestedBy"], it["requestedByName"], it["room"]) == ("D02379", "Ada Lovelace", "412")
    hotel.execute("DELETE FROM staff WHERE staff_id = 's02'")
    it = item()
    assert (it["assignee"], it["assigneeName"]) == ("s02", "s02")


# --- 4. in the browser -----------------------------------------------------------------------------------

@pytest.fixture
def kiosk(tmp_path):
    from harness import Kiosk
    from test_workflows import db_of, seed

    k = Kiosk(tmp_path, "lobby")
    seed(k)
    db = db_of(k)
    db["staff"].insert({"hotel_id": "demo", "staff_id": "s-grace", "name": "Grace Hopper", "role": "front_office",
                        "skills": "front_office", "shift_start": "00:00", "shift_end": "23:59"})
    db.conn.close()
    k.serve()
    yield k
    k.stop_all()


@needs_chromium
def test_in_the_browser_the_session_detail_and_a_staff_card_read_names(kiosk, browser):
    import requests
    from playwright.sync_api import expect
    from test_workflows import new_page, sign_in_staff

    expect.set_options(timeout=WAIT_MS)
    # Ada (a stay, code without a name) asks for towels; Grace accepts it
    ada = kiosk.scan(kiosk.token("guest", user="R-1042")).json()
    grace = kiosk.scan(kiosk.token("staff", user="s-grace")).json()
    g, s = requests.Session(), requests.Session()
    g.headers["Authorization"] = "Bearer " + ada["sessionJWT"]
    s.headers["Authorization"] = "Bearer " + grace["sessionJWT"]
    r = g.post(kiosk.url + "/api/guest/requests", json={"text": "Two more towels, please"}, timeout=60)
    assert r.status_code == 201, r.text
    tid = r.json()["ticket"]["ticketId"]
    assert s.post(f"{kiosk.url}/api/staff/tasks/ticket/{tid}", json={"action": "accept"}, timeout=60).ok

    SHOTS.mkdir(parents=True, exist_ok=True)
    for size in ({"width": 1920, "height": 1080}, {"width": 390, "height": 844}):
        tag = f"{size['width']}x{size['height']}"
        ctx, page = new_page(browser, size)
        try:
            page.set_default_timeout(WAIT_MS)
            sign_in_as_admin(page, kiosk)
            expect(page.locator(".admin-head .who")).not_to_contain_text("Hotel demo")
            page.get_by_role("tab", name="Sessions").click()
            row = page.locator("#session-list tr", has_text="Ada Lovelace")
            expect(row).to_contain_text("Room 412")
            expect(row).to_contain_text("R-1042")  # the id, small, for support
            expect(page.locator("#session-list tr", has_text="Grace Hopper")).to_contain_text("s-grace")
            page.get_by_role("button", name="Timeline of the session of Ada Lovelace").click()
            dialog = page.get_by_role("dialog", name="Session of Ada Lovelace")
            tl = dialog.locator("#session-timeline")
            expect(tl.locator("li[data-kind='ticket.created']")).to_contain_text(
                "Asked for “Two more towels, please” (room 412)")
            expect(tl.locator("li[data-kind='ticket.updated']")).to_contain_text("accepted by Grace Hopper")
            # the code carries no name: the reservation's is used
            expect(tl.locator("li[data-kind='scan'] .summary")).to_have_text("Ada Lovelace scanned a code at the camera")
            expect(tl.locator("li[data-kind='workflow.started'] .summary")).not_to_contain_text("workflowId")
            expect(tl.locator("li[data-kind='scan'] .summary")).not_to_contain_text("jti")
            tl.locator("li[data-kind='scan'] details summary").click()  # the raw facts, for support
            expect(tl.locator("li[data-kind='scan'] details")).to_contain_text("jti")
            page.screenshot(path=str(SHOTS / f"names-admin-timeline-{tag}.png"), full_page=True)
            dialog.get_by_role("button", name="Close").click()
            expect(dialog).to_be_hidden()
            page.get_by_role("button", name="Deutsch").click()
            row.get_by_role("button").first.click()  # "Verlauf" in German: the row's first action
            expect(page.get_by_role("dialog", name="Sitzung von Ada Lovelace")).to_be_visible()
            tl = page.get_by_role("dialog", name="Sitzung von Ada Lovelace").locator("#session-timeline")
            expect(tl.locator("li[data-kind='ticket.updated']")).to_contain_text("von Grace Hopper angenommen")
            expect(tl.locator("li[data-kind='ticket.created']")).to_contain_text("(Zimmer 412)")
            page.screenshot(path=str(SHOTS / f"names-admin-timeline-de-{tag}.png"), full_page=True)
        finally:
            ctx.close()

        sctx, staff = new_page(browser, size)
        try:
            sign_in_staff(staff, kiosk, "s-ana", "Ana Weber")
            card = staff.locator("#queue li.item[data-kind=ticket]", has_text="Two more towels")
            expect(card).to_contain_text("from Ada Lovelace")
            expect(card).to_contain_text("Assigned to Grace Hopper")
            expect(card.locator(".assignee")).to_have_attribute("title", "s-grace")
            # the live queue re-renders its cards (a feed event): scroll in one step inside the page,
            # not by a handle that a re-render may detach between Playwright's checks
            card.evaluate("e => e.scrollIntoView({block: 'center'})")
            staff.screenshot(path=str(SHOTS / f"names-staff-card-{tag}.png"))
        finally:
            sctx.close()
