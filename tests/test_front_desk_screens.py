"""The front desk's loose ends, on the real screens.

* a walk-in's code (no stay): no offers, and the request form asks for the room — required —
  and the request reaches staff with that room;
* a busy lobby: a code held up to the camera while a guest's visit is on is not consumed,
  the lobby says "One moment …", and the code opens the screen once the visit ends;
* a staff or admin visit from the lobby: a code held up meanwhile shows a banner on the staff
  terminal / dashboard ("A guest is waiting …"), and the lobby opens for that guest after
  "Log out";
* a refused cloud credential (401 after ``kiosk-cloud device add --rotate``): the admin
  overview's sync line is red and says "Credential refused";
* a staff reply answers the question (the ticket becomes done, a history row, its own
  ``ticket.updated`` in the same transaction, synced); "Make a work order" moves a fault to
  in progress — at API level and in the browser (the staff card leaves or changes, the
  guest's list says "Answered" / "On its way").

Screenshots (1920×1080 and 390×844) go to $SCREENSHOT_DIR (default var/test-artifacts/screens),
named ``front-desk-*``.
"""

from __future__ import annotations

import re

import pytest
from browser import needs_chromium, shot
from harness import Cloud, Kiosk, run, wait_for
from test_staff_replies import NODE, ask_staff, counts, hotel, outbox_rows  # noqa: F401 - hotel is a fixture

from kiosk import tickets

SIZES = [pytest.param({"width": 1920, "height": 1080}, id="1920x1080"),
         pytest.param({"width": 390, "height": 844}, id="390x844")]
WAIT_MS = 60_000  # the condition ends a wait; this is only how long a loaded 2-core box may take


def tag(size) -> str:
    return f"{size['width']}x{size['height']}"


def history(instance, tid):
    return [(r[0], r[1], r[2]) for r in instance.db().execute(
        "SELECT field, old, new FROM item_history WHERE item_id = ? ORDER BY id", [tid])]


def status_of(instance, tid) -> str:
    return tickets.get(instance.db(), "demo", tid)["status"]


def fault(client, headers, text="The shower is broken, no hot water") -> str:
    r = client.post("/api/guest/requests", headers=headers, json={"text": text, "kind": "maintenance"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["ticket"]["ticketId"]


# --- a reply or a work order moves the ticket (API) -------------------------------------------------

@pytest.mark.usefixtures("hotel")
def test_a_reply_answers_the_question_the_ticket_becomes_done_with_history_and_outbox(
        client, login, instance, clock):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-ana", name="Ana Weber")
    tid = ask_staff(client, ada, "Is there parking at the hotel?")
    before = len(outbox_rows(instance, tid))
    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff,
                    json={"action": "reply", "text": "Yes, in the garage behind the hotel."})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["item"]["status"] == "done" and body["changes"]["status"] == {"old": "received", "new": "done"}
    assert status_of(instance, tid) == "done"
    assert history(instance, tid)[-2:] == [("reply", None, "Yes, in the garage behind the hotel."),
                                           ("status", "received", "done")]
    rows = outbox_rows(instance, tid)[before:]
    assert [(k, sorted(p["changes"])) for k, p in rows] == [("ticket.updated", ["reply"]),
                                                            ("ticket.updated", ["status"])]
    # the staff queue no longer lists it; the guest sees it answered (done, with the words)
    items = client.get("/api/staff/tasks", headers=staff).get_json()["items"]
    assert tid not in [i["id"] for i in items]
    mine = client.get("/api/guest/requests", headers=ada).get_json()["requests"][0]
    assert (mine["stage"], mine["reply"]["text"]) == ("done", "Yes, in the garage behind the hotel.")
    # new words for a done request are words only: no second step
    client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "reply", "text": "Free for guests."})
    assert [sorted(p["changes"]) for _, p in outbox_rows(instance, tid)[before + 2:]] == [["reply"]]


@pytest.mark.usefixtures("hotel")
def test_a_reply_to_an_accepted_request_also_settles_it(client, login, instance, clock):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-ana")
    tid = ask_staff(client, ada, "Can I borrow an umbrella?")
    assert client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "accept"}).status_code == 200
    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "reply", "text": "At the desk."})
    assert r.get_json()["changes"]["status"] == {"old": "accepted", "new": "done"}


@pytest.mark.usefixtures("hotel")
def test_a_reply_to_a_fault_report_does_not_close_it(client, login, instance, clock):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-bo")
    tid = fault(client, ada)
    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff,
                    json={"action": "reply", "text": "Someone is on the way."})
    assert r.status_code == 200 and r.get_json()["item"]["status"] == "received"
    assert "status" not in r.get_json()["changes"]


