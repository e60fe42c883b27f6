"""The manager's figures on the analytics answer, and the readable export per record kind.

A known history around NOW (2026-05-28T20:26:40Z, the fake clock): requests made and moved
along their lifecycle through kiosk.tickets at chosen instants, offers taken, refused scans
(through the real scan endpoint and as audit rows), with the same kinds of rows in the other
hotel, outside the window and merged away, which must never count.  The browser test at the
end shows the figures on the admin screen at 1920x1080 and 390x844.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time

import pytest
from browser import needs_chromium, shot, sign_in_as_admin
from harness import Kiosk

from kiosk import analytics, audit, export, store, tickets

NOW = 1_780_000_000.0
H, MIN = 3600.0, 60.0


@pytest.fixture
def cfg(cfg):
    """Requests made over hours: the admin reading them may have signed in longer ago than the idle limit."""
    return cfg.model_copy(update={"sessions": cfg.sessions.model_copy(update={
        "idle_seconds": 86400, "idle_seconds_by_role": cfg.sessions.idle_seconds_by_role.model_copy(
            update={"guest": 86400, "staff": 86400, "admin": 86400})})})


@pytest.fixture
def anon(app):
    return app.test_client(use_cookies=False)


def request(db, at: float, type_: str, room: str, hotel: str = "demo", steps=()) -> str:
    """A request made at ``at``, then moved to each (minutes after, status) of ``steps``."""
    body = {"type": type_, "title": f"{type_} {room}", "description": f"please {room} {at}", "roomNumber": room}
    tid = tickets.create(db, body, hotel_id=hotel, by="R-1", now=at, node="k", window=600)["ticket"]["ticketId"]
    for after, status in steps:
        tickets.change(db, hotel, tid, by="s-7", now=at + after * MIN, node="k", status=status)
    return tid


def offer(db, at: float, conf: str, offer_id: str, price: float, currency: str = "EUR", hotel: str = "demo"):
    with store.transaction(db):
        db.execute("INSERT INTO offer_acceptances (hotel_id, confirmation, offer_id, price, currency, accepted_at,"
                   " session_id, outbox_key) VALUES (?, ?, ?, ?, ?, ?, NULL, 'k')",
                   [hotel, conf, offer_id, price, currency, at])


def refusal(db, at: float, code: str, reason: str | None, client: str = "10.0.0.9", repeats: int = 1,
            hotel: str = "demo"):
    audit.record_now(db, hotel_id=hotel, event="scan", outcome="refused", at=at, client=client, code=code,
                     details={"reason": reason} if reason else {})
    if repeats > 1:
        with store.transaction(db):
            db.execute("UPDATE audit_log SET repeats = ? WHERE id = (SELECT max(id) FROM audit_log)", [repeats])


@pytest.fixture
def history(instance, clock, anon):
    db = instance.db()
    # in the window (the last day): five requests, taken and done at known minutes
    request(db, NOW - 10 * H, "housekeeping", "101", steps=[(4, "accepted"), (30, "done"), (40, "received"),
                                                             (90, "done")])  # reopened: the first done counts
    request(db, NOW - 9 * H, "housekeeping", "102", steps=[(10, "assigned"), (12, "in_progress"), (60, "done")])
    request(db, NOW - 8 * H, "maintenance", "103", steps=[(2, "accepted")])
    request(db, NOW - 7 * H, "guest_request", "104")
    request(db, NOW - 6 * H, "guest_request", "105", steps=[(20, "done")])
    cancelled = request(db, NOW - 5 * H, "noise", "106", steps=[(1, "accepted")])
    with store.transaction(db):  # merged into another request: not a request of its own
        db.execute("UPDATE tickets SET merged_into = 'T-other' WHERE ticket_id = ?", [cancelled])
    # never counted: before the window, and the other hotel
    request(db, NOW - 30 * H, "housekeeping", "107", steps=[(100, "accepted"), (500, "done")])
    request(db, NOW - 2 * H, "billing", "108", hotel="harbor", steps=[(1000, "accepted"), (2000, "done")])
    # offers
    offer(db, NOW - 1 * H, "R-1", "breakfast", 40.0)
    offer(db, NOW - 2 * H, "R-2", "late-checkout", 25.5)
    offer(db, NOW - 3 * H, "R-3", "spa", 10.0, "CHF")
    offer(db, NOW - 50 * H, "R-4", "suite", 999.0)
    offer(db, NOW - 1 * H, "R-5", "suite", 500.0, hotel="harbor")
    # refused scans: one unreadable through the real endpoint, three read by the camera (one row), others
    clock.t = NOW - 4 * H
    r = anon.post("/api/qr/scan", json={"qrToken": "WIFI:S:hotel;P:secret;;", "hotelId": "demo"},
                  environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "INVALID_TOKEN")
    refusal(db, NOW - 3 * H, "INVALID_TOKEN", "malformed", client="camera", repeats=3)
    refusal(db, NOW - 3 * H, "INVALID_TOKEN", "signature")
    refusal(db, NOW - 2 * H, "TOKEN_EXPIRED", None, repeats=2)
    refusal(db, NOW - 30 * H, "INVALID_TOKEN", "malformed", client="camera", repeats=50)  # before the window
    refusal(db, NOW - 2 * H, "INVALID_TOKEN", "malformed", client="camera", hotel="harbor")
    clock.t = NOW
    return db


def test_the_manager_figures_of_a_known_day(history):
    w = analytics.parse_window(period="day", now=NOW)
    a = analytics.summary(history, "demo", w, now=NOW)
    req = a["requests"]
    assert req["total"] == 5
    assert req["byType"] == {"guest_request": 2, "housekeeping": 2, "maintenance": 1}
    # taken after 4, 10, 2 and 20 minutes: the median of 2, 4, 10, 20 is 7
    assert (req["accepted"], req["medianMinutesToAccept"]) == (4, 7.0)
    # done after 30 (the first time), 60 and 20 minutes: 30
    assert (req["done"], req["medianMinutesToDone"]) == (3, 30.0)
    assert {t["type"]: (t["count"], t["medianMinutesToAccept"], t["medianMinutesToDone"]) for t in req["types"]} == {
        "housekeeping": (2, 7.0, 45.0), "maintenance": (1, 2.0, None), "guest_request": (2, 20.0, 20.0)}
    assert a["offersTaken"] == {"taken": 3, "revenue": {"CHF": 10.0, "EUR": 65.5}}
    ref = a["refusedScans"]
    assert ref == {"total": 7, "unreadable": 4, "unreadableByCamera": 3,
                   "byReason": {"UNREADABLE": 4, "TOKEN_EXPIRED": 2, "INVALID_TOKEN": 1}}
    assert ref["total"] == a["scans"]["refusedTotal"]  # the same refusals, read another way
    assert a["scans"]["refused"]["INVALID_TOKEN"] == 5


def test_a_window_without_anything_says_none_not_zero(instance):
    w = analytics.parse_window(from_="2020-01-01", to="2020-01-02", now=NOW)
    a = analytics.summary(instance.db(), "demo", w, now=NOW)
    assert a["requests"] == {"total": 0, "byType": {}, "accepted": 0, "done": 0, "medianMinutesToAccept": None,
                             "medianMinutesToDone": None, "types": []}
    assert a["offersTaken"] == {"taken": 0, "revenue": {}}
    assert a["refusedScans"] == {"total": 0, "unreadable": 0, "unreadableByCamera": 0, "byReason": {}}


def test_the_api_answers_the_figures_and_keeps_every_old_field(history, anon, login):
    admin = login("admin", user="a-1")
    a = anon.get("/api/admin?endpoint=analytics&period=day", headers=admin).get_json()
    assert {"period", "scans", "sessions", "models", "actions", "sync", "series", "aiModelUsage",
            "avgExecutionTimeMs", "errorRate", "pmsSyncStatus"} <= set(a)
    assert a["requests"]["medianMinutesToAccept"] == 7.0 and a["offersTaken"]["taken"] == 3
    assert a["refusedScans"]["unreadable"] == 4


def test_the_figures_cost_does_not_grow_with_rows_outside_the_window(instance):
    """SQLite's own count of virtual-machine steps, before and after 100x more unrelated rows:
    other hotels and earlier days must not be read (indexes tickets_created, offer_acceptances_at)."""
    db = instance.db()
    for i in range(30):
        request(db, NOW - 20 * H + i * 60, "housekeeping", f"{i}", steps=[(3, "accepted"), (9, "done")])
        offer(db, NOW - 5 * H + i, f"R-{i}", "breakfast", 10.0)
        refusal(db, NOW - 3 * H + i, "INVALID_TOKEN", "malformed", client="camera")
    w = analytics.parse_window(period="day", now=NOW)

    def cost() -> int:
        steps = [0]

        def tick():
            steps[0] += 1
            return 0
        db.conn.set_progress_handler(tick, 100)
        try:
            analytics.requests(db, "demo", w)
            analytics.offers_taken(db, "demo", w)
            analytics.refused_scans(db, "demo", w)
        finally:
            db.conn.set_progress_handler(None, 0)
        return steps[0]

    before = cost()
    with store.transaction(db):
        for n in range(3000):
            for hotel, at in (("harbor", NOW - H), ("demo", NOW - 40 * H - n * 60)):
                tid = f"T-x{hotel}{n}"
                db.execute("INSERT INTO tickets (hotel_id, ticket_id, type, title, priority, queue, status, fingerprint,"
                           " terms, created_at, created_by) VALUES (?, ?, 'it', 'x', 'low', 'it', 'done', 'f', '[]',"
                           " ?, 'x')", [hotel, tid, at])
                db.execute("INSERT INTO item_history (hotel_id, kind, item_id, field, old, new, by, at, hlc)"
                           " VALUES (?, 'ticket', ?, 'status', 'received', 'done', 's', ?, '')", [hotel, tid, at + 60])
                db.execute("INSERT INTO offer_acceptances (hotel_id, confirmation, offer_id, price, currency,"
                           " accepted_at, outbox_key) VALUES (?, ?, 'o', 1, 'EUR', ?, 'k')", [hotel, f"C{n}", at])
                db.execute("INSERT INTO audit_log (hotel_id, at, event, outcome, client, code, details)"
                           " VALUES (?, ?, 'scan', 'refused', 'camera', 'INVALID_TOKEN', '{\"reason\":\"malformed\"}')",
                           [hotel, at])
    db.conn.execute("ANALYZE")
    after = cost()
    assert after < 1.5 * before, (before, after)


# --- the export per record kind -----------------------------------------------------------------------

def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def get(anon, headers, query: str, status: int = 200):
    r = anon.get("/api/admin?endpoint=export&" + query, headers=headers)
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    return r


@pytest.fixture
def estate(history, instance, clock):
    db = instance.db()
    with store.transaction(db):
        db.execute("INSERT INTO reservations (hotel_id, confirmation, guest_name, room_number, arrival, departure,"
                   " status) VALUES ('demo', 'R-1', 'Ada Lovelace', '101', '2026-05-27', '2026-05-30', 'InHouse')")
        db.execute("INSERT INTO offers (hotel_id, offer_id, name, type, price, margin) VALUES"
                   " ('demo', 'breakfast', 'Breakfast in bed', 'addon', 40, 20)")
        db.execute("INSERT INTO work_orders (hotel_id, work_order_id, room_number, type, description, status,"
                   " opened_at, updated_at) VALUES ('demo', 'WO-9', '103', 'failure', '=cmd|x', 'open', ?, ?)",
                   [NOW - H, NOW - H])
    request(db, NOW - 30 * MIN, "maintenance", "109")
    with store.transaction(db):  # a title someone could type to run a formula in a spreadsheet
        db.execute("UPDATE tickets SET title = '=HYPERLINK(\"http://x\")' WHERE room_number = '109'")
    return db


@pytest.mark.parametrize("kind, lang, head", [
    ("tickets", "en", ["Time (UTC)", "Request", "Request type", "Title", "Description", "Room", "Priority", "Team",
                       "Status", "Guest or staff", "Session", "Merged into"]),
    ("tickets", "de", ["Zeit (UTC)", "Anfrage", "Art der Anfrage", "Titel", "Beschreibung", "Zimmer", "Priorität",
                       "Team", "Status", "Gast oder Personal", "Sitzung", "Zusammengeführt mit"]),
    ("offers", "en", ["Time (UTC)", "Offer taken", "Reservation", "Guest", "Room", "Offer ID", "Offer", "Price",
                      "Currency", "Session"]),
    ("workOrders", "en", ["Opened (UTC)", "Work order", "Room", "Work order type", "Description", "Priority",
                          "Status", "Assigned to", "Notes", "Closed (UTC)", "Last change (UTC)"]),
    ("scans", "en", ["Time (UTC)", "ID", "Result", "Reason code", "Reason", "Times", "Device", "Code ID", "By",
                     "Session"]),
    ("sessions", "de", ["Angemeldet (UTC)", "ID", "Benutzer-ID", "Rolle", "Name", "Gescannt mit", "Gerät",
                        "Läuft ab (UTC)", "Beendet (UTC)", "Grund für das Ende"]),
])
def test_readable_csv_per_kind(anon, login, estate, kind, lang, head):
    text = get(anon, login("admin", user="a-1"), f"kinds={kind}&columns=readable&lang={lang}&period=week").get_data(
        as_text=True)
    assert text.startswith("\ufeff")  # spreadsheets read UTF-8 (umlauts) with the mark
    table = rows(text[1:])
    assert table[0] == head
    assert len(table) > 1 and all(len(r) == len(head) for r in table)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[0]) for r in table[1:])  # a spreadsheet's date-time


def test_readable_rows_hold_the_records(anon, login, estate):
    admin = login("admin", user="a-1")
    offers = rows(get(anon, admin, "kinds=offers&columns=readable").get_data(as_text=True)[1:])
    ada = next(r for r in offers[1:] if r[2] == "R-1")
    assert ada[3:9] == ["Ada Lovelace", "101", "breakfast", "Breakfast in bed", "40.0", "EUR"]
    assert len(offers) == 1 + 3  # the day's three, not the other hotel's nor the older one
    scans = rows(get(anon, admin, "kinds=scans&columns=readable&period=day").get_data(as_text=True)[1:])
    assert sorted((r[3], r[4], r[5]) for r in scans[1:] if r[2] == "refused") == [
        ("INVALID_TOKEN", "malformed", "1"), ("INVALID_TOKEN", "malformed", "3"), ("INVALID_TOKEN", "signature", "1"),
        ("TOKEN_EXPIRED", "", "2")]
    reqs = rows(get(anon, admin, "kinds=tickets&columns=readable").get_data(as_text=True)[1:])
    assert len(reqs) == 1 + 7  # every request of the day, merged ones too (a record is a record)


def test_formulas_are_neutralised_in_the_readable_csv(anon, login, estate):
    admin = login("admin", user="a-1")
    reqs = rows(get(anon, admin, "kinds=tickets&columns=readable").get_data(as_text=True)[1:])
    assert "'=HYPERLINK(\"http://x\")" in [r[3] for r in reqs]
    wos = rows(get(anon, admin, "kinds=workOrders&columns=readable").get_data(as_text=True)[1:])
    assert wos[1][4] == "'=cmd|x"
    for table in (reqs, wos):
        for row in table[1:]:
            assert not any(v and v[0] in "=+-@\t\r" for v in row), row


def test_several_kinds_readable_name_each_rows_record(anon, login, estate):
    text = get(anon, login("admin", user="a-1"), "kinds=offers,workOrders&columns=readable&lang=de").get_data(
        as_text=True)
    table = rows(text[1:])
    assert table[0][:3] == ["Datensatz", "Zeit (UTC)", "ID"]
    assert {r[0] for r in table[1:]} == {"Angenommenes Angebot", "Arbeitsauftrag"}


def test_the_old_form_is_unchanged(anon, login, estate):
    """Old clients: no ``columns`` is the keys header, and no ``kinds`` is the first five kinds only."""
    admin = login("admin", user="a-1")
    text = anon.post("/api/admin?endpoint=export", headers=admin, json={}).get_data(as_text=True)
    assert text.startswith("kind,at,id,event,")
    assert {r[0] for r in rows(text)[1:]} <= {"audit", "sessions", "modelRuns", "pmsChanges", "tickets"}
    assert not text.startswith("\ufeff")
    objs = json.loads(anon.post("/api/admin?endpoint=export", headers=admin,
                                json={"format": "json", "kinds": ["offers"], "columns": "readable"}).get_data(
        as_text=True))
    assert set(objs[0]) == {"kind", *export.ALL_KINDS["offers"].columns}  # JSON keeps its keys
    assert export.header(list(export.DEFAULT_KINDS))[:3] == ["kind", "at", "id"]


@pytest.mark.parametrize("query", ["columns=pretty", "lang=fr", "kinds=offers,bogus"])
def test_bad_export_options_are_validation_errors(anon, login, query):
    r = anon.get("/api/admin?endpoint=export&" + query, headers=login("admin", user="a-1"))
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR")


def test_every_column_has_a_readable_name_in_both_languages():
    for name, kind in export.ALL_KINDS.items():
        for lang in export.LANGS:
            head = export.readable_header([name], lang)
            assert len(head) == len(kind.columns) == len(set(head)), (name, lang)
    every = list(export.ALL_KINDS)
    for lang in export.LANGS:
        head = export.readable_header(every, lang)
        assert len(head) == len(set(head)) == len(export.header(every))


# --- the analytics tab in a real browser ------------------------------------------------------------

def seed_figures(k: Kiosk) -> None:
    from kiosk import config as config_mod
    from kiosk.instance import Instance

    db = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir)})).db()
    now = time.time()
    plan = [("housekeeping", 5, 35), ("housekeeping", 9, 50), ("housekeeping", 3, None), ("guest_request", 2, 15),
            ("guest_request", 6, 25), ("maintenance", 12, 140), ("maintenance", None, None), ("noise", 1, 4)]
    for i, (type_, accept, done) in enumerate(plan):
        steps = ([(accept, "accepted")] if accept else []) + ([(done, "done")] if done else [])
        request(db, now - (10 - i) * H, type_, f"2{i:02d}", steps=steps)
    offer(db, now - 2 * H, "R-1", "breakfast", 24.0)
    offer(db, now - 3 * H, "R-2", "late-checkout", 35.0)
    refusal(db, now - H, "INVALID_TOKEN", "malformed", client="camera", repeats=4)
    refusal(db, now - H, "TOKEN_EXPIRED", None)
    db.conn.close()


@pytest.fixture
def kiosk(tmp_path):
    k = Kiosk(tmp_path, "front")
    k.serve()
    seed_figures(k)
    yield k
    k.stop_all()


@needs_chromium
def test_the_analytics_tab_shows_the_manager_figures(kiosk, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="en-GB")
    try:
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        sign_in_as_admin(page, kiosk)
        page.get_by_role("tab", name="Analytics").click()
        panel = page.locator("[data-panel=analytics]")
        expect(panel).to_have_attribute("data-state", "ready")
        figures = page.locator("#an-figures")
        expect(figures.locator("[data-figure=requests] .value")).to_have_text("8")
        expect(figures.locator("[data-figure=requests]")).to_contain_text("Most often: Housekeeping (3)")
        # taken after 1, 2, 3, 5, 6, 9, 12 minutes: 5; done after 4, 15, 25, 35, 50, 140: (25 + 35) / 2
        expect(figures.locator("[data-figure=accept] .value")).to_have_text("5 min")
        expect(figures.locator("[data-figure=done] .value")).to_have_text("30 min")
        expect(figures.locator("[data-figure=revenue] .value")).to_have_text("€59.00")
        expect(figures.locator("[data-figure=refused]")).to_contain_text("Unreadable codes: 4 (4 by the camera)")
        expect(page.locator("#chart-an-requests")).to_contain_text("Requests by type")
        assert page.locator("#chart-an-requests rect.bar").count() == 4
        assert page.locator("#chart-an-times rect.bar").count() >= 7
        expect(page.locator("#chart-an-refused")).to_contain_text("Unreadable code")
        shot(page, "admin-manager-figures-1920")
        # German, on a phone
        page.get_by_role("button", name="Deutsch").click()
        expect(figures.locator("[data-figure=accept] h3")).to_have_text("Median bis zur Annahme")
        expect(figures.locator("[data-figure=revenue] .value")).to_contain_text("59,00")
        page.set_viewport_size({"width": 390, "height": 844})
        expect(page.locator("#chart-an-requests")).to_contain_text("Anfragen nach Art")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, "admin-manager-figures-390-de")
        # a period without requests: the truth, not zeros dressed as figures
        page.get_by_role("button", name="English").click()
        panel.get_by_text("Dates…").click()
        panel.get_by_label("From", exact=True).fill("2020-01-01")
        panel.get_by_label("To", exact=True).fill("2020-01-02")
        page.locator("#custom-range").get_by_role("button", name="Show").click()
        expect(figures.locator("[data-figure=requests]")).to_contain_text("No requests in this period")
        expect(page.locator("#chart-an-requests")).to_contain_text("No requests in this period")
        expect(figures.locator("[data-figure=revenue]")).to_contain_text("No offers taken in this period")
        shot(page, "admin-manager-figures-empty-390")
    finally:
        ctx.close()
