"""Sessions that fit a shared screen, and camera scans that burn no code nobody sees.

* every session ends after a while without a request (``sessions.idle_seconds``, per role
  ``sessions.idle_seconds_by_role``): ``401 SESSION_EXPIRED``, reason ``idle``;
* a staff or admin session opened AT THE LOBBY (typed there, or a camera claim) is the lobby's
  visit: it ends with the lobby's inactivity log-out (``sessions.lobby_idle_seconds``) or Done;
* a camera scan only checks the code: the one-time code is consumed when the lobby redeems
  the scan's claim, so a code held up while someone else uses the screen stays usable;
* in Chromium: an admin code typed at the lobby goes back to the lobby after the idle time,
  and the staff and admin pages count down ("Signs out in 4:12 without activity").

Screenshots (1920×1080 and 390×844) go to $SCREENSHOT_DIR (default var/test-artifacts/screens).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import pytest
from browser import ARTIFACTS, needs_chromium
from conftest import SCREEN, screen_sign_in

from kiosk.camera import synth
from kiosk.camera.decoders import Chain
from kiosk.camera.loop import Scanner
from kiosk.camera.sources import ImageFolderSource
from kiosk.camera.stable import StableReads
from kiosk.web import screens as screens_mod

LOBBY = {"X-Kiosk-Screen": "lobby"}  # what lobby.js sends with a typed code (common.js Kiosk.screen)


def refusal(r) -> tuple[int, str, str | None]:
    err = r.get_json()["error"]
    return r.status_code, err["code"], err["details"].get("reason")


# --- idle expiry -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("role", "idle"), [("guest", 300), ("staff", 900), ("admin", 600)])
def test_a_session_ends_after_its_roles_idle_time_without_a_request(client, login, clock, instance, role, idle):
    by_role = getattr(instance.config.sessions.idle_seconds_by_role, role)
    assert (by_role or instance.config.sessions.idle_seconds) == idle
    h = login(role)
    for _ in range(2):  # in use: a request now and then keeps it past the idle time (within the ttl)
        clock.advance(idle - 1)
        assert client.get("/api/session", headers=h).status_code == 200
    r = client.get("/api/session", headers=h).get_json()
    assert r["idleSeconds"] == idle and r["visit"] is None
    clock.advance(idle)
    assert refusal(client.get("/api/session", headers=h)) == (401, "SESSION_EXPIRED", "idle")
    db = instance.db()
    assert db.execute("SELECT end_reason FROM sessions").fetchone()[0] == "idle"  # ended, not just refused
    assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'session.ended'"
                      " AND json_extract(payload, '$.reason') = 'idle'").fetchone()[0] == 1
    clock.advance(1)
    assert refusal(client.get("/api/session", headers=h)) == (401, "SESSION_EXPIRED", "ended")


def test_the_idle_time_is_configurable_per_role(tmp_path, clock):
    from kiosk import config as config_mod

    cfg = config_mod.load(None, env={"KIOSK__SESSIONS__IDLE_SECONDS": "120",
                                     "KIOSK__SESSIONS__IDLE_SECONDS_BY_ROLE__STAFF": "60"},
                          overrides={"data_dir": str(tmp_path)})
    assert cfg.sessions.idle_seconds == 120  # the guest's, who has none of their own
    assert cfg.sessions.idle_seconds_by_role.model_dump() == {"guest": None, "staff": 60, "admin": 600}
    from kiosk.errors import ConfigError

    with pytest.raises(ConfigError):
        config_mod.load(None, env={"KIOSK__SESSIONS__IDLE_SECONDS_BY_ROLE__WIZARD": "60"},
                        overrides={"data_dir": str(tmp_path)})


def test_last_seen_is_written_at_most_every_few_seconds(client, login, clock, instance):
    h = login("staff")
    db = instance.db()
    seen = lambda: db.execute("SELECT last_seen_at FROM sessions").fetchone()[0]  # noqa: E731
    opened = seen()
    clock.advance(2)
    assert client.get("/api/session", headers=h).status_code == 200
    assert seen() == opened  # a request right after another: no write
    clock.advance(4)
    assert client.get("/api/session", headers=h).status_code == 200
    assert seen() == clock.now()


# --- the lobby's visit -----------------------------------------------------------------------------

def lobby_browser(app, token: str):
    """A test client signed in like lobby.js does with a typed code."""
    browser = app.test_client()
    r = screen_sign_in(browser, token, headers=LOBBY)
    assert r.status_code == 200, r.get_json()
    return browser


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_a_staff_or_admin_session_opened_at_the_lobby_ends_with_the_lobbys_idle_logout(app, issue, clock, role):
    lobby = lobby_browser(app, issue(role))
    who = lobby.get("/api/session").get_json()
    assert (who["visit"], who["idleSeconds"]) == ("lobby", 90)  # the lobby's time, not the role's
    clock.advance(89)
    assert lobby.get("/api/session").status_code == 200
    clock.advance(90)
    assert refusal(lobby.get("/api/session")) == (401, "SESSION_EXPIRED", "idle")
    if role == "admin":  # the server-rendered dashboard says no too: a sign-in prompt
        assert b'data-mode="login"' in lobby.get("/admin").data
    # the same role signed in at its own terminal keeps the role's time
    desk = app.test_client()
    assert screen_sign_in(desk, issue(role), headers=SCREEN).status_code == 200
    assert desk.get("/api/session").get_json()["visit"] is None
    clock.advance(120)
    assert desk.get("/api/session").status_code == 200


def test_done_at_the_lobby_ends_a_staff_visit(app, issue, instance):
    lobby = lobby_browser(app, issue("staff"))
    assert lobby.delete("/api/session").status_code == 200  # "Done — log out" / the idle log-out
    assert lobby.get("/api/staff/tasks").status_code == 401  # the cookie is cleared and the row ended
    assert instance.db().execute("SELECT end_reason FROM sessions").fetchone()[0] == "logout"


# --- camera scans burn no code nobody sees --------------------------------------------------------

def wait_for(pred, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout  # generous: a loaded machine decodes slowly
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def hold_up(folder: Path, token: str, name: str) -> None:
    """Hold a code up to the folder camera (the demo's camera: a QR PNG copied in)."""
    tmp = folder / f".{name}.tmp.png"
    cv2.imwrite(str(tmp), cv2.cvtColor(synth.qr_gray(token), cv2.COLOR_GRAY2BGR))
    tmp.rename(folder / f"{name}.png")


@pytest.fixture
def camera(tmp_path, app, instance, monkeypatch):
    """The lobby's camera: a folder source scanning into the app's event bus."""
    monkeypatch.setattr(screens_mod, "peer_allowed", lambda environ, uids: True)  # the kiosk's own screen
    folder = tmp_path / "camera"
    folder.mkdir()
    bus = app.config["KIOSK_EVENTS"]
    feed = bus.subscribe()
    scanner = Scanner(ImageFolderSource(folder, hold_seconds=1.0, fps=20, size=(640, 480)), Chain(),
                      StableReads(2, 60_000, 30), scan_service=app.config["KIOSK_SCAN"], instance=instance,
                      bus=bus, default_hotel="demo").start()
    scanner.folder, scanner.feed = folder, feed
    yield scanner
    scanner.stop()
    bus.unsubscribe(feed)


def next_scan(camera) -> dict:
    import queue

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            return camera.feed.get(timeout=0.2)
        except queue.Empty:
            continue
    raise AssertionError("no camera scan")


def test_a_busy_lobby_does_not_burn_a_one_time_code_and_the_code_works_afterwards(app, issue, instance, camera):
    db = instance.db()
    first = app.test_client()  # guest 1 is using the lobby (signed in there)
    assert screen_sign_in(first, issue("guest", name="Ada")).status_code == 200
    code = issue("guest", name="Bo")  # guest 2 holds a one-time code up meanwhile
    hold_up(camera.folder, code, "bo")
    event = next_scan(camera)
    # the lobby does not redeem it while the visit lasts (lobby.js): nothing is consumed
    assert db.execute("SELECT count(*) FROM consumed_tokens").fetchone()[0] == 1  # Ada's only
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
    assert event["ok"] and event["pending"]["user"]["name"] == "Bo"
    assert db.execute("SELECT count(*) FROM audit_log WHERE event = 'scan' AND outcome = 'success'"
                      " AND actor = ?", [event["pending"]["user"]["id"]]).fetchone()[0] == 0
    shown = screens_mod._for_screen(event, app.config["KIOSK_CLAIMS"])  # what the lobby's feed gets
    assert set(shown) == {"type", "ok", "claim", "role"}  # a claim, no token and no session
    # later, when the screen is free, the same code works (typed here; or held up again)
    second = app.test_client()
    r = screen_sign_in(second, code)
    assert r.status_code == 200 and r.get_json()["user"]["name"] == "Bo"
    # the claim left over from the busy screen is not a second way in: the code is used now
    r = app.test_client().post("/screen/claim", json={"claim": shown["claim"]})
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "TOKEN_ALREADY_USED")
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 2