@pytest.mark.usefixtures("hotel")
def test_the_reply_and_its_step_are_one_transaction(client, login, instance, clock, monkeypatch):
    ada = login("guest", user="R-1")
    tid = ask_staff(client, ada, "Do you have a gym?")
    before = counts(instance)
    real = tickets._apply

    def then_fail(*a, **kw):
        real(*a, **kw)
        raise RuntimeError("power cut")

    monkeypatch.setattr(tickets, "_apply", then_fail)
    with pytest.raises(RuntimeError):
        tickets.reply(instance.db(), "demo", tid, "Yes, on the 5th floor.", by="s-ana", now=clock.now(), node=NODE)
    assert counts(instance) == before and status_of(instance, tid) == "received"


@pytest.mark.usefixtures("hotel")
def test_a_work_order_from_a_fault_moves_it_to_in_progress_and_links_it(client, login, instance, clock):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-bo", name="Bo Jensen")
    tid = fault(client, ada)
    before = len(outbox_rows(instance, tid))
    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "make_work_order"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    wo = body["item"]["workOrderId"]
    assert body["item"]["status"] == "in_progress" and body["changes"]["status"] == {"old": "received",
                                                                                    "new": "in_progress"}
    assert body["changes"]["workOrder"] == {"old": None, "new": wo}
    assert history(instance, tid)[-2:] == [("work_order", None, wo), ("status", "received", "in_progress")]
    assert [sorted(p["changes"]) for _, p in outbox_rows(instance, tid)[before:]] == [["status"]]
    assert [k for k, _ in outbox_rows(instance, wo)] == ["work_order.created"]
    # the guest sees it handled; the card stays, in progress, with its work order
    assert client.get("/api/guest/requests", headers=ada).get_json()["requests"][0]["stage"] == "on_its_way"
    card = next(i for i in client.get("/api/staff/tasks", headers=staff).get_json()["items"] if i["id"] == tid)
    assert (card["status"], card["workOrderId"]) == ("in_progress", wo)
    # a second tap: nothing new
    after = counts(instance)
    again = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "make_work_order"})
    assert again.get_json()["syncStatus"] == "unchanged" and counts(instance) == after


@pytest.mark.usefixtures("hotel")
def test_a_work_order_from_a_fault_already_in_progress_makes_no_step(client, login, instance, clock):
    ada, staff = login("guest", user="R-1"), login("staff", user="s-bo")
    tid = fault(client, ada)
    client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "start"})
    r = client.post(f"/api/staff/tasks/ticket/{tid}", headers=staff, json={"action": "make_work_order"}).get_json()
    assert r["item"]["status"] == "in_progress" and "status" not in r["changes"] and r["syncStatus"] == "queued"


@pytest.mark.usefixtures("hotel")
def test_the_steps_sync_to_the_cloud(tmp_path, client, login, instance, clock):
    from sync import delivery
    from sync.cloud import db as cloud_db
    from sync.cloud import devices
    from sync.cloud.apply import apply_push

    ada, staff = login("guest", user="R-1"), login("staff", user="s-ana")
    question, broken = ask_staff(client, ada, "Is the pool open today?"), fault(client, ada)
    client.post(f"/api/staff/tasks/ticket/{question}", headers=staff, json={"action": "reply", "text": "Until 22:00."})
    client.post(f"/api/staff/tasks/ticket/{broken}", headers=staff, json={"action": "make_work_order"})
    cloud = cloud_db.connect(tmp_path / "cloud.db")
    entries = delivery.entries_of(instance.db(), list(instance.db().query("SELECT * FROM outbox ORDER BY id")))
    res = apply_push(cloud, devices.Device("k1", ("demo",)), entries, clock.now())
    assert {r["status"] for r in res} == {"applied"}, res
    got = {r[0]: (r[1], r[2]) for r in cloud.execute("SELECT ticket_id, status, reply FROM tickets")}
    assert got == {question: ("done", "Until 22:00."), broken: ("in_progress", None)}


# --- in the browser ----------------------------------------------------------------------------------

