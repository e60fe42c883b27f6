"""Another local user must not borrow a screen's session (docs/security.md, "Sessions").

A browser sends its cookies to every port of a host, so a program of another local user
listening on 127.0.0.1:<other port> receives the HttpOnly session cookie when the kiosk's
browser opens a link there, and may set a cookie of its own for 127.0.0.1.  So:

* the cookie is a *cookie credential*: it is never accepted as a bearer token, and a
  bearer credential is never accepted as the cookie;
* it counts only with the screen key it is bound to, which the screen's script keeps in
  its own origin's localStorage (port included) and sends as ``X-Kiosk-Key``;
* a screen's scan answer carries that key and no session JWT; an API client's scan still
  gets the seed's ``sessionJWT`` (and no cookie);
* the kiosk answers only to the names in ``server.allowed_hosts`` (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from browser import launch, needs_chromium
from harness import Kiosk, free_port, wait_for

from kiosk import config as config_mod
from kiosk.instance import Instance
from kiosk.web import create_app
from kiosk.web import screens as screens_mod

SCREEN = {"X-Kiosk-Screen": "1"}
WAIT = 60_000  # ms: a generous bound for every browser expectation on a loaded machine


def cookie_of(resp) -> str:
    """The session cookie's value in a response's Set-Cookie."""
    (header,) = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("kiosk_session=")]
    return header.split(";")[0].split("=", 1)[1]


def refusals(instance) -> list[dict]:
    rows = instance.db().execute("SELECT hotel_id, session_id, code, details, repeats FROM audit_log"
                                 " WHERE event = 'security.session_refused' ORDER BY id").fetchall()
    return [{"hotel": h, "sid": s, "code": c, **json.loads(d), "repeats": n} for h, s, c, d, n in rows]


@pytest.fixture
def anon(app):
    return app.test_client(use_cookies=False)


# --- a cookie is not a bearer token -------------------------------------------------------------

def test_a_cookie_replayed_as_a_bearer_token_is_refused(screen, anon, instance):
    admin = screen("admin", user="a-mia")
    cookie = admin.get_cookie("kiosk_session").value
    stolen = {"Authorization": "Bearer " + cookie}
    r = anon.post("/api/admin?endpoint=tokens", json={"role": "admin", "name": "Mallory", "reusable": True},
                  headers=stolen)
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "UNAUTHORIZED")
    assert r.get_json()["error"]["details"] == {"reason": "cookie"}
    assert anon.get("/api/session", headers=stolen).status_code == 401
    assert instance.db().execute("SELECT count(*) FROM qr_tokens WHERE display_name = 'Mallory'").fetchone()[0] == 0
    (row, *_) = refusals(instance)
    assert (row["hotel"], row["sid"], row["code"], row["reason"], row["path"]) == (
        "demo", admin.scan["sessionId"], "UNAUTHORIZED", "cookie", "/api/admin")
    assert admin.get("/api/session").status_code == 200  # the screen itself is unaffected


def test_a_bearer_token_in_the_cookie_is_refused(anon, login):
    bearer = login("admin")["Authorization"].split(" ", 1)[1]
    r = anon.get("/api/session", headers={"Cookie": "kiosk_session=" + bearer, "X-Kiosk-Key": "x" * 43})
    assert (r.status_code, r.get_json()["error"]["details"]) == (401, {"reason": "bearer"})
    assert anon.get("/api/session", headers={"Authorization": "Bearer " + bearer}).status_code == 200


# --- the cookie counts only with its screen key ---------------------------------------------------

@pytest.mark.parametrize("key", [None, "wrong-key-" + "x" * 33])
def test_a_cookie_without_its_screen_key_is_refused(screen, anon, instance, key):
    guest = screen("guest")
    cookie = guest.get_cookie("kiosk_session").value
    headers = {"Cookie": "kiosk_session=" + cookie} | ({"X-Kiosk-Key": key} if key else {})
    r = anon.post("/api/guest/requests", json={"text": "two towels please"}, headers=headers)
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "UNAUTHORIZED")
    assert r.get_json()["error"]["details"] == {"reason": "key"}
    # the refusal clears the cookie in that browser: it signs nobody in there
    cleared = [h for h in r.headers.getlist("Set-Cookie") if h.startswith("kiosk_session=")]
    assert cleared and "expires=thu, 01 jan 1970" in cleared[0].lower()
    assert instance.db().execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
    # audited; a screen polling with it repeats one row instead of filling the log
    anon.post("/api/guest/requests", json={"text": "two towels please"}, headers=headers)
    (row,) = refusals(instance)
    assert (row["sid"], row["reason"], row["method"], row["repeats"]) == (guest.scan["sessionId"], "key", "POST", 2)
    # with its key it works
    r = anon.post("/api/guest/requests", json={"text": "two towels please"},
                  headers={**headers, "X-Kiosk-Key": guest.environ_base["HTTP_X_KIOSK_KEY"]})
    assert r.status_code in (200, 201), r.get_json()


def test_the_key_in_an_event_source_url_works_for_get_only_and_is_never_logged(screen, anon, instance, caplog):
    staff = screen("staff")
    key = staff.environ_base.pop("HTTP_X_KIOSK_KEY")
    cookie = {"Cookie": "kiosk_session=" + staff.get_cookie("kiosk_session").value}
    assert anon.get("/api/session?kioskKey=" + key, headers=cookie).status_code == 200
    r = anon.post("/api/pms/update?kioskKey=" + key, json={}, headers=cookie)  # a change: header only
    assert r.status_code == 401
    wrong = "nope-" + "y" * 40
    with caplog.at_level("INFO"):
        assert anon.get("/api/staff/tasks?kioskKey=" + wrong, headers=cookie).status_code == 401
    stored = json.dumps(list(instance.db().query("SELECT * FROM audit_log")))
    assert "/api/staff/tasks" in stored  # the refusal is there, by path only
    assert key not in stored and wrong not in stored and "kioskKey" not in stored
    assert wrong not in caplog.text and key not in caplog.text


def test_a_cookie_tossed_in_from_another_port_does_not_act_in_the_victims_browser(app, screen, instance):
    victim = screen("admin", user="a-mia")
    key = victim.environ_base["HTTP_X_KIOSK_KEY"]
    attacker = screen("guest", user="R-666")  # the attacker's own session, opened by a screen's scan
    tossed = attacker.get_cookie("kiosk_session").value
    browser = app.test_client(use_cookies=False)
    # the attacker's Set-Cookie replaced the victim's: the victim's key does not fit it
    r = browser.get("/api/session", headers={"Cookie": "kiosk_session=" + tossed, "X-Kiosk-Key": key})
    assert (r.status_code, r.get_json()["error"]["details"]) == (401, {"reason": "key"})
    r = browser.post("/api/guest/requests", json={"text": "send my bill to room 412"},
                     headers={"Cookie": "kiosk_session=" + tossed, "X-Kiosk-Key": key})
    assert r.status_code == 401
    assert instance.db().execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
    # a narrower Path is sent first, next to the victim's own: the victim's key picks the victim's
    both = "kiosk_session=" + tossed + "; kiosk_session=" + victim.get_cookie("kiosk_session").value
    r = browser.get("/api/session", headers={"Cookie": both, "X-Kiosk-Key": key})
    assert r.status_code == 200 and r.get_json()["user"]["id"] == "a-mia"


# --- what a scan answers ----------------------------------------------------------------------------

def test_a_screens_scan_answer_has_the_key_and_no_session_jwt(client, issue, keys):
    r = client.post("/api/qr/scan", json={"qrToken": issue("admin"), "hotelId": "demo"}, headers=SCREEN)
    body = r.get_json()
    assert r.status_code == 200 and "sessionJWT" not in body and "eyJ" not in r.get_data(as_text=True)
    assert set(body) == {"success", "sessionId", "screenKey", "expiresAt", "hotelId", "user", "triggeredAIModels"}
    claims = jwt.decode(cookie_of(r), keys.session_secret, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["use"] == "cookie" and claims["bnd"] == hashlib.sha256(body["screenKey"].encode()).hexdigest()


def test_an_api_clients_scan_answer_still_has_the_session_jwt_and_sets_no_cookie(client, issue):
    r = client.post("/api/qr/scan", json={"qrToken": issue("staff"), "hotelId": "demo"})
    body = r.get_json()
    assert r.status_code == 200 and body["sessionJWT"].count(".") == 2 and "screenKey" not in body
    assert "Set-Cookie" not in r.headers
    assert client.get("/api/session", headers={"Authorization": "Bearer " + body["sessionJWT"]}).status_code == 200


def test_a_camera_claim_answers_like_a_screens_scan(app, anon, issue, monkeypatch):
    monkeypatch.setattr(screens_mod, "peer_allowed", lambda environ, uids: True)  # the kiosk's own screen
    result = anon.post("/api/qr/scan", json={"qrToken": issue("staff", user="s-ana"), "hotelId": "demo"}).get_json()
    code = app.config["KIOSK_CLAIMS"].code_for({"type": "scan", "ok": True, "result": result})
    lobby = app.test_client()
    r = lobby.post("/screen/claim", json={"claim": code})
    body = r.get_json()
    assert r.status_code == 200 and "sessionJWT" not in body and body["screenKey"]
    assert lobby.get("/api/session").status_code == 401  # the cookie alone (and now cleared)
    r = lobby.post("/screen/claim", json={"claim": app.config["KIOSK_CLAIMS"].code_for(
        {"type": "scan", "ok": True, "result": result})})
    lobby.environ_base["HTTP_X_KIOSK_KEY"] = r.get_json()["screenKey"]
    assert lobby.get("/api/session").get_json()["user"]["id"] == "s-ana"


# --- Host names ----------------------------------------------------------------------------------------

def test_a_cookie_post_with_a_foreign_host_and_origin_is_refused(screen, anon, instance):
    guest = screen("guest")
    r = guest.post("/api/guest/requests", json={"text": "two towels please"},
                   headers={"Host": "evil.test", "Origin": "http://evil.test", "Sec-Fetch-Site": "same-origin"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (421, "HOST_NOT_ALLOWED")
    assert r.get_json()["error"]["details"] == {"host": "evil.test"}
    assert instance.db().execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
    for path in ("/", "/staff", "/admin", "/static/common.js"):
        r = guest.get(path, headers={"Host": "evil.test:8080"})
        assert (r.status_code, r.mimetype) == (421, "text/plain"), path
    assert guest.get("/screen/events", headers={"Host": "evil.test"}).status_code == 421
    signed_in = {"Cookie": "kiosk_session=" + guest.get_cookie("kiosk_session").value,
                 "X-Kiosk-Key": guest.environ_base["HTTP_X_KIOSK_KEY"]}
    for host in ("localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST."):
        assert anon.get("/api/session", headers={"Host": host, **signed_in}).status_code == 200, host


def test_allowed_hosts_come_from_the_config_and_server_host(tmp_path, clock, issue):
    cfg = config_mod.load(None, env={}, overrides={"data_dir": str(tmp_path / "k2"),
                                                   "server": {"host": "10.1.2.3", "allowed_hosts": ["kiosk.lan"]}})
    inst = Instance(cfg, clock=clock)
    inst.init()
    c = create_app(instance=inst).test_client()
    for host, status in (("kiosk.lan", 200), ("kiosk.lan:8080", 200), ("10.1.2.3:8080", 200),
                         ("localhost", 421), ("evil.test", 421)):
        assert c.get("/healthz", headers={"Host": host}).status_code == status, host
    with pytest.raises(Exception, match="allowed_hosts"):
        config_mod.load(None, env={}, overrides={"server": {"allowed_hosts": ["http://kiosk.lan/"]}})


# --- a real server and a real browser ------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    k = Kiosk(tmp_path_factory.mktemp("binding"), "lobby")
    k.serve()
    yield k
    k.stop_all()


def kiosk_db(k: Kiosk):
    return Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir)})).db()


def test_the_scan_feed_answers_no_foreign_host_dns_rebinding(served):
    port = served.port
    r = requests.get(served.url + "/screen/events", headers={"Host": f"evil.test:{port}"}, stream=True, timeout=60)
    try:
        assert r.status_code == 421 and r.json()["error"]["code"] == "HOST_NOT_ALLOWED"
    finally:
        r.close()
    r = requests.get(served.url + "/screen/events", stream=True, timeout=60)  # the lobby's own
    try:
        assert r.status_code == 200
    finally:
        r.close()


class Evil:
    """Another local user's HTTP server on 127.0.0.1:<other port>: it records the Cookie header the
    kiosk's browser sends it, serves a page that tries the kiosk's API with the browser's cookies,
    and can answer with a Set-Cookie of its own for 127.0.0.1."""

    def __init__(self, kiosk_url: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cookies: list[str] = []
        self.toss: str | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.cookies.append(self.headers.get("Cookie") or "")
                if self.path.startswith("/probe"):
                    body = PROBE.replace("KIOSK", kiosk_url).encode()
                else:
                    body = b"<!doctype html><title>tossed</title><p>hello"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                if self.path.startswith("/toss") and outer.toss:
                    self.send_header("Set-Cookie", f"kiosk_session={outer.toss}; Path=/; HttpOnly; SameSite=Strict")
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# the page on the other port: asks the kiosk for a reusable admin code with the browser's cookies
# (a POST that needs no CORS preflight), and looks for the kiosk's localStorage (none: another origin)
PROBE = """<!doctype html><title>probe</title><script>
(async () => {
  const out = {key: localStorage.getItem("kiosk.screenKey")};
  try {
    await fetch("KIOSK/api/admin?endpoint=tokens", {method: "POST", credentials: "include", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({role: "admin", name: "Mallory", reusable: true})});
    out.sent = true;
  } catch (e) { out.sent = String(e); }
  document.body.dataset.out = JSON.stringify(out);
  document.title = "done";
})();
</script><body></body>"""


def sign_in_at_the_lobby(page, k: Kiosk, role: str, user: str, landing: str) -> None:
    from playwright.sync_api import expect

    page.goto(k.url + "/")
    page.wait_for_selector("body[data-ready=yes]")
    page.locator("#token").fill(k.token(role, user=user, name=user.title()))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(k.url + landing) + r"(#.*)?$"), timeout=WAIT)
    page.wait_for_selector("body[data-ready=yes]")


@needs_chromium
def test_in_chromium_the_screens_work_with_their_key_and_another_port_gets_nothing_usable(served):
    from playwright.sync_api import expect, sync_playwright

    k = served
    evil = Evil(k.url)
    try:
        with sync_playwright() as p:
            b = launch(p)
            ctx = b.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
            ctx.set_default_timeout(WAIT)
            expect.set_options(timeout=WAIT)
            page = ctx.new_page()

            # lobby -> staff terminal: the queue loads and its live feed (EventSource + kioskKey) is on
            sign_in_at_the_lobby(page, k, "staff", "s-ana", "/staff")
            expect(page.locator("#work")).to_be_visible()
            expect(page.locator("#live.on")).to_be_visible()
            assert page.evaluate("localStorage.getItem('kiosk.screenKey')")
            assert "kiosk_session" not in page.evaluate("document.cookie")  # HttpOnly
            page.locator("#logout").click()  # a visit from the lobby: logging out ends it, back to the lobby
            expect(page).to_have_url(k.url + "/")
            page.wait_for_selector("body[data-ready=yes]")
            expect(page.locator("#idle")).to_be_visible()
            assert page.evaluate("localStorage.getItem('kiosk.screenKey')") is None  # forgotten at logout

            # lobby -> admin dashboard: its API calls carry the key
            sign_in_at_the_lobby(page, k, "admin", "a-mia", "/admin")
            expect(page.locator("[data-panel=overview]")).to_have_attribute("data-state", "ready")
            who = page.evaluate("""async () => { const r = await fetch('/api/session', {headers: Kiosk.headers()});
                                                 return [r.status, (await r.json()).user.id]; }""")
            assert who == [200, "a-mia"]
            db = kiosk_db(k)
            tokens_before = db.execute("SELECT count(*) FROM qr_tokens").fetchone()[0]

            # the admin's browser opens a page of another local user's server on another port:
            # it gets the cookie (cookies ignore ports), and its page tries the kiosk's API with it
            evil_page = ctx.new_page()
            evil_page.goto(evil.url + "/probe")
            expect(evil_page).to_have_title("done")
            out = json.loads(evil_page.evaluate("document.body.dataset.out"))
            assert out == {"key": None, "sent": True}  # the screen key is the kiosk origin's alone
            stolen = [c.split("=", 1)[1] for h in evil.cookies for c in h.split("; ") if c.startswith("kiosk_session=")]
            assert stolen, "the browser sends the kiosk's cookie to another port (the premise)"
            # replayed from that server: as a bearer token, and as the cookie it is
            r = requests.post(k.url + "/api/admin?endpoint=tokens", json={"role": "admin", "name": "Mallory",
                                                                           "reusable": True},
                              headers={"Authorization": "Bearer " + stolen[0]}, timeout=60)
            assert (r.status_code, r.json()["error"]["details"]) == (401, {"reason": "cookie"})
            r = requests.get(k.url + "/api/session", cookies={"kiosk_session": stolen[0]}, timeout=60)
            assert (r.status_code, r.json()["error"]["details"]) == (401, {"reason": "key"})
            # the probe's own request reached the kiosk with the cookie and was refused, audited
            wait_for(lambda: db.execute(
                "SELECT count(*) FROM audit_log WHERE event = 'security.session_refused' AND client = '127.0.0.1'"
                " AND json_extract(details, '$.reason') = 'key' AND json_extract(details, '$.path') = '/api/admin'"
                " AND json_extract(details, '$.method') = 'POST'").fetchone()[0],
                what="the probe's refusal in the audit log")
            assert db.execute("SELECT count(*) FROM qr_tokens").fetchone()[0] == tokens_before
            assert db.execute("SELECT count(*) FROM qr_tokens WHERE display_name = 'Mallory'").fetchone()[0] == 0

            # a cookie tossed in from that port (the attacker's own session) signs the victim out,
            # never in as the attacker
            sign_in_at_the_lobby(page, k, "admin", "a-mia", "/admin")
            expect(page.locator("[data-panel=overview]")).to_have_attribute("data-state", "ready")
            attacker = k.screen("guest", token=k.token("guest", user="R-666", walk_in=True))
            evil.toss = attacker.cookies["kiosk_session"]
            evil_page.goto(evil.url + "/toss")
            expect(evil_page).to_have_title("tossed")
            who = page.evaluate("""async () => { const r = await fetch('/api/session', {headers: Kiosk.headers()});
                                                 return [r.status, (await r.json()).error.details.reason]; }""")
            assert who == [401, "key"]
            page.reload()
            expect(page.get_by_role("heading", name="Admin sign-in")).to_be_visible()
            ctx.close()
            b.close()
    finally:
        evil.close()
