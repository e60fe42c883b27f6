"""Errors a person meets in a browser's address bar are pages; errors a program meets are JSON.

A navigation (``Accept`` prefers ``text/html``) to a path outside the API gets a small HTML
page in the kiosk's style: the status, a sentence in the browser's language (English or
German, English otherwise) and a link back to the lobby — no trace, no inline script or
style.  An API client (no ``Accept``, ``*/*``, ``application/json``, a script's ``fetch`` or
XHR, and anything under ``/api/``) keeps the error body it always had.

The browser tests look at the page at 1920×1080 and 390×844, and at the admin dashboard's
model figures: with model runs no "No model ran" text may show (the error-rate chart of runs
that all succeeded used to say it), without runs it must; a list that failed to load says so.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from browser import ARTIFACTS, needs_chromium, sign_in_as_admin
from harness import Kiosk

from kiosk import config as config_mod
from kiosk.errors import Forbidden, Unauthorized
from kiosk.instance import Instance
from kiosk.web.rbac import public

NAV = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
       "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
WAIT = 60_000  # ms: generous, the machine is shared and loaded
TRACE_MARK = "kaboom-7f3a-do-not-show"


@pytest.fixture
def app(app):
    """The test app, plus routes that fail on purpose (registered here only)."""
    def forbidden():
        raise Forbidden("your role may not do this", {"role": "guest"})

    def unauthorized():
        raise Unauthorized("scan a code first", {})

    def boom():
        raise RuntimeError(TRACE_MARK)

    for path, view in (("/test/forbidden", forbidden), ("/test/unauthorized", unauthorized),
                       ("/test/boom", boom), ("/api/test/boom", boom)):
        view.__name__ = "t_" + path.strip("/").replace("/", "_")
        app.add_url_rule(path, view_func=public(view))
    return app


def html_of(r) -> str:
    assert r.mimetype == "text/html", (r.status_code, r.headers)
    return r.get_data(as_text=True)


def assert_safe_page(r, status: int) -> str:
    """An error page: the status, our security headers, no trace, no inline script or style."""
    assert r.status_code == status
    body = html_of(r)
    assert "Traceback" not in body and TRACE_MARK not in body and 'File "' not in body
    assert "<script" not in body and "<style" not in body and "style=" not in body and " on" + "click" not in body
    assert '<link rel="stylesheet" href="/static/kiosk.css">' in body
    assert re.search(r'<a [^>]*href="/"', body), "a link back to the lobby"
    assert f"data-status=\"{status}\"" in body
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"
    assert "Accept" in r.headers["Vary"] and "Accept-Language" in r.headers["Vary"]
    return body


def assert_json_error(r, status: int, code: str) -> dict:
    assert r.status_code == status
    assert r.mimetype == "application/json", r.headers
    body = r.get_json()
    assert set(body) == {"success", "error", "timestamp"}
    assert body["success"] is False and body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "details"} and isinstance(body["error"]["details"], dict)
    assert TRACE_MARK not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)
    return body


# --- HTML for a browser ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/nope", "/staff/xyz", "/admin/nothing-here", "/static/nope.css"])
def test_a_browser_gets_an_english_404_page(client, path):
    body = assert_safe_page(client.get(path, headers={**NAV, "Accept-Language": "en-GB,en;q=0.9"}), 404)
    assert '<html lang="en">' in body
    assert "Error 404" in body and "This page does not exist" in body and "Back to the lobby" in body
    assert "NOT_FOUND" in body  # the code, small, for whoever helps


@pytest.mark.parametrize("accept_language", ["de-DE,de;q=0.9,en;q=0.8", "de", "de-CH", "fr-FR, de;q=0.5"])
def test_the_page_speaks_german_when_the_browser_prefers_it(client, accept_language):
    body = assert_safe_page(client.get("/nope", headers={**NAV, "Accept-Language": accept_language}), 404)
    assert '<html lang="de">' in body
    assert "Fehler 404" in body and "Diese Seite gibt es nicht" in body and "Zurück zur Lobby" in body
    assert "This page does not exist" not in body


@pytest.mark.parametrize("accept_language", [None, "fr-FR", "*"])
def test_other_languages_get_english(client, accept_language):
    headers = {**NAV, **({"Accept-Language": accept_language} if accept_language else {})}
    body = assert_safe_page(client.get("/nope", headers=headers), 404)
    assert '<html lang="en">' in body and "This page does not exist" in body


def test_405_403_500_and_others_are_pages_too(client, caplog):
    r = client.post("/staff", headers=NAV)
    body = assert_safe_page(r, 405)
    assert "Error 405" in body and "cannot be opened like this" in body
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD"}  # still says what is allowed

    body = assert_safe_page(client.get("/test/forbidden", headers={**NAV, "Accept-Language": "de"}), 403)
    assert "Fehler 403" in body and "Diese Seite ist für Sie nicht freigegeben" in body

    body = assert_safe_page(client.get("/test/unauthorized", headers=NAV), 401)
    assert "Error 401" in body and "This page could not be shown" in body

    with caplog.at_level("ERROR", logger="kiosk.http"):
        body = assert_safe_page(client.get("/test/boom", headers=NAV), 500)
    assert "Error 500" in body and "Something went wrong on the kiosk" in body and "INTERNAL_ERROR" in body
    assert any(TRACE_MARK in str(rec.exc_info) for rec in caplog.records)  # the trace is in the log, not the page

    body = assert_safe_page(client.get("/test/boom", headers={**NAV, "Accept-Language": "de"}), 500)
    assert "Auf dem Kiosk ist etwas schiefgegangen" in body


def test_a_page_answers_a_head_request_without_a_body(client):
    r = client.head("/nope", headers=NAV)
    assert r.status_code == 404 and r.mimetype == "text/html" and r.get_data() == b""


# --- JSON for programs ----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {},
    {"Accept": "*/*"},
    {"Accept": "application/json"},
    {"Accept": "application/json, text/html;q=0.9"},
    {"Accept": "application/json, text/html"},  # a tie: the program's form
    {**NAV, "X-Requested-With": "XMLHttpRequest"},
    {**NAV, "Sec-Fetch-Mode": "cors"},  # a script's fetch asking for HTML is still a script
])
def test_api_clients_keep_the_json_error_body(client, headers):
    assert_json_error(client.get("/nope", headers=headers), 404, "NOT_FOUND")
    assert_json_error(client.post("/staff", headers=headers), 405, "METHOD_NOT_ALLOWED")
    assert_json_error(client.get("/test/forbidden", headers=headers), 403, "FORBIDDEN")
    assert_json_error(client.get("/test/boom", headers=headers), 500, "INTERNAL_ERROR")


@pytest.mark.parametrize("path,method,status,code", [
    ("/api/nope", "GET", 404, "NOT_FOUND"),
    ("/api", "GET", 404, "NOT_FOUND"),
    ("/api/qr/scan", "GET", 405, "METHOD_NOT_ALLOWED"),
    ("/api/staff/tasks", "GET", 401, "UNAUTHORIZED"),
    ("/api/test/boom", "GET", 500, "INTERNAL_ERROR"),
])
def test_the_api_answers_json_even_to_a_browser(client, path, method, status, code):
    r = client.open(path, method=method, headers={**NAV, "Accept-Language": "de"})
    body = assert_json_error(r, status, code)
    assert body == r.get_json()  # unchanged shape, English message
    if path.startswith("/api/"):
        assert r.headers["Cache-Control"] == "no-store"
    if status == 405:
        assert "GET" not in r.headers["Allow"] and "POST" in r.headers["Allow"]


def test_the_json_body_is_what_it_was(client):
    """Exactly the seed's error body: what tests/test_seed_examples.py and the API tests rely on."""
    r = client.get("/nope", headers={"Accept": "application/json"})
    body = r.get_json()
    assert body["error"] == {"code": "NOT_FOUND", "details": {},
                             "message": body["error"]["message"]} and body["error"]["message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])
    r = client.get("/screen/nope", headers=NAV)  # the lobby's feed and claims are for its script
    assert_json_error(r, 404, "NOT_FOUND")


def test_the_screens_themselves_are_unchanged(client):
    for path in ("/", "/staff", "/admin"):
        r = client.get(path, headers=NAV)
        assert r.status_code == 200 and r.mimetype == "text/html"
        assert "error-page" not in r.get_data(as_text=True)


# --- in a real browser ----------------------------------------------------------------------------

def _db(k: Kiosk):
    return Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir)})).db()


