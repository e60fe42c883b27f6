"""The admin API's routes (/api/admin/tokens, …/sessions/<id>, …) and the seed's
``/api/admin?endpoint=…`` form they keep: the same answers, admin only, deny by default."""

from __future__ import annotations

import json
import re

import jwt
import pytest

from kiosk.web import admin_api, csrf, rbac

ADMIN_PREFIX = "/api/admin"
SERVED = {"GET", "POST", "PUT", "DELETE", "PATCH"}


@pytest.fixture
def anon(app):
    """A client that never sends the session cookie the scans set."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def admin(login):
    return login("admin")


@pytest.fixture
def world(issue, anon, instance):
    """Things to act on: two guest tokens, two other sessions, two dead outbox entries, a conflict."""
    jtis = [jwt.decode(issue("guest"), options={"verify_signature": False})["jti"] for _ in range(2)]
    sids = [anon.post("/api/qr/scan", json={"qrToken": issue("guest"), "hotelId": "demo"}).get_json()["sessionId"]
            for _ in range(2)]
    db = instance.db()
    db.execute("UPDATE outbox SET state = 'dead', last_error = 'rejected: test'"
               " WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 2)")
    dead = [r[0] for r in db.execute("SELECT id FROM outbox WHERE state = 'dead' ORDER BY id")]
    assert len(dead) == 2
    return {"jti": jtis, "session": sids, "dead": dead}


def admin_rules(app):
    return [r for r in app.url_map.iter_rules() if r.rule == ADMIN_PREFIX or r.rule.startswith(ADMIN_PREFIX + "/")]


def answer(r):
    """What a client sees: status, content type and body (JSON parsed, else bytes)."""
    body = r.get_json() if r.mimetype == "application/json" else r.get_data()
    r.close()  # a streamed export ends here, before the next request
    return r.status_code, r.headers.get("Content-Type"), r.headers.get("Content-Disposition"), body


def swap(value, pairs: dict):
    """``value`` with every value equal to a key of ``pairs`` replaced by its value."""
    if isinstance(value, dict):
        return {k: swap(v, pairs) for k, v in value.items()}
    if isinstance(value, list):
        return [swap(v, pairs) for v in value]
    return pairs.get(value, value) if isinstance(value, (str, int)) and not isinstance(value, bool) else value


def same_but(a, b, pairs):
    """The two answers are equal once each of b's ids is swapped for a's (``pairs``: (a_id, b_id))."""
    assert answer(a)[:3] == answer(b)[:3]
    assert answer(a)[3] == swap(answer(b)[3], {y: x for x, y in pairs})


# --- the routes answer like their ?endpoint= twins -------------------------------------------

READS = [  # (route, the seed's form): the same GET request
    ("/api/admin/tokens?status=active&limit=5", "/api/admin?endpoint=tokens&status=active&limit=5"),
    ("/api/admin/tokens?role=staff", "/api/admin?endpoint=tokens&role=staff"),
    ("/api/admin/tokens?limit=0", "/api/admin?endpoint=tokens&limit=0"),  # VALIDATION_ERROR both
    ("/api/admin/sessions?status=active", "/api/admin?endpoint=sessions&status=active"),
    ("/api/admin/sessions?active=1", "/api/admin?endpoint=sessions&active=1"),
    ("/api/admin/sessions?status=gone", "/api/admin?endpoint=sessions&status=gone"),
    ("/api/admin/analytics", "/api/admin?endpoint=analytics"),
    ("/api/admin/analytics?from=2026-05-01&to=2026-05-28", "/api/admin?endpoint=analytics&from=2026-05-01&to=2026-05-28"),
    ("/api/admin/analytics?period=year", "/api/admin?endpoint=analytics&period=year"),
    ("/api/admin/export?format=json&kinds=sessions,audit", "/api/admin?endpoint=export&format=json&kinds=sessions,audit"),
    ("/api/admin/export?format=csv&period=week", "/api/admin?endpoint=export&format=csv&period=week"),
    ("/api/admin/export?format=xls", "/api/admin?endpoint=export&format=xls"),
    ("/api/admin/outbox?limit=10", "/api/admin?endpoint=outbox&limit=10"),
    ("/api/admin/conflicts", "/api/admin?endpoint=conflicts"),
    ("/api/admin/security", "/api/admin?endpoint=security"),
    ("/api/admin/sync", "/api/admin?endpoint=sync"),
]


@pytest.mark.parametrize("route,seed", READS)
def test_reads_answer_like_the_seed_form(anon, admin, world, route, seed):
    a = answer(anon.get(route, headers=admin))  # read before the next request: an export streams
    b = answer(anon.get(seed, headers=admin))
    assert a == b
    assert a[0] in (200, 400)


@pytest.mark.parametrize("body", [{"format": "ndjson", "kinds": ["sessions"]}, {"format": "json", "period": "day"},
                                  {"format": "pdf"}, None])
def test_export_post_answers_like_the_seed_form(anon, admin, world, body):
    a = answer(anon.post("/api/admin/export", headers=admin, json=body))
    b = answer(anon.post("/api/admin?endpoint=export", headers=admin, json=body))
    assert a == b


def test_session_details_answer_like_the_seed_form(anon, admin, world):
    sid = world["session"][0]
    a = anon.get(f"/api/admin/sessions/{sid}", headers=admin)
    b = anon.post("/api/admin?endpoint=sessions", headers=admin, json={"sessionId": sid})
    assert a.status_code == 200 and answer(a) == answer(b)
    assert sid in json.dumps(a.get_json())
    a = anon.get("/api/admin/sessions/nope", headers=admin)
    b = anon.post("/api/admin?endpoint=sessions", headers=admin, json={"sessionId": "nope"})
    assert (a.status_code, a.get_json()["error"]["code"]) == (404, "NOT_FOUND") and answer(a) == answer(b)
    long = "x" * 65  # the same validation as the body's sessionId
    a = anon.get(f"/api/admin/sessions/{long}", headers=admin)
    b = anon.post("/api/admin?endpoint=sessions", headers=admin, json={"sessionId": long})
    assert a.status_code == 400 and answer(a) == answer(b)


def test_issuing_answers_like_the_seed_form(anon, admin):
    for body in ({"role": "staff", "name": "Sam", "expiresIn": "1d"}, {"userRole": "guest", "expiresInDays": 3,
                                                                        "walkIn": True}):
        a = anon.post("/api/admin/tokens", headers=admin, json=body)
        b = anon.post("/api/admin?endpoint=tokens", headers=admin, json=body)
        assert a.status_code == b.status_code == 201
        same_but(a, b, [(a.get_json()["jti"], b.get_json()["jti"]), (a.get_json()["token"], b.get_json()["token"]),
                        (a.get_json()["qr"]["png"], b.get_json()["qr"]["png"]),
                        (a.get_json()["userId"], b.get_json()["userId"])])
    for body in ({"role": "guest", "hotelId": "harbor"}, {"role": "guest", "userRole": "guest"}, {"role": "owner"},
                 {"role": "guest", "userId": "NOPE"}, {"role": "staff", "expiresIn": "9999d"}, [1]):
        a = anon.post("/api/admin/tokens", headers=admin, json=body)
        b = anon.post("/api/admin?endpoint=tokens", headers=admin, json=body)
        assert a.status_code >= 400 and answer(a) == answer(b), body


def test_revoking_answers_like_the_seed_form(anon, admin, world, instance):
    one, two = world["jti"]
    a = anon.post(f"/api/admin/tokens/{one}/revoke", headers=admin)
    b = anon.put("/api/admin?endpoint=tokens", headers=admin, json={"jti": two})
    assert a.status_code == 200
    same_but(a, b, [(one, two)])
    revoked = instance.db().execute("SELECT jti FROM qr_tokens WHERE revoked_at IS NOT NULL ORDER BY jti").fetchall()
    assert sorted(j for (j,) in revoked) == sorted([one, two])
    again = anon.post(f"/api/admin/tokens/{one}/revoke", headers=admin, json={})  # twice: harmless, `{}` is no body
    assert answer(again) == answer(a)
    a = anon.post("/api/admin/tokens/nope/revoke", headers=admin)
    b = anon.put("/api/admin?endpoint=tokens", headers=admin, json={"jti": "nope"})
    assert (a.status_code, a.get_json()["error"]["code"]) == (404, "NOT_FOUND") and answer(a) == answer(b)
    # the path names the token: a body with fields is a mistake, not ignored
    r = anon.post(f"/api/admin/tokens/{one}/revoke", headers=admin, json={"jti": two})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "VALIDATION_ERROR")


def test_ending_a_session_answers_like_the_seed_form(anon, admin, world, instance):
    one, two = world["session"]
    a = anon.delete(f"/api/admin/sessions/{one}", headers=admin)
    b = anon.delete("/api/admin?endpoint=sessions", headers=admin, json={"sessionId": two})
    assert a.status_code == 200
    same_but(a, b, [(one, two)])
    ended = instance.db().execute("SELECT count(*) FROM sessions WHERE id IN (?, ?) AND end_reason = ?",
                                  [one, two, "terminated_by_admin"]).fetchone()
    assert ended == (2,)
    a = anon.delete("/api/admin/sessions/nope", headers=admin)
    b = anon.delete("/api/admin?endpoint=sessions&sessionId=nope", headers=admin)
    assert a.status_code == 404 and answer(a) == answer(b)


def test_resolving_dead_entries_answers_like_the_seed_form(anon, admin, world, instance):
    first, second = world["dead"]
    a = anon.post(f"/api/admin/outbox/{first}/retry", headers=admin)
    b = anon.put("/api/admin?endpoint=outbox", headers=admin, json={"id": second, "action": "retry"})
    assert a.status_code == 200
    same_but(a, b, [(first, second)])
    assert instance.db().execute("SELECT count(*) FROM outbox WHERE state = 'dead'").fetchone() == (0,)
    instance.db().execute("UPDATE outbox SET state = 'dead' WHERE id IN (?, ?)", [first, second])
    a = anon.post(f"/api/admin/outbox/{first}/drop", headers=admin)
    b = anon.put("/api/admin?endpoint=outbox", headers=admin, json={"id": second, "action": "drop"})
    assert a.status_code == 200
    same_but(a, b, [(first, second)])
    a = anon.post("/api/admin/outbox/999999/retry", headers=admin)
    b = anon.put("/api/admin?endpoint=outbox", headers=admin, json={"id": 999999, "action": "retry"})
    assert a.status_code == 404 and answer(a) == answer(b)
    a = anon.post("/api/admin/outbox/0/drop", headers=admin)
    b = anon.put("/api/admin?endpoint=outbox", headers=admin, json={"id": 0, "action": "drop"})
    assert a.status_code == 400 and answer(a) == answer(b)


def test_every_seed_form_operation_has_its_route(app):
    """Each (endpoint, method) of the seed's form is served by the route of the same work."""
    routes = {(r.rule, m) for r in admin_rules(app) for m in r.methods - {"HEAD", "OPTIONS"}}
    twins = {("tokens", "GET"): ("/api/admin/tokens", "GET"), ("tokens", "POST"): ("/api/admin/tokens", "POST"),
             ("tokens", "PUT"): ("/api/admin/tokens/<jti>/revoke", "POST"),
             ("sessions", "GET"): ("/api/admin/sessions", "GET"),
             ("sessions", "POST"): ("/api/admin/sessions/<session_id>", "GET"),
             ("sessions", "DELETE"): ("/api/admin/sessions/<session_id>", "DELETE"),
             ("analytics", "GET"): ("/api/admin/analytics", "GET"),
             ("export", "GET"): ("/api/admin/export", "GET"), ("export", "POST"): ("/api/admin/export", "POST"),
             ("outbox", "GET"): ("/api/admin/outbox", "GET"),
             ("outbox", "PUT"): ("/api/admin/outbox/<int:entry_id>/retry", "POST"),
             ("conflicts", "GET"): ("/api/admin/conflicts", "GET"),
             ("security", "GET"): ("/api/admin/security", "GET"), ("sync", "GET"): ("/api/admin/sync", "GET")}
    seed_ops = {(name, m) for name, methods in admin_api.SEED_FORM.items() for m in methods}
    assert seed_ops == set(twins)
    assert {twin for twin in twins.values()} <= routes
    assert ("/api/admin/outbox/<int:entry_id>/drop", "POST") in routes


