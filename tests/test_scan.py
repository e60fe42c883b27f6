"""POST /api/qr/scan: the seed's shapes, one transaction per scan, audit, rate limiting, races."""

import hashlib
import threading

import jwt
import loaded
import pytest
import requests
import waitress
from waitress import wasyncore

from kiosk import config as config_mod
from kiosk import tokens
from kiosk.errors import KioskError
from kiosk.instance import Instance
from kiosk.web import create_app

TABLES = ("sessions", "consumed_tokens", "workflow_state", "audit_log", "outbox")


def count(db, table, where="1", params=()):
    return db.execute(f"SELECT count(*) FROM {table} WHERE {where}", list(params)).fetchone()[0]


def snapshot(instance):
    return {t: count(instance.db(), t) for t in TABLES}


def jti_of(token):
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def last_audit(instance):
    return instance.db().execute(
        "SELECT event, outcome, code, jti, hotel_id FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()


# --- success -----------------------------------------------------------------------------------

@pytest.mark.parametrize("role,models", [
    ("guest", ["guest-messaging", "room-status", "upsell-engine"]),
    ("staff", ["task-routing", "housekeeping", "night-audit", "maintenance", "billing-detection"]),
])
def test_success_body_has_the_seed_shape(client, issue, keys, role, models):
    tok = issue(role, user="u-42", name="Ana Silva")
    r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo", "scanMethod": "manual"})
    assert r.status_code == 200
    body = r.get_json()
    # the seed's fields, plus expiresAt and hotelId
    assert set(body) == {"success", "sessionId", "sessionJWT", "user", "triggeredAIModels",
                         "expiresAt", "hotelId"}
    assert body["success"] is True
    assert body["user"] == {"id": "u-42", "role": role, "name": "Ana Silva"}
    assert body["triggeredAIModels"] == models
    assert body["hotelId"] == "demo"
    claims = jwt.decode(body["sessionJWT"], keys.session_secret, algorithms=["HS256"],
                        options={"verify_exp": False})
    assert (claims["sid"], claims["sub"], claims["rol"], claims["hid"]) == (body["sessionId"], "u-42", role, "demo")


def test_name_defaults_to_the_subject(client, issue):
    r = client.post("/api/qr/scan", json={"qrToken": issue("guest", user="g-7"), "hotelId": "demo"})
    assert r.get_json()["user"] == {"id": "g-7", "role": "guest", "name": "g-7"}


def test_session_cookie_is_httponly_and_samesite_strict(client, issue, keys):
    # a screen's scan (X-Kiosk-Screen): the session as a cookie bound to the answer's key, no JWT
    r = client.post("/api/qr/scan", json={"qrToken": issue(), "hotelId": "demo"}, headers={"X-Kiosk-Screen": "1"})
    body = r.get_json()
    assert "sessionJWT" not in body and len(body["screenKey"]) >= 32
    cookies = r.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    cookie = cookies[0]
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert cookie.startswith("kiosk_session=")
    claims = jwt.decode(cookie.split(";")[0].split("=", 1)[1], keys.session_secret, algorithms=["HS256"],
                        options={"verify_exp": False})
    assert (claims["sid"], claims["use"]) == (body["sessionId"], "cookie")
    assert claims["bnd"] == hashlib.sha256(body["screenKey"].encode()).hexdigest()
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert r.headers["Cache-Control"] == "no-store"


def test_an_api_scan_sets_no_cookie(client, issue):
    r = client.post("/api/qr/scan", json={"qrToken": issue(), "hotelId": "demo"})
    assert r.status_code == 200 and r.get_json()["sessionJWT"] and "Set-Cookie" not in r.headers


def test_success_writes_one_of_each_row_in_the_db(client, issue, instance):
    tok = issue("guest")
    jti = jti_of(tok)
    before = snapshot(instance)
    first_outbox = instance.db().execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
    body = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"}).get_json()
    after = snapshot(instance)
    assert {t: after[t] - before[t] for t in TABLES} == {
        "sessions": 1, "consumed_tokens": 1, "workflow_state": 1, "audit_log": 1, "outbox": 2}
    db = instance.db()
    sid = body["sessionId"]
    assert db.execute("SELECT hotel_id, jti, role, ended_at FROM sessions WHERE id = ?",
                      [sid]).fetchone() == ("demo", jti, "guest", None)
    assert db.execute("SELECT session_id, kiosk_id FROM consumed_tokens WHERE jti = ?",
                      [jti]).fetchone() == (sid, "kiosk-test")
    assert db.execute("SELECT workflow, state FROM workflow_state WHERE session_id = ?",
                      [sid]).fetchone() == ("guest", "started")
    assert last_audit(instance) == ("scan", "success", None, jti, "demo")
    kinds = db.execute("SELECT kind, entity_id FROM outbox WHERE id > ? ORDER BY id",
                       [first_outbox]).fetchall()
    assert sorted(kinds) == sorted([("token.used", jti), ("session.opened", sid)])


def test_reusable_token_is_not_recorded_as_consumed(client, issue, instance):
    tok = issue("staff", reusable=True)
    for _ in range(2):
        assert client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"}).status_code == 200
    assert count(instance.db(), "consumed_tokens") == 0
    assert count(instance.db(), "sessions", "jti = ?", [jti_of(tok)]) == 2
    assert count(instance.db(), "outbox", "kind = 'token.used'") == 0


# --- validation --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"data": "not json", "content_type": "application/json"},
    {"data": "qrToken=abc&hotelId=demo", "content_type": "application/x-www-form-urlencoded"},
    {"json": ["qrToken", "hotelId"]},
    {"json": {"qrToken": 123, "hotelId": "demo"}},
    {"json": {"qrToken": "x" * 10, "hotelId": 5}},
    {"json": {"qrToken": "abc"}},
    {"json": {"hotelId": "demo"}},
    {"json": {"qrToken": "abc", "hotelId": "../etc"}},
    {"json": {"qrToken": "abc", "hotelId": "demo", "scanMethod": "telepathy"}},
    {"json": {"qrToken": "abc", "hotelId": "demo", "userId": ""}},
])
def test_validation_errors_are_400_and_write_no_session(client, instance, kwargs):
    before = snapshot(instance)
    r = client.post("/api/qr/scan", **kwargs)
    assert r.status_code == 400
    body = r.get_json()
    assert body["success"] is False and body["error"]["code"] == "VALIDATION_ERROR"
    assert body["timestamp"].endswith("Z")
    after = snapshot(instance)
    for t in ("sessions", "consumed_tokens", "workflow_state", "outbox"):
        assert after[t] == before[t], t
    assert after["audit_log"] == before["audit_log"] + 1
    assert last_audit(instance)[:3] == ("scan", "refused", "VALIDATION_ERROR")