def test_a_camera_claim_consumes_the_code_once_when_the_lobby_takes_it(app, issue, instance, camera):
    db = instance.db()
    code = issue("staff", user="s-ana", name="Ana")
    hold_up(camera.folder, code, "ana")
    event = next_scan(camera)
    claim = screens_mod._for_screen(event, app.config["KIOSK_CLAIMS"])["claim"]
    assert db.execute("SELECT count(*) FROM consumed_tokens").fetchone()[0] == 0
    lobby = app.test_client()
    r = lobby.post("/screen/claim", json={"claim": claim})  # the idle lobby redeems it
    body = r.get_json()
    assert r.status_code == 200 and body["user"]["name"] == "Ana" and "sessionJWT" not in body
    lobby.environ_base["HTTP_X_KIOSK_KEY"] = body["screenKey"]
    assert lobby.get("/api/session").get_json()["visit"] == "lobby"  # a camera scan is the lobby's visit
    # one transaction as a typed scan: consumed, session, workflow, audit and outbox rows together
    sid = body["sessionId"]
    assert db.execute("SELECT session_id FROM consumed_tokens").fetchone()[0] == sid
    assert db.execute("SELECT scan_method, client FROM sessions WHERE id = ?", [sid]).fetchone() == ("camera", "camera")
    assert db.execute("SELECT count(*) FROM audit_log WHERE event = 'scan' AND outcome = 'success'"
                      " AND session_id = ?", [sid]).fetchone()[0] == 1
    assert {k for (k,) in db.execute("SELECT kind FROM outbox WHERE entity_id IN (?, ?)",
                                     [sid, event["pending"]["user"]["id"]])} >= {"session.opened"}
    assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'token.used'").fetchone()[0] == 1
    r = app.test_client().post("/screen/claim", json={"claim": claim})  # once
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "SESSION_EXPIRED")
    r = screen_sign_in(app.test_client(), code)
    assert (r.status_code, r.get_json()["error"]["code"]) == (409, "TOKEN_ALREADY_USED")