def seed_runs(k: Kiosk, models: list[str]) -> None:
    """Runs of ``models`` in the last hours, every one a success (the case that used to say
    "No model ran in this period" beside the table of runs)."""
    db = _db(k)
    now = time.time()
    db["ai_interactions"].insert_all([
        {"hotel_id": "demo", "model_id": m, "started_at": now - 3600 * (1 + i % 5) - 60 * j,
         "duration_ms": 40.0 + 25 * i + 3 * j, "status": "SUCCESS", "error": None, "actions": 0}
        for i, m in enumerate(models) for j in range(3)])
    db.conn.commit()
    db.conn.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def kiosk(tmp_path):
    k = Kiosk(tmp_path, "front")
    k.serve()
    yield k
    k.stop_all()


def new_page(browser, width=1920, height=1080, locale="en-GB"):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT)
    ctx = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    page = ctx.new_page()
    page.set_default_timeout(WAIT)
    page.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                         " e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || e.sample)));")
    return ctx, page


def open_analytics(page):
    from playwright.sync_api import expect

    tab = page.get_by_role("tab", name="Analytics")
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    panel = page.locator("[data-panel=analytics]")
    expect(panel).to_have_attribute("data-state", "ready")
    return panel


@needs_chromium
def test_the_404_page_in_a_browser_at_both_sizes_and_in_german(kiosk, browser):
    from playwright.sync_api import expect

    for width, height in ((1920, 1080), (390, 844)):
        ctx, page = new_page(browser, width, height)
        try:
            r = page.goto(kiosk.url + "/staff/xyz")
            assert r.status == 404 and r.headers["content-type"].startswith("text/html")
            expect(page.get_by_role("heading", name="This page does not exist")).to_be_visible()
            back = page.get_by_role("link", name="Back to the lobby")
            expect(back).to_be_visible()
            # styled by kiosk.css (a dark page, the lobby's button), nothing overflowing on a phone
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(16, 20, 24)"
            box = back.bounding_box()
            assert box["height"] >= 48 and box["x"] >= 0 and box["x"] + box["width"] <= width
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert page.title().startswith("Error 404")
            shot(page, f"error-404-{width}")
            back.click()
            expect(page).to_have_url(kiosk.url + "/")
            page.wait_for_selector("body[data-ready=yes]")
            assert page.evaluate("window.__csp") == []
        finally:
            ctx.close()
    ctx, page = new_page(browser, 390, 844, locale="de-DE")
    try:
        r = page.goto(kiosk.url + "/nope")
        assert r.status == 404
        expect(page.get_by_role("heading", name="Diese Seite gibt es nicht")).to_be_visible()
        expect(page.get_by_role("link", name="Zurück zur Lobby")).to_be_visible()
        assert page.evaluate("document.documentElement.lang") == "de"
        shot(page, "error-404-de-390")
        # the API answers the same browser in JSON
        r = page.goto(kiosk.url + "/api/nope")
        assert r.status == 404 and json.loads(r.text())["error"]["code"] == "NOT_FOUND"
    finally:
        ctx.close()


