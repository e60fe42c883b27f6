"""The lobby and staff screens in a real browser: Debian's Chromium, headless, driven by
Playwright, against a real kiosk server on 127.0.0.1 with a real database.

Screenshots go to $SCREENSHOT_DIR (default var/test-artifacts/screens) as test artifacts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from browser import ARTIFACTS, needs_chromium
from harness import Kiosk

from kiosk import config as config_mod
from kiosk import workorders
from kiosk.instance import Instance

pytestmark = needs_chromium


@pytest.fixture
def kiosk(tmp_path):
    k = Kiosk(tmp_path, "lobby")
    db = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir),
                                                           "property": {"hotels": ["demo"], "kiosk_id": "lobby"}})).db()
    db["rooms"].insert_all([{"hotel_id": "demo", "room_number": "412", "room_type": "KING", "floor": 4,
                             "status": "Inspected", "occupied": 0},
                            {"hotel_id": "demo", "room_number": "105", "room_type": "TWIN", "floor": 1,
                             "status": "Dirty", "occupied": 0}])
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": "R-1042", "guest_name": "Ada Lovelace", "room_number": "412",
         "room_type": "KING", "arrival": "2026-11-24", "departure": "2026-11-27", "status": "InHouse",
         "language": "en"},
        {"hotel_id": "demo", "confirmation": "R-2001", "guest_name": "Karl Benz", "room_number": "105",
         "room_type": "TWIN", "arrival": "2026-11-24", "departure": "2026-11-25", "status": "Confirmed",
         "language": "de"}])
    db["offers"].insert({"hotel_id": "demo", "offer_id": "LATE", "name": "Late checkout until 14:00",
                         "type": "addon", "price": 25.0, "margin": 22.0, "inventory": 10})
    workorders.create(db, hotel_id="demo", work_order_id="WO-31", by="pms", now=time.time(), node="lobby",
                      room_number="412", description="Shower drains slowly", status="assigned")
    from datetime import date, timedelta

    yesterday = date.today() - timedelta(days=1)
    db["reservations"].insert({"hotel_id": "demo", "confirmation": "R-NIGHT", "guest_name": "No Charge",
                               "room_number": "105", "room_type": "TWIN", "arrival": yesterday.isoformat(),
                               "departure": (yesterday + timedelta(days=2)).isoformat(), "status": "InHouse",
                               "language": "en", "nightly_rate": 99.0})
    db["staff"].insert({"hotel_id": "demo", "staff_id": "s-ana", "name": "Ana", "role": "housekeeping",
                        "skills": "cleaning", "shift_start": "00:00", "shift_end": "23:59"})
    db["tasks"].insert({"hotel_id": "demo", "task_id": "T-CLEAN-105", "type": "clean", "room_number": "105",
                        "priority": "high", "required_skill": "cleaning", "created_at": "2026-11-24T08:00:00",
                        "status": "open", "description": ""})
    db.conn.close()
    k.serve()
    yield k
    k.stop_all()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    pg = ctx.new_page()
    yield pg
    ctx.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_screen(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=yes]")


def type_code(page, token: str) -> None:
    page.locator("#token").fill(token)  # labelled in the screen's language (see the label test)
    page.keyboard.press("Enter")  # keyboard users submit the form like everybody else


def test_a_bad_token_shows_its_error_message(kiosk, page):
    open_screen(page, kiosk.url)
    type_code(page, "eyJhbGciOiJub25lIn0.eyJoaWQiOiJkZW1vIn0.")
    alert = page.get_by_role("alert")
    alert.wait_for()
    page.wait_for_function("() => document.getElementById('message').textContent.includes('not valid')")
    assert "not valid here" in alert.text_content()
    shot(page, "lobby-bad-token")
    used = kiosk.token("guest")
    assert kiosk.scan(used).status_code == 200  # used once already (elsewhere on this kiosk)
    type_code(page, used)
    page.wait_for_function("() => document.getElementById('message').textContent.includes('already used')")
    page.get_by_role("button", name="Deutsch").click()
    type_code(page, used)
    page.wait_for_function("() => document.getElementById('message').textContent.includes('bereits verwendet')")
    assert page.evaluate("document.documentElement.lang") == "de"


def test_a_guest_sees_their_welcome_room_offers_and_can_ask_for_something(kiosk, page):
    open_screen(page, kiosk.url)
    shot(page, "lobby-idle")
    page.get_by_label("Or type or paste your code").fill(kiosk.token("guest", user="R-1042"))
    page.keyboard.press("Enter")
    heading = page.get_by_role("heading", name="Welcome, Ada Lovelace")
    heading.wait_for()
    assert page.evaluate("document.activeElement.id") == "welcome"  # focus moved for screen readers
    assert "Room 412 is ready." in page.locator("#room").text_content()
    assert "Late checkout until 14:00" in page.locator("#offers").text_content()
    page.get_by_label("What can we do for you?").fill("Two more pillows, please")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function("() => document.getElementById('message').textContent.includes('received your request')")
    shot(page, "lobby-guest")
    db = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(kiosk.dir)})).db()
    row = next((r[1:] for r in db.execute("SELECT title, type, room_number, created_by FROM tickets")
                if r[0].startswith("Two more pillows")), None)  # the words are sealed: compared as read
    assert row == ("housekeeping", "412", "R-1042")  # pillows: routed to the team that brings them
    page.get_by_role("button", name="Done — log out").click()
    page.wait_for_function("() => document.getElementById('message').textContent.includes('logged out')")
    assert page.locator("#idle").is_visible() and not page.locator("#guest").is_visible()


def test_a_german_guest_gets_the_german_screen(kiosk, page):
    open_screen(page, kiosk.url)
    type_code(page, kiosk.token("guest", user="R-2001"))
    page.get_by_role("heading", name="Willkommen, Karl Benz").wait_for()
    assert "Zimmer 105 wird gerade vorbereitet." in page.locator("#room").text_content()
    assert page.get_by_role("button", name="Deutsch").get_attribute("aria-pressed") == "true"
    shot(page, "lobby-guest-de")


def test_the_lobby_logs_out_after_inactivity(kiosk, page):
    open_screen(page, kiosk.url)
    page.evaluate("document.body.dataset.idleSeconds = '1'")
    type_code(page, kiosk.token("guest", user="R-1042"))
    page.get_by_role("heading", name="Welcome, Ada Lovelace").wait_for()
    page.wait_for_function("() => !document.getElementById('idle').hidden", timeout=60_000)  # 1 s idle; a slow box
    assert "logged out" in page.get_by_role("alert").text_content()


def test_a_staff_member_updates_a_task_on_the_staff_screen(kiosk, page):
    open_screen(page, kiosk.url + "/staff")
    page.get_by_label("Scan your badge or type your code").fill(kiosk.token("staff", user="s-ana", name="Ana"))
    page.get_by_role("button", name="Continue").click()
    item = page.locator("li[data-work-order='WO-31']")
    item.wait_for()
    assert "Shower drains slowly" in item.text_content() and "Assigned" in item.text_content()
    assert page.get_by_label("Status — WO-31").input_value() == "assigned"  # the current status is selected
    page.get_by_label("Status — WO-31").select_option("in_progress")
    item.get_by_role("button", name="Update").click()
    page.wait_for_function("() => document.getElementById('message').textContent.includes('queued for the PMS')")
    page.wait_for_function("() => (document.querySelector(\"li[data-work-order='WO-31']\") || {textContent: ''})"
                           ".textContent.includes('In progress')")
    findings = page.locator("#findings")
    page.wait_for_function("() => document.getElementById('findings').textContent.includes('R-NIGHT')")
    assert "Missing room charge" in findings.text_content()  # from the night-audit model, on this kiosk's data
    page.get_by_role("button", name="Assign open tasks").click()
    page.wait_for_function("() => document.getElementById('message').textContent.includes('1 task assigned')")
    assert page.eval_on_selector("#message", "m => m.className") == "message ok"  # good news is green
    page.wait_for_function("""() => [...document.querySelectorAll("#queue li[data-kind='task']")].some(li =>
        li.textContent.includes('Room 105') && li.textContent.includes('Assigned to Ana'))""")
    shot(page, "staff-updated")
    # a billing correction proposed by a model waits for a decision on the staff screen
    sid = page.evaluate("sessionId")
    r = page.evaluate("""async (sid) => (await Kiosk.api("POST", "/api/ai/trigger",
        {sessionId: sid, modelId: "billing-detection", requestPayload: {}})).data""", sid)
    assert r["actionsTriggered"][0]["status"] == "awaiting_approval"
    page.reload()
    page.wait_for_selector("body[data-ready=yes]")
    approval = page.locator("li[data-approval]").first
    approval.wait_for()
    assert "post the missing room charge" in approval.text_content()
    approval.get_by_role("button", name="Approve").click()
    page.wait_for_function("() => document.getElementById('message').textContent.includes('Approved')")
    page.wait_for_function("() => document.querySelectorAll('li[data-approval]').length === 0")
    db = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(kiosk.dir)})).db()
    assert db.execute("SELECT status, version FROM work_orders WHERE work_order_id = 'WO-31'").fetchone() == ("in_progress", 2)
    queued = db.execute("SELECT payload FROM outbox WHERE kind = 'work_order.updated' AND entity_id = 'WO-31'").fetchone()
    assert json.loads(queued[0])["changes"]["status"] == {"old": "assigned", "new": "in_progress"}


def test_every_control_has_a_label_and_the_targets_are_large(kiosk, page):
    for path in ("/", "/staff"):
        open_screen(page, kiosk.url + path)
        unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => !e.labels || e.labels.length === 0).map(e => e.id)""")
        assert unlabeled == []
        small = page.evaluate("""() => [...document.querySelectorAll('button')]
            .filter(b => b.offsetParent !== null)
            .filter(b => b.getBoundingClientRect().height < 64).map(b => b.textContent)""")
        assert small == []