def test_a_used_code_held_up_is_refused_by_the_camera_with_its_code(app, issue, instance, camera):
    code = issue("guest", name="Cy")
    assert screen_sign_in(app.test_client(), code).status_code == 200
    hold_up(camera.folder, code, "cy")
    assert next_scan(camera) == {"type": "scan", "ok": False, "code": "TOKEN_ALREADY_USED"}


# --- in Chromium ---------------------------------------------------------------------------------

LOBBY_IDLE = 12  # seconds: long enough for a slow box to render, short enough for a test
browser_test = needs_chromium


@pytest.fixture
def kiosk(tmp_path):
    from harness import Kiosk

    k = Kiosk(tmp_path, "visits")
    k.env |= {"KIOSK__SESSIONS__LOBBY_IDLE_SECONDS": str(LOBBY_IDLE)}
    k.serve()
    yield k
    k.stop_all()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


SIZES = [("1920", {"width": 1920, "height": 1080}), ("390", {"width": 390, "height": 844})]


@browser_test
@pytest.mark.parametrize(("size", "viewport"), SIZES)
def test_an_admin_code_at_the_lobby_returns_to_the_lobby_after_the_idle_time(kiosk, browser, size, viewport):
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=viewport, locale="en-GB")
    ctx.set_default_timeout(60_000)
    page = ctx.new_page()
    try:
        page.goto(kiosk.url + "/")
        page.wait_for_selector("body[data-ready=yes]")
        assert page.evaluate("document.body.dataset.idleSeconds") == str(LOBBY_IDLE)
        page.locator("#token").fill(kiosk.token("admin", user="a-mia", name="Mia"))
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(re.escape(kiosk.url + "/admin")), timeout=60_000)
        timer = page.get_by_role("timer")
        expect(timer).to_have_text(re.compile(r"^Signs out in 0:(0\d|1[0-2]) without activity$"))
        expect(page.locator("[data-panel=overview]")).to_have_attribute("data-state", "ready")
        shot(page, f"visit-admin-from-lobby-countdown-{size}")
        # nobody touches it: back to the lobby, the session ended and the key forgotten
        page.wait_for_url(kiosk.url + "/", timeout=(LOBBY_IDLE + 60) * 1000)
        page.wait_for_selector("body[data-ready=yes]")
        expect(page.locator("#idle")).to_be_visible()
        assert page.evaluate("localStorage.getItem('kiosk.screenKey')") is None
        shot(page, f"visit-back-at-the-lobby-{size}")
    finally:
        ctx.close()
    r = kiosk.screen("staff")  # another sign-in works; the admin's session is over
    assert r.get(kiosk.url + "/api/session").status_code == 200


