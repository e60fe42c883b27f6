"""An admin erases a guest from the kiosk's dashboard (``POST /api/admin/guests/erase``,
kiosk/erasure.py): erased on this kiosk at once, and asked of the cloud by one outbox entry
``guest.erase_requested`` (sync/kinds/guest_erasure.py), which the cloud applies as
``kiosk-cloud guest erase`` does (sync/cloud/erasure.py ``apply_request``).

(a) the API on the Flask test client: admins only, the booking number typed twice, the
erasure, its audit row and its outbox entry (no name in either); (b) that entry applied at a
cloud in-process (SQLite and PostgreSQL); (c) the dashboard in Chromium at 390x844 and
1920x1080: the dialog, its disabled "Erase" until the numbers match, the status line after.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from browser import needs_chromium, shot, sign_in_as_admin
from harness import Kiosk
from test_guest_erasure import cloud  # noqa: F401  (the fixture: a cloud holding R-1042, Ada Lovelace)

from kiosk import config as config_mod
from kiosk import store
from kiosk.instance import Instance
from kiosk.property import tables
from kiosk.web import csrf
from sync import delivery
from sync.cloud import devices
from sync.cloud.apply import apply_push

URL = "/api/admin/guests/erase"
WAIT = 60_000  # ms: a bound for every expectation on a loaded machine
ADA = {"confirmation": "R-1042", "guest_name": "Ada Lovelace", "email": "ada@example.org",
       "phone": "+44 20 7946 0001", "room_number": "101", "arrival": "2026-11-24", "departure": "2026-11-26",
       "status": "InHouse", "nightly_rate": 180}
BOB = ADA | {"confirmation": "R-1043", "guest_name": "Bob Brown", "email": "bob@example.org", "room_number": "102"}


def seed(db, *stays: dict, hotel: str = "demo") -> None:
    with store.transaction(db):
        for s in stays:
            tables.upsert(db, hotel, "reservations", s)


def state(db) -> dict:
    """What an erasure would change: the stays, the keys, the outbox, the codes, the guest audit rows."""
    q = {"reservations": "SELECT hotel_id, confirmation, guest_name, email FROM reservations ORDER BY 1, 2",
         "keys": "SELECT hotel_id, subject FROM guest_keys ORDER BY 1, 2",
         "outbox": "SELECT kind, entity_id, payload FROM outbox ORDER BY id",
         "tokens": "SELECT jti, display_name FROM qr_tokens ORDER BY jti",
         "audit": "SELECT event, details FROM audit_log WHERE event LIKE 'guest.%' ORDER BY id"}
    return {k: [tuple(r) for r in db.execute(sql).fetchall()] for k, sql in q.items()}


def requests_of(db) -> list[dict]:
    return list(db.query("SELECT * FROM outbox WHERE kind = 'guest.erase_requested' ORDER BY id"))


# --- (a) the API ------------------------------------------------------------------------------

def test_only_an_admin_may_erase(client, login, instance):
    seed(instance.db(), ADA)
    signed_in = {role: login(role) for role in ("guest", "staff")}
    before = state(instance.db())
    body = {"hotelId": "demo", "confirmation": "R-1042", "confirm": "R-1042"}
    for role in ("guest", "staff"):
        r = client.post(URL, json=body, headers=signed_in[role])
        assert (r.status_code, r.get_json()["error"]["code"]) == (403, "FORBIDDEN"), role
    assert client.post(URL, json=body).status_code == 401
    assert state(instance.db()) == before


@pytest.mark.parametrize("confirm", ["R-1043", "r-1042", "R-1042 ", ""])
def test_a_number_that_does_not_match_changes_nothing(client, login, instance, confirm):
    seed(instance.db(), ADA)
    admin = login("admin")
    before = state(instance.db())
    r = client.post(URL, json={"hotelId": "demo", "confirmation": "R-1042", "confirm": confirm}, headers=admin)
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR"), r.get_json()
    assert state(instance.db()) == before


def test_another_hotel_or_a_bad_body_changes_nothing(client, login, instance):
    seed(instance.db(), ADA)
    seed(instance.db(), ADA, hotel="harbor")
    admin = login("admin")
    before = state(instance.db())
    for body, status, code in (
            ({"hotelId": "harbor", "confirmation": "R-1042", "confirm": "R-1042"}, 403, "HOTEL_MISMATCH"),
            ({"hotelId": "elsewhere", "confirmation": "R-1042", "confirm": "R-1042"}, 403, "HOTEL_MISMATCH"),
            ({"confirmation": "R-1042", "confirm": "R-1042"}, 400, "VALIDATION_ERROR"),
            ({"hotelId": "demo", "confirmation": "R-1042", "confirm": "R-1042", "name": "Ada"}, 400,
             "VALIDATION_ERROR"),
            ({"hotelId": "demo", "confirmation": "  ", "confirm": "  "}, 400, "VALIDATION_ERROR")):
        r = client.post(URL, json=body, headers=admin)
        assert (r.status_code, r.get_json()["error"]["code"]) == (status, code), body
    assert state(instance.db()) == before


def test_the_admin_erases_a_guest_here_and_queues_the_request_for_the_cloud(client, login, issue, instance):
    db = instance.db()
    seed(db, ADA, BOB)
    guest_code = issue("guest", user="R-1042", name="Ada Lovelace")
    assert db.execute("SELECT count(*) FROM guest_keys WHERE hotel_id = 'demo' AND subject = ?",
                      ["R-1042"]).fetchone()[0] == 1
    admin = login("admin", user="a-mia", name="Mia Keller")
    r = client.post(URL, json={"hotelId": "demo", "confirmation": "R-1042", "confirm": "R-1042"}, headers=admin)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["success"], body["confirmation"], body["syncStatus"]) == (True, "R-1042", "queued")
    assert body["erasedHere"]["reservations"] == 1 and body["erasedHere"]["keys"] == 1
    assert body["erasedHere"]["tokens"] == 1  # the guest code's display name
    assert "Ada" not in json.dumps(body)
    # erased here, through the store's own connection (which opens sealed fields)
    assert db.execute("SELECT guest_name, email, phone, room_number, nightly_rate FROM reservations"
                      " WHERE hotel_id = 'demo' AND confirmation = 'R-1042'").fetchone() == (
        "Erased guest", None, None, "101", 180.0)
    assert db.execute("SELECT count(*) FROM guest_keys WHERE subject = ?", ["R-1042"]).fetchone()[0] == 0
    assert db.execute("SELECT guest_name FROM reservations WHERE confirmation = 'R-1043'").fetchone() == (
        "Bob Brown",)
    assert guest_code  # its token row keeps its id; only the name went
    # one outbox entry for the cloud, without a name
    [entry] = requests_of(db)
    assert (entry["entity_type"], entry["entity_id"], entry["state"], entry["idempotency_key"]) == (
        "guest_erasure", "R-1042", "pending", body["outboxKey"])
    payload = json.loads(entry["payload"])
    assert set(payload) == {"confirmation", "requestedBy", "requestedAt"}
    assert (payload["confirmation"], payload["requestedBy"]) == ("R-1042", "a-mia")
    assert not re.search(r"ada|lovelace|mia keller", entry["payload"], re.I)
    # audited: who asked, the confirmation only
    [row] = db.execute("SELECT actor, outcome, details FROM audit_log WHERE event = 'guest.erase_requested'"
                       ).fetchall()
    assert (row[0], row[1], json.loads(row[2])) == ("admin:a-mia", "success", {"confirmation": "R-1042"})
    assert "Ada" not in json.dumps([tuple(r) for r in db.execute("SELECT * FROM audit_log").fetchall()])
    # again: nothing more to erase here, and another request queued (the cloud's erasure is idempotent)
    r = client.post(URL, json={"hotelId": "demo", "confirmation": "R-1042", "confirm": "R-1042"}, headers=admin)
    assert r.status_code == 200 and r.get_json()["erasedHere"]["keys"] == 0
    assert r.get_json()["erasedHere"]["reservations"] == 1  # held here, erased again: the same row
    assert db.execute("SELECT guest_name FROM reservations WHERE confirmation = 'R-1042'").fetchone() == (
        "Erased guest",)
    assert len(requests_of(db)) == 2


def test_a_confirmation_unknown_here_is_still_sent_and_typed_case_is_resolved(client, login, instance):
    db = instance.db()
    seed(db, ADA)
    admin = login("admin")
    r = client.post(URL, json={"hotelId": "demo", "confirmation": "R-7777", "confirm": "R-7777"}, headers=admin)
    assert r.status_code == 200 and not any(r.get_json()["erasedHere"].values()), r.get_json()
    r = client.post(URL, json={"hotelId": "demo", "confirmation": "r-1042", "confirm": "r-1042"}, headers=admin)
    assert r.status_code == 200 and r.get_json()["confirmation"] == "R-1042"
    assert [e["entity_id"] for e in requests_of(db)] == ["R-7777", "R-1042"]
    assert db.execute("SELECT guest_name FROM reservations WHERE confirmation = 'R-1042'").fetchone() == (
        "Erased guest",)


def test_a_cookie_session_needs_the_pages_csrf_token(screen, instance, keys):
    seed(instance.db(), ADA)
    c = screen("admin")  # the bound cookie and its key, as the dashboard's script has them
    session_id = c.scan["sessionId"]
    body = {"hotelId": "demo", "confirmation": "R-1042", "confirm": "R-1042"}
    r = c.post(URL, json=body)
    assert (r.status_code, r.get_json()["error"]["details"]) == (403, {"reason": "csrf-token"})
    assert requests_of(instance.db()) == []
    r = c.post(URL, json=body, headers={csrf.HEADER: csrf.token_for(keys.session_secret, session_id)})
    assert r.status_code == 200, r.get_json()


def test_the_answers_are_the_documented_ones(client, login, instance):
    """docs/openapi.yaml: the request, the 200 answer and the errors, by the docs' own schema check."""
    import yaml
    from test_docs import DOCS, resolve, schema_errors

    spec = yaml.safe_load((DOCS / "openapi.yaml").read_text())
    op = spec["paths"][URL]["post"]
    seed(instance.db(), ADA)
    admin = login("admin")
    body = {"hotelId": "demo", "confirmation": "R-1042", "confirm": "R-1042"}
    assert schema_errors(spec, op["requestBody"]["content"]["application/json"]["schema"], body) == []
    for sent, status in ((body, 200), (body | {"confirm": "R-1043"}, 400), (body | {"hotelId": "harbor"}, 403)):
        r = client.post(URL, json=sent, headers=admin)
        assert r.status_code == status, r.get_json()
        resp = resolve(spec, op["responses"][str(status)])
        assert schema_errors(spec, resp["content"]["application/json"]["schema"], r.get_json()) == [], r.get_json()
        if status >= 400:
            assert r.get_json()["error"]["code"] in resp["x-error-codes"]