@pytest.fixture
def desk(tmp_path):
    """A kiosk with the workflow tests' hotel (Ada in 412, Karl in 105), Grace at the front
    desk, and a folder camera at the lobby (a QR image copied in is a code held up)."""
    from test_workflows import db_of, seed

    k = Kiosk(tmp_path, "desk")
    seed(k)
    db = db_of(k)
    db["staff"].insert({"hotel_id": "demo", "staff_id": "s-grace", "name": "Grace Hopper", "role": "front_office",
                        "skills": "front_office", "shift_start": "00:00", "shift_end": "23:59"})
    db.conn.close()
    k.camera = tmp_path / "camera"
    k.camera.mkdir()
    k.env |= {"KIOSK__CAMERA__ENABLED": "true", "KIOSK__CAMERA__SOURCE": "folder", "KIOSK__CAMERA__URI": str(k.camera),
              "KIOSK__CAMERA__WIDTH": "640", "KIOSK__CAMERA__HEIGHT": "480", "KIOSK__CAMERA__FPS": "10",
              "KIOSK__SCREEN__CLAIM_SECONDS": "300"}  # generous: the hand-over is what is tested
    k.serve()
    yield k
    k.stop_all()


def consumed(k: Kiosk) -> int:
    from test_workflows import db_of

    db = db_of(k)
    try:
        return db.execute("SELECT count(*) FROM consumed_tokens").fetchone()[0]
    finally:
        db.conn.close()


def new_page(browser, size):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)  # every expect: the generous deadline
    ctx = browser.new_context(viewport=size, locale="en-GB")
    ctx.set_default_timeout(WAIT_MS)
    return ctx, ctx.new_page()


def scroll_to(page, text: str) -> None:
    """The queue's card with ``text`` into view (found afresh: the live queue re-renders)."""
    page.evaluate("""t => [...document.querySelectorAll('#queue li.item')].find(li => li.textContent.includes(t))
                            .scrollIntoView({block: 'center'})""", text)


def at_the_lobby(page, k: Kiosk) -> None:
    page.goto(k.url + "/")
    page.wait_for_selector("body[data-ready=yes]")


def type_code(page, token: str) -> None:
    page.locator("#token").fill(token)
    page.keyboard.press("Enter")


@needs_chromium
@pytest.mark.parametrize("size", SIZES)
def test_a_walk_in_guest_names_the_room_and_staff_get_it(desk, browser, size):
    from playwright.sync_api import expect

    gctx, guest = new_page(browser, size)
    sctx, staff = new_page(browser, size)
    try:
        at_the_lobby(guest, desk)
        type_code(guest, desk.token("guest", user="W-7", name="Sam Walker", walk_in=True))
        expect(guest.get_by_role("heading", name="Welcome, Sam Walker")).to_be_visible()
        expect(guest.locator("#room")).to_contain_text("No reservation is linked to this code")
        expect(guest.locator("#offers li.offer")).to_have_count(0)  # nothing to add an offer to
        room = guest.get_by_label("Your room number")
        expect(room).to_be_visible()
        assert room.evaluate("el => el.required") is True
        guest.locator("#request-text").fill("Two extra pillows please")
        guest.locator("#request button[type=submit]").click()
        # refused before anything is sent: the room is missing (the browser's own check)
        expect(room).to_be_focused()
        assert room.evaluate("el => el.validity.valueMissing") is True
        expect(guest.locator("#requests li[data-request]")).to_have_count(0)
        room.fill("318")
        guest.locator("#request button[type=submit]").click()
        expect(guest.locator("#message")).to_contain_text("We received your request")
        expect(guest.locator("#requests li[data-request]", has_text="Two extra pillows")).to_be_visible()
        guest.evaluate("() => document.getElementById('request').scrollIntoView()")
        shot(guest, f"front-desk-walk-in-guest-{tag(size)}")

        staff.goto(desk.url + "/staff")
        staff.wait_for_selector("body[data-ready=yes]")
        staff.locator("#token").fill(desk.token("staff", user="s-grace", name="Grace Hopper"))
        staff.keyboard.press("Enter")
        card = staff.locator("#queue li.item[data-kind=ticket]", has_text="Two extra pillows")
        expect(card).to_be_visible()
        expect(card.locator(".room")).to_have_text("Room 318")
        expect(card).to_contain_text("from Sam Walker")  # the name on the code: a guest's request
        expect(card.get_by_label("Answer for Sam Walker")).to_be_visible()
        scroll_to(staff, "Two extra pillows")
        shot(staff, f"front-desk-walk-in-staff-{tag(size)}")
    finally:
        gctx.close()
        sctx.close()
    api = desk.screen("staff")
    items = api.get(desk.url + "/api/staff/tasks", timeout=60).json()["items"]
    assert [i["room"] for i in items if "pillows" in i["text"]] == ["318"]


