"""Shared fixtures: a real instance in a temp dir, a fake clock, the app and a client.

The test instance serves two hotels (``demo`` and ``harbor``); its one signing
key is trusted for both, so tenant isolation rests on the session's hotel,
which is what the tests check.
"""

from __future__ import annotations

import loaded
import pytest

from kiosk import config as config_mod
from kiosk import tokens
from kiosk.clock import FakeClock
from kiosk.instance import Instance
from kiosk.web import create_app

HOTELS = ["demo", "harbor"]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def cfg(tmp_path):
    return config_mod.load(None, env={}, overrides={
        "data_dir": str(tmp_path / "kiosk"),
        "property": {"hotels": HOTELS, "issuer": "demo", "kiosk_id": "kiosk-test"},
        **loaded.overrides(),  # a loaded machine is not a timeout (tests/loaded.py)
    })


@pytest.fixture
def instance(cfg, clock):
    inst = Instance(cfg, clock=clock)
    inst.init()
    return inst


@pytest.fixture
def keys(instance):
    return instance.load_keys()


@pytest.fixture
def app(instance):
    app = create_app(instance=instance)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def issue(instance, keys, clock):
    """issue(role, hotel="demo", **kw) -> token string."""
    def _issue(role="guest", hotel="demo", *, ttl=3600, user=None, name=None, reusable=False):
        tok, _ = tokens.issue(instance.db(), keys, hotel_id=hotel, role=role, now=clock.now(),
                              ttl_seconds=ttl, user_id=user, name=name, reusable=reusable,
                              issuer=instance.config.property.issuer, node="kiosk-test")
        return tok
    return _issue


@pytest.fixture
def login(client, issue):
    """login(role, hotel="demo") -> headers with a Bearer session for a fresh token."""
    def _login(role="guest", hotel="demo", **kw):
        tok = issue(role, hotel, **kw)
        r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": hotel})
        assert r.status_code == 200, r.get_json()
        return {"Authorization": "Bearer " + r.get_json()["sessionJWT"]}
    return _login


SCREEN = {"X-Kiosk-Screen": "1"}  # what the screens' scripts send with a scan (kiosk/web/scan_api.py)


def screen_sign_in(client, token: str, hotel: str = "demo", **kw):
    """Scan ``token`` the way a screen does: the answer sets the bound session cookie in
    ``client``'s jar and gives the screen key, which ``client`` then sends with every
    request (``X-Kiosk-Key``), like the screens' JavaScript.  Returns the scan's answer."""
    r = client.post("/api/qr/scan", json={"qrToken": token, "hotelId": hotel},
                    headers={**SCREEN, **kw.pop("headers", {})}, **kw)
    if r.status_code == 200:
        client.environ_base["HTTP_X_KIOSK_KEY"] = r.get_json()["screenKey"]
    return r


@pytest.fixture
def screen(app, issue):
    """screen(role, hotel="demo", **issue_kw) -> a test client signed in like a kiosk browser
    (the bound cookie and its key), with ``.scan`` the scan's answer."""
    def _screen(role="guest", hotel="demo", **kw):
        browser = app.test_client()
        r = screen_sign_in(browser, issue(role, hotel, **kw), hotel)
        assert r.status_code == 200, r.get_json()
        browser.scan = r.get_json()
        return browser
    return _screen


@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL server for the session (tests/pgserver.py); skipped, saying why,
    where none can run."""
    import pgserver

    why = pgserver.available()
    if why:
        pytest.skip(why)
    server = pgserver.PgServer().start()
    yield server
    server.stop()


_db_seq = iter(range(10**9))


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud_backend(request):
    """Run a test's clouds (tests/harness.py ``Cloud``) on SQLite, then on a fresh database of
    the session's throwaway PostgreSQL server."""
    from harness import Cloud

    if request.param == "postgresql":
        pg = request.getfixturevalue("pg")
        Cloud.database_factory = lambda: pg.new_database(f"it{next(_db_seq)}")
    try:
        yield request.param
    finally:
        Cloud.database_factory = None


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the module's browser tests (tests/browser.py)."""
    from browser import launch
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