def test_validation_error_names_the_fields(client):
    r = client.post("/api/qr/scan", json={"qrToken": 123})
    fields = {f["field"] for f in r.get_json()["error"]["details"]["fields"]}
    assert fields == {"qrToken", "hotelId"}


def test_valid_token_for_another_user_is_refused(client, issue, instance):
    tok = issue("guest", user="g-1")
    r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo", "userId": "g-2"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "INVALID_TOKEN"
    assert count(instance.db(), "consumed_tokens") == 0


# --- every refusal is audited ------------------------------------------------------------------

@pytest.fixture
def refusals(issue, instance, clock, client):
    """name -> (request body, expected code); each a different way to be refused."""
    used = issue("guest")
    assert client.post("/api/qr/scan", json={"qrToken": used, "hotelId": "demo"}).status_code == 200
    revoked = issue("guest")
    tokens.revoke(instance.db(), jti_of(revoked), hotels=["demo"], now=clock.now(), by="t", node="k")
    expired = issue("guest", ttl=10)
    clock.advance(100)
    return {
        "invalid": ({"qrToken": "a.b.c", "hotelId": "demo"}, "INVALID_TOKEN"),
        "expired": ({"qrToken": expired, "hotelId": "demo"}, "TOKEN_EXPIRED"),
        "revoked": ({"qrToken": revoked, "hotelId": "demo"}, "TOKEN_REVOKED"),
        "used": ({"qrToken": used, "hotelId": "demo"}, "TOKEN_ALREADY_USED"),
        "mismatch": ({"qrToken": issue("guest"), "hotelId": "harbor"}, "HOTEL_MISMATCH"),
        "validation": ({"qrToken": 123, "hotelId": "demo"}, "VALIDATION_ERROR"),
    }