@needs_chromium
@pytest.mark.parametrize("size", SIZES)
def test_a_busy_lobby_says_one_moment_and_the_code_opens_it_after_the_visit(desk, browser, size):
    from playwright.sync_api import expect
    from test_lobby_visits import hold_up

    ctx, page = new_page(browser, size)
    try:
        at_the_lobby(page, desk)
        type_code(page, desk.token("guest", user="R-1042"))
        expect(page.get_by_role("heading", name="Welcome, Ada Lovelace")).to_be_visible()
        assert consumed(desk) == 1
        hold_up(desk.camera, desk.token("guest", user="R-2001"), "karl")  # Karl, while Ada is on the screen
        expect(page.locator("#message")).to_contain_text("One moment", timeout=WAIT_MS * 2)
        expect(page.get_by_role("heading", name="Welcome, Ada Lovelace")).to_be_visible()  # Ada's screen stays
        assert consumed(desk) == 1  # Karl's code is not used up
        shot(page, f"front-desk-busy-lobby-{tag(size)}")
        page.locator("#logout").click()  # Ada is done: the screen is Karl's
        expect(page.get_by_role("heading", name="Willkommen, Karl Benz")).to_be_visible()
        assert consumed(desk) == 2
        shot(page, f"front-desk-busy-lobby-handed-over-{tag(size)}")
    finally:
        ctx.close()


@needs_chromium
@pytest.mark.parametrize("size", SIZES)
def test_a_code_held_up_during_a_staff_or_admin_visit_shows_a_banner(desk, browser, size):
    from playwright.sync_api import expect
    from test_lobby_visits import hold_up

    ctx, page = new_page(browser, size)
    try:
        # a staff visit from the lobby
        at_the_lobby(page, desk)
        type_code(page, desk.token("staff", user="s-grace", name="Grace Hopper"))
        expect(page).to_have_url(desk.url + "/staff")
        expect(page.locator("#work")).to_be_visible()
        expect(page.locator("#lobby-waiting")).to_have_count(0)  # nobody waiting yet
        hold_up(desk.camera, desk.token("guest", user="R-1042"), "ada")
        banner = page.get_by_role("status").filter(has_text="A guest is waiting")
        expect(banner).to_be_visible(timeout=WAIT_MS * 2)
        expect(banner).to_have_text(re.compile(r"^A guest is waiting at the camera — finish here and log out"))
        assert consumed(desk) == 1  # Grace's code only
        shot(page, f"front-desk-staff-visit-guest-waiting-{tag(size)}")
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(desk.url + "/")
        expect(page.get_by_role("heading", name="Welcome, Ada Lovelace")).to_be_visible()  # handed over
        assert consumed(desk) == 2
        page.locator("#logout").click()
        expect(page.locator("#idle")).to_be_visible()

        # an admin visit from the lobby
        type_code(page, desk.token("admin", user="a-mia", name="Mia Keller"))
        expect(page).to_have_url(re.compile(re.escape(desk.url) + r"/admin(#overview)?$"))
        page.wait_for_selector("body[data-ready=yes]")
        hold_up(desk.camera, desk.token("guest", user="R-2001"), "karl")
        banner = page.get_by_role("status").filter(has_text="A guest is waiting")
        expect(banner).to_be_visible(timeout=WAIT_MS * 2)
        page.get_by_role("button", name="Deutsch").click()  # the banner speaks the screen's language
        expect(page.locator("#lobby-waiting")).to_contain_text("Ein Gast wartet an der Kamera")
        page.get_by_role("button", name="English").click()
        expect(banner).to_be_visible()
        shot(page, f"front-desk-admin-visit-guest-waiting-{tag(size)}")
        assert consumed(desk) == 3
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="Willkommen, Karl Benz")).to_be_visible()
        assert consumed(desk) == 4
    finally:
        ctx.close()


