"""Role-based access, deny by default; sessions that end stop working at once."""

import base64
import json

import jwt
import pytest

from kiosk.web import rbac

ROLES = (None, "guest", "staff", "admin")


def audit_rows(instance, event):
    return instance.db().execute(
        "SELECT hotel_id, outcome, code, details FROM audit_log WHERE event = ? ORDER BY id",
        [event]).fetchall()


@pytest.fixture
def anon(app):
    """A client that never sends the session cookie the scans set."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def as_role(login):
    """as_role(None | role) -> request headers."""
    return lambda role: {} if role is None else login(role)


def test_every_route_declares_a_policy(app):
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    assert {r.rule for r in rules} >= {"/api/qr/scan", "/api/session", "/api/admin"}
    missing = [r.rule for r in rules if rbac.policy_of(app.view_functions[r.endpoint]) is None]
    assert missing == []


@pytest.fixture
def targets(issue, anon):
    """Something for each admin call to act on: a token jti and another session's id."""
    jti = jwt.decode(issue("guest"), options={"verify_signature": False})["jti"]
    r = anon.post("/api/qr/scan", json={"qrToken": issue("guest"), "hotelId": "demo"})
    return {"jti": jti, "sessionId": r.get_json()["sessionId"]}


ADMIN_CALLS = {
    # (endpoint, method): (json body or None, expected status and code for an admin)
    ("tokens", "GET"): (None, 200, None),
    ("tokens", "POST"): ({"role": "guest"}, 201, None),
    ("tokens", "PUT"): ({"jti": "{jti}"}, 200, None),
    ("tokens", "DELETE"): (None, 405, "METHOD_NOT_ALLOWED"),
    ("sessions", "GET"): (None, 200, None),
    ("sessions", "POST"): ({"sessionId": "{sessionId}"}, 200, None),  # the session's details
    ("analytics", "GET"): (None, 200, None),
    ("sessions", "PUT"): ({"sessionId": "{sessionId}"}, 405, "METHOD_NOT_ALLOWED"),
    ("sessions", "DELETE"): ({"sessionId": "{sessionId}"}, 200, None),
}


def expected(role, allowed, when_allowed):
    if role is None:
        return 401, "UNAUTHORIZED"
    if role not in allowed:
        return 403, "FORBIDDEN"
    return when_allowed


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_own_session_routes(anon, as_role, instance, role, method):
    r = anon.open("/api/session", method=method, headers=as_role(role))
    assert (r.status_code, (r.get_json().get("error") or {}).get("code")) == \
        expected(role, ("guest", "staff", "admin"), (200, None))
    if method == "GET" and role:
        assert r.get_json()["user"]["role"] == role


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint,method", list(ADMIN_CALLS))
def test_admin_route_matrix(anon, as_role, targets, instance, role, endpoint, method):
    body, status, code = ADMIN_CALLS[(endpoint, method)]
    if body is not None:
        body = {k: v.format(**targets) for k, v in body.items()}
    headers = as_role(role)
    forbidden_before = len(audit_rows(instance, "security.forbidden"))
    r = anon.open(f"/api/admin?endpoint={endpoint}", method=method, headers=headers, json=body)
    want = expected(role, ("admin",), (status, code))
    assert (r.status_code, (r.get_json().get("error") or {}).get("code")) == want, r.get_json()
    forbidden = audit_rows(instance, "security.forbidden")
    if want[1] == "FORBIDDEN":
        assert len(forbidden) == forbidden_before + 1
        hotel, outcome, audited, details = forbidden[-1]
        assert (hotel, outcome, audited) == ("demo", "refused", "FORBIDDEN")
        assert json.loads(details) == {"path": "/api/admin", "method": method, "role": role}
    else:
        assert len(forbidden) == forbidden_before


def test_refused_calls_change_nothing(anon, login, targets, instance):
    for role in ("guest", "staff"):
        h = login(role)
        anon.put("/api/admin?endpoint=tokens", headers=h, json={"jti": targets["jti"]})
        anon.delete("/api/admin?endpoint=sessions", headers=h, json={"sessionId": targets["sessionId"]})
        anon.post("/api/admin?endpoint=tokens", headers=h, json={"role": "admin"})
    db = instance.db()
    assert db.execute("SELECT revoked_at FROM qr_tokens WHERE jti = ?", [targets["jti"]]).fetchone() == (None,)
    assert db.execute("SELECT ended_at FROM sessions WHERE id = ?", [targets["sessionId"]]).fetchone() == (None,)
    assert db.execute("SELECT count(*) FROM qr_tokens WHERE role = 'admin'").fetchone() == (0,)


def test_route_without_a_policy_is_refused_for_everybody(app, anon, login, instance):
    app.add_url_rule("/api/unguarded", "unguarded", lambda: {"secret": 42}, methods=["GET", "POST"])
    assert rbac.policy_of(app.view_functions["unguarded"]) is None
    for role in ROLES:
        headers = {} if role is None else login(role)
        for method in ("GET", "POST"):
            r = anon.open("/api/unguarded", method=method, headers=headers)
            want = (401, "UNAUTHORIZED") if role is None else (403, "FORBIDDEN")
            assert (r.status_code, r.get_json()["error"]["code"]) == want
            assert "secret" not in r.get_json()


