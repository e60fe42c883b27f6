"""The admin dashboard (/admin) in a real browser: Debian's Chromium, headless, driven by
Playwright, against a real kiosk server on 127.0.0.1 with a real database.

The kiosk is filled with a day of history (scans, sessions, model runs, a dead letter, a
conflict, a security event) so the charts have something to draw.  Screenshots (390×844
and 1920×1080) go to $SCREENSHOT_DIR (default var/test-artifacts/screens).  Every wait is
for a condition.

The CSRF and 403 checks that need no browser run against the Flask test client.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
from browser import ARTIFACTS, needs_chromium
from harness import Kiosk

from kiosk import config as config_mod
from kiosk.instance import Instance
from kiosk.web import csrf

REPO = Path(__file__).resolve().parents[1]
# what the screens must live with (the security work's policy): no inline script or style
CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
WAIT = 60_000  # ms: a generous bound for every expectation on a shared, loaded 2-core machine
needs_browser = needs_chromium


# --- the kiosk, with history -------------------------------------------------------------------

def _db(k: Kiosk):
    return Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir)})).db()


def seed_history(k: Kiosk) -> dict:
    """A day of a small hotel: real scans through the API, plus older rows written directly."""
    people = {}
    # real sessions, opened by real scans
    people["ada"] = k.scan(k.token("guest", user="R-1042", name="Ada Lovelace", walk_in=True)).json()
    people["karl"] = k.scan(k.token("guest", user="R-2001", name="Karl Benz", walk_in=True)).json()
    people["ana"] = k.scan(k.token("staff", user="s-ana", name="Ana Lima")).json()
    k.scan("not-a-token")  # refused: VALIDATION_ERROR or INVALID_TOKEN
    used = k.token("guest", user="R-3003", name="Lise Meitner", walk_in=True)
    k.scan(used)
    k.scan(used)  # refused: TOKEN_ALREADY_USED
    # the staff member runs two models through the API (real runs in the run log)
    ana = requests.Session()
    ana.headers["Authorization"] = "Bearer " + people["ana"]["sessionJWT"]
    for model in ("night-audit", "task-routing"):
        r = ana.post(k.url + "/api/ai/trigger", json={"sessionId": people["ana"]["sessionId"], "modelId": model,
                                                      "requestPayload": {}}, timeout=60)
        assert r.status_code == 200, r.text
    db = _db(k)
    now = time.time()
    # the last 24 hours: scans and model runs spread over the hours, a few refused or failed
    codes = ["TOKEN_EXPIRED", "TOKEN_ALREADY_USED", "INVALID_TOKEN"]
    rows = []
    for i in range(70):
        at = now - 3600 * 23.5 + i * 1200 + (i % 3) * 97
        if at > now - 120:
            break
        refused = i % 9 == 4
        rows.append({"hotel_id": "demo", "at": at, "event": "scan", "outcome": "refused" if refused else "success",
                     "client": "127.0.0.1", "code": codes[i % 3] if refused else None,
                     "details": json.dumps({"scanMethod": "camera" if i % 2 else "manual"})})
    # older history for the week and month views, and one row 40 days ago (outside any export below)
    for day in range(2, 29, 3):
        rows.append({"hotel_id": "demo", "at": now - day * 86400, "event": "scan", "outcome": "success",
                     "client": "127.0.0.1", "details": "{}"})
    rows.append({"hotel_id": "demo", "at": now - 40 * 86400, "event": "scan", "outcome": "success",
                 "client": "127.0.0.1", "actor": "ancient-history", "details": "{}"})
    db["audit_log"].insert_all(rows)
    runs = []
    models = {"guest-messaging": 180, "upsell-engine": 95, "room-status": 240, "housekeeping-plan": 1450,
              "billing-detection": 610}
    for i in range(48):
        model = list(models)[i % len(models)]
        status = "TIMEOUT" if i == 17 else "ERROR" if i % 13 == 5 else "SUCCESS"
        runs.append({"hotel_id": "demo", "model_id": model, "started_at": now - 3600 * 23 + i * 1700,
                     "duration_ms": models[model] * (0.6 + (i % 7) / 6), "status": status,
                     "error": "model failed" if status != "SUCCESS" else None, "actions": i % 3})
    db["ai_interactions"].insert_all([r for r in runs if r["started_at"] < now - 60])
    # a change the cloud refused for good, a conflict and a replayed token
    db.execute("UPDATE outbox SET state = 'dead', attempts = 6, last_error = 'rejected: unknown room 999'"
               " WHERE id = (SELECT min(id) FROM outbox WHERE hotel_id = 'demo')")
    db["conflicts"].insert({"hotel_id": "demo", "entity_type": "work_order", "entity_id": "WO-31", "field": "notes",
                            "rule": "field-lww", "outcome": "kept the value with the later stamp",
                            "source": "pull", "detected_at": now - 5400, "key": "test:1"})
    db["security_events"].insert({"hotel_id": "demo", "kind": "TOKEN_REPLAY", "subject": "jti-7f3a",
                                  "details": json.dumps({"kiosks": ["lobby", "spa"]}), "detected_at": now - 3000,
                                  "key": "test:2"})
    db.conn.commit()
    db.conn.close()
    return people


@pytest.fixture
def kiosk(tmp_path):
    k = Kiosk(tmp_path, "front")
    k.serve()
    k.people = seed_history(k)
    yield k
    k.stop_all()


def strict_csp(page) -> None:
    """Serve /admin under a strict Content-Security-Policy and record any violation."""
    page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                         " e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || e.sample)));")

    def handle(route):
        resp = route.fetch()
        headers = {**resp.headers}
        headers.setdefault("content-security-policy", CSP)
        route.fulfill(response=resp, headers=headers)

    page.route(re.compile(r".*/admin(#.*)?$"), handle)


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="en-GB", accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT)
    pg = context.new_page()
    pg.set_default_timeout(WAIT)
    strict_csp(pg)
    yield pg
    assert pg.evaluate("window.__csp || []") == [], "Content-Security-Policy violations"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ready(page, panel: str):
    from playwright.sync_api import expect

    p = page.locator(f"[data-panel={panel}]")
    expect(p).to_have_attribute("data-state", "ready")
    return p


def sign_in_at_the_lobby(page, kiosk) -> None:
    from playwright.sync_api import expect

    page.goto(kiosk.url + "/")
    page.wait_for_selector("body[data-ready=yes]")
    page.locator("#token").fill(kiosk.token("admin", user="a-mia", name="Mia Keller"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin(#overview)?$"))
    expect(page.get_by_role("heading", name="Admin dashboard", exact=True)).to_be_visible()
    page.wait_for_selector("body[data-ready=yes]")


def drawn_at_width(page, chart: str) -> None:
    """Wait until the chart's SVG is drawn at its container's content width (not scaled)."""
    from playwright.sync_api import expect

    width = page.evaluate("""(sel) => { const h = document.querySelector(sel), cs = getComputedStyle(h);
        return Math.max(260, Math.floor(h.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight))); }""",
                          chart)
    assert width <= 390
    expect(page.locator(f"{chart} svg")).to_have_attribute("width", str(width))


def open_tab(page, name: str):
    from playwright.sync_api import expect

    tab = page.get_by_role("tab", name=name)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    return tab


# --- the browser tests ----------------------------------------------------------------------------

@needs_browser
def test_an_admin_scans_at_the_lobby_and_sees_the_overview_with_charts(kiosk, page):
    from playwright.sync_api import expect

    sign_in_at_the_lobby(page, kiosk)
    ready(page, "overview")
    assert "Mia Keller" in page.locator(".admin-head").text_content()
    cards = page.locator("#ov-cards")
    expect(cards).to_contain_text("Scans (24 h)")
    expect(cards).to_contain_text("Dead letters")
    for chart in ("#chart-ov-scans", "#chart-ov-models", "#chart-ov-sync"):
        svg = page.locator(f"{chart} svg[role=img]")
        expect(svg).to_be_visible()
        assert page.locator(f"{chart} rect.bar").count() > 0, chart
        assert page.locator(f"{chart} details table").count() == 1  # the numbers, for screen readers
        assert page.locator(f"{chart} svg title").first.text_content()
    # the scans chart has one bar group per hour and axis titles
    assert "Hour of the day" in page.locator("#chart-ov-scans svg").text_content()
    page.locator("#chart-ov-scans details summary").click()
    expect(page.locator("#chart-ov-scans details table")).to_be_visible()
    page.locator("#chart-ov-scans details summary").click()
    shot(page, "admin-overview-1920")
    page.set_viewport_size({"width": 390, "height": 844})
    # the charts are drawn again at the new width: no horizontal scrolling
    drawn_at_width(page, "#chart-ov-scans")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "admin-overview-390")


@needs_browser
def test_analytics_charts_per_period_at_both_sizes(kiosk, page):
    from playwright.sync_api import expect

    sign_in_at_the_lobby(page, kiosk)
    open_tab(page, "Analytics")
    panel = ready(page, "analytics")
    models = page.locator("#an-models")
    expect(models).to_contain_text("housekeeping-plan")
    expect(models).to_contain_text("night-audit")  # run for real by the staff member
    assert page.locator("#chart-an-latency rect.bar").count() >= 2 * 5
    expect(page.locator("#chart-an-roles")).to_contain_text("Guest")
    panel.get_by_text("30 days").click()
    expect(page.locator("#an-range")).to_contain_text(" to ")
    ready(page, "analytics")
    expect(page.locator("#chart-an-scans")).to_contain_text("Scans per day")
    shot(page, "admin-analytics-1920")
    # a custom range: the last three days
    panel.get_by_text("Dates…").click()
    expect(panel.get_by_label("From", exact=True)).to_be_visible()
    today = page.evaluate("isoDate(new Date())")
    three = page.evaluate("isoDate(new Date(Date.now() - 2 * 86400000))")
    panel.get_by_label("From", exact=True).fill(three)
    panel.get_by_label("To", exact=True).fill(today)
    page.locator("#custom-range").get_by_role("button", name="Show").click()
    ready(page, "analytics")
    expect(page.locator("#chart-an-scans")).to_contain_text("Scans per day")
    page.set_viewport_size({"width": 390, "height": 844})
    panel.get_by_text("24 hours").click()
    ready(page, "analytics")
    expect(page.locator("#chart-an-scans")).to_contain_text("Scans per hour")
    drawn_at_width(page, "#chart-an-latency")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "admin-analytics-390")


@needs_browser
def test_an_admin_creates_a_token_sees_its_qr_and_revokes_another(kiosk, page):
    from playwright.sync_api import expect

    sign_in_at_the_lobby(page, kiosk)
    open_tab(page, "Tokens")
    panel = ready(page, "tokens")
    page.get_by_role("button", name="New token").click()
    dialog = page.get_by_role("dialog", name="New token")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Role").select_option("guest")
    dialog.get_by_label("Name").fill("Grace Hopper")
    db = _db(kiosk)  # a guest code names a stay the hotel holds
    db["reservations"].insert({"hotel_id": "demo", "confirmation": "R-5150", "guest_name": "Grace Hopper",
                               "arrival": "2026-11-24", "departure": "2026-11-27", "status": "InHouse"})
    db.conn.close()
    dialog.get_by_label("Reservation number or staff id (optional)").fill("R-5150")
    dialog.get_by_label("Valid for").select_option("7d")
    dialog.get_by_role("button", name="Create token").click()
    qr = dialog.get_by_role("img", name="QR code for Grace Hopper (Guest)")
    expect(qr).to_be_visible()
    expect(qr).to_have_attribute("data-drawn", "yes")
    # the QR really holds the token: dark and light modules were drawn
    assert page.evaluate("""() => { const c = document.getElementById('token-qr');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let dark = 0, light = 0;
        for (let i = 0; i < d.length; i += 4) (d[i] < 64 ? dark++ : light++); return c.width > 100 && dark > 1000 && light > 1000; }""")
    token = dialog.get_by_label("The code as text").input_value()
    assert token.count(".") == 2
    expect(dialog).to_contain_text("valid until")
    shot(page, "admin-token-created-1920")
    with page.expect_download() as dl:
        dialog.get_by_role("button", name="Save QR image").click()
    assert dl.value.suggested_filename == "qr-Grace-Hopper.png"
    assert Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_be_hidden()
    # filter: active guest tokens, Grace's among them
    panel.get_by_label("Status").select_option("active")
    panel.get_by_label("Role").select_option("guest")
    ready(page, "tokens")
    row = page.locator("#token-list tr", has_text="Grace Hopper")
    expect(row).to_contain_text("Active")
    assert page.locator("#token-list tbody tr", has_text="Mia Keller").count() == 0  # an admin token
    # revoke it, after confirming
    row.get_by_role("button", name="Revoke the token of Grace Hopper").click()
    confirm = page.get_by_role("dialog", name="Revoke this token?")
    expect(confirm).to_contain_text("Grace Hopper")
    confirm.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("alert")).to_contain_text("The token of Grace Hopper is revoked.")
    expect(page.locator("#token-list tr", has_text="Grace Hopper")).to_have_count(0)  # no longer active
    panel.get_by_label("Status").select_option("revoked")
    ready(page, "tokens")
    expect(page.locator("#token-list tr", has_text="Grace Hopper")).to_contain_text("Revoked")
    r = kiosk.scan(token)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "TOKEN_REVOKED")
    # no match: the empty state says what to do
    panel.get_by_label("Role").select_option("admin")
    ready(page, "tokens")
    expect(page.locator("#token-list .empty")).to_contain_text("Choose “All”")
    page.set_viewport_size({"width": 390, "height": 844})
    panel.get_by_label("Status").select_option("")
    panel.get_by_label("Role").select_option("")
    ready(page, "tokens")
    shot(page, "admin-tokens-390")
    # a reusable staff badge, on a phone
    page.get_by_role("button", name="New token").click()
    dialog.get_by_label("Role").select_option("staff")
    dialog.get_by_label("Name").fill("Ana Lima")
    dialog.get_by_label("Can be used more than once (staff badges)").check()
    dialog.get_by_role("button", name="Create token").click()
    expect(dialog.get_by_role("img", name="QR code for Ana Lima (Staff)")).to_have_attribute("data-drawn", "yes")
    page.screenshot(path=str(ARTIFACTS / "admin-token-created-390.png"))
    dialog.get_by_role("button", name="Done").click()
    expect(panel.locator("#token-list tr", has_text="Ana Lima").first).to_contain_text("reusable")


@needs_browser
def test_an_admin_filters_sessions_opens_a_timeline_and_ends_one(kiosk, page):
    from playwright.sync_api import expect

    sign_in_at_the_lobby(page, kiosk)
    open_tab(page, "Sessions")
    panel = ready(page, "sessions")
    rows = page.locator("#session-list tbody tr")
    expect(page.locator("#session-list")).to_contain_text("Ada Lovelace")
    expect(page.locator("#session-list")).to_contain_text("Ana Lima")
    expect(page.locator("#session-list tr", has_text="Mia Keller")).to_contain_text("you")
    assert rows.count() == 5  # Ada, Karl, Lise (guests), Ana (staff), and the admin herself
    # Ana's timeline: her scan, her workflow and the two models she ran
    page.get_by_role("button", name="Timeline of the session of Ana Lima").click()
    dialog = page.get_by_role("dialog", name="Session of Ana Lima")
    expect(dialog.locator("#session-timeline li[data-kind='scan']")).to_have_count(1)
    expect(dialog.locator("#session-timeline")).to_contain_text("night-audit")
    expect(dialog.locator("#session-timeline li[data-kind='model.run']")).to_have_count(2)
    shot(page, "admin-timeline-1920")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    # end Ada's session
    page.get_by_role("button", name="End the session of Ada Lovelace").click()
    confirm = page.get_by_role("dialog", name="End this session?")
    confirm.get_by_role("button", name="End session").click()
    expect(page.get_by_role("alert")).to_contain_text("The session of Ada Lovelace has ended.")
    expect(page.locator("#session-list")).not_to_contain_text("Ada Lovelace")
    ada = requests.get(kiosk.url + "/api/session", timeout=60,
                       headers={"Authorization": "Bearer " + kiosk.people["ada"]["sessionJWT"]})
    assert (ada.status_code, ada.json()["error"]["code"]) == (401, "SESSION_EXPIRED")
    # the ended ones
    panel.get_by_label("Show").select_option("expired")
    ready(page, "sessions")
    row = page.locator("#session-list tr", has_text="Ada Lovelace")
    expect(row).to_contain_text("ended by an admin")
    assert page.locator("#session-list tbody tr").count() == 1
    page.get_by_role("button", name="Timeline of the session of Ada Lovelace").click()
    dialog = page.get_by_role("dialog", name="Session of Ada Lovelace")
    expect(dialog.locator("#session-timeline li[data-kind='session.ended']")).to_contain_text("Session ended")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "admin-timeline-390")
    dialog.get_by_role("button", name="Close").click()
    panel.get_by_label("Show").select_option("all")
    ready(page, "sessions")
    expect(page.locator("#session-list tbody tr")).to_have_count(5)
    shot(page, "admin-sessions-390")


@needs_browser
def test_sync_tab_shows_the_backlog_and_retries_a_dead_letter(kiosk, page):
    from playwright.sync_api import expect

    sign_in_at_the_lobby(page, kiosk)
    open_tab(page, "Sync")
    ready(page, "sync")
    expect(page.locator("#sy-cloud")).to_contain_text("has not heard from the cloud")
    expect(page.locator("#sy-conflicts")).to_contain_text("WO-31")
    expect(page.locator("#sy-security")).to_contain_text("A one-time code was used at two kiosks")
    dead = page.locator("#sy-dead tbody tr")
    expect(dead).to_have_count(1)
    expect(dead).to_contain_text("rejected: unknown room 999")
    shot(page, "admin-sync-1920")
    dead.get_by_role("button", name=re.compile("^Retry ")).click()
    expect(page.get_by_role("alert")).to_contain_text("is queued again")
    expect(page.locator("#sy-dead .empty")).to_contain_text("No dead letters")


@needs_browser
def test_an_admin_exports_csv_for_a_date_range(kiosk, page):
    from playwright.sync_api import expect

    sign_in_at_the_lobby(page, kiosk)
    open_tab(page, "Export")
    panel = page.locator("[data-panel=export]")
    today = page.evaluate("isoDate(new Date())")
    week = page.evaluate("isoDate(new Date(Date.now() - 6 * 86400000))")
    panel.get_by_label("From").fill(week)
    panel.get_by_label("To (inclusive)").fill(today)
    # one file per kind of record, with column names people read (kiosk/export.py)
    downloaded = {}
    for kind, label in (("sessions", "Sessions"), ("modelRuns", "Model runs"),
                        ("audit", "Audit log: every scan, sign-in and admin action")):
        panel.get_by_label(label).check()
        with page.expect_download() as dl:
            page.get_by_role("button", name="Download").click()
        assert dl.value.suggested_filename == f"kiosk-export-demo-{kind}-{week}-to-{today}.csv"
        expect(page.locator("[data-panel=export] .panel-status")).to_contain_text(
            f"Downloaded kiosk-export-demo-{kind}-")
        text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
        downloaded[kind] = list(csv.DictReader(io.StringIO(text)))
    names = {r["Name"] for r in downloaded["sessions"]}
    assert {"Ada Lovelace", "Karl Benz", "Ana Lima", "Mia Keller"} <= names
    assert len(downloaded["modelRuns"]) >= 40
    assert sum(r["Event"] == "scan" for r in downloaded["audit"]) >= 60
    assert not any(r["By"] == "ancient-history" for r in downloaded["audit"])  # 40 days ago: outside the range
    shot(page, "admin-export-1920")
    # JSON, one day, only sessions
    panel.get_by_label("JSON").check()
    panel.get_by_label("From").fill(today)
    panel.get_by_label("Sessions").check()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download").click()
    data = json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
    assert {d["kind"] for d in data} == {"sessions"} and len(data) >= 4


@needs_browser
def test_a_failing_endpoint_shows_a_retryable_error(kiosk, page):
    from playwright.sync_api import expect

    failing = {"on": True}

    def analytics(route):
        if failing["on"]:
            route.fulfill(status=500, content_type="application/json",
                          body=json.dumps({"success": False, "error": {"code": "INTERNAL_ERROR", "message": "boom",
                                                                       "details": {}}}))
        else:
            route.continue_()

    page.route(re.compile(r".*/api/admin/analytics\b.*"), analytics)
    sign_in_at_the_lobby(page, kiosk)
    panel = page.locator("[data-panel=overview]")
    expect(panel).to_have_attribute("data-state", "error")
    expect(panel.locator(".panel-status")).to_contain_text("Something went wrong on the kiosk")
    expect(page.locator("#ov-cloud")).to_contain_text("cloud")  # what did load is still shown
    shot(page, "admin-error-1920")
    failing["on"] = False
    panel.get_by_role("button", name="Try again").click()
    ready(page, "overview")
    expect(page.locator("#chart-ov-scans svg")).to_be_visible()
    # another admin ends this one's session: the next call says so and offers to sign in again
    other = kiosk.session("admin")
    mine = [x for x in other.get(kiosk.url + "/api/admin?endpoint=sessions&status=active", timeout=60).json()["sessions"]
            if x["userId"] == "a-mia"]
    assert other.delete(kiosk.url + "/api/admin?endpoint=sessions", json={"sessionId": mine[0]["sessionId"]},
                        timeout=60).status_code == 200
    open_tab(page, "Tokens")
    expect(page.locator("[data-panel=tokens] .panel-status")).to_contain_text("Your session has ended")
    page.get_by_role("alert").get_by_role("button", name="Sign in again").click()
    expect(page.get_by_role("heading", name="Admin sign-in")).to_be_visible()


@needs_browser
def test_a_new_kiosk_shows_empty_states_that_say_what_to_do(tmp_path, page):
    from playwright.sync_api import expect

    k = Kiosk(tmp_path, "fresh")
    k.serve()
    try:
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in_at_the_lobby(page, k)
        ready(page, "overview")
        expect(page.locator("#chart-ov-models")).to_contain_text("No model ran in this period")
        expect(page.locator("#ov-cards")).to_contain_text("nothing waiting for staff")
        shot(page, "admin-empty-overview-390")
        open_tab(page, "Sessions")
        ready(page, "sessions")
        expect(page.locator("#session-list tbody tr")).to_have_count(1)  # the admin herself
        page.locator("[data-panel=sessions]").get_by_label("Show").select_option("expired")
        ready(page, "sessions")
        expect(page.locator("#session-list .empty")).to_contain_text("No ended sessions yet")
        open_tab(page, "Sync")
        ready(page, "sync")
        expect(page.locator("#sy-dead")).to_contain_text("No dead letters")
        expect(page.locator("#sy-conflicts")).to_contain_text("No conflicts so far")
        open_tab(page, "Analytics")
        ready(page, "analytics")
        expect(page.locator("#an-models")).to_contain_text("No model ran in this period")
        expect(page.locator("#chart-an-refused")).to_contain_text("No scans were refused")
        shot(page, "admin-empty-analytics-390")
    finally:
        k.stop_all()


@needs_browser
def test_tabs_work_with_the_keyboard_and_in_german(kiosk, page):
    from playwright.sync_api import expect

    sign_in_at_the_lobby(page, kiosk)
    overview = page.get_by_role("tab", name="Overview")
    overview.focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Tokens")).to_be_focused()
    expect(page.get_by_role("tab", name="Tokens")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tabpanel", name="Tokens")).to_be_visible()
    expect(page.get_by_role("tabpanel", name="Overview")).to_be_hidden()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Export")).to_be_focused()
    page.keyboard.press("ArrowRight")  # wraps around
    expect(page.get_by_role("tab", name="Overview")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="Export")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Home")
    expect(overview).to_have_attribute("aria-selected", "true")
    assert page.evaluate("[...document.querySelectorAll('[role=tab]')].filter(t => t.tabIndex === 0).length") == 1
    # every field is labelled, on every tab and in the dialogs
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => !e.labels || e.labels.length === 0).map(e => e.id || e.name)""")
    assert unlabeled == []
    page.get_by_role("button", name="Deutsch").click()
    expect(page.get_by_role("tab", name="Überblick")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#ov-cards")).to_contain_text("Scans (24 Std.)")
    expect(page.locator("#chart-ov-scans")).to_contain_text("Uhrzeit")
    page.get_by_role("tab", name="Sitzungen").click()
    ready(page, "sessions")
    expect(page.locator("#session-list")).to_contain_text("aktiv, endet")
    assert page.evaluate("document.documentElement.lang") == "de"
    shot(page, "admin-sessions-de-1920")


@needs_browser
def test_admin_without_a_session_is_asked_to_sign_in_and_others_get_403(kiosk, browser):
    from playwright.sync_api import expect

    for role, name in (("staff", "Ana Lima"), ("guest", "Ada Lovelace")):
        ctx = browser.new_context(viewport={"width": 390, "height": 844})
        page = ctx.new_page()
        page.set_default_timeout(WAIT)
        r = page.goto(kiosk.url + "/admin")
        assert r.status == 200
        expect(page.get_by_role("heading", name="Admin sign-in")).to_be_visible()
        if role == "staff":
            shot(page, "admin-login-390")
        page.wait_for_selector("body[data-ready=yes]")
        page.get_by_label("Admin code").fill(kiosk.token(role, user="s-x" if role == "staff" else "R-1042", name=name,
                                                                 **({"walk_in": True} if role == "guest" else {})))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="This dashboard is for admins only")).to_be_visible()
        expect(page.locator("main")).to_contain_text(name)
        r = page.goto(kiosk.url + "/admin")
        assert r.status == 403
        api = page.evaluate("""async () => { const r = await fetch('/api/admin?endpoint=tokens', {headers: Kiosk.headers()});
                                              return [r.status, (await r.json()).error.code]; }""")
        assert api == [403, "FORBIDDEN"]
        if role == "staff":
            shot(page, "admin-forbidden-390")
        page.get_by_role("button", name="Log out to use an admin code").click()
        expect(page.get_by_role("heading", name="Admin sign-in")).to_be_visible()
        ctx.close()