# --- (b) the entry at the cloud -----------------------------------------------------------------

def test_the_cloud_erases_the_guest_when_the_request_is_pushed(client, login, instance, clock, cloud):  # noqa: F811
    db = instance.db()
    seed(db, ADA)
    r = client.post(URL, json={"hotelId": "demo", "confirmation": "R-1042", "confirm": "R-1042"},
                    headers=login("admin", user="a-mia"))
    assert r.status_code == 200
    entries = delivery.entries_of(db, requests_of(db))  # as the agent pushes them
    assert [e["kind"] for e in entries] == ["guest.erase_requested"]
    now = max(time.time(), clock.now()) + 1
    device = devices.authenticate(cloud.db, devices.add_device(cloud.db, "kiosk-test", ["demo"], now))
    [result] = apply_push(cloud.db, device, entries, now)
    assert result["status"] == "applied", result
    [erasure] = cloud.db.execute("SELECT confirmation, erased_by FROM guest_erasures WHERE hotel_id = 'demo'"
                                 ).fetchall()
    assert erasure[0] == "R-1042" and erasure[1].startswith("admin ")
    assert erasure[1] == "admin a-mia at kiosk-test"
    doc = json.loads(cloud("guest", "export", "--hotel", "demo", "--confirmation", "R-1042").stdout)
    details = doc["reservations"][0]["details"]
    assert (details["guest_name"], details["email"], details["phone"]) == ("Erased guest", None, None)
    assert [r["title"] for r in doc["requests"]] == ["(erased)"]
    logged = cloud.db.execute("SELECT entity_id, data FROM changes WHERE hotel_id = 'demo'"
                              " AND entity_type = 'guest_erasure'").fetchall()
    assert [r[0] for r in logged] == ["R-1042"]
    assert "Ada" not in json.dumps(cloud.dump())
    # the same entry again is a duplicate; nothing changes
    before = cloud.dump()
    [again] = apply_push(cloud.db, device, entries, now + 1)
    assert again["status"] == "duplicate", again
    after = cloud.dump()
    assert {t: v for t, v in after.items() if t != "hlc_state"} == {t: v for t, v in before.items() if t != "hlc_state"}
    # the other hotel's guest with the same confirmation is untouched
    carl = json.loads(cloud("guest", "export", "--hotel", "harbor", "--confirmation", "R-1042").stdout)
    assert carl["reservations"][0]["details"]["guest_name"] == "Carl Clark"