@pytest.mark.parametrize("case", ["invalid", "expired", "revoked", "used", "mismatch", "validation"])
def test_every_refused_scan_writes_an_audit_row_with_its_code(client, instance, refusals, case):
    body, code = refusals[case]
    before = snapshot(instance)
    r = client.post("/api/qr/scan", json=body)
    assert r.get_json()["error"]["code"] == code
    after = snapshot(instance)
    assert after["audit_log"] == before["audit_log"] + 1
    assert {t: after[t] for t in TABLES if t != "audit_log"} == {t: before[t] for t in TABLES if t != "audit_log"}
    event, outcome, audited_code, _, hotel = last_audit(instance)
    assert (event, outcome, audited_code) == ("scan", "refused", code)
    assert hotel == body["hotelId"]


# --- rate limiting -----------------------------------------------------------------------------

def test_the_same_bad_code_is_refused_at_once_after_a_few_tries_and_only_that_code(client, issue, instance,
                                                                                   clock):
    per_code = instance.config.scan.max_failures_per_code
    window = instance.config.scan.window_seconds
    for _ in range(per_code):
        r = client.post("/api/qr/scan", json={"qrToken": "a.b.c", "hotelId": "demo"})
        assert r.status_code == 401
        clock.advance(0.5)
    r = client.post("/api/qr/scan", json={"qrToken": "a.b.c", "hotelId": "demo"})
    assert r.status_code == 429 and r.get_json()["error"]["details"]["scope"] == "code"
    retry = int(r.headers["Retry-After"])
    assert retry == r.get_json()["error"]["details"]["retryAfter"] and 1 <= retry <= window + 1
    assert last_audit(instance)[:3] == ("security.rate_limited", "refused", "RATE_LIMITED")
    tok = issue("guest")  # somebody else's good code, same camera: no wait
    assert client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"}).status_code == 200
    clock.advance(retry)
    assert client.post("/api/qr/scan", json={"qrToken": "a.b.c", "hotelId": "demo"}).status_code == 401


def test_a_source_past_its_failures_waits_a_small_penalty_not_a_minute(client, issue, instance, clock):
    limit = instance.config.scan.max_failures
    penalty = instance.config.scan.penalty_seconds
    for i in range(limit):  # ten different junk codes shown to one source
        r = client.post("/api/qr/scan", json={"qrToken": f"junk.{i}.x", "hotelId": "demo"})
        assert r.status_code == 401
        clock.advance(0.1)
    tok = issue("guest")
    r = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"})
    assert r.status_code == 429 and r.get_json()["error"]["details"] == {"retryAfter": 2, "scope": "source"}
    assert count(instance.db(), "consumed_tokens") == 0
    other = client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"},
                        environ_base={"REMOTE_ADDR": "10.0.0.99"})
    assert other.status_code == 200, other.get_json()  # another source is not affected
    clock.advance(penalty)
    assert client.post("/api/qr/scan", json={"qrToken": issue(), "hotelId": "demo"}).status_code == 200
    assert client.post("/api/qr/scan", json={"qrToken": "junk.again.x", "hotelId": "demo"}).status_code == 401
    assert client.post("/api/qr/scan", json={"qrToken": issue(), "hotelId": "demo"}).status_code == 429


def test_a_flood_of_refused_scans_adds_rows_per_kind_and_minute_not_per_scan(client, instance, clock):
    db = instance.db()
    before = count(db, "audit_log")
    for i in range(500):
        client.post("/api/qr/scan", json={"qrToken": f"junk.{i}.x", "hotelId": "demo"})
        clock.advance(0.05)  # 25 s
    rows = db.execute("SELECT event, code, repeats FROM audit_log ORDER BY id").fetchall()[before:]
    assert sum(r[2] for r in rows) == 500  # every attempt is counted ...
    assert len(rows) <= 4  # ... in a row per kind: INVALID_TOKEN, RATE_LIMITED (within one or two minutes)
    assert {r[1] for r in rows} == {"INVALID_TOKEN", "RATE_LIMITED"}
    from kiosk import analytics

    counted, _ = analytics.scans(db, "demo", analytics.parse_window(period="day", now=clock.now()))
    assert counted["refusedTotal"] == 500  # the admin's figures count attempts, not rows