# --- no browser: the server's side ------------------------------------------------------------

def _scan(client, issue, role, **kw):
    """Sign ``client`` in like the screens do: the bound cookie, and its key on every request."""
    r = client.post("/api/qr/scan", json={"qrToken": issue(role, **kw), "hotelId": "demo"},
                    headers={"X-Kiosk-Screen": "1"})
    assert r.status_code == 200, r.get_json()
    client.environ_base["HTTP_X_KIOSK_KEY"] = r.get_json()["screenKey"]
    return r.get_json()


def test_admin_page_modes_and_403_for_guest_and_staff(app, issue, instance):
    c = app.test_client()
    r = c.get("/admin")
    assert r.status_code == 200 and b'id="login"' in r.data and b"csrf-token" not in r.data
    assert r.headers["Cache-Control"] == "no-store"
    for role in ("guest", "staff"):
        _scan(c, issue, role, name="Ana")
        r = c.get("/admin")
        assert r.status_code == 403 and b"admins only" in r.data and b"csrf-token" not in r.data
        assert r.mimetype == "text/html"
        assert c.get("/api/admin?endpoint=sessions").status_code == 403
    refused = instance.db().execute("SELECT count(*) FROM audit_log WHERE event = 'security.forbidden'"
                                    " AND details LIKE '%\"/admin\"%'").fetchone()[0]
    assert refused == 2
    _scan(c, issue, "admin", name="Mia")
    r = c.get("/admin")
    assert r.status_code == 200 and b'data-mode="dashboard"' in r.data and b"Mia" in r.data
    # no inline script, handler or style: the page works under default-src 'self'
    html = r.data.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html) and " style=" not in html