def test_a_confirmation_the_cloud_never_had_is_no_error(client, login, instance, clock, cloud):  # noqa: F811
    db = instance.db()
    r = client.post(URL, json={"hotelId": "demo", "confirmation": "R-9999", "confirm": "R-9999"},
                    headers=login("admin", user="a-mia"))
    assert r.status_code == 200
    now = max(time.time(), clock.now()) + 1
    device = devices.authenticate(cloud.db, devices.add_device(cloud.db, "kiosk-test", ["demo"], now))
    before = cloud.dump()
    [result] = apply_push(cloud.db, device, delivery.entries_of(db, requests_of(db)), now)
    assert result["status"] == "applied", result
    after = cloud.dump()
    assert "Ada Lovelace" in json.dumps(after)  # nobody else was touched
    # and no erasure recorded: a stay that arrives later under the number is not born erased
    assert after["guest_erasures"] == before["guest_erasures"] == []


def test_an_entry_for_another_hotel_or_with_a_bad_payload_is_refused(cloud):  # noqa: F811
    now = time.time()
    device = devices.authenticate(cloud.db, devices.add_device(cloud.db, "kiosk-x", ["demo"], now))
    base = {"hotelId": "demo", "kind": "guest.erase_requested", "entityType": "guest_erasure", "entityId": "R-1042",
            "hlc": f"{int(now * 1000):015d}-00000-kiosk-x", "createdAt": now}
    before = cloud.dump()
    results = apply_push(cloud.db, device, [
        base | {"key": "k1", "hotelId": "harbor", "payload": {"confirmation": "R-1042", "requestedBy": "a"}},
        base | {"key": "k2", "payload": {"confirmation": "R-1043", "requestedBy": "a"}},
        base | {"key": "k3", "entityId": "R-1044", "payload": {"confirmation": "R-1044"}},
    ], now)
    assert [r["status"] for r in results] == ["rejected"] * 3, results
    assert results[0]["reason"].startswith("FORBIDDEN_HOTEL")
    assert all(r["reason"].startswith("INVALID_ENTRY") for r in results[1:]), results
    after = cloud.dump()
    assert {t: v for t, v in after.items() if t not in ("applied_entries", "hlc_state")} == {
        t: v for t, v in before.items() if t not in ("applied_entries", "hlc_state")}