# --- deny by default -----------------------------------------------------------------------

def fill(rule: str, world) -> str:
    values = {"jti": world["jti"][0], "session_id": world["session"][0], "entry_id": str(world["dead"][0])}
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule)


BODIES = {"POST": {"role": "admin", "format": "json"}, "PUT": {"jti": "x"}, "DELETE": None}


def test_every_admin_route_is_admin_only(app):
    rules = admin_rules(app)
    assert len(rules) >= 13
    for rule in rules:
        assert rbac.policy_of(app.view_functions[rule.endpoint]) == frozenset({"admin"}), rule.rule
        assert rule.rule.startswith(csrf.PROTECTED)  # cookie writes need the page's CSRF token


@pytest.mark.parametrize("role", [None, "guest", "staff"])
def test_a_non_admin_is_refused_on_every_admin_route(app, anon, login, world, instance, role):
    headers = {} if role is None else login(role)
    db = instance.db()
    before = db.execute("SELECT count(*) FROM audit_log WHERE event = 'security.forbidden'").fetchone()[0]
    calls = 0
    for rule in admin_rules(app):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            url = fill(rule.rule, world)
            if rule.rule == ADMIN_PREFIX:
                urls = [f"{url}?endpoint={name}" for name in admin_api.SEED_FORM] + [url, url + "?endpoint=nope"]
            else:
                urls = [url]
            for u in urls:
                r = anon.open(u, method=method, headers=headers, json=BODIES.get(method))
                want = (401, "UNAUTHORIZED") if role is None else (403, "FORBIDDEN")
                assert (r.status_code, r.get_json()["error"]["code"]) == want, (method, u)
                assert set(r.get_json()) == {"success", "error", "timestamp"}
                calls += 1
    assert calls >= 20
    after = db.execute("SELECT count(*) FROM audit_log WHERE event = 'security.forbidden'").fetchone()[0]
    assert after - before == (0 if role is None else calls)  # each refusal of a role is audited
    # nothing changed
    assert db.execute("SELECT count(*) FROM qr_tokens WHERE role = 'admin'").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM qr_tokens WHERE revoked_at IS NOT NULL").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM sessions WHERE end_reason = 'terminated_by_admin'").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM outbox WHERE state = 'dead'").fetchone() == (2,)