@needs_chromium
def test_the_admin_overview_says_credential_refused_in_red(tmp_path, browser):
    from playwright.sync_api import expect

    cloud = Cloud(tmp_path).start()
    k = Kiosk(tmp_path, "k1")
    try:
        k.link(cloud.url, cloud.device("k1", "demo"))
        k.serve()
        k.start_agent()
        admin = k.session("admin")
        sync = lambda: admin.get(k.url + "/api/admin?endpoint=sync", timeout=60).json()  # noqa: E731
        wait_for(lambda: sync()["lastHeardAt"], timeout=120, what="the first exchange")
        run("kiosk-cloud", "device", "add", "k1", "--hotel", "demo", "--rotate", "--data-dir", str(cloud.dir))
        wait_for(lambda: sync()["credential"] == "refused", timeout=120, what="the 401 recorded")
        for size in (SIZES[0].values[0], SIZES[1].values[0]):
            ctx, page = new_page(browser, size)
            try:
                page.goto(k.url + "/admin")
                page.wait_for_selector("body[data-ready=yes]")
                page.get_by_label("Admin code").fill(k.token("admin", user="a-mia", name="Mia Keller"))
                page.get_by_role("button", name="Sign in").click()
                expect(page.locator("[data-panel=overview]")).to_have_attribute("data-state", "ready")
                line = page.locator("#ov-cloud")
                expect(line).to_have_class(re.compile(r"\bbad\b"))
                expect(line).to_have_attribute("role", "alert")
                expect(line).to_contain_text("Credential refused")
                expect(line).to_contain_text("kiosk-agent link")
                backlog = page.locator("[data-panel=overview] .stat", has_text="Waiting to sync")
                expect(backlog).to_have_class(re.compile(r"\bbad\b"))  # held back, not just waiting
                expect(backlog).to_contain_text("held back: credential refused")
                red, dot, text = page.evaluate("""() => {
                    const l = document.getElementById('ov-cloud');
                    const probe = document.createElement('span');
                    probe.style.color = 'var(--bad)';
                    document.body.append(probe);
                    const red = getComputedStyle(probe).color;
                    probe.remove();
                    return [red, getComputedStyle(l.querySelector('.dot')).backgroundColor, getComputedStyle(l).color];
                }""")
                assert dot == red and text == red, (red, dot, text)
                shot(page, f"front-desk-admin-credential-refused-{tag(size)}")
            finally:
                ctx.close()
    finally:
        k.stop_all()
        cloud.stop()


@needs_chromium
@pytest.mark.parametrize("size", SIZES)
def test_in_the_browser_a_reply_settles_a_question_and_a_work_order_takes_a_fault(desk, browser, size):
    from playwright.sync_api import expect

    gctx, guest = new_page(browser, size)
    sctx, staff = new_page(browser, size)
    try:
        at_the_lobby(guest, desk)
        type_code(guest, desk.token("guest", user="R-1042"))
        expect(guest.get_by_role("heading", name="Welcome, Ada Lovelace")).to_be_visible()
        guest.locator("#request-kind").select_option("guest_request")
        guest.locator("#request-text").fill("Is late checkout possible on Friday?")
        guest.locator("#request button[type=submit]").click()
        expect(guest.locator("#requests li[data-request]", has_text="late checkout")).to_be_visible()
        guest.locator("#request-kind").select_option("maintenance")
        guest.locator("#request-text").fill("The shower is broken, no hot water")
        guest.locator("#request button[type=submit]").click()
        expect(guest.locator("#requests li[data-request]", has_text="The shower is broken")).to_be_visible()

        staff.goto(desk.url + "/staff")
        staff.wait_for_selector("body[data-ready=yes]")
        staff.locator("#token").fill(desk.token("staff", user="s-grace", name="Grace Hopper"))
        staff.keyboard.press("Enter")
        cards = staff.locator("#queue li.item[data-kind=ticket]")
        question, shower = cards.filter(has_text="late checkout"), cards.filter(has_text="The shower is broken")
        expect(question).to_be_visible()
        expect(shower).to_have_attribute("data-status", "received")
        question.get_by_label("Answer for Ada Lovelace").fill("Yes — until 14:00, free of charge.")
        question.get_by_role("button", name="Send answer").click()
        expect(staff.locator("#message")).to_contain_text("Answer sent to the guest")
        expect(question).to_have_count(0)  # answered: done, off the queue
        shower.get_by_role("button", name="Make a work order").click()
        expect(staff.locator("#message")).to_contain_text("Work order made")
        expect(shower).to_have_attribute("data-status", "in_progress")
        expect(shower.locator(".badge.status")).to_have_text("In progress")
        expect(shower).to_contain_text("Work order WO-")
        scroll_to(staff, "The shower is broken")
        shot(staff, f"front-desk-moved-staff-{tag(size)}")

        asked = guest.locator("#requests li[data-request]", has_text="late checkout")
        expect(asked.locator(".badge")).to_have_text("Answered", timeout=WAIT_MS * 2)  # the guest screen polls
        expect(asked.locator(".reply")).to_contain_text("Yes — until 14:00, free of charge.")
        expect(guest.locator("#requests li[data-request]", has_text="The shower is broken").locator(".badge")
               ).to_have_text("On its way")
        guest.evaluate("() => document.getElementById('requests-card').scrollIntoView()")
        shot(guest, f"front-desk-moved-guest-{tag(size)}")
    finally:
        gctx.close()
        sctx.close()