@needs_chromium
def test_model_figures_with_runs_show_no_empty_text(kiosk, browser):
    from playwright.sync_api import expect

    models = ["guest-messaging", "upsell-engine", "room-status", "housekeeping-plan", "billing-detection",
              "night-audit", "task-routing", "occupancy-forecast"]
    seed_runs(kiosk, models)
    ctx, page = new_page(browser)
    try:
        sign_in_as_admin(page, kiosk)
        expect(page.locator("[data-panel=overview]")).to_have_attribute("data-state", "ready")
        expect(page.locator("#chart-ov-models svg[role=img]")).to_be_visible()
        expect(page.locator("#panel-overview")).not_to_contain_text("No model ran")
        panel = open_analytics(page)
        expect(page.locator("#an-models tbody tr")).to_have_count(len(models))
        for chart in ("#chart-an-runs", "#chart-an-latency"):
            expect(page.locator(f"{chart} svg[role=img]")).to_be_visible()
        # every run succeeded: the error-rate chart says that, not that no model ran
        expect(page.locator("#chart-an-errors")).to_contain_text("No run failed in this period")
        expect(panel).not_to_contain_text("No model ran")
        assert page.locator("#an-models .empty").count() == 0
        shot(page, "admin-models-runs-1920")
        page.set_viewport_size({"width": 390, "height": 844})
        expect(page.locator("#an-models tbody tr")).to_have_count(len(models))
        expect(panel).not_to_contain_text("No model ran")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, "admin-models-runs-390")
        page.locator("#chart-an-errors").scroll_into_view_if_needed()  # the phone's view of that chart
        page.screenshot(path=str(ARTIFACTS / "admin-models-runs-390-errors.png"))
        assert page.evaluate("window.__csp") == []
    finally:
        ctx.close()