def test_a_screen_admin_needs_the_csrf_token_on_the_routes(screen, world, keys):
    browser = screen("admin")
    token = csrf.token_for(keys.session_secret, browser.scan["sessionId"])
    for method, url in (("POST", f"/api/admin/tokens/{world['jti'][0]}/revoke"),
                        ("DELETE", f"/api/admin/sessions/{world['session'][0]}"),
                        ("POST", f"/api/admin/outbox/{world['dead'][0]}/drop"),
                        ("POST", "/api/admin/tokens")):
        r = browser.open(url, method=method, json={"role": "guest", "walkIn": True} if url.endswith("tokens") else None)
        assert (r.status_code, r.get_json()["error"]["details"]) == (403, {"reason": "csrf-token"}), url
        r = browser.open(url, method=method, headers={csrf.HEADER: token},
                         json={"role": "guest", "walkIn": True} if url.endswith("tokens") else None)
        assert r.status_code in (200, 201), r.get_json()
    assert browser.get("/api/admin/tokens").status_code == 200  # reading needs no token


# --- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["?endpoint=nope", "", "?endpoint=", "?endpoint=TOKENS", "?endpoint=tokens/x"])
def test_an_unknown_endpoint_keeps_its_error(anon, admin, query):
    for method in ("GET", "POST", "PUT", "DELETE"):
        r = anon.open(ADMIN_PREFIX + query, method=method, headers=admin)
        body = r.get_json()
        assert (r.status_code, body["error"]["code"]) == (404, "NOT_FOUND")
        assert body["error"]["details"] == {"endpoints": sorted(admin_api.SEED_FORM)}