def test_unknown_route_and_wrong_method_use_the_error_shape(anon):
    r = anon.get("/api/nothing-here")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "NOT_FOUND"
    r = anon.get("/api/qr/scan")
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# --- ended sessions ----------------------------------------------------------------------------

def claims_of(headers, keys):
    return jwt.decode(headers["Authorization"][7:], keys.session_secret, algorithms=["HS256"],
                      options={"verify_exp": False})  # the kiosk runs on the FakeClock


def session_id(headers, keys):
    return claims_of(headers, keys)["sid"]


def test_session_terminated_by_an_admin_is_refused_on_the_next_request(anon, login, keys):
    guest, admin = login("guest"), login("admin")
    assert anon.get("/api/session", headers=guest).status_code == 200
    r = anon.delete("/api/admin?endpoint=sessions", headers=admin, json={"sessionId": session_id(guest, keys)})
    assert r.status_code == 200, r.get_json()
    r = anon.get("/api/session", headers=guest)
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "SESSION_EXPIRED"
    assert r.get_json()["error"]["details"] == {"reason": "ended"}


def test_terminate_via_query_parameter(anon, login, keys):
    guest, admin = login("guest"), login("admin")
    sid = session_id(guest, keys)
    assert anon.delete(f"/api/admin?endpoint=sessions&sessionId={sid}", headers=admin).status_code == 200
    assert anon.get("/api/session", headers=guest).get_json()["error"]["code"] == "SESSION_EXPIRED"


def test_logout_ends_the_session_at_once(client, login, instance):
    headers = login("staff")
    r = client.delete("/api/session", headers=headers)
    assert r.status_code == 200
    assert any(c.startswith("kiosk_session=;") for c in r.headers.getlist("Set-Cookie"))
    r = client.get("/api/session", headers=headers)
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "SESSION_EXPIRED")
    assert instance.db().execute("SELECT end_reason FROM sessions").fetchall() == [("logout",)]


def test_expired_session_is_refused(anon, login, clock):
    headers = login("guest")
    for _ in range(17):  # in use all along (sessions.idle_seconds ends an idle one sooner: test_lobby_visits.py)
        clock.advance(200)
        assert anon.get("/api/session", headers=headers).status_code == 200
    clock.advance(199)  # 3599 s after the scan
    assert anon.get("/api/session", headers=headers).status_code == 200
    clock.advance(2)
    r = anon.get("/api/session", headers=headers)
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "SESSION_EXPIRED")
    assert r.get_json()["error"]["details"]["reason"] == "expired"


# --- forged session credentials ----------------------------------------------------------------

def b64u_json(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.fixture
def forged(login, keys):
    """name -> a session credential built around real, live sessions."""
    admin, guest = claims_of(login("admin"), keys), claims_of(login("guest"), keys)
    return {
        "other secret": jwt.encode(admin, b"not-the-kiosk-secret-0123456789abcdef", algorithm="HS256"),
        "alg none": b64u_json({"alg": "none", "typ": "JWT"}) + "." + b64u_json(admin) + ".",
        "unsigned": b64u_json({"alg": "HS256", "typ": "JWT"}) + "." + b64u_json(admin) + ".",
        "garbage": "not.a.jwt",
        # even with the real secret, the session row decides the role
        "role raised": jwt.encode(dict(guest, rol="admin"), keys.session_secret, algorithm="HS256"),
    }


@pytest.mark.parametrize("name", ["other secret", "alg none", "unsigned", "garbage", "role raised"])
@pytest.mark.parametrize("via", ["bearer", "cookie"])
def test_forged_session_credentials_are_unauthorized(anon, forged, name, via):
    token = forged[name]
    headers = {"Authorization": "Bearer " + token} if via == "bearer" else {"Cookie": "kiosk_session=" + token}
    r = anon.get("/api/admin?endpoint=tokens", headers=headers)
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "UNAUTHORIZED")


def test_cookie_works_as_well_as_bearer(screen):
    browser = screen("admin", user="a-1")  # keeps the cookie the scan sets and sends its key, like a kiosk browser
    r = browser.get("/api/session")
    assert r.status_code == 200 and r.get_json()["user"] == {"id": "a-1", "role": "admin", "name": "a-1"}
    assert browser.get("/api/admin?endpoint=tokens").status_code == 200
    assert browser.delete("/api/session").status_code == 200
    r = browser.get("/api/session")
    assert (r.status_code, r.get_json()["error"]["code"]) == (401, "UNAUTHORIZED")  # cookie cleared


def test_bearer_wins_over_the_cookie(screen, login):
    browser = screen("guest")
    r = browser.get("/api/admin?endpoint=tokens", headers=login("admin"))
    assert r.status_code == 200