def test_every_scan_error_code_has_a_message_in_every_language():
    spec = __import__("yaml").safe_load((Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml").read_text())
    codes = set()
    for status, resp in spec["paths"]["/api/qr/scan"]["post"]["responses"].items():
        if int(status) >= 400:
            resp = resp if "$ref" not in resp else spec["components"]["responses"][resp["$ref"].split("/")[-1]]
            codes |= set(resp.get("x-error-codes", []))
    strings = json.loads((Path(__file__).resolve().parents[1] / "kiosk/web/static/i18n.json").read_text())
    assert len(strings) >= 2 and all(set(s) == set(strings["en"]) for s in strings.values())
    for lang, s in strings.items():
        missing = [c for c in codes if f"error.{c}" not in s]
        assert missing == [], lang


def test_the_scan_feed_streams_server_sent_events_to_the_kiosks_own_screen(kiosk):
    import requests

    r = requests.get(kiosk.url + "/screen/events", stream=True, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    assert next(r.iter_lines()) == b"retry: 2000"
    r.close()


def test_a_guest_token_shown_to_a_video_camera_brings_the_lobby_to_their_welcome(tmp_path, browser):
    from kiosk.camera import synth

    k = Kiosk(tmp_path, "cam")
    db = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir)})).db()
    db["reservations"].insert({"hotel_id": "demo", "confirmation": "R-5150", "guest_name": "Grace Hopper",
                               "arrival": "2026-11-24", "departure": "2026-11-25", "status": "Confirmed"})
    db.conn.close()
    token = k.token("guest", user="R-5150")
    import numpy as np

    # 8 s of an empty lobby (the browser opens meanwhile), then the code held up for 2 s
    frames = [synth.frame(None, (640, 480), synth.EASY, np.random.default_rng(i)) for i in range(80)]
    frames += [synth.frame(token, (640, 480), synth.MEDIUM, np.random.default_rng(i)) for i in range(20)]
    video = tmp_path / "lobby-camera.avi"
    synth.video(video, frames, fps=10)
    k.env |= {"KIOSK__CAMERA__ENABLED": "true", "KIOSK__CAMERA__SOURCE": "file", "KIOSK__CAMERA__URI": str(video)}
    k.serve()
    try:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        open_screen(page, k.url)
        assert page.locator(".preview img").count() == 1  # the live preview is there
        page.get_by_role("heading", name="Welcome, Grace Hopper").wait_for(timeout=60_000)
        shot(page, "lobby-camera-welcome")
        ctx.close()
    finally:
        k.stop_all()
    sessions = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir)})).db().execute(
        "SELECT count(*), min(scan_method) FROM sessions").fetchone()
    assert sessions == (1, "camera")  # one hold-up, one scan