def test_successful_scans_do_not_count_towards_the_limit(client, issue, instance):
    for _ in range(instance.config.scan.max_failures + 5):
        assert client.post("/api/qr/scan", json={"qrToken": issue(), "hotelId": "demo"}).status_code == 200


# --- concurrency -------------------------------------------------------------------------------

N = 16


def test_one_time_token_wins_exactly_once_under_concurrent_scans(app, instance, issue):
    service = app.config["KIOSK_SCAN"]
    tok = issue("guest")
    barrier = threading.Barrier(N)
    results: list = [None] * N
    conns = [instance.connect() for _ in range(N)]

    def worker(i):
        barrier.wait()
        try:
            results[i] = service.scan(conns[i], {"qrToken": tok, "hotelId": "demo"}, client=f"kiosk-{i}")
        except KioskError as e:
            results[i] = e.code
        except Exception as e:  # pragma: no cover - reported by the assertion below
            results[i] = repr(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in conns:
        c.conn.close()

    wins = [r for r in results if isinstance(r, dict)]
    assert len(wins) == 1, results
    assert sorted(r for r in results if not isinstance(r, dict)) == ["TOKEN_ALREADY_USED"] * (N - 1)
    db = instance.db()
    jti = jti_of(tok)
    assert count(db, "sessions", "jti = ?", [jti]) == 1
    assert count(db, "consumed_tokens", "jti = ?", [jti]) == 1
    assert count(db, "outbox", "kind = 'token.used' AND entity_id = ?", [jti]) == 1
    assert db.execute("SELECT session_id FROM consumed_tokens WHERE jti = ?", [jti]).fetchone()[0] == wins[0]["sessionId"]


@pytest.fixture
def served(tmp_path, clock):
    """A real waitress server in a thread (failure limit raised: all requests come from 127.0.0.1)."""
    cfg = config_mod.load(None, env={}, overrides={
        "data_dir": str(tmp_path / "served"), "scan": {"max_failures": 1000},
        "property": {"hotels": ["demo"], "issuer": "demo", "kiosk_id": "kiosk-served"}, **loaded.overrides()})
    inst = Instance(cfg, clock=clock)
    inst.init()
    server = waitress.create_server(create_app(instance=inst), host="127.0.0.1", port=0, threads=8)
    stop = threading.Event()

    def serve():  # a round of the event loop at a time, so it ends before its sockets close
        # (closing them under a running loop raised EBADF in its thread: a warning in CI)
        socket_map = server.map if hasattr(server, "map") else server._map
        while not stop.is_set():
            wasyncore.loop(timeout=0.1, map=socket_map, use_poll=server.adj.asyncore_use_poll, count=1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield inst, f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop.set()
        thread.join(timeout=10)
        server.close()


def test_concurrent_http_scans_of_one_token_succeed_once(served, clock):
    inst, base = served
    tok, _ = tokens.issue(inst.db(), inst.load_keys(), hotel_id="demo", role="guest", now=clock.now(),
                          ttl_seconds=600, issuer="demo", node="kiosk-served")
    barrier = threading.Barrier(N)
    statuses: list = [None] * N

    def worker(i):
        with requests.Session() as http:
            http.trust_env = False  # no proxy between the test and 127.0.0.1
            barrier.wait()
            r = http.post(base + "/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"}, timeout=30)
            statuses[i] = (r.status_code, r.json().get("error", {}).get("code"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses)[0] == (200, None)
    # the others are refused: as used, or — once the same code was refused a few times — at once
    assert set(sorted(statuses)[1:]) <= {(409, "TOKEN_ALREADY_USED"), (429, "RATE_LIMITED")}
    assert statuses.count((409, "TOKEN_ALREADY_USED")) >= inst.config.scan.max_failures_per_code
    db = inst.connect()
    assert count(db, "sessions") == 1 and count(db, "consumed_tokens") == 1
    db.conn.close()


def test_the_seeds_scan_method_qr_camera_is_a_camera_scan(client, issue, instance):
    r = client.post("/api/qr/scan", json={"qrToken": issue("guest", user="guest_123"), "userId": "guest_123",
                                          "hotelId": "demo", "scanMethod": "qr_camera"})
    assert r.status_code == 200, r.get_json()
    method = instance.db().execute("SELECT scan_method FROM sessions WHERE id = ?",
                                   [r.get_json()["sessionId"]]).fetchone()[0]
    assert method == "camera"
