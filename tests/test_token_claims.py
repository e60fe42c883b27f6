"""One-time codes held across boxes: a scan claims the code at the linked cloud first
(kiosk/claims.py, ``POST /sync/v1/claims`` in sync/cloud/routes/claims.py).

A real cloud process (tests/harness.py) and kiosks in-process (the app of tests/conftest.py,
linked the way ``kiosk-agent link`` links a box: DATA_DIR/keys/cloud.json).  Clouds that are
slow or broken are tiny HTTP servers in the test.  No assertion here is about wall-clock time:
"did not wait for the slow cloud" is shown by the scan answering while the slow cloud still
holds the claim unanswered.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import loaded
import pytest
import requests
from harness import Cloud, wait_for

from agent import link as agent_link
from agent.clients import pusher_for
from kiosk import config as config_mod
from kiosk import sessions, tokens
from kiosk.errors import StoreBusy
from kiosk.instance import Instance
from kiosk.web import create_app

HOTEL = "demo"
_n = itertools.count()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("claims")).start()
    yield c
    c.stop()


def jti_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def device(cloud: Cloud, name: str, *hotels: str) -> tuple[str, str]:
    """A fresh device of ``cloud`` (ids differ per test: the module's cloud is shared)."""
    device_id = f"{name}-{next(_n)}"
    return device_id, cloud.device(device_id, *(hotels or (HOTEL,)))


def link(instance, url: str, device_id: str = "kiosk-test", credential: str = "c") -> None:
    agent_link.save(instance.root, cloud=url, device_id=device_id, credential=credential)


def claim(url: str, credential: str | None, body, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    if isinstance(body, bytes | str):
        return requests.post(url + "/sync/v1/claims", data=body, headers={**headers, "Content-Type":
                                                                          "application/json"}, timeout=60, **kw)
    return requests.post(url + "/sync/v1/claims", json=body, headers=headers, timeout=60, **kw)


#: the claim budget of tests that need the cloud's decision: a loaded machine is not a slow
#: cloud (tests/loaded.py); the shipped 300 ms is what the slow-cloud test meets
PATIENT_MS = 10_000


def patient(client):
    """``client``'s kiosk waits up to :data:`PATIENT_MS` for a claim's answer."""
    client.application.config["KIOSK_SCAN"].upstream.budget = PATIENT_MS / 1000
    return client


def seen_count(stub, n: int) -> bool:
    """Wait until ``stub`` received ``n`` claims (it may record one after the kiosk gave up)."""
    return wait_for(lambda: len(stub.seen) >= n, what=f"{n} claims at the stub") and len(stub.seen) == n


def scan(client, token: str, hotel: str = HOTEL):
    return client.post("/api/qr/scan", json={"qrToken": token, "hotelId": hotel})


def refusals(instance, jti: str) -> list[tuple]:
    return [(r["outcome"], r["code"], json.loads(r["details"] or "{}")) for r in instance.db().query(
        "SELECT outcome, code, details FROM audit_log WHERE event = 'scan' AND jti = ? AND outcome = 'refused'",
        [jti])]


def kiosk_instance(tmp_path, name: str, keys_from: Instance | None = None, clock=None, **over) -> Instance:
    """Another kiosk of the property (its own data dir and kiosk id); with ``keys_from``, the
    same issuer key, so each trusts the other's codes."""
    cfg = config_mod.load(None, env={}, overrides={
        "data_dir": str(tmp_path / name),
        "property": {"hotels": [HOTEL, "harbor"], "issuer": "demo", "kiosk_id": name},
        **loaded.overrides(), "sync": {"claim_timeout_ms": PATIENT_MS}, **over})
    inst = Instance(cfg, clock=clock)
    if keys_from is not None:
        shutil.copytree(keys_from.root / "keys", inst.root / "keys")
    inst.init()
    return inst


class StubCloud:
    """A cloud that answers claims with ``status`` and ``body``; with ``hold``, only when the
    test lets it (:meth:`release`, at the latest after a minute).  ``seen``: what it received."""

    def __init__(self, status: int = 200, body: dict | None = None, hold: bool = False):
        self.seen: list[dict] = []
        self.answered = threading.Event()
        self._release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.seen.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                  "body": json.loads(raw)})
                if hold:
                    stub._release.wait(60)
                data = json.dumps(body if body is not None else {"claimed": True}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the kiosk stopped waiting long ago
                stub.answered.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def release(self) -> None:
        self._release.set()

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made: list[StubCloud] = []

    def _stub(**kw) -> StubCloud:
        made.append(StubCloud(**kw))
        return made[-1]

    yield _stub
    for s in made:
        s.stop()


# --- (a) a code claimed elsewhere is refused, naming the kiosk ---------------------------------

def test_a_code_claimed_by_another_kiosk_is_refused_with_where_and_when(cloud, instance, client, issue):
    patient(client)
    me, mine = device(cloud, "kiosk-b")
    link(instance, cloud.url, me, mine)
    a, a_credential = device(cloud, "kiosk-a")
    token = issue("guest")
    jti = jti_of(token)
    r = claim(cloud.url, a_credential, {"hotelId": HOTEL, "jti": jti, "kioskId": "kiosk-a", "at": 1_780_000_000.5})
    assert (r.status_code, r.json()["claimed"], r.json()["new"]) == (200, True, True)

    r = scan(client, token)
    assert r.status_code == 409, r.get_json()
    err = r.get_json()["error"]
    assert err["code"] == "TOKEN_ALREADY_USED"
    assert err["details"] == {"kioskId": "kiosk-a", "usedAt": "2026-05-28T20:26:40.500Z"}
    # audited like any refused scan; nothing consumed or opened here
    assert refusals(instance, jti) == [("refused", "TOKEN_ALREADY_USED", err["details"])]
    db = instance.db()
    assert db.execute("SELECT count(*) FROM consumed_tokens WHERE jti = ?", [jti]).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM sessions WHERE jti = ?", [jti]).fetchone()[0] == 0


@pytest.mark.usefixtures("cloud_backend")
def test_two_kiosks_one_code_the_second_is_refused_at_once(tmp_path, clock):
    """Two lobby kiosks of the hotel, both linked, no agent running: the second scan is refused
    by the claim, not flagged as a replay later."""
    c = Cloud(tmp_path).start()
    try:
        a = kiosk_instance(tmp_path, "lobby-a", clock=clock)
        b = kiosk_instance(tmp_path, "lobby-b", keys_from=a, clock=clock)
        for k in (a, b):
            link(k, c.url, k.config.property.kiosk_id, c.device(k.config.property.kiosk_id, HOTEL))
        ca, cb = create_app(instance=a).test_client(), create_app(instance=b).test_client()
        keys = a.load_keys()
        token, _ = tokens.issue(a.db(), keys, hotel_id=HOTEL, role="guest", now=clock.now(), ttl_seconds=3600,
                                issuer="demo", node="lobby-a")
        first = scan(ca, token)
        assert first.status_code == 200, first.get_json()
        second = scan(cb, token)
        assert second.status_code == 409
        assert second.get_json()["error"]["details"]["kioskId"] == "lobby-a"
        assert scan(ca, token).get_json()["error"]["code"] == "TOKEN_ALREADY_USED"  # and at a, as before
        # a's own consumption carries the stamp the cloud gave its claim
        stamp = a.db().execute("SELECT hlc FROM consumed_tokens WHERE jti = ?", [jti_of(token)]).fetchone()[0]
        assert stamp.endswith("-cloud")
    finally:
        c.stop()


# --- (b) the kiosk's own claim, then its token.used: no replay ----------------------------------

def test_own_claim_then_its_token_used_entry_is_no_replay(cloud, instance, client, issue):
    patient(client)
    me, credential = device(cloud, "kiosk-test")
    link(instance, cloud.url, me, credential)
    token = issue("guest")
    jti = jti_of(token)
    assert scan(client, token).status_code == 200
    report = pusher_for(instance).drain()
    assert report.error is None and report.rejected == 0 and report.conflicts == 0, report
    auth = {"Authorization": f"Bearer {credential}"}
    changes = requests.get(f"{cloud.url}/sync/v1/pull", params={"hotel": HOTEL, "limit": 1000}, headers=auth,
                           timeout=60).json()["changes"]
    uses = [ch for ch in changes if ch["entityType"] == "token_consumption" and ch["data"]["jti"] == jti]
    assert [(u["entityId"], u["data"]["kioskId"]) for u in uses] == [(f"{jti}@kiosk-test", "kiosk-test")]
    # the claim's row, which the pushed entry left as it was; the kiosk holds the same stamp
    stamp = uses[0]["data"]["hlc"]
    assert stamp.endswith("-cloud")
    assert instance.db().execute("SELECT hlc FROM consumed_tokens WHERE jti = ?", [jti]).fetchone()[0] == stamp
    assert [ch for ch in changes if ch["entityType"] in ("conflict", "security_event") and jti in json.dumps(ch)] == []
    for what in ("conflicts", "security-events"):
        listed = requests.get(f"{cloud.url}/v1/hotels/{HOTEL}/{what}", headers=auth, timeout=60).json()
        assert jti not in json.dumps(listed), what
    # the claim is the consumption: another kiosk is refused
    _, other = device(cloud, "kiosk-x")
    r = claim(cloud.url, other, {"hotelId": HOTEL, "jti": jti, "kioskId": "kiosk-x", "at": 1.0})
    assert (r.status_code, r.json()["error"]["details"]["kioskId"]) == (409, "kiosk-test")


def test_a_claim_is_idempotent_for_its_kiosk_and_a_failed_local_open_can_be_retried(
        cloud, instance, client, issue, monkeypatch):
    patient(client)
    me, credential = device(cloud, "kiosk-test")
    link(instance, cloud.url, me, credential)
    token = issue("guest")
    jti = jti_of(token)
    real_open = sessions.open_session
    calls = []

    def open_once_busy(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise StoreBusy("the local store is busy; try again", {"reason": "test"})
        return real_open(*args, **kw)

    monkeypatch.setattr(sessions, "open_session", open_once_busy)
    r = scan(client, token)
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "STORE_BUSY"  # claimed, not opened
    assert instance.db().execute("SELECT count(*) FROM consumed_tokens WHERE jti = ?", [jti]).fetchone()[0] == 0
    r = scan(client, token)  # the same kiosk again: its claim holds, the session opens
    assert r.status_code == 200, r.get_json()
    body = {"hotelId": HOTEL, "jti": jti, "kioskId": "kiosk-test", "at": 1.0}
    again = claim(cloud.url, credential, body)
    assert (again.status_code, again.json()["claimed"], again.json()["new"]) == (200, True, False)


# --- (c) no cloud: the kiosk decides alone ------------------------------------------------------

def test_the_cloud_stopped_the_scan_decides_alone(tmp_path, instance, client, issue):
    c = Cloud(tmp_path).start()
    link(instance, c.url, "kiosk-test", c.device("kiosk-test", HOTEL))
    c.stop()
    token = issue("guest")
    r = scan(client, token)
    assert r.status_code == 200, r.get_json()
    assert scan(client, token).get_json()["error"]["code"] == "TOKEN_ALREADY_USED"  # locally, as ever


def test_not_linked_or_a_broken_cloud_the_scan_decides_alone(instance, client, issue, stub):
    assert scan(client, issue("guest")).status_code == 200  # no cloud.json at all
    broken = stub(status=503, body={"error": {"code": "DATABASE_UNAVAILABLE", "message": "down", "details": {}}})
    link(instance, broken.url)
    assert scan(client, issue("guest")).status_code == 200
    assert seen_count(broken, 1)
    odd = stub(status=409, body={"error": {"code": "KEY_CONFLICT", "message": "?", "details": {}}})
    link(instance, odd.url)  # re-linked: the kiosk reads the file again
    assert scan(client, issue("guest")).status_code == 200
    assert seen_count(odd, 1) and len(broken.seen) == 1


# --- (d) a slow cloud: the scan goes on after the budget ----------------------------------------

def test_a_slow_cloud_the_scan_succeeds_without_its_answer(instance, client, issue, stub):
    slow = stub(hold=True)  # answers only when released
    link(instance, slow.url, "kiosk-test", "cred-1")
    token = issue("guest")
    r = scan(client, token)
    assert r.status_code == 200, r.get_json()
    assert not slow.answered.is_set()  # the scan did not wait for the answer
    assert seen_count(slow, 1)
    assert [(s["path"], s["authorization"]) for s in slow.seen] == [("/sync/v1/claims", "Bearer cred-1")]
    assert slow.seen[0]["body"] == {"hotelId": HOTEL, "jti": jti_of(token), "kioskId": "kiosk-test",
                                    "at": instance.clock.now()}


# --- what is not claimed ------------------------------------------------------------------------

def test_reusable_codes_camera_checks_and_refused_codes_are_not_claimed(instance, client, issue, stub, keys):
    seen = stub()
    link(instance, seen.url)
    assert scan(client, issue("staff", reusable=True)).status_code == 200
    token = issue("guest")
    svc = client.application.config["KIOSK_SCAN"]
    assert svc.check(instance.db(), {"qrToken": token, "hotelId": HOTEL})["user"]["role"] == "guest"
    assert seen.seen == []  # a reusable code, a camera's check: nothing consumed, nothing claimed
    assert scan(client, token).status_code == 200
    assert seen_count(seen, 1)
    assert scan(client, token).status_code == 409  # used here: refused before any claim
    assert len(seen.seen) == 1


def test_claims_off_with_a_zero_budget(tmp_path, stub, clock):
    seen = stub()
    inst = kiosk_instance(tmp_path, "quiet", clock=clock, sync={"claim_timeout_ms": 0})
    link(inst, seen.url)
    token, _ = tokens.issue(inst.db(), inst.load_keys(), hotel_id=HOTEL, role="guest", now=clock.now(),
                            ttl_seconds=3600, issuer="demo", node="quiet")
    assert scan(create_app(instance=inst).test_client(), token).status_code == 200
    assert seen.seen == []


# --- (e) the endpoint refuses what is not a claim -----------------------------------------------

@pytest.fixture(scope="module")
def a_credential(cloud):
    return device(cloud, "kiosk-a")[1]


GOOD = {"hotelId": HOTEL, "jti": "j-good", "kioskId": "kiosk-a", "at": 1_780_000_000.0}


@pytest.mark.parametrize("body", [
    b"{not json", b"\xff\xfe", b'{"at": NaN}', b"[]", b'"claim"', b"null",
    {}, {k: v for k, v in GOOD.items() if k != "jti"}, {k: v for k, v in GOOD.items() if k != "at"},
    {**GOOD, "jti": ""}, {**GOOD, "jti": "j" * 65}, {**GOOD, "jti": 7}, {**GOOD, "jti": "a\u0000b"},
    {**GOOD, "hotelId": None}, {**GOOD, "kioskId": ["k"]}, {**GOOD, "kioskId": "k" * 65},
    {**GOOD, "sessionId": 5}, {**GOOD, "sessionId": ""}, {**GOOD, "at": "1780000000"}, {**GOOD, "at": True},
    {**GOOD, "at": -1}, {**GOOD, "at": 1e300}, {**GOOD, "at": None},
], ids=lambda b: repr(b)[:40])
def test_bad_claim_bodies_are_400(cloud, a_credential, body):
    r = claim(cloud.url, a_credential, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_claims_need_a_credential_of_the_hotel(cloud):
    assert claim(cloud.url, None, GOOD).status_code == 401
    assert claim(cloud.url, "not-a-credential", GOOD).status_code == 401
    _, harbor_only = device(cloud, "kiosk-h", "harbor")
    r = claim(cloud.url, harbor_only, GOOD)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "FORBIDDEN")
    assert claim(cloud.url, harbor_only, {**GOOD, "hotelId": "harbor", "jti": "j-h"}).status_code == 200
    r = requests.get(cloud.url + "/sync/v1/claims", timeout=60)
    assert r.status_code == 405