@browser_test
@pytest.mark.parametrize(("size", "viewport"), SIZES)
def test_the_staff_terminal_counts_down_and_signs_out_by_itself(kiosk, browser, size, viewport):
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=viewport, locale="en-GB")
    ctx.set_default_timeout(60_000)
    page = ctx.new_page()
    try:
        # at the staff terminal itself: the role's time (15 min), back to its own sign-in
        page.goto(kiosk.url + "/staff")
        page.wait_for_selector("body[data-ready=yes]")
        page.locator("#token").fill(kiosk.token("staff", user="s-ana", name="Ana"))
        page.keyboard.press("Enter")
        expect(page.locator("#work")).to_be_visible()
        expect(page.get_by_role("timer")).to_have_text(re.compile(r"^Signs out in 1[45]:\d\d without activity$"))
        shot(page, f"visit-staff-countdown-{size}")
        # the answer to the timer's DELETE comes late (a loaded box): the live feed hears the
        # session end first, and the screen must still say why it ended
        def late_answer(route):
            if route.request.method != "DELETE":
                return route.fallback()
            answer = route.fetch()
            page.wait_for_timeout(2000)
            route.fulfill(response=answer)
        page.route("**/api/session", late_answer)
        page.evaluate("Kiosk.idle.end()")  # as if 15 minutes went by (the same path the timer takes)
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#message")).to_have_text("You were signed out after a while without activity.")
        page.unroute("**/api/session")
        assert page.url == kiosk.url + "/staff"
        expect(page.get_by_role("timer")).to_be_hidden()
        # from the lobby: the lobby's time, and back to the lobby by itself
        page.goto(kiosk.url + "/")
        page.wait_for_selector("body[data-ready=yes]")
        page.locator("#token").fill(kiosk.token("staff", user="s-ana", name="Ana"))
        page.keyboard.press("Enter")
        expect(page).to_have_url(kiosk.url + "/staff")
        expect(page.get_by_role("timer")).to_have_text(re.compile(r"^Signs out in 0:(0\d|1[0-2]) without activity$"))
        page.wait_for_url(kiosk.url + "/", timeout=(LOBBY_IDLE + 60) * 1000)
        expect(page.locator("#idle")).to_be_visible()
    finally:
        ctx.close()