def test_state_changes_by_cookie_need_the_pages_csrf_token(app, issue, instance, keys):
    c = app.test_client()
    admin = _scan(c, issue, "admin")
    page = c.get("/admin").data.decode()
    token = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page).group(1)
    assert token == csrf.token_for(keys.session_secret, admin["sessionId"])
    body = {"role": "guest", "name": "Grace"}
    r = c.post("/api/admin?endpoint=tokens", json=body)
    assert (r.status_code, r.get_json()["error"]["details"]) == (403, {"reason": "csrf-token"})
    r = c.post("/api/admin?endpoint=tokens", json=body, headers={csrf.HEADER: "0" * 64})
    assert r.status_code == 403
    r = c.post("/api/admin?endpoint=tokens", json=body, headers={csrf.HEADER: token, "Origin": "https://evil.example"})
    assert (r.status_code, r.get_json()["error"]["details"]) == (403, {"reason": "cross-site"})
    r = c.post("/api/admin?endpoint=tokens", json=body, headers={csrf.HEADER: token, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert instance.db().execute("SELECT count(*) FROM qr_tokens WHERE display_name = 'Grace'").fetchone()[0] == 0
    r = c.post("/api/admin?endpoint=tokens", json=body,
               headers={csrf.HEADER: token, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 201
    assert c.get("/api/admin?endpoint=tokens").status_code == 200  # reading needs no token
    # another session's token does not fit this one
    other = csrf.token_for(keys.session_secret, uuid.uuid4().hex)
    assert c.put("/api/admin?endpoint=tokens", json={"jti": "x"}, headers={csrf.HEADER: other}).status_code == 403
    # a Bearer caller (CLI, scripts) cannot be forged by a web page: no token needed
    api = app.test_client(use_cookies=False)
    jwt = api.post("/api/qr/scan", json={"qrToken": issue("admin"), "hotelId": "demo"}).get_json()["sessionJWT"]
    bearer = {"Authorization": "Bearer " + jwt}
    assert api.post("/api/admin?endpoint=tokens", json=body, headers=bearer).status_code == 201
    refused = instance.db().execute("SELECT count(*) FROM audit_log WHERE event = 'security.csrf'").fetchone()[0]
    assert refused == 5


def test_every_text_of_the_dashboard_is_in_english_and_german():
    html = (REPO / "kiosk/web/templates/admin.html").read_text()
    js = (REPO / "kiosk/web/static/admin.js").read_text()
    keys = set(re.findall(r'data-i18n(?:-label)?="([^"]+)"', html))
    keys |= set(re.findall(r'"(admin\.[A-Za-z0-9_.]+)"', js))
    keys |= set(re.findall(r'"(error\.[A-Z_]+)"', js))
    keys |= set(re.findall(r'(?:\bt|\bsay)\(\s*"([a-z]+\.[A-Za-z0-9_.]+)"', js))
    keys |= set(re.findall(r'Kiosk\.say\([^,]+,\s*"([a-z]+\.[A-Za-z0-9_.]+)"', js))
    assert len(keys) > 200
    strings = json.loads((REPO / "kiosk/web/static/i18n.json").read_text())
    for lang in ("en", "de"):
        missing = sorted(k for k in keys if not strings[lang].get(k))
        assert missing == [], f"{lang}: {missing}"
    # a placeholder in English is a placeholder in German
    for k in keys:
        assert set(re.findall(r"\{\w+\}", strings["en"][k])) == set(re.findall(r"\{\w+\}", strings["de"][k])), k