@needs_chromium
def test_model_figures_without_runs_say_so_and_a_failed_list_says_it_failed(kiosk, browser):
    from playwright.sync_api import expect

    ctx, page = new_page(browser, 390, 844)
    try:
        sign_in_as_admin(page, kiosk)
        panel = open_analytics(page)
        expect(page.locator("#an-models .empty")).to_contain_text("No model ran in this period")
        expect(page.locator("#chart-an-errors")).to_contain_text("No model ran in this period")
        assert page.locator("#an-models table").count() == 0
        shot(page, "admin-models-none-390")
        page.set_viewport_size({"width": 1920, "height": 1080})
        expect(panel.locator("#an-models .empty")).to_be_visible()
        shot(page, "admin-models-none-1920")

        # the dead letters fail to load: their list says so, never "No dead letters"
        def fail(route):
            route.fulfill(status=500, content_type="application/json", body=json.dumps(
                {"success": False, "error": {"code": "INTERNAL_ERROR", "message": "boom", "details": {}}}))

        outbox = re.compile(r".*/api/admin(/outbox\?|\?endpoint=outbox).*")  # either form of the admin API's address
        page.route(outbox, fail)
        tab = page.get_by_role("tab", name="Sync")
        tab.click()
        sync = page.locator("[data-panel=sync]")
        expect(sync).to_have_attribute("data-state", "error")
        expect(page.locator("#sy-dead .failed")).to_contain_text("could not be loaded")
        expect(page.locator("#sy-dead")).not_to_contain_text("No dead letters")
        expect(page.locator("#sy-conflicts")).to_contain_text("No conflicts so far")  # what did load is true
        shot(page, "admin-sync-failed-1920")
        page.unroute(outbox)
        sync.get_by_role("button", name="Try again").click()
        expect(sync).to_have_attribute("data-state", "ready")
        expect(page.locator("#sy-dead")).to_contain_text("No dead letters")
        assert page.evaluate("window.__csp") == []
    finally:
        ctx.close()


@needs_chromium
def test_the_staff_queue_that_fails_to_load_does_not_say_no_requests(kiosk, browser):
    from playwright.sync_api import expect

    ctx, page = new_page(browser, 390, 844)
    try:
        page.route(re.compile(r".*/api/staff/tasks\?.*"), lambda route: route.fulfill(
            status=503, content_type="application/json", body=json.dumps(
                {"success": False, "error": {"code": "STORE_BUSY", "message": "busy", "details": {}}})))
        page.goto(kiosk.url + "/staff")
        page.wait_for_selector("body[data-ready=yes]")
        page.locator("#token").fill(kiosk.token("staff", user="s-ana", name="Ana Lima"))
        page.keyboard.press("Enter")
        expect(page.locator("#queue li.failed")).to_contain_text("could not be loaded")
        expect(page.locator("#queue")).not_to_contain_text("No requests")
        shot(page, "staff-queue-failed-390")
        page.unroute(re.compile(r".*/api/staff/tasks\?.*"))
        page.locator("[data-scope=all]").click()  # choosing a filter loads the list again
        expect(page.locator("#queue li.empty")).to_contain_text("No requests")
        expect(page.locator("#queue li.failed")).to_have_count(0)
    finally:
        ctx.close()