# --- (c) the dashboard in a real browser -----------------------------------------------------------

@pytest.fixture
def kiosk(tmp_path):
    k = Kiosk(tmp_path, "front")
    db = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir)})).db()
    try:
        seed(db, ADA, BOB)
    finally:
        db.conn.close()
    k.serve()
    yield k
    k.stop_all()


def _kiosk_db(k: Kiosk):
    return Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir)})).db()


def _in_viewport(page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    vp = page.viewport_size
    assert box is not None
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= vp["width"] and box["y"] + box["height"] <= vp["height"], (box, vp)


def _erase_in_browser(page, kiosk, conf: str, size: str) -> None:
    from playwright.sync_api import expect

    sign_in_as_admin(page, kiosk)
    tab = page.get_by_role("tab", name="Export")
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    section = page.locator(".guest-data")
    expect(section.get_by_role("heading", name="Guest data")).to_be_visible()
    # nothing typed: said in words, no dialog
    section.get_by_role("button", name="Erase guest…").click()
    expect(page.locator("#erase-status")).to_contain_text("booking number first")
    expect(page.locator("#erase-dialog")).to_be_hidden()
    section.get_by_label("Booking number").fill(conf)
    section.get_by_role("button", name="Erase guest…").click()
    dialog = page.get_by_role("dialog", name="Erase this guest?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("erased on this kiosk at once, and on every kiosk and at the cloud when they"
                                   " sync. Stays, rooms, amounts and counts are kept. This cannot be undone.")
    expect(dialog.locator("#erase-which")).to_have_text(conf)
    erase = dialog.get_by_role("button", name="Erase", exact=True)
    expect(erase).to_be_disabled()
    again = dialog.get_by_label("Type the booking number again")
    again.fill(conf[:-1])
    expect(erase).to_be_disabled()
    again.fill(conf.lower())
    expect(erase).to_be_disabled()
    again.fill(conf)
    expect(erase).to_be_enabled()
    _in_viewport(page, "#erase-dialog")
    shot(page, f"admin-erase-dialog-{size}")
    erase.click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#erase-status")).to_have_text(f"{conf} erased here; the cloud will erase it everywhere.")
    expect(page.locator("#erase-status")).to_have_class(re.compile(r"\bok\b"))
    expect(section.get_by_label("Booking number")).to_have_value("")
    shot(page, f"admin-erase-done-{size}")


@needs_chromium
def test_an_admin_erases_a_guest_from_the_dashboard(kiosk, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT)
    for (width, height), conf in (((1920, 1080), "R-1042"), ((390, 844), "R-1043")):
        ctx = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
        try:
            page = ctx.new_page()
            page.set_default_timeout(WAIT)
            _erase_in_browser(page, kiosk, conf, str(width))
            # no sideways scrolling on the phone either
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            ctx.close()
    db = _kiosk_db(kiosk)
    try:
        assert {r[0]: r[1] for r in db.execute("SELECT confirmation, guest_name FROM reservations").fetchall()} == {
            "R-1042": "Erased guest", "R-1043": "Erased guest"}
        assert db.execute("SELECT count(*) FROM guest_keys WHERE subject IN ('R-1042', 'R-1043')").fetchone()[0] == 0
        assert [e["entity_id"] for e in requests_of(db)] == ["R-1042", "R-1043"]
    finally:
        db.conn.close()


@needs_chromium
def test_a_refused_erasure_is_said_in_the_dialog(kiosk, browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT)
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    try:
        page = ctx.new_page()
        page.set_default_timeout(WAIT)

        def refuse(route):
            route.fulfill(status=400, content_type="application/json", body=json.dumps(
                {"success": False, "error": {"code": "VALIDATION_ERROR", "message": "no", "details": {}}}))

        page.route(re.compile(r".*/api/admin/guests/erase\b.*"), refuse)
        sign_in_as_admin(page, kiosk)
        page.get_by_role("tab", name="Export").click()
        page.locator("#erase-conf").fill("R-1042")
        page.get_by_role("button", name="Erase guest…").click()
        page.locator("#erase-again").fill("R-1042")
        page.get_by_role("button", name="Erase", exact=True).click()
        expect(page.locator("#erase-dialog-message")).to_contain_text("Nothing was erased.")
        expect(page.locator("#erase-dialog")).to_be_visible()
        expect(page.get_by_role("button", name="Erase", exact=True)).to_be_enabled()  # may try again
        _in_viewport(page, "#erase-dialog")
        shot(page, "admin-erase-refused-390")
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("#erase-dialog")).to_be_hidden()
        expect(page.locator("#erase-status")).to_be_empty()
    finally:
        ctx.close()
    db = _kiosk_db(kiosk)
    try:
        assert db.execute("SELECT guest_name FROM reservations WHERE confirmation = 'R-1042'").fetchone() == (
            "Ada Lovelace",)
    finally:
        db.conn.close()
