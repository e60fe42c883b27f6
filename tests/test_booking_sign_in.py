"""Signing in with the booking (POST /api/lobby/sign-in, kiosk/booking.py), and guest codes
that must name a real stay (`kiosk token create --role guest`, the admin API's tokens)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import jwt
import pytest
from click.testing import CliRunner
from conftest import SCREEN
from test_screens import kiosk  # noqa: F401  (fixture: a served kiosk; Chromium is conftest's)

from kiosk import booking
from kiosk.cli import main
from kiosk.clock import local_date

TABLES = ("sessions", "consumed_tokens", "workflow_state", "outbox", "qr_tokens", "tickets")


@pytest.fixture
def stays(instance, clock):
    today = local_date(clock.now(), instance.config.property.timezone)
    day = lambda n: (today + timedelta(days=n)).isoformat()  # noqa: E731
    rows = [("R-1042", "Ada Lovelace", "InHouse", day(-2), day(2), "en"),
            ("R-7001", "Anna van der Berg", "InHouse", day(-1), day(3), "de"),
            ("R-7002", "Jürgen Müller-Lüdenscheidt", "Confirmed", day(0), day(2), "de"),
            ("R-7003", "Zoë O'Brien", "Confirmed", day(1), day(4), "en"),  # arrives tomorrow
            ("R-7004", "Carl Gauss", "CheckedOut", day(-4), day(0), "de"),
            ("R-7005", "Emmy Noether", "Canceled", day(0), day(2), "de")]
    instance.db()["reservations"].insert_all(
        [{"hotel_id": "demo", "confirmation": c, "guest_name": n, "status": s, "arrival": a, "departure": d,
          "language": lang, "room_number": "412", "room_type": "KING"} for c, n, s, a, d, lang in rows])
    instance.db()["reservations"].insert({"hotel_id": "harbor", "confirmation": "H-1", "guest_name": "Grace Hopper",
                                          "status": "InHouse", "arrival": day(-1), "departure": day(1)})
    return rows


def sign_in(client, confirmation, last_name, hotel="demo", **kw):
    return client.post("/api/lobby/sign-in", json={"hotelId": hotel, "confirmation": confirmation,
                                                   "lastName": last_name}, **kw)


def count(db, table, where="1", params=()):
    return db.execute(f"SELECT count(*) FROM {table} WHERE {where}", list(params)).fetchone()[0]


def snapshot(instance):
    return {t: count(instance.db(), t) for t in TABLES}


# --- success -----------------------------------------------------------------------------------

def test_api_client_gets_the_scans_answer_with_a_session_jwt(client, stays, keys, instance):
    r = sign_in(client, "R-1042", "Lovelace")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert set(body) == {"success", "sessionId", "sessionJWT", "user", "triggeredAIModels", "expiresAt", "hotelId"}
    assert body["user"] == {"id": "R-1042", "role": "guest", "name": "Ada Lovelace"}
    assert body["triggeredAIModels"] == ["guest-messaging", "room-status", "upsell-engine"]
    claims = jwt.decode(body["sessionJWT"], keys.session_secret, algorithms=["HS256"], options={"verify_exp": False})
    assert (claims["sid"], claims["sub"], claims["rol"], claims["hid"]) == (body["sessionId"], "R-1042", "guest", "demo")
    # the session works like a scanned one: the guest's home names the stay
    home = client.get("/api/guest/home", headers={"Authorization": "Bearer " + body["sessionJWT"]}).get_json()
    assert home["stay"]["confirmation"] == "R-1042" and home["welcome"] == "Welcome, Ada Lovelace"
    db = instance.db()
    # a session row (synthetic jti: nothing consumed), the workflow, a scan audit row, session.opened
    jti, method = db.execute("SELECT jti, scan_method FROM sessions WHERE id = ?", [body["sessionId"]]).fetchone()
    assert jti.startswith("booking:") and method == "booking"
    assert count(db, "consumed_tokens") == 0 and count(db, "outbox", "kind = 'token.used'") == 0
    assert count(db, "workflow_state", "session_id = ?", [body["sessionId"]]) == 1
    ev = db.execute("SELECT event, outcome, actor, details FROM audit_log WHERE session_id = ?",
                    [body["sessionId"]]).fetchone()
    assert ev[:3] == ("scan", "success", "R-1042") and json.loads(ev[3])["scanMethod"] == "booking"
    assert count(db, "outbox", "kind = 'session.opened' AND entity_id = ?", [body["sessionId"]]) == 1


def test_screen_gets_the_bound_cookie_and_a_screen_key_never_the_jwt(app, stays, keys):
    tab = app.test_client()
    r = sign_in(tab, "R-1042", "Lovelace", headers=SCREEN)
    body = r.get_json()
    assert r.status_code == 200 and "sessionJWT" not in body
    assert len(body["screenKey"]) >= 32 and body["user"]["id"] == "R-1042"
    cookie = r.headers.getlist("Set-Cookie")
    assert len(cookie) == 1 and "httponly" in cookie[0].lower() and "samesite=strict" in cookie[0].lower()
    claims = jwt.decode(cookie[0].split(";")[0].split("=", 1)[1], keys.session_secret, algorithms=["HS256"],
                        options={"verify_exp": False})
    assert claims["use"] == "cookie" and claims["bnd"] == hashlib.sha256(body["screenKey"].encode()).hexdigest()
    tab.environ_base["HTTP_X_KIOSK_KEY"] = body["screenKey"]
    r = tab.get("/api/guest/home")
    assert r.get_json()["guest"]["name"] == "Ada Lovelace", r.get_json()


@pytest.mark.parametrize("conf,typed", [
    ("R-1042", "lovelace"), ("R-1042", "  LOVELACE "), ("r-1042", "Lovelace"), ("R-1042", "Ada Lovelace"),
    ("R-7001", "van der Berg"), ("R-7001", "VAN DER BERG"), ("R-7001", "Van-der-Berg"), ("R-7001", "vanderberg"),
    ("R-7001", "Berg"),
    ("R-7002", "Müller-Lüdenscheidt"), ("R-7002", "muller ludenscheidt"), ("R-7002", "Mueller-Luedenscheidt"),
    ("R-7002", "MÜLLER-LÜDENSCHEIDT"), ("R-7002", "Lüdenscheidt"),
])
def test_case_accents_spaces_and_hyphens_are_forgiven(client, stays, conf, typed):
    r = sign_in(client, conf, typed)
    assert r.status_code == 200, (conf, typed, r.get_json())


def test_name_matching_rules():
    m = booking.last_name_matches
    assert m("Zoë O'Brien", "obrien") and m("Zoë O'Brien", "O Brien") and m("Zoë O’Brien", "o'brien")
    assert m("José Núñez", "NUNEZ") and m("Ingrid Straße", "strasse")
    assert not m("Anna van der Berg", "van der") and not m("Anna van der Berg", "Anna")
    assert not m("Jürgen Müller-Lüdenscheidt", "Müller")  # the first half of a double name: not the last word(s)
    assert not m("", "x") and not m("Ada Lovelace", "  ") and not m("Ada Lovelace", "Lovelac")


# --- refusals -----------------------------------------------------------------------------------

def refusal(r):
    return r.status_code, r.get_json()


def test_wrong_name_and_wrong_number_are_refused_identically(client, stays, instance):
    before = snapshot(instance)
    audits = count(instance.db(), "audit_log")
    wrong_name = refusal(sign_in(client, "R-1042", "Babbage"))
    wrong_number = refusal(sign_in(client, "R-9999", "Lovelace"))
    other_hotel = refusal(sign_in(client, "H-1", "Hopper"))  # a real stay, of another hotel
    unserved = refusal(sign_in(client, "R-1042", "Lovelace", hotel="paris"))
    assert wrong_name == wrong_number == other_hotel == unserved
    status, body = wrong_name
    assert status == 401 and body["error"]["code"] == "INVALID_TOKEN"
    assert body["error"]["details"] == {"reason": "booking"}
    assert "booking number and last name" in body["error"]["message"]
    # nothing written but the audit rows of the refusals (the scan's event, scanMethod booking)
    assert snapshot(instance) == before
    rows = instance.db().execute("SELECT event, outcome, code, details FROM audit_log WHERE id > ? ORDER BY id",
                                 [audits]).fetchall()
    assert rows and all(r[:3] == ("scan", "refused", "INVALID_TOKEN") for r in rows)
    assert {json.loads(r[3])["scanMethod"] for r in rows} == {"booking"}


@pytest.mark.parametrize("conf,name", [("R-7004", "Gauss"), ("R-7005", "Noether"), ("R-7003", "O'Brien")])
def test_stays_that_cannot_sign_in_are_refused_in_the_same_words(client, stays, instance, conf, name):
    """Checked out, cancelled, or arriving another day: refused, and the refusal does not say
    the booking exists (the same answer as a wrong number)."""
    before = snapshot(instance)
    r = sign_in(client, conf, name)
    assert refusal(r) == refusal(sign_in(client, "R-0000", name))
    assert snapshot(instance) == before


def test_a_malformed_body_is_a_validation_error_and_counts(client, stays):
    r = client.post("/api/lobby/sign-in", json={"hotelId": "demo", "confirmation": "R-1042"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_failures_are_rate_limited_like_failed_scans(client, stays, instance, clock, issue):
    cfg = instance.config.scan
    # per booking number: past max_failures_per_code wrong names, even the right one waits
    for i in range(cfg.max_failures_per_code):
        assert sign_in(client, "R-1042", f"Wrong{i}").status_code == 401
    r = sign_in(client, "R-1042", "Lovelace")
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "RATE_LIMITED"
    assert r.get_json()["error"]["details"]["scope"] == "code"
    assert sign_in(client, "R-7001", "van der Berg").status_code == 200  # another booking is not affected
    clock.advance(cfg.window_seconds + 1)
    assert sign_in(client, "R-1042", "Lovelace").status_code == 200  # the window has passed
    # per source: the same limiter as the scan's (sign-in failures and scan failures add up)
    for i in range(cfg.max_failures):
        assert sign_in(client, f"R-X{i}", "Nobody").status_code == 401
    r = sign_in(client, "R-7001", "van der Berg")
    assert r.status_code == 429 and r.get_json()["error"]["details"]["scope"] == "source"
    r = client.post("/api/qr/scan", json={"qrToken": issue("guest"), "hotelId": "demo"})
    assert r.status_code == 429  # the scan from the same source waits too
    assert count(instance.db(), "audit_log", "event = 'security.rate_limited'") >= 1


# --- guest codes name a real stay ----------------------------------------------------------------

def cli(instance, *args):
    return CliRunner().invoke(main, ["--data-dir", str(instance.config.data_dir), *args], catch_exceptions=False)


def test_token_create_refuses_a_guest_code_for_no_stay_and_walk_in_makes_one(instance, stays):
    n = count(instance.db(), "qr_tokens")
    r = cli(instance, "token", "create", "--role", "guest", "--hotel", "demo", "--user", "NOPE123")
    assert r.exit_code != 0 and r.stdout == ""
    err = r.stderr if hasattr(r, "stderr") else r.output
    assert "NOT_FOUND" in err and "NOPE123" in err and "--walk-in" in err and len(err.strip().splitlines()) == 1
    assert count(instance.db(), "qr_tokens") == n
    ok = cli(instance, "token", "create", "--role", "guest", "--hotel", "demo", "--user", "R-1042")
    assert ok.exit_code == 0 and len(ok.stdout.strip().split(".")) == 3
    walk = cli(instance, "token", "create", "--role", "guest", "--hotel", "demo", "--user", "NOPE123", "--walk-in")
    assert walk.exit_code == 0 and len(walk.stdout.strip().split(".")) == 3
    both = cli(instance, "token", "create", "--role", "guest", "--hotel", "demo", "--user", "R-1042", "--walk-in")
    assert both.exit_code != 0 and "VALIDATION_ERROR" in (both.stderr if hasattr(both, "stderr") else both.output)
    staff = cli(instance, "token", "create", "--role", "staff", "--hotel", "demo", "--user", "s-9")
    assert staff.exit_code == 0  # staff ids are not reservations
    assert count(instance.db(), "qr_tokens") == n + 3


def test_admin_api_refuses_a_guest_code_for_no_stay(client, stays, login, instance):
    a = login("admin")
    n = count(instance.db(), "qr_tokens")
    r = client.post("/api/admin?endpoint=tokens", headers=a, json={"role": "guest", "userId": "NOPE123"})
    assert r.status_code == 404
    err = r.get_json()["error"]
    assert err["code"] == "NOT_FOUND" and "NOPE123" in err["message"] and err["details"]["field"] == "userId"
    assert count(instance.db(), "qr_tokens") == n
    assert client.post("/api/admin?endpoint=tokens", headers=a,
                       json={"role": "guest", "userId": "R-1042"}).status_code == 201
    assert client.post("/api/admin?endpoint=tokens", headers=a,
                       json={"role": "guest", "userId": "NOPE123", "walkIn": True}).status_code == 201
    r = client.post("/api/admin?endpoint=tokens", headers=a, json={"role": "staff", "walkIn": True})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_a_walk_in_sees_no_offers_and_names_the_room_of_a_request(client, stays, login, instance):
    instance.db()["offers"].insert({"hotel_id": "demo", "offer_id": "LATE", "name": "Late checkout",
                                    "type": "addon", "price": 25.0, "margin": 22.0, "inventory": 10})
    h = login("guest", user="NOPE123")  # as --walk-in makes it
    home = client.get("/api/guest/home", headers=h).get_json()
    assert home["stay"] is None and home["room"] is None and home["offers"] == []
    r = client.post("/api/guest/requests", headers=h, json={"text": "Two towels please", "roomNumber": "215"})
    assert r.status_code in (200, 201), r.get_json()
    assert instance.db().execute("SELECT room_number FROM tickets ORDER BY created_at DESC LIMIT 1").fetchone()[0] == "215"
    # a reservation's guest: their room, whatever was typed
    g = login("guest", user="R-1042")
    assert client.get("/api/guest/home", headers=g).get_json()["offers"][0]["offerId"] == "LATE"
    client.post("/api/guest/requests", headers=g, json={"text": "A new kettle, please", "roomNumber": "999"})
    assert [room for room, words in instance.db().execute("SELECT room_number, description FROM tickets")
            if words == "A new kettle, please"] == ["412"]


# --- the lobby's booking fields, in a real browser ----------------------------------------------

@pytest.mark.parametrize("size", [(1920, 1080), (390, 844)], ids=["1920x1080", "390x844"])
def test_the_lobbys_booking_fields_sign_a_guest_in(browser, kiosk, size):  # noqa: F811
    from test_screens import open_screen, shot

    w, h = size
    ctx = browser.new_context(viewport={"width": w, "height": h}, locale="en-US")
    page = ctx.new_page()
    try:
        open_screen(page, kiosk.url)
        number, name = page.get_by_label("Booking number"), page.get_by_label("Last name")
        for field in (number, name):  # labelled, and large enough to tap
            box = field.bounding_box()
            assert box["height"] >= 44 and box["width"] >= min(200, w / 2), box
            assert box["x"] >= 0 and box["x"] + box["width"] <= w  # nothing off the side of a phone
        assert page.get_by_label("Or type or paste your code").is_visible()  # the code: still there, second
        shot(page, f"lobby-booking-idle-{w}x{h}")
        number.fill("R-1042")
        name.fill("Babbage")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function("() => document.getElementById('message').textContent.includes('could not find')")
        shot(page, f"lobby-booking-refused-{w}x{h}")
        number.fill("r-1042")
        name.fill("LOVELACE")
        name.press("Enter")
        page.wait_for_function("() => !document.getElementById('guest').hidden"
                               " || document.getElementById('message').className.includes('error')")
        assert page.locator("#guest").is_visible(), page.locator("#message").text_content()
        page.get_by_role("heading", name="Welcome, Ada Lovelace").wait_for()
        assert "Room 412" in page.locator("#room").text_content()
        assert page.evaluate("localStorage.getItem('kiosk.screenKey')")  # the screen's key, never a JWT
        shot(page, f"lobby-booking-signed-in-{w}x{h}")
        page.get_by_role("button", name="Done — log out").click()
        page.locator("#idle").wait_for()
        assert number.input_value() == "" and name.input_value() == ""  # nothing of the guest left
        page.get_by_role("button", name="Deutsch").click()
        assert page.get_by_label("Buchungsnummer").is_visible() and page.get_by_label("Nachname").is_visible()
    finally:
        ctx.close()