def test_a_method_the_seed_form_does_not_serve_is_405_with_allowed(anon, admin):
    for name, methods in admin_api.SEED_FORM.items():
        for method in {"GET", "POST", "PUT", "DELETE"} - set(methods):
            r = anon.open(f"/api/admin?endpoint={name}", method=method, headers=admin, json={})
            assert (r.status_code, r.get_json()["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")
            assert r.get_json()["error"]["details"] == {"method": method, "allowed": list(methods)}
            assert r.headers["Allow"] == ", ".join(methods)


def test_a_wrong_method_on_a_route_is_405_with_the_error_body(app, anon, admin, world):
    served: dict[str, set[str]] = {}  # path -> its methods (a rule per method)
    for rule in admin_rules(app):
        if rule.rule != ADMIN_PREFIX:
            served.setdefault(rule.rule, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    n = 0
    for path, methods in served.items():
        for method in sorted(SERVED - methods):
            r = anon.open(fill(path, world), method=method, headers=admin, json={})
            body = r.get_json()
            assert (r.status_code, body["error"]["code"]) == (405, "METHOD_NOT_ALLOWED"), (method, path)
            assert body["success"] is False and set(body) == {"success", "error", "timestamp"}
            assert set(r.headers["Allow"].split(", ")) - {"HEAD", "OPTIONS"} == methods
            n += 1
    assert n >= 40
